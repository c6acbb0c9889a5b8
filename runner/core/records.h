/* records.h: what a run leaves behind for reports and progress displays.
 *
 * When recording is on, the engine appends one record per step instance
 * when it starts (so a record's parent always has a smaller index) and fills
 * it in when it finishes (records.c). Records are addressed by index because
 * the array grows. Fan-out and gather records carry live counters that a
 * progress display can read while the run goes on. The run driver fills in
 * the run's own fields at the end. Readers (report/, progress) need nothing
 * but this header and model/outcome.h. */
#ifndef PACER_RECORDS_H
#define PACER_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/outcome.h"
#include "model/stats.h"
#include "model/workflow.h"

#define PC_NO_RECORD SIZE_MAX

enum pc_record_kind { PC_REC_ROOT, PC_REC_SEQUENCE, PC_REC_GATHER, PC_REC_FOREACH, PC_REC_LEAF };

struct pc_record {
  size_t parent;              /* index of the enclosing record, PC_NO_RECORD for a root */
  const struct pc_step *step; /* borrowed; NULL for the roots */
  const char *action;         /* the step's action ("http", "gather", ...); NULL for the roots */
  enum pc_record_kind kind;
  const char *root_name;      /* roots only: "steps" or "finally" */
  size_t item;                /* 1-based item index inside a fan-out, else 0 */
  char *label;                /* how logs name it: "fetch (wf.yml:12)", "stories[3] 4003
                                 (wf.yml:12)", "stories[3] 4003 / fetch (wf.yml:14)", "steps" */
  char *item_label;           /* fan-out items: the item's text ("4003"), or NULL */
  int depth;                  /* 0 for the roots */
  bool done;
  enum pc_outcome outcome;    /* valid when done */
  char *error;                /* NULL if none */
  int attempts;               /* leaves */
  /* Times are offsets from the run's start on the monotonic clock (a step
   * of the wall clock during the run moves nothing). A leaf's start is when
   * its first attempt got its pool permits and ran; before that, from
   * ready_off_ms, it was queued. Groups and leaves that never ran start
   * when they were reached (start_off_ms == ready_off_ms). */
  double start_off_ms;
  double ready_off_ms;
  double duration_ms;         /* from start_off_ms to the end (0 for a leaf that never ran) */
  double queued_ms;           /* leaves: time waiting for pool permits, all attempts */
  bool waiting;               /* leaves, live: queued for a permit now */
  int lane;                   /* leaves that ran: a lane no other running leaf held; else -1 */
  /* Live counters for gather and fan-out records: children in total,
   * finished, in flight (started, not finished), of those queued for a
   * pool permit (leaf children), and failed. */
  size_t total, finished, running, queued, failed;
  /* Leaves with a status (HTTP) and a URL, when the action reported them
   * (its result's `url` and `method`). */
  int status;
  char *url;
  char *method;
};

struct pc_run_report {
  const struct pc_workflow *wf; /* borrowed */
  const char *run_id;
  double start_ms;    /* wall clock at the start: the run's one reading of it */
  double start_mono;  /* pc_mono_ms() at the same moment; records count from it */
  double duration_ms; /* filled at the end */
  const char *outcome;/* "ok", "failed", "error", "timeout", "cancelled"; at the end */
  int exit_code;      /* at the end */
  bool finished;
  struct pc_record *records;
  size_t nrecords;
  int nlanes;         /* lanes used (max concurrency of leaves seen) */
  /* The root cause of the run's failure: the record of the step whose own
   * failure came first and failed the run (PC_NO_RECORD when none; a
   * deadline or a signal is not a step's). Filled at the end. */
  size_t cause_rec;
  /* The run's statistics beyond its steps (the HTTP session's), at the
   * end; rendered after the steps' own in every format that shows them. */
  struct pc_stats_section *stats;
  size_t nstats;
};

/* Frees the records and what they hold (not `r` itself). */
void pc_records_free(struct pc_run_report *r);

#endif
