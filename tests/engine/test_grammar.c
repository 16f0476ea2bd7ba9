/*
 * test_grammar.c — the byte-grammar engine: the builder's checks, matching
 * of hand-built grammars (literals, classes, alternation, right and nested
 * recursion, the empty string), the depth bound, and token masks over the
 * LLaMA vocabulary compared with a brute-force check of every token, plus
 * the masked sampler (greedy and drawn tokens stay inside the mask).
 */
#include "harness.h"

#include "../../engine/gmatch.h"
#include "../../engine/sampler.h"

#define LLAMA_MODEL "tokenizer/llama2/tokenizer.model"

/* A grammar for balanced brackets with digits: S ::= "[" L "]" ;
 * L ::= "" | I L ; I ::= [0-9] | S. */
static mllm_grammar *brackets(void)
{
	mllm_gbuild *b;
	mllm_grammar *g;
	char err[128];
	int32_t s, l, i;
	ck_assert_int_eq(mllm_gbuild_create(&b), 0);
	s = mllm_gbuild_rule(b);
	l = mllm_gbuild_rule(b);
	i = mllm_gbuild_rule(b);
	mllm_gbuild_lit(b, s, "[", 1);
	mllm_gbuild_ref(b, s, l);
	mllm_gbuild_lit(b, s, "]", 1);
	mllm_gbuild_alt(b, l);
	mllm_gbuild_alt(b, l);
	mllm_gbuild_ref(b, l, i);
	mllm_gbuild_ref(b, l, l);
	mllm_gbuild_range(b, i, '0', '9');
	mllm_gbuild_alt(b, i);
	mllm_gbuild_ref(b, i, s);
	ck_assert_int_eq(mllm_gbuild_finish(b, s, &g, err, sizeof err), 0);
	mllm_gbuild_free(b);
	return g;
}

START_TEST(test_match_brackets)
{
	mllm_grammar *g = brackets();
	ck_assert_int_eq(mllm_grammar_match(g, "[]", 2), 1);
	ck_assert_int_eq(mllm_grammar_match(g, "[12[3[]]4]", 10), 1);
	ck_assert_int_eq(mllm_grammar_match(g, "[12[3", 5), 0);
	ck_assert_int_eq(mllm_grammar_match(g, "", 0), 0);
	ck_assert_int_eq(mllm_grammar_match(g, "[]]", 3), -1);
	ck_assert_int_eq(mllm_grammar_match(g, "[a]", 3), -1);
	ck_assert_int_eq(mllm_grammar_match(g, "]", 1), -1);
	mllm_grammar_unref(g);
}
END_TEST

START_TEST(test_depth_bound)
{
	/* Nesting past MLLM_GRAMMAR_MAX_DEPTH frames is refused, not a crash
	 * or an unbounded allocation. */
	mllm_grammar *g = brackets();
	char buf[2 * MLLM_GRAMMAR_MAX_DEPTH + 2];
	memset(buf, '[', sizeof buf);
	ck_assert_int_eq(mllm_grammar_match(g, buf, 10), 0);
	ck_assert_int_eq(mllm_grammar_match(g, buf, sizeof buf), -1);
	mllm_grammar_unref(g);
}
END_TEST

START_TEST(test_builder_errors)
{
	mllm_gbuild *b;
	mllm_grammar *g = NULL;
	char err[128];
	int32_t a, c;
	/* A rule with no alternative. */
	ck_assert_int_eq(mllm_gbuild_create(&b), 0);
	a = mllm_gbuild_rule(b);
	c = mllm_gbuild_rule(b);
	mllm_gbuild_ref(b, a, c);
	ck_assert_int_eq(mllm_gbuild_finish(b, a, &g, err, sizeof err), MLLM_EINVAL);
	ck_assert_ptr_null(g);
	mllm_gbuild_free(b);
	/* Left recursion through a nullable rule: A ::= N A "x" | "y"; N ::= "". */
	ck_assert_int_eq(mllm_gbuild_create(&b), 0);
	a = mllm_gbuild_rule(b);
	c = mllm_gbuild_rule(b);
	mllm_gbuild_ref(b, a, c);
	mllm_gbuild_ref(b, a, a);
	mllm_gbuild_lit(b, a, "x", 1);
	mllm_gbuild_alt(b, a);
	mllm_gbuild_lit(b, a, "y", 1);
	mllm_gbuild_alt(b, c);
	ck_assert_int_eq(mllm_gbuild_finish(b, a, &g, err, sizeof err), MLLM_EINVAL);
	ck_assert(strstr(err, "left-recursive") != NULL);
	mllm_gbuild_free(b);
	/* A reference to an unknown rule is kept as the first error. */
	ck_assert_int_eq(mllm_gbuild_create(&b), 0);
	a = mllm_gbuild_rule(b);
	mllm_gbuild_ref(b, a, 99);
	ck_assert_int_ne(mllm_gbuild_finish(b, a, &g, err, sizeof err), 0);
	mllm_gbuild_free(b);
}
END_TEST

