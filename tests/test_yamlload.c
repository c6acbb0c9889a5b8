/* test_yamlload.c: the YAML loader: positions, core-schema typing, anchors,
 * and every way hostile or broken input is refused with a located message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "base/yamlload.h"

static struct pc_node *load_ok(const char *text)
{
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_node *root = NULL;
  int rc = pc_yaml_load_string("t.yml", text, strlen(text), NULL, &root, &d);
  if (rc != 0)
    fail_msg("unexpected error: %d:%d: %s", d.items[0].line, d.items[0].col, d.items[0].msg);
  assert_int_equal(d.n, 0);
  pc_diag_free(&d);
  return root;
}

/* Loads text that must fail, and checks the first error's position and that
 * its message contains `substr`. */
static void load_bad_lim(const char *text, size_t len, const struct pc_yaml_limits *lim,
                         int line, int col, const char *substr)
{
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_node *root = (struct pc_node *)&d; /* must be reset to NULL */
  assert_int_equal(pc_yaml_load_string("t.yml", text, len, lim, &root, &d), -1);
  assert_null(root);
  assert_true(d.n >= 1);
  if (d.items[0].line != line || d.items[0].col != col || !strstr(d.items[0].msg, substr))
    fail_msg("expected %d:%d: ...%s..., got %d:%d: %s", line, col, substr, d.items[0].line,
             d.items[0].col, d.items[0].msg);
  assert_string_equal(d.items[0].file, "t.yml");
  pc_diag_free(&d);
}

static void load_bad(const char *text, int line, int col, const char *substr)
{
  load_bad_lim(text, strlen(text), NULL, line, col, substr);
}

static void test_positions(void **state)
{
  (void)state;
  struct pc_node *r = load_ok("# comment\n"
                              "name: demo\n"
                              "steps:\n"
                              "  - log: hi\n"
                              "    if: \"a == 'b'\"\n"
                              "  - {sleep: 1s}\n"
                              "text: |\n"
                              "  line one\n");
  assert_int_equal(r->kind, PC_NODE_MAP);
  assert_int_equal(r->line, 2);
  assert_int_equal(r->col, 1);
  assert_int_equal(r->n, 3);
  assert_int_equal(r->keys[0]->line, 2);
  const struct pc_node *name = pc_node_get(r, "name");
  assert_int_equal(name->line, 2);
  assert_int_equal(name->col, 7);
  assert_int_equal(name->text_col, 7);
  const struct pc_node *steps = pc_node_get(r, "steps");
  assert_int_equal(steps->kind, PC_NODE_SEQ);
  assert_int_equal(steps->n, 2);
  assert_int_equal(steps->items[0]->line, 4);
  assert_int_equal(steps->items[0]->col, 5);
  const struct pc_node *cond = pc_node_get(steps->items[0], "if");
  assert_int_equal(cond->line, 5);
  assert_int_equal(cond->col, 9);
  assert_int_equal(cond->text_col, 10); /* inside the quotes */
  assert_int_equal(cond->style, PC_STYLE_QUOTED);
  const struct pc_node *flow = steps->items[1];
  assert_int_equal(flow->line, 6);
  assert_int_equal(flow->col, 5);
  assert_int_equal(pc_node_get(flow, "sleep")->col, 13);
  const struct pc_node *text = pc_node_get(r, "text");
  assert_string_equal(text->str, "line one\n");
  assert_int_equal(text->style, PC_STYLE_QUOTED);
  assert_int_equal(text->text_col, 0); /* block scalar: no exact columns */
  assert_int_equal(text->body_line, 8); /* but its text starts on the next line */
  assert_int_equal(text->body_col, 3);
  assert_int_equal(name->body_line, 2);
  assert_int_equal(name->body_col, 7);
  assert_int_equal(cond->body_col, 10);
  assert_null(pc_node_get(r, "nope"));
  assert_null(pc_node_get(name, "x"));
  pc_node_free(r);
}

/* Where block scalars' text starts, for many of them in one file (found in
 * one pass) and with leading blank lines (part of the text). */
static void test_block_body(void **state)
{
  (void)state;
  struct pc_node *r = load_ok("a: |\n"
                              "\n"
                              "    x\n"
                              "b: >-\n"
                              "  y\n"
                              "c: [\"q\", z]\n"
                              "d:\n"
                              "  - |\n"
                              "      w\n");
  const struct pc_node *a = pc_node_get(r, "a");
  assert_string_equal(a->str, "\nx\n");
  assert_int_equal(a->body_line, 2);
  assert_int_equal(a->body_col, 5);
  const struct pc_node *b = pc_node_get(r, "b");
  assert_int_equal(b->body_line, 5);
  assert_int_equal(b->body_col, 3);
  const struct pc_node *c = pc_node_get(r, "c");
  assert_int_equal(c->items[0]->body_col, 6);
  assert_int_equal(c->items[1]->body_col, 10);
  const struct pc_node *d = pc_node_get(r, "d");
  assert_int_equal(d->items[0]->line, 8);
  assert_int_equal(d->items[0]->body_line, 9);
  assert_int_equal(d->items[0]->body_col, 7);
  pc_node_free(r);
}

