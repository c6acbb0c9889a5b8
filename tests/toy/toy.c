/* toy.c: a toy action, `toy: N` (wait N milliseconds on the run's loop,
 * then the result's `value` is defaults.toy.prefix followed by N and its
 * `count` is N), written the way any action is: one file with one ops
 * struct, reaching the run only through model/action.h and the services
 * below it. It exists to prove the boundary of issue 13: the test that
 * uses it (tests/test_toy_action.c) adds it to a table of actions with one
 * line, and the loader, the engine and the reports run it without knowing
 * it. It has each thing an action may have: a load check with positions,
 * a run-time check of a computed value, defaults.KEY of its own, a run
 * hook with a statistics section, and report fields through the attempt. */
#include "toy/toy.h"

#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <uv.h>

#include "base/util.h"
#include "script/luahost.h"

#define TOY_MAX 1000

/* ------------------------------------------------------------ run hook */

/* The run-wide state: how many toys started, for the statistics. */
struct toy_run {
  uint64_t started;
};

int pc_toy_cleanups;

static void *toy_run_create(struct pc_run *run)
{
  (void)run;
  return pc_xcalloc(1, sizeof(struct toy_run));
}

static const struct pc_run_hooks toy_hooks;

static void toy_run_cleanup(struct pc_run *run, void *state)
{
  pc_toy_cleanups++;
  pc_run_state_release(run, &toy_hooks);
  free(state);
}

static void toy_run_stats(void *state, struct pc_stats_section *s)
{
  const struct toy_run *tr = state;
  s->name = "toy";
  s->ncounters = 1;
  s->counters = pc_xcalloc(1, sizeof *s->counters);
  s->counters[0] = (struct pc_stat){"started", tr ? tr->started : 0};
}

static const struct pc_run_hooks toy_hooks = {
    .name = "the toys", .create = toy_run_create, .cleanup = toy_run_cleanup,
    .stats = toy_run_stats};

/* ---------------------------------------------------------------- load */

static int toy_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  st->params = pc_load_tmpl(c, v);
  if (!st->params)
    return -1;
  long long n = 0;
  if (!st->params->has_expr &&
      (st->params->kind != PC_T_INT || (n = st->params->u.i) < 1 || n > TOY_MAX)) {
    pc_load_error(c, v, "toy: expected a count from 1 to %d, got %s", TOY_MAX,
                  pc_node_describe(v).s);
    return -1;
  }
  return 0;
}

/* defaults.toy: {prefix: TEXT}, static. */
static struct pc_tmpl *toy_load_defaults(struct pc_load_ctx *c, const struct pc_node *v)
{
  static const char *const keys[] = {"prefix"};
  if (pc_load_check_keys(c, v, keys, PC_ARRAY_SIZE(keys), "defaults.toy") != 0)
    return NULL;
  struct pc_tmpl *t = pc_load_tmpl(c, v);
  const struct pc_tmpl *p = t ? pc_tmpl_get(t, "prefix") : NULL;
  if (t && p && p->kind != PC_T_STR) {
    pc_load_error(c, pc_node_get(v, "prefix"), "defaults.toy.prefix: expected a plain text");
    pc_tmpl_free(t);
    return NULL;
  }
  return t;
}

/* ----------------------------------------------------------------- run */

struct toy {
  uv_timer_t timer;
  struct pc_attempt *a; /* NULL once cancelled: the close callback frees */
  long long n;
};

static void on_toy_closed(uv_handle_t *h)
{
  free(h->data);
}

static void on_toy_timer(uv_timer_t *timer)
{
  struct toy *t = timer->data;
  struct pc_attempt *a = t->a;
  a->data = NULL;
  const struct pc_tmpl *d = pc_workflow_defaults(pc_run_workflow_def(a->run), "toy");
  const struct pc_tmpl *p = d ? pc_tmpl_get(d, "prefix") : NULL;
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  lua_pushfstring(L, "%s%I", p ? p->u.str.s : "", (lua_Integer)t->n);
  lua_setfield(L, -2, "value");
  lua_pushinteger(L, t->n);
  lua_setfield(L, -2, "count");
  lua_pop(L, 1);
  uv_close((uv_handle_t *)&t->timer, on_toy_closed);
  pc_attempt_done(a, PC_FAIL_NONE, NULL);
}

static void toy_start(struct pc_attempt *a)
{
  struct toy_run *tr = pc_run_state(a->run, &toy_hooks, true);
  tr->started++;
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* value */
  int isnum = 0;
  lua_Integer n = lua_tointegerx(L, -1, &isnum);
  lua_pop(L, 1);
  if (!isnum || n < 1 || n > TOY_MAX) { /* the same rule as at load, for a computed value */
    char *m = pc_asprintf("toy: expected a count from 1 to %d", TOY_MAX);
    pc_attempt_done(a, PC_FAIL_ERROR, m);
    free(m);
    return;
  }
  char url[32];
  snprintf(url, sizeof url, "toy://%lld", (long long)n);
  pc_attempt_report(a, "WAIT", url);
  struct toy *t = pc_xcalloc(1, sizeof *t);
  t->a = a;
  t->n = n;
  uv_timer_init(pc_run_loop(a->run), &t->timer);
  t->timer.data = t;
  uv_timer_start(&t->timer, on_toy_timer, (uint64_t)n, 0);
  a->data = t;
}

static void toy_cancel(struct pc_attempt *a)
{
  struct toy *t = a->data;
  if (!t)
    return;
  a->data = NULL;
  uv_close((uv_handle_t *)&t->timer, on_toy_closed);
}

const struct pc_action_ops pc_toy_ops = {
    .key = "toy",
    .load = toy_load,
    .defaults_key = "toy",
    .load_defaults = toy_load_defaults,
    .start = toy_start,
    .cancel = toy_cancel,
    .hooks = &toy_hooks,
    .default_on = PC_ON_ERROR | PC_ON_TIMEOUT,
    .fills_result = true,
    .params_only = true,
};
