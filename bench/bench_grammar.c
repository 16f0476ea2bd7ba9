/*
 * bench_grammar.c — what constrained decoding costs: the vocabulary trie
 * build, the compile of a 50-property JSON schema, and the per-step cost of
 * token masks (mask + masked sampling + grammar advance) for 16 sequences
 * decoding at once, next to the same sampling without masks.
 *
 *   build/bench/bench_grammar TOKENIZER [STEPS]
 *
 * TOKENIZER: a tokenizer.model or .gguf (the LLaMA one for the 125M shape).
 * The logits are random (seeded), so the sequences wander through strings,
 * numbers, arrays and nested objects of 16 different schemas; every
 * sequence that finishes starts over. Prints figures; compare the
 * overhead per step with bench_forward's decode step of the 125M shape
 * for 16 sequences. Then the same for tool_choice auto with a Hermes
 * template: the grammar allows any text without "<tool_call>" (and calls
 * after it), so random logits keep the sequences in free text, the case
 * whose masks must be cheap. CPU time of this thread. Nothing passes or
 * fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../api/api_internal.h"
#include "gmatch.h"
#include "sampler.h"

#include "bench_util.h"

#define N_SEQ 16

/* Schema i of 16: a mix of the shapes schemas have (strings with bounds,
 * enums, numbers, arrays, nesting, patterns); i = 99 makes the
 * 50-property one. */
static json_t *make_schema(int i)
{
	json_t *props = json_object(), *req = json_array(), *s;
	int n = i == 99 ? 50 : 3 + i % 5;
	for (int k = 0; k < n; k++) {
		char name[32];
		json_t *p;
		snprintf(name, sizeof name, "field_%d_%d", i, k);
		switch ((k + i) % 6) {
		case 0:
			p = json_pack("{s:s,s:i}", "type", "string", "maxLength", 24);
			break;
		case 1:
			p = json_pack("{s:[sss]}", "enum", "alpha", "beta", "gamma");
			break;
		case 2:
			p = json_pack("{s:s}", "type", "number");
			break;
		case 3:
			p = json_pack("{s:s,s:{s:s},s:i}", "type", "array", "items", "type",
			              "integer", "maxItems", 5);
			break;
		case 4:
			p = json_pack("{s:s,s:{s:{s:s},s:{s:s}},s:[s]}", "type", "object",
			              "properties", "a", "type", "boolean", "b", "type", "string",
			              "required", "a");
			break;
		default:
			p = json_pack("{s:s,s:s}", "type", "string", "pattern",
			              "^[a-z]{2,8}-[0-9]+$");
			break;
		}
		json_object_set_new(props, name, p);
		if (k % 3 != 2)
			json_array_append_new(req, json_string(name));
	}
	s = json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties", props, "required", req,
	              "additionalProperties", 0);
	return s;
}

static mllm_grammar *compile_schema(json_t *s)
{
	api__sc *c = api__sc_create();
	api_error e;
	mllm_grammar *g = NULL;
	int32_t v;
	memset(&e, 0, sizeof e);
	v = api__sc_schema(c, s, s, "response_format", &e);
	if (v < 0 || api__sc_finish(c, v, "response_format", &g, &e) != 0)
		fprintf(stderr, "compile failed: %s\n", e.message);
	api__sc_free(c);
	return g;
}

/* The grammar of tool_choice auto for a template that shows <tool_call>,
 * through the api as the daemon builds it (one reference). */
static mllm_grammar *auto_tools_grammar(const mllm_tokenizer *tok)
{
	static const char tmpl[] = "{% for m in messages %}{{ m.content }}{% endfor %}"
	                           "{% if tools %}<tool_call>{% endif %}";
	static const char body[] =
	    "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"tools\":[{\"type\":"
	    "\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":"
	    "\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":"
	    "[\"city\"]}}}]}";
	api_limits lim = API_LIMITS_DEFAULT;
	api_chat_template *t = api_chat_template_create();
	api_model_info m = {.id = "bench", .tok = tok, .n_ctx = 2048, .chat_template = t};
	api_request *req = NULL;
	api_error e;
	char err[256];
	mllm_grammar *g = NULL;
	memset(&e, 0, sizeof e);
	if (api_chat_template_set_jinja(t, tmpl, strlen(tmpl), NULL, NULL, "bench", err,
	                                sizeof err) == 0 &&
	    api_request_parse(API_CHAT, body, strlen(body), &lim, &req, &e) == 0 &&
	    api_request_prepare(req, &m, &e) == 0 && req->sp.grammar)
		g = mllm_grammar_ref(req->sp.grammar);
	api_request_free(req);
	api_chat_template_free(t);
	return g;
}

