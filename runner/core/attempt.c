/* attempt.c: a leaf task's attempts: pool permits, the attempt deadline,
 * the action's start and cancel, expectations, retry with backoff, and
 * polling (until/fail_if/every/within): a polled step's attempts are its
 * polls, and one deadline bounds them all, the last one included. */
#include "core/task.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/log.h"
#include "base/util.h"
#include "script/luahost.h"

/* ================================================================= leaves */

static void on_pool_granted(struct pc_pool_waiter *w)
{
  struct task *t = w->data;
  t->pools_held++;
  pc__post(t, EV_GRANTED);
}

static void release_pools(struct task *t)
{
  const struct pc_step *st = t->step;
  if (t->pools_held < st->npools)
    pc_pool_cancel(&t->waiters[t->pools_held]);
  size_t held = t->pools_held;
  t->pools_held = 0;
  for (size_t i = 0; i < held; i++)
    pc_pool_release(&t->run->pools[st->pools[i]]);
}

static void on_attempt_timeout(uv_timer_t *timer);

static void attempt_start(struct task *t)
{
  struct pc_run *run = t->run;
  lua_State *L = run->L;
  const struct pc_step *st = t->step;
  t->state = TS_RUNNING;
  t->att_end_mono = 0;
  struct pc_attempt *a = &t->att;
  a->run = run;
  a->step = st;
  a->scope_ref = t->scope_ref;
  a->number = t->attempts;
  a->data = NULL;
  a->status = 0;
  a->exit_code = -1;
  a->retry_after_ms = -1;
  a->non_idempotent = false;
  a->nothing_sent = false;
  pc__record_attempt_start(t);
  pc__attempt_report_clear(t);
  if (t->ext) { /* a retry: the last attempt's sub-group, if any, says */
    free(t->ext->sub_cause);
    t->ext->sub_cause = NULL;
  }
  /* The result table, for actions that fill one or expectations that read
   * it; otherwise it is made at the end, if anything can read it. Sized
   * for the engine's common fields and an action's few raw ones (an HTTP
   * result keeps the rest in a record of its own: http/result.c). */
  a->result_ref = LUA_NOREF;
  if (t->step->ops->fills_result || st->expect.nthat || st->poll.until) {
    int slots = !t->step->ops->fills_result ? 0 : t->step->ops->result_slots ? t->step->ops->result_slots : 8;
    lua_createtable(L, 0, slots);
    a->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  a->params_ref = LUA_NOREF;
  t->att_live = true;
  /* A polled step's `within` bounds each poll too: the attempt's timer is
   * whichever of `timeout` and the deadline comes first. */
  double limit = st->timeout_ms;
  t->timer_within = t->within_hit = false;
  if (st->poll.until) {
    double now = pc_mono_ms();
    struct leaf_ext *x = pc__leaf_ext(t);
    if (x->poll_deadline == 0)
      x->poll_deadline = now + st->poll.within_ms;
    double left = fmax(x->poll_deadline - now, 0);
    if (limit < 0 || left < limit) {
      limit = left;
      t->timer_within = true;
    }
  }
  if (limit >= 0) {
    uv_update_time(run->loop); /* the loop's cached time may be stale by a busy iteration */
    uv_timer_start(pc__task_timer(t), on_attempt_timeout, (uint64_t)ceil(limit), 0);
  }
  if (st->params && t->instance && t->parent->body_params_ref != LUA_NOREF) {
    a->params_ref = t->parent->body_params_ref;
    t->params_shared = true;
  } else if (st->params) {
    char *err = NULL;
    if (pc_lua_eval_tmpl(run->lua, st->params, t->scope_ref, &err) != 0) {
      pc_attempt_done(a, PC_FAIL_ERROR, err);
      free(err);
      return;
    }
    a->params_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  t->step->ops->start(a);
}

/* The leaf stops waiting for permits (it got them, or it is stopped). */
static void leaf_stop_waiting(struct task *t)
{
  if (!t->waiting)
    return;
  t->waiting = false;
  t->queued_ms += pc_mono_ms() - t->wait_since;
  pc__record_waiting(t, false);
}

void pc__leaf_acquire(struct task *t)
{
  const struct pc_step *st = t->step;
  while (t->pools_held < st->npools) {
    struct pc_pool_waiter *w = &t->waiters[t->pools_held];
    w->data = t;
    if (!pc_pool_acquire(&t->run->pools[st->pools[t->pools_held]], w, on_pool_granted)) {
      if (!t->waiting) {
        t->waiting = true;
        t->wait_since = pc_mono_ms();
        pc__record_waiting(t, true);
      }
      return;
    }
    t->pools_held++;
  }
  leaf_stop_waiting(t);
  if (t->ran_mono == 0) {
    t->ran_mono = pc_mono_ms();
    pc__record_running(t);
  }
  attempt_start(t);
}

static void poll_timeout(struct task *t);

static void on_backoff_done(uv_timer_t *timer)
{
  struct task *t = timer->data;
  /* The wait was cut to the deadline; the timer's clock counts whole
   * milliseconds, hence the slack. */
  if (t->step->poll.until && pc_mono_ms() >= t->ext->poll_deadline - 1) {
    poll_timeout(t);
    return;
  }
  pc__leaf_next_attempt(t);
}

void pc_attempt_report(struct pc_attempt *a, const char *method, const char *url)
{
  struct task *t = PC_CONTAINER_OF(a, struct task, att);
  if (t->rec == PC_NO_RECORD)
    return;
  pc__attempt_report_clear(t);
  if (!method && !url)
    return;
  struct leaf_ext *x = pc__leaf_ext(t);
  x->rep_method = method ? pc_xstrdup(method) : NULL;
  x->rep_url = url ? pc_xstrdup(url) : NULL;
}

void pc_attempt_done(struct pc_attempt *a, enum pc_fail fail, const char *msg)
{
  struct task *t = PC_CONTAINER_OF(a, struct task, att);
  assert(t->att_live);
  t->att_live = false;
  t->att_fail = fail;
  free(t->att_msg);
  t->att_msg = msg ? pc_xstrdup(msg) : NULL;
  pc__post(t, EV_ATTEMPT_DONE);
}

/* Drops the attempt's evaluated params (a fan-out's shared value stays). */
static void release_params(struct task *t)
{
  if (!t->params_shared)
    pc_lua_unref(t->run->lua, t->att.params_ref);
  t->att.params_ref = LUA_NOREF;
  t->params_shared = false;
}

/* Stops whatever the leaf is doing right now; used by cancel and timeout. */
void pc__leaf_abort(struct task *t)
{
  if (t->att_live) {
    t->att_live = false;
    t->step->ops->cancel(&t->att);
    pc__record_attempt_end(t, PC_CANCELLED, NULL);
  }
  t->events &= ~(EV_ATTEMPT_DONE | EV_GRANTED);
  pc__task_timer_stop(t);
  leaf_stop_waiting(t);
  if (t->state == TS_WAIT_POOL || t->state == TS_RUNNING)
    release_pools(t);
  release_params(t);
}

static void on_attempt_timeout(uv_timer_t *timer)
{
  struct task *t = timer->data;
  if (t->state != TS_RUNNING)
    return;
  if (!t->att_live)
    return; /* finished just now; its completion is queued and stands */
  t->att_live = false;
  t->step->ops->cancel(&t->att);
  char dur[32];
  pc_format_duration(t->timer_within ? t->step->poll.within_ms : t->step->timeout_ms, dur,
                     sizeof dur);
  struct pc_buf b;
  pc_buf_init(&b, 8192);
  if (t->step->ops->subject) {
    t->step->ops->subject(&t->att, &b);
    if (b.len)
      pc_buf_puts(&b, ": ");
  }
  if (t->timer_within) {
    t->within_hit = true;
    pc_buf_printf(&b, "within %s passed during poll %d (the condition was never met)", dur,
                  t->ext->polls + 1);
  } else {
    pc_buf_printf(&b, "timed out after %s", dur);
  }
  pc__attempt_end(t, PC_FAIL_TIMEOUT, pc_buf_steal(&b));
}

static bool status_in(int status, const struct pc_status_range *r, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (status >= r[i].lo && status <= r[i].hi)
      return true;
  return false;
}

static void describe_ranges(struct pc_buf *b, const struct pc_status_range *r, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (i)
      pc_buf_puts(b, i + 1 == n ? " or " : ", ");
    if (r[i].lo == r[i].hi)
      pc_buf_printf(b, "%d", r[i].lo);
    else if (r[i].hi - r[i].lo == 99 && r[i].lo % 100 == 0)
      pc_buf_printf(b, "%dxx", r[i].lo / 100);
    else
      pc_buf_printf(b, "%d-%d", r[i].lo, r[i].hi);
  }
}

/* Checks the expectations of a finished attempt. Returns PC_FAIL_NONE if
 * they hold; else PC_FAIL_EXPECT, or PC_FAIL_ERROR when evaluating one
 * failed, with *msg set (malloc'd). */
static enum pc_fail check_expect(struct task *t, char **msg)
{
  const struct pc_step *st = t->step;
  const struct pc_expect *ex = &st->expect;
  struct pc_attempt *a = &t->att;
  struct pc_lua *h = t->run->lua;
  lua_State *L = t->run->L;
  t->status_failed = false;

  if (t->step->ops->has_status) {
    static const struct pc_status_range below400 = {0, 399};
    const struct pc_status_range *r = ex->nstatus ? ex->status : &below400;
    size_t n = ex->nstatus ? ex->nstatus : 1;
    if (!status_in(a->status, r, n)) {
      struct pc_buf b;
      pc_buf_init(&b, 4096);
      if (ex->nstatus) {
        pc_buf_puts(&b, "expected status ");
        describe_ranges(&b, r, n);
      } else {
        pc_buf_puts(&b, "expected status below 400");
      }
      pc_buf_printf(&b, ", got %d", a->status);
      t->status_failed = true;
      *msg = pc_buf_steal(&b);
      return PC_FAIL_EXPECT;
    }
  }
  if (t->step->ops->has_exit_code) {
    bool ok = false;
    if (ex->nexit_codes) {
      for (size_t i = 0; i < ex->nexit_codes; i++)
        ok = ok || ex->exit_codes[i] == a->exit_code;
    } else {
      ok = a->exit_code == 0;
    }
    int want = ex->nexit_codes ? ex->exit_codes[0] : 0;
    if (!ok && a->exit_code < 0) {
      *msg = pc_asprintf("expected exit code %d, got none", want);
      return PC_FAIL_EXPECT;
    }
    if (!ok) {
      *msg = pc_asprintf("expected exit code %d, got %d", want, a->exit_code);
      return PC_FAIL_EXPECT;
    }
  }
  if (ex->nthat) {
    int scope = t->scope_ref;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref);
    bool view = pc_lua_scope_bind_view(h, scope, "result"); /* old */
    enum pc_fail fail = PC_FAIL_NONE;
    for (size_t i = 0; i < ex->nthat && fail == PC_FAIL_NONE; i++) {
      bool ok = false;
      char *m = NULL;
      if (pc_lua_eval_bool(h, ex->that[i], scope, &ok, &m) != 0) {
        fail = PC_FAIL_ERROR;
      } else if (!ok) {
        m = pc_asprintf("expectation failed: %s (%s:%d:%d)", ex->that[i]->src,
                        ex->that[i]->file, ex->that[i]->line, ex->that[i]->col);
        fail = PC_FAIL_EXPECT;
      }
      if (m) { /* while `result` is still bound */
        *msg = pc_lua_explained(h, m, ex->that[i], scope);
        free(m);
      }
    }
    pc_lua_scope_unbind_view(h, scope, "result", view);
    return fail;
  }
  return PC_FAIL_NONE;
}

