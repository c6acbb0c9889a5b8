/* task.c: the engine's task tree: a workflow's steps as tasks on one libuv
 * loop, and the root sequences the run driver starts (engine.h).
 *
 * Each running step is a task. Leaf tasks run attempts of an action
 * (attempt.c) under pools, a per-attempt deadline and retries; group tasks
 * (sequence, gather, fan-out) start children and aggregate their outcomes.
 * A fan-out is lazy: it holds the item list and one child per item in
 * flight, never a task per item, so 100 000 items at concurrency 100 cost
 * 100 tasks plus the results.
 *
 * Re-entrancy rule: anything that completes (an attempt, a child, a pool
 * grant) only sets an event bit on its task and queues the task's entry on
 * the run's deferred queue (defer.c); the drain takes the events up. So no
 * engine function ever runs inside another one's iteration over children,
 * and cancellation can walk a subtree without the tree changing under it.
 *
 * A sequence may run children in the background (`background: true`): it
 * moves on without waiting for them, holds back a step that waits for one
 * (`st->waits`) until it is over, and cancels those still running when
 * its own steps are over.
 *
 * Cancellation: pc__task_cancel() on a leaf calls the action's cancel (which
 * stops its pending operation synchronously), leaves any pool queue and
 * releases held permits; on a group it cancels every running child and
 * finishes once the last one has reported. Timers are stopped in the same
 * call, so no callback of a cancelled task fires afterwards. */
#include "core/task.h"

#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/log.h"
#include "base/redisbucket.h"
#include "base/util.h"
#include "script/luahost.h"

/* A step's kind is a task's kind: the engine maps one onto the other. */
_Static_assert((int)PC_STEP_LEAF == TK_LEAF && (int)PC_STEP_SEQUENCE == TK_SEQ &&
                   (int)PC_STEP_GATHER == TK_GATHER,
               "enum pc_step_kind and enum task_kind agree");

/* A leaf step whose action reads nothing but its value and defaults
 * (params_only), with no expression in them nor in expect.that,
 * outputs or until: its items need no scope, since nothing could read item or
 * index. */
static bool step_is_static(const struct pc_run *run, const struct pc_step *st)
{
  const struct pc_action_ops *ops = st->ops;
  if (st->kind != PC_STEP_LEAF || !ops->params_only)
    return false;
  if (ops->defaults_key) { /* evaluated in the step's scope */
    const struct pc_tmpl *d = pc_workflow_defaults(run->wf, ops->defaults_key);
    if (d && d->has_expr)
      return false;
  }
  return !(st->params && st->params->has_expr) && !st->expect.nthat && !st->noutputs &&
         !st->nasserts && !st->poll.until;
}

/* ================================================================ tasks */

static void task_free(struct task *t)
{
  assert(!pc_deferred_queued(&t->ev));
  if (t->kind == TK_LEAF) {
    free(t->waiters);
    free(t->att_msg);
    if (t->ext) {
      free(t->ext->sub_cause);
      pc__attempt_report_clear(t);
      free(t->ext);
    }
  } else {
    free(t->fail_msg);
    free(t->own);
    free(t->cause);
    free(t->root);
  }
  free(t->error);
  free(t->item_text);
  free(t);
}

static void on_timer_closed(uv_handle_t *h)
{
  free(h);
}

/* The task's timer, created on first use; its callbacks find the task in
 * timer->data. */
uv_timer_t *pc__task_timer(struct task *t)
{
  if (!t->timer) {
    t->timer = pc_xmalloc(sizeof *t->timer);
    uv_timer_init(t->run->loop, t->timer);
    t->timer->data = t;
  }
  return t->timer;
}

struct leaf_ext *pc__leaf_ext(struct task *t)
{
  assert(t->kind == TK_LEAF);
  if (!t->ext) {
    t->ext = pc_xcalloc(1, sizeof *t->ext);
    t->ext->sub_cause_rec = PC_NO_RECORD;
  }
  return t->ext;
}

/* Called by the parent after it has consumed the child's result. */
void pc__task_release(struct task *t)
{
  pc_lua_unref(t->run->lua, t->result_ref);
  t->result_ref = LUA_NOREF;
  task_free(t);
}

