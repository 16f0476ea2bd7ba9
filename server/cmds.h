/*
 * cmds.h — the subcommands of the mobilellmd binary. main.c only dispatches;
 * each subcommand lives in its own cmd_*.c and returns the process exit code
 * (0 ok, 1 runtime failure, 2 usage error; render-template: 3 when the
 * template raises). argv[0] is the subcommand name.
 */
#ifndef SRV_CMDS_H
#define SRV_CMDS_H

int srv_cmd_serve(int argc, char **argv);
int srv_cmd_generate(int argc, char **argv);
int srv_cmd_tokenize(int argc, char **argv);
int srv_cmd_health(int argc, char **argv);
int srv_cmd_render_template(int argc, char **argv);
int srv_cmd_perplexity(int argc, char **argv);

#include "mllm.h"

/* ---- Options shared by generate and perplexity (cli.c) ------------------ */

/* "f32", "f16", "bf16", "q8_0", "q4_0" (any case) into *out; -1 otherwise. */
int srv_parse_dtype(const char *s, mllm_dtype *out);

typedef struct {
	const char *model_path; /* --model */
	const char *log_level;  /* --log-level, "warn" */
	long threads;           /* --threads 0..256, 0 = physical cores */
	bool json;              /* --json */
	bool kv_f16;            /* --kv-f16 (default, as the daemon) / --kv-f32 */
	bool kv_q8;             /* --kv-q8: int8 K/V with scales (overrides kv_f16) */
	const char *kv_flag;    /* the --kv-* flag given, if any (one at most) */
	mllm_model_params mp;   /* --convert TYPE into mp.convert_to */
} srv_cli_opts;

#define SRV_CLI_OPTS_DEFAULT                                                                       \
	((srv_cli_opts){.log_level = "warn", .kv_f16 = true, .mp = MLLM_MODEL_PARAMS_DEFAULT})

/* a is an argument, v the one after it (NULL at the end). Returns 1 when a
 * is a shared flag, 2 when a shared option took v as its value, 0 when a is
 * not a shared option, -1 when its value is missing or bad (said on
 * stderr, prefixed with cmd). */
int srv_cli_opt(srv_cli_opts *o, const char *cmd, const char *a, const char *v);
/* Opens the log at o->log_level; -1 (said on stderr) when it is unknown. */
int srv_cli_log_open(const srv_cli_opts *o, const char *cmd);

#endif
