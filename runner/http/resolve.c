/* resolve.c: host names resolved off the loop thread for the HTTP session
 * (see resolve.h for why, and for what the session does with an answer).
 *
 * Three parts. The target: which name, if any, a URL makes libcurl
 * resolve (pc_http__resolve_target), parsed the cheap way because every
 * request asks. The table: one entry per "host:port" pacer has resolved
 * or is resolving, with its answer (the CURLOPT_RESOLVE entry), when it
 * was made, whether libcurl has it yet, the lookup under way and the
 * waiters (a request that needs a name waits on its entry, so concurrent
 * requests for one name make one lookup). The pool: at most
 * PC_HTTP_RESOLVER_THREADS detached threads, started as lookups are
 * queued, each running getaddrinfo for queued jobs until none is left and
 * then exiting; answers go back to the loop through a uv_async_t.
 *
 * Ownership and threads. The loop thread owns the resolver and the table;
 * the threads never touch either. A job (one getaddrinfo) belongs to the
 * pool's todo list until a thread takes it, to that thread while it runs,
 * to the done list until the loop takes it, and to the loop until it is
 * delivered; the lists are under the pool's mutex. The pool itself is
 * shared: one reference for the resolver while it is open and one per
 * running thread, and whoever drops the last one frees it. When the
 * resolver closes it sets the pool's `async` to NULL under the mutex, so a
 * thread that finishes afterwards frees its job instead of signalling a
 * closed handle, and nothing waits for a thread still inside getaddrinfo.
 *
 * A callback may start, cancel or abandon lookups and close the resolver,
 * so delivery works on a batch it has taken off the entry (new waiters
 * wait for a new lookup), stops once the resolver is closing, and the
 * entry it delivers for is kept (`busy`) until it is done. */
#include "http/resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define HOST_MAX 253        /* a DNS name, without a trailing dot's byte to spare */
#define ADDRS_MAX 32        /* addresses handed to libcurl for one name */
#define TABLE_MIN 64        /* buckets of the table at first */

/* ================================================================ target */

static bool is_name_byte(unsigned char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_';
}

/* libcurl 7.88 (lib/hostip.c, Curl_resolv) resolves "localhost" and any
 * name under ".localhost" itself, without a thread. */
static bool is_localhost(const char *h, size_t n)
{
  static const char tail[] = ".localhost";
  size_t t = sizeof tail - 1;
  return strcmp(h, "localhost") == 0 || (n > t && memcmp(h + n - t, tail, t) == 0);
}

