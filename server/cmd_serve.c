/*
 * cmd_serve.c — the 'serve' subcommand (placeholder until its module lands).
 */
#include <stdio.h>

#include "cmds.h"

int srv_cmd_serve(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "mobilellmd serve: not built yet\n");
	return 1;
}
