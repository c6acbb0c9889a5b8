/* test_util.c: durations, rates, "did you mean", pc_buf's ceiling, file
 * reading limits and the diag list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/diag.h"
#include "base/queue.h"
#include "base/util.h"

static double dur(const char *s)
{
  double ms = -42;
  assert_int_equal(pc_parse_duration(s, &ms), 0);
  return ms;
}

static void test_duration_good(void **state)
{
  (void)state;
  assert_true(dur("250ms") == 250);
  assert_true(dur("5s") == 5000);
  assert_true(dur("1.5s") == 1500);
  assert_true(dur("2m") == 120000);
  assert_true(dur("2min") == 120000);
  assert_true(dur("1h") == 3600000);
  assert_true(dur("0") == 0);
  assert_true(dur("3") == 3000);
  assert_true(dur("0.25") == 250);
  assert_true(dur(".5s") == 500);
  assert_true(dur("1h30m") == 5400000);
  assert_true(dur("2m3s") == 123000);
  assert_true(dur("720h") == 720.0 * 3600000); /* exactly 30 days */
}

static void test_duration_bad(void **state)
{
  (void)state;
  static const char *const bad[] = {
    "", "5x", "-1s", "1e400", "ms", "s", "5 s", " 5s", "5s ", "1.2.3s", "inf", "nan",
    "0x10", "+5s", "5sec", "721h", "5s5", "1..5s", "5ms3", "5S",
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(bad); i++) {
    double ms = -42;
    if (pc_parse_duration(bad[i], &ms) != -EINVAL)
      fail_msg("\"%s\" was accepted as %g ms", bad[i], ms);
    assert_true(ms == -42); /* untouched on failure */
  }
  double ms;
  assert_int_equal(pc_parse_duration(NULL, &ms), -EINVAL);
}

static void test_format_duration(void **state)
{
  (void)state;
  static const struct {
    double ms;
    const char *text;
  } cases[] = {
    {0, "0ms"},       {250, "250ms"},    {1500, "1.5s"},  {1234, "1.234s"}, {5000, "5s"},
    {60000, "1m"},    {123000, "2m3s"},  {3600000, "1h"}, {3605000, "1h5s"},
    {5400000, "1h30m"},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    char out[32];
    pc_format_duration(cases[i].ms, out, sizeof out);
    assert_string_equal(out, cases[i].text);
    /* What we print, we can read back. */
    assert_true(dur(out) == cases[i].ms);
  }
}

static void test_rate(void **state)
{
  (void)state;
  double r;
  assert_int_equal(pc_parse_rate("10/s", &r), 0);
  assert_true(r == 10);
  assert_int_equal(pc_parse_rate("30/min", &r), 0);
  assert_true(r == 0.5);
  assert_int_equal(pc_parse_rate("1800/h", &r), 0);
  assert_true(r == 0.5);
  assert_int_equal(pc_parse_rate("0.5/s", &r), 0);
  assert_true(r == 0.5);
  static const char *const bad[] = {"", "10", "10/", "/s", "0/s", "-1/s", "10/m",
                                    "10/sec", "10 /s", "x/s", "1e400/s", "10/s "};
  for (size_t i = 0; i < PC_ARRAY_SIZE(bad); i++)
    if (pc_parse_rate(bad[i], &r) != -EINVAL)
      fail_msg("\"%s\" was accepted as a rate", bad[i]);
}

static void test_did_you_mean(void **state)
{
  (void)state;
  static const char *const keys[] = {"name", "steps", "timeout", "finally", "id", "if"};
  size_t n = PC_ARRAY_SIZE(keys);
  assert_string_equal(pc_did_you_mean("stpes", keys, n), "steps");
  assert_string_equal(pc_did_you_mean("step", keys, n), "steps");
  assert_string_equal(pc_did_you_mean("timout", keys, n), "timeout");
  assert_string_equal(pc_did_you_mean("finaly", keys, n), "finally");
  assert_string_equal(pc_did_you_mean("ib", keys, n), "id"); /* ties: first wins */
  assert_null(pc_did_you_mean("x", keys, n));
  assert_null(pc_did_you_mean("base", keys, n));
  assert_null(pc_did_you_mean("description", keys, n));
  assert_null(pc_did_you_mean("anything", keys, 0));
  assert_int_equal(pc_edit_distance("kitten", "sitting"), 3);
  assert_int_equal(pc_edit_distance("", "abc"), 3);
  assert_int_equal(pc_edit_distance("same", "same"), 0);
  /* a swap of neighbours is one edit */
  assert_int_equal(pc_edit_distance("tpo", "top"), 1);
  assert_int_equal(pc_edit_distance("nmae", "name"), 1);
  assert_int_equal(pc_edit_distance("ab", "ba"), 1);
  static const char *const ids[] = {"top", "stories"};
  assert_string_equal(pc_did_you_mean("tpo", ids, 2), "top");
  char big[400];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  assert_int_equal(pc_edit_distance(big, "a"), 255);
}

