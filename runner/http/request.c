/* request.c: one request on a session (see request.h): its easy handle set
 * up from a struct pc_http_spec, starting and cancelling it. What happens
 * once it runs (libcurl's callbacks for it, the body buffer or the save_to
 * file, following redirects, completion into a struct pc_http_result) is
 * response.c's; the two share request_int.h. Transport only: no Lua.
 *
 * Ownership: a request (struct pc_http_request) is owned by the transport
 * from pc_http_request_start until it is freed, which happens in exactly
 * one place per path: after its callback returns (complete), in
 * pc_http_request_cancel, or when its session closes (the session's
 * `drop`). While it runs it owns its easy handle (t.easy), which is also in
 * the session's multi handle and has the transfer as CURLOPT_PRIVATE; the
 * handle goes back to the session's idle list (or is cleaned up) when the
 * request ends. Everything the spec pointed at is copied at start: the
 * URL, label, save_to path, string options and a body in memory into the
 * request's own allocation (text[], r->opt), the header lines into a
 * curl_slist, a multipart body's parts by upload.c. The easy handle is
 * taken and set up from that copy only when the session admits the
 * request (on_transfer_admit): a request waiting in the session's queue
 * has none. */
#include "http/request.h"

#include "http/request_int.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <curl/curl.h>

#include "http/session.h"
#include "http/show.h"
#include "base/log.h"
#include "base/outfile.h"
#include "base/redact.h"
#include "base/util.h"

static CURLcode on_transfer_admit(struct pc_http__transfer *t);
static void on_transfer_drop(struct pc_http__transfer *t);

static const struct pc_http__transfer_ops transfer_ops = {
    .admit = on_transfer_admit,
    .done = pc_http__on_transfer_done,
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

void pc_http__req_free(struct pc_http_request *r)
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

/* Appends the NUL-terminated copy of n bytes at p to the request's text
 * (*at: where the next one goes) and returns it; NULL stays NULL. */
static const char *text_put(char **at, const char *p, size_t n)
{
  if (!p)
    return NULL;
  char *d = *at;
  memcpy(d, p, n);
  d[n] = '\0';
  *at = d + n + 1;
  return d;
}

static size_t text_len(const char *p)
{
  return p ? strlen(p) + 1 : 0;
}

/* A new request for sp, with everything it keeps of the spec copied into
 * one allocation (the strings its handle is set up from when it is
 * admitted, and a body in memory); no easy handle yet. */
static struct pc_http_request *req_new(struct pc_http_session *s,
                                       const struct pc_http_spec *sp)
{
  const char *label = sp->label ? sp->label : "http";
  bool auth = sp->auth != PC_HTTP_AUTH_NONE, bearer = sp->auth == PC_HTTP_AUTH_BEARER;
  /* A body in memory: the spec's (not a file, not multipart), or an empty
   * one for a method that sends a body. */
  bool send_body = sp->method != PC_HTTP_HEAD && !sp->body_file && !sp->multipart &&
                   (sp->has_body || pc_http_method_sends_body(sp->method));
  size_t body_len = send_body && sp->body ? sp->body_len : 0;
  size_t n = text_len(sp->url) + text_len(label) + text_len(sp->save_to) +
             text_len(sp->ca_file) + text_len(sp->cookie) +
             (auth && !bearer ? text_len(sp->auth_user) + text_len(sp->auth_password) : 0) +
             (bearer ? text_len(sp->auth_token) : 0) + text_len(sp->cert) +
             text_len(sp->key) + text_len(sp->key_password) + text_len(sp->proxy) +
             text_len(sp->unix_socket) + (send_body ? body_len + 1 : 0);
  struct pc_http_request *r = pc_xcalloc(1, sizeof *r + n);
  char *at = r->text;
  r->url = text_put(&at, sp->url, strlen(sp->url));
  r->label = text_put(&at, label, strlen(label));
  if (sp->save_to)
    r->save_to = text_put(&at, sp->save_to, strlen(sp->save_to));
#define PUT(field, src) r->opt.field = (src) ? text_put(&at, (src), strlen(src)) : NULL
  PUT(ca_file, sp->ca_file);
  PUT(cookie, sp->cookie);
  if (auth && !bearer) {
    PUT(auth_user, sp->auth_user);
    PUT(auth_password, sp->auth_password);
  }
  if (bearer)
    PUT(auth_token, sp->auth_token);
  PUT(cert, sp->cert);
  PUT(key, sp->key);
  PUT(key_password, sp->key_password);
  PUT(proxy, sp->proxy);
  PUT(unix_socket, sp->unix_socket);
#undef PUT
  r->opt.send_body = send_body;
  if (send_body) {
    r->opt.body = text_put(&at, body_len ? sp->body : "", body_len);
    r->opt.body_len = body_len;
  }
  assert((size_t)(at - r->text) == n);
  pc_http__upload_init(&r->up);
  r->t.ops = &transfer_ops;
  r->t.s = s;
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
  curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, pc_http__on_prereq);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, pc_http__close_socket_cb);
  curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, s);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, pc_http__on_body);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, pc_http__on_header);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "pacer/" PACER_VERSION);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
}

