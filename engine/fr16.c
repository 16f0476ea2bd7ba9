/*
 * fr16.c — F32 / F16 / BF16 weights laid across 16 rows ("fr16") and their
 * products.
 *
 * In the GGUF layout a float product is a dot product per (row, token):
 * each 16-column slice of a row meets a slice of the token's activations
 * in one vector, and every (row, token) ends in a horizontal sum. Here a
 * group of 16 rows is stored column by column, [cols][16] (element i of
 * column k = row i's weight k), so lane i of a vector is row i: a token's
 * activation x[k] enters as a broadcast (embedded in the multiply-add), one
 * weight vector serves every token of the tile, no sum crosses lanes, and
 * a token's 16 outputs are one store. The AVX-512 tile is 4 groups (64
 * rows) x 6 tokens: 24 accumulators, 4 weight vectors and 6 broadcasts per
 * column for 24 multiply-adds, where the dot-product tile loaded 10 vectors
 * for 24 and then reduced 24 accumulators.
 *
 * A group is 16 * row_bytes bytes (the file's size: rows must be a multiple
 * of 16; any column count). Per (row, token) the result is the sum over
 * columns in order, y = fma(w[k], x[k], y) from k = 0 with y = 0: the same
 * bits on every tier (the scalar reference with fmaf, AVX2 in halves of a
 * group, AVX-512), whatever the tile, the token count or the row range:
 * results do not depend on the batch.
 */
#include "kernels.h"
#include "simd.h"

#include <math.h>

#define FR16_ROWS 16

/* Tokens per AVX-512 tile (4 groups x 6 tokens = 24 accumulators) and per
 * AVX2 tile (one group in two halves x 6 tokens = 12). */
#define FR_TILE_T 6
#define FR_TILE_G 4

/* Weight bytes per row block: a block stays in L2 (1-2 MiB a core) while
 * every 6-token tile passes over it; a tile's activations (6 x cols
 * floats) stay in L1. */
#ifndef FR_BLOCK_BYTES
#define FR_BLOCK_BYTES (256 * 1024)
#endif

static size_t elt_size(mllm_dtype t)
{
	return t == MLLM_DTYPE_F32 ? 4 : 2;
}

bool mllm__fr16_packable(mllm_dtype t, int64_t rows, int64_t cols)
{
	return (t == MLLM_DTYPE_F32 || t == MLLM_DTYPE_F16 || t == MLLM_DTYPE_BF16) && rows > 0 &&
	       rows % FR16_ROWS == 0 && cols > 0;
}

void mllm__fr16_pack_group(mllm_dtype t, const void *src, int64_t cols, void *dst)
{
	/* a transpose of 16 x cols elements: element types as such, so the
	 * copies are moves, not a memcpy call each (seconds for a 1B model) */
	if (elt_size(t) == 4) {
		const uint32_t *s = src;
		uint32_t *o = dst;
		for (int i = 0; i < FR16_ROWS; i++)
			for (int64_t k = 0; k < cols; k++)
				o[k * FR16_ROWS + i] = s[(int64_t)i * cols + k];
		return;
	}
	const uint16_t *s = src;
	uint16_t *o = dst;
	for (int i = 0; i < FR16_ROWS; i++)
		for (int64_t k = 0; k < cols; k++)
			o[k * FR16_ROWS + i] = s[(int64_t)i * cols + k];
}

/* Element k of row r of an FR16 weight, as f32 (exact). */
static inline float fr16_at(mllm_dtype t, const void *data, int64_t cols, int64_t r, int64_t k)
{
	size_t idx = (size_t)(r / FR16_ROWS) * FR16_ROWS * (size_t)cols + (size_t)k * FR16_ROWS +
	             (size_t)(r % FR16_ROWS);
	if (t == MLLM_DTYPE_F32)
		return ((const float *)data)[idx];
	uint16_t h = ((const uint16_t *)data)[idx];
	return t == MLLM_DTYPE_F16 ? mllm__f16_to_f32(h) : mllm__bf16_to_f32(h);
}

