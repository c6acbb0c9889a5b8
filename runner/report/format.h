/* format.h: what the report formats (json.c, junit.c, trace.c, html.c)
 * share and nothing else includes: the escaping helpers of report.c, which
 * redact secrets and repair UTF-8 before they escape, and the analysis of
 * the records (analysis.c) that the per-step formats agree on. */
#ifndef PACER_REPORT_FORMAT_H
#define PACER_REPORT_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"
#include "core/records.h"

/* Reports grow with the number of step records, which the run already
 * holds in memory, so the buffer cap is only a backstop. (Not SIZE_MAX:
 * pc_buf needs max + 1 to fit in a size_t.) */
#define REPORT_BUF_MAX ((size_t)1 << 40)

/* ------------------------------------------------ escaping (report.c) */

/* A JSON string, or null for NULL; redacted and valid UTF-8. */
void pc__json_str(struct pc_buf *b, const char *s);
/* Text for XML and HTML, in element content or in a quoted attribute
 * (attr); redacted and valid UTF-8. Nothing for NULL. */
void pc__xml_str(struct pc_buf *b, const char *s, bool attr);

/* --------------------------------------------- writing (report.c) */

struct pc_outfile;
/* Writes a rendered report (b, freed) to out redacted, and commits it:
 * 0, or -1 with *err set (malloc'd) and out discarded. */
int pc__report_emit(struct pc_outfile *out, struct pc_buf *b, char **err);

/* --------------------------------------------- records (report.c) */

const char *pc__kind_name(enum pc_record_kind k);
bool pc__is_instance(const struct pc_run_report *r, const struct pc_record *s);
/* The step's stable path: the root, then each step's id (or ACTION@LINE),
 * with [N] for a fan-out item: "steps/stories[3]/fetch". */
void pc__record_path(struct pc_buf *b, const struct pc_run_report *r, size_t i);
/* The same with [*] for every fan-out item: one key for all items of a
 * fan-out ("steps/stories[*]/fetch"). */
void pc__record_key(struct pc_buf *b, const struct pc_run_report *r, size_t i);
/* The same without the item numbers: the step, not the instance
 * ("steps/stories/fetch"). */
void pc__record_step_path(struct pc_buf *b, const struct pc_run_report *r, size_t i);

/* The step's title for test identity (JUnit names): its name, else its
 * id, else its action and its position among its siblings ("log #3"); a
 * fan-out item as "stories[3] 40000003". Never a line number, so a test's
 * name survives an edit of the file. */
void pc__record_title(struct pc_buf *b, const struct pc_run_report *r, size_t i);

static inline const char *pc__rec_outcome(const struct pc_record *s)
{
  return s->done ? pc_outcome_name(s->outcome) : "running";
}

static inline bool pc__rec_is_failure(const struct pc_record *s)
{
  return s->done && pc_outcome_is_failure(s->outcome);
}

/* The end of a record, as an offset from the run's start. */
static inline double pc__rec_end(const struct pc_record *s)
{
  return s->start_off_ms + s->duration_ms;
}

/* v as the JSON report writes it (%.3f) and reads back: wall-clock times
 * are computed from these, so that `pacer merge`, which has only the
 * written values, computes the same ones to the millisecond (a sum of the
 * exact values could fall on the other side of a millisecond). */
double pc__ms_as_written(double v);
/* The same with `decimals` (the run's duration_ms is written with none). */
double pc__as_written(double v, int decimals);

/* The wall-clock time of an offset: the run's one wall-clock reading plus
 * monotonic time, so a clock step during the run moves nothing. */
static inline double pc__wall_at(const struct pc_run_report *r, double off_ms)
{
  return pc__ms_as_written(r->start_ms) + pc__ms_as_written(off_ms);
}

/* --------------------------------------------- analysis (analysis.c) */

/* What the per-step formats share: which records stand for a failure or
 * are shown as a case of their own, and the lanes of groups. Leaves are
 * always cases. A group is a case of its own when it has no child records
 * (skipped by `if`, or it failed before starting any), when it failed with
 * no failing step below it (a group timeout, whose children end
 * `cancelled`), or, for a root, when it was cancelled with no failure below
 * it (the workflow deadline, a signal). That way every failure of the run
 * shows up exactly once. */
