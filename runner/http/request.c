/* request.c: one request on a session (see request.h): its easy handle set
 * up from a struct pc_http_spec, libcurl's callbacks for it (body, headers,
 * prereq), the body buffer or the save_to file, following redirects, and
 * completion into a struct pc_http_result. Transport only: no Lua.
 *
 * Ownership: a request (struct pc_http_request) is owned by the transport
 * from pc_http_request_start until it is freed, which happens in exactly
 * one place per path: after its callback returns (complete), in
 * pc_http_request_cancel, or when its session closes (the session's
 * `drop`). While it runs it owns its easy handle (t.easy), which is also in
 * the session's multi handle and has the transfer as CURLOPT_PRIVATE; the
 * handle goes back to the session's idle list (or is cleaned up) when the
 * request ends. Everything the spec pointed at is copied at start: the
 * URL, label and save_to path into the request's own allocation, the
 * header lines into a curl_slist, the body by CURLOPT_COPYPOSTFIELDS.
 *
 * libcurl's callbacks here only record state (bytes, flags); completion
 * and redirects run from the session's drain, a loop callback, where the
 * multi API may be called again. */
#include "http/request.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http/failure.h"
#include "http/session.h"
#include "http/show.h"
#include "base/log.h"
#include "base/outfile.h"
#include "base/redact.h"
#include "base/util.h"

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
  pc_http_done_cb cb;
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
  char text[];            /* url, label, save_to: NUL-terminated, one after the other */
};

static void on_transfer_done(struct pc_http__transfer *t, CURLcode rc);
static void on_transfer_drop(struct pc_http__transfer *t);

static const struct pc_http__transfer_ops transfer_ops = {
    .done = on_transfer_done,
    .drop = on_transfer_drop,
};

void pc_http_spec_init(struct pc_http_spec *sp)
{
  memset(sp, 0, sizeof *sp);
  sp->method = PC_HTTP_GET;
  sp->connect_timeout_ms = -1;
  sp->timeout_ms = -1;
  sp->follow_redirects = true;
  sp->version = PC_HTTP_VERSION_AUTO;
  sp->max_response_bytes = PC_HTTP_MAX_RESPONSE_DEFAULT;
  sp->cookie_jar = true;
  sp->max_redirects = PC_HTTP_MAX_REDIRECTS;
  sp->compressed = true;
}

static void req_free(struct pc_http_request *r)
{
  pc_outfile_discard(&r->out); /* closes and removes a temporary file */
  curl_slist_free_all(r->hdr_list);
  curl_slist_free_all(r->connect_to); /* the handle let go of it first */
  for (int i = 0; i < r->nredirects; i++)
    free((char *)r->redirects[i].url);
  free(r->redirects);
  free(r->hop_url);
  free(r->save_ok);
  pc_buf_free(&r->body);
  pc_buf_free(&r->hdrs);
  pc_buf_free(&r->set_cookies);
  pc_http__upload_free(&r->up); /* after the handle let go of it (recycled or cleaned up) */
  free(r);
}

static const char *method_name(const struct pc_http_request *r)
{
  return pc_http_method_name(r->method);
}

/* ============================================================ callbacks */

/* CURLOPT_PREREQFUNCTION (clientp: the request): libcurl has a connection
 * for the request (new or reused, TLS done) and sends it next. Called
 * before every request libcurl sends for a transfer, so also for each of
 * its own retries on a kept-alive connection that died (`sends`). */
static int on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
  (void)primary_ip;
  (void)local_ip;
  (void)primary_port;
  (void)local_port;
  struct pc_http_request *r = clientp;
  r->sent = true;
  r->sends++;
  pc_http__transfer_connected(&r->t);
  return CURL_PREREQFUNC_OK;
}

/* Appends n bytes to b (its max is checked by the caller) with a plain
 * realloc, so that a response that does not fit in memory fails its
 * request instead of aborting pacer (pc_xrealloc). The room doubles, or
 * starts at `hint` bytes (the announced Content-Length). Returns 0 or
 * -ENOMEM (b unchanged). */
static int buf_try_append(struct pc_buf *b, const char *p, size_t n, size_t hint)
{
  size_t need = b->len + n + 1;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : (hint >= 256 ? hint + 1 : 256);
    while (cap < need)
      cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max < SIZE_MAX && cap > b->max + 1)
      cap = b->max + 1 > need ? b->max + 1 : need;
    char *d = realloc(b->cap ? b->data : NULL, cap);
    if (!d)
      return -ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

