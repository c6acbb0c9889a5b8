/* request_int.h: what request.c and response.c share about one request
 * (see request.h): the request's own struct, its limits, and the
 * functions each file gives the other (pc_http__ names). request.c sets
 * the request up from its spec and starts, cancels and frees it;
 * response.c has libcurl's callbacks for its transfer, follows its
 * redirects and completes it. Transport only: no Lua. */
#ifndef PACER_HTTP_REQUEST_INT_H
#define PACER_HTTP_REQUEST_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "http/rules.h"
#include "http/session.h"
#include "http/upload.h"
#include "base/outfile.h"
#include "base/util.h"

/* request.h's types, by name only: this header does not include it, so
 * that request.c (the module of request.h) and it include each other in
 * no circle. */
struct pc_http_redirect;
struct pc_http_result;
struct pc_status_range;

/* Response header bytes accepted (below libcurl's own limit). */
#define HEADERS_MAX ((size_t)256 << 10)
#define SAVE_HEAD_MAX 4096              /* with save_to: body bytes kept for messages */
#define TRACE_BODY_MAX 1024             /* -vv: body bytes shown per request and response */
#define TRACE_LINE_MAX 200              /* -vv: bytes shown of a request header line */

/* What libcurl says of the latest response (curl_easy_getinfo). */
struct resp_info {
  long status;
  const char *url; /* effective URL (borrowed from the easy handle: valid until it is recycled;
                    * after a failed lookup, t.url) */
  long version;
  long connects;
  curl_off_t t_dns, t_connect, t_tls, t_start, t_total; /* microseconds since start */
  curl_off_t down, up;
  long header_bytes, request_bytes;
};

/* Timings of the responses of a request before its last one (redirects),
 * in microseconds, added to the last one's in the result. */
struct hop_sums {
  curl_off_t dns, connect, tls, total;
};

struct pc_http_request {
  struct pc_http__transfer t; /* the session's side: the easy handle, the live list */
  enum pc_http_method method;
  const char *url, *label, *save_to; /* in text[] (save_to NULL if none) */
  bool plain; /* only the options of every request are set on the handle (recycled primed) */
  struct curl_slist *hdr_list;
  char errbuf[CURL_ERROR_SIZE];
  int64_t max_bytes, received;
  bool too_big;
  bool no_memory;    /* the body (or headers) could not be stored */
  bool hdrs_too_big; /* the response headers passed HEADERS_MAX */
  bool in_headers;   /* a status line arrived, the end of its header block not yet */
  int sends;         /* requests libcurl sent (on_prereq): 1 + redirects followed + retries */
  struct pc_buf body; /* the response body (with save_to: its first SAVE_HEAD_MAX bytes) */
  struct pc_buf hdrs; /* header lines of the latest response */
  struct pc_buf set_cookies; /* the Set-Cookie lines of every response (result.set_cookies) */
  bool extra_cookie;  /* CURLOPT_COOKIE is set (spec.cookie): dropped on another origin */
  bool auth;          /* credentials are set (spec.auth): dropped on another origin */
  struct pc_http__upload up; /* a body_file or a multipart body (upload.h) */
  struct pc_outfile out; /* open (fd >= 0) while the body streams into save_to */
  int write_errno;
  bool saved;
  struct pc_status_range *save_ok; /* owned copy of the spec's (NULL if none) */
  size_t nsave_ok;
  void (*cb)(void *data, const struct pc_http_result *r); /* a pc_http_done_cb */
  void *data;
  double timeout_ms, connect_timeout_ms;
  struct resp_info info;
  /* A request may have reached a server: libcurl got a connection for it
   * and was about to send (CURLOPT_PREREQFUNCTION). Until then a failure
   * provably sent nothing, and any method may be retried. */
  bool sent;
  /* Redirects are followed here, not by libcurl (follow_redirect). */
  bool follow;   /* follow_redirects */
  int max_redirects;
  struct curl_slist *connect_to; /* CURLOPT_CONNECT_TO (owned) */
  bool discard;  /* its body belongs to a redirect we follow: dropped */
  bool as_get;   /* a redirect turned the method into GET without a body */
  bool has_body; /* the request (still) sends a body */
  char *hop_url;      /* after a redirect: the URL the handle is set to (owned; t.url) */
  struct pc_http_redirect *redirects; /* the redirects followed, in order (urls owned) */
  int nredirects;
  struct hop_sums before; /* timings of the responses before the last */
  /* What the easy handle is set up from once the request is admitted
   * (session.h, "Admission"): a queued request has no handle, only this
   * copy of its spec. The strings point into text[] (NULL: not set). */
  struct {
    long version;         /* CURL_HTTP_VERSION_* */
    bool connect_timeout; /* t.connect_timeout_ms is set on the handle */
    bool insecure, jar, compressed;
    int auth;             /* enum pc_http_auth */
    long tls_version;
    const char *ca_file, *cookie, *auth_user, *auth_password, *auth_token;
    const char *cert, *key, *key_password, *proxy, *unix_socket;
    const char *body; /* body_len bytes, sent with CURLOPT_POSTFIELDS (no copy) */
    size_t body_len;
    bool send_body;   /* a body in memory goes (perhaps empty) */
  } opt;
  /* url, label, save_to, then opt's strings and the body: each
   * NUL-terminated, one after the other */
  char text[];
};

static inline const char *method_name(const struct pc_http_request *r)
{
  return pc_http_method_name(r->method);
}

/* Frees a request whose easy handle is gone (recycled, cleaned up) or was
 * never made. (request.c) */
void pc_http__req_free(struct pc_http_request *r);

/* libcurl's callbacks for a request's transfer (clientp/userdata: the
 * request): CURLOPT_PREREQFUNCTION, CURLOPT_WRITEFUNCTION and
 * CURLOPT_HEADERFUNCTION. (response.c) */
int pc_http__on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                       int local_port);
size_t pc_http__on_body(char *ptr, size_t size, size_t nmemb, void *userdata);
size_t pc_http__on_header(char *buf, size_t size, size_t nitems, void *userdata);
/* The session's `done` for a request's transfer: follows a redirect, or
 * completes the request (callback, statistics, the handle given back,
 * the request freed). (response.c) */
void pc_http__on_transfer_done(struct pc_http__transfer *t, CURLcode rc);

#endif