/* Whether retry.on covers this failure (attempts and method aside). */
static bool retry_on_covers(struct task *t, enum pc_fail fail)
{
  const struct pc_retry *r = &t->step->retry;
  unsigned on = r->on_set ? r->on : t->step->ops->default_on;
  int status = t->att.status;
  switch (fail) {
  case PC_FAIL_NONE:
    return false;
  case PC_FAIL_NETWORK:
    return on & PC_ON_NETWORK;
  case PC_FAIL_TIMEOUT:
    return on & PC_ON_TIMEOUT;
  case PC_FAIL_ERROR:
    return on & PC_ON_ERROR;
  case PC_FAIL_EXPECT:
    if (t->status_failed) {
      size_t ncodes = r->on_set ? r->ncodes : t->step->ops->ndefault_codes;
      const int *codes = r->on_set ? r->codes : t->step->ops->default_codes;
      for (size_t i = 0; i < ncodes; i++)
        if (codes[i] == status)
          return true;
      if (status >= 500 && status <= 599 && (on & PC_ON_5XX))
        return true;
      if (status >= 400 && status <= 499 && (on & PC_ON_4XX))
        return true;
    }
    return on & PC_ON_EXPECT;
  }
  return false;
}

/* The tries retry.attempts counts: every attempt, or under until the
 * polls that failed (a poll whose condition is not met yet is no failure). */