static void test_buf_max(void **state)
{
  (void)state;
  struct pc_buf b;
  pc_buf_init(&b, 10);
  assert_string_equal(b.data, ""); /* usable before the first append */
  assert_int_equal(pc_buf_puts(&b, "12345"), 0);
  assert_int_equal(pc_buf_printf(&b, "%d", 678), 0);
  assert_string_equal(b.data, "12345678");
  /* Past the maximum: refused, buffer unchanged. */
  assert_int_equal(pc_buf_puts(&b, "abc"), -ENOBUFS);
  assert_int_equal(pc_buf_printf(&b, "%s", "abc"), -ENOBUFS);
  assert_string_equal(b.data, "12345678");
  assert_int_equal(b.len, 8);
  /* Exactly up to the maximum is fine. */
  assert_int_equal(pc_buf_append(&b, "90", 2), 0);
  assert_int_equal(b.len, 10);
  assert_int_equal(pc_buf_append(&b, "x", 1), -ENOBUFS);
  assert_int_equal(pc_buf_append(&b, "", 0), 0);
  pc_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  assert_int_equal(pc_buf_append(&b, "a\0b", 3), 0);
  assert_int_equal(b.len, 3);
  assert_memory_equal(b.data, "a\0b", 4);
  char *s = pc_buf_steal(&b);
  assert_memory_equal(s, "a\0b", 4);
  free(s);
  assert_int_equal(b.len, 0);
  s = pc_buf_steal(&b); /* stealing an empty buffer gives an empty string */
  assert_string_equal(s, "");
  free(s);
  pc_buf_free(&b);
  pc_buf_free(&b); /* idempotent */
}

static void test_buf_growth(void **state)
{
  (void)state;
  struct pc_buf b;
  pc_buf_init(&b, 100000);
  for (int i = 0; i < 10000; i++)
    assert_int_equal(pc_buf_printf(&b, "%d,", i % 10), 0);
  assert_int_equal(b.len, 20000);
  assert_true(b.cap <= b.max + 1);
  assert_int_equal(b.data[b.len], '\0');
  pc_buf_free(&b);
}

static void test_read_file(void **state)
{
  (void)state;
  char path[] = "/tmp/pacer-test-util-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, "hello", 5), 5);
  close(fd);
  char *buf;
  size_t len;
  assert_int_equal(pc_read_file(path, 5, &buf, &len), 0);
  assert_int_equal(len, 5);
  assert_string_equal(buf, "hello");
  free(buf);
  assert_int_equal(pc_read_file(path, 4, &buf, &len), -EFBIG);
  unlink(path);
  assert_int_equal(pc_read_file(path, 4, &buf, &len), -ENOENT);
  assert_int_equal(pc_read_file("/tmp", 4, &buf, &len), -EISDIR);
}

static void test_iso8601_and_clocks(void **state)
{
  (void)state;
  char out[32];
  pc_format_iso8601(0, out, sizeof out);
  assert_string_equal(out, "1970-01-01T00:00:00.000Z");
  pc_format_iso8601(1795589558123.0, out, sizeof out);
  assert_string_equal(out, "2026-11-25T06:52:38.123Z");
  double a = pc_mono_ms(), b = pc_mono_ms();
  assert_true(b >= a);
  assert_true(pc_wall_ms() > 1.6e12);
}

