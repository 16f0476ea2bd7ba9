/*
 * test_kv.c — the paged KV cache: sizing (GQA, layer sharing, f16), exact
 * block accounting under random alloc/ref/unref, prefix sharing by
 * reference counts, copy-on-write copies, and pool exhaustion.
 */
#include "forward.h"
#include "harness.h"

#include "kernels.h"

/* The cache reads only the hyper-parameters of a model. */
static mllm_model fake_model(int n_layer, int n_head_kv, int head_dim, bool sharing)
{
	mllm_model m;
	memset(&m, 0, sizeof m);
	m.hp.n_layer = n_layer;
	m.hp.n_head_kv = n_head_kv;
	m.hp.head_dim = head_dim;
	m.hp.layer_sharing = sharing;
	return m;
}

START_TEST(test_sizing)
{
	/* MobileLLM-125M: 30 layers x K,V x 3 kv heads x 64, 16 tokens. */
	mllm_model m = fake_model(30, 3, 64, false);
	mllm_kv_params p = {.block_size = 16, .n_blocks = 10};
	mllm_kv *kv;
	ck_assert_int_eq(mllm_kv_create(&m, &p, &kv), 0);
	ck_assert_uint_eq(mllm_kv_bytes_per_block(kv), (size_t)30 * 2 * 3 * 64 * 16 * 4);
	ck_assert_int_eq(mllm_kv_n_blocks(kv), 10);
	ck_assert_int_eq(mllm_kv_n_free(kv), 10);
	ck_assert_int_eq(mllm_kv_block_size(kv), 16);
	mllm_kv_free(kv);

	/* Layer sharing doubles the runs; f16 halves the bytes. */
	mllm_model ls = fake_model(3, 2, 32, true);
	mllm_kv_params p16 = {.block_size = 8, .n_blocks = 4, .f16 = true};
	ck_assert_int_eq(mllm_kv_create(&ls, &p16, &kv), 0);
	ck_assert_uint_eq(mllm_kv_bytes_per_block(kv), (size_t)6 * 2 * 2 * 32 * 8 * 2);
	const mllm__kv_layout *L = mllm__kv_layout_get(kv);
	ck_assert_int_eq(L->runs, 6);
	/* Pieces [runs][K, V][heads][blocks]: the last element of the last
	 * run's V of the last head in the last block ends the pool; a head's
	 * K in block 1 starts right after its K in block 0, and V of run 0
	 * right after K of run 0's last head in the last block. */
	size_t piece = (size_t)8 * 32 * 2;
	ck_assert_uint_eq(mllm__kv_piece_bytes(L), piece);
	uint8_t *a = mllm__kv_elem(L, 3, 5, 1, 7, 63);
	ck_assert_ptr_eq(a + 2, L->base + 4 * mllm_kv_bytes_per_block(kv));
	ck_assert_ptr_eq((uint8_t *)mllm__kv_elem(L, 0, 2, 0, 7, 31) + 2,
	                 (uint8_t *)mllm__kv_elem(L, 1, 2, 0, 0, 0));
	ck_assert_ptr_eq((uint8_t *)mllm__kv_elem(L, 2, 2, 1, 7, 63) + 2,
	                 (uint8_t *)mllm__kv_elem(L, 3, 2, 1, 0, 32));
	ck_assert_ptr_eq((uint8_t *)mllm__kv_elem(L, 3, 0, 0, 7, 63) + 2,
	                 (uint8_t *)mllm__kv_elem(L, 0, 0, 1, 0, 0));
	ck_assert_ptr_eq(mllm__kv_head(L, 1, 2, 1, 1),
	                 L->base + (((size_t)2 * 2 + 1) * 2 + 1) * 4 * piece + piece);
	/* K is channel-major: consecutive slots of a channel are adjacent. */
	ck_assert_ptr_eq((uint8_t *)mllm__kv_elem(L, 0, 0, 0, 3, 5) + 2,
	                 (uint8_t *)mllm__kv_elem(L, 0, 0, 0, 4, 5));
	/* V is token-major: consecutive channels of a slot are adjacent. */
	ck_assert_ptr_eq((uint8_t *)mllm__kv_elem(L, 0, 0, 1, 3, 5) + 2,
	                 (uint8_t *)mllm__kv_elem(L, 0, 0, 1, 3, 6));
	mllm_kv_free(kv);

	/* Derived from a byte budget. */
	mllm_kv_params pb = {.block_size = 16, .max_bytes = 10 * 1024 * 1024};
	ck_assert_int_eq(mllm_kv_create(&m, &pb, &kv), 0);
	ck_assert_int_eq(mllm_kv_n_blocks(kv), (10 * 1024 * 1024) / (30 * 2 * 3 * 64 * 16 * 4));
	mllm_kv_free(kv);

	/* A budget below one block is an error, not an empty pool. */
	mllm_kv_params tiny = {.block_size = 16, .max_bytes = 100};
	ck_assert_int_eq(mllm_kv_create(&m, &tiny, &kv), MLLM_ERANGE);
	ck_assert_ptr_null(kv);
	mllm_kv_free(NULL);
}
END_TEST

