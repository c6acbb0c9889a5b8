/* util.c: the small helpers every module shares. Allocation wrappers abort
 * on failure (a command-line runner has nothing better to do), pc_buf is a
 * growable buffer with a hard ceiling in the spirit of curl's dynbuf, and the
 * parsers here accept exactly the duration and rate spellings of the
 * workflow format (SPEC.md section 2) so every module agrees on them. */
#include "base/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

/* ------------------------------------------------------------- allocation */

static void out_of_memory(size_t n)
{
  fprintf(stderr, "pacer: out of memory (allocating %zu bytes)\n", n);
  abort();
}

/* Owned here; NULL while given back. Never touched (so it costs no RSS):
 * under RLIMIT_AS what runs out is address space, and freeing the block
 * makes that much of it available to malloc again. */
static void *reserve;

int pc_mem_reserve(void)
{
  if (!reserve)
    reserve = malloc(PC_MEM_RESERVE_BYTES);
  return reserve != NULL;
}

int pc_mem_release(void)
{
  if (!reserve)
    return 0;
  free(reserve);
  reserve = NULL;
  return 1;
}

void *pc_xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if (p == NULL && pc_mem_release())
    p = malloc(n ? n : 1);
  if (p == NULL)
    out_of_memory(n);
  return p;
}

void *pc_xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL && pc_mem_release())
    p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL)
    out_of_memory(n * size);
  return p;
}

void *pc_xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if (q == NULL && pc_mem_release())
    q = realloc(p, n ? n : 1);
  if (q == NULL)
    out_of_memory(n);
  return q;
}

char *pc_xstrdup(const char *s)
{
  return pc_xstrndup(s, strlen(s));
}

/* Copies exactly n bytes (which may include NULs) and terminates them. */
char *pc_xstrndup(const char *s, size_t n)
{
  char *p = pc_xmalloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *pc_vasprintf(const char *fmt, va_list ap)
{
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) /* only an invalid format does this: a bug in the caller */
    abort();
  char *p = pc_xmalloc((size_t)n + 1);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  return p;
}

char *pc_asprintf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *p = pc_vasprintf(fmt, ap);
  va_end(ap);
  return p;
}

/* ---------------------------------------------------------------- pc_buf */

/* An initialised buffer points here until its first append, so `data` is a
 * valid empty string without init having to allocate (init cannot fail). */
static char empty_data[1];

void pc_buf_init(struct pc_buf *b, size_t max)
{
  assert(max > 0 && "every pc_buf needs a maximum size");
  b->data = empty_data;
  b->len = 0;
  b->cap = 0;
  b->max = max;
}

/* Makes room for `extra` more bytes plus the terminating NUL. */
int pc_buf_reserve(struct pc_buf *b, size_t extra)
{
  if (extra > b->max - b->len)
    return -ENOBUFS;
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need)
    cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  if (cap - 1 > b->max) /* written so that max == SIZE_MAX cannot wrap */
    cap = b->max + 1;
  if (b->cap == 0) {
    b->data = pc_xmalloc(cap);
    b->data[0] = '\0';
  } else {
    b->data = pc_xrealloc(b->data, cap);
  }
  b->cap = cap;
  return 0;
}

int pc_buf_append(struct pc_buf *b, const void *data, size_t len)
{
  if (len == 0)
    return 0;
  int err = pc_buf_reserve(b, len);
  if (err)
    return err;
  memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 0;
}

int pc_buf_puts(struct pc_buf *b, const char *s)
{
  return pc_buf_append(b, s, strlen(s));
}

