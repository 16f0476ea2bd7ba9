/*
 * kv.c — the paged KV cache: one preallocated pool of fixed-size blocks,
 * reference-counted so that sequences can share a prefix, with a free list.
 *
 * A block stores K and V for block_size tokens of every layer run, sized
 * for grouped-query attention (n_head_kv x head_dim per token and run), as
 * f32, f16 or int8 with scales; K channel-major, V token-major, stored in
 * pieces per KV head that lie contiguous across block ids (kernels.h).
 * The pool is allocated once at create; alloc/ref/unref are O(1) and never
 * allocate. Accounting is exact: n_free + blocks with refcount > 0 ==
 * n_blocks at all times, which the tests check.
 */
#include "forward.h"
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

struct mllm_kv {
	mllm__kv_layout L;
	int32_t *refcount;  /* [n_blocks] */
	int32_t *free_list; /* [n_blocks] stack of free block ids */
	int64_t n_free;
};

/* The block layout and count the parameters give (shared by the pool and
 * mllm_kv_pool_size). */
static int pool_shape(const mllm_hparams *hp, const mllm_kv_params *p, mllm__kv_layout *shape,
                      size_t *block_bytes, int64_t *n_blocks, size_t *total)
{
	int32_t bs = p->block_size > 0 ? p->block_size : MLLM_KV_BLOCK_SIZE_DEFAULT;
	if (bs > MLLM_KV_BLOCK_SIZE_MAX)
		return MLLM_ERANGE;
	size_t kv_dim = (size_t)hp->n_head_kv * (size_t)hp->head_dim;
	int32_t runs = mllm__model_runs(hp);
	size_t bb;
	if (kv_dim == 0 || hp->head_dim <= 0 || runs <= 0 || kv_dim > INT32_MAX)
		return MLLM_EINVAL;
	*shape = (mllm__kv_layout){.block_size = bs,
	                           .kv_dim = (int32_t)kv_dim,
	                           .head_dim = hp->head_dim,
	                           .f16 = p->f16 && !p->q8,
	                           .q8 = p->q8};
	if (mllm__mul_overflow(mllm__kv_half_bytes(shape), (size_t)runs * 2, &bb))
		return MLLM_EINVAL;
	int64_t nb = p->n_blocks;
	if (nb == 0)
		nb = (int64_t)(p->max_bytes / bb);
	if (nb <= 0 || nb > INT32_MAX)
		return MLLM_ERANGE;
	if (mllm__mul_overflow((size_t)nb, bb, total))
		return MLLM_ERANGE;
	*block_bytes = bb;
	*n_blocks = nb;
	return 0;
}

int mllm_kv_pool_size(const mllm_hparams *hp, const mllm_kv_params *p, int64_t *n_blocks,
                      size_t *bytes)
{
	mllm__kv_layout shape;
	size_t bb;
	if (!hp || !p || !n_blocks || !bytes)
		return MLLM_EINVAL;
	return pool_shape(hp, p, &shape, &bb, n_blocks, bytes);
}

int mllm_kv_create(const mllm_model *m, const mllm_kv_params *p, mllm_kv **out)
{
	*out = NULL;
	if (!m || !p)
		return MLLM_EINVAL;
	const mllm_hparams *hp = &m->hp;
	mllm__kv_layout shape;
	size_t bb, total;
	int64_t nb;
	int rc = pool_shape(hp, p, &shape, &bb, &nb, &total);
	if (rc)
		return rc;
	int32_t bs = shape.block_size, runs = mllm__model_runs(hp);
	size_t kv_dim = (size_t)shape.kv_dim;

	mllm_kv *kv = xcalloc(1, sizeof *kv);
	kv->L.base = mllm_try_malloc(total);
	kv->refcount = mllm_try_calloc((size_t)nb, sizeof(int32_t));
	kv->free_list = mllm_try_malloc((size_t)nb * sizeof(int32_t));
	if (!kv->L.base || !kv->refcount || !kv->free_list) {
		MLLM_LOG(MLLM_LOG_ERROR, "kv: cannot allocate %lld blocks (%zu bytes)",
		         (long long)nb, total);
		mllm_kv_free(kv);
		return MLLM_ENOMEM;
	}
	kv->L.block_bytes = bb;
	kv->L.n_blocks = nb;
	kv->L.block_size = bs;
	kv->L.runs = runs;
	kv->L.kv_dim = (int32_t)kv_dim;
	kv->L.head_dim = hp->head_dim;
	kv->L.f16 = shape.f16;
	kv->L.q8 = shape.q8;
	/* Pop order 0, 1, 2, ...: blocks are handed out low addresses first. */
	for (int64_t i = 0; i < nb; i++)
		kv->free_list[i] = (int32_t)(nb - 1 - i);
	kv->n_free = nb;
	MLLM_LOG(MLLM_LOG_DEBUG,
	         "%s: kv cache: %lld blocks x %d tokens, %zu bytes/block, %s, %.1f MiB", m->path,
	         (long long)nb, bs, bb,
	         p->q8    ? "int8"
	         : p->f16 ? "f16"
	                  : "f32",
	         (double)total / 1048576.0);
	*out = kv;
	return 0;
}

