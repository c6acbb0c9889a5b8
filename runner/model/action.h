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
#include "base/trace.h"
#include "base/util.h"
#include "model/outcome.h"
#include "model/stats.h"
#include "model/workflow.h"

struct pc_lua;
struct pc_pool;
struct pc_run;
struct pc_run_hooks;

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

/* ------------------------------------------------------ parameter tables */

/* What an action's value is, declared once (as a luaL_Reg table lists a
 * library's functions): the loader checks a step's value against it with
 * positions (pc_load_params, or by itself for an action with no `load`),
 * the action checks a computed value against it when it runs
 * (script/params.h), and `pacer schema` writes the action's definition
 * from it (load/schema.c). What a table cannot say (an argv's items, the
 * names of env, a plugin's inputs) stays in the action's own load and
 * start, after the generic check. */
enum pc_param_type {
  PC_PARAM_ANY,      /* any value (log's text) */
  PC_PARAM_TEXT,     /* a scalar, taken as text: a string, a number or a boolean */
  PC_PARAM_NAME,     /* a non-empty string (a plugin's name) */
  PC_PARAM_CODE,     /* a non-empty string of code (a `|` block) */
  PC_PARAM_INT,      /* an integer, within min..max when max > min */
  PC_PARAM_NUMBER,   /* a number, within min..max when max > min */
  PC_PARAM_BOOL,     /* true or false */
  PC_PARAM_DURATION, /* "250ms", "2s" or a number of seconds */
  PC_PARAM_ENUM,     /* one of `allowed` */
  PC_PARAM_ARGV,     /* a list of text, at least one item */
  PC_PARAM_ENV,      /* a map of NAME (no "=") to text */
  PC_PARAM_EXPRS,    /* one bare expression or a list of them (assert) */
  /* A map (http's headers, auth, multipart): with `sub` keys, those keys
   * (none other; `sub` says which are required, and whether exactly one
   * is given); with a `sub` value, any names, each value that. */
  PC_PARAM_MAP,
  PC_PARAM_LIST, /* a list, each item `sub`'s value (http's connect_to) */
};

/* How a wrong-type message shows the value: its text ("\"many\"", or "a
 * list" for a collection), its kind ("a string", "a list"), or its kind
 * without an article (the `lua` action's older wording). */
enum pc_param_got { PC_GOT_VALUE, PC_GOT_KIND, PC_GOT_BARE_KIND, PC_GOT_TEXT };
/* PC_GOT_TEXT: a scalar's text as written, unquoted ("got soon", "got
 * 500"), anything else its kind without an article (http's wording). */

struct pc_params;

struct pc_param {
  const char *name;            /* the key in the map form; NULL for the whole value */
  enum pc_param_type type;
  const char *const *allowed;  /* PC_PARAM_ENUM: the values, NULL-terminated */
  double min, max;             /* PC_PARAM_INT, _NUMBER: bounds, when max > min */
  bool required;               /* the map form must have it */
  bool nullable;               /* null (nothing written) is accepted: "none" */
  bool static_only;            /* no ${{ }}: read at load time */
  const char *description;     /* for the schema; a required key's, in its message */
  /* Messages: "LABEL: expected EXPECT, got GOT[; HINT]". LABEL is `label`,
   * else KEY.NAME (KEY for the whole value); EXPECT is `expect`, else the
   * type's ("a string", "an integer from MIN to MAX", ...). An enum with
   * no `expect` says "LABEL: expected a, b or c (did you mean b?)" at
   * load time. */
  const char *label;
  const char *expect;
  const char *hint;
  enum pc_param_got got;
  /* Text that becomes a C string: the NUL-byte check (pc_load_no_nul)
   * names "LABEL[: NOUN]" and says which kind of text cannot hold it. */
  const char *nul_kind;
  const char *noun;
  /* PC_PARAM_MAP, _LIST: their keys or items (above). */
  const struct pc_params *sub;
  /* A second type the value may take instead (http's cookies: true, false
   * or a map): tried when the value is not of the first type's kind; the
   * messages are the first's. */
  const struct pc_param *alt;
  /* A computed string holding the value's text is taken (what ${{ }}
   * inside text makes: "true", "1.1", "10"), and the schema takes a
   * string too (http's booleans, numbers and versions). */
  bool from_text;
  /* With static_only: the message when it is computed anyway, after
   * "LABEL: " (else the generic one). */
  const char *static_why;
};

