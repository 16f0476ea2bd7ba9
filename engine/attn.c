/*
 * attn.c — causal attention over the paged KV cache: the one-token kernels
 * (mllm__attn_scores over a K block, mllm__attn_accum of V rows; scalar,
 * AVX2, AVX-512) and, built on their numerics, a tile of query tokens at
 * once (a prefill chunk), the rep query heads of one KV head.
 *
 * One token at a time re-reads every cached K/V block per token and keeps
 * only rep FMA chains in flight. A tile of up to MLLM__ATTN_TQ tokens x rep
 * heads streams each K chunk once for all its rows (8 rows x 3 chunks of 16
 * positions in registers) and each V row once per 6 rows, holding the
 * output in registers across the whole context.
 *
 * Numerics: every score lane is the same FMA chain over d = 0..hd-1 as in
 * the one-token kernels below, then the same multiply by the scale;
 * every output channel is the same FMA chain over positions 0..p. So a
 * token's result never depends on which tile (or batch) it is in. AVX-512
 * and AVX2 are tiled (AVX2 redoes each query's last < 8 positions through
 * the scalar tail of scores_avx2, as a lone token gets them); the scalar
 * reference runs the one-token kernels per query.
 */
#include "forward.h"
#include "kernels.h"
#include "simd.h"

#include <math.h>

/* ---- One token: scores over a K block, the weighted sum of V rows -------- */

#ifdef MLLM_X86

/* Attention scores over a dimension-major K block: positions across the
 * vector lanes, one FMA per (dimension, head); rep is a constant in each
 * copy so the accumulators stay in registers. */
T_AVX512 static inline __attribute__((always_inline)) void
scores_avx512(int rep, int hd, const float *restrict q, const void *k, bool f16, int64_t kstride,
              int ns, float scale, float *restrict w, int64_t ld)
{
	for (int s0 = 0; s0 < ns; s0 += 16) {
		int m = ns - s0 < 16 ? ns - s0 : 16;
		__mmask16 mk = (__mmask16)((1u << m) - 1);
		__m512 acc[8];
		for (int r = 0; r < rep; r++)
			acc[r] = _mm512_setzero_ps();
		for (int d = 0; d < hd; d++) {
			__m512 kv;
			if (f16)
				kv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(
				    mk, (const uint16_t *)k + (size_t)d * (size_t)kstride + s0));
			else
				kv = _mm512_maskz_loadu_ps(
				    mk, (const float *)k + (size_t)d * (size_t)kstride + s0);
			for (int r = 0; r < rep; r++)
				acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r * hd + d]), kv, acc[r]);
		}
		for (int r = 0; r < rep; r++)
			_mm512_mask_storeu_ps(w + r * ld + s0, mk,
			                      _mm512_mul_ps(acc[r], _mm512_set1_ps(scale)));
	}
}

T_AVX512 static void scores_avx512_any(int rep, int hd, const float *restrict q, const void *k,
                                       bool f16, int64_t kstride, int ns, float scale,
                                       float *restrict w, int64_t ld)
{
	/* Groups of up to 8 heads; the common group sizes get their own copy. */
	for (int r0 = 0; r0 < rep; r0 += 8) {
		int n = rep - r0 < 8 ? rep - r0 : 8;
		const float *qq = q + (size_t)r0 * (size_t)hd;
		float *ww = w + (size_t)r0 * (size_t)ld;
		switch (n) {
		case 1:
			scores_avx512(1, hd, qq, k, f16, kstride, ns, scale, ww, ld);
			break;
		case 2:
			scores_avx512(2, hd, qq, k, f16, kstride, ns, scale, ww, ld);
			break;
		case 3:
			scores_avx512(3, hd, qq, k, f16, kstride, ns, scale, ww, ld);
			break;
		case 4:
			scores_avx512(4, hd, qq, k, f16, kstride, ns, scale, ww, ld);
			break;
		case 5:
			scores_avx512(5, hd, qq, k, f16, kstride, ns, scale, ww, ld);
			break;
		default:
			scores_avx512(8, hd, qq, k, f16, kstride, ns, scale, ww, ld);
			break;
		}
	}
}

/* AVX2: 8 positions per vector, one head at a time (no masked f16 loads
 * in AVX2: the tail of a block takes the scalar loop). */
T_AVX2 static void scores_avx2(int rep, int hd, const float *restrict q, const void *k, bool f16,
                               int64_t kstride, int ns, float scale, float *restrict w, int64_t ld)
{
	int s8 = ns & ~7;
	for (int r = 0; r < rep; r++) {
		const float *qr = q + (size_t)r * (size_t)hd;
		for (int s0 = 0; s0 < s8; s0 += 8) {
			__m256 acc = _mm256_setzero_ps();
			for (int d = 0; d < hd; d++) {
				size_t i = (size_t)d * (size_t)kstride + (size_t)s0;
				__m256 kv = f16 ? _mm256_cvtph_ps(_mm_loadu_si128(
				                      (const __m128i *)((const uint16_t *)k + i)))
				                : _mm256_loadu_ps((const float *)k + i);
				acc = _mm256_fmadd_ps(_mm256_set1_ps(qr[d]), kv, acc);
			}
			_mm256_storeu_ps(w + r * ld + s0,
			                 _mm256_mul_ps(acc, _mm256_set1_ps(scale)));
		}
		for (int sl = s8; sl < ns; sl++) {
			float acc = 0.0f;
			for (int d = 0; d < hd; d++) {
				size_t i = (size_t)d * (size_t)kstride + (size_t)sl;
				acc += qr[d] * (f16 ? mllm__f16_to_f32(((const uint16_t *)k)[i])
				                    : ((const float *)k)[i]);
			}
			w[r * ld + sl] = acc * scale;
		}
	}
}

/* Weighted sum of V rows for a group of heads, head_dim 64: each V row is
 * loaded once for the group, the accumulators live in registers. */
