/* test_http_transport.c: the HTTP transport (runner/http: session.c,
 * request.c) with no Lua state at all (the pure rules and the failure
 * sentences are test_http_rules.c's). Sessions and requests run on a real
 * loop against the tiny libuv server of http_test_server.h, with specs
 * built by hand: what a completed request reports, keep-alive reuse, an
 * idle connection the server hangs up, a kept-alive connection reset as it
 * is reused, refusal, cancellation (of
 * one request, and at every moment of many requests' lives, without an
 * abort or a leaked descriptor), closing a session in flight (also at
 * every moment), redirects and what each does to the method, the body and
 * the headers, the limits (max_response_bytes, header block), save_to,
 * request headers and bodies, timeouts, the errors of start, the
 * statistics, and names: which ones pacer resolves, one lookup per name,
 * the answers in libcurl's cache, DNS failures and bounds, redirects to a
 * name, and cancelling or closing while names resolve (nothing waits for
 * a resolver thread, and at most PC_HTTP_RESOLVER_THREADS run). Every
 * test closes what it opened and ends with uv_loop_close() == 0. */
#define _GNU_SOURCE /* RTLD_NEXT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "http/request.h"
#include "http/resolve.h"
#include "http/rules.h"
#include "http/session.h"
#include "base/redact.h"
#include "base/util.h"

#include "http_test_server.h"

/* ================================================== a name server, here */

/* getaddrinfo, for the names of these tests. resolve.c is linked into
 * this executable, so the calls of pacer's resolver threads bind to this
 * definition (and so would libcurl's, through the executable's dynamic
 * symbols; the counts below would show a name libcurl resolved itself).
 * Names under .pacer.test (RFC 6761 reserves .test) answer 127.0.0.1:
 * "dN..." after N ms, "hold..." once dns_release() is called, "fail..."
 * never (EAI_NONAME), "both..." with ::1 and then 127.0.0.1 (the test
 * servers listen on 127.0.0.1 only: libcurl must get both addresses).
 * Every other name goes to the real resolver. */
static pthread_mutex_t dns_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dns_cv = PTHREAD_COND_INITIALIZER;
static bool dns_held;                       /* "hold..." names wait while set */
static int dns_calls, dns_running, dns_max; /* lookups of .pacer.test names */

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
  static const char suffix[] = ".pacer.test";
  gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  size_t n = node ? strlen(node) : 0, sl = sizeof suffix - 1;
  if (n <= sl || strcmp(node + n - sl, suffix) != 0)
    return real(node, service, hints, res);
  pthread_mutex_lock(&dns_mu);
  dns_calls++;
  if (++dns_running > dns_max)
    dns_max = dns_running;
  while (strncmp(node, "hold", 4) == 0 && dns_held)
    pthread_cond_wait(&dns_cv, &dns_mu);
  pthread_mutex_unlock(&dns_mu);
  long ms = node[0] == 'd' ? strtol(node + 1, NULL, 10) : 0;
  if (ms > 0)
    usleep((useconds_t)ms * 1000);
  int rc;
  if (strncmp(node, "fail", 4) == 0) {
    rc = EAI_NONAME;
  } else {
    rc = real("127.0.0.1", service, hints, res);
    struct addrinfo *v6 = NULL;
    if (rc == 0 && strncmp(node, "both", 4) == 0 && real("::1", service, hints, &v6) == 0) {
      struct addrinfo *last = v6;
      while (last->ai_next)
        last = last->ai_next;
      last->ai_next = *res; /* glibc frees a chain node by node */
      *res = v6;
    }
  }
  pthread_mutex_lock(&dns_mu);
  dns_running--;
  pthread_mutex_unlock(&dns_mu);
  return rc;
}

static void dns_reset(void)
{
  pthread_mutex_lock(&dns_mu);
  dns_calls = dns_max = 0;
  dns_held = false;
  pthread_mutex_unlock(&dns_mu);
}

static void dns_hold(void)
{
  pthread_mutex_lock(&dns_mu);
  dns_held = true;
  pthread_mutex_unlock(&dns_mu);
}

static void dns_release(void)
{
  pthread_mutex_lock(&dns_mu);
  dns_held = false;
  pthread_cond_broadcast(&dns_cv);
  pthread_mutex_unlock(&dns_mu);
}

static int dns_get(const int *v)
{
  pthread_mutex_lock(&dns_mu);
  int n = *v;
  pthread_mutex_unlock(&dns_mu);
  return n;
}

/* Waits (at most 10 s) until no lookup of these names runs: the resolver
 * threads have returned from getaddrinfo. */
static void dns_wait_idle(void)
{
  for (int i = 0; i < 10000 && dns_get(&dns_running) > 0; i++)
    usleep(1000);
  assert_int_equal(dns_get(&dns_running), 0);
}

/* ============================================================ fixture */

struct fx {
  uv_loop_t loop;
  struct pc_http_session *s;
};

/* What a request reported, copied out of its result. */
struct done {
  int calls;
  enum pc_fail fail;
  char *error;
  int status;
  double retry_after_ms;
  bool nothing_sent;
  char *method, *url, *final_url, *label, *version, *headers, *body, *saved_to;
  size_t body_len;
  bool body_cut, reused;
  struct pc_http_timing timing;
  int nredirects;
  int redirect_status[PC_HTTP_MAX_REDIRECTS];
  char *redirect_url[PC_HTTP_MAX_REDIRECTS];
};

static char *dup_or_null(const char *s)
{
  return s ? pc_xstrdup(s) : NULL;
}

static void done_free(struct done *d)
{
  free(d->error);
  free(d->method);
  free(d->url);
  free(d->final_url);
  free(d->label);
  free(d->version);
  free(d->headers);
  free(d->body);
  free(d->saved_to);
  for (int i = 0; i < d->nredirects; i++)
    free(d->redirect_url[i]);
  memset(d, 0, sizeof *d);
}

static void on_done(void *data, const struct pc_http_result *r)
{
  struct done *d = data;
  int calls = d->calls;
  done_free(d);
  d->calls = calls + 1;
  d->fail = r->fail;
  d->error = dup_or_null(r->error);
  d->status = r->status;
  d->retry_after_ms = r->retry_after_ms;
  d->nothing_sent = r->nothing_sent;
  d->method = dup_or_null(r->method);
  d->url = dup_or_null(r->url);
  d->final_url = dup_or_null(r->final_url);
  d->label = dup_or_null(r->label);
  d->version = dup_or_null(r->http_version);
  d->headers = pc_xstrndup(r->headers, r->headers_len);
  d->body = r->body ? pc_xstrndup(r->body, r->body_len) : NULL;
  d->body_len = r->body_len;
  d->body_cut = r->body_cut;
  d->saved_to = dup_or_null(r->saved_to);
  d->reused = r->reused;
  d->timing = r->timing;
  d->nredirects = (int)r->nredirects;
  for (size_t i = 0; i < r->nredirects; i++) {
    d->redirect_status[i] = r->redirects[i].status;
    d->redirect_url[i] = pc_xstrdup(r->redirects[i].url);
  }
}