static int tries(const struct task *t)
{
  return t->step->poll.until ? t->ext->poll_fails : t->attempts;
}

/* A failure is retried when retry.on covers it and attempts are left, but
 * a request that is not idempotent (POST, PATCH) only if retry.unsafe says
 * so or nothing of it was sent (connection refused, DNS, TLS handshake,
 * connect timeout): a server cannot have acted on it. *held is set when
 * only that kept the failure from being retried. */
static bool should_retry(struct task *t, enum pc_fail fail, bool *held)
{
  const struct pc_retry *r = &t->step->retry;
  *held = false;
  if (tries(t) >= r->attempts || !retry_on_covers(t, fail))
    return false;
  if (t->att.non_idempotent && !r->unsafe && !t->att.nothing_sent) {
    *held = true;
    return false;
  }
  return true;
}

static double backoff_ms(struct task *t)
{
  const struct pc_retry *r = &t->step->retry;
  if (t->att.retry_after_ms >= 0)
    return fmin(t->att.retry_after_ms, r->max_backoff_ms);
  double d = r->backoff_ms * pow(r->factor, tries(t) - 1);
  d = fmin(d, r->max_backoff_ms);
  if (r->jitter)
    d = d * ((double)rand() / ((double)RAND_MAX + 1.0));
  return d;
}

