/*
 * vec.c — the row kernels around the matrix products: RMSNorm, RoPE,
 * softmax, SwiGLU, dot and axpy rows (f32 and f16), and f32 -> f16 rows.
 * Like kernels.c, each has a scalar reference and AVX2 / AVX-512 paths
 * chosen by the caller's mllm__isa (MLLM_REF_KERNELS=1 forces the
 * reference); the SIMD exp is a Cephes-style polynomial shared by softmax
 * and SiLU.
 */
#include "kernels.h"
#include "simd.h"

#include <math.h>
#include <string.h>

/* ---- exp for softmax and SiLU ------------------------------------------- */

/* Cephes-style expf: x = n ln2 + r, |r| <= ln2/2, degree-5 polynomial;
 * relative error about 2 ulp, enough for f32 logits at 1e-4. */
#define EXP_HI 88.3762626647949f
#define EXP_LO -87.3365447504f
#define EXP_C1 0.693359375f
#define EXP_C2 -2.12194440e-4f
#define EXP_P0 1.9875691500E-4f
#define EXP_P1 1.3981999507E-3f
#define EXP_P2 8.3334519073E-3f
#define EXP_P3 4.1665795894E-2f
#define EXP_P4 1.6666665459E-1f
#define EXP_P5 5.0000001201E-1f

#ifdef MLLM_X86
T_AVX2 static inline __m256 exp256(__m256 x)
{
	x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(EXP_LO)), _mm256_set1_ps(EXP_HI));
	__m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
	                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EXP_C1), x);
	x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(EXP_C2), x);
	__m256 y = _mm256_set1_ps(EXP_P0);
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(EXP_P1));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(EXP_P2));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(EXP_P3));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(EXP_P4));
	y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(EXP_P5));
	y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
	__m256i e =
	    _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
	return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

T_AVX512 static inline __m512 exp512(__m512 x)
{
	x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(EXP_LO)), _mm512_set1_ps(EXP_HI));
	__m512 fx = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
	                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EXP_C1), x);
	x = _mm512_fnmadd_ps(fx, _mm512_set1_ps(EXP_C2), x);
	__m512 y = _mm512_set1_ps(EXP_P0);
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(EXP_P1));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(EXP_P2));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(EXP_P3));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(EXP_P4));
	y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(EXP_P5));
	y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1.0f)));
	return _mm512_scalef_ps(y, fx);
}

T_AVX512 static void softmax_avx512(float *x, int64_t n)
{
	int64_t n16 = n & ~(int64_t)15;
	__mmask16 tail = (__mmask16)((1u << (n - n16)) - 1);
	__m512 mx = _mm512_set1_ps(-INFINITY);
	int64_t i = 0;
	for (; i < n16; i += 16)
		mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + i));
	if (tail)
		mx = _mm512_mask_max_ps(mx, tail, mx, _mm512_maskz_loadu_ps(tail, x + i));
	__m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
	__m512 sum = _mm512_setzero_ps();
	for (i = 0; i < n16; i += 16) {
		__m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
		_mm512_storeu_ps(x + i, e);
		sum = _mm512_add_ps(sum, e);
	}
	if (tail) {
		__m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + i), m));
		e = _mm512_maskz_mov_ps(tail, e);
		_mm512_mask_storeu_ps(x + i, tail, e);
		sum = _mm512_add_ps(sum, e);
	}
	__m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
	for (i = 0; i < n16; i += 16)
		_mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
	if (tail)
		_mm512_mask_storeu_ps(x + i, tail,
		                      _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, x + i), inv));
}

T_AVX2 static void softmax_avx2(float *x, int64_t n)
{
	int64_t n8 = n & ~(int64_t)7, i;
	/* The maximum is exact in any order: lanes, then the tail. */
	__m256 vm = _mm256_set1_ps(-INFINITY);
	for (i = 0; i < n8; i += 8)
		vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
	__m128 h = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
	h = _mm_max_ps(h, _mm_movehl_ps(h, h));
	h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
	float mx = _mm_cvtss_f32(h);
	for (; i < n; i++)
		mx = x[i] > mx ? x[i] : mx;
	__m256 m = _mm256_set1_ps(mx);
	__m256 sum = _mm256_setzero_ps();
	for (i = 0; i < n8; i += 8) {
		__m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
		_mm256_storeu_ps(x + i, e);
		sum = _mm256_add_ps(sum, e);
	}
	float s = hsum256(sum);
	for (; i < n; i++) {
		x[i] = expf(x[i] - mx);
		s += x[i];
	}
	float inv = 1.0f / s;
	__m256 vi = _mm256_set1_ps(inv);
	for (i = 0; i < n8; i += 8)
		_mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vi));
	for (; i < n; i++)
		x[i] *= inv;
}