struct pc__analysis {
  bool *own_case;   /* group records shown as a case */
  bool *fail_below; /* a failing case is in this record's subtree (itself included) */
  size_t *nkids;    /* child records */
  int *group_lane;  /* groups (not roots): a lane no overlapping group holds; else -1 */
  int ngroup_lanes;
  /* Leaves waiting for their first pool permit, as a step function: at
   * queue_t[k] the number waiting changes by queue_d[k] (+1 or -1); sorted
   * by time, ends before starts at equal times. */
  double *queue_t;
  int *queue_d;
  size_t nqueue;
  size_t max_queued;     /* the most leaves waiting at once */
  double queued_ms;      /* all leaves' waiting, all attempts */
  bool never_ran;        /* some leaf never ran (skipped, or stopped while queued) */
  size_t counts[PC_SKIPPED + 2]; /* cases by outcome; the last slot counts "running" */
  size_t ncases, nleaves, ngroups, attempts, retried;
};


void pc__analyse(const struct pc_run_report *r, struct pc__analysis *a);
void pc__analysis_free(struct pc__analysis *a);
/* A case that stands for a failure: a failed step, or a root cancelled
 * with no failure below it (the workflow deadline, a signal). */
bool pc__case_is_failure(const struct pc_record *s);

/* ---------------------------------------------- latency (latency.c) */

/* The latency of each step whose leaf instances ran, in the order the
 * steps were first reached: r->latency when the report carries them (a
 * merged report), else computed from the records. *owned says whether the
 * caller frees them with pc__latency_free. */
const struct pc_latency *pc__latency_get(const struct pc_run_report *r, size_t *n, bool *owned);
void pc__latency_free(struct pc_latency *l, size_t n);
/* The "latency" list of the JSON report (docs/reports.md). */
void pc__latency_json(struct pc_buf *b, const struct pc_latency *l, size_t n);

/* ------------------------------------------------ the formats */

/* Pieces the report of several runs (runs.c) is made of. */
void pc__json_stats_section(struct pc_buf *b, const struct pc_stats_section *s);
struct pc__junit_counts {
  size_t tests, failures, errors, skipped;
};
void pc__junit_counts(const struct pc_run_report *r, struct pc__junit_counts *c);
/* One <testsuite> holding every case of the run, named after its file. */
void pc__junit_file_suite(struct pc_buf *b, const struct pc_run_report *r, size_t id);
/* The run's part of a page (html.c): its summary, failures and timeline
 * in a <section id="file-ID">; the page around it; a duration as shown. */
void pc__html_run_section(struct pc_buf *b, const struct pc_run_report *r, size_t id);
void pc__html_page_start(struct pc_buf *b, const char *title, const char *outcome);
void pc__html_page_end(struct pc_buf *b);
void pc__html_duration(struct pc_buf *b, double ms);
/* An outcome's badge: <span class="badge o-OUTCOME">OUTCOME</span>. */
void pc__html_badge(struct pc_buf *b, const char *outcome);
/* The metrics of several runs in one file (prometheus.c): each run's
 * series with its workflow label, each family once; the shared state's
 * statistics without a workflow label. */
void pc__render_prometheus_runs(struct pc_buf *b, const struct pc_run_report *const *reps,
                                size_t n, const struct pc_stats_section *stats, size_t nstats,
                                const char *previous);
/* The run's trace events as process `pid`, its times moved by off_ms; the
 * first event without a leading comma when `first`. */
void pc__trace_events(struct pc_buf *b, const struct pc_run_report *r, int pid, double off_ms,
                      bool first);

void pc__render_json(struct pc_buf *b, const struct pc_run_report *r);
void pc__render_junit(struct pc_buf *b, const struct pc_run_report *r);
void pc__render_trace(struct pc_buf *b, const struct pc_run_report *r);
void pc__render_html(struct pc_buf *b, const struct pc_run_report *r);
/* `previous`: the file the report replaces (a regular file, or NULL), read
 * for the last success it recorded (prometheus.c). */
void pc__render_prometheus(struct pc_buf *b, const struct pc_run_report *r,
                           const char *previous);

#endif
