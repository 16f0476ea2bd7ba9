/*
 * kernels.c — the matrix products for F32/F16/BF16/Q8_0/Q4_0 weights and
 * the activation quantization they use. The row kernels (RMSNorm, RoPE,
 * softmax, SwiGLU, dot, axpy) live in vec.c, the attention kernels (scores
 * over K blocks, sums of V rows) in attn.c.
 *
 * Each is a scalar reference plus SIMD paths (__attribute__((target)),
 * picked at run time by the caller's mllm__isa; MLLM_REF_KERNELS=1 forces
 * the reference). Quantized weights meet activations quantized to 16 bits
 * once per matmul. The SIMD matmuls tile weight rows x tokens, so a batched
 * step loads each weight block once, and each (row, token) result is
 * bit-identical to that token computed alone.
 */
#include "kernels.h"
#include "simd.h"

#include <math.h>
#include <pthread.h>

/* Weight rows prefetched ahead of the float GEMV (one 4-row group). */
#ifndef PF_ROWS
#define PF_ROWS 4
#endif

/* Tokens per register tile of the multi-token kernels (AVX-512: 4 x 4
 * accumulators for the integer products, 4 x 6 for float weights). */
#define TILE_T  4
#define TILE_TF 6

/* Weight bytes per row block of the float products (AVX-512): a block
 * stays in L2 (1-2 MiB a core) while every token tile passes over it. */
#ifndef F_ROW_BLOCK_BYTES
#define F_ROW_BLOCK_BYTES (256 * 1024)
#endif
/* Tokens per cache block of the AVX2 float products: every row of the
 * call against F_TOK_BLOCK tokens, then the next block, so that a block's
 * activations (48 x 1536 floats: 288 KiB) stay in L2 across the rows
 * instead of streaming all n tokens' from L3 once per 4 rows. */
#ifndef F_TOK_BLOCK
#define F_TOK_BLOCK 48
#endif

size_t mllm__row_bytes(mllm_dtype t, int64_t cols)
{
	switch (t) {
	case MLLM_DTYPE_F32:
		return (size_t)cols * 4;
	case MLLM_DTYPE_F16:
	case MLLM_DTYPE_BF16:
		return (size_t)cols * 2;
	case MLLM_DTYPE_Q8_0:
		return (size_t)(cols / MLLM__QK) * sizeof(mllm__block_q8_0);
	case MLLM_DTYPE_Q4_0:
		return (size_t)(cols / MLLM__QK) * sizeof(mllm__block_q4_0);
	default:
		return 0;
	}
}

/* ---- Quantization ------------------------------------------------------ */

void mllm__quantize_q8_0(const float *restrict x, int64_t n, mllm__block_q8_0 *restrict out)
{
	for (int64_t b = 0; b < n / MLLM__QK; b++) {
		const float *v = x + b * MLLM__QK;
		float amax = 0.0f;
		for (int j = 0; j < MLLM__QK; j++)
			amax = fmaxf(amax, fabsf(v[j]));
		float d = amax / 127.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		out[b].d = mllm__f32_to_f16(d);
		for (int j = 0; j < MLLM__QK; j++)
			out[b].qs[j] = (int8_t)roundf(v[j] * id);
	}
}

static void quantize_qa_scalar(const float *restrict x, int64_t cols, mllm__block_qa *restrict out)
{
	for (int64_t b = 0; b < cols / MLLM__QK; b++) {
		const float *v = x + b * MLLM__QK;
		float amax = 0.0f;
		for (int j = 0; j < MLLM__QK; j++)
			amax = fmaxf(amax, fabsf(v[j]));
		float d = amax / 32767.0f;
		float id = d != 0.0f ? 32767.0f / amax : 0.0f;
		out[b].d = d;
		for (int j = 0; j < MLLM__QK; j++)
			out[b].qs[j] = (int16_t)lrintf(v[j] * id);
	}
}

#ifdef MLLM_X86
T_AVX512 static void quantize_qa_avx512(const float *restrict x, int64_t cols,
                                        mllm__block_qa *restrict out)
{
	for (int64_t b = 0; b < cols / MLLM__QK; b++) {
		__m512 v0 = _mm512_loadu_ps(x + b * 32);
		__m512 v1 = _mm512_loadu_ps(x + b * 32 + 16);
		__m512 a = _mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1));
		float amax = _mm512_reduce_max_ps(a);
		float d = amax / 32767.0f;
		float id = d != 0.0f ? 32767.0f / amax : 0.0f;
		__m512 s = _mm512_set1_ps(id);
		/* cvtps rounds to nearest even, like lrintf */
		__m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, s));
		__m512i q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, s));
		out[b].d = d;
		_mm256_storeu_si256((__m256i *)out[b].qs, _mm512_cvtsepi32_epi16(q0));
		_mm256_storeu_si256((__m256i *)(out[b].qs + 16), _mm512_cvtsepi32_epi16(q1));
	}
}

/* The scalar path's values exactly: the maximum is exact in any order,
 * d and its inverse are the same scalar divisions, and cvtps rounds to
 * nearest even, like lrintf (|v * id| <= 32767, so the saturating packs
 * never saturate). */
T_AVX2 static void quantize_qa_avx2(const float *restrict x, int64_t cols,
                                    mllm__block_qa *restrict out)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t b = 0; b < cols / MLLM__QK; b++) {
		const float *v = x + b * 32;
		__m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8);
		__m256 v2 = _mm256_loadu_ps(v + 16), v3 = _mm256_loadu_ps(v + 24);
		__m256 a = _mm256_max_ps(
		    _mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
		    _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
		__m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
		h = _mm_max_ps(h, _mm_movehl_ps(h, h));
		h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
		float amax = _mm_cvtss_f32(h);
		float d = amax / 32767.0f;
		float id = d != 0.0f ? 32767.0f / amax : 0.0f;
		__m256 s = _mm256_set1_ps(id);
		__m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, s));
		__m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, s));
		__m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, s));
		__m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, s));
		/* packs works per 128-bit lane: put the quarters back in order */
		__m256i p01 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xd8);
		__m256i p23 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q2, q3), 0xd8);
		out[b].d = d;
		_mm256_storeu_si256((__m256i *)out[b].qs, p01);
		_mm256_storeu_si256((__m256i *)(out[b].qs + 16), p23);
	}
}
#endif

