/* workflow.c: turns the YAML node tree into the workflow model and checks
 * it completely (SPEC.md sections 2 to 4).
 *
 * Loading never stops at the first problem: every check reports through
 * pc_load_error and carries on with whatever it could build, so `pacer
 * validate` lists every mistake in one go. A load that reported anything
 * fails as a whole; the diagnostics it added are sorted by position at the
 * end, because the model is built in dependency order (pools and defaults
 * before steps) rather than file order.
 *
 * Ownership: the workflow owns its strings, steps and templates; a template
 * owns its expressions and a step owns its bare expressions (if, assert,
 * expect.that), while wf->exprs only lists them for the Lua host. wf->root
 * is kept (owned) so actions and messages can point into it. Expressions are
 * not compiled here; that is the Lua host's job. */
#include "model/workflow.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "model/action.h"
#include "http/check.h"
#include "base/util.h"

/* ------------------------------------------------------------ vocabulary */

static const struct {
  const char *key;
  enum pc_action action;
} actions[] = {
  {"sleep", PC_ACT_SLEEP}, {"log", PC_ACT_LOG},   {"assert", PC_ACT_ASSERT},
  {"steps", PC_ACT_STEPS}, {"gather", PC_ACT_GATHER}, {"http", PC_ACT_HTTP},
  {"uses", PC_ACT_USES},   {"lua", PC_ACT_LUA},   {"exec", PC_ACT_EXEC},
  {"shell", PC_ACT_SHELL},
};

#define ACTION_LIST "sleep, log, assert, steps, gather, http, uses, lua, exec, shell"

static const char *const workflow_keys[] = {"name",     "description", "vars",  "timeout",
                                            "defaults", "pools",       "steps", "finally"};
static const char *const defaults_keys[] = {"timeout", "retry", "http"};
static const char *const pool_keys[] = {"concurrency", "rate", "burst"};
static const char *const retry_keys[] = {"attempts", "backoff", "max_backoff", "factor",
                                         "jitter",   "on",      "unsafe"};
static const char *const expect_keys[] = {"status", "exit_code", "that"};
static const char *const step_keys[] = {
  "id",   "name",  "if",      "for_each", "concurrency", "fail_fast", "pool",
  "timeout", "retry", "continue_on_error", "expect", "outputs", "with",
  /* the actions are step keys too */
  "sleep", "log",  "assert",  "steps",    "gather",      "http",      "uses",
  "lua",  "exec",  "shell",
};

/* retry.on words and their flags, index for index. */
static const char *const retry_on_words[] = {"network", "timeout", "5xx", "4xx", "expect",
                                             "error"};
static const unsigned retry_on_flags[] = {PC_ON_NETWORK, PC_ON_TIMEOUT, PC_ON_5XX,
                                          PC_ON_4XX,     PC_ON_EXPECT,  PC_ON_ERROR};

const char *pc_action_name(enum pc_action a)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(actions); i++)
    if (actions[i].action == a)
      return actions[i].key;
  return "none";
}

struct id_use {
  const char *id; /* borrowed from the step */
  const struct pc_node *at;
};

struct pool_ref {
  const char *name; /* borrowed from wf->pools */
  size_t index;
};

/* Per-load state beyond what action loaders see (they get only `c`). */
struct loader {
  struct pc_load_ctx c;
  struct id_use *ids; /* every valid id, checked for duplicates at the end */
  size_t nids, ids_cap;
  double default_timeout_ms; /* defaults.timeout, < 0 if none */
  struct pc_retry default_retry;
  const struct pc_node *default_retry_node; /* defaults.retry, NULL if none */
  /* wf->pools by name (sorted), and their names for hints; built once the
   * pools are loaded, so a step naming a pool costs a binary search, not a
   * scan of every pool (a hostile file has 20 000 of each). */
  struct pool_ref *pools_by_name;
  const char **pool_names;
};

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

static void error_pos(struct pc_load_ctx *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void error_pos(struct pc_load_ctx *c, int line, int col, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  verror_at(c, line, col, fmt, ap);
  va_end(ap);
}

/* How a value is named in "expected X, got Y" messages: the text of a short
 * scalar, a kind for anything else. Returned by value so it can be used
 * inline as a printf argument. */
struct desc {
  char s[72];
};

static struct desc describe(const struct pc_node *n)
{
  struct desc d;
  if (n == NULL || (n->kind == PC_NODE_SCALAR && n->style == PC_STYLE_PLAIN && n->len == 0)) {
    snprintf(d.s, sizeof d.s, "nothing");
    return d;
  }
  if (n->kind != PC_NODE_SCALAR) {
    snprintf(d.s, sizeof d.s, "a %s", pc_node_kind_name(n));
    return d;
  }
  /* Cut long or multi-line text at a character boundary. */
  size_t len = 0, max = 40;
  while (len < n->len && len < max && n->str[len] != '\n' && n->str[len] != '\0')
    len++;
  while (len < n->len && len > 0 && ((unsigned char)n->str[len] & 0xC0) == 0x80)
    len--;
  const char *more = len < n->len ? "..." : "";
  if (pc_node_scalar_type(n) == PC_SCALAR_STR)
    snprintf(d.s, sizeof d.s, "\"%.*s%s\"", (int)len, n->str, more);
  else
    snprintf(d.s, sizeof d.s, "%.*s%s", (int)len, n->str, more);
  return d;
}

/* Position of bytes inside a scalar's text: exact when the loader could map
 * the text onto one source line, the scalar's own position otherwise. The
 * cursor remembers how many characters precede the last offset asked for,
 * so the positions of every ${{ in one scalar cost one pass over the text,
 * not one pass per expression (a hostile string holds 400 000 of them).
 * Offsets asked of one cursor must not decrease. */
struct text_cursor {
  const struct pc_node *n;
  size_t off; /* bytes counted so far */
  int chars;  /* characters in n->str[0..off) */
};

static struct text_cursor text_cursor(const struct pc_node *n)
{
  return (struct text_cursor){n, 0, 0};
}

static void text_pos(struct text_cursor *cur, size_t off, int *line, int *col)
{
  const struct pc_node *n = cur->n;
  *line = n->line;
  *col = n->col;
  if (n->text_col > 0) {
    for (; cur->off < off; cur->off++)
      cur->chars += ((unsigned char)n->str[cur->off] & 0xC0) != 0x80;
    *col = n->text_col + cur->chars;
  }
}

/* The value for `key` in `map`, and the key node itself for messages that
 * are about the key rather than its value. */
static const struct pc_node *find_key(const struct pc_node *map, const char *key,
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
static const char *find(const char *s, size_t len, const char *needle)
{
  size_t nlen = strlen(needle);
  for (size_t i = 0; i + nlen <= len; i++)
    if (s[i] == needle[0] && memcmp(s + i, needle, nlen) == 0)
      return s + i;
  return NULL;
}

static bool has_expr_marker(const struct pc_node *n)
{
  return n->kind == PC_NODE_SCALAR && find(n->str, n->len, "${{") != NULL;
}

/* ----------------------------------------------------------- typed values */

static bool get_bool(struct pc_load_ctx *c, const char *what, const struct pc_node *n, bool *out)
{
  if (n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) == PC_SCALAR_BOOL) {
    *out = n->str[0] == 't' || n->str[0] == 'T';
    return true;
  }
  pc_load_error(c, n, "%s: expected true or false, got %s", what, describe(n).s);
  return false;
}

/* Parses a core-schema integer (decimal, 0x, 0o); false on overflow. */
static bool parse_int(const struct pc_node *n, long long *out)
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

static bool get_int(struct pc_load_ctx *c, const char *what, const struct pc_node *n,
                    long long min, long long max, int *out)
{
  long long v;
  bool is_int = n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) == PC_SCALAR_INT;
  if (is_int && !parse_int(n, &v)) { /* beyond 64 bits: say what would do */
    pc_load_error(c, n, "%s: expected an integer from %lld to %lld, got %s", what, min, max,
                  describe(n).s);
    return false;
  }
  if (!is_int) {
    pc_load_error(c, n, "%s: expected an integer, got %s", what, describe(n).s);
    return false;
  }
  if (v < min || v > max) {
    pc_load_error(c, n, "%s: expected an integer from %lld to %lld, got %lld", what, min, max,
                  v);
    return false;
  }
  *out = (int)v;
  return true;
}

