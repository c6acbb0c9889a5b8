/* redisbucket.c: the shared pool budget of redisbucket.h: a GCRA bucket in
 * Redis, reached through hiredis's async API on the run's libuv loop.
 *
 * States: resolving the host (uv_getaddrinfo), connected (hiredis has its
 * own connect phase; commands sent meanwhile are buffered and go out once
 * it completes), failed, closing. At most one call is outstanding, because
 * the pool has at most one request outstanding. One timer serves each
 * call: first it puts the call off to the next loop turn (on_send), then it
 * bounds it (on_timeout, the connection included). The first call of a
 * connection is EVALSHA; a Redis without the script (a fresh or restarted
 * one) answers NOSCRIPT, and the call is made again with EVAL. Every failure goes through fail(), which
 * warns once, tells the pool once, and lets go of the connection.
 *
 * Who frees the hiredis context: hiredis itself, after a failed connect or
 * a lost connection (it calls the reply callbacks with a NULL reply, then
 * the disconnect callback, then frees); we, with redisAsyncFree, on a
 * timeout, an error reply or close. The libuv adapter's cleanup closes its
 * uv_poll before hiredis closes the socket, so libuv never watches a
 * descriptor that was closed behind its back (see STYLE.md). b->ac is
 * NULL from the moment either side starts freeing it. */
#include "base/redisbucket.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libuv.h>
#include <nettle/sha1.h>

#include "base/log.h"
#include "base/redact.h"
#include "base/util.h"

/* KEYS[1]: the bucket. ARGV: the interval between tokens (µs), the burst,
 * how many tokens are wanted, the horizon (µs), a pause (µs, 0: none).
 * The bucket's state is its theoretical arrival time (TAT, µs on Redis's
 * clock), which expires when idle. A pause (a server's Retry-After seen by
 * one process) moves the TAT so that no token falls due before the pause
 * ends, for every process that shares the bucket; it is applied in the
 * same script, before the tokens are counted, so no call sees half of it.
 * Returns {granted, first}: `granted` tokens reserved, the first due
 * `first` µs from now (<= 0: at once), the next ones every interval; or
 * {0, first} when none falls due within the horizon (or none is wanted: a
 * call that only pauses). At most a quarter of the horizon's worth per
 * call, so that the process that calls first cannot take the whole
 * horizon from the others. */
static const char script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local T = tonumber(ARGV[1])\n"
    "local tau = (tonumber(ARGV[2]) - 1) * T\n"
    "local want = tonumber(ARGV[3])\n"
    "local horizon = tonumber(ARGV[4])\n"
    "local pause = tonumber(ARGV[5]) or 0\n"
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
    "if tat < now then tat = now end\n"
    "local set = false\n"
    "if pause > 0 and tat < now + pause + tau then\n"
    "  tat = now + pause + tau\n"
    "  set = true\n"
    "end\n"
    "local first = tat - tau - now\n"
    "local n = 0\n"
    "if first <= horizon and want > 0 then\n"
    "  n = math.floor((horizon - first) / T) + 1\n"
    "  local cap = math.max(1, math.floor(horizon / 4 / T))\n"
    "  if n > cap then n = cap end\n"
    "  if n > want then n = want end\n"
    "  tat = tat + n * T\n"
    "  set = true\n"
    "end\n"
    "if set then\n"
    "  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX',\n"
    "             math.floor((tat - now) / 1000) + 1000)\n"
    "end\n"
    "return {n, math.floor(first)}\n";

struct pc_redis_bucket {
  struct pc_pool_source src;  /* what the pool sees */
  uv_loop_t *loop;
  const char *name;           /* borrowed: the pool's name */
  char *url;                  /* as written (messages redact its password) */
  struct pc_redis_url u;
  char sha[41];               /* SHA-1 of the script, for EVALSHA */
  redisAsyncContext *ac;      /* NULL until connecting, and once let go */
  uv_getaddrinfo_t resolve;
  bool resolving;
  uv_timer_t timer;           /* bounds the outstanding call */
  bool asked;                 /* the pool waits for an answer */
  bool failed, closing, timer_closed;
  double interval_us;         /* the shared budget's rate and burst */
  int burst;
  double pause_us;            /* a pause not sent yet (0: none) */
  double call_pause_us;       /* the pause the outstanding token call carries */
  double last_pause_us;       /* the pause a pause-only call carries (for its resend) */
};

/* ============================================================ the URL */

void pc_redis_url_free(struct pc_redis_url *u)
{
  free(u->user);
  free(u->password);
  free(u->host);
  free(u->key);
  memset(u, 0, sizeof *u);
}

