/*
 * forward.h — the paged KV cache and the batched forward pass.
 * Engine-internal: the scheduler drives it; bench/ and tests/ may include
 * it, server/ and api/ do not (they submit requests, see scheduler.h).
 *
 * One mllm_forward() call computes a batch of tokens from several sequences
 * at once (prefill chunks mixed with single decode tokens). Each token names
 * its sequence and position; K/V are written into that sequence's blocks and
 * attention reads positions 0..pos of the same sequence from the cache.
 * This is the unit the scheduler drives once per step.
 */
#ifndef MLLM_FORWARD_H
#define MLLM_FORWARD_H

#include "mllm.h" /* mllm_model, mllm_kv_params */

/* ---- Paged KV cache ---------------------------------------------------- */

typedef struct mllm_kv mllm_kv;

/* One preallocated pool; a block holds K and V for block_size tokens of every
 * layer run (n_head_kv x head_dim each). Not thread-safe: owned by one engine
 * thread. */
int mllm_kv_create(const mllm_model *m, const mllm_kv_params *p, mllm_kv **out) MLLM_WUR;
void mllm_kv_free(mllm_kv *kv);

int32_t mllm_kv_block_size(const mllm_kv *kv);
int64_t mllm_kv_n_blocks(const mllm_kv *kv);
int64_t mllm_kv_n_free(const mllm_kv *kv);
size_t mllm_kv_bytes_per_block(const mllm_kv *kv);
/* Takes a free block with refcount 1; -1 when the pool is empty. */
int32_t mllm_kv_block_alloc(mllm_kv *kv);
void mllm_kv_block_ref(mllm_kv *kv, int32_t block);
/* Drops a reference; the block returns to the pool at zero. */
void mllm_kv_block_unref(mllm_kv *kv, int32_t block);
int32_t mllm_kv_block_refcount(const mllm_kv *kv, int32_t block);
/* Copies the first n_tokens token slots of src into dst (copy-on-write). */
void mllm_kv_block_copy(mllm_kv *kv, int32_t dst, int32_t src, int32_t n_tokens);

/* ---- Forward pass ------------------------------------------------------ */

typedef struct {
	int32_t n_tokens;
	const int32_t *token; /* [n_tokens] */
	const int32_t *pos;   /* [n_tokens] position in its sequence */
	const int32_t *seq;   /* [n_tokens] index into block_table[] */
	const bool *logits;   /* [n_tokens] compute logits for this row */
	int32_t n_seqs;
	/* [n_seqs] block tables: block_table[s][pos / block_size] must be a
	 * valid block for every position the batch writes or reads. */
	const int32_t *const *block_table;
} mllm_batch;

typedef struct mllm_ctx mllm_ctx;

/* Scratch for batches of up to n_batch_max tokens, and the worker pool
 * (n_threads - 1 threads beside the caller's, started here and joined by
 * mllm_ctx_free()). All buffers are allocated here, once; mllm_forward()
 * allocates nothing. n_threads 0 = the model's default (its n_threads, else
 * the physical cores). kv must have been created for the same model (same
 * layer runs and KV width): MLLM_EINVAL otherwise. The ctx borrows m and kv,
 * which must outlive it. One ctx per engine thread. */
int mllm_ctx_create(const mllm_model *m, mllm_kv *kv, int32_t n_batch_max, int n_threads,
                    mllm_ctx **out) MLLM_WUR;
void mllm_ctx_free(mllm_ctx *ctx);

/* Runs the batch. logits receives, for each row with logits[i] set, in
 * batch order, n_vocab floats (b->logits may be NULL: no rows). Returns
 * MLLM_EINVAL for a malformed batch (token/position out of range — positions
 * must be < n_ctx_train —, sequence index out of range, a block of 0..pos
 * missing or not allocated, more than n_batch_max tokens, rows wanting
 * logits with logits == NULL) without touching the cache, MLLM_ECANCELLED if
 * the abort callback fired (the cache then holds K/V of the batch for some
 * layer runs only: recompute those positions).
 * Each row's result is independent of the rest of the batch (up to float
 * rounding, < 1e-4 on logits). Positions 0..pos-1 of a token's sequence
 * must have been written by earlier batches or earlier rows; two rows of a
 * batch must not write the same (sequence, position). Writing into a block
 * shared with another sequence is the caller's to avoid
 * (mllm_kv_block_copy first). Allocates nothing. Not thread-safe per ctx. */
int mllm_forward(mllm_ctx *ctx, const mllm_batch *b, float *logits) MLLM_WUR;

/* Checked between layers; returning true aborts the pass. */
void mllm_ctx_set_abort(mllm_ctx *ctx, bool (*fn)(void *ud), void *ud);
/* Layer runs whose attention took the split-K path (a few long sequences
 * on several threads) since the context was created. */
int64_t mllm_ctx_split_runs(const mllm_ctx *ctx);

#endif
