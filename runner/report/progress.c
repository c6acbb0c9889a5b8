/* progress.c: the live progress display (see progress.h).
 *
 * The display owns the bottom few lines of stderr. Its invariant: `drawn`
 * lines of the last frame are on screen and the cursor sits at the start of
 * the line just below them. A tick redraws in place (cursor up, each line
 * followed by erase-to-end-of-line, then erase-below if the frame shrank),
 * written with one fwrite so the terminal never shows half a frame. Before
 * anything else is printed the log hook erases the frame (drawn becomes 0);
 * after it, the hook prints the cached frame again below the new line. Lines
 * are cut to the terminal's width and the frame to its height, because a
 * wrapped or scrolled line would break the cursor arithmetic.
 *
 * Finding what runs: the engine appends a record per step instance when it
 * starts and marks it done when it finishes (core/records.h). The display scans
 * only the records added since the last tick and keeps the ones still
 * running in a small list, so a tick costs O(new records + running), not
 * O(all records), even with a fan-out of a million items. */
#include "report/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

#define TICK_MS 100
#define MAX_LINES 12           /* status line included */
#define RATE_WINDOW_MS 4000.0  /* the rate is measured over the last 2 to 4 s */

/* A running record, with its rate window for groups. */
struct track {
  size_t rec;
  double win_t, mid_t; /* run offsets (ms): start of the window, start of the next one */
  size_t win_f, mid_f; /* children finished at those times */
  bool shown;          /* scratch for render() */
};

struct pc_progress {
  uv_timer_t timer;
  const struct pc_run_report *rep; /* borrowed */
  bool color, utf8;
  bool stopped;
  size_t scanned;        /* records [0, scanned) have been seen */
  struct track *active;  /* running records in start order */
  size_t nactive, active_cap;
  size_t leaves_done, leaves_failed;
  struct pc_buf frame;   /* the last frame, as drawn (lines end in "\033[K\n") */
  int frame_lines;
  int drawn;             /* lines of the frame on screen now */
};

/* ------------------------------------------------------------ options */

int pc_progress_parse_mode(const char *s, enum pc_progress_mode *out)
{
  static const char *const names[] = {"auto", "always", "never"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(names); i++) {
    if (strcmp(s, names[i]) == 0) {
      *out = (enum pc_progress_mode)i;
      return 0;
    }
  }
  return -1;
}

bool pc_progress_wanted(enum pc_progress_mode mode)
{
  if (mode != PC_PROGRESS_AUTO)
    return mode == PC_PROGRESS_ALWAYS;
  const char *term = getenv("TERM");
  return isatty(STDERR_FILENO) && !(term && strcmp(term, "dumb") == 0);
}

static bool locale_is_utf8(void)
{
  const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(vars); i++) {
    const char *v = getenv(vars[i]);
    if (v && *v)
      return strstr(v, "UTF-8") || strstr(v, "utf-8") || strstr(v, "UTF8") ||
             strstr(v, "utf8");
  }
  return false;
}

static void term_size(int *width, int *rows)
{
  struct winsize ws;
  *width = 80;
  *rows = 24;
  if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) {
    *width = ws.ws_col;
    *rows = ws.ws_row > 0 ? ws.ws_row : 24;
    return;
  }
  const char *c = getenv("COLUMNS");
  if (c && atoi(c) > 0)
    *width = atoi(c);
}

/* ------------------------------------------------------------- lines */

/* One line under construction: text is cut once `vis` reaches `max`
 * visible characters (UTF-8 code points; escape sequences are free). */
struct line {
  struct pc_buf *b;
  int vis, max;
  bool color;
};

static void lput(struct line *l, const char *s, const char *sgr)
{
  if (l->vis >= l->max || !*s)
    return;
  bool colored = l->color && sgr;
  if (colored)
    pc_buf_puts(l->b, sgr);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    bool starts = (*p & 0xC0) != 0x80;
    if (starts && l->vis >= l->max)
      break;
    /* Control characters would move the cursor: show them as spaces. */
    pc_buf_append(l->b, *p < 0x20 || *p == 0x7f ? " " : (const char *)p, 1);
    if (starts)
      l->vis++;
  }
  if (colored)
    pc_buf_puts(l->b, "\033[0m");
}