static bool get_number(struct pc_load_ctx *c, const char *what, const struct pc_node *n,
                       double *out)
{
  enum pc_scalar_type t = n->kind == PC_NODE_SCALAR ? pc_node_scalar_type(n) : PC_SCALAR_STR;
  if (n->kind != PC_NODE_SCALAR || (t != PC_SCALAR_INT && t != PC_SCALAR_FLOAT)) {
    pc_load_error(c, n, "%s: expected a number, got %s", what, describe(n).s);
    return false;
  }
  long long i;
  *out = t == PC_SCALAR_INT && parse_int(n, &i) ? (double)i : strtod(n->str, NULL);
  return true;
}

/* Any non-empty scalar, as text: `name: 2024` is a fine name. */
static char *get_text(struct pc_load_ctx *c, const char *what, const struct pc_node *n)
{
  if (n->kind != PC_NODE_SCALAR || pc_node_scalar_type(n) == PC_SCALAR_NULL) {
    pc_load_error(c, n, "%s: expected a string, got %s", what, describe(n).s);
    return NULL;
  }
  return pc_xstrndup(n->str, n->len);
}

static bool get_duration(struct pc_load_ctx *c, const char *what, const struct pc_node *n,
                         double *ms)
{
  const char *prefix = what ? what : "", *sep = what ? ": " : "";
  if (has_expr_marker(n)) {
    pc_load_error(c, n, "%s%sa duration must be written out here; ${{ }} is not allowed", prefix,
                  sep);
    return false;
  }
  enum pc_scalar_type t = n->kind == PC_NODE_SCALAR ? pc_node_scalar_type(n) : PC_SCALAR_NULL;
  if (n->kind != PC_NODE_SCALAR || t == PC_SCALAR_NULL || t == PC_SCALAR_BOOL ||
      pc_parse_duration(n->str, ms) < 0) {
    pc_load_error(c, n, "%s%sexpected a duration like \"5s\", got %s", prefix, sep,
                  describe(n).s);
    return false;
  }
  return true;
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
  return get_duration(c, NULL, n, ms) ? 0 : -1;
}

