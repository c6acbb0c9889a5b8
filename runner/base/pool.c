/* pool.c: concurrency permits and a token-bucket rate limiter with a strict
 * FIFO queue. Only the head of the queue is ever considered, so a waiter
 * that arrived first is served first even if a later one could go sooner;
 * this is what "fair" means to a user watching request order. */
#include "base/pool.h"

#include <assert.h>
#include <math.h>

#include "base/util.h"

static double now_ms(void)
{
  return (double)uv_hrtime() / 1e6;
}

static void refill(struct pc_pool *p)
{
  if (p->lim.rate <= 0)
    return;
  double now = now_ms();
  p->tokens += (now - p->refilled_at) * p->lim.rate / 1000.0;
  if (p->tokens > p->lim.burst)
    p->tokens = p->lim.burst;
  p->refilled_at = now;
}

static bool slot_free(const struct pc_pool *p)
{
  return p->lim.concurrency <= 0 || p->in_use < p->lim.concurrency;
}

/* A little slack absorbs floating-point error in the token arithmetic. */
static bool token_ready(const struct pc_pool *p)
{
  return p->lim.rate <= 0 || p->tokens >= 1.0 - 1e-9;
}

static void take(struct pc_pool *p)
{
  if (p->lim.rate > 0)
    p->tokens -= 1.0;
  p->in_use++;
  if (p->in_use > p->max_in_use)
    p->max_in_use = p->in_use;
  p->granted++;
}

static void unlink_waiter(struct pc_pool_waiter *w)
{
  struct pc_pool *p = w->pool;
  if (w->prev)
    w->prev->next = w->next;
  else
    p->head = w->next;
  if (w->next)
    w->next->prev = w->prev;
  else
    p->tail = w->prev;
  w->next = w->prev = NULL;
  w->queued = false;
  w->pool = NULL;
}

static void arm_timer(struct pc_pool *p);

/* Grants permits to queued waiters, head first, while both a slot and a
 * token are available. Callbacks may re-enter acquire/release/cancel on this
 * pool, so the queue is re-read after each one. */
static void dispatch(struct pc_pool *p)
{
  refill(p);
  while (p->head && slot_free(p) && token_ready(p)) {
    struct pc_pool_waiter *w = p->head;
    unlink_waiter(w);
    take(p);
    w->cb(w);
    refill(p);
  }
  arm_timer(p);
}

static void on_token_due(uv_timer_t *t)
{
  dispatch(PC_CONTAINER_OF(t, struct pc_pool, timer));
}

/* The timer runs only while the head waits for a token (not for a slot:
 * a release wakes those). */
static void arm_timer(struct pc_pool *p)
{
  if (!p->head || !slot_free(p) || token_ready(p)) {
    uv_timer_stop(&p->timer);
    return;
  }
  double wait = (1.0 - p->tokens) * 1000.0 / p->lim.rate;
  /* Tokens are counted on uv_hrtime; bring the loop's cached clock level. */
  uv_update_time(p->timer.loop);
  uv_timer_start(&p->timer, on_token_due, (uint64_t)ceil(wait), 0);
}

void pc_pool_init(uv_loop_t *loop, struct pc_pool *p, const struct pc_pool_limits *lim)
{
  p->lim = *lim;
  uv_timer_init(loop, &p->timer);
  p->in_use = 0;
  p->tokens = lim->burst > 0 ? lim->burst : 1;
  p->refilled_at = now_ms();
  p->head = p->tail = NULL;
  p->granted = 0;
  p->max_in_use = 0;
}

bool pc_pool_acquire(struct pc_pool *p, struct pc_pool_waiter *w, pc_pool_grant_cb cb)
{
  assert(!w->queued);
  refill(p);
  if (!p->head && slot_free(p) && token_ready(p)) {
    take(p);
    return true;
  }
  w->cb = cb;
  w->pool = p;
  w->next = NULL;
  w->prev = p->tail;
  if (p->tail)
    p->tail->next = w;
  else
    p->head = w;
  p->tail = w;
  w->queued = true;
  arm_timer(p);
  return false;
}

void pc_pool_cancel(struct pc_pool_waiter *w)
{
  if (!w->queued)
    return;
  struct pc_pool *p = w->pool;
  bool was_head = p->head == w;
  unlink_waiter(w);
  /* The next waiter may be able to go now that the head left. */
  if (was_head)
    dispatch(p);
}

void pc_pool_release(struct pc_pool *p)
{
  assert(p->in_use > 0);
  p->in_use--;
  dispatch(p);
}

void pc_pool_close(struct pc_pool *p, uv_close_cb cb)
{
  assert(!p->head);
  uv_close((uv_handle_t *)&p->timer, cb);
}
