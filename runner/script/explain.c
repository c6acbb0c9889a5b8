/* explain.c: the values behind a failed condition (explain.h).
 *
 * The expression's text is split by a small Lua tokenizer that knows just
 * enough of the syntax to find the operators at the top level (outside
 * brackets, strings and comments): `or`, `and`, the comparisons, a leading
 * `not`, and a whole call `f(a, b)`. Lua's precedence puts `or` below
 * `and` below the comparisons, so splitting in that order follows the
 * parse. Each operand is compiled as its own chunk and evaluated in the
 * scope the condition ran in, through the same path as any expression
 * (pc__expr_call: the guard, proxies unwrapped), under one time budget for
 * the whole explanation, so a slow expression is not run many times over.
 * Expressions cannot write anything, so evaluating a part again is safe;
 * a part that calls now() or uuid() may show a newer value than the one
 * the condition saw. */
#include "script/explain.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/redact.h"
#include "script/internal.h"
#include "script/value.h"

/* A value is shown cut to this many bytes (after redaction). */
#define VALUE_MAX 200
/* At most this many operand lines per explanation. */
#define LINES_MAX 12
/* The whole explanation's evaluations run within this many milliseconds. */
#define BUDGET_MS 500.0
#define BUDGET_WHAT "explaining the condition took too long"

/* ------------------------------------------------------------ tokenizer */

enum tok { T_END, T_NAME, T_NUMBER, T_STRING, T_OPEN, T_CLOSE, T_CMP, T_COMMA, T_OTHER };

static bool is_name_start(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
  return is_name_start(c) || (c >= '0' && c <= '9');
}

/* If s[i] starts a long bracket `[==[`, its level (number of `=`), else -1. */
static int long_open(const char *s, size_t i, size_t end)
{
  if (s[i] != '[')
    return -1;
  size_t j = i + 1;
  while (j < end && s[j] == '=')
    j++;
  return j < end && s[j] == '[' ? (int)(j - i - 1) : -1;
}

/* The end of the long bracket of `level` opened at i (after its `]==]`). */
static size_t long_close(const char *s, size_t i, size_t end, int level)
{
  for (size_t j = i + (size_t)level + 2; j < end; j++) {
    if (s[j] != ']')
      continue;
    size_t k = j + 1;
    while (k < end && s[k] == '=')
      k++;
    if (k < end && s[k] == ']' && (int)(k - j - 1) == level)
      return k + 1;
  }
  return end;
}

/* The next token at or after *i, skipping blanks and comments: its kind,
 * with [*a, *i) its text. */
static enum tok next_tok(const char *s, size_t *i, size_t end, size_t *a)
{
  size_t p = *i;
  for (;;) {
    while (p < end && (s[p] == ' ' || s[p] == '\t' || s[p] == '\n' || s[p] == '\r'))
      p++;
    if (p + 1 < end && s[p] == '-' && s[p + 1] == '-') {
      int level = long_open(s, p + 2, end);
      if (level >= 0) {
        p = long_close(s, p + 2, end, level);
      } else {
        while (p < end && s[p] != '\n')
          p++;
      }
      continue;
    }
    break;
  }
  *a = p;
  if (p >= end) {
    *i = p;
    return T_END;
  }
  char c = s[p];
  enum tok k = T_OTHER;
  if (is_name_start(c)) {
    while (p < end && is_name_char(s[p]))
      p++;
    k = T_NAME;
  } else if ((c >= '0' && c <= '9') || (c == '.' && p + 1 < end && s[p + 1] >= '0' &&
                                         s[p + 1] <= '9')) {
    while (p < end) {
      char d = s[p];
      if ((d == 'e' || d == 'E' || d == 'p' || d == 'P') && p + 1 < end &&
          (s[p + 1] == '+' || s[p + 1] == '-'))
        p += 2;
      else if (is_name_char(d) || d == '.')
        p++;
      else
        break;
    }
    k = T_NUMBER;
  } else if (c == '"' || c == '\'') {
    p++;
    while (p < end && s[p] != c) {
      if (s[p] == '\\' && p + 1 < end)
        p++;
      p++;
    }
    if (p < end)
      p++;
    k = T_STRING;
  } else if (long_open(s, p, end) >= 0) {
    p = long_close(s, p, end, long_open(s, p, end));
    k = T_STRING;
  } else if (c == '(' || c == '[' || c == '{') {
    p++;
    k = T_OPEN;
  } else if (c == ')' || c == ']' || c == '}') {
    p++;
    k = T_CLOSE;
  } else if (c == ',') {
    p++;
    k = T_COMMA;
  } else if (c == '=' || c == '~' || c == '<' || c == '>') {
    char d = p + 1 < end ? s[p + 1] : '\0';
    if (d == '=') {
      p += 2;
      k = c == '=' || c == '~' || c == '<' || c == '>' ? T_CMP : T_OTHER;
    } else if ((c == '<' || c == '>') && d != c) {
      p++;
      k = T_CMP;
    } else {
      p += (c == '<' || c == '>') && d == c ? 2 : 1; /* shifts, ~ (xor), = */
    }
  } else {
    p++;
  }
  *i = p;
  return k;
}

