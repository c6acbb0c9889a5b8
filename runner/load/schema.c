/* schema.c: the JSON Schema of the workflow format (SPEC.md sections 2 and
 * 3), printed by `pacer schema` for editors (e.g. the YAML language server:
 * `# yaml-language-server: $schema=pacer-workflow.schema.json`). It is
 * draft-07, the draft editors support best, and it is kept as a JSON file,
 * schema/workflow.schema.json, which the build embeds into the binary as
 * text (cmake/embed.cmake, as it embeds the lua/ files): never as a C string.
 *
 * The loader stays the authority: it also checks what a schema cannot
 * (unknown pools, duplicate ids, expressions) and gives positions;
 * tests/check_schema.py keeps the two in agreement by validating every
 * example and case file, and a set of invalid ones, against this schema.
 *
 * The file is the *base* of the schema: it holds no reference to an
 * action. pc_schema_json() prints it with the action parts added for each
 * action of the table it is handed (the command line's, cli/builtins.c),
 * so that the schema knows the actions the loader knows:
 *   - definitions.step.properties.KEY: {"$ref": "#/definitions/KEY"};
 *   - one {"required": [KEY]} branch of definitions.step.oneOf (a step has
 *     exactly one action; the groups' branches are in the base);
 *   - for an action with defaults.KEY: properties.defaults.properties.KEY,
 *     a $ref to definitions.KEY_defaults if the base or the action's
 *     defaults table has it, else an object; definitions.KEY_defaults
 *     written from that table;
 *   - definitions.KEY for an action with a parameter table (model/action.h),
 *     written from the table (a base definition of that name is left out):
 *     the short form, the map form (its keys, none other, the required
 *     ones), each type's schema, and "or exactly one ${{ }}" where a value
 *     may be computed and its type takes no string that could hold one;
 *   - else definitions.KEY, open (any value; only a description), when the
 *     base has none (an action from outside the built-in set: the loader
 *     is the authority).
 * The tree is read and written with yajl (its tree parser and its
 * generator), which pacer links for pacer.json already. */
#include "load/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "base/util.h"

/* Made by cmake/embed.cmake from schema/workflow.schema.json, its only
 * entry: the text, followed by a NUL byte not counted in len. */
struct pc_embedded {
  const char *name;
  const char *data;
  size_t len;
};
extern const struct pc_embedded pc_embedded_schema[];

const char *pc_schema_base_json(void)
{
  return pc_embedded_schema[0].data;
}

/* --------------------------------------------------------- the writer */

/* Where the walk is: the keys from the root to the current value. The
 * places the action parts go are at depth 3 at most. */
#define MAX_DEPTH 8

struct writer {
  yajl_gen g;
  const struct pc_action_ops *const *actions;
  yajl_val base; /* the whole base tree */
  const char *path[MAX_DEPTH];
  size_t depth;
};

static void put_str(yajl_gen g, const char *s)
{
  yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

static bool at(const struct writer *w, const char *a, const char *b, const char *c)
{
  const char *want[] = {a, b, c};
  size_t n = c ? 3 : b ? 2 : 1;
  if (w->depth != n)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!w->path[i] || strcmp(w->path[i], want[i]) != 0)
      return false;
  return true;
}

static bool base_has_definition(const struct writer *w, const char *name)
{
  const char *p[] = {"definitions", name, NULL};
  return yajl_tree_get(w->base, p, yajl_t_any) != NULL;
}

static void put_ref(yajl_gen g, const char *def)
{
  yajl_gen_map_open(g);
  put_str(g, "$ref");
  char *ref = pc_asprintf("#/definitions/%s", def);
  put_str(g, ref);
  free(ref);
  yajl_gen_map_close(g);
}

/* ------------------------------------------- definitions from the tables */

static void put_types(yajl_gen g, bool nullable, const char *const *types)
{
  put_str(g, "type");
  yajl_gen_array_open(g);
  for (; *types; types++)
    put_str(g, *types);
  if (nullable)
    put_str(g, "null");
  yajl_gen_array_close(g);
}

static void put_num(yajl_gen g, const char *key, double v)
{
  put_str(g, key);
  char num[32]; /* not yajl_gen_double, which writes 1000 as 1000.0 */
  int len = snprintf(num, sizeof num, "%.17g", v);
  yajl_gen_number(g, num, (size_t)len);
}

static const char *const text_types[] = {"string", "number", "boolean", NULL};

static void put_param(yajl_gen g, const struct pc_param *pm, const char *description);

