/*
 * eval.h — scoring text with a model: the logits of every position of a
 * window of tokens, for perplexity and for comparing numeric paths (KL
 * divergence against a reference). Part of the public API (included
 * through mllm.h): `mobilellmd perplexity` uses it.
 *
 * An evaluator is one sequence on the caller's thread, with its own KV pool
 * and forward context (it does not share the daemon's engine). Each window
 * starts a fresh sequence at position 0. Not thread-safe: one caller at a
 * time per evaluator; several evaluators may share one model.
 */
#ifndef MLLM_EVAL_H
#define MLLM_EVAL_H

#include "mllm_core.h"
#include "model.h"

typedef struct mllm_eval mllm_eval;

/* An evaluator for windows of up to n_ctx tokens (0 = the model's trained
 * context; more than that, or < 2, is MLLM_EINVAL), its KV cache stored
 * with kv_bits 32 (f32), 16 (f16) or 8 (int8 with scales), n_threads as
 * mllm_engine_params' (0 = physical cores). MLLM_EINVAL / MLLM_ENOMEM with
 * a sentence in err. m is borrowed. */
int mllm_eval_create(const mllm_model *m, int32_t n_ctx, int n_threads, int kv_bits,
                     mllm_eval **out, char *err, size_t errlen) MLLM_WUR;
void mllm_eval_free(mllm_eval *ev);
int32_t mllm_eval_n_ctx(const mllm_eval *ev);

/* Runs ids[0..n) (2 <= n <= n_ctx, each id < n_vocab) as a fresh sequence
 * and writes the logits of rows first..n-1 to logits, n_vocab floats per
 * row in order (row i predicts ids[i + 1]): n - first rows, 0 <= first < n.
 * MLLM_EINVAL for arguments out of range. */
int mllm_eval_window(mllm_eval *ev, const int32_t *ids, int32_t n, int32_t first,
                     float *logits) MLLM_WUR;

#endif
