/* luahost.h: the run's single lua_State, the expression sandbox and the
 * evaluation of templates.
 *
 * Expressions are compiled once (pc_lua_compile_workflow) as chunks of the
 * form `return (EXPR)` and kept in the registry. Evaluation sets the chunk's
 * _ENV upvalue to a scope table and calls it. Scopes are tables chained by
 * __index: root scope (vars, env, secrets, steps, workflow, helpers,
 * string/table/math) <- fan-out item scope (item, index, and for a group
 * body its own `steps` that falls back to the parent's). `result` is bound
 * in the step's scope while expect.that and outputs evaluate
 * (pc_lua_scope_bind). Everything an expression can reach is read-only
 * (proxies whose __newindex raises).
 *
 * Values the engine stores (results, vars) are plain tables; expressions see
 * them through read-only proxies. pc_lua_eval unwraps a proxy it returns, so
 * the caller always gets plain values. */
#ifndef PACER_LUAHOST_H
#define PACER_LUAHOST_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "diag.h"
#include "workflow.h"
#include "yamlload.h"

struct pc_lua;

/* Creates the state, opens the safe libraries, the JSON module (runner/json.c)
 * and the embedded prelude (lua/prelude.lua). Returns NULL only on allocation failure or a
 * broken prelude (a bug), with a message on stderr. */
struct pc_lua *pc_lua_new(void);
void pc_lua_free(struct pc_lua *h);
lua_State *pc_lua_state(struct pc_lua *h);

/* Memory limit of the state (bytes), default 512 MiB. It applies only while
 * enforcement is on, which pacermod.c turns on around plugin and inline Lua
 * code: going over it raises "not enough memory" in that code (failing its
 * step) instead of growing the process. pc_lua_memory_enforce returns the
 * previous setting. */
#define PC_LUA_MEMORY_DEFAULT ((size_t)512 << 20)
void pc_lua_set_memory_limit(struct pc_lua *h, size_t bytes);
size_t pc_lua_memory_limit(const struct pc_lua *h);
size_t pc_lua_memory_used(const struct pc_lua *h);
bool pc_lua_memory_enforce(struct pc_lua *h, bool on);
/* Pushes field `name` of the table lua/prelude.lua returned (ro, unwrap,
 * to_json, helpers, ...), or the table itself when name is NULL. */
void pc_lua_push_prelude(struct pc_lua *h, const char *name);

/* Compiles every expression in wf->exprs, setting each expr->ref. Syntax
 * errors are added to `d` at the expression's file:line:col. Returns 0 or -1. */
int pc_lua_compile_workflow(struct pc_lua *h, struct pc_workflow *wf, struct pc_diag *d);
/* Compiles one expression (used for --var values and by tests). */
int pc_lua_compile_expr(struct pc_lua *h, struct pc_expr *e, struct pc_diag *d);

/* Pushes a YAML node as a constant Lua value (typed by pc_node_scalar_type;
 * ${{ }} is NOT evaluated). Maps become tables with string keys (an empty
 * one marked as a JSON object), lists become 1-based sequences; null is nil
 * at the top level and JSON null (the light userdata NULL, see json.h)
 * inside a list or map, so keys and lengths survive. */
void pc_lua_push_node(struct pc_lua *h, const struct pc_node *n);

/* --------------------------------------------------------------- scopes */

/* Creates the root scope. Pops the vars table (a plain table) from the stack.
 * Sets up env, secrets, an empty steps table and workflow = {name, run_id,
 * outcome = nil}. Returns a registry reference to the scope. */
int pc_lua_root_scope(struct pc_lua *h, const char *wf_name, const char *run_id);
/* A scope that inherits `parent_ref`, with its own steps table whose misses
 * fall back to the parent's steps (items of a fan-out whose body is a group). */
int pc_lua_child_scope(struct pc_lua *h, int parent_ref);
/* Pops a value and binds it to `name` in the scope (item, index, result). */
void pc_lua_scope_set(struct pc_lua *h, int scope_ref, const char *name);
/* Binds a value for one synchronous evaluation: pops the value, binds it to
 * `name` in the scope (as pc_lua_scope_set) and pushes what was bound there
 * before. pc_lua_scope_unbind pops that and puts it back. Expressions cannot
 * yield, so a scope shared by running siblings may be borrowed this way:
 * `result` for expect.that and outputs needs no scope of its own. */
void pc_lua_scope_bind(struct pc_lua *h, int scope_ref, const char *name);
void pc_lua_scope_unbind(struct pc_lua *h, int scope_ref, const char *name);
/* Fan-out items of a leaf body: one metatable per fan-out (inheriting
 * `parent_ref`, returned as a registry reference) shared by every item's
 * scope, which then costs one small table. pc_lua_instance_scope pops the
 * item and index values and returns a reference to the new scope. */
int pc_lua_instance_mt(struct pc_lua *h, int parent_ref);
int pc_lua_instance_scope(struct pc_lua *h, int mt_ref);
/* Pops a value and stores it as steps[id] in the scope's nearest steps table. */
void pc_lua_scope_set_step(struct pc_lua *h, int scope_ref, const char *id);
/* Pushes the plain (unproxied) value of steps[id] as seen from the scope, or nil. */
void pc_lua_scope_get_step(struct pc_lua *h, int scope_ref, const char *id);
/* Pops a value and sets workflow[field] (e.g. "outcome") in the root scope. */
void pc_lua_set_workflow_field(struct pc_lua *h, int root_ref, const char *field);
void pc_lua_unref(struct pc_lua *h, int ref);

/* ----------------------------------------------------------- evaluation */

/* Evaluates a compiled expression in a scope and pushes exactly one value.
 * Returns 0, or -1 with *err set to a malloc'd message that names the
 * expression and its file:line:col (nothing pushed). A count hook stops an
 * expression that runs for too long. */
int pc_lua_eval(struct pc_lua *h, const struct pc_expr *e, int scope_ref, char **err);
/* Like pc_lua_eval, then Lua truthiness. */
int pc_lua_eval_bool(struct pc_lua *h, const struct pc_expr *e, int scope_ref, bool *out,
                     char **err);
/* Evaluates a template and pushes one value: constants as typed, PC_T_EXPR
 * keeps the expression's type, PC_T_INTERP makes a string (interpolating nil
 * is an error naming the expression), maps/lists become fresh tables. Inside
 * a map or list, a member written as one ${{ }} that is nil is the same
 * error (unless the template is nil_ok), and `null` written in the file is
 * JSON null, except as a member of the top-level map, where it leaves the
 * key out. An empty map is marked as a JSON object. */
int pc_lua_eval_tmpl(struct pc_lua *h, const struct pc_tmpl *t, int scope_ref, char **err);

/* Formats the value at `idx` as interpolation does: strings as is,
 * integers as integers, whole floats with every digit (never 1e+15, never a
 * needless ".0"), other floats with the fewest digits that read back the
 * same, booleans "true"/"false", tables as compact JSON, nil and JSON null
 * as "null". Returns a malloc'd string (length in *len if not NULL). */
char *pc_lua_to_text(struct pc_lua *h, int idx, size_t *len);
/* Compact JSON of the value at `idx` (proxies unwrapped; see
 * lua/prelude.lua for numbers, null and empty maps); malloc'd. NULL with
 * *err (malloc'd) for what JSON cannot hold (a table that contains itself). */
char *pc_lua_to_json(struct pc_lua *h, int idx, char **err);

#endif
