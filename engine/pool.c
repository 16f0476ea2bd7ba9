/*
 * pool.c — a persistent worker pool with one primitive, parallel_for.
 *
 * Decode issues a few hundred parallel_for calls per token, so waking the
 * workers must be cheap: each worker spins on a generation counter for a
 * short while (a few microseconds' worth of pause instructions) and only
 * then sleeps on a condition variable. The dispatcher bumps the generation
 * and signals only when someone sleeps. No allocation after create.
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* ~20-50 us of pause: longer than the serial gaps between the parallel
 * steps of a decode pass, short enough not to burn a shared core. */
#define SPIN_ITERS 400

typedef struct {
	mllm__pool *pool;
	int tid;
	pthread_t thread;
	bool started;
} worker;

struct mllm__pool {
	int n_threads;
	worker *workers; /* [n_threads - 1], tid 1.. */

	/* The current job, published by the generation bump. */
	mllm__pool_fn fn;
	void *arg;
	int64_t n, chunk;

	atomic_uint gen;
	atomic_int n_done;
	atomic_int n_sleeping;
	atomic_bool quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void run_range(mllm__pool *p, int tid)
{
	int64_t i0 = (int64_t)tid * p->chunk;
	int64_t i1 = i0 + p->chunk;
	if (i1 > p->n)
		i1 = p->n;
	if (i0 < i1)
		p->fn(p->arg, i0, i1, tid);
}

static void *worker_main(void *a)
{
	worker *w = a;
	mllm__pool *p = w->pool;
	/* Generation 0 is the one at create: a job posted before this thread
	 * first runs must still be seen as new. */
	unsigned seen = 0;
	for (;;) {
		unsigned g;
		int spins = 0;
		while ((g = atomic_load_explicit(&p->gen, memory_order_acquire)) == seen &&
		       !atomic_load(&p->quit)) {
			if (++spins < SPIN_ITERS) {
				cpu_relax();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			atomic_fetch_add(&p->n_sleeping, 1);
			while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
				pthread_cond_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->n_sleeping, 1);
			pthread_mutex_unlock(&p->mu);
			spins = 0;
		}
		if (atomic_load(&p->quit))
			break;
		seen = g;
		run_range(p, w->tid);
		atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
	}
	return NULL;
}

int mllm__pool_create(int n_threads, mllm__pool **out)
{
	*out = NULL;
	if (n_threads < 1)
		n_threads = 1;
	mllm__pool *p = xcalloc(1, sizeof *p);
	p->n_threads = n_threads;
	atomic_init(&p->gen, 0);
	atomic_init(&p->n_done, 0);
	atomic_init(&p->n_sleeping, 0);
	atomic_init(&p->quit, false);
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->workers = xcalloc((size_t)n_threads, sizeof *p->workers);
	for (int i = 1; i < n_threads; i++) {
		worker *w = &p->workers[i - 1];
		w->pool = p;
		w->tid = i;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			MLLM_LOG(MLLM_LOG_ERROR, "pool: cannot start thread %d", i);
			goto fail;
		}
		w->started = true;
	}
	*out = p;
	return 0;
fail:
	mllm__pool_free(p);
	return MLLM_ENOMEM;
}

void mllm__pool_free(mllm__pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	atomic_store(&p->quit, true);
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 1; i < p->n_threads; i++)
		if (p->workers[i - 1].started)
			pthread_join(p->workers[i - 1].thread, NULL);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->workers);
	free(p);
}

int mllm__pool_size(const mllm__pool *p)
{
	return p ? p->n_threads : 1;
}

void mllm__parallel_for(mllm__pool *p, int64_t n, int64_t grain, int64_t align, mllm__pool_fn fn,
                        void *arg)
{
	if (n <= 0)
		return;
	if (grain < 1)
		grain = 1;
	if (align < 1)
		align = 1;
	int nt = p ? p->n_threads : 1;
	if (nt > 1 && n / grain < nt)
		nt = (int)(n / grain);
	if (nt <= 1) {
		fn(arg, 0, n, 0);
		return;
	}
	int64_t chunk = (n + nt - 1) / nt;
	chunk = (chunk + align - 1) / align * align;
	p->fn = fn;
	p->arg = arg;
	p->n = n;
	p->chunk = chunk;
	atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
	/* seq_cst bump, then the sleeper check: see worker_main. */
	atomic_fetch_add(&p->gen, 1);
	if (atomic_load(&p->n_sleeping) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	run_range(p, 0);
	/* Workers whose range is empty still report done. Past a short spin
	 * the caller yields: on a busy machine a descheduled worker must get
	 * the core back rather than watch us spin. */
	int spins = 0;
	while (atomic_load_explicit(&p->n_done, memory_order_acquire) < p->n_threads - 1) {
		if (++spins < SPIN_ITERS)
			cpu_relax();
		else
			sched_yield();
	}
}
