/* params.h: the `http` action's parameter tables (model/action.h,
 * "parameter tables"): a step's `http:` map, pacer.http's options (the
 * same and `timeout`) and `defaults.http`. Each option is declared once,
 * in params.c; the tables drive the load-time check (check.c, through
 * pc_load_params), the run-time check of evaluated options (spec.c,
 * through pc_param_check) and the JSON Schema (`pacer schema`:
 * definitions.http and definitions.http_defaults). */
#ifndef PACER_HTTP_PARAMS_H
#define PACER_HTTP_PARAMS_H

#include "model/action.h"

/* The options of a request, in this order (spec.c's K_* indices): the
 * first PC_HTTP_OPTION_KEYS - 1 are a step's (pc_http_params); the last,
 * `timeout`, is pacer.http's only (a step has its own). The shorthands
 * (get: URL, ...) are PC_HTTP_SHORTHANDS entries from
 * PC_HTTP_SHORTHAND_FIRST on. */
#define PC_HTTP_OPTION_KEYS 35
#define PC_HTTP_SHORTHAND_FIRST 2
#define PC_HTTP_SHORTHANDS 6
extern const struct pc_param pc_http_option_params[PC_HTTP_OPTION_KEYS];

/* The messages of the rules a table cannot say, which the load-time
 * checks (check.c, with positions) and the run-time reader (spec.c) both
 * give, written once. */
#define PC_HTTP_MSG_TWO_URLS                                                                   \
  "http: `%s` and `%s` both give the URL; use one shorthand (get: URL, post: URL, ...) or "     \
  "method + url"
#define PC_HTTP_MSG_TWO_BODIES "http: `%s` and `%s` cannot both be set: a request has one body"
#define PC_HTTP_MSG_METHOD_WITH "http: `method` goes with `url`, not with the shorthand `%s`"
#define PC_HTTP_MSG_NO_URL                                                                     \
  "http: no URL: write get: URL (or post:, put:, patch:, delete:, head:), or method and url"
#define PC_HTTP_MSG_SCHEME "http.%s: \"%s\" is not an http:// or https:// URL"
#define PC_HTTP_MSG_HEADER_NAME "http.headers: \"%s\" is not a valid header name"
/* (A header's or a cookie's value is never echoed: it may be a secret.) */
#define PC_HTTP_MSG_HEADER_CRLF                                                                \
  "http.headers: the value of %s contains a line break (CR or LF), which would split the header"
#define PC_HTTP_MSG_HEADER_NUL                                                                 \
  "http.headers: the value of %s contains a NUL byte (\\0), which would cut the header short"
#define PC_HTTP_MSG_COOKIE_NAME "http.cookies: \"%s\" is not a valid cookie name"
#define PC_HTTP_MSG_COOKIE_VALUE                                                               \
  "http.cookies: the value of %s contains a `;` or a control character, which a Cookie "      \
  "header cannot carry"
#define PC_HTTP_MSG_AUTH_USER                                                                  \
  "http.auth.%s.user contains `:`, which Basic and Digest credentials cannot carry in a user " \
  "name"
#define PC_HTTP_MSG_PART "http.multipart.%s: give one of value and file"
#define PC_HTTP_MSG_RESOLVE_KEY "http.resolve: \"%s\" is not HOST:PORT"
#define PC_HTTP_MSG_RESOLVE_ADDRESS "http.resolve: the address for %s must be an IP address"
#define PC_HTTP_MSG_CONNECT_TO                                                                 \
  "http.connect_to: entry %zu must be HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT (as curl "     \
  "--connect-to)"
#define PC_HTTP_MSG_EMPTY_PATH "http.%s: the path is empty"
#define PC_HTTP_MSG_METHOD                                                                     \
  "http.method: unknown method \"%s\" (expected one of GET, HEAD, POST, PUT, PATCH, DELETE, "   \
  "OPTIONS, TRACE)"

/* A step's `http:` (the options but `timeout`). */
extern const struct pc_params pc_http_params;
/* `defaults.http`: the options every step starts from, and the run-wide
 * settings (max_connections, max_connections_per_host, trace_context). */
extern const struct pc_params pc_http_defaults_params;
/* The keys that give a request's body; at most one of them is given. */
extern const char *const pc_http_body_keys[];

#endif
