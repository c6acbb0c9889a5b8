/* test_workflow.c: the workflow model, loaded through the one door
 * (pc_load, pc_load_string). One valid file checked field by field
 * (defaults reach leaf steps only, pools resolve, retry merges key by key,
 * templates get the right kinds), then invalid snippets, each with the
 * exact position and message of its error, a file with many errors that
 * must report all of them in order, the checked-in bad fixtures, the
 * reference check, and what the load options change (--var names and
 * their warning, warnings kept or not, plugin directories). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "cli/builtins.h"
#include "actions/basic.h"
#include "http/action.h"
#include "load/load.h"
#include "model/workflow.h"
#include "script/luahost.h"

/* One Lua host for the loads of every test (made by main): each load
 * compiles its expressions into it. */
static struct pc_lua *host;

static int load_text(const char *name, const char *text, const struct pc_load_opts *opts,
                     struct pc_workflow **wf, struct pc_diag *d)
{
  static const struct pc_load_opts builtin = {.actions = pc_builtin_actions, .warnings = true};
  return pc_load_string(name, text, strlen(text), opts ? opts : &builtin, host, wf, d);
}

static struct pc_workflow *load_ok(const char *text)
{
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf = NULL;
  if (load_text("dir/t.yml", text, NULL, &wf, &d) != 0) {
    pc_diag_print(&d, stderr);
    fail_msg("the workflow did not load");
  }
  assert_int_equal(d.n, 0);
  pc_diag_free(&d);
  return wf;
}

/* The text must fail with exactly `n` errors, one of which is at line:col
 * and contains `substr`. */
static void bad_n(const char *text, size_t n, int line, int col, const char *substr)
{
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf = (struct pc_workflow *)&d; /* must be reset */
  assert_int_equal(load_text("t.yml", text, NULL, &wf, &d), -1);
  assert_null(wf);
  bool found = false;
  for (size_t i = 0; i < d.n; i++)
    found = found || (d.items[i].line == line && d.items[i].col == col &&
                      strstr(d.items[i].msg, substr) != NULL);
  if (!found || d.n != n) {
    pc_diag_print(&d, stderr);
    fail_msg("expected %zu error(s) including %d:%d: ...%s...", n, line, col, substr);
  }
  pc_diag_free(&d);
}

static void bad(const char *text, int line, int col, const char *substr)
{
  bad_n(text, 1, line, col, substr);
}

/* ------------------------------------------------------------ valid file */

static const char valid[] =
    "name: demo\n"                                                     /* 1 */
    "description: A demo.\n"                                           /* 2 */
    "vars:\n"                                                          /* 3 */
    "  api: https://example.com\n"                                     /* 4 */
    "  count: 30\n"                                                    /* 5 */
    "  ratio: 1.5\n"                                                   /* 6 */
    "  flag: true\n"                                                   /* 7 */
    "  nothing:\n"                                                     /* 8 */
    "  quoted: \"42\"\n"                                               /* 9 */
    "  whole: ${{ env.HOME }}\n"                                       /* 10 */
    "  mixed: \"${{ vars.api }}/item/${{ item }}.json\"\n"             /* 11 */
    "  list: [1, \"${{ 2 }}\"]\n"                                      /* 12 */
    "timeout: 60s\n"                                                   /* 13 */
    "defaults:\n"                                                      /* 14 */
    "  timeout: 10s\n"                                                 /* 15 */
    "  retry: { attempts: 3, backoff: 200ms, on: [network, 503] }\n"   /* 16 */
    "  http:\n"                                                        /* 17 */
    "    headers: { User-Agent: pacer }\n"                             /* 18 */
    "pools:\n"                                                         /* 19 */
    "  hn: { concurrency: 5, rate: 20/s }\n"                           /* 20 */
    "  db: { rate: 30/min, burst: 4 }\n"                               /* 21 */
    "  cpu: { concurrency: 2 }\n"                                      /* 22 */
    "steps:\n"                                                         /* 23 */
    "  - id: first\n"                                                  /* 24 */
    "    log: hello\n"                                                 /* 25 */
    "  - id: fan\n"                                                    /* 26 */
    "    for_each: ${{ range(1, 3) }}\n"                               /* 27 */
    "    concurrency: 2\n"                                             /* 28 */
    "    fail_fast: false\n"                                           /* 29 */
    "    pool: [hn, db, hn]\n"                                         /* 30 */
    "    retry: { backoff: 1s, jitter: false }\n"                      /* 31 */
    "    sleep: 1ms\n"                                                 /* 32 */
    "  - id: group\n"                                                  /* 33 */
    "    timeout: 5s\n"                                                /* 34 */
    "    gather:\n"                                                    /* 35 */
    "      - log: a\n"                                                 /* 36 */
    "        continue_on_error: true\n"                                /* 37 */
    "        pool: cpu\n"                                              /* 38 */
    "      - steps:\n"                                                 /* 39 */
    "          - assert: [ \"1 == 1\", \"${{ true }}\" ]\n"            /* 40 */
    "        name: Inner\n"                                            /* 41 */
    "  - if: steps.first.outcome == 'ok'\n"                            /* 42 */
    "    log: x\n"                                                     /* 43 */
    "    expect: { that: \"true\" }\n"                                 /* 44 */
    "    outputs: { n: \"${{ 1 }}\", s: plain }\n"                     /* 45 */
    "    timeout: 2s\n"                                                /* 46 */
    "    retry: { on: [expect] }\n"                                    /* 47 */
    "finally:\n"                                                       /* 48 */
    "  - log: \"done: ${{ workflow.outcome }}\"\n";                    /* 49 */

static void test_valid_header(void **state)
{
  (void)state;
  struct pc_workflow *wf = load_ok(valid);
  assert_string_equal(wf->file, "dir/t.yml");
  assert_string_equal(wf->name, "demo");
  assert_string_equal(wf->description, "A demo.");
  assert_true(wf->timeout_ms == 60000);
  assert_non_null(wf->root);

  assert_int_equal(wf->npools, 3);
  assert_string_equal(wf->pools[0].name, "hn");
  assert_int_equal(wf->pools[0].line, 20);
  assert_int_equal(wf->pools[0].concurrency, 5);
  assert_true(wf->pools[0].rate == 20);
  assert_int_equal(wf->pools[0].burst, 1);
  assert_string_equal(wf->pools[1].name, "db");
  assert_int_equal(wf->pools[1].concurrency, 0);
  assert_true(wf->pools[1].rate == 0.5);
  assert_int_equal(wf->pools[1].burst, 4);
  assert_true(wf->pools[2].rate == 0);

  const struct pc_tmpl *h = pc_workflow_defaults(wf, "http");
  assert_non_null(h);
  assert_int_equal(h->kind, PC_T_MAP);
  assert_string_equal(pc_tmpl_get(pc_tmpl_get(h, "headers"), "User-Agent")->u.str.s, "pacer");
  assert_false(h->has_expr);
  pc_workflow_free(wf);
}

