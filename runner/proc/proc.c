/* proc.c: the child-process runner (proc.h) behind the `exec` and `shell`
 * actions and `pacer.exec`.
 *
 * A pc_proc embeds every libuv handle it needs: the process, a pipe per
 * output stream, an optional stdin pipe and two timers (the output drain
 * after exit, and the SIGTERM -> SIGKILL grace after cancel). It reports
 * once, when the process has exited and both output pipes reached EOF (or
 * PC_PROC_DRAIN_MS after the exit, because a background grandchild may hold
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
 * Every pc_proc of a run is listed in a run-wide registry (the run's
 * process set, pc_proc_set_of). A step whose program exits normally but
 * leaves background processes in its group (`server &`) does not wait for
 * them; like GitHub Actions, pacer lets them run until the end of the run,
 * and the set's teardown sends those groups SIGTERM and, after the grace
 * period, SIGKILL. So no child outlives a run that ends normally, by a
 * deadline or by a signal. */
#include "proc/proc.h"

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
#include <sys/syscall.h>
#include <stdatomic.h>
#include <unistd.h>

#include <uv.h>

#include "base/log.h"
#include "base/queue.h"
#include "base/redact.h"
#include "base/util.h"
#include "model/action.h"

extern char **environ;

/* ============================================================= registry */

/* The process groups that kill_now may have to SIGKILL, published for
 * other threads: kill_now runs on the watchdog's thread while the loop's
 * thread may be anywhere, even inside this file. The loop's thread is the
 * only writer: it fills a slot (0 is free) when a group starts, clears it
 * when the group is known gone, and links a new chunk when every slot is
 * taken (chunks are freed with the set). Readers see each slot atomically
 * and follow `next` with acquire order, so they never see a chunk
 * half-made. A group id read just after it was cleared is harmless: it
 * was this run's group a moment before, and is signalled as pacer exits
 * anyway. */
#define GROUPS_CHUNK 64
struct groups_chunk {
  atomic_int pgid[GROUPS_CHUNK];
  _Atomic(struct groups_chunk *) next;
};

struct lingering {
  int pgid;
  char *label;        /* owned; may be NULL */
  bool killed;        /* got SIGKILL: waiting for it to be gone */
  atomic_int *group;  /* its published slot */
};

/* The processes of one loop (the run's set is a run hook: pc_proc_set_of),
 * and the groups they left behind. */
struct pc_proc_set {
  uv_loop_t *loop;        /* borrowed */
  struct pc_run *run;     /* borrowed: the run whose state this is; NULL for tests' sets */
  struct groups_chunk groups; /* the published group ids (the first chunk) */
  struct pc_queue live;   /* of struct pc_proc: every one not yet freed, newest first */
  struct lingering *linger; /* groups left behind by finished steps */
  size_t nlinger;
  uv_timer_t reap;        /* teardown: waits for lingering groups to go */
  bool reap_active;       /* `reap` is initialised and not closed yet */
  bool tearing_down;      /* run_cleanup was called */
  double reap_deadline;   /* monotonic ms: SIGKILL what is left */
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
  char line[PC_PROC_LINE_MAX + 1];
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
  struct pc_queue node;        /* in rs->live */
  atomic_int *group;           /* its published slot while the group may live, or NULL */
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
  pc_queue_init(&rs->live);
  return rs;
}

/* Publishes `pgid` in a free slot (see struct groups_chunk). */
static atomic_int *group_publish(struct pc_proc_set *rs, int pgid)
{
  struct groups_chunk *ch = &rs->groups;
  for (;;) {
    for (size_t i = 0; i < GROUPS_CHUNK; i++) {
      if (atomic_load_explicit(&ch->pgid[i], memory_order_relaxed) == 0) {
        atomic_store_explicit(&ch->pgid[i], pgid, memory_order_release);
        return &ch->pgid[i];
      }
    }
    struct groups_chunk *next = atomic_load_explicit(&ch->next, memory_order_relaxed);
    if (!next) {
      next = pc_xcalloc(1, sizeof *next); /* zeroed: every slot free, no next */
      atomic_store_explicit(&ch->next, next, memory_order_release);
    }
    ch = next;
  }
}

static void group_unpublish(atomic_int **slot)
{
  if (*slot)
    atomic_store_explicit(*slot, 0, memory_order_release);
  *slot = NULL;
}

static void groups_free(struct pc_proc_set *rs)
{
  struct groups_chunk *ch = atomic_load_explicit(&rs->groups.next, memory_order_relaxed);
  while (ch) {
    struct groups_chunk *next = atomic_load_explicit(&ch->next, memory_order_relaxed);
    free(ch);
    ch = next;
  }
}

/* A second signal, or the watchdog: pacer is about to _exit, and its
 * children live in their own sessions where the terminal's Ctrl-C does not
 * reach them. SIGKILL every published group now, running or left behind.
 * Any thread (see struct groups_chunk): atomics and kill() only. */
static void proc_set_kill_now(void *state)
{
  struct pc_proc_set *rs = state;
  for (struct groups_chunk *ch = &rs->groups; ch;
       ch = atomic_load_explicit(&ch->next, memory_order_acquire)) {
    for (size_t i = 0; i < GROUPS_CHUNK; i++) {
      int pgid = atomic_load_explicit(&ch->pgid[i], memory_order_acquire);
      if (pgid > 0)
        kill(-pgid, SIGKILL);
    }
  }
}

