/*
 * qr16.c — Q8_0 / Q4_0 weights interleaved across 16 rows ("r16") and
 * their AVX-512 VNNI and AVX2 products, the layout of both with 8-bit
 * activations on those tiers.
 *
 * The x16 layout (qpack.c) puts 16 blocks of one row in the lanes of a
 * vector, so every (row, token) ends in a horizontal sum, and each (row,
 * token, group of blocks) pays an offset, a convert, a multiply and an FMA
 * beside eight vpdpbusd: for the 576-column matrices of the 125M shape
 * those overheads were as many vector operations as the products. Here
 * lane i of a vector is row i of a 16-row group, so the activations enter
 * as broadcasts (embedded in the vpdpbusd, a load and no ALU work), one
 * weight vector serves every token of the tile, and a token's 16 outputs
 * are one store: per (16 rows, token, block) eight vpdpbusd and three
 * float operations.
 *
 * A group of 16 rows (16 * row_bytes bytes, the GGUF size: row ranges must
 * start and end on multiples of 16) holds, per block b of 32 columns, 544
 * bytes: the 16 rows' f16 scales, then 8 vectors, vector c byte 4i + e =
 * w[i][4c + e] + 128 (row i; stored unsigned, as vpdpbusd multiplies).
 * Activations (mllm__qr16_act_bytes(cols) per token), per block: the 32
 * int8 x (max|x| / 127 scaling, as qpack.c's 8-bit activations), the f32
 * scale, and the int32 -128 * sum(x), so that an integer sum is
 * sum((w + 128) x) - 128 sum(x) = sum(w x), exact.
 * Q4_0 (288 bytes a block): the 16 scales, then 4 vectors, vector v byte
 * 4i + e = row i's GGUF byte qs[4v + e] (low nibble element 4v + e, high
 * nibble 16 + 4v + e; q = w + 8), and the offset is -8 * sum(x), the
 * stored one divided by 16.
 * Per (row, token) the floats are sum over blocks in order of
 * float(isum) * (d_w * d_x), whatever the tile: results do not depend on
 * the batch.
 */
#include "kernels.h"

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MLLM_X86 1
#endif

#define R16_ROWS 16
#define R16_ACT  40 /* 32 int8, f32 scale, int32 offset */

/* Bytes of one block of 32 columns across the 16 rows: 544 (Q8_0), 288. */
static inline int64_t r16_block(bool q4)
{
	return R16_ROWS * (int64_t)(q4 ? sizeof(mllm__block_q4_0) : sizeof(mllm__block_q8_0));
}

/* The stored unsigned value of element e of row i in the block at g:
 * Q8_0 w + 128 (0..255), Q4_0 q = w + 8 (0..15). */
static inline int r16_u(bool q4, const uint8_t *g, int i, int e)
{
	if (!q4)
		return g[32 + 64 * (e / 4) + 4 * i + e % 4];
	int k = e % 16, v = g[32 + 64 * (k / 4) + 4 * i + k % 4];
	return e < 16 ? v & 15 : v >> 4;
}

bool mllm__qr16_packable(mllm_dtype t, int64_t rows, int64_t cols)
{
	return (t == MLLM_DTYPE_Q8_0 || t == MLLM_DTYPE_Q4_0) && rows % R16_ROWS == 0 &&
	       cols % MLLM__QK == 0 && cols > 0;
}

void mllm__qr16_pack_group(mllm_dtype t, const void *src, int64_t cols, void *dst)
{
	bool q4 = t == MLLM_DTYPE_Q4_0;
	int64_t nb = cols / MLLM__QK;
	uint8_t *o = dst;
	for (int64_t b = 0; b < nb; b++, o += r16_block(q4)) {
		for (int i = 0; i < R16_ROWS; i++) {
			if (q4) {
				/* vector v, lane i: the GGUF bytes qs[4v .. 4v + 3] (low
				 * nibbles elements 4v.., high ones 16 + 4v..) */
				const mllm__block_q4_0 *blk =
				    (const mllm__block_q4_0 *)src + (size_t)i * (size_t)nb + b;
				memcpy(o + 2 * i, &blk->d, 2);
				for (int k = 0; k < 16; k++)
					o[32 + 64 * (k / 4) + 4 * i + k % 4] = blk->qs[k];
				continue;
			}
			const mllm__block_q8_0 *blk =
			    (const mllm__block_q8_0 *)src + (size_t)i * (size_t)nb + b;
			memcpy(o + 2 * i, &blk->d, 2);
			for (int e = 0; e < MLLM__QK; e++)
				o[32 + 64 * (e / 4) + 4 * i + e % 4] = (uint8_t)(blk->qs[e] ^ 0x80);
		}
	}
}

