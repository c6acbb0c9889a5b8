/* export.c: the run's exporters (export.h): pings at the start and the
 * end, the Pushgateway push and the OTLP trace, each an HTTP request on a
 * session of the exporter's own on the run's loop.
 *
 * The end is bounded as a whole: pc_export_end starts what is to be sent
 * with a per-request timeout of what is left of PC_EXPORT_BOUND_MS, and a
 * timer that gives up on anything still in flight when the bound is
 * reached (a server that accepts and never answers, a connect that never
 * completes). Each request that finishes, fails or is given up logs one
 * line (a warning unless it got a 2xx) and the session is closed when the
 * last one is over, so the loop the driver runs afterwards returns.
 *
 * Pings follow healthchecks.io's convention: URL/start when the run
 * starts, URL when it succeeds, URL/EXIT_CODE when it fails (the exit code
 * is shown and counts as a failure there), each with ?rid=UUID so that
 * overlapping runs of one check pair up. The end ping waits for the start
 * ping if that is still in flight, so a short run's two pings never arrive
 * in the wrong order. The push is a POST (push-add: only the metrics
 * pushed replace those of the same name in the group), which is what lets
 * pacer_run_last_success_timestamp_seconds survive a failed run: the push
 * of a failure leaves it out, and the Pushgateway keeps the value of the
 * last success. */
#include "export/export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/redact.h"
#include "base/util.h"
#include "export/otlp.h"
#include "http/request.h"
#include "http/session.h"
#include "report/report.h"

#define EXCERPT_MAX 200 /* bytes of a receiver's answer shown in a warning */
#define PING_BODY_FAILURES 20 /* failed steps listed in the end ping's body */
#define EXPORT_BACKSTOP_MS 250 /* the transport's timeout past the end's bound */

/* One request of the exporter, from the moment it is wanted until it has
 * ended (answered, failed or given up). */
struct xreq {
  struct pc_export *e;
  const char *what; /* "ping", "push", "otlp": how log lines name it */
  char *url;
  enum pc_http_method method;
  char *body;
  size_t body_len;
  const char *type; /* Content-Type */
  struct pc_http_request *req; /* while in flight */
  size_t nspans;               /* otlp: spans sent */
  bool started, over;
};

struct pc_export {
  struct pc_trace *trace; /* borrowed */
  char *push_url;         /* the full push URL (grouping key included), or NULL */
  bool push_workflow_label; /* the grouping key does not hold the workflow */
  char *ping_url;
  bool otlp;
  struct pc_otlp_config oc;
  char rid[37]; /* the run's UUID for pings */

  uv_loop_t *loop;                 /* borrowed, once started */
  struct pc_http_session *session; /* owned; made on first use */
  uv_timer_t bound;                /* the end's bound; initialised with the session */
  bool timer_init, timer_closed;
  double deadline_mono;            /* pc_mono_ms() by which the end gives up */
  bool ending;                     /* pc_export_end was called */
  struct xreq start_ping, end_ping, push, trace_req;
};

/* ============================================================ helpers */

/* A UUID (version 4, random) in its text form, for ?rid=. */
static void make_uuid(char out[37])
{
  uint8_t b[16];
  pc_trace_random(b, sizeof b);
  b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
  b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
  char hex[33];
  pc_trace_hex(b, 16, hex);
  snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

/* URL with `suffix` appended to its path and `query` to its query:
 * "https://hc/ID?x=1" + "/start" + "rid=..." -> "https://hc/ID/start?x=1&rid=...". A
 * trailing slash of the path is dropped first. */
static char *url_with(const char *url, const char *suffix, const char *query)
{
  const char *q = strchr(url, '?');
  size_t plen = q ? (size_t)(q - url) : strlen(url);
  while (plen > 0 && url[plen - 1] == '/' && !(plen >= 2 && url[plen - 2] == '/'))
    plen--;
  if (q)
    return pc_asprintf("%.*s%s%s&%s", (int)plen, url, suffix, q, query);
  return pc_asprintf("%.*s%s?%s", (int)plen, url, suffix, query);
}

static void base64url(struct pc_buf *b, const unsigned char *s, size_t n)
{
  static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                 (i + 2 < n ? s[i + 2] : 0);
    char q[4] = {tab[v >> 18 & 63], tab[v >> 12 & 63], i + 1 < n ? tab[v >> 6 & 63] : '=',
                 i + 2 < n ? tab[v & 63] : '='};
    pc_buf_append(b, q, 4);
  }
}

