/* params.c: the run-time check of an action's computed value against its
 * parameter table, and the wording the load-time check (load/params.c)
 * shares with it. An action calls it on the value the engine evaluated,
 * before reading it (sleep: a duration; exec: the keys of its map form);
 * it never calls Lua code (no __tostring, no __index): a value is read
 * with raw access and its text made here. */
#include "script/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

void pc_param_label(const char *key, const struct pc_param *pm, char *buf, size_t n)
{
  if (pm->label)
    snprintf(buf, n, "%s", pm->label);
  else if (pm->name)
    snprintf(buf, n, "%s.%s", key, pm->name);
  else
    snprintf(buf, n, "%s", key);
}

void pc_param_expect(const struct pc_param *pm, struct pc_buf *b)
{
  if (pm->expect) {
    pc_buf_puts(b, pm->expect);
    return;
  }
  bool range = pm->max > pm->min;
  switch (pm->type) {
  case PC_PARAM_TEXT:
    pc_buf_puts(b, "a string");
    break;
  case PC_PARAM_NAME:
    pc_buf_puts(b, "a name");
    break;
  case PC_PARAM_CODE:
    pc_buf_puts(b, "code (a string)");
    break;
  case PC_PARAM_INT:
    pc_buf_puts(b, "an integer");
    if (range)
      pc_buf_printf(b, " from %.17g to %.17g", pm->min, pm->max);
    break;
  case PC_PARAM_NUMBER:
    pc_buf_puts(b, "a number");
    if (range)
      pc_buf_printf(b, " from %.17g to %.17g", pm->min, pm->max);
    break;
  case PC_PARAM_BOOL:
    pc_buf_puts(b, "true or false");
    break;
  case PC_PARAM_DURATION:
    pc_buf_puts(b, "a duration like \"5s\"");
    break;
  case PC_PARAM_ENUM: /* "log, quiet or on_failure" */
    for (const char *const *a = pm->allowed; a && *a; a++)
      pc_buf_printf(b, "%s%s", a == pm->allowed ? "" : a[1] ? ", " : " or ", *a);
    break;
  case PC_PARAM_ARGV:
    pc_buf_puts(b, "a list of arguments");
    break;
  case PC_PARAM_ENV:
    pc_buf_puts(b, "a map of NAME: VALUE");
    break;
  case PC_PARAM_EXPRS:
    pc_buf_puts(b, "one expression or a list of them");
    break;
  case PC_PARAM_ANY:
    pc_buf_puts(b, "a value");
    break;
  case PC_PARAM_MAP:
    pc_buf_puts(b, "a map");
    break;
  case PC_PARAM_LIST:
    pc_buf_puts(b, "a list");
    break;
  }
}

void pc_params_key_list(const struct pc_params *p, struct pc_buf *b)
{
  for (size_t i = 0; i < p->nkeys; i++)
    pc_buf_printf(b, "%s%s", i == 0 ? "" : i + 1 == p->nkeys ? " or " : ", ", p->keys[i].name);
}

int pc_lua_duration(lua_State *L, int idx, double *ms)
{
  if (lua_type(L, idx) == LUA_TNUMBER) {
    double s = lua_tonumber(L, idx);
    if (!(s >= 0) || s > 30.0 * 86400)
      return -1;
    *ms = s * 1000.0;
    return 0;
  }
  if (lua_type(L, idx) == LUA_TSTRING)
    return pc_parse_duration(lua_tostring(L, idx), ms) == 0 ? 0 : -1;
  return -1;
}

const char *pc_lua_kind_name(lua_State *L, int idx)
{
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    return "string";
  case LUA_TNUMBER:
    return lua_isinteger(L, idx) ? "integer" : "number";
  case LUA_TBOOLEAN:
    return "boolean";
  case LUA_TNIL:
    return "null";
  case LUA_TTABLE:
    return lua_rawlen(L, idx) > 0 ? "list" : "map";
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL)
      return "null";
    break;
  }
  return luaL_typename(L, idx);
}

/* A number's text: an integer's digits, a float as Lua writes it ("1.1",
 * "2.0"; lua_tostring on a copy, so the value itself stays a number). */
static char *number_text(lua_State *L, int idx)
{
  if (lua_isinteger(L, idx))
    return pc_asprintf("%lld", (long long)lua_tointeger(L, idx));
  lua_pushvalue(L, idx);
  char *s = pc_xstrdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return s;
}

/* The value as messages show it: with PC_GOT_BARE_KIND its kind in the
 * loader's words ("map"), with PC_GOT_TEXT a scalar's text unquoted and
 * anything else its kind, as load/params.c shows a node; otherwise (the
 * run-time wording the older actions kept) a string quoted, a number or
 * boolean as written, anything else by its Lua type. Never calls a
 * metamethod. */