int pc_load_check_keys(struct pc_load_ctx *c, const struct pc_node *map,
                       const char *const *allowed, size_t nallowed, const char *what)
{
  if (map == NULL || map->kind != PC_NODE_MAP) {
    pc_load_error(c, map, "%s: expected a map, got %s", what, describe(map).s);
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

/* -------------------------------------------------------------- templates */

static void expr_free(struct pc_expr *e)
{
  if (e == NULL)
    return;
  free(e->src);
  free(e);
}

/* Registers a new expression, or reports (once) that the file has too many
 * and returns NULL. */
static struct pc_expr *expr_new(struct pc_load_ctx *c, const char *src, size_t len, int line,
                                int col)
{
  if (c->wf->nexprs >= PC_MAX_EXPRS) {
    if (!c->exprs_full)
      error_pos(c, line, col, "too many expressions: a workflow holds at most %d ${{ }} and "
                "bare expressions", PC_MAX_EXPRS);
    c->exprs_full = true;
    return NULL;
  }
  struct pc_expr *e = pc_xcalloc(1, sizeof *e);
  e->src = pc_xstrndup(src, len);
  e->file = c->file;
  e->line = line;
  e->col = col;
  e->ref = -2; /* LUA_NOREF; workflow.c stays free of Lua headers */
  /* wf->exprs has no capacity field: it always has room up to the next
   * power of two (at least 8) above nexprs, so it grows when nexprs reaches
   * one. pc_load_tmpl shrinking nexprs keeps that true. */
  struct pc_workflow *wf = c->wf;
  size_t n = wf->nexprs;
  if (n == 0 || (n >= 8 && (n & (n - 1)) == 0))
    wf->exprs = pc_xrealloc(wf->exprs, (n ? n * 2 : 8) * sizeof *wf->exprs);
  wf->exprs[wf->nexprs++] = e;
  return e;
}

static bool is_space(char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static void trim(const char **s, size_t *len)
{
  while (*len > 0 && is_space(**s))
    (*s)++, (*len)--;
  while (*len > 0 && is_space((*s)[*len - 1]))
    (*len)--;
}

void pc_tmpl_free(struct pc_tmpl *t)
{
  if (t == NULL)
    return;
  switch (t->kind) {
  case PC_T_STR:
    free(t->u.str.s);
    break;
  case PC_T_EXPR:
    expr_free(t->u.expr);
    break;
  case PC_T_INTERP:
    for (size_t i = 0; i < t->u.interp.n; i++) {
      free(t->u.interp.parts[i].lit);
      expr_free(t->u.interp.parts[i].expr);
    }
    free(t->u.interp.parts);
    break;
  case PC_T_SEQ:
  case PC_T_MAP:
    for (size_t i = 0; i < t->u.coll.n; i++) {
      if (t->u.coll.keys)
        free(t->u.coll.keys[i]);
      pc_tmpl_free(t->u.coll.items[i]);
    }
    free(t->u.coll.keys);
    free(t->u.coll.items);
    break;
  default:
    break;
  }
  free(t);
}

const struct pc_tmpl *pc_tmpl_get(const struct pc_tmpl *map, const char *key)
{
  if (map == NULL || map->kind != PC_T_MAP)
    return NULL;
  for (size_t i = 0; i < map->u.coll.n; i++)
    if (strcmp(map->u.coll.keys[i], key) == 0)
      return map->u.coll.items[i];
  return NULL;
}

const struct pc_tmpl *pc_tmpl_at(const struct pc_tmpl *coll, size_t i)
{
  if (coll == NULL || (coll->kind != PC_T_MAP && coll->kind != PC_T_SEQ) || i >= coll->u.coll.n)
    return NULL;
  return coll->u.coll.items[i];
}

static struct pc_tmpl *tmpl_new(enum pc_tmpl_kind kind, const struct pc_node *n)
{
  struct pc_tmpl *t = pc_xcalloc(1, sizeof *t);
  t->kind = kind;
  t->line = n->line;
  t->col = n->col;
  return t;
}

/* A scalar without ${{ }}: typed by the core schema unless quoted. */
static struct pc_tmpl *tmpl_const(const struct pc_node *n)
{
  enum pc_scalar_type type = pc_node_scalar_type(n);
  struct pc_tmpl *t;
  long long i;
  switch (type) {
  case PC_SCALAR_NULL:
    return tmpl_new(PC_T_NIL, n);
  case PC_SCALAR_BOOL:
    t = tmpl_new(PC_T_BOOL, n);
    t->u.b = n->str[0] == 't' || n->str[0] == 'T';
    return t;
  case PC_SCALAR_INT:
    if (parse_int(n, &i)) {
      t = tmpl_new(PC_T_INT, n);
      t->u.i = i;
      return t;
    }
    /* Too large for 64 bits: keep it as a (rounded) number, as JSON would. */
    t = tmpl_new(PC_T_NUM, n);
    t->u.num = strtod(n->str, NULL);
    return t;
  case PC_SCALAR_FLOAT: {
    t = tmpl_new(PC_T_NUM, n);
    const char *s = n->str;
    bool neg = s[0] == '-';
    const char *body = (s[0] == '-' || s[0] == '+') ? s + 1 : s;
    if (body[0] == '.' && (body[1] == 'i' || body[1] == 'I'))
      t->u.num = neg ? -INFINITY : INFINITY;
    else if (body[0] == '.' && (body[1] == 'n' || body[1] == 'N'))
      t->u.num = NAN;
    else
      t->u.num = strtod(s, NULL);
    return t;
  }
  case PC_SCALAR_STR:
    break;
  }
  t = tmpl_new(PC_T_STR, n);
  t->u.str.s = pc_xstrndup(n->str, n->len);
  t->u.str.len = n->len;
  return t;
}

static void add_part(struct pc_tmpl *t, size_t *cap, const char *lit, size_t len,
                     struct pc_expr *e)
{
  if (t->u.interp.n == *cap) {
    *cap = *cap ? *cap * 2 : 4;
    t->u.interp.parts = pc_xrealloc(t->u.interp.parts, *cap * sizeof *t->u.interp.parts);
  }
  struct pc_tmpl_part *p = &t->u.interp.parts[t->u.interp.n++];
  p->lit = lit ? pc_xstrndup(lit, len) : NULL;
  p->lit_len = lit ? len : 0;
  p->expr = e;
}

/* Splits a scalar at its ${{ }} markers. The first `}}` closes an
 * expression, even inside a Lua string literal: rare, and predictable. */
static struct pc_tmpl *tmpl_scalar(struct pc_load_ctx *c, const struct pc_node *n)
{
  const char *s = n->str;
  size_t len = n->len;
  if (find(s, len, "${{") == NULL)
    return tmpl_const(n);

  struct pc_tmpl *t = tmpl_new(PC_T_INTERP, n);
  t->has_expr = true;
  struct text_cursor cur = text_cursor(n);
  size_t cap = 0, pos = 0, nexpr = 0;
  bool ok = true, blank_lits = true;
  while (pos < len) {
    const char *open = find(s + pos, len - pos, "${{");
    size_t lit_end = open ? (size_t)(open - s) : len;
    if (lit_end > pos) {
      add_part(t, &cap, s + pos, lit_end - pos, NULL);
      for (size_t i = pos; i < lit_end; i++)
        blank_lits = blank_lits && is_space(s[i]);
    }
    if (open == NULL)
      break;
    int line, col;
    text_pos(&cur, lit_end, &line, &col);
    const char *close = find(open + 3, len - lit_end - 3, "}}");
    if (close == NULL) {
      error_pos(c, line, col, "unclosed ${{ (missing }})");
      ok = false;
      break;
    }
    const char *inner = open + 3;
    size_t inner_len = (size_t)(close - inner);
    trim(&inner, &inner_len);
    if (inner_len == 0) {
      error_pos(c, line, col, "empty ${{ }} expression");
      ok = false;
    } else {
      struct pc_expr *e = expr_new(c, inner, inner_len, line, col);
      if (e == NULL) {
        ok = false;
        break;
      }
      add_part(t, &cap, NULL, 0, e);
      nexpr++;
    }
    pos = (size_t)(close - s) + 2;
  }
  if (!ok) {
    pc_tmpl_free(t);
    return NULL;
  }
  if (nexpr == 1 && blank_lits) {
    /* Exactly one expression: the value keeps the expression's type. */
    struct pc_expr *e = NULL;
    for (size_t i = 0; i < t->u.interp.n; i++) {
      free(t->u.interp.parts[i].lit);
      if (t->u.interp.parts[i].expr)
        e = t->u.interp.parts[i].expr;
    }
    free(t->u.interp.parts);
    t->kind = PC_T_EXPR;
    t->u.expr = e;
  }
  return t;
}

static struct pc_tmpl *tmpl_build(struct pc_load_ctx *c, const struct pc_node *n, bool *ok)
{
  if (n->kind == PC_NODE_SCALAR) {
    struct pc_tmpl *t = tmpl_scalar(c, n);
    if (t == NULL)
      *ok = false;
    return t;
  }
  struct pc_tmpl *t = tmpl_new(n->kind == PC_NODE_MAP ? PC_T_MAP : PC_T_SEQ, n);
  t->u.coll.items = pc_xcalloc(n->n, sizeof *t->u.coll.items);
  if (n->kind == PC_NODE_MAP)
    t->u.coll.keys = pc_xcalloc(n->n, sizeof *t->u.coll.keys);
  t->u.coll.n = n->n;
  for (size_t i = 0; i < n->n; i++) {
    if (t->u.coll.keys)
      t->u.coll.keys[i] = pc_xstrndup(n->keys[i]->str, n->keys[i]->len);
    /* A failed item stays NULL; the whole template is dropped anyway. */
    t->u.coll.items[i] = tmpl_build(c, n->items[i], ok);
    if (t->u.coll.items[i] && t->u.coll.items[i]->has_expr)
      t->has_expr = true;
  }
  return t;
}

struct pc_tmpl *pc_load_tmpl(struct pc_load_ctx *c, const struct pc_node *n)
{
  if (n == NULL)
    return NULL;
  /* Every error in the value is reported before giving up on it. On
   * failure the expressions registered meanwhile are dropped from wf->exprs
   * again, since freeing the template frees them. */
  size_t nexprs = c->wf->nexprs;
  bool ok = true;
  struct pc_tmpl *t = tmpl_build(c, n, &ok);
  if (!ok) {
    pc_tmpl_free(t);
    c->wf->nexprs = nexprs;
    return NULL;
  }
  return t;
}

struct pc_expr *pc_load_bare_expr(struct pc_load_ctx *c, const struct pc_node *n)
{
  if (n == NULL || n->kind != PC_NODE_SCALAR) {
    pc_load_error(c, n, "expected an expression, got %s", describe(n).s);
    return NULL;
  }
  const char *s = n->str;
  size_t len = n->len;
  trim(&s, &len);
  struct text_cursor cur = text_cursor(n);
  int line, col;
  text_pos(&cur, (size_t)(s - n->str), &line, &col);
  if (len == 0) {
    pc_load_error(c, n, "expected an expression, got nothing");
    return NULL;
  }
  const char *open = find(s, len, "${{");
  if (open == NULL)
    return expr_new(c, s, len, line, col);
  text_pos(&cur, (size_t)(open - n->str), &line, &col);
  const char *close = find(open + 3, len - (size_t)(open - s) - 3, "}}");
  if (close == NULL) {
    error_pos(c, line, col, "unclosed ${{ (missing }})");
    return NULL;
  }
  if (open != s || close + 2 != s + len) {
    error_pos(c, line, col,
              "write the whole condition bare, or wrap all of it in one ${{ }}");
    return NULL;
  }
  const char *inner = s + 3;
  size_t inner_len = (size_t)(close - inner);
  trim(&inner, &inner_len);
  if (inner_len == 0) {
    error_pos(c, line, col, "empty ${{ }} expression");
    return NULL;
  }
  return expr_new(c, inner, inner_len, line, col);
}

/* ------------------------------------------------------------------ retry */

static void retry_init(struct pc_retry *r)
{
  *r = (struct pc_retry){
    .attempts = 1,
    .backoff_ms = 0,
    .factor = 2,
    .max_backoff_ms = 30000,
    .jitter = true,
  };
}

/* The codes array is the workflow's (see load_retry_on): a copy shares it. */
static void retry_copy(struct pc_retry *dst, const struct pc_retry *src)
{
  *dst = *src;
}

static void retry_free(struct pc_retry *r)
{
  r->codes = NULL;
  r->ncodes = 0;
}

static void load_retry_on(struct pc_load_ctx *c, const struct pc_node *v, struct pc_retry *r)
{
  /* `on` replaces the inherited list as a whole: it is one key. */
  retry_free(r);
  r->on = 0;
  r->on_set = true;
  size_t n = v->kind == PC_NODE_SEQ ? v->n : 1;
  if (v->kind == PC_NODE_MAP) {
    pc_load_error(c, v, "retry.on: expected a list of conditions, got a map");
    return;
  }
  /* Each code is kept once (there are at most 500), in an array the
   * workflow owns: every leaf step that inherits defaults.retry shares it,
   * where a copy per step made a hostile list of 60 000 codes over 40 000
   * steps cost gigabytes. */
  bool seen[600] = {false};
  struct pc_workflow *wf = c->wf;
  int *codes = NULL;
  for (size_t i = 0; i < n; i++) {
    const struct pc_node *it = v->kind == PC_NODE_SEQ ? v->items[i] : v;
    if (it->kind == PC_NODE_SCALAR && pc_node_scalar_type(it) == PC_SCALAR_INT) {
      int code;
      if (get_int(c, "retry.on", it, 100, 599, &code) && !seen[code]) {
        seen[code] = true;
        if (codes == NULL) {
          codes = pc_xcalloc(500, sizeof *codes);
          wf->retry_codes = pc_xrealloc(wf->retry_codes,
                                        (wf->nretry_codes + 1) * sizeof *wf->retry_codes);
          wf->retry_codes[wf->nretry_codes++] = codes;
          r->codes = codes;
        }
        codes[r->ncodes++] = code;
      }
      continue;
    }
    size_t nwords = PC_ARRAY_SIZE(retry_on_words), j = nwords;
    if (it->kind == PC_NODE_SCALAR)
      for (j = 0; j < nwords; j++)
        if (strcmp(it->str, retry_on_words[j]) == 0)
          break;
    if (j < nwords) {
      r->on |= retry_on_flags[j];
      continue;
    }
    const char *hint =
        it->kind == PC_NODE_SCALAR ? pc_did_you_mean(it->str, retry_on_words, nwords) : NULL;
    if (hint)
      pc_load_error(c, it, "retry.on: unknown condition %s; did you mean \"%s\"?",
                    describe(it).s, hint);
    else
      pc_load_error(c, it,
                    "retry.on: expected network, timeout, 5xx, 4xx, expect, error or a "
                    "status code, got %s",
                    describe(it).s);
  }
}

/* A step that sends a request that is not idempotent is retried without
 * retry.unsafe only after failures that sent nothing (connection refused,
 * DNS, TLS handshake, connect timeout; see the engine's should_retry): a
 * failure that comes with a response never qualifies. Warns about each
 * condition of retry.on (the step's, or defaults.retry's) that therefore
 * can never apply. `retry` is the step's own retry node, or NULL. */
static void warn_unsafe_retry(struct loader *L, const struct pc_step *st,
                              const struct pc_node *retry)
{
  const struct pc_retry *r = &st->retry;
  if (!st->unsafe_method || r->unsafe || r->attempts < 2 || !r->on_set)
    return;
  const struct pc_node *on = retry && retry->kind == PC_NODE_MAP ? pc_node_get(retry, "on") : NULL;
  bool from_defaults = false;
  if (!on && L->default_retry_node && L->default_retry_node->kind == PC_NODE_MAP) {
    on = pc_node_get(L->default_retry_node, "on");
    from_defaults = true;
  }
  if (!on || on->kind != PC_NODE_SEQ)
    return;
  for (size_t i = 0; i < on->n; i++) {
    const struct pc_node *it = on->items[i];
    if (it->kind != PC_NODE_SCALAR || strcmp(it->str, "network") == 0 ||
        strcmp(it->str, "timeout") == 0 || strcmp(it->str, "error") == 0)
      continue;
    char *where = from_defaults ? pc_asprintf(" (from defaults.retry, for the step at line %d)",
                                              st->line)
                                : pc_xstrdup("");
    pc_load_warn(&L->c, it,
                 "retry.on: %s can never apply%s: %s is not idempotent, so without "
                 "retry.unsafe: true it is retried only after failures that sent nothing "
                 "(network, timeout); add unsafe: true if sending it twice is harmless",
                 it->str, where, st->unsafe_method);
    free(where);
  }
}

/* Applies the keys present in `n` over `r`: a step's retry refines
 * defaults.retry key by key instead of replacing it. */
static void load_retry(struct pc_load_ctx *c, const struct pc_node *n, struct pc_retry *r)
{
  if (pc_load_check_keys(c, n, retry_keys, PC_ARRAY_SIZE(retry_keys), "retry") < 0)
    return;
  const struct pc_node *v;
  if ((v = pc_node_get(n, "attempts")))
    get_int(c, "retry.attempts", v, 1, 1000000, &r->attempts);
  if ((v = pc_node_get(n, "backoff")))
    get_duration(c, "retry.backoff", v, &r->backoff_ms);
  if ((v = pc_node_get(n, "max_backoff")))
    get_duration(c, "retry.max_backoff", v, &r->max_backoff_ms);
  if ((v = pc_node_get(n, "factor"))) {
    double f;
    if (get_number(c, "retry.factor", v, &f)) {
      if (!(f >= 1 && isfinite(f)))
        pc_load_error(c, v, "retry.factor: expected a number >= 1, got %s", describe(v).s);
      else
        r->factor = f;
    }
  }
  if ((v = pc_node_get(n, "jitter")))
    get_bool(c, "retry.jitter", v, &r->jitter);
  if ((v = pc_node_get(n, "unsafe")))
    get_bool(c, "retry.unsafe", v, &r->unsafe);
  if ((v = pc_node_get(n, "on")))
    load_retry_on(c, v, r);
}

/* ----------------------------------------------------------------- expect */

static void add_status(struct pc_expect *e, int lo, int hi)
{
  e->status = pc_xrealloc(e->status, (e->nstatus + 1) * sizeof *e->status);
  e->status[e->nstatus++] = (struct pc_status_range){lo, hi};
}

static void load_status_item(struct pc_load_ctx *c, const struct pc_node *it, struct pc_expect *e)
{
  if (it->kind == PC_NODE_SCALAR && pc_node_scalar_type(it) == PC_SCALAR_INT) {
    int code;
    if (get_int(c, "expect.status", it, 100, 599, &code))
      add_status(e, code, code);
    return;
  }
  if (it->kind == PC_NODE_SCALAR && it->len == 3 && it->str[0] >= '1' && it->str[0] <= '5' &&
      (it->str[1] == 'x' || it->str[1] == 'X') && (it->str[2] == 'x' || it->str[2] == 'X')) {
    int base = (it->str[0] - '0') * 100;
    add_status(e, base, base + 99);
    return;
  }
  pc_load_error(c, it, "expect.status: expected a status code or a class like \"2xx\", got %s",
                describe(it).s);
}

static void load_expect(struct pc_load_ctx *c, const struct pc_node *n, struct pc_expect *e)
{
  if (pc_load_check_keys(c, n, expect_keys, PC_ARRAY_SIZE(expect_keys), "expect") < 0)
    return;
  const struct pc_node *v;
  if ((v = pc_node_get(n, "status"))) {
    if (v->kind == PC_NODE_SEQ) {
      if (v->n == 0)
        pc_load_error(c, v, "expect.status: the list is empty");
      for (size_t i = 0; i < v->n; i++)
        load_status_item(c, v->items[i], e);
    } else {
      load_status_item(c, v, e);
    }
  }
  if ((v = pc_node_get(n, "exit_code"))) {
    size_t cnt = v->kind == PC_NODE_SEQ ? v->n : 1;
    if (v->kind == PC_NODE_SEQ && v->n == 0)
      pc_load_error(c, v, "expect.exit_code: the list is empty");
    for (size_t i = 0; i < cnt; i++) {
      const struct pc_node *it = v->kind == PC_NODE_SEQ ? v->items[i] : v;
      int code;
      if (get_int(c, "expect.exit_code", it, 0, 255, &code)) {
        e->exit_codes = pc_xrealloc(e->exit_codes, (e->nexit_codes + 1) * sizeof *e->exit_codes);
        e->exit_codes[e->nexit_codes++] = code;
      }
    }
  }
  if ((v = pc_node_get(n, "that"))) {
    if (v->kind == PC_NODE_MAP) {
      pc_load_error(c, v, "expect.that: expected an expression or a list of them, got a map");
      return;
    }
    size_t cnt = v->kind == PC_NODE_SEQ ? v->n : 1;
    e->that = pc_xcalloc(cnt, sizeof *e->that);
    for (size_t i = 0; i < cnt; i++) {
      struct pc_expr *x = pc_load_bare_expr(c, v->kind == PC_NODE_SEQ ? v->items[i] : v);
      if (x)
        e->that[e->nthat++] = x;
    }
  }
}

/* ------------------------------------------------------------------ steps */

static void step_free(struct pc_step *st)
{
  if (st == NULL)
    return;
  free(st->id);
  free(st->name);
  expr_free(st->if_expr);
  pc_tmpl_free(st->for_each);
  free(st->pools);
  retry_free(&st->retry);
  free(st->expect.status);
  free(st->expect.exit_codes);
  for (size_t i = 0; i < st->expect.nthat; i++)
    expr_free(st->expect.that[i]);
  free(st->expect.that);
  for (size_t i = 0; i < st->noutputs; i++) {
    free(st->outputs[i].name);
    pc_tmpl_free(st->outputs[i].value);
  }
  free(st->outputs);
  pc_tmpl_free(st->with);
  free(st->uses);
  pc_tmpl_free(st->params);
  for (size_t i = 0; i < st->nasserts; i++)
    expr_free(st->asserts[i]);
  free(st->asserts);
  for (size_t i = 0; i < st->nchildren; i++)
    step_free(st->children[i]);
  free(st->children);
  free(st);
}

static void load_step_list(struct loader *L, const struct pc_node *n, const char *what,
                           struct pc_step ***out, size_t *nout);

static void load_id(struct loader *L, struct pc_step *st, const struct pc_node *v)
{
  struct pc_load_ctx *c = &L->c;
  if (v->kind != PC_NODE_SCALAR || pc_node_scalar_type(v) != PC_SCALAR_STR) {
    pc_load_error(c, v, "id: expected an identifier, got %s", describe(v).s);
    return;
  }
  bool valid = (v->str[0] >= 'a' && v->str[0] <= 'z') || v->str[0] == '_';
  for (size_t i = 1; valid && i < v->len; i++) {
    char ch = v->str[i];
    valid = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
  }
  if (!valid) {
    pc_load_error(c, v,
                  "id: %s is not a valid id (lower-case letters, digits and _, not starting "
                  "with a digit)",
                  describe(v).s);
    return;
  }
  st->id = pc_xstrndup(v->str, v->len);
  if (L->nids == L->ids_cap) {
    L->ids_cap = L->ids_cap ? L->ids_cap * 2 : 16;
    L->ids = pc_xrealloc(L->ids, L->ids_cap * sizeof *L->ids);
  }
  L->ids[L->nids++] = (struct id_use){st->id, v};
}

static int cmp_id_use(const void *pa, const void *pb)
{
  const struct id_use *a = pa, *b = pb;
  int c = strcmp(a->id, b->id);
  if (c == 0)
    c = a->at->line - b->at->line; /* the first occurrence sorts first */
  if (c == 0)
    c = a->at->col - b->at->col;
  return c;
}

/* Ids are unique in the whole file, finally included. Sorting (rather than
 * comparing each new id with all earlier ones) keeps a hostile file with a
 * huge number of steps from taking quadratic time. */
static void check_duplicate_ids(struct loader *L)
{
  if (L->nids < 2)
    return;
  qsort(L->ids, L->nids, sizeof *L->ids, cmp_id_use);
  for (size_t i = 1, first = 0; i < L->nids; i++) {
    if (strcmp(L->ids[i].id, L->ids[first].id) != 0) {
      first = i;
      continue;
    }
    pc_load_error(&L->c, L->ids[i].at, "duplicate step id \"%s\" (first used at line %d)",
                  L->ids[i].id, L->ids[first].at->line);
  }
}

static int cmp_size(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

static int cmp_pool_ref(const void *a, const void *b)
{
  return strcmp(((const struct pool_ref *)a)->name, ((const struct pool_ref *)b)->name);
}

static void index_pools(struct loader *L)
{
  struct pc_workflow *wf = L->c.wf;
  L->pools_by_name = pc_xcalloc(wf->npools + 1, sizeof *L->pools_by_name);
  L->pool_names = pc_xcalloc(wf->npools + 1, sizeof *L->pool_names);
  for (size_t i = 0; i < wf->npools; i++) {
    L->pools_by_name[i] = (struct pool_ref){wf->pools[i].name, i};
    L->pool_names[i] = wf->pools[i].name;
  }
  qsort(L->pools_by_name, wf->npools, sizeof *L->pools_by_name, cmp_pool_ref);
}

/* The index in wf->pools of the pool called `name`, or -1. */
static long find_pool(const struct loader *L, const char *name)
{
  struct pool_ref key = {name, 0};
  const struct pool_ref *r = bsearch(&key, L->pools_by_name, L->c.wf->npools,
                                     sizeof *L->pools_by_name, cmp_pool_ref);
  return r ? (long)r->index : -1;
}

static void load_step_pools(struct loader *L, struct pc_step *st, const struct pc_node *v)
{
  struct pc_load_ctx *c = &L->c;
  struct pc_workflow *wf = c->wf;
  if (v->kind == PC_NODE_MAP) {
    pc_load_error(c, v, "pool: expected a pool name or a list of names, got a map");
    return;
  }
  if (L->pools_by_name == NULL)
    index_pools(L);
  size_t cnt = v->kind == PC_NODE_SEQ ? v->n : 1;
  st->pools = pc_xcalloc(cnt, sizeof *st->pools);
  for (size_t i = 0; i < cnt; i++) {
    const struct pc_node *it = v->kind == PC_NODE_SEQ ? v->items[i] : v;
    if (it->kind != PC_NODE_SCALAR || pc_node_scalar_type(it) == PC_SCALAR_NULL) {
      pc_load_error(c, it, "pool: expected a pool name, got %s", describe(it).s);
      continue;
    }
    long j = find_pool(L, it->str);
    if (j >= 0) {
      st->pools[st->npools++] = (size_t)j;
      continue;
    }
    /* The hint compares with every pool: only while messages are kept. */
    const char *hint =
        pc_diag_full(c->d) ? NULL : pc_did_you_mean(it->str, L->pool_names, wf->npools);
    if (hint)
      pc_load_error(c, it, "unknown pool \"%s\"; did you mean \"%s\"?", it->str, hint);
    else if (wf->npools == 0)
      pc_load_error(c, it, "unknown pool \"%s\" (the workflow defines no pools)", it->str);
    else
      pc_load_error(c, it, "unknown pool \"%s\" (not defined under `pools`)", it->str);
  }
  /* Sorted and unique, so the engine can acquire permits in one global
   * order and never deadlock two steps that share pools. */
  qsort(st->pools, st->npools, sizeof *st->pools, cmp_size);
  size_t out = 0;
  for (size_t i = 0; i < st->npools; i++)
    if (out == 0 || st->pools[out - 1] != st->pools[i])
      st->pools[out++] = st->pools[i];
  st->npools = out;
}

static void load_outputs(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  if (v->kind != PC_NODE_MAP) {
    pc_load_error(c, v, "outputs: expected a map of NAME: value, got %s", describe(v).s);
    return;
  }
  st->outputs = pc_xcalloc(v->n, sizeof *st->outputs);
  for (size_t i = 0; i < v->n; i++) {
    struct pc_tmpl *t = pc_load_tmpl(c, v->items[i]);
    if (t == NULL)
      continue;
    st->outputs[st->noutputs].name = pc_xstrndup(v->keys[i]->str, v->keys[i]->len);
    st->outputs[st->noutputs].value = t;
    st->noutputs++;
  }
}

static void load_asserts(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  if (v->kind == PC_NODE_MAP) {
    pc_load_error(c, v, "assert: expected an expression or a list of them, got a map");
    return;
  }
  if (v->kind == PC_NODE_SEQ && v->n == 0) {
    pc_load_error(c, v, "assert: the list is empty");
    return;
  }
  size_t cnt = v->kind == PC_NODE_SEQ ? v->n : 1;
  st->asserts = pc_xcalloc(cnt, sizeof *st->asserts);
  for (size_t i = 0; i < cnt; i++) {
    struct pc_expr *e = pc_load_bare_expr(c, v->kind == PC_NODE_SEQ ? v->items[i] : v);
    if (e)
      st->asserts[st->nasserts++] = e;
  }
}

/* Loads the action value: groups recurse, assert is handled here, every
 * other action validates its own value through the action table. */
static void load_action(struct loader *L, struct pc_step *st, const struct pc_node *stepmap,
                        const struct pc_node *key, const struct pc_node *v)
{
  struct pc_load_ctx *c = &L->c;
  for (size_t i = 0; i < PC_ARRAY_SIZE(actions); i++)
    if (strcmp(actions[i].key, key->str) == 0)
      st->action = actions[i].action;
  switch (st->action) {
  case PC_ACT_ASSERT:
    load_asserts(c, st, v);
    return;
  case PC_ACT_STEPS:
  case PC_ACT_GATHER:
    load_step_list(L, v, key->str, &st->children, &st->nchildren);
    return;
  case PC_ACT_USES: {
    if (v->kind != PC_NODE_SCALAR || pc_node_scalar_type(v) != PC_SCALAR_STR || v->len == 0) {
      pc_load_error(c, v, "uses: expected a plugin name, got %s", describe(v).s);
      return;
    }
    if (pc_load_no_nul(c, v, "uses: the plugin name", "a file name") != 0)
      return;
    st->uses = pc_xstrndup(v->str, v->len);
    const struct pc_node *with = pc_node_get(stepmap, "with");
    if (with != NULL && with->kind != PC_NODE_MAP)
      pc_load_error(c, with, "with: expected a map of inputs, got %s", describe(with).s);
    else if (with != NULL)
      st->with = pc_load_tmpl(c, with);
    break;
  }
  default:
    break;
  }
  const struct pc_action_ops *ops = pc_action_find(key->str);
  if (ops == NULL) {
    pc_load_error(c, key, "the `%s` action is not available in this build", key->str);
    return;
  }
  if (ops->load != NULL)
    ops->load(c, st, v);
}

static bool applies_to_fanout(struct pc_load_ctx *c, const struct pc_node *key, bool fanout)
{
  if (!fanout)
    pc_load_error(c, key, "%s applies to gather or for_each", key->str);
  return fanout;
}

static struct pc_step *load_step(struct loader *L, const struct pc_node *n, int index)
{
  struct pc_load_ctx *c = &L->c;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "a step must be a map with one action (e.g. `log: hello`), got %s",
                  describe(n).s);
    return NULL;
  }
  struct pc_step *st = pc_xcalloc(1, sizeof *st);
  st->file = c->file;
  st->node = n;
  st->line = n->line;
  st->col = n->col;
  st->index = index;
  st->timeout_ms = -1;
  st->fail_fast = true;
  retry_init(&st->retry);
  pc_load_check_keys(c, n, step_keys, PC_ARRAY_SIZE(step_keys), "step");

  const struct pc_node *act_key = NULL, *act_val = NULL;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i];
    for (size_t j = 0; j < PC_ARRAY_SIZE(actions); j++) {
      if (strcmp(k->str, actions[j].key) != 0)
        continue;
      if (act_key == NULL) {
        act_key = k;
        act_val = n->items[i];
      } else {
        pc_load_error(c, k, "a step has exactly one action, this one has `%s` and `%s`",
                      act_key->str, k->str);
      }
    }
  }
  if (act_key == NULL)
    pc_load_error(c, n, "step has no action (one of: " ACTION_LIST ")");
  else
    load_action(L, st, n, act_key, act_val);
  bool group = pc_step_is_group(st);

  const struct pc_node *k = NULL, *v;
  if ((v = pc_node_get(n, "id")))
    load_id(L, st, v);
  if ((v = pc_node_get(n, "name")))
    st->name = get_text(c, "name", v);
  if ((v = pc_node_get(n, "if")))
    st->if_expr = pc_load_bare_expr(c, v);
  if ((v = pc_node_get(n, "for_each"))) {
    size_t nexprs = c->wf->nexprs;
    struct pc_tmpl *t = pc_load_tmpl(c, v);
    if (t && t->kind != PC_T_SEQ && t->kind != PC_T_EXPR) {
      pc_load_error(c, v, "for_each: expected a list or one ${{ }} expression, got %s",
                    describe(v).s);
      pc_tmpl_free(t); /* and unlist its expressions, as pc_load_tmpl does */
      c->wf->nexprs = nexprs;
      t = NULL;
    }
    st->for_each = t;
  }
  bool fanout = st->action == PC_ACT_GATHER || pc_node_get(n, "for_each") != NULL;
  if ((v = find_key(n, "concurrency", &k)) && applies_to_fanout(c, k, fanout))
    get_int(c, "concurrency", v, 1, 1000000, &st->concurrency);
  if ((v = find_key(n, "fail_fast", &k)) && applies_to_fanout(c, k, fanout))
    get_bool(c, "fail_fast", v, &st->fail_fast);
  if ((v = pc_node_get(n, "pool")))
    load_step_pools(L, st, v);
  bool has_timeout = false;
  if ((v = pc_node_get(n, "timeout")))
    has_timeout = get_duration(c, "timeout", v, &st->timeout_ms);
  bool has_retry = false;
  const struct pc_node *retry_node = NULL;
  if ((v = find_key(n, "retry", &k))) {
    retry_node = v;
    if (group) {
      pc_load_error(c, k, "retry applies to single steps; put it on the steps inside");
    } else {
      retry_copy(&st->retry, &L->default_retry);
      load_retry(c, v, &st->retry);
      has_retry = true;
    }
  }
  if ((v = pc_node_get(n, "continue_on_error")))
    get_bool(c, "continue_on_error", v, &st->continue_on_error);
  if ((v = pc_node_get(n, "expect"))) {
    load_expect(c, v, &st->expect);
    /* Status and exit code only exist for some actions; a typo'd intention
     * ("expect.status" on a shell step) should not pass silently. */
    const struct pc_action_ops *ops = group ? NULL : pc_action_ops(st->action);
    const struct pc_node *sk = NULL, *ek = NULL;
    find_key(v, "status", &sk);
    find_key(v, "exit_code", &ek);
    if (sk && (group || (ops && !ops->has_status)))
      pc_load_error(c, sk, "expect.status does not apply to `%s` steps",
                    pc_action_name(st->action));
    if (ek && (group || (ops && !ops->has_exit_code)))
      pc_load_error(c, ek, "expect.exit_code does not apply to `%s` steps",
                    pc_action_name(st->action));
  }
  if ((v = pc_node_get(n, "outputs")))
    load_outputs(c, st, v);
  if (find_key(n, "with", &k) && st->action != PC_ACT_USES && act_key != NULL)
    pc_load_error(c, k, "`with` applies only to `uses` steps");

  /* Defaults fill in leaf steps only: a group's timeout bounds the whole
   * group, and retrying a group is not a thing. */
  if (!group) {
    if (!has_timeout)
      st->timeout_ms = L->default_timeout_ms;
    if (!has_retry)
      retry_copy(&st->retry, &L->default_retry);
    warn_unsafe_retry(L, st, retry_node);
  }
  return st;
}

