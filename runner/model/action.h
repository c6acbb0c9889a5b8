/* action.h: the interface between the engine and the step actions (sleep,
 * log, http, exec, lua, ...). The engine owns scheduling, pools, timeouts,
 * retries, expectations and results; an action only performs one attempt.
 *
 * Life of an attempt: the engine evaluates the step's `params` template into
 * a Lua value (a->params_ref), creates an empty result table (a->result_ref)
 * and calls ops->start(a). The action fills result fields and calls
 * pc_attempt_done() exactly once, from start() itself or later from a loop
 * callback. If the engine must stop the attempt first (timeout, sibling
 * failure, signal), it calls ops->cancel(a) instead: cancel stops every
 * pending operation synchronously, frees a->data, and afterwards no callback
 * of the attempt may fire and pc_attempt_done must not be called. */
#ifndef PACER_ACTION_H
#define PACER_ACTION_H

#include <stdbool.h>

#include "base/util.h"
#include "model/workflow.h"

struct pc_lua;
struct pc_run;

enum pc_fail {
  PC_FAIL_NONE = 0, /* the attempt ran; the engine checks expectations next */
  PC_FAIL_NETWORK,  /* connection refused, DNS, reset, TLS, ... (HTTP) */
  PC_FAIL_ERROR,    /* any other error: bad parameter, Lua error, cannot start a process */
  PC_FAIL_TIMEOUT,  /* the action's own timeout (not the step's) */
  PC_FAIL_EXPECT,   /* the action itself decided an expectation failed (assert) */
};

struct pc_attempt {
  struct pc_run *run;         /* borrowed */
  const struct pc_step *step; /* borrowed */
  int scope_ref;   /* borrowed: scope for any expression the action evaluates */
  int params_ref;  /* evaluated `params` (LUA_NOREF if the step has none); engine-owned */
  int result_ref;  /* result table to fill; engine-owned */
  int number;      /* 1-based attempt number */
  void *data;      /* action-private state */
  /* Filled by the action for expectation and retry decisions. */
  int status;            /* HTTP status, 0 if none */
  int exit_code;         /* process exit code, -1 if none */
  double retry_after_ms; /* Retry-After, < 0 if none */
  bool non_idempotent;   /* not retried unless retry.unsafe ... */
  bool nothing_sent;     /* ... or unless it failed before anything was sent */
  /* Free for the action: links for a list of its own (sleep). */
  struct pc_attempt *prev, *next;
};

struct pc_action_ops {
  enum pc_action action;
  const char *key; /* the YAML key: "sleep", "http", ... */
  /* Load time: validate the action's value and set st->params (and anything
   * else the action needs). Report problems with pc_load_error. 0 or -1. */
  int (*load)(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *value);
  void (*start)(struct pc_attempt *a);
  void (*cancel)(struct pc_attempt *a);
  /* Optional: appends context to an expectation failure message, e.g.
   * "GET http://host/x: 503: <body excerpt>". Called with params_ref and
   * result_ref still valid. */
  void (*describe)(struct pc_attempt *a, struct pc_buf *out);
  /* Optional: writes what the attempt does, e.g. "GET http://host/x", which
   * the engine puts before the messages it makes itself ("GET
   * http://host/x: timed out after 500ms"). Called after cancel, with
   * result_ref still valid. */
  void (*subject)(struct pc_attempt *a, struct pc_buf *out);
  /* Optional: a second SIGINT/SIGTERM makes pacer exit at once; this is
   * the action's last chance to stop what would outlive it (process groups).
   * It must not wait, allocate or touch the loop. */
  void (*kill_now)(struct pc_run *run);
  /* Called once when the run is torn down, for run-wide state (NULL if none). */
  void (*run_cleanup)(struct pc_run *run);
  /* Optional, load time: a pass over the whole workflow after every step
   * is loaded and every expression compiled, for checks that need the Lua
   * host (finding and loading plugins, compiling inline code). pc_load
   * runs it when a step uses the action, once per load: actions that share
   * one pass give the same function, which runs once. Reports to `d`;
   * returns 0 or -1. */
  int (*load_check)(struct pc_lua *h, struct pc_workflow *wf, const struct pc_load_opts *opts,
                    struct pc_diag *d);
  unsigned default_on; /* retry.on when the step does not set it */
  bool has_status;     /* expect.status applies (default: status < 400) */
  bool has_exit_code;  /* expect.exit_code applies (default: 0) */
  /* The action writes fields into a->result_ref. Otherwise the engine
   * creates no result table before the attempt (unless expect.that reads
   * it) and a->result_ref is LUA_NOREF. */
  bool fills_result;
};

/* The action table; NULL for keys that are not leaf actions (steps, gather)
 * or not built in. */
const struct pc_action_ops *pc_action_find(const char *key);
const struct pc_action_ops *pc_action_ops(enum pc_action a);

void pc_attempt_done(struct pc_attempt *a, enum pc_fail fail, const char *msg);

#endif