bool pc_http__resolve_target(const char *url, unsigned proxy, char *host, size_t hostsz,
                             int *port)
{
  const char *p;
  unsigned scheme;
  int defport;
  if (strncasecmp(url, "http://", 7) == 0) {
    p = url + 7, scheme = 1, defport = 80;
  } else if (strncasecmp(url, "https://", 8) == 0) {
    p = url + 8, scheme = 2, defport = 443;
  } else {
    return false; /* libcurl refuses it */
  }
  if (proxy & scheme)
    return false; /* libcurl resolves the proxy's name, or asks the proxy */
  /* The authority, as libcurl's URL parser cuts it (lib/urlapi.c): up to
   * the path, query or fragment; the login ends at the first '@'. */
  size_t alen = strcspn(p, "/?#");
  const char *at = memchr(p, '@', alen);
  if (at) {
    alen -= (size_t)(at + 1 - p);
    p = at + 1;
    if (memchr(p, '@', alen))
      return false; /* libcurl rejects it */
  }
  const char *colon = memchr(p, ':', alen);
  size_t hlen = colon ? (size_t)(colon - p) : alen;
  /* An IPv6 literal ('['), a percent-encoded or international name and
   * anything unusual are libcurl's to parse and resolve. */
  if (hlen == 0 || hlen > HOST_MAX || hlen >= hostsz)
    return false;
  for (size_t i = 0; i < hlen; i++) {
    unsigned char c = (unsigned char)p[i];
    if (!is_name_byte(c))
      return false;
    host[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
  }
  host[hlen] = '\0';
  *port = defport;
  if (colon && alen > hlen + 1) {
    long v = 0;
    for (const char *d = colon + 1; d < p + alen; d++) {
      if (*d < '0' || *d > '9' || v > 65535)
        return false;
      v = v * 10 + (*d - '0');
    }
    if (v == 0 || v > 65535)
      return false;
    *port = (int)v;
  }
  /* An address in any form libcurl normalises (127.1, 0x7f.0.0.1, a
   * 32-bit number: glibc's inet_aton takes the same forms) needs no
   * lookup, nor does localhost. */
  struct in_addr a4;
  if (inet_aton(host, &a4) || is_localhost(host, hlen))
    return false;
  return true;
}

/* ================================================================== pool */

struct entry;

/* One getaddrinfo. The loop fills the first part, the thread the answer. */
struct job {
  struct pc_queue q;  /* on the pool's todo or done list (under the mutex), or none */
  struct entry *e;    /* the loop's: the entry it resolves for (never read by a thread) */
  bool started;       /* a thread has taken it (under the mutex) */
  int family;         /* AF_UNSPEC, or AF_INET when IPv6 does not work here */
  uint64_t t0;        /* uv_hrtime() when it was queued (the loop's) */
  int eai;            /* getaddrinfo's error; 0: none */
  int sys_errno;      /* with EAI_SYSTEM (or a thread that could not start) */
  char *addrs;        /* "a,[b],..." (malloc'd by the thread); NULL: none usable */
  char host[];
};

struct pool {
  pthread_mutex_t mu;
  struct pc_queue todo; /* jobs no thread has taken yet */
  struct pc_queue done; /* answers for the loop */
  unsigned running;     /* threads */
  unsigned max_running; /* the most at once (statistics) */
  unsigned refs;        /* the resolver while open, plus one per thread */
  uv_async_t *async;    /* the resolver's; NULL once it has closed */
};

static void job_free(struct job *j)
{
  free(j->addrs);
  free(j);
}

static void pool_free(struct pool *p)
{
  while (!pc_queue_empty(&p->todo)) {
    struct pc_queue *q = pc_queue_head(&p->todo);
    pc_queue_remove(q);
    job_free(pc_queue_data(q, struct job, q));
  }
  while (!pc_queue_empty(&p->done)) {
    struct pc_queue *q = pc_queue_head(&p->done);
    pc_queue_remove(q);
    job_free(pc_queue_data(q, struct job, q));
  }
  pthread_mutex_destroy(&p->mu);
  free(p);
}

/* On a thread: the addresses of j->host, as CURLOPT_RESOLVE lists them.
 * Plain malloc here (pc_xmalloc's reserve belongs to the loop thread). An
 * IPv6 address with a scope (link-local) is left out: the entry has no
 * way to carry the scope. */
static void run_lookup(struct job *j)
{
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = j->family;
  hints.ai_socktype = SOCK_STREAM; /* as libcurl asks: one entry per address */
  int rc = getaddrinfo(j->host, NULL, &hints, &res);
  if (rc != 0) {
    j->eai = rc;
    j->sys_errno = rc == EAI_SYSTEM ? errno : 0;
    return;
  }
  size_t cap = ADDRS_MAX * (INET6_ADDRSTRLEN + 3) + 1, len = 0;
  char *out = malloc(cap);
  if (!out) {
    freeaddrinfo(res);
    j->eai = EAI_MEMORY;
    return;
  }
  int n = 0;
  for (const struct addrinfo *ai = res; ai && n < ADDRS_MAX; ai = ai->ai_next) {
    char a[INET6_ADDRSTRLEN];
    if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
      const struct sockaddr_in *s4 = (const struct sockaddr_in *)ai->ai_addr;
      if (!inet_ntop(AF_INET, &s4->sin_addr, a, sizeof a))
        continue;
      len += (size_t)snprintf(out + len, cap - len, "%s%s", n ? "," : "", a);
    } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
      const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ai->ai_addr;
      if (s6->sin6_scope_id != 0 || !inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof a))
        continue;
      len += (size_t)snprintf(out + len, cap - len, "%s[%s]", n ? "," : "", a);
    } else {
      continue;
    }
    n++;
  }
  freeaddrinfo(res);
  if (n == 0)
    free(out);
  else
    j->addrs = out;
}

