/* html.c: the HTML report (docs/reports.md, "html"): a summary, the
 * failures and an SVG timeline on one self-contained page. */
#include "report/format.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

#define HTML_MAX_BARS 5000     /* steps drawn in the HTML timeline */
#define HTML_MAX_FAILURES 200  /* failures listed in full in the HTML summary */

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
    ".cause{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#cf222e;"
    "border:1px solid #cf222e;border-radius:4px;padding:0 4px;margin-right:4px}"
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
                         const struct pc__analysis *an)
{
  char ts[40];
  const char *outcome = r->outcome ? r->outcome : "running";
  pc_buf_puts(b, "<h1>");
  pc__xml_str(b, r->wf->name, false);
  pc_buf_puts(b, " ");
  pc__html_badge(b, outcome);
  pc_buf_puts(b, "</h1>\n<p class=\"meta\">");
  pc__xml_str(b, r->wf->file, false);
  pc_buf_puts(b, " &middot; run ");
  pc__xml_str(b, r->run_id, false);
  pc_format_iso8601(r->start_ms, ts, sizeof ts);
  pc_buf_printf(b, " &middot; started %s &middot; took ", ts);
  html_duration(b, r->duration_ms);
  pc_buf_printf(b, " &middot; <b>exit code %d</b></p>\n", r->exit_code);
  if (r->wf->description) {
    pc_buf_puts(b, "<p>");
    pc__xml_str(b, r->wf->description, false);
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
                          const struct pc__analysis *an)
{
  size_t nfail = 0;
  for (size_t i = 0; i < r->nrecords; i++)
    if ((r->records[i].kind == PC_REC_LEAF || an->own_case[i]) && pc__case_is_failure(&r->records[i]))
      nfail++;
  pc_buf_printf(b, "<h2 id=\"failures\">Failures (%zu)</h2>\n", nfail);
  if (!nfail) {
    pc_buf_puts(b, "<p class=\"note\">None.</p>\n");
    return;
  }
  /* The root cause first: a fail-fast failure cancels its siblings, and
   * their records must not bury the one that caused it. */
  size_t cause = r->cause_rec < r->nrecords ? r->cause_rec : PC_NO_RECORD;
  size_t shown = 0;
  for (size_t k = 0; k <= r->nrecords && shown < HTML_MAX_FAILURES; k++) {
    size_t i = k == 0 ? cause : k - 1;
    if (i == PC_NO_RECORD || (k > 0 && i == cause))
      continue;
    const struct pc_record *s = &r->records[i];
    if (!((s->kind == PC_REC_LEAF || an->own_case[i]) && pc__case_is_failure(s)))
      continue;
    shown++;
    pc_buf_puts(b, "<div class=\"failure\"><h3>");
    if (i == cause)
      pc_buf_puts(b, "<span class=\"cause\">root cause</span> ");
    pc__xml_str(b, s->label, false);
    pc_buf_puts(b, " ");
    pc__html_badge(b, pc__rec_outcome(s));
    pc_buf_puts(b, "</h3><div class=\"meta\">");
    struct pc_buf path;
    pc_buf_init(&path, REPORT_BUF_MAX);
    pc__record_path(&path, r, i);
    pc__xml_str(b, path.data, false);
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
      pc__xml_str(b, s->method ? s->method : "", false);
      pc_buf_puts(b, " ");
      pc__xml_str(b, s->url, false);
      if (s->status)
        pc_buf_printf(b, " &rarr; %d", s->status);
    }
    pc_buf_puts(b, "</div><pre>");
    pc__xml_str(b, s->error ? s->error : "(no message)", false);
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
static void html_queue_row(struct pc_buf *b, const struct pc__analysis *an, double span, int left,
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
                          const struct pc__analysis *an)
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
    if (pc__rec_end(s) > span)
      span = pc__rec_end(s);
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
                  cls, s->kind == PC_REC_LEAF ? "" : " group", pc__rec_outcome(s), i, x, y, w, h);
    pc__xml_str(b, s->label, false);
    pc_buf_printf(b, " \xE2\x80\x94 %s, ", pc__rec_outcome(s));
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
      pc__xml_str(b, s->error, false);
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
      pc__xml_str(b, lab, false);
      pc_buf_puts(b, "</text>\n");
      free(lab);
    }
  }
  pc_buf_puts(b, "</svg>\n");
}

void pc__html_run_section(struct pc_buf *b, const struct pc_run_report *r, size_t id)
{
  struct pc__analysis an;
  pc__analyse(r, &an);
  pc_buf_printf(b, "<section id=\"file-%zu\">\n", id);
  html_summary(b, r, &an);
  html_failures(b, r, &an);
  html_timeline(b, r, &an);
  pc_buf_puts(b, "</section>\n");
  pc__analysis_free(&an);
}

void pc__html_page_start(struct pc_buf *b, const char *title, const char *outcome)
{
  pc_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>pacer: ");
  pc__xml_str(b, title, false);
  pc_buf_printf(b, " \xE2\x80\x94 %s</title>\n<style>%s</style>\n</head>\n<body>\n", outcome,
                html_css);
}

void pc__html_page_end(struct pc_buf *b)
{
  pc_buf_printf(b, "<p class=\"note\">Written by pacer %s. Reports: JSON, JUnit, trace and "
                   "HTML are described in docs/reports.md.</p>\n</body>\n</html>\n",
                PACER_VERSION);
}

void pc__html_badge(struct pc_buf *b, const char *outcome)
{
  pc_buf_puts(b, "<span class=\"badge o-");
  pc__xml_str(b, outcome, true);
  pc_buf_puts(b, "\">");
  pc__xml_str(b, outcome, false);
  pc_buf_puts(b, "</span>");
}

void pc__html_duration(struct pc_buf *b, double ms)
{
  html_duration(b, ms);
}

void pc__render_html(struct pc_buf *b, const struct pc_run_report *r)
{
  struct pc__analysis an;
  pc__analyse(r, &an);
  const char *outcome = r->outcome ? r->outcome : "running";
  pc_buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>pacer: ");
  pc__xml_str(b, r->wf->name, false);
  pc_buf_printf(b, " \xE2\x80\x94 %s</title>\n<style>%s</style>\n</head>\n<body>\n", outcome,
                html_css);
  html_summary(b, r, &an);
  html_failures(b, r, &an);
  html_timeline(b, r, &an);
  pc_buf_printf(b, "<p class=\"note\">Written by pacer %s. Reports: JSON, JUnit, trace and "
                   "HTML are described in docs/reports.md.</p>\n</body>\n</html>\n",
                PACER_VERSION);
  pc__analysis_free(&an);
}

