/*
 * util.c — small helpers every api/ file needs: jansson → mllm_buf output
 * (compact bodies and SSE events), UTF-8 validation and lossy repair, the
 * token-bytes rules of the OpenAI logprobs shapes, and response ids.
 * Kept apart so request.c and render.c hold protocol logic only.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

typedef struct {
	mllm_buf *b;
	int rc;
} dump_ctx;

static int dump_cb(const char *p, size_t n, void *ud)
{
	dump_ctx *c = ud;
	int rc = mllm_buf_append(c->b, p, n);
	if (rc != 0) {
		c->rc = rc;
		return -1;
	}
	return 0;
}

/* On failure the buffer is put back as it was: no half-written JSON. */
static void buf_truncate(mllm_buf *b, size_t len)
{
	b->len = len;
	if (b->data)
		b->data[len] = '\0';
}

static int hexval(char c)
{
	return c >= '0' && c <= '9'   ? c - '0'
	       : c >= 'a' && c <= 'f' ? c - 'a' + 10
	       : c >= 'A' && c <= 'F' ? c - 'A' + 10
	                              : -1;
}

int api_url_decode(const char *s, size_t n, bool plus, char *out, size_t cap)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (c == '\0' || k + 1 >= cap)
			return -1;
		out[k++] = c;
	}
	if (cap == 0)
		return -1;
	out[k] = '\0';
	return (int)k;
}

const char *api__json_error_text(const json_error_t *je)
{
	/* jansson names its own option; say what the client sent */
	if (strstr(je->text, "JSON_ALLOW_NUL"))
		return "a string holds \\u0000 (NUL), which is not allowed";
	return je->text;
}

int api__json_append(const json_t *j, mllm_buf *out)
{
	dump_ctx c = {.b = out, .rc = 0};
	size_t saved = out->len;
	if (json_dump_callback(j, dump_cb, &c, JSON_COMPACT | JSON_REAL_PRECISION(9)) != 0) {
		buf_truncate(out, saved);
		return c.rc ? c.rc : MLLM_ENOMEM;
	}
	return 0;
}

int api__sse_append(const json_t *j, mllm_buf *out)
{
	size_t saved = out->len;
	int rc = mllm_buf_append(out, "data: ", 6);
	if (rc == 0)
		rc = api__json_append(j, out);
	if (rc == 0)
		rc = mllm_buf_append(out, "\n\n", 2);
	if (rc != 0)
		buf_truncate(out, saved);
	return rc;
}

int api__utf8_valid(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0;
	while (i < n) {
		size_t k = mllm_utf8_len(u + i, n - i);
		if (k == 0)
			return 0;
		i += k;
	}
	return 1;
}

size_t api__utf8_chars(const char *p, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)p[i] & 0xC0) != 0x80;
	return c;
}

json_t *api__json_text(const char *p, size_t n)
{
	json_t *j;
	if (api__utf8_valid(p, n)) {
		j = json_stringn_nocheck(p, n);
	} else {
		/* Each bad byte becomes U+FFFD (3 bytes): at most 3n. */
		const unsigned char *u = (const unsigned char *)p;
		char *q = xmallocarray(n, 3);
		size_t o = 0, i = 0;
		while (i < n) {
			size_t k = mllm_utf8_len(u + i, n - i);
			if (k == 0) {
				memcpy(q + o, "\xEF\xBF\xBD", 3);
				o += 3;
				i++;
			} else {
				memcpy(q + o, u + i, k);
				o += k;
				i += k;
			}
		}
		j = json_stringn_nocheck(q, o);
		free(q);
	}
	MLLM_ASSERT(j != NULL);
	return j;
}

json_t *api__json_token(const char *p, size_t n)
{
	json_t *j;
	/* A NUL byte would end a JSON object key for many parsers (jansson
	 * among them), and tokens are keys in the legacy top_logprobs. */
	if (api__utf8_valid(p, n) && !memchr(p, '\0', n)) {
		j = json_stringn_nocheck(p, n);
	} else {
		/* "bytes:" then \xNN per byte, as OpenAI renders partial UTF-8. */
		char *q = xmalloc(6 + 4 * n + 1);
		size_t o = 6;
		memcpy(q, "bytes:", 6);
		for (size_t i = 0; i < n; i++) {
			snprintf(q + o, 5, "\\x%02x", (unsigned char)p[i]);
			o += 4;
		}
		j = json_stringn_nocheck(q, o);
		free(q);
	}
	MLLM_ASSERT(j != NULL);
	return j;
}

json_t *api__json_logprob(float lp)
{
	json_t *j = json_real(isfinite(lp) ? (double)lp : -9999.0);
	MLLM_ASSERT(j != NULL);
	return j;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

void api__make_id(char *buf, size_t cap, const char *prefix)
{
	/* Unique within the process (the counter), unpredictable enough
	 * across restarts (the clock): ids are labels, not secrets. */
	static atomic_uint_fast64_t counter;
	uint64_t c = atomic_fetch_add(&counter, 1);
	uint64_t a = splitmix64(mllm_now_ns() ^ (c * 0xD1B54A32D192ED03ull));
	uint64_t b = splitmix64(a ^ c);
	snprintf(buf, cap, "%s%016llx%08llx", prefix, (unsigned long long)a,
	         (unsigned long long)(b & 0xFFFFFFFFull));
}

bool api__json_id(const json_t *t, int64_t *out)
{
	double d;
	if (json_is_integer(t)) {
		if (json_integer_value(t) < 0 || json_integer_value(t) > INT32_MAX)
			return false;
		*out = json_integer_value(t);
		return true;
	}
	if (!json_is_real(t))
		return false;
	/* Integral reals (16.0) count, as for every integer field. */
	d = json_real_value(t);
	if (!(d >= 0 && d <= INT32_MAX) || d != floor(d))
		return false;
	*out = (int64_t)d;
	return true;
}

bool api__name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return true;
}
