/* params.c: the one load-time check of an action's value against its
 * parameter table (model/action.h, "parameter tables"): which form the
 * value takes (the short form or the map form), unknown keys (with "did
 * you mean"), required keys, each value's type, bounds and allowed values,
 * NUL bytes in text that becomes a C string, and no ${{ }} where a
 * parameter is static. Every message carries the position of the node it
 * is about. The wording comes from the table (label, expect, hint), so the
 * actions that moved onto it kept their messages word for word; what a
 * table cannot say stays in the action's own `load`, after this check.
 *
 * The same tables give the run-time check (script/params.c) and the JSON
 * Schema (load/schema.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "load/loader.h"
#include "model/action.h"
#include "script/params.h"

/* "a list", "an integer". */
static const char *article(const char *word)
{
  return strchr("aeiou", word[0]) ? "an" : "a";
}

/* "LABEL: expected EXPECT, got GOT[; HINT]", or for an item of a map or
 * a list (`item`: "the value of X-A", "entry 2") "LABEL: ITEM must be
 * EXPECT, got GOT"; returns -1. */
static int wrong(struct pc_load_ctx *c, const char *label, const char *item,
                 const struct pc_param *pm, const struct pc_node *n)
{
  struct pc_buf e;
  pc_buf_init(&e, 128);
  pc_param_expect(pm, &e);
  if (pm->type == PC_PARAM_ENUM && !pm->expect && pm->got != PC_GOT_TEXT && !item) {
    /* "exec.output: expected log, quiet or on_failure (did you mean quiet?)" */
    size_t na = 0;
    while (pm->allowed && pm->allowed[na])
      na++;
    const char *d = pc_did_you_mean(n->kind == PC_NODE_SCALAR ? n->str : "", pm->allowed, na);
    pc_load_error(c, n, "%s: expected %s%s%s%s", label, e.data, d ? " (did you mean " : "",
                  d ? d : "", d ? "?)" : "");
    pc_buf_free(&e);
    return -1;
  }
  char got[128];
  const char *kind = pc_node_kind_name(n);
  if (pm->got == PC_GOT_VALUE)
    snprintf(got, sizeof got, "%s", pc_node_describe(n).s);
  else if (pm->got == PC_GOT_KIND)
    snprintf(got, sizeof got, "%s %s", article(kind), kind);
  else if (pm->got == PC_GOT_TEXT && n->kind == PC_NODE_SCALAR)
    snprintf(got, sizeof got, "%s", n->str);
  else
    snprintf(got, sizeof got, "%s", kind);
  if (item)
    pc_load_error(c, n, "%s: %s must be %s, got %s%s%s", label, item, e.data, got,
                  pm->hint ? "; " : "", pm->hint ? pm->hint : "");
  else
    pc_load_error(c, n, "%s: expected %s, got %s%s%s", label, e.data, got, pm->hint ? "; " : "",
                  pm->hint ? pm->hint : "");
  pc_buf_free(&e);
  return -1;
}

static bool is_text(const struct pc_node *n)
{
  return n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) != PC_SCALAR_NULL;
}

/* A program and its arguments: at least one item, each text without NUL,
 * the first not empty. */
static int check_argv(struct pc_load_ctx *c, const char *label, const struct pc_node *n)
{
  if (n->n == 0) {
    pc_load_error(c, n, "%s: the argument list is empty; it needs at least the program", label);
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *it = n->items[i];
    if (!is_text(it)) {
      const char *kind = pc_node_kind_name(it);
      pc_load_error(c, it, "%s: argument %zu must be a string, got %s %s", label, i + 1,
                    article(kind), kind);
      bad = -1;
      continue;
    }
    char arg[160];
    snprintf(arg, sizeof arg, "%s: argument %zu", label, i + 1);
    bad |= pc_load_no_nul(c, it, arg, "a program argument");
  }
  const struct pc_node *first = n->items[0];
  if (first->kind == PC_NODE_SCALAR && pc_node_scalar_type(first) == PC_SCALAR_STR &&
      first->len == 0) {
    pc_load_error(c, first, "%s: the program name is empty", label);
    bad = -1;
  }
  return bad;
}