/* Columns c0 .. c0 + n of row r (c0, n multiples of 32). */
static void qr16_dequant_cols(mllm_dtype t, const void *data, int64_t cols, int64_t r, int64_t c0,
                              int64_t n, float *restrict out)
{
	bool q4 = t == MLLM_DTYPE_Q4_0;
	size_t rb = mllm__row_bytes(t, cols);
	const uint8_t *g = (const uint8_t *)data + (size_t)(r / R16_ROWS) * R16_ROWS * rb +
	                   (size_t)(c0 / MLLM__QK * r16_block(q4));
	int i = (int)(r % R16_ROWS);
	for (int64_t b = 0; b < n / MLLM__QK; b++, g += r16_block(q4)) {
		uint16_t h;
		memcpy(&h, g + 2 * i, 2);
		float d = mllm__f16_to_f32(h);
		for (int e = 0; e < MLLM__QK; e++)
			out[b * MLLM__QK + e] = d * (float)(r16_u(q4, g, i, e) - (q4 ? 8 : 128));
	}
}

void mllm__qr16_dequant_row(mllm_dtype t, const void *data, int64_t cols, int64_t r,
                            float *restrict out)
{
	qr16_dequant_cols(t, data, cols, r, 0, cols, out);
}

size_t mllm__qr16_act_bytes(int64_t cols)
{
	return (size_t)(cols / MLLM__QK) * R16_ACT;
}

#ifdef MLLM_X86
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define T_AVX2   __attribute__((target("avx2,fma,f16c")))
#endif

void mllm__quantize_qr16(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                         uint8_t *restrict out)
{
	int64_t nb = cols / MLLM__QK;
	for (int64_t t = 0; t < n_tok; t++)
		for (int64_t b = 0; b < nb; b++) {
			const float *xb = x + t * cols + b * MLLM__QK;
			uint8_t *o = out + ((size_t)t * (size_t)nb + (size_t)b) * R16_ACT;
			float d;
			int32_t sum;
			mllm__q8_act_block(isa, xb, (int8_t *)o, &d, &sum);
			sum *= -128;
			memcpy(o + 32, &d, 4);
			memcpy(o + 36, &sum, 4);
		}
}

void mllm__qr16_matmul_ref(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                           float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t cols = W->cols;
	float w[MLLM__QK * 64];
	for (int64_t r = r0; r < r1; r++) {
		for (int64_t t = 0; t < n_tok; t++)
			y[t * ldy + r] = 0.0f;
		/* a row in slices of up to 64 blocks, summed in element order */
		for (int64_t c0 = 0; c0 < cols; c0 += MLLM__QK * 64) {
			int64_t n = cols - c0 < MLLM__QK * 64 ? cols - c0 : MLLM__QK * 64;
			qr16_dequant_cols(W->dtype, W->data, cols, r, c0, n, w);
			for (int64_t t = 0; t < n_tok; t++) {
				float s = y[t * ldy + r];
				for (int64_t e = 0; e < n; e++)
					s += w[e] * x[t * cols + c0 + e];
				y[t * ldy + r] = s;
			}
		}
	}
}

/* The SIMD kernels' integers and float steps one lane at a time, for a
 * build without them (not x86). */
static void r16_matmul_scalar(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                              float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	bool q4 = W->dtype == MLLM_DTYPE_Q4_0;
	int64_t nb = W->cols / MLLM__QK;
	size_t rb = mllm__row_bytes(W->dtype, W->cols);
	for (int64_t r = r0; r < r1; r++) {
		const uint8_t *g0 =
		    (const uint8_t *)W->data + (size_t)(r / R16_ROWS) * R16_ROWS * rb;
		int i = (int)(r % R16_ROWS);
		for (int64_t t = 0; t < n_tok; t++) {
			const uint8_t *xt = xa + (size_t)t * (size_t)nb * R16_ACT;
			float acc = 0.0f;
			for (int64_t b = 0; b < nb; b++) {
				const uint8_t *g = g0 + b * r16_block(q4), *xb = xt + b * R16_ACT;
				int32_t s;
				float dx;
				uint16_t h;
				memcpy(&s, xb + 36, 4);
				s = q4 ? s / 16 : s; /* -128 sum(x) -> -8 sum(x), exact */
				memcpy(&dx, xb + 32, 4);
				memcpy(&h, g + 2 * i, 2);
				for (int e = 0; e < MLLM__QK; e++)
					s += r16_u(q4, g, i, e) * (int8_t)xb[e];
				acc = fmaf((float)s, mllm__f16_to_f32(h) * dx, acc);
			}
			y[t * ldy + r] = acc;
		}
	}
}