static void test_valid_templates(void **state)
{
  (void)state;
  struct pc_workflow *wf = load_ok(valid);
  const struct pc_tmpl *v = wf->vars;
  assert_int_equal(v->kind, PC_T_MAP);
  assert_true(v->has_expr);
  assert_int_equal(pc_tmpl_get(v, "api")->kind, PC_T_STR);
  assert_string_equal(pc_tmpl_get(v, "api")->u.str.s, "https://example.com");
  assert_int_equal(pc_tmpl_get(v, "count")->kind, PC_T_INT);
  assert_int_equal(pc_tmpl_get(v, "count")->u.i, 30);
  assert_int_equal(pc_tmpl_get(v, "ratio")->kind, PC_T_NUM);
  assert_true(pc_tmpl_get(v, "ratio")->u.num == 1.5);
  assert_int_equal(pc_tmpl_get(v, "flag")->kind, PC_T_BOOL);
  assert_true(pc_tmpl_get(v, "flag")->u.b);
  assert_int_equal(pc_tmpl_get(v, "nothing")->kind, PC_T_NIL);
  assert_int_equal(pc_tmpl_get(v, "quoted")->kind, PC_T_STR);
  assert_null(pc_tmpl_get(v, "absent"));
  assert_null(pc_tmpl_get(pc_tmpl_get(v, "api"), "x"));

  const struct pc_tmpl *whole = pc_tmpl_get(v, "whole");
  assert_int_equal(whole->kind, PC_T_EXPR);
  assert_true(whole->has_expr);
  assert_string_equal(whole->u.expr->src, "env.HOME");
  assert_int_equal(whole->u.expr->line, 10);
  assert_int_equal(whole->u.expr->col, 10);
  assert_string_equal(whole->u.expr->file, "dir/t.yml");
  assert_true(whole->u.expr->ref != -2); /* compiled by the door (-2: LUA_NOREF) */

  const struct pc_tmpl *mixed = pc_tmpl_get(v, "mixed");
  assert_int_equal(mixed->kind, PC_T_INTERP);
  assert_int_equal(mixed->u.interp.n, 4);
  assert_string_equal(mixed->u.interp.parts[0].expr->src, "vars.api");
  assert_int_equal(mixed->u.interp.parts[0].expr->col, 11); /* inside the quotes */
  assert_string_equal(mixed->u.interp.parts[1].lit, "/item/");
  assert_int_equal(mixed->u.interp.parts[1].lit_len, 6);
  assert_null(mixed->u.interp.parts[1].expr);
  assert_string_equal(mixed->u.interp.parts[2].expr->src, "item");
  assert_int_equal(mixed->u.interp.parts[2].expr->col, 32);
  assert_string_equal(mixed->u.interp.parts[3].lit, ".json");

  const struct pc_tmpl *list = pc_tmpl_get(v, "list");
  assert_int_equal(list->kind, PC_T_SEQ);
  assert_true(list->has_expr);
  assert_int_equal(list->u.coll.n, 2);
  assert_null(list->u.coll.keys);
  assert_int_equal(list->u.coll.items[0]->kind, PC_T_INT);
  assert_false(list->u.coll.items[0]->has_expr);
  assert_int_equal(list->u.coll.items[1]->kind, PC_T_EXPR);

  /* Every expression is listed once, in file order. */
  static const char *const srcs[] = {
    "env.HOME", "vars.api", "item", "2", "range(1, 3)", "1 == 1", "true",
    "steps.first.outcome == 'ok'", "true", "1", "workflow.outcome",
  };
  assert_int_equal(wf->nexprs, PC_ARRAY_SIZE(srcs));
  for (size_t i = 0; i < wf->nexprs; i++)
    assert_string_equal(wf->exprs[i]->src, srcs[i]);
  pc_workflow_free(wf);
}