START_TEST(test_ambiguous_alternatives)
{
	/* "ab" | "a" "b"* "c": both branches live after "a". */
	mllm_gbuild *b;
	mllm_grammar *g;
	char err[128];
	int32_t r, bs;
	ck_assert_int_eq(mllm_gbuild_create(&b), 0);
	r = mllm_gbuild_rule(b);
	bs = mllm_gbuild_rule(b);
	mllm_gbuild_lit(b, r, "ab", 2);
	mllm_gbuild_alt(b, r);
	mllm_gbuild_lit(b, r, "a", 1);
	mllm_gbuild_ref(b, r, bs);
	mllm_gbuild_lit(b, r, "c", 1);
	mllm_gbuild_alt(b, bs);
	mllm_gbuild_alt(b, bs);
	mllm_gbuild_lit(b, bs, "b", 1);
	mllm_gbuild_ref(b, bs, bs);
	ck_assert_int_eq(mllm_gbuild_finish(b, r, &g, err, sizeof err), 0);
	mllm_gbuild_free(b);
	ck_assert_int_eq(mllm_grammar_match(g, "ab", 2), 1);
	ck_assert_int_eq(mllm_grammar_match(g, "abbbc", 5), 1);
	ck_assert_int_eq(mllm_grammar_match(g, "ac", 2), 1);
	ck_assert_int_eq(mllm_grammar_match(g, "abb", 3), 0);
	ck_assert_int_eq(mllm_grammar_match(g, "abcc", 4), -1);
	mllm_grammar_unref(g);
}
END_TEST

static mllm_tokenizer *load_tok(void)
{
	char path[1024], err[256];
	mllm_tokenizer *tok;
	mllm_test_path(path, sizeof path, LLAMA_MODEL);
	MLLM_REQUIRE_FIXTURE(path);
	ck_assert_int_eq(mllm_tokenizer_load(path, &tok, err, sizeof err), 0);
	return tok;
}

/* The mask must equal, token by token, "feeding this token's bytes to a
 * copy of the state succeeds" — checked here on a fresh matcher per token,
 * after a given prefix. */
static void check_mask(const mllm_grammar *g, const mllm_vtrie *t, const mllm_tokenizer *tok,
                       const char *prefix)
{
	mllm_gmatch *m, *ref;
	const uint32_t *allow;
	int32_t n_vocab = mllm_tokenizer_n_vocab(tok), n_ok, n_expect = 0;
	int32_t eos = mllm_tokenizer_eos(tok);
	ck_assert_int_eq(mllm_gmatch_create(g, t, eos, &m), 0);
	ck_assert_int_eq(mllm_gmatch_feed(m, prefix, strlen(prefix)), 0);
	n_ok = mllm_gmatch_mask(m, &allow);
	for (int32_t id = 0; id < n_vocab; id++) {
		char buf[256];
		size_t n = mllm_tokenizer_token_bytes(tok, id, buf, sizeof buf);
		bool expect = false, got = (allow[id / 32] >> (id % 32)) & 1u;
		if (id == eos) {
			expect = mllm_gmatch_can_end(m);
		} else if (!mllm_tokenizer_is_control(tok, id) && n > 0) {
			ck_assert_int_eq(mllm_gmatch_create(g, t, eos, &ref), 0);
			ck_assert_int_eq(mllm_gmatch_feed(ref, prefix, strlen(prefix)), 0);
			expect = mllm_gmatch_feed(ref, buf, n) == 0;
			mllm_gmatch_free(ref);
		}
		ck_assert_msg(expect == got, "token %d (%.*s) after '%s': mask %d, check %d",
		              (int)id, (int)n, buf, prefix, got, expect);
		n_expect += expect;
	}
	ck_assert_int_eq(n_ok, n_expect);
	mllm_gmatch_free(m);
}

