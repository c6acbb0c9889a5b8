/* pacermod.c: the C half of the `pacer` Lua module: the coroutines steps
 * run on, and the primitives that yield (sleep, task wait, semaphore and
 * pool permits, exec) or that need C (log, stdout, the CPU and memory
 * guards). lua/pacer.lua builds the rest of the module on top (gather,
 * timeout, json, the plugin sandbox).
 *
 * Coroutines ("lts", Lua tasks). A step's code runs in a root lt; pacer
 * .gather and pacer.timeout make *children* (closed with their parent, and
 * reported to it through a done queue: core.next_done), pacer.spawn makes
 * *tasks* owned by the step (handles with :wait() and :cancel()). Every lt
 * is a lua_newthread anchored with luaL_ref and unreffed exactly once, in
 * lt_free. Its thread's extra space points back at it; threads that user
 * code creates with coroutine.create copy the main thread's (NULL), which is
 * how async calls made from them are recognised and refused.
 *
 * Resumes. An operation completing (a timer, a pool grant, a process exit,
 * a task finishing) only calls lt_wake(), which queues the lt on the
 * engine's deferred queue; lt_run() resumes it from the drain. The pending
 * operation is {cancel, data}: set by lt_await() just before lua_yieldk,
 * moved to lt->woken and cleared just before lua_resume, and handed to the
 * continuation function (the `_k` functions), which consumes it. If the lt
 * is closed instead, cancel(data) is called, whether or not the operation
 * had already completed: cancel functions handle both.
 *
 * Closing (lt_close): children first, then the pending operation, then
 * lua_resetthread, which runs the thread's pending to-be-closed variables
 * (Lua 5.4.4; lua_closethread in 5.4.6). Closing the lt that is running
 * right now (a task cancelling itself or an ancestor) only marks it; it
 * yields and lt_run closes it once the resume has returned.
 *
 * Guards (luahost.h). Every resume runs inside a guard whose deadline is
 * the step's (its timeout, or the workflow's): past it, the guard yields
 * the coroutine (or raises "CPU-bound" at every instruction where it
 * cannot), and the step ends as a timeout; a coroutine resumed after its
 * step's deadline (a gather of many small functions that never gives the
 * loop a turn) stops at its first instruction. Lua code that runs for more
 * than 100 ms without yielding is reported with the step's name. The
 * state's memory limit applies inside guards only, so the engine's own
 * allocations never fail because of it.
 *
 * Finalizers. A __gc metamethod runs wherever the collector happens to be,
 * with debug hooks off: no guard could stop it. So the sandbox's
 * setmetatable never lets Lua mark a plugin's table for finalization:
 * it marks a hidden sentinel that lives exactly as long as the table
 * (an ephemeron) and whose C finalizer only queues the table. The queue
 * is run after a coroutine yields or returns (never inside anything), each
 * finalizer in a coroutine of its own under a guard.
 *
 * Children. Each lt lists its children (gather, timeout), and the step its
 * top-level lts (the root, spawned tasks): every operation on them is
 * constant time per lt, so gathering n functions costs O(n). */
#include "script/pacermod.h"

#include "http/curlshim.h"

#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "core/engine.h"
#include "actions/exec.h"
#include "http/action.h"
#include "http/result.h"
#include "http/spec.h"
#include "script/json.h"
#include "base/log.h"
#include "base/pool.h"
#include "base/util.h"

#define CLOSE_LIMIT_MS 1000.0     /* bound on <close> handlers while cancelling */
#define FINALIZER_LIMIT_MS 1000.0 /* bound on the __gc finalizers run at one time */

struct pc_embedded {
  const char *name;
  const char *data;
  size_t len;
};
extern const struct pc_embedded pc_embedded_lua[];

struct lt;
struct permit;

#define CPU_BOUND_MSG \
  "CPU-bound: the step's Lua code ran past its deadline without yielding, and was stopped"

struct pm_state {
  struct pc_lua *h;
  lua_State *L;
  int M_ref;           /* the table lua/pacer.lua returned */
  struct lt *current;  /* the lt being resumed, or NULL */
  int finq_ref;        /* tables whose __gc is due, a list [head+1 .. tail] */
  lua_Integer finq_head, finq_tail;
  int sentinels_ref;   /* table -> its finalization sentinel (weak keys) */
  bool in_finalizers;
};

struct pc_lstep {
  struct pm_state *ps;
  struct pc_attempt *a; /* borrowed */
  struct pc_run *run;   /* borrowed */
  char *label;
  struct lt *root;
  struct lt *tops;        /* lts without a parent (the root, tasks), newest first */
  struct permit *permits; /* permits held by the step's code */
  double deadline;        /* mono ms; INFINITY for none */
  double timeout_ms;      /* what `deadline` came from, for messages */
  bool run_deadline;      /* the deadline is the workflow's, not the step's */
  bool cpu_tripped;
  char cpu_where[160]; /* where the guard stopped it first */
  bool ending;
};

enum th_state { TH_RUNNING, TH_OK, TH_ERROR, TH_CANCELLED };

/* A task handle (userdata "pacer.task"); uservalue 1 holds the packed
 * results or the error once the task has ended. */
struct th {
  struct lt *lt; /* NULL once the task has ended */
  enum th_state state;
};

struct pending {
  void (*cancel)(void *data);
  void *data;
};

struct lt {
  struct pc_lstep *step;  /* borrowed: the step outlives its lts */
  struct lt *parent;      /* structured parent (gather/timeout), or NULL */
  struct lt *prev, *next; /* in parent->kids, or in step->tops without a parent */
  struct lt *kids;        /* children, newest first */
  lua_State *co;
  int co_ref;
  int nargs; /* arguments waiting on co's stack for the first resume */
  struct pc_deferred dq;
  struct pending pending;
  void *woken; /* the completed operation, for the continuation */
  struct th *th;   /* handle (valid while th_ref is held), or NULL for the root */
  int th_ref;
  struct lt *waiters;   /* lts blocked in :wait() on this one */
  struct lt *wait_next; /* link in awaiting->waiters */
  struct lt *awaiting;  /* the task this lt waits for, or NULL */
  int doneq_ref;        /* children that ended, for next_done (a Lua table) */
  lua_Integer doneq_head, doneq_tail;
  bool in_next_done;
  bool closing;
  bool ending;    /* in lt_finish, which frees it */
  bool hooks_off; /* died of the guard's error raised on it (see reset_thread) */
  bool stopped;   /* the guard yielded it at its step's deadline */
  bool kill_requested;
  bool spawned; /* pacer.spawn: warn if still running, unwaited, at step end */
  bool waited;
  char *where;  /* where pacer.spawn was called */
};

static const char STATE_KEY = 's';

static struct pm_state *state_of(lua_State *L)
{
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY); /* ps */
  struct pm_state *ps = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return ps;
}

/* A thread's extra space holds its lt, NULL for the main thread and for
 * coroutines plugin code made, or HOST_THREAD for the coroutines pacer
 * runs finalizers in (which cannot wait either). */
static char host_thread_mark;
#define HOST_THREAD ((struct lt *)(void *)&host_thread_mark)

static struct lt *lt_of(lua_State *co)
{
  struct lt *lt = *(struct lt **)lua_getextraspace(co);
  return lt == HOST_THREAD ? NULL : lt;
}

static void lt_close(struct lt *lt, const char *why);
static void lt_run(struct lt *lt);
static void run_finalizers(struct pm_state *ps);
static void lt_after_resume(struct lt *lt, int st, int nres);

/* ================================================================ lts */

static void on_resume_due(struct pc_deferred *d)
{
  lt_run(PC_CONTAINER_OF(d, struct lt, dq));
}

static void lt_wake(struct lt *lt)
{
  pc_run_defer(lt->step->run, &lt->dq, on_resume_due);
}

