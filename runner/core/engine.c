/* engine.c: runs a workflow's step tree on one libuv loop.
 *
 * Each running step is a task. Leaf tasks run attempts of an action (see
 * action.h) under pools, a per-attempt deadline and retries; group tasks
 * (sequence, gather, fan-out) start children and aggregate their outcomes.
 * A fan-out is lazy: it holds the item list and one child per item in
 * flight, never a task per item, so 100 000 items at concurrency 100 cost
 * 100 tasks plus the results.
 *
 * Re-entrancy rule: anything that completes (an attempt, a child, a pool
 * grant) only sets an event bit on its task and queues it; one drain
 * callback (a uv_idle handle, active only while the queue is not empty)
 * processes the queue. So no engine function ever runs inside another one's
 * iteration over children, and cancellation can walk a subtree without the
 * tree changing under it.
 *
 * Cancellation: task_cancel() on a leaf calls the action's cancel (which
 * stops its pending operation synchronously), leaves any pool queue and
 * releases held permits; on a group it cancels every running child and
 * finishes once the last one has reported. Timers are stopped in the same
 * call, so no callback of a cancelled task fires afterwards. */
#include "core/engine.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "model/action.h"
#include "base/log.h"
#include "script/plugin.h"
#include "base/pool.h"
#include "report/progress.h"
#include "report/report.h"
#include "base/util.h"
#include "core/watchdog.h"

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

  /* Who can read a fan-out's per-item results (see results_readable). */
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

static void task_start(struct task *t);
static void task_finish(struct task *t, enum pc_outcome o, const char *err);
static void task_cancel(struct task *t, enum pc_outcome as, const char *msg);
static void group_fill(struct task *t);
static void leaf_acquire(struct task *t);
static void attempt_end(struct task *t, enum pc_fail fail, char *msg);
static void on_root_done(struct task *t);
static void group_child_done(struct task *t, struct task *c);

const char *pc_outcome_name(enum pc_outcome o)
{
  static const char *const names[] = {"ok", "failed", "error", "timeout", "cancelled",
                                      "skipped"};
  return names[o];
}

static bool outcome_is_failure(enum pc_outcome o)
{
  return o == PC_FAILED || o == PC_ERROR || o == PC_TIMEOUT;
}

void pc_run_opts_init(struct pc_run_opts *o)
{
  memset(o, 0, sizeof *o);
  o->timeout_ms = -1;
  o->finally_grace_ms = 30000;
}

uv_loop_t *pc_run_loop(struct pc_run *run) { return &run->loop; }
struct pc_lua *pc_run_lua(struct pc_run *run) { return run->lua; }
const struct pc_workflow *pc_run_workflow_def(struct pc_run *run) { return run->wf; }
void **pc_run_action_slot(struct pc_run *run, enum pc_action a) { return &run->action_slots[a]; }

double pc_run_deadline_ms(struct pc_run *run)
{
  return run->timeout_ms >= 0 ? run->started_mono + run->timeout_ms : INFINITY;
}

double pc_run_started_ms(struct pc_run *run) { return run->started_mono; }

struct pc_pool *pc_run_pool(struct pc_run *run, const char *name)
{
  for (size_t i = 0; i < run->npools; i++)
    if (strcmp(run->wf->pools[i].name, name) == 0)
      return &run->pools[i];
  return NULL;
}

const struct pc_run_report *pc_run_records(struct pc_run *run)
{
  return run->recording ? &run->rep : NULL;
}

char *pc_step_label(const struct pc_step *s)
{
  const char *base = strrchr(s->file, '/');
  base = base ? base + 1 : s->file;
  if (s->id)
    return pc_asprintf("%s (%s:%d)", s->id, base, s->line);
  if (s->name)
    return pc_asprintf("%s (%s:%d)", s->name, base, s->line);
  return pc_asprintf("%s (%s:%d)", pc_action_name(s->action), base, s->line);
}

static char *task_label(const struct task *t)
{
  if (!t->step)
    return pc_xstrdup(t == t->run->fin ? "finally" : "steps");
  char *l = pc_step_label(t->step);
  if (!t->instance)
    return l;
  char *r = pc_asprintf("%s[%zu]", l, t->item);
  free(l);
  return r;
}

/* ========================================================== ready queue */

/* How long one drain may hold the loop before it lets timers, signals and
 * I/O have a turn (the idle handle stays active and comes back at once):
 * a Lua gather of 100 000 functions resumes them all from this queue, and
 * a step timeout or SIGINT must still get through. */
#define DRAIN_BUDGET_MS 20.0

static void drain_deferred(struct pc_run *run, double until)
{
  struct pc_deferred *d;
  unsigned n = 0;
  while ((d = run->dq_head)) {
    if (++n % 64 == 0 && pc_mono_ms() >= until)
      return;
    run->dq_head = d->next;
    if (run->dq_head)
      run->dq_head->prev = NULL;
    else
      run->dq_tail = NULL;
    d->next = d->prev = NULL;
    d->queued = false;
    d->cb(d);
  }
}

static void drain_tasks(struct pc_run *run);

static void on_drain(uv_idle_t *h)
{
  struct pc_run *run = PC_CONTAINER_OF(h, struct pc_run, drain);
  double until = pc_mono_ms() + DRAIN_BUDGET_MS;
  while (run->rq_head || run->dq_head) {
    drain_tasks(run);
    drain_deferred(run, until);
    if (run->dq_head && pc_mono_ms() >= until)
      return; /* more next turn */
  }
  uv_idle_stop(h);
  /* The loop computes how long to poll from the time cached when this
   * iteration began: after Lua code held it for 300 ms, a timer due then
   * would wait 300 ms more. */
  uv_update_time(h->loop);
}

void pc_run_defer(struct pc_run *run, struct pc_deferred *d, void (*cb)(struct pc_deferred *d))
{
  d->cb = cb;
  if (d->queued)
    return;
  d->queued = true;
  d->next = NULL;
  d->prev = run->dq_tail;
  if (run->dq_tail)
    run->dq_tail->next = d;
  else
    run->dq_head = d;
  run->dq_tail = d;
  uv_idle_start(&run->drain, on_drain);
}

void pc_run_defer_cancel(struct pc_run *run, struct pc_deferred *d)
{
  if (!d->queued)
    return;
  if (d->prev)
    d->prev->next = d->next;
  else
    run->dq_head = d->next;
  if (d->next)
    d->next->prev = d->prev;
  else
    run->dq_tail = d->prev;
  d->next = d->prev = NULL;
  d->queued = false;
}

static void drain_tasks(struct pc_run *run)
{
  struct task *t;
  while ((t = run->rq_head)) {
    run->rq_head = t->rq_next;
    if (!run->rq_head)
      run->rq_tail = NULL;
    t->rq_next = NULL;
    t->queued = false;
    unsigned ev = t->events;
    t->events = 0;
    if (t->state != TS_DONE) {
      if ((ev & EV_GRANTED) && t->state == TS_WAIT_POOL)
        leaf_acquire(t);
      if ((ev & EV_ATTEMPT_DONE) && t->state == TS_RUNNING) {
        char *msg = t->att_msg;
        t->att_msg = NULL;
        attempt_end(t, t->att_fail, msg);
      }
    }
    /* Last: the parent may free the task. */
    if (ev & EV_NOTIFY) {
      if (t->parent)
        group_child_done(t->parent, t);
      else
        on_root_done(t);
    }
  }
}

static void post(struct task *t, unsigned ev)
{
  struct pc_run *run = t->run;
  t->events |= ev;
  if (t->queued)
    return;
  t->queued = true;
  if (run->rq_tail)
    run->rq_tail->rq_next = t;
  else
    run->rq_head = t;
  run->rq_tail = t;
  uv_idle_start(&run->drain, on_drain);
}

/* ================================================================ tasks */

static void task_free(struct task *t)
{
  if (t->kind == TK_LEAF) {
    free(t->waiters);
    free(t->att_msg);
  } else {
    free(t->fail_msg);
  }
  free(t->cancel_msg);
  free(t->error);
  free(t);
}

static void on_timer_closed(uv_handle_t *h)
{
  free(h);
}

/* The task's timer, created on first use; its callbacks find the task in
 * timer->data. */
