/*
 * scheduler.c — the engine thread (one per resident model): admission,
 * preemption and the continuous-batching step, and mllm_engine_create/free/
 * submit/stats. It alone touches the KV pool and the forward context. Blocks
 * are taken on demand; when the pool runs dry the most recently admitted
 * request is preempted and later recomputes its K/V (vLLM's recompute
 * policy). Requests come and go through request.c; reusable blocks live in
 * prefix_cache.c. See docs/scheduler.md.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sched_internal.h"

#define ECHO_ROWS       32 /* extra logits rows per step for echo prompt logprobs */
#define ADMIT_LOOKAHEAD 1  /* free blocks per choice beyond the prompt, to admit */

/* ---- Small helpers --------------------------------------------------------- */

static uint64_t now_ns(void)
{
	return mllm_now_ns();
}

/* ---- Sequences (engine thread) ---------------------------------------------- */

static void seq_release(mllm_engine *e, seq *s)
{
	for (int32_t i = 0; i < s->n_table; i++)
		if (s->table[i] >= 0)
			mllm_kv_block_unref(e->kv, s->table[i]);
	free(s->table);
	free(s->gen);
	mllm_sampler_free(s->sampler);
	mllm_gmatch_free(s->gm);
	if (s->stop_ready)
		mllm_stop_free(&s->stop);
	memset(s, 0, sizeof *s);
	s->done = true;
}

static void running_remove(mllm_engine *e, seq *s)
{
	for (int32_t i = 0; i < e->n_running; i++) {
		if (e->running[i] == s) {
			e->running[i] = e->running[--e->n_running];
			return;
		}
	}
}

static void active_remove(mllm_engine *e, mllm_request *r)
{
	for (int32_t i = 0; i < e->n_active; i++) {
		if (e->active[i] == r) {
			memmove(&e->active[i], &e->active[i + 1],
			        (size_t)(e->n_active - i - 1) * sizeof *e->active);
			e->n_active--;
			return;
		}
	}
}

static void fill_usage(const mllm_request *r, const seq *s, mllm_event *ev)
{
	ev->n_prompt_tokens = r->n_prompt;
	ev->n_cached_tokens = r->n_cached;
	ev->n_completion_tokens = s ? s->n_gen : 0;
	ev->t_first_token_ns = s ? s->t_first : 0;
	ev->t_done_ns = now_ns();
}

/* Ends the request when its last choice ended: frees seqs, drops it. */
static void request_maybe_finish(mllm_engine *e, mllm_request *r)
{
	if (r->n_live > 0)
		return;
	active_remove(e, r);
	free(r->seqs);
	r->seqs = NULL;
	mllm__request_drop(r);
}

/* Finishes choice s: pushes the held-back text and DONE, frees its blocks
 * (after offering them to the prefix cache and the session pin). */
static void seq_finish(mllm_engine *e, seq *s, mllm_finish finish)
{
	mllm_request *r = s->r;
	mllm_event ev = {.kind = MLLM_EV_DONE, .choice = s->choice, .finish = finish};
	char tail[MLLM_DETOK_MAX + 16], small[512], *buf = small;
	size_t n_text = 0;

	if (finish != MLLM_FINISH_CANCELLED && finish != MLLM_FINISH_ERROR && s->stop_ready &&
	    !s->stop.matched) {
		/* Bytes the detokenizer still held, then what the stop matcher
		 * held: released now, unless they complete a stop string. The
		 * held text is as long as the longest stop string, so it may
		 * not fit the stack buffer. */
		int n = mllm_detok_flush(&s->detok, tail, sizeof tail);
		const char *rel, *rest;
		size_t k = mllm_stop_push(&s->stop, tail, n > 0 ? (size_t)n : 0, &rel);
		size_t k2 = s->stop.matched ? 0 : s->stop.n_held;
		if (k + k2 > sizeof small)
			buf = xmalloc(k + k2);
		memcpy(buf, rel, k);
		if (s->stop.matched) {
			ev.finish = MLLM_FINISH_STOP;
		} else {
			k2 = mllm_stop_flush(&s->stop, &rest);
			memcpy(buf + k, rest, k2);
		}
		n_text = k + k2;
	}
	ev.stop_string = s->stop_ready && s->stop.matched;
	fill_usage(r, s, &ev);
	mllm__push_event(e, r, &ev, buf, n_text, NULL, 0);
	if (buf != small)
		free(buf);
	if (r->state == RQ_RUNNING && s->table) {
		mllm__pc_index(e, s);
		if (s->choice == 0 && finish != MLLM_FINISH_CANCELLED)
			mllm__pin_session(e, r, s);
	}
	running_remove(e, s);
	seq_release(e, s);
	r->n_live--;
}

/* Fails or cancels every live choice of an admitted request. */
static void request_end_all(mllm_engine *e, mllm_request *r, mllm_finish finish)
{
	for (int32_t c = 0; c < r->n_choices; c++)
		if (!r->seqs[c].done)
			seq_finish(e, &r->seqs[c], finish);
	request_maybe_finish(e, r);
}

static void request_error(mllm_engine *e, mllm_request *r, int err)
{
	mllm_event ev = {.kind = MLLM_EV_ERROR, .err = err};
	fill_usage(r, NULL, &ev);
	if (r->seqs) {
		for (int32_t c = 0; c < r->n_choices; c++) {
			if (!r->seqs[c].done) {
				running_remove(e, &r->seqs[c]);
				seq_release(e, &r->seqs[c]);
			}
		}
		r->n_live = 0;
		active_remove(e, r);
		free(r->seqs);
		r->seqs = NULL;
	}
	mllm__push_event(e, r, &ev, NULL, 0, NULL, 0);
	mllm__request_drop(r);
}

/* ---- Admission --------------------------------------------------------------- */

static int32_t blocks_for(const mllm_engine *e, int64_t n_tokens)
{
	return (int32_t)((n_tokens + e->bs - 1) / e->bs);
}

