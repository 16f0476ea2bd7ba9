/*
 * forward.c — the batched forward pass over the paged KV cache (load-time
 * weight preparation is prepare.c's).
 *
 * One mllm_forward() call runs any mix of prefill chunks and decode tokens
 * from many sequences: every row is computed independently (the kernels never
 * mix rows), K/V go to each token's own sequence blocks first, and attention
 * then reads positions 0..pos of that sequence through its block table. All
 * scratch lives in mllm_ctx, sized once for n_batch_max tokens, so a pass
 * allocates nothing. Every product runs on the engine's own kernels,
 * whose result for a row does not depend on the batch; OpenBLAS sgemm on
 * row slices (one per pool worker, non-f32 weights dequantized a panel of
 * rows at a time into per-worker scratch) only where MLLM_BLAS_MIN_ROWS
 * asks for it.
 */
#include "forward.h"
#include "kernels.h"
#include "pool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* OpenBLAS sgemm runs only on request: MLLM_BLAS_MIN_ROWS=n sends every
 * product of at least n rows to it. sgemm's blocking makes a row's
 * result depend on how many rows share the call, so with it a sequence's
 * tokens would depend on what else is batched (16 concurrent seeded
 * requests sampled differently from the same requests alone); the own
 * kernels sum each (row, token) the same way at every batch size. They
 * also outrun Debian's OpenBLAS where it mattered: F16 512-token prefill
 * (125M shape, 2 threads, Ice Lake) 766-827 tokens/s against 760-790
 * through sgemm on dequantized panels; Q8_0 / Q4_0 integer tiles were
 * ahead at every size. F32 is the exception (610-640 against 786-799),
 * and AVX2-only CPUs' quantized tiles (~18% behind sgemm on a 512-token
 * prefill, AMD EPYC Zen 3): there the variable trades batch invariance
 * for prefill speed. */
/* Rows of a non-f32 weight dequantized per sgemm call. */
#define PANEL_ROWS 128

struct mllm_ctx {
	const mllm_model *m;
	mllm_kv *kv;
	const mllm__kv_layout *L;
	int32_t n_batch_max;
	int n_threads;
	mllm__pool *pool;
	mllm__isa isa;
	bool use_blas;
	int64_t blas_min_rows; /* MLLM_BLAS_MIN_ROWS (use_blas: it was set) */
	bool (*abort_fn)(void *ud);
	void *abort_ud;

	int64_t q_dim, kv_dim, max_cols;
	float attn_scale;
	float *inv_freq; /* [head_dim / 2] */

	/* Scratch, [n_batch_max, ...] unless noted. */
	float *x;           /* [n, n_embd] residual stream */
	float *xn;          /* [n, n_embd] normed input of a block */
	float *tmp;         /* [n, n_embd] block output before the residual */
	float *q;           /* [n, q_dim] */
	float *k, *v;       /* [n, kv_dim] */
	float *att;         /* [n, q_dim] attention output */
	float *gate, *up;   /* [n, n_ff] */
	float *rope_cs;     /* [n, head_dim] cos | sin per token */
	void *xq;           /* [n, largest mllm__act_bytes] activations, 64-aligned */
	void *xq_mem;       /* its allocation */
	float *scores;      /* [n_threads, mllm__attn_scratch_floats()] */
	int64_t split_runs; /* layer runs whose attention was split-K */
	float *panel;       /* [n_threads, PANEL_ROWS * max_cols] */
	int32_t *out_rows;  /* [n] rows that want logits */
	/* int8 K/V: one KV head of a sequence dequantized per attention unit
	 * into an f32 copy with its own block table (mllm__attn_run_tile_q8). */
	float *kvq;         /* [n_threads, kvq_blocks * 2 * block_size * head_dim] */
	int32_t *kvq_ident; /* [kvq_blocks] 0, 1, 2, ... */
	int32_t kvq_blocks; /* blocks of n_ctx_train positions */

	/* The batch being run (valid during mllm_forward only). */
	const mllm_batch *b;
	int32_t run;
};

/* ---- Context ------------------------------------------------------------ */

static float *alloc_f32(size_t n, bool *ok)
{
	float *p = mllm_try_malloc(n * sizeof(float) + 64);
	if (!p)
		*ok = false;
	return p;
}

void mllm_ctx_free(mllm_ctx *c)
{
	if (!c)
		return;
	mllm__pool_free(c->pool);
	free(c->inv_freq);
	free(c->x);
	free(c->xn);
	free(c->tmp);
	free(c->q);
	free(c->k);
	free(c->v);
	free(c->att);
	free(c->gate);
	free(c->up);
	free(c->rope_cs);
	free(c->xq_mem);
	free(c->scores);
	free(c->panel);
	free(c->out_rows);
	free(c->kvq);
	free(c->kvq_ident);
	free(c);
}

