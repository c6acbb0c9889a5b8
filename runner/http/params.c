/* params.c: the `http` action's parameters, declared once (see params.h):
 * each option's name, type, allowed values, bounds, whether it may be
 * computed, its description, and the wording of its messages. The loader
 * checks a step's `http:` map and `defaults.http` against these tables
 * (check.c adds what a table cannot say: the URL's scheme, header names,
 * one URL and one body), the run checks the evaluated options against the
 * same entries (spec.c), and `pacer schema` writes definitions.http and
 * definitions.http_defaults from them (load/schema.c).
 *
 * The wording is the one http's messages always had: "http.NAME: expected
 * text, got map", "http.max_redirects: expected a whole number from 0 to
 * 100, got 500", in the step's map and in defaults.http alike. */
#include "http/params.h"

#include <stddef.h>

#include "base/util.h"

/* -------------------------------------------------------- building blocks */

/* Text that becomes a C string: a URL, a path, a password. */
#define TEXT_(n, nul, d, ...)                                                                  \
  {.name = n, .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,                 \
   .nul_kind = nul, .description = d, __VA_ARGS__}
#define URL_(n, d) TEXT_(n, "a URL", d, .noun = "the URL")
#define PATH_(n, d) TEXT_(n, "a path", d)
#define BOOL_(n, d)                                                                            \
  {.name = n, .type = PC_PARAM_BOOL, .got = PC_GOT_BARE_KIND, .from_text = true, .description = d}

/* A map of names to text (headers, a cookie map, resolve). */
static const struct pc_param text_value = {.type = PC_PARAM_TEXT, .expect = "text",
                                           .got = PC_GOT_BARE_KIND};
static const struct pc_params text_map = {.value = &text_value};

/* query and form: names to text or lists of text. */
static const struct pc_param list_item = {.type = PC_PARAM_TEXT, .expect = "text",
                                          .got = PC_GOT_BARE_KIND, .nullable = true};
static const struct pc_params text_list = {.value = &list_item};
static const struct pc_param text_or_list = {.type = PC_PARAM_LIST, .sub = &text_list};
static const struct pc_param pair_value = {.type = PC_PARAM_TEXT,
                                           .expect = "text or a list of texts",
                                           .got = PC_GOT_BARE_KIND, .alt = &text_or_list};
static const struct pc_params pairs = {.value = &pair_value};
#define PAIRS_(n, d)                                                                           \
  {.name = n, .type = PC_PARAM_MAP, .sub = &pairs, .expect = "a map of names to values",         \
   .got = PC_GOT_BARE_KIND, .description = d}

/* auth: one of basic, digest (a user and a password) or bearer. */
static const struct pc_param creds_keys[] = {
    {.name = "user", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .required = true, .description = "User name (no `:`)."},
    {.name = "password", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .required = true, .description = "Password (redacted wherever it shows, its Basic form too)."},
};
static const struct pc_params creds = {.keys = creds_keys, .nkeys = PC_ARRAY_SIZE(creds_keys)};
static const struct pc_param auth_keys[] = {
    {.name = "basic", .type = PC_PARAM_MAP, .sub = &creds, .expect = "a map {user, password}",
     .got = PC_GOT_BARE_KIND, .description = "HTTP Basic."},
    {.name = "digest", .type = PC_PARAM_MAP, .sub = &creds, .expect = "a map {user, password}",
     .got = PC_GOT_BARE_KIND, .description = "HTTP Digest."},
    {.name = "bearer", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .description = "Authorization: Bearer TOKEN."},
};
static const struct pc_params auth = {.keys = auth_keys, .nkeys = PC_ARRAY_SIZE(auth_keys),
                                      .one_key = true,
                                      .one_why = "a request authenticates one way",
                                      .key_noun = "kind"};

/* multipart: part names to text, or to {value | file, type, filename}. */
static const struct pc_param part_keys[] = {
    {.name = "value", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .description = "The part's text."},
    {.name = "file", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .description = "A file sent as the part, streamed."},
    {.name = "type", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .description = "Content-Type of the part (files: guessed from the name by libcurl when "
                    "absent)."},
    {.name = "filename", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .description = "The filename sent (files: the file's base name when absent)."},
};
static const struct pc_params part_map = {.keys = part_keys, .nkeys = PC_ARRAY_SIZE(part_keys)};
static const struct pc_param part_as_map = {.type = PC_PARAM_MAP, .sub = &part_map};
static const struct pc_param part = {.type = PC_PARAM_TEXT, .expect = "text or {file: PATH}",
                                     .got = PC_GOT_BARE_KIND, .alt = &part_as_map};
static const struct pc_params parts = {.value = &part, .item_labels = true};

static const char *const http_versions[] = {"auto", "1.0", "1.1", "2", "2.0", NULL};
static const char *const tls_versions[] = {"1.0", "1.1", "1.2", "1.3", NULL};

/* ------------------------------------------------------------- the options */

/* The options a step and defaults.http share, each with its description
 * (`d`, which defaults.http may word for itself). */