/* A resolver thread: runs queued jobs until there are none, then exits. */
static void *lookup_thread(void *arg)
{
  struct pool *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!pc_queue_empty(&p->todo)) {
    struct pc_queue *q = pc_queue_head(&p->todo);
    pc_queue_remove(q);
    struct job *j = pc_queue_data(q, struct job, q);
    j->started = true;
    pthread_mutex_unlock(&p->mu);
    run_lookup(j);
    pthread_mutex_lock(&p->mu);
    if (p->async) {
      pc_queue_insert_tail(&p->done, &j->q);
      uv_async_send(p->async); /* under the mutex: the handle cannot be closing */
    } else {
      job_free(j); /* the resolver is gone: nobody wants the answer */
    }
  }
  p->running--;
  bool last = --p->refs == 0;
  pthread_mutex_unlock(&p->mu);
  if (last)
    pool_free(p);
  return NULL;
}

/* Under the mutex: starts one more thread, detached, with every signal
 * blocked (signals are the loop's and the watchdog's). Returns 0 or an
 * errno. */
static int spawn_locked(struct pool *p)
{
  pthread_attr_t attr;
  pthread_t t;
  sigset_t all, old;
  int err = pthread_attr_init(&attr);
  if (err)
    return err;
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  p->running++;
  p->refs++;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  err = pthread_create(&t, &attr, lookup_thread, p);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err) {
    p->running--;
    p->refs--;
  } else if (p->running > p->max_running) {
    p->max_running = p->running;
  }
  return err;
}

/* ================================================================= table */

struct entry {
  struct entry *next;     /* in its bucket */
  uint32_t hash;
  size_t hostlen;         /* key[0 .. hostlen) is the host */
  char *key;              /* "host:port", the host lower-cased (libcurl's cache key) */
  char *resolve;          /* "+host:port:addrs" for CURLOPT_RESOLVE; NULL: no answer */
  uint64_t resolved_at;   /* uv_now() when `resolve` was made */
  bool handed;            /* a transfer has carried `resolve` into libcurl's cache */
  bool busy;              /* answers are being delivered from it: keep it */
  struct job *job;        /* the lookup under way (queued or running); NULL: none */
  struct pc_queue waiters; /* struct pc_http_lookup.q */
};

struct pc_http_resolver {
  uv_loop_t *loop;   /* borrowed */
  uv_async_t async;  /* answers from the threads; ref'd while a lookup has waiters */
  uv_timer_t timer;  /* the earliest bound of a waiter */
  int pending_closes;
  bool closing;
  unsigned proxy;    /* see pc_http__resolve_target */
  int family;        /* AF_UNSPEC, or AF_INET when this host cannot make IPv6 sockets */
  struct pool *pool; /* shared with the threads (NULL once let go) */
  struct entry **buckets;
  size_t nbuckets, count;
  uint64_t last_sweep;
  struct pc_queue timed; /* waiters with a bound, earliest first (struct pc_http_lookup.timed) */
  uint64_t timer_due;    /* the deadline the timer is armed for; 0: stopped */
  size_t nwaiting;       /* waiters on every entry */
  uint64_t lookups;      /* jobs queued */
};