int pc_redis_url_parse(const char *url, struct pc_redis_url *u, char **err)
{
  static const char scheme[] = "redis://";
  memset(u, 0, sizeof *u);
  /* Messages name the URL with the password replaced. */
  if (strncmp(url, scheme, sizeof scheme - 1) != 0) {
    *err = pc_xstrdup("expected redis://HOST:PORT/KEY");
    return -1;
  }
  const char *a = url + sizeof scheme - 1, *slash = strchr(a, '/');
  if (!slash || !slash[1]) {
    *err = pc_xstrdup("the URL names no key: redis://HOST:PORT/KEY");
    return -1;
  }
  /* The last '@' before the key ends the userinfo (a password may hold '@'). */
  const char *at = NULL;
  for (const char *q = a; q < slash; q++)
    if (*q == '@')
      at = q;
  if (at) {
    const char *colon = memchr(a, ':', (size_t)(at - a));
    if (!colon) {
      *err = pc_xstrdup("expected USER:PASSWORD@ or :PASSWORD@ before the host");
      return -1;
    }
    if (colon > a)
      u->user = pc_xstrndup(a, (size_t)(colon - a));
    u->password = pc_xstrndup(colon + 1, (size_t)(at - colon - 1));
    a = at + 1;
  }
  const char *h = a, *hend, *p;
  if (*a == '[') {
    h = a + 1;
    hend = memchr(h, ']', (size_t)(slash - h));
    if (!hend) {
      *err = pc_xstrdup("unclosed [ in the host");
      goto bad;
    }
    p = hend + 1;
  } else {
    hend = memchr(a, ':', (size_t)(slash - a));
    if (!hend)
      hend = slash;
    p = hend;
  }
  if (hend == h) {
    *err = pc_xstrdup("the URL names no host");
    goto bad;
  }
  u->port = 6379;
  if (p < slash) {
    if (*p != ':' || p + 1 == slash) {
      *err = pc_xstrdup("expected :PORT after the host");
      goto bad;
    }
    long v = 0;
    for (const char *q = p + 1; q < slash; q++) {
      if (*q < '0' || *q > '9' || (v = v * 10 + (*q - '0')) > 65535) {
        v = 0;
        break;
      }
    }
    if (v < 1) {
      *err = pc_xstrdup("the port must be a number from 1 to 65535");
      goto bad;
    }
    u->port = (int)v;
  }
  u->host = pc_xstrndup(h, (size_t)(hend - h));
  u->key = pc_xstrdup(slash + 1);
  return 0;
bad:
  pc_redis_url_free(u);
  return -1;
}

/* ========================================================== the calls */

static void maybe_free(struct pc_redis_bucket *b)
{
  if (!b->closing || !b->timer_closed || b->resolving || b->ac)
    return;
  free(b->url);
  pc_redis_url_free(&b->u);
  free(b);
}

/* Lets go of the connection. Not while hiredis is freeing it itself. */
static void drop_connection(struct pc_redis_bucket *b)
{
  redisAsyncContext *ac = b->ac;
  b->ac = NULL;
  if (ac) {
    ac->data = NULL;
    redisAsyncFree(ac); /* deferred by hiredis when inside one of its callbacks */
  }
}

static void answer(struct pc_redis_bucket *b, int count, double first_ms, double interval_ms)
{
  if (!b->asked || b->closing)
    return;
  b->asked = false;
  uv_timer_stop(&b->timer);
  pc_pool_source_answer(b->src.pool, count, first_ms, interval_ms);
}

static void on_timeout(uv_timer_t *t);
static void send_call(struct pc_redis_bucket *b, bool eval);

/* Redis cannot be used: warn once, tell the pool, let go. `ours`: the
 * connection is still ours to free (not during hiredis's own teardown). */
static void fail(struct pc_redis_bucket *b, const char *why, bool ours)
{
  if (b->failed || b->closing)
    return;
  b->failed = true;
  pc_log(PC_LOG_WARN, NULL,
         "pool \"%s\": the shared budget %s cannot be used (%s); the pool keeps to its own "
         "rate from now on",
         b->name, b->url, why);
  if (ours)
    drop_connection(b);
  else
    b->ac = NULL;
  answer(b, -1, 0, 0);
}

static void on_timeout(uv_timer_t *t)
{
  struct pc_redis_bucket *b = t->data;
  char why[64];
  snprintf(why, sizeof why, "no answer within %d ms", PC_REDIS_TIMEOUT_MS);
  fail(b, why, true);
}

