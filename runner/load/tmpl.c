/* tmpl.c: templates and expressions. A value that may hold ${{ }} becomes
 * a template (struct pc_tmpl, model/workflow.h) shaped like the YAML value:
 * constants typed by the YAML core schema, single expressions that keep
 * their value's type, interpolations that make a string. `if`, `assert`
 * and `expect.that` take bare expressions. Every expression is listed in
 * wf->exprs (at most PC_MAX_EXPRS) with its position, down to the column
 * of its `${{` when the scalar maps onto one source line, so the Lua host
 * can compile them all at load time and point at syntax errors.
 *
 * Ownership: a template owns its expressions; wf->exprs only lists them. A
 * template that fails to build is dropped with its expressions unlisted
 * again. Nothing here compiles Lua (workflow.c's users stay free of Lua
 * headers): the Lua host does, in the compile pass of pc_load. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "load/loader.h"
#include "model/workflow.h"


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
/* -------------------------------------------------------------- templates */

void pc__expr_free(struct pc_expr *e)
{
  if (e == NULL)
    return;
  free(e->src);
  free(e);
}

/* Registers a new expression, or reports (once) that the file has too many
 * and returns NULL. */
static struct pc_expr *expr_new(struct pc_load_ctx *c, const struct pc_node *node,
                                bool brace_cut, const char *src, size_t len, int line, int col)
{
  if (c->wf->nexprs >= PC_MAX_EXPRS) {
    if (!c->exprs_full)
      pc__load_error_at(c, line, col,
                        "too many expressions: a workflow holds at most %d ${{ }} and bare "
                        "expressions", PC_MAX_EXPRS);
    c->exprs_full = true;
    return NULL;
  }
  struct pc_expr *e = pc_xcalloc(1, sizeof *e);
  e->src = pc_xstrndup(src, len);
  e->file = c->file;
  e->line = line;
  e->col = col;
  e->ref = -2; /* LUA_NOREF; workflow.c stays free of Lua headers */
  e->yaml_plain = node->style == PC_STYLE_PLAIN;
  e->brace_cut = brace_cut;
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
    pc__expr_free(t->u.expr);
    break;
  case PC_T_INTERP:
    for (size_t i = 0; i < t->u.interp.n; i++) {
      free(t->u.interp.parts[i].lit);
      pc__expr_free(t->u.interp.parts[i].expr);
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
    if (pc__parse_int(n, &i)) {
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

/* Whether the text of an expression ends inside a Lua string literal
 * ('...' or "..."), as it does when a "}}" in the string ended it. */
static bool ends_in_string(const char *s, size_t len)
{
  char q = 0;
  for (size_t i = 0; i < len; i++) {
    if (q && s[i] == '\\')
      i++;
    else if (q && s[i] == q)
      q = 0;
    else if (!q && (s[i] == '"' || s[i] == '\''))
      q = s[i];
  }
  return q != 0;
}

/* The trap of `${{ "}}" }}`: the marker closed inside a string and another
 * "}}" follows in the text (ending at `end`). */
static bool brace_cut(const char *inner, size_t inner_len, const char *close, const char *end)
{
  return ends_in_string(inner, inner_len) &&
         pc__find(close + 2, (size_t)(end - close) - 2, "}}") != NULL;
}

/* One ${{ }} marker: `open` points at a "${{" in text that ends at `end`.
 * Returns the "}}" that closes it, with the text between them, trimmed
 * (perhaps empty), in *inner; or reports an unclosed marker at line:col
 * and returns NULL. */
static const char *marker(struct pc_load_ctx *c, const struct pc_node *n, const char *open,
                          const char *end, int line, int col, const char **inner,
                          size_t *inner_len)
{
  const char *close = pc__find(open + 3, (size_t)(end - open) - 3, "}}");
  if (close == NULL) {
    if (n->style == PC_STYLE_PLAIN)
      /* The YAML trap: the value was cut at " #", which starts a comment
       * in a plain scalar (`log: ${{ #items }}`). */
      pc__load_error_at(c, line, col,
                        "unclosed ${{ (missing }}) (hint: YAML ends an unquoted value at "
                        "\" #\", which starts a comment; quote the whole value: '%.*s ...}}')",
                        (int)(end - open > 60 ? 60 : end - open), open);
    else
      pc__load_error_at(c, line, col, "unclosed ${{ (missing }})");
    return NULL;
  }
  *inner = open + 3;
  *inner_len = (size_t)(close - *inner);
  trim(inner, inner_len);
  return close;
}

/* Splits a scalar at its ${{ }} markers. The first `}}` closes an
 * expression, even inside a Lua string literal: rare, and predictable. */
static struct pc_tmpl *tmpl_scalar(struct pc_load_ctx *c, const struct pc_node *n)
{
  const char *s = n->str;
  size_t len = n->len;
  if (pc__find(s, len, "${{") == NULL)
    return tmpl_const(n);

  struct pc_tmpl *t = tmpl_new(PC_T_INTERP, n);
  t->has_expr = true;
  struct text_cursor cur = text_cursor(n);
  size_t cap = 0, pos = 0, nexpr = 0, inner_len;
  bool ok = true, blank_lits = true;
  while (pos < len) {
    const char *open = pc__find(s + pos, len - pos, "${{");
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
    const char *inner, *close = marker(c, n, open, s + len, line, col, &inner, &inner_len);
    if (close == NULL) {
      ok = false;
      break;
    }
    if (inner_len == 0) {
      pc__load_error_at(c, line, col, "empty ${{ }} expression");
      ok = false;
    } else {
      struct pc_expr *e = expr_new(c, n, brace_cut(inner, inner_len, close, s + len), inner,
                                   inner_len, line, col);
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
  if (n && n->kind == PC_NODE_MAP && n->n == 1 && n->keys[0]->kind == PC_NODE_SCALAR &&
      n->items[0]->kind == PC_NODE_SCALAR) {
    /* The YAML trap: in a flow sequence, `[a, x: y]`, ": " makes a map. */
    pc_load_error(c, n, "expected an expression, got a map (hint: YAML reads \": \" in an "
                  "unquoted value as a key; quote it: \"%.*s: %.*s\")",
                  (int)(n->keys[0]->len > 60 ? 60 : n->keys[0]->len), n->keys[0]->str,
                  (int)(n->items[0]->len > 60 ? 60 : n->items[0]->len), n->items[0]->str);
    return NULL;
  }
  if (n == NULL || n->kind != PC_NODE_SCALAR) {
    pc_load_error(c, n, "expected an expression, got %s", pc_node_describe(n).s);
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
  const char *open = pc__find(s, len, "${{");
  if (open == NULL)
    return expr_new(c, n, false, s, len, line, col);
  text_pos(&cur, (size_t)(open - n->str), &line, &col);
  const char *inner;
  size_t inner_len;
  const char *close = marker(c, n, open, s + len, line, col, &inner, &inner_len);
  if (close == NULL)
    return NULL;
  if (open != s || close + 2 != s + len) {
    pc__load_error_at(c, line, col,
                      "write the whole condition bare, or wrap all of it in one ${{ }}");
    return NULL;
  }
  if (inner_len == 0) {
    pc__load_error_at(c, line, col, "empty ${{ }} expression");
    return NULL;
  }
  return expr_new(c, n, brace_cut(inner, inner_len, close, s + len), inner, inner_len, line,
                  col);
}