/* The Pushgateway URL of a push: URL as given when it names a grouping
 * key (/metrics/job/...), else URL/metrics/job/pacer/workflow/NAME, the
 * name base64url-encoded (workflow@base64/...) unless it is plain. */
static char *push_url_of(const char *url, const char *workflow, bool *workflow_label)
{
  if (strstr(url, "/metrics/job/") || strstr(url, "/metrics/job@base64/")) {
    *workflow_label = !strstr(url, "/workflow/") && !strstr(url, "/workflow@base64/");
    return pc_xstrdup(url);
  }
  *workflow_label = false;
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 20);
  size_t len = strlen(url);
  while (len > 0 && url[len - 1] == '/')
    len--;
  pc_buf_append(&b, url, len);
  pc_buf_puts(&b, "/metrics/job/pacer/workflow");
  bool plain = *workflow != '\0';
  for (const char *p = workflow; *p; p++)
    plain = plain && (strchr("-._~", *p) || (*p >= 'a' && *p <= 'z') ||
                      (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'));
  if (plain) {
    pc_buf_printf(&b, "/%s", workflow);
  } else {
    pc_buf_puts(&b, "@base64/");
    base64url(&b, (const unsigned char *)workflow, strlen(workflow));
    if (!*workflow)
      pc_buf_puts(&b, "=");
  }
  return pc_buf_steal(&b);
}

/* The first bytes of a receiver's answer on one line, redacted. */
static char *excerpt(const char *body, size_t len)
{
  if (!body || !len)
    return pc_xstrdup("");
  size_t rlen;
  char *red = pc_redact(body, len, &rlen);
  size_t n = rlen > EXCERPT_MAX ? EXCERPT_MAX : rlen;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)red[i] < 0x20)
      red[i] = ' ';
  char *out = pc_asprintf(": %.*s%s", (int)n, red, rlen > n ? "..." : "");
  free(red);
  return out;
}

/* ============================================================ requests */

static void maybe_close(struct pc_export *e);
static void req_start(struct xreq *x);

static void req_over(struct xreq *x)
{
  x->over = true;
  x->req = NULL;
  free(x->body);
  x->body = NULL;
  /* The end ping waited for this one. */
  struct pc_export *e = x->e;
  if (x == &e->start_ping && e->end_ping.url && !e->end_ping.started)
    req_start(&e->end_ping);
  maybe_close(e);
}

static void on_req_done(void *data, const struct pc_http_result *r)
{
  struct xreq *x = data;
  x->req = NULL;
  if (r->fail != PC_FAIL_NONE) {
    /* The transport's error names the method and the URL already. */
    if (r->error)
      pc_log(PC_LOG_WARN, NULL, "%s: %s (the exit code is not affected)", x->what, r->error);
    else
      pc_log(PC_LOG_WARN, NULL, "%s: %s %s failed (the exit code is not affected)", x->what,
             pc_http_method_name(x->method), x->url);
  } else if (r->status < 200 || r->status > 299) {
    char *ex = excerpt(r->body, r->body_len);
    pc_log(PC_LOG_WARN, NULL, "%s: %s %s answered %d%s (the exit code is not affected)",
           x->what, pc_http_method_name(x->method), x->url, r->status, ex);
    free(ex);
  } else if (x->nspans) {
    pc_log(PC_LOG_DEBUG, NULL, "%s: %zu spans sent to %s (%d)", x->what, x->nspans, x->url,
           r->status);
  } else {
    pc_log(PC_LOG_DEBUG, NULL, "%s: %s %s -> %d", x->what, pc_http_method_name(x->method),
           x->url, r->status);
  }
  req_over(x);
}

