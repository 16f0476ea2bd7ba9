/*
 * test_kernels.c — every SIMD path against the scalar reference (matmul for
 * each weight type, vector kernels), the f16/bf16 conversions, Q8_0
 * quantization, the multi-token matmuls (each token bit-identical to
 * the same token alone), OpenBLAS (core chosen for this CPU, sgemm results against
 * the reference), and the worker pool's parallel_for.
 */
#include "harness.h"

#include <math.h>
#include <stdatomic.h>

#include "kernels.h"
#include "pool.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static float frand(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (float)((double)(rng_state >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

static void fill(float *x, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = frand() * scale;
}

/* The SIMD tiers this CPU can run (the scalar one always). */
static int tiers(mllm__isa *out)
{
	const mllm__cpu_caps *c = mllm__cpu_caps_get();
	int n = 0;
	if (c->avx2 && c->fma && c->f16c)
		out[n++] = MLLM__ISA_AVX2;
	if (c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni)
		out[n++] = MLLM__ISA_AVX512;
	return n;
}

START_TEST(test_f16_roundtrip)
{
	/* Every f16 bit pattern that is not NaN survives f16 -> f32 -> f16. */
	for (uint32_t h = 0; h < 65536; h++) {
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
			continue;
		float f = mllm__f16_to_f32((uint16_t)h);
		ck_assert_uint_eq(mllm__f32_to_f16(f), h);
	}
	ck_assert_float_eq(mllm__f16_to_f32(0x3c00), 1.0f);
	ck_assert_float_eq(mllm__f16_to_f32(0xc000), -2.0f);
	ck_assert_float_eq(mllm__f16_to_f32(0x0001), ldexpf(1.0f, -24));
	/* Ties round to even; overflow goes to infinity. */
	ck_assert_uint_eq(mllm__f32_to_f16(1.0f + ldexpf(1.0f, -11)), 0x3c00);
	ck_assert_uint_eq(mllm__f32_to_f16(1.0f + 3 * ldexpf(1.0f, -11)), 0x3c02);
	ck_assert_uint_eq(mllm__f32_to_f16(70000.0f), 0x7c00);
	ck_assert_float_eq(mllm__bf16_to_f32(0x3f80), 1.0f);
	ck_assert_float_eq(mllm__bf16_to_f32(0xc040), -3.0f);
}
END_TEST

/* The row conversion (F16C where the CPU has it) rounds every float as
 * the scalar one: a sweep over bit patterns with stride 4099 (all
 * exponents; ties and subnormals among them), the ties next to 1.0 and
 * the overflow edge, in lengths that leave tails. NaN payloads excluded. */
START_TEST(test_f16_row)
{
	enum { N = 1024 };
	static float x[N];
	static uint16_t got[N];
	int64_t checked = 0;
	int n = 0;
	for (uint64_t b = 0; b <= 0xffffffffu; b += 4099u) {
		uint32_t bits = (uint32_t)b;
		bool last = b + 4099u > 0xffffffffu;
		if (!((bits & 0x7f800000u) == 0x7f800000u && (bits & 0x7fffffu)))
			memcpy(&x[n++], &bits, 4);
		if (n < N && !last)
			continue;
		int len = n - (int)(b % 7 < (uint64_t)n ? b % 7 : 0);
		mllm__f32_to_f16_row(x, got, len);
		for (int i = 0; i < len; i++)
			ck_assert_uint_eq(got[i], mllm__f32_to_f16(x[i]));
		checked += len;
		n = 0;
	}
	ck_assert_int_gt(checked, 1000000);
	float edge[] = {1.0f + ldexpf(1.0f, -11),
	                1.0f + 3 * ldexpf(1.0f, -11),
	                65519.0f,
	                65520.0f,
	                -65520.0f,
	                ldexpf(1.0f, -25),
	                ldexpf(3.0f, -26),
	                ldexpf(1.0f, -14),
	                -0.0f};
	int ne = (int)(sizeof edge / sizeof edge[0]);
	mllm__f32_to_f16_row(edge, got, ne);
	for (int i = 0; i < ne; i++)
		ck_assert_uint_eq(got[i], mllm__f32_to_f16(edge[i]));
}
END_TEST

START_TEST(test_quantize_q8_0)
{
	float x[64], y[64];
	fill(x, 64, 3.0f);
	x[5] = -7.5f; /* the block maximum maps to -127 */
	mllm__block_q8_0 q[2];
	mllm__quantize_q8_0(x, 64, q);
	ck_assert_int_eq(q[0].qs[5], -127);
	mllm__tensor t = {MLLM_DTYPE_Q8_0, 1, 64, q, MLLM__LAYOUT_GGUF, false};
	mllm__dequant_rows(&t, 0, 1, y);
	for (int i = 0; i < 64; i++) {
		float d = mllm__f16_to_f32(q[i / 32].d);
		ck_assert_msg(fabsf(x[i] - y[i]) <= 0.5f * d * 1.01f + 1e-6f, "elem %d: %f vs %f",
		              i, x[i], y[i]);
	}
	ck_assert_uint_eq(mllm__row_bytes(MLLM_DTYPE_Q8_0, 64), 68);
	ck_assert_uint_eq(mllm__row_bytes(MLLM_DTYPE_Q4_0, 64), 36);
	ck_assert_uint_eq(sizeof(mllm__block_q8_0), 34);
	ck_assert_uint_eq(sizeof(mllm__block_q4_0), 18);
}
END_TEST

/* Builds a weight of dtype t from f32 values w (rows x cols); returns the
 * buffer and writes the exactly representable f32 values back into w. */
static void *make_weight(mllm_dtype t, float *w, int64_t rows, int64_t cols)
{
	size_t rb = mllm__row_bytes(t, cols);
	uint8_t *buf = xmalloc(rb * (size_t)rows);
	for (int64_t r = 0; r < rows; r++) {
		float *src = w + r * cols;
		uint8_t *o = buf + (size_t)r * rb;
		switch (t) {
		case MLLM_DTYPE_F32:
			memcpy(o, src, rb);
			break;
		case MLLM_DTYPE_F16:
			mllm__f32_to_f16_row(src, (uint16_t *)o, cols);
			break;
		case MLLM_DTYPE_BF16:
			for (int64_t c = 0; c < cols; c++) {
				uint32_t u;
				memcpy(&u, &src[c], 4);
				((uint16_t *)o)[c] = (uint16_t)(u >> 16);
			}
			break;
		case MLLM_DTYPE_Q8_0:
			mllm__quantize_q8_0(src, cols, (mllm__block_q8_0 *)o);
			break;
		case MLLM_DTYPE_Q4_0: {
			mllm__block_q4_0 *b = (mllm__block_q4_0 *)o;
			for (int64_t k = 0; k < cols / 32; k++) {
				b[k].d = mllm__f32_to_f16(0.05f);
				for (int j = 0; j < 16; j++)
					b[k].qs[j] =
					    (uint8_t)((rng_state =
					                   rng_state * 6364136223846793005ull +
					                   1) >>
					              56);
			}
			break;
		}
		default:
			break;
		}
	}
	mllm__tensor tt = {t, rows, cols, buf, MLLM__LAYOUT_GGUF, false};
	mllm__dequant_rows(&tt, 0, rows, w);
	return buf;
}

/* The tensor over buf in the given layout: X16 re-lays buf's rows in place
 * (each row through a copy, as mllm__model_prepare does). */
static mllm__tensor lay_weight(mllm_dtype t, void *buf, int64_t rows, int64_t cols,
                               mllm__layout layout)
{
	mllm__tensor W = {t, rows, cols, buf, MLLM__LAYOUT_GGUF, false};
	if (layout == MLLM__LAYOUT_X16) {
		ck_assert(mllm__qx_packable(t, cols));
		size_t rb = mllm__row_bytes(t, cols);
		uint8_t *row = xmalloc(rb);
		for (int64_t r = 0; r < rows; r++) {
			memcpy(row, (uint8_t *)buf + (size_t)r * rb, rb);
			mllm__qx_pack_row(t, row, cols, (uint8_t *)buf + (size_t)r * rb);
		}
		free(row);
		W.layout = MLLM__LAYOUT_X16;
	}
	if (layout == MLLM__LAYOUT_R16 || layout == MLLM__LAYOUT_FR16) {
		/* 16-row groups, each through a copy */
		bool fr = layout == MLLM__LAYOUT_FR16;
		ck_assert(fr ? mllm__fr16_packable(t, rows, cols)
		             : mllm__qr16_packable(t, rows, cols));
		void (*pack)(mllm_dtype, const void *, int64_t, void *) =
		    fr ? mllm__fr16_pack_group : mllm__qr16_pack_group;
		size_t gb = 16 * mllm__row_bytes(t, cols);
		uint8_t *group = xmalloc(gb);
		for (int64_t r = 0; r < rows; r += 16) {
			memcpy(group, (uint8_t *)buf + (size_t)r / 16 * gb, gb);
			pack(t, group, cols, (uint8_t *)buf + (size_t)r / 16 * gb);
		}
		free(group);
		W.layout = layout;
		W.act8 = !fr;
	}
	return W;
}

/* R16 weights always read 8-bit activations; x moved onto that grid
 * (per block of 32: multiples of max|x| / 127) quantizes to itself, so the
 * f32 reference and the integer kernels then differ by rounding only. */
