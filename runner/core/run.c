/* run.c: the run driver: runs a loaded workflow to completion on its own
 * loop: vars, signals, the workflow deadline, the watchdog, the two root
 * sequences (steps, then finally), reports, and the order of teardown. */
#include "core/task.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/log.h"
#include "base/util.h"

const char *pc_outcome_name(enum pc_outcome o)
{
  static const char *const names[] = {"ok", "failed", "error", "timeout", "cancelled",
                                      "skipped"};
  return names[o];
}

void pc_run_opts_init(struct pc_run_opts *o)
{
  memset(o, 0, sizeof *o);
  o->timeout_ms = -1;
  o->finally_grace_ms = 30000;
}

uv_loop_t *pc_run_loop(struct pc_run *run) { return &run->loop; }
struct pc_lua *pc_run_lua(struct pc_run *run) { return run->lua; }
const struct pc_workflow *pc_run_workflow_def(struct pc_run *run) { return run->wf; }
void **pc_run_action_slot(struct pc_run *run, enum pc_action a) { return &run->action_slots[a]; }

double pc_run_deadline_ms(struct pc_run *run)
{
  return run->timeout_ms >= 0 ? run->started_mono + run->timeout_ms : INFINITY;
}

double pc_run_started_ms(struct pc_run *run) { return run->started_mono; }

struct pc_pool *pc_run_pool(struct pc_run *run, const char *name)
{
  for (size_t i = 0; i < run->npools; i++)
    if (strcmp(run->wf->pools[i].name, name) == 0)
      return &run->pools[i];
  return NULL;
}

const struct pc_run_report *pc_run_records(struct pc_run *run)
{
  return run->recording ? &run->rep : NULL;
}

char *pc_step_label(const struct pc_step *s)
{
  const char *base = strrchr(s->file, '/');
  base = base ? base + 1 : s->file;
  if (s->id)
    return pc_asprintf("%s (%s:%d)", s->id, base, s->line);
  if (s->name)
    return pc_asprintf("%s (%s:%d)", s->name, base, s->line);
  return pc_asprintf("%s (%s:%d)", pc_action_name(s->action), base, s->line);
}

/* ================================================================== run */

static void close_run_handles(struct pc_run *run)
{
  pc_watchdog_stop(run->watchdog);
  run->watchdog = NULL;
  /* The signal handlers stay until the reports are written (a signal
   * while programs are being stopped must not kill pacer with the default
   * action), but no longer keep the loop alive. */
  uv_unref((uv_handle_t *)&run->sigint);
  uv_unref((uv_handle_t *)&run->sigterm);
  uv_unref((uv_handle_t *)&run->sighup);
  uv_close((uv_handle_t *)&run->deadline, NULL);
  uv_close((uv_handle_t *)&run->drain, NULL);
  pc_progress_stop(run->progress);
  run->progress = NULL;
  for (size_t i = 0; i < run->npools; i++)
    pc_pool_close(&run->pools[i], NULL);
}

static void start_finally(struct pc_run *run)
{
  run->fin_ran = true;
  run->fin = pc__task_new(run, NULL, NULL, run->root_scope, false, false);
  run->fin->kids = run->wf->finally;
  run->fin->nkids = run->wf->nfinally;
  /* After a deadline or a signal, `finally` still runs but is bounded. */
  if (run->signal || run->deadline_hit)
    run->fin->group_timeout_ms = run->opts->finally_grace_ms;
  pc__task_start(run->fin);
}

void pc__on_root_done(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  if (t == run->main) {
    run->main_outcome = t->outcome;
    const char *wo = run->signal         ? "cancelled"
                     : run->deadline_hit ? "timeout"
                                         : pc_outcome_name(t->outcome);
    lua_pushstring(L, wo);
    pc_lua_set_workflow_field(run->lua, run->root_scope, "outcome");
    pc__task_release(t);
    run->main = NULL;
    if (run->wf->nfinally) {
      start_finally(run);
      return;
    }
  } else {
    run->fin_outcome = t->outcome;
    pc__task_release(t);
    run->fin = NULL;
  }
  run->finished = true;
  close_run_handles(run);
}

static void cancel_everything(struct pc_run *run, enum pc_outcome as, const char *msg)
{
  if (run->main) {
    pc__task_cancel(run->main, as, msg);
  } else if (run->fin && run->fin->group_timeout_ms < 0 && !run->fin->cancelled) {
    /* Already in `finally`: let it finish, within the grace period. */
    run->fin->group_timeout_ms = run->opts->finally_grace_ms;
    uv_update_time(&run->loop);
    uv_timer_start(pc__task_timer(run->fin), pc__on_group_timeout,
                   (uint64_t)ceil(run->fin->group_timeout_ms), 0);
  }
}