struct pc_params {
  const char *description; /* the action's value, for the schema */
  /* The short form, the value itself (`sleep: 1s`, `exec: [ls, -l]`), or
   * NULL when there is none. */
  const struct pc_param *value;
  /* The map form's keys (`exec: {command: ..., env: ...}`), or none. A
   * value that is a map takes this form when there are keys. */
  const struct pc_param *keys;
  size_t nkeys;
  /* The messages' KEY when it is not the action's key (defaults.http's
   * keys are named http.NAME), or NULL. */
  const char *prefix;
  /* As a `sub` of a map: exactly one of the keys is given (http's auth),
   * and what a key is called in its messages ("kind"; else "key"). */
  bool one_key;
  const char *one_why; /* with one_key: why one ("a request authenticates one way") */
  const char *key_noun;
  /* As a `sub` with a value and no keys: an item is named LABEL.NAME in
   * messages (http's multipart.PART), not "LABEL: the value of NAME". */
  bool item_labels;
  /* For the schema only: exactly one of these keys is given (http's URL:
   * `url` or a shorthand), NULL-terminated; the action's own load checks
   * it, with its own messages. */
  const char *const *one_of;
};

/* Load time: checks `v`, the value of the step's action `key`, against
 * `p`: which form it takes, unknown keys (with "did you mean"), required
 * keys, each value's type, bounds, allowed values, NUL bytes, and no
 * expression where static_only. `t` is the value's template (NULL: no
 * ${{ }} is read in it); a value that is one ${{ }} is checked when it
 * runs. Reports with positions; returns 0 or -1. Implemented by the
 * loader (load/params.c). */
int pc_load_params(struct pc_load_ctx *c, const char *key, const struct pc_params *p,
                   const struct pc_node *v, const struct pc_tmpl *t);
/* The param of the map form called `name`, or NULL. */
static inline const struct pc_param *pc_params_find(const struct pc_params *p, const char *name)
{
  for (size_t i = 0; p && i < p->nkeys; i++)
    if (strcmp(p->keys[i].name, name) == 0)
      return &p->keys[i];
  return NULL;
}
/* The types whose value is one scalar (a ${{ }} anywhere in it makes it
 * computed), as against a list or a map (only a value that is one ${{ }}
 * is computed). */
static inline bool pc_param_is_scalar(enum pc_param_type t)
{
  return t != PC_PARAM_ANY && t != PC_PARAM_ARGV && t != PC_PARAM_ENV && t != PC_PARAM_EXPRS &&
         t != PC_PARAM_MAP && t != PC_PARAM_LIST;
}