static int setup(void **state)
{
  struct fx *f = pc_xcalloc(1, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->s = pc_http_session_new(&f->loop, NULL);
  assert_non_null(f->s);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  pc_http_session_close(f->s);
  server_settle(&f->loop);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  free(f);
  return 0;
}

/* A GET of url (printf-style) as a spec; the URL lives in a static buffer
 * until the next call. */
static struct pc_http_spec get_spec(const char *fmt, ...)
{
  static char url[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(url, sizeof url, fmt, ap);
  va_end(ap);
  struct pc_http_spec sp;
  pc_http_spec_init(&sp);
  sp.url = url;
  return sp;
}

static struct pc_http_request *start(struct fx *f, const struct pc_http_spec *sp,
                                     struct done *d)
{
  struct pc_http_request *r = NULL;
  char *err = NULL;
  if (pc_http_request_start(f->s, sp, on_done, d, &r, &err) != 0)
    fail_msg("start %s: %s", sp->url, err);
  assert_non_null(r);
  return r;
}

static void wait_done(struct fx *f, struct done *d)
{
  while (d->calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(d->calls, 1);
}

/* Starts sp and runs the loop until it completes. */
static void run_spec(struct fx *f, const struct pc_http_spec *sp, struct done *d)
{
  start(f, sp, d);
  wait_done(f, d);
}

static void stats_of(struct fx *f, struct pc_http_stats *st)
{
  pc_http_session_stats(f->s, st);
}

/* ========================================================== completion */

/* A response and what its result says; a second request on the kept-alive
 * connection: one connection, one socket context, two requests. */
static void test_response_and_reuse(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  struct done d1 = {0}, d2 = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/x?a=b", srv.port);
  sp.label = "step one";
  run_spec(f, &sp, &d1);
  sp = get_spec("http://127.0.0.1:%d/x?a=b", srv.port);
  run_spec(f, &sp, &d2);

  assert_int_equal(d1.fail, PC_FAIL_NONE);
  assert_null(d1.error);
  assert_int_equal(d1.status, 200);
  assert_true(d1.retry_after_ms == 3000);
  assert_false(d1.nothing_sent);
  assert_string_equal(d1.method, "GET");
  assert_string_equal(d1.url, d1.final_url);
  assert_non_null(strstr(d1.url, "/x?a=b"));
  assert_string_equal(d1.label, "step one");
  assert_string_equal(d2.label, "http");
  assert_string_equal(d1.version, "1.1");
  assert_string_equal(d1.body, "{\"ok\": true}");
  assert_false(d1.body_cut);
  assert_null(d1.saved_to);
  assert_true(strncmp(d1.headers, "HTTP/1.1 200 OK\r\n", 17) == 0);
  assert_non_null(strstr(d1.headers, "X-Fold: a\r\n  b\r\n"));
  assert_false(d1.reused);
  assert_true(d2.reused);
  assert_true(d1.timing.total >= d1.timing.ttfb && d1.timing.ttfb >= 0);
  assert_true(d2.timing.connect == 0);
  assert_int_equal(d1.nredirects, 0);
  assert_int_equal(srv.accepted, 1);
  assert_int_equal(srv.requests, 2);

  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.requests, 2);
  assert_int_equal(st.failed, 0);
  assert_int_equal(st.connections, 1);
  assert_int_equal(st.reused, 1);
  assert_int_equal(st.sockets, 1); /* one poll context for both requests */
  assert_true(st.bytes_down > 2 * 12 && st.bytes_up > 0);
  assert_int_equal(st.nhosts, 1);
  char *want = pc_asprintf("http://127.0.0.1:%d", srv.port);
  assert_string_equal(st.hosts[0].host, want);
  free(want);
  assert_int_equal(st.hosts[0].requests, 2);
  pc_http_stats_free(&st);
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
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  srv.hang_up = true;
  struct done d1 = {0}, d2 = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/x", srv.port);
  run_spec(f, &sp, &d1);
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

  run_spec(f, &sp, &d2);
  assert_int_equal(d2.fail, PC_FAIL_NONE);
  assert_int_equal(d2.status, 200);
  assert_false(d2.reused);
  assert_int_equal(srv.accepted, 2);
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.connections, 2);
  assert_int_equal(st.sockets, 2);
  pc_http_stats_free(&st);
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
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  const char *hosts[] = {"127.0.0.1", "127.0.0.1", "localhost", "127.0.0.1"};
  for (size_t i = 0; i < 4; i++) {
    struct done d = {0};
    struct pc_http_spec sp = get_spec("http://%s:%d/%s", hosts[i], srv.port, i == 1 ? "?q" : "x");
    run_spec(f, &sp, &d);
    assert_int_equal(d.status, 200);
    done_free(&d);
  }
  struct pc_http_stats st;
  stats_of(f, &st);
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

/* A refused connection: a network failure that provably sent nothing. */
static void test_refused(void **state)
{
  struct fx *f = *state;
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:9/");
  sp.method = PC_HTTP_POST;
  struct pc_http_request *r = start(f, &sp, &d);
  assert_int_equal(pc_http_request_method(r), PC_HTTP_POST);
  assert_string_equal(pc_http_request_url(r), "http://127.0.0.1:9/");
  assert_true(pc_http_request_nothing_sent(r));
  wait_done(f, &d);
  assert_int_equal(d.fail, PC_FAIL_NETWORK);
  assert_int_equal(d.status, 0);
  assert_true(d.nothing_sent);
  assert_null(d.body);
  assert_string_equal(d.error, "POST http://127.0.0.1:9/: connection refused to 127.0.0.1:9");
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.requests, 1);
  assert_int_equal(st.failed, 1);
  pc_http_stats_free(&st);
  done_free(&d);
}

/* =========================================================== cancelling */

struct canceller {
  uv_timer_t timer;
  struct pc_http_request *req;
};

static void on_cancel_timer(uv_timer_t *t)
{
  struct canceller *c = PC_CONTAINER_OF(t, struct canceller, timer);
  assert_false(pc_http_request_nothing_sent(c->req)); /* the server has it */
  pc_http_request_cancel(c->req);
  c->req = NULL;
  uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, false), 0);
  struct done d = {0};
  struct canceller c;
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/slow", srv.port);
  c.req = start(f, &sp, &d);
  uv_timer_init(&f->loop, &c.timer);
  uv_timer_start(&c.timer, on_cancel_timer, 50, 0);
  while (srv.requests == 0 || c.req)
    uv_run(&f->loop, UV_RUN_ONCE);
  server_stop(&srv);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* nothing may fire now */
  assert_int_equal(d.calls, 0);
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.cancelled, 1);
  assert_int_equal(st.requests, 0);
  pc_http_stats_free(&st);
  pc_http_request_cancel(NULL); /* ignored */
}

static void test_close_in_flight(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, false), 0);
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/slow", srv.port);
  start(f, &sp, &d);
  while (srv.requests == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  /* Closing the session stops the request: its callback never fires. */
  pc_http_session_close(f->s);
  f->s = NULL;
  server_stop(&srv);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(d.calls, 0);
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
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  srv.reset_reused = true;
  for (int i = 0; i < 12; i++) {
    struct done d = {0};
    struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/x", srv.port);
    run_spec(f, &sp, &d);
    if (d.fail != PC_FAIL_NONE)
      fail_msg("request %d: %s", i + 1, d.error);
    assert_int_equal(d.status, 200);
    done_free(&d);
  }
  assert_int_equal(srv.accepted, 12);
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

/* The targets of the at-every-moment tests, whose requests the fixture's
 * session must not see: a port whose connects never complete, a server
 * that never answers and one that answers. `fds`: the descriptors the
 * process has with them open, and no session. */
struct targets {
  struct server quiet, answering;
  int hole, fillers[2];
  int ports[3];
  int fds;
};

static void targets_open(struct fx *f, struct targets *t)
{
  pc_http_session_close(f->s); /* these tests make their own sessions */
  f->s = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(server_start(&f->loop, &t->quiet, false), 0);
  assert_int_equal(server_start(&f->loop, &t->answering, true), 0);
  int hole_port;
  t->hole = blackhole_open(&hole_port, t->fillers);
  t->ports[0] = hole_port;
  t->ports[1] = t->quiet.port;
  t->ports[2] = t->answering.port;
  t->fds = count_fds(); /* (libuv keeps a spare descriptor once it listens) */
}

static void targets_close(struct fx *f, struct targets *t)
{
  close(t->fillers[0]);
  close(t->fillers[1]);
  close(t->hole);
  server_stop(&t->quiet);
  server_stop(&t->answering);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  f->s = pc_http_session_new(&f->loop, NULL); /* for teardown */
}

struct cancel_case {
  uv_timer_t timer;
  struct pc_http_request *req;
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
    pc_http_request_cancel(c->req);
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
  struct targets tg;
  targets_open(f, &tg);
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
        memset(&c->d, 0, sizeof c->d);
        struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/c%d", tg.ports[i % 3], i);
        c->req = start(f, &sp, &c->d);
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
    stats_of(f, &st);
    assert_int_equal(st.cancelled + st.requests, MOMENTS * 3 * PER);
    assert_int_equal(st.requests, completed);
    pc_http_stats_free(&st);
    pc_http_session_close(f->s);
    f->s = NULL;
    /* every socket the session opened is closed (and libcurl's own), and
     * the servers' ends of them once they see it */
    assert_int_equal(run_until_fds(&f->loop, tg.fds), tg.fds);
  }
  targets_close(f, &tg);
}

