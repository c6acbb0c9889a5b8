/* junit.c: the JUnit XML report (docs/reports.md, "junit"), for CI
 * systems that show test results. */
#include "report/format.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* The layout, chosen for GitLab, Jenkins and the GitHub JUnit actions,
 * which all handle one level of suites best: one <testsuites> for the run;
 * one <testsuite> per top-level group (a top-level gather, for_each or
 * steps), plus one per root ("steps", "finally") for the top-level leaves.
 * A case is named by its path below its suite, labels joined by " / ". */

static void junit_timestamp(double ms, char *out, size_t n)
{
  char ts[40];
  pc_format_iso8601(ms, ts, sizeof ts);
  snprintf(out, n, "%.19s", ts); /* the JUnit schema's xs:dateTime, no zone */
}

/* Jenkins splits classname at dots into package and class. */
static void junit_classname(struct pc_buf *b, const char *wf, const char *suite)
{
  char *w = pc_xstrdup(wf), *s = pc_xstrdup(suite);
  for (char *p = w; *p; p++)
    if (*p == '.')
      *p = '_';
  for (char *p = s; *p; p++)
    if (*p == '.')
      *p = '_';
  char *cn = pc_asprintf("%s.%s", w, s);
  pc__xml_str(b, cn, true);
  free(cn);
  free(w);
  free(s);
}

/* The case name: the titles (pc__record_title: names, ids, item labels,
 * never line numbers) from below `suite` down to `i`, joined by " / ",
 * skipping a fan-out record whose item instance follows (the item's title
 * already says "stories[3]"). */
static void junit_case_name(struct pc_buf *b, const struct pc_run_report *r, size_t suite,
                            size_t i)
{
  if (i == suite) {
    pc__record_title(b, r, i);
    return;
  }
  size_t chain[128];
  size_t n = 0;
  for (size_t k = i; k != suite && k != PC_NO_RECORD && n < PC_ARRAY_SIZE(chain);
       k = r->records[k].parent)
    chain[n++] = k;
  bool first = true;
  while (n-- > 0) {
    if (n > 0 && pc__is_instance(r, &r->records[chain[n - 1]]))
      continue;
    if (!first)
      pc_buf_puts(b, " / ");
    pc__record_title(b, r, chain[n]);
    first = false;
  }
}

static void junit_case(struct pc_buf *b, const struct pc_run_report *r, size_t suite, size_t i)
{
  const struct pc_record *s = &r->records[i];
  struct pc_buf name;
  pc_buf_init(&name, REPORT_BUF_MAX);
  junit_case_name(&name, r, suite, i);
  pc_buf_puts(b, "    <testcase name=\"");
  pc__xml_str(b, name.data, true);
  pc_buf_free(&name);
  pc_buf_puts(b, "\" classname=\"");
  struct pc_buf sname;
  pc_buf_init(&sname, REPORT_BUF_MAX);
  pc__record_title(&sname, r, suite);
  junit_classname(b, r->wf->name, sname.data);
  pc_buf_free(&sname);
  /* durations as the JSON report writes them, so that a merged report's
   * JUnit is the run's to the millisecond (pc__ms_as_written) */
  pc_buf_printf(b, "\" time=\"%.3f\"", pc__ms_as_written(s->duration_ms) / 1000.0);
  if (s->step) {
    pc_buf_puts(b, " file=\"");
    pc__xml_str(b, s->step->file, true);
    pc_buf_printf(b, "\" line=\"%d\"", s->step->line);
  }
  const char *err = s->error ? s->error : "";
  const char *tag = NULL;
  if (!s->done || s->outcome == PC_SKIPPED ||
      (s->outcome == PC_CANCELLED && s->parent != PC_NO_RECORD)) {
    pc_buf_puts(b, ">\n      <skipped message=\"");
    pc__xml_str(b, !s->done           ? "still running when the report was written"
               : s->error         ? s->error
               : s->outcome == PC_SKIPPED ? "skipped: `if` was false"
                                  : "cancelled",
            true);
    pc_buf_puts(b, "\"/>\n    </testcase>\n");
    return;
  }
  if (s->outcome == PC_FAILED)
    tag = "failure";
  else if (s->outcome != PC_OK)
    tag = "error";
  if (!tag) {
    pc_buf_puts(b, "/>\n");
    return;
  }
  /* message: the first line, shortened; the body: everything. */
  size_t mlen = strcspn(err, "\n");
  char *msg = pc_xstrndup(err, mlen > 500 ? 500 : mlen);
  pc_buf_printf(b, ">\n      <%s message=\"", tag);
  pc__xml_str(b, msg, true);
  pc_buf_printf(b, "\" type=\"%s\">", pc_outcome_name(s->outcome));
  free(msg);
  pc__xml_str(b, err, false);
  pc_buf_puts(b, "\n\nstep: ");
  pc__xml_str(b, s->label, false);
  if (s->kind == PC_REC_LEAF)
    pc_buf_printf(b, "\nattempts: %d", s->attempts);
  if (s->status || s->url) {
    pc_buf_puts(b, "\nhttp: ");
    pc__xml_str(b, s->method ? s->method : "", false);
    pc_buf_puts(b, " ");
    pc__xml_str(b, s->url ? s->url : "", false);
    if (s->status)
      pc_buf_printf(b, " -> %d", s->status);
  }
  pc_buf_printf(b, "</%s>\n    </testcase>\n", tag);
}

