/* value.h: Lua values to and from the outside (value.c): YAML nodes as
 * constant values, values as text and as JSON. */
#ifndef PACER_SCRIPT_VALUE_H
#define PACER_SCRIPT_VALUE_H

#include <stddef.h>

#include "base/yamlload.h"
#include "script/host.h"

/* Pushes a YAML node as a constant Lua value (typed by pc_node_scalar_type;
 * ${{ }} is NOT evaluated). Maps become tables with string keys (an empty
 * one marked as a JSON object), lists become 1-based sequences; null is nil
 * at the top level and JSON null (the light userdata NULL, see json.h)
 * inside a list or map, so keys and lengths survive. */
void pc_lua_push_node(struct pc_lua *h, const struct pc_node *n);

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
