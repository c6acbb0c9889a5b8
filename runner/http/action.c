/* action.c: the `http` action (pc_http_ops) and the run's session.
 *
 * An attempt starts one request on the run's session from the step's
 * options (evaluated by the engine into a->params_ref) merged over
 * defaults.http, through spec.c, with the step's label and its
 * expect.status as save_to's rule; on completion it fills the step's
 * result table (result.c) and hands the outcome to the engine, which
 * checks the expectations and decides on retries. The attempt owns its
 * request (a->data) until the request reports or the engine cancels it.
 *
 * The run's HTTP state (struct http_run, in the action's run slot) is the
 * session, made on the first request with the connection caps of
 * defaults.http, and the step labels of recent requests; run_cleanup closes
 * the session and frees it. */
#include "http/action.h"

#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "model/action.h"
#include "http/check.h"
#include "http/curlshim.h"
#include "http/request.h"
#include "http/result.h"
#include "http/spec.h"
#include "script/luahost.h"

#define EXCERPT_MAX 400 /* body bytes shown in expectation failures */
#define LABELS_MAX 8    /* step labels kept by a run */

struct http_run {
  struct pc_http_session *session; /* NULL until the first request (or if libcurl fails) */
  /* pc_step_label of the steps that made requests lately (the steps are
   * the run's, and live as long as it) */
  struct {
    const struct pc_step *step; /* borrowed */
    char *label;
  } labels[LABELS_MAX];
  size_t nextlabel;
};

static struct http_run *run_state(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_HTTP);
  if (!*slot)
    *slot = pc_xcalloc(1, sizeof(struct http_run));
  return *slot;
}

struct pc_http_session *pc_http_session_of(struct pc_run *run)
{
  struct http_run *hr = run_state(run);
  if (!hr->session) {
    struct pc_http_limits lim;
    pc_http_limits_of(pc_run_workflow_def(run)->http_defaults, &lim);
    hr->session = pc_http_session_new(pc_run_loop(run), &lim);
  }
  return hr->session;
}

/* Appends "\n  reproduce: curl ..." for the attempt's request, from its
 * evaluated options (held until the engine has the attempt's outcome). */
static void append_curl(struct pc_attempt *a, struct pc_buf *out)
{
  if (a->params_ref == LUA_NOREF)
    return;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  struct pc_buf c;
  pc_buf_init(&c, (size_t)64 << 10);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
  pc_http_spec_curl(h, -1, pc_run_workflow_def(a->run)->http_defaults, a->scope_ref, &c);
  lua_pop(L, 1);
  if (c.len)
    pc_buf_printf(out, "\n  reproduce: %s", c.data);
  pc_buf_free(&c);
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
  if (r->fail != PC_FAIL_NONE && r->error) {
    /* No response to show (refused, DNS, TLS, cut short): the command
     * line that tries the same request by hand. */
    struct pc_buf b;
    pc_buf_init(&b, (size_t)64 << 10);
    pc_buf_puts(&b, r->error);
    append_curl(a, &b);
    pc_attempt_done(a, r->fail, b.data);
    pc_buf_free(&b);
    return;
  }
  pc_attempt_done(a, r->fail, r->error);
}

/* pc_step_label(step), formatted once per step rather than per request. */
static const char *step_label(struct http_run *hr, const struct pc_step *step)
{
  for (size_t i = 0; i < LABELS_MAX; i++)
    if (hr->labels[i].step == step && hr->labels[i].label)
      return hr->labels[i].label;
  size_t i = hr->nextlabel++ % LABELS_MAX;
  free(hr->labels[i].label);
  hr->labels[i].step = step;
  hr->labels[i].label = pc_step_label(step);
  return hr->labels[i].label;
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
  struct pc_http_spec_opts o = {
      .defaults = pc_run_workflow_def(a->run)->http_defaults,
      .scope_ref = a->scope_ref,
      .label = step_label(run_state(a->run), a->step),
      .save_ok = a->step->expect.status,
      .nsave_ok = a->step->expect.nstatus,
  };
  struct pc_http_request *r = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
  int rc = pc_http_spec_start(h, -1, &o, s, on_http_done, a, &r, &err);
  lua_pop(L, 1);
  if (rc != 0) {
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  a->data = r;
  a->non_idempotent = !pc_http_method_idempotent(pc_http_request_method(r));
}

static void http_cancel(struct pc_attempt *a)
{
  struct pc_http_request *r = a->data;
  if (!r)
    return;
  a->data = NULL;
  /* Keep what was asked for: reports show the URL of a cancelled step. */
  if (a->result_ref != LUA_NOREF) {
    lua_State *L = pc_lua_state(pc_run_lua(a->run));
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
    lua_pushstring(L, pc_http_method_name(pc_http_request_method(r)));
    lua_setfield(L, -2, "method");
    lua_pushstring(L, pc_http_request_url(r));
    lua_setfield(L, -2, "url");
    lua_pop(L, 1);
  }
  a->nothing_sent = pc_http_request_nothing_sent(r); /* a step timeout while connecting */
  pc_http_request_cancel(r);
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

/* The exchange, under a failed expectation's message: the request, the
 * response (status line, headers, a body excerpt) and a curl command line
 * that sends the request again. */
static void http_describe(struct pc_attempt *a, struct pc_buf *out)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  if (a->result_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  int t = lua_gettop(L);
  lua_getfield(L, t, "method"); /* result, method */
  lua_getfield(L, t, "url");    /* result, method, url */
  if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
    pc_buf_printf(out, "\n  > %s %s", lua_tostring(L, -2), lua_tostring(L, -1));
    pc_http_result_exchange(h, t, out, EXCERPT_MAX);
  }
  lua_pop(L, 3);
  append_curl(a, out);
}

static void http_run_cleanup(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_HTTP);
  struct http_run *hr = *slot;
  *slot = NULL;
  if (!hr)
    return;
  pc_http_session_close(hr->session);
  for (size_t i = 0; i < LABELS_MAX; i++)
    free(hr->labels[i].label);
  free(hr);
}

const struct pc_action_ops pc_http_ops = {
    .action = PC_ACT_HTTP,
    .key = "http",
    .load = pc_http_load_step,
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
  struct http_run *hr = *pc_run_action_slot(run, PC_ACT_HTTP);
  pc_http_session_stats(hr ? hr->session : NULL, out);
}
