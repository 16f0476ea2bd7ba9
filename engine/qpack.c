/*
 * qpack.c — the interleaved layout of Q8_0 / Q4_0 weights ("x16") and its
 * AVX-512 VNNI product.
 *
 * In a GGUF row every block of 32 weights carries its own scale, so a dot
 * product leaves the integers after each block: widen, multiply-add, convert,
 * scale, add — about four vector operations per 32 weights and token, which
 * made Q4_0 decode instruction-bound. Here a row is cut into groups of 16
 * blocks interleaved so that 32-bit lane j of every vector belongs to block
 * j: a group's 16 vpdpwssd accumulate exact integer sums per block, then the
 * group pays one convert, one scale multiply and one FMA for all 16 blocks.
 * The integer products are those of the GGUF-layout kernels (the same 16-bit
 * activations); only the order in which the per-block floats are added
 * changes. Rows keep their GGUF size, so row ranges and memory use are
 * unchanged; rows whose block count is odd keep the GGUF layout.
 *
 * A row of nb blocks (nb even):
 *   nb / 16 groups: 16 f16 scales, then the weights. Q8_0: 16 chunks of 32
 *     bytes, chunk k byte 2j + e = w[j][2k + e]. Q4_0: 8 chunks of 32 bytes,
 *     chunk c byte 2j + e = q[j][4c + e] | q[j][4c + 2 + e] << 4.
 *   (nb % 16) / 2 pairs of blocks A, B: 2 f16 scales, then Q8_0: A[0..15]
 *     B[0..15] A[16..31] B[16..31]; Q4_0: A's 16 GGUF nibble bytes, B's.
 * Activations, per token (mllm__qx_act_bytes(cols), whole 64-byte vectors):
 *   group: 16 vectors of 32 int16 (vector k, lane j: x[j][2k], x[j][2k + 1]),
 *     the 16 block scales (f32), the 16 Q4_0 offsets c[j] = -8 * sum(x[j])
 *     (int32: the kernel multiplies the stored q, and w = q - 8).
 *   pair: vector 0 (A[0..15], B[0..15]), vector 1 (A[16..31], B[16..31]),
 *     the scales per lane (A in lanes 0..7, B in 8..15), the offsets (A's in
 *     lane 0, B's in lane 8, zero elsewhere).
 */
#include "kernels.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MLLM_X86 1
#endif

#define GB        16   /* blocks per group */
#define ACT_GROUP 1152 /* activation bytes per group: 16 + 1 + 1 vectors */
#define ACT_PAIR  256  /* activation bytes per pair: 2 + 1 + 1 vectors */

#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define T_AVX2   __attribute__((target("avx2,fma,f16c")))

static size_t block_bytes(mllm_dtype t)
{
	return t == MLLM_DTYPE_Q4_0 ? sizeof(mllm__block_q4_0) : sizeof(mllm__block_q8_0);
}

bool mllm__qx_packable(mllm_dtype t, int64_t cols)
{
	return (t == MLLM_DTYPE_Q8_0 || t == MLLM_DTYPE_Q4_0) && cols > 0 && cols % 64 == 0;
}

size_t mllm__qx_act_bytes(int64_t cols)
{
	int64_t nb = cols / MLLM__QK;
	return (size_t)(nb / GB) * ACT_GROUP + (size_t)(nb % GB / 2) * ACT_PAIR;
}

/* Where weight e of block b of a packed row lives: the byte offset in the
 * row, the nibble shift (Q4_0) and the offset of the block's f16 scale. */
static size_t locate(mllm_dtype t, int64_t nb, int64_t b, int e, int *shift, size_t *scale)
{
	size_t bb = block_bytes(t);
	int64_t ng = nb / GB;
	*shift = 0;
	if (b < ng * GB) {
		size_t base = (size_t)(b / GB) * GB * bb, j = (size_t)(b % GB);
		*scale = base + 2 * j;
		if (t == MLLM_DTYPE_Q8_0)
			return base + 32 + 32 * (size_t)(e / 2) + 2 * j + (size_t)(e % 2);
		*shift = e % 4 >= 2 ? 4 : 0;
		return base + 32 + 32 * (size_t)(e / 4) + 2 * j + (size_t)(e % 2);
	}
	size_t which = (size_t)((b - ng * GB) % 2);
	size_t base = (size_t)(ng * GB) * bb + (size_t)((b - ng * GB) / 2) * 2 * bb;
	*scale = base + 2 * which;
	if (t == MLLM_DTYPE_Q8_0)
		return base + 4 + (size_t)(e / 16) * 32 + which * 16 + (size_t)(e % 16);
	*shift = e >= 16 ? 4 : 0;
	return base + 4 + which * 16 + (size_t)(e % 16);
}

/* GGUF blocks of a group (16 from src) or a pair (2) into the segment at
 * seg: the offsets of locate(), written out so that loading a model does
 * not pay a call per weight. */
static void pack_group(mllm_dtype t, const uint8_t *src, uint8_t *seg)
{
	size_t bb = block_bytes(t);
	for (int j = 0; j < GB; j++) {
		const uint8_t *blk = src + (size_t)j * bb, *qs = blk + 2;
		memcpy(seg + 2 * j, blk, 2);
		if (t == MLLM_DTYPE_Q8_0) {
			for (int k = 0; k < 16; k++)
				memcpy(seg + 32 + 32 * k + 2 * j, qs + 2 * k, 2);
			continue;
		}
		uint8_t q[MLLM__QK]; /* GGUF: low nibbles are 0..15, high 16..31 */
		for (int e = 0; e < 16; e++) {
			q[e] = qs[e] & 15;
			q[e + 16] = qs[e] >> 4;
		}
		for (int c = 0; c < 8; c++)
			for (int e = 0; e < 2; e++)
				seg[32 + 32 * c + 2 * j + e] =
				    (uint8_t)(q[4 * c + e] | q[4 * c + 2 + e] << 4);
	}
}

static void pack_pair(mllm_dtype t, const uint8_t *src, uint8_t *seg)
{
	size_t bb = block_bytes(t);
	for (int w = 0; w < 2; w++) {
		const uint8_t *blk = src + (size_t)w * bb;
		memcpy(seg + 2 * w, blk, 2);
		if (t == MLLM_DTYPE_Q8_0) {
			memcpy(seg + 4 + 16 * w, blk + 2, 16);
			memcpy(seg + 36 + 16 * w, blk + 18, 16);
		} else {
			memcpy(seg + 4 + 16 * w, blk + 2, 16);
		}
	}
}

void mllm__qx_pack_row(mllm_dtype t, const void *src, int64_t cols, void *dst)
{
	int64_t nb = cols / MLLM__QK, ng = nb / GB;
	size_t bb = block_bytes(t);
	const uint8_t *in = src;
	uint8_t *out = dst;
	for (int64_t g = 0; g < ng; g++)
		pack_group(t, in + (size_t)g * GB * bb, out + (size_t)g * GB * bb);
	for (int64_t b = ng * GB; b < nb; b += 2)
		pack_pair(t, in + (size_t)b * bb, out + (size_t)b * bb);
}

/* Block b of a packed row as 32 floats. */
static void dequant_block(mllm_dtype t, const uint8_t *row, int64_t nb, int64_t b,
                          float *restrict out)
{
	int shift;
	size_t sc;
	uint16_t h;
	(void)locate(t, nb, b, 0, &shift, &sc);
	memcpy(&h, row + sc, 2);
	float d = mllm__f16_to_f32(h);
	for (int e = 0; e < MLLM__QK; e++) {
		uint8_t v = row[locate(t, nb, b, e, &shift, &sc)];
		int q = t == MLLM_DTYPE_Q8_0 ? (int8_t)v : ((v >> shift) & 15) - 8;
		out[e] = d * (float)q;
	}
}