struct pc_action_ops {
  const char *key; /* the YAML key: "sleep", "http", ... */
  /* Load time: validate the action's value and set st->params (and anything
   * else the action needs; the step's whole map is st->node). Report
   * problems with pc_load_error. 0 or -1. */
  int (*load)(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *value);
  /* The action's parameter table (above), or NULL. With no `load`, the
   * loader makes st->params the value's template and checks it against
   * the table; a `load` calls pc_load_params itself, before or after its
   * own checks. `pacer schema` writes definitions.KEY from it. */
  const struct pc_params *params;
  /* Other keys of a step that belong to this action (uses: `with`),
   * NULL-terminated, or NULL. The loader accepts them on the action's
   * steps and refuses them elsewhere; the action's load reads them. */
  const char *const *step_keys;
  /* The action owns defaults.KEY when this is KEY (http: "http"), or NULL.
   * load_defaults checks its value and returns its template (which the
   * workflow keeps: pc_workflow_defaults), or NULL after reporting. */
  const char *defaults_key;
  struct pc_tmpl *(*load_defaults)(struct pc_load_ctx *c, const struct pc_node *value);
  /* The parameter table of defaults.KEY (a map form), or NULL. With no
   * load_defaults, the loader checks the value against it and keeps its
   * template; `pacer schema` writes definitions.KEY_defaults from it. */
  const struct pc_params *defaults_params;
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
  /* Optional: the result table at idx was read back from the journal
   * (--resume), where it was written as JSON; gives back what JSON does
   * not keep (http: the headers' lookup by a name in any case). */
  void (*restored)(struct pc_lua *h, int idx);
  /* The run-wide state the action keeps (see "Run hooks" below), or NULL:
   * the run asks it for statistics even when no step made it, so that
   * every report of a workflow shows the same sections. */
  const struct pc_run_hooks *hooks;
  /* Optional, load time: a pass over the whole workflow after every step
   * is loaded and every expression compiled, for checks that need the Lua
   * host (finding and loading plugins, compiling inline code). pc_load
   * runs it when a step uses the action, once per load: actions that share
   * one pass give the same function, which runs once. Reports to `d`;
   * returns 0 or -1. */
  int (*load_check)(struct pc_lua *h, struct pc_workflow *wf, const struct pc_load_opts *opts,
                    struct pc_diag *d);
  unsigned default_on; /* retry.on when the step does not set it */
  /* With default_on, the status codes retried when the step does not set
   * retry.on (http: a server saying "try again": 429, 502, 503, 504). */
  const int *default_codes;
  size_t ndefault_codes;
  bool has_status;     /* expect.status applies (default: status < 400) */
  bool has_exit_code;  /* expect.exit_code applies (default: 0) */
  /* The action writes fields into a->result_ref. Otherwise the engine
   * creates no result table before the attempt (unless expect.that reads
   * it) and a->result_ref is LUA_NOREF. */
  bool fills_result;
  /* Hash slots its result table is made with (0: 8, room for the engine's
   * common fields and a few of the action's). An HTTP result keeps all but
   * status in a record (http/result.c), so 1. */
  unsigned char result_slots;
  /* What the action reads at run time is its value (st->params) and its
   * defaults (defaults.KEY) only, evaluated by the engine: no code of the
   * action sees the step's scope. A fan-out over such a step whose value,
   * defaults, expect.that and outputs hold no expression gives its items
   * no scope (nothing could read `item`). */
  bool params_only;
  /* Code the action runs sees `steps` whole (uses, lua: Lua code), so every
   * step's result must be kept where it can be read. */
  bool reads_steps;
};

/* The ops of `key` in a NULL-terminated table of actions, or NULL. */
static inline const struct pc_action_ops *pc_actions_find(const struct pc_action_ops *const *t,
                                                          const char *key)
{
  for (; t && *t; t++)
    if (strcmp((*t)->key, key) == 0)
      return *t;
  return NULL;
}

/* The key a step is written with: its action's, or the group's. */
static inline const char *pc_step_key(const struct pc_step *st)
{
  return st->kind == PC_STEP_LEAF ? st->ops->key
         : st->kind == PC_STEP_GATHER  ? "gather"
         : st->nchildren               ? "steps"
                                       : "wait"; /* a step of `wait:` alone */
}

/* Ends the attempt: exactly once per attempt that was not cancelled, from
 * start() itself or later from a loop callback. The engine takes it up from
 * its drain (see pc_run_defer), never inside this call. */
void pc_attempt_done(struct pc_attempt *a, enum pc_fail fail, const char *msg);
/* The attempt's fields in the step's record for the reports, beside its
 * status (a->status): what was asked of which target ("GET", the URL).
 * Copied when the run keeps records, else ignored; the last call of the
 * step's last attempt wins (each attempt starts without them, and they go
 * with the attempt's result when the engine drops it: a retry, a step
 * cancelled from outside). The reports show them under the action's key. */
void pc_attempt_report(struct pc_attempt *a, const char *method, const char *url);

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

/* ------------------------------------------------------------ sub-groups */

/* Steps an action runs through the engine, below its attempt (a workflow
 * file run as a step): `steps`, then `finally` (which runs whatever
 * happened), in the scope `scope_ref`, as tasks of the same run (the same
 * loop, pools, run hooks and Lua host). Their log labels and records are
 * placed below the attempt's step: "token (main.yml:12 › login.yml:5)".
 * The engine calls `done` once, from its drain, when `finally` is over,
 * with the outcome (the worse of steps and finally) and the first failure's
 * message; the action then ends its attempt. */
