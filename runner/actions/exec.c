/* exec.c: the `exec` and `shell` actions on top of a small child-process
 * runner (struct pc_proc) that the Lua API can reuse.
 *
 * A pc_proc embeds every libuv handle it needs: the process, a pipe per
 * output stream, an optional stdin pipe and two timers (the output drain
 * after exit, and the SIGTERM -> SIGKILL grace after cancel). It reports
 * once, when the process has exited and both output pipes reached EOF (or
 * PC_EXEC_DRAIN_MS after the exit, because a background grandchild may hold
 * the pipes open forever). It is freed in the last close callback; closes
 * still pending are counted.
 *
 * Children run in their own session and process group (UV_PROCESS_DETACHED
 * makes the child call setsid), so a terminal's Ctrl-C reaches only pacer,
 * and pacer can signal the whole tree a shell started with kill(-pgid, sig).
 * Cancelling is synchronous for the caller: the callback is dropped and the
 * group gets SIGTERM at once, while the pc_proc lives on by itself until the
 * leader is reaped, sending SIGKILL to the group if it is still there after
 * the grace period.
 *
 * Every pc_proc of a run is listed in a run-wide registry (the PC_ACT_EXEC
 * action slot). A step whose program exits normally but leaves background
 * processes in its group (`server &`) does not wait for them; like GitHub
 * Actions, pacer lets them run until the end of the run, and the registry's
 * teardown (run_cleanup) sends those groups SIGTERM and, after the grace
 * period, SIGKILL. So no child outlives a run that ends normally, by a
 * deadline or by a signal. */
#include "actions/exec.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "model/action.h"
#include "base/log.h"
#include "script/luahost.h"
#include "script/mod_exec.h"
#include "base/util.h"

extern char **environ;

/* ============================================================= registry */

struct lingering {
  int pgid;
  char *label; /* owned; may be NULL */
  bool killed; /* got SIGKILL: waiting for it to be gone */
};

/* The processes of one loop (the run's set lives in the PC_ACT_EXEC action
 * slot), and the groups they left behind. */
struct pc_proc_set {
  uv_loop_t *loop;        /* borrowed */
  struct pc_proc *live;   /* every pc_proc not yet freed */
  struct lingering *linger; /* groups left behind by finished steps */
  size_t nlinger;
  uv_timer_t reap;        /* teardown: waits for lingering groups to go */
  bool reap_active;       /* `reap` is initialised and not closed yet */
  bool tearing_down;      /* run_cleanup was called */
  double reap_deadline;   /* monotonic ms: SIGKILL what is left */
  /* The run's slot that points here while the set tears down (so a signal
   * in that time can still reach its programs: exec_kill_now), cleared
   * when the set is freed; NULL for sets that tests make. */
  void **slot;
};

/* ============================================================ processes */

struct stream {
  uv_pipe_t pipe;
  struct pc_proc *p; /* borrowed: the owner */
  const char *name;  /* "stdout" or "stderr" */
  struct pc_buf cap; /* captured bytes, at most max_output */
  bool truncated;
  bool done;         /* EOF, a read error, or given up after the drain */
  bool eof;          /* the whole output was read */
  /* The log's copy: redacted as a stream (a secret split across reads or
   * lines is still found), then cut into lines. */
  struct pc_redact_stream red;
  struct pc_buf redacted; /* scratch: what one read gave after redaction */
  size_t line_len;
  char line[PC_EXEC_LINE_MAX + 1];
  char rbuf[16384];
};

struct pc_proc {
  uv_process_t proc;
  uv_pipe_t in;
  struct stream out, err;
  uv_timer_t drain; /* after exit: bound on waiting for the output EOFs */
  uv_timer_t grace; /* after cancel: SIGTERM -> SIGKILL */
  uv_write_t wreq;
  struct pc_proc_set *rs;         /* borrowed: the registry */
  struct pc_proc *prev, *next; /* in rs->live */
  char *label;                 /* owned; NULL: output is not logged */
  bool quiet;                  /* output is not logged (pc_proc_opts.quiet) */
  char *stdin_data;            /* owned; alive until the write completes */
  size_t stdin_len;
  bool has_stdin;
  pc_proc_done_cb cb; /* NULL once cancelled */
  void *data;
  int pid;
  int pending_closes;
  bool spawned;   /* uv_spawn succeeded */
  bool exited;    /* exit_cb fired (the leader is reaped) */
  bool cancelled;
  bool reported;
  bool kill_sent; /* the group got SIGKILL */
  double kill_deadline; /* monotonic ms: stop waiting for the killed group */
  bool finishing; /* every handle is closing; freed when the last one is */
  int64_t exit_status;
  int term_signal;
};

static void rs_maybe_free(struct pc_proc_set *rs);

struct pc_proc_set *pc_proc_set_new(uv_loop_t *loop)
{
  struct pc_proc_set *rs = pc_xcalloc(1, sizeof *rs);
  rs->loop = loop;
  return rs;
}

struct pc_proc_set *pc_exec_procs(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_EXEC);
  if (!*slot)
    *slot = pc_proc_set_new(pc_run_loop(run));
  return *slot;
}

#ifdef __linux__
/* Whether a process of the group is still alive, ignoring zombies: a
 * grandchild orphaned by the shell's death is reparented to init and stays a
 * zombie until init gets round to reaping it, which some container inits do
 * only every second or so. */
static bool group_has_live_member(int pgid)
{
  DIR *d = opendir("/proc");
  if (!d)
    return true; /* cannot tell: assume it is there */
  bool alive = false;
  struct dirent *e;
  while (!alive && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9')
      continue;
    char path[sizeof e->d_name + 16], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "re");
    if (!f)
      continue; /* gone meanwhile */
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "pid (comm) state ppid pgrp ...": comm may hold anything, so parse
     * from the last ')'. */
    const char *rp = strrchr(buf, ')');
    char state;
    int ppid, pgrp;
    if (rp && sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
        state != 'Z' && state != 'X')
      alive = true;
  }
  closedir(d);
  return alive;
}
#endif

/* True while a process of the group exists. */
static bool group_alive(int pgid)
{
  if (kill(-pgid, 0) != 0 && errno != EPERM)
    return false; /* the usual case, and cheap */
#ifdef __linux__
  return group_has_live_member(pgid);
#else
  return true;
#endif
}

static void signal_group(struct pc_proc *p, int sig)
{
  if (kill(-p->pid, sig) != 0 && errno != ESRCH)
    pc_log(PC_LOG_DEBUG, p->label, "kill(-%d, %s): %s", p->pid, pc_signal_name(sig),
           strerror(errno));
  else
    pc_log(PC_LOG_DEBUG, p->label, "sent %s to process group %d", pc_signal_name(sig), p->pid);
}

static void proc_free(struct pc_proc *p)
{
  struct pc_proc_set *rs = p->rs;
  if (p->prev)
    p->prev->next = p->next;
  else
    rs->live = p->next;
  if (p->next)
    p->next->prev = p->prev;
  pc_buf_free(&p->out.cap);
  pc_buf_free(&p->err.cap);
  pc_redact_stream_free(&p->out.red);
  pc_redact_stream_free(&p->err.red);
  pc_buf_free(&p->out.redacted);
  pc_buf_free(&p->err.redacted);
  free(p->label);
  free(p->stdin_data);
  free(p);
  rs_maybe_free(rs);
}