static void test_text_col_and_utf8(void **state)
{
  (void)state;
  struct pc_node *r = load_ok("é: \"x\\ty\"\n"
                              "b: 'it''s'\n"
                              "c: ééé ${{ x }}\n");
  const struct pc_node *a = pc_node_get(r, "é");
  assert_int_equal(a->col, 4); /* columns count characters, not bytes */
  assert_int_equal(a->text_col, 0); /* an escape breaks the 1:1 mapping */
  assert_int_equal(pc_node_get(r, "b")->text_col, 0);
  assert_int_equal(pc_node_get(r, "c")->text_col, 4);
  pc_node_free(r);
}

static enum pc_scalar_type type_of(const char *yaml_value)
{
  char buf[128];
  snprintf(buf, sizeof buf, "v: %s\n", yaml_value);
  struct pc_node *r = load_ok(buf);
  enum pc_scalar_type t = pc_node_scalar_type(pc_node_get(r, "v"));
  pc_node_free(r);
  return t;
}

static void test_scalar_types(void **state)
{
  (void)state;
  static const struct {
    const char *text;
    enum pc_scalar_type type;
  } cases[] = {
    {"", PC_SCALAR_NULL},        {"~", PC_SCALAR_NULL},         {"null", PC_SCALAR_NULL},
    {"Null", PC_SCALAR_NULL},    {"NULL", PC_SCALAR_NULL},      {"nULL", PC_SCALAR_STR},
    {"true", PC_SCALAR_BOOL},    {"False", PC_SCALAR_BOOL},     {"TRUE", PC_SCALAR_BOOL},
    {"yes", PC_SCALAR_STR},      {"on", PC_SCALAR_STR},         {"tRue", PC_SCALAR_STR},
    {"0", PC_SCALAR_INT},        {"-17", PC_SCALAR_INT},        {"+3", PC_SCALAR_INT},
    {"0x1F", PC_SCALAR_INT},     {"0o17", PC_SCALAR_INT},       {"0o8", PC_SCALAR_STR},
    {"0x", PC_SCALAR_STR},       {"1.5", PC_SCALAR_FLOAT},      {"-.5", PC_SCALAR_FLOAT},
    {"1e3", PC_SCALAR_FLOAT},    {"1.", PC_SCALAR_FLOAT},       {"1e", PC_SCALAR_STR},
    {".inf", PC_SCALAR_FLOAT},   {"-.Inf", PC_SCALAR_FLOAT},    {".NaN", PC_SCALAR_FLOAT},
    {".", PC_SCALAR_STR},        {"5s", PC_SCALAR_STR},         {"'5'", PC_SCALAR_STR},
    {"\"true\"", PC_SCALAR_STR}, {"!!str 5", PC_SCALAR_STR},    {"20/s", PC_SCALAR_STR},
    {"1_000", PC_SCALAR_STR},    {"'null'", PC_SCALAR_STR},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++)
    if (type_of(cases[i].text) != cases[i].type)
      fail_msg("\"%s\": expected type %d, got %d", cases[i].text, cases[i].type,
               type_of(cases[i].text));
}

static void test_kind_names(void **state)
{
  (void)state;
  struct pc_node *r = load_ok("a: {}\nb: []\nc: x\nd: 1\ne: 1.5\nf: true\ng:\n");
  assert_string_equal(pc_node_kind_name(pc_node_get(r, "a")), "map");
  assert_string_equal(pc_node_kind_name(pc_node_get(r, "b")), "list");
  assert_string_equal(pc_node_kind_name(pc_node_get(r, "c")), "string");
  assert_string_equal(pc_node_kind_name(pc_node_get(r, "d")), "integer");
  assert_string_equal(pc_node_kind_name(pc_node_get(r, "e")), "number");
  assert_string_equal(pc_node_kind_name(pc_node_get(r, "f")), "boolean");
  assert_string_equal(pc_node_kind_name(pc_node_get(r, "g")), "null");
  pc_node_free(r);
}