static char *shown(lua_State *L, int idx, enum pc_param_got got)
{
  int type = lua_type(L, idx);
  if (got == PC_GOT_BARE_KIND || (got == PC_GOT_TEXT && type != LUA_TSTRING &&
                                  type != LUA_TNUMBER && type != LUA_TBOOLEAN))
    return pc_xstrdup(pc_lua_kind_name(L, idx));
  switch (type) {
  case LUA_TSTRING:
    return got == PC_GOT_TEXT ? pc_xstrdup(lua_tostring(L, idx))
                              : pc_asprintf("\"%s\"", lua_tostring(L, idx));
  case LUA_TNUMBER:
    return number_text(L, idx);
  case LUA_TBOOLEAN:
    return pc_xstrdup(lua_toboolean(L, idx) ? "true" : "false");
  default:
    return pc_xstrdup(luaL_typename(L, idx));
  }
}

static bool in_range(const struct pc_param *pm, double v)
{
  return !(pm->max > pm->min) || (v >= pm->min && v <= pm->max);
}

/* nil, or pacer's JSON null (a NULL light userdata): nothing given. */
static bool is_null(lua_State *L, int idx)
{
  int t = lua_type(L, idx);
  return t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL);
}

/* Whether the table at idx reads as a map (no items: "map" in messages)
 * or a list (items, or empty: {} is both, as a YAML {} or [] becomes). */
static bool is_map(lua_State *L, int idx)
{
  return lua_type(L, idx) == LUA_TTABLE && lua_rawlen(L, idx) == 0;
}
static bool is_list(lua_State *L, int idx)
{
  if (lua_type(L, idx) != LUA_TTABLE)
    return false;
  if (lua_rawlen(L, idx) > 0)
    return true;
  lua_pushnil(L);
  bool empty = lua_next(L, idx) == 0; /* (key, value pushed when not empty) */
  if (!empty)
    lua_pop(L, 2);
  return empty;
}

/* Whether the value at idx is of the param's kind (see load/params.c). */
static bool kind_fits(lua_State *L, int idx, const struct pc_param *pm)
{
  bool table = lua_type(L, idx) == LUA_TTABLE;
  switch (pm->type) {
  case PC_PARAM_ANY:
    return true;
  case PC_PARAM_MAP:
    return is_map(L, idx);
  case PC_PARAM_LIST:
    return is_list(L, idx);
  case PC_PARAM_ENV:
  case PC_PARAM_ARGV:
    return table;
  case PC_PARAM_EXPRS:
    return true;
  default:
    return !table;
  }
}

/* Whether the enum allows the value at idx: a string, or with from_text a
 * number written as text ("1.1"; an integer also as "2.0"). */
static bool enum_allows(lua_State *L, int idx, const struct pc_param *pm)
{
  char *text = NULL, *alt = NULL;
  if (lua_type(L, idx) == LUA_TSTRING) {
    text = pc_xstrdup(lua_tostring(L, idx));
  } else if (pm->from_text && lua_type(L, idx) == LUA_TNUMBER) {
    text = number_text(L, idx);
    if (lua_isinteger(L, idx))
      alt = pc_asprintf("%s.0", text);
  }
  bool ok = false;
  for (const char *const *a = pm->allowed; text && a && *a; a++)
    ok = ok || strcmp(*a, text) == 0 || (alt && strcmp(*a, alt) == 0);
  free(text);
  free(alt);
  return ok;
}

/* A parameter's name in messages (pc_param_label), made only when a
 * message needs it: a value that passes costs no formatting. */
struct name {
  const char *label; /* made, or given */
  const char *key;
  const struct pc_param *pm;
  char buf[160];
};
static const char *name_of(struct name *nm)
{
  if (!nm->label) {
    pc_param_label(nm->key, nm->pm, nm->buf, sizeof nm->buf);
    nm->label = nm->buf;
  }
  return nm->label;
}

static char *check_node(lua_State *L, int idx, struct name *nm, const char *item,
                        const struct pc_param *pm);

