/* log.c: the single place pacer writes text. Log lines go to stderr as
 * "HH:MM:SS.mmm LEVEL [step] message" or, with --log-format json, as one JSON
 * object per line; `log` steps go to stdout. Everything passes through
 * pc_redact() first, so a secret value never reaches a terminal, a pipe or a
 * log shipper, whichever path printed it. */
#include "log.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Effectively unbounded, but finite: pc_buf's arithmetic needs max + 1 to
 * fit in a size_t, so (size_t)-1 would wrap. */
#define LOG_BUF_MAX ((size_t)1 << 40)

static struct pc_log_opts opts = {0, false, false};

/* The live display's hooks (progress.c), or NULL. */
static void (*hook_before)(void *data);
static void (*hook_after)(void *data);
static void *hook_data;

/* Secrets are few (a handful per run), so a flat array and a naive scan per
 * printed line is the simplest correct choice. */
static char **secrets;
static size_t *secret_lens;
static size_t nsecrets;

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
  }
  return false;
}

void pc_secret_add(const char *s, size_t len)
{
  if (len < 3)
    return;
  for (size_t i = 0; i < nsecrets; i++)
    if (secret_lens[i] == len && memcmp(secrets[i], s, len) == 0)
      return;
  secrets = pc_xrealloc(secrets, (nsecrets + 1) * sizeof *secrets);
  secret_lens = pc_xrealloc(secret_lens, (nsecrets + 1) * sizeof *secret_lens);
  secrets[nsecrets] = pc_xstrndup(s, len);
  secret_lens[nsecrets] = len;
  nsecrets++;
}

void pc_secrets_clear(void)
{
  for (size_t i = 0; i < nsecrets; i++)
    free(secrets[i]);
  free(secrets);
  free(secret_lens);
  secrets = NULL;
  secret_lens = NULL;
  nsecrets = 0;
}

char *pc_redact(const char *s, size_t len, size_t *outlen)
{
  struct pc_buf b;
  pc_buf_init(&b, LOG_BUF_MAX);
  size_t i = 0;
  while (i < len) {
    size_t hit = 0;
    for (size_t k = 0; k < nsecrets; k++) {
      if (secret_lens[k] <= len - i && memcmp(s + i, secrets[k], secret_lens[k]) == 0 &&
          secret_lens[k] > hit)
        hit = secret_lens[k];
    }
    if (hit) {
      pc_buf_append(&b, "***", 3);
      i += hit;
    } else {
      pc_buf_append(&b, s + i, 1);
      i++;
    }
  }
  if (outlen)
    *outlen = b.len;
  if (!b.data)
    return pc_xstrdup("");
  return pc_buf_steal(&b);
}

static const char *level_name(enum pc_log_level lvl)
{
  static const char *const names[] = {"error", "warn", "info", "debug"};
  return names[lvl];
}


void pc_log(enum pc_log_level lvl, const char *step, const char *fmt, ...)
{
  if (!pc_log_enabled(lvl))
    return;
  va_list ap;
  va_start(ap, fmt);
  char *msg = pc_vasprintf(fmt, ap);
  va_end(ap);

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
    /* Redact before escaping: a secret holding a quote or a backslash
     * would no longer match once escaped. */
    if (step) {
      char *rstep = pc_redact(step, strlen(step), NULL);
      pc_buf_puts(&b, ",\"step\":");
      pc_json_quote(&b, rstep);
      free(rstep);
    }
    char *rmsg = pc_redact(msg, strlen(msg), NULL);
    pc_buf_puts(&b, ",\"msg\":");
    pc_json_quote(&b, rmsg);
    free(rmsg);
    pc_buf_puts(&b, "}\n");
  } else {
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    static const char *const colors[] = {"\033[31m", "\033[33m", "", "\033[2m"};
    pc_buf_printf(&b, "%02d:%02d:%02d.%03d %s%-5s%s ", tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (int)((long long)now % 1000), opts.color ? colors[lvl] : "",
                  level_name(lvl), opts.color && *colors[lvl] ? "\033[0m" : "");
    if (step)
      pc_buf_printf(&b, "[%s] ", step);
    pc_buf_puts(&b, msg);
    pc_buf_puts(&b, "\n");
  }
  free(msg);
  size_t n;
  char *red = pc_redact(b.data, b.len, &n);
  emit(stderr, red, n);
  free(red);
  pc_buf_free(&b);
}

/* Writes all of `data` to `fd`. Returns 0 or -errno. A descriptor left
 * non-blocking by whoever opened it (EAGAIN) is waited for, since a line
 * must go out whole or be an error. */
static int write_all(int fd, const char *data, size_t len)
{
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd pfd = {.fd = fd, .events = POLLOUT};
      (void)poll(&pfd, 1, -1);
      continue;
    }
    if (n < 0)
      return -errno;
    if (n == 0)
      return -EIO;
    data += n;
    len -= (size_t)n;
  }
  return 0;
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
  int err = write_all(STDOUT_FILENO, red, n + 1);
  if (hook_after)
    hook_after(hook_data);
  free(red);
  return err;
}
