/*
 * test_gguf.c — the GGUF reader. The fixture files' metadata is checked
 * against the same model's config.json (json_util.h); synthetic files
 * built here exercise every scalar type and the integer/float conversions;
 * then one malformation at a time (magic, version, counts, alignment, types,
 * offsets, strings, duplicates) and every truncation of a small valid file.
 */
#include "harness.h"

#include <math.h>

#include "../../engine/gguf.c"

#define FILE_UTIL_PREFIX "mllm-gguf"
#include "file_util.h"
#include "json_util.h"

#define TINY "models/tiny-mobilellm-f16"

/* ---- a tiny GGUF writer ---------------------------------------------------- */

static void u32(wbuf *b, uint32_t v)
{
	put(b, &v, 4);
}
static void u64(wbuf *b, uint64_t v)
{
	put(b, &v, 8);
}
static void str(wbuf *b, const char *s)
{
	u64(b, strlen(s));
	put(b, s, strlen(s));
}
static void kv_u32(wbuf *b, const char *k, uint32_t v)
{
	str(b, k);
	u32(b, MLLM_GGUF_UINT32);
	u32(b, v);
}
static void kv_str(wbuf *b, const char *k, const char *v)
{
	str(b, k);
	u32(b, MLLM_GGUF_STRING);
	str(b, v);
}

static void header(wbuf *b, uint32_t version, uint64_t n_t, uint64_t n_kv)
{
	put(b, "GGUF", 4);
	u32(b, version);
	u64(b, n_t);
	u64(b, n_kv);
}

static void tensor_info(wbuf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type,
                        uint64_t off)
{
	str(b, name);
	u32(b, nd);
	for (uint32_t i = 0; i < nd; i++)
		u64(b, ne[i]);
	u32(b, type);
	u64(b, off);
}

static void pad(wbuf *b, size_t align)
{
	while (b->n % align)
		put(b, "", 1);
}

static const char *write_tmp(const wbuf *b, size_t len)
{
	const char *path = tmp("t.gguf");
	spit(path, b->p, len);
	return path;
}

static void expect_fail_len(const wbuf *b, size_t len, int code, const char *needle)
{
	mllm__gguf *g = (mllm__gguf *)1;
	char err[512] = "";
	int rc = mllm__gguf_open(write_tmp(b, len), &g, err, sizeof err);
	ck_assert_msg(rc == code, "rc %s want %s: %s", mllm_strerror_name(rc),
	              mllm_strerror_name(code), err);
	ck_assert_ptr_null(g);
	ck_assert_msg(strstr(err, needle) != NULL, "\"%s\" lacks \"%s\"", err, needle);
	ck_assert_msg(strstr(err, "t.gguf") != NULL, "\"%s\" does not name the file", err);
}

static void expect_fail(const wbuf *b, int code, const char *needle)
{
	expect_fail_len(b, b->n, code, needle);
}

static mllm__gguf *open_ok(const char *path)
{
	mllm__gguf *g = NULL;
	char err[512] = "";
	int rc = mllm__gguf_open(path, &g, err, sizeof err);
	ck_assert_msg(rc == 0, "%s", err);
	return g;
}

/* A valid file: a few keys and two F32 tensors [4] and [2, 3]. */
static void good_file(wbuf *b, uint32_t align)
{
	const uint64_t ne1[1] = {4}, ne2[2] = {3, 2};
	memset(b, 0, sizeof *b);
	header(b, 3, 2, align ? 3 : 2);
	kv_str(b, "general.architecture", "llama");
	kv_u32(b, "llama.block_count", 7);
	if (align)
		kv_u32(b, "general.alignment", align);
	tensor_info(b, "a.weight", 1, ne1, 0, 0);
	tensor_info(b, "b.weight", 2, ne2, 0, align ? align : 32);
	pad(b, align ? align : 32);
	for (int i = 0; i < 4; i++) {
		float f = (float)i;
		put(b, &f, 4);
	}
	pad(b, align ? align : 32);
	for (int i = 0; i < 6; i++) {
		float f = 10.0f + (float)i;
		put(b, &f, 4);
	}
}

/* ---- the fixtures ---------------------------------------------------------- */

