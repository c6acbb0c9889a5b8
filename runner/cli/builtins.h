/* builtins.h: the table of actions this pacer knows (builtins.c), which
 * the command line hands to the loader (struct pc_load_opts) and, through
 * the loaded workflow, to the run. */
#ifndef PACER_CLI_BUILTINS_H
#define PACER_CLI_BUILTINS_H

#include "model/action.h"

/* The actions, NULL-terminated, in the order messages list them. */
extern const struct pc_action_ops *const pc_builtin_actions[];

#endif
