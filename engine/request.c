/*
 * request.c — the request object and its plumbing: creation (a deep copy of
 * the submit), the inbox it enters the engine by, the per-request outbox the
 * engine pushes events into and the caller polls, cancel/release and the
 * reference count, and the coalesced notify. Any thread may call in here;
 * the locks are r->mu (outbox, r->e) and e->mu (inbox), always in that order.
 * No model math and no KV blocks: those are scheduler.c's and prefix_cache.c's.
 */
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

/* ---- Outbox (any thread, under r->mu) -------------------------------------- */

static size_t arena_put(mllm_request *r, const char *p, size_t n)
{
	size_t off = r->arena_len;
	if (n == 0)
		return off;
	if (r->arena_len + n > r->arena_cap) {
		size_t cap = r->arena_cap ? r->arena_cap : 256;
		while (cap < r->arena_len + n)
			cap *= 2;
		r->arena = xrealloc(r->arena, cap);
		r->arena_cap = cap;
	}
	memcpy(r->arena + off, p, n);
	r->arena_len += n;
	return off;
}

void mllm__push_event(mllm_engine *e, mllm_request *r, const mllm_event *ev, const char *text,
                      size_t text_len, const char *tok_text, size_t tok_len)
{
	outbox_entry *o;
	e->notify_pending = true;
	pthread_mutex_lock(&r->mu);
	if (r->q_head + r->q_len == r->q_cap) {
		if (r->q_head > 0) {
			memmove(r->q, r->q + r->q_head, r->q_len * sizeof *r->q);
			r->q_head = 0;
		}
		if (r->q_len == r->q_cap) {
			r->q_cap = r->q_cap ? r->q_cap * 2 : 16;
			r->q = xrealloc(r->q, r->q_cap * sizeof *r->q);
		}
	}
	o = &r->q[r->q_head + r->q_len++];
	o->ev = *ev;
	o->ev.text = NULL;
	o->ev.token_text = NULL;
	o->ev.token_out = NULL;
	o->text_len = text_len;
	o->text_off = arena_put(r, text, text_len);
	o->tok_len = tok_len;
	o->tok_off = arena_put(r, tok_text, tok_len);
	o->out_len = ev->token_out_len;
	o->out_off = arena_put(r, ev->token_out, ev->token_out_len);
	pthread_mutex_unlock(&r->mu);
}

int mllm_request_poll(mllm_request *r, mllm_event *ev)
{
	outbox_entry *o;
	size_t need;
	pthread_mutex_lock(&r->mu);
	if (r->q_len == 0) {
		pthread_mutex_unlock(&r->mu);
		return 0;
	}
	o = &r->q[r->q_head];
	need = o->text_len + o->tok_len + o->out_len + 3;
	if (need > r->cur_cap) {
		r->cur = xrealloc(r->cur, need);
		r->cur_cap = need;
	}
	if (o->text_len)
		memcpy(r->cur, r->arena + o->text_off, o->text_len);
	r->cur[o->text_len] = '\0';
	if (o->tok_len)
		memcpy(r->cur + o->text_len + 1, r->arena + o->tok_off, o->tok_len);
	r->cur[o->text_len + 1 + o->tok_len] = '\0';
	if (o->out_len)
		memcpy(r->cur + o->text_len + o->tok_len + 2, r->arena + o->out_off, o->out_len);
	r->cur[o->text_len + o->tok_len + 2 + o->out_len] = '\0';
	*ev = o->ev;
	ev->text = r->cur;
	ev->text_len = o->text_len;
	ev->token_text = r->cur + o->text_len + 1;
	ev->token_text_len = o->tok_len;
	ev->token_out = r->cur + o->text_len + o->tok_len + 2;
	ev->token_out_len = o->out_len;
	r->q_head++;
	r->q_len--;
	if (r->q_len == 0) {
		r->q_head = 0;
		r->arena_len = 0;
	}
	pthread_mutex_unlock(&r->mu);
	return 1;
}

/* ---- Requests: creation and the inbox --------------------------------------- */

