/*
 * fuzz_tokenizer_sp.c — the SentencePiece tokenizer (engine/tokenizer.c)
 * with the LLaMA-2 tokenizer.model from the fixtures. The first input byte
 * picks the mode: even, the rest is text (any bytes) to encode; odd, the
 * rest is a sequence of 16-bit token ids to decode (some out of range).
 * Checks: ids are in range and never control tokens, whole and incremental
 * decoding agree and emit valid UTF-8 only, encode(decode(encode(x))) ==
 * encode(x), and bad ids are refused with an error, not read.
 */
#include "fuzz_tok.h"

#include "mllm.h"

static mllm_tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[1024], err[256];
	(void)argc;
	(void)argv;
	fuzz_fixture(path, sizeof path, "tokenizer/llama2/tokenizer.model");
	FUZZ_REQUIRE(mllm_tokenizer_load(path, &tok, err, sizeof err) == 0, path);
	return 0;
}

static bool utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return false;
		if (i + k >= n)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + j] & 0x3f);
		}
		if ((k == 2 && cp < 0x800) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* Decodes whole and incrementally; the two must agree. Returns the text. */
static char *decode_checked(const int32_t *ids, size_t n, size_t *out_len)
{
	size_t len = 0, s_len = 0;
	char *out, *stream, chunk[MLLM_DETOK_MAX];
	int rc;
	mllm_detok d;
	out = fuzz_decode(tok, ids, n, &len, &rc);
	FUZZ_CHECK(rc == 0 && utf8_valid((unsigned char *)out, len));
	stream = malloc(len + 1);
	FUZZ_CHECK(stream);
	mllm_detok_init(&d, tok);
	for (size_t i = 0; i <= n; i++) {
		int k = i < n ? mllm_detok_push(&d, ids[i], chunk, sizeof chunk)
		              : mllm_detok_flush(&d, chunk, sizeof chunk);
		FUZZ_CHECK(k >= 0 && (size_t)k <= sizeof chunk);
		FUZZ_CHECK(utf8_valid((unsigned char *)chunk, (size_t)k));
		FUZZ_CHECK(s_len + (size_t)k <= len);
		memcpy(stream + s_len, chunk, (size_t)k);
		s_len += (size_t)k;
	}
	FUZZ_CHECK(s_len == len && memcmp(stream, out, len) == 0);
	free(stream);
	*out_len = len;
	return out;
}

static void fuzz_text(const char *text, size_t len)
{
	size_t cap = mllm_tokenizer_max_ids(tok, len), n = 0, n2 = 0, dlen = 0;
	int32_t *ids = malloc(cap * sizeof *ids), *ids2;
	int32_t nv = mllm_tokenizer_n_vocab(tok);
	char *dec;
	FUZZ_CHECK(ids);
	FUZZ_CHECK(mllm_tokenizer_encode(tok, text, len, false, ids, cap, &n) == 0);
	FUZZ_CHECK(n <= len + 1);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv && !mllm_tokenizer_is_control(tok, ids[i]));
	dec = decode_checked(ids, n, &dlen);
	cap = mllm_tokenizer_max_ids(tok, dlen);
	ids2 = malloc(cap * sizeof *ids2);
	FUZZ_CHECK(ids2);
	FUZZ_CHECK(mllm_tokenizer_encode(tok, dec, dlen, false, ids2, cap, &n2) == 0);
	FUZZ_CHECK(n2 == n && memcmp(ids, ids2, n * sizeof *ids) == 0);
	/* A capacity one short of what is needed is an error, not an overflow. */
	if (n > 0) {
		size_t n_short = 0;
		FUZZ_CHECK(mllm_tokenizer_encode(tok, text, len, false, ids, n - 1, &n_short) != 0);
	}
	free(dec);
	free(ids2);
	free(ids);
}

static void fuzz_ids(const uint8_t *p, size_t size)
{
	size_t n = size / 2, len = 0;
	int32_t nv = mllm_tokenizer_n_vocab(tok);
	int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
	bool bad = false;
	char *dec;
	FUZZ_CHECK(ids);
	for (size_t i = 0; i < n; i++) {
		/* 0xffff and 0xfffe stand for -1 and n_vocab: out of range. */
		unsigned v = (unsigned)p[2 * i] | (unsigned)p[2 * i + 1] << 8;
		ids[i] = v == 0xffff ? -1 : v == 0xfffe ? nv : (int32_t)(v % (unsigned)nv);
		bad |= ids[i] < 0 || ids[i] >= nv;
	}
	if (bad) {
		char out[MLLM_DETOK_MAX];
		mllm_detok d;
		size_t got = 0;
		int rc = 0;
		char *big = malloc(32 * n + 64);
		FUZZ_CHECK(big);
		FUZZ_CHECK(mllm_tokenizer_decode(tok, ids, n, big, 32 * n + 64, &got) ==
		           MLLM_ERANGE);
		free(big);
		mllm_detok_init(&d, tok);
		for (size_t i = 0; i < n && rc >= 0; i++)
			rc = mllm_detok_push(&d, ids[i], out, sizeof out);
		FUZZ_CHECK(rc < 0);
		free(ids);
		return;
	}
	dec = decode_checked(ids, n, &len);
	free(dec);
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_ids(data + 1, size - 1);
	else
		fuzz_text((const char *)data + 1, size - 1);
	return 0;
}
