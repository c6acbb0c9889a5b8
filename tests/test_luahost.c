/* test_luahost.c: the expression sandbox. Expressions are compiled and
 * evaluated the way the engine does it (templates from real YAML through
 * the loader's pc_load_tmpl), and every test checks the Lua stack is left
 * as it was found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include "base/diag.h"
#include "cli/builtins.h"
#include "base/log.h"
#include "script/luahost.h"
#include "base/util.h"
#include "model/workflow.h"

struct fixture {
  struct pc_lua *h;
  lua_State *L;
  int root;
  int top;
};

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof *f);
  f->h = pc_lua_new();
  assert_non_null(f->h);
  f->L = pc_lua_state(f->h);
  /* vars = {n = 3, list = {1, 2, 3}, name = "pacer", half = 2.5, map = {a = 1}} */
  lua_newtable(f->L);
  lua_pushinteger(f->L, 3);
  lua_setfield(f->L, -2, "n");
  lua_newtable(f->L);
  for (int i = 1; i <= 3; i++) {
    lua_pushinteger(f->L, i);
    lua_rawseti(f->L, -2, i);
  }
  lua_setfield(f->L, -2, "list");
  lua_pushstring(f->L, "pacer");
  lua_setfield(f->L, -2, "name");
  lua_pushnumber(f->L, 2.5);
  lua_setfield(f->L, -2, "half");
  lua_newtable(f->L);
  lua_pushinteger(f->L, 1);
  lua_setfield(f->L, -2, "a");
  lua_setfield(f->L, -2, "map");
  f->root = pc_lua_root_scope(f->h, "wf", "run-1");
  f->top = lua_gettop(f->L);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;
  assert_int_equal(lua_gettop(f->L), f->top);
  pc_lua_free(f->h);
  free(f);
  pc_secrets_clear();
  return 0;
}

/* Evaluates `src` (a bare expression) and returns its text form, or the
 * error message prefixed with "ERR:". */
static char *eval_text(struct fixture *f, int scope, const char *src)
{
  struct pc_expr e = {.src = (char *)src, .file = "t.yml", .line = 1, .col = 1, .ref = LUA_NOREF};
  struct pc_diag d;
  pc_diag_init(&d);
  if (pc_lua_compile_expr(f->h, &e, &d) != 0) {
    char *m = malloc(strlen(d.items[0].msg) + 5);
    strcpy(m, "ERR:");
    strcat(m, d.items[0].msg);
    pc_diag_free(&d);
    return m;
  }
  pc_diag_free(&d);
  char *err = NULL;
  if (pc_lua_eval(f->h, &e, scope, &err) != 0) {
    char *m = malloc(strlen(err) + 5);
    strcpy(m, "ERR:");
    strcat(m, err);
    free(err);
    pc_lua_unref(f->h, e.ref);
    return m;
  }
  char *text = pc_lua_to_text(f->h, -1, NULL);
  lua_pop(f->L, 1);
  pc_lua_unref(f->h, e.ref);
  return text;
}

#define EXPECT_TEXT(f, src, want)                 \
  do {                                            \
    char *got_ = eval_text((f), (f)->root, (src)); \
    assert_string_equal(got_, (want));            \
    free(got_);                                   \
  } while (0)

#define EXPECT_ERR(f, src, substr)                                 \
  do {                                                             \
    char *got_ = eval_text((f), (f)->root, (src));                 \
    if (strncmp(got_, "ERR:", 4) != 0 || !strstr(got_, (substr))) \
      fail_msg("%s: got \"%s\"", (src), got_);                     \
    free(got_);                                                    \
  } while (0)