static bool name_is(const char *s, size_t a, size_t b, const char *w)
{
  return b - a == strlen(w) && memcmp(s + a, w, b - a) == 0;
}

/* A part of the expression's text. */
struct span {
  size_t a, b;
};

/* Trims blanks (and comments) at both ends. */
static struct span trim(const char *s, struct span r)
{
  size_t i = r.a, a;
  if (next_tok(s, &i, r.b, &a) == T_END)
    return (struct span){a, a};
  r.a = a;
  while (r.b > r.a && (s[r.b - 1] == ' ' || s[r.b - 1] == '\t' || s[r.b - 1] == '\n' ||
                       s[r.b - 1] == '\r'))
    r.b--;
  return r;
}

/* Where the bracket opened by the token ending at i closes: the end of
 * its closing token, or r.b if it does not. */
static size_t matching_close(const char *s, size_t i, size_t end)
{
  int depth = 1;
  size_t a;
  for (;;) {
    enum tok k = next_tok(s, &i, end, &a);
    if (k == T_END)
      return end + 1;
    if (k == T_OPEN)
      depth++;
    else if (k == T_CLOSE && --depth == 0)
      return i;
  }
}

/* Removes brackets `( ... )` around the whole span. */
static struct span unwrap_parens(const char *s, struct span r)
{
  for (;;) {
    r = trim(s, r);
    size_t i = r.a, a;
    if (next_tok(s, &i, r.b, &a) != T_OPEN || s[a] != '(' || matching_close(s, i, r.b) != r.b)
      return r;
    r.a = i;
    r.b--;
  }
}

/* Splits r at the top-level tokens that `is_sep` accepts: up to `max`
 * pieces into out; returns their count (1 when there is no separator). */
static size_t split_top(const char *s, struct span r, bool (*is_sep)(const char *, enum tok,
                                                                     size_t, size_t),
                        struct span *out, size_t max)
{
  size_t n = 0, i = r.a, a, start = r.a;
  int depth = 0;
  for (;;) {
    enum tok k = next_tok(s, &i, r.b, &a);
    if (k == T_END)
      break;
    if (k == T_OPEN)
      depth++;
    else if (k == T_CLOSE)
      depth--;
    else if (depth == 0 && is_sep(s, k, a, i) && n + 1 < max) {
      out[n++] = (struct span){start, a};
      start = i;
    }
  }
  out[n++] = (struct span){start, r.b};
  return n;
}

static bool sep_or(const char *s, enum tok k, size_t a, size_t b)
{
  return k == T_NAME && name_is(s, a, b, "or");
}

static bool sep_and(const char *s, enum tok k, size_t a, size_t b)
{
  return k == T_NAME && name_is(s, a, b, "and");
}

static bool sep_cmp(const char *s, enum tok k, size_t a, size_t b)
{
  (void)s, (void)a, (void)b;
  return k == T_CMP;
}

static bool sep_comma(const char *s, enum tok k, size_t a, size_t b)
{
  (void)s, (void)a, (void)b;
  return k == T_COMMA;
}

/* Whether r is a literal, whose value its text already shows. */
static bool is_literal(const char *s, struct span r)
{
  r = unwrap_parens(s, r);
  size_t i = r.a, a;
  enum tok k = next_tok(s, &i, r.b, &a);
  if (k == T_OTHER && s[a] == '-')
    k = next_tok(s, &i, r.b, &a);
  bool lit = k == T_STRING || k == T_NUMBER ||
             (k == T_NAME && (name_is(s, a, i, "true") || name_is(s, a, i, "false") ||
                              name_is(s, a, i, "nil")));
  return lit && next_tok(s, &i, r.b, &a) == T_END;
}

/* Whether r is a call `name(...)` or `a.b.name(...)` as a whole: then
 * *args is the text between its brackets and *callee the last name. */
static bool whole_call(const char *s, struct span r, struct span *args, struct span *callee)
{
  size_t i = r.a, a;
  enum tok k = next_tok(s, &i, r.b, &a);
  if (k != T_NAME)
    return false;
  *callee = (struct span){a, i};
  for (;;) {
    k = next_tok(s, &i, r.b, &a);
    if (k == T_OTHER && s[a] == '.') {
      if (next_tok(s, &i, r.b, &a) != T_NAME)
        return false;
      *callee = (struct span){a, i};
      continue;
    }
    if (k == T_OPEN && s[a] == '(' && matching_close(s, i, r.b) == r.b) {
      *args = (struct span){i, r.b - 1};
      return true;
    }
    return false;
  }
}

