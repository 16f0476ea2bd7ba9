/*
 * test_demo_model.c — the shipped demo model (models/mobilellm-demo) runs in
 * the engine exactly as in PyTorch. Its golden.json is the float64 reference
 * that tools/train/train.py wrote from the exported F16 weights: top-10
 * logits and log-sum-exp at every prompt position, the full last-position
 * logits, and a greedy continuation. This is the end-to-end check that what
 * the training code exports (layer sharing, GQA, shared embedding, its own
 * SentencePiece tokenizer) is what the daemon serves. Black-box: mllm.h only.
 */
#include "forward.h"
#include "golden.h"

/* The fixture README's tolerances for f16 weights computed in f32
 * (overridable at build time to read how close the engine comes). */
#ifndef LOGIT_TOL
#define LOGIT_TOL 1e-3
#endif
#define TIE_MARGIN 1e-2
#define MAX_TOKENS 256

/* The model lives in the repository, not in the fixtures; tests run from
 * the repository root. MLLM_DEMO_MODEL overrides the path. */
static const char *demo_dir(void)
{
	const char *p = getenv("MLLM_DEMO_MODEL");
	return p && *p ? p : "models/mobilellm-demo";
}

static const char *demo_path(char *buf, size_t n, const char *file)
{
	snprintf(buf, n, "%s/%s", demo_dir(), file);
	return buf;
}

static mllm__json_doc *load_json(const char *file)
{
	char path[1024];
	demo_path(path, sizeof path, file);
	ck_assert_msg(access(path, R_OK) == 0,
	              "demo model file %s is missing (set MLLM_DEMO_MODEL)", path);
	return ju_load(path); /* asserts it parses, naming the file */
}

static const mllm__json *golden_cases(const mllm__json_doc *root)
{
	const mllm__json *cases = ju_get(mllm__json_root(root), "cases");
	ck_assert(cases->type == MLLM_JSON_ARRAY && ju_len(cases) > 0);
	return cases;
}

static mllm_model *open_demo(void)
{
	char err[512] = "";
	mllm_model_params mp = MLLM_MODEL_PARAMS_DEFAULT;
	mllm_model *m = NULL;
	int rc = mllm_model_open(demo_dir(), &mp, &m, err, sizeof err);
	ck_assert_msg(rc == 0, "open %s: %s (%s)", demo_dir(), mllm_strerror(rc), err);
	return m;
}

/* ---- One sequence through mllm_forward ---------------------------------- */

static void runner_open(golden_runner *r)
{
	golden_runner_init(r, open_demo(), MAX_TOKENS, MAX_TOKENS / 16 + 1, MAX_TOKENS / 16, 32);
}

static void runner_close(golden_runner *r)
{
	mllm_model *m = r->m;
	golden_runner_free(r, false);
	mllm_model_close(m);
}

/* Runs ids[0..n) at positions pos0..pos0+n-1; logits of every row. */
static void runner_run(golden_runner *r, const int32_t *ids, int n, int pos0, float *logits)
{
	ck_assert_int_le(pos0 + n, MAX_TOKENS);
	golden_runner_step(r, ids, n, pos0, logits);
}

/* ---- Tests -------------------------------------------------------------- */

/* The loader reads the shape the training script exported. */
START_TEST(test_hparams)
{
	mllm__json_doc *doc = load_json("config.json");
	const mllm__json *cfg = mllm__json_root(doc);
	mllm_model *m = open_demo();
	const mllm_hparams *hp = mllm_model_hparams(m);
#define CFG_INT(k) ((int)ju_int(ju_get(cfg, k)))
	ck_assert_int_eq(hp->n_layer, CFG_INT("num_hidden_layers"));
	ck_assert_int_eq(hp->n_embd, CFG_INT("hidden_size"));
	ck_assert_int_eq(hp->n_head, CFG_INT("num_attention_heads"));
	ck_assert_int_eq(hp->n_head_kv, CFG_INT("num_key_value_heads"));
	ck_assert_int_eq(hp->head_dim, CFG_INT("head_dim"));
	ck_assert_int_eq(hp->n_ff, CFG_INT("intermediate_size"));
	ck_assert_int_eq(hp->n_vocab, CFG_INT("vocab_size"));
	ck_assert_int_eq(hp->n_ctx_train, CFG_INT("max_position_embeddings"));
	ck_assert_int_eq(hp->bos_id, CFG_INT("bos_token_id"));
	ck_assert_int_eq(hp->eos_id, CFG_INT("eos_token_id"));
#undef CFG_INT
	ck_assert(hp->layer_sharing == ju_is_true(mllm__json_get(cfg, "layer_sharing")));
	ck_assert(hp->shared_output == ju_is_true(mllm__json_get(cfg, "share_embedding")));
	ck_assert(!hp->rope_interleaved);
	ck_assert_int_eq(hp->wtype, MLLM_DTYPE_F16);
	/* Parameter count from the config's shapes: stored blocks only. */
	int64_t d = hp->n_embd, hd = hp->head_dim, f = hp->n_ff;
	int64_t per = d * hd * (2 * hp->n_head + 2 * hp->n_head_kv) + 3 * d * f + 2 * d;
	ck_assert_int_eq(mllm_model_n_params(m), (int64_t)hp->n_vocab * d + hp->n_layer * per + d);
	mllm_model_close(m);
	mllm__json_free(doc);
}
END_TEST

