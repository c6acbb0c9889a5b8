/* pool.c: concurrency permits and a token-bucket rate limiter with a strict
 * FIFO queue. Only the head of the queue is ever considered, so a waiter
 * that arrived first is served first even if a later one could go sooner;
 * this is what "fair" means to a user watching request order.
 *
 * With a remote source (pool.h), rate tokens come from the source instead
 * of the local bucket: the pool asks for as many as wait when the head
 * needs one and none is reserved, then turns each reserved token into an
 * available one at the moment the source said it may be used (the timer
 * wakes the queue then). One request at a time is outstanding; the pool
 * asks again while more wait than it holds reserved, from the moment the
 * first token of the last answer falls due (pool.h says why).
 *
 * A pause (pc_pool_pause) holds the whole queue until it ends: the timer
 * wakes the queue then. Tokens the local bucket earns meanwhile are capped
 * at the burst as always; tokens reserved from a source are pushed past
 * the pause, keeping their spacing, so the pool never spends them in a
 * rush when it ends (spending a reserved token later never exceeds the
 * shared rate). */
#include "base/pool.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#include "base/util.h"

static double now_ms(void)
{
  return (double)uv_hrtime() / 1e6;
}

static bool remote(const struct pc_pool *p)
{
  return p->src && !p->src_failed;
}

static void refill(struct pc_pool *p)
{
  if (remote(p)) {
    /* Reserved tokens fall due one by one. Tokens due that no waiter can
     * take (waiters that left, or no free slot) are kept up to the burst,
     * or as many as wait: they were reserved for those. */
    double now = now_ms();
    while (p->nseg && p->seg[0].next_due <= now + 1e-6) {
      p->tokens += 1.0;
      p->left--;
      p->seg[0].next_due += p->interval;
      if (--p->seg[0].left == 0) {
        memmove(&p->seg[0], &p->seg[1], (p->nseg - 1) * sizeof p->seg[0]);
        p->nseg--;
      }
    }
    double cap = p->lim.burst > (int)p->nwaiting ? p->lim.burst : (double)p->nwaiting;
    if (p->tokens > cap)
      p->tokens = cap;
    return;
  }
  if (p->lim.rate <= 0)
    return;
  double now = now_ms();
  p->tokens += (now - p->refilled_at) * p->lim.rate / 1000.0;
  if (p->tokens > p->lim.burst)
    p->tokens = p->lim.burst;
  p->refilled_at = now;
}

static bool paused_at(const struct pc_pool *p, double now)
{
  return now < p->paused_until;
}

bool pc_pool_paused(const struct pc_pool *p)
{
  return paused_at(p, now_ms());
}

static bool slot_free(const struct pc_pool *p)
{
  return p->lim.concurrency <= 0 || p->in_use < p->lim.concurrency;
}

/* A little slack absorbs floating-point error in the token arithmetic. */
static bool token_ready(const struct pc_pool *p)
{
  return (p->lim.rate <= 0 && !remote(p)) || p->tokens >= 1.0 - 1e-9;
}

static void take(struct pc_pool *p)
{
  if (p->lim.rate > 0 || remote(p))
    p->tokens -= 1.0;
  p->in_use++;
  if (p->in_use > p->max_in_use)
    p->max_in_use = p->in_use;
  p->granted++;
}

/* The first waiter of a non-empty queue. */
static struct pc_pool_waiter *head_waiter(const struct pc_pool *p)
{
  return pc_queue_data(pc_queue_head(&p->waiters), struct pc_pool_waiter, node);
}

static void unlink_waiter(struct pc_pool_waiter *w)
{
  struct pc_pool *p = w->pool;
  pc_queue_remove(&w->node);
  w->queued = false;
  w->pool = NULL;
  p->nwaiting--;
}

static void arm_timer(struct pc_pool *p);

/* Grants permits to queued waiters, head first, while both a slot and a
 * token are available. Callbacks may re-enter acquire/release/cancel on this
 * pool, so the queue is re-read after each one. */
