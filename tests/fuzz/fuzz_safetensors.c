/*
 * fuzz_safetensors.c — engine/safetensors.c: the 8-byte header length, the
 * JSON header (dtype, shape, data_offsets, __metadata__) and every tensor's
 * bounds against the file, held to the checkpoint-reader contract in
 * fuzz_tset.h.
 */
#include "fuzz_tset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_tset_one(mllm__safetensors_load, data, size);
}