START_TEST(test_fixture_metadata)
{
	char p[512], cfgp[512], err[512];
	mllm__json_doc *doc;
	const mllm__json *c;
	mllm__gguf *g;
	const mllm__gguf_tensor *t;
	uint32_t u;
	int32_t i;
	float f;
	bool b;
	const char *s;
	size_t len;
	int et;
	uint64_t n;
	const void *data;

	mllm_test_path(cfgp, sizeof cfgp, TINY "/config.json");
	MLLM_REQUIRE_FIXTURE(cfgp);
	doc = ju_load(cfgp); /* asserts it parses */
	c = mllm__json_root(doc);
	mllm_test_path(p, sizeof p, TINY "/tiny-mobilellm-q8_0.gguf");
	MLLM_REQUIRE_FIXTURE(p);
	g = open_ok(p);
	ck_assert_uint_eq(mllm__gguf_version(g), 3);
	ck_assert_uint_eq(mllm__gguf_alignment(g), 32);
	ck_assert_str_eq(mllm__gguf_path(g), p);
	ck_assert_int_eq(mllm__gguf_get_str(g, "general.architecture", &s, &len), 0);
	ck_assert(len == 5 && memcmp(s, "llama", 5) == 0);
#define CFG(k) ju_int(ju_get(c, k))
	ck_assert_int_eq(mllm__gguf_get_u32(g, "llama.block_count", &u), 0);
	ck_assert_int_eq(u, CFG("num_hidden_layers"));
	ck_assert_int_eq(mllm__gguf_get_i32(g, "llama.embedding_length", &i), 0);
	ck_assert_int_eq(i, CFG("hidden_size"));
	ck_assert_int_eq(mllm__gguf_get_i32(g, "llama.feed_forward_length", &i), 0);
	ck_assert_int_eq(i, CFG("intermediate_size"));
	ck_assert_int_eq(mllm__gguf_get_i32(g, "llama.attention.head_count", &i), 0);
	ck_assert_int_eq(i, CFG("num_attention_heads"));
	ck_assert_int_eq(mllm__gguf_get_i32(g, "llama.attention.head_count_kv", &i), 0);
	ck_assert_int_eq(i, CFG("num_key_value_heads"));
	ck_assert_int_eq(mllm__gguf_get_i32(g, "llama.context_length", &i), 0);
	ck_assert_int_eq(i, CFG("max_position_embeddings"));
	ck_assert_int_eq(mllm__gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &i), 0);
	ck_assert_int_eq(i, CFG("bos_token_id"));
	ck_assert_int_eq(mllm__gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), 0);
	ck_assert_float_eq_tol(f, ju_num(ju_get(c, "rms_norm_eps")), 1e-9);
	ck_assert_int_eq(mllm__gguf_get_f32(g, "llama.rope.freq_base", &f), 0);
	ck_assert_float_eq_tol(f, ju_num(ju_get(c, "rope_theta")), 1e-3);
	ck_assert_int_eq(mllm__gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b), 0);
	ck_assert(b);
	/* type mismatches and absence */
	ck_assert_int_eq(mllm__gguf_get_u32(g, "general.architecture", &u), MLLM_EFORMAT);
	ck_assert_int_eq(mllm__gguf_get_str(g, "llama.block_count", &s, &len), MLLM_EFORMAT);
	ck_assert_int_eq(mllm__gguf_get_f32(g, "llama.block_count", &f), MLLM_EFORMAT);
	ck_assert_int_eq(mllm__gguf_get_bool(g, "llama.block_count", &b), MLLM_EFORMAT);
	ck_assert_int_eq(mllm__gguf_get_u32(g, "no.such.key", &u), MLLM_ENOTFOUND);
	/* the vocabulary array */
	ck_assert_int_eq(mllm__gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &data), 0);
	ck_assert_int_eq(et, MLLM_GGUF_STRING);
	ck_assert_uint_eq(n, (uint64_t)CFG("vocab_size"));
	ck_assert_int_eq(mllm__gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &data), 0);
	ck_assert_int_eq(et, MLLM_GGUF_FLOAT32);
	ck_assert_uint_eq(n, (uint64_t)CFG("vocab_size"));
	ck_assert_int_eq(mllm__gguf_get_arr_str(g, "tokenizer.ggml.tokens", n, &s, &len),
	                 MLLM_ERANGE);
	ck_assert_int_eq(mllm__gguf_get_arr_str(g, "tokenizer.ggml.scores", 0, &s, &len),
	                 MLLM_EFORMAT);
	/* tensors: 2 + 9 per layer, shapes from the config */
	ck_assert_uint_eq(mllm__gguf_n_tensors(g), 2 + 9 * (size_t)CFG("num_hidden_layers"));
	t = mllm__gguf_tensor_find(g, "token_embd.weight");
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(t->n_dims, 2);
	ck_assert_int_eq(t->ne[0], CFG("hidden_size"));
	ck_assert_int_eq(t->ne[1], CFG("vocab_size"));
	ck_assert_int_eq(t->dtype, MLLM_DTYPE_Q8_0);
	ck_assert_uint_eq(t->nbytes, (size_t)(t->ne[0] * t->ne[1] / 32 * 34));
	ck_assert_str_eq(mllm__gguf_type_name(t->ggml_type), "Q8_0");
	t = mllm__gguf_tensor_find(g, "output_norm.weight");
	ck_assert_int_eq(t->dtype, MLLM_DTYPE_F32);
	ck_assert_ptr_null(mllm__gguf_tensor_find(g, "output.weight"));
	ck_assert_ptr_null(mllm__gguf_tensor_at(g, mllm__gguf_n_tensors(g)));
	mllm__gguf_close(g);
	mllm__json_free(doc);
	(void)err;
}
END_TEST

