/*
 * cpu.c — CPU feature detection, the kernel tier, and the OpenBLAS binding.
 *
 * OpenBLAS picks its kernels when the library initialises, from cpuid or
 * from OPENBLAS_CORETYPE. Debian's 0.3.21 does not know Sapphire Rapids and
 * falls back to Prescott (SSE3, ~5x slower sgemm), so the engine never links
 * it directly: on first use we choose a core type for the CPU we find, set
 * the variable (unless the user already did), dlopen() the library, verify
 * with openblas_get_corename() and log the result. The state here is a
 * deliberate process singleton (initialised once under pthread_once).
 */
#include "kernels.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ---- Features ----------------------------------------------------------- */

static mllm__cpu_caps caps;
static mllm__isa best_isa;
static bool best_isa_forced;
static pthread_once_t caps_once = PTHREAD_ONCE_INIT;

static void caps_init(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	caps.avx2 = __builtin_cpu_supports("avx2");
	caps.fma = __builtin_cpu_supports("fma");
	/* F16C has no __builtin_cpu_supports name in every GCC; every CPU
	 * with AVX2 and FMA has it (Haswell and later, Zen). */
	caps.f16c = caps.avx2 && caps.fma;
	caps.avx512f = __builtin_cpu_supports("avx512f");
	caps.avx512bw = __builtin_cpu_supports("avx512bw");
	caps.avx512vl = __builtin_cpu_supports("avx512vl");
	caps.avx512vnni = __builtin_cpu_supports("avx512vnni");
	caps.avx512bf16 = __builtin_cpu_supports("avx512bf16");
#endif
	if (caps.avx512f && caps.avx512bw && caps.avx512vl && caps.avx512vnni && caps.avx2 &&
	    caps.fma)
		best_isa = MLLM__ISA_AVX512;
	else if (caps.avx2 && caps.fma && caps.f16c)
		best_isa = MLLM__ISA_AVX2;
	else
		best_isa = MLLM__ISA_SCALAR;
	/* MLLM_ISA=avx2 caps an AVX-512 CPU at the AVX2 tier (to measure and
	 * test that tier on a machine that has both); never raises it. */
	const char *cap = getenv("MLLM_ISA");
	if (cap && strcmp(cap, "avx2") == 0 && best_isa == MLLM__ISA_AVX512) {
		best_isa = MLLM__ISA_AVX2;
		best_isa_forced = true;
	}
	const char *ref = getenv("MLLM_REF_KERNELS");
	if (ref && *ref && strcmp(ref, "0") != 0) {
		best_isa = MLLM__ISA_SCALAR;
		best_isa_forced = true;
	}
}

const mllm__cpu_caps *mllm__cpu_caps_get(void)
{
	pthread_once(&caps_once, caps_init);
	return &caps;
}

mllm__isa mllm__cpu_isa(void)
{
	pthread_once(&caps_once, caps_init);
	return best_isa;
}

const char *mllm__isa_name(mllm__isa isa)
{
	switch (isa) {
	case MLLM__ISA_AVX512:
		return "avx512-vnni";
	case MLLM__ISA_AVX2:
		return "avx2-fma";
	default:
		return "scalar";
	}
}

/* ---- Physical cores ------------------------------------------------------ */

/* Counts distinct (package, core) pairs of the online CPUs from sysfs, so
 * that SMT siblings do not double the default worker count (two threads on
 * one core fight over the same FMA units and gain nothing on GEMV). Falls
 * back to the online CPU count. */
static int phys_cores;
static pthread_once_t phys_once = PTHREAD_ONCE_INIT;

static void phys_init(void)
{
	long n_online = sysconf(_SC_NPROCESSORS_ONLN);
	long n_conf = sysconf(_SC_NPROCESSORS_CONF);
	enum { MAX_IDS = 4096 };
	static long ids[MAX_IDS];
	int n_ids = 0;
	phys_cores = n_online > 0 ? (int)n_online : 1;
	if (n_conf <= 0 || n_conf > MAX_IDS)
		return;
	for (long cpu = 0; cpu < n_conf; cpu++) {
		char path[128];
		long pkg = -1, core = -1;
		int online = 1;
		FILE *f;
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/online", cpu);
		f = fopen(path, "r");
		if (f) {
			if (fscanf(f, "%d", &online) != 1)
				online = 1;
			fclose(f);
		}
		if (!online)
			continue;
		snprintf(path, sizeof path,
		         "/sys/devices/system/cpu/cpu%ld/topology/physical_package_id", cpu);
		f = fopen(path, "r");
		if (!f)
			return;
		if (fscanf(f, "%ld", &pkg) != 1)
			pkg = -1;
		fclose(f);
		snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%ld/topology/core_id", cpu);
		f = fopen(path, "r");
		if (!f)
			return;
		if (fscanf(f, "%ld", &core) != 1)
			core = -1;
		fclose(f);
		if (pkg < 0 || core < 0)
			return;
		long id = pkg * 1000000 + core;
		int seen = 0;
		for (int i = 0; i < n_ids && !seen; i++)
			seen = ids[i] == id;
		if (!seen)
			ids[n_ids++] = id;
	}
	if (n_ids > 0)
		phys_cores = n_ids;
}

