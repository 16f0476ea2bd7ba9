/*
 * golden.h — what the golden-output runners (test_demo_model, and the
 * matching pieces of test_forward) share: golden ids from a JSON array, one
 * sequence driven through mllm_forward() over its own KV cache and block
 * table, and the float64 log-sum-exp and argmax the logits are compared
 * with. Black-box (mllm.h, base.h, and the engine's JSON reader through
 * json_util.h); all static inline.
 */
#ifndef MLLM_TESTS_GOLDEN_H
#define MLLM_TESTS_GOLDEN_H

#include "forward.h"
#include "harness.h"
#include "json_util.h"

#include <math.h>

#include "base.h"
#include "mllm.h"

#define GOLDEN_TABLE_MAX 256 /* blocks one runner's table can name */

/* ids of a JSON array of integers; *n gets the count. Caller frees. */
static inline int32_t *golden_ids(const mllm__json *a, int *n)
{
	*n = (int)ju_len(a); /* asserts an array */
	int32_t *ids = xmallocarray((size_t)*n + 1, sizeof(int32_t));
	int i = 0;
	for (const mllm__json *v = a->child; v; v = v->next)
		ids[i++] = (int32_t)ju_int(v); /* asserts an integer */
	ck_assert_int_eq(i, *n);
	return ids;
}

/* ---- One sequence through mllm_forward ---------------------------------- */

typedef struct {
	mllm_model *m; /* not owned */
	mllm_kv *kv;
	mllm_ctx *ctx;
	int32_t table[GOLDEN_TABLE_MAX];
	int n_blocks; /* blocks of table[] allocated from kv */
	int32_t n_vocab;
} golden_runner;

/* A cache of kv_blocks blocks of 16 tokens, a context for batches of up to
 * max_tokens, and the first n_blocks entries of the table allocated. */
static inline void golden_runner_init(golden_runner *r, mllm_model *m, int max_tokens,
                                      int kv_blocks, int n_blocks, int kv_bits)
{
	/* kv_bits: 16 f16, 8 int8 with scales, anything else f32 */
	mllm_kv_params kp = {
	    .block_size = 16, .n_blocks = kv_blocks, .f16 = kv_bits == 16, .q8 = kv_bits == 8};
	memset(r, 0, sizeof *r);
	ck_assert_int_lt(n_blocks, GOLDEN_TABLE_MAX);
	r->m = m;
	r->n_vocab = mllm_model_hparams(m)->n_vocab;
	ck_assert_int_eq(mllm_kv_create(m, &kp, &r->kv), 0);
	ck_assert_int_eq(mllm_ctx_create(m, r->kv, max_tokens, 2, &r->ctx), 0);
	r->n_blocks = n_blocks;
	for (int i = 0; i < r->n_blocks; i++) {
		r->table[i] = mllm_kv_block_alloc(r->kv);
		ck_assert_int_ge(r->table[i], 0);
	}
}

/* Gives the table's blocks back (check_free: then every block of the cache
 * must be free) and frees context and cache; the model stays open. */
static inline void golden_runner_free(golden_runner *r, bool check_free)
{
	for (int i = 0; i < r->n_blocks; i++)
		mllm_kv_block_unref(r->kv, r->table[i]);
	if (check_free)
		ck_assert_int_eq(mllm_kv_n_free(r->kv), mllm_kv_n_blocks(r->kv));
	mllm_ctx_free(r->ctx);
	mllm_kv_free(r->kv);
}

/* Runs ids[0..n) at positions pos0..pos0+n-1; logits of every row. */
static inline void golden_runner_step(golden_runner *r, const int32_t *ids, int n, int pos0,
                                      float *logits)
{
	int32_t *pos = xmallocarray((size_t)n, sizeof(int32_t));
	int32_t *seq = xcalloc((size_t)n, sizeof(int32_t));
	bool *want = xmallocarray((size_t)n, sizeof(bool));
	const int32_t *tables[1] = {r->table};
	for (int i = 0; i < n; i++) {
		pos[i] = pos0 + i;
		want[i] = true;
	}
	mllm_batch b = {.n_tokens = n,
	                .token = ids,
	                .pos = pos,
	                .seq = seq,
	                .logits = want,
	                .n_seqs = 1,
	                .block_table = tables};
	ck_assert_int_eq(mllm_forward(r->ctx, &b, logits), 0);
	free(pos);
	free(seq);
	free(want);
}

/* ---- Comparing logits --------------------------------------------------- */

static inline double golden_logsumexp(const float *x, int n)
{
	double mx = -INFINITY, s = 0.0;
	for (int i = 0; i < n; i++)
		mx = fmax(mx, x[i]);
	for (int i = 0; i < n; i++)
		s += exp((double)x[i] - mx);
	return mx + log(s);
}

static inline int golden_argmax(const float *x, int n)
{
	int best = 0;
	for (int i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

#endif
