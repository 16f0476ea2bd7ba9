/*
 * resp_store.h — the bounded store of /v1/responses records: a hash table
 * by id with an LRU list, limited in entries, in bytes and in age. Putting
 * past a limit evicts the least recently used records; an expired record is
 * dropped when it is next looked at (and eviction prefers the LRU tail, so
 * old records go first).
 *
 * Ownership: the store holds one reference of each record it keeps
 * (api_resp_record is reference-counted, api.h); _get returns a new
 * reference the caller drops with api_resp_record_unref().
 * Threading: every function takes the store's mutex, so the loop thread
 * (put, delete, GET) and the prep threads (get, for previous_response_id)
 * may call them concurrently. The work under the mutex is a hash lookup and
 * list relinking, plus freeing evicted records.
 */
#ifndef SRV_RESP_STORE_H
#define SRV_RESP_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"

typedef struct srv_resp_store srv_resp_store;

typedef struct {
	int64_t count;   /* records held */
	int64_t bytes;   /* their api_resp_record_bytes() */
	int64_t evicted; /* records dropped for a limit or their age, ever */
} srv_resp_store_stats;

/* max_count 0 stores nothing (put drops every record). ttl_ns > 0. */
int srv_resp_store_create(int64_t max_count, int64_t max_bytes, uint64_t ttl_ns,
                          srv_resp_store **out) MLLM_WUR;
void srv_resp_store_free(srv_resp_store *st);

/* Keeps rec (takes the caller's reference, whatever the outcome), then
 * evicts least recently used records until every limit holds again. A
 * record alone larger than max_bytes is dropped at once (returns
 * MLLM_ETOOLONG); a record with the id of a kept one replaces it. now_ns is
 * the clock (mllm_now_ns in the daemon; tests pass their own). */
int srv_resp_store_put(srv_resp_store *st, api_resp_record *rec, uint64_t now_ns);
/* A new reference to the record with this id, or NULL when there is none
 * (never kept, deleted, evicted, or older than the TTL). Marks it used. */
api_resp_record *srv_resp_store_get(srv_resp_store *st, const char *id, uint64_t now_ns);
/* Forgets the record; false when there was none. */
bool srv_resp_store_delete(srv_resp_store *st, const char *id, uint64_t now_ns);
void srv_resp_store_stats_get(srv_resp_store *st, srv_resp_store_stats *out);

#endif