static void snap8(float *x, int64_t n)
{
	for (int64_t b = 0; b < n; b += MLLM__QK) {
		float amax = 0.0f;
		for (int e = 0; e < MLLM__QK; e++)
			amax = fmaxf(amax, fabsf(x[b + e]));
		for (int e = 0; e < MLLM__QK && amax > 0.0f; e++)
			x[b + e] = (float)lrintf(x[b + e] * 127.0f / amax) * (amax / 127.0f);
	}
}

static void *alloc_act(int64_t n_tok, int64_t cols)
{
	size_t a = mllm__act_bytes(MLLM__ACT_QA, cols), b = mllm__act_bytes(MLLM__ACT_QX, cols);
	size_t c = mllm__act_bytes(MLLM__ACT_QX8, cols), d = mllm__act_bytes(MLLM__ACT_R16, cols);
	c = c > d ? c : d;
	b = b > c ? b : c;
	return xmalloc((size_t)n_tok * (a > b ? a : b) + 64);
}

static void check_matmul(mllm_dtype t, int64_t rows, int64_t cols, int64_t n_tok,
                         mllm__layout layout)
{
	float *w = xmalloc((size_t)(rows * cols) * sizeof(float));
	float *x = xmalloc((size_t)(n_tok * cols) * sizeof(float));
	float *ref = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	float *got = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	void *xq = alloc_act(n_tok, cols);
	fill(w, (size_t)(rows * cols), 0.5f);
	fill(x, (size_t)(n_tok * cols), 1.0f);
	if (layout == MLLM__LAYOUT_R16)
		snap8(x, n_tok * cols);
	void *buf = make_weight(t, w, rows, cols);
	mllm__tensor W = lay_weight(t, buf, rows, cols, layout);

	/* Vectorized dequantization (the sgemm panels) is exact. */
	float *dq = xmalloc((size_t)(rows * cols) * sizeof(float));
	mllm__isa all[2];
	for (int i = 0, ni = tiers(all); i < ni; i++) {
		mllm__dequant_rows_fast(all[i], &W, 1, rows, dq);
		ck_assert_msg(memcmp(dq, w + cols, (size_t)((rows - 1) * cols) * sizeof(float)) ==
		                  0,
		              "dequant %s %s", mllm__isa_name(all[i]), mllm_dtype_name(t));
	}
	free(dq);

	/* The reference, checked against a double-precision dot. */
	mllm__matmul_rows(MLLM__ISA_SCALAR, &W, x, NULL, n_tok, ref, rows, 0, rows);
	for (int64_t k = 0; k < n_tok; k++)
		for (int64_t r = 0; r < rows; r++) {
			double s = 0.0;
			for (int64_t c = 0; c < cols; c++)
				s += (double)w[r * cols + c] * x[k * cols + c];
			ck_assert_msg(fabs(s - ref[k * rows + r]) <= 1e-4 * (1.0 + fabs(s)),
			              "scalar %s row %lld", mllm_dtype_name(t), (long long)r);
		}

	mllm__isa isas[2];
	int ni = tiers(isas);
	for (int i = 0; i < ni; i++) {
		mllm__act_kind ak = mllm__matmul_act(isas[i], &W);
		bool q = ak != MLLM__ACT_F32;
		mllm__quantize_act(ak, isas[i], x, n_tok, cols, xq);
		/* Split the rows in two ranges as two workers would. */
		int64_t mid = rows / 2;
		mllm__matmul_rows(isas[i], &W, x, xq, n_tok, got, rows, 0, mid);
		mllm__matmul_rows(isas[i], &W, x, xq, n_tok, got, rows, mid, rows);
		for (int64_t k = 0; k < n_tok * rows; k++) {
			/* 16-bit activations: relative error ~1e-4 at most */
			double tol = q ? 1e-3 * (1.0 + fabs(ref[k])) : 1e-4 * (1.0 + fabs(ref[k]));
			ck_assert_msg(fabs(got[k] - ref[k]) <= tol,
			              "%s %s [%lld]: %f vs %f (cols %lld)", mllm__isa_name(isas[i]),
			              mllm_dtype_name(t), (long long)k, got[k], ref[k],
			              (long long)cols);
		}
	}
	free(w);
	free(x);
	free(ref);
	free(got);
	free(xq);
	free(buf);
}

/* The 16-bit activation blocks the quantized matmuls read are the same
 * bits on every tier: scale, and every rounded value (ties, zeros, a block
 * of zeros, the block maximum at +-32767). */
START_TEST(test_quantize_qa_tiers)
{
	enum { COLS = 8 * MLLM__QK, NT = 3 };
	mllm__isa isas[2];
	int ni = tiers(isas);
	float *x = xmalloc(sizeof(float) * NT * COLS);
	fill(x, NT * COLS, 5.0f);
	for (int j = 0; j < MLLM__QK; j++)
		x[MLLM__QK + j] = 0.0f;    /* a zero block */
	x[2 * MLLM__QK + 3] = -40.0f;      /* a negative maximum */
	for (int j = 0; j < MLLM__QK; j++) /* exact halves after scaling */
		x[3 * MLLM__QK + j] = (float)(j - 16) * 0.5f;
	x[4 * MLLM__QK] = 1e-30f; /* a tiny block */
	mllm__block_qa ref[NT * COLS / MLLM__QK], got[NT * COLS / MLLM__QK];
	mllm__quantize_qa(MLLM__ISA_SCALAR, x, NT, COLS, ref);
	ck_assert_int_eq(ref[2].qs[3], -32767);
	for (int ii = 0; ii < ni; ii++) {
		memset(got, 0x5a, sizeof got);
		mllm__quantize_qa(isas[ii], x, NT, COLS, got);
		ck_assert_msg(memcmp(ref, got, sizeof ref) == 0, "%s differs from scalar",
		              mllm__isa_name(isas[ii]));
	}
	free(x);
}
END_TEST

START_TEST(test_matmul_float)
{
	mllm_dtype ts[] = {MLLM_DTYPE_F32, MLLM_DTYPE_F16, MLLM_DTYPE_BF16};
	/* Column counts with every tail length, row counts not a multiple of
	 * the kernels' row groups, 1 and several tokens. */
	int64_t cols[] = {8, 64, 172, 576, 37};
	for (size_t i = 0; i < 3; i++)
		for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
			check_matmul(ts[i], 7, cols[c], 1, MLLM__LAYOUT_GGUF);
			check_matmul(ts[i], 13, cols[c], 5, MLLM__LAYOUT_GGUF);
			/* FR16: one group; split inside a group (48 rows at 24);
			 * four groups and one (the AVX-512 tile and its rest) */
			check_matmul(ts[i], 16, cols[c], 1, MLLM__LAYOUT_FR16);
			check_matmul(ts[i], 48, cols[c], 7, MLLM__LAYOUT_FR16);
			check_matmul(ts[i], 80, cols[c], 13, MLLM__LAYOUT_FR16);
		}
	ck_assert(!mllm__fr16_packable(MLLM_DTYPE_F32, 24, 576));
	ck_assert(!mllm__fr16_packable(MLLM_DTYPE_Q8_0, 32, 576));
	ck_assert(mllm__fr16_packable(MLLM_DTYPE_BF16, 32, 37));
}
END_TEST

START_TEST(test_matmul_quant)
{
	mllm_dtype ts[] = {MLLM_DTYPE_Q8_0, MLLM_DTYPE_Q4_0};
	for (size_t i = 0; i < 2; i++) {
		check_matmul(ts[i], 9, 64, 1, MLLM__LAYOUT_GGUF);
		check_matmul(ts[i], 13, 576, 3, MLLM__LAYOUT_GGUF);
		/* X16: one pair; a group and a pair; groups and pairs (the
		 * 1.5B shape's 50 blocks); whole groups */
		check_matmul(ts[i], 9, 64, 1, MLLM__LAYOUT_X16);
		check_matmul(ts[i], 13, 576, 3, MLLM__LAYOUT_X16);
		check_matmul(ts[i], 6, 1600, 2, MLLM__LAYOUT_X16);
		check_matmul(ts[i], 5, 1536, 5, MLLM__LAYOUT_X16);
	}
	/* R16: one block, the 125M shapes, an odd block count and more than
	 * the reference's 64-block slice; token counts around the 4-token
	 * tiles (check_matmul_batch_exact covers every tail and the sets of
	 * up to three groups). Row ranges split at multiples of 16. */
	for (size_t i = 0; i < 2; i++) {
		check_matmul(ts[i], 32, 32, 1, MLLM__LAYOUT_R16);
		check_matmul(ts[i], 32, 576, 13, MLLM__LAYOUT_R16);
		check_matmul(ts[i], 64, 1536, 3, MLLM__LAYOUT_R16);
		check_matmul(ts[i], 32, 2080, 9, MLLM__LAYOUT_R16);
	}
	ck_assert(!mllm__qr16_packable(MLLM_DTYPE_Q8_0, 24, 576));
	ck_assert(!mllm__qr16_packable(MLLM_DTYPE_F16, 32, 576));
}
END_TEST

/* The multi-token kernels tile rows x tokens; a row's result must not depend
 * on how many tokens share the call or where in the tile it falls: each
 * token of an n-token product equals, bit for bit, that token alone. */
