/*
 * eval.c — the evaluator of eval.h: a KV pool sized for one window and a
 * forward context, driven in chunks of up to EVAL_BATCH tokens.
 */
#include "eval.h"

#include <stdlib.h>

#include "base.h"
#include "forward.h"

#define EVAL_BATCH 512
#define EVAL_BLOCK 16

struct mllm_eval {
	const mllm_model *m;
	mllm_kv *kv;
	mllm_ctx *ctx;
	int32_t n_ctx, n_vocab, n_blocks;
	int32_t *blocks; /* the one sequence's block table */
	int32_t *pos, *seq;
	bool *want;
};

void mllm_eval_free(mllm_eval *ev)
{
	if (!ev)
		return;
	mllm_ctx_free(ev->ctx);
	mllm_kv_free(ev->kv);
	free(ev->blocks);
	free(ev->pos);
	free(ev->seq);
	free(ev->want);
	free(ev);
}

int mllm_eval_create(const mllm_model *m, int32_t n_ctx, int n_threads, int kv_bits,
                     mllm_eval **out, char *err, size_t errlen)
{
	const mllm_hparams *hp = mllm_model_hparams(m);
	mllm_kv_params kp = {.block_size = EVAL_BLOCK, .f16 = kv_bits == 16, .q8 = kv_bits == 8};
	mllm_eval *ev;
	int32_t nb;
	int rc;
	*out = NULL;
	if (n_ctx == 0)
		n_ctx = hp->n_ctx_train;
	if (n_ctx < 2 || n_ctx > hp->n_ctx_train) {
		mllm__seterr(err, errlen, MLLM_EINVAL,
		             "eval: a window of %d tokens (the model was trained for 2..%d)",
		             (int)n_ctx, (int)hp->n_ctx_train);
		return MLLM_EINVAL;
	}
	nb = n_ctx < EVAL_BATCH ? n_ctx : EVAL_BATCH;
	ev = mllm_try_calloc(1, sizeof *ev);
	if (!ev)
		goto nomem;
	ev->m = m;
	ev->n_ctx = n_ctx;
	ev->n_vocab = hp->n_vocab;
	ev->n_blocks = (n_ctx + EVAL_BLOCK - 1) / EVAL_BLOCK;
	kp.n_blocks = ev->n_blocks;
	ev->blocks = mllm_try_malloc((size_t)ev->n_blocks * sizeof *ev->blocks);
	ev->pos = mllm_try_malloc((size_t)nb * sizeof *ev->pos);
	ev->seq = mllm_try_calloc((size_t)nb, sizeof *ev->seq);
	ev->want = mllm_try_calloc((size_t)nb, sizeof *ev->want);
	if (!ev->blocks || !ev->pos || !ev->seq || !ev->want)
		goto nomem;
	rc = mllm_kv_create(m, &kp, &ev->kv);
	if (rc) {
		mllm__seterr(err, errlen, rc, "eval: cannot create the KV cache: %s",
		             mllm_strerror(rc));
		mllm_eval_free(ev);
		return rc;
	}
	for (int32_t i = 0; i < ev->n_blocks; i++)
		ev->blocks[i] = mllm_kv_block_alloc(ev->kv);
	rc = mllm_ctx_create(m, ev->kv, nb, n_threads, &ev->ctx);
	if (rc) {
		mllm__seterr(err, errlen, rc, "eval: cannot create the forward context: %s",
		             mllm_strerror(rc));
		mllm_eval_free(ev);
		return rc;
	}
	*out = ev;
	return MLLM_OK;
nomem:
	mllm_eval_free(ev);
	mllm__seterr(err, errlen, MLLM_ENOMEM, "eval: out of memory");
	return MLLM_ENOMEM;
}

int32_t mllm_eval_n_ctx(const mllm_eval *ev)
{
	return ev->n_ctx;
}

int mllm_eval_window(mllm_eval *ev, const int32_t *ids, int32_t n, int32_t first, float *logits)
{
	const int32_t *table = ev->blocks;
	int32_t step = ev->n_ctx < EVAL_BATCH ? ev->n_ctx : EVAL_BATCH;
	if (n < 2 || n > ev->n_ctx || first < 0 || first >= n)
		return MLLM_EINVAL;
	for (int32_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= ev->n_vocab)
			return MLLM_EINVAL;
	for (int32_t at = 0; at < n; at += step) {
		int32_t k = n - at < step ? n - at : step, rows = 0;
		mllm_batch b = {.n_tokens = k,
		                .token = ids + at,
		                .pos = ev->pos,
		                .seq = ev->seq,
		                .logits = ev->want,
		                .n_seqs = 1,
		                .block_table = &table};
		int rc;
		for (int32_t i = 0; i < k; i++) {
			ev->pos[i] = at + i;
			ev->want[i] = at + i >= first;
			rows += ev->want[i];
		}
		rc = mllm_forward(ev->ctx, &b, rows ? logits : NULL);
		if (rc)
			return rc;
		logits += (size_t)rows * (size_t)ev->n_vocab;
	}
	return MLLM_OK;
}