struct task *pc__task_new(struct pc_run *run, struct task *parent, const struct pc_step *st,
                          int scope_ref, bool own_scope, bool instance)
{
  struct task *t = pc_xcalloc(1, sizeof *t);
  t->run = run;
  t->parent = parent;
  t->step = st;
  t->scope_ref = scope_ref;
  t->own_scope = own_scope;
  t->instance = instance;
  t->result_ref = LUA_NOREF;
  t->rec = PC_NO_RECORD;
  pc_queue_init(&t->sibling);
  t->kind = !st                         ? TK_SEQ
            : st->for_each && !instance ? TK_FOREACH
                                        : (unsigned char)st->kind;
  if (t->kind == TK_LEAF) {
    assert(st->ops); /* the leaf's action: t->step->ops */
    if (st->npools)
      t->waiters = pc_xcalloc(st->npools, sizeof *t->waiters);
    t->att.params_ref = t->att.result_ref = LUA_NOREF;
    t->lane = -1;
    return t;
  }
  pc_queue_init(&t->live);
  if (!st)
    t->root = pc_xcalloc(1, sizeof *t->root);
  t->cause_rec = PC_NO_RECORD;
  t->list_ref = t->keys_ref = t->items_ref = t->inst_mt_ref = t->body_params_ref = LUA_NOREF;
  t->fail_fast = true;
  t->group_timeout_ms = -1;
  if (st) {
    t->limit = st->concurrency;
    /* A fan-out's fail_fast is the fan-out's: the body of each item (a
     * sequence, when the body is `steps:`) stops at its first failure. */
    t->fail_fast = instance ? true : st->fail_fast;
    if (t->kind != TK_FOREACH) {
      t->group_timeout_ms = st->timeout_ms;
      t->kids = st->children;
      t->nkids = st->nchildren;
    }
  }
  if (t->kind == TK_SEQ)
    t->limit = 1;
  return t;
}

/* ======================================================== events */

static void group_child_done(struct task *t, struct task *c);

/* The events other than a lone EV_ATTEMPT_DONE or EV_NOTIFY. Not inlined,
 * so that pc__task_event stays a dispatch with no frame of its own. */
__attribute__((noinline)) static void task_events(struct task *t, unsigned ev)
{
  if (t->state != TS_DONE) {
    if ((ev & EV_GRANTED) && t->state == TS_WAIT_POOL)
      pc__leaf_acquire(t);
    if ((ev & EV_ATTEMPT_DONE) && t->state == TS_RUNNING) {
      char *msg = t->att_msg;
      t->att_msg = NULL;
      pc__attempt_end(t, t->att_fail, msg);
    }
  }
  /* Last: the parent may free the task. */
  if (ev & EV_NOTIFY) {
    if (t->parent)
      group_child_done(t->parent, t);
    else
      t->root->done(t->run, t);
  }
}

/* The task's deferred entry: takes up the events posted since it was
 * queued. Two cases are nearly every entry (an attempt ended; a task
 * finished and tells its parent): they go straight to their handler, so
 * that this runs as a thin dispatch for each of the hundreds of thousands
 * of entries a large fan-out makes. */
void pc__task_event(struct pc_deferred *d)
{
  struct task *t = PC_CONTAINER_OF(d, struct task, ev);
  unsigned ev = t->events;
  t->events = 0;
  if (ev == EV_ATTEMPT_DONE && t->state == TS_RUNNING) {
    char *msg = t->att_msg;
    t->att_msg = NULL;
    pc__attempt_end(t, t->att_fail, msg);
  } else if (ev == EV_NOTIFY && t->parent) {
    group_child_done(t->parent, t);
  } else {
    task_events(t, ev);
  }
}

/* Why a group's unstarted steps did not run. malloc'd. */
static char *unreached_why(const struct task *t)
{
  if (t->cause)
    return pc_asprintf("not reached: %s failed", t->cause);
  if (t->cancelled && t->error)
    return pc_asprintf("not reached (%s)", t->error);
  if (t->outcome == PC_SKIPPED)
    return pc_xstrdup("not reached: the group was skipped (its `if` was false)");
  return pc_asprintf("not reached: the group ended %s%s%s", pc_outcome_name(t->outcome),
                     t->error ? ": " : "", t->error ? t->error : "");
}

/* Records and results for steps[from..n) of a group that will never
 * start them, and for the steps inside those that are groups. */
static void unreached_steps(struct task *t, size_t parent_rec, struct pc_step *const *steps,
                            size_t n, const char *why)
{
  for (size_t i = 0; i < n; i++) {
    const struct pc_step *st = steps[i];
    pc__unreached_result(t, st, why);
    if (!pc_step_is_group(st) || st->for_each)
      t->run->summary.counts[PC_SKIPPED]++;
    size_t rec = t->run->rep && (t->rec != PC_NO_RECORD || parent_rec != PC_NO_RECORD)
                     ? pc__rec_unreached(t, parent_rec, st, why)
                     : PC_NO_RECORD;
    if (pc_step_is_group(st) && !st->for_each && (rec != PC_NO_RECORD || t->run->rep == NULL))
      unreached_steps(t, rec, st->children, st->nchildren, why);
  }
}