void mllm__fr16_dequant_row(mllm_dtype t, const void *data, int64_t cols, int64_t r,
                            float *restrict out)
{
	/* the row is every 16th element of its group, from lane r % 16 */
	size_t i0 = (size_t)(r / FR16_ROWS) * FR16_ROWS * (size_t)cols + (size_t)(r % FR16_ROWS);
	if (t == MLLM_DTYPE_F32) {
		const float *p = (const float *)data + i0;
		for (int64_t k = 0; k < cols; k++)
			out[k] = p[k * FR16_ROWS];
		return;
	}
	const uint16_t *h = (const uint16_t *)data + i0;
	if (t == MLLM_DTYPE_F16)
		for (int64_t k = 0; k < cols; k++)
			out[k] = mllm__f16_to_f32(h[k * FR16_ROWS]);
	else
		for (int64_t k = 0; k < cols; k++)
			out[k] = mllm__bf16_to_f32(h[k * FR16_ROWS]);
}

/* The reference: one (row, token) at a time, in the kernels' order. */
void mllm__fr16_matmul_ref(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                           float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t cols = W->cols;
	for (int64_t r = r0; r < r1; r++)
		for (int64_t t = 0; t < n_tok; t++) {
			float s = 0.0f;
			for (int64_t k = 0; k < cols; k++)
				s = fmaf(fr16_at(W->dtype, W->data, cols, r, k), x[t * cols + k],
				         s);
			y[t * ldy + r] = s;
		}
}

#ifdef MLLM_X86

/* ---- AVX-512 ------------------------------------------------------------- */

/* Column k of the group at p: its 16 weights as f32. */
T_AVX512 static inline __m512 fr_load512(mllm_dtype t, const void *p, int64_t k)
{
	return mllm__load16(t, p, k * FR16_ROWS);
}

/* NG groups (at w, gstride bytes apart) x NT tokens (x, ldx floats apart),
 * columns 0 .. kn: y[t * ldy + 16 g + i] for each, starting from zero or,
 * with acc_y, from what y holds (the sum over the columns before: stored
 * and reloaded exactly, so a product in column chunks is the same bits). */
T_AVX512 static inline __attribute__((always_inline)) void
fr_tile512(mllm_dtype t, int NG, int NT, const uint8_t *w, size_t gstride, const float *restrict x,
           int64_t ldx, int64_t kn, bool acc_y, float *restrict y, int64_t ldy)
{
	__m512 acc[FR_TILE_G][FR_TILE_T];
#pragma GCC unroll 4
	for (int g = 0; g < NG; g++)
#pragma GCC unroll 6
		for (int k = 0; k < NT; k++)
			acc[g][k] = acc_y ? _mm512_loadu_ps(y + k * ldy + g * FR16_ROWS)
			                  : _mm512_setzero_ps();
	for (int64_t c = 0; c < kn; c++) {
		__m512 wv[FR_TILE_G];
#pragma GCC unroll 4
		for (int g = 0; g < NG; g++)
			wv[g] = fr_load512(t, w + (size_t)g * gstride, c);
#pragma GCC unroll 6
		for (int k = 0; k < NT; k++) {
			__m512 xb = _mm512_set1_ps(x[k * ldx + c]);
#pragma GCC unroll 4
			for (int g = 0; g < NG; g++)
				acc[g][k] = _mm512_fmadd_ps(wv[g], xb, acc[g][k]);
		}
	}
#pragma GCC unroll 4
	for (int g = 0; g < NG; g++)
#pragma GCC unroll 6
		for (int k = 0; k < NT; k++)
			_mm512_storeu_ps(y + k * ldy + g * FR16_ROWS, acc[g][k]);
}