static struct pc_http_session *session_of(struct pc_export *e)
{
  if (!e->session) {
    /* Its own session: exports neither wait behind the workflow's
     * connection caps nor count in its statistics. A background one: a
     * start ping still in flight does not keep the run's loop alive once
     * the steps are over; the end's bound timer does, while it waits. */
    e->session = pc_http_session_new(e->loop, NULL);
    if (e->session)
      pc_http_session_background(e->session);
  }
  return e->session;
}

static void req_start(struct xreq *x)
{
  struct pc_export *e = x->e;
  x->started = true;
  double left = e->ending ? e->deadline_mono - pc_mono_ms() : PC_EXPORT_BOUND_MS;
  struct pc_http_session *s = session_of(e);
  if (!s || left <= 0) {
    pc_log(PC_LOG_WARN, NULL, "%s: %s %s not sent: %s (the exit code is not affected)",
           x->what, pc_http_method_name(x->method), x->url,
           s ? "no time left" : "HTTP is not available");
    req_over(x);
    return;
  }
  struct pc_http_spec sp;
  pc_http_spec_init(&sp);
  sp.method = x->method;
  sp.url = x->url;
  /* At the end the bound's timer gives up on what is still in flight;
   * the transport's own timeout is only a backstop behind it, so a
   * request that hangs is reported one way ("no answer within 2 s"), not
   * by whichever of the two fires first. */
  double backstop = e->ending ? left + EXPORT_BACKSTOP_MS : left;
  sp.timeout_ms = backstop;
  sp.connect_timeout_ms = backstop;
  sp.label = x->what;
  struct pc_http_header *hdrs = NULL;
  if (x == &e->trace_req) {
    hdrs = pc_xcalloc(e->oc.nheaders + 1, sizeof *hdrs);
    for (size_t i = 0; i < e->oc.nheaders; i++)
      hdrs[i] = (struct pc_http_header){e->oc.headers[i].key, strlen(e->oc.headers[i].key),
                                        e->oc.headers[i].value,
                                        strlen(e->oc.headers[i].value)};
    sp.headers = hdrs;
    sp.nheaders = e->oc.nheaders;
    sp.ca_file = e->oc.ca_file;
    if (e->oc.timeout_ms > 0 && e->oc.timeout_ms < left)
      sp.timeout_ms = e->oc.timeout_ms; /* OTEL_EXPORTER_OTLP_TIMEOUT, shorter */
  }
  if (x->body) {
    sp.has_body = true;
    sp.body = x->body;
    sp.body_len = x->body_len;
    sp.body_type = x->type;
  }
  char *err = NULL;
  int rc = pc_http_request_start(s, &sp, on_req_done, x, &x->req, &err);
  free(hdrs);
  if (rc != 0) {
    pc_log(PC_LOG_WARN, NULL, "%s: %s %s not sent: %s (the exit code is not affected)",
           x->what, pc_http_method_name(x->method), x->url, err ? err : "?");
    free(err);
    req_over(x);
  }
}

/* Gives up on a request still in flight (the bound, a signal). */
static void req_give_up(struct xreq *x, const char *why)
{
  if (x->req) {
    pc_http_request_cancel(x->req);
    x->req = NULL;
    pc_log(PC_LOG_WARN, NULL, "%s: %s %s given up: %s (the exit code is not affected)", x->what,
           pc_http_method_name(x->method), x->url, why);
  } else if (x->url && !x->started) {
    pc_log(PC_LOG_WARN, NULL, "%s: %s %s not sent: %s (the exit code is not affected)",
           x->what, pc_http_method_name(x->method), x->url, why);
  }
  x->started = true;
  x->over = true;
  free(x->body);
  x->body = NULL;
}

static bool req_pending(const struct xreq *x)
{
  return x->url && !x->over;
}

static void on_bound_closed(uv_handle_t *h)
{
  struct pc_export *e = h->data;
  e->timer_closed = true;
}

/* Once the end has begun and nothing is pending, the session and the
 * timer go, and the loop can return. */
