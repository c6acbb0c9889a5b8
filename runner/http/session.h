/* session.h: an HTTP session, the connection pool that every request of a
 * run goes through: one libcurl multi handle driven by a libuv loop (one
 * uv_timer_t, one uv_poll_t per socket), so connections are kept alive and
 * reused across steps, and HTTP/2 is negotiated and multiplexed over TLS.
 * The run's session is the `http` action's (http/action.h); tests make
 * their own. Requests are started on a session by request.h. Transport
 * only: no Lua. See docs/http.md, "Design note".
 *
 * The second half of this header is the session's side of a request,
 * for request.c alone (pc_http__ names): a request is a transfer on the
 * session, which owns the multi handle, the sockets, the idle easy handles
 * and the statistics; request.c owns everything about one request. */
#ifndef PACER_HTTP_SESSION_H
#define PACER_HTTP_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>
#include <uv.h>

#include "http/stats.h"
#include "base/queue.h"
#include "http/resolve.h"

#define PC_HTTP_MAX_CONNECTIONS_DEFAULT 100 /* total; as aiohttp's TCPConnector */
#define PC_HTTP_MAX_PER_HOST_DEFAULT 0      /* 0: no per-host limit */

struct pc_http_session;

struct pc_http_limits {
  long max_connections; /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0: unlimited */
  long max_per_host;    /* CURLMOPT_MAX_HOST_CONNECTIONS; 0: unlimited */
};

/* A session on `loop` (borrowed; it must outlive the session). `lim` NULL:
 * the defaults above. Returns NULL only if libcurl cannot be initialised
 * (logged). */
struct pc_http_session *pc_http_session_new(uv_loop_t *loop, const struct pc_http_limits *lim);
/* Makes s a background session (run-end exports, export/export.h): its
 * handles never keep the loop alive, so a request in flight does not hold
 * up the end of a run (whoever waits for it keeps the loop alive with a
 * handle of its own), and closing it logs no statistics (-v's totals are
 * the workflow's). Call it right after pc_http_session_new. */
void pc_http_session_background(struct pc_http_session *s);
/* Stops every request still running (their callbacks are not called),
 * closes the connections and the loop handles, and frees the session once
 * the last handle is closed: run the loop afterwards until it returns.
 * With -v, logs the statistics first. Idempotent for NULL. */
void pc_http_session_close(struct pc_http_session *s);

/* ------------------------------------------------------------ statistics */

/* struct pc_http_stats and pc_http_stats_free: http/stats.h. */

/* Copies the statistics of s (zeros for NULL) into *out; free the copy
 * with pc_http_stats_free. */
void pc_http_session_stats(const struct pc_http_session *s, struct pc_http_stats *out);

/* ===================================================== for request.c only */

struct pc_http__transfer;

struct pc_http__transfer_ops {
  /* The transfer got its slot (see "Admission"): the request takes its
   * easy handle (pc_http__easy_take) into t->easy and sets it up. Until
   * then a transfer has no handle (t->easy NULL): a queued request is its
   * spec and nothing of libcurl's. Returns CURLE_OK, or the error; on an
   * error t->easy may be set (the session ends the transfer through `done`
   * or its add fails, and the request gives the handle back). */
  CURLcode (*admit)(struct pc_http__transfer *t);
  /* libcurl finished the transfer (curl_multi_info_read, from a loop
   * callback, never inside libcurl). It is still in the multi handle and
   * on the live list: the request reads what it needs from the easy handle,
   * then takes it out with pc_http__transfer_remove. */
  void (*done)(struct pc_http__transfer *t, CURLcode rc);
  /* The session closes: the easy handle is cleaned up already (t->easy is
   * NULL); free the request without calling back. */
  void (*drop)(struct pc_http__transfer *t);
};

