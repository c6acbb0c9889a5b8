/* test_exec.c: the child-process runner (struct pc_proc) on a real loop:
 * exit codes and signals, capture and its cap, env/cwd/stdin, programs that
 * cannot start, cancel with and without a SIGTERM-ignoring program, and
 * background processes stopped when the set closes. Every test closes its
 * set and ends with uv_loop_close() == 0, and checks that no process of the
 * group it started is left. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "proc/proc.h"
#include "base/util.h"

struct done {
  int calls;
  int exit_code;
  int sig;
  char *out, *err;
  size_t out_len, err_len;
  bool out_truncated;
};

static void on_done(void *data, const struct pc_proc_result *r)
{
  struct done *d = data;
  d->calls++;
  d->exit_code = r->exit_code;
  d->sig = r->signal;
  free(d->out);
  free(d->err);
  d->out = pc_xstrndup(r->out, r->out_len);
  d->err = pc_xstrndup(r->err, r->err_len);
  d->out_len = r->out_len;
  d->err_len = r->err_len;
  d->out_truncated = r->out_truncated;
}

static void done_free(struct done *d)
{
  free(d->out);
  free(d->err);
}

/* Live (non-zombie) members of a process group, from /proc. */
static int group_members(int pgid)
{
  DIR *dir = opendir("/proc");
  if (!dir)
    return kill(-pgid, 0) == 0 ? 1 : 0;
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    char path[sizeof e->d_name + 16], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[len] = '\0';
    const char *rp = strrchr(buf, ')');
    char st;
    int ppid, pgrp;
    if (rp && sscanf(rp + 1, " %c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid && st != 'Z')
      n++;
  }
  closedir(dir);
  return n;
}

/* SIGKILL is delivered at once, but a process dies only when it is next
 * scheduled: on a loaded machine give the group a moment (at most 1 s)
 * before counting what is left. */
static int group_members_after_kill(int pgid)
{
  for (int i = 0; i < 100 && group_members(pgid) > 0; i++)
    usleep(10000);
  return group_members(pgid);
}

static void finish(uv_loop_t *loop, struct pc_proc_set *set)
{
  uv_run(loop, UV_RUN_DEFAULT);
  pc_proc_set_close(set);
  uv_run(loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(loop), 0);
}

static void on_timer(uv_timer_t *t)
{
  uv_timer_stop(t);
}

/* Runs the loop for about `ms` milliseconds. */
static void run_for(uv_loop_t *loop, uint64_t ms)
{
  uv_timer_t t;
  uv_timer_init(loop, &t);
  uv_timer_start(&t, on_timer, ms, 0);
  while (uv_is_active((uv_handle_t *)&t))
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

static void test_exit_code_and_output(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"sh", "-c", "echo out; echo err >&2; printf tail; exit 3", NULL};
  struct pc_proc_opts o = {.argv = argv, .label = "t"};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  finish(&loop, set);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.exit_code, 3);
  assert_int_equal(d.sig, 0);
  assert_string_equal(d.out, "out\ntail");
  assert_string_equal(d.err, "err\n");
  done_free(&d);
}

static void test_no_shell(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"printf", "%s|%s|%s", "a b", "$HOME", "*", NULL};
  struct pc_proc_opts o = {.argv = argv};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  finish(&loop, set);
  assert_int_equal(d.calls, 1);
  assert_string_equal(d.out, "a b|$HOME|*");
  done_free(&d);
}

static void test_cannot_start(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"pacer-test-no-such-program", NULL};
  struct pc_proc_opts o = {.argv = argv, .stdin_data = "x", .stdin_len = 1};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), UV_ENOENT);
  const char *argv2[] = {"/etc/passwd", NULL};
  o.argv = argv2;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), UV_EACCES);
  finish(&loop, set);
  assert_int_equal(d.calls, 0);
}

static void test_env_cwd_stdin(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  setenv("PACER_TEST_KEEP", "kept", 1);
  setenv("PACER_TEST_OVER", "old", 1);
  const char *argv[] = {"sh", "-c",
                        "printf '%s|%s|%s|' \"$PACER_TEST_KEEP\" \"$PACER_TEST_OVER\" \"$(pwd)\"; cat",
                        NULL};
  const char *env[] = {"PACER_TEST_OVER=new value", NULL};
  struct pc_proc_opts o = {.argv = argv, .env = env, .cwd = "/", .stdin_data = "in\nput",
                           .stdin_len = 6};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  finish(&loop, set);
  assert_int_equal(d.calls, 1);
  assert_string_equal(d.out, "kept|new value|/|in\nput");
  assert_int_equal(d.exit_code, 0);
  done_free(&d);
}

