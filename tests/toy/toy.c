/* toy.c: a toy action, `toy: N` or `toy: {count: N, tag: red|blue}` (wait
 * N milliseconds on the run's loop, then the result's `value` is
 * defaults.toy.prefix followed by N, its `count` is N and its `tag` the
 * tag), written the way any action is: one file with one ops struct and
 * its parameter table, reaching the run only through model/action.h and
 * the services below it. It exists to prove the boundary of issue 13: the
 * test that uses it (tests/test_toy_action.c) adds it to a table of
 * actions with one line, and the loader, the engine, the reports and the
 * schema run and describe it without knowing it. It has each thing an
 * action may have: a parameter table (which gives its load check with
 * positions, the run-time check of a computed value and its schema),
 * defaults.KEY of its own, a run hook with a statistics section, and
 * report fields through the attempt. */
#include "toy/toy.h"

#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <uv.h>

#include "base/util.h"
#include "script/luahost.h"
#include "script/params.h"

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

/* The parameter table: the loader checks the value against it (toy has
 * no `load` of its own), toy_start checks a computed value against it, and
 * `pacer schema` writes definitions.toy from it. */
static const char *const toy_tags[] = {"red", "blue", NULL};
static const struct pc_param toy_keys[] = {
    {.name = "count", .type = PC_PARAM_INT, .min = 1, .max = TOY_MAX, .required = true,
     .description = "How many milliseconds to wait."},
    {.name = "tag", .type = PC_PARAM_ENUM, .allowed = toy_tags, .static_only = true,
     .description = "The result's tag."},
};
static const struct pc_param toy_value = {.type = PC_PARAM_INT, .min = 1, .max = TOY_MAX,
                                          .expect = "a count from 1 to 1000"};
static const struct pc_params toy_params = {
    .description = "Wait N milliseconds, then say so.", .value = &toy_value,
    .keys = toy_keys, .nkeys = PC_ARRAY_SIZE(toy_keys)};

/* defaults.toy: {prefix: TEXT}, static (toy reads the template's text):
 * the loader checks it against this table, `pacer schema` writes
 * definitions.toy_defaults from it. */
static const struct pc_param toy_defaults_keys[] = {
    {.name = "prefix", .type = PC_PARAM_NAME, .static_only = true, .expect = "a plain text",
     .description = "Text put before the count in the result's value."},
};
static const struct pc_params toy_defaults_params = {
    .description = "The toy's defaults.", .keys = toy_defaults_keys,
    .nkeys = PC_ARRAY_SIZE(toy_defaults_keys)};

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
  /* The same table as at load, for a computed value. */
  char *m = pc_params_check(L, -1, "toy", &toy_params);
  if (m) {
    lua_pop(L, 1);
    pc_attempt_done(a, PC_FAIL_ERROR, m);
    free(m);
    return;
  }
  if (lua_istable(L, -1)) { /* the map form */
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* value, result */
    lua_getfield(L, -2, "tag");                        /* value, result, tag */
    lua_setfield(L, -2, "tag");                        /* value, result */
    lua_pop(L, 1);                                     /* value */
    lua_getfield(L, -1, "count");                      /* value, count */
    lua_remove(L, -2);                                 /* count */
  }
  lua_Integer n = lua_tointeger(L, -1);
  lua_pop(L, 1);
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
    .params = &toy_params,
    .defaults_key = "toy",
    .defaults_params = &toy_defaults_params,
    .start = toy_start,
    .cancel = toy_cancel,
    .hooks = &toy_hooks,
    .default_on = PC_ON_ERROR | PC_ON_TIMEOUT,
    .fills_result = true,
    .params_only = true,
};