/* The tiny model's vocabulary is llama.cpp's own vocab-only GGUF of the same
 * tokenizer: two independently produced files must list the same pieces. */
START_TEST(test_fixture_vocab_matches_llamacpp)
{
	char p1[512], p2[512];
	mllm__gguf *a, *b;
	uint64_t n1, n2;
	int et;
	const void *d;

	mllm_test_path(p1, sizeof p1, TINY "/tiny-mobilellm-f16.gguf");
	mllm_test_path(p2, sizeof p2, "tokenizer/llama2/llamacpp/ggml-vocab-llama-spm.gguf");
	MLLM_REQUIRE_FIXTURE(p1);
	MLLM_REQUIRE_FIXTURE(p2);
	a = open_ok(p1);
	b = open_ok(p2);
	ck_assert_int_eq(mllm__gguf_get_arr(a, "tokenizer.ggml.tokens", &et, &n1, &d), 0);
	ck_assert_int_eq(mllm__gguf_get_arr(b, "tokenizer.ggml.tokens", &et, &n2, &d), 0);
	ck_assert_uint_eq(n1, n2);
	for (uint64_t i = 0; i < n1; i++) {
		const char *s1, *s2;
		size_t l1, l2;
		ck_assert_int_eq(mllm__gguf_get_arr_str(a, "tokenizer.ggml.tokens", i, &s1, &l1),
		                 0);
		ck_assert_int_eq(mllm__gguf_get_arr_str(b, "tokenizer.ggml.tokens", i, &s2, &l2),
		                 0);
		ck_assert(l1 == l2 && memcmp(s1, s2, l1) == 0);
	}
	mllm__gguf_close(a);
	mllm__gguf_close(b);
}
END_TEST

/* ---- synthetic files ------------------------------------------------------- */

START_TEST(test_synthetic_good)
{
	wbuf b;
	mllm__gguf *g;
	const mllm__gguf_tensor *t;
	uint32_t u;
	float f;
	void *addr;
	size_t size;

	good_file(&b, 64);
	g = open_ok(write_tmp(&b, b.n));
	ck_assert_uint_eq(mllm__gguf_alignment(g), 64);
	ck_assert_int_eq(mllm__gguf_get_u32(g, "llama.block_count", &u), 0);
	ck_assert_uint_eq(u, 7);
	t = mllm__gguf_tensor_find(g, "b.weight");
	ck_assert_int_eq(t->ne[0], 3);
	ck_assert_int_eq(t->ne[1], 2);
	ck_assert_uint_eq(t->nbytes, 24);
	memcpy(&f, (const char *)t->data + 20, 4);
	ck_assert_float_eq(f, 15.0f);
	t = mllm__gguf_tensor_find(g, "a.weight");
	memcpy(&f, (const char *)t->data + 12, 4);
	ck_assert_float_eq(f, 3.0f);
	/* the mapping outlives the index once released */
	mllm__gguf_release_mapping(g, &addr, &size);
	ck_assert_ptr_nonnull(addr);
	ck_assert_uint_eq(size, b.n);
	mllm__gguf_close(g);
	ck_assert_float_eq(f, 3.0f);
	munmap(addr, size);
	free(b.p);
}
END_TEST

