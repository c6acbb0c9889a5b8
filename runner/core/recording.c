/* recording.c: the records of a run for reports and the progress display
 * (their types are in records.h, named apart from this file so that the
 * header the reports read does not make one module with the engine's
 * code): one per step instance, appended when it starts and filled in
 * when it ends, with the live counters of groups and the lanes of leaves.
 * Nothing here runs for a run that does not record (see the inline guards
 * in task.h). */
#include "core/task.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/util.h"

/* ============================================================ records */

/* Appends a record and returns its index (the array may move). */
static size_t rec_append(struct pc_run *run)
{
  struct pc_run_report *rp = run->rep;
  if (rp->nrecords == run->rec_cap) {
    run->rec_cap = run->rec_cap ? run->rec_cap * 2 : 64;
    rp->records = pc_xrealloc(rp->records, run->rec_cap * sizeof *rp->records);
  }
  memset(&rp->records[rp->nrecords], 0, sizeof *rp->records);
  return rp->nrecords++;
}

void pc__rec_open(struct task *t)
{
  struct pc_run *run = t->run;
  struct pc_run_report *rp = run->rep;
  /* A sub-group's roots have no record: their steps' records go below
   * the calling step's (sub.c). */
  if (!t->step && t->root->sub)
    return;
  size_t parent = t->parent ? t->parent->rec : PC_NO_RECORD;
  if (t->parent && !t->parent->step && t->parent->root->sub)
    parent = pc__sub_caller_rec(t->parent->root->sub);
  t->rec = rec_append(run);
  struct pc_record *r = &rp->records[t->rec];
  r->parent = parent;
  r->step = t->step;
  r->action = t->step ? pc_step_key(t->step) : NULL;
  r->item = t->item;
  r->depth = parent != PC_NO_RECORD ? rp->records[parent].depth + 1 : 0;
  static const enum pc_record_kind kinds[] = {PC_REC_LEAF, PC_REC_SEQUENCE, PC_REC_GATHER,
                                              PC_REC_FOREACH};
  r->kind = t->step ? kinds[t->kind] : PC_REC_ROOT;
  r->root_name = t->step ? NULL : t->root->name;
  r->label = pc__task_label(t);
  if (t->instance && pc__item_text(t))
    r->item_label = pc_xstrdup(pc__item_text(t));
  r->start_off_ms = r->ready_off_ms = t->started_mono - run->started_mono;
  r->lane = -1;
  r->last_attempt = PC_NO_RECORD;
}

/* An attempt of a leaf starts (the run keeps attempts: an exporter asked).
 * It gets its span id now, because the action may pass it on (a
 * traceparent header, TRACEPARENT) before it ends. */
void pc__rec_attempt_open(struct task *t)
{
  struct pc_run *run = t->run;
  struct pc_run_report *rp = run->rep;
  if (rp->nattempts == run->att_cap) {
    run->att_cap = run->att_cap ? run->att_cap * 2 : 64;
    rp->attempts = pc_xrealloc(rp->attempts, run->att_cap * sizeof *rp->attempts);
  }
  size_t i = rp->nattempts++;
  struct pc_attempt_record *ar = &rp->attempts[i];
  memset(ar, 0, sizeof *ar);
  ar->record = t->rec;
  ar->number = t->attempts;
  ar->start_off_ms = pc_mono_ms() - run->started_mono;
  ar->exit_code = -1;
  ar->span = run->trace ? pc_trace_new_span(run->trace) : 0;
  pc__rec_of(t)->last_attempt = i;
}

void pc__rec_attempt_close(struct task *t, enum pc_outcome o, const char *msg)
{
  struct pc_attempt_record *ar = pc__att_rec_of(t);
  struct pc_run *run = t->run;
  ar->done = true;
  ar->outcome = o;
  ar->duration_ms = pc_mono_ms() - run->started_mono - ar->start_off_ms;
  ar->error = msg ? pc_xstrdup(msg) : NULL;
  ar->status = t->att.status;
  ar->exit_code = t->att.exit_code;
  /* what the attempt reported it asked for (pc_attempt_report) */
  const struct leaf_ext *x = t->ext;
  ar->method = x && x->rep_method ? pc_xstrdup(x->rep_method) : NULL;
  ar->url = x && x->rep_url ? pc_xstrdup(x->rep_url) : NULL;
}

