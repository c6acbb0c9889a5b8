/* values.c: the loader's messages and the typed values it reads from
 * scalars. Every check of the loader reports through pc_load_error (or
 * pc__load_error_at for a position inside a scalar) and carries on, so one
 * `pacer validate` lists every mistake; the readers here (booleans,
 * integers in a range, numbers, text, durations) say what they expected and
 * what they got, in one wording for the whole format. Also the helpers
 * action loaders call (model/workflow.h): pc_load_check_keys with its
 * did-you-mean, pc_load_no_nul and pc_load_duration. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "load/loader.h"
#include "model/workflow.h"

/* ---------------------------------------------------------------- errors */

static void verror_at(struct pc_load_ctx *c, int line, int col, const char *fmt, va_list ap)
{
  if (pc_diag_full(c->d)) { /* counted, not kept: do not format it */
    pc_diag_add(c->d, c->file, line, col, "%s", "");
    return;
  }
  char *msg = pc_vasprintf(fmt, ap);
  pc_diag_add(c->d, c->file, line, col, "%s", msg);
  free(msg);
}

void pc_load_error(struct pc_load_ctx *c, const struct pc_node *at, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  verror_at(c, at ? at->line : 0, at ? at->col : 0, fmt, ap);
  va_end(ap);
}

void pc_load_warn(struct pc_load_ctx *c, const struct pc_node *at, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  char *msg = pc_vasprintf(fmt, ap);
  va_end(ap);
  pc_diag_warn(c->d, c->file, at ? at->line : 0, at ? at->col : 0, "%s", msg);
  free(msg);
}

void pc__load_error_at(struct pc_load_ctx *c, int line, int col, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  verror_at(c, line, col, fmt, ap);
  va_end(ap);
}

/* The value for `key` in `map`, and the key node itself for messages that
 * are about the key rather than its value. */
const struct pc_node *pc__find_key(const struct pc_node *map, const char *key,
                                   const struct pc_node **keynode)
{
  if (map == NULL || map->kind != PC_NODE_MAP)
    return NULL;
  for (size_t i = 0; i < map->n; i++) {
    if (strcmp(map->keys[i]->str, key) == 0) {
      if (keynode)
        *keynode = map->keys[i];
      return map->items[i];
    }
  }
  return NULL;
}

/* memmem() for a short needle; memmem itself is a GNU extension. Scalars
 * may contain NULs, so strstr would stop early. */
const char *pc__find(const char *s, size_t len, const char *needle)
{
  size_t nlen = strlen(needle);
  for (size_t i = 0; i + nlen <= len; i++)
    if (s[i] == needle[0] && memcmp(s + i, needle, nlen) == 0)
      return s + i;
  return NULL;
}

static bool has_expr_marker(const struct pc_node *n)
{
  return n->kind == PC_NODE_SCALAR && pc__find(n->str, n->len, "${{") != NULL;
}

/* ----------------------------------------------------------- typed values */

int pc__load_bool(struct pc_load_ctx *c, const char *what, const struct pc_node *n, bool *out)
{
  if (n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) == PC_SCALAR_BOOL) {
    *out = n->str[0] == 't' || n->str[0] == 'T';
    return 0;
  }
  pc_load_error(c, n, "%s: expected true or false, got %s", what, pc_node_describe(n).s);
  return -1;
}

/* Parses a core-schema integer (decimal, 0x, 0o); false on overflow. */
bool pc__parse_int(const struct pc_node *n, long long *out)
{
  const char *s = n->str;
  char *end;
  errno = 0;
  if (s[0] == '0' && s[1] == 'x')
    *out = strtoll(s + 2, &end, 16);
  else if (s[0] == '0' && s[1] == 'o')
    *out = strtoll(s + 2, &end, 8);
  else
    *out = strtoll(s, &end, 10);
  return errno == 0 && *end == '\0';
}

int pc__load_int(struct pc_load_ctx *c, const char *what, const struct pc_node *n, long long min,
                 long long max, int *out)
{
  long long v;
  bool is_int = n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) == PC_SCALAR_INT;
  if (is_int && !pc__parse_int(n, &v)) { /* beyond 64 bits: say what would do */
    pc_load_error(c, n, "%s: expected an integer from %lld to %lld, got %s", what, min, max,
                  pc_node_describe(n).s);
    return -1;
  }
  if (!is_int) {
    pc_load_error(c, n, "%s: expected an integer, got %s", what, pc_node_describe(n).s);
    return -1;
  }
  if (v < min || v > max) {
    pc_load_error(c, n, "%s: expected an integer from %lld to %lld, got %lld", what, min, max,
                  v);
    return -1;
  }
  *out = (int)v;
  return 0;
}