void mllm__quantize_qa(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                       mllm__block_qa *restrict out)
{
	int64_t nb = cols / MLLM__QK;
	for (int64_t t = 0; t < n_tok; t++) {
#ifdef MLLM_X86
		if (isa == MLLM__ISA_AVX512) {
			quantize_qa_avx512(x + t * cols, cols, out + t * nb);
			continue;
		}
		if (isa == MLLM__ISA_AVX2) {
			quantize_qa_avx2(x + t * cols, cols, out + t * nb);
			continue;
		}
#endif
		(void)isa;
		quantize_qa_scalar(x + t * cols, cols, out + t * nb);
	}
}

void mllm__dequant_rows(const mllm__tensor *W, int64_t r0, int64_t r1, float *restrict out)
{
	int64_t cols = W->cols;
	size_t rb = mllm__row_bytes(W->dtype, cols);
	for (int64_t r = r0; r < r1; r++) {
		const uint8_t *row = (const uint8_t *)W->data + (size_t)r * rb;
		float *o = out + (r - r0) * cols;
		if (W->layout == MLLM__LAYOUT_X16) {
			mllm__qx_dequant_row(W->dtype, row, cols, o);
			continue;
		}
		if (W->layout == MLLM__LAYOUT_R16) {
			mllm__qr16_dequant_row(W->dtype, W->data, cols, r, o);
			continue;
		}
		if (W->layout == MLLM__LAYOUT_FR16) {
			mllm__fr16_dequant_row(W->dtype, W->data, cols, r, o);
			continue;
		}
		switch (W->dtype) {
		case MLLM_DTYPE_F32:
			memcpy(o, row, (size_t)cols * 4);
			break;
		case MLLM_DTYPE_F16: {
			const uint16_t *h = (const uint16_t *)row;
			for (int64_t c = 0; c < cols; c++)
				o[c] = mllm__f16_to_f32(h[c]);
			break;
		}
		case MLLM_DTYPE_BF16: {
			const uint16_t *h = (const uint16_t *)row;
			for (int64_t c = 0; c < cols; c++)
				o[c] = mllm__bf16_to_f32(h[c]);
			break;
		}
		case MLLM_DTYPE_Q8_0: {
			const mllm__block_q8_0 *bl = (const mllm__block_q8_0 *)row;
			for (int64_t b = 0; b < cols / MLLM__QK; b++) {
				float d = mllm__f16_to_f32(bl[b].d);
				for (int j = 0; j < MLLM__QK; j++)
					o[b * 32 + j] = d * (float)bl[b].qs[j];
			}
			break;
		}
		case MLLM_DTYPE_Q4_0: {
			const mllm__block_q4_0 *bl = (const mllm__block_q4_0 *)row;
			for (int64_t b = 0; b < cols / MLLM__QK; b++) {
				float d = mllm__f16_to_f32(bl[b].d);
				for (int j = 0; j < 16; j++) {
					o[b * 32 + j] = d * (float)((bl[b].qs[j] & 15) - 8);
					o[b * 32 + j + 16] = d * (float)((bl[b].qs[j] >> 4) - 8);
				}
			}
			break;
		}
		default:
			MLLM_ASSERT(!"dequant: bad dtype");
		}
	}
}

/* ---- Matmul: scalar reference ------------------------------------------- */

/* dot(W row, x) in the plainest form: each weight converted to f32 as it is
 * read, one running f32 sum. No limit on the row length, no scratch. */
static float dot_row_scalar(mllm_dtype t, const void *row, const float *restrict x, int64_t cols)
{
	float s = 0.0f;
	switch (t) {
	case MLLM_DTYPE_F32: {
		const float *w = row;
		for (int64_t c = 0; c < cols; c++)
			s += w[c] * x[c];
		break;
	}
	case MLLM_DTYPE_F16: {
		const uint16_t *w = row;
		for (int64_t c = 0; c < cols; c++)
			s += mllm__f16_to_f32(w[c]) * x[c];
		break;
	}
	case MLLM_DTYPE_BF16: {
		const uint16_t *w = row;
		for (int64_t c = 0; c < cols; c++)
			s += mllm__bf16_to_f32(w[c]) * x[c];
		break;
	}
	case MLLM_DTYPE_Q8_0: {
		const mllm__block_q8_0 *bl = row;
		for (int64_t b = 0; b < cols / MLLM__QK; b++) {
			float d = mllm__f16_to_f32(bl[b].d);
			for (int j = 0; j < MLLM__QK; j++)
				s += d * (float)bl[b].qs[j] * x[b * 32 + j];
		}
		break;
	}
	case MLLM_DTYPE_Q4_0: {
		const mllm__block_q4_0 *bl = row;
		for (int64_t b = 0; b < cols / MLLM__QK; b++) {
			float d = mllm__f16_to_f32(bl[b].d);
			for (int j = 0; j < 16; j++) {
				s += d * (float)((bl[b].qs[j] & 15) - 8) * x[b * 32 + j];
				s += d * (float)((bl[b].qs[j] >> 4) - 8) * x[b * 32 + j + 16];
			}
		}
		break;
	}
	default:
		MLLM_ASSERT(!"matmul: bad dtype");
	}
	return s;
}

static void matmul_scalar(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                          float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	size_t rb = mllm__row_bytes(W->dtype, W->cols);
	for (int64_t r = r0; r < r1; r++) {
		const void *row = (const uint8_t *)W->data + (size_t)r * rb;
		for (int64_t t = 0; t < n_tok; t++)
			y[t * ldy + r] = dot_row_scalar(W->dtype, row, x + t * W->cols, W->cols);
	}
}

#ifdef MLLM_X86

/* ---- Matmul: AVX2 ------------------------------------------------------- */

