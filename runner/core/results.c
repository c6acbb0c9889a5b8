/* results.c: the Lua result tables of steps: the common fields (outcome,
 * error, attempts, times), `outputs` evaluated with `result` bound, steps.ID
 * in the scope the step ran in, and a fan-out's `items` (kept only when the
 * loader found that something can read them: pc_step.results_read). */
#include "core/task.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/util.h"
#include "script/luahost.h"

/* How long the task has run, up to now: a leaf from the moment its first
 * attempt got its pool permits (0 if it never did: skipped, or stopped
 * while queued), a group from its start. */
double pc__task_run_ms(const struct task *t)
{
  double from = t->kind == TK_LEAF ? t->ran_mono : t->started_mono;
  if (from <= 0)
    return 0;
  /* A finished leaf ran until its last attempt gave its pool permits back
   * (what its outputs and its parent did after that is not its running
   * time), so records of one pool never overlap beyond its concurrency. */
  if (t->kind == TK_LEAF && t->state == TS_DONE && t->att_end_mono >= from)
    return t->att_end_mono - from;
  return pc_mono_ms() - from;
}

/* When the task started running (or was reached, if it never ran), as
 * wall-clock epoch ms: the run's one wall-clock reading plus monotonic time. */
static double task_start_wall(const struct task *t)
{
  double from = t->kind == TK_LEAF && t->ran_mono > 0 ? t->ran_mono : t->started_mono;
  return t->run->started_wall + (from - t->run->started_mono);
}

/* ------------------------------------------------------------ results */

/* Sets the common result fields: into the result's record when it offers
 * one (script/host.h, struct pc_result_common: an HTTP result), otherwise
 * into the table. The rarer ones (error, polls, poll_stop, items) always
 * go into the table. */
static void set_common_fields(struct task *t, int tbl)
{
  lua_State *L = t->run->L;
  struct pc_result_common *c = pc_lua_result_common(L, tbl);
  bool leaf = t->kind == TK_LEAF, timed = t->started_mono > 0, queued = leaf && t->step;
  if (c) {
    c->outcome = pc_outcome_name(t->outcome);
    c->attempts = leaf ? t->attempts : -1;
    c->started_at = timed ? task_start_wall(t) : -1;
    c->duration_ms = timed ? (lua_Integer)llround(pc__task_run_ms(t)) : 0;
    c->queued_ms = timed && queued ? (lua_Integer)llround(t->queued_ms) : -1;
  } else {
    lua_pushstring(L, pc_outcome_name(t->outcome)); /* tbl.outcome */
    lua_setfield(L, tbl, "outcome");
    if (leaf) {
      lua_pushinteger(L, t->attempts);
      lua_setfield(L, tbl, "attempts");
    }
    if (timed) {
      char ts[40];
      pc_format_iso8601(task_start_wall(t), ts, sizeof ts);
      lua_pushstring(L, ts);
      lua_setfield(L, tbl, "started_at");
      lua_pushinteger(L, (lua_Integer)llround(pc__task_run_ms(t)));
      lua_setfield(L, tbl, "duration_ms");
      if (queued) {
        lua_pushinteger(L, (lua_Integer)llround(t->queued_ms));
        lua_setfield(L, tbl, "queued_ms");
      }
    }
  }
  if (t->error) {
    lua_pushstring(L, t->error);
    lua_setfield(L, tbl, "error");
  }
  if (leaf && t->step && t->step->poll.until) {
    lua_pushinteger(L, t->ext ? t->ext->polls : 0);
    lua_setfield(L, tbl, "polls");
    if (t->ext && t->ext->poll_stop) {
      lua_pushstring(L, t->ext->poll_stop);
      lua_setfield(L, tbl, "poll_stop");
    }
  }
  if (t->kind == TK_FOREACH && t->items_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->items_ref); /* tbl.items */
    lua_setfield(L, tbl, "items");
  }
}

/* Sets tbl.outputs to the shared read-only empty table, unless the
 * result's record answers that (then the table needs no field for it). */
static void set_no_outputs(lua_State *L, int tbl)
{
  if (pc_lua_result_common(L, tbl))
    return;
  pc_lua_push_empty_ro(L);
  lua_setfield(L, tbl, "outputs");
}

/* Evaluates `outputs` with `result` bound into tbl.outputs. Returns 0, or
 * -1 with *err set (malloc'd) and tbl.outputs left unset. */