/* ================================================================ polling */

static const char *base_name(const char *path)
{
  const char *b = strrchr(path, '/');
  return b ? b + 1 : path;
}

/* A successful poll: fail_if, then until, with `result` bound. Returns
 * PC_FAIL_NONE with *again set while the condition is not met yet (or
 * cleared when until held); PC_FAIL_EXPECT when fail_if held, and
 * PC_FAIL_ERROR when evaluating one failed, with *msg (malloc'd). */
static enum pc_fail poll_check(struct task *t, char **msg, bool *again)
{
  const struct pc_poll *p = &t->step->poll;
  struct leaf_ext *x = t->ext; /* made by attempt_start */
  struct pc_lua *h = t->run->lua;
  int scope = t->scope_ref;
  lua_rawgeti(t->run->L, LUA_REGISTRYINDEX, t->att.result_ref);
  bool view = pc_lua_scope_bind_view(h, scope, "result"); /* old */
  enum pc_fail fail = PC_FAIL_NONE;
  bool yes = false;
  char *m = NULL;
  *again = false;
  if (p->fail_if) {
    if (pc_lua_eval_bool(h, p->fail_if, scope, &yes, &m) != 0) {
      fail = PC_FAIL_ERROR;
    } else if (yes) {
      m = pc_asprintf("fail_if held at poll %d: %s (%s:%d:%d)", x->polls, p->fail_if->src,
                      base_name(p->fail_if->file), p->fail_if->line, p->fail_if->col);
      fail = PC_FAIL_EXPECT;
      x->poll_stop = "fail_if";
    }
    if (m)
      *msg = pc_lua_explained(h, m, p->fail_if, scope);
  }
  if (fail == PC_FAIL_NONE) {
    if (pc_lua_eval_bool(h, p->until, scope, &yes, &m) != 0) {
      *msg = pc_lua_explained(h, m, p->until, scope);
      fail = PC_FAIL_ERROR;
    } else if (yes) {
      x->poll_stop = "until";
      if (pc_log_enabled(PC_LOG_DEBUG)) {
        char *label = pc__task_label(t);
        pc_log(PC_LOG_DEBUG, label, "poll %d: until met (%s)", x->polls, p->until->src);
        free(label);
      }
    } else {
      *again = true;
    }
  }
  free(m);
  pc_lua_scope_unbind_view(h, scope, "result", view);
  if (fail == PC_FAIL_ERROR)
    x->poll_stop = "failure";
  return fail;
}