/* Sessions closed (the end of a run, a signal, a deadline) while their
 * requests are queued, connecting, waiting or reading: 0 to 9 loop turns
 * after the requests start. Nothing aborts, no callback fires for a
 * request still running, and every descriptor is closed. */
static void test_close_at_every_moment(void **state)
{
  struct fx *f = *state;
  struct targets tg;
  targets_open(f, &tg);
  uv_timer_t beat;
  uv_timer_init(&f->loop, &beat);
  uv_timer_start(&beat, on_beat, 1, 1);
  for (int turns = 0; turns < 20; turns++) {
    struct pc_http_limits lim = {turns % 2, 0};
    f->s = pc_http_session_new(&f->loop, &lim);
    assert_non_null(f->s);
    struct done d[9];
    for (int i = 0; i < 9; i++) {
      memset(&d[i], 0, sizeof d[i]);
      struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/z%d", tg.ports[i % 3], i);
      start(f, &sp, &d[i]);
    }
    for (int t = 0; t < turns / 2; t++)
      uv_run(&f->loop, UV_RUN_ONCE);
    pc_http_session_close(f->s);
    f->s = NULL;
    assert_int_equal(run_until_fds(&f->loop, tg.fds), tg.fds);
    for (int i = 0; i < 9; i++) {
      if (i % 3 != 2)
        assert_int_equal(d[i].calls, 0);
      else
        assert_true(d[i].calls <= 1);
      done_free(&d[i]);
    }
  }
  uv_close((uv_handle_t *)&beat, NULL);
  targets_close(f, &tg);
}

/* ============================================================ redirects */

/* What /echo reported of the request that reached it: its request line
 * ("POST /echo"), and whether a header line or the body was there. */
static bool echo_has(const struct done *d, const char *line)
{
  return d->body && strstr(d->body, line) != NULL;
}

/* Every redirect status with every kind of request: the method and body
 * that reach the target (rules.c's pc_http_redirect_as_get, end to end). */
static void test_redirect_methods(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  static const struct {
    int status;
    enum pc_http_method m;
    bool body;
    const char *arrives; /* the request line at /echo */
  } cases[] = {
      {303, PC_HTTP_POST, true, "GET /echo"},    {303, PC_HTTP_PUT, true, "GET /echo"},
      {303, PC_HTTP_DELETE, false, "GET /echo"}, {303, PC_HTTP_HEAD, false, "HEAD /echo"},
      {301, PC_HTTP_POST, true, "GET /echo"},    {302, PC_HTTP_POST, true, "GET /echo"},
      {301, PC_HTTP_PUT, true, "PUT /echo"},     {302, PC_HTTP_PATCH, true, "PATCH /echo"},
      {307, PC_HTTP_POST, true, "POST /echo"},   {308, PC_HTTP_PUT, true, "PUT /echo"},
      {307, PC_HTTP_GET, false, "GET /echo"},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    struct done d = {0};
    struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/r/%d?to=/echo", srv.port,
                                      cases[i].status);
    sp.method = cases[i].m;
    if (cases[i].body) {
      sp.has_body = true;
      sp.body = "the-body";
      sp.body_len = 8;
      sp.body_type = "text/plain";
    }
    run_spec(f, &sp, &d);
    if (d.fail != PC_FAIL_NONE)
      fail_msg("case %zu: %s", i, d.error);
    assert_int_equal(d.status, 200);
    assert_int_equal(d.nredirects, 1);
    assert_int_equal(d.redirect_status[0], cases[i].status);
    assert_non_null(strstr(d.redirect_url[0], "/r/"));
    assert_non_null(strstr(d.final_url, "/echo"));
    assert_string_equal(d.method, pc_http_method_name(cases[i].m)); /* as asked */
    if (cases[i].m == PC_HTTP_HEAD) {
      assert_string_equal(d.body, ""); /* a HEAD response has none */
    } else {
      if (!echo_has(&d, cases[i].arrives))
        fail_msg("case %zu: expected %s, got:\n%s", i, cases[i].arrives, d.body);
      bool kept = strncmp(cases[i].arrives, "GET", 3) != 0 && cases[i].body;
      assert_int_equal(echo_has(&d, "the-body"), kept);
      assert_int_equal(echo_has(&d, "Content-Type: text/plain"), kept);
    }
    done_free(&d);
  }
  server_stop(&srv);
}

/* Headers on a redirect: within one origin every header goes along; to
 * another origin (localhost is not 127.0.0.1), Authorization, Cookie and
 * every header holding a secret stay behind, other headers go along. */
static void test_redirect_headers(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  pc_secret_add("key-0123456789", 14);
  const struct pc_http_header hdrs[] = {
      {"Authorization", 13, "Bearer tok", 10},
      {"Cookie", 6, "a=b", 3},
      {"X-Api-Key", 9, "key-0123456789", 14},
      {"X-Plain", 7, "hello", 5},
  };
  for (int cross = 0; cross <= 1; cross++) {
    struct done d = {0};
    struct pc_http_spec sp =
        get_spec("http://127.0.0.1:%d/r/302?to=http://%s:%d/echo", srv.port,
                 cross ? "localhost" : "127.0.0.1", srv.port);
    sp.headers = hdrs;
    sp.nheaders = PC_ARRAY_SIZE(hdrs);
    run_spec(f, &sp, &d);
    assert_int_equal(d.fail, PC_FAIL_NONE);
    assert_int_equal(d.status, 200);
    assert_true(echo_has(&d, "X-Plain: hello"));
    assert_int_equal(echo_has(&d, "Authorization: Bearer tok"), !cross);
    assert_int_equal(echo_has(&d, "Cookie: a=b"), !cross);
    assert_int_equal(echo_has(&d, "X-Api-Key: key-0123456789"), !cross);
    done_free(&d);
  }
  pc_secrets_clear();
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.requests, 4); /* each request of a chain counts */
  assert_int_equal(st.nhosts, 2);
  pc_http_stats_free(&st);
  server_stop(&srv);
}

/* issue 15: a body_file is sent again from its start on a 307 (and
 * dropped on a 303), and the request's own cookies (spec.cookie) and
 * credentials (spec.auth) go to its origin only, as Authorization and
 * Cookie headers do. */
static void test_redirect_file_auth_cookie(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  char path[] = "/tmp/pacer-body-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "file-body-0123", 14), 14);
  close(fd);
  for (int status = 303; status <= 307; status += 4) {
    struct done d = {0};
    struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/r/%d?to=/echo", srv.port, status);
    sp.method = PC_HTTP_POST;
    sp.has_body = true;
    sp.body_file = path;
    sp.body_type = "application/octet-stream";
    run_spec(f, &sp, &d);
    assert_int_equal(d.fail, PC_FAIL_NONE);
    assert_int_equal(d.nredirects, 1);
    assert_true(echo_has(&d, status == 307 ? "POST /echo" : "GET /echo"));
    assert_int_equal(echo_has(&d, "file-body-0123"), status == 307);
    done_free(&d);
  }
  unlink(path);
  for (int cross = 0; cross <= 1; cross++) {
    struct done d = {0};
    struct pc_http_spec sp =
        get_spec("http://127.0.0.1:%d/r/302?to=http://%s:%d/echo", srv.port,
                 cross ? "localhost" : "127.0.0.1", srv.port);
    sp.cookie = "a=1; b=2";
    sp.auth = PC_HTTP_AUTH_BASIC;
    sp.auth_user = "user";
    sp.auth_password = "pass-0123456789";
    run_spec(f, &sp, &d);
    assert_int_equal(d.fail, PC_FAIL_NONE);
    assert_int_equal(echo_has(&d, "Cookie: a=1; b=2"), !cross);
    /* base64("user:pass-0123456789") */
    assert_int_equal(echo_has(&d, "Authorization: Basic dXNlcjpwYXNzLTAxMjM0NTY3ODk="), !cross);
    done_free(&d);
  }
  pc_secrets_clear();
  server_stop(&srv);
}

