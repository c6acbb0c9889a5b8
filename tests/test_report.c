/* test_report.c: the report formats from hand-made records, with no engine,
 * no Lua and no HTTP session: reports depend on records and outcomes only.
 * The statistics sections are rendered generically (any name, counters,
 * an optional table), and their strings are redacted and made valid UTF-8
 * like every other string of the run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/redact.h"
#include "actions/basic.h"
#include "base/util.h"
#include "report/report.h"

static char wf_file[] = "dir/wf.yml", wf_name[] = "wf", nap[] = "nap";
static char root_label[] = "steps", leaf_label[] = "nap (wf.yml:4)";
static char host_a[] = "http://a:1", host_b[] = "http://b:2/\xff hunter2 \"q\"";
static struct pc_workflow wf = {.file = wf_file, .name = wf_name};
static struct pc_step step = {.kind = PC_STEP_LEAF, .ops = &pc_sleep_ops, .id = nap, .file = wf_file, .line = 4};

/* Renders `format` of `r` into a fresh file and returns its text. */
static char *render(const char *format, const struct pc_run_report *r)
{
  char dir[] = "/tmp/pacer-test-report-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *path = pc_asprintf("%s/r.out", dir);
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  assert_int_equal(pc_outfile_open(&of, path, PC_OUTFILE_LATER, &err), 0);
  assert_int_equal(pc_report_write(format, &of, r, &err), 0);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 24);
  char chunk[4096];
  size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
    pc_buf_append(&b, chunk, n);
  fclose(f);
  unlink(path);
  rmdir(dir);
  free(path);
  return pc_buf_steal(&b);
}

/* A finished run of one root and one leaf, with two statistics sections. */
static void make_report(struct pc_run_report *r, struct pc_record recs[2],
                        struct pc_stats_section secs[2])
{
  memset(r, 0, sizeof *r);
  memset(recs, 0, 2 * sizeof *recs);
  memset(secs, 0, 2 * sizeof *secs);
  r->wf = &wf;
  r->run_id = "20260101T000000-0001";
  r->outcome = "ok";
  r->finished = true;
  r->duration_ms = 12;
  recs[0] = (struct pc_record){.parent = PC_NO_RECORD, .kind = PC_REC_ROOT,
                               .root_name = "steps", .label = root_label, .done = true,
                               .outcome = PC_OK, .lane = -1, .duration_ms = 12};
  recs[1] = (struct pc_record){.parent = 0, .step = &step, .action = "sleep",
                               .kind = PC_REC_LEAF, .label = leaf_label, .depth = 1,
                               .done = true, .outcome = PC_OK, .attempts = 1, .lane = 0,
                               .duration_ms = 10};
  r->records = recs;
  r->nrecords = 2;
  r->nlanes = 1;

  static struct pc_stat counters[] = {{"requests", 3}, {"bytes_up", 18446744073709551615u}};
  static struct pc_stat row_counters[] = {{"requests", 2}};
  static struct pc_stats_row rows[2];
  rows[0] = (struct pc_stats_row){host_a, row_counters, 1};
  rows[1] = (struct pc_stats_row){host_b, row_counters, 1};
  secs[0] = (struct pc_stats_section){.name = "http", .counters = counters, .ncounters = 2,
                                      .rows_name = "hosts", .row_key = "host", .rows = rows,
                                      .nrows = 2};
  secs[1] = (struct pc_stats_section){.name = "other", .counters = counters, .ncounters = 1};
  r->stats = secs;
  r->nstats = 2;
}

static void test_stats_sections_json(void **state)
{
  (void)state;
  struct pc_run_report r;
  struct pc_record recs[2];
  struct pc_stats_section secs[2];
  make_report(&r, recs, secs);
  pc_secret_add("hunter2", 7);
  char *json = render("json", &r);
  /* Each section under "stats", after the steps' own statistics; a row's
   * key first; the secret redacted, the stray byte replaced, the quote
   * escaped. */
  const char *want =
      "\"running\":0},"
      "\"http\":{\"requests\":3,\"bytes_up\":18446744073709551615,\"hosts\":["
      "{\"host\":\"http://a:1\",\"requests\":2},"
      "{\"host\":\"http://b:2/\xEF\xBF\xBD *** \\\"q\\\"\",\"requests\":2}]},"
      "\"other\":{\"requests\":3}},\"latency\":[";
  if (!strstr(json, want))
    fail_msg("no %s in %s", want, json);
  assert_non_null(strstr(json, "\"action\":\"sleep\""));
  assert_non_null(strstr(json, "\"path\":\"steps/nap\""));
  free(json);
}

