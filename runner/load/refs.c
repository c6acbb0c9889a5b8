/* refs.c: finds `steps.ID`, `vars.NAME` and `inputs.NAME` in expressions and checks that
 * the names exist (see refs.h for what is and is not checked).
 *
 * An expression is split into Lua tokens by a small scanner that knows what
 * can hide a name: strings (short and long), comments (short and long) and
 * numbers. A reference is the name `steps` or `vars` that is not itself a
 * field (no `.` or `:` before it), followed by `.NAME` or by `["NAME"]`.
 * The known names are sorted once and looked up by binary search, so a file
 * with 30 000 steps each referring to another stays linear-logarithmic; the
 * did-you-mean search, which compares with every name, runs only while the
 * diagnostics still keep messages. */
#include "load/refs.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "model/action.h"

enum tok_kind { T_NAME, T_STRING, T_OTHER, T_DOT, T_COLON, T_LBRACKET, T_RBRACKET, T_END };

struct tok {
  enum tok_kind kind;
  const char *s; /* T_NAME: the name; T_STRING: the contents (no escapes) */
  size_t len;
  bool plain;    /* T_STRING: no escape sequences, so s..len is the value */
};

struct scanner {
  const char *p, *end;
};

static bool is_name_start(char c)
{
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
  return is_name_start(c) || (c >= '0' && c <= '9');
}

/* At "[" or "[=...=[": the level of a long bracket, or -1 if it is not one. */
static int long_bracket_level(const char *p, const char *end)
{
  if (p >= end || *p != '[')
    return -1;
  int level = 0;
  for (p++; p < end && *p == '='; p++)
    level++;
  return p < end && *p == '[' ? level : -1;
}

/* Skips past the long bracket that opens at p with `level`; returns where
 * its contents start in *body and their length in *len. */
static const char *skip_long(const char *p, const char *end, int level, const char **body,
                             size_t *len)
{
  p += level + 2;
  *body = p;
  for (; p < end; p++) {
    if (*p != ']')
      continue;
    const char *q = p + 1;
    int n = 0;
    while (q < end && *q == '=')
      q++, n++;
    if (n == level && q < end && *q == ']') {
      *len = (size_t)(p - *body);
      return q + 1;
    }
  }
  *len = (size_t)(end - *body);
  return end;
}

static struct tok next_tok(struct scanner *sc)
{
  const char *p = sc->p, *end = sc->end;
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' ||
                       *p == '\v'))
      p++;
    if (p + 1 < end && p[0] == '-' && p[1] == '-') { /* a comment */
      int level = long_bracket_level(p + 2, end);
      if (level >= 0) {
        const char *body;
        size_t len;
        p = skip_long(p + 2, end, level, &body, &len);
      } else {
        while (p < end && *p != '\n')
          p++;
      }
      continue;
    }
    break;
  }
  struct tok t = {T_END, p, 0, false};
  if (p >= end) {
    sc->p = p;
    return t;
  }
  char c = *p;
  if (is_name_start(c)) {
    const char *s = p;
    while (p < end && is_name_char(*p))
      p++;
    t = (struct tok){T_NAME, s, (size_t)(p - s), false};
  } else if (c == '"' || c == '\'') {
    const char *s = ++p;
    bool plain = true;
    while (p < end && *p != c && *p != '\n') {
      if (*p == '\\') {
        plain = false;
        p++;
      }
      p++;
    }
    t = (struct tok){T_STRING, s, (size_t)((p < end ? p : end) - s), plain};
    if (p < end)
      p++;
  } else if (c == '[' && long_bracket_level(p, end) >= 0) {
    const char *body;
    size_t len;
    p = skip_long(p, end, long_bracket_level(p, end), &body, &len);
    /* A first newline right after the bracket is not part of the string. */
    if (len > 0 && *body == '\n')
      body++, len--;
    t = (struct tok){T_STRING, body, len, true};
  } else if ((c >= '0' && c <= '9') || (c == '.' && p + 1 < end && p[1] >= '0' && p[1] <= '9')) {
    /* A number, hex and exponents included: nothing in it is a name. */
    char prev = 0;
    while (p < end && (is_name_char(*p) || *p == '.' ||
                       ((*p == '+' || *p == '-') &&
                        (prev == 'e' || prev == 'E' || prev == 'p' || prev == 'P'))))
      prev = *p++;
    t.kind = T_OTHER;
  } else if (c == '.') {
    size_t n = 1;
    while (p + n < end && p[n] == '.' && n < 3)
      n++;
    p += n;
    t.kind = n == 1 ? T_DOT : T_OTHER; /* .. and ... are operators */
  } else if (c == ':') {
    p += p + 1 < end && p[1] == ':' ? 2 : 1;
    t.kind = T_COLON;
  } else if (c == '[') {
    p++;
    t.kind = T_LBRACKET;
  } else if (c == ']') {
    p++;
    t.kind = T_RBRACKET;
  } else {
    p++;
    t.kind = T_OTHER;
  }
  sc->p = p;
  return t;
}

