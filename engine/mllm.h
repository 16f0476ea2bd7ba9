/*
 * mllm.h — the one public header of the MobileLLM engine.
 *
 * The engine loads MobileLLM / Llama checkpoints, tokenizes, runs batched
 * forward passes over a paged KV cache and schedules many requests on one
 * engine thread per model. It knows nothing of HTTP, JSON or event loops: the
 * daemon (server/) and the protocol layer (api/) see only what is declared
 * here: errors, logging and the OOM handler (mllm_core.h), the tokenizer,
 * model loading, the request API of the scheduler, and the evaluator
 * that scores text (perplexity). Each section lives in
 * its module's header, included below, so that its contract sits next to its
 * implementation. The KV cache, the forward pass, the sampler and the
 * kernels are engine-internal (forward.h, sampler.h, kernels.h, ...): bench/
 * and tests/ may include them, server/ and api/ do not.
 *
 * Conventions (for every function declared through this header):
 * - Fallible functions return int: 0 (MLLM_OK) or a negative MLLM_E* code.
 *   Constructors fill `T **out` and leave it NULL on failure. Where a message
 *   matters (file parsing) they also take `char *err, size_t errlen` and write
 *   a NUL-terminated sentence naming the file and the problem.
 * - `_free` / `_close` accept NULL. Ownership is stated per function; inputs
 *   are borrowed unless the name says `_take`.
 * - Nothing in the engine prints or exits; it logs through mllm_log_set().
 */
#ifndef MLLM_H
#define MLLM_H

#include "mllm_core.h" /* errors, log sink, OOM handler */
#include "tokenizer.h" /* tokenizer, incremental detokenizer */
#include "model.h"     /* checkpoint loading: HF dir, pytorch .bin, GGUF */
#include "grammar.h"   /* byte grammars for constrained decoding */
#include "scheduler.h" /* engine thread, requests, sampling parameters */
#include "eval.h"      /* scoring windows of text (perplexity, KL) */

#endif /* MLLM_H */