static void test_diag(void **state)
{
  (void)state;
  struct pc_diag d;
  pc_diag_init(&d);
  pc_diag_add(&d, "a.yml", 3, 7, "bad %s", "thing");
  pc_diag_add(&d, "a.yml", 0, 0, "file-level");
  pc_diag_add(&d, NULL, 2, 0, "no column");
  assert_int_equal(d.n, 3);
  assert_string_equal(d.items[0].msg, "bad thing");
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  pc_diag_print(&d, f);
  fclose(f);
  assert_string_equal(text, "a.yml:3:7: error: bad thing\n"
                            "a.yml: error: file-level\n"
                            "<input>:2: error: no column\n");
  free(text);
  pc_diag_free(&d);
  assert_int_equal(d.n, 0);
  pc_diag_free(&d);
}

/* Past PC_DIAG_MAX messages are counted, not kept, and the printout says so. */
static void test_diag_cap(void **state)
{
  (void)state;
  struct pc_diag d;
  pc_diag_init(&d);
  for (int i = 0; i < PC_DIAG_MAX + 50; i++) {
    assert_int_equal(pc_diag_full(&d), i >= PC_DIAG_MAX);
    pc_diag_add(&d, "a.yml", i + 1, 1, "error %d", i);
  }
  assert_int_equal(d.n, PC_DIAG_MAX);
  assert_int_equal(d.dropped, 50);
  assert_int_equal(pc_diag_count(&d), PC_DIAG_MAX + 50);
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  pc_diag_print(&d, f);
  fclose(f);
  assert_non_null(strstr(text, "a.yml:100:1: error: error 99\n"));
  assert_null(strstr(text, "error 100"));
  assert_non_null(strstr(text, "a.yml: ... and 50 more errors, not shown\n"));
  free(text);
  pc_diag_free(&d);
  assert_int_equal(pc_diag_count(&d), 0);
}

struct qitem {
  int v;
  struct pc_queue node;
};

/* Order, removal while iterating, double removal, move between lists. */
static void test_queue(void **state)
{
  (void)state;
  struct pc_queue a, b, *q, *n;
  pc_queue_init(&a);
  pc_queue_init(&b);
  assert_true(pc_queue_empty(&a));
  struct qitem it[5];
  for (int i = 0; i < 5; i++) {
    it[i].v = i;
    pc_queue_init(&it[i].node);
    assert_true(pc_queue_empty(&it[i].node)); /* on no list */
    if (i == 0)
      pc_queue_insert_head(&a, &it[i].node);
    else
      pc_queue_insert_tail(&a, &it[i].node);
  }
  assert_false(pc_queue_empty(&it[2].node));
  int want = 0;
  pc_queue_foreach(q, &a) assert_int_equal(pc_queue_data(q, struct qitem, node)->v, want++);
  assert_int_equal(want, 5);
  pc_queue_foreach_safe(q, n, &a) {
    if (pc_queue_data(q, struct qitem, node)->v % 2)
      pc_queue_remove(q);
  }
  pc_queue_remove(&it[1].node); /* twice: harmless */
  assert_true(pc_queue_empty(&it[1].node));
  int seen[3], k = 0;
  pc_queue_foreach(q, &a) seen[k++] = pc_queue_data(q, struct qitem, node)->v;
  assert_int_equal(k, 3);
  assert_int_equal(seen[0], 0);
  assert_int_equal(seen[1], 2);
  assert_int_equal(seen[2], 4);
  pc_queue_insert_tail(&b, &it[1].node);
  pc_queue_move(&a, &b);
  assert_true(pc_queue_empty(&a));
  k = 0;
  int order[] = {1, 0, 2, 4};
  pc_queue_foreach(q, &b) assert_int_equal(pc_queue_data(q, struct qitem, node)->v, order[k++]);
  assert_int_equal(k, 4);
  assert_int_equal(pc_queue_data(pc_queue_head(&b), struct qitem, node)->v, 1);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_duration_good),  cmocka_unit_test(test_duration_bad),
    cmocka_unit_test(test_format_duration), cmocka_unit_test(test_rate),
    cmocka_unit_test(test_did_you_mean),   cmocka_unit_test(test_buf_max),
    cmocka_unit_test(test_buf_growth),     cmocka_unit_test(test_read_file),
    cmocka_unit_test(test_iso8601_and_clocks), cmocka_unit_test(test_diag),
    cmocka_unit_test(test_diag_cap),
    cmocka_unit_test(test_queue),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
