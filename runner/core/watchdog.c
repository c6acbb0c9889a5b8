/* watchdog.c: see watchdog.h. The loop bumps an atomic counter from a
 * uv_prepare handle every iteration (unreferenced, so it never keeps the
 * loop alive); libuv's idle-time metric (uv_metrics_idle_time, thread-safe)
 * says how long the loop has spent waiting in epoll_wait; signal handlers
 * chained in front of libuv's count SIGINT/SIGTERM/SIGHUP; the thread wakes
 * every 200 ms and compares. Only async-signal-safe and lock-free
 * operations happen in the handlers and in the exit path.
 *
 * What is NOT a blocked loop:
 * - a loop waiting for events (a long `sleep` in `finally` after the
 *   deadline): it is idle, not stuck, and will turn as soon as a timer or
 *   a signal is due. Its idle time grows while it waits; a callback that
 *   blocks (even one run from inside the poll phase, as libcurl's socket
 *   callbacks are) stops both the heartbeat and the idle time;
 * - a stopped process (SIGSTOP, Ctrl-Z, a cgroup freezer, `docker pause`):
 *   the watchdog thread is stopped too, so stillness is counted in the
 *   thread's own ticks, not in clock time; after SIGCONT the loop gets the
 *   whole STALL_MS again to show life. */
#include "core/watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/outcome.h"
#include "base/log.h"
#include "base/signal.h"
#include "base/util.h"

/* How long the loop must have stood still (outside its wait for events)
 * before the watchdog acts, counted in watchdog ticks (see above). */
#define STALL_MS 1000
/* Grace after the deadline, and after a first signal, before exiting. */
#define GRACE_MS 5000.0
#define TICK_MS 200

struct pc_watchdog {
  uv_prepare_t beat;
  uv_loop_t *loop; /* borrowed: read by the thread through uv_metrics_idle_time only */
  atomic_ulong heartbeat;
  double deadline_ms; /* under mu once the thread runs (pc_watchdog_set_deadline) */
  pc_watchdog_kill_fn kill;
  void *data;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop; /* under mu */
};

/* Signals are counted process-wide (base/signal.h: the Lua guard reads
 * the count too): there is one watchdog per process. */