static void check_matmul_batch_exact(mllm_dtype t, int64_t rows, int64_t cols, int64_t n_tok,
                                     mllm__layout layout)
{
	float *w = xmalloc((size_t)(rows * cols) * sizeof(float));
	float *x = xmalloc((size_t)(n_tok * cols) * sizeof(float));
	float *one = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	float *all = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	float *ref = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	void *xq = alloc_act(n_tok, cols);
	fill(w, (size_t)(rows * cols), 0.5f);
	fill(x, (size_t)(n_tok * cols), 1.0f);
	if (layout == MLLM__LAYOUT_R16)
		snap8(x, n_tok * cols);
	void *buf = make_weight(t, w, rows, cols);
	mllm__tensor W = lay_weight(t, buf, rows, cols, layout);
	mllm__matmul_rows(MLLM__ISA_SCALAR, &W, x, NULL, n_tok, ref, rows, 0, rows);
	mllm__isa isas[2];
	float *first = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	for (int i = 0, ni = tiers(isas); i < ni; i++) {
		mllm__act_kind ak = mllm__matmul_act(isas[i], &W);
		bool q = ak != MLLM__ACT_F32;
		size_t xs = mllm__act_bytes(ak, cols);
		mllm__quantize_act(ak, isas[i], x, n_tok, cols, xq);
		mllm__matmul_rows(isas[i], &W, x, xq, n_tok, all, rows, 0, rows);
		/* X16: the AVX2 kernel reads the AVX-512 one's layout with the
		 * same integer and float steps, so both tiers give the same bits
		 * (checked where the CPU runs both). */
		if ((layout == MLLM__LAYOUT_X16 || layout == MLLM__LAYOUT_R16 ||
		     layout == MLLM__LAYOUT_FR16) &&
		    i > 0)
			ck_assert_msg(
			    memcmp(first, all, (size_t)(n_tok * rows) * sizeof(float)) == 0,
			    "%s %s %s differs from %s",
			    layout == MLLM__LAYOUT_R16    ? "R16"
			    : layout == MLLM__LAYOUT_FR16 ? "FR16"
			                                  : "X16",
			    mllm_dtype_name(t), mllm__isa_name(isas[i]), mllm__isa_name(isas[0]));
		memcpy(first, all, (size_t)(n_tok * rows) * sizeof(float));
		/* R16 takes up to three 16-row groups at once: each group alone
		 * gives the same bits. */
		if (layout == MLLM__LAYOUT_R16) {
			for (int64_t r = 0; r < rows; r += 16)
				mllm__matmul_rows(isas[i], &W, x, xq, n_tok, one, rows, r, r + 16);
			ck_assert_msg(memcmp(one, all, (size_t)(n_tok * rows) * sizeof(float)) == 0,
			              "R16 %s %s: a group alone differs", mllm_dtype_name(t),
			              mllm__isa_name(isas[i]));
		}
		/* FR16: every tier, every tile and the scalar reference sum each
		 * (row, token) in one order: the same bits, also per group. */
		if (layout == MLLM__LAYOUT_FR16) {
			ck_assert_msg(memcmp(ref, all, (size_t)(n_tok * rows) * sizeof(float)) == 0,
			              "FR16 %s %s differs from the reference", mllm_dtype_name(t),
			              mllm__isa_name(isas[i]));
			for (int64_t r = 0; r < rows; r += 16)
				mllm__matmul_rows(isas[i], &W, x, xq, n_tok, one, rows, r, r + 16);
			ck_assert_msg(memcmp(one, all, (size_t)(n_tok * rows) * sizeof(float)) == 0,
			              "FR16 %s %s: a group alone differs", mllm_dtype_name(t),
			              mllm__isa_name(isas[i]));
		}
		for (int64_t k = 0; k < n_tok; k++)
			mllm__matmul_rows(isas[i], &W, x + k * cols, (const char *)xq + k * xs, 1,
			                  one + k * rows, rows, 0, rows);
		for (int64_t k = 0; k < n_tok * rows; k++) {
			ck_assert_msg(memcmp(&one[k], &all[k], sizeof(float)) == 0,
			              "%s %s %lld tokens, [%lld]: %.9g alone, %.9g batched",
			              mllm__isa_name(isas[i]), mllm_dtype_name(t), (long long)n_tok,
			              (long long)k, one[k], all[k]);
			double tol = q ? 1e-3 * (1.0 + fabs(ref[k])) : 1e-4 * (1.0 + fabs(ref[k]));
			ck_assert_msg(fabs(all[k] - ref[k]) <= tol, "%s %s [%lld]: %f vs %f",
			              mllm__isa_name(isas[i]), mllm_dtype_name(t), (long long)k,
			              all[k], ref[k]);
		}
	}
	free(first);
	free(w);
	free(x);
	free(one);
	free(all);
	free(ref);
	free(xq);
	free(buf);
}

START_TEST(test_matmul_batch_exact)
{
	mllm_dtype ts[] = {MLLM_DTYPE_F32, MLLM_DTYPE_F16, MLLM_DTYPE_BF16, MLLM_DTYPE_Q8_0,
	                   MLLM_DTYPE_Q4_0};
	/* Token counts around the 4-token tile, rows around the 4-row group. */
	int64_t ntok[] = {2, 3, 4, 5, 8, 11, 33};
	for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++)
		for (size_t k = 0; k < sizeof ntok / sizeof ntok[0]; k++) {
			bool q = ts[i] == MLLM_DTYPE_Q8_0 || ts[i] == MLLM_DTYPE_Q4_0;
			check_matmul_batch_exact(ts[i], 11, q ? 96 : 200, ntok[k],
			                         MLLM__LAYOUT_GGUF);
			check_matmul_batch_exact(ts[i], 6, q ? 576 : 37, ntok[k],
			                         MLLM__LAYOUT_GGUF);
			if (q) {
				check_matmul_batch_exact(ts[i], 11, 1088, ntok[k],
				                         MLLM__LAYOUT_X16);
				check_matmul_batch_exact(ts[i], 6, 576, ntok[k], MLLM__LAYOUT_X16);
			}
			/* FR16: five groups (a tile of four and one); at 33 tokens
			 * 16-bit weights go through f32 copies in column chunks of
			 * 512 (1100 columns: two and a rest) */
			if (!q) {
				check_matmul_batch_exact(ts[i], 80, 37, ntok[k], MLLM__LAYOUT_FR16);
				if (ntok[k] == 33)
					check_matmul_batch_exact(ts[i], 80, 1100, ntok[k],
					                         MLLM__LAYOUT_FR16);
			}
			/* R16: two groups, and three and two (up to three at once) */
			if (q) {
				check_matmul_batch_exact(ts[i], 32, 576, ntok[k], MLLM__LAYOUT_R16);
				check_matmul_batch_exact(ts[i], 80, 96, ntok[k], MLLM__LAYOUT_R16);
			}
		}
}
END_TEST

/* 8-bit activations (Q4_0, X16, act8; the AVX2 kernel). Activations on the
 * int8 grid of their blocks (each block's largest value 127 steps) quantize
 * exactly, so the product equals the f32 reference up to float order: a
 * misplaced byte, lane, scale or offset shows. Any activations: within the
 * 8-bit rounding, each token alone the same bits as in the batch, and the
 * scalar and vector quantizers write the same bytes. */
/* 8-bit activations (W->act8) on every tier whose kernel uses them: Q4_0
 * on AVX2 and AVX-512 VNNI, Q8_0 on AVX-512 VNNI. Activations on the int8
 * grid reproduce the f32 reference; any activations stay near it; a row's
 * result does not depend on the batch; and where both tiers run Q4_0 they
 * give the same bits. */
