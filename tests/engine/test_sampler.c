/*
 * test_sampler.c — the sampler, one parameter at a time: greedy and logprobs
 * against the golden references (real logits of the fixture models), then
 * temperature, top_k, top_p, min_p, penalties, logit_bias and seeds checked
 * against distributions computed here from the documented formulas. Draws
 * use fixed seeds, so the statistical checks are deterministic.
 */
#include "harness.h"

#include <math.h>

#include "../../engine/sampler.c"
#include "json_util.h"

/* ---- Fixtures: the last-position logits of a golden case ---------------- */

typedef struct {
	float *logits;
	int32_t n_vocab;
	int32_t greedy0;   /* first greedy token */
	double logprob0;   /* its logprob */
	int32_t top_id[5]; /* the 5 best of the first step */
	double top_lp[5];
} golden_case;

static void load_case(const char *model, const char *json_name, int idx, golden_case *gc)
{
	char path[1024], rel[512], lpath[1024];
	mllm__json_doc *root;
	const mllm__json *c, *g, *top;
	FILE *f;
	long size;

	snprintf(rel, sizeof rel, "models/%s/%s", model, json_name);
	mllm_test_path(path, sizeof path, rel);
	MLLM_REQUIRE_FIXTURE(path);
	root = ju_load(path); /* asserts it parses */
	c = ju_at(ju_get(mllm__json_root(root), "cases"), (size_t)idx);
	ck_assert_ptr_nonnull(c);
	g = ju_get(c, "greedy");
	gc->greedy0 = (int32_t)ju_int(ju_at(ju_get(g, "ids"), 0));
	gc->logprob0 = ju_num(ju_at(ju_get(g, "logprobs"), 0));
	top = ju_at(ju_get(g, "top_logprobs"), 0);
	ck_assert_int_eq(ju_len(top), 5);
	for (int i = 0; i < 5; i++) {
		const mllm__json *e = ju_at(top, (size_t)i);
		gc->top_id[i] = (int32_t)ju_int(ju_at(e, 0));
		gc->top_lp[i] = ju_num(ju_at(e, 1));
	}
	snprintf(rel, sizeof rel, "models/%s/%s", model, ju_str(ju_get(c, "last_logits_file")));
	mllm_test_path(lpath, sizeof lpath, rel);
	MLLM_REQUIRE_FIXTURE(lpath);
	f = fopen(lpath, "rb");
	ck_assert_ptr_nonnull(f);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, 0, SEEK_SET);
	gc->n_vocab = (int32_t)(size / 4);
	gc->logits = malloc((size_t)size);
	ck_assert_int_eq(fread(gc->logits, 4, (size_t)gc->n_vocab, f), (size_t)gc->n_vocab);
	fclose(f);
	mllm__json_free(root);
}

static mllm_sampler *make(const mllm_sampling *p, int32_t n_vocab, int32_t choice)
{
	mllm_sampler *s = NULL;
	ck_assert_int_eq(mllm_sampler_create(p, n_vocab, choice, &s), 0);
	ck_assert_ptr_nonnull(s);
	return s;
}

static int32_t one(mllm_sampler *s, mllm_sampler_ws *ws, const float *logits)
{
	mllm_sample_result r;
	mllm_sampler_sample(s, ws, logits, &r);
	return r.token;
}

/* ---- Greedy and logprobs against the golden reference ------------------ */