/* CURLOPT_WRITEFUNCTION: the body, into memory or the save_to file. */
static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct pc_http_request *r = userdata;
  size_t n = size * nmemb;
  if (r->discard)
    return n; /* a redirect's body: the next response is the one we keep */
  if (r->received + (int64_t)n > r->max_bytes) {
    r->too_big = true;
    return 0; /* CURLE_WRITE_ERROR */
  }
  r->received += (int64_t)n;
  if (r->out.fd < 0) {
    size_t hint = 0;
    if (r->body.cap == 0) {
      /* Room for the whole announced body at once: no copies while it
       * grows, and a body that cannot fit fails on its first bytes. */
      curl_off_t cl = -1;
      curl_easy_getinfo(r->t.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
      if (cl > 0 && cl <= r->max_bytes && (uint64_t)cl < SIZE_MAX / 2)
        hint = (size_t)cl;
    }
    if (buf_try_append(&r->body, ptr, n, hint) != 0) {
      r->no_memory = true;
      return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
  }
  if (r->body.len < SAVE_HEAD_MAX) {
    size_t keep = SAVE_HEAD_MAX - r->body.len;
    pc_buf_append(&r->body, ptr, n < keep ? n : keep);
  }
  int werr = pc_outfile_write(&r->out, ptr, n);
  if (werr) {
    r->write_errno = -werr;
    return 0;
  }
  return n;
}

/* CURLOPT_HEADERFUNCTION: the header block of the latest response. */
static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
  struct pc_http_request *r = userdata;
  size_t n = size * nitems;
  /* A status line starts a new response (a redirect, 100 Continue): keep
   * only the headers of the last one. An empty line ends them. */
  if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    pc_buf_reset(&r->hdrs);
    r->in_headers = true;
    r->discard = false;
  } else if (n > 0 && n <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
    r->in_headers = false;
    /* The end of a redirect's headers: if it says where to go, its body
     * is of no use (and must not count against max_response_bytes or
     * reach a save_to file). */
    size_t len;
    if (r->follow && pc_http_is_redirect(pc_http_status_line(r->hdrs.data, r->hdrs.len)))
      r->discard = pc_http_header_find(r->hdrs.data, r->hdrs.len, "location", &len) != NULL;
  }
  if (n > HEADERS_MAX - r->hdrs.len) {
    r->hdrs_too_big = true;
    return 0; /* CURLE_WRITE_ERROR */
  }
  if (buf_try_append(&r->hdrs, buf, n, 0) != 0) {
    r->no_memory = true;
    return 0;
  }
  /* Set-Cookie of every response (the redirects' too: a login often sets
   * its cookie on a 302), for the result's `cookies`; libcurl's jar has
   * stored them already. Bounded as the header block is. */
  if (n > 11 && strncasecmp(buf, "set-cookie:", 11) == 0 &&
      n <= HEADERS_MAX - r->set_cookies.len &&
      buf_try_append(&r->set_cookies, buf, n, 0) != 0) {
    r->no_memory = true;
    return 0;
  }
  return n;
}

/* ================================================================ start */

static int check_ca_file(const char *path, char **err)
{
  return pc_http__check_file("ca_file", path, "a PEM file of CA certificates", err);
}

/* Opens save_to through outfile.h: a regular file (or none yet) gets a
 * temporary file beside it, renamed over it only on success; a device or a
 * FIFO is written into. Returns 0, or -1 with *err set. */
static int open_save_to(struct pc_http_request *r, char **err)
{
  char *why = NULL;
  if (pc_outfile_open(&r->out, r->save_to, 0, &why) == 0)
    return 0;
  *err = pc_asprintf("http.save_to: %s", why);
  free(why);
  return -1;
}

/* A password in the URL's userinfo is a secret, in the Basic credentials
 * libcurl makes of it too (a server may echo them back). */
static void note_url_password(const char *url)
{
  CURLU *u = curl_url();
  char *user = NULL, *pw = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PASSWORD, &pw, CURLU_URLDECODE) == CURLUE_OK) {
    if (curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) != CURLUE_OK)
      user = NULL;
    pc_secret_add_userinfo(user ? user : "", pw);
  }
  curl_free(user);
  curl_free(pw);
  curl_url_cleanup(u);
}

/* A new request for sp, with its strings copied, on easy handle e. */
static struct pc_http_request *req_new(struct pc_http_session *s, CURL *e,
                                       const struct pc_http_spec *sp)
{
  const char *label = sp->label ? sp->label : "http";
  size_t ulen = strlen(sp->url) + 1, llen = strlen(label) + 1;
  size_t slen = sp->save_to ? strlen(sp->save_to) + 1 : 0;
  struct pc_http_request *r = pc_xcalloc(1, sizeof *r + ulen + llen + slen);
  char *p = r->text;
  r->url = memcpy(p, sp->url, ulen);
  r->label = memcpy(p + ulen, label, llen);
  if (slen)
    r->save_to = memcpy(p + ulen + llen, sp->save_to, slen);
  pc_http__upload_init(&r->up);
  r->t.ops = &transfer_ops;
  r->t.s = s;
  r->t.easy = e;
  r->t.url = r->url;
  pc_queue_init(&r->t.live);
  pc_outfile_init(&r->out);
  r->method = sp->method;
  r->max_bytes = sp->max_response_bytes;
  if (sp->nsave_ok) {
    r->save_ok = pc_xmalloc(sp->nsave_ok * sizeof *r->save_ok);
    memcpy(r->save_ok, sp->save_ok, sp->nsave_ok * sizeof *r->save_ok);
    r->nsave_ok = sp->nsave_ok;
  }
  r->timeout_ms = sp->timeout_ms;
  r->connect_timeout_ms = sp->connect_timeout_ms;
  r->follow = sp->follow_redirects;
  r->max_redirects = sp->max_redirects;
  r->has_body = sp->has_body;
  pc_buf_init(&r->body, r->max_bytes > 0 && (uint64_t)r->max_bytes < SIZE_MAX
                            ? (size_t)r->max_bytes : SIZE_MAX);
  pc_buf_init(&r->hdrs, HEADERS_MAX);
  pc_buf_init(&r->set_cookies, HEADERS_MAX);
  return r;
}