/* Registers the pending operation and yields; `k` runs on resume. */
static int lt_await(lua_State *L, struct lt *lt, void (*cancel)(void *), void *data,
                    lua_KFunction k)
{
  assert(!lt->pending.cancel);
  lt->pending.cancel = cancel;
  lt->pending.data = data;
  return lua_yieldk(L, 0, 0, k);
}

/* The calling lt, for an async call named `what`; raises a clear error when
 * the call cannot wait here. */
static struct lt *lt_check(lua_State *L, const char *what)
{
  struct lt *lt = lt_of(L);
  if (!lt) {
    if (*(struct lt **)lua_getextraspace(L) == HOST_THREAD)
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
  if (lt->closing || lt->kill_requested)
    luaL_error(L, "%s: the task is being cancelled", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot wait here: it was called through a C function that cannot yield "
                  "(a table.sort comparator, a string.gsub replacement function, a "
                  "__tostring called by tostring, ...)", what);
  return lt;
}

/* The string at idx as a C string for `who`: a string with a NUL byte in
 * it would be cut there silently, so it raises instead. `what` is a format
 * with at most one argument (naming the value). */
static const char *c_string(lua_State *L, int idx, const char *who, const char *what, ...)
    __attribute__((format(printf, 4, 5)));
static const char *c_string(lua_State *L, int idx, const char *who, const char *what, ...)
{
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (s && strlen(s) == len)
    return s;
  char name[200];
  va_list ap;
  va_start(ap, what);
  vsnprintf(name, sizeof name, what, ap);
  va_end(ap);
  if (!s)
    luaL_error(L, "%s: %s must be a string, got %s", who, name, luaL_typename(L, idx));
  luaL_error(L, "%s: %s contains a NUL byte", who, name);
  return NULL;
}

/* Puts the lt at the head of its list: its parent's children, or the
 * step's top-level lts. */
static void link_lt(struct lt *lt)
{
  struct lt **head = lt->parent ? &lt->parent->kids : &lt->step->tops;
  lt->prev = NULL;
  lt->next = *head;
  if (*head)
    (*head)->prev = lt;
  *head = lt;
}

static void unlink_lt(struct lt *lt)
{
  struct lt **head = lt->parent ? &lt->parent->kids : &lt->step->tops;
  if (lt->prev)
    lt->prev->next = lt->next;
  else
    *head = lt->next;
  if (lt->next)
    lt->next->prev = lt->prev;
  lt->prev = lt->next = NULL;
}

/* Creates an lt for the function below `nargs` arguments on L's stack
 * (popped) and schedules its first resume. */
static struct lt *lt_new(struct pc_lstep *s, lua_State *L, int nargs, struct lt *parent)
{
  lua_State *co = lua_newthread(L);                   /* fn, args..., co */
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);           /* fn, args... */
  lua_xmove(L, co, nargs + 1);                        /* (moved to co) */
  struct lt *lt = pc_xcalloc(1, sizeof *lt);
  lt->step = s;
  lt->parent = parent;
  lt->co = co;
  lt->co_ref = ref;
  lt->nargs = nargs;
  lt->th_ref = LUA_NOREF;
  lt->doneq_ref = LUA_NOREF;
  *(struct lt **)lua_getextraspace(co) = lt;
  link_lt(lt);
  lt_wake(lt);
  return lt;
}

static void lt_free(struct lt *lt)
{
  struct pc_lstep *s = lt->step;
  lua_State *L = s->ps->L;
  pc_run_defer_cancel(s->run, &lt->dq);
  *(struct lt **)lua_getextraspace(lt->co) = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, lt->co_ref);
  lt->co_ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, lt->th_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, lt->doneq_ref);
  unlink_lt(lt);
  if (s->root == lt)
    s->root = NULL;
  /* Children that outlive it (never, for gather and timeout) become the
   * step's. */
  while (lt->kids) {
    struct lt *c = lt->kids;
    unlink_lt(c);
    c->parent = NULL;
    link_lt(c);
  }
  free(lt->where);
  free(lt);
}

static void unlink_waiter(struct lt *w)
{
  struct lt *t = w->awaiting;
  if (!t)
    return;
  for (struct lt **pp = &t->waiters; *pp; pp = &(*pp)->wait_next) {
    if (*pp == w) {
      *pp = w->wait_next;
      break;
    }
  }
  w->awaiting = NULL;
  w->wait_next = NULL;
}

static void wake_waiters(struct lt *lt)
{
  struct lt *w = lt->waiters;
  lt->waiters = NULL;
  while (w) {
    struct lt *n = w->wait_next;
    w->awaiting = NULL;
    w->wait_next = NULL;
    lt_wake(w);
    w = n;
  }
}

/* Stores the payload on top of L (popped) in the lt's handle and detaches
 * the handle. */
