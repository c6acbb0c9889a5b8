/* run.c: the run's HTTP state (run.h). It is made by the first request of
 * a run, from a step or from pacer.http, and is a run hook: the run takes
 * its statistics for the reports (the counters the JSON report has always
 * had, in its order, and one row per host) and closes the session at the
 * end. It is shared by the runs on one loop (several files in one `pacer
 * run`, model/action.h): one session, so connections are pooled across
 * the files; its limits are those of the first file that makes a request,
 * and what it reads of a workflow per call (trace_context) is read for
 * the calling run's. */
#include "http/run.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "http/spec.h"

#define LABELS_MAX 8 /* step labels kept by a run */

struct http_run {
  struct pc_http_session *session; /* NULL until the first request (or if libcurl fails) */
  int trace_context; /* defaults.http.trace_context of tc_wf: -1 not read yet, else 0 or 1 */
  const struct pc_workflow *tc_wf; /* borrowed: the workflow trace_context was read from */
  /* pc_step_label of the steps that made requests lately (the steps are
   * the run's, and live as long as it) */
  struct {
    const struct pc_step *step; /* borrowed */
    char *label;
  } labels[LABELS_MAX];
  size_t nextlabel;
};

static void *http_run_create(struct pc_run *run)
{
  struct http_run *hr = pc_xcalloc(1, sizeof *hr);
  hr->trace_context = -1;
  return hr;
}

static void http_run_cleanup(struct pc_run *run, void *state)
{
  struct http_run *hr = state;
  pc_run_state_release(run, &pc_http_run_hooks);
  pc_http_session_close(hr->session);
  for (size_t i = 0; i < LABELS_MAX; i++)
    free(hr->labels[i].label);
  free(hr);
}

static void http_run_stats(void *state, struct pc_stats_section *s)
{
  const struct http_run *hr = state;
  struct pc_http_stats hs;
  pc_http_session_stats(hr ? hr->session : NULL, &hs);
  s->name = "http";
  const struct pc_stat counters[] = {
      {"requests", hs.requests},       {"failed", hs.failed}, {"cancelled", hs.cancelled},
      {"connections", hs.connections}, {"reused", hs.reused}, {"bytes_down", hs.bytes_down},
      {"bytes_up", hs.bytes_up},
  };
  s->ncounters = PC_ARRAY_SIZE(counters);
  s->counters = pc_xcalloc(s->ncounters, sizeof *s->counters);
  memcpy(s->counters, counters, sizeof counters);
  s->rows_name = "hosts";
  s->row_key = "host";
  s->nrows = hs.nhosts;
  s->rows = pc_xcalloc(hs.nhosts ? hs.nhosts : 1, sizeof *s->rows);
  for (size_t i = 0; i < hs.nhosts; i++) {
    const struct pc_http_host_stats *h = &hs.hosts[i];
    const struct pc_stat row[] = {
        {"requests", h->requests}, {"connections", h->connections}, {"reused", h->reused},
        {"bytes_down", h->bytes_down}, {"bytes_up", h->bytes_up},
    };
    s->rows[i].key = pc_xstrdup(h->host);
    s->rows[i].ncounters = PC_ARRAY_SIZE(row);
    s->rows[i].counters = pc_xcalloc(PC_ARRAY_SIZE(row), sizeof *s->rows[i].counters);
    memcpy(s->rows[i].counters, row, sizeof row);
  }
  pc_http_stats_free(&hs);
}

const struct pc_run_hooks pc_http_run_hooks = {
    .name = "the HTTP session",
    .shared = true,
    .create = http_run_create,
    .cleanup = http_run_cleanup,
    .stats = http_run_stats,
};

struct pc_http_session *pc_http_session_of(struct pc_run *run)
{
  struct http_run *hr = pc_run_state(run, &pc_http_run_hooks, true);
  if (!hr->session) {
    struct pc_http_limits lim;
    pc_http_limits_of(pc_workflow_defaults(pc_run_workflow_def(run), "http"), &lim);
    hr->session = pc_http_session_new(pc_run_loop(run), &lim);
  }
  return hr->session;
}

const char *pc_http_step_label(struct pc_run *run, const struct pc_step *step)
{
  struct http_run *hr = pc_run_state(run, &pc_http_run_hooks, true);
  for (size_t i = 0; i < LABELS_MAX; i++)
    if (hr->labels[i].step == step && hr->labels[i].label)
      return hr->labels[i].label;
  size_t i = hr->nextlabel++ % LABELS_MAX;
  free(hr->labels[i].label);
  hr->labels[i].step = step;
  hr->labels[i].label = pc_step_label(step);
  return hr->labels[i].label;
}

bool pc_http_trace_context(struct pc_run *run)
{
  struct http_run *hr = pc_run_state(run, &pc_http_run_hooks, true);
  const struct pc_workflow *wf = pc_run_workflow_def(run);
  if (hr->trace_context < 0 || hr->tc_wf != wf) {
    hr->trace_context = pc_http_trace_context_of(pc_workflow_defaults(wf, "http"));
    hr->tc_wf = wf;
  }
  return hr->trace_context != 0;
}