/* A union of 20 objects whose first property is the same bounded string
 * (zod's z.union of objects with z.string().max(500)): inside that string
 * the matcher holds a stack per variant, the case docs/grammar.md
 * ("Known limit") describes. */
static mllm_grammar *wide_union_grammar(void)
{
	json_t *alts = json_array(), *s;
	mllm_grammar *g;
	for (int i = 0; i < 20; i++) {
		char kind[16];
		snprintf(kind, sizeof kind, "kind%d", i);
		json_array_append_new(alts, json_pack("{s:s,s:{s:{s:s,s:i},s:{s:s}},s:[s]}", "type",
		                                      "object", "properties", "text", "type",
		                                      "string", "maxLength", 500, kind, "type",
		                                      "integer", "required", "text"));
	}
	s = json_pack("{s:s,s:{s:{s:o}},s:[s]}", "type", "object", "properties", "a", "anyOf", alts,
	              "required", "a");
	g = compile_schema(s);
	json_decref(s);
	return g;
}

/* The next step's logits: uniform in [0, 10), xorshift from *rng. */
static void random_logits(uint64_t *rng, float *logits, int32_t n)
{
	for (int32_t k = 0; k < n; k++) {
		*rng ^= *rng << 13;
		*rng ^= *rng >> 7;
		*rng ^= *rng << 17;
		logits[k] = (float)(*rng % 10000) / 1000.0f;
	}
}