/* Blocks a request needs with h prompt blocks found in the cache. */
static int64_t blocks_needed(const mllm_engine *e, const mllm_request *r, int32_t h)
{
	int32_t nb = blocks_for(e, (int64_t)r->n_prompt + r->samp.max_tokens);
	int32_t fp = r->n_prompt / e->bs;
	return (int64_t)(nb - h) + (int64_t)(r->n_choices - 1) * (nb - fp);
}

static int seq_init(mllm_engine *e, mllm_request *r, seq *s, int32_t choice)
{
	char sink[MLLM_DETOK_MAX + 16];
	int rc;
	s->r = r;
	s->choice = choice;
	s->row = -1;
	s->n_table = blocks_for(e, (int64_t)r->n_prompt + r->samp.max_tokens);
	s->table = mllm_try_malloc((size_t)s->n_table * sizeof *s->table);
	s->gen = mllm_try_malloc(((size_t)r->samp.max_tokens + 1) * sizeof *s->gen);
	if (!s->table || !s->gen)
		return MLLM_ENOMEM;
	for (int32_t i = 0; i < s->n_table; i++)
		s->table[i] = -1;
	rc = mllm_sampler_create(&r->samp, e->n_vocab, choice, &s->sampler);
	if (rc)
		return rc;
	rc = mllm_stop_init(&s->stop, r->samp.stop, r->samp.n_stop);
	if (rc)
		return rc;
	s->stop.skip_lead_space = r->samp.stop_skip_lead_space;
	s->stop_ready = true;
	if (r->samp.grammar) {
		/* The vocabulary trie is built once, by the first constrained
		 * request (tens of ms for 128k tokens), on this thread. */
		if (!e->vtrie && e->tok) {
			rc = mllm_vtrie_create(e->tok, &e->vtrie);
			if (rc)
				return rc;
		}
		if (!e->vtrie)
			return MLLM_EINVAL;
		/* Where the grammar may end it allows one EOS id: the
		 * tokenizer's own (the model's first when it has none). */
		int32_t eos = e->tok && mllm_tokenizer_eos(e->tok) >= 0
		                  ? mllm_tokenizer_eos(e->tok)
		                  : mllm_model_hparams(e->m)->eos_id;
		rc = mllm_gmatch_create(r->samp.grammar, e->vtrie, eos, &s->gm);
		if (rc)
			return rc;
		/* ... and every other end id of the model and tokenizer: a chat
		 * model ends its turn with its own (<|eot_id|>), and free text
		 * (tool_choice auto) must be able to end as the model wants. */
		{
			const mllm_hparams *hp = mllm_model_hparams(e->m);
			int32_t ids[MLLM_GMATCH_MAX_EOS];
			size_t n =
			    e->tok ? mllm_tokenizer_eos_ids(e->tok, ids, MLLM_GMATCH_MAX_EOS) : 0;
			for (int32_t i = 0; i < hp->n_eos; i++)
				mllm_gmatch_add_eos(s->gm, hp->eos_ids[i]);
			for (size_t i = 0; i < n && i < MLLM_GMATCH_MAX_EOS; i++)
				mllm_gmatch_add_eos(s->gm, ids[i]);
		}
	}
	/* The completion continues the prompt: prime the detokenizer with it
	 * (so a leading space is kept), then drop whatever it released. */
	mllm_detok_init(&s->detok, e->tok);
	if (e->tok) {
		for (int32_t i = 0; i < r->n_prompt; i++)
			(void)mllm_detok_push(&s->detok, r->prompt[i], sink, sizeof sink);
		(void)mllm_detok_flush(&s->detok, sink, sizeof sink);
	}
	return MLLM_OK;
}

/* Tries to admit the head of the waiting FIFO — a new request, or a
 * preempted one coming back: 1 admitted, 0 must wait, -1 failed (the
 * request got its error event and was dropped). Only the prompt's blocks
 * are taken now (the lead's, minus prefix-cache hits; each other choice's
 * copy of the partial last prompt block), and admission wants
 * ADMIT_LOOKAHEAD more per choice free, capped by what the whole request
 * could ever need so that a request that fits the empty pool is always
 * admitted once nothing else runs, plus one free block per running
 * sequence. Later blocks come on demand (step). */
