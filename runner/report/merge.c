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
 * sections (HTTP) add up counter by counter and row by row. */
#include "report/merge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/hist.h"
#include "base/util.h"
#include "model/outcome.h"
#include "model/workflow.h"
#include "report/format.h"
#include "report/jtree.h"

#define REPORT_VERSION 3

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

/* ======================================================= the shards */

/* One record of a shard as read. */
struct srec {
  struct pc_record rec; /* label, error, url, method owned until moved */
  char *path;
  char *id, *name, *action;
  int line;    /* the step's line; 0 for a root */
  int step_index; /* its position among its siblings (1-based; 0 for a root) */
  long parent; /* index in the shard; -1 for a root */
};

struct shard {
  const char *file;    /* borrowed: the path given */
  struct pc_jv *head;  /* the report without its records */
  struct srec *recs;
  size_t n, cap;
  int index, count;    /* index 0: the report says null (a merged report) */
  const char *rule, *wf_sha, *vars_sha, *run_id, *outcome; /* borrowed from head */
  const char *cause_path; /* run.root_cause.path, or NULL (borrowed from head) */
  double start_ms, duration_ms;
  int exit_code;
};

struct pc_merged {
  struct pc_run_report rep;
  struct pc_workflow wf;
  struct pc_shard_id shard;
  struct pc_step **steps; /* stand-ins for the steps the reports read */
  size_t nsteps;
  char **strings;         /* interned: actions, root names, counter names */
  size_t nstrings;
  struct pc_latency *lat;
  size_t nlat;
};

static const char *intern(struct pc_merged *m, const char *s)
{
  if (!s)
    return NULL;
  for (size_t i = 0; i < m->nstrings; i++)
    if (strcmp(m->strings[i], s) == 0)
      return m->strings[i];
  m->strings = pc_xrealloc(m->strings, (m->nstrings + 1) * sizeof *m->strings);
  return m->strings[m->nstrings++] = pc_xstrdup(s);
}

static char *dup_or_null(const char *s)
{
  return s ? pc_xstrdup(s) : NULL;
}

static void srec_free(struct srec *s)
{
  free(s->rec.label);
  free(s->rec.error);
  free(s->rec.item_label);
  free(s->rec.url);
  free(s->rec.method);
  free(s->path);
  free(s->id);
  free(s->name);
  free(s->action);
}

static void shard_free(struct shard *sh)
{
  for (size_t i = 0; i < sh->n; i++)
    srec_free(&sh->recs[i]);
  free(sh->recs);
  pc_jv_free(sh->head);
}

/* "2026-11-25T06:52:38.123Z" (pc_format_iso8601) as ms since the epoch. */
static bool parse_iso8601(const char *s, double *ms)
{
  struct tm tm;
  int msec, used = 0;
  memset(&tm, 0, sizeof tm);
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &msec, &used) != 7 ||
      s[used] != '\0')
    return false;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm(&tm);
  *ms = (double)t * 1000.0 + msec;
  return true;
}

static bool parse_outcome(const char *s, bool *done, enum pc_outcome *o)
{
  if (!s)
    return false;
  if (strcmp(s, "running") == 0) {
    *done = false;
    *o = PC_OK;
    return true;
  }
  for (int i = 0; i <= PC_SKIPPED; i++)
    if (strcmp(s, pc_outcome_name((enum pc_outcome)i)) == 0) {
      *done = true;
      *o = (enum pc_outcome)i;
      return true;
    }
  return false;
}

static bool parse_kind(const char *s, enum pc_record_kind *k)
{
  static const enum pc_record_kind kinds[] = {PC_REC_ROOT, PC_REC_SEQUENCE, PC_REC_GATHER,
                                              PC_REC_FOREACH, PC_REC_LEAF};
  for (size_t i = 0; s && i < PC_ARRAY_SIZE(kinds); i++)
    if (strcmp(s, pc__kind_name(kinds[i])) == 0) {
      *k = kinds[i];
      return true;
    }
  return false;
}

static const char *opt_str(const struct pc_jv *o, const char *key, bool *ok)
{
  const struct pc_jv *v = pc_jv_get(o, key);
  if (v && v->t != PC_J_STR && v->t != PC_J_NULL)
    *ok = false;
  return v && v->t == PC_J_STR ? v->s : NULL;
}

