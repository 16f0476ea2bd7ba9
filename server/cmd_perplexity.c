/*
 * cmd_perplexity.c — `mobilellmd perplexity`: how well a model predicts a
 * text, and how far a numeric path (weight format, KV type) moves its
 * predictions from a reference.
 *
 * The text is tokenized whole and cut into windows of --ctx tokens, each
 * scored from a fresh sequence whose first token is BOS; the second half of
 * each window is scored (every scored token sees at least ctx/2 tokens of
 * context), which is how llama.cpp's perplexity tool counts, so figures
 * compare. --save-logits writes the scored rows' log-probabilities with the
 * windows' ids; --kl-base reads such a file (made from the same text,
 * tokenizer and --ctx) and reports the KL divergence of this run from it,
 * KL(base || this) per token in nats, and how often both pick the same top
 * token. Model math runs on this thread (there is no event loop here).
 *
 * Log-probability file (native byte order; written and read by this file
 * only): "MLLMLP01", then int32 n_vocab, n_ctx, first, n_windows; then per
 * window int32 ids[n_ctx] and float logprobs[(n_ctx - 1 - first) * n_vocab].
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "cmds.h"
#include "log.h"
#include "mllm.h"

#define LP_MAGIC       "MLLMLP01"
#define MAX_TEXT_BYTES ((size_t)1 << 30)

/* The file a symlink to nothing (yet) names, for --save-logits to create,
 * through a chain of links (40 at most, as the kernel): each link's text,
 * relative to that link's directory unless absolute. NULL when path is
 * not such a link. */
static char *dangling_target(const char *path)
{
	char buf[4096], *cur = NULL;
	struct stat st;
	for (int hop = 0; hop < 40; hop++) {
		const char *at = cur ? cur : path, *slash = strrchr(at, '/');
		char *next;
		ssize_t n;
		if (lstat(at, &st) != 0)
			return cur; /* not there: the file to create */
		if (!S_ISLNK(st.st_mode))
			break; /* an existing file: realpath would have found it */
		n = readlink(at, buf, sizeof buf - 1);
		if (n <= 0 || (size_t)n >= sizeof buf - 1)
			break;
		buf[n] = '\0';
		if (buf[0] == '/' || !slash) {
			next = xstrdup(buf);
		} else {
			next = xmalloc((size_t)(slash - at) + 1 + (size_t)n + 1);
			sprintf(next, "%.*s/%s", (int)(slash - at), at, buf);
		}
		free(cur);
		cur = next;
	}
	free(cur);
	return NULL;
}

/* A JSON number, or null where there is none (NaN, infinities). */
static json_t *jreal(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}
#define PPL_CTX_DEFAULT 512

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: mobilellmd perplexity --model PATH --file TEXT [--ctx N] [--chunks N]\n"
	        "                             [--save-logits F] [--kl-base F]\n"
	        "                             [--convert f32|f16|bf16|q8_0|q4_0]\n"
	        "                             [--kv-f16 | --kv-f32 | --kv-q8] [--act16]\n"
	        "                             [--threads N] [--json] [--log-level LEVEL]\n"
	        "\n"
	        "  --model PATH      snapshot directory or .gguf file\n"
	        "  --file TEXT       UTF-8 text to score (e.g. ../shared/corpus/heldout.txt)\n"
	        "  --ctx N           window in tokens (3 or more; default %d, at most the trained\n"
	        "                    context)\n"
	        "  --chunks N        score at most N windows (default: the whole text)\n"
	        "  --save-logits F   write the scored log-probabilities to F (a reference;\n"
	        "                    4 bytes per vocabulary entry per scored token: ~31 MiB\n"
	        "                    per 512-token window with a 32k vocabulary; use\n"
	        "                    --chunks to bound it). Written beside F and renamed\n"
	        "                    over it only when the run succeeds\n"
	        "  --kl-base F       compare with a reference written by --save-logits\n"
	        "  --convert TYPE    re-encode the weights at load (any case)\n"
	        "  --kv-f16          store the KV cache as f16 (default, as the daemon)\n"
	        "  --kv-f32          store it as f32\n"
	        "  --kv-q8           store it as int8 with a scale per token and KV head\n"
	        "  --act16           16-bit activations where the kernels would use 8 (Q4_0,\n"
	        "                    Q8_0: AVX2 and AVX-512 VNNI)\n"
	        "  --threads N       worker threads (default 0: the physical cores this\n"
	        "                    process may use, as the daemon's threads = 0)\n"
	        "  --json            print one JSON object instead of text\n"
	        "  --log-level L     error, warn, info or debug (default warn)\n",
	        PPL_CTX_DEFAULT);
}

