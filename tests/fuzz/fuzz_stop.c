/*
 * fuzz_stop.c — engine/stop.c, the stop-string matcher that sits between
 * the detokenizer and the SSE/JSON renderers. Input layout: one byte for
 * the number of stop strings (0..4), the stop strings separated by 0x00,
 * then the text as token pieces separated by 0x01. Checks, whatever the
 * split: the released text is a prefix of the text fed; with no match,
 * released + flushed is the whole text; with a match, the released text is
 * exactly the text before the earliest stop string to end and contains none of
 * them; nothing is released after a match.
 */
#include "fuzz.h"

#include "mllm.h"
#include "sampler.h" /* mllm_stop (engine-internal) */

static bool contains(const char *h, size_t hn, const char *n, size_t nn)
{
	if (nn == 0 || nn > hn)
		return false;
	for (size_t i = 0; i + nn <= hn; i++)
		if (memcmp(h + i, n, nn) == 0)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_in in = {data, size};
	char stops[MLLM_MAX_STOP][65];
	const char *sp[MLLM_MAX_STOP];
	int n_stop = (int)(fuzz_byte(&in) % (MLLM_MAX_STOP + 1));
	char *full, *rel;
	size_t n_full = 0, n_rel = 0;
	mllm_stop st;

	for (int i = 0; i < n_stop; i++) {
		const uint8_t *f;
		size_t k = fuzz_field(&in, 0x00, 64, &f);
		memcpy(stops[i], f, k);
		stops[i][k] = '\0';
		sp[i] = stops[i];
	}
	if (mllm_stop_init(&st, sp, n_stop) != 0)
		return 0;
	full = malloc(in.n + 1);
	rel = malloc(in.n + 1);
	FUZZ_CHECK(full && rel);
	while (in.n > 0) {
		const uint8_t *piece;
		const char *out;
		size_t k = fuzz_field(&in, 0x01, 4096, &piece), r;
		bool was_matched = st.matched;
		memcpy(full + n_full, piece, k);
		n_full += k;
		r = mllm_stop_push(&st, (const char *)piece, k, &out);
		if (was_matched)
			FUZZ_CHECK(r == 0);
		FUZZ_CHECK(n_rel + r <= n_full);
		memcpy(rel + n_rel, out, r);
		n_rel += r;
		FUZZ_CHECK(memcmp(rel, full, n_rel) == 0);
	}
	if (!st.matched) {
		const char *out;
		size_t r = mllm_stop_flush(&st, &out);
		FUZZ_CHECK(n_rel + r <= n_full);
		memcpy(rel + n_rel, out, r);
		n_rel += r;
		FUZZ_CHECK(n_rel == n_full && memcmp(rel, full, n_rel) == 0);
		for (int i = 0; i < n_stop; i++)
			FUZZ_CHECK(!contains(full, n_full, stops[i], strlen(stops[i])));
	} else {
		/* The text released ends where the first stop string to complete
		 * starts: no stop string lies wholly inside it, and one starts
		 * right after it. */
		bool at = false;
		for (int i = 0; i < n_stop; i++) {
			size_t l = strlen(stops[i]);
			FUZZ_CHECK(!contains(rel, n_rel, stops[i], l));
			if (l && n_rel + l <= n_full && memcmp(full + n_rel, stops[i], l) == 0)
				at = true;
		}
		FUZZ_CHECK(at);
	}
	mllm_stop_free(&st);
	free(full);
	free(rel);
	return 0;
}