static void on_handle_closed(uv_handle_t *h)
{
  struct pc_proc *p = h->data;
  assert(p->pending_closes > 0);
  if (--p->pending_closes == 0 && p->finishing)
    proc_free(p);
}

static void close_handle(struct pc_proc *p, uv_handle_t *h)
{
  if (uv_is_closing(h))
    return;
  p->pending_closes++;
  uv_close(h, on_handle_closed);
}

/* Closes everything; the pc_proc is freed in the last close callback. The
 * process handle is closed only once the leader was reaped (or never ran):
 * closing it earlier would leave a zombie nobody waits for. */
static void proc_close_all(struct pc_proc *p)
{
  assert(!p->finishing);
  assert(p->exited || !p->spawned);
  p->finishing = true;
  p->pending_closes++; /* hold: nothing is freed while closing */
  uv_timer_stop(&p->drain);
  uv_timer_stop(&p->grace);
  if (p->has_stdin)
    close_handle(p, (uv_handle_t *)&p->in);
  close_handle(p, (uv_handle_t *)&p->out.pipe);
  close_handle(p, (uv_handle_t *)&p->err.pipe);
  close_handle(p, (uv_handle_t *)&p->drain);
  close_handle(p, (uv_handle_t *)&p->grace);
  close_handle(p, (uv_handle_t *)&p->proc);
  if (--p->pending_closes == 0)
    proc_free(p);
}

/* A captured text that ends where pacer cut it (at the cap, or before the
 * program finished writing) may end inside a secret: register that
 * fragment, so wherever the text goes it is redacted. */
static void note_cut(const struct stream *s)
{
  if (s->truncated || !s->eof)
    pc_secret_cut(s->cap.data, s->cap.len);
}

static void result_of(const struct pc_proc *p, struct pc_proc_result *r)
{
  note_cut(&p->out);
  note_cut(&p->err);
  r->signal = p->exited ? p->term_signal : 0;
  r->exit_code = p->exited && !p->term_signal ? (int)p->exit_status : -1;
  r->out = p->out.cap.data;
  r->out_len = p->out.cap.len;
  r->out_truncated = p->out.truncated;
  r->err = p->err.cap.data;
  r->err_len = p->err.cap.len;
  r->err_truncated = p->err.truncated;
}

int pc_proc_pid(const struct pc_proc *p)
{
  return p->pid;
}

void pc_proc_peek(const struct pc_proc *p, struct pc_proc_result *r)
{
  result_of(p, r);
}

static void linger_add(struct pc_proc_set *rs, const struct pc_proc *p)
{
  pc_log(PC_LOG_DEBUG, p->label,
         "background processes are still running in group %d; they are stopped when the "
         "run ends",
         p->pid);
  rs->linger = pc_xrealloc(rs->linger, (rs->nlinger + 1) * sizeof *rs->linger);
  rs->linger[rs->nlinger].pgid = p->pid;
  rs->linger[rs->nlinger].label = p->label ? pc_xstrdup(p->label) : NULL;
  rs->linger[rs->nlinger].killed = false;
  rs->nlinger++;
}

static void on_grace_over(uv_timer_t *t);

/* The state machine's one decision point: called after every event. */
static void proc_check(struct pc_proc *p)
{
  if (p->finishing || !p->exited || !p->out.done || !p->err.done)
    return;
  if (!p->cancelled) {
    if (!p->reported) {
      p->reported = true;
      struct pc_proc_result r;
      result_of(p, &r);
      pc_proc_done_cb cb = p->cb;
      p->cb = NULL;
      cb(p->data, &r);
    }
    if (group_alive(p->pid))
      linger_add(p->rs, p);
    proc_close_all(p);
    return;
  }
  /* Cancelled: done once the group is gone. Before the grace period ends
   * the grace timer comes back here after sending SIGKILL; after it, the
   * killed group is looked at every PC_EXEC_KILL_POLL_MS until it is gone
   * (a SIGKILLed process is not dead before it has been scheduled, and on a
   * loaded machine pacer could otherwise exit while its programs still
   * existed), for at most PC_EXEC_KILL_WAIT_MS. */
  if (!group_alive(p->pid)) {
    proc_close_all(p);
  } else if (p->kill_sent) {
    if (pc_mono_ms() >= p->kill_deadline) {
      pc_log(PC_LOG_WARN, p->label, "process group %d is still there %d ms after SIGKILL; "
             "not waiting for it any longer", p->pid, PC_EXEC_KILL_WAIT_MS);
      proc_close_all(p);
    } else {
      uv_timer_start(&p->grace, on_grace_over, PC_EXEC_KILL_POLL_MS, 0);
    }
  }
}

/* ----------------------------------------------------------- output */

static void emit_line(struct stream *s)
{
  size_t n = s->line_len;
  if (n > 0 && s->line[n - 1] == '\r')
    n--;
  s->line[n] = '\0';
  /* A program stopped by pacer (a failing sibling, a timeout, a signal)
   * may print on its way out; those lines go to -v only, so they do not
   * bury the failure that stopped it. */
  pc_log(s->p->cancelled ? PC_LOG_DEBUG : PC_LOG_INFO, s->p->label, "%s", s->line);
  s->line_len = 0;
}

/* Cuts redacted output into log lines (and pieces of PC_EXEC_LINE_MAX). */
static void feed_lines(struct stream *s, const char *d, size_t n)
{
  while (n > 0) {
    const char *nl = memchr(d, '\n', n);
    size_t len = nl ? (size_t)(nl - d) : n;
    size_t room = PC_EXEC_LINE_MAX - s->line_len;
    if (len > room) {
      len = room;
      nl = NULL;
    }
    memcpy(s->line + s->line_len, d, len);
    s->line_len += len;
    d += len;
    n -= len;
    if (nl) {
      d++;
      n--;
      emit_line(s);
    } else if (s->line_len == PC_EXEC_LINE_MAX) {
      emit_line(s);
    }
  }
}

static void capture(struct stream *s, const char *d, size_t n)
{
  size_t room = s->cap.max - s->cap.len;
  if (n > room) {
    if (!s->truncated) {
      char lim[32];
      snprintf(lim, sizeof lim, "%zu", s->cap.max);
      pc_log(PC_LOG_WARN, s->p->label,
             "%s exceeds %s bytes; the result keeps the first %s (the rest is discarded)",
             s->name, lim, lim);
    }
    s->truncated = true;
    n = room;
  }
  if (n > 0) {
    int err = pc_buf_append(&s->cap, d, n);
    assert(err == 0);
    (void)err;
  }
}

/* Redacts a piece of output and logs the lines it completes. */
static void log_output(struct stream *s, const char *d, size_t n)
{
  pc_buf_reset(&s->redacted);
  pc_redact_stream_feed(&s->red, d, n, &s->redacted);
  feed_lines(s, s->redacted.data, s->redacted.len);
}