static void test_valid_steps(void **state)
{
  (void)state;
  struct pc_workflow *wf = load_ok(valid);
  assert_int_equal(wf->nsteps, 4);

  /* A leaf step without its own timeout/retry gets the defaults. */
  const struct pc_step *first = wf->steps[0];
  assert_ptr_equal(first->ops, &pc_log_ops);
  assert_string_equal(first->id, "first");
  assert_int_equal(first->index, 1);
  assert_int_equal(first->line, 24);
  assert_int_equal(first->col, 5);
  assert_string_equal(first->file, "dir/t.yml");
  assert_true(first->timeout_ms == 10000);
  assert_int_equal(first->retry.attempts, 3);
  assert_true(first->retry.backoff_ms == 200);
  assert_true(first->retry.on_set);
  assert_int_equal(first->retry.on, PC_ON_NETWORK);
  assert_int_equal(first->retry.ncodes, 1);
  assert_int_equal(first->retry.codes[0], 503);
  assert_true(first->retry.jitter);
  assert_true(first->retry.factor == 2);
  assert_true(first->retry.max_backoff_ms == 30000);
  assert_true(first->fail_fast);
  assert_int_equal(first->params->kind, PC_T_STR);
  assert_null(first->for_each);
  assert_null(first->if_expr);
  assert_int_equal(first->npools, 0);

  /* The step's retry refines the defaults key by key. */
  const struct pc_step *fan = wf->steps[1];
  assert_ptr_equal(fan->ops, &pc_sleep_ops);
  assert_int_equal(fan->index, 2);
  assert_int_equal(fan->for_each->kind, PC_T_EXPR);
  assert_int_equal(fan->concurrency, 2);
  assert_false(fan->fail_fast);
  assert_int_equal(fan->npools, 2);
  assert_int_equal(fan->pools[0], 0);
  assert_int_equal(fan->pools[1], 1);
  assert_int_equal(fan->retry.attempts, 3);
  assert_true(fan->retry.backoff_ms == 1000);
  assert_false(fan->retry.jitter);
  assert_int_equal(fan->retry.on, PC_ON_NETWORK);
  assert_int_equal(fan->retry.ncodes, 1);
  assert_true(fan->timeout_ms == 10000);

  /* Groups keep their own timeout and never get the default retry; the
   * leaves inside them do. */
  const struct pc_step *group = wf->steps[2];
  assert_int_equal(group->kind, PC_STEP_GATHER);
  assert_true(pc_step_is_group(group));
  assert_true(group->timeout_ms == 5000);
  assert_int_equal(group->retry.attempts, 1);
  assert_false(group->retry.on_set);
  assert_null(group->params);
  assert_int_equal(group->nchildren, 2);
  const struct pc_step *a = group->children[0];
  assert_int_equal(a->index, 1);
  assert_true(a->continue_on_error);
  assert_true(a->timeout_ms == 10000);
  assert_int_equal(a->retry.attempts, 3);
  assert_int_equal(a->npools, 1);
  assert_int_equal(a->pools[0], 2);
  const struct pc_step *inner = group->children[1];
  assert_int_equal(inner->kind, PC_STEP_SEQUENCE);
  assert_int_equal(inner->index, 2);
  assert_string_equal(inner->name, "Inner");
  assert_true(inner->timeout_ms < 0);
  assert_int_equal(inner->retry.attempts, 1);
  assert_int_equal(inner->nchildren, 1);
  const struct pc_step *as = inner->children[0];
  assert_ptr_equal(as->ops, &pc_assert_ops);
  assert_int_equal(as->nasserts, 2);
  assert_string_equal(as->asserts[0]->src, "1 == 1");
  assert_int_equal(as->asserts[0]->line, 40);
  assert_int_equal(as->asserts[0]->col, 24);
  assert_string_equal(as->asserts[1]->src, "true");
  assert_int_equal(as->asserts[1]->col, 34);

  const struct pc_step *last = wf->steps[3];
  assert_null(last->id);
  assert_string_equal(last->if_expr->src, "steps.first.outcome == 'ok'");
  assert_int_equal(last->if_expr->line, 42);
  assert_int_equal(last->if_expr->col, 9);
  assert_int_equal(last->expect.nthat, 1);
  assert_int_equal(last->expect.nstatus, 0);
  assert_int_equal(last->noutputs, 2);
  assert_string_equal(last->outputs[0].name, "n");
  assert_int_equal(last->outputs[0].value->kind, PC_T_EXPR);
  assert_string_equal(last->outputs[1].name, "s");
  assert_int_equal(last->outputs[1].value->kind, PC_T_STR);
  assert_true(last->timeout_ms == 2000);
  assert_int_equal(last->retry.attempts, 3);
  assert_int_equal(last->retry.on, PC_ON_EXPECT); /* `on` replaces as a whole */
  assert_int_equal(last->retry.ncodes, 0);

  assert_int_equal(wf->nfinally, 1);
  assert_int_equal(wf->finally[0]->params->kind, PC_T_INTERP);
  assert_int_equal(wf->finally[0]->index, 1);
  pc_workflow_free(wf);
}

static void test_small_things(void **state)
{
  (void)state;
  /* The name defaults to the file name without directory and extension. */
  struct pc_workflow *wf = load_ok("steps:\n  - log: hi\n");
  assert_string_equal(wf->name, "t");
  assert_null(wf->description);
  assert_null(wf->vars);
  assert_true(wf->timeout_ms < 0);
  assert_true(wf->steps[0]->timeout_ms < 0);
  assert_int_equal(wf->steps[0]->retry.attempts, 1);
  assert_false(wf->steps[0]->retry.on_set);
  pc_workflow_free(wf);

  /* A bare `${{ }}` condition is unwrapped; a single assert scalar is fine. */
  wf = load_ok("steps:\n"
               "  - if: ${{ env.x > 1 }}\n"
               "    assert: env.x ~= nil\n"
               "  - log: ' ${{ 1 }} '\n"
               "  - log: |\n"
               "      a ${{ b }}\n");
  assert_string_equal(wf->steps[0]->if_expr->src, "env.x > 1");
  assert_int_equal(wf->steps[0]->if_expr->col, 9);
  assert_int_equal(wf->steps[0]->nasserts, 1);
  assert_string_equal(wf->steps[0]->asserts[0]->src, "env.x ~= nil");
  /* Whitespace around a lone expression still keeps its type. */
  assert_int_equal(wf->steps[1]->params->kind, PC_T_EXPR);
  /* In a block scalar the scalar's own position is used. */
  assert_int_equal(wf->steps[2]->params->kind, PC_T_INTERP);
  assert_int_equal(wf->steps[2]->params->u.interp.parts[1].expr->line, 5);
  pc_workflow_free(wf);

  /* Statuses, exit codes and odd values. */
  wf = load_ok("vars: {big: 99999999999999999999, hex: 0x10, inf: -.inf}\n"
               "steps:\n"
               "  - for_each: [1, 2]\n"
               "    fail_fast: true\n"
               "    pool: []\n"
               "    assert: item > 0\n");
  assert_int_equal(pc_tmpl_get(wf->vars, "big")->kind, PC_T_NUM);
  assert_int_equal(pc_tmpl_get(wf->vars, "hex")->u.i, 16);
  assert_true(pc_tmpl_get(wf->vars, "inf")->u.num < -1e308);
  assert_int_equal(wf->steps[0]->for_each->kind, PC_T_SEQ);
  pc_workflow_free(wf);

  assert_string_equal(pc_step_key(&(struct pc_step){.kind = PC_STEP_LEAF, .ops = &pc_http_ops}),
                      "http");
  assert_string_equal(pc_step_key(&(struct pc_step){.kind = PC_STEP_GATHER}), "gather");
}