/* Every format renders a report with no statistics at all. */
static void test_every_format_without_stats(void **state)
{
  (void)state;
  struct pc_run_report r;
  struct pc_record recs[2];
  struct pc_stats_section secs[2];
  make_report(&r, recs, secs);
  r.nstats = 0;
  static const char *const formats[] = {"json", "junit", "trace", "html"};
  for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
    assert_true(pc_report_format_known(formats[i]));
    char *text = render(formats[i], &r);
    /* JUnit names a case by its title, never by a line number. */
    assert_non_null(strstr(text, strcmp(formats[i], "junit") == 0 ? "name=\"nap\""
                                                                  : "nap (wf.yml:4)"));
    free(text);
  }
  char *json = render("json", &r);
  assert_non_null(strstr(json, "\"running\":0}},\"latency\":["));
  free(json);
}

/* The shard identity (1 of 1 with no digests when the run gave none) and
 * the per-step latency histograms: computed from the records, or the ones
 * the report carries (a merged report's). */
static void test_json_shard_and_latency(void **state)
{
  (void)state;
  struct pc_run_report r;
  struct pc_record recs[2];
  struct pc_stats_section secs[2];
  make_report(&r, recs, secs);
  r.nstats = 0;
  char *json = render("json", &r);
  assert_non_null(strstr(json, "\"version\":3,"));
  assert_non_null(strstr(json, "\"shard\":{\"index\":1,\"count\":1,\"rule\":\"none\","
                               "\"workflow_sha256\":null,\"vars_sha256\":null},\"stats\":"));
  /* 10 ms is 10 000 us, in the bucket [9984, 10048); the percentiles are
   * clamped to the exact min and max. */
  const char *want = "{\"step\":\"steps/nap\",\"action\":\"sleep\",\"line\":4,\"count\":1,"
                     "\"min_ms\":10.000,\"mean_ms\":10.000,\"p50_ms\":10.000,\"p90_ms\":10.000,"
                     "\"p95_ms\":10.000,\"p99_ms\":10.000,\"p999_ms\":10.000,\"max_ms\":10.000,"
                     "\"histogram\":{\"unit\":\"us\",\"linear\":256,\"sub_buckets\":128,"
                     "\"count\":1,\"min\":10000,\"max\":10000,\"sum\":10000,"
                     "\"buckets\":[[9984,1]]}}";
  if (!strstr(json, want))
    fail_msg("no %s in %s", want, json);
  free(json);

  struct pc_shard_id sh = {.index = 2, .count = 3, .rule = "none"};
  memset(sh.workflow_sha256, 'a', 64);
  memset(sh.vars_sha256, 'b', 64);
  struct pc_latency lat = {.step = (char *)"steps/other", .action = (char *)"http", .line = 9};
  pc_hist_init(&lat.hist);
  pc_hist_record(&lat.hist, 300);
  pc_hist_record(&lat.hist, 500);
  r.shard = &sh;
  r.latency = &lat;
  r.nlatency = 1;
  json = render("json", &r);
  assert_non_null(strstr(json, "\"shard\":{\"index\":2,\"count\":3,\"rule\":\"none\","
                               "\"workflow_sha256\":\"aaaa"));
  assert_non_null(strstr(json, "\"vars_sha256\":\"bbbb"));
  assert_null(strstr(json, "\"step\":\"steps/nap\""));
  assert_non_null(strstr(json, "\"step\":\"steps/other\",\"action\":\"http\",\"line\":9,"
                               "\"count\":2,\"min_ms\":0.300,\"mean_ms\":0.400,\"p50_ms\":0.301,"));
  assert_non_null(strstr(json, "\"buckets\":[[300,1],[500,1]]"));
  free(json);
  pc_hist_free(&lat.hist);
}

static void test_unknown_format(void **state)
{
  (void)state;
  struct pc_run_report r;
  struct pc_record recs[2];
  struct pc_stats_section secs[2];
  make_report(&r, recs, secs);
  assert_false(pc_report_format_known("yaml"));
  char dir[] = "/tmp/pacer-test-report-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char *path = pc_asprintf("%s/r.out", dir);
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  assert_int_equal(pc_outfile_open(&of, path, PC_OUTFILE_LATER, &err), 0);
  assert_int_equal(pc_report_write("yaml", &of, &r, &err), -1);
  assert_string_equal(err, "unknown report format \"yaml\"");
  free(err);
  assert_int_equal(access(path, F_OK), -1); /* nothing left behind */
  assert_int_equal(rmdir(dir), 0);
  free(path);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stats_sections_json),
      cmocka_unit_test(test_every_format_without_stats),
      cmocka_unit_test(test_json_shard_and_latency),
      cmocka_unit_test(test_unknown_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