void mllm__qx_dequant_row(mllm_dtype t, const void *row, int64_t cols, float *restrict out)
{
	int64_t nb = cols / MLLM__QK, ng = nb / GB;
	size_t bb = block_bytes(t);
	const uint8_t *p = row;
	/* The offsets of locate(), written out: this feeds the sgemm panels. */
	for (int64_t g = 0; g < ng; g++) {
		const uint8_t *seg = p + (size_t)g * GB * bb;
		for (int j = 0; j < GB; j++) {
			uint16_t h;
			memcpy(&h, seg + 2 * j, 2);
			float d = mllm__f16_to_f32(h);
			float *o = out + (g * GB + j) * MLLM__QK;
			if (t == MLLM_DTYPE_Q8_0) {
				for (int k = 0; k < 16; k++) {
					o[2 * k] = d * (float)(int8_t)seg[32 + 32 * k + 2 * j];
					o[2 * k + 1] =
					    d * (float)(int8_t)seg[32 + 32 * k + 2 * j + 1];
				}
				continue;
			}
			for (int c = 0; c < 8; c++)
				for (int e = 0; e < 2; e++) {
					uint8_t v = seg[32 + 32 * c + 2 * j + e];
					o[4 * c + e] = d * (float)((v & 15) - 8);
					o[4 * c + 2 + e] = d * (float)((v >> 4) - 8);
				}
		}
	}
	for (int64_t b = ng * GB; b < nb; b++)
		dequant_block(t, p, nb, b, out + b * MLLM__QK);
}

/* The scalar product for a packed weight (any CPU): each block dequantized,
 * then summed in element order like the GGUF reference. */
void mllm__qx_matmul_ref(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                         float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t cols = W->cols, nb = cols / MLLM__QK;
	size_t rb = mllm__row_bytes(W->dtype, cols);
	float w[MLLM__QK];
	for (int64_t r = r0; r < r1; r++) {
		const uint8_t *row = (const uint8_t *)W->data + (size_t)r * rb;
		for (int64_t t = 0; t < n_tok; t++)
			y[t * ldy + r] = 0.0f;
		for (int64_t b = 0; b < nb; b++) {
			dequant_block(W->dtype, row, nb, b, w);
			for (int64_t t = 0; t < n_tok; t++) {
				const float *xb = x + t * cols + b * MLLM__QK;
				float s = y[t * ldy + r];
				for (int e = 0; e < MLLM__QK; e++)
					s += w[e] * xb[e];
				y[t * ldy + r] = s;
			}
		}
	}
}

void mllm__quantize_qx(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                       uint8_t *restrict out)
{
	int64_t nb = cols / MLLM__QK, ng = nb / GB;
	size_t stride = mllm__qx_act_bytes(cols);
	for (int64_t t = 0; t < n_tok; t++) {
		uint8_t *o = out + (size_t)t * stride;
		for (int64_t b = 0; b < nb; b++) {
			mllm__block_qa q;
			mllm__quantize_qa(isa, x + t * cols + b * MLLM__QK, 1, MLLM__QK, &q);
			int32_t sum = 0;
			for (int e = 0; e < MLLM__QK; e++)
				sum += q.qs[e];
			int32_t off = -8 * sum;
			if (b < ng * GB) {
				uint8_t *g = o + (size_t)(b / GB) * ACT_GROUP;
				size_t j = (size_t)(b % GB);
				for (size_t k = 0; k < 16; k++)
					memcpy(g + 64 * k + 4 * j, &q.qs[2 * k], 4);
				memcpy(g + 1024 + 4 * j, &q.d, 4);
				memcpy(g + 1088 + 4 * j, &off, 4);
			} else {
				uint8_t *p = o + (size_t)ng * ACT_GROUP +
				             (size_t)((b - ng * GB) / 2) * ACT_PAIR;
				size_t which = (size_t)((b - ng * GB) % 2);
				memcpy(p + 32 * which, q.qs, 32);
				memcpy(p + 64 + 32 * which, q.qs + 16, 32);
				int32_t zero = 0;
				for (size_t l = 0; l < 8; l++) {
					memcpy(p + 128 + 4 * (8 * which + l), &q.d, 4);
					memcpy(p + 192 + 4 * (8 * which + l), l ? &zero : &off, 4);
				}
			}
		}
	}
}

#ifdef MLLM_X86

/* 32 Q4_0 bytes as two vectors of int16 q (0..15): low nibbles, high. */
T_AVX512 static inline __m512i q4_words(const uint8_t *p, __m512i *hi)
{
	__m512i t = _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)p));
	*hi = _mm512_srli_epi16(t, 4);
	return _mm512_and_si512(t, _mm512_set1_epi16(15));
}

/* Four sums stored at y[0..3], each added with exactly the pairing of
 * _mm512_reduce_add_ps (lane i with i + 8, then i + 4, i + 2, i + 1), so a
 * row's result does not depend on whether it was reduced alone. */
T_AVX512 static inline void reduce4_store(__m512 a0, __m512 a1, __m512 a2, __m512 a3,
                                          float *restrict y)
{
#define HALVES(u, v)                                                                               \
	_mm512_add_ps(_mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(1, 0, 1, 0)),                         \
	              _mm512_shuffle_f32x4(u, v, _MM_SHUFFLE(3, 2, 3, 2)))
	__m512 h01 = HALVES(a0, a1), h23 = HALVES(a2, a3);
#undef HALVES
	__m512 q = _mm512_add_ps(_mm512_shuffle_f32x4(h01, h23, _MM_SHUFFLE(2, 0, 2, 0)),
	                         _mm512_shuffle_f32x4(h01, h23, _MM_SHUFFLE(3, 1, 3, 1)));
	q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(1, 0, 3, 2)));
	q = _mm512_add_ps(q, _mm512_permute_ps(q, _MM_SHUFFLE(2, 3, 0, 1)));
	__m512 g = _mm512_permutexvar_ps(
	    _mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), q);
	_mm_storeu_ps(y, _mm512_castps512_ps128(g));
}

/* A tile: NR (1 or 4) rows at w0 (stride rb) x NT (1 or 2) tokens at xa
 * (stride xs). Per (row, token) the same operations whatever NR and NT, so
 * results are batch-invariant bit for bit. pf: the next row group, read
 * ahead in step with this one (first token tile only), or NULL. */
T_AVX512 static inline __attribute__((always_inline)) void
qx_tile(bool q4, int NR, int NT, const uint8_t *w0, size_t rb, const uint8_t *xa, size_t xs,
        int64_t ng, int64_t np, const char *pf, float *restrict y, int64_t ldy)
{
	const size_t bb = q4 ? sizeof(mllm__block_q4_0) : sizeof(mllm__block_q8_0);
	__m512 acc[4][2];
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
		for (int t = 0; t < NT; t++)
			acc[r][t] = _mm512_setzero_ps();
	const uint8_t *wg = w0, *xg = xa;
	for (int64_t g = 0; g < ng; g++, wg += GB * bb, xg += ACT_GROUP) {
		if (pf)
			for (size_t o = 0; o < 4 * GB * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * 4 + o, _MM_HINT_T0);
		__m512i s[4][2];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
			for (int t = 0; t < NT; t++)
				s[r][t] = q4 ? _mm512_loadu_si512(xg + t * xs + 1088)
				             : _mm512_setzero_si512();
		if (q4) {
#pragma GCC unroll 8
			for (int c = 0; c < 8; c++)
#pragma GCC unroll 4
				for (int r = 0; r < NR; r++) {
					__m512i hi, lo = q4_words(wg + r * rb + 32 + 32 * c, &hi);
#pragma GCC unroll 2
					for (int t = 0; t < NT; t++) {
						const uint8_t *xv = xg + t * xs + 128 * c;
						s[r][t] = _mm512_dpwssd_epi32(
						    s[r][t], lo, _mm512_loadu_si512(xv));
						s[r][t] = _mm512_dpwssd_epi32(
						    s[r][t], hi, _mm512_loadu_si512(xv + 64));
					}
				}
		} else {
#pragma GCC unroll 16
			for (int k = 0; k < 16; k++)
#pragma GCC unroll 4
				for (int r = 0; r < NR; r++) {
					__m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(
					    (const __m256i *)(wg + r * rb + 32 + 32 * k)));
#pragma GCC unroll 2
					for (int t = 0; t < NT; t++)
						s[r][t] = _mm512_dpwssd_epi32(
						    s[r][t], w,
						    _mm512_loadu_si512(xg + t * xs + 64 * k));
				}
		}
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			__m512 dw =
			    _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(wg + r * rb)));