/* Environment variables: names without "=" (or NUL), text values. */
static int check_env(struct pc_load_ctx *c, const char *label, const struct pc_node *n)
{
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    if (k->len == 0 || strchr(k->str, '=') || strlen(k->str) != k->len) {
      pc_load_error(c, k, "%s: \"%s\" is not a valid variable name", label, k->str);
      bad = -1;
    }
    if (!is_text(v)) {
      const char *kind = pc_node_kind_name(v);
      pc_load_error(c, v, "%s: the value of %s must be a string, got %s %s", label, k->str,
                    article(kind), kind);
      bad = -1;
      continue;
    }
    char *what = pc_asprintf("%s: the value of %s", label, k->str);
    bad |= pc_load_no_nul(c, v, what, "an environment variable");
    free(what);
  }
  return bad;
}

/* A number written in the file (an integer or a float scalar). */
static bool node_number(const struct pc_node *n, double *out)
{
  enum pc_scalar_type st = pc_node_scalar_type(n);
  if (n->kind != PC_NODE_SCALAR || (st != PC_SCALAR_INT && st != PC_SCALAR_FLOAT))
    return false;
  char *end;
  *out = strtod(n->str, &end);
  return end != n->str && *end == '\0';
}

static bool in_range(const struct pc_param *pm, double v)
{
  return !(pm->max > pm->min) || (v >= pm->min && v <= pm->max);
}

/* Whether the node is of the param's kind (a map, a list, a scalar): a
 * union's (pm->alt) type is tried when the first's kind does not fit. */
static bool kind_fits(const struct pc_param *pm, const struct pc_node *n)
{
  switch (pm->type) {
  case PC_PARAM_ANY:
    return true;
  case PC_PARAM_MAP:
  case PC_PARAM_ENV:
    return n->kind == PC_NODE_MAP;
  case PC_PARAM_LIST:
  case PC_PARAM_ARGV:
    return n->kind == PC_NODE_SEQ;
  case PC_PARAM_EXPRS:
    return n->kind != PC_NODE_MAP;
  default:
    return n->kind == PC_NODE_SCALAR;
  }
}

static int check_node(struct pc_load_ctx *c, const char *label, const char *item,
                      const struct pc_param *pm, const struct pc_node *n,
                      const struct pc_tmpl *t);

/* A map's keys and values against `sub` (PC_PARAM_MAP). */
static int check_sub_map(struct pc_load_ctx *c, const char *label, const struct pc_params *sub,
                         const struct pc_node *n, const struct pc_tmpl *t)
{
  int bad = 0;
  if (sub->nkeys == 0) { /* any names, each value sub->value */
    for (size_t i = 0; sub->value && i < n->n; i++) {
      char *named = sub->item_labels ? pc_asprintf("%s.%s", label, n->keys[i]->str)
                                     : pc_asprintf("the value of %s", n->keys[i]->str);
      bad |= sub->item_labels
                 ? check_node(c, named, NULL, sub->value, n->items[i], pc_tmpl_at(t, i))
                 : check_node(c, label, named, sub->value, n->items[i], pc_tmpl_at(t, i));
      free(named);
    }
    return bad;
  }
  struct pc_buf names;
  pc_buf_init(&names, 1024);
  pc_params_key_list(sub, &names);
  if (sub->one_key && n->n == 0) {
    pc_load_error(c, n, "%s: expected a map with one of %s", label, names.data);
    pc_buf_free(&names);
    return -1;
  }
  if (sub->one_key && n->n > 1) {
    pc_load_error(c, n->keys[1], "%s: `%s` and `%s` both given; %s", label, n->keys[0]->str,
                  n->keys[1]->str, sub->one_why ? sub->one_why : "give one");
    pc_buf_free(&names);
    return -1;
  }
  for (size_t i = 0; i < n->n; i++)
    if (!pc_params_find(sub, n->keys[i]->str)) {
      pc_load_error(c, n->keys[i], "%s: unknown %s \"%s\" (expected %s)", label,
                    sub->key_noun ? sub->key_noun : "key", n->keys[i]->str, names.data);
      bad = -1;
    }
  pc_buf_free(&names);
  for (size_t i = 0; i < sub->nkeys; i++) {
    const struct pc_param *pm = &sub->keys[i];
    const struct pc_node *v = pc_node_get(n, pm->name);
    char sl[160];
    pc_param_label(label, pm, sl, sizeof sl);
    if (v)
      bad |= check_node(c, sl, NULL, pm, v, pc_tmpl_get(t, pm->name));
    else if (pm->required && !bad) {
      pc_load_error(c, n, "%s: `%s` is missing", label, pm->name);
      bad = -1;
    }
  }
  return bad;
}