/* What of sp is not the same for every request, worked out when the
 * request starts (no easy handle yet: see apply_options). Returns whether
 * none of it needs an option beyond the constant ones (the handle may then
 * be recycled primed): options left at curl_easy_reset's defaults are not
 * set (CURL_HTTP_VERSION_2TLS, GET, no CURLOPT_FOLLOWLOCATION: redirects
 * are followed by follow_redirect). Credentials become secrets here
 * (redacted wherever they would show: the Basic form too, which a server
 * may echo), and insecure: true is warned about, whether or not the
 * request ever leaves the session's queue. */
static bool plan_options(struct pc_http_request *r, const struct pc_http_spec *sp)
{
  bool plain = true;
  long version = curl_version_of(sp->version);
  r->opt.version = version;
  if (version != CURL_HTTP_VERSION_2TLS)
    plain = false;
  /* Over TLS, wait for a connection that may multiplex (HTTP/2) instead of
   * opening another one; over cleartext there is nothing to wait for. */
  bool pipewait = strncasecmp(r->url, "https://", 8) == 0 &&
                  version != CURL_HTTP_VERSION_1_1 && version != CURL_HTTP_VERSION_1_0;
  r->t.mux = pipewait;
  /* Only HTTP/1 (one transfer per connection): see "Fresh connections"
   * in session.h. HTTP/2 over cleartext (an upgrade) may multiplex. */
  r->t.h1 = !pipewait && version != CURL_HTTP_VERSION_2_0 &&
            version != CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
  /* Both bound name resolution too, which the session does before the
   * handle goes in (t.connect_timeout_ms, t.timeout_ms); a wait in the
   * session's queue counts in the timeout (session.c, on_admit). */
  if (sp->connect_timeout_ms >= 0) {
    plain = false;
    r->opt.connect_timeout = true;
    r->t.connect_timeout_ms = (double)(long)(sp->connect_timeout_ms > 0 &&
                                             sp->connect_timeout_ms < 1
                                                 ? 1 : sp->connect_timeout_ms); /* 0: default */
  }
  if (sp->timeout_ms > 0) {
    plain = false;
    r->t.timeout_ms = ceil(sp->timeout_ms);
  }
  r->opt.insecure = sp->insecure;
  if (sp->insecure) {
    plain = false;
    pc_http__warn_insecure(r->t.s, r->label, r->url);
  }
  r->opt.jar = sp->cookie_jar && pc_http__cookie_jar(r->t.s);
  r->opt.compressed = sp->compressed;
  r->opt.auth = (int)sp->auth;
  r->opt.tls_version = sp->tls_version;
  if (r->opt.ca_file || !r->opt.jar || r->opt.cookie || !sp->compressed || r->opt.cert ||
      r->opt.key || r->opt.key_password || sp->tls_version || r->opt.proxy ||
      sp->nconnect_to || r->opt.unix_socket)
    plain = false;
  r->extra_cookie = r->opt.cookie != NULL;
  if (sp->auth == PC_HTTP_AUTH_BEARER) {
    pc_secret_add(sp->auth_token, strlen(sp->auth_token));
  } else if (sp->auth != PC_HTTP_AUTH_NONE) {
    pc_secret_add_userinfo(sp->auth_user, sp->auth_password);
  }
  if (sp->auth != PC_HTTP_AUTH_NONE) {
    plain = false;
    r->auth = true;
  }
  if (sp->key_password)
    pc_secret_add(sp->key_password, strlen(sp->key_password));
  if (sp->proxy)
    r->t.no_lookup |= *sp->proxy != '\0';
  for (size_t i = 0; i < sp->nconnect_to; i++)
    r->connect_to = curl_slist_append(r->connect_to, sp->connect_to[i]);
  if (sp->nconnect_to || sp->unix_socket)
    r->t.no_lookup = true;
  if (sp->method != PC_HTTP_GET || sp->has_body)
    plain = false;
  return plain;
}

/* Sets up the admitted request's easy handle e from what plan_options
 * kept (r->opt and r->t's bounds; a wait in the session's queue has been
 * taken off t.timeout_ms). PIPEWAIT and the jar are set either way: a
 * primed handle may carry the previous request's. Returns CURLE_OK, or
 * the error of a multipart body libcurl could not make. */