START_TEST(test_greedy_logprobs_golden)
{
	static const struct {
		const char *model, *json;
	} sets[] = {
	    {"stories260K", "stories260K.json"},
	    {"tiny-mobilellm-f16", "tiny-mobilellm-f16.json"},
	};
	for (size_t m = 0; m < 2; m++) {
		for (int ci = 0; ci < 6; ci++) {
			golden_case gc;
			mllm_sampling p = MLLM_SAMPLING_DEFAULT;
			mllm_sample_result r;
			load_case(sets[m].model, sets[m].json, ci, &gc);
			mllm_sampler_ws *ws = mllm_sampler_ws_create(gc.n_vocab);
			p.temperature = 0.0f;
			p.logprobs = 5;
			mllm_sampler *s = make(&p, gc.n_vocab, 0);
			mllm_sampler_sample(s, ws, gc.logits, &r);
			ck_assert_int_eq(r.token, gc.greedy0);
			ck_assert_double_eq_tol(r.logprob, gc.logprob0, 1e-4);
			ck_assert_int_eq(r.n_top, 5);
			for (int i = 0; i < 5; i++) {
				ck_assert_int_eq(r.top[i].id, gc.top_id[i]);
				ck_assert_double_eq_tol(r.top[i].logprob, gc.top_lp[i], 1e-4);
			}
			/* The helpers used for echo agree. */
			mllm_top_logprob top[5];
			ck_assert_int_eq(mllm_logprob_top(gc.logits, gc.n_vocab, 5, top), 5);
			ck_assert_int_eq(top[2].id, gc.top_id[2]);
			ck_assert_double_eq_tol(
			    mllm_logprob_of(gc.logits, gc.n_vocab, gc.top_id[3]), gc.top_lp[3],
			    1e-4);
			/* logprobs = -1: none; 0: only the chosen token. */
			p.logprobs = 0;
			mllm_sampler_free(s);
			s = make(&p, gc.n_vocab, 0);
			mllm_sampler_sample(s, ws, gc.logits, &r);
			ck_assert_int_eq(r.n_top, 0);
			ck_assert_double_eq_tol(r.logprob, gc.logprob0, 1e-4);
			mllm_sampler_free(s);
			mllm_sampler_ws_free(ws);
			free(gc.logits);
		}
	}
}
END_TEST

/* ---- Distributions ------------------------------------------------------ */

#define NV 6
static const float small_logits[NV] = {2.0f, 1.5f, 1.0f, 0.2f, -0.5f, -3.0f};

/* softmax(logits / t) over the tokens in keep[] (others 0). */
static void ref_probs(const float *l, int n, float t, const bool *keep, double *out)
{
	double m = -INFINITY, sum = 0.0;
	for (int i = 0; i < n; i++)
		if (keep[i] && l[i] / t > m)
			m = l[i] / t;
	for (int i = 0; i < n; i++) {
		out[i] = keep[i] ? exp(l[i] / t - m) : 0.0;
		sum += out[i];
	}
	for (int i = 0; i < n; i++)
		out[i] /= sum;
}

/* Draws n_draws tokens and checks each frequency against p within 5 sigma
 * (plus never drawing a token whose probability is 0). */
static void check_freq(const mllm_sampling *p, const float *logits, const double *prob, int n_draws)
{
	int counts[NV] = {0};
	mllm_sampler_ws *ws = mllm_sampler_ws_create(NV);
	mllm_sampler *s = make(p, NV, 0);
	for (int i = 0; i < n_draws; i++) {
		int32_t t = one(s, ws, logits);
		ck_assert(t >= 0 && t < NV);
		counts[t]++;
	}
	for (int i = 0; i < NV; i++) {
		double expect = prob[i] * n_draws;
		double sigma = sqrt(n_draws * prob[i] * (1.0 - prob[i]));
		if (prob[i] == 0.0)
			ck_assert_msg(counts[i] == 0, "token %d drawn %d times", i, counts[i]);
		else
			ck_assert_msg(fabs(counts[i] - expect) <= 5.0 * sigma + 1.0,
			              "token %d: %d draws, expected %.1f", i, counts[i], expect);
	}
	mllm_sampler_free(s);
	mllm_sampler_ws_free(ws);
}

START_TEST(test_temperature)
{
	const float temps[] = {1.0f, 0.5f, 1.7f};
	bool all[NV] = {1, 1, 1, 1, 1, 1};
	double prob[NV];
	for (int t = 0; t < 3; t++) {
		mllm_sampling p = MLLM_SAMPLING_DEFAULT;
		p.temperature = temps[t];
		p.has_seed = true;
		p.seed = 1234 + (uint64_t)t;
		ref_probs(small_logits, NV, temps[t], all, prob);
		check_freq(&p, small_logits, prob, 20000);
	}
}
END_TEST

/* Temperatures below 1e-5 are greedy: at ~1e-39 1/T overflows a float
 * and (w - max) / T was NaN for the best token, which drew junk over a
 * vocabulary large enough for the vector exp (stories260K's 512). */