/* suite_of[i]: the record whose suite holds record i (malloc'd). */
static size_t *junit_suites(const struct pc_run_report *r)
{
  size_t n = r->nrecords;
  size_t *suite_of = pc_xcalloc(n + 1, sizeof *suite_of);
  for (size_t i = 0; i < n; i++) {
    const struct pc_record *s = &r->records[i];
    if (s->parent == PC_NO_RECORD)
      suite_of[i] = i;
    else if (r->records[s->parent].parent == PC_NO_RECORD)
      suite_of[i] = s->kind == PC_REC_LEAF ? s->parent : i;
    else
      suite_of[i] = suite_of[s->parent];
  }
  return suite_of;
}

/* The counts of a run's cases as the <testsuites> element gives them. */
void pc__junit_counts(const struct pc_run_report *r, struct pc__junit_counts *c)
{
  struct pc__analysis an;
  pc__analyse(r, &an);
  c->tests = an.ncases;
  c->failures = an.counts[PC_FAILED];
  c->errors = an.counts[PC_ERROR] + an.counts[PC_TIMEOUT];
  c->skipped = an.counts[PC_SKIPPED] + an.counts[PC_SKIPPED + 1] + an.counts[PC_CANCELLED];
  for (size_t i = 0; i < r->nrecords; i++) /* cancelled roots are errors, not skips */
    if (an.own_case[i] && r->records[i].parent == PC_NO_RECORD &&
        r->records[i].done && r->records[i].outcome == PC_CANCELLED)
      c->errors++, c->skipped--;
  pc__analysis_free(&an);
}

void pc__junit_file_suite(struct pc_buf *b, const struct pc_run_report *r, size_t id)
{
  struct pc__analysis an;
  pc__analyse(r, &an);
  struct pc__junit_counts c;
  pc__junit_counts(r, &c);
  size_t *suite_of = junit_suites(r);
  char ts[40];
  junit_timestamp(pc__ms_as_written(r->start_ms), ts, sizeof ts);
  pc_buf_printf(b, "  <testsuite id=\"%zu\" name=\"", id);
  pc__xml_str(b, r->wf->file, true);
  pc_buf_printf(b, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
                   "time=\"%.3f\" timestamp=\"%s\">\n",
                c.tests, c.failures, c.errors, c.skipped,
                pc__as_written(r->duration_ms, 0) / 1000.0, ts);
  for (size_t i = 0; i < r->nrecords; i++)
    if (r->records[i].kind == PC_REC_LEAF || an.own_case[i])
      junit_case(b, r, suite_of[i], i);
  pc_buf_puts(b, "  </testsuite>\n");
  free(suite_of);
  pc__analysis_free(&an);
}