/* More than PC_HTTP_MAX_REDIRECTS, a Location that is not http(s), and
 * follow_redirects off. */
static void test_redirect_limits(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/loop", srv.port);
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_ERROR);
  assert_non_null(strstr(d.error, "too many redirects (more than 10; a redirect loop?)"));
  done_free(&d);

  sp = get_spec("http://127.0.0.1:%d/r/301?to=ftp://x/", srv.port);
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_ERROR);
  assert_non_null(strstr(d.error, "answered 301 with a redirect to ftp://x/, which is not an "
                                  "http:// or https:// URL"));
  done_free(&d);

  sp = get_spec("http://127.0.0.1:%d/r/302?to=/echo", srv.port);
  sp.follow_redirects = false;
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_NONE);
  assert_int_equal(d.status, 302);
  assert_string_equal(d.body, "moved");
  assert_int_equal(d.nredirects, 0);
  done_free(&d);
  server_stop(&srv);
}

/* ============================================================== limits */

static void test_max_response_bytes(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  static const char *const paths[] = {"big", "big-nolen"}; /* by length, while streaming */
  for (size_t i = 0; i < 2; i++) {
    struct done d = {0};
    struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/%s/1000", srv.port, paths[i]);
    sp.max_response_bytes = 100;
    run_spec(f, &sp, &d);
    assert_int_equal(d.fail, PC_FAIL_ERROR);
    assert_non_null(strstr(d.error, "response larger than 100 bytes (max_response_bytes)"));
    assert_null(d.body);
    done_free(&d);
    sp.max_response_bytes = 1000; /* exactly the body: fine */
    run_spec(f, &sp, &d);
    assert_int_equal(d.fail, PC_FAIL_NONE);
    assert_int_equal(d.body_len, 1000);
    done_free(&d);
  }
  /* HEAD: the length is that of a body it does not have */
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/big/1000", srv.port);
  sp.method = PC_HTTP_HEAD;
  sp.max_response_bytes = 100;
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_NONE);
  assert_int_equal(d.status, 200);
  assert_int_equal(d.body_len, 0);
  done_free(&d);
  server_stop(&srv);
}

static void test_header_limit(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/headers/300000", srv.port);
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_ERROR);
  assert_non_null(strstr(d.error, "the response headers from 127.0.0.1:"));
  assert_non_null(strstr(d.error, "are larger than 256 KiB"));
  done_free(&d);
  sp = get_spec("http://127.0.0.1:%d/headers/100000", srv.port);
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_NONE);
  assert_string_equal(d.body, "ok");
  done_free(&d);
  server_stop(&srv);
}

/* ============================================================= save_to */

static int dir_entries(const char *path)
{
  DIR *dir = opendir(path);
  assert_non_null(dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)))
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(dir);
  return n;
}

static void test_save_to(void **state)
{
  struct fx *f = *state;
  struct server srv, quiet;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  assert_int_equal(server_start(&f->loop, &quiet, false), 0);
  char dir[] = "/tmp/pacer-test-http-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *path = pc_asprintf("%s/out.bin", dir);

  /* a complete response: the file, and the start of the body */
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/big/5000", srv.port);
  sp.save_to = path;
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_NONE);
  assert_string_equal(d.saved_to, path);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_size, 5000);
  assert_int_equal(dir_entries(dir), 1);
  assert_int_equal(unlink(path), 0);
  done_free(&d);

  /* a status save_to does not keep: no file, the start of the body */
  const struct pc_status_range only_201[] = {{201, 201}};
  sp = get_spec("http://127.0.0.1:%d/big/5000", srv.port);
  sp.save_to = path;
  sp.save_ok = only_201;
  sp.nsave_ok = 1;
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_NONE);
  assert_null(d.saved_to);
  assert_int_equal(d.body_len, 4096);
  assert_true(d.body_cut);
  assert_int_equal(dir_entries(dir), 0);
  done_free(&d);

  /* cancelled while it waits: no file, no temporary file */
  sp = get_spec("http://127.0.0.1:%d/slow", quiet.port);
  sp.save_to = path;
  struct pc_http_request *r = start(f, &sp, &d);
  assert_int_equal(dir_entries(dir), 1); /* the temporary file */
  while (quiet.requests == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  pc_http_request_cancel(r);
  assert_int_equal(dir_entries(dir), 0);
  assert_int_equal(d.calls, 0);

  /* a directory that does not exist: start fails, no callback */
  char *bad = pc_asprintf("%s/no/such/dir/out.bin", dir);
  sp = get_spec("http://127.0.0.1:%d/x", srv.port);
  sp.save_to = bad;
  char *err = NULL;
  assert_int_equal(pc_http_request_start(f->s, &sp, on_done, &d, NULL, &err), -1);
  assert_non_null(strstr(err, "http.save_to: "));
  free(err);
  free(bad);

  assert_int_equal(rmdir(dir), 0);
  free(path);
  server_stop(&srv);
  server_stop(&quiet);
  uv_run(&f->loop, UV_RUN_NOWAIT);
  assert_int_equal(d.calls, 0);
}

/* ============================================= request headers and body */

static void test_request_headers_and_body(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  struct done d = {0};

  /* a body: its Content-Type, pacer's User-Agent, and no Expect:
   * 100-continue, which libcurl would send for a body over 1 MiB (the
   * body is sent at once instead of after a round trip) */
  size_t big = ((size_t)1 << 20) + 3;
  char *body = pc_xmalloc(big);
  memset(body, 'b', big);
  memcpy(body + big - 3, "a\0b", 3);
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/echo", srv.port);
  sp.method = PC_HTTP_PUT;
  sp.has_body = true;
  sp.body = body;
  sp.body_len = big;
  sp.body_type = "application/octet-stream";
  run_spec(f, &sp, &d);
  free(body);
  assert_true(echo_has(&d, "PUT /echo\n"));
  assert_true(echo_has(&d, "Content-Type: application/octet-stream\n"));
  assert_true(echo_has(&d, "Content-Length: 1048579\n"));
  assert_true(echo_has(&d, "User-Agent: pacer/"));
  assert_false(echo_has(&d, "Expect"));
  assert_int_equal(memcmp(d.body + d.body_len - 3, "a\0b", 3), 0);
  done_free(&d);
  sp.body = "a\0b";
  sp.body_len = 3;

  /* the spec's headers win over pacer's; an empty value is sent empty */
  const struct pc_http_header hdrs[] = {
      {"Content-Type", 12, "text/x-mine", 11},
      {"User-Agent", 10, "tester/1", 8},
      {"X-Empty", 7, "", 0},
  };
  sp.headers = hdrs;
  sp.nheaders = PC_ARRAY_SIZE(hdrs);
  sp.method = PC_HTTP_POST;
  run_spec(f, &sp, &d);
  assert_true(echo_has(&d, "POST /echo\n"));
  assert_true(echo_has(&d, "Content-Type: text/x-mine\n"));
  assert_false(echo_has(&d, "application/octet-stream"));
  assert_true(echo_has(&d, "User-Agent: tester/1\n"));
  assert_true(echo_has(&d, "X-Empty:"));
  done_free(&d);

  /* POST without a body: Content-Length: 0 and no Content-Type */
  sp = get_spec("http://127.0.0.1:%d/echo", srv.port);
  sp.method = PC_HTTP_POST;
  run_spec(f, &sp, &d);
  assert_true(echo_has(&d, "POST /echo\n"));
  assert_true(echo_has(&d, "Content-Length: 0\n"));
  assert_false(echo_has(&d, "Content-Type"));
  done_free(&d);

  /* DELETE and OPTIONS go as they are */
  sp.method = PC_HTTP_DELETE;
  run_spec(f, &sp, &d);
  assert_true(echo_has(&d, "DELETE /echo\n"));
  assert_false(echo_has(&d, "Content-Length"));
  done_free(&d);
  server_stop(&srv);
}