int mllm_ctx_create(const mllm_model *m, mllm_kv *kv, int32_t n_batch_max, int n_threads,
                    mllm_ctx **out)
{
	*out = NULL;
	if (!m || !kv || n_batch_max <= 0 || n_batch_max > (1 << 20))
		return MLLM_EINVAL;
	const mllm_hparams *hp = &m->hp;
	const mllm__kv_layout *L = mllm__kv_layout_get(kv);
	if (L->runs != mllm__model_runs(hp) || L->kv_dim != hp->n_head_kv * hp->head_dim) {
		MLLM_LOG(MLLM_LOG_ERROR, "ctx: KV cache was made for another model shape");
		return MLLM_EINVAL;
	}
	if (n_threads <= 0)
		n_threads = m->n_threads;
	if (n_threads <= 0)
		n_threads = mllm__cpu_physical_cores();
	if (n_threads > 256)
		n_threads = 256;

	mllm_ctx *c = xcalloc(1, sizeof *c);
	c->m = m;
	c->kv = kv;
	c->L = L;
	c->n_batch_max = n_batch_max;
	c->n_threads = n_threads;
	c->isa = mllm__cpu_isa();
	const char *bm = getenv("MLLM_BLAS_MIN_ROWS");
	int64_t blas_min = bm ? atoll(bm) : 0;
	c->use_blas = blas_min > 0 && c->isa != MLLM__ISA_SCALAR && mllm__blas_init();
	c->blas_min_rows = blas_min;
	c->q_dim = (int64_t)hp->n_head * hp->head_dim;
	c->kv_dim = (int64_t)hp->n_head_kv * hp->head_dim;
	c->max_cols = hp->n_embd;
	if (c->q_dim > c->max_cols)
		c->max_cols = c->q_dim;
	if (hp->n_ff > c->max_cols)
		c->max_cols = hp->n_ff;
	c->attn_scale = (float)(1.0 / sqrt((double)hp->head_dim));

	size_t n = (size_t)n_batch_max, E = (size_t)hp->n_embd;
	bool ok = true;
	c->inv_freq = alloc_f32((size_t)hp->head_dim / 2, &ok);
	c->x = alloc_f32(n * E, &ok);
	c->xn = alloc_f32(n * E, &ok);
	c->tmp = alloc_f32(n * E, &ok);
	c->q = alloc_f32(n * (size_t)c->q_dim, &ok);
	c->att = alloc_f32(n * (size_t)c->q_dim, &ok);
	c->k = alloc_f32(n * (size_t)c->kv_dim, &ok);
	c->v = alloc_f32(n * (size_t)c->kv_dim, &ok);
	c->gate = alloc_f32(n * (size_t)hp->n_ff, &ok);
	c->up = alloc_f32(n * (size_t)hp->n_ff, &ok);
	c->rope_cs = alloc_f32(n * (size_t)hp->head_dim, &ok);
	c->scores =
	    alloc_f32((size_t)n_threads * mllm__attn_scratch_floats(hp->n_head / hp->n_head_kv,
	                                                            hp->head_dim, hp->n_ctx_train),
	              &ok);
	if (c->use_blas)
		c->panel = alloc_f32((size_t)n_threads * PANEL_ROWS * (size_t)c->max_cols, &ok);
	size_t act_max = 0;
	int64_t act_cols[] = {hp->n_embd, c->q_dim, hp->n_ff};
	for (size_t i = 0; i < 3; i++)
		for (mllm__act_kind k = MLLM__ACT_QA; k <= MLLM__ACT_R16; k++)
			if (mllm__act_bytes(k, act_cols[i]) > act_max)
				act_max = mllm__act_bytes(k, act_cols[i]);
	c->xq_mem = mllm_try_malloc(n * act_max + 64);
	c->xq = c->xq_mem ? (void *)(((uintptr_t)c->xq_mem + 63) & ~(uintptr_t)63) : NULL;
	c->out_rows = mllm_try_malloc(n * sizeof(int32_t));
	/* int8 K/V on tiers whose tiles cannot read it in place: a per-thread
	 * f32 copy of a KV head's whole context. */
	if (L->q8 && !mllm__attn_q8_native(c->isa, L, hp->head_dim)) {
		c->kvq_blocks = (hp->n_ctx_train + L->block_size - 1) / L->block_size;
		c->kvq = alloc_f32((size_t)n_threads * (size_t)c->kvq_blocks * 2 *
		                       (size_t)L->block_size * (size_t)hp->head_dim,
		                   &ok);
		c->kvq_ident = mllm_try_malloc((size_t)c->kvq_blocks * sizeof(int32_t));
		if (c->kvq_ident)
			for (int32_t i = 0; i < c->kvq_blocks; i++)
				c->kvq_ident[i] = i;
		else
			ok = false;
	}
	if (!ok || !c->xq || !c->out_rows) {
		mllm_ctx_free(c);
		return MLLM_ENOMEM;
	}
	for (int i = 0; i < hp->head_dim / 2; i++)
		c->inv_freq[i] =
		    (float)pow((double)hp->rope_theta, -2.0 * (double)i / (double)hp->head_dim);
	int rc = mllm__pool_create(n_threads, &c->pool);
	if (rc) {
		mllm_ctx_free(c);
		return rc;
	}
	MLLM_LOG(MLLM_LOG_DEBUG, "ctx: %d tokens/batch, %d threads, kernels %s, blas %s",
	         n_batch_max, n_threads, mllm__isa_name(c->isa),
	         c->use_blas ? mllm__blas_corename() : "off");
	*out = c;
	return 0;
}

