/*
 * roofline.h — the two ceilings a forward pass runs under, measured by the
 * bench itself in the same run as the figures they judge: how fast these
 * threads can read memory (a buffer far larger than the caches, summed),
 * and how many operations per second they can do with the instruction the
 * engine's matmuls use for the weight format (FMA for float weights; the
 * 16-bit multiply-add, vpmaddwd on AVX2 or vpdpwssd on AVX-512, for Q8_0 and
 * Q4_0, whose activations are 16-bit). An operation is a multiply or an add
 * (a multiply-accumulate counts 2), as the model's 2 x params per token.
 * Header-only, for bench/ (static functions).
 */
#ifndef MLLM_BENCH_ROOFLINE_H
#define MLLM_BENCH_ROOFLINE_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "kernels.h"
#include "simd.h"

typedef struct {
	double read_bps; /* bytes/s, all threads */
	double peak_ops; /* operations/s, all threads */
	const char *peak_what;
	double peak8_ops; /* quantized weights: the 8-bit instruction's rate */
	const char *peak8_what;
} roofline;

typedef struct {
	const uint64_t *p;
	size_t n;
	int kind; /* 0 float FMA, 1 int16 multiply-add, 2 8-bit multiply-add */
	mllm__isa isa;
	uint64_t sink;
	double ops;
} rl_job;

static double rl_now(void)
{
	return (double)mllm_now_ns() * 1e-9;
}

static void *rl_read(void *arg)
{
	rl_job *j = arg;
	uint64_t a = 0, b = 0, c = 0, d = 0;
	for (size_t i = 0; i + 4 <= j->n; i += 4) {
		a += j->p[i];
		b += j->p[i + 1];
		c += j->p[i + 2];
		d += j->p[i + 3];
	}
	j->sink = a ^ b ^ c ^ d;
	return NULL;
}

#define RL_ITERS 20000000L

/* Results go here, so that no loop is dead code to the compiler. */
static volatile float rl_sink_f;
static volatile int rl_sink_i;

#ifdef MLLM_X86
/* RL_CHAINS independent dependency chains per thread: enough to cover the
 * instructions' latency at their throughput, and each result feeds the
 * next instruction of its chain, so the compiler can neither hoist nor fold
 * them. The chain loop is unrolled so the chains live in registers (left
 * as a loop, GCC kept them in memory and the "peak" was the store-to-load
 * forwarding latency: a third of the FMA rate). */
#define RL_CHAINS 10

T_AVX2 static double rl_fma_avx2(void)
{
	__m256 x = _mm256_set1_ps(1e-3f), y = _mm256_set1_ps(0.999f), a[RL_CHAINS];
	for (int k = 0; k < RL_CHAINS; k++)
		a[k] = _mm256_set1_ps((float)k);
	for (long i = 0; i < RL_ITERS / RL_CHAINS; i++)
#pragma GCC unroll 16
		for (int k = 0; k < RL_CHAINS; k++)
			a[k] = _mm256_fmadd_ps(a[k], y, x);
	for (int k = 1; k < RL_CHAINS; k++)
		a[0] = _mm256_add_ps(a[0], a[k]);
	rl_sink_f = _mm256_cvtss_f32(a[0]);
	return (double)(RL_ITERS / RL_CHAINS * RL_CHAINS) * 16.0;
}

T_AVX2 static double rl_madd_avx2(void)
{
	__m256i y = _mm256_set1_epi16(3), a[RL_CHAINS];
	for (int k = 0; k < RL_CHAINS; k++)
		a[k] = _mm256_set1_epi16((short)(k + 1));
	for (long i = 0; i < RL_ITERS / RL_CHAINS; i++)
#pragma GCC unroll 16
		for (int k = 0; k < RL_CHAINS; k++)
			a[k] = _mm256_madd_epi16(a[k], y);
	for (int k = 1; k < RL_CHAINS; k++)
		a[0] = _mm256_add_epi32(a[0], a[k]);
	rl_sink_i = _mm256_extract_epi32(a[0], 0);
	return (double)(RL_ITERS / RL_CHAINS * RL_CHAINS) * 32.0;
}

