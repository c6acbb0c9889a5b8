/* actions.c: the places where the engine still names particular actions or
 * HTTP, each behind one small function, so that they can give way to the
 * action table (run hooks, a step kind, fields an action fills itself)
 * without the rest of the engine changing:
 *
 *   pc__actions_kill_now, pc__actions_cleanup  loop over the actions' ops
 *   pc__actions_stats                          the HTTP session's statistics
 *   pc_step_label                              an unnamed step's action name
 *
 * and in the other files of the engine (see docs/engine.md):
 *
 *   task_kind (task.c), pc__step_is_static (results.c),
 *   record_http_fields (records.c), default_retry_codes (attempt.c). */
#include "core/engine.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "http/http.h"

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

void pc__actions_stats(struct pc_run *run, struct pc_run_report *rep)
{
  pc_http_stats_get(run, &rep->http);
}

char *pc_step_label(const struct pc_step *s)
{
  const char *base = strrchr(s->file, '/');
  base = base ? base + 1 : s->file;
  if (s->id)
    return pc_asprintf("%s (%s:%d)", s->id, base, s->line);
  if (s->name)
    return pc_asprintf("%s (%s:%d)", s->name, base, s->line);
  return pc_asprintf("%s (%s:%d)", pc_action_name(s->action), base, s->line);
}
