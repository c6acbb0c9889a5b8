/* coro.c: the coroutine runtime (see coro.h): jobs, their trees of
 * coroutines, resumes, closing, and how a coroutine's end reaches whoever
 * waits for it.
 *
 * Every coroutine is a lua_newthread anchored with luaL_ref and unreffed
 * exactly once, in coro_free. Its thread's extra space points back at it;
 * threads that user code creates with coroutine.create copy the main
 * thread's (NULL), which is how async calls made from them are recognised
 * and refused.
 *
 * Resumes. An operation completing (a timer, a pool grant, a process exit,
 * a task finishing) only calls pc_coro_wake(), which queues the coroutine
 * on the job's deferred queue; coro_run() resumes it from the drain. The
 * pending operation is {cancel, data}: set by pc_coro_await() just before
 * lua_yieldk, moved to co->woken and cleared just before lua_resume, and
 * handed to the continuation function, which consumes it. If the coroutine
 * is closed instead, cancel(data) is called, whether or not the operation
 * had already completed: cancel functions handle both.
 *
 * Closing (pc__coro_close): children first, then the pending operation,
 * then lua_resetthread, which runs the thread's pending to-be-closed
 * variables (Lua 5.4.4; lua_closethread in 5.4.6). Closing the coroutine
 * that is running right now (a task cancelling itself or an ancestor) only
 * marks it; it yields and coro_run closes it once the resume has returned.
 *
 * Guards (host.h). Every resume runs inside a guard whose deadline is the
 * job's (its step's timeout, or the workflow's): past it, the guard yields
 * the coroutine (or raises "CPU-bound" at every instruction where it
 * cannot), and the job ends as a timeout; a coroutine resumed after its
 * job's deadline (a gather of many small functions that never gives the
 * loop a turn) stops at its first instruction. Lua code that runs for more
 * than 100 ms without yielding is reported with the job's label. The
 * state's memory limit applies inside guards only, so the engine's own
 * allocations never fail because of it.
 *
 * Children. Each coroutine lists its children (gather, timeout), and the
 * job its top-level coroutines (the root, spawned tasks), newest first:
 * every operation on them is constant time per coroutine, so gathering n
 * functions costs O(n). */
#include "script/coro.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/log.h"
#include "base/util.h"
#include "script/host.h"
#include "script/internal.h"

#define CLOSE_LIMIT_MS 1000.0 /* bound on <close> handlers while cancelling */

#define CPU_BOUND_MSG \
  "CPU-bound: the step's Lua code ran past its deadline without yielding, and was stopped"

char pc__host_thread_mark;

static void coro_run(struct pc_coro *co);
static void coro_after_resume(struct pc_coro *co, int st, int nres);
static void job_end(struct pc_coro_job *j, enum pc_fail fail, const char *msg);

/* ========================================================= coroutines */

struct pc_coro *pc_coro_of(lua_State *L)
{
  struct pc_coro *co = *pc__thread_slot(L);
  return co == PC__HOST_THREAD ? NULL : co;
}

static void on_resume_due(struct pc_deferred *d)
{
  coro_run(PC_CONTAINER_OF(d, struct pc_coro, dq));
}

void pc_coro_wake(struct pc_coro *co)
{
  const struct pc_coro_sched *s = &co->job->sched;
  s->defer(s->ctx, &co->dq, on_resume_due);
}

static void unwake(struct pc_coro *co)
{
  const struct pc_coro_sched *s = &co->job->sched;
  s->defer_cancel(s->ctx, &co->dq);
}

int pc_coro_await(lua_State *L, struct pc_coro *co, void (*cancel)(void *), void *data,
                  lua_KFunction k)
{
  assert(!co->pending.cancel);
  co->pending.cancel = cancel;
  co->pending.data = data;
  return lua_yieldk(L, 0, 0, k);
}

void *pc_coro_woken(lua_State *L)
{
  struct pc_coro *co = pc_coro_of(L);
  void *data = co->woken;
  co->woken = NULL;
  return data;
}

struct pc_coro *pc_coro_check(lua_State *L, const char *what)
{
  struct pc_coro *co = pc_coro_of(L);
  if (!co) {
    if (*pc__thread_slot(L) == PC__HOST_THREAD)
      luaL_error(L, "%s cannot wait inside a __gc finalizer", what);
    if (lua_pushthread(L)) {
      lua_pop(L, 1);
      luaL_error(L, "%s: async calls work only while a step runs (a plugin's run, inline "
                    "`lua:` code, or a function run by pacer.spawn/gather/timeout), not while "
                    "a plugin file loads or an expression is evaluated", what);
    }
    lua_pop(L, 1);
    luaL_error(L, "%s cannot wait inside a coroutine made with coroutine.create/wrap: pacer "
                  "can suspend only its own coroutines (use pacer.spawn or pacer.gather)", what);
  }
  if (co->closing || co->kill_requested)
    luaL_error(L, "%s: the task is being cancelled", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot wait here: it was called through a C function that cannot yield "
                  "(a table.sort comparator, a string.gsub replacement function, a "
                  "__tostring called by tostring, ...)", what);
  return co;
}