/* Large input to a program that reads none of it: EPIPE is not an error. */
static void test_stdin_unread(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  size_t n = 4u << 20;
  char *big = pc_xmalloc(n);
  memset(big, 'x', n);
  const char *argv[] = {"true", NULL};
  struct pc_proc_opts o = {.argv = argv, .stdin_data = big, .stdin_len = n};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  free(big);
  finish(&loop, set);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.exit_code, 0);
  done_free(&d);
}

static void test_output_cap(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"sh", "-c", "head -c 300000 /dev/zero; echo done >&2", NULL};
  struct pc_proc_opts o = {.argv = argv, .max_output = 1000};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  finish(&loop, set);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.out_len, 1000);
  assert_true(d.out_truncated);
  assert_string_equal(d.err, "done\n");
  assert_int_equal(d.exit_code, 0);
  done_free(&d);
}

static void test_killed_by_signal(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"sh", "-c", "kill -KILL $$", NULL};
  struct pc_proc_opts o = {.argv = argv};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  finish(&loop, set);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.exit_code, -1);
  assert_int_equal(d.sig, SIGKILL);
  assert_string_equal(pc_signal_name(SIGKILL), "SIGKILL");
  done_free(&d);
}

static void cancel_case(const char *script, double min_ms, double max_ms)
{
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"sh", "-c", script, NULL};
  struct pc_proc_opts o = {.argv = argv, .label = "cancel"};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  int pgid = pc_proc_pid(p);
  run_for(&loop, 200);
  assert_int_equal(group_members(pgid), 3); /* sh and two sleeps */
  double t0 = pc_mono_ms();
  pc_proc_cancel(p);
  finish(&loop, set);
  double took = pc_mono_ms() - t0;
  assert_int_equal(d.calls, 0);
  assert_int_equal(group_members_after_kill(pgid), 0);
  assert_true(took >= min_ms);
  assert_true(took < max_ms);
}

static void test_cancel_kills_group(void **state)
{
  (void)state;
  cancel_case("sleep 30 & sleep 30 & wait", 0, 1000);
}

static void test_cancel_escalates_to_sigkill(void **state)
{
  (void)state;
  cancel_case("trap '' TERM; sleep 30 & sleep 30; wait", PC_PROC_KILL_GRACE_MS - 50,
              PC_PROC_KILL_GRACE_MS + 1000);
}

/* A step's leftover background process runs until the set closes. */
static void test_background_stopped_on_close(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"sh", "-c", "sleep 30 & echo started", NULL};
  struct pc_proc_opts o = {.argv = argv};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  int pgid = pc_proc_pid(p);
  double t0 = pc_mono_ms();
  uv_run(&loop, UV_RUN_DEFAULT);
  /* Completed after the drain although the sleep holds stdout. */
  assert_int_equal(d.calls, 1);
  assert_string_equal(d.out, "started\n");
  assert_true(pc_mono_ms() - t0 < 1000);
  assert_int_equal(group_members(pgid), 1);
  pc_proc_set_close(set);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_int_equal(group_members_after_kill(pgid), 0);
  done_free(&d);
}

/* Closing the set with a process still running kills it at once. */
static void test_close_kills_running(void **state)
{
  (void)state;
  uv_loop_t loop;
  uv_loop_init(&loop);
  struct pc_proc_set *set = pc_proc_set_new(&loop);
  const char *argv[] = {"sh", "-c", "trap '' TERM; sleep 30", NULL};
  struct pc_proc_opts o = {.argv = argv};
  struct done d = {0};
  struct pc_proc *p;
  assert_int_equal(pc_proc_spawn(set, &o, on_done, &d, &p), 0);
  int pgid = pc_proc_pid(p);
  run_for(&loop, 100);
  double t0 = pc_mono_ms();
  pc_proc_set_close(set);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  assert_true(pc_mono_ms() - t0 < 1000);
  assert_int_equal(d.calls, 0);
  assert_int_equal(group_members_after_kill(pgid), 0);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exit_code_and_output),
      cmocka_unit_test(test_no_shell),
      cmocka_unit_test(test_cannot_start),
      cmocka_unit_test(test_env_cwd_stdin),
      cmocka_unit_test(test_stdin_unread),
      cmocka_unit_test(test_output_cap),
      cmocka_unit_test(test_killed_by_signal),
      cmocka_unit_test(test_cancel_kills_group),
      cmocka_unit_test(test_cancel_escalates_to_sigkill),
      cmocka_unit_test(test_background_stopped_on_close),
      cmocka_unit_test(test_close_kills_running),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
