/*
 * stop.c — stop-sequence matching on released text, across token
 * boundaries. A choice's text arrives a token at a time; whatever could still
 * grow into a stop string is held back, and the stop string itself is never
 * released. Kept apart from the sampler because it works on text, not
 * logits, and apart from the scheduler so it can be tested byte by byte.
 * Buffers are sized from the stop strings and one token's text, so a push
 * reallocates only when a token's text is larger than any seen before.
 */
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "sampler.h"

int mllm_stop_init(mllm_stop *st, const char *const *stop, int n)
{
	memset(st, 0, sizeof *st);
	if (n < 0 || n > MLLM_MAX_STOP || (n > 0 && !stop))
		return MLLM_EINVAL;
	for (int i = 0; i < n; i++) {
		size_t len;
		if (!stop[i])
			goto inval;
		len = strlen(stop[i]);
		if (len == 0)
			continue; /* an empty stop string would match everywhere */
		st->stop[st->n_stop] = mllm_try_malloc(len + 1);
		if (!st->stop[st->n_stop]) {
			mllm_stop_free(st);
			return MLLM_ENOMEM;
		}
		memcpy(st->stop[st->n_stop], stop[i], len + 1);
		st->stop_len[st->n_stop] = len;
		if (len > st->max_len)
			st->max_len = len;
		st->n_stop++;
	}
	st->cap = st->max_len + MLLM_DETOK_MAX + 16;
	st->held = mllm_try_malloc(st->cap);
	st->out = mllm_try_malloc(st->cap);
	if (!st->held || !st->out) {
		mllm_stop_free(st);
		return MLLM_ENOMEM;
	}
	return MLLM_OK;
inval:
	mllm_stop_free(st);
	return MLLM_EINVAL;
}

void mllm_stop_free(mllm_stop *st)
{
	if (!st)
		return;
	for (int i = 0; i < st->n_stop; i++)
		free(st->stop[i]);
	free(st->held);
	free(st->out);
	memset(st, 0, sizeof *st);
}

static bool is_utf8_cont(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

/* Length of the longest suffix of buf[0..n) that is a proper prefix of some
 * stop string: the text that must wait for the next token. */
static size_t partial_suffix(const mllm_stop *st, const char *buf, size_t n)
{
	size_t best = 0;
	for (int s = 0; s < st->n_stop; s++) {
		size_t k = st->stop_len[s] - 1;
		if (k > n)
			k = n;
		for (; k > best; k--) {
			if (memcmp(buf + n - k, st->stop[s], k) == 0) {
				best = k;
				break;
			}
		}
	}
	/* Never split a UTF-8 character (only possible with a stop string
	 * that starts inside one): hold its lead bytes back too. */
	while (best < n && best > 0 && is_utf8_cont((unsigned char)buf[n - best]))
		best++;
	return best;
}

/* Earliest position where any stop string starts in buf[0..n), or n. */
static size_t first_match(const mllm_stop *st, const char *buf, size_t n)
{
	size_t best = n;
	for (int s = 0; s < st->n_stop; s++) {
		size_t len = st->stop_len[s];
		if (len > n)
			continue;
		for (size_t i = 0; i + len <= n && i < best; i++) {
			if (buf[i] == st->stop[s][0] && memcmp(buf + i, st->stop[s], len) == 0) {
				best = i;
				break;
			}
		}
	}
	return best;
}

static void ensure_cap(mllm_stop *st, size_t need)
{
	if (need <= st->cap)
		return;
	st->held = xrealloc(st->held, need);
	st->out = xrealloc(st->out, need);
	st->cap = need;
}

size_t mllm_stop_push(mllm_stop *st, const char *text, size_t len, const char **out)
{
	size_t n, cut, keep;

	*out = st->out;
	if (st->matched)
		return 0;
	if (st->skip_lead_space && len > 0) {
		st->skip_lead_space = false;
		if (text[0] == ' ') {
			const char *rel;
			size_t k = mllm_stop_push(st, text + 1, len - 1, &rel);
			ensure_cap(st, k + 2); /* keeps out's k bytes */
			memmove(st->out + 1, st->out, k);
			st->out[0] = ' ';
			*out = st->out;
			return k + 1;
		}
	}
	if (st->n_stop == 0) {
		/* Nothing to match: release as given. */
		ensure_cap(st, len + 1);
		*out = st->out;
		if (len)
			memcpy(st->out, text, len);
		return len;
	}
	/* Work on held + text in `out`, then move the tail back to held. */
	n = st->n_held + len;
	ensure_cap(st, n + 1);
	*out = st->out;
	memcpy(st->out, st->held, st->n_held);
	if (len)
		memcpy(st->out + st->n_held, text, len);
	cut = first_match(st, st->out, n);
	if (cut < n) {
		st->matched = true;
		st->n_held = 0;
		return cut;
	}
	keep = partial_suffix(st, st->out, n);
	memcpy(st->held, st->out + n - keep, keep);
	st->n_held = keep;
	return n - keep;
}

size_t mllm_stop_flush(mllm_stop *st, const char **out)
{
	size_t n = st->matched ? 0 : st->n_held;
	*out = st->out;
	if (n)
		memcpy(st->out, st->held, n);
	st->n_held = 0;
	return n;
}
