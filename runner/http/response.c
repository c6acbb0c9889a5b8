/* response.c: the receiving half of a request (see request.h,
 * request_int.h): libcurl's callbacks for its transfer (body, headers,
 * prereq), following redirects, and completion into a struct
 * pc_http_result. Transport only: no Lua.
 *
 * libcurl's callbacks here only record state (bytes, flags); completion
 * and redirects run from the session's drain, a loop callback, where the
 * multi API may be called again. */
#include "http/request.h"

#include "http/request_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "http/failure.h"
#include "http/rules.h"
#include "http/session.h"
#include "http/show.h"
#include "base/log.h"
#include "base/outfile.h"
#include "base/util.h"

/* ============================================================ callbacks */

/* CURLOPT_PREREQFUNCTION (clientp: the request): libcurl has a connection
 * for the request (new or reused, TLS done) and sends it next. Called
 * before every request libcurl sends for a transfer, so also for each of
 * its own retries on a kept-alive connection that died (`sends`). */
int pc_http__on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
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
size_t pc_http__on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
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
size_t pc_http__on_header(char *buf, size_t size, size_t nitems, void *userdata)
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

/* ============================================================ redirects */

/* pacer follows redirects itself instead of with CURLOPT_FOLLOWLOCATION,
 * because libcurl's rules differ from RFC 9110 as fetch and aiohttp read
 * it: with CURLOPT_CUSTOMREQUEST it replays PUT, PATCH and DELETE on a
 * 303, and it re-sends a PUT or PATCH without its body (but with its
 * Content-Type) on a 301 or 302; and on a redirect to another origin it
 * drops only Authorization and Cookie, not the custom headers that carry
 * secrets. When a response is a redirect, pc_http__on_transfer_done (a loop
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
   * as it arrives (pc_http__on_header), unless its Location came past HEADERS_MAX:
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
void pc_http__on_transfer_done(struct pc_http__transfer *t, CURLcode rc)
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
  if (!t->easy) {
    /* it ended before it was admitted: it never had one */
  } else if (rc != CURLE_OK || os_errno != 0) {
    curl_easy_setopt(t->easy, CURLOPT_COOKIEFILE, NULL); /* see pc_http__easy_recycle */
    curl_easy_cleanup(t->easy);
  }
  else /* each redirect pacer followed is one send of its own */
    pc_http__easy_recycle(s, t->easy, r->plain && r->sends <= r->nredirects + 1);
  t->easy = NULL;
  pc_http__req_free(r);
}