#ifdef MLLM_X86
/* Software prefetch distance into the weights. A thread's rows are one
 * contiguous run of 16-row groups, so this runs ahead into the group it
 * takes next; the hardware prefetcher alone left a 16-sequence step
 * waiting on memory (alternating rounds on Ice Lake, 16 sequences: 4 KiB
 * ahead 0.79-0.91x the time of none, 2 KiB and 8 KiB no better). With
 * more than one tile of tokens a set of groups (r16_groups) this runs only
 * in the call's first set; the later ones come in spread over the tiles
 * of the set before them (to L2), which kept memory busy while the tiles
 * that find their groups in cache compute: 16 sequences ~0.95x the step
 * time, 64 ~0.96x (6 alternating rounds each). */
#define R16_PF 4096

/* The int32 sums become floats without vcvtdq2ps, which Ice Lake runs on
 * port 0 only, beside every vpdpbusd: each sum starts at 0x4b400000, the
 * bits of 1.5 * 2^23, so that after the products its bits are the float
 * 1.5 * 2^23 + sum (|sum| <= 32 * 128 * 127 < 2^22 keeps the exponent),
 * and one subtraction (either vector port) leaves sum exactly. */
#define R16_MAGIC_I 0x4b400000
#define R16_MAGIC_F 12582912.0f

/* NG 16-row groups (gb bytes apart) x NT tokens: NG * NT int32 sums and
 * as many float accumulators live. Each token's broadcast activations feed
 * NG vpdpbusd: with one group (NG 1) the kernel issued a load per
 * vpdpbusd and ran at ~0.6 of them a cycle on Ice Lake, with three ~0.95
 * (one core, matrices of the 125M shape in cache: 270-290 -> 415-450
 * GOP/s of a 466 peak). pf: the first token tile, the one that brings the
 * groups from memory. */
T_AVX512 static inline __attribute__((always_inline)) void
r16_tile(bool q4, int NG, int NT, bool pf, const uint8_t *g, size_t gb, int64_t nb,
         const uint8_t *xa, size_t xs, float *restrict y, int64_t ldy, const uint8_t *nx,
         size_t nx_step)
{
	const __m512i m4 = _mm512_set1_epi8(15);
	const __m512i magic_i = _mm512_set1_epi32(R16_MAGIC_I);
	const __m512 magic = _mm512_set1_ps(R16_MAGIC_F);
	__m512 acc[3][4];
#pragma GCC unroll 4
	for (int q = 0; q < NG; q++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			acc[q][t] = _mm512_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += r16_block(q4)) {
		const uint8_t *xb = xa + b * R16_ACT;
		if (pf)
#pragma GCC unroll 4
			for (int q = 0; q < NG; q++)
				for (int l = 0; l < r16_block(q4); l += 64)
					_mm_prefetch((const char *)g + (size_t)q * gb + R16_PF + l,
					             _MM_HINT_T0);
		if (nx) {
			for (size_t l = 0; l < nx_step; l += 64)
				_mm_prefetch((const char *)nx + l, _MM_HINT_T1);
			nx += nx_step;
		}
		__m512i s[3][4];
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++) {
			int32_t off;
			memcpy(&off, xb + t * xs + 36, 4);
			/* Q4_0: -8 sum(x), the stored -128 sum(x) / 16 (exact) */
			__m512i o = _mm512_set1_epi32(off);
			if (q4)
				o = _mm512_srai_epi32(o, 4);
			o = _mm512_add_epi32(o, magic_i);
#pragma GCC unroll 4
			for (int q = 0; q < NG; q++)
				s[q][t] = o;
		}
		/* Q8_0: vector c pairs with x[4c ..]; Q4_0: vector v's low
		 * nibbles with x[4v ..], its high ones with x[16 + 4v ..]. */
#pragma GCC unroll 8
		for (int c = 0; c < 8; c++) {
			__m512i w[3];
#pragma GCC unroll 4
			for (int q = 0; q < NG; q++) {
				const uint8_t *gq = g + (size_t)q * gb;
				if (q4) {
					__m512i raw = _mm512_loadu_si512(gq + 32 + 64 * (c % 4));
					w[q] =
					    c < 4 ? _mm512_and_si512(raw, m4)
					          : _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
				} else {
					w[q] = _mm512_loadu_si512(gq + 32 + 64 * c);
				}
			}
#pragma GCC unroll 4
			for (int t = 0; t < NT; t++) {
				int32_t xv;
				memcpy(&xv, xb + t * xs + 4 * c, 4);
				__m512i xb4 = _mm512_set1_epi32(xv);
#pragma GCC unroll 4
				for (int q = 0; q < NG; q++)
					s[q][t] = _mm512_dpbusd_epi32(s[q][t], w[q], xb4);
			}
		}
#pragma GCC unroll 4
		for (int q = 0; q < NG; q++) {
			__m512 dw = _mm512_cvtph_ps(
			    _mm256_loadu_si256((const __m256i *)(g + (size_t)q * gb)));
#pragma GCC unroll 4
			for (int t = 0; t < NT; t++) {
				float dx;
				memcpy(&dx, xb + t * xs + 32, 4);
				__m512 f = _mm512_sub_ps(_mm512_castsi512_ps(s[q][t]), magic);
				acc[q][t] = _mm512_fmadd_ps(
				    f, _mm512_mul_ps(dw, _mm512_set1_ps(dx)), acc[q][t]);
			}
		}
	}
