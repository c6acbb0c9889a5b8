/* engine.h: the engine's task tree, as the run driver (run.c) sees it.
 *
 * The driver owns the loop, the signals, the deadline and the reports; the
 * tree owns the tasks, the deferred queue that drives them, the pools and
 * the records. They share struct pc_run, which the driver embeds in its own
 * state and actions know only as an opaque pointer (model/action.h). The
 * driver starts a root sequence (`steps`, then `finally`), hears when it is
 * over through a callback from the drain, and may cancel or bound it. The
 * functions that still name actions (their run-wide hooks) are marked as
 * such: they and the rest of actions.c are the engine's only contact with
 * particular actions. */
#ifndef PACER_ENGINE_H
#define PACER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>
#include <uv.h>

#include "core/records.h"
#include "core/summary.h"
#include "model/action.h"
#include "model/outcome.h"

struct task;

/* Room for one run-wide slot per action (actions.c checks it suffices). */
#define PC_RUN_SLOTS 16

struct pc_run {
  uv_loop_t loop;     /* initialised and closed by the driver */
  struct pc_lua *lua; /* borrowed */
  lua_State *L;       /* borrowed: the state of `lua` */
  const struct pc_workflow *wf; /* borrowed */
  double started_mono; /* the run's start on the monotonic clock... */
  double started_wall; /* ...and the one reading of the wall clock, taken with it */
  double timeout_ms;   /* the workflow deadline, counted from started_mono; < 0: none */
  struct pc_pool *pools; /* owned: one per pool of the workflow (pc__engine_init) */
  size_t npools;
  void *action_slots[PC_RUN_SLOTS]; /* the actions' run-wide state (pc_run_action_slot) */

  /* The deferred queue (defer.c): struct pc_deferred entries, the tasks'
   * events among them, run by the drain, an idle handle active while the
   * queue is not empty. */
  struct pc_queue deferred;
  uv_idle_t drain;

  /* Records for reports and progress (records.c); rep is NULL when the run
   * does not record. */
  struct pc_run_report *rep; /* borrowed from the driver */
  size_t rec_cap;
  int *free_lanes; /* a stack of lanes released by finished leaves */
  size_t nfree_lanes;

  /* The end-of-run summary: every run keeps it (a few counters, the first
   * failures), whether it records or not. */
  struct pc_summary summary;
};

/* Sets up the tree's part of a run whose fields above the queues are set
 * and whose loop is initialised: the drain and the pools. Never fails. */
void pc__engine_init(struct pc_run *run);
/* Closes the tree's handles (the drain, the pools' timers) once the roots
 * are over; run the loop afterwards so the closes complete. */
void pc__engine_close(struct pc_run *run);
/* Frees what the tree allocated, once the loop has run the closes. */
void pc__engine_free(struct pc_run *run);

/* ------------------------------------------------------- root sequences */

/* Called from the drain when a root sequence is over; the driver reads its
 * outcome and frees it with pc__root_free. */
typedef void (*pc__root_done_cb)(struct pc_run *run, struct task *root);

/* Starts a root sequence named `name` ("steps" or "finally") over `steps`
 * in the scope `scope_ref` (borrowed), bounded by timeout_ms (< 0: none). */
struct task *pc__root_start(struct pc_run *run, const char *name, struct pc_step *const *steps,
                            size_t nsteps, int scope_ref, double timeout_ms,
                            pc__root_done_cb done);
enum pc_outcome pc__root_outcome(const struct task *root);
/* The root cause of a failed root: the label of the step whose own failure
 * came first (NULL if none), and its record in *rec (PC_NO_RECORD if none). */
const char *pc__root_cause(const struct task *root, size_t *rec);
void pc__root_free(struct task *root);
/* Cancels the root and everything running below it (a signal, the
 * deadline); `done` follows once the last task has reported. */
void pc__root_cancel(struct task *root, enum pc_outcome as, const char *msg);
/* Bounds a root that has no timeout and is not cancelled to `ms` from now
 * (`finally` when a signal or the deadline comes while it runs). */
void pc__root_bound(struct task *root, double ms);

/* ------------------------------------ the run-wide hooks of the actions */

/* Stops what would outlive an immediate exit (process groups): no waiting,
 * no allocation (a second signal, the watchdog thread). */
void pc__actions_kill_now(struct pc_run *run);
/* Tears down the actions' run-wide state (the HTTP session, the process
 * set); run the loop afterwards. */
void pc__actions_cleanup(struct pc_run *run);
/* The actions' statistics for the reports (the HTTP session's), taken
 * before pc__actions_cleanup. */
void pc__actions_stats(struct pc_run *run, struct pc_run_report *rep);

#endif