void mllm_ctx_set_abort(mllm_ctx *c, bool (*fn)(void *ud), void *ud)
{
	c->abort_fn = fn;
	c->abort_ud = ud;
}

/* ---- Matrix products ---------------------------------------------------- */

/* One parallel_for over the rows of up to three weights that read the same
 * input (Q/K/V, gate/up): one dispatch instead of three, and the workers'
 * ranges run across the weights' boundaries. */
#define MM_MAX 3

typedef struct {
	mllm_ctx *c;
	const float *x; /* [n, cols] */
	int64_t n;
	int n_w;
	const mllm__tensor *W[MM_MAX];
	float *y[MM_MAX];
	int64_t ldy[MM_MAX];
	int64_t start[MM_MAX + 1]; /* first global row of each weight */
	bool xq_ready;             /* x already in c->xq, as mm_pre_act() says */
} mm_job;

static void mm_blas_rows(mm_job *j, const mllm__tensor *W, float *y, int64_t ldy, int64_t r0,
                         int64_t r1, int tid)
{
	int K = (int)W->cols;
	if (W->dtype == MLLM_DTYPE_F32 && W->layout == MLLM__LAYOUT_GGUF) {
		const float *w = (const float *)W->data + r0 * W->cols;
		mllm__sgemm_nt((int)j->n, (int)(r1 - r0), K, j->x, K, w, K, y + r0, (int)ldy);
		return;
	}
	float *panel = j->c->panel + (size_t)tid * PANEL_ROWS * (size_t)j->c->max_cols;
	for (int64_t p = r0; p < r1; p += PANEL_ROWS) {
		int64_t pe = p + PANEL_ROWS < r1 ? p + PANEL_ROWS : r1;
		mllm__dequant_rows_fast(j->c->isa, W, p, pe, panel);
		mllm__sgemm_nt((int)j->n, (int)(pe - p), K, j->x, K, panel, K, y + p, (int)ldy);
	}
}

static void mm_fn(mm_job *j, int64_t g0, int64_t g1, int tid, bool blas)
{
	for (int i = 0; i < j->n_w; i++) {
		int64_t a = g0 > j->start[i] ? g0 : j->start[i];
		int64_t b = g1 < j->start[i + 1] ? g1 : j->start[i + 1];
		if (a >= b)
			continue;
		a -= j->start[i];
		b -= j->start[i];
		if (blas)
			mm_blas_rows(j, j->W[i], j->y[i], j->ldy[i], a, b, tid);
		else
			mllm__matmul_rows(j->c->isa, j->W[i], j->x, j->c->xq, j->n, j->y[i],
			                  j->ldy[i], a, b);
	}
}

static void mm_gemv_fn(void *arg, int64_t g0, int64_t g1, int tid)
{
	mm_fn(arg, g0, g1, tid, false);
}

static void mm_blas_fn(void *arg, int64_t g0, int64_t g1, int tid)
{
	mm_fn(arg, g0, g1, tid, true);
}

static void mm_add(mm_job *j, const mllm__tensor *W, float *y, int64_t ldy)
{
	MLLM_ASSERT(j->n_w < MM_MAX);
	j->W[j->n_w] = W;
	j->y[j->n_w] = y;
	j->ldy[j->n_w] = ldy;
	j->start[j->n_w + 1] = j->start[j->n_w] + W->rows;
	j->n_w++;
}

/* Whether the product of W over n tokens goes to BLAS (on floats): only
 * on request (MLLM_BLAS_MIN_ROWS, above). */
static bool mm_blas(const mllm_ctx *c, int64_t n)
{
	return c->use_blas && n >= c->blas_min_rows;
}

/* What a job's producer may quantize for it: its weights' common kind, or
 * MLLM__ACT_F32 where mm_run would not read c->xq as one (BLAS, floats, or
 * weights of different kinds). */
static mllm__act_kind mm_pre_act(const mllm_ctx *c, const mm_job *j)
{
	mllm__act_kind act = mllm__matmul_act(c->isa, j->W[0]);
	for (int i = 1; i < j->n_w; i++)
		if (mllm__matmul_act(c->isa, j->W[i]) != act)
			return MLLM__ACT_F32;
	return mm_blas(c, j->n) ? MLLM__ACT_F32 : act;
}

