/* matrix.c: `for_each: {matrix: {...}}`, the evaluated matrix turned into
 * the fan-out's list of items, one table per combination.
 *
 * The order is documented (docs/reference.md): the first dimension
 * outermost, the last one varying fastest, as GitHub Actions does, so
 * {os: [a, b], size: [1, 2]} runs a/1, a/2, b/1, b/2. The dimensions'
 * order is the file's, which the loader keeps (st->matrix_keys): a Lua
 * table has none. `exclude` drops each combination that matches all of an
 * entry's pairs; `include` then, as GitHub Actions does, adds an entry's
 * other pairs to every combination whose dimensions it matches (the added
 * pairs may be overwritten by a later entry, the dimensions never), or,
 * when it matches none, appends the entry as a combination of its own. */
#include "core/task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/util.h"

/* More combinations than this is a mistake, not a test plan: a fan-out
 * that size wants a list it computes. */
#define MATRIX_MAX 1000000

static bool is_dimension(const struct pc_step *st, const char *key)
{
  for (size_t i = 0; i < st->nmatrix_keys; i++)
    if (strcmp(st->matrix_keys[i], key) == 0)
      return true;
  return false;
}

/* Whether the table at `combo` has every pair of the table at `entry` (a
 * dimension pair only, when `dims_only`). */
static bool matches(lua_State *L, const struct pc_step *st, int combo, int entry, bool dims_only)
{
  bool ok = true;
  lua_pushnil(L); /* key */
  while (ok && lua_next(L, entry) != 0) { /* key, value */
    if (lua_type(L, -2) == LUA_TSTRING &&
        (!dims_only || is_dimension(st, lua_tostring(L, -2)))) {
      lua_pushvalue(L, -2);       /* key, value, key */
      lua_rawget(L, combo);       /* key, value, combo[key] */
      ok = lua_rawequal(L, -1, -2);
      lua_pop(L, 1);
    }
    lua_pop(L, 1); /* key */
  }
  if (!ok)
    lua_pop(L, 1); /* lua_next did not finish: the key is still there */
  return ok;
}

/* Copies the pairs of the table at `entry` into the table at `combo`
 * (those that are no dimension only, when `added_only`). */
static void merge(lua_State *L, const struct pc_step *st, int combo, int entry, bool added_only)
{
  lua_pushnil(L);
  while (lua_next(L, entry) != 0) { /* key, value */
    if (!added_only || lua_type(L, -2) != LUA_TSTRING || !is_dimension(st, lua_tostring(L, -2))) {
      lua_pushvalue(L, -2); /* key, value, key */
      lua_insert(L, -2);    /* key, key, value */
      lua_rawset(L, combo); /* key */
    } else {
      lua_pop(L, 1);
    }
  }
}

/* Where the matrix's member `key` is written (the matrix itself if it has
 * none), for messages: "wf.yml:12:15". malloc'd. */
static char *where(const struct pc_step *st, const char *key)
{
  const struct pc_tmpl *at = st->for_each;
  for (size_t i = 0; i < st->for_each->u.coll.n; i++)
    if (strcmp(st->for_each->u.coll.keys[i], key) == 0)
      at = st->for_each->u.coll.items[i];
  const char *base = strrchr(st->file, '/');
  return pc_asprintf("%s:%d:%d", base ? base + 1 : st->file, at->line, at->col);
}

/* `include` or `exclude` (absent: nil) must be a list of maps. Pushes it,
 * or returns -1 with *err. */
