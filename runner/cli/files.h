/* files.h: the workflow files of `pacer run`, their exit codes taken
 * together, and --lock (files.c). */
#ifndef PACER_CLI_FILES_H
#define PACER_CLI_FILES_H

#include <stddef.h>

#include "core/run.h"
#include "model/workflow.h"

struct pc_lua;

/* Takes an exclusive, non-blocking flock on `path` (created if needed).
 * Returns the descriptor, -EWOULDBLOCK if another run holds it, or
 * another negative errno (said on stderr). */
int pc_cli_take_lock(const char *path);
/* Appends the files a `run` argument names to *files (malloc'd paths):
 * itself, or for a directory its *.yml and *.yaml files (not recursive),
 * sorted. Returns 0, or -1 with a message. */
int pc_cli_add_run_files(const char *arg, char ***files, size_t *n, size_t *cap);

/* --jobs N: how many workflow files run at once (1 to PC_CLI_JOBS_MAX).
 * Returns 0, or -1 having said what is wrong. */
#define PC_CLI_JOBS_MAX 256
int pc_cli_parse_jobs(const char *v, int *jobs);

/* With several files, each --report covers them all: refuses (-1, said
 * on stderr) a format that cannot, and prometheus when two files have one
 * workflow name (their series would collide). */
int pc_cli_check_runs_reports(const char *const *reports, size_t nreports,
                              struct pc_workflow *const *wfs, size_t nfiles);

/* The files of one `pacer run` share one HTTP session, whose connection
 * limits (defaults.http.max_connections, max_connections_per_host) are
 * those of the first file that makes a request: when the files set them
 * differently, one warning per setting names two files that differ and
 * their values (at load, before anything runs). */
void pc_cli_warn_shared_limits(struct pc_workflow *const *wfs, size_t nfiles);

/* The workflow files of a `pacer run`, loaded (borrowed). */
struct pc_cli_files {
  char *const *files; /* as named ("-": stdin) */
  size_t n;
  struct pc_workflow *const *wfs;
  struct pc_lua *const *hosts;
  char *const *texts; /* the bytes each was loaded from (NULL: not read) */
  const size_t *text_lens;
};
/* Runs several files (pc_run_many) with the options `base` (its reports
 * cover them all), up to `jobs` at once, then prints one summary and the
 * files that did not exit 0. Returns the exit code of them all. */
int pc_cli_run_many(const struct pc_cli_files *cf, const struct pc_run_opts *base, int jobs,
                    int shard_k, int shard_n);

#endif