/* The engine's tokenizer encodes every golden prompt to the ids PyTorch's
 * SentencePiece gave, and decodes the greedy continuation to its text. */
START_TEST(test_tokenizer)
{
	mllm__json_doc *root = load_json("golden.json");
	const mllm__json *cases = golden_cases(root);
	mllm_model *m = open_demo();
	const mllm_tokenizer *tok = mllm_model_tokenizer(m);
	ck_assert_ptr_nonnull(tok);
	for (size_t ci = 0; ci < ju_len(cases); ci++) {
		const mllm__json *c = ju_at(cases, ci);
		const char *text = ju_str(ju_get(c, "text"));
		ck_assert_ptr_nonnull(text);
		int n_want;
		int32_t *want = golden_ids(ju_get(c, "ids"), &n_want);
		int32_t got[MAX_TOKENS];
		size_t n_got = 0;
		ck_assert_int_eq(
		    mllm_tokenizer_encode(tok, text, strlen(text), true, got, MAX_TOKENS, &n_got),
		    0);
		ck_assert_int_eq((int)n_got, n_want);
		for (int i = 0; i < n_want; i++)
			ck_assert_msg(got[i] == want[i], "case %zu id %d: %d != %d", ci, i, got[i],
			              want[i]);
		free(want);

		const mllm__json *g = ju_get(c, "greedy");
		int n_g;
		int32_t *gids = golden_ids(ju_get(g, "ids"), &n_g);
		const char *gtext = ju_str(ju_get(g, "text"));
		char out[4096];
		size_t n_out = 0;
		ck_assert_int_eq(
		    mllm_tokenizer_decode(tok, gids, (size_t)n_g, out, sizeof out, &n_out), 0);
		ck_assert_str_eq(out, gtext);
		free(gids);
	}
	mllm_model_close(m);
	mllm__json_free(root);
}
END_TEST

/* Whole prompt in one batch: top-10 and log-sum-exp at every position and
 * the full last-position logits within LOGIT_TOL of the float64 reference. */
static void check_prefill(void)
{
	mllm__json_doc *root = load_json("golden.json");
	const mllm__json *cases = golden_cases(root);
	golden_runner r;
	runner_open(&r);
	for (size_t ci = 0; ci < ju_len(cases); ci++) {
		const mllm__json *c = ju_at(cases, ci);
		int n;
		int32_t *ids = golden_ids(ju_get(c, "ids"), &n);
		float *lg = xmallocarray((size_t)n * (size_t)r.n_vocab, sizeof(float));
		runner_run(&r, ids, n, 0, lg);
		const mllm__json *top = ju_get(c, "top");
		const mllm__json *lse = ju_get(c, "logsumexp");
		ck_assert_int_eq((int)ju_len(top), n);
		ck_assert_int_eq((int)ju_len(lse), n);
		double worst = 0.0;
		for (int p = 0; p < n; p++) {
			const float *z = lg + (size_t)p * (size_t)r.n_vocab;
			const mllm__json *row = ju_at(top, (size_t)p);
			ck_assert_int_gt((int)ju_len(row), 0);
			for (size_t k = 0; k < ju_len(row); k++) {
				const mllm__json *e = ju_at(row, k);
				int id = (int)ju_int(ju_at(e, 0));
				double want = ju_num(ju_at(e, 1));
				ck_assert(id >= 0 && id < r.n_vocab);
				worst = fmax(worst, fabs(z[id] - want));
			}
			double l = golden_logsumexp(z, r.n_vocab);
			worst = fmax(worst, fabs(l - ju_num(ju_at(lse, (size_t)p))));
		}
		size_t n_last;
		double *last = ju_nums(ju_get(c, "last_logits"), &n_last);
		ck_assert_int_eq((int)n_last, r.n_vocab);
		const float *z = lg + (size_t)(n - 1) * (size_t)r.n_vocab;
		for (int v = 0; v < r.n_vocab; v++)
			worst = fmax(worst, fabs(z[v] - last[v]));
		ck_assert_msg(worst <= LOGIT_TOL, "case %zu: max |logit - golden| = %g", ci, worst);
		/* Each case starts over at position 0: the cache is overwritten. */
		free(last);
		free(lg);
		free(ids);
	}
	runner_close(&r);
	mllm__json_free(root);
}