static int entries(lua_State *L, const struct pc_step *st, int m, const char *key, char **err)
{
  lua_getfield(L, m, key);
  if (lua_isnil(L, -1))
    return 0;
  bool ok = lua_istable(L, -1);
  lua_Integer n = ok ? (lua_Integer)lua_rawlen(L, -1) : 0;
  for (lua_Integer i = 1; ok && i <= n; i++) {
    ok = lua_rawgeti(L, -1, i) == LUA_TTABLE;
    lua_pop(L, 1);
  }
  if (!ok) {
    char *w = where(st, key);
    *err = pc_asprintf("for_each.matrix.%s (%s) must be a list of maps, got %s", key, w,
                       luaL_typename(L, -1));
    free(w);
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

int pc__matrix_expand(struct task *t, char **err)
{
  lua_State *L = t->run->L;
  const struct pc_step *st = t->step;
  int m = lua_gettop(L);
  size_t nk = st->nmatrix_keys;
  size_t *len = pc_xcalloc(nk, sizeof *len);
  size_t total = 1;
  for (size_t i = 0; i < nk; i++) {
    int ty = lua_getfield(L, m, st->matrix_keys[i]);
    len[i] = ty == LUA_TTABLE ? (size_t)lua_rawlen(L, -1) : 0;
    if (len[i] == 0) {
      char *w = where(st, st->matrix_keys[i]);
      *err = pc_asprintf("for_each.matrix.%s (%s) must be a non-empty list, got %s",
                         st->matrix_keys[i], w, ty == LUA_TTABLE ? "an empty one" : lua_typename(L, ty));
      free(w);
      lua_pop(L, 1);
      free(len);
      return -1;
    }
    lua_pop(L, 1);
    if (total > MATRIX_MAX / len[i]) {
      char *w = where(st, "");
      *err = pc_asprintf("for_each.matrix (%s) has more than %d combinations", w, MATRIX_MAX);
      free(w);
      free(len);
      return -1;
    }
    total *= len[i];
  }
  if (entries(L, st, m, "exclude", err) != 0) {
    free(len);
    return -1;
  }
  int excl = lua_istable(L, -1) ? lua_gettop(L) : 0;
  if (entries(L, st, m, "include", err) != 0) {
    lua_settop(L, m);
    free(len);
    return -1;
  }
  int incl = lua_istable(L, -1) ? lua_gettop(L) : 0;
  lua_createtable(L, (int)total, 0);
  int out = lua_gettop(L);
  lua_Integer n = 0;
  for (size_t c = 0; c < total; c++) {
    lua_createtable(L, 0, (int)nk); /* combo */
    int combo = lua_gettop(L);
    size_t r = c; /* the last dimension varies fastest */
    for (size_t i = nk; i-- > 0;) {
      lua_getfield(L, m, st->matrix_keys[i]);
      lua_rawgeti(L, -1, (lua_Integer)(r % len[i] + 1));
      lua_setfield(L, combo, st->matrix_keys[i]);
      lua_pop(L, 1);
      r /= len[i];
    }
    bool dropped = false;
    for (lua_Integer e = 1; excl && !dropped && e <= (lua_Integer)lua_rawlen(L, excl); e++) {
      lua_rawgeti(L, excl, e);
      dropped = matches(L, st, combo, lua_gettop(L), false);
      lua_pop(L, 1);
    }
    if (dropped)
      lua_pop(L, 1);
    else
      lua_rawseti(L, out, ++n);
  }
  lua_Integer nmade = n;
  for (lua_Integer e = 1; incl && e <= (lua_Integer)lua_rawlen(L, incl); e++) {
    lua_rawgeti(L, incl, e); /* entry */
    int entry = lua_gettop(L);
    bool matched = false;
    for (lua_Integer j = 1; j <= nmade; j++) {
      lua_rawgeti(L, out, j);
      if (matches(L, st, lua_gettop(L), entry, true)) {
        matched = true;
        merge(L, st, lua_gettop(L), entry, true);
      }
      lua_pop(L, 1);
    }
    if (!matched) {
      lua_newtable(L);
      merge(L, st, lua_gettop(L), entry, false);
      lua_rawseti(L, out, ++n);
    }
    lua_pop(L, 1);
  }
  free(len);
  lua_copy(L, out, m);
  lua_settop(L, m);
  return 0;
}

void pc__matrix_item_push(lua_State *L, const struct pc_step *st)
{
  int item = lua_gettop(L);
  int pieces = 0;
  for (size_t i = 0; i < st->nmatrix_keys; i++) {
    int ty = lua_getfield(L, item, st->matrix_keys[i]);
    if (ty == LUA_TSTRING || ty == LUA_TNUMBER || ty == LUA_TBOOLEAN) {
      luaL_tolstring(L, -1, NULL); /* ..., value, text */
      lua_remove(L, -2);           /* ..., text */
      if (pieces++) {
        lua_pushliteral(L, " "); /* ..., text, " " */
        lua_insert(L, -2);       /* ..., " ", text */
        pieces++;
      }
    } else {
      lua_pop(L, 1);
    }
  }
  if (pieces == 0)
    return;
  lua_concat(L, pieces); /* item, text */
  lua_remove(L, item);
}
