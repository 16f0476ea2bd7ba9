/*
 * prep.c — the prep threads: the per-request CPU work between "body read"
 * and "submit to the engine" (JSON parse, chat template, tokenization) and
 * the /tokenize and /detokenize handlers. A 1 MiB prompt takes tens of
 * milliseconds to tokenize, which on the loop thread would stall every other
 * connection (STYLE D1), so it runs here: our own threads (not libuv's shared
 * pool) behind one mutex-protected FIFO, handing finished jobs back on a done
 * list and waking the loop with uv_async_send, whose calls coalesce (D2).
 * Threads never touch a connection or an srv_req: a job carries its inputs
 * and results, and the loop decides what they mean (http.c).
 *
 * Abandoned work is not done: the loop watches a suspended connection for a
 * hang-up and then sets the job's cancel flag, which a queued job is skipped
 * on and a running tokenization checks between words. One connection holds
 * at most one job (MHD reads a connection's next request only after the
 * current one is answered), and max_connections_per_client bounds how many
 * one client address can have queued.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "srv.h"

/* The /tokenize reply bound, as on the loop before (http.c SMALL_LIMIT). */
#define TOKENIZE_OUT_LIMIT ((size_t)16 << 20)

void srv__job_free(srv_job *j)
{
	if (!j)
		return;
	mllm_buf_free(&j->body);
	mllm_buf_free(&j->out);
	api_request_free(j->areq);
	free(j);
}

/* Runs on a prep thread: reads only immutable server state (limits, the
 * model table) and models whose `loaded` flag is set (their info is then
 * final until the prep threads are joined). */
/* The 503 for a configured model still loading (others may already
 * serve). Returns 503. */
static int loading_error(srv_job *j, const char *id)
{
	api_error_set(&j->err, 503, NULL, "loading",
	              "The model '%s' is still loading; retry shortly.", id);
	j->err.retry_after_s = 1;
	return 503;
}

/* For /tokenize and /detokenize (ud: the job): a model still loading is
 * noted, so that the answer is its 503, not an unknown model's 404. */
static const api_model_info *lookup_model(void *ud, const char *id)
{
	srv_job *j = ud;
	srv_model *m = srv__model_find(j->s, id);
	if (m && !atomic_load(&m->loaded)) {
		j->loading = m->cfg->id;
		return NULL;
	}
	return m ? &m->info : NULL;
}

static api_resp_record *lookup_response(void *ud, const char *id)
{
	srv *s = ud;
	return srv_resp_store_get(s->responses, id, mllm_now_ns());
}

static void run_generate(srv_job *j)
{
	srv *s = j->s;
	srv_model *m;

	j->status = api_request_parse(j->akind, j->body.data ? j->body.data : "", j->body.len,
	                              &s->lim, &j->areq, &j->err);
	if (j->status != 0)
		return;
	/* Item references: the stored items they name, read here too. */
	j->status = api_request_resolve_items(j->areq, lookup_response, s, &j->err);
	if (j->status != 0)
		return;
	/* A continuation: the stored response is read here, off the loop
	 * (the store has its own lock), and must exist on this replica. Read
	 * first: without a model of its own the request takes its model. */
	if (api_request_previous_id(j->areq)) {
		const char *id = api_request_previous_id(j->areq);
		api_resp_record *prev = srv_resp_store_get(s->responses, id, mllm_now_ns());
		if (!prev) {
			/* OpenAI's 400 and code, on which clients (Codex, agent
			 * SDKs) resend the whole conversation. */
			j->status = api_error_set(
			    &j->err, 400, "previous_response_id", "previous_response_not_found",
			    "Previous response with id '%.100s' not found (never stored, deleted, "
			    "expired or evicted from this server's store, or kept by another "
			    "replica).",
			    id);
			return;
		}
		api_request_set_previous(j->areq, prev);
		api_resp_record_unref(prev);
	}
	m = srv__model_find(s, api_request_model(j->areq));
	if (m && !atomic_load(&m->loaded)) {
		j->status = loading_error(j, m->cfg->id);
		return;
	}
	if (!m) {
		const char *id = api_request_model(j->areq);
		j->status = api_error_model_not_found(&j->err, id ? id : "(default)");
		return;
	}
	j->m = m;
	if (j->kind == SRV_JOB_INPUT_TOKENS)
		api_request_set_count_only(j->areq);
	j->status = api_request_prepare(j->areq, &m->info, &j->err);
	if (j->status == 0 && j->kind == SRV_JOB_INPUT_TOKENS) {
		mllm_buf_init(&j->out, TOKENIZE_OUT_LIMIT);
		j->status = api_request_render_input_tokens(j->areq, &j->out) < 0 ? -1 : 200;
	}
}

