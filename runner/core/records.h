/* records.h: what a run leaves behind for reports and progress displays.
 *
 * When recording is on, the engine appends one record per step instance
 * when it starts (so a record's parent always has a smaller index) and fills
 * it in when it finishes (recording.c). Records are addressed by index because
 * the array grows. Fan-out and gather records carry live counters that a
 * progress display can read while the run goes on. The run driver fills in
 * the run's own fields at the end. Readers (report/, progress) need nothing
 * but this header and model/outcome.h. */
#ifndef PACER_RECORDS_H
#define PACER_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hist.h"
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
  /* Polled leaves (until:): polls run, and why polling stopped ("until",
   * "fail_if", "within", "failure"; static; NULL when cancelled) */
  int polls;
  const char *poll_stop;
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
  /* Leaves: the attempt's status (HTTP), and the method and URL its action
   * reported (pc_attempt_report); the reports show them under the
   * record's action key. */
  int status;
  char *url;
  char *method;
  /* Leaves, when the run keeps attempts: the index in `attempts` of the
   * leaf's latest attempt, PC_NO_RECORD before its first. */
  size_t last_attempt;
  /* A merged report (`pacer merge`): the shard that ran it; 0 for a group
   * that several shards ran, and in a run's own report. */
  int shard;
};

/* One attempt of a leaf, kept only when the run asks for them
 * (pc_run_report.keep_attempts: an exporter draws a span per attempt).
 * Appended when the attempt starts, filled in when it ends. */
struct pc_attempt_record {
  size_t record;        /* the leaf's record */
  int number;           /* 1-based */
  double start_off_ms;  /* from the run's start, monotonic */
  double duration_ms;
  bool done;
  enum pc_outcome outcome; /* of this attempt alone, expectations checked */
  char *error;          /* NULL if none */
  int status;           /* a status the action reported (HTTP), 0 if none */
  int exit_code;        /* a program's exit code, -1 if none */
  char *method, *url;   /* what the action reported it asked for (HTTP), or NULL */
  uint64_t span;        /* its span id (base/trace.h), given when it starts */
  bool propagated;      /* the span id went out: a traceparent header, TRACEPARENT */
};

/* Which shard of a run a report is, and what `pacer merge` checks shards
 * share (docs/shards.md): K of N, how fan-outs were partitioned, and the
 * SHA-256 (hex) of the workflow file and of the vars overrides. A run that
 * is not sharded is 1 of 1 with the rule "none". A merged report has index
 * 0 and one entry per shard it was made of. */
struct pc_shard_run {
  int index;          /* K */
  char *run_id;       /* owned */
  double start_ms;    /* wall clock at the shard's start */
  double duration_ms;
  char *outcome;      /* owned */
  int exit_code;
};

struct pc_shard_id {
  int index, count;   /* K (1-based; 0: a merged report) and N */
  const char *rule;   /* "none" */
  char workflow_sha256[65];
  char vars_sha256[65];
  struct pc_shard_run *runs; /* merged reports: the shards, by index */
  size_t nruns;
};

/* The latency of one step over all its leaf instances that ran (a
 * fan-out's items, the same step in every item of an enclosing fan-out):
 * a mergeable histogram of their durations (base/hist.h). */
struct pc_latency {
  char *step;         /* owned: the step's path without item numbers, "steps/stories" */
  char *action;       /* owned */
  int line;
  struct pc_hist hist;
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
  /* Attempts of leaves, in the order they started; kept only when
   * keep_attempts is set before the run starts (it costs one entry per
   * attempt). */
  bool keep_attempts;
  struct pc_attempt_record *attempts;
  size_t nattempts;
  /* The shard identity (borrowed); NULL: not known (a run from a test
   * harness), written as 1 of 1 with no digests. */
  const struct pc_shard_id *shard;
  /* Per-step latency histograms, when they come from elsewhere (`pacer
   * merge` adds up the shards'); NULL: the reports compute them from the
   * records. Borrowed. */
  const struct pc_latency *latency;
  size_t nlatency;
};

/* Frees the records and what they hold (not `r` itself). */
void pc_records_free(struct pc_run_report *r);

#endif
