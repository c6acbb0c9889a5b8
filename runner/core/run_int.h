/* run_int.h: what the run driver (run.c) and the group of several files
 * (run_many.c) share: the driver of one run and the steps of its life
 * (made, started, its steps over, concluded, its closing line, freed),
 * which a run alone takes one after the other on its own loop and a group
 * takes as its files start and end on one loop; and the group's two
 * entries the driver calls. Not for any other file. */
#ifndef PC_CORE_RUN_INT_H
#define PC_CORE_RUN_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "base/outfile.h"
#include "base/trace.h"
#include "core/engine.h"
#include "report/report.h"

struct group;
struct pc_run_opts; /* core/run.h, which this header does not include (no circle) */
struct pc_watchdog;
struct pc_progress;
struct pc_export;

/* The driver's state. It embeds the tree's (struct pc_run, which actions
 * see) and gets back to itself from it with PC_CONTAINER_OF. */
struct driver {
  struct pc_run run;
  const struct pc_run_opts *opts; /* borrowed */
  int root_scope;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t deadline;
  struct pc_watchdog *watchdog;
  struct pc_progress *progress; /* live display, or NULL */
  const char **written;         /* the reports written at the end ("FORMAT:PATH", borrowed) */
  size_t nwritten;
  struct task *main, *fin;      /* the root sequences while they run */
  enum pc_outcome main_outcome, fin_outcome;
  bool fin_ran;
  int signal; /* first signal received, 0 if none */
  bool deadline_hit;
  bool finished; /* `steps` and `finally` are over */
  char *cause;   /* the label of the run's root cause, or NULL (owned) */
  char run_id[40];
  struct pc_run_report rep; /* the records (when recording) and the run's end */
  struct pc_outfile *outs;  /* one per --report, opened before anything runs */
  struct pc_trace trace;    /* the run's trace context (TRACEPARENT, or its own) */
  struct pc_export *exp;    /* pings, push, OpenTelemetry; NULL: none */
  bool exporting;           /* the end's exports are being waited for */
  uv_loop_t own_loop;       /* the loop of a run alone (pc_run_workflow) */
  /* A run among several on one loop (pc_run_many), or NULL: the group
   * owns the signals, the watchdog and the reports, and hears of the
   * run's end through `over` (a clean stack, not the drain's). */
  struct group *group;
  size_t index;   /* in the group's files */
  uv_timer_t over;
  int code;       /* the exit code, once concluded */
};

/* run.c */
void pc__run_kill_children_now(void *data);
const char *pc__run_signal_name(int signum);
int pc__run_signal_exit(int signum);
void pc__driver_signal(struct driver *d, int signum);
void pc__run_close_signals(uv_signal_t *sigint, uv_signal_t *sigterm, uv_signal_t *sighup);
int pc__run_exit_code(const struct driver *d);
struct pc_outfile *pc__run_open_reports(const char *const *reports, size_t n);
int pc__run_write_reports(const char *const *reports, size_t nreports, struct pc_outfile *outs, const struct pc_run_report *const *reps, size_t n, const struct pc_runs_info *info, int code, const char ***written, size_t *nwritten);
struct driver *pc__driver_new(struct pc_workflow *wf, struct pc_lua *h, const struct pc_run_opts *o, struct group *g, size_t pos, int *code);
void pc__driver_start(struct driver *d, uv_loop_t *loop, struct pc_run_states *shared);
void pc__driver_steps_over(struct driver *d);
int pc__driver_conclude(struct driver *d);
void pc__driver_closing(struct driver *d, int code);
void pc__driver_free(struct driver *d);

/* run_many.c: a run of the group is over (its `over` timer); the group's
 * watchdog deadline is the earliest of its running files'. */
void pc__group_run_over(struct driver *d);
void pc__group_watch_deadline(struct group *g);

#endif