T_AVX512 static inline __attribute__((always_inline)) void
fr_tile512_n(mllm_dtype t, int NG, int64_t nt, const uint8_t *w, size_t gstride,
             const float *restrict x, int64_t ldx, int64_t kn, bool acc_y, float *restrict y,
             int64_t ldy)
{
	switch (nt) {
	case 6:
		fr_tile512(t, NG, 6, w, gstride, x, ldx, kn, acc_y, y, ldy);
		break;
	case 5:
		fr_tile512(t, NG, 5, w, gstride, x, ldx, kn, acc_y, y, ldy);
		break;
	case 4:
		fr_tile512(t, NG, 4, w, gstride, x, ldx, kn, acc_y, y, ldy);
		break;
	case 3:
		fr_tile512(t, NG, 3, w, gstride, x, ldx, kn, acc_y, y, ldy);
		break;
	case 2:
		fr_tile512(t, NG, 2, w, gstride, x, ldx, kn, acc_y, y, ldy);
		break;
	default:
		fr_tile512(t, NG, 1, w, gstride, x, ldx, kn, acc_y, y, ldy);
		break;
	}
}

/* 16-bit weights over FR_CVT_MIN_TOK tokens or more: a set of up to four
 * groups is converted to f32 once per chunk of FR_KC columns (into the
 * stack, 128 KiB) and every token tile runs the f32 kernel on it, instead
 * of each tile converting again (vcvtph2ps shares the multiply-add ports:
 * 4 of them beside 24 multiply-adds a column). Chunks continue each sum
 * from y, so the bits are those of the direct kernel. Measured on one
 * Ice Lake core, 16-bit 1536 x 576 weights: 41 tokens 147 against 127
 * GFLOP/s direct, 512 tokens 167 against 135; at 24 tokens and fewer the
 * copy costs more than it saves (125 against 135). */
#define FR_KC          512
#define FR_CVT_MIN_TOK 32
T_AVX512 static inline __attribute__((always_inline)) void
fr_groups512_cvt(mllm_dtype t, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                 float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	int64_t cols = W->cols;
	size_t gstride = FR16_ROWS * (size_t)cols * elt_size(t);
	const uint8_t *base = W->data;
	float buf[FR_TILE_G * FR_KC * FR16_ROWS] __attribute__((aligned(64)));
	for (int64_t g = g0; g < g1; g += FR_TILE_G) {
		int ng = g1 - g < FR_TILE_G ? (int)(g1 - g) : FR_TILE_G;
		for (int64_t c0 = 0; c0 < cols; c0 += FR_KC) {
			int64_t kn = cols - c0 < FR_KC ? cols - c0 : FR_KC;
			for (int i = 0; i < ng; i++) {
				const uint8_t *src = base + (size_t)(g + i) * gstride;
				float *dst = buf + (size_t)i * (size_t)kn * FR16_ROWS;
				for (int64_t c = 0; c < kn; c++)
					_mm512_store_ps(dst + c * FR16_ROWS,
					                fr_load512(t, src, c0 + c));
			}
			size_t bstride = (size_t)kn * FR16_ROWS * sizeof(float);
			for (int64_t k = 0; k < n_tok; k += FR_TILE_T) {
				int64_t nt = n_tok - k < FR_TILE_T ? n_tok - k : FR_TILE_T;
				const float *xk = x + k * cols + c0;
				float *yk = y + k * ldy + g * FR16_ROWS;
				if (ng == FR_TILE_G)
					fr_tile512_n(MLLM_DTYPE_F32, FR_TILE_G, nt,
					             (const uint8_t *)buf, bstride, xk, cols, kn,
					             c0 > 0, yk, ldy);
				else
					for (int i = 0; i < ng; i++)
						fr_tile512_n(MLLM_DTYPE_F32, 1, nt,
						             (const uint8_t *)buf +
						                 (size_t)i * bstride,
						             bstride, xk, cols, kn, c0 > 0,
						             yk + i * FR16_ROWS, ldy);
			}
		}
	}
}