static void maybe_close(struct pc_export *e)
{
  if (!e->ending || req_pending(&e->start_ping) || req_pending(&e->end_ping) ||
      req_pending(&e->push) || req_pending(&e->trace_req))
    return;
  pc_http_session_close(e->session);
  e->session = NULL;
  if (e->timer_init && !uv_is_closing((uv_handle_t *)&e->bound))
    uv_close((uv_handle_t *)&e->bound, on_bound_closed);
}

static void give_up_all(struct pc_export *e, const char *why)
{
  struct xreq *all[] = {&e->start_ping, &e->end_ping, &e->push, &e->trace_req};
  for (size_t i = 0; i < PC_ARRAY_SIZE(all); i++)
    if (req_pending(all[i]))
      req_give_up(all[i], why);
  maybe_close(e);
}

static void on_bound(uv_timer_t *t)
{
  struct pc_export *e = t->data;
  char why[64];
  snprintf(why, sizeof why, "no answer within %.0f s", PC_EXPORT_BOUND_MS / 1000.0);
  give_up_all(e, why);
}

/* A ping URL's path is the check's secret: healthchecks.io's
 * `/UUID`, or `/PING-KEY/SLUG`; whoever has it can ping the check (and
 * mark it failed). It is registered as a secret, whole and each segment
 * of it long enough to be a key, so that warnings about the pings, and
 * anything else pacer prints, show *** in its place. Shorter segments (a
 * `ping/` prefix, a slug word) would blank out ordinary text. */
#define PING_KEY_MIN 16

static void secret_ping_path(const char *url)
{
  const char *p = strstr(url, "://");
  p = p ? strchr(p + 3, '/') : NULL;
  if (!p)
    return;
  size_t len = strcspn(p, "?#");
  while (len > 0 && p[0] == '/')
    p++, len--;
  while (len > 0 && p[len - 1] == '/')
    len--;
  if (len >= PING_KEY_MIN)
    pc_secret_add(p, len);
  for (size_t i = 0; i < len;) {
    size_t n = 0;
    while (i + n < len && p[i + n] != '/')
      n++;
    if (n >= PING_KEY_MIN && n < len)
      pc_secret_add(p + i, n);
    i += n + 1;
  }
}

/* ============================================================ public */

struct pc_export *pc_export_new(const struct pc_export_opts *o, struct pc_trace *trace)
{
  struct pc_export *e = pc_xcalloc(1, sizeof *e);
  e->trace = trace;
  int otlp = pc_otlp_config_read(&e->oc);
  e->otlp = otlp == 1;
  if (!e->otlp && !o->push_url && !o->ping_url) {
    pc_otlp_config_free(&e->oc);
    free(e);
    return NULL;
  }
  if (e->otlp)
    trace->recording = true;
  e->push_url = o->push_url ? pc_xstrdup(o->push_url) : NULL; /* completed at the end */
  e->ping_url = o->ping_url ? pc_xstrdup(o->ping_url) : NULL;
  if (e->ping_url)
    secret_ping_path(e->ping_url);
  make_uuid(e->rid);
  struct xreq *all[] = {&e->start_ping, &e->end_ping, &e->push, &e->trace_req};
  for (size_t i = 0; i < PC_ARRAY_SIZE(all); i++)
    all[i]->e = e;
  return e;
}

bool pc_export_wants_records(const struct pc_export *e)
{
  return e && (e->otlp || e->push_url || e->ping_url); /* the end ping lists failures */
}

bool pc_export_wants_attempts(const struct pc_export *e)
{
  return e && e->otlp;
}

void pc_export_start(struct pc_export *e, uv_loop_t *loop, const char *run_id)
{
  if (!e)
    return;
  e->loop = loop;
  pc_log(PC_LOG_DEBUG, NULL, "export: run %s, ping rid %s", run_id, e->rid);
  if (!e->ping_url)
    return;
  char *q = pc_asprintf("rid=%s", e->rid);
  struct xreq *x = &e->start_ping;
  x->what = "ping";
  x->url = url_with(e->ping_url, "/start", q);
  x->method = PC_HTTP_GET;
  free(q);
  req_start(x);
}

