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

#include <stddef.h>

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
/* The same for len bytes at text, which must stay where they are while it
 * runs (a Lua string on the stack, or a userdata something keeps alive):
 * pushes the value, or raises. No Lua string is made of the text. */
int pc_json_decode_text(lua_State *L, const char *text, size_t len);
/* Writes the value at idx as JSON text into out, exactly enough that
 * pc_json_decode gives the same value back: nil and null as null,
 * booleans, finite numbers (a float keeps a fraction or an exponent, so it
 * decodes as a float), strings of valid UTF-8, and tables with no
 * metatable but the object mark whose keys are all strings (an object) or
 * exactly 1..n (a list; an unmarked empty table is []). Anything else (a
 * function, a userdata other than null, a proxy, a table that contains
 * itself or nests deeper than PC_JSON_MAX_DEPTH, NaN, bytes that are not
 * UTF-8) cannot be written down so: returns -1 (out holds a partial text).
 * For the journal (runner/journal/), which restores results from it. */
struct pc_buf;
int pc_json_encode_exact(lua_State *L, int idx, struct pc_buf *out);
/* Marks the table at idx as a JSON object (an empty one encodes as {}). */
void pc_json_mark_object(lua_State *L, int idx);

/* The read-only views (jsonview.c): the same text decoded into one compact
 * block, read through a small userdata per container read, for reads that
 * cannot keep the value (`result.json` in expect.that, until and fail_if).
 * pc_json_view_decode pushes the document's value (a scalar as
 * pc_json_decode_text gives it, a container as a view) and returns 0, or
 * returns -1 with the message pc_json_decode_text would raise in err
 * (pushing nothing); it raises only when Lua runs out of memory. pc_json_view_open makes the views' metatable and returns the table
 * lua/prelude.lua uses: to_table(v) (the tables a view stands for),
 * is_view(v), type(v) ("table" for a view). */
int pc_json_view_decode(lua_State *L, const char *text, size_t len, char *err, size_t size);
int pc_json_view_open(lua_State *L);

#endif