static uint32_t hash_of(const char *s)
{
  uint32_t h = 2166136261u; /* FNV-1a */
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

static struct entry *entry_find(struct pc_http_resolver *r, const char *key, uint32_t h)
{
  for (struct entry *e = r->buckets[h & (r->nbuckets - 1)]; e; e = e->next)
    if (e->hash == h && strcmp(e->key, key) == 0)
      return e;
  return NULL;
}

static void entry_unlink(struct pc_http_resolver *r, struct entry *e)
{
  struct entry **pp = &r->buckets[e->hash & (r->nbuckets - 1)];
  while (*pp != e)
    pp = &(*pp)->next;
  *pp = e->next;
  r->count--;
  free(e->key);
  free(e->resolve);
  free(e);
}

/* An entry nothing holds: no lookup under way, no waiter, no delivery, and
 * no answer fresh enough to use. */
static bool entry_idle(const struct pc_http_resolver *r, const struct entry *e, uint64_t now)
{
  return !e->job && !e->busy && pc_queue_empty(&e->waiters) &&
         (!e->resolve || now - e->resolved_at >= PC_HTTP_RESOLVE_FRESH_MS) && !r->closing;
}

static void entry_gc(struct pc_http_resolver *r, struct entry *e)
{
  if (entry_idle(r, e, uv_now(r->loop)))
    entry_unlink(r, e);
}

/* Drops idle entries: at most once per PC_HTTP_RESOLVE_FRESH_MS, when an
 * entry is added, so the table holds about the names of the last minute
 * or two. */
static void sweep(struct pc_http_resolver *r, uint64_t now)
{
  if (now - r->last_sweep < PC_HTTP_RESOLVE_FRESH_MS)
    return;
  r->last_sweep = now;
  for (size_t i = 0; i < r->nbuckets; i++) {
    struct entry *e = r->buckets[i];
    while (e) {
      struct entry *next = e->next;
      if (entry_idle(r, e, now))
        entry_unlink(r, e);
      e = next;
    }
  }
}

static void grow(struct pc_http_resolver *r)
{
  size_t n = r->nbuckets * 2;
  struct entry **b = pc_xcalloc(n, sizeof *b);
  for (size_t i = 0; i < r->nbuckets; i++) {
    struct entry *e = r->buckets[i];
    while (e) {
      struct entry *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(r->buckets);
  r->buckets = b;
  r->nbuckets = n;
}

static struct entry *entry_new(struct pc_http_resolver *r, const char *key, size_t hostlen,
                               uint32_t h, uint64_t now)
{
  sweep(r, now);
  if (r->count >= r->nbuckets)
    grow(r);
  struct entry *e = pc_xcalloc(1, sizeof *e);
  e->hash = h;
  e->key = pc_xstrdup(key);
  e->hostlen = hostlen;
  pc_queue_init(&e->waiters);
  struct entry **b = &r->buckets[h & (r->nbuckets - 1)];
  e->next = *b;
  *b = e;
  r->count++;
  return e;
}

/* ============================================================== waiters */

/* Arms the timer for the earliest bound, or stops it when no waiter has
 * one (an armed timer would keep the loop running). */
static void on_bound(uv_timer_t *t);

static void rearm(struct pc_http_resolver *r)
{
  if (r->closing)
    return;
  if (pc_queue_empty(&r->timed)) {
    if (r->timer_due)
      uv_timer_stop(&r->timer);
    r->timer_due = 0;
    return;
  }
  struct pc_http_lookup *first =
      pc_queue_data(pc_queue_head(&r->timed), struct pc_http_lookup, timed);
  if (first->deadline == r->timer_due)
    return;
  uint64_t now = uv_now(r->loop);
  r->timer_due = first->deadline;
  uv_timer_start(&r->timer, on_bound, first->deadline > now ? first->deadline - now : 0, 0);
}

static void join(struct pc_http_resolver *r, struct entry *e, struct pc_http_lookup *lk,
                 double bound_ms, pc_http_lookup_cb cb)
{
  lk->entry = e;
  lk->cb = cb;
  pc_queue_insert_tail(&e->waiters, &lk->q);
  pc_queue_init(&lk->timed);
  lk->deadline = 0;
  if (bound_ms >= 0) {
    lk->deadline = uv_now(r->loop) + (uint64_t)ceil(bound_ms);
    if (lk->deadline == 0)
      lk->deadline = 1;
    /* Bounds are mostly alike, so the place is near the tail. */
    struct pc_queue *q = r->timed.prev;
    while (q != &r->timed &&
           pc_queue_data(q, struct pc_http_lookup, timed)->deadline > lk->deadline)
      q = q->prev;
    pc_queue_insert_head(q, &lk->timed); /* after q */
    rearm(r);
  }
  if (r->nwaiting++ == 0)
    uv_ref((uv_handle_t *)&r->async);
}

/* Takes lk off its entry (and the bound list); returns the entry, or NULL
 * if lk was not waiting. */
static struct entry *detach(struct pc_http_resolver *r, struct pc_http_lookup *lk)
{
  struct entry *e = lk->entry;
  if (!e)
    return NULL;
  lk->entry = NULL;
  pc_queue_remove(&lk->q);
  if (!pc_queue_empty(&lk->timed)) {
    pc_queue_remove(&lk->timed);
    rearm(r);
  }
  if (--r->nwaiting == 0 && !r->closing)
    uv_unref((uv_handle_t *)&r->async);
  return e;
}

/* The last waiter of e left: a lookup no thread has taken is dropped. */
static void unwanted(struct pc_http_resolver *r, struct entry *e)
{
  if (!pc_queue_empty(&e->waiters) || !e->job)
    return;
  struct job *j = e->job;
  pthread_mutex_lock(&r->pool->mu);
  bool queued = !j->started;
  if (queued)
    pc_queue_remove(&j->q);
  pthread_mutex_unlock(&r->pool->mu);
  if (queued) {
    e->job = NULL;
    job_free(j);
  }
  entry_gc(r, e);
}

static void start_job(struct pc_http_resolver *r, struct entry *e)
{
  struct job *j = pc_xcalloc(1, sizeof *j + e->hostlen + 1);
  memcpy(j->host, e->key, e->hostlen);
  j->host[e->hostlen] = '\0';
  j->e = e;
  j->family = r->family;
  j->t0 = uv_hrtime();
  pc_queue_init(&j->q);
  e->job = j;
  r->lookups++;
  struct pool *p = r->pool;
  pthread_mutex_lock(&p->mu);
  pc_queue_insert_tail(&p->todo, &j->q);
  int err = 0;
  if (p->running < PC_HTTP_RESOLVER_THREADS)
    err = spawn_locked(p);
  if (p->running == 0) {
    /* No thread runs and none could start (the process is at its limit
     * of threads): the lookup fails, answered like any other. */
    pc_queue_remove(&j->q);
    j->started = true;
    j->eai = EAI_SYSTEM;
    j->sys_errno = err;
    pc_queue_insert_tail(&p->done, &j->q);
    uv_async_send(p->async);
  }
  pthread_mutex_unlock(&p->mu);
}

/* getaddrinfo's error as a libuv code (uv.h's UV_EAI_*), for the waiter. */
static int uv_err_of(int eai, int sys_errno)
{
  switch (eai) {
  case EAI_AGAIN:
    return UV_EAI_AGAIN;
  case EAI_NONAME:
    return UV_EAI_NONAME;
#ifdef EAI_NODATA
  case EAI_NODATA:
    return UV_EAI_NODATA;
#endif
  case EAI_MEMORY:
    return UV_EAI_MEMORY;
  case EAI_SYSTEM:
    return sys_errno > 0 ? -sys_errno : UV_EAI_FAIL;
  default:
    return UV_EAI_FAIL;
  }
}

/* An answer for e: kept in the table (an answer nobody waits for any more
 * still serves the next request), then given to every waiter of the
 * lookup. */
static void deliver(struct pc_http_resolver *r, struct job *j)
{
  struct entry *e = j->e;
  e->job = NULL;
  free(e->resolve);
  e->resolve = NULL;
  int err = 0;
  if (j->addrs) {
    e->resolve = pc_asprintf("+%s:%s", e->key, j->addrs);
    e->resolved_at = uv_now(r->loop);
    e->handed = !pc_queue_empty(&e->waiters);
  } else if (j->eai) {
    err = uv_err_of(j->eai, j->sys_errno);
  }
  if (pc_log_enabled(PC_LOG_DEBUG)) {
    double ms = (double)(uv_hrtime() - j->t0) / 1e6;
    if (j->addrs)
      pc_log(PC_LOG_DEBUG, NULL, "http: %.*s resolved in %.1fms: %s", (int)e->hostlen, e->key,
             ms, j->addrs);
    else
      pc_log(PC_LOG_DEBUG, NULL, "http: %.*s did not resolve (%.1fms): %s", (int)e->hostlen,
             e->key, ms,
             j->eai == EAI_SYSTEM && j->sys_errno ? strerror(j->sys_errno)
             : j->eai ? gai_strerror(j->eai) : "no address libcurl can use");
  }
  job_free(j);
  /* New waiters (a callback may start a request for the same name after a
   * failure) wait for a new lookup: deliver to this batch only. */
  struct pc_queue batch;
  pc_queue_init(&batch);
  pc_queue_move(&e->waiters, &batch);
  e->busy = true;
  while (!r->closing && !pc_queue_empty(&batch)) {
    struct pc_http_lookup *lk =
        pc_queue_data(pc_queue_head(&batch), struct pc_http_lookup, q);
    detach(r, lk);
    lk->cb(lk, err, e->resolve);
  }
  while (!pc_queue_empty(&batch)) /* closing: no callback any more */
    detach(r, pc_queue_data(pc_queue_head(&batch), struct pc_http_lookup, q));
  e->busy = false;
  entry_gc(r, e);
}

static void on_answers(uv_async_t *a)
{
  struct pc_http_resolver *r = PC_CONTAINER_OF(a, struct pc_http_resolver, async);
  struct pc_queue done;
  pc_queue_init(&done);
  pthread_mutex_lock(&r->pool->mu);
  pc_queue_move(&r->pool->done, &done);
  pthread_mutex_unlock(&r->pool->mu);
  while (!pc_queue_empty(&done)) {
    struct pc_queue *q = pc_queue_head(&done);
    pc_queue_remove(q);
    struct job *j = pc_queue_data(q, struct job, q);
    if (r->closing)
      job_free(j);
    else
      deliver(r, j);
  }
}

static void on_bound(uv_timer_t *t)
{
  struct pc_http_resolver *r = PC_CONTAINER_OF(t, struct pc_http_resolver, timer);
  uint64_t now = uv_now(r->loop);
  r->timer_due = 0;
  while (!r->closing && !pc_queue_empty(&r->timed)) {
    struct pc_http_lookup *lk =
        pc_queue_data(pc_queue_head(&r->timed), struct pc_http_lookup, timed);
    if (lk->deadline > now)
      break;
    struct entry *e = detach(r, lk);
    unwanted(r, e);
    lk->cb(lk, UV_ETIMEDOUT, NULL);
  }
  rearm(r);
}

/* ================================================================== API */

static bool env_set(const char *name)
{
  const char *v = getenv(name);
  return v && *v;
}

/* The schemes a proxy of the environment may serve, as libcurl 7.88 reads
 * the variables (lib/url.c, detect_proxy): http_proxy (never HTTP_PROXY)
 * for http, https_proxy or HTTPS_PROXY for https, all_proxy or ALL_PROXY
 * for both. no_proxy is not read: a URL it exempts is still left to
 * libcurl, which is only slower to cancel, never wrong. */
static unsigned proxy_schemes(void)
{
  bool all = env_set("all_proxy") || env_set("ALL_PROXY");
  unsigned p = 0;
  if (all || env_set("http_proxy"))
    p |= 1;
  if (all || env_set("https_proxy") || env_set("HTTPS_PROXY"))
    p |= 2;
  return p;
}

/* libcurl asks getaddrinfo for IPv4 only when it cannot make an IPv6
 * socket (lib/connect.c, Curl_ipv6works); so does pacer. */
static int lookup_family(void)
{
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return AF_INET;
  close(fd);
  return AF_UNSPEC;
}

struct pc_http_resolver *pc_http_resolver_new(uv_loop_t *loop)
{
  struct pc_http_resolver *r = pc_xcalloc(1, sizeof *r);
  int err = uv_async_init(loop, &r->async, on_answers);
  if (err) {
    pc_log(PC_LOG_DEBUG, NULL, "http: no resolver (%s): libcurl resolves names itself",
           uv_strerror(err));
    free(r);
    return NULL;
  }
  uv_unref((uv_handle_t *)&r->async);
  uv_timer_init(loop, &r->timer);
  r->loop = loop;
  r->proxy = proxy_schemes();
  r->family = lookup_family();
  r->nbuckets = TABLE_MIN;
  r->buckets = pc_xcalloc(r->nbuckets, sizeof *r->buckets);
  r->last_sweep = uv_now(loop);
  pc_queue_init(&r->timed);
  struct pool *p = pc_xcalloc(1, sizeof *p);
  pthread_mutex_init(&p->mu, NULL);
  pc_queue_init(&p->todo);
  pc_queue_init(&p->done);
  p->refs = 1;
  p->async = &r->async;
  r->pool = p;
  return r;
}

enum pc_http_resolve_need pc_http_resolver_start(struct pc_http_resolver *r, const char *url,
                                                 double bound_ms, struct pc_http_lookup *lk,
                                                 pc_http_lookup_cb cb, const char **resolve)
{
  char key[HOST_MAX + 8];
  int port;
  if (!r || r->closing || !pc_http__resolve_target(url, r->proxy, key, HOST_MAX + 1, &port))
    return PC_HTTP_RESOLVE_NONE;
  size_t hostlen = strlen(key);
  snprintf(key + hostlen, sizeof key - hostlen, ":%d", port);
  uint32_t h = hash_of(key);
  uint64_t now = uv_now(r->loop);
  struct entry *e = entry_find(r, key, h);
  if (e && e->resolve && now - e->resolved_at < PC_HTTP_RESOLVE_FRESH_MS) {
    if (e->handed)
      return PC_HTTP_RESOLVE_NONE; /* libcurl's cache has it */
    e->handed = true;
    *resolve = e->resolve;
    return PC_HTTP_RESOLVE_READY;
  }
  if (!e)
    e = entry_new(r, key, hostlen, h, now);
  if (!e->job)
    start_job(r, e);
  join(r, e, lk, bound_ms, cb);
  return PC_HTTP_RESOLVE_WAIT;
}

void pc_http_resolver_abandon(struct pc_http_resolver *r, struct pc_http_lookup *lk)
{
  if (!r)
    return;
  struct entry *e = detach(r, lk);
  if (e)
    unwanted(r, e);
}

void pc_http_resolver_not_handed(struct pc_http_resolver *r, const char *resolve)
{
  if (!r || r->closing || !resolve || resolve[0] != '+')
    return;
  const char *colon = strchr(resolve + 1, ':');
  const char *end = colon ? strchr(colon + 1, ':') : NULL;
  if (!end || (size_t)(end - resolve) > HOST_MAX + 7)
    return;
  char key[HOST_MAX + 8];
  memcpy(key, resolve + 1, (size_t)(end - resolve - 1));
  key[end - resolve - 1] = '\0';
  struct entry *e = entry_find(r, key, hash_of(key));
  if (e && e->resolve && strcmp(e->resolve, resolve) == 0)
    e->handed = false;
}

static void on_closed(uv_handle_t *h)
{
  struct pc_http_resolver *r = h->data;
  if (--r->pending_closes > 0)
    return;
  for (size_t i = 0; i < r->nbuckets; i++) {
    struct entry *e = r->buckets[i];
    while (e) {
      struct entry *next = e->next;
      free(e->key);
      free(e->resolve);
      free(e);
      e = next;
    }
  }
  free(r->buckets);
  free(r);
}

void pc_http_resolver_close(struct pc_http_resolver *r)
{
  if (!r || r->closing)
    return;
  /* Waiters left behind by the owner get no callback. */
  for (size_t i = 0; i < r->nbuckets; i++)
    for (struct entry *e = r->buckets[i]; e; e = e->next)
      while (!pc_queue_empty(&e->waiters))
        detach(r, pc_queue_data(pc_queue_head(&e->waiters), struct pc_http_lookup, q));
  r->closing = true;
  /* Let go of the pool: queued jobs and unread answers are freed, and a
   * thread still inside getaddrinfo frees its own job when it returns. */
  struct pool *p = r->pool;
  r->pool = NULL;
  pthread_mutex_lock(&p->mu);
  p->async = NULL;
  struct pc_queue drop;
  pc_queue_init(&drop);
  pc_queue_move(&p->todo, &drop);
  pc_queue_move(&p->done, &drop);
  bool last = --p->refs == 0;
  pthread_mutex_unlock(&p->mu);
  while (!pc_queue_empty(&drop)) {
    struct pc_queue *q = pc_queue_head(&drop);
    pc_queue_remove(q);
    job_free(pc_queue_data(q, struct job, q));
  }
  if (last)
    pool_free(p);
  for (size_t i = 0; i < r->nbuckets; i++)
    for (struct entry *e = r->buckets[i]; e; e = e->next)
      e->job = NULL; /* freed above, or its thread's */
  r->pending_closes = 2;
  r->async.data = r;
  r->timer.data = r;
  uv_close((uv_handle_t *)&r->async, on_closed);
  uv_close((uv_handle_t *)&r->timer, on_closed);
}

void pc_http_resolver_stats(const struct pc_http_resolver *r, struct pc_http_resolver_stats *out)
{
  memset(out, 0, sizeof *out);
  if (!r || !r->pool)
    return;
  out->lookups = r->lookups;
  pthread_mutex_lock(&r->pool->mu);
  out->max_threads = r->pool->max_running;
  pthread_mutex_unlock(&r->pool->mu);
}
