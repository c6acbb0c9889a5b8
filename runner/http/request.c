/* request.c: one request on a session: its easy handle set up from the
 * options, libcurl's callbacks (body, headers, prereq), the body buffer or
 * the save_to file, following redirects, and completion. A request
 * (struct pc_http_req) owns its easy handle while it runs; it is freed
 * right after its completion callback returns, or at once by
 * pc_http_cancel. */
#include "http/internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <math.h>
#include <unistd.h>

#include <lua.h>

#include "base/log.h"
#include "base/redact.h"

/* ============================================================ requests */

void pc_http__req_free(struct pc_http_req *r)
{
  pc_outfile_discard(&r->out); /* closes and removes a temporary file */
  curl_slist_free_all(r->hdr_list);
  free(r->method);
  free(r->url);
  free(r->label);
  free(r->save_to);
  for (int i = 0; i < r->nredirects; i++)
    free(r->redirects[i].url);
  free(r->redirects);
  pc_buf_free(&r->body);
  pc_buf_free(&r->hdrs);
  free(r);
}

static void unlink_live(struct pc_http_session *s, struct pc_http_req *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    s->live = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->prev = r->next = NULL;
}
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
  struct pc_http_req *r = clientp;
  r->sent = true;
  r->sends++;
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

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct pc_http_req *r = userdata;
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
      curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
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
static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
  struct pc_http_req *r = userdata;
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
    if (r->follow && pc_http__is_redirect(pc_http__status_of(&r->hdrs)))
      r->discard = pc_http__find_header(&r->hdrs, "location", &len) != NULL;
  }
  if (n > HEADERS_MAX - r->hdrs.len) {
    r->hdrs_too_big = true;
    return 0; /* CURLE_WRITE_ERROR */
  }
  if (buf_try_append(&r->hdrs, buf, n, 0) != 0) {
    r->no_memory = true;
    return 0;
  }
  return n;
}

/* Opens save_to through outfile.h: a regular file (or none yet) gets a
 * temporary file beside it, renamed over it only on success; a device or a
 * FIFO is written into. Returns NULL or a message. */
