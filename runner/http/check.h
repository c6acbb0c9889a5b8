/* check.h: the load-time checks of a request's options: a step's `http:`
 * map and the workflow's `defaults.http`, checked on the YAML nodes so that
 * every problem is reported with its position, before anything runs:
 * against the parameter tables (params.h), then the rules a table cannot
 * say. Values written with ${{ }} are checked when they are evaluated, by
 * the same tables and spec.c, with the same messages. */
#ifndef PACER_HTTP_CHECK_H
#define PACER_HTTP_CHECK_H

#include "model/workflow.h"

struct pc_lua;

/* The `http` action's load hook: checks the step's `http:` value (a map,
 * or one expression that makes it), sets st->params and, for a method
 * known now that is not idempotent, st->unsafe_method. 0 or -1 (reported
 * with pc_load_error). */
int pc_http_load_step(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v);
/* The `http` action's defaults hook: validates `defaults.http` (a map) at
 * load time against pc_http_defaults_params (the request options that make
 * sense for every step, and the run-wide max_connections,
 * max_connections_per_host and trace_context, which must be written out),
 * then the rules a table cannot say. Reports with pc_load_error; returns
 * the template (the workflow keeps it: pc_workflow_defaults), or NULL. */
struct pc_tmpl *pc_http_load_defaults(struct pc_load_ctx *c, const struct pc_node *map);

/* The `http` action's load check (after every step is loaded): warns
 * (pc_diag_warn, at the step's `concurrency`) about each step that sends
 * requests with a `concurrency` above the run's connection cap
 * (defaults.http.max_connections, 100 unless set; 0 is no cap): only that
 * many requests are on the wire at once over HTTP/1.1, the rest wait in
 * the session's queue (issue 16). A step under such a step gets no second
 * warning. Returns 0. */
int pc_http_load_check(struct pc_lua *h, struct pc_workflow *wf, const struct pc_load_opts *opts,
                       struct pc_diag *d);

#endif