/* A table against `sub` (PC_PARAM_MAP): its keys, or each value. */
static char *check_sub_map(lua_State *L, int idx, const char *label, const struct pc_params *sub)
{
  char *m = NULL;
  if (sub->nkeys == 0) {
    lua_pushnil(L);                           /* nil */
    while (!m && lua_next(L, idx) != 0) {     /* key, value */
      if (lua_type(L, -2) == LUA_TSTRING && sub->value && !is_null(L, -1)) {
        /* Names that are not text: the action's own reader says so. */
        const char *k = lua_tostring(L, -2);
        char *named = sub->item_labels ? pc_asprintf("%s.%s", label, k)
                                       : pc_asprintf("the value of %s", k);
        struct name nn = {.label = sub->item_labels ? named : label};
        m = check_node(L, -1, &nn, sub->item_labels ? NULL : named, sub->value);
        free(named);
      }
      lua_pop(L, 1); /* key */
    }
    if (m)
      lua_pop(L, 1);
    return m;
  }
  struct pc_buf names;
  pc_buf_init(&names, 1024);
  pc_params_key_list(sub, &names);
  size_t n = 0;
  const char *first = NULL; /* borrowed: the table holds it */
  lua_pushnil(L);                       /* nil */
  while (!m && lua_next(L, idx) != 0) { /* key, value */
    lua_pop(L, 1);                      /* key */
    n++;
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (!k || !pc_params_find(sub, k))
      m = pc_asprintf("%s: unknown %s \"%s\" (expected %s)", label,
                      sub->key_noun ? sub->key_noun : "key", k ? k : luaL_typename(L, -1),
                      names.data);
    else if (sub->one_key && first)
      m = pc_asprintf("%s: `%s` and `%s` both given; %s", label, first, k,
                      sub->one_why ? sub->one_why : "give one");
    first = first ? first : k;
    if (m)
      lua_pop(L, 1);
  }
  if (!m && sub->one_key && n == 0)
    m = pc_asprintf("%s: expected a map with one of %s", label, names.data);
  pc_buf_free(&names);
  for (size_t i = 0; !m && i < sub->nkeys; i++) {
    const struct pc_param *pm = &sub->keys[i];
    lua_pushstring(L, pm->name);
    lua_rawget(L, idx); /* value */
    if (is_null(L, -1) && pm->required) {
      m = pc_asprintf("%s: `%s` is missing", label, pm->name);
    } else if (!is_null(L, -1)) {
      struct name nn = {.key = label, .pm = pm};
      m = check_node(L, -1, &nn, NULL, pm);
    }
    lua_pop(L, 1);
  }
  return m;
}

/* One value against one param: NULL or a message. `nm` names it (with
 * `item`, for an item of a map or a list). */
static char *check_node(lua_State *L, int idx, struct name *nm, const char *item,
                        const struct pc_param *pm)
{
  idx = lua_absindex(L, idx);
  int type = lua_type(L, idx);
  if (pm->nullable && is_null(L, idx))
    return NULL;
  const struct pc_param *msg = pm; /* a union's messages are its first type's */
  if (pm->alt && !kind_fits(L, idx, pm) && kind_fits(L, idx, pm->alt))
    pm = pm->alt;
  /* Text that becomes a C string, or a value read from text, cannot hold
   * a NUL byte: the C string would end there. */
  if (type == LUA_TSTRING && (pm->nul_kind || pm->type == PC_PARAM_BOOL ||
                              pm->type == PC_PARAM_INT || pm->type == PC_PARAM_NUMBER ||
                              pm->type == PC_PARAM_DURATION || pm->type == PC_PARAM_ENUM)) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
      return pm->nul_kind
                 ? pc_asprintf("%s contains a NUL byte (\\0), which %s cannot hold", name_of(nm),
                               pm->nul_kind)
                 : pc_asprintf("%s: contains a NUL byte", name_of(nm));
  }
  bool ok = true;
  switch (pm->type) {
  case PC_PARAM_ANY:
  case PC_PARAM_EXPRS:
    break;
  case PC_PARAM_TEXT:
    ok = type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN;
    break;
  case PC_PARAM_NAME:
  case PC_PARAM_CODE:
    ok = type == LUA_TSTRING && lua_rawlen(L, idx) > 0;
    break;
  case PC_PARAM_INT:
    if (pm->from_text) { /* "10", or 10.0: what Lua converts exactly */
      int isnum = 0;
      lua_Integer v = type == LUA_TNUMBER || type == LUA_TSTRING ? lua_tointegerx(L, idx, &isnum)
                                                                  : 0;
      ok = isnum && in_range(pm, (double)v);
    } else {
      ok = type == LUA_TNUMBER && lua_isinteger(L, idx) &&
           in_range(pm, (double)lua_tointeger(L, idx));
    }
    break;
  case PC_PARAM_NUMBER:
    ok = type == LUA_TNUMBER && in_range(pm, lua_tonumber(L, idx));
    break;
  case PC_PARAM_BOOL:
    ok = type == LUA_TBOOLEAN ||
         (pm->from_text && type == LUA_TSTRING &&
          (strcmp(lua_tostring(L, idx), "true") == 0 || strcmp(lua_tostring(L, idx), "false") == 0));
    break;
  case PC_PARAM_DURATION: {
    double ms;
    if (pc_lua_duration(L, idx, &ms) == 0)
      break;
    if (msg->got == PC_GOT_TEXT) { /* the param's own wording (http's) */
      ok = false;
      break;
    }
    /* As the sleep action always said: the value as Lua prints it. */
    bool plain = type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN ||
                 type == LUA_TNIL;
    char *v = plain ? pc_xstrdup(luaL_tolstring(L, idx, NULL))
                    : pc_asprintf("%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
    if (plain)
      lua_pop(L, 1);
    char *m = pc_asprintf("%s: invalid duration %s", name_of(nm), v);
    free(v);
    return m;
  }
  case PC_PARAM_ENUM:
    ok = enum_allows(L, idx, pm);
    break;
  case PC_PARAM_ARGV:
  case PC_PARAM_ENV:
    ok = type == LUA_TTABLE;
    break;
  case PC_PARAM_MAP:
    if (!is_map(L, idx)) {
      ok = false;
      break;
    }
    return pm->sub ? check_sub_map(L, idx, name_of(nm), pm->sub) : NULL;
  case PC_PARAM_LIST: {
    if (!is_list(L, idx)) {
      ok = false;
      break;
    }
    char *m = NULL;
    size_t n = (size_t)lua_rawlen(L, idx);
    /* A union's list: an item of the wrong kind is the whole value's
     * fault, in the union's words (as load/params.c says it). */
    for (size_t i = 1; msg != pm && pm->sub && pm->sub->value && i <= n; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i); /* item */
      ok = kind_fits(L, -1, pm->sub->value);
      lua_pop(L, 1);
      if (!ok)
        break;
    }
    if (!ok)
      break;
    for (size_t i = 1; !m && pm->sub && pm->sub->value && i <= n; i++) {
      lua_rawgeti(L, idx, (lua_Integer)i); /* item */
      char entry[32];
      snprintf(entry, sizeof entry, "entry %zu", i);
      struct name nn = {.label = name_of(nm)};
      m = check_node(L, -1, &nn, entry, pm->sub->value);
      lua_pop(L, 1);
    }
    return m;
  }
  }
  if (ok)
    return NULL;
  struct pc_buf e;
  pc_buf_init(&e, 256);
  pc_param_expect(msg, &e);
  char *v = shown(L, idx, msg->got);
  /* The hint, in the loader's wording only (the older actions' run-time
   * messages never had it). */
  const char *hint = msg->got == PC_GOT_BARE_KIND || msg->got == PC_GOT_TEXT ? msg->hint : NULL;
  const char *label = name_of(nm);
  char *m = item ? pc_asprintf("%s: %s must be %s, got %s%s%s", label, item, e.data, v,
                               hint ? "; " : "", hint ? hint : "")
                 : pc_asprintf("%s: expected %s, got %s%s%s", label, e.data, v, hint ? "; " : "",
                               hint ? hint : "");
  free(v);
  pc_buf_free(&e);
  return m;
}