static int try_admit(mllm_engine *e, mllm_request *r)
{
	bool first = r->seqs == NULL;
	int32_t n_live = first ? r->n_choices : r->n_live;
	int32_t pb = blocks_for(e, r->n_prompt), fp = r->n_prompt / e->bs;
	int32_t rem = r->n_prompt % e->bs, h = 0, max_h = (r->n_prompt - 1) / e->bs;
	int32_t *matched = e->matched;
	uint64_t chain = 0;
	int64_t need, full;
	seq *lead;
	int rc;

	if (e->n_running + n_live > e->p.max_running)
		return 0;
	/* 1. Prefix cache: full prompt blocks, keeping at least the last
	 * prompt token to compute (its logits start the completion). */
	if (e->p.prefix_cache && !r->samp.echo_logprobs) {
		while (h < max_h) {
			pc_entry *x =
			    mllm__pc_find(e, chain, r->prompt + (size_t)h * (size_t)e->bs);
			if (!x)
				break;
			mllm_kv_block_ref(e->kv, x->block); /* no longer evictable */
			matched[h++] = x->block;
			chain = x->serial;
		}
	}
	need = (int64_t)(pb - h) + (int64_t)(n_live - 1) * (rem > 0) +
	       (int64_t)ADMIT_LOOKAHEAD * n_live;
	full = blocks_needed(e, r, h);
	if (need > full)
		need = full;
	/* Watermark: while others run, leave each of them a block to grow
	 * into, or the newcomer is admitted only to be preempted again at the
	 * next block boundary (and recompute its prompt each time). */
	need += e->n_running;
	if (need > mllm_kv_n_free(e->kv) + mllm__pc_evictable(e)) {
		for (int32_t i = 0; i < h; i++)
			mllm_kv_block_unref(e->kv, matched[i]);
		return 0;
	}
	if (first) {
		r->seqs = xcalloc((size_t)r->n_choices, sizeof *r->seqs);
		r->n_live = r->n_choices;
		for (int32_t c = 0; c < r->n_choices; c++) {
			rc = seq_init(e, r, &r->seqs[c], c);
			if (rc)
				goto fail;
		}
	}
	r->state = RQ_RUNNING;
	/* 2. The prompt's blocks: the other choices share its full blocks
	 * and own a copy of the partial last one (filled at the fork). */
	lead = &r->seqs[r->lead];
	for (int32_t i = 0; i < h; i++)
		lead->table[i] = matched[i]; /* the table owns the refs taken above */
	for (int32_t i = h; i < pb; i++) {
		lead->table[i] = mllm__block_alloc(e);
		MLLM_ASSERT(lead->table[i] >= 0);
	}
	for (int32_t c = 0; c < r->n_choices; c++) {
		seq *s = &r->seqs[c];
		if (s == lead || s->done)
			continue;
		for (int32_t i = 0; i < fp; i++) {
			s->table[i] = lead->table[i];
			mllm_kv_block_ref(e->kv, s->table[i]);
		}
		if (rem > 0) {
			s->table[fp] = mllm__block_alloc(e);
			MLLM_ASSERT(s->table[fp] >= 0);
		}
	}
	lead->n_past = h * e->bs;
	lead->n_indexed = h;
	lead->chain = chain;
	if (first) {
		r->n_cached = h * e->bs;
		if (h > 0) {
			e->prefix_hits++;
			e->prefix_tokens += r->n_cached;
		}
	}
	for (int32_t c = 0; c < r->n_choices; c++)
		if (!r->seqs[c].done)
			e->running[e->n_running++] = &r->seqs[c];
	e->active[e->n_active++] = r;
	return 1;
fail:
	for (int32_t i = 0; i < h; i++)
		mllm_kv_block_unref(e->kv, matched[i]);
	for (int32_t c = 0; c < r->n_choices; c++) {
		r->seqs[c].n_table = 0; /* nothing allocated from the pool yet */
		seq_release(e, &r->seqs[c]);
	}
	free(r->seqs);
	r->seqs = NULL;
	r->n_live = 0;
	request_error(e, r, rc);
	return -1;
}

/* Preemption (recompute): r, admitted last, gives every block back —
 * blocks shared with another choice, a request or the prefix cache are
 * just unreferenced — and returns to the front of the waiting FIFO with
 * everything else kept (generated tokens, sampler RNG and penalty counts,
 * detokenizer, stop matcher, timing). Re-admitted, it prefills its prompt
 * again (the prefix cache may supply it), each live choice recomputes its
 * generated tokens but the last, and decoding goes on where it stopped. */
static void preempt(mllm_engine *e, mllm_request *r)
{
	MLLM_ASSERT(r->n_live > 0);
	r->lead = -1;
	for (int32_t c = 0; c < r->n_choices; c++) {
		seq *s = &r->seqs[c];
		if (s->done)
			continue;
		running_remove(e, s);
		for (int32_t i = 0; i < s->n_table; i++) {
			if (s->table[i] >= 0)
				mllm_kv_block_unref(e->kv, s->table[i]);
			s->table[i] = -1;
		}
		s->n_past = 0;
		s->n_indexed = 0;
		s->chain = 0;
		s->row = -1;
		s->dec = false;
		s->c_len = 0;
		if (r->lead < 0)
			r->lead = c;
	}
	r->forked = false;
	r->state = RQ_WAITING;
	active_remove(e, r);
	r->next = e->wait_head;
	e->wait_head = r;
	if (!e->wait_tail)
		e->wait_tail = r;
	r->n_preempt++;
	e->n_preemptions++;
	mllm__requeue(e, r);
}

/* ---- One step ------------------------------------------------------------------ */

/* Samples choice s from a logits row and emits the token (or finishes). */
/* End of generation: any id of the model's EOS set (config.json /
 * GGUF) or of its tokenizer's (tokenizer_config.json, the <|eot_id|> family
 * of byte-level BPE vocabularies). */
static bool is_eos(const mllm_engine *e, int32_t id)
{
	return mllm_hparams_is_eos(mllm_model_hparams(e->m), id) ||
	       (e->tok && mllm_tokenizer_is_eos(e->tok, id));
}

