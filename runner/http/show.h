/* show.h: requests and responses as text for people (show.c): a body
 * excerpt on one line, the header block of a response, a body's line.
 * Transport only: no Lua. Secrets in bodies are redacted before a cut;
 * everything else is left to the log's redaction. */
#ifndef PACER_HTTP_SHOW_H
#define PACER_HTTP_SHOW_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"

/* Appends up to `max` bytes of a body to b on one line, for messages:
 * leading white space skipped, runs of white space as one space, control
 * characters as '?', "..." when cut; secrets redacted before the cut. */
void pc_http_excerpt(struct pc_buf *b, const char *body, size_t len, size_t max);

/* Appends a response, each line after "\n  ": "< " and the status line
 * and header lines of the last response in the header block `hdrs` (at
 * most 40, each cut to 200 bytes; the value of set-cookie is hidden), then
 * the body (NULL: none kept): its size and an excerpt of up to `max`
 * bytes, or for a body that is not text its size and type. */
void pc_http_show_response(struct pc_buf *out, const char *hdrs, size_t hlen, const char *body,
                           size_t blen, size_t max);

/* Appends the body's line after "\n  ": "body (N bytes): " and an excerpt
 * of up to `max` bytes, "body: empty", or for a body that is not text its
 * size and `type` (type_len bytes; NULL: unknown). */
void pc_http_show_body(struct pc_buf *out, const char *body, size_t len, const char *type,
                       size_t type_len, size_t max);

#endif
