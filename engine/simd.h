/*
 * simd.h — what every file with SIMD kernels shares (engine-internal): the
 * x86 intrinsics, the two target sets the kernels are compiled for (cpu.c
 * picks the tier at run time; nothing is built with -march), and the
 * horizontal sums they all end with. Kernels using these are only called
 * after cpu.c found the features.
 */
#ifndef MLLM_SIMD_H
#define MLLM_SIMD_H

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MLLM_X86 1
#endif

#include "model.h" /* mllm_dtype */

#include <stdint.h>

#define T_AVX2   __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

#ifdef MLLM_X86
/* 8 / 16 weights of type t (F32, F16 or BF16) from element c of p, as f32
 * (exact). */
T_AVX2 static inline __m256 mllm__load8(mllm_dtype t, const void *p, int64_t c)
{
	if (t == MLLM_DTYPE_F32)
		return _mm256_loadu_ps((const float *)p + c);
	__m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + c));
	if (t == MLLM_DTYPE_F16)
		return _mm256_cvtph_ps(h);
	return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

T_AVX512 static inline __m512 mllm__load16(mllm_dtype t, const void *p, int64_t c)
{
	if (t == MLLM_DTYPE_F32)
		return _mm512_loadu_ps((const float *)p + c);
	__m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + c));
	if (t == MLLM_DTYPE_F16)
		return _mm512_cvtph_ps(h);
	return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* The sum of the 8 lanes of v. */
T_AVX2 static inline float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}
#endif

#endif /* MLLM_SIMD_H */
