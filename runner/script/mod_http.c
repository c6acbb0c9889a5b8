/* mod_http.c: pacer.http, the glue between a coroutine and the HTTP
 * module, which does the work: merging defaults.http and reading the
 * options into a spec (http/spec.h), the request (http/request.h), the
 * result table (http/result.h). Kept thin on purpose. */
#include <stdlib.h>

#include <lauxlib.h>

#include "http/curlshim.h"
#include "http/request.h"
#include "http/result.h"
#include "http/run.h"
#include "http/spec.h"
#include "base/util.h"
#include "script/coro.h"
#include "script/host.h"
#include "script/internal.h"

struct http_op {
  struct pc_lua *h;
  struct pc_coro *co;
  struct pc_http_request *req; /* NULL once it reported */
  bool done;
  int result_ref; /* the result table, when a response arrived */
  char *error;    /* the message, when it did not */
};

static void http_op_free(struct http_op *op)
{
  luaL_unref(op->h->L, LUA_REGISTRYINDEX, op->result_ref);
  free(op->error);
  free(op);
}

/* From a libuv callback: the result is valid only now, so it becomes a Lua
 * table (on the main thread, outside any coroutine) before the resume is
 * queued. */
static void on_http_done(void *data, const struct pc_http_result *r)
{
  struct http_op *op = data;
  lua_State *L = op->h->L;
  op->done = true;
  op->req = NULL;
  if (r->fail != PC_FAIL_NONE) {
    op->error = pc_xstrdup(r->error ? r->error : "request failed");
  } else {
    lua_newtable(L);
    char *err = NULL;
    if (pc_http_result_fill(r, op->h, lua_gettop(L), &err) != 0) {
      lua_pop(L, 1);
      op->error = err; /* raised like a network error */
    } else {
      op->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }
  pc_coro_wake(op->co);
}

static void http_cancel(void *data)
{
  struct http_op *op = data;
  if (op->req)
    pc_http_request_cancel(op->req);
  http_op_free(op);
}

static int http_k(lua_State *L, int status, lua_KContext ctx)
{
  struct http_op *op = pc_coro_woken(L);
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
int l_http_request(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  struct pc_coro *co = pc_coro_check(L, "pacer.http");
  struct pc_lua *h = pc__host(L);
  struct pc_run *run = pc_coro_run(co);
  struct pc_http_session *sess = run ? pc_http_session_of(run) : NULL;
  if (!sess)
    return luaL_error(L, "pacer.%s", pc_curl_load_error() ? pc_curl_load_error()
                                                          : "http: libcurl could not be initialised");
  /* The HTTP module works on the main thread's stack: hand it the options
   * there, with the memory limit off (it does not expect to raise). */
  lua_State *M = h->L;
  int base = lua_gettop(M);
  bool was = pc_lua_memory_enforce(h, false);
  lua_pushvalue(L, 1);
  lua_xmove(L, M, 1);                                  /* (M) opts */
  char *err = NULL;
  struct http_op *op;
  op = pc_xcalloc(1, sizeof *op);
  op->h = h;
  op->co = co;
  op->result_ref = LUA_NOREF;
  /* With defaults.http.trace_context, a plugin's request names the span of
   * the step attempt it runs in, as an http step's names its own. */
  char traceparent[PC_TRACEPARENT_SIZE];
  struct pc_attempt *att = pc_coro_attempt(co);
  struct pc_http_spec_opts o = {
      .defaults = pc_workflow_defaults(pc_run_workflow_def(run), "http"),
      .scope_ref = pc_coro_scope(co),
      .allow_timeout = true,
      .label = pc_coro_label(co),
      .traceparent = att && pc_http_trace_context(run) && pc_attempt_traceparent(att, traceparent)
                         ? traceparent
                         : NULL,
  };
  if (pc_http_spec_start(h, base + 1, &o, sess, on_http_done, op, &op->req, &err) != 0) {
    free(op);
    op = NULL;
  }
  lua_settop(M, base);
  pc_lua_memory_enforce(h, was);
  if (!op) {
    lua_pushfstring(L, "pacer.http: %s", err ? err : "cannot start the request");
    free(err);
    return lua_error(L);
  }
  return pc_coro_await(L, co, http_cancel, op, http_k);
}
