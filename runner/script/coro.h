/* coro.h: the coroutine runtime every asynchronous `pacer.*` function is
 * built from (coro.c), in the manner of lua-nginx-module's
 * ngx_http_lua_api.h: a C module finds the calling coroutine, registers
 * what it waits for and yields; whatever completes the operation wakes the
 * coroutine, which is then resumed from the run's deferred queue (never
 * inside a libuv or curl callback) and finishes in a continuation function.
 *
 * A *job* is a tree of coroutines of the run's one lua_State: a step's code
 * (`uses:` or `lua:`) runs as the job's root, pacer.gather and pacer.timeout
 * make *children* (closed with their parent), pacer.spawn makes *tasks*
 * owned by the job. Each coroutine has at most one pending operation
 * {cancel, data}: set by pc_coro_await just before it yields, cleared just
 * before it is resumed (the continuation gets `data` from pc_coro_woken),
 * and called instead when the coroutine is closed -- whether or not the
 * operation had completed already, so cancel functions handle both.
 *
 * An async C function, then:
 *
 *   static int l_thing_wait(lua_State *L)
 *   {
 *     ...check the arguments...
 *     struct pc_coro *co = pc_coro_check(L, "pacer.thing");  raises if it cannot wait
 *     struct op *op = ...; op->co = co; start it (its callback: pc_coro_wake(op->co));
 *     return pc_coro_await(L, co, op_cancel, op, thing_k);
 *   }
 *   static int thing_k(lua_State *L, int status, lua_KContext ctx)
 *   {
 *     struct op *op = pc_coro_woken(L);   completed: push the results, free op
 *     ...
 *   }
 *
 * Every resume runs inside a guard (host.h) whose deadline is the job's:
 * past it the coroutine is stopped and the job ends as a timeout. While a
 * signal is pending (base/signal.h), a coroutine that computes without
 * waiting is preempted: it yields to the loop, so the signal is handled,
 * and is resumed later unless the signal's handling cancelled it. See
 * docs/plugins.md. */
#ifndef PACER_SCRIPT_CORO_H
#define PACER_SCRIPT_CORO_H

#include <stdbool.h>

#include <lua.h>
#include <uv.h>

#include "base/queue.h"
#include "model/action.h"
#include "script/coro_sched.h"
#include "script/host.h"

struct pc_coro;
struct pc_coro_job;
struct pc_deferred; /* a node of the run's deferred queue (model/action.h) */
struct pc_run;

/* struct pc_coro_sched, where a job's coroutines are resumed from:
 * script/coro_sched.h. */

struct pc_coro_job_opts {
  struct pc_coro_sched sched;
  double deadline;   /* pc_mono_ms() time; INFINITY for none */
  double timeout_ms; /* what `deadline` came from, for the timeout message */
  char *label;       /* for log lines; malloc'd, the job takes it (NULL: "?") */
  /* The run whose services pacer.pool, pacer.exec and pacer.http use, and
   * the scope pacer.http evaluates defaults in; NULL / LUA_NOREF where
   * there is none (tests): those functions then raise. Borrowed. */
  struct pc_run *run;
  int scope_ref;
  /* The step attempt the job runs for (borrowed; NULL: none): pacer.http
   * names its span in a traceparent header when the run asks for one. */
  struct pc_attempt *attempt;
  /* Called when the root coroutine returns, with its first return value
   * (or nil) on top of the main thread's stack, before the rest of the job
   * is closed; the callee leaves the stack as it found it. Optional. */
  void (*returned)(void *data);
  /* Called once when the root has ended, after every coroutine of the job
   * has been closed and the job freed: PC_FAIL_NONE, or PC_FAIL_ERROR /
   * PC_FAIL_TIMEOUT with a message. Never called after
   * pc_coro_job_cancel. */
  void (*done)(void *data, enum pc_fail fail, const char *msg);
  void *data;
};

/* Starts the function below `nargs` arguments on the main thread's stack
 * (both popped) as the root coroutine of a new job. The pacer module must
 * be open (pc_pacer_open). The first resume is queued, never done here. */
struct pc_coro_job *pc_coro_job_start(struct pc_lua *h, const struct pc_coro_job_opts *o,
                                      int nargs);
/* Stops a job: closes every coroutine of it (their to-be-closed variables
 * run, their operations are cancelled), releases what it holds and frees
 * it. `done` is not called. NULL is allowed. */
void pc_coro_job_cancel(struct pc_coro_job *j);

/* ----------------------------------------------- for async C functions */

/* The coroutine pacer manages that runs on thread L, or NULL: the main
 * thread, a coroutine plugin code made with coroutine.create, or one pacer
 * runs a __gc finalizer in. */
struct pc_coro *pc_coro_of(lua_State *L);
/* The calling coroutine, for an async call named `what` (used in the
 * messages). Raises a clear error when the call cannot wait here: outside
 * a job (a plugin file loading, an expression), inside a user coroutine or
 * a finalizer, in a coroutine being cancelled, or where Lua cannot yield (a
 * table.sort comparator...). */
struct pc_coro *pc_coro_check(lua_State *L, const char *what);
/* Registers the pending operation {cancel, data} and yields; `k` runs when
 * the coroutine is resumed. Use as `return pc_coro_await(...)`. */
int pc_coro_await(lua_State *L, struct pc_coro *co, void (*cancel)(void *data), void *data,
                  lua_KFunction k);
/* In a continuation: the `data` of the operation that completed. Each
 * resume hands it over once; the continuation owns it from then on. */
void *pc_coro_woken(lua_State *L);
/* Queues the coroutine's resume on its job's deferred queue. Safe from any
 * libuv callback; waking a queued coroutine again does nothing. */
void pc_coro_wake(struct pc_coro *co);

/* What a coroutine's job runs in. */
struct pc_coro_job *pc_coro_job_of(const struct pc_coro *co);
const char *pc_coro_label(const struct pc_coro *co);
uv_loop_t *pc_coro_loop(const struct pc_coro *co);
struct pc_run *pc_coro_run(const struct pc_coro *co); /* NULL in tests */
int pc_coro_scope(const struct pc_coro *co);
struct pc_attempt *pc_coro_attempt(const struct pc_coro *co); /* NULL: none */

/* Something a job's code holds beyond one operation (a semaphore or pool
 * permit): the job keeps a list, and when it ends it warns that `what` was
 * still held and calls `release`, which must unhold it. */
struct pc_coro_hold {
  struct pc_queue node;
  const char *what;
  void (*release)(struct pc_coro_hold *x);
};
void pc_coro_hold(struct pc_coro_job *j, struct pc_coro_hold *x);
void pc_coro_unhold(struct pc_coro_hold *x);

#endif
