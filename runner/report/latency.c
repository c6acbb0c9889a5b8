/* latency.c: per-step latency for the reports: one mergeable histogram
 * (base/hist.h) of the durations of every leaf instance of a step that ran,
 * grouped by step (all items of a fan-out, the same step in every item of
 * an enclosing one). The JSON report writes each histogram's buckets, so
 * that `pacer merge` can add the shards' histograms and read percentiles
 * of the whole run from the sum, exactly within the bucket error
 * (docs/reports.md, "Latency"). */
#include "report/format.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* Steps are told apart by their model pointer (every record of a step
 * shares it); an open-addressing table maps it to the step's slot. */
struct step_map {
  const void **keys;
  size_t *slots;
  size_t cap; /* a power of two */
};

static size_t ptr_hash(const void *p, size_t cap)
{
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return (size_t)x & (cap - 1);
}

static size_t *map_slot(struct step_map *m, const void *key, bool *found)
{
  size_t i = ptr_hash(key, m->cap);
  while (m->keys[i] && m->keys[i] != key)
    i = (i + 1) & (m->cap - 1);
  *found = m->keys[i] != NULL;
  m->keys[i] = key;
  return &m->slots[i];
}

static void map_grow(struct step_map *m)
{
  struct step_map old = *m;
  m->cap = old.cap ? old.cap * 2 : 64;
  m->keys = pc_xcalloc(m->cap, sizeof *m->keys);
  m->slots = pc_xcalloc(m->cap, sizeof *m->slots);
  for (size_t i = 0; i < old.cap; i++) {
    bool found;
    if (old.keys[i])
      *map_slot(m, old.keys[i], &found) = old.slots[i];
  }
  free(old.keys);
  free(old.slots);
}

static struct pc_latency *compute(const struct pc_run_report *r, size_t *n)
{
  struct step_map m = {0};
  struct pc_latency *l = NULL;
  size_t nl = 0;
  struct pc_buf path;
  pc_buf_init(&path, REPORT_BUF_MAX);
  for (size_t i = 0; i < r->nrecords; i++) {
    const struct pc_record *s = &r->records[i];
    if (s->kind != PC_REC_LEAF || s->lane < 0 || !s->step)
      continue; /* only leaves that ran have a duration of their own */
    if ((nl + 1) * 2 > m.cap)
      map_grow(&m);
    bool found;
    size_t *slot = map_slot(&m, s->step, &found);
    if (!found) {
      *slot = nl;
      l = pc_xrealloc(l, (nl + 1) * sizeof *l);
      pc_buf_reset(&path);
      pc__record_step_path(&path, r, i);
      l[nl].step = pc_xstrdup(path.data ? path.data : "");
      l[nl].action = pc_xstrdup(s->action ? s->action : "");
      l[nl].line = s->step->line;
      pc_hist_init(&l[nl].hist);
      nl++;
    }
    pc_hist_record_ms(&l[*slot].hist, s->duration_ms);
  }
  pc_buf_free(&path);
  free(m.keys);
  free(m.slots);
  *n = nl;
  return l;
}

const struct pc_latency *pc__latency_get(const struct pc_run_report *r, size_t *n, bool *owned)
{
  if (r->latency) {
    *n = r->nlatency;
    *owned = false;
    return r->latency;
  }
  *owned = true;
  return compute(r, n);
}

void pc__latency_free(struct pc_latency *l, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    free(l[i].step);
    free(l[i].action);
    pc_hist_free(&l[i].hist);
  }
  free(l);
}

void pc__latency_json(struct pc_buf *b, const struct pc_latency *l, size_t n)
{
  static const struct {
    const char *name;
    double p;
  } ps[] = {{"p50_ms", 50}, {"p90_ms", 90}, {"p95_ms", 95}, {"p99_ms", 99}, {"p999_ms", 99.9}};
  pc_buf_puts(b, "\"latency\":[");
  for (size_t i = 0; i < n; i++) {
    const struct pc_hist *h = &l[i].hist;
    pc_buf_puts(b, i ? ",\n{\"step\":" : "\n{\"step\":");
    pc__json_str(b, l[i].step);
    pc_buf_puts(b, ",\"action\":");
    pc__json_str(b, l[i].action);
    pc_buf_printf(b, ",\"line\":%d,\"count\":%" PRIu64 ",\"min_ms\":%.3f,\"mean_ms\":%.3f",
                  l[i].line, h->total, (double)h->min / 1000.0,
                  h->total ? h->sum / (double)h->total / 1000.0 : 0.0);
    for (size_t k = 0; k < PC_ARRAY_SIZE(ps); k++)
      pc_buf_printf(b, ",\"%s\":%.3f", ps[k].name, (double)pc_hist_percentile(h, ps[k].p) / 1000.0);
    pc_buf_printf(b,
                  ",\"max_ms\":%.3f,\"histogram\":{\"unit\":\"us\",\"linear\":%d,"
                  "\"sub_buckets\":%d,\"count\":%" PRIu64 ",\"min\":%" PRIu64 ",\"max\":%" PRIu64
                  ",\"sum\":%.0f,\"buckets\":[",
                  (double)h->max / 1000.0, PC_HIST_LINEAR, PC_HIST_SUB, h->total, h->min, h->max,
                  h->sum);
    uint64_t c;
    bool first = true;
    for (size_t k = pc_hist_next(h, 0, &c); k < PC_HIST_NBUCKETS; k = pc_hist_next(h, k + 1, &c)) {
      pc_buf_printf(b, "%s[%" PRIu64 ",%" PRIu64 "]", first ? "" : ",", pc_hist_bucket_lo(k), c);
      first = false;
    }
    pc_buf_puts(b, "]}}");
  }
  pc_buf_puts(b, n ? "\n]" : "]");
}
