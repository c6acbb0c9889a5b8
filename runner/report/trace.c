/* trace.c: the trace report (docs/reports.md, "trace"): Chrome trace
 * events, which Perfetto and chrome://tracing open. */
#include "report/format.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/util.h"

/* Chrome trace event format (the JSON object form), which Perfetto and
 * chrome://tracing open. One process; thread 1 ("run") holds the roots,
 * then one thread per group lane, then one per leaf lane: slices on one
 * thread never overlap, so nothing depends on the viewer's nesting rules.
 * Times are microseconds since the run started. */

static void trace_thread(struct pc_buf *b, int pid, int tid, const char *name, int sort)
{
  pc_buf_printf(b, ",\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_name\",\"args\":{"
                   "\"name\":", pid, tid);
  pc__json_str(b, name);
  pc_buf_printf(b, "}},\n{\"ph\":\"M\",\"pid\":%d,\"tid\":%d,\"name\":\"thread_sort_index\","
                   "\"args\":{\"sort_index\":%d}}",
                pid, tid, sort);
}

static const char *trace_color(const struct pc_record *s)
{
  if (!s->done)
    return "yellow";
  switch (s->outcome) {
  case PC_OK: return "good";
  case PC_FAILED:
  case PC_ERROR:
  case PC_TIMEOUT: return "terrible";
  case PC_CANCELLED:
  case PC_SKIPPED: break;
  }
  return "grey";
}

void pc__render_trace(struct pc_buf *b, const struct pc_run_report *r)
{
  char ts[40];
  pc_format_iso8601(r->start_ms, ts, sizeof ts);
  pc_buf_puts(b, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"schema\":\"pacer-trace\","
                 "\"version\":2,\"workflow\":");
  pc__json_str(b, r->wf->name);
  pc_buf_puts(b, ",\"run_id\":");
  pc__json_str(b, r->run_id);
  pc_buf_puts(b, ",\"started_at\":");
  pc__json_str(b, ts);
  pc_buf_puts(b, ",\"outcome\":");
  pc__json_str(b, r->outcome ? r->outcome : "running");
  pc_buf_printf(b, ",\"exit_code\":%d,\"root_cause\":", r->exit_code);
  if (r->cause_rec < r->nrecords) {
    struct pc_buf path;
    pc_buf_init(&path, REPORT_BUF_MAX);
    pc__record_path(&path, r, r->cause_rec);
    pc__json_str(b, path.data);
    pc_buf_free(&path);
  } else {
    pc_buf_puts(b, "null");
  }
  pc_buf_puts(b, "},\"traceEvents\":[");
  pc__trace_events(b, r, 1, 0, true);
  pc_buf_puts(b, "\n]}\n");
}

void pc__trace_events(struct pc_buf *b, const struct pc_run_report *r, int pid, double off_ms,
                      bool first)
{
  struct pc__analysis an;
  pc__analyse(r, &an);
  double off_us = off_ms * 1000.0;
  char *pname = pc_asprintf("pacer: %s", r->wf->name);
  pc_buf_printf(b, "%s\n{\"ph\":\"M\",\"pid\":%d,\"name\":\"process_name\",\"args\":{\"name\":",
                first ? "" : ",", pid);
  pc__json_str(b, pname);
  pc_buf_puts(b, "}}");
  free(pname);
  int first_leaf_tid = 2 + an.ngroup_lanes;
  trace_thread(b, pid, 1, "run", 0);
  for (int g = 0; g < an.ngroup_lanes; g++) {
    char name[32];
    snprintf(name, sizeof name, "groups %d", g + 1);
    trace_thread(b, pid, 2 + g, name, 1 + g);
  }
  for (int l = 0; l < r->nlanes; l++) {
    char name[32];
    snprintf(name, sizeof name, "lane %d", l + 1);
    trace_thread(b, pid, first_leaf_tid + l, name, first_leaf_tid + l);
  }
  /* Leaves that never ran (skipped, or stopped while queued) hold no lane:
   * they are instants on a track of their own. */
  int not_run_tid = first_leaf_tid + r->nlanes;
  if (an.never_ran)
    trace_thread(b, pid, not_run_tid, "not run", not_run_tid);
  /* Waiting for a pool permit is not running: a counter track, "queued",
   * with the number of steps waiting. */
  if (an.nqueue) {
    long cur = 0;
    for (size_t k = 0; k < an.nqueue; k++) {
      cur += an.queue_d[k];
      if (k + 1 < an.nqueue && an.queue_t[k + 1] == an.queue_t[k])
        continue; /* one sample per moment */
      pc_buf_printf(b, ",\n{\"ph\":\"C\",\"pid\":%d,\"name\":\"queued\",\"ts\":%.3f,"
                       "\"args\":{\"waiting for a pool permit\":%ld}}",
                    pid, off_us + an.queue_t[k] * 1000.0, cur);
    }
  }
  struct pc_buf path;
  pc_buf_init(&path, REPORT_BUF_MAX);
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    int tid = s->kind == PC_REC_ROOT ? 1
              : s->kind == PC_REC_LEAF ? (s->lane >= 0 ? first_leaf_tid + s->lane : not_run_tid)
                                       : 2 + an.group_lane[i];
    pc_buf_printf(b, ",\n{\"ph\":\"X\",\"pid\":%d,\"tid\":", pid);
    pc_buf_printf(b, "%d,\"ts\":%.3f,\"dur\":%.3f,\"name\":", tid,
                  off_us + s->start_off_ms * 1000.0, s->duration_ms * 1000.0);
    pc__json_str(b, s->label);
    pc_buf_puts(b, ",\"cat\":");
    pc__json_str(b, s->action ? s->action : "root");
    pc_buf_printf(b, ",\"cname\":\"%s\",\"args\":{\"index\":%zu,\"path\":", trace_color(s), i);
    pc_buf_reset(&path);
    pc__record_path(&path, r, i);
    pc__json_str(b, path.data);
    pc_buf_puts(b, ",\"kind\":");
    pc__json_str(b, pc__kind_name(s->kind));
    pc_buf_puts(b, ",\"outcome\":");
    pc__json_str(b, pc__rec_outcome(s));
    if (s->error) {
      pc_buf_puts(b, ",\"error\":");
      pc__json_str(b, s->error);
    }
    if (s->kind == PC_REC_LEAF)
      pc_buf_printf(b, ",\"attempts\":%d,\"queued_ms\":%.3f", s->attempts, s->queued_ms);
    else if (s->kind != PC_REC_ROOT)
      pc_buf_printf(b, ",\"total\":%zu,\"failed\":%zu", s->total, s->failed);
    if (s->item)
      pc_buf_printf(b, ",\"item\":%zu", s->item);
    if (s->status)
      pc_buf_printf(b, ",\"status\":%d", s->status);
    if (s->url) {
      pc_buf_puts(b, ",\"url\":");
      pc__json_str(b, s->url);
    }
    pc_buf_puts(b, "}}");
  }
  pc_buf_free(&path);
  pc__analysis_free(&an);
}