#define QUERY PAIRS_("query", "Query parameters added to the URL.")
#define HEADERS                                                                                \
  {.name = "headers", .type = PC_PARAM_MAP, .sub = &text_map,                                   \
   .expect = "a map of header names to values", .got = PC_GOT_BARE_KIND,                        \
   .description = "Request headers (values with CR, LF or NUL are rejected; a value written as " \
                  "one ${{ }} that is nil is an error)."}
#define DURATION_(n, d)                                                                        \
  {.name = n, .type = PC_PARAM_DURATION, .expect = "a duration like \"5s\" or \"250ms\"",       \
   .got = PC_GOT_TEXT, .description = d}
#define CONNECT_TIMEOUT DURATION_("connect_timeout", "Bound on connecting.")
#define FOLLOW_REDIRECTS                                                                       \
  BOOL_("follow_redirects",                                                                    \
        "Follow 301, 302, 303, 307 and 308 redirects (default true, at most 10): 303 makes any " \
        "method but HEAD a GET without a body, 301/302 only POST; headers holding secrets are " \
        "not sent to another origin.")
#define HTTP_VERSION                                                                           \
  {.name = "http_version", .type = PC_PARAM_ENUM, .allowed = http_versions,                     \
   .expect = "auto, 1.0, 1.1 or 2", .got = PC_GOT_TEXT, .from_text = true,                      \
   .description = "`auto` (HTTP/2 over TLS when offered), or a version like `1.1` or `2`."}
#define INSECURE BOOL_("insecure", "Skip TLS verification (loud warning).")
#define CA_FILE PATH_("ca_file", "CA bundle file for TLS verification.")
#define MAX_RESPONSE_BYTES                                                                     \
  {.name = "max_response_bytes", .type = PC_PARAM_INT, .min = 1, .max = 1125899906842624.0,     \
   .expect = "a whole number from 1 to 1125899906842624", .got = PC_GOT_TEXT, .from_text = true, \
   .description = "Larger responses are an error (default 64 MiB); not checked for HEAD, whose " \
                  "responses have no body."}
#define COOKIES_(d)                                                                            \
  {.name = "cookies", .type = PC_PARAM_BOOL, .from_text = true, .alt = &cookie_map,             \
   .expect = "true, false or a map of cookie names to values", .got = PC_GOT_BARE_KIND,         \
   .description = d}
#define AUTH                                                                                   \
  {.name = "auth", .type = PC_PARAM_MAP, .sub = &auth,                                          \
   .expect = "a map with one of basic, digest or bearer", .got = PC_GOT_BARE_KIND,              \
   .description = "Credentials, sent by libcurl to the request's own origin only (a redirect "  \
                  "to another origin drops them), redacted in every output: one of `basic: "    \
                  "{user, password}`, `digest: {user, password}` (answers the server's Digest " \
                  "challenge), `bearer: TOKEN`."}
#define CERT PATH_("cert", "Client certificate: a PEM file (regular file).")
#define KEY PATH_("key", "The client certificate's private key: a PEM file (default: in `cert`).")
#define KEY_PASSWORD                                                                           \
  TEXT_("key_password", "a password", "Passphrase of an encrypted `key` (a secret: redacted).")
#define TLS_VERSION                                                                            \
  {.name = "tls_version", .type = PC_PARAM_ENUM, .allowed = tls_versions, .got = PC_GOT_TEXT,   \
   .from_text = true, .description = "Lowest TLS version accepted: 1.0, 1.1, 1.2 or 1.3."}
#define PROXY                                                                                  \
  URL_("proxy", "Proxy URL for this request (as curl -x); \"\" for none; default: the "        \
                "environment's http_proxy/https_proxy/no_proxy.")
#define RESOLVE                                                                                \
  {.name = "resolve", .type = PC_PARAM_MAP, .sub = &text_map,                                   \
   .expect = "a map of HOST:PORT to addresses", .got = PC_GOT_BARE_KIND,                        \
   .description = "A map of HOST:PORT to an IP address, as curl --resolve, for this request "   \
                  "only."}
#define CONNECT_TO                                                                             \
  {.name = "connect_to", .type = PC_PARAM_LIST, .sub = &text_map,                               \
   .expect = "a list of HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT", .got = PC_GOT_BARE_KIND,    \
   .description = "HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT entries, as curl --connect-to, "   \
                  "for this request only."}
#define UNIX_SOCKET PATH_("unix_socket", "Connect through this unix socket (as curl --unix-socket).")
#define MAX_REDIRECTS                                                                          \
  {.name = "max_redirects", .type = PC_PARAM_INT, .min = 0, .max = 100,                         \
   .expect = "a whole number from 0 to 100", .got = PC_GOT_TEXT, .from_text = true,             \
   .description = "Redirects followed at most (default 10, 0 to 100)."}
#define COMPRESSED                                                                             \
  BOOL_("compressed", "Default true: ask for gzip, deflate, br, zstd and decode; false: send "  \
                      "no Accept-Encoding and keep the body as it came.")