/* The request's header list: the spec's headers as "Name: value" lines
 * ("Name;" for an empty value: curl's way to send one), then what pacer
 * adds unless the spec names it: the body's Content-Type (and no
 * Content-Type at all without a body: libcurl would add a form type to an
 * empty POST), and an empty Expect (no 100-continue round trip). */
static struct curl_slist *header_list(const struct pc_http_spec *sp)
{
  struct curl_slist *list = NULL;
  bool has_ctype = false, has_expect = false;
  for (size_t i = 0; i < sp->nheaders; i++) {
    const struct pc_http_header *h = &sp->headers[i];
    assert(pc_http_header_name_valid(h->name, h->name_len));
    assert(pc_http_header_value_valid(h->value, h->value_len));
    if (h->name_len == 12 && strncasecmp(h->name, "Content-Type", 12) == 0)
      has_ctype = true;
    if (h->name_len == 6 && strncasecmp(h->name, "Expect", 6) == 0)
      has_expect = true;
    char *line = h->value_len ? pc_asprintf("%.*s: %.*s", (int)h->name_len, h->name,
                                            (int)h->value_len, h->value)
                              : pc_asprintf("%.*s;", (int)h->name_len, h->name);
    list = curl_slist_append(list, line);
    free(line);
  }
  if (!has_ctype && sp->has_body && sp->body_type) {
    char *line = pc_asprintf("Content-Type: %s", sp->body_type);
    list = curl_slist_append(list, line);
    free(line);
  } else if (!has_ctype && !sp->multipart) { /* libcurl's multipart type has the boundary */
    list = curl_slist_append(list, "Content-Type:");
  }
  if (!has_expect)
    list = curl_slist_append(list, "Expect:");
  return list;
}

static long curl_version_of(enum pc_http_version v)
{
  switch (v) {
  case PC_HTTP_VERSION_1_0:
    return CURL_HTTP_VERSION_1_0;
  case PC_HTTP_VERSION_1_1:
    return CURL_HTTP_VERSION_1_1;
  case PC_HTTP_VERSION_2:
    return CURL_HTTP_VERSION_2_0;
  case PC_HTTP_VERSION_AUTO:
    break;
  }
  return CURL_HTTP_VERSION_2TLS;
}

/* The options every request sets, which a primed handle still carries
 * (pc_http__easy_recycle). */
static void set_constants(CURL *e, struct pc_http_session *s)
{
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  /* The names the session leaves to libcurl (a proxy's, an unusual host;
   * see resolve.h) are resolved on a thread of libcurl's, which libcurl
   * 7.88 joins when a transfer still resolving is removed (lib/asyn-thread.c,
   * Curl_resolver_kill): the loop would wait for the name server. With
   * QUICK_EXIT it detaches the thread instead, which frees its own data
   * when getaddrinfo returns. */
  curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, pc_http__open_socket_cb);
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, pc_http__close_socket_cb);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, s);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "pacer/" PACER_VERSION);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
}

/* The credentials of sp.auth, made secrets (redacted wherever they would
 * show: the Basic form too, which a server may echo), set for libcurl to
 * send. libcurl sends them to whatever URL the handle has: follow_redirect
 * clears them before another origin. */
static void set_auth(CURL *e, const struct pc_http_spec *sp)
{
  if (sp->auth == PC_HTTP_AUTH_BEARER) {
    pc_secret_add(sp->auth_token, strlen(sp->auth_token));
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, sp->auth_token);
    return;
  }
  pc_secret_add_userinfo(sp->auth_user, sp->auth_password);
  curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)(sp->auth == PC_HTTP_AUTH_DIGEST
                                                   ? CURLAUTH_DIGEST : CURLAUTH_BASIC));
  curl_easy_setopt(e, CURLOPT_USERNAME, sp->auth_user);
  curl_easy_setopt(e, CURLOPT_PASSWORD, sp->auth_password);
}

/* Sets the options of sp that not every request has. Returns whether none
 * was needed (the handle may then be recycled primed): options left at
 * curl_easy_reset's defaults are not set (CURL_HTTP_VERSION_2TLS, GET, no
 * CURLOPT_FOLLOWLOCATION: redirects are followed by follow_redirect);
 * PIPEWAIT is set either way. */
