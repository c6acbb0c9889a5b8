/* host.h: the run's single lua_State and the machinery every entry into Lua
 * shares (host.c).
 *
 * Every call from C into Lua that may reach code pacer does not own goes
 * through one door, pc_lua_call (a protected call with a message handler),
 * inside a guard (CPU, blocking report, memory limit); the coroutine runtime
 * (coro.h) resumes coroutines inside the same guard. See "guards" below. */
#ifndef PACER_SCRIPT_HOST_H
#define PACER_SCRIPT_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "script/guard.h"

struct pc_lua;

/* Creates the state, opens the safe libraries, the JSON module (runner/script/json.c)
 * and the embedded prelude (lua/prelude.lua). Returns NULL only on allocation failure or a
 * broken prelude (a bug), with a message on stderr. */
struct pc_lua *pc_lua_new(void);
void pc_lua_free(struct pc_lua *h);
lua_State *pc_lua_state(struct pc_lua *h);
/* Releases a registry reference (luaL_unref). */
void pc_lua_unref(struct pc_lua *h, int ref);

/* Memory limit of the state (bytes), default 512 MiB. It applies only while
 * enforcement is on, which every guard (below) turns on: going over it
 * raises "not enough memory" in the guarded code (failing its step or
 * expression) instead of growing the process. Outside guards (the engine
 * building results) allocations are never refused by the limit.
 * pc_lua_memory_enforce returns the previous setting. */
#define PC_LUA_MEMORY_DEFAULT ((size_t)512 << 20)
void pc_lua_set_memory_limit(struct pc_lua *h, size_t bytes);
/* A hard cap on the state's memory that applies everywhere, guarded or
 * not (the limit is lowered to it): for harnesses that must bound memory
 * whatever runs (tests/fuzz). An unguarded allocation refused by it raises
 * where the engine may not expect it; pacer itself never sets one. 0
 * removes it. */
void pc_lua_set_memory_cap(struct pc_lua *h, size_t bytes);
size_t pc_lua_memory_limit(const struct pc_lua *h);
size_t pc_lua_memory_used(const struct pc_lua *h);
bool pc_lua_memory_enforce(struct pc_lua *h, bool on);
/* The message for a LUA_ERRMEM raised in guarded code: the limit, or the
 * system refusing memory (RLIMIT_AS, no swap). malloc'd. */
char *pc_lua_memory_error(struct pc_lua *h);
/* When the system refuses memory to an allocation made outside guarded
 * code, the allocator gives back a reserve it holds (util.c) and tries
 * again, so the engine can still fail the step, run `finally` and write
 * reports. pc_lua_memory_recover takes the reserve back once memory is
 * free again; coro.c calls it after each step (a pointer test when
 * nothing happened). */
void pc_lua_memory_recover(struct pc_lua *h);

/* --------------------------------------------------------------- guards
 *
 * Every entry into Lua code that pacer does not own -- plugin files, steps'
 * code, and what that code leaves in values: metamethods, __gc finalizers,
 * an error object's __tostring -- runs inside a guard, whoever triggers it:
 *  - CPU: a count hook compares the clock with the guard's deadline; past it
 *    the hook raises `what` and re-arms itself for every line (and on the
 *    guard's thread), so pcall cannot swallow it;
 *  - the loop: code that has run for more than PC_LUA_BLOCK_WARN_MS without
 *    returning is reported once, with the guard's label (a step) or where
 *    it runs;
 *  - memory: the state's limit applies.
 * Guards nest (a step's code evaluating an expression, closing a task): an
 * inner guard's deadline is never later than the outer one's. */
#define PC_LUA_BLOCK_WARN_MS 100.0
/* With PC_LUA_GUARD_PREEMPT: while a signal is pending (base/signal.h),
 * code that has run this long without yielding yields to the loop. */
#define PC_LUA_PREEMPT_MS 20.0
/* struct pc_lua_guard, and its flags: script/guard.h. */
/* Enters a guard around code that is about to run on thread `co` (the
 * current frame is saved into *saved). pc_lua_guard_leave restores it; with
 * `ended` it copies out the frame as it ended and returns the milliseconds
 * the outermost guard has run (0 without).
 *
 * How a tripped guard stops code. Raising an error from a debug hook runs
 * the code's message handlers (xpcall) with hooks off, and a coroutine that
 * dies of it keeps hooks off for its <close> handlers: code there could not
 * be stopped again. So with PC_LUA_GUARD_STOP (coro.c resuming a coroutine),
 * the guard *yields* that coroutine wherever Lua lets it -- nothing in it
 * can catch that -- and reports `stopped`; the caller closes the coroutine
 * (its <close> handlers then run with hooks on, under a guard of their
 * own). Where it cannot yield (inside a sort comparator, on the main
 * thread) the guard raises `what`, and says so in `raised_on_co`: the caller
 * must not run the dead coroutine's <close> handlers. The sandbox's xpcall
 * skips plugin message handlers once the guard has tripped.
 *
 * How a signal reaches code that computes without yielding. The loop
 * handles signals, and cannot while Lua code holds it. With
 * PC_LUA_GUARD_PREEMPT (coro.c resuming a coroutine), once a signal has
 * arrived the hook yields `co` after PC_LUA_PREEMPT_MS of running, wherever
 * Lua lets it, and reports `preempted`: the caller resumes it later, after
 * the loop has had a turn, unless the signal's handling cancelled it first.
 * Code on another thread (a coroutine plugin code made), or where Lua
 * cannot yield, is not preempted; it is the next time the hook runs on
 * `co` in a spot that can yield. */
