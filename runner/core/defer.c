/* defer.c: the engine's one deferred queue and the drain that runs it: the
 * only place where the engine reacts to completions and the only place
 * that resumes Lua.
 *
 * Whatever completes (an attempt, a pool grant, a child task, an HTTP
 * response a coroutine waits for) only queues an entry (struct
 * pc_deferred, model/action.h): a task's events are one (task.c, pc__post),
 * a coroutine to resume is another. A uv_idle handle, active only while the
 * queue is not empty, runs the entries in the order they were queued. So no
 * engine function runs inside another one's iteration over children, an
 * action may complete inside its own start(), and cancellation can walk a
 * subtree without the tree changing under it.
 *
 * One drain holds the loop for DRAIN_BUDGET_MS at most; the idle handle
 * stays active and the drain goes on in the next turn of the loop. See
 * docs/engine.md, "The deferred queue". */
#include "core/task.h"

#include "base/log.h"
#include "base/queue.h"
#include "base/util.h"

/* How long one drain may hold the loop before it lets timers, signals and
 * I/O have a turn: a Lua gather of 100 000 functions resumes them all from
 * this queue, and a step timeout or SIGINT must still get through. The
 * clock is read every 64 entries, not for each. */
#define DRAIN_BUDGET_MS 20.0

void pc__on_drain(uv_idle_t *h)
{
  struct pc_run *run = PC_CONTAINER_OF(h, struct pc_run, drain);
  double until = pc_mono_ms() + DRAIN_BUDGET_MS;
  unsigned n = 0;
  /* What the drain runs is this run's work: its log lines carry its id. */
  const char *prev_id = pc_log_push_run_id(run->run_id);
  while (!pc_queue_empty(&run->deferred)) {
    if (++n % 64 == 0 && pc_mono_ms() >= until) {
      pc_log_pop_run_id(prev_id);
      return; /* more next turn */
    }
    struct pc_queue *q = pc_queue_head(&run->deferred);
    pc_queue_remove(q);
    struct pc_deferred *d = pc_queue_data(q, struct pc_deferred, node);
    d->cb(d); /* may free d, or queue it again */
  }
  pc_log_pop_run_id(prev_id);
  uv_idle_stop(h);
  /* The loop computes how long to poll from the time cached when this
   * iteration began: after Lua code held it for 300 ms, a timer due then
   * would wait 300 ms more. */
  uv_update_time(h->loop);
}

void pc__defer_init(struct pc_run *run)
{
  pc_queue_init(&run->deferred);
  uv_idle_init(run->loop, &run->drain);
}

void pc_run_defer(struct pc_run *run, struct pc_deferred *d, void (*cb)(struct pc_deferred *d))
{
  pc__defer(run, d, cb);
}

void pc_run_defer_cancel(struct pc_run *run, struct pc_deferred *d)
{
  (void)run;
  if (pc_deferred_queued(d))
    pc_queue_remove(&d->node);
}