/* ============================================================ timeouts */

static void test_timeouts(void **state)
{
  struct fx *f = *state;
  struct server quiet;
  assert_int_equal(server_start(&f->loop, &quiet, false), 0);
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/slow", quiet.port);
  sp.timeout_ms = 100;
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_TIMEOUT);
  assert_non_null(strstr(d.error, ": timed out after 100ms"));
  assert_false(d.nothing_sent);
  done_free(&d);

  int hole_port, fillers[2];
  int hole = blackhole_open(&hole_port, fillers);
  sp = get_spec("http://127.0.0.1:%d/x", hole_port);
  sp.connect_timeout_ms = 100;
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_TIMEOUT);
  char *want = pc_asprintf("could not connect to 127.0.0.1:%d within 100ms (connect_timeout)",
                           hole_port);
  assert_non_null(strstr(d.error, want));
  free(want);
  assert_true(d.nothing_sent);
  done_free(&d);
  close(fillers[0]);
  close(fillers[1]);
  close(hole);
  server_stop(&quiet);
}

/* ============================================================ admission */

static void session_with(struct fx *f, long max_connections, long max_per_host)
{
  pc_http_session_close(f->s);
  struct pc_http_limits lim = {.max_connections = max_connections, .max_per_host = max_per_host};
  f->s = pc_http_session_new(&f->loop, &lim);
  assert_non_null(f->s);
}

static void on_queue_cancel_timer(uv_timer_t *t)
{
  struct pc_http_request **r = t->data;
  pc_http_request_cancel(*r);
  *r = NULL;
  uv_close((uv_handle_t *)t, NULL);
}

/* The session hands libcurl at most max_connections plain transfers and
 * queues the rest itself, in order; a queued request can be cancelled, its
 * wait counts in its own timeout, closing the session drops the queue; a
 * per-host limit (or none at all) leaves every transfer to libcurl. */
static void test_admission(void **state)
{
  struct fx *f = *state;
  struct server srv, quiet;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  assert_int_equal(server_start(&f->loop, &quiet, false), 0);
  enum { N = 20 };
  struct done d[N];
  memset(d, 0, sizeof d);

  /* 20 requests, 2 connections: 18 wait in the session, all succeed. */
  session_with(f, 2, 0);
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/x", srv.port);
  for (int i = 0; i < N; i++)
    start(f, &sp, &d[i]);
  for (int i = 0; i < N; i++) {
    wait_done(f, &d[i]);
    assert_int_equal(d[i].status, 200);
    done_free(&d[i]);
  }
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.queued, N - 2);
  assert_int_equal(st.admitted_max, 2);
  assert_true(st.connections <= 2);
  assert_int_equal(st.requests, N);
  pc_http_stats_free(&st);

  /* One connection held by a request that never gets an answer: the next
   * waits; cancelling a waiting one frees nothing of the other's; a
   * request whose timeout passes while it waits fails as timed out, with
   * nothing sent, once it leaves the queue. */
  session_with(f, 1, 0);
  sp = get_spec("http://127.0.0.1:%d/slow", quiet.port);
  struct pc_http_request *holder = start(f, &sp, &d[0]);
  struct pc_http_request *waiting = start(f, &sp, &d[1]);
  sp.timeout_ms = 100;
  start(f, &sp, &d[2]);
  pc_http_request_cancel(waiting);
  uv_timer_t t;
  uv_timer_init(&f->loop, &t);
  t.data = &holder;
  uv_timer_start(&t, on_queue_cancel_timer, 300, 0);
  wait_done(f, &d[2]);
  assert_null(holder);
  assert_int_equal(d[2].fail, PC_FAIL_TIMEOUT);
  assert_true(d[2].nothing_sent);
  assert_int_equal(d[0].calls, 0);
  assert_int_equal(d[1].calls, 0);
  done_free(&d[2]);
  stats_of(f, &st);
  assert_int_equal(st.queued, 2);
  assert_int_equal(st.cancelled, 2);
  pc_http_stats_free(&st);

  /* Closing the session with requests in libcurl and in the queue: no
   * callback, nothing leaked. */
  sp.timeout_ms = -1;
  for (int i = 0; i < 4; i++)
    start(f, &sp, &d[i]);
  for (int i = 0; i < 5; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT);
  session_with(f, 1, 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(d[i].calls, 0);

  /* A redirect keeps its slot: with one connection, a redirected request
   * and one queued behind it both complete. */
  session_with(f, 1, 0);
  sp = get_spec("http://127.0.0.1:%d/r/302?to=/x", srv.port);
  start(f, &sp, &d[0]);
  sp = get_spec("http://127.0.0.1:%d/x", srv.port);
  start(f, &sp, &d[1]);
  for (int i = 0; i < 2; i++) {
    wait_done(f, &d[i]);
    assert_int_equal(d[i].status, 200);
  }
  assert_int_equal(d[0].nredirects, 1);
  done_free(&d[0]);
  done_free(&d[1]);
  session_with(f, 2, 1);

  /* With a per-host limit nothing waits in the session. */
  sp = get_spec("http://127.0.0.1:%d/x", srv.port);
  for (int i = 0; i < 5; i++)
    start(f, &sp, &d[i]);
  for (int i = 0; i < 5; i++) {
    wait_done(f, &d[i]);
    assert_int_equal(d[i].status, 200);
    done_free(&d[i]);
  }
  stats_of(f, &st);
  assert_int_equal(st.queued, 0);
  assert_int_equal(st.admitted_max, 5);
  pc_http_stats_free(&st);
  server_stop(&srv);
  server_stop(&quiet);
}

/* A request completed, in the order of completion. */
struct ordered {
  struct done d; /* first: on_done's data */
  int *seq;      /* the shared counter */
  int at;        /* its value when this one completed (1, 2, ...) */
};

static void on_done_ordered(void *data, const struct pc_http_result *r)
{
  struct ordered *o = data;
  on_done(&o->d, r);
  o->at = ++*o->seq;
}

/* A queued request has no easy handle: one cancelled while it waits, one
 * whose timeout passes while it waits (it fails as timed out, with nothing
 * sent, once it leaves the queue: as when it had a handle) and the ones
 * dropped by closing the session never get one; the session makes a handle
 * only for a request it admits. */