/* The whole text; on failure why, in why. */
static int read_text(const char *path, char **out, size_t *len, const char **why)
{
	FILE *f = fopen(path, "rb");
	mllm_buf b;
	char chunk[65536];
	size_t n;
	int rc = 0;
	if (!f) {
		*why = strerror(errno);
		return -1;
	}
	mllm_buf_init(&b, MAX_TEXT_BYTES);
	while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		rc = mllm_buf_append(&b, chunk, n);
	if (ferror(f) || rc) {
		*why = rc ? "larger than 1 GiB" : strerror(errno);
		fclose(f);
		mllm_buf_free(&b);
		return -1;
	}
	fclose(f);
	*out = mllm_buf_take(&b, len);
	if (!*out) {
		*out = xmalloc(1);
		*len = 0;
	}
	return 0;
}

/* Row's log-softmax into lp (double sums: vocabularies of 128k floats). */
static void log_softmax(const float *row, int32_t n, float *lp)
{
	float mx = row[0];
	double s = 0;
	for (int32_t i = 1; i < n; i++)
		if (row[i] > mx)
			mx = row[i];
	for (int32_t i = 0; i < n; i++)
		s += exp((double)row[i] - mx);
	s = log(s) + mx;
	for (int32_t i = 0; i < n; i++)
		lp[i] = (float)((double)row[i] - s);
}