static void seq_sample(mllm_engine *e, seq *s, const float *row)
{
	mllm_request *r = s->r;
	mllm_sample_result res;
	mllm_event ev = {.kind = MLLM_EV_TOKEN,
	                 .choice = s->choice,
	                 .n_prompt_tokens = r->n_prompt,
	                 .n_cached_tokens = r->n_cached};
	char text[MLLM_DETOK_MAX + 16], raw[MLLM_DETOK_MAX];
	const char *rel = NULL;
	size_t n_rel = 0, n_raw;
	int n;

	if (s->gm) {
		/* Constrained: mask, draw, advance the grammar (grammar.c). A
		 * well-formed grammar's mask is empty only where the matcher's
		 * limits cut every way on (a recursive schema nested past
		 * MLLM_GRAMMAR_MAX_DEPTH frames): the output is unfinished, as at
		 * max_tokens, so the choice ends with "length", never with
		 * made-up text. Out of memory is an error. */
		const uint32_t *allow = NULL;
		int32_t n_ok = mllm_gmatch_mask(s->gm, &allow);
		if (n_ok <= 0) {
			seq_finish(e, s, n_ok == 0 ? MLLM_FINISH_LENGTH : MLLM_FINISH_ERROR);
			return;
		}
		mllm_sampler_sample_masked(s->sampler, e->ws, row, allow, &res);
		if (mllm_gmatch_accept(s->gm, res.token)) {
			seq_finish(e, s, MLLM_FINISH_ERROR);
			return;
		}
	} else {
		mllm_sampler_sample(s->sampler, e->ws, row, &res);
	}
	if (!isfinite(row[res.token])) {
		/* NaN or infinite logits (broken weights): no token of this
		 * row means anything, so the choice fails rather than going on
		 * with whatever the comparisons picked. */
		MLLM_LOG(MLLM_LOG_ERROR, "engine: the model's logits are not finite (NaN or "
		                         "infinite); the request fails");
		seq_finish(e, s, MLLM_FINISH_ERROR);
		return;
	}
	s->gen[s->n_gen++] = res.token;
	e->n_gen_total++;
	if (s->t_first == 0)
		s->t_first = now_ns();
	if (is_eos(e, res.token) && (!r->samp.ignore_eos || s->gm)) {
		seq_finish(e, s, MLLM_FINISH_STOP);
		return;
	}
	n = e->tok ? mllm_detok_push(&s->detok, res.token, text, sizeof text) : 0;
	n_rel = mllm_stop_push(&s->stop, text, n > 0 ? (size_t)n : 0, &rel);
	n_raw = mllm_tokenizer_token_bytes(e->tok, res.token, raw, sizeof raw);
	ev.token = res.token;
	if (r->samp.logprobs >= 0) {
		ev.has_logprob = true;
		ev.logprob = res.logprob;
		ev.n_top = res.n_top;
		memcpy(ev.top, res.top, (size_t)res.n_top * sizeof *res.top);
		ev.token_out = text;
		ev.token_out_len = n > 0 ? (size_t)n : 0;
	}
	mllm__push_event(e, r, &ev, rel, n_rel, raw, n_raw);
	if (s->stop.matched)
		seq_finish(e, s, MLLM_FINISH_STOP);
	else if (s->n_gen >= r->samp.max_tokens)
		/* A grammar that allows nothing but EOS now is complete: the
		 * output was not cut, whatever max_tokens says. */
		seq_finish(e, s,
		           s->gm && mllm_gmatch_complete(s->gm) ? MLLM_FINISH_STOP
		                                                : MLLM_FINISH_LENGTH);
	else
		s->next_tok = res.token;
}

/* Echo: the PROMPT event of prompt token p, whose logprob comes from the
 * previous position's logits row (the first token has none: prev NULL). */
static void emit_prompt(mllm_engine *e, mllm_request *r, int32_t p, const float *prev)
{
	char raw[MLLM_DETOK_MAX];
	mllm_event ev = {.kind = MLLM_EV_PROMPT, .choice = 0, .token = r->prompt[p]};
	size_t n_raw = mllm_tokenizer_token_bytes(e->tok, r->prompt[p], raw, sizeof raw);
	if (prev) {
		ev.has_logprob = true;
		ev.logprob = mllm_logprob_of(prev, e->n_vocab, r->prompt[p]);
		if (r->samp.logprobs > 0)
			ev.n_top = mllm_logprob_top(prev, e->n_vocab, r->samp.logprobs, ev.top);
	}
	mllm__push_event(e, r, &ev, NULL, 0, raw, n_raw);
}

/* Prompt processed: the other choices get a private copy of the partial
 * last prompt block (copy-on-write at the first divergent block), then
 * every choice samples its first token from the last prompt row. After a
 * preemption the choices already have their tokens (row is NULL): each
 * recomputes its own, then decodes. */
static void fork_and_start(mllm_engine *e, mllm_request *r, const float *row)
{
	seq *lead = &r->seqs[r->lead];
	int32_t fp = r->n_prompt / e->bs, rem = r->n_prompt % e->bs;
	r->forked = true;
	for (int32_t c = 0; c < r->n_choices; c++) {
		seq *s = &r->seqs[c];
		if (s == lead || s->done)
			continue;
		if (rem > 0)
			mllm_kv_block_copy(e->kv, s->table[fp], lead->table[fp], rem);
		s->n_past = r->n_prompt;
		s->n_indexed = lead->n_indexed;
		s->chain = lead->chain;
	}
	if (r->generating)
		return;
	r->generating = true;
	if (r->samp.max_tokens == 0) {
		for (int32_t c = 0; c < r->n_choices; c++)
			seq_finish(e, &r->seqs[c], MLLM_FINISH_LENGTH);
		return;
	}
	for (int32_t c = 0; c < r->n_choices; c++)
		if (!r->seqs[c].done)
			seq_sample(e, &r->seqs[c], row);
}

/* The forward pass's abort callback, checked between layers on the engine
 * thread: give up on a pass whose every sequence was cancelled (a long
 * prefill of a client that went away) or when the engine is being freed. */
static bool step_abort(void *ud)
{
	mllm_engine *e = ud;
	if (atomic_load(&e->quit))
		return true;
	for (int32_t i = 0; i < e->n_running; i++)
		if (!atomic_load(&e->running[i]->r->cancelled))
			return false;
	return true;
}

/* Echo requests get a logits row per prompt token until every PROMPT
 * event has been pushed (a resumed request does not push them again). */
static bool echo_rows(const mllm_request *r)
{
	return r->samp.echo_logprobs && !r->forked && r->n_echo < r->n_prompt;
}

/* Where s's computation must reach before it decodes: the prompt for the
 * lead before the fork, then every generated token but the last (which
 * the decode step feeds). Equal to n_past for a decoding sequence. */
static int32_t seq_fill_end(const seq *s)
{
	const mllm_request *r = s->r;
	if (!r->forked)
		return s == &r->seqs[r->lead] ? r->n_prompt : 0;
	return r->n_prompt + s->n_gen - 1;
}

/* Plans the step: one decode token for every sequence that is caught up,
 * then chunks up to the step's token budget. Pass 1 goes oldest first but
 * caps each chunk at a quarter of the budget, so a short prompt behind a
 * long one starts now rather than after it, while many short prompts still
 * complete in arrival order (the best median time to first token); pass 2
 * hands out what is left, oldest first. Echo requests need a logits row
 * per token, bounded by ECHO_ROWS per step. */