static inline float elem(mllm_dtype t, const void *p, int64_t c)
{
	if (t == MLLM_DTYPE_F32)
		return ((const float *)p)[c];
	if (t == MLLM_DTYPE_F16)
		return mllm__f16_to_f32(((const uint16_t *)p)[c]);
	return mllm__bf16_to_f32(((const uint16_t *)p)[c]);
}

/* Float weights (F32/F16/BF16) with AVX2: tiles of NR (1 or 4) rows x NT
 * (1 or 2) tokens, each 8-column slice of the rows converted once for the
 * tile's tokens; per (row, token) the operations of a one-token product. */
T_AVX2 static inline __attribute__((always_inline)) void
f_tile_avx2(mllm_dtype t, int NR, int NT, const uint8_t *w0, size_t rb, const float *restrict x,
            int64_t cols, const char *pf, float *restrict y, int64_t ldy)
{
	int64_t c8 = cols & ~(int64_t)7;
	size_t esz = t == MLLM_DTYPE_F32 ? 4 : 2;
	__m256 acc[4][2];
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
		for (int k = 0; k < NT; k++)
			acc[r][k] = _mm256_setzero_ps();
	int64_t c = 0;
	for (; c < c8; c += 8) {
		/* one line of the next group per 32 bytes per row read */
		if (pf && (c & 15) == 0)
			for (size_t q = 0; q < esz * 64; q += 64)
				_mm_prefetch(pf + (size_t)c * esz * 4 + q, _MM_HINT_T0);
		__m256 w[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			w[r] = mllm__load8(t, w0 + (size_t)r * rb, c);
#pragma GCC unroll 2
		for (int k = 0; k < NT; k++) {
			__m256 xx = _mm256_loadu_ps(x + k * cols + c);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[r][k] = _mm256_fmadd_ps(w[r], xx, acc[r][k]);
		}
	}
#pragma GCC unroll 2
	for (int k = 0; k < NT; k++) {
		const float *xv = x + k * cols;
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			const void *wr = w0 + (size_t)r * rb;
			float s = hsum256(acc[r][k]);
			for (int64_t cc = c; cc < cols; cc++)
				s += elem(t, wr, cc) * xv[cc];
			y[k * ldy + r] = s;
		}
	}
}

T_AVX2 static inline __attribute__((always_inline)) void
f_rows_avx2(mllm_dtype t, int NR, const uint8_t *w0, size_t rb, const float *restrict x,
            int64_t cols, int64_t n_tok, const char *pf, float *restrict y, int64_t ldy)
{
	int64_t k = 0;
	for (; k + 2 <= n_tok; k += 2) {
		f_tile_avx2(t, NR, 2, w0, rb, x + k * cols, cols, pf, y + k * ldy, ldy);
		pf = NULL;
	}
	if (k < n_tok)
		f_tile_avx2(t, NR, 1, w0, rb, x + k * cols, cols, pf, y + k * ldy, ldy);
}

T_AVX2 static inline __attribute__((always_inline)) void
matmul_float_avx2_t(mllm_dtype t, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                    float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t cols = W->cols;
	size_t rb = mllm__row_bytes(t, cols);
	const uint8_t *base = W->data;
	for (int64_t t0 = 0; t0 < n_tok; t0 += F_TOK_BLOCK) {
		int64_t nt = n_tok - t0 < F_TOK_BLOCK ? n_tok - t0 : F_TOK_BLOCK;
		const float *xb = x + t0 * cols;
		float *yb = y + t0 * ldy;
		int64_t r = r0;
		/* the first block brings the rows in: prefetch ahead there */
		for (; r + 4 <= r1; r += 4)
			f_rows_avx2(t, 4, base + (size_t)r * rb, rb, xb, cols, nt,
			            t0 == 0 ? (const char *)base + (size_t)(r + PF_ROWS) * rb
			                    : NULL,
			            yb + r, ldy);
		for (; r < r1; r++)
			f_rows_avx2(t, 1, base + (size_t)r * rb, rb, xb, cols, nt, NULL, yb + r,
			            ldy);
	}
}

T_AVX2 static void matmul_float_avx2(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                                     float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	if (W->dtype == MLLM_DTYPE_F32)
		matmul_float_avx2_t(MLLM_DTYPE_F32, W, x, n_tok, y, ldy, r0, r1);
	else if (W->dtype == MLLM_DTYPE_F16)
		matmul_float_avx2_t(MLLM_DTYPE_F16, W, x, n_tok, y, ldy, r0, r1);
	else
		matmul_float_avx2_t(MLLM_DTYPE_BF16, W, x, n_tok, y, ldy, r0, r1);
}

/* 32 weights of block b of a Q8_0 / Q4_0 row as int8 (Q4_0 nibbles are
 * recentred to -8..7), and the block's scale. */
T_AVX2 static inline __m256i qweights(bool q4, const uint8_t *row, int64_t b, float *d)
{
	if (q4) {
		const mllm__block_q4_0 *bl = (const mllm__block_q4_0 *)row + b;
		__m128i v = _mm_loadu_si128((const __m128i *)bl->qs);
		__m128i lo = _mm_and_si128(v, _mm_set1_epi8(15));
		__m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), _mm_set1_epi8(15));
		*d = _cvtsh_ss(bl->d);
		return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
	}
	const mllm__block_q8_0 *bl = (const mllm__block_q8_0 *)row + b;
	*d = _cvtsh_ss(bl->d);
	return _mm256_loadu_si256((const __m256i *)bl->qs);
}

/* Rows of a quantized weight against 16-bit activations with AVX2: tiles
 * of NR (1 or 2) rows x NT (1..3) tokens; each weight block is widened to
 * int16 once per tile. Per (row, token) the same operations as a one-token
 * product: two vpmaddwd, one add, convert, one FMA with d * d_x. */