static void test_queue_no_handle(void **state)
{
  struct fx *f = *state;
  struct server quiet;
  assert_int_equal(server_start(&f->loop, &quiet, false), 0);
  struct done d[6];
  memset(d, 0, sizeof d);
  session_with(f, 1, 0);
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/slow", quiet.port);
  struct pc_http_request *holder = start(f, &sp, &d[0]);
  /* waiting: one with a body, headers and credentials, cancelled; two that
   * time out; one that is admitted in the end */
  const struct pc_http_header hdrs[] = {{"X-Waiting", 9, "yes", 3}};
  sp.method = PC_HTTP_POST;
  sp.has_body = true;
  sp.body = "a body";
  sp.body_len = 6;
  sp.headers = hdrs;
  sp.nheaders = 1;
  sp.auth = PC_HTTP_AUTH_BASIC;
  sp.auth_user = "u";
  sp.auth_password = "queued-secret";
  struct pc_http_request *cancelled = start(f, &sp, &d[1]);
  sp = get_spec("http://127.0.0.1:%d/slow", quiet.port);
  sp.timeout_ms = 100;
  start(f, &sp, &d[2]);
  start(f, &sp, &d[3]);
  sp.timeout_ms = -1;
  struct pc_http_request *last = start(f, &sp, &d[4]);
  for (int i = 0; i < 5; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT);
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.handles, 1); /* the holder's only */
  assert_int_equal(st.queued, 4);
  pc_http_stats_free(&st);
  pc_http_request_cancel(cancelled);

  uv_timer_t t;
  uv_timer_init(&f->loop, &t);
  t.data = &holder;
  uv_timer_start(&t, on_queue_cancel_timer, 300, 0);
  wait_done(f, &d[2]);
  wait_done(f, &d[3]);
  for (int i = 2; i < 4; i++) {
    assert_int_equal(d[i].fail, PC_FAIL_TIMEOUT);
    assert_true(d[i].nothing_sent);
    assert_non_null(strstr(d[i].error, "timed out"));
    assert_int_equal(d[i].status, 0);
    done_free(&d[i]);
  }
  assert_null(holder);
  /* the last one is admitted: the second handle made (a cancelled
   * request's handle is cleaned up, not reused) */
  stats_of(f, &st);
  assert_int_equal(st.handles, 2);
  assert_int_equal(st.cancelled, 2);
  pc_http_stats_free(&st);
  pc_http_request_cancel(last);
  assert_int_equal(d[0].calls + d[1].calls + d[4].calls, 0);

  /* Closing the session with one request in libcurl and three queued:
   * one handle made, no callback, nothing leaked (ASan, valgrind). */
  session_with(f, 1, 0);
  for (int i = 0; i < 4; i++)
    start(f, &sp, &d[i]);
  for (int i = 0; i < 5; i++)
    uv_run(&f->loop, UV_RUN_NOWAIT);
  stats_of(f, &st);
  assert_int_equal(st.handles, 1);
  pc_http_stats_free(&st);
  session_with(f, 1, 0);
  for (int i = 0; i < 4; i++)
    assert_int_equal(d[i].calls, 0);
  server_stop(&quiet);
}

/* Queued requests are admitted first in first out, each with what its own
 * spec said when it started (the spec's memory is gone by then: the
 * request keeps a copy); and a handle reused after a request with a body,
 * headers, credentials and a cookie sends none of them with the next. */
static void test_queue_order_and_reuse(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  enum { N = 8 };
  struct ordered o[N];
  memset(o, 0, sizeof o);
  int seq = 0;
  session_with(f, 1, 0);
  char *err = NULL;
  for (int i = 0; i < N; i++) {
    char body[32], hval[32], url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/echo", srv.port);
    snprintf(body, sizeof body, "body-%d", i);
    snprintf(hval, sizeof hval, "h%d", i);
    struct pc_http_header h = {"X-Order", 7, hval, strlen(hval)};
    struct pc_http_spec sp;
    pc_http_spec_init(&sp);
    sp.url = url;
    sp.method = i % 2 ? PC_HTTP_PUT : PC_HTTP_POST;
    sp.has_body = true;
    sp.body = body;
    sp.body_len = strlen(body);
    sp.headers = &h;
    sp.nheaders = 1;
    o[i].seq = &seq;
    assert_int_equal(pc_http_request_start(f->s, &sp, on_done_ordered, &o[i], NULL, &err), 0);
    memset(body, 'z', sizeof body); /* the spec's memory changes under the queued request */
    memset(hval, 'z', sizeof hval);
    memset(url, 'z', sizeof url - 1);
  }
  for (int i = 0; i < N; i++) {
    wait_done(f, &o[i].d);
    assert_int_equal(o[i].at, i + 1);
    assert_int_equal(o[i].d.status, 200);
    char line[64];
    snprintf(line, sizeof line, "%s /echo\n", i % 2 ? "PUT" : "POST");
    assert_true(echo_has(&o[i].d, line));
    snprintf(line, sizeof line, "X-Order: h%d\n", i);
    assert_true(echo_has(&o[i].d, line));
    snprintf(line, sizeof line, "\n\nbody-%d", i);
    assert_true(echo_has(&o[i].d, line));
    done_free(&o[i].d);
  }
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.queued, N - 1);
  assert_int_equal(st.handles, 1); /* one handle, reused by each in turn */
  pc_http_stats_free(&st);

  /* A request with everything, then a plain GET on the same handle. */
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/echo", srv.port);
  const struct pc_http_header hdrs[] = {{"X-Leak", 6, "leaky", 5}};
  sp.method = PC_HTTP_PATCH;
  sp.has_body = true;
  sp.body = "leaked body";
  sp.body_len = 11;
  sp.body_type = "text/x-leak";
  sp.headers = hdrs;
  sp.nheaders = 1;
  sp.auth = PC_HTTP_AUTH_BASIC;
  sp.auth_user = "user";
  sp.auth_password = "pw";
  sp.cookie = "leak=1";
  sp.timeout_ms = 5000;
  sp.connect_timeout_ms = 5000;
  sp.compressed = false;
  run_spec(f, &sp, &d);
  assert_true(echo_has(&d, "PATCH /echo\n"));
  assert_true(echo_has(&d, "X-Leak: leaky\n"));
  assert_true(echo_has(&d, "Authorization: Basic"));
  assert_true(echo_has(&d, "Cookie: leak=1"));
  done_free(&d);
  sp = get_spec("http://127.0.0.1:%d/echo", srv.port);
  run_spec(f, &sp, &d);
  assert_true(echo_has(&d, "GET /echo\n"));
  assert_false(echo_has(&d, "X-Leak"));
  assert_false(echo_has(&d, "leaked body"));
  assert_false(echo_has(&d, "Content-Length"));
  assert_false(echo_has(&d, "Content-Type"));
  assert_false(echo_has(&d, "Authorization"));
  assert_false(echo_has(&d, "Cookie"));
  assert_true(echo_has(&d, "Accept-Encoding: ")); /* compressed again, as by default */
  done_free(&d);
  stats_of(f, &st);
  assert_int_equal(st.handles, 1); /* still the one handle: it was reused */
  pc_http_stats_free(&st);
  server_stop(&srv);
}

/* Without a connection cap, a burst of fresh connections keeps
 * PC_HTTP_NOCAP_KEEP of them for later requests and closes the rest when
 * their transfers end (session.h, "Fresh connections"): a second burst
 * reuses exactly the kept ones and opens the others anew. */
static void test_nocap_keeps_some(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  enum { N = PC_HTTP_NOCAP_KEEP + 20 };
  struct done *d = pc_xcalloc(N, sizeof *d);
  session_with(f, 0, 0);
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/x", srv.port);
  for (int wave = 0; wave < 2; wave++) {
    for (int i = 0; i < N; i++)
      start(f, &sp, &d[i]);
    for (int i = 0; i < N; i++) {
      wait_done(f, &d[i]);
      if (d[i].status != 200)
        fail_msg("wave %d, request %d: %s", wave, i, d[i].error);
      done_free(&d[i]);
    }
    struct pc_http_stats st;
    stats_of(f, &st);
    if (wave == 0) {
      assert_int_equal(st.connections, N);
      assert_int_equal(st.reused, 0);
    } else {
      assert_int_equal(st.reused, PC_HTTP_NOCAP_KEEP);
      assert_int_equal(st.connections, N + 20);
    }
    pc_http_stats_free(&st);
  }
  free(d);
  server_stop(&srv);
}

/* ================================================================ names */

/* Runs the loop once at a time until *v (a dns_ counter) reaches want, for
 * at most 10 s. */
