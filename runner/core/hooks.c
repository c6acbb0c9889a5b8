/* hooks.c: the run hooks (model/action.h): the run-wide states of actions
 * and services, kept in the order they were made, and what the run driver
 * asks of all of them at the end (statistics, cleanup) or in an emergency
 * (kill_now).
 *
 * The states live in a fixed array of struct pc_run (engine.h), because
 * the watchdog's thread walks it while the loop's thread may be adding to
 * it: an entry is filled in before the count that covers it is stored
 * (release order), and the watchdog reads the count first (acquire), so it
 * never sees a half-made entry; a state pointer is swapped atomically when
 * it is released. Everything else runs on the loop's thread. */
#include "core/task.h"

#include <assert.h>
#include <stdlib.h>

#include "base/util.h"

static struct pc_run_state_entry *entry_of(struct pc_run *run, const struct pc_run_hooks *hooks)
{
  size_t n = atomic_load_explicit(&run->nhooks, memory_order_relaxed);
  for (size_t i = 0; i < n; i++)
    if (run->hooks[i].hooks == hooks)
      return &run->hooks[i];
  return NULL;
}

void *pc_run_state(struct pc_run *run, const struct pc_run_hooks *hooks, bool create)
{
  struct pc_run_state_entry *e = entry_of(run, hooks);
  void *state = e ? atomic_load_explicit(&e->state, memory_order_relaxed) : NULL;
  if (state || !create)
    return state;
  state = hooks->create(run);
  if (e) { /* made again after a release (the run is being torn down) */
    atomic_store_explicit(&e->state, state, memory_order_release);
    return state;
  }
  size_t n = atomic_load_explicit(&run->nhooks, memory_order_relaxed);
  assert(n < PC_RUN_HOOKS_MAX && "PC_RUN_HOOKS_MAX is one per kind of run-wide state");
  if (n >= PC_RUN_HOOKS_MAX)
    abort();
  run->hooks[n].hooks = hooks;
  atomic_init(&run->hooks[n].state, state);
  atomic_store_explicit(&run->nhooks, n + 1, memory_order_release);
  return state;
}

void pc_run_state_release(struct pc_run *run, const struct pc_run_hooks *hooks)
{
  struct pc_run_state_entry *e = entry_of(run, hooks);
  if (e)
    atomic_store_explicit(&e->state, NULL, memory_order_release);
}

void pc__run_hooks_kill_now(struct pc_run *run)
{
  size_t n = atomic_load_explicit(&run->nhooks, memory_order_acquire);
  for (size_t i = 0; i < n; i++) {
    const struct pc_run_hooks *hooks = run->hooks[i].hooks;
    void *state = atomic_load_explicit(&run->hooks[i].state, memory_order_acquire);
    if (state && hooks->kill_now)
      hooks->kill_now(state);
  }
}

void pc__run_hooks_cleanup(struct pc_run *run)
{
  size_t n = atomic_load_explicit(&run->nhooks, memory_order_relaxed);
  for (size_t i = 0; i < n; i++) {
    void *state = atomic_load_explicit(&run->hooks[i].state, memory_order_relaxed);
    if (state)
      run->hooks[i].hooks->cleanup(run, state);
  }
}

/* Adds `hooks` to the list `seen` (of `n`) unless it is there already or
 * has no statistics. */
static void add_stats_hooks(const struct pc_run_hooks **seen, size_t *n,
                            const struct pc_run_hooks *hooks)
{
  if (!hooks || !hooks->stats)
    return;
  for (size_t i = 0; i < *n; i++)
    if (seen[i] == hooks)
      return;
  seen[(*n)++] = hooks;
}

void pc__run_hooks_stats(struct pc_run *run, struct pc_run_report *rep,
                         const struct pc_run_hooks *const *declared, size_t ndeclared)
{
  size_t nreg = atomic_load_explicit(&run->nhooks, memory_order_relaxed), n = 0;
  const struct pc_run_hooks **seen = pc_xcalloc(ndeclared + nreg + 1, sizeof *seen);
  for (size_t i = 0; i < ndeclared; i++)
    add_stats_hooks(seen, &n, declared[i]);
  for (size_t i = 0; i < nreg; i++)
    add_stats_hooks(seen, &n, run->hooks[i].hooks);
  rep->stats = pc_xcalloc(n ? n : 1, sizeof *rep->stats);
  rep->nstats = n;
  for (size_t i = 0; i < n; i++)
    seen[i]->stats(pc_run_state(run, seen[i], false), &rep->stats[i]);
  free(seen);
}

void pc__actions_stats(struct pc_run *run, struct pc_run_report *rep)
{
  const struct pc_run_hooks *declared[64];
  size_t n = 0;
  for (const struct pc_action_ops *const *a = run->wf->actions; a && *a; a++)
    if ((*a)->hooks && n < PC_ARRAY_SIZE(declared))
      declared[n++] = (*a)->hooks;
  pc__run_hooks_stats(run, rep, declared, n);
}
