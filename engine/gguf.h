/*
 * gguf.h — GGUF v3 reader (engine-internal). Owned by gguf.c.
 *
 * mllm__gguf_open() mmaps the file read-only and validates the whole header
 * before returning: every key/value, every string and array length, every
 * tensor's type, shape, alignment and data range against the file size
 * (overflow-safe). After that, lookups are plain pointer reads into the map.
 * The object is immutable and may be read from several threads.
 */
#ifndef MLLM_GGUF_H
#define MLLM_GGUF_H

#include "base.h"
#include "model.h"     /* mllm_dtype */
#include "tokenizer.h" /* mllm_tokenizer */

typedef enum {
	MLLM_GGUF_UINT8 = 0,
	MLLM_GGUF_INT8 = 1,
	MLLM_GGUF_UINT16 = 2,
	MLLM_GGUF_INT16 = 3,
	MLLM_GGUF_UINT32 = 4,
	MLLM_GGUF_INT32 = 5,
	MLLM_GGUF_FLOAT32 = 6,
	MLLM_GGUF_BOOL = 7,
	MLLM_GGUF_STRING = 8,
	MLLM_GGUF_ARRAY = 9,
	MLLM_GGUF_UINT64 = 10,
	MLLM_GGUF_INT64 = 11,
	MLLM_GGUF_FLOAT64 = 12,
} mllm__gguf_type;

typedef struct mllm__gguf mllm__gguf;

typedef struct {
	const char *name;   /* NUL-terminated copy */
	mllm_dtype dtype;   /* MLLM_DTYPE__COUNT if the file's type is one we
	                     * cannot compute with (reported at model load) */
	uint32_t ggml_type; /* the raw GGML type id */
	int n_dims;
	int64_t ne[4];    /* GGUF order: ne[0] is the innermost (columns) */
	const void *data; /* into the mapping */
	size_t nbytes;
} mllm__gguf_tensor;

int mllm__gguf_open(const char *path, mllm__gguf **out, char *err, size_t errlen) MLLM_WUR;
void mllm__gguf_close(mllm__gguf *g);
/* Hands the mapping over to the caller (model keeps it alive); after this,
 * mllm__gguf_close() frees only the index. */
void mllm__gguf_release_mapping(mllm__gguf *g, void **addr, size_t *size);

const char *mllm__gguf_path(const mllm__gguf *g);

/* Scalars. Integer getters accept any integer type whose value fits; they
 * return MLLM_ENOTFOUND (absent) or MLLM_EFORMAT (wrong type / range). */
int mllm__gguf_get_u32(const mllm__gguf *g, const char *key, uint32_t *out);
int mllm__gguf_get_i32(const mllm__gguf *g, const char *key, int32_t *out);
int mllm__gguf_get_f32(const mllm__gguf *g, const char *key, float *out);
int mllm__gguf_get_bool(const mllm__gguf *g, const char *key, bool *out);
/* String: pointer into the map, NOT NUL-terminated; length in *len. */
int mllm__gguf_get_str(const mllm__gguf *g, const char *key, const char **s, size_t *len);

/* Arrays. *elem_type is the element type; for numeric arrays *data points to
 * n packed little-endian elements (unaligned: read with memcpy). */
int mllm__gguf_get_arr(const mllm__gguf *g, const char *key, int *elem_type, uint64_t *n,
                       const void **data);
/* The i-th string of a string array (O(1): offsets are indexed at open). */
int mllm__gguf_get_arr_str(const mllm__gguf *g, const char *key, uint64_t i, const char **s,
                           size_t *len);

size_t mllm__gguf_n_tensors(const mllm__gguf *g);
/* Number of key/value pairs, the i-th key (not NUL-terminated) and type. */
size_t mllm__gguf_n_kv(const mllm__gguf *g);
int mllm__gguf_kv_at(const mllm__gguf *g, size_t i, const char **key, size_t *len, int *type);
/* GGML type name ("F32", "Q4_K", ...) or "unknown". */
const char *mllm__gguf_type_name(uint32_t ggml_type);
/* GGUF header version (2 or 3) and data alignment. */
uint32_t mllm__gguf_version(const mllm__gguf *g);
uint32_t mllm__gguf_alignment(const mllm__gguf *g);
const mllm__gguf_tensor *mllm__gguf_tensor_at(const mllm__gguf *g, size_t i);
const mllm__gguf_tensor *mllm__gguf_tensor_find(const mllm__gguf *g, const char *name);

/* Implemented in tokenizer.c: builds a tokenizer from tokenizer.ggml.*
 * metadata (model "llama" = SentencePiece BPE). */
int mllm__tokenizer_from_gguf(const mllm__gguf *g, mllm_tokenizer **out, char *err,
                              size_t errlen) MLLM_WUR;

#endif