static void plan_step(mllm_engine *e)
{
	int32_t n_dec = 0, n_pf = 0, echo_n = 0, budget, fair = e->n_batch_max / 4;
	for (int32_t a = 0; a < e->n_active; a++) {
		mllm_request *r = e->active[a];
		for (int32_t c = 0; c < r->n_choices; c++) {
			seq *s = &r->seqs[c];
			if (s->done)
				continue;
			s->row = -1;
			s->c_row = -1;
			s->c_len = 0;
			s->dec = r->forked && s->n_past == seq_fill_end(s);
			n_dec += s->dec;
			n_pf += seq_fill_end(s) > s->n_past;
		}
	}
	budget = e->n_batch_max - n_dec;
	if (fair < 16)
		fair = 16;
	for (int pass = 0; pass < 2 && n_pf > 0; pass++) {
		for (int32_t a = 0; a < e->n_active && budget > 0; a++) {
			mllm_request *r = e->active[a];
			bool echo = echo_rows(r);
			for (int32_t c = 0; c < r->n_choices && budget > 0; c++) {
				seq *s = &r->seqs[c];
				int32_t want;
				if (s->done)
					continue;
				want = seq_fill_end(s) - s->n_past - s->c_len;
				if (want <= 0)
					continue;
				if (pass == 0 && want > fair)
					want = fair;
				if (want > budget)
					want = budget;
				if (echo) {
					if (want > ECHO_ROWS - echo_n)
						want = ECHO_ROWS - echo_n;
					echo_n += want;
				}
				s->c_len += want;
				budget -= want;
			}
		}
	}
}

/* Gives every write of the plan its block, oldest request first. When the
 * pool (free blocks and the prefix cache's evictable ones) has none left,
 * a session pin is let go or the most recently admitted request is
 * preempted; returns false then, and the step is planned again. The
 * oldest request is thus never preempted and always progresses: alone it
 * fits the pool (checked at submit). */
static bool reserve_step(mllm_engine *e)
{
	for (int32_t a = 0; a < e->n_active; a++) {
		mllm_request *r = e->active[a];
		for (int32_t c = 0; c < r->n_choices; c++) {
			seq *s = &r->seqs[c];
			int32_t last;
			if (s->done || (!s->dec && s->c_len == 0))
				continue;
			last = s->dec ? s->n_past : s->n_past + s->c_len - 1;
			for (int32_t i = s->n_past / e->bs; i <= last / e->bs; i++) {
				if (s->table[i] >= 0)
					continue;
				s->table[i] = mllm__block_alloc(e);
				if (s->table[i] >= 0)
					continue;
				if (e->n_pins > 0) {
					mllm__pin_release(e, 0);
				} else if (e->n_active > 1) {
					preempt(e, e->active[e->n_active - 1]);
				} else {
					/* Cannot happen: alone, a request fits. */
					MLLM_LOG(MLLM_LOG_ERROR,
					         "engine: KV pool accounting broken");
					request_error(e, r, MLLM_ENOMEM);
				}
				return false;
			}
		}
	}
	return true;
}

static void step(mllm_engine *e)
{
	int32_t n = 0, n_rows = 0;
	mllm_request **done_prefill = e->c_done;
	int32_t n_done = 0;
	mllm_batch b;
	uint64_t t0;
	int rc;

	/* 1. Plan, and make sure every position written has its block. */
	do
		plan_step(e);
	while (!reserve_step(e));
	if (e->n_running == 0)
		return;
	/* 2. The batch: decode tokens first (a long prompt never stalls
	 * decoding), then the chunks in admission order. */
	for (int32_t i = 0; i < e->n_running; i++) {
		seq *s = e->running[i];
		s->slot = i;
		if (!s->dec)
			continue;
		e->b_token[n] = s->next_tok;
		e->b_pos[n] = s->n_past;
		e->b_seq[n] = i;
		e->b_logits[n] = true;
		s->row = n_rows++;
		n++;
	}
	for (int32_t a = 0; a < e->n_active; a++) {
		mllm_request *r = e->active[a];
		bool echo = echo_rows(r);
		for (int32_t c = 0; c < r->n_choices; c++) {
			seq *s = &r->seqs[c];
			if (s->done || s->c_len <= 0)
				continue;
			s->c_row = n_rows;
			for (int32_t k = 0; k < s->c_len; k++) {
				int32_t pos = s->n_past + k;
				bool want = echo || (!r->forked && !r->generating &&
				                     pos == r->n_prompt - 1);
				e->b_token[n] = mllm__seq_tok_at(s, pos);
				e->b_pos[n] = pos;
				e->b_seq[n] = s->slot;
				e->b_logits[n] = want;
				n_rows += want;
				n++;
			}
		}
	}
	if (n == 0)
		return;
	for (int32_t i = 0; i < e->n_running; i++)
		e->b_tables[i] = e->running[i]->table;
	b = (mllm_batch){.n_tokens = n,
	                 .token = e->b_token,
	                 .pos = e->b_pos,
	                 .seq = e->b_seq,
	                 .logits = e->b_logits,
	                 .n_seqs = e->n_running,
	                 .block_table = e->b_tables};
	MLLM_ASSERT(n <= e->n_batch_max);
	MLLM_ASSERT(n_rows <= e->n_rows_max);
	t0 = now_ns();
	rc = mllm_forward(e->ctx, &b, e->logits);
	e->forward_ns += (int64_t)(now_ns() - t0);
	e->n_steps++;
	if (rc == MLLM_ECANCELLED) {
		/* Nothing of this pass is used: no sequence advanced, and the
		 * next cancel pass (or the shutdown) ends them all. */
		return;
	}
	if (rc) {
		MLLM_LOG(MLLM_LOG_ERROR, "engine: forward pass failed: %s", mllm_strerror(rc));
		while (e->n_active > 0)
			request_error(e, e->active[0], rc);
		return;
	}

	/* 3. Decoding sequences: K/V of their token are in; sample the next.
	 * Walk active[] (unchanged until the end of the step), not running[],
	 * which a finishing sequence leaves. */
	for (int32_t a = 0; a < e->n_active; a++) {
		mllm_request *r = e->active[a];
		if (!r->forked)
			continue;
		for (int32_t c = 0; c < r->n_choices; c++) {
			seq *s = &r->seqs[c];
			if (s->done || !s->dec)
				continue;
			s->n_past++;
			mllm__pc_index(e, s);
			seq_sample(e, s, e->logits + (size_t)s->row * (size_t)e->n_vocab);
		}
	}
	/* 4. Chunks: echo events, indexing, and the fork when a prompt is
	 * done. Forking may finish requests (max_tokens 0, EOS first), which
	 * leaves active[]: collect them first, fork after the walk. */
	for (int32_t a = 0; a < e->n_active; a++) {
		mllm_request *r = e->active[a];
		bool echo = echo_rows(r);
		for (int32_t c = 0; c < r->n_choices; c++) {
			seq *s = &r->seqs[c];
			int32_t len = s->c_len, from = s->n_past;
			if (s->done || len <= 0)
				continue;
			if (echo) {
				/* Rows of positions [from, from + len) are
				 * consecutive; row k scores the token at
				 * from + k + 1. */
				const float *base =
				    e->logits + (size_t)s->c_row * (size_t)e->n_vocab;
				if (from == 0 && r->n_echo == 0) {
					emit_prompt(e, r, 0, NULL);
					r->n_echo = 1;
				}
				for (int32_t k = 0; k < len && from + k + 1 < r->n_prompt; k++) {
					if (from + k + 1 < r->n_echo)
						continue;
					emit_prompt(e, r, from + k + 1,
					            base + (size_t)k * (size_t)e->n_vocab);
					r->n_echo = from + k + 2;
				}
			}
			s->n_past += len;
			mllm__pc_index(e, s);
			if (!r->forked && s->n_past == r->n_prompt) {
				s->row = echo ? s->c_row + len - 1 : s->c_row;
				done_prefill[n_done++] = r;
			}
		}
	}
	for (int32_t i = 0; i < n_done; i++) {
		mllm_request *r = done_prefill[i];
		const float *row = NULL;
		if (!r->generating)
			row = e->logits + (size_t)r->seqs[r->lead].row * (size_t)e->n_vocab;
		fork_and_start(e, r, row);
		request_maybe_finish(e, r);
	}
	/* Decoders that finished in step 3. */
	for (int32_t a = 0; a < e->n_active;) {
		mllm_request *r = e->active[a];
		if (r->n_live == 0) {
			request_maybe_finish(e, r);
			continue;
		}
		a++;
	}
}