/* A leaf's first attempt got its pool permits: from now on it runs, and
 * holds a lane until it ends (backoff between attempts included). Its
 * record starts here; the time before was spent queued. */
void pc__rec_running(struct task *t)
{
  struct pc_record *r = pc__rec_of(t);
  struct pc_run *run = t->run;
  r->start_off_ms = t->ran_mono - run->started_mono;
  r->lane = run->nfree_lanes ? run->free_lanes[--run->nfree_lanes] : run->rep->nlanes++;
  t->lane = r->lane;
}

/* A leaf starts or stops waiting for a pool permit: its record and its
 * parent's live counters (the progress display) say so. */
void pc__rec_waiting(struct task *t, bool waiting)
{
  struct pc_record *r = pc__rec_of(t);
  if (r->waiting == waiting)
    return;
  r->waiting = waiting;
  if (t->parent && pc__rec_of(t->parent)) {
    struct pc_record *pr = pc__rec_of(t->parent);
    if (waiting)
      pr->queued++;
    else
      pr->queued--;
  }
}

void pc__rec_close(struct task *t)
{
  struct pc_record *r = pc__rec_of(t);
  struct pc_run *run = t->run;
  r->done = true;
  r->outcome = t->outcome;
  r->error = t->error ? pc_xstrdup(t->error) : NULL;
  r->attempts = t->kind == TK_LEAF ? t->attempts : 0;
  if (t->kind == TK_LEAF && t->step && t->step->poll.until) {
    r->polls = t->ext ? t->ext->polls : 0;
    r->poll_stop = t->ext ? t->ext->poll_stop : NULL;
  }
  r->duration_ms = pc__task_run_ms(t);
  if (t->kind == TK_LEAF && t->step)
    r->queued_ms = t->queued_ms;
  pc__record_waiting(t, false);
  r->status = t->kind == TK_LEAF ? t->att.status : 0;
  if (t->kind == TK_LEAF && t->ext) { /* what the last attempt reported (pc_attempt_report) */
    r->method = t->ext->rep_method;
    r->url = t->ext->rep_url;
    t->ext->rep_method = t->ext->rep_url = NULL;
  }
  if (t->kind == TK_LEAF && t->lane >= 0) {
    run->free_lanes = pc_xrealloc(run->free_lanes, (run->nfree_lanes + 1) * sizeof(int));
    run->free_lanes[run->nfree_lanes++] = t->lane;
    t->lane = -1;
  }
}

size_t pc__rec_unreached(struct task *group, size_t parent_rec, const struct pc_step *st,
                         const char *why)
{
  struct pc_run *run = group->run;
  if (parent_rec == PC_NO_RECORD)
    parent_rec = group->rec;
  size_t i = rec_append(run);
  struct pc_record *r = &run->rep->records[i];
  r->parent = parent_rec;
  r->step = st;
  r->action = pc_step_key(st);
  r->depth = run->rep->records[parent_rec].depth + 1;
  r->kind = st->for_each                 ? PC_REC_FOREACH
            : st->kind == PC_STEP_GATHER  ? PC_REC_GATHER
            : pc_step_is_group(st)        ? PC_REC_SEQUENCE
                                          : PC_REC_LEAF;
  r->label = pc__child_label(group, st);
  r->start_off_ms = r->ready_off_ms = pc_mono_ms() - run->started_mono;
  r->lane = -1;
  r->done = true;
  r->outcome = PC_SKIPPED;
  r->error = pc_xstrdup(why);
  return i;
}

void pc_records_free(struct pc_run_report *rp)
{
  for (size_t i = 0; i < rp->nrecords; i++) {
    free(rp->records[i].label);
    free(rp->records[i].item_label);
    free(rp->records[i].error);
    free(rp->records[i].url);
    free(rp->records[i].method);
  }
  free(rp->records);
  for (size_t i = 0; i < rp->nattempts; i++) {
    free(rp->attempts[i].error);
    free(rp->attempts[i].method);
    free(rp->attempts[i].url);
  }
  free(rp->attempts);
  for (size_t i = 0; i < rp->nstats; i++)
    pc_stats_section_free(&rp->stats[i]);
  free(rp->stats);
}

