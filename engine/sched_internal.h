/*
 * sched_internal.h — what the three files of the engine thread share: the
 * request, sequence, prefix-cache and engine structs, and the mllm__ calls
 * between request.c (request objects, outbox, inbox, notify), prefix_cache.c
 * (cached KV blocks and session pins) and scheduler.c (admission,
 * preemption, the step and the thread). Engine-internal: only those files and
 * tests/engine/test_scheduler.c include it; the contract is scheduler.h.
 */
#ifndef MLLM_SCHED_INTERNAL_H
#define MLLM_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "base.h"
#include "forward.h"
#include "gmatch.h"
#include "sampler.h"

/* ---- Requests and their outbox --------------------------------------------- */

typedef struct {
	mllm_event ev;             /* text pointers are filled at poll */
	size_t text_off, text_len; /* into the request's arena */
	size_t tok_off, tok_len;
	size_t out_off, out_len; /* ev.token_out's bytes */
} outbox_entry;

typedef enum {
	RQ_INBOX = 0, /* submitted, not yet seen by the engine thread */
	RQ_WAITING,   /* in the engine's FIFO, waiting for blocks; with seqs set it
	               * was preempted: everything but its blocks is kept */
	RQ_RUNNING,   /* admitted: prefilling or decoding */
	RQ_FINISHED,  /* final event pushed; the engine dropped it */
} rq_state;

typedef struct seq seq;

struct mllm_request {
	atomic_int refs; /* caller + engine */
	atomic_bool cancelled;

	/* Outbox, guarded by mu. The engine appends, the caller polls. */
	pthread_mutex_t mu;
	mllm_engine *e; /* NULL once the engine let go of it */
	bool queued;    /* counted in e->n_queued; guarded by e->mu */
	outbox_entry *q;
	size_t q_head, q_len, q_cap;
	char *arena; /* texts of queued events */
	size_t arena_len, arena_cap;
	char *cur; /* the caller's copy of the polled event's texts */
	size_t cur_cap;

	/* Immutable after submit. */
	int32_t *prompt; /* [n_prompt] */
	int32_t n_prompt;
	int32_t n_choices;
	mllm_sampling samp; /* deep copy: logit_bias and stop below */
	mllm_logit_bias *bias;
	char *stop[MLLM_MAX_STOP];
	char *session_id;
	void *user;

	/* Engine thread only. */
	rq_state state;
	mllm_request *next; /* inbox / waiting FIFO link */
	seq *seqs;          /* [n_choices] once admitted */
	int32_t n_live;     /* choices not finished */
	int32_t n_cached;   /* prompt tokens reused from the prefix cache */
	int32_t lead;       /* the choice that prefills the prompt (first live) */
	int32_t n_echo;     /* echo: PROMPT events pushed so far */
	int32_t n_preempt;  /* times preempted */
	bool forked;        /* prompt done, the other choices share its blocks */
	bool generating;    /* first tokens sampled: a resume only recomputes */
};

/* ---- Sequences: one per choice of an admitted request ---------------------- */

struct seq {
	mllm_request *r;
	int32_t choice;
	int32_t *table; /* [n_table] block ids, -1 until a write needs it */
	int32_t n_table;
	int32_t *gen; /* [max_tokens] generated tokens */
	int32_t n_gen;
	int32_t n_past;    /* positions whose K/V are in the cache */
	int32_t next_tok;  /* token to feed at n_past when decoding */
	int32_t n_indexed; /* leading full blocks offered to the prefix cache */
	uint64_t chain;    /* serial of block n_indexed - 1's cache entry (0: none
	                    * yet), MLLM_PC_CHAIN_NONE once a block had none */
	mllm_sampler *sampler;
	mllm_gmatch *gm; /* grammar state, when the request is constrained */
	mllm_detok detok;
	mllm_stop stop;
	bool stop_ready;
	bool done;
	uint64_t t_first;
	int32_t row; /* logits row this step, or -1 */
	/* This step's plan: a decode token at n_past, or the positions
	 * [n_past, n_past + c_len) to compute (prompt, or recompute after a
	 * preemption), whose first logits row (if any) is c_row. */
	bool dec;
	int32_t c_len, c_row;
	int32_t slot; /* index in running[] this step */
};

/* ---- Prefix cache ---------------------------------------------------------- */

typedef struct pc_entry pc_entry;
struct pc_entry {
	uint64_t hash;         /* bucket hash (of parent and tokens) */
	uint64_t serial;       /* this entry's number, never reused (from 1) */
	uint64_t parent;       /* serial of the previous block's entry, 0 for a first */
	int32_t block;         /* the cache holds one reference */
	int32_t *tokens;       /* [block_size] the block's tokens (verification) */
	pc_entry *hnext;       /* bucket chain */
	pc_entry *prev, *next; /* LRU list, most recent first */
};

typedef struct {
	char *id;
	int32_t *blocks;
	int32_t n_blocks;
	uint64_t expire_ns;
} session_pin;

struct mllm_engine {
	const mllm_model *m;
	const mllm_tokenizer *tok;
	mllm_engine_params p;
	int32_t n_vocab, n_ctx, bs;
	mllm_kv *kv;
	mllm_ctx *ctx;
	mllm_sampler_ws *ws;
	mllm_vtrie *vtrie; /* vocabulary trie, built at the first grammar */