static void th_settle(struct lt *lt, enum th_state st)
{
  lua_State *L = lt->step->ps->L;
  if (!lt->th) {
    lua_pop(L, 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, lt->th_ref); /* payload, th */
  lua_insert(L, -2);                             /* th, payload */
  lua_setiuservalue(L, -2, 1);                   /* th */
  lua_pop(L, 1);
  lt->th->state = st;
  lt->th->lt = NULL;
  lt->th = NULL;
}

/* Appends the lt's handle to its parent's done queue and wakes the parent
 * if it waits there. */
static void notify_parent(struct lt *lt)
{
  struct lt *p = lt->parent;
  lua_State *L = lt->step->ps->L;
  if (!p || lt->th_ref == LUA_NOREF)
    return;
  if (p->doneq_ref == LUA_NOREF) {
    lua_newtable(L);
    p->doneq_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->doneq_ref); /* q */
  lua_rawgeti(L, LUA_REGISTRYINDEX, lt->th_ref);   /* q, th */
  lua_rawseti(L, -2, ++p->doneq_tail);             /* q */
  lua_pop(L, 1);
  if (p->in_next_done && p->pending.cancel)
    lt_wake(p);
}

/* The first child of lt that is not being closed already (those are
 * being taken care of further up the stack), or NULL. */
static struct lt *open_kid(struct lt *lt)
{
  struct lt *c = lt->kids;
  while (c && (c->closing || c->ending))
    c = c->next;
  return c;
}

static void close_children(struct lt *lt)
{
  struct pc_lstep *s = lt->step;
  struct lt *c;
  while ((c = open_kid(lt))) {
    if (c == s->ps->current) {
      /* It is running (it cancelled its own parent): it stops once it
       * yields; meanwhile it is the step's. */
      c->kill_requested = true;
      unlink_lt(c);
      c->parent = NULL;
      link_lt(c);
      continue;
    }
    lt_close(c, "cancelled: its parent was cancelled");
  }
}

/* Runs the thread's pending to-be-closed variables (lua_resetthread) in a
 * guard of their own (nested in the current one): the step's deadline may
 * well have passed already. */
static void reset_thread(struct lt *lt)
{
  struct pm_state *ps = lt->step->ps;
  int before = lua_status(lt->co);
  if (lt->hooks_off) {
    /* It died of an error the guard raised where it could not yield:
     * Lua left its hooks off, so its <close> handlers could not be
     * stopped. They do not run. */
    lua_settop(lt->co, 0);
    return;
  }
  struct pc_lua_guard saved;
  pc_lua_guard_enter(ps->h, &saved, lt->co, pc_mono_ms() + CLOSE_LIMIT_MS, lt->step->label,
                     "a <close> handler ran for too long", false);
  int st = lua_resetthread(lt->co);
  pc_lua_guard_leave(ps->h, &saved, NULL);
  if (st != LUA_OK && (before == LUA_OK || before == LUA_YIELD)) {
    char *msg = pc_lua_error_text(ps->h, lt->co, st, false);
    pc_log(PC_LOG_WARN, lt->step->label, "error in a <close> handler: %s", msg);
    free(msg);
  }
  lua_settop(lt->co, 0);
}

static void lt_close(struct lt *lt, const char *why)
{
  struct pc_lstep *s = lt->step;
  struct pm_state *ps = s->ps;
  lua_State *L = ps->L;
  if (lt->closing || lt->ending)
    return;
  if (lt == ps->current) {
    lt->kill_requested = true;
    return;
  }
  lt->closing = true;
  close_children(lt);
  pc_run_defer_cancel(s->run, &lt->dq);
  if (lt->pending.cancel) {
    struct pending p = lt->pending;
    lt->pending.cancel = NULL;
    lt->pending.data = NULL;
    p.cancel(p.data);
  }
  unlink_waiter(lt);
  reset_thread(lt);

  if (lt->th) {
    lua_pushstring(L, why); /* payload */
    th_settle(lt, TH_CANCELLED);
  }
  wake_waiters(lt);
  lt_free(lt);
}

/* The root ended: record its value or error, close what is left of the
 * step, and report the attempt. */
static void step_end(struct pc_lstep *s, enum pc_fail fail, const char *msg);

/* The lt's coroutine returned (status LUA_OK, nres results on co) or raised
 * (error object on top of co). */
static void lt_finish(struct lt *lt, int status, int nres)
{
  struct pc_lstep *s = lt->step;
  struct pm_state *ps = s->ps;
  lua_State *L = ps->L, *co = lt->co;
  /* It is ending: a <close> handler of a child cancelling it (through its
   * task handle; the root has none) must not free it under our feet. */
  if (lt != s->root)
    lt->ending = true;
  close_children(lt);
  if (lt == s->root) {
    if (status == LUA_OK) {
      struct pc_attempt *a = s->a;
      lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
      pc_lua_push_prelude(ps->h, "unwrap");              /* result, unwrap */
      if (nres > 0) {
        lua_pushvalue(co, -nres);                        /* (on co) v */
        lua_xmove(co, L, 1);                             /* result, unwrap, v */
      } else {
        lua_pushnil(L);
      }
      lua_call(L, 1, 1);                                 /* result, value */
      lua_setfield(L, -2, "value");                      /* result */
      lua_pop(L, 1);
      lua_settop(co, 0);
      step_end(s, PC_FAIL_NONE, NULL);
      return;
    }
    /* Any object can be raised: describing it may run plugin code. */
    char *msg = pc_lua_error_text(ps->h, co, status, true);
    reset_thread(lt); /* its <close> variables see the error */
    step_end(s, s->cpu_tripped ? PC_FAIL_TIMEOUT : PC_FAIL_ERROR, msg);
    free(msg);
    return;
  }
  enum th_state st;
  if (status == LUA_OK) {
    lua_createtable(L, nres, 1);      /* packed */
    for (int i = 1; i <= nres; i++) {
      lua_pushvalue(co, -nres - 1 + i);
      lua_xmove(co, L, 1);
      lua_rawseti(L, -2, i);
    }
    lua_pushinteger(L, nres);
    lua_setfield(L, -2, "n");
    st = TH_OK;
  } else if (status == LUA_ERRMEM) {
    char *m = pc_lua_memory_error(ps->h);
    lua_pushstring(L, m);
    free(m);
    st = TH_ERROR;
  } else {
    lua_pushvalue(co, -1); /* a copy: <close> handlers get the original */
    lua_xmove(co, L, 1);   /* the error object, as raised */
    st = TH_ERROR;
  }
  if (status == LUA_OK)
    lua_settop(co, 0);
  else
    reset_thread(lt);
  if (lt->parent)
    notify_parent(lt);
  th_settle(lt, st);
  wake_waiters(lt);
  lt_free(lt);
}

static void lt_run(struct lt *lt)
{
  struct pc_lstep *s = lt->step;
  struct pm_state *ps = s->ps;
  lua_State *L = ps->L;
  assert(!ps->current);
  lt->woken = lt->pending.data;
  lt->pending.cancel = NULL;
  lt->pending.data = NULL;
  int nargs = lt->nargs;
  lt->nargs = 0;

  ps->current = lt;
  struct pc_lua_guard saved, ended;
  pc_lua_guard_enter(ps->h, &saved, lt->co, s->deadline, s->label, CPU_BOUND_MSG, true);
  /* Past the deadline already: the engine's timer has not had a turn of
   * the loop (many coroutines resumed in one drain). Stop on the first
   * instruction, as if the code had run that long. */
  if (s->deadline <= pc_mono_ms())
    pc_lua_guard_trip(ps->h, lt->co);
  int nres = 0;
  int st = lua_resume(lt->co, L, nargs, &nres);
  double ran = pc_lua_guard_leave(ps->h, &saved, &ended);
  if (ended.tripped) {
    s->cpu_tripped = true;
    if (!s->cpu_where[0])
      snprintf(s->cpu_where, sizeof s->cpu_where, "%s", ended.where);
  }
  lt->stopped = ended.stopped && st == LUA_YIELD;
  lt->hooks_off = ended.raised_on_co && st != LUA_OK && st != LUA_YIELD;
  ps->current = NULL;
  if (ran > PC_LUA_BLOCK_WARN_MS)
    pc_log(PC_LOG_WARN, s->label, "Lua code blocked the event loop for %.0f ms without yielding",
           ran);
  lt_after_resume(lt, st, nres); /* may free lt and its step */
  run_finalizers(ps);
}

/* What a resume's outcome means for the lt. */
static void lt_after_resume(struct lt *lt, int st, int nres)
{
  struct pc_lstep *s = lt->step;
  if (lt->stopped) {
    /* The guard yielded it at the step's deadline: the step is over, all
     * of it (step_end closes every coroutine; <close> handlers run). */
    char *m = pc_asprintf("%s%s", CPU_BOUND_MSG, s->cpu_where);
    step_end(s, PC_FAIL_TIMEOUT, m);
    free(m);
    return;
  }
  if (lt->kill_requested) {
    lt->kill_requested = false;
    if (st != LUA_YIELD && st != LUA_OK)
      lua_settop(lt->co, 0);
    if (lt == s->root) {
      step_end(s, PC_FAIL_ERROR, "cancelled by its own code");
      return;
    }
    lt_close(lt, "cancelled");
    return;
  }
  if (st == LUA_YIELD) {
    if (!lt->pending.cancel) {
      /* Only pacer's functions yield a managed coroutine; anything else
       * (a yield smuggled past the sandbox) is a bug in the caller. */
      lua_settop(lt->co, 0);
      lua_pushliteral(lt->co, "a pacer coroutine yielded without waiting for anything");
      lt_finish(lt, LUA_ERRRUN, 0);
    } else {
      lua_pop(lt->co, nres); /* lua_yieldk(L, 0, ...) yields nothing */
    }
    return;
  }
  lt_finish(lt, st, nres);
}

/* =========================================================== finalizers */

/* setmetatable(t, mt) for plugin code: the standard function, except that
 * a metatable with __gc gets the table a sentinel (see the file's opening
 * paragraph) instead of Lua's own mark, and every metatable is noted as
 * plugin-made (luahost.h: C reads such tables raw). */
static int l_setmetatable(lua_State *L)
{
  struct pm_state *ps = state_of(L);
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  if (t == LUA_TNIL) {
    lua_setmetatable(L, 1);
    return 1;
  }
  pc_lua_note_plugin_mt(ps->h, L, 2);
  lua_pushliteral(L, "__gc");
  if (lua_rawget(L, 2) == LUA_TNIL) { /* t, mt, nil */
    lua_pop(L, 1);
    lua_setmetatable(L, 1);
    return 1;
  }
  /* Set it while __gc is absent, so that Lua does not mark t itself. */
  lua_pushliteral(L, "__gc");  /* t, mt, gc, "__gc" */
  lua_pushnil(L);
  lua_rawset(L, 2);            /* t, mt, gc */
  lua_pushvalue(L, 2);
  lua_setmetatable(L, 1);
  lua_pushliteral(L, "__gc");
  lua_insert(L, -2);           /* t, mt, "__gc", gc */
  lua_rawset(L, 2);            /* t, mt */
  lua_rawgeti(L, LUA_REGISTRYINDEX, ps->sentinels_ref); /* t, mt, sentinels */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TNIL) {                   /* t, mt, sentinels, nil */
    lua_pop(L, 1);
    lua_pushvalue(L, 1);                                 /* ..., sentinels, t */
    lua_newuserdatauv(L, 0, 1);                          /* ..., sentinels, t, s */
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);                         /* s keeps t */
    luaL_setmetatable(L, "pacer.sentinel");
    lua_rawset(L, -3);                                   /* sentinels[t] = s */
  }
  lua_settop(L, 1);
  return 1;
}

