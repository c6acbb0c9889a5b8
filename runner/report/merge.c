/* merge.c: the report of a whole run made from its shards' JSON reports
 * (merge.h, docs/shards.md, "Merging").
 *
 * Why records, not JSON: the merge rebuilds the run's records (and a
 * stand-in for the workflow and its steps holding what the reports read:
 * ids, names, lines, the file) and hands them to the same writers a run
 * uses. Merging at the JSON level would give a merged JSON report only,
 * and every other format (JUnit, HTML, trace) would need a second writer
 * reading JSON, which would drift from the first. The records are read
 * from each report's "steps" one at a time (jtree.h), so a shard's report
 * is never held as a JSON tree.
 *
 * How records merge. Each record has a path, the same on every shard
 * (`steps/fetch`, `steps/stories[7]`): a fan-out item keeps its number in
 * the whole list, whichever shard ran it.
 *   - A group (a root, `steps:`, `gather:`, a fan-out) that several shards
 *     ran is one record: it starts with the first and ends with the last,
 *     and its outcome is the worst of theirs. A fan-out's counters add up
 *     (each shard counts its share of the items); another group's are the
 *     largest any shard has (its children are the same on every shard).
 *   - A fan-out item belongs to one shard: one that two shards ran means
 *     they did not split the same list, and the merge is refused.
 *   - A leaf outside every fan-out ran on every shard that reached it: each
 *     run is kept, and its label says which shard it was ("(shard 2/3)").
 * Times are moved onto one timeline: each shard's offsets plus its start
 * (the wall clock) minus the earliest start. Lanes are assigned again over
 * that timeline, so max_concurrency is the peak of the union (a report
 * merged alone keeps its own). Latency
 * comes from the shards' histograms added up (base/hist.h: exact within
 * the bucket error), checked against the merged records; the statistics
 * sections (HTTP) add up counter by counter and row by row (both in
 * merge_stats.c). Reading a shard's report and checking that the shards
 * are one run's is merge_read.c; what the three files share is
 * merge_int.h. */
#include "report/merge.h"
#include "report/merge_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/hist.h"
#include "base/util.h"
#include "model/outcome.h"
#include "model/workflow.h"
#include "report/format.h"
#include "report/jtree.h"

/* ================================================== a string hash map */

/* Open addressing, keys borrowed, values indexes. */
struct smap {
  const char **keys;
  size_t *vals;
  size_t n, cap;
};

