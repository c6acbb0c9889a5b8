/* hooks.c: the run hooks (model/action.h): the run-wide states of actions
 * and services, kept in the order they were made, and what the run driver
 * asks of all of them at the end (statistics, cleanup) or in an emergency
 * (kill_now).
 *
 * A state lives in a table (struct pc_run_states, engine.h): its run's
 * own, or, for a hook marked `shared` when the run has one, the table the
 * runs on one loop share (several files in one `pacer run`: one HTTP
 * session for all of them). The tables are fixed arrays, because the
 * watchdog's thread walks them while the loop's thread may be adding to
 * them: an entry is filled in before the count that covers it is stored
 * (release order), and the watchdog reads the count first (acquire), so it
 * never sees a half-made entry; a state pointer is swapped atomically when
 * it is released. Everything else runs on the loop's thread. */
#include "core/task.h"

#include <assert.h>
#include <stdlib.h>

#include "base/util.h"

static struct pc_run_states *table_of(struct pc_run *run, const struct pc_run_hooks *hooks)
{
  return hooks->shared && run->shared ? run->shared : &run->states;
}

static struct pc_run_state_entry *entry_of(struct pc_run_states *t,
                                           const struct pc_run_hooks *hooks)
{
  size_t n = atomic_load_explicit(&t->n, memory_order_relaxed);
  for (size_t i = 0; i < n; i++)
    if (t->e[i].hooks == hooks)
      return &t->e[i];
  return NULL;
}

void *pc_run_state(struct pc_run *run, const struct pc_run_hooks *hooks, bool create)
{
  struct pc_run_states *t = table_of(run, hooks);
  struct pc_run_state_entry *e = entry_of(t, hooks);
  void *state = e ? atomic_load_explicit(&e->state, memory_order_relaxed) : NULL;
  if (state || !create)
    return state;
  state = hooks->create(run);
  if (e) { /* made again after a release (the run is being torn down) */
    e->maker = run;
    atomic_store_explicit(&e->state, state, memory_order_release);
    return state;
  }
  size_t n = atomic_load_explicit(&t->n, memory_order_relaxed);
  assert(n < PC_RUN_HOOKS_MAX && "PC_RUN_HOOKS_MAX is one per kind of run-wide state");
  if (n >= PC_RUN_HOOKS_MAX)
    abort();
  t->e[n].hooks = hooks;
  t->e[n].maker = run;
  atomic_init(&t->e[n].state, state);
  atomic_store_explicit(&t->n, n + 1, memory_order_release);
  return state;
}

void pc_run_state_release(struct pc_run *run, const struct pc_run_hooks *hooks)
{
  struct pc_run_state_entry *e = entry_of(table_of(run, hooks), hooks);
  if (e)
    atomic_store_explicit(&e->state, NULL, memory_order_release);
}

void pc__run_states_kill_now(struct pc_run_states *t)
{
  size_t n = atomic_load_explicit(&t->n, memory_order_acquire);
  for (size_t i = 0; i < n; i++) {
    const struct pc_run_hooks *hooks = t->e[i].hooks;
    void *state = atomic_load_explicit(&t->e[i].state, memory_order_acquire);
    if (state && hooks->kill_now)
      hooks->kill_now(state);
  }
}

void pc__run_hooks_kill_now(struct pc_run *run)
{
  pc__run_states_kill_now(&run->states);
}

void pc__run_states_cleanup(struct pc_run_states *t)
{
  size_t n = atomic_load_explicit(&t->n, memory_order_relaxed);
  for (size_t i = 0; i < n; i++) {
    void *state = atomic_load_explicit(&t->e[i].state, memory_order_relaxed);
    if (state)
      t->e[i].hooks->cleanup(t->e[i].maker, state);
  }
}

void pc__run_hooks_cleanup(struct pc_run *run)
{
  pc__run_states_cleanup(&run->states);
}

/* Adds `hooks` to the list `seen` (of `n`) unless it is there already, has
 * no statistics or is not among those asked for. */
static void add_stats_hooks(const struct pc_run *run, const struct pc_run_hooks **seen, size_t *n,
                            const struct pc_run_hooks *hooks, enum pc__stats_of which)
{
  if (!hooks || !hooks->stats)
    return;
  if (which != PC_STATS_ALL && run->shared &&
      (hooks->shared ? which != PC_STATS_SHARED : which != PC_STATS_OWN))
    return;
  for (size_t i = 0; i < *n; i++)
    if (seen[i] == hooks)
      return;
  seen[(*n)++] = hooks;
}

void pc__run_hooks_stats(struct pc_run *run, struct pc_run_report *rep,
                         const struct pc_run_hooks *const *declared, size_t ndeclared,
                         enum pc__stats_of which)
{
  size_t nown = atomic_load_explicit(&run->states.n, memory_order_relaxed);
  size_t nshared = run->shared ? atomic_load_explicit(&run->shared->n, memory_order_relaxed) : 0;
  size_t n = 0;
  const struct pc_run_hooks **seen = pc_xcalloc(ndeclared + nown + nshared + 1, sizeof *seen);
  for (size_t i = 0; i < ndeclared; i++)
    add_stats_hooks(run, seen, &n, declared[i], which);
  for (size_t i = 0; i < nown; i++)
    add_stats_hooks(run, seen, &n, run->states.e[i].hooks, which);
  for (size_t i = 0; i < nshared; i++)
    add_stats_hooks(run, seen, &n, run->shared->e[i].hooks, which);
  rep->stats = pc_xcalloc(n ? n : 1, sizeof *rep->stats);
  rep->nstats = n;
  for (size_t i = 0; i < n; i++)
    seen[i]->stats(pc_run_state(run, seen[i], false), &rep->stats[i]);
  free(seen);
}

void pc__actions_stats(struct pc_run *run, struct pc_run_report *rep, enum pc__stats_of which)
{
  const struct pc_run_hooks *declared[64];
  size_t n = 0;
  for (const struct pc_action_ops *const *a = run->wf->actions; a && *a; a++)
    if ((*a)->hooks && n < PC_ARRAY_SIZE(declared))
      declared[n++] = (*a)->hooks;
  pc__run_hooks_stats(run, rep, declared, n, which);
}