/* The reply a callback acts on, or NULL when there is none to act on: the
 * bucket is closing or has failed, or the connection is going (no reply:
 * hiredis frees it), which is the bucket's failure. */
static redisReply *reply_of(struct pc_redis_bucket *b, redisAsyncContext *ac, void *r)
{
  if (b->closing || b->failed)
    return NULL;
  if (!r)
    fail(b, ac->errstr[0] ? ac->errstr : "the connection was lost", false);
  return r;
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
  struct pc_redis_bucket *b = privdata;
  redisReply *reply = reply_of(b, ac, r);
  if (!reply)
    return;
  if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
    send_call(b, true); /* the script is not cached (a restart, SCRIPT FLUSH): EVAL loads it */
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    fail(b, reply->str, true);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
      reply->element[0]->type != REDIS_REPLY_INTEGER ||
      reply->element[1]->type != REDIS_REPLY_INTEGER) {
    fail(b, "an unexpected reply from the script", true);
    return;
  }
  long long n = reply->element[0]->integer, first = reply->element[1]->integer;
  if (n > 0)
    answer(b, (int)n, (double)first / 1000.0, b->interval_us / 1000.0);
  else /* none within the horizon: ask again once half of it is free, so that
        * the next call reserves a batch rather than one token; a little
        * later at random, or the processes that share the budget would all
        * call at the same moment, and the same one might always win */
    answer(b, 0,
           (double)first / 1000.0 - PC_REDIS_HORIZON_MS / 2.0 +
               (double)rand() / RAND_MAX * PC_REDIS_HORIZON_MS / 4.0,
           0);
}

static void on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
  struct pc_redis_bucket *b = privdata;
  redisReply *reply = reply_of(b, ac, r);
  if (!reply)
    return;
  if (reply->type == REDIS_REPLY_ERROR) {
    char why[200];
    snprintf(why, sizeof why, "AUTH: %s", reply->str);
    fail(b, why, true);
  }
}

static void send_call(struct pc_redis_bucket *b, bool eval)
{
  char interval[32], burst[16], want[16], horizon[16], pause[32];
  snprintf(interval, sizeof interval, "%.3f", b->interval_us);
  snprintf(burst, sizeof burst, "%d", b->burst);
  snprintf(want, sizeof want, "%u", pc_pool_source_wanted(b->src.pool));
  snprintf(horizon, sizeof horizon, "%d", PC_REDIS_HORIZON_MS * 1000);
  if (!eval) { /* a resend after NOSCRIPT carries the same pause */
    b->call_pause_us = b->pause_us;
    b->pause_us = 0;
  }
  snprintf(pause, sizeof pause, "%.0f", b->call_pause_us);
  const char *argv[] = {eval ? "EVAL" : "EVALSHA", eval ? script : b->sha, "1", b->u.key,
                        interval, burst, want, horizon, pause};
  size_t lens[PC_ARRAY_SIZE(argv)];
  for (size_t i = 0; i < PC_ARRAY_SIZE(argv); i++)
    lens[i] = strlen(argv[i]);
  if (redisAsyncCommandArgv(b->ac, on_reply, b, (int)PC_ARRAY_SIZE(argv), argv, lens) != REDIS_OK)
    fail(b, b->ac->errstr[0] ? b->ac->errstr : "cannot send the call", true);
  else
    uv_timer_start(&b->timer, on_timeout, PC_REDIS_TIMEOUT_MS, 0);
}

/* The timer's first use for a request: the call goes out on the next loop
 * turn, when the waiters queued in this one are counted (pool.h), and the
 * pool is never answered from inside request(). */
static void on_send(uv_timer_t *t)
{
  struct pc_redis_bucket *b = t->data;
  if (b->failed) {
    answer(b, -1, 0, 0);
    return;
  }
  if (!b->ac) { /* still resolving: the call goes out once connecting */
    uv_timer_start(&b->timer, on_timeout, PC_REDIS_TIMEOUT_MS, 0);
    return;
  }
  send_call(b, false);
}

/* The reply to a call that only pauses: nothing to hand the pool. A
 * NOSCRIPT (the first call of a connection may be this one) sends it
 * again with EVAL; a lost connection or an error is the bucket's failure
 * (the pool keeps its own pause either way). */
static void send_pause(struct pc_redis_bucket *b, bool eval);

static void on_pause_reply(redisAsyncContext *ac, void *r, void *privdata)
{
  struct pc_redis_bucket *b = privdata;
  redisReply *reply = reply_of(b, ac, r);
  if (!reply)
    return;
  if (reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0) {
    send_pause(b, true);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR)
    fail(b, reply->str, true);
}