static CURLcode apply_options(struct pc_http_request *r, CURL *e)
{
  if (r->opt.version != CURL_HTTP_VERSION_2TLS)
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, r->opt.version);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, r->t.mux ? 1L : 0L);
  if (r->opt.connect_timeout)
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)r->t.connect_timeout_ms);
  if (r->t.timeout_ms > 0)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->t.timeout_ms);
  if (r->opt.insecure) {
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (r->opt.ca_file)
    curl_easy_setopt(e, CURLOPT_CAINFO, r->opt.ca_file);
  /* The jar: set for every request, since a primed handle carries the
   * previous request's share. Attaching the share turns libcurl's cookie
   * engine on for the handle; detaching it leaves the handle without one
   * (its cookies were the share's), and such a handle is reset before it
   * is used again. */
  CURLSH *jar = r->opt.jar ? pc_http__cookie_jar(r->t.s) : NULL;
  curl_easy_setopt(e, CURLOPT_SHARE, jar);
  if (jar)
    curl_easy_setopt(e, CURLOPT_COOKIEFILE, "");
  if (r->opt.cookie)
    curl_easy_setopt(e, CURLOPT_COOKIE, r->opt.cookie);
  /* libcurl sends credentials to whatever URL the handle has:
   * follow_redirect clears them before another origin. */
  if (r->opt.auth == PC_HTTP_AUTH_BEARER) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, r->opt.auth_token);
  } else if (r->opt.auth != PC_HTTP_AUTH_NONE) {
    curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)(r->opt.auth == PC_HTTP_AUTH_DIGEST
                                                     ? CURLAUTH_DIGEST : CURLAUTH_BASIC));
    curl_easy_setopt(e, CURLOPT_USERNAME, r->opt.auth_user);
    curl_easy_setopt(e, CURLOPT_PASSWORD, r->opt.auth_password);
  }
  if (!r->opt.compressed)
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, NULL);
  if (r->opt.cert)
    curl_easy_setopt(e, CURLOPT_SSLCERT, r->opt.cert);
  if (r->opt.key)
    curl_easy_setopt(e, CURLOPT_SSLKEY, r->opt.key);
  if (r->opt.key_password)
    curl_easy_setopt(e, CURLOPT_KEYPASSWD, r->opt.key_password);
  if (r->opt.tls_version)
    curl_easy_setopt(e, CURLOPT_SSLVERSION, r->opt.tls_version);
  if (r->opt.proxy)
    curl_easy_setopt(e, CURLOPT_PROXY, r->opt.proxy);
  if (r->connect_to)
    curl_easy_setopt(e, CURLOPT_CONNECT_TO, r->connect_to);
  if (r->opt.unix_socket)
    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, r->opt.unix_socket);
  if (r->method == PC_HTTP_HEAD) {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (r->method != PC_HTTP_GET || r->has_body) {
    if (r->method == PC_HTTP_POST)
      curl_easy_setopt(e, CURLOPT_POST, 1L);
    else
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method_name(r));
    int up = pc_http__upload_set(&r->up, e);
    if (up < 0)
      return CURLE_OUT_OF_MEMORY;
    if (up == 0 && r->opt.send_body) {
      /* The request's own copy, which outlives the handle's use of it. */
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->opt.body_len);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->opt.body);
    }
  }
  return CURLE_OK;
}

/* The session's `admit`: the request got its slot. Its easy handle is
 * taken (an idle one, or a new one) and set up. */
static CURLcode on_transfer_admit(struct pc_http__transfer *t)
{
  struct pc_http_request *r = PC_CONTAINER_OF(t, struct pc_http_request, t);
  struct pc_http_session *s = t->s;
  bool primed;
  CURL *e = pc_http__easy_take(s, &primed);
  if (!e)
    return CURLE_OUT_OF_MEMORY;
  t->easy = e;
  /* The options of every request: per-request pointers, then constants
   * (already set on a primed handle). */
  curl_easy_setopt(e, CURLOPT_PRIVATE, t);
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
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
  return apply_options(r, e);
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
  struct pc_http_request *r = req_new(s, sp);
  r->cb = cb;
  r->data = data;
  if ((r->save_to && open_save_to(r, err) != 0) ||
      pc_http__upload_open(&r->up, sp->body_file, sp->multipart, sp->parts, sp->nparts,
                           err) != 0) {
    pc_http__req_free(r);
    return -1;
  }
  r->hdr_list = header_list(sp);
  if (strchr(r->url, '@'))
    note_url_password(r->url);
  r->plain = plan_options(r, sp);

  /* Admitted at once (on_transfer_admit makes the handle), or queued. */
  CURLMcode mc = pc_http__transfer_add(s, &r->t);
  if (mc != CURLM_OK) {
    *err = r->t.easy ? pc_asprintf("http: cannot start the request: %s",
                                   curl_multi_strerror(mc))
                     : pc_xstrdup("http: libcurl could not create a transfer");
    pc_http__easy_recycle(s, r->t.easy, r->plain);
    r->t.easy = NULL;
    pc_http__req_free(r);
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
   * own (see pc_http__on_transfer_done). */
  pc_http__transfer_cancel(r->t.s, &r->t);
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s cancelled", method_name(r), r->url);
  pc_http__req_free(r); /* closes and removes the save_to temporary file */
}

static void on_transfer_drop(struct pc_http__transfer *t)
{
  pc_http__req_free(PC_CONTAINER_OF(t, struct pc_http_request, t));
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
