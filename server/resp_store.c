/*
 * resp_store.c — the /v1/responses store (resp_store.h): records by id in a
 * chained hash table of fixed size (sized once from max_count, so it never
 * rehashes under the mutex), on one LRU list, with running totals of count
 * and bytes. Every operation is O(1) but eviction, which walks from the
 * tail; each record is evicted at most once, so puts are amortised O(1).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "resp_store.h"

typedef struct entry {
	api_resp_record *rec; /* one reference */
	const char *id;       /* = api_resp_record_id(rec) */
	uint64_t hash;
	size_t bytes;
	uint64_t expire_ns;
	struct entry *hnext;       /* bucket chain */
	struct entry *prev, *next; /* LRU: head = most recently used */
} entry;

struct srv_resp_store {
	pthread_mutex_t mu;
	int64_t max_count, max_bytes;
	uint64_t ttl_ns;
	entry **buckets;
	size_t mask;
	entry *head, *tail;
	srv_resp_store_stats st;
};

static uint64_t hash_id(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

int srv_resp_store_create(int64_t max_count, int64_t max_bytes, uint64_t ttl_ns,
                          srv_resp_store **out)
{
	srv_resp_store *st;
	size_t nb = 16;
	*out = NULL;
	if (max_count < 0 || max_bytes < 0 || ttl_ns == 0)
		return MLLM_EINVAL;
	st = xcalloc(1, sizeof *st);
	if (pthread_mutex_init(&st->mu, NULL) != 0) {
		free(st);
		return MLLM_EINTERNAL;
	}
	/* About one entry per bucket at the count limit, capped at 2^20
	 * buckets (8 MiB) when the limit is huge. */
	while ((int64_t)nb < max_count && nb < ((size_t)1 << 20))
		nb <<= 1;
	st->buckets = xcalloc(nb, sizeof *st->buckets);
	st->mask = nb - 1;
	st->max_count = max_count;
	st->max_bytes = max_bytes;
	st->ttl_ns = ttl_ns;
	*out = st;
	return 0;
}

static void lru_unlink(srv_resp_store *st, entry *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		st->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		st->tail = x->prev;
	x->prev = x->next = NULL;
}

static void lru_front(srv_resp_store *st, entry *x)
{
	x->prev = NULL;
	x->next = st->head;
	if (st->head)
		st->head->prev = x;
	st->head = x;
	if (!st->tail)
		st->tail = x;
}

static entry *find(srv_resp_store *st, const char *id, uint64_t h)
{
	for (entry *x = st->buckets[h & st->mask]; x; x = x->hnext)
		if (x->hash == h && strcmp(x->id, id) == 0)
			return x;
	return NULL;
}

/* Unlinks and frees x; evicted counts it in the stats. */
static void drop(srv_resp_store *st, entry *x, bool evicted)
{
	entry **pp = &st->buckets[x->hash & st->mask];
	while (*pp != x)
		pp = &(*pp)->hnext;
	*pp = x->hnext;
	lru_unlink(st, x);
	st->st.count--;
	st->st.bytes -= (int64_t)x->bytes;
	if (evicted)
		st->st.evicted++;
	api_resp_record_unref(x->rec);
	free(x);
}

void srv_resp_store_free(srv_resp_store *st)
{
	if (!st)
		return;
	while (st->head)
		drop(st, st->head, false);
	free(st->buckets);
	pthread_mutex_destroy(&st->mu);
	free(st);
}

int srv_resp_store_put(srv_resp_store *st, api_resp_record *rec, uint64_t now_ns)
{
	const char *id = api_resp_record_id(rec);
	uint64_t h = hash_id(id);
	size_t bytes = api_resp_record_bytes(rec);
	entry *x;

	if (st->max_count == 0 || (int64_t)bytes > st->max_bytes) {
		api_resp_record_unref(rec);
		return MLLM_ETOOLONG;
	}
	pthread_mutex_lock(&st->mu);
	x = find(st, id, h);
	if (x)
		drop(st, x, false);
	x = xcalloc(1, sizeof *x);
	x->rec = rec;
	x->id = id;
	x->hash = h;
	x->bytes = bytes;
	x->expire_ns = now_ns + st->ttl_ns;
	x->hnext = st->buckets[h & st->mask];
	st->buckets[h & st->mask] = x;
	lru_front(st, x);
	st->st.count++;
	st->st.bytes += (int64_t)bytes;
	/* The new record is at the head and fits alone: the loop stops
	 * before reaching it. */
	while (st->st.count > st->max_count || st->st.bytes > st->max_bytes)
		drop(st, st->tail, true);
	/* Expired records at the tail go too (the others on their next get). */
	while (st->tail && st->tail != x && st->tail->expire_ns <= now_ns)
		drop(st, st->tail, true);
	pthread_mutex_unlock(&st->mu);
	return 0;
}

api_resp_record *srv_resp_store_get(srv_resp_store *st, const char *id, uint64_t now_ns)
{
	api_resp_record *rec = NULL;
	entry *x;
	pthread_mutex_lock(&st->mu);
	x = find(st, id, hash_id(id));
	if (x && x->expire_ns <= now_ns) {
		drop(st, x, true);
		x = NULL;
	}
	if (x) {
		lru_unlink(st, x);
		lru_front(st, x);
		rec = api_resp_record_ref(x->rec);
	}
	pthread_mutex_unlock(&st->mu);
	return rec;
}

bool srv_resp_store_delete(srv_resp_store *st, const char *id, uint64_t now_ns)
{
	entry *x;
	bool found;
	pthread_mutex_lock(&st->mu);
	x = find(st, id, hash_id(id));
	found = x && x->expire_ns > now_ns;
	if (x)
		drop(st, x, !found);
	pthread_mutex_unlock(&st->mu);
	return found;
}

void srv_resp_store_stats_get(srv_resp_store *st, srv_resp_store_stats *out)
{
	pthread_mutex_lock(&st->mu);
	*out = st->st;
	pthread_mutex_unlock(&st->mu);
}
