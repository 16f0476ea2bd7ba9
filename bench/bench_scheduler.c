/*
 * bench_scheduler.c — continuous batching under load: C concurrent requests
 * (C = 1, 4, 16, 64 by default), each a short random prompt and N generated
 * tokens (ignore_eos), all submitted at once to one engine. Prints the
 * aggregate generated tokens/s, time to first token (median / p90) and
 * per-request latency (median / p90). Figures only; nothing passes or fails.
 *
 * A MobileLLM-125M-shaped model with random weights (needs numpy):
 *   sh tools/make_bench_model.sh build/bench-models
 * Then (`make bench` runs exactly this, via bench/run.sh):
 *   make BUILD=build build/bench/bench_scheduler
 *   build/bench/bench_scheduler build/bench-models/mobilellm-125m-f16 -q8
 *       [-n 128] [-p 32] [-s 0] [-c 1,4,16,64] [-t threads]
 * Columns: aggregate generated tokens/s, TTFT and end-to-end latency from
 * submission (ms), engine steps, and per step the time in mllm_forward()
 * versus the rest of the engine thread's work (batching, sampling, events).
 * -s N gives every prompt a common N-token prefix (a system prompt) that one
 * request computes before the round: the prefix cache's effect on TTFT.
 * -q8 converts the weights to Q8_0 at load (the llama.cpp anchor used Q8_0).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "kernels.h"
#include "base.h"

typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t seq; /* bumped by every notify */
} waker;

static void on_notify(void *ud)
{
	waker *w = ud;
	pthread_mutex_lock(&w->mu);
	w->seq++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *v, int n, double p)
{
	int i = (int)(p * (n - 1) + 0.5);
	qsort(v, (size_t)n, sizeof *v, cmp_u64);
	return (double)v[i] / 1e6;
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng % n);
}

/* One round of C concurrent requests. Returns 0 or an MLLM_E* code. */
/* Submits one request and waits for its end (the warm-up of a shared
 * prefix). */
