/*
 * bench_forward.c — prefill and decode speed of the forward pass, and
 * resident memory, at 1 and 2 threads (prints figures; never pass/fail).
 *
 * Usage:
 *   sh tools/make_bench_model.sh            # 125M-shaped random models
 *   build/bench/bench_forward MODEL [--convert q8_0|q4_0|f16|f32]
 *       [--threads 1,2] [--prefill 512] [--decode 128] [--repeats 3] [--kv-f16 | --kv-q8] [--act16]
 *       [--batch 1,4,16,64] [--batch-ctx 128] [--batch-steps 16]
 * e.g. build/bench/bench_forward build/bench-models/mobilellm-125m-f16 --convert q8_0
 *
 * Decode from an empty context: --decode single-token steps from position 0
 * (what llama-bench's tg measures). Prefill: one batch of --prefill tokens
 * (random ids), logits for the last row only. Decode after it: --decode
 * steps at positions --prefill.., attending to the whole prefill. Steps feed
 * back the argmax. Each figure is the median (and the best) of --repeats
 * runs. --batch: batched decode, what the scheduler runs with B clients:
 * steps of B tokens, one from each of B sequences at positions --batch-ctx..
 * (all B share one prefilled prefix of --batch-ctx tokens, so attention
 * reads a real context); prints ms per step and tokens/s per B, and only
 * that. "cpus busy" is the process CPU time over wall time (on a shared
 * machine, below ~1.9 at 2 threads the figures are not the engine's).
 * Memory is VmRSS / VmHWM from /proc/self/status after the runs.
 * "x weight bytes" multiplies each median tokens/s by the bytes of weights
 * resident (GB/s if every token read every weight once): the figure that
 * compares models of different sizes and vocabularies (decode of a small
 * model streams its weights, so its tokens/s scale as 1 / bytes).
 * "roofline" lines judge the best runs against two ceilings this bench
 * measures first at the same thread count (roofline.h): memory read
 * bandwidth and the peak rate of the matmuls' instruction; each line gives
 * the fraction of both and of the binding one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>

#include "forward.h"
#include "kernels.h"
#include "base.h"
#include "mllm.h"
#include "roofline.h"

static double now_s(void)
{
	return (double)mllm_now_ns() * 1e-9;
}

/* CPU seconds of the whole process (all threads): on a shared machine the
 * ratio to wall time shows how much of the cores the run really had. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       1e-6 * (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void print_mem(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "VmRSS:", 6) == 0 || strncmp(line, "VmHWM:", 6) == 0) {
			line[strcspn(line, "\n")] = '\0';
			printf("  %s\n", line);
		}
	fclose(f);
}

/* n single-token steps at positions p0.., each feeding back the argmax of
 * the previous logits. */
static int decode(mllm_ctx *ctx, const int32_t *const *tables, const int32_t *seq, float *logits,
                  int32_t V, int32_t p0, int32_t n)
{
	for (int32_t k = 0; k < n; k++) {
		int32_t best = 0;
		for (int32_t v = 1; v < V; v++)
			if (logits[v] > logits[best])
				best = v;
		int32_t p = p0 + k;
		bool yes = true;
		mllm_batch d = {.n_tokens = 1,
		                .token = &best,
		                .pos = &p,
		                .seq = seq,
		                .logits = &yes,
		                .n_seqs = 1,
		                .block_table = tables};
		if (mllm_forward(ctx, &d, logits))
			return -1;
	}
	return 0;
}

/* Batched decode: B sequences sharing the blocks of one prefilled prefix of
 * ctx tokens (ctx % block size == 0), each with its own blocks after it;
 * `steps` forward calls of B tokens (one per sequence). Returns the median
 * seconds per step over `repeats` runs, or < 0 on error. */
