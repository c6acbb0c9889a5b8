/* prometheus.c: the run as Prometheus metrics in the text exposition
 * format (--report prometheus:PATH, for node_exporter's textfile
 * collector; and the body of a Pushgateway push, export/). Read from the
 * records and the statistics sections only, like every report format.
 * docs/reports.md ("prometheus") lists the metrics.
 *
 * The values are those of the last run: every metric is a gauge (or a
 * summary of the run's step durations), since a textfile is replaced
 * whole by each run. One exception carries over from run to run:
 * pacer_run_last_success_timestamp_seconds is when the workflow last
 * succeeded, so a failed run writes the value it finds in the file it
 * replaces (a push leaves the metric out instead: a push-add keeps the
 * value pushed before). Every metric carries the workflow's name as the
 * `workflow` label (not in a push, whose grouping key holds it), so the
 * files of several workflows can sit in one collector directory. */
#include "report/format.h"
#include "report/report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/redact.h"
#include "base/util.h"

#define PREVIOUS_MAX ((size_t)16 << 20) /* bytes of the replaced file read for its value */

static const char LAST_SUCCESS[] = "pacer_run_last_success_timestamp_seconds";

/* ============================================================ writing */

struct prom {
  struct pc_buf *b;
  const struct pc_run_report *r;
  bool workflow_label;
};

/* A label value: secrets redacted first, then backslash, double quote and
 * newline escaped as the text format requires; other control characters
 * become spaces and bytes that are not UTF-8 U+FFFD (the format is UTF-8). */
static void label_value(struct pc_buf *b, const char *s)
{
  size_t len;
  char *red = pc_redact(s, strlen(s), &len);
  const unsigned char *p = (const unsigned char *)red, *end = p + len;
  while (p < end) {
    uint32_t cp;
    size_t n = pc_utf8_decode(p, (size_t)(end - p), &cp);
    if (n == 0) {
      pc_buf_puts(b, "\xEF\xBF\xBD");
      p++;
      continue;
    }
    if (*p == '\\')
      pc_buf_puts(b, "\\\\");
    else if (*p == '"')
      pc_buf_puts(b, "\\\"");
    else if (*p == '\n')
      pc_buf_puts(b, "\\n");
    else if (*p < 0x20 || *p == 0x7f)
      pc_buf_puts(b, " ");
    else
      pc_buf_append(b, p, n);
    p += n;
  }
  free(red);
}

