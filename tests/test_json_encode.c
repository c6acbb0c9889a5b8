/* Unit tests of pc_json_encode_exact (script/json.c): the journal writes
 * results down with it and restores them with pc_json_decode, so what it
 * writes must decode to the same value, and what it cannot write exactly
 * it must refuse (the step then runs again on --resume). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "base/util.h"
#include "script/json.h"

static int setup(void **state)
{
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, PC_JSON_MODULE, pc_json_open, 1);
  lua_setglobal(L, "json");
  *state = L;
  return 0;
}

static int teardown(void **state)
{
  lua_close(*state);
  return 0;
}

/* Encodes the value of the Lua expression `expr`: its text, or NULL when
 * refused (malloc'd). The stack is left as it was. */
static char *encode(lua_State *L, const char *expr)
{
  int top = lua_gettop(L);
  char *code = pc_asprintf("return %s", expr);
  assert_int_equal(luaL_dostring(L, code), LUA_OK);
  free(code);
  struct pc_buf b;
  pc_buf_init(&b, 1 << 20);
  int rc = pc_json_encode_exact(L, -1, &b);
  assert_int_equal(lua_gettop(L), top + 1);
  lua_settop(L, top);
  char *out = rc == 0 ? pc_buf_steal(&b) : NULL;
  pc_buf_free(&b);
  return out;
}

static void expect(lua_State *L, const char *expr, const char *json)
{
  char *got = encode(L, expr);
  if (!json) {
    if (got)
      fail_msg("%s: expected a refusal, got %s", expr, got);
    return;
  }
  if (!got)
    fail_msg("%s: refused, expected %s", expr, json);
  assert_string_equal(got, json);
  /* decodes back to a value that encodes the same (one key per object
   * here: the order of a table's keys is Lua's) */
  lua_pushcfunction(L, pc_json_decode);
  lua_pushstring(L, got);
  assert_int_equal(lua_pcall(L, 1, 1, 0), LUA_OK);
  struct pc_buf b;
  pc_buf_init(&b, 1 << 20);
  assert_int_equal(pc_json_encode_exact(L, -1, &b), 0);
  assert_string_equal(b.data ? b.data : "", got);
  pc_buf_free(&b);
  lua_pop(L, 1);
  free(got);
}

static void test_values(void **state)
{
  lua_State *L = *state;
  expect(L, "nil", "null");
  expect(L, "true", "true");
  expect(L, "42", "42");
  expect(L, "-9223372036854775807 - 1", "-9223372036854775808");
  expect(L, "2.5", "2.5");
  expect(L, "3.0", "3.0"); /* stays a float */
  expect(L, "1e300", "1.0000000000000001e+300");
  expect(L, "'a\"b\\\\c\\n\\0d'", "\"a\\\"b\\\\c\\u000a\\u0000d\"");
  expect(L, "'caf\\xc3\\xa9'", "\"caf\xc3\xa9\"");
  expect(L, "{}", "[]");
  expect(L, "json.object({})", "{}");
  expect(L, "{1, 'x', {true}}", "[1,\"x\",[true]]");
  expect(L, "{k = {v = json.null}}", "{\"k\":{\"v\":null}}");
  expect(L, "json.decode('{\"a\":{},\"b\":[]}').a", "{}");
}

static void test_refused(void **state)
{
  lua_State *L = *state;
  expect(L, "print", NULL);
  expect(L, "{f = print}", NULL);
  expect(L, "0/0", NULL);
  expect(L, "1/0", NULL);
  expect(L, "'\\xff'", NULL);            /* not UTF-8 */
  expect(L, "{[1] = 1, x = 2}", NULL);    /* mixed keys */
  expect(L, "{[2] = 1}", NULL);           /* a hole */
  expect(L, "{[true] = 1}", NULL);
  expect(L, "setmetatable({}, {__index = {}})", NULL); /* a proxy */
  expect(L, "(function() local t = {} t.t = t return t end)()", NULL);
  expect(L, "coroutine.create(print)", NULL);
}

/* A table whose fields are built on first use: __pairs builds what
 * pairs() lists, __fields names what only __index gives (as an HTTP
 * result's json); a field __index cannot give is left out. */
static void test_lazy(void **state)
{
  lua_State *L = *state;
  char *all = encode(L, "setmetatable({a = 1}, {__pairs = function(t) rawset(t, 'b', 2) "
                        "return next, t, nil end, __fields = {'c'}, "
                        "__index = function(t, k) if k == 'c' then return 3 end end})");
  assert_non_null(all);
  assert_int_equal(strlen(all), strlen("{\"a\":1,\"b\":2,\"c\":3}"));
  assert_non_null(strstr(all, "\"a\":1"));
  assert_non_null(strstr(all, "\"b\":2"));
  assert_non_null(strstr(all, "\"c\":3"));
  free(all);
  char *got = encode(L, "setmetatable({}, {__pairs = function(t) return next, t, nil end, "
                        "__fields = {'c'}, __index = function() error('no') end})");
  assert_non_null(got);
  assert_string_equal(got, "{}");
  free(got);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_values, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lazy, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