/* ---- The engine thread ------------------------------------------------------------ */

/* Publishes the counters (the queue's own is kept as requests come and
 * go: mllm__unqueue). */
static void publish_stats(mllm_engine *e)
{
	mllm_engine_stats st = {
	    .n_running = e->n_running,
	    .kv_blocks_total = mllm_kv_n_blocks(e->kv),
	    .kv_blocks_used = mllm_kv_n_blocks(e->kv) - mllm_kv_n_free(e->kv),
	    .prefix_hits = e->prefix_hits,
	    .prefix_tokens_reused = e->prefix_tokens,
	    .n_prompt_tokens = e->n_prompt_total,
	    .n_generated_tokens = e->n_gen_total,
	    .n_steps = e->n_steps,
	    .forward_ns = e->forward_ns,
	    .busy_ns = e->busy_ns,
	    .kv_blocks_cached = mllm__pc_evictable(e),
	    .n_preemptions = e->n_preemptions,
	};
	pthread_mutex_lock(&e->mu);
	st.n_queued = e->n_queued;
	e->stats = st;
	pthread_mutex_unlock(&e->mu);
}

static void cancel_pass(mllm_engine *e, int32_t *left_queue)
{
	/* Waiting requests: leave the FIFO with DONE(cancelled) per choice. */
	mllm_request **pp = &e->wait_head, *prev = NULL;
	while (*pp) {
		mllm_request *r = *pp;
		if (atomic_load(&r->cancelled)) {
			*pp = r->next;
			if (e->wait_tail == r)
				e->wait_tail = prev;
			r->next = NULL;
			(*left_queue)++;
			if (r->seqs) {
				/* Preempted: its choices hold no block. */
				request_end_all(e, r, MLLM_FINISH_CANCELLED);
				continue;
			}
			for (int32_t c = 0; c < r->n_choices; c++) {
				mllm_event ev = {.kind = MLLM_EV_DONE,
				                 .choice = c,
				                 .finish = MLLM_FINISH_CANCELLED};
				fill_usage(r, NULL, &ev);
				mllm__push_event(e, r, &ev, NULL, 0, NULL, 0);
			}
			mllm__request_drop(r);
			continue;
		}
		prev = r;
		pp = &r->next;
	}
	/* Admitted requests: stop now, blocks back to the pool. */
	for (int32_t a = 0; a < e->n_active;) {
		mllm_request *r = e->active[a];
		if (atomic_load(&r->cancelled)) {
			request_end_all(e, r, MLLM_FINISH_CANCELLED);
			continue;
		}
		a++;
	}
}