/* No more output from this stream: log the unterminated last line, close. */
static void stream_finish(struct stream *s)
{
  if (s->done)
    return;
  s->done = true;
  if (s->p->label && !s->p->quiet && pc_log_enabled(PC_LOG_INFO)) {
    pc_buf_reset(&s->redacted);
    pc_redact_stream_end(&s->red, &s->redacted);
    feed_lines(s, s->redacted.data, s->redacted.len);
    if (s->line_len > 0)
      emit_line(s);
  }
  uv_read_stop((uv_stream_t *)&s->pipe);
  close_handle(s->p, (uv_handle_t *)&s->pipe);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
  struct stream *s = PC_CONTAINER_OF((uv_pipe_t *)h, struct stream, pipe);
  (void)suggested;
  *buf = uv_buf_init(s->rbuf, sizeof s->rbuf);
}

/* Bytes read from the program. Beyond the cap they are still read (so the
 * child never blocks on a full pipe) and still logged, but not kept. */
static void stream_take(struct stream *s, const char *d, size_t n)
{
  capture(s, d, n);
  if (s->p->label && !s->p->quiet && pc_log_enabled(PC_LOG_INFO))
    log_output(s, d, n);
}

/* Reads, without waiting, what the pipe holds at this moment (and no more:
 * a background process writing without pause must not keep us here). Used
 * when pacer stops waiting for a stream: the bytes a program wrote before
 * then belong to its result even if the loop was too busy to read them in
 * time (a long callback or a CPU-bound step can make the wait's timer
 * overdue before the pipe's readiness is seen; found under valgrind on a
 * loaded machine). The pipe is non-blocking, as libuv opened it. */
static void stream_read_pending(struct stream *s)
{
  uv_os_fd_t fd;
  int avail = 0;
  if (s->done || uv_fileno((uv_handle_t *)&s->pipe, &fd) != 0 ||
      ioctl(fd, FIONREAD, &avail) != 0)
    return;
  while (avail > 0) {
    size_t want = (size_t)avail < sizeof s->rbuf ? (size_t)avail : sizeof s->rbuf;
    ssize_t n = read(fd, s->rbuf, want);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break; /* EOF, EAGAIN or an error: nothing more to take now */
    stream_take(s, s->rbuf, (size_t)n);
    avail -= (int)n;
  }
}

static void on_read(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
  struct stream *s = PC_CONTAINER_OF((uv_pipe_t *)h, struct stream, pipe);
  if (nread > 0) {
    stream_take(s, buf->base, (size_t)nread);
    return;
  }
  if (nread < 0) {
    s->eof = nread == UV_EOF;
    if (nread != UV_EOF)
      pc_log(PC_LOG_DEBUG, s->p->label, "reading %s: %s", s->name, uv_strerror((int)nread));
    stream_finish(s);
    proc_check(s->p);
  }
}

/* ------------------------------------------------------ exit, timers */

static void on_drain_timeout(uv_timer_t *t)
{
  struct pc_proc *p = PC_CONTAINER_OF(t, struct pc_proc, drain);
  struct stream *ss[2] = {&p->out, &p->err};
  for (int i = 0; i < 2; i++) {
    stream_read_pending(ss[i]);
    if (!ss[i]->done)
      pc_log(PC_LOG_DEBUG, p->label,
             "%s is still open after the program exited (a background process holds it); "
             "not waiting for it",
             ss[i]->name);
  }
  stream_finish(&p->out);
  stream_finish(&p->err);
  proc_check(p);
}

static void on_process_exit(uv_process_t *proc, int64_t exit_status, int term_signal)
{
  struct pc_proc *p = PC_CONTAINER_OF(proc, struct pc_proc, proc);
  p->exited = true;
  p->exit_status = exit_status;
  p->term_signal = term_signal;
  if (term_signal)
    pc_log(PC_LOG_DEBUG, p->label, "process %d killed by %s", p->pid,
           pc_signal_name(term_signal));
  else
    pc_log(PC_LOG_DEBUG, p->label, "process %d exited with code %lld", p->pid,
           (long long)exit_status);
  if (!p->out.done || !p->err.done)
    uv_timer_start(&p->drain, on_drain_timeout, PC_EXEC_DRAIN_MS, 0);
  proc_check(p);
}

/* The grace period is over (SIGKILL what is left), or, once that is done,
 * time to look again whether the killed group is gone (proc_check). */
static void on_grace_over(uv_timer_t *t)
{
  struct pc_proc *p = PC_CONTAINER_OF(t, struct pc_proc, grace);
  if (!p->kill_sent) {
    if (!p->exited || group_alive(p->pid)) {
      pc_log(PC_LOG_WARN, p->label, "still running %d ms after SIGTERM; sending SIGKILL",
             PC_EXEC_KILL_GRACE_MS);
      signal_group(p, SIGKILL);
    }
    p->kill_sent = true;
    p->kill_deadline = pc_mono_ms() + PC_EXEC_KILL_WAIT_MS;
  }
  proc_check(p);
}

static void on_stdin_written(uv_write_t *req, int status)
{
  struct pc_proc *p = PC_CONTAINER_OF(req, struct pc_proc, wreq);
  /* EPIPE: the program exited (or closed stdin) without reading it all,
   * which is its business, not an error of the step. */
  if (status < 0 && status != UV_ECANCELED)
    pc_log(PC_LOG_DEBUG, p->label, "writing stdin: %s", uv_strerror(status));
  close_handle(p, (uv_handle_t *)&p->in);
}

/* ------------------------------------------------------------ spawn */

static bool env_overridden(const char *entry, const char *const *extra)
{
  const char *eq = strchr(entry, '=');
  size_t n = eq ? (size_t)(eq - entry) : strlen(entry);
  for (size_t i = 0; extra[i]; i++)
    if (strncmp(extra[i], entry, n) == 0 && extra[i][n] == '=')
      return true;
  return false;
}

/* pacer's environment with `extra` added or replacing; the array is
 * malloc'd, the strings are borrowed. */
static char **build_env(const char *const *extra)
{
  size_t n = 0, m = 0;
  while (environ[n])
    n++;
  while (extra[m])
    m++;
  char **envp = pc_xcalloc(n + m + 1, sizeof *envp);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    if (!env_overridden(environ[i], extra))
      envp[k++] = environ[i];
  for (size_t j = 0; j < m; j++)
    envp[k++] = (char *)extra[j];
  envp[k] = NULL;
  return envp;
}

/* A program pacer starts inherits stdin, stdout and stderr and nothing
 * else. pacer's own descriptors are close-on-exec, but a library's may not
 * be: libcurl 7.88 makes the wakeup socket pair of its multi handle without
 * SOCK_CLOEXEC, so every program started after the first HTTP request got
 * it (found by tests/torture.py). So before each spawn every descriptor
 * above 2 is marked close-on-exec: one close_range(CLOSE_RANGE_CLOEXEC)
 * call (Linux 5.11), or a walk of /proc/self/fd where that is missing. The
 * loop thread is the only one that spawns; a descriptor another thread
 * opens without O_CLOEXEC in the instant between this and the fork could
 * still slip through, which is why libraries should set it themselves. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
static void cloexec_all_above_stdio(void)
{
#ifdef SYS_close_range
  if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0)
    return;
#endif
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return; /* no /proc: nothing better to do */
  int self = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d))) {
    char *end;
    long fd = strtol(e->d_name, &end, 10);
    if (*end || end == e->d_name || fd <= 2 || fd == self)
      continue;
    int flags = fcntl((int)fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC))
      fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
  }
  closedir(d);
}