static void mm_run(mllm_ctx *c, mm_job *j)
{
	int64_t rows = j->start[j->n_w], cols = j->W[0]->cols;
	mllm__act_kind act = mllm__matmul_act(c->isa, j->W[0]);
	for (int i = 1; i < j->n_w; i++) {
		if (mllm__matmul_act(c->isa, j->W[i]) == act)
			continue;
		/* Weights of different kinds (a mixed-type file) read different
		 * activations: one job each. */
		for (int k = 0; k < j->n_w; k++) {
			mm_job one = {.c = c, .x = j->x, .n = j->n};
			mm_add(&one, j->W[k], j->y[k], j->ldy[k]);
			mm_run(c, &one);
		}
		return;
	}
	if (mm_blas(c, j->n)) {
		mllm__parallel_for(c->pool, rows, 64, 16, mm_blas_fn, j);
		return;
	}
	if (!j->xq_ready)
		mllm__quantize_act(act, c->isa, j->x, j->n, cols, c->xq);
	/* Give each worker at least ~16k multiply-adds. */
	int64_t work = j->n * cols;
	int64_t grain = work > 0 ? 16384 / work : 1;
	if (grain < 4)
		grain = 4;
	/* R16 weights are cut on whole sets of three 16-row groups, FR16
	 * ones on sets of four, the kernels' widest tiles (the weights' row
	 * counts, and so their starts here, are multiples of 16: a weight
	 * boundary inside a chunk leaves a smaller set, as the end of a
	 * weight does). */
	int64_t align = act == MLLM__ACT_R16 ? 48 : j->W[0]->layout == MLLM__LAYOUT_FR16 ? 64 : 4;
	mllm__parallel_for(c->pool, rows, grain > align ? grain : align, align, mm_gemv_fn, j);
}

/* y[t * ldy + r] = x[t] · W[r] for t < n, every row r of W; x: [n, W->cols]. */
static void matmul(mllm_ctx *c, const mllm__tensor *W, const float *x, int64_t n, float *y,
                   int64_t ldy)
{
	mm_job j = {.c = c, .x = x, .n = n};
	mm_add(&j, W, y, ldy);
	mm_run(c, &j);
}

/* ---- Elementwise steps, parallel over tokens ----------------------------- */

/* Each step below may also quantize its output rows for the product that
 * reads them (act, as mm_pre_act says; MLLM__ACT_F32: not), so the tokens'
 * quantization runs in parallel with the step instead of serially before
 * the product. Per token, as mm_run would: the same bytes. */
typedef struct {
	mllm_ctx *c;
	const float *w;
	mllm__act_kind act;
	const float *add; /* NULL, or the residual branch to add to x first */
} norm_job;

static void quantize_rows(mllm_ctx *c, mllm__act_kind act, const float *x, int64_t cols, int64_t t0,
                          int64_t t1)
{
	if (act == MLLM__ACT_F32)
		return;
	size_t stride = mllm__act_bytes(act, cols);
	mllm__quantize_act(act, c->isa, x + t0 * cols, t1 - t0, cols,
	                   (uint8_t *)c->xq + (size_t)t0 * stride);
}

static void rmsnorm_fn(void *arg, int64_t t0, int64_t t1, int tid)
{
	norm_job *j = arg;
	mllm_ctx *c = j->c;
	int64_t E = c->m->hp.n_embd;
	(void)tid;
	if (j->add)
		mllm__axpy_f32(c->isa, c->x + t0 * E, 1.0f, j->add + t0 * E, (t1 - t0) * E);
	for (int64_t t = t0; t < t1; t++)
		mllm__rmsnorm(c->isa, c->xn + t * E, c->x + t * E, j->w, E, c->m->hp.norm_eps);
	quantize_rows(c, j->act, c->xn, E, t0, t1);
}

typedef struct {
	mllm_ctx *c;
	mllm__act_kind act;
} swiglu_job;

static void swiglu_fn(void *arg, int64_t t0, int64_t t1, int tid)
{
	swiglu_job *j = arg;
	mllm_ctx *c = j->c;
	int64_t F = c->m->hp.n_ff;
	(void)tid;
	mllm__silu_mul(c->isa, c->gate + t0 * F, c->up + t0 * F, (t1 - t0) * F);
	quantize_rows(c, j->act, c->gate, F, t0, t1);
}

/* x += tmp. Inside the layers the add runs in the next norm's job
 * (norm_job.add), on the pool and on rows the norm is about to read. */
static void residual_add(mllm_ctx *c, int64_t n)
{
	/* y += 1 * x: fma(1, x, y) rounds x + y once, as the plain add; row
	 * by row or all at once, the same bits. */
	mllm__axpy_f32(c->isa, c->x, 1.0f, c->tmp, n * c->m->hp.n_embd);
}

/* ---- Attention ---------------------------------------------------------- */

/* llama4_text attention temperature tuning on NoPE layers (transformers'
 * Llama4TextAttention): q of the token at pos is multiplied by
 * 1 + scale * log(1 + floor((pos + 1) / floor_scale)), so long-range
 * attention sharpens with position. Exactly 1 below floor_scale - 1. */
static float attn_temperature(int32_t pos, float scale, float floor_scale)
{
	double f = floor(((double)pos + 1.0) / (double)floor_scale);
	return (float)(1.0 + (double)scale * log1p(f));
}

/* Step 4 for token t: position encoding of q and k as the layer asks —
 * RoPE (then, with QK-norm, the weightless per-head norm), or for a
 * llama4 NoPE layer nothing but the optional temperature on q. */
