/* json_int.h: what the two JSON decoders of runner/script share: json.c's
 * (text to Lua tables) and jsonview.c's (text to a read-only view). */
#ifndef PACER_JSON_INT_H
#define PACER_JSON_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>
#include <yajl/yajl_parse.h>

/* A number's text as yajl hands it over: true and *i for an integer that
 * fits in 64 bits, false and *d otherwise. */
bool pc__json_number(const char *s, size_t len, lua_Integer *i, double *d);

/* The message for a failed parse ("invalid JSON: ... at byte N"), into msg. */
void pc__json_parse_error(yajl_handle y, bool too_deep, const char *text, size_t len,
                          bool at_end, char *msg, size_t size);

/* yajl's allocations for one document from one reused block: the
 * functions to hand yajl_alloc, or NULL (use malloc) while another decode
 * holds the block. Released (with what acquire gave) once the handle is
 * freed. */
yajl_alloc_funcs *pc__json_arena_acquire(void);
void pc__json_arena_release(yajl_alloc_funcs *funcs);

#endif
