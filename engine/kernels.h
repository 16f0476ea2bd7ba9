/*
 * kernels.h — the numeric kernels of the forward pass (engine-internal),
 * CPU feature detection and the OpenBLAS binding. Owned by kernels.c,
 * attn.c (the attention kernels) and cpu.c.
 *
 * Every kernel has one signature, a plain scalar reference and SIMD paths
 * (AVX2+FMA+F16C, AVX-512 with VNNI) chosen at run time from cpuid; nothing
 * is compiled with -march=native. MLLM_REF_KERNELS=1 in the environment
 * forces the scalar reference everywhere (tests compare against it).
 * Kernels never allocate and are thread-safe (they touch only their
 * operands).
 */
#ifndef MLLM_KERNELS_H
#define MLLM_KERNELS_H

#include <string.h>

#include "weights.h"

/* ---- CPU features and kernel tiers (cpu.c) ----------------------------- */

typedef enum {
	MLLM__ISA_SCALAR = 0, /* portable C, the reference */
	MLLM__ISA_AVX2,       /* AVX2 + FMA + F16C */
	MLLM__ISA_AVX512,     /* AVX-512 F/BW/VL + VNNI */
} mllm__isa;

typedef struct {
	bool avx2, fma, f16c;
	bool avx512f, avx512bw, avx512vl, avx512vnni, avx512bf16;
} mllm__cpu_caps;

const mllm__cpu_caps *mllm__cpu_caps_get(void);
/* The best tier this CPU runs, or SCALAR under MLLM_REF_KERNELS=1. */
mllm__isa mllm__cpu_isa(void);
const char *mllm__isa_name(mllm__isa isa);
/* The default worker count, >= 1: physical cores of the online CPUs (SMT
 * siblings counted once), capped by the affinity mask (cpuset) and by the
 * cgroup CPU quota (cpu.max, or cgroup v1's cfs quota), rounded up. */
int mllm__cpu_physical_cores(void);

/* OpenBLAS, loaded with dlopen() on first use so that OPENBLAS_CORETYPE can
 * be chosen for this CPU before the library initialises (Debian's 0.3.21
 * does not recognise Sapphire Rapids and falls back to Prescott kernels).
 * A user's OPENBLAS_CORETYPE is respected. Thread-safe (pthread_once).
 * Returns true when sgemm is available; OpenBLAS is then set to one thread:
 * parallelism comes from our pool, each worker calling sgemm on its rows. */
bool mllm__blas_init(void);
/* Which OpenBLAS core and which of our kernels are in use (for the log),
 * e.g. "kernels avx512-vnni; OpenBLAS Cooperlake". Static string. */
const char *mllm_cpu_describe(void);
const char *mllm__blas_corename(void); /* "none" without BLAS */
/* C[M, N] = A[M, K] · B[N, K]ᵀ (row-major, leading dimensions given).
 * Requires mllm__blas_init() == true. */
void mllm__sgemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                    int ldc);

/* ---- Scalar conversions ------------------------------------------------ */

static inline float mllm__f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	uint32_t bits;
	float f;
	if (exp == 0) {
		/* zero or subnormal: man * 2^-24 */
		f = (float)man * (1.0f / 16777216.0f);
		memcpy(&bits, &f, 4);
		bits |= sign;
	} else if (exp == 31) {
		bits = sign | 0x7f800000u | (man << 13);
	} else {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	}
	memcpy(&f, &bits, 4);
	return f;
}