struct pc_coro_job *pc_coro_job_of(const struct pc_coro *co)
{
  return co->job;
}

const char *pc_coro_label(const struct pc_coro *co)
{
  return co->job->label;
}

uv_loop_t *pc_coro_loop(const struct pc_coro *co)
{
  return co->job->sched.loop;
}

struct pc_run *pc_coro_run(const struct pc_coro *co)
{
  return co->job->run;
}

struct pc_attempt *pc_coro_attempt(const struct pc_coro *co)
{
  return co->job->attempt;
}

int pc_coro_scope(const struct pc_coro *co)
{
  return co->job->scope_ref;
}

/* The list a coroutine belongs to: its parent's children, or the job's
 * top-level coroutines. */
static struct pc_queue *sibling_list(struct pc_coro *co)
{
  return co->parent ? &co->parent->kids : &co->job->tops;
}

struct pc_coro *pc__coro_new(struct pc_coro_job *j, lua_State *L, int nargs,
                             struct pc_coro *parent)
{
  lua_State *T = lua_newthread(L);                    /* fn, args..., T */
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);           /* fn, args... */
  lua_xmove(L, T, nargs + 1);                         /* (moved to T) */
  struct pc_coro *co = pc_xcalloc(1, sizeof *co);
  co->job = j;
  co->parent = parent;
  co->L = T;
  co->ref = ref;
  co->nargs = nargs;
  co->task_ref = LUA_NOREF;
  co->doneq_ref = LUA_NOREF;
  pc_queue_init(&co->kids);
  pc_queue_init(&co->waiters);
  pc_queue_init(&co->waiting);
  *pc__thread_slot(T) = co;
  pc_queue_insert_head(sibling_list(co), &co->sibling);
  pc_coro_wake(co);
  return co;
}

static void coro_free(struct pc_coro *co)
{
  struct pc_coro_job *j = co->job;
  lua_State *L = j->h->L;
  unwake(co);
  *pc__thread_slot(co->L) = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, co->ref);
  co->ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, co->task_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, co->doneq_ref);
  pc_queue_remove(&co->sibling);
  if (j->root == co)
    j->root = NULL;
  /* Children that outlive it (never, for gather and timeout) become the
   * job's. */
  while (!pc_queue_empty(&co->kids)) {
    struct pc_coro *c = pc_queue_data(pc_queue_head(&co->kids), struct pc_coro, sibling);
    pc_queue_remove(&c->sibling);
    c->parent = NULL;
    pc_queue_insert_head(&j->tops, &c->sibling);
  }
  free(co->where);
  free(co);
}

void pc__coro_unwait(struct pc_coro *w)
{
  pc_queue_remove(&w->waiting);
  w->awaiting = NULL;
}

static void wake_waiters(struct pc_coro *co)
{
  while (!pc_queue_empty(&co->waiters)) {
    struct pc_coro *w = pc_queue_data(pc_queue_head(&co->waiters), struct pc_coro, waiting);
    pc__coro_unwait(w);
    pc_coro_wake(w);
  }
}

/* Stores the payload on top of the main stack (popped) in the coroutine's
 * handle and detaches the handle. */
