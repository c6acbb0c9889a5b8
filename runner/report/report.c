/* report.c: writes run reports (--report FORMAT:PATH): json, junit, trace
 * (Chrome trace events, for Perfetto) and html (a self-contained page with
 * an SVG timeline). docs/reports.md describes each format; the JSON schema
 * is versioned there.
 *
 * Every format is rendered into memory and written through outfile.h: a
 * regular file atomically (a temporary file beside the target, fsync,
 * rename, fsync of the directory), so a reader (CI, a dashboard) sees the
 * old report or the new one, never half of one, even if pacer is killed
 * while writing; a device or a FIFO (/dev/stdout, a pipe to a collector)
 * by writing into it.
 *
 * Secrets: every string taken from the run (labels, errors, URLs) passes
 * through pc_redact() before it is escaped, because a secret holding a quote
 * or an ampersand no longer matches once escaped; then the whole rendered
 * report is redacted once more. Strings are also made valid UTF-8 (invalid
 * bytes become U+FFFD), since an error message may quote a binary response
 * body and a single stray byte makes a JSON or XML report unreadable. */
#include "report/report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

#define PC_REPORT_SCHEMA_VERSION 2
/* Reports grow with the number of step records, which the run already
 * holds in memory, so the buffer cap is only a backstop. (Not SIZE_MAX:
 * pc_buf needs max + 1 to fit in a size_t.) */
#define REPORT_BUF_MAX ((size_t)1 << 40)
#define HTML_MAX_BARS 5000     /* steps drawn in the HTML timeline */
#define HTML_MAX_FAILURES 200  /* failures listed in full in the HTML summary */

/* ============================================================ helpers */

/* Returns a malloc'd copy of `s` with secrets redacted and invalid UTF-8
 * replaced by U+FFFD. */
static char *clean_text(const char *s)
{
  size_t len;
  char *red = pc_redact(s, strlen(s), &len);
  struct pc_buf b;
  pc_buf_init(&b, REPORT_BUF_MAX);
  const unsigned char *p = (const unsigned char *)red, *end = p + len;
  while (p < end) {
    uint32_t cp;
    size_t n = pc_utf8_decode(p, (size_t)(end - p), &cp);
    if (n > 0 && *p) {
      pc_buf_append(&b, p, n);
      p += n;
    } else {
      pc_buf_puts(&b, "\xEF\xBF\xBD");
      p++;
    }
  }
  free(red);
  return b.data ? pc_buf_steal(&b) : pc_xstrdup("");
}

static void json_str(struct pc_buf *b, const char *s)
{
  if (!s) {
    pc_buf_puts(b, "null");
    return;
  }
  char *c = clean_text(s);
  pc_json_quote(b, c);
  free(c);
}

/* Escapes text for XML and HTML, in element content or in a quoted
 * attribute (where newlines and tabs are kept as character references).
 * Control characters that XML 1.0 forbids become U+FFFD. */
static void xml_str(struct pc_buf *b, const char *s, bool attr)
{
  if (!s)
    return;
  char *c = clean_text(s);
  for (const unsigned char *p = (const unsigned char *)c; *p; p++) {
    switch (*p) {
    case '&': pc_buf_puts(b, "&amp;"); break;
    case '<': pc_buf_puts(b, "&lt;"); break;
    case '>': pc_buf_puts(b, "&gt;"); break;
    case '"': pc_buf_puts(b, "&quot;"); break;
    case '\'': pc_buf_puts(b, "&#39;"); break;
    case '\n': pc_buf_puts(b, attr ? "&#10;" : "\n"); break;
    case '\t': pc_buf_puts(b, attr ? "&#9;" : "\t"); break;
    case '\r': pc_buf_puts(b, "&#13;"); break;
    default:
      if (*p < 0x20)
        pc_buf_puts(b, "\xEF\xBF\xBD");
      else
        pc_buf_append(b, p, 1);
    }
  }
  free(c);
}

static const char *kind_name(enum pc_record_kind k)
{
  static const char *const names[] = {"root", "sequence", "gather", "for_each", "step"};
  return names[k];
}

static const char *rec_outcome(const struct pc_record *s)
{
  return s->done ? pc_outcome_name(s->outcome) : "running";
}

static bool is_failure(const struct pc_record *s)
{
  return s->done && (s->outcome == PC_FAILED || s->outcome == PC_ERROR || s->outcome == PC_TIMEOUT);
}

static bool is_instance(const struct pc_run_report *r, const struct pc_record *s)
{
  return s->item && s->parent != PC_NO_RECORD && r->records[s->parent].step == s->step;
}

/* The step's stable path: the root, then each step's id (or ACTION@LINE),
 * with [N] for a fan-out item: "steps/stories[3]/fetch". */
static void record_path(struct pc_buf *b, const struct pc_run_report *r, size_t i)
{
  const struct pc_record *s = &r->records[i];
  if (s->parent == PC_NO_RECORD) {
    pc_buf_puts(b, s->root_name ? s->root_name : "steps");
    return;
  }
  record_path(b, r, s->parent);
  if (is_instance(r, s)) {
    pc_buf_printf(b, "[%zu]", s->item);
    return;
  }
  pc_buf_puts(b, "/");
  if (s->step->id)
    pc_buf_puts(b, s->step->id);
  else
    pc_buf_printf(b, "%s@%d", pc_action_name(s->step->action), s->step->line);
}

/* The end of a record, as an offset from the run's start. */
static double rec_end(const struct pc_record *s)
{
  return s->start_off_ms + s->duration_ms;
}