void pc__render_junit(struct pc_buf *b, const struct pc_run_report *r)
{
  struct pc__analysis an;
  pc__analyse(r, &an);
  size_t n = r->nrecords;
  size_t *suite_of = junit_suites(r);
  /* Cases of each suite, chained in record order. */
  size_t *first = pc_xcalloc(n + 1, sizeof *first), *last = pc_xcalloc(n + 1, sizeof *last),
         *next = pc_xcalloc(n + 1, sizeof *next);
  for (size_t i = 0; i < n; i++)
    first[i] = last[i] = next[i] = PC_NO_RECORD;
  for (size_t i = 0; i < n; i++) {
    if (!(r->records[i].kind == PC_REC_LEAF || an.own_case[i]))
      continue;
    size_t su = suite_of[i];
    if (first[su] == PC_NO_RECORD)
      first[su] = i;
    else
      next[last[su]] = i;
    last[su] = i;
  }

  char ts[40];
  junit_timestamp(pc__ms_as_written(r->start_ms), ts, sizeof ts);
  size_t failures = an.counts[PC_FAILED];
  size_t errors = an.counts[PC_ERROR] + an.counts[PC_TIMEOUT];
  size_t skipped = an.counts[PC_SKIPPED] + an.counts[PC_SKIPPED + 1] + an.counts[PC_CANCELLED];
  for (size_t i = 0; i < n; i++) /* cancelled roots are errors, not skips */
    if (an.own_case[i] && r->records[i].parent == PC_NO_RECORD &&
        r->records[i].done && r->records[i].outcome == PC_CANCELLED)
      errors++, skipped--;
  pc_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"");
  pc__xml_str(b, r->wf->name, true);
  pc_buf_printf(b, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
                   "time=\"%.3f\" timestamp=\"%s\">\n",
                an.ncases, failures, errors, skipped, pc__as_written(r->duration_ms, 0) / 1000.0,
                ts);
  size_t suite_no = 0;
  for (size_t su = 0; su < n; su++) {
    if (first[su] == PC_NO_RECORD)
      continue;
    size_t t = 0, f = 0, e = 0, sk = 0;
    double sum = 0;
    for (size_t i = first[su]; i != PC_NO_RECORD; i = next[i]) {
      const struct pc_record *s = &r->records[i];
      t++;
      sum += pc__ms_as_written(s->duration_ms);
      if (!s->done || s->outcome == PC_SKIPPED ||
          (s->outcome == PC_CANCELLED && s->parent != PC_NO_RECORD))
        sk++;
      else if (s->outcome == PC_FAILED)
        f++;
      else if (s->outcome != PC_OK)
        e++;
    }
    const struct pc_record *sr = &r->records[su];
    double secs = (sr->parent == PC_NO_RECORD ? sum : pc__ms_as_written(sr->duration_ms)) / 1000.0;
    junit_timestamp(pc__wall_at(r, sr->start_off_ms), ts, sizeof ts);
    pc_buf_printf(b, "  <testsuite id=\"%zu\" name=\"", suite_no++);
    struct pc_buf sname;
    pc_buf_init(&sname, REPORT_BUF_MAX);
    pc__record_title(&sname, r, su);
    pc__xml_str(b, sname.data, true);
    pc_buf_free(&sname);
    pc_buf_printf(b, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
                     "time=\"%.3f\" timestamp=\"%s\">\n",
                  t, f, e, sk, secs, ts);
    for (size_t i = first[su]; i != PC_NO_RECORD; i = next[i])
      junit_case(b, r, su, i);
    pc_buf_puts(b, "  </testsuite>\n");
  }
  pc_buf_puts(b, "</testsuites>\n");
  free(suite_of);
  free(first);
  free(last);
  free(next);
  pc__analysis_free(&an);
}