START_TEST(test_scalar_types)
{
	wbuf b = {0};
	mllm__gguf *g;
	uint32_t u;
	int32_t i;
	float f;
	bool bo;
	uint8_t v8 = 200;
	int8_t s8 = -5;
	int64_t big = (int64_t)1 << 40, neg = -7;
	double d = 0.25;

	header(&b, 3, 0, 6);
	str(&b, "u8"), u32(&b, MLLM_GGUF_UINT8), put(&b, &v8, 1);
	str(&b, "i8"), u32(&b, MLLM_GGUF_INT8), put(&b, &s8, 1);
	str(&b, "big"), u32(&b, MLLM_GGUF_INT64), put(&b, &big, 8);
	str(&b, "neg"), u32(&b, MLLM_GGUF_INT64), put(&b, &neg, 8);
	str(&b, "f64"), u32(&b, MLLM_GGUF_FLOAT64), put(&b, &d, 8);
	str(&b, "t"), u32(&b, MLLM_GGUF_BOOL), put(&b, "\1", 1);
	g = open_ok(write_tmp(&b, b.n));
	ck_assert_int_eq(mllm__gguf_get_i32(g, "u8", &i), 0);
	ck_assert_int_eq(i, 200);
	ck_assert_int_eq(mllm__gguf_get_i32(g, "i8", &i), 0);
	ck_assert_int_eq(i, -5);
	ck_assert_int_eq(mllm__gguf_get_u32(g, "i8", &u), MLLM_EFORMAT);
	ck_assert_int_eq(mllm__gguf_get_i32(g, "big", &i), MLLM_EFORMAT);
	ck_assert_int_eq(mllm__gguf_get_u32(g, "big", &u), MLLM_EFORMAT);
	ck_assert_int_eq(mllm__gguf_get_i32(g, "neg", &i), 0);
	ck_assert_int_eq(i, -7);
	ck_assert_int_eq(mllm__gguf_get_f32(g, "f64", &f), 0);
	ck_assert_float_eq(f, 0.25f);
	ck_assert_int_eq(mllm__gguf_get_bool(g, "t", &bo), 0);
	ck_assert(bo);
	ck_assert_uint_eq(mllm__gguf_n_kv(g), 6);
	{
		const char *k;
		size_t kl;
		int ty;
		ck_assert_int_eq(mllm__gguf_kv_at(g, 2, &k, &kl, &ty), 0);
		ck_assert(kl == 3 && memcmp(k, "big", 3) == 0 && ty == MLLM_GGUF_INT64);
		ck_assert_int_eq(mllm__gguf_kv_at(g, 6, &k, &kl, &ty), MLLM_ERANGE);
	}
	mllm__gguf_close(g);
	free(b.p);
}
END_TEST

/* ---- malformed ------------------------------------------------------------- */

START_TEST(test_bad_magic_version_counts)
{
	wbuf b;

	good_file(&b, 0);
	b.p[0] = 'X';
	expect_fail(&b, MLLM_EFORMAT, "bad magic (not a GGUF file)");
	free(b.p);

	good_file(&b, 0);
	b.p[4] = 1;
	expect_fail(&b, MLLM_EUNSUPPORTED, "unsupported GGUF version 1");
	b.p[4] = 4;
	expect_fail(&b, MLLM_EUNSUPPORTED, "unsupported GGUF version 4");
	b.p[4] = 3;
	b.p[8 + 7] = 0x10; /* tensor count 2 -> 2 + 2^60 */
	expect_fail(&b, MLLM_EFORMAT, "tensor count 1152921504606846978 is more than the file");
	b.p[8 + 7] = 0;
	b.p[16 + 5] = 0x01; /* metadata count 2 -> 2 + 2^40 */
	expect_fail(&b, MLLM_EFORMAT, "metadata count 1099511627778 is more than the file");
	free(b.p);
}
END_TEST