static void run_until_dns(struct fx *f, const int *v, int want)
{
  uint64_t t0 = uv_hrtime();
  while (dns_get(v) < want && uv_hrtime() - t0 < 10000000000ull) {
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_int_equal(dns_get(v), want);
}

/* Which URLs make pacer resolve a name: not an address in any form, not
 * localhost, not a URL a proxy of the environment may carry, not what
 * libcurl would refuse; the name lower-cased, the port defaulted. */
static void test_resolve_target(void **state)
{
  (void)state;
  char host[256];
  int port = 0;
  const char *none[] = {"http://127.0.0.1:8080/", "http://127.1/", "http://2130706433/",
                        "http://0x7f.0.0.1/", "http://[::1]:80/", "http://localhost:80/",
                        "http://LocalHost/", "http://api.localhost/x", "ftp://example.com/",
                        "http://exa%6dple.com/", "http://a@b@example.com/", "http://example.com:0/",
                        "http://example.com:99999/", "http://example.com:8x/", "http:///x"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(none); i++)
    if (pc_http__resolve_target(none[i], 0, host, sizeof host, &port))
      fail_msg("%s: resolved as %s", none[i], host);
  assert_true(pc_http__resolve_target("http://Example.COM/x", 0, host, sizeof host, &port));
  assert_string_equal(host, "example.com");
  assert_int_equal(port, 80);
  assert_true(pc_http__resolve_target("HTTPS://u:p@h.pacer.test:8443?q#f", 0, host, sizeof host,
                                      &port));
  assert_string_equal(host, "h.pacer.test");
  assert_int_equal(port, 8443);
  assert_true(pc_http__resolve_target("https://h.test/", 0, host, sizeof host, &port));
  assert_int_equal(port, 443);
  /* A proxy for the scheme: libcurl's; one for the other scheme: pacer's. */
  assert_false(pc_http__resolve_target("http://h.test/", 1, host, sizeof host, &port));
  assert_true(pc_http__resolve_target("http://h.test/", 2, host, sizeof host, &port));
  assert_false(pc_http__resolve_target("https://h.test/", 2, host, sizeof host, &port));
  assert_true(pc_http__resolve_target("https://h.test/", 1, host, sizeof host, &port));
}

struct answer {
  int calls, err;
  char *resolve;
};

/* A lookup and where its answer goes. */
struct waiter {
  struct pc_http_lookup lk;
  struct answer *a;
};

static void on_answer(struct pc_http_lookup *lk, int err, const char *resolve)
{
  struct answer *a = PC_CONTAINER_OF(lk, struct waiter, lk)->a;
  a->calls++;
  a->err = err;
  a->resolve = resolve ? pc_xstrdup(resolve) : NULL;
}

/* The resolver by itself: both families of a dual-stack name go into the
 * entry for libcurl (IPv6 in brackets), in getaddrinfo's order; a second
 * ask is READY with the same entry, then (handed) NONE; a failed name is
 * an error; addresses and localhost never make a lookup. */
static void test_resolver_answers(void **state)
{
  struct fx *f = *state;
  dns_reset();
  struct pc_http_resolver *r = pc_http_resolver_new(&f->loop);
  assert_non_null(r);
  struct answer a = {0};
  struct waiter w = {.a = &a};
  const char *resolve = NULL;
  assert_int_equal(pc_http_resolver_start(r, "http://both.pacer.test:81/", -1, &w.lk, on_answer,
                                          &resolve),
                   PC_HTTP_RESOLVE_WAIT);
  while (a.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(a.err, 0);
  int fd = socket(AF_INET6, SOCK_DGRAM, 0);
  if (fd >= 0) {
    close(fd);
    assert_string_equal(a.resolve, "+both.pacer.test:81:[::1],127.0.0.1");
  } else {
    assert_string_equal(a.resolve, "+both.pacer.test:81:127.0.0.1");
  }
  /* The waiter carried it: libcurl has it. */
  struct waiter w2 = {.a = &a};
  assert_int_equal(pc_http_resolver_start(r, "http://BOTH.pacer.test:81/y", -1, &w2.lk,
                                          on_answer, &resolve),
                   PC_HTTP_RESOLVE_NONE);
  /* A transfer stopped before libcurl read it: handed again, once. */
  pc_http_resolver_not_handed(r, a.resolve);
  assert_int_equal(pc_http_resolver_start(r, "http://both.pacer.test:81/y", -1, &w2.lk,
                                          on_answer, &resolve),
                   PC_HTTP_RESOLVE_READY);
  assert_string_equal(resolve, a.resolve);
  assert_int_equal(pc_http_resolver_start(r, "http://both.pacer.test:81/y", -1, &w2.lk,
                                          on_answer, &resolve),
                   PC_HTTP_RESOLVE_NONE);
  free(a.resolve);
  memset(&a, 0, sizeof a);
  assert_int_equal(pc_http_resolver_start(r, "http://fail.pacer.test/", -1, &w.lk, on_answer,
                                          &resolve),
                   PC_HTTP_RESOLVE_WAIT);
  while (a.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(a.err, UV_EAI_NONAME);
  assert_null(a.resolve);
  assert_int_equal(pc_http_resolver_start(r, "http://127.0.0.1:1/", -1, &w.lk, on_answer,
                                          &resolve),
                   PC_HTTP_RESOLVE_NONE);
  assert_int_equal(pc_http_resolver_start(r, "http://localhost:1/", -1, &w.lk, on_answer,
                                          &resolve),
                   PC_HTTP_RESOLVE_NONE);
  struct pc_http_resolver_stats rs;
  pc_http_resolver_stats(r, &rs);
  assert_int_equal(rs.lookups, 2);
  assert_int_equal(dns_get(&dns_calls), 2);
  pc_http_resolver_close(r);
  uv_run(&f->loop, UV_RUN_DEFAULT);

  /* A proxy of the environment for http: its URLs are libcurl's (which
   * resolves the proxy's name, or lets the proxy resolve), https ones
   * still pacer's. */
  setenv("http_proxy", "http://127.0.0.1:9", 1);
  r = pc_http_resolver_new(&f->loop);
  unsetenv("http_proxy");
  assert_int_equal(pc_http_resolver_start(r, "http://p.pacer.test/", -1, &w.lk, on_answer,
                                          &resolve),
                   PC_HTTP_RESOLVE_NONE);
  assert_int_equal(pc_http_resolver_start(r, "https://p.pacer.test/", -1, &w.lk, on_answer,
                                          &resolve),
                   PC_HTTP_RESOLVE_WAIT);
  pc_http_resolver_abandon(r, &w.lk);
  pc_http_resolver_close(r);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  dns_wait_idle();
}

/* Requests to one name at once make one lookup; the next request finds
 * it in libcurl's cache; addresses and localhost make none. The answer of
 * a dual-stack name carries both families: the server listens on
 * 127.0.0.1 only, so the IPv4 address given after ::1 is the one that
 * works. */
static void test_names_one_lookup(void **state)
{
  struct fx *f = *state;
  dns_reset();
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  struct done d[5] = {{0}};
  for (int i = 0; i < 5; i++) {
    struct pc_http_spec sp = get_spec("http://d50.pacer.test:%d/x", srv.port);
    start(f, &sp, &d[i]);
  }
  for (int i = 0; i < 5; i++) {
    wait_done(f, &d[i]);
    assert_int_equal(d[i].status, 200);
    assert_true(d[i].timing.dns >= 40 && d[i].timing.total >= d[i].timing.dns);
    done_free(&d[i]);
  }
  const char *again[] = {"d50.pacer.test", "127.0.0.1", "localhost", "both.pacer.test"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(again); i++) {
    struct pc_http_spec sp = get_spec("http://%s:%d/x", again[i], srv.port);
    run_spec(f, &sp, &d[0]);
    if (d[0].status != 200)
      fail_msg("%s: %s", again[i], d[0].error);
    done_free(&d[0]);
  }
  assert_int_equal(dns_get(&dns_calls), 2);
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.lookups, 2);
  assert_int_equal(st.requests, 9);
  pc_http_stats_free(&st);
  server_stop(&srv);
}

/* A name that does not resolve, and one slower than the request's bound:
 * clear failures, the bound kept while the name server still thinks. */
static void test_names_fail_and_bound(void **state)
{
  struct fx *f = *state;
  dns_reset();
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://fail.pacer.test:9/");
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_NETWORK);
  assert_non_null(strstr(d.error, "could not resolve host fail.pacer.test"));
  assert_true(d.nothing_sent);
  done_free(&d);
  sp = get_spec("http://d1500.pacer.test:9/");
  sp.connect_timeout_ms = 100;
  uint64_t t0 = uv_hrtime();
  run_spec(f, &sp, &d);
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  assert_int_equal(d.fail, PC_FAIL_TIMEOUT);
  assert_non_null(strstr(d.error, "within 100ms (connect_timeout)"));
  assert_true(ms < 1000); /* the name server takes 1.5 s */
  /* (The lookup may not even have begun: a thread that had not taken it
   * when the bound passed finds it dropped.) */
  assert_true(dns_get(&dns_calls) <= 2); /* fail..., then d1500... */
  done_free(&d);
  dns_wait_idle();
}

/* A redirect from an address to a name: the next hop waits for the lookup
 * (one), its time counts in the timing, and the result names the hop;
 * a redirect to a name that does not resolve fails with that name. */
static void test_redirect_to_name(void **state)
{
  struct fx *f = *state;
  dns_reset();
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  struct done d = {0};
  struct pc_http_spec sp = get_spec("http://127.0.0.1:%d/r/302?to=http://d50.pacer.test:%d/x",
                                    srv.port, srv.port);
  run_spec(f, &sp, &d);
  assert_int_equal(d.status, 200);
  assert_int_equal(d.nredirects, 1);
  char *want = pc_asprintf("http://d50.pacer.test:%d/x", srv.port);
  assert_string_equal(d.final_url, want);
  free(want);
  assert_true(d.timing.dns >= 40 && d.timing.total >= d.timing.dns);
  assert_int_equal(dns_get(&dns_calls), 1);
  done_free(&d);
  sp = get_spec("http://127.0.0.1:%d/r/302?to=http://fail.pacer.test:%d/x", srv.port, srv.port);
  run_spec(f, &sp, &d);
  assert_int_equal(d.fail, PC_FAIL_NETWORK);
  assert_non_null(strstr(d.error, "could not resolve host fail.pacer.test"));
  done_free(&d);
  server_stop(&srv);
}

/* Cancelling a request, and closing the session, while its name is being
 * looked up return at once: nothing waits for the lookup's thread, which
 * ends by itself later (freeing what it holds: the sanitizer build checks
 * it touches nothing freed). */
static void test_cancel_while_resolving(void **state)
{
  struct fx *f = *state;
  dns_reset();
  dns_hold();
  struct done d = {0}, d2 = {0};
  struct pc_http_spec sp = get_spec("http://hold1.pacer.test:9/");
  struct pc_http_request *r = start(f, &sp, &d);
  run_until_dns(f, &dns_running, 1);
  uint64_t t0 = uv_hrtime();
  pc_http_request_cancel(r);
  uv_run(&f->loop, UV_RUN_DEFAULT); /* nothing keeps the loop: the lookup is abandoned */
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  assert_true(ms < 2000); /* the lookup is held: waiting for it never ends */
  assert_int_equal(d.calls, 0);
  assert_int_equal(dns_get(&dns_running), 1);

  sp = get_spec("http://hold2.pacer.test:9/");
  start(f, &sp, &d2);
  run_until_dns(f, &dns_running, 2);
  t0 = uv_hrtime();
  pc_http_session_close(f->s);
  f->s = NULL;
  uv_run(&f->loop, UV_RUN_DEFAULT);
  ms = (double)(uv_hrtime() - t0) / 1e6;
  assert_true(ms < 2000);
  assert_int_equal(d2.calls, 0);
  assert_int_equal(dns_get(&dns_running), 2);
  dns_release();
  dns_wait_idle();
  assert_int_equal(dns_get(&dns_calls), 2);
}

/* Forty names at once: at most PC_HTTP_RESOLVER_THREADS lookups run, the
 * others wait for a thread, and every request ends well. */
static void test_lookup_threads_bounded(void **state)
{
  struct fx *f = *state;
  dns_reset();
  dns_hold();
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  enum { N = 40 };
  struct done d[N];
  memset(d, 0, sizeof d);
  for (int i = 0; i < N; i++) {
    struct pc_http_spec sp = get_spec("http://hold%d.pacer.test:%d/x", i, srv.port);
    start(f, &sp, &d[i]);
  }
  run_until_dns(f, &dns_running, PC_HTTP_RESOLVER_THREADS);
  for (int i = 0; i < 50; i++) { /* time for a 17th thread to show */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    usleep(1000);
  }
  assert_int_equal(dns_get(&dns_max), PC_HTTP_RESOLVER_THREADS);
  dns_release();
  for (int i = 0; i < N; i++) {
    wait_done(f, &d[i]);
    if (d[i].status != 200)
      fail_msg("hold%d: %s", i, d[i].error);
    done_free(&d[i]);
  }
  assert_int_equal(dns_get(&dns_calls), N);
  assert_int_equal(dns_get(&dns_max), PC_HTTP_RESOLVER_THREADS);
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.lookups, N);
  assert_int_equal(st.lookup_threads, PC_HTTP_RESOLVER_THREADS);
  pc_http_stats_free(&st);
  server_stop(&srv);
  dns_wait_idle();
}

