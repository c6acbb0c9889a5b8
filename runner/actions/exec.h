/* exec.h: the `exec` and `shell` actions (exec.c). They run their programs
 * through the process runner (proc/proc.h), which pacer.exec shares. See
 * docs/exec.md. */
#ifndef PACER_EXEC_H
#define PACER_EXEC_H

#include "model/action.h"

extern const struct pc_action_ops pc_exec_ops;
extern const struct pc_action_ops pc_shell_ops;

#endif