static void check_act8(mllm_dtype dt, int64_t rows, int64_t cols, int64_t n_tok, bool on_grid)
{
	float *w = xmalloc((size_t)(rows * cols) * sizeof(float));
	float *x = xmalloc((size_t)(n_tok * cols) * sizeof(float));
	float *ref = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	float *all = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	float *one = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	float *prev = xmalloc((size_t)(n_tok * rows) * sizeof(float));
	size_t xs = mllm__act_bytes(MLLM__ACT_QX8, cols);
	uint8_t *xq = xmalloc((size_t)n_tok * xs + 64), *xq2 = xmalloc((size_t)n_tok * xs + 64);
	const char *name = dt == MLLM_DTYPE_Q4_0 ? "Q4_0" : "Q8_0";
	fill(w, (size_t)(rows * cols), 0.5f);
	fill(x, (size_t)(n_tok * cols), 2.0f);
	if (on_grid)
		for (int64_t b = 0; b < n_tok * cols / MLLM__QK; b++) {
			float d = 0.01f + 0.001f * (float)(b % 7);
			for (int e = 0; e < MLLM__QK; e++)
				x[b * MLLM__QK + e] =
				    d * (float)((int)(x[b * MLLM__QK + e] * 63.0f));
			x[b * MLLM__QK + (b % 32)] = (b % 2 ? -127.0f : 127.0f) * d;
		}
	void *buf = make_weight(dt, w, rows, cols);
	mllm__tensor W = lay_weight(dt, buf, rows, cols, MLLM__LAYOUT_X16);
	W.act8 = true;
	mllm__matmul_rows(MLLM__ISA_SCALAR, &W, x, NULL, n_tok, ref, rows, 0, rows);
	ck_assert(mllm__matmul_act(MLLM__ISA_SCALAR, &W) == MLLM__ACT_F32);
	double scale = 0.0;
	for (int64_t k = 0; k < n_tok * rows; k++)
		scale = fmax(scale, fabs(ref[k]));
	mllm__isa isas[2];
	int checked = 0;
	for (int i = 0, ni = tiers(isas); i < ni; i++) {
		if (mllm__matmul_act(isas[i], &W) != MLLM__ACT_QX8)
			continue; /* Q8_0 on AVX2 keeps its 16-bit kernel */
		memset(xq, 0x5a, (size_t)n_tok * xs);
		memset(xq2, 0xa5, (size_t)n_tok * xs);
		mllm__quantize_act(MLLM__ACT_QX8, isas[i], x, n_tok, cols, xq);
		mllm__quantize_act(MLLM__ACT_QX8, MLLM__ISA_SCALAR, x, n_tok, cols, xq2);
		ck_assert_msg(memcmp(xq, xq2, (size_t)n_tok * xs) == 0, "quantizers differ");
		mllm__matmul_rows(isas[i], &W, x, xq, n_tok, all, rows, 0, rows / 2);
		mllm__matmul_rows(isas[i], &W, x, xq, n_tok, all, rows, rows / 2, rows);
		for (int64_t k = 0; k < n_tok; k++)
			mllm__matmul_rows(isas[i], &W, x + k * cols, xq + (size_t)k * xs, 1,
			                  one + k * rows, rows, 0, rows);
		for (int64_t k = 0; k < n_tok * rows; k++) {
			ck_assert_msg(memcmp(&one[k], &all[k], sizeof(float)) == 0,
			              "act8 %s %s cols %lld, %lld tokens [%lld]: %.9g alone, %.9g "
			              "batched",
			              mllm__isa_name(isas[i]), name, (long long)cols,
			              (long long)n_tok, (long long)k, one[k], all[k]);
			double tol = on_grid ? 1e-4 * (1.0 + fabs(ref[k])) : 1e-2 * (1.0 + scale);
			ck_assert_msg(fabs(all[k] - ref[k]) <= tol,
			              "act8 %s %s cols %lld grid %d [%lld]: %f vs %f",
			              mllm__isa_name(isas[i]), name, (long long)cols, on_grid,
			              (long long)k, all[k], ref[k]);
			if (checked > 0)
				ck_assert_msg(
				    memcmp(&prev[k], &all[k], sizeof(float)) == 0,
				    "act8 %s: tiers differ at cols %lld [%lld]: %.9g vs %.9g", name,
				    (long long)cols, (long long)k, prev[k], all[k]);
		}
		memcpy(prev, all, (size_t)(n_tok * rows) * sizeof(float));
		checked++;
	}
	int want = 0;
	for (int i = 0, ni = tiers(isas); i < ni; i++)
		want += isas[i] == MLLM__ISA_AVX512 ||
		        (isas[i] == MLLM__ISA_AVX2 && dt == MLLM_DTYPE_Q4_0);
	ck_assert_int_eq(checked, want);
	free(w);
	free(x);
	free(ref);
	free(all);
	free(one);
	free(prev);
	free(xq);
	free(xq2);
	free(buf);
}

START_TEST(test_matmul_act8)
{
	/* groups and pairs: 64 (a pair), 512 (a group), 576, 1088 (2 + 1) */
	int64_t cols[] = {64, 512, 576, 1088}, ntok[] = {1, 2, 3, 8, 33};
	mllm_dtype dts[] = {MLLM_DTYPE_Q4_0, MLLM_DTYPE_Q8_0};
	for (size_t d = 0; d < 2; d++)
		for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++)
			for (size_t k = 0; k < sizeof ntok / sizeof ntok[0]; k++) {
				check_act8(dts[d], 11, cols[c], ntok[k], true);
				check_act8(dts[d], 6, cols[c], ntok[k], false);
			}
}
END_TEST

START_TEST(test_vector_kernels)
{
	mllm__isa isas[2];
	int ni = tiers(isas);
	float a[203], b[203], y0[203], y1[203], g0[203], g1[203], u[203];
	uint16_t bh[203];
	fill(a, 203, 4.0f);
	fill(b, 203, 4.0f);
	fill(u, 203, 2.0f);
	mllm__f32_to_f16_row(b, bh, 203);
	for (int i = 0; i < ni; i++) {
		for (int n = 1; n <= 203; n += 13) {
			float r = mllm__dot_f32(MLLM__ISA_SCALAR, a, b, n);
			ck_assert(fabsf(mllm__dot_f32(isas[i], a, b, n) - r) <=
			          1e-4f * (1 + fabsf(r)));
			r = mllm__dot_f16(MLLM__ISA_SCALAR, a, bh, n);
			ck_assert(fabsf(mllm__dot_f16(isas[i], a, bh, n) - r) <=
			          1e-4f * (1 + fabsf(r)));
			memcpy(y0, b, sizeof b);
			memcpy(y1, b, sizeof b);
			mllm__axpy_f32(MLLM__ISA_SCALAR, y0, 0.37f, a, n);
			mllm__axpy_f32(isas[i], y1, 0.37f, a, n);
			mllm__axpy_f16(MLLM__ISA_SCALAR, y0, -1.5f, bh, n);
			mllm__axpy_f16(isas[i], y1, -1.5f, bh, n);
			for (int k = 0; k < 203; k++)
				ck_assert(fabsf(y0[k] - y1[k]) <= 1e-5f * (1 + fabsf(y0[k])));
			/* softmax, with large logits to exercise the range */
			for (int k = 0; k < n; k++)
				y0[k] = y1[k] = a[k] * 20.0f;
			mllm__softmax(MLLM__ISA_SCALAR, y0, n);
			mllm__softmax(isas[i], y1, n);
			double s = 0.0;
			for (int k = 0; k < n; k++) {
				ck_assert_msg(fabsf(y0[k] - y1[k]) <= 1e-6f + 1e-5f * y0[k],
				              "softmax %s n %d k %d: %g vs %g",
				              mllm__isa_name(isas[i]), n, k, y0[k], y1[k]);
				s += y1[k];
			}
			ck_assert(fabs(s - 1.0) < 1e-5);
			memcpy(g0, a, sizeof a);
			memcpy(g1, a, sizeof a);
			for (int k = 0; k < n; k++)
				g0[k] = g1[k] = a[k] * 6.0f;
			mllm__silu_mul(MLLM__ISA_SCALAR, g0, u, n);
			mllm__silu_mul(isas[i], g1, u, n);
			for (int k = 0; k < n; k++)
				ck_assert_msg(fabsf(g0[k] - g1[k]) <= 1e-6f * (1 + fabsf(g0[k])),
				              "silu %d: %g vs %g", k, g0[k], g1[k]);
		}
	}
	/* silu against its definition, in double */
	float g[3] = {-3.0f, 0.0f, 2.5f}, one[3] = {1, 1, 1};
	mllm__silu_mul(MLLM__ISA_SCALAR, g, one, 3);
	ck_assert(fabs(g[0] - (-3.0 / (1.0 + exp(3.0)))) < 1e-6);
	ck_assert(g[1] == 0.0f);
	ck_assert(fabs(g[2] - (2.5 / (1.0 + exp(-2.5)))) < 1e-6);
}
END_TEST

/* Sampling's kernels on every tier against double precision: the max, and
 * exp((x - m) * s) with exactly 0 for -inf entries (masked tokens) and the
 * sum of what was written, at lengths around the vector widths. */
/* The vector argmax is the scalar loop's index: random rows, ties (the
 * first wins), the maximum in the tail, all -inf, NaNs anywhere. */
START_TEST(test_argmax_tiers)
{
	enum { N = 1000 };
	mllm__isa isas[2];
	int ni = tiers(isas);
	float *x = xmalloc(sizeof(float) * N);
	for (int c = 0; c < 9; c++) {
		int n = c % 3 == 0 ? N : c % 3 == 1 ? 37 : 5;
		fill(x, (size_t)n, 10.0f);
		if (c == 1)
			x[n - 1] = 50.0f; /* in the scalar tail */
		if (c == 3) {
			x[400] = 70.0f;
			x[10] = 70.0f; /* a tie: 10 wins */
		}
		if (c == 4)
			for (int i = 0; i < n; i++)
				x[i] = -INFINITY;
		if (c == 5)
			x[0] = NAN; /* nothing beats a NaN at 0 */
		if (c == 6) {
			x[3] = NAN;
			x[999] = 99.0f;
		}
		if (c == 7)
			x[2] = 1e30f, x[1] = NAN;
		int64_t want_i = mllm__argmax_f32(MLLM__ISA_SCALAR, x, n);
		if (c == 3)
			ck_assert_int_eq(want_i, 10);
		if (c == 6)
			ck_assert_int_eq(want_i, 999);
		for (int ii = 0; ii < ni; ii++)
			ck_assert_msg(mllm__argmax_f32(isas[ii], x, n) == want_i,
			              "case %d %s: %lld vs %lld", c, mllm__isa_name(isas[ii]),
			              (long long)mllm__argmax_f32(isas[ii], x, n),
			              (long long)want_i);
	}
	free(x);
}
END_TEST

START_TEST(test_sampling_kernels)
{
	mllm__isa isas[3] = {MLLM__ISA_SCALAR};
	int ni = 1 + tiers(isas + 1);
	float x[203], out[203];
	fill(x, 203, 8.0f);
	for (int k = 0; k < 203; k += 7)
		x[k] = -INFINITY;
	for (int i = 0; i < ni; i++) {
		for (int n = 1; n <= 203; n += 11) {
			float want_m = -INFINITY, m, s = 0.7f;
			double want_sum = 0.0, sum;
			for (int k = 0; k < n; k++)
				want_m = x[k] > want_m ? x[k] : want_m;
			m = mllm__max_f32(isas[i], x, n);
			ck_assert_msg(m == want_m, "max %s n %d: %g vs %g", mllm__isa_name(isas[i]),
			              n, m, want_m);
			if (m == -INFINITY)
				continue;
			sum = mllm__exp_shift(isas[i], x, m, s, out, n);
			for (int k = 0; k < n; k++) {
				double want = x[k] == -INFINITY ? 0.0 : exp(((double)x[k] - m) * s);
				if (x[k] == -INFINITY)
					ck_assert_msg(out[k] == 0.0f, "exp_shift %s: -inf gave %g",
					              mllm__isa_name(isas[i]), out[k]);
				ck_assert_msg(fabs(out[k] - want) <= 1e-6 * want + 1e-30,
				              "exp_shift %s n %d k %d: %g vs %g",
				              mllm__isa_name(isas[i]), n, k, out[k], want);
				want_sum += out[k];
			}
			ck_assert(fabs(sum - want_sum) <= 1e-9 * want_sum);
		}
	}
	ck_assert(mllm__max_f32(MLLM__ISA_SCALAR, x, 0) == -INFINITY);
}
END_TEST