/* __gc of a sentinel: its table is unreachable now; queue it. Runs inside
 * the collector (anywhere, hooks off), so it only appends to a list, with
 * the memory limit off: losing the entry would lose the finalizer. */
static int sentinel_gc(lua_State *L)
{
  struct pm_state *ps = state_of(L);
  if (!ps)
    return 0;
  bool was = pc_lua_memory_enforce(ps->h, false);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ps->finq_ref); /* s, q */
  lua_getiuservalue(L, 1, 1);                      /* s, q, t */
  lua_rawseti(L, -2, ++ps->finq_tail);             /* s, q */
  lua_pop(L, 1);
  pc_lua_memory_enforce(ps->h, was);
  return 0;
}

/* Where a function was defined, for messages: "FILE:LINE" or "?". */
static void defined_at(lua_State *L, int idx, char *out, size_t n)
{
  lua_Debug ar;
  snprintf(out, n, "?");
  if (lua_type(L, idx) != LUA_TFUNCTION)
    return;
  lua_pushvalue(L, idx);
  if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0) /* (pops the function) */
    snprintf(out, n, "%s:%d", ar.short_src, ar.linedefined);
}

/* Runs one queued table's finalizer (its metatable's __gc now, as Lua
 * would) in a coroutine of its own, until `until` at the latest. */
static void run_finalizer(struct pm_state *ps, double until)
{
  lua_State *L = ps->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ps->finq_ref); /* q */
  lua_rawgeti(L, -1, ++ps->finq_head);             /* q, t */
  lua_pushnil(L);
  lua_rawseti(L, -3, ps->finq_head);
  /* Its sentinel is spent: a setmetatable in the finalizer makes a new
   * one, and the table is finalized again, as Lua would. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, ps->sentinels_ref); /* q, t, sentinels */
  lua_pushvalue(L, -2);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);                                   /* q, t */
  if (!lua_getmetatable(L, -1)) {                  /* q, t, mt */
    lua_settop(L, top);
    return;
  }
  lua_pushliteral(L, "__gc");
  if (lua_rawget(L, -2) == LUA_TNIL) {             /* q, t, mt, gc */
    lua_settop(L, top);
    return;
  }
  char where[300], label[340];
  defined_at(L, -1, where, sizeof where);
  snprintf(label, sizeof label, "__gc finalizer at %s", where);
  lua_State *co = lua_newthread(L);                /* q, t, mt, gc, co */
  *(struct lt **)lua_getextraspace(co) = HOST_THREAD;
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -5);
  lua_xmove(L, co, 2);                             /* (co) gc, t */
  struct pc_lua_guard saved, ended;
  pc_lua_guard_enter(ps->h, &saved, co, until, label,
                     "a __gc finalizer ran for too long and was stopped", true);
  int nres = 0;
  int st = lua_resume(co, L, 1, &nres);
  pc_lua_guard_leave(ps->h, &saved, &ended);
  if (st == LUA_YIELD) {
    pc_log(PC_LOG_WARN, NULL, "the %s %s", label,
           ended.stopped ? "ran for too long and was stopped" : "yielded and was stopped");
  } else if (st != LUA_OK) {
    char *msg = pc_lua_error_text(ps->h, co, st, false);
    pc_log(PC_LOG_WARN, NULL, "error in the %s: %s", label, msg);
    free(msg);
  }
  if (!(ended.raised_on_co && st != LUA_OK && st != LUA_YIELD)) { /* see reset_thread */
    pc_lua_guard_enter(ps->h, &saved, co, until, label,
                       "a __gc finalizer's <close> handler ran for too long", false);
    lua_resetthread(co);
    pc_lua_guard_leave(ps->h, &saved, NULL);
  }
  *(struct lt **)lua_getextraspace(co) = NULL;
  lua_settop(L, top);
}

/* Runs the finalizers queued so far (not those they cause: a finalizer
 * that makes garbage with finalizers cannot keep this going), for
 * FINALIZER_LIMIT_MS at most; the rest wait for the next time. Called only
 * when no Lua code is running. */
static void run_finalizers(struct pm_state *ps)
{
  if (ps->finq_head == ps->finq_tail || ps->in_finalizers || ps->current)
    return;
  ps->in_finalizers = true;
  double until = pc_mono_ms() + FINALIZER_LIMIT_MS;
  lua_Integer end = ps->finq_tail;
  while (ps->finq_head < end && pc_mono_ms() < until)
    run_finalizer(ps, until);
  if (ps->finq_head == ps->finq_tail)
    ps->finq_head = ps->finq_tail = 0;
  ps->in_finalizers = false;
}

/* ================================================================ steps */

static void release_permit(struct permit *p);

static void step_close_all(struct pc_lstep *s)
{
  s->ending = true;
  /* Spawned tasks first (newest first), then the root with its children. */
  while (s->tops) {
    struct lt *victim = s->tops;
    while (victim && (victim == s->root || victim->closing || victim->ending))
      victim = victim->next;
    if (!victim)
      victim = s->root;
    if (!victim || victim->closing)
      break; /* cannot happen: lt_close frees before it returns */
    if (victim->spawned && !victim->waited)
      pc_log(PC_LOG_WARN, s->label,
             "a task spawned at %s was still running and never waited for; cancelled it",
             victim->where ? victim->where : "?");
    lt_close(victim, "cancelled: its step ended");
  }
  while (s->permits) {
    pc_log(PC_LOG_WARN, s->label, "a permit was still held when the step ended; released it");
    release_permit(s->permits);
  }
}

static void step_free(struct pc_lstep *s)
{
  free(s->label);
  free(s);
}

static void step_end(struct pc_lstep *s, enum pc_fail fail, const char *msg)
{
  struct pc_attempt *a = s->a;
  char *m = msg ? pc_xstrdup(msg) : NULL;
  if (fail == PC_FAIL_TIMEOUT) {
    char dur[32];
    pc_format_duration(s->timeout_ms, dur, sizeof dur);
    free(m);
    m = pc_asprintf("timed out after %s: %s", dur, msg ? msg : "");
  }
  step_close_all(s);
  a->data = NULL;
  pc_lua_memory_recover(s->ps->h);
  step_free(s);
  pc_attempt_done(a, fail, m);
  free(m);
}

struct pc_lstep *pc_lstep_start(struct pc_attempt *a, int nargs)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  struct pc_lstep *s = pc_xcalloc(1, sizeof *s);
  s->ps = state_of(L);
  assert(s->ps);
  s->a = a;
  s->run = a->run;
  s->label = pc_step_label(a->step);
  s->deadline = INFINITY;
  double now = pc_mono_ms();
  if (a->step->timeout_ms >= 0) {
    s->deadline = now + a->step->timeout_ms;
    s->timeout_ms = a->step->timeout_ms;
  }
  double run_deadline = pc_run_deadline_ms(a->run);
  if (run_deadline < s->deadline) {
    s->deadline = run_deadline;
    s->timeout_ms = run_deadline - pc_run_started_ms(a->run);
    s->run_deadline = true;
  }
  s->root = lt_new(s, L, nargs, NULL);
  a->data = s;
  return s;
}