static bool tok_is(const struct tok *t, const char *name)
{
  return t->kind == T_NAME && t->len == strlen(name) && memcmp(t->s, name, t->len) == 0;
}

/* ------------------------------------------------------------ name sets */

struct names {
  const char **v; /* sorted, unique; borrowed strings */
  size_t n, cap;
};

static void names_add(struct names *s, const char *name)
{
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 16;
    s->v = pc_xrealloc(s->v, s->cap * sizeof *s->v);
  }
  s->v[s->n++] = name;
}

static int cmp_name(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void names_sort(struct names *s)
{
  if (s->n < 2)
    return;
  qsort(s->v, s->n, sizeof *s->v, cmp_name);
  size_t out = 0;
  for (size_t i = 0; i < s->n; i++)
    if (out == 0 || strcmp(s->v[out - 1], s->v[i]) != 0)
      s->v[out++] = s->v[i];
  s->n = out;
}

static bool names_has(const struct names *s, const char *name)
{
  return s->n && bsearch(&name, s->v, s->n, sizeof *s->v, cmp_name) != NULL;
}

static void collect_ids(struct names *ids, struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (steps[i]->id)
      names_add(ids, steps[i]->id);
    collect_ids(ids, steps[i]->children, steps[i]->nchildren);
  }
}

/* ------------------------------------------------------------- checking */

struct checker {
  const struct pc_workflow *wf;
  struct pc_diag *d;
  struct names ids, vars, inputs;
  struct tok *toks; /* the tokens of the expression being checked */
  size_t ntoks_cap;
  int rc;
};

/* What a reference names: steps.ID, vars.NAME, inputs.NAME. */
enum ref_kind { REF_STEP, REF_VAR, REF_INPUT };

static const struct names *known_names(const struct checker *ck, enum ref_kind k)
{
  return k == REF_STEP ? &ck->ids : k == REF_VAR ? &ck->vars : &ck->inputs;
}

static void report(struct checker *ck, const struct pc_expr *e, enum ref_kind kind,
                   const char *name)
{
  ck->rc = -1;
  bool is_step = kind == REF_STEP;
  const struct names *known = known_names(ck, kind);
  if (kind == REF_INPUT) {
    const char *h = !pc_diag_full(ck->d) && known->n ? pc_did_you_mean(name, known->v, known->n)
                                                      : NULL;
    if (h)
      pc_diag_add(ck->d, e->file, e->line, e->col,
                  "unknown input \"%s\" in \"%s\"; did you mean inputs.%s?", name, e->src, h);
    else
      pc_diag_add(ck->d, e->file, e->line, e->col,
                  "unknown input \"%s\" in \"%s\": declare it under `inputs:`", name, e->src);
    return;
  }
  const char *hint = NULL;
  if (!pc_diag_full(ck->d) && known->n)
    hint = pc_did_you_mean(name, known->v, known->n);
  const char *what = is_step ? "step" : "var";
  const char *whole = is_step ? "steps" : "vars";
  if (hint)
    pc_diag_add(ck->d, e->file, e->line, e->col, "unknown %s \"%s\" in \"%s\"; did you mean %s.%s?",
                what, name, e->src, whole, hint);
  else if (is_step)
    pc_diag_add(ck->d, e->file, e->line, e->col,
                "unknown step \"%s\" in \"%s\": no step has the id \"%s\"", name, e->src, name);
  else
    pc_diag_add(ck->d, e->file, e->line, e->col,
                "unknown var \"%s\" in \"%s\": define it under `vars:` (null if it must come "
                "from --var) or pass --var %s=VALUE",
                name, e->src, name);
}

static void check_ref(struct checker *ck, const struct pc_expr *e, enum ref_kind kind,
                      const char *s, size_t len)
{
  char buf[256];
  if (len == 0 || len >= sizeof buf)
    return; /* no id or var is that long: the check that names it says so */
  memcpy(buf, s, len);
  buf[len] = '\0';
  if (!names_has(known_names(ck, kind), buf))
    report(ck, e, kind, buf);
}

/* The tokens of `src` into *toks (grown as needed, *cap its room), then
 * three T_END so that lookahead never runs off the end. Returns the number
 * of tokens up to and including the first T_END. */