/* CPUs a cgroup CPU quota allows, from the text of cgroup v2's cpu.max
 * ("max 100000" or "50000 100000"), rounded up: a replica limited to half a
 * CPU gets one thread, not one per core of the host. 0 = no quota. */
static int quota_cpus_parse(const char *text)
{
	long long quota, period;

	if (strncmp(text, "max", 3) == 0)
		return 0;
	if (sscanf(text, "%lld %lld", &quota, &period) != 2 || quota <= 0 || period <= 0)
		return 0;
	if (quota / period >= 4096)
		return 4096;
	return (int)((quota + period - 1) / period);
}

static bool read_small(const char *path, char *buf, size_t n)
{
	FILE *f = fopen(path, "r");
	size_t got;

	if (!f)
		return false;
	got = fread(buf, 1, n - 1, f);
	fclose(f);
	buf[got] = '\0';
	return got > 0;
}

/* The tightest cgroup v2 quota on the way from `path` (this process's
 * cgroup, as /proc/self/cgroup names it) up to the root of the hierarchy
 * mounted at `root`: a parent's cpu.max limits its children too (systemd's
 * CPUQuota= on a slice or service). Directories that do not exist here
 * (a path from outside a cgroup namespace) are skipped. 0 = no quota. */
static int quota_cpus_walk(const char *root, const char *path)
{
	char dir[1024], file[1100], text[64];
	int best = 0;

	if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
		return 0;
	for (;;) {
		char *slash;
		int q;
		snprintf(file, sizeof file, "%s%s/cpu.max", root, strcmp(dir, "/") == 0 ? "" : dir);
		if (read_small(file, text, sizeof text)) {
			q = quota_cpus_parse(text);
			if (q > 0 && (best == 0 || q < best))
				best = q;
		}
		slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			break;
		*slash = '\0';
	}
	/* The mount's own root (a container's namespace root, or the host's,
	 * which has no cpu.max). */
	snprintf(file, sizeof file, "%s/cpu.max", root);
	if (read_small(file, text, sizeof text)) {
		int q = quota_cpus_parse(text);
		if (q > 0 && (best == 0 || q < best))
			best = q;
	}
	return best;
}

/* The CPU quota that applies to this process. cgroup v2: cpu.max of its
 * cgroup and every ancestor (a container runtime with a cgroup namespace
 * shows the container's cgroup as the root of /sys/fs/cgroup). cgroup v1:
 * cpu.cfs_quota_us / cpu.cfs_period_us at the cpu controller's mount, which
 * container runtimes bind to the container's cgroup (-1 = none). */
static int quota_cpus(void)
{
	char a[64], b[64], both[136], line[1024];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int q = 0;

	if (f) {
		while (fgets(line, sizeof line, f)) {
			if (strncmp(line, "0::", 3) == 0) {
				line[strcspn(line, "\n")] = '\0';
				q = quota_cpus_walk("/sys/fs/cgroup", line + 3);
				break;
			}
		}
		fclose(f);
	}
	if (q > 0)
		return q;
	if (!read_small("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", a, sizeof a) ||
	    !read_small("/sys/fs/cgroup/cpu/cpu.cfs_period_us", b, sizeof b) || a[0] == '-')
		return 0;
	a[strcspn(a, "\n")] = '\0';
	snprintf(both, sizeof both, "%s %s", a, b);
	return quota_cpus_parse(both);
}

/* The default worker count: physical cores, capped by the CPUs this
 * process may run on (cpuset / taskset) and by the cgroup CPU quota. */
static int default_threads;
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;

static void threads_init(void)
{
	cpu_set_t set;
	int n, q;

	pthread_once(&phys_once, phys_init);
	n = phys_cores;
	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0 &&
	    CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	q = quota_cpus();
	if (q > 0 && q < n)
		n = q;
	default_threads = n > 0 ? n : 1;
}

int mllm__cpu_physical_cores(void)
{
	pthread_once(&threads_once, threads_init);
	return default_threads;
}

/* ---- OpenBLAS ----------------------------------------------------------- */

/* cblas_sgemm's ABI: enums are ints (CblasRowMajor = 101, NoTrans = 111,
 * Trans = 112). Declared here so that nothing in the engine needs the
 * library at link time. */
typedef void (*sgemm_fn)(int order, int ta, int tb, int M, int N, int K, float alpha,
                         const float *A, int lda, const float *B, int ldb, float beta, float *C,
                         int ldc);
typedef char *(*corename_fn)(void);
typedef void (*set_threads_fn)(int n);

static struct {
	void *lib;
	sgemm_fn sgemm;
	const char *core;
	char core_buf[64];
	bool ok;
} blas;
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

/* The core type OpenBLAS 0.3.21 should use on this CPU (NULL: let it
 * detect). Cooperlake = SkylakeX kernels plus the BF16 ones. */
