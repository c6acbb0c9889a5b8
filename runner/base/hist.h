/* hist.h: a mergeable latency histogram with log-linear buckets, as
 * HdrHistogram keeps them. Values are whole microseconds. Values below 256
 * have a bucket each (exact); above, each power of two [2^e, 2^(e+1)) is cut
 * into 128 buckets of equal width 2^(e-7), so a bucket is never wider than
 * 1/128 of its lower bound. A value read back from a bucket is its middle,
 * hence within 1/256 of every value the bucket holds (0.4%), and within
 * 1 µs below 256 µs.
 *
 * Two histograms merge by adding their bucket counts, which loses nothing:
 * the percentiles of a merged histogram are those of one histogram fed
 * every value, exactly. That is what shard reports rely on
 * (docs/reports.md, "Shards and latency"; docs/shards.md). Counts, the sum,
 * the minimum and the maximum are kept exactly beside the buckets.
 *
 * Bucket indexes are part of the JSON report's format: they never change
 * within a report schema version. */
#ifndef PACER_HIST_H
#define PACER_HIST_H

#include <stddef.h>
#include <stdint.h>

/* Values below PC_HIST_LINEAR have a bucket of their own. */
#define PC_HIST_LINEAR 256
/* Buckets per power of two above that (each 1/PC_HIST_SUB of its bound). */
#define PC_HIST_SUB 128
/* Every uint64_t value has a bucket: 256 linear ones, then 56 powers of
 * two (2^8 .. 2^63) of 128 each. */
#define PC_HIST_NBUCKETS (PC_HIST_LINEAR + 56 * PC_HIST_SUB)

struct pc_hist {
  uint64_t *counts; /* counts[0 .. ncounts): grown up to the highest bucket used */
  size_t ncounts;
  uint64_t total;   /* values recorded */
  uint64_t min, max;/* exact; meaningless while total is 0 */
  double sum;       /* exact sum of the values (µs), for the mean */
};

/* An empty histogram; nothing is allocated until a value is recorded. */
void pc_hist_init(struct pc_hist *h);
void pc_hist_free(struct pc_hist *h);

/* The bucket of a value, and a bucket's lower bound and width. */
size_t pc_hist_index(uint64_t v);
uint64_t pc_hist_bucket_lo(size_t i);
uint64_t pc_hist_bucket_width(size_t i);

/* Records `n` occurrences of value `v`. */
void pc_hist_record_n(struct pc_hist *h, uint64_t v, uint64_t n);
static inline void pc_hist_record(struct pc_hist *h, uint64_t v)
{
  pc_hist_record_n(h, v, 1);
}
/* Records a duration given in milliseconds (rounded to the microsecond;
 * negative or NaN durations count as 0). */
void pc_hist_record_ms(struct pc_hist *h, double ms);

/* Adds `n` to bucket `i` as a reader of a serialised histogram does; the
 * caller restores total, min, max and sum itself (pc_hist_set_totals).
 * Returns 0, or -1 if `i` is no bucket. */
int pc_hist_add_bucket(struct pc_hist *h, size_t i, uint64_t n);
/* Sets the exact summary a serialised histogram carries beside its
 * buckets. Returns 0, or -1 if it does not agree with the buckets (the
 * count differs from their sum, or min/max lie outside the first/last
 * bucket used). */
int pc_hist_set_totals(struct pc_hist *h, uint64_t total, uint64_t min, uint64_t max, double sum);

/* dst += src: bucket counts add, min/max/sum/total combine. */
void pc_hist_merge(struct pc_hist *dst, const struct pc_hist *src);

/* The value at percentile p (0..100) by the nearest-rank rule: the
 * ceil(p/100 * total)-th smallest value (the first for p = 0), read as the
 * middle of its bucket and clamped to [min, max]. 0 for an empty
 * histogram. */
uint64_t pc_hist_percentile(const struct pc_hist *h, double p);

/* Iterates over the buckets in use: returns the first index >= from with a
 * non-zero count (and sets *count), or PC_HIST_NBUCKETS when there is none. */
size_t pc_hist_next(const struct pc_hist *h, size_t from, uint64_t *count);

#endif
