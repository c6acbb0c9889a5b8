/* fuzz_expr.c: libFuzzer harness for the expression and template engine.
 *
 * The first input byte picks a mode, the rest is text:
 *   mode 0  a bare expression (as in `if:` and `assert:`), compiled with
 *           pc_lua_compile_expr and evaluated by pc_lua_eval_bool;
 *   mode 1  a template scalar (text with ${{ }} inside, as in any action
 *           value), split by the loader's pc_load_tmpl, every expression
 *           compiled, then evaluated by pc_lua_eval_tmpl;
 *   mode 2  the same as a bare expression, and the value is also formatted
 *           with pc_lua_to_text and pc_lua_to_json (interpolation and
 *           reports);
 *   mode 3  (first byte 0xF0 and above) the text as a JSON document,
 *           decoded both into tables (pc_json_decode_text) and into a
 *           read-only view (pc_json_view_decode): both must fail with the
 *           same message or both succeed, and then give the same JSON text
 *           (pc_lua_to_json) and the same text when walked through the
 *           view's own metamethods (index, #, pairs) as through the tables.
 * Evaluation happens in a root scope like a run's: a small `vars` table and
 * one finished step, `steps.top`. Each input gets a fresh Lua state, so a
 * reproducer never depends on what ran before it.
 *
 * Input is capped at EXPR_MAX_INPUT bytes: the expression sandbox is not meant to
 * withstand arbitrarily large hostile programs, it is meant not to crash on
 * any text. See fuzz_common.h for the memory cap and the clock speed-up that
 * keep endless loops and memory bombs cheap. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/diag.h"
#include "fuzz_common.h"
#include "base/log.h"
#include "script/json.h"
#include "script/luahost.h"
#include "model/workflow.h"
#include "base/yamlload.h"

#define EXPR_MAX_INPUT 1024

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* vars = {n = 3, list = {1, 2, 3}, name = "pacer", half = 2.5,
 *         map = {a = 1, b = {"x", "y"}}} */
static void push_vars(lua_State *L)
{
  lua_newtable(L);
  lua_pushinteger(L, 3);
  lua_setfield(L, -2, "n");
  lua_newtable(L);
  for (int i = 1; i <= 3; i++) {
    lua_pushinteger(L, i);
    lua_rawseti(L, -2, i);
  }
  lua_setfield(L, -2, "list");
  lua_pushstring(L, "pacer");
  lua_setfield(L, -2, "name");
  lua_pushnumber(L, 2.5);
  lua_setfield(L, -2, "half");
  lua_newtable(L);
  lua_pushinteger(L, 1);
  lua_setfield(L, -2, "a");
  lua_newtable(L);
  lua_pushstring(L, "x");
  lua_rawseti(L, -2, 1);
  lua_pushstring(L, "y");
  lua_rawseti(L, -2, 2);
  lua_setfield(L, -2, "b");
  lua_setfield(L, -2, "map");
}

/* steps.top = {outcome = "ok", attempts = 1, json = {10, 20}, body = "[10,20]"} */
static void push_step(lua_State *L)
{
  lua_newtable(L);
  lua_pushstring(L, "ok");
  lua_setfield(L, -2, "outcome");
  lua_pushinteger(L, 1);
  lua_setfield(L, -2, "attempts");
  lua_newtable(L);
  lua_pushinteger(L, 10);
  lua_rawseti(L, -2, 1);
  lua_pushinteger(L, 20);
  lua_rawseti(L, -2, 2);
  lua_setfield(L, -2, "json");
  lua_pushstring(L, "[10,20]");
  lua_setfield(L, -2, "body");
}