#pragma GCC unroll 2
			for (int t = 0; t < NT; t++)
				acc[r][t] = _mm512_fmadd_ps(
				    _mm512_cvtepi32_ps(s[r][t]),
				    _mm512_mul_ps(dw, _mm512_loadu_ps(xg + t * xs + 1024)),
				    acc[r][t]);
		}
	}
	const __m256i pair_idx = _mm256_setr_epi16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
	for (int64_t p = 0; p < np; p++, wg += 2 * bb, xg += ACT_PAIR) {
		if (pf)
			for (size_t o = 0; o < 4 * 2 * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * 4 + o, _MM_HINT_T0);
		__m512i s[4][2];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			__m512i w0v, w1v;
			if (q4) {
				w0v = q4_words(wg + r * rb + 4, &w1v);
			} else {
				w0v = _mm512_cvtepi8_epi16(
				    _mm256_loadu_si256((const __m256i *)(wg + r * rb + 4)));
				w1v = _mm512_cvtepi8_epi16(
				    _mm256_loadu_si256((const __m256i *)(wg + r * rb + 36)));
			}
#pragma GCC unroll 2
			for (int t = 0; t < NT; t++) {
				const uint8_t *xv = xg + t * xs;
				s[r][t] =
				    q4 ? _mm512_loadu_si512(xv + 192) : _mm512_setzero_si512();
				s[r][t] = _mm512_dpwssd_epi32(s[r][t], w0v, _mm512_loadu_si512(xv));
				s[r][t] =
				    _mm512_dpwssd_epi32(s[r][t], w1v, _mm512_loadu_si512(xv + 64));
			}
		}
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			int32_t sc;
			memcpy(&sc, wg + r * rb, 4);
			__m512 dw = _mm512_cvtph_ps(
			    _mm256_permutexvar_epi16(pair_idx, _mm256_set1_epi32(sc)));
#pragma GCC unroll 2
			for (int t = 0; t < NT; t++)
				acc[r][t] = _mm512_fmadd_ps(
				    _mm512_cvtepi32_ps(s[r][t]),
				    _mm512_mul_ps(dw, _mm512_loadu_ps(xg + t * xs + 128)),
				    acc[r][t]);
		}
	}
#pragma GCC unroll 2
	for (int t = 0; t < NT; t++) {
		if (NR == 4)
			reduce4_store(acc[0][t], acc[1][t], acc[2][t], acc[3][t], y + t * ldy);
		else
			y[t * ldy] = _mm512_reduce_add_ps(acc[0][t]);
	}
}

/* One row group against all tokens, two at a time: the group's weights stay
 * in L1 across the token tiles. */
T_AVX512 static inline __attribute__((always_inline)) void
qx_rows(bool q4, int NR, const uint8_t *w0, size_t rb, const uint8_t *xa, size_t xs, int64_t n_tok,
        int64_t ng, int64_t np, const char *pf, float *restrict y, int64_t ldy)
{
	int64_t k = 0;
	for (; k + 2 <= n_tok; k += 2) {
		qx_tile(q4, NR, 2, w0, rb, xa + (size_t)k * xs, xs, ng, np, pf, y + k * ldy, ldy);
		pf = NULL;
	}
	if (k < n_tok)
		qx_tile(q4, NR, 1, w0, rb, xa + (size_t)k * xs, xs, ng, np, pf, y + k * ldy, ldy);
}

T_AVX512 static inline __attribute__((always_inline)) void
qx_matmul_t(bool q4, const mllm__tensor *W, const uint8_t *xa, int64_t n_tok, float *restrict y,
            int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t nb = W->cols / MLLM__QK, ng = nb / GB, np = nb % GB / 2;
	size_t rb = mllm__row_bytes(W->dtype, W->cols), xs = mllm__qx_act_bytes(W->cols);
	const uint8_t *base = W->data;
	int64_t r = r0;
	for (; r + 4 <= r1; r += 4) {
		const uint8_t *w0 = base + (size_t)r * rb;
		qx_rows(q4, 4, w0, rb, xa, xs, n_tok, ng, np, (const char *)w0 + 4 * rb, y + r,
		        ldy);
	}
	for (; r < r1; r++)
		qx_rows(q4, 1, base + (size_t)r * rb, rb, xa, xs, n_tok, ng, np, NULL, y + r, ldy);
}

T_AVX512 static void qx_matmul_q8(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                  float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	qx_matmul_t(false, W, xa, n_tok, y, ldy, r0, r1);
}

T_AVX512 static void qx_matmul_q4(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                  float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	qx_matmul_t(true, W, xa, n_tok, y, ldy, r0, r1);
}

/* ---- AVX2: the same layout, each 512-bit vector as two 256-bit halves ----
 *
 * The low half of a group's vectors holds blocks 0..7, the high half 8..15.
 * vpmaddwd + vpaddd is vpdpwssd (both wrap, and |x| <= 32767 keeps every
 * pair sum in range), the per-lane float steps are the AVX-512 kernel's,
 * and the final sum pairs lanes as _mm512_reduce_add_ps does: a row's
 * result is the AVX-512 kernel's, bit for bit, whatever the tile. */

T_AVX2 static inline float reduce16_avx2(__m256 lo, __m256 hi)
{
	__m256 v = _mm256_add_ps(lo, hi); /* i, i + 8 */
	__m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* i + 4 */
	q = _mm_add_ps(q, _mm_movehl_ps(q, q));                                        /* i + 2 */
	q = _mm_add_ss(q, _mm_movehdup_ps(q));                                         /* i + 1 */
	return _mm_cvtss_f32(q);
}

/* 16 Q8_0 bytes (8 blocks x 2 weights) or 16 Q4_0 bytes as int16 words. */
T_AVX2 static inline __m256i q8_half(const uint8_t *p)
{
	return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p));
}

T_AVX2 static inline __m256i q4_half(const uint8_t *p, __m256i *hi)
{
	__m256i t = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)p));
	*hi = _mm256_srli_epi16(t, 4);
	return _mm256_and_si256(t, _mm256_set1_epi16(15));
}

T_AVX2 static inline __m256i madd_add(__m256i s, __m256i w, const uint8_t *x)
{
	return _mm256_add_epi32(s, _mm256_madd_epi16(w, _mm256_loadu_si256((const __m256i *)x)));
}

/* A Q8_0 group of the 2 x 2 tile: the integer sums s[r][t][h] over its 16
 * chunks. Written out because GCC's allocation of the C loop added a
 * register move per vpaddd (16 accumulators, weights and products fill the
 * 16 registers), a third of the loop's instructions; the operations are
 * the C loop's, so the sums are the same integers. */
T_AVX2 static inline __attribute__((always_inline)) void
q8_group_2x2(const uint8_t *w0, const uint8_t *w1, const uint8_t *x0, const uint8_t *x1,
             __m256i s[2][4][2])
{
	__m256i a0 = s[0][0][0], a1 = s[0][0][1], a2 = s[1][0][0], a3 = s[1][0][1];
	__m256i a4 = s[0][1][0], a5 = s[0][1][1], a6 = s[1][1][0], a7 = s[1][1][1];
	for (int k = 0; k < 16; k++, w0 += 32, w1 += 32, x0 += 64, x1 += 64) {
		__m256i u0, u1, u2, u3, p0, p1, p2, p3;
		__asm__("vpmovsxbw   (%[w0]), %[u0]\n\t"
		        "vpmovsxbw 16(%[w0]), %[u1]\n\t"
		        "vpmovsxbw   (%[w1]), %[u2]\n\t"
		        "vpmovsxbw 16(%[w1]), %[u3]\n\t"
		        "vpmaddwd   (%[x0]), %[u0], %[p0]\n\t"
		        "vpmaddwd 32(%[x0]), %[u1], %[p1]\n\t"
		        "vpmaddwd   (%[x0]), %[u2], %[p2]\n\t"
		        "vpmaddwd 32(%[x0]), %[u3], %[p3]\n\t"
		        "vpaddd %[p0], %[a0], %[a0]\n\t"
		        "vpaddd %[p1], %[a1], %[a1]\n\t"
		        "vpaddd %[p2], %[a2], %[a2]\n\t"
		        "vpaddd %[p3], %[a3], %[a3]\n\t"
		        "vpmaddwd   (%[x1]), %[u0], %[p0]\n\t"
		        "vpmaddwd 32(%[x1]), %[u1], %[p1]\n\t"
		        "vpmaddwd   (%[x1]), %[u2], %[p2]\n\t"
		        "vpmaddwd 32(%[x1]), %[u3], %[p3]\n\t"
		        "vpaddd %[p0], %[a4], %[a4]\n\t"
		        "vpaddd %[p1], %[a5], %[a5]\n\t"
		        "vpaddd %[p2], %[a6], %[a6]\n\t"
		        "vpaddd %[p3], %[a7], %[a7]"
		        : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4),
		          [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7), [u0] "=&x"(u0),
		          [u1] "=&x"(u1), [u2] "=&x"(u2), [u3] "=&x"(u3), [p0] "=&x"(p0),
		          [p1] "=&x"(p1), [p2] "=&x"(p2), [p3] "=&x"(p3)
		        : [w0] "r"(w0), [w1] "r"(w1), [x0] "r"(x0), [x1] "r"(x1)
		        : "memory");
	}
	s[0][0][0] = a0, s[0][0][1] = a1, s[1][0][0] = a2, s[1][0][1] = a3;
	s[0][1][0] = a4, s[0][1][1] = a5, s[1][1][0] = a6, s[1][1][1] = a7;
}