/* Admission. libcurl 7.88 keeps the transfers that wait for a connection
 * (CURLMOPT_MAX_TOTAL_CONNECTIONS) on a list it walks on every
 * curl_multi_remove_handle, so handing it 20,000 requests at once costs
 * O(N^2) (issue 16). The session hands libcurl at most as many transfers
 * as its connections can carry at once and keeps the rest in its own FIFO
 * queue (O(1) per request): max_connections transfers that cannot
 * multiplex, and PC_HTTP_STREAMS_PER_CONNECTION times as many that may
 * (HTTPS that may negotiate HTTP/2; libcurl's default
 * CURLMOPT_MAX_CONCURRENT_STREAMS). A transfer holds its slot from the
 * moment it is handed over until its request ends (redirects keep it:
 * pc_http__transfer_release). With max_connections 0 (no limit) or a
 * max_connections_per_host (libcurl alone knows which host has a free
 * connection), nothing waits in the session: every transfer goes to
 * libcurl at once, as before. A transfer's own timeout (t->timeout_ms)
 * counts its wait in the queue; the wait is not part of its timing. A
 * transfer that waits has no easy handle: it gets one (ops->admit) when
 * it gets its slot, so 20,000 requests handed over at once cost 20,000
 * small structs and as many easy handles as connections; one cancelled
 * or timed out while it waits never had a handle. */
#define PC_HTTP_STREAMS_PER_CONNECTION 100

/* What the session knows of a request: embedded in struct
 * pc_http_request, and the easy handle's CURLOPT_PRIVATE.
 *
 * Before a transfer goes into the multi handle, the session has the name
 * of its URL resolved (resolve.h) unless libcurl has it already: the
 * transfer then waits, on the live list but not in the multi handle
 * (`resolving`), and the request's bounds that cover name resolution
 * (connect_timeout, the Lua API's timeout) bound the wait; what is left of
 * them is set on the handle when it goes in. A failed or timed-out lookup
 * ends the transfer through `done` with CURLE_COULDNT_RESOLVE_HOST or
 * CURLE_OPERATION_TIMEDOUT and `lookup_failed` set: no transfer ran, so
 * the easy handle has nothing to say about it. */
struct pc_http__transfer {
  const struct pc_http__transfer_ops *ops;
  struct pc_http_session *s; /* borrowed */
  CURL *easy;                /* owned by the request; NULL until admitted, and once given back */
  struct pc_queue live;      /* on the session's live list while added (resolving or in the multi handle) */
  int open_errno; /* why the open-socket callback could not make a socket; 0: it could */
  /* Set by the request before each pc_http__transfer_add: */
  const char *url;           /* borrowed: the URL the handle is set to */
  double connect_timeout_ms; /* as set on the handle; <= 0: none */
  double timeout_ms;         /* as set on the handle; <= 0: none */
  bool mux;                  /* it may multiplex (HTTPS, HTTP/2 allowed): see "Admission" */
  bool h1;                   /* it can only speak HTTP/1 (see "Fresh connections") */
  bool no_lookup;            /* libcurl resolves what it connects to (a proxy, connect_to,
                              * a unix socket): pacer's resolver is not asked */
  /* The session's: */
  struct pc_queue wait;      /* on the session's queue while `queued` */
  bool queued;               /* waiting for a slot (also on the live list) */
  unsigned char slot;        /* 0: none; 1: a slot of a plain transfer; 2: of one that may multiplex */
  uint64_t queue_t0;         /* uv_hrtime() when it began to wait for a slot */
  bool resolving;            /* waiting for `lookup`; not in the multi handle */
  bool lookup_failed;        /* done() for a lookup that failed: no transfer ran */
  double lookup_ms;          /* time spent waiting for names, every hop of the request */
  uint64_t lookup_t0;        /* uv_hrtime() when the wait began */
  struct pc_http_lookup lookup;
  struct curl_slist *resolve; /* the CURLOPT_RESOLVE entry this hop carries (owned) */
  unsigned char conn;         /* 0: no connection, 1: opening one, 2: has one (prereq) */
  bool fresh_wait;            /* went in fresh; its first socket is not open yet */
};

