/*
 * cmd_tokenize.c — the 'tokenize' subcommand (placeholder until its module lands).
 */
#include <stdio.h>

#include "cmds.h"

int srv_cmd_tokenize(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "mobilellmd tokenize: not built yet\n");
	return 1;
}