static void mark_unreached(struct task *t)
{
  char *why = unreached_why(t);
  if (pc_log_enabled(PC_LOG_DEBUG)) {
    char *label = pc__task_label(t);
    pc_log(PC_LOG_DEBUG, label, "%zu step%s not started: %s", t->nkids - t->next_kid,
           t->nkids - t->next_kid == 1 ? "" : "s", why);
    free(label);
  }
  /* A sub-group's root has no record: its steps' go below the caller's. */
  size_t parent_rec = !t->step && t->root->sub ? pc__sub_caller_rec(t->root->sub) : PC_NO_RECORD;
  unreached_steps(t, parent_rec, t->kids + t->next_kid, t->nkids - t->next_kid, why);
  t->next_kid = t->nkids;
  free(why);
}

/* The end-of-step line: failures always, at error (a warning under
 * continue_on_error), with their reason, whatever kind of step failed; a
 * group that failed because of its children says how many and names the
 * root cause, whose own line came first. Otherwise one line per finished
 * step for cron and CI logs, fan-out items only with -v (a large fan-out
 * would drown the log). The label is built only when the line prints: on
 * a 100 000-item fan-out that formatting is a fifth of the work. */
static void log_finish(struct task *t)
{
  bool tolerated = t->step && t->step->continue_on_error;
  bool failed = pc_outcome_is_failure(t->outcome);
  enum pc_log_level lvl = failed ? (tolerated ? PC_LOG_WARN : PC_LOG_ERROR)
                          : t->instance ? PC_LOG_DEBUG
                                        : PC_LOG_INFO;
  if (!t->step || !pc_log_enabled(lvl))
    return;
  char *label = pc__task_label(t);
  char dur[32], queued[48] = "";
  pc_format_duration(pc__task_run_ms(t), dur, sizeof dur);
  if (t->kind == TK_LEAF && t->queued_ms >= 1) {
    char q[32];
    pc_format_duration(t->queued_ms, q, sizeof q);
    snprintf(queued, sizeof queued, " (queued %s)", q);
  }
  const char *tol = tolerated ? " (continue_on_error)" : "";
  char *item = pc__task_item(t);
  struct pc_log_fields f = {.item = item, .outcome = pc_outcome_name(t->outcome),
                            .duration_ms = pc__task_run_ms(t)};
  if (failed && pc__task_failed_by_children(t)) {
    pc_log_step(lvl, label, &f, "%s after %s: %zu of %zu %s failed (root cause: %s)%s",
                pc_outcome_name(t->outcome), dur, t->nfailed, t->total,
                t->kind == TK_FOREACH ? "items" : "steps", t->cause ? t->cause : "?", tol);
  } else if (failed) {
    /* The suffix goes on the first line: the lines under it (values,
     * an HTTP exchange, a command line to paste) stay as they are. */
    const char *e = t->error ? t->error : "";
    const char *nl = strchr(e, '\n');
    int first = nl ? (int)(nl - e) : (int)strlen(e);
    pc_log_step(lvl, label, &f, "%s after %s%s: %.*s%s%s", pc_outcome_name(t->outcome), dur,
                queued, first, e, tol, e + first);
  } else if (t->outcome == PC_CANCELLED || (t->outcome == PC_SKIPPED && t->error)) {
    pc_log_step(lvl, label, &f, "%s after %s%s: %s", pc_outcome_name(t->outcome), dur, queued,
                t->error ? t->error : "");
  } else if (t->restored) {
    pc_log_step(lvl, label, &f, "%s (from the journal: not run again)",
                pc_outcome_name(t->outcome));
  } else {
    pc_log_step(lvl, label, &f, "%s in %s%s", pc_outcome_name(t->outcome), dur, queued);
  }
  free(item);
  free(label);
}

