/* basic.c: the built-in actions that need no service of their own:
 * `sleep`, whose sleeps share buckets of timers (base/sleep.h) kept as a
 * run hook, `log`, which writes its text as one line on stdout, and
 * `assert`, whose expressions the loader reads (pc_load_expr_list) and
 * which fails as an expectation when one is false. */
#include "actions/basic.h"


#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "base/log.h"
#include "base/sleep.h"
#include "script/luahost.h"
#include "script/params.h"
#include "base/util.h"

/* ------------------------------------------------------------------ sleep */

/* The run's sleeps share buckets of timers (base/sleep.h); each attempt
 * waits on the sleep embedded in it. */
static void on_slept(struct pc_sleep *sl)
{
  struct pc_attempt *a = PC_CONTAINER_OF(sl, struct pc_attempt, sleep);
  a->data = NULL;
  pc_attempt_done(a, PC_FAIL_NONE, NULL); /* only queues: no attempt changes under us */
}

static const struct pc_run_hooks sleeps_hooks;

static void *sleeps_create(struct pc_run *run)
{
  struct pc_sleeps *ss = pc_xmalloc(sizeof *ss);
  pc_sleeps_init(ss, on_slept);
  return ss;
}

static void sleeps_cleanup(struct pc_run *run, void *state)
{
  struct pc_sleeps *ss = state;
  /* Every sleep has ended or been cancelled by now, which closed its bucket. */
  assert(pc_sleeps_idle(ss));
  pc_run_state_release(run, &sleeps_hooks);
  free(ss);
}

/* The run's buckets of timers, made by the first sleep. */
static const struct pc_run_hooks sleeps_hooks = {
    .name = "the sleeps' timers", .create = sleeps_create, .cleanup = sleeps_cleanup};

static void sleep_add(struct pc_attempt *a, double ms)
{
  a->data = &a->sleep;
  pc_sleep_start(pc_run_state(a->run, &sleeps_hooks, true), pc_run_loop(a->run), &a->sleep, ms);
}

/* `sleep: 250ms`: a duration, or a ${{ }} that gives one (checked again
 * when it runs). The loader checks the value against the table. */
static const struct pc_param sleep_value = {
    .type = PC_PARAM_DURATION, .expect = "a duration like \"250ms\" or \"2s\"",
    .got = PC_GOT_KIND};
static const struct pc_params sleep_params = {.description = "Wait this long.",
                                              .value = &sleep_value};

static void sleep_start(struct pc_attempt *a)
{
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* value */
  /* The duration is parsed once: a value that is one (a number, or a
   * string without a NUL byte that parses) is what the table accepts, so
   * the table's check, which parses it too, runs only to word the error
   * of one that is not. Checking first doubled the cost of a sleep
   * (docs/BENCHMARKS.md, "The redesign (issue 13)": w4, +1 120
   * instructions a sleep, ~810 of them the check and the second parse). */
  double ms = 0;
  bool ok;
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    ok = strlen(s) == len && pc_parse_duration(s, &ms) == 0; /* a NUL byte: not one */
  } else {
    ok = pc_lua_duration(L, -1, &ms) == 0;
  }
  if (!ok) {
    char *m = pc_params_check(L, -1, "sleep", &sleep_params);
    lua_pop(L, 1);
    pc_attempt_done(a, PC_FAIL_ERROR, m ? m : "sleep: invalid duration");
    free(m);
    return;
  }
  lua_pop(L, 1);
  sleep_add(a, ms);
}

static void sleep_cancel(struct pc_attempt *a)
{
  if (!a->data)
    return; /* over, or failed before it started */
  a->data = NULL;
  pc_sleep_stop(&a->sleep);
}

/* -------------------------------------------------------------------- log */

/* `log: TEXT`: any value, printed (a table as JSON). */
static const struct pc_param log_value = {.type = PC_PARAM_ANY};
static const struct pc_params log_params = {
    .description = "Print a line to stdout (tables print as JSON).", .value = &log_value};

static void log_start(struct pc_attempt *a)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* value */
  size_t len;
  char *text = pc_lua_to_text(h, -1, &len);
  lua_pop(L, 1);
  int err = pc_out_line(text, len);
  free(text);
  if (err) {
    char *m = pc_asprintf("cannot write to stdout: %s", strerror(-err));
    pc_attempt_done(a, PC_FAIL_ERROR, m);
    free(m);
    return;
  }
  pc_attempt_done(a, PC_FAIL_NONE, NULL);
}

static void nothing_to_cancel(struct pc_attempt *a)
{
  (void)a;
}

/* ----------------------------------------------------------------- assert */

/* One expression or a list of them, each bare or wrapped in ${{ }}: the
 * table describes the value; the expression reader (pc_load_expr_list,
 * shared with expect.that) checks and compiles it. */
static const struct pc_param assert_value = {.type = PC_PARAM_EXPRS};
static const struct pc_params assert_params = {
    .description = "Fail (exit 1) unless every expression is true.", .value = &assert_value};

static int assert_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  size_t before = c->d ? pc_diag_count(c->d) : 0;
  st->asserts = pc_load_expr_list(c, "assert", v, false, &st->nasserts);
  return c->d && pc_diag_count(c->d) > before ? -1 : 0;
}

static void assert_start(struct pc_attempt *a)
{
  struct pc_lua *h = pc_run_lua(a->run);
  const struct pc_step *st = a->step;
  for (size_t i = 0; i < st->nasserts; i++) {
    const struct pc_expr *e = st->asserts[i];
    bool ok = false;
    char *err = NULL;
    if (pc_lua_eval_bool(h, e, a->scope_ref, &ok, &err) != 0) {
      char *m = pc_lua_explained(h, err, e, a->scope_ref);
      pc_attempt_done(a, PC_FAIL_ERROR, m);
      free(m);
      free(err);
      return;
    }
    if (!ok) {
      char *f = pc_asprintf("assertion failed: %s (%s:%d:%d)", e->src, e->file, e->line, e->col);
      char *m = pc_lua_explained(h, f, e, a->scope_ref);
      pc_attempt_done(a, PC_FAIL_EXPECT, m);
      free(m);
      free(f);
      return;
    }
  }
  pc_attempt_done(a, PC_FAIL_NONE, NULL);
}

/* -------------------------------------------------------------- the ops */

#define PC_ON_DEFAULT_LOCAL (PC_ON_ERROR | PC_ON_TIMEOUT)

const struct pc_action_ops pc_sleep_ops = {
    .key = "sleep", .params = &sleep_params, .start = sleep_start,
    .cancel = sleep_cancel, .hooks = &sleeps_hooks, .default_on = PC_ON_DEFAULT_LOCAL,
    .params_only = true};
const struct pc_action_ops pc_log_ops = {
    .key = "log", .params = &log_params, .start = log_start,
    .cancel = nothing_to_cancel, .default_on = PC_ON_DEFAULT_LOCAL, .params_only = true};
const struct pc_action_ops pc_assert_ops = {
    .key = "assert", .load = assert_load, .params = &assert_params, .start = assert_start,
    .cancel = nothing_to_cancel, .default_on = PC_ON_DEFAULT_LOCAL};
