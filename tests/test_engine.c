/* test_engine.c: the scheduler end to end, in process: workflows given as
 * strings are loaded, compiled and run by pc_run_workflow, and the tests
 * check exit codes, timing and the records the engine keeps. The engine
 * itself asserts uv_loop_close() == 0 at the end of every run, so each test
 * also proves that no handle was left open. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "base/diag.h"
#include "cli/builtins.h"
#include "core/run.h"
#include "base/log.h"
#include "script/luahost.h"
#include "report/report.h"
#include "model/workflow.h"

struct outcome {
  int code;
  double ms;
};

static struct outcome run_text(const char *text)
{
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf = NULL;
  struct pc_lua *h = pc_lua_new();
  assert_non_null(h);
  int rc = pc_workflow_load_string("test.yml", text, strlen(text), pc_builtin_actions, &wf, &d);
  if (rc == 0)
    rc = pc_lua_compile_workflow(h, wf, &d);
  if (rc != 0)
    pc_diag_print(&d, stderr);
  assert_int_equal(rc, 0);
  pc_diag_free(&d);
  struct pc_run_opts o;
  pc_run_opts_init(&o);
  double t0 = (double)uv_hrtime() / 1e6;
  struct outcome out;
  out.code = pc_run_workflow(wf, h, &o);
  out.ms = (double)uv_hrtime() / 1e6 - t0;
  pc_workflow_free(wf);
  pc_lua_free(h);
  return out;
}

static void test_sequence_and_gather(void **state)
{
  (void)state;
  struct outcome seq = run_text("steps:\n"
                                "  - sleep: 100ms\n"
                                "  - sleep: 100ms\n"
                                "  - sleep: 100ms\n");
  assert_int_equal(seq.code, 0);
  assert_true(seq.ms >= 290);
  struct outcome par = run_text("steps:\n"
                                "  - gather:\n"
                                "      - sleep: 100ms\n"
                                "      - sleep: 100ms\n"
                                "      - sleep: 100ms\n");
  assert_int_equal(par.code, 0);
  assert_true(par.ms >= 95);
  assert_true(par.ms < 280);
}

static void test_exit_codes(void **state)
{
  (void)state;
  assert_int_equal(run_text("steps:\n  - assert: ['1 == 2']\n").code, PC_EXIT_FAILED);
  assert_int_equal(run_text("steps:\n  - log: x ${{ vars.nope }}\n").code, PC_EXIT_ERROR);
  assert_int_equal(run_text("steps:\n  - sleep: 5s\n    timeout: 50ms\n").code, PC_EXIT_ERROR);
  assert_int_equal(run_text("timeout: 50ms\nsteps:\n  - sleep: 5s\n").code, PC_EXIT_DEADLINE);
  /* An error outranks an expectation failure when both happen. */
  assert_int_equal(run_text("steps:\n"
                            "  - gather:\n"
                            "      - assert: ['false']\n"
                            "      - log: x ${{ vars.nope }}\n"
                            "    fail_fast: false\n")
                       .code,
                   PC_EXIT_ERROR);
  /* A failing `finally` fails the run. */
  assert_int_equal(run_text("steps:\n  - sleep: 0\nfinally:\n  - assert: ['false']\n").code,
                   PC_EXIT_FAILED);
  assert_int_equal(run_text("steps:\n  - assert: ['false']\n    continue_on_error: true\n").code,
                   PC_EXIT_OK);
}

/* fail_fast cancels a 5 s sibling at once: the run takes far less. */
static void test_fail_fast_cancels(void **state)
{
  (void)state;
  struct outcome o = run_text("steps:\n"
                              "  - gather:\n"
                              "      - sleep: 5s\n"
                              "      - for_each: [1, 2, 3]\n"
                              "        sleep: 5s\n"
                              "      - steps:\n"
                              "          - sleep: 50ms\n"
                              "          - assert: ['false']\n");
  assert_int_equal(o.code, PC_EXIT_FAILED);
  assert_true(o.ms < 2000);
}

static void test_retry_backoff(void **state)
{
  (void)state;
  /* 3 attempts, waits of 100 and 200 ms without jitter. */
  struct outcome o = run_text("steps:\n"
                              "  - assert: ['false']\n"
                              "    retry: {attempts: 3, backoff: 100ms, jitter: false, "
                              "on: [expect]}\n");
  assert_int_equal(o.code, PC_EXIT_FAILED);
  assert_true(o.ms >= 295);
  assert_true(o.ms < 2000);
  /* max_backoff caps the waits: 3 waits of at most 50 ms. */
  o = run_text("steps:\n"
               "  - assert: ['false']\n"
               "    retry: {attempts: 4, backoff: 1s, max_backoff: 50ms, jitter: false, "
               "on: [expect]}\n");
  assert_int_equal(o.code, PC_EXIT_FAILED);
  assert_true(o.ms >= 145);
  assert_true(o.ms < 900);
}