START_TEST(test_bad_alignment)
{
	wbuf b;
	good_file(&b, 48);
	expect_fail(&b, MLLM_EFORMAT, "general.alignment 48 is not a power of two");
	free(b.p);
	good_file(&b, 0);
	free(b.p);
	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	kv_str(&b, "general.alignment", "32");
	expect_fail(&b, MLLM_EFORMAT, "general.alignment must be a uint32");
	free(b.p);
}
END_TEST

START_TEST(test_bad_tensors)
{
	wbuf b = {0};
	const uint64_t ne[5] = {32, 2, 1, 1, 1}, odd[2] = {33, 2};

	header(&b, 3, 1, 0);
	tensor_info(&b, "w", 2, ne, 77, 0);
	pad(&b, 32);
	put(&b, ne, 40);
	expect_fail(&b, MLLM_EFORMAT, "tensor w: unknown GGML type 77");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 1, 0);
	tensor_info(&b, "w", 2, odd, 8, 0);
	pad(&b, 32);
	for (int i = 0; i < 100; i++)
		put(&b, "\0", 1);
	expect_fail(&b, MLLM_EFORMAT, "row of 33 is not a whole number of Q8_0 blocks");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 1, 0);
	tensor_info(&b, "w", 5, ne, 0, 0);
	expect_fail(&b, MLLM_EFORMAT, "tensor w: 5 dimensions");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 1, 0);
	tensor_info(&b, "w", 2, ne, 0, 16);
	pad(&b, 32);
	for (int i = 0; i < 400; i++)
		put(&b, "\0", 1);
	expect_fail(&b, MLLM_EFORMAT, "offset 16 is not a multiple of the alignment 32");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 1, 0);
	tensor_info(&b, "w", 2, ne, 0, 64);
	pad(&b, 32);
	for (int i = 0; i < 256; i++)
		put(&b, "\0", 1);
	expect_fail(&b, MLLM_EFORMAT, "tensor w: data [64, +256) beyond the data section");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 2, 0);
	tensor_info(&b, "w", 1, ne, 0, 0);
	tensor_info(&b, "w", 1, ne, 0, 128);
	pad(&b, 32);
	for (int i = 0; i < 256; i++)
		put(&b, "\0", 1);
	expect_fail(&b, MLLM_EFORMAT, "tensor w appears twice");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 1, 0);
	tensor_info(&b, "", 1, ne, 0, 0);
	expect_fail(&b, MLLM_EFORMAT, "empty or invalid name");
	free(b.p);
}
END_TEST

START_TEST(test_bad_metadata)
{
	wbuf b = {0};

	header(&b, 3, 0, 2);
	kv_u32(&b, "k", 1);
	kv_u32(&b, "k", 2);
	expect_fail(&b, MLLM_EFORMAT, "metadata key k appears twice");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	str(&b, "k"), u32(&b, 13), u32(&b, 0);
	expect_fail(&b, MLLM_EFORMAT, "metadata key k: unknown value type 13");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	str(&b, "k"), u32(&b, MLLM_GGUF_BOOL), put(&b, "\2", 1);
	expect_fail(&b, MLLM_EFORMAT, "metadata key k: boolean value 2");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	str(&b, "k"), u32(&b, MLLM_GGUF_STRING), u64(&b, 1000), put(&b, "abc", 3);
	expect_fail(&b, MLLM_EFORMAT, "truncated: metadata string");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	str(&b, "k"), u32(&b, MLLM_GGUF_ARRAY), u32(&b, MLLM_GGUF_UINT32),
	    u64(&b, (uint64_t)1 << 62);
	expect_fail(&b, MLLM_EFORMAT, "truncated: metadata array");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	str(&b, "k"), u32(&b, MLLM_GGUF_ARRAY), u32(&b, MLLM_GGUF_STRING), u64(&b, 3);
	str(&b, "a"), str(&b, "b"), u64(&b, 99);
	expect_fail(&b, MLLM_EFORMAT, "truncated: metadata string");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	str(&b, "k"), u32(&b, MLLM_GGUF_ARRAY);
	for (int i = 0; i < 5; i++)
		u32(&b, MLLM_GGUF_ARRAY), u64(&b, 1);
	u32(&b, MLLM_GGUF_UINT8), u64(&b, 0);
	expect_fail(&b, MLLM_EFORMAT, "arrays nested too deep");
	free(b.p);

	memset(&b, 0, sizeof b);
	header(&b, 3, 0, 1);
	u64(&b, 1 << 20);
	for (int i = 0; i < 64; i++)
		u64(&b, 0);
	expect_fail(&b, MLLM_EFORMAT, "metadata key at offset 24 has length 1048576 (limit 65535)");
	free(b.p);
}
END_TEST