/* Groups g0 .. g1 (whole ones), all tokens: rows in blocks of
 * FR_BLOCK_BYTES, each 6-token tile passing over a block's groups 4 at a
 * time. One copy per weight type (the type tests fold away). */
T_AVX512 static inline __attribute__((always_inline)) void
fr_groups512(mllm_dtype t, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
             float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	int64_t cols = W->cols;
	size_t gstride = FR16_ROWS * (size_t)cols * elt_size(t);
	const uint8_t *base = W->data;
	int64_t block = (int64_t)(FR_BLOCK_BYTES / gstride) & ~(int64_t)(FR_TILE_G - 1);
	if (block < FR_TILE_G)
		block = FR_TILE_G;
	for (int64_t b0 = g0; b0 < g1; b0 += block) {
		int64_t b1 = g1 - b0 < block ? g1 : b0 + block;
		for (int64_t k = 0; k < n_tok; k += FR_TILE_T) {
			int64_t nt = n_tok - k < FR_TILE_T ? n_tok - k : FR_TILE_T;
			const float *xk = x + k * cols;
			float *yk = y + k * ldy;
			int64_t g = b0;
			for (; g + FR_TILE_G <= b1; g += FR_TILE_G)
				fr_tile512_n(t, FR_TILE_G, nt, base + (size_t)g * gstride, gstride,
				             xk, cols, cols, false, yk + g * FR16_ROWS, ldy);
			for (; g < b1; g++)
				fr_tile512_n(t, 1, nt, base + (size_t)g * gstride, gstride, xk,
				             cols, cols, false, yk + g * FR16_ROWS, ldy);
		}
	}
}

T_AVX512 static void fr_groups512_f32(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                                      float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	fr_groups512(MLLM_DTYPE_F32, W, x, n_tok, y, ldy, g0, g1);
}

T_AVX512 static void fr_groups512_f16(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                                      float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	if (n_tok >= FR_CVT_MIN_TOK)
		fr_groups512_cvt(MLLM_DTYPE_F16, W, x, n_tok, y, ldy, g0, g1);
	else
		fr_groups512(MLLM_DTYPE_F16, W, x, n_tok, y, ldy, g0, g1);
}

T_AVX512 static void fr_groups512_bf16(const mllm__tensor *W, const float *restrict x,
                                       int64_t n_tok, float *restrict y, int64_t ldy, int64_t g0,
                                       int64_t g1)
{
	if (n_tok >= FR_CVT_MIN_TOK)
		fr_groups512_cvt(MLLM_DTYPE_BF16, W, x, n_tok, y, ldy, g0, g1);
	else
		fr_groups512(MLLM_DTYPE_BF16, W, x, n_tok, y, ldy, g0, g1);
}

/* ---- AVX2: a group as two halves of 8 rows -------------------------------- */

/* One group x NT tokens (x, ldx floats apart), columns 0 .. kn: 2 * NT
 * accumulators, from zero or (acc_y) from y, as fr_tile512. */
T_AVX2 static inline __attribute__((always_inline)) void
fr_tile256(mllm_dtype t, int NT, const uint8_t *w, const float *restrict x, int64_t ldx, int64_t kn,
           bool acc_y, float *restrict y, int64_t ldy)
{
	__m256 lo[FR_TILE_T], hi[FR_TILE_T];
#pragma GCC unroll 6
	for (int k = 0; k < NT; k++) {
		lo[k] = acc_y ? _mm256_loadu_ps(y + k * ldy) : _mm256_setzero_ps();
		hi[k] = acc_y ? _mm256_loadu_ps(y + k * ldy + 8) : _mm256_setzero_ps();
	}
	for (int64_t c = 0; c < kn; c++) {
		__m256 w0 = mllm__load8(t, w, c * FR16_ROWS);
		__m256 w1 = mllm__load8(t, w, c * FR16_ROWS + 8);
#pragma GCC unroll 6
		for (int k = 0; k < NT; k++) {
			__m256 xb = _mm256_set1_ps(x[k * ldx + c]);
			lo[k] = _mm256_fmadd_ps(w0, xb, lo[k]);
			hi[k] = _mm256_fmadd_ps(w1, xb, hi[k]);
		}
	}
#pragma GCC unroll 6
	for (int k = 0; k < NT; k++) {
		_mm256_storeu_ps(y + k * ldy, lo[k]);
		_mm256_storeu_ps(y + k * ldy + 8, hi[k]);
	}
}