/* exp((x - m) * s) by lanes, 0 where x is -inf (a banned or masked token
 * must keep probability exactly 0, which the clamped exp would not give);
 * the sum accumulates in double. */
T_AVX512 static double exp_shift_avx512(const float *restrict x, float m, float s,
                                        float *restrict out, int64_t n)
{
	const __m512 vm = _mm512_set1_ps(m), vs = _mm512_set1_ps(s),
	             ninf = _mm512_set1_ps(-INFINITY);
	__m512d acc = _mm512_setzero_pd();
	int64_t i = 0;
	double sum;
	for (; i + 16 <= n; i += 16) {
		__m512 v = _mm512_loadu_ps(x + i);
		__mmask16 live = _mm512_cmp_ps_mask(v, ninf, _CMP_NEQ_UQ);
		__m512 e =
		    _mm512_maskz_mov_ps(live, exp512(_mm512_mul_ps(_mm512_sub_ps(v, vm), vs)));
		_mm512_storeu_ps(out + i, e);
		acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
		acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castpd_ps(
		                             _mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
	}
	sum = _mm512_reduce_add_pd(acc);
	for (; i < n; i++) {
		out[i] = x[i] == -INFINITY ? 0.0f : expf((x[i] - m) * s);
		sum += out[i];
	}
	return sum;
}

/* NaNs are skipped: max_ps returns its second operand when either is NaN,
 * and the scalar steps compare with >. */
T_AVX2 static float max_f32_avx2(const float *x, int64_t n)
{
	__m256 a = _mm256_set1_ps(-INFINITY), b = a;
	float lanes[8], m;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		a = _mm256_max_ps(_mm256_loadu_ps(x + i), a);
		b = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), b);
	}
	_mm256_storeu_ps(lanes, _mm256_max_ps(a, b));
	m = lanes[0];
	for (int k = 1; k < 8; k++)
		m = lanes[k] > m ? lanes[k] : m;
	for (; i < n; i++)
		m = x[i] > m ? x[i] : m;
	return m;
}

/* The maximum with NaNs skipped, then the first index holding it, 8 lanes
 * at a time. */
T_AVX2 static int64_t argmax_avx2(const float *x, int64_t n)
{
	int64_t i;
	float m = max_f32_avx2(x, n);
	if (!(x[0] < m))
		return 0; /* x[0] is a maximum, or NaN: nothing beats it */
	__m256 vm = _mm256_set1_ps(m);
	for (i = 0; i + 8 <= n; i += 8) {
		int k = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vm, _CMP_EQ_OQ));
		if (k)
			return i + __builtin_ctz((unsigned)k);
	}
	for (; i < n; i++)
		if (x[i] == m)
			return i;
	return 0;
}

T_AVX2 static double exp_shift_avx2(const float *restrict x, float m, float s, float *restrict out,
                                    int64_t n)
{
	const __m256 vm = _mm256_set1_ps(m), vs = _mm256_set1_ps(s),
	             ninf = _mm256_set1_ps(-INFINITY);
	__m256d acc = _mm256_setzero_pd();
	double lanes[4], sum;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 v = _mm256_loadu_ps(x + i);
		__m256 live = _mm256_cmp_ps(v, ninf, _CMP_NEQ_UQ);
		__m256 e = _mm256_and_ps(live, exp256(_mm256_mul_ps(_mm256_sub_ps(v, vm), vs)));
		_mm256_storeu_ps(out + i, e);
		acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
		acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
	}
	_mm256_storeu_pd(lanes, acc);
	sum = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
	for (; i < n; i++) {
		out[i] = x[i] == -INFINITY ? 0.0f : expf((x[i] - m) * s);
		sum += out[i];
	}
	return sum;
}

T_AVX512 static void silu_mul_avx512(float *restrict g, const float *restrict u, int64_t n)
{
	int64_t i = 0;
	const __m512 one = _mm512_set1_ps(1.0f);
	for (; i + 16 <= n; i += 16) {
		__m512 x = _mm512_loadu_ps(g + i);
		__m512 s = _mm512_div_ps(
		    x, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
		_mm512_storeu_ps(g + i, _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
	}
	/* The tail through the same vector formula, masked: the pool cuts
	 * rows x n_ff at token boundaries, so which elements fall in a tail
	 * depends on the batch, and a scalar expf there made a row's values
	 * depend on it (n_ff = 172 in stories260K). */
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		__m512 x = _mm512_maskz_loadu_ps(m, g + i);
		__m512 s = _mm512_div_ps(
		    x, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
		_mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + i)));
	}
}