static void *engine_main(void *arg)
{
	mllm_engine *e = arg;
	pthread_mutex_lock(&e->mu);
	for (;;) {
		mllm_request *in = e->inbox_head;
		int32_t left_queue = 0;
		uint64_t t_pass = now_ns();
		bool progress;
		e->inbox_head = e->inbox_tail = NULL;
		e->wake = false;
		if (e->stopping) {
			/* Put the inbox back for mllm_engine_free() to end. */
			e->inbox_head = in;
			for (e->inbox_tail = in; e->inbox_tail && e->inbox_tail->next;)
				e->inbox_tail = e->inbox_tail->next;
			break;
		}
		pthread_mutex_unlock(&e->mu);

		/* Move the inbox into the waiting FIFO. */
		while (in) {
			mllm_request *r = in;
			in = in->next;
			r->next = NULL;
			r->state = RQ_WAITING;
			if (e->wait_tail)
				e->wait_tail->next = r;
			else
				e->wait_head = r;
			e->wait_tail = r;
		}
		cancel_pass(e, &left_queue);
		mllm__pins_expire(e, now_ns());
		/* Admit in FIFO order while the head fits. */
		while (e->wait_head) {
			mllm_request *r = e->wait_head, *next = r->next;
			int32_t n_prompt = r->n_prompt;
			bool resumed = r->n_preempt > 0;
			int ok = try_admit(e, r);
			if (ok == 0) {
				/* A session pin is only a cache hint: it yields
				 * to a request waiting for blocks (which would
				 * otherwise wait for whatever runs to end, or,
				 * with nothing running, forever) — not to one
				 * waiting for a running slot, which no pin holds. */
				int32_t nl = r->seqs ? r->n_live : r->n_choices;
				if (e->n_pins > 0 && e->n_running + nl <= e->p.max_running) {
					mllm__pin_release(e, 0);
					continue;
				}
				break;
			}
			/* r may be gone (ok < 0): only saved fields below. */
			e->wait_head = next;
			if (!e->wait_head)
				e->wait_tail = NULL;
			if (ok > 0) {
				r->next = NULL;
				mllm__unqueue(e, r);
				if (!resumed)
					e->n_prompt_total += n_prompt;
			}
			left_queue++;
		}
		progress = e->n_running > 0;
		if (progress)
			step(e);
		if (progress || left_queue > 0)
			e->busy_ns += (int64_t)(now_ns() - t_pass);
		publish_stats(e);
		mllm__notify(e);

		pthread_mutex_lock(&e->mu);
		if (!progress && !e->wake && !e->inbox_head && !e->stopping) {
			if (e->n_pins > 0) {
				/* Sleep until the earliest pin expires. */
				uint64_t next = UINT64_MAX;
				struct timespec ts;
				for (int32_t i = 0; i < e->n_pins; i++)
					if (e->pins[i].expire_ns < next)
						next = e->pins[i].expire_ns;
				clock_gettime(CLOCK_REALTIME, &ts);
				uint64_t wait = next > now_ns() ? next - now_ns() : 0;
				ts.tv_sec += (time_t)(wait / 1000000000ULL);
				ts.tv_nsec += (long)(wait % 1000000000ULL);
				if (ts.tv_nsec >= 1000000000L) {
					ts.tv_sec++;
					ts.tv_nsec -= 1000000000L;
				}
				pthread_cond_timedwait(&e->cv, &e->mu, &ts);
			} else {
				pthread_cond_wait(&e->cv, &e->mu);
			}
		}
	}
	pthread_mutex_unlock(&e->mu);
	return NULL;
}

/* ---- Public API ----------------------------------------------------------------------- */

int mllm_engine_create(const mllm_model *m, const mllm_engine_params *p, mllm_engine **out,
                       char *err, size_t errlen)
{
	const mllm_hparams *hp;
	mllm_engine *e;
	int64_t nb;
	int rc;

	*out = NULL;
	if (!m || !p)
		return mllm__seterr(err, errlen, MLLM_EINVAL, "engine: no model or parameters");
	hp = mllm_model_hparams(m);
	e = xcalloc(1, sizeof *e);
	e->m = m;
	e->tok = mllm_model_tokenizer(m);
	e->p = *p;
	e->n_vocab = hp->n_vocab;
	/* The engine alone decides the context; the server and the API read it
	 * back with mllm_engine_n_ctx(). Positions past the trained context
	 * would be refused by the forward pass (and the model was never taught
	 * them), so asking for more is a configuration error, not a silent
	 * clamp. */
	if (p->n_ctx < 0 || p->n_ctx > hp->n_ctx_train) {
		rc = mllm__seterr(err, errlen, MLLM_EINVAL,
		                  "n_ctx %d is more than the model's trained context (%d); "
		                  "set n_ctx to at most %d, or 0 for the model's own",
		                  (int)p->n_ctx, (int)hp->n_ctx_train, (int)hp->n_ctx_train);
		goto fail;
	}
	e->n_ctx = p->n_ctx > 0 ? p->n_ctx : hp->n_ctx_train;
	if (e->p.max_batch_tokens <= 0)
		e->p.max_batch_tokens = MLLM_MAX_BATCH_TOKENS_DEFAULT;
	if (e->p.max_running <= 0)
		e->p.max_running = MLLM_MAX_RUNNING_DEFAULT;
	if (e->p.max_queue <= 0)
		e->p.max_queue = MLLM_MAX_QUEUE_DEFAULT;
	if (e->p.max_batch_tokens < e->p.max_running)
		e->p.max_batch_tokens = e->p.max_running;
	if (e->n_ctx <= 0 || e->n_vocab <= 0) {
		rc = mllm__seterr(err, errlen, MLLM_EINVAL,
		                  "engine: model has no context or vocabulary");
		goto fail;
	}
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	e->mu_init = true;

	rc = mllm_kv_create(m, &e->p.kv, &e->kv);
	if (rc) {
		mllm__seterr(err, errlen, rc, "engine: cannot create the KV pool: %s",
		             mllm_strerror(rc));
		goto fail;
	}
	e->bs = mllm_kv_block_size(e->kv);
	nb = mllm_kv_n_blocks(e->kv);
	e->n_batch_max = e->p.max_batch_tokens;
	e->n_rows_max = e->p.max_running + ECHO_ROWS;
	rc = mllm_ctx_create(m, e->kv, e->n_batch_max, p->n_threads, &e->ctx);
	if (rc) {
		mllm__seterr(err, errlen, rc, "engine: cannot create the forward context: %s",
		             mllm_strerror(rc));
		goto fail;
	}
	mllm_ctx_set_abort(e->ctx, step_abort, e);
	atomic_init(&e->quit, false);
	e->ws = mllm_sampler_ws_create(e->n_vocab);
	e->logits = mllm_try_malloc((size_t)e->n_rows_max * (size_t)e->n_vocab * sizeof(float));
	if (!e->ws || !e->logits || mllm__pc_init(e, nb) != MLLM_OK) {
		rc = mllm__seterr(err, errlen, MLLM_ENOMEM, "engine: out of memory for buffers");
		goto fail;
	}
	e->b_token = xmallocarray((size_t)e->n_batch_max, sizeof(int32_t));
	e->b_pos = xmallocarray((size_t)e->n_batch_max, sizeof(int32_t));
	e->b_seq = xmallocarray((size_t)e->n_batch_max, sizeof(int32_t));
	e->b_logits = xmallocarray((size_t)e->n_batch_max, sizeof(bool));
	e->b_tables = xmallocarray((size_t)e->p.max_running, sizeof *e->b_tables);
	e->active = xmallocarray((size_t)e->p.max_running, sizeof *e->active);
	e->running = xmallocarray((size_t)e->p.max_running, sizeof *e->running);
	e->c_done = xmallocarray((size_t)e->p.max_running, sizeof *e->c_done);
	e->matched = xmallocarray((size_t)(e->n_ctx / e->bs + 1), sizeof *e->matched);
	if (mllm__thread_start(&e->thread, engine_main, e) != 0) {
		rc = mllm__seterr(err, errlen, MLLM_EINTERNAL, "engine: cannot start its thread");
		goto fail;
	}
	e->thread_started = true;
	{
		int64_t kb = 0;
		size_t kv_bytes = 0;
		if (mllm_kv_pool_size(mllm_model_hparams(m), &e->p.kv, &kb, &kv_bytes) != 0)
			kv_bytes = 0;
		MLLM_LOG(MLLM_LOG_INFO,
		         "model %s: n_ctx %d, KV cache %lld blocks of %d tokens (%s, %.1f MiB), "
		         "batch %d tokens, %d running, queue %d",
		         p->name ? p->name : mllm_model_path(m), e->n_ctx, (long long)nb, e->bs,
		         e->p.kv.q8    ? "int8"
		         : e->p.kv.f16 ? "f16"
		                       : "f32",
		         (double)kv_bytes / 1048576.0, e->n_batch_max, e->p.max_running,
		         e->p.max_queue);
	}
	*out = e;
	return MLLM_OK;
fail:
	mllm_engine_free(e);
	return rc;
}

