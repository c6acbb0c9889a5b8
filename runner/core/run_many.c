/* run_many.c: several workflow files on one loop (pc_run_many, `pacer run
 * --jobs N`). Each file is a run of its own with its driver (run.c:
 * vars, deadline, `finally`, pools, closing line), but the group holds
 * what there is one of per process (the signal watchers, the watchdog,
 * the reports) and the table of run-wide state the runs share (the HTTP
 * session); it hears of each run's end, finishes that run (its state,
 * closing line) and starts the next file. */
#include "core/run.h"
#include "core/run_int.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/log.h"
#include "base/outfile.h"
#include "base/util.h"
#include "core/engine.h"
#include "core/watchdog.h"
#include "export/export.h"
#include "journal/journal.h"
#include "report/progress.h"
#include "report/report.h"
#include "script/luahost.h"

/* ======================================================= several files */

/* Several workflow files on one loop (pc_run_many): up to `jobs` run at
 * once, each a run of its own (vars, deadline, `finally`, pools, closing
 * line) but with one table of shared run-wide state (the HTTP session),
 * one set of signal watchers and one watchdog for all, and one set of
 * reports written when the last is over. */
struct group {
  uv_loop_t loop;
  struct pc_run_file *files; /* borrowed */
  size_t nfiles;
  const struct pc_run_many_opts *mo; /* borrowed */
  /* per file; NULL: not started, or it did not get to run. Atomic: the
   * watchdog's thread walks them (group_kill_now) while the loop's thread
   * starts runs; a driver is published complete, and freed only after the
   * watchdog has stopped. */
  _Atomic(struct driver *) *d;
  size_t next;       /* the next file to start */
  size_t running;
  struct pc_run_states shared;
  uv_signal_t sigint, sigterm, sighup;
  struct pc_watchdog *watchdog;
  int signal; /* first signal received, 0 if none */
  bool over;  /* every started run is over and no more will start */
  bool exporting;
};

int pc_exit_rank(int code)
{
  switch (code) {
  case PC_EXIT_SIGHUP:
  case PC_EXIT_SIGINT:
  case PC_EXIT_SIGTERM:
    return 7;
  case PC_EXIT_DEADLINE:
    return 6;
  case PC_EXIT_ERROR:
    return 5;
  case PC_EXIT_FAILED:
    return 4;
  case PC_EXIT_USAGE:
    return 3;
  case PC_EXIT_LOCKED:
    return 2;
  case PC_EXIT_OK:
    return 0;
  }
  return 5;
}

static void group_kill_now(void *data)
{
  struct group *g = data;
  for (size_t i = 0; i < g->nfiles; i++)
    if (g->d[i])
      pc__run_hooks_kill_now(&g->d[i]->run);
  pc__run_states_kill_now(&g->shared);
}

/* The group's watchdog enforces the earliest deadline among the runs
 * not over (started, `steps` and `finally` not done), as a run alone's
 * enforces its own: a loop blocked past it (and the grace) ends the
 * process with exit 4, whichever file blocks it. Called as runs start
 * and finish. */
void pc__group_watch_deadline(struct group *g)
{
  double earliest = -1;
  for (size_t i = 0; i < g->nfiles; i++) {
    struct driver *d = g->d[i];
    if (!d || d->finished || d->run.timeout_ms < 0)
      continue;
    double at = d->run.started_mono + d->run.timeout_ms;
    if (earliest < 0 || at < earliest)
      earliest = at;
  }
  pc_watchdog_set_deadline(g->watchdog, earliest);
}

/* Every run over and none to start: the group's handles no longer keep
 * the loop alive (the signal watchers stay until the reports are
 * written, as a run alone's do). */
static void group_close(struct group *g)
{
  g->over = true;
  pc_watchdog_stop(g->watchdog);
  g->watchdog = NULL;
  uv_unref((uv_handle_t *)&g->sigint);
  uv_unref((uv_handle_t *)&g->sigterm);
  uv_unref((uv_handle_t *)&g->sighup);
}

/* Starts files while fewer than `jobs` run, none has been interrupted
 * and some are left. A file whose vars or reports cannot be made does not
 * run (exit 2), and the next one starts. */
static void group_fill(struct group *g)
{
  while (!g->signal && g->running < (size_t)g->mo->jobs && g->next < g->nfiles) {
    size_t i = g->next++;
    struct pc_run_file *f = &g->files[i];
    f->ran = true;
    struct driver *d = pc__driver_new(f->wf, f->h, &f->opts, g, i + 1, &f->code);
    if (!d)
      continue;
    d->index = i;
    pc_log_add_run(f->wf->file, d->run_id);
    g->d[i] = d;
    g->running++;
    pc__driver_start(d, &g->loop, &g->shared);
  }
  pc__group_watch_deadline(g);
  if (g->running == 0 && !g->over)
    group_close(g);
}

/* A run of the group is over (from its `over` timer): its own state goes,
 * its closing line is printed, and the next file starts. */
void pc__group_run_over(struct driver *d)
{
  struct group *g = d->group;
  uv_close((uv_handle_t *)&d->over, NULL);
  const char *prev_id = pc_log_push_run_id(d->run_id);
  pc__driver_steps_over(d);
  d->code = pc__driver_conclude(d);
  g->files[d->index].code = d->code;
  pc__driver_closing(d, d->code);
  pc_log_pop_run_id(prev_id);
  g->running--;
  group_fill(g);
}