static void test_helpers(void **state)
{
  struct fixture *f = *state;
  EXPECT_TEXT(f, "len(vars.list)", "3");
  EXPECT_TEXT(f, "len('abcd')", "4");
  EXPECT_TEXT(f, "len(vars.map)", "1");
  EXPECT_TEXT(f, "join(keys({b = 1, a = 2}), ',')", "a,b");
  EXPECT_TEXT(f, "slice(vars.list, 2, 3)", "[2,3]");
  EXPECT_TEXT(f, "slice(vars.list, 2, 99)", "[2,3]");
  EXPECT_TEXT(f, "range(1, 4)", "[1,2,3,4]");
  EXPECT_TEXT(f, "range(3, 1)", "[]");
  EXPECT_TEXT(f, "join(vars.list, '-')", "1-2-3");
  EXPECT_TEXT(f, "contains(vars.list, 2)", "true");
  EXPECT_TEXT(f, "contains(vars.name, 'ace')", "true");
  EXPECT_TEXT(f, "contains(vars.list, 9)", "false");
  EXPECT_TEXT(f, "json(vars.map)", "{\"a\":1}");
  EXPECT_TEXT(f, "from_json('{\"x\":[1,2]}').x[2]", "2");
  EXPECT_ERR(f, "from_json('{nope')", "invalid JSON");
  EXPECT_TEXT(f, "urlencode('a b&c/d')", "a%20b%26c%2Fd");
  EXPECT_TEXT(f, "default(vars.missing, 'fb')", "fb");
  EXPECT_TEXT(f, "default(vars.n, 'fb')", "3");
  EXPECT_TEXT(f, "now() > 1700000000", "true");
  EXPECT_TEXT(f, "math.max(1, 5)", "5");
  EXPECT_TEXT(f, "string.upper(vars.name)", "PACER");
  EXPECT_TEXT(f, "workflow.name .. '/' .. workflow.run_id", "wf/run-1");
}

static void test_text_formatting(void **state)
{
  struct fixture *f = *state;
  EXPECT_TEXT(f, "3.0", "3");
  EXPECT_TEXT(f, "vars.half", "2.5");
  EXPECT_TEXT(f, "10 / 4", "2.5");
  EXPECT_TEXT(f, "true", "true");
  EXPECT_TEXT(f, "{1, 'two', {x = false}}", "[1,\"two\",{\"x\":false}]");
  EXPECT_TEXT(f, "nil", "null");
}

static void test_errors(void **state)
{
  struct fixture *f = *state;
  EXPECT_ERR(f, "1 +", "syntax error in expression \"1 +\"");
  /* Statements cannot be smuggled past the `return (...)` wrapper. */
  EXPECT_ERR(f, "1) x = (2", "syntax error");
  EXPECT_ERR(f, "vars.nope.deeper", "attempt to index");
  EXPECT_ERR(f, "vars.nope.deeper", "t.yml:1:1");
}

static void test_read_only(void **state)
{
  struct fixture *f = *state;
  EXPECT_ERR(f, "table.insert(vars.list, 4)", "read-only");
  EXPECT_ERR(f, "rawequal(1, 1) and (function() vars.n = 1 end)()", "read-only");
  EXPECT_ERR(f, "(function() steps.x = 1 end)()", "read-only");
  EXPECT_ERR(f, "(function() string.upper = nil end)()", "read-only");
  EXPECT_TEXT(f, "len(vars.list)", "3");
}

static void test_sandbox(void **state)
{
  struct fixture *f = *state;
  const char *gone[] = {"os", "io", "require", "load", "dofile", "loadfile", "debug",
                        "package", "setmetatable", "collectgarbage"};
  for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
    char src[64];
    snprintf(src, sizeof src, "%s == nil", gone[i]);
    EXPECT_TEXT(f, src, "true");
  }
}

static void test_secrets(void **state)
{
  struct fixture *f = *state;
  setenv("PACER_TEST_TOKEN", "hunter2-secret", 1);
  EXPECT_TEXT(f, "secrets.PACER_TEST_TOKEN", "hunter2-secret");
  size_t n;
  char *red = pc_redact("token=hunter2-secret;", 21, &n);
  assert_string_equal(red, "token=***;");
  free(red);
  EXPECT_TEXT(f, "secret('marked-value') and 'ok'", "ok");
  red = pc_redact("x marked-value y", 16, &n);
  assert_string_equal(red, "x *** y");
  free(red);
}

