/*
 * sampler.c — turns one row of logits into the next token with the OpenAI
 * API's semantics (temperature, top_p, penalties, logit_bias, seed, logprobs)
 * plus top_k and min_p. Per-choice state is small (parameters, RNG, counts of
 * generated tokens); vocabulary-sized scratch lives in a workspace shared by
 * all samplers of the engine thread, so sampling allocates nothing. Greedy and
 * the full-distribution draw are O(vocab); top_k / top_p select candidates
 * with a quickselect instead of sorting the whole vocabulary.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base.h"
#include "kernels.h"
#include "sampler.h"

struct mllm_sampler_ws {
	int32_t n_vocab;
	float *work;  /* [n_vocab] processed logits */
	float *prob;  /* [n_vocab] unnormalised probabilities, by candidate */
	int32_t *idx; /* [n_vocab] candidate token ids */
	mllm__isa isa;
};

struct mllm_sampler {
	mllm_sampling p;       /* copy; logit_bias points to bias, stop NULL */
	mllm_logit_bias *bias; /* [p.n_logit_bias] owned */
	int32_t n_vocab;
	uint64_t rng[4];  /* xoshiro256** state */
	int32_t *counts;  /* [n_vocab] generated-token counts, or NULL */
	int32_t *touched; /* distinct generated tokens, in first-seen order */
	int32_t n_touched, cap_touched;
};

/* ---- RNG: splitmix64 seeds xoshiro256** --------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform double in [0, 1). */
static double rng_uniform(uint64_t s[4])
{
	return (double)(xoshiro_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t os_random_seed(void)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
		seed = mllm_now_ns() ^ (uint64_t)(uintptr_t)&seed;
	return seed;
}

/* ---- Workspace ----------------------------------------------------------- */

mllm_sampler_ws *mllm_sampler_ws_create(int32_t n_vocab)
{
	mllm_sampler_ws *ws;
	if (n_vocab <= 0)
		return NULL;
	ws = mllm_try_calloc(1, sizeof *ws);
	if (!ws)
		return NULL;
	ws->n_vocab = n_vocab;
	ws->isa = mllm__cpu_isa();
	ws->work = mllm_try_calloc((size_t)n_vocab, sizeof *ws->work);
	ws->prob = mllm_try_calloc((size_t)n_vocab, sizeof *ws->prob);
	ws->idx = mllm_try_calloc((size_t)n_vocab, sizeof *ws->idx);
	if (!ws->work || !ws->prob || !ws->idx) {
		mllm_sampler_ws_free(ws);
		return NULL;
	}
	return ws;
}

void mllm_sampler_ws_free(mllm_sampler_ws *ws)
{
	if (!ws)
		return;
	free(ws->work);
	free(ws->prob);
	free(ws->idx);
	free(ws);
}

/* ---- Parameters ----------------------------------------------------------- */

static bool in_range(float x, float lo, float hi)
{
	return isfinite(x) && x >= lo && x <= hi;
}

int mllm_sampling_validate(const mllm_sampling *p, int32_t n_vocab)
{
	if (!p || n_vocab <= 0)
		return MLLM_EINVAL;
	if (!isfinite(p->temperature) || p->temperature < 0.0f)
		return MLLM_EINVAL;
	if (!isfinite(p->top_p) || p->top_p <= 0.0f || p->top_p > 1.0f)
		return MLLM_EINVAL;
	if (p->top_k < 0 || !in_range(p->min_p, 0.0f, 1.0f))
		return MLLM_EINVAL;
	if (!in_range(p->presence_penalty, -2.0f, 2.0f) ||
	    !in_range(p->frequency_penalty, -2.0f, 2.0f))
		return MLLM_EINVAL;
	if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
		return MLLM_EINVAL;
	for (int32_t i = 0; i < p->n_logit_bias; i++) {
		if (p->logit_bias[i].id < 0 || p->logit_bias[i].id >= n_vocab)
			return MLLM_EINVAL;
		if (!in_range(p->logit_bias[i].bias, -100.0f, 100.0f))
			return MLLM_EINVAL;
	}
	if (p->logprobs < -1 || p->logprobs > MLLM_MAX_TOP_LOGPROBS)
		return MLLM_EINVAL;
	if (p->max_tokens < 0)
		return MLLM_EINVAL;
	if (p->n_stop < 0 || p->n_stop > MLLM_MAX_STOP || (p->n_stop > 0 && !p->stop))
		return MLLM_EINVAL;
	for (int32_t i = 0; i < p->n_stop; i++)
		if (!p->stop[i])
			return MLLM_EINVAL;
	return MLLM_OK;
}

int mllm_sampler_create(const mllm_sampling *p, int32_t n_vocab, int32_t choice, mllm_sampler **out)
{
	mllm_sampler *s;
	uint64_t x;
	int rc;

	*out = NULL;
	rc = mllm_sampling_validate(p, n_vocab);
	if (rc)
		return rc;
	s = mllm_try_calloc(1, sizeof *s);
	if (!s)
		return MLLM_ENOMEM;
	s->p = *p;
	s->p.stop = NULL;
	s->p.n_stop = 0;
	s->n_vocab = n_vocab;
	if (p->n_logit_bias > 0) {
		s->bias = mllm_try_calloc((size_t)p->n_logit_bias, sizeof *s->bias);
		if (!s->bias)
			goto fail;
		memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
	}
	s->p.logit_bias = s->bias;
	if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f) {
		s->counts = mllm_try_calloc((size_t)n_vocab, sizeof *s->counts);
		s->cap_touched = p->max_tokens < n_vocab ? p->max_tokens + 1 : n_vocab;
		s->touched = mllm_try_calloc((size_t)s->cap_touched, sizeof *s->touched);
		if (!s->counts || !s->touched)
			goto fail;
	}
	/* Seed: (seed, choice) through splitmix64, so choice k of a seeded
	 * request draws the same numbers whatever else runs. */
	x = p->has_seed ? p->seed : os_random_seed();
	x ^= 0xd1b54a32d192ed03ULL * (uint64_t)(choice + 1);
	for (int i = 0; i < 4; i++)
		s->rng[i] = splitmix64(&x);
	*out = s;
	return MLLM_OK;
fail:
	mllm_sampler_free(s);
	return MLLM_ENOMEM;
}

