/*
 * test_model_load.c — mllm_model_open() on every fixture format, checked
 * against the fixtures' own config.json / safetensors headers (read here
 * through json_util.h, not through the loader; the JSON reader itself is
 * checked against jansson in test_json.c), plus the malformed
 * inputs: each builds a broken snapshot in a mkdtemp() directory (big files
 * are symlinked, never copied into the repository) and asserts the error
 * code and a distinctive part of the message.
 */
#include "harness.h"

#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>

#include "../../engine/kernels.h"
#include "../../engine/model.c"

#define FILE_UTIL_PREFIX "mllm-fmt"
#include "file_util.h"
#include "json_util.h"

#define TINY    "models/tiny-mobilellm-f16"
#define TINY_LS "models/tiny-mobilellm-ls-bf16"
#define STORIES "models/stories260K"

/* ---- helpers ---------------------------------------------------------- */

static const char *fx(const char *rel)
{
	static char buf[4][512];
	static int k;
	k = (k + 1) % 4;
	mllm_test_path(buf[k], sizeof buf[k], rel);
	MLLM_REQUIRE_FIXTURE(buf[k]);
	return buf[k];
}

static void link_to(const char *fixture_rel, const char *name)
{
	char abs[PATH_MAX];
	ck_assert_ptr_nonnull(realpath(fx(fixture_rel), abs));
	ck_assert_int_eq(symlink(abs, tmp(name)), 0);
}

/* A snapshot of fixture dir `rel` in tmpdir: config/tokenizer_config copied
 * (so tests can edit them), weights and tokenizer symlinked. */
static void snapshot(const char *rel)
{
	char p[512];
	size_t n;
	unsigned char *b;

	make_tmpdir();
	snprintf(p, sizeof p, "%s/config.json", rel);
	b = slurp(fx(p), &n);
	spit(tmp("config.json"), b, n);
	free(b);
	snprintf(p, sizeof p, "%s/tokenizer_config.json", rel);
	b = slurp(fx(p), &n);
	spit(tmp("tokenizer_config.json"), b, n);
	free(b);
	snprintf(p, sizeof p, "%s/model.safetensors", rel);
	link_to(p, "model.safetensors");
	snprintf(p, sizeof p, "%s/tokenizer.model", rel);
	link_to(p, "tokenizer.model");
}

/* Rewrites tmpdir/config.json with key set to v, a JSON literal written
 * as it is (NULL deletes the key). The other members are written back as
 * they were read; a replaced key moves to the end, which JSON objects do
 * not notice. */
static void edit_config(const char *key, const char *v)
{
	mllm__json_doc *doc = ju_load(tmp("config.json"));
	const mllm__json *c = mllm__json_root(doc);
	wbuf out = {0};

	ck_assert_int_eq(c->type, MLLM_JSON_OBJECT);
	put(&out, "{", 1);
	for (const mllm__json *m = c->child; m; m = m->next) {
		if (strcmp(m->key, key) == 0)
			continue;
		if (out.n > 1)
			put(&out, ",", 1);
		ju_put_str(&out, m->key, m->key_len);
		put(&out, ":", 1);
		ju_put_value(&out, m);
	}
	if (v) {
		if (out.n > 1)
			put(&out, ",", 1);
		ju_put_str(&out, key, strlen(key));
		put(&out, ":", 1);
		ju_put_raw(&out, v);
	}
	put(&out, "}", 1);
	spit(tmp("config.json"), out.p, out.n);
	free(out.p);
	mllm__json_free(doc);
}

/* Opens path expecting failure `code` with `needle` in the message; and
 * mllm_model_check (--check-config) must refuse it the same way. */
static void expect_fail(const char *path, int code, const char *needle)
{
	char err[1024] = "", err2[1024] = "";
	mllm_model *m = (mllm_model *)1;
	mllm_hparams hp;
	int rc = mllm_model_open(path, NULL, &m, err, sizeof err);
	ck_assert_msg(rc == code, "rc %s, want %s (%s)", mllm_strerror_name(rc),
	              mllm_strerror_name(code), err);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"", err, needle);
	rc = mllm_model_check(path, &hp, err2, sizeof err2);
	ck_assert_msg(rc == code, "check: rc %s, want %s (%s)", mllm_strerror_name(rc),
	              mllm_strerror_name(code), err2);
	ck_assert_str_eq(err2, err);
}

static mllm_model *open_ok(const char *path)
{
	char err[1024] = "";
	mllm_model *m = NULL;
	int rc = mllm_model_open(path, NULL, &m, err, sizeof err);
	ck_assert_msg(rc == 0, "%s: %s", path, err);
	ck_assert_ptr_nonnull(m);
	return m;
}

static int64_t jint(const mllm__json *o, const char *k)
{
	const mllm__json *v = mllm__json_get(o, k);
	ck_assert_msg(v && v->type == MLLM_JSON_NUMBER && v->is_int, "config lacks %s", k);
	return v->i;
}

/* The safetensors header of a fixture, parsed on its own. */
static mllm__json_doc *st_header(const char *path)
{
	size_t n;
	unsigned char *b = slurp(path, &n);
	uint64_t hl;
	mllm__json_doc *h = ju_parse_st_header(b, n, &hl);
	free(b);
	return h;
}

static size_t elsize(mllm_dtype t)
{
	return t == MLLM_DTYPE_F32 ? 4 : 2;
}

/* ---- the fixtures open and agree with their configs ------------------- */

