/* help.h: the help texts of the command line (help.c): `pacer CMD --help`
 * (or -h, or `pacer help CMD`) prints a command's on stdout and exits 0; a
 * usage error prints the overview on stderr. */
#ifndef PACER_CLI_HELP_H
#define PACER_CLI_HELP_H

#include <stdbool.h>
#include <stdio.h>

extern const char pc_cli_overview_help[];
/* Prints the overview. */
void pc_cli_usage(FILE *f);
/* The help of `cmd`, or NULL for an unknown command. */
const char *pc_cli_help_of(const char *cmd);
/* Whether the arguments of a command ask for its help (--help, -h). */
bool pc_cli_wants_help(int argc, char **argv);

#endif