int pc_buf_printf(struct pc_buf *b, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    abort();
  if (n == 0)
    return 0;
  int err = pc_buf_reserve(b, (size_t)n);
  if (err)
    return err;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void pc_buf_reset(struct pc_buf *b)
{
  b->len = 0;
  if (b->cap)
    b->data[0] = '\0';
}

char *pc_buf_steal(struct pc_buf *b)
{
  char *p = b->cap ? b->data : pc_xstrdup("");
  b->data = empty_data;
  b->len = 0;
  b->cap = 0;
  return p;
}

void pc_buf_free(struct pc_buf *b)
{
  if (b->cap)
    free(b->data);
  b->data = empty_data;
  b->len = 0;
  b->cap = 0;
}

/* ------------------------------------------------------ durations and rates */

#define MAX_DURATION_MS (30.0 * 86400.0 * 1000.0)

/* Scans an unsigned decimal number ("5", "1.5", ".5", "2e3") at *p and
 * advances past it. Signs, hex, "inf" and "nan" are not numbers here. */
static int scan_number(const char **p, double *out)
{
  const char *s = *p, *q = s;
  size_t digits = 0;
  while (*q >= '0' && *q <= '9')
    q++, digits++;
  if (*q == '.') {
    q++;
    while (*q >= '0' && *q <= '9')
      q++, digits++;
  }
  if (digits == 0)
    return -EINVAL;
  if (*q == 'e' || *q == 'E') {
    const char *e = q + 1;
    if (*e == '+' || *e == '-')
      e++;
    if (*e >= '0' && *e <= '9') {
      while (*e >= '0' && *e <= '9')
        e++;
      q = e;
    }
  }
  char tmp[64];
  if ((size_t)(q - s) >= sizeof tmp)
    return -EINVAL;
  memcpy(tmp, s, (size_t)(q - s));
  tmp[q - s] = '\0';
  double v = strtod(tmp, NULL);
  if (!isfinite(v))
    return -EINVAL;
  *out = v;
  *p = q;
  return 0;
}

/* Accepts one number with a unit, a sequence of them ("1h30m", which is what
 * pc_format_duration prints), or a single bare number of seconds. */
int pc_parse_duration(const char *s, double *out_ms)
{
  static const struct {
    const char *unit;
    double ms;
  } units[] = {
    /* "ms" and "min" must be tried before "m". */
    {"ms", 1.0}, {"min", 60000.0}, {"s", 1000.0}, {"m", 60000.0}, {"h", 3600000.0},
  };
  if (s == NULL || *s == '\0')
    return -EINVAL;
  const char *p = s;
  double total = 0;
  int parts = 0;
  while (*p) {
    double v;
    if (scan_number(&p, &v) < 0)
      return -EINVAL;
    size_t i;
    for (i = 0; i < PC_ARRAY_SIZE(units); i++) {
      size_t n = strlen(units[i].unit);
      if (strncmp(p, units[i].unit, n) == 0 &&
          !(p[n] >= 'a' && p[n] <= 'z')) {
        p += n;
        break;
      }
    }
    if (i == PC_ARRAY_SIZE(units)) {
      if (*p != '\0' || parts > 0)
        return -EINVAL;
      total = v * 1000.0; /* a bare number is seconds */
    } else {
      total += v * units[i].ms;
    }
    parts++;
  }
  if (!isfinite(total) || total < 0 || total > MAX_DURATION_MS)
    return -EINVAL;
  *out_ms = total;
  return 0;
}

int pc_parse_rate(const char *s, double *per_sec)
{
  if (s == NULL)
    return -EINVAL;
  const char *p = s;
  double n;
  if (scan_number(&p, &n) < 0 || *p != '/' || !(n > 0))
    return -EINVAL;
  p++;
  double secs;
  if (strcmp(p, "s") == 0)
    secs = 1;
  else if (strcmp(p, "min") == 0)
    secs = 60;
  else if (strcmp(p, "h") == 0)
    secs = 3600;
  else
    return -EINVAL;
  *per_sec = n / secs;
  return 0;
}

/* Prints v with up to three decimals and no trailing zeros. */
static void format_trimmed(char *out, size_t outlen, double v, const char *unit)
{
  char num[64];
  snprintf(num, sizeof num, "%.3f", v);
  char *end = num + strlen(num);
  while (end > num && end[-1] == '0')
    *--end = '\0';
  if (end > num && end[-1] == '.')
    *--end = '\0';
  snprintf(out, outlen, "%s%s", num, unit);
}

void pc_format_duration(double ms, char *out, size_t outlen)
{
  if (outlen == 0)
    return;
  if (!isfinite(ms) || ms < 0) {
    snprintf(out, outlen, "?");
    return;
  }
  if (ms < 1000) {
    format_trimmed(out, outlen, ms, "ms");
    return;
  }
  if (ms < 60000) {
    format_trimmed(out, outlen, ms / 1000.0, "s");
    return;
  }
  /* Above a minute sub-second precision is noise: whole seconds. */
  unsigned long long secs = (unsigned long long)llround(ms / 1000.0);
  unsigned long long h = secs / 3600, m = secs / 60 % 60, sec = secs % 60;
  size_t off = 0;
  out[0] = '\0';
  if (h)
    off += (size_t)snprintf(out + off, outlen - off, "%lluh", h);
  if (m && off < outlen)
    off += (size_t)snprintf(out + off, outlen - off, "%llum", m);
  if (sec && off < outlen)
    snprintf(out + off, outlen - off, "%llus", sec);
}

/* ------------------------------------------------------------ did you mean */

/* Levenshtein distance with adjacent transpositions counted as one edit
 * (optimal string alignment): "tpo" is one edit from "top", as a typist
 * sees it. Three rows of the table suffice. */
size_t pc_edit_distance(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  /* Past these sizes the answer is "far apart" for every use we have, and
   * the quadratic table would be wasted work. */
  if (la > 255 || lb > 255)
    return 255;
  size_t rows[3][256];
  size_t *prev2 = rows[0], *prev = rows[1], *row = rows[2];
  for (size_t j = 0; j <= lb; j++)
    prev[j] = j;
  for (size_t i = 1; i <= la; i++) {
    row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      if (prev[j] + 1 < best)
        best = prev[j] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
          prev2[j - 2] + 1 < best)
        best = prev2[j - 2] + 1;
      row[j] = best;
    }
    size_t *t = prev2;
    prev2 = prev;
    prev = row;
    row = t;
  }
  return prev[lb] > 255 ? 255 : prev[lb];
}