static void check_against_config(const char *dir, const char *format, bool interleaved,
                                 const char *model_path)
{
	char p[512];
	mllm__json_doc *cdoc, *hdoc;
	const mllm__json *c, *h;
	mllm_model *m;
	const mllm_hparams *hp;
	int64_t n_params = 0;
	bool has_lm_head;

	snprintf(p, sizeof p, "%s/config.json", dir);
	cdoc = ju_load(fx(p)); /* asserts it parses */
	c = mllm__json_root(cdoc);
	snprintf(p, sizeof p, "%s/model.safetensors", strstr(dir, "-bin") ? TINY : dir);
	if (strstr(dir, "stories260K-bin"))
		snprintf(p, sizeof p, "%s/model.safetensors", STORIES);
	hdoc = st_header(fx(p));
	h = mllm__json_root(hdoc);
	for (const mllm__json *v = h->child; v; v = v->next) {
		int64_t n = 1;
		if (strcmp(v->key, "__metadata__") == 0)
			continue;
		const mllm__json *shape = ju_get(v, "shape");
		ck_assert_int_eq(shape->type, MLLM_JSON_ARRAY);
		for (const mllm__json *d = shape->child; d; d = d->next)
			n *= ju_int(d);
		n_params += n;
	}
	has_lm_head = mllm__json_get(h, "lm_head.weight") != NULL;

	m = open_ok(model_path);
	hp = mllm_model_hparams(m);
	ck_assert_str_eq(hp->format, format);
	ck_assert_int_eq(hp->n_layer, jint(c, "num_hidden_layers"));
	ck_assert_int_eq(hp->n_embd, jint(c, "hidden_size"));
	ck_assert_int_eq(hp->n_head, jint(c, "num_attention_heads"));
	ck_assert_int_eq(hp->n_head_kv, jint(c, "num_key_value_heads"));
	ck_assert_int_eq(hp->head_dim,
	                 mllm__json_get(c, "head_dim")
	                     ? jint(c, "head_dim")
	                     : jint(c, "hidden_size") / jint(c, "num_attention_heads"));
	ck_assert_int_eq(hp->n_ff, jint(c, "intermediate_size"));
	ck_assert_int_eq(hp->n_vocab, jint(c, "vocab_size"));
	ck_assert_int_eq(hp->n_ctx_train, jint(c, "max_position_embeddings"));
	ck_assert_int_eq(hp->bos_id, jint(c, "bos_token_id"));
	ck_assert_int_eq(hp->eos_id, jint(c, "eos_token_id"));
	ck_assert_float_eq_tol(hp->norm_eps, ju_num(ju_get(c, "rms_norm_eps")), 1e-9);
	ck_assert_float_eq_tol(hp->rope_theta, ju_num(ju_get(c, "rope_theta")), 1e-3);
	ck_assert_int_eq(hp->layer_sharing, ju_is_true(mllm__json_get(c, "layer_sharing")) ? 1 : 0);
	ck_assert_int_eq(hp->rope_interleaved, interleaved);
	ck_assert_int_eq(hp->shared_output, !has_lm_head);
	if (hp->shared_output)
		ck_assert_ptr_eq(m->output.data, m->tok_embd.data);
	ck_assert_str_eq(hp->arch,
	                 strcmp(format, "gguf") == 0 ? "llama" : ju_str(ju_get(c, "model_type")));
	ck_assert_int_eq(mllm_model_n_params(m), n_params);
	ck_assert_uint_gt(mllm_model_weight_bytes(m), 0);
	ck_assert_ptr_nonnull(mllm_model_tokenizer(m));
	ck_assert_int_le(mllm_tokenizer_n_vocab(mllm_model_tokenizer(m)), hp->n_vocab);
	/* every tensor is filled, norms as F32 */
	for (int l = 0; l < hp->n_layer; l++) {
		ck_assert_ptr_nonnull(m->layers[l].w_down.data);
		ck_assert_int_eq(m->layers[l].attn_norm.dtype, MLLM_DTYPE_F32);
		ck_assert_int_eq(m->layers[l].ffn_norm.dtype, MLLM_DTYPE_F32);
		ck_assert_int_eq(m->layers[l].wq.rows, (int64_t)hp->n_head * hp->head_dim);
		ck_assert_int_eq(m->layers[l].wk.rows, (int64_t)hp->n_head_kv * hp->head_dim);
	}
	ck_assert_int_eq(m->output_norm.dtype, MLLM_DTYPE_F32);
	mllm_model_close(m);
	mllm__json_free(hdoc);
	mllm__json_free(cdoc);
}

/* mllm_model_check says what mllm_model_open would load, every format. */
START_TEST(test_check_equals_open)
{
	static const char *const paths[] = {TINY, TINY "/config.json", STORIES,
	                                    TINY "/tiny-mobilellm-q8_0.gguf",
	                                    "models/stories260K-bin"};
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		char err[1024] = "";
		mllm_hparams hp;
		mllm_model *m = open_ok(fx(paths[i]));
		const mllm_hparams *want = mllm_model_hparams(m);
		ck_assert_msg(mllm_model_check(fx(paths[i]), &hp, err, sizeof err) == 0, "%s: %s",
		              paths[i], err);
		ck_assert_int_eq(hp.n_ctx_train, want->n_ctx_train);
		ck_assert_int_eq(hp.n_layer, want->n_layer);
		ck_assert_int_eq(hp.n_embd, want->n_embd);
		ck_assert_int_eq(hp.n_vocab, want->n_vocab);
		ck_assert_str_eq(hp.format, want->format);
		mllm_model_close(m);
	}
	ck_assert_int_eq(mllm_model_check(fx(TINY), NULL, NULL, 0), 0);
}
END_TEST

START_TEST(test_open_safetensors)
{
	check_against_config(TINY, "safetensors", false, fx(TINY));
	check_against_config(TINY_LS, "safetensors", false, fx(TINY_LS));
	check_against_config(STORIES, "safetensors", false, fx(STORIES));
	/* a file of the snapshot names its directory */
	check_against_config(TINY, "safetensors", false, fx(TINY "/config.json"));
}
END_TEST

START_TEST(test_open_pytorch)
{
	check_against_config("models/tiny-mobilellm-f16-bin", "pytorch", false,
	                     fx("models/tiny-mobilellm-f16-bin"));
	check_against_config("models/stories260K-bin", "pytorch", false,
	                     fx("models/stories260K-bin"));
	check_against_config("models/stories260K-bin", "pytorch", false,
	                     fx("models/stories260K-bin/pytorch_model.bin"));
}
END_TEST

START_TEST(test_open_gguf)
{
	check_against_config(TINY, "gguf", true, fx(TINY "/tiny-mobilellm-f16.gguf"));
	check_against_config(TINY, "gguf", true, fx(TINY "/tiny-mobilellm-q8_0.gguf"));
	check_against_config(STORIES, "gguf", true, fx(STORIES "/stories260K-f32.gguf"));
}
END_TEST

/* ---- the same weights through every format ---------------------------- */

static bool same_tensor(const mllm__tensor *a, const mllm__tensor *b)
{
	if (a->dtype != b->dtype || a->rows != b->rows || a->cols != b->cols ||
	    a->layout != b->layout)
		return false;
	if (a->dtype == MLLM_DTYPE_F32 && a->rows == 1)
		return memcmp(a->data, b->data, (size_t)a->cols * 4) == 0;
	return memcmp(a->data, b->data, (size_t)(a->rows * a->cols) * elsize(a->dtype)) == 0;
}

static void compare_models(const char *pa, const char *pb)
{
	mllm_model *a = open_ok(pa), *b = open_ok(pb);
	ck_assert(same_tensor(&a->tok_embd, &b->tok_embd));
	ck_assert(same_tensor(&a->output_norm, &b->output_norm));
	ck_assert_int_eq(a->hp.n_layer, b->hp.n_layer);
	for (int l = 0; l < a->hp.n_layer; l++) {
		const mllm__layer *x = &a->layers[l], *y = &b->layers[l];
		ck_assert(same_tensor(&x->attn_norm, &y->attn_norm));
		ck_assert(same_tensor(&x->wq, &y->wq));
		ck_assert(same_tensor(&x->wk, &y->wk));
		ck_assert(same_tensor(&x->wv, &y->wv));
		ck_assert(same_tensor(&x->wo, &y->wo));
		ck_assert(same_tensor(&x->ffn_norm, &y->ffn_norm));
		ck_assert(same_tensor(&x->w_gate, &y->w_gate));
		ck_assert(same_tensor(&x->w_up, &y->w_up));
		ck_assert(same_tensor(&x->w_down, &y->w_down));
	}
	/* different tensors are different (the comparison can fail) */
	ck_assert(!same_tensor(&a->layers[0].w_gate, &b->layers[0].w_up));
	mllm_model_close(a);
	mllm_model_close(b);
}

START_TEST(test_bin_equals_safetensors)
{
	compare_models(fx(TINY), fx("models/tiny-mobilellm-f16-bin"));
	compare_models(fx(STORIES), fx("models/stories260K-bin"));
}
END_TEST

/* llama.cpp's converter permutes Q/K rows per head: GGUF row h*hd + 2i + j
 * holds HF row h*hd + j*hd/2 + i. Everything else is bit-identical. */
