/*
 * pool.c — a persistent worker pool with one primitive, parallel_for.
 *
 * Decode issues a few hundred parallel_for calls per token, so waking the
 * workers must be cheap: each worker spins on the job word for a short
 * while (a few microseconds' worth of pause instructions) and only then
 * sleeps on a condition variable. The dispatcher posts a job and signals
 * only when someone sleeps. No allocation after create.
 *
 * A job is cut into a few chunks per thread, and every thread (the caller
 * too) claims chunks until none are left. On a shared machine a thread is
 * now and then descheduled for milliseconds; with one fixed range per
 * thread the whole step then waited for it, while with chunks the others
 * take over what it has not started. Chunk boundaries depend only on n,
 * grain, align and the pool size; which thread runs a chunk depends on
 * timing, so fn's results must not depend on tid (it names scratch only).
 *
 * The chunks are dealt in one contiguous run per thread: each thread takes
 * its own run's chunks front to back, and a thread whose run is done takes
 * the others' from their back. A thread undisturbed therefore walks one
 * contiguous stretch of [0, n) — its weight rows, for a matrix product, so
 * that the hardware's stream prefetch and a kernel's look-ahead past its
 * chunk keep going from one chunk into the next — while a descheduled
 * thread's unstarted chunks still go to the others.
 *
 * The job word holds the job's generation; each run's word packs the same
 * generation with the run's front and back, so a claim (one compare-and-
 * swap on a run) is checked against the job it was meant for: a worker
 * that wakes late cannot claim a chunk of a job that has moved on, and
 * once a claim succeeds the job's fields stay as they are until its chunk
 * is reported done.
 */
#include "pool.h"

#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <stdatomic.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#else
#define cpu_relax() ((void)0)
#endif

/* How long a thread spins before it sleeps (a worker) or yields (the
 * caller): longer than the serial gaps between the parallel steps of a
 * forward pass, short enough not to burn a shared core. The spin counts
 * pause instructions, whose length differs tenfold between CPUs (~15 ns
 * on Ice Lake and Zen, ~140 ns on Skylake), so pool_create times them and
 * converts this budget into a count. */
#define SPIN_NS        50000
#define SPIN_ITERS_MIN 64
#define SPIN_ITERS_MAX 20000

/* Chunks per thread: enough that a thread descheduled mid-job holds up at
 * most a small share of it, few enough that claiming costs nothing (one
 * atomic operation per chunk against jobs of tens of microseconds). */
#define CHUNKS_PER_THREAD 8

/* Job and run words: generation (32 bits) | front (16) | back (16); a
 * run's chunks are [front, back), the job word's front and back are 0. */
#define W_GEN(w)        ((uint32_t)((w) >> 32))
#define W_FRONT(w)      ((uint32_t)((w) >> 16) & 0xffffu)
#define W_BACK(w)       ((uint32_t)(w)&0xffffu)
#define W_MAKE(g, f, b) (((uint64_t)(g) << 32) | ((uint64_t)(f) << 16) | (uint64_t)(b))
#define MAX_CHUNKS      0xffff

/* One run's word, alone on its cache line (claims on different runs do not
 * contend). */
typedef struct {
	_Alignas(64) _Atomic uint64_t w;
} run_word;

typedef struct {
	mllm__pool *pool;
	int tid;
	pthread_t thread;
	bool started;
} worker;

struct mllm__pool {
	int n_threads;
	int spin_iters;  /* pauses in SPIN_NS on this CPU */
	worker *workers; /* [n_threads - 1], tid 1.. */

	/* The current job, published by the store of its job word. */
	mllm__pool_fn fn;
	void *arg;
	int64_t n, chunk;

