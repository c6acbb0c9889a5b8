/* actions.h: the one place of actions.c (see there) that runs for every
 * task, inline: what kind of task a step makes. It names the group actions
 * and looks up a leaf's ops by its action, until the loader resolves the
 * step kind and the ops once. Included by task.c only. */
#ifndef PACER_CORE_ACTIONS_H
#define PACER_CORE_ACTIONS_H

#include "core/task.h"

/* The kind of task a step (without for_each) makes; a leaf's ops in *ops. */
static inline enum task_kind pc__step_kind(const struct pc_step *st,
                                           const struct pc_action_ops **ops)
{
  if (st->action == PC_ACT_STEPS)
    return TK_SEQ;
  if (st->action == PC_ACT_GATHER)
    return TK_GATHER;
  *ops = pc_action_ops(st->action);
  return TK_LEAF;
}

#endif
