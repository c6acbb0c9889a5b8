/* merge_stats.c: the parts of a merged report that add up rather than
 * merge record by record (merge.c): the latency histograms and the
 * statistics sections.
 *
 * Latency comes from the shards' histograms added bucket by bucket
 * (base/hist.h: exact within the bucket error, so a merged p99 is what one
 * run of all the steps would have shown), then checked against the merged
 * records: each histogram must count as many durations as the records
 * hold leaves of its step, or a report was edited. The statistics
 * sections (model/stats.h, the HTTP counters) add up counter by counter,
 * and their table row by row, keyed by the row's first string member. */
#include "report/merge_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/hist.h"
#include "base/util.h"
#include "report/format.h"

/* ----------------------------------------------------------- latency */

static int read_hist(const struct pc_jv *hv, struct pc_hist *h)
{
  const char *unit = pc_jv_str(hv, "unit");
  int linear = 0, sub = 0;
  uint64_t count, min, max;
  double sum;
  const struct pc_jv *buckets = pc_jv_get(hv, "buckets");
  if (!unit || strcmp(unit, "us") != 0 || !pc_jv_int(hv, "linear", &linear) ||
      linear != PC_HIST_LINEAR || !pc_jv_int(hv, "sub_buckets", &sub) || sub != PC_HIST_SUB ||
      !pc_jv_get_u64(hv, "count", &count) || !pc_jv_get_u64(hv, "min", &min) ||
      !pc_jv_get_u64(hv, "max", &max) || !pc_jv_num(hv, "sum", &sum) || !buckets ||
      buckets->t != PC_J_ARR)
    return -1;
  for (size_t i = 0; i < buckets->n; i++) {
    const struct pc_jv *b = buckets->v[i];
    uint64_t lo, c;
    if (b->t != PC_J_ARR || b->n != 2 || !pc_jv_u64(b->v[0], &lo) || !pc_jv_u64(b->v[1], &c))
      return -1;
    size_t idx = pc_hist_index(lo);
    if (pc_hist_bucket_lo(idx) != lo || pc_hist_add_bucket(h, idx, c) != 0)
      return -1;
  }
  return pc_hist_set_totals(h, count, min, max, sum);
}

int pc__merge_latency(struct pc_merged *m, const struct shard *sh, char **err)
{
  const struct pc_jv *list = pc_jv_get(sh->head, "latency");
  if (!list || list->t != PC_J_ARR) {
    *err = pc_asprintf("%s has no latency histograms", sh->file);
    return -1;
  }
  for (size_t i = 0; i < list->n; i++) {
    const struct pc_jv *e = list->v[i];
    const char *step = pc_jv_str(e, "step"), *action = pc_jv_str(e, "action");
    int line = 0;
    struct pc_hist h;
    pc_hist_init(&h);
    if (!step || !action || !pc_jv_int(e, "line", &line) ||
        read_hist(pc_jv_get(e, "histogram"), &h) != 0) {
      pc_hist_free(&h);
      *err = pc_asprintf("%s: latency entry %zu is not one pacer writes (a histogram of another "
                         "layout, or damaged)",
                         sh->file, i + 1);
      return -1;
    }
    size_t k = 0;
    while (k < m->nlat && strcmp(m->lat[k].step, step) != 0)
      k++;
    if (k == m->nlat) {
      m->lat = pc_xrealloc(m->lat, (m->nlat + 1) * sizeof *m->lat);
      m->lat[k] = (struct pc_latency){pc_xstrdup(step), pc_xstrdup(action), line, {0}};
      pc_hist_init(&m->lat[k].hist);
      m->nlat++;
    }
    pc_hist_merge(&m->lat[k].hist, &h);
    pc_hist_free(&h);
  }
  return 0;
}

/* Each merged histogram counts as many durations as the merged records
 * hold leaves of its step that ran: otherwise a report was altered. */
