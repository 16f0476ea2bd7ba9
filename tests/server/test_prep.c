/*
 * test_prep.c — server/prep.c, white-box: jobs submitted from the "loop"
 * (this thread, with a real uv loop and async handle) are parsed and
 * tokenized on the prep threads and come back exactly once through the done
 * list with the statuses the loop used to compute itself; a job cancelled
 * before it starts comes back untouched; a cancel flag set while a job
 * tokenizes stops it (the tokenizer's cancel hook) without changing what
 * an uncancelled tokenization returns; stopping with jobs still queued
 * joins the threads and frees them. The HTTP side (suspend/resume, replies,
 * hangups, shutdown) is covered by tests/integration/test_serve_prep.sh.
 */
#include "harness.h"

#include "../../server/prep.c"

#define MAX_JOBS 64

typedef struct {
	srv s;
	cfg_t cfg;
	uv_loop_t loop;
	srv_model model;
	cfg_model cm;
	mllm_model *mm;
	srv_job *got[MAX_JOBS];
	int n_got;
} fixture;

static void on_wake(uv_async_t *h)
{
	fixture *f = h->data;
	srv_job *j = srv__prep_take_done(&f->s);

	while (j) {
		srv_job *next = j->next;
		ck_assert_int_lt(f->n_got, MAX_JOBS);
		f->got[f->n_got++] = j;
		j = next;
	}
}

static void fixture_open(fixture *f, int n_threads, bool with_model)
{
	char err[256], path[512];

	memset(f, 0, sizeof *f);
	cfg_init(&f->cfg);
	f->cfg.prep_threads = n_threads;
	f->s.cfg = &f->cfg;
	f->s.lim = API_LIMITS_DEFAULT;
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	ck_assert_int_eq(uv_async_init(&f->loop, &f->s.wake, on_wake), 0);
	f->s.wake.data = f;
	if (with_model) {
		mllm_model_params mp = MLLM_MODEL_PARAMS_DEFAULT;
		mllm_test_path(path, sizeof path, "models/stories260K");
		MLLM_REQUIRE_FIXTURE(path);
		ck_assert_int_eq(mllm_model_open(path, &mp, &f->mm, err, sizeof err), 0);
		f->cm.id = "st";
		f->model.cfg = &f->cm;
		f->model.s = &f->s;
		f->model.info.id = "st";
		f->model.info.tok = mllm_model_tokenizer(f->mm);
		f->model.info.n_ctx = 512;
		atomic_init(&f->model.loaded, true);
		f->s.models = &f->model;
		f->s.n_models = 1;
	}
	ck_assert_int_eq(srv__prep_start(&f->s, err, sizeof err), 0);
}

static void fixture_close(fixture *f)
{
	srv__prep_stop(&f->s);
	for (int i = 0; i < f->n_got; i++)
		srv__job_free(f->got[i]);
	uv_close((uv_handle_t *)&f->s.wake, NULL);
	ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
	mllm_model_close(f->mm);
	cfg_free(&f->cfg);
}

static srv_job *job_new(fixture *f, srv_job_kind kind, api_kind akind, const char *body)
{
	srv_job *j = xcalloc(1, sizeof *j);

	j->kind = kind;
	j->akind = akind;
	j->s = &f->s;
	atomic_init(&j->cancelled, false);
	mllm_buf_init(&j->body, 1 << 20);
	ck_assert_int_eq(mllm_buf_append(&j->body, body, strlen(body)), 0);
	return j;
}

static void wait_for(fixture *f, int n)
{
	while (f->n_got < n)
		uv_run(&f->loop, UV_RUN_ONCE);
	ck_assert_int_eq(f->n_got, n);
}

