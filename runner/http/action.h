/* action.h: the `http` action. An attempt evaluates the step's options,
 * merges them over defaults.http, starts a request on the run's session
 * (run.h, shared with pacer.http) and fills the step's result when it
 * completes (spec.h, request.h, result.h). See docs/http.md. */
#ifndef PACER_HTTP_ACTION_H
#define PACER_HTTP_ACTION_H

#include "model/action.h"

extern const struct pc_action_ops pc_http_ops;

#endif