static void stream_init(struct pc_proc *p, struct stream *s, const char *name, size_t max)
{
  s->p = p;
  s->name = name;
  pc_buf_init(&s->cap, max);
  pc_redact_stream_init(&s->red);
  pc_buf_init(&s->redacted, (size_t)1 << 40); /* bounded by a read plus the held bytes */
}

int pc_proc_spawn(struct pc_proc_set *rs, const struct pc_proc_opts *o, pc_proc_done_cb cb,
                  void *data, struct pc_proc **out)
{
  assert(o->argv && o->argv[0] && cb);
  if (o->stdin_data && o->stdin_len > UINT_MAX)
    return UV_E2BIG;
  /* Writing stdin to a program that exited must fail with EPIPE, not kill
   * pacer. Children get default dispositions back (libuv resets them). */
  static bool sigpipe_ignored;
  if (!sigpipe_ignored) {
    signal(SIGPIPE, SIG_IGN);
    sigpipe_ignored = true;
  }

  assert(!rs->tearing_down);
  uv_loop_t *loop = rs->loop;
  struct pc_proc *p = pc_xcalloc(1, sizeof *p);
  p->rs = rs;
  p->cb = cb;
  p->data = data;
  p->label = o->label ? pc_xstrdup(o->label) : NULL;
  p->quiet = o->quiet;
  size_t max = o->max_output ? o->max_output : PC_EXEC_MAX_OUTPUT;
  stream_init(p, &p->out, "stdout", max);
  stream_init(p, &p->err, "stderr", max);
  uv_pipe_init(loop, &p->out.pipe, 0);
  uv_pipe_init(loop, &p->err.pipe, 0);
  p->out.pipe.data = p->err.pipe.data = p;
  uv_timer_init(loop, &p->drain);
  uv_timer_init(loop, &p->grace);
  p->drain.data = p->grace.data = p;
  if (o->stdin_data) {
    p->has_stdin = true;
    p->stdin_len = o->stdin_len;
    p->stdin_data = pc_xmalloc(o->stdin_len ? o->stdin_len : 1);
    memcpy(p->stdin_data, o->stdin_data, o->stdin_len);
    uv_pipe_init(loop, &p->in, 0);
    p->in.data = p;
  }
  p->next = rs->live;
  if (rs->live)
    rs->live->prev = p;
  rs->live = p;

  char **envp = o->env ? build_env(o->env) : NULL;
  uv_stdio_container_t stdio[3];
  memset(stdio, 0, sizeof stdio);
  stdio[0].flags = p->has_stdin ? (uv_stdio_flags)(UV_CREATE_PIPE | UV_READABLE_PIPE) : UV_IGNORE;
  stdio[0].data.stream = (uv_stream_t *)&p->in;
  stdio[1].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[1].data.stream = (uv_stream_t *)&p->out.pipe;
  stdio[2].flags = (uv_stdio_flags)(UV_CREATE_PIPE | UV_WRITABLE_PIPE);
  stdio[2].data.stream = (uv_stream_t *)&p->err.pipe;
  uv_process_options_t po;
  memset(&po, 0, sizeof po);
  po.exit_cb = on_process_exit;
  po.file = o->argv[0];
  po.args = (char **)o->argv;
  po.env = envp;
  po.cwd = o->cwd;
  po.flags = UV_PROCESS_DETACHED;
  po.stdio_count = 3;
  po.stdio = stdio;
  cloexec_all_above_stdio();
  int err = uv_spawn(loop, &p->proc, &po);
  free(envp);
  p->proc.data = p;
  if (err) {
    /* uv_spawn initialised the handle even though it failed: close it too. */
    p->cancelled = true;
    p->cb = NULL;
    p->out.done = p->err.done = true;
    proc_close_all(p);
    return err;
  }
  p->spawned = true;
  p->pid = p->proc.pid;
  uv_read_start((uv_stream_t *)&p->out.pipe, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&p->err.pipe, on_alloc, on_read);
  if (p->has_stdin && p->stdin_len > 0) {
    uv_buf_t b = uv_buf_init(p->stdin_data, (unsigned)p->stdin_len);
    int werr = uv_write(&p->wreq, (uv_stream_t *)&p->in, &b, 1, on_stdin_written);
    if (werr) {
      pc_log(PC_LOG_DEBUG, p->label, "writing stdin: %s", uv_strerror(werr));
      close_handle(p, (uv_handle_t *)&p->in);
    }
  } else if (p->has_stdin) {
    close_handle(p, (uv_handle_t *)&p->in); /* empty input: EOF at once */
  }
  *out = p;
  return 0;
}

void pc_proc_cancel(struct pc_proc *p)
{
  assert(!p->cancelled && !p->reported);
  p->cancelled = true;
  p->cb = NULL;
  p->data = NULL;
  signal_group(p, SIGTERM);
  uv_timer_start(&p->grace, on_grace_over, PC_EXEC_KILL_GRACE_MS, 0);
  proc_check(p);
}

/* ------------------------------------------------------------ teardown */

static void rs_maybe_free(struct pc_proc_set *rs)
{
  if (!rs->tearing_down || rs->live || rs->reap_active)
    return;
  if (rs->slot)
    *rs->slot = NULL;
  for (size_t i = 0; i < rs->nlinger; i++)
    free(rs->linger[i].label);
  free(rs->linger);
  free(rs);
}

static void on_reap_closed(uv_handle_t *h)
{
  struct pc_proc_set *rs = PC_CONTAINER_OF((uv_timer_t *)h, struct pc_proc_set, reap);
  rs->reap_active = false;
  rs_maybe_free(rs);
}

/* Drops the lingering groups that are gone; SIGKILLs the rest when `kill`
 * and keeps them until they are gone too, or until `give_up` (as
 * proc_check does for a cancelled program). */
static void linger_sweep(struct pc_proc_set *rs, bool kill_rest, bool give_up)
{
  size_t k = 0;
  for (size_t i = 0; i < rs->nlinger; i++) {
    struct lingering *l = &rs->linger[i];
    if (group_alive(l->pgid)) {
      if (kill_rest && !l->killed) {
        pc_log(PC_LOG_WARN, l->label,
               "background process group %d ignored SIGTERM; sending SIGKILL", l->pgid);
        kill(-l->pgid, SIGKILL);
        l->killed = true;
      }
      if (!give_up) {
        rs->linger[k++] = *l;
        continue;
      }
      pc_log(PC_LOG_WARN, l->label, "process group %d is still there %d ms after SIGKILL; "
             "not waiting for it any longer", l->pgid, PC_EXEC_KILL_WAIT_MS);
    }
    free(l->label);
  }
  rs->nlinger = k;
}

