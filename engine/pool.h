/*
 * pool.h — the persistent worker pool (engine-internal). Owned by pool.c.
 *
 * One pool per mllm_ctx, created once; its threads live until
 * mllm__pool_free(). The one primitive is parallel_for: [0, n) is cut into
 * chunks (a few per thread), dealt in one contiguous run per thread; each
 * thread, the caller's included, takes its run front to back, then the
 * others' chunks from their backs, until none are left; the call returns
 * when every chunk is done. Chunk
 * boundaries depend only on n, grain, align and the pool size, never on
 * timing; which thread runs a chunk does, so fn's results must not depend
 * on tid (it may name per-thread scratch). A pool is driven by one thread
 * at a time (the engine thread); fn must not call parallel_for itself.
 */
#ifndef MLLM_POOL_H
#define MLLM_POOL_H

#include "base.h"

typedef struct mllm__pool mllm__pool;

/* fn runs items [i0, i1) on worker tid (0 = the calling thread). */
typedef void (*mllm__pool_fn)(void *arg, int64_t i0, int64_t i1, int tid);

/* n_threads >= 1 counts the caller: n_threads - 1 threads are started. */
int mllm__pool_create(int n_threads, mllm__pool **out) MLLM_WUR;
void mllm__pool_free(mllm__pool *p);
int mllm__pool_size(const mllm__pool *p);

/* Runs fn over [0, n), one call per chunk. With fewer than 2 * grain items
 * (or one thread) it runs serially on the caller, in one call, since waking
 * workers costs more than the work. Chunks hold at least `grain` items and
 * are multiples of `align` items (except the last), so that kernels working
 * on groups of rows keep their grouping. */
void mllm__parallel_for(mllm__pool *p, int64_t n, int64_t grain, int64_t align, mllm__pool_fn fn,
                        void *arg);

/* The chunk size parallel_for uses on a pool of n_threads (n: serial). */
int64_t mllm__pool_chunk(int n_threads, int64_t n, int64_t grain, int64_t align);

#endif
