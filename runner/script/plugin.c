/* plugin.c: the `uses:` and `lua:` actions, plugin discovery, the load-time
 * checks and `pacer plugins`.
 *
 * Everything about a step's Lua is prepared when the file loads, so
 * `pacer validate` catches it: each `uses` step's plugin is found, loaded
 * (its top level runs once, in its own sandbox environment, under a CPU and
 * memory guard) and its `with` checked against the plugin's `inputs`; each
 * inline `lua:` block is compiled. The results live in a registry table
 * keyed by the step (a light userdata): the plugin entry {spec, name, path}
 * for `uses`, the compiled function for `lua:`. Running an attempt then
 * only evaluates `with`, builds `ctx` and starts the function as the root
 * of a job of the coroutine runtime (coro.h), resumed from the run's
 * deferred queue. */
#include "script/plugin.h"
#include "script/plugin_int.h"

#include <math.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "actions/flow.h"
#include "base/util.h"
#include "model/outcome.h"
#include "script/coro.h"
#include "script/pacermod.h"

/* ------------------------------------------------------------- actions */

/* Pushes steps[st] (the plugin entry or the inline function). */
static void push_step_entry(lua_State *L, const struct pc_step *st)
{
  lua_rawgetp(L, LUA_REGISTRYINDEX, &pc__plugin_steps_key); /* steps */
  if (lua_isnil(L, -1))
    return;
  lua_rawgetp(L, -1, st);                        /* steps, entry */
  lua_remove(L, -2);                             /* entry */
}

/* ------------------------------------------------------------ the job */

static void run_defer(void *run, struct pc_deferred *d, void (*cb)(struct pc_deferred *d))
{
  pc_run_defer(run, d, cb);
}

static void run_defer_cancel(void *run, struct pc_deferred *d)
{
  pc_run_defer_cancel(run, d);
}

/* The root returned: its value (on top of the stack) becomes the result's
 * `value`. */
static void on_job_returned(void *data)
{
  struct pc_attempt *a = data;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  pc_lua_note_plugin_value(h); /* it may hold functions (expr.c's view) */
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* v, result */
  pc_lua_push_prelude(h, "unwrap");                  /* v, result, unwrap */
  lua_pushvalue(L, -3);                              /* v, result, unwrap, v */
  lua_call(L, 1, 1);                                 /* v, result, value */
  lua_setfield(L, -2, "value");                      /* v, result */
  lua_pop(L, 1);                                     /* v */
}

static void on_job_done(void *data, enum pc_fail fail, const char *msg)
{
  struct pc_attempt *a = data;
  a->data = NULL;
  pc_attempt_done(a, fail, msg);
}

/* Starts the function below `nargs` arguments on the stack (popped) as
 * the attempt's job, with the step's deadline: its timeout, or the
 * workflow's if that comes first. */
static void start_job(struct pc_attempt *a, int nargs)
{
  struct pc_coro_job_opts o = {
      .sched = {.loop = pc_run_loop(a->run), .defer = run_defer,
                .defer_cancel = run_defer_cancel, .ctx = a->run},
      .deadline = INFINITY,
      .run = a->run,
      .scope_ref = a->scope_ref,
      .attempt = a,
      .returned = on_job_returned,
      .done = on_job_done,
      .data = a,
  };
  double now = pc_mono_ms();
  if (a->step->timeout_ms >= 0) {
    o.deadline = now + a->step->timeout_ms;
    o.timeout_ms = a->step->timeout_ms;
  }
  double run_deadline = pc_run_deadline_ms(a->run);
  if (run_deadline < o.deadline) {
    o.deadline = run_deadline;
    o.timeout_ms = run_deadline - pc_run_started_ms(a->run);
  }
  o.label = pc_attempt_label(a);
  a->data = pc_coro_job_start(pc_run_lua(a->run), &o, nargs);
}

/* The attempt fails before its code starts: the stack back to `top`, and
 * `prefix: what` as the message. */
static void start_failed(struct pc_attempt *a, lua_State *L, int top, const char *prefix,
                         const char *what)
{
  lua_settop(L, top);
  char *m = pc_asprintf("%s: %s", prefix, what ? what : "?");
  pc_attempt_done(a, PC_FAIL_ERROR, m);
  free(m);
}

static void flow_start(struct pc_attempt *a);

static void uses_start(struct pc_attempt *a)
{
  if (a->step->sub) {
    flow_start(a);
    return;
  }
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  const struct pc_step *st = a->step;
  int top = lua_gettop(L);
  push_step_entry(L, st);                 /* entry */
  if (!lua_istable(L, -1)) {
    start_failed(a, L, top, "uses", "the plugin was not loaded (internal error)");
    return;
  }
  int entry = lua_gettop(L);
  pc_pacer_push(h, "prepare_run");        /* entry, prepare_run */
  lua_getfield(L, entry, "spec");         /* entry, prepare_run, spec */
  if (st->with) {
    char *werr = NULL;
    if (pc_lua_eval_tmpl(h, st->with, a->scope_ref, &werr) != 0) {
      start_failed(a, L, top, "with", werr);
      free(werr);
      return;
    }
  } else {
    lua_newtable(L);
  }                                       /* entry, prepare_run, spec, with */
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->scope_ref); /* ..., scope */
  lua_createtable(L, 0, 3);               /* ..., scope, step */
  if (st->id) {
    lua_pushstring(L, st->id);
    lua_setfield(L, -2, "id");
  }
  if (st->name) {
    lua_pushstring(L, st->name);
    lua_setfield(L, -2, "name");
  }
  lua_pushinteger(L, a->number);
  lua_setfield(L, -2, "attempt");
  lua_getfield(L, entry, "name");
  lua_getfield(L, entry, "path");         /* entry, prepare_run, spec, with, scope, step, name, path */
  char *err = NULL;                       /* plain data: see PC_LUA_HOST_CODE */
  if (pc_pacer_call(h, 6, 3, PC_LUA_HOST_CODE, NULL, &err) != 0 ||
      lua_isnil(L, -3)) {                 /* entry, run, with, ctx (or nil, msg, nil) */
    char *prefix = pc_asprintf("plugin \"%s\"", st->uses);
    char *msg = pc_xstrdup(err ? err : lua_tostring(L, -2) ? lua_tostring(L, -2) : "?");
    start_failed(a, L, top, prefix, msg);
    free(msg);
    free(prefix);
    free(err);
    return;
  }
  lua_remove(L, entry);                   /* run, with, ctx */
  start_job(a, 2);
  lua_settop(L, top);
}

