/* engine.h: runs a loaded workflow on one libuv loop. The engine turns the
 * step tree into tasks (sequences, gathers, fan-outs and leaf attempts),
 * applies pools, timeouts, retries and expectations, stores results where
 * expressions can see them, runs `finally`, and maps the outcome to the exit
 * codes of SPEC §1. Actions plug in through action.h. */
#ifndef PACER_ENGINE_H
#define PACER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "script/luahost.h"
#include "model/workflow.h"

enum pc_outcome { PC_OK, PC_FAILED, PC_ERROR, PC_TIMEOUT, PC_CANCELLED, PC_SKIPPED };
const char *pc_outcome_name(enum pc_outcome o);

/* Exit codes, SPEC §1. */
enum {
  PC_EXIT_OK = 0,
  PC_EXIT_FAILED = 1,
  PC_EXIT_USAGE = 2,
  PC_EXIT_ERROR = 3,
  PC_EXIT_DEADLINE = 4,
  PC_EXIT_LOCKED = 75,
  PC_EXIT_SIGHUP = 129,
  PC_EXIT_SIGINT = 130,
  PC_EXIT_SIGTERM = 143,
};

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
};
void pc_run_opts_init(struct pc_run_opts *o);

/* Checks overrides, then runs the workflow to completion and returns the
 * exit code. Problems with the overrides (bad NAME=VALUE, unreadable vars
 * file) are reported on stderr and return PC_EXIT_USAGE before anything runs. */
int pc_run_workflow(struct pc_workflow *wf, struct pc_lua *h, const struct pc_run_opts *o);

/* For actions. */
struct pc_run;
struct pc_pool;
uv_loop_t *pc_run_loop(struct pc_run *run);
struct pc_lua *pc_run_lua(struct pc_run *run);
const struct pc_workflow *pc_run_workflow_def(struct pc_run *run);
/* The workflow deadline as a pc_mono_ms() time (INFINITY without one),
 * and when the run started (pc_mono_ms()). For guards that must act while
 * the loop is blocked (the Lua CPU guard). */
double pc_run_deadline_ms(struct pc_run *run);
double pc_run_started_ms(struct pc_run *run);
/* The run's pool named `name` (see pool.h), or NULL. */
struct pc_pool *pc_run_pool(struct pc_run *run, const char *name);
/* A run-wide slot per action (e.g. the HTTP session), freed by the action's
 * run_cleanup. */
void **pc_run_action_slot(struct pc_run *run, enum pc_action a);
/* Deferred work: a callback run from the engine's drain loop, never from
 * inside the caller. Lua coroutines are resumed this way (the "one place
 * that resumes Lua"), and anything completing inside a library callback can
 * use it to get back to a clean stack. The struct is embedded by its owner,
 * who must cancel it before freeing it. */
struct pc_deferred {
  struct pc_deferred *prev, *next;
  void (*cb)(struct pc_deferred *d);
  bool queued;
};
void pc_run_defer(struct pc_run *run, struct pc_deferred *d, void (*cb)(struct pc_deferred *d));
void pc_run_defer_cancel(struct pc_run *run, struct pc_deferred *d);

/* The live records of the run (see report.h), or NULL when not recording. */
struct pc_run_report;
const struct pc_run_report *pc_run_records(struct pc_run *run);
/* A display label for a step: its id, else its name, else the action, with
 * the file position: "fetch (wf.yml:12)". Returns a malloc'd string. */
char *pc_step_label(const struct pc_step *s);

#endif