void pc__task_finish(struct task *t, enum pc_outcome o, const char *err)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  assert(t->state != TS_DONE);
  t->state = TS_DONE;
  t->events &= ~(EV_GRANTED | EV_ATTEMPT_DONE);
  if (t->timer) {
    uv_close((uv_handle_t *)t->timer, on_timer_closed);
    t->timer = NULL;
  }
  t->outcome = o;
  if (err != t->error) { /* a cancelled group finishes with the message it kept */
    free(t->error);
    t->error = err ? pc_xstrdup(err) : NULL;
  }

  if (t->kind == TK_LEAF && t->att.result_ref != LUA_NOREF) {
    t->result_ref = t->att.result_ref;
    t->att.result_ref = LUA_NOREF;
  }
  /* An item of a fan-out whose results nobody can read needs no result
   * table: only its outputs are evaluated, since one that fails fails the
   * item. */
  bool unread = t->instance && t->parent->items_ref == LUA_NOREF;
  if (!unread || (o == PC_OK && t->kind != TK_FOREACH && t->step->noutputs)) {
    if (t->result_ref == LUA_NOREF) {
      lua_newtable(L);
      t->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    pc__build_result(t, o);
  }

  /* Steps a sequence or gather never started are recorded and given a
   * result all the same (outcome `skipped`): every step of the workflow
   * is in the reports, and steps.ID answers in `finally`. */
  bool started_kids = t->next_kid > 0;
  if ((t->kind == TK_SEQ || t->kind == TK_GATHER) && t->next_kid < t->nkids)
    mark_unreached(t);

  if (t->kind == TK_LEAF && run->journal_ops && !t->restored && t->attempts > 0)
    pc__journal_record(t);
  log_finish(t);
  if (t->step) {
    /* A leaf that ran a sub-group counts as a group does: its steps are
     * counted, and its failure is theirs. */
    bool counted = t->kind == TK_LEAF ? !t->sub_ran : !started_kids;
    bool own = pc_outcome_is_failure(o) && !pc__task_failed_by_children(t) && t->error &&
               !(t->kind == TK_LEAF && t->ext && t->ext->sub_cause);
    char *label = own ? pc__task_label(t) : NULL;
    pc__summary_note(&run->summary, o, counted, label, own ? t->error : NULL,
                     t->step->continue_on_error);
    free(label);
  }
  pc__record_finish(t);
  if (t->own_scope) {
    pc_lua_unref(run->lua, t->scope_ref);
    t->own_scope = false;
  }
  if (t->kind != TK_LEAF) {
    pc_lua_unref(run->lua, t->list_ref);
    t->list_ref = LUA_NOREF;
    pc_lua_unref(run->lua, t->keys_ref);
    t->keys_ref = LUA_NOREF;
    pc_lua_unref(run->lua, t->items_ref);
    t->items_ref = LUA_NOREF;
    pc_lua_unref(run->lua, t->inst_mt_ref);
    t->inst_mt_ref = LUA_NOREF;
    pc_lua_unref(run->lua, t->body_params_ref);
    t->body_params_ref = LUA_NOREF;
  }
  pc__post(t, EV_NOTIFY);
}

/* ================================================================ groups */

static void on_group_timeout(uv_timer_t *timer)
{
  struct task *t = timer->data;
  char dur[32];
  pc_format_duration(t->group_timeout_ms, dur, sizeof dur);
  char *msg = pc_asprintf("timed out after %s", dur);
  pc__task_cancel(t, PC_TIMEOUT, msg);
  free(msg);
}

static void group_finish(struct task *t)
{
  if (t->kind == TK_FOREACH)
    pc__fill_unstarted_items(t);
  if (t->cancelled) {
    pc__task_finish(t, t->cancel_as, t->error);
    return;
  }
  enum pc_outcome o = t->failed_error ? PC_ERROR : t->failed_expect ? PC_FAILED : PC_OK;
  pc__task_finish(t, o, o == PC_OK ? NULL : t->fail_msg);
}

static struct task *spawn_child(struct task *t, size_t i)
{
  struct pc_run *run = t->run;
  if (t->kind != TK_FOREACH)
    return pc__task_new(run, t, t->kids[i], t->scope_ref, false, false);
  lua_State *L = run->L;
  if (t->static_body) {
    /* No expression can see this item: it needs no scope of its own. */
    struct task *c = pc__task_new(run, t, t->step, t->scope_ref, false, true);
    c->item = i + 1;
    return c;
  }
  /* Only a group body has steps of its own whose `steps.ID` must mean this
   * item's instance; a leaf body needs no steps table per item, and at
   * 100 000 items that table (and its proxy) is a third of the cost: its
   * items' scopes share one metatable and are one small table each. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->list_ref); /* list */
  lua_geti(L, -1, (lua_Integer)(i + 1));          /* list, item */
  lua_remove(L, -2);                              /* item */
  int scope;
  if (t->inst_mt_ref != LUA_NOREF) {
    lua_pushinteger(L, (lua_Integer)(i + 1)); /* item, index */
    scope = pc_lua_instance_scope(run->lua, t->inst_mt_ref);
  } else {
    scope = pc_lua_child_scope(run->lua, t->scope_ref);
    pc_lua_scope_set(run->lua, scope, "item");
    lua_pushinteger(L, (lua_Integer)(i + 1));
    pc_lua_scope_set(run->lua, scope, "index");
  }
  struct task *c = pc__task_new(run, t, t->step, scope, true, true);
  c->item = i + 1;
  return c;
}

/* Inside an item of a partitioned fan-out (the item's shard runs all of it). */
static bool in_partitioned(const struct task *t)
{
  for (const struct task *a = t; a; a = a->parent) {
    if (a->kind == TK_FOREACH && a->partitioned)
      return true;
    /* The steps of a sub-group: inside the calling step's fan-out item? */
    if (!a->parent && !a->step && a->root->sub)
      return pc__sub_partitioned(a->root->sub);
  }
  return false;
}

/* A sequence's next step waits for a background step still running
 * (`wait:`, or it reads the background step's result). */
