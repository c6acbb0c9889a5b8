/* show.c: requests and responses as text for people (show.h): what a
 * failing step's message shows of its exchange, and what -vv logs. */
#include "http/show.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/redact.h"

void pc_http_excerpt(struct pc_buf *b, const char *body, size_t body_len, size_t max)
{
  while (body_len > 0 && strchr(" \t\r\n", body[0])) {
    body++;
    body_len--;
  }
  bool more;
  size_t len;
  char *red = pc_redact_head(body, body_len, max, &len, &more);
  const char *s = red;
  size_t n = len > max ? max : len;
  while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--; /* end on a UTF-8 boundary */
  bool space = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
      space = true; /* runs of white space become one space */
      continue;
    }
    if (space)
      pc_buf_puts(b, " ");
    space = false;
    char c = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    pc_buf_append(b, &c, 1);
  }
  if (n < len || more)
    pc_buf_puts(b, "...");
  free(red);
}

/* Whether the start of a body reads as text: UTF-8 without control
 * characters other than white space (a sequence cut by the window is fine). */
static bool looks_like_text(const char *b, size_t len)
{
  size_t n = len < 512 ? len : 512;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t k = pc_utf8_decode((const unsigned char *)b + i, n - i, &cp);
    if (k == 0)
      return n < len && n - i < 4;
    if ((cp < 0x20 && cp != '\t' && cp != '\n' && cp != '\r' && cp != '\f') || cp == 0x7f)
      return false;
    i += k;
  }
  return true;
}

#define HEADERS_MAX 40
#define LINE_MAX_BYTES 200

void pc_http_show_body(struct pc_buf *out, const char *b, size_t len, const char *type,
                      size_t type_len, size_t max)
{
  if (len == 0) {
    pc_buf_puts(out, "\n  body: empty");
  } else if (!looks_like_text(b, len)) {
    pc_buf_printf(out, "\n  body: %zu bytes, not text", len);
    if (type)
      pc_buf_printf(out, " (%.*s)", (int)(type_len > 100 ? 100 : type_len), type);
  } else {
    pc_buf_printf(out, "\n  body (%zu bytes): ", len);
    pc_http_excerpt(out, b, len, max);
  }
}

void pc_http_show_response(struct pc_buf *out, const char *hdrs, size_t hlen, const char *body,
                           size_t blen, size_t max)
{
  /* the last response's block: from the last line that starts with HTTP/ */
  const char *end = hdrs + hlen, *start = hdrs;
  for (const char *p = hdrs; p < end;) {
    if ((size_t)(end - p) >= 5 && memcmp(p, "HTTP/", 5) == 0)
      start = p;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  const char *type = NULL;
  size_t type_len = 0, lines = 0;
  for (const char *p = start; p < end;) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    while (le > p && le[-1] == '\r')
      le--;
    size_t n = (size_t)(le - p);
    p = nl ? nl + 1 : end;
    if (n == 0)
      continue;
    const char *colon = memchr(le - n, ':', n);
    const char *line = le - n;
    size_t nlen = colon ? (size_t)(colon - line) : 0;
    const char *v = colon ? colon + 1 : le;
    while (v < le && (*v == ' ' || *v == '\t'))
      v++;
    if (nlen == 12 && strncasecmp(line, "content-type", 12) == 0) {
      type = v;
      type_len = (size_t)(le - v);
    }
    if (++lines > HEADERS_MAX) {
      if (lines == HEADERS_MAX + 1)
        pc_buf_puts(out, "\n  < ...");
    } else if (nlen == 10 && strncasecmp(line, "set-cookie", 10) == 0) {
      pc_buf_printf(out, "\n  < %.*s: (%zu bytes, not shown)", (int)nlen, line,
                    (size_t)(le - v));
    } else {
      pc_buf_printf(out, "\n  < %.*s%s", (int)(n > LINE_MAX_BYTES ? LINE_MAX_BYTES : n), line,
                    n > LINE_MAX_BYTES ? "..." : "");
    }
  }
  if (body)
    pc_http_show_body(out, body, blen, type, type_len, max);
}