static bool set_options(struct pc_http_request *r, const struct pc_http_spec *sp)
{
  CURL *e = r->t.easy;
  bool plain = true;
  long version = curl_version_of(sp->version);
  if (version != CURL_HTTP_VERSION_2TLS) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, version);
  }
  /* Over TLS, wait for a connection that may multiplex (HTTP/2) instead of
   * opening another one; over cleartext there is nothing to wait for. Set
   * either way: a primed handle may carry the previous request's value. */
  bool pipewait = strncasecmp(r->url, "https://", 8) == 0 &&
                  version != CURL_HTTP_VERSION_1_1 && version != CURL_HTTP_VERSION_1_0;
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, pipewait ? 1L : 0L);
  r->t.mux = pipewait;
  /* Only HTTP/1 (one transfer per connection): see "Fresh connections"
   * in session.h. HTTP/2 over cleartext (an upgrade) may multiplex. */
  r->t.h1 = !pipewait && version != CURL_HTTP_VERSION_2_0 &&
            version != CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  /* Both bound name resolution too, which the session does before the
   * handle goes in (t.connect_timeout_ms, t.timeout_ms). */
  if (sp->connect_timeout_ms >= 0) {
    plain = false;
    long ct = (long)(sp->connect_timeout_ms > 0 && sp->connect_timeout_ms < 1
                         ? 1 : sp->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ct);
    r->t.connect_timeout_ms = (double)ct; /* 0: libcurl's default */
  }
  if (sp->timeout_ms > 0) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(sp->timeout_ms));
    r->t.timeout_ms = ceil(sp->timeout_ms);
  }
  if (sp->insecure) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    pc_http__warn_insecure(r->t.s, r->label, r->url);
  }
  if (sp->ca_file) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_CAINFO, sp->ca_file);
  }
  /* The jar: set for every request, since a primed handle carries the
   * previous request's share. Attaching the share turns libcurl's cookie
   * engine on for the handle; detaching it leaves the handle without one
   * (its cookies were the share's), and such a handle is reset before it
   * is used again. */
  CURLSH *jar = sp->cookie_jar ? pc_http__cookie_jar(r->t.s) : NULL;
  curl_easy_setopt(e, CURLOPT_SHARE, jar);
  if (jar)
    curl_easy_setopt(e, CURLOPT_COOKIEFILE, "");
  else
    plain = false;
  if (sp->cookie) {
    plain = false;
    r->extra_cookie = true;
    curl_easy_setopt(e, CURLOPT_COOKIE, sp->cookie);
  }
  if (sp->auth != PC_HTTP_AUTH_NONE) {
    plain = false;
    r->auth = true;
    set_auth(e, sp);
  }
  if (!sp->compressed) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
  }
  if (sp->cert) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_SSLCERT, sp->cert);
  }
  if (sp->key) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_SSLKEY, sp->key);
  }
  if (sp->key_password) {
    plain = false;
    pc_secret_add(sp->key_password, strlen(sp->key_password));
    curl_easy_setopt(e, CURLOPT_KEYPASSWD, sp->key_password);
  }
  if (sp->tls_version) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_SSLVERSION, sp->tls_version);
  }
  if (sp->proxy) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_PROXY, sp->proxy);
    r->t.no_lookup |= *sp->proxy != '\0';
  }
  if (sp->nconnect_to) {
    plain = false;
    for (size_t i = 0; i < sp->nconnect_to; i++)
      r->connect_to = curl_slist_append(r->connect_to, sp->connect_to[i]);
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, r->connect_to);
    r->t.no_lookup = true;
  }
  if (sp->unix_socket) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, sp->unix_socket);
    r->t.no_lookup = true;
  }
  if (sp->method == PC_HTTP_HEAD) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (sp->method != PC_HTTP_GET || sp->has_body) {
    plain = false;
    if (sp->method == PC_HTTP_POST)
      curl_easy_setopt(e, CURLOPT_POST, 1L);
    else
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_name(r));
    if (pc_http__upload_set(&r->up, e)) {
      /* a body_file or a multipart body */
    } else if (sp->has_body || pc_http_method_sends_body(sp->method)) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sp->body_len);
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, sp->body ? sp->body : "");
    }
  }
  return plain;
}

/* -vv: what a request sends, each line after "\n  ": "> " and each header
 * (the body's Content-Type too unless a header sets it), then the body's
 * line (show.h). */
static void show_request(struct pc_buf *out, const struct pc_http_spec *sp, size_t max)
{
  bool typed = false;
  for (size_t i = 0; i < sp->nheaders; i++) {
    const struct pc_http_header *h = &sp->headers[i];
    if (h->name_len == 12 && strncasecmp(h->name, "content-type", 12) == 0)
      typed = true;
    size_t n = h->value_len > TRACE_LINE_MAX ? TRACE_LINE_MAX : h->value_len;
    pc_buf_printf(out, "\n  > %.*s: %.*s%s", (int)h->name_len, h->name, (int)n, h->value,
                  n < h->value_len ? "..." : "");
  }
  if (!sp->has_body || sp->method == PC_HTTP_HEAD)
    return;
  if (sp->body_type && !typed)
    pc_buf_printf(out, "\n  > Content-Type: %s", sp->body_type);
  if (sp->body_file) {
    pc_buf_printf(out, "\n  body: the file %s", sp->body_file);
    return;
  }
  if (sp->multipart) {
    for (size_t i = 0; i < sp->nparts; i++)
      pc_buf_printf(out, "\n  part %s: %s%s", sp->parts[i].name,
                    sp->parts[i].file ? "the file " : "",
                    sp->parts[i].file ? sp->parts[i].file : "(text)");
    return;
  }
  pc_http_show_body(out, sp->body ? sp->body : "", sp->body_len, sp->body_type,
            sp->body_type ? strlen(sp->body_type) : 0, max);
}

