/* task.h: what the files of the engine's tree share and nothing else
 * includes: a task (struct task) and the functions one file calls in
 * another. The run driver sees the tree through engine.h, actions through
 * model/action.h. docs/engine.md says how the pieces fit:
 *
 *   task.c     groups (sequence, gather, fan-out), start, finish, cancel
 *   attempt.c  a leaf's attempts: pools, deadline, expectations, retry,
 *              polling (until)
 *   matrix.c   a for_each matrix's combinations
 *   results.c  the Lua result tables, and which of them anything can read
 *   recording.c  records for reports and progress
 *   defer.c    the queues and the drain that drives everything
 *   hooks.c    the run-wide state of actions and services (run hooks)
 *   labels.c   how a step instance is named in logs and records
 *   resume.c   the journal's side in the engine: keys, restore, record */
#ifndef PACER_CORE_TASK_H
#define PACER_CORE_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <uv.h>

#include "base/pool.h"
#include "core/engine.h"

enum task_kind { TK_LEAF, TK_SEQ, TK_GATHER, TK_FOREACH };
enum task_state { TS_NEW, TS_WAIT_POOL, TS_RUNNING, TS_BACKOFF, TS_GROUP, TS_DONE };

enum {
  EV_GRANTED = 1u,      /* a queued pool permit was granted */
  EV_ATTEMPT_DONE = 2u, /* the action called pc_attempt_done */
  EV_NOTIFY = 4u,       /* the task finished; tell the parent */
};

/* A leaf's rarely used state, apart so that a plain leaf (a sleep, a
 * command, a request not recorded) does not carry it: a gather of 1M
 * sleeps holds 1M tasks. */
struct leaf_ext {
  /* What the attempt reported for the record (pc_attempt_report), owned,
   * for as long as its result stands; NULL if nothing. */
  char *rep_method, *rep_url;
  /* The attempt ran a sub-group (sub.c): the step is a group of a kind,
   * whose own failure is its steps' (their root cause, owned, and its
   * record); the last attempt's. */
  char *sub_cause;
  size_t sub_cause_rec;
  /* Polling (until:): polls ended, polls that failed (retry.attempts
   * counts these), the `within` deadline on the monotonic clock (0 before
   * the first poll) and why polling stopped (a static string: "until",
   * "fail_if", "within", "failure"; NULL while it goes on). */
  double poll_deadline;
  const char *poll_stop;
  int polls, poll_fails;
};

/* What only a root sequence has (a run's steps or finally, a sub-group's):
 * apart, as a gather of sleeps holds one group task per sleep in flight. */
struct task_root {
  const char *name;         /* "steps" or "finally" */
  pc__root_done_cb done;
  struct pc_subgroup *sub;  /* the sub-group it runs for (sub.c), or NULL */
};

struct task {
  struct pc_run *run;
  struct task *parent;             /* NULL for a root sequence */
  struct pc_queue sibling;         /* link in the parent's list of running children */
  struct pc_deferred ev;           /* queued while `events` has bits to take up */
  const struct pc_step *step;      /* borrowed; NULL for a root sequence */
  /* leaf: attempt deadline or backoff; group: its timeout. Allocated on
   * first use: most tasks never need one. */
  uv_timer_t *timer;
  char *error; /* a cancelled group: the cancellation's message until it finishes */
  char *item_text; /* a fan-out item: its label text (labels.c); made on first use */
  /* When the task started, on the monotonic clock (a leaf: when it was
   * reached; it may then wait for pool permits before it runs). Wall-clock
   * times are derived from it and the run's one reading of the wall clock,
   * so a clock step during the run cannot move or reorder anything. */
  double started_mono;
  size_t item; /* instance: 1-based item index */
  size_t rec;  /* record index, PC_NO_RECORD when not recording */
  int scope_ref;  /* scope for expressions */
  int result_ref; /* the finished result table, kept for the parent */
  unsigned char events;    /* EV_* */
  unsigned char kind;      /* enum task_kind */
  unsigned char state;     /* enum task_state */
  unsigned char outcome;   /* enum pc_outcome */
  unsigned char cancel_as; /* enum pc_outcome */
  bool instance;  /* one item of a fan-out: for_each and if do not apply */
  bool own_scope; /* scope_ref is ours to unref */
  bool cancelled;
  bool item_text_done; /* item_text was made (it may be NULL) */
  bool background;     /* a child its sequence started and moved on from */
  bool restored;  /* a leaf the journal had finished: its result is the recorded one */