static size_t str_hash(const char *s)
{
  size_t h = 1469598103934665603ULL;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static size_t *smap_find(struct smap *m, const char *key, bool *found)
{
  size_t i = str_hash(key) & (m->cap - 1);
  while (m->keys[i] && strcmp(m->keys[i], key) != 0)
    i = (i + 1) & (m->cap - 1);
  *found = m->keys[i] != NULL;
  return &m->vals[i];
}

/* Returns the value of `key`, or inserts it with `val` and returns that. */
static size_t smap_get_or_put(struct smap *m, const char *key, size_t val, bool *found)
{
  if ((m->n + 1) * 2 > m->cap) {
    struct smap old = *m;
    m->cap = old.cap ? old.cap * 2 : 256;
    m->keys = pc_xcalloc(m->cap, sizeof *m->keys);
    m->vals = pc_xcalloc(m->cap, sizeof *m->vals);
    for (size_t i = 0; i < old.cap; i++)
      if (old.keys[i]) {
        bool f;
        size_t *v = smap_find(m, old.keys[i], &f);
        m->keys[(size_t)(v - m->vals)] = old.keys[i];
        *v = old.vals[i];
      }
    free(old.keys);
    free(old.vals);
  }
  size_t *v = smap_find(m, key, found);
  if (!*found) {
    m->keys[(size_t)(v - m->vals)] = key;
    *v = val;
    m->n++;
  }
  return *v;
}

static void smap_free(struct smap *m)
{
  free(m->keys);
  free(m->vals);
}

const char *pc__merge_intern(struct pc_merged *m, const char *s)
{
  if (!s)
    return NULL;
  for (size_t i = 0; i < m->nstrings; i++)
    if (strcmp(m->strings[i], s) == 0)
      return m->strings[i];
  m->strings = pc_xrealloc(m->strings, (m->nstrings + 1) * sizeof *m->strings);
  return m->strings[m->nstrings++] = pc_xstrdup(s);
}

/* ========================================================== the merge */

static struct pc_record *rec_append(struct pc_merged *m, size_t *cap)
{
  struct pc_run_report *r = &m->rep;
  if (r->nrecords == *cap) {
    *cap = *cap ? *cap * 2 : 256;
    r->records = pc_xrealloc(r->records, *cap * sizeof *r->records);
  }
  return &r->records[r->nrecords++];
}

/* The step path of a record path: without its item numbers. */
static char *step_path(const char *path)
{
  char *out = pc_xstrdup(path), *w = out;
  for (const char *p = path; *p; p++) {
    if (*p == '[') {
      while (*p && *p != ']')
        p++;
      if (!*p)
        break;
      continue;
    }
    *w++ = *p;
  }
  *w = '\0';
  return out;
}

static struct pc_step *step_for(struct pc_merged *m, struct smap *steps, const struct srec *s)
{
  char *key = step_path(s->path);
  bool found;
  size_t i = smap_get_or_put(steps, key, m->nsteps, &found);
  if (found) {
    free(key);
    return m->steps[i];
  }
  struct pc_step *st = pc_xcalloc(1, sizeof *st);
  st->id = dup_or_null(s->id);
  st->name = dup_or_null(s->name);
  st->file = m->wf.file;
  st->line = s->line;
  st->index = s->step_index;
  m->steps = pc_xrealloc(m->steps, (m->nsteps + 1) * sizeof *m->steps);
  m->steps[m->nsteps++] = st;
  /* The key must outlive the map: keep it with the interned strings. */
  m->strings = pc_xrealloc(m->strings, (m->nstrings + 1) * sizeof *m->strings);
  m->strings[m->nstrings++] = key;
  return st;
}

/* How bad an outcome is, for the outcome of a group several shards ran:
 * as the exit codes rank them (SPEC §1). */
static int outcome_rank(bool done, enum pc_outcome o)
{
  if (!done)
    return 6;
  switch (o) {
  case PC_CANCELLED: return 5;
  case PC_TIMEOUT: return 4;
  case PC_ERROR: return 3;
  case PC_FAILED: return 2;
  case PC_OK: return 1;
  default: return 0; /* skipped */
  }
}

static void unify(struct pc_record *e, struct srec *s, double shift)
{
  struct pc_record *r = &s->rec;
  double start = r->start_off_ms + shift, end = start + r->duration_ms;
  double e_end = e->start_off_ms + e->duration_ms;
  if (start < e->start_off_ms)
    e->start_off_ms = start;
  if (r->ready_off_ms + shift < e->ready_off_ms)
    e->ready_off_ms = r->ready_off_ms + shift;
  e->duration_ms = (end > e_end ? end : e_end) - e->start_off_ms;
  /* A fan-out's counters are each shard's share of the items; any other
   * group has the same children on every shard. */
  if (e->kind == PC_REC_FOREACH) {
    e->total += r->total;
    e->finished += r->finished;
    e->failed += r->failed;
  } else {
    e->total = r->total > e->total ? r->total : e->total;
    e->finished = r->finished > e->finished ? r->finished : e->finished;
    e->failed = r->failed > e->failed ? r->failed : e->failed;
  }
  if (outcome_rank(r->done, r->outcome) > outcome_rank(e->done, e->outcome)) {
    e->outcome = r->outcome;
    free(e->error);
    e->error = r->error;
    r->error = NULL;
  }
  e->done = e->done && r->done;
  e->shard = 0;
}

/* Adds a shard's records. `paths` maps a record path to its first merged
 * record (the keys are the shards' own path strings, which live until the
 * merge is over); `dup` marks leaves that more than one shard ran. */
static int merge_shard(struct pc_merged *m, struct shard *sh, double shift, struct smap *paths,
                       struct smap *steps, bool **dup, size_t *cap, char **err)
{
  size_t *where = pc_xcalloc(sh->n + 1, sizeof *where);
  int rc = 0;
  for (size_t j = 0; j < sh->n; j++) {
    struct srec *s = &sh->recs[j];
    size_t mparent = s->parent < 0 ? PC_NO_RECORD : where[s->parent];
    bool instance = false;
    if (s->rec.item && s->parent >= 0) {
      char *want = pc_asprintf("%s[%zu]", sh->recs[s->parent].path, s->rec.item);
      instance = strcmp(want, s->path) == 0;
      free(want);
    }
    bool found;
    size_t at = smap_get_or_put(paths, s->path, m->rep.nrecords, &found);
    if (found) {
      struct pc_record *e = &m->rep.records[at];
      if (instance) {
        *err = pc_asprintf("%s was run by shard %d and by shard %d: the shards did not split "
                           "the fan-out the same way",
                           s->path, e->shard ? e->shard : 1, sh->index);
        rc = -1;
        break;
      }
      if (e->kind != s->rec.kind) {
        *err = pc_asprintf("%s is a %s on one shard and a %s on shard %d", s->path,
                           pc__kind_name(e->kind), pc__kind_name(s->rec.kind), sh->index);
        rc = -1;
        break;
      }
      if (s->rec.kind != PC_REC_LEAF) {
        unify(e, s, shift);
        where[j] = at;
        continue;
      }
      (*dup)[at] = true; /* the first run of the leaf */
    }
    struct pc_record *r = rec_append(m, cap);
    *r = s->rec;
    memset(&s->rec, 0, sizeof s->rec); /* the strings moved */
    *dup = pc_xrealloc(*dup, *cap * sizeof **dup);
    (*dup)[m->rep.nrecords - 1] = found;
    where[j] = m->rep.nrecords - 1;
    r->parent = mparent;
    r->depth = mparent == PC_NO_RECORD ? 0 : m->rep.records[mparent].depth + 1;
    r->start_off_ms += shift;
    r->ready_off_ms += shift;
    r->shard = sh->index;
    r->action = pc__merge_intern(m, s->action);
    if (s->parent < 0) {
      r->step = NULL;
      r->root_name = pc__merge_intern(m, s->id ? s->id : "steps");
    } else if (instance) {
      r->step = m->rep.records[mparent].step;
    } else {
      r->step = step_for(m, steps, s);
    }
  }
  free(where);
  return rc;
}

/* Lanes again, over the merged timeline: a leaf that ran takes the lane
 * of one that ended by its start, or a new one. */
struct lane_ev {
  double start, end;
  size_t rec;
};

static int by_start(const void *a, const void *b)
{
  const struct lane_ev *x = a, *y = b;
  return x->start < y->start ? -1 : x->start > y->start ? 1 : (x->rec > y->rec) - (x->rec < y->rec);
}

/* Swaps entries i and j of the heap of (end, lane) pairs. */
static void heap_swap(double *hend, int *hlane, size_t i, size_t j)
{
  double te = hend[i];
  int tl = hlane[i];
  hend[i] = hend[j];
  hlane[i] = hlane[j];
  hend[j] = te;
  hlane[j] = tl;
}

static void assign_lanes(struct pc_run_report *r)
{
  size_t n = 0;
  struct lane_ev *ev = pc_xcalloc(r->nrecords + 1, sizeof *ev);
  for (size_t i = 0; i < r->nrecords; i++) {
    struct pc_record *s = &r->records[i];
    if (s->kind == PC_REC_LEAF && s->lane >= 0)
      ev[n++] = (struct lane_ev){s->start_off_ms, s->start_off_ms + s->duration_ms, i};
  }
  qsort(ev, n, sizeof *ev, by_start);
  /* A min-heap of (end, lane) of the lanes in use. */
  double *hend = pc_xcalloc(n + 1, sizeof *hend);
  int *hlane = pc_xcalloc(n + 1, sizeof *hlane);
  size_t hn = 0;
  int nlanes = 0;
  for (size_t k = 0; k < n; k++) {
    int lane;
    if (hn && hend[0] <= ev[k].start) {
      lane = hlane[0];
      /* pop */
      hn--;
      hend[0] = hend[hn];
      hlane[0] = hlane[hn];
      for (size_t i = 0;;) {
        size_t l = 2 * i + 1, rr = l + 1, s = i;
        if (l < hn && hend[l] < hend[s])
          s = l;
        if (rr < hn && hend[rr] < hend[s])
          s = rr;
        if (s == i)
          break;
        heap_swap(hend, hlane, i, s);
        i = s;
      }
    } else {
      lane = nlanes++;
    }
    r->records[ev[k].rec].lane = lane;
    /* push */
    size_t i = hn++;
    hend[i] = ev[k].end;
    hlane[i] = lane;
    while (i > 0 && hend[(i - 1) / 2] > hend[i]) {
      size_t p = (i - 1) / 2;
      heap_swap(hend, hlane, i, p);
      i = p;
    }
  }
  r->nlanes = nlanes;
  free(hend);
  free(hlane);
  free(ev);
}

/* ---------------------------------------------------------- the run */

/* SPEC §1: a signal, then the deadline, then errors, then failures. */
static int exit_rank(int code)
{
  switch (code) {
  case PC_EXIT_SIGINT: return 7;
  case PC_EXIT_SIGTERM: return 6;
  case PC_EXIT_SIGHUP: return 5;
  case PC_EXIT_DEADLINE: return 4;
  case PC_EXIT_ERROR: return 3;
  case PC_EXIT_FAILED: return 2;
  case PC_EXIT_OK: return 0;
  default: return 1;
  }
}

static int run_outcome_rank(const char *o)
{
  static const char *const order[] = {"ok", "failed", "error", "timeout", "cancelled"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(order); i++)
    if (strcmp(o, order[i]) == 0)
      return (int)i;
  return 0;
}

static void merge_run(struct pc_merged *m, struct shard *sh, size_t n)
{
  struct pc_run_report *r = &m->rep;
  r->cause_rec = PC_NO_RECORD; /* merge_cause */
  const struct pc_jv *wfv = pc_jv_get(sh[0].head, "workflow");
  m->wf.name = pc_xstrdup(pc_jv_str(wfv, "name") ? pc_jv_str(wfv, "name") : "workflow");
  m->wf.file = pc_xstrdup(pc_jv_str(wfv, "file") ? pc_jv_str(wfv, "file") : "");
  m->wf.description = dup_or_null(pc_jv_str(wfv, "description"));
  r->wf = &m->wf;
  r->run_id = pc__merge_intern(m, sh[0].run_id);
  double start = sh[0].start_ms, end = sh[0].start_ms + sh[0].duration_ms;
  int code = PC_EXIT_OK;
  const char *outcome = "ok";
  m->shard.runs = pc_xcalloc(n, sizeof *m->shard.runs);
  for (size_t i = 0; i < n; i++) {
    if (sh[i].start_ms < start)
      start = sh[i].start_ms;
    if (sh[i].start_ms + sh[i].duration_ms > end)
      end = sh[i].start_ms + sh[i].duration_ms;
    if (exit_rank(sh[i].exit_code) > exit_rank(code))
      code = sh[i].exit_code;
    if (run_outcome_rank(sh[i].outcome) > run_outcome_rank(outcome))
      outcome = sh[i].outcome;
    m->shard.runs[i] = (struct pc_shard_run){sh[i].index, pc_xstrdup(sh[i].run_id),
                                             sh[i].start_ms, sh[i].duration_ms,
                                             pc_xstrdup(sh[i].outcome), sh[i].exit_code};
  }
  m->shard.nruns = n;
  m->shard.index = 0;
  m->shard.count = sh[0].count;
  m->shard.rule = pc__merge_intern(m, sh[0].rule);
  snprintf(m->shard.workflow_sha256, sizeof m->shard.workflow_sha256, "%s", sh[0].wf_sha);
  snprintf(m->shard.vars_sha256, sizeof m->shard.vars_sha256, "%s", sh[0].vars_sha);
  r->shard = &m->shard;
  r->start_ms = start;
  r->duration_ms = end - start;
  r->exit_code = code;
  r->outcome = pc__merge_intern(m, code == PC_EXIT_SIGINT || code == PC_EXIT_SIGTERM ||
                                 code == PC_EXIT_SIGHUP ? "cancelled"
                         : code == PC_EXIT_DEADLINE     ? "timeout"
                                                        : outcome);
  r->finished = true;
}

/* The merged run's root cause: of the shards' own, the failure that
 * ended first on the one timeline. */
static void merge_cause(struct pc_run_report *r, struct shard *sh, size_t n, struct smap *paths)
{
  double best = 0;
  for (size_t i = 0; i < n; i++) {
    bool found = false;
    size_t *at = sh[i].cause_path && paths->cap ? smap_find(paths, sh[i].cause_path, &found)
                                                : NULL;
    if (!at || !found || *at >= r->nrecords)
      continue;
    const struct pc_record *c = &r->records[*at];
    double end = c->start_off_ms + c->duration_ms;
    if (r->cause_rec == PC_NO_RECORD || end < best) {
      r->cause_rec = *at;
      best = end;
    }
  }
}

/* ============================================================ public */

int pc_merge_reports(const char *const *paths, size_t n, struct pc_merged **out, char **err)
{
  *out = NULL;
  if (n == 0) {
    *err = pc_xstrdup("name the shards' JSON reports");
    return -1;
  }
  struct shard *sh = pc_xcalloc(n, sizeof *sh);
  struct pc_merged *m = pc_xcalloc(1, sizeof *m);
  struct smap pathmap = {0}, stepmap = {0};
  bool *dup = NULL;
  size_t cap = 0;
  int rc = 0;
  size_t nread = 0;
  for (; nread < n && rc == 0; nread++)
    rc = pc__merge_read_shard(&sh[nread], paths[nread], err);
  if (rc == 0)
    rc = pc__merge_check_shards(sh, n, err);
  if (rc == 0) {
    merge_run(m, sh, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
      char *merr = NULL;
      rc = merge_shard(m, &sh[i], sh[i].start_ms - m->rep.start_ms, &pathmap, &stepmap, &dup,
                       &cap, &merr);
      if (rc)
        *err = merr;
      if (rc == 0)
        rc = pc__merge_latency(m, &sh[i], err);
      if (rc == 0)
        pc__merge_stats(m, &sh[i]);
    }
  }
  if (rc == 0) {
    /* A leaf that several shards ran says which run each record is. */
    struct pc_run_report *r = &m->rep;
    for (size_t i = 0; i < r->nrecords; i++)
      if (dup[i]) {
        char *l = pc_asprintf("%s (shard %d/%d)", r->records[i].label, r->records[i].shard,
                              m->shard.count);
        free(r->records[i].label);
        r->records[i].label = l;
      }
    /* One shard keeps its own lanes (the engine's); shards' lanes are
     * made again over the one timeline. */
    if (n > 1) {
      assign_lanes(r);
    } else {
      for (size_t i = 0; i < r->nrecords; i++)
        if (r->records[i].lane >= r->nlanes)
          r->nlanes = r->records[i].lane + 1;
    }
    merge_cause(r, sh, n, &pathmap);
    r->latency = m->lat;
    r->nlatency = m->nlat;
    rc = pc__merge_check_latency(m, err);
  }
  free(dup);
  smap_free(&pathmap);
  smap_free(&stepmap);
  for (size_t i = 0; i < nread; i++)
    pc__merge_shard_free(&sh[i]);
  free(sh);
  if (rc) {
    pc_merged_free(m);
    return -1;
  }
  *out = m;
  return 0;
}

const struct pc_run_report *pc_merged_report(const struct pc_merged *m)
{
  return &m->rep;
}

void pc_merged_free(struct pc_merged *m)
{
  if (!m)
    return;
  pc_records_free(&m->rep);
  for (size_t i = 0; i < m->nsteps; i++) {
    free(m->steps[i]->id);
    free(m->steps[i]->name);
    free(m->steps[i]);
  }
  free(m->steps);
  pc__latency_free(m->lat, m->nlat);
  for (size_t i = 0; i < m->shard.nruns; i++) {
    free(m->shard.runs[i].run_id);
    free(m->shard.runs[i].outcome);
  }
  free(m->shard.runs);
  free(m->wf.name);
  free(m->wf.file);
  free(m->wf.description);
  for (size_t i = 0; i < m->nstrings; i++)
    free(m->strings[i]);
  free(m->strings);
  free(m);
}