/* "type": T, or with from_text [T, "string"] (a computed string holding
 * the value's text is taken). */
static void put_type(yajl_gen g, const struct pc_param *pm, const char *type)
{
  put_str(g, "type");
  if (!pm->from_text) {
    put_str(g, type);
    return;
  }
  yajl_gen_array_open(g);
  put_str(g, type);
  put_str(g, "string");
  yajl_gen_array_close(g);
}

/* An enum's values; with from_text, those that read as a number also as
 * that number (`http_version: 1.1` is written unquoted), each once. */
static void put_enum(yajl_gen g, const struct pc_param *pm)
{
  if (pm->from_text) {
    static const char *const types[] = {"string", "number", NULL};
    put_types(g, false, types);
  }
  put_str(g, "enum");
  yajl_gen_array_open(g);
  for (const char *const *a = pm->allowed; a && *a; a++)
    put_str(g, *a);
  for (const char *const *a = pm->allowed; pm->from_text && a && *a; a++) {
    char *end;
    double v = strtod(*a, &end);
    bool seen = false;
    for (const char *const *b = pm->allowed; b != a; b++) {
      char *bend;
      double w = strtod(*b, &bend);
      seen = seen || (bend != *b && *bend == '\0' && w == v);
    }
    if (end != *a && *end == '\0' && !seen) {
      char num[32];
      int len = snprintf(num, sizeof num, "%.17g", v);
      yajl_gen_number(g, num, (size_t)len);
    }
  }
  yajl_gen_array_close(g);
}

/* A map's members: its keys (none other, the required ones, exactly one
 * of them with one_key), or any names with a value of sub->value. */
static void put_map_members(yajl_gen g, const struct pc_params *sub)
{
  put_str(g, "type");
  put_str(g, "object");
  if (!sub)
    return;
  if (sub->nkeys == 0) {
    if (sub->value) {
      put_str(g, "additionalProperties");
      put_param(g, sub->value, NULL);
    }
    return;
  }
  put_str(g, "additionalProperties");
  yajl_gen_bool(g, 0);
  if (sub->one_key) {
    put_str(g, "minProperties");
    yajl_gen_integer(g, 1);
    put_str(g, "maxProperties");
    yajl_gen_integer(g, 1);
  }
  size_t nreq = 0;
  for (size_t i = 0; i < sub->nkeys; i++)
    nreq += sub->keys[i].required;
  if (nreq) {
    put_str(g, "required");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < sub->nkeys; i++)
      if (sub->keys[i].required)
        put_str(g, sub->keys[i].name);
    yajl_gen_array_close(g);
  }
  put_str(g, "properties");
  yajl_gen_map_open(g);
  for (size_t i = 0; i < sub->nkeys; i++) {
    put_str(g, sub->keys[i].name);
    put_param(g, &sub->keys[i], NULL);
  }
  yajl_gen_map_close(g);
}

/* The members of one type's schema (inside an open map). */
static void put_type_members(yajl_gen g, const struct pc_param *pm)
{
  switch (pm->type) {
  case PC_PARAM_ANY:
    break;
  case PC_PARAM_TEXT:
    put_types(g, pm->nullable, text_types);
    break;
  case PC_PARAM_NAME:
  case PC_PARAM_CODE:
    put_str(g, "type");
    put_str(g, "string");
    put_str(g, "minLength");
    yajl_gen_integer(g, 1);
    break;
  case PC_PARAM_INT:
  case PC_PARAM_NUMBER:
    put_type(g, pm, pm->type == PC_PARAM_INT ? "integer" : "number");
    if (pm->max > pm->min) {
      put_num(g, "minimum", pm->min);
      put_num(g, "maximum", pm->max);
    }
    break;
  case PC_PARAM_BOOL:
    put_type(g, pm, "boolean");
    break;
  case PC_PARAM_DURATION:
    put_str(g, "$ref");
    put_str(g, "#/definitions/duration");
    break;
  case PC_PARAM_ENUM:
    put_enum(g, pm);
    break;
  case PC_PARAM_ARGV:
    put_str(g, "type");
    put_str(g, "array");
    put_str(g, "minItems");
    yajl_gen_integer(g, 1);
    put_str(g, "items");
    yajl_gen_map_open(g);
    put_types(g, false, text_types);
    yajl_gen_map_close(g);
    break;
  case PC_PARAM_ENV:
    put_str(g, "type");
    put_str(g, "object");
    put_str(g, "propertyNames");
    yajl_gen_map_open(g);
    put_str(g, "pattern");
    put_str(g, "^[^=]+$");
    yajl_gen_map_close(g);
    put_str(g, "additionalProperties");
    yajl_gen_map_open(g);
    put_types(g, false, text_types);
    yajl_gen_map_close(g);
    break;
  case PC_PARAM_EXPRS:
    put_str(g, "$ref");
    put_str(g, "#/definitions/expressions");
    break;
  case PC_PARAM_MAP:
    put_map_members(g, pm->sub);
    break;
  case PC_PARAM_LIST:
    put_str(g, "type");
    put_str(g, "array");
    if (pm->sub && pm->sub->value) {
      put_str(g, "items");
      put_param(g, pm->sub->value, NULL);
    }
    break;
  }
}