static bool waits_pending(struct task *t, const struct pc_step *st)
{
  if (!st->nwaits || t->bg_running == 0)
    return false;
  struct pc_queue *q;
  pc_queue_foreach(q, &t->live) {
    const struct task *c = pc_queue_data(q, struct task, sibling);
    for (size_t i = 0; c->background && i < st->nwaits; i++)
      if (strcmp(c->step->id ? c->step->id : "", st->waits[i]) == 0) {
        if (pc_log_enabled(PC_LOG_DEBUG)) {
          char *label = pc__child_label(t, st);
          pc_log(PC_LOG_DEBUG, label, "waits for background step %s", st->waits[i]);
          free(label);
        }
        return true;
      }
  }
  return false;
}

/* A sequence whose own steps are over (or that stops) cancels its
 * background steps still running: nothing would wait for them. */
static void end_background(struct task *t)
{
  t->bg_ending = true;
  struct pc_queue *q;
  pc_queue_foreach(q, &t->live) {
    struct task *c = pc_queue_data(q, struct task, sibling);
    pc__task_cancel(c, PC_CANCELLED,
                    "its sequence ended before it finished (a later step with wait: [ID] "
                    "waits for it)");
  }
}

static void group_fill(struct task *t)
{
  /* `shard: one` children of a sequence or gather are not run (nor
   * recorded) on the other shards: shard 1's report has them. */
  while (!t->stopping && t->kind != TK_FOREACH && t->next_kid < t->end &&
         t->run->shard_index > 1 && t->kids[t->next_kid]->shard_one && !in_partitioned(t))
    t->next_kid++;
  while (!t->stopping && t->next_kid < t->end &&
         (t->limit <= 0 || t->running - t->bg_running < t->limit)) {
    if (t->kind == TK_SEQ && waits_pending(t, t->kids[t->next_kid]))
      break;
    struct task *c = spawn_child(t, t->own ? t->own[t->next_kid] : t->next_kid);
    t->next_kid += t->kind == TK_FOREACH ? t->stride : 1;
    pc_queue_insert_head(&t->live, &c->sibling);
    t->running++;
    if (t->kind == TK_SEQ && c->step->background) {
      c->background = true;
      t->bg_running++;
    }
    if (pc__rec_of(t))
      pc__rec_of(t)->running++;
    pc__task_start(c);
    while (!t->stopping && t->kind != TK_FOREACH && t->next_kid < t->end &&
           t->run->shard_index > 1 && t->kids[t->next_kid]->shard_one && !in_partitioned(t))
      t->next_kid++;
  }
  if (t->bg_running > 0 && t->running == t->bg_running && !t->bg_ending &&
      (t->stopping || t->next_kid >= t->end))
    end_background(t);
  if (t->running == 0 && (t->stopping || t->next_kid >= t->end))
    group_finish(t);
}

/* A child finished: record its result and failure, cancel its siblings if
 * this group must stop, then start more children or finish. */
static void group_child_done(struct task *t, struct task *c)
{
  lua_State *L = t->run->L;
  pc_queue_remove(&c->sibling);
  t->running--;
  if (c->background)
    t->bg_running--;
  struct pc_record *r = pc__rec_of(t);
  if (r) {
    r->running--;
    r->finished++;
    if (pc_outcome_is_failure(c->outcome))
      r->failed++;
  }

  if (t->kind == TK_FOREACH && t->items_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->items_ref);  /* items */
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->result_ref); /* items, result */
    lua_rawseti(L, -2, (lua_Integer)c->item);         /* items */
    lua_pop(L, 1);
  }
  bool tolerated = c->step && c->step->continue_on_error;
  if (pc_outcome_is_failure(c->outcome) && !tolerated) {
    if (c->outcome == PC_FAILED)
      t->failed_expect = true;
    else
      t->failed_error = true;
    t->nfailed++;
    if (!t->cause) {
      /* The root cause: the child itself when its failure is its own,
       * else the one that failed it (found further down first). */
      if (c->kind == TK_LEAF && c->ext && c->ext->sub_cause) {
        t->cause = c->ext->sub_cause; /* the step of its sub-group that failed first */
        t->cause_rec = c->ext->sub_cause_rec;
        c->ext->sub_cause = NULL;
      } else if (c->kind == TK_LEAF || !pc__task_failed_by_children(c) || !c->cause) {
        t->cause = pc__task_label(c);
        t->cause_rec = c->rec;
      } else {
        t->cause = c->cause;
        t->cause_rec = c->cause_rec;
        c->cause = NULL;
      }
    }
    if (!t->fail_msg) {
      char *label = pc__task_label(c);
      t->fail_msg = c->kind == TK_LEAF
                        ? pc_asprintf("%s %s: %s", label, pc_outcome_name(c->outcome),
                                      c->error ? c->error : "")
                        : pc_xstrdup(c->error ? c->error : label);
      free(label);
    }
    if (t->fail_fast) {
      t->stopping = true;
      char *why = NULL;
      struct pc_queue *q;
      pc_queue_foreach(q, &t->live) {
        struct task *s = pc_queue_data(q, struct task, sibling);
        if (!why)
          why = pc_asprintf("cancelled because %s failed", t->cause);
        pc__task_cancel(s, PC_CANCELLED, why);
      }
      free(why);
    }
  }
  pc__task_release(c);
  group_fill(t);
}