static void run_tokenize(srv_job *j)
{
	srv *s = j->s;
	const char *body = j->body.data ? j->body.data : "";

	mllm_buf_init(&j->out, TOKENIZE_OUT_LIMIT);
	if (j->kind == SRV_JOB_TOKENIZE)
		j->status = api_handle_tokenize(body, j->body.len, &s->lim, lookup_model, j,
		                                &j->out, &j->err);
	else
		j->status = api_handle_detokenize(body, j->body.len, &s->lim, lookup_model, j,
		                                  &j->out, &j->err);
	if (j->status == 404 && j->loading) /* as a generation would be told */
		j->status = loading_error(j, j->loading);
}

static void *prep_main(void *arg)
{
	srv *s = arg;
	srv_prep *p = &s->prep;

	for (;;) {
		srv_job *j;

		pthread_mutex_lock(&p->mu);
		while (!p->stop && !p->head)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stop) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		p->n_queued--;
		pthread_mutex_unlock(&p->mu);

		/* A job whose request went away is only handed back, to be
		 * freed on the loop (its owner). */
		if (!atomic_load(&j->cancelled)) {
			/* A hang-up noticed meanwhile (the loop sets the flag)
			 * stops tokenization between words. */
			mllm_tokenizer_cancel_watch(&j->cancelled);
			if (j->kind == SRV_JOB_GENERATE || j->kind == SRV_JOB_INPUT_TOKENS)
				run_generate(j);
			else
				run_tokenize(j);
			mllm_tokenizer_cancel_watch(NULL);
		}
		/* The body is no longer needed; drop it here rather than hold
		 * up to max_body_bytes until the loop gets round to it. */
		mllm_buf_free(&j->body);

		pthread_mutex_lock(&p->mu);
		j->next = p->done;
		p->done = j;
		pthread_mutex_unlock(&p->mu);
		uv_async_send(&s->wake);
	}
}

int srv__prep_start(srv *s, char *err, size_t errlen)
{
	srv_prep *p = &s->prep;
	int n = (int)s->cfg->prep_threads;
	int rc;

	MLLM_ASSERT(!p->inited);
	rc = pthread_mutex_init(&p->mu, NULL);
	if (rc != 0)
		return mllm__seterr(err, errlen, MLLM_EINTERNAL, "prep queue: %s", strerror(rc));
	rc = pthread_cond_init(&p->cv, NULL);
	if (rc != 0) {
		pthread_mutex_destroy(&p->mu);
		return mllm__seterr(err, errlen, MLLM_EINTERNAL, "prep queue: %s", strerror(rc));
	}
	p->inited = true;
	p->threads = xcalloc((size_t)(n > 0 ? n : 1), sizeof *p->threads);
	for (int i = 0; i < n; i++) {
		rc = pthread_create(&p->threads[i], NULL, prep_main, s);
		if (rc != 0)
			return mllm__seterr(err, errlen, MLLM_EINTERNAL,
			                    "cannot start prep thread %d: %s", i, strerror(rc));
		p->n_threads = i + 1;
	}
	return 0;
}

int srv__prep_submit(srv *s, srv_job *job)
{
	srv_prep *p = &s->prep;
	int rc = 0;

	MLLM_ASSERT(p->inited);
	pthread_mutex_lock(&p->mu);
	if (p->stop || p->n_threads == 0) {
		rc = MLLM_ESHUTDOWN;
	} else if (p->n_queued >= (int)s->cfg->max_connections) {
		/* Cannot happen while each job holds a suspended connection
		 * (MHD admits at most max_connections); kept as the bound. */
		rc = MLLM_EOVERLOADED;
	} else {
		job->next = NULL;
		if (p->tail)
			p->tail->next = job;
		else
			p->head = job;
		p->tail = job;
		p->n_queued++;
		pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return rc;
}

srv_job *srv__prep_take_done(srv *s)
{
	srv_prep *p = &s->prep;
	srv_job *j;

	if (!p->inited)
		return NULL;
	pthread_mutex_lock(&p->mu);
	j = p->done;
	p->done = NULL;
	pthread_mutex_unlock(&p->mu);
	return j;
}

static void free_list(srv_job *j)
{
	while (j) {
		srv_job *next = j->next;
		srv__job_free(j);
		j = next;
	}
}

void srv__prep_stop(srv *s)
{
	srv_prep *p = &s->prep;

	if (!p->inited)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->n_threads; i++)
		pthread_join(p->threads[i], NULL);
	p->n_threads = 0;
	free(p->threads);
	p->threads = NULL;
	/* Threads are gone: the lists are ours without the lock. */
	free_list(p->head);
	free_list(p->done);
	p->head = p->tail = p->done = NULL;
	p->n_queued = 0;
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	p->inited = false;
}