static char *open_save_to(struct pc_http_req *r)
{
  char *err = NULL;
  if (pc_outfile_open(&r->out, r->save_to, 0, &err) == 0)
    return NULL;
  char *m = pc_asprintf("http.save_to: %s", err);
  free(err);
  return m;
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

static void warn_insecure(struct pc_http_session *s, const char *label, const char *url)
{
  CURLU *u = curl_url();
  char *host = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    host = NULL;
  const char *hn = host ? host : url;
  bool seen = false;
  for (size_t i = 0; i < s->nwarned && !seen; i++)
    seen = strcmp(s->warned[i], hn) == 0;
  if (!seen) {
    s->warned = pc_xrealloc(s->warned, (s->nwarned + 1) * sizeof *s->warned);
    s->warned[s->nwarned++] = pc_xstrdup(hn);
    pc_log(PC_LOG_WARN, label,
           "WARNING: insecure: true turns OFF TLS certificate verification for %s: anyone on "
           "the network path can read and change this traffic. Use ca_file to trust a private "
           "CA instead.", hn);
  }
  curl_free(host);
  curl_url_cleanup(u);
}

int pc_http_start(struct pc_http_session *s, struct pc_lua *h, int idx,
                  const struct pc_http_start_opts *o, pc_http_done_cb cb, void *data,
                  struct pc_http_req **out, char **err)
{
  assert(s && !s->closing && cb);
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  bool primed = false;
  CURL *e = NULL;
  if (s->nidle) {
    s->nidle--;
    e = s->idle[s->nidle];
    primed = s->idle_primed[s->nidle];
  } else {
    e = curl_easy_init();
  }
  if (!e) {
    *err = pc_xstrdup("http: libcurl could not create a transfer");
    return -1;
  }
  struct pc_http__spec sp;
  memset(&sp, 0, sizeof sp);
  *err = pc_http__parse_spec(h, e, idx, o && o->allow_timeout, &sp);
  if (*err) {
    pc_http__spec_free(&sp);
    pc_http__recycle_easy(s, e, primed);
    return -1;
  }

  struct pc_http_req *r = pc_xcalloc(1, sizeof *r);
  r->s = s;
  r->easy = e;
  pc_outfile_init(&r->out);
  r->method = sp.method;
  r->url = sp.url;
  sp.method = sp.url = NULL;
  r->label = pc_xstrdup(o && o->label ? o->label : "http");
  r->max_bytes = sp.max_bytes;
  r->save_to = sp.save_to;
  sp.save_to = NULL;
  r->save_ok = o ? o->save_ok : NULL;
  r->nsave_ok = o ? o->nsave_ok : 0;
  r->cb = cb;
  r->data = data;
  r->timeout_ms = sp.timeout_ms;
  r->connect_timeout_ms = sp.connect_timeout_ms;
  r->follow = sp.follow;
  r->head = strcmp(r->method, "HEAD") == 0;
  r->has_body = sp.has_body;
  r->non_idempotent = !(strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0 ||
                        strcmp(r->method, "PUT") == 0 || strcmp(r->method, "DELETE") == 0 ||
                        strcmp(r->method, "OPTIONS") == 0 || strcmp(r->method, "TRACE") == 0);
  pc_buf_init(&r->body, r->max_bytes > 0 && (uint64_t)r->max_bytes < SIZE_MAX
                            ? (size_t)r->max_bytes : SIZE_MAX);
  pc_buf_init(&r->hdrs, HEADERS_MAX);
  if (r->save_to) {
    char *m = open_save_to(r);
    if (m) {
      *err = m;
      pc_http__spec_free(&sp);
      pc_http__recycle_easy(s, e, primed);
      r->easy = NULL;
      pc_http__req_free(r);
      return -1;
    }
  }

  /* Headers pacer adds unless the request sets them. */
  r->hdr_list = sp.hdrs;
  sp.hdrs = NULL;
  if (sp.has_body && !sp.has_ctype) {
    char *line = pc_asprintf("Content-Type: %s", sp.body_ctype);
    r->hdr_list = curl_slist_append(r->hdr_list, line);
    free(line);
  } else if (!sp.has_body && !sp.has_ctype) {
    r->hdr_list = curl_slist_append(r->hdr_list, "Content-Type:");
  }
  if (!sp.has_expect) /* no 100-continue round trip before the body */
    r->hdr_list = curl_slist_append(r->hdr_list, "Expect:");

  /* The options of every request: per-request pointers, then constants
   * (already set on a primed handle, see recycle_easy). */
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  if (strchr(r->url, '@'))
    note_url_password(r->url);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdr_list);
  /* A HEAD response's Content-Length is that of a body it does not have:
   * no limit applies (0). */
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, r->head ? (curl_off_t)0
                                                         : (curl_off_t)r->max_bytes);
  if (!primed) {
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, pc_http__on_open_socket);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, pc_http__on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, s);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "pacer/" PACER_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  }
  /* Everything below is an option the next request may not want: the
   * handle then goes through curl_easy_reset when it is recycled. Options
   * left at curl_easy_reset's defaults are not set (CURL_HTTP_VERSION_2TLS,
   * GET, no CURLOPT_FOLLOWLOCATION: redirects are followed by
   * follow_redirect); PIPEWAIT is set either way. */
  bool plain = true;
  if (sp.version != CURL_HTTP_VERSION_2TLS) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, sp.version);
  }
  /* Over TLS, wait for a connection that may multiplex (HTTP/2) instead of
   * opening another one; over cleartext there is nothing to wait for. Set
   * either way: a primed handle may carry the previous request's value. */
  bool pipewait = strncasecmp(r->url, "https://", 8) == 0 &&
                  sp.version != CURL_HTTP_VERSION_1_1 && sp.version != CURL_HTTP_VERSION_1_0;
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, pipewait ? 1L : 0L);
  if (sp.connect_timeout_ms >= 0) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(sp.connect_timeout_ms > 0 && sp.connect_timeout_ms < 1 ? 1
                                                                   : sp.connect_timeout_ms));
  }
  if (sp.timeout_ms > 0) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(sp.timeout_ms));
  }
  if (sp.insecure) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    warn_insecure(s, r->label, r->url);
  }
  if (sp.ca_file) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_CAINFO, sp.ca_file);
  }

  if (strcmp(r->method, "HEAD") == 0) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(r->method, "GET") == 0 && !sp.has_body) {
    /* the default */
  } else {
    plain = false;
    if (strcmp(r->method, "POST") == 0)
      curl_easy_setopt(e, CURLOPT_POST, 1L);
    else
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    bool send_empty = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                      strcmp(r->method, "PATCH") == 0;
    if (sp.has_body || send_empty) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sp.body_len);
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, sp.body ? sp.body : "");
    }
  }
  pc_http__spec_free(&sp);
  r->plain = plain;

  CURLMcode mc = curl_multi_add_handle(s->multi, e);
  if (mc != CURLM_OK) {
    *err = pc_asprintf("http: cannot start the request: %s", curl_multi_strerror(mc));
    pc_http__recycle_easy(s, e, plain);
    r->easy = NULL;
    pc_http__req_free(r);
    return -1;
  }
  r->next = s->live;
  if (s->live)
    s->live->prev = r;
  s->live = r;
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s", r->method, r->url);
  *out = r;
  return 0;
}