START_TEST(test_tiny_temperature_greedy)
{
	enum { V = 512, BEST = 301 };
	const float temps[] = {9e-6f, 1e-30f, 2e-38f, 1e-39f, 1e-45f};
	float lg[V];
	mllm_sampler_ws *ws = mllm_sampler_ws_create(V);
	for (int i = 0; i < V; i++)
		lg[i] = (float)((i * 37) % 101) * 0.01f; /* < 1.01 */
	lg[BEST] = 1.5f;
	for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
		for (int variant = 0; variant < 3; variant++) {
			mllm_sampling p = MLLM_SAMPLING_DEFAULT;
			p.temperature = temps[t];
			p.has_seed = true;
			if (variant == 1)
				p.top_k = 40;
			if (variant == 2)
				p.top_p = 0.5f;
			for (uint64_t seed = 0; seed < 20; seed++) {
				p.seed = seed;
				mllm_sampler *s = make(&p, V, 0);
				ck_assert_int_eq(one(s, ws, lg), BEST);
				mllm_sampler_free(s);
			}
		}
	}
	mllm_sampler_ws_free(ws);
}
END_TEST

START_TEST(test_top_k)
{
	bool keep[NV] = {1, 1, 1, 0, 0, 0};
	double prob[NV];
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	p.top_k = 3;
	p.has_seed = true;
	p.seed = 7;
	ref_probs(small_logits, NV, 1.0f, keep, prob);
	check_freq(&p, small_logits, prob, 20000);
}
END_TEST

START_TEST(test_top_p)
{
	/* Nucleus from the sorted reference probabilities. */
	bool all[NV] = {1, 1, 1, 1, 1, 1}, keep[NV] = {0};
	double full[NV], prob[NV], cum = 0.0;
	const float top_p = 0.75f;
	ref_probs(small_logits, NV, 1.0f, all, full);
	for (int i = 0; i < NV && cum < top_p; i++) { /* small_logits is sorted */
		keep[i] = true;
		cum += full[i];
	}
	ck_assert(!keep[NV - 1] && keep[1]); /* the case is not degenerate */
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	p.top_p = top_p;
	p.has_seed = true;
	p.seed = 99;
	ref_probs(small_logits, NV, 1.0f, keep, prob);
	check_freq(&p, small_logits, prob, 20000);
}
END_TEST

START_TEST(test_top_p_large_vocab)
{
	/* On real logits (32k vocabulary) every draw lies in the nucleus that
	 * a full sort gives, and more than one token is drawn. */
	golden_case gc;
	load_case("tiny-mobilellm-f16", "tiny-mobilellm-f16.json", 1, &gc);
	int32_t n = gc.n_vocab, *order = malloc((size_t)n * sizeof *order);
	bool *in = calloc((size_t)n, 1);
	double m = -INFINITY, z = 0.0, cum = 0.0;
	const float t = 1.3f, top_p = 0.6f;
	for (int32_t i = 0; i < n; i++) {
		order[i] = i;
		if (gc.logits[i] > m)
			m = gc.logits[i];
	}
	qsort_r(order, (size_t)n, sizeof *order, cmp_desc, gc.logits);
	for (int32_t i = 0; i < n; i++)
		z += exp((gc.logits[i] - m) / t);
	int32_t n_in = 0;
	for (int32_t i = 0; i < n && cum < top_p; i++) {
		in[order[i]] = true;
		cum += exp((gc.logits[order[i]] - m) / t) / z;
		n_in++;
	}
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	p.temperature = t;
	p.top_p = top_p;
	p.has_seed = true;
	p.seed = 5;
	mllm_sampler_ws *ws = mllm_sampler_ws_create(n);
	mllm_sampler *s = make(&p, n, 0);
	int distinct = 0;
	bool *seen = calloc((size_t)n, 1);
	for (int i = 0; i < 2000; i++) {
		int32_t tok = one(s, ws, gc.logits);
		ck_assert_msg(in[tok], "token %d outside the nucleus of %d", tok, n_in);
		if (!seen[tok]) {
			seen[tok] = true;
			distinct++;
		}
	}
	ck_assert_int_gt(n_in, 1);
	ck_assert_int_gt(distinct, 1);
	mllm_sampler_free(s);
	mllm_sampler_ws_free(ws);
	free(seen);
	free(in);
	free(order);
	free(gc.logits);
}
END_TEST

