/* test_http.c: the HTTP session (http.c) on a real loop against a tiny
 * libuv HTTP/1.1 server in this file: a response and its result table,
 * keep-alive reuse (one poll context per connection), an idle connection
 * the server hangs up, a kept-alive connection the server resets as it is
 * reused, connection refused, cancellation of a request the server never
 * answers (no callback afterwards), cancellation at every moment of a
 * request's life (queued, connecting to a port that never completes a
 * connect, waiting, reading) without an abort or a leaked descriptor,
 * closing a session with requests in flight (also at every moment),
 * invalid options; and
 * pc_http_load_defaults. Every test closes what it opened and ends with
 * uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "http/http.h"
#include "script/luahost.h"
#include "base/util.h"
#include "base/yamlload.h"

/* ------------------------------------------------------- a tiny server */

struct conn {
  uv_tcp_t tcp;
  struct server *srv;
  char buf[8192];
  size_t len;
  int served;         /* requests answered on this connection */
  uv_timer_t reset;   /* reset_reused: resets the connection a moment later */
  bool reset_pending;
};

struct server {
  uv_tcp_t tcp;
  int port;
  bool answer;  /* false: accept and read, never answer */
  bool hang_up; /* close each connection once its response is written */
  bool reset_reused; /* answer a connection's first request; reset it 20 ms after
                        the second arrives (a server closing an idle connection
                        just as the client reuses it) */
  int accepted; /* connections */
  int requests;
  struct conn *conns[16];
  int nconns;
  bool closed;
};

