/* action.h: the interface between the engine and the step actions (sleep,
 * log, http, exec, lua, ...): the action table, one attempt, and the few
 * services of the run an action may call. The engine owns scheduling,
 * pools, timeouts, retries, expectations and results; an action only
 * performs one attempt.
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

#include <uv.h>

#include "base/queue.h"
#include "base/sleep.h"
#include "base/util.h"
#include "model/workflow.h"

struct pc_lua;
struct pc_run;
struct pc_lua;
struct pc_pool;

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
  /* For an action that waits for time (the sleep action): a sleep of the
   * run's shared timers (base/sleep.h). */
  struct pc_sleep sleep;
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

/* Ends the attempt: exactly once per attempt that was not cancelled, from
 * start() itself or later from a loop callback. The engine takes it up from
 * its drain (see pc_run_defer), never inside this call. */
void pc_attempt_done(struct pc_attempt *a, enum pc_fail fail, const char *msg);

/* ------------------------------------------------------------ run services */

/* What an action may ask of the run its attempt belongs to. The engine
 * (runner/core/) implements them; they are declared here so that actions
 * depend on this interface and never on the engine. */

uv_loop_t *pc_run_loop(struct pc_run *run);
struct pc_lua *pc_run_lua(struct pc_run *run);
const struct pc_workflow *pc_run_workflow_def(struct pc_run *run);
/* The workflow deadline as a pc_mono_ms() time (INFINITY without one),
 * and when the run started (pc_mono_ms()). For guards that must act while
 * the loop is blocked (the Lua CPU guard). */
double pc_run_deadline_ms(struct pc_run *run);
double pc_run_started_ms(struct pc_run *run);
/* The run's pool named `name` (see pool.h), or NULL. */
struct pc_pool *pc_run_pool(struct pc_run *run, const char *name);
/* A run-wide slot per action (e.g. the HTTP session), freed by the action's
 * run_cleanup. */
void **pc_run_action_slot(struct pc_run *run, enum pc_action a);
/* Deferred work: a callback run from the engine's drain, never from inside
 * the caller. Lua coroutines are resumed this way (the "one place that
 * resumes Lua"), anything completing inside a library callback can use it
 * to get back to a clean stack, and the engine's own tasks wait on the same
 * queue. Entries run in the order they were deferred. The struct is
 * embedded by its owner, who must cancel it before freeing it; a zeroed one
 * is not queued, so owners need not initialise it. */
struct pc_deferred {
  struct pc_queue node; /* on the run's queue while deferred */
  void (*cb)(struct pc_deferred *d);
};
static inline bool pc_deferred_queued(const struct pc_deferred *d)
{
  return d->node.next != NULL && !pc_queue_empty(&d->node);
}
/* Queues `d` to run `cb`; if it is queued already it keeps its place (and
 * runs the new cb). */
void pc_run_defer(struct pc_run *run, struct pc_deferred *d, void (*cb)(struct pc_deferred *d));
void pc_run_defer_cancel(struct pc_run *run, struct pc_deferred *d);
/* A display label for a step: its name, else its id, else the action, with
 * the file position: "fetch (wf.yml:12)". Returns a malloc'd string. */
char *pc_step_label(const struct pc_step *s);
/* The label of the step instance an attempt belongs to, as the engine's
 * own log lines name it: pc_step_label, and for a fan-out item or a step
 * inside a fan-out body, the item ("stories[3] 40000003 / fetch
 * (wf.yml:14)"). For the lines an action logs itself (a program's output).
 * Returns a malloc'd string. */
char *pc_attempt_label(struct pc_attempt *a);

#endif