/* Lazy fan-out: a large fan-out at bounded concurrency finishes. */
static void test_large_fanout(void **state)
{
  (void)state;
  struct outcome o = run_text("steps:\n"
                              "  - id: many\n"
                              "    for_each: ${{ range(1, 20000) }}\n"
                              "    concurrency: 50\n"
                              "    sleep: 0\n"
                              "  - assert: ['len(steps.many.items) == 20000']\n");
  assert_int_equal(o.code, PC_EXIT_OK);
}

/* Once the run is over and its reports are written, a signal must not kill
 * pacer by its default action in the moments before it exits (closing the
 * run's watchers gives SIGINT/SIGTERM/SIGHUP back their default action):
 * the run leaves them ignored, and the exit code stands. The torture test
 * found the window ("killed by SIGTERM" after a complete run). */
static void test_signals_after_the_run(void **state)
{
  (void)state;
  struct outcome o = run_text("steps:\n  - sleep: 0\n");
  assert_int_equal(o.code, PC_EXIT_OK);
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    assert_int_equal(sigaction(sigs[i], NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    assert_int_equal(raise(sigs[i]), 0); /* and this process goes on */
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
    sigaction(sigs[i], &dfl, NULL);
}

/* Several files on one loop (pc_run_many): each ends with its own exit
 * code, the whole with the most severe (an error over a failure), every
 * file ran, and, as after one run, the signals are left ignored. */
static void test_run_many(void **state)
{
  (void)state;
  static const char *const texts[] = {
      "steps:\n  - sleep: 20ms\n  - assert: ['1 == 2']\n",
      "steps:\n  - lua: error('boom')\n",
      "steps:\n  - sleep: 10ms\n",
  };
  enum { N = 3 };
  struct pc_lua *hosts[N];
  struct pc_workflow *wfs[N];
  struct pc_run_file files[N];
  memset(files, 0, sizeof files);
  for (size_t i = 0; i < N; i++) {
    struct pc_diag d;
    pc_diag_init(&d);
    hosts[i] = pc_lua_new();
    assert_non_null(hosts[i]);
    int rc = pc_workflow_load_string("test.yml", texts[i], strlen(texts[i]), pc_builtin_actions,
                                     &wfs[i], &d);
    if (rc == 0)
      rc = pc_lua_compile_workflow(hosts[i], wfs[i], &d);
    if (rc != 0)
      pc_diag_print(&d, stderr);
    assert_int_equal(rc, 0);
    pc_diag_free(&d);
    files[i].wf = wfs[i];
    files[i].h = hosts[i];
    pc_run_opts_init(&files[i].opts);
  }
  struct pc_run_many_opts mo = {.jobs = 2};
  int code = pc_run_many(files, N, &mo);
  assert_int_equal(code, PC_EXIT_ERROR);
  assert_int_equal(files[0].code, PC_EXIT_FAILED);
  assert_int_equal(files[1].code, PC_EXIT_ERROR);
  assert_int_equal(files[2].code, PC_EXIT_OK);
  for (size_t i = 0; i < N; i++) {
    assert_true(files[i].ran);
    pc_workflow_free(wfs[i]);
    pc_lua_free(hosts[i]);
  }
  assert_int_equal(mo.nwritten, 0);
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction dfl;
  memset(&dfl, 0, sizeof dfl);
  dfl.sa_handler = SIG_DFL;
  for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
    struct sigaction sa;
    assert_int_equal(sigaction(sigs[i], NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_IGN);
    sigaction(sigs[i], &dfl, NULL);
  }
  assert_int_equal(pc_exit_rank(PC_EXIT_SIGTERM) > pc_exit_rank(PC_EXIT_DEADLINE), 1);
  assert_int_equal(pc_exit_rank(PC_EXIT_ERROR) > pc_exit_rank(PC_EXIT_FAILED), 1);
}

int main(void)
{
  struct pc_log_opts lo = {-1, false, false};
  pc_log_init(&lo);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sequence_and_gather),
      cmocka_unit_test(test_exit_codes),
      cmocka_unit_test(test_fail_fast_cancels),
      cmocka_unit_test(test_retry_backoff),
      cmocka_unit_test(test_large_fanout),
      cmocka_unit_test(test_signals_after_the_run),
      cmocka_unit_test(test_run_many),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
