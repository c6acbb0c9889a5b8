/* engine.h: the engine's task tree, as the run driver (run.c) sees it.
 *
 * The driver owns the loop, the signals, the deadline and the reports; the
 * tree owns the tasks, the deferred queue that drives them, the pools and
 * the records. They share struct pc_run, which the driver embeds in its own
 * state and actions know only as an opaque pointer (model/action.h). The
 * driver starts a root sequence (`steps`, then `finally`), hears when it is
 * over through a callback from the drain, and may cancel or bound it. The
 * run-wide state of actions and services reaches the driver only as run
 * hooks (model/action.h), which the tree keeps (hooks.c). */
#ifndef PACER_ENGINE_H
#define PACER_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <lua.h>
#include <uv.h>

#include "base/trace.h"
#include "core/records.h"
#include "core/summary.h"
#include "model/action.h"
#include "model/outcome.h"

struct task;

/* How many run hooks a run can hold: one per kind of run-wide state
 * (sleeps, the HTTP session, the process set, ...), not per step. A fixed
 * array, because the watchdog's thread reads it while the loop may add to
 * it (see pc__run_hooks_kill_now). */
#define PC_RUN_HOOKS_MAX 16

struct pc_run_state_entry {
  const struct pc_run_hooks *hooks; /* set before the entry is published */
  _Atomic(void *) state;            /* NULL once released */
  struct pc_run *maker;             /* the run that made it: the run its cleanup gets */
};

/* A table of run-wide states (hooks.c): a run's own, or the one the runs
 * on one loop share (struct pc_run.shared). Entries below n are complete
 * (published with release order, for the watchdog's thread). */
struct pc_run_states {
  struct pc_run_state_entry e[PC_RUN_HOOKS_MAX];
  atomic_size_t n;
};

struct pc_redis_bucket;

/* A journal of the run's finished leaves (--journal; runner/journal/ owns
 * it, docs/cron-and-ci.md "Journals and resume"). The engine names each
 * leaf instance by a stable key (core/resume.c: the steps' positions
 * and, for a fan-out item, a digest of the item's value), asks before a
 * leaf runs whether the resumed run finished it ok, and tells when one
 * finishes. Both are called on the loop's thread. */
struct pc_journal_leaf {
  enum pc_outcome outcome;
  int attempts;
  int status;               /* what the last attempt reported for the record */
  const char *method, *url; /* (pc_attempt_report), or NULL */
  const char *json;         /* the result table as JSON, or NULL: none */
  bool restorable;          /* false: it had a result that could not be written down */
};

struct pc_journal_ops {
  /* Whether leaf `key` finished ok in the run being resumed with a result
   * that could be written down; if so, *out is its record (its strings
   * valid until the next call; json "" when it had no result table). */
  bool (*lookup)(void *j, const char *key, struct pc_journal_leaf *out);
  /* Leaf `key` finished: its record. */
  void (*record)(void *j, const char *key, const struct pc_journal_leaf *leaf);
  /* --rerun-failed: whether a leaf the journal does not restore, named by
   * its path as in the JSON report ("steps/each[2]"), is to run; one that
   * is not is skipped. */
  bool (*rerun)(void *j, const char *path);
};

struct pc_run {
  /* borrowed: the driver's loop, which the runs of one `pacer run` with
   * several files share (run.c, "Several files") */
  uv_loop_t *loop;
  struct pc_lua *lua; /* borrowed */
  lua_State *L;       /* borrowed: the state of `lua` */
  const struct pc_workflow *wf; /* borrowed */
  double started_mono; /* the run's start on the monotonic clock... */
  double started_wall; /* ...and the one reading of the wall clock, taken with it */
  double timeout_ms;   /* the workflow deadline, counted from started_mono; < 0: none */
  struct pc_pool *pools; /* owned: one per pool of the workflow (pc__engine_init) */
  size_t npools;
  /* The run hooks with their states (pc_run_state), in the order they were
   * made. A hook marked `shared` keeps its state in *shared instead when
   * the run has one: the table of every run on the same loop (several
   * files in one `pacer run`; borrowed from the driver), so that one HTTP
   * session serves them all. */
  struct pc_run_states states;
  struct pc_run_states *shared;
  /* --shard K/N (docs/shards.md): the outermost fan-out on each path runs
   * items K, K+N, K+2N...; 0/0 when the run is not sharded. */
  int shard_index, shard_count;
  /* owned: the shared budget of each pool with `shared:` (NULL for the
   * others), parallel to pools; closed before them */
  struct pc_redis_bucket **buckets;

  /* The deferred queue (defer.c): struct pc_deferred entries, the tasks'
   * events among them, run by the drain, an idle handle active while the
   * queue is not empty. */
  struct pc_queue deferred;
  uv_idle_t drain;

  /* Records for reports and progress (recording.c); rep is NULL when the run
   * does not record. */
  struct pc_run_report *rep; /* borrowed from the driver */
  size_t rec_cap;
  size_t att_cap; /* room in rep->attempts */
  /* The run's trace context (base/trace.h), borrowed from the driver: the
   * trace id and the span ids attempts pass on. NULL: none (unit tests). */
  struct pc_trace *trace;
  int *free_lanes; /* a stack of lanes released by finished leaves */
  size_t nfree_lanes;

  /* Sub-groups (sub.c) not over yet, and what the driver asks to be
   * called when the last one is over (set while it waits for them). */
  size_t nsubs;
  void (*subs_over)(struct pc_run *run);
  /* The journal (--journal), or NULL: set by the driver before the roots
   * start. */
  const struct pc_journal_ops *journal_ops;
  void *journal;

  /* The end-of-run summary: every run keeps it (a few counters, the first
   * failures), whether it records or not. */
  struct pc_summary summary;
  /* The run's id (borrowed from the driver; NULL: none): the drain gives
   * it to the log for what it runs (base/log.h, pc_log_push_run_id), so
   * that with several runs on one loop a JSON line says whose it is. */
  const char *run_id;
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

/* ------------------------------------------------------------ run hooks */

/* Calls every registered state's kill_now (a second signal, or the
 * watchdog's thread: see struct pc_run_hooks for the contract): the run's
 * own; pc__run_states_kill_now for a shared table. */
void pc__run_hooks_kill_now(struct pc_run *run);
void pc__run_states_kill_now(struct pc_run_states *states);
/* Calls every registered state's cleanup, in the order they were made:
 * the run's own (a shared table's, pc__run_states_cleanup, once the last
 * run on the loop is over); run the loop afterwards. */
void pc__run_hooks_cleanup(struct pc_run *run);
void pc__run_states_cleanup(struct pc_run_states *states);
/* Which statistics pc__run_hooks_stats takes: all of them (a run alone),
 * or, for a run that shares a table with others, those of its own states
 * (its report's) or those of the shared ones (the whole `pacer run`'s). */
enum pc__stats_of { PC_STATS_ALL, PC_STATS_OWN, PC_STATS_SHARED };
/* The statistics sections for the reports, one per run hook with stats
 * among `declared` (those the actions declare: their sections are there
 * even when no step made the state) and those registered, taken before
 * pc__run_hooks_cleanup. */
void pc__run_hooks_stats(struct pc_run *run, struct pc_run_report *rep,
                         const struct pc_run_hooks *const *declared, size_t ndeclared,
                         enum pc__stats_of which);
/* pc__run_hooks_stats with the hooks of every action of the workflow's
 * table (hooks.c). */
void pc__actions_stats(struct pc_run *run, struct pc_run_report *rep, enum pc__stats_of which);

#endif