static void check_permuted(const mllm__tensor *g, const mllm__tensor *h, int n_head, int hd)
{
	size_t row = (size_t)h->cols * sizeof(float);
	float *a = xmalloc(row), *b = xmalloc(row);
	ck_assert_int_eq(g->dtype, h->dtype);
	ck_assert_int_eq(g->layout, h->layout);
	ck_assert_int_eq(g->rows, h->rows);
	for (int hh = 0; hh < n_head; hh++)
		for (int i = 0; i < hd / 2; i++)
			for (int j = 0; j < 2; j++) {
				int64_t gr = hh * hd + 2 * i + j;
				int64_t hr = hh * hd + j * hd / 2 + i;
				/* rows as the kernels' layout holds them (exact) */
				mllm__dequant_rows(g, gr, gr + 1, a);
				mllm__dequant_rows(h, hr, hr + 1, b);
				ck_assert(memcmp(a, b, row) == 0);
			}
	free(a);
	free(b);
}

static void compare_gguf(const char *hf, const char *gg)
{
	mllm_model *a = open_ok(hf), *b = open_ok(gg);
	ck_assert(same_tensor(&a->tok_embd, &b->tok_embd));
	for (int l = 0; l < a->hp.n_layer; l++) {
		const mllm__layer *x = &a->layers[l], *y = &b->layers[l];
		check_permuted(&y->wq, &x->wq, a->hp.n_head, a->hp.head_dim);
		check_permuted(&y->wk, &x->wk, a->hp.n_head_kv, a->hp.head_dim);
		ck_assert(same_tensor(&x->wv, &y->wv));
		ck_assert(same_tensor(&x->wo, &y->wo));
		ck_assert(same_tensor(&x->w_down, &y->w_down));
		ck_assert(same_tensor(&x->attn_norm, &y->attn_norm));
	}
	mllm_model_close(a);
	mllm_model_close(b);
}

START_TEST(test_gguf_permutation)
{
	compare_gguf(fx(TINY), fx(TINY "/tiny-mobilellm-f16.gguf"));
	compare_gguf(fx(STORIES), fx(STORIES "/stories260K-f32.gguf"));
}
END_TEST

/* Q8_0 blocks (f16 scale + 32 int8) dequantize to the f16 weights within
 * half a quantization step (d = amax / 127, so the step is the block's
 * largest magnitude / 127), whatever layout the loader chose. */
START_TEST(test_gguf_q8_0_blocks)
{
	mllm_model *a = open_ok(fx(TINY)), *b = open_ok(fx(TINY "/tiny-mobilellm-q8_0.gguf"));
	const mllm__tensor *x = &a->layers[1].wv, *y = &b->layers[1].wv;
	int64_t n = x->rows * x->cols;
	double worst = 0;

	ck_assert_int_eq(y->dtype, MLLM_DTYPE_Q8_0);
	/* AVX-512 VNNI and AVX2: across 16 rows where the row count allows
	 * (8-bit activations are the default there), else the x16 layout
	 * (unless the A/B switches keep other layouts). */
	const char *x16 = getenv("MLLM_X16"), *r16 = getenv("MLLM_R16");
	bool pack = mllm__cpu_isa() != MLLM__ISA_SCALAR && !(x16 && strcmp(x16, "0") == 0);
	bool across = pack && !(r16 && strcmp(r16, "0") == 0);
	if (across && mllm__qr16_packable(y->dtype, y->rows, y->cols))
		ck_assert_int_eq(y->layout, MLLM__LAYOUT_R16);
	else if (pack && mllm__qx_packable(y->dtype, y->cols))
		ck_assert_int_eq(y->layout, MLLM__LAYOUT_X16);
	float *w = xmalloc((size_t)n * sizeof(float)), *wx = xmalloc((size_t)n * sizeof(float));
	mllm__dequant_rows(y, 0, y->rows, w);
	mllm__dequant_rows(x, 0, x->rows, wx);
	for (int64_t blk = 0; blk < n / 32; blk++) {
		float amax = 0;
		for (int i = 0; i < 32; i++)
			amax = fmaxf(amax, fabsf(w[blk * 32 + i]));
		for (int i = 0; i < 32; i++) {
			float ref = wx[blk * 32 + i];
			double e = fabs((double)w[blk * 32 + i] - ref);
			ck_assert_msg(e <= amax / 127.0 * 0.5 + 1e-3, "block %lld: %g vs %g",
			              (long long)blk, w[blk * 32 + i], ref);
			if (e > worst)
				worst = e;
		}
	}
	free(w);
	free(wx);
	ck_assert(worst > 0); /* quantized, not a copy */
	mllm_model_close(a);
	mllm_model_close(b);
}
END_TEST

/* ---- tokenizer_config.json --------------------------------------------- */

START_TEST(test_add_bos_from_tokenizer_config)
{
	mllm_model *m;
	snapshot(TINY);
	m = open_ok(tmpdir);
	ck_assert(mllm_tokenizer_add_bos(mllm_model_tokenizer(m)));
	mllm_model_close(m);
	spit(tmp("tokenizer_config.json"), "{\"add_bos_token\": false}", 24);
	m = open_ok(tmpdir);
	ck_assert(!mllm_tokenizer_add_bos(mllm_model_tokenizer(m)));
	mllm_model_close(m);
	spit(tmp("tokenizer_config.json"), "{\"add_bos_token\": 1}", 20);
	expect_fail(tmpdir, MLLM_EFORMAT, "add_bos_token");
	rm_tmpdir();
}
END_TEST

/* ---- inconsistent configs ------------------------------------------------ */

START_TEST(test_config_wrong_hidden_size)
{
	snapshot(TINY);
	edit_config("hidden_size", "256");
	edit_config("head_dim", "64");
	expect_fail(tmpdir, MLLM_EFORMAT,
	            "model.safetensors: tensor model.embed_tokens.weight has shape [32000, 192], "
	            "expected [32000, 256]");
	rm_tmpdir();
}
END_TEST

START_TEST(test_config_wrong_ffn)
{
	snapshot(TINY);
	edit_config("intermediate_size", "500");
	expect_fail(tmpdir, MLLM_EFORMAT,
	            "tensor model.layers.0.mlp.gate_proj.weight has shape [512, 192]");
	rm_tmpdir();
}
END_TEST

START_TEST(test_config_wrong_vocab)
{
	snapshot(TINY);
	edit_config("vocab_size", "32001");
	expect_fail(tmpdir, MLLM_EFORMAT, "expected [32001, 192]");
	rm_tmpdir();
}
END_TEST

START_TEST(test_config_wrong_kv_heads)
{
	snapshot(TINY);
	edit_config("num_key_value_heads", "3");
	expect_fail(tmpdir, MLLM_EFORMAT, "self_attn.k_proj.weight has shape [64, 192]");
	edit_config("num_key_value_heads", "2");
	expect_fail(tmpdir, MLLM_EFORMAT, "not a multiple of 2 KV heads");
	rm_tmpdir();
}
END_TEST

START_TEST(test_config_heads_do_not_divide)
{
	snapshot(TINY);
	edit_config("num_attention_heads", "5");
	edit_config("num_key_value_heads", "1");
	expect_fail(tmpdir, MLLM_EFORMAT, "not a multiple of num_attention_heads 5");
	rm_tmpdir();
}
END_TEST

/* Layer sharing: num_hidden_layers counts stored blocks. Declaring the run
 * count (6) asks for blocks the file does not have; declaring fewer leaves
 * stored blocks unexplained. Both are refused. */
