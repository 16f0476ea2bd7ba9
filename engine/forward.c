/*
 * forward.c — placeholder until the forward pass lands.
 */
#include "weights.h"

int mllm__model_prepare(mllm_model *m, const mllm_model_params *p, char *err,
			size_t errlen)
{
	(void)m;
	(void)p;
	(void)err;
	(void)errlen;
	return 0;
}