static void test_anchors(void **state)
{
  (void)state;
  struct pc_node *r = load_ok("base: &b {x: 1, y: [a, b]}\n"
                              "copy: *b\n"
                              "s: &s hello\n"
                              "t: *s\n");
  const struct pc_node *base = pc_node_get(r, "base"), *copy = pc_node_get(r, "copy");
  assert_ptr_not_equal(base, copy); /* deep copies, never shared */
  assert_int_equal(copy->kind, PC_NODE_MAP);
  assert_int_equal(copy->line, 2); /* positioned at the alias */
  assert_int_equal(copy->col, 7);
  assert_string_equal(pc_node_get(copy, "y")->items[1]->str, "b");
  assert_string_equal(pc_node_get(r, "t")->str, "hello");
  pc_node_free(r);
  /* A redefined anchor: aliases see the latest definition. */
  r = load_ok("a: &x 1\nb: &x 2\nc: *x\n");
  assert_string_equal(pc_node_get(r, "c")->str, "2");
  pc_node_free(r);
  load_bad("a: *nope\n", 1, 4, "unknown alias *nope");
  load_bad("a: &x [1, *x]\n", 1, 11, "contains it");
}

/* Many anchors and aliases stay linear (anchors are indexed by name). */
static void test_many_anchors(void **state)
{
  (void)state;
  size_t n = 100000;
  struct pc_buf b;
  pc_buf_init(&b, 8u << 20);
  pc_buf_puts(&b, "defs:\n");
  for (size_t i = 0; i < n; i++)
    pc_buf_printf(&b, "  - &a%zu %zu\n", i, i);
  pc_buf_puts(&b, "uses:\n");
  for (size_t i = 0; i < n; i++)
    pc_buf_printf(&b, "  - *a%zu\n", i);
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_yaml_limits lim = pc_yaml_default_limits;
  lim.max_bytes = b.len;
  lim.max_nodes = 4 * n;
  struct pc_node *r;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  assert_int_equal(pc_yaml_load_string("t.yml", b.data, b.len, &lim, &r, &d), 0);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  const struct pc_node *uses = pc_node_get(r, "uses");
  assert_int_equal(uses->n, n);
  assert_string_equal(uses->items[n - 1]->str, "99999");
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(secs < 5.0);
  pc_node_free(r);
  pc_buf_free(&b);
}

static void test_billion_laughs(void **state)
{
  (void)state;
  const char *bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
                     "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                     "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                     "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
                     "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                     "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
                     "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
                     "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  /* 9^6 * 10 nodes for "g" alone: the default limit trips on line 6 or 7. */
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_node *root;
  assert_int_equal(pc_yaml_load_string("t.yml", bomb, strlen(bomb), NULL, &root, &d), -1);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  assert_int_equal(d.n, 1);
  assert_non_null(strstr(d.items[0].msg, "too many nodes (alias expansion?)"));
  assert_true(d.items[0].line == 6 || d.items[0].line == 7);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  assert_true(secs < 1.0);
  pc_diag_free(&d);

  /* A small limit trips on the first copy that would cross it. */
  struct pc_yaml_limits lim = pc_yaml_default_limits;
  lim.max_nodes = 20;
  load_bad_lim("a: &a [1, 2, 3, 4, 5]\nb: [*a, *a, *a]\n", 35, &lim, 2, 9, "too many nodes");
}

static void test_depth_bomb(void **state)
{
  (void)state;
  size_t n = 100000;
  char *text = pc_xmalloc(2 * n + 1);
  memset(text, '[', n);
  memset(text + n, ']', n);
  text[2 * n] = '\0';
  load_bad_lim(text, 2 * n, NULL, 1, 65, "nesting is deeper than 64 levels");
  free(text);
  /* 64 levels are fine. */
  char ok[2 * 64 + 1];
  memset(ok, '[', 64);
  memset(ok + 64, ']', 64);
  ok[128] = '\0';
  pc_node_free(load_ok(ok));
  /* Depth through an alias counts too. */
  struct pc_yaml_limits lim = pc_yaml_default_limits;
  lim.max_depth = 3;
  const char *t = "a: &a [[1]]\nb: [*a]\n";
  load_bad_lim(t, strlen(t), &lim, 2, 5, "deeper than 3 levels (through alias *a)");
}

static void test_size_limit(void **state)
{
  (void)state;
  struct pc_yaml_limits lim = pc_yaml_default_limits;
  lim.max_bytes = 8;
  load_bad_lim("a: 123456789\n", 13, &lim, 0, 0, "too large");
}

static void test_documents(void **state)
{
  (void)state;
  load_bad("a: 1\n---\nb: 2\n", 2, 1, "more than one YAML document");
  load_bad("---\na: 1\n...\n---\nb: 2\n", 4, 1, "more than one YAML document");
  /* One explicit document is fine; an empty one is a null root. */
  struct pc_node *r = load_ok("---\na: 1\n...\n");
  assert_int_equal(r->kind, PC_NODE_MAP);
  pc_node_free(r);
  r = load_ok("---\n");
  assert_int_equal(pc_node_scalar_type(r), PC_SCALAR_NULL);
  pc_node_free(r);
}

