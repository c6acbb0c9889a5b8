/* sleep.h: sleeps on a libuv loop, the one implementation behind the
 * `sleep` action and pacer.sleep (sleep.c).
 *
 * Sleeps that end in the same millisecond of the loop's clock share one
 * libuv timer (a bucket): 100 000 gathered sleeps started together need a
 * handful of timers, not 100 000 (each is a 152-byte handle and a heap
 * entry). A bucket fires its sleeps in the order they started, as separate
 * timers with the same due time would. A sleep is a list node embedded by
 * its owner (16 bytes, no allocation); a set of sleeps (struct pc_sleeps,
 * with the callback they share) is kept by whoever starts them: the run's
 * `sleep` action, the Lua host.
 *
 * A utility of layer 0: it knows libuv and nothing of pacer's run, so both
 * an action (layer 3) and the Lua runtime (layer 2) use it. */
#ifndef PACER_SLEEP_H
#define PACER_SLEEP_H

#include <stdbool.h>

#include <uv.h>

#include "base/queue.h"

struct pc_sleep_bucket;

/* One sleep, embedded by its owner. Zeroed memory, or a sleep that fired
 * or was stopped, does not wait. While it waits it is on its bucket's
 * list, whose head is in the bucket. */
struct pc_sleep {
  struct pc_queue node;
};
typedef void (*pc_sleep_cb)(struct pc_sleep *s);

/* The sleeps of one owner. */
struct pc_sleeps {
  pc_sleep_cb cb;               /* called for each sleep that is over */
  struct pc_sleep_bucket *last; /* the newest bucket: the one a new sleep most likely joins */
  unsigned open;                /* buckets with sleeps waiting */
};

/* An empty set whose sleeps call `cb` (from the loop) when they are over. */
void pc_sleeps_init(struct pc_sleeps *ss, pc_sleep_cb cb);
/* Whether no sleep of the set waits; the set may then be dropped (buckets
 * being closed are freed by their close callbacks: run the loop). */
bool pc_sleeps_idle(const struct pc_sleeps *ss);

/* Starts a sleep of `ms` milliseconds (rounded to the nearest one) on
 * `loop`: the set's callback is called once when it is over, unless
 * pc_sleep_stop comes first. The loop's cached clock is refreshed first: a
 * sleep started late in a busy iteration must not end early. `s` must not
 * be waiting already. */
void pc_sleep_start(struct pc_sleeps *ss, uv_loop_t *loop, struct pc_sleep *s, double ms);
/* Stops a sleep that has not fired; harmless on one that does not wait. A
 * bucket left empty closes its timer. */
void pc_sleep_stop(struct pc_sleep *s);
/* Whether the sleep waits. */
static inline bool pc_sleep_waiting(const struct pc_sleep *s)
{
  return s->node.next && !pc_queue_empty(&s->node);
}

#endif