static void lprintf(struct line *l, const char *sgr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void lprintf(struct line *l, const char *sgr, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *s = pc_vasprintf(fmt, ap);
  va_end(ap);
  lput(l, s, sgr);
  free(s);
}

static void lend(struct line *l)
{
  pc_buf_puts(l->b, "\033[K\n");
}

/* Elapsed time at a glance: "0.4s", "12.3s", "2m05s", "1h02m". */
static void format_elapsed(double ms, char *out, size_t n)
{
  double s = ms > 0 ? ms / 1000.0 : 0;
  if (s < 60)
    snprintf(out, n, "%.1fs", s);
  else if (s < 3600)
    snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
  else
    snprintf(out, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

static void format_rate(double per_s, char *out, size_t n)
{
  snprintf(out, n, per_s < 10 ? "%.1f/s" : "%.0f/s", per_s);
}

/* ------------------------------------------------------------ tracking */

/* Now, as an offset from the run's start on the monotonic clock (as the
 * records' times are). */
static double now_off(const struct pc_progress *p)
{
  return pc_mono_ms() - p->rep->start_mono;
}

static bool is_bar(const struct pc_record *r)
{
  return r->kind == PC_REC_GATHER || r->kind == PC_REC_FOREACH;
}

static void count_done(struct pc_progress *p, const struct pc_record *r)
{
  if (r->kind != PC_REC_LEAF)
    return;
  p->leaves_done++;
  if (pc_outcome_is_failure(r->outcome))
    p->leaves_failed++;
}

/* Takes in the records started since the last scan and drops the ones that
 * finished, advancing the rate windows of running groups. */
static void scan(struct pc_progress *p, double now)
{
  const struct pc_run_report *rep = p->rep;
  for (; p->scanned < rep->nrecords; p->scanned++) {
    const struct pc_record *r = &rep->records[p->scanned];
    if (r->kind == PC_REC_ROOT)
      continue;
    if (r->done) {
      count_done(p, r);
      continue;
    }
    if (p->nactive == p->active_cap) {
      p->active_cap = p->active_cap ? p->active_cap * 2 : 64;
      p->active = pc_xrealloc(p->active, p->active_cap * sizeof *p->active);
    }
    struct track *t = &p->active[p->nactive++];
    t->rec = p->scanned;
    t->win_t = t->mid_t = r->start_off_ms;
    t->win_f = t->mid_f = 0;
  }
  size_t keep = 0;
  for (size_t i = 0; i < p->nactive; i++) {
    struct track t = p->active[i];
    const struct pc_record *r = &rep->records[t.rec];
    if (r->done) {
      count_done(p, r);
      continue;
    }
    if (is_bar(r) && now - t.mid_t >= RATE_WINDOW_MS / 2) {
      t.win_t = t.mid_t;
      t.win_f = t.mid_f;
      t.mid_t = now;
      t.mid_f = r->finished;
    }
    p->active[keep++] = t;
  }
  p->nactive = keep;
}

/* ------------------------------------------------------------- render */

static void render_bar(struct pc_progress *p, struct line *l, const struct track *t, double now)
{
  const struct pc_record *r = &p->rep->records[t->rec];
  int indent = r->depth > 1 ? (r->depth - 1) * 2 : 0;
  indent = indent > 8 ? 8 : indent;
  lprintf(l, NULL, "%*s", indent + 2, "");
  /* The label gets what the numbers leave, within reason. */
  int label_w = l->max / 3;
  label_w = label_w < 12 ? 12 : label_w > 40 ? 40 : label_w;
  struct line lab = {l->b, 0, label_w, l->color};
  lput(&lab, r->label, l->color ? "\033[1m" : NULL);
  l->vis += lab.vis;
  lprintf(l, NULL, "%*s", label_w - lab.vis + 1, "");

  int bw = l->max / 5;
  bw = bw < 10 ? 10 : bw > 30 ? 30 : bw;
  int filled = r->total ? (int)((double)r->finished * bw / (double)r->total) : 0;
  filled = filled > bw ? bw : filled;
  const char *full = p->utf8 ? "\xe2\x96\x88" : "#";  /* U+2588 */
  const char *empty = p->utf8 ? "\xe2\x96\x91" : "."; /* U+2591 */
  struct pc_buf bar;
  pc_buf_init(&bar, 4096);
  for (int i = 0; i < filled; i++)
    pc_buf_puts(&bar, full);
  lput(l, "[", NULL);
  lput(l, bar.data ? bar.data : "", r->failed ? "\033[33m" : "\033[32m");
  pc_buf_reset(&bar);
  for (int i = filled; i < bw; i++)
    pc_buf_puts(&bar, empty);
  lput(l, bar.data ? bar.data : "", "\033[2m");
  pc_buf_free(&bar);
  lput(l, "]", NULL);

  lprintf(l, NULL, " %zu/%zu", r->finished, r->total);
  /* Children queued for a pool permit are in flight but not running. */
  lprintf(l, NULL, "  %zu running", r->running - r->queued);
  if (r->queued)
    lprintf(l, "\033[2m", "  %zu queued", r->queued);
  lprintf(l, r->failed ? "\033[31m" : NULL, "  %zu failed", r->failed);
  double secs = (now - t->win_t) / 1000.0;
  if (secs >= 0.2) {
    double rate = (double)(r->finished - t->win_f) / secs;
    char rs[32];
    format_rate(rate, rs, sizeof rs);
    lprintf(l, NULL, "  %s", rs);
    if (rate > 0 && r->total > r->finished) {
      char eta[32];
      format_elapsed((double)(r->total - r->finished) / rate * 1000.0, eta, sizeof eta);
      lprintf(l, "\033[2m", "  eta %s", eta);
    }
  }
}

static void render_leaf(struct pc_progress *p, struct line *l, const struct track *t, double now)
{
  const struct pc_record *r = &p->rep->records[t->rec];
  int indent = r->depth > 1 ? (r->depth - 1) * 2 : 0;
  indent = indent > 8 ? 8 : indent;
  char dur[32];
  format_elapsed(now - (r->waiting ? r->ready_off_ms : r->start_off_ms), dur, sizeof dur);
  lprintf(l, NULL, "%*s%s ", indent + 2, "", p->utf8 ? "\xe2\x96\xb8" : ">"); /* U+25B8 */
  lput(l, r->label, NULL);
  lprintf(l, "\033[2m", r->waiting ? "  queued %s" : "  %s", dur);
}

/* Renders a frame of at most `max_lines` lines for a terminal `width` wide;
 * returns the number of lines. */
static int render(struct pc_progress *p, int width, int max_lines, struct pc_buf *out)
{
  const struct pc_run_report *rep = p->rep;
  double now = now_off(p);
  int lines = 0;
  /* The last column stays free: writing into it may wrap on some terminals. */
  struct line l = {out, 0, width - 1 > 1 ? width - 1 : 1, p->color};

  /* Leaves waiting for a pool permit are queued, not running. */
  size_t running = 0, queued = 0;
  for (size_t i = 0; i < p->nactive; i++) {
    const struct pc_record *r = &rep->records[p->active[i].rec];
    if (r->kind == PC_REC_LEAF)
      *(r->waiting ? &queued : &running) += 1;
  }
  char dur[32];
  format_elapsed(now, dur, sizeof dur);
  lput(&l, rep->wf && rep->wf->name ? rep->wf->name : "pacer", p->color ? "\033[1m" : NULL);
  lprintf(&l, NULL, "  %s  %zu running", dur, running);
  if (queued)
    lprintf(&l, NULL, "  %zu queued", queued);
  lprintf(&l, NULL, "  %zu done", p->leaves_done);
  lprintf(&l, p->leaves_failed ? "\033[31m" : NULL, "  %zu failed", p->leaves_failed);
  lend(&l);
  lines++;

  /* Bars for fan-outs and gathers; the current step of each sequence.
   * Leaves anywhere below a fan-out or gather are counted by its bar. */
  size_t want = 0;
  for (size_t i = 0; i < p->nactive; i++) {
    const struct pc_record *r = &rep->records[p->active[i].rec];
    bool in_bar = false;
    for (size_t k = r->parent; k != PC_NO_RECORD && !in_bar; k = rep->records[k].parent)
      in_bar = is_bar(&rep->records[k]);
    p->active[i].shown = is_bar(r) || (r->kind == PC_REC_LEAF && !in_bar);
    want += p->active[i].shown;
  }
  size_t room = max_lines > 1 ? (size_t)(max_lines - 1) : 0;
  size_t show = want <= room ? want : room > 0 ? room - 1 : 0;
  size_t shown = 0;
  for (size_t i = 0; i < p->nactive && shown < show; i++) {
    if (!p->active[i].shown)
      continue;
    l.vis = 0;
    if (is_bar(&rep->records[p->active[i].rec]))
      render_bar(p, &l, &p->active[i], now);
    else
      render_leaf(p, &l, &p->active[i], now);
    lend(&l);
    lines++;
    shown++;
  }
  if (shown < want && lines < max_lines) {
    l.vis = 0;
    lprintf(&l, "\033[2m", "  ... and %zu more running", want - shown);
    lend(&l);
    lines++;
  }
  return lines;
}

void pc_progress_render(struct pc_progress *p, int width, struct pc_buf *out)
{
  scan(p, now_off(p));
  render(p, width, MAX_LINES, out);
}

/* -------------------------------------------------------------- drawing */

static void put_all(const char *data, size_t len)
{
  fwrite(data, 1, len, stderr);
  fflush(stderr);
}

/* Log hook: erase the frame so the line being printed takes its place. */
static void erase_cb(void *data)
{
  struct pc_progress *p = data;
  if (p->drawn == 0)
    return;
  char seq[32];
  int n = snprintf(seq, sizeof seq, "\r\033[%dA\033[J", p->drawn);
  put_all(seq, (size_t)n);
  p->drawn = 0;
}

/* Log hook: the line is out; print the frame again below it. */
static void redraw_cb(void *data)
{
  struct pc_progress *p = data;
  if (p->stopped || p->drawn != 0 || p->frame_lines == 0)
    return;
  put_all(p->frame.data, p->frame.len);
  p->drawn = p->frame_lines;
}

static void on_tick(uv_timer_t *timer)
{
  struct pc_progress *p = PC_CONTAINER_OF(timer, struct pc_progress, timer);
  int width, rows;
  term_size(&width, &rows);
  int max_lines = rows - 1 < MAX_LINES ? rows - 1 : MAX_LINES;
  if (max_lines < 1)
    max_lines = 1;
  scan(p, now_off(p));
  pc_buf_reset(&p->frame);
  p->frame_lines = render(p, width, max_lines, &p->frame);

  /* Overwrite in place: up to the first line, each line then erase to its
   * end, then erase whatever a taller previous frame left below. */
  struct pc_buf out;
  pc_buf_init(&out, (size_t)1 << 20);
  if (p->drawn)
    pc_buf_printf(&out, "\r\033[%dA", p->drawn);
  pc_buf_append(&out, p->frame.data, p->frame.len);
  if (p->drawn > p->frame_lines)
    pc_buf_puts(&out, "\033[J");
  put_all(out.data, out.len);
  pc_buf_free(&out);
  p->drawn = p->frame_lines;
}

/* ------------------------------------------------------------ lifetime */

struct pc_progress *pc_progress_start(uv_loop_t *loop, const struct pc_run_report *rep)
{
  struct pc_progress *p = pc_xcalloc(1, sizeof *p);
  p->rep = rep;
  p->color = isatty(STDERR_FILENO) && !getenv("NO_COLOR");
  p->utf8 = locale_is_utf8();
  pc_buf_init(&p->frame, (size_t)1 << 20);
  uv_timer_init(loop, &p->timer);
  uv_timer_start(&p->timer, on_tick, TICK_MS, TICK_MS);
  /* The display never keeps the loop alive; pc_progress_stop closes it. */
  uv_unref((uv_handle_t *)&p->timer);
  pc_log_set_hooks(erase_cb, redraw_cb, p);
  return p;
}

static void on_progress_closed(uv_handle_t *h)
{
  struct pc_progress *p = PC_CONTAINER_OF(h, struct pc_progress, timer);
  pc_buf_free(&p->frame);
  free(p->active);
  free(p);
}

void pc_progress_stop(struct pc_progress *p)
{
  if (!p || p->stopped)
    return;
  erase_cb(p);
  p->stopped = true;
  pc_log_set_hooks(NULL, NULL, NULL);
  uv_close((uv_handle_t *)&p->timer, on_progress_closed);
}
