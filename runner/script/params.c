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
  }
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

/* The value as messages show it: a string quoted, a number or boolean as
 * written, anything else by its type. Never calls a metamethod. */
static char *shown(lua_State *L, int idx)
{
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    return pc_asprintf("\"%s\"", lua_tostring(L, idx));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx))
      return pc_asprintf("%lld", (long long)lua_tointeger(L, idx));
    return pc_asprintf("%.17g", lua_tonumber(L, idx));
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

/* One value against one param: NULL or a message. */
static char *check_value(lua_State *L, int idx, const char *key, const struct pc_param *pm)
{
  idx = lua_absindex(L, idx);
  int type = lua_type(L, idx);
  if (type == LUA_TNIL && pm->nullable)
    return NULL;
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
    ok = type == LUA_TNUMBER && lua_isinteger(L, idx) &&
         in_range(pm, (double)lua_tointeger(L, idx));
    break;
  case PC_PARAM_NUMBER:
    ok = type == LUA_TNUMBER && in_range(pm, lua_tonumber(L, idx));
    break;
  case PC_PARAM_BOOL:
    ok = type == LUA_TBOOLEAN;
    break;
  case PC_PARAM_DURATION: {
    double ms;
    if (pc_lua_duration(L, idx, &ms) != 0) {
      char label[128];
      pc_param_label(key, pm, label, sizeof label);
      /* As the sleep action always said: the value as Lua prints it. */
      bool plain = type == LUA_TSTRING || type == LUA_TNUMBER || type == LUA_TBOOLEAN ||
                   type == LUA_TNIL;
      char *v = plain ? pc_xstrdup(luaL_tolstring(L, idx, NULL))
                      : pc_asprintf("%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
      if (plain)
        lua_pop(L, 1);
      char *m = pc_asprintf("%s: invalid duration %s", label, v);
      free(v);
      return m;
    }
    break;
  }
  case PC_PARAM_ENUM:
    ok = false;
    for (const char *const *a = pm->allowed; type == LUA_TSTRING && a && *a; a++)
      ok = ok || strcmp(*a, lua_tostring(L, idx)) == 0;
    break;
  case PC_PARAM_ARGV:
  case PC_PARAM_ENV:
    ok = type == LUA_TTABLE;
    break;
  }
  if (ok)
    return NULL;
  char label[128];
  pc_param_label(key, pm, label, sizeof label);
  struct pc_buf e;
  pc_buf_init(&e, 256);
  pc_param_expect(pm, &e);
  char *v = shown(L, idx);
  char *m = pc_asprintf("%s: expected %s, got %s", label, e.data, v);
  free(v);
  pc_buf_free(&e);
  return m;
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
    for (size_t i = 0; i < p->nkeys; i++)
      pc_buf_printf(&b, "%s%s", i == 0 ? "" : i + 1 == p->nkeys ? " or " : ", ",
                    p->keys[i].name);
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