T_AVX2 static inline __attribute__((always_inline)) void
q_tile_avx2(bool q4, int NR, int NT, const uint8_t *p0, size_t rb, const mllm__block_qa *xq,
            int64_t nb, const char *pf, float *restrict y, int64_t ldy)
{
	__m256 acc[2][3];
	size_t bsz = 2 * (q4 ? sizeof(mllm__block_q4_0) : sizeof(mllm__block_q8_0));
#pragma GCC unroll 2
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 3
		for (int t = 0; t < NT; t++)
			acc[r][t] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		if (pf) {
			_mm_prefetch(pf + (size_t)b * bsz, _MM_HINT_T0);
			_mm_prefetch(pf + (size_t)b * bsz + bsz - 1, _MM_HINT_T0);
		}
		__m256i wl[2], wh[2];
		float d[2];
#pragma GCC unroll 2
		for (int r = 0; r < NR; r++) {
			__m256i w8 = qweights(q4, p0 + (size_t)r * rb, b, &d[r]);
			wl[r] = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w8));
			wh[r] = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w8, 1));
		}
#pragma GCC unroll 3
		for (int t = 0; t < NT; t++) {
			const mllm__block_qa *a = xq + t * nb + b;
			__m256i a0 = _mm256_loadu_si256((const __m256i *)a->qs);
			__m256i a1 = _mm256_loadu_si256((const __m256i *)(a->qs + 16));
#pragma GCC unroll 2
			for (int r = 0; r < NR; r++) {
				__m256i s = _mm256_add_epi32(_mm256_madd_epi16(wl[r], a0),
				                             _mm256_madd_epi16(wh[r], a1));
				acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
				                            _mm256_set1_ps(d[r] * a->d), acc[r][t]);
			}
		}
	}
#pragma GCC unroll 3
	for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
		for (int r = 0; r < NR; r++)
			y[t * ldy + r] = hsum256(acc[r][t]);
}

T_AVX2 static inline __attribute__((always_inline)) void
q_rows_avx2(bool q4, int NR, const uint8_t *p0, size_t rb, const mllm__block_qa *xq, int64_t nb,
            int64_t n_tok, const char *pf, float *restrict y, int64_t ldy)
{
	int64_t k = 0;
	for (; k + 3 <= n_tok; k += 3) {
		q_tile_avx2(q4, NR, 3, p0, rb, xq + k * nb, nb, pf, y + k * ldy, ldy);
		pf = NULL;
	}
	if (n_tok - k == 2)
		q_tile_avx2(q4, NR, 2, p0, rb, xq + k * nb, nb, pf, y + k * ldy, ldy);
	else if (n_tok - k == 1)
		q_tile_avx2(q4, NR, 1, p0, rb, xq + k * nb, nb, pf, y + k * ldy, ldy);
}

T_AVX2 static inline __attribute__((always_inline)) void
matmul_q_avx2_t(bool q4, const mllm__tensor *W, const mllm__block_qa *xq, int64_t n_tok,
                float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t nb = W->cols / MLLM__QK;
	size_t rb = mllm__row_bytes(W->dtype, W->cols);
	const uint8_t *base = W->data;
	int64_t r = r0;
	for (; r + 2 <= r1; r += 2) {
		const uint8_t *p0 = base + (size_t)r * rb;
		q_rows_avx2(q4, 2, p0, rb, xq, nb, n_tok, (const char *)p0 + 2 * rb, y + r, ldy);
	}
	for (; r < r1; r++)
		q_rows_avx2(q4, 1, base + (size_t)r * rb, rb, xq, nb, n_tok, NULL, y + r, ldy);
}

T_AVX2 static void matmul_q_avx2(const mllm__tensor *W, const mllm__block_qa *xq, int64_t n_tok,
                                 float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	if (W->dtype == MLLM_DTYPE_Q4_0)
		matmul_q_avx2_t(true, W, xq, n_tok, y, ldy, r0, r1);
	else
		matmul_q_avx2_t(false, W, xq, n_tok, y, ldy, r0, r1);
}

/* f32 of every f16 bit pattern: a block scale becomes one broadcast load
 * instead of an insert, a conversion and a shuffle-port broadcast per
 * (row, block). Exact (the same values as mllm__f16_to_f32). 256 KiB,
 * filled once. */
static float f16_table[65536];
static pthread_once_t f16_table_once = PTHREAD_ONCE_INIT;

static void f16_table_fill(void)
{
	for (uint32_t i = 0; i < 65536; i++)
		f16_table[i] = mllm__f16_to_f32((uint16_t)i);
}

/* Block b of a Q8_0 / Q4_0 row as 32 int16 weights (Q4_0 recentred to
 * -8..7, the same values as qweights()); *d points at its f32 scale. */
T_AVX512 static inline __m512i qw16_avx512(bool q4, const uint8_t *row, int64_t b, const float **d)
{
	if (q4) {
		const mllm__block_q4_0 *bl = (const mllm__block_q4_0 *)row + b;
		*d = &f16_table[bl->d];
		/* both halves hold the 16 bytes: low nibbles feed elements
		 * 0..15, high nibbles (shifted in the upper lanes) 16..31 */
		__m512i w = _mm512_cvtepu8_epi16(
		    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)bl->qs)));
		w = _mm512_mask_srli_epi16(w, (__mmask32)0xffff0000u, w, 4);
		w = _mm512_and_si512(w, _mm512_set1_epi16(15));
		return _mm512_sub_epi16(w, _mm512_set1_epi16(8));
	}
	const mllm__block_q8_0 *bl = (const mllm__block_q8_0 *)row + b;
	*d = &f16_table[bl->d];
	return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)bl->qs));
}

/* The 16 sums of a 4 rows x 4 tokens tile of accumulators (aRT: row R,
 * token T) stored at y[t * ldy + r]. Each is reduced with exactly the
 * pairing of _mm512_reduce_add_ps (lane i with i + 8, then i + 4, i + 2,
 * i + 1), so the results equal the one-token path's bit for bit, but the
 * 16 reductions share their shuffles: 45 operations instead of ~130. */
T_AVX512 static inline __attribute__((always_inline)) void
reduce4x4_store(__m512 a00, __m512 a01, __m512 a02, __m512 a03, __m512 a10, __m512 a11, __m512 a12,
                __m512 a13, __m512 a20, __m512 a21, __m512 a22, __m512 a23, __m512 a30, __m512 a31,
                __m512 a32, __m512 a33, float *restrict y, int64_t ldy)
{
#define HALVES(u, v)                                                                               \
	_mm512_add_ps(_mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(1, 0, 1, 0)),                         \
	              _mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(3, 2, 3, 2)))