START_TEST(test_mask_brute_force)
{
	mllm_tokenizer *tok = load_tok();
	mllm_vtrie *t;
	mllm_grammar *g = brackets();
	ck_assert_int_eq(mllm_vtrie_create(tok, &t), 0);
	ck_assert_int_eq(mllm_vtrie_n_vocab(t), mllm_tokenizer_n_vocab(tok));
	check_mask(g, t, tok, "");
	check_mask(g, t, tok, "[1");
	check_mask(g, t, tok, "[[]");
	check_mask(g, t, tok, "[]");
	mllm_grammar_unref(g);
	mllm_vtrie_free(t);
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(test_mask_cache_and_accept)
{
	/* Inside the digit list the state repeats: the second mask is served
	 * from the cache and equals the first. EOS only once complete. */
	mllm_tokenizer *tok = load_tok();
	mllm_vtrie *t;
	mllm_gmatch *m;
	mllm_grammar *g = brackets();
	const uint32_t *a1, *a2;
	uint32_t *copy;
	int32_t eos = mllm_tokenizer_eos(tok), n_words, n1, n2, one = -1;
	int64_t walks, hits, cf_hits;
	ck_assert_int_eq(mllm_vtrie_create(tok, &t), 0);
	ck_assert_int_eq(mllm_gmatch_create(g, t, eos, &m), 0);
	n_words = (mllm_tokenizer_n_vocab(tok) + 31) / 32;
	ck_assert_int_eq(mllm_gmatch_feed(m, "[", 1), 0);
	n1 = mllm_gmatch_mask(m, &a1);
	ck_assert_int_gt(n1, 0);
	ck_assert(!((a1[eos / 32] >> (eos % 32)) & 1u));
	copy = malloc((size_t)n_words * sizeof *copy);
	memcpy(copy, a1, (size_t)n_words * sizeof *copy);
	for (int32_t id = 0; id < mllm_tokenizer_n_vocab(tok) && one < 0; id++) {
		char buf[8];
		if (mllm_tokenizer_token_bytes(tok, id, buf, sizeof buf) == 1 && buf[0] == '7')
			one = id;
	}
	ck_assert_int_ge(one, 0);
	ck_assert_int_eq(mllm_gmatch_accept(m, one), 0);
	n2 = mllm_gmatch_mask(m, &a2);
	ck_assert_int_eq(n1, n2);
	ck_assert_mem_eq(copy, a2, (size_t)n_words * sizeof *copy);
	mllm_gmatch_stats(m, &walks, &hits, &cf_hits);
	ck_assert_int_eq(walks, 1);
	ck_assert_int_eq(hits, 1);
	/* A rejected token leaves the state unchanged. */
	ck_assert_int_eq(mllm_gmatch_accept(m, eos), MLLM_EINVAL);
	ck_assert_int_eq(mllm_gmatch_feed(m, "x", 1), MLLM_EINVAL);
	ck_assert_int_eq(mllm_gmatch_feed(m, "]", 1), 0);
	ck_assert(mllm_gmatch_can_end(m));
	n2 = mllm_gmatch_mask(m, &a2);
	ck_assert_int_eq(n2, 1);
	ck_assert(((a2[eos / 32] >> (eos % 32)) & 1u));
	ck_assert_int_eq(mllm_gmatch_accept(m, eos), 0);
	free(copy);
	mllm_gmatch_free(m);
	mllm_grammar_unref(g);
	mllm_vtrie_free(t);
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(test_more_end_ids)
{
	/* A second end id (a chat model's end of turn) is allowed exactly
	 * where the tokenizer's EOS is: only once the grammar may end. */
	mllm_tokenizer *tok = load_tok();
	mllm_vtrie *t;
	mllm_gmatch *m;
	mllm_grammar *g = brackets();
	const uint32_t *a;
	int32_t eos = mllm_tokenizer_eos(tok), other = 0, n;
	ck_assert_int_ne(other, eos);
	ck_assert_int_eq(mllm_vtrie_create(tok, &t), 0);
	ck_assert_int_eq(mllm_gmatch_create(g, t, eos, &m), 0);
	mllm_gmatch_add_eos(m, other);
	mllm_gmatch_add_eos(m, other); /* a repeat: ignored */
	mllm_gmatch_add_eos(m, eos);   /* create's own: ignored */
	mllm_gmatch_add_eos(m, -5);    /* outside the vocabulary: ignored */
	ck_assert_int_eq(mllm_gmatch_feed(m, "[", 1), 0);
	ck_assert_int_gt(mllm_gmatch_mask(m, &a), 0);
	ck_assert(!((a[other / 32] >> (other % 32)) & 1u));
	ck_assert_int_eq(mllm_gmatch_accept(m, other), MLLM_EINVAL);
	ck_assert_int_eq(mllm_gmatch_feed(m, "]", 1), 0);
	n = mllm_gmatch_mask(m, &a);
	ck_assert_int_eq(n, 2); /* EOS and the other end id, nothing else */
	ck_assert(((a[other / 32] >> (other % 32)) & 1u));
	ck_assert(((a[eos / 32] >> (eos % 32)) & 1u));
	ck_assert_int_eq(mllm_gmatch_accept(m, other), 0);
	mllm_gmatch_free(m);
	mllm_grammar_unref(g);
	mllm_vtrie_free(t);
	mllm_tokenizer_free(tok);
}
END_TEST

START_TEST(test_masked_sampler)
{
	/* Random logits; the mask allows a few tokens; greedy picks the best
	 * allowed one and 200 draws at temperature 1 never leave the mask. */
	int32_t n = 1000;
	float *logits = malloc((size_t)n * sizeof *logits);
	uint32_t mask[(1000 + 31) / 32] = {0};
	mllm_sampling p = MLLM_SAMPLING_DEFAULT;
	mllm_sampler *s;
	mllm_sampler_ws *ws = mllm_sampler_ws_create(n);
	mllm_sample_result res;
	int32_t allowed[] = {3, 500, 999};
	for (int32_t i = 0; i < n; i++)
		logits[i] = (float)((i * 7919) % 1000) / 100.0f;
	for (size_t k = 0; k < 3; k++)
		mask[allowed[k] / 32] |= 1u << (allowed[k] % 32);
	p.temperature = 0.0f;
	ck_assert_int_eq(mllm_sampler_create(&p, n, 0, &s), 0);
	mllm_sampler_sample_masked(s, ws, logits, mask, &res);
	{
		int32_t best = allowed[0];
		for (size_t k = 1; k < 3; k++)
			if (logits[allowed[k]] > logits[best])
				best = allowed[k];
		ck_assert_int_eq(res.token, best);
	}
	mllm_sampler_free(s);
	p.temperature = 1.0f;
	p.has_seed = true;
	p.seed = 42;
	p.top_p = 0.5f;
	ck_assert_int_eq(mllm_sampler_create(&p, n, 0, &s), 0);
	for (int i = 0; i < 200; i++) {
		mllm_sampler_sample_masked(s, ws, logits, mask, &res);
		ck_assert(res.token == 3 || res.token == 500 || res.token == 999);
	}
	mllm_sampler_free(s);
	mllm_sampler_ws_free(ws);
	free(logits);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("grammar");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_match_brackets);
	tcase_add_test(tc, test_depth_bound);
	tcase_add_test(tc, test_builder_errors);
	tcase_add_test(tc, test_ambiguous_alternatives);
	tcase_add_test(tc, test_mask_brute_force);
	tcase_add_test(tc, test_mask_cache_and_accept);
	tcase_add_test(tc, test_more_end_ids);
	tcase_add_test(tc, test_masked_sampler);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