/* The attempt's result goes (a retry or the next poll makes another). */
static void drop_result(struct task *t)
{
  pc_lua_unref(t->run->lua, t->att.result_ref);
  t->att.result_ref = LUA_NOREF;
  pc__attempt_report_clear(t); /* it went with the result */
}

/* The condition is not met yet: the next poll after `every` (its backoff),
 * or at the deadline, whichever is first. */
static void poll_next(struct task *t)
{
  const struct pc_poll *p = &t->step->poll;
  const struct leaf_ext *x = t->ext; /* made by attempt_start */
  double wait = fmin(p->every_ms * pow(p->factor, x->polls - 1), p->max_ms);
  if (p->jitter)
    wait = wait * ((double)rand() / ((double)RAND_MAX + 1.0));
  wait = fmax(fmin(wait, x->poll_deadline - pc_mono_ms()), 0);
  if (pc_log_enabled(PC_LOG_DEBUG)) {
    char dur[32];
    pc_format_duration(wait, dur, sizeof dur);
    char *label = pc__task_label(t);
    pc_log(PC_LOG_DEBUG, label, "poll %d: until not met (%s); next poll in %s", x->polls,
           p->until->src, dur);
    free(label);
  }
  drop_result(t);
  t->state = TS_BACKOFF;
  uv_update_time(t->run->loop); /* the cached clock may be stale */
  uv_timer_start(pc__task_timer(t), on_backoff_done, (uint64_t)ceil(wait), 0);
}

/* The deadline passed between polls: the step ends `timeout`. */
static void poll_timeout(struct task *t)
{
  const struct pc_poll *p = &t->step->poll;
  struct leaf_ext *x = t->ext; /* made by attempt_start */
  char dur[32];
  pc_format_duration(p->within_ms, dur, sizeof dur);
  char *msg = pc_asprintf("within %s passed after %d poll%s: until %s (%s:%d:%d) was never met",
                          dur, x->polls, x->polls == 1 ? "" : "s", p->until->src,
                          base_name(p->until->file), p->until->line, p->until->col);
  x->poll_stop = "within";
  /* It was polling until now: its running time ends at the deadline, not
   * when its last poll ended (which, on a loaded machine, may be well
   * before it: steps.ID.duration_ms of a `within` timeout is `within`). */
  t->att_end_mono = pc_mono_ms();
  drop_result(t);
  pc__task_finish(t, PC_TIMEOUT, msg);
  free(msg);
}

static enum pc_outcome fail_outcome(enum pc_fail f)
{
  switch (f) {
  case PC_FAIL_NONE:
    return PC_OK;
  case PC_FAIL_EXPECT:
    return PC_FAILED;
  case PC_FAIL_TIMEOUT:
    return PC_TIMEOUT;
  case PC_FAIL_NETWORK:
  case PC_FAIL_ERROR:
    break;
  }
  return PC_ERROR;
}

/* A server answered 429 or 503 with a Retry-After: every pool of the step
 * stops granting permits for that long (pool.h), whatever the step's retry
 * says, since the server speaks of the client, not of this one request.
 * One line at -v when a pool's pause begins (extending one is silent: a
 * fan-out gets many 429s at once). */
static void pause_pools(struct task *t)
{
  const struct pc_attempt *a = &t->att;
  if ((a->status != 429 && a->status != 503) || a->retry_after_ms <= 0)
    return;
  const struct pc_step *st = t->step;
  for (size_t i = 0; i < st->npools; i++) {
    if (!pc_pool_pause(&t->run->pools[st->pools[i]], a->retry_after_ms) ||
        !pc_log_enabled(PC_LOG_DEBUG))
      continue;
    char dur[32];
    pc_format_duration(fmin(a->retry_after_ms, PC_POOL_PAUSE_MAX_MS), dur, sizeof dur);
    char *label = pc__task_label(t);
    pc_log(PC_LOG_DEBUG, label, "pool \"%s\" paused for %s (HTTP %d with Retry-After)%s",
           t->run->wf->pools[st->pools[i]].name, dur, a->status,
           t->run->buckets[st->pools[i]] ? ", on every shard sharing its budget" : "");
    free(label);
  }
}

/* One attempt is over (done, failed or timed out): check expectations, then
 * retry or finish. Takes ownership of msg. */
