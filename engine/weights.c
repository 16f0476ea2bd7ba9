/*
 * weights.c — the storage a loaded model owns: read-only mappings of its
 * files and buffers of converted or re-laid tensors, released together by
 * mllm_model_close(). Both model.c (loading) and prepare.c (conversion) hand
 * storage over through here, so neither depends on the other for it.
 */
#include "weights.h"

#include <stdlib.h>

void mllm__model_own(mllm_model *m, void *buf)
{
	m->owned = xrealloc(m->owned, sizeof *m->owned * (size_t)(m->n_owned + 1));
	m->owned[m->n_owned++] = buf;
}

void mllm__model_add_mapping(mllm_model *m, void *addr, size_t size)
{
	m->maps = xrealloc(m->maps, sizeof *m->maps * (size_t)(m->n_maps + 1));
	m->maps[m->n_maps].addr = addr;
	m->maps[m->n_maps].size = size;
	m->n_maps++;
}
