/* action.h: the `http` action, and the run's HTTP session it shares with
 * the Lua API (pacer.http). An attempt evaluates the step's options, merges
 * them over defaults.http, starts a request on the run's session and fills
 * the step's result when it completes (spec.h, request.h, result.h). The
 * run's session is made on the first request and closed by the action's
 * run_cleanup. See docs/http.md. */
#ifndef PACER_HTTP_ACTION_H
#define PACER_HTTP_ACTION_H

#include "http/session.h"
#include "model/action.h"

struct pc_run;

extern const struct pc_action_ops pc_http_ops;

/* The run's session, created on first use with the limits of
 * defaults.http; NULL if libcurl cannot be initialised (logged;
 * pc_curl_load_error says why). */
struct pc_http_session *pc_http_session_of(struct pc_run *run);
/* Copies the statistics of the run's session (zeros if it made no request)
 * into *out; free with pc_http_stats_free. The session is closed by
 * run_cleanup, so take the copy before that. */
void pc_http_stats_get(struct pc_run *run, struct pc_http_stats *out);

#endif
