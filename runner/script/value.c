/* value.c: Lua values to and from the outside: YAML nodes as constant Lua
 * values, and values as text (interpolation, logs) or JSON (reports,
 * bodies). The formatting rules themselves are Lua code in lua/prelude.lua
 * (to_text, to_json); strings take a shortcut in C. */
#include "script/value.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>

#include "script/host.h"
#include "script/internal.h"
#include "script/json.h"
#include "base/util.h"

/* ------------------------------------------------------------ YAML nodes */

static bool parse_yaml_int(const char *s, long long *out)
{
  int base = 10;
  const char *p = s;
  bool neg = false;
  if (*p == '-' || *p == '+') {
    neg = *p == '-';
    p++;
  }
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
    base = p[1] == 'x' ? 16 : 8;
    p += 2;
  }
  errno = 0;
  char *end;
  unsigned long long v = strtoull(p, &end, base);
  if (errno || end == p || *end)
    return false;
  if (v > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u))
    return false;
  *out = neg ? (long long)(0 - v) : (long long)v;
  return true;
}

static double parse_yaml_float(const char *s)
{
  const char *p = s;
  double sign = 1;
  if (*p == '-' || *p == '+') {
    sign = *p == '-' ? -1 : 1;
    p++;
  }
  if (strcasecmp(p, ".inf") == 0)
    return sign * HUGE_VAL;
  if (strcasecmp(p, ".nan") == 0)
    return NAN;
  return strtod(s, NULL);
}

/* `nested`: n is inside a list or map, where null is kept as JSON null
 * (the light userdata NULL) so the key or the list's length survives; at the
 * top level null is nil. */
static void push_node(struct pc_lua *h, const struct pc_node *n, bool nested)
{
  lua_State *L = h->L;
  luaL_checkstack(L, 4, "YAML value too deep");
  switch (n->kind) {
  case PC_NODE_SCALAR:
    switch (pc_node_scalar_type(n)) {
    case PC_SCALAR_NULL:
      if (nested)
        lua_pushlightuserdata(L, NULL);
      else
        lua_pushnil(L);
      return;
    case PC_SCALAR_BOOL:
      lua_pushboolean(L, n->str[0] == 't' || n->str[0] == 'T');
      return;
    case PC_SCALAR_INT: {
      long long v;
      if (parse_yaml_int(n->str, &v))
        lua_pushinteger(L, (lua_Integer)v);
      else
        lua_pushnumber(L, strtod(n->str, NULL)); /* too large for an integer */
      return;
    }
    case PC_SCALAR_FLOAT:
      lua_pushnumber(L, parse_yaml_float(n->str));
      return;
    case PC_SCALAR_STR:
      lua_pushlstring(L, n->str, n->len);
      return;
    }
    return;
  case PC_NODE_SEQ:
    lua_createtable(L, (int)n->n, 0); /* list */
    for (size_t i = 0; i < n->n; i++) {
      push_node(h, n->items[i], true); /* list, item */
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return;
  case PC_NODE_MAP:
    lua_createtable(L, 0, (int)n->n); /* map */
    for (size_t i = 0; i < n->n; i++) {
      push_node(h, n->items[i], true); /* map, value */
      lua_setfield(L, -2, n->keys[i]->str);
    }
    if (n->n == 0)
      pc_json_mark_object(L, -1); /* {} stays a map in JSON */
    return;
  }
}

void pc_lua_push_node(struct pc_lua *h, const struct pc_node *n)
{
  push_node(h, n, false);
}

char *pc_lua_to_text(struct pc_lua *h, int idx, size_t *len)
{
  lua_State *L = h->L;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    char *r = pc_xmalloc(n + 1);
    memcpy(r, s, n + 1);
    if (len)
      *len = n;
    return r;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->to_text_ref); /* fn */
  lua_pushvalue(L, idx);  /* fn, value */
  char *err = NULL;
  if (pc_lua_call(h, 1, 1, PC__EXPR_LIMIT_MS, "formatting a value as text took more than "
                  "1000 ms", false, &err) != 0) { /* text */
    char *m = pc_asprintf("<%s>", err);
    free(err);
    if (len)
      *len = strlen(m);
    return m;
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  char *r = pc_xmalloc(n + 1);
  memcpy(r, s, n);
  r[n] = '\0';
  lua_pop(L, 1);
  if (len)
    *len = n;
  return r;
}

char *pc_lua_to_json(struct pc_lua *h, int idx, char **err)
{
  lua_State *L = h->L;
  idx = lua_absindex(L, idx);
  pc_lua_push_prelude(h, "to_json");                 /* fn */
  lua_pushvalue(L, idx);                 /* fn, value */
  if (pc_lua_call(h, 1, 1, PC__EXPR_LIMIT_MS, "encoding a value as JSON took more than "
                  "1000 ms", false, err) != 0) {
    if (!*err)
      *err = pc_xstrdup("the value cannot be encoded as JSON");
    return NULL;
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  char *r = pc_xmalloc(n + 1);
  memcpy(r, s, n + 1);
  lua_pop(L, 1);
  return r;
}