/* Fresh connections. For each new transfer libcurl 7.88 walks every
 * connection to the host in search of an idle one to reuse: with 5,000
 * transfers at once to one host and no connection cap, that walk was
 * ~40% of the run's CPU time (bench w12; issue 16). In a session with no
 * connection cap (max_connections 0, no per-host limit) where every
 * transfer so far spoke only HTTP/1 (one transfer per connection), the
 * session counts the connections libcurl opened (its open and close
 * socket callbacks), those being opened and those in use (from the first
 * socket a transfer opens, or its prereq callback, until it leaves the
 * multi handle); when none can be idle, the transfer goes in with
 * CURLOPT_FRESH_CONNECT and libcurl skips the search. A transfer that may
 * multiplex turns this off for the session's life.
 *
 * libcurl 7.88 also walks the connection cache in every
 * curl_multi_remove_handle, up to the connection the transfer just gave
 * back (multi.c, close_connect_only), and connections are kept in the
 * order they were made: with 5,000 connections to one host that walk was
 * ~40% of the run's CPU time (w12) once the search above was gone. So in
 * such a session a fresh transfer beyond PC_HTTP_NOCAP_KEEP connections
 * goes in with CURLOPT_FORBID_REUSE: its connection is closed when it
 * ends, and is never in the walk of the ones that finish after it. The
 * session keeps PC_HTTP_NOCAP_KEEP connections for what comes next
 * (requests on them reuse them as always). */
#define PC_HTTP_NOCAP_KEEP 256
void pc_http__transfer_connected(struct pc_http__transfer *t);

/* An easy handle for a new transfer: an idle one (*primed: it still carries
 * the options every request sets; see pc_http__easy_recycle) or a new one
 * (*primed false). NULL if libcurl cannot make one. */
CURL *pc_http__easy_take(struct pc_http_session *s, bool *primed);
/* Gives an easy handle that is in no multi handle back to the idle list,
 * or cleans it up if the list is full or the session closes. `primed`: the
 * transfer set only the options every request sets (request.c's
 * set_constants), so the handle keeps them and skips curl_easy_reset;
 * its pointers into the finished request are cleared. Otherwise it is
 * reset. NULL is ignored. */
void pc_http__easy_recycle(struct pc_http_session *s, CURL *e, bool primed);
/* The session's socket callbacks, which every easy handle sets:
 * CURLOPT_OPENSOCKETFUNCTION (clientp: the transfer) and
 * CURLOPT_CLOSESOCKETFUNCTION (clientp: the session). */
curl_socket_t pc_http__open_socket_cb(void *clientp, curlsocktype purpose,
                                      struct curl_sockaddr *a);
int pc_http__close_socket_cb(void *clientp, curl_socket_t fd);
/* Adds the transfer to the live list and its easy handle to the multi
 * handle, once it has a slot (see "Admission"; at once if it holds one: a
 * redirect) and the name of t->url is resolved (at once if it need not
 * be). Returns CURLM_OK, or the error (nothing added). A transfer that
 * waited for its slot and then cannot go in ends through `done` with
 * `lookup_failed` set (nothing ran): CURLE_OPERATION_TIMEDOUT if the wait
 * used its timeout. */
CURLMcode pc_http__transfer_add(struct pc_http_session *s, struct pc_http__transfer *t);
/* Takes the transfer out of the multi handle and the live list (for a
 * finished one, or one about to be added again: a redirect); it forgets
 * the CURLOPT_RESOLVE entry the hop carried (libcurl has read it). */
void pc_http__transfer_remove(struct pc_http_session *s, struct pc_http__transfer *t);
/* The request of t ends (it follows no more redirects): t's slot goes to
 * the first transfer waiting for one. */
void pc_http__transfer_release(struct pc_http_session *s, struct pc_http__transfer *t);
/* Stops a transfer that has not finished: its lookup abandoned, out of
 * the queue, its slot given back, out of
 * the multi handle and the live list, its easy handle cleaned up (it may
 * carry an errno of its own: see request.c) and set to NULL, counted as
 * cancelled. Never waits: see docs/http.md, "Name resolution". */
void pc_http__transfer_cancel(struct pc_http_session *s, struct pc_http__transfer *t);
/* Adds one response (one request of a redirect chain, or the last) to the
 * statistics, under the origin of `url`; `d` holds its counts (d->host
 * unused). */
void pc_http__count(struct pc_http_session *s, const char *url,
                    const struct pc_http_host_stats *d, bool failed);
/* Logs the warning of insecure: true, once per host and session. */
void pc_http__warn_insecure(struct pc_http_session *s, const char *label, const char *url);
bool pc_http__closing(const struct pc_http_session *s);
/* The session's cookie jar, a share handle with CURL_LOCK_DATA_COOKIE
 * (NULL: none could be made). A request that keeps cookies sets it as its
 * handle's CURLOPT_SHARE; the session frees it after the last handle. */
CURLSH *pc_http__cookie_jar(const struct pc_http_session *s);

#endif