/* ========================================================= start errors */

static void test_start_errors(void **state)
{
  struct fx *f = *state;
  char dir[] = "/tmp/pacer-test-http-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *fifo = pc_asprintf("%s/fifo", dir);
  assert_int_equal(mkfifo(fifo, 0600), 0);
  char *missing = pc_asprintf("%s/missing.pem", dir);
  struct {
    const char *ca_file, *save_to, *msg;
  } cases[] = {
      {fifo, NULL, "is not a regular file (a FIFO); name a PEM file of CA certificates"},
      {dir, NULL, "is not a regular file (a directory)"},
      {missing, NULL, "http.ca_file: cannot read"},
      {NULL, "", "http.save_to: the path is empty"},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    struct pc_http_spec sp = get_spec("https://127.0.0.1:9/");
    sp.ca_file = cases[i].ca_file;
    sp.save_to = cases[i].save_to;
    struct done d = {0};
    char *err = NULL;
    assert_int_equal(pc_http_request_start(f->s, &sp, on_done, &d, NULL, &err), -1);
    if (!strstr(err, cases[i].msg))
      fail_msg("case %zu: \"%s\"", i, err);
    free(err);
  }
  uv_run(&f->loop, UV_RUN_NOWAIT);
  struct pc_http_stats st;
  stats_of(f, &st);
  assert_int_equal(st.requests + st.cancelled, 0);
  pc_http_stats_free(&st);
  unlink(fifo);
  rmdir(dir);
  free(fifo);
  free(missing);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_response_and_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_idle_hang_up, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_stats, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keepalive_reset_retried, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_every_moment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_at_every_moment, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_methods, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_headers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_file_auth_cookie, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_response_bytes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_header_limit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_save_to, setup, teardown),
      cmocka_unit_test_setup_teardown(test_request_headers_and_body, setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_admission, setup, teardown),
    cmocka_unit_test_setup_teardown(test_queue_no_handle, setup, teardown),
    cmocka_unit_test_setup_teardown(test_queue_order_and_reuse, setup, teardown),
    cmocka_unit_test_setup_teardown(test_nocap_keeps_some, setup, teardown),
      cmocka_unit_test(test_resolve_target),
      cmocka_unit_test_setup_teardown(test_resolver_answers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_names_one_lookup, setup, teardown),
      cmocka_unit_test_setup_teardown(test_names_fail_and_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_redirect_to_name, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel_while_resolving, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lookup_threads_bounded, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