#pragma GCC unroll 4
	for (int q = 0; q < NG; q++)
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++)
			_mm512_storeu_ps(y + t * ldy + 16 * q, acc[q][t]);
}

/* All n_tok tokens against NG groups at g: tiles of 4 tokens, then the
 * rest as one tile. first: the call's first set of groups, whose first
 * tile streams it from memory; every tile also prefetches its share of
 * the next set (nx, nx_bytes), so that the tiles that find their groups in
 * cache keep memory busy too. */
T_AVX512 static inline __attribute__((always_inline)) void
r16_groups(bool q4, int NG, bool first, const uint8_t *g, size_t gb, int64_t nb, const uint8_t *xa,
           size_t xs, int64_t n_tok, float *restrict y, int64_t ldy, const uint8_t *nx,
           size_t nx_bytes)
{
	int64_t tiles = (n_tok + 3) / 4;
	size_t share = nx ? (nx_bytes + (size_t)tiles - 1) / (size_t)tiles : 0;
	size_t step = ((share + (size_t)nb - 1) / (size_t)nb + 63) & ~(size_t)63;
	int64_t k = 0;
	for (; k + 4 <= n_tok; k += 4, nx = nx ? nx + share : NULL)
		r16_tile(q4, NG, 4, first && k == 0, g, gb, nb, xa + (size_t)k * xs, xs,
		         y + k * ldy, ldy, nx, step);
	switch (n_tok - k) {
	case 3:
		r16_tile(q4, NG, 3, first && k == 0, g, gb, nb, xa + (size_t)k * xs, xs,
		         y + k * ldy, ldy, nx, step);
		break;
	case 2:
		r16_tile(q4, NG, 2, first && k == 0, g, gb, nb, xa + (size_t)k * xs, xs,
		         y + k * ldy, ldy, nx, step);
		break;
	case 1:
		r16_tile(q4, NG, 1, first && k == 0, g, gb, nb, xa + (size_t)k * xs, xs,
		         y + k * ldy, ldy, nx, step);
		break;
	default:
		break;
	}
}

/* r16_groups with q4 and NG as constants: each pair its own copy. */
T_AVX512 static void r16_groups_any(bool q4, int NG, bool first, const uint8_t *g, size_t gb,
                                    int64_t nb, const uint8_t *xa, size_t xs, int64_t n_tok,
                                    float *restrict y, int64_t ldy, const uint8_t *nx,
                                    size_t nx_bytes)
{
#define R16_GROUPS(Q4, N) r16_groups(Q4, N, first, g, gb, nb, xa, xs, n_tok, y, ldy, nx, nx_bytes)
	if (q4) {
		if (NG == 3)
			R16_GROUPS(true, 3);
		else if (NG == 2)
			R16_GROUPS(true, 2);
		else
			R16_GROUPS(true, 1);
	} else {
		if (NG == 3)
			R16_GROUPS(false, 3);
		else if (NG == 2)
			R16_GROUPS(false, 2);
		else
			R16_GROUPS(false, 1);
	}
#undef R16_GROUPS
}

