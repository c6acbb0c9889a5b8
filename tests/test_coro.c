/* test_coro.c: the coroutine runtime (script/coro.h) without the engine.
 * Each test gets a fresh loop, a Lua host with the pacer module, and a
 * deferred queue of its own (an idle handle draining a list), starts jobs
 * whose code calls a test primitive built on the open API (t_wait: await
 * an operation the test completes by hand), runs the loop, and asserts how
 * often each callback ran. Teardown closes everything and asserts
 * uv_loop_close() == 0. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "base/log.h"
#include "base/signal.h"
#include "base/util.h"
#include "script/coro.h"
#include "script/luahost.h"
#include "script/pacermod.h"

/* ------------------------------------------------ a deferred queue */

struct entry {
  struct pc_deferred *d;
  void (*cb)(struct pc_deferred *d);
};

struct fixture {
  uv_loop_t loop;
  uv_idle_t idle;
  struct entry *q; /* FIFO, q[0] first */
  size_t nq, capq;
  struct pc_lua *h;
  lua_State *L;
  int top;
  /* t_wait operations waiting, in the order they started */
  struct op *ops[64];
  size_t nops;
  /* counts */
  int resumed_k, cancelled, done_calls, drained;
  enum pc_fail fail;
  char *msg;
  char *value;
  char order[256]; /* letters appended by cancel callbacks */
};

static struct fixture *F; /* for the C functions Lua calls */

static void on_idle(uv_idle_t *h)
{
  struct fixture *f = h->data;
  /* Resume in order; what a resume queues waits for the next turn, as the
   * run's drain does once its budget is spent. */
  size_t n = f->nq;
  for (size_t i = 0; i < n && f->nq > 0; i++) {
    struct entry e = f->q[0];
    memmove(f->q, f->q + 1, --f->nq * sizeof *f->q);
    f->drained++;
    e.cb(e.d);
  }
  if (f->nq == 0)
    uv_idle_stop(h);
}

static void t_defer(void *ctx, struct pc_deferred *d, void (*cb)(struct pc_deferred *d))
{
  struct fixture *f = ctx;
  for (size_t i = 0; i < f->nq; i++)
    if (f->q[i].d == d) {
      f->q[i].cb = cb;
      return;
    }
  if (f->nq == f->capq) {
    f->capq = f->capq ? 2 * f->capq : 16;
    f->q = realloc(f->q, f->capq * sizeof *f->q);
  }
  f->q[f->nq++] = (struct entry){d, cb};
  uv_idle_start(&f->idle, on_idle);
}

static void t_defer_cancel(void *ctx, struct pc_deferred *d)
{
  struct fixture *f = ctx;
  for (size_t i = 0; i < f->nq; i++)
    if (f->q[i].d == d) {
      memmove(f->q + i, f->q + i + 1, (f->nq - i - 1) * sizeof *f->q);
      f->nq--;
      return;
    }
}

/* ------------------------------------------- t_wait: a test primitive */

/* t_wait(tag) yields until the test completes the operation with a value,
 * then returns that value. Built only on coro.h, as a pacer.* area is. */
struct op {
  struct pc_coro *co;
  char tag;
  bool completed;
  lua_Integer value;
};

static void forget(struct op *op)
{
  for (size_t i = 0; i < F->nops; i++)
    if (F->ops[i] == op) {
      memmove(F->ops + i, F->ops + i + 1, (F->nops - i - 1) * sizeof *F->ops);
      F->nops--;
      return;
    }
}

static void op_cancel(void *data)
{
  struct op *op = data;
  F->cancelled++;
  size_t n = strlen(F->order);
  if (n + 1 < sizeof F->order) {
    F->order[n] = op->tag;
    F->order[n + 1] = '\0';
  }
  forget(op);
  free(op);
}

static int wait_k(lua_State *L, int status, lua_KContext ctx)
{
  struct op *op = pc_coro_woken(L);
  assert_non_null(op);
  assert_true(op->completed);
  F->resumed_k++;
  lua_pushinteger(L, op->value);
  free(op);
  return 1;
}