static void test_cpu_guard(void **state)
{
  struct fixture *f = *state;
  uint64_t t0 = uv_hrtime();
  EXPECT_ERR(f, "(function() while true do end end)()", "stopped");
  assert_true((uv_hrtime() - t0) / 1000000 < 5000);
}

static void test_scopes(void **state)
{
  struct fixture *f = *state;
  lua_State *L = f->L;
  /* steps.a in the root; an item scope sees it and has its own steps. */
  lua_newtable(L);
  lua_pushstring(L, "ok");
  lua_setfield(L, -2, "outcome");
  pc_lua_scope_set_step(f->h, f->root, "a");
  int item = pc_lua_child_scope(f->h, f->root);
  lua_pushinteger(L, 7);
  pc_lua_scope_set(f->h, item, "item");
  lua_pushinteger(L, 2);
  pc_lua_scope_set(f->h, item, "index");
  lua_newtable(L);
  lua_pushstring(L, "failed");
  lua_setfield(L, -2, "outcome");
  pc_lua_scope_set_step(f->h, item, "b");
  char *t = eval_text(f, item, "item * 10 + index .. ' ' .. steps.a.outcome .. ' ' .. steps.b.outcome");
  assert_string_equal(t, "72 ok failed");
  free(t);
  /* The item's own step is not visible from the root. */
  t = eval_text(f, f->root, "steps.b == nil");
  assert_string_equal(t, "true");
  free(t);
  pc_lua_scope_get_step(f->h, item, "a");
  assert_true(lua_istable(L, -1));
  lua_pop(L, 1);
  pc_lua_unref(f->h, item);
}

/* Templates from real YAML: types are kept for whole-scalar expressions,
 * interpolation makes strings, and nil interpolation names the expression. */
static void test_templates(void **state)
{
  struct fixture *f = *state;
  lua_State *L = f->L;
  const char *text = "steps:\n"
                     "  - log: [\"${{ vars.list }}\", \"n=${{ vars.n }}!\", 5, \"${{ vars.n > 2 }}\", ~]\n"
                     "  - log: \"x ${{ vars.nope }}\"\n";
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf = NULL;
  assert_int_equal(pc_workflow_load_string("t.yml", text, strlen(text), pc_builtin_actions, &wf, &d), 0);
  assert_int_equal(pc_lua_compile_workflow(f->h, wf, &d), 0);
  char *err = NULL;
  assert_int_equal(pc_lua_eval_tmpl(f->h, wf->steps[0]->params, f->root, &err), 0);
  lua_geti(L, -1, 1);
  assert_true(lua_istable(L, -1));
  lua_pop(L, 1);
  lua_geti(L, -1, 2);
  assert_string_equal(lua_tostring(L, -1), "n=3!");
  lua_pop(L, 1);
  lua_geti(L, -1, 3);
  assert_true(lua_isinteger(L, -1));
  lua_pop(L, 1);
  lua_geti(L, -1, 4);
  assert_true(lua_isboolean(L, -1) && lua_toboolean(L, -1));
  lua_pop(L, 1);
  assert_int_equal(luaL_len(L, -1), 5); /* the null keeps its place */
  lua_pop(L, 1);
  assert_int_equal(pc_lua_eval_tmpl(f->h, wf->steps[1]->params, f->root, &err), -1);
  assert_non_null(strstr(err, "vars.nope"));
  assert_non_null(strstr(err, "t.yml:3:"));
  free(err);
  pc_workflow_free(wf);
  pc_diag_free(&d);
}

/* Numbers print exactly (issue 12): integers as integers, whole floats with
 * every digit and never in scientific notation, other floats with the
 * fewest digits that read back the same. */
