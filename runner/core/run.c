/* run.c: the run driver: runs a loaded workflow to completion on its own
 * loop. It evaluates vars, opens the reports, watches SIGINT/SIGTERM/SIGHUP
 * and the workflow deadline, starts the watchdog and the progress display,
 * runs the root sequence `steps` and then `finally` through the engine's
 * task tree (engine.h), and maps the outcome to an exit code. Then it tears
 * down in an order that matters (docs/engine.md, "Handles and teardown"):
 * its own handles and the tree's when `finally` is over, the actions'
 * run-wide state (statistics taken first), the reports, and last the
 * signal handlers, so that a signal while programs are being stopped never
 * kills pacer with the default action.
 *
 * Several files (pc_run_many, `pacer run --jobs N`) run on one loop, each
 * with its driver as above, under a group: run_many.c. */
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

static void run_finished(struct driver *d);

void pc_run_opts_init(struct pc_run_opts *o)
{
  memset(o, 0, sizeof *o);
  o->timeout_ms = -1;
  o->finally_grace_ms = 30000;
}

/* ============================================================ the roots */

/* Closes what keeps the loop alive once `steps` and `finally` are over. */
static void close_run_handles(struct driver *d)
{
  pc_watchdog_stop(d->watchdog);
  d->watchdog = NULL;
  /* The signal handlers stay until the reports are written (a signal
   * while programs are being stopped must not kill pacer with the default
   * action), but no longer keep the loop alive. (A run among several has
   * none: the group's serve them all.) */
  if (!d->group) {
    uv_unref((uv_handle_t *)&d->sigint);
    uv_unref((uv_handle_t *)&d->sigterm);
    uv_unref((uv_handle_t *)&d->sighup);
  }
  uv_close((uv_handle_t *)&d->deadline, NULL);
  pc_progress_stop(d->progress);
  d->progress = NULL;
  pc__engine_close(&d->run);
}

/* The first failing root names the run's root cause (`steps`, else
 * `finally`). */
static void keep_cause(struct driver *d, struct task *root)
{
  size_t rec;
  const char *cause = pc__root_cause(root, &rec);
  if (d->cause || !cause || !pc_outcome_is_failure(pc__root_outcome(root)))
    return;
  d->cause = pc_xstrdup(cause);
  d->rep.cause_rec = rec;
}

static void on_over(uv_timer_t *t)
{
  pc__group_run_over(PC_CONTAINER_OF(t, struct driver, over));
}

/* `steps` and `finally` are over (and any sub-group's `finally`). A run
 * alone goes on when its loop returns; one among several tells its group,
 * from a timer: this is the drain's stack. */
static void run_finished(struct driver *d)
{
  d->finished = true;
  close_run_handles(d);
  if (d->group) {
    pc__group_watch_deadline(d->group);
    uv_timer_start(&d->over, on_over, 0, 0);
  }
}

static void on_subs_over(struct pc_run *run)
{
  run_finished(PC_CONTAINER_OF(run, struct driver, run));
}

static void on_root_done(struct pc_run *run, struct task *t)
{
  struct driver *d = PC_CONTAINER_OF(run, struct driver, run);
  keep_cause(d, t);
  if (t == d->main) {
    d->main_outcome = pc__root_outcome(t);
    const char *wo = d->signal         ? "cancelled"
                     : d->deadline_hit ? "timeout"
                                       : pc_outcome_name(d->main_outcome);
    lua_pushstring(run->L, wo);
    pc_lua_set_workflow_field(run->lua, d->root_scope, "outcome");
    pc__root_free(t);
    d->main = NULL;
    if (run->wf->nfinally) {
      /* After a deadline or a signal, `finally` still runs but is bounded. */
      d->fin_ran = true;
      d->fin = pc__root_start(run, "finally", run->wf->finally, run->wf->nfinally,
                              d->root_scope,
                              d->signal || d->deadline_hit ? d->opts->finally_grace_ms : -1,
                              on_root_done);
      return;
    }
  } else {
    d->fin_outcome = pc__root_outcome(t);
    pc__root_free(t);
    d->fin = NULL;
  }
  if (run->nsubs) {
    /* A step that ran a sub-group was cancelled, and that group's own
     * `finally` is still running (bounded): wait for it. */
    run->subs_over = on_subs_over;
    return;
  }
  run_finished(d);
}

