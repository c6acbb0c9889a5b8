/* log.c: the single place pacer writes text. Log lines go to stderr as
 * "HH:MM:SS.mmm LEVEL [step] message" or, with --log-format json, as one JSON
 * object per line; `log` steps go to stdout. Everything passes through
 * pc_redact() (redact.c) first, so a secret value never reaches a terminal,
 * a pipe or a log shipper, whichever path printed it; then log lines are
 * escaped for their format, never the other way round. */
#include "base/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/util.h"

/* Effectively unbounded, but finite: pc_buf's arithmetic needs max + 1 to
 * fit in a size_t, so (size_t)-1 would wrap. */
#define LOG_BUF_MAX ((size_t)1 << 40)

static struct pc_log_opts opts = {0, false, false};

/* The live display's hooks (progress.c), or NULL. */
static void (*hook_before)(void *data);
static void (*hook_after)(void *data);
static void *hook_data;

void pc_log_init(const struct pc_log_opts *o)
{
  opts = *o;
}

void pc_log_set_hooks(void (*before)(void *data), void (*after)(void *data), void *data)
{
  hook_before = before;
  hook_after = after;
  hook_data = data;
}

/* Writes one redacted chunk to `f` between the display hooks. */
static void emit(FILE *f, const char *data, size_t len)
{
  if (hook_before)
    hook_before(hook_data);
  fwrite(data, 1, len, f);
  fflush(f);
  if (hook_after)
    hook_after(hook_data);
}

bool pc_log_json(void)
{
  return opts.json;
}

bool pc_log_enabled(enum pc_log_level lvl)
{
  switch (lvl) {
  case PC_LOG_ERROR:
    return true;
  case PC_LOG_WARN:
  case PC_LOG_INFO:
    return opts.verbosity >= 0;
  case PC_LOG_DEBUG:
    return opts.verbosity >= 1;
  case PC_LOG_TRACE:
    return opts.verbosity >= 2;
  }
  return false;
}

static const char *level_name(enum pc_log_level lvl)
{
  static const char *const names[] = {"error", "warn", "info", "debug", "debug"};
  return names[lvl];
}

/* Appends s for a text log line: tab and newline as they are, every other
 * control character (C0, DEL, C1) and every byte that is not part of valid
 * UTF-8 as \xNN (CR as \r). */
static void put_text(struct pc_buf *b, const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s, *end = p + len;
  const unsigned char *run = p; /* start of the bytes not copied yet */
  while (p < end) {
    uint32_t cp = 0;
    size_t n = *p < 0x80 ? 1 : pc_utf8_decode(p, (size_t)(end - p), &cp);
    bool plain = n == 1 ? (*p >= 0x20 && *p != 0x7f) || *p == '\t' || *p == '\n'
                        : n > 0 && !(cp >= 0x80 && cp <= 0x9f);
    if (plain) {
      p += n;
      continue;
    }
    pc_buf_append(b, run, (size_t)(p - run));
    size_t bad = n ? n : 1;
    for (size_t i = 0; i < bad; i++) {
      if (p[i] == '\r')
        pc_buf_puts(b, "\\r");
      else
        pc_buf_printf(b, "\\x%02x", p[i]);
    }
    p += bad;
    run = p;
  }
  pc_buf_append(b, run, (size_t)(p - run));
}

static char run_id[64]; /* "" until pc_log_set_run_id */
static const char *cur_run; /* pc_log_push_run_id's (borrowed), or NULL: run_id */

/* The runs of several files, by the file name their steps' labels show
 * (pc_log_add_run). Owned; an entry whose name two runs have is kept with
 * id NULL, so that neither is taken for the other. */
struct run_name {
  char *file;
  char *id;
};
static struct run_name *runs;
static size_t nruns, runs_cap;

void pc_log_set_run_id(const char *id)
{
  snprintf(run_id, sizeof run_id, "%s", id ? id : "");
}

const char *pc_log_push_run_id(const char *id)
{
  const char *prev = cur_run;
  cur_run = id;
  return prev;
}

void pc_log_pop_run_id(const char *prev)
{
  cur_run = prev;
}

void pc_log_add_run(const char *file, const char *id)
{
  const char *base = strrchr(file, '/');
  base = base ? base + 1 : file;
  for (size_t i = 0; i < nruns; i++)
    if (strcmp(runs[i].file, base) == 0) {
      free(runs[i].id);
      runs[i].id = NULL;
      return;
    }
  if (nruns == runs_cap) {
    runs_cap = runs_cap ? 2 * runs_cap : 8;
    runs = pc_xrealloc(runs, runs_cap * sizeof *runs);
  }
  runs[nruns].file = pc_xstrdup(base);
  runs[nruns].id = pc_xstrdup(id);
  nruns++;
}

void pc_log_clear_runs(void)
{
  for (size_t i = 0; i < nruns; i++) {
    free(runs[i].file);
    free(runs[i].id);
  }
  free(runs);
  runs = NULL;
  nruns = runs_cap = 0;
}

