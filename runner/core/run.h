/* run.h: runs a loaded workflow to completion: the run driver's interface,
 * for the command line and the tests. The driver (run.c) evaluates vars,
 * watches signals and the workflow deadline, runs `steps` and then
 * `finally` through the engine's task tree (engine.h), writes the reports,
 * tears everything down in order, and maps the outcome to the exit codes
 * of SPEC §1 (model/outcome.h). */
#ifndef PACER_RUN_H
#define PACER_RUN_H

#include <stdbool.h>
#include <stddef.h>

#include "model/outcome.h"
#include "model/workflow.h"

struct pc_journal;
struct pc_lua;
struct pc_shard_id;

struct pc_run_opts {
  double timeout_ms;            /* < 0: the file's `timeout` */
  const char *const *vars;      /* "NAME=VALUE" overrides (VALUE is a YAML scalar) */
  size_t nvars;
  const char *vars_file;        /* YAML map merged over `vars`, or NULL */
  double finally_grace_ms;      /* bound on `finally` after a deadline or signal */
  const char *const *reports;   /* "FORMAT:PATH" (checked by the CLI), written at the end */
  size_t nreports;
  bool record;                  /* keep step records even without reports (progress) */
  bool progress;                /* show the live progress display (progress.h) */
  const char *push_url;         /* --push: a Pushgateway to push the metrics to, or NULL */
  const char *ping_url;         /* --ping: a healthchecks.io-style check, or NULL */
  const struct pc_shard_id *shard; /* the run's shard identity for the reports
                                      (core/records.h), borrowed; or NULL */
  /* --journal (journal/journal.h), opened and closed by the caller;
   * borrowed, or NULL. */
  struct pc_journal *journal;
  /* The run history to append the run to (journal/journal.h), or NULL
   * (--no-history), and the workflow's name there (its real path). */
  const char *history;
  const char *history_workflow;
  /* Several files in one `pacer run`: the run adds its summary (summary.h)
   * here instead of printing it, and the caller prints one for all. NULL:
   * the run prints its own. */
  struct pc_summary *summary;
};
void pc_run_opts_init(struct pc_run_opts *o);

/* Checks overrides, then runs the workflow to completion and returns the
 * exit code. Problems with the overrides (bad NAME=VALUE, unreadable vars
 * file) are reported on stderr and return PC_EXIT_USAGE before anything runs.
 * A run that ran leaves SIGINT, SIGTERM and SIGHUP ignored when it returns:
 * once its reports are written a signal changes nothing, and the caller is
 * about to exit with the code (a caller that runs again and wants SIGHUP
 * watched restores its default action first). */
int pc_run_workflow(struct pc_workflow *wf, struct pc_lua *h, const struct pc_run_opts *o);

/* Several workflow files in one `pacer run` (docs/reference.md, "run"):
 * each is a run of its own (its vars, `--timeout` deadline, pools,
 * `finally`, closing line), on one loop, up to `jobs` at once, started in
 * order. What actions keep run-wide and mark shared (the HTTP session)
 * serves them all; the reports are one set for all of them. */
struct pc_run_file {
  struct pc_workflow *wf;  /* borrowed */
  struct pc_lua *h;        /* borrowed: the file's own Lua host */
  struct pc_run_opts opts; /* its own options; no reports (the set is below) */
  int code;                /* out: its exit code (PC_EXIT_USAGE: bad vars) */
  bool ran;                /* out: it was started (a signal stops the rest) */
};
struct pc_run_many_opts {
  int jobs;                   /* >= 1 */
  const char *const *reports; /* "FORMAT:PATH", each covering every file */
  size_t nreports;
  /* out: the reports written (malloc'd; the strings are `reports`') */
  const char **written;
  size_t nwritten;
};
/* Runs the files and returns the exit code of them all: the most severe
 * by SPEC's precedence (pc_exit_rank), or an error if a report could not
 * be written. Problems opening the reports: PC_EXIT_USAGE, nothing run.
 * SIGINT, SIGTERM and SIGHUP are left ignored, as by pc_run_workflow. */
int pc_run_many(struct pc_run_file *files, size_t n, struct pc_run_many_opts *mo);
/* The rank of an exit code in SPEC's precedence (higher wins): signals 7,
 * the deadline 6, an error 5, a failure 4, a bad file 3, the lock 2, ok 0. */
int pc_exit_rank(int code);

#endif