START_TEST(test_min_p)
{
	/* Keep tokens whose probability is at least min_p times the best's. */
	bool all[NV] = {1, 1, 1, 1, 1, 1}, keep[NV];
	double full[NV], prob[NV];
	const float min_p = 0.3f;
	ref_probs(small_logits, NV, 1.0f, all, full);
	for (int i = 0; i < NV; i++)
		keep[i] = full[i] >= min_p * full[0];
	ck_assert(keep[2] && !keep[3]);
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	p.min_p = min_p;
	p.has_seed = true;
	p.seed = 3;
	ref_probs(small_logits, NV, 1.0f, keep, prob);
	check_freq(&p, small_logits, prob, 20000);
}
END_TEST

/* ---- Penalties: replay OpenAI's formula on a greedy sampler ------------- */

START_TEST(test_penalties)
{
	const struct {
		float fp, pp;
	} cases[] = {{0.6f, 0.0f}, {0.0f, 0.7f}, {0.4f, 0.3f}, {-0.5f, 0.0f}};
	for (int c = 0; c < 4; c++) {
		mllm_sampling p = MLLM_SAMPLING_DEFAULT;
		int counts[NV] = {0};
		int switches = 0;
		int32_t prev = -1;
		p.temperature = 0.0f;
		p.frequency_penalty = cases[c].fp;
		p.presence_penalty = cases[c].pp;
		mllm_sampler_ws *ws = mllm_sampler_ws_create(NV);
		mllm_sampler *s = make(&p, NV, 0);
		for (int step = 0; step < 30; step++) {
			float adj[NV];
			int best = 0;
			for (int j = 0; j < NV; j++) {
				adj[j] = small_logits[j];
				if (counts[j] > 0)
					adj[j] -= cases[c].fp * (float)counts[j] + cases[c].pp;
				if (adj[j] > adj[best])
					best = j;
			}
			int32_t tok = one(s, ws, small_logits);
			ck_assert_int_eq(tok, best);
			counts[tok]++;
			switches += prev >= 0 && tok != prev;
			prev = tok;
		}
		/* Positive penalties move greedy off the argmax; negative keep it. */
		if (cases[c].fp > 0 || cases[c].pp > 0)
			ck_assert_int_gt(switches, 0);
		else
			ck_assert_int_eq(counts[0], 30);
		mllm_sampler_free(s);
		mllm_sampler_ws_free(ws);
	}
}
END_TEST

/* ---- logit_bias ---------------------------------------------------------- */

START_TEST(test_logit_bias_force_ban)
{
	golden_case gc;
	load_case("tiny-mobilellm-f16", "tiny-mobilellm-f16.json", 2, &gc);
	mllm_sampler_ws *ws = mllm_sampler_ws_create(gc.n_vocab);
	mllm_logit_bias force = {.id = 12345, .bias = 100.0f};
	mllm_logit_bias ban[2] = {{.id = gc.top_id[0], .bias = -100.0f},
	                          {.id = gc.top_id[1], .bias = -100.0f}};
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	mllm_sample_result r;
	ck_assert_int_ne(gc.greedy0, force.id);

	/* +100 forces, greedy and sampled; logprobs still report the model. */
	p.logit_bias = &force;
	p.n_logit_bias = 1;
	p.logprobs = 1;
	p.has_seed = true;
	p.seed = 11;
	mllm_sampler *s = make(&p, gc.n_vocab, 0);
	for (int i = 0; i < 200; i++) {
		mllm_sampler_sample(s, ws, gc.logits, &r);
		ck_assert_int_eq(r.token, force.id);
		ck_assert_double_eq_tol(r.logprob, mllm_logprob_of(gc.logits, gc.n_vocab, force.id),
		                        1e-5);
		ck_assert_int_eq(r.top[0].id, gc.greedy0);
	}
	mllm_sampler_free(s);

	/* -100 bans: greedy takes the third best; draws never hit a ban. */
	p.logit_bias = ban;
	p.n_logit_bias = 2;
	p.temperature = 0.0f;
	s = make(&p, gc.n_vocab, 0);
	ck_assert_int_eq(one(s, ws, gc.logits), gc.top_id[2]);
	mllm_sampler_free(s);
	p.temperature = 1.0f;
	s = make(&p, gc.n_vocab, 0);
	for (int i = 0; i < 500; i++) {
		int32_t t = one(s, ws, gc.logits);
		ck_assert(t != ban[0].id && t != ban[1].id);
	}
	mllm_sampler_free(s);

	/* A bias that is not +-100 is added to the logit: on two tokens whose
	 * logits differ by d, a bias > d on the second makes it greedy's. */
	float d = gc.logits[gc.top_id[0]] - gc.logits[gc.top_id[1]];
	mllm_logit_bias shift = {.id = gc.top_id[1], .bias = d + 0.01f};
	p.logit_bias = &shift;
	p.n_logit_bias = 1;
	p.temperature = 0.0f;
	s = make(&p, gc.n_vocab, 0);
	ck_assert_int_eq(one(s, ws, gc.logits), gc.top_id[1]);
	mllm_sampler_free(s);
	shift.bias = d - 0.01f;
	s = make(&p, gc.n_vocab, 0);
	ck_assert_int_eq(one(s, ws, gc.logits), gc.top_id[0]);
	mllm_sampler_free(s);

	mllm_sampler_ws_free(ws);
	free(gc.logits);
}
END_TEST

