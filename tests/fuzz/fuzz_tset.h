/*
 * fuzz_tset.h — the body shared by the checkpoint-reader harnesses
 * (fuzz_safetensors.c, fuzz_pytorch.c): both readers fill an mllm__tset
 * from a path, so both are held to the same contract. Any bytes either load
 * or fail with a message; what loads indexes (or is refused, with a
 * message, for duplicate names), every tensor is found by its name, its
 * shape and byte size agree, and its data lies inside the mapping.
 */
#ifndef MLLM_FUZZ_TSET_H
#define MLLM_FUZZ_TSET_H

#include "fuzz.h"

#include "loader.h"

typedef int (*fuzz_tset_loader)(mllm__tset *ts, const char *path, char *err, size_t errlen);

static inline int fuzz_tset_one(fuzz_tset_loader load, const uint8_t *data, size_t size)
{
	char path[64], err[256];
	mllm__tset ts;
	int fd = fuzz_memfile(data, size, path, sizeof path);
	if (fd < 0)
		return 0;
	err[0] = '\0';
	mllm__tset_init(&ts);
	if (load(&ts, path, err, sizeof err) != 0) {
		FUZZ_CHECK(err[0] != '\0');
	} else if (mllm__tset_index(&ts, err, sizeof err) == 0) {
		for (size_t i = 0; i < ts.n; i++) {
			const mllm__ltensor *t = &ts.t[i];
			uint64_t n = 1;
			size_t nb;
			FUZZ_CHECK(t->name && mllm__tset_find(&ts, t->name) == t);
			FUZZ_CHECK(t->n_dims >= 0 && t->n_dims <= MLLM__MAX_DIMS);
			for (int d = 0; d < t->n_dims; d++) {
				FUZZ_CHECK(t->shape[d] >= 0);
				n *= (uint64_t)t->shape[d];
			}
			if (t->dtype != MLLM_DTYPE__COUNT &&
			    mllm__dtype_nbytes(t->dtype, n, &nb) == 0)
				FUZZ_CHECK(nb == t->nbytes);
			FUZZ_CHECK(t->nbytes <= size);
			fuzz_touch(t->data, t->nbytes);
		}
	} else {
		FUZZ_CHECK(err[0] != '\0');
	}
	mllm__tset_free(&ts);
	close(fd);
	return 0;
}

#endif