static uv_timer_t *task_timer(struct task *t)
{
  if (!t->timer) {
    t->timer = pc_xmalloc(sizeof *t->timer);
    uv_timer_init(&t->run->loop, t->timer);
    t->timer->data = t;
  }
  return t->timer;
}

static void task_timer_stop(struct task *t)
{
  if (t->timer)
    uv_timer_stop(t->timer);
}

/* Called by the parent after it has consumed the child's result. */
static void task_release(struct task *t)
{
  pc_lua_unref(t->run->lua, t->result_ref);
  t->result_ref = LUA_NOREF;
  task_free(t);
}

static struct task *task_new(struct pc_run *run, struct task *parent, const struct pc_step *st,
                             int scope_ref, bool own_scope, bool instance)
{
  struct task *t = pc_xcalloc(1, sizeof *t);
  t->run = run;
  t->parent = parent;
  t->step = st;
  t->scope_ref = scope_ref;
  t->own_scope = own_scope;
  t->instance = instance;
  t->result_ref = LUA_NOREF;
  t->rec = PC_NO_RECORD;
  t->lane = -1;
  if (!st) {
    t->kind = TK_SEQ;
  } else if (st->for_each && !instance) {
    t->kind = TK_FOREACH;
  } else if (st->action == PC_ACT_STEPS) {
    t->kind = TK_SEQ;
  } else if (st->action == PC_ACT_GATHER) {
    t->kind = TK_GATHER;
  } else {
    t->kind = TK_LEAF;
    t->ops = pc_action_ops(st->action);
    assert(t->ops);
    if (st->npools)
      t->waiters = pc_xcalloc(st->npools, sizeof *t->waiters);
    t->att.params_ref = t->att.result_ref = LUA_NOREF;
    return t;
  }
  t->list_ref = t->items_ref = t->inst_mt_ref = t->body_params_ref = LUA_NOREF;
  t->fail_fast = true;
  t->group_timeout_ms = -1;
  if (st) {
    t->limit = st->concurrency;
    t->fail_fast = st->fail_fast;
    if (t->kind != TK_FOREACH) {
      t->group_timeout_ms = st->timeout_ms;
      t->kids = st->children;
      t->nkids = st->nchildren;
    }
  }
  if (t->kind == TK_SEQ)
    t->limit = 1;
  return t;
}

/* ============================================================ records */

static struct pc_record *rec_of(struct task *t)
{
  return t->rec == PC_NO_RECORD ? NULL : &t->run->rep.records[t->rec];
}

/* How long the task has run, up to now: a leaf from the moment its first
 * attempt got its pool permits (0 if it never did: skipped, or stopped
 * while queued), a group from its start. */
static double task_run_ms(const struct task *t)
{
  double from = t->kind == TK_LEAF ? t->ran_mono : t->started_mono;
  return from > 0 ? pc_mono_ms() - from : 0;
}

/* When the task started running (or was reached, if it never ran), as
 * wall-clock epoch ms: the run's one wall-clock reading plus monotonic time. */
static double task_start_wall(const struct task *t)
{
  double from = t->kind == TK_LEAF && t->ran_mono > 0 ? t->ran_mono : t->started_mono;
  return t->run->started_wall + (from - t->run->started_mono);
}

static void record_start(struct task *t)
{
  struct pc_run *run = t->run;
  if (!run->recording)
    return;
  struct pc_run_report *rp = &run->rep;
  if (rp->nrecords == run->rec_cap) {
    run->rec_cap = run->rec_cap ? run->rec_cap * 2 : 64;
    rp->records = pc_xrealloc(rp->records, run->rec_cap * sizeof *rp->records);
  }
  t->rec = rp->nrecords++;
  struct pc_record *r = &rp->records[t->rec];
  memset(r, 0, sizeof *r);
  r->parent = t->parent ? t->parent->rec : PC_NO_RECORD;
  r->step = t->step;
  r->item = t->item;
  r->depth = t->parent ? rp->records[t->parent->rec].depth + 1 : 0;
  static const enum pc_record_kind kinds[] = {PC_REC_LEAF, PC_REC_SEQUENCE, PC_REC_GATHER,
                                              PC_REC_FOREACH};
  r->kind = t->step ? kinds[t->kind] : PC_REC_ROOT;
  r->root_name = t->step ? NULL : t == run->fin ? "finally" : "steps";
  r->label = task_label(t);
  r->start_off_ms = r->ready_off_ms = t->started_mono - run->started_mono;
  r->lane = -1;
}

/* A leaf's first attempt got its pool permits: from now on it runs, and
 * holds a lane until it ends (backoff between attempts included). Its
 * record starts here; the time before was spent queued. */
static void record_running(struct task *t)
{
  struct pc_record *r = rec_of(t);
  if (!r)
    return;
  struct pc_run *run = t->run;
  r->start_off_ms = t->ran_mono - run->started_mono;
  r->lane = run->nfree_lanes ? run->free_lanes[--run->nfree_lanes] : run->rep.nlanes++;
  t->lane = r->lane;
}

/* A leaf starts or stops waiting for a pool permit: its record and its
 * parent's live counters (the progress display) say so. */
static void record_waiting(struct task *t, bool waiting)
{
  struct pc_record *r = rec_of(t);
  if (!r || r->waiting == waiting)
    return;
  r->waiting = waiting;
  if (t->parent && rec_of(t->parent)) {
    struct pc_record *pr = rec_of(t->parent);
    if (waiting)
      pr->queued++;
    else
      pr->queued--;
  }
}

static void record_finish(struct task *t)
{
  struct pc_record *r = rec_of(t);
  if (!r)
    return;
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  r->done = true;
  r->outcome = t->outcome;
  r->error = t->error ? pc_xstrdup(t->error) : NULL;
  r->attempts = t->kind == TK_LEAF ? t->attempts : 0;
  r->duration_ms = task_run_ms(t);
  if (t->kind == TK_LEAF && t->step)
    r->queued_ms = t->queued_ms;
  record_waiting(t, false);
  r->status = t->kind == TK_LEAF ? t->att.status : 0;
  if (t->result_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref); /* result */
    if (lua_getfield(L, -1, "url") == LUA_TSTRING)    /* result, url */
      r->url = pc_xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (lua_getfield(L, -1, "method") == LUA_TSTRING) /* result, method */
      r->method = pc_xstrdup(lua_tostring(L, -1));
    lua_pop(L, 2);
  }
  if (t->lane >= 0) {
    run->free_lanes = pc_xrealloc(run->free_lanes, (run->nfree_lanes + 1) * sizeof(int));
    run->free_lanes[run->nfree_lanes++] = t->lane;
    t->lane = -1;
  }
}

static void records_free(struct pc_run_report *rp)
{
  for (size_t i = 0; i < rp->nrecords; i++) {
    free(rp->records[i].label);
    free(rp->records[i].error);
    free(rp->records[i].url);
    free(rp->records[i].method);
  }
  free(rp->records);
}

/* ------------------------------------------------------------ results */

/* Pushes a fresh table with the common result fields. */
static void set_common_fields(struct task *t, int tbl)
{
  lua_State *L = t->run->L;
  char ts[40];
  lua_pushstring(L, pc_outcome_name(t->outcome)); /* tbl.outcome */
  lua_setfield(L, tbl, "outcome");
  if (t->error) {
    lua_pushstring(L, t->error);
    lua_setfield(L, tbl, "error");
  }
  if (t->kind == TK_LEAF) {
    lua_pushinteger(L, t->attempts);
    lua_setfield(L, tbl, "attempts");
  }
  if (t->started_mono > 0) {
    pc_format_iso8601(task_start_wall(t), ts, sizeof ts);
    lua_pushstring(L, ts);
    lua_setfield(L, tbl, "started_at");
    lua_pushinteger(L, (lua_Integer)llround(task_run_ms(t)));
    lua_setfield(L, tbl, "duration_ms");
    if (t->kind == TK_LEAF && t->step) {
      lua_pushinteger(L, (lua_Integer)llround(t->queued_ms));
      lua_setfield(L, tbl, "queued_ms");
    }
  }
  if (t->kind == TK_FOREACH && t->items_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->items_ref); /* tbl.items */
    lua_setfield(L, tbl, "items");
  }
}