int pc__merge_check_latency(struct pc_merged *m, char **err)
{
  struct pc_run_report tmp = m->rep;
  tmp.latency = NULL;
  size_t n;
  bool owned;
  struct pc_latency *from = (struct pc_latency *)pc__latency_get(&tmp, &n, &owned);
  int rc = 0;
  if (n != m->nlat)
    rc = -1;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    size_t k = 0;
    while (k < m->nlat && strcmp(m->lat[k].step, from[i].step) != 0)
      k++;
    if (k == m->nlat || m->lat[k].hist.total != from[i].hist.total)
      rc = -1;
  }
  if (rc)
    *err = pc_xstrdup("the shards' latency histograms do not count the steps their records hold "
                      "(was a report edited?)");
  pc__latency_free(from, n);
  return rc;
}

/* --------------------------------------------------- statistics sections */

static struct pc_stat *stat_slot(struct pc_merged *m, struct pc_stat **c, size_t *n,
                                 const char *name)
{
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*c)[i].name, name) == 0)
      return &(*c)[i];
  *c = pc_xrealloc(*c, (*n + 1) * sizeof **c);
  (*c)[*n] = (struct pc_stat){pc__merge_intern(m, name), 0};
  return &(*c)[(*n)++];
}

/* Adds the counters (whole-number members) of a JSON object. */
static void add_counters(struct pc_merged *m, const struct pc_jv *o, struct pc_stat **c,
                         size_t *n)
{
  for (size_t i = 0; i < o->n; i++) {
    uint64_t v;
    if (pc_jv_u64(o->v[i], &v))
      stat_slot(m, c, n, o->k[i])->value += v;
  }
}

/* Every object under "stats" but "outcomes" is a section (model/stats.h):
 * counters, and at most one table, an array of rows keyed by their first
 * string member. */
void pc__merge_stats(struct pc_merged *m, const struct shard *sh)
{
  struct pc_run_report *r = &m->rep;
  const struct pc_jv *stats = pc_jv_get(sh->head, "stats");
  for (size_t i = 0; stats && stats->t == PC_J_OBJ && i < stats->n; i++) {
    const struct pc_jv *sv = stats->v[i];
    if (sv->t != PC_J_OBJ || strcmp(stats->k[i], "outcomes") == 0)
      continue;
    size_t k = 0;
    while (k < r->nstats && strcmp(r->stats[k].name, stats->k[i]) != 0)
      k++;
    if (k == r->nstats) {
      r->stats = pc_xrealloc(r->stats, (r->nstats + 1) * sizeof *r->stats);
      memset(&r->stats[k], 0, sizeof r->stats[k]);
      r->stats[k].name = pc__merge_intern(m, stats->k[i]);
      r->nstats++;
    }
    struct pc_stats_section *sec = &r->stats[k];
    add_counters(m, sv, &sec->counters, &sec->ncounters);
    for (size_t j = 0; j < sv->n; j++) {
      const struct pc_jv *rows = sv->v[j];
      if (rows->t != PC_J_ARR || (sec->rows_name && strcmp(sec->rows_name, sv->k[j]) != 0))
        continue;
      sec->rows_name = pc__merge_intern(m, sv->k[j]);
      for (size_t q = 0; q < rows->n; q++) {
        const struct pc_jv *row = rows->v[q];
        size_t f = 0;
        while (row->t == PC_J_OBJ && f < row->n && row->v[f]->t != PC_J_STR)
          f++;
        if (row->t != PC_J_OBJ || f == row->n)
          continue;
        sec->row_key = pc__merge_intern(m, row->k[f]);
        size_t w = 0;
        while (w < sec->nrows && strcmp(sec->rows[w].key, row->v[f]->s) != 0)
          w++;
        if (w == sec->nrows) {
          sec->rows = pc_xrealloc(sec->rows, (sec->nrows + 1) * sizeof *sec->rows);
          sec->rows[w] = (struct pc_stats_row){pc_xstrdup(row->v[f]->s), NULL, 0};
          sec->nrows++;
        }
        add_counters(m, row, &sec->rows[w].counters, &sec->rows[w].ncounters);
      }
    }
  }
}

