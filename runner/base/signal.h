/* signal.h: how many of the signals that stop a run (SIGINT, SIGTERM,
 * SIGHUP) have arrived, counted by the run's signal handler (the
 * watchdog's, core/watchdog.c, which chains libuv's) and readable from
 * anywhere, including code that runs while the loop cannot turn: the Lua
 * guard's count hook reads it to let a CPU-bound step yield to the loop so
 * the signal is handled (script/host.c). Every function here is lock-free
 * and async-signal-safe. */
#ifndef PACER_SIGNAL_H
#define PACER_SIGNAL_H

/* Counts a signal; returns the count before it. For signal handlers. */
unsigned pc_signal_note(void);
/* Signals counted since the last reset. */
unsigned pc_signal_count(void);
/* Whether a signal has arrived since the last reset. */
static inline int pc_signal_pending(void)
{
  return pc_signal_count() != 0;
}
/* Starts counting from zero (a new run). */
void pc_signal_reset(void);

#endif