static void qk_position(mllm_ctx *c, const mllm__layer *ly, int64_t t)
{
	const mllm_hparams *hp = &c->m->hp;
	int hd = hp->head_dim;
	float *q = c->q + t * c->q_dim, *k = c->k + t * c->kv_dim;
	if (ly->nope) {
		if (hp->attn_temp_tuning) {
			float s = attn_temperature(c->b->pos[t], hp->attn_temp_scale,
			                           hp->attn_temp_floor);
			for (int64_t i = 0; i < c->q_dim; i++)
				q[i] *= s;
		}
		return;
	}
	mllm__rope(q, hp->n_head, hd, c->rope_cs + t * hd, hp->rope_interleaved);
	mllm__rope(k, hp->n_head_kv, hd, c->rope_cs + t * hd, hp->rope_interleaved);
	if (hp->qk_norm) {
		mllm__rmsnorm_heads(c->isa, q, hp->n_head, hd, hp->norm_eps);
		mllm__rmsnorm_heads(c->isa, k, hp->n_head_kv, hd, hp->norm_eps);
	}
}

/* Writes token t's rotated k and its v into its sequence's cache slot for
 * the current run, per KV head: K scattered into its channel rows, V as
 * one row. */
static void kv_store(mllm_ctx *c, int64_t t)
{
	const mllm_batch *b = c->b;
	const mllm__kv_layout *L = c->L;
	int32_t pos = b->pos[t];
	int32_t blk = b->block_table[b->seq[t]][pos / L->block_size];
	int32_t slot = pos % L->block_size;
	size_t bs = (size_t)L->block_size, hd = (size_t)L->head_dim, esz = mllm__kv_esz(L);
	for (int g = 0; g < (int)((size_t)c->kv_dim / hd); g++) {
		const float *k = c->k + t * c->kv_dim + (size_t)g * hd,
		            *v = c->v + t * c->kv_dim + (size_t)g * hd;
		uint8_t *kd = (uint8_t *)mllm__kv_head(L, blk, c->run, 0, g) + (size_t)slot * esz;
		uint8_t *vd =
		    (uint8_t *)mllm__kv_head(L, blk, c->run, 1, g) + (size_t)slot * hd * esz;
		if (L->q8) {
			mllm__q8_head(k, (int)hd, (int8_t *)kd, bs,
			              mllm__kv_scales(L, blk, c->run, 0, g) + slot);
			mllm__q8_head(v, (int)hd, (int8_t *)vd, 1,
			              mllm__kv_scales(L, blk, c->run, 1, g) + slot);
		} else if (L->f16) {
			uint16_t kh[256];
			if (hd <= 256) {
				mllm__f32_to_f16_row(k, kh, (int64_t)hd);
				for (size_t d = 0; d < hd; d++)
					((uint16_t *)kd)[d * bs] = kh[d];
			} else {
				for (size_t d = 0; d < hd; d++)
					((uint16_t *)kd)[d * bs] = mllm__f32_to_f16(k[d]);
			}
			mllm__f32_to_f16_row(v, (uint16_t *)vd, (int64_t)hd);
		} else {
			for (size_t d = 0; d < hd; d++)
				((float *)kd)[d * bs] = k[d];
			memcpy(vd, v, hd * sizeof(float));
		}
	}
}

typedef struct {
	mllm_ctx *c;
	const mllm__layer *ly;
} qkpos_job;

/* Step 4 over tokens [t0, t1): tokens write their own K/V slots, so any
 * split of them gives the same cache. */
static void qkpos_fn(void *arg, int64_t t0, int64_t t1, int tid)
{
	const qkpos_job *j = arg;
	(void)tid;
	for (int64_t t = t0; t < t1; t++) {
		qk_position(j->c, j->ly, t);
		kv_store(j->c, t);
	}
}

/* Attention work is cut into units (tile, KV head). A tile is a run of up to
 * MLLM__ATTN_TQ batch rows of one sequence at consecutive positions (a
 * prefill chunk; a decode token is a tile of one): its rows x the `rep`
 * query heads of the KV head read each cached K/V value once
 * (mllm__attn_run_tile). Returns the length of the tile starting at row t. */
static int32_t attn_tile_len(const mllm_batch *b, int32_t t)
{
	int32_t k = 1;
	while (k < MLLM__ATTN_TQ && t + k < b->n_tokens && b->seq[t + k] == b->seq[t] &&
	       b->pos[t + k] == b->pos[t] + k)
		k++;
	return k;
}

/* A unit costs ~ rows x positions read (the last row's pos + 1). */
static int64_t attn_tile_cost(const mllm_batch *b, int32_t t, int32_t nq)
{
	return (int64_t)nq * ((int64_t)b->pos[t] + nq);
}

/* Causal work grows with position, so the pool's equal item counts would
 * give the thread holding the late tokens most of the work. Instead the
 * parallel_for items are nb buckets of equal cost: bucket k takes the units,
 * in (KV head, tile) order, whose cost starts in [k, k + 1) * total / nb.
 * The split depends only on the batch, and no result depends on it. */
typedef struct {
	mllm_ctx *c;
	int64_t total; /* summed cost of all units */
	int64_t nb;    /* buckets */
} attn_job;

