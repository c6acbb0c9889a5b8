/* test_params.c: the parameter tables (model/action.h): one table, of an
 * action of this test's own with a parameter of every type, checked by the
 * loader (load/params.c: messages with positions, the short and the map
 * form, ${{ }} left to the run, static_only), by the run-time check of a
 * computed value (script/params.c), and written as the action's schema
 * definition (load/schema.c). The built-in actions' tables are tested
 * through their workflow cases (tests/bad, tests/cases/exec_load_errors)
 * and tests/check_schema.py; the toy action's in test_toy_action.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <lauxlib.h>
#include <lua.h>

#include "base/diag.h"
#include "base/util.h"
#include "load/load.h"
#include "load/schema.h"
#include "script/luahost.h"
#include "script/params.h"

static const char *const colours[] = {"red", "blue", NULL};
static const struct pc_param keys[] = {
    {.name = "text", .type = PC_PARAM_TEXT, .required = true, .nul_kind = "a label"},
    {.name = "name", .type = PC_PARAM_NAME},
    {.name = "code", .type = PC_PARAM_CODE},
    {.name = "count", .type = PC_PARAM_INT, .min = 1, .max = 9},
    {.name = "ratio", .type = PC_PARAM_NUMBER, .min = 0, .max = 1},
    {.name = "loud", .type = PC_PARAM_BOOL},
    {.name = "wait", .type = PC_PARAM_DURATION},
    {.name = "colour", .type = PC_PARAM_ENUM, .allowed = colours, .static_only = true},
    {.name = "argv", .type = PC_PARAM_ARGV},
    {.name = "env", .type = PC_PARAM_ENV},
    {.name = "that", .type = PC_PARAM_EXPRS},
    {.name = "any", .type = PC_PARAM_ANY, .nullable = true},
};
static const struct pc_param value = {.type = PC_PARAM_INT, .got = PC_GOT_KIND};
static const struct pc_params params = {.description = "A test action.", .value = &value,
                                        .keys = keys, .nkeys = PC_ARRAY_SIZE(keys)};

static void never_start(struct pc_attempt *a)
{
  (void)a;
  fail_msg("the test action never runs");
}

static const struct pc_action_ops p_ops = {
    .key = "p", .params = &params, .start = never_start, .cancel = never_start};
static const struct pc_action_ops *const actions[] = {&p_ops, NULL};

/* Loads `steps:\n  - p: VALUE\n`; the messages ("line:col: msg\n") in *msgs. */
static int load(const char *val, char **msgs)
{
  char *text = pc_asprintf("steps:\n  - p: %s\n", val);
  struct pc_lua *h = pc_lua_new();
  struct pc_diag d;
  pc_diag_init(&d);
  const struct pc_load_opts o = {.actions = actions};
  struct pc_workflow *wf = NULL;
  int rc = pc_load_string("p.yml", text, strlen(text), &o, h, &wf, &d);
  struct pc_buf b;
  pc_buf_init(&b, 1 << 16);
  pc_buf_puts(&b, "");
  for (size_t i = 0; i < d.n; i++)
    pc_buf_printf(&b, "%d:%d: %s\n", d.items[i].line, d.items[i].col, d.items[i].msg);
  *msgs = pc_buf_steal(&b);
  pc_diag_free(&d);
  pc_workflow_free(wf);
  pc_lua_free(h);
  free(text);
  return rc;
}

static void ok(const char *val)
{
  char *m;
  if (load(val, &m) != 0)
    fail_msg("%s: %s", val, m);
  free(m);
}

static void bad(const char *val, const char *want)
{
  char *m;
  assert_int_equal(load(val, &m), -1);
  if (!strstr(m, want))
    fail_msg("%s: wanted \"%s\" in:\n%s", val, want, m);
  free(m);
}

