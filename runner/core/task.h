/* task.h: what the files of the engine share, and nothing else includes:
 * the run's state (struct pc_run), a task (struct task), and the functions
 * one file of the engine calls in another. Actions see the engine through
 * model/action.h and engine.h; the command line through engine.h. See
 * docs/engine.md for how the pieces fit. */
#ifndef PACER_CORE_TASK_H
#define PACER_CORE_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>
#include <uv.h>

#include "base/pool.h"
#include "core/engine.h"
#include "core/watchdog.h"
#include "model/action.h"
#include "report/progress.h"
#include "report/report.h"

/* ================================================================ types */

enum task_kind { TK_LEAF, TK_SEQ, TK_GATHER, TK_FOREACH };
enum task_state { TS_NEW, TS_WAIT_POOL, TS_RUNNING, TS_BACKOFF, TS_GROUP, TS_DONE };

enum {
  EV_GRANTED = 1u,      /* a queued pool permit was granted */
  EV_ATTEMPT_DONE = 2u, /* the action called pc_attempt_done */
  EV_NOTIFY = 4u,       /* the task finished; tell the parent */
};

struct task {
  struct pc_run *run;
  struct task *parent;             /* NULL for the run's two root sequences */
  struct task *prev, *next;        /* links in the parent's running list */
  struct task *rq_next;            /* link in the ready queue */
  const struct pc_step *step;      /* borrowed; NULL for a root sequence */
  /* leaf: attempt deadline or backoff; group: its timeout. Allocated on
   * first use: most tasks never need one. */
  uv_timer_t *timer;
  char *error;
  char *cancel_msg;
  /* When the task started, on the monotonic clock (a leaf: when it was
   * reached; it may then wait for pool permits before it runs). Wall-clock
   * times are derived from it and the run's one reading of the wall clock,
   * so a clock step during the run cannot move or reorder anything. */
  double started_mono;
  size_t item; /* instance: 1-based item index */
  size_t rec;  /* record index, PC_NO_RECORD when not recording */
  int scope_ref;  /* scope for expressions */
  int result_ref; /* the finished result table, kept for the parent */
  int lane;       /* leaves: lane held while running, -1 otherwise */
  unsigned events;
  unsigned char kind;      /* enum task_kind */
  unsigned char state;     /* enum task_state */
  unsigned char outcome;   /* enum pc_outcome */
  unsigned char cancel_as; /* enum pc_outcome */
  bool instance;  /* one item of a fan-out: for_each and if do not apply */
  bool own_scope; /* scope_ref is ours to unref */
  bool queued;
  bool cancelled;

  union {
    struct { /* groups: TK_SEQ, TK_GATHER, TK_FOREACH */
      struct task *kids_head;      /* running children */
      struct pc_step *const *kids; /* children to run (SEQ, GATHER) */
      size_t nkids;
      size_t next_kid; /* next child (or item) to start */
      size_t total;    /* number of children (or items) */
      char *fail_msg;  /* first counted failure among the children */
      double group_timeout_ms;
      int running;
      int limit;       /* max children in flight; 0 = unlimited */
      int list_ref;    /* fan-out: the items */
      int items_ref;   /* fan-out: per-item results; LUA_NOREF when nothing can read them */
      int inst_mt_ref; /* fan-out of a leaf body: the metatable of its items' scopes */
      int body_params_ref; /* fan-out of a constant scalar body: its value, shared */
      bool static_body; /* fan-out whose body has no expression: items need no scope */
      bool fail_fast;
      bool stopping;   /* start no more children */
      bool failed_error, failed_expect;
    };
    struct { /* TK_LEAF */
      const struct pc_action_ops *ops;
      struct pc_pool_waiter *waiters; /* one per pool of the step */
      char *att_msg;
      size_t pools_held;
      struct pc_attempt att;
      int attempts;
      unsigned char att_fail; /* enum pc_fail */
      bool att_live;          /* the action is running: cancel it before anything else */
      bool params_shared;     /* att.params_ref is the fan-out's body_params_ref */
      bool status_failed;     /* the last attempt failed its status expectation */
      bool waiting;           /* queued for a pool permit right now */
      double ran_mono;        /* when the first attempt got its permits and ran; 0: never */
      double wait_since;      /* while waiting: when the wait began */
      double queued_ms;       /* time spent waiting for permits, all attempts */
    };
  };
};

struct pc_run {
  uv_loop_t loop;
  struct pc_lua *lua;
  lua_State *L;
  struct pc_workflow *wf;
  const struct pc_run_opts *opts;
  struct pc_pool *pools;
  size_t npools;
  int root_scope;
  void *action_slots[PC_ACT_SHELL + 1];

  struct task *rq_head, *rq_tail;
  struct pc_deferred *dq_head, *dq_tail;
  uv_idle_t drain;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t deadline;
  double timeout_ms;

  struct task *main, *fin;
  enum pc_outcome main_outcome, fin_outcome;
  bool fin_ran;
  struct pc_watchdog *watchdog;
  int signal;        /* first signal received, 0 if none */
  bool deadline_hit;
  bool finished;
  double started_mono; /* the run's start on the monotonic clock... */
  double started_wall; /* ...and the one reading of the wall clock, taken with it */
  char run_id[40];

  /* Who can read a fan-out's per-item results (see pc__results_readable). */
  bool steps_wild;   /* Lua steps, or an expression reading `steps` other than as steps.ID */
  char **steps_read; /* every ID an expression reads as steps.ID */
  size_t nsteps_read;

  /* Records for reports and progress (only when asked for). */
  bool recording;
  struct pc_run_report rep;
  size_t rec_cap;
  int *free_lanes; /* a stack of lanes released by finished leaves */
  size_t nfree_lanes;
  struct pc_progress *progress; /* live display, or NULL */
};

/* task.c: the tree */
struct task *pc__task_new(struct pc_run *run, struct task *parent, const struct pc_step *st,
                          int scope_ref, bool own_scope, bool instance);
void pc__task_start(struct task *t);
void pc__task_finish(struct task *t, enum pc_outcome o, const char *err);
void pc__task_cancel(struct task *t, enum pc_outcome as, const char *msg);
void pc__task_release(struct task *t);
char *pc__task_label(const struct task *t);
uv_timer_t *pc__task_timer(struct task *t);
void pc__task_timer_stop(struct task *t);
void pc__on_group_timeout(uv_timer_t *timer);
void pc__group_child_done(struct task *t, struct task *c);

/* attempt.c: a leaf's attempts */
void pc__leaf_next_attempt(struct task *t);
void pc__leaf_acquire(struct task *t);
void pc__attempt_end(struct task *t, enum pc_fail fail, char *msg);
void pc__leaf_abort(struct task *t);

/* results.c: the Lua result tables, and who can read them */
void pc__build_result(struct task *t, enum pc_outcome o);
void pc__fill_unstarted_items(struct task *t);
double pc__task_run_ms(const struct task *t);
void pc__scan_results_readers(struct pc_run *run);
bool pc__results_readable(const struct pc_run *run, const struct pc_step *st);
bool pc__step_is_static(const struct pc_run *run, const struct pc_step *st);

/* records.c: records for reports and progress */
struct pc_record *pc__rec_of(struct task *t);
void pc__record_start(struct task *t);
void pc__record_running(struct task *t);
void pc__record_waiting(struct task *t, bool waiting);
void pc__record_finish(struct task *t);
void pc__records_free(struct pc_run_report *rp);

/* defer.c: the ready queue and the deferred queue */
void pc__post(struct task *t, unsigned ev);

/* run.c: the run driver */
void pc__on_root_done(struct task *t);

#endif