T_AVX512 static inline __m512 kv_load16(const void *p, bool f16, int i)
{
	if (f16)
		return _mm512_cvtph_ps(
		    _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
	return _mm512_loadu_ps((const float *)p + i);
}

T_AVX512 static inline __attribute__((always_inline)) void accum64(int rep, float *acc,
                                                                   const float *w, int64_t ld,
                                                                   const void *v, bool f16,
                                                                   int64_t stride, int ns)
{
	__m512 av[8][4];
	size_t esz = f16 ? 2 : 4;
	for (int r = 0; r < rep; r++)
		for (int i = 0; i < 4; i++)
			av[r][i] = _mm512_loadu_ps(acc + r * 64 + i * 16);
	for (int s = 0; s < ns; s++) {
		const void *vr = (const uint8_t *)v + (size_t)s * (size_t)stride * esz;
		__m512 v0 = kv_load16(vr, f16, 0), v1 = kv_load16(vr, f16, 16);
		__m512 v2 = kv_load16(vr, f16, 32), v3 = kv_load16(vr, f16, 48);
		for (int r = 0; r < rep; r++) {
			__m512 ws = _mm512_set1_ps(w[r * ld + s]);
			av[r][0] = _mm512_fmadd_ps(ws, v0, av[r][0]);
			av[r][1] = _mm512_fmadd_ps(ws, v1, av[r][1]);
			av[r][2] = _mm512_fmadd_ps(ws, v2, av[r][2]);
			av[r][3] = _mm512_fmadd_ps(ws, v3, av[r][3]);
		}
	}
	for (int r = 0; r < rep; r++)
		for (int i = 0; i < 4; i++)
			_mm512_storeu_ps(acc + r * 64 + i * 16, av[r][i]);
}

T_AVX512 static void accum64_any(int rep, float *out, const float *w, int64_t ld, const void *v,
                                 bool f16, int64_t stride, int ns)
{
	for (int r0 = 0; r0 < rep; r0 += 4) {
		int n = rep - r0 < 4 ? rep - r0 : 4;
		float *oo = out + (size_t)r0 * 64;
		const float *ww = w + (size_t)r0 * (size_t)ld;
		switch (n) {
		case 1:
			accum64(1, oo, ww, ld, v, f16, stride, ns);
			break;
		case 2:
			accum64(2, oo, ww, ld, v, f16, stride, ns);
			break;
		case 3:
			accum64(3, oo, ww, ld, v, f16, stride, ns);
			break;
		default:
			accum64(4, oo, ww, ld, v, f16, stride, ns);
			break;
		}
	}
}

#endif /* MLLM_X86 */

void mllm__attn_scores(mllm__isa isa, int rep, int head_dim, const float *restrict q, const void *k,
                       bool f16, int64_t kstride, int ns, float scale, float *restrict w,
                       int64_t ld)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		scores_avx512_any(rep, head_dim, q, k, f16, kstride, ns, scale, w, ld);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		scores_avx2(rep, head_dim, q, k, f16, kstride, ns, scale, w, ld);
		return;
	}
#endif
	(void)isa;
	for (int r = 0; r < rep; r++)
		for (int s = 0; s < ns; s++) {
			float acc = 0.0f;
			for (int d = 0; d < head_dim; d++) {
				size_t i = (size_t)d * (size_t)kstride + (size_t)s;
				float kv = f16 ? mllm__f16_to_f32(((const uint16_t *)k)[i])
				               : ((const float *)k)[i];
				acc += q[r * head_dim + d] * kv;
			}
			w[r * ld + s] = acc * scale;
		}
}

void mllm__attn_accum(mllm__isa isa, int rep, int head_dim, float *restrict out,
                      const float *restrict w, int64_t ld, const void *v, bool f16, int64_t vstride,
                      int ns)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512 && head_dim == 64) {
		accum64_any(rep, out, w, ld, v, f16, vstride, ns);
		return;
	}
#endif
	size_t esz = f16 ? 2 : 4;
	for (int s = 0; s < ns; s++) {
		const void *vr = (const uint8_t *)v + (size_t)s * (size_t)vstride * esz;
		for (int r = 0; r < rep; r++) {
			if (f16)
				mllm__axpy_f16(isa, out + r * head_dim, w[r * ld + s], vr,
				               head_dim);
			else
				mllm__axpy_f32(isa, out + r * head_dim, w[r * ld + s], vr,
				               head_dim);
		}
	}
}

/* ---- Tiles of query tokens ----------------------------------------------- */

size_t mllm__attn_scratch_floats(int rep, int head_dim, int64_t ld)
{
	/* scores [TQ * rep][<= ld + 31], then the packed q [TQ * rep][head_dim] */
	return (size_t)MLLM__ATTN_TQ * (size_t)rep * ((size_t)ld + 32 + (size_t)head_dim);
}

/* Element formats of the AVX2 tile kernels: f32, f16, or int8 with an f32
 * scale per position (int8 K/V, read in place: each value is formed as
 * the one f32 product (float)q * scale that dequantizing it would store,
 * so the chains below see the same operands either way). */
enum { KVF_F32, KVF_F16, KVF_Q8 };

static inline int kv_fmt(const mllm__kv_layout *L)
{
	return L->q8 ? KVF_Q8 : L->f16 ? KVF_F16 : KVF_F32;
}

static inline size_t kvf_esz(int fmt)
{
	return fmt == KVF_Q8 ? 1 : fmt == KVF_F16 ? 2 : 4;
}

#ifdef MLLM_X86
/* 8 consecutive elements as f32; sc: the scales of those 8 (q8) or of
 * their row (q8, broadcast). */
T_AVX2 static inline __attribute__((always_inline)) __m256 kv_load8(const int fmt, const uint8_t *p,
                                                                    __m256 sc)
{
	if (fmt == KVF_F16)
		return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
	if (fmt == KVF_Q8)
		return _mm256_mul_ps(
		    _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p))),
		    sc);
	return _mm256_loadu_ps((const float *)p);
}
#endif

/* K of position s, channel 0 of head g (channel d is d * block_size
 * elements further); V row of position s from channel g * head_dim. */
static inline const uint8_t *k_at(const mllm__attn_tile *a, int32_t s)
{
	const mllm__kv_layout *L = a->L;
	return (const uint8_t *)mllm__kv_head(L, a->table[s / L->block_size], a->run, 0, a->g) +
	       (size_t)(s % L->block_size) * mllm__kv_esz(L);
}

