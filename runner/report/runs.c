/* runs.c: one report covering several workflow files run by one `pacer
 * run` (core/run.h, pc_run_many; docs/reports.md, "Several files"). Each
 * format says what it can of several runs with the pieces of the
 * one-run formats: JSON holds each file's own report, unchanged, in a
 * list; JUnit one <testsuite> per file in one <testsuites>; the trace one
 * process per file on one time line; HTML one page with a table of the
 * files and each file's section; Prometheus each file's series under its
 * workflow label, each family once. */
#include "report/report.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "report/format.h"

/* The outcome of them all, as the exit code says it. */
static const char *runs_outcome(int code)
{
  switch (code) {
  case PC_EXIT_OK: return "ok";
  case PC_EXIT_FAILED: return "failed";
  case PC_EXIT_DEADLINE: return "timeout";
  case PC_EXIT_SIGINT:
  case PC_EXIT_SIGTERM:
  case PC_EXIT_SIGHUP: return "cancelled";
  }
  return "error";
}

static void render_json(struct pc_buf *b, const struct pc_run_report *const *reps, size_t n,
                        const struct pc_runs_info *info, const char *previous)
{
  char ts[40];
  pc_format_iso8601(info->start_ms, ts, sizeof ts);
  pc_buf_puts(b, "{\"schema\":\"pacer-runs\",\"version\":1,\"pacer\":");
  pc__json_str(b, PACER_VERSION);
  pc_buf_puts(b, ",\"started_at\":");
  pc__json_str(b, ts);
  pc_buf_printf(b, ",\"duration_ms\":%.0f,\"outcome\":", info->duration_ms);
  pc__json_str(b, runs_outcome(info->exit_code));
  pc_buf_printf(b, ",\"exit_code\":%d,\"files\":%zu,\"ran\":%zu,\"stats\":{\"runs\":%zu",
                info->exit_code, info->nfiles, n, n);
  for (size_t i = 0; i < info->nstats; i++)
    pc__json_stats_section(b, &info->stats[i]);
  pc_buf_puts(b, "},\"runs\":[\n");
  for (size_t i = 0; i < n; i++) {
    if (i)
      pc_buf_puts(b, ",\n");
    size_t at = b->len;
    pc__render_json(b, reps[i]);
    while (b->len > at && b->data[b->len - 1] == '\n') /* the document's own newline */
      b->len--;
  }
  pc_buf_puts(b, "\n]}\n");
}

static void render_junit(struct pc_buf *b, const struct pc_run_report *const *reps, size_t n,
                         const struct pc_runs_info *info, const char *previous)
{
  struct pc__junit_counts all = {0};
  for (size_t i = 0; i < n; i++) {
    struct pc__junit_counts c;
    pc__junit_counts(reps[i], &c);
    all.tests += c.tests;
    all.failures += c.failures;
    all.errors += c.errors;
    all.skipped += c.skipped;
  }
  char ts[40];
  pc_format_iso8601(info->start_ms, ts, sizeof ts);
  ts[19] = '\0'; /* JUnit's timestamp has no fraction and no zone */
  pc_buf_printf(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"pacer\" "
                   "tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
                   "time=\"%.3f\" timestamp=\"%s\">\n",
                all.tests, all.failures, all.errors, all.skipped,
                pc__as_written(info->duration_ms, 0) / 1000.0, ts);
  for (size_t i = 0; i < n; i++)
    pc__junit_file_suite(b, reps[i], i);
  pc_buf_puts(b, "</testsuites>\n");
}

static void render_trace(struct pc_buf *b, const struct pc_run_report *const *reps, size_t n,
                         const struct pc_runs_info *info, const char *previous)
{
  char ts[40];
  pc_format_iso8601(info->start_ms, ts, sizeof ts);
  pc_buf_puts(b, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"schema\":\"pacer-trace\","
                 "\"version\":2,\"workflow\":null,\"files\":[");
  for (size_t i = 0; i < n; i++) {
    if (i)
      pc_buf_puts(b, ",");
    pc__json_str(b, reps[i]->wf->file);
  }
  pc_buf_puts(b, "],\"started_at\":");
  pc__json_str(b, ts);
  pc_buf_puts(b, ",\"outcome\":");
  pc__json_str(b, runs_outcome(info->exit_code));
  pc_buf_printf(b, ",\"exit_code\":%d},\"traceEvents\":[", info->exit_code);
  /* One process per file, each placed where it started on one time line
   * (the wall clock readings of the runs, which started one after the
   * other on one machine). */
  for (size_t i = 0; i < n; i++)
    pc__trace_events(b, reps[i], (int)i + 1, reps[i]->start_ms - info->start_ms, i == 0);
  pc_buf_puts(b, "\n]}\n");
}