static int l_t_wait(lua_State *L)
{
  const char *tag = luaL_optstring(L, 1, "?");
  struct pc_coro *co = pc_coro_check(L, "t_wait");
  struct op *op = calloc(1, sizeof *op);
  op->co = co;
  op->tag = tag[0];
  assert_true(F->nops < 64);
  F->ops[F->nops++] = op;
  return pc_coro_await(L, co, op_cancel, op, wait_k);
}

/* Completes the waiting operation number i (in start order). */
static void complete(struct fixture *f, size_t i, lua_Integer value)
{
  assert_true(i < f->nops);
  struct op *op = f->ops[i];
  forget(op);
  op->completed = true;
  op->value = value;
  pc_coro_wake(op->co);
}

/* -------------------------------------------------------------- jobs */

static void on_returned(void *data)
{
  struct fixture *f = data;
  free(f->value);
  f->value = pc_lua_to_text(f->h, -1, NULL);
}

static void on_done(void *data, enum pc_fail fail, const char *msg)
{
  struct fixture *f = data;
  f->done_calls++;
  f->fail = fail;
  free(f->msg);
  f->msg = msg ? strdup(msg) : NULL;
}

/* Starts `code` (a chunk; `...` are no arguments) as a job with a
 * deadline `ms` from now (< 0: none). */
static struct pc_coro_job *start(struct fixture *f, const char *code, double ms)
{
  if (luaL_loadstring(f->L, code) != LUA_OK)
    fail_msg("%s", lua_tostring(f->L, -1));
  free(f->value);
  f->value = NULL;
  struct pc_coro_job_opts o = {
      .sched = {.loop = &f->loop, .defer = t_defer, .defer_cancel = t_defer_cancel, .ctx = f},
      .deadline = ms < 0 ? INFINITY : pc_mono_ms() + ms,
      .timeout_ms = ms,
      .label = strdup("job"),
      .scope_ref = LUA_NOREF,
      .returned = on_returned,
      .done = on_done,
      .data = f,
  };
  return pc_coro_job_start(f->h, &o, 0);
}

static void run(struct fixture *f)
{
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof *f);
  F = f;
  assert_int_equal(uv_loop_init(&f->loop), 0);
  uv_idle_init(&f->loop, &f->idle);
  f->idle.data = f;
  f->h = pc_lua_new();
  assert_non_null(f->h);
  f->L = pc_lua_state(f->h);
  char *err = NULL;
  assert_int_equal(pc_pacer_open(f->h, &err), 0);
  pc_pacer_push(f->h, "module");
  lua_setglobal(f->L, "pacer");
  lua_pushcfunction(f->L, l_t_wait);
  lua_setglobal(f->L, "t_wait");
  f->top = lua_gettop(f->L);
  pc_signal_reset();
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;
  assert_int_equal(lua_gettop(f->L), f->top);
  assert_int_equal(f->nops, 0); /* every operation completed or cancelled */
  assert_int_equal(f->nq, 0);
  uv_close((uv_handle_t *)&f->idle, NULL);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  pc_lua_free(f->h);
  free(f->q);
  free(f->msg);
  free(f->value);
  free(f);
  F = NULL;
  pc_signal_reset();
  return 0;
}

#define ASSERT_MSG(f, substr)                                               \
  do {                                                                      \
    if (!(f)->msg || !strstr((f)->msg, (substr)))                           \
      fail_msg("message \"%s\" lacks \"%s\"", (f)->msg ? (f)->msg : "(none)", \
               (substr));                                                   \
  } while (0)

/* ------------------------------------------------------------- tests */

/* await registers, wake queues, the continuation gets the operation: the
 * root waits twice and returns the sum. Waking a queued coroutine again
 * changes nothing. */