static double batch_decode(mllm_ctx *ctx, mllm_kv *kv, int32_t V, const int32_t *shared,
                           int32_t ctx_tok, int32_t B, int32_t steps, int repeats, double *best)
{
	int32_t bs = mllm_kv_block_size(kv), own = (steps + bs - 1) / bs;
	int32_t nb = ctx_tok / bs + own;
	int32_t *tab = malloc((size_t)B * (size_t)nb * sizeof(int32_t));
	const int32_t **tables = calloc((size_t)B, sizeof(*tables));
	int32_t *tok = malloc((size_t)B * sizeof(int32_t)),
	        *pos = malloc((size_t)B * sizeof(int32_t));
	int32_t *seq = malloc((size_t)B * sizeof(int32_t));
	bool *want = malloc((size_t)B * sizeof(bool));
	float *logits = malloc((size_t)B * (size_t)V * sizeof(float));
	double per[99], med = -1.0;
	bool ok = tab && tables && tok && pos && seq && want && logits;
	for (int64_t i = 0; tab && i < (int64_t)B * nb; i++)
		tab[i] = -1;
	for (int32_t s = 0; ok && s < B; s++) {
		for (int32_t j = 0; ok && j < ctx_tok / bs; j++) {
			if ((tab[s * nb + j] = mllm_kv_block_alloc(kv)) < 0)
				ok = false;
			else
				mllm_kv_block_copy(kv, tab[s * nb + j], shared[j], bs);
		}
		for (int32_t j = ctx_tok / bs; j < nb; j++)
			if ((tab[s * nb + j] = mllm_kv_block_alloc(kv)) < 0)
				ok = false;
		tables[s] = tab + s * nb;
		seq[s] = s;
		want[s] = true;
		tok[s] = 3 + s;
	}
	for (int r = 0; ok && r < repeats; r++) {
		double a = now_s();
		for (int32_t k = 0; ok && k < steps; k++) {
			for (int32_t s = 0; s < B; s++)
				pos[s] = ctx_tok + k;
			mllm_batch b = {.n_tokens = B,
			                .token = tok,
			                .pos = pos,
			                .seq = seq,
			                .logits = want,
			                .n_seqs = B,
			                .block_table = tables};
			if (mllm_forward(ctx, &b, logits))
				ok = false;
		}
		per[r] = (now_s() - a) / steps;
	}
	if (ok) {
		*best = per[0];
		for (int r = 1; r < repeats; r++)
			*best = per[r] < *best ? per[r] : *best;
		med = median(per, repeats);
	}
	for (int32_t s = 0; tab && s < B; s++)
		for (int32_t j = 0; j < nb; j++)
			if (tab[s * nb + j] >= 0)
				mllm_kv_block_unref(kv, tab[s * nb + j]);
	free(tab);
	free(tables);
	free(tok);
	free(pos);
	free(seq);
	free(want);
	free(logits);
	return med;
}

