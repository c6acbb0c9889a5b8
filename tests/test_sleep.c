/* test_sleep.c: the shared sleep timers (base/sleep.h) on a fresh loop per
 * test: sleeps due in the same millisecond share a bucket and fire in the
 * order they started; stopping works before, after and from inside a
 * callback; an emptied bucket closes; uv_loop_close() == 0 at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "base/sleep.h"
#include "base/util.h"

struct sleeper {
  struct pc_sleep s;
  char name;
  struct sleeper *stop_other; /* stopped by this one's callback */
};

static char fired[64];
static size_t nfired;

static void on_over(struct pc_sleep *s)
{
  struct sleeper *z = PC_CONTAINER_OF(s, struct sleeper, s);
  assert_false(pc_sleep_waiting(s));
  fired[nfired++] = z->name;
  fired[nfired] = '\0';
  if (z->stop_other)
    pc_sleep_stop(&z->stop_other->s);
}

struct fixture {
  uv_loop_t loop;
  struct pc_sleeps ss;
};

static int setup(void **state)
{
  static struct fixture f;
  memset(&f, 0, sizeof f);
  assert_int_equal(uv_loop_init(&f.loop), 0);
  pc_sleeps_init(&f.ss, on_over);
  nfired = 0;
  fired[0] = '\0';
  *state = &f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;
  assert_true(pc_sleeps_idle(&f->ss));
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  return 0;
}

static unsigned handles(uv_loop_t *loop)
{
  return loop->active_handles;
}

/* Same due time: one timer, start order. */
static void test_shared_bucket(void **state)
{
  struct fixture *f = *state;
  struct sleeper z[3] = {{.name = 'a'}, {.name = 'b'}, {.name = 'c'}};
  for (int i = 0; i < 3; i++)
    pc_sleep_start(&f->ss, &f->loop, &z[i].s, 20);
  assert_true(handles(&f->loop) <= 2); /* a clock tick may split them, never more */
  assert_false(pc_sleeps_idle(&f->ss));
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_string_equal(fired, "abc");
  assert_true(pc_sleeps_idle(&f->ss));
}

/* Stopping: before it fires (the rest still fire), a sleep that never
 * started, one already over (harmless), and the last of a bucket (its
 * timer closes, nothing fires). */
static void test_stop(void **state)
{
  struct fixture *f = *state;
  struct sleeper z[3] = {{.name = 'a'}, {.name = 'b'}, {.name = 'c'}};
  struct sleeper never = {.name = 'n'};
  pc_sleep_stop(&never.s);
  for (int i = 0; i < 3; i++)
    pc_sleep_start(&f->ss, &f->loop, &z[i].s, 10);
  pc_sleep_stop(&z[1].s);
  assert_false(pc_sleep_waiting(&z[1].s));
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_string_equal(fired, "ac");
  pc_sleep_stop(&z[0].s);

  struct sleeper alone = {.name = 'x'};
  pc_sleep_start(&f->ss, &f->loop, &alone.s, 5000);
  assert_false(pc_sleeps_idle(&f->ss));
  pc_sleep_stop(&alone.s);
  assert_true(pc_sleeps_idle(&f->ss));
  double t0 = pc_mono_ms();
  uv_run(&f->loop, UV_RUN_DEFAULT); /* only the close: returns at once */
  assert_true(pc_mono_ms() - t0 < 1000);
  assert_string_equal(fired, "ac");
}

/* A callback stops a later sleep of its own bucket, and starts a new one
 * (which goes to a new bucket and fires later). */
static void test_stop_from_callback(void **state)
{
  struct fixture *f = *state;
  struct sleeper z[3] = {{.name = 'a'}, {.name = 'b'}, {.name = 'c'}};
  z[0].stop_other = &z[1];
  /* The three must share a bucket: started within one millisecond of the
   * loop's clock (which each start refreshes). On a slow or loaded
   * machine the clock may tick between two starts: then start again. */
  for (int tries = 0;; tries++) {
    for (int i = 0; i < 3; i++)
      pc_sleep_start(&f->ss, &f->loop, &z[i].s, 10);
    if (f->ss.open == 1)
      break;
    for (int i = 0; i < 3; i++)
      pc_sleep_stop(&z[i].s);
    assert_true(tries < 1000);
  }
  uv_run(&f->loop, UV_RUN_ONCE);
  while (nfired == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_string_equal(fired, "ac");
  pc_sleep_start(&f->ss, &f->loop, &z[1].s, 1);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_string_equal(fired, "acb");
}

/* Different due times: each its own bucket, in time order. */
static void test_order(void **state)
{
  struct fixture *f = *state;
  struct sleeper z[3] = {{.name = 'a'}, {.name = 'b'}, {.name = 'c'}};
  pc_sleep_start(&f->ss, &f->loop, &z[0].s, 60);
  pc_sleep_start(&f->ss, &f->loop, &z[1].s, 0);
  pc_sleep_start(&f->ss, &f->loop, &z[2].s, 30);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_string_equal(fired, "bca");
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_shared_bucket, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stop_from_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_order, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
