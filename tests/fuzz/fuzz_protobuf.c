/*
 * fuzz_protobuf.c — the SentencePiece ModelProto reader behind
 * mllm_tokenizer_load() (tokenizer.model: protobuf wire format, pieces,
 * scores, types, trainer/normalizer specs). Any bytes either load or fail
 * with a message; a tokenizer that loads must then encode and decode a few
 * texts (ASCII, bytes that need byte fallback, a piece that is not valid
 * UTF-8) without reading outside its tables, and give ids in range.
 */
#include "fuzz.h"

#include "mllm.h"

static void exercise(mllm_tokenizer *tok)
{
	static const char *const texts[] = {"Hello world", "\xe4\xbd\xa0\xff\x01 a", " ", ""};
	int32_t nv = mllm_tokenizer_n_vocab(tok);
	FUZZ_CHECK(nv > 0);
	for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
		size_t len = strlen(texts[t]), cap = mllm_tokenizer_max_ids(tok, len), n = 0,
		       dl = 0;
		int32_t *ids = malloc(cap * sizeof *ids);
		char out[512];
		FUZZ_CHECK(ids);
		if (mllm_tokenizer_encode(tok, texts[t], len, true, ids, cap, &n) == 0) {
			FUZZ_CHECK(n <= cap);
			for (size_t i = 0; i < n; i++)
				FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
			if (mllm_tokenizer_decode(tok, ids, n, out, sizeof out, &dl) == 0)
				FUZZ_CHECK(dl <= sizeof out);
		}
		free(ids);
	}
	/* Every id decodes (or fails) on its own, bounded by MLLM_DETOK_MAX. */
	for (int32_t id = 0; id < nv && id < 512; id++) {
		char out[MLLM_DETOK_MAX];
		mllm_detok d;
		size_t pl = 0;
		int k;
		FUZZ_CHECK(mllm_tokenizer_piece(tok, id, &pl) != NULL);
		(void)mllm_tokenizer_token_bytes(tok, id, out, sizeof out);
		mllm_detok_init(&d, tok);
		k = mllm_detok_push(&d, id, out, sizeof out);
		FUZZ_CHECK(k <= (int)sizeof out);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[256];
	mllm_tokenizer *tok = NULL;
	int fd = fuzz_memfile(data, size, path, sizeof path);
	if (fd < 0)
		return 0;
	err[0] = '\0';
	if (mllm_tokenizer_load(path, &tok, err, sizeof err) == 0) {
		FUZZ_CHECK(tok != NULL);
		exercise(tok);
		mllm_tokenizer_free(tok);
	} else {
		FUZZ_CHECK(tok == NULL && err[0] != '\0');
	}
	close(fd);
	return 0;
}