START_TEST(test_roundtrip)
{
	static const struct {
		srv_job_kind kind;
		api_kind akind;
		const char *body;
		int status;
	} cases[] = {
	    {SRV_JOB_GENERATE, API_COMPLETION, "{\"model\":\"st\",\"prompt\":\"Once upon\"}", 0},
	    {SRV_JOB_GENERATE, API_CHAT,
	     "{\"model\":\"st\",\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}", 0},
	    {SRV_JOB_GENERATE, API_COMPLETION, "{\"model\":\"st\",\"prompt\":", 400},
	    {SRV_JOB_GENERATE, API_COMPLETION, "{\"model\":\"nope\",\"prompt\":\"a\"}", 404},
	    {SRV_JOB_GENERATE, API_COMPLETION,
	     "{\"model\":\"st\",\"prompt\":\"a\",\"max_tokens\":100000}", 400},
	    {SRV_JOB_TOKENIZE, API_COMPLETION, "{\"model\":\"st\",\"prompt\":\"Once upon\"}", 200},
	    {SRV_JOB_TOKENIZE, API_COMPLETION, "{\"model\":\"nope\",\"prompt\":\"a\"}", 404},
	    {SRV_JOB_DETOKENIZE, API_COMPLETION, "{\"model\":\"st\",\"tokens\":[1,2,3]}", 200},
	    {SRV_JOB_DETOKENIZE, API_COMPLETION, "[]", 400},
	};
	enum { N = sizeof cases / sizeof cases[0], ROUNDS = 3 };
	srv_job *sent[N * ROUNDS];
	fixture f;

	fixture_open(&f, 2, true);
	for (int i = 0; i < N * ROUNDS; i++) {
		sent[i] = job_new(&f, cases[i % N].kind, cases[i % N].akind, cases[i % N].body);
		ck_assert_int_eq(srv__prep_submit(&f.s, sent[i]), 0);
	}
	wait_for(&f, N * ROUNDS);
	for (int i = 0; i < N * ROUNDS; i++) {
		srv_job *j = NULL;
		int n = 0;
		for (int k = 0; k < f.n_got; k++) {
			if (f.got[k] == sent[i]) {
				j = f.got[k];
				n++;
			}
		}
		ck_assert_msg(n == 1, "job %d came back %d times", i, n);
		ck_assert_msg(j->status == cases[i % N].status, "job %d: status %d, want %d", i,
		              j->status, cases[i % N].status);
		ck_assert_ptr_null(j->body.data); /* dropped on the prep thread */
		if (j->kind == SRV_JOB_GENERATE) {
			/* Parsed requests carry the model (even when prepare
			 * refused them), for the loop's log line. */
			if (j->status == 0 || j->status == 400) {
				if (j->areq)
					ck_assert_ptr_eq(j->m, &f.model);
			}
			if (j->status == 0)
				ck_assert_int_gt(api_request_n_submits(j->areq), 0);
			if (j->status == 404)
				ck_assert_ptr_nonnull(j->areq);
		} else if (j->status == 200) {
			ck_assert_uint_gt(j->out.len, 0);
		} else {
			ck_assert_int_eq(j->out.len, 0);
		}
	}
	fixture_close(&f);
}
END_TEST

/* A configured model still loading: 503 loading with Retry-After for a
 * request naming it (others may be served meanwhile), 404 for an unknown
 * one, and served once it is up. */
START_TEST(test_model_loading)
{
	static const char *const bodies[] = {"{\"model\":\"st\",\"prompt\":\"a\"}",
	                                     "{\"model\":\"nope\",\"prompt\":\"a\"}",
	                                     "{\"model\":\"st\",\"prompt\":\"a\"}"};
	fixture f;

	fixture_open(&f, 1, true);
	atomic_store(&f.model.loaded, false);
	for (int i = 0; i < 3; i++) {
		srv_job *j = job_new(&f, SRV_JOB_GENERATE, API_COMPLETION, bodies[i]);
		if (i == 2)
			atomic_store(&f.model.loaded, true);
		ck_assert_int_eq(srv__prep_submit(&f.s, j), 0);
		wait_for(&f, i + 1);
	}
	ck_assert_int_eq(f.got[0]->status, 503);
	ck_assert_str_eq(f.got[0]->err.code, "loading");
	ck_assert_int_gt(f.got[0]->err.retry_after_s, 0);
	ck_assert_int_eq(f.got[1]->status, 404);
	ck_assert_int_eq(f.got[2]->status, 0);
	fixture_close(&f);
}
END_TEST

