/* report.c: writes run reports (--report FORMAT:PATH). Every format is
 * rendered into memory, passed through secret redaction, and written
 * atomically: a temporary file beside the target, fsync, rename. So a
 * reader (CI, a dashboard) sees the old report or the new one, never half
 * of one, even if pacer is killed while writing. */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define PC_REPORT_SCHEMA_VERSION 1

/* ------------------------------------------------------------ helpers */

static void json_str(struct pc_buf *b, const char *s)
{
  if (!s) {
    pc_buf_puts(b, "null");
    return;
  }
  pc_buf_puts(b, "\"");
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': pc_buf_puts(b, "\\\""); break;
    case '\\': pc_buf_puts(b, "\\\\"); break;
    case '\n': pc_buf_puts(b, "\\n"); break;
    case '\r': pc_buf_puts(b, "\\r"); break;
    case '\t': pc_buf_puts(b, "\\t"); break;
    default:
      if (*p < 0x20)
        pc_buf_printf(b, "\\u%04x", *p);
      else
        pc_buf_append(b, p, 1);
    }
  }
  pc_buf_puts(b, "\"");
}

static const char *kind_name(enum pc_record_kind k)
{
  static const char *const names[] = {"root", "sequence", "gather", "for_each", "step"};
  return names[k];
}

/* Writes `data` to `path` atomically. */
static int write_atomic(const char *path, const char *data, size_t len)
{
  char *tmp = pc_asprintf("%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    fprintf(stderr, "pacer: cannot write report %s: %s\n", path, strerror(errno));
    free(tmp);
    return -1;
  }
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(fd, data + off, len - off);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      goto fail;
    off += (size_t)n;
  }
  if (fsync(fd) != 0)
    goto fail;
  if (close(fd) != 0) {
    fd = -1;
    goto fail;
  }
  if (rename(tmp, path) != 0) {
    fd = -1;
    goto fail;
  }
  free(tmp);
  return 0;
fail:
  fprintf(stderr, "pacer: cannot write report %s: %s\n", path, strerror(errno));
  if (fd >= 0)
    close(fd);
  unlink(tmp);
  free(tmp);
  return -1;
}

/* --------------------------------------------------------------- json */

static void render_json(struct pc_buf *b, const struct pc_run_report *r)
{
  char ts[40];
  pc_buf_printf(b, "{\"schema\":\"pacer-report\",\"version\":%d,", PC_REPORT_SCHEMA_VERSION);
  pc_buf_puts(b, "\"workflow\":{\"name\":");
  json_str(b, r->wf->name);
  pc_buf_puts(b, ",\"file\":");
  json_str(b, r->wf->file);
  pc_buf_puts(b, "},\"run\":{\"id\":");
  json_str(b, r->run_id);
  pc_format_iso8601(r->start_ms, ts, sizeof ts);
  pc_buf_puts(b, ",\"started_at\":");
  json_str(b, ts);
  pc_buf_printf(b, ",\"duration_ms\":%.0f,\"outcome\":", r->duration_ms);
  json_str(b, r->outcome);
  pc_buf_printf(b, ",\"exit_code\":%d},\"steps\":[", r->exit_code);
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    if (i)
      pc_buf_puts(b, ",");
    pc_buf_printf(b, "{\"index\":%zu,\"parent\":", i);
    if (s->parent == PC_NO_RECORD)
      pc_buf_puts(b, "null");
    else
      pc_buf_printf(b, "%zu", s->parent);
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
    json_str(b, s->done ? pc_outcome_name(s->outcome) : "running");
    pc_buf_puts(b, ",\"error\":");
    json_str(b, s->error);
    pc_format_iso8601(s->start_ms, ts, sizeof ts);
    pc_buf_puts(b, ",\"started_at\":");
    json_str(b, ts);
    pc_buf_printf(b, ",\"start_offset_ms\":%.3f,\"duration_ms\":%.3f", s->start_ms - r->start_ms,
                  s->duration_ms);
    if (s->kind == PC_REC_LEAF)
      pc_buf_printf(b, ",\"attempts\":%d,\"lane\":%d", s->attempts, s->lane);
    else
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
  pc_buf_puts(b, "]}\n");
}

/* ------------------------------------------------------------- public */

static const struct {
  const char *name;
  void (*render)(struct pc_buf *b, const struct pc_run_report *r);
} formats[] = {
    {"json", render_json},
};

bool pc_report_format_known(const char *format)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(formats); i++)
    if (strcmp(formats[i].name, format) == 0)
      return true;
  return false;
}

int pc_report_write(const char *format, const char *path, const struct pc_run_report *r)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(formats); i++) {
    if (strcmp(formats[i].name, format) != 0)
      continue;
    struct pc_buf b;
    pc_buf_init(&b, (size_t)1 << 30);
    formats[i].render(&b, r);
    size_t len;
    char *red = pc_redact(b.data ? b.data : "", b.len, &len);
    pc_buf_free(&b);
    int rc = write_atomic(path, red, len);
    free(red);
    return rc;
  }
  fprintf(stderr, "pacer: unknown report format \"%s\"\n", format);
  return -1;
}
