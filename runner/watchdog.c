/* watchdog.c: see watchdog.h. The loop bumps an atomic counter from a
 * uv_prepare handle (unreferenced: it never keeps the loop alive); signal
 * handlers chained in front of libuv's count SIGINT/SIGTERM; the thread
 * wakes every 200 ms and compares. Only async-signal-safe and lock-free
 * operations happen in the handlers and in the exit path. */
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "log.h"
#include "util.h"

/* How long the loop must have stood still before the watchdog acts. */
#define STALL_MS 1000.0
/* Grace after the deadline, and after a first signal, before exiting. */
#define GRACE_MS 5000.0
#define TICK_MS 200

struct pc_watchdog {
  uv_prepare_t beat;
  atomic_ulong heartbeat;
  double deadline_ms;
  pc_watchdog_kill_fn kill;
  void *data;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop; /* under mu */
};

/* Signals are counted process-wide: there is one watchdog per process. */
static atomic_int sig_count;
static atomic_int first_sig;
static atomic_long first_sig_ms; /* pc_mono_ms() of the first signal, as integer */
static struct sigaction chained[2]; /* libuv's handlers for SIGINT, SIGTERM */

static void on_beat(uv_prepare_t *h)
{
  struct pc_watchdog *w = PC_CONTAINER_OF(h, struct pc_watchdog, beat);
  atomic_fetch_add_explicit(&w->heartbeat, 1, memory_order_relaxed);
}

static void counting_handler(int sig)
{
  int saved = errno;
  if (atomic_fetch_add(&sig_count, 1) == 0) {
    atomic_store(&first_sig, sig);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    atomic_store(&first_sig_ms, (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  }
  const struct sigaction *next = &chained[sig == SIGINT ? 0 : 1];
  if (next->sa_handler != SIG_DFL && next->sa_handler != SIG_IGN)
    next->sa_handler(sig);
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

static void *watch(void *arg)
{
  struct pc_watchdog *w = arg;
  unsigned long last = atomic_load(&w->heartbeat);
  double still_since = mono_ms();
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
    if (beat != last) {
      last = beat;
      still_since = now;
      continue;
    }
    if (now - still_since < STALL_MS)
      continue;
    int sigs = atomic_load(&sig_count);
    int code = -1;
    const char *why = NULL;
    if (sigs >= 2 || (sigs == 1 && now - (double)atomic_load(&first_sig_ms) > GRACE_MS)) {
      int sig = atomic_load(&first_sig);
      code = sig == SIGINT ? PC_EXIT_SIGINT : PC_EXIT_SIGTERM;
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
  w->deadline_ms = deadline_ms;
  w->kill = kill;
  w->data = data;
  atomic_init(&w->heartbeat, 0);
  atomic_store(&sig_count, 0);
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
  chain(SIGINT, &chained[0]);
  chain(SIGTERM, &chained[1]);
  return w;
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