static size_t tokenize(const char *src, struct tok **toks, size_t *cap)
{
  struct scanner sc = {src, src + strlen(src)};
  size_t n = 0;
  for (;;) {
    struct tok t = next_tok(&sc);
    if (n + 4 > *cap) { /* room for t and three T_END after it */
      *cap = *cap ? *cap * 2 : 64;
      *toks = pc_xrealloc(*toks, *cap * sizeof **toks);
    }
    (*toks)[n++] = t;
    if (t.kind == T_END)
      break;
  }
  for (size_t i = n; i < n + 3; i++)
    (*toks)[i] = (*toks)[n - 1];
  return n;
}

/* At v[i], the name `steps` or `vars` read as a global (not a field of
 * something else: result.steps): the NAME of `.NAME` or `["NAME"]` after
 * it, or NULL when it is used any other way (steps[x], pairs(steps)). */
static const struct tok *ref_name(const struct tok *v, size_t i)
{
  if (v[i + 1].kind == T_DOT && v[i + 2].kind == T_NAME)
    return &v[i + 2];
  if (v[i + 1].kind == T_LBRACKET && v[i + 2].kind == T_STRING && v[i + 2].plain &&
      v[i + 3].kind == T_RBRACKET)
    return &v[i + 2];
  return NULL;
}

static bool is_field(const struct tok *v, size_t i)
{
  return i > 0 && (v[i - 1].kind == T_DOT || v[i - 1].kind == T_COLON);
}

static void check_expr(struct checker *ck, const struct pc_expr *e)
{
  size_t n = tokenize(e->src, &ck->toks, &ck->ntoks_cap);
  const struct tok *v = ck->toks;
  /* A function in an expression may name a parameter or a local `steps`
   * or `vars`; such expressions are left alone rather than misread. */
  for (size_t i = 0; i < n; i++)
    if (tok_is(&v[i], "function"))
      return;
  for (size_t i = 0; i + 1 < n; i++) {
    bool is_step = tok_is(&v[i], "steps"), is_var = tok_is(&v[i], "vars");
    bool is_input = tok_is(&v[i], "inputs");
    if (!(is_step || is_var || is_input) || is_field(v, i))
      continue;
    const struct tok *name = ref_name(v, i);
    if (name)
      check_ref(ck, e, is_step ? REF_STEP : is_var ? REF_VAR : REF_INPUT, name->s, name->len);
  }
}

int pc_workflow_check_refs(const struct pc_workflow *wf, const char *const *extra_vars,
                           size_t nextra, struct pc_diag *d)
{
  struct checker ck = {.wf = wf, .d = d};
  collect_ids(&ck.ids, wf->steps, wf->nsteps);
  collect_ids(&ck.ids, wf->finally, wf->nfinally);
  names_sort(&ck.ids);
  if (wf->vars && wf->vars->kind == PC_T_MAP)
    for (size_t i = 0; i < wf->vars->u.coll.n; i++)
      names_add(&ck.vars, wf->vars->u.coll.keys[i]);
  for (size_t i = 0; i < nextra; i++)
    names_add(&ck.vars, extra_vars[i]);
  names_sort(&ck.vars);
  for (size_t i = 0; i < wf->ninputs; i++)
    names_add(&ck.inputs, wf->inputs[i].name);
  names_sort(&ck.inputs);
  for (size_t i = 0; i < wf->nexprs; i++)
    check_expr(&ck, wf->exprs[i]);
  free(ck.ids.v);
  free(ck.vars.v);
  free(ck.inputs.v);
  free(ck.toks);
  return ck.rc;
}

/* ------------------------------------------------ who reads results */

struct readers {
  struct names ids; /* every ID an expression reads as steps.ID */
  char **owned;     /* the strings of ids (sorting drops duplicates from ids) */
  size_t nowned;
  bool wild;        /* something may read any step's results */
  struct tok *toks;
  size_t ntoks_cap;
};

/* Notes what one expression can read of `steps`: steps.ID and steps["ID"]
 * add ID; any other use (steps[x], steps passed to a function,
 * pairs(steps)) and any use of _ENV (_ENV["steps"]) could read anything.
 * String contents do not count: an expression cannot run text as code. */
static void note_readers(struct readers *rd, const struct pc_expr *e)
{
  size_t n = tokenize(e->src, &rd->toks, &rd->ntoks_cap);
  const struct tok *v = rd->toks;
  for (size_t i = 0; i + 1 < n && !rd->wild; i++) {
    if (tok_is(&v[i], "_ENV")) {
      rd->wild = true;
    } else if (tok_is(&v[i], "steps") && !is_field(v, i)) {
      const struct tok *name = ref_name(v, i);
      if (name) {
        char *id = pc_xstrndup(name->s, name->len);
        rd->owned = pc_xrealloc(rd->owned, (rd->nowned + 1) * sizeof *rd->owned);
        rd->owned[rd->nowned++] = id;
        names_add(&rd->ids, id);
      } else {
        rd->wild = true;
      }
    }
  }
}

