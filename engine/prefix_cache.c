/*
 * prefix_cache.c — KV blocks kept for reuse: full blocks of finished or
 * running sequences are indexed by their tokens and the entry of the block
 * before them (a serial number never reused), so a hit means the same
 * prompt up to that block, token for token,
 * held with one pool reference each and evicted LRU when the pool runs dry;
 * session pins hold a conversation's blocks for session_ttl_ms. Engine thread
 * only. Admission (scheduler.c) looks blocks up here; blocks come from the
 * pool through mllm__block_alloc so that eviction happens in one place.
 */
#include <stdlib.h>
#include <string.h>

#include "sched_internal.h"

/* Bucket hash of a block of n tokens following the entry whose serial is
 * parent (0 for the first block). It only spreads entries over buckets:
 * a lookup compares the parent's serial and the tokens, so a collision —
 * chance or crafted, the hash is not keyed — cannot return a block that
 * follows another prefix. */
static uint64_t hash_block(uint64_t parent, const int32_t *tokens, int32_t n)
{
	uint64_t h = parent ^ 0x9e3779b97f4a7c15ULL;
	for (int32_t i = 0; i < n; i++) {
		h ^= (uint32_t)tokens[i];
		h *= 0x100000001b3ULL;
		h ^= h >> 29;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
#ifdef MLLM_PC_TEST_HASH /* tests force collisions */
	h = MLLM_PC_TEST_HASH(tokens, h);
#endif
	return h;
}

/* ---- Setup and teardown ------------------------------------------------------ */

int mllm__pc_init(mllm_engine *e, int64_t nb)
{
	e->pc_pool = mllm_try_calloc((size_t)nb, sizeof *e->pc_pool);
	e->pc_tokens = mllm_try_malloc((size_t)nb * (size_t)e->bs * sizeof(int32_t));
	if (!e->pc_pool || !e->pc_tokens)
		return MLLM_ENOMEM;
	for (size_t k = 1; k < (size_t)nb * 2; k <<= 1)
		e->pc_mask = (k << 1) - 1;
	e->pc_buckets = xcalloc(e->pc_mask + 1, sizeof *e->pc_buckets);
	for (int64_t i = nb - 1; i >= 0; i--) {
		e->pc_pool[i].tokens = e->pc_tokens + (size_t)i * (size_t)e->bs;
		e->pc_pool[i].hnext = e->pc_free;
		e->pc_free = &e->pc_pool[i];
	}
	return MLLM_OK;
}

static void lru_unlink(mllm_engine *e, pc_entry *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		e->lru_head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		e->lru_tail = x->prev;
	x->prev = x->next = NULL;
}

static void lru_push_front(mllm_engine *e, pc_entry *x)
{
	x->prev = NULL;
	x->next = e->lru_head;
	if (e->lru_head)
		e->lru_head->prev = x;
	e->lru_head = x;
	if (!e->lru_tail)
		e->lru_tail = x;
}

pc_entry *mllm__pc_find(mllm_engine *e, uint64_t parent, const int32_t *tokens)
{
	uint64_t h = hash_block(parent, tokens, e->bs);
	for (pc_entry *x = e->pc_buckets[h & e->pc_mask]; x; x = x->hnext)
		if (x->hash == h && x->parent == parent &&
		    memcmp(x->tokens, tokens, (size_t)e->bs * sizeof *tokens) == 0)
			return x;
	return NULL;
}

static void pc_remove(mllm_engine *e, pc_entry *x)
{
	pc_entry **pp = &e->pc_buckets[x->hash & e->pc_mask];
	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
	lru_unlink(e, x);
	mllm_kv_block_unref(e->kv, x->block);
	x->hnext = e->pc_free;
	e->pc_free = x;
}

void mllm__pc_index(mllm_engine *e, seq *s)
{
	int32_t tokens[MLLM_KV_BLOCK_SIZE_MAX]; /* mllm_kv_create enforces the bound */
	if (!e->p.prefix_cache || !e->pc_pool)
		return;
	while ((s->n_indexed + 1) * e->bs <= s->n_past) {
		int32_t b = s->n_indexed, blk = s->table[b];
		pc_entry *x;
		for (int32_t i = 0; i < e->bs; i++)
			tokens[i] = mllm__seq_tok_at(s, b * e->bs + i);
		/* After a block the cache could not take, nothing of this
		 * prefix can be looked up again: its later blocks stay out. */
		x = s->chain == MLLM_PC_CHAIN_NONE ? NULL : mllm__pc_find(e, s->chain, tokens);
		if (!x && e->pc_free && s->chain != MLLM_PC_CHAIN_NONE) {
			x = e->pc_free;
			e->pc_free = x->hnext;
			x->parent = s->chain;
			x->serial = ++e->pc_serial;
			x->hash = hash_block(s->chain, tokens, e->bs);
			x->block = blk;
			memcpy(x->tokens, tokens, (size_t)e->bs * sizeof *tokens);
			mllm_kv_block_ref(e->kv, blk);
			x->hnext = e->pc_buckets[x->hash & e->pc_mask];
			e->pc_buckets[x->hash & e->pc_mask] = x;
			lru_push_front(e, x);
		} else if (x) {
			lru_unlink(e, x);
			lru_push_front(e, x);
		}
		s->chain = x ? x->serial : MLLM_PC_CHAIN_NONE;
		s->n_indexed++;
	}
}

int64_t mllm__pc_evictable(const mllm_engine *e)
{
	int64_t n = 0;
	for (const pc_entry *x = e->lru_head; x; x = x->next)
		n += mllm_kv_block_refcount(e->kv, x->block) == 1;
	return n;
}

static bool pc_evict_one(mllm_engine *e)
{
	for (pc_entry *x = e->lru_tail; x; x = x->prev) {
		if (mllm_kv_block_refcount(e->kv, x->block) == 1) {
			pc_remove(e, x);
			return true;
		}
	}
	return false;
}

int32_t mllm__block_alloc(mllm_engine *e)
{
	int32_t b = mllm_kv_block_alloc(e->kv);
	while (b < 0 && pc_evict_one(e))
		b = mllm_kv_block_alloc(e->kv);
	return b;
}

void mllm__pin_release(mllm_engine *e, int32_t i)
{
	session_pin *p = &e->pins[i];
	for (int32_t k = 0; k < p->n_blocks; k++)
		mllm_kv_block_unref(e->kv, p->blocks[k]);
	free(p->blocks);
	free(p->id);
	e->pins[i] = e->pins[--e->n_pins];
}

void mllm__pins_expire(mllm_engine *e, uint64_t now)
{
	for (int32_t i = 0; i < e->n_pins;) {
		if (e->pins[i].expire_ns <= now)
			mllm__pin_release(e, i);
		else
			i++;
	}
}

/* At most this many sessions are pinned at once (or one per pool block,
 * if more): a pin of blocks others share costs the pool nothing, so pool
 * pressure alone would never bound a client minting session ids. Past it
 * the pin that expires first goes. */
#define MLLM_MAX_PINS 1024

void mllm__pin_session(mllm_engine *e, const mllm_request *r, const seq *s)
{
	session_pin *p;
	int32_t tokens[MLLM_KV_BLOCK_SIZE_MAX];
	uint64_t chain = 0;
	int64_t cap = mllm_kv_n_blocks(e->kv);
	if (!r->session_id || e->p.session_ttl_ms <= 0 || s->n_indexed == 0)
		return;
	for (int32_t i = 0; i < e->n_pins; i++) {
		if (strcmp(e->pins[i].id, r->session_id) == 0) {
			mllm__pin_release(e, i);
			break;
		}
	}
	if (cap < MLLM_MAX_PINS)
		cap = MLLM_MAX_PINS;
	if (e->n_pins >= cap) {
		int32_t first = 0;
		for (int32_t i = 1; i < e->n_pins; i++)
			if (e->pins[i].expire_ns < e->pins[first].expire_ns)
				first = i;
		mllm__pin_release(e, first);
	}
	if (e->n_pins == e->cap_pins) {
		e->cap_pins = e->cap_pins ? e->cap_pins * 2 : 8;
		e->pins = xrealloc(e->pins, (size_t)e->cap_pins * sizeof *e->pins);
	}
	p = &e->pins[e->n_pins++];
	p->id = xstrdup(r->session_id);
	p->n_blocks = s->n_indexed;
	p->blocks = xmallocarray((size_t)s->n_indexed, sizeof *p->blocks);
	/* The blocks a lookup finds: when another sequence indexed the same
	 * prefix first (the same step), this one's copies are private, and
	 * pinning them would hold blocks nobody can look up while the indexed
	 * ones stay evictable. */
	for (int32_t k = 0; k < s->n_indexed; k++) {
		pc_entry *x = NULL;
		if (e->pc_pool) {
			for (int32_t i = 0; i < e->bs; i++)
				tokens[i] = mllm__seq_tok_at(s, k * e->bs + i);
			x = chain == MLLM_PC_CHAIN_NONE ? NULL : mllm__pc_find(e, chain, tokens);
			chain = x ? x->serial : MLLM_PC_CHAIN_NONE;
		}
		p->blocks[k] = x ? x->block : s->table[k];
		mllm_kv_block_ref(e->kv, p->blocks[k]);
	}
	p->expire_ns = mllm_now_ns() + (uint64_t)e->p.session_ttl_ms * 1000000ULL;
}

void mllm__pc_free(mllm_engine *e)
{
	while (e->n_pins > 0)
		mllm__pin_release(e, 0);
	while (e->lru_head)
		pc_remove(e, e->lru_head);
	free(e->pc_pool);
	free(e->pc_tokens);
	free(e->pc_buckets);
	free(e->pins);
}
