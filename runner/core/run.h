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

#endif