T_AVX512 static void r16_matmul_avx512(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                       float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t nb = W->cols / MLLM__QK;
	size_t gb = (size_t)R16_ROWS * mllm__row_bytes(W->dtype, W->cols);
	size_t xs = (size_t)nb * R16_ACT;
	bool q4 = W->dtype == MLLM_DTYPE_Q4_0;
	for (int64_t r = r0; r < r1;) {
		int64_t left = (r1 - r) / R16_ROWS;
		int ng = left >= 3 ? 3 : (int)left;
		const uint8_t *g = (const uint8_t *)W->data + (size_t)(r / R16_ROWS) * gb;
		int64_t nr = r + (int64_t)ng * R16_ROWS, nl = (r1 - nr) / R16_ROWS;
		/* The last set looks past r1: the pool deals a thread its chunks
		 * in order, so the rows after this chunk are most likely its
		 * next ones. */
		if (nl == 0)
			nl = (W->rows - nr) / R16_ROWS;
		/* One tile a set (up to 4 tokens): each prefetches its own set
		 * ahead, which served one token better. */
		bool first = r == r0 || n_tok <= 4;
		const uint8_t *nx = nl > 0 && n_tok > 4 ? g + (size_t)ng * gb : NULL;
		size_t nx_bytes = (size_t)(nl >= 3 ? 3 : nl) * gb;
		r16_groups_any(q4, ng, first, g, gb, nb, xa, xs, n_tok, y + r, ldy, nx, nx_bytes);
		r = nr;
	}
}

/* ---- AVX2: the same integers without vpdpbusd ---------------------------
 *
 * A 16-row group is two halves of 8 rows (32 bytes of each 64-byte
 * vector). vpmaddubsw multiplies unsigned by signed bytes into saturating
 * 16-bit pair sums: Q8_0's stored w + 128 (up to 255) times x (up to 127)
 * could pass 32767 in a pair, so the weights go in as |w| (w = stored ^
 * 0x80) with x carrying w's sign (vpsignb): pairs stay within 2 * 128 *
 * 127, and the sum is sum(w x) itself, no offset. Q4_0's q (0..15) times
 * x cannot saturate, even two vectors' pairs added, so it multiplies q as
 * stored and starts from the -8 sum(x) offset, as the VNNI kernel does.
 * vpmaddwd with ones widens the pairs to 32 bits. The integer sums are
 * exact, so they equal the VNNI kernel's, and the float steps per block
 * are its own: the same bits on both tiers. Tiles are one half (8 rows) x
 * up to 4 tokens (16 registers). */
T_AVX2 static inline __attribute__((always_inline)) void
r16_tile_avx2(bool q4, int NT, bool pf, const uint8_t *g, int h, int64_t nb, const uint8_t *xa,
              size_t xs, float *restrict y, int64_t ldy)
{
	const __m256i m4 = _mm256_set1_epi8(15);
	const __m256i flip = _mm256_set1_epi8((char)0x80);
	const __m256i ones = _mm256_set1_epi16(1);
	__m256 acc[4];
#pragma GCC unroll 4
	for (int t = 0; t < NT; t++)
		acc[t] = _mm256_setzero_ps();
	for (int64_t b = 0; b < nb; b++, g += r16_block(q4)) {
		const uint8_t *xb = xa + b * R16_ACT;
		if (pf)
			for (int l = 0; l < r16_block(q4); l += 64)
				_mm_prefetch((const char *)g + R16_PF + l, _MM_HINT_T0);
		__m256i s[4];
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++) {
			int32_t off = 0;
			if (q4) {
				memcpy(&off, xb + t * xs + 36, 4);
				off /= 16; /* -128 sum(x) -> -8 sum(x), exact */
			}
			s[t] = _mm256_set1_epi32(off);
		}
		if (q4) {
#pragma GCC unroll 4
			for (int v = 0; v < 4; v++) {
				__m256i raw =
				    _mm256_loadu_si256((const __m256i *)(g + 32 + 64 * v + 32 * h));
				__m256i lo = _mm256_and_si256(raw, m4);
				__m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
#pragma GCC unroll 4
				for (int t = 0; t < NT; t++) {
					int32_t xl, xh;
					memcpy(&xl, xb + t * xs + 4 * v, 4);
					memcpy(&xh, xb + t * xs + 16 + 4 * v, 4);
					__m256i p = _mm256_add_epi16(
					    _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xl)),
					    _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xh)));
					s[t] = _mm256_add_epi32(s[t], _mm256_madd_epi16(p, ones));
				}
			}
		} else {
#pragma GCC unroll 8
			for (int c = 0; c < 8; c++) {
				__m256i ws = _mm256_xor_si256(
				    _mm256_loadu_si256((const __m256i *)(g + 32 + 64 * c + 32 * h)),
				    flip);
				__m256i aw = _mm256_abs_epi8(ws);
#pragma GCC unroll 4
				for (int t = 0; t < NT; t++) {
					int32_t xv;
					memcpy(&xv, xb + t * xs + 4 * c, 4);
					__m256i sx = _mm256_sign_epi8(_mm256_set1_epi32(xv), ws);
					s[t] = _mm256_add_epi32(
					    s[t],
					    _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones));
				}
			}
		}
		__m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(g + 16 * h)));
