/* test_plugin.c: the plugin loader (script/plugin.c), as `pacer validate`
 * runs it: real workflow files and plugin files in a fresh temporary
 * directory per test, loaded through the one door (pc_load: compiled, then
 * the plugin checks);
 * every test asserts the exact diagnostics (count, position, text). Covers
 * the search order (plugins/ beside the workflow, then --plugins
 * directories in order, then PACER_PLUGIN_PATH entries: both reach the
 * loader as the options' plugin directories, in that order), the name rules,
 * the checking of `with` against a plugin's inputs, and load errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/diag.h"
#include "cli/builtins.h"
#include "base/log.h"
#include "base/util.h"
#include "load/load.h"
#include "model/workflow.h"
#include "script/luahost.h"
#include "script/plugin.h"

struct fixture {
  char dir[64];
  struct pc_diag d;
  int rc;
  size_t mem_limit; /* 0: the default */
  const char *dirs[8]; /* the options' plugin directories */
  size_t ndirs;
};

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Writes dir/SUB/NAME.lua. */
static void plugin(struct fixture *f, const char *sub, const char *name, const char *text)
{
  char path[512];
  snprintf(path, sizeof path, "%s/%s", f->dir, sub);
  mkdir(path, 0700);
  snprintf(path, sizeof path, "%s/%s/%s.lua", f->dir, sub, name);
  write_file(path, text);
}

static char *sub_path(struct fixture *f, const char *sub)
{
  return pc_asprintf("%s/%s", f->dir, sub);
}

/* Loads dir/wf.yml with `text` the way `pacer validate` does; leaves the
 * diagnostics in f->d and the result in f->rc. */
static void check(struct fixture *f, const char *text)
{
  char path[512];
  snprintf(path, sizeof path, "%s/wf.yml", f->dir);
  write_file(path, text);
  pc_diag_free(&f->d);
  pc_diag_init(&f->d);
  struct pc_workflow *wf = NULL;
  struct pc_lua *h = pc_lua_new();
  assert_non_null(h);
  if (f->mem_limit)
    pc_lua_set_memory_limit(h, f->mem_limit);
  struct pc_load_opts o = {.actions = pc_builtin_actions, .plugin_dirs = f->dirs, .nplugin_dirs = f->ndirs, .warnings = true};
  f->rc = pc_load(path, &o, h, &wf, &f->d);
  pc_workflow_free(wf);
  pc_lua_free(h);
}

static void expect_ok(struct fixture *f)
{
  if (f->rc != 0 || f->d.n != 0) {
    pc_diag_print(&f->d, stderr);
    fail_msg("expected no error");
  }
}

/* Exactly one error, at line:col, containing `substr`. */
static void expect_error(struct fixture *f, int line, int col, const char *substr)
{
  if (f->rc != -1 || f->d.n != 1 || f->d.items[0].line != line || f->d.items[0].col != col ||
      !strstr(f->d.items[0].msg, substr)) {
    pc_diag_print(&f->d, stderr);
    fail_msg("expected one error %d:%d ...%s...", line, col, substr);
  }
}