/* Evaluates `outputs` with `result` bound; on failure returns the message. */
static char *eval_outputs(struct task *t, int tbl)
{
  const struct pc_step *st = t->step;
  lua_State *L = t->run->L;
  struct pc_lua *h = t->run->lua;
  lua_newtable(L); /* tbl, outputs */
  if (st && st->noutputs) {
    int scope = t->scope_ref;
    lua_pushvalue(L, tbl);                 /* tbl, outputs, result */
    pc_lua_scope_bind(h, scope, "result"); /* tbl, outputs, old */
    lua_insert(L, -2);                     /* tbl, old, outputs */
    for (size_t i = 0; i < st->noutputs; i++) {
      char *err = NULL;
      if (pc_lua_eval_tmpl(h, st->outputs[i].value, scope, &err) != 0) {
        char *m = pc_asprintf("output %s: %s", st->outputs[i].name, err);
        free(err);
        lua_pop(L, 1);                           /* tbl, old */
        pc_lua_scope_unbind(h, scope, "result"); /* tbl */
        return m;
      }
      lua_setfield(L, -2, st->outputs[i].name); /* tbl, old, outputs */
    }
    lua_insert(L, -2);                       /* tbl, outputs, old */
    pc_lua_scope_unbind(h, scope, "result"); /* tbl, outputs */
  }
  lua_setfield(L, tbl, "outputs"); /* tbl */
  return NULL;
}

/* Completes the result table: outputs, common fields, steps.ID. */
static void build_result(struct task *t, enum pc_outcome o)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref); /* result */
  int tbl = lua_gettop(L);
  if (o == PC_OK && !(t->kind == TK_FOREACH)) {
    char *oerr = eval_outputs(t, tbl);
    if (oerr) {
      t->outcome = PC_ERROR;
      free(t->error);
      t->error = oerr;
      lua_newtable(L);
      lua_setfield(L, tbl, "outputs");
    }
  } else {
    lua_newtable(L);
    lua_setfield(L, tbl, "outputs");
  }
  set_common_fields(t, tbl);

  /* steps.ID: everything in the scope it runs in. A fan-out item is not
   * stored there: its result goes into the fan-out's `items`, and a leaf
   * item's scope has no steps table of its own (the one it would reach is
   * the fan-out's, where steps.ID is the fan-out's result). */
  if (t->step && t->step->id && !t->instance) {
    lua_pushvalue(L, tbl);
    pc_lua_scope_set_step(run->lua, t->scope_ref, t->step->id);
  }
  lua_pop(L, 1);
}

/* Builds the result table, stores it where expressions look for it, logs the
 * end of the step, and queues the notification to the parent. */
static void task_finish(struct task *t, enum pc_outcome o, const char *err)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  assert(t->state != TS_DONE);
  t->state = TS_DONE;
  t->events &= ~(EV_GRANTED | EV_ATTEMPT_DONE);
  if (t->timer) {
    uv_close((uv_handle_t *)t->timer, on_timer_closed);
    t->timer = NULL;
  }
  t->outcome = o;
  free(t->error);
  t->error = err ? pc_xstrdup(err) : NULL;

  if (t->kind == TK_LEAF && t->att.result_ref != LUA_NOREF) {
    t->result_ref = t->att.result_ref;
    t->att.result_ref = LUA_NOREF;
  }
  /* An item of a fan-out whose results nobody can read needs no result
   * table: only its outputs are evaluated, since one that fails fails the
   * item. */
  bool unread = t->instance && t->parent->items_ref == LUA_NOREF;
  if (!unread || (o == PC_OK && t->kind != TK_FOREACH && t->step->noutputs)) {
    if (t->result_ref == LUA_NOREF) {
      lua_newtable(L);
      t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    build_result(t, o);
  }

  /* The end-of-step line: failures always; otherwise one line per finished
   * step for cron and CI logs, fan-out items only with -v (a large fan-out
   * would drown the log). The label is built only when the line prints: on
   * a 100 000-item fan-out that formatting is a fifth of the work. */
  bool tolerated = t->step && t->step->continue_on_error;
  /* A leaf's failure, or a group's own (its for_each or `if` could not be
   * evaluated, it timed out): a group failing because a child did has had
   * that child's failure logged already. */
  bool failed = outcome_is_failure(t->outcome) &&
                (t->kind == TK_LEAF || !(t->failed_error || t->failed_expect));
  enum pc_log_level lvl = failed ? (tolerated ? PC_LOG_WARN : PC_LOG_ERROR)
                          : t->instance ? PC_LOG_DEBUG
                                        : PC_LOG_INFO;
  if (t->step && pc_log_enabled(lvl)) {
    char *label = task_label(t);
    char dur[32], queued[48] = "";
    pc_format_duration(task_run_ms(t), dur, sizeof dur);
    if (t->kind == TK_LEAF && t->queued_ms >= 1) {
      char q[32];
      pc_format_duration(t->queued_ms, q, sizeof q);
      snprintf(queued, sizeof queued, " (queued %s)", q);
    }
    if (failed)
      pc_log(lvl, label, "%s after %s%s: %s%s", pc_outcome_name(t->outcome), dur, queued,
             t->error ? t->error : "", tolerated ? " (continue_on_error)" : "");
    else
      pc_log(lvl, label, "%s in %s%s", pc_outcome_name(t->outcome), dur, queued);
    free(label);
  }

  record_finish(t);
  if (t->own_scope) {
    pc_lua_unref(run->lua, t->scope_ref);
    t->own_scope = false;
  }
  if (t->kind != TK_LEAF) {
    pc_lua_unref(run->lua, t->list_ref);
    t->list_ref = LUA_NOREF;
    pc_lua_unref(run->lua, t->items_ref);
    t->items_ref = LUA_NOREF;
    pc_lua_unref(run->lua, t->inst_mt_ref);
    t->inst_mt_ref = LUA_NOREF;
    pc_lua_unref(run->lua, t->body_params_ref);
    t->body_params_ref = LUA_NOREF;
  }
  post(t, EV_NOTIFY);
}

/* ================================================== who reads results */

