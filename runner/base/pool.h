/* pool.h: named limits shared by every step that names them. A pool hands
 * out permits, first come first served: a permit needs a free concurrency
 * slot (if the pool has `concurrency`) and a token from the rate limiter (if
 * it has `rate`). The rate limiter is a token bucket of capacity `burst`
 * (default 1, which spaces permits evenly: 10/s gives one every 100 ms).
 * Rate tokens are spent when a permit is granted; concurrency slots are held
 * until pc_pool_release().
 *
 * A pool may take its rate tokens from a source outside the process, a
 * budget shared with other processes (`shared:`, base/redisbucket.c). The
 * pool then asks the source for a few tokens at a time, as many as wait
 * and are not reserved yet (at most PC_POOL_BATCH); the source reserves
 * them and says when each may be used (evenly spaced, the first perhaps at
 * once), and the pool spends them at those times. It asks again while
 * more wait than it holds reserved, once the first token of the last
 * answer falls due: a process that asked only when its reservation ran out
 * would find the budget taken by those that asked sooner, and one that
 * asked at once after each answer would take it from the others. If the source fails, the pool goes back to its own
 * token bucket for the rest of the run.
 *
 * A pool may be paused (pc_pool_pause): a server answered one of its
 * requests 429 or 503 with a Retry-After, and no permit is granted until
 * that time, to any waiter. With a source, the pause goes to the source
 * too (the shared budget then holds every process back), and tokens it
 * had reserved are spent after the pause rather than during it. */
#ifndef PACER_POOL_H
#define PACER_POOL_H

#include <stdbool.h>

#include <uv.h>

#include "base/queue.h"

/* A pool's limits (the workflow's pool definition gives them). */
struct pc_pool_limits {
  int concurrency; /* 0: unlimited */
  double rate;     /* permits per second; 0: unlimited */
  int burst;       /* the bucket's capacity; <= 0 counts as 1 */
};

struct pc_pool_waiter;
typedef void (*pc_pool_grant_cb)(struct pc_pool_waiter *w);

struct pc_pool_waiter {
  struct pc_queue node;               /* in the pool's FIFO while queued */
  struct pc_pool *pool;               /* borrowed; set while queued */
  pc_pool_grant_cb cb;
  void *data; /* the waiter's owner, for the callback */
  bool queued;
};

/* The most tokens a pool asks a source for at once. */
#define PC_POOL_BATCH 32
/* The most answers whose tokens a pool holds reserved at once. */
#define PC_POOL_SEGS 4

struct pc_pool;

/* A remote source of rate tokens. `request` asks for tokens and must
 * answer later, from a loop callback, with pc_pool_source_answer() (never
 * from inside request). How many: pc_pool_source_wanted(), read when the
 * source sends its call, not in request: a fan-out queues its waiters one
 * by one in the same loop turn, and the first asks. The owner of the
 * source stops it from answering before the pool closes. */
struct pc_pool_source {
  void (*request)(struct pc_pool_source *src);
  /* Optional: the pool was paused for `ms` from now; the source makes
   * the others that share it wait as long (never answers the pool). */
  void (*pause)(struct pc_pool_source *src, double ms);
  struct pc_pool *pool; /* set by pc_pool_set_source */
};

/* The longest pause a Retry-After can impose on a pool (10 minutes): a
 * longer one, or an HTTP-date far ahead, is cut to this. */
#define PC_POOL_PAUSE_MAX_MS (10.0 * 60 * 1000)

struct pc_pool {
  struct pc_pool_limits lim;
  uv_timer_t timer;              /* wakes the queue when the next token is due */
  int in_use;                    /* concurrency slots held */
  double tokens;                 /* rate tokens available (<= burst) */
  double refilled_at;            /* monotonic ms of the last refill */
  struct pc_queue waiters; /* of struct pc_pool_waiter, FIFO */
  unsigned long granted; /* permits granted so far (statistics, tests) */
  int max_in_use;        /* high-water mark of in_use (statistics, tests) */
  unsigned nwaiting;     /* waiters queued */
  /* The remote source, if any (borrowed), and its tokens reserved but not
   * yet due, one segment per answer, oldest first: `left` of them, the
   * next at `next_due` (monotonic ms), then one every `interval` ms. */
  struct pc_pool_source *src;
  bool src_failed;       /* the source failed: the pool's own bucket from now on */
  bool src_asked;        /* a request is waiting for its answer */
  double src_retry_at;   /* none granted: ask again from this moment */
  struct {
    unsigned left;
    double next_due;
  } seg[PC_POOL_SEGS];
  unsigned nseg;
  unsigned left; /* reserved in all segments */
  double interval;
  unsigned long src_tokens; /* tokens the source granted (statistics, tests) */
  double paused_until;      /* monotonic ms: no permit before this (a Retry-After) */
  unsigned long pauses;     /* pauses begun (statistics, tests) */
};

void pc_pool_init(uv_loop_t *loop, struct pc_pool *p, const struct pc_pool_limits *lim);
/* Shard k of n's share of a pool (docs/shards.md): the rate divided by n;
 * the concurrency and the burst split as k6 splits a count among execution
 * segments, floor(c*k/n) - floor(c*(k-1)/n), so that the shares add up to
 * the whole, but at least 1 each (a share of 0 would stop the shard; 0
 * concurrency stays unlimited). */
struct pc_pool_limits pc_pool_limits_share(const struct pc_pool_limits *d, int k, int n);
/* Returns true if the permit was granted at once (the callback is not
 * called). Otherwise the waiter is queued and `cb` runs, from a loop
 * callback or from pc_pool_release(), when the permit is granted. */
bool pc_pool_acquire(struct pc_pool *p, struct pc_pool_waiter *w, pc_pool_grant_cb cb);
/* Removes a queued waiter (no-op if not queued). */
void pc_pool_cancel(struct pc_pool_waiter *w);
/* Returns a concurrency slot and grants queued waiters that can now go. */
void pc_pool_release(struct pc_pool *p);
/* Makes `src` the pool's source of rate tokens (the pool must have a rate:
 * it is the fallback if the source fails). */
void pc_pool_set_source(struct pc_pool *p, struct pc_pool_source *src);
/* How many tokens the pool wants from its source now: those that wait and
 * are not reserved, at least 1, at most PC_POOL_BATCH. */
unsigned pc_pool_source_wanted(const struct pc_pool *p);
/* The source's answer to a request: `count` tokens, the first usable
 * `first_ms` from now (<= 0: at once), the next ones every `interval_ms`;
 * count 0: none for now, ask again after first_ms; count < 0: the source
 * failed, and the pool uses its own rate from now on. */
void pc_pool_source_answer(struct pc_pool *p, int count, double first_ms, double interval_ms);
/* A server asked the pool's requests to wait `ms` (Retry-After): no
 * permit is granted for that long (at most PC_POOL_PAUSE_MAX_MS), and the
 * source, if any, is told. A pause within the current one changes nothing.
 * Returns true if a new pause begins (the pool was not paused: the caller
 * logs it), false if it extends the current one or changes nothing. */
bool pc_pool_pause(struct pc_pool *p, double ms);
/* Whether the pool is paused now. */
bool pc_pool_paused(const struct pc_pool *p);
/* Closes the timer; the pool may be freed after `cb` (or after uv_run
 * returns, when cb is NULL). No waiter may be queued. */
void pc_pool_close(struct pc_pool *p, uv_close_cb cb);

#endif