static void on_deadline(uv_timer_t *timer)
{
  struct pc_run *run = PC_CONTAINER_OF(timer, struct pc_run, deadline);
  char dur[32];
  pc_format_duration(run->timeout_ms, dur, sizeof dur);
  pc_log(PC_LOG_ERROR, NULL, "workflow deadline of %s exceeded; cancelling", dur);
  run->deadline_hit = true;
  char *msg = pc_asprintf("cancelled: the workflow deadline (%s) was exceeded", dur);
  cancel_everything(run, PC_CANCELLED, msg);
  free(msg);
}

/* What would outlive an immediate exit (child process groups) is stopped;
 * used by a second signal and by the watchdog thread. */
static void kill_children_now(void *data)
{
  struct pc_run *run = data;
  for (int a = 0; a <= PC_ACT_SHELL; a++) {
    const struct pc_action_ops *ops = pc_action_ops((enum pc_action)a);
    if (ops && ops->kill_now)
      ops->kill_now(run);
  }
}

static const char *signal_name(int signum)
{
  return signum == SIGINT ? "SIGINT" : signum == SIGHUP ? "SIGHUP" : "SIGTERM";
}

static int signal_exit(int signum)
{
  return signum == SIGINT ? PC_EXIT_SIGINT : signum == SIGHUP ? PC_EXIT_SIGHUP : PC_EXIT_SIGTERM;
}

/* SIGINT, SIGTERM and SIGHUP (a closed terminal, a restarted supervisor)
 * all mean "stop": cancel, run `finally`, write the reports. A second one
 * means "now". */
static void on_signal(uv_signal_t *h, int signum)
{
  struct pc_run *run = h->data;
  const char *name = signal_name(signum);
  if (run->signal) {
    pc_log(PC_LOG_ERROR, NULL, "second %s: exiting at once", name);
    kill_children_now(run);
    fflush(NULL);
    _exit(signal_exit(signum));
  }
  run->signal = signum;
  if (run->finished) {
    /* Steps and `finally` are over; programs that outlived their steps are
     * being stopped (SIGTERM, a grace period, SIGKILL) before the reports
     * are written. Do not wait for the grace period. */
    pc_log(PC_LOG_WARN, NULL, "%s received while stopping programs: killing them now", name);
    kill_children_now(run);
    return;
  }
  pc_log(PC_LOG_WARN, NULL, "%s received: cancelling, then running finally", name);
  uv_timer_stop(&run->deadline);
  char *msg = pc_asprintf("cancelled: interrupted by %s", name);
  cancel_everything(run, PC_CANCELLED, msg);
  free(msg);
}

/* Evaluates `vars`, then merges --vars-file and --var over it. Leaves the
 * vars table on the stack. Returns 0 or -1 (message printed). */
static int build_vars(struct pc_run *run)
{
  struct pc_lua *h = run->lua;
  lua_State *L = run->L;
  const struct pc_run_opts *o = run->opts;

  /* `vars` may use env/secrets, so evaluate it in a scope with empty vars. */
  lua_newtable(L);
  int boot = pc_lua_root_scope(h, run->wf->name, run->run_id);
  if (run->wf->vars) {
    char *err = NULL;
    if (pc_lua_eval_tmpl(h, run->wf->vars, boot, &err) != 0) {
      pc_log(PC_LOG_ERROR, NULL, "vars: %s", err);
      free(err);
      pc_lua_unref(h, boot);
      return -1;
    }
  } else {
    lua_newtable(L);
  }
  pc_lua_unref(h, boot);
  int vars = lua_gettop(L);

  if (o->vars_file) {
    struct pc_diag d;
    pc_diag_init(&d);
    struct pc_node *n = NULL;
    if (pc_yaml_load_file(o->vars_file, &pc_yaml_default_limits, &n, &d) != 0) {
      pc_diag_print(&d, stderr);
      pc_diag_free(&d);
      lua_pop(L, 1);
      return -1;
    }
    pc_diag_free(&d);
    if (n->kind != PC_NODE_MAP) {
      fprintf(stderr, "%s:%d:%d: error: --vars-file must hold a map of names to values\n",
              o->vars_file, n->line, n->col);
      pc_node_free(n);
      lua_pop(L, 1);
      return -1;
    }
    for (size_t i = 0; i < n->n; i++) {
      pc_lua_push_node(h, n->items[i]);
      lua_setfield(L, vars, n->keys[i]->str);
    }
    pc_node_free(n);
  }
  for (size_t i = 0; i < o->nvars; i++) {
    const char *eq = strchr(o->vars[i], '=');
    if (!eq || eq == o->vars[i]) {
      fprintf(stderr, "error: --var expects NAME=VALUE, got \"%s\"\n", o->vars[i]);
      lua_pop(L, 1);
      return -1;
    }
    char *name = pc_xstrndup(o->vars[i], (size_t)(eq - o->vars[i]));
    const char *value = eq + 1;
    if (!*value) {
      lua_pushliteral(L, "");
    } else {
      struct pc_diag d;
      pc_diag_init(&d);
      struct pc_node *n = NULL;
      char *src = pc_asprintf("--var %s", name);
      if (pc_yaml_load_string(src, value, strlen(value), &pc_yaml_default_limits, &n, &d) != 0) {
        pc_diag_print(&d, stderr);
        pc_diag_free(&d);
        free(src);
        free(name);
        lua_pop(L, 1);
        return -1;
      }
      free(src);
      pc_diag_free(&d);
      pc_lua_push_node(h, n);
      pc_node_free(n);
    }
    lua_setfield(L, vars, name);
    free(name);
  }
  return 0;
}