static void test_load(void **state)
{
  (void)state;
  ok("3");
  ok("${{ 1 + 2 }}");
  ok("{text: hi, name: n, code: x, count: 9, ratio: 0.5, loud: true, wait: 2s, colour: red, "
     "argv: [ls, -l], env: {A: b}, that: [\"1 == 1\"], any: [1, {a: 2}]}");
  ok("{text: 42, any: }");
  ok("{text: \"${{ 'x' }}\", count: \"${{ 1 }}\", argv: \"${{ {'ls'} }}\", env: \"${{ {} }}\"}");
  ok("\"${{ {text = 'x'} }}\"");
  /* The short form. */
  bad("[1]", "2:8: p: expected an integer, got a list");
  bad("x", "2:8: p: expected an integer, got a string");
  /* The map form: keys, and each type. */
  bad("{text: a, txet: b}", "2:18: unknown key \"txet\" in p; did you mean \"text\"?");
  bad("{count: 1}", "2:8: p: `text` is required");
  bad("{text: [a]}", "2:15: p.text: expected a string, got a list");
  bad("{text: \"a\\0b\"}", "2:15: p.text contains a NUL byte (\\0), which a label cannot hold");
  bad("{text: a, name: \"\"}", "p.name: expected a name, got \"\"");
  bad("{text: a, code: 1}", "p.code: expected code (a string), got 1");
  bad("{text: a, count: 10}", "p.count: expected an integer from 1 to 9, got 10");
  bad("{text: a, count: 1.5}", "p.count: expected an integer from 1 to 9, got 1.5");
  bad("{text: a, ratio: 2}", "p.ratio: expected a number from 0 to 1, got 2");
  bad("{text: a, ratio: x}", "p.ratio: expected a number from 0 to 1, got \"x\"");
  bad("{text: a, loud: yes}", "p.loud: expected true or false, got \"yes\"");
  bad("{text: a, wait: 5 seconds}", "p.wait: expected a duration like \"5s\"");
  bad("{text: a, colour: green}", "p.colour: expected red or blue\n");
  bad("{text: a, colour: bleu}", "p.colour: expected red or blue (did you mean blue?)");
  bad("{text: a, colour: \"${{ 'red' }}\"}",
      "p.colour: must be written out, not computed with ${{ }}");
  bad("{text: a, argv: ls}", "p.argv: expected a list of arguments, got \"ls\"");
  bad("{text: a, argv: []}", "p.argv: the argument list is empty; it needs at least the program");
  bad("{text: a, argv: [ls, [x]]}", "p.argv: argument 2 must be a string, got a list");
  bad("{text: a, env: [1]}", "p.env: expected a map of NAME: VALUE, got a list");
  bad("{text: a, env: {\"A=B\": x}}", "p.env: \"A=B\" is not a valid variable name");
  bad("{text: a, that: {a: 1}}", "p.that: expected one expression or a list of them, got a map");
  bad("{text: a, that: []}", "p.that: expected one expression or a list of them, got a list");
}

/* The run-time check of a computed value (Lua source of the value). */
static void check(const char *lua, const char *want)
{
  lua_State *L = luaL_newstate();
  assert_int_equal(luaL_dostring(L, lua), LUA_OK);
  char *m = pc_params_check(L, -1, "p", &params);
  if (want == NULL && m)
    fail_msg("%s: %s", lua, m);
  if (want && (!m || strcmp(m, want) != 0))
    fail_msg("%s: wanted \"%s\", got \"%s\"", lua, want, m ? m : "(nothing)");
  free(m);
  assert_int_equal(lua_gettop(L), 1); /* the check leaves the stack as it found it */
  lua_close(L);
}

static void test_run_time(void **state)
{
  (void)state;
  check("return 3", NULL);
  check("return 3.5", "p: expected an integer, got 3.5");
  check("return {text = 'a', count = 9, ratio = 1, loud = false, wait = '1s', colour = 'blue',"
        " argv = {'ls'}, env = {}, name = 'n', code = 'c'}",
        NULL);
  check("return {text = 'a', txet = 1}", "p: unknown key \"txet\" (expected text, name, code, "
        "count, ratio, loud, wait, colour, argv, env, that or any)");
  check("return {[1] = 'a', text = 'a'}", "p: unknown key \"number\" (expected text, name, code, "
        "count, ratio, loud, wait, colour, argv, env, that or any)");
  check("return {count = 1}", "p: `text` is required");
  check("return {text = {}}", "p.text: expected a string, got table");
  check("return {text = 'a', name = ''}", "p.name: expected a name, got \"\"");
  check("return {text = 'a', count = 0}", "p.count: expected an integer from 1 to 9, got 0");
  check("return {text = 'a', ratio = 1.5}", "p.ratio: expected a number from 0 to 1, got 1.5");
  check("return {text = 'a', loud = 'yes'}", "p.loud: expected true or false, got \"yes\"");
  check("return {text = 'a', wait = '5 seconds'}", "p.wait: invalid duration 5 seconds");
  check("return {text = 'a', colour = 'green'}",
        "p.colour: expected red or blue, got \"green\"");
  check("return {text = 'a', argv = 'ls'}", "p.argv: expected a list of arguments, got \"ls\"");
  check("return {text = 'a', env = true}", "p.env: expected a map of NAME: VALUE, got true");
}

/* definitions.p, from the table. */
static void test_schema(void **state)
{
  (void)state;
  char *s = pc_schema_json(actions);
  assert_non_null(s);
  const char *want[] = {
      "\"description\": \"A test action.\"",
      "\"required\": [\n            \"text\"\n          ]",
      "\"type\": \"integer\",\n                  \"minimum\": 1,\n                  \"maximum\": 9",
      "\"type\": \"number\",\n                  \"minimum\": 0,\n                  \"maximum\": 1",
      "\"colour\": {\n              \"enum\": [\n                \"red\",\n"
      "                \"blue\"",
      "\"$ref\": \"#/definitions/duration\"",
      "\"$ref\": \"#/definitions/expressions\"",
      "\"propertyNames\": {\n                    \"pattern\": \"^[^=]+$\"",
      "\"any\": {\n",
      "\"additionalProperties\": false",
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(want); i++)
    if (!strstr(s, want[i]))
      fprintf(stderr, "wanted %s in definitions.p of:\n%s\n", want[i],
              strstr(s, "\"p\": {\n      \"description\""));
  for (size_t i = 0; i < PC_ARRAY_SIZE(want); i++)
    assert_non_null(strstr(s, want[i]));
  free(s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load),
      cmocka_unit_test(test_run_time),
      cmocka_unit_test(test_schema),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