START_TEST(test_config_layer_count)
{
	snapshot(TINY_LS);
	edit_config("num_hidden_layers", "6");
	expect_fail(tmpdir, MLLM_EFORMAT, "missing tensor model.layers.3.input_layernorm.weight");
	edit_config("num_hidden_layers", "2");
	expect_fail(tmpdir, MLLM_EFORMAT, "beyond the 2 layers");
	rm_tmpdir();
}
END_TEST

START_TEST(test_config_missing_and_bad_keys)
{
	snapshot(TINY);
	edit_config("hidden_size", NULL);
	expect_fail(tmpdir, MLLM_EFORMAT, "config.json: missing \"hidden_size\"");
	rm_tmpdir();

	snapshot(TINY);
	edit_config("num_hidden_layers", "\"4\"");
	expect_fail(tmpdir, MLLM_EFORMAT, "\"num_hidden_layers\" must be a 32-bit integer");
	edit_config("num_hidden_layers", "-4");
	expect_fail(tmpdir, MLLM_EFORMAT, "layers -4 is out of range");
	rm_tmpdir();

	snapshot(TINY);
	edit_config("model_type", "\"gpt2\"");
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "model_type \"gpt2\" is not supported");
	rm_tmpdir();

	snapshot(TINY);
	edit_config("rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}");
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "rope_scaling");
	rm_tmpdir();

	snapshot(TINY);
	edit_config("rms_norm_eps", "-1.0");
	expect_fail(tmpdir, MLLM_EFORMAT, "epsilon");
	rm_tmpdir();
}
END_TEST

START_TEST(test_config_bad_json)
{
	snapshot(TINY);
	spit(tmp("config.json"), "{\"model_type\": \"llama\",}", 24);
	expect_fail(tmpdir, MLLM_EFORMAT, "config.json: bad JSON: trailing comma at line 1");
	spit(tmp("config.json"), "[1, 2]", 6);
	expect_fail(tmpdir, MLLM_EFORMAT, "config.json: not a JSON object");
	unlink(tmp("config.json"));
	expect_fail(tmpdir, MLLM_ENOTFOUND, "config.json: cannot open");
	rm_tmpdir();
}
END_TEST

/* ---- broken weights ------------------------------------------------------ */

START_TEST(test_no_weights)
{
	snapshot(TINY);
	unlink(tmp("model.safetensors"));
	expect_fail(tmpdir, MLLM_ENOTFOUND, "no weights");
	rm_tmpdir();
	expect_fail("/nonexistent/mllm-model", MLLM_ENOTFOUND, "/nonexistent/mllm-model");
}
END_TEST

/* Replaces the symlinked weights with a patched copy. */
static void patch_weights(const char *rel, size_t keep, const char *from, const char *to)
{
	size_t n;
	unsigned char *b = slurp(fx(rel), &n);
	unlink(tmp("model.safetensors"));
	if (from) {
		unsigned char *hit = memmem(b, n > 8192 ? 8192 : n, from, strlen(from));
		ck_assert_ptr_nonnull(hit);
		ck_assert_uint_eq(strlen(from), strlen(to));
		memcpy(hit, to, strlen(to));
	}
	spit(tmp("model.safetensors"), b, keep ? keep : n);
	free(b);
}

START_TEST(test_truncated_safetensors)
{
	snapshot(TINY_LS);
	patch_weights(TINY_LS "/model.safetensors", 5000000, NULL, NULL);
	expect_fail(tmpdir, MLLM_EFORMAT, "beyond the data section");
	expect_fail(tmpdir, MLLM_EFORMAT, "model.safetensors: tensor ");
	patch_weights(TINY_LS "/model.safetensors", 100, NULL, NULL);
	expect_fail(tmpdir, MLLM_EFORMAT, "header length 3112 beyond file size 100");
	patch_weights(TINY_LS "/model.safetensors", 5, NULL, NULL);
	expect_fail(tmpdir, MLLM_EFORMAT, "truncated");
	rm_tmpdir();
}
END_TEST

START_TEST(test_missing_tensor)
{
	snapshot(TINY_LS);
	patch_weights(TINY_LS "/model.safetensors", 0, "\"model.norm.weight\"",
	              "\"model.norX.weight\"");
	expect_fail(tmpdir, MLLM_EFORMAT, "model.safetensors: missing tensor model.norm.weight");
	rm_tmpdir();
}
END_TEST

START_TEST(test_unknown_dtype)
{
	snapshot(TINY_LS);
	patch_weights(TINY_LS "/model.safetensors", 0, "\"BF16\"", "\"BX16\"");
	expect_fail(tmpdir, MLLM_EFORMAT, "unknown dtype \"BX16\"");
	/* a real but non-float dtype of the same size */
	patch_weights(TINY_LS "/model.safetensors", 0, "\"BF16\"", "\"I16\" ");
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "tensor model.embed_tokens.weight has type I16");
	rm_tmpdir();
}
END_TEST

START_TEST(test_bad_offsets)
{
	snapshot(TINY_LS);
	/* the embedding's end offset 8192000 -> 8192002: size mismatch */
	patch_weights(TINY_LS "/model.safetensors", 0, "[0,8192000]", "[0,8192002]");
	expect_fail(tmpdir, MLLM_EFORMAT, "data_offsets [0,8192002] hold 8192002 bytes");
	patch_weights(TINY_LS "/model.safetensors", 0, "[0,8192000]", "[0,9999999]");
	expect_fail(tmpdir, MLLM_EFORMAT, "beyond the data section");
	patch_weights(TINY_LS "/model.safetensors", 0, "[0,8192000]", "[9,8192000]");
	expect_fail(tmpdir, MLLM_EFORMAT, "hold 8191991 bytes");
	/* header length flipped */
	{
		size_t n;
		unsigned char *b = slurp(fx(TINY_LS "/model.safetensors"), &n);
		b[6] = 0x7f;
		unlink(tmp("model.safetensors"));
		spit(tmp("model.safetensors"), b, n);
		free(b);
		expect_fail(tmpdir, MLLM_EFORMAT, "beyond file size");
	}
	rm_tmpdir();
}
END_TEST

START_TEST(test_truncated_gguf)
{
	size_t n;
	unsigned char *b = slurp(fx(TINY "/tiny-mobilellm-q8_0.gguf"), &n);
	make_tmpdir();
	spit(tmp("cut.gguf"), b, n - 1000);
	expect_fail(tmp("cut.gguf"), MLLM_EFORMAT, "cut.gguf: tensor blk.");
	expect_fail(tmp("cut.gguf"), MLLM_EFORMAT, "beyond the data section");
	spit(tmp("cut.gguf"), b, 300000);
	expect_fail(tmp("cut.gguf"), MLLM_EFORMAT, "cut.gguf: truncated");
	spit(tmp("cut.gguf"), b, 0);
	expect_fail(tmp("cut.gguf"), MLLM_EFORMAT, "bad magic");
	free(b);
	rm_tmpdir();
}
END_TEST

/* ---- shards -------------------------------------------------------------- */

/* Splits fixture rel's model.safetensors into two shards + index in tmpdir.
 * `move` (if set) names a tensor the index claims is in the other shard. */
/* Writes a safetensors file: the u64 length of hdr (a JSON object, padded
 * with spaces to a multiple of 8), hdr, then data. */