static int exit_code(const struct pc_run *run)
{
  if (run->signal)
    return signal_exit(run->signal);
  if (run->deadline_hit)
    return PC_EXIT_DEADLINE;
  enum pc_outcome outs[2] = {run->main_outcome, run->fin_ran ? run->fin_outcome : PC_OK};
  int code = PC_EXIT_OK;
  for (int i = 0; i < 2; i++) {
    if (outs[i] == PC_ERROR || outs[i] == PC_TIMEOUT || outs[i] == PC_CANCELLED)
      code = PC_EXIT_ERROR;
    else if (outs[i] == PC_FAILED && code == PC_EXIT_OK)
      code = PC_EXIT_FAILED;
  }
  return code;
}

int pc_run_workflow(struct pc_workflow *wf, struct pc_lua *h, const struct pc_run_opts *o)
{
  struct pc_run *run = pc_xcalloc(1, sizeof *run);
  run->lua = h;
  run->L = pc_lua_state(h);
  run->wf = wf;
  run->opts = o;
  run->timeout_ms = o->timeout_ms >= 0 ? o->timeout_ms : wf->timeout_ms;
  run->started_mono = pc_mono_ms();
  run->started_wall = pc_wall_ms();
  {
    char ts[40];
    pc_format_iso8601(run->started_wall, ts, sizeof ts);
    snprintf(run->run_id, sizeof run->run_id, "%.4s%.2s%.2sT%.2s%.2s%.2s-%04x", ts, ts + 5,
             ts + 8, ts + 11, ts + 14, ts + 17, (unsigned)(getpid() & 0xffff));
  }
  srand((unsigned)(uv_hrtime() ^ (uint64_t)getpid()));
  run->recording = o->record || o->nreports > 0 || o->progress;
  run->rep.wf = wf;
  run->rep.run_id = run->run_id;
  run->rep.start_ms = run->started_wall;
  run->rep.start_mono = run->started_mono;

  if (build_vars(run) != 0) {
    free(run);
    return PC_EXIT_USAGE;
  }
  /* Every report must be writable before anything runs: a run that has
   * done its work and then cannot leave its report turns green into red
   * with nothing to look at. */
  struct pc_outfile *outs = pc_xcalloc(o->nreports ? o->nreports : 1, sizeof *outs);
  for (size_t i = 0; i < o->nreports; i++) {
    pc_outfile_init(&outs[i]);
    const char *path = strchr(o->reports[i], ':') + 1;
    char *oerr = NULL;
    if (pc_outfile_open(&outs[i], path, PC_OUTFILE_MKDIRS | PC_OUTFILE_SYNC | PC_OUTFILE_LATER,
                        &oerr) != 0) {
      fprintf(stderr, "pacer run: --report %s: %s; nothing was run\n", o->reports[i], oerr);
      free(oerr);
      for (size_t k = 0; k <= i; k++)
        pc_outfile_discard(&outs[k]);
      free(outs);
      lua_pop(run->L, 1); /* the vars table */
      free(run);
      return PC_EXIT_USAGE;
    }
  }
  pc__scan_results_readers(run);
  run->root_scope = pc_lua_root_scope(h, wf->name, run->run_id);

  int err = uv_loop_init(&run->loop);
  if (err) {
    fprintf(stderr, "error: cannot start the event loop: %s\n", uv_strerror(err));
    for (size_t i = 0; i < o->nreports; i++)
      pc_outfile_discard(&outs[i]);
    free(outs);
    pc_lua_unref(h, run->root_scope);
    free(run);
    return PC_EXIT_ERROR;
  }
  uv_idle_init(&run->loop, &run->drain);
  uv_timer_init(&run->loop, &run->deadline);
  uv_signal_init(&run->loop, &run->sigint);
  uv_signal_init(&run->loop, &run->sigterm);
  uv_signal_init(&run->loop, &run->sighup);
  run->sigint.data = run->sigterm.data = run->sighup.data = run;
  uv_signal_start(&run->sigint, on_signal, SIGINT);
  uv_signal_start(&run->sigterm, on_signal, SIGTERM);
  /* Under nohup SIGHUP is ignored, and must stay so: watching it would
   * turn the hangup nohup protects against into a cancellation. */
  struct sigaction hup;
  if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
    uv_signal_start(&run->sighup, on_signal, SIGHUP);
  run->npools = wf->npools;
  run->pools = pc_xcalloc(wf->npools ? wf->npools : 1, sizeof *run->pools);
  for (size_t i = 0; i < wf->npools; i++)
    pc_pool_init(&run->loop, &run->pools[i], &wf->pools[i]);
  if (run->timeout_ms >= 0) {
    /* Counted from the run's start, as pc_run_deadline_ms() is. */
    uv_update_time(&run->loop);
    double left = run->started_mono + run->timeout_ms - pc_mono_ms();
    uv_timer_start(&run->deadline, on_deadline, (uint64_t)ceil(left > 0 ? left : 0), 0);
  }
  run->watchdog = pc_watchdog_start(
      &run->loop, run->timeout_ms >= 0 ? run->started_mono + run->timeout_ms : -1,
      kill_children_now, run);
  if (o->progress)
    run->progress = pc_progress_start(&run->loop, &run->rep);

  pc_log(PC_LOG_DEBUG, NULL, "run %s of %s (%s)", run->run_id, wf->name, wf->file);
  run->main = pc__task_new(run, NULL, NULL, run->root_scope, false, false);
  run->main->kids = wf->steps;
  run->main->nkids = wf->nsteps;
  pc__task_start(run->main);
  uv_run(&run->loop, UV_RUN_DEFAULT);
  assert(run->finished);

  /* The HTTP session goes with run_cleanup: keep its statistics first. */
  if (run->recording)
    pc_http_stats_get(run, &run->rep.http);
  for (int a = 0; a <= PC_ACT_SHELL; a++) {
    const struct pc_action_ops *ops = pc_action_ops((enum pc_action)a);
    if (ops && ops->run_cleanup)
      ops->run_cleanup(run);
  }
  uv_run(&run->loop, UV_RUN_DEFAULT);

  /* A loop blocked past the deadline (CPU-bound Lua stopped by its guard)
   * can end the run before the deadline timer had a chance to fire: the
   * deadline was exceeded all the same. */
  if (!run->deadline_hit && run->timeout_ms >= 0 &&
      pc_mono_ms() - run->started_mono >= run->timeout_ms)
    run->deadline_hit = true;
  int code = exit_code(run);
  char dur[32];
  pc_format_duration(pc_mono_ms() - run->started_mono, dur, sizeof dur);
  const char *what = run->signal ? "interrupted" : run->deadline_hit ? "deadline exceeded"
                     : code == 0 ? "ok" : code == PC_EXIT_FAILED ? "failed" : "error";
  pc_log(code == 0 ? PC_LOG_INFO : PC_LOG_ERROR, NULL, "workflow %s: %s in %s (exit %d)",
         wf->name, what, dur, code);

  /* Reports are written whatever happened: failure, deadline or signal. */
  run->rep.duration_ms = pc_mono_ms() - run->started_mono;
  run->rep.outcome = run->signal         ? "cancelled"
                     : run->deadline_hit ? "timeout"
                                         : pc_outcome_name(run->main_outcome);
  run->rep.exit_code = code;
  run->rep.finished = true;
  for (size_t i = 0; i < o->nreports; i++) {
    const char *colon = strchr(o->reports[i], ':');
    char *format = pc_xstrndup(o->reports[i], (size_t)(colon - o->reports[i]));
    if (pc_report_write(format, &outs[i], &run->rep) != 0 && code == PC_EXIT_OK)
      code = PC_EXIT_ERROR;
    free(format);
  }
  free(outs);
  /* Only now may a signal end pacer with its default action. */
  uv_close((uv_handle_t *)&run->sigint, NULL);
  uv_close((uv_handle_t *)&run->sigterm, NULL);
  uv_close((uv_handle_t *)&run->sighup, NULL);
  uv_run(&run->loop, UV_RUN_DEFAULT);
  err = uv_loop_close(&run->loop);
  assert(err == 0);
  (void)err;
  pc__records_free(&run->rep);
  pc_http_stats_free(&run->rep.http);
  free(run->free_lanes);
  for (size_t i = 0; i < run->nsteps_read; i++)
    free(run->steps_read[i]);
  free(run->steps_read);
  pc_lua_unref(h, run->root_scope);
  free(run->pools);
  free(run);
  return code;
}
