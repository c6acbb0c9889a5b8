/* request.h: one HTTP request on a session, described by a plain C spec
 * and reported by a plain C result. Transport only: no Lua. The `http`
 * action and pacer.http build the spec from a Lua options table (spec.h)
 * and turn the result into a Lua table (result.h); tests build specs by
 * hand (tests/test_http_transport.c).
 *
 * A request is started with pc_http_request_start and then either
 * completes (its callback is called exactly once, from a loop callback,
 * never from inside libcurl) or is stopped by pc_http_request_cancel or by
 * closing its session (the callback is never called). Either way the
 * request is freed by the transport: after its callback returns, or
 * inside cancel/close. Redirects are followed by the request itself, with
 * the rules of rules.h; the result is the last response's. */
#ifndef PACER_HTTP_REQUEST_H
#define PACER_HTTP_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/rules.h"
#include "http/upload.h"
#include "model/action.h"
#include "model/workflow.h"

#define PC_HTTP_MAX_RESPONSE_DEFAULT ((int64_t)64 << 20) /* max_response_bytes */
#define PC_HTTP_MAX_REDIRECTS 10

struct pc_http_session;
struct pc_http_request;

enum pc_http_version {
  PC_HTTP_VERSION_AUTO, /* HTTP/2 over TLS when the server offers it, else 1.1 */
  PC_HTTP_VERSION_1_0,
  PC_HTTP_VERSION_1_1,
  PC_HTTP_VERSION_2, /* also over cleartext (an upgrade most servers ignore) */
};

/* How the request authenticates (spec `auth`): libcurl makes the
 * Authorization header (CURLOPT_HTTPAUTH), which is sent to the request's
 * own origin only. */
enum pc_http_auth {
  PC_HTTP_AUTH_NONE,
  PC_HTTP_AUTH_BASIC,  /* auth_user, auth_password */
  PC_HTTP_AUTH_DIGEST, /* auth_user, auth_password: answers the server's challenge */
  PC_HTTP_AUTH_BEARER, /* auth_token */
};

struct pc_http_header {
  const char *name; /* an RFC 9110 token (pc_http_header_name_valid) */
  size_t name_len;
  const char *value; /* no CR, LF or NUL (pc_http_header_value_valid) */
  size_t value_len;
};

/* What to send, and how. Every pointer is borrowed for the duration of
 * pc_http_request_start only: the request copies what it keeps, so a spec
 * may point into a Lua table on the stack (spec.c) or at a test's
 * literals. pc_http_spec_init sets the defaults. */
struct pc_http_spec {
  enum pc_http_method method;
  const char *url; /* http:// or https://, query included; NUL-terminated */
  const struct pc_http_header *headers; /* sent as given; a name here replaces pacer's own */
  size_t nheaders;
  bool has_body;    /* send a body (never with HEAD) */
  const char *body; /* body_len bytes (NULL: empty) */
  size_t body_len;
  const char *body_type;     /* Content-Type of the body unless headers set one */
  /* Instead of `body` (has_body set): the content of this regular file,
   * streamed as it is sent (never read into memory) and sent again from
   * its start when a redirect keeps the body. */
  const char *body_file;
  /* Instead of `body` (has_body set): a multipart/form-data body made by
   * libcurl's mime API (which sets the Content-Type with its boundary). */
  const struct pc_http_part *parts;
  size_t nparts;
  bool multipart;
  double connect_timeout_ms; /* bound on DNS + TCP + TLS; < 0: libcurl's default */
  double timeout_ms;         /* bound on the whole request, redirects included; <= 0: none */
  bool follow_redirects;     /* 301, 302, 303, 307, 308; at most max_redirects */
  int max_redirects;         /* PC_HTTP_MAX_REDIRECTS unless set; 0: a redirect is an error */
  enum pc_http_version version;
  bool insecure;       /* no TLS verification (warned once per host) */
  const char *ca_file; /* PEM file of CA certificates instead of the system's; NULL: those */
  int64_t max_response_bytes; /* a larger body fails the request (not for HEAD) */
  const char *save_to; /* stream the body into this file (base/outfile.h); NULL: memory */
  /* save_to keeps the file only for a status in these ranges (the step's
   * expect.status); none: any status below 400. */
  const struct pc_status_range *save_ok;
  size_t nsave_ok;
  const char *label; /* names the request in log lines (a step label); NULL: "http" */
  /* Cookies: with cookie_jar (the default) the request takes part in the
   * session's jar (session.h): it sends the cookies stored for its URL and
   * stores those its responses set, every hop of a redirect chain. `cookie`
   * ("a=1; b=2", NULL: none) is sent besides, to the request's own origin
   * only (a redirect to another one drops it). */
  bool cookie_jar;
  const char *cookie;
  /* Credentials (registered as secrets when the request starts, with the
   * Basic form of user and password); dropped on a redirect to another
   * origin. */
  enum pc_http_auth auth;
  const char *auth_user, *auth_password, *auth_token;
  /* TLS and routing (NULL: not set). cert/key: a client certificate (PEM
   * files, regular files only: OpenSSL reads them on the loop thread);
   * key_password is registered as a secret. tls_version: the lowest TLS
   * version accepted, a CURL_SSLVERSION_* value (0: libcurl's default).
   * proxy: a proxy URL, or "" for none (NULL: the environment's).
   * connect_to: curl's "HOST:PORT:CONNECT-HOST:CONNECT-PORT" entries
   * (`resolve:` is given as such entries too: they apply to this request
   * only, unlike CURLOPT_RESOLVE, which fills the multi handle's DNS cache
   * for every request). unix_socket: connect to this socket path instead.
   * compressed false: ask for and decode no content encoding (the body is
   * kept as it came). With a proxy, connect_to or unix_socket, pacer's own
   * resolver leaves names to libcurl (see resolve.h). */
  const char *cert, *key, *key_password;
  long tls_version;
  const char *proxy;
  const char *const *connect_to;
  size_t nconnect_to;
  const char *unix_socket;
  bool compressed;
};