/* One value against one param: `label` names it in messages (with
 * `item`, when it is an item of a map or a list). `t` is its template,
 * NULL when the action reads no ${{ }} in it. */
static int check_node(struct pc_load_ctx *c, const char *label, const char *item,
                      const struct pc_param *pm, const struct pc_node *n,
                      const struct pc_tmpl *t)
{
  bool computed = false;
  if (t && t->has_expr) {
    if (pm->static_only) {
      if (pm->static_why)
        pc_load_error(c, n, "%s: %s", label, pm->static_why);
      else
        pc_load_error(c, n, "%s: must be written out, not computed with ${{ }} (it is read "
                      "when the file loads)", label);
      return -1;
    }
    /* One ${{ }} can be anything; text with a ${{ }} in it is text. */
    computed = t->kind == PC_T_EXPR || (n->kind == PC_NODE_SCALAR && pc_param_is_scalar(pm->type));
  }
  const struct pc_param *msg = pm; /* a union's messages are its first type's */
  if (!computed && pm->alt && !kind_fits(pm, n) && kind_fits(pm->alt, n))
    pm = pm->alt;
  if (!computed && !(pm->nullable && n->kind == PC_NODE_SCALAR &&
                     pc_node_scalar_type(n) == PC_SCALAR_NULL)) {
    enum pc_scalar_type st = n->kind == PC_NODE_SCALAR ? pc_node_scalar_type(n) : PC_SCALAR_NULL;
    long long i;
    double d;
    switch (pm->type) {
    case PC_PARAM_ANY:
      break;
    case PC_PARAM_EXPRS: { /* their syntax: when the action reads them (pc_load_expr_list) */
      bool ok = is_text(n) || (n->kind == PC_NODE_SEQ && n->n > 0);
      for (size_t j = 0; ok && n->kind == PC_NODE_SEQ && j < n->n; j++)
        ok = is_text(n->items[j]);
      if (!ok)
        return wrong(c, label, item, msg, n);
      break;
    }
    case PC_PARAM_TEXT:
      if (!is_text(n))
        return wrong(c, label, item, msg, n);
      break;
    case PC_PARAM_NAME:
    case PC_PARAM_CODE:
      if (n->kind != PC_NODE_SCALAR || st != PC_SCALAR_STR || n->len == 0)
        return wrong(c, label, item, msg, n);
      break;
    case PC_PARAM_INT:
      if (n->kind != PC_NODE_SCALAR || st != PC_SCALAR_INT || !pc__parse_int(n, &i) ||
          !in_range(pm, (double)i))
        return wrong(c, label, item, msg, n);
      break;
    case PC_PARAM_NUMBER:
      if (!node_number(n, &d) || !in_range(pm, d))
        return wrong(c, label, item, msg, n);
      break;
    case PC_PARAM_BOOL:
      if (n->kind != PC_NODE_SCALAR || st != PC_SCALAR_BOOL)
        return wrong(c, label, item, msg, n);
      break;
    case PC_PARAM_DURATION:
      if (n->kind != PC_NODE_SCALAR)
        return wrong(c, label, item, msg, n);
      if (msg->got == PC_GOT_TEXT) { /* the param's own wording (http's) */
        if (pc_parse_duration(n->str, &d) != 0)
          return wrong(c, label, item, msg, n);
        break;
      }
      /* The loader's own duration message; a whole value's names no key. */
      if (pc__load_duration(c, pm->name ? label : NULL, n, &d) != 0)
        return -1;
      break;
    case PC_PARAM_ENUM: {
      bool ok = false;
      for (const char *const *a = pm->allowed; n->kind == PC_NODE_SCALAR && a && *a; a++)
        ok = ok || (strlen(*a) == n->len && memcmp(*a, n->str, n->len) == 0);
      if (!ok)
        return wrong(c, label, item, msg, n);
      break;
    }
    case PC_PARAM_ARGV:
      if (n->kind != PC_NODE_SEQ)
        return wrong(c, label, item, msg, n);
      return check_argv(c, label, n);
    case PC_PARAM_ENV:
      if (n->kind != PC_NODE_MAP)
        return wrong(c, label, item, msg, n);
      return check_env(c, label, n);
    case PC_PARAM_MAP:
      if (n->kind != PC_NODE_MAP)
        return wrong(c, label, item, msg, n);
      return pm->sub ? check_sub_map(c, label, pm->sub, n, t) : 0;
    case PC_PARAM_LIST: {
      if (n->kind != PC_NODE_SEQ)
        return wrong(c, label, item, msg, n);
      int bad = 0;
      /* A union's list (query's "text or a list of texts"): an item of
       * the wrong kind is the whole value's fault, in the union's words. */
      for (size_t j = 0; msg != pm && pm->sub && pm->sub->value && j < n->n; j++)
        if (!kind_fits(pm->sub->value, n->items[j]))
          return wrong(c, label, item, msg, n);
      for (size_t j = 0; pm->sub && pm->sub->value && j < n->n; j++) {
        char entry[32];
        snprintf(entry, sizeof entry, "entry %zu", j + 1);
        bad |= check_node(c, label, entry, pm->sub->value, n->items[j], pc_tmpl_at(t, j));
      }
      return bad;
    }
    }
  }
  if (pm->nul_kind && n->kind == PC_NODE_SCALAR) {
    char what[192];
    snprintf(what, sizeof what, "%s%s%s", label, pm->noun ? ": " : "", pm->noun ? pm->noun : "");
    return pc_load_no_nul(c, n, what, pm->nul_kind);
  }
  return 0;
}

