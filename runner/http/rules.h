/* rules.h: the decisions of HTTP that depend on nothing but their inputs:
 * no session, no request, no Lua. Which methods exist and which are
 * idempotent; what a header name and value may hold; which statuses are
 * redirects and what following one does to the method, the body and the
 * headers (RFC 9110 §15.4 as fetch and aiohttp read it); origins; the
 * status line and the headers of a response's header block; Retry-After;
 * the statuses a save_to file is kept for. The transport (request.c,
 * failure.c), the options reader (spec.c) and the tests use them; every
 * rule is written once, here. The URL helpers parse with libcurl's URL API
 * (through curlshim.c), so they load libcurl when first called. */
#ifndef PACER_HTTP_RULES_H
#define PACER_HTTP_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "model/workflow.h"

/* ------------------------------------------------------------ methods */

enum pc_http_method {
  PC_HTTP_GET,
  PC_HTTP_HEAD,
  PC_HTTP_POST,
  PC_HTTP_PUT,
  PC_HTTP_PATCH,
  PC_HTTP_DELETE,
  PC_HTTP_OPTIONS,
  PC_HTTP_TRACE,
};
#define PC_HTTP_METHODS 8

/* "GET", "HEAD", ...: static text. */
const char *pc_http_method_name(enum pc_http_method m);
/* The method named by s (any case), or -1 if it is none of the above. */
int pc_http_method_parse(const char *s);
/* GET, HEAD, PUT, DELETE, OPTIONS and TRACE (RFC 9110 §9.2.2): sending one
 * twice has the effect of sending it once, so any failure may be retried.
 * POST and PATCH are retried only when nothing was sent (a request that
 * failed before libcurl had a connection to send it on: see
 * pc_http_result.nothing_sent), or with retry.unsafe. */
bool pc_http_method_idempotent(enum pc_http_method m);
/* POST, PUT and PATCH send a body (Content-Length: 0 when they have none). */
bool pc_http_method_sends_body(enum pc_http_method m);

/* ------------------------------------------------------------ headers */

/* A header name is an RFC 9110 token (no NUL, no space, no colon). */
bool pc_http_header_name_valid(const char *s, size_t len);
/* A header value may hold no CR, LF or NUL: any of them would split the
 * header (or cut it short) in the request sent. */
bool pc_http_header_value_valid(const char *s, size_t len);
/* Whether the request header line ("Name: value", "Name;" or "Name:") is
 * the header `name` (any case). */
bool pc_http_header_is(const char *line, const char *name);
/* Finds header `name` (lower-case) in a raw header block ("Name: value"
 * lines); returns its value, trimmed, and sets *len, or returns NULL. */
const char *pc_http_header_find(const char *block, size_t block_len, const char *name,
                                size_t *len);
/* The status code of a header block's status line ("HTTP/1.1 302 Found",
 * "HTTP/2 302"), or 0. */
int pc_http_status_line(const char *block, size_t len);

/* ---------------------------------------------------------- redirects */

/* The statuses whose Location pacer follows: 301, 302, 303, 307, 308 (as
 * fetch and aiohttp; curl also follows 300). */
bool pc_http_is_redirect(long status);
/* Whether following a redirect with `status` turns a request with method
 * m (GET for one that an earlier redirect turned into a GET) into a GET
 * without a body: a 303 does for every method but HEAD (a GET with a body
 * loses it); a 301 or 302 does for a POST (what every browser, fetch,
 * aiohttp and curl do). Every other method, and every method on a 307 or
 * 308, is repeated with its body. */
bool pc_http_redirect_as_get(int status, enum pc_http_method m, bool has_body);
/* Whether a header line of the request goes along to the redirect's
 * target. `as_get`: the redirect drops the body, and with it the headers
 * that describe it (fetch's request-body-header names, and
 * Content-Length). `cross_origin`: the target is another origin, so no
 * credentials (Authorization, Cookie: what libcurl drops too) and no header
 * whose value is or holds a secret (X-Api-Key: ...); *secret is set when a
 * header stays behind for that last reason. */
bool pc_http_redirect_keeps_header(const char *line, bool as_get, bool cross_origin,
                                   bool *secret);

/* --------------------------------------------------------------- URLs */

/* Whether the URL starts with http:// or https:// (any case). */
bool pc_http_url_scheme_ok(const char *url);
/* Whether a and b have the same origin (scheme, host, port: RFC 6454). A
 * URL that does not parse has no origin in common with anything. */
bool pc_http_same_origin(const char *a, const char *b);
/* malloc'd: "scheme://host:port" (the statistics; "?" if the URL does not
 * parse), "host:port" and "host" (messages; the URL itself if it does not
 * parse). */
char *pc_http_url_origin(const char *url);
char *pc_http_url_host_port(const char *url);
char *pc_http_url_host(const char *url);
/* The length of "scheme://authority" at the start of url, as written (0 if
 * there is no "://"). */
size_t pc_http_url_prefix_len(const char *url);

/* ---------------------------------------------------- response values */

/* A Retry-After value (delta-seconds or an HTTP-date, `now` being the
 * current time) in milliseconds from now: at least 0, or < 0 if the value
 * is neither. */
double pc_http_retry_after_ms(const char *value, size_t len, time_t now);
/* Whether a save_to file is kept for `status`: it is in one of the n
 * ranges (the step's expect.status), or, with none, below 400. */
bool pc_http_status_accepted(long status, const struct pc_status_range *ok, size_t n);
/* "1.0", "1.1", "2" or "3" for libcurl's CURL_HTTP_VERSION_* of a response;
 * NULL for anything else. */
const char *pc_http_version_name(long curl_version);

#endif
