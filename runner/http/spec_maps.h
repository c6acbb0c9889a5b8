/* spec_maps.h: spec.c's Lua readers shared with spec_maps.c (the options
 * of issue 15 that are maps, lists, TLS and routing). For runner/http's
 * spec readers only (pc_http__ names): everything here reads a Lua table
 * raw and never raises. */
#ifndef PACER_HTTP_SPEC_MAPS_H
#define PACER_HTTP_SPEC_MAPS_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "http/request.h"

struct pc_lua;

/* What pc_http_spec_read made for a spec beyond what it borrows from the
 * table (owned; pc_http_spec_mem_free frees it, and is safe after a
 * failed read). */
struct pc_http_spec_mem {
  struct pc_http_header *headers;
  char *url;    /* the URL with the query added */
  char *body;   /* a json or form body */
  char *cookie; /* the `cookies` map as a Cookie value */
  struct pc_http_part *parts; /* `multipart` (their strings borrowed) */
  char **connect_to;          /* `resolve` and `connect_to` as CURLOPT_CONNECT_TO entries */
  size_t nconnect_to;
  char **texts; /* numbers and booleans written as text */
  size_t ntexts;
};

/* ------------------------------------------------ spec.c's helpers */

/* t[k] without metamethods (pushed); returns its type. */
int pc_http__rawfield(lua_State *L, int tbl, const char *k);
/* nil, or the JSON null (a NULL light userdata). */
bool pc_http__is_null(lua_State *L, int idx);
/* A version option (`http_version`, `tls_version`), which the parameter
 * table checked is one of its texts or a number written so: its text in
 * buf (or borrowed from the string), NULL when absent or null. Pushes
 * nothing. */
const char *pc_http__version_field(lua_State *L, int tbl, const char *key, char buf[32]);
/* The text of a string (borrowed), a number or a boolean (made, kept in
 * mem); NULL for anything else. */
const char *pc_http__scalar_text(struct pc_lua *h, int idx, size_t *len,
                                 struct pc_http_spec_mem *mem);
/* Optional text option `key` that becomes a C string, its type checked by
 * the parameter table: *out set, or unchanged when absent or null. */
void pc_http__opt_text(struct pc_lua *h, int tbl, const char *key, const char **out,
                       struct pc_http_spec_mem *mem);
/* A Lua string whose text a C string would cut short. */
bool pc_http__cut_by_nul(lua_State *L, int idx);
/* Optional true/false option `key` (a boolean, or "true" or "false"), its
 * type checked by the parameter table: *out set, or unchanged. */
void pc_http__opt_bool(lua_State *L, int tbl, const char *key, bool *out);
/* Sets *err to msg and returns -1. */
int pc_http__fail(char **err, char *msg);
/* qsort comparison of C strings. */
int pc_http__cmp_str(const void *a, const void *b);
bool pc_http__in_list(const char *s, const char *const *list, size_t n);

/* ---------------------------------------------- spec_maps.c's readers */

/* Each reads its option(s) of the table at tbl into sp (and mem);
 * returns 0, or -1 with *err set. */
int pc_http__read_parts(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                        struct pc_http_spec_mem *mem, char **err);   /* multipart */
int pc_http__read_cookies(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                          struct pc_http_spec_mem *mem, char **err); /* cookies */
int pc_http__read_auth(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                       struct pc_http_spec_mem *mem, char **err);    /* auth (after headers) */
/* cert, key, key_password, tls_version, proxy, resolve, connect_to,
 * unix_socket, max_redirects, compressed */
int pc_http__read_tls_routing(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                              struct pc_http_spec_mem *mem, char **err);

#endif