static void inline_start(struct pc_attempt *a)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  int top = lua_gettop(L);
  push_step_entry(L, a->step);            /* fn */
  if (!lua_isfunction(L, -1)) {
    start_failed(a, L, top, "lua", "the code was not compiled (internal error)");
    return;
  }
  pc_pacer_push(h, "inline_args");        /* fn, inline_args */
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->scope_ref);
  char *err = NULL;               /* fn, vars, env, secrets, steps, item, index, pacer, inputs */
  if (pc_pacer_call(h, 1, 8, PC_LUA_HOST_CODE, NULL, &err) != 0) {
    start_failed(a, L, top, "lua", err);
    free(err);
    return;
  }
  start_job(a, 8);
  lua_settop(L, top);
}

static void lua_cancel(struct pc_attempt *a)
{
  pc_coro_job_cancel(a->data);
  a->data = NULL;
}

/* The parameter tables: the loader checks the value against them (the
 * plugin's name or the code), `pacer schema` writes definitions.uses and
 * .lua from them; the rest (finding the plugin, `with`, compiling the
 * code) is the load check below. */
static const struct pc_param lua_value = {
    .type = PC_PARAM_CODE, .expect = "Lua code (a string, usually a `|` block)",
    .got = PC_GOT_BARE_KIND};
static const struct pc_params lua_params = {
    .description = "Inline Lua run as a coroutine; what it returns is the step's `value`.",
    .value = &lua_value};
static const struct pc_param uses_value = {
    .type = PC_PARAM_NAME, .expect = "a plugin name or a workflow file", .got = PC_GOT_VALUE,
    .nul_kind = "a file name", .noun = "the plugin name"};
static const struct pc_params uses_params = {
    .description = "Run the Lua plugin NAME (plugins/NAME.lua beside the workflow, --plugins "
                   "dirs, PACER_PLUGIN_PATH, the installed plugins), or a workflow file as a "
                   "step (./PATH.yml relative to this file, or NAME.yml on the plugin path).",
    .value = &uses_value};

static void uses_cancel(struct pc_attempt *a)
{
  if (a->step->sub)
    pc_flow_cancel(a);
  else
    lua_cancel(a);
}

/* A workflow file run as a step: its spec (its inputs) to actions/flow.c,
 * which checks and completes `with` and starts its steps. */
static void flow_start(struct pc_attempt *a)
{
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  int top = lua_gettop(L);
  push_step_entry(L, a->step);            /* entry */
  if (!lua_istable(L, -1)) {
    start_failed(a, L, top, "uses", "the workflow file was not loaded (internal error)");
    return;
  }
  lua_getfield(L, -1, "spec");            /* entry, spec */
  lua_remove(L, -2);                      /* spec */
  pc_flow_start(a);                       /* (popped) */
  lua_settop(L, top);
}

/* `lua: CODE` keeps the code as a plain string template (no ${{ }}: the
 * code reads vars, steps, ... directly), positioned at its first line. */
static int inline_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  if (pc_load_params(c, "lua", &lua_params, v, NULL) != 0)
    return -1;
  struct pc_tmpl *t = pc_xcalloc(1, sizeof *t);
  t->kind = PC_T_STR;
  t->u.str.s = pc_xstrndup(v->str, v->len);
  t->u.str.len = v->len;
  /* A block scalar (| or >) starts on the line after its indicator. */
  t->line = v->body_line;
  t->col = v->body_col;
  st->params = t;
  return 0;
}

/* `uses: NAME`: the plugin's name (found and loaded by the load check),
 * and the step's `with`, the plugin's inputs (checked against them there). */
static int uses_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  if (pc_load_params(c, "uses", &uses_params, v, NULL) != 0)
    return -1;
  st->uses = pc_xstrndup(v->str, v->len);
  const struct pc_node *with = pc_node_get(st->node, "with");
  if (with != NULL && with->kind != PC_NODE_MAP) {
    pc_load_error(c, with, "with: expected a map of inputs, got %s", pc_node_describe(with).s);
    return -1;
  }
  if (with != NULL && !(st->with = pc_load_tmpl(c, with)))
    return -1;
  return 0;
}

static const char *const uses_step_keys[] = {"with", NULL};

/* Both share one load check (pc_plugins_check), which pc_load runs once;
 * their code sees `steps` whole. */
const struct pc_action_ops pc_uses_ops = {
    .key = "uses", .load = uses_load, .params = &uses_params, .step_keys = uses_step_keys,
    .start = uses_start,
    .cancel = uses_cancel, .load_check = pc_plugins_check,
    .default_on = PC_ON_ERROR | PC_ON_TIMEOUT, .fills_result = true, .reads_steps = true};
const struct pc_action_ops pc_lua_ops = {
    .key = "lua", .load = inline_load, .params = &lua_params, .start = inline_start,
    .cancel = lua_cancel,
    .load_check = pc_plugins_check, .default_on = PC_ON_ERROR | PC_ON_TIMEOUT,
    .fills_result = true, .reads_steps = true};