T_AVX2 static inline __attribute__((always_inline)) void
fr_tile256_n(mllm_dtype t, int64_t nt, const uint8_t *w, const float *restrict x, int64_t ldx,
             int64_t kn, bool acc_y, float *restrict y, int64_t ldy)
{
	switch (nt) {
	case 6:
		fr_tile256(t, 6, w, x, ldx, kn, acc_y, y, ldy);
		break;
	case 5:
		fr_tile256(t, 5, w, x, ldx, kn, acc_y, y, ldy);
		break;
	case 4:
		fr_tile256(t, 4, w, x, ldx, kn, acc_y, y, ldy);
		break;
	case 3:
		fr_tile256(t, 3, w, x, ldx, kn, acc_y, y, ldy);
		break;
	case 2:
		fr_tile256(t, 2, w, x, ldx, kn, acc_y, y, ldy);
		break;
	default:
		fr_tile256(t, 1, w, x, ldx, kn, acc_y, y, ldy);
		break;
	}
}

T_AVX2 static inline __attribute__((always_inline)) void
fr_groups256(mllm_dtype t, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
             float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	int64_t cols = W->cols;
	size_t gstride = FR16_ROWS * (size_t)cols * elt_size(t);
	const uint8_t *base = W->data;
	int64_t block = (int64_t)(FR_BLOCK_BYTES / gstride);
	if (block < 1)
		block = 1;
	for (int64_t b0 = g0; b0 < g1; b0 += block) {
		int64_t b1 = g1 - b0 < block ? g1 : b0 + block;
		for (int64_t k = 0; k < n_tok; k += FR_TILE_T) {
			int64_t nt = n_tok - k < FR_TILE_T ? n_tok - k : FR_TILE_T;
			for (int64_t g = b0; g < b1; g++)
				fr_tile256_n(t, nt, base + (size_t)g * gstride, x + k * cols, cols,
				             cols, false, y + k * ldy + g * FR16_ROWS, ldy);
		}
	}
}

/* The AVX2 counterpart of fr_groups512_cvt: sets of up to four groups,
 * converted a 512-column chunk at a time, every token tile running the f32
 * kernel over the set's groups (its activations stay in L1 for all four). */
T_AVX2 static inline __attribute__((always_inline)) void
fr_groups256_cvt(mllm_dtype t, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                 float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	int64_t cols = W->cols;
	size_t gstride = FR16_ROWS * (size_t)cols * elt_size(t);
	const uint8_t *base = W->data;
	float buf[FR_TILE_G * FR_KC * FR16_ROWS] __attribute__((aligned(64)));
	for (int64_t g = g0; g < g1; g += FR_TILE_G) {
		int ng = g1 - g < FR_TILE_G ? (int)(g1 - g) : FR_TILE_G;
		for (int64_t c0 = 0; c0 < cols; c0 += FR_KC) {
			int64_t kn = cols - c0 < FR_KC ? cols - c0 : FR_KC;
			for (int i = 0; i < ng; i++) {
				const uint8_t *src = base + (size_t)(g + i) * gstride;
				float *dst = buf + (size_t)i * (size_t)kn * FR16_ROWS;
				for (int64_t c = 0; c < kn; c++) {
					_mm256_store_ps(dst + c * FR16_ROWS,
					                mllm__load8(t, src, (c0 + c) * FR16_ROWS));
					_mm256_store_ps(
					    dst + c * FR16_ROWS + 8,
					    mllm__load8(t, src, (c0 + c) * FR16_ROWS + 8));
				}
			}
			size_t bstride = (size_t)kn * FR16_ROWS * sizeof(float);
			for (int64_t k = 0; k < n_tok; k += FR_TILE_T) {
				int64_t nt = n_tok - k < FR_TILE_T ? n_tok - k : FR_TILE_T;
				for (int i = 0; i < ng; i++)
					fr_tile256_n(MLLM_DTYPE_F32, nt,
					             (const uint8_t *)buf + i * bstride,
					             x + k * cols + c0, cols, kn, c0 > 0,
					             y + k * ldy + (g + i) * FR16_ROWS, ldy);
			}
		}
	}
}