void pc_lua_guard_enter(struct pc_lua *h, struct pc_lua_guard *saved, lua_State *co,
                        double deadline, const char *label, const char *what, unsigned flags);
double pc_lua_guard_leave(struct pc_lua *h, const struct pc_lua_guard *saved,
                          struct pc_lua_guard *ended);
/* Arms the hook of the current guard in its tripped state: the next
 * instruction on `co` stops. For code whose deadline passed before it
 * resumed. */
void pc_lua_guard_trip(struct pc_lua *h, lua_State *co);
/* Whether the guard of the code running now has tripped. */
bool pc_lua_guard_tripped(struct pc_lua *h);

/* The one door for calling Lua from C outside a coroutine: calls the
 * function below `nargs` arguments on the main stack in protected mode,
 * with a message handler (as lua.c's docall/msghandler) that turns any
 * error object into text -- nil, tables, a __tostring that raises, yields,
 * loops or allocates, NUL bytes, megabytes of text -- and, with
 * `traceback`, appends one. It runs inside a guard of `limit_ms` (nested in
 * the current one). Returns 0 with `nres` results pushed, or -1 with *err
 * set (malloc'd) and nothing pushed. */
int pc_lua_call(struct pc_lua *h, int nargs, int nres, double limit_ms, const char *what,
                bool traceback, char **err);
/* As limit_ms: pacer's own Lua code (lua/pacer.lua) on plain data, which
 * reaches no plugin code -- the plugin spec is copied plain when the file
 * loads, and pc_lua_eval strips plugin metatables from what it returns --
 * runs protected but without a guard: a count hook costs every Lua
 * instruction ~30 more, on the path of every step. */
#define PC_LUA_HOST_CODE 0.0
/* The text of the error object on top of thread `co` after a failed
 * resume (`status`), with co's traceback when `traceback` is set. The
 * object is left where it is. Never fails: an object that cannot be
 * described safely (its __tostring raises, loops, yields) gets a
 * description of what went wrong instead. malloc'd. */
char *pc_lua_error_text(struct pc_lua *h, lua_State *co, int status, bool traceback);
/* Error messages longer than this are cut (after redacting secrets). */
#define PC_LUA_ERROR_MAX 4096

/* Plugin code marks every metatable it sets (gc.c's setmetatable):
 * such a table's metamethods are plugin code, which C must not reach
 * outside a guard. pc_lua_eval hands C a plain copy instead of a table
 * with such a metatable. `idx` is on thread L's stack. */
void pc_lua_note_plugin_mt(struct pc_lua *h, lua_State *L, int idx);
/* A plugin step's value is being stored in its result: from now on a
 * result may hold a function of plugin code, which an expression could
 * call with `result` (see pc_lua_scope_bind_view). */
void pc_lua_note_plugin_value(struct pc_lua *h);
/* Whether reads of JSON now get read-only views (script/json.h,
 * pc_json_view_decode) rather than tables: while `result` is bound as the
 * shared view (pc_lua_scope_bind_view), whose evaluation keeps nothing. */
bool pc_lua_json_views(lua_State *L);
/* Pushes the state's one read-only empty table (every result without
 * outputs has it as its `outputs`; writing to it raises). */
void pc_lua_push_empty_ro(lua_State *L);
/* Whether the value at idx is that table. */
bool pc_lua_is_empty_ro(lua_State *L, int idx);

/* The engine's common fields of a result (outcome, attempts, started_at,
 * duration_ms, queued_ms, and `outputs` when it has none), kept in C by a
 * result whose record has room for them (issue 16: as Lua fields they
 * were ~200 bytes of every kept result, started_at as text). A result
 * offers them when its metatable holds, at the raw key
 * &pc_result_common_key, a weak-keyed table from the result to a full
 * userdata that begins with this struct (http/result.c's record); its
 * __index answers those names from it (pc_lua_result_common_push) and its
 * __pairs builds them into the table (pc_lua_result_common_build), so
 * every reader sees the same fields as when they were set in the table. */
struct pc_result_common {
  const char *outcome;  /* static (pc_outcome_name); NULL: not set yet */
  double started_at;    /* wall-clock epoch ms; < 0: none (never started) */
  lua_Integer duration_ms;
  lua_Integer queued_ms; /* < 0: none (not a leaf step) */
  lua_Integer attempts;  /* < 0: none (not a leaf) */
};
extern const char pc_result_common_key;
/* The record of the result at idx, or NULL if it offers none. */
struct pc_result_common *pc_lua_result_common(lua_State *L, int idx);
/* Pushes common field k of c and returns true, or returns false (k is
 * not one, or is not set). */
bool pc_lua_result_common_push(lua_State *L, const struct pc_result_common *c, const char *k);
/* Sets every common field c has into the table at t (raw), `outputs`
 * only where t has none. No-op until the engine has set them. */
void pc_lua_result_common_build(lua_State *L, int t, const struct pc_result_common *c);
/* Pushes field `name` of the table lua/prelude.lua returned (ro, unwrap,
 * to_json, helpers, ...), or the table itself when name is NULL. */
void pc_lua_push_prelude(struct pc_lua *h, const char *name);

#endif
