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

#define T_AVX2   __attribute__((target("avx2,fma,f16c")))
#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))

#ifdef MLLM_X86
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