/* A Q8_0 group of the 2 x 4 tile, one half at a time: the four tokens'
 * activation vectors stay in registers for both rows, so a chunk costs six
 * loads (two of them widening the weights) for eight vpmaddwd, where the
 * 2 x 2 group's twelve loads held it to ~2/3 of the multiplier's rate on
 * AMD Zen 3 (two 256-bit loads per cycle). The same products and sums as
 * the C loop, so the same integers. */
T_AVX2 static inline __attribute__((always_inline)) void
q8_group_2x4(const uint8_t *w0, const uint8_t *w1, const uint8_t *xg, size_t xs, __m256i s[2][4][2])
{
#define M32(p) (*(const __m256i *)(const void *)(p))
#define M16(p) (*(const __m128i *)(const void *)(p))
	for (int h = 0; h < 2; h++) {
		const uint8_t *p0 = w0 + 16 * h, *p1 = w1 + 16 * h;
		const uint8_t *x0 = xg + 32 * h, *x1 = x0 + xs, *x2 = x1 + xs, *x3 = x2 + xs;
		__m256i a0 = s[0][0][h], a1 = s[0][1][h], a2 = s[0][2][h], a3 = s[0][3][h];
		__m256i a4 = s[1][0][h], a5 = s[1][1][h], a6 = s[1][2][h], a7 = s[1][3][h];
		/* Unrolled, so that every address is a base and a constant: the
		 * pointer arithmetic of a loop cost a fifth of the rate. */
#pragma GCC unroll 16
		for (int k = 0; k < 16; k++) {
			__m256i v0, v1, v2, v3, u0, u1, q0, q1;
			__asm__("vmovdqu   %[m0], %[v0]\n\t"
			        "vmovdqu   %[m1], %[v1]\n\t"
			        "vpmovsxbw %[n0], %[u0]\n\t"
			        "vmovdqu   %[m2], %[v2]\n\t"
			        "vmovdqu   %[m3], %[v3]\n\t"
			        "vpmovsxbw %[n1], %[u1]\n\t"
			        "vpmaddwd %[v0], %[u0], %[q0]\n\t"
			        "vpmaddwd %[v0], %[u1], %[q1]\n\t"
			        "vpaddd %[q0], %[a0], %[a0]\n\t"
			        "vpaddd %[q1], %[a4], %[a4]\n\t"
			        "vpmaddwd %[v1], %[u0], %[q0]\n\t"
			        "vpmaddwd %[v1], %[u1], %[q1]\n\t"
			        "vpaddd %[q0], %[a1], %[a1]\n\t"
			        "vpaddd %[q1], %[a5], %[a5]\n\t"
			        "vpmaddwd %[v2], %[u0], %[q0]\n\t"
			        "vpmaddwd %[v2], %[u1], %[q1]\n\t"
			        "vpaddd %[q0], %[a2], %[a2]\n\t"
			        "vpaddd %[q1], %[a6], %[a6]\n\t"
			        "vpmaddwd %[v3], %[u0], %[q0]\n\t"
			        "vpmaddwd %[v3], %[u1], %[q1]\n\t"
			        "vpaddd %[q0], %[a3], %[a3]\n\t"
			        "vpaddd %[q1], %[a7], %[a7]"
			        : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3),
			          [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7),
			          [v0] "=&x"(v0), [v1] "=&x"(v1), [v2] "=&x"(v2), [v3] "=&x"(v3),
			          [u0] "=&x"(u0), [u1] "=&x"(u1), [q0] "=&x"(q0), [q1] "=&x"(q1)
			        : [n0] "m"(M16(p0 + 32 * k)), [n1] "m"(M16(p1 + 32 * k)),
			          [m0] "m"(M32(x0 + 64 * k)), [m1] "m"(M32(x1 + 64 * k)),
			          [m2] "m"(M32(x2 + 64 * k)), [m3] "m"(M32(x3 + 64 * k)));
		}
		s[0][0][h] = a0, s[0][1][h] = a1, s[0][2][h] = a2, s[0][3][h] = a3;
		s[1][0][h] = a4, s[1][1][h] = a5, s[1][2][h] = a6, s[1][3][h] = a7;
	}
#undef M32
#undef M16
}

/* A tile: NR (1 or 2) rows x NT (1 or 2; 4 for Q8_0) tokens; s[.][.][h] is
 * half h. */
T_AVX2 static inline __attribute__((always_inline)) void
qx_tile_avx2(bool q4, int NR, int NT, const uint8_t *w0, size_t rb, const uint8_t *xa, size_t xs,
             int64_t ng, int64_t np, const char *pf, float *restrict y, int64_t ldy)
{
	const size_t bb = q4 ? sizeof(mllm__block_q4_0) : sizeof(mllm__block_q8_0);
	__m256 acc[2][4][2];
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
	const uint8_t *wg = w0, *xg = xa;
	for (int64_t g = 0; g < ng; g++, wg += GB * bb, xg += ACT_GROUP) {
		if (pf)
			for (size_t o = 0; o < (size_t)NR * GB * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * NR + o, _MM_HINT_T0);
		__m256i s[2][4][2];
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
			for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
				for (int h = 0; h < 2; h++)
					s[r][t][h] =
					    q4 ? _mm256_loadu_si256(
					             (const __m256i *)(xg + t * xs + 1088 + 32 * h))
					       : _mm256_setzero_si256();
		if (q4) {
#pragma GCC unroll 1
			for (int c = 0; c < 8; c++)
#pragma GCC unroll 4
				for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
					for (int h = 0; h < 2; h++) {
						__m256i hi,
						    lo = q4_half(wg + r * rb + 32 + 32 * c + 16 * h,
						                 &hi);
#pragma GCC unroll 4
						for (int t = 0; t < NT; t++) {
							const uint8_t *xv =
							    xg + t * xs + 128 * c + 32 * h;
							s[r][t][h] = madd_add(s[r][t][h], lo, xv);
							s[r][t][h] =
							    madd_add(s[r][t][h], hi, xv + 64);
						}
					}
		} else if (NR == 2 && NT == 4) {
			q8_group_2x4(wg + 32, wg + rb + 32, xg, xs, s);
		} else if (NR == 2 && NT == 2) {
			q8_group_2x2(wg + 32, wg + rb + 32, xg, xg + xs, s);
		} else {
#pragma GCC unroll 1
			for (int k = 0; k < 16; k++)
#pragma GCC unroll 4
				for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
					for (int h = 0; h < 2; h++) {
						__m256i w =
						    q8_half(wg + r * rb + 32 + 32 * k + 16 * h);
#pragma GCC unroll 4
						for (int t = 0; t < NT; t++)
							s[r][t][h] =
							    madd_add(s[r][t][h], w,
							             xg + t * xs + 64 * k + 32 * h);
					}
		}
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
			for (int h = 0; h < 2; h++) {
				__m256 dw = _mm256_cvtph_ps(
				    _mm_loadu_si128((const __m128i *)(wg + r * rb + 16 * h)));
#pragma GCC unroll 4
				for (int t = 0; t < NT; t++)
					acc[r][t][h] = _mm256_fmadd_ps(
					    _mm256_cvtepi32_ps(s[r][t][h]),
					    _mm256_mul_ps(
					        dw,
					        _mm256_loadu_ps(
					            (const float *)(xg + t * xs + 1024) + 8 * h)),
					    acc[r][t][h]);
			}
	}
	for (int64_t p = 0; p < np; p++, wg += 2 * bb, xg += ACT_PAIR) {
		if (pf)
			for (size_t o = 0; o < (size_t)NR * 2 * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * NR + o, _MM_HINT_T0);
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			/* h = 0: block A, h = 1: block B */
			__m256i w0v[2], w1v[2];
			if (q4) {
				w0v[0] = q4_half(wg + r * rb + 4, &w1v[0]);
				w0v[1] = q4_half(wg + r * rb + 20, &w1v[1]);
			} else {
				w0v[0] = q8_half(wg + r * rb + 4);
				w0v[1] = q8_half(wg + r * rb + 20);
				w1v[0] = q8_half(wg + r * rb + 36);
				w1v[1] = q8_half(wg + r * rb + 52);
			}
			uint16_t sc[2];
			memcpy(sc, wg + r * rb, 4);
#pragma GCC unroll 2
			for (int h = 0; h < 2; h++) {
				__m256 dw = _mm256_cvtph_ps(_mm_set1_epi16((short)sc[h]));
#pragma GCC unroll 4
				for (int t = 0; t < NT; t++) {
					const uint8_t *xv = xg + t * xs + 32 * h;
					__m256i s =
					    q4 ? _mm256_loadu_si256((const __m256i *)(xv + 192))
					       : _mm256_setzero_si256();
					s = madd_add(s, w0v[h], xv);
					s = madd_add(s, w1v[h], xv + 64);
					acc[r][t][h] = _mm256_fmadd_ps(
					    _mm256_cvtepi32_ps(s),
					    _mm256_mul_ps(
					        dw, _mm256_loadu_ps((const float *)(xv + 128))),
					    acc[r][t][h]);
				}
			}
		}
	}