void pc_lstep_cancel(struct pc_lstep *s)
{
  if (!s)
    return;
  s->a->data = NULL;
  step_close_all(s);
  step_free(s);
}

/* ================================================================ tasks */

static struct th *check_th(lua_State *L, int idx)
{
  return luaL_checkudata(L, idx, "pacer.task");
}

/* Creates an lt for fn(args...) at stack index 1.. and pushes its handle. */
static int start_task(lua_State *L, bool child, const char *what)
{
  struct lt *me = lt_check(L, what);
  luaL_checkany(L, 1);
  int nargs = lua_gettop(L) - 1;
  struct th *th = lua_newuserdatauv(L, sizeof *th, 1);  /* fn, args..., th */
  th->lt = NULL;
  th->state = TH_RUNNING;
  luaL_setmetatable(L, "pacer.task");
  lua_insert(L, 1);                                      /* th, fn, args... */
  struct lt *lt = lt_new(me->step, L, nargs, child ? me : NULL); /* th */
  lt->th = th;
  th->lt = lt;
  lua_pushvalue(L, 1);                                   /* th, th */
  lt->th_ref = luaL_ref(L, LUA_REGISTRYINDEX);           /* th */
  if (!child) {
    lt->spawned = true;
    luaL_where(L, 1);
    lt->where = pc_xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    size_t n = strlen(lt->where);
    if (n >= 2 && lt->where[n - 2] == ':' && lt->where[n - 1] == ' ')
      lt->where[n - 2] = '\0';
    if (!lt->where[0]) {
      free(lt->where);
      lt->where = pc_xstrdup("?");
    }
  }
  return 1;
}

static int l_spawn(lua_State *L)
{
  return start_task(L, false, "pacer.spawn");
}

static int l_child(lua_State *L)
{
  return start_task(L, true, "pacer.gather");
}

/* Pushes handle, ok, payload for a finished handle at the top. */
static int push_outcome(lua_State *L, struct th *th)
{
  lua_pushboolean(L, th->state == TH_OK); /* th, ok */
  lua_getiuservalue(L, -2, 1);            /* th, ok, payload */
  return 3;
}

static void next_done_cancel(void *data)
{
  struct lt *lt = data;
  lt->in_next_done = false;
}

static int next_done_k(lua_State *L, int status, lua_KContext ctx);

static int l_next_done(lua_State *L)
{
  struct lt *me = lt_check(L, "pacer.gather");
  if (me->doneq_head < me->doneq_tail) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, me->doneq_ref); /* q */
    lua_rawgeti(L, -1, ++me->doneq_head);             /* q, th */
    lua_pushnil(L);
    lua_rawseti(L, -3, me->doneq_head);
    lua_remove(L, -2);                                /* th */
    return push_outcome(L, lua_touserdata(L, -1));
  }
  if (!open_kid(me))
    return luaL_error(L, "pacer: next_done without running children");
  me->in_next_done = true;
  return lt_await(L, me, next_done_cancel, me, next_done_k);
}

static int next_done_k(lua_State *L, int status, lua_KContext ctx)
{
  struct lt *me = lt_of(L);
  me->woken = NULL;
  me->in_next_done = false;
  return l_next_done(L);
}

static void wait_cancel(void *data)
{
  unlink_waiter(data);
}

static int task_wait_k(lua_State *L, int status, lua_KContext ctx);

static int task_wait(lua_State *L)
{
  struct th *th = check_th(L, 1);
  lua_settop(L, 1);
  if (th->lt) {
    struct lt *me = lt_check(L, "task:wait");
    if (th->lt == me)
      return luaL_error(L, "task:wait: a task cannot wait for itself");
    th->lt->waited = true;
    me->awaiting = th->lt;
    me->wait_next = th->lt->waiters;
    th->lt->waiters = me;
    return lt_await(L, me, wait_cancel, me, task_wait_k);
  }
  lua_getiuservalue(L, 1, 1); /* th, payload */
  if (th->state == TH_OK) {
    lua_Integer n = (lua_getfield(L, 2, "n"), lua_tointeger(L, -1));
    lua_pop(L, 1);
    luaL_checkstack(L, (int)n, "too many results");
    for (lua_Integer i = 1; i <= n; i++)
      lua_rawgeti(L, 2, i);
    return (int)n;
  }
  if (th->state == TH_CANCELLED && lua_type(L, 2) == LUA_TSTRING)
    return luaL_error(L, "task:wait: the task was %s", lua_tostring(L, 2));
  return lua_error(L);
}

static int task_wait_k(lua_State *L, int status, lua_KContext ctx)
{
  struct lt *me = lt_of(L);
  me->woken = NULL;
  return task_wait(L);
}

static int task_cancel(lua_State *L)
{
  struct th *th = check_th(L, 1);
  if (th->lt) {
    th->lt->waited = true; /* cancelling counts as dealing with it */
    lt_close(th->lt, "cancelled");
  }
  struct lt *me = lt_of(L);
  if (me && me->kill_requested && lua_isyieldable(L))
    return lua_yield(L, 0); /* lt_run closes it */
  return 0;
}

static int task_status(lua_State *L)
{
  struct th *th = check_th(L, 1);
  static const char *const names[] = {"running", "ok", "error", "cancelled"};
  lua_pushstring(L, names[th->state]);
  return 1;
}

static int task_tostring(lua_State *L)
{
  struct th *th = check_th(L, 1);
  lua_pushfstring(L, "pacer.task (%p)", (void *)th);
  return 1;
}

/* ================================================================ sleep */

struct sleep_op {
  uv_timer_t timer;
  struct lt *lt;
};

static void on_sleep_closed(uv_handle_t *h)
{
  free(PC_CONTAINER_OF(h, struct sleep_op, timer));
}

static void on_sleep_fired(uv_timer_t *t)
{
  lt_wake(PC_CONTAINER_OF(t, struct sleep_op, timer)->lt);
}

/* Completed or not: closing stops the timer, and the op is freed once the
 * close callback has run. */
static void sleep_cancel(void *data)
{
  struct sleep_op *op = data;
  uv_close((uv_handle_t *)&op->timer, on_sleep_closed);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
  struct lt *lt = lt_of(L);
  struct sleep_op *op = lt->woken;
  lt->woken = NULL;
  sleep_cancel(op);
  return 0;
}

static int l_sleep(lua_State *L)
{
  lua_Number sec = luaL_checknumber(L, 1);
  luaL_argcheck(L, sec >= 0 && sec <= 30.0 * 86400, 1, "seconds must be between 0 and 30 days");
  struct lt *lt = lt_check(L, "pacer.sleep");
  struct sleep_op *op = pc_xmalloc(sizeof *op);
  op->lt = lt;
  uv_timer_init(pc_run_loop(lt->step->run), &op->timer);
  uv_update_time(pc_run_loop(lt->step->run)); /* the cached clock may be stale */
  uv_timer_start(&op->timer, on_sleep_fired, (uint64_t)llround(sec * 1000.0), 0);
  return lt_await(L, lt, sleep_cancel, op, sleep_k);
}

/* ============================================================= permits */

enum permit_kind { PERMIT_SEM, PERMIT_POOL };

struct sem {
  lua_Integer size;
  lua_Integer avail;
  struct semw *head, *tail;
};

struct semw {
  struct semw *prev, *next;
  struct sem *sem;
  struct lt *lt;
  bool queued, granted;
};

struct permit {
  enum permit_kind kind;
  struct sem *sem;        /* kept alive by the permit's uservalue */
  struct pc_pool *pool;   /* valid while held (the run outlives its steps) */
  struct pc_lstep *step;  /* holder, while held */
  struct permit *prev, *next;
  bool held;
};

