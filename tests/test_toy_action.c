/* test_toy_action.c: adding an action is one file and one table line
 * (docs/architecture.md, "Adding an action"). The toy action of
 * tests/toy/toy.c is handed to the loader and the run in a table of its
 * own, beside two built-in actions and without http, exec or Lua actions:
 * its steps load with their positions checked, its defaults.toy reaches
 * it, a computed value is checked when it runs (both checks and its schema
 * definition come from its parameter table, with the messages the test
 * names), its run hook gives the
 * JSON report a statistics section, its report fields appear under its
 * key, `pacer schema` for the table refers to it, and the keys of the
 * actions left out are refused. Nothing of the loader, the engine, the
 * reports or the schema code was changed for it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "actions/basic.h"
#include "base/diag.h"
#include "base/util.h"
#include "core/run.h"
#include "load/load.h"
#include "load/schema.h"
#include "model/outcome.h"
#include "script/luahost.h"
#include "toy/toy.h"

/* The table: the one line that adds the toy is its third. */
static const struct pc_action_ops *const actions[] = {
    &pc_log_ops,
    &pc_assert_ops,
    &pc_toy_ops,
    NULL,
};

/* Loads `text` with the table; returns 0 or -1, the messages in *msgs. */
static int load(const char *text, struct pc_lua *h, struct pc_workflow **wf, char **msgs)
{
  struct pc_diag d;
  pc_diag_init(&d);
  const struct pc_load_opts o = {.actions = actions, .warnings = true};
  int rc = pc_load_string("toy.yml", text, strlen(text), &o, h, wf, &d);
  struct pc_buf b;
  pc_buf_init(&b, 1 << 16);
  for (size_t i = 0; i < d.n; i++)
    pc_buf_printf(&b, "%d:%d: %s\n", d.items[i].line, d.items[i].col, d.items[i].msg);
  *msgs = pc_buf_steal(&b);
  pc_diag_free(&d);
  return rc;
}

/* Loads and runs `text`; the JSON report's text in *report (if not NULL). */
static int run(const char *text, char **report)
{
  struct pc_lua *h = pc_lua_new();
  assert_non_null(h);
  struct pc_workflow *wf = NULL;
  char *msgs = NULL;
  int rc = load(text, h, &wf, &msgs);
  if (rc != 0)
    fprintf(stderr, "%s", msgs);
  assert_int_equal(rc, 0);
  free(msgs);
  char path[] = "/tmp/pacer-test-toy-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  char *spec = pc_asprintf("json:%s", path);
  const char *reports[] = {spec};
  struct pc_run_opts o;
  pc_run_opts_init(&o);
  o.reports = reports;
  o.nreports = 1;
  int code = pc_run_workflow(wf, h, &o);
  pc_workflow_free(wf);
  pc_lua_free(h);
  free(spec);
  if (report) {
    size_t len = 0;
    assert_int_equal(pc_read_file(path, 1 << 24, report, &len), 0);
  }
  unlink(path);
  return code;
}

static void test_toy_runs(void **state)
{
  (void)state;
  int before = pc_toy_cleanups;
  char *rep = NULL;
  int code = run("defaults:\n"
                 "  toy: {prefix: \"n=\"}\n"
                 "steps:\n"
                 "  - id: a\n"
                 "    toy: 20\n"
                 "  - id: b\n"
                 "    toy: ${{ steps.a.count + 1 }}\n"
                 "  - assert: [\"steps.a.value == 'n=20'\", \"steps.b.count == 21\"]\n"
                 "  - log: ${{ steps.b.value }}\n",
                 &rep);
  assert_int_equal(code, PC_EXIT_OK);
  assert_int_equal(pc_toy_cleanups, before + 1); /* the run hook's state, once */
  /* The step's record shows what the toy reported, under its key; the
   * run hook's section is in the statistics. */
  assert_non_null(strstr(rep, "\"action\":\"toy\""));
  assert_non_null(strstr(rep, "\"toy\":{\"status\":0,\"method\":\"WAIT\",\"url\":\"toy://21\"}"));
  assert_non_null(strstr(rep, "\"toy\":{\"started\":2}"));
  free(rep);
}

/* The run's JSON report says `want` (JSON-escaped) and the run fails. */
static void expect_run_error(const char *text, const char *want)
{
  char *rep = NULL;
  assert_int_equal(run(text, &rep), PC_EXIT_ERROR);
  if (!strstr(rep, want))
    fail_msg("wanted %s in:\n%s", want, rep);
  free(rep);
}

static void test_toy_checks_computed_values(void **state)
{
  (void)state;
  /* The messages come from its parameter table (script/params.c). */
  expect_run_error("steps:\n  - toy: ${{ 1000 + 1 }}\n",
                   "toy: expected a count from 1 to 1000, got 1001");
  expect_run_error("steps:\n  - toy: ${{ {count = 5, tag = 'green'} }}\n",
                   "toy.tag: expected red or blue, got \\\"green\\\"");
  expect_run_error("steps:\n  - toy: ${{ {count = 5, colour = 'red'} }}\n",
                   "toy: unknown key \\\"colour\\\" (expected count or tag)");
  expect_run_error("steps:\n  - toy: ${{ {tag = 'red'} }}\n", "toy: `count` is required");
  /* The map form, computed, runs. */
  char *rep = NULL;
  assert_int_equal(run("steps:\n  - id: m\n    toy: ${{ {count = 3, tag = 'red'} }}\n"
                       "  - assert: \"steps.m.tag == 'red' and steps.m.count == 3\"\n"
                       "  - toy: {count: \"${{ steps.m.count }}\", tag: blue}\n",
                       &rep),
                   PC_EXIT_OK);
  free(rep);
  /* Its default retry.on (error) applies like any action's. */
  assert_int_equal(run("steps:\n  - toy: ${{ 0 }}\n    retry: {attempts: 2, backoff: 1ms}\n",
                       NULL),
                   PC_EXIT_ERROR);
}