#pragma GCC unroll 4
	for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++)
			y[t * ldy + r] = reduce16_avx2(acc[r][t][0], acc[r][t][1]);
}

/* A packed row as floats for the sgemm panels (prefill on AVX2): each
 * value d * q exactly as mllm__qx_dequant_row computes it. A Q8_0 chunk
 * holds two consecutive weights of each of 16 blocks, a Q4_0 chunk four
 * (two low nibbles, two high), so a chunk converts in whole vectors and
 * leaves in 8- or 16-byte pieces, one per block. */
T_AVX2 static void qx_dequant_group_avx2(bool q4, const uint8_t *seg, float *restrict out)
{
	__m256 d[GB / 4]; /* Q8_0: d[j] twice, blocks 4i..4i+3; Q4_0: d[j] 4x, blocks 2i, 2i+1 */
	__m256 dh[2] = {_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)seg)),
	                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(seg + 16)))};
	if (!q4) {
		for (int i = 0; i < 4; i++) {
			__m256 h = dh[i / 2];
			__m256 q =
			    _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
			__m256 r =
			    _mm256_permutevar8x32_ps(h, _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7));
			d[i] = i % 2 ? r : q;
		}
		for (int k = 0; k < 16; k++) {
			const uint8_t *c = seg + 32 + 32 * k;
			for (int i = 0; i < 4; i++) { /* blocks 4i .. 4i + 3 */
				__m256 v = _mm256_mul_ps(
				    d[i], _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
				              _mm_loadl_epi64((const __m128i *)(c + 8 * i)))));
				__m128 lo = _mm256_castps256_ps128(v),
				       hi = _mm256_extractf128_ps(v, 1);
				float *o = out + (size_t)(4 * i) * MLLM__QK + 2 * k;
				_mm_storel_pi((__m64 *)o, lo);
				_mm_storeh_pi((__m64 *)(o + MLLM__QK), lo);
				_mm_storel_pi((__m64 *)(o + 2 * MLLM__QK), hi);
				_mm_storeh_pi((__m64 *)(o + 3 * MLLM__QK), hi);
			}
		}
		return;
	}
	__m256 dq[GB / 2];
	for (int i = 0; i < GB / 2; i++) {
		__m256 h = dh[i / 4];
		int a = 2 * (i % 4);
		dq[i] = _mm256_permutevar8x32_ps(
		    h, _mm256_setr_epi32(a, a, a, a, a + 1, a + 1, a + 1, a + 1));
	}
	const __m256i m4 = _mm256_set1_epi8(15), eight = _mm256_set1_epi32(8);
	for (int c = 0; c < 8; c++) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(seg + 32 + 32 * c));
		__m256i lo = _mm256_and_si256(v, m4);
		__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
		/* per 128-bit lane: blocks 0..3 (8..11), then 4..7 (12..15), each
		 * as q[4c], q[4c + 1], q[4c + 2], q[4c + 3] */
		__m256i u[2] = {_mm256_unpacklo_epi16(lo, hi), _mm256_unpackhi_epi16(lo, hi)};
		for (int l = 0; l < 2; l++)
			for (int h = 0; h < 2; h++)
				for (int p = 0; p < 2; p++) {
					int j = 8 * l + 4 * h + 2 * p; /* blocks j, j + 1 */
					__m128i b = l ? _mm256_extracti128_si256(u[h], 1)
					              : _mm256_castsi256_si128(u[h]);
					if (p)
						b = _mm_srli_si128(b, 8);
					__m256 f = _mm256_mul_ps(
					    dq[j / 2], _mm256_cvtepi32_ps(_mm256_sub_epi32(
					                   _mm256_cvtepu8_epi32(b), eight)));
					float *o = out + (size_t)j * MLLM__QK + 4 * c;
					_mm_storeu_ps(o, _mm256_castps256_ps128(f));
					_mm_storeu_ps(o + MLLM__QK, _mm256_extractf128_ps(f, 1));
				}
	}
}

T_AVX2 static void qx_dequant_row_avx2(mllm_dtype t, const void *row, int64_t cols,
                                       float *restrict out)
{
	int64_t nb = cols / MLLM__QK, ng = nb / GB;
	size_t bb = block_bytes(t);
	const uint8_t *p = row;
	for (int64_t g = 0; g < ng; g++)
		qx_dequant_group_avx2(t == MLLM_DTYPE_Q4_0, p + (size_t)g * GB * bb,
		                      out + g * GB * MLLM__QK);
	for (int64_t b = ng * GB; b < nb; b++)
		dequant_block(t, p, nb, b, out + b * MLLM__QK);
}

#endif /* MLLM_X86 */

/* ---- 8-bit activations for Q4_0 (AVX2): vpmaddubsw ---------------------
 *
 * Q4_0's stored q (0..15) are unsigned bytes, so with activations quantized
 * to int8 (|x| <= 127) vpmaddubsw multiplies 32 pairs at once and its
 * int16 pair sums (<= 3810) can be added for a whole group (8 chunks:
 * <= 30480) before one vpmaddwd by 1 widens them: about half the
 * vpmaddwd/vpaddd of the 16-bit path per weight. A Q4_0 chunk splits into
 * low and high nibbles, and interleaving their 16-bit words puts q[4c ..
 * 4c + 3] of one block in each 32-bit lane: u0 holds blocks 0-3 and 8-11,
 * u1 blocks 4-7 and 12-15. The activations follow that order:
 *   group (ACT8_GROUP bytes): chunk c: A0[c], A1[c] (32 bytes each, lane k
 *     of A0 = x[j][4c .. 4c + 3] for the block j of lane k of u0); the
 *     scales in u0's then u1's lane order (f32); the offsets -8 * sum(x)
 *     (int32), the same order.
 *   pair (ACT8_PAIR bytes): X0 = A[0..15] B[0..15], X1 = A[16..31]
 *     B[16..31] (the GGUF nibble order of the pair's bytes); scales A in
 *     lanes 0-3, B in 4-7; offsets A's in lane 0, B's in lane 4.
 * The integers are exact; the float steps are the 16-bit path's. */

#define ACT8_GROUP 640 /* 8 chunks x 64 + 32 scales + 32 offsets */
#define ACT8_PAIR  128 /* 2 vectors + scales + offsets */

size_t mllm__qx8_act_bytes(int64_t cols)
{
	int64_t nb = cols / MLLM__QK;
	return (size_t)(nb / GB) * ACT8_GROUP + (size_t)(nb % GB / 2) * ACT8_PAIR;
}

/* Lane of block j (0..15) in u0 (j % 8 < 4) or u1: (vector, lane). */
static inline void act8_lane(int j, int *vec, int *lane)
{
	*vec = j % 8 >= 4;
	*lane = (j / 8) * 4 + j % 4;
}

/* One block of 32 activations to int8: d = max|x| / 127, q = x / d
 * rounded to nearest even (the vector unit's default), |q| <= 127. */