static void test_empty(void **state)
{
  (void)state;
  load_bad("", 1, 1, "the file is empty");
  load_bad("\n  \n", 1, 1, "the file is empty");
  load_bad("# just a comment\n", 1, 1, "the file is empty (only comments)");
}

static void test_invalid_utf8(void **state)
{
  (void)state;
  load_bad("a: 1\nb: x\xff\n", 2, 5, "invalid UTF-8");
  load_bad("a: \xc3\n", 1, 4, "invalid UTF-8 (byte 0xC3)");
  load_bad("a: x\xe2\x82\n", 1, 5, "invalid UTF-8 (byte 0xE2)");
  load_bad("a: \x01\n", 1, 4, "control character U+0001");
}

static void test_tabs(void **state)
{
  (void)state;
  load_bad("steps:\n\t- log: x\n", 2, 1, "tab character in indentation");
  load_bad("a:\n  b: 1\n\tc: 2\n", 3, 1, "tab character in indentation");
  /* A tab after the key's colon is just separation. */
  struct pc_node *r = load_ok("a:\tvalue\n");
  assert_string_equal(pc_node_get(r, "a")->str, "value");
  pc_node_free(r);
}

static void test_syntax_error(void **state)
{
  (void)state;
  load_bad("a: [1, 2\n", 2, 1, "invalid YAML");
  load_bad("a: b: c\n", 1, 5, "mapping values are not allowed");
  load_bad("a: \"unterminated\n", 2, 1, "invalid YAML");
}

static void test_keys(void **state)
{
  (void)state;
  load_bad("a: 1\nb: 2\na: 3\n", 3, 1, "duplicate key \"a\" (first defined at line 1)");
  load_bad("x: {k: 1, k: 2}\n", 1, 11, "duplicate key \"k\"");
  load_bad("? [a, b]\n: 1\n", 1, 3, "a map key must be a plain value, not a list");
  load_bad("a: !custom x\n", 1, 4, "YAML tags are not supported");

  /* Every duplicate is reported, in file order. */
  const char *t = "z: 1\ny: 1\nz: 2\ny: 2\nz: 3\n";
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_node *root;
  assert_int_equal(pc_yaml_load_string("t.yml", t, strlen(t), NULL, &root, &d), -1);
  assert_int_equal(d.n, 3);
  assert_int_equal(d.items[0].line, 3);
  assert_int_equal(d.items[1].line, 4);
  assert_int_equal(d.items[2].line, 5);
  assert_non_null(strstr(d.items[2].msg, "first defined at line 1"));
  pc_diag_free(&d);
}

static void test_load_file(void **state)
{
  (void)state;
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_node *root;
  assert_int_equal(pc_yaml_load_file("/nonexistent/x.yml", NULL, &root, &d), -1);
  assert_int_equal(d.n, 1);
  assert_non_null(strstr(d.items[0].msg, "cannot read the file"));
  pc_diag_free(&d);

  char path[] = "/tmp/pacer-test-yaml-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs("k: [1, 2]\n", f);
  fclose(f);
  assert_int_equal(pc_yaml_load_file(path, NULL, &root, &d), 0);
  assert_int_equal(pc_node_get(root, "k")->n, 2);
  pc_node_free(root);
  struct pc_yaml_limits lim = pc_yaml_default_limits;
  lim.max_bytes = 4;
  assert_int_equal(pc_yaml_load_file(path, &lim, &root, &d), -1);
  assert_non_null(strstr(d.items[0].msg, "too large"));
  pc_diag_free(&d);
  remove(path);
}

static void test_nul_in_scalar(void **state)
{
  (void)state;
  struct pc_node *r = load_ok("a: \"x\\0y\"\n");
  const struct pc_node *a = pc_node_get(r, "a");
  assert_int_equal(a->len, 3);
  assert_memory_equal(a->str, "x\0y", 3);
  pc_node_free(r);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_positions),     cmocka_unit_test(test_text_col_and_utf8),
    cmocka_unit_test(test_block_body),
    cmocka_unit_test(test_scalar_types),  cmocka_unit_test(test_kind_names),
    cmocka_unit_test(test_anchors),       cmocka_unit_test(test_many_anchors),
    cmocka_unit_test(test_billion_laughs),
    cmocka_unit_test(test_depth_bomb),    cmocka_unit_test(test_size_limit),
    cmocka_unit_test(test_documents),     cmocka_unit_test(test_empty),
    cmocka_unit_test(test_invalid_utf8),  cmocka_unit_test(test_tabs),
    cmocka_unit_test(test_syntax_error),  cmocka_unit_test(test_keys),
    cmocka_unit_test(test_load_file),     cmocka_unit_test(test_nul_in_scalar),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
