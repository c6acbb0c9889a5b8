/* trace.h: W3C Trace Context (https://www.w3.org/TR/trace-context/) for a
 * run: the trace id every span of the run shares, the parent span a CI job
 * hands down in the TRACEPARENT environment variable, new span ids, and the
 * `traceparent` text that HTTP requests send and programs get in their
 * environment. Pure text and numbers: no I/O but one read of the system's
 * random source when a trace is made. docs/cron-and-ci.md ("Monitoring")
 * says how a run joins a trace and what it sends.
 *
 * Ownership: the run driver owns the struct pc_trace of a run; the engine
 * borrows it (struct pc_run.trace) to give attempts their span ids. */
#ifndef PACER_TRACE_H
#define PACER_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex, and the NUL. */
#define PC_TRACEPARENT_LEN 55
#define PC_TRACEPARENT_SIZE (PC_TRACEPARENT_LEN + 1)

#define PC_TRACE_SAMPLED 0x01u /* trace-flags: the caller may record */

struct pc_trace {
  uint8_t trace_id[16];
  uint64_t parent;   /* the span the run's spans are children of (TRACEPARENT); 0: none */
  uint64_t run_span; /* the run's own span */
  uint8_t flags;     /* trace-flags sent on: TRACEPARENT's, else sampled */
  bool joined;       /* a valid TRACEPARENT was given: the run joins that trace */
  bool recording;    /* the run's spans are exported: an attempt's span id is its own */
  uint64_t rng;      /* state of the span id generator (splitmix64) */
};

/* Makes a run's trace: joins `traceparent` (the value of TRACEPARENT, or
 * NULL) when it is valid, else starts a new trace with a random id. An
 * invalid value is ignored, as the W3C rules say, and *why is set to a
 * static sentence for a warning (else NULL). Never fails. */
void pc_trace_init(struct pc_trace *t, const char *traceparent, const char **why);
/* A new span id: random (seeded from the system's random source), never 0. */
uint64_t pc_trace_new_span(struct pc_trace *t);
/* The traceparent of a request or program made inside `span`:
 * "00-TRACEID-SPAN-FLAGS", NUL-terminated. */
void pc_trace_format(const struct pc_trace *t, uint64_t span, char out[PC_TRACEPARENT_SIZE]);
/* Parses a traceparent header value. Returns 0 and fills the three parts,
 * or -1 when it is not valid (wrong length or version, upper-case or
 * non-hex digits, an all-zero trace id or span id, version ff). A version
 * above 00 is read for its first four fields, as the rules say. */
int pc_trace_parse(const char *s, uint8_t trace_id[16], uint64_t *span, uint8_t *flags);
/* Lower-case hex of n bytes (out: 2n + 1 bytes), and of a span id (17). */
void pc_trace_hex(const uint8_t *bytes, size_t n, char *out);
void pc_trace_span_hex(uint64_t span, char out[17]);
/* Fills `out` with n bytes from the system's random source (getrandom),
 * falling back to the clock and the pid mixed when it is unavailable. */
void pc_trace_random(void *out, size_t n);

#endif