int pc_http_request_start(struct pc_http_session *s, const struct pc_http_spec *sp,
                          pc_http_done_cb cb, void *data, struct pc_http_request **out,
                          char **err)
{
  assert(s && sp && sp->url && cb && !pc_http__closing(s));
  assert(!(sp->has_body && sp->method == PC_HTTP_HEAD));
  if (sp->ca_file && check_ca_file(sp->ca_file, err) != 0)
    return -1;
  if ((sp->cert &&
       pc_http__check_file("cert", sp->cert, "a PEM file of a client certificate", err)) ||
      (sp->key && pc_http__check_file("key", sp->key, "a PEM file of a private key", err)))
    return -1;
  if (sp->save_to && !*sp->save_to) {
    *err = pc_xstrdup("http.save_to: the path is empty");
    return -1;
  }
  bool primed;
  CURL *e = pc_http__easy_take(s, &primed);
  if (!e) {
    *err = pc_xstrdup("http: libcurl could not create a transfer");
    return -1;
  }
  struct pc_http_request *r = req_new(s, e, sp);
  r->cb = cb;
  r->data = data;
  if (r->save_to && open_save_to(r, err) != 0) {
    pc_http__easy_recycle(s, e, primed);
    r->t.easy = NULL;
    req_free(r);
    return -1;
  }
  if (pc_http__upload_open(&r->up, e, sp->body_file, sp->multipart, sp->parts, sp->nparts,
                           err) != 0) {
    pc_http__easy_recycle(s, e, primed);
    r->t.easy = NULL;
    req_free(r);
    return -1;
  }
  r->hdr_list = header_list(sp);

  /* The options of every request: per-request pointers, then constants
   * (already set on a primed handle). */
  curl_easy_setopt(e, CURLOPT_PRIVATE, &r->t);
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  if (strchr(r->url, '@'))
    note_url_password(r->url);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &r->t);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdr_list);
  /* A HEAD response's Content-Length is that of a body it does not have:
   * no limit applies (0). */
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, r->method == PC_HTTP_HEAD
                                                     ? (curl_off_t)0 : (curl_off_t)r->max_bytes);
  if (!primed)
    set_constants(e, s);
  r->plain = set_options(r, sp);

  CURLMcode mc = pc_http__transfer_add(s, &r->t);
  if (mc != CURLM_OK) {
    *err = pc_asprintf("http: cannot start the request: %s", curl_multi_strerror(mc));
    pc_http__easy_recycle(s, e, r->plain);
    r->t.easy = NULL;
    req_free(r);
    return -1;
  }
  if (pc_log_enabled(PC_LOG_TRACE)) {
    /* -vv: what is sent (pacer's own headers, such as User-Agent, are
     * libcurl's and not listed) */
    struct pc_buf b;
    pc_buf_init(&b, (size_t)1 << 20);
    pc_buf_printf(&b, "> %s %s", method_name(r), r->url);
    show_request(&b, sp, TRACE_BODY_MAX);
    pc_log(PC_LOG_TRACE, r->label, "%s", b.data);
    pc_buf_free(&b);
  } else if (pc_log_enabled(PC_LOG_DEBUG)) {
    pc_log(PC_LOG_DEBUG, r->label, "%s %s", method_name(r), r->url);
  }
  if (out)
    *out = r;
  return 0;
}

void pc_http_request_cancel(struct pc_http_request *r)
{
  if (!r)
    return;
  /* The handle is cleaned up, not recycled: it may carry an errno of its
   * own (see on_transfer_done). */
  pc_http__transfer_cancel(r->t.s, &r->t);
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s cancelled", method_name(r), r->url);
  req_free(r); /* closes and removes the save_to temporary file */
}

static void on_transfer_drop(struct pc_http__transfer *t)
{
  req_free(PC_CONTAINER_OF(t, struct pc_http_request, t));
}

bool pc_http_request_nothing_sent(const struct pc_http_request *r)
{
  return !r->sent;
}

enum pc_http_method pc_http_request_method(const struct pc_http_request *r)
{
  return r->method;
}

const char *pc_http_request_url(const struct pc_http_request *r)
{
  return r->url;
}

/* ============================================================ redirects */

/* pacer follows redirects itself instead of with CURLOPT_FOLLOWLOCATION,
 * because libcurl's rules differ from RFC 9110 as fetch and aiohttp read
 * it: with CURLOPT_CUSTOMREQUEST it replays PUT, PATCH and DELETE on a
 * 303, and it re-sends a PUT or PATCH without its body (but with its
 * Content-Type) on a 301 or 302; and on a redirect to another origin it
 * drops only Authorization and Cookie, not the custom headers that carry
 * secrets. When a response is a redirect, on_transfer_done (a loop
 * callback, never inside libcurl) calls follow_redirect, which changes the
 * request on the same easy handle and adds it again: connections stay in
 * the multi handle's cache and are reused as for any request. The rules
 * themselves are rules.c's. */

static void collect_info(struct pc_http_request *r)
{
  CURL *e = r->t.easy;
  struct resp_info *in = &r->info;
  char *u = NULL;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &in->status);
  if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &u) == CURLE_OK && u)
    in->url = u;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &in->version);
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &in->connects);
  curl_easy_getinfo(e, CURLINFO_NAMELOOKUP_TIME_T, &in->t_dns);
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &in->t_connect);
  curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &in->t_tls);
  curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &in->t_start);
  curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &in->t_total);
  curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &in->down);
  curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &in->up);
  curl_easy_getinfo(e, CURLINFO_HEADER_SIZE, &in->header_bytes);
  curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &in->request_bytes);
}