void mllm_sampler_free(mllm_sampler *s)
{
	if (!s)
		return;
	free(s->bias);
	free(s->counts);
	free(s->touched);
	free(s);
}

/* ---- Log-probabilities of the raw logits ---------------------------------- */

static double logsumexp(const float *logits, int32_t n)
{
	float m = -INFINITY;
	double sum = 0.0;
	for (int32_t i = 0; i < n; i++)
		if (logits[i] > m)
			m = logits[i];
	if (m == -INFINITY)
		return -INFINITY;
	for (int32_t i = 0; i < n; i++)
		sum += exp((double)logits[i] - (double)m);
	return (double)m + log(sum);
}

/* The n best of logits (ties: lower id first), best first, into top. */
static int32_t top_n(const float *logits, int32_t n_vocab, int32_t n, double lse,
                     mllm_top_logprob *top)
{
	int32_t k = 0;
	if (n > n_vocab)
		n = n_vocab;
	for (int32_t i = 0; i < n_vocab; i++) {
		float v = logits[i];
		int32_t j;
		if (k == n && !(v > top[n - 1].logprob))
			continue;
		j = k < n ? k++ : n - 1;
		while (j > 0 && v > top[j - 1].logprob) {
			top[j] = top[j - 1];
			j--;
		}
		top[j].id = i;
		top[j].logprob = v;
	}
	for (int32_t j = 0; j < k; j++)
		top[j].logprob = (float)((double)top[j].logprob - lse);
	return k;
}

float mllm_logprob_of(const float *logits, int32_t n_vocab, int32_t id)
{
	MLLM_ASSERT(id >= 0 && id < n_vocab);
	return (float)((double)logits[id] - logsumexp(logits, n_vocab));
}

int32_t mllm_logprob_top(const float *logits, int32_t n_vocab, int32_t n, mllm_top_logprob *top)
{
	if (n <= 0)
		return 0;
	if (n > MLLM_MAX_TOP_LOGPROBS)
		n = MLLM_MAX_TOP_LOGPROBS;
	return top_n(logits, n_vocab, n, logsumexp(logits, n_vocab), top);
}

/* ---- Candidate selection -------------------------------------------------- */

/* Order of candidates: higher value first, lower id on ties (deterministic). */
static bool better(const float *w, int32_t a, int32_t b)
{
	return w[a] > w[b] || (w[a] == w[b] && a < b);
}

static int cmp_desc(const void *pa, const void *pb, void *ctx)
{
	const float *w = ctx;
	int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
	if (better(w, a, b))
		return -1;
	return better(w, b, a) ? 1 : 0;
}

static void swap_i32(int32_t *a, int32_t *b)
{
	int32_t t = *a;
	*a = *b;
	*b = t;
}

/* Partially orders idx[0..n) so that its first k entries are the k best by
 * w (in any order). Iterative quickselect, median-of-three pivot. */