static void sem_give(struct sem *sem)
{
  struct semw *w = sem->head;
  if (!w) {
    sem->avail++;
    return;
  }
  sem->head = w->next;
  if (sem->head)
    sem->head->prev = NULL;
  else
    sem->tail = NULL;
  w->queued = false;
  w->granted = true;
  lt_wake(w->lt);
}

static void release_permit(struct permit *p)
{
  if (!p->held)
    return;
  p->held = false;
  struct pc_lstep *s = p->step;
  if (p->prev)
    p->prev->next = p->next;
  else if (s)
    s->permits = p->next;
  if (p->next)
    p->next->prev = p->prev;
  p->prev = p->next = NULL;
  p->step = NULL;
  if (p->kind == PERMIT_SEM)
    sem_give(p->sem);
  else
    pc_pool_release(p->pool);
}

/* Pushes a held permit; the object at `owner_idx` (the semaphore) is kept
 * alive through the permit's uservalue. */
static void push_permit(lua_State *L, struct lt *lt, enum permit_kind kind, int owner_idx,
                        struct sem *sem, struct pc_pool *pool)
{
  owner_idx = lua_absindex(L, owner_idx);
  struct permit *p = lua_newuserdatauv(L, sizeof *p, 1);
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, "pacer.permit");
  lua_pushvalue(L, owner_idx);
  lua_setiuservalue(L, -2, 1);
  p->kind = kind;
  p->sem = sem;
  p->pool = pool;
  p->held = true;
  p->step = lt->step;
  p->next = lt->step->permits;
  if (p->next)
    p->next->prev = p;
  lt->step->permits = p;
}

static int permit_release(lua_State *L)
{
  release_permit(luaL_checkudata(L, 1, "pacer.permit"));
  return 0;
}

static int permit_held(lua_State *L)
{
  struct permit *p = luaL_checkudata(L, 1, "pacer.permit");
  lua_pushboolean(L, p->held);
  return 1;
}

static void semw_cancel(void *data)
{
  struct semw *w = data;
  struct sem *sem = w->sem;
  if (w->queued) {
    if (w->prev)
      w->prev->next = w->next;
    else
      sem->head = w->next;
    if (w->next)
      w->next->prev = w->prev;
    else
      sem->tail = w->prev;
  } else if (w->granted) {
    sem_give(sem);
  }
  free(w);
}

static int sem_acquire_k(lua_State *L, int status, lua_KContext ctx)
{
  struct lt *lt = lt_of(L);
  struct semw *w = lt->woken;
  lt->woken = NULL;
  struct sem *sem = w->sem;
  free(w);
  push_permit(L, lt, PERMIT_SEM, 1, sem, NULL);
  return 1;
}

static int sem_acquire(lua_State *L)
{
  struct sem *sem = luaL_checkudata(L, 1, "pacer.semaphore");
  lua_settop(L, 1);
  struct lt *lt = lt_check(L, "semaphore:acquire");
  if (sem->avail > 0 && !sem->head) {
    sem->avail--;
    push_permit(L, lt, PERMIT_SEM, 1, sem, NULL);
    return 1;
  }
  struct semw *w = pc_xcalloc(1, sizeof *w);
  w->sem = sem;
  w->lt = lt;
  w->queued = true;
  w->prev = sem->tail;
  if (sem->tail)
    sem->tail->next = w;
  else
    sem->head = w;
  sem->tail = w;
  return lt_await(L, lt, semw_cancel, w, sem_acquire_k);
}

static int sem_available(lua_State *L)
{
  struct sem *sem = luaL_checkudata(L, 1, "pacer.semaphore");
  lua_pushinteger(L, sem->avail);
  return 1;
}

static int l_semaphore(lua_State *L)
{
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1, 1, "a semaphore needs at least one permit");
  struct sem *sem = lua_newuserdatauv(L, sizeof *sem, 0);
  memset(sem, 0, sizeof *sem);
  sem->size = sem->avail = n;
  luaL_setmetatable(L, "pacer.semaphore");
  return 1;
}

/* pacer.pool(NAME): a table {name = NAME} with the "pacer.pool" metatable;
 * the pool itself is looked up in the running workflow at acquire time, so
 * a plugin may create it while it loads. */
struct poolw {
  struct pc_pool_waiter w;
  struct pc_pool *pool;
  struct lt *lt;
  bool granted;
};

static void on_pool_granted(struct pc_pool_waiter *w)
{
  struct poolw *pw = w->data;
  pw->granted = true;
  lt_wake(pw->lt);
}

static void poolw_cancel(void *data)
{
  struct poolw *pw = data;
  if (pw->granted)
    pc_pool_release(pw->pool);
  else
    pc_pool_cancel(&pw->w);
  free(pw);
}

static int pool_acquire_k(lua_State *L, int status, lua_KContext ctx)
{
  struct lt *lt = lt_of(L);
  struct poolw *pw = lt->woken;
  lt->woken = NULL;
  struct pc_pool *pool = pw->pool;
  free(pw);
  push_permit(L, lt, PERMIT_POOL, 1, NULL, pool);
  return 1;
}

static int pool_acquire(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getfield(L, 1, "name") != LUA_TSTRING)
    return luaL_error(L, "pool:acquire: not a pool object (call it as p:acquire())");
  const char *name = c_string(L, -1, "pool:acquire", "the pool's name");
  struct lt *lt = lt_check(L, "pool:acquire");
  struct pc_pool *pool = pc_run_pool(lt->step->run, name);
  if (!pool)
    return luaL_error(L, "pacer.pool: the workflow has no pool named \"%s\"", name);
  lua_pop(L, 1);
  struct poolw *pw = pc_xcalloc(1, sizeof *pw);
  pw->pool = pool;
  pw->lt = lt;
  pw->w.data = pw;
  if (pc_pool_acquire(pool, &pw->w, on_pool_granted)) {
    free(pw);
    push_permit(L, lt, PERMIT_POOL, 1, NULL, pool);
    return 1;
  }
  return lt_await(L, lt, poolw_cancel, pw, pool_acquire_k);
}

static int l_pool(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TSTRING);
  const char *name = c_string(L, 1, "pacer.pool", "the name");
  struct lt *lt = lt_of(L);
  if (lt && !pc_run_pool(lt->step->run, name))
    return luaL_error(L, "pacer.pool: the workflow has no pool named \"%s\"", name);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  luaL_setmetatable(L, "pacer.pool");
  return 1;
}

/* ================================================================ exec */

struct exec_op {
  struct lt *lt;
  struct pc_proc *proc; /* NULL once it reported */
  bool done;
  int exit_code, sig;
  char *out, *err;
  size_t out_len, err_len;
  bool out_trunc, err_trunc;
};

static void exec_op_free(struct exec_op *op)
{
  free(op->out);
  free(op->err);
  free(op);
}

static void on_exec_done(void *data, const struct pc_proc_result *r)
{
  struct exec_op *op = data;
  op->done = true;
  op->proc = NULL;
  op->exit_code = r->exit_code;
  op->sig = r->signal;
  op->out = pc_xstrndup(r->out ? r->out : "", r->out_len);
  op->out_len = r->out_len;
  op->err = pc_xstrndup(r->err ? r->err : "", r->err_len);
  op->err_len = r->err_len;
  op->out_trunc = r->out_truncated;
  op->err_trunc = r->err_truncated;
  lt_wake(op->lt);
}

static void exec_cancel(void *data)
{
  struct exec_op *op = data;
  if (op->proc)
    pc_proc_cancel(op->proc);
  exec_op_free(op);
}