#define QUARTERS(u, v)                                                                             \
	_mm512_add_ps(_mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(2, 0, 2, 0)),                         \
	              _mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(3, 1, 3, 1)))
	/* qR, block t: row R, token t, lanes i + (i + 4) of the half sums */
	__m512 q0 = QUARTERS(HALVES(a00, a01), HALVES(a02, a03));
	__m512 q1 = QUARTERS(HALVES(a10, a11), HALVES(a12, a13));
	__m512 q2 = QUARTERS(HALVES(a20, a21), HALVES(a22, a23));
	__m512 q3 = QUARTERS(HALVES(a30, a31), HALVES(a32, a33));
#undef HALVES
#undef QUARTERS
	/* pairs (i, i + 2): per block [r0 x2, r1 x2] and [r2 x2, r3 x2] */
	__m512d d0 = _mm512_castps_pd(q0), d1 = _mm512_castps_pd(q1);
	__m512d d2 = _mm512_castps_pd(q2), d3 = _mm512_castps_pd(q3);
	__m512 p01 = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d0, d1)),
	                           _mm512_castpd_ps(_mm512_unpackhi_pd(d0, d1)));
	__m512 p23 = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(d2, d3)),
	                           _mm512_castpd_ps(_mm512_unpackhi_pd(d2, d3)));
	/* pairs (i, i + 1): block t holds rows 0..3 of token t */
	__m512 s = _mm512_add_ps(_mm512_shuffle_ps(p01, p23, _MM_SHUFFLE(2, 0, 2, 0)),
	                         _mm512_shuffle_ps(p01, p23, _MM_SHUFFLE(3, 1, 3, 1)));
	_mm_storeu_ps(y, _mm512_castps512_ps128(s));
	_mm_storeu_ps(y + ldy, _mm512_extractf32x4_ps(s, 1));
	_mm_storeu_ps(y + 2 * ldy, _mm512_extractf32x4_ps(s, 2));
	_mm_storeu_ps(y + 3 * ldy, _mm512_extractf32x4_ps(s, 3));
}

/* Tiles of the quantized VNNI product: NR (1 or 4) weight rows x NT (1..4)
 * tokens. Each weight block is loaded and widened once per tile and dotted
 * with the NT tokens' activation blocks; every (row, token) keeps its own
 * accumulator and sees exactly the operations of a one-token product, so a
 * row's result does not depend on the batch. pf: the next row group to
 * prefetch (first token tile only), or NULL. */
T_AVX512 static inline __attribute__((always_inline)) void
q_tile_vnni(bool q4, int NR, int NT, const uint8_t *p0, size_t rb, const mllm__block_qa *xq,
            int64_t nb, const char *pf, float *restrict y, int64_t ldy)
{
	__m512 acc[4][TILE_T];
	size_t bsz = 4 * (q4 ? sizeof(mllm__block_q4_0) : sizeof(mllm__block_q8_0));
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[r][t] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++) {
		if (pf) {
			_mm_prefetch(pf + (size_t)b * bsz, _MM_HINT_T0);
			_mm_prefetch(pf + (size_t)b * bsz + 64, _MM_HINT_T0);
			_mm_prefetch(pf + (size_t)b * bsz + bsz - 1, _MM_HINT_T0);
		}
		__m512i w[4];
		__m512 d[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			const float *dr;
			w[r] = qw16_avx512(q4, p0 + (size_t)r * rb, b, &dr);
			d[r] = _mm512_set1_ps(*dr);
		}
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++) {
			const mllm__block_qa *a = xq + t * nb + b;
			__m512i av = _mm512_loadu_si512(a->qs);
			__m512 xd = _mm512_set1_ps(a->d);
			/* Keep the scale a vector (a broadcast load): left alone
			 * the compiler turns each d * xd into a scalar multiply
			 * plus a shuffle-port broadcast. */
			__asm__("" : "+v"(xd));
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++) {
				/* vpmaddwd = vpdpwssd into zero, without the copy */
				__m512i s = _mm512_madd_epi16(w[r], av);
				acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
				                            _mm512_mul_ps(d[r], xd), acc[r][t]);
			}
		}
	}
	if (NR == 4 && NT == 4) {
		reduce4x4_store(acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1],
		                acc[1][2], acc[1][3], acc[2][0], acc[2][1], acc[2][2], acc[2][3],
		                acc[3][0], acc[3][1], acc[3][2], acc[3][3], y, ldy);
		return;
	}
#pragma GCC unroll 4
	for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

/* One row group (NR rows at p0) against all n_tok tokens, TILE_T at a time:
 * the group's weights stay in L1 across the token tiles. */
T_AVX512 static inline __attribute__((always_inline)) void
q_rows_vnni(bool q4, int NR, const uint8_t *p0, size_t rb, const mllm__block_qa *xq, int64_t nb,
            int64_t n_tok, const char *pf, float *restrict y, int64_t ldy)
{
	int64_t k = 0;
	for (; k + TILE_T <= n_tok; k += TILE_T) {
		q_tile_vnni(q4, NR, TILE_T, p0, rb, xq + k * nb, nb, pf, y + k * ldy, ldy);
		pf = NULL;
	}
	switch (n_tok - k) {
	case 3:
		q_tile_vnni(q4, NR, 3, p0, rb, xq + k * nb, nb, pf, y + k * ldy, ldy);
		break;
	case 2:
		q_tile_vnni(q4, NR, 2, p0, rb, xq + k * nb, nb, pf, y + k * ldy, ldy);
		break;
	case 1:
		q_tile_vnni(q4, NR, 1, p0, rb, xq + k * nb, nb, pf, y + k * ldy, ldy);
		break;
	default:
		break;
	}
}

/* Quantized weights with AVX-512 VNNI: one vpdpwssd per block (32 int8
 * weights widened to int16 against 32 int16 activations), in tiles of 4
 * rows x 4 tokens. One copy per weight type, so the type tests fold away. */