static void cancel_everything(struct driver *d, enum pc_outcome as, const char *msg)
{
  if (d->main)
    pc__root_cancel(d->main, as, msg);
  else if (d->fin) /* already in `finally`: let it finish, within the grace period */
    pc__root_bound(d->fin, d->opts->finally_grace_ms);
}

/* ================================================ deadline and signals */

static void on_deadline(uv_timer_t *timer)
{
  struct driver *d = PC_CONTAINER_OF(timer, struct driver, deadline);
  const char *prev_id = pc_log_push_run_id(d->run_id);
  char dur[32];
  pc_format_duration(d->run.timeout_ms, dur, sizeof dur);
  if (d->group)
    pc_log(PC_LOG_ERROR, NULL, "workflow %s: deadline of %s exceeded; cancelling",
           d->run.wf->name, dur);
  else
    pc_log(PC_LOG_ERROR, NULL, "workflow deadline of %s exceeded; cancelling", dur);
  d->deadline_hit = true;
  char *msg = pc_asprintf("cancelled: the workflow deadline (%s) was exceeded", dur);
  cancel_everything(d, PC_CANCELLED, msg);
  free(msg);
  pc_log_pop_run_id(prev_id);
}

/* What would outlive an immediate exit (child process groups) is stopped;
 * used by a second signal and by the watchdog thread. */
void pc__run_kill_children_now(void *data)
{
  struct driver *d = data;
  pc__run_hooks_kill_now(&d->run);
}

const char *pc__run_signal_name(int signum)
{
  return signum == SIGINT ? "SIGINT" : signum == SIGHUP ? "SIGHUP" : "SIGTERM";
}

int pc__run_signal_exit(int signum)
{
  return signum == SIGINT ? PC_EXIT_SIGINT : signum == SIGHUP ? PC_EXIT_SIGHUP : PC_EXIT_SIGTERM;
}

/* SIGINT, SIGTERM and SIGHUP (a closed terminal, a restarted supervisor)
 * all mean "stop": cancel, run `finally`, write the reports. A second one
 * means "now". */
void pc__driver_signal(struct driver *d, int signum)
{
  const char *name = pc__run_signal_name(signum);
  d->signal = signum;
  if (d->exporting) { /* the reports are written; the exit code stands */
    pc_log(PC_LOG_WARN, NULL, "%s received: giving up the exports", name);
    pc_export_abort(d->exp);
    return;
  }
  if (d->finished) {
    /* Steps and `finally` are over; programs that outlived their steps are
     * being stopped (SIGTERM, a grace period, SIGKILL) before the reports
     * are written. Do not wait for the grace period. */
    pc_log(PC_LOG_WARN, NULL, "%s received while stopping programs: killing them now", name);
    pc__run_kill_children_now(d);
    return;
  }
  if (d->group)
    pc_log(PC_LOG_WARN, NULL, "workflow %s: %s received: cancelling, then running finally",
           d->run.wf->name, name);
  else
    pc_log(PC_LOG_WARN, NULL, "%s received: cancelling, then running finally", name);
  uv_timer_stop(&d->deadline);
  char *msg = pc_asprintf("cancelled: interrupted by %s", name);
  cancel_everything(d, PC_CANCELLED, msg);
  free(msg);
}

static void on_signal(uv_signal_t *h, int signum)
{
  struct driver *d = h->data;
  if (d->signal) {
    pc_log(PC_LOG_ERROR, NULL, "second %s: exiting at once", pc__run_signal_name(signum));
    pc__run_kill_children_now(d);
    fflush(NULL);
    _exit(pc__run_signal_exit(signum));
  }
  pc__driver_signal(d, signum);
}

/* The run is over and its reports are written: from now until pacer exits,
 * SIGINT, SIGTERM and SIGHUP change nothing (the exit code stands). The
 * watchers must go (the loop is closed next), and as the last one of a
 * signal stops libuv gives the signal its default action back, which would
 * kill pacer in the moments before it exits. So they are ignored instead,
 * before and after libuv's reset, with this thread blocking them across it
 * (setting SIG_IGN discards one already pending). */