/* The attention kernels of every tier against a double-precision sum:
 * scores over a channel-major K block, weighted sums of token-major V rows,
 * for group sizes 1..9 and head dims 8, 32, 64 (f32 and f16 storage). */
START_TEST(test_attn_kernels)
{
	mllm__isa isas[3] = {MLLM__ISA_SCALAR};
	int ni = 1 + tiers(isas + 1);
	int hds[3] = {8, 32, 64};
	enum { BS = 16, KVD = 2 * 64, LD = 40 };
	static float q[9 * 64], kt[KVD * BS], v[BS * KVD], w[9 * LD], o[9 * 64], o0[9 * 64];
	static uint16_t kth[KVD * BS], vh[BS * KVD];
	fill(q, sizeof q / 4, 1.0f);
	fill(kt, sizeof kt / 4, 1.0f);
	fill(v, sizeof v / 4, 1.0f);
	mllm__f32_to_f16_row(kt, kth, KVD * BS);
	mllm__f32_to_f16_row(v, vh, KVD * BS);
	for (int i = 0; i < ni; i++)
		for (int hi = 0; hi < 3; hi++)
			for (int f16 = 0; f16 < 2; f16++)
				for (int rep = 1; rep <= 9; rep += 2) {
					int hd = hds[hi], ns = 13;
					/* the second head's channels: rows hd.. of K */
					const void *kb = f16 ? (const void *)(kth + hd * BS)
					                     : (const void *)(kt + hd * BS);
					mllm__attn_scores(isas[i], rep, hd, q, kb, f16, BS, ns,
					                  0.125f, w, LD);
					for (int r = 0; r < rep; r++)
						for (int sl = 0; sl < ns; sl++) {
							double e = 0.0;
							for (int d = 0; d < hd; d++) {
								int idx = (hd + d) * BS + sl;
								e += (double)q[r * hd + d] *
								     (f16 ? mllm__f16_to_f32(
								                kth[idx])
								          : kt[idx]);
							}
							ck_assert_msg(
							    fabs(w[r * LD + sl] - 0.125 * e) < 1e-5,
							    "scores %s hd %d rep %d",
							    mllm__isa_name(isas[i]), hd, rep);
						}
					fill(o, sizeof o / 4, 1.0f);
					memcpy(o0, o, sizeof o);
					const void *vb =
					    f16 ? (const void *)(vh + hd) : (const void *)(v + hd);
					mllm__attn_accum(isas[i], rep, hd, o, w, LD, vb, f16, KVD,
					                 ns);
					for (int r = 0; r < rep; r++)
						for (int d = 0; d < hd; d++) {
							double e = o0[r * hd + d];
							for (int sl = 0; sl < ns; sl++) {
								int idx = sl * KVD + hd + d;
								e +=
								    (double)w[r * LD + sl] *
								    (f16 ? mllm__f16_to_f32(vh[idx])
								         : v[idx]);
							}
							ck_assert_msg(
							    fabs(o[r * hd + d] - e) < 1e-5,
							    "accum %s hd %d rep %d",
							    mllm__isa_name(isas[i]), hd, rep);
						}
					/* heads past rep are untouched */
					for (int k = rep * hd; k < 9 * 64; k++)
						ck_assert(o[k] == o0[k]);
				}
}
END_TEST

/* One token's attention the one-token way (what attn_fn did before tiles):
 * scores block by block, softmax over 0..pos, V sum block by block. */
static void attn_one(mllm__isa isa, const mllm__kv_layout *L, const int32_t *table, int g, int rep,
                     int hd, int32_t pos, const float *qg, float *og, float *sc, int64_t ld)
{
	int32_t bs = L->block_size;
	for (int32_t p0 = 0; p0 <= pos; p0 += bs) {
		int32_t ns = pos - p0 + 1 < bs ? pos - p0 + 1 : bs;
		const uint8_t *kb = mllm__kv_head(L, table[p0 / bs], 1, 0, g);
		mllm__attn_scores(isa, rep, hd, qg, kb, L->f16, bs, ns, 0.125f, sc + p0, ld);
	}
	for (int r = 0; r < rep; r++)
		mllm__softmax(isa, sc + r * ld, (int64_t)pos + 1);
	memset(og, 0, (size_t)rep * (size_t)hd * sizeof(float));
	for (int32_t p0 = 0; p0 <= pos; p0 += bs) {
		int32_t ns = pos - p0 + 1 < bs ? pos - p0 + 1 : bs;
		const uint8_t *vb = mllm__kv_head(L, table[p0 / bs], 1, 1, g);
		mllm__attn_accum(isa, rep, hd, og, sc + p0, ld, vb, L->f16, hd, ns);
	}
}

/* A one-token tile computed in parts (split-K: score chunks of `chunk`
 * positions, softmax per row, 32-channel output groups, each part on its
 * own) gives the bits of the whole tile, ref. */
static void check_split(mllm__isa isa, const mllm__attn_tile *whole, const float *ref)
{
	if (!mllm__attn_split_ok(isa, whole->L, whole->head_dim))
		return;
	int chunks[3] = {16, 48, 256};
	size_t n = (size_t)whole->rep * (size_t)whole->head_dim;
	for (int ci = 0; ci < 3; ci++) {
		mllm__attn_tile a = *whole;
		float *out = xcalloc(n, sizeof(float));
		a.out = out;
		a.scratch = xmalloc(sizeof(float) * (size_t)a.rep * (size_t)a.ld);
		int32_t np = a.p0 + 1;
		/* Chunks in reverse order: no part may lean on an earlier one. */
		for (int32_t s0 = (np - 1) / chunks[ci] * chunks[ci]; s0 >= 0; s0 -= chunks[ci])
			mllm__attn_split_scores(isa, &a, s0,
			                        np - s0 < chunks[ci] ? np : s0 + chunks[ci]);
		for (int r = 0; r < a.rep; r++)
			mllm__softmax(isa, a.scratch + (size_t)r * (size_t)a.ld, np);
		for (int c0 = a.head_dim - MLLM__ATTN_SPLIT_ALIGN_C; c0 >= 0;
		     c0 -= MLLM__ATTN_SPLIT_ALIGN_C)
			mllm__attn_split_accum(isa, &a, c0, c0 + MLLM__ATTN_SPLIT_ALIGN_C);
		ck_assert_msg(memcmp(out, ref, n * sizeof(float)) == 0,
		              "split %s chunk %d rep %d hd %d p0 %d", mllm__isa_name(isa),
		              chunks[ci], a.rep, a.head_dim, a.p0);
		free(out);
		free(a.scratch);
	}
}

/* A multi-query tile (prefill) gives every (token, head) exactly the bits
 * of that token computed alone, on every tier, K/V type, block size, head
 * count and tile position (including tiles across block boundaries). */
