/* mod_exec.h: the one shape of a process's result in Lua, shared by the
 * `exec` and `shell` actions (a step's result) and pacer.exec (what it
 * returns); built by mod_exec.c. */
#ifndef PACER_SCRIPT_MOD_EXEC_H
#define PACER_SCRIPT_MOD_EXEC_H

#include <stdbool.h>

#include <lua.h>

struct pc_proc_result;

/* Sets the fields of the table at `idx`: exit_code (nil when the process
 * did not exit by itself, or has not finished), signal (its name, e.g.
 * "SIGTERM", when a signal ended it), stdout, stderr, stdout_truncated,
 * stderr_truncated, and truncated (either was). `finished`: the process
 * has exited and reported; false for what a cancelled one captured so
 * far (exit_code and signal nil). */
void pc_exec_result_fill(lua_State *L, int idx, const struct pc_proc_result *r, bool finished);

#endif
