/*
 * loader.h — what the checkpoint readers hand to model.c (engine-internal).
 * Implemented by loader.c; used by the format readers (safetensors.c,
 * pytorch.c, gguf.c) and by model.c, which turns a set into a model.
 *
 * Every reader appends named tensors, in PyTorch order (shape[0] outermost,
 * row-major, contiguous), to one mllm__tset. The set owns the read-only
 * mappings the tensor data points into until model.c hands them to the
 * model, and it names the file each tensor came from so that any later
 * complaint about a tensor can name its file too.
 */
#ifndef MLLM_LOADER_H
#define MLLM_LOADER_H

#include "base.h"
#include "weights.h"

#define MLLM__MAX_DIMS 4

typedef struct {
	char *name;         /* owned */
	mllm_dtype dtype;   /* MLLM_DTYPE__COUNT: a type we cannot compute with */
	char type_name[16]; /* the file's own name for the type, for messages */
	int n_dims;
	int64_t shape[MLLM__MAX_DIMS]; /* PyTorch order */
	const void *data;              /* into a mapping of the set */
	size_t nbytes;
	int file; /* index into tset.files */
} mllm__ltensor;

typedef struct {
	mllm__ltensor *t;
	size_t n, cap;
	char **files; /* owned paths */
	int n_files;
	mllm__mapping *maps; /* owned mappings (munmap at free) */
	int n_maps;
	bool sorted;
} mllm__tset;

void mllm__tset_init(mllm__tset *ts);
/* Unmaps whatever the set still owns and frees it all. */
void mllm__tset_free(mllm__tset *ts);
/* Registers a file; returns its index. */
int mllm__tset_add_file(mllm__tset *ts, const char *path);
void mllm__tset_add_map(mllm__tset *ts, void *addr, size_t size);
/* Appends a tensor (name copied); returns it for the caller to fill. */
mllm__ltensor *mllm__tset_add(mllm__tset *ts, const char *name, size_t name_len, int file);
/* Sorts by name and rejects duplicates (MLLM_EFORMAT naming both files). */
int mllm__tset_index(mllm__tset *ts, char *err, size_t errlen) MLLM_WUR;
/* Binary search after mllm__tset_index(); NULL when absent. */
const mllm__ltensor *mllm__tset_find(const mllm__tset *ts, const char *name);

/* Bytes of n elements of t (n a multiple of 32 for quantized types);
 * returns 1 on overflow or a bad multiple. */
int mllm__dtype_nbytes(mllm_dtype t, uint64_t n, size_t *out);

/* mmaps a whole file read-only (MAP_PRIVATE). An empty file maps to a
 * zero-size NULL mapping. Errors name the file. */
int mllm__map_file(const char *path, void **addr, size_t *size, char *err, size_t errlen) MLLM_WUR;
/* Reads a whole (small) file into a NUL-terminated buffer of at most
 * max bytes. MLLM_ENOTFOUND when it does not exist. */
int mllm__read_file(const char *path, size_t max, char **out, size_t *len, char *err,
                    size_t errlen) MLLM_WUR;

/* safetensors.c: maps `path` and appends its tensors (F32/F16/BF16; others
 * fail with MLLM_EUNSUPPORTED naming the tensor and the dtype). */
int mllm__safetensors_load(mllm__tset *ts, const char *path, char *err, size_t errlen) MLLM_WUR;
/* pytorch.c: maps a torch.save zip (pytorch_model.bin) and appends the
 * tensors of its state dict. */
int mllm__pytorch_load(mllm__tset *ts, const char *path, char *err, size_t errlen) MLLM_WUR;

#endif
