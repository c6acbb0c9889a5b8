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
 * The run's HTTP state (the session, and the step labels of recent
 * requests) is run.c's, a run hook the action declares. */
#include "http/action.h"

#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>

#include "model/action.h"
#include "http/check.h"
#include "http/curlshim.h"
#include "http/params.h"
#include "http/request.h"
#include "http/result.h"
#include "http/run.h"
#include "http/spec.h"
#include "script/luahost.h"

#define EXCERPT_MAX 400 /* body bytes shown in expectation failures */

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
  pc_http_spec_curl(h, -1, pc_workflow_defaults(pc_run_workflow_def(a->run), "http"), a->scope_ref,
                    &c);
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
  pc_attempt_report(a, r->method, r->final_url);
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
  char traceparent[PC_TRACEPARENT_SIZE];
  struct pc_http_spec_opts o = {
      .defaults = pc_workflow_defaults(pc_run_workflow_def(a->run), "http"),
      .scope_ref = a->scope_ref,
      .label = pc_http_step_label(a->run, a->step),
      .save_ok = a->step->expect.status,
      .nsave_ok = a->step->expect.nstatus,
      .traceparent = pc_http_trace_context(a->run) && pc_attempt_traceparent(a, traceparent) ? traceparent
                                                                                 : NULL,
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
  pc_attempt_report(a, pc_http_method_name(pc_http_request_method(r)), pc_http_request_url(r));
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

/* retry.on's status codes when the step does not set it: those of a
 * server saying "try again". */
static const int retry_codes[] = {429, 502, 503, 504};

const struct pc_action_ops pc_http_ops = {
    .key = "http",
    .load = pc_http_load_step,
    .params = &pc_http_params,
    .start = http_start,
    .cancel = http_cancel,
    .describe = http_describe,
    .subject = http_subject,
    .hooks = &pc_http_run_hooks,
    .restored = pc_http_result_restored,
    .defaults_key = "http",
    .load_defaults = pc_http_load_defaults,
    .defaults_params = &pc_http_defaults_params,
    .load_check = pc_http_load_check,
    .default_on = PC_ON_NETWORK | PC_ON_TIMEOUT,
    .default_codes = retry_codes,
    .ndefault_codes = PC_ARRAY_SIZE(retry_codes),
    .has_status = true,
    .fills_result = true,
    .result_slots = 1,
    .params_only = true,
};