static void family(struct prom *p, const char *name, const char *type, const char *help)
{
  pc_buf_printf(p->b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Starts a sample: NAME{workflow="...",K1="V1",...} (labels: NULL-ended
 * name, value pairs). */
static void sample_start(struct prom *p, const char *name, const char *const *labels)
{
  pc_buf_puts(p->b, name);
  bool any = false;
  if (p->workflow_label) {
    pc_buf_puts(p->b, "{workflow=\"");
    label_value(p->b, p->r->wf->name);
    pc_buf_puts(p->b, "\"");
    any = true;
  }
  for (size_t i = 0; labels && labels[i]; i += 2) {
    pc_buf_puts(p->b, any ? "," : "{");
    pc_buf_printf(p->b, "%s=\"", labels[i]);
    label_value(p->b, labels[i + 1]);
    pc_buf_puts(p->b, "\"");
    any = true;
  }
  if (any)
    pc_buf_puts(p->b, "}");
}

static void sample(struct prom *p, const char *name, const char *const *labels, double v,
                   const char *fmt)
{
  sample_start(p, name, labels);
  pc_buf_puts(p->b, " ");
  if (isnan(v))
    pc_buf_puts(p->b, "NaN");
  else
    pc_buf_printf(p->b, fmt, v);
  pc_buf_puts(p->b, "\n");
}

/* A metric name part made of what the text format allows ([a-zA-Z0-9_]). */
static void name_part(struct pc_buf *b, const char *s)
{
  for (; *s; s++) {
    char c = *s;
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    pc_buf_append(b, ok ? &c : "_", 1);
  }
}

/* ============================================================ steps */

struct keyed {
  char *key;
  size_t rec;
};

static int keyed_cmp(const void *a, const void *b)
{
  const struct keyed *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c)
    return c;
  return x->rec < y->rec ? -1 : x->rec > y->rec;
}

static int double_cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Whether a record's duration is a time the step ran: not a leaf that
 * never ran (skipped, or stopped while it waited for a pool permit). */
static bool ran(const struct pc_record *s)
{
  return s->done && (s->kind != PC_REC_LEAF || s->lane >= 0);
}

/* The nearest-rank quantile q of n sorted values. */
static double quantile(const double *v, size_t n, double q)
{
  if (n == 0)
    return NAN;
  size_t k = (size_t)ceil(q * (double)n);
  return v[k ? k - 1 : 0];
}

static void render_steps(struct prom *p)
{
  const struct pc_run_report *r = p->r;
  if (r->nrecords == 0)
    return;
  struct keyed *ks = pc_xcalloc(r->nrecords, sizeof *ks);
  for (size_t i = 0; i < r->nrecords; i++) {
    struct pc_buf b;
    pc_buf_init(&b, REPORT_BUF_MAX);
    pc__record_key(&b, r, i); /* every item of a fan-out is one step */
    ks[i].key = pc_buf_steal(&b);
    ks[i].rec = i;
  }
  qsort(ks, r->nrecords, sizeof *ks, keyed_cmp);
  double *durs = pc_xcalloc(r->nrecords, sizeof *durs);

  /* One pass per family, so each family's samples are together. */
  family(p, "pacer_step_runs", "gauge",
         "Instances of a step in the last run (one per fan-out item), by outcome.");
  for (size_t lo = 0, hi; lo < r->nrecords; lo = hi) {
    size_t count[PC_SKIPPED + 2] = {0};
    for (hi = lo; hi < r->nrecords && strcmp(ks[hi].key, ks[lo].key) == 0; hi++) {
      const struct pc_record *s = &r->records[ks[hi].rec];
      count[s->done ? (size_t)s->outcome : PC_SKIPPED + 1]++;
    }
    for (size_t o = 0; o <= PC_SKIPPED + 1; o++) {
      if (!count[o])
        continue;
      const char *labels[] = {"step", ks[lo].key, "outcome",
                              o <= PC_SKIPPED ? pc_outcome_name((enum pc_outcome)o) : "running",
                              NULL};
      sample(p, "pacer_step_runs", labels, (double)count[o], "%.0f");
    }
  }
  family(p, "pacer_step_attempts", "gauge",
         "Attempts of a leaf step in the last run, over all its instances.");
  for (size_t lo = 0, hi; lo < r->nrecords; lo = hi) {
    long attempts = 0;
    bool leaf = r->records[ks[lo].rec].kind == PC_REC_LEAF;
    for (hi = lo; hi < r->nrecords && strcmp(ks[hi].key, ks[lo].key) == 0; hi++)
      attempts += r->records[ks[hi].rec].attempts;
    if (leaf) {
      const char *labels[] = {"step", ks[lo].key, NULL};
      sample(p, "pacer_step_attempts", labels, (double)attempts, "%.0f");
    }
  }
  family(p, "pacer_step_duration_seconds", "summary",
         "How long the instances of a step ran in the last run (leaves that never ran, "
         "skipped or stopped while queued, are left out).");
  for (size_t lo = 0, hi; lo < r->nrecords; lo = hi) {
    size_t n = 0;
    double sum = 0;
    for (hi = lo; hi < r->nrecords && strcmp(ks[hi].key, ks[lo].key) == 0; hi++) {
      const struct pc_record *s = &r->records[ks[hi].rec];
      if (ran(s)) {
        durs[n++] = s->duration_ms / 1000.0;
        sum += s->duration_ms / 1000.0;
      }
    }
    qsort(durs, n, sizeof *durs, double_cmp);
    static const char *const qs[] = {"0.5", "0.9", "0.99"};
    for (size_t k = 0; k < PC_ARRAY_SIZE(qs); k++) {
      const char *labels[] = {"step", ks[lo].key, "quantile", qs[k], NULL};
      sample(p, "pacer_step_duration_seconds", labels, quantile(durs, n, atof(qs[k])), "%.6f");
    }
    const char *labels[] = {"step", ks[lo].key, NULL};
    sample(p, "pacer_step_duration_seconds_sum", labels, sum, "%.6f");
    sample(p, "pacer_step_duration_seconds_count", labels, (double)n, "%.0f");
  }
  for (size_t i = 0; i < r->nrecords; i++)
    free(ks[i].key);
  free(ks);
  free(durs);
}

/* ============================================================ the run */

/* The statistics sections (the HTTP session's): pacer_SECTION_COUNTER, and
 * pacer_SECTION_ROWS_COUNTER{ROWKEY="..."} for the rows of its table. */
static void render_stats(struct prom *p, const struct pc_stats_section *stats, size_t nstats)
{
  for (size_t k = 0; k < nstats; k++) {
    const struct pc_stats_section *sec = &stats[k];
    for (size_t c = 0; c < sec->ncounters; c++) {
      struct pc_buf n;
      pc_buf_init(&n, 1024);
      pc_buf_puts(&n, "pacer_");
      name_part(&n, sec->name);
      pc_buf_puts(&n, "_");
      name_part(&n, sec->counters[c].name);
      char *help = pc_asprintf("The last run's %s statistics: %s (docs/reports.md).",
                               sec->name, sec->counters[c].name);
      family(p, n.data, "gauge", help);
      free(help);
      sample(p, n.data, NULL, (double)sec->counters[c].value, "%.0f");
      pc_buf_free(&n);
    }
    if (!sec->rows_name || !sec->nrows)
      continue;
    for (size_t c = 0; c < sec->rows[0].ncounters; c++) {
      struct pc_buf n;
      pc_buf_init(&n, 1024);
      pc_buf_puts(&n, "pacer_");
      name_part(&n, sec->name);
      pc_buf_puts(&n, "_");
      name_part(&n, sec->row_key);
      pc_buf_puts(&n, "_");
      name_part(&n, sec->rows[0].counters[c].name);
      char *help = pc_asprintf("The last run's %s statistics per %s: %s (docs/reports.md).",
                               sec->name, sec->row_key, sec->rows[0].counters[c].name);
      family(p, n.data, "gauge", help);
      free(help);
      for (size_t i = 0; i < sec->nrows; i++) {
        if (c >= sec->rows[i].ncounters)
          continue;
        const char *labels[] = {sec->row_key, sec->rows[i].key, NULL};
        sample(p, n.data, labels, (double)sec->rows[i].counters[c].value, "%.0f");
      }
      pc_buf_free(&n);
    }
  }
}

/* last_success: Unix seconds, 0 for never; < 0 leaves the metric out. */
static void render(struct pc_buf *b, const struct pc_run_report *r, bool workflow_label,
                   double last_success)
{
  struct prom p = {b, r, workflow_label};
  double start_s = r->start_ms / 1000.0;
  if (last_success >= 0) {
    family(&p, LAST_SUCCESS, "gauge",
           "When the workflow last finished with exit code 0 (Unix time of the end of that "
           "run; 0: never, as far as pacer knows).");
    sample(&p, LAST_SUCCESS, NULL, last_success, "%.3f");
  }
  family(&p, "pacer_run_start_timestamp_seconds", "gauge",
         "When the last run started (Unix time).");
  sample(&p, "pacer_run_start_timestamp_seconds", NULL, start_s, "%.3f");
  family(&p, "pacer_run_duration_seconds", "gauge", "How long the last run took.");
  sample(&p, "pacer_run_duration_seconds", NULL, r->duration_ms / 1000.0, "%.6f");
  family(&p, "pacer_run_exit_code", "gauge", "The exit code of the last run.");
  sample(&p, "pacer_run_exit_code", NULL, r->exit_code, "%.0f");
  family(&p, "pacer_run_outcome", "gauge",
         "The outcome of the last run: 1 for the one it had, 0 for the others.");
  static const char *const run_outcomes[] = {"ok", "failed", "error", "timeout", "cancelled"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(run_outcomes); i++) {
    const char *labels[] = {"outcome", run_outcomes[i], NULL};
    bool is = r->outcome && strcmp(r->outcome, run_outcomes[i]) == 0;
    sample(&p, "pacer_run_outcome", labels, is ? 1 : 0, "%.0f");
  }

  size_t leaves[PC_SKIPPED + 1] = {0};
  long attempts = 0;
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    if (s->kind != PC_REC_LEAF)
      continue;
    attempts += s->attempts;
    if (s->done)
      leaves[s->outcome]++;
  }
  family(&p, "pacer_run_steps", "gauge",
         "Leaf steps of the last run (fan-out items count one each), by outcome.");
  for (int o = 0; o <= PC_SKIPPED; o++) {
    const char *labels[] = {"outcome", pc_outcome_name((enum pc_outcome)o), NULL};
    sample(&p, "pacer_run_steps", labels, (double)leaves[o], "%.0f");
  }
  family(&p, "pacer_run_attempts", "gauge", "Attempts of the leaf steps of the last run.");
  sample(&p, "pacer_run_attempts", NULL, (double)attempts, "%.0f");
  render_stats(&p, r->stats, r->nstats);
  render_steps(&p);
}