/* The wall-clock time of an offset: the run's one wall-clock reading plus
 * monotonic time, so a clock step during the run moves nothing. */
static double wall_at(const struct pc_run_report *r, double off_ms)
{
  return r->start_ms + off_ms;
}

/* ----------------------------------------------------------- analysis */

/* What the per-step formats share: which records stand for a failure or
 * are shown as a case of their own, and the lanes of groups. Leaves are
 * always cases. A group is a case of its own when it has no child records
 * (skipped by `if`, or it failed before starting any), when it failed with
 * no failing step below it (a group timeout, whose children end
 * `cancelled`), or, for a root, when it was cancelled with no failure below
 * it (the workflow deadline, a signal). That way every failure of the run
 * shows up exactly once. */
struct analysis {
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

/* A leaf's wait for its first permit: from when it was reached until it
 * ran, or, if it never ran, for as long as it waited. */
static bool first_wait(const struct pc_record *s, double *from, double *to)
{
  if (s->kind != PC_REC_LEAF || s->queued_ms <= 0)
    return false; /* never waited: a step is reached and runs in the same moment */
  *from = s->ready_off_ms;
  *to = s->lane >= 0 ? s->start_off_ms : s->ready_off_ms + s->queued_ms;
  return *to > *from;
}

struct qev {
  double t;
  int d;
};

static int qev_cmp(const void *a, const void *b)
{
  const struct qev *x = a, *y = b;
  if (x->t != y->t)
    return x->t < y->t ? -1 : 1;
  return x->d - y->d;
}

static void analyse_queue(const struct pc_run_report *r, struct analysis *a)
{
  size_t n = 0;
  double from, to;
  for (size_t k = 0; k < r->nrecords; k++)
    n += first_wait(&r->records[k], &from, &to) ? 2 : 0;
  struct qev *ev = pc_xcalloc(n + 1, sizeof *ev);
  n = 0;
  for (size_t k = 0; k < r->nrecords; k++) {
    const struct pc_record *s = &r->records[k];
    if (s->kind == PC_REC_LEAF) {
      a->queued_ms += s->queued_ms;
      a->never_ran = a->never_ran || s->lane < 0;
    }
    if (first_wait(s, &from, &to)) {
      ev[n++] = (struct qev){from, +1};
      ev[n++] = (struct qev){to, -1};
    }
  }
  qsort(ev, n, sizeof *ev, qev_cmp);
  a->queue_t = pc_xcalloc(n + 1, sizeof *a->queue_t);
  a->queue_d = pc_xcalloc(n + 1, sizeof *a->queue_d);
  size_t cur = 0;
  for (size_t k = 0; k < n; k++) {
    a->queue_t[k] = ev[k].t;
    a->queue_d[k] = ev[k].d;
    cur = (size_t)((long)cur + ev[k].d);
    if (cur > a->max_queued)
      a->max_queued = cur;
  }
  a->nqueue = n;
  free(ev);
}

static bool case_is_failure(const struct pc_record *s)
{
  return is_failure(s) || (s->done && s->outcome == PC_CANCELLED && s->parent == PC_NO_RECORD);
}

/* A min-heap of (end, lane) for lane assignment. */
struct lane_heap {
  double *end;
  int *lane;
  size_t n, cap;
};

static void heap_swap(struct lane_heap *h, size_t a, size_t b)
{
  double e = h->end[a];
  int l = h->lane[a];
  h->end[a] = h->end[b];
  h->lane[a] = h->lane[b];
  h->end[b] = e;
  h->lane[b] = l;
}

static void heap_push(struct lane_heap *h, double end, int lane)
{
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 16;
    h->end = pc_xrealloc(h->end, h->cap * sizeof *h->end);
    h->lane = pc_xrealloc(h->lane, h->cap * sizeof *h->lane);
  }
  size_t i = h->n++;
  h->end[i] = end;
  h->lane[i] = lane;
  while (i > 0 && h->end[(i - 1) / 2] > h->end[i]) {
    heap_swap(h, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_pop(struct lane_heap *h)
{
  h->n--;
  heap_swap(h, 0, h->n);
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && h->end[l] < h->end[m])
      m = l;
    if (r < h->n && h->end[r] < h->end[m])
      m = r;
    if (m == i)
      break;
    heap_swap(h, i, m);
    i = m;
  }
}

static void analyse(const struct pc_run_report *r, struct analysis *a)
{
  size_t n = r->nrecords;
  memset(a, 0, sizeof *a);
  a->own_case = pc_xcalloc(n + 1, sizeof *a->own_case);
  a->fail_below = pc_xcalloc(n + 1, sizeof *a->fail_below);
  a->nkids = pc_xcalloc(n + 1, sizeof *a->nkids);
  a->group_lane = pc_xcalloc(n + 1, sizeof *a->group_lane);
  /* Children come after their parents, so one backward pass sees every
   * child before its parent. */
  for (size_t k = n; k-- > 0;) {
    const struct pc_record *s = &r->records[k];
    if (s->kind == PC_REC_LEAF) {
      a->fail_below[k] = is_failure(s);
    } else {
      bool childless = a->nkids[k] == 0 && s->kind != PC_REC_ROOT;
      a->own_case[k] = childless || (case_is_failure(s) && !a->fail_below[k]);
      a->fail_below[k] = a->fail_below[k] || (a->own_case[k] && case_is_failure(s));
    }
    if (s->parent != PC_NO_RECORD) {
      a->nkids[s->parent]++;
      a->fail_below[s->parent] = a->fail_below[s->parent] || a->fail_below[k];
    }
  }
  struct lane_heap h = {0};
  for (size_t k = 0; k < n; k++) {
    const struct pc_record *s = &r->records[k];
    a->group_lane[k] = -1;
    if (s->kind == PC_REC_LEAF) {
      a->nleaves++;
      a->attempts += (size_t)s->attempts;
      a->retried += s->attempts > 1;
    } else if (s->kind != PC_REC_ROOT) {
      a->ngroups++;
      if (h.n && h.end[0] <= s->start_off_ms) {
        a->group_lane[k] = h.lane[0];
        heap_pop(&h);
      } else {
        a->group_lane[k] = a->ngroup_lanes++;
      }
      heap_push(&h, rec_end(s), a->group_lane[k]);
    }
    if (s->kind == PC_REC_LEAF || a->own_case[k]) {
      a->ncases++;
      a->counts[s->done ? (int)s->outcome : PC_SKIPPED + 1]++;
    }
  }
  free(h.end);
  free(h.lane);
  analyse_queue(r, a);
}

static void analysis_free(struct analysis *a)
{
  free(a->queue_t);
  free(a->queue_d);
  free(a->own_case);
  free(a->fail_below);
  free(a->nkids);
  free(a->group_lane);
}

/* ============================================================== json */

static void render_json(struct pc_buf *b, const struct pc_run_report *r)
{
  char ts[40];
  struct analysis an;
  analyse(r, &an);
  pc_buf_printf(b, "{\"schema\":\"pacer-report\",\"version\":%d,", PC_REPORT_SCHEMA_VERSION);
  pc_buf_puts(b, "\"pacer\":");
  json_str(b, PACER_VERSION);
  pc_buf_puts(b, ",\"workflow\":{\"name\":");
  json_str(b, r->wf->name);
  pc_buf_puts(b, ",\"file\":");
  json_str(b, r->wf->file);
  pc_buf_puts(b, ",\"description\":");
  json_str(b, r->wf->description);
  pc_buf_puts(b, "},\"run\":{\"id\":");
  json_str(b, r->run_id);
  pc_format_iso8601(r->start_ms, ts, sizeof ts);
  pc_buf_puts(b, ",\"started_at\":");
  json_str(b, ts);
  pc_buf_printf(b, ",\"duration_ms\":%.0f,\"outcome\":", r->duration_ms);
  json_str(b, r->outcome ? r->outcome : "running");
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
    json_str(b, h->host);
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
    record_path(&path, r, i);
    pc_buf_puts(b, ",\"path\":");
    json_str(b, path.data);
    pc_buf_puts(b, ",\"kind\":");
    json_str(b, kind_name(s->kind));
    pc_buf_puts(b, ",\"id\":");
    json_str(b, s->step ? s->step->id : s->root_name);
    pc_buf_puts(b, ",\"name\":");
    json_str(b, s->step ? s->step->name : NULL);
    pc_buf_puts(b, ",\"action\":");
    json_str(b, s->step ? pc_action_name(s->step->action) : NULL);
    pc_buf_puts(b, ",\"label\":");
    json_str(b, s->label);
    if (s->step)
      pc_buf_printf(b, ",\"line\":%d", s->step->line);
    if (s->item)
      pc_buf_printf(b, ",\"item\":%zu", s->item);
    pc_buf_puts(b, ",\"outcome\":");
    json_str(b, rec_outcome(s));
    pc_buf_puts(b, ",\"error\":");
    json_str(b, s->error);
    pc_format_iso8601(wall_at(r, s->start_off_ms), ts, sizeof ts);
    pc_buf_puts(b, ",\"started_at\":");
    json_str(b, ts);
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
      json_str(b, s->method);
      pc_buf_puts(b, ",\"url\":");
      json_str(b, s->url);
      pc_buf_puts(b, "}");
    }
    pc_buf_puts(b, "}");
  }
  pc_buf_free(&path);
  pc_buf_puts(b, "\n]}\n");
  analysis_free(&an);
}