static void dispatch(struct pc_pool *p)
{
  refill(p);
  while (!pc_queue_empty(&p->waiters) && slot_free(p) && token_ready(p) && !pc_pool_paused(p)) {
    struct pc_pool_waiter *w = head_waiter(p);
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

/* More wait than are reserved, and the source may be asked for them. */
static bool may_ask(const struct pc_pool *p, double now)
{
  return !p->src_asked && p->nwaiting > p->left && p->nseg < PC_POOL_SEGS &&
         now >= p->src_retry_at;
}

unsigned pc_pool_source_wanted(const struct pc_pool *p)
{
  unsigned n = p->nwaiting > p->left ? p->nwaiting - p->left : 1;
  return n > PC_POOL_BATCH ? PC_POOL_BATCH : n;
}

/* Asks the source for the tokens that wait and are not reserved. */
static void ask(struct pc_pool *p)
{
  p->src_asked = true;
  p->src->request(p->src);
}

/* With a source: ask if there is cause (the answer comes from a loop
 * callback), then wake when the next reserved token falls due, or when
 * the source said to ask again, whichever is first. */
static void arm_remote(struct pc_pool *p)
{
  double now = now_ms(), at = INFINITY;
  if (may_ask(p, now))
    ask(p);
  if (p->nseg)
    at = p->seg[0].next_due;
  if (!p->src_asked && p->nwaiting > p->left && p->nseg < PC_POOL_SEGS && p->src_retry_at < at)
    at = p->src_retry_at;
  if (at == INFINITY) {
    uv_timer_stop(&p->timer); /* the answer wakes the queue */
    return;
  }
  uv_update_time(p->timer.loop);
  uv_timer_start(&p->timer, on_token_due, (uint64_t)ceil(at > now ? at - now : 0), 0);
}

/* The timer runs only while the head waits for a token (not for a slot:
 * a release wakes those). */
static void arm_timer(struct pc_pool *p)
{
  if (pc_queue_empty(&p->waiters) || !slot_free(p)) {
    uv_timer_stop(&p->timer);
    return;
  }
  double now = now_ms();
  if (paused_at(p, now)) { /* a release or an answer does not end a pause */
    uv_update_time(p->timer.loop);
    uv_timer_start(&p->timer, on_token_due, (uint64_t)ceil(p->paused_until - now), 0);
    return;
  }
  if (token_ready(p)) {
    uv_timer_stop(&p->timer);
    return;
  }
  if (remote(p)) {
    arm_remote(p);
    return;
  }
  double wait = (1.0 - p->tokens) * 1000.0 / p->lim.rate;
  /* Tokens are counted on uv_hrtime; bring the loop's cached clock level. */
  uv_update_time(p->timer.loop);
  uv_timer_start(&p->timer, on_token_due, (uint64_t)ceil(wait), 0);
}

static int count_share(int c, int k, int n)
{
  long long s = (long long)c * k / n - (long long)c * (k - 1) / n;
  return s < 1 ? 1 : (int)s;
}

struct pc_pool_limits pc_pool_limits_share(const struct pc_pool_limits *d, int k, int n)
{
  struct pc_pool_limits s = *d;
  s.rate = d->rate / n;
  if (d->concurrency > 0)
    s.concurrency = count_share(d->concurrency, k, n);
  s.burst = count_share(d->burst, k, n);
  return s;
}

void pc_pool_init(uv_loop_t *loop, struct pc_pool *p, const struct pc_pool_limits *lim)
{
  p->lim = *lim;
  uv_timer_init(loop, &p->timer);
  p->in_use = 0;
  p->tokens = lim->burst > 0 ? lim->burst : 1;
  p->refilled_at = now_ms();
  pc_queue_init(&p->waiters);
  p->granted = 0;
  p->max_in_use = 0;
  p->nwaiting = 0;
  p->src = NULL;
  p->src_failed = p->src_asked = false;
  p->src_retry_at = 0;
  p->nseg = p->left = 0;
  p->interval = 0;
  p->src_tokens = 0;
  p->paused_until = 0;
  p->pauses = 0;
}

void pc_pool_set_source(struct pc_pool *p, struct pc_pool_source *src)
{
  assert(p->lim.rate > 0 && pc_queue_empty(&p->waiters));
  p->src = src;
  src->pool = p;
  p->tokens = 0; /* every token comes from the shared budget */
}

void pc_pool_source_answer(struct pc_pool *p, int count, double first_ms, double interval_ms)
{
  assert(p->src_asked);
  p->src_asked = false;
  double now = now_ms();
  if (count < 0) {
    /* Back to the pool's own bucket, starting empty of what it had not
     * been granted: at most its burst. */
    p->src_failed = true;
    p->nseg = p->left = 0;
    if (p->tokens > p->lim.burst)
      p->tokens = p->lim.burst;
    p->refilled_at = now;
  } else if (count == 0) {
    p->src_retry_at = now + (first_ms > 1 ? first_ms : 1);
  } else {
    /* After the segments held: the source reserves in order. */
    assert(p->nseg < PC_POOL_SEGS);
    p->seg[p->nseg].left = (unsigned)count;
    p->seg[p->nseg].next_due = now + (first_ms > 0 ? first_ms : 0);
    /* Asked before a pause began: these fall due after it. */
    if (p->seg[p->nseg].next_due < p->paused_until)
      p->seg[p->nseg].next_due = p->paused_until;
    p->nseg++;
    p->left += (unsigned)count;
    /* More may be asked for once the first of these falls due: sooner, a
     * process that had an answer would ask again before any other could,
     * and take the whole budget. */
    p->src_retry_at = p->seg[p->nseg - 1].next_due;
    p->interval = interval_ms;
    p->src_tokens += (unsigned long)count;
  }
  dispatch(p);
}

bool pc_pool_pause(struct pc_pool *p, double ms)
{
  if (!(ms > 0))
    return false;
  if (ms > PC_POOL_PAUSE_MAX_MS)
    ms = PC_POOL_PAUSE_MAX_MS;
  double now = now_ms(), until = now + ms;
  if (until <= p->paused_until)
    return false;
  bool fresh = !paused_at(p, now);
  p->paused_until = until;
  if (fresh)
    p->pauses++;
  if (remote(p)) {
    /* Reserved tokens move past the pause, in order and spacing; those
     * already due wait, at most a burst of them. */
    if (p->nseg && p->seg[0].next_due < until) {
      double shift = until - p->seg[0].next_due;
      for (unsigned i = 0; i < p->nseg; i++)
        p->seg[i].next_due += shift;
    }
    if (p->tokens > p->lim.burst)
      p->tokens = p->lim.burst;
    if (p->src_retry_at < until)
      p->src_retry_at = until;
    if (p->src->pause)
      p->src->pause(p->src, ms);
  }
  arm_timer(p);
  return fresh;
}

bool pc_pool_acquire(struct pc_pool *p, struct pc_pool_waiter *w, pc_pool_grant_cb cb)
{
  assert(!w->queued);
  refill(p);
  if (pc_queue_empty(&p->waiters) && slot_free(p) && token_ready(p) && !pc_pool_paused(p)) {
    take(p);
    return true;
  }
  w->cb = cb;
  w->pool = p;
  pc_queue_insert_tail(&p->waiters, &w->node);
  w->queued = true;
  p->nwaiting++;
  arm_timer(p);
  return false;
}

void pc_pool_cancel(struct pc_pool_waiter *w)
{
  if (!w->queued)
    return;
  struct pc_pool *p = w->pool;
  bool was_head = head_waiter(p) == w;
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
  assert(pc_queue_empty(&p->waiters));
  uv_close((uv_handle_t *)&p->timer, cb);
}
