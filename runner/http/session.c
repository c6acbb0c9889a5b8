/* session.c: an HTTP session: one libcurl multi handle driven by a libuv
 * loop, shared by every request of a run.
 *
 * The glue follows curl's multi_socket model (docs/examples/multi-uv.c, with
 * its known gap fixed): libcurl tells us which sockets to watch through the
 * socket callback (one uv_poll_t context per socket, found by descriptor)
 * and when to wake it through the timer callback (one uv_timer_t). Loop
 * events go back to libcurl with curl_multi_socket_action, and after EVERY
 * call the finished transfers are read with curl_multi_info_read. Inside
 * libcurl's callbacks we only record state: requests complete, start and
 * are cancelled from loop callbacks, never from inside libcurl.
 *
 * Easy handles are recycled through a small free list, while connections
 * live in the multi handle's cache, so they are reused by every later
 * request of the run whatever step makes it. Over TLS, HTTP/2 is
 * negotiated and multiplexed (CURLPIPE_MULTIPLEX, CURLOPT_PIPEWAIT).
 *
 * Ownership: the session owns its live requests, its socket contexts and
 * the idle easy handles. The session itself is freed in the close callback
 * of its last uv handle (pending_closes).
 *
 * Sockets: libcurl owns every descriptor it uses, and pacer's close-socket
 * callback is how it closes most of them; libuv only ever watches one
 * through a poll that pacer closes before the descriptor can be closed or
 * its number reused. The rule that makes this hold on every path (open,
 * connect, cancel while connecting or queued, reuse, close, teardown):
 * libcurl (7.88) closes a socket that is still connecting, or lost the
 * happy-eyeballs race, with a plain close() and tells us CURL_POLL_REMOVE
 * only afterwards; so a socket's poll outlives CURL_POLL_REMOVE only once
 * libcurl has asked to read it, which it does only for a connected socket
 * that it will close through the callback. Every other poll is closed on
 * CURL_POLL_REMOVE, still inside the libcurl call that closed the
 * descriptor, before anything else can take its number. Details at struct
 * sock_ctx; docs/http.md, "Sockets". */
#include "http/session.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/rules.h"
#include "http/stats.h"
#include "base/log.h"
#include "base/util.h"

#define FREE_EASY_MAX 64 /* idle easy handles kept for reuse */

struct pc_http_session;
static void transfer_out(struct pc_http_session *s, struct pc_http__transfer *t, bool ran);
static void fresh_settled(struct pc_http_session *s, struct pc_http__transfer *t);

/* ============================================================== sockets */

/* One context per socket libcurl asks us to watch, found by descriptor in
 * the session's table (libcurl's curl_multi_assign pointer is dropped on
 * every CURL_POLL_REMOVE, which a kept-alive connection gets between two
 * requests).
 *
 * Who may close a descriptor, and so when libuv may watch it (the rule in
 * the file's opening comment, in detail). libuv aborts the process if it
 * is asked to watch a descriptor that was closed behind its back: a
 * uv_poll_start is only queued, and the epoll_ctl(ADD or MOD) made at the
 * next loop iteration fails with EBADF; and a poll left on a closed
 * descriptor whose number is reused would take the new owner's events and,
 * when closed, remove the new owner's descriptor from epoll. libcurl 7.88
 * closes its sockets in two ways (lib/cf-socket.c):
 *
 *   - through CURLOPT_CLOSESOCKETFUNCTION (pc_http__close_socket_cb), after
 *     telling us CURL_POLL_REMOVE if we watched it: every socket that is connected
 *     and in use ("active": the happy-eyeballs winner, from the moment its
 *     TCP connect completes), and a socket whose own connect() failed;
 *   - with a plain close() and no callback at all, and only CURL_POLL_REMOVE
 *     *afterwards* (from singlesocket, in the same libcurl call): a socket
 *     still connecting, or one that lost the happy-eyeballs race, when its
 *     transfer is cancelled (curl_multi_remove_handle), times out or gives
 *     up on that address (cf_socket_close of a socket that is not "active").
 *
 * A connecting socket is only ever asked for CURL_POLL_OUT; libcurl asks to
 * read a socket only once it is connected and active. So a context is
 * `trusted` once libcurl has asked for CURL_POLL_IN on a socket that
 * pc_http__open_socket_cb opened: from then on it is closed only through
 * pc_http__close_socket_cb, which closes the poll (libuv forgets the
 * descriptor at once) before it closes the descriptor. Every other context (not trusted
 * yet, or a socket libcurl opened itself: the threaded resolver's socket
 * pair, which libcurl closes right after CURL_POLL_REMOVE) is closed on
 * CURL_POLL_REMOVE, whether or not its descriptor is still open: libcurl
 * has said nothing more will happen on it, and closing the poll of a
 * descriptor that is already closed only costs a failing epoll_ctl(DEL)
 * that libuv ignores, and takes a queued ADD off libuv's queue. Nothing
 * else can take the number between libcurl's close() and its REMOVE: both
 * happen inside one libcurl call, where only libcurl opens descriptors,
 * and a socket it opens comes through pc_http__open_socket_cb, which finds
 * the old context and closes it first.
 *
 * The poll of a context is initialised only when libcurl first asks to
 * watch it (uv_poll_init costs an epoll_ctl ADD and DEL and an ioctl, and
 * closing a poll removes its number from epoll, so a context never has a
 * poll on a descriptor libcurl has not reported). A context that the
 * open-socket callback made but libcurl never watched (it connected, and sent and
 * received everything, within one call; or it was closed silently before
 * it was watched) has no poll; if its number is later reported by
 * libcurl's resolver, which asks only to read, the socket's family tells
 * them apart (one getsockopt, only for a new connection whose first
 * request is to read).
 *
 * A trusted context keeps its poll armed on CURL_POLL_REMOVE, only marked
 * unwanted (and unref'd: an idle connection must not keep the loop
 * running): a reused connection usually asks for the same events again,
 * which then costs no system call at all (uv_poll_start always removes the
 * descriptor from epoll and adds it back, so it is called only when the
 * events change). An event on an unwanted socket (an idle connection the
 * server closed) stops the poll, so it cannot spin the loop; libcurl
 * notices the dead connection when it next picks it. */