static void test_await_wake(void **state)
{
  struct fixture *f = *state;
  start(f, "local a = t_wait('a'); local b = t_wait('b'); return a + b", -1);
  assert_int_equal(f->drained, 0); /* the first resume is queued, never done at once */
  run(f);
  assert_int_equal(f->nops, 1);
  assert_int_equal(f->done_calls, 0);
  struct pc_coro *co = f->ops[0]->co;
  complete(f, 0, 40);
  pc_coro_wake(co); /* already queued: no second resume */
  run(f);
  assert_int_equal(f->resumed_k, 1);
  assert_int_equal(f->nops, 1);
  complete(f, 0, 2);
  run(f);
  assert_int_equal(f->resumed_k, 2);
  assert_int_equal(f->cancelled, 0);
  assert_int_equal(f->done_calls, 1);
  assert_int_equal(f->fail, PC_FAIL_NONE);
  assert_string_equal(f->value, "42");
  assert_int_equal(f->drained, 3); /* the first resume and two wakes */
}

/* Cancelling a job cancels the pending operation once, runs the
 * to-be-closed variables, and never reports. */
static void test_cancel_pending(void **state)
{
  struct fixture *f = *state;
  struct pc_coro_job *j = start(f,
      "closed = false\n"
      "local x <close> = setmetatable({}, {__close = function() closed = true end})\n"
      "t_wait('a')\n"
      "return 1", -1);
  run(f);
  assert_int_equal(f->nops, 1);
  pc_coro_job_cancel(j);
  assert_int_equal(f->cancelled, 1);
  assert_int_equal(f->resumed_k, 0);
  assert_int_equal(f->done_calls, 0);
  lua_getglobal(f->L, "closed");
  assert_true(lua_toboolean(f->L, -1));
  lua_pop(f->L, 1);
  run(f);
  assert_int_equal(f->done_calls, 0);
}

/* An operation that completed but was not resumed yet is cancelled all the
 * same (cancel functions handle both), and the queued resume is dropped. */
static void test_cancel_after_wake(void **state)
{
  struct fixture *f = *state;
  struct pc_coro_job *j = start(f, "t_wait('a'); return 1", -1);
  run(f);
  struct op *op = f->ops[0];
  forget(op);
  op->completed = true;
  F->ops[F->nops++] = op; /* still the operation's owner: cancel frees it */
  pc_coro_wake(op->co);
  assert_int_equal(f->nq, 1);
  pc_coro_job_cancel(j);
  assert_int_equal(f->nq, 0);
  assert_int_equal(f->cancelled, 1);
  assert_int_equal(f->resumed_k, 0);
  run(f);
  assert_int_equal(f->done_calls, 0);
}

/* Children of a gather close before their parent's own operation is
 * cancelled, newest first; tasks before the root. */
static void test_close_order(void **state)
{
  struct fixture *f = *state;
  struct pc_coro_job *j = start(f,
      "pacer.spawn(function() t_wait('s') end)\n"
      "pacer.gather(function() t_wait('a') end, function() t_wait('b') end)\n", -1);
  run(f);
  assert_int_equal(f->nops, 3);
  pc_coro_job_cancel(j);
  /* the spawned task, then the root's children (newest first); the root
   * itself waits in next_done, not in t_wait */
  assert_string_equal(f->order, "sba");
  assert_int_equal(f->cancelled, 3);
}

/* pacer.gather returns results in argument order whatever order the
 * children end in. */
static void test_gather_order(void **state)
{
  struct fixture *f = *state;
  start(f,
      "local r = pacer.gather({function() return t_wait('a') end,\n"
      "                       function() return t_wait('b') end,\n"
      "                       function() return t_wait('c') end})\n"
      "return r[1] * 100 + r[2] * 10 + r[3]", -1);
  run(f);
  assert_int_equal(f->nops, 3);
  complete(f, 2, 3); /* c */
  run(f);
  complete(f, 1, 2); /* b */
  complete(f, 0, 1); /* a */
  run(f);
  assert_int_equal(f->done_calls, 1);
  assert_string_equal(f->value, "123");
  assert_int_equal(f->cancelled, 0);
}

/* The first error of a gather cancels the running siblings and is raised
 * as it was raised. */
static void test_gather_fail_fast(void **state)
{
  struct fixture *f = *state;
  start(f,
      "pacer.gather(function() t_wait('a') end,\n"
      "             function() t_wait('b'); error({code = 7}) end,\n"
      "             function() t_wait('c') end)", -1);
  run(f);
  assert_int_equal(f->nops, 3);
  complete(f, 1, 0);
  run(f);
  assert_int_equal(f->cancelled, 2);
  assert_int_equal(f->done_calls, 1);
  assert_int_equal(f->fail, PC_FAIL_ERROR);
  ASSERT_MSG(f, "(error object is a table value)");
}