static void on_reap_tick(uv_timer_t *t)
{
  struct pc_proc_set *rs = PC_CONTAINER_OF(t, struct pc_proc_set, reap);
  double now = pc_mono_ms();
  linger_sweep(rs, now >= rs->reap_deadline, now >= rs->reap_deadline + PC_EXEC_KILL_WAIT_MS);
  if (rs->nlinger == 0) {
    uv_timer_stop(&rs->reap);
    uv_close((uv_handle_t *)&rs->reap, on_reap_closed);
  }
}

void pc_proc_set_close(struct pc_proc_set *rs)
{
  if (rs->tearing_down)
    return;
  rs->tearing_down = true;
  /* The run's loop only stops once every pc_proc is gone, so this finds any
   * only if someone stopped the loop early: kill them outright. */
  for (struct pc_proc *p = rs->live; p; p = p->next) {
    if (p->finishing || !p->spawned)
      continue;
    p->cancelled = true;
    p->cb = NULL;
    signal_group(p, SIGKILL);
    p->kill_sent = true;
    p->kill_deadline = pc_mono_ms() + PC_EXEC_KILL_WAIT_MS;
    uv_timer_stop(&p->grace);
    proc_check(p);
  }
  linger_sweep(rs, false, false);
  for (size_t i = 0; i < rs->nlinger; i++) {
    pc_log(PC_LOG_INFO, rs->linger[i].label,
           "stopping background processes the step left running (group %d)",
           rs->linger[i].pgid);
    kill(-rs->linger[i].pgid, SIGTERM);
  }
  if (rs->nlinger) {
    uv_timer_init(rs->loop, &rs->reap);
    rs->reap_active = true;
    rs->reap_deadline = pc_mono_ms() + PC_EXEC_KILL_GRACE_MS;
    uv_timer_start(&rs->reap, on_reap_tick, 20, 20);
  }
  rs_maybe_free(rs);
}

/* A second signal: pacer is about to _exit, and its children live in their
 * own sessions where the terminal's Ctrl-C does not reach them. SIGKILL
 * every group now, running or left behind. */
static void exec_kill_now(struct pc_run *run)
{
  struct pc_proc_set *rs = *pc_run_action_slot(run, PC_ACT_EXEC);
  if (!rs)
    return;
  for (struct pc_proc *p = rs->live; p; p = p->next)
    if (p->spawned && !p->exited)
      kill(-p->pid, SIGKILL);
  for (size_t i = 0; i < rs->nlinger; i++)
    kill(-rs->linger[i].pgid, SIGKILL);
}

/* After the run's loop has stopped: no process may outlive the run. */
static void exec_run_cleanup(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_EXEC);
  struct pc_proc_set *rs = *slot;
  if (rs) { /* the slot keeps pointing here until the set is freed */
    rs->slot = slot;
    pc_proc_set_close(rs);
  }
}

/* ------------------------------------------------------------ signals */

#define PC_SIGNALS(X)                                                                      \
  X(SIGHUP) X(SIGINT) X(SIGQUIT) X(SIGILL) X(SIGTRAP) X(SIGABRT) X(SIGBUS) X(SIGFPE)        \
  X(SIGKILL) X(SIGUSR1) X(SIGSEGV) X(SIGUSR2) X(SIGPIPE) X(SIGALRM) X(SIGTERM) X(SIGCHLD)  \
  X(SIGCONT) X(SIGSTOP) X(SIGTSTP) X(SIGTTIN) X(SIGTTOU) X(SIGURG) X(SIGXCPU) X(SIGXFSZ)   \
  X(SIGVTALRM) X(SIGPROF) X(SIGWINCH) X(SIGIO) X(SIGSYS)

const char *pc_signal_name(int sig)
{
  switch (sig) {
#define PC_SIGNAL_CASE(s) \
  case s:                 \
    return #s;
    PC_SIGNALS(PC_SIGNAL_CASE)
#undef PC_SIGNAL_CASE
  default:
    break;
  }
  static char buf[16];
  snprintf(buf, sizeof buf, "SIG%d", sig);
  return buf;
}

/* ============================================================= actions */

static const char *const exec_keys[] = {"command", "env", "cwd", "stdin", "output"};

/* `output:`: what becomes of the program's output lines in the log. */
enum output_mode { OUTPUT_LOG, OUTPUT_QUIET, OUTPUT_ON_FAILURE };
static const char *const output_modes[] = {"log", "quiet", "on_failure"};

static int output_mode_of(const char *s)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(output_modes); i++)
    if (strcmp(s, output_modes[i]) == 0)
      return (int)i;
  return -1;
}

/* "a list", "an integer": for messages. */
static const char *article(const struct pc_node *n)
{
  return strchr("aeiou", pc_node_kind_name(n)[0]) ? "an" : "a";
}

/* The scalar is exactly one ${{ }} (its type is known only when it runs). */
static bool is_single_expr(const struct pc_tmpl *t)
{
  return t && t->kind == PC_T_EXPR;
}

static int check_argv_node(struct pc_load_ctx *c, const struct pc_node *n,
                           const struct pc_tmpl *t, const char *what)
{
  if (n->kind == PC_NODE_SCALAR && is_single_expr(t))
    return 0;
  if (n->kind != PC_NODE_SEQ) {
    pc_load_error(c, n,
                  "%s: expected a list of arguments like [\"ls\", \"-l\"], got %s %s; to run a "
                  "command line, use shell:",
                  what, article(n), pc_node_kind_name(n));
    return -1;
  }
  if (n->n == 0) {
    pc_load_error(c, n, "%s: the argument list is empty; it needs at least the program", what);
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *it = n->items[i];
    if (it->kind != PC_NODE_SCALAR || pc_node_scalar_type(it) == PC_SCALAR_NULL) {
      pc_load_error(c, it, "%s: argument %zu must be a string, got %s %s", what, i + 1,
                    article(it), pc_node_kind_name(it));
      bad = -1;
      continue;
    }
    char arg[64];
    snprintf(arg, sizeof arg, "%s: argument %zu", what, i + 1);
    bad |= pc_load_no_nul(c, it, arg, "a program argument");
  }
  if (n->items[0]->kind == PC_NODE_SCALAR && pc_node_scalar_type(n->items[0]) == PC_SCALAR_STR &&
      n->items[0]->len == 0) {
    pc_load_error(c, n->items[0], "%s: the program name is empty", what);
    bad = -1;
  }
  return bad;
}

static int check_env_node(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (n->kind == PC_NODE_SCALAR && is_single_expr(t))
    return 0;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "env: expected a map of NAME: VALUE, got %s %s", article(n),
                  pc_node_kind_name(n));
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    if (k->len == 0 || strchr(k->str, '=') || strlen(k->str) != k->len) {
      pc_load_error(c, k, "env: \"%s\" is not a valid variable name", k->str);
      bad = -1;
    }
    if (v->kind != PC_NODE_SCALAR || pc_node_scalar_type(v) == PC_SCALAR_NULL) {
      pc_load_error(c, v, "env: the value of %s must be a string, got %s %s", k->str,
                    article(v), pc_node_kind_name(v));
      bad = -1;
      continue;
    }
    char *what = pc_asprintf("env: the value of %s", k->str);
    bad |= pc_load_no_nul(c, v, what, "an environment variable");
    free(what);
  }
  return bad;
}