/* Every prefix of a valid file fails cleanly (the suite runs under ASan). */
START_TEST(test_every_truncation)
{
	wbuf b;
	good_file(&b, 0);
	for (size_t len = 0; len < b.n; len++) {
		mllm__gguf *g = (mllm__gguf *)1;
		char err[512] = "";
		int rc = mllm__gguf_open(write_tmp(&b, len), &g, err, sizeof err);
		ck_assert_msg(rc == MLLM_EFORMAT, "prefix %zu: %s", len, err);
		ck_assert_ptr_null(g);
		ck_assert_msg(strstr(err, len < 4 ? "bad magic" : "t.gguf: "), "%s", err);
	}
	free(b.p);
}
END_TEST

START_TEST(test_alloc_failure)
{
	wbuf b;
	good_file(&b, 0);
	for (long k = 0; k < 3; k++) {
		mllm__gguf *g = (mllm__gguf *)1;
		char err[512] = "";
		const char *p = write_tmp(&b, b.n);
		mllm__alloc_fail_after(k);
		int rc = mllm__gguf_open(p, &g, err, sizeof err);
		mllm__alloc_fail_after(-1);
		ck_assert_int_eq(rc, MLLM_ENOMEM);
		ck_assert_ptr_null(g);
	}
	free(b.p);
}
END_TEST

/* ---- whole models through mllm_model_open() -------------------------------- */

typedef struct {
	const char *arch;  /* general.architecture */
	uint32_t mat_type; /* GGML type of the matrices */
	uint32_t norm_type;
	bool with_output; /* output.weight present */
	bool drop_block_count;
	uint32_t rope_dims; /* 0: key absent */
	uint64_t ffn_rows;  /* ffn_gate rows (normally 32) */
} model_spec;

/* dim 32, 1 head of 32, 1 KV head, FFN 32, vocab 8, 1 layer. */
static const char *write_model(const model_spec *ms)
{
	struct {
		const char *name;
		uint64_t ne[2];
		int nd;
		bool norm;
	} t[12] = {
	    {"token_embd.weight", {32, 8}, 2, false},
	    {"output_norm.weight", {32, 1}, 1, true},
	    {"blk.0.attn_norm.weight", {32, 1}, 1, true},
	    {"blk.0.attn_q.weight", {32, 32}, 2, false},
	    {"blk.0.attn_k.weight", {32, 32}, 2, false},
	    {"blk.0.attn_v.weight", {32, 32}, 2, false},
	    {"blk.0.attn_output.weight", {32, 32}, 2, false},
	    {"blk.0.ffn_norm.weight", {32, 1}, 1, true},
	    {"blk.0.ffn_gate.weight", {32, ms->ffn_rows ? ms->ffn_rows : 32}, 2, false},
	    {"blk.0.ffn_up.weight", {32, 32}, 2, false},
	    {"blk.0.ffn_down.weight", {32, 32}, 2, false},
	    {"output.weight", {32, 8}, 2, false},
	};
	int n_t = ms->with_output ? 12 : 11;
	int n_kv = 6 + (ms->drop_block_count ? 0 : 1) + (ms->rope_dims ? 1 : 0);
	size_t sizes[12], off = 0;
	wbuf b = {0};
	const char *path;

	header(&b, 3, (uint64_t)n_t, (uint64_t)n_kv);
	kv_str(&b, "general.architecture", ms->arch);
	if (!ms->drop_block_count)
		kv_u32(&b, "llama.block_count", 1);
	kv_u32(&b, "llama.embedding_length", 32);
	kv_u32(&b, "llama.feed_forward_length", 32);
	kv_u32(&b, "llama.attention.head_count", 1);
	kv_u32(&b, "llama.attention.head_count_kv", 1);
	kv_u32(&b, "llama.context_length", 64);
	if (ms->rope_dims)
		kv_u32(&b, "llama.rope.dimension_count", ms->rope_dims);
	for (int i = 0; i < n_t; i++) {
		uint32_t ty = t[i].norm ? ms->norm_type : ms->mat_type;
		const ggml_type_info *ti = &ggml_types[ty];
		uint64_t numel = t[i].ne[0] * (t[i].nd == 2 ? t[i].ne[1] : 1);
		sizes[i] = (size_t)(numel / ti->blck * ti->bytes);
		tensor_info(&b, t[i].name, (uint32_t)t[i].nd, t[i].ne, ty, off);
		off += (sizes[i] + 31) / 32 * 32;
	}
	pad(&b, 32);
	for (int i = 0; i < n_t; i++) {
		for (size_t k = 0; k < sizes[i]; k++)
			put(&b, "\x01", 1); /* f16/bf16 0x0101, Q blocks: tiny scale */
		pad(&b, 32);
	}
	path = write_tmp(&b, b.n);
	free(b.p);
	return path;
}