static void write_safetensors(const char *path, wbuf *hdr, const wbuf *data)
{
	wbuf f = {0};
	unsigned char le[8];
	while (hdr->n % 8)
		put(hdr, " ", 1);
	for (int j = 0; j < 8; j++)
		le[j] = (unsigned char)((uint64_t)hdr->n >> (8 * j));
	put(&f, le, 8);
	put(&f, hdr->p, hdr->n);
	put(&f, data->p, data->n);
	spit(path, f.p, f.n);
	free(f.p);
}

/* `"name":{"dtype":...,"shape":...,"data_offsets":[a,b]}`: header entry v
 * (dtype and shape as they are) at new offsets. */
static void put_st_entry(wbuf *out, const char *name, const mllm__json *v, uint64_t a, uint64_t b)
{
	ju_put_str(out, name, strlen(name));
	ju_put_raw(out, ":{\"dtype\":");
	ju_put_value(out, ju_get(v, "dtype"));
	ju_put_raw(out, ",\"shape\":");
	ju_put_value(out, ju_get(v, "shape"));
	ju_put_raw(out, ",\"data_offsets\":[");
	ju_put_int(out, (int64_t)a);
	ju_put_raw(out, ",");
	ju_put_int(out, (int64_t)b);
	ju_put_raw(out, "]}");
}