void pc__attempt_end(struct task *t, enum pc_fail fail, char *msg)
{
  pc__task_timer_stop(t);
  /* The leaf stops running when its permits go back: a waiter they go to
   * starts now, and the two records must not overlap (pc__task_run_ms). */
  t->att_end_mono = pc_mono_ms();
  pause_pools(t);
  release_pools(t);
  t->status_failed = false;
  if (fail == PC_FAIL_NONE) {
    free(msg);
    msg = NULL;
    fail = check_expect(t, &msg);
    if (fail != PC_FAIL_NONE && t->step->ops->describe) {
      struct pc_buf b;
      pc_buf_init(&b, (size_t)64 << 10);
      pc_buf_puts(&b, msg);
      t->step->ops->describe(&t->att, &b);
      free(msg);
      msg = pc_buf_steal(&b);
    }
  }
  bool again = false; /* a poll whose condition is not met yet */
  if (t->step->poll.until) {
    struct leaf_ext *x = t->ext; /* made by attempt_start */
    x->polls++;
    if (t->within_hit)
      x->poll_stop = "within";
    else if (fail == PC_FAIL_NONE)
      fail = poll_check(t, &msg, &again);
    else
      x->poll_fails++;
  }
  pc__record_attempt_end(t, fail_outcome(fail), msg);
  release_params(t);
  if (again) {
    free(msg);
    if (!t->cancelled) {
      poll_next(t);
    } else { /* pc__task_cancel finishes it, as cancelled */
      drop_result(t);
      t->state = TS_BACKOFF;
    }
    return;
  }
  bool held = false;
  if (fail != PC_FAIL_NONE && !t->cancelled && !t->within_hit && should_retry(t, fail, &held)) {
    double wait = backoff_ms(t);
    if (t->step->poll.until) /* the deadline bounds a retried poll's wait too */
      wait = fmax(fmin(wait, t->ext->poll_deadline - pc_mono_ms()), 0);
    char dur[32];
    pc_format_duration(wait, dur, sizeof dur);
    char *label = pc__task_label(t);
    pc_log(PC_LOG_WARN, label, "%s %d/%d %s: %s; retrying in %s",
           t->step->poll.until ? "failed poll" : "attempt", tries(t), t->step->retry.attempts,
           pc_outcome_name(fail_outcome(fail)), msg ? msg : "", dur);
    free(label);
    free(msg);
    drop_result(t);
    t->state = TS_BACKOFF;
    uv_update_time(t->run->loop); /* the cached clock may be stale */
    uv_timer_start(pc__task_timer(t), on_backoff_done, (uint64_t)ceil(wait), 0);
    return;
  }
  if (held) {
    /* on the first line: the lines under it (an HTTP exchange, a command
     * line to paste) stay as they are */
    const char *e = msg ? msg : "";
    const char *nl = strchr(e, '\n');
    int first = nl ? (int)(nl - e) : (int)strlen(e);
    char *m = pc_asprintf("%.*s; not retried: the server may have acted on the request and its "
                          "method is not idempotent (retry.unsafe: true retries it anyway)%s",
                          first, e, e + first);
    free(msg);
    msg = m;
  }
  if (t->step->poll.until && !t->ext->poll_stop && !t->cancelled)
    t->ext->poll_stop = fail == PC_FAIL_NONE ? "until" : "failure";
  pc__task_finish(t, fail_outcome(fail), msg);
  free(msg);
}


/* ====================================================== trace context */

bool pc_run_traced(struct pc_run *run)
{
  return run->trace && (run->trace->joined || run->trace->recording);
}

bool pc_attempt_traceparent(struct pc_attempt *a, char out[PC_TRACEPARENT_SIZE])
{
  struct task *t = PC_CONTAINER_OF(a, struct task, att);
  struct pc_trace *tr = t->run->trace;
  if (!tr)
    return false;
  /* The attempt's own span when the run's spans are exported; otherwise
   * no span of pacer's will ever be seen, so what it starts is made a
   * child of the span the run joined (a CI job's), or of a fresh id. */
  uint64_t span;
  struct pc_attempt_record *ar = pc__att_rec_of(t);
  if (ar && ar->span) {
    span = ar->span;
    ar->propagated = true;
  } else {
    span = tr->joined ? tr->parent : pc_trace_new_span(tr);
  }
  pc_trace_format(tr, span, out);
  return true;
}