	pthread_t thread;
	bool thread_started;
	bool mu_init;
	bool notify_pending; /* events were pushed since the last notify */
	atomic_bool quit;    /* set by mllm_engine_free: abort the pass */
	pthread_mutex_t mu;  /* inbox, counters, stats */
	pthread_cond_t cv;
	mllm_request *inbox_head, *inbox_tail;
	int32_t n_queued; /* inbox + waiting, cancelled ones not: bounded by
	                   * max_queue; guarded by mu, with mllm_request.queued */
	bool stopping;
	bool wake; /* a cancel or submit since the engine last looked */
	mllm_engine_stats stats;

	/* Engine thread only. */
	mllm_request *wait_head, *wait_tail;
	mllm_request **active; /* [max_running] admitted requests, FIFO order */
	int32_t n_active;
	seq **running; /* [max_running] live sequences (batch slots) */
	int32_t n_running;
	int64_t n_steps, prefix_hits, prefix_tokens, n_prompt_total, n_gen_total;
	int64_t forward_ns, busy_ns;
	int64_t n_preemptions;

	/* Batch buffers, sized once. */
	int32_t n_batch_max, n_rows_max;
	int32_t *b_token, *b_pos, *b_seq;
	bool *b_logits;
	const int32_t **b_tables; /* [max_running] */
	float *logits;            /* [n_rows_max * n_vocab] */
	mllm_request **c_done;    /* [max_running] */
	int32_t *matched;         /* [n_ctx / bs + 1] cached prompt blocks */

	/* Prefix cache. */
	pc_entry *pc_pool;  /* [n_blocks] */
	int32_t *pc_tokens; /* [n_blocks * bs] */
	pc_entry *pc_free;
	uint64_t pc_serial; /* the last entry's serial */
	pc_entry **pc_buckets;
	size_t pc_mask;
	pc_entry *lru_head, *lru_tail;
	session_pin *pins;
	int32_t n_pins, cap_pins;
};

/* Token at position pos of s: the prompt, then what s generated. */
static inline int32_t mllm__seq_tok_at(const seq *s, int32_t pos)
{
	const mllm_request *r = s->r;
	return pos < r->n_prompt ? r->prompt[pos] : s->gen[pos - r->n_prompt];
}

/* ---- request.c ----------------------------------------------------------------- */

/* A request built from s, deep-copying its prompt, logit bias, stop strings
 * and session id; two references (caller + engine). MLLM_ENOMEM leaves
 * nothing allocated. */
int mllm__request_create(const mllm_submit *s, mllm_request **out);
/* Frees r and everything it owns; only for a request nobody else has seen
 * (or through the last reference). */
void mllm__request_destroy(mllm_request *r);
/* Queues r in e's inbox and wakes the engine thread: MLLM_OK, or
 * MLLM_ESHUTDOWN / MLLM_EOVERLOADED and r is left to the caller. */
int mllm__inbox_push(mllm_engine *e, mllm_request *r);
/* Engine side: appends an event to r's outbox (texts copied, ev->token_out
 * too) and marks e so
 * that mllm__notify() calls the consumer after this pass. */
void mllm__push_event(mllm_engine *e, mllm_request *r, const mllm_event *ev, const char *text,
                      size_t text_len, const char *tok_text, size_t tok_len);
/* Engine side: the engine lets go of r after its final event. */
void mllm__request_drop(mllm_request *r);
/* The queue count (e->n_queued, bounded by max_queue): r leaves it
 * (admitted, cancelled or ended; once), or comes back to it (preempted). */
void mllm__unqueue(mllm_engine *e, mllm_request *r);
void mllm__unqueue_locked(mllm_engine *e, mllm_request *r); /* e->mu held */
void mllm__requeue(mllm_engine *e, mllm_request *r);
/* Engine side: one notify callback for all the events of a pass. */
void mllm__notify(mllm_engine *e);

/* ---- prefix_cache.c (engine thread only) ----------------------------------------- */

/* Sets up the cache for nb pool blocks (entries, buckets, free list):
 * MLLM_OK or MLLM_ENOMEM. mllm__pc_free() undoes it, also partly done. */
int mllm__pc_init(mllm_engine *e, int64_t nb);
/* Lets every session pin and cached block go and frees the cache. */
void mllm__pc_free(mllm_engine *e);
/* A sequence's chain after a block the cache has no entry for. */
#define MLLM_PC_CHAIN_NONE UINT64_MAX
/* The cached block that follows the entry whose serial is parent (0: the
 * prompt's start) and holds exactly tokens[0, bs), or NULL. */
pc_entry *mllm__pc_find(mllm_engine *e, uint64_t parent, const int32_t *tokens);
/* Offers the full, computed blocks of s to the cache. */
void mllm__pc_index(mllm_engine *e, seq *s);
/* Blocks only the cache holds: what eviction can give back. */
int64_t mllm__pc_evictable(const mllm_engine *e);
/* A free pool block, evicting cached ones (LRU) if need be; -1 if none. */
int32_t mllm__block_alloc(mllm_engine *e);
/* Session pins: release pin i; release the pins expired at now; pin the
 * indexed blocks of s under r's session id for session_ttl_ms. */
void mllm__pin_release(mllm_engine *e, int32_t i);
void mllm__pins_expire(mllm_engine *e, uint64_t now);
void mllm__pin_session(mllm_engine *e, const mllm_request *r, const seq *s);

#endif