#pragma GCC unroll 4
		for (int t = 0; t < NT; t++) {
			float dx;
			memcpy(&dx, xb + t * xs + 32, 4);
			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]),
			                         _mm256_mul_ps(dw, _mm256_set1_ps(dx)), acc[t]);
		}
	}
#pragma GCC unroll 4
	for (int t = 0; t < NT; t++)
		_mm256_storeu_ps(y + t * ldy + 8 * h, acc[t]);
}

T_AVX2 static inline __attribute__((always_inline)) void
r16_groups_avx2(bool q4, const mllm__tensor *W, const uint8_t *xa, int64_t n_tok, float *restrict y,
                int64_t ldy, int64_t r0, int64_t r1)
{
	int64_t nb = W->cols / MLLM__QK;
	size_t gb = (size_t)R16_ROWS * mllm__row_bytes(W->dtype, W->cols);
	size_t xs = (size_t)nb * R16_ACT;
	for (int64_t r = r0; r < r1; r += R16_ROWS) {
		const uint8_t *g = (const uint8_t *)W->data + (size_t)(r / R16_ROWS) * gb;
		for (int h = 0; h < 2; h++) {
			int64_t k = 0;
			for (; k + 4 <= n_tok; k += 4)
				r16_tile_avx2(q4, 4, h == 0 && k == 0, g, h, nb,
				              xa + (size_t)k * xs, xs, y + k * ldy + r, ldy);
			switch (n_tok - k) {
			case 3:
				r16_tile_avx2(q4, 3, h == 0 && k == 0, g, h, nb,
				              xa + (size_t)k * xs, xs, y + k * ldy + r, ldy);
				break;
			case 2:
				r16_tile_avx2(q4, 2, h == 0 && k == 0, g, h, nb,
				              xa + (size_t)k * xs, xs, y + k * ldy + r, ldy);
				break;
			case 1:
				r16_tile_avx2(q4, 1, h == 0 && k == 0, g, h, nb,
				              xa + (size_t)k * xs, xs, y + k * ldy + r, ldy);
				break;
			default:
				break;
			}
		}
	}
}

T_AVX2 static void r16_matmul_avx2(const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                                   float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	if (W->dtype == MLLM_DTYPE_Q4_0)
		r16_groups_avx2(true, W, xa, n_tok, y, ldy, r0, r1);
	else
		r16_groups_avx2(false, W, xa, n_tok, y, ldy, r0, r1);
}
#endif

void mllm__qr16_matmul(mllm__isa isa, const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                       float *restrict y, int64_t ldy, int64_t r0, int64_t r1)
{
	MLLM_ASSERT(r0 % R16_ROWS == 0 && r1 % R16_ROWS == 0);
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		r16_matmul_avx512(W, xa, n_tok, y, ldy, r0, r1);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		r16_matmul_avx2(W, xa, n_tok, y, ldy, r0, r1);
		return;
	}
#endif
	(void)isa;
	r16_matmul_scalar(W, xa, n_tok, y, ldy, r0, r1);
}