static bool ident_char(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Notes what one expression can read of `steps`: steps.ID adds ID; any
 * other use (steps[...], steps passed to a function, pairs(steps)) could
 * read anything. Conservative: text inside string literals counts too. */
static void scan_steps_use(struct pc_run *run, const char *src)
{
  for (const char *p = strstr(src, "steps"); p; p = strstr(p + 5, "steps")) {
    if ((p > src && ident_char(p[-1])) || ident_char(p[5]))
      continue; /* part of another name */
    const char *q = p + 5;
    while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
      q++;
    if (*q != '.') {
      run->steps_wild = true;
      return;
    }
    q++;
    while (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r')
      q++;
    const char *id = q;
    while (ident_char(*q))
      q++;
    if (q == id) {
      run->steps_wild = true;
      return;
    }
    run->steps_read = pc_xrealloc(run->steps_read, (run->nsteps_read + 1) * sizeof(char *));
    run->steps_read[run->nsteps_read++] = pc_xstrndup(id, (size_t)(q - id));
  }
}

static void scan_results_readers(struct pc_run *run)
{
  const struct pc_workflow *wf = run->wf;
  if (pc_workflow_has_lua(wf)) {
    run->steps_wild = true; /* ctx.steps and the `steps` of inline code */
    return;
  }
  for (size_t i = 0; i < wf->nexprs && !run->steps_wild; i++)
    scan_steps_use(run, wf->exprs[i]->src);
}

/* A leaf step with no expression anywhere (its value, expect.that,
 * outputs; for HTTP also defaults.http, evaluated in the step's scope) and
 * no Lua: its items need no scope, since nothing could read item or index. */
static bool step_is_static(const struct pc_run *run, const struct pc_step *st)
{
  switch (st->action) {
  case PC_ACT_SLEEP:
  case PC_ACT_LOG:
  case PC_ACT_EXEC:
  case PC_ACT_SHELL:
    break;
  case PC_ACT_HTTP:
    if (run->wf->http_defaults && run->wf->http_defaults->has_expr)
      return false;
    break;
  default:
    return false;
  }
  return !(st->params && st->params->has_expr) && !st->expect.nthat && !st->noutputs &&
         !st->nasserts;
}

/* Can anything read steps.ID.items of this fan-out? Only an expression or
 * Lua code can, and only through the step's id. When nothing can, the
 * fan-out keeps no per-item results: its memory is O(concurrency), not
 * O(items). Reports do not need them (they have their own records). */
static bool results_readable(const struct pc_run *run, const struct pc_step *st)
{
  if (!st->id)
    return false;
  if (run->steps_wild)
    return true;
  for (size_t i = 0; i < run->nsteps_read; i++)
    if (strcmp(run->steps_read[i], st->id) == 0)
      return true;
  return false;
}

/* ================================================================ groups */

static void on_group_timeout(uv_timer_t *timer)
{
  struct task *t = timer->data;
  char dur[32];
  pc_format_duration(t->group_timeout_ms, dur, sizeof dur);
  char *msg = pc_asprintf("timed out after %s", dur);
  task_cancel(t, PC_TIMEOUT, msg);
  free(msg);
}

/* Items a stopped fan-out never started get a result too, so `items` has no
 * holes and len(steps.ID.items) is the number of items. */
static void fill_unstarted_items(struct task *t)
{
  lua_State *L = t->run->L;
  if (t->next_kid >= t->total || t->items_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->items_ref); /* items */
  for (size_t i = t->next_kid; i < t->total; i++) {
    lua_createtable(L, 0, 2); /* items, r */
    lua_pushstring(L, pc_outcome_name(PC_CANCELLED));
    lua_setfield(L, -2, "outcome");
    lua_pushstring(L, "not started: the fan-out stopped early");
    lua_setfield(L, -2, "error");
    lua_rawseti(L, -2, (lua_Integer)i + 1); /* items */
  }
  lua_pop(L, 1);
}

static void group_finish(struct task *t)
{
  if (t->kind == TK_FOREACH)
    fill_unstarted_items(t);
  if (t->cancelled) {
    task_finish(t, t->cancel_as, t->cancel_msg);
    return;
  }
  enum pc_outcome o = t->failed_error ? PC_ERROR : t->failed_expect ? PC_FAILED : PC_OK;
  task_finish(t, o, o == PC_OK ? NULL : t->fail_msg);
}

static struct task *spawn_child(struct task *t, size_t i)
{
  struct pc_run *run = t->run;
  if (t->kind != TK_FOREACH)
    return task_new(run, t, t->kids[i], t->scope_ref, false, false);
  lua_State *L = run->L;
  if (t->static_body) {
    /* No expression can see this item: it needs no scope of its own. */
    struct task *c = task_new(run, t, t->step, t->scope_ref, false, true);
    c->item = i + 1;
    return c;
  }
  /* Only a group body has steps of its own whose `steps.ID` must mean this
   * item's instance; a leaf body needs no steps table per item, and at
   * 100 000 items that table (and its proxy) is a third of the cost: its
   * items' scopes share one metatable and are one small table each. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->list_ref); /* list */
  lua_geti(L, -1, (lua_Integer)(i + 1));          /* list, item */
  lua_remove(L, -2);                              /* item */
  int scope;
  if (t->inst_mt_ref != LUA_NOREF) {
    lua_pushinteger(L, (lua_Integer)(i + 1)); /* item, index */
    scope = pc_lua_instance_scope(run->lua, t->inst_mt_ref);
  } else {
    scope = pc_lua_child_scope(run->lua, t->scope_ref);
    pc_lua_scope_set(run->lua, scope, "item");
    lua_pushinteger(L, (lua_Integer)(i + 1));
    pc_lua_scope_set(run->lua, scope, "index");
  }
  struct task *c = task_new(run, t, t->step, scope, true, true);
  c->item = i + 1;
  return c;
}

static void group_fill(struct task *t)
{
  while (!t->stopping && t->next_kid < t->total && (t->limit <= 0 || t->running < t->limit)) {
    struct task *c = spawn_child(t, t->next_kid++);
    c->next = t->kids_head;
    if (t->kids_head)
      t->kids_head->prev = c;
    t->kids_head = c;
    t->running++;
    if (rec_of(t))
      rec_of(t)->running++;
    task_start(c);
  }
  if (t->running == 0 && (t->stopping || t->next_kid >= t->total))
    group_finish(t);
}

/* A child finished: record its result and failure, cancel its siblings if
 * this group must stop, then start more children or finish. */
static void group_child_done(struct task *t, struct task *c)
{
  lua_State *L = t->run->L;
  if (c->prev)
    c->prev->next = c->next;
  else
    t->kids_head = c->next;
  if (c->next)
    c->next->prev = c->prev;
  t->running--;
  struct pc_record *r = rec_of(t);
  if (r) {
    r->running--;
    r->finished++;
    if (outcome_is_failure(c->outcome))
      r->failed++;
  }

  if (t->kind == TK_FOREACH && t->items_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->items_ref);  /* items */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->result_ref); /* items, result */
    lua_rawseti(L, -2, (lua_Integer)c->item);         /* items */
    lua_pop(L, 1);
  }
  bool tolerated = c->step && c->step->continue_on_error;
  if (outcome_is_failure(c->outcome) && !tolerated) {
    if (c->outcome == PC_FAILED)
      t->failed_expect = true;
    else
      t->failed_error = true;
    if (!t->fail_msg) {
      char *label = task_label(c);
      t->fail_msg = c->kind == TK_LEAF
                        ? pc_asprintf("%s %s: %s", label, pc_outcome_name(c->outcome),
                                      c->error ? c->error : "")
                        : pc_xstrdup(c->error ? c->error : label);
      free(label);
    }
    if (t->kind == TK_SEQ || t->fail_fast) {
      t->stopping = true;
      for (struct task *s = t->kids_head; s; s = s->next)
        task_cancel(s, PC_CANCELLED, "cancelled: a sibling failed");
    }
  }
  task_release(c);
  group_fill(t);
}

/* ================================================================= leaves */

static void on_pool_granted(struct pc_pool_waiter *w)
{
  struct task *t = w->data;
  t->pools_held++;
  post(t, EV_GRANTED);
}

static void release_pools(struct task *t)
{
  const struct pc_step *st = t->step;
  if (t->pools_held < st->npools)
    pc_pool_cancel(&t->waiters[t->pools_held]);
  size_t held = t->pools_held;
  t->pools_held = 0;
  for (size_t i = 0; i < held; i++)
    pc_pool_release(&t->run->pools[st->pools[i]]);
}

static void on_attempt_timeout(uv_timer_t *timer);