static void send_pause(struct pc_redis_bucket *b, bool eval)
{
  char interval[32], burst[16], pause[32], horizon[16];
  snprintf(interval, sizeof interval, "%.3f", b->interval_us);
  snprintf(burst, sizeof burst, "%d", b->burst);
  snprintf(horizon, sizeof horizon, "%d", PC_REDIS_HORIZON_MS * 1000);
  snprintf(pause, sizeof pause, "%.0f", b->last_pause_us);
  const char *argv[] = {eval ? "EVAL" : "EVALSHA", eval ? script : b->sha, "1", b->u.key,
                        interval, burst, "0", horizon, pause};
  size_t lens[PC_ARRAY_SIZE(argv)];
  for (size_t i = 0; i < PC_ARRAY_SIZE(argv); i++)
    lens[i] = strlen(argv[i]);
  if (redisAsyncCommandArgv(b->ac, on_pause_reply, b, (int)PC_ARRAY_SIZE(argv), argv, lens) !=
      REDIS_OK)
    fail(b, b->ac->errstr[0] ? b->ac->errstr : "cannot send the call", true);
}

/* The pool was paused: the bucket's TAT moves past the pause at once (a
 * call of its own, pipelined behind any call outstanding), or with the
 * first call once connected. */
static void pause_source(struct pc_pool_source *src, double ms)
{
  struct pc_redis_bucket *b = PC_CONTAINER_OF(src, struct pc_redis_bucket, src);
  if (b->failed || b->closing)
    return;
  b->pause_us = ms * 1000.0;
  if (!b->ac)
    return; /* still resolving: send_call carries it */
  b->last_pause_us = b->pause_us;
  b->pause_us = 0;
  send_pause(b, false);
}

static void request(struct pc_pool_source *src)
{
  struct pc_redis_bucket *b = PC_CONTAINER_OF(src, struct pc_redis_bucket, src);
  b->asked = true;
  uv_timer_start(&b->timer, on_send, 0, 0);
}

/* ===================================================== the connection */

/* hiredis 0.14's libuv adapter drops a poll error (libuv reports POLLERR,
 * e.g. a refused connect, as status UV_EBADF with the handle stopped), and
 * the call would then wait for the timeout. These wrap the adapter's
 * watchers and put our poll callback in place of its own, which hands an
 * error to hiredis as the event it is: a write while connecting (hiredis
 * then reads the socket's error: the connect failed) or a read (the read
 * fails: the connection is lost). Everything else goes to the adapter. */
static void on_poll(uv_poll_t *h, int status, int events)
{
  redisLibuvEvents *p = h->data;
  if (status == 0) {
    redisLibuvPoll(h, status, events);
    return;
  }
  redisAsyncContext *ac = p->context;
  if (!ac)
    return;
  if (!(ac->c.flags & REDIS_CONNECTED))
    redisAsyncHandleWrite(ac);
  else
    redisAsyncHandleRead(ac);
}

static void rewatch(void *privdata)
{
  redisLibuvEvents *p = privdata;
  if (p->events)
    uv_poll_start(&p->handle, p->events, on_poll);
}

static void add_read(void *privdata)
{
  redisLibuvAddRead(privdata);
  rewatch(privdata);
}

static void del_read(void *privdata)
{
  redisLibuvDelRead(privdata);
  rewatch(privdata);
}

static void add_write(void *privdata)
{
  redisLibuvAddWrite(privdata);
  rewatch(privdata);
}