static void load_step_list(struct loader *L, const struct pc_node *n, const char *what,
                           struct pc_step ***out, size_t *nout)
{
  struct pc_load_ctx *c = &L->c;
  if (n->kind != PC_NODE_SEQ) {
    pc_load_error(c, n, "%s: expected a list of steps, got %s", what, describe(n).s);
    return;
  }
  if (n->n == 0) {
    pc_load_error(c, n, "%s: the list of steps is empty", what);
    return;
  }
  *out = pc_xcalloc(n->n, sizeof **out);
  for (size_t i = 0; i < n->n; i++) {
    struct pc_step *st = load_step(L, n->items[i], (int)i + 1);
    if (st)
      (*out)[(*nout)++] = st;
  }
}

/* ------------------------------------------------------- workflow sections */

static void load_pools(struct pc_load_ctx *c, const struct pc_node *n)
{
  struct pc_workflow *wf = c->wf;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "pools: expected a map of pool names, got %s", describe(n).s);
    return;
  }
  wf->pools = pc_xcalloc(n->n, sizeof *wf->pools);
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    struct pc_pool_def *p = &wf->pools[wf->npools++];
    p->name = pc_xstrndup(k->str, k->len);
    p->line = k->line;
    p->col = k->col;
    p->burst = 1;
    char *what = pc_asprintf("pool \"%s\"", p->name);
    int unknown = pc_load_check_keys(c, v, pool_keys, PC_ARRAY_SIZE(pool_keys), what);
    if (unknown >= 0) {
      const struct pc_node *x, *rate_v = pc_node_get(v, "rate"), *burst_k = NULL;
      if ((x = pc_node_get(v, "concurrency")))
        get_int(c, "concurrency", x, 1, 1000000, &p->concurrency);
      if (rate_v != NULL && (rate_v->kind != PC_NODE_SCALAR ||
                             pc_parse_rate(rate_v->str, &p->rate) < 0))
        pc_load_error(c, rate_v,
                      "rate: expected a rate like \"10/s\", \"30/min\" or \"100/h\", got %s",
                      describe(rate_v).s);
      if ((x = find_key(v, "burst", &burst_k))) {
        if (rate_v == NULL)
          pc_load_error(c, burst_k, "burst applies only with rate");
        else
          get_int(c, "burst", x, 1, 1000000, &p->burst);
      }
      /* With a misspelt key the real problem has been reported already. */
      if (pc_node_get(v, "concurrency") == NULL && rate_v == NULL && unknown == 0)
        pc_load_error(c, v, "%s limits nothing: set concurrency, rate or both", what);
    }
    free(what);
  }
}