/* ============================================================ entry points */

/* The value of pacer_run_last_success_timestamp_seconds for this workflow
 * in the file at `path` (the one this report replaces), or 0 when there is
 * none: no file, another workflow's, not one of ours. */
static double previous_success(const struct pc_run_report *r, const char *path)
{
  if (!path)
    return 0;
  char *data = NULL;
  size_t len = 0;
  if (pc_read_file(path, PREVIOUS_MAX, &data, &len) != 0 || !data)
    return 0;
  struct pc_buf want;
  pc_buf_init(&want, REPORT_BUF_MAX);
  struct pc_buf lv;
  pc_buf_init(&lv, REPORT_BUF_MAX);
  label_value(&lv, r->wf->name);
  pc_buf_printf(&want, "\n%s{workflow=\"%s\"} ", LAST_SUCCESS, lv.data ? lv.data : "");
  pc_buf_free(&lv);
  double v = 0;
  /* The sample is at the start of a line; the file always starts with a
   * comment, so "\n" before it never misses the first line. */
  const char *at = strstr(data, want.data);
  if (at) {
    char *end;
    double x = strtod(at + want.len, &end);
    if (end != at + want.len && isfinite(x) && x >= 0)
      v = x;
  }
  pc_buf_free(&want);
  free(data);
  return v;
}

