/* spec.h: the options of a request as a workflow writes them, and as
 * pacer.http takes them, turned into a struct pc_http_spec (request.h).
 *
 * At run time, `defaults.http` is evaluated in the attempt's scope and
 * merged under the request's own options (pc_http_spec_merge), and the
 * merged Lua table is read into a spec (pc_http_spec_read), checked again
 * against the parameter table (params.h), since expressions and plugins
 * can make any value. The spec
 * borrows its strings from that table: it is valid while the table stays
 * on the stack, unchanged, which pc_http_spec_start guarantees for the
 * start of the request. With result.h, the only part of runner/http that
 * touches Lua besides the action. The load-time checks of the same options
 * are check.h's. */
#ifndef PACER_HTTP_SPEC_H
#define PACER_HTTP_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "http/params.h"
#include "http/request.h"
#include "http/session.h"
#include "http/spec_maps.h"
#include "model/workflow.h"

struct pc_lua;

/* The connection caps of defaults.http (its template; NULL: none), or the
 * defaults of session.h. */
void pc_http_limits_of(const struct pc_tmpl *defaults, struct pc_http_limits *lim);
/* Whether defaults.http.trace_context is true (its template; NULL: no):
 * requests then send a W3C traceparent header. */
bool pc_http_trace_context_of(const struct pc_tmpl *defaults);

/* ------------------------------------------------------------- run time */

/* struct pc_http_spec_mem: spec_maps.h */
void pc_http_spec_mem_free(struct pc_http_spec_mem *mem);

/* Pushes the options table at idx merged over defaults.http (`defaults`,
 * its template, evaluated in scope_ref; NULL: none): `headers` key by key,
 * names compared case-insensitively, `query` key by key, the rest as a
 * whole; the request wins, and the keys that only a request may have
 * (method, url, body, save_to, ...) never come from the defaults. Without
 * defaults, or when idx is not a table, pushes the value at idx itself.
 * Returns 0, or -1 with *err set (malloc'd) and nothing pushed. */
int pc_http_spec_merge(struct pc_lua *h, const struct pc_tmpl *defaults, int idx, int scope_ref,
                       char **err);
/* Reads the options table at idx into *sp (pc_http_spec_init, then every
 * option the table has; `timeout` only if allow_timeout: pacer.http has
 * one, a step has its own). Never raises: the table is read raw. Returns
 * 0, or -1 with *err set (malloc'd: "http.headers: ..."). *mem is set
 * either way. */
int pc_http_spec_read(struct pc_lua *h, int idx, bool allow_timeout, struct pc_http_spec *sp,
                      struct pc_http_spec_mem *mem, char **err);

/* How pc_http_spec_start reads the options. */
struct pc_http_spec_opts {
  const struct pc_tmpl *defaults; /* the workflow's defaults.http (borrowed; NULL: none) */
  int scope_ref;                  /* where it is evaluated */
  bool allow_timeout;
  const char *label; /* see struct pc_http_spec (borrowed for the call) */
  const struct pc_status_range *save_ok;
  size_t nsave_ok;
  /* A W3C traceparent value to send as a `traceparent` header (unless the
   * request sets one); NULL: none. Borrowed for the call. */
  const char *traceparent;
};

/* The one path from Lua options to a request, for the action and for
 * pacer.http: merges the options at idx over the defaults, reads them into
 * a spec and starts the request on s (pc_http_request_start: the same
 * callback rules). The stack is as it was afterwards. Returns 0 and sets
 * *out, or -1 with *err set (the callback is then never called). */
int pc_http_spec_start(struct pc_lua *h, int idx, const struct pc_http_spec_opts *o,
                       struct pc_http_session *s, pc_http_done_cb cb, void *data,
                       struct pc_http_request **out, char **err);

/* Appends the `curl` command line (curlcmd.h) of the request the options
 * at idx describe, merged over `defaults` as pc_http_spec_start merges
 * them; nothing when they cannot be read. The stack is as it was. */
void pc_http_spec_curl(struct pc_lua *h, int idx, const struct pc_tmpl *defaults, int scope_ref,
                       struct pc_buf *out);

#endif