static char *check_value(lua_State *L, int idx, const char *key, const struct pc_param *pm)
{
  struct name nm; /* (its buffer is written only when a message needs it) */
  nm.label = NULL;
  nm.key = key;
  nm.pm = pm;
  return check_node(L, idx, &nm, NULL, pm);
}

char *pc_param_check(lua_State *L, int idx, const char *key, const struct pc_param *pm)
{
  return check_value(L, idx, key, pm);
}

char *pc_params_check_keys(lua_State *L, int idx, const char *key, const struct pc_params *p)
{
  idx = lua_absindex(L, idx);
  lua_pushnil(L); /* nil */
  while (lua_next(L, idx) != 0) { /* key, value */
    lua_pop(L, 1);                /* key */
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    if (k && pc_params_find(p, k))
      continue;
    /* Not luaL_tolstring: a key's __tostring is plugin code. */
    struct pc_buf b;
    pc_buf_init(&b, 1024);
    pc_params_key_list(p, &b);
    char *m = pc_asprintf("%s: unknown key \"%s\" (expected %s)", key,
                          k ? k : luaL_typename(L, -1), b.data ? b.data : "nothing");
    pc_buf_free(&b);
    lua_pop(L, 1);
    return m;
  }
  return NULL;
}

char *pc_params_check(lua_State *L, int idx, const char *key, const struct pc_params *p)
{
  idx = lua_absindex(L, idx);
  bool map_form = p->nkeys > 0 && lua_type(L, idx) == LUA_TTABLE &&
                  (!p->value || pc_param_is_scalar(p->value->type));
  if (!map_form)
    return p->value ? check_value(L, idx, key, p->value) : NULL;
  char *m = pc_params_check_keys(L, idx, key, p);
  for (size_t i = 0; !m && i < p->nkeys; i++) {
    const struct pc_param *pm = &p->keys[i];
    lua_pushstring(L, pm->name);
    lua_rawget(L, idx); /* value */
    if (lua_type(L, -1) == LUA_TNIL && pm->required) {
      m = pc_asprintf("%s: `%s` is required", key, pm->name);
    } else if (lua_type(L, -1) != LUA_TNIL) {
      m = check_value(L, -1, key, pm);
    }
    lua_pop(L, 1);
  }
  return m;
}
