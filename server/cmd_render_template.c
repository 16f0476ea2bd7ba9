/*
 * cmd_render_template.c — `mobilellmd render-template`: renders a chat
 * template file with a JSON context from stdin, exactly as the daemon
 * renders a model's template, so a template can be checked by hand and the
 * renderer can be compared with transformers' apply_chat_template in tests.
 * Exit codes: 0 rendered, 3 the template raised (message on stderr),
 * 2 usage, unreadable or invalid input (no "messages", or an empty one, as
 * transformers refuses before rendering) or a template that does not parse.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "base.h"
#include "cmds.h"
#include "jinja.h"

#define STDIN_MAX    ((size_t)64 << 20)
#define TEMPLATE_MAX ((size_t)4 << 20)

static void usage(FILE *f)
{
	fprintf(f, "usage: mobilellmd render-template --template FILE.jinja [--special FILE.json]\n"
	           "\n"
	           "Renders a Jinja chat template the way the daemon (and transformers'\n"
	           "apply_chat_template) does, and writes exactly the text to stdout.\n"
	           "\n"
	           "  --template FILE  the template text (a chat_template)\n"
	           "  --special FILE   JSON with \"bos_token\", \"eos_token\" and optionally\n"
	           "                   \"special_tokens_map\" (more token variables)\n"
	           "\n"
	           "stdin: a JSON object: \"messages\" (required, not empty), \"tools\",\n"
	           "\"add_generation_prompt\" (default false) and any other keys, which\n"
	           "the template sees as variables (e.g. \"enable_thinking\").\n"
	           "Exit: 0 rendered; 3 the template raised (message on stderr);\n"
	           "2 usage error, unreadable or invalid input, or a template that does\n"
	           "not parse.\n");
}

static char *read_stream(FILE *f, size_t max, size_t *len)
{
	mllm_buf b;
	char chunk[65536];
	size_t n;
	mllm_buf_init(&b, max);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (mllm_buf_append(&b, chunk, n) != 0) {
			mllm_buf_free(&b);
			return NULL;
		}
	}
	if (ferror(f)) {
		mllm_buf_free(&b);
		return NULL;
	}
	if (!b.data && mllm_buf_append(&b, "", 0) != 0)
		return NULL;
	return mllm_buf_take(&b, len);
}

static char *read_path(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *s;
	if (!f)
		return NULL;
	s = read_stream(f, max, len);
	fclose(f);
	return s;
}

/* bos_token, eos_token and special_tokens_map's entries as variables. */
static int add_special(json_t *vars, const char *path)
{
	json_error_t je;
	json_t *sp = json_load_file(path, 0, &je), *map, *v;
	const char *k;
	if (!sp || !json_is_object(sp)) {
		fprintf(stderr, "mobilellmd render-template: %s: %s\n", path,
		        sp ? "not a JSON object" : je.text);
		json_decref(sp);
		return -1;
	}
	map = json_object_get(sp, "special_tokens_map");
	if (json_is_object(map)) {
		json_object_foreach(map, k, v)
		{
			if (json_is_string(v))
				json_object_set(vars, k, v);
		}
	}
	json_object_foreach(sp, k, v)
	{
		if (!strcmp(k, "bos_token") || !strcmp(k, "eos_token"))
			json_object_set(vars, k, v);
	}
	json_decref(sp);
	return 0;
}

int srv_cmd_render_template(int argc, char **argv)
{
	const char *tpath = NULL, *spath = NULL;
	char err[1024], *src = NULL, *in = NULL;
	size_t src_len = 0, in_len = 0;
	api_jinja *t = NULL;
	json_t *ctx = NULL, *vars = NULL;
	json_error_t je;
	mllm_buf out;
	int rc, code = 2;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--template") && i + 1 < argc) {
			tpath = argv[++i];
		} else if (!strcmp(argv[i], "--special") && i + 1 < argc) {
			spath = argv[++i];
		} else if (!strcmp(argv[i], "--template") || !strcmp(argv[i], "--special")) {
			fprintf(stderr, "mobilellmd render-template: %s needs a value\n\n",
			        argv[i]);
			usage(stderr);
			return 2;
		} else {
			fprintf(stderr, "mobilellmd render-template: unknown argument '%s'\n\n",
			        argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (!tpath) {
		usage(stderr);
		return 2;
	}
	src = read_path(tpath, TEMPLATE_MAX, &src_len);
	if (!src) {
		fprintf(stderr, "mobilellmd render-template: cannot read %s (or over %zu bytes)\n",
		        tpath, TEMPLATE_MAX);
		goto done;
	}
	if (api_jinja_parse(src, src_len, &t, err, sizeof err) != 0) {
		fprintf(stderr, "mobilellmd render-template: %s: %s\n", tpath, err);
		goto done;
	}
	in = read_stream(stdin, STDIN_MAX, &in_len);
	if (!in) {
		fprintf(stderr,
		        "mobilellmd render-template: cannot read stdin (or over %zu bytes)\n",
		        STDIN_MAX);
		goto done;
	}
	ctx = json_loadb(in, in_len, 0, &je);
	if (!ctx || !json_is_object(ctx) || !json_is_array(json_object_get(ctx, "messages"))) {
		fprintf(stderr, "mobilellmd render-template: stdin: %s\n",
		        ctx ? "expected a JSON object with a \"messages\" array" : je.text);
		goto done;
	}
	vars = json_pack("{snsnsb}", "tools", "documents", "add_generation_prompt", 0);
	MLLM_ASSERT(vars);
	if (spath && add_special(vars, spath) != 0)
		goto done;
	json_object_update(vars, ctx);
	/* transformers refuses an empty conversation before rendering: the
	 * input is bad (2); the template never ran, so it did not raise (3). */
	if (json_array_size(json_object_get(vars, "messages")) == 0) {
		fprintf(stderr, "mobilellmd render-template: stdin: \"messages\" is empty\n");
		goto done;
	}
	mllm_buf_init(&out, (size_t)64 << 20);
	rc = api_jinja_render(t, vars, NULL, &out, err, sizeof err);
	if (rc != 0) {
		fprintf(stderr, "mobilellmd render-template: %s\n", err);
		code = 3;
	} else if (out.len && fwrite(out.data, 1, out.len, stdout) != out.len) {
		code = 1;
	} else {
		code = fflush(stdout) == 0 ? 0 : 1;
	}
	mllm_buf_free(&out);
done:
	json_decref(vars);
	json_decref(ctx);
	api_jinja_free(t);
	free(in);
	free(src);
	return code;
}