static void eval_bare(struct pc_lua *h, int root, const char *src, size_t len, bool format)
{
  lua_State *L = pc_lua_state(h);
  /* The loader copies expression text with strndup too, so it never holds
   * a NUL: stop at the first one, as it does. */
  struct pc_expr e = {.src = strndup(src, len), .file = "fuzz.yml", .line = 1, .col = 1,
                      .ref = LUA_NOREF};
  struct pc_diag d;
  pc_diag_init(&d);
  if (pc_lua_compile_expr(h, &e, &d) == 0) {
    char *err = NULL;
    if (format) {
      if (pc_lua_eval(h, &e, root, &err) == 0) {
        free(pc_lua_to_text(h, -1, NULL));
        char *jerr = NULL;
        free(pc_lua_to_json(h, -1, &jerr));
        free(jerr);
        lua_pop(L, 1);
      }
    } else {
      bool b;
      pc_lua_eval_bool(h, &e, root, &b, &err);
    }
    free(err);
    pc_lua_unref(h, e.ref);
  }
  pc_diag_free(&d);
  free(e.src);
}

static void eval_template(struct pc_lua *h, int root, const char *src, size_t len)
{
  lua_State *L = pc_lua_state(h);
  struct pc_workflow wf;
  memset(&wf, 0, sizeof wf);
  wf.file = (char *)"fuzz.yml";
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_load_ctx c = {.wf = &wf, .d = &d, .file = wf.file};
  char *text = malloc(len + 1);
  memcpy(text, src, len);
  text[len] = '\0';
  struct pc_node n = {.kind = PC_NODE_SCALAR, .line = 1, .col = 1, .str = text, .len = len,
                      .style = PC_STYLE_QUOTED, .text_col = 2};
  struct pc_tmpl *t = pc_load_tmpl(&c, &n);
  if (t) {
    if (pc_lua_compile_workflow(h, &wf, &d) == 0) {
      char *err = NULL;
      if (pc_lua_eval_tmpl(h, t, root, &err) == 0) {
        free(pc_lua_to_text(h, -1, NULL));
        lua_pop(L, 1);
      }
      free(err);
    }
    for (size_t i = 0; i < wf.nexprs; i++)
      if (wf.exprs[i]->ref != LUA_NOREF)
        pc_lua_unref(h, wf.exprs[i]->ref);
    pc_tmpl_free(t);
  }
  free(wf.exprs);
  free(text);
  pc_diag_free(&d);
}

/* Walks v through metamethods only (pairs, #, indexing; JSON null seen as
 * nil), giving a canonical text: sorted keys, lists by #. The same for a
 * view and for the tables it stands for behind a read-only proxy. */
