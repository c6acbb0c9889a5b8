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
 * Guards. Around every resume a count hook compares the clock with the
 * step's deadline (its timeout, or the workflow's): past it, the hook raises
 * a "CPU-bound" error and re-arms itself for every line, so pcall cannot
 * swallow it. Lua code that runs for more than 100 ms without yielding is
 * reported with the step's name. The state's memory limit (luahost.c) is
 * enforced only while plugin code runs, so the engine's own allocations
 * never fail because of it. */
#include "pacermod.h"

#include "curlshim.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <uv.h>

#include "engine.h"
#include "exec.h"
#include "http.h"
#include "log.h"
#include "pool.h"
#include "util.h"

#define BLOCK_WARN_MS 100.0   /* report Lua code that holds the loop longer */
#define HOOK_COUNT 1000       /* instructions between clock checks */
#define CLOSE_LIMIT_MS 1000.0 /* bound on <close> handlers while cancelling */

struct pc_embedded {
  const char *name;
  const char *data;
  size_t len;
};
extern const struct pc_embedded pc_embedded_lua[];

struct lt;
struct permit;

/* The CPU guard of whatever Lua code is running now. Saved and restored
 * around nested uses (a task closing another while it runs). */
struct guard {
  bool active;
  bool tripped;
  bool warned;
  double started;
  double deadline;          /* mono ms; INFINITY for none */
  const char *label;        /* step label for the blocking report; borrowed */
  struct pc_lstep *step;    /* NULL outside steps (plugin load, closing) */
  const char *what;         /* for the error message */
};

struct pm_state {
  struct pc_lua *h;
  lua_State *L;
  int M_ref;           /* the table lua/pacer.lua returned */
  struct lt *current;  /* the lt being resumed, or NULL */
  struct guard g;
};