/* The end ping's body: what healthchecks.io shows with the ping. */
static char *ping_body(const struct pc_run_report *r, size_t *len)
{
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 20);
  char dur[32];
  pc_format_duration(r->duration_ms, dur, sizeof dur);
  pc_buf_printf(&b, "pacer: workflow %s: %s in %s (exit %d), run %s\n", r->wf->name,
                r->outcome ? r->outcome : "?", dur, r->exit_code, r->run_id);
  size_t shown = 0, failed = 0;
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    if (s->kind != PC_REC_LEAF || !s->done || !pc_outcome_is_failure(s->outcome))
      continue;
    failed++;
    if (shown++ >= PING_BODY_FAILURES)
      continue;
    const char *err = s->error ? s->error : "";
    size_t n = strcspn(err, "\n");
    pc_buf_printf(&b, "%s: %s: %.*s\n", s->label, pc_outcome_name(s->outcome), (int)n, err);
  }
  if (failed > shown)
    pc_buf_printf(&b, "... and %zu more failed steps\n", failed - shown);
  char *red = pc_redact(b.data, b.len, len);
  pc_buf_free(&b);
  return red;
}

void pc_export_end(struct pc_export *e, const struct pc_run_report *rep)
{
  if (!e)
    return;
  e->ending = true;
  e->deadline_mono = pc_mono_ms() + PC_EXPORT_BOUND_MS;
  if (!e->loop) {
    /* The run never started its loop for us (nothing to send either). */
    return;
  }
  if (e->ping_url) {
    struct xreq *x = &e->end_ping;
    x->what = "ping";
    char *q = pc_asprintf("rid=%s", e->rid);
    char suffix[16] = "";
    if (rep->exit_code != 0)
      snprintf(suffix, sizeof suffix, "/%d", rep->exit_code);
    x->url = url_with(e->ping_url, suffix, q);
    free(q);
    x->method = PC_HTTP_POST;
    x->body = ping_body(rep, &x->body_len);
    x->type = "text/plain; charset=utf-8";
  }
  if (e->push_url) {
    struct xreq *x = &e->push;
    x->what = "push";
    bool wl = false;
    x->url = push_url_of(e->push_url, rep->wf->name, &wl);
    x->method = PC_HTTP_POST;
    x->body = pc_report_metrics(rep, wl, &x->body_len);
    x->type = "text/plain; version=0.0.4; charset=utf-8";
  }
  if (e->otlp) {
    struct xreq *x = &e->trace_req;
    x->what = "otlp";
    x->url = pc_xstrdup(e->oc.endpoint);
    x->method = PC_HTTP_POST;
    size_t dropped = 0;
    x->body = pc_otlp_payload(rep, e->trace, &e->oc, &x->body_len, &x->nspans, &dropped);
    x->type = "application/json";
    if (dropped)
      pc_log(PC_LOG_WARN, NULL, "otlp: the run has more than %d spans: %zu were dropped",
             PC_OTLP_MAX_SPANS, dropped);
  }
  uv_timer_init(e->loop, &e->bound);
  e->bound.data = e;
  e->timer_init = true;
  uv_timer_start(&e->bound, on_bound, PC_EXPORT_BOUND_MS, 0);
  if (e->end_ping.url && !req_pending(&e->start_ping))
    req_start(&e->end_ping);
  if (e->push.url)
    req_start(&e->push);
  if (e->trace_req.url)
    req_start(&e->trace_req);
  maybe_close(e);
}

void pc_export_abort(struct pc_export *e)
{
  if (!e || !e->ending)
    return;
  give_up_all(e, "interrupted by a signal");
}

void pc_export_free(struct pc_export *e)
{
  if (!e)
    return;
  struct xreq *all[] = {&e->start_ping, &e->end_ping, &e->push, &e->trace_req};
  for (size_t i = 0; i < PC_ARRAY_SIZE(all); i++) {
    free(all[i]->url);
    free(all[i]->body);
  }
  free(e->push_url);
  free(e->ping_url);
  pc_otlp_config_free(&e->oc);
  free(e);
}
