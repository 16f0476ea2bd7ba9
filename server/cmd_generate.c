/*
 * cmd_generate.c — `mobilellmd generate`: one prompt through the engine from
 * the command line, for smoke tests and for comparing with other engines.
 *
 * It drives mllm_forward() directly (prefill in chunks, then one token per
 * step) with a minimal greedy / temperature sampler of its own; the daemon's
 * OpenAI sampling lives in engine/sampler.c and the scheduler. Text streams
 * to stdout as it is generated; --json prints one object at the end, built
 * with jansson. Diagnostics go to stderr.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "cmds.h"
#include "log.h"
#include "mllm.h"

#define PREFILL_CHUNK  512
#define MAX_PROMPT_IDS 65536

static void usage(FILE *f)
{
	fprintf(f, "usage: mobilellmd generate --model PATH [--prompt TEXT | --prompt-ids 1,2,3]\n"
	           "                           [--max-tokens N] [--temperature T] [--seed S]\n"
	           "                           [--threads N] [--convert q8_0|q4_0|f16|f32]\n"
	           "                           [--kv-f16] [--json] [--log-level LEVEL]\n"
	           "\n"
	           "  --model PATH      snapshot directory (safetensors or pytorch_model.bin)\n"
	           "                    or a .gguf file\n"
	           "  --prompt TEXT     tokenized, with BOS as the tokenizer config says\n"
	           "  --prompt-ids L    comma-separated ids, used as given (include BOS)\n"
	           "  --max-tokens N    tokens to generate (default 64); stops at EOS\n"
	           "  --temperature T   0 = greedy (default 0)\n"
	           "  --seed S          sampling seed (default 0)\n"
	           "  --threads N       worker threads (default: all cores)\n"
	           "  --convert TYPE    re-encode the weights at load\n"
	           "  --kv-f16          store the KV cache as f16\n"
	           "  --json            print {\"prompt_ids\", \"ids\", \"logprobs\", \"text\"}\n");
}

/* splitmix64: the CLI's sampler needs nothing better. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Picks a token and returns its log-softmax under the raw logits. */
static int32_t sample(const float *lg, int32_t V, float temp, uint64_t *rng, float *logprob)
{
	int32_t best = 0;
	for (int32_t i = 1; i < V; i++)
		if (lg[i] > lg[best])
			best = i;
	double mx = lg[best], s = 0.0;
	for (int32_t i = 0; i < V; i++)
		s += exp((double)lg[i] - mx);
	double lse = mx + log(s);
	int32_t pick = best;
	if (temp > 0.0f) {
		double st = 0.0;
		for (int32_t i = 0; i < V; i++)
			st += exp(((double)lg[i] - mx) / temp);
		double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0 * st, acc = 0.0;
		for (int32_t i = 0; i < V; i++) {
			acc += exp(((double)lg[i] - mx) / temp);
			if (acc > u) {
				pick = i;
				break;
			}
		}
	}
	*logprob = (float)((double)lg[pick] - lse);
	return pick;
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
		while (*s == ',' || *s == ' ')
			s++;
	}
	return *n > 0 ? 0 : -1;
}

static int parse_dtype(const char *s, mllm_dtype *out)
{
	static const struct {
		const char *name;
		mllm_dtype t;
	} map[] = {{"f32", MLLM_DTYPE_F32},
	           {"f16", MLLM_DTYPE_F16},
	           {"bf16", MLLM_DTYPE_BF16},
	           {"q8_0", MLLM_DTYPE_Q8_0},
	           {"q4_0", MLLM_DTYPE_Q4_0}};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcasecmp(s, map[i].name) == 0) {
			*out = map[i].t;
			return 0;
		}
	return -1;
}

