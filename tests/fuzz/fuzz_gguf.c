/*
 * fuzz_gguf.c — engine/gguf.c (header, metadata key/values, tensor infos,
 * alignment, bounds of tensor data against the file) and the tokenizer
 * built from its tokenizer.ggml.* metadata (tokenizer.c). Any bytes either
 * open or fail with a message; an opened file's every key, array string and
 * tensor can be read, each tensor's data lies inside the mapping, and a
 * tokenizer built from it encodes and decodes without leaving its tables.
 */
#include "fuzz.h"

#include "gguf.h"
#include "mllm.h"

static void use_tokenizer(mllm_tokenizer *tok)
{
	static const char text[] = "Hello, w\xc3\xb6rld \xff!";
	size_t cap = mllm_tokenizer_max_ids(tok, sizeof text - 1), n = 0, dl = 0;
	int32_t *ids = malloc(cap * sizeof *ids), nv = mllm_tokenizer_n_vocab(tok);
	char out[512];
	FUZZ_CHECK(ids && nv > 0);
	if (mllm_tokenizer_encode(tok, text, sizeof text - 1, true, ids, cap, &n) == 0) {
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(ids[i] >= 0 && ids[i] < nv);
		if (mllm_tokenizer_decode(tok, ids, n, out, sizeof out, &dl) == 0)
			FUZZ_CHECK(dl <= sizeof out);
	}
	free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[256];
	mllm__gguf *g = NULL;
	mllm_tokenizer *tok = NULL;
	int fd = fuzz_memfile(data, size, path, sizeof path);
	if (fd < 0)
		return 0;
	err[0] = '\0';
	if (mllm__gguf_open(path, &g, err, sizeof err) != 0) {
		FUZZ_CHECK(g == NULL && err[0] != '\0');
		close(fd);
		return 0;
	}
	for (size_t i = 0; i < mllm__gguf_n_kv(g); i++) {
		const char *key;
		size_t klen;
		int type;
		char name[256];
		if (mllm__gguf_kv_at(g, i, &key, &klen, &type) != 0)
			continue;
		if (klen >= sizeof name || memchr(key, '\0', klen))
			continue;
		memcpy(name, key, klen);
		name[klen] = '\0';
		if (type == MLLM_GGUF_ARRAY) {
			int et;
			uint64_t n;
			const void *arr;
			if (mllm__gguf_get_arr(g, name, &et, &n, &arr) == 0 &&
			    et == MLLM_GGUF_STRING) {
				for (uint64_t k = 0; k < n && k < 64; k++) {
					const char *s;
					size_t sl;
					if (mllm__gguf_get_arr_str(g, name, k, &s, &sl) == 0)
						fuzz_touch(s, sl);
				}
			}
		} else if (type == MLLM_GGUF_STRING) {
			const char *s;
			size_t sl;
			if (mllm__gguf_get_str(g, name, &s, &sl) == 0)
				fuzz_touch(s, sl);
		} else {
			uint32_t u;
			int32_t v;
			float f;
			bool b;
			(void)mllm__gguf_get_u32(g, name, &u);
			(void)mllm__gguf_get_i32(g, name, &v);
			(void)mllm__gguf_get_f32(g, name, &f);
			(void)mllm__gguf_get_bool(g, name, &b);
		}
	}
	for (size_t i = 0; i < mllm__gguf_n_tensors(g); i++) {
		const mllm__gguf_tensor *t = mllm__gguf_tensor_at(g, i);
		FUZZ_CHECK(t && t->name);
		FUZZ_CHECK(t->n_dims >= 0 && t->n_dims <= 4);
		FUZZ_CHECK(mllm__gguf_tensor_find(g, t->name) != NULL);
		(void)mllm__gguf_type_name(t->ggml_type);
		/* The data is inside the file: touch its first and last byte. */
		FUZZ_CHECK(t->nbytes <= size);
		fuzz_touch(t->data, t->nbytes);
	}
	if (mllm__tokenizer_from_gguf(g, &tok, err, sizeof err) == 0) {
		use_tokenizer(tok);
		mllm_tokenizer_free(tok);
	}
	mllm__gguf_close(g);
	close(fd);
	return 0;
}
