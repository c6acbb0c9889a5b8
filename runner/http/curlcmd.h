/* curlcmd.h: a request as a `curl` command line to paste into a shell
 * (curlcmd.c), shown when an HTTP step fails. Transport only: no Lua. */
#ifndef PACER_HTTP_CURLCMD_H
#define PACER_HTTP_CURLCMD_H

#include "base/util.h"
#include "http/request.h"

/* Bodies larger than this are not written into the command line. */
#define PC_HTTP_CURL_BODY_MAX 2048

/* Appends a curl command line that sends what `sp` describes: method, URL,
 * headers, body and the options curl has (-L, timeouts, -k, --cacert,
 * --http1.1, ...). Every argument is single-quoted for a POSIX shell. A
 * named secret's value (secrets.NAME, base/redact.h) is written as "$NAME",
 * so the line runs where that variable is set and shows no secret; any
 * other secret is left to the redactor (***). A body that is not text, or
 * longer than PC_HTTP_CURL_BODY_MAX, is replaced by `@BODY_FILE` and its
 * size. */
void pc_http_curl_command(const struct pc_http_spec *sp, struct pc_buf *out);

#endif