struct sock_ctx {
  uv_poll_t poll;            /* initialised only if `polling` was ever set */
  curl_socket_t fd;
  struct pc_http_session *s; /* borrowed: the owner */
  int family;                /* AF_* it was opened with (owned only) */
  int events;                /* UV_READABLE|UV_WRITABLE the poll is armed with */
  int want;                  /* UV_READABLE|UV_WRITABLE libcurl watches now; 0: none */
  bool polling;              /* the poll is initialised and not closing */
  bool owned;                /* opened by pc_http__open_socket_cb */
  bool watched;              /* libcurl has asked to watch it */
  bool trusted;              /* owned and asked to read: closed only by the close callback */
};

struct pc_http_session {
  uv_loop_t *loop; /* borrowed */
  CURLM *multi;
  /* The run's cookie jar (CURL_LOCK_DATA_COOKIE): every request that keeps
   * cookies (spec `cookies`, on by default) attaches its easy handle to it,
   * so a cookie one response sets goes with the next request to its
   * domain, across steps and redirects. One thread uses it: no locks.
   * Cleaned up after the last easy handle (they hold it). NULL if libcurl
   * could not make one: requests then keep no cookies. */
  CURLSH *share;
  uv_timer_t timer;
  bool timer_closing;
  bool in_timer; /* inside on_loop_timer's curl_multi_socket_action */
  struct sock_ctx **socks; /* by descriptor: every socket context not yet closing */
  size_t nsocks;           /* size of socks */
  struct pc_queue live;    /* transfers added: resolving, or in the multi handle (pc_http__transfer.live) */
  struct pc_http_resolver *resolver; /* names, off the loop thread (NULL: libcurl resolves) */
  /* Admission (session.h): transfers waiting for a slot, first in first
   * out, and the slots in use; `admit` runs the queue from a loop
   * callback once a slot is free. cap[1]: plain transfers, cap[2]: ones
   * that may multiplex; cap[1] == 0: nothing waits. */
  struct pc_queue waiting;
  uv_idle_t admit;
  size_t used[3], cap[3];
  /* Fresh connections (session.h): whether they apply, and the counts. */
  bool fresh_ok, fresh_used;
  long conn_socks, conn_opening, conn_busy;
  long fresh_waiting; /* fresh transfers whose first socket is not open yet */
  /* Idle easy handles, a stack: bounded, and CURL is opaque, so they are
   * kept in an array rather than on a list. */
  CURL *idle[FREE_EASY_MAX];
  bool idle_primed[FREE_EASY_MAX]; /* the constant options are still set */
  size_t nidle;
  int pending_closes;
  bool closing;
  bool background; /* pc_http_session_background: handles unref'd, no statistics logged */
  struct pc_http_counts counts; /* the statistics (http/stats.h) */
  char **warned;     /* hosts already warned about insecure: true */
  size_t nwarned;
};

static void on_loop_timer(uv_timer_t *t);
static void on_admit(uv_idle_t *h);

static void session_maybe_free(struct pc_http_session *s)
{
  if (!s->closing || s->pending_closes > 0)
    return;
  for (size_t i = 0; i < s->nwarned; i++)
    free(s->warned[i]);
  free(s->warned);
  if (s->share)
    curl_share_cleanup(s->share);
  free(s->socks);
  pc_http_counts_free(&s->counts);
  free(s);
}

static void on_sock_closed(uv_handle_t *h)
{
  struct sock_ctx *ctx = PC_CONTAINER_OF(h, struct sock_ctx, poll);
  struct pc_http_session *s = ctx->s;
  free(ctx);
  s->pending_closes--;
  session_maybe_free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
  struct pc_http_session *s = PC_CONTAINER_OF(h, struct pc_http_session, timer);
  s->pending_closes--;
  session_maybe_free(s);
}