static int check_scalar_node(struct pc_load_ctx *c, const struct pc_node *n, const char *what)
{
  if (n->kind != PC_NODE_SCALAR || pc_node_scalar_type(n) == PC_SCALAR_NULL) {
    pc_load_error(c, n, "%s: expected a string, got %s %s", what, article(n),
                  pc_node_kind_name(n));
    return -1;
  }
  return 0;
}

/* The map form shared by exec and shell: {command, env, cwd, stdin}. */
static int load_map(struct pc_load_ctx *c, const struct pc_node *v, const struct pc_tmpl *t,
                    bool shell)
{
  const char *what = shell ? "shell" : "exec";
  int bad = pc_load_check_keys(c, v, exec_keys, PC_ARRAY_SIZE(exec_keys), what) != 0 ? -1 : 0;
  const struct pc_node *cmd = pc_node_get(v, "command");
  if (!cmd) {
    pc_load_error(c, v, "%s: `command` is required (%s)", what,
                  shell ? "the command line" : "the program and its arguments, as a list");
    bad = -1;
  } else if (shell) {
    bad |= check_scalar_node(c, cmd, "shell.command");
    bad |= pc_load_no_nul(c, cmd, "shell.command", "a command line");
  } else {
    bad |= check_argv_node(c, cmd, pc_tmpl_get(t, "command"), "exec.command");
  }
  const struct pc_node *n;
  if ((n = pc_node_get(v, "env")))
    bad |= check_env_node(c, n, pc_tmpl_get(t, "env"));
  if ((n = pc_node_get(v, "cwd"))) {
    bad |= check_scalar_node(c, n, "cwd");
    bad |= pc_load_no_nul(c, n, "cwd", "a path");
  }
  if ((n = pc_node_get(v, "stdin")) && n->kind != PC_NODE_SCALAR &&
      !is_single_expr(pc_tmpl_get(t, "stdin")))
    bad |= check_scalar_node(c, n, "stdin");
  if ((n = pc_node_get(v, "output")) &&
      (n->kind != PC_NODE_SCALAR || output_mode_of(n->str) < 0)) {
    const char *d = pc_did_you_mean(n->kind == PC_NODE_SCALAR ? n->str : "", output_modes,
                                    PC_ARRAY_SIZE(output_modes));
    pc_load_error(c, n, "%s.output: expected log, quiet or on_failure%s%s%s", what,
                  d ? " (did you mean " : "", d ? d : "", d ? "?)" : "");
    bad = -1;
  }
  return bad;
}

static int exec_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  struct pc_tmpl *t = pc_load_tmpl(c, v);
  if (!t)
    return -1;
  st->params = t;
  if (v->kind == PC_NODE_MAP)
    return load_map(c, v, t, false);
  if (v->kind == PC_NODE_SCALAR && is_single_expr(t))
    return 0; /* a list or a map, checked when it runs */
  return check_argv_node(c, v, t, "exec");
}

static int shell_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  struct pc_tmpl *t = pc_load_tmpl(c, v);
  if (!t)
    return -1;
  st->params = t;
  if (v->kind == PC_NODE_MAP)
    return load_map(c, v, t, true);
  if (v->kind != PC_NODE_SCALAR || pc_node_scalar_type(v) == PC_SCALAR_NULL) {
    pc_load_error(c, v,
                  "shell: expected a command line (a string), got %s %s; to run a program with "
                  "arguments and no shell, use exec:",
                  article(v), pc_node_kind_name(v));
    return -1;
  }
  return pc_load_no_nul(c, v, "shell: the command line", "a command line");
}

/* ------------------------------------------------- evaluated parameters */

struct exec_spec {
  char **argv; /* NULL-terminated */
  size_t argc;
  char **env; /* NULL-terminated "NAME=VALUE", or NULL */
  size_t nenv;
  char *cwd;
  char *stdin_data; /* NULL: none */
  size_t stdin_len;
  enum output_mode output;
};

static void spec_free(struct exec_spec *sp)
{
  for (size_t i = 0; i < sp->argc; i++)
    free(sp->argv[i]);
  free(sp->argv);
  for (size_t i = 0; i < sp->nenv; i++)
    free(sp->env[i]);
  free(sp->env);
  free(sp->cwd);
  free(sp->stdin_data);
}

static bool is_text_type(int type)
{
  return type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN;
}

/* The message for a value text_arg refused, named `what`: it refuses a
 * string only for a NUL byte; anything else is not text. */
static char *refused(lua_State *L, int idx, const char *what, const char *kind,
                     const char *not_text)
{
  if (lua_type(L, idx) == LUA_TSTRING)
    return pc_asprintf("%s contains a NUL byte (\\0), which %s cannot hold", what, kind);
  return pc_asprintf("%s, got %s", not_text, luaL_typename(L, idx));
}

/* Text of a string, number or boolean with no NUL byte; NULL otherwise. */
static char *text_arg(struct pc_lua *h, int idx)
{
  lua_State *L = pc_lua_state(h);
  if (!is_text_type(lua_type(L, idx)))
    return NULL;
  size_t len;
  char *s = pc_lua_to_text(h, idx, &len);
  if (strlen(s) != len) {
    free(s);
    return NULL;
  }
  return s;
}

static char *parse_argv(struct pc_lua *h, int idx, const struct pc_tmpl *t, struct exec_spec *sp,
                        const char *what)
{
  lua_State *L = pc_lua_state(h);
  if (!lua_istable(L, idx))
    return pc_asprintf("%s: expected a list of arguments, got %s", what, luaL_typename(L, idx));
  /* A list written in the file has a known length, which also catches an
   * item whose expression gave nil (a hole, or a shorter table). */
  size_t n = t && t->kind == PC_T_SEQ ? t->u.coll.n : (size_t)lua_rawlen(L, idx);
  if (n == 0)
    return pc_asprintf("%s: the argument list is empty", what);
  sp->argv = pc_xcalloc(n + 1, sizeof *sp->argv);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)(i + 1)); /* item */
    char *s = text_arg(h, -1);
    if (!s) {
      char *arg = pc_asprintf("%s: argument %zu", what, i + 1);
      char *must = pc_asprintf("%s must be a string", arg);
      char *m = refused(L, -1, arg, "a program argument", must);
      free(arg);
      free(must);
      lua_pop(L, 1);
      return m;
    }
    lua_pop(L, 1);
    sp->argv[sp->argc++] = s;
  }
  if (!sp->argv[0][0])
    return pc_asprintf("%s: the program name is empty", what);
  return NULL;
}