static const model_spec q4_model = {"llama", 2, 0, false, false, 0, 0};

static void model_fail(const model_spec *ms, int code, const char *needle)
{
	mllm_model *m = (mllm_model *)1;
	char err[512] = "";
	int rc = mllm_model_open(write_model(ms), NULL, &m, err, sizeof err);
	ck_assert_msg(rc == code, "rc %s want %s: %s", mllm_strerror_name(rc),
	              mllm_strerror_name(code), err);
	ck_assert_ptr_null(m);
	ck_assert_msg(strstr(err, needle) != NULL, "\"%s\" lacks \"%s\"", err, needle);
	ck_assert_msg(strstr(err, "t.gguf") != NULL, "\"%s\" does not name the file", err);
}

START_TEST(test_model_q4_0)
{
	mllm_model *m = NULL;
	char err[512] = "";
	const mllm_hparams *hp;
	model_spec ms = q4_model;

	ck_assert_msg(mllm_model_open(write_model(&ms), NULL, &m, err, sizeof err) == 0, "%s", err);
	hp = mllm_model_hparams(m);
	ck_assert_str_eq(hp->format, "gguf");
	ck_assert_int_eq(hp->wtype, MLLM_DTYPE_Q4_0);
	ck_assert_int_eq(hp->n_vocab, 8); /* no llama.vocab_size: from token_embd */
	ck_assert_int_eq(hp->head_dim, 32);
	ck_assert_int_eq(hp->n_ctx_train, 64);
	ck_assert(hp->rope_interleaved);
	ck_assert(hp->shared_output);
	ck_assert_int_eq(hp->bos_id, -1);
	ck_assert_ptr_null(mllm_model_tokenizer(m)); /* no tokenizer.ggml.* */
	ck_assert_int_eq(m->layers[0].w_up.dtype, MLLM_DTYPE_Q4_0);
	ck_assert_int_eq(m->layers[0].w_up.rows, 32);
	ck_assert_int_eq(m->layers[0].w_up.cols, 32);
	ck_assert_int_eq(m->tok_embd.rows, 8);
	{
		uint32_t bits = 0x01010101u; /* what write_model filled in */
		float want;
		memcpy(&want, &bits, 4);
		ck_assert_float_eq(((const float *)m->layers[0].ffn_norm.data)[0], want);
	}
	ck_assert_int_eq(mllm_model_n_params(m), 8 * 32 + 32 + 2 * 32 + 7 * 32 * 32);
	/* Q4_0 matrices: 18 bytes per 32; norms as owned F32 */
	ck_assert_uint_eq(mllm_model_weight_bytes(m),
	                  (8 * 32 + 7 * 32 * 32) / 32 * 18 + 3 * 32 * 4);
	mllm_model_close(m);

	ms.with_output = true;
	ms.mat_type = 8;
	ck_assert_msg(mllm_model_open(write_model(&ms), NULL, &m, err, sizeof err) == 0, "%s", err);
	ck_assert(!mllm_model_hparams(m)->shared_output);
	ck_assert_int_eq(mllm_model_hparams(m)->wtype, MLLM_DTYPE_Q8_0);
	ck_assert_ptr_ne(m->output.data, m->tok_embd.data);
	mllm_model_close(m);

	ms.mat_type = 30;
	ms.norm_type = 1;
	ck_assert_msg(mllm_model_open(write_model(&ms), NULL, &m, err, sizeof err) == 0, "%s", err);
	ck_assert_int_eq(mllm_model_hparams(m)->wtype, MLLM_DTYPE_BF16);
	mllm_model_close(m);
}
END_TEST