static void on_admit_closed(uv_handle_t *h)
{
  struct pc_http_session *s = PC_CONTAINER_OF(h, struct pc_http_session, admit);
  s->pending_closes--;
  session_maybe_free(s);
}

static struct sock_ctx *sock_find(const struct pc_http_session *s, curl_socket_t fd)
{
  return fd >= 0 && (size_t)fd < s->nsocks ? s->socks[fd] : NULL;
}

/* Takes the context out of the table and ends it: its poll is closed
 * (which stops it: libuv forgets the descriptor now) and the context freed
 * in on_sock_closed; a context without a poll is freed at once. The
 * descriptor itself is not touched. */
static void sock_drop(struct pc_http_session *s, struct sock_ctx *ctx)
{
  assert(sock_find(s, ctx->fd) == ctx);
  s->socks[ctx->fd] = NULL;
  if (!ctx->polling) {
    free(ctx);
    return;
  }
  ctx->polling = false;
  s->pending_closes++;
  uv_close((uv_handle_t *)&ctx->poll, on_sock_closed);
}

/* A new context for fd, in the table, without a poll. */
static struct sock_ctx *sock_new(struct pc_http_session *s, curl_socket_t fd, bool owned,
                                 int family)
{
  assert(fd >= 0);
  if ((size_t)fd >= s->nsocks) {
    size_t n = s->nsocks ? s->nsocks : 64;
    while (n <= (size_t)fd)
      n *= 2;
    s->socks = pc_xrealloc(s->socks, n * sizeof *s->socks);
    memset(s->socks + s->nsocks, 0, (n - s->nsocks) * sizeof *s->socks);
    s->nsocks = n;
  }
  assert(!s->socks[fd]);
  struct sock_ctx *ctx = pc_xcalloc(1, sizeof *ctx);
  ctx->fd = fd;
  ctx->s = s;
  ctx->owned = owned;
  ctx->family = family;
  s->socks[fd] = ctx;
  return ctx;
}

static void on_poll(uv_poll_t *p, int status, int events);

/* Arms the context's poll for `events`, initialising it on first use.
 * Returns 0 or a libuv error (logged). */
static int sock_watch(struct pc_http_session *s, struct sock_ctx *ctx, int events)
{
  if (!ctx->polling) {
    int err = uv_poll_init_socket(s->loop, &ctx->poll, ctx->fd);
    if (err) {
      pc_log(PC_LOG_ERROR, NULL, "http: cannot watch socket %d: %s", (int)ctx->fd,
             uv_strerror(err));
      return err;
    }
    ctx->polling = true;
    ctx->events = 0;
    s->counts.stats.sockets++;
    if (s->background)
      uv_unref((uv_handle_t *)&ctx->poll);
  }
  if (events != ctx->events) {
    uv_poll_start(&ctx->poll, events, on_poll);
    ctx->events = events;
  }
  return 0;
}

/* Whether the descriptor of a context pc_http__open_socket_cb made and
 * libcurl has never watched is still that socket, rather than a descriptor libcurl
 * opened on the same number after closing the socket without telling us
 * (the resolver's socket pair: AF_UNIX; see struct sock_ctx). */
static bool sock_still_ours(const struct sock_ctx *ctx)
{
  int family = 0;
  socklen_t len = sizeof family;
  return getsockopt(ctx->fd, SOL_SOCKET, SO_DOMAIN, &family, &len) == 0 &&
         family == ctx->family;
}

/* Hands every finished transfer to its request. Called after every
 * curl_multi_socket_action (multi-uv.c skips it when no transfer is left
 * running, which loses the last completion). */
