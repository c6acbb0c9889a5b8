/* sleep.c: see sleep.h. A bucket is a libuv timer and the sleeps due at
 * its millisecond, oldest first. It closes when it fires or when its last
 * sleep stops, takes no new sleeps from then on (its set forgets it at
 * once), and is freed in its timer's close callback. A waiting sleep finds
 * its bucket through the list: when it is the only element, the node next
 * to it is the bucket's head. */
#include "base/sleep.h"

#include <stdint.h>
#include <stdlib.h>

#include "base/util.h"

struct pc_sleep_bucket {
  uv_timer_t timer;
  uint64_t due;           /* loop time (ms) it fires at */
  struct pc_queue sleeps; /* struct pc_sleep, oldest first */
  pc_sleep_cb cb;
  struct pc_sleeps *ss;   /* NULL once closing */
};

void pc_sleeps_init(struct pc_sleeps *ss, pc_sleep_cb cb)
{
  ss->cb = cb;
  ss->last = NULL;
  ss->open = 0;
}

bool pc_sleeps_idle(const struct pc_sleeps *ss)
{
  return ss->open == 0;
}

static void on_bucket_closed(uv_handle_t *h)
{
  free(PC_CONTAINER_OF(h, struct pc_sleep_bucket, timer));
}

static void bucket_close(struct pc_sleep_bucket *b)
{
  if (!b->ss)
    return;
  if (b->ss->last == b)
    b->ss->last = NULL;
  b->ss->open--;
  b->ss = NULL;
  uv_close((uv_handle_t *)&b->timer, on_bucket_closed);
}

static void on_bucket_due(uv_timer_t *timer)
{
  struct pc_sleep_bucket *b = PC_CONTAINER_OF(timer, struct pc_sleep_bucket, timer);
  bucket_close(b); /* the memory stays until the close callback */
  /* One at a time from the head: a callback may stop another sleep of
   * this bucket (which then leaves the list) or start new ones (which go
   * to a new bucket). */
  while (!pc_queue_empty(&b->sleeps)) {
    struct pc_sleep *s = pc_queue_data(pc_queue_head(&b->sleeps), struct pc_sleep, node);
    pc_queue_remove(&s->node);
    b->cb(s);
  }
}

void pc_sleep_start(struct pc_sleeps *ss, uv_loop_t *loop, struct pc_sleep *s, double ms)
{
  /* The loop's clock is cached per iteration: refresh it, or a sleep
   * started late in a busy iteration ends early. */
  uv_update_time(loop);
  uint64_t timeout = (uint64_t)(ms + 0.5);
  uint64_t due = uv_now(loop) + timeout;
  struct pc_sleep_bucket *b = ss->last;
  if (!b || b->due != due || b->timer.loop != loop) {
    b = pc_xcalloc(1, sizeof *b);
    b->due = due;
    b->cb = ss->cb;
    b->ss = ss;
    pc_queue_init(&b->sleeps);
    uv_timer_init(loop, &b->timer);
    uv_timer_start(&b->timer, on_bucket_due, timeout, 0);
    ss->last = b;
    ss->open++;
  }
  pc_queue_insert_tail(&b->sleeps, &s->node);
}

void pc_sleep_stop(struct pc_sleep *s)
{
  if (!pc_sleep_waiting(s))
    return;
  struct pc_queue *other = s->node.next;
  bool alone = other == s->node.prev; /* then `other` is the bucket's head */
  pc_queue_remove(&s->node);
  if (alone)
    bucket_close(pc_queue_data(other, struct pc_sleep_bucket, sleeps));
}