START_TEST(test_model_malformed)
{
	model_spec ms = q4_model;
	ms.arch = "gpt2";
	model_fail(&ms, MLLM_EUNSUPPORTED, "architecture \"gpt2\" is not supported");
	ms = q4_model;
	ms.drop_block_count = true;
	model_fail(&ms, MLLM_EFORMAT, "missing metadata key llama.block_count");
	ms = q4_model;
	ms.mat_type = 6;
	model_fail(&ms, MLLM_EUNSUPPORTED, "tensor token_embd.weight has type Q5_0");
	ms = q4_model;
	ms.norm_type = 8;
	model_fail(&ms, MLLM_EUNSUPPORTED, "norm tensor output_norm.weight is Q8_0");
	ms = q4_model;
	ms.ffn_rows = 64;
	model_fail(&ms, MLLM_EFORMAT,
	           "tensor blk.0.ffn_gate.weight has shape [64, 32], expected [32, 32]");
	ms = q4_model;
	ms.rope_dims = 16;
	model_fail(&ms, MLLM_EUNSUPPORTED, "partial RoPE (16 of 32 dims)");
}
END_TEST

/* Seeded byte mutations of a small valid model file: opening never crashes
 * (the suite also runs under ASan) and every failure names the file. */
START_TEST(test_mutations)
{
	model_spec ms = q4_model;
	const char *path = write_model(&ms);
	int rounds = mllm_test_long() ? 50000 : 1500, opened = 0;
	uint32_t seed = 4242;
	unsigned char *orig;
	size_t n;
	wbuf b = {0};

	orig = slurp(path, &n);
	for (int r = 0; r < rounds; r++) {
		mllm_model *m = NULL;
		char err[512] = "";
		int rc;
		b.n = 0;
		put(&b, orig, n);
		for (int k = 0; k < 1 + r % 3; k++) {
			seed = seed * 1103515245u + 12345u;
			/* mostly the header, where the structure is */
			size_t at = (seed >> 8) % (r % 2 ? n : 700);
			seed = seed * 1103515245u + 12345u;
			b.p[at] = (unsigned char)(seed >> 24);
		}
		rc = mllm_model_open(write_tmp(&b, b.n), NULL, &m, err, sizeof err);
		if (rc == 0) {
			opened++;
			mllm_model_close(m);
		} else {
			ck_assert_msg(strstr(err, "t.gguf") != NULL, "%s", err);
		}
	}
	ck_assert_int_lt(opened, rounds);
	free(orig);
	free(b.p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("gguf");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, rm_tmpdir);
	tcase_add_test(tc, test_fixture_metadata);
	tcase_add_test(tc, test_fixture_vocab_matches_llamacpp);
	tcase_add_test(tc, test_synthetic_good);
	tcase_add_test(tc, test_scalar_types);
	tcase_add_test(tc, test_bad_magic_version_counts);
	tcase_add_test(tc, test_bad_alignment);
	tcase_add_test(tc, test_bad_tensors);
	tcase_add_test(tc, test_bad_metadata);
	tcase_add_test(tc, test_every_truncation);
	tcase_add_test(tc, test_alloc_failure);
	tcase_add_test(tc, test_model_q4_0);
	tcase_add_test(tc, test_model_malformed);
	tcase_add_test(tc, test_mutations);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