static void test_numbers(void **state)
{
  struct fixture *f = *state;
  EXPECT_TEXT(f, "1732700000123456", "1732700000123456");
  EXPECT_TEXT(f, "1732700000123456 / 1", "1732700000123456"); /* a float */
  EXPECT_TEXT(f, "2^63", "9223372036854775808");
  EXPECT_TEXT(f, "-2^70", "-1180591620717411303424");
  EXPECT_TEXT(f, "math.maxinteger", "9223372036854775807");
  EXPECT_TEXT(f, "0.1", "0.1");
  EXPECT_TEXT(f, "0.1 + 0.2", "0.30000000000000004");
  EXPECT_TEXT(f, "1 / 3", "0.3333333333333333");
  EXPECT_TEXT(f, "123456789012345.6", "123456789012345.6");
  EXPECT_TEXT(f, "1e-7", "1e-07");
  EXPECT_TEXT(f, "-0.0", "-0");
  EXPECT_TEXT(f, "100.0", "100");
  EXPECT_TEXT(f, "tonumber(tostring(1/3)) ~= 1/3 and tonumber('' .. json(1/3)) == 1/3", "true");
  EXPECT_TEXT(f, "json({a = 1732700000123456 / 1, b = 2.5, c = 7})",
              "{\"a\":1732700000123456,\"b\":2.5,\"c\":7}");
  EXPECT_TEXT(f, "json(0/0) .. json(1/0)", "nullnull");
}

/* JSON keeps integers, null and empty maps (issue 12). */
static void test_json(void **state)
{
  struct fixture *f = *state;
  EXPECT_TEXT(f, "math.type(from_json('{\"id\": 3}').id)", "integer");
  EXPECT_TEXT(f, "'/item/' .. from_json('{\"id\": 40000001}').id .. '.json'",
              "/item/40000001.json");
  EXPECT_TEXT(f, "math.type(from_json('1.5'))", "float");
  EXPECT_TEXT(f, "math.type(from_json('1e2'))", "float");
  EXPECT_TEXT(f, "math.type(from_json('-9223372036854775808'))", "integer");
  EXPECT_TEXT(f, "math.type(from_json('9223372036854775808'))", "float"); /* past 2^63 */
  EXPECT_TEXT(f, "from_json('12345678901234567890')", "12345678901234567168");
  EXPECT_TEXT(f, "json(from_json('{\"a\":null,\"b\":{},\"c\":[],\"d\":[1,null,3]}'))",
              "{\"a\":null,\"b\":{},\"c\":[],\"d\":[1,null,3]}");
  /* null reads as nil: falsy, and indexing it fails like a missing field */
  EXPECT_TEXT(f, "from_json('{\"a\":null}').a == nil", "true");
  EXPECT_TEXT(f, "not from_json('{\"a\":null}').a", "true");
  EXPECT_TEXT(f, "from_json('{\"a\":null}').a == null", "true");
  EXPECT_TEXT(f, "from_json('null') == nil", "true");
  EXPECT_TEXT(f, "len(from_json('[1,null,3]'))", "3");
  EXPECT_TEXT(f, "default(from_json('{\"a\":null}').a, 'fb')", "fb");
  EXPECT_ERR(f, "from_json('{\"a\":null}').a.b", "attempt to index a nil value (field 'a')");
  EXPECT_ERR(f, "from_json('{\"a\":1}').x.b", "attempt to index a nil value (field 'x')");
  /* strings as bytes, escapes decoded */
  EXPECT_TEXT(f, "from_json('\"caf\\\\u00e9 \\\\\"q\\\\\"\"')", "caf\xc3\xa9 \"q\"");
  /* what is not JSON */
  EXPECT_ERR(f, "from_json('[1,')", "from_json(): invalid JSON: parse error: premature EOF");
  EXPECT_ERR(f, "from_json('1 2')", "invalid JSON");
  EXPECT_ERR(f, "from_json('')", "invalid JSON");
  EXPECT_ERR(f, "from_json('{\"a\": NaN}')", "invalid JSON");
  EXPECT_ERR(f, "from_json(string.rep('[', 1001) .. string.rep(']', 1001))",
             "nested deeper than 1000 levels");
  EXPECT_TEXT(f, "len(from_json(string.rep('[', 999) .. string.rep(']', 999)))", "1");
}

/* Inside maps and lists of a template: `null` is JSON null (except among
 * the top-level options), {} stays a map, and a whole ${{ }} that is nil is
 * an error naming it, as interpolation is (issue 12). */