T_AVX2 static void silu_mul_avx2(float *restrict g, const float *restrict u, int64_t n)
{
	int64_t i = 0;
	const __m256 one = _mm256_set1_ps(1.0f);
	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 s = _mm256_div_ps(
		    x, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
		_mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
	}
	/* The tail through the same vector formula (see silu_mul_avx512). */
	if (i < n) {
		float xg[8] = {0}, xu[8] = {0};
		memcpy(xg, g + i, (size_t)(n - i) * sizeof(float));
		memcpy(xu, u + i, (size_t)(n - i) * sizeof(float));
		__m256 x = _mm256_loadu_ps(xg);
		__m256 s = _mm256_div_ps(
		    x, _mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
		_mm256_storeu_ps(xg, _mm256_mul_ps(s, _mm256_loadu_ps(xu)));
		memcpy(g + i, xg, (size_t)(n - i) * sizeof(float));
	}
}

T_AVX512 static float dot_f32_avx512(const float *restrict a, const float *restrict b, int64_t n)
{
	__m512 s0 = _mm512_setzero_ps(), s1 = s0;
	int64_t i = 0;
	for (; i + 32 <= n; i += 32) {
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
		s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
	}
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
		                     _mm512_maskz_loadu_ps(m, b + i), s1);
	}
	return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

T_AVX512 static float dot_f16_avx512(const float *restrict a, const uint16_t *restrict b, int64_t n)
{
	__m512 s0 = _mm512_setzero_ps();
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i),
		                     _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + i))),
		                     s0);
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i),
		                     _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, b + i)), s0);
	}
	return _mm512_reduce_add_ps(s0);
}

T_AVX512 static void axpy_f32_avx512(float *restrict y, float a, const float *restrict x, int64_t n)
{
	__m512 av = _mm512_set1_ps(a);
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(
		    y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(y + i, m,
		                      _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i),
		                                      _mm512_maskz_loadu_ps(m, y + i)));
	}
}

T_AVX512 static void axpy_f16_avx512(float *restrict y, float a, const uint16_t *restrict x,
                                     int64_t n)
{
	__m512 av = _mm512_set1_ps(a);
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(
		    y + i, _mm512_fmadd_ps(
		               av, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))),
		               _mm512_loadu_ps(y + i)));
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(
		    y + i, m,
		    _mm512_fmadd_ps(av, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, x + i)),
		                    _mm512_maskz_loadu_ps(m, y + i)));
	}
}

T_AVX2 static float dot_f32_avx2(const float *restrict a, const float *restrict b, int64_t n)
{
	__m256 s0 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
	float s = hsum256(s0);
	for (; i < n; i++)
		s += a[i] * b[i];
	return s;
}

T_AVX2 static float dot_f16_avx2(const float *restrict a, const uint16_t *restrict b, int64_t n)
{
	__m256 s0 = _mm256_setzero_ps();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		s0 =
		    _mm256_fmadd_ps(_mm256_loadu_ps(a + i),
		                    _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + i))), s0);
	float s = hsum256(s0);
	for (; i < n; i++)
		s += a[i] * mllm__f16_to_f32(b[i]);
	return s;
}

T_AVX2 static void axpy_f32_avx2(float *restrict y, float a, const float *restrict x, int64_t n)
{
	__m256 av = _mm256_set1_ps(a);
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(
		    y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * x[i];
}

T_AVX2 static void axpy_f16_avx2(float *restrict y, float a, const uint16_t *restrict x, int64_t n)
{
	__m256 av = _mm256_set1_ps(a);
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(
		    y + i,
		    _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
		                    _mm256_loadu_ps(y + i)));
	for (; i < n; i++)
		y[i] += a * mllm__f16_to_f32(x[i]);
}

#endif /* MLLM_X86 */

/* ---- Vector kernels: dispatch and references ----------------------------- */

/* ---- RMSNorm -------------------------------------------------------------- */

/* Sum of squares in double, in one fixed order on every tier: lane j of 8
 * sums x[i]^2 for i = j (mod 8) in increasing i, then the lanes fold as
 * ((0+4) + (2+6)) + ((1+5) + (3+7)). A float's square is exact in double,
 * so multiply-then-add and fused multiply-add agree and the tiers give the
 * same bits; the order no longer depends on n, so the norm is still the
 * same for a row wherever it sits in a batch. The earlier single chain of
 * adds waited ~4 cycles per element: ~2% of a 16-sequence step's samples,
 * serial on the calling thread. */