static void make_shards(const char *rel, const char *lie_about)
{
	static const char *const names[2] = {"model-00001-of-00002.safetensors",
	                                     "model-00002-of-00002.safetensors"};
	size_t n;
	unsigned char *b = slurp(fx(rel), &n);
	uint64_t hl;
	mllm__json_doc *doc = ju_parse_st_header(b, n, &hl);
	const mllm__json *h = mllm__json_root(doc);
	wbuf idx = {0};
	int i;

	/* Tensors alternate between the shards in header order; each shard's
	 * offsets are rewritten for a compact data section. */
	for (int s = 0; s < 2; s++) {
		wbuf hdr = {0}, data = {0};
		i = 0;
		put(&hdr, "{", 1);
		for (const mllm__json *v = h->child; v; v = v->next) {
			if (strcmp(v->key, "__metadata__") == 0)
				continue;
			if (i++ % 2 != s)
				continue;
			const mllm__json *o = ju_get(v, "data_offsets");
			uint64_t a = (uint64_t)ju_int(ju_at(o, 0));
			uint64_t e = (uint64_t)ju_int(ju_at(o, 1));
			ck_assert(a <= e && e <= n - 8 - hl);
			if (hdr.n > 1)
				put(&hdr, ",", 1);
			put_st_entry(&hdr, v->key, v, data.n, data.n + (e - a));
			put(&data, b + 8 + hl + a, e - a);
		}
		put(&hdr, "}", 1);
		write_safetensors(tmp(names[s]), &hdr, &data);
		free(hdr.p);
		free(data.p);
	}
	ju_put_raw(&idx, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
	i = 0;
	for (const mllm__json *v = h->child; v; v = v->next) {
		if (strcmp(v->key, "__metadata__") == 0)
			continue;
		if (i)
			ju_put_raw(&idx, ",\n  ");
		ju_put_str(&idx, v->key, v->key_len);
		ju_put_raw(&idx, ": ");
		ju_put_raw(&idx, "\"");
		ju_put_raw(&idx, names[(i % 2) ^ (lie_about && !strcmp(v->key, lie_about))]);
		ju_put_raw(&idx, "\"");
		i++;
	}
	ju_put_raw(&idx, "}}\n");
	spit(tmp("model.safetensors.index.json"), idx.p, idx.n);
	free(idx.p);
	mllm__json_free(doc);
	free(b);
}

START_TEST(test_shards)
{
	snapshot(TINY_LS);
	unlink(tmp("model.safetensors"));
	make_shards(TINY_LS "/model.safetensors", NULL);
	compare_models(fx(TINY_LS), tmpdir);
	rm_tmpdir();
}
END_TEST

START_TEST(test_shards_malformed)
{
	snapshot(TINY_LS);
	unlink(tmp("model.safetensors"));
	make_shards(TINY_LS "/model.safetensors", "model.norm.weight");
	expect_fail(tmpdir, MLLM_EFORMAT,
	            "model.safetensors.index.json: tensor model.norm.weight is listed in shard");
	rm_tmpdir();

	snapshot(TINY_LS);
	unlink(tmp("model.safetensors"));
	make_shards(TINY_LS "/model.safetensors", NULL);
	unlink(tmp("model-00002-of-00002.safetensors"));
	expect_fail(tmpdir, MLLM_ENOTFOUND, "model-00002-of-00002.safetensors: cannot open");
	{
		const char *j = "{\"weight_map\": {\"model.norm.weight\": \"../etc/passwd\"}}";
		spit(tmp("model.safetensors.index.json"), j, strlen(j));
	}
	expect_fail(tmpdir, MLLM_EFORMAT, "must name a file in the same directory");
	spit(tmp("model.safetensors.index.json"), "{\"weight_map\": []}", 18);
	expect_fail(tmpdir, MLLM_EFORMAT, "missing \"weight_map\"");
	rm_tmpdir();
}
END_TEST

/* ---- lm_head ------------------------------------------------------------- */

/* Writes tmpdir/model.safetensors: fixture rel's data section with its
 * header plus an "lm_head.weight" entry of `rows` rows over the embedding's
 * bytes (safetensors does not forbid aliasing). */
static void add_lm_head(const char *rel, int rows, int cols)
{
	size_t n;
	unsigned char *b = slurp(fx(rel), &n);
	uint64_t hl;
	mllm__json_doc *doc = ju_parse_st_header(b, n, &hl);
	const mllm__json *h = mllm__json_root(doc);
	const mllm__json *e = ju_get(h, "model.embed_tokens.weight");
	const mllm__json *o = ju_get(e, "data_offsets");
	wbuf hdr = {0};
	wbuf data = {.p = b + 8 + hl, .n = n - 8 - (size_t)hl};

	/* the header as it is, less its closing brace, then the new entry: the
	 * embedding's dtype and bytes under the asked-for shape */
	ju_put_value(&hdr, h);
	ck_assert(hdr.n > 2 && hdr.p[hdr.n - 1] == '}');
	hdr.n--;
	ju_put_raw(&hdr, ",\"lm_head.weight\":{\"dtype\":");
	ju_put_value(&hdr, ju_get(e, "dtype"));
	ju_put_raw(&hdr, ",\"shape\":[");
	ju_put_int(&hdr, rows);
	ju_put_raw(&hdr, ",");
	ju_put_int(&hdr, cols);
	ju_put_raw(&hdr, "],\"data_offsets\":");
	ju_put_value(&hdr, o);
	ju_put_raw(&hdr, "}}");
	unlink(tmp("model.safetensors"));
	write_safetensors(tmp("model.safetensors"), &hdr, &data);
	free(hdr.p);
	mllm__json_free(doc);
	free(b);
}

START_TEST(test_lm_head)
{
	mllm_model *m = open_ok(fx(TINY_LS));
	int64_t base = mllm_model_n_params(m);

	mllm_model_close(m);
	snapshot(TINY_LS);
	/* an lm_head and no share_embedding: logits use the lm_head */
	add_lm_head(TINY_LS "/model.safetensors", 32000, 128);
	edit_config("share_embedding", NULL);
	m = open_ok(tmpdir);
	ck_assert(!mllm_model_hparams(m)->shared_output);
	ck_assert_int_eq(m->output.rows, 32000);
	ck_assert_int_eq(mllm_model_n_params(m), base + 32000 * 128);
	mllm_model_close(m);
	/* share_embedding: true wins over a stray lm_head */
	edit_config("share_embedding", "true");
	m = open_ok(tmpdir);
	ck_assert(mllm_model_hparams(m)->shared_output);
	ck_assert_ptr_eq(m->output.data, m->tok_embd.data);
	mllm_model_close(m);
	/* a wrong-shaped lm_head (same bytes) is an error when it is used */
	add_lm_head(TINY_LS "/model.safetensors", 64000, 64);
	edit_config("share_embedding", "false");
	expect_fail(tmpdir, MLLM_EFORMAT,
	            "tensor lm_head.weight has shape [64000, 64], expected [32000, 128]");
	rm_tmpdir();
}
END_TEST

/* ---- failure injection --------------------------------------------------- */

/* Every checked allocation on the way through mllm_model_open() can fail:
 * each failure point gives MLLM_ENOMEM and a clean unwind (ASan checks the
 * unwinding for leaks), until the open finally succeeds. */
static void sweep_alloc_failures(const char *path)
{
	long k;
	for (k = 0; k < 10000; k++) {
		char err[1024] = "";
		mllm_model *m = (mllm_model *)1;
		int rc;
		mllm__alloc_fail_after(k);
		rc = mllm_model_open(path, NULL, &m, err, sizeof err);
		mllm__alloc_fail_after(-1);
		if (rc == 0) {
			mllm_model_close(m);
			break;
		}
		ck_assert_msg(rc == MLLM_ENOMEM, "failure point %ld: %s: %s", k,
		              mllm_strerror_name(rc), err);
		ck_assert_ptr_null(m);
	}
	ck_assert_int_gt(k, 2); /* there were failure points to test */
	ck_assert_int_lt(k, 10000);
}

START_TEST(test_alloc_failures)
{
	sweep_alloc_failures(fx(STORIES));
	sweep_alloc_failures(fx("models/stories260K-bin"));
	sweep_alloc_failures(fx(STORIES "/stories260K-f32.gguf"));
}
END_TEST

/* tmpdir/pytorch_model.bin.index.json: every tensor of header h (plus
 * `extra`, if set) in the one shard. */
static void write_bin_index(const mllm__json *h, const char *extra)
{
	static const char shard[] = "\"pytorch_model-00001-of-00001.bin\"";
	wbuf idx = {0};
	bool first = true;

	ju_put_raw(&idx, "{\"weight_map\": {");
	for (const mllm__json *v = h->child; v; v = v->next) {
		if (strcmp(v->key, "__metadata__") == 0)
			continue;
		if (!first)
			ju_put_raw(&idx, ", ");
		first = false;
		ju_put_str(&idx, v->key, v->key_len);
		ju_put_raw(&idx, ": ");
		ju_put_raw(&idx, shard);
	}
	if (extra) {
		ju_put_raw(&idx, ", ");
		ju_put_str(&idx, extra, strlen(extra));
		ju_put_raw(&idx, ": ");
		ju_put_raw(&idx, shard);
	}
	ju_put_raw(&idx, "}}");
	spit(tmp("pytorch_model.bin.index.json"), idx.p, idx.n);
	free(idx.p);
}

/* pytorch_model.bin.index.json: one .bin shard (the fixture, symlinked). */
START_TEST(test_bin_shards)
{
	mllm__json_doc *h = st_header(fx(STORIES "/model.safetensors"));
	size_t n;
	unsigned char *b;

	make_tmpdir();
	b = slurp(fx("models/stories260K-bin/config.json"), &n);
	spit(tmp("config.json"), b, n);
	free(b);
	link_to("models/stories260K-bin/tokenizer.model", "tokenizer.model");
	link_to("models/stories260K-bin/pytorch_model.bin", "pytorch_model-00001-of-00001.bin");
	write_bin_index(mllm__json_root(h), NULL);
	compare_models(fx(STORIES), tmpdir);
	{
		mllm_model *m = open_ok(tmpdir);
		ck_assert_str_eq(mllm_model_hparams(m)->format, "pytorch");
		mllm_model_close(m);
	}
	/* an index naming a tensor the shard lacks */
	write_bin_index(mllm__json_root(h), "model.layers.0.mlp.extra.weight");
	expect_fail(tmpdir, MLLM_EFORMAT,
	            "tensor model.layers.0.mlp.extra.weight is listed in shard "
	            "pytorch_model-00001-of-00001.bin but not found there");
	mllm__json_free(h);
	rm_tmpdir();
}
END_TEST

/* The official MobileLLM configs (125M ... 1.5B) parse, pass the
 * hyper-parameter checks and agree with json_util.h's reading of them. */
/* ---- llama4_text (MobileLLM-R1) ---------------------------------------- */

#define R1     "models/tiny-mobilellm-r1-bf16"
#define R1GGUF R1 "/tiny-mobilellm-r1-q8_0.gguf"

/* A snapshot of the R1 fixture in tmpdir: config.json copied (tests edit
 * it), weights and tokenizer.json symlinked. */
static void snapshot_r1(void)
{
	size_t n;
	unsigned char *b;
	make_tmpdir();
	b = slurp(fx(R1 "/config.json"), &n);
	spit(tmp("config.json"), b, n);
	free(b);
	link_to(R1 "/model.safetensors", "model.safetensors");
	link_to(R1 "/tokenizer.json", "tokenizer.json");
}

/* JSON text for edit_config(): an array of n ints / n copies of a string
 * (a static buffer, valid until the next call). */
static const char *ints(int n, const int *v)
{
	static char buf[512];
	size_t o = 0;
	buf[o++] = '[';
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s%d", i ? "," : "", v[i]);
	snprintf(buf + o, sizeof buf - o, "]");
	return buf;
}

static const char *strs(int n, const char *v)
{
	static char buf[1024];
	size_t o = 0;
	buf[o++] = '[';
	for (int i = 0; i < n; i++)
		o += (size_t)snprintf(buf + o, sizeof buf - o, "%s\"%s\"", i ? "," : "", v);
	snprintf(buf + o, sizeof buf - o, "]");
	return buf;
}

static void check_r1_hparams(const mllm_hparams *hp)
{
	ck_assert_str_eq(hp->arch, "llama4_text");
	ck_assert_int_eq(hp->n_layer, 3);
	ck_assert_int_eq(hp->n_embd, 128);
	ck_assert_int_eq(hp->n_head, 4);
	ck_assert_int_eq(hp->n_head_kv, 2);
	ck_assert_int_eq(hp->head_dim, 32);
	ck_assert_int_eq(hp->n_ff, 384);
	ck_assert_int_eq(hp->n_vocab, 128256);
	ck_assert_int_eq(hp->n_ctx_train, 32768);
	ck_assert_float_eq(hp->rope_theta, 8000000.0f);
	ck_assert_float_eq_tol(hp->norm_eps, 1e-5f, 1e-12f);
	ck_assert(hp->rope_interleaved);
	ck_assert(hp->qk_norm);
	ck_assert(hp->shared_output);
	ck_assert(!hp->layer_sharing);
	ck_assert_int_eq(hp->n_nope, 0);
	ck_assert_int_eq(hp->bos_id, 128000);
	ck_assert_int_eq(hp->n_eos, 3);
	ck_assert_int_eq(hp->eos_id, 128001);
	ck_assert(mllm_hparams_is_eos(hp, 128001));
	ck_assert(mllm_hparams_is_eos(hp, 128008));
	ck_assert(mllm_hparams_is_eos(hp, 128009));
	ck_assert(!mllm_hparams_is_eos(hp, 128000));
}

/* The snapshot opens with its tokenizer.json, feed_forward.* bound, tied
 * head, every layer RoPE'd. */
START_TEST(test_r1_open)
{
	mllm_model *m = open_ok(fx(R1));
	const mllm_hparams *hp = mllm_model_hparams(m);
	check_r1_hparams(hp);
	ck_assert_str_eq(hp->format, "safetensors");
	ck_assert_int_eq(hp->wtype, MLLM_DTYPE_BF16);
	/* tokenizer.json beside it: the Llama-3 byte-level BPE. */
	ck_assert_ptr_nonnull(mllm_model_tokenizer(m));
	ck_assert_int_eq(mllm_tokenizer_n_vocab(mllm_model_tokenizer(m)), 128256);
	ck_assert(mllm_tokenizer_is_eos(mllm_model_tokenizer(m), 128009));
	ck_assert_int_eq(mllm_model_n_params(m), 17007488);
	ck_assert_ptr_eq(m->output.data, m->tok_embd.data);
	for (int l = 0; l < hp->n_layer; l++)
		ck_assert(!m->layers[l].nope);
	mllm_model_close(m);
}
END_TEST

START_TEST(test_r1_open_gguf)
{
	mllm_model *m = open_ok(fx(R1GGUF));
	const mllm_hparams *hp = mllm_model_hparams(m);
	check_r1_hparams(hp);
	ck_assert_str_eq(hp->format, "gguf");
	ck_assert_int_eq(hp->wtype, MLLM_DTYPE_Q8_0);
	/* tokenizer.ggml.model = gpt2: the byte-level BPE from the metadata. */
	ck_assert_ptr_nonnull(mllm_model_tokenizer(m));
	ck_assert_int_eq(mllm_tokenizer_n_vocab(mllm_model_tokenizer(m)), 128256);
	ck_assert(mllm_tokenizer_is_eos(mllm_model_tokenizer(m), 128009));
	mllm_model_close(m);
}
END_TEST

/* transformers 4.x spells rope_theta / rope_scaling / torch_dtype at the
 * top level (the released R1 configs); both are read. */
START_TEST(test_r1_transformers4_config)
{
	snapshot_r1();
	edit_config("rope_parameters", NULL);
	edit_config("dtype", NULL);
	edit_config("rope_theta", "8000000.0");
	edit_config("rope_scaling", "null");
	edit_config("torch_dtype", "\"bfloat16\"");
	mllm_model *m = open_ok(tmpdir);
	check_r1_hparams(mllm_model_hparams(m));
	mllm_model_close(m);
	/* the value is read, not assumed */
	edit_config("rope_theta", "500000.0");
	m = open_ok(tmpdir);
	ck_assert_float_eq(mllm_model_hparams(m)->rope_theta, 500000.0f);
	mllm_model_close(m);
	edit_config("torch_dtype", "3");
	expect_fail(tmpdir, MLLM_EFORMAT, "\"torch_dtype\" must be a string");
	rm_tmpdir();
}
END_TEST

/* NoPE layers from no_rope_layers (1 = RoPE), or from transformers'
 * default (every no_rope_layer_interval-th layer) when it is absent. */
START_TEST(test_r1_nope_layers)
{
	const int flags[3] = {1, 0, 1};
	mllm_model *m;
	snapshot_r1();
	edit_config("no_rope_layers", ints(3, flags));
	m = open_ok(tmpdir);
	ck_assert_int_eq(mllm_model_hparams(m)->n_nope, 1);
	ck_assert(!m->layers[0].nope && m->layers[1].nope && !m->layers[2].nope);
	ck_assert(!mllm_model_hparams(m)->attn_temp_tuning);
	mllm_model_close(m);
	edit_config("no_rope_layers", NULL);
	m = open_ok(tmpdir); /* interval 4, 3 layers: all RoPE */
	ck_assert_int_eq(mllm_model_hparams(m)->n_nope, 0);
	mllm_model_close(m);
	edit_config("no_rope_layer_interval", "2");
	edit_config("attn_temperature_tuning", "true");
	edit_config("floor_scale", "16");
	edit_config("attn_scale", "0.25");
	m = open_ok(tmpdir);
	ck_assert_int_eq(mllm_model_hparams(m)->n_nope, 1);
	ck_assert(m->layers[1].nope);
	ck_assert(mllm_model_hparams(m)->attn_temp_tuning);
	ck_assert_float_eq(mllm_model_hparams(m)->attn_temp_floor, 16.0f);
	ck_assert_float_eq(mllm_model_hparams(m)->attn_temp_scale, 0.25f);
	mllm_model_close(m);
	edit_config("no_rope_layers", ints(2, flags));
	expect_fail(tmpdir, MLLM_EFORMAT, "\"no_rope_layers\" must list one 0/1 flag per layer");
	const int bad[3] = {1, 2, 1};
	edit_config("no_rope_layers", ints(3, bad));
	expect_fail(tmpdir, MLLM_EFORMAT, "\"no_rope_layers\"[1] must be 0 or 1");
	rm_tmpdir();
}
END_TEST

/* MoE: moe_layers non-empty, or absent with interleave_moe_layer_step > 0
 * (transformers' default 1: every layer), is refused by name. */
START_TEST(test_r1_refuse_moe)
{
	const int one[1] = {1};
	snapshot_r1();
	edit_config("num_local_experts", "16");
	edit_config("moe_layers", ints(1, one));
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "moe_layers lists 1 mixture-of-experts layers");
	edit_config("moe_layers", NULL);
	edit_config("interleave_moe_layer_step", "2");
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "interleave_moe_layer_step 2");
	edit_config("interleave_moe_layer_step", NULL);
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "interleave_moe_layer_step 1");
	/* experts declared but no layer uses them: dense, opens */
	edit_config("moe_layers", "[]");
	mllm_model *m = open_ok(tmpdir);
	mllm_model_close(m);
	rm_tmpdir();
}
END_TEST

