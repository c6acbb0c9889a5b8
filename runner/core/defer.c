/* defer.c: the engine's ready queue (tasks with events) and the deferred
 * queue (callbacks actions ask for, Lua resumes among them), drained by one
 * uv_idle handle: the only place the engine reacts to completions. See
 * docs/engine.md, "The ready queue". */
#include "core/task.h"

#include "base/util.h"

/* ========================================================== ready queue */

/* How long one drain may hold the loop before it lets timers, signals and
 * I/O have a turn (the idle handle stays active and comes back at once):
 * a Lua gather of 100 000 functions resumes them all from this queue, and
 * a step timeout or SIGINT must still get through. */
#define DRAIN_BUDGET_MS 20.0

static void drain_deferred(struct pc_run *run, double until)
{
  struct pc_deferred *d;
  unsigned n = 0;
  while ((d = run->dq_head)) {
    if (++n % 64 == 0 && pc_mono_ms() >= until)
      return;
    run->dq_head = d->next;
    if (run->dq_head)
      run->dq_head->prev = NULL;
    else
      run->dq_tail = NULL;
    d->next = d->prev = NULL;
    d->queued = false;
    d->cb(d);
  }
}

static void drain_tasks(struct pc_run *run);

static void on_drain(uv_idle_t *h)
{
  struct pc_run *run = PC_CONTAINER_OF(h, struct pc_run, drain);
  double until = pc_mono_ms() + DRAIN_BUDGET_MS;
  while (run->rq_head || run->dq_head) {
    drain_tasks(run);
    drain_deferred(run, until);
    if (run->dq_head && pc_mono_ms() >= until)
      return; /* more next turn */
  }
  uv_idle_stop(h);
  /* The loop computes how long to poll from the time cached when this
   * iteration began: after Lua code held it for 300 ms, a timer due then
   * would wait 300 ms more. */
  uv_update_time(h->loop);
}

void pc_run_defer(struct pc_run *run, struct pc_deferred *d, void (*cb)(struct pc_deferred *d))
{
  d->cb = cb;
  if (d->queued)
    return;
  d->queued = true;
  d->next = NULL;
  d->prev = run->dq_tail;
  if (run->dq_tail)
    run->dq_tail->next = d;
  else
    run->dq_head = d;
  run->dq_tail = d;
  uv_idle_start(&run->drain, on_drain);
}

void pc_run_defer_cancel(struct pc_run *run, struct pc_deferred *d)
{
  if (!d->queued)
    return;
  if (d->prev)
    d->prev->next = d->next;
  else
    run->dq_head = d->next;
  if (d->next)
    d->next->prev = d->prev;
  else
    run->dq_tail = d->prev;
  d->next = d->prev = NULL;
  d->queued = false;
}

static void drain_tasks(struct pc_run *run)
{
  struct task *t;
  while ((t = run->rq_head)) {
    run->rq_head = t->rq_next;
    if (!run->rq_head)
      run->rq_tail = NULL;
    t->rq_next = NULL;
    t->queued = false;
    unsigned ev = t->events;
    t->events = 0;
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
        pc__group_child_done(t->parent, t);
      else
        t->root_done(t->run, t);
    }
  }
}

void pc__post(struct task *t, unsigned ev)
{
  struct pc_run *run = t->run;
  t->events |= ev;
  if (t->queued)
    return;
  t->queued = true;
  if (run->rq_tail)
    run->rq_tail->rq_next = t;
  else
    run->rq_head = t;
  run->rq_tail = t;
  uv_idle_start(&run->drain, on_drain);
}