void mllm_kv_free(mllm_kv *kv)
{
	if (!kv)
		return;
	free(kv->L.base);
	free(kv->refcount);
	free(kv->free_list);
	free(kv);
}

const mllm__kv_layout *mllm__kv_layout_get(const mllm_kv *kv)
{
	return &kv->L;
}

int32_t mllm_kv_block_size(const mllm_kv *kv)
{
	return kv->L.block_size;
}

int64_t mllm_kv_n_blocks(const mllm_kv *kv)
{
	return kv->L.n_blocks;
}

int64_t mllm_kv_n_free(const mllm_kv *kv)
{
	return kv->n_free;
}

size_t mllm_kv_bytes_per_block(const mllm_kv *kv)
{
	return kv->L.block_bytes;
}

int32_t mllm_kv_block_alloc(mllm_kv *kv)
{
	if (kv->n_free == 0)
		return -1;
	int32_t b = kv->free_list[--kv->n_free];
	MLLM_ASSERT(kv->refcount[b] == 0);
	kv->refcount[b] = 1;
	return b;
}

void mllm_kv_block_ref(mllm_kv *kv, int32_t block)
{
	MLLM_ASSERT(block >= 0 && block < kv->L.n_blocks);
	MLLM_ASSERT(kv->refcount[block] > 0); /* a free block cannot be shared */
	kv->refcount[block]++;
}

void mllm_kv_block_unref(mllm_kv *kv, int32_t block)
{
	MLLM_ASSERT(block >= 0 && block < kv->L.n_blocks);
	MLLM_ASSERT(kv->refcount[block] > 0); /* double free */
	if (--kv->refcount[block] == 0) {
		MLLM_ASSERT(kv->n_free < kv->L.n_blocks);
		kv->free_list[kv->n_free++] = block;
	}
}

int32_t mllm_kv_block_refcount(const mllm_kv *kv, int32_t block)
{
	if (block < 0 || block >= kv->L.n_blocks)
		return -1;
	return kv->refcount[block];
}

void mllm_kv_block_copy(mllm_kv *kv, int32_t dst, int32_t src, int32_t n_tokens)
{
	const mllm__kv_layout *L = &kv->L;
	MLLM_ASSERT(dst >= 0 && dst < L->n_blocks && src >= 0 && src < L->n_blocks);
	MLLM_ASSERT(n_tokens >= 0 && n_tokens <= L->block_size);
	if (dst == src || n_tokens == 0)
		return;
	size_t esz = mllm__kv_esz(L), hd = (size_t)L->head_dim, bs = (size_t)L->block_size;
	int heads = L->kv_dim / L->head_dim;
	for (int32_t r = 0; r < L->runs; r++)
		for (int g = 0; g < heads; g++) {
			/* K is channel-major: the first n_tokens of every channel row. */
			uint8_t *kd = mllm__kv_head(L, dst, r, 0, g);
			const uint8_t *ks = mllm__kv_head(L, src, r, 0, g);
			for (size_t d = 0; d < hd; d++)
				memcpy(kd + d * bs * esz, ks + d * bs * esz,
				       (size_t)n_tokens * esz);
			/* V is token-major: the first n_tokens rows. */
			memcpy(mllm__kv_head(L, dst, r, 1, g), mllm__kv_head(L, src, r, 1, g),
			       (size_t)n_tokens * hd * esz);
			if (!L->q8)
				continue;
			/* The scales of the same tokens. */
			for (int w = 0; w < 2; w++)
				memcpy(mllm__kv_scales(L, dst, r, w, g),
				       mllm__kv_scales(L, src, r, w, g),
				       (size_t)n_tokens * sizeof(float));
		}
}