int main(int argc, char **argv)
{
	char err[512];
	mllm_tokenizer *tok = NULL;
	mllm_vtrie *trie = NULL;
	mllm_grammar *gs[N_SEQ];
	mllm_gmatch *ms[N_SEQ];
	mllm_sampler *samp[N_SEQ];
	mllm_sampler_ws *ws;
	int steps = argc > 2 ? atoi(argv[2]) : 400;
	int32_t n_vocab, eos;
	float *logits;
	double t0, t_trie, *t_mask, *t_plain, compile_best = 1e30;

	if (argc < 2 || steps < 1) {
		fprintf(stderr, "usage: %s TOKENIZER [STEPS]\n", argv[0]);
		return 2;
	}
	if (mllm_tokenizer_load(argv[1], &tok, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	n_vocab = mllm_tokenizer_n_vocab(tok);
	eos = mllm_tokenizer_eos(tok);

	t0 = cpu_now();
	if (mllm_vtrie_create(tok, &trie) != 0)
		return 1;
	t_trie = cpu_now() - t0;
	printf("vocabulary trie: %d tokens, built in %.1f ms (once per model)\n", (int)n_vocab,
	       t_trie * 1e3);

	/* Compile of the 50-property schema: best of 20. */
	{
		json_t *s = make_schema(99);
		for (int r = 0; r < 20; r++) {
			mllm_grammar *g;
			t0 = cpu_now();
			g = compile_schema(s);
			t0 = cpu_now() - t0;
			if (!g)
				return 1;
			if (t0 < compile_best)
				compile_best = t0;
			mllm_grammar_unref(g);
		}
		json_decref(s);
		printf("schema compile, 50 properties: %.3f ms (best of 20)\n", compile_best * 1e3);
	}

	ws = mllm_sampler_ws_create(n_vocab);
	logits = malloc((size_t)n_vocab * sizeof *logits);
	t_mask = malloc((size_t)steps * sizeof *t_mask);
	t_plain = malloc((size_t)steps * sizeof *t_plain);
	if (!ws || !logits || !t_mask || !t_plain)
		return 1;
	for (int i = 0; i < N_SEQ; i++) {
		json_t *s = make_schema(i);
		gs[i] = compile_schema(s);
		json_decref(s);
		if (!gs[i])
			return 1;
	}
	/* The same run twice (same logits, same seeds: the masks are equal,
	 * so the same tokens are drawn): whole-state caching only, then with
	 * the context-free masks (the default). */
	for (int mode = 0; mode < 2; mode++) {
		int64_t walks = 0, hits = 0, cf_hits = 0, restarts = 0;
		uint64_t rng = 88172645463325252ull;
		for (int i = 0; i < N_SEQ; i++) {
			mllm_sampling p = MLLM_SAMPLING_DEFAULT;
			p.has_seed = true;
			p.seed = (uint64_t)i;
			if (mllm_gmatch_create(gs[i], trie, eos, &ms[i]) != 0 ||
			    mllm_sampler_create(&p, n_vocab, i, &samp[i]) != 0)
				return 1;
			mllm_gmatch_set_context_free(ms[i], mode == 1);
		}
		for (int st = 0; st < steps; st++) {
			mllm_sample_result res;
			random_logits(&rng, logits, n_vocab);
			/* The unconstrained step: 16 samples. */
			t0 = cpu_now();
			for (int i = 0; i < N_SEQ; i++)
				mllm_sampler_sample(samp[i], ws, logits, &res);
			t_plain[st] = cpu_now() - t0;
			/* The constrained step: mask, masked sample, advance. */
			t0 = cpu_now();
			for (int i = 0; i < N_SEQ; i++) {
				const uint32_t *allow;
				int32_t n_ok = mllm_gmatch_mask(ms[i], &allow);
				if (n_ok <= 0)
					return 1;
				mllm_sampler_sample_masked(samp[i], ws, logits, allow, &res);
				if (res.token == eos || mllm_gmatch_accept(ms[i], res.token) != 0) {
					int64_t w, h, c;
					mllm_gmatch_stats(ms[i], &w, &h, &c);
					walks += w;
					hits += h;
					cf_hits += c;
					mllm_gmatch_free(ms[i]);
					if (mllm_gmatch_create(gs[i], trie, eos, &ms[i]) != 0)
						return 1;
					mllm_gmatch_set_context_free(ms[i], mode == 1);
					restarts++;
				}
			}
			t_mask[st] = cpu_now() - t0;
		}
		for (int i = 0; i < N_SEQ; i++) {
			int64_t w, h, c;
			mllm_gmatch_stats(ms[i], &w, &h, &c);
			walks += w;
			hits += h;
			cf_hits += c;
			mllm_gmatch_free(ms[i]);
			mllm_sampler_free(samp[i]);
		}
		printf("%s:\n",
		       mode ? "with context-free masks (default)" : "whole-state cache only");
		{
			double sm = 0, sp = 0;
			for (int st = 0; st < steps; st++) {
				sm += t_mask[st];
				sp += t_plain[st];
			}
			printf("  16 sequences, %d steps: mean %.3f ms/step with masks vs %.3f "
			       "without "
			       "(overhead %.3f ms/step)\n",
			       steps, sm / steps * 1e3, sp / steps * 1e3, (sm - sp) / steps * 1e3);
		}
		qsort(t_mask, (size_t)steps, sizeof *t_mask, cmp_double);
		qsort(t_plain, (size_t)steps, sizeof *t_plain, cmp_double);
		printf(
		    "  sampling %.3f ms/step (median), with masks %.3f ms/step (median), p90 %.3f "
		    "ms; overhead %.3f ms/step\n",
		    t_plain[steps / 2] * 1e3, t_mask[steps / 2] * 1e3, t_mask[steps * 9 / 10] * 1e3,
		    (t_mask[steps / 2] - t_plain[steps / 2]) * 1e3);
		printf(
		    "  masks: %lld whole trie walks, %lld whole-state hits, %lld context-free hits "
		    "(%.0f%% of masks without a whole walk), %lld sequences completed\n",
		    (long long)walks, (long long)hits, (long long)cf_hits,
		    walks + hits + cf_hits
		        ? 100.0 * (double)(hits + cf_hits) / (double)(walks + hits + cf_hits)
		        : 0.0,
		    (long long)restarts);
	}
	for (int i = 0; i < N_SEQ; i++)
		mllm_grammar_unref(gs[i]);

	/* tool_choice auto: free text until an opener random logits never
	 * spell. Each sequence starts fresh (its own matcher, its own mask
	 * cache), as a request does. */
	{
		mllm_grammar *g = auto_tools_grammar(tok);
		double sm = 0, sp = 0;
		int64_t walks = 0, hits = 0;
		uint64_t rng = 88172645463325252ull;
		if (!g)
			return 1;
		for (int i = 0; i < N_SEQ; i++) {
			mllm_sampling p = MLLM_SAMPLING_DEFAULT;
			p.has_seed = true;
			p.seed = (uint64_t)i;
			if (mllm_gmatch_create(g, trie, eos, &ms[i]) != 0 ||
			    mllm_sampler_create(&p, n_vocab, i, &samp[i]) != 0)
				return 1;
		}
		for (int st = 0; st < steps; st++) {
			mllm_sample_result res;
			random_logits(&rng, logits, n_vocab);
			t0 = cpu_now();
			for (int i = 0; i < N_SEQ; i++)
				mllm_sampler_sample(samp[i], ws, logits, &res);
			sp += cpu_now() - t0;
			t0 = cpu_now();
			for (int i = 0; i < N_SEQ; i++) {
				const uint32_t *allow;
				if (mllm_gmatch_mask(ms[i], &allow) <= 0)
					return 1;
				mllm_sampler_sample_masked(samp[i], ws, logits, allow, &res);
				if (res.token != eos && mllm_gmatch_accept(ms[i], res.token) != 0)
					return 1;
			}
			sm += cpu_now() - t0;
		}
		for (int i = 0; i < N_SEQ; i++) {
			int64_t w, h, c;
			mllm_gmatch_stats(ms[i], &w, &h, &c);
			walks += w;
			hits += h + c;
			mllm_gmatch_free(ms[i]);
			mllm_sampler_free(samp[i]);
		}
		printf(
		    "tool_choice auto (free text), 16 sequences, %d steps: mean %.3f ms/step with "
		    "masks vs %.3f without (overhead %.3f ms/step); %lld trie walks (%.1f per "
		    "sequence), %lld cache hits\n",
		    steps, sm / steps * 1e3, sp / steps * 1e3, (sm - sp) / steps * 1e3,
		    (long long)walks, (double)walks / N_SEQ, (long long)hits);
		mllm_grammar_unref(g);
	}
	/* One sequence in the wide union: the mean cost of a mask there (the
	 * string's positions are new states each step: no cache hits). */
	{
		mllm_grammar *g = wide_union_grammar();
		mllm_sampling p = MLLM_SAMPLING_DEFAULT;
		uint64_t rng = 88172645463325252ull;
		double sm = 0;
		int n = steps < 60 ? steps : 60, done = 0;
		p.has_seed = true;
		p.seed = 1;
		if (!g || mllm_gmatch_create(g, trie, eos, &ms[0]) != 0 ||
		    mllm_sampler_create(&p, n_vocab, 0, &samp[0]) != 0)
			return 1;
		for (; done < n; done++) {
			mllm_sample_result res;
			const uint32_t *allow;
			random_logits(&rng, logits, n_vocab);
			t0 = cpu_now();
			if (mllm_gmatch_mask(ms[0], &allow) <= 0)
				return 1;
			mllm_sampler_sample_masked(samp[0], ws, logits, allow, &res);
			if (res.token == eos || mllm_gmatch_accept(ms[0], res.token) != 0)
				break; /* the value is complete: enough */
			sm += cpu_now() - t0;
		}
		printf("union of 20 objects sharing a maxLength-500 first string, 1 sequence, %d "
		       "steps: mean %.3f ms per mask (docs/grammar.md, \"Known limit\")\n",
		       done, done ? sm / done * 1e3 : 0.0);
		mllm_gmatch_free(ms[0]);
		mllm_sampler_free(samp[0]);
		mllm_grammar_unref(g);
	}
	mllm_sampler_ws_free(ws);
	mllm_vtrie_free(trie);
	mllm_tokenizer_free(tok);
	free(logits);
	free(t_mask);
	free(t_plain);
	return 0;
}
