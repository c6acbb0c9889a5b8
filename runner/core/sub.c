/* sub.c: sub-groups (model/action.h): steps an action runs through the
 * engine below its attempt, as a workflow file run as a step does. They
 * are root sequences of the same run (`steps`, then `finally`), on the
 * same loop, with the same pools, run hooks and Lua host; what ties them
 * to the calling step is the sub-group their root points to, which labels
 * (the place of the call: "token (main.yml:12 › login.yml:5)"), records
 * (below the caller's) and --shard (a fan-out inside an item's call is
 * that shard's alone) read.
 *
 * Lifetime: the sub-group owns its scope and lives until its `finally` is
 * over. The action hears of the end through `done`, from the drain; if the
 * action's attempt is cancelled first (a timeout, a failing sibling, a
 * signal), it detaches: the steps are cancelled at once, `finally` still
 * runs, bounded, and the run driver waits for the last sub-group
 * (run->nsubs) before it closes the run's handles. */
#include "core/task.h"

#include <stdlib.h>
#include <string.h>

#include <lua.h>

#include "base/util.h"
#include "script/luahost.h"

struct pc_subgroup {
  struct pc_run *run;          /* borrowed */
  struct task *caller;         /* borrowed: the calling leaf; NULL once detached */
  char *cause;                 /* owned: the label of the first failure's step, or NULL */
  size_t cause_rec;
  struct task *root;           /* the root running now (steps, then finally), or NULL */
  struct pc_step *const *finally; /* borrowed from the action's workflow */
  size_t nfinally;
  int scope_ref;               /* owned */
  char *where;                 /* owned: "main.yml:12", or "main.yml:12 › login.yml:7" */
  char *item;                  /* owned: the caller's fan-out item label, or NULL */
  size_t caller_rec;           /* the caller's record, or PC_NO_RECORD */
  bool partitioned;            /* the caller is inside a partitioned fan-out */
  bool detached;               /* the action is gone: `done` is not called */
  bool in_finally;
  enum pc_outcome outcome;     /* the worse of steps and finally so far */
  char *msg;                   /* the first failure's message, owned, or NULL */
  void (*done)(void *data, enum pc_outcome o, const char *msg);
  void *data;
};

struct pc_subgroup *pc__sub_of(const struct task *t)
{
  while (t && t->parent)
    t = t->parent;
  return t && !t->step ? t->root->sub : NULL;
}

const char *pc__sub_where(const struct pc_subgroup *g) { return g->where; }
const char *pc__sub_item(const struct pc_subgroup *g) { return g->item; }
size_t pc__sub_caller_rec(const struct pc_subgroup *g) { return g->caller_rec; }
bool pc__sub_partitioned(const struct pc_subgroup *g) { return g->partitioned; }

static void on_sub_root_done(struct pc_run *run, struct task *root);

static void start_root(struct pc_subgroup *g, const char *name, struct pc_step *const *steps,
                       size_t n, double timeout_ms)
{
  struct task *t = pc__task_new(g->run, NULL, NULL, g->scope_ref, false, false);
  t->root->name = name;
  t->root->done = on_sub_root_done;
  t->root->sub = g;
  t->kids = steps;
  t->nkids = n;
  t->group_timeout_ms = timeout_ms;
  g->root = t;
  pc__task_start(t); /* its end always comes through the drain */
}

static void sub_free(struct pc_subgroup *g)
{
  struct pc_run *run = g->run;
  pc_lua_unref(run->lua, g->scope_ref);
  free(g->where);
  free(g->item);
  free(g->msg);
  free(g->cause);
  free(g);
  if (--run->nsubs == 0 && run->subs_over) {
    void (*cb)(struct pc_run *) = run->subs_over;
    run->subs_over = NULL;
    cb(run);
  }
}

/* The severity order of outcomes for "the worse of steps and finally". */
static int badness(enum pc_outcome o)
{
  return o == PC_OK || o == PC_SKIPPED ? 0 : o == PC_FAILED ? 1 : o == PC_CANCELLED ? 2 : 3;
}

static void on_sub_root_done(struct pc_run *run, struct task *root)
{
  struct pc_subgroup *g = root->root->sub;
  enum pc_outcome o = pc__root_outcome(root);
  const char *err = root->error;
  size_t crec;
  const char *cause = pc__root_cause(root, &crec);
  if (!g->in_finally) {
    g->outcome = o;
    if (o != PC_OK && err)
      g->msg = pc_xstrdup(err);
  } else if (badness(o) > badness(g->outcome)) {
    g->outcome = o;
    free(g->msg);
    g->msg = err ? pc_asprintf("finally: %s", err) : NULL;
  }
  if (!g->cause && cause && pc_outcome_is_failure(o)) {
    g->cause = pc_xstrdup(cause);
    g->cause_rec = crec;
  }
  pc__root_free(root);
  g->root = NULL;
  if (!g->in_finally && g->nfinally) {
    /* As the run's own `finally` does, it can read how the steps ended. */
    lua_pushstring(run->L, pc_outcome_name(g->outcome));
    pc_lua_set_workflow_field(run->lua, g->scope_ref, "outcome");
    g->in_finally = true;
    start_root(g, "finally", g->finally, g->nfinally,
               g->detached ? PC_SUBGROUP_FINALLY_GRACE_MS : -1);
    return;
  }
  if (!g->detached) {
    if (g->cause && pc_outcome_is_failure(g->outcome)) {
      struct leaf_ext *x = pc__leaf_ext(g->caller);
      free(x->sub_cause);
      x->sub_cause = g->cause;
      x->sub_cause_rec = g->cause_rec;
      g->cause = NULL;
    }
    g->done(g->data, g->outcome, g->msg);
  }
  sub_free(g);
}

struct pc_subgroup *pc_attempt_run_steps(struct pc_attempt *a, const struct pc_subgroup_spec *spec)
{
  struct task *t = PC_CONTAINER_OF(a, struct task, att);
  struct pc_subgroup *g = pc_xcalloc(1, sizeof *g);
  struct pc_subgroup *outer = pc__sub_of(t);
  g->run = a->run;
  g->caller = t;
  t->sub_ran = true;
  g->cause_rec = PC_NO_RECORD;
  g->finally = spec->finally;
  g->nfinally = spec->nfinally;
  g->scope_ref = spec->scope_ref;
  g->done = spec->done;
  g->data = spec->data;
  const char *base = strrchr(t->step->file, '/');
  base = base ? base + 1 : t->step->file;
  g->where = outer ? pc_asprintf("%s \u203a %s:%d", outer->where, base, t->step->line)
                   : pc_asprintf("%s:%d", base, t->step->line);
  g->item = pc__task_item(t);
  if (!g->item && outer && outer->item)
    g->item = pc_xstrdup(outer->item);
  g->caller_rec = t->rec;
  for (const struct task *p = t; p; p = p->parent) {
    if (p->kind == TK_FOREACH && p->partitioned)
      g->partitioned = true;
    if (!p->parent && !p->step && p->root->sub && p->root->sub->partitioned)
      g->partitioned = true;
  }
  g->run->nsubs++;
  start_root(g, "steps", spec->steps, spec->nsteps, spec->timeout_ms);
  return g;
}

void pc_subgroup_detach(struct pc_subgroup *g)
{
  if (g == NULL || g->detached)
    return;
  g->detached = true;
  g->done = NULL;
  g->caller = NULL;
  if (!g->root)
    return;
  if (!g->in_finally)
    pc__task_cancel(g->root, PC_CANCELLED, "cancelled: the calling step was cancelled");
  else
    pc__root_bound(g->root, PC_SUBGROUP_FINALLY_GRACE_MS);
}
