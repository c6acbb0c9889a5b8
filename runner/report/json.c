/* json.c: the JSON report (docs/reports.md, "json"): the run, statistics
 * over the steps and the HTTP session, then one object per step record.
 * The schema is versioned: PC_REPORT_SCHEMA_VERSION changes with any
 * change a reader could notice. */
#include "report/format.h"

#include <inttypes.h>

#include "base/util.h"

#define PC_REPORT_SCHEMA_VERSION 2

void pc__render_json(struct pc_buf *b, const struct pc_run_report *r)
{
  char ts[40];
  struct pc__analysis an;
  pc__analyse(r, &an);
  pc_buf_printf(b, "{\"schema\":\"pacer-report\",\"version\":%d,", PC_REPORT_SCHEMA_VERSION);
  pc_buf_puts(b, "\"pacer\":");
  pc__json_str(b, PACER_VERSION);
  pc_buf_puts(b, ",\"workflow\":{\"name\":");
  pc__json_str(b, r->wf->name);
  pc_buf_puts(b, ",\"file\":");
  pc__json_str(b, r->wf->file);
  pc_buf_puts(b, ",\"description\":");
  pc__json_str(b, r->wf->description);
  pc_buf_puts(b, "},\"run\":{\"id\":");
  pc__json_str(b, r->run_id);
  pc_format_iso8601(r->start_ms, ts, sizeof ts);
  pc_buf_puts(b, ",\"started_at\":");
  pc__json_str(b, ts);
  pc_buf_printf(b, ",\"duration_ms\":%.0f,\"outcome\":", r->duration_ms);
  pc__json_str(b, r->outcome ? r->outcome : "running");
  pc_buf_printf(b, ",\"exit_code\":%d,\"finished\":%s},", r->exit_code,
                r->finished ? "true" : "false");

  /* Statistics over the step records. */
  size_t by[PC_SKIPPED + 2] = {0};
  for (size_t i = 0; i < r->nrecords; i++)
    if (r->records[i].kind == PC_REC_LEAF)
      by[r->records[i].done ? (int)r->records[i].outcome : PC_SKIPPED + 1]++;
  pc_buf_printf(b,
                "\"stats\":{\"steps\":%zu,\"leaves\":%zu,\"groups\":%zu,\"attempts\":%zu,"
                "\"retried\":%zu,\"max_concurrency\":%d,\"max_queued\":%zu,"
                "\"queued_ms\":%.3f,\"outcomes\":{",
                an.nleaves + an.ngroups, an.nleaves, an.ngroups, an.attempts, an.retried,
                r->nlanes, an.max_queued, an.queued_ms);
  for (int o = 0; o <= PC_SKIPPED + 1; o++)
    pc_buf_printf(b, "%s\"%s\":%zu", o ? "," : "",
                  o <= PC_SKIPPED ? pc_outcome_name((enum pc_outcome)o) : "running", by[o]);
  const struct pc_http_stats *hs = &r->http;
  pc_buf_printf(b,
                "},\"http\":{\"requests\":%" PRIu64 ",\"failed\":%" PRIu64
                ",\"cancelled\":%" PRIu64 ",\"connections\":%" PRIu64 ",\"reused\":%" PRIu64
                ",\"bytes_down\":%" PRIu64 ",\"bytes_up\":%" PRIu64 ",\"hosts\":[",
                hs->requests, hs->failed, hs->cancelled, hs->connections, hs->reused,
                hs->bytes_down, hs->bytes_up);
  for (size_t i = 0; i < hs->nhosts; i++) {
    const struct pc_http_host_stats *h = &hs->hosts[i];
    pc_buf_puts(b, i ? ",{\"host\":" : "{\"host\":");
    pc__json_str(b, h->host);
    pc_buf_printf(b,
                  ",\"requests\":%" PRIu64 ",\"connections\":%" PRIu64 ",\"reused\":%" PRIu64
                  ",\"bytes_down\":%" PRIu64 ",\"bytes_up\":%" PRIu64 "}",
                  h->requests, h->connections, h->reused, h->bytes_down, h->bytes_up);
  }
  pc_buf_puts(b, "]}},\"steps\":[");

  struct pc_buf path;
  pc_buf_init(&path, REPORT_BUF_MAX);
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    if (i)
      pc_buf_puts(b, ",");
    pc_buf_printf(b, "\n{\"index\":%zu,\"parent\":", i);
    if (s->parent == PC_NO_RECORD)
      pc_buf_puts(b, "null");
    else
      pc_buf_printf(b, "%zu", s->parent);
    pc_buf_reset(&path);
    pc__record_path(&path, r, i);
    pc_buf_puts(b, ",\"path\":");
    pc__json_str(b, path.data);
    pc_buf_puts(b, ",\"kind\":");
    pc__json_str(b, pc__kind_name(s->kind));
    pc_buf_puts(b, ",\"id\":");
    pc__json_str(b, s->step ? s->step->id : s->root_name);
    pc_buf_puts(b, ",\"name\":");
    pc__json_str(b, s->step ? s->step->name : NULL);
    pc_buf_puts(b, ",\"action\":");
    pc__json_str(b, s->step ? pc_action_name(s->step->action) : NULL);
    pc_buf_puts(b, ",\"label\":");
    pc__json_str(b, s->label);
    if (s->step)
      pc_buf_printf(b, ",\"line\":%d", s->step->line);
    if (s->item)
      pc_buf_printf(b, ",\"item\":%zu", s->item);
    pc_buf_puts(b, ",\"outcome\":");
    pc__json_str(b, pc__rec_outcome(s));
    pc_buf_puts(b, ",\"error\":");
    pc__json_str(b, s->error);
    pc_format_iso8601(pc__wall_at(r, s->start_off_ms), ts, sizeof ts);
    pc_buf_puts(b, ",\"started_at\":");
    pc__json_str(b, ts);
    pc_buf_printf(b, ",\"start_offset_ms\":%.3f,\"duration_ms\":%.3f", s->start_off_ms,
                  s->duration_ms);
    if (s->kind == PC_REC_LEAF) {
      pc_buf_printf(b, ",\"ready_offset_ms\":%.3f,\"queued_ms\":%.3f,\"attempts\":%d",
                    s->ready_off_ms, s->queued_ms, s->attempts);
      if (s->lane >= 0)
        pc_buf_printf(b, ",\"lane\":%d", s->lane);
      else
        pc_buf_puts(b, ",\"lane\":null");
    } else
      pc_buf_printf(b, ",\"total\":%zu,\"finished\":%zu,\"failed\":%zu", s->total, s->finished,
                    s->failed);
    if (s->status || s->url) {
      pc_buf_printf(b, ",\"http\":{\"status\":%d,\"method\":", s->status);
      pc__json_str(b, s->method);
      pc_buf_puts(b, ",\"url\":");
      pc__json_str(b, s->url);
      pc_buf_puts(b, "}");
    }
    pc_buf_puts(b, "}");
  }
  pc_buf_free(&path);
  pc_buf_puts(b, "\n]}\n");
  pc__analysis_free(&an);
}