static void test_template_values(void **state)
{
  struct fixture *f = *state;
  lua_State *L = f->L;
  const char *text = "steps:\n"
                     "  - log:\n"
                     "      url: http://x/\n"
                     "      timeout: null\n"
                     "      json: {keep: 1, parent_id: null, empty: {}, list: [], l2: [null]}\n"
                     "  - log: {a: \"${{ vars.nope }}\"}\n"
                     "  - log: [1, \"${{ secrets.PACER_TEST_UNSET_X }}\"]\n"
                     "  - log: [\"${{ secrets['PACER_TEST_UNSET_X'] }}\"]\n"
                     "  - log: {a: \"${{ default(vars.nope, 'fb') }}\"}\n";
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf = NULL;
  assert_int_equal(pc_workflow_load_string("t.yml", text, strlen(text), pc_builtin_actions, &wf, &d), 0);
  assert_int_equal(pc_lua_compile_workflow(f->h, wf, &d), 0);
  unsetenv("PACER_TEST_UNSET_X");
  char *err = NULL;
  assert_int_equal(pc_lua_eval_tmpl(f->h, wf->steps[0]->params, f->root, &err), 0);
  assert_int_equal(lua_getfield(L, -1, "timeout"), LUA_TNIL); /* an option: left out */
  lua_pop(L, 1);
  lua_getfield(L, -1, "json");
  char *json = pc_lua_to_json(f->h, -1, &err);
  assert_string_equal(json,
                      "{\"empty\":{},\"keep\":1,\"l2\":[null],\"list\":[],\"parent_id\":null}");
  free(json);
  lua_pop(L, 2);
  assert_int_equal(pc_lua_eval_tmpl(f->h, wf->steps[1]->params, f->root, &err), -1);
  assert_string_equal(err, "expression \"vars.nope\" at t.yml:6:15 is nil (use default(value, "
                           "fallback))");
  free(err);
  assert_int_equal(pc_lua_eval_tmpl(f->h, wf->steps[2]->params, f->root, &err), -1);
  assert_non_null(strstr(err, "t.yml:7:15 is nil: the environment variable PACER_TEST_UNSET_X "
                              "is not set"));
  free(err);
  assert_int_equal(pc_lua_eval_tmpl(f->h, wf->steps[3]->params, f->root, &err), -1);
  assert_non_null(strstr(err, "the environment variable PACER_TEST_UNSET_X is not set"));
  free(err);
  assert_int_equal(pc_lua_eval_tmpl(f->h, wf->steps[4]->params, f->root, &err), 0);
  lua_getfield(L, -1, "a");
  assert_string_equal(lua_tostring(L, -1), "fb");
  lua_pop(L, 2);
  pc_workflow_free(wf);
  pc_diag_free(&d);
}

/* Conditions: JSON null is false (however it is reached). */
static void test_null_is_false(void **state)
{
  struct fixture *f = *state;
  lua_State *L = f->L;
  const char *srcs[] = {"from_json('{\"a\":null}').a", "item", "from_json('[null]')[1]"};
  lua_pushlightuserdata(L, NULL);
  int scope = pc_lua_child_scope(f->h, f->root);
  pc_lua_scope_set(f->h, scope, "item");
  for (size_t i = 0; i < sizeof srcs / sizeof srcs[0]; i++) {
    struct pc_expr e = {.src = (char *)srcs[i], .file = "t.yml", .line = 1, .col = 1,
                        .ref = LUA_NOREF};
    struct pc_diag d;
    pc_diag_init(&d);
    assert_int_equal(pc_lua_compile_expr(f->h, &e, &d), 0);
    bool out = true;
    char *err = NULL;
    assert_int_equal(pc_lua_eval_bool(f->h, &e, scope, &out, &err), 0);
    assert_false(out);
    pc_lua_unref(f->h, e.ref);
    pc_diag_free(&d);
  }
  pc_lua_unref(f->h, scope);
}


/* Loads `code` as a chunk and calls it through the door; returns 0 or -1
 * with *err. Results are popped. */