  union {
    struct { /* groups: TK_SEQ, TK_GATHER, TK_FOREACH */
      struct pc_queue live;        /* running children, newest first */
      struct pc_step *const *kids; /* children to run (SEQ, GATHER) */
      size_t nkids;
      size_t next_kid; /* next child (or item) to start */
      size_t total;    /* number of children (or items) */
      size_t stride;   /* items started: next_kid, then every stride-th (--shard) */
      size_t end;      /* next_kid runs up to here: total, or nown */
      size_t *own;     /* shard_key: the items (0-based) this shard runs, owned; or NULL */
      char *fail_msg;  /* first counted failure among the children */
      /* The root cause of the group's failure: the label of the step whose
       * own failure (a leaf's, or a group's that did not come from its
       * children) came first, and its record (PC_NO_RECORD if none).
       * Siblings cancelled because of it say so. */
      char *cause;
      size_t cause_rec;
      size_t nfailed;  /* children whose failure counted */
      double group_timeout_ms;
      int running;
      int bg_running;  /* sequence: of the running, those in the background */
      int limit;       /* max children in flight; 0 = unlimited */
      int list_ref;    /* fan-out: the items */
      int keys_ref;    /* fan-out with `key:`: the items' keys (strings), index for index */
      int items_ref;   /* fan-out: per-item results; LUA_NOREF when nothing can read them */
      int inst_mt_ref; /* fan-out of a leaf body: the metatable of its items' scopes */
      int body_params_ref; /* fan-out of a constant scalar body: its value, shared */
      bool static_body; /* fan-out whose body has no expression: items need no scope */
      bool partitioned; /* a fan-out this shard runs its share of (--shard) */
      bool bg_ending;   /* sequence: its own steps are over; its background ones are cancelled */
      bool fail_fast;
      bool stopping;   /* start no more children */
      bool failed_error, failed_expect;
      struct task_root *root; /* a root's (parent NULL, step NULL), owned; else NULL */
    };
    struct { /* TK_LEAF; its action is step->ops */
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
      bool timer_within;      /* the attempt's timer is the `within` deadline (until:) */
      bool within_hit;        /* ... and it fired */
      bool sub_ran;           /* the attempt ran a sub-group (sub.c) */
      int lane;               /* lane held while running (records), -1 otherwise */
      double ran_mono;        /* when the first attempt got its permits and ran; 0: never */
      double att_end_mono;    /* when the latest attempt ended and gave its permits back;
                               * 0 while one runs */
      double wait_since;      /* while waiting: when the wait began */
      double queued_ms;       /* time spent waiting for permits, all attempts */
      /* What only some leaves need (polling, a sub-group's cause, what
       * an attempt reported for the record), or NULL until one does:
       * made by pc__leaf_ext, owned, freed with the task. */
      struct leaf_ext *ext;
    };
  };
};

/* A gather of N sleeps holds N tasks, so a task's size is most of such a
 * run's memory (tests/cases/sleep_many_memory.yml, docs/BENCHMARKS.md):
 * a field only some tasks need goes in struct leaf_ext or struct
 * task_root, not in the task. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct task) <= 296,
               "struct task grew past 296 bytes: put a rarely used field in struct leaf_ext or "
               "struct task_root");

/* ---------------------------------------------------------- defer.c */

/* Makes the deferred queue and its drain (defer.c); part of
 * pc__engine_init. */
void pc__defer_init(struct pc_run *run);
void pc__on_drain(uv_idle_t *h);

/* pc_run_defer, inline for the engine's own tasks: every event of every
 * task goes through it. */