void pc__render_prometheus(struct pc_buf *b, const struct pc_run_report *r,
                           const char *previous)
{
  double last = r->exit_code == 0 ? (r->start_ms + r->duration_ms) / 1000.0
                                  : previous_success(r, previous);
  render(b, r, true, last);
}

/* ------------------------------------------------------ several runs */

/* A metric family of the text as rendered: its HELP and TYPE lines, then
 * its samples. */
struct fam {
  char *name;
  struct pc_buf head, samples;
};

/* Adds the families of `text` to fams (*n of them), a family seen before
 * getting the new samples after its own: the text format wants each
 * family's samples together, under one HELP and TYPE. */
static void add_families(struct fam **fams, size_t *n, const char *text)
{
  struct fam *cur = NULL;
  for (const char *line = text; *line;) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) + 1 : strlen(line);
    if (strncmp(line, "# HELP ", 7) == 0) {
      size_t nl = strcspn(line + 7, " \n");
      cur = NULL;
      for (size_t i = 0; i < *n && !cur; i++)
        if (strlen((*fams)[i].name) == nl && strncmp((*fams)[i].name, line + 7, nl) == 0)
          cur = &(*fams)[i];
      if (!cur) {
        *fams = pc_xrealloc(*fams, (*n + 1) * sizeof **fams);
        cur = &(*fams)[(*n)++];
        cur->name = pc_xstrndup(line + 7, nl);
        pc_buf_init(&cur->head, REPORT_BUF_MAX);
        pc_buf_init(&cur->samples, REPORT_BUF_MAX);
        pc_buf_append(&cur->head, line, len);
      }
    } else if (strncmp(line, "# TYPE ", 7) == 0) {
      if (cur && !strstr(cur->head.data, "\n# TYPE "))
        pc_buf_append(&cur->head, line, len);
    } else if (cur) {
      pc_buf_append(&cur->samples, line, len);
    }
    line += len;
  }
}

void pc__render_prometheus_runs(struct pc_buf *b, const struct pc_run_report *const *reps,
                                size_t n, const struct pc_stats_section *stats, size_t nstats,
                                const char *previous)
{
  struct fam *fams = NULL;
  size_t nfams = 0;
  for (size_t i = 0; i < n; i++) {
    struct pc_buf one;
    pc_buf_init(&one, REPORT_BUF_MAX);
    pc__render_prometheus(&one, reps[i], previous);
    if (one.data)
      add_families(&fams, &nfams, one.data);
    pc_buf_free(&one);
  }
  /* The state the runs shared (the HTTP session) is the whole command's:
   * its series carry no workflow label. */
  struct pc_buf shared;
  pc_buf_init(&shared, REPORT_BUF_MAX);
  struct prom p = {&shared, NULL, false};
  render_stats(&p, stats, nstats);
  if (shared.data)
    add_families(&fams, &nfams, shared.data);
  pc_buf_free(&shared);
  for (size_t i = 0; i < nfams; i++) {
    pc_buf_append(b, fams[i].head.data, fams[i].head.len);
    if (fams[i].samples.len)
      pc_buf_append(b, fams[i].samples.data, fams[i].samples.len);
    pc_buf_free(&fams[i].head);
    pc_buf_free(&fams[i].samples);
    free(fams[i].name);
  }
  free(fams);
}

char *pc_report_metrics(const struct pc_run_report *r, bool workflow_label, size_t *len)
{
  struct pc_buf b;
  pc_buf_init(&b, REPORT_BUF_MAX);
  render(&b, r, workflow_label,
         r->exit_code == 0 ? (r->start_ms + r->duration_ms) / 1000.0 : -1);
  char *red = pc_redact(b.data ? b.data : "", b.len, len);
  pc_buf_free(&b);
  return red;
}