static const char WALK[] =
    "local ro = ...\n"
    "local function walk(v, out)\n"
    "  local t = type(v)\n"
    "  if t == 'userdata' or t == 'table' then\n"
    "    local keys = {}\n"
    "    for k in pairs(v) do keys[#keys + 1] = k end\n"
    "    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "    out[#out + 1] = '{#' .. #v\n"
    "    for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. '='; walk(v[k], out) end\n"
    "    out[#out + 1] = '}'\n"
    "  elseif math.type(v) == 'float' then out[#out + 1] = string.format('%a', v)\n"
    "  else out[#out + 1] = t .. ':' .. tostring(v) end\n"
    "end\n"
    "return function(v, is_view) local out = {}; walk(is_view and v or ro(v), out); return table.concat(out, ' ') end\n";

/* (text, len) -> tables; (text, len, err) -> view or nothing: under
 * lua_pcall, as either raises when the memory cap is reached. */
static int decode_tables(lua_State *L)
{
  return pc_json_decode_text(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
}

static int decode_view(lua_State *L)
{
  char *err = lua_touserdata(L, 3);
  if (pc_json_view_decode(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2), err, 400) != 0)
    return 0;
  return 1;
}

/* mode 3: one document, decoded both ways (see the top). */
static void json_both_ways(struct pc_lua *h, const char *src, size_t len)
{
  lua_State *L = pc_lua_state(h);
  int top = lua_gettop(L);
  char err[400] = "";
  lua_pushcfunction(L, decode_view);
  lua_pushlightuserdata(L, (void *)src);
  lua_pushinteger(L, (lua_Integer)len);
  lua_pushlightuserdata(L, err);
  if (lua_pcall(L, 3, 1, 0) != LUA_OK) { /* out of memory: nothing to compare */
    lua_settop(L, top);
    return;
  }                                      /* view or nil */
  bool view_ok = err[0] == '\0';
  lua_pushcfunction(L, decode_tables);
  lua_pushlightuserdata(L, (void *)src);
  lua_pushinteger(L, (lua_Integer)len);
  bool table_ok = lua_pcall(L, 2, 1, 0) == LUA_OK; /* view, tables or message */
  const char *m = table_ok ? NULL : lua_tostring(L, -1);
  if (m && strstr(m, "not enough memory")) {
    lua_settop(L, top);
    return;
  }
  if (view_ok != table_ok)
    abort();
  if (!view_ok) {
    if (!m || strcmp(m, err) != 0)
      abort();
    lua_settop(L, top);
    return;
  }
  char *e1 = NULL, *e2 = NULL;
  char *a = pc_lua_to_json(h, -2, &e1), *b = pc_lua_to_json(h, -1, &e2);
  if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
    abort();
  free(a), free(b), free(e1), free(e2);
  if (luaL_loadbuffer(L, WALK, sizeof WALK - 1, "=walk") != LUA_OK)
    abort();
  pc_lua_push_prelude(h, "ro");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) /* view, tables, walk */
    abort();
  const char *texts[2];
  for (int i = 0; i < 2; i++) {
    lua_pushvalue(L, -1);                /* ..., walk, walk */
    lua_pushvalue(L, top + 1 + i);       /* ..., walk, walk, value */
    lua_pushboolean(L, i == 0);
    /* The memory cap may stop a walk: then there is nothing to compare. */
    if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
      lua_settop(L, top);
      return;
    }
    texts[i] = lua_tostring(L, -1);
    lua_insert(L, -2);                   /* ..., text, walk */
  }
  if (!texts[0] || !texts[1] || strcmp(texts[0], texts[1]) != 0)
    abort();
  lua_settop(L, top);
}

/* Whether `word` occurs in src[0..len) (which need not be NUL-terminated). */
static bool has_word(const char *src, size_t len, const char *word)
{
  size_t n = strlen(word);
  for (size_t i = 0; i + n <= len; i++)
    if (memcmp(src + i, word, n) == 0)
      return true;
  return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1 || size > EXPR_MAX_INPUT + 1)
    return 0;
  int mode = data[0] >= 0xF0 ? 3 : data[0] % 3;
  const char *src = (const char *)data + 1;
  size_t len = size - 1;
  /* Lua's pattern matcher can backtrack for hours inside one C call, where
   * no instruction hook reaches (tests/fuzz/known/README.md; pacer's answer
   * is the watchdog thread, tested in tests/cases/fault_blocked_loop_*.yml).
   * The fuzzer would only rediscover that one hang, so inputs that can reach
   * the matcher are left out: the search goes on everywhere else. */
  static const char *const matchers[] = {"match", "find", "gsub"}; /* gmatch has match */
  for (size_t i = 0; i < sizeof matchers / sizeof matchers[0]; i++)
    if (has_word(src, len, matchers[i]))
      return 0;

  struct pc_lua *h = pc_lua_new();
  if (!h)
    return 0;
  fuzz_cap_memory(h);
  lua_State *L = pc_lua_state(h);
  int top = lua_gettop(L);
  push_vars(L);
  int root = pc_lua_root_scope(h, "fuzz", "run-1");
  push_step(L);
  pc_lua_scope_set_step(h, root, "top");

  if (mode == 3)
    json_both_ways(h, src, len);
  else if (mode == 1)
    eval_template(h, root, src, len);
  else
    eval_bare(h, root, src, len, mode == 2);

  /* Every entry point must leave the stack as it found it. */
  if (lua_gettop(L) != top)
    abort();
  pc_lua_unref(h, root);
  pc_lua_free(h);
  pc_secrets_clear();
  return 0;
}