static inline void pc__defer(struct pc_run *run, struct pc_deferred *d,
                             void (*cb)(struct pc_deferred *d))
{
  d->cb = cb;
  if (pc_deferred_queued(d))
    return;
  pc_queue_insert_tail(&run->deferred, &d->node);
  uv_idle_start(&run->drain, pc__on_drain);
}

/* ----------------------------------------------------------- task.c */

/* A group that failed because of its children, not on its own. */
static inline bool pc__task_failed_by_children(const struct task *t)
{
  return t->kind != TK_LEAF && (t->failed_error || t->failed_expect);
}

struct task *pc__task_new(struct pc_run *run, struct task *parent, const struct pc_step *st,
                          int scope_ref, bool own_scope, bool instance);
void pc__task_start(struct task *t);
void pc__task_finish(struct task *t, enum pc_outcome o, const char *err);
void pc__task_cancel(struct task *t, enum pc_outcome as, const char *msg);
void pc__task_release(struct task *t);
/* labels.c: the task's label for log lines and records (malloc'd), the
 * title of a step (its name, id or action) and a fan-out item's text. */
char *pc__task_label(struct task *t);
/* The label of the fan-out item t is or belongs to ("stories[3] 4003",
 * malloc'd), or NULL outside any fan-out item. */
char *pc__task_item(struct task *t);
/* The label a child step of `parent` has (a step the group never started
 * has no task of its own). */
char *pc__child_label(struct task *parent, const struct pc_step *st);
const char *pc__step_title(const struct pc_step *st);
const char *pc__item_text(struct task *t);
uv_timer_t *pc__task_timer(struct task *t);
/* A leaf's rarely used state (t->ext), made zeroed on first use. */
struct leaf_ext *pc__leaf_ext(struct task *t);
static inline void pc__task_timer_stop(struct task *t)
{
  if (t->timer)
    uv_timer_stop(t->timer);
}
/* A task's deferred entry (t->ev): takes up the events posted since it
 * was queued. */
void pc__task_event(struct pc_deferred *d);

/* Sets event bits on the task and queues it: its events are taken up from
 * the drain, in the order they were posted among all deferred entries. */
static inline void pc__post(struct task *t, unsigned ev)
{
  t->events |= (unsigned char)ev;
  pc__defer(t->run, &t->ev, pc__task_event);
}

/* -------------------------------------------------------- attempt.c */

void pc__leaf_acquire(struct task *t);
void pc__attempt_end(struct task *t, enum pc_fail fail, char *msg);
void pc__leaf_abort(struct task *t);
/* Drops what the attempt reported for the record (pc_attempt_report);
 * inline, as it runs for every attempt and there is most often nothing. */
static inline void pc__attempt_report_clear(struct task *t)
{
  struct leaf_ext *x = t->ext;
  if (x && (x->rep_method || x->rep_url)) {
    free(x->rep_method);
    free(x->rep_url);
    x->rep_method = x->rep_url = NULL;
  }
}

/* The leaf's next attempt (its first, from pc__task_start): it queues for
 * its pools' permits, then runs. */
static inline void pc__leaf_next_attempt(struct task *t)
{
  t->attempts++;
  t->state = TS_WAIT_POOL;
  t->pools_held = 0;
  pc__leaf_acquire(t);
}

/* --------------------------------------------------------- matrix.c */

/* Replaces the evaluated `for_each: {matrix: ...}` on top of the stack
 * with its list of combinations. Returns 0, or -1 with *err (malloc'd)
 * and the stack as it was. */
int pc__matrix_expand(struct task *t, char **err);
/* Replaces the matrix item on top of the stack with its label text (its
 * dimensions' scalar values, space-separated), or leaves it when it has
 * none. */
void pc__matrix_item_push(lua_State *L, const struct pc_step *st);
/* ------------------------------------------------------------ sub.c */

/* What the steps of a sub-group (sub.c) inherit from the step that runs
 * them, found at their root (the top of their tree): the place of the
 * call ("main.yml:12", "main.yml:12 › login.yml:7" nested) and the
 * fan-out item the calling step belongs to, for labels; the caller's
 * record, under which theirs go; whether the caller is inside a
 * partitioned fan-out (--shard). */