static void test_expect_and_retry_values(void **state)
{
  (void)state;
  /* expect.status is checked against the action; `assert` has none, so
   * test the parsing through the defaults and a `that`-only expect. */
  struct pc_workflow *wf = load_ok("defaults:\n"
                                   "  retry:\n"
                                   "    attempts: 5\n"
                                   "    factor: 1.5\n"
                                   "    max_backoff: 1m\n"
                                   "    unsafe: true\n"
                                   "    on: [timeout, 5xx, 4xx, error, 429]\n"
                                   "steps:\n"
                                   "  - log: x\n"
                                   "    expect:\n"
                                   "      that: [\"result ~= nil\", \"${{ true }}\"]\n");
  const struct pc_retry *r = &wf->steps[0]->retry;
  assert_int_equal(r->attempts, 5);
  assert_true(r->factor == 1.5);
  assert_true(r->max_backoff_ms == 60000);
  assert_true(r->unsafe);
  assert_int_equal(r->on, PC_ON_TIMEOUT | PC_ON_5XX | PC_ON_4XX | PC_ON_ERROR);
  assert_int_equal(r->codes[0], 429);
  assert_int_equal(wf->steps[0]->expect.nthat, 2);
  assert_string_equal(wf->steps[0]->expect.that[1]->src, "true");
  pc_workflow_free(wf);
}

/* -------------------------------------------------------- invalid snippets */

static void test_bad_keys(void **state)
{
  (void)state;
  bad("steps:\n  - log: hi\nstpes: []\n", 3, 1,
      "unknown key \"stpes\" in workflow; did you mean \"steps\"?");
  bad("steps:\n  - log: hi\n    tiemout: 5s\n", 3, 5,
      "unknown key \"tiemout\" in step; did you mean \"timeout\"?");
  bad("steps:\n  - log: hi\n    zzz: 1\n", 3, 5, "unknown key \"zzz\" in step (expected one of: id,");
  bad("defaults: {timeot: 1s}\nsteps:\n  - log: hi\n", 1, 12,
      "unknown key \"timeot\" in defaults; did you mean \"timeout\"?");
  bad("pools:\n  p: {concurency: 2}\nsteps:\n  - log: hi\n", 2, 7,
      "unknown key \"concurency\" in pool \"p\"; did you mean \"concurrency\"?");
  bad("steps:\n  - log: hi\n    retry: {attempt: 2}\n", 3, 13,
      "unknown key \"attempt\" in retry; did you mean \"attempts\"?");
  bad("steps:\n  - log: hi\n    expect: {stauts: 200}\n", 3, 14,
      "did you mean \"status\"?");
  bad("name: x\n", 1, 1, "the workflow has no `steps`");
  bad_n("base: &b {timeout: 1s}\nsteps:\n  - <<: *b\n    log: hi\n", 2, 1, 1,
        "unknown key \"base\" in workflow (expected one of: name,");
  bad_n("steps:\n  - log: hi\n    <<: {timeout: 1s}\n", 1, 3, 5,
        "YAML merge keys (<<) are not supported");
  bad("- log: hi\n", 1, 1, "a workflow is a map (name, steps, ...), got a list");
}

static void test_bad_types(void **state)
{
  (void)state;
  bad("timeout: 5x\nsteps:\n  - log: hi\n", 1, 10,
      "timeout: expected a duration like \"5s\", got \"5x\"");
  bad("steps:\n  - log: hi\n    timeout: [1]\n", 3, 14,
      "timeout: expected a duration like \"5s\", got a list");
  bad("steps:\n  - log: hi\n    timeout: ${{ vars.t }}\n", 3, 14, "${{ }} is not allowed");
  bad("steps:\n  - log: hi\n    timeout: true\n", 3, 14, "got true");
  bad("steps:\n  - log: hi\n    continue_on_error: 1\n", 3, 24,
      "continue_on_error: expected true or false, got 1");
  bad("steps:\n  - gather: [{log: a}]\n    fail_fast: yes\n", 3, 16,
      "fail_fast: expected true or false, got \"yes\"");
  bad("steps:\n  - gather: [{log: a}]\n    concurrency: '2'\n", 3, 18,
      "concurrency: expected an integer, got \"2\"");
  bad("steps:\n  - gather: [{log: a}]\n    concurrency: 0\n", 3, 18,
      "concurrency: expected an integer from 1 to");
  bad("name: [x]\nsteps:\n  - log: hi\n", 1, 7, "name: expected a string, got a list");
  bad("vars: [1]\nsteps:\n  - log: hi\n", 1, 7, "vars: expected a map");
  bad("defaults:\n  http: 5\nsteps:\n  - log: hi\n", 2, 9, "defaults.http: expected a map");
  bad("steps:\n  - log: hi\n    outputs: [a]\n", 3, 14, "outputs: expected a map");
  bad("steps: hello\n", 1, 8, "steps: expected a list of steps, got \"hello\"");
  bad("steps: []\n", 1, 8, "steps: the list of steps is empty");
  bad("steps:\n  - gather: []\n", 2, 13, "gather: the list of steps is empty");
  bad("steps:\n  - assert: []\n", 2, 13, "assert: the list is empty");
  bad("steps:\n  - uses: [a]\n", 2, 11, "uses: expected a plugin name or a workflow file, got a list");
}

static void test_bad_steps(void **state)
{
  (void)state;
  bad("steps:\n  - id: a\n    log: x\n  - id: a\n    log: y\n", 4, 9,
      "duplicate step id \"a\" (first used at line 2)");
  bad("steps:\n  - id: a\n    log: x\nfinally:\n  - id: a\n    log: y\n", 5, 9,
      "duplicate step id \"a\"");
  bad_n("steps:\n  - {id: a, log: x}\n  - {id: b, log: x}\n  - {id: a, log: x}\n"
        "  - {id: a, log: x}\n",
        2, 5, 10, "duplicate step id \"a\" (first used at line 2)");
  bad("steps:\n  - id: Bad-Id\n    log: x\n", 2, 9, "\"Bad-Id\" is not a valid id");
  bad("steps:\n  - id: 1st\n    log: x\n", 2, 9, "\"1st\" is not a valid id");
  bad("steps:\n  - id: 12\n    log: x\n", 2, 9, "id: expected an identifier, got 12");
  bad("steps:\n  - log: a\n    sleep: 1s\n", 3, 5,
      "a step has exactly one action, this one has `log` and `sleep`");
  bad("steps:\n  - id: x\n", 2, 5, "step has no action (one of: sleep, log, assert,");
  bad("steps:\n  - just a string\n", 2, 5, "a step must be a map with one action");
  bad("steps:\n  - steps:\n      - log: a\n    retry: {attempts: 2}\n", 4, 5,
      "retry applies to single steps; put it on the steps inside");
  bad("steps:\n  - log: x\n    with: {a: 1}\n", 3, 5, "`with` applies only to `uses` steps");
  bad("steps:\n  - log: x\n    concurrency: 2\n", 3, 5,
      "concurrency applies to gather or for_each");
  bad("steps:\n  - log: a\n    fail_fast: false\n", 3, 5,
      "fail_fast applies to steps, gather or for_each");
  bad("steps:\n  - log: a\n    label: x\n", 3, 5, "label applies to for_each");
  bad("steps:\n  - for_each: abc\n    log: x\n", 2, 15,
      "for_each: expected a list or one ${{ }} expression, got \"abc\"");
  bad("steps:\n  - for_each: \"a ${{ b }}\"\n    log: x\n", 2, 15, "for_each: expected a list");
  bad("steps:\n  - log: x\n    expect: {status: 200}\n", 3, 14,
      "expect.status does not apply to `log` steps");
  bad("steps:\n  - steps: [{log: a}]\n    expect: {exit_code: 0}\n", 3, 14,
      "expect.exit_code does not apply to `steps` steps");
}

