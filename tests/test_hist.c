/* test_hist.c: the log-linear histogram (base/hist.c): every value falls in
 * the bucket whose bounds hold it, buckets tile the whole range, the
 * documented relative error holds for percentiles against the exact
 * nearest-rank values of the same data, and merging histograms equals one
 * histogram fed every value. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/hist.h"

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t rng_state = 88172645463325252ULL;
static uint64_t rng(void)
{
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

/* Latency-like values: spread over many powers of two (1 µs .. ~1000 s). */
static uint64_t some_value(void)
{
  int e = (int)(rng() % 30);
  return (uint64_t)1 << e | (rng() & (((uint64_t)1 << e) - 1));
}

static void test_buckets_tile_the_range(void **state)
{
  (void)state;
  for (size_t i = 0; i < PC_HIST_NBUCKETS; i++) {
    uint64_t lo = pc_hist_bucket_lo(i), w = pc_hist_bucket_width(i);
    assert_int_equal(pc_hist_index(lo), i);
    assert_int_equal(pc_hist_index(lo + w - 1), i);
    if (i + 1 < PC_HIST_NBUCKETS)
      assert_true(pc_hist_bucket_lo(i + 1) == lo + w); /* no gap, no overlap */
    if (i >= PC_HIST_LINEAR)
      assert_true(w * PC_HIST_SUB <= lo); /* the width is at most 1/128 of the bound */
  }
  assert_int_equal(pc_hist_index(0), 0);
  assert_int_equal(pc_hist_index(255), 255);
  assert_int_equal(pc_hist_index(256), 256);
  assert_int_equal(pc_hist_index(UINT64_MAX), PC_HIST_NBUCKETS - 1);
  for (int k = 0; k < 100000; k++) {
    uint64_t v = rng() >> (rng() % 64);
    size_t i = pc_hist_index(v);
    assert_true(pc_hist_bucket_lo(i) <= v);
    assert_true(v - pc_hist_bucket_lo(i) < pc_hist_bucket_width(i));
  }
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* The nearest-rank percentile of sorted values. */
static uint64_t exact_percentile(const uint64_t *v, size_t n, double p)
{
  if (p <= 0)
    return v[0];
  size_t rank = (size_t)ceil(p / 100.0 * (double)n);
  if (rank < 1)
    rank = 1;
  if (rank > n)
    rank = n;
  return v[rank - 1];
}

static void test_percentiles_within_documented_error(void **state)
{
  (void)state;
  static const double ps[] = {0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100};
  for (size_t n = 1; n <= 20001; n += 2500) {
    uint64_t *v = malloc(n * sizeof *v);
    struct pc_hist h;
    pc_hist_init(&h);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
      v[i] = some_value();
      sum += (double)v[i];
      pc_hist_record(&h, v[i]);
    }
    qsort(v, n, sizeof *v, cmp_u64);
    assert_int_equal(h.total, n);
    assert_true(h.min == v[0]);
    assert_true(h.max == v[n - 1]);
    assert_true(h.sum == sum);
    for (size_t k = 0; k < sizeof ps / sizeof *ps; k++) {
      uint64_t want = exact_percentile(v, n, ps[k]);
      uint64_t got = pc_hist_percentile(&h, ps[k]);
      uint64_t diff = got > want ? got - want : want - got;
      /* hist.h: within 1/256 of the value (exact below 256). */
      if (diff * 256 > want)
        fail_msg("n=%zu p=%g: got %llu, exact %llu", n, ps[k], (unsigned long long)got,
                 (unsigned long long)want);
    }
    pc_hist_free(&h);
    free(v);
  }
}

