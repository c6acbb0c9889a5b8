/* files.h: the workflow files of `pacer run`, their exit codes taken
 * together, and --lock (files.c). */
#ifndef PACER_CLI_FILES_H
#define PACER_CLI_FILES_H

#include <stddef.h>

/* Takes an exclusive, non-blocking flock on `path` (created if needed).
 * Returns the descriptor, -EWOULDBLOCK if another run holds it, or
 * another negative errno (said on stderr). */
int pc_cli_take_lock(const char *path);
/* The rank of an exit code in SPEC's precedence (higher wins): signals 7,
 * the deadline, an error, a failure, a bad file, the lock, ok 0. */
int pc_cli_exit_rank(int code);
/* Appends the files a `run` argument names to *files (malloc'd paths):
 * itself, or for a directory its *.yml and *.yaml files (not recursive),
 * sorted. Returns 0, or -1 with a message. */
int pc_cli_add_run_files(const char *arg, char ***files, size_t *n, size_t *cap);

#endif