static void test_bad_pools(void **state)
{
  (void)state;
  bad("pools:\n  p: {rate: 5/d}\nsteps:\n  - log: hi\n", 2, 13,
      "rate: expected a rate like \"10/s\", \"30/min\" or \"100/h\", got \"5/d\"");
  bad("pools:\n  p: {concurrency: 1, burst: 2}\nsteps:\n  - log: hi\n", 2, 23,
      "burst applies only with rate");
  bad("pools:\n  p: {concurrency: 0}\nsteps:\n  - log: hi\n", 2, 20,
      "concurrency: expected an integer from 1 to");
  bad("pools:\n  p: {}\nsteps:\n  - log: hi\n", 2, 6, "pool \"p\" limits nothing");
  bad("pools:\n  hn: {concurrency: 1}\nsteps:\n  - log: hi\n    pool: hm\n", 5, 11,
      "unknown pool \"hm\"; did you mean \"hn\"?");
  bad("steps:\n  - log: hi\n    pool: [a]\n", 3, 12,
      "unknown pool \"a\" (the workflow defines no pools)");
  bad("pools: [a]\nsteps:\n  - log: hi\n", 1, 8, "pools: expected a map");
}

static void test_bad_retry_expect(void **state)
{
  (void)state;
  bad("steps:\n  - log: hi\n    retry: {attempts: 0}\n", 3, 23,
      "retry.attempts: expected an integer from 1 to");
  bad("steps:\n  - log: hi\n    retry: {on: [netwrok]}\n", 3, 18,
      "retry.on: unknown condition \"netwrok\"; did you mean \"network\"?");
  bad("steps:\n  - log: hi\n    retry: {on: [700]}\n", 3, 18,
      "retry.on: expected an integer from 100 to 599, got 700");
  bad("steps:\n  - log: hi\n    retry: {factor: 0.5}\n", 3, 21,
      "retry.factor: expected a number >= 1, got 0.5");
  bad("steps:\n  - log: hi\n    retry: {backoff: soon}\n", 3, 22,
      "retry.backoff: expected a duration like \"5s\", got \"soon\"");
  bad("steps:\n  - log: hi\n    retry: {jitter: 'no'}\n", 3, 21,
      "retry.jitter: expected true or false");
  bad("defaults:\n  retry: {attempts: many}\nsteps:\n  - log: hi\n", 2, 21,
      "retry.attempts: expected an integer, got \"many\"");
  bad("steps:\n  - log: hi\n    expect: {that: {a: 1}}\n", 3, 20,
      "expect.that: expected an expression or a list of them, got a map");
  /* (log has no exit code either: two errors) */
  bad_n("steps:\n  - log: hi\n    expect: {exit_code: 300}\n", 2, 3, 25,
      "expect.exit_code: expected an integer from 0 to 255, got 300");
  bad("defaults: {retry: {on: {a: 1}}}\nsteps:\n  - log: hi\n", 1, 24,
      "retry.on: expected a list of conditions, got a map");
}

static void test_bad_expressions(void **state)
{
  (void)state;
  bad("steps:\n  - log: \"abc ${{ b\"\n", 2, 15, "unclosed ${{ (missing }})");
  bad("steps:\n  - log: x ${{ }} y\n", 2, 12, "empty ${{ }} expression");
  bad("steps:\n  - log: 'é ${{ a }} ${{'\n", 2, 22, "unclosed ${{");
  bad("steps:\n  - if: ${{ a }} == ${{ b }}\n    log: x\n", 2, 9,
      "write the whole condition bare, or wrap all of it in one ${{ }}");
  bad("steps:\n  - if: \"${{ a\"\n    log: x\n", 2, 10, "unclosed ${{");
  bad("steps:\n  - if: ${{  }}\n    log: x\n", 2, 9, "empty ${{ }} expression");
  bad("steps:\n  - if: ''\n    log: x\n", 2, 9, "expected an expression, got nothing");
  bad("steps:\n  - if: [a]\n    log: x\n", 2, 9, "expected an expression, got a list");
  bad("steps:\n  - assert: [ok, {a: 1}]\n", 2, 18, "expected an expression, got a map");
  /* Errors inside vars and outputs templates. */
  bad("vars:\n  a: [1, \"${{\"]\nsteps:\n  - log: hi\n", 2, 11, "unclosed ${{");
  bad("steps:\n  - log: hi\n    outputs: {x: \"${{ }}\"}\n", 3, 19, "empty ${{ }}");
}

static void test_yaml_errors_pass_through(void **state)
{
  (void)state;
  bad("steps:\n\t- log: x\n", 2, 1, "tab character in indentation");
  bad("", 1, 1, "the file is empty");
  bad("steps: [1]\n---\nsteps: [2]\n", 2, 1, "more than one YAML document");
  bad("steps:\n  - log: x\n    log: y\n", 3, 5, "duplicate key \"log\"");
}

/* Every error is reported, sorted by position, even when the model is built
 * in a different order (pools and defaults before steps). */
/* A warning is reported with its position but fails nothing; an error in
 * the same file still fails the load, and the count of errors leaves the
 * warning out. */
