/* expr.h: expressions, scopes and templates (expr.c).
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
#ifndef PACER_SCRIPT_EXPR_H
#define PACER_SCRIPT_EXPR_H

#include <stdbool.h>

#include "base/diag.h"
#include "model/workflow.h"
#include "script/host.h"

/* Compiles every expression in wf->exprs, setting each expr->ref. Syntax
 * errors are added to `d` at the expression's file:line:col. Returns 0 or -1. */
int pc_lua_compile_workflow(struct pc_lua *h, struct pc_workflow *wf, struct pc_diag *d);
/* Compiles one expression (used for --var values and by tests). */
int pc_lua_compile_expr(struct pc_lua *h, struct pc_expr *e, struct pc_diag *d);


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
/* The same for a value only expressions that give a truth value read
 * (expect.that, until, fail_if: nothing can keep it): a table is bound as
 * the run's one read-only view, pointed at it until
 * pc_lua_scope_unbind_view, instead of a proxy made for it. Returns
 * whether the view was used (not when it is already in use, or the value
 * is not a table or is a proxy already, or a plugin step has returned a
 * value: a function in it could be called with `result` and keep it), which
 * unbind_view takes. */
bool pc_lua_scope_bind_view(struct pc_lua *h, int scope_ref, const char *name);
void pc_lua_scope_unbind_view(struct pc_lua *h, int scope_ref, const char *name, bool view);
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

/* ----------------------------------------------------------- evaluation */

/* Evaluates a compiled expression in a scope and pushes exactly one value.
 * Returns 0, or -1 with *err set to a malloc'd message that names the
 * expression and its file:line:col (nothing pushed). It runs through the
 * door with a guard of 1 s (nested in the current one). A table whose
 * metatable plugin code set comes back as a plain copy of its top level
 * (pc_lua_note_plugin_mt), so C may read it with the plain API. */
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

#endif
