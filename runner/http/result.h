/* result.h: the Lua view of a finished request: the result table of SPEC
 * §3 (status, url, method, body or saved_to, http_version, reused,
 * headers, timing, json: all but status built when read), filled from the plain C
 * struct pc_http_result of request.h. With spec.h, the only part of
 * runner/http that touches Lua besides the action. */
#ifndef PACER_HTTP_RESULT_H
#define PACER_HTTP_RESULT_H

#include <stddef.h>

#include "http/request.h"
#include "http/show.h" /* pc_http_excerpt */
#include "base/util.h"

struct pc_lua;

/* Makes the table at `idx` the result of SPEC section 3: status (and
 * saved_to) in the table; everything else the response gave (method, url,
 * http_version, reused, body, headers, timing, json, ...) in one compact
 * record the table's shared metatable answers from, each field built when
 * read (result.c, struct lazy). `json` is decoded from the record on each
 * read and not stored in the table; the last document decoded is kept
 * while nothing else is decoded, so repeated reads give the same table.
 * __pairs lists every field (json once it was read); `json` raises
 * "response body of ... is not JSON: ..." if the body is not. Without a
 * response, only method and url are set. The table keeps no reference to
 * the request. Returns 0, or -1 with *err set
 * (malloc'd: "METHOD URL: the response does not fit in memory ...") when
 * the Lua state runs out of memory (a body larger than what is left, under
 * ulimit -v or --lua-memory): the table is then incomplete, and the caller
 * fails the request with that message. */
int pc_http_result_fill(const struct pc_http_result *r, struct pc_lua *h, int idx, char **err);
/* The result table at idx came back from the journal (plain tables, as
 * JSON has them): its `headers` and `header_values` find a name written
 * in any case again, as when the response made them. */
void pc_http_result_restored(struct pc_lua *h, int idx);

/* Appends the response of the result table at idx, for the message of a
 * failing step: pc_http_show_response (show.h) over the header block the
 * result keeps and its body. Nothing when no response arrived. */
void pc_http_result_exchange(struct pc_lua *h, int idx, struct pc_buf *out, size_t max);



#endif