int pc__load_number(struct pc_load_ctx *c, const char *what, const struct pc_node *n,
                    double *out)
{
  enum pc_scalar_type t = n->kind == PC_NODE_SCALAR ? pc_node_scalar_type(n) : PC_SCALAR_STR;
  if (n->kind != PC_NODE_SCALAR || (t != PC_SCALAR_INT && t != PC_SCALAR_FLOAT)) {
    pc_load_error(c, n, "%s: expected a number, got %s", what, pc_node_describe(n).s);
    return -1;
  }
  long long i;
  *out = t == PC_SCALAR_INT && pc__parse_int(n, &i) ? (double)i : strtod(n->str, NULL);
  return 0;
}

/* Any non-empty scalar, as text: `name: 2024` is a fine name. */
char *pc__load_text(struct pc_load_ctx *c, const char *what, const struct pc_node *n)
{
  if (n->kind != PC_NODE_SCALAR || pc_node_scalar_type(n) == PC_SCALAR_NULL) {
    pc_load_error(c, n, "%s: expected a string, got %s", what, pc_node_describe(n).s);
    return NULL;
  }
  return pc_xstrndup(n->str, n->len);
}

int pc__load_duration(struct pc_load_ctx *c, const char *what, const struct pc_node *n,
                      double *ms)
{
  const char *prefix = what ? what : "", *sep = what ? ": " : "";
  if (has_expr_marker(n)) {
    pc_load_error(c, n, "%s%sa duration must be written out here; ${{ }} is not allowed", prefix,
                  sep);
    return -1;
  }
  enum pc_scalar_type t = n->kind == PC_NODE_SCALAR ? pc_node_scalar_type(n) : PC_SCALAR_NULL;
  if (n->kind != PC_NODE_SCALAR || t == PC_SCALAR_NULL || t == PC_SCALAR_BOOL ||
      pc_parse_duration(n->str, ms) < 0) {
    pc_load_error(c, n, "%s%sexpected a duration like \"5s\", got %s", prefix, sep,
                  pc_node_describe(n).s);
    return -1;
  }
  return 0;
}

int pc_load_no_nul(struct pc_load_ctx *c, const struct pc_node *n, const char *what,
                   const char *kind)
{
  if (n == NULL || n->kind != PC_NODE_SCALAR || memchr(n->str, '\0', n->len) == NULL)
    return 0;
  pc_load_error(c, n, "%s contains a NUL byte (\\0), which %s cannot hold", what, kind);
  return -1;
}

int pc_load_duration(struct pc_load_ctx *c, const struct pc_node *n, double *ms)
{
  return pc__load_duration(c, NULL, n, ms);
}

int pc_load_check_keys(struct pc_load_ctx *c, const struct pc_node *map,
                       const char *const *allowed, size_t nallowed, const char *what)
{
  if (map == NULL || map->kind != PC_NODE_MAP) {
    pc_load_error(c, map, "%s: expected a map, got %s", what, pc_node_describe(map).s);
    return -1;
  }
  int unknown = 0;
  for (size_t i = 0; i < map->n; i++) {
    const struct pc_node *k = map->keys[i];
    size_t j;
    for (j = 0; j < nallowed; j++)
      if (strcmp(k->str, allowed[j]) == 0)
        break;
    if (j < nallowed)
      continue;
    unknown++;
    if (strcmp(k->str, "<<") == 0) {
      pc_load_error(c, k, "YAML merge keys (<<) are not supported; write the keys out");
      continue;
    }
    const char *hint = pc_diag_full(c->d) ? NULL : pc_did_you_mean(k->str, allowed, nallowed);
    if (hint != NULL) {
      pc_load_error(c, k, "unknown key \"%s\" in %s; did you mean \"%s\"?", k->str, what, hint);
      continue;
    }
    /* No close match: list what is allowed, which is short everywhere. */
    if (pc_diag_full(c->d)) {
      pc_load_error(c, k, "unknown key");
      continue;
    }
    struct pc_buf b;
    pc_buf_init(&b, 1024);
    for (j = 0; j < nallowed; j++)
      pc_buf_printf(&b, "%s%s", j ? ", " : "", allowed[j]);
    pc_load_error(c, k, "unknown key \"%s\" in %s (expected one of: %s)", k->str, what, b.data);
    pc_buf_free(&b);
  }
  return unknown;
}
