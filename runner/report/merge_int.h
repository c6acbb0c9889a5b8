/* merge_int.h: what the files of `pacer merge` share, and nobody else
 * may use: merge.c (the merge of the records and the run, and the public
 * side, merge.h), merge_read.c (a shard's report read back and the shards
 * checked to be one run's) and merge_stats.c (the latency histograms and
 * the statistics sections added up). Names here carry the internal prefix
 * pc__merge_ (STYLE.md, Naming). */
#ifndef PACER_MERGE_INT_H
#define PACER_MERGE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/util.h"
#include "core/records.h"
#include "model/workflow.h"
#include "report/jtree.h"

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

static inline char *dup_or_null(const char *s)
{
  return s ? pc_xstrdup(s) : NULL;
}

/* The one copy of `s` (NULL for NULL) in m's strings, which live as long
 * as the merged report: the actions, root names and counter names. */
const char *pc__merge_intern(struct pc_merged *m, const char *s);

/* Reads one shard's report at `file`: its header, and its records one by
 * one. Returns 0, or -1 with *err (malloc'd); sh is freed with
 * pc__merge_shard_free either way. */
int pc__merge_read_shard(struct shard *sh, const char *file, char **err);
void pc__merge_shard_free(struct shard *sh);
/* The n shards must be exactly the N shards of one run; sorts them by
 * index. Returns 0, or -1 with *err (malloc'd). */
int pc__merge_check_shards(struct shard *sh, size_t n, char **err);

/* Adds a shard's latency histograms to m->lat. Returns 0, or -1 with
 * *err (malloc'd). */
int pc__merge_latency(struct pc_merged *m, const struct shard *sh, char **err);
/* Each merged histogram must count as many durations as the merged records
 * hold leaves of its step that ran. Returns 0, or -1 with *err. */
int pc__merge_check_latency(struct pc_merged *m, char **err);
/* Adds a shard's statistics sections to m->rep.stats. */
void pc__merge_stats(struct pc_merged *m, const struct shard *sh);

#endif