static void del_write(void *privdata)
{
  redisLibuvDelWrite(privdata);
  rewatch(privdata);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
  struct pc_redis_bucket *b = ac->data;
  if (b && status != REDIS_OK)
    fail(b, ac->errstr[0] ? ac->errstr : "cannot connect", false); /* hiredis frees it */
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
  struct pc_redis_bucket *b = ac->data;
  if (!b)
    return; /* we let go of it */
  if (status != REDIS_OK)
    fail(b, ac->errstr[0] ? ac->errstr : "the connection was lost", false);
  b->ac = NULL;
  maybe_free(b);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
  struct pc_redis_bucket *b = req->data;
  b->resolving = false;
  if (b->closing || b->failed || status < 0 || !res) {
    if (!b->closing && !b->failed) {
      char why[160];
      snprintf(why, sizeof why, "cannot resolve %s: %s", b->u.host,
               status < 0 ? uv_strerror(status) : "no address");
      fail(b, why, true);
    }
    uv_freeaddrinfo(res);
    maybe_free(b);
    return;
  }
  char ip[64] = "";
  if (res->ai_family == AF_INET6)
    uv_ip6_name((const struct sockaddr_in6 *)res->ai_addr, ip, sizeof ip);
  else
    uv_ip4_name((const struct sockaddr_in *)res->ai_addr, ip, sizeof ip);
  uv_freeaddrinfo(res);
  redisAsyncContext *ac = redisAsyncConnect(ip, b->u.port);
  if (!ac || ac->err) {
    char why[160];
    snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
    if (ac)
      redisAsyncFree(ac);
    fail(b, why, true);
    return;
  }
  if (redisLibuvAttach(ac, b->loop) != REDIS_OK) {
    redisAsyncFree(ac);
    fail(b, "cannot watch the connection", true);
    return;
  }
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  /* hiredis does not make its socket close-on-exec; exec steps must not
   * inherit it. The loop's thread is the one that spawns, so no child can
   * be forked in between. */
  int fl = fcntl(ac->c.fd, F_GETFD);
  if (fl >= 0)
    fcntl(ac->c.fd, F_SETFD, fl | FD_CLOEXEC);
  ac->data = b;
  b->ac = ac;
  redisAsyncSetConnectCallback(ac, on_connect);
  redisAsyncSetDisconnectCallback(ac, on_disconnect);
  if (b->u.password) {
    /* Sent first; hiredis queues the calls behind it in order. */
    const char *argv[3] = {"AUTH"};
    size_t lens[3] = {4};
    int argc = 1;
    if (b->u.user) {
      argv[argc] = b->u.user;
      lens[argc++] = strlen(b->u.user);
    }
    argv[argc] = b->u.password;
    lens[argc++] = strlen(b->u.password);
    if (redisAsyncCommandArgv(ac, on_auth, b, argc, argv, lens) != REDIS_OK) {
      fail(b, "cannot send AUTH", true);
      return;
    }
  }
  if (b->asked)
    send_call(b, false);
}

static void on_timer_closed(uv_handle_t *h)
{
  struct pc_redis_bucket *b = h->data;
  b->timer_closed = true;
  maybe_free(b);
}

struct pc_redis_bucket *pc_redis_bucket_start(uv_loop_t *loop, struct pc_pool *p,
                                              const char *name, const char *url,
                                              const struct pc_pool_limits *budget)
{
  struct pc_redis_bucket *b = pc_xcalloc(1, sizeof *b);
  b->loop = loop;
  b->name = name;
  b->url = pc_xstrdup(url);
  b->src.request = request;
  b->src.pause = pause_source;
  b->interval_us = 1e6 / budget->rate;
  b->burst = budget->burst > 0 ? budget->burst : 1;
  uv_timer_init(loop, &b->timer);
  b->timer.data = b;
  /* The script's SHA-1, as Redis names it for EVALSHA. */
  struct sha1_ctx c;
  uint8_t d[SHA1_DIGEST_SIZE];
  sha1_init(&c);
  sha1_update(&c, sizeof script - 1, (const uint8_t *)script);
  sha1_digest(&c, sizeof d, d);
  for (size_t i = 0; i < sizeof d; i++)
    snprintf(b->sha + 2 * i, 3, "%02x", d[i]);
  pc_pool_set_source(p, &b->src);
  char *err = NULL;
  if (pc_redis_url_parse(url, &b->u, &err) != 0) {
    fail(b, err, true); /* the loader checked it: not reached in a run */
    free(err);
    return b;
  }
  if (!b->u.password) {
    const char *env = getenv("REDISCLI_AUTH");
    if (env && *env)
      b->u.password = pc_xstrdup(env);
  }
  if (b->u.password) /* no message may show it, not even a reply quoting it */
    pc_secret_add(b->u.password, strlen(b->u.password));
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  b->resolve.data = b;
  char port[8];
  snprintf(port, sizeof port, "%d", b->u.port);
  int rc = uv_getaddrinfo(loop, &b->resolve, on_resolved, b->u.host, port, &hints);
  if (rc < 0) {
    char why[160];
    snprintf(why, sizeof why, "cannot resolve %s: %s", b->u.host, uv_strerror(rc));
    fail(b, why, true);
  } else {
    b->resolving = true;
  }
  return b;
}

bool pc_redis_bucket_failed(const struct pc_redis_bucket *b)
{
  return b->failed;
}

void pc_redis_bucket_close(struct pc_redis_bucket *b)
{
  if (!b || b->closing)
    return;
  b->closing = true;
  if (b->resolving)
    uv_cancel((uv_req_t *)&b->resolve); /* its callback still comes, with UV_ECANCELED */
  drop_connection(b);
  uv_close((uv_handle_t *)&b->timer, on_timer_closed);
}
