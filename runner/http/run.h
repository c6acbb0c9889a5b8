/* run.h: the run's HTTP state (run.c), shared by the `http` action and the
 * Lua API (pacer.http): the session, made on the first request with the
 * connection caps of defaults.http, its statistics as a report section,
 * and the labels of the steps that made requests lately. It lives as a run
 * hook (model/action.h): the run asks it for statistics and closes it at
 * the end; nothing else of the run knows it. See docs/http.md. */
#ifndef PACER_HTTP_RUN_H
#define PACER_HTTP_RUN_H

#include "http/session.h"
#include "model/action.h"

/* The hooks of the run's HTTP state: the action declares them, so that
 * every report has the `http` statistics section. */
extern const struct pc_run_hooks pc_http_run_hooks;

/* The run's session, created on first use with the limits of
 * defaults.http; NULL if libcurl cannot be initialised (logged;
 * pc_curl_load_error says why). */
struct pc_http_session *pc_http_session_of(struct pc_run *run);
/* pc_step_label(step), formatted once per step rather than per request
 * (the run keeps a few; the string lives as long as the run). */
const char *pc_http_step_label(struct pc_run *run, const struct pc_step *step);

/* defaults.http.trace_context (a plain boolean, read once per run): http
 * steps send a W3C traceparent header naming their attempt's span. */
bool pc_http_trace_context(struct pc_run *run);

#endif
