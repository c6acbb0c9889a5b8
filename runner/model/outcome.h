/* outcome.h: how a step, a group or a run ends, and the exit codes of
 * SPEC §1 that a run's outcome maps to. The engine decides outcomes, the
 * result tables and the reports name them, the command line and plugin
 * tools exit with the codes: all of them include this, and nothing here
 * depends on anything else. */
#ifndef PACER_OUTCOME_H
#define PACER_OUTCOME_H

#include <stdbool.h>

enum pc_outcome { PC_OK, PC_FAILED, PC_ERROR, PC_TIMEOUT, PC_CANCELLED, PC_SKIPPED };

/* "ok", "failed", "error", "timeout", "cancelled", "skipped": the names in
 * result tables (`outcome`), logs and reports. */
static inline const char *pc_outcome_name(enum pc_outcome o)
{
  static const char *const names[] = {"ok", "failed", "error", "timeout", "cancelled",
                                      "skipped"};
  return names[o];
}

/* The outcomes that count as a failure (and fail the enclosing group unless
 * the step has continue_on_error): cancelled and skipped do not. */
static inline bool pc_outcome_is_failure(enum pc_outcome o)
{
  return o == PC_FAILED || o == PC_ERROR || o == PC_TIMEOUT;
}

/* Exit codes, SPEC §1. */
enum {
  PC_EXIT_OK = 0,
  PC_EXIT_FAILED = 1,
  PC_EXIT_USAGE = 2,
  PC_EXIT_ERROR = 3,
  PC_EXIT_DEADLINE = 4,
  PC_EXIT_LOCKED = 75,
  PC_EXIT_SIGHUP = 129,
  PC_EXIT_SIGINT = 130,
  PC_EXIT_SIGTERM = 143,
};

#endif