T_AVX512 static double rl_fma_avx512(void)
{
	__m512 x = _mm512_set1_ps(1e-3f), y = _mm512_set1_ps(0.999f), a[RL_CHAINS];
	for (int k = 0; k < RL_CHAINS; k++)
		a[k] = _mm512_set1_ps((float)k);
	for (long i = 0; i < RL_ITERS / RL_CHAINS; i++)
#pragma GCC unroll 16
		for (int k = 0; k < RL_CHAINS; k++)
			a[k] = _mm512_fmadd_ps(a[k], y, x);
	for (int k = 1; k < RL_CHAINS; k++)
		a[0] = _mm512_add_ps(a[0], a[k]);
	rl_sink_f = _mm512_reduce_add_ps(a[0]);
	return (double)(RL_ITERS / RL_CHAINS * RL_CHAINS) * 32.0;
}

T_AVX512 static double rl_dpwssd_avx512(void)
{
	__m512i y = _mm512_set1_epi16(3), a[RL_CHAINS];
	for (int k = 0; k < RL_CHAINS; k++)
		a[k] = _mm512_set1_epi16((short)(k + 1));
	for (long i = 0; i < RL_ITERS / RL_CHAINS; i++)
#pragma GCC unroll 16
		for (int k = 0; k < RL_CHAINS; k++)
			a[k] = _mm512_dpwssd_epi32(a[k], a[k], y);
	for (int k = 1; k < RL_CHAINS; k++)
		a[0] = _mm512_add_epi32(a[0], a[k]);
	rl_sink_i = _mm512_reduce_add_epi32(a[0]);
	return (double)(RL_ITERS / RL_CHAINS * RL_CHAINS) * 64.0;
}

/* The 8-bit multiply-adds llama.cpp's quantized kernels use (u8 x s8):
 * vpmaddubsw (32 MACs a ymm) and vpdpbusd (64 MACs a zmm). */
T_AVX2 static double rl_maddubs_avx2(void)
{
	__m256i y = _mm256_set1_epi8(3), a[RL_CHAINS];
	for (int k = 0; k < RL_CHAINS; k++)
		a[k] = _mm256_set1_epi8((char)(k + 1));
	for (long i = 0; i < RL_ITERS / RL_CHAINS; i++)
#pragma GCC unroll 16
		for (int k = 0; k < RL_CHAINS; k++)
			a[k] = _mm256_maddubs_epi16(a[k], y);
	for (int k = 1; k < RL_CHAINS; k++)
		a[0] = _mm256_add_epi16(a[0], a[k]);
	rl_sink_i = _mm256_extract_epi32(a[0], 0);
	return (double)(RL_ITERS / RL_CHAINS * RL_CHAINS) * 64.0;
}

T_AVX512 static double rl_dpbusd_avx512(void)
{
	__m512i y = _mm512_set1_epi8(3), a[RL_CHAINS];
	for (int k = 0; k < RL_CHAINS; k++)
		a[k] = _mm512_set1_epi8((char)(k + 1));
	for (long i = 0; i < RL_ITERS / RL_CHAINS; i++)
#pragma GCC unroll 16
		for (int k = 0; k < RL_CHAINS; k++)
			a[k] = _mm512_dpbusd_epi32(a[k], a[k], y);
	for (int k = 1; k < RL_CHAINS; k++)
		a[0] = _mm512_add_epi32(a[0], a[k]);
	rl_sink_i = _mm512_reduce_add_epi32(a[0]);
	return (double)(RL_ITERS / RL_CHAINS * RL_CHAINS) * 128.0;
}
#endif

static void *rl_peak(void *arg)
{
	rl_job *j = arg;
	j->ops = 0;
#ifdef MLLM_X86
	if (j->isa == MLLM__ISA_AVX512)
		j->ops = j->kind == 2 ? rl_dpbusd_avx512()
		         : j->kind    ? rl_dpwssd_avx512()
		                      : rl_fma_avx512();
	else if (j->isa == MLLM__ISA_AVX2)
		j->ops = j->kind == 2 ? rl_maddubs_avx2()
		         : j->kind    ? rl_madd_avx2()
		                      : rl_fma_avx2();
#endif
	return NULL;
}

/* Runs fn on nt threads at once; the wall time of the slowest. */
static double rl_run(void *(*fn)(void *), rl_job *jobs, int nt)
{
	pthread_t th[64];
	double t = rl_now();
	for (int i = 1; i < nt; i++)
		pthread_create(&th[i], NULL, fn, &jobs[i]);
	fn(&jobs[0]);
	for (int i = 1; i < nt; i++)
		pthread_join(th[i], NULL);
	return rl_now() - t;
}

