/* rules.c: the decisions of HTTP that depend on nothing but their inputs:
 * header names and values, redirect statuses, origins, Retry-After, the
 * statuses save_to keeps, the header block of a response. */
#include "http/internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/redact.h"

static bool is_tchar(unsigned char ch)
{
  /* (strchr finds the terminator: a NUL byte is not a token character) */
  return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

bool pc_http__valid_header_name(const char *s, size_t len)
{
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)s[i]))
      return false;
  return true;
}

bool pc_http__has_crlf(const char *s, size_t len)
{
  return memchr(s, '\r', len) || memchr(s, '\n', len) || memchr(s, '\0', len);
}


/* The statuses whose Location pacer follows (as fetch and aiohttp do;
 * curl also follows 300). */
bool pc_http__is_redirect(long status)
{
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* The status code of the header block's status line ("HTTP/1.1 302 Found",
 * "HTTP/2 302"), or 0. Written out rather than with strtol: it runs for
 * every response. */
int pc_http__status_of(const struct pc_buf *hdrs)
{
  const char *d = hdrs->data;
  size_t i = 5, end = hdrs->len < 16 ? hdrs->len : 16;
  while (i < end && d[i] != ' ')
    i++;
  if (i + 3 >= hdrs->len)
    return 0;
  int st = 0;
  for (size_t j = i + 1; j <= i + 3; j++) {
    if (d[j] < '0' || d[j] > '9')
      return 0;
    st = st * 10 + (d[j] - '0');
  }
  return st;
}
/* "host:port" of a URL (malloc'd), for messages. */
char *pc_http__host_port(const char *url)
{
  CURLU *u = curl_url();
  char *host = NULL, *port = NULL, *r = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    r = pc_asprintf("%s:%s", host, port);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return r ? r : pc_xstrdup(url);
}

char *pc_http__host_only(const char *url)
{
  CURLU *u = curl_url();
  char *host = NULL, *r = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
    r = pc_xstrdup(host);
  curl_free(host);
  curl_url_cleanup(u);
  return r ? r : pc_xstrdup(url);
}

/* "scheme://host:port" for the statistics. */
char *pc_http__origin(const char *url)
{
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *r = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    r = pc_asprintf("%s://%s:%s", scheme, host, port);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return r ? r : pc_xstrdup("?");
}

bool pc_http__status_ok(const struct pc_http_req *r, long status)
{
  if (!r->nsave_ok)
    return status > 0 && status < 400;
  for (size_t i = 0; i < r->nsave_ok; i++)
    if (status >= r->save_ok[i].lo && status <= r->save_ok[i].hi)
      return true;
  return false;
}

/* Finds header `name` (lower-case) in the raw header block; returns a
 * pointer to its value and sets *len, or NULL. */
const char *pc_http__find_header(const struct pc_buf *hdrs, const char *name, size_t *len)
{
  size_t nlen = strlen(name);
  const char *p = hdrs->data, *end = hdrs->data + hdrs->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    if ((size_t)(le - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
      const char *v = p + nlen + 1;
      while (v < le && (*v == ' ' || *v == '\t'))
        v++;
      const char *ve = le;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      *len = (size_t)(ve - v);
      return v;
    }
    p = eol ? eol + 1 : end;
  }
  return NULL;
}

double pc_http__retry_after(const struct pc_buf *hdrs)
{
  size_t len;
  const char *v = pc_http__find_header(hdrs, "retry-after", &len);
  if (!v || len == 0 || len > 100)
    return -1;
  char tmp[128];
  memcpy(tmp, v, len);
  tmp[len] = '\0';
  bool digits = true;
  for (size_t i = 0; i < len; i++)
    digits = digits && isdigit((unsigned char)tmp[i]);
  if (digits)
    return len > 9 ? 1e12 : atof(tmp) * 1000.0;
  time_t when = curl_getdate(tmp, NULL);
  if (when < 0)
    return -1;
  double ms = ((double)when - (double)time(NULL)) * 1000.0;
  return ms > 0 ? ms : 0;
}


const char *pc_http__version_name(long v)
{
  switch (v) {
  case CURL_HTTP_VERSION_1_0:
    return "1.0";
  case CURL_HTTP_VERSION_1_1:
    return "1.1";
  case CURL_HTTP_VERSION_2_0:
    return "2";
  case CURL_HTTP_VERSION_3:
    return "3";
  }
  return NULL;
}


/* Whether the header line ("Name: value", "Name;" or "Name:") is `name`. */
bool pc_http__header_is(const char *line, const char *name)
{
  size_t n = strlen(name);
  return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

/* The headers that describe a request body (fetch's "request-body-header
 * names", plus Content-Length): they go when the body goes. */
bool pc_http__body_header(const char *line)
{
  static const char *const names[] = {"Content-Type", "Content-Length", "Content-Encoding",
                                      "Content-Language", "Content-Location"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(names); i++)
    if (pc_http__header_is(line, names[i]))
      return true;
  return false;
}

/* Whether the value of the header line is, or contains, a secret: pc_redact
 * changes it exactly then (whatever forms of a secret it knows). */
bool pc_http__holds_secret(const char *line)
{
  const char *v = strchr(line, ':');
  if (!v)
    return false; /* "Name;": an empty value */
  v++;
  size_t len = strlen(v), rlen = 0;
  char *red = pc_redact(v, len, &rlen);
  bool hit = rlen != len || memcmp(red, v, len) != 0;
  free(red);
  return hit;
}

/* Whether a and b have the same origin (scheme, host, port: RFC 6454).
 * A URL that does not parse has no origin in common with anything. */
bool pc_http__same_origin(const char *a, const char *b)
{
  char *oa = pc_http__origin(a), *ob = pc_http__origin(b);
  bool same = strcmp(oa, "?") != 0 && strcasecmp(oa, ob) == 0;
  free(oa);
  free(ob);
  return same;
}