static void load_defaults(struct loader *L, const struct pc_node *n)
{
  struct pc_load_ctx *c = &L->c;
  if (pc_load_check_keys(c, n, defaults_keys, PC_ARRAY_SIZE(defaults_keys), "defaults") < 0)
    return;
  const struct pc_node *v;
  if ((v = pc_node_get(n, "timeout")))
    get_duration(c, "defaults.timeout", v, &L->default_timeout_ms);
  if ((v = pc_node_get(n, "retry"))) {
    load_retry(c, v, &L->default_retry);
    L->default_retry_node = v;
  }
  if ((v = pc_node_get(n, "http"))) {
    if (v->kind != PC_NODE_MAP)
      pc_load_error(c, v, "defaults.http: expected a map of http options, got %s",
                    describe(v).s);
    else if (pc_http_load_defaults(c, v) == 0)
      c->wf->http_defaults = pc_load_tmpl(c, v);
  }
}

/* "dir/hn-top.yml" -> "hn-top" */
static char *name_from_path(const char *path)
{
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  return pc_xstrndup(base, len);
}

static void load_root(struct loader *L, const struct pc_node *root)
{
  struct pc_load_ctx *c = &L->c;
  struct pc_workflow *wf = c->wf;
  if (root->kind != PC_NODE_MAP) {
    pc_load_error(c, root, "a workflow is a map (name, steps, ...), got %s", describe(root).s);
    return;
  }
  pc_load_check_keys(c, root, workflow_keys, PC_ARRAY_SIZE(workflow_keys), "workflow");
  const struct pc_node *v;
  if ((v = pc_node_get(root, "name")))
    wf->name = get_text(c, "name", v);
  if ((v = pc_node_get(root, "description")))
    wf->description = get_text(c, "description", v);
  if ((v = pc_node_get(root, "vars"))) {
    if (v->kind != PC_NODE_MAP)
      pc_load_error(c, v, "vars: expected a map of NAME: value, got %s", describe(v).s);
    else
      wf->vars = pc_load_tmpl(c, v);
    /* `token: ${{ env.TOKEN }}` with TOKEN unset declares the var, unset:
     * using it is the error, with default() as the way out. */
    for (size_t i = 0; wf->vars && i < wf->vars->u.coll.n; i++)
      wf->vars->u.coll.items[i]->nil_ok = true;
  }
  if ((v = pc_node_get(root, "timeout")))
    get_duration(c, "timeout", v, &wf->timeout_ms);
  /* Pools and defaults come first: steps refer to both. */
  if ((v = pc_node_get(root, "pools")))
    load_pools(c, v);
  if ((v = pc_node_get(root, "defaults")))
    load_defaults(L, v);
  if ((v = pc_node_get(root, "steps")))
    load_step_list(L, v, "steps", &wf->steps, &wf->nsteps);
  else
    pc_load_error(c, root, "the workflow has no `steps`");
  if ((v = pc_node_get(root, "finally")))
    load_step_list(L, v, "finally", &wf->finally, &wf->nfinally);
}