void pc__run_close_signals(uv_signal_t *sigint, uv_signal_t *sigterm, uv_signal_t *sighup)
{
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  sigset_t set, old;
  sigemptyset(&set);
  for (size_t i = 0; i < PC_ARRAY_SIZE(sigs); i++)
    sigaddset(&set, sigs[i]);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  struct sigaction ign;
  memset(&ign, 0, sizeof ign);
  ign.sa_handler = SIG_IGN;
  for (size_t i = 0; i < PC_ARRAY_SIZE(sigs); i++)
    sigaction(sigs[i], &ign, NULL);
  uv_close((uv_handle_t *)sigint, NULL);
  uv_close((uv_handle_t *)sigterm, NULL);
  uv_close((uv_handle_t *)sighup, NULL);
  for (size_t i = 0; i < PC_ARRAY_SIZE(sigs); i++)
    sigaction(sigs[i], &ign, NULL);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* ================================================================ vars */

/* Evaluates `vars`, then merges --vars-file and --var over it. Leaves the
 * vars table on the stack. Returns 0 or -1 (message printed). */
static int build_vars(struct driver *d)
{
  struct pc_run *run = &d->run;
  struct pc_lua *h = run->lua;
  lua_State *L = run->L;
  const struct pc_run_opts *o = d->opts;

  /* `vars` may use env/secrets, so evaluate it in a scope with empty vars. */
  lua_newtable(L);
  int boot = pc_lua_root_scope(h, run->wf->name, d->run_id);
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
    struct pc_diag dg;
    pc_diag_init(&dg);
    struct pc_node *n = NULL;
    if (pc_yaml_load_file(o->vars_file, &pc_yaml_default_limits, &n, &dg) != 0) {
      pc_diag_print(&dg, stderr);
      pc_diag_free(&dg);
      lua_pop(L, 1);
      return -1;
    }
    pc_diag_free(&dg);
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
      struct pc_diag dg;
      pc_diag_init(&dg);
      struct pc_node *n = NULL;
      char *src = pc_asprintf("--var %s", name);
      if (pc_yaml_load_string(src, value, strlen(value), &pc_yaml_default_limits, &n, &dg) != 0) {
        pc_diag_print(&dg, stderr);
        pc_diag_free(&dg);
        free(src);
        free(name);
        lua_pop(L, 1);
        return -1;
      }
      free(src);
      pc_diag_free(&dg);
      pc_lua_push_node(h, n);
      pc_node_free(n);
    }
    lua_setfield(L, vars, name);
    free(name);
  }
  return 0;
}

int pc__run_exit_code(const struct driver *d)
{
  if (d->signal)
    return pc__run_signal_exit(d->signal);
  if (d->deadline_hit)
    return PC_EXIT_DEADLINE;
  enum pc_outcome outs[2] = {d->main_outcome, d->fin_ran ? d->fin_outcome : PC_OK};
  int code = PC_EXIT_OK;
  for (int i = 0; i < 2; i++) {
    if (outs[i] == PC_ERROR || outs[i] == PC_TIMEOUT || outs[i] == PC_CANCELLED)
      code = PC_EXIT_ERROR;
    else if (outs[i] == PC_FAILED && code == PC_EXIT_OK)
      code = PC_EXIT_FAILED;
  }
  return code;
}

/* ================================================================ a run */

/* Every report must be writable before anything runs: a run that has done
 * its work and then cannot leave its report turns green into red with
 * nothing to look at. Returns the open files (one per report, malloc'd),
 * or NULL with the message printed and nothing left open. */
struct pc_outfile *pc__run_open_reports(const char *const *reports, size_t n)
{
  struct pc_outfile *outs = pc_xcalloc(n ? n : 1, sizeof *outs);
  for (size_t i = 0; i < n; i++) {
    pc_outfile_init(&outs[i]);
    const char *path = strchr(reports[i], ':') + 1;
    char *oerr = NULL;
    if (pc_outfile_open(&outs[i], path, PC_OUTFILE_MKDIRS | PC_OUTFILE_SYNC | PC_OUTFILE_LATER,
                        &oerr) != 0) {
      fprintf(stderr, "pacer run: --report %s: %s; nothing was run\n", reports[i], oerr);
      free(oerr);
      for (size_t k = 0; k <= i; k++)
        pc_outfile_discard(&outs[k]);
      free(outs);
      return NULL;
    }
  }
  return outs;
}

/* Writes every report, whatever happened (failure, deadline or signal):
 * of one run (`n` 1), or of several runs in one document each. A report
 * that cannot be written turns a success into an error. The reports
 * written are added to *written (malloc'd here; the strings borrowed from
 * `reports`). Frees `outs`. */