START_TEST(test_accounting)
{
	mllm_model m = fake_model(2, 1, 8, false);
	mllm_kv_params p = {.block_size = 4, .n_blocks = 37};
	mllm_kv *kv;
	ck_assert_int_eq(mllm_kv_create(&m, &p, &kv), 0);
	int32_t held[37];
	int32_t refs[37];
	int n_held = 0;
	uint64_t s = 12345;
	for (int step = 0; step < 20000; step++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		int op = (int)(s >> 60) % 3;
		if (op == 0) {
			int32_t b = mllm_kv_block_alloc(kv);
			if (n_held == 37) {
				ck_assert_int_eq(b, -1);
				continue;
			}
			ck_assert_int_ge(b, 0);
			ck_assert_int_eq(mllm_kv_block_refcount(kv, b), 1);
			/* Never handed out twice. (Plain checks inside the loops,
			 * one assertion per step: each Check assertion costs a
			 * write to its pipe, and 20,000 steps of them timed out
			 * on a loaded machine.) */
			for (int i = 0; i < n_held; i++)
				if (held[i] == b)
					ck_abort_msg("block %d handed out twice", b);
			held[n_held] = b;
			refs[n_held++] = 1;
		} else if (op == 1 && n_held) {
			int i = (int)((s >> 20) % (uint64_t)n_held);
			mllm_kv_block_ref(kv, held[i]); /* a second sequence shares it */
			refs[i]++;
		} else if (n_held) {
			int i = (int)((s >> 20) % (uint64_t)n_held);
			mllm_kv_block_unref(kv, held[i]);
			if (--refs[i] == 0) {
				held[i] = held[n_held - 1];
				refs[i] = refs[n_held - 1];
				n_held--;
			}
		}
		/* The invariant: free + held == total, refcounts as tracked. */
		ck_assert_int_eq(mllm_kv_n_free(kv) + n_held, 37);
		for (int i = 0; i < n_held; i++)
			if (mllm_kv_block_refcount(kv, held[i]) != refs[i])
				ck_abort_msg("block %d: refcount %d, expected %d", held[i],
				             mllm_kv_block_refcount(kv, held[i]), refs[i]);
	}
	while (n_held) {
		mllm_kv_block_unref(kv, held[n_held - 1]);
		if (--refs[n_held - 1] == 0)
			n_held--;
	}
	ck_assert_int_eq(mllm_kv_n_free(kv), 37);
	for (int32_t b = 0; b < 37; b++)
		ck_assert_int_eq(mllm_kv_block_refcount(kv, b), 0);
	ck_assert_int_eq(mllm_kv_block_refcount(kv, 37), -1);
	mllm_kv_free(kv);
}
END_TEST

START_TEST(test_copy_on_write)
{
	mllm_model m = fake_model(3, 2, 4, true);
	mllm_kv_params p = {.block_size = 4, .n_blocks = 3};
	mllm_kv *kv;
	ck_assert_int_eq(mllm_kv_create(&m, &p, &kv), 0);
	const mllm__kv_layout *L = mllm__kv_layout_get(kv);
	int32_t a = mllm_kv_block_alloc(kv), b = mllm_kv_block_alloc(kv);
	/* Fill a with a pattern, b with another. */
	for (int32_t r = 0; r < L->runs; r++)
		for (int w = 0; w < 2; w++)
			for (int32_t sl = 0; sl < 4; sl++)
				for (int32_t i = 0; i < L->kv_dim; i++) {
					*(float *)mllm__kv_elem(L, a, r, w, sl, i) =
					    (float)(r * 1000 + w * 100 + sl * 10 + i);
					*(float *)mllm__kv_elem(L, b, r, w, sl, i) = -1.0f;
				}
	/* Copy the first 3 token slots: slot 3 of b keeps its own data. */
	mllm_kv_block_copy(kv, b, a, 3);
	for (int32_t r = 0; r < L->runs; r++)
		for (int w = 0; w < 2; w++)
			for (int32_t sl = 0; sl < 4; sl++)
				for (int32_t i = 0; i < L->kv_dim; i++)
					ck_assert_float_eq(
					    *(float *)mllm__kv_elem(L, b, r, w, sl, i),
					    sl < 3 ? (float)(r * 1000 + w * 100 + sl * 10 + i)
					           : -1.0f);
	mllm_kv_block_unref(kv, a);
	mllm_kv_block_unref(kv, b);
	ck_assert_int_eq(mllm_kv_n_free(kv), 3);
	mllm_kv_free(kv);
}
END_TEST

/* int8 K/V: a quarter of f32's elements plus an f32 scale per token and KV
 * head after each half (at a 64-byte boundary); a copy-on-write copies the
 * scales of the copied tokens with their values. */
