/* json.c: the JSON report (docs/reports.md, "json"): the run and its
 * shard identity, statistics over the steps and the run's statistics
 * sections (the HTTP session's), per-step latency histograms, then one
 * object per step record. `pacer merge` reads it back (merge.c).
 * The schema is versioned: PC_REPORT_SCHEMA_VERSION changes with any
 * change a reader could notice. */
#include "report/format.h"

#include <inttypes.h>

#include "base/util.h"

#define PC_REPORT_SCHEMA_VERSION 3

static void json_counters(struct pc_buf *b, const struct pc_stat *c, size_t n, bool first)
{
  for (size_t i = 0; i < n; i++) {
    if (i || !first)
      pc_buf_puts(b, ",");
    pc__json_str(b, c[i].name);
    pc_buf_printf(b, ":%" PRIu64, c[i].value);
  }
}

/* A statistics section, under "stats" by its name: its counters, then its
 * table as a list of objects (the row's key first). */
void pc__json_stats_section(struct pc_buf *b, const struct pc_stats_section *s)
{
  pc_buf_puts(b, ",");
  pc__json_str(b, s->name);
  pc_buf_puts(b, ":{");
  json_counters(b, s->counters, s->ncounters, true);
  if (s->rows_name) {
    if (s->ncounters)
      pc_buf_puts(b, ",");
    pc__json_str(b, s->rows_name);
    pc_buf_puts(b, ":[");
    for (size_t i = 0; i < s->nrows; i++) {
      pc_buf_puts(b, i ? ",{" : "{");
      pc__json_str(b, s->row_key);
      pc_buf_puts(b, ":");
      pc__json_str(b, s->rows[i].key);
      json_counters(b, s->rows[i].counters, s->rows[i].ncounters, false);
      pc_buf_puts(b, "}");
    }
    pc_buf_puts(b, "]");
  }
  pc_buf_puts(b, "}");
}

/* "shard": which shard of a run this is (1 of 1 when not sharded), and
 * for a merged report the shards it was made of. */
static void json_shard(struct pc_buf *b, const struct pc_shard_id *sh)
{
  char ts[40];
  if (!sh) {
    pc_buf_puts(b, "\"shard\":{\"index\":1,\"count\":1,\"rule\":\"none\","
                   "\"workflow_sha256\":null,\"vars_sha256\":null},");
    return;
  }
  if (sh->index > 0)
    pc_buf_printf(b, "\"shard\":{\"index\":%d,\"count\":%d,\"rule\":", sh->index, sh->count);
  else
    pc_buf_printf(b, "\"shard\":{\"index\":null,\"count\":%d,\"rule\":", sh->count);
  pc__json_str(b, sh->rule);
  pc_buf_puts(b, ",\"workflow_sha256\":");
  pc__json_str(b, sh->workflow_sha256[0] ? sh->workflow_sha256 : NULL);
  pc_buf_puts(b, ",\"vars_sha256\":");
  pc__json_str(b, sh->vars_sha256[0] ? sh->vars_sha256 : NULL);
  if (sh->index == 0) {
    pc_buf_puts(b, ",\"merged\":[");
    for (size_t i = 0; i < sh->nruns; i++) {
      const struct pc_shard_run *sr = &sh->runs[i];
      pc_buf_printf(b, "%s{\"index\":%d,\"run_id\":", i ? "," : "", sr->index);
      pc__json_str(b, sr->run_id);
      pc_format_iso8601(sr->start_ms, ts, sizeof ts);
      pc_buf_puts(b, ",\"started_at\":");
      pc__json_str(b, ts);
      pc_buf_printf(b, ",\"duration_ms\":%.0f,\"outcome\":", sr->duration_ms);
      pc__json_str(b, sr->outcome);
      pc_buf_printf(b, ",\"exit_code\":%d}", sr->exit_code);
    }
    pc_buf_puts(b, "]");
  }
  pc_buf_puts(b, "},");
}

/* The step that caused the run's failure: its path, label, outcome and
 * error; null when no step did (success, a deadline, a signal). */
static void json_root_cause(struct pc_buf *b, const struct pc_run_report *r)
{
  if (r->cause_rec == PC_NO_RECORD || r->cause_rec >= r->nrecords) {
    pc_buf_puts(b, "null");
    return;
  }
  const struct pc_record *s = &r->records[r->cause_rec];
  struct pc_buf path;
  pc_buf_init(&path, REPORT_BUF_MAX);
  pc__record_path(&path, r, r->cause_rec);
  pc_buf_printf(b, "{\"index\":%zu,\"path\":", r->cause_rec);
  pc__json_str(b, path.data);
  pc_buf_free(&path);
  pc_buf_puts(b, ",\"label\":");
  pc__json_str(b, s->label);
  pc_buf_puts(b, ",\"outcome\":");
  pc__json_str(b, pc__rec_outcome(s));
  pc_buf_puts(b, ",\"error\":");
  pc__json_str(b, s->error);
  pc_buf_puts(b, "}");
}

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
  pc_format_iso8601(pc__ms_as_written(r->start_ms), ts, sizeof ts);
  pc_buf_puts(b, ",\"started_at\":");
  pc__json_str(b, ts);
  pc_buf_printf(b, ",\"started_at_epoch_ms\":%.3f,\"duration_ms\":%.0f,\"outcome\":", r->start_ms,
                r->duration_ms);
  pc__json_str(b, r->outcome ? r->outcome : "running");
  pc_buf_printf(b, ",\"exit_code\":%d,\"finished\":%s,\"root_cause\":", r->exit_code,
                r->finished ? "true" : "false");
  json_root_cause(b, r);
  pc_buf_puts(b, "},");
  json_shard(b, r->shard);

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
  pc_buf_puts(b, "}");
  for (size_t i = 0; i < r->nstats; i++)
    pc__json_stats_section(b, &r->stats[i]);
  pc_buf_puts(b, "},");
  size_t nlat;
  bool own_lat;
  const struct pc_latency *lat = pc__latency_get(r, &nlat, &own_lat);
  pc__latency_json(b, lat, nlat);
  if (own_lat)
    pc__latency_free((struct pc_latency *)lat, nlat);
  pc_buf_puts(b, ",\"steps\":[");

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
    pc__json_str(b, s->step ? s->action : NULL);
    pc_buf_puts(b, ",\"label\":");
    pc__json_str(b, s->label);
    if (s->step)
      pc_buf_printf(b, ",\"line\":%d,\"step_index\":%d", s->step->line, s->step->index);
    if (s->item) {
      pc_buf_printf(b, ",\"item\":%zu,\"item_label\":", s->item);
      pc__json_str(b, s->item_label);
    }
    if (s->shard)
      pc_buf_printf(b, ",\"shard\":%d", s->shard);
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
      if (s->step && s->step->poll.until) {
        pc_buf_printf(b, ",\"polls\":%d,\"poll_stop\":", s->polls);
        pc__json_str(b, s->poll_stop);
      }
      if (s->lane >= 0)
        pc_buf_printf(b, ",\"lane\":%d", s->lane);
      else
        pc_buf_puts(b, ",\"lane\":null");
    } else
      pc_buf_printf(b, ",\"total\":%zu,\"finished\":%zu,\"failed\":%zu", s->total, s->finished,
                    s->failed);
    if (s->status || s->url) { /* under the key of the action that reported them */
      pc_buf_puts(b, ",");
      pc__json_str(b, s->action);
      pc_buf_printf(b, ":{\"status\":%d,\"method\":", s->status);
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