/* ======================================================= start / cancel */

/* Checks that the value on top of the stack is a list (a table whose keys
 * are exactly 1..N; an empty table is the empty list). Returns 0, or -1
 * with *err set (malloc'd) to a message naming the expression's position
 * and what it got instead: a map, a string or a number would otherwise run
 * zero items and succeed. */
static int check_list(lua_State *L, const struct pc_step *st, char **err)
{
  char *got = NULL;
  if (!lua_istable(L, -1)) {
    got = lua_type(L, -1) == LUA_TSTRING ? pc_xstrdup("a string")
          : lua_type(L, -1) == LUA_TNUMBER ? pc_xstrdup("a number")
          : lua_isnil(L, -1) ? pc_xstrdup("nil")
                             : pc_asprintf("a %s", luaL_typename(L, -1));
  } else {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1), count = 0;
    lua_pushnil(L); /* value, key */
    while (!got && lua_next(L, -2) != 0) { /* value, key, v */
      lua_pop(L, 1);                       /* value, key */
      count++;
      if (lua_type(L, -1) == LUA_TSTRING) {
        got = pc_asprintf("a map (key \"%.40s\")", lua_tostring(L, -1));
        lua_pop(L, 1); /* value */
        break;
      }
      if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1 || lua_tointeger(L, -1) > n) {
        got = pc_xstrdup("a table whose keys are not 1..N");
        lua_pop(L, 1); /* value */
        break;
      }
    }
    if (!got && count != n)
      got = pc_xstrdup("a table whose keys are not 1..N");
  }
  if (!got)
    return 0;
  const char *base = strrchr(st->file, '/');
  *err = pc_asprintf("for_each (%s:%d:%d) must be a list, got %s", base ? base + 1 : st->file,
                     st->for_each->line, st->for_each->col, got);
  free(got);
  return -1;
}

/* FNV-1a, 64 bits: fixed by docs/shards.md, so an item keeps its shard
 * from run to run and from one build to the next. */
static uint64_t fnv1a64(const char *s, size_t len)
{
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

/* shard_key: the items of the list (on the stack) whose key's hash falls
 * on this shard, into t->own. The key is evaluated with item and index
 * bound in the fan-out's scope; it must be a string or a number (its text,
 * as Lua writes it). Returns 0, or -1 with *err. */
static int keyed_share(struct task *t, char **err)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  const struct pc_expr *e = t->step->shard_key;
  uint64_t k = (uint64_t)run->shard_index, n = (uint64_t)run->shard_count;
  size_t cap = t->total / n + 16;
  t->own = pc_xcalloc(cap, sizeof *t->own);
  t->end = 0;
  for (size_t i = 0; i < t->total; i++) {
    lua_geti(L, -1, (lua_Integer)(i + 1)); /* list, item */
    pc_lua_scope_bind(run->lua, t->scope_ref, "item"); /* list, old item */
    lua_pushinteger(L, (lua_Integer)(i + 1));
    pc_lua_scope_bind(run->lua, t->scope_ref, "index"); /* list, old item, old index */
    int rc = pc_lua_eval(run->lua, e, t->scope_ref, err);
    if (rc == 0) {
      int ty = lua_type(L, -1);
      size_t len;
      const char *s = ty == LUA_TSTRING || ty == LUA_TNUMBER ? lua_tolstring(L, -1, &len) : NULL;
      if (!s) {
        const char *base = strrchr(e->file, '/');
        *err = pc_asprintf("shard_key (%s:%d:%d) must be a string or a number, got %s (item %zu)",
                           base ? base + 1 : e->file, e->line, e->col, lua_typename(L, ty),
                           i + 1);
        rc = -1;
      } else if (fnv1a64(s, len) % n + 1 == k) {
        if (t->end == cap) {
          cap *= 2;
          t->own = pc_xrealloc(t->own, cap * sizeof *t->own);
        }
        t->own[t->end++] = i;
      }
      lua_pop(L, 1); /* list, old item, old index */
    }
    pc_lua_scope_unbind(run->lua, t->scope_ref, "index");
    pc_lua_scope_unbind(run->lua, t->scope_ref, "item"); /* list */
    if (rc != 0)
      return -1;
  }
  return 0;
}

