/* builtins.c: the composition root, the one list of the actions this
 * pacer knows, as Lua's linit.c is the one list of its libraries. Nothing
 * below the command line names an action: the loader resolves each step's
 * key against this table once (a step then holds its ops), sends each
 * defaults.KEY to the action that declares KEY, builds the JSON Schema's
 * action parts from the actions' parameter tables, and the run asks the
 * actions' run hooks for their statistics. Adding an action is one file
 * and one line here (docs/architecture.md, "Adding an action").
 *
 * A test build may add one more action without touching this list:
 * compiled with -DPACER_EXTRA_ACTION=NAME_ops, the table ends with &NAME_ops
 * (tests/toy/, the `pacer_toy` target). */
#include "cli/builtins.h"

#include "actions/basic.h"
#include "actions/exec.h"
#include "http/action.h"
#include "script/plugin.h"

#ifdef PACER_EXTRA_ACTION
extern const struct pc_action_ops PACER_EXTRA_ACTION;
#endif

const struct pc_action_ops *const pc_builtin_actions[] = {
    &pc_sleep_ops, &pc_log_ops,  &pc_assert_ops, &pc_http_ops,
    &pc_uses_ops,  &pc_lua_ops,  &pc_exec_ops,   &pc_shell_ops,
#ifdef PACER_EXTRA_ACTION
    &PACER_EXTRA_ACTION,
#endif
    NULL,
};
