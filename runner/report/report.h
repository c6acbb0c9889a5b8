/* report.h: the report formats (--report FORMAT:PATH). A report is
 * rendered from the run's records and statistics sections (core/records.h)
 * once the run is over, and from nothing else: no engine, no HTTP. */
#ifndef PACER_REPORT_H
#define PACER_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/outfile.h"
#include "core/records.h"

/* Report formats, as in --report FORMAT:PATH. */
bool pc_report_format_known(const char *format);
/* Renders one report and writes it to `out`, opened by the caller at the
 * start of the run (see outfile.h: a regular file is replaced atomically, a
 * device or FIFO is written into), then commits and closes it (or discards
 * it, on failure). Returns 0, or -1 with *err set (malloc'd). Secrets are
 * redacted in every format. */
int pc_report_write(const char *format, struct pc_outfile *out, const struct pc_run_report *r,
                    char **err);
/* Several workflow files in one `pacer run` (core/run.h, pc_run_many):
 * what is said of them all. */
struct pc_runs_info {
  double start_ms;    /* wall clock when the first started */
  double duration_ms; /* until the last was over */
  int exit_code;      /* of them all (SPEC's precedence) */
  size_t nfiles;      /* named (those not run are not in the reports) */
  /* the statistics of the state they shared (the HTTP session), borrowed */
  const struct pc_stats_section *stats;
  size_t nstats;
};
/* Whether FORMAT can report several runs in one file (pc_report_write_runs). */
bool pc_report_format_runs(const char *format);
/* Renders one report covering the runs `reps` (in the order the files
 * were named) and writes it as pc_report_write does (docs/reports.md,
 * "Several files"). */
int pc_report_write_runs(const char *format, struct pc_outfile *out,
                         const struct pc_run_report *const *reps, size_t n,
                         const struct pc_runs_info *info, char **err);
/* The run's metrics in the Prometheus text format, for a Pushgateway push
 * (docs/reports.md, "prometheus"): what the prometheus report holds, but
 * pacer_run_last_success_timestamp_seconds only when the run succeeded (a
 * push-add then keeps the value an earlier success pushed), and without
 * the `workflow` label unless `workflow_label` (it is in the push's
 * grouping key). Redacted. Returns a malloc'd text and sets *len. */
char *pc_report_metrics(const struct pc_run_report *r, bool workflow_label, size_t *len);

#endif
