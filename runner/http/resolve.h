/* resolve.h: host names resolved for the HTTP session off the loop thread,
 * on a few threads of pacer's own, so that nothing the loop does ever
 * waits for a name server: not a request's start, not its cancellation,
 * not the end of the run. Transport only: no Lua. The session (session.c)
 * asks before it adds a transfer to the multi handle; an answer is handed
 * to libcurl as a CURLOPT_RESOLVE entry ("+host:port:addr,addr", a
 * normal, expiring entry of libcurl's DNS cache), so libcurl finds the
 * name in its cache and never starts a resolver thread of its own.
 *
 * Why not libcurl's threaded resolver: libcurl 7.88 joins its resolver
 * thread when a transfer that is still resolving is removed (a cancel, a
 * timeout, the session's close), which blocked the whole loop until the
 * name server answered (issue 11). Why not uv_getaddrinfo: libuv runs at
 * most two lookups at once on its threadpool, and joins the pool's threads
 * when the process exits, so a lookup stuck on a dead name server would
 * hold up pacer's exit. Here a lookup nobody waits for any more is simply
 * abandoned: its thread finishes it and frees it.
 *
 * Ownership: the resolver is owned by the session and closed with it; it
 * frees itself when its two loop handles are closed. The state its
 * threads share (struct pool in resolve.c) is reference-counted and freed
 * by whichever of the resolver and the threads lets go of it last. A
 * lookup (struct pc_http_lookup) is embedded in its waiter (the session's
 * transfer), which owns it. See docs/http.md, "Name resolution". */
#ifndef PACER_HTTP_RESOLVE_H
#define PACER_HTTP_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "base/queue.h"

/* Lookups that run at once (a thread each); more wait for a free thread. */
#define PC_HTTP_RESOLVER_THREADS 16
/* How long an answer is used without asking again. libcurl keeps an entry
 * of its DNS cache 60 s from when it was handed over (whole seconds of the
 * wall clock), so it still has every answer pacer considers fresh. */
#define PC_HTTP_RESOLVE_FRESH_MS 55000

struct pc_http_resolver;
struct pc_http_lookup;

/* Called once per lookup that was not abandoned, from a loop callback of
 * the resolver (never inside pc_http_resolver_start). err: 0, or
 * UV_ETIMEDOUT when the lookup's bound passed first, or another negative
 * code when the name did not resolve (a getaddrinfo failure). With err 0,
 * `resolve` is the CURLOPT_RESOLVE entry to hand to libcurl (borrowed for
 * the call), or NULL when the answer has nothing libcurl could be given
 * (only link-local IPv6 addresses, which need a scope): libcurl resolves
 * the name itself then. The callback may start, cancel and abandon other
 * lookups and close the resolver. */
typedef void (*pc_http_lookup_cb)(struct pc_http_lookup *lk, int err, const char *resolve);

/* A waiter's place in the resolver, embedded in the waiter. Fields are the
 * resolver's; zero it before the first use. */
struct pc_http_lookup {
  struct pc_queue q;     /* on its entry's list of waiters */
  struct pc_queue timed; /* on the resolver's list of waiters with a bound */
  void *entry;           /* the name it waits for (resolve.c); NULL when not waiting */
  uint64_t deadline;     /* uv_now() past which it fails with UV_ETIMEDOUT; 0: none */
  pc_http_lookup_cb cb;
};

/* A resolver on `loop` (borrowed; it must outlive the resolver). Reads
 * the proxy variables of the environment once (a request a proxy may
 * carry is left to libcurl: it resolves the proxy's name, not the URL's).
 * Starts no thread until the first lookup. */
struct pc_http_resolver *pc_http_resolver_new(uv_loop_t *loop);
/* Abandons every lookup (no callback fires), closes the loop handles and
 * frees the resolver once they are closed: run the loop afterwards.
 * Threads still inside getaddrinfo finish on their own, detached; nothing
 * waits for them. Idempotent for NULL. */
void pc_http_resolver_close(struct pc_http_resolver *r);

enum pc_http_resolve_need {
  PC_HTTP_RESOLVE_NONE,  /* libcurl needs nothing from pacer: start the transfer */
  PC_HTTP_RESOLVE_READY, /* hand *resolve to libcurl (CURLOPT_RESOLVE), then start */
  PC_HTTP_RESOLVE_WAIT,  /* lk waits; its callback comes from a later loop callback */
};

/* What a transfer to `url` needs before it starts. NONE for an IP address,
 * `localhost`, a name pacer resolved less than PC_HTTP_RESOLVE_FRESH_MS
 * ago and handed to libcurl, and a URL whose name is left to libcurl (a
 * proxy in the environment for its scheme, a host name that is not plain
 * ASCII letters, digits, '-', '_' and '.', a URL libcurl will reject).
 * READY when a fresh answer has not reached libcurl's cache yet: *resolve
 * is valid until the next call into the resolver. WAIT otherwise: lk (not
 * waiting) joins the lookup of that name, started if none runs; bound_ms
 * >= 0 fails it with UV_ETIMEDOUT after that long (a request's
 * connect_timeout or timeout, which cover name resolution). This is the
 * hot path of every request: for an address or a fresh name it parses the
 * URL's authority and looks the name up in a table, nothing more. */
enum pc_http_resolve_need pc_http_resolver_start(struct pc_http_resolver *r, const char *url,
                                                 double bound_ms, struct pc_http_lookup *lk,
                                                 pc_http_lookup_cb cb, const char **resolve);
/* Stops waiting (no callback fires). A lookup no one else waits for is
 * dropped if it has not started, and otherwise left to its thread, whose
 * answer still goes into the table. Harmless for a lookup not waiting. */
void pc_http_resolver_abandon(struct pc_http_resolver *r, struct pc_http_lookup *lk);
/* A transfer that carried `resolve` (a READY answer, or one its callback
 * gave) was stopped before libcurl may have read it: the next transfer to
 * that name hands it over again. */
void pc_http_resolver_not_handed(struct pc_http_resolver *r, const char *resolve);

/* The name pacer resolves for `url`, as libcurl would ask for it: writes
 * it, lower-cased, into host (hostsz bytes) and its port into *port, and
 * returns true. False when nothing is to be resolved by pacer (see
 * pc_http_resolver_start; `proxy` says whether a proxy of the environment
 * may apply to the URL's scheme, bit 0 for http, bit 1 for https). Pure;
 * exposed for tests. */
bool pc_http__resolve_target(const char *url, unsigned proxy, char *host, size_t hostsz,
                             int *port);

/* Lookups started (getaddrinfo calls given to a thread) and the most
 * threads that ran at once, for tests and the -v statistics. */
struct pc_http_resolver_stats {
  uint64_t lookups;
  unsigned max_threads;
};
void pc_http_resolver_stats(const struct pc_http_resolver *r, struct pc_http_resolver_stats *out);

#endif