void pc_http_cancel(struct pc_http_req *r)
{
  if (!r)
    return;
  struct pc_http_session *s = r->s;
  curl_multi_remove_handle(s->multi, r->easy);
  unlink_live(s, r);
  curl_easy_cleanup(r->easy); /* it may carry an errno of its own (see fresh_os_errno) */
  r->easy = NULL;
  s->stats.cancelled++;
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s cancelled", r->method, r->url);
  pc_http__req_free(r); /* closes and removes the save_to temporary file */
}

bool pc_http_req_non_idempotent(const struct pc_http_req *r)
{
  return r->non_idempotent;
}

bool pc_http_req_nothing_sent(const struct pc_http_req *r)
{
  return !r->sent;
}

static void collect_info(struct pc_http_req *r)
{
  CURL *e = r->easy;
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

/* ----------------------------------------------------------- redirects */

/* pacer follows redirects itself instead of with CURLOPT_FOLLOWLOCATION,
 * because libcurl's rules differ from RFC 9110 as fetch and aiohttp read
 * it: with CURLOPT_CUSTOMREQUEST it replays PUT, PATCH and DELETE on a
 * 303, and it re-sends a PUT or PATCH without its body (but with its
 * Content-Type) on a 301 or 302; and on a redirect to another origin it
 * drops only Authorization and Cookie, not the custom headers that carry
 * secrets. When a response is a redirect, req_finish (a loop callback,
 * never inside libcurl) calls follow_redirect, which changes the request
 * on the same easy handle and adds it again: connections stay in the
 * multi handle's cache and are reused as for any request. */

/* The response just received by r is a redirect to `next` (absolute, from
 * CURLINFO_REDIRECT_URL). Sets the next request up on r's easy handle and
 * adds it to the multi handle again. Returns PC_FAIL_NONE when it is on its
 * way; otherwise the request ends with the failure returned and its
 * message in m. */
static enum pc_fail follow_redirect(struct pc_http_req *r, const char *next, struct pc_buf *m)
{
  struct pc_http_session *s = r->s;
  CURL *e = r->easy;
  const char *here = r->info.url ? r->info.url : r->url;
  int status = (int)r->info.status;
  if (r->nredirects >= PC_HTTP_MAX_REDIRECTS) {
    pc_buf_printf(m, "%s %s: too many redirects (more than %d; a redirect loop?), last at %s",
                  r->method, r->url, PC_HTTP_MAX_REDIRECTS, here);
    return PC_FAIL_ERROR;
  }
  if (strncasecmp(next, "http://", 7) != 0 && strncasecmp(next, "https://", 8) != 0) {
    pc_buf_printf(m, "%s %s: %s answered %d with a redirect to %s, which is not an http:// or "
                  "https:// URL", r->method, r->url, here, status, next);
    return PC_FAIL_ERROR;
  }
  /* The Lua API's `timeout` bounds the whole chain. */
  double left = -1;
  if (r->timeout_ms > 0) {
    left = r->timeout_ms - (double)(r->before.total + r->info.t_total) / 1000.0;
    if (left <= 0) {
      char dur[32];
      pc_format_duration(r->timeout_ms, dur, sizeof dur);
      pc_buf_printf(m, "%s %s: timed out after %s", r->method, r->url, dur);
      return PC_FAIL_TIMEOUT;
    }
  }

  pc_http__count_response(s, r, false);
  r->redirects = pc_xrealloc(r->redirects, (size_t)(r->nredirects + 1) * sizeof *r->redirects);
  r->redirects[r->nredirects].status = status;
  r->redirects[r->nredirects].url = pc_xstrdup(here);
  r->nredirects++;
  const struct resp_info *in = &r->info;
  r->before.dns += in->t_dns;
  r->before.connect += in->t_connect > in->t_dns ? in->t_connect - in->t_dns : 0;
  r->before.tls += in->t_tls > in->t_connect ? in->t_tls - in->t_connect : 0;
  r->before.total += in->t_total;

  /* RFC 9110 15.4: a 303 makes every method but HEAD a GET without a
   * body; a 301 or 302 makes a POST a GET (what every browser, fetch,
   * aiohttp and curl do); every other method, and every method on a 307
   * or 308, is repeated with its body. */
  const char *method = r->as_get ? "GET" : r->method;
  bool to_get = (status == 303 && !r->head && (strcmp(method, "GET") != 0 || r->has_body)) ||
                ((status == 301 || status == 302) && strcmp(method, "POST") == 0);
  /* To another origin: no credentials (what libcurl does for Authorization
   * and Cookie), and no header that carries a secret (X-Api-Key: ...). */
  bool cross = !pc_http__same_origin(here, next);
  bool cross_secret = false;
  if (to_get || cross) {
    struct curl_slist *kept = NULL;
    for (struct curl_slist *h = r->hdr_list; h; h = h->next) {
      bool drop = (to_get && pc_http__body_header(h->data)) ||
                  (cross && (pc_http__header_is(h->data, "Authorization") ||
                             pc_http__header_is(h->data, "Cookie")));
      if (!drop && cross && pc_http__holds_secret(h->data))
        drop = cross_secret = true;
      if (!drop)
        kept = curl_slist_append(kept, h->data);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, kept);
    curl_slist_free_all(r->hdr_list);
    r->hdr_list = kept;
  }
  if (to_get) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    r->as_get = true;
    r->has_body = false;
    r->plain = false;
  }
  /* `here` (the handle's effective URL) is invalid from here on. */
  curl_easy_setopt(e, CURLOPT_URL, next);
  r->info.url = NULL;
  if (left > 0)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(left));
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s -> %d, redirected to %s %s%s", r->method,
           r->redirects[r->nredirects - 1].url, status,
           r->as_get ? "GET" : r->method, next,
           cross_secret ? " (without the headers that hold secrets: another origin)" : "");
  /* The next response starts from nothing. A redirect's body is dropped
   * as it arrives (on_header), unless its Location came past HEADERS_MAX:
   * then what reached a save_to file goes. */
  if (r->out.fd >= 0 && r->received > 0 &&
      (pc_outfile_is_stream(&r->out) || ftruncate(r->out.fd, 0) != 0 ||
       lseek(r->out.fd, 0, SEEK_SET) != 0)) {
    pc_buf_printf(m, "%s %s: cannot write \"%s\": %s", r->method, r->url, r->save_to,
                  pc_outfile_is_stream(&r->out) ? "a redirect's body already reached it"
                                                : strerror(errno));
    return PC_FAIL_ERROR;
  }
  r->received = 0;
  r->too_big = false;
  r->discard = false;
  r->errbuf[0] = '\0';
  pc_buf_reset(&r->body);
  CURLMcode mc = curl_multi_add_handle(s->multi, e);
  if (mc != CURLM_OK) {
    pc_buf_printf(m, "%s %s: cannot follow the redirect to %s: %s", r->method, r->url, next,
                  curl_multi_strerror(mc));
    return PC_FAIL_ERROR;
  }
  r->next = s->live;
  if (s->live)
    s->live->prev = r;
  s->live = r;
  return PC_FAIL_NONE;
}