static void attempt_start(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  const struct pc_step *st = t->step;
  t->state = TS_RUNNING;
  struct pc_attempt *a = &t->att;
  a->run = run;
  a->step = st;
  a->scope_ref = t->scope_ref;
  a->number = t->attempts;
  a->data = NULL;
  a->status = 0;
  a->exit_code = -1;
  a->retry_after_ms = -1;
  a->non_idempotent = false;
  a->nothing_sent = false;
  /* The result table, for actions that fill one or expectations that read
   * it; otherwise it is made at the end, if anything can read it. */
  a->result_ref = LUA_NOREF;
  if (t->ops->fills_result || st->expect.nthat) {
    lua_createtable(L, 0, t->ops->fills_result ? 16 : 0);
    a->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  a->params_ref = LUA_NOREF;
  t->att_live = true;
  if (st->timeout_ms >= 0) {
    uv_update_time(&run->loop); /* the loop's cached time may be stale by a busy iteration */
    uv_timer_start(task_timer(t), on_attempt_timeout, (uint64_t)ceil(st->timeout_ms), 0);
  }
  if (st->params && t->instance && t->parent->body_params_ref != LUA_NOREF) {
    a->params_ref = t->parent->body_params_ref;
    t->params_shared = true;
  } else if (st->params) {
    char *err = NULL;
    if (pc_lua_eval_tmpl(run->lua, st->params, t->scope_ref, &err) != 0) {
      pc_attempt_done(a, PC_FAIL_ERROR, err);
      free(err);
      return;
    }
    a->params_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  t->ops->start(a);
}

/* The leaf stops waiting for permits (it got them, or it is stopped). */
static void leaf_stop_waiting(struct task *t)
{
  if (!t->waiting)
    return;
  t->waiting = false;
  t->queued_ms += pc_mono_ms() - t->wait_since;
  record_waiting(t, false);
}

static void leaf_acquire(struct task *t)
{
  const struct pc_step *st = t->step;
  while (t->pools_held < st->npools) {
    struct pc_pool_waiter *w = &t->waiters[t->pools_held];
    w->data = t;
    if (!pc_pool_acquire(&t->run->pools[st->pools[t->pools_held]], w, on_pool_granted)) {
      if (!t->waiting) {
        t->waiting = true;
        t->wait_since = pc_mono_ms();
        record_waiting(t, true);
      }
      return;
    }
    t->pools_held++;
  }
  leaf_stop_waiting(t);
  if (t->ran_mono == 0) {
    t->ran_mono = pc_mono_ms();
    record_running(t);
  }
  attempt_start(t);
}

static void leaf_next_attempt(struct task *t)
{
  t->attempts++;
  t->state = TS_WAIT_POOL;
  t->pools_held = 0;
  leaf_acquire(t);
}

static void on_backoff_done(uv_timer_t *timer)
{
  leaf_next_attempt(timer->data);
}

void pc_attempt_done(struct pc_attempt *a, enum pc_fail fail, const char *msg)
{
  struct task *t = PC_CONTAINER_OF(a, struct task, att);
  assert(t->att_live);
  t->att_live = false;
  t->att_fail = fail;
  free(t->att_msg);
  t->att_msg = msg ? pc_xstrdup(msg) : NULL;
  post(t, EV_ATTEMPT_DONE);
}

/* Drops the attempt's evaluated params (a fan-out's shared value stays). */
static void release_params(struct task *t)
{
  if (!t->params_shared)
    pc_lua_unref(t->run->lua, t->att.params_ref);
  t->att.params_ref = LUA_NOREF;
  t->params_shared = false;
}

/* Stops whatever the leaf is doing right now; used by cancel and timeout. */
static void leaf_abort(struct task *t)
{
  if (t->att_live) {
    t->att_live = false;
    t->ops->cancel(&t->att);
  }
  t->events &= ~(EV_ATTEMPT_DONE | EV_GRANTED);
  task_timer_stop(t);
  leaf_stop_waiting(t);
  if (t->state == TS_WAIT_POOL || t->state == TS_RUNNING)
    release_pools(t);
  release_params(t);
}

static void on_attempt_timeout(uv_timer_t *timer)
{
  struct task *t = timer->data;
  if (t->state != TS_RUNNING)
    return;
  if (!t->att_live)
    return; /* finished just now; its completion is queued and stands */
  t->att_live = false;
  t->ops->cancel(&t->att);
  char dur[32];
  pc_format_duration(t->step->timeout_ms, dur, sizeof dur);
  struct pc_buf b;
  pc_buf_init(&b, 8192);
  if (t->ops->subject) {
    t->ops->subject(&t->att, &b);
    if (b.len)
      pc_buf_puts(&b, ": ");
  }
  pc_buf_printf(&b, "timed out after %s", dur);
  attempt_end(t, PC_FAIL_TIMEOUT, pc_buf_steal(&b));
}

static bool status_in(int status, const struct pc_status_range *r, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (status >= r[i].lo && status <= r[i].hi)
      return true;
  return false;
}

static void describe_ranges(struct pc_buf *b, const struct pc_status_range *r, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (i)
      pc_buf_puts(b, i + 1 == n ? " or " : ", ");
    if (r[i].lo == r[i].hi)
      pc_buf_printf(b, "%d", r[i].lo);
    else if (r[i].hi - r[i].lo == 99 && r[i].lo % 100 == 0)
      pc_buf_printf(b, "%dxx", r[i].lo / 100);
    else
      pc_buf_printf(b, "%d-%d", r[i].lo, r[i].hi);
  }
}

/* Checks the expectations of a finished attempt. Returns NULL if they hold,
 * else a malloc'd message; *is_error is set when evaluating failed. */
static char *check_expect(struct task *t, bool *is_error)
{
  const struct pc_step *st = t->step;
  const struct pc_expect *ex = &st->expect;
  struct pc_attempt *a = &t->att;
  struct pc_lua *h = t->run->lua;
  lua_State *L = t->run->L;
  *is_error = false;
  t->status_failed = false;

  if (t->ops->has_status) {
    static const struct pc_status_range below400 = {0, 399};
    const struct pc_status_range *r = ex->nstatus ? ex->status : &below400;
    size_t n = ex->nstatus ? ex->nstatus : 1;
    if (!status_in(a->status, r, n)) {
      struct pc_buf b;
      pc_buf_init(&b, 4096);
      if (ex->nstatus) {
        pc_buf_puts(&b, "expected status ");
        describe_ranges(&b, r, n);
      } else {
        pc_buf_puts(&b, "expected status below 400");
      }
      pc_buf_printf(&b, ", got %d", a->status);
      t->status_failed = true;
      return pc_buf_steal(&b);
    }
  }
  if (t->ops->has_exit_code) {
    bool ok = false;
    if (ex->nexit_codes) {
      for (size_t i = 0; i < ex->nexit_codes; i++)
        ok = ok || ex->exit_codes[i] == a->exit_code;
    } else {
      ok = a->exit_code == 0;
    }
    if (!ok && a->exit_code < 0)
      return pc_asprintf("expected exit code %d, got none", ex->nexit_codes ? ex->exit_codes[0] : 0);
    if (!ok)
      return pc_asprintf("expected exit code %d, got %d",
                         ex->nexit_codes ? ex->exit_codes[0] : 0, a->exit_code);
  }
  if (ex->nthat) {
    int scope = t->scope_ref;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref);
    pc_lua_scope_bind(h, scope, "result"); /* old */
    char *msg = NULL;
    for (size_t i = 0; i < ex->nthat && !msg; i++) {
      bool ok = false;
      char *err = NULL;
      if (pc_lua_eval_bool(h, ex->that[i], scope, &ok, &err) != 0) {
        msg = err;
        *is_error = true;
      } else if (!ok) {
        msg = pc_asprintf("expectation failed: %s (%s:%d:%d)", ex->that[i]->src,
                          ex->that[i]->file, ex->that[i]->line, ex->that[i]->col);
      }
    }
    pc_lua_scope_unbind(h, scope, "result");
    if (msg)
      return msg;
  }
  return NULL;
}

/* Whether retry.on covers this failure (attempts and method aside). */
static bool retry_on_covers(struct task *t, enum pc_fail fail)
{
  const struct pc_retry *r = &t->step->retry;
  unsigned on = r->on_set ? r->on : t->ops->default_on;
  int status = t->att.status;
  switch (fail) {
  case PC_FAIL_NONE:
    return false;
  case PC_FAIL_NETWORK:
    return on & PC_ON_NETWORK;
  case PC_FAIL_TIMEOUT:
    return on & PC_ON_TIMEOUT;
  case PC_FAIL_ERROR:
    return on & PC_ON_ERROR;
  case PC_FAIL_EXPECT:
    if (t->status_failed) {
      const int *codes = r->on_set ? r->codes : NULL;
      size_t ncodes = r->on_set ? r->ncodes : 0;
      static const int http_default[] = {429, 502, 503, 504};
      if (!r->on_set && t->ops->has_status) {
        codes = http_default;
        ncodes = PC_ARRAY_SIZE(http_default);
      }
      for (size_t i = 0; i < ncodes; i++)
        if (codes[i] == status)
          return true;
      if (status >= 500 && status <= 599 && (on & PC_ON_5XX))
        return true;
      if (status >= 400 && status <= 499 && (on & PC_ON_4XX))
        return true;
    }
    return on & PC_ON_EXPECT;
  }
  return false;
}

/* A failure is retried when retry.on covers it and attempts are left, but
 * a request that is not idempotent (POST, PATCH) only if retry.unsafe says
 * so or nothing of it was sent (connection refused, DNS, TLS handshake,
 * connect timeout): a server cannot have acted on it. *held is set when
 * only that kept the failure from being retried. */
static bool should_retry(struct task *t, enum pc_fail fail, bool *held)
{
  const struct pc_retry *r = &t->step->retry;
  *held = false;
  if (t->attempts >= r->attempts || !retry_on_covers(t, fail))
    return false;
  if (t->att.non_idempotent && !r->unsafe && !t->att.nothing_sent) {
    *held = true;
    return false;
  }
  return true;
}

static double backoff_ms(struct task *t)
{
  const struct pc_retry *r = &t->step->retry;
  if (t->att.retry_after_ms >= 0)
    return fmin(t->att.retry_after_ms, r->max_backoff_ms);
  double d = r->backoff_ms * pow(r->factor, t->attempts - 1);
  d = fmin(d, r->max_backoff_ms);
  if (r->jitter)
    d = d * ((double)rand() / ((double)RAND_MAX + 1.0));
  return d;
}