static int exec_k(lua_State *L, int status, lua_KContext ctx)
{
  struct lt *lt = lt_of(L);
  struct exec_op *op = lt->woken;
  lt->woken = NULL;
  lua_createtable(L, 0, 6);
  if (op->exit_code >= 0)
    lua_pushinteger(L, op->exit_code);
  else
    lua_pushnil(L);
  lua_setfield(L, -2, "exit_code");
  if (op->sig)
    lua_pushstring(L, pc_signal_name(op->sig));
  else
    lua_pushnil(L);
  lua_setfield(L, -2, "signal");
  lua_pushlstring(L, op->out, op->out_len);
  lua_setfield(L, -2, "stdout");
  lua_pushlstring(L, op->err, op->err_len);
  lua_setfield(L, -2, "stderr");
  lua_pushboolean(L, op->out_trunc || op->err_trunc);
  lua_setfield(L, -2, "truncated");
  exec_op_free(op);
  return 1;
}

/* pacer.exec(argv, {env =, cwd =, stdin =, log =}) -> {exit_code, signal,
 * stdout, stderr, truncated}; nil, message when the program cannot start. */
static int l_exec(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 1 && n < 4096, 1, "argv must be a non-empty list of strings");
  struct lt *lt = lt_check(L, "pacer.exec");
  luaL_checkstack(L, (int)n + 8, "too many arguments");
  /* Strings stay on the stack (slots 3..) while spawning copies them. */
  const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0); /* 3 */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "pacer.exec: argv[%d] is a %s, not a string", (int)i,
                        luaL_typename(L, -1));
    argv[i - 1] = c_string(L, -1, "pacer.exec", "argv[%d]", (int)i);
  }
  argv[n] = NULL;
  struct pc_proc_opts o;
  memset(&o, 0, sizeof o);
  o.argv = argv;
  const char **env = NULL;
  bool log_output = true;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "cwd") != LUA_TNIL) {
      luaL_checktype(L, -1, LUA_TSTRING);
      o.cwd = c_string(L, -1, "pacer.exec", "cwd");
    }
    if (lua_getfield(L, 2, "stdin") != LUA_TNIL)
      o.stdin_data = luaL_checklstring(L, -1, &o.stdin_len);
    if (lua_getfield(L, 2, "log") != LUA_TNIL)
      log_output = lua_toboolean(L, -1);
    if (lua_getfield(L, 2, "env") != LUA_TNIL) {
      luaL_checktype(L, -1, LUA_TTABLE);
      int envt = lua_gettop(L);
      lua_newtable(L); /* the "NAME=VALUE" strings, anchored while spawning */
      int strs = lua_gettop(L);
      lua_Integer cnt = 0;
      lua_pushnil(L);
      while (lua_next(L, envt)) {                          /* key, value */
        if (lua_type(L, -2) != LUA_TSTRING)
          return luaL_error(L, "pacer.exec: env names must be strings");
        const char *k = c_string(L, -2, "pacer.exec", "an env name");
        if (!*k || strchr(k, '='))
          return luaL_error(L, "pacer.exec: env: \"%s\" is not a valid variable name", k);
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN)
          return luaL_error(L, "pacer.exec: env: the value of %s must be a string, got %s", k,
                            luaL_typename(L, -1));
        const char *v = luaL_tolstring(L, -1, NULL);      /* key, value, vtext */
        v = c_string(L, -1, "pacer.exec", "env %s", k);
        lua_pushfstring(L, "%s=%s", k, v);                 /* ..., "k=v" */
        lua_rawseti(L, strs, ++cnt);                       /* key, value, vtext */
        lua_pop(L, 2);                                     /* key */
      }
      env = lua_newuserdatauv(L, sizeof(char *) * (size_t)(cnt + 1), 0);
      for (lua_Integer i = 1; i <= cnt; i++) {
        lua_rawgeti(L, strs, i);
        env[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
      }
      env[cnt] = NULL;
      o.env = env;
    }
  }
  o.label = log_output ? lt->step->label : NULL;
  struct exec_op *op = pc_xcalloc(1, sizeof *op);
  op->lt = lt;
  int rc = pc_proc_spawn(pc_exec_procs(lt->step->run), &o, on_exec_done, op, &op->proc);
  if (rc) {
    free(op);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot start \"%s\": %s", argv[0], uv_strerror(rc));
    return 2;
  }
  return lt_await(L, lt, exec_cancel, op, exec_k);
}

/* ================================================================ http */

struct http_op {
  struct lt *lt;
  struct pc_http_request *req; /* NULL once it reported */
  bool done;
  int result_ref; /* the result table, when a response arrived */
  char *error;    /* the message, when it did not */
};

static void http_op_free(struct http_op *op)
{
  luaL_unref(op->lt->step->ps->L, LUA_REGISTRYINDEX, op->result_ref);
  free(op->error);
  free(op);
}

/* From a libuv callback: the result is valid only now, so it becomes a Lua
 * table (on the main thread, outside any coroutine) before the resume is
 * queued. */
static void on_http_done(void *data, const struct pc_http_result *r)
{
  struct http_op *op = data;
  struct pm_state *ps = op->lt->step->ps;
  lua_State *L = ps->L;
  op->done = true;
  op->req = NULL;
  if (r->fail != PC_FAIL_NONE) {
    op->error = pc_xstrdup(r->error ? r->error : "request failed");
  } else {
    lua_newtable(L);
    char *err = NULL;
    if (pc_http_result_fill(r, ps->h, lua_gettop(L), &err) != 0) {
      lua_pop(L, 1);
      op->error = err; /* raised like a network error */
    } else {
      op->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }
  lt_wake(op->lt);
}

static void http_cancel(void *data)
{
  struct http_op *op = data;
  if (op->req)
    pc_http_request_cancel(op->req);
  http_op_free(op);
}

static int http_k(lua_State *L, int status, lua_KContext ctx)
{
  struct lt *lt = lt_of(L);
  struct http_op *op = lt->woken;
  lt->woken = NULL;
  if (op->error) {
    lua_pushstring(L, op->error);
    http_op_free(op);
    return lua_error(L); /* network errors raise; statuses do not */
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, op->result_ref);
  http_op_free(op);
  return 1;
}

/* core.http_request(opts): opts as the `http` action takes them, merged
 * over defaults.http; yields until the response is complete. */
static int l_http_request(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  struct lt *lt = lt_check(L, "pacer.http");
  struct pc_lstep *s = lt->step;
  struct pc_http_session *sess = pc_http_session_of(s->run);
  if (!sess)
    return luaL_error(L, "pacer.%s", pc_curl_load_error() ? pc_curl_load_error()
                                                          : "http: libcurl could not be initialised");
  /* The HTTP module works on the main thread's stack: hand it the options
   * there, with the memory limit off (it does not expect to raise). */
  lua_State *M = s->ps->L;
  int base = lua_gettop(M);
  bool was = pc_lua_memory_enforce(s->ps->h, false);
  lua_pushvalue(L, 1);
  lua_xmove(L, M, 1);                                  /* (M) opts */
  char *err = NULL;
  struct http_op *op = pc_xcalloc(1, sizeof *op);
  op->lt = lt;
  op->result_ref = LUA_NOREF;
  struct pc_http_spec_opts o = {
      .defaults = pc_run_workflow_def(s->run)->http_defaults,
      .scope_ref = s->a->scope_ref,
      .allow_timeout = true,
      .label = s->label,
  };
  if (pc_http_spec_start(s->ps->h, base + 1, &o, sess, on_http_done, op, &op->req, &err) != 0) {
    free(op);
    op = NULL;
  }
  lua_settop(M, base);
  pc_lua_memory_enforce(s->ps->h, was);
  if (!op) {
    lua_pushfstring(L, "pacer.http: %s", err ? err : "cannot start the request");
    free(err);
    return lua_error(L);
  }
  return lt_await(L, lt, http_cancel, op, http_k);
}

/* ================================================================ misc */

static int l_log(lua_State *L)
{
  const char *level = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TSTRING);
  const char *text = c_string(L, 2, "pacer.log", "the message");
  struct pm_state *ps = state_of(L);
  struct lt *lt = lt_of(L);
  if (!lt && ps)
    lt = ps->current;
  enum pc_log_level lvl = PC_LOG_INFO;
  if (strcmp(level, "debug") == 0)
    lvl = PC_LOG_DEBUG;
  else if (strcmp(level, "warn") == 0)
    lvl = PC_LOG_WARN;
  else if (strcmp(level, "error") == 0)
    lvl = PC_LOG_ERROR;
  pc_log(lvl, lt ? lt->step->label : NULL, "%s", text);
  return 0;
}