static void test_warnings_do_not_fail(void **state)
{
  (void)state;
  const char *text = "steps:\n"
                     "  - http: { post: \"http://h/x\" }\n"
                     "    retry: { attempts: 2, on: [network, 503] }\n";
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf = NULL;
  assert_int_equal(load_text("t.yml", text, NULL, &wf, &d), 0);
  assert_non_null(wf);
  assert_int_equal(d.n, 1);
  assert_true(d.items[0].warning);
  assert_int_equal(d.items[0].line, 3);
  assert_int_equal(d.items[0].col, 41);
  assert_non_null(strstr(d.items[0].msg, "retry.on: 503 can never apply: POST is not idempotent"));
  assert_int_equal(pc_diag_count(&d), 0);
  pc_workflow_free(wf);
  pc_diag_free(&d);

  const char *bad_text = "steps:\n"
                         "  - http: { patch: \"http://h/x\" }\n"
                         "    retry: { attempts: 2, on: [5xx] }\n"
                         "  - sleep: nope\n";
  pc_diag_init(&d);
  wf = NULL;
  assert_int_equal(load_text("t.yml", bad_text, NULL, &wf, &d), -1);
  assert_null(wf);
  assert_int_equal(d.n, 2);
  assert_int_equal(pc_diag_count(&d), 1);
  assert_true(d.items[0].warning); /* sorted by position */
  assert_false(d.items[1].warning);
  pc_diag_free(&d);
}

static void test_many_errors(void **state)
{
  (void)state;
  const char *text = "stpes: 1\n"                         /* 1 */
                     "steps:\n"                           /* 2 */
                     "  - log: x\n"                       /* 3 */
                     "    pool: nope\n"                   /* 4 */
                     "  - id: BAD\n"                      /* 5 */
                     "    sleep: forever\n"               /* 6 */
                     "  - 42\n"                           /* 7 */
                     "  - gather:\n"                      /* 8 */
                     "      - log: \"${{ \"\n"            /* 9 */
                     "    retry: {attempts: 2}\n"         /* 10 */
                     "finally:\n"                         /* 11 */
                     "  - {}\n"                           /* 12 */
                     "defaults: {timeout: x}\n"           /* 13 */
                     "pools:\n"                           /* 14 */
                     "  p: {rate: fast}\n";               /* 15 */
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf;
  assert_int_equal(load_text("t.yml", text, NULL, &wf, &d), -1);
  static const struct {
    int line, col;
    const char *substr;
  } want[] = {
    {1, 1, "unknown key \"stpes\""},
    {4, 11, "unknown pool \"nope\""},
    {5, 9, "not a valid id"},
    {6, 12, "expected a duration"},
    {7, 5, "a step must be a map"},
    {9, 15, "unclosed ${{"},
    {10, 5, "retry applies to single steps"},
    {12, 5, "step has no action"},
    {13, 21, "defaults.timeout: expected a duration"},
    {15, 13, "rate: expected a rate"},
  };
  if (d.n != PC_ARRAY_SIZE(want))
    pc_diag_print(&d, stderr);
  assert_int_equal(d.n, PC_ARRAY_SIZE(want));
  for (size_t i = 0; i < d.n; i++) {
    if (d.items[i].line != want[i].line || d.items[i].col != want[i].col ||
        !strstr(d.items[i].msg, want[i].substr)) {
      pc_diag_print(&d, stderr);
      fail_msg("item %zu: expected %d:%d ...%s...", i, want[i].line, want[i].col,
               want[i].substr);
    }
  }
  pc_diag_free(&d);
}

/* The checked-in bad fixtures must each fail with the error their first
 * line announces ("# expect: LINE:COL: substring"). */
static void check_fixture(const char *path, bool has_expect_line)
{
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_workflow *wf;
  /* The same door as `pacer validate`: some fixtures are only caught when
   * expressions compile or plugins are checked. A fresh host each, as
   * validate has. */
  struct pc_lua *h = pc_lua_new();
  assert_non_null(h);
  assert_int_equal(pc_load(path, &(struct pc_load_opts){.actions = pc_builtin_actions, .warnings = true}, h, &wf, &d), -1);
  assert_null(wf);
  pc_lua_free(h);
  assert_true(d.n >= 1);
  if (has_expect_line) {
    FILE *y = fopen(path, "r");
    assert_non_null(y);
    char first[512] = "";
    assert_non_null(fgets(first, sizeof first, y));
    fclose(y);
    int line, col, off = 0;
    if (sscanf(first, "# expect: %d:%d: %n", &line, &col, &off) != 2 || off == 0)
      fail_msg("%s: the first line must be \"# expect: LINE:COL: text\"", path);
    char *want = first + off;
    want[strcspn(want, "\r\n")] = '\0';
    bool found = false;
    for (size_t i = 0; i < d.n; i++)
      found = found || (d.items[i].line == line && d.items[i].col == col &&
                        strstr(d.items[i].msg, want) != NULL);
    if (!found) {
      pc_diag_print(&d, stderr);
      fail_msg("%s: no error %d:%d: %s", path, line, col, want);
    }
  }
  pc_diag_free(&d);
}

static void test_bad_fixtures(void **state)
{
  (void)state;
  const char *data = getenv("PACER_TEST_DATA");
  if (data == NULL)
    skip();
  char dirpath[4096];
  snprintf(dirpath, sizeof dirpath, "%s/bad", data);
  DIR *dir = opendir(dirpath);
  assert_non_null(dir);
  size_t ncases = 0;
  struct dirent *ent;
  while ((ent = readdir(dir)) != NULL) {
    size_t len = strlen(ent->d_name);
    if (len < 5 || strcmp(ent->d_name + len - 4, ".yml") != 0)
      continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dirpath, ent->d_name);
    check_fixture(path, strcmp(ent->d_name, "empty.yml") != 0);
    ncases++;
  }
  closedir(dir);
  assert_true(ncases >= 20);
}

/* Loads `text` with `extra` as the names --var and --vars-file define;
 * returns the messages (of the reference check: the texts are otherwise
 * valid) joined by "\n". */