void pc_http__req_finish(struct pc_http_req *r, CURLcode rc)
{
  struct pc_http_session *s = r->s;
  collect_info(r);
  curl_multi_remove_handle(s->multi, r->easy);
  unlink_live(s, r);

  struct pc_http_result res;
  memset(&res, 0, sizeof res);
  res.req = r;
  res.retry_after_ms = -1;
  struct pc_buf msg;
  pc_buf_init(&msg, 8192);
  enum pc_fail redirect_fail = PC_FAIL_NONE;
  if (rc == CURLE_OK && r->follow && pc_http__is_redirect(r->info.status)) {
    char *next = NULL;
    if (curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &next) == CURLE_OK && next) {
      next = pc_xstrdup(next); /* libcurl's copy goes with the next transfer */
      redirect_fail = follow_redirect(r, next, &msg);
      free(next);
      if (redirect_fail == PC_FAIL_NONE) {
        pc_buf_free(&msg);
        return; /* the next request of the chain is on its way */
      }
    }
  }
  if (redirect_fail != PC_FAIL_NONE) {
    res.fail = redirect_fail;
  } else if (rc != CURLE_OK) {
    pc_buf_free(&r->body); /* not reported: give its memory back first */
    res.fail = pc_http__describe_failure(r, rc, &msg);
  } else {
    res.fail = PC_FAIL_NONE;
    if (r->out.fd >= 0) {
      char *werr = NULL;
      if (!pc_http__status_ok(r, r->info.status)) {
        pc_outfile_discard(&r->out); /* an error status: no file */
      } else if (pc_outfile_commit(&r->out, &werr) != 0) {
        res.fail = PC_FAIL_ERROR;
        pc_buf_printf(&msg, "%s %s: save_to: %s", r->method, r->url, werr);
      } else {
        r->saved = true;
      }
      free(werr);
    }
  }
  if (r->info.status > 0)
    res.status = (int)r->info.status;
  res.retry_after_ms = pc_http__retry_after(&r->hdrs);
  res.error = res.fail != PC_FAIL_NONE ? msg.data : NULL;
  res.nothing_sent = !r->sent;

  pc_http__count_response(s, r, res.fail != PC_FAIL_NONE);

  if (pc_log_enabled(PC_LOG_DEBUG)) {
    const char *v = pc_http__version_name(r->info.version);
    if (res.fail == PC_FAIL_NONE)
      pc_log(PC_LOG_DEBUG, r->label, "%s %s -> %ld (HTTP/%s, %s connection, %.1fms)", r->method,
             r->url, r->info.status, v ? v : "?", r->info.connects ? "new" : "reused",
             (double)r->info.t_total / 1000.0);
    else
      pc_log(PC_LOG_DEBUG, r->label, "%s", msg.data);
  }

  r->cb(r->data, &res);
  pc_buf_free(&msg);
  /* A handle that met a system error (a failed transfer, or one that
   * succeeded after one: a connect refused on one address, a retry) keeps
   * its errno for good (see fresh_os_errno): it is not recycled. One whose
   * transfer libcurl retried on a new connection (a kept-alive one died
   * under it) goes through curl_easy_reset: libcurl before 8.17 counts
   * those retries per handle, never per transfer (curl/curl#18926), and
   * gives up after 5, so a handle kept as it is would fail a later request
   * that a fresh handle retries. */
  long oserr = 0;
  curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
  if (rc != CURLE_OK || oserr != 0)
    curl_easy_cleanup(r->easy);
  else /* each redirect pacer followed is one send of its own */
    pc_http__recycle_easy(s, r->easy, r->plain && r->sends <= r->nredirects + 1);
  r->easy = NULL;
  pc_http__req_free(r);
}

