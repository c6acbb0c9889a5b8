/* failure.h: why a transfer failed, in words. A failed request becomes one
 * of three kinds (network: retried by default; timeout; error: not
 * retried) and a sentence that starts with the method and URL and says
 * what happened ("connection refused to 127.0.0.1:9", "the response from
 * HOST ended early: ..."), from libcurl's CURLcode, the errno libcurl
 * recorded, and what the request itself noticed on the way (a body over
 * its limit, a write error, memory, headers too large). Transport only:
 * no Lua. The table of what each broken server gets is in docs/http.md. */
#ifndef PACER_HTTP_FAILURE_H
#define PACER_HTTP_FAILURE_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "base/util.h"
#include "model/action.h"

/* What is known of a failed transfer. Strings are borrowed. */
struct pc_http_failure {
  CURLcode rc;
  const char *method, *url; /* the request as asked */
  const char *final_url;    /* the URL that failed (after redirects); NULL: url */
  int nredirects;           /* redirects followed before it */
  long status;              /* the status of a response that began; 0: none */
  const char *errbuf;       /* libcurl's CURLOPT_ERRORBUFFER; NULL or "": none */
  long os_errno;            /* CURLINFO_OS_ERRNO: this transfer's (see request.c) */
  int open_errno;           /* socket() failed with it (session.c); 0: it did not */
  bool connected;           /* CURLINFO_CONNECT_TIME_T > 0: a connection was made */
  double connect_timeout_ms; /* < 0: none set */
  double timeout_ms;         /* <= 0: none set */
  /* What the request's callbacks noticed (they fail the transfer with
   * CURLE_WRITE_ERROR, which says nothing by itself). */
  bool too_big;             /* the body passed max_bytes */
  int64_t max_bytes;
  int write_errno;          /* writing save_to failed with it */
  const char *save_to;
  int read_errno;           /* reading body_file failed with it */
  const char *body_file;
  bool no_memory;           /* the body or headers did not fit in memory */
  int64_t received;         /* body bytes received by then */
  bool headers_too_big;     /* the header block passed its limit (header_max) */
  size_t header_max;
  bool in_headers;          /* it failed inside a response's header block */
};

/* Writes the sentence into m and returns the kind of failure:
 * PC_FAIL_NETWORK, PC_FAIL_TIMEOUT or PC_FAIL_ERROR. For a failure libcurl
 * reports as "could not connect" or "could not resolve" without a reason,
 * it checks whether pacer has run out of descriptors (one socket() made
 * and closed). */
enum pc_fail pc_http_failure_describe(const struct pc_http_failure *f, struct pc_buf *m);

#endif