/* One page: a table of the files (each linking to its section), then
 * each file's summary, failures and timeline, as its own report shows
 * them. */
static void render_html(struct pc_buf *b, const struct pc_run_report *const *reps, size_t n,
                        const struct pc_runs_info *info, const char *previous)
{
  (void)previous;
  const char *outcome = runs_outcome(info->exit_code);
  char *title = pc_asprintf("%zu workflow files", info->nfiles);
  pc__html_page_start(b, title, outcome);
  pc_buf_printf(b, "<h1>%s ", title);
  pc__html_badge(b, outcome);
  pc_buf_puts(b, "</h1>\n<p class=\"meta\">");
  free(title);
  char ts[40];
  pc_format_iso8601(info->start_ms, ts, sizeof ts);
  pc_buf_printf(b, "started %s &middot; took ", ts);
  pc__html_duration(b, info->duration_ms);
  pc_buf_printf(b, " &middot; %zu ran &middot; <b>exit code %d</b></p>\n", n, info->exit_code);
  pc_buf_puts(b, "<table class=\"counts\"><tr><th>file</th><th>workflow</th><th>outcome</th>"
                 "<th>exit code</th><th>took</th></tr>\n");
  for (size_t i = 0; i < n; i++) {
    const struct pc_run_report *r = reps[i];
    const char *o = r->outcome ? r->outcome : "running";
    pc_buf_printf(b, "<tr><td><a href=\"#file-%zu\">", i);
    pc__xml_str(b, r->wf->file, false);
    pc_buf_puts(b, "</a></td><td>");
    pc__xml_str(b, r->wf->name, false);
    pc_buf_puts(b, "</td><td>");
    pc__html_badge(b, o);
    pc_buf_printf(b, "</td><td>%d</td><td>", r->exit_code);
    pc__html_duration(b, r->duration_ms);
    pc_buf_puts(b, "</td></tr>\n");
  }
  pc_buf_puts(b, "</table>\n");
  for (size_t i = 0; i < n; i++)
    pc__html_run_section(b, reps[i], i);
  pc__html_page_end(b);
}

static void render_prometheus(struct pc_buf *b, const struct pc_run_report *const *reps,
                              size_t n, const struct pc_runs_info *info, const char *previous)
{
  pc__render_prometheus_runs(b, reps, n, info->stats, info->nstats, previous);
}

static const struct {
  const char *name;
  void (*render)(struct pc_buf *b, const struct pc_run_report *const *reps, size_t n,
                 const struct pc_runs_info *info, const char *previous);
} formats[] = {
    {"json", render_json},         {"junit", render_junit},
    {"trace", render_trace},       {"html", render_html},
    {"prometheus", render_prometheus},
};

bool pc_report_format_runs(const char *format)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(formats); i++)
    if (strcmp(formats[i].name, format) == 0)
      return true;
  return false;
}

int pc_report_write_runs(const char *format, struct pc_outfile *out,
                         const struct pc_run_report *const *reps, size_t n,
                         const struct pc_runs_info *info, char **err)
{
  size_t i = 0;
  while (i < PC_ARRAY_SIZE(formats) && strcmp(formats[i].name, format) != 0)
    i++;
  if (i == PC_ARRAY_SIZE(formats)) {
    pc_outfile_discard(out);
    *err = pc_asprintf("the %s report covers one workflow file, not several", format);
    return -1;
  }
  struct pc_buf b;
  pc_buf_init(&b, REPORT_BUF_MAX);
  formats[i].render(&b, reps, n, info, out->atomic ? out->target : NULL);
  return pc__report_emit(out, &b, err);
}