void mllm_engine_free(mllm_engine *e)
{
	mllm_request *in;
	if (!e)
		return;
	if (e->thread_started) {
		atomic_store(&e->quit, true);
		pthread_mutex_lock(&e->mu);
		e->stopping = true;
		pthread_cond_signal(&e->cv);
		pthread_mutex_unlock(&e->mu);
		pthread_join(e->thread, NULL);
		/* The thread is gone: this thread now owns its state. Every
		 * request not yet finished ends with MLLM_ESHUTDOWN. */
		while (e->n_active > 0)
			request_error(e, e->active[0], MLLM_ESHUTDOWN);
		in = e->inbox_head;
		e->inbox_head = e->inbox_tail = NULL;
		while (in) {
			mllm_request *r = in;
			in = in->next;
			request_error(e, r, MLLM_ESHUTDOWN);
		}
		while (e->wait_head) {
			mllm_request *r = e->wait_head;
			e->wait_head = r->next;
			request_error(e, r, MLLM_ESHUTDOWN);
		}
		mllm__notify(e);
	}
	mllm__pc_free(e);
	mllm_ctx_free(e->ctx);
	mllm_kv_free(e->kv);
	mllm_sampler_ws_free(e->ws);
	mllm_vtrie_free(e->vtrie);
	free(e->logits);
	free(e->b_token);
	free(e->b_pos);
	free(e->b_seq);
	free(e->b_logits);
	free(e->b_tables);
	free(e->active);
	free(e->running);
	free(e->c_done);
	free(e->matched);
	if (e->mu_init) {
		pthread_mutex_destroy(&e->mu);
		pthread_cond_destroy(&e->cv);
	}
	free(e);
}

int mllm_engine_submit(mllm_engine *e, const mllm_submit *s, mllm_request **out)
{
	mllm_request *r;
	int64_t nb, fp, need;
	int rc;

	*out = NULL;
	if (!e || !s || !s->prompt || s->n_prompt == 0 || s->n_choices < 1)
		return MLLM_EINVAL;
	rc = mllm_sampling_validate(&s->sampling, e->n_vocab);
	if (rc)
		return rc;
	if (s->n_choices > e->p.max_running)
		return MLLM_EINVAL;
	for (size_t i = 0; i < s->n_prompt; i++)
		if (s->prompt[i] < 0 || s->prompt[i] >= e->n_vocab)
			return MLLM_EINVAL;
	/* No silent truncation: prompt + max_tokens must fit the context, and
	 * the request must fit the whole pool, or it could wait forever. */
	if (s->n_prompt > (size_t)e->n_ctx ||
	    (int64_t)s->n_prompt + s->sampling.max_tokens > (int64_t)e->n_ctx)
		return MLLM_ETOOLONG;
	nb = ((int64_t)s->n_prompt + s->sampling.max_tokens + e->bs - 1) / e->bs;
	fp = (int64_t)s->n_prompt / e->bs;
	need = nb + (int64_t)(s->n_choices - 1) * (nb - fp);
	if (need > mllm_kv_n_blocks(e->kv))
		return MLLM_ETOOLONG;

	rc = mllm__request_create(s, &r);
	if (rc)
		return rc;
	rc = mllm__inbox_push(e, r);
	if (rc) {
		mllm__request_destroy(r);
		return rc;
	}
	*out = r;
	return MLLM_OK;
}

void mllm_engine_stats_get(mllm_engine *e, mllm_engine_stats *out)
{
	pthread_mutex_lock(&e->mu);
	*out = e->stats;
	pthread_mutex_unlock(&e->mu);
}

int32_t mllm_engine_n_ctx(const mllm_engine *e)
{
	return e->n_ctx;
}

const mllm_model *mllm_engine_model(const mllm_engine *e)
{
	return e ? e->m : NULL;
}