START_TEST(test_q8_layout_and_copy)
{
	mllm_model m = fake_model(3, 2, 32, true); /* 6 runs, kv_dim 64 */
	mllm_kv_params p = {.block_size = 8, .n_blocks = 3, .q8 = true, .f16 = true};
	mllm_kv *kv;
	ck_assert_int_eq(mllm_kv_create(&m, &p, &kv), 0);
	const mllm__kv_layout *L = mllm__kv_layout_get(kv);
	ck_assert(L->q8);
	ck_assert(!L->f16); /* q8 overrides f16 */
	size_t half = 8 * 64 + 2 * 8 * sizeof(float);
	ck_assert_uint_eq(mllm_kv_bytes_per_block(kv), (size_t)6 * 2 * half);
	/* A piece: 8 x 32 int8, then (64-byte aligned) its 8 scales. */
	size_t piece = 8 * 32 + 8 * sizeof(float);
	ck_assert_uint_eq(mllm__kv_piece_bytes(L), piece);
	ck_assert_ptr_eq((uint8_t *)mllm__kv_scales(L, 0, 0, 0, 0), L->base + 8 * 32);
	ck_assert_ptr_eq((uint8_t *)mllm__kv_scales(L, 2, 1, 1, 1),
	                 L->base + (((1 * 2 + 1) * 2 + 1) * 3 + 2) * piece + 8 * 32);
	ck_assert_ptr_eq(mllm__kv_head(L, 0, 0, 1, 0), L->base + 2 * 3 * piece);
	ck_assert_ptr_eq((uint8_t *)mllm__kv_elem(L, 0, 0, 1, 3, 5) + 1,
	                 (uint8_t *)mllm__kv_elem(L, 0, 0, 1, 3, 6));
	int32_t a = mllm_kv_block_alloc(kv), b = mllm_kv_block_alloc(kv);
	for (int32_t r = 0; r < L->runs; r++)
		for (int w = 0; w < 2; w++) {
			for (int32_t sl = 0; sl < 8; sl++) {
				for (int32_t i = 0; i < L->kv_dim; i++) {
					*(int8_t *)mllm__kv_elem(L, a, r, w, sl, i) =
					    (int8_t)(r * 7 + w * 3 + sl + i);
					*(int8_t *)mllm__kv_elem(L, b, r, w, sl, i) = -100;
				}
				for (int h = 0; h < 2; h++) {
					mllm__kv_scales(L, a, r, w, h)[sl] =
					    (float)(r * 100 + w * 10 + h) + (float)sl / 10.0f;
					mllm__kv_scales(L, b, r, w, h)[sl] = -1.0f;
				}
			}
		}
	mllm_kv_block_copy(kv, b, a, 5);
	for (int32_t r = 0; r < L->runs; r++)
		for (int w = 0; w < 2; w++)
			for (int32_t sl = 0; sl < 8; sl++) {
				for (int32_t i = 0; i < L->kv_dim; i++)
					ck_assert_int_eq(
					    *(int8_t *)mllm__kv_elem(L, b, r, w, sl, i),
					    sl < 5 ? (int8_t)(r * 7 + w * 3 + sl + i) : -100);
				for (int h = 0; h < 2; h++)
					ck_assert_float_eq(mllm__kv_scales(L, b, r, w, h)[sl],
					                   sl < 5 ? (float)(r * 100 + w * 10 + h) +
					                                (float)sl / 10.0f
					                          : -1.0f);
			}
	mllm_kv_block_unref(kv, a);
	mllm_kv_block_unref(kv, b);
	mllm_kv_free(kv);
}
END_TEST

START_TEST(test_double_unref_aborts)
{
	mllm_model m = fake_model(1, 1, 2, false);
	mllm_kv_params p = {.block_size = 2, .n_blocks = 2};
	mllm_kv *kv;
	ck_assert_int_eq(mllm_kv_create(&m, &p, &kv), 0);
	int32_t b = mllm_kv_block_alloc(kv);
	mllm_kv_block_unref(kv, b);
	mllm_kv_block_unref(kv, b); /* broken invariant: MLLM_ASSERT aborts */
}
END_TEST

START_TEST(test_alloc_failure)
{
	mllm_model m = fake_model(30, 3, 64, false);
	mllm_kv_params p = {.block_size = 16, .n_blocks = 8};
	mllm_kv *kv = NULL;
	mllm__alloc_fail_after(0);
	ck_assert_int_eq(mllm_kv_create(&m, &p, &kv), MLLM_ENOMEM);
	mllm__alloc_fail_after(-1);
	ck_assert_ptr_null(kv);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("kv");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_sizing);
	tcase_add_test(tc, test_accounting);
	tcase_add_test(tc, test_copy_on_write);
	tcase_add_test(tc, test_q8_layout_and_copy);
	tcase_add_test_raise_signal(tc, test_double_unref_aborts, SIGABRT);
	tcase_add_test(tc, test_alloc_failure);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
