/* basic.h: the actions that need no service of their own (basic.c):
 * `sleep` (on the run's shared timers), `log` (a line on stdout) and
 * `assert` (expressions that must be true). */
#ifndef PACER_ACTIONS_BASIC_H
#define PACER_ACTIONS_BASIC_H

#include "model/action.h"

extern const struct pc_action_ops pc_sleep_ops;
extern const struct pc_action_ops pc_log_ops;
extern const struct pc_action_ops pc_assert_ops;

#endif