int pc__run_write_reports(const char *const *reports, size_t nreports, struct pc_outfile *outs,
                         const struct pc_run_report *const *reps, size_t n,
                         const struct pc_runs_info *info, int code, const char ***written,
                         size_t *nwritten)
{
  for (size_t i = 0; i < nreports; i++) {
    const char *colon = strchr(reports[i], ':');
    char *format = pc_xstrndup(reports[i], (size_t)(colon - reports[i]));
    char *err = NULL;
    int rc = info ? pc_report_write_runs(format, &outs[i], reps, n, info, &err)
                  : pc_report_write(format, &outs[i], reps[0], &err);
    if (rc != 0) {
      fprintf(stderr, "pacer: report %s: %s\n", format, err);
      free(err);
      if (code == PC_EXIT_OK)
        code = PC_EXIT_ERROR;
    } else {
      if (!*written)
        *written = pc_xcalloc(nreports, sizeof **written);
      (*written)[(*nwritten)++] = reports[i];
    }
    free(format);
  }
  free(outs);
  return code;
}

/* Starts the driver's handles on the loop: signals, the deadline, the
 * watchdog (after the signal watchers: it chains their handlers), the
 * progress display. A run among several has only its deadline (and the
 * timer that tells its group it is over): the group has the rest. */
static void start_handles(struct driver *d)
{
  struct pc_run *run = &d->run;
  uv_timer_init(run->loop, &d->deadline);
  if (d->group) {
    uv_timer_init(run->loop, &d->over);
  } else {
    uv_signal_init(run->loop, &d->sigint);
    uv_signal_init(run->loop, &d->sigterm);
    uv_signal_init(run->loop, &d->sighup);
    d->sigint.data = d->sigterm.data = d->sighup.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    /* Under nohup SIGHUP is ignored, and must stay so: watching it would
     * turn the hangup nohup protects against into a cancellation. */
    struct sigaction hup;
    if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
      uv_signal_start(&d->sighup, on_signal, SIGHUP);
  }
  if (run->timeout_ms >= 0) {
    /* Counted from the run's start, as pc_run_deadline_ms() is. */
    uv_update_time(run->loop);
    double left = run->started_mono + run->timeout_ms - pc_mono_ms();
    uv_timer_start(&d->deadline, on_deadline, (uint64_t)ceil(left > 0 ? left : 0), 0);
  }
  if (!d->group)
    d->watchdog = pc_watchdog_start(
        run->loop, run->timeout_ms >= 0 ? run->started_mono + run->timeout_ms : -1,
        pc__run_kill_children_now, d);
  if (d->opts->progress)
    d->progress = pc_progress_start(run->loop, &d->rep);
}

/* Makes a driver for `wf` (the pos'th file of group g, from 1; or alone)
 * and evaluates its vars and inputs: everything before the loop. Returns
 * the driver, or NULL with *code set (the problem printed) and nothing left. */