/* Round to nearest even, with overflow to inf and subnormals. */
static inline uint16_t mllm__f32_to_f16(float f)
{
	uint32_t x;
	memcpy(&x, &f, 4);
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t ax = x & 0x7fffffff;
	if (ax >= 0x7f800000u) /* inf / nan */
		return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
	if (ax >= 0x477ff000u) /* rounds to >= 65520: inf */
		return (uint16_t)(sign | 0x7c00);
	if (ax < 0x38800000u) { /* below 2^-14: subnormal f16 */
		float a;
		memcpy(&a, &ax, 4);
		/* a * 2^24 rounded to nearest even, in [0, 1024] */
		float s = a * 16777216.0f;
		uint32_t q = (uint32_t)s;
		float rem = s - (float)q;
		if (rem > 0.5f || (rem == 0.5f && (q & 1)))
			q++;
		return (uint16_t)(sign | q);
	}
	uint32_t r = ax + 0xfff + ((ax >> 13) & 1);
	return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

static inline float mllm__bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

/* ---- Quantized blocks (GGUF layouts) ----------------------------------- */

#define MLLM__QK 32

typedef struct {
	uint16_t d;    /* f16 scale */
	int8_t qs[32]; /* w = d * q */
} mllm__block_q8_0;    /* 34 bytes */

typedef struct {
	uint16_t d;     /* f16 scale */
	uint8_t qs[16]; /* low nibble: element j, high: element j + 16;
	                 * w = d * (q - 8) */
} mllm__block_q4_0;     /* 18 bytes */

/* A quantized activation block (our own, not a file format): 16-bit, so
 * that activation rounding (~1.5e-5 relative) stays far below the weights'
 * own 8-bit error and Q8_0 logits match a float reference to ~1e-3; the
 * int8 x int16 products go through VNNI vpdpwssd / AVX2 vpmaddwd. */
typedef struct {
	float d;
	int16_t qs[32];
} mllm__block_qa; /* 68 bytes */

/* Bytes of one tensor row of `cols` elements in dtype (cols % 32 == 0 for
 * the quantized types). */
size_t mllm__row_bytes(mllm_dtype t, int64_t cols);

/* Quantizes n floats (n % 32 == 0) to Q8_0, the GGUF definition. */
void mllm__quantize_q8_0(const float *restrict x, int64_t n, mllm__block_q8_0 *restrict out);
/* Activation rows for the quantized matmuls (16-bit): x [n_tok, cols] ->
 * out [n_tok, cols / 32] blocks. */
void mllm__quantize_qa(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                       mllm__block_qa *restrict out);

/* Rows [r0, r1) of W dequantized to f32: out [r1 - r0, cols]. */
void mllm__dequant_rows(const mllm__tensor *W, int64_t r0, int64_t r1, float *restrict out);

/* The same, vectorized where isa allows (identical results: conversions
 * are exact). */
void mllm__dequant_rows_fast(mllm__isa isa, const mllm__tensor *W, int64_t r0, int64_t r1,
                             float *restrict out);

/* ---- Matrix products --------------------------------------------------- */

/* What a matmul reads besides W: the f32 rows themselves, or activations
 * quantized once per call to 16 bits (mllm__block_qa for GGUF-layout
 * quantized weights; the interleaved form of qpack.c for X16 weights). */
typedef enum {
	MLLM__ACT_F32 = 0,
	MLLM__ACT_QA,
	MLLM__ACT_QX,
	MLLM__ACT_QX8, /* int8, X16 with act8 (Q4_0: AVX2, AVX-512; Q8_0: AVX-512) */
	MLLM__ACT_R16, /* int8 per block, for R16 weights (any tier) */
} mllm__act_kind;

mllm__act_kind mllm__matmul_act(mllm__isa isa, const mllm__tensor *W);
/* Bytes of prepared activations per token of `cols` (0 for F32). */
size_t mllm__act_bytes(mllm__act_kind k, int64_t cols);
/* x [n_tok, cols] -> out, mllm__act_bytes(k, cols) bytes per token (64-byte
 * aligned out for QX is best). No-op for F32. */
void mllm__quantize_act(mllm__act_kind k, mllm__isa isa, const float *restrict x, int64_t n_tok,
                        int64_t cols, void *restrict out);

/* y[t * ldy + r] = x[t, :] · W[r, :] for t < n_tok and r in [r0, r1).
 * x: [n_tok, W->cols] f32; W: [rows, cols] of any dtype and layout.
 * xq: the activations mllm__quantize_act() made for mllm__matmul_act(isa, W)
 * (unused, may be NULL, when that is F32). The scalar path uses x with
 * dequantized weights, exactly like the golden reference.
 * Each weight block is read once per call for all n_tok tokens (register
 * tiles of rows x tokens), and y[t, r] is bit-identical to the same row
 * computed with n_tok = 1: results never depend on the batch.
 * Called on disjoint row ranges from several threads at once. */
void mllm__matmul_rows(mllm__isa isa, const mllm__tensor *W, const float *restrict x,
                       const void *xq, int64_t n_tok, float *restrict y, int64_t ldy, int64_t r0,
                       int64_t r1);

/* ---- The interleaved quantized layout (qpack.c) ------------------------- */

/* Whether rows of `cols` of dtype t can take the X16 layout (Q8_0 / Q4_0,
 * an even number of blocks). */
bool mllm__qx_packable(mllm_dtype t, int64_t cols);
/* One GGUF-layout row -> the X16 layout (same size; src != dst). */
void mllm__qx_pack_row(mllm_dtype t, const void *src, int64_t cols, void *dst);
/* One X16 row dequantized to f32 (exact). */
void mllm__qx_dequant_row(mllm_dtype t, const void *row, int64_t cols, float *restrict out);
/* The same with the vector units (the sgemm panels of prefill). */
void mllm__qx_dequant_row_fast(mllm__isa isa, mllm_dtype t, const void *row, int64_t cols,
                               float *restrict out);
size_t mllm__qx_act_bytes(int64_t cols);
/* 8-bit activations for X16 weights with W->act8 (layout in qpack.c). */
size_t mllm__qx8_act_bytes(int64_t cols);
void mllm__quantize_qx8(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                        uint8_t *restrict out);
void mllm__quantize_qx(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                       uint8_t *restrict out);
/* mllm__matmul_rows for an X16 W: AVX-512 VNNI with xa, else the scalar
 * reference on x. */
void mllm__qx_matmul(mllm__isa isa, const mllm__tensor *W, const float *restrict x,
                     const uint8_t *xa, int64_t n_tok, float *restrict y, int64_t ldy, int64_t r0,
                     int64_t r1);
void mllm__qx_matmul_ref(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                         float *restrict y, int64_t ldy, int64_t r0, int64_t r1);

/* One block of 32 activations to int8 (qpack.c): d = max|x| / 127, q = x / d
 * rounded to nearest even, sum = sum(q); the same bits on every tier. */
void mllm__q8_act_block(mllm__isa isa, const float *x, int8_t *q, float *d, int32_t *sum);

/* ---- Q8_0 interleaved across 16 rows (qr16.c) --------------------------- */

/* Whether a [rows, cols] weight of dtype t can take the R16 layout. */
bool mllm__qr16_packable(mllm_dtype t, int64_t rows, int64_t cols);
/* 16 consecutive GGUF-layout rows (Q8_0 / Q4_0) -> one R16 group (same
 * size). */
void mllm__qr16_pack_group(mllm_dtype t, const void *src, int64_t cols, void *dst);
/* Row r of an R16 weight at data, dequantized to f32 (exact). */
void mllm__qr16_dequant_row(mllm_dtype t, const void *data, int64_t cols, int64_t r,
                            float *restrict out);
size_t mllm__qr16_act_bytes(int64_t cols);
void mllm__quantize_qr16(mllm__isa isa, const float *restrict x, int64_t n_tok, int64_t cols,
                         uint8_t *restrict out);
/* mllm__matmul_rows for an R16 W (r0, r1 multiples of 16) on 8-bit
 * activations xa: AVX-512 VNNI or AVX2, the same bits (a scalar loop with
 * them where neither kernel is built). The SCALAR tier's reference reads
 * the f32 x instead, like mllm__qx_matmul_ref (any row range). */
void mllm__qr16_matmul(mllm__isa isa, const mllm__tensor *W, const uint8_t *xa, int64_t n_tok,
                       float *restrict y, int64_t ldy, int64_t r0, int64_t r1);
void mllm__qr16_matmul_ref(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                           float *restrict y, int64_t ldy, int64_t r0, int64_t r1);

/* ---- F32 / F16 / BF16 laid across 16 rows (fr16.c) ---------------------- */

/* Whether a [rows, cols] weight of dtype t can take the FR16 layout. */
bool mllm__fr16_packable(mllm_dtype t, int64_t rows, int64_t cols);
/* 16 consecutive rows (row-major, same element type) -> one FR16 group,
 * [cols][16] (same size). */
void mllm__fr16_pack_group(mllm_dtype t, const void *src, int64_t cols, void *dst);
/* Row r of an FR16 weight at data, as f32 (exact). */
void mllm__fr16_dequant_row(mllm_dtype t, const void *data, int64_t cols, int64_t r,
                            float *restrict out);
/* mllm__matmul_rows for an FR16 W on f32 activations, any row range: each
 * (row, token) is fma(w[k], x[k], .) over k in order from 0, the same bits
 * on every tier and in every tile. _ref: the scalar loop. */
void mllm__fr16_matmul(mllm__isa isa, const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                       float *restrict y, int64_t ldy, int64_t r0, int64_t r1);
void mllm__fr16_matmul_ref(const mllm__tensor *W, const float *restrict x, int64_t n_tok,
                           float *restrict y, int64_t ldy, int64_t r0, int64_t r1);

/* ---- Vector kernels ---------------------------------------------------- */

/* Σ x[i]^2 in double, in the one order every tier uses (8 strided lanes,
 * then a fixed fold): the same bits on every tier, whatever n. */
double mllm__sumsq(mllm__isa isa, const float *x, int64_t n);

/* out[n] = x[n] / rms(x) * w[n]; out may alias x. */
void mllm__rmsnorm(mllm__isa isa, float *out, const float *x, const float *restrict w, int64_t n,
                   float eps);

/* Rotates n_heads vectors of head_dim in v[n_heads * head_dim] by the
 * angles whose cos/sin are cs[head_dim] (cos of pair i at cs[i], sin at
 * cs[head_dim / 2 + i]). interleaved: pairs (2i, 2i+1); else (i, i + d/2). */
void mllm__rope(float *restrict v, int n_heads, int head_dim, const float *restrict cs,
                bool interleaved);

/* llama4_text QK-norm: each of n_heads vectors of head_dim in v is divided
 * by its RMS, x / sqrt(mean(x^2) + eps), with no weight (transformers'
 * Llama4TextL2Norm). In place. */
void mllm__rmsnorm_heads(mllm__isa isa, float *v, int n_heads, int head_dim, float eps);

/* In place: x = softmax(x). */
void mllm__softmax(mllm__isa isa, float *x, int64_t n);
/* max of x[0..n) (-inf for n == 0; NaN-free input). */
float mllm__max_f32(mllm__isa isa, const float *x, int64_t n);
/* The index of the first maximum of x[0..n), n >= 1, as the scalar loop
 * "best = 0; if (x[i] > x[best]) best = i" gives it (NaNs never win; a NaN
 * at 0 stays the answer). */
int64_t mllm__argmax_f32(mllm__isa isa, const float *x, int64_t n);
/* out[i] = exp((x[i] - m) * s), exactly 0 where x[i] is -inf; returns the
 * sum of out (accumulated in double). Sampling's unnormalised
 * probabilities (x - m <= 0 there, so nothing overflows). */
double mllm__exp_shift(mllm__isa isa, const float *restrict x, float m, float s,
                       float *restrict out, int64_t n);
/* g[n] = silu(g) * u */
void mllm__silu_mul(mllm__isa isa, float *restrict g, const float *restrict u, int64_t n);

float mllm__dot_f32(mllm__isa isa, const float *restrict a, const float *restrict b, int64_t n);
/* a f32, b f16 */
float mllm__dot_f16(mllm__isa isa, const float *restrict a, const uint16_t *restrict b, int64_t n);
/* y += a * x */
void mllm__axpy_f32(mllm__isa isa, float *restrict y, float a, const float *restrict x, int64_t n);
void mllm__axpy_f16(mllm__isa isa, float *restrict y, float a, const uint16_t *restrict x,
                    int64_t n);
/* x f32 -> f16 (round to nearest even) */
void mllm__f32_to_f16_row(const float *restrict x, uint16_t *restrict out, int64_t n);

/* ---- KV storage layout (kv.c), read by the forward pass ----------------- */

/* The pool holds, for each layer run r, K and V of n_blocks blocks of
 * block_size tokens, n_head_kv * head_dim = kv_dim channels per token, f32,
 * f16 or int8, cut into pieces: one piece is one KV head's K or V of one
 * block,
 *   K: [head_dim][block_size]  (dimension-major: attention scores read one
 *                              channel of 8 or 16 consecutive positions)
 *   V: [block_size][head_dim]  (token-major: the weighted sum reads rows)
 * and the pieces lie [runs][2][n_head_kv][n_blocks]: a KV head's K (or V)
 * over consecutive block ids is one contiguous run of memory. Blocks are
 * handed out in id order, so attention over a long sequence streams each
 * head's K and V the way the hardware prefetchers follow best (a 2 KiB
 * piece per 184 KiB block stride read at about half the rate). int8 (q8):
 * a piece's elements are followed, at the next 64-byte boundary, by its
 * f32 scales [block_size]: a value is its int8 times the scale of its
 * token and KV head (round to nearest of v / (max |v| / 127)). A block's
 * bytes (block_bytes) are the sum of its pieces; base holds them all. */
typedef struct {
	uint8_t *base; /* [n_blocks * block_bytes] */
	size_t block_bytes;
	int64_t n_blocks;
	int32_t block_size;
	int32_t runs;
	int32_t kv_dim;
	int32_t head_dim;
	bool f16;
	bool q8; /* int8 with scales (then f16 is false) */
} mllm__kv_layout;

typedef struct mllm_kv mllm_kv; /* forward.h */
const mllm__kv_layout *mllm__kv_layout_get(const mllm_kv *kv);

static inline size_t mllm__kv_esz(const mllm__kv_layout *L)
{
	return L->q8 ? 1 : L->f16 ? 2 : 4;
}

/* Bytes of one piece (elements, and for q8 the scales after them). */
static inline size_t mllm__kv_piece_bytes(const mllm__kv_layout *L)
{
	size_t el = (size_t)L->block_size * (size_t)L->head_dim * mllm__kv_esz(L);
	if (!L->q8)
		return el;
	return ((el + 63) & ~(size_t)63) + (size_t)L->block_size * sizeof(float);
}

/* Bytes of a block's K (or V) for one run: its n_head_kv pieces. */
static inline size_t mllm__kv_half_bytes(const mllm__kv_layout *L)
{
	return (size_t)(L->kv_dim / L->head_dim) * mllm__kv_piece_bytes(L);
}

/* The piece of KV head g, K (which = 0) or V (1), run `run`, block `block`. */
static inline void *mllm__kv_head(const mllm__kv_layout *L, int32_t block, int32_t run, int which,
                                  int g)
{
	size_t heads = (size_t)(L->kv_dim / L->head_dim);
	size_t i = (((size_t)run * 2 + (size_t)which) * heads + (size_t)g) * (size_t)L->n_blocks +
	           (size_t)block;
	return L->base + i * mllm__kv_piece_bytes(L);
}

/* q8: the scales [block_size] of a piece. */
static inline float *mllm__kv_scales(const mllm__kv_layout *L, int32_t block, int32_t run,
                                     int which, int g)
{
	size_t el = (size_t)L->block_size * (size_t)L->head_dim;
	return (float *)((uint8_t *)mllm__kv_head(L, block, run, which, g) +
	                 ((el + 63) & ~(size_t)63));
}

/* The element of token slot `slot`, channel j, of K (0) or V (1). */
static inline void *mllm__kv_elem(const mllm__kv_layout *L, int32_t block, int32_t run, int which,
                                  int32_t slot, int32_t j)
{
	size_t esz = mllm__kv_esz(L), bs = (size_t)L->block_size, hd = (size_t)L->head_dim;
	size_t d = (size_t)j % hd;
	size_t i = which == 0 ? d * bs + (size_t)slot : (size_t)slot * hd + d;
	return (uint8_t *)mllm__kv_head(L, block, run, which, (int)((size_t)j / hd)) + i * esz;
}

/* ---- Attention (attn.c) -------------------------------------------------- */

/* Attention scores over one KV block for the `rep` query heads sharing a KV
 * head: w[r * ld + s] = scale * sum_d q[r * head_dim + d] * K[d * kstride + s]
 * for r < rep, s < ns. K is dimension-major (the cache layout above): one
 * vector load gives one dimension of consecutive positions, so there is no
 * horizontal reduction. f16: K stored as f16. */
void mllm__attn_scores(mllm__isa isa, int rep, int head_dim, const float *restrict q, const void *k,
                       bool f16, int64_t kstride, int ns, float scale, float *restrict w,
                       int64_t ld);
/* out[r * head_dim + :] += sum_s w[r * ld + s] * V[s * vstride + :] for r <
 * rep, s < ns (V row-major, f32 or f16). */
void mllm__attn_accum(mllm__isa isa, int rep, int head_dim, float *restrict out,
                      const float *restrict w, int64_t ld, const void *v, bool f16, int64_t vstride,
                      int ns);

/* Multi-query attention tiles: */

/* Query tokens per tile: 8 x rep rows against each K/V block. */
#define MLLM__ATTN_TQ 8

/* One tile: nq (1..MLLM__ATTN_TQ) consecutive tokens of one sequence at
 * positions p0 .. p0 + nq - 1, and the rep query heads of KV head g. Query
 * p sees cache positions 0..p. Every (token, head) result is bit-identical
 * to that token computed alone with mllm__attn_scores, mllm__softmax and
 * mllm__attn_accum block by block (same FMA chain per score lane and per
 * output channel, in position order), whatever tile it falls in. */
typedef struct {
	const mllm__kv_layout *L;
	const int32_t *table; /* the sequence's block table */
	int32_t run;
	int g, rep, head_dim;
	float scale;
	int32_t p0, nq;
	const float *q;   /* q of token 0, head g * rep; tokens q_stride apart */
	float *out;       /* the same layout as q */
	int64_t q_stride; /* n_head * head_dim */
	int64_t ld;       /* score row capacity (n_ctx), >= p0 + nq */
	float *scratch;   /* mllm__attn_scratch_floats(rep, head_dim, ld) */
} mllm__attn_tile;

/* Floats of scratch one thread needs for mllm__attn_run_tile. */
size_t mllm__attn_scratch_floats(int rep, int head_dim, int64_t ld);
/* int8 K/V (L->q8) only where mllm__attn_q8_native(). */
void mllm__attn_run_tile(mllm__isa isa, const mllm__attn_tile *a);

/* The tier whose kernels (softmax included) attention over L runs: int8
 * K/V takes the AVX2 kernels on AVX-512 CPUs too (they read int8 in
 * place; the AVX-512 tiles do not), so every path over one cache computes
 * the same bits. */
mllm__isa mllm__attn_isa(mllm__isa isa, const mllm__kv_layout *L);
/* Whether int8 K/V tiles read the cache in place (x86 with AVX2, block
 * size a multiple of 8, head_dim of 16): the values each kernel forms are
 * the f32 products mllm__attn_run_tile_q8 stores, so the two agree bit for
 * bit. Otherwise tiles go through mllm__attn_run_tile_q8. */
bool mllm__attn_q8_native(mllm__isa isa, const mllm__kv_layout *L, int head_dim);

/* int8 K/V (L->q8): the tile's KV head, positions 0 .. p0 + nq - 1, each
 * value q * scale in f32 into kvf (kvf_blocks blocks of 2 * block_size *
 * head_dim floats), then mllm__attn_run_tile on that copy through ident
 * (0, 1, 2, ...) with the tier mllm__attn_isa() picks for int8: the result
 * is the f32 path's on the dequantized values. */
void mllm__attn_run_tile_q8(mllm__isa isa, const mllm__attn_tile *a, float *kvf, int32_t kvf_blocks,
                            const int32_t *ident);
/* n values as int8 at q[i * stride], *scale = max |x| / 127 (0 for all
 * zeros): each rounded to nearest, halves away from zero, within +-127. */
void mllm__q8_head(const float *x, int n, int8_t *q, size_t stride, float *scale);

/* A one-token tile (nq = 1) in three steps that several threads can share
 * (split-K, for a few long sequences), with the bits mllm__attn_run_tile
 * gives: the scores of positions [s0, s1) (s0 a multiple of
 * MLLM__ATTN_SPLIT_ALIGN, s1 likewise or p0 + 1) into a->scratch (rows
 * a->ld apart); then mllm__softmax of each row over 0..p0; then output
 * channels [c0, c1) (multiples of MLLM__ATTN_SPLIT_ALIGN_C) from those rows.
 * Only where mllm__attn_split_ok(): the tiers whose tiles keep one chain
 * per score lane and per channel however positions and channels are cut. */
#define MLLM__ATTN_SPLIT_ALIGN   16
#define MLLM__ATTN_SPLIT_ALIGN_C 32
bool mllm__attn_split_ok(mllm__isa isa, const mllm__kv_layout *L, int head_dim);
void mllm__attn_split_scores(mllm__isa isa, const mllm__attn_tile *a, int32_t s0, int32_t s1);
void mllm__attn_split_accum(mllm__isa isa, const mllm__attn_tile *a, int c0, int c1);

/* Layer runs of a model: 2 x n_layer with layer sharing. */
static inline int32_t mllm__model_runs(const mllm_hparams *hp)
{
	return hp->layer_sharing ? 2 * hp->n_layer : hp->n_layer;
}

#endif
