/*
 * cmd_tokenize.c — `mobilellmd tokenize`: text on stdin to token ids, with
 * the same tokenizer the daemon uses, for scripts and for checking against
 * SentencePiece and Hugging Face tokenizers. It loads only the tokenizer (no
 * weights, so it also works for a model family the engine cannot run), from
 * a snapshot directory, a tokenizer.model or tokenizer.json file or a .gguf
 * file. Special-token text is parsed as the special token, as Hugging Face
 * does by default. JSON in and out goes through jansson.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "cmds.h"
#include "mllm.h"

#define STDIN_MAX ((size_t)256 << 20)

static void usage(FILE *f)
{
	fprintf(f, "usage: mobilellmd tokenize --model PATH [--jsonl]\n"
	           "\n"
	           "Prints the token ids of text read on stdin.\n"
	           "\n"
	           "  --model PATH  a model snapshot directory (its tokenizer.model, else\n"
	           "                its tokenizer.json; add_bos_token from its\n"
	           "                tokenizer_config.json), a tokenizer.model or\n"
	           "                tokenizer.json file (tokenizer_config.json beside it\n"
	           "                is read if present) or a .gguf file (its metadata)\n"
	           "  --jsonl       read one JSON object {\"text\": \"...\"} per line and\n"
	           "                write one {\"ids\": [...]} per line, WITHOUT BOS (as\n"
	           "                SentencePiece's and tokenizers' encode()); blank lines\n"
	           "                are skipped\n"
	           "\n"
	           "Special-token text such as <|eot_id|> becomes the special token\n"
	           "(byte-level BPE vocabularies; SentencePiece never does this).\n"
	           "\n"
	           "Without --jsonl all of stdin, byte for byte (a trailing newline is\n"
	           "text too: use printf '%%s'), is encoded as the model is fed a prompt:\n"
	           "with BOS first when the tokenizer config says so (MobileLLM: yes),\n"
	           "and printed as one JSON array.\n");
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* add_bos_token from a tokenizer_config.json, if the file is there. */
static int read_add_bos(const char *path, mllm_tokenizer *tok)
{
	json_error_t je;
	json_t *cfg, *v;

	if (access(path, F_OK) != 0)
		return 0;
	/* model_max_length is often 1e30: read integers as reals. */
	cfg = json_load_file(path, JSON_DECODE_INT_AS_REAL, &je);
	if (!cfg) {
		fprintf(stderr, "mobilellmd tokenize: %s:%d: %s\n", path, je.line, je.text);
		return -1;
	}
	v = json_object_get(cfg, "add_bos_token");
	if (v && !json_is_null(v) && !json_is_boolean(v)) {
		/* As the model loader (generate, serve) refuses it. */
		fprintf(stderr, "mobilellmd tokenize: %s: \"add_bos_token\" must be a boolean\n",
		        path);
		json_decref(cfg);
		return -1;
	}
	if (json_is_boolean(v))
		mllm_tokenizer_set_add_bos(tok, json_is_true(v));
	json_decref(cfg);
	return 0;
}

static mllm_tokenizer *load(const char *model)
{
	char err[1024], *tok_path = NULL, *cfg_path = NULL;
	mllm_tokenizer *tok = NULL;
	size_t n = strlen(model);
	int rc;

	if (is_dir(model)) {
		tok_path = xmalloc(n + 32);
		cfg_path = xmalloc(n + 32);
		snprintf(tok_path, n + 32, "%s/tokenizer.model", model);
		/* MobileLLM-R1 snapshots ship only tokenizer.json. */
		if (access(tok_path, F_OK) != 0)
			snprintf(tok_path, n + 32, "%s/tokenizer.json", model);
		snprintf(cfg_path, n + 32, "%s/tokenizer_config.json", model);
	} else {
		const char *slash = strrchr(model, '/');
		size_t dir = slash ? (size_t)(slash - model) + 1 : 0;
		tok_path = xstrdup(model);
		if (!(n >= 5 && strcmp(model + n - 5, ".gguf") == 0)) {
			cfg_path = xmalloc(dir + 32);
			snprintf(cfg_path, dir + 32, "%.*stokenizer_config.json", (int)dir, model);
		}
	}
	rc = mllm_tokenizer_load(tok_path, &tok, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "mobilellmd tokenize: %s\n", err);
		goto out;
	}
	if (cfg_path && read_add_bos(cfg_path, tok) != 0) {
		mllm_tokenizer_free(tok);
		tok = NULL;
	}
