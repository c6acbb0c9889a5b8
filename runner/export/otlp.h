/* otlp.h: a run as an OpenTelemetry trace in OTLP/HTTP JSON, and the
 * exporter settings read from the environment the way every OpenTelemetry
 * SDK reads them (OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES, OTEL_SDK_DISABLED, OTEL_TRACES_EXPORTER). Pure
 * text: export.c sends what this builds. docs/cron-and-ci.md
 * ("Monitoring") lists the spans and their attributes. */
#ifndef PACER_EXPORT_OTLP_H
#define PACER_EXPORT_OTLP_H

#include <stdbool.h>
#include <stddef.h>

#include "base/trace.h"
#include "core/records.h"

/* The most spans one run exports; past it the rest are dropped (with a
 * warning), as an SDK's batch processor drops what overflows its queue.
 * Parents always come before their children, so no exported span loses
 * its parent. */
#define PC_OTLP_MAX_SPANS 20000

struct pc_kv {
  char *key, *value; /* owned */
};

struct pc_otlp_config {
  char *endpoint;      /* the full URL spans are POSTed to (.../v1/traces) */
  struct pc_kv *headers; /* OTEL_EXPORTER_OTLP_HEADERS and ..._TRACES_HEADERS, decoded;
                          * the values are secrets */
  size_t nheaders;
  char *ca_file;       /* OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE, or NULL */
  double timeout_ms;   /* OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT; < 0: unset */
  struct pc_kv *resource; /* service.name first, then OTEL_RESOURCE_ATTRIBUTES */
  size_t nresource;
};

/* Reads the environment (getenv). Returns 1 with *c filled when spans are
 * to be exported, 0 when not (no endpoint, or export switched off), -1
 * when the settings are wrong: each problem is logged as a warning (never
 * a header's value) and nothing is exported. Header values are registered
 * as secrets (base/redact.h) before anything else happens to them. *c is
 * zeroed either way; free it with pc_otlp_config_free. */
int pc_otlp_config_read(struct pc_otlp_config *c);
void pc_otlp_config_free(struct pc_otlp_config *c);
/* Splits a W3C-baggage-like list "k1=v1,k2=v2" (the format of
 * OTEL_EXPORTER_OTLP_HEADERS and OTEL_RESOURCE_ATTRIBUTES): whitespace
 * around keys and values trimmed, values percent-decoded; appends to
 * the array at kv (n entries; a later key replaces an earlier one). Returns 0, or -1 at the
 * first entry that is not KEY=VALUE (*bad: its 1-based position; nothing
 * appended). */
int pc_otlp_parse_list(const char *s, struct pc_kv **kv, size_t *n, size_t *bad);

/* The run as an ExportTraceServiceRequest in JSON: one resource (the
 * config's attributes), one scope ("pacer"), a span for the run, one per
 * record, and one per attempt of a leaf that made an HTTP request, passed
 * its trace context on, or was retried. Redacted. *nspans and *dropped
 * are set. Returns a malloc'd text and sets *len. */
char *pc_otlp_payload(const struct pc_run_report *rep, struct pc_trace *tr,
                      const struct pc_otlp_config *c, size_t *len, size_t *nspans,
                      size_t *dropped);

#endif
