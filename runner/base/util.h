/* util.h: small helpers shared by every module: checked allocation, bounded
 * growable buffers, duration and rate parsing, edit distance for "did you
 * mean" hints, and clocks. Nothing here touches the loop or Lua. */
#ifndef PACER_UTIL_H
#define PACER_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define PC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define PC_CONTAINER_OF(ptr, type, field) \
  ((type *)((char *)(ptr) - offsetof(type, field)))

/* Allocation failure is not recoverable for a command-line runner: these
 * print a message and abort(), unless the emergency reserve below can be
 * given back first (then they try once more). */
void *pc_xmalloc(size_t n);
void *pc_xcalloc(size_t n, size_t size);
void *pc_xrealloc(void *p, size_t n);
char *pc_xstrdup(const char *s);
char *pc_xstrndup(const char *s, size_t n);
char *pc_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *pc_vasprintf(const char *fmt, va_list ap);

/* The emergency reserve: a block of address space held so that, when the
 * system refuses memory (RLIMIT_AS, no swap) because plugin code took it
 * all, pacer can still fail the step, run `finally` and write reports.
 * pc_mem_reserve takes it (again) if it is not held and memory allows, and
 * returns whether it is held; pc_mem_release frees it and returns whether
 * it was held. */
#define PC_MEM_RESERVE_BYTES ((size_t)16 << 20)
int pc_mem_reserve(void);
int pc_mem_release(void);

/* A growable byte buffer with a hard maximum (see curl's DYNBUF.md). The data
 * is always NUL-terminated. Appending past `max` fails with -ENOBUFS and
 * leaves the buffer unchanged. */
struct pc_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t max;
};
void pc_buf_init(struct pc_buf *b, size_t max);
int pc_buf_append(struct pc_buf *b, const void *data, size_t len);
int pc_buf_puts(struct pc_buf *b, const char *s);
int pc_buf_printf(struct pc_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pc_buf_reset(struct pc_buf *b);
/* Makes room for `extra` more bytes (and the NUL) without changing the
 * contents, for code that writes into data + len itself; -ENOBUFS past max. */
int pc_buf_reserve(struct pc_buf *b, size_t extra);
/* Hands the data to the caller (who frees it) and resets the buffer. */
char *pc_buf_steal(struct pc_buf *b);
void pc_buf_free(struct pc_buf *b);
/* Appends s as a JSON string literal (quotes included). Valid UTF-8 is
 * copied as it is; a byte that is not part of a valid UTF-8 sequence
 * becomes \ufffd, so the result is always valid UTF-8 JSON. */
void pc_json_quote(struct pc_buf *b, const char *s);

/* The length of the valid UTF-8 sequence at p (of `avail` bytes), storing
 * its code point in *cp; 0 if the bytes there are not one (a stray or
 * missing continuation byte, an overlong form, a surrogate, past U+10FFFF).
 * NUL is a valid one-byte sequence. */
size_t pc_utf8_decode(const unsigned char *p, size_t avail, uint32_t *cp);

/* "250ms", "5s", "1.5s", "2m", "1h", or a bare number of seconds.
 * Returns 0 and stores milliseconds, or -EINVAL. Negative values, NaN and
 * values above 30 days are rejected. */
int pc_parse_duration(const char *s, double *out_ms);
/* "N/s", "N/min", "N/h" (N > 0, may be fractional). Returns 0 and stores
 * permits per second, or -EINVAL. */
int pc_parse_rate(const char *s, double *per_sec);
/* Formats milliseconds as a short human duration ("250ms", "1.5s", "2m3s"). */
void pc_format_duration(double ms, char *out, size_t outlen);

/* Levenshtein distance, capped at 255. */
size_t pc_edit_distance(const char *a, const char *b);
/* The closest candidate within a distance that makes sense for the word's
 * length, or NULL. */
const char *pc_did_you_mean(const char *word, const char *const *cands, size_t n);

/* Monotonic milliseconds (uv_hrtime based) and wall-clock epoch milliseconds. */
double pc_mono_ms(void);
double pc_wall_ms(void);
/* ISO 8601 UTC with milliseconds, e.g. 2026-11-25T06:52:38.123Z. */
void pc_format_iso8601(double epoch_ms, char *out, size_t outlen);

/* Reads a whole file, refusing files larger than `max` bytes.
 * Returns 0, -errno, or -EFBIG. */
int pc_read_file(const char *path, size_t max, char **out, size_t *outlen);
/* Writes all of `data` to `fd`, going on after EINTR and a short write.
 * A descriptor left non-blocking by whoever opened it (EAGAIN) is waited
 * for with poll(), since what is written must go out whole or be an
 * error. Returns 0 or -errno (-EIO for a write of nothing). */
int pc_write_all(int fd, const void *data, size_t len);

#endif