/* The URL of the latest response (the asked one if libcurl has none). */
static const char *here_url(const struct pc_http_request *r)
{
  return r->info.url ? r->info.url : r->url;
}

/* Adds the response just received (one request of a redirect chain, or
 * the last) to the session's statistics, under the origin that sent it. */
static void count_response(struct pc_http_request *r, bool failed)
{
  const struct resp_info *in = &r->info;
  struct pc_http_host_stats d = {
      .requests = 1,
      .connections = (uint64_t)(in->connects > 0 ? in->connects : 0),
      .reused = in->connects == 0 && in->status > 0,
      .bytes_down = (uint64_t)(in->down + in->header_bytes),
      .bytes_up = (uint64_t)(in->up + in->request_bytes),
  };
  pc_http__count(r->t.s, here_url(r), &d, failed);
}

/* The response just received by r is a redirect to `next` (absolute, from
 * CURLINFO_REDIRECT_URL). Sets the next request up on r's easy handle and
 * adds it to the multi handle again. Returns PC_FAIL_NONE when it is on its
 * way; otherwise the request ends with the failure returned and its
 * message in m. */
static enum pc_fail follow_redirect(struct pc_http_request *r, const char *next,
                                    struct pc_buf *m)
{
  CURL *e = r->t.easy;
  const char *here = here_url(r);
  const char *method = method_name(r);
  int status = (int)r->info.status;
  if (r->nredirects >= r->max_redirects) {
    pc_buf_printf(m, "%s %s: too many redirects (more than %d; a redirect loop?), last at %s",
                  method, r->url, r->max_redirects, here);
    return PC_FAIL_ERROR;
  }
  if (!pc_http_url_scheme_ok(next)) {
    pc_buf_printf(m, "%s %s: %s answered %d with a redirect to %s, which is not an http:// or "
                  "https:// URL", method, r->url, here, status, next);
    return PC_FAIL_ERROR;
  }
  /* The Lua API's `timeout` bounds the whole chain. */
  double left = -1;
  if (r->timeout_ms > 0) {
    left = r->timeout_ms - (double)(r->before.total + r->info.t_total) / 1000.0 -
           r->t.lookup_ms;
    if (left <= 0) {
      char dur[32];
      pc_format_duration(r->timeout_ms, dur, sizeof dur);
      pc_buf_printf(m, "%s %s: timed out after %s", method, r->url, dur);
      return PC_FAIL_TIMEOUT;
    }
  }

  count_response(r, false);
  r->redirects = pc_xrealloc(r->redirects, (size_t)(r->nredirects + 1) * sizeof *r->redirects);
  r->redirects[r->nredirects].status = status;
  r->redirects[r->nredirects].url = pc_xstrdup(here);
  r->nredirects++;
  const struct resp_info *in = &r->info;
  r->before.dns += in->t_dns;
  r->before.connect += in->t_connect > in->t_dns ? in->t_connect - in->t_dns : 0;
  r->before.tls += in->t_tls > in->t_connect ? in->t_tls - in->t_connect : 0;
  r->before.total += in->t_total;

  bool to_get = pc_http_redirect_as_get(status, r->as_get ? PC_HTTP_GET : r->method,
                                        r->has_body);
  bool cross = !pc_http_same_origin(here, next);
  bool cross_secret = false;
  if (to_get || cross) {
    struct curl_slist *kept = NULL;
    for (struct curl_slist *h = r->hdr_list; h; h = h->next)
      if (pc_http_redirect_keeps_header(h->data, to_get, cross, &cross_secret))
        kept = curl_slist_append(kept, h->data);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, kept);
    curl_slist_free_all(r->hdr_list);
    r->hdr_list = kept;
  }
  /* The step's own cookies are for its origin (the jar's follow their
   * domains by themselves). */
  if (cross && r->extra_cookie) {
    curl_easy_setopt(e, CURLOPT_COOKIE, NULL);
    r->extra_cookie = false;
    cross_secret = true;
  }
  if (cross && r->auth) { /* auth: the same as an Authorization header */
    curl_easy_setopt(e, CURLOPT_USERNAME, NULL);
    curl_easy_setopt(e, CURLOPT_PASSWORD, NULL);
    curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    r->auth = false;
    cross_secret = true;
  }
  if (to_get) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    r->as_get = true;
    r->has_body = false;
    r->plain = false;
  }
  /* A body kept from a file goes again from its start (libcurl rewinds a
   * multipart body itself). */
  if (!to_get && pc_http__upload_rewind(&r->up) != 0) {
    pc_buf_printf(m, "%s %s: cannot send body_file again after the redirect: %s", method,
                  r->url, strerror(errno));
    return PC_FAIL_ERROR;
  }
  /* `here` (the handle's effective URL) is invalid from here on. */
  curl_easy_setopt(e, CURLOPT_URL, next);
  r->info.url = NULL;
  free(r->hop_url);
  r->hop_url = pc_xstrdup(next);
  r->t.url = r->hop_url;
  /* A hop over TLS may land on an HTTP/2 connection (PIPEWAIT stays as the
   * first request set it): not counted as HTTP/1 ("Fresh connections"). */
  if (strncasecmp(next, "https://", 8) == 0)
    r->t.h1 = false;
  if (left > 0) {
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(left));
    r->t.timeout_ms = ceil(left);
  }
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s -> %d, redirected to %s %s%s", method,
           r->redirects[r->nredirects - 1].url, status, r->as_get ? "GET" : method, next,
           cross_secret ? " (without the headers that hold secrets: another origin)" : "");
  /* The next response starts from nothing. A redirect's body is dropped
   * as it arrives (on_header), unless its Location came past HEADERS_MAX:
   * then what reached a save_to file goes. */
  if (r->out.fd >= 0 && r->received > 0 &&
      (pc_outfile_is_stream(&r->out) || ftruncate(r->out.fd, 0) != 0 ||
       lseek(r->out.fd, 0, SEEK_SET) != 0)) {
    pc_buf_printf(m, "%s %s: cannot write \"%s\": %s", method, r->url, r->save_to,
                  pc_outfile_is_stream(&r->out) ? "a redirect's body already reached it"
                                                : strerror(errno));
    return PC_FAIL_ERROR;
  }
  r->received = 0;
  r->too_big = false;
  r->discard = false;
  r->errbuf[0] = '\0';
  pc_buf_reset(&r->body);
  CURLMcode mc = pc_http__transfer_add(r->t.s, &r->t);
  if (mc != CURLM_OK) {
    pc_buf_printf(m, "%s %s: cannot follow the redirect to %s: %s", method, r->url, next,
                  curl_multi_strerror(mc));
    return PC_FAIL_ERROR;
  }
  return PC_FAIL_NONE;
}