/* ============================================================= junit */

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
  xml_str(b, cn, true);
  free(cn);
  free(w);
  free(s);
}

/* The case name: labels from below `suite` down to `i`, skipping a fan-out
 * record whose item instance follows (its label already says "[N]"). */
static void junit_case_name(struct pc_buf *b, const struct pc_run_report *r, size_t suite,
                            size_t i)
{
  if (i == suite) {
    pc_buf_puts(b, r->records[i].label);
    return;
  }
  size_t chain[128];
  size_t n = 0;
  for (size_t k = i; k != suite && k != PC_NO_RECORD && n < PC_ARRAY_SIZE(chain);
       k = r->records[k].parent)
    chain[n++] = k;
  bool first = true;
  while (n-- > 0) {
    const struct pc_record *s = &r->records[chain[n]];
    if (n > 0 && is_instance(r, &r->records[chain[n - 1]]))
      continue;
    if (!first)
      pc_buf_puts(b, " / ");
    pc_buf_puts(b, s->label);
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
  xml_str(b, name.data, true);
  pc_buf_free(&name);
  pc_buf_puts(b, "\" classname=\"");
  junit_classname(b, r->wf->name, r->records[suite].label);
  pc_buf_printf(b, "\" time=\"%.3f\"", s->duration_ms / 1000.0);
  if (s->step) {
    pc_buf_puts(b, " file=\"");
    xml_str(b, s->step->file, true);
    pc_buf_printf(b, "\" line=\"%d\"", s->step->line);
  }
  const char *err = s->error ? s->error : "";
  const char *tag = NULL;
  if (!s->done || s->outcome == PC_SKIPPED ||
      (s->outcome == PC_CANCELLED && s->parent != PC_NO_RECORD)) {
    pc_buf_puts(b, ">\n      <skipped message=\"");
    xml_str(b, !s->done           ? "still running when the report was written"
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
  xml_str(b, msg, true);
  pc_buf_printf(b, "\" type=\"%s\">", pc_outcome_name(s->outcome));
  free(msg);
  xml_str(b, err, false);
  pc_buf_puts(b, "\n\nstep: ");
  xml_str(b, s->label, false);
  if (s->kind == PC_REC_LEAF)
    pc_buf_printf(b, "\nattempts: %d", s->attempts);
  if (s->status || s->url) {
    pc_buf_puts(b, "\nhttp: ");
    xml_str(b, s->method ? s->method : "", false);
    pc_buf_puts(b, " ");
    xml_str(b, s->url ? s->url : "", false);
    if (s->status)
      pc_buf_printf(b, " -> %d", s->status);
  }
  pc_buf_printf(b, "</%s>\n    </testcase>\n", tag);
}

static void render_junit(struct pc_buf *b, const struct pc_run_report *r)
{
  struct analysis an;
  analyse(r, &an);
  size_t n = r->nrecords;
  /* suite_of[i]: the record whose suite holds record i. */
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
  junit_timestamp(r->start_ms, ts, sizeof ts);
  size_t failures = an.counts[PC_FAILED];
  size_t errors = an.counts[PC_ERROR] + an.counts[PC_TIMEOUT];
  size_t skipped = an.counts[PC_SKIPPED] + an.counts[PC_SKIPPED + 1] + an.counts[PC_CANCELLED];
  for (size_t i = 0; i < n; i++) /* cancelled roots are errors, not skips */
    if (an.own_case[i] && r->records[i].parent == PC_NO_RECORD &&
        r->records[i].done && r->records[i].outcome == PC_CANCELLED)
      errors++, skipped--;
  pc_buf_puts(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"");
  xml_str(b, r->wf->name, true);
  pc_buf_printf(b, "\" tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" skipped=\"%zu\" "
                   "time=\"%.3f\" timestamp=\"%s\">\n",
                an.ncases, failures, errors, skipped, r->duration_ms / 1000.0, ts);
  size_t suite_no = 0;
  for (size_t su = 0; su < n; su++) {
    if (first[su] == PC_NO_RECORD)
      continue;
    size_t t = 0, f = 0, e = 0, sk = 0;
    double sum = 0;
    for (size_t i = first[su]; i != PC_NO_RECORD; i = next[i]) {
      const struct pc_record *s = &r->records[i];
      t++;
      sum += s->duration_ms;
      if (!s->done || s->outcome == PC_SKIPPED ||
          (s->outcome == PC_CANCELLED && s->parent != PC_NO_RECORD))
        sk++;
      else if (s->outcome == PC_FAILED)
        f++;
      else if (s->outcome != PC_OK)
        e++;
    }
    const struct pc_record *sr = &r->records[su];
    double secs = (sr->parent == PC_NO_RECORD ? sum : sr->duration_ms) / 1000.0;
    junit_timestamp(wall_at(r, sr->start_off_ms), ts, sizeof ts);
    pc_buf_printf(b, "  <testsuite id=\"%zu\" name=\"", suite_no++);
    xml_str(b, sr->label, true);
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
  analysis_free(&an);
}

/* ============================================================= trace */

/* Chrome trace event format (the JSON object form), which Perfetto and
 * chrome://tracing open. One process; thread 1 ("run") holds the roots,
 * then one thread per group lane, then one per leaf lane: slices on one
 * thread never overlap, so nothing depends on the viewer's nesting rules.
 * Times are microseconds since the run started. */

static void trace_thread(struct pc_buf *b, int tid, const char *name, int sort)
{
  pc_buf_printf(b, ",\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_name\",\"args\":{"
                   "\"name\":", tid);
  json_str(b, name);
  pc_buf_printf(b, "}},\n{\"ph\":\"M\",\"pid\":1,\"tid\":%d,\"name\":\"thread_sort_index\","
                   "\"args\":{\"sort_index\":%d}}",
                tid, sort);
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

static void render_trace(struct pc_buf *b, const struct pc_run_report *r)
{
  struct analysis an;
  analyse(r, &an);
  char ts[40];
  pc_format_iso8601(r->start_ms, ts, sizeof ts);
  pc_buf_puts(b, "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"schema\":\"pacer-trace\","
                 "\"version\":2,\"workflow\":");
  json_str(b, r->wf->name);
  pc_buf_puts(b, ",\"run_id\":");
  json_str(b, r->run_id);
  pc_buf_puts(b, ",\"started_at\":");
  json_str(b, ts);
  pc_buf_puts(b, ",\"outcome\":");
  json_str(b, r->outcome ? r->outcome : "running");
  pc_buf_printf(b, ",\"exit_code\":%d},\"traceEvents\":[", r->exit_code);
  char *pname = pc_asprintf("pacer: %s", r->wf->name);
  pc_buf_puts(b, "\n{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":");
  json_str(b, pname);
  pc_buf_puts(b, "}}");
  free(pname);
  int first_leaf_tid = 2 + an.ngroup_lanes;
  trace_thread(b, 1, "run", 0);
  for (int g = 0; g < an.ngroup_lanes; g++) {
    char name[32];
    snprintf(name, sizeof name, "groups %d", g + 1);
    trace_thread(b, 2 + g, name, 1 + g);
  }
  for (int l = 0; l < r->nlanes; l++) {
    char name[32];
    snprintf(name, sizeof name, "lane %d", l + 1);
    trace_thread(b, first_leaf_tid + l, name, first_leaf_tid + l);
  }
  /* Leaves that never ran (skipped, or stopped while queued) hold no lane:
   * they are instants on a track of their own. */
  int not_run_tid = first_leaf_tid + r->nlanes;
  if (an.never_ran)
    trace_thread(b, not_run_tid, "not run", not_run_tid);
  /* Waiting for a pool permit is not running: a counter track, "queued",
   * with the number of steps waiting. */
  if (an.nqueue) {
    long cur = 0;
    for (size_t k = 0; k < an.nqueue; k++) {
      cur += an.queue_d[k];
      if (k + 1 < an.nqueue && an.queue_t[k + 1] == an.queue_t[k])
        continue; /* one sample per moment */
      pc_buf_printf(b, ",\n{\"ph\":\"C\",\"pid\":1,\"name\":\"queued\",\"ts\":%.3f,"
                       "\"args\":{\"waiting for a pool permit\":%ld}}",
                    an.queue_t[k] * 1000.0, cur);
    }
  }
  struct pc_buf path;
  pc_buf_init(&path, REPORT_BUF_MAX);
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    int tid = s->kind == PC_REC_ROOT ? 1
              : s->kind == PC_REC_LEAF ? (s->lane >= 0 ? first_leaf_tid + s->lane : not_run_tid)
                                       : 2 + an.group_lane[i];
    pc_buf_puts(b, ",\n{\"ph\":\"X\",\"pid\":1,\"tid\":");
    pc_buf_printf(b, "%d,\"ts\":%.3f,\"dur\":%.3f,\"name\":", tid, s->start_off_ms * 1000.0,
                  s->duration_ms * 1000.0);
    json_str(b, s->label);
    pc_buf_puts(b, ",\"cat\":");
    json_str(b, s->step ? pc_action_name(s->step->action) : "root");
    pc_buf_printf(b, ",\"cname\":\"%s\",\"args\":{\"index\":%zu,\"path\":", trace_color(s), i);
    pc_buf_reset(&path);
    record_path(&path, r, i);
    json_str(b, path.data);
    pc_buf_puts(b, ",\"kind\":");
    json_str(b, kind_name(s->kind));
    pc_buf_puts(b, ",\"outcome\":");
    json_str(b, rec_outcome(s));
    if (s->error) {
      pc_buf_puts(b, ",\"error\":");
      json_str(b, s->error);
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
      json_str(b, s->url);
    }
    pc_buf_puts(b, "}}");
  }
  pc_buf_free(&path);
  pc_buf_puts(b, "\n]}\n");
  analysis_free(&an);
}

/* ============================================================== html */

/* One self-contained page: inline CSS and SVG, no script, nothing fetched.
 * The timeline has a row for the run, a "queued" row (steps waiting for a
 * pool permit, as an area) when any step waited, one per group lane and one
 * per leaf lane, so concurrency reads as stacked bars. */

static const char *const html_css =
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;"
    "color:#1f2328;background:#fff}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}"
    ".meta{color:#59636e;margin:0 0 12px}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:13px;"
    "vertical-align:middle}"
    "table.counts{border-collapse:collapse}table.counts td,table.counts th{padding:3px 12px;"
    "border:1px solid #d1d9e0;text-align:right}table.counts th{background:#f6f8fa}"
    ".failure{border-left:4px solid #cf222e;padding:4px 12px;margin:10px 0;background:#fff8f8}"
    ".failure h3{font-size:14px;margin:2px 0}"
    ".failure pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;font-size:12px}"
    ".note{color:#59636e}"
    "svg{display:block;max-width:100%;height:auto;border:1px solid #d1d9e0;background:#fff}"
    "svg text{font:11px system-ui,sans-serif;fill:#1f2328}"
    "svg .axis{stroke:#d1d9e0}svg .lane{fill:#f6f8fa}"
    "svg .group{fill-opacity:.35;stroke-width:1}"
    ".o-ok{fill:#2da44e;stroke:#2da44e;background:#2da44e}"
    ".o-failed{fill:#cf222e;stroke:#cf222e;background:#cf222e}"
    ".o-error,.o-timeout{fill:#bc4c00;stroke:#bc4c00;background:#bc4c00}"
    ".o-cancelled{fill:#8c959f;stroke:#8c959f;background:#8c959f}"
    ".o-skipped{fill:#d0d7de;stroke:#afb8c1;background:#afb8c1}"
    ".o-running{fill:#bf8700;stroke:#bf8700;background:#bf8700}"
    ".queued{fill:#c297ff;stroke:none;background:#c297ff}"
    ".legend span{display:inline-block;margin-right:14px}"
    ".legend i{display:inline-block;width:10px;height:10px;margin-right:4px;"
    "border-radius:2px}";

static void html_duration(struct pc_buf *b, double ms)
{
  char d[32];
  pc_format_duration(ms, d, sizeof d);
  pc_buf_puts(b, d);
}

static void html_summary(struct pc_buf *b, const struct pc_run_report *r,
                         const struct analysis *an)
{
  char ts[40];
  const char *outcome = r->outcome ? r->outcome : "running";
  pc_buf_puts(b, "<h1>");
  xml_str(b, r->wf->name, false);
  pc_buf_puts(b, " <span class=\"badge o-");
  xml_str(b, outcome, true);
  pc_buf_puts(b, "\">");
  xml_str(b, outcome, false);
  pc_buf_puts(b, "</span></h1>\n<p class=\"meta\">");
  xml_str(b, r->wf->file, false);
  pc_buf_puts(b, " &middot; run ");
  xml_str(b, r->run_id, false);
  pc_format_iso8601(r->start_ms, ts, sizeof ts);
  pc_buf_printf(b, " &middot; started %s &middot; took ", ts);
  html_duration(b, r->duration_ms);
  pc_buf_printf(b, " &middot; <b>exit code %d</b></p>\n", r->exit_code);
  if (r->wf->description) {
    pc_buf_puts(b, "<p>");
    xml_str(b, r->wf->description, false);
    pc_buf_puts(b, "</p>\n");
  }
  pc_buf_puts(b, "<table class=\"counts\"><tr><th>steps</th>");
  for (int o = 0; o <= PC_SKIPPED + 1; o++)
    if (o <= PC_SKIPPED || an->counts[o])
      pc_buf_printf(b, "<th>%s</th>",
                    o <= PC_SKIPPED ? pc_outcome_name((enum pc_outcome)o) : "running");
  pc_buf_puts(b, "<th>max concurrency</th>");
  if (an->max_queued)
    pc_buf_puts(b, "<th>max queued</th>");
  pc_buf_printf(b, "</tr>\n<tr><td>%zu</td>", an->ncases);
  for (int o = 0; o <= PC_SKIPPED + 1; o++)
    if (o <= PC_SKIPPED || an->counts[o])
      pc_buf_printf(b, "<td>%zu</td>", an->counts[o]);
  pc_buf_printf(b, "<td>%d</td>", r->nlanes);
  if (an->max_queued)
    pc_buf_printf(b, "<td>%zu</td>", an->max_queued);
  pc_buf_puts(b, "</tr></table>\n");
}

static void html_failures(struct pc_buf *b, const struct pc_run_report *r,
                          const struct analysis *an)
{
  size_t nfail = 0;
  for (size_t i = 0; i < r->nrecords; i++)
    if ((r->records[i].kind == PC_REC_LEAF || an->own_case[i]) && case_is_failure(&r->records[i]))
      nfail++;
  pc_buf_printf(b, "<h2 id=\"failures\">Failures (%zu)</h2>\n", nfail);
  if (!nfail) {
    pc_buf_puts(b, "<p class=\"note\">None.</p>\n");
    return;
  }
  size_t shown = 0;
  for (size_t i = 0; i < r->nrecords && shown < HTML_MAX_FAILURES; i++) {
    const struct pc_record *s = &r->records[i];
    if (!((s->kind == PC_REC_LEAF || an->own_case[i]) && case_is_failure(s)))
      continue;
    shown++;
    pc_buf_puts(b, "<div class=\"failure\"><h3>");
    xml_str(b, s->label, false);
    pc_buf_puts(b, " <span class=\"badge o-");
    pc_buf_puts(b, rec_outcome(s));
    pc_buf_printf(b, "\">%s</span></h3><div class=\"meta\">", rec_outcome(s));
    struct pc_buf path;
    pc_buf_init(&path, REPORT_BUF_MAX);
    record_path(&path, r, i);
    xml_str(b, path.data, false);
    pc_buf_free(&path);
    pc_buf_puts(b, " &middot; ");
    html_duration(b, s->duration_ms);
    if (s->kind == PC_REC_LEAF && s->queued_ms >= 1) {
      pc_buf_puts(b, " (queued ");
      html_duration(b, s->queued_ms);
      pc_buf_puts(b, ")");
    }
    if (s->kind == PC_REC_LEAF)
      pc_buf_printf(b, " &middot; %d attempt%s", s->attempts, s->attempts == 1 ? "" : "s");
    if (s->url) {
      pc_buf_puts(b, " &middot; ");
      xml_str(b, s->method ? s->method : "", false);
      pc_buf_puts(b, " ");
      xml_str(b, s->url, false);
      if (s->status)
        pc_buf_printf(b, " &rarr; %d", s->status);
    }
    pc_buf_puts(b, "</div><pre>");
    xml_str(b, s->error ? s->error : "(no message)", false);
    pc_buf_puts(b, "</pre></div>\n");
  }
  if (shown < nfail)
    pc_buf_printf(b, "<p class=\"note\">... and %zu more; the JSON report lists them all.</p>\n",
                  nfail - shown);
}

/* Picks an axis step of 1, 2 or 5 times a power of ten, giving 4 to 10 ticks. */
static double tick_step(double span_ms)
{
  double raw = span_ms / 8, p = pow(10, floor(log10(raw > 0 ? raw : 1)));
  return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

/* The row of a leaf: its lane; a leaf that never ran has none, and is
 * drawn (as a sliver) on the first. */
static int leaf_row_lane(const struct pc_record *s)
{
  return s->lane >= 0 ? s->lane : 0;
}

/* The "queued" row: how many steps wait for a pool permit at each moment,
 * as an area (the most waiting within each pixel column), scaled to the
 * peak. Waiting is not running, so it is never drawn as a step's bar. */
static void html_queue_row(struct pc_buf *b, const struct analysis *an, double span, int left,
                           int plot, int y, int rh)
{
  size_t *col = pc_xcalloc((size_t)plot + 1, sizeof *col);
  size_t cur = 0;
  double prev = 0;
  for (size_t k = 0; k <= an->nqueue; k++) {
    double t = k < an->nqueue ? an->queue_t[k] : span;
    int c0 = (int)(prev / span * plot), c1 = (int)(t / span * plot);
    c0 = c0 < 0 ? 0 : c0 > plot ? plot : c0;
    c1 = c1 < 0 ? 0 : c1 > plot ? plot : c1;
    for (int c = c0; c <= c1 && cur; c++)
      col[c] = col[c] > cur ? col[c] : cur;
    if (k == an->nqueue)
      break;
    cur = (size_t)((long)cur + an->queue_d[k]);
    if (c1 <= plot && cur > col[c1])
      col[c1] = cur;
    prev = t;
  }
  double hmax = rh > 4 ? rh - 2 : rh;
  int base = y + (rh > 4 ? rh - 1 : rh);
  pc_buf_printf(b, "<path class=\"queued\" d=\"M%d %d", left, base);
  double last = 0;
  for (int c = 0; c < plot; c++) {
    double h = an->max_queued ? (double)col[c] * hmax / (double)an->max_queued : 0;
    if (c == 0 || h != last)
      pc_buf_printf(b, "H%dV%.2f", left + c, base - h);
    last = h;
  }
  pc_buf_printf(b, "H%dV%dZ\"><title>queued: steps waiting for a pool permit (at most %zu at "
                   "once)</title></path>\n",
                left + plot, base, an->max_queued);
  free(col);
}

static void html_timeline(struct pc_buf *b, const struct pc_run_report *r,
                          const struct analysis *an)
{
  /* Which records get a bar: every step, in start order, up to the cap. */
  size_t nsteps = 0, drawn = 0;
  int max_group_lane = -1, max_leaf_lane = -1;
  double span = r->duration_ms;
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    if (s->kind == PC_REC_ROOT)
      continue;
    nsteps++;
    if (drawn >= HTML_MAX_BARS)
      continue;
    drawn++;
    if (s->kind == PC_REC_LEAF && leaf_row_lane(s) > max_leaf_lane)
      max_leaf_lane = leaf_row_lane(s);
    if (s->kind != PC_REC_LEAF && an->group_lane[i] > max_group_lane)
      max_group_lane = an->group_lane[i];
    if (rec_end(s) > span)
      span = rec_end(s);
  }
  if (span <= 0)
    span = 1;
  /* Rows: the run, "queued" (if any step waited for a permit), the group
   * lanes, the leaf lanes. */
  int qrows = an->nqueue ? 1 : 0;
  int rows = 1 + qrows + (max_group_lane + 1) + (max_leaf_lane + 1);
  int rh = rows <= 40 ? 18 : rows <= 120 ? 8 : rows <= 400 ? 4 : 2;
  const int left = 110, width = 1200, top = 24, plot = width - left - 10;
  int height = top + rows * rh + 10;

  pc_buf_printf(b, "<h2 id=\"timeline\">Timeline</h2>\n<p class=\"note\">%zu bar%s (steps "
                   "and groups)", nsteps, nsteps == 1 ? "" : "s");
  pc_buf_printf(b, "; steps on %d lane%s (a lane is a slot no two overlapping steps share), "
                   "groups drawn pale above them. Hover a bar for details.",
                max_leaf_lane + 1, max_leaf_lane == 0 ? "" : "s");
  if (qrows)
    pc_buf_printf(b, " A step's bar starts when it got its pool permits and ran: the time it "
                     "waited for them is not running, and is drawn in the <i>queued</i> row "
                     "(how many steps waited, at most %zu at once).",
                  an->max_queued);
  if (drawn < nsteps)
    pc_buf_printf(b, " <b>Showing the first %zu of %zu steps</b> (in start order); the JSON "
                     "and trace reports have them all.",
                  drawn, nsteps);
  pc_buf_puts(b, "</p>\n<p class=\"legend\">");
  for (int o = 0; o <= PC_SKIPPED; o++)
    pc_buf_printf(b, "<span><i class=\"o-%s\"></i>%s</span>", pc_outcome_name((enum pc_outcome)o),
                  pc_outcome_name((enum pc_outcome)o));
  if (qrows)
    pc_buf_puts(b, "<span><i class=\"queued\"></i>queued (waiting for a pool permit)</span>");
  pc_buf_puts(b, "</p>\n");
  pc_buf_printf(b, "<svg class=\"timeline\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                   "role=\"img\" aria-label=\"timeline of the run\">\n",
                width, height, width, height);

  /* Lane backgrounds and names. */
  for (int row = 0; row < rows; row++) {
    int y = top + row * rh;
    if (row % 2)
      pc_buf_printf(b, "<rect class=\"lane\" x=\"0\" y=\"%d\" width=\"%d\" height=\"%d\"/>\n", y,
                    width, rh);
    if (rh >= 12) {
      if (row == 0)
        pc_buf_printf(b, "<text x=\"4\" y=\"%d\">run</text>\n", y + rh - 5);
      else if (row <= qrows)
        pc_buf_printf(b, "<text x=\"4\" y=\"%d\">queued</text>\n", y + rh - 5);
      else if (row <= qrows + max_group_lane + 1)
        pc_buf_printf(b, "<text x=\"4\" y=\"%d\">groups %d</text>\n", y + rh - 5,
                      row - qrows);
      else
        pc_buf_printf(b, "<text x=\"4\" y=\"%d\">lane %d</text>\n", y + rh - 5,
                      row - qrows - max_group_lane - 1);
    }
  }
  /* Axis with ticks. */
  double step = tick_step(span);
  for (double t = 0; t <= span + 1e-9; t += step) {
    double x = left + t / span * plot;
    pc_buf_printf(b, "<line class=\"axis\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>", x,
                  top - 4, x, height - 10);
    pc_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", x, top - 8);
    html_duration(b, t);
    pc_buf_puts(b, "</text>\n");
  }
  if (qrows)
    html_queue_row(b, an, span, left, plot, top + rh, rh);

  drawn = 0;
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    int row;
    if (s->kind == PC_REC_ROOT) {
      row = 0;
    } else {
      if (drawn >= HTML_MAX_BARS)
        continue;
      drawn++;
      row = s->kind == PC_REC_LEAF ? 1 + qrows + (max_group_lane + 1) + leaf_row_lane(s)
                                   : 1 + qrows + an->group_lane[i];
    }
    double x = left + s->start_off_ms / span * plot;
    double w = s->duration_ms / span * plot;
    if (w < 1)
      w = 1;
    if (x < left)
      x = left;
    int y = top + row * rh + (rh > 4 ? 1 : 0);
    int h = rh > 4 ? rh - 2 : rh;
    const char *cls = s->kind == PC_REC_ROOT ? "root" : "bar";
    pc_buf_printf(b, "<rect class=\"%s%s o-%s\" data-index=\"%zu\" x=\"%.2f\" y=\"%d\" "
                     "width=\"%.2f\" height=\"%d\"><title>",
                  cls, s->kind == PC_REC_LEAF ? "" : " group", rec_outcome(s), i, x, y, w, h);
    xml_str(b, s->label, false);
    pc_buf_printf(b, " \xE2\x80\x94 %s, ", rec_outcome(s));
    html_duration(b, s->duration_ms);
    if (s->kind != PC_REC_LEAF && s->kind != PC_REC_ROOT)
      pc_buf_printf(b, ", %zu/%zu finished, %zu failed", s->finished, s->total, s->failed);
    if (s->kind == PC_REC_LEAF && s->queued_ms >= 1) {
      pc_buf_puts(b, s->lane >= 0 ? ", after waiting " : ", never ran: waited ");
      html_duration(b, s->queued_ms);
      pc_buf_puts(b, " for a pool permit");
    }
    if (s->attempts > 1)
      pc_buf_printf(b, ", %d attempts", s->attempts);
    if (s->error) {
      pc_buf_puts(b, "\n");
      xml_str(b, s->error, false);
    }
    pc_buf_puts(b, "</title></rect>\n");
    /* A label inside bars wide enough to hold a few characters. */
    if (rh >= 12 && w >= 40) {
      size_t chars = (size_t)((w - 6) / 6.5);
      char *lab = pc_xstrdup(s->label);
      size_t len = strlen(lab);
      if (len > chars) {
        size_t cut = chars > 1 ? chars - 1 : 0;
        while (cut > 0 && ((unsigned char)lab[cut] & 0xC0) == 0x80)
          cut--;
        lab[cut] = '\0';
        lab = pc_xrealloc(lab, cut + 4);
        strcat(lab, "\xE2\x80\xA6");
      }
      pc_buf_printf(b, "<text x=\"%.2f\" y=\"%d\" pointer-events=\"none\">", x + 3, y + h - 4);
      xml_str(b, lab, false);
      pc_buf_puts(b, "</text>\n");
      free(lab);
    }
  }
  pc_buf_puts(b, "</svg>\n");
}

static void render_html(struct pc_buf *b, const struct pc_run_report *r)
{
  struct analysis an;
  analyse(r, &an);
  const char *outcome = r->outcome ? r->outcome : "running";
  pc_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>pacer: ");
  xml_str(b, r->wf->name, false);
  pc_buf_printf(b, " \xE2\x80\x94 %s</title>\n<style>%s</style>\n</head>\n<body>\n", outcome,
                html_css);
  html_summary(b, r, &an);
  html_failures(b, r, &an);
  html_timeline(b, r, &an);
  pc_buf_printf(b, "<p class=\"note\">Written by pacer %s. Reports: JSON, JUnit, trace and "
                   "HTML are described in docs/reports.md.</p>\n</body>\n</html>\n",
                PACER_VERSION);
  analysis_free(&an);
}

/* ------------------------------------------------------------- public */

static const struct {
  const char *name;
  void (*render)(struct pc_buf *b, const struct pc_run_report *r);
} formats[] = {
    {"json", render_json},
    {"junit", render_junit},
    {"trace", render_trace},
    {"html", render_html},
};

bool pc_report_format_known(const char *format)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(formats); i++)
    if (strcmp(formats[i].name, format) == 0)
      return true;
  return false;
}

int pc_report_write(const char *format, struct pc_outfile *out, const struct pc_run_report *r)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(formats); i++) {
    if (strcmp(formats[i].name, format) != 0)
      continue;
    /* No cap: the size follows the number of step records, which the run
     * already holds in memory. */
    struct pc_buf b;
    pc_buf_init(&b, REPORT_BUF_MAX);
    formats[i].render(&b, r);
    size_t len;
    char *red = pc_redact(b.data ? b.data : "", b.len, &len);
    pc_buf_free(&b);
    char *path = pc_xstrdup(out->path ? out->path : "?");
    char *err = NULL;
    int rc = pc_outfile_write(out, red, len);
    if (rc == 0) {
      rc = pc_outfile_commit(out, &err);
    } else {
      err = pc_asprintf("cannot write \"%s\": %s", path, strerror(-rc));
      pc_outfile_discard(out);
    }
    if (rc)
      fprintf(stderr, "pacer: report %s: %s\n", format, err);
    free(err);
    free(path);
    free(red);
    return rc ? -1 : 0;
  }
  fprintf(stderr, "pacer: unknown report format \"%s\"\n", format);
  return -1;
}