static void group_on_signal(uv_signal_t *h, int signum)
{
  struct group *g = h->data;
  const char *name = pc__run_signal_name(signum);
  if (g->signal) {
    pc_log(PC_LOG_ERROR, NULL, "second %s: exiting at once", name);
    group_kill_now(g);
    fflush(NULL);
    _exit(pc__run_signal_exit(signum));
  }
  g->signal = signum;
  if (g->exporting) { /* the reports are written; the exit code stands */
    pc_log(PC_LOG_WARN, NULL, "%s received: giving up the exports", name);
    for (size_t i = 0; i < g->nfiles; i++)
      if (g->d[i])
        pc_export_abort(g->d[i]->exp);
    return;
  }
  if (g->next < g->nfiles)
    pc_log(PC_LOG_WARN, NULL, "%s received: the %zu workflow file%s not started will not run",
           name, g->nfiles - g->next, g->nfiles - g->next == 1 ? "" : "s");
  /* Every run that is not over is stopped (each runs its `finally`); one
   * that is over but still stopping its programs kills them now. */
  for (size_t i = 0; i < g->nfiles; i++) {
    struct driver *d = g->d[i];
    if (!d)
      continue;
    const char *prev_id = pc_log_push_run_id(d->run_id); /* what it says is its own */
    if (!d->finished)
      pc__driver_signal(d, signum);
    else
      pc__run_kill_children_now(d);
    pc_log_pop_run_id(prev_id);
  }
}

int pc_run_many(struct pc_run_file *files, size_t n, struct pc_run_many_opts *mo)
{
  assert(mo->jobs >= 1);
  struct group *g = pc_xcalloc(1, sizeof *g);
  g->files = files;
  g->nfiles = n;
  g->mo = mo;
  g->d = pc_xcalloc(n ? n : 1, sizeof *g->d);
  for (size_t i = 0; i < n; i++)
    files[i].ran = false, files[i].code = PC_EXIT_OK;
  struct pc_outfile *outs = pc__run_open_reports(mo->reports, mo->nreports);
  if (!outs) {
    free(g->d);
    free(g);
    return PC_EXIT_USAGE;
  }
  int err = uv_loop_init(&g->loop);
  if (err) {
    fprintf(stderr, "error: cannot start the event loop: %s\n", uv_strerror(err));
    for (size_t i = 0; i < mo->nreports; i++)
      pc_outfile_discard(&outs[i]);
    free(outs);
    free(g->d);
    free(g);
    return PC_EXIT_ERROR;
  }
  double started_wall = pc_wall_ms(), started_mono = pc_mono_ms();
  uv_signal_init(&g->loop, &g->sigint);
  uv_signal_init(&g->loop, &g->sigterm);
  uv_signal_init(&g->loop, &g->sighup);
  g->sigint.data = g->sigterm.data = g->sighup.data = g;
  uv_signal_start(&g->sigint, group_on_signal, SIGINT);
  uv_signal_start(&g->sigterm, group_on_signal, SIGTERM);
  struct sigaction hup; /* as a run alone: not under nohup */
  if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
    uv_signal_start(&g->sighup, group_on_signal, SIGHUP);
  /* One watchdog for the process (it counts signals process-wide); the
   * runs' deadlines differ, so it enforces the earliest of the runs not
   * over, moved as they start and finish (pc__group_watch_deadline). */
  g->watchdog = pc_watchdog_start(&g->loop, -1, group_kill_now, g);

  group_fill(g);
  uv_run(&g->loop, UV_RUN_DEFAULT);
  assert(g->over);

  /* The shared state's statistics cover every file; then it goes. */
  struct pc_run_report shared_stats;
  memset(&shared_stats, 0, sizeof shared_stats);
  struct pc_run *any = NULL;
  for (size_t i = 0; i < n && !any; i++)
    if (g->d[i])
      any = &g->d[i]->run;
  if (any)
    pc__actions_stats(any, &shared_stats, PC_STATS_SHARED);
  pc__run_states_cleanup(&g->shared);
  uv_run(&g->loop, UV_RUN_DEFAULT);

  int code = PC_EXIT_OK;
  const struct pc_run_report **reps = pc_xcalloc(n ? n : 1, sizeof *reps);
  size_t nreps = 0;
  for (size_t i = 0; i < n; i++) {
    if (files[i].ran && pc_exit_rank(files[i].code) > pc_exit_rank(code))
      code = files[i].code;
    if (g->d[i])
      reps[nreps++] = &g->d[i]->rep;
  }
  struct pc_runs_info info = {
      .start_ms = started_wall,
      .duration_ms = pc_mono_ms() - started_mono,
      .exit_code = code,
      .nfiles = n,
      .stats = shared_stats.stats,
      .nstats = shared_stats.nstats,
  };
  code = pc__run_write_reports(mo->reports, mo->nreports, outs, reps, nreps, &info, code, &mo->written,
                       &mo->nwritten);
  free(reps);
  pc_records_free(&shared_stats);
  g->exporting = true;
  for (size_t i = 0; i < n; i++)
    if (g->d[i]) {
      const char *prev_id = pc_log_push_run_id(g->d[i]->run_id);
      pc_export_end(g->d[i]->exp, &g->d[i]->rep);
      pc_log_pop_run_id(prev_id);
    }
  uv_run(&g->loop, UV_RUN_DEFAULT);
  pc__run_close_signals(&g->sigint, &g->sigterm, &g->sighup);
  uv_run(&g->loop, UV_RUN_DEFAULT);
  err = uv_loop_close(&g->loop);
  assert(err == 0);
  (void)err;
  pc_log_clear_runs();
  for (size_t i = 0; i < n; i++)
    if (g->d[i])
      pc__driver_free(g->d[i]);
  free(g->d);
  free(g);
  return code;
}
