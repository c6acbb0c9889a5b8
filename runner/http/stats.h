/* stats.h: an HTTP session's statistics (struct pc_http_stats, what
 * pc_http_session_stats copies out) and how it counts them (stats.c): the
 * totals and the entries by origin,
 * and the URL prefix of the last request counted, which finds its origin's
 * entry again without parsing the URL. Zero-initialised is empty. */
#ifndef PC_HTTP_STATS_H
#define PC_HTTP_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>


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
  uint64_t lookups;     /* names pacer resolved (getaddrinfo calls; resolve.h) */
  uint64_t queued;      /* requests that waited in the session's queue (see "Admission") */
  uint64_t admitted_max; /* the most transfers handed to libcurl at once (resolving or in it) */
  uint64_t handles;     /* easy handles made (curl_easy_init); idle ones are reused */
  unsigned lookup_threads; /* the most resolver threads that ran at once */
  struct pc_http_host_stats *hosts;
  size_t nhosts;
};

void pc_http_stats_free(struct pc_http_stats *st);

struct pc_http_counts {
  struct pc_http_stats stats;
  char *last_prefix; /* "scheme://authority" of the URL last counted, as written */
  size_t last_host;  /* its entry in stats.hosts */
};

/* Adds one transfer's figures d, made to url, to the totals and to its
 * origin's entry; `failed` counts it as failed. */
void pc_http_counts_add(struct pc_http_counts *c, const char *url,
                        const struct pc_http_host_stats *d, bool failed);
/* *out = a copy of the figures, its hosts the caller's (pc_http_stats_free). */
void pc_http_counts_copy(const struct pc_http_counts *c, struct pc_http_stats *out);
void pc_http_counts_free(struct pc_http_counts *c);

#endif
