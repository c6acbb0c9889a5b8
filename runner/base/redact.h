/* redact.h: secret redaction, the one filter every byte pacer prints passes
 * through (log lines, `log` steps, reports, failure messages).
 *
 * A value registered as secret is replaced by "***" in every form pacer
 * itself may print it in: the raw bytes, URL-encoded (%XX, and `+` for a
 * space), JSON-escaped (the styles of pacer's own encoders, lua-cjson,
 * Python, Go and JavaScript), each line of a multi-line value on its own,
 * and a fragment of at least PC_SECRET_PART_MIN bytes left where pacer cut
 * a text (a capture cap, the end of a stream). Passwords in URL userinfo
 * (`scheme://user:PASSWORD@host`) are replaced too, secret or not.
 * docs/redaction.md describes the design and its cost. */
#ifndef PACER_REDACT_H
#define PACER_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"

/* Shorter values are not registered: they would blank out ordinary text. */
#define PC_SECRET_MIN 3
/* Lines of a multi-line secret and fragments left at a cut are redacted
 * on their own only from this length: a shorter piece is too likely to be
 * ordinary text, and shows too little of the secret to matter. */
#define PC_SECRET_PART_MIN 6

/* Registers a secret value and its derived forms (see above). Values
 * shorter than PC_SECRET_MIN are ignored. Cheap when already registered. */
void pc_secret_add(const char *s, size_t len);
/* A URL's userinfo: libcurl sends it as Basic credentials, base64 of
 * "user:password", which a server may echo back. Registers the password and
 * those credentials. */
void pc_secret_add_userinfo(const char *user, const char *password);
/* `kept` is text pacer cut right after its last byte (the rest was
 * discarded). If it ends with at least PC_SECRET_PART_MIN bytes that begin
 * a registered form, that fragment is registered as a secret of its own,
 * so wherever the cut text goes, the fragment is redacted. */
void pc_secret_cut(const char *kept, size_t len);
/* Remembers that `value` is the secret named `name` (secrets.NAME reads
 * the environment variable NAME), for text meant to be run again, which
 * refers to it as $NAME instead of printing *** (an HTTP step's `curl`
 * command line). It does not register the value: pc_secret_add does. */
void pc_secret_name(const char *name, const char *value, size_t len);
/* The leftmost (then longest) occurrence in s of a named secret's value:
 * its name, with *at and *n its place; NULL when there is none. */
const char *pc_secret_named_at(const char *s, size_t len, size_t *at, size_t *n);
/* Forgets every secret (end of a run, tests). */
void pc_secrets_clear(void);

/* Returns a malloc'd copy of s (NUL-terminated; *outlen without the NUL)
 * with every registered form replaced by "***" (leftmost, longest match
 * first) and the password of every URL userinfo replaced by "***". */
char *pc_redact(const char *s, size_t len, size_t *outlen);
/* The redacted start of s, for excerpts that are cut afterwards: at least
 * `want` bytes of redacted text when s has them (a secret that would
 * straddle the cut is redacted whole). *more tells whether s has more than
 * what was returned. Secrets only: pc_redact does the URL userinfo when the
 * excerpt is printed. */
char *pc_redact_head(const char *s, size_t len, size_t want, size_t *outlen, bool *more);

/* Redacts a stream that arrives in pieces (a program's output), so a secret
 * split across two reads, or across a line, is still found: each feed
 * appends to `out` what is decided and holds back the bytes that may begin
 * a secret (fewer than the longest registered form). */
struct pc_redact_stream {
  struct pc_buf held; /* bytes not decided yet */
};
void pc_redact_stream_init(struct pc_redact_stream *rs);
void pc_redact_stream_feed(struct pc_redact_stream *rs, const char *d, size_t n,
                           struct pc_buf *out);
/* The stream ended: appends the rest. A held-back start of a secret of at
 * least PC_SECRET_PART_MIN bytes is redacted (the stream may have been cut
 * in the middle of it). Leaves rs empty and reusable. */
void pc_redact_stream_end(struct pc_redact_stream *rs, struct pc_buf *out);
void pc_redact_stream_free(struct pc_redact_stream *rs);

#endif
