/* action.c: the `http` action (pc_http_ops): an attempt starts a request
 * on the run's session (created on first use, closed by run_cleanup) from
 * the step's options merged over defaults.http, and fills the step's
 * result table when it completes. */
#include "http/internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "core/engine.h"
#include "http/curlshim.h"

/* ============================================================ the action */

struct pc_http_session *pc_http_session_of(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_HTTP);
  if (!*slot) {
    struct pc_http_limits lim = {PC_HTTP_MAX_CONNECTIONS_DEFAULT, PC_HTTP_MAX_PER_HOST_DEFAULT};
    const struct pc_tmpl *d = pc_run_workflow_def(run)->http_defaults;
    const struct pc_tmpl *v;
    if ((v = pc_tmpl_get(d, "max_connections")) && v->kind == PC_T_INT && v->u.i >= 0)
      lim.max_connections = (long)v->u.i;
    if ((v = pc_tmpl_get(d, "max_connections_per_host")) && v->kind == PC_T_INT && v->u.i >= 0)
      lim.max_per_host = (long)v->u.i;
    *slot = pc_http_session_new(pc_run_loop(run), &lim);
  }
  return *slot;
}

static void on_http_done(void *data, const struct pc_http_result *r)
{
  struct pc_attempt *a = data;
  a->data = NULL;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  char *err = NULL;
  int rc = pc_http_result_fill(r, h, -1, &err);
  lua_pop(L, 1);
  a->status = r->status;
  a->retry_after_ms = r->retry_after_ms;
  a->nothing_sent = r->nothing_sent;
  if (rc != 0) {
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  pc_attempt_done(a, r->fail, r->error);
}

/* pc_step_label(step), formatted once per step rather than per request. */
static const char *step_label(struct pc_http_session *s, const struct pc_step *step)
{
  for (size_t i = 0; i < LABELS_MAX; i++)
    if (s->labels[i].step == step && s->labels[i].label)
      return s->labels[i].label;
  size_t i = s->nextlabel++ % LABELS_MAX;
  free(s->labels[i].label);
  s->labels[i].step = step;
  s->labels[i].label = pc_step_label(step);
  return s->labels[i].label;
}

static void http_start(struct pc_attempt *a)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  char *err = NULL;
  struct pc_http_session *s = pc_http_session_of(a->run);
  if (!s) {
    const char *why = pc_curl_load_error();
    pc_attempt_done(a, PC_FAIL_ERROR, why ? why : "http: libcurl could not be initialised");
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
  if (pc_http_push_merged(a->run, -1, a->scope_ref, &err) != 0) {
    lua_pop(L, 1);
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  /* params, merged */
  const char *label = step_label(s, a->step);
  struct pc_http_start_opts o = {
      .label = label,
      .save_ok = a->step->expect.status,
      .nsave_ok = a->step->expect.nstatus,
  };
  struct pc_http_req *r = NULL;
  int rc = pc_http_start(s, h, -1, &o, on_http_done, a, &r, &err);
  lua_pop(L, 2);
  if (rc != 0) {
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  a->data = r;
  a->non_idempotent = pc_http_req_non_idempotent(r);
}

static void http_cancel(struct pc_attempt *a)
{
  struct pc_http_req *r = a->data;
  if (!r)
    return;
  a->data = NULL;
  /* Keep what was asked for: reports show the URL of a cancelled step. */
  if (a->result_ref != LUA_NOREF) {
    lua_State *L = pc_lua_state(pc_run_lua(a->run));
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
    lua_pushstring(L, r->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r->url);
    lua_setfield(L, -2, "url");
    lua_pop(L, 1);
  }
  a->nothing_sent = pc_http_req_nothing_sent(r); /* a step timeout while connecting */
  pc_http_cancel(r);
}

/* "METHOD URL" of the attempt, from the result table (http_cancel keeps
 * them there), for the engine's own messages: a step timeout. */
static void http_subject(struct pc_attempt *a, struct pc_buf *out)
{
  if (a->result_ref == LUA_NOREF)
    return;
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  lua_getfield(L, -1, "method");                    /* result, method */
  lua_getfield(L, -2, "url");                       /* result, method, url */
  if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
    pc_buf_printf(out, "%s %s", lua_tostring(L, -2), lua_tostring(L, -1));
  lua_pop(L, 3);
}

static void http_describe(struct pc_attempt *a, struct pc_buf *out)
{
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  if (a->result_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  int t = lua_gettop(L);
  lua_getfield(L, t, "method"); /* result, method */
  lua_getfield(L, t, "url");    /* result, method, url */
  if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
    pc_buf_printf(out, "; %s %s -> %d", lua_tostring(L, -2), lua_tostring(L, -1), a->status);
    lua_pushliteral(L, "body"); /* ..., "body" */
    if (lua_rawget(L, t) == LUA_TSTRING) {
      size_t len;
      const char *b = lua_tolstring(L, -1, &len);
      if (len) {
        pc_buf_puts(out, ": ");
        pc_http__append_excerpt(out, b, len, EXCERPT_MAX);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 3);
}

static void http_run_cleanup(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_HTTP);
  struct pc_http_session *s = *slot;
  *slot = NULL;
  pc_http_session_close(s);
}

const struct pc_action_ops pc_http_ops = {
    .action = PC_ACT_HTTP,
    .key = "http",
    .load = pc_http__load,
    .start = http_start,
    .cancel = http_cancel,
    .describe = http_describe,
    .subject = http_subject,
    .run_cleanup = http_run_cleanup,
    .default_on = PC_ON_NETWORK | PC_ON_TIMEOUT,
    .has_status = true,
    .fills_result = true,
};

void pc_http_stats_get(struct pc_run *run, struct pc_http_stats *out)
{
  pc_http_session_stats(*pc_run_action_slot(run, PC_ACT_HTTP), out);
}