/* Tasks: :wait() gives what the task returned; a cancelled task's waiter
 * gets an error; a task still running at the end is cancelled with a
 * warning. */
static void test_tasks(void **state)
{
  struct fixture *f = *state;
  start(f,
      "local t1 = pacer.spawn(function() return t_wait('1') + 1 end)\n"
      "local t2 = pacer.spawn(function() t_wait('2') end)\n"
      "pacer.spawn(function() t_wait('3') end)\n"
      "local v = t1:wait()\n"
      "t2:cancel()\n"
      "local ok, e = pcall(t2.wait, t2)\n"
      "return tostring(v) .. ' ' .. t2:status() .. ' ' .. tostring(ok) .. ' ' .. e", -1);
  run(f);
  assert_int_equal(f->nops, 3);
  complete(f, 0, 41);
  run(f);
  assert_int_equal(f->done_calls, 1);
  assert_int_equal(f->cancelled, 2); /* t2 by its cancel, task 3 at the end */
  assert_string_equal(f->value, "42 cancelled false task:wait: the task was cancelled");
}

/* Errors of every type end the job with a message, never a crash. */
static void test_errors(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *code, *want;
  } cases[] = {
      {"error('plain')", "plain"},
      {"error(42)", "42"},
      {"error(nil)", "(error object is nil)"},
      {"error(setmetatable({}, {__tostring = function() return 'described' end}))",
       "described"},
      {"error(setmetatable({}, {__tostring = function() error('again') end}))",
       "__tostring failed"},
      {"error(setmetatable({}, {__tostring = function() return {} end}))",
       "whose __tostring returned a table"},
      {"error('a\\0b')", "a\\0b"},
      {"t_wait('x'); error('after a wait')", "after a wait"},
      {"local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1000) .. i end",
       "Lua memory limit of 16 MiB exceeded"},
      {"coroutine.yield()", "yielded without waiting for anything"},
  };
  pc_lua_set_memory_limit(f->h, (size_t)16 << 20);
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    f->done_calls = 0;
    start(f, cases[i].code, -1);
    run(f);
    if (f->nops)
      complete(f, 0, 0);
    run(f);
    assert_int_equal(f->done_calls, 1);
    assert_int_equal(f->fail, PC_FAIL_ERROR);
    ASSERT_MSG(f, cases[i].want);
  }
  pc_lua_set_memory_limit(f->h, PC_LUA_MEMORY_DEFAULT);
}

/* Where a coroutine cannot wait, pc_coro_check says why. */
static void test_check(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *code, *want;
  } cases[] = {
      {"local c = coroutine.create(function() t_wait() end)\n"
       "local ok, e = coroutine.resume(c) error(e, 0)",
       "cannot wait inside a coroutine made with coroutine.create"},
      {"table.sort({3, 2, 1}, function(a, b) t_wait() return a < b end)",
       "cannot wait here"},
  };
  for (size_t i = 0; i < 2; i++) {
    f->done_calls = 0;
    start(f, cases[i].code, -1);
    run(f);
    assert_int_equal(f->done_calls, 1);
    ASSERT_MSG(f, cases[i].want);
  }
  assert_int_equal(f->nops, 0);
  /* Outside any job (the main thread, as a plugin file loading). */
  assert_int_equal(luaL_loadstring(f->L, "t_wait()"), LUA_OK);
  char *err = NULL;
  assert_int_equal(pc_lua_call(f->h, 0, 0, 1000, "too long", false, &err), -1);
  assert_non_null(strstr(err, "async calls work only while a step runs"));
  free(err);
}

/* The guard stops a coroutine that computes past its job's deadline: the
 * job ends as a timeout and the coroutine's <close> handlers still run. */