static atomic_int first_sig;
static atomic_long first_sig_ms; /* pc_mono_ms() of the first signal, as integer */
/* libuv's handlers for the signals the run watches, chained behind ours. */
static const int watched[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction chained[PC_ARRAY_SIZE(watched)];

static void on_beat(uv_prepare_t *h)
{
  struct pc_watchdog *w = PC_CONTAINER_OF(h, struct pc_watchdog, beat);
  atomic_fetch_add_explicit(&w->heartbeat, 1, memory_order_relaxed);
}

static void counting_handler(int sig)
{
  int saved = errno;
  if (pc_signal_note() == 0) {
    atomic_store(&first_sig, sig);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    atomic_store(&first_sig_ms, (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  }
  for (size_t i = 0; i < PC_ARRAY_SIZE(watched); i++) {
    const struct sigaction *next = &chained[i];
    if (watched[i] == sig && next->sa_handler != SIG_DFL && next->sa_handler != SIG_IGN)
      next->sa_handler(sig);
  }
  errno = saved;
}

static void chain(int sig, struct sigaction *old)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigaction(sig, NULL, old);
  sa.sa_handler = counting_handler;
  sa.sa_flags = old->sa_flags & ~(int)SA_SIGINFO;
  sa.sa_mask = old->sa_mask;
  sigaction(sig, &sa, NULL);
}

static double mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static void say(const char *msg)
{
  ssize_t n = write(STDERR_FILENO, msg, strlen(msg));
  (void)n;
}

/* The exit code a signal asks for (SPEC §1). */
static int signal_exit_code(int sig)
{
  return sig == SIGINT ? PC_EXIT_SIGINT : sig == SIGHUP ? PC_EXIT_SIGHUP : PC_EXIT_SIGTERM;
}

static void *watch(void *arg)
{
  struct pc_watchdog *w = arg;
  unsigned long last = atomic_load(&w->heartbeat);
  uint64_t last_idle = uv_metrics_idle_time(w->loop);
  int still_ticks = 0; /* ticks of this thread that saw the loop busy and not turning */
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += TICK_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&w->cv, &w->mu, &until);
    if (w->stop)
      break;
    double now = mono_ms();
    unsigned long beat = atomic_load(&w->heartbeat);
    uint64_t idle = uv_metrics_idle_time(w->loop);
    if (beat != last || idle != last_idle) {
      last = beat;
      last_idle = idle;
      still_ticks = 0;
      continue;
    }
    /* Ticks, not clock time: a process stopped for an hour and resumed has
     * seen one tick, and its loop gets STALL_MS of its own to turn. */
    if (++still_ticks * TICK_MS < STALL_MS)
      continue;
    int sigs = (int)pc_signal_count();
    int code = -1;
    const char *why = NULL;
    if (sigs >= 2 || (sigs == 1 && now - (double)atomic_load(&first_sig_ms) > GRACE_MS)) {
      code = signal_exit_code(atomic_load(&first_sig));
      why = "pacer: the event loop is blocked (a step is stuck inside one call) and a signal "
            "could not be handled; exiting\n";
    } else if (w->deadline_ms >= 0 && now > w->deadline_ms + GRACE_MS) {
      code = PC_EXIT_DEADLINE;
      why = "pacer: the event loop is blocked (a step is stuck inside one call) past the "
            "workflow deadline; exiting\n";
    }
    if (code >= 0) {
      say(why);
      if (w->kill)
        w->kill(w->data);
      _exit(code);
    }
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

struct pc_watchdog *pc_watchdog_start(uv_loop_t *loop, double deadline_ms,
                                      pc_watchdog_kill_fn kill, void *data)
{
  struct pc_watchdog *w = pc_xcalloc(1, sizeof *w);
  w->loop = loop;
  /* Time spent waiting for events is idle, not stuck: have libuv count it
   * (a clock reading around each epoll_wait). */
  uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
  w->deadline_ms = deadline_ms;
  w->kill = kill;
  w->data = data;
  atomic_init(&w->heartbeat, 0);
  pc_signal_reset();
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  /* The thread must not take the signals: libuv's handler writes to the
   * loop's pipe from whichever thread runs it, and so does ours. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  int err = pthread_create(&w->thread, NULL, watch, w);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err) {
    pc_log(PC_LOG_WARN, NULL, "cannot start the watchdog thread: %s", strerror(err));
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    return NULL;
  }
  uv_prepare_init(loop, &w->beat);
  uv_prepare_start(&w->beat, on_beat);
  uv_unref((uv_handle_t *)&w->beat);
  /* Only the signals the run handles (a SIGHUP ignored under nohup is not
   * watched): a handler of ours on an ignored signal would un-ignore it. */
  for (size_t i = 0; i < PC_ARRAY_SIZE(watched); i++) {
    struct sigaction cur;
    if (sigaction(watched[i], NULL, &cur) == 0 && cur.sa_handler != SIG_DFL &&
        cur.sa_handler != SIG_IGN)
      chain(watched[i], &chained[i]);
  }
  return w;
}

void pc_watchdog_set_deadline(struct pc_watchdog *w, double deadline_ms)
{
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->deadline_ms = deadline_ms;
  pthread_mutex_unlock(&w->mu);
}

static void on_beat_closed(uv_handle_t *h)
{
  free(PC_CONTAINER_OF(h, struct pc_watchdog, beat));
}

void pc_watchdog_stop(struct pc_watchdog *w)
{
  if (!w)
    return;
  pthread_mutex_lock(&w->mu);
  w->stop = true;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->thread, NULL);
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  uv_close((uv_handle_t *)&w->beat, on_beat_closed);
}