static inline const uint8_t *v_at(const mllm__attn_tile *a, int32_t s)
{
	const mllm__kv_layout *L = a->L;
	return (const uint8_t *)mllm__kv_head(L, a->table[s / L->block_size], a->run, 1, a->g) +
	       (size_t)(s % L->block_size) * (size_t)a->head_dim * mllm__kv_esz(L);
}

/* int8 K/V: the scale of position s (head g) for K (which = 0) or V (1). */
static inline const float *kv_scale_at(const mllm__attn_tile *a, int which, int32_t s)
{
	const mllm__kv_layout *L = a->L;
	return mllm__kv_scales(L, a->table[s / L->block_size], a->run, which, a->g) +
	       (size_t)(s % L->block_size);
}

/* Per query: the one-token kernels block by block, exactly as a token
 * computed alone (the reference and AVX2 paths, and odd shapes). */
static void scores_per_query(mllm__isa isa, const mllm__attn_tile *a, float *sc)
{
	int32_t bs = a->L->block_size;
	for (int i = 0; i < a->nq; i++) {
		int32_t pos = a->p0 + i;
		const float *q = a->q + (int64_t)i * a->q_stride;
		float *w = sc + (size_t)i * (size_t)a->rep * (size_t)a->ld;
		for (int32_t b0 = 0; b0 <= pos; b0 += bs) {
			int32_t ns = pos - b0 + 1 < bs ? pos - b0 + 1 : bs;
			mllm__attn_scores(isa, a->rep, a->head_dim, q, k_at(a, b0), a->L->f16, bs,
			                  ns, a->scale, w + b0, a->ld);
		}
	}
}

#ifdef MLLM_X86
/* int8 V rows read in place (head_dim a multiple of 8): exactly
 * mllm__attn_accum's AVX2 axpy chains on the rows dequantizing would
 * store. */
T_AVX2 static void accum_q8_avx2(int rep, int hd, float *restrict out, const float *restrict w,
                                 int64_t ld, const int8_t *v, const float *vs, int ns)
{
	for (int s = 0; s < ns; s++) {
		const int8_t *vr = v + (size_t)s * (size_t)hd;
		__m256 sc = _mm256_set1_ps(vs[s]);
		for (int r = 0; r < rep; r++) {
			__m256 wv = _mm256_set1_ps(w[r * ld + s]);
			float *y = out + (size_t)r * (size_t)hd;
			for (int e = 0; e < hd; e += 8)
				_mm256_storeu_ps(
				    y + e, _mm256_fmadd_ps(
				               wv, kv_load8(KVF_Q8, (const uint8_t *)vr + e, sc),
				               _mm256_loadu_ps(y + e)));
		}
	}
}
#endif

/* out_i += sum over positions [s0, s1) of w_i[s] * V[s], for query i, in
 * position order through the one-token kernel. */
static void accum_range(mllm__isa isa, const mllm__attn_tile *a, int i, const float *sc, int32_t s0,
                        int32_t s1)
{
	int32_t bs = a->L->block_size;
	float *o = a->out + (int64_t)i * a->q_stride;
	const float *w = sc + (size_t)i * (size_t)a->rep * (size_t)a->ld;
	while (s0 < s1) {
		int32_t end = (s0 / bs + 1) * bs;
		int32_t ns = (end < s1 ? end : s1) - s0;
#ifdef MLLM_X86
		if (a->L->q8) {
			accum_q8_avx2(a->rep, a->head_dim, o, w + s0, a->ld,
			              (const int8_t *)v_at(a, s0), kv_scale_at(a, 1, s0), ns);
			s0 += ns;
			continue;
		}
#endif
		mllm__attn_accum(isa, a->rep, a->head_dim, o, w + s0, a->ld, v_at(a, s0), a->L->f16,
		                 a->head_dim, ns);
		s0 += ns;
	}
}

#ifdef MLLM_X86

/* Scores of nr rows (packed q, [nr][hd]) against nv chunks of 16
 * positions: w[r * ld + 16 v + lane]. Each lane is
 * fma(q[d], K[d][s], acc) for d = 0..hd-1 from zero, then * scale, as in
 * scores_avx512 above. mlast masks the last chunk. */
T_AVX512 static inline __attribute__((always_inline)) void
tscores(const int nr, const int nv, const bool f16, int hd, const float *restrict q,
        const uint8_t *const *kc, int64_t kstride, __mmask16 mlast, float scale, float *restrict w,
        int64_t ld)
{
	__m512 acc[8][3];
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			acc[r][v] = _mm512_setzero_ps();
	for (int d = 0; d < hd; d++) {
		__m512 kv[3];
		size_t off = (size_t)d * (size_t)kstride;
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++) {
			__mmask16 m = v == nv - 1 ? mlast : (__mmask16)0xffff;
			if (f16)
				kv[v] = _mm512_cvtph_ps(
				    _mm256_maskz_loadu_epi16(m, (const uint16_t *)kc[v] + off));
			else
				kv[v] = _mm512_maskz_loadu_ps(m, (const float *)kc[v] + off);
		}
#pragma GCC unroll 8
		for (int r = 0; r < nr; r++) {
			__m512 qb = _mm512_set1_ps(q[r * hd + d]);
#pragma GCC unroll 8
			for (int v = 0; v < nv; v++)
				acc[r][v] = _mm512_fmadd_ps(qb, kv[v], acc[r][v]);
		}
	}
	__m512 sv = _mm512_set1_ps(scale);
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			_mm512_mask_storeu_ps(w + r * ld + 16 * v,
			                      v == nv - 1 ? mlast : (__mmask16)0xffff,
			                      _mm512_mul_ps(acc[r][v], sv));
}