START_TEST(test_attn_tile_exact)
{
	mllm__isa isas[3] = {MLLM__ISA_SCALAR};
	int ni = 1 + tiers(isas + 1);
	int bss[2] = {16, 8}, reps[3] = {1, 3, 9}, hds[2] = {64, 32};
	int p0s[] = {0, 1, 15, 16, 17, 100, 250};
	int n_split = 0;
	enum { LD = 264, NKV = 2, G = 1 };
	for (int ii = 0; ii < ni; ii++)
		for (int bi = 0; bi < 2; bi++)
			for (int f16 = 0; f16 < 2; f16++)
				for (int ri = 0; ri < 3; ri++)
					for (int hi = 0; hi < 2; hi++) {
						int bs = bss[bi], rep = reps[ri], hd = hds[hi];
						size_t esz = f16 ? 2 : 4;
						mllm__kv_layout L = {0};
						L.block_size = bs;
						L.runs = 2;
						L.kv_dim = NKV * hd;
						L.head_dim = hd;
						L.f16 = f16;
						L.block_bytes = (size_t)L.runs * 2 * (size_t)bs *
						                (size_t)L.kv_dim * esz;
						L.n_blocks = LD / bs + 1;
						L.base =
						    xmalloc(L.block_bytes * (size_t)L.n_blocks);
						size_t nel =
						    L.block_bytes * (size_t)L.n_blocks / esz;
						for (size_t i = 0; i < nel; i++) {
							float x = frand() * 2;
							if (f16)
								((uint16_t *)L.base)[i] =
								    mllm__f32_to_f16(x);
							else
								((float *)L.base)[i] = x;
						}
						int32_t table[64];
						for (int j = 0; j < L.n_blocks; j++)
							table[j] =
							    (int32_t)((j * 7 + 3) %
							              L.n_blocks); /* scattered
							                              blocks */
						int64_t qs = (int64_t)NKV * rep * hd;
						size_t nq_max = MLLM__ATTN_TQ;
						float *q =
						    xmalloc(sizeof(float) * nq_max * (size_t)qs);
						float *o1 =
						    xcalloc(nq_max * (size_t)qs, sizeof(float));
						float *o2 =
						    xcalloc(nq_max * (size_t)qs, sizeof(float));
						float *sc =
						    xmalloc(sizeof(float) * (size_t)rep * LD);
						float *scr =
						    xmalloc(sizeof(float) *
						            mllm__attn_scratch_floats(rep, hd, LD));
						fill(q, nq_max * (size_t)qs, 3.0f);
						for (size_t pi = 0; pi < sizeof p0s / sizeof p0s[0];
						     pi++)
							for (int nq = 1; nq <= MLLM__ATTN_TQ;
							     nq++) {
								int p0 = p0s[pi];
								for (int i = 0; i < nq; i++)
									attn_one(isas[ii], &L,
									         table, G, rep, hd,
									         p0 + i,
									         q + i * qs +
									             G * rep * hd,
									         o1 + i * qs +
									             G * rep * hd,
									         sc, LD);
								mllm__attn_tile a = {
								    .L = &L,
								    .table = table,
								    .run = 1,
								    .g = G,
								    .rep = rep,
								    .head_dim = hd,
								    .scale = 0.125f,
								    .p0 = p0,
								    .nq = nq,
								    .q = q + G * rep * hd,
								    .out = o2 + G * rep * hd,
								    .q_stride = qs,
								    .ld = LD,
								    .scratch = scr};
								mllm__attn_run_tile(isas[ii], &a);
								ck_assert_msg(
								    memcmp(o1, o2,
								           sizeof(float) *
								               (size_t)nq *
								               (size_t)qs) == 0,
								    "%s bs %d f16 %d rep %d hd %d "
								    "p0 %d nq %d",
								    mllm__isa_name(isas[ii]), bs,
								    f16, rep, hd, p0, nq);
								if (nq == 1) {
									a.q_stride = rep * hd;
									check_split(isas[ii], &a,
									            o1 + G * rep *
									                     hd);
									n_split +=
									    mllm__attn_split_ok(
									        isas[ii], &L, hd);
								}
							}
						free(L.base);
						free(q);
						free(o1);
						free(o2);
						free(sc);
						free(scr);
					}
	/* The split path ran wherever this CPU has a tier that takes it. */
	if (ni > 1)
		ck_assert_int_gt(n_split, 0);
}
END_TEST

/* int8 K/V: a head quantizes to max |x| / 127 steps, rounded to nearest
 * (halves away from zero), the largest value to +-127. */
START_TEST(test_q8_head)
{
	float x[64], d;
	int8_t q[128];
	fill(x, 64, 2.0f);
	x[17] = -5.08f; /* the largest magnitude: d = 0.04 */
	x[3] = 0.02f;   /* exactly half a step: rounds away from zero */
	x[4] = -0.02f;
	mllm__q8_head(x, 64, q, 2, &d); /* every other byte */
	ck_assert_float_eq_tol(d, 0.04f, 1e-7f);
	ck_assert_int_eq(q[34], -127);
	ck_assert_int_eq(q[6], 1);
	ck_assert_int_eq(q[8], -1);
	for (int i = 0; i < 64; i++)
		ck_assert_msg(fabsf((float)q[2 * i] * d - x[i]) <= d / 2 + 1e-6f, "x[%d]", i);
	float z[8] = {0};
	mllm__q8_head(z, 8, q, 1, &d);
	ck_assert_float_eq(d, 0.0f);
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(q[i], 0);
}
END_TEST

/* dst = src with the n floats at off of each of nq rows (qs apart) NaN:
 * what a tile must write. */
static void nan_rows(float *dst, const float *src, int nq, int64_t qs, int64_t off, int64_t n)
{
	memcpy(dst, src, sizeof(float) * (size_t)nq * (size_t)qs);
	for (int i = 0; i < nq; i++)
		for (int64_t j = 0; j < n; j++)
			dst[i * qs + off + j] = NAN;
}

/* An int8 K/V tile is the f32 tile on the dequantized values, bit for bit,
 * on every tier (the f32 tiles are checked against single tokens above),
 * through the dequantized copy and, where the tier reads int8 in place,
 * through the cache itself: a whole tile and, for one token, split-K in
 * reverse chunk order. Both run the tier mllm__attn_isa() picks for int8. */
START_TEST(test_attn_tile_q8_exact)
{
	mllm__isa isas[3] = {MLLM__ISA_SCALAR};
	int ni = 1 + tiers(isas + 1);
	enum { LD = 264, NKV = 2, G = 1, REP = 3, NB = LD / 8 + 1 };
	int bss[2] = {16, 8}, hds[2] = {64, 32}, p0s[] = {0, 15, 16, 100, 250};
	int n_native = 0, n_split = 0;
	for (int bi = 0; bi < 2; bi++)
		for (int hi = 0; hi < 2; hi++) {
			int bs = bss[bi], hd = hds[hi];
			mllm__kv_layout Q = {.block_size = bs,
			                     .runs = 2,
			                     .kv_dim = NKV * hd,
			                     .head_dim = hd,
			                     .q8 = true,
			                     .n_blocks = NB};
			mllm__kv_layout F = Q;
			F.q8 = false;
			Q.block_bytes = 2 * 2 * mllm__kv_half_bytes(&Q);
			F.block_bytes = 2 * 2 * mllm__kv_half_bytes(&F);
			Q.base = xmalloc(Q.block_bytes * NB);
			F.base = xmalloc(F.block_bytes * NB);
			for (int b = 0; b < NB; b++)
				for (int r = 0; r < 2; r++)
					for (int w = 0; w < 2; w++)
						for (int s = 0; s < bs; s++)
							for (int c = 0; c < NKV * hd; c++) {
								float *sc =
								    mllm__kv_scales(&Q, b, r, w,
								                    c / hd) +
								    s;
								if (c % hd == 0)
									*sc =
									    0.01f +
									    fabsf(frand()) * 0.02f;
								int8_t v =
								    (int8_t)(frand() * 127.0f);
								*(int8_t *)mllm__kv_elem(
								    &Q, b, r, w, s, c) = v;
								*(float *)mllm__kv_elem(&F, b, r, w,
								                        s, c) =
								    (float)v * *sc;
							}
			int32_t table[NB], ident[NB];
			for (int j = 0; j < NB; j++) {
				table[j] = (int32_t)((j * 7 + 3) % NB);
				ident[j] = j;
			}
			int64_t qs = (int64_t)NKV * REP * hd;
			float *q = xmalloc(sizeof(float) * MLLM__ATTN_TQ * (size_t)qs);
			float *o1 = xcalloc(MLLM__ATTN_TQ * (size_t)qs, sizeof(float));
			float *o2 = xcalloc(MLLM__ATTN_TQ * (size_t)qs, sizeof(float));
			float *o3 = xcalloc(MLLM__ATTN_TQ * (size_t)qs, sizeof(float));
			float *scr =
			    xmalloc(sizeof(float) * mllm__attn_scratch_floats(REP, hd, LD));
			float *kvf = xmalloc(sizeof(float) * NB * 2 * (size_t)bs * (size_t)hd);
			fill(q, MLLM__ATTN_TQ * (size_t)qs, 3.0f);
			for (int ii = 0; ii < ni; ii++)
				for (size_t pi = 0; pi < sizeof p0s / sizeof p0s[0]; pi++)
					for (int nq = 1; nq <= MLLM__ATTN_TQ; nq += 3) {
						mllm__attn_tile a = {.L = &F,
						                     .table = table,
						                     .run = 1,
						                     .g = G,
						                     .rep = REP,
						                     .head_dim = hd,
						                     .scale = 0.125f,
						                     .p0 = p0s[pi],
						                     .nq = nq,
						                     .q = q + G * REP * hd,
						                     .out = o1 + G * REP * hd,
						                     .q_stride = qs,
						                     .ld = LD,
						                     .scratch = scr};
						mllm__isa ti = mllm__attn_isa(isas[ii], &Q);
						size_t nb = sizeof(float) * (size_t)nq * (size_t)qs;
						mllm__attn_run_tile(ti, &a);
						a.L = &Q;
						a.out = o2 + G * REP * hd;
						mllm__attn_run_tile_q8(isas[ii], &a, kvf, NB,
						                       ident);
						ck_assert_msg(memcmp(o1, o2, nb) == 0,
						              "%s bs %d hd %d p0 %d nq %d",
						              mllm__isa_name(isas[ii]), bs, hd,
						              p0s[pi], nq);
						if (!mllm__attn_q8_native(isas[ii], &Q, hd))
							continue;
						n_native++;
						nan_rows(o3, o1, nq, qs, G * REP * hd, REP * hd);
						a.out = o3 + G * REP * hd;
						mllm__attn_run_tile(isas[ii], &a);
						ck_assert_msg(memcmp(o1, o3, nb) == 0,
						              "native %s bs %d hd %d p0 %d nq %d",
						              mllm__isa_name(isas[ii]), bs, hd,
						              p0s[pi], nq);
						if (nq != 1 ||
						    !mllm__attn_split_ok(isas[ii], &Q, hd))
							continue;
						n_split++;
						nan_rows(o3, o1, nq, qs, G * REP * hd, REP * hd);
						a.ld = LD;
						int32_t np = a.p0 + 1;
						for (int32_t s0 = (np - 1) / 16 * 16; s0 >= 0;
						     s0 -= 16)
							mllm__attn_split_scores(
							    isas[ii], &a, s0,
							    np - s0 < 16 ? np : s0 + 16);
						for (int r = 0; r < REP; r++)
							mllm__softmax(ti, scr + (size_t)r * LD, np);
						for (int c0 = hd - MLLM__ATTN_SPLIT_ALIGN_C;
						     c0 >= 0; c0 -= MLLM__ATTN_SPLIT_ALIGN_C)
							mllm__attn_split_accum(
							    isas[ii], &a, c0,
							    c0 + MLLM__ATTN_SPLIT_ALIGN_C);
						ck_assert_msg(memcmp(o1, o3, nb) == 0,
						              "split %s bs %d hd %d p0 %d",
						              mllm__isa_name(isas[ii]), bs, hd,
						              p0s[pi]);
					}
			free(Q.base);
			free(F.base);
			free(q);
			free(o1);
			free(o2);
			free(o3);
			free(scr);
			free(kvf);
		}
#ifdef MLLM_X86
	/* Where AVX2 runs, both cuts were taken. */
	if (ni > 1) {
		ck_assert_int_gt(n_native, 0);
		ck_assert_int_gt(n_split, 0);
	}
#endif
}
END_TEST