static enum pc_outcome fail_outcome(enum pc_fail f)
{
  switch (f) {
  case PC_FAIL_NONE:
    return PC_OK;
  case PC_FAIL_EXPECT:
    return PC_FAILED;
  case PC_FAIL_TIMEOUT:
    return PC_TIMEOUT;
  case PC_FAIL_NETWORK:
  case PC_FAIL_ERROR:
    break;
  }
  return PC_ERROR;
}

/* One attempt is over (done, failed or timed out): check expectations, then
 * retry or finish. Takes ownership of msg. */
static void attempt_end(struct task *t, enum pc_fail fail, char *msg)
{
  task_timer_stop(t);
  release_pools(t);
  t->status_failed = false;
  if (fail == PC_FAIL_NONE) {
    bool is_error = false;
    free(msg);
    msg = check_expect(t, &is_error);
    if (msg)
      fail = is_error ? PC_FAIL_ERROR : PC_FAIL_EXPECT;
    if (msg && t->ops->describe) {
      struct pc_buf b;
      pc_buf_init(&b, 8192);
      pc_buf_puts(&b, msg);
      t->ops->describe(&t->att, &b);
      free(msg);
      msg = pc_buf_steal(&b);
    }
  }
  release_params(t);
  bool held = false;
  if (fail != PC_FAIL_NONE && !t->cancelled && should_retry(t, fail, &held)) {
    double wait = backoff_ms(t);
    char dur[32];
    pc_format_duration(wait, dur, sizeof dur);
    char *label = task_label(t);
    pc_log(PC_LOG_WARN, label, "attempt %d/%d %s: %s; retrying in %s", t->attempts,
           t->step->retry.attempts, pc_outcome_name(fail_outcome(fail)), msg ? msg : "", dur);
    free(label);
    free(msg);
    pc_lua_unref(t->run->lua, t->att.result_ref);
    t->att.result_ref = LUA_NOREF;
    t->state = TS_BACKOFF;
    uv_update_time(&t->run->loop); /* the cached clock may be stale */
    uv_timer_start(task_timer(t), on_backoff_done, (uint64_t)ceil(wait), 0);
    return;
  }
  if (held) {
    char *m = pc_asprintf("%s; not retried: the server may have acted on the request and its "
                          "method is not idempotent (retry.unsafe: true retries it anyway)",
                          msg ? msg : "");
    free(msg);
    msg = m;
  }
  task_finish(t, fail_outcome(fail), msg);
  free(msg);
}

/* ======================================================= start / cancel */

/* Checks that the value on top of the stack is a list (a table whose keys
 * are exactly 1..N; an empty table is the empty list). Returns NULL, or a
 * message naming the expression's position and what it got instead: a map,
 * a string or a number would otherwise run zero items and succeed. */
static char *not_a_list(lua_State *L, const struct pc_step *st)
{
  char *got = NULL;
  if (!lua_istable(L, -1)) {
    got = lua_type(L, -1) == LUA_TSTRING ? pc_xstrdup("a string")
          : lua_type(L, -1) == LUA_TNUMBER ? pc_xstrdup("a number")
          : lua_isnil(L, -1) ? pc_xstrdup("nil")
                             : pc_asprintf("a %s", luaL_typename(L, -1));
  } else {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1), count = 0;
    lua_pushnil(L); /* value, key */
    while (!got && lua_next(L, -2) != 0) { /* value, key, v */
      lua_pop(L, 1);                       /* value, key */
      count++;
      if (lua_type(L, -1) == LUA_TSTRING) {
        got = pc_asprintf("a map (key \"%.40s\")", lua_tostring(L, -1));
        lua_pop(L, 1); /* value */
        break;
      }
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
        got = pc_xstrdup("a table whose keys are not 1..N");
        lua_pop(L, 1); /* value */
        break;
      }
    }
    if (!got && count != n)
      got = pc_xstrdup("a table whose keys are not 1..N");
  }
  if (!got)
    return NULL;
  const char *base = strrchr(st->file, '/');
  char *m = pc_asprintf("for_each (%s:%d:%d) must be a list, got %s", base ? base + 1 : st->file,
                        st->for_each->line, st->for_each->col, got);
  free(got);
  return m;
}