T_AVX512 static inline __attribute__((always_inline)) void
tscores_nv(const int nr, int nv, const bool f16, int hd, const float *restrict q,
           const uint8_t *const *kc, int64_t kstride, __mmask16 mlast, float scale,
           float *restrict w, int64_t ld)
{
	switch (nv) {
	case 1:
		tscores(nr, 1, f16, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	case 2:
		tscores(nr, 2, f16, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	default:
		tscores(nr, 3, f16, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	}
}

/* Each row count (1..8) and f16 get their own copy, so the accumulators
 * stay in registers. */
T_AVX512 static void tscores_any(int nr, int nv, bool f16, int hd, const float *restrict q,
                                 const uint8_t *const *kc, int64_t kstride, __mmask16 mlast,
                                 float scale, float *restrict w, int64_t ld)
{
	if (f16) {
		switch (nr) {
		case 1:
			tscores_nv(1, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		case 2:
			tscores_nv(2, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		case 3:
			tscores_nv(3, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		case 4:
			tscores_nv(4, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		case 5:
			tscores_nv(5, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		case 6:
			tscores_nv(6, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		case 7:
			tscores_nv(7, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		default:
			tscores_nv(8, nv, true, hd, q, kc, kstride, mlast, scale, w, ld);
			break;
		}
		return;
	}
	switch (nr) {
	case 1:
		tscores_nv(1, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	case 2:
		tscores_nv(2, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	case 3:
		tscores_nv(3, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	case 4:
		tscores_nv(4, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	case 5:
		tscores_nv(5, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	case 6:
		tscores_nv(6, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	case 7:
		tscores_nv(7, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	default:
		tscores_nv(8, nv, false, hd, q, kc, kstride, mlast, scale, w, ld);
		break;
	}
}

/* Scores of all R = nq * rep rows over positions 0..np-1 (np = the last
 * query's pos + 1). Earlier queries get lanes past their own position too:
 * harmless, softmax and the V sum read only 0..pos. Rows go in balanced
 * groups of <= 8 per 48-position strip, so the strip's K stays in L1. */
T_AVX512 static void tile_scores_avx512(const mllm__attn_tile *a, const float *qp, int R,
                                        int32_t lo, int32_t np, float *sc)
{
	int hd = a->head_dim;
	int ng = (R + 7) / 8;
	for (int32_t s0 = lo; s0 < np; s0 += 48) {
		int nv = (np - s0 + 15) / 16;
		if (nv > 3)
			nv = 3;
		int32_t last = np - (s0 + 16 * (nv - 1));
		__mmask16 mlast = last >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << last) - 1);
		const uint8_t *kc[3];
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			kc[v] = k_at(a, s0 + 16 * v);
		for (int k = 0, r0 = 0; k < ng; k++) {
			int nr = R / ng + (k < R % ng);
			tscores_any(nr, nv, a->L->f16, hd, qp + (size_t)r0 * (size_t)hd, kc,
			            a->L->block_size, mlast, a->scale, sc + (size_t)r0 * a->ld + s0,
			            a->ld);
			r0 += nr;
		}
	}
}

T_AVX512 static inline __m512 vload16(const uint8_t *p, const bool f16, int i)
{
	if (f16)
		return _mm512_cvtph_ps(
		    _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i)));
	return _mm512_loadu_ps((const float *)p + i);
}

/* o_r[c0 .. c0 + 16 nc) = sum over positions 0..np-1 of w[r * ld + s] *
 * V[s], head_dim 64, nr <= 6 rows: per channel the chain fma(w, v, acc)
 * from zero in position order, as accum64 above (which also starts from
 * the zeroed out). */
T_AVX512 static inline __attribute__((always_inline)) void
taccum(const int nr, const int nc, const bool f16, const mllm__attn_tile *a, const float *w,
       float *const *orow, int c0, int32_t np)
{
	__m512 acc[6][4];
	int32_t bs = a->L->block_size;
	size_t esz = f16 ? 2 : 4, rs = (size_t)a->head_dim * esz;
	int64_t ld = a->ld;
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int i = 0; i < nc; i++)
			acc[r][i] = _mm512_setzero_ps();
	for (int32_t b0 = 0; b0 < np; b0 += bs) {
		const uint8_t *vr = v_at(a, b0) + (size_t)c0 * esz;
		int32_t ns = np - b0 < bs ? np - b0 : bs;
		const float *wb = w + b0;
		for (int32_t s = 0; s < ns; s++, vr += rs) {
			__m512 v[4];
#pragma GCC unroll 8
			for (int i = 0; i < nc; i++)
				v[i] = vload16(vr, f16, 16 * i);
#pragma GCC unroll 8
			for (int r = 0; r < nr; r++) {
				__m512 ws = _mm512_set1_ps(wb[r * ld + s]);
#pragma GCC unroll 8
				for (int i = 0; i < nc; i++)
					acc[r][i] = _mm512_fmadd_ps(ws, v[i], acc[r][i]);
			}
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int i = 0; i < nc; i++)
			_mm512_storeu_ps(orow[r] + c0 + 16 * i, acc[r][i]);
}

/* Channels [c0, c0 + 16 nc), nc = 4 (all 64) or 2 (a half). */
T_AVX512 static void taccum_any(int nr, int nc, bool f16, const mllm__attn_tile *a, const float *w,
                                float *const *orow, int c0, int32_t np)
{
#define TACC512(NR)                                                                                \
	do {                                                                                       \
		if (f16 && nc == 4)                                                                \
			taccum(NR, 4, true, a, w, orow, c0, np);                                   \
		else if (f16)                                                                      \
			taccum(NR, 2, true, a, w, orow, c0, np);                                   \
		else if (nc == 4)                                                                  \
			taccum(NR, 4, false, a, w, orow, c0, np);                                  \
		else                                                                               \
			taccum(NR, 2, false, a, w, orow, c0, np);                                  \
	} while (0)
	switch (nr) {
	case 1:
		TACC512(1);
		break;
	case 2:
		TACC512(2);
		break;
	case 3:
		TACC512(3);
		break;
	case 4:
		TACC512(4);
		break;
	case 5:
		TACC512(5);
		break;
	default:
		TACC512(6);
		break;
	}
#undef TACC512
}

/* AVX2 (16 registers): nr <= 4 rows x nv <= 3 chunks of 8 positions, full
 * chunks only. Each lane is the chain of scores_avx2 above. ksc[v]: the
 * scales of chunk v's positions (q8). */
T_AVX2 static inline __attribute__((always_inline)) void
tscores8(const int nr, const int nv, const int fmt, int hd, const float *restrict q,
         const uint8_t *const *kc, const float *const *ksc, int64_t kstride, float scale,
         float *restrict w, int64_t ld)
{
	__m256 acc[4][3], ks[3];
	size_t esz = kvf_esz(fmt);
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			acc[r][v] = _mm256_setzero_ps();
#pragma GCC unroll 8
	for (int v = 0; v < nv; v++)
		ks[v] = fmt == KVF_Q8 ? _mm256_loadu_ps(ksc[v]) : _mm256_setzero_ps();
	for (int d = 0; d < hd; d++) {
		__m256 kv[3];
		size_t off = (size_t)d * (size_t)kstride * esz;
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			kv[v] = kv_load8(fmt, kc[v] + off, ks[v]);
#pragma GCC unroll 8
		for (int r = 0; r < nr; r++) {
			__m256 qb = _mm256_set1_ps(q[r * hd + d]);
#pragma GCC unroll 8
			for (int v = 0; v < nv; v++)
				acc[r][v] = _mm256_fmadd_ps(qb, kv[v], acc[r][v]);
		}
	}
	__m256 sv = _mm256_set1_ps(scale);
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int v = 0; v < nv; v++)
			_mm256_storeu_ps(w + r * ld + 8 * v, _mm256_mul_ps(acc[r][v], sv));
}

T_AVX2 static inline __attribute__((always_inline)) void
tscores8_nv(const int nr, int nv, const int fmt, int hd, const float *restrict q,
            const uint8_t *const *kc, const float *const *ksc, int64_t kstride, float scale,
            float *restrict w, int64_t ld)
{
	switch (nv) {
	case 1:
		tscores8(nr, 1, fmt, hd, q, kc, ksc, kstride, scale, w, ld);
		break;
	case 2:
		tscores8(nr, 2, fmt, hd, q, kc, ksc, kstride, scale, w, ld);
		break;
	default:
		tscores8(nr, 3, fmt, hd, q, kc, ksc, kstride, scale, w, ld);
		break;
	}
}

T_AVX2 static void tscores8_any(int nr, int nv, int fmt, int hd, const float *restrict q,
                                const uint8_t *const *kc, const float *const *ksc, int64_t kstride,
                                float scale, float *restrict w, int64_t ld)
{
#define TS8(F)                                                                                     \
	do {                                                                                       \
		switch (nr) {                                                                      \
		case 1:                                                                            \
			tscores8_nv(1, nv, F, hd, q, kc, ksc, kstride, scale, w, ld);              \
			break;                                                                     \
		case 2:                                                                            \
			tscores8_nv(2, nv, F, hd, q, kc, ksc, kstride, scale, w, ld);              \
			break;                                                                     \
		case 3:                                                                            \
			tscores8_nv(3, nv, F, hd, q, kc, ksc, kstride, scale, w, ld);              \
			break;                                                                     \
		default:                                                                           \
			tscores8_nv(4, nv, F, hd, q, kc, ksc, kstride, scale, w, ld);              \
			break;                                                                     \
		}                                                                                  \
	} while (0)
	if (fmt == KVF_F16)
		TS8(KVF_F16);
	else if (fmt == KVF_Q8)
		TS8(KVF_Q8);
	else
		TS8(KVF_F32);
#undef TS8
}

/* int8 K: scores_avx2's scalar loop (its tail, the whole of a block of
 * fewer than 8 positions) on the values dequantizing would store. */
T_AVX2 static void scores_tail_q8(int rep, int hd, const float *restrict q, const int8_t *k,
                                  const float *ks, int64_t kstride, int ns, float scale,
                                  float *restrict w, int64_t ld)
{
	for (int r = 0; r < rep; r++) {
		const float *qr = q + (size_t)r * (size_t)hd;
		for (int s = 0; s < ns; s++) {
			float acc = 0.0f;
			for (int d = 0; d < hd; d++) {
				float kv =
				    (float)k[(size_t)d * (size_t)kstride + (size_t)s] * ks[s];
				acc += qr[d] * kv;
			}
			w[r * ld + s] = acc * scale;
		}
	}
}

/* The full 8-position chunks in [lo, hi) below the last query's end in
 * vector lanes (lo a multiple of 8). scores_avx2 takes the last (ns & 7)
 * positions of a token's last block with its scalar loop, so each query's
 * positions (p + 1) & ~7 .. p are then redone through it (block starts are
 * multiples of 8 here), when hi reaches the end. */
static void tile_scores_avx2(mllm__isa isa, const mllm__attn_tile *a, const float *qp, int R,
                             int32_t lo, int32_t hi, float *sc)
{
	int hd = a->head_dim, ng = (R + 3) / 4, fmt = kv_fmt(a->L);
	int32_t n8 = (a->p0 + a->nq) & ~7;
	if (n8 > hi)
		n8 = hi;
	for (int32_t s0 = lo; s0 < n8; s0 += 24) {
		int nv = (n8 - s0) / 8 < 3 ? (n8 - s0) / 8 : 3;
		const uint8_t *kc[3];
		const float *ksc[3] = {NULL, NULL, NULL};
		for (int v = 0; v < nv; v++) {
			kc[v] = k_at(a, s0 + 8 * v);
			if (fmt == KVF_Q8)
				ksc[v] = kv_scale_at(a, 0, s0 + 8 * v);
		}
		for (int k = 0, r0 = 0; k < ng; k++) {
			int nr = R / ng + (k < R % ng);
			tscores8_any(nr, nv, fmt, hd, qp + (size_t)r0 * (size_t)hd, kc, ksc,
			             a->L->block_size, a->scale, sc + (size_t)r0 * a->ld + s0,
			             a->ld);
			r0 += nr;
		}
	}
	if (hi < a->p0 + a->nq)
		return;
	for (int i = 0; i < a->nq; i++) {
		int32_t p = a->p0 + i, t8 = (p + 1) & ~7;
		if (t8 <= p && fmt == KVF_Q8)
			scores_tail_q8(a->rep, hd, a->q + (int64_t)i * a->q_stride,
			               (const int8_t *)k_at(a, t8), kv_scale_at(a, 0, t8),
			               a->L->block_size, p + 1 - t8, a->scale,
			               sc + (size_t)i * (size_t)a->rep * (size_t)a->ld + t8, a->ld);
		else if (t8 <= p)
			mllm__attn_scores(
			    isa, a->rep, hd, a->q + (int64_t)i * a->q_stride, k_at(a, t8),
			    a->L->f16, a->L->block_size, p + 1 - t8, a->scale,
			    sc + (size_t)i * (size_t)a->rep * (size_t)a->ld + t8, a->ld);
	}
}

/* o_r[c0 .. c0 + 8 nc) += the terms of positions p0..np-1 (p0 a block
 * start) for nr rows (nr * nc <= 12 accumulators, loaded from and stored
 * back to o_r): per channel the chain of axpy_f32_avx2 / axpy_f16_avx2
 * (fma(w, v, y) from the zeroed output, in position order), as
 * mllm__attn_accum does it a row at a time. */
T_AVX2 static inline __attribute__((always_inline)) void
taccum8(const int nr, const int nc, const int fmt, const mllm__attn_tile *a, const float *w,
        float *const *orow, int c0, const uint8_t *const *vb, const float *const *vsb, int32_t p0,
        int32_t np)
{
	__m256 acc[4][4];
	int32_t bs = a->L->block_size;
	size_t esz = kvf_esz(fmt), rs = (size_t)a->head_dim * esz;
	int64_t ld = a->ld;
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int i = 0; i < nc; i++)
			acc[r][i] = _mm256_loadu_ps(orow[r] + c0 + 8 * i);
	for (int32_t b0 = p0, j = 0; b0 < np; b0 += bs, j++) {
		const uint8_t *vr = vb[j] + (size_t)c0 * esz;
		int32_t ns = np - b0 < bs ? np - b0 : bs;
		const float *wb = w + b0;
		for (int32_t s = 0; s < ns; s++, vr += rs) {
#pragma GCC unroll 8
			for (int h = 0; h < nc; h += 2) {
				__m256 v0, v1, vs = _mm256_setzero_ps();
				/* 12 accumulators + 2 V + 1 weight fill the 16
				 * registers only if each half broadcasts its weights
				 * again: keep the compiler from reusing (and so
				 * spilling) the first half's. */
				if (h)
					__asm__ volatile("" ::: "memory");
				if (fmt == KVF_Q8)
					vs = _mm256_broadcast_ss(vsb[j] + s);
				v0 = kv_load8(fmt, vr + 8 * esz * (size_t)h, vs);
				v1 = kv_load8(fmt, vr + 8 * esz * (size_t)h + 8 * esz, vs);
#pragma GCC unroll 8
				for (int r = 0; r < nr; r++) {
					__m256 ws = _mm256_broadcast_ss(wb + r * ld + s);
					acc[r][h] = _mm256_fmadd_ps(ws, v0, acc[r][h]);
					acc[r][h + 1] = _mm256_fmadd_ps(ws, v1, acc[r][h + 1]);
				}
			}
		}
	}
#pragma GCC unroll 8
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 8
		for (int i = 0; i < nc; i++)
			_mm256_storeu_ps(orow[r] + c0 + 8 * i, acc[r][i]);
}

/* Rows x channels [c0, c1) over positions 0..np-1, in spans of about 64
 * positions (whole blocks): each span's V rows are read from memory by the
 * first channel pass and from L1 by the others, so every V line is fetched
 * once and whole. Passes are 32 channels wide for up to 3 rows, 16 for 4.
 * The chains continue through orow (zeroed here), so spans do not change
 * a single rounding. */
T_AVX2 static void taccum8_any(int nr, int fmt, const mllm__attn_tile *a, const float *w,
                               float *const *orow, int c0, int c1, int32_t np)
{
	enum { SPAN = 64 };
	int32_t bs = a->L->block_size, span = bs >= SPAN ? bs : SPAN / bs * bs;
	const uint8_t *vb[SPAN];
	const float *vsb[SPAN];
	for (int r = 0; r < nr; r++)
		memset(orow[r] + c0, 0, (size_t)(c1 - c0) * sizeof(float));
	for (int32_t p0 = 0; p0 < np; p0 += span) {
		int32_t p1 = np - p0 < span ? np : p0 + span;
		for (int32_t b0 = p0, j = 0; b0 < p1; b0 += bs, j++) {
			vb[j] = v_at(a, b0);
			vsb[j] = fmt == KVF_Q8 ? kv_scale_at(a, 1, b0) : NULL;
		}
		for (int c = c0; c < c1;) {
			bool wide = nr <= 3 && c1 - c >= 32;
#define TACC(NR, F)                                                                                \
	do {                                                                                       \
		if (wide)                                                                          \
			taccum8(NR, 4, F, a, w, orow, c, vb, vsb, p0, p1);                         \
		else                                                                               \
			taccum8(NR, 2, F, a, w, orow, c, vb, vsb, p0, p1);                         \
	} while (0)
#define TACC_NR(F)                                                                                 \
	do {                                                                                       \
		switch (nr) {                                                                      \
		case 1:                                                                            \
			TACC(1, F);                                                                \
			break;                                                                     \
		case 2:                                                                            \
			TACC(2, F);                                                                \
			break;                                                                     \
		case 3:                                                                            \
			TACC(3, F);                                                                \
			break;                                                                     \
		default:                                                                           \
			taccum8(4, 2, F, a, w, orow, c, vb, vsb, p0, p1);                          \
			break;                                                                     \
		}                                                                                  \
	} while (0)
			if (fmt == KVF_F16)
				TACC_NR(KVF_F16);
			else if (fmt == KVF_Q8)
				TACC_NR(KVF_Q8);
			else
				TACC_NR(KVF_F32);
#undef TACC_NR
#undef TACC
			c += wide ? 32 : 16;
		}
	}
}

/* All R rows over the positions every query of the tile sees, 0..p0:
 * AVX-512 in groups of <= 6 rows x 64 channels, AVX2 <= 4 rows x 16. */
static void tile_accum(mllm__isa isa, const mllm__attn_tile *a, int R, const float *sc)
{
	int gmax = isa == MLLM__ISA_AVX512 ? 6 : 3;
	int ng = (R + gmax - 1) / gmax;
	for (int k = 0, r0 = 0; k < ng; k++) {
		int nr = R / ng + (k < R % ng);
		float *orow[6];
		for (int r = 0; r < nr; r++) {
			int j = r0 + r;
			orow[r] = a->out + (int64_t)(j / a->rep) * a->q_stride +
			          (int64_t)(j % a->rep) * a->head_dim;
		}
		const float *w = sc + (size_t)r0 * (size_t)a->ld;
		if (isa == MLLM__ISA_AVX512)
			taccum_any(nr, 4, a->L->f16, a, w, orow, 0, a->p0 + 1);
		else
			taccum8_any(nr, kv_fmt(a->L), a, w, orow, 0, a->head_dim, a->p0 + 1);
		r0 += nr;
	}
}

#endif /* MLLM_X86 */

/* The tile's q rows, [nq * rep][head_dim], so a row group is one pointer. */
static void pack_q(const mllm__attn_tile *a, float *qp)
{
	size_t n = (size_t)a->rep * (size_t)a->head_dim;
	for (int i = 0; i < a->nq; i++)
		memcpy(qp + (size_t)i * n, a->q + (int64_t)i * a->q_stride, n * sizeof(float));
}

void mllm__attn_run_tile(mllm__isa isa, const mllm__attn_tile *in)
{
	/* Score rows only as long as this tile needs, an odd number of 64-byte
	 * lines apart: rows n_ctx floats apart would put a column of every row
	 * in one L1 set (4 KiB aliasing), and short rows stay in L1. */
	mllm__attn_tile t = *in;
	MLLM_ASSERT(!in->L->q8 || mllm__attn_q8_native(isa, in->L, in->head_dim));
	const mllm__attn_tile *a = &t;
	isa = mllm__attn_isa(isa, in->L);
	int rep = a->rep, hd = a->head_dim, R = a->nq * rep;
	MLLM_ASSERT(a->nq >= 1 && a->nq <= MLLM__ATTN_TQ && a->p0 + a->nq <= in->ld);
	t.ld = (((int64_t)a->p0 + a->nq + 15) & ~(int64_t)15) | 16;
	float *sc = a->scratch;
	float *qp = sc + (size_t)MLLM__ATTN_TQ * (size_t)rep * ((size_t)in->ld + 32);

	/* 1. scores[i][r][p] = q_ir . k_p / sqrt(head_dim) for p <= p0 + i */
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512 && a->L->block_size % 16 == 0) {
		pack_q(a, qp);
		tile_scores_avx512(a, qp, R, 0, a->p0 + a->nq, sc);
	} else if (isa == MLLM__ISA_AVX2 && a->L->block_size % 8 == 0) {
		pack_q(a, qp);
		tile_scores_avx2(isa, a, qp, R, 0, a->p0 + a->nq, sc);
	} else
#endif
		scores_per_query(isa, a, sc);

	/* 2. softmax over 0..p0 + i, per (query, head) row */
	for (int i = 0; i < a->nq; i++)
		for (int r = 0; r < rep; r++)
			mllm__softmax(isa,
			              sc + ((size_t)i * (size_t)rep + (size_t)r) * (size_t)a->ld,
			              (int64_t)a->p0 + i + 1);

			/* 3. out = sum_p w[p] v_p: positions 0..p0 for the whole tile, then
			 * each query's own p0+1..p0+i, continuing the same chains. */
#ifdef MLLM_X86
	if ((isa == MLLM__ISA_AVX512 && hd == 64) || (isa == MLLM__ISA_AVX2 && hd % 16 == 0)) {
		tile_accum(isa, a, R, sc);
		for (int i = 1; i < a->nq; i++)
			accum_range(isa, a, i, sc, a->p0 + 1, a->p0 + i + 1);
		return;
	}
#endif
	for (int i = 0; i < a->nq; i++) {
		memset(a->out + (int64_t)i * a->q_stride, 0,
		       (size_t)rep * (size_t)hd * sizeof(float));
		accum_range(isa, a, i, sc, 0, a->p0 + i + 1);
	}
}

mllm__isa mllm__attn_isa(mllm__isa isa, const mllm__kv_layout *L)
{
	return L->q8 && isa == MLLM__ISA_AVX512 ? MLLM__ISA_AVX2 : isa;
}

bool mllm__attn_q8_native(mllm__isa isa, const mllm__kv_layout *L, int head_dim)
{
#ifdef MLLM_X86
	return L->q8 && mllm__attn_isa(isa, L) == MLLM__ISA_AVX2 && L->block_size % 8 == 0 &&
	       head_dim % 16 == 0;
#else
	(void)isa;
	(void)L;
	(void)head_dim;
	return false;
#endif
}

/* ---- One token in parts (split-K) ----------------------------------------- */

bool mllm__attn_split_ok(mllm__isa isa, const mllm__kv_layout *L, int head_dim)
{
	isa = mllm__attn_isa(isa, L);
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512)
		return L->block_size % 16 == 0 && head_dim == 64;
	if (isa == MLLM__ISA_AVX2)
		return L->block_size % 8 == 0 && head_dim % 32 == 0;
#endif
	(void)isa;
	(void)L;
	(void)head_dim;
	return false;
}

/* The same kernels as mllm__attn_run_tile's first step on a part of the
 * positions: every score lane is its own chain, so the cut changes no bit.
 * The q rows of one token are already packed ([rep][head_dim]). */
void mllm__attn_split_scores(mllm__isa isa, const mllm__attn_tile *a, int32_t s0, int32_t s1)
{
	MLLM_ASSERT(a->nq == 1 && s0 % MLLM__ATTN_SPLIT_ALIGN == 0 && s0 < s1 && s1 <= a->p0 + 1 &&
	            mllm__attn_split_ok(isa, a->L, a->head_dim));
	isa = mllm__attn_isa(isa, a->L);
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512)
		tile_scores_avx512(a, a->q, a->rep, s0, s1, a->scratch);
	else
		tile_scores_avx2(isa, a, a->q, a->rep, s0, s1, a->scratch);
#else
	(void)isa;
	(void)s0;
	(void)s1;
#endif
}

/* mllm__attn_run_tile's third step on channels [c0, c1): every channel is
 * its own chain in position order, so the cut changes no bit. */
void mllm__attn_split_accum(mllm__isa isa, const mllm__attn_tile *a, int c0, int c1)
{
	MLLM_ASSERT(a->nq == 1 && c0 % MLLM__ATTN_SPLIT_ALIGN_C == 0 &&
	            c1 % MLLM__ATTN_SPLIT_ALIGN_C == 0 && c0 < c1 && c1 <= a->head_dim &&
	            mllm__attn_split_ok(isa, a->L, a->head_dim));
	isa = mllm__attn_isa(isa, a->L);
#ifdef MLLM_X86
	int gmax = isa == MLLM__ISA_AVX512 ? 6 : 3, R = a->rep;
	int ng = (R + gmax - 1) / gmax;
	for (int k = 0, r0 = 0; k < ng; k++) {
		int nr = R / ng + (k < R % ng);
		float *orow[6];
		for (int r = 0; r < nr; r++)
			orow[r] = a->out + (int64_t)(r0 + r) * a->head_dim;
		const float *w = a->scratch + (size_t)r0 * (size_t)a->ld;
		if (isa == MLLM__ISA_AVX512)
			for (int c = c0; c < c1; c += 32)
				taccum_any(nr, 2, a->L->f16, a, w, orow, c, a->p0 + 1);
		else
			taccum8_any(nr, kv_fmt(a->L), a, w, orow, c0, c1, a->p0 + 1);
		r0 += nr;
	}
#else
	(void)isa;
	(void)c0;
	(void)c1;
#endif
}

/* ---- int8 K/V ---------------------------------------------------------- */

void mllm__q8_head(const float *x, int n, int8_t *q, size_t stride, float *scale)
{
	float amax = 0.0f;
	for (int i = 0; i < n; i++) {
		float a = fabsf(x[i]);
		amax = a > amax ? a : amax;
	}
	float d = amax / 127.0f, id = d > 0.0f ? 1.0f / d : 0.0f;
	for (int i = 0; i < n; i++) {
		float v = x[i] * id;
		int r = (int)(v + (v >= 0.0f ? 0.5f : -0.5f));
		q[(size_t)i * stride] = (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
	}
	*scale = d;
}

/* One block of a KV head, ns valid positions (the rest zero): K [hd][bs]
 * with a scale per position, V [bs][hd] with one per row. */
static void dequant_block_q8(const int8_t *kq, const int8_t *vq, const float *ks, const float *vs,
                             int32_t bs, int32_t hd, int32_t ns, float *restrict kf,
                             float *restrict vf)
{
	for (int32_t d = 0; d < hd; d++)
		for (int32_t s = 0; s < bs; s++)
			kf[(size_t)d * (size_t)bs + (size_t)s] =
			    s < ns ? (float)kq[(size_t)d * (size_t)bs + (size_t)s] * ks[s] : 0.0f;
	for (int32_t s = 0; s < bs; s++)
		for (int32_t e = 0; e < hd; e++)
			vf[(size_t)s * (size_t)hd + (size_t)e] =
			    s < ns ? (float)vq[(size_t)s * (size_t)hd + (size_t)e] * vs[s] : 0.0f;
}

#ifdef MLLM_X86
/* The same, 8 values a step (full blocks whose sizes are multiples of 8):
 * each value the same single f32 product, formed by kv_load8 as the
 * in-place tiles form it. */
T_AVX2 static void dequant_block_q8_avx2(const int8_t *kq, const int8_t *vq, const float *ks,
                                         const float *vs, int32_t bs, int32_t hd,
                                         float *restrict kf, float *restrict vf)
{
	for (int32_t s = 0; s < bs; s += 8) {
		__m256 sc = _mm256_loadu_ps(ks + s);
		for (int32_t d = 0; d < hd; d++) {
			size_t i = (size_t)d * (size_t)bs + (size_t)s;
			_mm256_storeu_ps(kf + i, kv_load8(KVF_Q8, (const uint8_t *)kq + i, sc));
		}
	}
	for (int32_t s = 0; s < bs; s++) {
		__m256 sc = _mm256_set1_ps(vs[s]);
		for (int32_t e = 0; e < hd; e += 8) {
			size_t i = (size_t)s * (size_t)hd + (size_t)e;
			_mm256_storeu_ps(vf + i, kv_load8(KVF_Q8, (const uint8_t *)vq + i, sc));
		}
	}
}
#endif

void mllm__attn_run_tile_q8(mllm__isa isa, const mllm__attn_tile *a, float *kvf, int32_t kvf_blocks,
                            const int32_t *ident)
{
	const mllm__kv_layout *L = a->L;
	int32_t bs = L->block_size, hd = a->head_dim, n = a->p0 + a->nq;
	size_t half = (size_t)bs * (size_t)hd;
	MLLM_ASSERT(L->q8 && (n + bs - 1) / bs <= kvf_blocks);
	mllm__kv_layout F = {.base = (uint8_t *)kvf,
	                     .block_bytes = 2 * half * sizeof(float),
	                     .n_blocks = kvf_blocks,
	                     .block_size = bs,
	                     .runs = 1,
	                     .kv_dim = hd,
	                     .head_dim = hd};
	for (int32_t i = 0; i * bs < n; i++) {
		int32_t blk = a->table[i], ns = n - i * bs < bs ? n - i * bs : bs;
		const int8_t *kq = mllm__kv_head(L, blk, a->run, 0, a->g);
		const int8_t *vq = mllm__kv_head(L, blk, a->run, 1, a->g);
		const float *ks = mllm__kv_scales(L, blk, a->run, 0, a->g);
		const float *vs = mllm__kv_scales(L, blk, a->run, 1, a->g);
		float *kf = mllm__kv_head(&F, i, 0, 0, 0), *vf = mllm__kv_head(&F, i, 0, 1, 0);
#ifdef MLLM_X86
		if (isa != MLLM__ISA_SCALAR && ns == bs && bs % 8 == 0 && hd % 8 == 0) {
			dequant_block_q8_avx2(kq, vq, ks, vs, bs, hd, kf, vf);
			continue;
		}
#endif
		/* Positions past n are never weighted; zeros keep them finite. */
		dequant_block_q8(kq, vq, ks, vs, bs, hd, ns, kf, vf);
	}
	mllm__attn_tile f = *a;
	f.L = &F;
	f.table = ident;
	f.run = 0;
	f.g = 0;
	mllm__attn_run_tile(mllm__attn_isa(isa, L), &f);
}