static int setup(void **state)
{
  struct fixture *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/pacer-test-plugin-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  pc_diag_init(&f->d);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fixture *f = *state;
  pc_diag_free(&f->d);
  char *cmd = pc_asprintf("rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(cmd);
  free(f);
  pc_secrets_clear();
  return 0;
}

/* A plugin whose only input is `name`: which copy of "p" was found shows in
 * whether `with: {NAME: 1}` passes. */
static const char *only_input(const char *name)
{
  static char buf[256];
  snprintf(buf, sizeof buf,
           "return {inputs = {%s = {type = 'integer'}}, run = function() end}\n", name);
  return buf;
}

static const char WF_A[] = "steps:\n  - uses: p\n    with:\n      a: 1\n";

static void test_search_order(void **state)
{
  struct fixture *f = *state;
  char *extra1 = sub_path(f, "extra1"), *extra2 = sub_path(f, "extra2");
  char *env1 = sub_path(f, "env1"), *env2 = sub_path(f, "env2");
  /* --plugins extra1 --plugins extra2, PACER_PLUGIN_PATH=env1:env2 */
  const char *dirs[] = {extra1, extra2, env1, env2};
  memcpy(f->dirs, dirs, sizeof dirs);
  f->ndirs = 4;

  /* Last in the order first: each new copy, earlier in the order, wins. */
  plugin(f, "env2", "p", only_input("a"));
  check(f, WF_A);
  expect_ok(f);
  plugin(f, "env1", "p", only_input("b"));
  check(f, WF_A);
  expect_error(f, 4, 7, "has no input \"a\"");
  plugin(f, "extra2", "p", only_input("a"));
  check(f, WF_A);
  expect_ok(f);
  plugin(f, "extra1", "p", only_input("b"));
  check(f, WF_A);
  expect_error(f, 4, 7, "has no input \"a\"");
  plugin(f, "plugins", "p", only_input("a"));
  check(f, WF_A);
  expect_ok(f);

  /* Not found: the message lists where it looked, in order. */
  check(f, "steps:\n  - uses: nowhere\n");
  expect_error(f, 2, 11, "no plugin named \"nowhere\"");
  char *plugins = sub_path(f, "plugins");
  char *want = pc_asprintf("%s, %s, %s, %s, %s", plugins, extra1, extra2, env1, env2);
  if (!strstr(f->d.items[0].msg, want))
    fail_msg("\"%s\" lacks \"%s\"", f->d.items[0].msg, want);
  free(want);
  free(plugins);
  free(env1);
  free(env2);
  free(extra1);
  free(extra2);
}

/* A name is [A-Za-z0-9_-]{1,64}: nothing can leave the directories. */
static void test_name_rules(void **state)
{
  struct fixture *f = *state;
  plugin(f, "plugins", "ok_name-1", only_input("a"));
  check(f, "steps:\n  - uses: ok_name-1\n");
  expect_ok(f);
  static const char *const bad[] = {"../plugins/ok_name-1", "a b", "a.lua", "x/y", "a$b"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(bad); i++) {
    char *wf = pc_asprintf("steps:\n  - uses: %s\n", bad[i]);
    check(f, wf);
    expect_error(f, 2, 11, "invalid plugin name");
    free(wf);
  }
  char long_name[80];
  memset(long_name, 'a', 65);
  long_name[65] = '\0';
  char *wf = pc_asprintf("steps:\n  - uses: %s\n", long_name);
  check(f, wf);
  expect_error(f, 2, 11, "invalid plugin name");
  free(wf);
  check(f, "steps:\n  - uses: \"\"\n");
  expect_error(f, 2, 11, "expected a plugin name");
  check(f, "steps:\n  - uses: \"ok_name-1\\0../x\"\n");
  expect_error(f, 2, 11, "the plugin name contains a NUL byte");
}

/* `with` against the inputs: unknown names (with a hint), missing required
 * inputs, static values of the wrong type; computed values wait for the
 * run. */
static void test_inputs(void **state)
{
  struct fixture *f = *state;
  plugin(f, "plugins", "p",
         "return {inputs = {\n"
         "  count = {type = 'integer', required = true},\n"
         "  label = {type = 'string', default = 'x'},\n"
         "  tags = {type = 'list'},\n"
         "}, run = function() end}\n");
  check(f, "steps:\n  - uses: p\n    with:\n      count: 2\n      tags: [a]\n");
  expect_ok(f);
  check(f, "steps:\n  - uses: p\n    with:\n      count: 2\n      lable: y\n");
  expect_error(f, 5, 7, "has no input \"lable\" (did you mean \"label\"?)");
  check(f, "steps:\n  - uses: p\n    with:\n      count: 2\n      zzz: y\n");
  expect_error(f, 5, 7, "has no input \"zzz\" (inputs: count, label, tags)");
  check(f, "steps:\n  - uses: p\n    with:\n      label: y\n");
  expect_error(f, 2, 11, "needs input \"count\"");
  check(f, "steps:\n  - uses: p\n    with:\n      count: two\n");
  expect_error(f, 4, 14, "input \"count\": expected integer, got string");
  check(f, "steps:\n  - uses: p\n    with:\n      count: 2\n      tags: {a: 1}\n");
  expect_error(f, 5, 13, "input \"tags\": expected list");
  check(f, "vars:\n  n: two\nsteps:\n  - uses: p\n    with:\n      count: ${{ vars.n }}\n");
  expect_ok(f);
}

/* A plugin that cannot load is reported at the `uses` that names it, with
 * the reason. */
static void test_load_errors(void **state)
{
  struct fixture *f = *state;
  static const struct {
    const char *text, *want;
  } cases[] = {
      {"return {run = function() end", "failed to load: "},
      {"error('no thanks')", "no thanks"},
      {"return 42", "a plugin must return a table"},
      {"return {}", "needs run = function(with, ctx)"},
      {"return {run = function() end, inputs = {x = {type = 'float'}}}", "unknown type \"float\""},
      {"return {run = function() end, inputs = {x = {type = 'integer', default = 'no'}}}",
       "the default is a string, not a integer"},
      {"pacer.sleep(1) return {run = function() end}", "async calls work only while a step runs"},
      {"io.open('/etc/passwd')", "attempt to index a nil value (global 'io')"},
      {"local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(1 << 20) .. i end",
       "Lua memory limit of 32 MiB exceeded"},
  };
  f->mem_limit = (size_t)32 << 20;
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    plugin(f, "plugins", "p", cases[i].text);
    check(f, "steps:\n  - uses: p\n");
    expect_error(f, 2, 11, cases[i].want);
    assert_non_null(strstr(f->d.items[0].msg, "plugin \"p\" failed to load"));
  }
  f->mem_limit = 0;

  /* A file over 4 MiB is not read. */
  char *big = malloc((5u << 20) + 1);
  memset(big, '-', 5u << 20);
  big[5u << 20] = '\0';
  plugin(f, "plugins", "p", big);
  free(big);
  check(f, "steps:\n  - uses: p\n");
  expect_error(f, 2, 11, "larger than 4 MiB");

  /* A top level that never returns is stopped (2 s). */
  plugin(f, "plugins", "p", "while true do end");
  double t0 = pc_mono_ms();
  check(f, "steps:\n  - uses: p\n");
  expect_error(f, 2, 11, "the plugin file ran too long while loading");
  assert_true(pc_mono_ms() - t0 < 10000);
}

/* Each plugin file loads once per state, however many steps use it; a
 * plugin may require sibling modules from its own directory. */
static void test_load_once(void **state)
{
  struct fixture *f = *state;
  plugin(f, "plugins", "lib", "return {twice = function(x) return 2 * x end}\n");
  plugin(f, "plugins", "p",
         "loads = (loads or 0) + 1\n"
         "local lib = require('lib')\n"
         "assert(loads == 1, 'loaded twice')\n"
         "return {inputs = {n = {type = 'integer', default = lib.twice(2)}}, run = function() end}\n");
  check(f, "steps:\n  - uses: p\n  - uses: p\n  - steps:\n      - uses: p\n");
  expect_ok(f);
}

int main(void)
{
  struct pc_log_opts lo = {-1, false, false};
  pc_log_init(&lo);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_search_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_name_rules, setup, teardown),
      cmocka_unit_test_setup_teardown(test_inputs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_load_errors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_load_once, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