static void drain(struct pc_http_session *s)
{
  CURLMsg *m;
  int left;
  while (s->multi && (m = curl_multi_info_read(s->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    struct pc_http__transfer *t = NULL;
    CURLcode rc = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    assert(t);
    t->ops->done(t, rc); /* m is invalid from here on */
  }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
  struct sock_ctx *ctx = PC_CONTAINER_OF(p, struct sock_ctx, poll);
  struct pc_http_session *s = ctx->s;
  if (!uv_is_active((uv_handle_t *)p))
    ctx->events = 0; /* libuv stopped it (POLLERR) */
  if (!ctx->want) {
    /* An idle kept-alive connection that the server closed (or wrote to):
     * stop watching it until libcurl asks again, or closes it. */
    if (ctx->events)
      uv_poll_stop(p);
    ctx->events = 0;
    return;
  }
  /* A poll error (POLLERR: the peer reset the connection, or a connect
   * failed) is passed on as the events libcurl waits for, not as
   * CURL_CSELECT_ERR: libcurl then reads or writes and meets the error
   * itself (ECONNRESET, EPIPE, SO_ERROR), as it does behind its own poll()
   * (lib/select.c, Curl_socket_check, reports POLLERR on a socket it reads
   * as readable). It matters for a kept-alive connection that the server
   * closes just as a request goes out on it: a receive error is what makes
   * libcurl retry the request on a new connection, where CURL_CSELECT_ERR
   * fails it at once ("select/poll returned error"). */
  int ev = status < 0 ? ctx->want : events;
  int flags = 0;
  if (ev & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (ev & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  curl_socket_t fd = ctx->fd;
  int running;
  /* ctx may be closed (not freed) from here on, and another context may
   * take the descriptor's number. */
  curl_multi_socket_action(s->multi, fd, flags, &running);
  /* libuv stopped the poll on POLLERR: watch again what libcurl still
   * waits for (it normally closes the socket instead). */
  if (status < 0 && sock_find(s, fd) == ctx && ctx->want && !ctx->events)
    sock_watch(s, ctx, ctx->want);
  drain(s);
}

static void on_loop_timer(uv_timer_t *t)
{
  struct pc_http_session *s = PC_CONTAINER_OF(t, struct pc_http_session, timer);
  int running;
  s->in_timer = true;
  curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  s->in_timer = false;
  drain(s);
}

/* libcurl callbacks: record what to watch, nothing else. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
  (void)e;
  (void)socketp;
  struct pc_http_session *s = userp;
  struct sock_ctx *ctx = sock_find(s, fd);
  if (what == CURL_POLL_REMOVE) {
    if (ctx && ctx->trusted) {
      /* The poll stays armed (see struct sock_ctx), but an idle
       * connection must not keep the loop running. */
      ctx->want = 0;
      if (ctx->polling)
        uv_unref((uv_handle_t *)&ctx->poll);
    } else if (ctx) {
      sock_drop(s, ctx); /* its descriptor may be closed already */
    }
    return 0;
  }
  /* A connecting socket is first asked for writing, the resolver's only
   * ever for reading. */
  if (ctx && ctx->owned && !ctx->watched && !(what & CURL_POLL_OUT) && !sock_still_ours(ctx)) {
    sock_drop(s, ctx);
    ctx = NULL;
  }
  if (!ctx)
    ctx = sock_new(s, fd, false, 0);
  ctx->watched = true;
  if ((what & CURL_POLL_IN) && ctx->owned)
    ctx->trusted = true; /* connected and active: see struct sock_ctx */
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  if (sock_watch(s, ctx, events) != 0) {
    sock_drop(s, ctx);
    return -1; /* libcurl fails every transfer (multi "dead"): nothing else is safe */
  }
  if (!ctx->want && !s->background)
    uv_ref((uv_handle_t *)&ctx->poll);
  ctx->want = events;
  return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION (clientp: the transfer): the connection's
 * socket, close-on-exec so `exec` steps do not inherit connections, and
 * its context, without a poll until libcurl asks to watch it. */
curl_socket_t pc_http__open_socket_cb(void *clientp, curlsocktype purpose,
                                      struct curl_sockaddr *a)
{
  (void)purpose;
  struct pc_http__transfer *t = clientp;
  struct pc_http_session *s = t->s;
  curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (fd == CURL_SOCKET_BAD) {
    t->open_errno = errno; /* for the message: libcurl only says it could not connect */
    return CURL_SOCKET_BAD;
  }
  struct sock_ctx *stale = sock_find(s, fd);
  if (stale) /* a socket libcurl closed before it ever watched it */
    sock_drop(s, stale);
  sock_new(s, fd, true, a->family);
  s->conn_socks++;
  fresh_settled(s, t);
  if (t->conn == 0) {
    t->conn = 1;
    s->conn_opening++;
  }
  return fd;
}

void pc_http__transfer_connected(struct pc_http__transfer *t)
{
  struct pc_http_session *s = t->s;
  if (t->conn == 1)
    s->conn_opening--;
  if (t->conn != 2)
    s->conn_busy++;
  t->conn = 2;
}

/* Before t goes into the multi handle: whether libcurl need look for an
 * idle connection (see "Fresh connections" in session.h). */
static void set_fresh(struct pc_http_session *s, struct pc_http__transfer *t)
{
  if (!s->fresh_ok && !s->fresh_used)
    return;
  if (!t->h1)
    s->fresh_ok = false; /* for good: connections may carry several transfers */
  bool fresh = s->fresh_ok && s->conn_socks - s->conn_opening - s->conn_busy <= 0;
  s->fresh_used |= fresh;
  /* A fresh connection beyond the ones the session keeps is closed when
   * its transfer ends (see "Fresh connections": libcurl 7.88 walks the
   * cache on every curl_multi_remove_handle). Counted with the fresh
   * transfers whose socket is not open yet: a burst is added in one go. */
  bool keep = !fresh || s->conn_socks + s->fresh_waiting < PC_HTTP_NOCAP_KEEP;
  if (fresh) {
    t->fresh_wait = true;
    s->fresh_waiting++;
  }
  /* Set either way once used: an idle handle keeps the options. */
  curl_easy_setopt(t->easy, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
  curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, keep ? 0L : 1L);
}

/* The fresh transfer t opened its first socket, or left. */
static void fresh_settled(struct pc_http_session *s, struct pc_http__transfer *t)
{
  if (t->fresh_wait) {
    t->fresh_wait = false;
    s->fresh_waiting--;
  }
}

/* CURLOPT_CLOSESOCKETFUNCTION: libuv must forget the descriptor (uv_close
 * stops the poll at once) before it is closed and its number reused. */
int pc_http__close_socket_cb(void *clientp, curl_socket_t fd)
{
  struct pc_http_session *s = clientp;
  struct sock_ctx *ctx = sock_find(s, fd);
  if (ctx)
    sock_drop(s, ctx);
  s->conn_socks--; /* libcurl closes here exactly the sockets it opened through us */
  return close(fd) == 0 ? 0 : 1;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
  (void)m;
  struct pc_http_session *s = userp;
  if (s->timer_closing)
    return 0;
  /* 0 means "now": a 0 ms timer runs in the loop's next timer phase, out
   * of libcurl. But libuv (1.44) runs a timer restarted at 0 from its own
   * callback again in the same pass, so if libcurl asks for "now" from the
   * timer's socket_action, wait 1 ms: it cannot starve the I/O it waits
   * for. */
  if (timeout_ms < 0)
    uv_timer_stop(&s->timer);
  else
    uv_timer_start(&s->timer, on_loop_timer,
                   timeout_ms == 0 && s->in_timer ? 1 : (uint64_t)timeout_ms, 0);
  return 0;
}

static bool curl_ready(void)
{
  static int state; /* 0: not tried, 1: ok, -1: failed */
  if (state == 0)
    state = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
  return state == 1;
}

/* How many idle connections the cache keeps: as many as may be open at
 * once, so a burst followed by a quiet moment does not lose them. Without
 * a cap, as many as the process may have open: libcurl 7.88 walks every
 * cached connection each time a transfer gives one back to a full cache
 * (Curl_conncache_extract_oldest, "cache is full, closing the oldest"),
 * which with a smaller cache made the end of a burst of 5,000 connections
 * quadratic (bench w12: half of the run's CPU time; issue 16). */
static long cache_size(long total)
{
  if (total > 0)
    return total;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
      rl.rlim_cur > (rlim_t)1 << 20)
    return 1L << 20;
  return rl.rlim_cur < 1000 ? 1000L : (long)rl.rlim_cur;
}

struct pc_http_session *pc_http_session_new(uv_loop_t *loop, const struct pc_http_limits *lim)
{
  if (!curl_ready()) {
    pc_log(PC_LOG_ERROR, NULL, "http: libcurl could not be initialised");
    return NULL;
  }
  CURLM *multi = curl_multi_init();
  if (!multi) {
    pc_log(PC_LOG_ERROR, NULL, "http: libcurl could not create a multi handle");
    return NULL;
  }
  struct pc_http_session *s = pc_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->multi = multi;
  pc_queue_init(&s->live);
  pc_queue_init(&s->waiting);
  uv_timer_init(loop, &s->timer);
  uv_idle_init(loop, &s->admit);
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, s);
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  long total = lim ? lim->max_connections : PC_HTTP_MAX_CONNECTIONS_DEFAULT;
  long per_host = lim ? lim->max_per_host : PC_HTTP_MAX_PER_HOST_DEFAULT;
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, cache_size(total));
  if (total > 0 && per_host <= 0) {
    s->cap[1] = (size_t)total;
    s->cap[2] = (size_t)total * PC_HTTP_STREAMS_PER_CONNECTION;
  }
  s->fresh_ok = total <= 0 && per_host <= 0;
  s->resolver = pc_http_resolver_new(loop);
  s->share = curl_share_init();
  if (s->share && curl_share_setopt(s->share, CURLSHOPT_SHARE, (long)CURL_LOCK_DATA_COOKIE) !=
                      CURLSHE_OK) {
    curl_share_cleanup(s->share);
    s->share = NULL;
  }
  return s;
}