static void task_settle(struct pc_coro *co, enum pc__task_state st)
{
  lua_State *L = co->job->h->L;
  if (!co->task) {
    lua_pop(L, 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, co->task_ref); /* payload, task */
  lua_insert(L, -2);                               /* task, payload */
  lua_setiuservalue(L, -2, 1);                     /* task */
  lua_pop(L, 1);
  co->task->state = st;
  co->task->co = NULL;
  co->task = NULL;
}

/* Appends the coroutine's handle to its parent's done queue and wakes the
 * parent if it waits there. */
static void notify_parent(struct pc_coro *co)
{
  struct pc_coro *p = co->parent;
  lua_State *L = co->job->h->L;
  if (!p || co->task_ref == LUA_NOREF)
    return;
  if (p->doneq_ref == LUA_NOREF) {
    lua_newtable(L);
    p->doneq_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->doneq_ref); /* q */
  lua_rawgeti(L, LUA_REGISTRYINDEX, co->task_ref); /* q, task */
  lua_rawseti(L, -2, ++p->doneq_tail);             /* q */
  lua_pop(L, 1);
  if (p->in_next_done && p->pending.cancel)
    pc_coro_wake(p);
}

struct pc_coro *pc__coro_open_kid(struct pc_coro *co)
{
  struct pc_queue *q;
  pc_queue_foreach(q, &co->kids) {
    struct pc_coro *c = pc_queue_data(q, struct pc_coro, sibling);
    if (!c->closing && !c->ending) /* those are taken care of further up the stack */
      return c;
  }
  return NULL;
}

static void close_children(struct pc_coro *co)
{
  struct pc_coro_job *j = co->job;
  struct pc_coro *c;
  while ((c = pc__coro_open_kid(co))) {
    if (c == j->h->current) {
      /* It is running (it cancelled its own parent): it stops once it
       * yields; meanwhile it is the job's. */
      c->kill_requested = true;
      pc_queue_remove(&c->sibling);
      c->parent = NULL;
      pc_queue_insert_head(&j->tops, &c->sibling);
      continue;
    }
    pc__coro_close(c, "cancelled: its parent was cancelled");
  }
}

/* Runs the thread's pending to-be-closed variables (lua_resetthread) in a
 * guard of their own (nested in the current one): the job's deadline may
 * well have passed already. */
static void reset_thread(struct pc_coro *co)
{
  struct pc_lua *h = co->job->h;
  int before = lua_status(co->L);
  if (co->hooks_off) {
    /* It died of an error the guard raised where it could not yield:
     * Lua left its hooks off, so its <close> handlers could not be
     * stopped. They do not run. */
    lua_settop(co->L, 0);
    return;
  }
  struct pc_lua_guard saved;
  pc_lua_guard_enter(h, &saved, co->L, pc_mono_ms() + CLOSE_LIMIT_MS, co->job->label,
                     "a <close> handler ran for too long", 0);
  int st = lua_resetthread(co->L);
  pc_lua_guard_leave(h, &saved, NULL);
  if (st != LUA_OK && (before == LUA_OK || before == LUA_YIELD)) {
    char *msg = pc_lua_error_text(h, co->L, st, false);
    pc_log(PC_LOG_WARN, co->job->label, "error in a <close> handler: %s", msg);
    free(msg);
  }
  lua_settop(co->L, 0);
}

void pc__coro_close(struct pc_coro *co, const char *why)
{
  struct pc_lua *h = co->job->h;
  if (co->closing || co->ending)
    return;
  if (co == h->current) {
    co->kill_requested = true;
    return;
  }
  co->closing = true;
  close_children(co);
  unwake(co);
  if (co->pending.cancel) {
    void (*cancel)(void *) = co->pending.cancel;
    void *data = co->pending.data;
    co->pending.cancel = NULL;
    co->pending.data = NULL;
    cancel(data);
  }
  pc__coro_unwait(co);
  reset_thread(co);

  if (co->task) {
    lua_pushstring(h->L, why); /* payload */
    task_settle(co, PC__TASK_CANCELLED);
  }
  wake_waiters(co);
  coro_free(co);
}

/* The root returned: its first value (of nres on its stack) goes to the
 * job's owner, then the job ends. */
static void root_returned(struct pc_coro *co, int nres)
{
  struct pc_coro_job *j = co->job;
  lua_State *L = j->h->L;
  if (j->returned) {
    if (nres > 0) {
      lua_pushvalue(co->L, -nres); /* (on co) v */
      lua_xmove(co->L, L, 1);      /* v */
    } else {
      lua_pushnil(L);
    }
    j->returned(j->data);
    lua_pop(L, 1);
  }
  lua_settop(co->L, 0);
  job_end(j, PC_FAIL_NONE, NULL);
}

/* The coroutine returned (status LUA_OK, nres results on its stack) or
 * raised (the error object on top of its stack). */
static void coro_finish(struct pc_coro *co, int status, int nres)
{
  struct pc_coro_job *j = co->job;
  struct pc_lua *h = j->h;
  lua_State *L = h->L, *T = co->L;
  /* It is ending: a <close> handler of a child cancelling it (through its
   * task handle; the root has none) must not free it under our feet. */
  if (co != j->root)
    co->ending = true;
  close_children(co);
  if (co == j->root) {
    if (status == LUA_OK) {
      root_returned(co, nres);
      return;
    }
    /* Any object can be raised: describing it may run plugin code. */
    char *msg = pc_lua_error_text(h, T, status, true);
    reset_thread(co); /* its <close> variables see the error */
    job_end(j, j->cpu_tripped ? PC_FAIL_TIMEOUT : PC_FAIL_ERROR, msg);
    free(msg);
    return;
  }
  enum pc__task_state st;
  if (status == LUA_OK) {
    lua_createtable(L, nres, 1); /* packed */
    for (int i = 1; i <= nres; i++) {
      lua_pushvalue(T, -nres - 1 + i);
      lua_xmove(T, L, 1);
      lua_rawseti(L, -2, i);
    }
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    st = PC__TASK_OK;
  } else if (status == LUA_ERRMEM) {
    char *m = pc_lua_memory_error(h);
    lua_pushstring(L, m);
    free(m);
    st = PC__TASK_ERROR;
  } else {
    lua_pushvalue(T, -1); /* a copy: <close> handlers get the original */
    lua_xmove(T, L, 1);   /* the error object, as raised */
    st = PC__TASK_ERROR;
  }
  if (status == LUA_OK)
    lua_settop(T, 0);
  else
    reset_thread(co);
  if (co->parent)
    notify_parent(co);
  task_settle(co, st);
  wake_waiters(co);
  coro_free(co);
}

/* Preemption (host.h): the guard yielded the coroutine for a pending
 * signal. It waits as if for an operation -- a sleep of 0 ms, which fires
 * on the loop's next turn, after the poll that reads the signal -- so the
 * signal's handling finds it closable, and closing it stops the sleep. */
struct turn {
  struct pc_sleep sleep;
  struct pc_coro *co;
};

static void on_turn(struct pc_sleep *s)
{
  pc_coro_wake(PC_CONTAINER_OF(s, struct turn, sleep)->co);
}

/* Over or not (the resume hands it here too). */
static void turn_cancel(void *data)
{
  struct turn *t = data;
  pc_sleep_stop(&t->sleep);
  free(t);
}

static void wait_for_turn(struct pc_coro *co)
{
  struct pc_lua *h = co->job->h;
  if (!h->turns.cb)
    pc_sleeps_init(&h->turns, on_turn);
  struct turn *t = pc_xcalloc(1, sizeof *t);
  t->co = co;
  co->pending.cancel = turn_cancel;
  co->pending.data = t;
  pc_sleep_start(&h->turns, co->job->sched.loop, &t->sleep, 0);
}

static void coro_run(struct pc_coro *co)
{
  struct pc_coro_job *j = co->job;
  struct pc_lua *h = j->h;
  lua_State *L = h->L;
  assert(!h->current);
  co->woken = co->pending.data;
  if (co->pending.cancel == turn_cancel) { /* resumed after a preemption */
    turn_cancel(co->woken);
    co->woken = NULL;
  }
  co->pending.cancel = NULL;
  co->pending.data = NULL;
  int nargs = co->nargs;
  co->nargs = 0;

  h->current = co;
  struct pc_lua_guard saved, ended;
  pc_lua_guard_enter(h, &saved, co->L, j->deadline, j->label, CPU_BOUND_MSG,
                     PC_LUA_GUARD_STOP | PC_LUA_GUARD_PREEMPT);
  /* Past the deadline already: the engine's timer has not had a turn of
   * the loop (many coroutines resumed in one drain). Stop on the first
   * instruction, as if the code had run that long. */
  if (j->deadline <= pc_mono_ms())
    pc_lua_guard_trip(h, co->L);
  int nres = 0;
  int st = lua_resume(co->L, L, nargs, &nres);
  double ran = pc_lua_guard_leave(h, &saved, &ended);
  if (ended.tripped) {
    j->cpu_tripped = true;
    if (!j->cpu_where[0])
      snprintf(j->cpu_where, sizeof j->cpu_where, "%s", ended.where);
  }
  co->stopped = ended.stopped && st == LUA_YIELD;
  co->preempted = ended.preempted && st == LUA_YIELD;
  co->hooks_off = ended.raised_on_co && st != LUA_OK && st != LUA_YIELD;
  h->current = NULL;
  if (ran > PC_LUA_BLOCK_WARN_MS)
    pc_log(PC_LOG_WARN, j->label, "Lua code blocked the event loop for %.0f ms without yielding",
           ran);
  coro_after_resume(co, st, nres); /* may free co and its job */
  pc__run_finalizers(h);
}

/* What a resume's outcome means for the coroutine. */
static void coro_after_resume(struct pc_coro *co, int st, int nres)
{
  struct pc_coro_job *j = co->job;
  if (co->stopped) {
    /* The guard yielded it at the job's deadline: the job is over, all
     * of it (job_end closes every coroutine; <close> handlers run). */
    char *m = pc_asprintf("%s%s", CPU_BOUND_MSG, j->cpu_where);
    job_end(j, PC_FAIL_TIMEOUT, m);
    free(m);
    return;
  }
  if (co->kill_requested) {
    co->kill_requested = false;
    if (st != LUA_YIELD && st != LUA_OK)
      lua_settop(co->L, 0);
    if (co == j->root) {
      job_end(j, PC_FAIL_ERROR, "cancelled by its own code");
      return;
    }
    pc__coro_close(co, "cancelled");
    return;
  }
  if (co->preempted) {
    wait_for_turn(co);
    return;
  }
  if (st == LUA_YIELD) {
    if (!co->pending.cancel) {
      /* Only pacer's functions yield a managed coroutine; anything else
       * (a yield smuggled past the sandbox) is a bug in the caller. */
      lua_settop(co->L, 0);
      lua_pushliteral(co->L, "a pacer coroutine yielded without waiting for anything");
      coro_finish(co, LUA_ERRRUN, 0);
    } else {
      lua_pop(co->L, nres); /* lua_yieldk(L, 0, ...) yields nothing */
    }
    return;
  }
  coro_finish(co, st, nres);
}

/* ================================================================ jobs */

void pc_coro_hold(struct pc_coro_job *j, struct pc_coro_hold *x)
{
  pc_queue_insert_head(&j->holds, &x->node);
}

void pc_coro_unhold(struct pc_coro_hold *x)
{
  pc_queue_remove(&x->node);
}

/* Closes every coroutine of the job and releases what it holds. */
static void job_close_all(struct pc_coro_job *j)
{
  j->ending = true;
  /* Spawned tasks first (newest first), then the root with its children. */
  while (!pc_queue_empty(&j->tops)) {
    struct pc_coro *victim = NULL;
    struct pc_queue *q;
    pc_queue_foreach(q, &j->tops) {
      struct pc_coro *c = pc_queue_data(q, struct pc_coro, sibling);
      if (c != j->root && !c->closing && !c->ending) {
        victim = c;
        break;
      }
    }
    if (!victim)
      victim = j->root;
    if (!victim || victim->closing)
      break; /* cannot happen: pc__coro_close frees before it returns */
    if (victim->spawned && !victim->waited)
      pc_log(PC_LOG_WARN, j->label,
             "a task spawned at %s was still running and never waited for; cancelled it",
             victim->where ? victim->where : "?");
    pc__coro_close(victim, "cancelled: its step ended");
  }
  while (!pc_queue_empty(&j->holds)) {
    struct pc_coro_hold *x = pc_queue_data(pc_queue_head(&j->holds), struct pc_coro_hold, node);
    pc_log(PC_LOG_WARN, j->label, "%s was still held when the step ended; released it", x->what);
    pc_coro_unhold(x);
    x->release(x);
  }
}

static void job_free(struct pc_coro_job *j)
{
  free(j->label);
  free(j);
}

/* The root ended: close what is left, free the job and report. */
static void job_end(struct pc_coro_job *j, enum pc_fail fail, const char *msg)
{
  struct pc_lua *h = j->h;
  char *m = msg ? pc_xstrdup(msg) : NULL;
  if (fail == PC_FAIL_TIMEOUT) {
    char dur[32];
    pc_format_duration(j->timeout_ms, dur, sizeof dur);
    free(m);
    m = pc_asprintf("timed out after %s: %s", dur, msg ? msg : "");
  }
  job_close_all(j);
  void (*done)(void *, enum pc_fail, const char *) = j->done;
  void *data = j->data;
  job_free(j);
  pc_lua_memory_recover(h);
  done(data, fail, m);
  free(m);
}

struct pc_coro_job *pc_coro_job_start(struct pc_lua *h, const struct pc_coro_job_opts *o,
                                      int nargs)
{
  assert(h->module_ref != LUA_NOREF);
  struct pc_coro_job *j = pc_xcalloc(1, sizeof *j);
  j->h = h;
  j->sched = o->sched;
  j->run = o->run;
  j->attempt = o->attempt;
  j->scope_ref = o->scope_ref;
  j->label = o->label ? o->label : pc_xstrdup("?");
  j->deadline = o->deadline;
  j->timeout_ms = o->timeout_ms;
  j->returned = o->returned;
  j->done = o->done;
  j->data = o->data;
  pc_queue_init(&j->tops);
  pc_queue_init(&j->holds);
  j->root = pc__coro_new(j, h->L, nargs, NULL);
  return j;
}

void pc_coro_job_cancel(struct pc_coro_job *j)
{
  if (!j)
    return;
  job_close_all(j);
  job_free(j);
}