static char *parse_env(struct pc_lua *h, int idx, struct exec_spec *sp)
{
  lua_State *L = pc_lua_state(h);
  if (!lua_istable(L, idx))
    return pc_asprintf("env: expected a map of NAME: VALUE, got %s", luaL_typename(L, idx));
  size_t cap = 8;
  sp->env = pc_xcalloc(cap + 1, sizeof *sp->env);
  lua_pushnil(L); /* nil */
  while (lua_next(L, idx) != 0) { /* key, value */
    if (lua_type(L, -2) != LUA_TSTRING) {
      lua_pop(L, 2);
      return pc_xstrdup("env: variable names must be strings");
    }
    const char *name = lua_tostring(L, -2);
    if (!*name || strchr(name, '=') || strlen(name) != lua_rawlen(L, -2)) {
      char *m = pc_asprintf("env: \"%s\" is not a valid variable name", name);
      lua_pop(L, 2);
      return m;
    }
    char *v = text_arg(h, -1);
    if (!v) {
      char *what = pc_asprintf("env: the value of %s", name);
      char *must = pc_asprintf("%s must be a string", what);
      char *m = refused(L, -1, what, "an environment variable", must);
      free(what);
      free(must);
      lua_pop(L, 2);
      return m;
    }
    if (sp->nenv == cap) {
      cap *= 2;
      sp->env = pc_xrealloc(sp->env, (cap + 1) * sizeof *sp->env);
    }
    sp->env[sp->nenv++] = pc_asprintf("%s=%s", name, v);
    sp->env[sp->nenv] = NULL;
    free(v);
    lua_pop(L, 1); /* key */
  }
  return NULL;
}

/* Reads the evaluated params at `idx` into `sp`. Returns NULL or a message. */
static char *parse_params(struct pc_lua *h, int idx, const struct pc_tmpl *t, bool shell,
                          struct exec_spec *sp)
{
  lua_State *L = pc_lua_state(h);
  const char *what = shell ? "shell" : "exec";
  bool is_map = false;
  if (lua_istable(L, idx)) {
    is_map = lua_getfield(L, idx, "command") != LUA_TNIL; /* command */
    lua_pop(L, 1);
  }
  if (!is_map) {
    if (shell) {
      char *cmd = text_arg(h, idx);
      if (!cmd)
        return refused(L, idx, "shell: the command line", "a command line",
                       "shell: expected a command line");
      sp->argv = pc_xcalloc(4, sizeof *sp->argv);
      sp->argv[0] = pc_xstrdup("/bin/sh");
      sp->argv[1] = pc_xstrdup("-c");
      sp->argv[2] = cmd;
      sp->argc = 3;
      return NULL;
    }
    return parse_argv(h, idx, t, sp, what);
  }
  /* The map form; its keys are checked again because an expression made it. */
  lua_pushnil(L); /* nil */
  while (lua_next(L, idx) != 0) { /* key, value */
    lua_pop(L, 1);                /* key */
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    bool known = false;
    for (size_t i = 0; i < PC_ARRAY_SIZE(exec_keys); i++)
      known = known || strcmp(k, exec_keys[i]) == 0;
    if (!known) {
      /* Not luaL_tolstring: a key's __tostring is plugin code. */
      char *m = pc_asprintf("%s: unknown key \"%s\" (expected command, env, cwd or stdin)",
                            what, lua_type(L, -1) == LUA_TSTRING ? k : luaL_typename(L, -1));
      lua_pop(L, 1);
      return m;
    }
  }
  char *err = NULL;
  lua_getfield(L, idx, "command"); /* command */
  int top = lua_gettop(L);
  if (shell) {
    char *cmd = text_arg(h, top);
    if (!cmd) {
      err = refused(L, top, "shell.command", "a command line",
                    "shell: command must be a command line");
    } else {
      sp->argv = pc_xcalloc(4, sizeof *sp->argv);
      sp->argv[0] = pc_xstrdup("/bin/sh");
      sp->argv[1] = pc_xstrdup("-c");
      sp->argv[2] = cmd;
      sp->argc = 3;
    }
  } else {
    err = parse_argv(h, top, pc_tmpl_get(t, "command"), sp, "exec.command");
  }
  lua_pop(L, 1);
  if (err)
    return err;
  if (lua_getfield(L, idx, "env") != LUA_TNIL) /* env */
    err = parse_env(h, lua_gettop(L), sp);
  lua_pop(L, 1);
  if (err)
    return err;
  if (lua_getfield(L, idx, "cwd") != LUA_TNIL) { /* cwd */
    sp->cwd = text_arg(h, -1);
    if (!sp->cwd)
      err = refused(L, -1, "cwd", "a path", "cwd: expected a directory");
    else if (!*sp->cwd)
      err = pc_xstrdup("cwd: expected a directory, got an empty string");
  }
  lua_pop(L, 1);
  if (err)
    return err;
  if (lua_getfield(L, idx, "stdin") != LUA_TNIL) /* stdin */
    sp->stdin_data = pc_lua_to_text(h, -1, &sp->stdin_len);
  lua_pop(L, 1);
  sp->output = OUTPUT_LOG;
  if (lua_getfield(L, idx, "output") == LUA_TSTRING) { /* output (a constant, checked at load) */
    int m = output_mode_of(lua_tostring(L, -1));
    if (m >= 0)
      sp->output = (enum output_mode)m;
  }
  lua_pop(L, 1);
  return NULL;
}

/* ------------------------------------------------------------ results */

/* The result's fields, in the shape pacer.exec returns too. */
static void set_result(lua_State *L, int ref, const struct pc_proc_result *r, bool finished)
{
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref); /* result */
  pc_exec_result_fill(L, -1, r, finished);
  lua_pop(L, 1);
}

static void on_exec_done(void *data, const struct pc_proc_result *r)
{
  struct pc_attempt *a = data;
  a->data = NULL;
  set_result(pc_lua_state(pc_run_lua(a->run)), a->result_ref, r, true);
  a->exit_code = r->exit_code;
  pc_attempt_done(a, PC_FAIL_NONE, NULL);
}

/* argv as one line for the debug log, quoting what a shell would split.
 * Each argument is redacted before it is quoted: quoting first would split
 * a secret holding a ' into pieces ('\'') that the redaction of the whole
 * log line no longer recognises. */
static void describe_argv(struct pc_buf *b, char *const *argv)
{
  for (size_t i = 0; argv[i]; i++) {
    char *red = pc_redact(argv[i], strlen(argv[i]), NULL);
    const char *s = red;
    bool plain = *s != '\0';
    for (const char *q = s; *q && plain; q++)
      plain = strchr(" \t\n'\"\\$`*?[]{}()<>|&;#~", *q) == NULL;
    if (i)
      pc_buf_puts(b, " ");
    if (plain) {
      pc_buf_puts(b, s);
      free(red);
      continue;
    }
    pc_buf_puts(b, "'");
    for (const char *q = s; *q; q++) {
      if (*q == '\'')
        pc_buf_puts(b, "'\\''");
      else
        pc_buf_append(b, q, 1);
    }
    pc_buf_puts(b, "'");
    free(red);
  }
}