/* ---------------------------------------------------------- explaining */

struct ctx {
  struct pc_lua *h;
  const char *src;
  int scope_ref;
  struct pc_buf *out;
  double deadline;   /* pc_mono_ms() */
  size_t lines;
  struct span shown[LINES_MAX];
};

/* The text of r for display: runs of blanks (a folded YAML line) as one
 * space. malloc'd. */
static char *display(const char *s, struct span r)
{
  char *t = pc_xmalloc(r.b - r.a + 1);
  size_t n = 0;
  for (size_t i = r.a; i < r.b; i++) {
    char c = s[i];
    bool blank = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    if (blank && n > 0 && t[n - 1] == ' ')
      continue;
    t[n++] = blank ? ' ' : c;
  }
  t[n] = '\0';
  return t;
}

/* The value on top of the stack as shown: JSON (nil and JSON null by
 * name), redacted, cut to VALUE_MAX bytes; popped. malloc'd. */
static char *format_value(struct ctx *c)
{
  lua_State *L = c->h->L;
  char *text = NULL;
  if (lua_isnil(L, -1)) {
    text = pc_xstrdup("nil");
  } else if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL) {
    text = pc_xstrdup("null");
  } else if (lua_type(L, -1) == LUA_TFUNCTION || lua_type(L, -1) == LUA_TUSERDATA ||
             lua_type(L, -1) == LUA_TTHREAD || lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
    text = pc_asprintf("(a %s)", luaL_typename(L, -1));
  } else {
    char *err = NULL;
    text = pc_lua_to_json(c->h, -1, &err);
    if (!text)
      text = pc_asprintf("(a %s that cannot be shown: %s)", luaL_typename(L, -1),
                         err ? err : "?");
    free(err);
  }
  lua_pop(L, 1);
  size_t n;
  bool more = false;
  char *red = pc_redact_head(text, strlen(text), VALUE_MAX, &n, &more);
  free(text);
  if (n > VALUE_MAX) {
    n = VALUE_MAX;
    while (n > 0 && ((unsigned char)red[n] & 0xC0) == 0x80) /* not inside a UTF-8 sequence */
      n--;
    more = true;
  }
  red[n] = '\0';
  if (more) {
    char *t = pc_asprintf("%s...", red);
    free(red);
    red = t;
  }
  return red;
}

/* Evaluates the part r: pushes its value and returns 0, or returns -1 with
 * *msg (malloc'd) when it cannot be compiled, fails, or the budget is
 * spent. */
static int eval_part(struct ctx *c, struct span r, char **msg)
{
  lua_State *L = c->h->L;
  double left = c->deadline - pc_mono_ms();
  if (left <= 0) {
    *msg = pc_xstrdup("not evaluated: " BUDGET_WHAT);
    return -1;
  }
  char *code = pc_asprintf("return (%.*s\n)", (int)(r.b - r.a), c->src + r.a);
  int rc = luaL_loadbufferx(L, code, strlen(code), "=", "t");
  free(code);
  if (rc != LUA_OK) {
    lua_pop(L, 1);
    *msg = NULL; /* not a part after all: say nothing */
    return -1;
  }
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  rc = pc__expr_call(c->h, ref, c->scope_ref, left, BUDGET_WHAT, msg);
  luaL_unref(L, LUA_REGISTRYINDEX, ref);
  return rc;
}

static bool already_shown(struct ctx *c, struct span r)
{
  for (size_t i = 0; i < c->lines; i++)
    if (c->shown[i].b - c->shown[i].a == r.b - r.a &&
        memcmp(c->src + c->shown[i].a, c->src + r.a, r.b - r.a) == 0)
      return true;
  return false;
}

/* The end of the longest proper prefix of the path r (`a.b[c].d`,
 * `f(x).y`) that ends before `end`: the start of its last top-level `.`,
 * `[`, `:` or `(`, or r.a when there is none. */
static size_t path_prefix(const char *s, struct span r, size_t end)
{
  size_t i = r.a, a, last = r.a;
  int depth = 0;
  for (;;) {
    enum tok k = next_tok(s, &i, end, &a);
    if (k == T_END)
      return last;
    if (depth == 0 && a > r.a &&
        ((k == T_OTHER && (s[a] == '.' || s[a] == ':')) || (k == T_OPEN && s[a] != '{')))
      last = a;
    if (k == T_OPEN)
      depth++;
    else if (k == T_CLOSE)
      depth--;
    else if (depth == 0 && k != T_NAME && !(k == T_OTHER && (s[a] == '.' || s[a] == ':')))
      return r.a; /* an operator: not a path */
  }
}