T_AVX512 static inline __attribute__((always_inline)) void
matmul_q_vnni_t(bool q4, const mllm__tensor *W, const mllm__block_qa *xq, int64_t n_tok,
                float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t nb = W->cols / MLLM__QK;
	size_t rb = mllm__row_bytes(W->dtype, W->cols);
	const uint8_t *base = W->data;
	int64_t r = r0;
	for (; r + 4 <= r1; r += 4) {
		const uint8_t *p0 = base + (size_t)r * rb;
		/* Prefetch the next 4-row group while reading this one. */
		q_rows_vnni(q4, 4, p0, rb, xq, nb, n_tok, (const char *)p0 + 4 * rb, y + r, ldy);
	}
	for (; r < r1; r++)
		q_rows_vnni(q4, 1, base + (size_t)r * rb, rb, xq, nb, n_tok, NULL, y + r, ldy);
}

T_AVX512 static void matmul_q8_vnni(const mllm__tensor *W, const mllm__block_qa *xq, int64_t n_tok,
                                    float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	matmul_q_vnni_t(false, W, xq, n_tok, y, ldy, r0, r1);
}

T_AVX512 static void matmul_q4_vnni(const mllm__tensor *W, const mllm__block_qa *xq, int64_t n_tok,
                                    float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	matmul_q_vnni_t(true, W, xq, n_tok, y, ldy, r0, r1);
}

/* ---- Matmul: AVX-512 float weights -------------------------------------- */