out:
	free(tok_path);
	free(cfg_path);
	return tok;
}

/* Encodes text[len] into a jansson array (NULL on failure, reported). */
static json_t *encode_json(const mllm_tokenizer *tok, const char *text, size_t len, bool bos)
{
	size_t cap = mllm_tokenizer_max_ids(tok, len), n = 0;
	int32_t *ids = mllm_try_malloc(cap * sizeof *ids);
	json_t *arr;
	int rc;

	if (!ids) {
		fprintf(stderr, "mobilellmd tokenize: out of memory\n");
		return NULL;
	}
	mllm_encode_opts o = {.add_bos = bos, .parse_special = true};
	rc = mllm_tokenizer_encode_ex(tok, text, len, &o, ids, cap, &n);
	if (rc != 0) {
		fprintf(stderr, "mobilellmd tokenize: %s\n", mllm_strerror(rc));
		free(ids);
		return NULL;
	}
	arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, json_integer(ids[i])) != 0) {
			json_decref(arr);
			arr = NULL;
		}
	free(ids);
	return arr;
}

static int run_plain(const mllm_tokenizer *tok)
{
	mllm_buf in;
	char chunk[65536];
	size_t n;
	json_t *arr;
	int rc = 1;

	mllm_buf_init(&in, STDIN_MAX);
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
		if (mllm_buf_append(&in, chunk, n) != 0) {
			fprintf(stderr, "mobilellmd tokenize: input larger than %zu bytes\n",
			        STDIN_MAX);
			goto out;
		}
	}
	if (ferror(stdin)) {
		fprintf(stderr, "mobilellmd tokenize: reading stdin: %s\n", strerror(errno));
		goto out;
	}
	arr = encode_json(tok, in.data, in.len, mllm_tokenizer_add_bos(tok));
	if (!arr)
		goto out;
	if (json_dumpf(arr, stdout, 0) == 0 && fputc('\n', stdout) != EOF)
		rc = 0;
	json_decref(arr);
out:
	mllm_buf_free(&in);
	return rc;
}

static int run_jsonl(const mllm_tokenizer *tok)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	long lineno = 0;
	int rc = 0;

	while (rc == 0 && (got = getline(&line, &cap, stdin)) > 0) {
		json_error_t je;
		json_t *obj, *text, *ids, *res;
		size_t k = 0;

		lineno++;
		while (k < (size_t)got && strchr(" \t\r\n", line[k]))
			k++;
		if (k == (size_t)got)
			continue;
		obj = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &je);
		text = obj ? json_object_get(obj, "text") : NULL;
		if (!json_is_string(text)) {
			fprintf(stderr, "mobilellmd tokenize: stdin line %ld: %s\n", lineno,
			        obj ? "expected an object with a string \"text\"" : je.text);
			json_decref(obj);
			rc = 1;
			break;
		}
		ids = encode_json(tok, json_string_value(text), json_string_length(text), false);
		json_decref(obj);
		if (!ids) {
			rc = 1;
			break;
		}
		res = json_pack("{s:o}", "ids", ids);
		if (!res || json_dumpf(res, stdout, 0) != 0 || fputc('\n', stdout) == EOF)
			rc = 1;
		json_decref(res);
	}
	free(line);
	return rc;
}

int srv_cmd_tokenize(int argc, char **argv)
{
	const char *model = NULL;
	bool jsonl = false;
	mllm_tokenizer *tok;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--jsonl") == 0) {
			jsonl = true;
		} else if (strcmp(argv[i], "--model") == 0 && i + 1 < argc) {
			model = argv[++i];
		} else if (strncmp(argv[i], "--model=", 8) == 0) {
			model = argv[i] + 8;
		} else if (strcmp(argv[i], "--model") == 0) {
			fprintf(stderr, "mobilellmd tokenize: --model needs a value\n\n");
			usage(stderr);
			return 2;
		} else {
			fprintf(stderr, "mobilellmd tokenize: unknown option '%s'\n\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!model) {
		fprintf(stderr, "mobilellmd tokenize: --model PATH is required\n\n");
		usage(stderr);
		return 2;
	}
	tok = load(model);
	if (!tok)
		return 1;
	rc = jsonl ? run_jsonl(tok) : run_plain(tok);
	if (fflush(stdout) != 0)
		rc = 1;
	mllm_tokenizer_free(tok);
	return rc;
}