/* One element of "steps": a record. */
static int on_record(struct pc_jv *el, void *data, char **err)
{
  struct shard *sh = data;
  size_t at = sh->n;
  struct srec s;
  memset(&s, 0, sizeof s);
  s.rec.lane = -1;
  bool ok = el->t == PC_J_OBJ;
  uint64_t index = at;
  const struct pc_jv *pv = pc_jv_get(el, "parent");
  if (ok && pc_jv_get(el, "index"))
    ok = pc_jv_get_u64(el, "index", &index) && index == at;
  uint64_t parent = 0;
  if (ok && pv && pv->t == PC_J_NULL)
    s.parent = -1;
  else if (ok && pc_jv_u64(pv, &parent) && parent < at)
    s.parent = (long)parent;
  else
    ok = false;
  const char *path = pc_jv_str(el, "path"), *label = pc_jv_str(el, "label");
  ok = ok && path && label && parse_kind(pc_jv_str(el, "kind"), &s.rec.kind) &&
       parse_outcome(pc_jv_str(el, "outcome"), &s.rec.done, &s.rec.outcome) &&
       pc_jv_num(el, "start_offset_ms", &s.rec.start_off_ms) &&
       pc_jv_num(el, "duration_ms", &s.rec.duration_ms);
  ok = ok && (s.rec.kind == PC_REC_ROOT) == (s.parent < 0);
  const char *id = opt_str(el, "id", &ok), *name = opt_str(el, "name", &ok);
  const char *action = opt_str(el, "action", &ok), *error = opt_str(el, "error", &ok);
  const char *item_label = opt_str(el, "item_label", &ok);
  int line = 0, step_index = 0;
  if (ok && s.rec.kind != PC_REC_ROOT)
    ok = pc_jv_int(el, "line", &line) && (id || action) &&
         (!pc_jv_get(el, "step_index") || pc_jv_int(el, "step_index", &step_index));
  uint64_t item = 0;
  if (ok && pc_jv_get(el, "item"))
    ok = pc_jv_get_u64(el, "item", &item) && item > 0;
  s.rec.ready_off_ms = s.rec.start_off_ms;
  if (ok && s.rec.kind == PC_REC_LEAF) {
    const struct pc_jv *lane = pc_jv_get(el, "lane");
    ok = pc_jv_num(el, "ready_offset_ms", &s.rec.ready_off_ms) &&
         pc_jv_num(el, "queued_ms", &s.rec.queued_ms) &&
         pc_jv_int(el, "attempts", &s.rec.attempts) && lane &&
         (lane->t == PC_J_NULL || pc_jv_int(el, "lane", &s.rec.lane));
    if (ok && lane->t == PC_J_NULL)
      s.rec.lane = -1;
    /* The action's own fields: the record's one object member (status,
     * method, url), whatever the action calls it. */
    for (size_t i = 0; ok && i < el->n; i++)
      if (el->v[i]->t == PC_J_OBJ) {
        const struct pc_jv *f = el->v[i];
        int status = 0;
        if (pc_jv_get(f, "status") && !pc_jv_int(f, "status", &status))
          ok = false;
        s.rec.status = status;
        s.rec.method = dup_or_null(opt_str(f, "method", &ok));
        s.rec.url = dup_or_null(opt_str(f, "url", &ok));
      }
  } else if (ok) {
    uint64_t total = 0, finished = 0, failed = 0;
    ok = pc_jv_get_u64(el, "total", &total) && pc_jv_get_u64(el, "finished", &finished) &&
         pc_jv_get_u64(el, "failed", &failed);
    s.rec.total = (size_t)total;
    s.rec.finished = (size_t)finished;
    s.rec.failed = (size_t)failed;
  }
  if (!ok) {
    free(s.rec.method);
    free(s.rec.url);
    pc_jv_free(el);
    *err = pc_asprintf("step record %zu is not one pacer writes", at);
    return -1;
  }
  s.rec.item = (size_t)item;
  s.rec.label = pc_xstrdup(label);
  s.rec.error = dup_or_null(error);
  s.rec.item_label = dup_or_null(item_label);
  s.path = pc_xstrdup(path);
  s.id = dup_or_null(id);
  s.name = dup_or_null(name);
  s.action = dup_or_null(action);
  s.line = line;
  s.step_index = step_index;
  pc_jv_free(el);
  if (sh->n == sh->cap) {
    sh->cap = sh->cap ? sh->cap * 2 : 64;
    sh->recs = pc_xrealloc(sh->recs, sh->cap * sizeof *sh->recs);
  }
  sh->recs[sh->n++] = s;
  return 0;
}