/* One value of the action `key` against one param. */
static int check_value(struct pc_load_ctx *c, const char *key, const struct pc_param *pm,
                       const struct pc_node *n, const struct pc_tmpl *t)
{
  char label[128];
  pc_param_label(key, pm, label, sizeof label);
  return check_node(c, label, NULL, pm, n, t);
}

/* The map form: its keys, the required ones, each value. */
static int check_map(struct pc_load_ctx *c, const char *key, const struct pc_params *p,
                     const struct pc_node *v, const struct pc_tmpl *t)
{
  const char **names = pc_xcalloc(p->nkeys, sizeof *names);
  for (size_t i = 0; i < p->nkeys; i++)
    names[i] = p->keys[i].name;
  int bad = pc_load_check_keys(c, v, names, p->nkeys, key) != 0 ? -1 : 0;
  free(names);
  for (size_t i = 0; i < p->nkeys; i++) {
    const struct pc_param *pm = &p->keys[i];
    const struct pc_node *n = pc_node_get(v, pm->name);
    if (n) {
      bad |= check_value(c, p->prefix ? p->prefix : key, pm, n, t ? pc_tmpl_get(t, pm->name) : NULL);
      continue;
    }
    if (!pm->required)
      continue;
    /* "(the command line)": the description, as a phrase. */
    const char *d = pm->description;
    if (d && *d) {
      size_t len = strlen(d) - (d[strlen(d) - 1] == '.');
      char first = d[0] >= 'A' && d[0] <= 'Z' ? (char)(d[0] - 'A' + 'a') : d[0];
      pc_load_error(c, v, "%s: `%s` is required (%c%.*s)", key, pm->name, first, (int)len - 1,
                    d + 1);
    } else {
      pc_load_error(c, v, "%s: `%s` is required", key, pm->name);
    }
    bad = -1;
  }
  return bad;
}

int pc_load_params(struct pc_load_ctx *c, const char *key, const struct pc_params *p,
                   const struct pc_node *v, const struct pc_tmpl *t)
{
  if (v->kind == PC_NODE_MAP && p->nkeys > 0)
    return check_map(c, key, p, v, t);
  if (p->value)
    return check_value(c, key, p->value, v, t);
  if (t && t->kind == PC_T_EXPR)
    return 0; /* the map, computed: checked when it runs */
  return pc_load_check_keys(c, v, NULL, 0, key) == 0 ? 0 : -1; /* "expected a map" */
}