/* About a third of the word's length (at least one edit): "stpes" finds
 * "steps" and "tiemout" finds "timeout", but "base" does not find "name". */
const char *pc_did_you_mean(const char *word, const char *const *cands, size_t n)
{
  size_t limit = (strlen(word) + 1) / 3;
  if (limit == 0)
    limit = 1;
  const char *best = NULL;
  size_t best_d = limit + 1;
  size_t wlen = strlen(word);
  for (size_t i = 0; i < n; i++) {
    /* The lengths alone bound the distance from below: skip the table. */
    size_t clen = strlen(cands[i]);
    if ((clen > wlen ? clen - wlen : wlen - clen) >= best_d)
      continue;
    size_t d = pc_edit_distance(word, cands[i]);
    if (d < best_d) {
      best = cands[i];
      best_d = d;
    }
  }
  return best;
}

/* ------------------------------------------------------------------ clocks */

double pc_mono_ms(void)
{
  return (double)uv_hrtime() / 1e6;
}

double pc_wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void pc_format_iso8601(double epoch_ms, char *out, size_t outlen)
{
  long long total = (long long)floor(epoch_ms);
  time_t secs = (time_t)(total / 1000);
  int ms = (int)(total % 1000);
  if (ms < 0) { /* before 1970: keep the millisecond field positive */
    ms += 1000;
    secs -= 1;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
}

/* ------------------------------------------------------------------- files */

int pc_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -errno;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return -EISDIR;
  }
  if (S_ISREG(st.st_mode) && (unsigned long long)st.st_size > max) {
    close(fd);
    return -EFBIG;
  }
  /* The size from fstat is only a hint (pipes, /proc): read until EOF and
   * enforce `max` on what actually arrives. */
  struct pc_buf b;
  pc_buf_init(&b, max);
  char chunk[65536];
  for (;;) {
    ssize_t n = read(fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = -errno;
      close(fd);
      pc_buf_free(&b);
      return err;
    }
    if (n == 0)
      break;
    if (pc_buf_append(&b, chunk, (size_t)n) < 0) {
      close(fd);
      pc_buf_free(&b);
      return -EFBIG;
    }
  }
  close(fd);
  *outlen = b.len;
  *out = pc_buf_steal(&b);
  return 0;
}

size_t pc_utf8_decode(const unsigned char *p, size_t avail, uint32_t *cp)
{
  if (avail == 0)
    return 0;
  unsigned c = p[0];
  size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3
           : (c & 0xF8) == 0xF0 ? 4 : 0;
  if (n == 0 || avail < n)
    return 0;
  uint32_t v = n == 1 ? c : n == 2 ? c & 0x1F : n == 3 ? c & 0x0F : c & 0x07;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xC0) != 0x80)
      return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  /* No overlong forms, no surrogates, nothing past U+10FFFF. */
  if ((n == 2 && v < 0x80) || (n == 3 && v < 0x800) || (n == 4 && v < 0x10000) ||
      (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF)
    return 0;
  *cp = v;
  return n;
}

void pc_json_quote(struct pc_buf *b, const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t avail = strlen(s);
  pc_buf_puts(b, "\"");
  while (avail > 0) {
    unsigned char c = *p;
    size_t n = 1;
    switch (c) {
    case '"':
      pc_buf_puts(b, "\\\"");
      break;
    case '\\':
      pc_buf_puts(b, "\\\\");
      break;
    case '\n':
      pc_buf_puts(b, "\\n");
      break;
    case '\r':
      pc_buf_puts(b, "\\r");
      break;
    case '\t':
      pc_buf_puts(b, "\\t");
      break;
    default:
      if (c < 0x20) {
        pc_buf_printf(b, "\\u%04x", c);
      } else if (c < 0x80) {
        pc_buf_append(b, p, 1);
      } else {
        uint32_t cp;
        n = pc_utf8_decode(p, avail, &cp);
        if (n) {
          pc_buf_append(b, p, n);
        } else {
          pc_buf_puts(b, "\\ufffd"); /* a stray byte: keep the line valid JSON */
          n = 1;
        }
      }
    }
    p += n;
    avail -= n;
  }
  pc_buf_puts(b, "\"");
}

int pc_write_all(int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
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
    p += n;
    len -= (size_t)n;
  }
  return 0;
}