T_AVX512 static inline __m512 load16m(mllm_dtype t, const void *p, int64_t c, __mmask16 m)
{
	if (t == MLLM_DTYPE_F32)
		return _mm512_maskz_loadu_ps(m, (const float *)p + c);
	__m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + c);
	if (t == MLLM_DTYPE_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* A tile of the float product: NR (1 or 4) weight rows x NT (1..6) tokens.
 * Each 16-column slice of the rows is loaded and converted once and fed to
 * the NT tokens; each (row, token) accumulates exactly as a one-token
 * product would (same order, same tail), so results are batch-invariant.
 * pf: the next row group to prefetch (first token tile only), or NULL. */
T_AVX512 static inline __attribute__((always_inline)) void
f_tile_avx512(mllm_dtype t, int NR, int NT, const uint8_t *w0, size_t rb, const float *restrict x,
              int64_t cols, const char *pf, float *restrict y, int64_t ldy)
{
	int64_t c16 = cols & ~(int64_t)15;
	__mmask16 tail = (__mmask16)((1u << (cols - c16)) - 1);
	size_t esz = t == MLLM_DTYPE_F32 ? 4 : 2;
	__m512 acc[4][TILE_TF];
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 8
		for (int k = 0; k < NT; k++)
			acc[r][k] = _mm512_setzero_ps();
	int64_t c = 0;
	for (; c < c16; c += 16) {
		/* Decode streams the weights from DRAM, and the hardware
		 * prefetcher alone keeps too few lines in flight. */
		if (pf)
			for (size_t q = 0; q < esz * 64; q += 64)
				_mm_prefetch(pf + (size_t)c * esz * 4 + q, _MM_HINT_T0);
		__m512 w[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			w[r] = mllm__load16(t, w0 + (size_t)r * rb, c);
#pragma GCC unroll 8
		for (int k = 0; k < NT; k++) {
			__m512 xx = _mm512_loadu_ps(x + k * cols + c);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[r][k] = _mm512_fmadd_ps(w[r], xx, acc[r][k]);
		}
	}
	if (tail) {
		__m512 w[4];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			w[r] = load16m(t, w0 + (size_t)r * rb, c, tail);
#pragma GCC unroll 8
		for (int k = 0; k < NT; k++) {
			__m512 xx = _mm512_maskz_loadu_ps(tail, x + k * cols + c);
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++)
				acc[r][k] = _mm512_fmadd_ps(w[r], xx, acc[r][k]);
		}
	}
	int k0 = 0;
	if (NR == 4 && NT >= 4) {
		reduce4x4_store(acc[0][0], acc[0][1], acc[0][2], acc[0][3], acc[1][0], acc[1][1],
		                acc[1][2], acc[1][3], acc[2][0], acc[2][1], acc[2][2], acc[2][3],
		                acc[3][0], acc[3][1], acc[3][2], acc[3][3], y, ldy);
		k0 = 4;
	}
#pragma GCC unroll 8
	for (int k = k0; k < NT; k++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			y[k * ldy + r] = _mm512_reduce_add_ps(acc[r][k]);
}

/* One tile of nt (1..TILE_TF) tokens, NR rows: nt as a constant. */
T_AVX512 static inline __attribute__((always_inline)) void
f_tile_n_avx512(mllm_dtype t, int NR, int64_t nt, const uint8_t *w0, size_t rb,
                const float *restrict x, int64_t cols, const char *pf, float *restrict y,
                int64_t ldy)
{
	switch (nt) {
	case 6:
		f_tile_avx512(t, NR, 6, w0, rb, x, cols, pf, y, ldy);
		break;
	case 5:
		f_tile_avx512(t, NR, 5, w0, rb, x, cols, pf, y, ldy);
		break;
	case 4:
		f_tile_avx512(t, NR, 4, w0, rb, x, cols, pf, y, ldy);
		break;
	case 3:
		f_tile_avx512(t, NR, 3, w0, rb, x, cols, pf, y, ldy);
		break;
	case 2:
		f_tile_avx512(t, NR, 2, w0, rb, x, cols, pf, y, ldy);
		break;
	default:
		f_tile_avx512(t, NR, 1, w0, rb, x, cols, pf, y, ldy);
		break;
	}
}

/* Float weights (F32/F16/BF16) in tiles of 4 rows x 6 tokens. Inlined into
 * one copy per weight type, so the type tests fold away. The call's rows
 * go in blocks of F_ROW_BLOCK_BYTES; per block, each token tile (6
 * tokens' activations, <= 36 KiB) stays in L1 while the block's rows
 * stream past it from L2 (the first tile brings them from memory, with a
 * prefetch ahead): rows are the smaller stream per multiply-add (4
 * vectors per 24 FMAs against 6, and half that for 16-bit weights). With
 * rows outer, the tokens' activations were read from L2, or L3 past ~40
 * tokens, once per 4 rows. Only the loop order changes: each (row, token)
 * is one tile's full-length sum, whatever the tile, so results stay
 * batch-invariant. */
T_AVX512 static inline __attribute__((always_inline)) void
matmul_float_avx512(mllm_dtype t, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                    float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t cols = W->cols;
	size_t rb = mllm__row_bytes(t, cols);
	const uint8_t *base = W->data;
	int64_t block = (int64_t)(F_ROW_BLOCK_BYTES / rb) & ~(int64_t)3;
	if (block < 4)
		block = 4;
	for (int64_t b0 = r0; b0 < r1; b0 += block) {
		int64_t b1 = r1 - b0 < block ? r1 : b0 + block;
		for (int64_t k = 0; k < n_tok; k += TILE_TF) {
			int64_t nt = n_tok - k < TILE_TF ? n_tok - k : TILE_TF;
			const float *xk = x + k * cols;
			float *yk = y + k * ldy;
			int64_t r = b0;
			for (; r + 4 <= b1; r += 4)
				f_tile_n_avx512(
				    t, 4, nt, base + (size_t)r * rb, rb, xk, cols,
				    k == 0 ? (const char *)base + (size_t)(r + PF_ROWS) * rb : NULL,
				    yk + r, ldy);
			for (; r < b1; r++)
				f_tile_n_avx512(t, 1, nt, base + (size_t)r * rb, rb, xk, cols, NULL,
				                yk + r, ldy);
		}
	}
}

T_AVX512 static void matmul_f32_avx512(const mllm__tensor *W, const float *restrict x,
                                       int64_t n_tok, float *restrict y, int64_t ldy, int64_t r0,
                                       int64_t r1)
{
	matmul_float_avx512(MLLM_DTYPE_F32, W, x, n_tok, y, ldy, r0, r1);
}

T_AVX512 static void matmul_f16_avx512(const mllm__tensor *W, const float *restrict x,
                                       int64_t n_tok, float *restrict y, int64_t ldy, int64_t r0,
                                       int64_t r1)
{
	matmul_float_avx512(MLLM_DTYPE_F16, W, x, n_tok, y, ldy, r0, r1);
}

T_AVX512 static void matmul_bf16_avx512(const mllm__tensor *W, const float *restrict x,
                                        int64_t n_tok, float *restrict y, int64_t ldy, int64_t r0,
                                        int64_t r1)
{
	matmul_float_avx512(MLLM_DTYPE_BF16, W, x, n_tok, y, ldy, r0, r1);
}

/* Row dequantization for the sgemm panels (prefill), 16 values a step. */
T_AVX512 static void dequant_row_avx512(mllm_dtype t, const void *row, int64_t cols,
                                        float *restrict o)
{
	int64_t c = 0;
	if (t == MLLM_DTYPE_F16) {
		const uint16_t *h = row;
		for (; c + 16 <= cols; c += 16)
			_mm512_storeu_ps(
			    o + c, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(h + c))));
		for (; c < cols; c++)
			o[c] = mllm__f16_to_f32(h[c]);
	} else if (t == MLLM_DTYPE_BF16) {
		const uint16_t *h = row;
		for (; c + 16 <= cols; c += 16)
			_mm512_storeu_ps(
			    o + c,
			    _mm512_castsi512_ps(_mm512_slli_epi32(
			        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(h + c))),
			        16)));
		for (; c < cols; c++)
			o[c] = mllm__bf16_to_f32(h[c]);
	} else if (t == MLLM_DTYPE_Q8_0) {
		const mllm__block_q8_0 *bl = row;
		for (int64_t b = 0; b < cols / MLLM__QK; b++) {
			__m512 d = _mm512_set1_ps(_cvtsh_ss(bl[b].d));
			__m512 v0 = _mm512_cvtepi32_ps(
			    _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)bl[b].qs)));
			__m512 v1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
			    _mm_loadu_si128((const __m128i *)(bl[b].qs + 16))));
			_mm512_storeu_ps(o + b * 32, _mm512_mul_ps(d, v0));
			_mm512_storeu_ps(o + b * 32 + 16, _mm512_mul_ps(d, v1));
		}
	} else if (t == MLLM_DTYPE_Q4_0) {
		const mllm__block_q4_0 *bl = row;
		const __m128i m4 = _mm_set1_epi8(15);
		const __m512 eight = _mm512_set1_ps(8.0f);
		for (int64_t b = 0; b < cols / MLLM__QK; b++) {
			__m512 d = _mm512_set1_ps(_cvtsh_ss(bl[b].d));
			__m128i v = _mm_loadu_si128((const __m128i *)bl[b].qs);
			__m128i lo = _mm_and_si128(v, m4);
			__m128i hi = _mm_and_si128(_mm_srli_epi16(v, 4), m4);
			__m512 f0 =
			    _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo)), eight);
			__m512 f1 =
			    _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi)), eight);
			_mm512_storeu_ps(o + b * 32, _mm512_mul_ps(d, f0));
			_mm512_storeu_ps(o + b * 32 + 16, _mm512_mul_ps(d, f1));
		}
	} else {
		mllm__tensor one = {t, 1, cols, row, MLLM__LAYOUT_GGUF, false};
		mllm__dequant_rows(&one, 0, 1, o);
	}
}

/* F16 / BF16 rows for the sgemm panels on AVX2, 8 values a step. */
T_AVX2 static void dequant_row_avx2(mllm_dtype t, const void *row, int64_t cols, float *restrict o)
{
	const uint16_t *h = row;
	int64_t c = 0;
	if (t == MLLM_DTYPE_F16) {
		for (; c + 8 <= cols; c += 8)
			_mm256_storeu_ps(
			    o + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + c))));
		for (; c < cols; c++)
			o[c] = mllm__f16_to_f32(h[c]);
		return;
	}
	for (; c + 8 <= cols; c += 8)
		_mm256_storeu_ps(
		    o + c,
		    _mm256_castsi256_ps(_mm256_slli_epi32(
		        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + c))), 16)));
	for (; c < cols; c++)
		o[c] = mllm__bf16_to_f32(h[c]);
}

