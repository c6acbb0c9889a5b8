/* summary.h: the end-of-run summary (summary.c): how many steps ended how,
 * the first failures with the first line of their message, and the reports
 * written, printed on stderr when the run ends, as pytest's and go test's
 * closing lines are. The engine notes each step as it finishes; the run
 * driver prints it. */
#ifndef PACER_CORE_SUMMARY_H
#define PACER_CORE_SUMMARY_H

#include <stdbool.h>
#include <stddef.h>

#include "model/outcome.h"

/* Failures listed by name; more are counted. */
#define PC_SUMMARY_FAILURES_MAX 10

struct pc_summary {
  size_t counts[PC_SKIPPED + 1]; /* by enum pc_outcome */
  size_t nfailures;              /* every failure noted */
  char *failures[PC_SUMMARY_FAILURES_MAX]; /* "OUTCOME LABEL: first line", the first ones */
};

/* A step ended with outcome `o`; what counts is a leaf (each item of a
 * fan-out of a leaf body is one) or a group that ended without starting
 * any of its steps (skipped by `if`, its for_each failed): `counted`. A
 * failure the step had itself (not one of its children's, and not a
 * cancellation) is listed with `label` and the first line of `error`
 * (both borrowed), `tolerated` for continue_on_error. */
void pc__summary_note(struct pc_summary *s, enum pc_outcome o, bool counted, const char *label,
                      const char *error, bool tolerated);
/* Prints the summary (one log record of several lines) at `lvl`: the
 * counts, the failures, and the report paths written (`reports`:
 * "FORMAT:PATH" each, n of them). Nothing when no step was counted. */
void pc__summary_log(const struct pc_summary *s, int lvl, const char *const *reports, size_t n);
/* Adds `from` to `to` (counts, failures; the first ones kept) and empties
 * `from`. */
void pc__summary_merge(struct pc_summary *to, struct pc_summary *from);
void pc__summary_free(struct pc_summary *s);

#endif
