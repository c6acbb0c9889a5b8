/* pool.h: named limits shared by every step that names them. A pool hands
 * out permits, first come first served: a permit needs a free concurrency
 * slot (if the pool has `concurrency`) and a token from the rate limiter (if
 * it has `rate`). The rate limiter is a token bucket of capacity `burst`
 * (default 1, which spaces permits evenly: 10/s gives one every 100 ms).
 * Rate tokens are spent when a permit is granted; concurrency slots are held
 * until pc_pool_release(). */
#ifndef PACER_POOL_H
#define PACER_POOL_H

#include <stdbool.h>

#include <uv.h>

/* A pool's limits (the workflow's pool definition gives them). */
struct pc_pool_limits {
  int concurrency; /* 0: unlimited */
  double rate;     /* permits per second; 0: unlimited */
  int burst;       /* the bucket's capacity; <= 0 counts as 1 */
};

struct pc_pool_waiter;
typedef void (*pc_pool_grant_cb)(struct pc_pool_waiter *w);

struct pc_pool_waiter {
  struct pc_pool_waiter *next, *prev; /* FIFO links while queued */
  struct pc_pool *pool;               /* borrowed; set while queued */
  pc_pool_grant_cb cb;
  void *data; /* the waiter's owner, for the callback */
  bool queued;
};

struct pc_pool {
  struct pc_pool_limits lim;
  uv_timer_t timer;              /* wakes the queue when the next token is due */
  int in_use;                    /* concurrency slots held */
  double tokens;                 /* rate tokens available (<= burst) */
  double refilled_at;            /* monotonic ms of the last refill */
  struct pc_pool_waiter *head, *tail;
  unsigned long granted; /* permits granted so far (statistics, tests) */
  int max_in_use;        /* high-water mark of in_use (statistics, tests) */
};

void pc_pool_init(uv_loop_t *loop, struct pc_pool *p, const struct pc_pool_limits *lim);
/* Returns true if the permit was granted at once (the callback is not
 * called). Otherwise the waiter is queued and `cb` runs, from a loop
 * callback or from pc_pool_release(), when the permit is granted. */
bool pc_pool_acquire(struct pc_pool *p, struct pc_pool_waiter *w, pc_pool_grant_cb cb);
/* Removes a queued waiter (no-op if not queued). */
void pc_pool_cancel(struct pc_pool_waiter *w);
/* Returns a concurrency slot and grants queued waiters that can now go. */
void pc_pool_release(struct pc_pool *p);
/* Closes the timer; the pool may be freed after `cb` (or after uv_run
 * returns, when cb is NULL). No waiter may be queued. */
void pc_pool_close(struct pc_pool *p, uv_close_cb cb);

#endif