static void q8_block_scalar(const float *x, int8_t *q, float *d, int32_t *sum)
{
	float amax = 0.0f;
	for (int e = 0; e < MLLM__QK; e++)
		amax = fmaxf(amax, fabsf(x[e]));
	*d = amax / 127.0f;
	float id = amax != 0.0f ? 127.0f / amax : 0.0f;
	int32_t s = 0;
	for (int e = 0; e < MLLM__QK; e++) {
		q[e] = (int8_t)lrintf(x[e] * id);
		s += q[e];
	}
	*sum = s;
}

#ifdef MLLM_X86
T_AVX2 static void q8_block_avx2(const float *x, int8_t *q, float *d, int32_t *sum)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
	__m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
	__m256 a =
	    _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
	                  _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
	__m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
	float amax = _mm_cvtss_f32(h);
	*d = amax / 127.0f;
	__m256 s = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
	__m256i q0 = _mm256_cvtps_epi32(_mm256_mul_ps(v0, s));
	__m256i q1 = _mm256_cvtps_epi32(_mm256_mul_ps(v1, s));
	__m256i q2 = _mm256_cvtps_epi32(_mm256_mul_ps(v2, s));
	__m256i q3 = _mm256_cvtps_epi32(_mm256_mul_ps(v3, s));
	__m256i t = _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3));
	__m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
	u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4e));
	u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xb1));
	*sum = _mm_cvtsi128_si32(u);
	/* packs work per 128-bit lane: q0 q1 -> 0-3 8-11 4-7 12-15, then the
	 * byte pack and one dword permute put 0..31 in order */
	__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
	p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	_mm256_storeu_si256((__m256i *)q, p);
}
#endif

void mllm__q8_act_block(mllm__isa isa, const float *x, int8_t *q, float *d, int32_t *sum)
{
#ifdef MLLM_X86
	if (isa != MLLM__ISA_SCALAR) {
		q8_block_avx2(x, q, d, sum);
		return;
	}
#endif
	(void)isa;
	q8_block_scalar(x, q, d, sum);
}

void mllm__quantize_qx8(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                        uint8_t *restrict out)
{
	int64_t nb = cols / MLLM__QK, ng = nb / GB;
	size_t stride = mllm__qx8_act_bytes(cols);
	for (int64_t t = 0; t < n_tok; t++) {
		uint8_t *o = out + (size_t)t * stride;
		for (int64_t b = 0; b < nb; b++) {
			int8_t q[MLLM__QK];
			float d;
			int32_t sum;
#ifdef MLLM_X86
			if (isa != MLLM__ISA_SCALAR)
				q8_block_avx2(x + t * cols + b * MLLM__QK, q, &d, &sum);
			else
#endif
				q8_block_scalar(x + t * cols + b * MLLM__QK, q, &d, &sum);
			int32_t off = -8 * sum;
			if (b < ng * GB) {
				uint8_t *g = o + (size_t)(b / GB) * ACT8_GROUP;
				int vec, lane;
				act8_lane((int)(b % GB), &vec, &lane);
				for (int c = 0; c < 8; c++)
					memcpy(g + 64 * c + 32 * vec + 4 * lane, q + 4 * c, 4);
				memcpy(g + 512 + 32 * vec + 4 * lane, &d, 4);
				memcpy(g + 576 + 32 * vec + 4 * lane, &off, 4);
			} else {
				uint8_t *p = o + (size_t)ng * ACT8_GROUP +
				             (size_t)((b - ng * GB) / 2) * ACT8_PAIR;
				size_t which = (size_t)((b - ng * GB) % 2);
				int32_t zero = 0;
				memcpy(p + 16 * which, q, 16);
				memcpy(p + 32 + 16 * which, q + 16, 16);
				for (size_t l = 0; l < 4; l++) {
					memcpy(p + 64 + 4 * (4 * which + l), &d, 4);
					memcpy(p + 96 + 4 * (4 * which + l), l ? &zero : &off, 4);
				}
			}
		}
	}
}

#ifdef MLLM_X86

/* A Q4_0 chunk (32 bytes, 16 blocks) as u0 / u1 (see above). */
T_AVX2 static inline void q4_chunk8(const uint8_t *p, __m256i *u0, __m256i *u1)
{
	const __m256i m4 = _mm256_set1_epi8(15);
	__m256i v = _mm256_loadu_si256((const __m256i *)p);
	__m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
	*u0 = _mm256_unpacklo_epi16(lo, hi);
	*u1 = _mm256_unpackhi_epi16(lo, hi);
}

/* A tile: NR (1 or 2) rows x NT (1 or 2) tokens; h = 0: u0's blocks, 1: u1's. */
T_AVX2 static inline __attribute__((always_inline)) void
qx8_tile_avx2(int NR, int NT, const uint8_t *w0, size_t rb, const uint8_t *xa, size_t xs,
              int64_t ng, int64_t np, const char *pf, float *restrict y, int64_t ldy)
{
	const size_t bb = sizeof(mllm__block_q4_0);
	const __m256i ones = _mm256_set1_epi16(1), m4 = _mm256_set1_epi8(15);
	__m256 acc[2][2][2];
#pragma GCC unroll 2
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
		for (int t = 0; t < NT; t++)
			acc[r][t][0] = acc[r][t][1] = _mm256_setzero_ps();
	const uint8_t *wg = w0, *xg = xa;
	for (int64_t g = 0; g < ng; g++, wg += GB * bb, xg += ACT8_GROUP) {
		if (pf)
			for (size_t o = 0; o < (size_t)NR * GB * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * NR + o, _MM_HINT_T0);
		__m256i s[2][2][2];
#pragma GCC unroll 2
		for (int r = 0; r < NR; r++)
#pragma GCC unroll 2
			for (int t = 0; t < NT; t++)
				s[r][t][0] = s[r][t][1] = _mm256_setzero_si256();
#pragma GCC unroll 1
		for (int c = 0; c < 8; c++)
#pragma GCC unroll 2
			for (int r = 0; r < NR; r++) {
				__m256i u[2];
				q4_chunk8(wg + r * rb + 32 + 32 * c, &u[0], &u[1]);
#pragma GCC unroll 2
				for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
					for (int h = 0; h < 2; h++)
						s[r][t][h] = _mm256_add_epi16(
						    s[r][t][h],
						    _mm256_maddubs_epi16(
						        u[h],
						        _mm256_loadu_si256(
						            (const __m256i *)(xg + t * xs + 64 * c +
						                              32 * h))));
			}
#pragma GCC unroll 2
		for (int r = 0; r < NR; r++) {
			__m128i sa = _mm_loadu_si128((const __m128i *)(wg + r * rb));
			__m128i sb = _mm_loadu_si128((const __m128i *)(wg + r * rb + 16));
			__m256 dw[2] = {_mm256_cvtph_ps(_mm_unpacklo_epi64(sa, sb)),
			                _mm256_cvtph_ps(_mm_unpackhi_epi64(sa, sb))};
#pragma GCC unroll 2
			for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
				for (int h = 0; h < 2; h++) {
					const uint8_t *xv = xg + t * xs + 32 * h;
					__m256i si = _mm256_add_epi32(
					    _mm256_madd_epi16(s[r][t][h], ones),
					    _mm256_loadu_si256((const __m256i *)(xv + 576)));
					acc[r][t][h] = _mm256_fmadd_ps(
					    _mm256_cvtepi32_ps(si),
					    _mm256_mul_ps(
					        dw[h], _mm256_loadu_ps((const float *)(xv + 512))),
					    acc[r][t][h]);
				}
		}
	}
	for (int64_t p = 0; p < np; p++, wg += 2 * bb, xg += ACT8_PAIR) {
		if (pf)
			for (size_t o = 0; o < (size_t)NR * 2 * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * NR + o, _MM_HINT_T0);
#pragma GCC unroll 2
		for (int r = 0; r < NR; r++) {
			__m256i v = _mm256_loadu_si256((const __m256i *)(wg + r * rb + 4));
			__m256i lo = _mm256_and_si256(v, m4);
			__m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
			uint16_t sc[2];
			memcpy(sc, wg + r * rb, 4);
			__m256 dw = _mm256_cvtph_ps(
			    _mm_setr_epi16((short)sc[0], (short)sc[0], (short)sc[0], (short)sc[0],
			                   (short)sc[1], (short)sc[1], (short)sc[1], (short)sc[1]));
#pragma GCC unroll 2
			for (int t = 0; t < NT; t++) {
				const uint8_t *xv = xg + t * xs;
				__m256i s16 = _mm256_add_epi16(
				    _mm256_maddubs_epi16(lo,
				                         _mm256_loadu_si256((const __m256i *)xv)),
				    _mm256_maddubs_epi16(
				        hi, _mm256_loadu_si256((const __m256i *)(xv + 32))));
				__m256i si = _mm256_add_epi32(
				    _mm256_madd_epi16(s16, ones),
				    _mm256_loadu_si256((const __m256i *)(xv + 96)));
				/* the pair's lanes go to the h = 0 accumulator */
				acc[r][t][0] = _mm256_fmadd_ps(
				    _mm256_cvtepi32_ps(si),
				    _mm256_mul_ps(dw, _mm256_loadu_ps((const float *)(xv + 64))),
				    acc[r][t][0]);
			}
		}
	}
#pragma GCC unroll 2
	for (int t = 0; t < NT; t++)
#pragma GCC unroll 2
		for (int r = 0; r < NR; r++)
			y[t * ldy + r] = reduce16_avx2(acc[r][t][0], acc[r][t][1]);
}

