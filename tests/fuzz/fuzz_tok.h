/*
 * fuzz_tok.h — whole-text decoding for the tokenizer harnesses, through the
 * documented two-call protocol of mllm_tokenizer_decode() rather than a
 * guessed per-token capacity. Two guesses (16, then 64 bytes a token) were
 * each found too small by fuzz-ci: the vocabularies hold longer pieces
 * (LLaMA-2: 27 bytes; Llama-3: 128), and the harness, not the decoder, was
 * wrong. The first call here is deliberately tight, so the ENOSPACE path
 * (truncated, NUL-terminated prefix and the full length) is checked too.
 */
#ifndef MLLM_FUZZ_TOK_H
#define MLLM_FUZZ_TOK_H

#include "fuzz.h"
#include "mllm.h"

/* Decodes ids into a fresh buffer (the caller frees it) and its length; the
 * decoder's return code goes to *rc (NULL on any failure but ENOSPACE's
 * retry). */
static inline char *fuzz_decode(const mllm_tokenizer *tok, const int32_t *ids, size_t n,
                                size_t *len, int *rc)
{
	size_t cap = n + 1, got = 0;
	char *out = malloc(cap);
	FUZZ_CHECK(out);
	*rc = mllm_tokenizer_decode(tok, ids, n, out, cap, &got);
	if (*rc == MLLM_ENOSPACE) {
		char *prefix = out;
		/* The full length, and a NUL-terminated prefix of cap - 1 bytes. */
		FUZZ_CHECK(got >= cap && prefix[cap - 1] == '\0');
		out = malloc(got + 1);
		FUZZ_CHECK(out);
		*rc = mllm_tokenizer_decode(tok, ids, n, out, got + 1, len);
		FUZZ_CHECK(*rc == 0 && *len == got);
		FUZZ_CHECK(memcmp(prefix, out, cap - 1) == 0);
		free(prefix);
		return out;
	}
	*len = got;
	if (*rc == 0)
		FUZZ_CHECK(got < cap && out[got] == '\0');
	return out;
}

#endif
