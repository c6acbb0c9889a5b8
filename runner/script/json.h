/* json.h: JSON text to Lua values (yajl's event parser), and the two values
 * every part of pacer agrees on to carry JSON's shape through Lua:
 *
 * - null is a light userdata NULL (pacer.null; also lua-cjson's, which
 *   pacer used before). Kept in lists and maps so their length and keys
 *   survive; read through the expression sandbox's read-only views it is
 *   nil (lua/prelude.lua).
 * - An empty JSON object or YAML map is a table with the "json object"
 *   metatable, so that it encodes back as {} rather than [] (an empty Lua
 *   table is a list). Non-empty maps need no mark: their keys tell.
 *
 * Numbers keep their kind: JSON integers are Lua integers when they fit in
 * 64 bits; numbers with a fraction or exponent, and integers beyond 64
 * bits, are floats (lua/prelude.lua prints each exactly). */
#ifndef PACER_JSON_H
#define PACER_JSON_H

#include <lua.h>

/* The module's name in package.loaded (set by the Lua host). */
#define PC_JSON_MODULE "pacer.json"

/* Nesting deeper than this is refused (as lua-cjson's default). */
#define PC_JSON_MAX_DEPTH 1000

/* The Lua module (luaL_requiref): {decode = pc_json_decode, null = NULL,
 * object = mark(t), is_object = test(t)}. Creates the object metatable. */
int pc_json_open(lua_State *L);
/* decode(text) -> value; raises "invalid JSON: ..." with the byte offset. */
int pc_json_decode(lua_State *L);
/* Marks the table at idx as a JSON object (an empty one encodes as {}). */
void pc_json_mark_object(lua_State *L, int idx);

#endif
