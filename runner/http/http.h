/* http.h: the `http` action and the HTTP session it shares with the Lua API
 * (`pacer.http.request`).
 *
 * A session is one libcurl multi handle driven by a libuv loop (one
 * uv_timer_t, one uv_poll_t per socket): every request of a run goes through
 * it, so connections are kept alive and reused across steps and HTTP/2 is
 * multiplexed. The run's session (pc_http_session_of) is created on the
 * first request and closed by the action's run_cleanup; tests can make
 * their own with pc_http_session_new. See docs/http.md. */
#ifndef PACER_HTTP_H
#define PACER_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "model/action.h"
#include "script/luahost.h"
#include "model/workflow.h"

extern const struct pc_action_ops pc_http_ops;

#define PC_HTTP_MAX_RESPONSE_DEFAULT ((int64_t)64 << 20) /* max_response_bytes */
#define PC_HTTP_MAX_REDIRECTS 10
#define PC_HTTP_MAX_CONNECTIONS_DEFAULT 100 /* total; as aiohttp's TCPConnector */
#define PC_HTTP_MAX_PER_HOST_DEFAULT 0      /* 0: no per-host limit */

/* Validates `defaults.http` (a map) at load time: the request options that
 * make sense for every step (query, headers, connect_timeout,
 * follow_redirects, http_version, insecure, ca_file, max_response_bytes)
 * plus the run-wide max_connections and max_connections_per_host, which
 * must be plain integers. Reports with pc_load_error; returns 0 or -1. The
 * caller keeps the template (wf->http_defaults). */
int pc_http_load_defaults(struct pc_load_ctx *c, const struct pc_node *map);

/* -------------------------------------------------------------- sessions */

struct pc_run;
struct pc_http_session;
struct pc_http_req;

struct pc_http_limits {
  long max_connections;  /* CURLMOPT_MAX_TOTAL_CONNECTIONS; 0: unlimited */
  long max_per_host;     /* CURLMOPT_MAX_HOST_CONNECTIONS; 0: unlimited */
};

/* Returns NULL only if libcurl cannot be initialised (message on stderr). */
struct pc_http_session *pc_http_session_new(uv_loop_t *loop, const struct pc_http_limits *lim);
/* Stops every request still running (their callbacks are not called),
 * closes the connections and the loop handles, and frees the session once
 * the last handle is closed: run the loop afterwards until it returns.
 * With -v, logs the statistics first. Idempotent for NULL. */
void pc_http_session_close(struct pc_http_session *s);
/* The run's session, created on first use with the limits of
 * defaults.http; NULL if libcurl cannot be initialised. */
struct pc_http_session *pc_http_session_of(struct pc_run *run);

/* Pushes a new table: the run's defaults.http (evaluated in `scope_ref`)
 * with the options table at `idx` merged over it (`headers` key by key,
 * names compared case-insensitively; `query` key by key; the step wins).
 * Returns 0, or -1 with *err set (malloc'd) and nothing pushed. */
int pc_http_push_merged(struct pc_run *run, int idx, int scope_ref, char **err);

/* What a finished request reports. Valid only during the callback. */
struct pc_http_result {
  enum pc_fail fail;     /* PC_FAIL_NONE: a complete response arrived */
  const char *error;     /* the message when fail != PC_FAIL_NONE */
  int status;            /* HTTP status; 0 if no response arrived */
  double retry_after_ms; /* from Retry-After; < 0 if none */
  /* No byte of the request (nor of any request of its redirect chain) can
   * have reached a server: it failed before libcurl had a connection to
   * send it on (refused, DNS, TLS handshake, connect timeout). Retrying
   * it is safe whatever the method. */
  bool nothing_sent;
  const struct pc_http_req *req; /* for pc_http_result_fill */
};

/* Called exactly once per request that was not cancelled, from a libuv
 * callback (never inside libcurl): Lua glue must get back to a clean stack
 * (pc_run_defer) before resuming a coroutine. The request is freed when it
 * returns. The callback may start or cancel other requests. */
typedef void (*pc_http_done_cb)(void *data, const struct pc_http_result *r);

struct pc_http_start_opts {
  const char *label; /* names the step in log lines (borrowed; NULL: "http") */
  /* save_to keeps the file only when the status is in these ranges
   * (the step's expect.status); NULL/0: any status below 400. */
  const struct pc_status_range *save_ok;
  size_t nsave_ok;
  bool allow_timeout; /* accept the `timeout` option (the Lua API; a step has its own) */
};

/* Starts a request described by the options table at `idx` (as the `http`
 * action takes them, already merged with the defaults). Returns 0 and sets
 * *out, or -1 with *err set (malloc'd) when the options are invalid or the
 * request cannot start; the callback is then never called. */
int pc_http_start(struct pc_http_session *s, struct pc_lua *h, int idx,
                  const struct pc_http_start_opts *o, pc_http_done_cb cb, void *data,
                  struct pc_http_req **out, char **err);
/* Stops a request that has not reported: it is removed from the multi
 * handle at once, its save_to temporary file is removed, and its callback
 * never fires. Call it from a loop callback, not from inside libcurl. */
void pc_http_cancel(struct pc_http_req *r);
/* Whether the method is not idempotent (POST, PATCH, ...; retried only
 * with retry.unsafe). */
bool pc_http_req_non_idempotent(const struct pc_http_req *r);
/* Whether nothing of the request can have reached a server yet (see
 * pc_http_result.nothing_sent); for an attempt cancelled before it ended. */
bool pc_http_req_nothing_sent(const struct pc_http_req *r);

/* Sets the result fields of SPEC §3 in the table at `idx`: method and url
 * always; status, url (final), http_version, reused, and body (or
 * saved_to) when a response arrived. headers, timing and json are built
 * on first access (a metatable shared by every result of the Lua state:
 * __index, and __pairs, which builds headers and timing first); `json`
 * raises "response body of ... is not JSON: ..." if the body is not. The
 * table keeps no reference to the request. Returns 0, or -1 with *err set
 * (malloc'd: "METHOD URL: the response does not fit in memory ...") when
 * the Lua state runs out of memory (a body larger than what is left, under
 * ulimit -v or --lua-memory): the table is then incomplete, and the caller
 * fails the request with that message. */
int pc_http_result_fill(const struct pc_http_result *r, struct pc_lua *h, int idx, char **err);

/* ------------------------------------------------------------ statistics */

struct pc_http_host_stats {
  char *host; /* "scheme://host:port" */
  uint64_t requests, connections, reused, bytes_down, bytes_up;
};

struct pc_http_stats {
  uint64_t requests;    /* requests that finished (any outcome) */
  uint64_t failed;      /* of those, without a complete response */
  uint64_t cancelled;   /* stopped before they finished */
  uint64_t connections; /* new connections opened */
  uint64_t reused;      /* requests that needed no new connection */
  uint64_t bytes_down;  /* headers + body as received */
  uint64_t bytes_up;    /* request headers + body */
  uint64_t sockets;     /* sockets watched: one poll context each, kept while it is open */
  struct pc_http_host_stats *hosts;
  size_t nhosts;
};

/* Copies the statistics of the run's session (zeros if it made no request)
 * into *out; free with pc_http_stats_free. The session is closed by
 * run_cleanup, so take the copy before that. */
void pc_http_stats_get(struct pc_run *run, struct pc_http_stats *out);
void pc_http_session_stats(const struct pc_http_session *s, struct pc_http_stats *out);
void pc_http_stats_free(struct pc_http_stats *st);

#endif
