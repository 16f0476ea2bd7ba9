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
/* "f32", "f16", "bf16", "q8_0", "q4_0" (any case) into *out; -1 otherwise
 * (cmd_generate.c; --convert of generate and perplexity). */
int srv_parse_dtype(const char *s, mllm_dtype *out);

#endif