static void test_guard_stops(void **state)
{
  struct fixture *f = *state;
  start(f,
      "closed = false\n"
      "local x <close> = setmetatable({}, {__close = function() closed = true end})\n"
      "while true do end", 50);
  double t0 = pc_mono_ms();
  run(f);
  assert_true(pc_mono_ms() - t0 < 2000);
  assert_int_equal(f->done_calls, 1);
  assert_int_equal(f->fail, PC_FAIL_TIMEOUT);
  ASSERT_MSG(f, "timed out after 50ms: CPU-bound");
  lua_getglobal(f->L, "closed");
  assert_true(lua_toboolean(f->L, -1));
  lua_pop(f->L, 1);
}

static int l_now_ms(lua_State *L)
{
  lua_pushnumber(L, pc_mono_ms());
  return 1;
}

/* With a signal pending, a coroutine that computes without yielding is
 * preempted: it yields to the loop after PC_LUA_PREEMPT_MS and waits for
 * the loop's next turn, where the signal's handling can cancel it (its
 * <close> handlers run); if nothing does, it goes on where it was. */
static void test_preempt(void **state)
{
  struct fixture *f = *state;
  static const char spin[] =
      "closed = false\n"
      "local x <close> = setmetatable({}, {__close = function() closed = true end})\n"
      "local t0, n = now_ms(), 0\n"
      "while now_ms() - t0 < LIMIT do n = n + 1 end\n"
      "return 'done'";
  lua_pushnumber(f->L, 200);
  lua_setglobal(f->L, "LIMIT");
  lua_pushcfunction(f->L, l_now_ms);
  lua_setglobal(f->L, "now_ms");

  /* No signal: one resume from start to end. */
  start(f, spin, -1);
  run(f);
  assert_int_equal(f->done_calls, 1);
  assert_int_equal(f->fail, PC_FAIL_NONE);
  assert_int_equal(f->drained, 1);
  assert_string_equal(f->value, "done");

  /* A signal, and nothing cancels: preempted every PC_LUA_PREEMPT_MS, it
   * still finishes. */
  pc_signal_note();
  f->drained = 0;
  start(f, spin, -1);
  run(f);
  assert_int_equal(f->done_calls, 2);
  assert_string_equal(f->value, "done");
  assert_true(f->drained >= 3);

  /* A signal, and the job is cancelled while it waits for its turn. */
  lua_pushnumber(f->L, 30000);
  lua_setglobal(f->L, "LIMIT");
  f->drained = 0;
  struct pc_coro_job *j = start(f, spin, -1);
  double t0 = pc_mono_ms();
  while (f->drained == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(pc_mono_ms() - t0 < 2000);
  assert_int_equal(f->done_calls, 2);
  pc_coro_job_cancel(j);
  lua_getglobal(f->L, "closed");
  assert_true(lua_toboolean(f->L, -1));
  lua_pop(f->L, 1);
  run(f);
  assert_int_equal(f->done_calls, 2);
}

/* A semaphore serves its waiters in order; a permit still held when the
 * job ends is released. */
static void test_semaphore(void **state)
{
  struct fixture *f = *state;
  start(f,
      "local s = pacer.semaphore(1)\n"
      "local order = {}\n"
      "local function w(n) local p = s:acquire() order[#order + 1] = n t_wait(n) p:release() end\n"
      "pacer.gather(function() w('a') end, function() w('b') end, function() w('c') end)\n"
      "keep = s:acquire()\n"
      "return table.concat(order) .. s:available()", -1);
  run(f);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(f->nops, 1);
    complete(f, 0, 0);
    run(f);
  }
  assert_int_equal(f->done_calls, 1);
  assert_string_equal(f->value, "abc0");
}


int main(void)
{
  struct pc_log_opts lo = {-1, false, false};
  pc_log_init(&lo);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_await_wake, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_pending, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_after_wake, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gather_fail_fast, setup, teardown),
      cmocka_unit_test_setup_teardown(test_tasks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check, setup, teardown),
      cmocka_unit_test_setup_teardown(test_guard_stops, setup, teardown),
      cmocka_unit_test_setup_teardown(test_preempt, setup, teardown),
      cmocka_unit_test_setup_teardown(test_semaphore, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
