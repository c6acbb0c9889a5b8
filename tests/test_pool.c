/* test_pool.c: pools on a real loop: concurrency permits, FIFO order, the
 * evenly spaced rate, bursts, and leaving the queue. Every test ends with
 * uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <uv.h>

#include "base/pool.h"
#include "base/util.h"

struct rec {
  struct pc_pool_waiter w;
  int id;
  double at_ms; /* when granted, relative to the start */
};

static int order[64];
static int norder;
static double t0;

static double now_ms(void)
{
  return (double)uv_hrtime() / 1e6;
}

/* When set, a grant gives its slot straight back (rate-only tests). */
static struct pc_pool *release_on_grant;

static void on_grant(struct pc_pool_waiter *w)
{
  struct rec *r = w->data;
  r->at_ms = now_ms() - t0;
  order[norder++] = r->id;
  if (release_on_grant)
    pc_pool_release(release_on_grant);
}

static void close_loop(uv_loop_t *loop, struct pc_pool *p)
{
  pc_pool_close(p, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void test_concurrency_fifo(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_pool_limits def = {.concurrency = 2, .burst = 1};
  struct pc_pool p;
  pc_pool_init(&loop, &p, &def);
  struct rec r[5] = {{.id = 0}};
  norder = 0;
  int immediate = 0;
  for (int i = 0; i < 5; i++) {
    r[i].id = i;
    r[i].w.data = &r[i];
    if (pc_pool_acquire(&p, &r[i].w, on_grant))
      immediate++;
  }
  assert_int_equal(immediate, 2);
  assert_int_equal(norder, 0);
  /* Each release lets exactly the head of the queue in, in arrival order. */
  pc_pool_release(&p);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 2);
  pc_pool_release(&p);
  pc_pool_release(&p);
  assert_int_equal(norder, 3);
  assert_int_equal(order[1], 3);
  assert_int_equal(order[2], 4);
  assert_int_equal(p.max_in_use, 2);
  pc_pool_release(&p);
  pc_pool_release(&p);
  assert_int_equal(p.in_use, 0);
  close_loop(&loop, &p);
}

static void test_cancel_leaves_queue(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_pool_limits def = {.concurrency = 1, .burst = 1};
  struct pc_pool p;
  pc_pool_init(&loop, &p, &def);
  struct rec r[3];
  norder = 0;
  for (int i = 0; i < 3; i++) {
    r[i].id = i;
    r[i].w.data = &r[i];
    r[i].w.queued = false;
  }
  assert_true(pc_pool_acquire(&p, &r[0].w, on_grant));
  assert_false(pc_pool_acquire(&p, &r[1].w, on_grant));
  assert_false(pc_pool_acquire(&p, &r[2].w, on_grant));
  pc_pool_cancel(&r[1].w);
  assert_false(r[1].w.queued);
  pc_pool_cancel(&r[1].w); /* idempotent */
  pc_pool_release(&p);
  assert_int_equal(norder, 1);
  assert_int_equal(order[0], 2);
  pc_pool_release(&p);
  close_loop(&loop, &p);
}

/* 10/s spaces permits 100 ms apart; the first goes at once. */
static void test_rate_even_spacing(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_pool_limits def = {.rate = 10, .burst = 1};
  struct pc_pool p;
  pc_pool_init(&loop, &p, &def);
  struct rec r[4];
  norder = 0;
  release_on_grant = &p;
  t0 = now_ms();
  for (int i = 0; i < 4; i++) {
    r[i].id = i;
    r[i].w.data = &r[i];
    r[i].w.queued = false;
    r[i].at_ms = -1;
    if (pc_pool_acquire(&p, &r[i].w, on_grant)) {
      r[i].at_ms = 0;
      order[norder++] = i;
      pc_pool_release(&p);
    }
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  release_on_grant = NULL;
  assert_int_equal(norder, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal(order[i], i);
  assert_true(r[0].at_ms < 20);
  for (int i = 1; i < 4; i++) {
    double gap = r[i].at_ms - r[i - 1].at_ms;
    /* Generous upper bound for a loaded machine; the lower bound is exact. */
    assert_true(gap >= 95);
    assert_true(gap < 400);
  }
  assert_int_equal(p.in_use, 0);
  close_loop(&loop, &p);
}

/* burst: 3 lets three go at once, then the rate applies. */
static void test_rate_burst(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_pool_limits def = {.rate = 5, .burst = 3};
  struct pc_pool p;
  pc_pool_init(&loop, &p, &def);
  struct rec r[4];
  int immediate = 0;
  norder = 0;
  t0 = now_ms();
  for (int i = 0; i < 4; i++) {
    r[i].id = i;
    r[i].w.data = &r[i];
    r[i].w.queued = false;
    if (pc_pool_acquire(&p, &r[i].w, on_grant))
      immediate++;
  }
  assert_int_equal(immediate, 3);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(norder, 1);
  assert_true(r[3].at_ms >= 195);
  for (int i = 0; i < 4; i++)
    pc_pool_release(&p);
  close_loop(&loop, &p);
}

/* ------------------------------------------------ a remote token source */

/* A fake source: answers each request on the next loop turn (pool.h: never
 * from inside request) with `grant` tokens (or the request's count when
 * grant is 0), the first `first` ms on, then one every `interval` ms; or
 * with a failure when `fail` is set. */
struct fake_source {
  struct pc_pool_source src;
  uv_timer_t timer;
  unsigned asked[16];
  int nasked;
  int grant;
  double first, interval;
  bool fail;
};

static void fake_answer(uv_timer_t *t)
{
  struct fake_source *f = t->data;
  assert_true(f->nasked < 16);
  unsigned n = pc_pool_source_wanted(f->src.pool); /* read when sending, as the bucket does */
  f->asked[f->nasked++] = n;
  if (f->fail)
    pc_pool_source_answer(f->src.pool, -1, 0, 0);
  else
    pc_pool_source_answer(f->src.pool, f->grant ? f->grant : (int)n, f->first, f->interval);
}

static void fake_request(struct pc_pool_source *src)
{
  struct fake_source *f = PC_CONTAINER_OF(src, struct fake_source, src);
  uv_timer_start(&f->timer, fake_answer, 0, 0);
}

/* Five waiters on a source pool: asked for five, granted at the times the
 * source said (50 ms on, then every 20 ms), not by the pool's own rate
 * (1/s, which would take four seconds). */
static void run_source(struct fake_source *f, struct rec *r, int n, double rate)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_pool_limits def = {.rate = rate, .burst = 1};
  struct pc_pool p;
  pc_pool_init(&loop, &p, &def);
  uv_timer_init(&loop, &f->timer);
  f->timer.data = f;
  f->src.request = fake_request;
  pc_pool_set_source(&p, &f->src);
  norder = 0;
  release_on_grant = &p;
  t0 = now_ms();
  for (int i = 0; i < n; i++) {
    r[i].id = i;
    r[i].w.data = &r[i];
    r[i].w.queued = false;
    r[i].at_ms = -1;
    assert_false(pc_pool_acquire(&p, &r[i].w, on_grant)); /* no token before the source says */
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  release_on_grant = NULL;
  assert_int_equal(norder, n);
  for (int i = 0; i < n; i++)
    assert_int_equal(order[i], i);
  uv_close((uv_handle_t *)&f->timer, NULL);
  close_loop(&loop, &p);
}

static void test_source_due_times(void **state)
{
  (void)state;
  struct fake_source f = {.first = 50, .interval = 20};
  struct rec r[5];
  run_source(&f, r, 5, 1);
  assert_int_equal(f.nasked, 1);
  assert_int_equal(f.asked[0], 5);
  for (int i = 0; i < 5; i++) {
    assert_true(r[i].at_ms >= 50 + 20 * i - 1);
    assert_true(r[i].at_ms < 50 + 20 * i + 300);
  }
}

/* A source that grants two at a time: the pool asks again for what waits
 * beyond its reservation (5, then 3, then 1) without waiting for the
 * reserved ones to be spent, and spends every token once. */
static void test_source_asks_for_shortfall(void **state)
{
  (void)state;
  struct fake_source f = {.grant = 2, .first = 30, .interval = 10};
  struct rec r[5];
  run_source(&f, r, 5, 1);
  assert_int_equal(f.nasked, 3);
  assert_int_equal(f.asked[0], 5);
  assert_int_equal(f.asked[1], 3);
  assert_int_equal(f.asked[2], 1);
  assert_true(r[0].at_ms >= 29);
}

/* A failed source: the pool keeps to its own rate (20/s: 50 ms apart). */
static void test_source_failure_falls_back(void **state)
{
  (void)state;
  struct fake_source f = {.fail = true};
  struct rec r[4];
  run_source(&f, r, 4, 20);
  assert_int_equal(f.nasked, 1);
  for (int i = 1; i < 4; i++)
    assert_true(r[i].at_ms - r[i - 1].at_ms >= 45);
}

/* ---------------------------------------------------------- pauses */

/* A pause (a server's Retry-After) holds every waiter, even with free
 * slots and tokens; a shorter pause within it changes nothing; the
 * longest is capped. */
static void test_pause_holds_queue(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_pool_limits def = {.concurrency = 4, .rate = 100, .burst = 4};
  struct pc_pool p;
  pc_pool_init(&loop, &p, &def);
  struct rec r[3];
  norder = 0;
  release_on_grant = &p;
  t0 = now_ms();
  assert_true(pc_pool_pause(&p, 150));
  assert_false(pc_pool_pause(&p, 50)); /* within the current pause */
  assert_true(pc_pool_paused(&p));
  for (int i = 0; i < 3; i++) {
    r[i].id = i;
    r[i].w.data = &r[i];
    r[i].w.queued = false;
    assert_false(pc_pool_acquire(&p, &r[i].w, on_grant));
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  release_on_grant = NULL;
  assert_int_equal(norder, 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(order[i], i);
    assert_true(r[i].at_ms >= 149);
    assert_true(r[i].at_ms < 600);
  }
  assert_false(pc_pool_paused(&p));
  assert_int_equal(p.pauses, 1);
  /* A Retry-After of a day pauses for PC_POOL_PAUSE_MAX_MS at most. */
  assert_true(pc_pool_pause(&p, 86400e3));
  assert_true(p.paused_until - now_ms() <= PC_POOL_PAUSE_MAX_MS);
  assert_int_equal(p.pauses, 2);
  close_loop(&loop, &p);
}

static double paused_ms;
static int npaused;

static void fake_pause(struct pc_pool_source *src, double ms)
{
  (void)src;
  paused_ms = ms;
  npaused++;
}

static double pause_began;

static void pause_soon(uv_timer_t *t)
{
  pause_began = now_ms() - t0;
  pc_pool_pause(t->data, 120);
}

/* With a source: the source is told of the pause, and tokens it reserved
 * before the pause (due at once, 10 ms apart) are spent after it, still
 * 10 ms apart, not all at once when it ends. */
static void test_pause_source(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_pool_limits def = {.rate = 1, .burst = 1};
  struct pc_pool p;
  pc_pool_init(&loop, &p, &def);
  struct fake_source f = {.first = 0, .interval = 10};
  uv_timer_init(&loop, &f.timer);
  f.timer.data = &f;
  f.src.request = fake_request;
  f.src.pause = fake_pause;
  pc_pool_set_source(&p, &f.src);
  npaused = 0;
  uv_timer_t pt;
  uv_timer_init(&loop, &pt);
  pt.data = &p;
  struct rec r[4];
  norder = 0;
  release_on_grant = &p;
  t0 = now_ms();
  for (int i = 0; i < 4; i++) {
    r[i].id = i;
    r[i].w.data = &r[i];
    r[i].w.queued = false;
    assert_false(pc_pool_acquire(&p, &r[i].w, on_grant));
  }
  /* Pausing before the answer: its tokens fall due after the pause. */
  assert_true(pc_pool_pause(&p, 120));
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(npaused, 1);
  assert_true(paused_ms == 120);
  assert_int_equal(norder, 4);
  /* Each at its due time pushed past the pause, or later (a late timer
   * grants the overdue ones together), never sooner. */
  for (int i = 0; i < 4; i++)
    assert_true(r[i].at_ms >= 119 + 10 * i);
  /* Pausing with tokens reserved and not yet due (first 100 ms on). */
  f.first = 100;
  norder = 0;
  t0 = now_ms();
  for (int i = 0; i < 4; i++) {
    r[i].w.queued = false;
    assert_false(pc_pool_acquire(&p, &r[i].w, on_grant));
  }
  uv_timer_start(&pt, pause_soon, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  release_on_grant = NULL;
  assert_int_equal(npaused, 2);
  assert_int_equal(norder, 4);
  /* The pause began 10 ms on (or later, on a loaded machine, but before
   * the first token fell due): the tokens moved past it, keeping their
   * spacing. */
  assert_true(pause_began < 100);
  for (int i = 0; i < 4; i++)
    assert_true(r[i].at_ms >= pause_began + 119 + 10 * i);
  uv_close((uv_handle_t *)&pt, NULL);
  uv_close((uv_handle_t *)&f.timer, NULL);
  close_loop(&loop, &p);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_concurrency_fifo),
      cmocka_unit_test(test_cancel_leaves_queue),
      cmocka_unit_test(test_rate_even_spacing),
      cmocka_unit_test(test_rate_burst),
      cmocka_unit_test(test_source_due_times),
      cmocka_unit_test(test_source_asks_for_shortfall),
      cmocka_unit_test(test_source_failure_falls_back),
      cmocka_unit_test(test_pause_holds_queue),
      cmocka_unit_test(test_pause_source),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