static void mark_steps(const struct readers *rd, struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    struct pc_step *st = steps[i];
    st->results_read = st->id && (rd->wild || names_has(&rd->ids, st->id));
    mark_steps(rd, st->children, st->nchildren);
  }
}

/* Whether any of the steps (or their children) runs code that sees `steps`
 * whole (its action's reads_steps: lua, uses). */
static bool any_reads_steps(struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if ((steps[i]->ops && steps[i]->ops->reads_steps) ||
        any_reads_steps(steps[i]->children, steps[i]->nchildren))
      return true;
  return false;
}

void pc_workflow_mark_readers(struct pc_workflow *wf)
{
  struct readers rd = {0};
  /* Lua code (lua: steps, plugins) sees `steps` whole. */
  rd.wild = any_reads_steps(wf->steps, wf->nsteps) || any_reads_steps(wf->finally, wf->nfinally);
  for (size_t i = 0; i < wf->nexprs && !rd.wild; i++)
    note_readers(&rd, wf->exprs[i]);
  names_sort(&rd.ids);
  mark_steps(&rd, wf->steps, wf->nsteps);
  mark_steps(&rd, wf->finally, wf->nfinally);
  for (size_t i = 0; i < rd.nowned; i++)
    free(rd.owned[i]);
  free(rd.owned);
  free(rd.ids.v);
  free(rd.toks);
}

/* ------------------------------------------- who reads one step's result */

static bool expr_reads_id(const struct pc_expr *e, const char *id, struct tok **toks, size_t *cap)
{
  if (!e)
    return false;
  size_t n = tokenize(e->src, toks, cap);
  const struct tok *v = *toks;
  size_t idlen = strlen(id);
  for (size_t i = 0; i + 1 < n; i++) {
    if (tok_is(&v[i], "_ENV"))
      return true;
    if (!tok_is(&v[i], "steps") || is_field(v, i))
      continue;
    const struct tok *name = ref_name(v, i);
    if (!name || (name->len == idlen && memcmp(name->s, id, idlen) == 0))
      return true;
  }
  return false;
}

static bool tmpl_reads_id(const struct pc_tmpl *t, const char *id, struct tok **toks, size_t *cap)
{
  if (!t || !t->has_expr)
    return false;
  switch (t->kind) {
  case PC_T_EXPR:
    return expr_reads_id(t->u.expr, id, toks, cap);
  case PC_T_INTERP:
    for (size_t i = 0; i < t->u.interp.n; i++)
      if (expr_reads_id(t->u.interp.parts[i].expr, id, toks, cap))
        return true;
    return false;
  case PC_T_SEQ:
  case PC_T_MAP:
    for (size_t i = 0; i < t->u.coll.n; i++)
      if (tmpl_reads_id(t->u.coll.items[i], id, toks, cap))
        return true;
    return false;
  default:
    return false;
  }
}

static bool step_reads(const struct pc_step *st, const char *id, struct tok **toks, size_t *cap)
{
  if (expr_reads_id(st->if_expr, id, toks, cap) || expr_reads_id(st->shard_key, id, toks, cap) ||
      expr_reads_id(st->item_key, id, toks, cap) ||
      expr_reads_id(st->poll.until, id, toks, cap) ||
      expr_reads_id(st->poll.fail_if, id, toks, cap) ||
      tmpl_reads_id(st->for_each, id, toks, cap) || tmpl_reads_id(st->label, id, toks, cap) ||
      tmpl_reads_id(st->params, id, toks, cap) || tmpl_reads_id(st->with, id, toks, cap))
    return true;
  for (size_t i = 0; i < st->expect.nthat; i++)
    if (expr_reads_id(st->expect.that[i], id, toks, cap))
      return true;
  for (size_t i = 0; i < st->nasserts; i++)
    if (expr_reads_id(st->asserts[i], id, toks, cap))
      return true;
  for (size_t i = 0; i < st->noutputs; i++)
    if (tmpl_reads_id(st->outputs[i].value, id, toks, cap))
      return true;
  for (size_t i = 0; i < st->nchildren; i++)
    if (step_reads(st->children[i], id, toks, cap))
      return true;
  return false;
}

bool pc_step_reads_id(const struct pc_step *st, const char *id)
{
  struct tok *toks = NULL;
  size_t cap = 0;
  bool r = step_reads(st, id, &toks, &cap);
  free(toks);
  return r;
}