static void foreach_begin(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  char *err = NULL;
  if (pc_lua_eval_tmpl(run->lua, t->step->for_each, t->scope_ref, &err) != 0) {
    pc__task_finish(t, PC_ERROR, err);
    free(err);
    return;
  }
  if (t->step->nmatrix_keys && pc__matrix_expand(t, &err) != 0) {
    lua_pop(L, 1);
    pc__task_finish(t, PC_ERROR, err);
    free(err);
    return;
  }
  if (check_list(L, t->step, &err) != 0) {
    lua_pop(L, 1);
    pc__task_finish(t, PC_ERROR, err);
    free(err);
    return;
  }
  t->total = (size_t)luaL_len(L, -1);
  if (t->step->item_key && pc__journal_item_keys(t, &err) != 0) {
    lua_pop(L, 1);
    pc__task_finish(t, PC_ERROR, err);
    free(err);
    return;
  }
  /* --shard K/N: the outermost fan-out on each path runs items K, K+N...
   * (striped by position: shares differ by at most one item, and item i is
   * on the same shard in every run); a fan-out inside one of its items is
   * that shard's alone. Its record counts the shard's share, which
   * `pacer merge` adds up. */
  t->stride = 1;
  t->end = t->total;
  size_t share = t->total;
  if (run->shard_count > 1) {
    if (!in_partitioned(t->parent)) {
      size_t k = (size_t)run->shard_index, n = (size_t)run->shard_count;
      t->partitioned = true;
      if (t->step->shard_key) {
        if (keyed_share(t, &err) != 0) {
          lua_pop(L, 1);
          pc__task_finish(t, PC_ERROR, err);
          free(err);
          return;
        }
        share = t->end;
      } else {
        t->stride = n;
        t->next_kid = k - 1;
        share = t->total >= k ? (t->total - k) / n + 1 : 0;
      }
    }
  }
  if (pc__rec_of(t))
    pc__rec_of(t)->total = share;
  t->list_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* Only an expression or Lua code can read steps.ID.items, and only
   * through the step's id; the loader knows which can. When nothing can,
   * the fan-out keeps no per-item results: its memory is O(concurrency),
   * not O(items). Reports do not need them (they have their own records). */
  if (t->step->results_read) {
    lua_createtable(L, (int)(t->total < 1000000 ? t->total : 1000000), 0);
    t->items_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  /* A `label:` reads item and index: items then need a scope. */
  t->static_body = step_is_static(run, t->step) && !t->step->label;
  if (!pc_step_is_group(t->step) && !t->static_body)
    t->inst_mt_ref = pc_lua_instance_mt(run->lua, t->scope_ref);
  const struct pc_tmpl *p = t->step->params;
  if (t->static_body && p && p->kind != PC_T_SEQ && p->kind != PC_T_MAP) {
    char *perr = NULL;
    if (pc_lua_eval_tmpl(run->lua, p, t->scope_ref, &perr) == 0) /* a constant: cannot fail */
      t->body_params_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    free(perr);
  }
  t->state = TS_GROUP;
  group_fill(t);
}

void pc__task_start(struct task *t)
{
  struct pc_run *run = t->run;
  const struct pc_step *st = t->step;
  t->started_mono = pc_mono_ms();
  pc__record_start(t);
  if (st && !t->instance && st->if_expr) {
    bool ok = false;
    char *err = NULL;
    if (pc_lua_eval_bool(run->lua, st->if_expr, t->scope_ref, &ok, &err) != 0) {
      char *m = pc_lua_explained(run->lua, err, st->if_expr, t->scope_ref);
      pc__task_finish(t, PC_ERROR, m);
      free(m);
      free(err);
      return;
    }
    if (!ok) {
      pc__task_finish(t, PC_SKIPPED, NULL);
      return;
    }
  }
  if (st && pc_log_enabled(PC_LOG_DEBUG)) {
    char *label = pc__task_label(t);
    pc_log(PC_LOG_DEBUG, label, "start");
    free(label);
  }
  switch (t->kind) {
  case TK_LEAF:
    if (run->journal_ops && pc__journal_restore(t))
      break;
    pc__leaf_next_attempt(t);
    break;
  case TK_FOREACH:
    foreach_begin(t);
    break;
  case TK_SEQ:
  case TK_GATHER:
    t->state = TS_GROUP;
    t->total = t->end = t->nkids;
    if (pc__rec_of(t))
      pc__rec_of(t)->total = t->total;
    if (t->group_timeout_ms >= 0) {
      /* The loop's clock is cached per iteration (and the first group starts
       * before the loop runs at all): refresh it, or the timeout comes early
       * by however long the loop has been busy. */
      uv_update_time(run->loop);
      uv_timer_start(pc__task_timer(t), on_group_timeout, (uint64_t)ceil(t->group_timeout_ms), 0);
    }
    group_fill(t);
    break;
  }
}

void pc__task_cancel(struct task *t, enum pc_outcome as, const char *msg)
{
  if (t->state == TS_DONE || t->cancelled)
    return;
  t->cancelled = true;
  t->cancel_as = as;
  if (t->kind == TK_LEAF) {
    if (t->state == TS_RUNNING && !t->att_live && (t->events & EV_ATTEMPT_DONE)) {
      /* The attempt had already ended (its completion waits in the ready
       * queue: a timer that fires in the same loop iteration as the one
       * that ended it gets here first). What it did stands; `cancelled`
       * only stops a retry. */
      t->events &= ~EV_ATTEMPT_DONE;
      char *amsg = t->att_msg;
      t->att_msg = NULL;
      pc__attempt_end(t, t->att_fail, amsg);
      if (t->state == TS_DONE)
        return;
    }
    pc__leaf_abort(t);
    pc_lua_unref(t->run->lua, t->att.result_ref);
    t->att.result_ref = LUA_NOREF;
    pc__attempt_report_clear(t); /* it went with the result */
    pc__task_finish(t, as, msg);
    return;
  }
  pc__task_timer_stop(t);
  /* Kept for pc__task_finish when the last child has reported. */
  assert(!t->error);
  t->error = pc_xstrdup(msg);
  t->stopping = true;
  const char *why = as == PC_TIMEOUT ? "cancelled: the enclosing group timed out" : msg;
  struct pc_queue *q;
  pc_queue_foreach(q, &t->live) {
    struct task *c = pc_queue_data(q, struct task, sibling);
    pc__task_cancel(c, PC_CANCELLED, why);
  }
  if (t->running == 0)
    group_finish(t);
}


/* ============================================================ the run */

/* The run services of model/action.h. */

uv_loop_t *pc_run_loop(struct pc_run *run) { return run->loop; }
struct pc_lua *pc_run_lua(struct pc_run *run) { return run->lua; }
const struct pc_workflow *pc_run_workflow_def(struct pc_run *run) { return run->wf; }

double pc_run_deadline_ms(struct pc_run *run)
{
  return run->timeout_ms >= 0 ? run->started_mono + run->timeout_ms : INFINITY;
}

double pc_run_started_ms(struct pc_run *run) { return run->started_mono; }

struct pc_pool *pc_run_pool(struct pc_run *run, const char *name)
{
  for (size_t i = 0; i < run->npools; i++)
    if (strcmp(run->wf->pools[i].name, name) == 0)
      return &run->pools[i];
  return NULL;
}

void pc__engine_init(struct pc_run *run)
{
  pc__defer_init(run);
  const struct pc_workflow *wf = run->wf;
  run->npools = wf->npools;
  run->pools = pc_xcalloc(wf->npools ? wf->npools : 1, sizeof *run->pools);
  run->buckets = pc_xcalloc(wf->npools ? wf->npools : 1, sizeof *run->buckets);
  for (size_t i = 0; i < wf->npools; i++) {
    const struct pc_pool_def *def = &wf->pools[i];
    struct pc_pool_limits whole = {def->concurrency, def->rate, def->burst};
    struct pc_pool_limits lim = run->shard_count > 1
                                    ? pc_pool_limits_share(&whole, run->shard_index, run->shard_count)
                                    : whole;
    pc_pool_init(run->loop, &run->pools[i], &lim);
    if (def->shared) /* the whole budget, shared by every shard */
      run->buckets[i] = pc_redis_bucket_start(run->loop, &run->pools[i], def->name, def->shared,
                                              &whole);
  }
}

void pc__engine_close(struct pc_run *run)
{
  uv_close((uv_handle_t *)&run->drain, NULL);
  for (size_t i = 0; i < run->npools; i++) {
    pc_redis_bucket_close(run->buckets[i]); /* frees itself once its handles close */
    run->buckets[i] = NULL;
    pc_pool_close(&run->pools[i], NULL);
  }
}

void pc__engine_free(struct pc_run *run)
{
  pc__summary_free(&run->summary);
  free(run->free_lanes);
  free(run->pools);
  free(run->buckets);
}

struct task *pc__root_start(struct pc_run *run, const char *name, struct pc_step *const *steps,
                            size_t nsteps, int scope_ref, double timeout_ms,
                            pc__root_done_cb done)
{
  struct task *t = pc__task_new(run, NULL, NULL, scope_ref, false, false);
  t->root->name = name;
  t->root->done = done;
  t->kids = steps;
  t->nkids = nsteps;
  t->group_timeout_ms = timeout_ms;
  pc__task_start(t);
  return t;
}

enum pc_outcome pc__root_outcome(const struct task *root)
{
  return root->outcome;
}

const char *pc__root_cause(const struct task *root, size_t *rec)
{
  *rec = root->cause_rec;
  return root->cause;
}

void pc__root_free(struct task *root)
{
  pc__task_release(root);
}

void pc__root_cancel(struct task *root, enum pc_outcome as, const char *msg)
{
  pc__task_cancel(root, as, msg);
}

void pc__root_bound(struct task *root, double ms)
{
  if (root->group_timeout_ms >= 0 || root->cancelled || root->state == TS_DONE)
    return;
  root->group_timeout_ms = ms;
  uv_update_time(root->run->loop);
  uv_timer_start(pc__task_timer(root), on_group_timeout, (uint64_t)ceil(ms), 0);
}
