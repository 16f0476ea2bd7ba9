/*
 * base.c — errors, the log sink, the allocation policy and the bounded
 * buffer. These are deliberate process singletons (the log sink and the OOM
 * handler); everything else in the project is passed as context.
 */
#include "base.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- Errors ---------------------------------------------------------- */

static const char *const err_msgs[] = {
#define X(name, msg) msg,
    MLLM_ERRNO_MAP(X)
#undef X
};
static const char *const err_names[] = {
#define X(name, msg) "MLLM_E" #name,
    MLLM_ERRNO_MAP(X)
#undef X
};

const char *mllm_strerror(int err)
{
	if (err == MLLM_OK)
		return "success";
	if (err > MLLM__EFIRST && err < MLLM__ELAST)
		return err_msgs[err - MLLM__EFIRST - 1];
	return "unknown error";
}

const char *mllm_strerror_name(int err)
{
	if (err == MLLM_OK)
		return "MLLM_OK";
	if (err > MLLM__EFIRST && err < MLLM__ELAST)
		return err_names[err - MLLM__EFIRST - 1];
	return "MLLM_EUNKNOWN";
}

/* ---- Assertions ------------------------------------------------------ */

/* Writes straight to fd 2: the process is about to abort and the log sink
 * may be what broke. This is the one place the engine writes output. */
void mllm__assert_fail(const char *file, int line, const char *expr)
{
	char msg[512];
	int n =
	    snprintf(msg, sizeof msg, "mllm: assertion failed at %s:%d: %s\n", file, line, expr);
	if (n > 0) {
		ssize_t w = write(2, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
		(void)w;
	}
	abort();
}

/* ---- Logging --------------------------------------------------------- */

static mllm_log_fn log_fn;
static void *log_ud;
int mllm__log_level = -1;

void mllm_log_set(mllm_log_fn fn, void *ud, mllm_log_level max_level)
{
	log_fn = fn;
	log_ud = ud;
	mllm__log_level = fn ? (int)max_level : -1;
}

void mllm__log(mllm_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	mllm_log_fn fn = log_fn;

	if (!fn || (int)level > mllm__log_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fn(log_ud, level, line);
}

int mllm__seterr(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* ---- Allocation ------------------------------------------------------ */

static void default_oom(size_t size)
{
	char msg[128];
	int n = snprintf(msg, sizeof msg, "mllm: out of memory allocating %zu bytes\n", size);
	if (n > 0) {
		ssize_t w = write(2, msg, (size_t)n);
		(void)w;
	}
	abort();
}

static mllm_oom_fn oom_fn = default_oom;

void mllm_set_oom_handler(mllm_oom_fn fn)
{
	oom_fn = fn ? fn : default_oom;
}

static void oom(size_t size)
{
	oom_fn(size);
	abort(); /* the handler must not return */
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom(n);
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		oom(n * size);
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom(n);
	return q;
}

void *xmallocarray(size_t n, size_t size)
{
	size_t total;
	if (mllm__mul_overflow(n, size, &total))
		oom(SIZE_MAX);
	return xmalloc(total);
}

char *xstrdup(const char *s)
{
	return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static _Atomic long fail_countdown = -1;

static int inject_failure(void)
{
	long c = atomic_load(&fail_countdown);
	if (c < 0)
		return 0;
	if (c == 0)
		return 1;
	atomic_store(&fail_countdown, c - 1);
	return 0;
}

void mllm__alloc_fail_after(long countdown)
{
	atomic_store(&fail_countdown, countdown);
}

void *mllm_try_malloc(size_t n)
{
	if (inject_failure())
		return NULL;
	return malloc(n ? n : 1);
}

void *mllm__try_malloc64(size_t n)
{
	if (inject_failure())
		return NULL;
	size_t r = (n + 63) & ~(size_t)63;
	if (r < n)
		return NULL;
	return aligned_alloc(64, r ? r : 64);
}

void *mllm_try_calloc(size_t n, size_t size)
{
	if (inject_failure())
		return NULL;
	return calloc(n ? n : 1, size ? size : 1);
}

void *mllm_try_realloc(void *p, size_t n)
{
	if (inject_failure())
		return NULL;
	return realloc(p, n ? n : 1);
}

/* ---- Bounded buffer -------------------------------------------------- */

void mllm_buf_init(mllm_buf *b, size_t limit)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->limit = limit;
}

void mllm_buf_free(mllm_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void mllm_buf_reset(mllm_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int buf_reserve(mllm_buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (mllm__add_overflow(b->len, extra, &need) || need > b->limit)
		return MLLM_ENOSPACE;
	if (need + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need + 1)
		cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
	p = mllm_try_realloc(b->data, cap);
	if (!p)
		return MLLM_ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int mllm_buf_append(mllm_buf *b, const void *p, size_t n)
{
	int rc = buf_reserve(b, n);
	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int mllm_buf_appendf(mllm_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return MLLM_EINVAL;
	rc = buf_reserve(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *mllm_buf_take(mllm_buf *b, size_t *len)
{
	char *p = b->data;
	if (len)
		*len = b->len;
	if (!p)
		p = xstrdup("");
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

int mllm_hex_decode(const char *s, int n, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < n; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

size_t mllm_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t k;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		k = 2;
		cp = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		k = 3;
		cp = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		k = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (k > n)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return k;
}

size_t mllm_utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

uint64_t mllm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int mllm__thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
	pthread_attr_t a;
	if (pthread_attr_init(&a) != 0)
		return -1;
	size_t cur = 0;
	if (pthread_attr_getstacksize(&a, &cur) != 0 || cur < MLLM__THREAD_STACK)
		(void)pthread_attr_setstacksize(&a, MLLM__THREAD_STACK);
	int rc = pthread_create(t, &a, fn, arg);
	pthread_attr_destroy(&a);
	return rc;
}
