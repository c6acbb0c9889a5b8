/* merge_read.c: a shard's JSON report read back for `pacer merge`
 * (merge.c), and the shards checked to be every shard of one run.
 *
 * A report is read as its header (the run, the shard, the workflow, the
 * statistics: a small JSON tree) and its records, taken from "steps" one
 * at a time (jtree.h) so that a large report is never held as a tree. A
 * record is checked to be one pacer writes (its kind, outcome, offsets,
 * parent before it) and kept as a struct srec: the record itself plus the
 * step fields a merged report needs (path, id, name, action, line). The
 * shards must then agree: the same count, the same workflow and vars
 * digests, the same partition rule, each index once and none missing. */
#include "report/merge_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/util.h"
#include "model/outcome.h"
#include "report/format.h"

#define REPORT_VERSION 3

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

void pc__merge_shard_free(struct shard *sh)
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
int pc__merge_read_shard(struct shard *sh, const char *file, char **err)
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
int pc__merge_check_shards(struct shard *sh, size_t n, char **err)
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