/* Whether the type's schema takes a string that could hold a ${{ }}. */
static bool takes_string(const struct pc_param *pm)
{
  return pm->type == PC_PARAM_ANY || pm->type == PC_PARAM_TEXT || pm->type == PC_PARAM_NAME ||
         pm->type == PC_PARAM_CODE || pm->type == PC_PARAM_EXPRS ||
         (pm->from_text && pm->type != PC_PARAM_ENUM); /* an enum's strings are its own */
}

/* One param's schema: its type's, or (when a ${{ }} may compute it and
 * the type takes no string that could hold one) that or exactly one
 * ${{ }}; a union's (pm->alt) its two types'; with its description
 * (`description`, when not NULL, instead). */
static void put_param(yajl_gen g, const struct pc_param *pm, const char *description)
{
  bool expr = !pm->static_only && !takes_string(pm) && !(pm->alt && takes_string(pm->alt));
  const char *d = description ? description : pm->description;
  yajl_gen_map_open(g);
  if (d) {
    put_str(g, "description");
    put_str(g, d);
  }
  if (!expr && !pm->alt) {
    put_type_members(g, pm);
  } else {
    put_str(g, "oneOf");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    put_type_members(g, pm);
    yajl_gen_map_close(g);
    if (pm->alt) {
      yajl_gen_map_open(g);
      put_type_members(g, pm->alt);
      yajl_gen_map_close(g);
    }
    if (expr)
      put_ref(g, "single_expression");
    yajl_gen_array_close(g);
  }
  yajl_gen_map_close(g);
}

/* The map form: its keys, none other, the required ones, and exactly one
 * of `one_of` when the table has it; with a description when
 * `description` is not NULL. */
