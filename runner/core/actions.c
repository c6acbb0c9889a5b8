/* actions.c: the places where the engine still names particular actions or
 * HTTP, each behind one small function, so that they can give way to the
 * action table (run hooks, the step's ops and kind, fields an action fills
 * itself) without the rest of the engine changing. No other file of the
 * engine names one but actions.h, which has the one that runs for every
 * task inline; docs/engine.md lists what replaces each. */
#include "core/task.h"

#include <stdlib.h>
#include <string.h>

#include <lua.h>

#include "base/util.h"
#include "http/action.h"
#include "http/session.h"

/* ------------------------------------------------ the run-wide hooks */

_Static_assert(PC_ACT_SHELL < PC_RUN_SLOTS, "one run-wide slot per action");

void **pc_run_action_slot(struct pc_run *run, enum pc_action a)
{
  return &run->action_slots[a];
}

void pc__actions_kill_now(struct pc_run *run)
{
  for (int a = 0; a <= PC_ACT_SHELL; a++) {
    const struct pc_action_ops *ops = pc_action_ops((enum pc_action)a);
    if (ops && ops->kill_now)
      ops->kill_now(run);
  }
}

void pc__actions_cleanup(struct pc_run *run)
{
  for (int a = 0; a <= PC_ACT_SHELL; a++) {
    const struct pc_action_ops *ops = pc_action_ops((enum pc_action)a);
    if (ops && ops->run_cleanup)
      ops->run_cleanup(run);
  }
}

/* The HTTP session's statistics as a section of the reports: the
 * counters the JSON report has always had, in its order, and one row per
 * host. */
void pc__actions_stats(struct pc_run *run, struct pc_run_report *rep)
{
  struct pc_http_stats hs;
  pc_http_stats_get(run, &hs);
  struct pc_stats_section *s = pc_xcalloc(1, sizeof *s);
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
  rep->stats = s;
  rep->nstats = 1;
}

/* -------------------------------------------------------------- steps */


char *pc_step_label(const struct pc_step *s)
{
  const char *base = strrchr(s->file, '/');
  base = base ? base + 1 : s->file;
  if (s->name)
    return pc_asprintf("%s (%s:%d)", s->name, base, s->line);
  if (s->id)
    return pc_asprintf("%s (%s:%d)", s->id, base, s->line);
  return pc_asprintf("%s (%s:%d)", pc_action_name(s->action), base, s->line);
}

const char *pc__step_action_name(const struct pc_step *st)
{
  return pc_action_name(st->action);
}

/* A leaf step with no expression anywhere (its value, expect.that,
 * outputs; for HTTP also defaults.http, evaluated in the step's scope) and
 * no Lua: its items need no scope, since nothing could read item or index. */
bool pc__step_is_static(const struct pc_run *run, const struct pc_step *st)
{
  switch (st->action) {
  case PC_ACT_SLEEP:
  case PC_ACT_LOG:
  case PC_ACT_EXEC:
  case PC_ACT_SHELL:
    break;
  case PC_ACT_HTTP:
    if (run->wf->http_defaults && run->wf->http_defaults->has_expr)
      return false;
    break;
  default:
    return false;
  }
  return !(st->params && st->params->has_expr) && !st->expect.nthat && !st->noutputs &&
         !st->nasserts;
}

/* An HTTP result's `url` and `method`, for the step's record: the reports
 * show them with the status. */
void pc__record_action_fields(const struct pc_run *run, int result_ref, struct pc_record *r)
{
  lua_State *L = run->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, result_ref); /* result */
  if (lua_getfield(L, -1, "url") == LUA_TSTRING)  /* result, url */
    r->url = pc_xstrdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  if (lua_getfield(L, -1, "method") == LUA_TSTRING) /* result, method */
    r->method = pc_xstrdup(lua_tostring(L, -1));
  lua_pop(L, 2);
}

/* retry.on's status codes when the step does not set it: those of a
 * server saying "try again" (HTTP; actions with a status). */
const int *pc__default_retry_codes(const struct pc_action_ops *ops, size_t *n)
{
  static const int http_default[] = {429, 502, 503, 504};
  if (!ops->has_status) {
    *n = 0;
    return NULL;
  }
  *n = PC_ARRAY_SIZE(http_default);
  return http_default;
}