static int32_t argmax(const float *v, int32_t n)
{
	int32_t b = 0;
	for (int32_t i = 1; i < n; i++)
		if (v[i] > v[b])
			b = i;
	return b;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

typedef struct {
	FILE *f;
	int32_t hdr[4]; /* n_vocab, n_ctx, first, n_windows */
} lp_file;

static int lp_open_read(lp_file *lf, const char *path, char *err, size_t errlen)
{
	char magic[8];
	lf->f = fopen(path, "rb");
	if (!lf->f) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (fread(magic, 1, 8, lf->f) != 8 || memcmp(magic, LP_MAGIC, 8) != 0 ||
	    fread(lf->hdr, sizeof lf->hdr[0], 4, lf->f) != 4) {
		snprintf(err, errlen, "%s is not a file written by perplexity --save-logits", path);
		return -1;
	}
	return 0;
}

/* Whether paths a and b name one existing file. */
static bool same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

int srv_cmd_perplexity(int argc, char **argv)
{
	const char *text_path = NULL, *save_path = NULL, *base_path = NULL;
	long ctx = 0, chunks = 0;
	srv_cli_opts opt = SRV_CLI_OPTS_DEFAULT;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		char *end = NULL;
		int shared;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		shared = srv_cli_opt(&opt, "perplexity", a, v);
		if (shared < 0)
			return 2;
		if (shared > 0) {
			i += shared - 1;
			continue;
		}
		if (strcmp(a, "--file") != 0 && strcmp(a, "--save-logits") != 0 &&
		    strcmp(a, "--kl-base") != 0 && strcmp(a, "--ctx") != 0 &&
		    strcmp(a, "--chunks") != 0) {
			fprintf(stderr, "perplexity: unknown option %s\n", a);
			usage(stderr);
			return 2;
		}
		if (!v || strncmp(v, "--", 2) == 0) {
			fprintf(stderr, "perplexity: %s needs a value\n", a);
			usage(stderr);
			return 2;
		}
		i++;
		errno = 0;
		if (strcmp(a, "--file") == 0) {
			text_path = v;
		} else if (strcmp(a, "--save-logits") == 0) {
			save_path = v;
		} else if (strcmp(a, "--kl-base") == 0) {
			base_path = v;
		} else if (strcmp(a, "--ctx") == 0) {
			ctx = strtol(v, &end, 10);
			if (end == v || *end || errno || ctx < 3 || ctx > (1L << 20))
				goto bad_value;
		} else if (strcmp(a, "--chunks") == 0) {
			chunks = strtol(v, &end, 10);
			if (end == v || *end || errno || chunks < 1 || chunks > (1L << 24))
				goto bad_value;
		}
		continue;
	bad_value:
		fprintf(stderr, "perplexity: bad value for %s: '%s'\n", a, v);
		return 2;
	}
	if (!opt.model_path || !text_path) {
		fprintf(stderr, "perplexity: need --model and --file\n");
		usage(stderr);
		return 2;
	}
	if (save_path &&
	    (same_file(save_path, text_path) || (base_path && same_file(save_path, base_path)))) {
		fprintf(stderr, "perplexity: --save-logits %s would overwrite the %s\n", save_path,
		        same_file(save_path, text_path) ? "text (--file)"
		                                        : "reference (--kl-base)");
		return 2;
	}
	if (opt.json) {
		/* jansson takes UTF-8 only: say so now, not after the whole run. */
		json_t *js = json_string(opt.model_path);
		if (!js) {
			fprintf(stderr, "perplexity: --json needs a model path in UTF-8\n");
			return 2;
		}
		json_decref(js);
	}
	if (srv_cli_log_open(&opt, "perplexity"))
		return 2;
	const char *model_path = opt.model_path;
	bool json = opt.json;
	const char *kv_name = opt.kv_q8 ? "q8" : opt.kv_f16 ? "f16" : "f32";
	int kv_bits = opt.kv_q8 ? 8 : opt.kv_f16 ? 16 : 32;
	long threads = opt.threads;
	mllm_model_params mp = opt.mp;

	int ret = 1, rc;
	char err[512] = "";
	char *text = NULL;
	size_t text_len = 0, n_ids = 0;
	int32_t *ids = NULL, *win = NULL, *base_ids = NULL;
	float *logits = NULL, *lp = NULL, *base_lp = NULL;
	double *kls = NULL;
	mllm_model *m = NULL;
	mllm_eval *ev = NULL;
	FILE *save = NULL;
	char *save_tmp = NULL, *save_real = NULL; /* temp file; the resolved target */
	bool save_made = false;                   /* save_tmp was created by this run */
	lp_file base = {.f = NULL};
	const char *why = "";

	if (read_text(text_path, &text, &text_len, &why)) {
		fprintf(stderr, "perplexity: cannot read %s: %s\n", text_path, why);
		goto out;
	}
	mp.n_threads = (int)threads;
	rc = mllm_model_open(model_path, &mp, &m, err, sizeof err);
	if (rc) {
		fprintf(stderr, "perplexity: %s\n", err[0] ? err : mllm_strerror(rc));
		goto out;
	}
	const mllm_hparams *hp = mllm_model_hparams(m);
	const mllm_tokenizer *tok = mllm_model_tokenizer(m);
	int32_t V = hp->n_vocab;
	if (!tok) {
		fprintf(stderr, "perplexity: %s has no tokenizer\n", model_path);
		goto out;
	}
	if (ctx == 0)
		ctx = hp->n_ctx_train < PPL_CTX_DEFAULT ? hp->n_ctx_train : PPL_CTX_DEFAULT;
	if (ctx > hp->n_ctx_train) {
		fprintf(stderr, "perplexity: --ctx %ld is past the trained context (%d)\n", ctx,
		        (int)hp->n_ctx_train);
		ret = 2;
		goto out;
	}
	if (ctx < 3) {
		fprintf(stderr,
		        "perplexity: the trained context (%d) is shorter than a window (3 tokens "
		        "or more)\n",
		        (int)hp->n_ctx_train);
		ret = 2;
		goto out;
	}
	size_t cap = mllm_tokenizer_max_ids(tok, text_len);
	ids = xmallocarray(cap ? cap : 1, sizeof *ids);
	rc = mllm_tokenizer_encode(tok, text, text_len, false, ids, cap, &n_ids);
	if (rc) {
		fprintf(stderr, "perplexity: tokenizing %s: %s\n", text_path, mllm_strerror(rc));
		goto out;
	}
	long n_win = (long)(n_ids / (size_t)ctx);
	if (chunks > 0 && n_win > chunks)
		n_win = chunks;
	if (n_win < 1) {
		fprintf(stderr, "perplexity: %s has %zu tokens, less than one window of %ld\n",
		        text_path, n_ids, ctx);
		ret = 2;
		goto out;
	}
	int32_t first = (int32_t)(ctx / 2), rows = (int32_t)ctx - 1 - first;
	if (base_path) {
		if (lp_open_read(&base, base_path, err, sizeof err)) {
			fprintf(stderr, "perplexity: %s\n", err);
			goto out;
		}
		if (base.hdr[0] != V || base.hdr[1] != ctx || base.hdr[2] != first ||
		    base.hdr[3] < n_win) {
			fprintf(
			    stderr,
			    "perplexity: %s was made with vocabulary %d, ctx %d, %d windows; this "
			    "run has %d, %ld, %ld\n",
			    base_path, base.hdr[0], base.hdr[1], base.hdr[3], (int)V, ctx, n_win);
			ret = 2;
			goto out;
		}
		base_ids = xmallocarray((size_t)ctx, sizeof *base_ids);
		base_lp = xmallocarray((size_t)rows * (size_t)V, sizeof *base_lp);
		kls = xmallocarray((size_t)n_win * (size_t)rows, sizeof *kls);
	}
	if (save_path) {
		int32_t hdr[4] = {V, (int32_t)ctx, first, (int32_t)n_win};
		/* A regular file (or a new one) is written beside the target and
		 * renamed over it at the end, so a run that fails part-way leaves
		 * an earlier reference whole; anything else (a pipe, a device) is
		 * written in place. */
		struct stat st;
		bool exists = stat(save_path, &st) == 0;
		if (!exists || S_ISREG(st.st_mode)) {
			/* Through a symlink, to the file it names (which stays
			 * the link's target); a unique name (mkstemp), so two
			 * runs never share or delete each other's. */
			char *real = realpath(save_path, NULL);
			const char *target;
			if (!real)
				real = dangling_target(save_path);
			target = real ? real : save_path;
			size_t tl = strlen(target) + 16;
			mode_t um = umask(0);
			int fd;
			umask(um);
			save_real = real;
			save_tmp = xmalloc(tl);
			snprintf(save_tmp, tl, "%s.XXXXXX", target);
			fd = mkstemp(save_tmp);
			if (fd >= 0) {
				save_made = true;
				/* the replaced file's mode, else a new file's */
				(void)fchmod(fd, exists ? st.st_mode & 07777 : 0666 & ~um);
				save = fdopen(fd, "wb");
				if (!save)
					close(fd);
			}
		} else {
			save = fopen(save_path, "wb");
		}
		if (!save || fwrite(LP_MAGIC, 1, 8, save) != 8 ||
		    fwrite(hdr, sizeof hdr[0], 4, save) != 4) {
			fprintf(stderr, "perplexity: cannot write %s: %s\n", save_path,
			        strerror(errno));
			goto out;
		}
	}
	rc = mllm_eval_create(m, (int32_t)ctx, (int)threads, kv_bits, &ev, err, sizeof err);
	if (rc) {
		fprintf(stderr, "perplexity: %s\n", err[0] ? err : mllm_strerror(rc));
		goto out;
	}
	win = xmallocarray((size_t)ctx, sizeof *win);
	logits = xmallocarray((size_t)(ctx - first) * (size_t)V, sizeof *logits);
	lp = xmallocarray((size_t)V, sizeof *lp);

	double nll = 0, nll2 = 0, base_nll = 0;
	long n_scored = 0, same_top = 0;
	for (long w = 0; w < n_win; w++) {
		memcpy(win, ids + (size_t)w * (size_t)ctx, (size_t)ctx * sizeof *win);
		if (mllm_tokenizer_bos(tok) >= 0)
			win[0] = mllm_tokenizer_bos(tok);
		rc = mllm_eval_window(ev, win, (int32_t)ctx, first, logits);
		if (rc) {
			fprintf(stderr, "perplexity: window %ld: %s\n", w, mllm_strerror(rc));
			goto out;
		}
		if (save && fwrite(win, sizeof *win, (size_t)ctx, save) != (size_t)ctx)
			goto write_failed;
		if (base.f) {
			if (fread(base_ids, sizeof *base_ids, (size_t)ctx, base.f) != (size_t)ctx ||
			    fread(base_lp, sizeof *base_lp, (size_t)rows * (size_t)V, base.f) !=
			        (size_t)rows * (size_t)V) {
				fprintf(stderr, "perplexity: %s is truncated\n", base_path);
				goto out;
			}
			if (memcmp(base_ids, win, (size_t)ctx * sizeof *win) != 0) {
				fprintf(stderr,
				        "perplexity: window %ld's tokens differ from %s's: not the "
				        "same "
				        "text or tokenizer\n",
				        w, base_path);
				ret = 2;
				goto out;
			}
		}
		for (int32_t r = 0; r < rows; r++) {
			int32_t target = win[first + r + 1];
			double l;
			log_softmax(logits + (size_t)r * (size_t)V, V, lp);
			l = -(double)lp[target];
			nll += l;
			nll2 += l * l;
			if (save && fwrite(lp, sizeof *lp, (size_t)V, save) != (size_t)V)
				goto write_failed;
			if (base.f) {
				const float *b = base_lp + (size_t)r * (size_t)V;
				double kl = 0;
				for (int32_t i = 0; i < V; i++)
					if (b[i] > -80.0f)
						kl += exp((double)b[i]) *
						      ((double)b[i] - (double)lp[i]);
				kls[n_scored] = kl > 0 ? kl : 0;
				base_nll += -(double)b[target];
				same_top += argmax(b, V) == argmax(lp, V);
			}
			n_scored++;
		}
	}
	if (save && fclose(save) != 0) {
		save = NULL;
		goto write_failed;
	}
	save = NULL;
	if (save_tmp) {
		if (rename(save_tmp, save_real ? save_real : save_path) != 0) {
			fprintf(stderr, "perplexity: cannot rename %s to %s: %s\n", save_tmp,
			        save_path, strerror(errno));
			goto out;
		}
		free(save_tmp);
		save_tmp = NULL;
		save_made = false;
	}

	{
		double mean = nll / (double)n_scored, var = nll2 / (double)n_scored - mean * mean;
		double ppl = exp(mean), se = ppl * sqrt(var > 0 ? var : 0) / sqrt((double)n_scored);
		double kl_mean = 0, kl_med = 0, kl_p99 = 0, kl_max = 0;
		const char *wt = mp.convert_to == MLLM_DTYPE__COUNT
		                     ? mllm_dtype_name(hp->wtype)
		                     : mllm_dtype_name(mp.convert_to);
		if (kls) {
			for (long i = 0; i < n_scored; i++)
				kl_mean += kls[i];
			kl_mean /= (double)n_scored;
			qsort(kls, (size_t)n_scored, sizeof *kls, cmp_double);
			kl_med = kls[n_scored / 2];
			kl_p99 = kls[(size_t)((double)(n_scored - 1) * 0.99)];
			kl_max = kls[n_scored - 1];
		}
		if (json) {
			json_t *o =
			    json_pack("{s:s,s:s,s:s,s:i,s:i,s:i,s:o,s:o}", "model", model_path,
			              "weights", wt, "kv", kv_name, "ctx", (json_int_t)ctx,
			              "windows", (json_int_t)n_win, "tokens", (json_int_t)n_scored,
			              "perplexity", jreal(ppl), "perplexity_se", jreal(se));
			if (o && kls) {
				json_object_set_new(o, "base_perplexity",
				                    jreal(exp(base_nll / (double)n_scored)));
				json_object_set_new(o, "kl_mean", jreal(kl_mean));
				json_object_set_new(o, "kl_median", jreal(kl_med));
				json_object_set_new(o, "kl_p99", jreal(kl_p99));
				json_object_set_new(o, "kl_max", jreal(kl_max));
				json_object_set_new(o, "top1_agreement",
				                    jreal((double)same_top / (double)n_scored));
			}
			char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8)) : NULL;
			json_decref(o);
			if (!s) {
				fprintf(stderr, "perplexity: out of memory writing the result\n");
				goto out;
			}
			puts(s);
			free(s);
		} else {
			printf("model %s: weights %s, KV %s; %ld windows of %ld tokens, %ld tokens "
			       "scored\n",
			       model_path, wt, kv_name, n_win, ctx, n_scored);
			printf("perplexity: %.4f +/- %.4f\n", ppl, se);
			if (kls)
				printf(
				    "vs %s (perplexity %.4f): KL mean %.3e, median %.3e, p99 %.3e, "
				    "max %.3e nats; same top token %.2f%%\n",
				    base_path, exp(base_nll / (double)n_scored), kl_mean, kl_med,
				    kl_p99, kl_max, 100.0 * (double)same_top / (double)n_scored);
		}
	}
	ret = 0;
	if (!isfinite(nll) || (kls && !isfinite(base_nll))) {
		/* Printed as it came out (null in JSON), and said: a model whose
		 * logits are NaN or infinite has no perplexity to compare. */
		fprintf(stderr, "perplexity: the scores are not finite (the model's logits hold "
		                "NaN or infinite values)\n");
		ret = 1;
	}
	goto out;
write_failed:
	fprintf(stderr, "perplexity: writing %s: %s\n", save_tmp ? save_tmp : save_path,
	        strerror(errno));
out:
	if (save)
		fclose(save);
	if (save_tmp) {
		if (save_made)
			(void)unlink(save_tmp);
		free(save_tmp);
	}
	free(save_real);
	if (base.f)
		fclose(base.f);
	mllm_eval_free(ev);
	mllm_model_close(m);
	free(text);
	free(ids);
	free(win);
	free(logits);
	free(lp);
	free(base_ids);
	free(base_lp);
	free(kls);
	fflush(stdout);
	return ret;
}