static void put_map_form(yajl_gen g, const struct pc_params *p, const char *description)
{
  yajl_gen_map_open(g);
  if (description) {
    put_str(g, "description");
    put_str(g, description);
  }
  put_map_members(g, p);
  if (p->one_of) {
    put_str(g, "oneOf");
    yajl_gen_array_open(g);
    for (const char *const *k = p->one_of; *k; k++) {
      yajl_gen_map_open(g);
      put_str(g, "required");
      yajl_gen_array_open(g);
      put_str(g, *k);
      yajl_gen_array_close(g);
      yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
  }
  yajl_gen_map_close(g);
}

/* definitions.KEY from the action's table: the short form, the map form,
 * or one of the two. */
static void put_definition(yajl_gen g, const struct pc_params *p)
{
  if (p->value && p->nkeys == 0) {
    put_param(g, p->value, p->description ? p->description : p->value->description);
    return;
  }
  if (!p->value) {
    put_map_form(g, p, p->description);
    return;
  }
  yajl_gen_map_open(g);
  if (p->description) {
    put_str(g, "description");
    put_str(g, p->description);
  }
  put_str(g, "oneOf");
  yajl_gen_array_open(g);
  put_param(g, p->value, NULL);
  put_map_form(g, p, NULL);
  yajl_gen_array_close(g);
  yajl_gen_map_close(g);
}

/* definitions.NAME is written from an action's parameter table: NAME is
 * the key of an action with a table, or KEY_defaults for an action whose
 * defaults.KEY has one. */
static bool from_table(const struct writer *w, const char *name)
{
  for (const struct pc_action_ops *const *a = w->actions; a && *a; a++) {
    if ((*a)->params && strcmp((*a)->key, name) == 0)
      return true;
    size_t n = (*a)->defaults_key ? strlen((*a)->defaults_key) : 0;
    if ((*a)->defaults_params && strncmp((*a)->defaults_key, name, n) == 0 &&
        strcmp(name + n, "_defaults") == 0)
      return true;
  }
  return false;
}

/* The members the actions add at the end of the object the walk is in. */
static void add_members(struct writer *w)
{
  yajl_gen g = w->g;
  for (const struct pc_action_ops *const *a = w->actions; a && *a; a++) {
    const char *key = (*a)->key;
    if (at(w, "definitions", NULL, NULL) && (*a)->defaults_params) {
      char *def = pc_asprintf("%s_defaults", (*a)->defaults_key);
      put_str(g, def);
      free(def);
      put_definition(g, (*a)->defaults_params);
    }
    if (at(w, "definitions", NULL, NULL) && (*a)->params) {
      put_str(g, key);
      put_definition(g, (*a)->params);
    } else if (at(w, "definitions", NULL, NULL) && !base_has_definition(w, key)) {
      put_str(g, key);
      yajl_gen_map_open(g);
      put_str(g, "description");
      char *d = pc_asprintf("The `%s` action (any value here: pacer checks it).", key);
      put_str(g, d);
      free(d);
      yajl_gen_map_close(g);
    } else if (at(w, "definitions", "step", "properties")) {
      put_str(g, key);
      put_ref(g, key);
    } else if (at(w, "properties", "defaults", "properties") && (*a)->defaults_key) {
      put_str(g, (*a)->defaults_key);
      char *def = pc_asprintf("%s_defaults", (*a)->defaults_key);
      if (base_has_definition(w, def) || (*a)->defaults_params) {
        put_ref(g, def);
      } else {
        yajl_gen_map_open(g);
        put_str(g, "type");
        put_str(g, "object");
        yajl_gen_map_close(g);
      }
      free(def);
    }
  }
}

/* The items the actions add at the end of the array the walk is in. */
static void add_items(struct writer *w)
{
  if (!at(w, "definitions", "step", "oneOf"))
    return;
  for (const struct pc_action_ops *const *a = w->actions; a && *a; a++) {
    yajl_gen_map_open(w->g);
    put_str(w->g, "required");
    yajl_gen_array_open(w->g);
    put_str(w->g, (*a)->key);
    yajl_gen_array_close(w->g);
    yajl_gen_map_close(w->g);
  }
}

static void write_value(struct writer *w, yajl_val v)
{
  yajl_gen g = w->g;
  switch (v->type) {
  case yajl_t_string:
    put_str(g, v->u.string);
    break;
  case yajl_t_number:
    yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
    break;
  case yajl_t_true:
  case yajl_t_false:
    yajl_gen_bool(g, v->type == yajl_t_true);
    break;
  case yajl_t_null:
  case yajl_t_any:
    yajl_gen_null(g);
    break;
  case yajl_t_object:
    yajl_gen_map_open(g);
    for (size_t i = 0; i < v->u.object.len; i++) {
      /* An action's table, not the base, describes its value. */
      if (at(w, "definitions", NULL, NULL) && from_table(w, v->u.object.keys[i]))
        continue;
      put_str(g, v->u.object.keys[i]);
      if (w->depth < MAX_DEPTH)
        w->path[w->depth] = v->u.object.keys[i];
      w->depth++;
      write_value(w, v->u.object.values[i]);
      w->depth--;
    }
    add_members(w);
    yajl_gen_map_close(g);
    break;
  case yajl_t_array:
    yajl_gen_array_open(g);
    for (size_t i = 0; i < v->u.array.len; i++) {
      if (w->depth < MAX_DEPTH)
        w->path[w->depth] = NULL; /* an item: no key */
      w->depth++;
      write_value(w, v->u.array.values[i]);
      w->depth--;
    }
    add_items(w);
    yajl_gen_array_close(g);
    break;
  }
}

char *pc_schema_json(const struct pc_action_ops *const *actions)
{
  char err[256];
  yajl_val base = yajl_tree_parse(pc_schema_base_json(), err, sizeof err);
  if (!base) /* the build embeds the file as it is checked in: cannot happen */
    return NULL;
  struct writer w = {.g = yajl_gen_alloc(NULL), .actions = actions, .base = base};
  yajl_gen_config(w.g, yajl_gen_beautify, 1);
  yajl_gen_config(w.g, yajl_gen_indent_string, "  ");
  write_value(&w, base);
  const unsigned char *buf;
  size_t len;
  yajl_gen_get_buf(w.g, &buf, &len);
  char *out = pc_xmalloc(len + 2);
  memcpy(out, buf, len);
  size_t n = len;
  if (n == 0 || out[n - 1] != '\n')
    out[n++] = '\n';
  out[n] = '\0';
  yajl_gen_free(w.g);
  yajl_tree_free(base);
  return out;
}