static char *refs_of(const char *text, const char *const *extra, size_t nextra)
{
  struct pc_load_opts o = {.actions = pc_builtin_actions, .var_names = extra, .nvar_names = nextra, .warnings = true};
  struct pc_workflow *wf = NULL;
  struct pc_diag d;
  pc_diag_init(&d);
  int rc = load_text("t.yml", text, &o, &wf, &d);
  assert_int_equal(rc, d.n ? -1 : 0);
  struct pc_buf b;
  pc_buf_init(&b, 1 << 20);
  pc_buf_puts(&b, "");
  for (size_t i = 0; i < d.n; i++)
    pc_buf_printf(&b, "%d:%d %s\n", d.items[i].line, d.items[i].col, d.items[i].msg);
  pc_diag_free(&d);
  pc_workflow_free(wf);
  return pc_buf_steal(&b);
}

/* steps.ID and vars.NAME are checked where the text says so, and nowhere
 * else: not in strings or comments, not as fields of something else, not
 * when computed, not in expressions that define functions. */
/* Which steps' results anything can read (pc_workflow_mark_readers): the
 * loader sets results_read; the engine keeps a fan-out's per-item results
 * only then. `reads` is one expression; `want` lists, for the steps a, b,
 * c and the id-less fourth, whether each is read. */
static void readers_case(const char *reads, const bool want[4])
{
  char *text = pc_asprintf("vars: {x: a}\n"
                           "steps:\n"
                           "  - id: a\n    for_each: [1, 2]\n    sleep: 0\n"
                           "  - id: b\n    log: x\n"
                           "  - gather:\n      - id: c\n        log: y\n"
                           "  - log: '%s'\n",
                           reads);
  struct pc_workflow *wf = load_ok(text);
  const struct pc_step *steps[4] = {wf->steps[0], wf->steps[1], wf->steps[2]->children[0],
                                    wf->steps[3]};
  for (int i = 0; i < 4; i++)
    if (steps[i]->results_read != want[i])
      fail_msg("%s: step %d: results_read is %d", reads, i, steps[i]->results_read);
  pc_workflow_free(wf);
  free(text);
}

static void test_results_readers(void **state)
{
  (void)state;
  static const bool none[4] = {false, false, false, false};
  static const bool a[4] = {true, false, false, false};
  static const bool ac[4] = {true, false, true, false};
  static const bool all[4] = {true, true, true, false};
  readers_case("no expression", none);
  readers_case("${{ len(steps.a.items) }}", a);
  readers_case("${{ steps [ \"a\" ].outcome }} ${{ steps.c }}", ac);
  readers_case("${{ steps[ [[a]] ] }}", a);
  /* A name in a string or a comment, or a field called steps, is no read. */
  readers_case("${{ \"steps.b\" .. tostring(result) }}", none);
  readers_case("${{ 1 --[[ steps.b ]] }}", none);
  readers_case("${{ workflow.steps }}", none);
  /* Anything else may read any step. */
  readers_case("${{ steps[vars.x] }}", all);
  readers_case("${{ len(steps) }}", all);
  readers_case("${{ steps }}", all);
  readers_case("${{ _ENV[\"steps\"] }}", all);
  readers_case("${{ steps[\"a\\x62\"] }}", all); /* an escape: not a plain name */

  /* Lua code sees `steps` whole. */
  struct pc_workflow *wf = load_ok("steps:\n"
                                   "  - id: a\n    for_each: [1]\n    sleep: 0\n"
                                   "  - lua: return 1\n");
  assert_true(wf->steps[0]->results_read);
  pc_workflow_free(wf);
}

static void test_refs(void **state)
{
  (void)state;
  char *r = refs_of("vars: {name: x, count: 3}\n"
                    "steps:\n"
                    "  - id: top\n"
                    "    log: \"${{ steps.top.outcome }} ${{ steps['top'].outcome }} ${{ vars.name }}\"\n"
                    "  - log: \"${{ 'steps.zz' .. \\\"vars.zz\\\" .. [[steps.zz]] .. [==[vars.zz]==] }}\"\n"
                    "  - log: \"${{ 1 --[[ steps.zz ]] + 2 -- vars.zz\n }}\"\n"
                    "  - log: \"${{ result.steps.zz }} ${{ x:steps() }} ${{ steps[vars.name] }}\"\n"
                    "  - log: \"${{ (function(steps) return steps.zz end)({}) }}\"\n"
                    "  - log: \"${{ 1e+5 + 0x1p-2 + .5 }} ${{ steps .. 'x' }} ${{ steps ['top'] }}\"\n"
                    "  - for_each: [1]\n"
                    "    steps:\n"
                    "      - {id: inner, log: \"${{ steps.inner2 }}\"}\n"
                    "      - {id: inner2, log: \"${{ steps.inner }}\"}\n"
                    "finally:\n"
                    "  - {id: fin, log: \"${{ steps.fin }} ${{ steps.inner }}\", if: \"vars.count\"}\n",
                    NULL, 0);
  assert_string_equal(r, "");
  free(r);
  r = refs_of("vars: {name: x, count: 3}\n"
              "steps:\n"
              "  - id: top\n"
              "    log: \"${{ steps.tpo }} ${{ steps [ \\\"nope\\\" ] }}\"\n"
              "    if: vars.nmae and vars . token\n"
              "  - assert: [\"vars['cuont'] > 1\"]\n",
              NULL, 0);
  assert_string_equal(r, "4:10 unknown step \"tpo\" in \"steps.tpo\"; did you mean steps.top?\n"
                         "4:10 unknown step \"nope\" in \"steps [ \"nope\" ]\": no step has the id "
                         "\"nope\"\n"
                         "5:9 unknown var \"nmae\" in \"vars.nmae and vars . token\"; did you mean "
                         "vars.name?\n"
                         "5:9 unknown var \"token\" in \"vars.nmae and vars . token\": define it "
                         "under `vars:` (null if it must come from --var) or pass --var "
                         "token=VALUE\n"
                         "6:15 unknown var \"cuont\" in \"vars['cuont'] > 1\"; did you mean "
                         "vars.count?\n");
  free(r);
  /* --var and --vars-file names count as defined */
  static const char *const extra[] = {"token", "nmae"};
  r = refs_of("steps:\n  - log: \"${{ vars.token }} ${{ vars.nmae }}\"\n", extra, 2);
  assert_string_equal(r, "");
  free(r);
}

/* What the load options change. The names --var defines that the file
 * does not declare get a warning (with a hint when one is close; names from
 * --vars-file do not); warnings = false drops the warnings of a load that
 * succeeds and keeps those of a load that fails, beside its errors. */