	_Atomic uint64_t job;
	run_word *runs;    /* [n_threads]: run t is thread t's */
	atomic_int n_done; /* chunks of the current job done */
	atomic_int n_sleeping;
	atomic_bool quit;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

/* Claims a chunk of job `gen` from run r — its front when own, else its
 * back; -1 when the run is empty or the job is not `gen` any more. */
static int64_t claim(mllm__pool *p, uint32_t gen, int r, bool own)
{
	_Atomic uint64_t *a = &p->runs[r].w;
	uint64_t w = atomic_load_explicit(a, memory_order_acquire);
	for (;;) {
		uint32_t f = W_FRONT(w), b = W_BACK(w);
		if (W_GEN(w) != gen || f >= b)
			return -1;
		uint64_t nw = own ? W_MAKE(gen, f + 1, b) : W_MAKE(gen, f, b - 1);
		if (atomic_compare_exchange_weak_explicit(a, &w, nw, memory_order_acq_rel,
		                                          memory_order_acquire))
			return own ? (int64_t)f : (int64_t)b - 1;
	}
}

static void run_one(mllm__pool *p, int64_t k, int tid)
{
	int64_t i0 = k * p->chunk;
	int64_t i1 = i0 + p->chunk;
	if (i1 > p->n)
		i1 = p->n;
	p->fn(p->arg, i0, i1, tid);
	atomic_fetch_add_explicit(&p->n_done, 1, memory_order_release);
}

/* Runs the chunks of job `gen` that thread tid can claim: its own run's,
 * then the others' (until none are left, or the job is not `gen` any
 * more). */
static void run_chunks(mllm__pool *p, uint32_t gen, int tid)
{
	int64_t k;
	while ((k = claim(p, gen, tid, true)) >= 0)
		run_one(p, k, tid);
	for (int i = 1; i < p->n_threads; i++) {
		int r = (tid + i) % p->n_threads;
		while ((k = claim(p, gen, r, false)) >= 0)
			run_one(p, k, tid);
	}
}

static void *worker_main(void *a)
{
	worker *w = a;
	mllm__pool *p = w->pool;
	/* Generation 0 is the one at create (no chunks): a job posted before
	 * this thread first runs must still be seen as new. */
	uint32_t seen = 0;
	for (;;) {
		uint32_t g;
		int spins = 0;
		while ((g = W_GEN(atomic_load_explicit(&p->job, memory_order_acquire))) == seen &&
		       !atomic_load(&p->quit)) {
			if (++spins < p->spin_iters) {
				cpu_relax();
				continue;
			}
			pthread_mutex_lock(&p->mu);
			atomic_fetch_add(&p->n_sleeping, 1);
			while (W_GEN(atomic_load(&p->job)) == seen && !atomic_load(&p->quit))
				pthread_cond_wait(&p->cv, &p->mu);
			atomic_fetch_sub(&p->n_sleeping, 1);
			pthread_mutex_unlock(&p->mu);
			spins = 0;
		}
		if (atomic_load(&p->quit))
			break;
		seen = g;
		run_chunks(p, g, w->tid);
	}
	return NULL;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Pauses in SPIN_NS: the fastest of a few timed runs (a run the thread was
 * descheduled in only looks slower). */
static int calibrate_spin(void)
{
	double best = 0;
	for (int r = 0; r < 5; r++) {
		double t0 = now_ns();
		for (int i = 0; i < 256; i++)
			cpu_relax();
		double dt = (now_ns() - t0) / 256;
		if (r == 0 || dt < best)
			best = dt;
	}
	double n = best > 0 ? SPIN_NS / best : SPIN_ITERS_MAX;
	if (n < SPIN_ITERS_MIN)
		n = SPIN_ITERS_MIN;
	if (n > SPIN_ITERS_MAX)
		n = SPIN_ITERS_MAX;
	return (int)n;
}

int mllm__pool_create(int n_threads, mllm__pool **out)
{
	*out = NULL;
	if (n_threads < 1)
		n_threads = 1;
	mllm__pool *p = xcalloc(1, sizeof *p);
	p->n_threads = n_threads;
	p->spin_iters = n_threads > 1 ? calibrate_spin() : SPIN_ITERS_MIN;
	atomic_init(&p->job, W_MAKE(0, 0, 0));
	p->runs = aligned_alloc(64, (size_t)n_threads * sizeof *p->runs);
	if (!p->runs) {
		free(p);
		return MLLM_ENOMEM;
	}
	for (int t = 0; t < n_threads; t++)
		atomic_init(&p->runs[t].w, W_MAKE(0, 0, 0));
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
		if (mllm__thread_start(&w->thread, worker_main, w) != 0) {
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
	free(p->runs);
	free(p);
}

int mllm__pool_size(const mllm__pool *p)
{
	return p ? p->n_threads : 1;
}

int64_t mllm__pool_chunk(int n_threads, int64_t n, int64_t grain, int64_t align)
{
	if (grain < 1)
		grain = 1;
	if (align < 1)
		align = 1;
	if (n_threads <= 1 || n < 2 * grain)
		return n;
	int64_t want = (int64_t)n_threads * CHUNKS_PER_THREAD;
	int64_t chunk = (n + want - 1) / want;
	if (chunk < grain)
		chunk = grain;
	if (chunk < (n + MAX_CHUNKS - 1) / MAX_CHUNKS)
		chunk = (n + MAX_CHUNKS - 1) / MAX_CHUNKS;
	return (chunk + align - 1) / align * align;
}

void mllm__parallel_for(mllm__pool *p, int64_t n, int64_t grain, int64_t align, mllm__pool_fn fn,
                        void *arg)
{
	if (n <= 0)
		return;
	int64_t chunk = mllm__pool_chunk(mllm__pool_size(p), n, grain, align);
	if (chunk >= n) {
		fn(arg, 0, n, 0);
		return;
	}
	int count = (int)((n + chunk - 1) / chunk);
	uint32_t gen = W_GEN(atomic_load_explicit(&p->job, memory_order_relaxed)) + 1;
	p->fn = fn;
	p->arg = arg;
	p->n = n;
	p->chunk = chunk;
	atomic_store_explicit(&p->n_done, 0, memory_order_relaxed);
	/* Runs as even as whole chunks allow, in thread order. No claim can
	 * touch them before the job word below says `gen`. */
	for (int t = 0; t < p->n_threads; t++)
		atomic_store_explicit(&p->runs[t].w,
		                      W_MAKE(gen, (uint32_t)((int64_t)count * t / p->n_threads),
		                             (uint32_t)((int64_t)count * (t + 1) / p->n_threads)),
		                      memory_order_relaxed);
	/* seq_cst post, then the sleeper check: see worker_main. */
	atomic_store(&p->job, W_MAKE(gen, 0, 0));
	if (atomic_load(&p->n_sleeping) > 0) {
		pthread_mutex_lock(&p->mu);
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	run_chunks(p, gen, 0);
	/* What is left runs on workers already inside a chunk. Past a short
	 * spin the caller yields: on a busy machine a descheduled worker must
	 * get the core back rather than watch us spin. */
	int spins = 0;
	while (atomic_load_explicit(&p->n_done, memory_order_acquire) < count) {
		if (++spins < p->spin_iters)
			cpu_relax();
		else
			sched_yield();
	}
}