#endif /* MLLM_X86 */

void mllm__dequant_rows_fast(mllm__isa isa, const mllm__tensor *W, int64_t r0, int64_t r1,
                             float *restrict out)
{
#ifdef MLLM_X86
	size_t rb = mllm__row_bytes(W->dtype, W->cols);
	const uint8_t *base = W->data;
	if (W->layout == MLLM__LAYOUT_X16 && isa != MLLM__ISA_SCALAR) {
		for (int64_t r = r0; r < r1; r++)
			mllm__qx_dequant_row_fast(isa, W->dtype, base + (size_t)r * rb, W->cols,
			                          out + (r - r0) * W->cols);
		return;
	}
	if (isa == MLLM__ISA_AVX512 && W->layout == MLLM__LAYOUT_GGUF) {
		for (int64_t r = r0; r < r1; r++)
			dequant_row_avx512(W->dtype, base + (size_t)r * rb, W->cols,
			                   out + (r - r0) * W->cols);
		return;
	}
	if (isa == MLLM__ISA_AVX2 && W->layout == MLLM__LAYOUT_GGUF &&
	    (W->dtype == MLLM_DTYPE_F16 || W->dtype == MLLM_DTYPE_BF16)) {
		for (int64_t r = r0; r < r1; r++)
			dequant_row_avx2(W->dtype, base + (size_t)r * rb, W->cols,
			                 out + (r - r0) * W->cols);
		return;
	}
#endif
	(void)isa;
	mllm__dequant_rows(W, r0, r1, out);
}

mllm__act_kind mllm__matmul_act(mllm__isa isa, const mllm__tensor *W)
{
	if (W->layout == MLLM__LAYOUT_R16)
		return isa == MLLM__ISA_SCALAR ? MLLM__ACT_F32 : MLLM__ACT_R16;
	if (isa == MLLM__ISA_SCALAR || (W->dtype != MLLM_DTYPE_Q8_0 && W->dtype != MLLM_DTYPE_Q4_0))
		return MLLM__ACT_F32;
	if (W->layout == MLLM__LAYOUT_X16)
		return W->act8 && (isa == MLLM__ISA_AVX512 || W->dtype == MLLM_DTYPE_Q4_0)
		           ? MLLM__ACT_QX8
		           : MLLM__ACT_QX;
	return MLLM__ACT_QA;
}

size_t mllm__act_bytes(mllm__act_kind k, int64_t cols)
{
	if (k == MLLM__ACT_QA)
		return (size_t)(cols / MLLM__QK) * sizeof(mllm__block_qa);
	if (k == MLLM__ACT_QX)
		return mllm__qx_act_bytes(cols);
	if (k == MLLM__ACT_QX8)
		return mllm__qx8_act_bytes(cols);
	if (k == MLLM__ACT_R16)
		return mllm__qr16_act_bytes(cols);
	return 0;
}

void mllm__quantize_act(mllm__act_kind k, mllm__isa isa, const float *restrict x, int64_t n_tok,
                        int64_t cols, void *restrict out)
{
	if (k == MLLM__ACT_QA)
		mllm__quantize_qa(isa, x, n_tok, cols, out);
	else if (k == MLLM__ACT_QX)
		mllm__quantize_qx(isa, x, n_tok, cols, out);
	else if (k == MLLM__ACT_QX8)
		mllm__quantize_qx8(isa, x, n_tok, cols, out);
	else if (k == MLLM__ACT_R16)
		mllm__quantize_qr16(isa, x, n_tok, cols, out);
}

void mllm__matmul_rows(mllm__isa isa, const mllm__tensor *W, const float *restrict x,
                       const void *xq, int64_t n_tok, float *restrict y, int64_t ldy, int64_t r0,
                       int64_t r1)
{
	if (W->layout == MLLM__LAYOUT_R16) {
		if (isa == MLLM__ISA_SCALAR)
			mllm__qr16_matmul_ref(W, x, n_tok, y, ldy, r0, r1);
		else
			mllm__qr16_matmul(isa, W, xq, n_tok, y, ldy, r0, r1);
		return;
	}
	if (W->layout == MLLM__LAYOUT_FR16) {
		mllm__fr16_matmul(isa, W, x, n_tok, y, ldy, r0, r1);
		return;
	}
	if (W->layout == MLLM__LAYOUT_X16) {
		mllm__act_kind ak = mllm__matmul_act(isa, W);
		mllm__qx_matmul(isa, W, x, ak == MLLM__ACT_QX || ak == MLLM__ACT_QX8 ? xq : NULL,
		                n_tok, y, ldy, r0, r1);
		return;
	}
	bool quant = W->dtype == MLLM_DTYPE_Q8_0 || W->dtype == MLLM_DTYPE_Q4_0;
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		if (quant)
			pthread_once(&f16_table_once, f16_table_fill);
		if (W->dtype == MLLM_DTYPE_Q8_0)
			matmul_q8_vnni(W, xq, n_tok, y, ldy, r0, r1);
		else if (W->dtype == MLLM_DTYPE_Q4_0)
			matmul_q4_vnni(W, xq, n_tok, y, ldy, r0, r1);
		else if (W->dtype == MLLM_DTYPE_F32)
			matmul_f32_avx512(W, x, n_tok, y, ldy, r0, r1);
		else if (W->dtype == MLLM_DTYPE_F16)
			matmul_f16_avx512(W, x, n_tok, y, ldy, r0, r1);
		else
			matmul_bf16_avx512(W, x, n_tok, y, ldy, r0, r1);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		if (quant)
			matmul_q_avx2(W, xq, n_tok, y, ldy, r0, r1);
		else
			matmul_float_avx2(W, x, n_tok, y, ldy, r0, r1);
		return;
	}
#endif
	(void)quant;
	(void)xq;
	matmul_scalar(W, x, n_tok, y, ldy, r0, r1);
}