START_TEST(test_cancelled_skipped)
{
	fixture f;
	srv_job *j;

	fixture_open(&f, 1, true);
	j = job_new(&f, SRV_JOB_GENERATE, API_COMPLETION, "{\"model\":\"st\",\"prompt\":\"a\"}");
	atomic_store(&j->cancelled, true);
	ck_assert_int_eq(srv__prep_submit(&f.s, j), 0);
	wait_for(&f, 1);
	ck_assert_ptr_eq(f.got[0], j);
	ck_assert_int_eq(j->status, 0);
	ck_assert_ptr_null(j->areq);
	ck_assert_ptr_null(j->body.data);
	fixture_close(&f);
}
END_TEST

/* The hook the prep threads set around each job: a flag that stays false
 * changes nothing, a set flag ends the encode with MLLM_ECANCELLED, and the
 * watch is per thread (cleared, the next encode runs normally). Then the
 * same through a /tokenize job run as a prep thread runs it. */
START_TEST(test_cancel_during_tokenize)
{
	fixture f;
	const mllm_tokenizer *tok;
	atomic_bool flag;
	char *text = xmalloc(200000);
	size_t len = 0, n1 = 0, n2 = 0, cap;
	int32_t *a, *b;
	srv_job *j;
	char *body;

	fixture_open(&f, 1, true);
	tok = f.model.info.tok;
	for (int i = 0; len + 16 < 200000; i++)
		len += (size_t)snprintf(text + len, 200000 - len, "w%dq%x ", i, i * 7919);
	cap = mllm_tokenizer_max_ids(tok, len);
	a = xcalloc(cap, sizeof *a);
	b = xcalloc(cap, sizeof *b);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, len, true, a, cap, &n1), 0);
	atomic_init(&flag, false);
	mllm_tokenizer_cancel_watch(&flag);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, len, true, b, cap, &n2), 0);
	ck_assert_uint_eq(n1, n2);
	ck_assert_int_eq(memcmp(a, b, n1 * sizeof *a), 0);
	atomic_store(&flag, true);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, len, true, b, cap, &n2), MLLM_ECANCELLED);
	mllm_tokenizer_cancel_watch(NULL);
	ck_assert_int_eq(mllm_tokenizer_encode(tok, text, len, true, b, cap, &n2), 0);
	ck_assert_uint_eq(n1, n2);

	/* A /tokenize job whose flag is set while it runs (here: before the
	 * prep code's tokenization, after the skip check) gives no body. */
	body = xmalloc(len + 64);
	snprintf(body, len + 64, "{\"model\":\"st\",\"prompt\":\"%.*s\"}", (int)len, text);
	j = job_new(&f, SRV_JOB_TOKENIZE, API_COMPLETION, body);
	atomic_store(&j->cancelled, true);
	mllm_tokenizer_cancel_watch(&j->cancelled);
	run_tokenize(j);
	mllm_tokenizer_cancel_watch(NULL);
	ck_assert_int_ne(j->status, 200);
	ck_assert_uint_eq(j->out.len, 0);
	srv__job_free(j);
	j = job_new(&f, SRV_JOB_TOKENIZE, API_COMPLETION, body);
	run_tokenize(j);
	ck_assert_int_eq(j->status, 200);
	srv__job_free(j);

	free(body);
	free(a);
	free(b);
	free(text);
	fixture_close(&f);
}
END_TEST

START_TEST(test_stop_with_queued_jobs)
{
	fixture f;

	/* No model: every job is a quick 404, but many are still queued or
	 * on the done list when the stop comes; the stop joins the thread
	 * and frees them (sanitizer builds check for leaks). */
	fixture_open(&f, 1, false);
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(
		    srv__prep_submit(
		        &f.s, job_new(&f, SRV_JOB_TOKENIZE, API_COMPLETION, "{\"prompt\":\"a\"}")),
		    0);
	fixture_close(&f);
	/* Stopping a never-started prep is a no-op. */
	{
		srv s;
		memset(&s, 0, sizeof s);
		srv__prep_stop(&s);
		ck_assert_ptr_null(srv__prep_take_done(&s));
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("prep");
	TCase *tc = tcase_create("prep");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roundtrip);
	tcase_add_test(tc, test_model_loading);
	tcase_add_test(tc, test_cancelled_skipped);
	tcase_add_test(tc, test_cancel_during_tokenize);
	tcase_add_test(tc, test_stop_with_queued_jobs);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