int srv_cmd_generate(int argc, char **argv)
{
	const char *model_path = NULL, *prompt = NULL, *prompt_ids = NULL;
	const char *log_level = "warn";
	long max_tokens = 64, threads = 0;
	float temp = 0.0f;
	uint64_t seed = 0;
	bool json = false, kv_f16 = false;
	mllm_model_params mp = MLLM_MODEL_PARAMS_DEFAULT;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--json") == 0) {
			json = true;
			continue;
		} else if (strcmp(a, "--kv-f16") == 0) {
			kv_f16 = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "generate: %s needs a value\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		errno = 0;
		if (strcmp(a, "--model") == 0) {
			model_path = v;
		} else if (strcmp(a, "--prompt") == 0) {
			prompt = v;
		} else if (strcmp(a, "--prompt-ids") == 0) {
			prompt_ids = v;
		} else if (strcmp(a, "--max-tokens") == 0) {
			max_tokens = strtol(v, &end, 10);
			if (*end || errno || max_tokens < 0 || max_tokens > 1000000)
				goto bad_value;
		} else if (strcmp(a, "--threads") == 0) {
			threads = strtol(v, &end, 10);
			if (*end || errno || threads < 0 || threads > 256)
				goto bad_value;
		} else if (strcmp(a, "--temperature") == 0) {
			temp = strtof(v, &end);
			if (*end || errno || !(temp >= 0.0f) || temp > 100.0f)
				goto bad_value;
		} else if (strcmp(a, "--seed") == 0) {
			seed = strtoull(v, &end, 10);
			if (*end || errno)
				goto bad_value;
		} else if (strcmp(a, "--convert") == 0) {
			if (parse_dtype(v, &mp.convert_to))
				goto bad_value;
		} else if (strcmp(a, "--log-level") == 0) {
			log_level = v;
		} else {
			fprintf(stderr, "generate: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
		continue;
	bad_value:
		fprintf(stderr, "generate: bad value for %s: '%s'\n", a, v);
		return 2;
	}
	if (!model_path || (prompt && prompt_ids) || (!prompt && !prompt_ids)) {
		fprintf(stderr, "generate: need --model and one of --prompt / --prompt-ids\n");
		usage(stderr);
		return 2;
	}
	int lvl = srv_log_level_parse(log_level);
	if (lvl < 0 || srv_log_open(lvl, NULL) != 0) {
		fprintf(stderr, "generate: bad --log-level '%s'\n", log_level);
		return 2;
	}

	int ret = 1, rc;
	char err[512] = "";
	mllm_model *m = NULL;
	mllm_kv *kv = NULL;
	mllm_ctx *ctx = NULL;
	int32_t *ids = NULL, *table = NULL, *pos = NULL, *seqv = NULL;
	bool *want = NULL;
	float *logits = NULL, *logprobs = NULL;
	size_t n_prompt = 0;
	mllm_buf text;
	mllm_buf_init(&text, (size_t)1 << 30);

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
	size_t cap = prompt ? strlen(prompt) + 2 : MAX_PROMPT_IDS;
	ids = xmallocarray(cap + (size_t)max_tokens + 1, sizeof(int32_t));
	if (prompt_ids) {
		if (parse_ids(prompt_ids, ids, cap, &n_prompt)) {
			fprintf(stderr, "generate: bad --prompt-ids '%s'\n", prompt_ids);
			ret = 2;
			goto out;
		}
	} else {
		if (!tok) {
			fprintf(stderr, "generate: %s has no tokenizer; use --prompt-ids\n",
			        model_path);
			goto out;
		}
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
	if (n_prompt == 0 || (long)n_prompt > n_ctx) {
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

	/* 2. Cache and context, sized for this one sequence. */
	int32_t total = (int32_t)n_prompt + (int32_t)max_tokens;
	mllm_kv_params kp = {.block_size = 16, .n_blocks = (total + 15) / 16, .f16 = kv_f16};
	int32_t n_batch = (int32_t)n_prompt < PREFILL_CHUNK ? (int32_t)n_prompt : PREFILL_CHUNK;
	if ((rc = mllm_kv_create(m, &kp, &kv)) ||
	    (rc = mllm_ctx_create(m, kv, n_batch, (int)threads, &ctx))) {
		fprintf(stderr, "generate: %s\n", mllm_strerror(rc));
		goto out;
	}
	table = xmallocarray((size_t)kp.n_blocks, sizeof(int32_t));
	for (int64_t i = 0; i < kp.n_blocks; i++)
		table[i] = mllm_kv_block_alloc(kv);
	pos = xmallocarray((size_t)n_batch, sizeof(int32_t));
	seqv = xcalloc((size_t)n_batch, sizeof(int32_t));
	want = xcalloc((size_t)n_batch, sizeof(bool));
	logits = xmallocarray((size_t)V, sizeof(float));
	logprobs = xmallocarray((size_t)max_tokens + 1, sizeof(float));
	const int32_t *tables[1] = {table};

	/* 3. Prefill in chunks; logits only for the prompt's last token. */
	for (size_t p0 = 0; p0 < n_prompt; p0 += (size_t)n_batch) {
		int32_t n =
		    (int32_t)(n_prompt - p0 < (size_t)n_batch ? n_prompt - p0 : (size_t)n_batch);
		for (int32_t i = 0; i < n; i++) {
			pos[i] = (int32_t)p0 + i;
			want[i] = p0 + (size_t)i == n_prompt - 1;
		}
		mllm_batch b = {.n_tokens = n,
		                .token = ids + p0,
		                .pos = pos,
		                .seq = seqv,
		                .logits = want,
		                .n_seqs = 1,
		                .block_table = tables};
		if ((rc = mllm_forward(ctx, &b, logits))) {
			fprintf(stderr, "generate: forward: %s\n", mllm_strerror(rc));
			goto out;
		}
	}

	/* 4. Decode: sample, print, feed back. */
	uint64_t rng = seed;
	mllm_detok dt;
	char piece[MLLM_DETOK_MAX];
	int32_t eos = tok ? mllm_tokenizer_eos(tok) : hp->eos_id;
	long n_gen = 0;
	if (tok)
		mllm_detok_init(&dt, tok);
	while (n_gen < max_tokens) {
		float lp;
		int32_t next = sample(logits, V, temp, &rng, &lp);
		ids[n_prompt + (size_t)n_gen] = next;
		logprobs[n_gen++] = lp;
		if (tok) {
			int k = mllm_detok_push(&dt, next, piece, sizeof piece);
			if (k > 0) {
				if (!json) {
					fwrite(piece, 1, (size_t)k, stdout);
					fflush(stdout);
				}
				if (mllm_buf_append(&text, piece, (size_t)k))
					goto out;
			}
		}
		if (next == eos || n_gen == max_tokens)
			break;
		int32_t p = (int32_t)n_prompt + (int32_t)n_gen - 1;
		bool yes = true;
		mllm_batch b = {.n_tokens = 1,
		                .token = &ids[n_prompt + (size_t)n_gen - 1],
		                .pos = &p,
		                .seq = seqv,
		                .logits = &yes,
		                .n_seqs = 1,
		                .block_table = tables};
		if ((rc = mllm_forward(ctx, &b, logits))) {
			fprintf(stderr, "generate: forward: %s\n", mllm_strerror(rc));
			goto out;
		}
	}
	if (tok) {
		int k = mllm_detok_flush(&dt, piece, sizeof piece);
		if (k > 0) {
			if (!json)
				fwrite(piece, 1, (size_t)k, stdout);
			if (mllm_buf_append(&text, piece, (size_t)k))
				goto out;
		}
	}

	/* 5. Output. */
	if (json) {
		json_t *o = json_object(), *pi = json_array(), *gi = json_array(),
		       *lpa = json_array();
		for (size_t i = 0; i < n_prompt; i++)
			json_array_append_new(pi, json_integer(ids[i]));
		for (long i = 0; i < n_gen; i++) {
			json_array_append_new(gi, json_integer(ids[n_prompt + (size_t)i]));
			json_array_append_new(lpa, json_real(logprobs[i]));
		}
		json_object_set_new(o, "prompt_ids", pi);
		json_object_set_new(o, "ids", gi);
		json_object_set_new(o, "logprobs", lpa);
		json_object_set_new(o, "text", json_stringn(text.data ? text.data : "", text.len));
		char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
		json_decref(o);
		if (!s)
			goto out;
		puts(s);
		free(s);
	} else {
		putchar('\n');
	}
	ret = 0;
out:
	if (table) {
		for (int64_t i = 0; i < mllm_kv_n_blocks(kv); i++)
			mllm_kv_block_unref(kv, table[i]);
	}
	mllm_ctx_free(ctx);
	mllm_kv_free(kv);
	mllm_model_close(m);
	mllm_buf_free(&text);
	free(ids);
	free(table);
	free(pos);
	free(seqv);
	free(want);
	free(logits);
	free(logprobs);
	fflush(stdout);
	return ret;
}
