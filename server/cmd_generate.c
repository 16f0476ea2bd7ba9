/*
 * cmd_generate.c — `mobilellmd generate`: one prompt through the engine from
 * the command line, for smoke tests and for comparing with other engines.
 *
 * It submits one request to the same scheduler the daemon runs (an engine
 * thread sized for this one sequence), so the sampler, stop handling and
 * seeds are the daemon's: `generate --seed S` draws the tokens that
 * /v1/completions with "seed": S draws for the same prompt. Text streams to
 * stdout as events arrive; --json prints one object at the end, built with
 * jansson. Diagnostics go to stderr.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cmds.h"
#include "log.h"
#include "mllm.h"

#define PREFILL_CHUNK  512
#define KV_BLOCK_SIZE  16
#define MAX_PROMPT_IDS 65536

static void usage(FILE *f)
{
	fprintf(f, "usage: mobilellmd generate --model PATH [--prompt TEXT | --prompt-ids 1,2,3]\n"
	           "                           [--max-tokens N] [--temperature T] [--top-p P]\n"
	           "                           [--seed S] [--stop TEXT]...\n"
	           "                           [--threads N] [--convert f32|f16|bf16|q8_0|q4_0]\n"
	           "                           [--kv-f16 | --kv-f32 | --kv-q8] [--act16] [--json]\n"
	           "                           [--log-level LEVEL]\n"
	           "\n"
	           "  --model PATH      snapshot directory (safetensors or pytorch_model.bin)\n"
	           "                    or a .gguf file\n"
	           "  --prompt TEXT     tokenized, with BOS as the tokenizer config says\n"
	           "  --prompt-ids L    comma-separated ids, used as given (include BOS)\n"
	           "  --max-tokens N    tokens to generate (default 64); stops at EOS\n"
	           "  --temperature T   0 = greedy (default 0), at most 2\n"
	           "  --top-p P         nucleus sampling (default 1)\n"
	           "  --seed S          sampling seed, as the API's \"seed\" (default: random)\n"
	           "  --stop TEXT       stop sequence (up to 4), as the API's \"stop\"\n"
	           "  --threads N       worker threads (default 0: the physical cores this\n"
	           "                    process may use, as the daemon's threads = 0)\n"
	           "  --convert TYPE    re-encode the weights at load (any case)\n"
	           "  --kv-f16          store the KV cache as f16 (default, as the daemon's\n"
	           "                    kv_f16 = true)\n"
	           "  --kv-f32          store it as f32\n"
	           "  --kv-q8           store it as int8 with a scale per token and KV head\n"
	           "                    (as kv_q8 = true)\n"
	           "  --act16           Q4_0 / Q8_0: 16-bit activations, not 8 (as act8 = false)\n"
	           "  --json            print {\"prompt_ids\", \"ids\", \"logprobs\", \"text\",\n"
	           "                    \"finish_reason\"}\n"
	           "  --log-level L     error, warn, info or debug (default warn)\n"
	           "\n"
	           "Sampling is the daemon's: the same prompt, parameters and --seed give the\n"
	           "tokens /v1/completions gives.\n");
}

static int parse_ids(const char *s, int32_t *ids, size_t cap, size_t *n)
{
	*n = 0;
	while (*s) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (end == s || errno || v < 0 || v > INT32_MAX || *n >= cap)
			return -1;
		ids[(*n)++] = (int32_t)v;
		s = end;
		while (*s == ' ')
			s++;
		if (*s == ',') {
			/* one comma between ids: "1,,2" or a trailing comma is a
			 * typo, not an empty id to skip */
			s++;
			while (*s == ' ')
				s++;
			if (*s == '\0' || *s == ',')
				return -1;
		} else if (*s) {
			return -1;
		}
	}
	return *n > 0 ? 0 : -1;
}

/* The engine's notify callback wakes the waiting main thread. */
typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	uint64_t seq;
} waiter;