/* Two rows x two tokens a tile (x one for a lone token: four rows a tile
 * decoded 10-20% slower here, the accumulators no longer fit the 16
 * registers), the group's weights staying in L1 across the token tiles.
 * a8: Q4_0 with 8-bit activations (qx8_tile_avx2), else qx_tile_avx2. */
T_AVX2 static inline __attribute__((always_inline)) void
qx_matmul_avx2_t(bool q4, bool a8, const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                 float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t nb = W->cols / MLLM__QK, ng = nb / GB, np = nb % GB / 2;
	size_t rb = mllm__row_bytes(W->dtype, W->cols);
	size_t xs = a8 ? mllm__qx8_act_bytes(W->cols) : mllm__qx_act_bytes(W->cols);
	const uint8_t *base = W->data;
#define TILE(NR, NT, w, x, pf, out)                                                                \
	(a8 ? qx8_tile_avx2(NR, NT, w, rb, x, xs, ng, np, pf, out, ldy)                            \
	    : qx_tile_avx2(q4, NR, NT, w, rb, x, xs, ng, np, pf, out, ldy))
	int64_t r = r0;
	for (; r + 2 <= r1; r += 2) {
		const uint8_t *w0 = base + (size_t)r * rb;
		const char *pf = (const char *)w0 + 2 * rb;
		int64_t k = 0;
		if (!q4)
			for (; k + 4 <= n_tok; k += 4, pf = NULL)
				TILE(2, 4, w0, xa + (size_t)k * xs, pf, y + k * ldy + r);
		for (; k + 2 <= n_tok; k += 2, pf = NULL)
			TILE(2, 2, w0, xa + (size_t)k * xs, pf, y + k * ldy + r);
		if (k < n_tok)
			TILE(2, 1, w0, xa + (size_t)k * xs, pf, y + k * ldy + r);
	}
	for (; r < r1; r++)
		for (int64_t k = 0; k < n_tok; k++)
			TILE(1, 1, base + (size_t)r * rb, xa + (size_t)k * xs, NULL,
			     y + k * ldy + r);
#undef TILE
}

T_AVX2 static void qx_matmul_q8_avx2(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                     float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	qx_matmul_avx2_t(false, false, W, xa, n_tok, y, ldy, r0, r1);
}

T_AVX2 static void qx_matmul_q4_avx2(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                     float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	qx_matmul_avx2_t(true, false, W, xa, n_tok, y, ldy, r0, r1);
}

T_AVX2 static void qx8_matmul_q4_avx2(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                      float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	qx_matmul_avx2_t(true, true, W, xa, n_tok, y, ldy, r0, r1);
}

/* ---- 8-bit activations with AVX-512 VNNI: vpdpbusd ---------------------
 *
 * The same activation layout, a 64-byte chunk c of a group being A0[c] then
 * A1[c], so that 32-bit lane L of it holds x[j][4c .. 4c + 3] of block
 * j = blk(L): lanes 0-3 blocks 0-3, 4-7 blocks 8-11, 8-11 blocks 4-7, 12-15
 * blocks 12-15. vpdpbusd multiplies unsigned weight bytes by these signed
 * activations, four per lane, into exact int32 sums:
 *   Q4_0: the stored q (0..15) are unsigned already; u0 | u1 of the AVX2
 *     kernel is that lane order, and the sums are the AVX2 kernel's, so
 *     the two tiers give the same bits.
 *   Q8_0: a chunk pair (2c, 2c + 1) of a packed group holds w[j][4c ..
 *     4c + 3] of every block as words j and 16 + j; one vpermw puts them
 *     in lane order, and w + 128 (the sign bit flipped) is unsigned, so
 *     sum((w + 128) x) - 128 sum(x) = sum(w x): the stored offsets are
 *     -8 sum(x), times 16.
 * A pair's 64 weight bytes are X0 | X1's order (Q8_0: as stored; Q4_0: low
 * nibbles then high), and lane i + 8 folds onto lane i. Per lane the float
 * steps are the AVX2 kernel's, and the final sum pairs lanes as it does. */

T_AVX512 static inline __m512i q8_chunk_vnni(const uint8_t *p)
{
	static const uint16_t order[32] = {0,  16, 1,  17, 2,  18, 3,  19, 8,  24, 9,
	                                   25, 10, 26, 11, 27, 4,  20, 5,  21, 6,  22,
	                                   7,  23, 12, 28, 13, 29, 14, 30, 15, 31};
	return _mm512_xor_si512(
	    _mm512_permutexvar_epi16(_mm512_loadu_si512(order), _mm512_loadu_si512(p)),
	    _mm512_set1_epi8((char)0x80));
}

T_AVX512 static inline __m512i q4_chunk_vnni(const uint8_t *p)
{
	const __m256i m4 = _mm256_set1_epi8(15);
	__m256i v = _mm256_loadu_si256((const __m256i *)p);
	__m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
	return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_unpacklo_epi16(lo, hi)),
	                          _mm256_unpackhi_epi16(lo, hi), 1);
}

/* The offsets of a lane vector: -8 sum(x), or -128 sum(x) for Q8_0. */
T_AVX512 static inline __m512i offs_vnni(bool q4, const uint8_t *p)
{
	__m512i o = _mm512_loadu_si512(p);
	return q4 ? o : _mm512_slli_epi32(o, 4);
}

/* A tile: NR (1 or 4) rows x NT (1, 2 or 4) tokens, as qx_tile: each
 * weight vector, unpacked once, serves up to four tokens. */
