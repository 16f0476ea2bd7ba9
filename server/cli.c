/*
 * cli.c — what the model-running subcommands (generate, perplexity) parse
 * alike: the model, threads, weight conversion, KV type, log level and
 * --json, with one set of bounds and messages.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmds.h"
#include "log.h"

int srv_parse_dtype(const char *s, mllm_dtype *out)
{
	static const struct {
		const char *name;
		mllm_dtype t;
	} map[] = {{"f32", MLLM_DTYPE_F32},
	           {"f16", MLLM_DTYPE_F16},
	           {"bf16", MLLM_DTYPE_BF16},
	           {"q8_0", MLLM_DTYPE_Q8_0},
	           {"q4_0", MLLM_DTYPE_Q4_0}};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (strcasecmp(s, map[i].name) == 0) {
			*out = map[i].t;
			return 0;
		}
	return -1;
}

int srv_cli_opt(srv_cli_opts *o, const char *cmd, const char *a, const char *v)
{
	char *end = NULL;
	if (strcmp(a, "--json") == 0) {
		o->json = true;
		return 1;
	}
	if (strcmp(a, "--act16") == 0) {
		o->mp.act16 = true;
		return 1;
	}
	if (strcmp(a, "--kv-f16") == 0 || strcmp(a, "--kv-f32") == 0 || strcmp(a, "--kv-q8") == 0) {
		if (o->kv_flag && strcmp(o->kv_flag, a) != 0) {
			fprintf(stderr, "%s: %s and %s: give one KV type\n", cmd, o->kv_flag, a);
			return -1;
		}
		o->kv_flag = a;
		o->kv_f16 = strcmp(a, "--kv-f16") == 0;
		o->kv_q8 = strcmp(a, "--kv-q8") == 0;
		return 1;
	}
	if (strcmp(a, "--model") != 0 && strcmp(a, "--threads") != 0 &&
	    strcmp(a, "--convert") != 0 && strcmp(a, "--log-level") != 0)
		return 0;
	if (!v || strncmp(v, "--", 2) == 0) {
		fprintf(stderr, "%s: %s needs a value\n", cmd, a);
		return -1;
	}
	errno = 0;
	if (strcmp(a, "--model") == 0) {
		o->model_path = v;
	} else if (strcmp(a, "--threads") == 0) {
		o->threads = strtol(v, &end, 10);
		if (end == v || *end || errno || o->threads < 0 || o->threads > 256)
			goto bad_value;
	} else if (strcmp(a, "--convert") == 0) {
		if (srv_parse_dtype(v, &o->mp.convert_to))
			goto bad_value;
	} else {
		o->log_level = v;
	}
	return 2;
bad_value:
	fprintf(stderr, "%s: bad value for %s: '%s'\n", cmd, a, v);
	return -1;
}

int srv_cli_log_open(const srv_cli_opts *o, const char *cmd)
{
	int lvl = srv_log_level_parse(o->log_level);
	if (lvl < 0 || srv_log_open(lvl, NULL) != 0) {
		fprintf(stderr, "%s: bad --log-level '%s'\n", cmd, o->log_level);
		return -1;
	}
	return 0;
}
