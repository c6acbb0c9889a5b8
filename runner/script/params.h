/* params.h: the run-time side of the actions' parameter tables
 * (model/action.h, "parameter tables"): a value a ${{ }} computed is
 * checked against the same table the loader checked the file's value with
 * (load/params.c), and the wording both use (a parameter's label and what
 * it expects) is made here once. */
#ifndef PACER_SCRIPT_PARAMS_H
#define PACER_SCRIPT_PARAMS_H

#include <stddef.h>

#include <lua.h>

#include "base/util.h"
#include "model/action.h"

/* The name messages give a parameter of action `key`: its label, else
 * KEY.NAME, else KEY (the whole value). */
void pc_param_label(const char *key, const struct pc_param *pm, char *buf, size_t n);
/* What the parameter expects, for "expected ...": its `expect`, else its
 * type's ("a string", "an integer from 1 to 10", "a, b or c"). */
void pc_param_expect(const struct pc_param *pm, struct pc_buf *b);
/* The names of the map form's keys, "a, b or c", into an initialised `b`
 * (empty when there are none). */
void pc_params_key_list(const struct pc_params *p, struct pc_buf *b);

/* Checks the evaluated value at `idx` of action `key` against `p`: a
 * table in the map form (when `p` has keys and no short form takes a
 * table) for unknown keys and each value, else the short form. Returns
 * NULL, or a malloc'd message: "KEY: unknown key "k" (expected a, b or
 * c)", "LABEL: invalid duration X", "LABEL: expected EXPECT, got X". */
char *pc_params_check(lua_State *L, int idx, const char *key, const struct pc_params *p);
/* One value (at idx) against one param of action `key` (its label:
 * pc_param_label): its type, bounds, allowed values, NUL bytes where it
 * becomes a C string, and a map's or a list's keys and items, in the
 * wording of the load-time check (for PC_GOT_BARE_KIND and PC_GOT_TEXT:
 * the kind of a value as the loader names a node's). NULL or a malloc'd
 * message. For an action that reads its map form itself (http). */
char *pc_param_check(lua_State *L, int idx, const char *key, const struct pc_param *pm);
/* The map form's unknown keys alone, for an action that reads the rest
 * itself (exec). */
char *pc_params_check_keys(lua_State *L, int idx, const char *key, const struct pc_params *p);
/* The kind of the Lua value at idx in the loader's words
 * (pc_node_kind_name): "string", "integer", "number", "boolean", "null"
 * (nil or the JSON null), "list" (a table with items), "map" (any other
 * table), else its Lua type name. */
const char *pc_lua_kind_name(lua_State *L, int idx);
/* A duration value (a number of seconds, at most 30 days, or a duration
 * string) in milliseconds; 0, or -1 if it is none. */
int pc_lua_duration(lua_State *L, int idx, double *ms);

#endif
