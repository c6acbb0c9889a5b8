/* watchdog.h: the last line of defence against a blocked event loop.
 *
 * Everything in pacer (timeouts, the deadline, signals) runs on the loop. A
 * single C call that never returns (Lua's pattern matcher backtracking for
 * hours inside string.match, say) would block all of it, and a cron job
 * would hang until someone sent SIGKILL. The watchdog is a thread that
 * watches a heartbeat the loop bumps every iteration. If the loop has not
 * turned for a while AND the run should be over (past the deadline plus a
 * grace period, or interrupted by a signal the loop could not handle), it
 * stops the run's child processes and exits the process itself, with the
 * exit code the run would have had (4, 129, 130 or 143). It never acts while
 * the loop is alive: a loop waiting for events is idle, not blocked, and a
 * stopped process (SIGSTOP, a cgroup freezer) is not a blocked loop either. */
#ifndef PACER_WATCHDOG_H
#define PACER_WATCHDOG_H

#include <uv.h>

struct pc_watchdog;

/* Called from the watchdog thread just before it exits the process: stop
 * whatever would outlive pacer (it must not wait or take locks). */
typedef void (*pc_watchdog_kill_fn)(void *data);

/* Starts the heartbeat on `loop` and the thread. deadline_ms is the run's
 * deadline on pc_mono_ms()'s clock, or a negative number for none. Must be
 * called after the loop's SIGINT/SIGTERM/SIGHUP watchers are started: it
 * chains the handlers it finds to count signals. Returns NULL if the thread cannot start
 * (the run goes on without it; a warning is logged). */
struct pc_watchdog *pc_watchdog_start(uv_loop_t *loop, double deadline_ms,
                                      pc_watchdog_kill_fn kill, void *data);
/* Moves the deadline the watchdog enforces (same clock, negative: none).
 * Called on the loop's thread while the watchdog runs; the thread reads it
 * under its lock. Several files on one loop (run.c) keep it at the
 * earliest deadline among the runs not over. NULL is allowed. */
void pc_watchdog_set_deadline(struct pc_watchdog *w, double deadline_ms);
/* Stops the thread and closes the heartbeat handle (run the loop afterwards
 * so the close completes). NULL is allowed. */
void pc_watchdog_stop(struct pc_watchdog *w);

#endif