struct diag_ref {
  struct pc_diag_item item;
  size_t seq; /* order of addition: keeps the sort stable */
};

static int cmp_diag_ref(const void *pa, const void *pb)
{
  const struct diag_ref *a = pa, *b = pb;
  if (a->item.line != b->item.line)
    return a->item.line - b->item.line;
  if (a->item.col != b->item.col)
    return a->item.col - b->item.col;
  return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Sorts the items added by this load by position; messages at the same
 * position keep the order they were reported in. */
static void sort_diags(struct pc_diag *d, size_t from)
{
  size_t n = d->n - from;
  if (n < 2)
    return;
  struct diag_ref *refs = pc_xmalloc(n * sizeof *refs);
  for (size_t i = 0; i < n; i++)
    refs[i] = (struct diag_ref){d->items[from + i], i};
  qsort(refs, n, sizeof *refs, cmp_diag_ref);
  for (size_t i = 0; i < n; i++)
    d->items[from + i] = refs[i].item;
  free(refs);
}

/* Takes ownership of `root`. */
static int build(const char *file, struct pc_node *root, struct pc_workflow **out,
                 struct pc_diag *d)
{
  struct pc_workflow *wf = pc_xcalloc(1, sizeof *wf);
  wf->file = pc_xstrdup(file);
  wf->root = root;
  wf->timeout_ms = -1;
  struct loader L = {.c = {.wf = wf, .d = d, .file = wf->file}, .default_timeout_ms = -1};
  retry_init(&L.default_retry);
  size_t first_diag = d->n, first_count = pc_diag_count(d);

  load_root(&L, root);
  check_duplicate_ids(&L);
  if (wf->name == NULL)
    wf->name = name_from_path(file);

  retry_free(&L.default_retry);
  free(L.ids);
  free(L.pools_by_name);
  free(L.pool_names);
  sort_diags(d, first_diag);
  if (pc_diag_count(d) > first_count) {
    pc_workflow_free(wf);
    return -1;
  }
  *out = wf;
  return 0;
}

int pc_workflow_load(const char *path, struct pc_workflow **out, struct pc_diag *d)
{
  *out = NULL;
  struct pc_node *root;
  if (pc_yaml_load_file(path, NULL, &root, d) < 0)
    return -1;
  return build(path, root, out, d);
}

int pc_workflow_load_string(const char *name, const char *text, size_t len,
                            struct pc_workflow **out, struct pc_diag *d)
{
  *out = NULL;
  struct pc_node *root;
  if (pc_yaml_load_string(name, text, len, NULL, &root, d) < 0)
    return -1;
  return build(name, root, out, d);
}

void pc_workflow_free(struct pc_workflow *wf)
{
  if (wf == NULL)
    return;
  free(wf->file);
  free(wf->name);
  free(wf->description);
  pc_tmpl_free(wf->vars);
  pc_tmpl_free(wf->http_defaults);
  for (size_t i = 0; i < wf->npools; i++)
    free(wf->pools[i].name);
  free(wf->pools);
  for (size_t i = 0; i < wf->nsteps; i++)
    step_free(wf->steps[i]);
  free(wf->steps);
  for (size_t i = 0; i < wf->nfinally; i++)
    step_free(wf->finally[i]);
  free(wf->finally);
  for (size_t i = 0; i < wf->nretry_codes; i++)
    free(wf->retry_codes[i]);
  free(wf->retry_codes);
  /* The expressions themselves belong to templates and steps. */
  free(wf->exprs);
  pc_node_free(wf->root);
  free(wf);
}