static int door(struct fixture *f, const char *code, double limit_ms, bool traceback, char **err)
{
  assert_int_equal(luaL_loadstring(f->L, code), LUA_OK);
  int rc = pc_lua_call(f->h, 0, 1, limit_ms, "too long", traceback, err);
  if (rc == 0)
    lua_pop(f->L, 1);
  return rc;
}

static void test_door_error_objects(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *code, *want;
  } cases[] = {
      {"error(nil)", "(error object is nil)"},
      {"error({})", "(error object is a table value)"},
      {"error(print)", "(error object is a function value)"},
      {"error(setmetatable({}, {__tostring = function() return 'hi' end}))", "hi"},
      {"error(setmetatable({}, {__tostring = function() return 1 end}))",
       "(error object is a table value whose __tostring returned a number)"},
      {"error(setmetatable({}, {__tostring = function() error('x') end}))",
       "\"]:1: x) (error object is a table value)"},
      {"error(setmetatable({}, {__tostring = function() coroutine.yield() end}))",
       "(the error object's __tostring failed: attempt to yield from outside a coroutine)"},
      {"error(setmetatable({}, {__tostring = function() while true do end end}))",
       "(the error object's __tostring failed: too long"},
      {"error('a\\0b', 0)", "a\\0b"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char *err = NULL;
    assert_int_equal(door(f, cases[i].code, 200, false, &err), -1);
    if (!strstr(err, cases[i].want))
      fail_msg("%s: got \"%s\"", cases[i].code, err);
    free(err);
    assert_int_equal(lua_gettop(f->L), f->top);
  }
  /* A message is cut at 4 KiB, with its length; the traceback follows. */
  char *err = NULL;
  assert_int_equal(door(f, "error(string.rep('x', 100000), 0)", 200, true, &err), -1);
  assert_non_null(strstr(err, "... (100000 bytes in all)\nstack traceback:"));
  assert_true(strlen(err) < 6000);
  free(err);
}

static void test_door_guard(void **state)
{
  struct fixture *f = *state;
  /* pcall cannot swallow the guard once it has tripped. */
  char *err = NULL;
  double t0 = pc_mono_ms();
  assert_int_equal(door(f, "while true do pcall(function() while true do end end) end", 100,
                        false, &err), -1);
  assert_true(pc_mono_ms() - t0 < 2000);
  assert_non_null(strstr(err, "too long"));
  free(err);
  /* Nested in an outer guard, the inner one never outlives it. */
  struct pc_lua_guard saved;
  pc_lua_guard_enter(f->h, &saved, f->L, pc_mono_ms() + 50, NULL, "outer", 0);
  t0 = pc_mono_ms();
  assert_int_equal(door(f, "while true do end", 5000, false, &err), -1);
  assert_true(pc_mono_ms() - t0 < 1000);
  free(err);
  struct pc_lua_guard ended;
  pc_lua_guard_leave(f->h, &saved, &ended);
  assert_true(ended.tripped); /* the outer deadline passed: the outer is tripped too */
  /* Outside guards the hook is gone and the limit off again. */
  assert_false(pc_lua_memory_enforce(f->h, false));
  assert_int_equal(door(f, "local s = 0 for i = 1, 1e6 do s = s + i end return s", 1000, false,
                        &err), 0);
}

static void test_door_memory(void **state)
{
  struct fixture *f = *state;
  pc_lua_set_memory_limit(f->h, (size_t)8 << 20);
  char *err = NULL;
  assert_int_equal(door(f, "return string.rep('x', 64 << 20)", 1000, false, &err), -1);
  assert_non_null(strstr(err, "Lua memory limit of 8 MiB exceeded"));
  free(err);
  /* An allocation made by the host, outside guards, is not refused. */
  char *big = malloc((size_t)16 << 20);
  memset(big, 'x', (size_t)16 << 20);
  lua_pushlstring(f->L, big, (size_t)16 << 20);
  free(big);
  lua_pop(f->L, 1);
  pc_lua_set_memory_limit(f->h, PC_LUA_MEMORY_DEFAULT);
  /* A cap applies outside guards too (host code, PC_LUA_HOST_CODE), and
   * keeps the limit below it. */
  pc_lua_set_memory_cap(f->h, (size_t)24 << 20);
  assert_int_equal(pc_lua_memory_limit(f->h), (size_t)24 << 20);
  assert_int_equal(door(f, "return string.rep('x', 64 << 20)", PC_LUA_HOST_CODE, false, &err),
                   -1);
  assert_non_null(strstr(err, "Lua memory limit of 24 MiB exceeded"));
  free(err);
  pc_lua_set_memory_cap(f->h, 0);
  pc_lua_set_memory_limit(f->h, PC_LUA_MEMORY_DEFAULT);
}

