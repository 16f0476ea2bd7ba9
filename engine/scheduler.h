/*
 * scheduler.h — the server engine: one thread per resident model that owns the
 * KV pool and runs continuous batching; requests in, events out.
 * Part of the public API (included through mllm.h), with the sampling
 * parameters a request carries.
 *
 * Threading contract: mllm_engine_* and mllm_request_* functions are safe to
 * call from any thread (the HTTP loop thread in practice). All model math runs
 * on the engine's own thread. When a request has new events the engine calls
 * params.notify (from the engine thread); notifications coalesce, and the
 * consumer drains with mllm_request_poll() until it returns 0.
 */
#ifndef MLLM_SCHEDULER_H
#define MLLM_SCHEDULER_H

#include "mllm_core.h"
#include "grammar.h"
#include "model.h"

/* ---- Sampling parameters (OpenAI semantics: see sampler.h and
 * docs/scheduler.md). mllm_sampling is a transparent value type: api/ fills
 * it from a request, the scheduler copies it (deep) at submission. ------- */

#define MLLM_MAX_STOP         4  /* OpenAI: up to 4 stop sequences */
#define MLLM_MAX_TOP_LOGPROBS 20 /* chat top_logprobs bound */

typedef struct {
	int32_t id;
	float bias; /* -100..100; -100 bans, +100 all but forces */
} mllm_logit_bias;

typedef struct {
	float temperature;                 /* 0 = greedy (default 1) */
	float top_p;                       /* (0, 1], default 1 */
	int32_t top_k;                     /* 0 = off (extension) */
	float min_p;                       /* 0 = off (extension) */
	float presence_penalty;            /* -2..2 */
	float frequency_penalty;           /* -2..2 */
	const mllm_logit_bias *logit_bias; /* borrowed until submit copies */
	int32_t n_logit_bias;
	bool has_seed;
	uint64_t seed;
	int32_t logprobs;        /* -1 = none; else top-N alternatives (0..20) */
	bool echo_logprobs;      /* also compute the prompt tokens' logprobs */
	int32_t max_tokens;      /* >= 0; 0 = only echo / prompt logprobs */
	const char *const *stop; /* [n_stop] NUL-terminated, borrowed */
	int32_t n_stop;
	bool ignore_eos;
	/* The output's leading space is not matched against stop strings
	 * (a chat whose cue invites a space the response drops). */
	bool stop_skip_lead_space;
	/* Constrained decoding: only tokens that keep the output inside this
	 * grammar are sampled, EOS only where it may end (grammar.h). NULL =
	 * none. Borrowed; mllm_engine_submit takes its own reference. */
	mllm_grammar *grammar;
} mllm_sampling;

#define MLLM_SAMPLING_DEFAULT                                                                      \
	((mllm_sampling){.temperature = 1.0f,                                                      \
	                 .top_p = 1.0f,                                                            \
	                 .top_k = 0,                                                               \
	                 .min_p = 0.0f,                                                            \
	                 .logprobs = -1,                                                           \
	                 .max_tokens = 16})

/* One token's log-probability (also used by scheduler.h's events). */
typedef struct {
	int32_t id;
	float logprob;
} mllm_top_logprob;

/* ---- Defaults and bounds ---------------------------------------------------
 * The one definition of each: the engine applies them to zero fields, the
 * daemon's config table (server/config.c) takes its defaults and bounds from
 * them, and the docs are checked against that table (tests/server). */
#define MLLM_KV_BLOCK_SIZE_DEFAULT    16   /* tokens per KV block */
#define MLLM_KV_BLOCK_SIZE_MAX        1024 /* bound of kv_block_size */
#define MLLM_MAX_BATCH_TOKENS_DEFAULT 512  /* tokens per engine step */
#define MLLM_MAX_RUNNING_DEFAULT      64   /* sequences decoding at once */
#define MLLM_MAX_QUEUE_DEFAULT        64   /* waiting requests before EOVERLOADED */

/* ---- KV pool parameters (the pool itself is engine-internal) ------------ */