void pc_http_session_background(struct pc_http_session *s)
{
  s->background = true;
  uv_unref((uv_handle_t *)&s->timer);
}

void pc_http_session_close(struct pc_http_session *s)
{
  if (!s || s->closing)
    return;
  s->closing = true;
  if (pc_log_enabled(PC_LOG_DEBUG) && !s->background) {
    const struct pc_http_stats *st = &s->counts.stats;
    pc_log(PC_LOG_DEBUG, NULL,
           "http: %llu requests (%llu failed, %llu cancelled), %llu connections opened, %llu "
           "requests on a reused connection, %llu bytes down, %llu bytes up",
           (unsigned long long)st->requests, (unsigned long long)st->failed,
           (unsigned long long)st->cancelled, (unsigned long long)st->connections,
           (unsigned long long)st->reused, (unsigned long long)st->bytes_down,
           (unsigned long long)st->bytes_up);
    struct pc_http_resolver_stats rs;
    pc_http_resolver_stats(s->resolver, &rs);
    if (rs.lookups)
      pc_log(PC_LOG_DEBUG, NULL, "http: %llu names resolved, at most %u at once",
             (unsigned long long)rs.lookups, rs.max_threads);
    for (size_t i = 0; i < st->nhosts; i++) {
      const struct pc_http_host_stats *hs = &st->hosts[i];
      pc_log(PC_LOG_DEBUG, NULL,
             "http: %s: %llu requests, %llu connections opened, %llu reused, %llu bytes down, "
             "%llu bytes up",
             hs->host, (unsigned long long)hs->requests, (unsigned long long)hs->connections,
             (unsigned long long)hs->reused, (unsigned long long)hs->bytes_down,
             (unsigned long long)hs->bytes_up);
    }
  }
  /* 1. every easy handle out of the multi handle and gone (a transfer
   * waiting for a name stops waiting; a lookup's thread is never waited
   * for), then the resolver */
  while (!pc_queue_empty(&s->live)) {
    struct pc_queue *q = pc_queue_head(&s->live);
    struct pc_http__transfer *t = pc_queue_data(q, struct pc_http__transfer, live);
    transfer_out(s, t, true);
    if (t->easy) {
      curl_easy_setopt(t->easy, CURLOPT_COOKIEFILE, NULL); /* see pc_http__easy_recycle */
      curl_easy_cleanup(t->easy);
      t->easy = NULL;
    }
    t->ops->drop(t);
  }
  for (size_t i = 0; i < s->nidle; i++)
    curl_easy_cleanup(s->idle[i]);
  s->nidle = 0;
  /* The jar, unless a handle still holds it: the one of a request whose
   * callback closes the session, cleaned up when the callback returns;
   * then session_maybe_free frees it. */
  if (s->share && curl_share_cleanup(s->share) == CURLSHE_OK)
    s->share = NULL;
  struct pc_http_resolver_stats rs;
  pc_http_resolver_stats(s->resolver, &rs);
  s->counts.stats.lookups = rs.lookups;
  s->counts.stats.lookup_threads = rs.max_threads;
  pc_http_resolver_close(s->resolver);
  s->resolver = NULL;
  /* 2. the multi handle (closing connections may still call on_curl_socket) */
  curl_multi_cleanup(s->multi);
  s->multi = NULL;
  /* 3. what libcurl did not close or tell us to forget, then the timer */
  for (size_t fd = 0; fd < s->nsocks; fd++)
    if (s->socks[fd])
      sock_drop(s, s->socks[fd]);
  s->timer_closing = true;
  s->pending_closes++;
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
  s->pending_closes++;
  uv_close((uv_handle_t *)&s->admit, on_admit_closed);
}


