/* pacermod.h: the `pacer` Lua module and the coroutines it runs on.
 *
 * A step with Lua code (`uses:` or `lua:`) runs as a tree of coroutines of
 * the run's one lua_State: the step's root, the children pacer.gather and
 * pacer.timeout make (closed with their parent), and the tasks pacer.spawn
 * makes (owned by the step). Every resume happens from the engine's
 * deferred queue (pc_run_defer), never inside a libuv or curl callback.
 * Each coroutine has at most one pending operation {cancel, data}: set
 * before it yields, cleared before it is resumed, called when the
 * coroutine is closed. Closing a coroutine (cancellation) cancels its
 * operation and its children and runs its pending to-be-closed variables
 * (lua_resetthread). See docs/plugins.md. */
#ifndef PACER_PACERMOD_H
#define PACER_PACERMOD_H

#include <stdbool.h>

#include "model/action.h"
#include "script/luahost.h"

/* Builds the module (lua/pacer.lua over the C primitives) once per state.
 * Returns 0, or -1 with *err set (malloc'd). */
int pc_pacer_open(struct pc_lua *h, char **err);
/* Pushes field `name` of the table lua/pacer.lua returned (load_plugin,
 * check_input, prepare_with, make_ctx, inline_args, module, ...). */
void pc_pacer_push(struct pc_lua *h, const char *name);
/* Calls the function below `nargs` arguments on the stack, outside any
 * coroutine, through luahost.c's door (a guard of `limit_ms`, raising
 * `what` past it; errors with a traceback), then runs the __gc finalizers
 * that came due. Plugin files run their top level this way. Returns 0 with
 * `nres` results pushed, or -1 with *err set (malloc'd) and nothing pushed. */
int pc_pacer_call(struct pc_lua *h, int nargs, int nres, double limit_ms, const char *what,
                  char **err);

/* Starts the function below `nargs` arguments on the stack as the root
 * coroutine of attempt `a` (both popped). The root's first return value
 * becomes the result's `value`; the step then ends with pc_attempt_done. */
struct pc_lstep;
struct pc_lstep *pc_lstep_start(struct pc_attempt *a, int nargs);
/* Stops a running step: closes every coroutine of it (to-be-closed
 * variables run, operations are cancelled) and frees it. No callback of the
 * attempt fires afterwards. */
void pc_lstep_cancel(struct pc_lstep *s);

#endif