static void start(struct pc_attempt *a, bool shell)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  struct exec_spec sp;
  memset(&sp, 0, sizeof sp);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
  char *err = parse_params(h, lua_gettop(L), a->step->params, shell, &sp);
  lua_pop(L, 1);
  if (!err && sp.cwd) {
    struct stat sb;
    if (stat(sp.cwd, &sb) != 0)
      err = pc_asprintf("cwd \"%s\": %s", sp.cwd, uv_strerror(-errno));
    else if (!S_ISDIR(sb.st_mode))
      err = pc_asprintf("cwd \"%s\": not a directory", sp.cwd);
  }
  if (err) {
    spec_free(&sp);
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  char *label = pc_attempt_label(a);
  struct pc_proc_opts o = {
      .argv = (const char *const *)sp.argv,
      .env = (const char *const *)sp.env,
      .cwd = sp.cwd,
      .stdin_data = sp.stdin_data,
      .stdin_len = sp.stdin_len,
      .label = label,
      .quiet = sp.output != OUTPUT_LOG,
  };
  struct pc_proc *p = NULL;
  int rc = pc_proc_spawn(pc_exec_procs(a->run), &o, on_exec_done, a, &p);
  if (rc) {
    char *m = pc_asprintf("cannot start \"%s\": %s", sp.argv[0], uv_strerror(rc));
    pc_attempt_done(a, PC_FAIL_ERROR, m);
    free(m);
  } else {
    a->data = p;
    if (pc_log_enabled(PC_LOG_DEBUG)) {
      struct pc_buf b;
      pc_buf_init(&b, 8192);
      describe_argv(&b, sp.argv);
      pc_log(PC_LOG_DEBUG, label, "pid %d: %s", p->pid, b.data);
      pc_buf_free(&b);
    }
  }
  free(label);
  spec_free(&sp);
}

static void exec_start(struct pc_attempt *a)
{
  start(a, false);
}

static void shell_start(struct pc_attempt *a)
{
  start(a, true);
}

static void exec_cancel(struct pc_attempt *a)
{
  struct pc_proc *p = a->data;
  if (!p)
    return;
  a->data = NULL;
  /* Keep what it printed so far: steps.ID.stdout after a timeout. */
  if (a->result_ref != LUA_NOREF) {
    struct pc_proc_result r;
    pc_proc_peek(p, &r);
    set_result(pc_lua_state(pc_run_lua(a->run)), a->result_ref, &r, false);
  }
  pc_proc_cancel(p);
}

/* Appends the last ~200 bytes of `text` on one line. The whole text is
 * redacted first: cutting or joining lines first would leave a secret split
 * at the cut, or split over lines now joined, that no longer matches. */
static void append_tail(struct pc_buf *b, const char *text, size_t text_len)
{
  size_t len;
  char *red = pc_redact(text, text_len, &len);
  const char *s = red;
  while (len > 0 && strchr(" \t\r\n", s[len - 1]))
    len--;
  size_t from = len > 200 ? len - 200 : 0;
  while (from > 0 && from < len && ((unsigned char)s[from] & 0xC0) == 0x80)
    from++; /* start on a UTF-8 boundary */
  if (from > 0)
    pc_buf_puts(b, "...");
  bool sep = false;
  for (size_t i = from; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\n') {
      sep = true;
      continue;
    }
    if (sep) {
      pc_buf_puts(b, " | ");
      sep = false;
    }
    if (ch == '\r')
      continue;
    char c = ch == '\t' ? ' ' : (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    pc_buf_append(b, &c, 1);
  }
  free(red);
}

/* output: on_failure -- the last ON_FAILURE_LINES lines of each stream,
 * redacted, one per line under the message ("  stdout | ..."). */
#define ON_FAILURE_LINES 20
static void append_lines(struct pc_buf *b, const char *name, const char *text, size_t text_len)
{
  size_t len;
  char *red = pc_redact(text, text_len, &len);
  while (len > 0 && strchr(" \t\r\n", red[len - 1]))
    len--;
  size_t from = len, lines = 0;
  while (from > 0 && lines < ON_FAILURE_LINES) {
    from--;
    if (red[from] == '\n' && ++lines == ON_FAILURE_LINES) {
      from++;
      break;
    }
  }
  if (from > 0)
    pc_buf_printf(b, "\n  %s | ...", name);
  for (size_t i = from; i < len;) {
    const char *nl = memchr(red + i, '\n', len - i);
    size_t n = nl ? (size_t)(nl - (red + i)) : len - i;
    if (n > 0 && red[i + n - 1] == '\r')
      n--;
    pc_buf_printf(b, "\n  %s | %.*s", name, (int)(n > PC_EXEC_LINE_MAX ? PC_EXEC_LINE_MAX : n),
                  red + i);
    i += (nl ? (size_t)(nl - (red + i)) + 1 : len - i);
  }
  free(red);
}

static void exec_describe(struct pc_attempt *a, struct pc_buf *out)
{
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  if (a->result_ref == LUA_NOREF)
    return;
  bool on_failure = false;
  if (a->params_ref != LUA_NOREF) { /* still held while the engine describes */
    int top = lua_gettop(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
    if (lua_type(L, -1) == LUA_TTABLE && lua_getfield(L, -1, "output") == LUA_TSTRING)
      on_failure = strcmp(lua_tostring(L, -1), "on_failure") == 0;
    lua_settop(L, top);
  }
  if (on_failure) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
    if (lua_getfield(L, -1, "signal") == LUA_TSTRING)
      pc_buf_printf(out, "; killed by %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    static const char *const both[] = {"stdout", "stderr"};
    for (size_t i = 0; i < 2; i++) {
      size_t len = 0;
      if (lua_getfield(L, -1, both[i]) == LUA_TSTRING) {
        const char *s = lua_tolstring(L, -1, &len);
        append_lines(out, both[i], s, len);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  if (lua_getfield(L, -1, "signal") == LUA_TSTRING) /* result, signal */
    pc_buf_printf(out, "; killed by %s", lua_tostring(L, -1));
  lua_pop(L, 1);
  static const char *const fields[] = {"stderr", "stdout"};
  for (size_t i = 0; i < 2; i++) {
    size_t len = 0;
    const char *s = NULL;
    if (lua_getfield(L, -1, fields[i]) == LUA_TSTRING) /* result, text */
      s = lua_tolstring(L, -1, &len);
    size_t n = len;
    while (s && n > 0 && strchr(" \t\r\n", s[n - 1]))
      n--;
    if (n > 0) {
      pc_buf_printf(out, "; %s: ", fields[i]);
      append_tail(out, s, len);
      lua_pop(L, 1);
      break;
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

#define PC_ON_DEFAULT_LOCAL (PC_ON_ERROR | PC_ON_TIMEOUT)

const struct pc_action_ops pc_exec_ops = {
    .action = PC_ACT_EXEC,
    .key = "exec",
    .load = exec_load,
    .start = exec_start,
    .cancel = exec_cancel,
    .describe = exec_describe,
    .run_cleanup = exec_run_cleanup, /* the registry is shared with shell */
    .kill_now = exec_kill_now,
    .default_on = PC_ON_DEFAULT_LOCAL,
    .has_exit_code = true,
    .fills_result = true,
};

const struct pc_action_ops pc_shell_ops = {
    .action = PC_ACT_SHELL,
    .key = "shell",
    .load = shell_load,
    .start = shell_start,
    .cancel = exec_cancel,
    .describe = exec_describe,
    .default_on = PC_ON_DEFAULT_LOCAL,
    .has_exit_code = true,
    .fills_result = true,
};