/* Chunked attention shorter than the context is refused naming
 * attention_chunk_size; as long as the context it is inert. */
START_TEST(test_r1_refuse_chunked)
{
	snapshot_r1();
	edit_config("attention_chunk_size", "8192");
	mllm_model *m = open_ok(tmpdir); /* layer_types all full_attention */
	mllm_model_close(m);
	edit_config("layer_types", strs(3, "chunked_attention"));
	expect_fail(tmpdir, MLLM_EUNSUPPORTED,
	            "attention_chunk_size 8192 is shorter than the context "
	            "(max_position_embeddings 32768) for layer 0");
	/* transformers 4.x (no layer_types): RoPE layers are chunked */
	edit_config("layer_types", NULL);
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "attention_chunk_size 8192 is shorter");
	edit_config("attention_chunk_size", "32768");
	m = open_ok(tmpdir);
	mllm_model_close(m);
	edit_config("layer_types", strs(3, "sliding_attention"));
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "layer_types[0] \"sliding_attention\"");
	rm_tmpdir();
}
END_TEST

START_TEST(test_r1_refuse_other)
{
	snapshot_r1();
	const char *rp = "{\"rope_type\": \"llama3\", \"rope_theta\": 8000000.0}";
	edit_config("rope_parameters", rp);
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "rope_parameters.rope_type \"llama3\"");
	edit_config("rope_parameters", NULL);
	edit_config("rope_scaling", "{\"rope_type\": \"llama3\"}");
	expect_fail(tmpdir, MLLM_EUNSUPPORTED, "rope_scaling is not supported");
	edit_config("rope_scaling", NULL);
	const int many[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
	edit_config("eos_token_id", ints(9, many));
	expect_fail(tmpdir, MLLM_EFORMAT, "\"eos_token_id\" lists 9 ids");
	edit_config("eos_token_id", "128009");
	mllm_model *m = open_ok(tmpdir);
	ck_assert_int_eq(mllm_model_hparams(m)->n_eos, 1);
	ck_assert_int_eq(mllm_model_hparams(m)->eos_id, 128009);
	mllm_model_close(m);
	edit_config("tie_word_embeddings", "false");
	expect_fail(tmpdir, MLLM_EFORMAT, "tie_word_embeddings is false but there is no lm_head");
	edit_config("tie_word_embeddings", "true");
	/* the dense FFN width is intermediate_size_mlp, not intermediate_size */
	edit_config("intermediate_size_mlp", "512");
	expect_fail(tmpdir, MLLM_EFORMAT,
	            "tensor model.layers.0.feed_forward.gate_proj.weight has shape [384, 128]");
	rm_tmpdir();
}
END_TEST