/* Masked draws (grammar masks): at temperature 1, with and without top_k,
 * top_p and min_p, over a vocabulary that is not a multiple of 32 and a
 * mask mixing full, empty and partial words, every token drawn is allowed
 * (a masked one with by far the highest logit never is), and the allowed
 * token with the highest logit is drawn most often. */
START_TEST(test_masked_draws)
{
	enum { V = 1000, DRAWS = 3000 };
	static float logits[V];
	static uint32_t mask[(V + 31) / 32];
	static int count[V];
	mllm_sampler_ws *ws = mllm_sampler_ws_create(V);
	uint64_t r = 12345;
	int32_t best = -1;
	for (int i = 0; i < V; i++) {
		r = r * 6364136223846793005ull + 1442695040888963407ull;
		logits[i] = (float)(r >> 40) / (float)(1 << 24) * 6.0f;
	}
	memset(mask, 0, sizeof mask);
	for (int wd = 0; wd < (V + 31) / 32; wd++)
		mask[wd] = wd % 3 == 0 ? 0xffffffffu : wd % 3 == 1 ? 0u : 0x00f0f00fu;
	for (int i = 0; i < V; i++)
		if ((mask[i / 32] >> (i % 32) & 1u) && (best < 0 || logits[i] > logits[best]))
			best = i;
	/* The best allowed token stands out; a masked one stands out more
	 * (id 40: word 1, all masked) and must never be drawn. */
	logits[best] = 8.0f;
	logits[40] = 50.0f;
	for (int variant = 0; variant < 4; variant++) {
		mllm_sampling p = MLLM_SAMPLING_DEFAULT;
		mllm_sampler *s;
		int32_t most = 0;
		p.has_seed = true;
		p.seed = 7;
		p.temperature = 0.5f;
		if (variant == 1)
			p.top_k = 40;
		if (variant == 2)
			p.top_p = 0.9f;
		if (variant == 3)
			p.min_p = 0.05f;
		s = make(&p, V, 0);
		memset(count, 0, sizeof count);
		for (int d = 0; d < DRAWS; d++) {
			mllm_sample_result res;
			mllm_sampler_sample_masked(s, ws, logits, mask, &res);
			ck_assert_msg(mask[res.token / 32] >> (res.token % 32) & 1u,
			              "variant %d drew masked token %d", variant, res.token);
			count[res.token]++;
		}
		for (int i = 0; i < V; i++)
			if (count[i] > count[most])
				most = i;
		ck_assert_int_eq(most, best);
		mllm_sampler_free(s);
	}
	mllm_sampler_ws_free(ws);
}
END_TEST

/* ---- Seeds ----------------------------------------------------------------- */

static void draw_seq(const mllm_sampling *p, int32_t choice, const golden_case *gc, int32_t *out,
                     int n)
{
	mllm_sampler_ws *ws = mllm_sampler_ws_create(gc->n_vocab);
	mllm_sampler *s = make(p, gc->n_vocab, choice);
	for (int i = 0; i < n; i++)
		out[i] = one(s, ws, gc->logits);
	mllm_sampler_free(s);
	mllm_sampler_ws_free(ws);
}