/* =========================================================== completion */

static double to_ms(curl_off_t us)
{
  return us > 0 ? (double)llround((double)us / 10.0) / 100.0 : 0.0;
}

/* The result's timing (see struct pc_http_timing). */
static struct pc_http_timing timing_of(const struct pc_http_request *r)
{
  const struct resp_info *in = &r->info;
  const struct hop_sums *p = &r->before;
  curl_off_t dns = in->t_dns, conn = in->t_connect, tls = in->t_tls;
  /* Names resolved by the session before libcurl's clock started (every
   * hop's): part of `dns`, and of the time since the start. */
  curl_off_t looked = (curl_off_t)llround(r->t.lookup_ms * 1000.0);
  return (struct pc_http_timing){
      .dns = to_ms(looked + p->dns + dns),
      .connect = to_ms(p->connect + (conn > dns ? conn - dns : 0)),
      .tls = to_ms(p->tls + (tls > conn ? tls - conn : 0)),
      .ttfb = to_ms(looked + p->total + in->t_start),
      .total = to_ms(looked + p->total + in->t_total),
  };
}

static double retry_after_of(const struct pc_http_request *r)
{
  size_t len;
  const char *v = pc_http_header_find(r->hdrs.data, r->hdrs.len, "retry-after", &len);
  return v ? pc_http_retry_after_ms(v, len, time(NULL)) : -1;
}

/* Classifies the failed transfer (failure.c) into m. */
static enum pc_fail describe_failure(const struct pc_http_request *r, CURLcode rc,
                                     long os_errno, struct pc_buf *m)
{
  struct pc_http_failure f = {
      .rc = rc,
      .method = method_name(r),
      .url = r->url,
      .final_url = r->info.url,
      .nredirects = r->nredirects,
      .status = r->info.status,
      .errbuf = r->errbuf,
      .os_errno = os_errno,
      .open_errno = r->t.open_errno,
      .connected = r->info.t_connect != 0,
      .connect_timeout_ms = r->connect_timeout_ms,
      .timeout_ms = r->timeout_ms,
      .too_big = r->too_big,
      .max_bytes = r->max_bytes,
      .write_errno = r->write_errno,
      .save_to = r->save_to,
      .read_errno = r->up.read_errno,
      .body_file = r->up.path,
      .no_memory = r->no_memory,
      .received = r->received,
      .headers_too_big = r->hdrs_too_big,
      .header_max = HEADERS_MAX,
      .in_headers = r->in_headers,
  };
  return pc_http_failure_describe(&f, m);
}

/* The session's `done`: libcurl finished the transfer. Either the request
 * follows a redirect (and goes on), or it completes: the save_to file is
 * kept or removed, the statistics counted, the callback called once, the
 * easy handle given back and the request freed. */