T_AVX2 static void fr_groups256_f32(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                                    float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	fr_groups256(MLLM_DTYPE_F32, W, x, n_tok, y, ldy, g0, g1);
}

T_AVX2 static void fr_groups256_f16(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                                    float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	if (n_tok >= FR_CVT_MIN_TOK)
		fr_groups256_cvt(MLLM_DTYPE_F16, W, x, n_tok, y, ldy, g0, g1);
	else
		fr_groups256(MLLM_DTYPE_F16, W, x, n_tok, y, ldy, g0, g1);
}

T_AVX2 static void fr_groups256_bf16(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                                     float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
	if (n_tok >= FR_CVT_MIN_TOK)
		fr_groups256_cvt(MLLM_DTYPE_BF16, W, x, n_tok, y, ldy, g0, g1);
	else
		fr_groups256(MLLM_DTYPE_BF16, W, x, n_tok, y, ldy, g0, g1);
}

#endif /* MLLM_X86 */

/* Whole groups g0 .. g1 on the tier's kernel. */
static void fr_groups(mllm__isa isa, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                      float *restrict y, int64_t ldy, int64_t g0, int64_t g1)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		if (W->dtype == MLLM_DTYPE_F32)
			fr_groups512_f32(W, x, n_tok, y, ldy, g0, g1);
		else if (W->dtype == MLLM_DTYPE_F16)
			fr_groups512_f16(W, x, n_tok, y, ldy, g0, g1);
		else
			fr_groups512_bf16(W, x, n_tok, y, ldy, g0, g1);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		if (W->dtype == MLLM_DTYPE_F32)
			fr_groups256_f32(W, x, n_tok, y, ldy, g0, g1);
		else if (W->dtype == MLLM_DTYPE_F16)
			fr_groups256_f16(W, x, n_tok, y, ldy, g0, g1);
		else
			fr_groups256_bf16(W, x, n_tok, y, ldy, g0, g1);
		return;
	}
#endif
	mllm__fr16_matmul_ref(W, x, n_tok, y, ldy, g0 * FR16_ROWS, g1 * FR16_ROWS);
}

void mllm__fr16_matmul(mllm__isa isa, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                       float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	if (isa == MLLM__ISA_SCALAR || r1 <= r0) {
		mllm__fr16_matmul_ref(W, x, n_tok, y, ldy, r0, r1);
		return;
	}
	/* Whole groups on the kernel; a range that starts or ends inside a
	 * group (the pool cuts on multiples of 16, so only direct callers)
	 * takes those rows from the reference, which gives the same bits. */
	int64_t g0 = (r0 + FR16_ROWS - 1) / FR16_ROWS, g1 = r1 / FR16_ROWS;
	if (g1 <= g0) {
		mllm__fr16_matmul_ref(W, x, n_tok, y, ldy, r0, r1);
		return;
	}
	if (r0 < g0 * FR16_ROWS)
		mllm__fr16_matmul_ref(W, x, n_tok, y, ldy, r0, g0 * FR16_ROWS);
	fr_groups(isa, W, x, n_tok, y, ldy, g0, g1);
	if (r1 > g1 * FR16_ROWS)
		mllm__fr16_matmul_ref(W, x, n_tok, y, ldy, g1 * FR16_ROWS, r1);
}