/* The llama4 GGUF with one metadata value patched in a temp copy: the
 * key's bytes are found in the file and its name or u32 value changed
 * in place (same length, so the file stays well-formed). */
static void gguf_patch(const char *key, const char *new_key, int64_t value)
{
	size_t n, kl = strlen(key);
	unsigned char *b = slurp(fx(R1GGUF), &n);
	unsigned char *at = memmem(b, n, key, kl);
	ck_assert_ptr_nonnull(at);
	if (new_key) {
		ck_assert_uint_eq(strlen(new_key), kl);
		memcpy(at, new_key, kl);
	} else {
		uint32_t type, v = (uint32_t)value;
		memcpy(&type, at + kl, 4);
		ck_assert_int_eq(type, MLLM_GGUF_UINT32);
		memcpy(at + kl + 4, &v, 4);
	}
	spit(tmp("r1.gguf"), b, n);
	free(b);
}

START_TEST(test_r1_gguf_refusals)
{
	make_tmpdir();
	gguf_patch("llama4.attention.sliding_window", "llama4.attention.sliding_windoX", 0);
	expect_fail(tmp("r1.gguf"), MLLM_EUNSUPPORTED,
	            "llama4.attention.sliding_window is missing");
	gguf_patch("llama4.attention.sliding_window", NULL, 8192);
	expect_fail(tmp("r1.gguf"), MLLM_EUNSUPPORTED,
	            "llama4.attention.sliding_window 8192: chunked attention");
	gguf_patch("llama4.expert_count", NULL, 16);
	expect_fail(tmp("r1.gguf"), MLLM_EUNSUPPORTED, "llama4.expert_count 16");
	gguf_patch("llama4.expert_count", NULL, 0); /* unchanged: opens */
	mllm_model *m = open_ok(tmp("r1.gguf"));
	check_r1_hparams(mllm_model_hparams(m));
	mllm_model_close(m);
	rm_tmpdir();
}
END_TEST

START_TEST(test_official_configs)
{
	static const char *names[] = {"MobileLLM-125M", "MobileLLM-350M", "MobileLLM-600M",
	                              "MobileLLM-1B", "MobileLLM-1.5B"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		char rel[256], err[512] = "";
		mllm_hparams hp = {0};
		mllm__json_doc *doc;
		const mllm__json *c;
		int share = 0;
		uint8_t *nope = NULL;
		snprintf(rel, sizeof rel, "configs/%s/config.json", names[i]);
		doc = ju_load(fx(rel)); /* asserts it parses */
		c = mllm__json_root(doc);
		ck_assert_msg(parse_config(fx(rel), &hp, &share, &nope, err, sizeof err) == 0, "%s",
		              err);
		ck_assert_ptr_null(nope); /* classic models: every layer RoPE */
		ck_assert_str_eq(hp.arch, ju_str(ju_get(c, "model_type")));
		ck_assert_int_eq(hp.n_layer, jint(c, "num_hidden_layers"));
		ck_assert_int_eq(hp.n_embd, jint(c, "hidden_size"));
		ck_assert_int_eq(hp.n_head, jint(c, "num_attention_heads"));
		ck_assert_int_eq(hp.n_head_kv, jint(c, "num_key_value_heads"));
		ck_assert_int_eq(hp.head_dim * hp.n_head, hp.n_embd);
		ck_assert_int_eq(hp.n_ff, jint(c, "intermediate_size"));
		ck_assert_int_eq(hp.n_vocab, jint(c, "vocab_size"));
		ck_assert_int_eq(share, -1); /* these configs have no share_embedding */
		ck_assert(!hp.layer_sharing);
		mllm__json_free(doc);
	}
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("model_load");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, rm_tmpdir);
	tcase_add_test(tc, test_official_configs);
	tcase_add_test(tc, test_check_equals_open);
	tcase_add_test(tc, test_open_safetensors);
	tcase_add_test(tc, test_open_pytorch);
	tcase_add_test(tc, test_open_gguf);
	tcase_add_test(tc, test_bin_equals_safetensors);
	tcase_add_test(tc, test_gguf_permutation);
	tcase_add_test(tc, test_gguf_q8_0_blocks);
	tcase_add_test(tc, test_add_bos_from_tokenizer_config);
	tcase_add_test(tc, test_config_wrong_hidden_size);
	tcase_add_test(tc, test_config_wrong_ffn);
	tcase_add_test(tc, test_config_wrong_vocab);
	tcase_add_test(tc, test_config_wrong_kv_heads);
	tcase_add_test(tc, test_config_heads_do_not_divide);
	tcase_add_test(tc, test_config_layer_count);
	tcase_add_test(tc, test_config_missing_and_bad_keys);
	tcase_add_test(tc, test_config_bad_json);
	tcase_add_test(tc, test_no_weights);
	tcase_add_test(tc, test_truncated_safetensors);
	tcase_add_test(tc, test_missing_tensor);
	tcase_add_test(tc, test_unknown_dtype);
	tcase_add_test(tc, test_bad_offsets);
	tcase_add_test(tc, test_truncated_gguf);
	tcase_add_test(tc, test_shards);
	tcase_add_test(tc, test_shards_malformed);
	tcase_add_test(tc, test_lm_head);
	tcase_add_test(tc, test_bin_shards);
	tcase_add_test(tc, test_alloc_failures);
	tcase_add_test(tc, test_r1_open);
	tcase_add_test(tc, test_r1_open_gguf);
	tcase_add_test(tc, test_r1_transformers4_config);
	tcase_add_test(tc, test_r1_nope_layers);
	tcase_add_test(tc, test_r1_refuse_moe);
	tcase_add_test(tc, test_r1_refuse_chunked);
	tcase_add_test(tc, test_r1_refuse_other);
	tcase_add_test(tc, test_r1_gguf_refusals);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