static void *proc_set_create(struct pc_run *run)
{
  struct pc_proc_set *rs = pc_proc_set_new(pc_run_loop(run));
  rs->run = run;
  return rs;
}

/* After the run's steps are over: no process may outlive the run. The set
 * stays the run's (a signal meanwhile still reaches its groups) until it
 * is freed. */
static void proc_set_cleanup(struct pc_run *run, void *state)
{
  pc_proc_set_close(state);
}

const struct pc_run_hooks pc_proc_run_hooks = {
    .name = "the process set",
    .create = proc_set_create,
    .cleanup = proc_set_cleanup,
    .kill_now = proc_set_kill_now,
};

struct pc_proc_set *pc_proc_set_of(struct pc_run *run)
{
  return pc_run_state(run, &pc_proc_run_hooks, true);
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
  group_unpublish(&p->group);
  pc_queue_remove(&p->node);
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

static void linger_add(struct pc_proc_set *rs, struct pc_proc *p)
{
  pc_log(PC_LOG_DEBUG, p->label,
         "background processes are still running in group %d; they are stopped when the "
         "run ends",
         p->pid);
  rs->linger = pc_xrealloc(rs->linger, (rs->nlinger + 1) * sizeof *rs->linger);
  rs->linger[rs->nlinger].pgid = p->pid;
  rs->linger[rs->nlinger].label = p->label ? pc_xstrdup(p->label) : NULL;
  rs->linger[rs->nlinger].killed = false;
  rs->linger[rs->nlinger].group = p->group; /* the group's slot goes with it */
  p->group = NULL;
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
   * killed group is looked at every PC_PROC_KILL_POLL_MS until it is gone
   * (a SIGKILLed process is not dead before it has been scheduled, and on a
   * loaded machine pacer could otherwise exit while its programs still
   * existed), for at most PC_PROC_KILL_WAIT_MS. */
  if (!group_alive(p->pid)) {
    proc_close_all(p);
  } else if (p->kill_sent) {
    if (pc_mono_ms() >= p->kill_deadline) {
      pc_log(PC_LOG_WARN, p->label, "process group %d is still there %d ms after SIGKILL; "
             "not waiting for it any longer", p->pid, PC_PROC_KILL_WAIT_MS);
      proc_close_all(p);
    } else {
      uv_timer_start(&p->grace, on_grace_over, PC_PROC_KILL_POLL_MS, 0);
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

/* Cuts redacted output into log lines (and pieces of PC_PROC_LINE_MAX). */
static void feed_lines(struct stream *s, const char *d, size_t n)
{
  while (n > 0) {
    const char *nl = memchr(d, '\n', n);
    size_t len = nl ? (size_t)(nl - d) : n;
    size_t room = PC_PROC_LINE_MAX - s->line_len;
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
    } else if (s->line_len == PC_PROC_LINE_MAX) {
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
    uv_timer_start(&p->drain, on_drain_timeout, PC_PROC_DRAIN_MS, 0);
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
             PC_PROC_KILL_GRACE_MS);
      signal_group(p, SIGKILL);
    }
    p->kill_sent = true;
    p->kill_deadline = pc_mono_ms() + PC_PROC_KILL_WAIT_MS;
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
  size_t max = o->max_output ? o->max_output : PC_PROC_MAX_OUTPUT;
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
  pc_queue_insert_head(&rs->live, &p->node);

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
  p->group = group_publish(rs, p->pid);
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
  uv_timer_start(&p->grace, on_grace_over, PC_PROC_KILL_GRACE_MS, 0);
  proc_check(p);
}

/* ------------------------------------------------------------ teardown */

static void rs_maybe_free(struct pc_proc_set *rs)
{
  if (!rs->tearing_down || !pc_queue_empty(&rs->live) || rs->reap_active)
    return;
  if (rs->run)
    pc_run_state_release(rs->run, &pc_proc_run_hooks);
  for (size_t i = 0; i < rs->nlinger; i++) {
    group_unpublish(&rs->linger[i].group);
    free(rs->linger[i].label);
  }
  free(rs->linger);
  groups_free(rs);
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
             "not waiting for it any longer", l->pgid, PC_PROC_KILL_WAIT_MS);
    }
    group_unpublish(&l->group);
    free(l->label);
  }
  rs->nlinger = k;
}

static void on_reap_tick(uv_timer_t *t)
{
  struct pc_proc_set *rs = PC_CONTAINER_OF(t, struct pc_proc_set, reap);
  double now = pc_mono_ms();
  linger_sweep(rs, now >= rs->reap_deadline, now >= rs->reap_deadline + PC_PROC_KILL_WAIT_MS);
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
  struct pc_queue *q, *next;
  pc_queue_foreach_safe(q, next, &rs->live) {
    struct pc_proc *p = pc_queue_data(q, struct pc_proc, node);
    if (p->finishing || !p->spawned)
      continue;
    p->cancelled = true;
    p->cb = NULL;
    signal_group(p, SIGKILL);
    p->kill_sent = true;
    p->kill_deadline = pc_mono_ms() + PC_PROC_KILL_WAIT_MS;
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
    rs->reap_deadline = pc_mono_ms() + PC_PROC_KILL_GRACE_MS;
    uv_timer_start(&rs->reap, on_reap_tick, 20, 20);
  }
  rs_maybe_free(rs);
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