static void on_transfer_done(struct pc_http__transfer *t, CURLcode rc)
{
  struct pc_http_request *r = PC_CONTAINER_OF(t, struct pc_http_request, t);
  struct pc_http_session *s = t->s;
  long os_errno = 0;
  if (t->lookup_failed) {
    /* The name of t->url did not resolve (or not in time): no transfer
     * ran, and the handle still describes the previous one, if any. */
    memset(&r->info, 0, sizeof r->info);
    r->info.url = t->url;
    pc_http__transfer_remove(s, t);
  } else {
    collect_info(r);
    pc_http__transfer_remove(s, t);
    /* The errno of this transfer's failure as libcurl recorded it, or 0.
     * libcurl keeps the last one a handle met for the handle's lifetime
     * (CURLINFO_OS_ERRNO is never reset, not even by curl_easy_reset), so
     * only handles that have none are recycled (below): a value here is
     * this transfer's. */
    curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &os_errno);
  }

  struct pc_buf msg;
  pc_buf_init(&msg, 8192);
  enum pc_fail fail = PC_FAIL_NONE;
  if (rc == CURLE_OK && r->follow && pc_http_is_redirect(r->info.status)) {
    char *next = NULL;
    if (curl_easy_getinfo(t->easy, CURLINFO_REDIRECT_URL, &next) == CURLE_OK && next) {
      next = pc_xstrdup(next); /* libcurl's copy goes with the next transfer */
      fail = follow_redirect(r, next, &msg);
      free(next);
      if (fail == PC_FAIL_NONE) {
        pc_buf_free(&msg);
        return; /* the next request of the chain is on its way */
      }
    }
  }
  pc_http__transfer_release(s, t); /* no more redirects: the slot goes on */
  if (fail == PC_FAIL_NONE && rc != CURLE_OK) {
    pc_buf_free(&r->body); /* not reported: give its memory back first */
    fail = describe_failure(r, rc, os_errno, &msg);
  } else if (fail == PC_FAIL_NONE && r->out.fd >= 0) {
    char *werr = NULL;
    if (!pc_http_status_accepted(r->info.status, r->save_ok, r->nsave_ok)) {
      pc_outfile_discard(&r->out); /* an error status: no file */
    } else if (pc_outfile_commit(&r->out, &werr) != 0) {
      fail = PC_FAIL_ERROR;
      pc_buf_printf(&msg, "%s %s: save_to: %s", method_name(r), r->url, werr);
    } else {
      r->saved = true;
    }
    free(werr);
  }
  const struct resp_info *in = &r->info;
  struct pc_http_result res = {
      .fail = fail,
      .error = fail != PC_FAIL_NONE ? msg.data : NULL,
      .nothing_sent = !r->sent,
      .method = method_name(r),
      .url = r->url,
      .final_url = here_url(r),
      .label = r->label,
      .status = in->status > 0 ? (int)in->status : 0,
      .retry_after_ms = retry_after_of(r),
      .http_version = pc_http_version_name(in->version),
      .reused = in->connects == 0,
      .headers = r->hdrs.data ? r->hdrs.data : "",
      .headers_len = r->hdrs.len,
      .body = fail != PC_FAIL_NONE ? NULL : r->body.data ? r->body.data : "",
      .body_len = r->body.len,
      .body_cut = (int64_t)r->body.len < r->received,
      .saved_to = r->saved ? r->save_to : NULL,
      .timing = timing_of(r),
      .redirects = r->redirects,
      .nredirects = (size_t)r->nredirects,
      .set_cookies = r->set_cookies.data ? r->set_cookies.data : "",
      .set_cookies_len = r->set_cookies.len,
  };
  count_response(r, fail != PC_FAIL_NONE);

  if (pc_log_enabled(PC_LOG_TRACE) && fail == PC_FAIL_NONE) {
    /* -vv: the response as it came, under the usual line */
    struct pc_buf b;
    pc_buf_init(&b, (size_t)1 << 20);
    pc_buf_printf(&b, "%s %s -> %ld (HTTP/%s, %s connection, %.1fms)", res.method, r->url,
                  in->status, res.http_version ? res.http_version : "?",
                  in->connects ? "new" : "reused", (double)in->t_total / 1000.0);
    pc_http_show_response(&b, res.headers, res.headers_len, res.saved_to ? NULL : res.body,
                          res.body_len, TRACE_BODY_MAX);
    if (res.saved_to)
      pc_buf_printf(&b, "\n  body: saved to %s", res.saved_to);
    pc_log(PC_LOG_TRACE, r->label, "%s", b.data);
    pc_buf_free(&b);
  } else if (pc_log_enabled(PC_LOG_DEBUG)) {
    if (fail == PC_FAIL_NONE)
      pc_log(PC_LOG_DEBUG, r->label, "%s %s -> %ld (HTTP/%s, %s connection, %.1fms)",
             res.method, r->url, in->status, res.http_version ? res.http_version : "?",
             in->connects ? "new" : "reused", (double)in->t_total / 1000.0);
    else
      pc_log(PC_LOG_DEBUG, r->label, "%s", msg.data);
  }

  r->cb(r->data, &res);
  pc_buf_free(&msg);
  /* A handle that met a system error (a failed transfer, or one that
   * succeeded after one: a connect refused on one address, a retry) keeps
   * its errno for good (see above): it is not recycled. One whose transfer
   * libcurl retried on a new connection (a kept-alive one died under it)
   * goes through curl_easy_reset: libcurl before 8.17 counts those retries
   * per handle, never per transfer (curl/curl#18926), and gives up after
   * 5, so a handle kept as it is would fail a later request that a fresh
   * handle retries. */
  if (rc != CURLE_OK || os_errno != 0) {
    curl_easy_setopt(t->easy, CURLOPT_COOKIEFILE, NULL); /* see pc_http__easy_recycle */
    curl_easy_cleanup(t->easy);
  }
  else /* each redirect pacer followed is one send of its own */
    pc_http__easy_recycle(s, t->easy, r->plain && r->sends <= r->nredirects + 1);
  t->easy = NULL;
  req_free(r);
}