/* int8 K/V: the tile through the thread's f32 copy (mllm__attn_run_tile_q8). */
static void attn_tile_q8(mllm_ctx *c, const mllm__attn_tile *a, int tid)
{
	size_t per = (size_t)c->kvq_blocks * 2 * (size_t)c->L->block_size * (size_t)a->head_dim;
	mllm__attn_run_tile_q8(c->isa, a, c->kvq + (size_t)tid * per, c->kvq_blocks, c->kvq_ident);
}

static void attn_fn(void *arg, int64_t i0, int64_t i1, int tid)
{
	const attn_job *j = arg;
	mllm_ctx *c = j->c;
	const mllm_batch *b = c->b;
	const mllm_hparams *hp = &c->m->hp;
	int rep = hp->n_head / hp->n_head_kv;
	size_t per = mllm__attn_scratch_floats(rep, hp->head_dim, hp->n_ctx_train);
	mllm__attn_tile a = {.L = c->L,
	                     .run = c->run,
	                     .rep = rep,
	                     .head_dim = hp->head_dim,
	                     .scale = c->attn_scale,
	                     .q_stride = c->q_dim,
	                     .ld = hp->n_ctx_train,
	                     .scratch = c->scores + (size_t)tid * per};
	int64_t lo = i0 * j->total / j->nb, hi = i1 * j->total / j->nb, at = 0;
	for (int g = 0; g < hp->n_head_kv && at < hi; g++) {
		int32_t nq;
		for (int32_t t = 0; t < b->n_tokens && at < hi; t += nq) {
			nq = attn_tile_len(b, t);
			int64_t cost = attn_tile_cost(b, t, nq);
			if (at >= lo) {
				int64_t off =
				    (int64_t)t * c->q_dim + (int64_t)g * rep * hp->head_dim;
				a.table = b->block_table[b->seq[t]];
				a.g = g;
				a.p0 = b->pos[t];
				a.nq = nq;
				a.q = c->q + off;
				a.out = c->att + off;
				if (c->kvq)
					attn_tile_q8(c, &a, tid);
				else
					mllm__attn_run_tile(c->isa, &a);
			}
			at += cost;
		}
	}
}

/* Split-K: a batch of a few long one-token tiles (one sequence decoding at
 * a long context) has fewer (tile, KV head) units than twice the threads,
 * and whole units would leave threads idle (3 KV heads on 2 threads: one
 * thread does two). Then attention runs in three parallel steps: scores of
 * 256-position chunks, softmax per row, and the output of each unit whole
 * (mllm__attn_split_*). Every item computes exactly what the whole tile
 * would, so the choice depends on the batch only for speed. The output
 * step stays whole although 3 units on 2 threads leave one idle half the
 * time: cut into 32-channel groups (6 items), each item read every other
 * 64-byte line of its V rows, both lines of a pair came in anyway, and the
 * step took 0.155 instead of 0.110 ms per layer (R1-140M at 4096 tokens,
 * 2 threads, AMD EPYC Zen 3). The
 * score rows of unit u = t * n_head_kv + g are rep rows ldu floats apart
 * from c->scores + u * rep * ldu (the threads' scratch, taken whole). */
enum { SPLIT_CHUNK = 256, SPLIT_MIN_POS = 1024 };

typedef struct {
	mllm_ctx *c;
	int64_t ldu;
} split_job;

static mllm__attn_tile split_unit(const split_job *j, int32_t t, int g)
{
	mllm_ctx *c = j->c;
	const mllm_batch *b = c->b;
	const mllm_hparams *hp = &c->m->hp;
	int rep = hp->n_head / hp->n_head_kv;
	int64_t off = (int64_t)t * c->q_dim + (int64_t)g * rep * hp->head_dim;
	int64_t u = (int64_t)t * hp->n_head_kv + g;
	return (mllm__attn_tile){.L = c->L,
	                         .table = b->block_table[b->seq[t]],
	                         .run = c->run,
	                         .g = g,
	                         .rep = rep,
	                         .head_dim = hp->head_dim,
	                         .scale = c->attn_scale,
	                         .p0 = b->pos[t],
	                         .nq = 1,
	                         .q = c->q + off,
	                         .out = c->att + off,
	                         .q_stride = c->q_dim,
	                         .ld = j->ldu,
	                         .scratch = c->scores + u * rep * j->ldu};
}

/* Items: per row t, per KV head, the row's chunks of SPLIT_CHUNK positions. */
static void split_scores_fn(void *arg, int64_t i0, int64_t i1, int tid)
{
	const split_job *j = arg;
	const mllm_batch *b = j->c->b;
	int G = j->c->m->hp.n_head_kv;
	(void)tid;
	int64_t base = 0;
	for (int32_t t = 0; t < b->n_tokens && base < i1; t++) {
		int32_t np = b->pos[t] + 1, nch = (np + SPLIT_CHUNK - 1) / SPLIT_CHUNK;
		for (int g = 0; g < G; g++, base += nch) {
			if (base + nch <= i0 || base >= i1)
				continue;
			mllm__attn_tile a = split_unit(j, t, g);
			int64_t k0 = i0 > base ? i0 - base : 0,
			        k1 = i1 - base < nch ? i1 - base : nch;
			for (int64_t k = k0; k < k1; k++) {
				int32_t s0 = (int32_t)k * SPLIT_CHUNK;
				mllm__attn_split_scores(j->c->isa, &a, s0,
				                        np - s0 < SPLIT_CHUNK ? np
				                                              : s0 + SPLIT_CHUNK);
			}
		}
	}
}