struct pc_subgroup;
struct pc_subgroup_spec {
  struct pc_step *const *steps;
  size_t nsteps;
  struct pc_step *const *finally;
  size_t nfinally;
  int scope_ref;     /* taken over: the engine unrefs it when the group is over */
  double timeout_ms; /* over `steps`; < 0: none */
  void (*done)(void *data, enum pc_outcome o, const char *msg);
  void *data;
};
struct pc_subgroup *pc_attempt_run_steps(struct pc_attempt *a, const struct pc_subgroup_spec *spec);
/* From the action's cancel: `done` will not be called. The steps are
 * cancelled at once; `finally` still runs, on its own and bounded
 * (PC_SUBGROUP_FINALLY_GRACE_MS), and the run waits for it before its end. */
void pc_subgroup_detach(struct pc_subgroup *g);
#define PC_SUBGROUP_FINALLY_GRACE_MS 30000.0

/* ------------------------------------------------------------ run hooks */

/* Run-wide state of an action or a shared service (the HTTP session, the
 * process set, the sleeps' timers): made the first time a step needs it,
 * found again through the address of its hooks, and torn down by the run.
 * The run knows it only through these hooks; whoever defines them (one
 * static struct) owns the state.
 *
 * Threads: everything here runs on the loop's thread, except kill_now. */
struct pc_run_hooks {
  const char *name; /* what the state is, for messages: "the HTTP session" */
  /* The state may serve every run on the loop (several files in one
   * `pacer run`): it is made by the first run that needs it, kept by the
   * runs' shared table, and cleaned up (with the run that made it) when
   * the last run is over; its statistics are the whole `pacer run`'s. A
   * state that reads its run's workflow must then read it per call, not
   * keep what the first run's said. Without a shared table (one file),
   * the flag changes nothing. */
  bool shared;
  /* Makes the state (pc_run_state with create). Must not fail. */
  void *(*create)(struct pc_run *run);
  /* Called once, when the run's steps are all over, before the reports
   * are written: stops what the state holds and frees it, or starts
   * closing it (the run's loop runs afterwards until every handle is
   * closed). Whenever the state is freed (here or later, from a close
   * callback), its owner calls pc_run_state_release first. */
  void (*cleanup)(struct pc_run *run, void *state);
  /* Optional: pacer is about to exit at once (a second signal, or the
   * watchdog when the loop is stuck), and this is the last chance to stop
   * what would outlive it (process groups). The contract is a signal
   * handler's: it may be called from the watchdog's thread while the
   * loop's thread is running, blocked or stopped anywhere (even inside
   * the state's own functions), so it reads only what the state publishes
   * for other threads (atomics: the process set keeps its live group ids
   * in an array of them), and it must not lock, allocate, log, wait or
   * touch the loop. It is never called after pc_run_state_release. */
  void (*kill_now)(void *state);
  /* Optional: the state's statistics for the reports, as one section
   * (model/stats.h: its name becomes the section's key), taken before
   * cleanup. `state` is NULL when no step made it: fill the section with
   * zeros, so that a report always has it. */
  void (*stats)(void *state, struct pc_stats_section *out);
};
/* The run's state for `hooks`: made by hooks->create if `create` and
 * there is none yet, else NULL when there is none. */
void *pc_run_state(struct pc_run *run, const struct pc_run_hooks *hooks, bool create);
/* The state for `hooks` is about to be freed: the run forgets it (kill_now
 * is not called for it any more). */
void pc_run_state_release(struct pc_run *run, const struct pc_run_hooks *hooks);
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
/* Trace context (W3C; docs/cron-and-ci.md, "Monitoring"). Whether the run
 * is traced: it joined a trace (TRACEPARENT) or exports its spans
 * (OpenTelemetry). Programs get TRACEPARENT only then. */
bool pc_run_traced(struct pc_run *run);
/* The traceparent of what the attempt starts (a request, a program):
 * the run's trace id and the attempt's span. Returns false, with `out`
 * untouched, when the run has no trace context at all. */
bool pc_attempt_traceparent(struct pc_attempt *a, char out[PC_TRACEPARENT_SIZE]);
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