/* Appends "\n  PART = VALUE" for a part that is not a literal, then the
 * argument of `len(x)` or `#x` the same way. A path that fails to
 * evaluate (indexing nil) shows its longest prefix that does instead:
 * `steps.a.value.missing = nil` says more than the error does. */
static void show(struct ctx *c, struct span r)
{
  r = trim(c->src, r);
  if (r.a >= r.b || c->lines >= LINES_MAX || is_literal(c->src, r) || already_shown(c, r))
    return;
  char *msg = NULL;
  char *value = NULL;
  if (eval_part(c, r, &msg) == 0) {
    value = format_value(c);
  } else if (!msg) {
    return;
  } else {
    for (size_t end = path_prefix(c->src, r, r.b); end > r.a;
         end = path_prefix(c->src, r, end)) {
      char *m2 = NULL;
      struct span p = trim(c->src, (struct span){r.a, end});
      if (eval_part(c, p, &m2) == 0) {
        if (already_shown(c, p)) {
          lua_pop(c->h->L, 1);
        } else {
          free(msg);
          msg = NULL;
          value = format_value(c);
          r = p;
        }
        break;
      }
      free(m2);
    }
    if (!value && already_shown(c, r)) {
      free(msg);
      return;
    }
  }
  c->shown[c->lines++] = r;
  char *text = display(c->src, r);
  if (value)
    pc_buf_printf(c->out, "\n  %s = %s", text, value);
  else
    pc_buf_printf(c->out, "\n  %s: %s", text, msg);
  free(text);
  free(value);
  free(msg);
  /* len(x), #x: x too */
  struct span inner = unwrap_parens(c->src, r), args, callee;
  size_t i = inner.a, a;
  if (whole_call(c->src, inner, &args, &callee) && name_is(c->src, callee.a, callee.b, "len") &&
      callee.a == inner.a) {
    show(c, args);
  } else if (next_tok(c->src, &i, inner.b, &a) == T_OTHER && c->src[a] == '#') {
    show(c, (struct span){i, inner.b});
  }
}

/* Whether the part r is true (false when it fails or cannot run). */
static bool part_true(struct ctx *c, struct span r)
{
  char *msg = NULL;
  if (eval_part(c, r, &msg) != 0) {
    free(msg);
    return false;
  }
  lua_State *L = c->h->L;
  bool t = lua_toboolean(L, -1) &&
           !(lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL);
  lua_pop(L, 1);
  return t;
}

static void explain(struct ctx *c, struct span r, int depth)
{
  struct span parts[16];
  r = unwrap_parens(c->src, r);
  if (r.a >= r.b || depth > 8)
    return;
  size_t n = split_top(c->src, r, sep_or, parts, PC_ARRAY_SIZE(parts));
  if (n > 1) {
    for (size_t i = 0; i < n; i++) /* all of them are false */
      explain(c, parts[i], depth + 1);
    return;
  }
  n = split_top(c->src, r, sep_and, parts, PC_ARRAY_SIZE(parts));
  if (n > 1) {
    for (size_t i = 0; i < n; i++)
      if (!part_true(c, parts[i])) { /* the first that is not */
        explain(c, parts[i], depth + 1);
        return;
      }
    return;
  }
  n = split_top(c->src, r, sep_cmp, parts, 2);
  if (n > 1) {
    show(c, parts[0]);
    show(c, parts[1]);
    return;
  }
  size_t i = r.a, a;
  if (next_tok(c->src, &i, r.b, &a) == T_NAME && name_is(c->src, a, i, "not")) {
    explain(c, (struct span){i, r.b}, depth + 1);
    return;
  }
  struct span args, callee;
  if (whole_call(c->src, r, &args, &callee)) {
    n = split_top(c->src, args, sep_comma, parts, PC_ARRAY_SIZE(parts));
    for (size_t k = 0; k < n; k++)
      show(c, parts[k]);
    return;
  }
  show(c, r);
}

void pc_lua_explain(struct pc_lua *h, const struct pc_expr *e, int scope_ref, struct pc_buf *out)
{
  lua_State *L = h->L;
  int top = lua_gettop(L);
  struct ctx c = {.h = h, .src = e->src, .scope_ref = scope_ref, .out = out,
                  .deadline = pc_mono_ms() + BUDGET_MS};
  explain(&c, (struct span){0, strlen(e->src)}, 0);
  lua_settop(L, top);
}

char *pc_lua_explained(struct pc_lua *h, const char *msg, const struct pc_expr *e, int scope_ref)
{
  struct pc_buf b;
  pc_buf_init(&b, (size_t)64 << 10);
  pc_buf_puts(&b, msg);
  pc_lua_explain(h, e, scope_ref, &b);
  return pc_buf_steal(&b);
}