static const char *pick_coretype(void)
{
	const mllm__cpu_caps *c = mllm__cpu_caps_get();
	if (c->avx512f && c->avx512bw && c->avx512vl) {
		if (c->avx512bf16)
			return "Cooperlake";
		return "SkylakeX";
	}
	if (c->avx2 && c->fma)
		return "Haswell";
	return NULL;
}

static void blas_load(void)
{
	static const char *const names[] = {"libopenblas.so.0", "libopenblas.so"};
	const char *user = getenv("OPENBLAS_CORETYPE");
	const char *want = NULL;

	blas.core = "none";
	if (user && *user) {
		want = user;
	} else {
		want = pick_coretype();
		/* setenv is not thread-safe with concurrent getenv: this runs
		 * once, at the first model load / context creation. */
		if (want)
			setenv("OPENBLAS_CORETYPE", want, 0);
	}
	for (size_t i = 0; i < sizeof names / sizeof names[0] && !blas.lib; i++)
		blas.lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (!blas.lib) {
		MLLM_LOG(MLLM_LOG_WARN,
		         "OpenBLAS not found (%s): large matrix "
		         "products use the built-in kernels",
		         dlerror());
		return;
	}
	*(void **)&blas.sgemm = dlsym(blas.lib, "cblas_sgemm");
	corename_fn corename;
	set_threads_fn set_threads;
	*(void **)&corename = dlsym(blas.lib, "openblas_get_corename");
	*(void **)&set_threads = dlsym(blas.lib, "openblas_set_num_threads");
	if (!blas.sgemm) {
		MLLM_LOG(MLLM_LOG_WARN, "OpenBLAS has no cblas_sgemm; not used");
		return;
	}
	if (set_threads)
		set_threads(1);
	if (corename) {
		const char *cn = corename();
		snprintf(blas.core_buf, sizeof blas.core_buf, "%s", cn ? cn : "?");
		blas.core = blas.core_buf;
	} else {
		blas.core = "unknown";
	}
	if (want && strcasecmp(blas.core, want) != 0 && !(user && *user) && corename) {
		/* The library was initialised before us: the binary does not
		 * link it, but a host program embedding the engine (or an
		 * LD_PRELOAD) may have. Its dynamic-arch table can still be
		 * re-selected, since no BLAS call has run yet:
		 * gotoblas_dynamic_init() re-reads OPENBLAS_CORETYPE. */
		void (*quit)(void), (*init)(void);
		*(void **)&quit = dlsym(blas.lib, "gotoblas_dynamic_quit");
		*(void **)&init = dlsym(blas.lib, "gotoblas_dynamic_init");
		if (quit && init) {
			MLLM_LOG(MLLM_LOG_INFO,
			         "OpenBLAS was initialised with core %s; "
			         "re-selecting %s",
			         blas.core, want);
			quit();
			init();
			const char *cn = corename();
			snprintf(blas.core_buf, sizeof blas.core_buf, "%s", cn ? cn : "?");
		}
	}
	if (want && strcasecmp(blas.core, want) != 0)
		MLLM_LOG(MLLM_LOG_WARN,
		         "OpenBLAS core is %s, wanted %s (was the library "
		         "initialised before us? set OPENBLAS_CORETYPE)",
		         blas.core, want);
	MLLM_LOG(MLLM_LOG_INFO, "OpenBLAS core %s%s, 1 thread per worker", blas.core,
	         user && *user ? " (OPENBLAS_CORETYPE from the environment)" : "");
	blas.ok = true;
}

bool mllm__blas_init(void)
{
	pthread_once(&blas_once, blas_load);
	return blas.ok;
}

const char *mllm__blas_corename(void)
{
	mllm__blas_init();
	return blas.core;
}

void mllm__sgemm_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                    int ldc)
{
	blas.sgemm(101, 111, 112, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
}

static char desc_buf[192];
static pthread_once_t desc_once = PTHREAD_ONCE_INIT;

static void describe(void)
{
	const mllm__cpu_caps *c = mllm__cpu_caps_get();
	/* OpenBLAS runs only where MLLM_BLAS_MIN_ROWS asks (forward.c): it
	 * is not even loaded otherwise. */
	const char *bm = getenv("MLLM_BLAS_MIN_ROWS");
	bool want = bm && atoll(bm) > 0;
	bool blas_ok = want && mllm__blas_init();
	snprintf(desc_buf, sizeof desc_buf, "kernels %s%s%s; OpenBLAS %s",
	         mllm__isa_name(mllm__cpu_isa()),
	         !best_isa_forced                      ? ""
	         : mllm__cpu_isa() == MLLM__ISA_SCALAR ? " (MLLM_REF_KERNELS)"
	                                               : " (MLLM_ISA)",
	         c->avx512bf16 ? " (cpu has avx512-bf16)" : "",
	         !want     ? "off (MLLM_BLAS_MIN_ROWS unset)"
	         : blas_ok ? blas.core
	                   : "not available");
}

const char *mllm_cpu_describe(void)
{
	pthread_once(&desc_once, describe);
	return desc_buf;
}
