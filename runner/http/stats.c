/* stats.c: what an HTTP session counts (session.h, struct pc_http_stats):
 * requests, connections, reuse and bytes, in all and by origin. A run's
 * requests mostly go to one or two origins, so the entries are a small
 * array searched in order, with the origin of the previous request
 * remembered by its URL prefix so the common case parses no URL.
 *
 * Ownership: a struct pc_http_counts owns its entries and their host
 * strings; pc_http_counts_copy makes a copy the caller frees with
 * pc_http_stats_free. No Lua, no libcurl: plain bookkeeping. */
#include "http/stats.h"

#include <stdlib.h>
#include <string.h>

#include "http/rules.h"
#include "base/util.h"

/* The statistics entry of url's origin. Requests to the origin of the
 * previous one, written the same way, find it without parsing the URL. */
static struct pc_http_host_stats *host_stats_of(struct pc_http_counts *c, const char *url)
{
  struct pc_http_stats *st = &c->stats;
  size_t plen = pc_http_url_prefix_len(url);
  if (c->last_prefix && plen && strlen(c->last_prefix) == plen &&
      memcmp(c->last_prefix, url, plen) == 0)
    return &st->hosts[c->last_host];
  char *host = pc_http_url_origin(url);
  size_t i = 0;
  while (i < st->nhosts && strcmp(st->hosts[i].host, host) != 0)
    i++;
  if (i == st->nhosts) {
    st->hosts = pc_xrealloc(st->hosts, (st->nhosts + 1) * sizeof *st->hosts);
    memset(&st->hosts[i], 0, sizeof *st->hosts);
    st->hosts[i].host = host;
    st->nhosts++;
  } else {
    free(host);
  }
  free(c->last_prefix);
  c->last_prefix = plen ? pc_xstrndup(url, plen) : NULL;
  c->last_host = i;
  return &st->hosts[i];
}

static void host_stats_add(struct pc_http_host_stats *hs, const struct pc_http_host_stats *d)
{
  hs->requests += d->requests;
  hs->connections += d->connections;
  hs->reused += d->reused;
  hs->bytes_down += d->bytes_down;
  hs->bytes_up += d->bytes_up;
}

void pc_http_counts_add(struct pc_http_counts *c, const char *url,
                        const struct pc_http_host_stats *d, bool failed)
{
  struct pc_http_stats *st = &c->stats;
  st->requests += d->requests;
  st->failed += failed;
  st->connections += d->connections;
  st->reused += d->reused;
  st->bytes_down += d->bytes_down;
  st->bytes_up += d->bytes_up;
  host_stats_add(host_stats_of(c, url), d);
}



void pc_http_counts_copy(const struct pc_http_counts *c, struct pc_http_stats *out)
{
  *out = c->stats;
  out->hosts = c->stats.nhosts ? pc_xcalloc(c->stats.nhosts, sizeof *out->hosts) : NULL;
  for (size_t i = 0; i < c->stats.nhosts; i++) {
    out->hosts[i] = c->stats.hosts[i];
    out->hosts[i].host = pc_xstrdup(c->stats.hosts[i].host);
  }
}

void pc_http_counts_free(struct pc_http_counts *c)
{
  free(c->last_prefix);
  c->last_prefix = NULL;
  pc_http_stats_free(&c->stats);
}

void pc_http_stats_free(struct pc_http_stats *st)
{
  for (size_t i = 0; i < st->nhosts; i++)
    free(st->hosts[i].host);
  free(st->hosts);
  st->hosts = NULL;
  st->nhosts = 0;
}
