/*
 * fuzz_tokenizer_bpe.c — the Llama-3 byte-level BPE (engine/tokenizer_bpe*.c)
 * with the real tokenizer.json from the fixtures. Byte 0 picks the mode:
 * even, the rest is text to encode (bit 1: special-token text parsed);
 * odd, the rest is 24-bit token ids to decode (some out of range).
 * Checks: ids are in range; with specials not parsed, valid UTF-8 text
 * decodes back to itself exactly (byte-level BPE loses nothing); the
 * incremental detokenizer, fed id by id, emits whole UTF-8 characters only
 * and ends with the whole decode; bad ids are refused.
 */
#include "fuzz_tok.h"

#include "base.h"
#include "mllm.h"

static mllm_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[1024], err[256];
	(void)argc;
	(void)argv;
	fuzz_fixture(path, sizeof path, "tokenizer/llama3/tokenizer.json");
	FUZZ_REQUIRE(mllm_tokenizer_load(path, &tok, err, sizeof err) == 0, path);
	return 0;
}

static bool utf8_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = mllm_utf8_len((const unsigned char *)s + i, n - i);
		if (k == 0)
			return false;
		i += k;
	}
	return true;
}

/* Whole decode vs the incremental detokenizer over the same ids. */
static void check_decode(const int32_t *ids, size_t n, int32_t n_vocab)
{
	size_t got = 0, len = 0;
	bool bad = false;
	int rc;
	mllm_detok d;
	char *whole, *inc;
	for (size_t i = 0; i < n; i++)
		bad |= ids[i] < 0 || ids[i] >= n_vocab;
	whole = fuzz_decode(tok, ids, n, &got, &rc);
	/* Each id adds at most MLLM_DETOK_MAX bytes, the flush no more. */
	inc = malloc((n + 1) * MLLM_DETOK_MAX);
	FUZZ_CHECK(inc);
	if (bad) {
		FUZZ_CHECK(rc == MLLM_ERANGE);
		goto out;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(utf8_ok(whole, got));
	mllm_detok_init(&d, tok);
	for (size_t i = 0; i < n; i++) {
		int k = mllm_detok_push(&d, ids[i], inc + len, MLLM_DETOK_MAX);
		FUZZ_CHECK(k >= 0);
		FUZZ_CHECK(utf8_ok(inc + len, (size_t)k));
		len += (size_t)k;
		FUZZ_CHECK(len <= got);
	}
	{
		int k = mllm_detok_flush(&d, inc + len, MLLM_DETOK_MAX);
		FUZZ_CHECK(k >= 0);
		len += (size_t)k;
	}
	FUZZ_CHECK(len == got && memcmp(inc, whole, got) == 0);
out:
	free(whole);
	free(inc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int32_t n_vocab = mllm_tokenizer_n_vocab(tok);
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		const char *text = (const char *)data + 1;
		size_t len = size - 1, cap = mllm_tokenizer_max_ids(tok, len), n = 0;
		mllm_encode_opts o = {.add_bos = false, .parse_special = (data[0] & 2) != 0};
		int32_t *ids = malloc((cap ? cap : 1) * sizeof *ids);
		FUZZ_CHECK(ids);
		FUZZ_CHECK(mllm_tokenizer_encode_ex(tok, text, len, &o, ids, cap, &n) == 0);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(ids[i] >= 0 && ids[i] < n_vocab);
		if (!o.parse_special && utf8_ok(text, len)) {
			char *back = malloc(len + 1);
			size_t got = 0;
			FUZZ_CHECK(back);
			FUZZ_CHECK(mllm_tokenizer_decode(tok, ids, n, back, len + 1, &got) == 0);
			FUZZ_CHECK(got == len && memcmp(back, text, len) == 0);
			free(back);
		}
		check_decode(ids, n, n_vocab);
		free(ids);
	} else {
		size_t n = (size - 1) / 3;
		int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
		FUZZ_CHECK(ids);
		for (size_t i = 0; i < n; i++) {
			const uint8_t *p = data + 1 + 3 * i;
			ids[i] = (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 |
			                   (uint32_t)(p[2] & 1) << 16);
		}
		check_decode(ids, n, n_vocab);
		free(ids);
	}
	return 0;
}