/* quant: the weights are Q8_0/Q4_0 (16-bit multiply-adds), else float.
 * Best of 3 for each ceiling. peak_ops is 0 on a CPU without AVX2. */
static void roofline_measure(int nt, bool quant, roofline *r)
{
	size_t bytes = (size_t)1 << 30, per;
	uint64_t *buf = malloc(bytes);
	rl_job jobs[64];
	mllm__isa isa = mllm__cpu_isa();
	if (nt > 64)
		nt = 64;
	memset(r, 0, sizeof *r);
	r->peak_what = isa == MLLM__ISA_AVX512 ? (quant ? "vpdpwssd" : "avx512 fma")
	               : isa == MLLM__ISA_AVX2 ? (quant ? "vpmaddwd" : "avx2 fma")
	                                       : "none (scalar kernels)";
	if (buf) {
		memset(buf, 1, bytes);
		per = bytes / sizeof *buf / (size_t)nt;
		for (int rep = 0; rep < 3; rep++) {
			double t;
			for (int i = 0; i < nt; i++)
				jobs[i] = (rl_job){.p = buf + (size_t)i * per, .n = per};
			t = rl_run(rl_read, jobs, nt);
			if ((double)bytes / t > r->read_bps)
				r->read_bps = (double)bytes / t;
		}
		free(buf);
	}
	for (int rep = 0; rep < 3; rep++) {
		double t, ops = 0;
		for (int i = 0; i < nt; i++)
			jobs[i] = (rl_job){.kind = quant, .isa = isa};
		t = rl_run(rl_peak, jobs, nt);
		for (int i = 0; i < nt; i++)
			ops += jobs[i].ops;
		if (ops / t > r->peak_ops)
			r->peak_ops = ops / t;
	}
	if (!quant || isa == MLLM__ISA_SCALAR)
		return;
	r->peak8_what = isa == MLLM__ISA_AVX512 ? "vpdpbusd" : "vpmaddubsw";
	for (int rep = 0; rep < 3; rep++) {
		double t, ops = 0;
		for (int i = 0; i < nt; i++)
			jobs[i] = (rl_job){.kind = 2, .isa = isa};
		t = rl_run(rl_peak, jobs, nt);
		for (int i = 0; i < nt; i++)
			ops += jobs[i].ops;
		if (ops / t > r->peak8_ops)
			r->peak8_ops = ops / t;
	}
}

/* The matmuls themselves use the 8-bit instruction (act8: Q4_0 and Q8_0 on
 * AVX2 and AVX-512 VNNI): it becomes the compute ceiling. */
static void roofline_use_8bit(roofline *r)
{
	if (r->peak8_ops <= 0)
		return;
	r->peak_ops = r->peak8_ops;
	r->peak_what = r->peak8_what;
	r->peak8_ops = 0;
}

static void roofline_print_ceilings(const roofline *r, int nt)
{
	printf("threads %d: ceilings measured now: read %.1f GB/s, peak %.0f GOP/s (%s, what the "
	       "matmuls use)",
	       nt, r->read_bps * 1e-9, r->peak_ops * 1e-9, r->peak_what);
	if (r->peak8_ops > 0)
		printf("; 8-bit activations would have %.0f GOP/s (%s)", r->peak8_ops * 1e-9,
		       r->peak8_what);
	printf("\n");
}

/* One configuration: `bytes` read from memory and `ops` done in `secs`;
 * the fraction of each ceiling, and of the roofline (the time the binding
 * ceiling allows over the time taken). */
static void roofline_print(const roofline *r, const char *what, double bytes, double ops,
                           double secs)
{
	double tm = r->read_bps > 0 ? bytes / r->read_bps : 0,
	       tc = r->peak_ops > 0 ? ops / r->peak_ops : 0;
	double bound = tm > tc ? tm : tc;
	printf("  roofline %s: memory %.0f%% (%.1f GB/s), compute %.0f%% (%.0f GOP/s); "
	       "%.0f%% of the %s-bound roofline",
	       what, 100 * tm / secs, bytes / secs * 1e-9, 100 * tc / secs, ops / secs * 1e-9,
	       100 * bound / secs, tm > tc ? "memory" : "compute");
	if (r->peak8_ops > 0) {
		double t8 = ops / r->peak8_ops, b8 = tm > t8 ? tm : t8;
		printf(" (%.0f%% of the one 8-bit activations would set)", 100 * b8 / secs);
	}
	printf("\n");
}

#endif