static void select_best(int32_t *idx, int32_t n, int32_t k, const float *w)
{
	int32_t lo = 0, hi = n - 1;
	if (k <= 0 || k >= n)
		return;
	while (hi > lo) {
		int32_t mid = lo + (hi - lo) / 2, i = lo, j = hi, pivot;
		if (better(w, idx[mid], idx[lo]))
			swap_i32(&idx[mid], &idx[lo]);
		if (better(w, idx[hi], idx[lo]))
			swap_i32(&idx[hi], &idx[lo]);
		if (better(w, idx[hi], idx[mid]))
			swap_i32(&idx[hi], &idx[mid]);
		pivot = idx[mid];
		while (i <= j) {
			while (better(w, idx[i], pivot))
				i++;
			while (better(w, pivot, idx[j]))
				j--;
			if (i <= j) {
				swap_i32(&idx[i], &idx[j]);
				i++;
				j--;
			}
		}
		/* [lo, j] better-or-equal to pivot, [i, hi] worse-or-equal. */
		if (k - 1 <= j)
			hi = j;
		else if (k - 1 >= i)
			lo = i;
		else
			return;
	}
}

/* The k best candidates of idx[0..n), sorted best first, in idx[0..k). */
static void best_sorted(int32_t *idx, int32_t n, int32_t k, float *w)
{
	select_best(idx, n, k, w);
	qsort_r(idx, (size_t)k, sizeof *idx, cmp_desc, w);
}

/* ---- Sampling --------------------------------------------------------------- */

static void record(mllm_sampler *s, int32_t tok)
{
	if (!s->counts)
		return;
	if (s->counts[tok]++ == 0 && s->n_touched < s->cap_touched)
		s->touched[s->n_touched++] = tok;
}

/* The candidate list starts as every token in id order; it is written
 * only when a filter needs it. */
static void fill_ident(int32_t *idx, int32_t n, bool *ident)
{
	if (!*ident)
		return;
	for (int32_t i = 0; i < n; i++)
		idx[i] = i;
	*ident = false;
}

/* Temperatures below this are greedy, as vLLM treats them: logits / T
 * would leave one candidate anyway, and below ~3e-39 1/T overflows a
 * float, so the best token's (w - max) / T would be 0 * inf = NaN. */
#define GREEDY_BELOW_T 1e-5f

static bool greedy(const mllm_sampling *p)
{
	return p->temperature < GREEDY_BELOW_T;
}

/* Draws from temperature-scaled w over every token, or over the candidates
 * kept by top_k / min_p / top_p. Returns -1 when nothing has probability. */
static int32_t draw(mllm_sampler *s, mllm_sampler_ws *ws)
{
	const mllm_sampling *p = &s->p;
	float *w = ws->work, *prob = ws->prob;
	int32_t *idx = ws->idx, n = s->n_vocab;
	bool sorted = false, ident = true; /* ident: idx[i] == i, not yet written */
	double inv_t = 1.0 / (double)p->temperature, total = 0.0, u, cum;
	float m;

	if (p->top_k > 0 && p->top_k < n) {
		fill_ident(idx, n, &ident);
		best_sorted(idx, n, p->top_k, w);
		n = p->top_k;
		sorted = true;
		m = w[idx[0]];
	} else {
		m = mllm__max_f32(ws->isa, w, n);
	}
	if (m == -INFINITY)
		return -1;
	/* prob[i] belongs to candidate idx[i]; the best has probability 1
	 * before normalisation, which makes min_p a plain threshold. Banned
	 * and grammar-masked tokens (-inf) get exactly 0. Over the whole
	 * vocabulary (idx is the identity) the exps run by vector lanes. */
	if (!sorted) {
		total = mllm__exp_shift(ws->isa, w, m, (float)inv_t, prob, n);
	} else {
		for (int32_t i = 0; i < n; i++) {
			float wi = w[idx[i]];
			prob[i] = wi == -INFINITY ? 0.0f : expf((wi - m) * (float)inv_t);
			total += prob[i];
		}
	}
	if (p->min_p > 0.0f) {
		int32_t k = 0;
		fill_ident(idx, n, &ident);
		total = 0.0;
		for (int32_t i = 0; i < n; i++) {
			if (prob[i] >= p->min_p) {
				idx[k] = idx[i];
				prob[k] = prob[i];
				total += prob[k];
				k++;
			}
		}
		n = k;
	}
	if (p->top_p < 1.0f) {
		/* Smallest best-first prefix whose mass reaches top_p: select
		 * and sort a growing head instead of the whole vocabulary. */
		double target = (double)p->top_p * total;
		int32_t k = n < 64 ? n : 64, kept = n;
		fill_ident(idx, n, &ident);
		for (;;) {
			if (!sorted || k > n)
				best_sorted(idx, n, k, w);
			cum = 0.0;
			kept = -1;
			for (int32_t i = 0; i < k; i++) {
				prob[i] = expf((w[idx[i]] - m) * (float)inv_t);
				cum += prob[i];
				if (cum >= target) {
					kept = i + 1;
					break;
				}
			}
			if (kept > 0 || k == n)
				break;
			k = k > n / 4 ? n : k * 4;
			sorted = false;
		}
		if (kept < 0)
			kept = n;
		n = kept;
		total = 0.0;
		for (int32_t i = 0; i < n; i++)
			total += prob[i];
	}
	u = rng_uniform(s->rng) * total;
	cum = 0.0;
	for (int32_t i = 0; i < n; i++) {
		cum += prob[i];
		if (u < cum)
			return ident ? i : idx[i];
	}
	/* Rounding put u at the very end: the last candidate with mass. */
	for (int32_t i = n - 1; i >= 0; i--)
		if (prob[i] > 0.0f)
			return ident ? i : idx[i];
	return -1;
}

