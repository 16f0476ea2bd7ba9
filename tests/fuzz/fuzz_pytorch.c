/*
 * fuzz_pytorch.c — engine/pytorch.c: the zip container (local and central
 * headers, stored entries, ZIP64), the pickle virtual machine behind
 * data.pkl (opcodes, memo, persistent ids, _rebuild_tensor_v2) and every
 * storage's bounds, held to the checkpoint-reader contract in fuzz_tset.h.
 */
#include "fuzz_tset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_tset_one(mllm__pytorch_load, data, size);
}
