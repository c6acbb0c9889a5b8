/* hist.c: the log-linear latency histogram of hist.h. The counts are a
 * plain array indexed by bucket, grown to the highest bucket used (a run
 * whose steps take up to a minute uses about 2 600 buckets: 20 KiB per
 * step); a report writes only the buckets in use. */
#include "base/hist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

void pc_hist_init(struct pc_hist *h)
{
  memset(h, 0, sizeof *h);
}

void pc_hist_free(struct pc_hist *h)
{
  free(h->counts);
  pc_hist_init(h);
}

size_t pc_hist_index(uint64_t v)
{
  if (v < PC_HIST_LINEAR)
    return (size_t)v;
  int e = 63 - __builtin_clzll(v); /* 2^e <= v < 2^(e+1), e >= 8 */
  int shift = e - 7;               /* bucket width 2^shift: 128 buckets per power */
  return PC_HIST_LINEAR + (size_t)(e - 8) * PC_HIST_SUB + (size_t)((v >> shift) - PC_HIST_SUB);
}

uint64_t pc_hist_bucket_lo(size_t i)
{
  if (i < PC_HIST_LINEAR)
    return i;
  size_t j = i - PC_HIST_LINEAR;
  int e = 8 + (int)(j / PC_HIST_SUB);
  return (uint64_t)(PC_HIST_SUB + j % PC_HIST_SUB) << (e - 7);
}

uint64_t pc_hist_bucket_width(size_t i)
{
  if (i < PC_HIST_LINEAR)
    return 1;
  return (uint64_t)1 << (1 + (i - PC_HIST_LINEAR) / PC_HIST_SUB);
}

/* Makes room for bucket i (the array doubles, so a run of growing values
 * reallocates a handful of times). */
static void grow(struct pc_hist *h, size_t i)
{
  if (i < h->ncounts)
    return;
  size_t n = h->ncounts ? h->ncounts : 64;
  while (n <= i)
    n *= 2;
  if (n > PC_HIST_NBUCKETS)
    n = PC_HIST_NBUCKETS;
  h->counts = pc_xrealloc(h->counts, n * sizeof *h->counts);
  memset(h->counts + h->ncounts, 0, (n - h->ncounts) * sizeof *h->counts);
  h->ncounts = n;
}

void pc_hist_record_n(struct pc_hist *h, uint64_t v, uint64_t n)
{
  if (n == 0)
    return;
  size_t i = pc_hist_index(v);
  grow(h, i);
  h->counts[i] += n;
  if (h->total == 0 || v < h->min)
    h->min = v;
  if (h->total == 0 || v > h->max)
    h->max = v;
  h->total += n;
  h->sum += (double)v * (double)n;
}

void pc_hist_record_ms(struct pc_hist *h, double ms)
{
  double us = ms * 1000.0;
  /* !(us > 0) also catches NaN; 2^63 µs is 292 000 years. */
  uint64_t v = !(us > 0) ? 0 : us >= 9.2e18 ? (uint64_t)9.2e18 : (uint64_t)llround(us);
  pc_hist_record(h, v);
}

int pc_hist_add_bucket(struct pc_hist *h, size_t i, uint64_t n)
{
  if (i >= PC_HIST_NBUCKETS)
    return -1;
  if (n == 0)
    return 0;
  grow(h, i);
  h->counts[i] += n;
  return 0;
}

int pc_hist_set_totals(struct pc_hist *h, uint64_t total, uint64_t min, uint64_t max, double sum)
{
  uint64_t n = 0;
  size_t first = PC_HIST_NBUCKETS, last = 0;
  for (size_t i = 0; i < h->ncounts; i++) {
    if (!h->counts[i])
      continue;
    n += h->counts[i];
    if (first == PC_HIST_NBUCKETS)
      first = i;
    last = i;
  }
  if (n != total)
    return -1;
  if (total && (pc_hist_index(min) != first || pc_hist_index(max) != last || min > max))
    return -1;
  if (!(sum >= 0))
    return -1;
  h->total = total;
  h->min = total ? min : 0;
  h->max = total ? max : 0;
  h->sum = sum;
  return 0;
}

void pc_hist_merge(struct pc_hist *dst, const struct pc_hist *src)
{
  if (src->total == 0)
    return;
  if (src->ncounts)
    grow(dst, src->ncounts - 1);
  for (size_t i = 0; i < src->ncounts; i++)
    dst->counts[i] += src->counts[i];
  if (dst->total == 0 || src->min < dst->min)
    dst->min = src->min;
  if (dst->total == 0 || src->max > dst->max)
    dst->max = src->max;
  dst->total += src->total;
  dst->sum += src->sum;
}

uint64_t pc_hist_percentile(const struct pc_hist *h, double p)
{
  if (h->total == 0)
    return 0;
  if (!(p > 0))
    return h->min;
  if (p >= 100)
    return h->max;
  /* The nearest rank, 1-based; computed in long double so that 99.9% of a
   * large count does not round up a rank. */
  long double r = ceill((long double)p / 100.0L * (long double)h->total);
  uint64_t rank = r < 1 ? 1 : r > (long double)h->total ? h->total : (uint64_t)r;
  uint64_t seen = 0;
  for (size_t i = 0; i < h->ncounts; i++) {
    seen += h->counts[i];
    if (seen >= rank) {
      uint64_t mid = pc_hist_bucket_lo(i) + pc_hist_bucket_width(i) / 2;
      return mid < h->min ? h->min : mid > h->max ? h->max : mid;
    }
  }
  return h->max; /* unreachable while total is the sum of the counts */
}

size_t pc_hist_next(const struct pc_hist *h, size_t from, uint64_t *count)
{
  for (size_t i = from; i < h->ncounts; i++)
    if (h->counts[i]) {
      *count = h->counts[i];
      return i;
    }
  return PC_HIST_NBUCKETS;
}