/* The run a line naming `step` belongs to, from the file its label names:
 * the first name in its last " (FILE:LINE" (the run's own file, before a
 * sub-workflow's " › "). NULL: no registered run. */
static const char *run_of_step(const char *step)
{
  if (!nruns || !step)
    return NULL;
  const char *open = NULL;
  for (const char *p = strstr(step, " ("); p; p = strstr(p + 1, " ("))
    open = p + 2;
  const char *colon = open ? strchr(open, ':') : NULL;
  if (!colon)
    return NULL;
  size_t len = (size_t)(colon - open);
  for (size_t i = 0; i < nruns; i++)
    if (strlen(runs[i].file) == len && memcmp(runs[i].file, open, len) == 0)
      return runs[i].id;
  return NULL;
}

/* Appends ,"key":"value" with the value redacted (then quoted). */
static void json_field(struct pc_buf *b, const char *key, const char *value)
{
  size_t n;
  char *red = pc_redact(value, strlen(value), &n);
  pc_buf_printf(b, ",\"%s\":", key);
  pc_json_quote(b, red);
  free(red);
}

static void vlog(enum pc_log_level lvl, const char *step, const struct pc_log_fields *f,
                 const char *fmt, va_list ap)
{
  char *msg = pc_vasprintf(fmt, ap);

  /* Redact before escaping: a secret holding a quote, a backslash or a
   * control character would no longer match once escaped. */
  size_t msg_len, step_len = 0;
  char *rmsg = pc_redact(msg, strlen(msg), &msg_len);
  free(msg);
  char *rstep = step ? pc_redact(step, strlen(step), &step_len) : NULL;

  double now = pc_wall_ms();
  struct pc_buf b;
  pc_buf_init(&b, LOG_BUF_MAX);
  if (opts.json) {
    char ts[40];
    pc_format_iso8601(now, ts, sizeof ts);
    pc_buf_puts(&b, "{\"time\":");
    pc_json_quote(&b, ts);
    pc_buf_puts(&b, ",\"level\":");
    pc_json_quote(&b, level_name(lvl));
    const char *rid = run_of_step(step);
    if (!rid)
      rid = cur_run ? cur_run : run_id;
    if (rid[0])
      json_field(&b, "run_id", rid);
    if (rstep) {
      pc_buf_puts(&b, ",\"step\":");
      pc_json_quote(&b, rstep);
    }
    if (f && f->item)
      json_field(&b, "item", f->item);
    if (f && f->outcome)
      json_field(&b, "outcome", f->outcome);
    if (f && f->duration_ms >= 0)
      pc_buf_printf(&b, ",\"duration_ms\":%.3f", f->duration_ms);
    pc_buf_puts(&b, ",\"msg\":");
    pc_json_quote(&b, rmsg);
    pc_buf_puts(&b, "}\n");
  } else {
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    static const char *const colors[] = {"\033[31m", "\033[33m", "", "\033[2m", "\033[2m"};
    pc_buf_printf(&b, "%02d:%02d:%02d.%03d %s%-5s%s ", tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (int)((long long)now % 1000), opts.color ? colors[lvl] : "",
                  level_name(lvl), opts.color && *colors[lvl] ? "\033[0m" : "");
    if (rstep) {
      pc_buf_puts(&b, "[");
      put_text(&b, rstep, step_len);
      pc_buf_puts(&b, "] ");
    }
    put_text(&b, rmsg, msg_len);
    pc_buf_puts(&b, "\n");
  }
  free(rmsg);
  free(rstep);
  emit(stderr, b.data, b.len);
  pc_buf_free(&b);
}

void pc_log(enum pc_log_level lvl, const char *step, const char *fmt, ...)
{
  if (!pc_log_enabled(lvl))
    return;
  va_list ap;
  va_start(ap, fmt);
  vlog(lvl, step, NULL, fmt, ap);
  va_end(ap);
}

void pc_log_step(enum pc_log_level lvl, const char *step, const struct pc_log_fields *f,
                 const char *fmt, ...)
{
  if (!pc_log_enabled(lvl))
    return;
  va_list ap;
  va_start(ap, fmt);
  vlog(lvl, step, f, fmt, ap);
  va_end(ap);
}

int pc_out_line(const char *text, size_t len)
{
  size_t n;
  char *red = pc_redact(text, len, &n);
  red = pc_xrealloc(red, n + 1);
  red[n] = '\n';
  if (hook_before)
    hook_before(hook_data);
  /* Straight to the descriptor, not through stdio: a failed write must be
   * seen by this call (and not linger in a buffer to be retried, or lost,
   * later). SIGPIPE is ignored (main.c), so a reader that went away is
   * EPIPE here. */
  fflush(stdout);
  int err = pc_write_all(STDOUT_FILENO, red, n + 1);
  if (hook_after)
    hook_after(hook_data);
  free(red);
  return err;
}