/* The --batch figures at nt threads: one prefilled prefix, then each B. */
static int run_batches(mllm_model *m, int nt, const char *list, int32_t ctx_tok, int32_t steps,
                       int repeats, bool kv_f16, bool kv_q8, const roofline *rl)
{
	int32_t bmax = 1, V = mllm_model_hparams(m)->n_vocab;
	for (const char *p = list; *p;) {
		int b = atoi(p);
		bmax = b > bmax ? b : bmax;
		p += strcspn(p, ",");
		p += *p == ',';
	}
	/* Every sequence gets its own copy of the prefix's K/V, as sequences
	 * with different prompts have: attention then reads B contexts from
	 * memory, not one from cache. */
	int32_t own = (steps + 15) / 16, nsh = ctx_tok / 16;
	mllm_kv_params kp = {
	    .block_size = 16, .n_blocks = nsh + bmax * (nsh + own), .f16 = kv_f16, .q8 = kv_q8};
	mllm_kv *kv;
	mllm_ctx *ctx;
	int32_t nmax = bmax > ctx_tok ? bmax : ctx_tok;
	if (mllm_kv_create(m, &kp, &kv) || mllm_ctx_create(m, kv, nmax, nt, &ctx)) {
		fprintf(stderr, "bench_forward: cannot create cache/context\n");
		return -1;
	}
	int32_t *shared = malloc((size_t)nsh * sizeof(int32_t));
	int32_t *ids = malloc((size_t)ctx_tok * sizeof(int32_t));
	int32_t *pos = malloc((size_t)ctx_tok * sizeof(int32_t));
	int32_t *seq = calloc((size_t)ctx_tok, sizeof(int32_t));
	bool *want = calloc((size_t)ctx_tok, sizeof(bool));
	float *logits = malloc((size_t)V * sizeof(float));
	for (int32_t j = 0; j < nsh; j++)
		shared[j] = mllm_kv_block_alloc(kv);
	for (int32_t i = 0; i < ctx_tok; i++) {
		ids[i] = i == 0 ? 1 : 3 + (i * 7919) % (V - 3);
		pos[i] = i;
	}
	want[ctx_tok - 1] = true;
	const int32_t *tables[1] = {shared};
	mllm_batch b = {.n_tokens = ctx_tok,
	                .token = ids,
	                .pos = pos,
	                .seq = seq,
	                .logits = want,
	                .n_seqs = 1,
	                .block_table = tables};
	int rc = mllm_forward(ctx, &b, logits) ? -1 : 0;
	for (const char *p = list; !rc && *p;) {
		int B = atoi(p);
		p += strcspn(p, ",");
		p += *p == ',';
		if (B < 1)
			continue;
		double best = 0.0, c0 = cpu_s(), w0 = now_s();
		double med = batch_decode(ctx, kv, V, shared, ctx_tok, B, steps, repeats, &best);
		if (med < 0) {
			rc = -1;
			break;
		}
		printf(
		    "threads %d: batch %3d at ctx %d: %7.2f ms/step (best %7.2f) = %7.1f tokens/s "
		    "(best %7.1f) | %.2f cpus busy\n",
		    nt, B, ctx_tok, med * 1e3, best * 1e3, B / med, B / best,
		    (cpu_s() - c0) / (now_s() - w0));
		{
			/* A step reads the weights once and each sequence's K/V
			 * (the shared prefix plus half its own steps, on average). */
			double kvt =
			    (double)mllm_kv_bytes_per_block(kv) / (double)mllm_kv_block_size(kv);
			char what[48];
			snprintf(what, sizeof what, "batch %d", B);
			roofline_print(rl, what,
			               (double)mllm_model_weight_bytes(m) +
			                   (double)B * (ctx_tok + steps / 2.0) * kvt,
			               2.0 * (double)mllm_model_n_params(m) * B, best);
		}
		fflush(stdout);
	}
	for (int32_t j = 0; j < nsh; j++)
		mllm_kv_block_unref(kv, shared[j]);
	free(shared);
	free(ids);
	free(pos);
	free(seq);
	free(want);
	free(logits);
	mllm_ctx_free(ctx);
	mllm_kv_free(kv);
	return rc;
}

static void log_sink(void *ud, mllm_log_level level, const char *msg)
{
	(void)ud;
	(void)level;
	fprintf(stderr, "  [log] %s\n", msg);
}