/* ====================================================== transfers */

CURLSH *pc_http__cookie_jar(const struct pc_http_session *s)
{
  return s->share;
}

CURL *pc_http__easy_take(struct pc_http_session *s, bool *primed)
{
  if (s->nidle) {
    s->nidle--;
    *primed = s->idle_primed[s->nidle];
    return s->idle[s->nidle];
  }
  *primed = false;
  CURL *e = curl_easy_init();
  if (e)
    s->counts.stats.handles++;
  return e;
}

/* Skipping curl_easy_reset for a primed handle matters: with the constant
 * options set again it was ~8% of a small request's CPU. Any option
 * beyond the constant ones (a method, a body, timeouts, TLS settings,
 * redirects) means a full reset. */
void pc_http__easy_recycle(struct pc_http_session *s, CURL *e, bool primed)
{
  if (!e)
    return;
  /* A request that keeps cookies sets CURLOPT_COOKIEFILE "" to turn the
   * cookie engine on, which leaves a list on the handle that libcurl 7.88
   * may never free (not in curl_easy_reset, not in curl_easy_cleanup):
   * NULL frees it (and leaves the shared jar alone). */
  curl_easy_setopt(e, CURLOPT_COOKIEFILE, NULL);
  if (s->nidle < FREE_EASY_MAX && !s->closing) {
    if (primed) {
      curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
      curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
      /* CURLOPT_PREREQDATA is left: only a transfer calls it, and the next
       * one sets it first. */
    } else {
      curl_easy_reset(e);
    }
    s->idle_primed[s->nidle] = primed;
    s->idle[s->nidle++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

/* ===================================================== name resolution */

/* Drops the CURLOPT_RESOLVE entry the hop carried, once libcurl has read it
 * (`read`) or cannot any more; if it may not have (a transfer stopped
 * before libcurl started it), the next transfer to the name carries it
 * again. */
static void forget_resolve(struct pc_http_session *s, struct pc_http__transfer *t, bool read)
{
  if (!t->resolve)
    return;
  if (!read)
    pc_http_resolver_not_handed(s->resolver, t->resolve->data);
  if (t->easy)
    curl_easy_setopt(t->easy, CURLOPT_RESOLVE, NULL);
  curl_slist_free_all(t->resolve);
  t->resolve = NULL;
}

/* The hop carries `resolve` into libcurl's DNS cache: libcurl reads
 * CURLOPT_RESOLVE once, when the transfer starts (Curl_pretransfer), and
 * then finds the name there instead of starting a resolver thread. */
static void hand_resolve(struct pc_http__transfer *t, const char *resolve)
{
  t->resolve = curl_slist_append(NULL, resolve);
  curl_easy_setopt(t->easy, CURLOPT_RESOLVE, t->resolve);
}

/* The part of a bound that the wait for a name left, for the handle. */
static long bound_left(double bound_ms, double waited_ms)
{
  double left = ceil(bound_ms - waited_ms);
  return left >= 1 ? (long)left : 1;
}

/* The lookup of t's name ended (a resolver callback: a loop callback,
 * never inside libcurl). */
static void on_lookup(struct pc_http_lookup *lk, int err, const char *resolve)
{
  struct pc_http__transfer *t = PC_CONTAINER_OF(lk, struct pc_http__transfer, lookup);
  struct pc_http_session *s = t->s;
  double waited = (double)(uv_hrtime() - t->lookup_t0) / 1e6;
  t->resolving = false;
  t->lookup_ms += waited;
  if (err) {
    t->lookup_failed = true;
    t->ops->done(t, err == UV_ETIMEDOUT ? CURLE_OPERATION_TIMEDOUT : CURLE_COULDNT_RESOLVE_HOST);
    return;
  }
  if (resolve)
    hand_resolve(t, resolve);
  /* libcurl's own clocks start now: what the wait used is gone. */
  if (t->connect_timeout_ms > 0)
    curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS,
                     bound_left(t->connect_timeout_ms, waited));
  if (t->timeout_ms > 0)
    curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, bound_left(t->timeout_ms, waited));
  set_fresh(s, t);
  CURLMcode mc = curl_multi_add_handle(s->multi, t->easy);
  if (mc != CURLM_OK) {
    t->lookup_failed = true; /* nothing ran: report it as libcurl would its own */
    t->ops->done(t, mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT);
  }
}

/* Hands t (which holds a slot) over: to the resolver, or to libcurl. */
static CURLMcode transfer_enter(struct pc_http_session *s, struct pc_http__transfer *t)
{
  /* What bounds the wait for a name: the smaller of the bounds libcurl
   * would apply to its own resolving (both cover it). */
  double bound = -1;
  if (t->connect_timeout_ms > 0)
    bound = t->connect_timeout_ms;
  if (t->timeout_ms > 0 && (bound < 0 || t->timeout_ms < bound))
    bound = t->timeout_ms;
  const char *resolve = NULL;
  switch (t->no_lookup ? PC_HTTP_RESOLVE_NONE
                       : pc_http_resolver_start(s->resolver, t->url, bound, &t->lookup, on_lookup,
                                                &resolve)) {
  case PC_HTTP_RESOLVE_WAIT:
    t->resolving = true;
    t->lookup_t0 = uv_hrtime();
    return CURLM_OK;
  case PC_HTTP_RESOLVE_READY:
    hand_resolve(t, resolve);
    break;
  case PC_HTTP_RESOLVE_NONE:
    break;
  }
  set_fresh(s, t);
  CURLMcode mc = curl_multi_add_handle(s->multi, t->easy);
  if (mc != CURLM_OK)
    forget_resolve(s, t, true);
  return mc;
}

/* ============================================================ admission */

static void slot_take(struct pc_http_session *s, struct pc_http__transfer *t)
{
  t->slot = t->mux ? 2 : 1;
  size_t n = s->used[1] + s->used[2] + 1;
  s->used[t->slot]++;
  if (n > s->counts.stats.admitted_max)
    s->counts.stats.admitted_max = n;
}

static bool slot_free(const struct pc_http_session *s, const struct pc_http__transfer *t)
{
  int k = t->mux ? 2 : 1;
  return s->cap[1] == 0 || s->used[k] < s->cap[k];
}

static void slot_give_back(struct pc_http_session *s, struct pc_http__transfer *t)
{
  if (!t->slot)
    return;
  s->used[t->slot]--;
  t->slot = 0;
  if (!pc_queue_empty(&s->waiting) && !s->closing)
    uv_idle_start(&s->admit, on_admit);
}

/* A loop callback (never inside libcurl, never inside a request's
 * callback): the transfers at the head of the queue get the free slots,
 * in order. One that cannot go in ends through `done`, which may start,
 * cancel or close anything. */
static void on_admit(uv_idle_t *h)
{
  struct pc_http_session *s = PC_CONTAINER_OF(h, struct pc_http_session, admit);
  uv_idle_stop(h);
  while (!s->closing && !pc_queue_empty(&s->waiting)) {
    struct pc_http__transfer *t =
        pc_queue_data(pc_queue_head(&s->waiting), struct pc_http__transfer, wait);
    if (!slot_free(s, t))
      return; /* the next slot given back starts the queue again */
    pc_queue_remove(&t->wait);
    t->queued = false;
    slot_take(s, t);
    CURLMcode mc = CURLM_OK;
    CURLcode rc = CURLE_OK;
    assert(!t->easy);
    if (t->timeout_ms > 0) {
      double waited = (double)(uv_hrtime() - t->queue_t0) / 1e6;
      if (waited >= t->timeout_ms)
        rc = CURLE_OPERATION_TIMEDOUT; /* no handle is made for it */
      else
        t->timeout_ms = (double)bound_left(t->timeout_ms, waited); /* set by admit */
    }
    if (rc == CURLE_OK)
      rc = t->ops->admit(t);
    if (rc == CURLE_OK && (mc = transfer_enter(s, t)) != CURLM_OK)
      rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    if (rc != CURLE_OK) {
      t->lookup_failed = true; /* nothing ran */
      t->ops->done(t, rc);
    }
  }
}

CURLMcode pc_http__transfer_add(struct pc_http_session *s, struct pc_http__transfer *t)
{
  if (!t->slot) {
    /* First in first out: nobody passes a transfer that waits. */
    if (!slot_free(s, t) || !pc_queue_empty(&s->waiting)) {
      t->queued = true;
      t->queue_t0 = uv_hrtime();
      pc_queue_insert_tail(&s->waiting, &t->wait);
      pc_queue_insert_head(&s->live, &t->live);
      s->counts.stats.queued++;
      return CURLM_OK;
    }
    slot_take(s, t);
  }
  if (!t->easy && t->ops->admit(t) != CURLE_OK) {
    slot_give_back(s, t);
    return CURLM_OUT_OF_MEMORY;
  }
  CURLMcode mc = transfer_enter(s, t);
  if (mc == CURLM_OK)
    pc_queue_insert_head(&s->live, &t->live);
  else
    slot_give_back(s, t);
  return mc;
}

void pc_http__transfer_release(struct pc_http_session *s, struct pc_http__transfer *t)
{
  slot_give_back(s, t);
}

/* Out of the multi handle (if it got there) and the live list. `ran`: the
 * transfer ran, so libcurl has read the CURLOPT_RESOLVE entry it
 * carried; a cancelled one may not have. */
static void transfer_out(struct pc_http_session *s, struct pc_http__transfer *t, bool ran)
{
  if (t->queued) {
    pc_queue_remove(&t->wait);
    t->queued = false;
  }
  if (t->resolving) {
    pc_http_resolver_abandon(s->resolver, &t->lookup);
    t->resolving = false;
  }
  if (t->easy) /* none while it waited for its slot */
    curl_multi_remove_handle(s->multi, t->easy); /* CURLM_OK if it was never added */
  if (t->conn == 1)
    s->conn_opening--;
  else if (t->conn == 2)
    s->conn_busy--;
  t->conn = 0;
  fresh_settled(s, t);
  forget_resolve(s, t, ran);
  pc_queue_remove(&t->live);
}

void pc_http__transfer_remove(struct pc_http_session *s, struct pc_http__transfer *t)
{
  transfer_out(s, t, true);
}

void pc_http__transfer_cancel(struct pc_http_session *s, struct pc_http__transfer *t)
{
  transfer_out(s, t, false);
  slot_give_back(s, t);
  if (t->easy) {
    curl_easy_setopt(t->easy, CURLOPT_COOKIEFILE, NULL); /* see pc_http__easy_recycle */
    curl_easy_cleanup(t->easy);
    t->easy = NULL;
  }
  s->counts.stats.cancelled++;
}

bool pc_http__closing(const struct pc_http_session *s)
{
  return s->closing;
}

/* ========================================================= statistics */

void pc_http__count(struct pc_http_session *s, const char *url,
                    const struct pc_http_host_stats *d, bool failed)
{
  pc_http_counts_add(&s->counts, url, d, failed);
}

void pc_http_session_stats(const struct pc_http_session *s, struct pc_http_stats *out)
{
  memset(out, 0, sizeof *out);
  if (!s)
    return;
  pc_http_counts_copy(&s->counts, out);
  if (s->resolver) {
    struct pc_http_resolver_stats rs;
    pc_http_resolver_stats(s->resolver, &rs);
    out->lookups = rs.lookups;
    out->lookup_threads = rs.max_threads;
  }
}

void pc_http__warn_insecure(struct pc_http_session *s, const char *label, const char *url)
{
  char *host = pc_http_url_host(url);
  bool seen = false;
  for (size_t i = 0; i < s->nwarned && !seen; i++)
    seen = strcmp(s->warned[i], host) == 0;
  if (!seen) {
    s->warned = pc_xrealloc(s->warned, (s->nwarned + 1) * sizeof *s->warned);
    s->warned[s->nwarned++] = pc_xstrdup(host);
    pc_log(PC_LOG_WARN, label,
           "WARNING: insecure: true turns OFF TLS certificate verification for %s: anyone on "
           "the network path can read and change this traffic. Use ca_file to trust a private "
           "CA instead.", host);
  }
  free(host);
}