typedef struct {
	int32_t block_size; /* tokens per block: 0 = MLLM_KV_BLOCK_SIZE_DEFAULT,
	                     * at most MLLM_KV_BLOCK_SIZE_MAX */
	int64_t n_blocks;   /* blocks in the pool; 0 = derive from max_bytes */
	size_t max_bytes;   /* pool budget when n_blocks == 0 */
	bool f16;           /* store K/V as f16 (default f32) */
	bool q8;            /* store K/V as int8 with an f32 scale per token and
	                     * KV head (overrides f16) */
} mllm_kv_params;

/* The pool those parameters give a model of shape hp, without allocating
 * it: *n_blocks blocks, *bytes bytes of K/V (the daemon's --check-config
 * weighs it against the machine's memory). MLLM_ERANGE where the pool
 * would be empty or too large to address, MLLM_EINVAL for a bad shape. */
int mllm_kv_pool_size(const mllm_hparams *hp, const mllm_kv_params *p, int64_t *n_blocks,
                      size_t *bytes) MLLM_WUR;

/* ---- The engine and its requests ----------------------------------------- */

typedef struct mllm_engine mllm_engine;
typedef struct mllm_request mllm_request;

typedef struct {
	int32_t n_ctx;            /* max prompt + completion tokens; 0 = the
	                           * model's trained context; more than that
	                           * fails mllm_engine_create (MLLM_EINVAL) */
	mllm_kv_params kv;        /* pool size and layout */
	int n_threads;            /* 0 = physical cores */
	int32_t max_batch_tokens; /* tokens per step (prefill chunking) */
	int32_t max_running;      /* sequences decoding at once */
	int32_t max_queue;        /* waiting requests before MLLM_EOVERLOADED */
	/* (0 in any of these three selects its MLLM_*_DEFAULT above) */
	int32_t session_ttl_ms;   /* how long a named session's prefix is pinned */
	bool prefix_cache;        /* reuse full blocks across requests (true) */
	void (*notify)(void *ud); /* called on the engine thread; must not block */
	void *notify_ud;
	const char *name; /* names the engine in its log line (the daemon's
	                   * model id); NULL = the model's path. Read only
	                   * during mllm_engine_create. */
} mllm_engine_params;

/* Starts the engine thread for model m (borrowed; must outlive the engine). */
int mllm_engine_create(const mllm_model *m, const mllm_engine_params *p, mllm_engine **out,
                       char *err, size_t errlen) MLLM_WUR;
/* Cancels everything still running, joins the thread, frees. Requests not yet
 * released stay valid (they end with MLLM_ESHUTDOWN) until released. */
void mllm_engine_free(mllm_engine *e);

typedef struct {
	const int32_t *prompt; /* token ids, used verbatim (BOS included) */
	size_t n_prompt;
	int32_t n_choices;      /* OpenAI n: completions sharing the prompt */
	mllm_sampling sampling; /* deep-copied at submit */
	const char *session_id; /* optional: pin this prefix for session_ttl */
	void *user;             /* opaque, returned by mllm_request_user() */
} mllm_submit;

/* Validates and enqueues. Errors: MLLM_EINVAL (bad params or token ids),
 * MLLM_ETOOLONG (prompt + max_tokens > n_ctx), MLLM_EOVERLOADED (queue
 * full), MLLM_ESHUTDOWN. On success the caller holds one reference to *out
 * and must mllm_request_release() it, finished or not. */
int mllm_engine_submit(mllm_engine *e, const mllm_submit *s, mllm_request **out) MLLM_WUR;

/* Asks the engine to stop the request; its blocks are freed within one step.
 * The request then ends with an MLLM_EV_DONE whose finish is
 * MLLM_FINISH_CANCELLED. Idempotent. */
void mllm_request_cancel(mllm_request *r);
/* Drops the caller's reference (cancels first if still running). */
void mllm_request_release(mllm_request *r);
void *mllm_request_user(const mllm_request *r);

typedef enum {
	MLLM_FINISH_NONE = 0,
	MLLM_FINISH_STOP,   /* EOS or a stop sequence */
	MLLM_FINISH_LENGTH, /* max_tokens or context end */
	MLLM_FINISH_CANCELLED,
	MLLM_FINISH_ERROR,
} mllm_finish;