static bool allowed(const uint32_t *allow, int32_t i)
{
	return !allow || (allow[i / 32] >> (i % 32)) & 1u;
}

/* argmax over the allowed tokens (lowest id on ties); the first allowed
 * token when all are -inf. */
static int32_t argmax_allowed(mllm__isa isa, const float *w, int32_t n, const uint32_t *allow)
{
	int32_t best = -1;
	if (!allow)
		return (int32_t)mllm__argmax_f32(isa, w, n);
	for (int32_t i = 0; i < n; i++)
		if (allowed(allow, i) && (best < 0 || w[i] > w[best]))
			best = i;
	return best < 0 ? (int32_t)mllm__argmax_f32(isa, w, n) : best;
}

void mllm_sampler_sample(mllm_sampler *s, mllm_sampler_ws *ws, const float *logits,
                         mllm_sample_result *out)
{
	mllm_sampler_sample_masked(s, ws, logits, NULL, out);
}

void mllm_sampler_sample_masked(mllm_sampler *s, mllm_sampler_ws *ws, const float *logits,
                                const uint32_t *allow, mllm_sample_result *out)
{
	const mllm_sampling *p = &s->p;
	float *w = ws->work;
	int32_t n = s->n_vocab, tok;

	MLLM_ASSERT(ws->n_vocab >= n);
	if (greedy(p) && p->n_logit_bias == 0 && s->n_touched == 0) {
		/* Plain greedy: nothing to adjust, no copy. */
		tok = argmax_allowed(ws->isa, logits, n, allow);
		goto chosen;
	}
	memcpy(w, logits, (size_t)n * sizeof *w);
	/* 0. The grammar's mask: a token it rejects is -inf before anything
	 * else, so temperature, top_k and top_p see only allowed tokens. */
	if (allow)
		for (int32_t b = 0; b < n; b += 32) {
			uint32_t a = allow[b / 32];
			int32_t lim = n - b < 32 ? n - b : 32;
			if (a == 0xffffffffu)
				continue; /* a word of allowed tokens: nothing to do */
			for (int32_t k = 0; k < lim; k++)
				if (!(a >> k & 1u))
					w[b + k] = -INFINITY;
		}
	/* 1. logit_bias: additive; -100 is a ban, not merely a large shift. */
	for (int32_t i = 0; i < p->n_logit_bias; i++) {
		const mllm_logit_bias *b = &s->bias[i];
		if (b->bias <= -100.0f)
			w[b->id] = -INFINITY;
		else
			w[b->id] += b->bias;
	}
	/* 2. OpenAI's penalties over generated tokens. */
	for (int32_t i = 0; i < s->n_touched; i++) {
		int32_t j = s->touched[i];
		w[j] -= p->frequency_penalty * (float)s->counts[j] + p->presence_penalty;
	}
	/* 3. Greedy or a draw. With everything banned, fall back to the raw
	 * argmax rather than inventing a token. */
	if (greedy(p)) {
		tok = (int32_t)mllm__argmax_f32(ws->isa, w, n);
		if (w[tok] == -INFINITY)
			tok = argmax_allowed(ws->isa, logits, n, allow);
	} else {
		tok = draw(s, ws);
		if (tok < 0)
			tok = argmax_allowed(ws->isa, logits, n, allow);
	}
chosen:
	record(s, tok);

	out->token = tok;
	out->logprob = 0.0f;
	out->n_top = 0;
	if (p->logprobs >= 0) {
		double lse = logsumexp(logits, n);
		out->logprob = (float)((double)logits[tok] - lse);
		if (p->logprobs > 0)
			out->n_top = top_n(logits, n, p->logprobs, lse, out->top);
	}
}
