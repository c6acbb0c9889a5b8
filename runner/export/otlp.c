/* otlp.c: the OpenTelemetry side of a run (otlp.h): the exporter settings
 * from the OTEL_* environment, and the run as one OTLP/HTTP JSON request.
 *
 * The JSON follows the protobuf JSON mapping OTLP specifies: field names
 * in lowerCamelCase, trace and span ids as lower-case hex (not base64),
 * 64-bit integers (times in nanoseconds, intValue) as decimal strings,
 * enums (kind, status code) as numbers. Attribute names follow the
 * semantic conventions: HTTP client spans (http.request.method, url.full,
 * server.address, server.port, http.response.status_code,
 * http.request.resend_count, error.type), the CI/CD conventions for the
 * run and its steps (cicd.pipeline.*), code.file.path/code.line.number for
 * where a step is written, process.exit.code; pacer.* for the rest. */
#include "export/otlp.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/redact.h"
#include "base/util.h"
#include "report/format.h"

#define ERROR_TEXT_MAX 2000 /* bytes of an error message kept in a span's status */

/* ============================================================ settings */

/* getenv, with "" read as unset (the specification's rule). */
static const char *env(const char *name)
{
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

/* The signal-specific variable, else the general one. */
static const char *env2(const char *traces, const char *general)
{
  const char *v = env(traces);
  return v ? v : env(general);
}

static void kv_free(struct pc_kv *kv, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

static char *trimmed(const char *s, size_t n)
{
  while (n && isspace((unsigned char)*s)) {
    s++;
    n--;
  }
  while (n && isspace((unsigned char)s[n - 1]))
    n--;
  return pc_xstrndup(s, n);
}

static int hexdigit(int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s in place (a bad escape is kept as it is). */
static void percent_decode(char *s)
{
  char *w = s;
  for (const char *r = s; *r; r++) {
    int hi, lo;
    if (*r == '%' && (hi = hexdigit(r[1])) >= 0 && (lo = hexdigit(r[2])) >= 0) {
      *w++ = (char)(hi << 4 | lo);
      r += 2;
    } else {
      *w++ = *r;
    }
  }
  *w = '\0';
}

int pc_otlp_parse_list(const char *s, struct pc_kv **kv, size_t *n, size_t *bad)
{
  struct pc_kv *add = NULL;
  size_t nadd = 0, pos = 0;
  const char *p = s;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    pos++;
    char *entry = trimmed(p, len);
    p += len + (comma ? 1 : 0);
    if (!*entry) { /* "a=1,,b=2" and a trailing comma: nothing */
      free(entry);
      continue;
    }
    char *eq = strchr(entry, '=');
    char *key = eq ? trimmed(entry, (size_t)(eq - entry)) : NULL;
    if (!key || !*key) {
      free(key);
      free(entry);
      kv_free(add, nadd);
      *bad = pos;
      return -1;
    }
    char *value = trimmed(eq + 1, strlen(eq + 1));
    percent_decode(value);
    free(entry);
    add = pc_xrealloc(add, (nadd + 1) * sizeof *add);
    add[nadd++] = (struct pc_kv){key, value};
  }
  for (size_t i = 0; i < nadd; i++) {
    size_t j = 0;
    while (j < *n && strcmp((*kv)[j].key, add[i].key) != 0)
      j++;
    if (j < *n) {
      free((*kv)[j].key);
      free((*kv)[j].value);
      (*kv)[j] = add[i];
    } else {
      *kv = pc_xrealloc(*kv, (*n + 1) * sizeof **kv);
      (*kv)[(*n)++] = add[i];
    }
  }
  free(add);
  return 0;
}

void pc_otlp_config_free(struct pc_otlp_config *c)
{
  free(c->endpoint);
  kv_free(c->headers, c->nheaders);
  free(c->ca_file);
  kv_free(c->resource, c->nresource);
  memset(c, 0, sizeof *c);
  c->timeout_ms = -1;
}

/* The traces URL: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as it is, else
 * OTEL_EXPORTER_OTLP_ENDPOINT with "v1/traces" appended to its path. */
static char *traces_url(void)
{
  const char *v = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  if (v)
    return pc_xstrdup(v);
  if (!(v = env("OTEL_EXPORTER_OTLP_ENDPOINT")))
    return NULL;
  size_t len = strlen(v);
  return pc_asprintf("%.*s/v1/traces", (int)(len && v[len - 1] == '/' ? len - 1 : len), v);
}

static bool http_url(const char *u)
{
  return strncasecmp(u, "http://", 7) == 0 || strncasecmp(u, "https://", 8) == 0;
}

/* Registers every header value as a secret, and the parts a value such as
 * "Bearer TOKEN" or "Basic CREDS" carries after its scheme. */
static void register_secrets(const struct pc_kv *kv, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const char *v = kv[i].value;
    pc_secret_add(v, strlen(v));
    const char *sp = strrchr(v, ' ');
    if (sp && sp[1])
      pc_secret_add(sp + 1, strlen(sp + 1));
  }
}

int pc_otlp_config_read(struct pc_otlp_config *c)
{
  memset(c, 0, sizeof *c);
  c->timeout_ms = -1;
  /* Header values are secrets whatever else is wrong with the settings:
   * register them first, so no warning below can show one. */
  const char *hdrs[] = {env("OTEL_EXPORTER_OTLP_HEADERS"),
                        env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")};
  const char *hdr_names[] = {"OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"};
  for (int i = 0; i < 2; i++)
    if (hdrs[i]) {
      /* Entry by entry, so one that is not KEY=VALUE does not keep the
       * others' values from being registered (and is registered whole: it
       * may be a bare token); and the raw text too: it holds the values
       * percent-encoded. */
      for (const char *p = hdrs[i]; *p;) {
        size_t len = strcspn(p, ",");
        char *entry = pc_xstrndup(p, len);
        struct pc_kv *kv = NULL;
        size_t n = 0, bad = 0;
        if (pc_otlp_parse_list(entry, &kv, &n, &bad) == 0)
          register_secrets(kv, n);
        else
          pc_secret_add(entry, len);
        kv_free(kv, n);
        free(entry);
        p += len + (p[len] == ',');
      }
      pc_secret_add(hdrs[i], strlen(hdrs[i]));
    }

  const char *v = env("OTEL_SDK_DISABLED");
  if (v && strcasecmp(v, "true") == 0)
    return 0;
  if ((v = env("OTEL_TRACES_EXPORTER")) && !strstr(v, "otlp"))
    return 0; /* "none", "console", ...: not an OTLP export */
  c->endpoint = traces_url();
  if (!c->endpoint)
    return 0;

  int bad = 0;
  if (!http_url(c->endpoint)) {
    pc_log(PC_LOG_WARN, NULL, "otlp: the traces endpoint \"%s\" is not an http:// or https:// "
           "URL: the run's trace is not exported", c->endpoint);
    bad = -1;
  }
  const char *proto = env2("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
  if (proto && strcmp(proto, "grpc") == 0) {
    pc_log(PC_LOG_WARN, NULL, "otlp: the protocol is grpc, and pacer exports over HTTP only "
           "(http/json): the run's trace is not exported");
    bad = -1;
  } else if (proto && strcmp(proto, "http/json") != 0 && strcmp(proto, "http/protobuf") != 0) {
    pc_log(PC_LOG_WARN, NULL, "otlp: unknown protocol \"%s\" (pacer sends http/json): the "
           "run's trace is not exported", proto);
    bad = -1;
  }
  for (int i = 0; i < 2; i++) {
    size_t at = 0;
    if (hdrs[i] && pc_otlp_parse_list(hdrs[i], &c->headers, &c->nheaders, &at) != 0) {
      /* Never the value: it may be a secret of a form not registered. */
      pc_log(PC_LOG_WARN, NULL, "otlp: %s: entry %zu is not KEY=VALUE: the run's trace is "
             "not exported", hdr_names[i], at);
      bad = -1;
    }
  }
  if ((v = env2("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"))) {
    char *end;
    double ms = strtod(v, &end);
    if (*end || !isfinite(ms) || ms < 0)
      pc_log(PC_LOG_WARN, NULL, "otlp: the timeout \"%s\" is not a number of milliseconds: "
             "ignored", v);
    else
      c->timeout_ms = ms;
  }
  if ((v = env2("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE")))
    c->ca_file = pc_xstrdup(v);

  /* The resource: OTEL_RESOURCE_ATTRIBUTES, with OTEL_SERVICE_NAME over
   * its service.name, and unknown_service:pacer when neither names one
   * (the specification's default, with the process's name). */
  c->resource = pc_xcalloc(1, sizeof *c->resource);
  c->resource[0] = (struct pc_kv){pc_xstrdup("service.name"), NULL};
  c->nresource = 1;
  if ((v = env("OTEL_RESOURCE_ATTRIBUTES"))) {
    size_t at = 0;
    if (pc_otlp_parse_list(v, &c->resource, &c->nresource, &at) != 0)
      pc_log(PC_LOG_WARN, NULL, "otlp: OTEL_RESOURCE_ATTRIBUTES: entry %zu is not KEY=VALUE: "
             "the attributes are ignored", at);
  }
  const char *svc = env("OTEL_SERVICE_NAME");
  /* parse_list replaced the first entry if the attributes named one. */
  if (svc || !c->resource[0].value) {
    free(c->resource[0].value);
    c->resource[0].value = pc_xstrdup(svc ? svc : "unknown_service:pacer");
  }
  if (bad) {
    pc_otlp_config_free(c);
    return -1;
  }
  return 1;
}

/* ============================================================ the JSON */

struct out {
  struct pc_buf *b;
  size_t nspans, dropped;
  bool first_span;
};

/* A JSON string: redacted, then quoted (pc_json_quote repairs UTF-8). */
static void jstr(struct pc_buf *b, const char *s)
{
  size_t len;
  char *red = pc_redact(s, strlen(s), &len);
  pc_json_quote(b, red);
  free(red);
}

/* Attributes are written as a list; `first` tracks the comma. */
struct attrs {
  struct pc_buf *b;
  bool first;
};

static void attr_key(struct attrs *a, const char *key)
{
  pc_buf_puts(a->b, a->first ? "{\"key\":" : ",{\"key\":");
  a->first = false;
  jstr(a->b, key);
  pc_buf_puts(a->b, ",\"value\":{");
}

static void attr_str(struct attrs *a, const char *key, const char *v)
{
  if (!v)
    return;
  attr_key(a, key);
  pc_buf_puts(a->b, "\"stringValue\":");
  jstr(a->b, v);
  pc_buf_puts(a->b, "}}");
}

static void attr_int(struct attrs *a, const char *key, long long v)
{
  attr_key(a, key);
  pc_buf_printf(a->b, "\"intValue\":\"%lld\"}}", v); /* int64: a string in JSON */
}

static void attr_double(struct attrs *a, const char *key, double v)
{
  attr_key(a, key);
  pc_buf_printf(a->b, "\"doubleValue\":%.6f}}", v);
}

/* Nanoseconds since the epoch of an offset from the run's start, as the
 * decimal string the JSON mapping gives a fixed64 (exact: microseconds
 * are summed as integers first). */
static void time_ns(struct pc_buf *b, const struct pc_run_report *r, double off_ms)
{
  long long us = llround(r->start_ms * 1000.0) + llround(off_ms * 1000.0);
  pc_buf_printf(b, "\"%lld000\"", us);
}

enum { KIND_INTERNAL = 1, KIND_SERVER = 2, KIND_CLIENT = 3 };
enum { STATUS_UNSET = 0, STATUS_OK = 1, STATUS_ERROR = 2 };

/* Opens a span; the caller writes its attributes and closes it with
 * span_end. parent 0: a root span (of pacer's; the trace may go on above). */
static bool span_begin(struct out *o, const struct pc_run_report *r, const struct pc_trace *tr,
                       uint64_t span, uint64_t parent, const char *name, int kind,
                       double start_off, double dur)
{
  if (o->nspans >= PC_OTLP_MAX_SPANS) {
    o->dropped++;
    return false;
  }
  o->nspans++;
  struct pc_buf *b = o->b;
  char tid[33], sid[17];
  pc_trace_hex(tr->trace_id, 16, tid);
  pc_trace_span_hex(span, sid);
  pc_buf_printf(b, "%s{\"traceId\":\"%s\",\"spanId\":\"%s\"", o->first_span ? "" : ",", tid, sid);
  o->first_span = false;
  if (parent) {
    pc_trace_span_hex(parent, sid);
    pc_buf_printf(b, ",\"parentSpanId\":\"%s\"", sid);
  }
  pc_buf_puts(b, ",\"name\":");
  jstr(b, name);
  pc_buf_printf(b, ",\"kind\":%d,\"startTimeUnixNano\":", kind);
  time_ns(b, r, start_off);
  pc_buf_puts(b, ",\"endTimeUnixNano\":");
  time_ns(b, r, start_off + (dur > 0 ? dur : 0));
  pc_buf_puts(b, ",\"attributes\":[");
  return true;
}

/* Closes the attribute list and the span with its status. The message
 * is kept only with an error (the data model's rule). */
static void span_end(struct out *o, int code, const char *message)
{
  struct pc_buf *b = o->b;
  pc_buf_printf(b, "],\"status\":{\"code\":%d", code);
  if (code == STATUS_ERROR && message) {
    size_t n = strlen(message);
    char *cut = pc_xstrndup(message, n > ERROR_TEXT_MAX ? ERROR_TEXT_MAX : n);
    pc_buf_puts(b, ",\"message\":");
    jstr(b, cut);
    free(cut);
  }
  pc_buf_puts(b, "}}");
}

static int status_of(enum pc_outcome oc)
{
  return oc == PC_OK ? STATUS_OK : pc_outcome_is_failure(oc) ? STATUS_ERROR : STATUS_UNSET;
}

/* cicd.pipeline(.task.run).result: the semantic conventions' values. */
static const char *cicd_result(const char *outcome)
{
  static const char *const map[][2] = {
      {"ok", "success"},     {"failed", "failure"},       {"error", "error"},
      {"timeout", "timeout"}, {"cancelled", "cancellation"}, {"skipped", "skip"},
  };
  for (size_t i = 0; outcome && i < PC_ARRAY_SIZE(map); i++)
    if (strcmp(map[i][0], outcome) == 0)
      return map[i][1];
  return outcome;
}

/* The host and port of an http(s) URL, for server.address/server.port. */
static void url_server(const char *url, char **host, long *port)
{
  *host = NULL;
  *port = strncasecmp(url, "https:", 6) == 0 ? 443 : 80;
  const char *p = strstr(url, "://");
  if (!p)
    return;
  p += 3;
  size_t auth = strcspn(p, "/?#");
  const char *at = memchr(p, '@', auth);
  if (at) {
    auth -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  const char *end = p + auth, *colon = NULL;
  if (*p == '[') { /* [v6]:port */
    const char *rb = memchr(p, ']', auth);
    if (rb) {
      *host = pc_xstrndup(p + 1, (size_t)(rb - p - 1));
      colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    }
  } else {
    colon = memchr(p, ':', auth);
    *host = pc_xstrndup(p, (size_t)((colon ? colon : end) - p));
  }
  if (colon && colon + 1 < end)
    *port = strtol(colon + 1, NULL, 10);
}

/* url.full without credentials: the semantic conventions ask for
 * "REDACTED:REDACTED@" where a URL carried a user and password. */
static char *url_full(const char *url)
{
  const char *p = strstr(url, "://");
  if (!p)
    return pc_xstrdup(url);
  size_t auth = strcspn(p + 3, "/?#");
  const char *at = memchr(p + 3, '@', auth);
  if (!at)
    return pc_xstrdup(url);
  return pc_asprintf("%.*sREDACTED:REDACTED@%s", (int)(p + 3 - url), url, at + 1);
}

/* The span's name for a record: the step's id, else its name, else its
 * action (low cardinality: items share their step's name). */
static const char *record_name(const struct pc_record *s)
{
  if (!s->step)
    return s->root_name ? s->root_name : "steps";
  return s->step->id ? s->step->id : s->step->name ? s->step->name : s->action;
}

static const char *kind_name(enum pc_record_kind k)
{
  static const char *const names[] = {"root", "sequence", "gather", "for_each", "step"};
  return names[k];
}

static void attempt_span(struct out *o, const struct pc_run_report *r, struct pc_trace *tr,
                         const struct pc_attempt_record *ar, uint64_t parent)
{
  bool http = ar->method && ar->url;
  const char *name = http ? ar->method : "attempt";
  if (!span_begin(o, r, tr, ar->span, parent, name, http ? KIND_CLIENT : KIND_INTERNAL,
                  ar->start_off_ms, ar->duration_ms))
    return;
  struct attrs a = {o->b, true};
  attr_int(&a, "pacer.attempt.number", ar->number);
  attr_str(&a, "pacer.attempt.outcome", pc_outcome_name(ar->outcome));
  if (http) {
    char *host;
    long port;
    url_server(ar->url, &host, &port);
    char *full = url_full(ar->url);
    attr_str(&a, "http.request.method", ar->method);
    attr_str(&a, "url.full", full);
    attr_str(&a, "server.address", host);
    attr_int(&a, "server.port", port);
    if (ar->number > 1)
      attr_int(&a, "http.request.resend_count", ar->number - 1);
    free(host);
    free(full);
  }
  if (ar->status > 0)
    attr_int(&a, "http.response.status_code", ar->status);
  if (ar->exit_code >= 0)
    attr_int(&a, "process.exit.code", ar->exit_code);
  if (pc_outcome_is_failure(ar->outcome)) {
    char code[16];
    snprintf(code, sizeof code, "%d", ar->status);
    attr_str(&a, "error.type", ar->outcome == PC_FAILED && ar->status >= 400
                                   ? code
                                   : pc_outcome_name(ar->outcome));
  }
  span_end(o, status_of(ar->outcome), ar->error);
}

static void record_span(struct out *o, const struct pc_run_report *r, struct pc_trace *tr,
                        size_t i, const uint64_t *spans, uint64_t run_span)
{
  const struct pc_record *s = &r->records[i];
  uint64_t parent = s->parent == PC_NO_RECORD ? run_span : spans[s->parent];
  if (!span_begin(o, r, tr, spans[i], parent, record_name(s), KIND_INTERNAL, s->start_off_ms,
                  s->done ? s->duration_ms : 0))
    return;
  struct attrs a = {o->b, true};
  struct pc_buf path;
  pc_buf_init(&path, (size_t)1 << 30);
  pc__record_path(&path, r, i); /* as the JSON report's `path` */
  const char *outcome = s->done ? pc_outcome_name(s->outcome) : "running";
  attr_str(&a, "cicd.pipeline.task.name", record_name(s));
  attr_str(&a, "cicd.pipeline.task.run.id", path.data);
  attr_str(&a, "cicd.pipeline.task.run.result", cicd_result(outcome));
  attr_str(&a, "pacer.step.path", path.data);
  attr_str(&a, "pacer.step.label", s->label);
  attr_str(&a, "pacer.step.kind", kind_name(s->kind));
  attr_str(&a, "pacer.step.outcome", outcome);
  if (s->action)
    attr_str(&a, "pacer.step.action", s->action);
  if (s->item)
    attr_int(&a, "pacer.step.item", (long long)s->item);
  if (s->kind == PC_REC_LEAF) {
    attr_int(&a, "pacer.step.attempts", s->attempts);
    if (s->queued_ms > 0)
      attr_double(&a, "pacer.step.queued_ms", s->queued_ms);
  }
  if (s->step) {
    attr_str(&a, "code.file.path", s->step->file);
    attr_int(&a, "code.line.number", s->step->line);
  }
  if (s->done && pc_outcome_is_failure(s->outcome))
    attr_str(&a, "error.type", outcome);
  pc_buf_free(&path);
  span_end(o, s->done ? status_of(s->outcome) : STATUS_UNSET, s->error);
}

/* Whether an attempt gets a span of its own: an HTTP request (the
 * semantic conventions want one client span per attempt), an attempt
 * whose span id went out (a server's or a program's spans name it as
 * their parent), or one of several. */
static bool attempt_shown(const struct pc_run_report *r, const struct pc_attempt_record *ar)
{
  return (ar->method && ar->url) || ar->propagated || r->records[ar->record].attempts > 1;
}

char *pc_otlp_payload(const struct pc_run_report *r, struct pc_trace *tr,
                      const struct pc_otlp_config *c, size_t *len, size_t *nspans,
                      size_t *dropped)
{
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 40);
  struct out o = {&b, 0, 0, true};
  pc_buf_puts(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
  struct attrs ra = {&b, true};
  for (size_t i = 0; i < c->nresource; i++)
    attr_str(&ra, c->resource[i].key, c->resource[i].value);
  pc_buf_puts(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"pacer\",\"version\":");
  jstr(&b, PACER_VERSION);
  pc_buf_puts(&b, "},\"spans\":[");

  /* The run: a CI/CD pipeline run (a SERVER span, as those conventions
   * say), the child of the span it joined. */
  char *name = pc_asprintf("RUN %s", r->wf->name);
  span_begin(&o, r, tr, tr->run_span, tr->joined ? tr->parent : 0, name, KIND_SERVER, 0,
             r->duration_ms);
  free(name);
  struct attrs a = {&b, true};
  attr_str(&a, "cicd.pipeline.name", r->wf->name);
  attr_str(&a, "cicd.pipeline.run.id", r->run_id);
  attr_str(&a, "cicd.pipeline.action.name", "RUN");
  attr_str(&a, "cicd.pipeline.result", cicd_result(r->outcome));
  attr_str(&a, "pacer.workflow.file", r->wf->file);
  attr_str(&a, "pacer.run.outcome", r->outcome);
  attr_int(&a, "pacer.exit_code", r->exit_code);
  if (r->exit_code != 0)
    attr_str(&a, "error.type", r->outcome ? r->outcome : "error");
  char *msg = pc_asprintf("%s (exit %d)", r->outcome ? r->outcome : "?", r->exit_code);
  span_end(&o, r->exit_code == 0 ? STATUS_OK : STATUS_ERROR, msg);
  free(msg);

  /* Every record, parents first (their index is smaller), and after each
   * leaf its attempts. Attempts are listed by leaf once, so that finding
   * them costs one pass. */
  uint64_t *spans = pc_xcalloc(r->nrecords + 1, sizeof *spans);
  for (size_t i = 0; i < r->nrecords; i++)
    spans[i] = pc_trace_new_span(tr);
  size_t *first = pc_xcalloc(r->nrecords + 1, sizeof *first);
  size_t *next = pc_xcalloc(r->nattempts + 1, sizeof *next);
  for (size_t i = 0; i < r->nrecords; i++)
    first[i] = PC_NO_RECORD;
  for (size_t k = r->nattempts; k-- > 0;) {
    next[k] = first[r->attempts[k].record];
    first[r->attempts[k].record] = k;
  }
  for (size_t i = 0; i < r->nrecords; i++) {
    record_span(&o, r, tr, i, spans, tr->run_span);
    for (size_t k = first[i]; k != PC_NO_RECORD; k = next[k])
      if (r->attempts[k].done && attempt_shown(r, &r->attempts[k]))
        attempt_span(&o, r, tr, &r->attempts[k], spans[i]);
  }
  free(spans);
  free(first);
  free(next);
  pc_buf_puts(&b, "]}]}]}");
  *nspans = o.nspans;
  *dropped = o.dropped;
  /* Once more as a whole, as the reports are: a secret split across two
   * strings by nothing but JSON could only meet here. */
  char *red = pc_redact(b.data, b.len, len);
  pc_buf_free(&b);
  return red;
}
