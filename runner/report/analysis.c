/* analysis.c: what the per-step report formats agree on, computed once
 * per report from the records: which records are cases of their own and
 * which stand for a failure, the lanes of groups (no two overlapping groups
 * share one), and how many leaves waited for pool permits at each moment. */
#include "report/format.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* A leaf's wait for its first permit: from when it was reached until it
 * ran, or, if it never ran, for as long as it waited. */
static bool first_wait(const struct pc_record *s, double *from, double *to)
{
  if (s->kind != PC_REC_LEAF || s->queued_ms <= 0)
    return false; /* never waited: a step is reached and runs in the same moment */
  *from = s->ready_off_ms;
  *to = s->lane >= 0 ? s->start_off_ms : s->ready_off_ms + s->queued_ms;
  return *to > *from;
}

struct qev {
  double t;
  int d;
};

static int qev_cmp(const void *a, const void *b)
{
  const struct qev *x = a, *y = b;
  if (x->t != y->t)
    return x->t < y->t ? -1 : 1;
  return x->d - y->d;
}

static void analyse_queue(const struct pc_run_report *r, struct pc__analysis *a)
{
  size_t n = 0;
  double from, to;
  for (size_t k = 0; k < r->nrecords; k++)
    n += first_wait(&r->records[k], &from, &to) ? 2 : 0;
  struct qev *ev = pc_xcalloc(n + 1, sizeof *ev);
  n = 0;
  for (size_t k = 0; k < r->nrecords; k++) {
    const struct pc_record *s = &r->records[k];
    if (s->kind == PC_REC_LEAF) {
      a->queued_ms += s->queued_ms;
      a->never_ran = a->never_ran || s->lane < 0;
    }
    if (first_wait(s, &from, &to)) {
      ev[n++] = (struct qev){from, +1};
      ev[n++] = (struct qev){to, -1};
    }
  }
  qsort(ev, n, sizeof *ev, qev_cmp);
  a->queue_t = pc_xcalloc(n + 1, sizeof *a->queue_t);
  a->queue_d = pc_xcalloc(n + 1, sizeof *a->queue_d);
  size_t cur = 0;
  for (size_t k = 0; k < n; k++) {
    a->queue_t[k] = ev[k].t;
    a->queue_d[k] = ev[k].d;
    cur = (size_t)((long)cur + ev[k].d);
    if (cur > a->max_queued)
      a->max_queued = cur;
  }
  a->nqueue = n;
  free(ev);
}

bool pc__case_is_failure(const struct pc_record *s)
{
  return pc__rec_is_failure(s) || (s->done && s->outcome == PC_CANCELLED && s->parent == PC_NO_RECORD);
}

/* A min-heap of (end, lane) for lane assignment. */
struct lane_heap {
  double *end;
  int *lane;
  size_t n, cap;
};

static void heap_swap(struct lane_heap *h, size_t a, size_t b)
{
  double e = h->end[a];
  int l = h->lane[a];
  h->end[a] = h->end[b];
  h->lane[a] = h->lane[b];
  h->end[b] = e;
  h->lane[b] = l;
}

static void heap_push(struct lane_heap *h, double end, int lane)
{
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 16;
    h->end = pc_xrealloc(h->end, h->cap * sizeof *h->end);
    h->lane = pc_xrealloc(h->lane, h->cap * sizeof *h->lane);
  }
  size_t i = h->n++;
  h->end[i] = end;
  h->lane[i] = lane;
  while (i > 0 && h->end[(i - 1) / 2] > h->end[i]) {
    heap_swap(h, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void heap_pop(struct lane_heap *h)
{
  h->n--;
  heap_swap(h, 0, h->n);
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < h->n && h->end[l] < h->end[m])
      m = l;
    if (r < h->n && h->end[r] < h->end[m])
      m = r;
    if (m == i)
      break;
    heap_swap(h, i, m);
    i = m;
  }
}

void pc__analyse(const struct pc_run_report *r, struct pc__analysis *a)
{
  size_t n = r->nrecords;
  memset(a, 0, sizeof *a);
  a->own_case = pc_xcalloc(n + 1, sizeof *a->own_case);
  a->fail_below = pc_xcalloc(n + 1, sizeof *a->fail_below);
  a->nkids = pc_xcalloc(n + 1, sizeof *a->nkids);
  a->group_lane = pc_xcalloc(n + 1, sizeof *a->group_lane);
  /* Children come after their parents, so one backward pass sees every
   * child before its parent. */
  for (size_t k = n; k-- > 0;) {
    const struct pc_record *s = &r->records[k];
    if (s->kind == PC_REC_LEAF) {
      a->fail_below[k] = pc__rec_is_failure(s);
    } else {
      bool childless = a->nkids[k] == 0 && s->kind != PC_REC_ROOT;
      a->own_case[k] = childless || (pc__case_is_failure(s) && !a->fail_below[k]);
      a->fail_below[k] = a->fail_below[k] || (a->own_case[k] && pc__case_is_failure(s));
    }
    if (s->parent != PC_NO_RECORD) {
      a->nkids[s->parent]++;
      a->fail_below[s->parent] = a->fail_below[s->parent] || a->fail_below[k];
    }
  }
  struct lane_heap h = {0};
  for (size_t k = 0; k < n; k++) {
    const struct pc_record *s = &r->records[k];
    a->group_lane[k] = -1;
    if (s->kind == PC_REC_LEAF) {
      a->nleaves++;
      a->attempts += (size_t)s->attempts;
      a->retried += s->attempts > 1;
    } else if (s->kind != PC_REC_ROOT) {
      a->ngroups++;
      if (h.n && h.end[0] <= s->start_off_ms) {
        a->group_lane[k] = h.lane[0];
        heap_pop(&h);
      } else {
        a->group_lane[k] = a->ngroup_lanes++;
      }
      heap_push(&h, pc__rec_end(s), a->group_lane[k]);
    }
    if (s->kind == PC_REC_LEAF || a->own_case[k]) {
      a->ncases++;
      a->counts[s->done ? (int)s->outcome : PC_SKIPPED + 1]++;
    }
  }
  free(h.end);
  free(h.lane);
  analyse_queue(r, a);
}

void pc__analysis_free(struct pc__analysis *a)
{
  free(a->queue_t);
  free(a->queue_d);
  free(a->own_case);
  free(a->fail_below);
  free(a->nkids);
  free(a->group_lane);
}