static int run_one(mllm_engine *e, waker *w, const int32_t *prompt, size_t n)
{
	mllm_sampling s = MLLM_SAMPLING_DEFAULT;
	mllm_request *r = NULL;
	mllm_event ev;
	bool done = false;
	int rc;
	s.temperature = 0.0f;
	s.max_tokens = 1;
	mllm_submit sub = {.prompt = prompt, .n_prompt = n, .n_choices = 1, .sampling = s};
	rc = mllm_engine_submit(e, &sub, &r);
	while (rc == 0 && !done) {
		uint64_t seen;
		pthread_mutex_lock(&w->mu);
		seen = w->seq;
		pthread_mutex_unlock(&w->mu);
		while (mllm_request_poll(r, &ev))
			done = done || ev.kind == MLLM_EV_DONE || ev.kind == MLLM_EV_ERROR;
		pthread_mutex_lock(&w->mu);
		while (!done && w->seq == seen)
			pthread_cond_wait(&w->cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
	}
	mllm_request_release(r);
	return rc;
}

/* One round of C concurrent requests, each n_shared tokens of a common
 * prefix (0: none) then n_prompt of its own. With a shared prefix the
 * prefix cache is on and one request computes the prefix before the round
 * (a system prompt already seen). Returns 0 or an MLLM_E* code. */
/* Bench knobs beyond the token counts: max_tokens asked for (0: n_gen; a
 * larger value is what a chat request without max_tokens asks, and each
 * request is cancelled after n_gen tokens, as a stop string would end it),
 * and the KV pool in MiB (0: sized for every request's full run). */
static int g_max_tokens, g_kv_mib;

static int run_round(const mllm_model *m, int C, int n_gen, int n_shared, int n_prompt,
                     int n_threads, bool quiet)
{
	const mllm_hparams *hp = mllm_model_hparams(m);
	mllm_engine_params p = {0};
	waker w = {.seq = 0};
	mllm_engine *e = NULL;
	mllm_request **rs = xcalloc((size_t)C, sizeof *rs);
	uint64_t *ttft = xcalloc((size_t)C, sizeof *ttft);
	uint64_t *lat = xcalloc((size_t)C, sizeof *lat);
	int32_t *prompt = xcalloc((size_t)(n_shared + n_prompt), sizeof *prompt);
	bool *done = xcalloc((size_t)C, sizeof *done);
	char err[256];
	int rc, n_done = 0;
	int64_t n_tokens = 0;
	int *got = xcalloc((size_t)C, sizeof *got);
	uint64_t t0, t_end = 0;
	mllm_engine_stats st;

	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	p.kv.block_size = 16;
	p.kv.n_blocks = (int64_t)(C + 1) * ((n_shared + n_prompt + n_gen) / 16 + 2) + 16;
	if (g_kv_mib > 0) {
		int64_t runs = hp->layer_sharing ? 2 * (int64_t)hp->n_layer : hp->n_layer;
		int64_t block = runs * 2 * 16 * (int64_t)hp->n_head_kv * hp->head_dim * 4;
		p.kv.n_blocks = ((int64_t)g_kv_mib << 20) / block;
	}
	p.n_threads = n_threads;
	p.max_batch_tokens = 512;
	p.max_running = C > 64 ? C : 64;
	p.max_queue = C + 1;
	p.prefix_cache = n_shared > 0; /* else every prompt is distinct */
	p.notify = on_notify;
	p.notify_ud = &w;
	rc = mllm_engine_create(m, &p, &e, err, sizeof err);
	if (rc) {
		fprintf(stderr, "engine: %s\n", err);
		goto out;
	}
	mllm_sampling s = MLLM_SAMPLING_DEFAULT;
	s.temperature = 0.0f;
	s.max_tokens = g_max_tokens > n_gen ? g_max_tokens : n_gen;
	s.ignore_eos = true;
	uint64_t saved = rng;
	rng = 0x5851f42d4c957f2dULL; /* the same shared prefix every round */
	prompt[0] = hp->bos_id >= 0 ? hp->bos_id : 1;
	for (int k = 1; k < n_shared + n_prompt; k++)
		prompt[k] = 3 + (int32_t)rnd((uint32_t)hp->n_vocab - 3);
	rng = saved;
	if (n_shared > 0) {
		rc = run_one(e, &w, prompt, (size_t)(n_shared + n_prompt));
		if (rc)
			goto out;
	}
	t0 = mllm_now_ns();
	for (int i = 0; i < C; i++) {
		for (int k = n_shared > 0 ? n_shared : 1; k < n_shared + n_prompt; k++)
			prompt[k] = 3 + (int32_t)rnd((uint32_t)hp->n_vocab - 3);
		mllm_submit sub = {.prompt = prompt,
		                   .n_prompt = (size_t)(n_shared + n_prompt),
		                   .n_choices = 1,
		                   .sampling = s};
		rc = mllm_engine_submit(e, &sub, &rs[i]);
		if (rc) {
			fprintf(stderr, "submit: %s\n", mllm_strerror(rc));
			goto out;
		}
	}
	while (n_done < C) {
		uint64_t seen;
		pthread_mutex_lock(&w.mu);
		seen = w.seq;
		pthread_mutex_unlock(&w.mu);
		for (int i = 0; i < C; i++) {
			mllm_event ev;
			while (!done[i] && mllm_request_poll(rs[i], &ev)) {
				if (ev.kind == MLLM_EV_TOKEN) {
					n_tokens++;
					if (++got[i] == n_gen && g_max_tokens > n_gen)
						mllm_request_cancel(rs[i]);
				} else if (ev.kind == MLLM_EV_DONE || ev.kind == MLLM_EV_ERROR) {
					if (ev.kind == MLLM_EV_ERROR) {
						fprintf(stderr, "request: %s\n",
						        mllm_strerror(ev.err));
						rc = ev.err;
					}
					ttft[i] =
					    ev.t_first_token_ns > t0 ? ev.t_first_token_ns - t0 : 0;
					lat[i] = ev.t_done_ns - t0;
					if (ev.t_done_ns > t_end)
						t_end = ev.t_done_ns;
					done[i] = true;
					n_done++;
				}
			}
		}
		pthread_mutex_lock(&w.mu);
		while (w.seq == seen && n_done < C)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
	}
	mllm_engine_stats_get(e, &st);
	if (!quiet && rc == 0) {
		double secs = (double)(t_end - t0) / 1e9;
		printf("%4d  %9.1f  %8.1f  %8.1f  %9.1f  %9.1f  %6lld  %7.2f  %6.3f\n", C,
		       (double)n_tokens / secs, pct_ms(ttft, C, 0.5), pct_ms(ttft, C, 0.9),
		       pct_ms(lat, C, 0.5), pct_ms(lat, C, 0.9), (long long)st.n_steps,
		       st.n_steps ? (double)st.forward_ns / 1e6 / (double)st.n_steps : 0.0,
		       st.n_steps ? (double)(st.busy_ns - st.forward_ns) / 1e6 / (double)st.n_steps
		                  : 0.0);
		if (st.n_preemptions > 0)
			printf("      preemptions: %lld\n", (long long)st.n_preemptions);
		if (n_shared > 0)
			printf("      prefix cache: %lld hits, %lld of %lld prompt tokens reused\n",
			       (long long)st.prefix_hits, (long long)st.prefix_tokens_reused,
			       (long long)st.n_prompt_tokens);
		fflush(stdout);
	}
out:
	for (int i = 0; i < C; i++)
		mllm_request_release(rs[i]);
	mllm_engine_free(e);
	pthread_mutex_destroy(&w.mu);
	pthread_cond_destroy(&w.cv);
	free(rs);
	free(ttft);
	free(lat);
	free(prompt);
	free(done);
	free(got);
	return rc;
}

int main(int argc, char **argv)
{
	const char *path = NULL, *list = "1,4,16,64";
	int n_gen = 128, n_prompt = 32, n_threads = 0, n_shared = 0;
	bool q8 = false;
	char err[512];
	mllm_model *m = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			n_gen = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-p") && i + 1 < argc)
			n_prompt = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			n_shared = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-c") && i + 1 < argc)
			list = argv[++i];
		else if (!strcmp(argv[i], "-t") && i + 1 < argc)
			n_threads = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-q8"))
			q8 = true;
		else if (!strcmp(argv[i], "-m") && i + 1 < argc)
			g_max_tokens = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-kv") && i + 1 < argc)
			g_kv_mib = atoi(argv[++i]);
		else if (argv[i][0] != '-')
			path = argv[i];
	}
	if (!path || n_gen < 1 || n_prompt < 1 || n_shared < 0) {
		fprintf(stderr,
		        "usage: %s MODEL [-n tokens] [-p prompt] [-s shared] [-c 1,4,16,64] "
		        "[-t threads] [-q8] [-m max_tokens] [-kv MiB]\n",
		        argv[0]);
		return 2;
	}
	mllm_model_params mp = MLLM_MODEL_PARAMS_DEFAULT;
	mp.n_threads = n_threads;
	if (q8)
		mp.convert_to = MLLM_DTYPE_Q8_0;
	if (mllm_model_open(path, &mp, &m, err, sizeof err)) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	const mllm_hparams *hp = mllm_model_hparams(m);
	printf("model %s: %d layers, dim %d, vocab %d, %s%s; %s\n", path, hp->n_layer, hp->n_embd,
	       hp->n_vocab, mllm_dtype_name(hp->wtype), q8 ? " -> Q8_0" : "", mllm_cpu_describe());
	printf("%d-token prompts (+%d shared), %d generated tokens per request, greedy, "
	       "ignore_eos\n",
	       n_prompt, n_shared, n_gen);
	if (g_max_tokens > n_gen || g_kv_mib > 0)
		printf("max_tokens %d (cancelled after %d), KV pool %d MiB\n",
		       g_max_tokens > n_gen ? g_max_tokens : n_gen, n_gen, g_kv_mib);
	/* Warm-up: page the weights in, start the pools. */
	(void)run_round(m, 1, 8, 0, n_prompt, n_threads, true);
	printf("   C  tok/s(agg)  ttft p50  ttft p90  lat p50ms  lat p90ms   steps  fwd ms/step  "
	       "sched ms/step\n");
	for (const char *c = list; *c;) {
		int C = atoi(c);
		if (C > 0 && run_round(m, C, n_gen, n_shared, n_prompt, n_threads, false))
			break;
		c = strchr(c, ',');
		if (!c)
			break;
		c++;
	}
	mllm_model_close(m);
	return 0;
}