int main(int argc, char **argv)
{
	const char *path = NULL, *threads_list = "1,2", *batch_list = NULL;
	int batch_ctx = 128, batch_steps = 16;
	int n_prefill = 512, n_decode = 128, repeats = 3;
	bool kv_f16 = false, kv_q8 = false;
	mllm_model_params mp = MLLM_MODEL_PARAMS_DEFAULT;

	for (int i = 1; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--kv-f16") == 0) {
			kv_f16 = true;
		} else if (strcmp(argv[i], "--kv-q8") == 0) {
			kv_q8 = true;
		} else if (strcmp(argv[i], "--act16") == 0) {
			mp.act16 = true;
		} else if (v && strcmp(argv[i], "--convert") == 0) {
			i++;
			if (strcasecmp(v, "q8_0") == 0)
				mp.convert_to = MLLM_DTYPE_Q8_0;
			else if (strcasecmp(v, "q4_0") == 0)
				mp.convert_to = MLLM_DTYPE_Q4_0;
			else if (strcasecmp(v, "f16") == 0)
				mp.convert_to = MLLM_DTYPE_F16;
			else if (strcasecmp(v, "bf16") == 0)
				mp.convert_to = MLLM_DTYPE_BF16;
			else if (strcasecmp(v, "f32") == 0)
				mp.convert_to = MLLM_DTYPE_F32;
			else
				goto usage;
		} else if (v && strcmp(argv[i], "--threads") == 0) {
			threads_list = argv[++i];
		} else if (v && strcmp(argv[i], "--prefill") == 0) {
			n_prefill = atoi(argv[++i]);
		} else if (v && strcmp(argv[i], "--decode") == 0) {
			n_decode = atoi(argv[++i]);
		} else if (v && strcmp(argv[i], "--batch") == 0) {
			batch_list = argv[++i];
		} else if (v && strcmp(argv[i], "--batch-ctx") == 0) {
			batch_ctx = atoi(argv[++i]);
		} else if (v && strcmp(argv[i], "--batch-steps") == 0) {
			batch_steps = atoi(argv[++i]);
		} else if (v && strcmp(argv[i], "--repeats") == 0) {
			repeats = atoi(argv[++i]);
		} else if (argv[i][0] != '-' && !path) {
			path = argv[i];
		} else {
			goto usage;
		}
	}
	if (!path || n_prefill < 1 || n_decode < 1 || repeats < 1 || repeats > 99 ||
	    batch_ctx < 16 || batch_ctx % 16 || batch_steps < 1)
		goto usage;

	mllm_log_set(log_sink, NULL, MLLM_LOG_INFO);
	char err[512];
	mllm_model *m;
	double t0 = now_s();
	int rc = mllm_model_open(path, &mp, &m, err, sizeof err);
	if (rc) {
		fprintf(stderr, "bench_forward: %s\n", err);
		return 1;
	}
	const mllm_hparams *hp = mllm_model_hparams(m);
	int32_t V = hp->n_vocab;
	printf("model %s: %s, %lld params, %.1f MiB of weights, loaded in %.2f s\n", path,
	       mllm_dtype_name(hp->wtype), (long long)mllm_model_n_params(m),
	       (double)mllm_model_weight_bytes(m) / 1048576.0, now_s() - t0);
	printf("cpu: %s\n", mllm_cpu_describe());
	mllm_dtype wt = mp.convert_to != MLLM_DTYPE__COUNT ? mp.convert_to : hp->wtype;
	bool quant = wt == MLLM_DTYPE_Q8_0 || wt == MLLM_DTYPE_Q4_0;
	if (n_prefill + n_decode > hp->n_ctx_train) {
		fprintf(stderr, "bench_forward: prefill + decode exceed the context\n");
		return 1;
	}

	int32_t total = n_prefill + n_decode;
	int32_t *ids = malloc((size_t)total * sizeof(int32_t));
	int32_t *pos = malloc((size_t)total * sizeof(int32_t));
	int32_t *seq = calloc((size_t)total, sizeof(int32_t));
	bool *want = calloc((size_t)total, sizeof(bool));
	float *logits = malloc((size_t)V * sizeof(float));
	uint64_t s = 42;
	for (int32_t i = 0; i < total; i++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		ids[i] = i == 0 ? 1 : 3 + (int32_t)((s >> 33) % (uint64_t)(V - 3));
		pos[i] = i;
	}
	want[n_prefill - 1] = true;

	const char *tl = threads_list;
	while (*tl) {
		int nt = atoi(tl);
		while (*tl && *tl != ',')
			tl++;
		if (*tl == ',')
			tl++;
		if (nt < 1)
			continue;
		roofline rl;
		roofline_measure(nt, quant, &rl);
		mllm__isa isa = mllm__cpu_isa();
		if (!mp.act16 && (wt == MLLM_DTYPE_Q4_0 || wt == MLLM_DTYPE_Q8_0) &&
		    isa != MLLM__ISA_SCALAR)
			roofline_use_8bit(&rl); /* act8: vpmaddubsw / vpdpbusd */
		roofline_print_ceilings(&rl, nt);
		if (batch_list) {
			if (run_batches(m, nt, batch_list, batch_ctx, batch_steps, repeats, kv_f16,
			                kv_q8, &rl))
				return 1;
			continue;
		}
		mllm_kv_params kp = {
		    .block_size = 16, .n_blocks = (total + 15) / 16, .f16 = kv_f16, .q8 = kv_q8};
		mllm_kv *kv;
		mllm_ctx *ctx;
		if (mllm_kv_create(m, &kp, &kv) || mllm_ctx_create(m, kv, n_prefill, nt, &ctx)) {
			fprintf(stderr, "bench_forward: cannot create cache/context\n");
			return 1;
		}
		int32_t *table = malloc((size_t)kp.n_blocks * sizeof(int32_t));
		for (int64_t i = 0; i < kp.n_blocks; i++)
			table[i] = mllm_kv_block_alloc(kv);
		const int32_t *tables[1] = {table};
		double pre[99], dec[99], tg[99], c0 = cpu_s(), w0 = now_s();
		for (int r = 0; r < repeats; r++) {
			/* 1. Decode from an empty context (llama-bench's tg). */
			for (int32_t v = 0; v < V; v++)
				logits[v] = v == 1 ? 1.0f : 0.0f; /* first token: BOS */
			double a = now_s();
			if (decode(ctx, tables, seq, logits, V, 0, n_decode))
				return 1;
			tg[r] = now_s() - a;
			/* 2. Prefill, then 3. decode after it. */
			mllm_batch b = {.n_tokens = n_prefill,
			                .token = ids,
			                .pos = pos,
			                .seq = seq,
			                .logits = want,
			                .n_seqs = 1,
			                .block_table = tables};
			a = now_s();
			if (mllm_forward(ctx, &b, logits))
				return 1;
			pre[r] = now_s() - a;
			a = now_s();
			if (decode(ctx, tables, seq, logits, V, n_prefill, n_decode))
				return 1;
			dec[r] = now_s() - a;
		}
		double util = (cpu_s() - c0) / (now_s() - w0);
		double bp = pre[0], bd = dec[0], bt = tg[0];
		for (int r = 1; r < repeats; r++) {
			bp = pre[r] < bp ? pre[r] : bp;
			bd = dec[r] < bd ? dec[r] : bd;
			bt = tg[r] < bt ? tg[r] : bt;
		}
		double mp_s = median(pre, repeats), md_s = median(dec, repeats);
		double mt_s = median(tg, repeats);
		printf(
		    "threads %d: decode %d at ctx 0..%d: %.1f tokens/s (best %.1f) | prefill %d: "
		    "%.1f tokens/s (best %.1f) | decode %d at ctx %d..%d: %.1f tokens/s "
		    "(best %.1f) | %.2f cpus busy\n",
		    nt, n_decode, n_decode, n_decode / mt_s, n_decode / bt, n_prefill,
		    n_prefill / mp_s, n_prefill / bp, n_decode, n_prefill, total, n_decode / md_s,
		    n_decode / bd, util);
		double wb = (double)mllm_model_weight_bytes(m) * 1e-9;
		printf(
		    "threads %d: x weight bytes (%.1f MB): decode %.2f GB/s | prefill %.2f GB/s | "
		    "decode after prefill %.2f GB/s\n",
		    nt, wb * 1e3, n_decode / mt_s * wb, n_prefill / mp_s * wb,
		    n_decode / md_s * wb);
		{
			/* Best runs against the ceilings: decode reads every weight
			 * per token (and, after the prefill, the K/V of ~ctx
			 * positions); prefill reads them once per batch. */
			double np2 = 2.0 * (double)mllm_model_n_params(m), wbytes = wb * 1e9;
			double kvt =
			    (double)mllm_kv_bytes_per_block(kv) / (double)mllm_kv_block_size(kv);
			roofline_print(&rl, "decode at ctx 0", wbytes, np2, bt / n_decode);
			roofline_print(&rl, "prefill", wbytes, np2 * n_prefill, bp);
			roofline_print(&rl, "decode after prefill",
			               wbytes + (n_prefill + n_decode / 2.0) * kvt, np2,
			               bd / n_decode);
		}
		for (int64_t i = 0; i < kp.n_blocks; i++)
			mllm_kv_block_unref(kv, table[i]);
		free(table);
		mllm_ctx_free(ctx);
		mllm_kv_free(kv);
	}
	print_mem();
	free(ids);
	free(pos);
	free(seq);
	free(want);
	free(logits);
	mllm_model_close(m);
	return 0;
usage:
	fprintf(stderr, "usage: bench_forward MODEL [--convert q8_0|q4_0|f16|bf16|f32] "
	                "[--threads 1,2] [--prefill N] [--decode N] [--repeats N] [--kv-f16 | "
	                "--kv-q8] [--act16]\n"
	                "       [--batch B1,B2,.. [--batch-ctx N] [--batch-steps N]]\n");
	return 2;
}