static int raise_it(lua_State *L)
{
  return lua_error(L);
}

static void test_error_text(void **state)
{
  struct fixture *f = *state;
  lua_State *co = lua_newthread(f->L); /* co */
  lua_pushcfunction(co, raise_it);
  luaL_loadstring(co, "return setmetatable({}, {__tostring = function() error('no') end})");
  lua_call(co, 0, 1); /* (co) raise_it, obj */
  int nres;
  int st = lua_resume(co, f->L, 1, &nres);
  assert_int_equal(st, LUA_ERRRUN);
  char *text = pc_lua_error_text(f->h, co, st, true);
  assert_non_null(strstr(text, "(the error object's __tostring failed: "));
  assert_non_null(strstr(text, "(error object is a table value)"));
  assert_non_null(strstr(text, "stack traceback:"));
  free(text);
  assert_true(lua_istable(co, -1)); /* the object stays */
  text = pc_lua_error_text(f->h, co, LUA_ERRMEM, false);
  assert_non_null(strstr(text, "memory"));
  free(text);
  lua_pop(f->L, 1);
}

static void test_plugin_metatables(void **state)
{
  struct fixture *f = *state;
  lua_State *L = f->L;
  /* setmetatable({1, 2}, mt) with an endless __len, mt noted as a
   * plugin's: what an expression hands back is a plain copy. */
  luaL_loadstring(L, "local t = setmetatable({1, 2}, {__len = function() while true do end end})"
                     " return t, getmetatable(t)");
  lua_call(L, 0, 2);                      /* t, mt */
  pc_lua_note_plugin_mt(f->h, L, -1);
  lua_pop(L, 1);                          /* t */
  struct pc_expr e = {.src = (char *)"v", .file = "t.yml", .line = 1, .col = 1, .ref = LUA_NOREF};
  struct pc_diag d;
  pc_diag_init(&d);
  assert_int_equal(pc_lua_compile_expr(f->h, &e, &d), 0);
  pc_diag_free(&d);
  int scope = pc_lua_child_scope(f->h, f->root);
  pc_lua_scope_set(f->h, scope, "v");     /* (t popped) */
  char *err = NULL;
  assert_int_equal(pc_lua_eval(f->h, &e, scope, &err), 0);
  assert_false(lua_getmetatable(L, -1));
  assert_int_equal(luaL_len(L, -1), 2);   /* raw: no __len */
  lua_pop(L, 1);
  pc_lua_unref(f->h, e.ref);
  pc_lua_unref(f->h, scope);
}

int main(void)
{
  struct pc_log_opts lo = {-1, false, false};
  pc_log_init(&lo);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_helpers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_text_formatting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_read_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sandbox, setup, teardown),
      cmocka_unit_test_setup_teardown(test_secrets, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cpu_guard, setup, teardown),
      cmocka_unit_test_setup_teardown(test_scopes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_templates, setup, teardown),
      cmocka_unit_test_setup_teardown(test_numbers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_template_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_null_is_false, setup, teardown),
      cmocka_unit_test_setup_teardown(test_door_error_objects, setup, teardown),
      cmocka_unit_test_setup_teardown(test_door_guard, setup, teardown),
      cmocka_unit_test_setup_teardown(test_door_memory, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_text, setup, teardown),
      cmocka_unit_test_setup_teardown(test_plugin_metatables, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