int mllm__request_create(const mllm_submit *s, mllm_request **out)
{
	mllm_request *r;

	*out = NULL;
	r = mllm_try_calloc(1, sizeof *r);
	if (!r)
		return MLLM_ENOMEM;
	pthread_mutex_init(&r->mu, NULL);
	atomic_init(&r->refs, 2);
	atomic_init(&r->cancelled, false);
	r->n_prompt = (int32_t)s->n_prompt;
	r->n_choices = s->n_choices;
	r->user = s->user;
	r->samp = s->sampling;
	r->samp.logit_bias = NULL;
	r->samp.stop = NULL;
	mllm_grammar_ref(r->samp.grammar); /* dropped in request_destroy */
	r->prompt = mllm_try_malloc(s->n_prompt * sizeof *r->prompt);
	if (!r->prompt)
		goto nomem;
	memcpy(r->prompt, s->prompt, s->n_prompt * sizeof *r->prompt);
	if (s->sampling.n_logit_bias > 0) {
		r->bias = mllm_try_malloc((size_t)s->sampling.n_logit_bias * sizeof *r->bias);
		if (!r->bias)
			goto nomem;
		memcpy(r->bias, s->sampling.logit_bias,
		       (size_t)s->sampling.n_logit_bias * sizeof *r->bias);
		r->samp.logit_bias = r->bias;
	}
	for (int32_t i = 0; i < s->sampling.n_stop; i++) {
		size_t len = strlen(s->sampling.stop[i]);
		r->stop[i] = mllm_try_malloc(len + 1);
		if (!r->stop[i])
			goto nomem;
		memcpy(r->stop[i], s->sampling.stop[i], len + 1);
	}
	if (s->sampling.n_stop > 0)
		r->samp.stop = (const char *const *)r->stop;
	if (s->session_id) {
		size_t len = strlen(s->session_id);
		r->session_id = mllm_try_malloc(len + 1);
		if (!r->session_id)
			goto nomem;
		memcpy(r->session_id, s->session_id, len + 1);
	}
	*out = r;
	return MLLM_OK;
nomem:
	mllm__request_destroy(r);
	return MLLM_ENOMEM;
}

int mllm__inbox_push(mllm_engine *e, mllm_request *r)
{
	int rc;

	pthread_mutex_lock(&e->mu);
	if (e->stopping) {
		rc = MLLM_ESHUTDOWN;
	} else if (e->n_queued >= e->p.max_queue) {
		rc = MLLM_EOVERLOADED;
	} else {
		rc = MLLM_OK;
		r->e = e;
		r->state = RQ_INBOX;
		if (e->inbox_tail)
			e->inbox_tail->next = r;
		else
			e->inbox_head = r;
		e->inbox_tail = r;
		r->queued = true;
		e->n_queued++;
		e->stats.n_queued = e->n_queued;
		e->wake = true;
		pthread_cond_signal(&e->cv);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

/* ---- Requests: lifetime ---------------------------------------------------- */

void mllm__request_destroy(mllm_request *r)
{
	free(r->q);
	free(r->arena);
	free(r->cur);
	free(r->prompt);
	free(r->bias);
	for (int i = 0; i < MLLM_MAX_STOP; i++)
		free(r->stop[i]);
	free(r->session_id);
	mllm_grammar_unref(r->samp.grammar);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

static void request_unref(mllm_request *r)
{
	if (atomic_fetch_sub(&r->refs, 1) == 1)
		mllm__request_destroy(r);
}

void mllm_request_cancel(mllm_request *r)
{
	if (!r)
		return;
	atomic_store(&r->cancelled, true);
	/* r->mu keeps r->e alive-or-NULL while we wake the engine. Lock order
	 * is always r->mu before e->mu. */
	pthread_mutex_lock(&r->mu);
	if (r->e) {
		pthread_mutex_lock(&r->e->mu);
		/* A cancelled request no longer holds a place in the queue,
		 * although the engine ends it only between steps. */
		mllm__unqueue_locked(r->e, r);
		r->e->wake = true;
		pthread_cond_signal(&r->e->cv);
		pthread_mutex_unlock(&r->e->mu);
	}
	pthread_mutex_unlock(&r->mu);
}

void mllm_request_release(mllm_request *r)
{
	if (!r)
		return;
	mllm_request_cancel(r);
	request_unref(r);
}

void *mllm_request_user(const mllm_request *r)
{
	return r ? r->user : NULL;
}

void mllm__unqueue_locked(mllm_engine *e, mllm_request *r)
{
	if (!r->queued)
		return;
	r->queued = false;
	e->n_queued--;
	e->stats.n_queued = e->n_queued;
}

void mllm__unqueue(mllm_engine *e, mllm_request *r)
{
	pthread_mutex_lock(&e->mu);
	mllm__unqueue_locked(e, r);
	pthread_mutex_unlock(&e->mu);
}

void mllm__requeue(mllm_engine *e, mllm_request *r)
{
	pthread_mutex_lock(&e->mu);
	if (!r->queued && !atomic_load(&r->cancelled)) {
		r->queued = true;
		e->n_queued++;
		e->stats.n_queued = e->n_queued;
	}
	pthread_mutex_unlock(&e->mu);
}

/* The engine lets go of a request after its final event (one still
 * counted as queued leaves the count). */
void mllm__request_drop(mllm_request *r)
{
	pthread_mutex_lock(&r->mu);
	if (r->e)
		mllm__unqueue(r->e, r);
	r->e = NULL;
	pthread_mutex_unlock(&r->mu);
	r->state = RQ_FINISHED;
	request_unref(r);
}

void mllm__notify(mllm_engine *e)
{
	if (e->notify_pending && e->p.notify)
		e->p.notify(e->p.notify_ud);
	e->notify_pending = false;
}