static void foreach_begin(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  char *err = NULL;
  if (pc_lua_eval_tmpl(run->lua, t->step->for_each, t->scope_ref, &err) != 0) {
    task_finish(t, PC_ERROR, err);
    free(err);
    return;
  }
  char *notlist = not_a_list(L, t->step);
  if (notlist) {
    lua_pop(L, 1);
    task_finish(t, PC_ERROR, notlist);
    free(notlist);
    return;
  }
  t->total = (size_t)luaL_len(L, -1);
  if (rec_of(t))
    rec_of(t)->total = t->total;
  t->list_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (results_readable(run, t->step)) {
    lua_createtable(L, (int)(t->total < 1000000 ? t->total : 1000000), 0);
    t->items_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  t->static_body = step_is_static(run, t->step);
  if (!pc_step_is_group(t->step) && !t->static_body)
    t->inst_mt_ref = pc_lua_instance_mt(run->lua, t->scope_ref);
  const struct pc_tmpl *p = t->step->params;
  if (t->static_body && p && p->kind != PC_T_SEQ && p->kind != PC_T_MAP) {
    char *perr = NULL;
    if (pc_lua_eval_tmpl(run->lua, p, t->scope_ref, &perr) == 0) /* a constant: cannot fail */
      t->body_params_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    free(perr);
  }
  t->state = TS_GROUP;
  group_fill(t);
}

static void task_start(struct task *t)
{
  struct pc_run *run = t->run;
  const struct pc_step *st = t->step;
  t->started_mono = pc_mono_ms();
  record_start(t);
  if (st && !t->instance && st->if_expr) {
    bool ok = false;
    char *err = NULL;
    if (pc_lua_eval_bool(run->lua, st->if_expr, t->scope_ref, &ok, &err) != 0) {
      task_finish(t, PC_ERROR, err);
      free(err);
      return;
    }
    if (!ok) {
      task_finish(t, PC_SKIPPED, NULL);
      return;
    }
  }
  if (st && pc_log_enabled(PC_LOG_DEBUG)) {
    char *label = task_label(t);
    pc_log(PC_LOG_DEBUG, label, "start");
    free(label);
  }
  switch (t->kind) {
  case TK_LEAF:
    leaf_next_attempt(t);
    break;
  case TK_FOREACH:
    foreach_begin(t);
    break;
  case TK_SEQ:
  case TK_GATHER:
    t->state = TS_GROUP;
    t->total = t->nkids;
    if (rec_of(t))
      rec_of(t)->total = t->total;
    if (t->group_timeout_ms >= 0) {
      /* The loop's clock is cached per iteration (and the first group starts
       * before the loop runs at all): refresh it, or the timeout comes early
       * by however long the loop has been busy. */
      uv_update_time(&run->loop);
      uv_timer_start(task_timer(t), on_group_timeout, (uint64_t)ceil(t->group_timeout_ms), 0);
    }
    group_fill(t);
    break;
  }
}

static void task_cancel(struct task *t, enum pc_outcome as, const char *msg)
{
  if (t->state == TS_DONE || t->cancelled)
    return;
  t->cancelled = true;
  t->cancel_as = as;
  t->cancel_msg = pc_xstrdup(msg);
  if (t->kind == TK_LEAF) {
    if (t->state == TS_RUNNING && !t->att_live && (t->events & EV_ATTEMPT_DONE)) {
      /* The attempt had already ended (its completion waits in the ready
       * queue: a timer that fires in the same loop iteration as the one
       * that ended it gets here first). What it did stands; `cancelled`
       * only stops a retry. */
      t->events &= ~EV_ATTEMPT_DONE;
      char *amsg = t->att_msg;
      t->att_msg = NULL;
      attempt_end(t, t->att_fail, amsg);
      if (t->state == TS_DONE)
        return;
    }
    leaf_abort(t);
    pc_lua_unref(t->run->lua, t->att.result_ref);
    t->att.result_ref = LUA_NOREF;
    task_finish(t, as, msg);
    return;
  }
  task_timer_stop(t);
  t->stopping = true;
  const char *why = as == PC_TIMEOUT ? "cancelled: the enclosing group timed out" : msg;
  for (struct task *c = t->kids_head; c; c = c->next)
    task_cancel(c, PC_CANCELLED, why);
  if (t->running == 0)
    group_finish(t);
}

/* ================================================================== run */

static void close_run_handles(struct pc_run *run)
{
  pc_watchdog_stop(run->watchdog);
  run->watchdog = NULL;
  /* The signal handlers stay until the reports are written (a signal
   * while programs are being stopped must not kill pacer with the default
   * action), but no longer keep the loop alive. */
  uv_unref((uv_handle_t *)&run->sigint);
  uv_unref((uv_handle_t *)&run->sigterm);
  uv_unref((uv_handle_t *)&run->sighup);
  uv_close((uv_handle_t *)&run->deadline, NULL);
  uv_close((uv_handle_t *)&run->drain, NULL);
  pc_progress_stop(run->progress);
  run->progress = NULL;
  for (size_t i = 0; i < run->npools; i++)
    pc_pool_close(&run->pools[i], NULL);
}

static void start_finally(struct pc_run *run)
{
  run->fin_ran = true;
  run->fin = task_new(run, NULL, NULL, run->root_scope, false, false);
  run->fin->kids = run->wf->finally;
  run->fin->nkids = run->wf->nfinally;
  /* After a deadline or a signal, `finally` still runs but is bounded. */
  if (run->signal || run->deadline_hit)
    run->fin->group_timeout_ms = run->opts->finally_grace_ms;
  task_start(run->fin);
}

static void on_root_done(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  if (t == run->main) {
    run->main_outcome = t->outcome;
    const char *wo = run->signal         ? "cancelled"
                     : run->deadline_hit ? "timeout"
                                         : pc_outcome_name(t->outcome);
    lua_pushstring(L, wo);
    pc_lua_set_workflow_field(run->lua, run->root_scope, "outcome");
    task_release(t);
    run->main = NULL;
    if (run->wf->nfinally) {
      start_finally(run);
      return;
    }
  } else {
    run->fin_outcome = t->outcome;
    task_release(t);
    run->fin = NULL;
  }
  run->finished = true;
  close_run_handles(run);
}

static void cancel_everything(struct pc_run *run, enum pc_outcome as, const char *msg)
{
  if (run->main) {
    task_cancel(run->main, as, msg);
  } else if (run->fin && run->fin->group_timeout_ms < 0 && !run->fin->cancelled) {
    /* Already in `finally`: let it finish, within the grace period. */
    run->fin->group_timeout_ms = run->opts->finally_grace_ms;
    uv_update_time(&run->loop);
    uv_timer_start(task_timer(run->fin), on_group_timeout,
                   (uint64_t)ceil(run->fin->group_timeout_ms), 0);
  }
}

static void on_deadline(uv_timer_t *timer)
{
  struct pc_run *run = PC_CONTAINER_OF(timer, struct pc_run, deadline);
  char dur[32];
  pc_format_duration(run->timeout_ms, dur, sizeof dur);
  pc_log(PC_LOG_ERROR, NULL, "workflow deadline of %s exceeded; cancelling", dur);
  run->deadline_hit = true;
  char *msg = pc_asprintf("cancelled: the workflow deadline (%s) was exceeded", dur);
  cancel_everything(run, PC_CANCELLED, msg);
  free(msg);
}

/* What would outlive an immediate exit (child process groups) is stopped;
 * used by a second signal and by the watchdog thread. */
static void kill_children_now(void *data)
{
  struct pc_run *run = data;
  for (int a = 0; a <= PC_ACT_SHELL; a++) {
    const struct pc_action_ops *ops = pc_action_ops((enum pc_action)a);
    if (ops && ops->kill_now)
      ops->kill_now(run);
  }
}

static const char *signal_name(int signum)
{
  return signum == SIGINT ? "SIGINT" : signum == SIGHUP ? "SIGHUP" : "SIGTERM";
}

static int signal_exit(int signum)
{
  return signum == SIGINT ? PC_EXIT_SIGINT : signum == SIGHUP ? PC_EXIT_SIGHUP : PC_EXIT_SIGTERM;
}

/* SIGINT, SIGTERM and SIGHUP (a closed terminal, a restarted supervisor)
 * all mean "stop": cancel, run `finally`, write the reports. A second one
 * means "now". */
static void on_signal(uv_signal_t *h, int signum)
{
  struct pc_run *run = h->data;
  const char *name = signal_name(signum);
  if (run->signal) {
    pc_log(PC_LOG_ERROR, NULL, "second %s: exiting at once", name);
    kill_children_now(run);
    fflush(NULL);
    _exit(signal_exit(signum));
  }
  run->signal = signum;
  if (run->finished) {
    /* Steps and `finally` are over; programs that outlived their steps are
     * being stopped (SIGTERM, a grace period, SIGKILL) before the reports
     * are written. Do not wait for the grace period. */
    pc_log(PC_LOG_WARN, NULL, "%s received while stopping programs: killing them now", name);
    kill_children_now(run);
    return;
  }
  pc_log(PC_LOG_WARN, NULL, "%s received: cancelling, then running finally", name);
  uv_timer_stop(&run->deadline);
  char *msg = pc_asprintf("cancelled: interrupted by %s", name);
  cancel_everything(run, PC_CANCELLED, msg);
  free(msg);
}

/* Evaluates `vars`, then merges --vars-file and --var over it. Leaves the
 * vars table on the stack. Returns 0 or -1 (message printed). */
static int build_vars(struct pc_run *run)
{
  struct pc_lua *h = run->lua;
  lua_State *L = run->L;
  const struct pc_run_opts *o = run->opts;

  /* `vars` may use env/secrets, so evaluate it in a scope with empty vars. */
  lua_newtable(L);
  int boot = pc_lua_root_scope(h, run->wf->name, run->run_id);
  if (run->wf->vars) {
    char *err = NULL;
    if (pc_lua_eval_tmpl(h, run->wf->vars, boot, &err) != 0) {
      pc_log(PC_LOG_ERROR, NULL, "vars: %s", err);
      free(err);
      pc_lua_unref(h, boot);
      return -1;
    }
  } else {
    lua_newtable(L);
  }
  pc_lua_unref(h, boot);
  int vars = lua_gettop(L);

  if (o->vars_file) {
    struct pc_diag d;
    pc_diag_init(&d);
    struct pc_node *n = NULL;
    if (pc_yaml_load_file(o->vars_file, &pc_yaml_default_limits, &n, &d) != 0) {
      pc_diag_print(&d, stderr);
      pc_diag_free(&d);
      lua_pop(L, 1);
      return -1;
    }
    pc_diag_free(&d);
    if (n->kind != PC_NODE_MAP) {
      fprintf(stderr, "%s:%d:%d: error: --vars-file must hold a map of names to values\n",
              o->vars_file, n->line, n->col);
      pc_node_free(n);
      lua_pop(L, 1);
      return -1;
    }
    for (size_t i = 0; i < n->n; i++) {
      pc_lua_push_node(h, n->items[i]);
      lua_setfield(L, vars, n->keys[i]->str);
    }
    pc_node_free(n);
  }
  for (size_t i = 0; i < o->nvars; i++) {
    const char *eq = strchr(o->vars[i], '=');
    if (!eq || eq == o->vars[i]) {
      fprintf(stderr, "error: --var expects NAME=VALUE, got \"%s\"\n", o->vars[i]);
      lua_pop(L, 1);
      return -1;
    }
    char *name = pc_xstrndup(o->vars[i], (size_t)(eq - o->vars[i]));
    const char *value = eq + 1;
    if (!*value) {
      lua_pushliteral(L, "");
    } else {
      struct pc_diag d;
      pc_diag_init(&d);
      struct pc_node *n = NULL;
      char *src = pc_asprintf("--var %s", name);
      if (pc_yaml_load_string(src, value, strlen(value), &pc_yaml_default_limits, &n, &d) != 0) {
        pc_diag_print(&d, stderr);
        pc_diag_free(&d);
        free(src);
        free(name);
        lua_pop(L, 1);
        return -1;
      }
      free(src);
      pc_diag_free(&d);
      pc_lua_push_node(h, n);
      pc_node_free(n);
    }
    lua_setfield(L, vars, name);
    free(name);
  }
  return 0;
}

static int exit_code(const struct pc_run *run)
{
  if (run->signal)
    return signal_exit(run->signal);
  if (run->deadline_hit)
    return PC_EXIT_DEADLINE;
  enum pc_outcome outs[2] = {run->main_outcome, run->fin_ran ? run->fin_outcome : PC_OK};
  int code = PC_EXIT_OK;
  for (int i = 0; i < 2; i++) {
    if (outs[i] == PC_ERROR || outs[i] == PC_TIMEOUT || outs[i] == PC_CANCELLED)
      code = PC_EXIT_ERROR;
    else if (outs[i] == PC_FAILED && code == PC_EXIT_OK)
      code = PC_EXIT_FAILED;
  }
  return code;
}

int pc_run_workflow(struct pc_workflow *wf, struct pc_lua *h, const struct pc_run_opts *o)
{
  struct pc_run *run = pc_xcalloc(1, sizeof *run);
  run->lua = h;
  run->L = pc_lua_state(h);
  run->wf = wf;
  run->opts = o;
  run->timeout_ms = o->timeout_ms >= 0 ? o->timeout_ms : wf->timeout_ms;
  run->started_mono = pc_mono_ms();
  run->started_wall = pc_wall_ms();
  {
    char ts[40];
    pc_format_iso8601(run->started_wall, ts, sizeof ts);
    snprintf(run->run_id, sizeof run->run_id, "%.4s%.2s%.2sT%.2s%.2s%.2s-%04x", ts, ts + 5,
             ts + 8, ts + 11, ts + 14, ts + 17, (unsigned)(getpid() & 0xffff));
  }
  srand((unsigned)(uv_hrtime() ^ (uint64_t)getpid()));
  run->recording = o->record || o->nreports > 0 || o->progress;
  run->rep.wf = wf;
  run->rep.run_id = run->run_id;
  run->rep.start_ms = run->started_wall;
  run->rep.start_mono = run->started_mono;

  if (build_vars(run) != 0) {
    free(run);
    return PC_EXIT_USAGE;
  }
  /* Every report must be writable before anything runs: a run that has
   * done its work and then cannot leave its report turns green into red
   * with nothing to look at. */
  struct pc_outfile *outs = pc_xcalloc(o->nreports ? o->nreports : 1, sizeof *outs);
  for (size_t i = 0; i < o->nreports; i++) {
    pc_outfile_init(&outs[i]);
    const char *path = strchr(o->reports[i], ':') + 1;
    char *oerr = NULL;
    if (pc_outfile_open(&outs[i], path, PC_OUTFILE_MKDIRS | PC_OUTFILE_SYNC | PC_OUTFILE_LATER,
                        &oerr) != 0) {
      fprintf(stderr, "pacer run: --report %s: %s; nothing was run\n", o->reports[i], oerr);
      free(oerr);
      for (size_t k = 0; k <= i; k++)
        pc_outfile_discard(&outs[k]);
      free(outs);
      lua_pop(run->L, 1); /* the vars table */
      free(run);
      return PC_EXIT_USAGE;
    }
  }
  scan_results_readers(run);
  run->root_scope = pc_lua_root_scope(h, wf->name, run->run_id);

  int err = uv_loop_init(&run->loop);
  if (err) {
    fprintf(stderr, "error: cannot start the event loop: %s\n", uv_strerror(err));
    for (size_t i = 0; i < o->nreports; i++)
      pc_outfile_discard(&outs[i]);
    free(outs);
    pc_lua_unref(h, run->root_scope);
    free(run);
    return PC_EXIT_ERROR;
  }
  uv_idle_init(&run->loop, &run->drain);
  uv_timer_init(&run->loop, &run->deadline);
  uv_signal_init(&run->loop, &run->sigint);
  uv_signal_init(&run->loop, &run->sigterm);
  uv_signal_init(&run->loop, &run->sighup);
  run->sigint.data = run->sigterm.data = run->sighup.data = run;
  uv_signal_start(&run->sigint, on_signal, SIGINT);
  uv_signal_start(&run->sigterm, on_signal, SIGTERM);
  /* Under nohup SIGHUP is ignored, and must stay so: watching it would
   * turn the hangup nohup protects against into a cancellation. */
  struct sigaction hup;
  if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
    uv_signal_start(&run->sighup, on_signal, SIGHUP);
  run->npools = wf->npools;
  run->pools = pc_xcalloc(wf->npools ? wf->npools : 1, sizeof *run->pools);
  for (size_t i = 0; i < wf->npools; i++)
    pc_pool_init(&run->loop, &run->pools[i], &wf->pools[i]);
  if (run->timeout_ms >= 0) {
    /* Counted from the run's start, as pc_run_deadline_ms() is. */
    uv_update_time(&run->loop);
    double left = run->started_mono + run->timeout_ms - pc_mono_ms();
    uv_timer_start(&run->deadline, on_deadline, (uint64_t)ceil(left > 0 ? left : 0), 0);
  }
  run->watchdog = pc_watchdog_start(
      &run->loop, run->timeout_ms >= 0 ? run->started_mono + run->timeout_ms : -1,
      kill_children_now, run);
  if (o->progress)
    run->progress = pc_progress_start(&run->loop, &run->rep);

  pc_log(PC_LOG_DEBUG, NULL, "run %s of %s (%s)", run->run_id, wf->name, wf->file);
  run->main = task_new(run, NULL, NULL, run->root_scope, false, false);
  run->main->kids = wf->steps;
  run->main->nkids = wf->nsteps;
  task_start(run->main);
  uv_run(&run->loop, UV_RUN_DEFAULT);
  assert(run->finished);

  /* The HTTP session goes with run_cleanup: keep its statistics first. */
  if (run->recording)
    pc_http_stats_get(run, &run->rep.http);
  for (int a = 0; a <= PC_ACT_SHELL; a++) {
    const struct pc_action_ops *ops = pc_action_ops((enum pc_action)a);
    if (ops && ops->run_cleanup)
      ops->run_cleanup(run);
  }
  uv_run(&run->loop, UV_RUN_DEFAULT);

  /* A loop blocked past the deadline (CPU-bound Lua stopped by its guard)
   * can end the run before the deadline timer had a chance to fire: the
   * deadline was exceeded all the same. */
  if (!run->deadline_hit && run->timeout_ms >= 0 &&
      pc_mono_ms() - run->started_mono >= run->timeout_ms)
    run->deadline_hit = true;
  int code = exit_code(run);
  char dur[32];
  pc_format_duration(pc_mono_ms() - run->started_mono, dur, sizeof dur);
  const char *what = run->signal ? "interrupted" : run->deadline_hit ? "deadline exceeded"
                     : code == 0 ? "ok" : code == PC_EXIT_FAILED ? "failed" : "error";
  pc_log(code == 0 ? PC_LOG_INFO : PC_LOG_ERROR, NULL, "workflow %s: %s in %s (exit %d)",
         wf->name, what, dur, code);

  /* Reports are written whatever happened: failure, deadline or signal. */
  run->rep.duration_ms = pc_mono_ms() - run->started_mono;
  run->rep.outcome = run->signal         ? "cancelled"
                     : run->deadline_hit ? "timeout"
                                         : pc_outcome_name(run->main_outcome);
  run->rep.exit_code = code;
  run->rep.finished = true;
  for (size_t i = 0; i < o->nreports; i++) {
    const char *colon = strchr(o->reports[i], ':');
    char *format = pc_xstrndup(o->reports[i], (size_t)(colon - o->reports[i]));
    if (pc_report_write(format, &outs[i], &run->rep) != 0 && code == PC_EXIT_OK)
      code = PC_EXIT_ERROR;
    free(format);
  }
  free(outs);
  /* Only now may a signal end pacer with its default action. */
  uv_close((uv_handle_t *)&run->sigint, NULL);
  uv_close((uv_handle_t *)&run->sigterm, NULL);
  uv_close((uv_handle_t *)&run->sighup, NULL);
  uv_run(&run->loop, UV_RUN_DEFAULT);
  err = uv_loop_close(&run->loop);
  assert(err == 0);
  (void)err;
  records_free(&run->rep);
  pc_http_stats_free(&run->rep.http);
  free(run->free_lanes);
  for (size_t i = 0; i < run->nsteps_read; i++)
    free(run->steps_read[i]);
  free(run->steps_read);
  pc_lua_unref(h, run->root_scope);
  free(run->pools);
  free(run);
  return code;
}