static void test_merge_equals_one_histogram(void **state)
{
  (void)state;
  struct pc_hist all, part[3], merged;
  pc_hist_init(&all);
  pc_hist_init(&merged);
  for (int k = 0; k < 3; k++)
    pc_hist_init(&part[k]);
  for (int i = 0; i < 30000; i++) {
    uint64_t v = some_value();
    pc_hist_record(&all, v);
    pc_hist_record(&part[rng() % 3], v);
  }
  for (int k = 0; k < 3; k++)
    pc_hist_merge(&merged, &part[k]);
  assert_true(merged.total == all.total);
  assert_true(merged.min == all.min);
  assert_true(merged.max == all.max);
  assert_true(merged.sum == all.sum);
  uint64_t a, b;
  size_t i = 0, j = 0;
  for (;;) {
    i = pc_hist_next(&all, i, &a);
    j = pc_hist_next(&merged, j, &b);
    assert_int_equal(i, j);
    if (i == PC_HIST_NBUCKETS)
      break;
    assert_true(a == b);
    i++;
    j++;
  }
  for (double p = 0; p <= 100; p += 0.5)
    assert_true(pc_hist_percentile(&merged, p) == pc_hist_percentile(&all, p));
  /* Merging an empty histogram changes nothing; into an empty one copies. */
  struct pc_hist empty, copy;
  pc_hist_init(&empty);
  pc_hist_init(&copy);
  pc_hist_merge(&merged, &empty);
  assert_true(merged.total == all.total);
  pc_hist_merge(&copy, &all);
  assert_true(copy.min == all.min && copy.max == all.max && copy.total == all.total);
  pc_hist_free(&copy);
  pc_hist_free(&all);
  pc_hist_free(&merged);
  for (int k = 0; k < 3; k++)
    pc_hist_free(&part[k]);
}

/* A histogram read back bucket by bucket (as from a report) is the same
 * histogram; totals that disagree with the buckets are refused. */
static void test_serialised_round_trip(void **state)
{
  (void)state;
  struct pc_hist h, r;
  pc_hist_init(&h);
  pc_hist_init(&r);
  for (int i = 0; i < 1000; i++)
    pc_hist_record(&h, some_value());
  uint64_t c;
  for (size_t i = pc_hist_next(&h, 0, &c); i < PC_HIST_NBUCKETS; i = pc_hist_next(&h, i + 1, &c))
    assert_int_equal(pc_hist_add_bucket(&r, i, c), 0);
  assert_int_equal(pc_hist_set_totals(&r, h.total + 1, h.min, h.max, h.sum), -1);
  assert_int_equal(pc_hist_set_totals(&r, h.total, h.max, h.max, h.sum), -1);
  assert_int_equal(pc_hist_set_totals(&r, h.total, h.min, h.min, h.sum), -1);
  assert_int_equal(pc_hist_set_totals(&r, h.total, h.min, h.max, -1), -1);
  assert_int_equal(pc_hist_set_totals(&r, h.total, h.min, h.max, h.sum), 0);
  for (double p = 0; p <= 100; p += 1)
    assert_true(pc_hist_percentile(&r, p) == pc_hist_percentile(&h, p));
  assert_int_equal(pc_hist_add_bucket(&r, PC_HIST_NBUCKETS, 1), -1);
  pc_hist_free(&h);
  pc_hist_free(&r);
}

static void test_empty_and_milliseconds(void **state)
{
  (void)state;
  struct pc_hist h;
  pc_hist_init(&h);
  assert_true(pc_hist_percentile(&h, 50) == 0);
  uint64_t c;
  assert_int_equal(pc_hist_next(&h, 0, &c), PC_HIST_NBUCKETS);
  assert_int_equal(pc_hist_set_totals(&h, 0, 0, 0, 0), 0);
  pc_hist_record_ms(&h, 1.2345); /* 1234.5 µs rounds to 1235 */
  pc_hist_record_ms(&h, -3);     /* a negative duration counts as 0 */
  pc_hist_record_ms(&h, NAN);
  assert_true(h.total == 3);
  assert_true(h.min == 0);
  assert_true(h.max == 1235);
  assert_true(pc_hist_percentile(&h, 100) == 1235);
  assert_true(pc_hist_percentile(&h, 50) == 0);
  pc_hist_record_n(&h, 7, 0); /* nothing */
  assert_true(h.total == 3);
  pc_hist_free(&h);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buckets_tile_the_range),
      cmocka_unit_test(test_percentiles_within_documented_error),
      cmocka_unit_test(test_merge_equals_one_histogram),
      cmocka_unit_test(test_serialised_round_trip),
      cmocka_unit_test(test_empty_and_milliseconds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
