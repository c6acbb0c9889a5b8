/* clockstep.c: an LD_PRELOAD shim for tests that steps the wall clock.
 *
 * After PACER_TEST_CLOCK_STEP_AFTER_MS milliseconds of the process's life
 * (default 150, measured on the monotonic clock), every wall-clock reading
 * (clock_gettime of CLOCK_REALTIME and its coarse variant, gettimeofday,
 * time) is shifted by PACER_TEST_CLOCK_STEP_S seconds (default -3600): what
 * an NTP step or an administrator's `date -s` does to a running process.
 * The monotonic clock is left alone. Nothing of this is linked into pacer:
 * the release binary pays nothing for the test. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);

static clock_gettime_fn real_clock_gettime;
static struct timespec born;
static double after_ms = 150;
static long step_s = -3600;

__attribute__((constructor)) static void init(void)
{
  real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
  real_clock_gettime(CLOCK_MONOTONIC, &born);
  const char *a = getenv("PACER_TEST_CLOCK_STEP_AFTER_MS");
  const char *s = getenv("PACER_TEST_CLOCK_STEP_S");
  if (a && *a)
    after_ms = atof(a);
  if (s && *s)
    step_s = atol(s);
}

static long shift(void)
{
  struct timespec now;
  real_clock_gettime(CLOCK_MONOTONIC, &now);
  double ms = (double)(now.tv_sec - born.tv_sec) * 1e3 + (double)(now.tv_nsec - born.tv_nsec) / 1e6;
  return ms >= after_ms ? step_s : 0;
}

int clock_gettime(clockid_t clk, struct timespec *ts)
{
  if (!real_clock_gettime)
    init();
  int rc = real_clock_gettime(clk, ts);
  if (rc == 0 && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
    ts->tv_sec += shift();
  return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
  struct timespec ts;
  (void)tz;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
    return -1;
  tv->tv_sec = ts.tv_sec;
  tv->tv_usec = ts.tv_nsec / 1000;
  return 0;
}

time_t time(time_t *t)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (t)
    *t = ts.tv_sec;
  return ts.tv_sec;
}
