/* explain.h: the values behind a failed condition (explain.c), as pytest's
 * assertion rewriting and Hurl's actual/expected show them.
 *
 * When an `assert` item, an `expect.that` item or an `if:` is false (or
 * fails to evaluate), pc_lua_explain splits the expression at its top
 * level (a comparison `a == b`, `a < b`, ...; a call `contains(x, y)`;
 * `not x`; the first false term of `a and b`; every term of `a or b`),
 * evaluates each operand in the same scope and appends one line per
 * operand: "\n  len(steps.x.items) = 2". `len(x)` and `#x` also show x.
 * Literals are not shown (their value is their text). Values are JSON
 * (strings quoted, tables compact), nil is nil, and each is cut to a few
 * hundred bytes after redaction, so a secret is never cut in half where it
 * could escape the redactor. Nothing is compiled until something fails: the
 * operands are compiled on demand, and an operand that fails to evaluate
 * shows its error instead of a value. */
#ifndef PACER_SCRIPT_EXPLAIN_H
#define PACER_SCRIPT_EXPLAIN_H

#include "base/util.h"
#include "model/workflow.h"
#include "script/host.h"

/* Appends the operand lines of `e` evaluated in `scope_ref` (nothing when
 * the expression has no operand worth showing). Never raises; leaves the
 * Lua stack as it was. */
void pc_lua_explain(struct pc_lua *h, const struct pc_expr *e, int scope_ref,
                    struct pc_buf *out);

/* pc_lua_explain into a new string: `msg` followed by the operand lines
 * (malloc'd; `msg` is not freed). */
char *pc_lua_explained(struct pc_lua *h, const char *msg, const struct pc_expr *e,
                       int scope_ref);

#endif