static void expect_load_error(const char *text, const char *want)
{
  struct pc_lua *h = pc_lua_new();
  assert_non_null(h);
  struct pc_workflow *wf = NULL;
  char *msgs = NULL;
  assert_int_equal(load(text, h, &wf, &msgs), -1);
  if (!strstr(msgs, want))
    fail_msg("wanted \"%s\" in:\n%s", want, msgs);
  free(msgs);
  pc_lua_free(h);
}

static void test_toy_load_checks(void **state)
{
  (void)state;
  /* From its parameter table (load/params.c): toy has no load function. */
  expect_load_error("steps:\n  - toy: many\n",
                    "2:10: toy: expected a count from 1 to 1000, got \"many\"");
  expect_load_error("steps:\n  - toy: [1]\n",
                    "2:10: toy: expected a count from 1 to 1000, got a list");
  expect_load_error("steps:\n  - toy: {count: 5, tga: red}\n",
                    "2:21: unknown key \"tga\" in toy; did you mean \"tag\"?");
  expect_load_error("steps:\n  - toy: {tag: red}\n",
                    "2:10: toy: `count` is required (how many milliseconds to wait)");
  expect_load_error("steps:\n  - toy: {count: 0}\n",
                    "2:18: toy.count: expected an integer from 1 to 1000, got 0");
  expect_load_error("steps:\n  - toy: {count: 1, tag: green}\n",
                    "2:26: toy.tag: expected red or blue\n");
  expect_load_error("steps:\n  - toy: {count: 1, tag: \"${{ 'red' }}\"}\n",
                    "2:26: toy.tag: must be written out, not computed with ${{ }}");
  expect_load_error("defaults:\n  toy: {prefix: x, suffix: y}\nsteps:\n  - toy: 1\n",
                    "2:20: unknown key \"suffix\" in defaults.toy");
  /* defaults.toy from its table too. */
  expect_load_error("defaults:\n  toy: {prefix: [x]}\nsteps:\n  - toy: 1\n",
                    "2:17: defaults.toy.prefix: expected a plain text, got a list");
  expect_load_error("defaults:\n  toy: {prefix: \"${{ 'x' }}\"}\nsteps:\n  - toy: 1\n",
                    "2:17: defaults.toy.prefix: must be written out, not computed with ${{ }}");
  expect_load_error("defaults:\n  toy: [x]\nsteps:\n  - toy: 1\n",
                    "2:8: defaults.toy: expected a map, got a list");
  /* The actions left out of the table do not exist for this load. */
  expect_load_error("steps:\n  - http: {url: \"http://127.0.0.1:1/\"}\n",
                    "step has no action (one of: log, assert, toy, steps, gather)");
  expect_load_error("defaults:\n  http: {}\nsteps:\n  - toy: 1\n",
                    "2:3: unknown key \"http\" in defaults");
  expect_load_error("steps:\n  - log: x\n    with: {a: 1}\n", "3:5: unknown key \"with\" in step");
}

/* `pacer schema` for the table: the toy's references (and an open
 * definition, the base having none), its defaults, none of the actions
 * left out. */
static void test_toy_schema(void **state)
{
  (void)state;
  char *s = pc_schema_json(actions);
  assert_non_null(s);
  assert_non_null(strstr(s, "\"toy\": {\n          \"$ref\": \"#/definitions/toy\"\n"));
  assert_non_null(strstr(s, "\"required\": [\n            \"toy\"\n"));
  /* definitions.toy, written from its parameter table. */
  assert_null(strstr(s, "The `toy` action (any value here: pacer checks it)."));
  assert_non_null(strstr(s, "\"description\": \"Wait N milliseconds, then say so.\""));
  assert_non_null(strstr(s, "\"minimum\": 1,\n"));
  assert_non_null(strstr(s, "\"maximum\": 1000\n"));
  assert_non_null(strstr(s, "\"enum\": [\n"));
  assert_non_null(strstr(s, "\"required\": [\n            \"count\"\n"));
  assert_non_null(strstr(s, "\"description\": \"How many milliseconds to wait.\""));
  assert_non_null(strstr(s, "\"toy\": {\n          \"$ref\": \"#/definitions/toy_defaults\"\n"));
  assert_non_null(strstr(s, "\"toy_defaults\": {\n      \"description\": \"The toy's defaults.\""));
  assert_non_null(
      strstr(s, "\"description\": \"Text put before the count in the result's value.\""));
  assert_non_null(strstr(s, "\"#/definitions/log\""));
  assert_null(strstr(s, "\"#/definitions/http\""));
  assert_null(strstr(s, "\"#/definitions/exec\""));
  free(s);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_toy_schema),
      cmocka_unit_test(test_toy_runs),
      cmocka_unit_test(test_toy_checks_computed_values),
      cmocka_unit_test(test_toy_load_checks),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