static int l_out(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int err = pc_out_line(text, len);
  if (err)
    return luaL_error(L, "cannot write to stdout: %s", strerror(-err));
  return 0;
}

/* True for the threads plugin code must not resume, close or yield by
 * hand: pacer's coroutines, the ones it runs finalizers in, and the main
 * thread (which is never a suspended coroutine, whatever its stack holds). */
static int l_guard_tripped(lua_State *L)
{
  lua_pushboolean(L, pc_lua_guard_tripped(state_of(L)->h));
  return 1;
}

static int l_is_managed(lua_State *L)
{
  lua_State *co = lua_tothread(L, 1);
  bool managed = false;
  if (co) {
    managed = *(struct lt **)lua_getextraspace(co) != NULL;
    if (!managed) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD); /* co, main */
      managed = lua_tothread(L, -1) == co;
      lua_pop(L, 1);
    }
  }
  lua_pushboolean(L, managed);
  return 1;
}

static int l_read_file(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  char *text = NULL;
  size_t len = 0;
  int err = pc_read_file(path, (size_t)4 << 20, &text, &len);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(-err));
    return 2;
  }
  lua_pushlstring(L, text, len);
  free(text);
  return 1;
}

/* ================================================================ open */

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      const luaL_Reg *metas)
{
  luaL_newmetatable(L, name); /* mt */
  lua_newtable(L);            /* mt, methods */
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index"); /* mt */
  if (metas)
    luaL_setfuncs(L, metas, 0);
  lua_pushliteral(L, "pacer object");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

static int open_module(lua_State *L)
{
  struct pm_state *ps = lua_touserdata(L, 1);
  static const luaL_Reg task_m[] = {{"wait", task_wait}, {"cancel", task_cancel},
                                    {"status", task_status}, {NULL, NULL}};
  static const luaL_Reg task_mm[] = {{"__tostring", task_tostring}, {NULL, NULL}};
  new_class(L, "pacer.task", task_m, task_mm);
  static const luaL_Reg sem_m[] = {{"acquire", sem_acquire}, {"available", sem_available},
                                   {NULL, NULL}};
  new_class(L, "pacer.semaphore", sem_m, NULL);
  static const luaL_Reg pool_m[] = {{"acquire", pool_acquire}, {NULL, NULL}};
  new_class(L, "pacer.pool", pool_m, NULL);
  static const luaL_Reg permit_m[] = {{"release", permit_release}, {"held", permit_held},
                                      {NULL, NULL}};
  static const luaL_Reg permit_mm[] = {{"__close", permit_release}, {"__gc", permit_release},
                                       {NULL, NULL}};
  new_class(L, "pacer.permit", permit_m, permit_mm);
  static const luaL_Reg sentinel_mm[] = {{"__gc", sentinel_gc}, {NULL, NULL}};
  static const luaL_Reg none[] = {{NULL, NULL}};
  new_class(L, "pacer.sentinel", none, sentinel_mm);
  lua_newtable(L);                             /* finq */
  ps->finq_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);                             /* sentinels */
  lua_createtable(L, 0, 1);                    /* sentinels, mt */
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);                     /* sentinels */
  ps->sentinels_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  const struct pc_embedded *e = NULL;
  for (const struct pc_embedded *x = pc_embedded_lua; x->name; x++)
    if (strcmp(x->name, "pacer") == 0)
      e = x;
  if (!e)
    return luaL_error(L, "pacer.lua is not embedded");
  if (luaL_loadbuffer(L, e->data, e->len, "=pacer.lua") != LUA_OK) /* chunk */
    return lua_error(L);

  static const luaL_Reg core[] = {
      {"sleep", l_sleep},       {"spawn", l_spawn},         {"child", l_child},
      {"next_done", l_next_done}, {"cancel", task_cancel},  {"semaphore", l_semaphore},
      {"pool", l_pool},         {"exec", l_exec},           {"log", l_log},
      {"out", l_out},           {"is_managed", l_is_managed}, {"read_file", l_read_file},
      {"setmetatable", l_setmetatable}, {"guard_tripped", l_guard_tripped}, {NULL, NULL}};
  luaL_newlib(L, core);                            /* chunk, core */
  lua_pushcfunction(L, l_http_request);
  lua_setfield(L, -2, "http_request");
  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);  /* chunk, core, os */
  lua_getfield(L, -1, "time");
  lua_setfield(L, -3, "os_time");
  lua_getfield(L, -1, "clock");
  lua_setfield(L, -3, "os_clock");
  lua_getfield(L, -1, "date");
  lua_setfield(L, -3, "os_date");
  lua_pop(L, 1);                                   /* chunk, core */
  luaL_requiref(L, LUA_DBLIBNAME, luaopen_debug, 0); /* chunk, core, debug */
  lua_getfield(L, -1, "traceback");
  lua_setfield(L, -3, "traceback");
  lua_pop(L, 1);                                   /* chunk, core */
  /* Neither library stays reachable by name: drop them from package.loaded. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* chunk, core, loaded */
  lua_pushnil(L);
  lua_setfield(L, -2, LUA_OSLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, LUA_DBLIBNAME);
  lua_getfield(L, -1, PC_JSON_MODULE);             /* chunk, core, loaded, json */
  lua_remove(L, -2);                               /* chunk, core, json */
  pc_lua_push_prelude(ps->h, NULL);                /* chunk, core, json, P */
  lua_insert(L, -2);                               /* chunk, core, P, json */
  lua_call(L, 3, 1);                               /* M */
  ps->M_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* The string metatable is shared by every string in the state: keep
   * plugins from replacing its __index. */
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);                         /* "", mt */
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  lua_pushlightuserdata(L, ps);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  return 0;
}

int pc_pacer_open(struct pc_lua *h, char **err)
{
  lua_State *L = pc_lua_state(h);
  if (state_of(L))
    return 0;
  /* The state owns ps: a userdata anchored in the registry. */
  struct pm_state *ps = lua_newuserdatauv(L, sizeof *ps, 0); /* ps */
  memset(ps, 0, sizeof *ps);
  ps->h = h;
  ps->L = L;
  ps->M_ref = LUA_NOREF;
  luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushcfunction(L, open_module);
  lua_pushlightuserdata(L, ps);
  char *msg = NULL;
  if (pc_lua_call(h, 1, 0, PC_LUA_HOST_CODE, NULL, true, &msg) != 0) {
    *err = pc_asprintf("cannot build the pacer module: %s", msg);
    free(msg);
    return -1;
  }
  return 0;
}

void pc_pacer_push(struct pc_lua *h, const char *name)
{
  lua_State *L = pc_lua_state(h);
  struct pm_state *ps = state_of(L);
  assert(ps);
  lua_rawgeti(L, LUA_REGISTRYINDEX, ps->M_ref); /* M */
  lua_getfield(L, -1, name);                    /* M, value */
  lua_remove(L, -2);                            /* value */
}

int pc_pacer_call(struct pc_lua *h, int nargs, int nres, double limit_ms, const char *what,
                  char **err)
{
  lua_State *L = pc_lua_state(h);
  struct pm_state *ps = state_of(L);
  assert(ps && !ps->current);
  int rc = pc_lua_call(h, nargs, nres, limit_ms, what, true, err);
  run_finalizers(ps); /* above the results, and leaves the stack as it was */
  return rc;
}
