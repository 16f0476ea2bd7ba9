/*
 * main.c — the mobilellmd binary: dispatches to a subcommand. Each subcommand
 * lives in its own cmd_*.c (server/cmds.h); this file only wires them up and
 * is the one place that decides the process's exit code.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "mllm.h"

typedef struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
} command;

static const command commands[] = {
    {"serve", srv_cmd_serve, "run the OpenAI-compatible HTTP daemon"},
    {"generate", srv_cmd_generate, "generate text from a model (CLI)"},
    {"tokenize", srv_cmd_tokenize, "print the token ids of text on stdin"},
    {"health", srv_cmd_health, "check a running daemon's readiness (exit 0/1)"},
    {"render-template", srv_cmd_render_template, "render a Jinja chat template (JSON on stdin)"},
    {"perplexity", srv_cmd_perplexity, "score a text: perplexity, KL divergence from a reference"},
};

static void usage(FILE *f)
{
	fprintf(f, "usage: mobilellmd <command> [options]\n"
	           "       mobilellmd --help | --version\n\n"
	           "commands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'mobilellmd <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
	/* A peer that closes its socket must not kill the daemon (D4). */
	signal(SIGPIPE, SIG_IGN);
	/* Nor a stray user signal (their default action ends the process;
	 * this daemon gives them no meaning). */
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);

	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
		printf("mobilellmd %s\n", MLLM_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "mobilellmd: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
