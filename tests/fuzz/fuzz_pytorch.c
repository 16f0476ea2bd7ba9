/*
 * fuzz_pytorch.c — engine/pytorch.c: the zip container (local and central
 * headers, stored entries, ZIP64), the pickle virtual machine behind
 * data.pkl (opcodes, memo, persistent ids, _rebuild_tensor_v2) and every
 * storage's bounds.
 * Any bytes either load or fail with a message; what loads indexes (or is
 * refused for duplicate names), every tensor is found by its name, its
 * shape and size agree, and its data lies inside the mapping.
 */
#include "fuzz.h"

#include "loader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[256];
	mllm__tset ts;
	int fd = fuzz_memfile(data, size, path, sizeof path);
	if (fd < 0)
		return 0;
	err[0] = '\0';
	mllm__tset_init(&ts);
	if (mllm__pytorch_load(&ts, path, err, sizeof err) != 0) {
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
