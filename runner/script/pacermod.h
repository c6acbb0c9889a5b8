/* pacermod.h: the `pacer` Lua module (pacermod.c), built once per state
 * from the C primitives of the mod_*.c files and lua/pacer.lua. Steps run
 * their code as jobs of the coroutine runtime (coro.h). See
 * docs/plugins.md. */
#ifndef PACER_PACERMOD_H
#define PACER_PACERMOD_H

#include "script/host.h"

/* Builds the module once per state. Returns 0, or -1 with *err set
 * (malloc'd). */
int pc_pacer_open(struct pc_lua *h, char **err);
/* Pushes field `name` of the table lua/pacer.lua returned (load_plugin,
 * check_input, prepare_run, inline_args, new_env, module, ...). */
void pc_pacer_push(struct pc_lua *h, const char *name);
/* Calls the function below `nargs` arguments on the stack, outside any
 * coroutine, through host.c's door (a guard of `limit_ms`, raising `what`
 * past it; errors with a traceback), then runs the __gc finalizers that
 * came due. Plugin files run their top level this way. Returns 0 with
 * `nres` results pushed, or -1 with *err set (malloc'd) and nothing
 * pushed. */
int pc_pacer_call(struct pc_lua *h, int nargs, int nres, double limit_ms, const char *what,
                  char **err);

#endif