START_TEST(test_seed)
{
	golden_case gc;
	int32_t a[64], b[64], c[64], d[64], e[64];
	load_case("tiny-mobilellm-f16", "tiny-mobilellm-f16.json", 4, &gc);
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	p.temperature = 1.5f;
	p.has_seed = true;
	p.seed = 42;
	draw_seq(&p, 0, &gc, a, 64);
	draw_seq(&p, 0, &gc, b, 64);
	draw_seq(&p, 1, &gc, c, 64);
	p.seed = 43;
	draw_seq(&p, 0, &gc, d, 64);
	p.has_seed = false;
	draw_seq(&p, 0, &gc, e, 64);
	ck_assert_mem_eq(a, b, sizeof a);       /* same seed, same choice */
	ck_assert(memcmp(a, c, sizeof a) != 0); /* choices differ */
	ck_assert(memcmp(a, d, sizeof a) != 0); /* seeds differ */
	ck_assert(memcmp(a, e, sizeof a) != 0); /* unseeded is random */
	free(gc.logits);
}
END_TEST

START_TEST(test_validate)
{
	mllm_logit_bias bad_id = {.id = NV, .bias = 1.0f};
	mllm_logit_bias bad_bias = {.id = 1, .bias = 101.0f};
	const char *stops[1] = {NULL};
	mllm_sampling ok = MLLM_SAMPLING_DEFAULT, p;
	ck_assert_int_eq(mllm_sampling_validate(&ok, NV), 0);
#define BAD(field, value)                                                                          \
	do {                                                                                       \
		p = ok;                                                                            \
		p.field = value;                                                                   \
		ck_assert_int_eq(mllm_sampling_validate(&p, NV), MLLM_EINVAL);                     \
	} while (0)
	BAD(temperature, -0.1f);
	BAD(temperature, NAN);
	BAD(top_p, 0.0f);
	BAD(top_p, 1.01f);
	BAD(top_k, -1);
	BAD(min_p, 1.5f);
	BAD(presence_penalty, 2.5f);
	BAD(frequency_penalty, -2.5f);
	BAD(logprobs, 21);
	BAD(logprobs, -2);
	BAD(max_tokens, -1);
	BAD(n_stop, 5);
	p = ok;
	p.stop = stops;
	p.n_stop = 1;
	ck_assert_int_eq(mllm_sampling_validate(&p, NV), MLLM_EINVAL);
	p = ok;
	p.logit_bias = &bad_id;
	p.n_logit_bias = 1;
	ck_assert_int_eq(mllm_sampling_validate(&p, NV), MLLM_EINVAL);
	p.logit_bias = &bad_bias;
	ck_assert_int_eq(mllm_sampling_validate(&p, NV), MLLM_EINVAL);
	mllm_sampler *s = (mllm_sampler *)&p; /* must be reset to NULL */
	ck_assert_int_eq(mllm_sampler_create(&p, NV, 0, &s), MLLM_EINVAL);
	ck_assert_ptr_null(s);
#undef BAD
}
END_TEST

START_TEST(test_alloc_failure)
{
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	mllm_logit_bias b = {.id = 1, .bias = 5.0f};
	p.logit_bias = &b;
	p.n_logit_bias = 1;
	p.presence_penalty = 1.0f;
	for (long k = 0; k < 4; k++) {
		mllm_sampler *s = NULL;
		mllm__alloc_fail_after(k);
		int rc = mllm_sampler_create(&p, NV, 0, &s);
		mllm__alloc_fail_after(-1);
		ck_assert_int_eq(rc, MLLM_ENOMEM);
		ck_assert_ptr_null(s);
	}
	mllm__alloc_fail_after(0);
	ck_assert_ptr_null(mllm_sampler_ws_create(NV));
	mllm__alloc_fail_after(-1);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("sampler");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_greedy_logprobs_golden);
	tcase_add_test(tc, test_temperature);
	tcase_add_test(tc, test_tiny_temperature_greedy);
	tcase_add_test(tc, test_top_k);
	tcase_add_test(tc, test_top_p);
	tcase_add_test(tc, test_top_p_large_vocab);
	tcase_add_test(tc, test_min_p);
	tcase_add_test(tc, test_penalties);
	tcase_add_test(tc, test_logit_bias_force_ban);
	tcase_add_test(tc, test_seed);
	tcase_add_test(tc, test_masked_draws);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_alloc_failure);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
