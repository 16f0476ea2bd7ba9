/*
 * bench_tokenizer.c — encode / decode throughput of the tokenizer, to set
 * beside SentencePiece's own figure on the same text (bench/tokenizer_sp.py).
 *
 *   build/bench/bench_tokenizer TEXT_FILE TOKENIZER [REPEATS]
 *
 * TEXT_FILE: any text; every non-empty line is encoded on its own (one call
 * per line, no BOS), as tokenizer_sp.py does. A mixed text (corpus prose,
 * code, CJK, emoji, whitespace runs) is made by
 *   /usr/bin/python3 bench/tokenizer_sp.py --make-text OUT ../shared
 * TOKENIZER: a tokenizer.model, a tokenizer.json or a .gguf. Prints one line
 * per measurement
 * (best of REPEATS runs, default 3; CPU time of the one thread encoding,
 * so other load on the machine does not count), then SentencePiece's figure
 * (process CPU time likewise) is printed
 * by: /usr/bin/python3 bench/tokenizer_sp.py TEXT_FILE tokenizer.model, and
 * Hugging Face tokenizers' for a tokenizer.json by bench/tokenizer_hf.js.
 * Figures only: nothing here passes or fails on time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mllm.h"

#include "bench_util.h"

typedef struct {
	const char *p;
	size_t n;
} line;

/* CPU time of this thread: on a shared machine wall time measures the
 * neighbours; tokenizer_sp.py measures process CPU time likewise. */
int main(int argc, char **argv)
{
	char err[512];
	mllm_tokenizer *tok = NULL;
	size_t len = 0, n_lines = 0, n_bytes = 0, max_line = 0;
	int repeats = argc > 3 ? atoi(argv[3]) : 3;
	char *text;
	line *lines;

	if (argc < 3 || repeats < 1) {
		fprintf(stderr, "usage: %s TEXT_FILE TOKENIZER [REPEATS]\n", argv[0]);
		return 2;
	}
	text = slurp(argv[1], &len);
	if (!text) {
		fprintf(stderr, "%s: cannot read\n", argv[1]);
		return 1;
	}
	if (mllm_tokenizer_load(argv[2], &tok, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		free(text);
		return 1;
	}
	lines = malloc((len / 2 + 2) * sizeof *lines);
	if (!lines)
		return 1;
	for (size_t i = 0; i < len;) {
		char *nl = memchr(text + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - text) : len;
		if (e > i) {
			lines[n_lines++] = (line){text + i, e - i};
			n_bytes += e - i;
			if (e - i > max_line)
				max_line = e - i;
		}
		i = e + 1;
	}

	size_t cap = mllm_tokenizer_max_ids(tok, max_line);
	int32_t *ids = malloc(cap * sizeof *ids);
	size_t all_cap = mllm_tokenizer_max_ids(tok, n_bytes);
	int32_t *all = malloc(all_cap * sizeof *all);
	size_t *starts = malloc((n_lines + 1) * sizeof *starts);
	if (!ids || !all || !starts)
		return 1;

	/* Encode, one call per line. Special-token text is parsed, as Hugging
	 * Face's encode() does (SentencePiece ignores the flag). */
	mllm_encode_opts opts = {.parse_special = true};
	double best = 1e30;
	size_t n_tok = 0;
	for (int r = 0; r < repeats; r++) {
		double t0 = cpu_now();
		n_tok = 0;
		for (size_t i = 0; i < n_lines; i++) {
			size_t n;
			if (mllm_tokenizer_encode_ex(tok, lines[i].p, lines[i].n, &opts,
			                             all + n_tok, all_cap - n_tok, &n) != 0) {
				fprintf(stderr, "encode failed on line %zu\n", i);
				return 1;
			}
			starts[i] = n_tok;
			n_tok += n;
		}
		starts[n_lines] = n_tok;
		double dt = cpu_now() - t0;
		if (dt < best)
			best = dt;
	}
	printf("mobilellmd encode: %zu lines, %zu bytes, %zu tokens, %.2f MB/s, %.0f tokens/s\n",
	       n_lines, n_bytes, n_tok, (double)n_bytes / best / 1e6, (double)n_tok / best);

	/* Decode the same ids, one call per line. */
	char *out = malloc(16 * max_line + 64);
	if (!out)
		return 1;
	best = 1e30;
	size_t out_bytes = 0;
	for (int r = 0; r < repeats; r++) {
		double t0 = cpu_now();
		out_bytes = 0;
		for (size_t i = 0; i < n_lines; i++) {
			size_t n;
			if (mllm_tokenizer_decode(tok, all + starts[i], starts[i + 1] - starts[i],
			                          out, 16 * max_line + 64, &n) != 0) {
				fprintf(stderr, "decode failed on line %zu\n", i);
				return 1;
			}
			out_bytes += n;
		}
		double dt = cpu_now() - t0;
		if (dt < best)
			best = dt;
	}
	printf("mobilellmd decode: %zu tokens, %zu bytes, %.2f MB/s, %.0f tokens/s\n", n_tok,
	       out_bytes, (double)out_bytes / best / 1e6, (double)n_tok / best);

	/* Streaming detokenizer, one token at a time. */
	best = 1e30;
	for (int r = 0; r < repeats; r++) {
		double t0 = cpu_now();
		char chunk[MLLM_DETOK_MAX];
		size_t sum = 0;
		for (size_t i = 0; i < n_lines; i++) {
			mllm_detok d;
			mllm_detok_init(&d, tok);
			for (size_t k = starts[i]; k < starts[i + 1]; k++)
				sum += (size_t)mllm_detok_push(&d, all[k], chunk, sizeof chunk);
			sum += (size_t)mllm_detok_flush(&d, chunk, sizeof chunk);
		}
		double dt = cpu_now() - t0;
		if (dt < best)
			best = dt;
		if (sum != out_bytes)
			fprintf(stderr, "detok: %zu bytes streamed, %zu decoded\n", sum, out_bytes);
	}
	printf("mobilellmd detok:  %zu tokens, %.0f tokens/s\n", n_tok, (double)n_tok / best);

	free(out);
	free(ids);
	free(all);
	free(starts);
	free(lines);
	free(text);
	mllm_tokenizer_free(tok);
	return 0;
}
