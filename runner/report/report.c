/* report.c: writes run reports (--report FORMAT:PATH). Each format has its
 * file: json.c, junit.c, trace.c (Chrome trace events, for Perfetto),
 * html.c (a self-contained page with an SVG timeline) and prometheus.c
 * (metrics for node_exporter's textfile collector); docs/reports.md
 * describes each, and the JSON schema is versioned there. This file holds
 * what they share: the table of formats, the escaping helpers, the records'
 * paths, and the writing.
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

#include <stdlib.h>
#include <string.h>

#include "base/redact.h"
#include "base/util.h"
#include "report/format.h"

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

void pc__json_str(struct pc_buf *b, const char *s)
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
void pc__xml_str(struct pc_buf *b, const char *s, bool attr)
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

const char *pc__kind_name(enum pc_record_kind k)
{
  static const char *const names[] = {"root", "sequence", "gather", "for_each", "step"};
  return names[k];
}

bool pc__is_instance(const struct pc_run_report *r, const struct pc_record *s)
{
  return s->item && s->parent != PC_NO_RECORD && r->records[s->parent].step == s->step;
}

double pc__as_written(double v, int decimals)
{
  char t[64];
  snprintf(t, sizeof t, "%.*f", decimals, v);
  return strtod(t, NULL);
}

double pc__ms_as_written(double v)
{
  return pc__as_written(v, 3);
}

/* How record_path writes a fan-out item. */
enum item_form { ITEM_NUMBER, ITEM_ANY, ITEM_NONE };

/* The step's stable path: the root, then each step's id (or ACTION@LINE),
 * with a fan-out item as [N] ("steps/stories[3]/fetch"), [*] (every item
 * of a fan-out one key: "steps/stories[*]/fetch") or nothing (the step,
 * not the instance: "steps/stories/fetch"). */
static void record_path(struct pc_buf *b, const struct pc_run_report *r, size_t i,
                        enum item_form form)
{
  const struct pc_record *s = &r->records[i];
  if (s->parent == PC_NO_RECORD) {
    pc_buf_puts(b, s->root_name ? s->root_name : "steps");
    return;
  }
  record_path(b, r, s->parent, form);
  if (pc__is_instance(r, s)) {
    if (form == ITEM_NUMBER)
      pc_buf_printf(b, "[%zu]", s->item);
    else if (form == ITEM_ANY)
      pc_buf_puts(b, "[*]");
    return;
  }
  pc_buf_puts(b, "/");
  if (s->step->id)
    pc_buf_puts(b, s->step->id);
  else
    pc_buf_printf(b, "%s@%d", s->action, s->step->line);
}

void pc__record_path(struct pc_buf *b, const struct pc_run_report *r, size_t i)
{
  record_path(b, r, i, ITEM_NUMBER);
}

void pc__record_key(struct pc_buf *b, const struct pc_run_report *r, size_t i)
{
  record_path(b, r, i, ITEM_ANY);
}

void pc__record_step_path(struct pc_buf *b, const struct pc_run_report *r, size_t i)
{
  record_path(b, r, i, ITEM_NONE);
}

void pc__record_title(struct pc_buf *b, const struct pc_run_report *r, size_t i)
{
  const struct pc_record *s = &r->records[i];
  const struct pc_step *st = s->step;
  if (!st) {
    pc_buf_puts(b, s->root_name ? s->root_name : "steps");
    return;
  }
  if (st->name)
    pc_buf_puts(b, st->name);
  else if (st->id)
    pc_buf_puts(b, st->id);
  else
    pc_buf_printf(b, "%s #%d", s->action, st->index);
  if (pc__is_instance(r, s)) {
    pc_buf_printf(b, "[%zu]", s->item);
    if (s->item_label)
      pc_buf_printf(b, " %s", s->item_label);
  }
}

/* ------------------------------------------------------------- public */

/* A format renders from the records alone (render), or also reads the
 * file it replaces (render_at: prometheus keeps the last success). */
static const struct {
  const char *name;
  void (*render)(struct pc_buf *b, const struct pc_run_report *r);
  void (*render_at)(struct pc_buf *b, const struct pc_run_report *r, const char *previous);
} formats[] = {
    {"json", pc__render_json, NULL},
    {"junit", pc__render_junit, NULL},
    {"trace", pc__render_trace, NULL},
    {"html", pc__render_html, NULL},
    {"prometheus", NULL, pc__render_prometheus},
};

bool pc_report_format_known(const char *format)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(formats); i++)
    if (strcmp(formats[i].name, format) == 0)
      return true;
  return false;
}

int pc_report_write(const char *format, struct pc_outfile *out, const struct pc_run_report *r,
                    char **err)
{
  size_t i = 0;
  while (i < PC_ARRAY_SIZE(formats) && strcmp(formats[i].name, format) != 0)
    i++;
  if (i == PC_ARRAY_SIZE(formats)) {
    pc_outfile_discard(out);
    *err = pc_asprintf("unknown report format \"%s\"", format);
    return -1;
  }
  /* No cap: the size follows the number of step records, which the run
   * already holds in memory. */
  struct pc_buf b;
  pc_buf_init(&b, REPORT_BUF_MAX);
  if (formats[i].render_at)
    formats[i].render_at(&b, r, out->atomic ? out->target : NULL);
  else
    formats[i].render(&b, r);
  return pc__report_emit(out, &b, err);
}

int pc__report_emit(struct pc_outfile *out, struct pc_buf *b, char **err)
{
  size_t len;
  char *red = pc_redact(b->data ? b->data : "", b->len, &len);
  pc_buf_free(b);
  int rc = pc_outfile_write(out, red, len);
  if (rc == 0) {
    rc = pc_outfile_commit(out, err);
  } else {
    *err = pc_asprintf("cannot write \"%s\": %s", out->path ? out->path : "?", strerror(-rc));
    pc_outfile_discard(out);
  }
  free(red);
  return rc ? -1 : 0;
}
