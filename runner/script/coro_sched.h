/* coro_sched.h: where the coroutine runtime (coro.h) resumes a job's
 * coroutines from, struct pc_coro_sched: a header of its own because the
 * runtime's private structures (script/internal.h) embed it, and that
 * header must not need coro.h, whose implementation includes it. */
#ifndef PACER_SCRIPT_CORO_SCHED_H
#define PACER_SCRIPT_CORO_SCHED_H

#include <uv.h>

struct pc_deferred; /* a node of the run's deferred queue (model/action.h) */

/* Where a job's coroutines are resumed from: the run's deferred queue (the
 * `lua` and `uses` actions adapt pc_run_defer), or a test's own; and the
 * loop their operations run on. The job keeps a copy; `ctx` must outlive
 * the job. */
struct pc_coro_sched {
  uv_loop_t *loop;
  void (*defer)(void *ctx, struct pc_deferred *d, void (*cb)(struct pc_deferred *d));
  void (*defer_cancel)(void *ctx, struct pc_deferred *d);
  void *ctx;
};

#endif