static void test_load_opts_vars_and_warnings(void **state)
{
  (void)state;
  static const char *const names[] = {"regoin", "token", "region", "fromfile"};
  const char *text = "vars: {region: x}\nsteps:\n  - log: \"${{ vars.fromfile }}\"\n";
  struct pc_load_opts o = {
      .actions = pc_builtin_actions, .var_names = names, .nvar_names = 4, .nvar_cli = 3, .warnings = true};
  struct pc_workflow *wf = NULL;
  struct pc_diag d;
  pc_diag_init(&d);
  assert_int_equal(load_text("t.yml", text, &o, &wf, &d), 0);
  pc_workflow_free(wf);
  assert_int_equal(d.n, 2);
  assert_true(d.items[0].warning && d.items[1].warning);
  assert_string_equal(d.items[0].msg, "--var regoin: the workflow declares no var \"regoin\"; did "
                                      "you mean \"region\"?");
  assert_string_equal(d.items[1].msg,
                      "--var token: the workflow declares no var \"token\" under `vars:`");
  pc_diag_free(&d);

  o.warnings = false;
  pc_diag_init(&d);
  assert_int_equal(load_text("t.yml", text, &o, &wf, &d), 0);
  pc_workflow_free(wf);
  assert_int_equal(d.n, 0);
  pc_diag_free(&d);

  const char *bad = "steps:\n"
                    "  - http: { post: \"http://h/x\" }\n"
                    "    retry: { attempts: 2, on: [5xx] }\n"
                    "  - log: \"${{ vars.nope }}\"\n";
  pc_diag_init(&d);
  assert_int_equal(load_text("t.yml", bad, &o, &wf, &d), -1);
  assert_null(wf);
  assert_int_equal(d.n, 2);
  assert_true(d.items[0].warning);
  assert_int_equal(d.items[0].line, 3);
  assert_false(d.items[1].warning);
  assert_non_null(strstr(d.items[1].msg, "unknown var \"nope\""));
  pc_diag_free(&d);
}

/* Plugin directories come from the load options only: there is no global
 * list, and the loader does not read PACER_PLUGIN_PATH (the command line
 * puts its entries into the options). */
static void test_load_opts_plugin_dirs(void **state)
{
  (void)state;
  const char *data = getenv("PACER_TEST_DATA");
  if (data == NULL)
    skip();
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/plugins", data);
  const char *text = "steps:\n  - uses: greet\n    with: {name: x}\n";
  struct pc_workflow *wf = NULL;
  struct pc_diag d;

  assert_int_equal(setenv("PACER_PLUGIN_PATH", dir, 1), 0);
  pc_diag_init(&d);
  assert_int_equal(load_text("nowhere/t.yml", text, NULL, &wf, &d), -1);
  unsetenv("PACER_PLUGIN_PATH");
  assert_int_equal(d.n, 1);
  assert_int_equal(d.items[0].line, 2);
  assert_int_equal(d.items[0].col, 11);
  assert_non_null(strstr(d.items[0].msg, "no plugin named \"greet\" (looked for greet.lua in: "
                                         "nowhere/plugins)"));
  assert_null(strstr(d.items[0].msg, dir));
  pc_diag_free(&d);

  const char *const dirs[] = {"/nonexistent", dir};
  struct pc_load_opts o = {.actions = pc_builtin_actions, .plugin_dirs = dirs, .nplugin_dirs = 2, .warnings = true};
  pc_diag_init(&d);
  assert_int_equal(load_text("nowhere/t.yml", text, &o, &wf, &d), 0);
  assert_int_equal(d.n, 0);
  pc_workflow_free(wf);
  pc_diag_free(&d);
}

/* Positions inside inline Lua come from the nodes, never from reading the
 * file again: the file named here does not exist. A syntax error on a
 * later line of a `|` block is at that line's first non-blank character
 * (the block's column plus the code's own indentation); Lua's "<eof>" line
 * after the block is at the block's column. */
static void test_inline_lua_positions(void **state)
{
  (void)state;
  const char *text = "steps:\n"                  /* 1 */
                     "  - log: x\n"               /* 2 */
                     "  - lua: |\n"               /* 3 */
                     "      local a = 1\n"        /* 4 */
                     "        local b = = 2\n"    /* 5 */
                     "  - lua: |\n"               /* 6 */
                     "      if x then\n"          /* 7 */
                     "  - log: y\n";              /* 8 */
  struct pc_workflow *wf = NULL;
  struct pc_diag d;
  pc_diag_init(&d);
  assert_int_equal(load_text("no/such/dir/t.yml", text, NULL, &wf, &d), -1);
  assert_null(wf);
  if (d.n != 2)
    pc_diag_print(&d, stderr);
  assert_int_equal(d.n, 2);
  assert_int_equal(d.items[0].line, 5);
  assert_int_equal(d.items[0].col, 9);
  assert_non_null(strstr(d.items[0].msg, "lua: syntax error: unexpected symbol near '='"));
  assert_int_equal(d.items[1].line, 8);
  assert_int_equal(d.items[1].col, 7);
  assert_non_null(strstr(d.items[1].msg, "'end' expected"));
  pc_diag_free(&d);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_refs),
    cmocka_unit_test(test_results_readers),
    cmocka_unit_test(test_valid_header),
    cmocka_unit_test(test_valid_templates),
    cmocka_unit_test(test_valid_steps),
    cmocka_unit_test(test_small_things),
    cmocka_unit_test(test_expect_and_retry_values),
    cmocka_unit_test(test_bad_keys),
    cmocka_unit_test(test_bad_types),
    cmocka_unit_test(test_bad_steps),
    cmocka_unit_test(test_bad_pools),
    cmocka_unit_test(test_bad_retry_expect),
    cmocka_unit_test(test_bad_expressions),
    cmocka_unit_test(test_yaml_errors_pass_through),
    cmocka_unit_test(test_warnings_do_not_fail),
    cmocka_unit_test(test_many_errors),
    cmocka_unit_test(test_bad_fixtures),
    cmocka_unit_test(test_load_opts_vars_and_warnings),
    cmocka_unit_test(test_load_opts_plugin_dirs),
    cmocka_unit_test(test_inline_lua_positions),
  };
  host = pc_lua_new();
  assert_non_null(host);
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  pc_lua_free(host);
  return failed;
}