struct pc_lstep {
  struct pm_state *ps;
  struct pc_attempt *a; /* borrowed */
  struct pc_run *run;   /* borrowed */
  char *label;
  struct lt *root;
  struct lt *lts;         /* every live lt of the step */
  struct permit *permits; /* permits held by the step's code */
  double deadline;        /* mono ms; INFINITY for none */
  double timeout_ms;      /* what `deadline` came from, for messages */
  bool run_deadline;      /* the deadline is the workflow's, not the step's */
  bool cpu_tripped;
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
  struct lt *prev, *next; /* in step->lts */
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

static struct lt *lt_of(lua_State *co)
{
  return *(struct lt **)lua_getextraspace(co);
}

static void lt_close(struct lt *lt, const char *why);
static void lt_run(struct lt *lt);

/* ================================================================ guard */

static void guard_hook(lua_State *L, lua_Debug *ar)
{
  struct pm_state *ps = state_of(L);
  if (!ps || !ps->g.active)
    return;
  struct guard *g = &ps->g;
  double now = pc_mono_ms();
  if (!g->tripped) {
    if (!g->warned && g->label && now - g->started > BLOCK_WARN_MS) {
      g->warned = true;
      pc_log(PC_LOG_WARN, g->label,
             "Lua code has run for %.0f ms without yielding: the event loop is blocked",
             now - g->started);
    }
    if (now < g->deadline)
      return;
    g->tripped = true;
    if (g->step)
      g->step->cpu_tripped = true;
  }
  /* From now on every line raises again, so a pcall cannot swallow it. */
  lua_sethook(L, guard_hook, LUA_MASKLINE | LUA_MASKCOUNT, 1);
  if (ps->current && ps->current->co != L)
    lua_sethook(ps->current->co, guard_hook, LUA_MASKLINE | LUA_MASKCOUNT, 1);
  char where[256] = "";
  if (ar && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
    snprintf(where, sizeof where, " (at %s:%d)", ar->short_src, ar->currentline);
  luaL_error(L, "%s%s", g->what, where);
}

static struct guard guard_push(struct pm_state *ps, struct pc_lstep *s, double deadline,
                               const char *what)
{
  struct guard saved = ps->g;
  ps->g.active = true;
  ps->g.tripped = false;
  ps->g.warned = false;
  ps->g.started = pc_mono_ms();
  ps->g.deadline = deadline;
  ps->g.label = s ? s->label : NULL;
  ps->g.step = s;
  ps->g.what = what;
  return saved;
}

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
    if (lua_pushthread(L)) {
      lua_pop(L, 1);
      luaL_error(L, "%s: async calls work only while a step runs (a plugin's run, inline "
                    "`lua:` code, or a function run by pacer.spawn/gather/timeout), not while "
                    "a plugin file loads", what);
    }
    lua_pop(L, 1);
    luaL_error(L, "%s cannot wait inside a coroutine made with coroutine.create/wrap: pacer "
                  "can suspend only its own coroutines (use pacer.spawn or pacer.gather)", what);
  }
  if (lt->closing || lt->kill_requested)
    luaL_error(L, "%s: the task is being cancelled", what);
  if (!lua_isyieldable(L))
    luaL_error(L, "%s cannot wait here: it was called through a C function that cannot yield "
                  "(a table.sort comparator, a string.gsub replacement function, a __gc "
                  "metamethod, ...)", what);
  return lt;
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
  lt->next = s->lts;
  if (s->lts)
    s->lts->prev = lt;
  s->lts = lt;
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
  if (lt->prev)
    lt->prev->next = lt->next;
  else
    s->lts = lt->next;
  if (lt->next)
    lt->next->prev = lt->prev;
  if (s->root == lt)
    s->root = NULL;
  /* Children made by this lt that outlive it (never, for gather and
   * timeout) become the step's. */
  for (struct lt *c = s->lts; c; c = c->next)
    if (c->parent == lt)
      c->parent = NULL;
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

static void close_children(struct lt *lt)
{
  struct pc_lstep *s = lt->step;
  bool again = true;
  while (again) {
    again = false;
    for (struct lt *c = s->lts; c; c = c->next) {
      if (c->parent != lt || c->closing)
        continue;
      if (c == s->ps->current) {
        c->kill_requested = true;
        c->parent = NULL;
        continue;
      }
      lt_close(c, "cancelled: its parent was cancelled");
      again = true;
      break;
    }
  }
}

/* Runs the thread's pending to-be-closed variables (lua_resetthread), under
 * the memory limit and a CPU bound of their own: the step's deadline may
 * well have passed already. */
static void reset_thread(struct lt *lt)
{
  struct pm_state *ps = lt->step->ps;
  int before = lua_status(lt->co);
  bool was = pc_lua_memory_enforce(ps->h, true);
  struct guard saved = guard_push(ps, NULL, pc_mono_ms() + CLOSE_LIMIT_MS,
                                  "a <close> handler ran for too long");
  lua_sethook(lt->co, guard_hook, LUA_MASKCOUNT, HOOK_COUNT);
  int st = lua_resetthread(lt->co);
  if (st != LUA_OK && (before == LUA_OK || before == LUA_YIELD)) {
    const char *msg = lua_tostring(lt->co, -1);
    pc_log(PC_LOG_WARN, lt->step->label, "error in a <close> handler: %s",
           msg ? msg : "(error object is not a string)");
  }
  lua_sethook(lt->co, NULL, 0, 0);
  ps->g = saved;
  pc_lua_memory_enforce(ps->h, was);
  lua_settop(lt->co, 0);
}

static void lt_close(struct lt *lt, const char *why)
{
  struct pc_lstep *s = lt->step;
  struct pm_state *ps = s->ps;
  lua_State *L = ps->L;
  if (lt->closing)
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
    char *msg;
    if (status == LUA_ERRMEM) {
      msg = pc_asprintf("Lua memory limit of %zu MiB exceeded (set it with --lua-memory MB or "
                        "PACER_LUA_MEMORY)", pc_lua_memory_limit(ps->h) >> 20);
    } else {
      const char *m = lua_tostring(co, -1);
      if (!m)
        m = luaL_tolstring(co, -1, NULL);
      luaL_traceback(co, co, m, 0);          /* ..., err, traceback */
      msg = pc_xstrdup(lua_tostring(co, -1));
    }
    lua_pop(co, 1);
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
    lua_pushfstring(L, "Lua memory limit of %d MiB exceeded (set it with --lua-memory MB or "
                       "PACER_LUA_MEMORY)", (int)(pc_lua_memory_limit(ps->h) >> 20));
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
  bool was = pc_lua_memory_enforce(ps->h, true);
  struct guard saved = guard_push(ps, s, s->deadline,
                                  "CPU-bound: the step's Lua code ran past its deadline without "
                                  "yielding, and was stopped");
  lua_sethook(lt->co, guard_hook, LUA_MASKCOUNT, HOOK_COUNT);
  int nres = 0;
  int st = lua_resume(lt->co, L, nargs, &nres);
  double ran = pc_mono_ms() - ps->g.started;
  lua_sethook(lt->co, NULL, 0, 0);
  ps->g = saved;
  pc_lua_memory_enforce(ps->h, was);
  ps->current = NULL;
  if (ran > BLOCK_WARN_MS)
    pc_log(PC_LOG_WARN, s->label, "Lua code blocked the event loop for %.0f ms without yielding",
           ran);

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

/* ================================================================ steps */

static void release_permit(struct permit *p);

static void step_close_all(struct pc_lstep *s)
{
  s->ending = true;
  /* Spawned tasks first (newest first), then the root with its children. */
  while (s->lts) {
    struct lt *victim = NULL;
    for (struct lt *c = s->lts; c; c = c->next)
      if (!c->parent && c != s->root) {
        victim = c;
        break;
      }
    if (!victim)
      victim = s->root ? s->root : s->lts;
    if (victim->closing)
      break; /* cannot happen: lt_close frees before it returns */
    if (victim->spawned && !victim->waited && !victim->closing)
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
  bool any = false;
  for (struct lt *c = me->step->lts; c; c = c->next)
    any = any || (c->parent == me && !c->closing);
  if (!any)
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
  lua_getfield(L, 1, "name");
  const char *name = lua_tostring(L, -1);
  if (!name)
    return luaL_error(L, "pool:acquire: not a pool object (call it as p:acquire())");
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
  const char *name = luaL_checkstring(L, 1);
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
    argv[i - 1] = lua_tostring(L, -1);
  }
  argv[n] = NULL;
  struct pc_proc_opts o;
  memset(&o, 0, sizeof o);
  o.argv = argv;
  const char **env = NULL;
  bool log_output = true;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "cwd") != LUA_TNIL)
      o.cwd = luaL_checkstring(L, -1);
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
        const char *v = luaL_tolstring(L, -1, NULL);      /* key, value, vtext */
        lua_pushfstring(L, "%s=%s", lua_tostring(L, -3), v); /* ..., "k=v" */
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
  struct pc_http_req *req; /* NULL once it reported */
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
    pc_http_cancel(op->req);
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
  struct http_op *op = NULL;
  if (pc_http_push_merged(s->run, base + 1, s->a->scope_ref, &err) == 0) { /* (M) opts, merged */
    op = pc_xcalloc(1, sizeof *op);
    op->lt = lt;
    op->result_ref = LUA_NOREF;
    struct pc_http_start_opts o = {.label = s->label, .allow_timeout = true};
    if (pc_http_start(sess, s->ps->h, base + 2, &o, on_http_done, op, &op->req, &err) != 0) {
      free(op);
      op = NULL;
    }
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
  size_t len;
  const char *text = luaL_checklstring(L, 2, &len);
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
  pc_out_line(text, len);
  return 0;
}

static int l_is_managed(lua_State *L)
{
  lua_State *co = lua_tothread(L, 1);
  lua_pushboolean(L, co && lt_of(co) != NULL);
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
      {NULL, NULL}};
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
  lua_getfield(L, -1, "cjson");                    /* chunk, core, loaded, cjson */
  lua_remove(L, -2);                               /* chunk, core, cjson */
  pc_lua_push_prelude(ps->h, NULL);                /* chunk, core, cjson, P */
  lua_insert(L, -2);                               /* chunk, core, P, cjson */
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
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
    *err = pc_asprintf("cannot build the pacer module: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
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

static int msgh(lua_State *L)
{
  const char *m = lua_tostring(L, 1);
  if (!m)
    m = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, m, 1);
  return 1;
}

int pc_pacer_call(struct pc_lua *h, int nargs, int nres, double limit_ms, char **err)
{
  lua_State *L = pc_lua_state(h);
  struct pm_state *ps = state_of(L);
  assert(ps && !ps->current);
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, msgh);
  lua_insert(L, base);
  bool was = pc_lua_memory_enforce(h, true);
  struct guard saved = guard_push(ps, NULL, pc_mono_ms() + limit_ms,
                                  "the plugin file ran too long while loading");
  lua_sethook(L, guard_hook, LUA_MASKCOUNT, HOOK_COUNT);
  int rc = lua_pcall(L, nargs, nres, base);
  lua_sethook(L, NULL, 0, 0);
  ps->g = saved;
  pc_lua_memory_enforce(h, was);
  if (rc != LUA_OK) {
    if (rc == LUA_ERRMEM)
      *err = pc_asprintf("Lua memory limit of %zu MiB exceeded", pc_lua_memory_limit(h) >> 20);
    else
      *err = pc_xstrdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "(error object)");
    lua_settop(L, base - 1);
    return -1;
  }
  lua_remove(L, base);
  return 0;
}