static void on_notify(void *ud)
{
	waiter *w = ud;
	pthread_mutex_lock(&w->mu);
	w->seq++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static const char *finish_name(mllm_finish f)
{
	switch (f) {
	case MLLM_FINISH_STOP:
		return "stop";
	case MLLM_FINISH_LENGTH:
		return "length";
	default:
		return "error";
	}
}

/* Output gathered from the request's events. */
typedef struct {
	int32_t *ids;
	float *logprobs;
	long n;
	mllm_buf text;
	mllm_finish finish;
	bool json;
} gen_out;

static int emit(gen_out *o, const char *p, size_t n)
{
	if (n == 0)
		return 0;
	if (!o->json) {
		fwrite(p, 1, n, stdout);
		fflush(stdout);
	}
	return mllm_buf_append(&o->text, p, n);
}

/* Polls until the request's one choice is done. 0, or an MLLM_E* code. */
static int drain(waiter *w, mllm_request *r, gen_out *o, long cap)
{
	mllm_event ev;
	for (;;) {
		pthread_mutex_lock(&w->mu);
		uint64_t seen = w->seq;
		pthread_mutex_unlock(&w->mu);
		while (mllm_request_poll(r, &ev)) {
			if (ev.kind == MLLM_EV_ERROR)
				return ev.err;
			if (ev.kind == MLLM_EV_TOKEN) {
				if (o->n < cap) {
					o->ids[o->n] = ev.token;
					o->logprobs[o->n] = ev.logprob;
					o->n++;
				}
				if (emit(o, ev.text, ev.text_len))
					return MLLM_ENOMEM;
			} else if (ev.kind == MLLM_EV_DONE) {
				o->finish = ev.finish;
				return emit(o, ev.text, ev.text_len) ? MLLM_ENOMEM : 0;
			}
		}
		pthread_mutex_lock(&w->mu);
		while (w->seq == seen)
			pthread_cond_wait(&w->cv, &w->mu);
		pthread_mutex_unlock(&w->mu);
	}
}

int srv_cmd_generate(int argc, char **argv)
{
	const char *prompt = NULL, *prompt_ids = NULL;
	const char *stops[MLLM_MAX_STOP];
	int n_stop = 0;
	long max_tokens = 64;
	float temp = 0.0f, top_p = 1.0f;
	long long seed = 0;
	bool has_seed = false;
	srv_cli_opts opt = SRV_CLI_OPTS_DEFAULT;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		int shared;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		shared = srv_cli_opt(&opt, "generate", a, v);
		if (shared < 0)
			return 2;
		if (shared > 0) {
			i += shared - 1;
			continue;
		}
		if (strcmp(a, "--prompt") != 0 && strcmp(a, "--prompt-ids") != 0 &&
		    strcmp(a, "--max-tokens") != 0 && strcmp(a, "--temperature") != 0 &&
		    strcmp(a, "--top-p") != 0 && strcmp(a, "--seed") != 0 &&
		    strcmp(a, "--stop") != 0) {
			fprintf(stderr, "generate: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
		if (!v) {
			fprintf(stderr, "generate: %s needs a value\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		errno = 0;
		if (strcmp(a, "--prompt") == 0) {
			prompt = v;
		} else if (strcmp(a, "--prompt-ids") == 0) {
			prompt_ids = v;
		} else if (strcmp(a, "--max-tokens") == 0) {
			max_tokens = strtol(v, &end, 10);
			if (end == v || *end || errno || max_tokens < 0 || max_tokens > 1000000)
				goto bad_value;
		} else if (strcmp(a, "--temperature") == 0) {
			temp = (float)strtod(v, &end); /* 1e-50: no underflow error */
			/* The API's bounds: sampling is the daemon's. */
			if (end == v || *end || errno || !(temp >= 0.0f) || temp > 2.0f)
				goto bad_value;
		} else if (strcmp(a, "--top-p") == 0) {
			top_p = (float)strtod(v, &end);
			if (end == v || *end || errno || !(top_p > 0.0f) || top_p > 1.0f)
				goto bad_value;
		} else if (strcmp(a, "--seed") == 0) {
			seed = strtoll(v, &end, 10);
			if (end == v || *end || errno)
				goto bad_value;
			has_seed = true;
		} else if (strcmp(a, "--stop") == 0) {
			if (n_stop == MLLM_MAX_STOP || !*v)
				goto bad_value;
			stops[n_stop++] = v;
		}
		continue;
	bad_value:
		fprintf(stderr, "generate: bad value for %s: '%s'\n", a, v);
		return 2;
	}
	if (!opt.model_path || !opt.model_path[0] || (prompt && prompt_ids) ||
	    (!prompt && !prompt_ids)) {
		fprintf(stderr, "generate: need --model and one of --prompt / --prompt-ids\n");
		usage(stderr);
		return 2;
	}
	if (srv_cli_log_open(&opt, "generate"))
		return 2;
	const char *model_path = opt.model_path;
	bool json = opt.json, kv_f16 = opt.kv_f16;
	long threads = opt.threads;
	mllm_model_params mp = opt.mp;

	int ret = 1, rc;
	char err[512] = "";
	mllm_model *m = NULL;
	mllm_engine *e = NULL;
	mllm_request *r = NULL;
	int32_t *ids = NULL;
	size_t n_prompt = 0;
	waiter w = {.seq = 0};
	gen_out o = {.json = json, .finish = MLLM_FINISH_NONE};
	pthread_mutex_init(&w.mu, NULL);
	pthread_cond_init(&w.cv, NULL);
	mllm_buf_init(&o.text, (size_t)1 << 30);

	mp.n_threads = (int)threads;
	rc = mllm_model_open(model_path, &mp, &m, err, sizeof err);
	if (rc) {
		fprintf(stderr, "generate: %s\n", err[0] ? err : mllm_strerror(rc));
		goto out;
	}
	const mllm_hparams *hp = mllm_model_hparams(m);
	const mllm_tokenizer *tok = mllm_model_tokenizer(m);
	int32_t V = hp->n_vocab, n_ctx = hp->n_ctx_train;

	/* 1. The prompt. */
	if (!prompt_ids && !tok) {
		fprintf(stderr, "generate: %s has no tokenizer; use --prompt-ids\n", model_path);
		goto out;
	}
	size_t cap = prompt ? mllm_tokenizer_max_ids(tok, strlen(prompt)) : MAX_PROMPT_IDS;
	ids = xmallocarray(cap, sizeof(int32_t));
	if (prompt_ids) {
		if (parse_ids(prompt_ids, ids, cap, &n_prompt)) {
			fprintf(stderr, "generate: bad --prompt-ids '%s'\n", prompt_ids);
			ret = 2;
			goto out;
		}
	} else {
		rc = mllm_tokenizer_encode(tok, prompt, strlen(prompt), mllm_tokenizer_add_bos(tok),
		                           ids, cap, &n_prompt);
		if (rc) {
			fprintf(stderr, "generate: tokenizing the prompt: %s\n", mllm_strerror(rc));
			goto out;
		}
	}
	for (size_t i = 0; i < n_prompt; i++)
		if (ids[i] >= V) {
			fprintf(stderr, "generate: prompt id %d is outside the vocabulary (%d)\n",
			        ids[i], V);
			ret = 2;
			goto out;
		}
	if (n_prompt == 0) {
		fprintf(stderr, "generate: the prompt is empty (no tokens to start from)\n");
		ret = 2;
		goto out;
	}
	if ((long)n_prompt > n_ctx) {
		fprintf(stderr, "generate: the prompt has %zu tokens; the context holds %d\n",
		        n_prompt, n_ctx);
		ret = 2;
		goto out;
	}
	if ((long)n_prompt + max_tokens > n_ctx) {
		max_tokens = n_ctx - (long)n_prompt;
		fprintf(stderr, "generate: max-tokens cut to %ld by the context (%d)\n", max_tokens,
		        n_ctx);
	}

	/* 2. An engine sized for this one sequence: the daemon's scheduler,
	 * sampler and stop handling, with a pool that holds exactly it. */
	long total = (long)n_prompt + max_tokens;
	mllm_engine_params ep = {
	    .kv = {.block_size = KV_BLOCK_SIZE,
	           .n_blocks = (total + KV_BLOCK_SIZE - 1) / KV_BLOCK_SIZE + 1,
	           .f16 = kv_f16,
	           .q8 = opt.kv_q8},
	    .n_threads = (int)threads,
	    .max_batch_tokens = PREFILL_CHUNK,
	    .max_running = 1,
	    .max_queue = 1,
	    .prefix_cache = false,
	    .notify = on_notify,
	    .notify_ud = &w,
	};
	rc = mllm_engine_create(m, &ep, &e, err, sizeof err);
	if (rc) {
		fprintf(stderr, "generate: %s\n", err[0] ? err : mllm_strerror(rc));
		goto out;
	}

	/* 3. One request, sampled as /v1/completions samples. */
	mllm_sampling sp = MLLM_SAMPLING_DEFAULT;
	sp.temperature = temp;
	sp.top_p = top_p;
	sp.has_seed = has_seed;
	sp.seed = (uint64_t)seed;
	sp.logprobs = 0; /* the chosen token's logprob, no alternatives */
	sp.max_tokens = (int32_t)max_tokens;
	sp.stop = stops;
	sp.n_stop = n_stop;
	mllm_submit sub = {.prompt = ids, .n_prompt = n_prompt, .n_choices = 1, .sampling = sp};
	rc = mllm_engine_submit(e, &sub, &r);
	if (rc) {
		fprintf(stderr, "generate: %s\n", mllm_strerror(rc));
		goto out;
	}
	o.ids = xmallocarray((size_t)max_tokens + 1, sizeof(int32_t));
	o.logprobs = xmallocarray((size_t)max_tokens + 1, sizeof(float));
	rc = drain(&w, r, &o, max_tokens);
	if (rc) {
		fprintf(stderr, "generate: %s\n", mllm_strerror(rc));
		goto out;
	}

	/* 4. Output. */
	if (json) {
		json_t *obj = json_object(), *pi = json_array(), *gi = json_array(),
		       *lpa = json_array();
		for (size_t i = 0; i < n_prompt; i++)
			json_array_append_new(pi, json_integer(ids[i]));
		for (long i = 0; i < o.n; i++) {
			json_array_append_new(gi, json_integer(o.ids[i]));
			/* One per id; null where the model gave no number (NaN). */
			json_array_append_new(
			    lpa, isfinite(o.logprobs[i]) ? json_real(o.logprobs[i]) : json_null());
		}
		json_object_set_new(obj, "prompt_ids", pi);
		json_object_set_new(obj, "ids", gi);
		json_object_set_new(obj, "logprobs", lpa);
		json_object_set_new(obj, "text",
		                    json_stringn(o.text.data ? o.text.data : "", o.text.len));
		json_object_set_new(obj, "finish_reason", json_string(finish_name(o.finish)));
		char *str = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII);
		json_decref(obj);
		if (!str)
			goto out;
		puts(str);
		free(str);
	} else {
		putchar('\n');
	}
	/* The engine failed the choice (it logged why): what came out is
	 * printed, and the exit status says it is not a whole answer. */
	ret = o.finish == MLLM_FINISH_ERROR ? 1 : 0;
out:
	mllm_request_release(r);
	mllm_engine_free(e);
	mllm_model_close(m);
	mllm_buf_free(&o.text);
	free(o.ids);
	free(o.logprobs);
	free(ids);
	pthread_cond_destroy(&w.cv);
	pthread_mutex_destroy(&w.mu);
	fflush(stdout);
	return ret;
}