/* Reads one shard's report: its header, and its records one by one. */
static int read_shard(struct shard *sh, const char *file, char **err)
{
  memset(sh, 0, sizeof *sh);
  sh->file = file;
  char *perr = NULL;
  if (pc_jt_parse_file(file, "steps", on_record, sh, &sh->head, &perr) != 0) {
    *err = perr;
    return -1;
  }
  const struct pc_jv *h = sh->head;
  int version = 0;
  const char *schema = pc_jv_str(h, "schema");
  if (!schema || strcmp(schema, "pacer-report") != 0 || !pc_jv_int(h, "version", &version)) {
    *err = pc_asprintf("%s: not a pacer JSON report", file);
    return -1;
  }
  if (version != REPORT_VERSION) {
    *err = pc_asprintf("%s: a report of version %d; pacer merge reads version %d (the version "
                       "this pacer writes: run the shards with it)",
                       file, version, REPORT_VERSION);
    return -1;
  }
  const struct pc_jv *run = pc_jv_get(h, "run"), *shv = pc_jv_get(h, "shard");
  const struct pc_jv *idx = pc_jv_get(shv, "index");
  bool ok = run && shv && idx && pc_jv_int(shv, "count", &sh->count) && sh->count >= 1 &&
            (idx->t == PC_J_NULL || (pc_jv_int(shv, "index", &sh->index) && sh->index >= 1)) &&
            (sh->rule = pc_jv_str(shv, "rule")) && (sh->run_id = pc_jv_str(run, "id")) &&
            (sh->outcome = pc_jv_str(run, "outcome")) &&
            (pc_jv_num(run, "started_at_epoch_ms", &sh->start_ms) ||
             parse_iso8601(pc_jv_str(run, "started_at"), &sh->start_ms)) &&
            pc_jv_num(run, "duration_ms", &sh->duration_ms) &&
            pc_jv_int(run, "exit_code", &sh->exit_code) && pc_jv_get(h, "workflow");
  if (!ok) {
    *err = pc_asprintf("%s: not a complete pacer report (its run or shard is missing or damaged)",
                       file);
    return -1;
  }
  if (idx->t == PC_J_NULL) {
    *err = pc_asprintf("%s is a merged report: merge the shards' own reports", file);
    return -1;
  }
  sh->cause_path = pc_jv_str(pc_jv_get(run, "root_cause"), "path");
  sh->wf_sha = pc_jv_str(shv, "workflow_sha256");
  sh->vars_sha = pc_jv_str(shv, "vars_sha256");
  if (!sh->wf_sha || !sh->vars_sha) {
    *err = pc_asprintf("%s has no workflow or vars digest, so nothing shows which run it belongs "
                       "to (it was not written by pacer run)",
                       file);
    return -1;
  }
  if (sh->index > sh->count) {
    *err = pc_asprintf("%s: shard %d of %d?", file, sh->index, sh->count);
    return -1;
  }
  return 0;
}

static int by_index(const void *a, const void *b)
{
  const struct shard *x = a, *y = b;
  return x->index - y->index;
}

