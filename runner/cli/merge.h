/* merge.h: the `pacer merge` command (merge.c). */
#ifndef PACER_CLI_MERGE_H
#define PACER_CLI_MERGE_H

/* argv holds what follows "merge". Returns the exit code. */
int pc_cli_merge(int argc, char **argv);

#endif