struct pc_subgroup *pc__sub_of(const struct task *t);
const char *pc__sub_where(const struct pc_subgroup *g);
const char *pc__sub_item(const struct pc_subgroup *g);
size_t pc__sub_caller_rec(const struct pc_subgroup *g);
bool pc__sub_partitioned(const struct pc_subgroup *g);

/* -------------------------------------------------------- results.c */

void pc__build_result(struct task *t, enum pc_outcome o);
void pc__fill_unstarted_items(struct task *t);
void pc__unreached_result(struct task *group, const struct pc_step *st, const char *why);
double pc__task_run_ms(const struct task *t);

/* --------------------------------------------------------- resume.c */

/* With a journal (run->journal_ops): a leaf about to run that the resumed
 * run finished ok is finished now with its recorded result; returns true
 * then. */
bool pc__journal_restore(struct task *t);
/* A fan-out with `key:` (the list on top of the stack, left there): its
 * items' keys, evaluated with item and index bound, into t->keys_ref.
 * Returns 0, or -1 with *err (malloc'd) when a key is not a string or a
 * number, its expression fails, or two items have the same key. */
int pc__journal_item_keys(struct task *t, char **err);
/* A leaf that ran finished (its result built): the journal records it. */
void pc__journal_record(struct task *t);

/* -------------------------------------------------------- recording.c */

/* Each needs a task with a record (pc__rec_open needs a recording run):
 * the engine calls them through the inline guards below, so a run that
 * does not record pays one test per call. */
void pc__rec_open(struct task *t);
void pc__rec_running(struct task *t);
void pc__rec_waiting(struct task *t, bool waiting);
void pc__rec_close(struct task *t);
void pc__rec_attempt_open(struct task *t);
void pc__rec_attempt_close(struct task *t, enum pc_outcome o, const char *msg);
/* A step the group never started (it stopped early, was skipped or
 * cancelled): a finished record of outcome `skipped` with `why`, below the
 * group's (or below record `parent_rec` when it is not PC_NO_RECORD).
 * Returns its index. */
size_t pc__rec_unreached(struct task *group, size_t parent_rec, const struct pc_step *st,
                         const char *why);

/* The task's record, or NULL when it has none. */
static inline struct pc_record *pc__rec_of(const struct task *t)
{
  return t->rec == PC_NO_RECORD ? NULL : &t->run->rep->records[t->rec];
}

/* The task starts: a record is appended (if the run records). */
static inline void pc__record_start(struct task *t)
{
  if (t->run->rep)
    pc__rec_open(t);
}

/* A leaf's first attempt got its permits and runs: it takes a lane. */
static inline void pc__record_running(struct task *t)
{
  if (t->rec != PC_NO_RECORD)
    pc__rec_running(t);
}

/* A leaf starts or stops waiting for a pool permit. */
static inline void pc__record_waiting(struct task *t, bool waiting)
{
  if (t->rec != PC_NO_RECORD)
    pc__rec_waiting(t, waiting);
}

/* The leaf's attempt record, or NULL when the run keeps no attempts. */
static inline struct pc_attempt_record *pc__att_rec_of(const struct task *t)
{
  const struct pc_record *r = pc__rec_of(t);
  return r && r->last_attempt != PC_NO_RECORD ? &t->run->rep->attempts[r->last_attempt] : NULL;
}

/* A leaf's attempt starts: an attempt record is appended (if the run keeps
 * attempts), with its span id. */
static inline void pc__record_attempt_start(struct task *t)
{
  if (t->rec != PC_NO_RECORD && t->run->rep->keep_attempts)
    pc__rec_attempt_open(t);
}

/* The attempt ended (expectations checked) or was stopped: its record is
 * filled in, once. */
static inline void pc__record_attempt_end(struct task *t, enum pc_outcome o, const char *msg)
{
  struct pc_attempt_record *ar = pc__att_rec_of(t);
  if (ar && !ar->done)
    pc__rec_attempt_close(t, o, msg);
}

/* The task finished: its record is filled in. */
static inline void pc__record_finish(struct task *t)
{
  if (t->rec != PC_NO_RECORD)
    pc__rec_close(t);
}

#endif