T_AVX512 static inline __attribute__((always_inline)) void
qx8_tile(bool q4, int NR, int NT, const uint8_t *w0, size_t rb, const uint8_t *xa, size_t xs,
         int64_t ng, int64_t np, const char *pf, float *restrict y, int64_t ldy)
{
	const size_t bb = q4 ? sizeof(mllm__block_q4_0) : sizeof(mllm__block_q8_0);
	__m512 acc[4][4];
#pragma GCC unroll 4
	for (int r = 0; r < NR; r++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[r][t] = _mm512_setzero_ps();
	const uint8_t *wg = w0, *xg = xa;
	for (int64_t g = 0; g < ng; g++, wg += GB * bb, xg += ACT8_GROUP) {
		if (pf)
			for (size_t o = 0; o < 4 * GB * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * 4 + o, _MM_HINT_T0);
				/* Row by row: four live int32 sums instead of NR x NT, so that
				 * with the NR x NT float accumulators nothing spills (the
				 * rows' dependency chains still overlap out of order). */
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			__m512i s[4];
#pragma GCC unroll 4
			for (int t = 0; t < NT; t++)
				s[t] = offs_vnni(q4, xg + t * xs + 576);
#pragma GCC unroll 8
			for (int c = 0; c < 8; c++) {
				__m512i w = q4 ? q4_chunk_vnni(wg + r * rb + 32 + 32 * c)
				               : q8_chunk_vnni(wg + r * rb + 32 + 64 * c);
#pragma GCC unroll 4
				for (int t = 0; t < NT; t++)
					s[t] = _mm512_dpbusd_epi32(
					    s[t], w, _mm512_loadu_si512(xg + t * xs + 64 * c));
			}
			/* the f16 scales of blocks 0-3, 8-11, 4-7, 12-15 */
			__m512 dw = _mm512_cvtph_ps(_mm256_permute4x64_epi64(
			    _mm256_loadu_si256((const __m256i *)(wg + r * rb)),
			    _MM_SHUFFLE(3, 1, 2, 0)));
#pragma GCC unroll 4
			for (int t = 0; t < NT; t++)
				acc[r][t] = _mm512_fmadd_ps(
				    _mm512_cvtepi32_ps(s[t]),
				    _mm512_mul_ps(dw, _mm512_loadu_ps(xg + t * xs + 512)),
				    acc[r][t]);
		}
	}
	for (int64_t p = 0; p < np; p++, wg += 2 * bb, xg += ACT8_PAIR) {
		if (pf)
			for (size_t o = 0; o < 4 * 2 * bb; o += 64)
				_mm_prefetch(pf + (size_t)(wg - w0) * 4 + o, _MM_HINT_T0);
		if (!q4) {
			/* Q8_0: the pair's 64 bytes are one vector; both halves
			 * keep their own lanes (the offsets go to lanes 0-7 only,
			 * a zero-extended load) and the float steps take all 16,
			 * without the AVX2 kernel's fold and blend. */
#pragma GCC unroll 4
			for (int r = 0; r < NR; r++) {
				__m512i w = _mm512_xor_si512(_mm512_loadu_si512(wg + r * rb + 4),
				                             _mm512_set1_epi8((char)0x80));
				uint16_t sc[2];
				memcpy(sc, wg + r * rb, 4);
				__m256 d8 = _mm256_cvtph_ps(_mm_setr_epi16(
				    (short)sc[0], (short)sc[0], (short)sc[0], (short)sc[0],
				    (short)sc[1], (short)sc[1], (short)sc[1], (short)sc[1]));
				__m512 dw =
				    _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(d8)));
#pragma GCC unroll 4
				for (int t = 0; t < NT; t++) {
					const uint8_t *xv = xg + t * xs;
					__m512i s = _mm512_dpbusd_epi32(
					    _mm512_zextsi256_si512(_mm256_slli_epi32(
					        _mm256_loadu_si256((const __m256i *)(xv + 96)), 4)),
					    w, _mm512_loadu_si512(xv));
					acc[r][t] = _mm512_fmadd_ps(
					    _mm512_cvtepi32_ps(s),
					    _mm512_mul_ps(
					        dw,
					        _mm512_castpd_ps(_mm512_broadcast_f64x4(
					            _mm256_loadu_pd((const double *)(xv + 64))))),
					    acc[r][t]);
				}
			}
			continue;
		}
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			__m512i w;
			if (q4) {
				const __m256i m4 = _mm256_set1_epi8(15);
				__m256i v = _mm256_loadu_si256((const __m256i *)(wg + r * rb + 4));
				w = _mm512_inserti64x4(
				    _mm512_castsi256_si512(_mm256_and_si256(v, m4)),
				    _mm256_and_si256(_mm256_srli_epi16(v, 4), m4), 1);
			} else {
				w = _mm512_xor_si512(_mm512_loadu_si512(wg + r * rb + 4),
				                     _mm512_set1_epi8((char)0x80));
			}
			uint16_t sc[2];
			memcpy(sc, wg + r * rb, 4);
			__m256 dw = _mm256_cvtph_ps(
			    _mm_setr_epi16((short)sc[0], (short)sc[0], (short)sc[0], (short)sc[0],
			                   (short)sc[1], (short)sc[1], (short)sc[1], (short)sc[1]));
#pragma GCC unroll 4
			for (int t = 0; t < NT; t++) {
				const uint8_t *xv = xg + t * xs;
				__m512i s = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w,
				                                _mm512_loadu_si512(xv));
				__m256i o = _mm256_loadu_si256((const __m256i *)(xv + 96));
				__m256i si = _mm256_add_epi32(
				    _mm256_add_epi32(_mm512_castsi512_si256(s),
				                     _mm512_extracti64x4_epi64(s, 1)),
				    q4 ? o : _mm256_slli_epi32(o, 4));
				__m256 a = _mm256_fmadd_ps(
				    _mm256_cvtepi32_ps(si),
				    _mm256_mul_ps(dw, _mm256_loadu_ps((const float *)(xv + 64))),
				    _mm512_castps512_ps256(acc[r][t]));
				/* the pair's lanes are the first eight (AVX2: h = 0) */
				acc[r][t] = _mm512_mask_blend_ps(0x00ff, acc[r][t],
				                                 _mm512_castps256_ps512(a));
			}
		}
	}
#pragma GCC unroll 4
	for (int t = 0; t < NT; t++) {
		if (NR == 4)
			reduce4_store(acc[0][t], acc[1][t], acc[2][t], acc[3][t], y + t * ldy);
		else
			y[t * ldy] = _mm512_reduce_add_ps(acc[0][t]);
	}
}

T_AVX512 static inline __attribute__((always_inline)) void
qx8_matmul_t(bool q4, const mllm__tensor *W, const uint8_t *xa, int64_t n_tok, float *restrict y,
             int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t nb = W->cols / MLLM__QK, ng = nb / GB, np = nb % GB / 2;
	size_t rb = mllm__row_bytes(W->dtype, W->cols), xs = mllm__qx8_act_bytes(W->cols);
	const uint8_t *base = W->data;
	int64_t r = r0;
	for (; r + 4 <= r1; r += 4) {
		const uint8_t *w0 = base + (size_t)r * rb;
		const char *pf = (const char *)w0 + 4 * rb;
		int64_t k = 0;
		for (; k + 4 <= n_tok; k += 4, pf = NULL)
			qx8_tile(q4, 4, 4, w0, rb, xa + (size_t)k * xs, xs, ng, np, pf,
			         y + k * ldy + r, ldy);
		for (; k + 2 <= n_tok; k += 2, pf = NULL)
			qx8_tile(q4, 4, 2, w0, rb, xa + (size_t)k * xs, xs, ng, np, pf,
			         y + k * ldy + r, ldy);
		if (k < n_tok)
			qx8_tile(q4, 4, 1, w0, rb, xa + (size_t)k * xs, xs, ng, np, pf,
			         y + k * ldy + r, ldy);
	}
	for (; r < r1; r++)
		for (int64_t k = 0; k < n_tok; k++)
			qx8_tile(q4, 1, 1, base + (size_t)r * rb, rb, xa + (size_t)k * xs, xs, ng,
			         np, NULL, y + k * ldy + r, ldy);
}

T_AVX512 static void qx8_matmul_q8(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                   float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	qx8_matmul_t(false, W, xa, n_tok, y, ldy, r0, r1);
}

T_AVX512 static void qx8_matmul_q4(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                   float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	qx8_matmul_t(true, W, xa, n_tok, y, ldy, r0, r1);
}

#endif /* MLLM_X86 */

void mllm__qx_dequant_row_fast(mllm__isa isa, mllm_dtype t, const void *row, int64_t cols,
                               float *restrict out)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512 || isa == MLLM__ISA_AVX2) {
		qx_dequant_row_avx2(t, row, cols, out);
		return;
	}
#endif
	(void)isa;
	mllm__qx_dequant_row(t, row, cols, out);
}

void mllm__qx_matmul(mllm__isa isa, const mllm__tensor *W, const float *restrict x,
                     const uint8_t *xa, int64_t n_tok, float *restrict y, int64_t ldy, int64_t r0,
                     int64_t r1)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512 && xa && W->act8) {
		if (W->dtype == MLLM_DTYPE_Q4_0)
			qx8_matmul_q4(W, xa, n_tok, y, ldy, r0, r1);
		else
			qx8_matmul_q8(W, xa, n_tok, y, ldy, r0, r1);
		return;
	}
	if (isa == MLLM__ISA_AVX512 && xa) {
		if (W->dtype == MLLM_DTYPE_Q4_0)
			qx_matmul_q4(W, xa, n_tok, y, ldy, r0, r1);
		else
			qx_matmul_q8(W, xa, n_tok, y, ldy, r0, r1);
		return;
	}
	if (isa == MLLM__ISA_AVX2 && xa && W->act8 && W->dtype == MLLM_DTYPE_Q4_0) {
		qx8_matmul_q4_avx2(W, xa, n_tok, y, ldy, r0, r1);
		return;
	}
	if (isa == MLLM__ISA_AVX2 && xa) {
		if (W->dtype == MLLM_DTYPE_Q4_0)
			qx_matmul_q4_avx2(W, xa, n_tok, y, ldy, r0, r1);
		else
			qx_matmul_q8_avx2(W, xa, n_tok, y, ldy, r0, r1);
		return;
	}
#endif
	(void)isa;
	(void)xa;
	mllm__qx_matmul_ref(W, x, n_tok, y, ldy, r0, r1);
}
