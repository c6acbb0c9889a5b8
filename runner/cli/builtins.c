/* builtins.c: the composition root, the one list of the actions this
 * pacer knows, as Lua's linit.c is the one list of its libraries. Nothing
 * below the command line names an action: the loader resolves each step's
 * key against this table once (a step then holds its ops), sends each
 * defaults.KEY to the action that declares KEY and asks the actions' own
 * flags what the engine must know, and the run asks the actions' run
 * hooks for their statistics. Adding an action is one file
 * and one line here (docs/architecture.md, "Adding an action";
 * tests/test_toy_action.c does it with a table of its own). */
#include "cli/builtins.h"

#include "actions/basic.h"
#include "actions/exec.h"
#include "http/action.h"
#include "script/plugin.h"

const struct pc_action_ops *const pc_builtin_actions[] = {
    &pc_sleep_ops, &pc_log_ops,  &pc_assert_ops, &pc_http_ops,
    &pc_uses_ops,  &pc_lua_ops,  &pc_exec_ops,   &pc_shell_ops,
    NULL,
};