struct driver *pc__driver_new(struct pc_workflow *wf, struct pc_lua *h,
                                 const struct pc_run_opts *o, struct group *g, size_t pos,
                                 int *code)
{
  struct driver *d = pc_xcalloc(1, sizeof *d);
  struct pc_run *run = &d->run;
  d->opts = o;
  d->group = g;
  run->lua = h;
  run->L = pc_lua_state(h);
  run->wf = wf;
  run->timeout_ms = o->timeout_ms >= 0 ? o->timeout_ms : wf->timeout_ms;
  run->started_mono = pc_mono_ms();
  run->started_wall = pc_wall_ms();
  {
    char ts[40];
    pc_format_iso8601(run->started_wall, ts, sizeof ts);
    snprintf(d->run_id, sizeof d->run_id, "%.4s%.2s%.2sT%.2s%.2s%.2s-%04x", ts, ts + 5,
             ts + 8, ts + 11, ts + 14, ts + 17, (unsigned)(getpid() & 0xffff));
    /* The runs of one process (several files) start within the same second:
     * each gets its file's position too ("-2"), so that no two share one. */
    if (g) {
      size_t len = strlen(d->run_id);
      snprintf(d->run_id + len, sizeof d->run_id - len, "-%zu", pos);
    }
  }
  srand((unsigned)(uv_hrtime() ^ (uint64_t)getpid()));
  /* What is logged while the run is made (vars, TRACEPARENT) is its own:
   * given back before each return (and before d goes). */
  const char *prev_id = pc_log_push_run_id(d->run_id);
  const char *why = NULL;
  pc_trace_init(&d->trace, getenv("TRACEPARENT"), &why);
  if (why)
    pc_log(PC_LOG_WARN, NULL, "%s", why);
  run->trace = &d->trace;
  struct pc_export_opts eo = {o->push_url, o->ping_url};
  d->exp = pc_export_new(&eo, &d->trace);
  if (o->record || o->nreports > 0 || o->progress || pc_export_wants_records(d->exp))
    run->rep = &d->rep;
  d->rep.keep_attempts = pc_export_wants_attempts(d->exp);
  d->rep.wf = wf;
  d->rep.run_id = d->run_id;
  run->run_id = d->run_id;
  d->rep.start_ms = run->started_wall;
  d->rep.start_mono = run->started_mono;
  d->rep.shard = o->shard;
  if (o->shard && o->shard->count > 1) {
    run->shard_index = o->shard->index;
    run->shard_count = o->shard->count;
  }
  d->rep.cause_rec = PC_NO_RECORD;

  if (build_vars(d) != 0) {
    pc_log_pop_run_id(prev_id);
    pc_export_free(d->exp);
    free(d);
    *code = PC_EXIT_USAGE;
    return NULL;
  }
  if (!(d->outs = pc__run_open_reports(o->reports, o->nreports))) {
    pc_log_pop_run_id(prev_id);
    lua_pop(run->L, 1); /* the vars table */
    pc_export_free(d->exp);
    free(d);
    *code = PC_EXIT_USAGE;
    return NULL;
  }
  d->root_scope = pc_lua_root_scope(h, wf->name, d->run_id);
  if (wf->ninputs) {
    /* A file meant to be run as a step, run directly: its inputs hold
     * their defaults (constants: they cannot fail), the others are nil. */
    lua_createtable(run->L, 0, (int)wf->ninputs);
    for (size_t i = 0; i < wf->ninputs; i++) {
      char *ierr = NULL;
      if (wf->inputs[i].def && pc_lua_eval_tmpl(h, wf->inputs[i].def, LUA_NOREF, &ierr) == 0)
        lua_setfield(run->L, -2, wf->inputs[i].name);
      free(ierr);
    }
    pc_lua_scope_set(h, d->root_scope, "inputs");
  }
  pc_log_pop_run_id(prev_id);
  return d;
}

/* Starts the run on `loop`: the tree, the journal, the handles, the start
 * ping, the root `steps`. */
void pc__driver_start(struct driver *d, uv_loop_t *loop, struct pc_run_states *shared)
{
  struct pc_run *run = &d->run;
  run->loop = loop;
  run->shared = shared;
  pc__engine_init(run);
  if (d->opts->journal)
    pc_journal_attach(d->opts->journal, run);
  start_handles(d);
  if (!d->group)
    pc_log_set_run_id(d->run_id);
  const char *prev_id = pc_log_push_run_id(d->run_id);
  pc_export_start(d->exp, run->loop, d->run_id); /* the start ping, not waited for */
  pc_log(PC_LOG_DEBUG, NULL, "run %s of %s (%s)", d->run_id, run->wf->name, run->wf->file);
  d->main = pc__root_start(run, "steps", run->wf->steps, run->wf->nsteps, d->root_scope, -1,
                           on_root_done);
  pc_log_pop_run_id(prev_id);
}

/* `steps` and `finally` are over: the journal is told, the statistics are
 * taken and the run's own run-wide state goes (the HTTP session with it,
 * unless the runs on the loop share it); run the loop afterwards. */
void pc__driver_steps_over(struct driver *d)
{
  struct pc_run *run = &d->run;
  assert(d->finished);
  if (d->opts->journal) {
    pc_journal_detach(d->opts->journal);
    size_t n = pc_journal_restored(d->opts->journal);
    if (n)
      pc_log(PC_LOG_INFO, NULL, "%zu step%s finished ok in the journaled run: not run again", n,
             n == 1 ? "" : "s");
  }
  if (run->rep)
    pc__actions_stats(run, &d->rep, d->group ? PC_STATS_OWN : PC_STATS_ALL);
  pc__run_hooks_cleanup(run);
}