/* Items: score rows (t, g, r). */
static void split_softmax_fn(void *arg, int64_t i0, int64_t i1, int tid)
{
	const split_job *j = arg;
	const mllm_hparams *hp = &j->c->m->hp;
	int rep = hp->n_head / hp->n_head_kv;
	(void)tid;
	for (int64_t i = i0; i < i1; i++) {
		int64_t u = i / rep;
		int32_t t = (int32_t)(u / hp->n_head_kv);
		mllm__softmax(mllm__attn_isa(j->c->isa, j->c->L), j->c->scores + i * j->ldu,
		              (int64_t)j->c->b->pos[t] + 1);
	}
}

/* Items: units (t, g), all channels. */
static void split_accum_fn(void *arg, int64_t i0, int64_t i1, int tid)
{
	const split_job *j = arg;
	int G = j->c->m->hp.n_head_kv;
	(void)tid;
	for (int64_t u = i0; u < i1; u++) {
		mllm__attn_tile a = split_unit(j, (int32_t)(u / G), (int)(u % G));
		mllm__attn_split_accum(j->c->isa, &a, 0, a.head_dim);
	}
}

/* Whether this batch takes the split path, and its job. */
static bool split_plan(mllm_ctx *c, const mllm_batch *b, split_job *j)
{
	const mllm_hparams *hp = &c->m->hp;
	int rep = hp->n_head / hp->n_head_kv;
	int64_t units = (int64_t)b->n_tokens * hp->n_head_kv;
	if (c->n_threads < 2 || units >= 2 * (int64_t)c->n_threads ||
	    !mllm__attn_split_ok(c->isa, c->L, hp->head_dim))
		return false;
	for (int32_t t = 0; t < b->n_tokens; t++)
		if (attn_tile_len(b, t) != 1 || b->pos[t] + 1 < SPLIT_MIN_POS)
			return false;
	/* Rows of the short stride the tiles use, an odd number of lines. */
	j->c = c;
	j->ldu = (((int64_t)hp->n_ctx_train + 15) & ~(int64_t)15) | 16;
	size_t have =
	    (size_t)c->n_threads * mllm__attn_scratch_floats(rep, hp->head_dim, hp->n_ctx_train);
	return (size_t)units * (size_t)rep * (size_t)j->ldu <= have;
}

static void split_attention(mllm_ctx *c, const split_job *j)
{
	const mllm_batch *b = c->b;
	const mllm_hparams *hp = &c->m->hp;
	int64_t n_chunks = 0;
	for (int32_t t = 0; t < b->n_tokens; t++)
		n_chunks += ((int64_t)b->pos[t] + SPLIT_CHUNK) / SPLIT_CHUNK * hp->n_head_kv;
	int64_t rows = (int64_t)b->n_tokens * hp->n_head;
	mllm__parallel_for(c->pool, n_chunks, 1, 1, split_scores_fn, (void *)j);
	mllm__parallel_for(c->pool, rows, 1, 1, split_softmax_fn, (void *)j);
	mllm__parallel_for(c->pool, rows / (hp->n_head / hp->n_head_kv), 1, 1, split_accum_fn,
	                   (void *)j);
}

/* ---- The pass ----------------------------------------------------------- */

static int validate(const mllm_ctx *c, const mllm_batch *b, const float *logits)
{
	const mllm_hparams *hp = &c->m->hp;
	const mllm__kv_layout *L = c->L;
	if (b->n_tokens <= 0 || b->n_tokens > c->n_batch_max || !b->token || !b->pos || !b->seq ||
	    b->n_seqs <= 0 || !b->block_table)
		return MLLM_EINVAL;
	for (int32_t t = 0; t < b->n_tokens; t++) {
		if (b->logits && b->logits[t] && !logits)
			return MLLM_EINVAL;
		if (b->token[t] < 0 || b->token[t] >= hp->n_vocab)
			return MLLM_EINVAL;
		if (b->pos[t] < 0 || b->pos[t] >= hp->n_ctx_train)
			return MLLM_EINVAL;
		if (b->seq[t] < 0 || b->seq[t] >= b->n_seqs)
			return MLLM_EINVAL;
		const int32_t *table = b->block_table[b->seq[t]];
		if (!table)
			return MLLM_EINVAL;
		for (int32_t j = 0; j <= b->pos[t] / L->block_size; j++) {
			int32_t blk = table[j];
			if (blk < 0 || blk >= L->n_blocks ||
			    mllm_kv_block_refcount(c->kv, blk) <= 0)
				return MLLM_EINVAL;
		}
	}
	return 0;
}

int64_t mllm_ctx_split_runs(const mllm_ctx *c)
{
	return c->split_runs;
}