static const char response[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: application/json\r\n"
                               "X-Rep: 1\r\n"
                               "x-rep: 2\r\n"
                               "X-Fold: a\r\n"
                               "  b\r\n"
                               "Retry-After: 3\r\n"
                               "Content-Length: 12\r\n"
                               "\r\n"
                               "{\"ok\": true}";

static void conn_forget(struct conn *c);

static void on_reset_timer_closed(uv_handle_t *h)
{
  free(PC_CONTAINER_OF((uv_timer_t *)h, struct conn, reset));
}

static void on_conn_closed(uv_handle_t *h)
{
  struct conn *c = PC_CONTAINER_OF(h, struct conn, tcp);
  uv_close((uv_handle_t *)&c->reset, on_reset_timer_closed); /* frees c */
}

static void on_reset_timer(uv_timer_t *t)
{
  struct conn *c = PC_CONTAINER_OF(t, struct conn, reset);
  if (uv_is_closing((uv_handle_t *)&c->tcp))
    return;
  conn_forget(c);
  uv_tcp_close_reset(&c->tcp, on_conn_closed);
}

static void on_written(uv_write_t *req, int status)
{
  (void)status;
  struct conn *c = req->data;
  free(req);
  if (c && !uv_is_closing((uv_handle_t *)&c->tcp)) {
    conn_forget(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  (void)suggested;
  struct conn *c = PC_CONTAINER_OF(h, struct conn, tcp);
  buf->base = c->buf + c->len;
  buf->len = sizeof c->buf - c->len - 1;
}

static void conn_forget(struct conn *c)
{
  struct server *s = c->srv;
  for (int i = 0; i < s->nconns; i++)
    if (s->conns[i] == c)
      s->conns[i] = s->conns[--s->nconns];
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
  (void)buf;
  struct conn *c = PC_CONTAINER_OF(st, struct conn, tcp);
  if (n < 0) {
    conn_forget(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    return;
  }
  c->len += (size_t)n;
  c->buf[c->len] = '\0';
  char *end;
  while ((end = strstr(c->buf, "\r\n\r\n"))) { /* GET requests only: no body */
    c->srv->requests++;
    size_t used = (size_t)(end + 4 - c->buf);
    memmove(c->buf, c->buf + used, c->len - used + 1);
    c->len -= used;
    if (c->srv->reset_reused && c->served > 0) {
      if (!c->reset_pending) {
        c->reset_pending = true;
        uv_read_stop(st);
        uv_timer_start(&c->reset, on_reset_timer, 20, 0);
      }
      return;
    }
    c->served++;
    if (c->srv->answer) {
      uv_write_t *w = pc_xmalloc(sizeof *w);
      w->data = c->srv->hang_up ? c : NULL;
      uv_buf_t b = uv_buf_init((char *)response, sizeof response - 1);
      uv_write(w, st, &b, 1, on_written);
    }
  }
}

static void on_connection(uv_stream_t *st, int status)
{
  assert_int_equal(status, 0);
  struct server *s = PC_CONTAINER_OF(st, struct server, tcp);
  struct conn *c = pc_xcalloc(1, sizeof *c);
  c->srv = s;
  uv_tcp_init(st->loop, &c->tcp);
  uv_timer_init(st->loop, &c->reset);
  assert_int_equal(uv_accept(st, (uv_stream_t *)&c->tcp), 0);
  s->accepted++;
  assert_true(s->nconns < 16);
  s->conns[s->nconns++] = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void server_start(uv_loop_t *loop, struct server *s, bool answer)
{
  memset(s, 0, sizeof *s);
  s->answer = answer;
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(loop, &s->tcp);
  assert_int_equal(uv_tcp_bind(&s->tcp, (const struct sockaddr *)&a, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&s->tcp, 16, on_connection), 0);
  struct sockaddr_in got;
  int len = sizeof got;
  uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&got, &len);
  s->port = ntohs(got.sin_port);
}

static void on_server_closed(uv_handle_t *h)
{
  PC_CONTAINER_OF(h, struct server, tcp)->closed = true;
}

/* The server lives on the test's stack: wait until its handle is closed. */
static void server_stop(struct server *s)
{
  uv_loop_t *loop = s->tcp.loop;
  while (s->nconns > 0) {
    struct conn *c = s->conns[--s->nconns];
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  }
  uv_close((uv_handle_t *)&s->tcp, on_server_closed);
  while (!s->closed)
    uv_run(loop, UV_RUN_NOWAIT);
}

/* ------------------------------------------------------------- fixture */

struct fx {
  uv_loop_t loop;
  struct pc_lua *h;
  lua_State *L;
  struct pc_http_session *s;
};

struct done {
  int calls;
  enum pc_fail fail;
  char *error;
  int status;
  double retry_after_ms;
  int result_ref;
  struct fx *fx;
};

static int setup(void **state)
{
  struct fx *f = pc_xcalloc(1, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->h = pc_lua_new();
  assert_non_null(f->h);
  f->L = pc_lua_state(f->h);
  f->s = pc_http_session_new(&f->loop, NULL);
  assert_non_null(f->s);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  pc_http_session_close(f->s);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  pc_lua_free(f->h);
  free(f);
  return 0;
}

static void on_done(void *data, const struct pc_http_result *r)
{
  struct done *d = data;
  d->calls++;
  d->fail = r->fail;
  free(d->error);
  d->error = r->error ? pc_xstrdup(r->error) : NULL;
  d->status = r->status;
  d->retry_after_ms = r->retry_after_ms;
  lua_State *L = d->fx->L;
  lua_newtable(L);
  char *err = NULL;
  assert_int_equal(pc_http_result_fill(r, d->fx->h, -1, &err), 0);
  luaL_unref(L, LUA_REGISTRYINDEX, d->result_ref);
  d->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void done_init(struct done *d, struct fx *f)
{
  memset(d, 0, sizeof *d);
  d->fx = f;
  d->result_ref = LUA_NOREF;
}

static void done_free(struct done *d)
{
  free(d->error);
  luaL_unref(d->fx->L, LUA_REGISTRYINDEX, d->result_ref);
}

/* Starts a request from a Lua chunk that returns the options table. */
static int start(struct fx *f, const char *chunk, struct done *d, struct pc_http_req **r,
                 char **err)
{
  assert_int_equal(luaL_dostring(f->L, chunk), LUA_OK); /* opts */
  int rc = pc_http_start(f->s, f->h, -1, NULL, on_done, d, r, err);
  lua_pop(f->L, 1);
  return rc;
}

static const char *field(struct fx *f, struct done *d, const char *expr)
{
  /* tostring(EXPR) with `r` bound to the result table; "error: ..." if it
   * raises. The text lives in a static buffer until the next call. */
  static char out[512];
  char *code = pc_asprintf("return function(r) return tostring(%s) end", expr);
  assert_int_equal(luaL_dostring(f->L, code), LUA_OK);
  free(code);
  lua_rawgeti(f->L, LUA_REGISTRYINDEX, d->result_ref);
  if (lua_pcall(f->L, 1, 1, 0) != LUA_OK)
    snprintf(out, sizeof out, "error: %s", lua_tostring(f->L, -1));
  else
    snprintf(out, sizeof out, "%s", lua_tostring(f->L, -1));
  lua_pop(f->L, 1);
  return out;
}

/* --------------------------------------------------------------- tests */

static void test_response_and_reuse(void **state)
{
  struct fx *f = *state;
  struct server srv;
  server_start(&f->loop, &srv, true);
  char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/x', query = {a = 'b c'}}",
                            srv.port);
  struct done d1, d2;
  done_init(&d1, f);
  done_init(&d2, f);
  struct pc_http_req *r = NULL;
  char *err = NULL;
  assert_int_equal(start(f, chunk, &d1, &r, &err), 0);
  assert_false(pc_http_req_non_idempotent(r));
  while (d1.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(start(f, chunk, &d2, &r, &err), 0);
  while (d2.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(d1.calls, 1);
  assert_int_equal(d1.fail, PC_FAIL_NONE);
  assert_int_equal(d1.status, 200);
  assert_true(d1.retry_after_ms == 3000);
  /* headers, timing and json are built on first use, once */
  assert_string_equal(field(f, &d1, "rawget(r, 'headers') == nil and rawget(r, 'timing') == nil"),
                      "true");
  assert_string_equal(field(f, &d1, "r.headers['x-rep']"), "1, 2");
  assert_string_equal(field(f, &d1, "r.headers['x-fold']"), "a b");
  assert_string_equal(field(f, &d1, "rawequal(rawget(r, 'headers'), r.headers)"), "true");
  assert_string_equal(field(f, &d1, "rawget(r, 'json') == nil and r.json == rawget(r, 'json')"),
                      "true");
  assert_string_equal(field(f, &d2, "(function() local n = 0 for k in pairs(r) do "
                                    "n = n + ((k == 'headers' or k == 'timing') and 1 or 0) end "
                                    "return n end)()"), "2");
  assert_string_equal(field(f, &d2, "r.timing.connect == 0 and r.timing.ttfb <= r.timing.total"),
                      "true");
  assert_string_equal(field(f, &d2, "getmetatable(r)"), "http result");
  assert_string_equal(field(f, &d2, "pcall(setmetatable, r, nil)"), "false");
  assert_string_equal(field(f, &d1, "r.json.ok"), "true");
  assert_string_equal(field(f, &d1, "r.http_version"), "1.1");
  assert_string_equal(field(f, &d1, "r.reused"), "false");
  assert_string_equal(field(f, &d2, "r.reused"), "true");
  assert_string_equal(field(f, &d1, "r.method"), "GET");
  assert_string_equal(field(f, &d1, "r.url:match('/x%?a=b%%20c$') ~= nil"), "true");
  assert_string_equal(field(f, &d1, "type(r.timing.total)"), "number");
  assert_int_equal(srv.accepted, 1);
  assert_int_equal(srv.requests, 2);

  struct pc_http_stats st;
  pc_http_session_stats(f->s, &st);
  assert_int_equal(st.requests, 2);
  assert_int_equal(st.connections, 1);
  assert_int_equal(st.reused, 1);
  assert_int_equal(st.sockets, 1); /* one poll context for both requests */
  assert_int_equal(st.nhosts, 1);
  assert_true(strstr(st.hosts[0].host, "http://127.0.0.1:") == st.hosts[0].host);
  pc_http_stats_free(&st);

  free(chunk);
  done_free(&d1);
  done_free(&d2);
  server_stop(&srv);
}

static void on_iteration(uv_prepare_t *p)
{
  (*(int *)p->data)++;
}

static void on_quiet_timer(uv_timer_t *t)
{
  *(bool *)t->data = true;
}

/* A kept-alive connection the server closes while it is idle: its socket
 * context stays armed after the transfer, so the hang-up wakes it once and
 * it stops watching (the loop does not spin, nor stay alive for it); the
 * next request opens a new connection. */
static void test_idle_hang_up(void **state)
{
  struct fx *f = *state;
  struct server srv;
  server_start(&f->loop, &srv, true);
  srv.hang_up = true;
  char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/x'}", srv.port);
  struct done d1, d2;
  done_init(&d1, f);
  done_init(&d2, f);
  struct pc_http_req *r = NULL;
  char *err = NULL;
  assert_int_equal(start(f, chunk, &d1, &r, &err), 0);
  while (d1.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(d1.status, 200);

  int iterations = 0;
  uv_prepare_t prep;
  uv_prepare_init(&f->loop, &prep);
  prep.data = &iterations;
  uv_prepare_start(&prep, on_iteration);
  uv_timer_t quiet;
  bool fired = false;
  uv_timer_init(&f->loop, &quiet);
  quiet.data = &fired;
  uv_timer_start(&quiet, on_quiet_timer, 100, 0);
  while (!fired)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_true(iterations < 10);
  uv_close((uv_handle_t *)&prep, NULL);
  uv_close((uv_handle_t *)&quiet, NULL);
  uv_run(&f->loop, UV_RUN_NOWAIT);

  assert_int_equal(start(f, chunk, &d2, &r, &err), 0);
  while (d2.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(d2.fail, PC_FAIL_NONE);
  assert_int_equal(d2.status, 200);
  assert_string_equal(field(f, &d2, "r.reused"), "false");
  assert_int_equal(srv.accepted, 2);
  struct pc_http_stats st;
  pc_http_session_stats(f->s, &st);
  assert_int_equal(st.connections, 2);
  assert_int_equal(st.sockets, 2);
  pc_http_stats_free(&st);
  free(chunk);
  done_free(&d1);
  done_free(&d2);
  server_stop(&srv);
}

/* Statistics per origin: the entry of the previous request's origin is
 * found without parsing its URL; another origin gets its own entry, and
 * going back finds the first again. */
static void test_host_stats(void **state)
{
  struct fx *f = *state;
  struct server srv;
  server_start(&f->loop, &srv, true);
  const char *hosts[] = {"127.0.0.1", "127.0.0.1", "localhost", "127.0.0.1"};
  for (size_t i = 0; i < 4; i++) {
    char *chunk = pc_asprintf("return {get = 'http://%s:%d/%s'}", hosts[i], srv.port,
                              i == 1 ? "?q" : "x");
    struct done d;
    done_init(&d, f);
    struct pc_http_req *r = NULL;
    char *err = NULL;
    assert_int_equal(start(f, chunk, &d, &r, &err), 0);
    while (d.calls == 0)
      uv_run(&f->loop, UV_RUN_ONCE);
    done_free(&d);
    free(chunk);
  }
  struct pc_http_stats st;
  pc_http_session_stats(f->s, &st);
  assert_int_equal(st.requests, 4);
  assert_int_equal(st.nhosts, 2);
  char *want = pc_asprintf("http://127.0.0.1:%d", srv.port);
  assert_string_equal(st.hosts[0].host, want);
  free(want);
  assert_int_equal(st.hosts[0].requests, 3);
  want = pc_asprintf("http://localhost:%d", srv.port);
  assert_string_equal(st.hosts[1].host, want);
  free(want);
  assert_int_equal(st.hosts[1].requests, 1);
  pc_http_stats_free(&st);
  server_stop(&srv);
}

static void test_refused(void **state)
{
  struct fx *f = *state;
  struct done d;
  done_init(&d, f);
  struct pc_http_req *r = NULL;
  char *err = NULL;
  assert_int_equal(start(f, "return {method = 'post', url = 'http://127.0.0.1:9/'}", &d, &r,
                         &err), 0);
  assert_true(pc_http_req_non_idempotent(r));
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.fail, PC_FAIL_NETWORK);
  assert_int_equal(d.status, 0);
  assert_non_null(strstr(d.error, "POST http://127.0.0.1:9/: connection refused to 127.0.0.1:9"));
  assert_string_equal(field(f, &d, "r.status"), "nil");
  done_free(&d);
}

struct canceller {
  uv_timer_t timer;
  struct pc_http_req *req;
};

static void on_cancel_timer(uv_timer_t *t)
{
  struct canceller *c = PC_CONTAINER_OF(t, struct canceller, timer);
  pc_http_cancel(c->req);
  c->req = NULL;
  uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(void **state)
{
  struct fx *f = *state;
  struct server srv;
  server_start(&f->loop, &srv, false);
  struct done d;
  done_init(&d, f);
  struct canceller c;
  char *err = NULL;
  char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/slow'}", srv.port);
  assert_int_equal(start(f, chunk, &d, &c.req, &err), 0);
  uv_timer_init(&f->loop, &c.timer);
  uv_timer_start(&c.timer, on_cancel_timer, 50, 0);
  while (srv.requests == 0 || c.req)
    uv_run(&f->loop, UV_RUN_ONCE);
  server_stop(&srv);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* nothing may fire now */
  assert_int_equal(d.calls, 0);
  struct pc_http_stats st;
  pc_http_session_stats(f->s, &st);
  assert_int_equal(st.cancelled, 1);
  assert_int_equal(st.requests, 0);
  pc_http_stats_free(&st);
  free(chunk);
  done_free(&d);
}

static void test_close_in_flight(void **state)
{
  struct fx *f = *state;
  struct server srv;
  server_start(&f->loop, &srv, false);
  struct done d;
  done_init(&d, f);
  struct pc_http_req *r = NULL;
  char *err = NULL;
  char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/slow'}", srv.port);
  assert_int_equal(start(f, chunk, &d, &r, &err), 0);
  while (srv.requests == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  /* Closing the session stops the request: its callback never fires. */
  pc_http_session_close(f->s);
  f->s = NULL;
  server_stop(&srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(d.calls, 0);
  free(chunk);
  done_free(&d);
}

/* A kept-alive connection the server resets just after the next request
 * went out on it (the reset comes while pacer waits on its poll, which
 * reports it as an error): libcurl retries each such request on a new
 * connection, and every one succeeds, also past libcurl's per-handle limit
 * of 5 retries (the handles are recycled, so they must start each request
 * with no retry counted). */
static void test_keepalive_reset_retried(void **state)
{
  struct fx *f = *state;
  struct server srv;
  server_start(&f->loop, &srv, true);
  srv.reset_reused = true;
  char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/x'}", srv.port);
  for (int i = 0; i < 12; i++) {
    struct done d;
    done_init(&d, f);
    struct pc_http_req *r = NULL;
    char *err = NULL;
    assert_int_equal(start(f, chunk, &d, &r, &err), 0);
    while (d.calls == 0)
      uv_run(&f->loop, UV_RUN_ONCE);
    if (d.fail != PC_FAIL_NONE)
      fail_msg("request %d: %s", i + 1, d.error);
    assert_int_equal(d.status, 200);
    done_free(&d);
  }
  assert_int_equal(srv.accepted, 12);
  free(chunk);
  server_stop(&srv);
}

/* A port whose connects never complete: its listen queue (backlog 0) is
 * filled, so the kernel drops further SYNs. Returns the listening socket;
 * fillers[2] are the connections that fill it. */
static int blackhole_open(int *port, int fillers[2])
{
  int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true(l >= 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(l, 0), 0);
  socklen_t len = sizeof a;
  getsockname(l, (struct sockaddr *)&a, &len);
  *port = ntohs(a.sin_port);
  for (int i = 0; i < 2; i++) {
    fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = connect(fillers[i], (struct sockaddr *)&a, sizeof a);
    assert_true(rc == 0 || errno == EINPROGRESS);
  }
  usleep(20000); /* let the handshake of the first one complete */
  return l;
}

static int count_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  assert_non_null(d);
  int n = 0;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

/* Runs the loop until the process has `want` descriptors open, for at most
 * 5 s; returns the number it has. */
static int run_until_fds(uv_loop_t *loop, int want)
{
  int n = count_fds();
  for (int i = 0; i < 5000 && n != want; i++) {
    uv_run(loop, UV_RUN_NOWAIT);
    usleep(1000);
    n = count_fds();
  }
  return n;
}

struct cancel_case {
  uv_timer_t timer;
  struct pc_http_req *req;
  struct done d;
};

static void on_beat(uv_timer_t *t)
{
  (void)t;
}

static void on_cancel_case_timer(uv_timer_t *t)
{
  struct cancel_case *c = PC_CONTAINER_OF(t, struct cancel_case, timer);
  if (c->req && c->d.calls == 0)
    pc_http_cancel(c->req);
  c->req = NULL;
}

/* Requests cancelled at every moment of their lives, from a timer
 * callback: at 0 ms (in the same loop turn as libcurl opens the socket and
 * asks to watch it, before libuv has applied that), then 1, 2, ... ms
 * later; to a port whose connects never complete (cancelled while
 * connecting: libcurl closes such a socket without the close callback),
 * to a server that never answers (cancelled while waiting), to one that
 * answers (cancelled anywhere from connecting to done), all at once on a
 * session that allows one connection (the others queued). Nothing may
 * abort (libuv aborts on a watched descriptor closed behind its back), no
 * callback may fire for a cancelled request, and once the session is
 * closed every descriptor it opened is closed. */
static void test_cancel_every_moment(void **state)
{
  struct fx *f = *state;
  pc_http_session_close(f->s); /* this test makes its own sessions */
  f->s = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  struct server quiet, answering;
  server_start(&f->loop, &quiet, false);
  server_start(&f->loop, &answering, true);
  int hole_port, fillers[2];
  int hole = blackhole_open(&hole_port, fillers);
  int fds1 = count_fds(); /* (libuv keeps a spare descriptor once it listens) */
  const int ports[3] = {hole_port, quiet.port, answering.port};
  enum { MOMENTS = 12, PER = 3 };
  for (int limit = 0; limit <= 1; limit++) {
    struct pc_http_limits lim = {limit ? 1 : 0, 0};
    f->s = pc_http_session_new(&f->loop, &lim);
    assert_non_null(f->s);
    int completed = 0;
    for (int ms = 0; ms < MOMENTS; ms++) {
      struct cancel_case cs[3 * PER];
      for (int i = 0; i < 3 * PER; i++) {
        struct cancel_case *c = &cs[i];
        done_init(&c->d, f);
        char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/c%d'}", ports[i % 3], i);
        char *err = NULL;
        assert_int_equal(start(f, chunk, &c->d, &c->req, &err), 0);
        free(chunk);
      }
      /* The timers start after every request: libcurl restarts its own
       * 0 ms timer as each request is added, and timers due at the same
       * time run in the order they were started, so at 0 ms libcurl has
       * opened the sockets and asked to watch them when the cancels run. */
      for (int i = 0; i < 3 * PER; i++) {
        uv_timer_init(&f->loop, &cs[i].timer);
        uv_timer_start(&cs[i].timer, on_cancel_case_timer, (uint64_t)ms, 0);
      }
      /* A heartbeat: UV_RUN_ONCE returns at least every millisecond, also
       * once the last request was cancelled inside it. */
      uv_timer_t beat;
      uv_timer_init(&f->loop, &beat);
      uv_timer_start(&beat, on_beat, 1, 1);
      bool pending = true;
      while (pending) {
        uv_run(&f->loop, UV_RUN_ONCE);
        pending = false;
        for (int i = 0; i < 3 * PER; i++)
          pending = pending || (cs[i].req && cs[i].d.calls == 0);
      }
      uv_close((uv_handle_t *)&beat, NULL);
      for (int i = 0; i < 3 * PER; i++) {
        if (i % 3 != 2)
          assert_int_equal(cs[i].d.calls, 0); /* cancelled: no callback */
        else
          completed += cs[i].d.calls;
        uv_close((uv_handle_t *)&cs[i].timer, NULL);
        done_free(&cs[i].d);
      }
      uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    struct pc_http_stats st;
    pc_http_session_stats(f->s, &st);
    assert_int_equal(st.cancelled + st.requests, MOMENTS * 3 * PER);
    assert_int_equal(st.requests, completed);
    pc_http_stats_free(&st);
    pc_http_session_close(f->s);
    f->s = NULL;
    /* every socket the session opened is closed (and libcurl's own), and
     * the servers' ends of them once they see it */
    assert_int_equal(run_until_fds(&f->loop, fds1), fds1);
  }
  close(fillers[0]);
  close(fillers[1]);
  close(hole);
  server_stop(&quiet);
  server_stop(&answering);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  f->s = pc_http_session_new(&f->loop, NULL); /* for teardown */
}

/* Sessions closed (the end of a run, a signal, a deadline) while their
 * requests are queued, connecting, waiting or reading: 0 to 9 loop turns
 * after the requests start. Nothing aborts, no callback fires for a
 * request still running, and every descriptor is closed. */
static void test_close_at_every_moment(void **state)
{
  struct fx *f = *state;
  pc_http_session_close(f->s);
  f->s = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  struct server quiet, answering;
  server_start(&f->loop, &quiet, false);
  server_start(&f->loop, &answering, true);
  int hole_port, fillers[2];
  int hole = blackhole_open(&hole_port, fillers);
  int fds1 = count_fds();
  const int ports[3] = {hole_port, quiet.port, answering.port};
  uv_timer_t beat;
  uv_timer_init(&f->loop, &beat);
  uv_timer_start(&beat, on_beat, 1, 1);
  for (int turns = 0; turns < 20; turns++) {
    struct pc_http_limits lim = {turns % 2, 0};
    f->s = pc_http_session_new(&f->loop, &lim);
    assert_non_null(f->s);
    struct done d[9];
    for (int i = 0; i < 9; i++) {
      done_init(&d[i], f);
      char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/z%d'}", ports[i % 3], i);
      struct pc_http_req *r = NULL;
      char *err = NULL;
      assert_int_equal(start(f, chunk, &d[i], &r, &err), 0);
      free(chunk);
    }
    for (int t = 0; t < turns / 2; t++)
      uv_run(&f->loop, UV_RUN_ONCE);
    pc_http_session_close(f->s);
    f->s = NULL;
    assert_int_equal(run_until_fds(&f->loop, fds1), fds1);
    for (int i = 0; i < 9; i++) {
      if (i % 3 != 2)
        assert_int_equal(d[i].calls, 0);
      else
        assert_true(d[i].calls <= 1);
      done_free(&d[i]);
    }
  }
  uv_close((uv_handle_t *)&beat, NULL);
  close(fillers[0]);
  close(fillers[1]);
  close(hole);
  server_stop(&quiet);
  server_stop(&answering);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  f->s = pc_http_session_new(&f->loop, NULL); /* for teardown */
}

static void test_bad_options(void **state)
{
  struct fx *f = *state;
  static const char *const cases[][2] = {
      {"return {}", "http: no URL"},
      {"return {get = 'ftp://x/'}", "is not an http:// or https:// URL"},
      {"return {get = 'http://x/', post = 'http://x/'}", "both give the URL"},
      {"return {url = 'http://x/', method = 'BREW'}", "unknown method \"BREW\""},
      {"return {get = 'http://x/', headers = {['X-A'] = 'a\\r\\nB: c'}}", "line break"},
      {"return {get = 'http://x/', headers = {['Bad Name'] = 'x'}}", "not a valid header name"},
      {"return {post = 'http://x/', body = 'a', json = {}}", "cannot both be set"},
      {"return {get = 'http://x/', bogus = 1}", "unknown option \"bogus\""},
      {"return {get = 'http://x/', timeout = '1s'}", "unknown option \"timeout\""},
      {"return {get = 'http://x/', connect_timeout = 'soon'}", "http.connect_timeout"},
      {"return {get = 'http://x/', http_version = '3'}", "http.http_version"},
      {"return {get = 'http://x/', max_response_bytes = 0}", "http.max_response_bytes"},
      {"return {head = 'http://x/', body = 'a'}", "HEAD request cannot have a body"},
      {"return {get = 'http://x/', query = {a = {b = {}}}}", "must be text"},
      /* a plugin's table whose __index raises: read raw, no Lua error escapes */
      {"return setmetatable({}, {__index = function() error('boom') end})", "http: no URL"},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    struct done d;
    done_init(&d, f);
    struct pc_http_req *r = NULL;
    char *err = NULL;
    assert_int_equal(start(f, cases[i][0], &d, &r, &err), -1);
    assert_non_null(err);
    if (!strstr(err, cases[i][1]))
      fail_msg("%s: got \"%s\", expected \"%s\"", cases[i][0], err, cases[i][1]);
    free(err);
    done_free(&d);
  }
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------ defaults */

static int load_defaults(const char *yaml, char **msgs)
{
  struct pc_node *n = NULL;
  struct pc_diag d;
  pc_diag_init(&d);
  assert_int_equal(pc_yaml_load_string("t.yml", yaml, strlen(yaml), &pc_yaml_default_limits, &n,
                                       &d), 0);
  struct pc_workflow wf;
  memset(&wf, 0, sizeof wf);
  struct pc_load_ctx c = {.wf = &wf, .d = &d, .file = "t.yml"};
  int rc = pc_http_load_defaults(&c, n);
  struct pc_buf b;
  pc_buf_init(&b, 1 << 16);
  for (size_t i = 0; i < d.n; i++)
    pc_buf_printf(&b, "%d:%d: %s\n", d.items[i].line, d.items[i].col, d.items[i].msg);
  *msgs = pc_buf_steal(&b);
  pc_diag_free(&d);
  pc_node_free(n);
  free(wf.exprs);
  return rc;
}

static void test_load_defaults(void **state)
{
  (void)state;
  char *m = NULL;
  assert_int_equal(load_defaults("headers: {User-Agent: x, X-T: \"${{ env.T }}\"}\n"
                                 "query: {k: 1}\nconnect_timeout: 2s\nfollow_redirects: false\n"
                                 "http_version: 1.1\ninsecure: false\nca_file: ca.pem\n"
                                 "max_response_bytes: 1000\nmax_connections: 10\n"
                                 "max_connections_per_host: 0\n", &m), 0);
  assert_string_equal(m, "");
  free(m);
  assert_int_equal(load_defaults("get: http://x/\nmax_connection: 5\n", &m), -1);
  assert_non_null(strstr(m, "1:1: unknown key \"get\" in defaults.http"));
  assert_non_null(strstr(m, "2:1: unknown key \"max_connection\" in defaults.http; did you "
                            "mean \"max_connections\"?"));
  free(m);
  assert_int_equal(load_defaults("max_connections: \"${{ vars.n }}\"\n"
                                 "max_connections_per_host: -1\n"
                                 "headers: {X-A: \"a\\nb\"}\n", &m), -1);
  assert_non_null(strstr(m, "1:18: http.max_connections: expected a plain number"));
  assert_non_null(strstr(m, "2:27: http.max_connections_per_host: expected a whole number"));
  assert_non_null(strstr(m, "3:16: http.headers: the value of X-A contains a line break"));
  free(m);
  assert_int_equal(load_defaults("[1, 2]\n", &m), -1);
  assert_non_null(strstr(m, "defaults.http: expected a map"));
  free(m);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_response_and_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_hang_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive_reset_retried, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_every_moment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_at_every_moment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
      cmocka_unit_test(test_load_defaults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
