/* export.h: what a run tells the monitoring outside it, over HTTP, at its
 * start and its end: healthchecks.io-style pings (--ping URL), a push of
 * its metrics to a Prometheus Pushgateway (--push URL), and its trace to
 * an OpenTelemetry collector (OTLP/HTTP JSON, when OTEL_EXPORTER_OTLP_*
 * says where). The run driver (core/run.c) calls these four functions and
 * nothing else; docs/cron-and-ci.md ("Monitoring") is the user's side.
 *
 * Everything goes through pacer's own HTTP transport (http/request.h) on
 * the run's loop, on a session of the exporter's own, so an export never
 * shares connection caps or statistics with the workflow's requests.
 * Two promises: an export never changes the exit code (a failure is a
 * warning), and the end of a run is never held up by more than
 * PC_EXPORT_BOUND_MS, however slow or dead the receivers are.
 *
 * Ownership: the driver owns the struct pc_export; the exporter owns its
 * session, its timer and its requests, all closed by the time the loop has
 * run after pc_export_end (or pc_export_abort). */
#ifndef PACER_EXPORT_H
#define PACER_EXPORT_H

#include <stdbool.h>

#include <uv.h>

#include "base/trace.h"
#include "core/records.h"

/* The most the end of a run waits for its exports (pings, push, trace),
 * all together; also the bound on the start ping. */
#define PC_EXPORT_BOUND_MS 2000

struct pc_export;

struct pc_export_opts {
  const char *push_url; /* --push: a Pushgateway, or NULL */
  const char *ping_url; /* --ping: a healthchecks.io-style check URL, or NULL */
};

/* Reads the options and the OpenTelemetry environment (OTEL_*; problems
 * there are warnings, as the OpenTelemetry specification asks, and turn the
 * trace export off). Returns NULL when there is nothing to export. When the
 * trace is exported, sets trace->recording. OTLP header values are
 * registered as secrets here, before anything could log them. `trace` is
 * borrowed and must outlive the exporter. */
struct pc_export *pc_export_new(const struct pc_export_opts *o, struct pc_trace *trace);
/* What the exporter needs the run to keep: step records (a push, a trace,
 * the failures the end ping lists),
 * and every attempt (a trace: one span per attempt). */
bool pc_export_wants_records(const struct pc_export *e);
bool pc_export_wants_attempts(const struct pc_export *e);
/* The run starts: the start ping goes out on `loop` (borrowed; it must
 * outlive the exporter's handles), without waiting for it. NULL is
 * ignored. */
void pc_export_start(struct pc_export *e, uv_loop_t *loop, const char *run_id);
/* The run is over and `rep` is complete (borrowed for the call: what is
 * sent is built now): the end ping, the push and the trace go out, bounded
 * by PC_EXPORT_BOUND_MS in all. Run the loop afterwards until it returns;
 * by then every request has ended or been given up and every handle is
 * closed. NULL is ignored. */
void pc_export_end(struct pc_export *e, const struct pc_run_report *rep);
/* A signal during the end's wait: gives up what is still in flight, now
 * (with a warning each). Safe at any time, also twice; NULL is ignored. */
void pc_export_abort(struct pc_export *e);
/* Frees the exporter once the loop has run after pc_export_end or
 * pc_export_abort (or when it never started). NULL is ignored. */
void pc_export_free(struct pc_export *e);

#endif