/* RMSNorm's sum of squares: the same bits on every tier for every length
 * (tails of each size included), within double rounding of an exact sum,
 * and a row normalizes the same whatever tier runs it. */
START_TEST(test_rmsnorm_tiers)
{
	mllm__isa isas[3];
	int ni = tiers(isas);
	float x[600], w[600], o0[600], o1[600];
	fill(x, 600, 7.0f);
	fill(w, 600, 1.0f);
	for (int n = 1; n <= 600; n += n < 80 ? 1 : 37) {
		long double exact = 0.0L;
		for (int i = 0; i < n; i++)
			exact += (long double)x[i] * (long double)x[i];
		double ref = mllm__sumsq(MLLM__ISA_SCALAR, x, n);
		ck_assert(fabsl((long double)ref - exact) <= 1e-14L * exact);
		mllm__rmsnorm(MLLM__ISA_SCALAR, o0, x, w, n, 1e-5f);
		for (int i = 0; i < ni; i++) {
			double got = mllm__sumsq(isas[i], x, n);
			ck_assert_msg(memcmp(&got, &ref, sizeof got) == 0, "tier %d n %d", i, n);
			mllm__rmsnorm(isas[i], o1, x, w, n, 1e-5f);
			ck_assert_msg(memcmp(o0, o1, (size_t)n * sizeof(float)) == 0,
			              "tier %d n %d", i, n);
		}
	}
	/* The residual add (axpy with a = 1), every length's tail. */
	for (int n = 1; n <= 40; n++)
		for (int i = 0; i < ni; i++) {
			memcpy(o0, x, (size_t)n * sizeof(float));
			memcpy(o1, x, (size_t)n * sizeof(float));
			mllm__axpy_f32(MLLM__ISA_SCALAR, o0, 1.0f, w, n);
			mllm__axpy_f32(isas[i], o1, 1.0f, w, n);
			ck_assert(memcmp(o0, o1, (size_t)n * sizeof(float)) == 0);
			ck_assert(o1[n - 1] == x[n - 1] + w[n - 1]);
		}
	/* In place (out aliases x), as forward.c's QK-norm does. */
	memcpy(o1, x, sizeof x);
	mllm__rmsnorm(ni > 0 ? isas[ni - 1] : MLLM__ISA_SCALAR, o1, o1, w, 576, 1e-5f);
	mllm__rmsnorm(MLLM__ISA_SCALAR, o0, x, w, 576, 1e-5f);
	ck_assert(memcmp(o0, o1, 576 * sizeof(float)) == 0);
}
END_TEST

START_TEST(test_rmsnorm_rope)
{
	float x[64], w[64], o[64];
	fill(x, 64, 3.0f);
	fill(w, 64, 1.0f);
	mllm__rmsnorm(MLLM__ISA_SCALAR, o, x, w, 64, 1e-5f);
	double ss = 0.0;
	for (int i = 0; i < 64; i++)
		ss += (double)x[i] * x[i];
	double sc = 1.0 / sqrt(ss / 64 + 1e-5);
	for (int i = 0; i < 64; i++)
		ck_assert(fabs(o[i] - x[i] * sc * w[i]) < 1e-5);

	/* RoPE: both layouts rotate the same pairs by the same angles, they
	 * only differ in which elements form a pair. Two heads of 8. */
	float cs[8], hf[16], il[16];
	for (int i = 0; i < 4; i++) {
		double a = 3.0 * pow(10000.0, -2.0 * i / 8.0);
		cs[i] = (float)cos(a);
		cs[4 + i] = (float)sin(a);
	}
	fill(hf, 16, 1.0f);
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 4; i++) { /* permute HF pairs (i, i+4) to (2i, 2i+1) */
			il[h * 8 + 2 * i] = hf[h * 8 + i];
			il[h * 8 + 2 * i + 1] = hf[h * 8 + i + 4];
		}
	float hf0[16];
	memcpy(hf0, hf, sizeof hf);
	mllm__rope(hf, 2, 8, cs, false);
	mllm__rope(il, 2, 8, cs, true);
	for (int h = 0; h < 2; h++)
		for (int i = 0; i < 4; i++) {
			ck_assert(fabsf(il[h * 8 + 2 * i] - hf[h * 8 + i]) < 1e-6f);
			ck_assert(fabsf(il[h * 8 + 2 * i + 1] - hf[h * 8 + i + 4]) < 1e-6f);
			/* rotation keeps the pair's length */
			float a = hf0[h * 8 + i], b = hf0[h * 8 + i + 4];
			float c = hf[h * 8 + i], d = hf[h * 8 + i + 4];
			ck_assert(fabsf(a * a + b * b - c * c - d * d) < 1e-5f);
			/* first element: a cos - b sin */
			ck_assert(fabsf(c - (a * cs[i] - b * cs[4 + i])) < 1e-6f);
		}
}
END_TEST

START_TEST(test_blas_core_and_sgemm)
{
	/* OpenBLAS is a build dependency: it must load, run a core made for
	 * this CPU, and agree with the reference. */
	ck_assert(mllm__blas_init());
	const char *core = mllm__blas_corename();
	const mllm__cpu_caps *c = mllm__cpu_caps_get();
	const char *env = getenv("OPENBLAS_CORETYPE");
	ck_assert_ptr_nonnull(env); /* set by us before the library loaded */
	ck_assert_msg(strcasecmp(core, env) == 0, "core %s, wanted %s", core, env);
	if (c->avx512f)
		ck_assert_msg(strcasecmp(core, "Prescott") != 0, "OpenBLAS fell back to Prescott");
	printf("OpenBLAS core: %s; %s\n", core, mllm_cpu_describe());

	int M = 37, N = 70, K = 96;
	float *A = xmalloc((size_t)M * K * sizeof(float));
	float *B = xmalloc((size_t)N * K * sizeof(float));
	float *C = xmalloc((size_t)M * N * sizeof(float));
	float *R = xmalloc((size_t)M * N * sizeof(float));
	fill(A, (size_t)M * K, 1.0f);
	fill(B, (size_t)N * K, 1.0f);
	mllm__sgemm_nt(M, N, K, A, K, B, K, C, N);
	mllm__tensor W = {MLLM_DTYPE_F32, N, K, B, MLLM__LAYOUT_GGUF, false};
	mllm__matmul_rows(MLLM__ISA_SCALAR, &W, A, NULL, M, R, N, 0, N);
	for (int i = 0; i < M * N; i++)
		ck_assert_msg(fabsf(C[i] - R[i]) <= 1e-4f * (1 + fabsf(R[i])), "sgemm [%d]", i);
	free(A);
	free(B);
	free(C);
	free(R);
}
END_TEST

START_TEST(test_physical_cores)
{
	int pc = mllm__cpu_physical_cores();
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	ck_assert_int_ge(pc, 1);
	ck_assert_int_le(pc, online);
}
END_TEST

/* MLLM_REF_KERNELS=1 forces the scalar reference (read once per process;
 * each test runs in a fresh fork). */
START_TEST(test_ref_kernels_env)
{
	setenv("MLLM_REF_KERNELS", "1", 1);
	ck_assert_int_eq(mllm__cpu_isa(), MLLM__ISA_SCALAR);
	ck_assert_ptr_nonnull(strstr(mllm_cpu_describe(), "MLLM_REF_KERNELS"));
}
END_TEST

/* MLLM_ISA=avx2 caps an AVX-512 machine at the AVX2 tier, and says so;
 * it never raises a tier. */
START_TEST(test_isa_cap_env)
{
	setenv("MLLM_ISA", "avx2", 1);
	const mllm__cpu_caps *c = mllm__cpu_caps_get();
	bool has512 =
	    c->avx512f && c->avx512bw && c->avx512vl && c->avx512vnni && c->avx2 && c->fma;
	bool has2 = c->avx2 && c->fma && c->f16c;
	ck_assert_int_eq(mllm__cpu_isa(), has512 || has2 ? MLLM__ISA_AVX2 : MLLM__ISA_SCALAR);
	if (has512)
		ck_assert_ptr_nonnull(strstr(mllm_cpu_describe(), "avx2-fma (MLLM_ISA)"));
}
END_TEST

typedef struct {
	int *hits;
	int64_t *seen_tid;
	int64_t *call_start; /* i0 of the call that ran item i */
	int64_t *call_end;
	_Atomic int calls;
} pool_arg;