/* The run's exit code and the end of its record. */
int pc__driver_conclude(struct driver *d)
{
  struct pc_run *run = &d->run;
  /* A loop blocked past the deadline (CPU-bound Lua stopped by its guard)
   * can end the run before the deadline timer had a chance to fire: the
   * deadline was exceeded all the same. */
  if (!d->deadline_hit && run->timeout_ms >= 0 &&
      pc_mono_ms() - run->started_mono >= run->timeout_ms)
    d->deadline_hit = true;
  int code = pc__run_exit_code(d);
  d->rep.duration_ms = pc_mono_ms() - run->started_mono;
  d->rep.outcome = d->signal         ? "cancelled"
                   : d->deadline_hit ? "timeout"
                                     : pc_outcome_name(d->main_outcome);
  d->rep.exit_code = code;
  d->rep.finished = true;
  return code;
}

/* The run's history row, its summary and its closing line. */
void pc__driver_closing(struct driver *d, int code)
{
  struct pc_run *run = &d->run;
  const struct pc_run_opts *o = d->opts;
  if (o->history) {
    struct pc_history_run hr = {o->history_workflow ? o->history_workflow : run->wf->file,
                                o->shard ? o->shard->workflow_sha256 : "", d->rep.start_ms,
                                d->rep.duration_ms, d->rep.outcome, code, &run->summary};
    char *herr = NULL;
    if (pc_history_append(o->history, &hr, &herr) != 0)
      pc_log(PC_LOG_WARN, NULL, "run history: %s (--no-history skips it)", herr);
    free(herr);
  }
  /* The closing lines come after the reports, so they can name them: the
   * summary, then the run's outcome and exit code. */
  if (o->summary)
    pc__summary_merge(o->summary, &run->summary);
  else
    pc__summary_log(&run->summary, code == 0 ? PC_LOG_INFO : PC_LOG_ERROR, d->written,
                    d->nwritten);
  char dur[32];
  pc_format_duration(pc_mono_ms() - run->started_mono, dur, sizeof dur);
  const char *what = d->signal ? "interrupted" : d->deadline_hit ? "deadline exceeded"
                     : code == 0 ? "ok" : code == PC_EXIT_FAILED ? "failed" : "error";
  pc_log(code == 0 ? PC_LOG_INFO : PC_LOG_ERROR, NULL, "workflow %s: %s in %s (exit %d)",
         run->wf->name, what, dur, code);
}

/* Frees the driver once its loop has run its closes. */
void pc__driver_free(struct driver *d)
{
  free(d->outs); /* a run among several: its (empty) set; the group writes the reports */
  free(d->written);
  pc_export_free(d->exp);
  pc_records_free(&d->rep);
  pc__engine_free(&d->run);
  pc_lua_unref(d->run.lua, d->root_scope);
  free(d->cause);
  free(d);
}

int pc_run_workflow(struct pc_workflow *wf, struct pc_lua *h, const struct pc_run_opts *o)
{
  int code = PC_EXIT_OK;
  struct driver *d = pc__driver_new(wf, h, o, NULL, 0, &code);
  if (!d)
    return code;
  struct pc_run *run = &d->run;
  int err = uv_loop_init(&d->own_loop);
  if (err) {
    fprintf(stderr, "error: cannot start the event loop: %s\n", uv_strerror(err));
    for (size_t i = 0; i < o->nreports; i++)
      pc_outfile_discard(&d->outs[i]);
    free(d->outs);
    pc_lua_unref(h, d->root_scope);
    pc_export_free(d->exp);
    free(d);
    return PC_EXIT_ERROR;
  }
  pc__driver_start(d, &d->own_loop, NULL);
  uv_run(run->loop, UV_RUN_DEFAULT);
  pc__driver_steps_over(d);
  uv_run(run->loop, UV_RUN_DEFAULT);

  code = pc__driver_conclude(d);
  const struct pc_run_report *rep = &d->rep;
  code = pc__run_write_reports(o->reports, o->nreports, d->outs, &rep, 1, NULL, code, &d->written,
                       &d->nwritten);
  d->outs = NULL;
  /* Pings, push, trace: bounded (PC_EXPORT_BOUND_MS), never the exit code. */
  d->exporting = true;
  pc_export_end(d->exp, &d->rep);
  uv_run(run->loop, UV_RUN_DEFAULT);
  pc__driver_closing(d, code);
  pc_log_set_run_id(NULL);
  pc__run_close_signals(&d->sigint, &d->sigterm, &d->sighup);
  uv_run(run->loop, UV_RUN_DEFAULT);
  err = uv_loop_close(run->loop);
  assert(err == 0);
  (void)err;
  pc__driver_free(d);
  return code;
}
