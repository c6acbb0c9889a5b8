/* rules.c: the pure decisions of HTTP (see rules.h): functions of their
 * arguments alone, with no state, so that tests/test_http_transport.c can
 * check each one against a table. Nothing here allocates except the URL
 * helpers' results, and nothing can fail but parsing. Several run for
 * every response (the status line, the header block): they are written
 * out rather than built on sscanf or strtol. */
#include "http/rules.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "base/redact.h"
#include "base/util.h"

/* ------------------------------------------------------------ methods */

static const char *const method_names[PC_HTTP_METHODS] = {
    [PC_HTTP_GET] = "GET",         [PC_HTTP_HEAD] = "HEAD",     [PC_HTTP_POST] = "POST",
    [PC_HTTP_PUT] = "PUT",         [PC_HTTP_PATCH] = "PATCH",   [PC_HTTP_DELETE] = "DELETE",
    [PC_HTTP_OPTIONS] = "OPTIONS", [PC_HTTP_TRACE] = "TRACE",
};

const char *pc_http_method_name(enum pc_http_method m)
{
  return method_names[m];
}

int pc_http_method_parse(const char *s)
{
  for (int m = 0; m < PC_HTTP_METHODS; m++)
    if (strcasecmp(s, method_names[m]) == 0)
      return m;
  return -1;
}

bool pc_http_method_idempotent(enum pc_http_method m)
{
  return m != PC_HTTP_POST && m != PC_HTTP_PATCH;
}

bool pc_http_method_sends_body(enum pc_http_method m)
{
  return m == PC_HTTP_POST || m == PC_HTTP_PUT || m == PC_HTTP_PATCH;
}

/* ------------------------------------------------------------ headers */

static bool is_tchar(unsigned char ch)
{
  /* (strchr finds the terminator: a NUL byte is not a token character) */
  return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

bool pc_http_header_name_valid(const char *s, size_t len)
{
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)s[i]))
      return false;
  return true;
}

bool pc_http_header_value_valid(const char *s, size_t len)
{
  return !memchr(s, '\r', len) && !memchr(s, '\n', len) && !memchr(s, '\0', len);
}

bool pc_http_header_is(const char *line, const char *name)
{
  size_t n = strlen(name);
  return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

const char *pc_http_header_find(const char *block, size_t block_len, const char *name,
                                size_t *len)
{
  size_t nlen = strlen(name);
  const char *p = block, *end = block + block_len;
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

int pc_http_status_line(const char *d, size_t len)
{
  size_t i = 5, end = len < 16 ? len : 16;
  while (i < end && d[i] != ' ')
    i++;
  if (i + 3 >= len)
    return 0;
  int st = 0;
  for (size_t j = i + 1; j <= i + 3; j++) {
    if (d[j] < '0' || d[j] > '9')
      return 0;
    st = st * 10 + (d[j] - '0');
  }
  return st;
}

/* ---------------------------------------------------------- redirects */

bool pc_http_is_redirect(long status)
{
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

bool pc_http_redirect_as_get(int status, enum pc_http_method m, bool has_body)
{
  return (status == 303 && m != PC_HTTP_HEAD && (m != PC_HTTP_GET || has_body)) ||
         ((status == 301 || status == 302) && m == PC_HTTP_POST);
}

/* The headers that describe a request body (fetch's "request-body-header
 * names", plus Content-Length): they go when the body goes. */
static bool body_header(const char *line)
{
  static const char *const names[] = {"Content-Type", "Content-Length", "Content-Encoding",
                                      "Content-Language", "Content-Location"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(names); i++)
    if (pc_http_header_is(line, names[i]))
      return true;
  return false;
}

/* Whether the value of the header line is, or contains, a secret: pc_redact
 * changes it exactly then (whatever forms of a secret it knows). */
static bool holds_secret(const char *line)
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

bool pc_http_redirect_keeps_header(const char *line, bool as_get, bool cross_origin,
                                   bool *secret)
{
  if (as_get && body_header(line))
    return false;
  if (!cross_origin)
    return true;
  if (pc_http_header_is(line, "Authorization") || pc_http_header_is(line, "Cookie"))
    return false;
  if (holds_secret(line)) {
    *secret = true;
    return false;
  }
  return true;
}

/* --------------------------------------------------------------- URLs */

bool pc_http_url_scheme_ok(const char *url)
{
  return strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0;
}

enum url_form { URL_ORIGIN, URL_HOST_PORT, URL_HOST };

/* The URL's origin, host:port or host (malloc'd), or NULL if it does not
 * parse. */
static char *url_form(const char *url, enum url_form form)
{
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *r = NULL;
  bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
            curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK;
  if (ok && form != URL_HOST)
    ok = curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK;
  if (ok && form == URL_ORIGIN)
    ok = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK;
  if (ok)
    r = form == URL_ORIGIN      ? pc_asprintf("%s://%s:%s", scheme, host, port)
        : form == URL_HOST_PORT ? pc_asprintf("%s:%s", host, port)
                                : pc_xstrdup(host);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return r;
}

char *pc_http_url_origin(const char *url)
{
  char *r = url_form(url, URL_ORIGIN);
  return r ? r : pc_xstrdup("?");
}

char *pc_http_url_host_port(const char *url)
{
  char *r = url_form(url, URL_HOST_PORT);
  return r ? r : pc_xstrdup(url);
}

char *pc_http_url_host(const char *url)
{
  char *r = url_form(url, URL_HOST);
  return r ? r : pc_xstrdup(url);
}

bool pc_http_same_origin(const char *a, const char *b)
{
  char *oa = url_form(a, URL_ORIGIN), *ob = url_form(b, URL_ORIGIN);
  bool same = oa && ob && strcasecmp(oa, ob) == 0;
  free(oa);
  free(ob);
  return same;
}

size_t pc_http_url_prefix_len(const char *url)
{
  const char *p = strstr(url, "://");
  return p ? strcspn(p + 3, "/?#") + (size_t)(p + 3 - url) : 0;
}

/* ---------------------------------------------------- response values */

double pc_http_retry_after_ms(const char *value, size_t len, time_t now)
{
  if (len == 0 || len > 100)
    return -1;
  char tmp[128];
  memcpy(tmp, value, len);
  tmp[len] = '\0';
  bool digits = true;
  for (size_t i = 0; i < len; i++)
    digits = digits && isdigit((unsigned char)tmp[i]);
  if (digits)
    return len > 9 ? 1e12 : atof(tmp) * 1000.0;
  time_t when = curl_getdate(tmp, NULL);
  if (when < 0)
    return -1;
  double ms = ((double)when - (double)now) * 1000.0;
  return ms > 0 ? ms : 0;
}

bool pc_http_status_accepted(long status, const struct pc_status_range *ok, size_t n)
{
  if (!n)
    return status > 0 && status < 400;
  for (size_t i = 0; i < n; i++)
    if (status >= ok[i].lo && status <= ok[i].hi)
      return true;
  return false;
}

const char *pc_http_version_name(long v)
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