static double sumsq_fold(const double l[8])
{
	return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

static double sumsq_ref(const float *x, int64_t n)
{
	double l[8] = {0};
	for (int64_t i = 0; i < n; i++)
		l[i & 7] += (double)x[i] * (double)x[i];
	return sumsq_fold(l);
}

#ifdef MLLM_X86
T_AVX2 static double sumsq_avx2(const float *x, int64_t n)
{
	__m256d a = _mm256_setzero_pd(), b = _mm256_setzero_pd();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256d lo = _mm256_cvtps_pd(_mm_loadu_ps(x + i));
		__m256d hi = _mm256_cvtps_pd(_mm_loadu_ps(x + i + 4));
		a = _mm256_add_pd(a, _mm256_mul_pd(lo, lo));
		b = _mm256_add_pd(b, _mm256_mul_pd(hi, hi));
	}
	double l[8];
	_mm256_storeu_pd(l, a);
	_mm256_storeu_pd(l + 4, b);
	for (int j = 0; i < n; i++, j++)
		l[j] += (double)x[i] * (double)x[i];
	return sumsq_fold(l);
}

T_AVX512 static double sumsq_avx512(const float *x, int64_t n)
{
	__m512d a = _mm512_setzero_pd();
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m512d v = _mm512_cvtps_pd(_mm256_loadu_ps(x + i));
		a = _mm512_add_pd(a, _mm512_mul_pd(v, v));
	}
	double l[8];
	_mm512_storeu_pd(l, a);
	for (int j = 0; i < n; i++, j++)
		l[j] += (double)x[i] * (double)x[i];
	return sumsq_fold(l);
}

T_AVX512 static void scale_mul_avx512(float *out, const float *x, const float *w, int64_t n,
                                      float scale)
{
	__m512 s = _mm512_set1_ps(scale);
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), s),
		                                        _mm512_loadu_ps(w + i)));
	for (; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

T_AVX2 static void scale_mul_avx2(float *out, const float *x, const float *w, int64_t n,
                                  float scale)
{
	__m256 s = _mm256_set1_ps(scale);
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s),
		                                        _mm256_loadu_ps(w + i)));
	for (; i < n; i++)
		out[i] = x[i] * scale * w[i];
}
#endif

double mllm__sumsq(mllm__isa isa, const float *x, int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512)
		return sumsq_avx512(x, n);
	if (isa == MLLM__ISA_AVX2)
		return sumsq_avx2(x, n);
#endif
	(void)isa;
	return sumsq_ref(x, n);
}

void mllm__rmsnorm(mllm__isa isa, float *out, const float *x, const float *restrict w, int64_t n,
                   float eps)
{
	float scale = (float)(1.0 / sqrt(mllm__sumsq(isa, x, n) / (double)n + (double)eps));
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		scale_mul_avx512(out, x, w, n, scale);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		scale_mul_avx2(out, x, w, n, scale);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

void mllm__rope(float *restrict v, int n_heads, int head_dim, const float *restrict cs,
                bool interleaved)
{
	int half = head_dim / 2;
	const float *c = cs, *s = cs + half;
	for (int h = 0; h < n_heads; h++) {
		float *p = v + (size_t)h * head_dim;
		if (interleaved) {
			for (int i = 0; i < half; i++) {
				float a = p[2 * i], b = p[2 * i + 1];
				p[2 * i] = a * c[i] - b * s[i];
				p[2 * i + 1] = b * c[i] + a * s[i];
			}
		} else {
			for (int i = 0; i < half; i++) {
				float a = p[i], b = p[i + half];
				p[i] = a * c[i] - b * s[i];
				p[i + half] = b * c[i] + a * s[i];
			}
		}
	}
}

void mllm__rmsnorm_heads(mllm__isa isa, float *v, int n_heads, int head_dim, float eps)
{
	/* As mllm__rmsnorm: the sum of squares in double, same order. */
	for (int h = 0; h < n_heads; h++) {
		float *p = v + (size_t)h * head_dim;
		double ss = mllm__sumsq(isa, p, head_dim);
		float scale = (float)(1.0 / sqrt(ss / (double)head_dim + (double)eps));
		for (int i = 0; i < head_dim; i++)
			p[i] *= scale;
	}
}

void mllm__softmax(mllm__isa isa, float *x, int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		softmax_avx512(x, n);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		softmax_avx2(x, n);
		return;
	}
#endif
	(void)isa;
	float mx = -INFINITY;
	for (int64_t i = 0; i < n; i++)
		mx = fmaxf(mx, x[i]);
	double s = 0.0;
	for (int64_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - mx);
		s += x[i];
	}
	float inv = (float)(1.0 / s);
	for (int64_t i = 0; i < n; i++)
		x[i] *= inv;
}

