/* trace.c: W3C Trace Context ids and text for a run (trace.h). Span ids
 * come from splitmix64 seeded once from getrandom(): they must be unique
 * within a trace, not secret, and a fan-out of 100 000 HTTP items makes one
 * per attempt, so one system call per id would be waste. Trace ids are read
 * from getrandom() directly (one per run). */
#include "base/trace.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void pc_trace_random(void *out, size_t n)
{
  uint8_t *p = out;
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom(p + got, n - got, 0);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    got += (size_t)r;
  }
  if (got == n)
    return;
  /* No random source (a seccomp filter, an old kernel): the clock and the
   * pid, mixed, are unique enough for ids that are not secrets. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
               ((uint64_t)getpid() << 32);
  for (size_t i = got; i < n; i++) {
    x += 0x9e3779b97f4a7c15u;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    p[i] = (uint8_t)(z ^ (z >> 31));
  }
}

uint64_t pc_trace_new_span(struct pc_trace *t)
{
  for (;;) {
    /* splitmix64 (Steele, Lea, Flood 2014): every state gives a distinct
     * output, so ids repeat only after 2^64 of them. */
    uint64_t z = (t->rng += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    z ^= z >> 31;
    if (z)
      return z;
  }
}

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return -1; /* upper case is not valid in traceparent */
}

/* Reads 2n lower-case hex digits into n bytes; -1 on any other byte. */
static int unhex(const char *s, uint8_t *out, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

int pc_trace_parse(const char *s, uint8_t trace_id[16], uint64_t *span, uint8_t *flags)
{
  if (!s)
    return -1;
  size_t len = strlen(s);
  uint8_t version, sp[8], fl;
  if (len < PC_TRACEPARENT_LEN || unhex(s, &version, 1) != 0 || version == 0xff)
    return -1;
  /* Version 00 is exactly 55 bytes; a later version may carry more after
   * a dash, which this version does not read. */
  if (version == 0 ? len != PC_TRACEPARENT_LEN
                   : len > PC_TRACEPARENT_LEN && s[PC_TRACEPARENT_LEN] != '-')
    return -1;
  if (s[2] != '-' || s[35] != '-' || s[52] != '-')
    return -1;
  uint8_t tid[16];
  if (unhex(s + 3, tid, 16) != 0 || unhex(s + 36, sp, 8) != 0 || unhex(s + 53, &fl, 1) != 0)
    return -1;
  if (all_zero(tid, 16) || all_zero(sp, 8))
    return -1;
  memcpy(trace_id, tid, 16);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | sp[i];
  *span = v;
  *flags = fl;
  return 0;
}

void pc_trace_hex(const uint8_t *bytes, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

void pc_trace_span_hex(uint64_t span, char out[17])
{
  uint8_t b[8];
  for (int i = 7; i >= 0; i--) {
    b[i] = (uint8_t)span;
    span >>= 8;
  }
  pc_trace_hex(b, 8, out);
}

void pc_trace_format(const struct pc_trace *t, uint64_t span, char out[PC_TRACEPARENT_SIZE])
{
  char tid[33], sid[17], fl[3];
  pc_trace_hex(t->trace_id, 16, tid);
  pc_trace_span_hex(span, sid);
  pc_trace_hex(&t->flags, 1, fl);
  memcpy(out, "00-", 3);
  memcpy(out + 3, tid, 32);
  out[35] = '-';
  memcpy(out + 36, sid, 16);
  out[52] = '-';
  memcpy(out + 53, fl, 2);
  out[55] = '\0';
}

void pc_trace_init(struct pc_trace *t, const char *traceparent, const char **why)
{
  memset(t, 0, sizeof *t);
  *why = NULL;
  pc_trace_random(&t->rng, sizeof t->rng);
  if (traceparent && *traceparent) {
    uint8_t fl;
    if (pc_trace_parse(traceparent, t->trace_id, &t->parent, &fl) == 0) {
      t->joined = true;
      /* Only the sampled bit is defined; the others are passed on as 0. */
      t->flags = fl & PC_TRACE_SAMPLED;
    } else {
      *why = "TRACEPARENT is not a valid W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>, "
             "lower case): ignored, the run starts a trace of its own";
    }
  }
  if (!t->joined) {
    do
      pc_trace_random(t->trace_id, sizeof t->trace_id);
    while (all_zero(t->trace_id, sizeof t->trace_id));
    t->flags = PC_TRACE_SAMPLED;
  }
  t->run_span = pc_trace_new_span(t);
}