typedef enum {
	MLLM_EV_TOKEN = 1, /* text (may be empty while held back) + logprobs */
	MLLM_EV_PROMPT,    /* echo: one prompt token's logprob (first has none);
	                    * sent once per request, with choice 0 */
	MLLM_EV_DONE,      /* one choice finished; usage filled. Its text holds
	                    * whatever was still held back when the choice
	                    * ended (a partial stop match that never completed,
	                    * trailing bytes): usually empty, append it. EOS is
	                    * counted in n_completion_tokens but never sent as
	                    * a TOKEN. */
	MLLM_EV_ERROR,     /* the request failed; err set; no more events */
} mllm_event_kind;

typedef struct {
	mllm_event_kind kind;
	int32_t choice; /* 0..n_choices-1 */
	int32_t token;  /* the sampled (or prompt) token */
	/* Text this token releases: whole UTF-8, never part of a stop string;
	 * may be empty (held back) or hold text of earlier tokens. Points into
	 * the event; valid until the next poll/release on this request. */
	const char *text;
	size_t text_len;
	/* Raw bytes of this token alone (for logprobs' `tokens`). */
	const char *token_text;
	size_t token_text_len;
	/* With logprobs (TOKEN events): the bytes this token added to the
	 * detokenized output, before stop strings hold any back — what the
	 * response's text shows for it: token_text for most tokens, but
	 * nothing for a special token the text skips or for a partial UTF-8
	 * character still held (the token that completes it brings the
	 * whole character), and U+FFFD for invalid bytes. Logprob entries
	 * are lined up with the text by these lengths. Empty otherwise. */
	const char *token_out;
	size_t token_out_len;
	bool has_logprob;
	float logprob; /* log-softmax of the chosen token */
	int32_t n_top; /* alternatives in top[] */
	mllm_top_logprob top[MLLM_MAX_TOP_LOGPROBS];
	mllm_finish finish; /* MLLM_EV_DONE */
	bool stop_string;   /* MLLM_EV_DONE: ended by a stop string (whose
	                     * tokens were sent, their text not) */
	int err;            /* MLLM_EV_ERROR: MLLM_E* code */
	/* Usage (on MLLM_EV_DONE; prompt counted once per request). The
	 * prompt and cached counts also come with every TOKEN event. */
	int32_t n_prompt_tokens;
	int32_t n_cached_tokens;     /* prompt tokens reused from the cache */
	int32_t n_completion_tokens; /* this choice */
	uint64_t t_first_token_ns;   /* timestamps, mllm_now_ns() clock */
	uint64_t t_done_ns;
} mllm_event;

/* Non-blocking: fills *ev with the next event and returns 1, or returns 0
 * when none is ready. Pointers in *ev stay valid until the next call. */
int mllm_request_poll(mllm_request *r, mllm_event *ev);

/* Engine-wide counters for /metrics (a consistent snapshot). */
typedef struct {
	int64_t n_queued, n_running;
	int64_t kv_blocks_used, kv_blocks_total;
	int64_t prefix_hits, prefix_tokens_reused;
	int64_t n_prompt_tokens, n_generated_tokens;
	int64_t n_steps;
	/* Cumulative engine-thread time: in mllm_forward(), and in whole
	 * passes of the loop that ran a step (batching, forward, sampling,
	 * events, cache bookkeeping). busy - forward = scheduling overhead. */
	int64_t forward_ns, busy_ns;
	/* Of kv_blocks_used, the blocks only the prefix cache holds (no
	 * running sequence): reclaimable at once by eviction. When idle,
	 * kv_blocks_used == kv_blocks_cached, else a block leaked. */
	int64_t kv_blocks_cached;
	/* Requests preempted for want of KV blocks (their blocks released,
	 * their K/V recomputed when re-admitted). */
	int64_t n_preemptions;
} mllm_engine_stats;

void mllm_engine_stats_get(mllm_engine *e, mllm_engine_stats *out);
const mllm_model *mllm_engine_model(const mllm_engine *e);
/* The context the engine enforces at submit: prompt + max_tokens <= this.
 * The one source of truth for every layer above (limits, /tokenize). */
int32_t mllm_engine_n_ctx(const mllm_engine *e);

#endif