float mllm__max_f32(mllm__isa isa, const float *x, int64_t n)
{
	float m = -INFINITY;
	int64_t i = 0;
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512 || isa == MLLM__ISA_AVX2)
		return max_f32_avx2(x, n);
#endif
	(void)isa;
	for (; i < n; i++)
		m = x[i] > m ? x[i] : m;
	return m;
}

int64_t mllm__argmax_f32(mllm__isa isa, const float *x, int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512 || isa == MLLM__ISA_AVX2)
		return argmax_avx2(x, n);
#endif
	(void)isa;
	int64_t best = 0;
	for (int64_t i = 1; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}

double mllm__exp_shift(mllm__isa isa, const float *restrict x, float m, float s,
                       float *restrict out, int64_t n)
{
	double sum = 0.0;
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512)
		return exp_shift_avx512(x, m, s, out, n);
	if (isa == MLLM__ISA_AVX2)
		return exp_shift_avx2(x, m, s, out, n);
#endif
	(void)isa;
	for (int64_t i = 0; i < n; i++) {
		out[i] = x[i] == -INFINITY ? 0.0f : expf((x[i] - m) * s);
		sum += out[i];
	}
	return sum;
}

void mllm__silu_mul(mllm__isa isa, float *restrict g, const float *restrict u, int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		silu_mul_avx512(g, u, n);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		silu_mul_avx2(g, u, n);
		return;
	}
#endif
	(void)isa;
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

float mllm__dot_f32(mllm__isa isa, const float *restrict a, const float *restrict b, int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512)
		return dot_f32_avx512(a, b, n);
	if (isa == MLLM__ISA_AVX2)
		return dot_f32_avx2(a, b, n);
#endif
	(void)isa;
	float s = 0.0f;
	for (int64_t i = 0; i < n; i++)
		s += a[i] * b[i];
	return s;
}

float mllm__dot_f16(mllm__isa isa, const float *restrict a, const uint16_t *restrict b, int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512)
		return dot_f16_avx512(a, b, n);
	if (isa == MLLM__ISA_AVX2)
		return dot_f16_avx2(a, b, n);
#endif
	(void)isa;
	float s = 0.0f;
	for (int64_t i = 0; i < n; i++)
		s += a[i] * mllm__f16_to_f32(b[i]);
	return s;
}

void mllm__axpy_f32(mllm__isa isa, float *restrict y, float a, const float *restrict x, int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		axpy_f32_avx512(y, a, x, n);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		axpy_f32_avx2(y, a, x, n);
		return;
	}
#endif
	(void)isa;
	for (int64_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

void mllm__axpy_f16(mllm__isa isa, float *restrict y, float a, const uint16_t *restrict x,
                    int64_t n)
{
#ifdef MLLM_X86
	if (isa == MLLM__ISA_AVX512) {
		axpy_f16_avx512(y, a, x, n);
		return;
	}
	if (isa == MLLM__ISA_AVX2) {
		axpy_f16_avx2(y, a, x, n);
		return;
	}
#endif
	(void)isa;
	for (int64_t i = 0; i < n; i++)
		y[i] += a * mllm__f16_to_f32(x[i]);
}

#ifdef MLLM_X86
/* F16C rounds to nearest even as mllm__f32_to_f16 does (subnormals and
 * overflow to inf included); only a NaN's payload may differ. */
T_AVX2 static void f32_to_f16_avx2(const float *restrict x, uint16_t *restrict out, int64_t n)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(out + i),
		                 _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
		                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		out[i] = mllm__f32_to_f16(x[i]);
}
#endif

void mllm__f32_to_f16_row(const float *restrict x, uint16_t *restrict out, int64_t n)
{
#ifdef MLLM_X86
	if (mllm__cpu_isa() != MLLM__ISA_SCALAR) {
		f32_to_f16_avx2(x, out, n);
		return;
	}
#endif
	for (int64_t i = 0; i < n; i++)
		out[i] = mllm__f32_to_f16(x[i]);
}