/* The shards must be exactly the N shards of one run. */
static int check_shards(struct shard *sh, size_t n, char **err)
{
  for (size_t i = 1; i < n; i++) {
    if (sh[i].count != sh[0].count) {
      *err = pc_asprintf("%s is shard %d of %d but %s is shard %d of %d: not the shards of one run",
                         sh[0].file, sh[0].index, sh[0].count, sh[i].file, sh[i].index,
                         sh[i].count);
      return -1;
    }
    if (strcmp(sh[i].wf_sha, sh[0].wf_sha) != 0) {
      *err = pc_asprintf("%s and %s are reports of different workflow files (sha256 %.12s... and "
                         "%.12s...)",
                         sh[0].file, sh[i].file, sh[0].wf_sha, sh[i].wf_sha);
      return -1;
    }
    if (strcmp(sh[i].vars_sha, sh[0].vars_sha) != 0) {
      *err = pc_asprintf("%s and %s were run with different vars (--var, --vars-file: sha256 "
                         "%.12s... and %.12s...)",
                         sh[0].file, sh[i].file, sh[0].vars_sha, sh[i].vars_sha);
      return -1;
    }
    if (strcmp(sh[i].rule, sh[0].rule) != 0) {
      *err = pc_asprintf("%s and %s split the fan-outs differently (%s and %s)", sh[0].file,
                         sh[i].file, sh[0].rule, sh[i].rule);
      return -1;
    }
  }
  qsort(sh, n, sizeof *sh, by_index);
  for (size_t i = 1; i < n; i++)
    if (sh[i].index == sh[i - 1].index) {
      *err = pc_asprintf("shard %d of %d is given twice: %s and %s", sh[i].index, sh[i].count,
                         sh[i - 1].file, sh[i].file);
      return -1;
    }
  int count = sh[0].count;
  if ((int)n != count) {
    struct pc_buf b;
    pc_buf_init(&b, 1 << 16);
    size_t k = 0, missing = 0;
    for (int want = 1; want <= count; want++) {
      if (k < n && sh[k].index == want) {
        k++;
        continue;
      }
      if (missing++ < 20)
        pc_buf_printf(&b, "%s%d", missing > 1 ? ", " : "", want);
    }
    if (missing > 20)
      pc_buf_printf(&b, " and %zu more", missing - 20);
    *err = pc_asprintf("%s %s of %d %s missing: the merge needs a report from every shard",
                       missing == 1 ? "shard" : "shards", b.data, count,
                       missing == 1 ? "is" : "are");
    pc_buf_free(&b);
    return -1;
  }
  return 0;
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
    r->action = intern(m, s->action);
    if (s->parent < 0) {
      r->step = NULL;
      r->root_name = intern(m, s->id ? s->id : "steps");
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
        double te = hend[i];
        int tl = hlane[i];
        hend[i] = hend[s];
        hlane[i] = hlane[s];
        hend[s] = te;
        hlane[s] = tl;
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
      double te = hend[i];
      int tl = hlane[i];
      hend[i] = hend[p];
      hlane[i] = hlane[p];
      hend[p] = te;
      hlane[p] = tl;
      i = p;
    }
  }
  r->nlanes = nlanes;
  free(hend);
  free(hlane);
  free(ev);
}

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

static int merge_latency(struct pc_merged *m, const struct shard *sh, char **err)
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
static int check_latency(struct pc_merged *m, char **err)
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
  (*c)[*n] = (struct pc_stat){intern(m, name), 0};
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
static void merge_stats(struct pc_merged *m, const struct shard *sh)
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
      r->stats[k].name = intern(m, stats->k[i]);
      r->nstats++;
    }
    struct pc_stats_section *sec = &r->stats[k];
    add_counters(m, sv, &sec->counters, &sec->ncounters);
    for (size_t j = 0; j < sv->n; j++) {
      const struct pc_jv *rows = sv->v[j];
      if (rows->t != PC_J_ARR || (sec->rows_name && strcmp(sec->rows_name, sv->k[j]) != 0))
        continue;
      sec->rows_name = intern(m, sv->k[j]);
      for (size_t q = 0; q < rows->n; q++) {
        const struct pc_jv *row = rows->v[q];
        size_t f = 0;
        while (row->t == PC_J_OBJ && f < row->n && row->v[f]->t != PC_J_STR)
          f++;
        if (row->t != PC_J_OBJ || f == row->n)
          continue;
        sec->row_key = intern(m, row->k[f]);
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
  r->run_id = intern(m, sh[0].run_id);
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
  m->shard.rule = intern(m, sh[0].rule);
  snprintf(m->shard.workflow_sha256, sizeof m->shard.workflow_sha256, "%s", sh[0].wf_sha);
  snprintf(m->shard.vars_sha256, sizeof m->shard.vars_sha256, "%s", sh[0].vars_sha);
  r->shard = &m->shard;
  r->start_ms = start;
  r->duration_ms = end - start;
  r->exit_code = code;
  r->outcome = intern(m, code == PC_EXIT_SIGINT || code == PC_EXIT_SIGTERM ||
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
    rc = read_shard(&sh[nread], paths[nread], err);
  if (rc == 0)
    rc = check_shards(sh, n, err);
  if (rc == 0) {
    merge_run(m, sh, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
      char *merr = NULL;
      rc = merge_shard(m, &sh[i], sh[i].start_ms - m->rep.start_ms, &pathmap, &stepmap, &dup,
                       &cap, &merr);
      if (rc)
        *err = merr;
      if (rc == 0)
        rc = merge_latency(m, &sh[i], err);
      if (rc == 0)
        merge_stats(m, &sh[i]);
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
    rc = check_latency(m, err);
  }
  free(dup);
  smap_free(&pathmap);
  smap_free(&stepmap);
  for (size_t i = 0; i < nread; i++)
    shard_free(&sh[i]);
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