/* The options of a connection and a response, and the TLS and routing
 * options (issue 15), in this order in both tables. */
#define CONNECTION                                                                             \
  CONNECT_TIMEOUT, FOLLOW_REDIRECTS, HTTP_VERSION, INSECURE, CA_FILE, MAX_RESPONSE_BYTES
#define TLS_AND_ROUTING                                                                        \
  CERT, KEY, KEY_PASSWORD, TLS_VERSION, PROXY, RESOLVE, CONNECT_TO, UNIX_SOCKET, MAX_REDIRECTS, \
      COMPRESSED

static const struct pc_params cookie_map_sub = {.value = &text_value};
static const struct pc_param cookie_map = {.type = PC_PARAM_MAP, .sub = &cookie_map_sub};

const struct pc_param pc_http_option_params[PC_HTTP_OPTION_KEYS] = {
    TEXT_("method", "a method", "HTTP method (with `url`)."),
    URL_("url", "The URL (with `method`; default method GET)."),
    URL_("get", "Shorthand: GET this URL."),
    URL_("post", "Shorthand: POST to this URL."),
    URL_("put", "Shorthand: PUT to this URL."),
    URL_("patch", "Shorthand: PATCH this URL."),
    URL_("delete", "Shorthand: DELETE this URL."),
    URL_("head", "Shorthand: HEAD this URL."),
    QUERY,
    HEADERS,
    {.name = "body", .type = PC_PARAM_TEXT, .expect = "text", .got = PC_GOT_BARE_KIND,
     .hint = "use json: to send a map or a list as JSON", .description = "Request body as text."},
    {.name = "json", .type = PC_PARAM_ANY,
     .description = "Request body: any value, sent as JSON (null as null, {} as {}, integers "
                    "without .0)."},
    PAIRS_("form", "Request body: a map sent as application/x-www-form-urlencoded."),
    CONNECTION,
    PATH_("save_to", "Stream the body to this file (written atomically)."),
    COOKIES_("The run's cookie jar (on by default): `false` keeps this request out of it (it "
             "sends and stores no cookies); a map of cookie names to text sends these besides "
             "the jar's, to the request's own origin only."),
    AUTH,
    PATH_("body_file", "Request body: this regular file, streamed as it is sent (never read "
                       "into memory), again from its start on a 307/308; default Content-Type "
                       "application/octet-stream."),
    {.name = "multipart", .type = PC_PARAM_MAP, .sub = &parts,
     .expect = "a map of part names to text or {file: PATH}", .got = PC_GOT_BARE_KIND,
     .description = "Request body: multipart/form-data (libcurl's mime API), parts sent in name "
                    "order: a part is text, or {value: TEXT} or {file: PATH} (streamed) with "
                    "optional `type` and `filename`."},
    TLS_AND_ROUTING,
    DURATION_("timeout", "pacer.http only: bound on the whole request."),
};

static const char *const url_keys[] = {"url", "get", "post", "put", "patch", "delete", "head",
                                       NULL};
const char *const pc_http_body_keys[] = {"body", "json", "form", "body_file", "multipart", NULL};

const struct pc_params pc_http_params = {
    .description = "One HTTP request: `method` + `url`, or a shorthand like `get: URL`.",
    .keys = pc_http_option_params,
    .nkeys = PC_HTTP_OPTION_KEYS - 1, /* not pacer.http's `timeout` */
    .one_of = url_keys,
};

/* A plain value read once for the whole run: never computed. */
#define RUN_WIDE "(it applies to the whole run, so it cannot be an expression)"
#define CAP_(n, d)                                                                             \
  {.name = n, .type = PC_PARAM_INT, .min = 0, .max = 100000, .static_only = true,               \
   .static_why = "expected a plain number " RUN_WIDE,                                           \
   .expect = "a whole number from 0 to 100000", .got = PC_GOT_TEXT, .description = d}

static const struct pc_param defaults_keys[] = {
    QUERY,
    HEADERS,
    CONNECTION,
    CAP_("max_connections", "Run-wide: connections open at once over all hosts (default 100; "
                            "0: no cap); requests beyond wait for one."),
    CAP_("max_connections_per_host", "Run-wide: connections open at once to one host (default "
                                     "0: no cap besides max_connections)."),
    {.name = "trace_context", .type = PC_PARAM_BOOL, .static_only = true,
     .static_why = "expected a plain true or false " RUN_WIDE, .got = PC_GOT_BARE_KIND,
     .description = "Send a W3C traceparent header naming the attempt's span with every request "
                    "of an http step (a plain boolean: run-wide)."},
    COOKIES_("`false`: no request keeps cookies (see http.cookies)."),
    AUTH,
    TLS_AND_ROUTING,
};

const struct pc_params pc_http_defaults_params = {
    .description = "Default HTTP options (e.g. headers), and run-wide HTTP settings.",
    .keys = defaults_keys,
    .nkeys = PC_ARRAY_SIZE(defaults_keys),
    .prefix = "http",
};