/* GET, no headers, no body, no timeouts, follow redirects, auto version,
 * PC_HTTP_MAX_RESPONSE_DEFAULT, in memory, cookies kept, compressed. */
void pc_http_spec_init(struct pc_http_spec *sp);

struct pc_http_redirect {
  int status;      /* 301, 302, ... */
  const char *url; /* the URL that answered with it */
};

/* In milliseconds: dns, connect and tls are the durations of those phases
 * (0 on a reused connection), ttfb and total count from the start of the
 * request. After redirects the phases of every response add up, and ttfb
 * and total count from the start of the first request. */
struct pc_http_timing {
  double dns, connect, tls, ttfb, total;
};

/* What a finished request reports. Everything is borrowed from the
 * request and valid only during the callback. */
struct pc_http_result {
  enum pc_fail fail; /* PC_FAIL_NONE: a complete response arrived */
  const char *error; /* the message when fail != PC_FAIL_NONE */
  /* No byte of the request (nor of any request of its redirect chain) can
   * have reached a server: it failed before libcurl had a connection to
   * send it on (refused, DNS, TLS handshake, connect timeout). Retrying
   * it is safe whatever the method. */
  bool nothing_sent;
  const char *method;    /* as asked */
  const char *url;       /* as asked */
  const char *final_url; /* after redirects: the URL of the last response */
  const char *label;     /* the spec's label, or "http" */
  /* The last response; status 0 (and the rest empty) if none arrived. */
  int status;
  double retry_after_ms;    /* from Retry-After; < 0 if none */
  const char *http_version; /* "1.0", "1.1", "2", "3"; NULL: unknown */
  bool reused;              /* no new connection was needed */
  const char *headers;      /* the raw header block, status line included */
  size_t headers_len;
  const char *body; /* the body (the start of it with save_to); NULL after a failure */
  size_t body_len;  /* the bytes of it pacer kept */
  bool body_cut;         /* body is only the start of what arrived */
  const char *saved_to;  /* save_to, once the file is written; else NULL */
  struct pc_http_timing timing;
  const struct pc_http_redirect *redirects; /* followed, in order */
  size_t nredirects;
  /* The Set-Cookie header lines of every response of the chain, in order,
   * each ending in a line break ("" if none). */
  const char *set_cookies;
  size_t set_cookies_len;
};

/* Called exactly once per request that was not cancelled, from a libuv
 * callback (never inside libcurl): Lua glue must get back to a clean stack
 * (pc_run_defer) before resuming a coroutine. The request is freed when it
 * returns. The callback may start or cancel other requests and close the
 * session. */
typedef void (*pc_http_done_cb)(void *data, const struct pc_http_result *r);

/* Starts the request `sp` describes on session s (not closing). Returns 0
 * and sets *out, or -1 with *err set (malloc'd) when it cannot start: a
 * ca_file that is not a readable regular file, a save_to that cannot be
 * opened, libcurl out of handles. The callback is then never called.
 * `out` may be NULL. */
int pc_http_request_start(struct pc_http_session *s, const struct pc_http_spec *sp,
                          pc_http_done_cb cb, void *data, struct pc_http_request **out,
                          char **err);
/* Stops a request that has not reported: it is taken out of the multi
 * handle at once, its save_to temporary file is removed, it is freed, and
 * its callback never fires. Call it from a loop callback (or the request's
 * own start caller), never from inside libcurl. NULL is ignored. */
void pc_http_request_cancel(struct pc_http_request *r);
/* Whether nothing of the request can have reached a server yet (see
 * pc_http_result.nothing_sent); for an attempt cancelled before it ended. */
bool pc_http_request_nothing_sent(const struct pc_http_request *r);
enum pc_http_method pc_http_request_method(const struct pc_http_request *r);
/* The URL as asked (valid while the request lives). */
const char *pc_http_request_url(const struct pc_http_request *r);

#endif