START_TEST(test_prefill_logits)
{
	check_prefill();
}
END_TEST

/* The same with the scalar reference kernels (MLLM_REF_KERNELS=1 is read
 * once per process; CK_FORK gives this test a process of its own). */
START_TEST(test_prefill_logits_ref)
{
	ck_assert_int_eq(setenv("MLLM_REF_KERNELS", "1", 1), 0);
	check_prefill();
}
END_TEST

/* Greedy decoding one token at a time through the KV cache (prefill, then
 * single-token steps) gives the reference continuation and its logprobs,
 * up to the first step whose top-1/top-2 margin is a near-tie. */
START_TEST(test_greedy)
{
	mllm__json_doc *root = load_json("golden.json");
	const mllm__json *cases = golden_cases(root);
	golden_runner r;
	runner_open(&r);
	int compared = 0;
	for (size_t ci = 0; ci < ju_len(cases); ci++) {
		const mllm__json *c = ju_at(cases, ci);
		const mllm__json *g = ju_get(c, "greedy");
		const mllm__json *lps = ju_get(g, "logprobs");
		const mllm__json *tops = ju_get(g, "top_logprobs");
		int n, n_g;
		int32_t *ids = golden_ids(ju_get(c, "ids"), &n);
		int32_t *want = golden_ids(ju_get(g, "ids"), &n_g);
		ck_assert_int_eq((int)ju_len(lps), n_g);
		ck_assert_int_eq((int)ju_len(tops), n_g);
		float *lg = xmallocarray((size_t)n * (size_t)r.n_vocab, sizeof(float));
		runner_run(&r, ids, n, 0, lg);
		const float *z = lg + (size_t)(n - 1) * (size_t)r.n_vocab;
		int pos = n;
		for (int s = 0; s < n_g; s++) {
			const mllm__json *t = ju_at(tops, (size_t)s);
			double margin =
			    ju_num(ju_at(ju_at(t, 0), 1)) - ju_num(ju_at(ju_at(t, 1), 1));
			int got = golden_argmax(z, r.n_vocab);
			double lp = z[want[s]] - golden_logsumexp(z, r.n_vocab);
			double want_lp = ju_num(ju_at(lps, (size_t)s));
			ck_assert_msg(fabs(lp - want_lp) <= LOGIT_TOL,
			              "case %zu step %d: logprob %g vs %g", ci, s, lp, want_lp);
			if (margin < TIE_MARGIN)
				break; /* a flip here is rounding, not a bug */
			ck_assert_msg(got == want[s], "case %zu step %d: greedy %d, golden %d", ci,
			              s, got, want[s]);
			compared++;
			if (s + 1 == n_g)
				break;
			/* Feed the golden token (== ours here) at the next position. */
			runner_run(&r, &want[s], 1, pos, lg);
			z = lg;
			pos++;
		}
		free(lg);
		free(ids);
		free(want);
	}
	/* At least one step must have been compared, or the check says nothing. */
	ck_assert_int_gt(compared, 0);
	runner_close(&r);
	mllm__json_free(root);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("demo_model");
	TCase *tc = tcase_create("golden");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_hparams);
	tcase_add_test(tc, test_tokenizer);
	tcase_add_test(tc, test_prefill_logits);
	tcase_add_test(tc, test_prefill_logits_ref);
	tcase_add_test(tc, test_greedy);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
