/*
 * cmd_generate.c — the 'generate' subcommand (placeholder until its module lands).
 */
#include <stdio.h>

#include "cmds.h"

int srv_cmd_generate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "mobilellmd generate: not built yet\n");
	return 1;
}