int mllm_forward(mllm_ctx *c, const mllm_batch *b, float *logits)
{
	const mllm_model *m = c->m;
	const mllm_hparams *hp = &m->hp;
	int64_t n = b->n_tokens, E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim;
	int32_t runs = mllm__model_runs(hp);
	int rc = validate(c, b, logits);
	if (rc)
		return rc;
	c->b = b;

	/* 1. Embeddings, and each token's RoPE angles (in double: positions
	 * reach thousands). */
	for (int64_t t = 0; t < n; t++) {
		mllm__dequant_rows(&m->tok_embd, b->token[t], b->token[t] + 1, c->x + t * E);
		float *cs = c->rope_cs + t * hd;
		for (int64_t i = 0; i < hd / 2; i++) {
			double a = (double)b->pos[t] * (double)c->inv_freq[i];
			cs[i] = (float)cos(a);
			cs[hd / 2 + i] = (float)sin(a);
		}
	}

	/* Attention buckets (see attn_fn): a unit of cost 1 is ~rep * head_dim
	 * multiply-adds per KV head; a bucket gets at least ~16k. Up to eight
	 * per thread, as the pool's chunks: with one per thread, the thread
	 * that started first waited for the other's whole bucket. */
	attn_job aj = {.c = c};
	for (int32_t t = 0, nq; t < b->n_tokens; t += nq) {
		nq = attn_tile_len(b, t);
		aj.total += attn_tile_cost(b, t, nq) * hp->n_head_kv;
	}
	aj.nb = aj.total * hd * (hp->n_head / hp->n_head_kv) / 16384;
	if (aj.nb > 8 * (int64_t)c->n_threads)
		aj.nb = 8 * (int64_t)c->n_threads;
	if (aj.nb < 1)
		aj.nb = 1;
	split_job sj;
	bool split = split_plan(c, b, &sj);

	for (int32_t run = 0; run < runs; run++) {
		const mllm__layer *ly = &m->layers[hp->layer_sharing ? run / 2 : run];
		c->run = run;

		/* 2. The previous layer's FFN residual, the attention input
		 * norm (and the Q/K/V input's quantization). */
		mm_job qkv = {.c = c, .x = c->xn, .n = n};
		mm_add(&qkv, &ly->wq, c->q, c->q_dim);
		mm_add(&qkv, &ly->wk, c->k, c->kv_dim);
		mm_add(&qkv, &ly->wv, c->v, c->kv_dim);
		norm_job nj = {c, ly->attn_norm.data, mm_pre_act(c, &qkv), run > 0 ? c->tmp : NULL};
		mllm__parallel_for(c->pool, n, 4, 1, rmsnorm_fn, &nj);
		/* 3. Q, K, V projections in one pass over the three weights. */
		qkv.xq_ready = nj.act != MLLM__ACT_F32;
		mm_run(c, &qkv);
		/* 4. RoPE (and QK-norm) on q and k, then K/V of every token into
		 * the cache. */
		qkpos_job qj = {c, ly};
		mllm__parallel_for(c->pool, n, 4, 1, qkpos_fn, &qj);
		/* 5. Causal attention through the block tables. */
		if (split) {
			split_attention(c, &sj);
			c->split_runs++;
		} else
			mllm__parallel_for(c->pool, aj.nb, 1, 1, attn_fn, &aj);
		/* 6. Output projection (its residual is added in the FFN norm). */
		matmul(c, &ly->wo, c->att, n, c->tmp, E);
		/* 7. FFN: residual and norm, gate and up, SwiGLU, down (its
		 * residual: the next layer's norm, or after the last). */
		mm_job gu = {.c = c, .x = c->xn, .n = n};
		mm_add(&gu, &ly->w_gate, c->gate, F);
		mm_add(&gu, &ly->w_up, c->up, F);
		nj.w = ly->ffn_norm.data;
		nj.act = mm_pre_act(c, &gu);
		nj.add = c->tmp;
		mllm__parallel_for(c->pool, n, 4, 1, rmsnorm_fn, &nj);
		gu.xq_ready = nj.act != MLLM__ACT_F32;
		mm_run(c, &gu);
		mm_job down = {.c = c, .x = c->gate, .n = n};
		mm_add(&down, &ly->w_down, c->tmp, E);
		swiglu_job sw = {c, mm_pre_act(c, &down)};
		mllm__parallel_for(c->pool, n, 4, 1, swiglu_fn, &sw);
		down.xq_ready = sw.act != MLLM__ACT_F32;
		mm_run(c, &down);

		if (c->abort_fn && c->abort_fn(c->abort_ud)) {
			c->b = NULL;
			return MLLM_ECANCELLED;
		}
	}

	residual_add(c, n);

	/* 8. Final norm of the rows that want logits, then the output head. */
	int64_t n_out = 0;
	for (int64_t t = 0; t < n; t++) {
		if (b->logits && b->logits[t]) {
			mllm__rmsnorm(c->isa, c->xn + n_out * E, c->x + t * E, m->output_norm.data,
			              E, hp->norm_eps);
			n_out++;
		}
	}
	if (n_out > 0)
		matmul(c, &m->output, c->xn, n_out, logits, hp->n_vocab);
	c->b = NULL;
	return 0;
}
