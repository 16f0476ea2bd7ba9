/*
 * sampler.h — the sampler and the stop-string matcher (engine-internal: the
 * scheduler, tests and benches include it). The parameters they implement,
 * mllm_sampling, are public and live in scheduler.h with the request API.
 */
#ifndef MLLM_SAMPLER_H
#define MLLM_SAMPLER_H

#include "mllm.h"

/* ---- The sampler ---------------------------------------------------------
 *
 * An mllm_sampler is the per-choice state of one completion: its own copy of
 * the parameters (logit_bias deep-copied), its RNG and its penalty counts.
 * Scratch that is as large as the vocabulary lives in an mllm_sampler_ws
 * shared by every sampler of one thread (the engine thread), so a running
 * sequence costs O(tokens generated), not O(vocabulary), in memory.
 * Neither object is thread-safe; each belongs to one thread at a time.
 *
 * Semantics (see docs/scheduler.md):
 * - logprobs are the log-softmax of the model's raw logits, before
 *   logit_bias, penalties and temperature (what vLLM reports by default);
 * - logit_bias is added to the logit; a bias of -100 bans the token outright;
 * - penalties follow OpenAI: logit[j] -= frequency_penalty * c[j] +
 *   presence_penalty * (c[j] > 0), c counting generated tokens only;
 * - temperature 0 is greedy (argmax after bias and penalties, lowest id on
 *   ties), and so is any temperature below 1e-5 (as vLLM); otherwise logits / T, then top_k, min_p,
 * top_p, then one draw;
 * - the RNG is xoshiro256** seeded from (seed, choice): a choice's samples
 *   depend only on its seed, prompt and parameters. */
typedef struct mllm_sampler mllm_sampler;
typedef struct mllm_sampler_ws mllm_sampler_ws;

/* Workspace for vocabularies up to n_vocab. NULL on allocation failure. */
mllm_sampler_ws *mllm_sampler_ws_create(int32_t n_vocab);
void mllm_sampler_ws_free(mllm_sampler_ws *ws);

/* Checks p against a vocabulary: MLLM_EINVAL for values out of the ranges
 * documented on mllm_sampling (temperature < 0, top_p outside (0, 1], bias id
 * outside the vocabulary or bias outside -100..100, logprobs > 20, ...). */
int mllm_sampling_validate(const mllm_sampling *p, int32_t n_vocab) MLLM_WUR;

/* A sampler for choice `choice` of a request. Without p->has_seed the seed
 * comes from the OS's random source. Stop strings are not the sampler's
 * business (see mllm_stop). MLLM_EINVAL (see validate), MLLM_ENOMEM. */
int mllm_sampler_create(const mllm_sampling *p, int32_t n_vocab, int32_t choice,
                        mllm_sampler **out) MLLM_WUR;
void mllm_sampler_free(mllm_sampler *s);

/* Result of one draw. logprob/top are filled when the sampling asked for
 * logprobs (p->logprobs >= 0): top holds min(p->logprobs, 20) entries, best
 * first. */
typedef struct {
	int32_t token;
	float logprob;
	int32_t n_top;
	mllm_top_logprob top[MLLM_MAX_TOP_LOGPROBS];
} mllm_sample_result;

/* Draws the next token from logits[n_vocab] (read only) and records it for
 * the penalties. Allocates nothing. */
void mllm_sampler_sample(mllm_sampler *s, mllm_sampler_ws *ws, const float *logits,
                         mllm_sample_result *out);

/* The same with a grammar's mask: allow is a bitset of n_vocab bits (bit i
 * of word i / 32; NULL = every token). A token outside it gets -inf before
 * bias, penalties and temperature, and is never drawn unless the mask
 * allows nothing (then the raw argmax, as when everything is banned). */
void mllm_sampler_sample_masked(mllm_sampler *s, mllm_sampler_ws *ws, const float *logits,
                                const uint32_t *allow, mllm_sample_result *out);

/* Log-softmax helpers on raw logits[n_vocab]: the log-probability of `id`,
 * and the n best tokens (n <= 20) written to top, best first. Used for the
 * prompt logprobs of echo. Allocates nothing. */
float mllm_logprob_of(const float *logits, int32_t n_vocab, int32_t id);
int32_t mllm_logprob_top(const float *logits, int32_t n_vocab, int32_t n, mllm_top_logprob *top);

/* ---- Stop sequences (stop.c) -------------------------------------------
 *
 * Matches up to MLLM_MAX_STOP stop strings on the text of a choice as it is
 * released token by token. Text that might be the start of a stop string is
 * held back until it is known not to be; the stop string itself and anything
 * after it are never released. Bytes are compared exactly; text fed in is
 * expected to be whole UTF-8 characters (mllm_detok output), and a hold-back
 * never splits a character. */
typedef struct {
	char *stop[MLLM_MAX_STOP];
	size_t stop_len[MLLM_MAX_STOP];
	int n_stop;
	size_t max_len; /* longest stop string */
	char *held;     /* text held back (a prefix of some stop string) */
	size_t n_held;
	char *out;    /* released text of the last push */
	size_t cap;   /* bytes in held and in out */
	bool matched; /* a stop string was found; nothing more is released */
	/* Set by the caller after init: a space that begins the text is
	 * released without being matched (a chat's "Assistant:" cue invites
	 * it and the response drops it, so no stop string may see it). */
	bool skip_lead_space;
} mllm_stop;

/* Copies the n NUL-terminated strings (empty strings are ignored). n must be
 * 0..MLLM_MAX_STOP. MLLM_EINVAL, MLLM_ENOMEM. */
int mllm_stop_init(mllm_stop *st, const char *const *stop, int n) MLLM_WUR;
void mllm_stop_free(mllm_stop *st);
/* Feeds len bytes; *out points to the text released now (into st, valid
 * until the next call) and the return value is its length. Once a stop
 * string matched, returns the text before it, sets st->matched and releases
 * nothing afterwards. MLLM_ENOMEM is impossible here: buffers grow with
 * xrealloc (small, bounded by the stop strings and one token's text). */
size_t mllm_stop_push(mllm_stop *st, const char *text, size_t len, const char **out);
/* At the end of a choice that did not match: releases what was held. */
size_t mllm_stop_flush(mllm_stop *st, const char **out);

#endif