static int eval_outputs(struct task *t, int tbl, char **err)
{
  const struct pc_step *st = t->step;
  lua_State *L = t->run->L;
  struct pc_lua *h = t->run->lua;
  /* An action may have filled outputs of its own (a workflow file run as
   * a step: the file's `outputs:`); the step's `outputs:` add to them.
   * A result with none gets the run's shared read-only empty table, so a
   * kept result costs no table of its own for them (issue 16). */
  bool have = st && st->noutputs;
  if (lua_getfield(L, tbl, "outputs") != LUA_TTABLE || pc_lua_is_empty_ro(L, -1)) {
    lua_pop(L, 1); /* tbl */
    if (!have) {
      set_no_outputs(L, tbl);
      return 0;
    }
    lua_createtable(L, 0, (int)st->noutputs);
  }
  if (have) {
    int scope = t->scope_ref;
    lua_pushvalue(L, tbl);                 /* tbl, outputs, result */
    pc_lua_scope_bind(h, scope, "result"); /* tbl, outputs, old */
    lua_insert(L, -2);                     /* tbl, old, outputs */
    for (size_t i = 0; i < st->noutputs; i++) {
      char *e = NULL;
      if (pc_lua_eval_tmpl(h, st->outputs[i].value, scope, &e) != 0) {
        *err = pc_asprintf("output %s: %s", st->outputs[i].name, e);
        free(e);
        lua_pop(L, 1);                           /* tbl, old */
        pc_lua_scope_unbind(h, scope, "result"); /* tbl */
        return -1;
      }
      lua_setfield(L, -2, st->outputs[i].name); /* tbl, old, outputs */
    }
    lua_insert(L, -2);                       /* tbl, outputs, old */
    pc_lua_scope_unbind(h, scope, "result"); /* tbl, outputs */
  }
  lua_setfield(L, tbl, "outputs"); /* tbl */
  return 0;
}

/* Completes the result table: outputs, common fields, steps.ID. */
void pc__build_result(struct task *t, enum pc_outcome o)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->result_ref); /* result */
  int tbl = lua_gettop(L);
  if (t->restored) {
    /* The journal's record of the result (resume.c), as it was: only the
     * outcome is sure to be there (a result nothing read was not kept). */
    lua_pushstring(L, pc_outcome_name(PC_OK));
    lua_setfield(L, tbl, "outcome");
  } else if (o == PC_OK && !(t->kind == TK_FOREACH)) {
    char *oerr = NULL;
    if (eval_outputs(t, tbl, &oerr) != 0) {
      t->outcome = PC_ERROR;
      free(t->error);
      t->error = oerr;
      set_no_outputs(L, tbl);
    }
  } else {
    set_no_outputs(L, tbl);
  }
  if (!t->restored)
    set_common_fields(t, tbl);

  /* steps.ID: everything in the scope it runs in. A fan-out item is not
   * stored there: its result goes into the fan-out's `items`, and a leaf
   * item's scope has no steps table of its own (the one it would reach is
   * the fan-out's, where steps.ID is the fan-out's result). */
  if (t->step && t->step->id && !t->instance) {
    lua_pushvalue(L, tbl);
    pc_lua_scope_set_step(run->lua, t->scope_ref, t->step->id);
  }
  lua_pop(L, 1);
}

/* Builds the result table, stores it where expressions look for it, logs the
 * end of the step, and queues the notification to the parent. */
/* Items a stopped fan-out never started get a result too, so `items` has no
 * holes and len(steps.ID.items) is the number of items. */
void pc__fill_unstarted_items(struct task *t)
{
  lua_State *L = t->run->L;
  if (t->next_kid >= t->end || t->items_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->items_ref); /* items */
  for (size_t pos = t->next_kid; pos < t->end; pos += t->stride) {
    size_t i = t->own ? t->own[pos] : pos;
    lua_createtable(L, 0, 2); /* items, r */
    lua_pushstring(L, pc_outcome_name(PC_CANCELLED));
    lua_setfield(L, -2, "outcome");
    lua_pushstring(L, "not started: the fan-out stopped early");
    lua_setfield(L, -2, "error");
    lua_rawseti(L, -2, (lua_Integer)i + 1); /* items */
  }
  lua_pop(L, 1);
}

/* A step its group never started (the group stopped early, was skipped or
 * cancelled) still has a result where something reads it: steps.ID is
 * {outcome = "skipped", error = why}, so `finally` can ask
 * steps.ID.outcome instead of indexing nil. */
void pc__unreached_result(struct task *group, const struct pc_step *st, const char *why)
{
  if (!st->id || !st->results_read)
    return;
  lua_State *L = group->run->L;
  lua_createtable(L, 0, 3); /* r */
  lua_pushstring(L, pc_outcome_name(PC_SKIPPED));
  lua_setfield(L, -2, "outcome");
  lua_pushstring(L, why);
  lua_setfield(L, -2, "error");
  pc_lua_push_empty_ro(L);
  lua_setfield(L, -2, "outputs");
  pc_lua_scope_set_step(group->run->lua, group->scope_ref, st->id); /* pops r */
}