static void mark(void *a, int64_t i0, int64_t i1, int tid)
{
	pool_arg *p = a;
	for (int64_t i = i0; i < i1; i++) {
		p->hits[i]++;
		p->seen_tid[i] = tid;
		p->call_start[i] = i0;
		p->call_end[i] = i1;
	}
	atomic_fetch_add(&p->calls, 1);
}

/* Every item exactly once, in calls of whole chunks of the size
 * mllm__pool_chunk() gives (aligned, the last one cut at n). */
static void check_chunks(const pool_arg *a, int64_t n, int64_t chunk)
{
	for (int64_t i = 0; i < n; i++) {
		ck_assert_int_eq(a->hits[i], 1);
		ck_assert_int_eq(a->call_start[i], i / chunk * chunk);
		ck_assert_int_eq(a->call_end[i],
		                 i / chunk * chunk + chunk < n ? i / chunk * chunk + chunk : n);
	}
	ck_assert_int_eq(atomic_load(&a->calls), (int)((n + chunk - 1) / chunk));
}

START_TEST(test_pool)
{
	mllm__pool *p;
	ck_assert_int_eq(mllm__pool_create(3, &p), 0);
	ck_assert_int_eq(mllm__pool_size(p), 3);
	static int hits[1000];
	static int64_t tids[1000], starts[1000], ends[1000];
	pool_arg a = {hits, tids, starts, ends, 0};
	for (int round = 0; round < 200; round++) {
		int n = 1 + (round * 37) % 1000;
		memset(hits, 0, sizeof hits);
		atomic_store(&a.calls, 0);
		mllm__parallel_for(p, n, 4, 4, mark, &a);
		check_chunks(&a, n, mllm__pool_chunk(3, n, 4, 4));
		for (int i = n; i < 1000; i++)
			ck_assert_int_eq(hits[i], 0);
	}
	/* Below 2 * grain it runs on the caller only, in one call. */
	memset(hits, 0, sizeof hits);
	atomic_store(&a.calls, 0);
	mllm__parallel_for(p, 10, 8, 1, mark, &a);
	ck_assert_int_eq(atomic_load(&a.calls), 1);
	for (int i = 0; i < 10; i++)
		ck_assert(hits[i] == 1 && tids[i] == 0);
	/* Chunk sizes: aligned, at least the grain, a few per thread. */
	ck_assert_int_eq(mllm__pool_chunk(1, 999, 4, 16), 999);
	ck_assert_int_eq(mllm__pool_chunk(3, 999, 4, 16), 48); /* 999 / 24 -> 42 -> 48 */
	ck_assert_int_eq(mllm__pool_chunk(3, 999, 100, 16), 112);
	ck_assert_int_eq(mllm__pool_chunk(2, 7, 4, 1), 7);
	ck_assert_int_eq(mllm__pool_chunk(2, 8, 4, 1), 4);
	memset(hits, 0, sizeof hits);
	atomic_store(&a.calls, 0);
	mllm__parallel_for(p, 999, 4, 16, mark, &a);
	check_chunks(&a, 999, 48);
	/* Workers asleep after a pause still wake. */
	usleep(20000);
	memset(hits, 0, sizeof hits);
	atomic_store(&a.calls, 0);
	mllm__parallel_for(p, 999, 4, 1, mark, &a);
	check_chunks(&a, 999, mllm__pool_chunk(3, 999, 4, 1));
	mllm__pool_free(p);
	mllm__pool_free(NULL);
}
END_TEST

/* A thread that stops inside its chunk holds up only that chunk: the one
 * that gets chunk 0 waits there until every other chunk is done, which
 * the other threads (the caller or the workers) must do without it. */
typedef struct {
	int64_t chunk, n_chunks;
	_Atomic int64_t done;
	_Atomic int ran[3];
	_Atomic int held_up; /* the others stopped short of chunk 0 */
} stall_arg;

static void stall(void *arg, int64_t i0, int64_t i1, int tid)
{
	stall_arg *s = arg;
	(void)i1;
	atomic_fetch_add(&s->ran[tid], 1);
	if (i0 == 0) {
		for (int t = 0; t < 20000 && atomic_load(&s->done) < s->n_chunks - 1; t++)
			usleep(100);
		if (atomic_load(&s->done) != s->n_chunks - 1)
			atomic_store(&s->held_up, 1);
	}
	atomic_fetch_add(&s->done, 1);
}

START_TEST(test_pool_stalled_thread)
{
	mllm__pool *p;
	ck_assert_int_eq(mllm__pool_create(3, &p), 0);
	for (int round = 0; round < 20; round++) {
		stall_arg s = {.chunk = mllm__pool_chunk(3, 600, 1, 1)};
		s.n_chunks = (600 + s.chunk - 1) / s.chunk;
		ck_assert_int_gt(s.n_chunks, 3);
		mllm__parallel_for(p, 600, 1, 1, stall, &s);
		ck_assert_int_eq(atomic_load(&s.held_up), 0);
		ck_assert_int_eq(atomic_load(&s.done), s.n_chunks);
		ck_assert_int_eq(atomic_load(&s.ran[0]) + atomic_load(&s.ran[1]) +
		                     atomic_load(&s.ran[2]),
		                 s.n_chunks);
	}
	mllm__pool_free(p);
}
END_TEST

/* Each thread walks its own run of chunks front to back, contiguously
 * (what lets a kernel look past its chunk into the thread's next one), and
 * takes the others' from their backs; whoever runs what, every chunk runs
 * once. The last chunks sleep a little so that stealing happens. */
#define RUN_N     999
#define RUN_CHUNK 48
typedef struct {
	_Atomic int order[3][32]; /* chunk indices each thread ran, in order */
	_Atomic int len[3];
	_Atomic int ran[32];
} run_arg;

static void run_mark(void *arg, int64_t i0, int64_t i1, int tid)
{
	run_arg *r = arg;
	int k = (int)(i0 / RUN_CHUNK);
	if (i0 % RUN_CHUNK || i1 != (i0 + RUN_CHUNK < RUN_N ? i0 + RUN_CHUNK : RUN_N))
		k = 31; /* not a chunk: counted in ran[31], which must stay 0 */
	int at = atomic_fetch_add(&r->len[tid], 1);
	atomic_store(&r->order[tid][at], k);
	atomic_fetch_add(&r->ran[k], 1);
	if (tid == 1)
		usleep(300); /* one slow thread: its run's back goes to the others */
}

START_TEST(test_pool_runs)
{
	mllm__pool *p;
	ck_assert_int_eq(mllm__pool_create(3, &p), 0);
	int64_t chunk = mllm__pool_chunk(3, RUN_N, 4, 16);
	ck_assert_int_eq(chunk, RUN_CHUNK);
	int count = (RUN_N + RUN_CHUNK - 1) / RUN_CHUNK; /* 21: runs of 7 */
	int stolen_from_1 = 0;
	for (int round = 0; round < 10; round++) {
		run_arg r;
		memset(&r, 0, sizeof r);
		mllm__parallel_for(p, RUN_N, 4, 16, run_mark, &r);
		for (int k = 0; k < 32; k++)
			ck_assert_int_eq(atomic_load(&r.ran[k]), k < count);
		for (int t = 0; t < 3; t++) {
			int lo = count * t / 3, hi = count * (t + 1) / 3,
			    n = atomic_load(&r.len[t]);
			int i = 0, last_stolen[3] = {INT32_MAX, INT32_MAX, INT32_MAX};
			/* Its own run's chunks first, from the front, one after the
			 * other... */
			while (i < n && atomic_load(&r.order[t][i]) == lo + i)
				i++;
			ck_assert_int_le(lo + i, hi);
			/* ...then others' chunks, each run's from the back. */
			for (; i < n; i++) {
				int k = atomic_load(&r.order[t][i]), o = k * 3 / count;
				ck_assert_int_ne(o, t);
				ck_assert_int_lt(k, last_stolen[o]);
				last_stolen[o] = k;
				stolen_from_1 += o == 1;
			}
		}
	}
	/* The slow thread's run was shared out at least once. */
	ck_assert_int_gt(stolen_from_1, 0);
	mllm__pool_free(p);
}
END_TEST

static Suite *make_suite(void)
{
	Suite *s = suite_create("kernels");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_f16_roundtrip);
	tcase_add_test(tc, test_f16_row);
	tcase_add_test(tc, test_quantize_q8_0);
	tcase_add_test(tc, test_quantize_qa_tiers);
	tcase_add_test(tc, test_matmul_float);
	tcase_add_test(tc, test_matmul_quant);
	tcase_add_test(tc, test_matmul_batch_exact);
	tcase_add_test(tc, test_matmul_act8);
	tcase_add_test(tc, test_vector_kernels);
	tcase_add_test(tc, test_sampling_kernels);
	tcase_add_test(tc, test_argmax_tiers);
	tcase_add_test(tc, test_attn_kernels);
	tcase_add_test(tc, test_attn_tile_exact);
	tcase_add_test(tc, test_q8_head);
	tcase_add_test(tc, test_attn_tile_q8_exact);
	tcase_add_test(tc, test_rmsnorm_tiers);
	tcase_add_test(tc, test_rmsnorm_rope);
	tcase_add_test(tc, test_blas_core_and_sgemm);
	tcase_add_test(tc, test_pool);
	tcase_add_test(tc, test_pool_stalled_thread);
	tcase_add_test(tc, test_pool_runs);
	tcase_add_test(tc, test_physical_cores);
	tcase_add_test(tc, test_ref_kernels_env);
	tcase_add_test(tc, test_isa_cap_env);
	suite_add_tcase(s, tc);
	return s;
}

MLLM_TEST_MAIN(make_suite)
