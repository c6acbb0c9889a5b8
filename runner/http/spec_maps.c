/* spec_maps.c: the options of a request that are maps or lists of their
 * own (cookies, auth, multipart, resolve, connect_to) and the TLS and
 * routing options (issue 15), read from the Lua options table into a
 * struct pc_http_spec, after spec.c checked their types against the
 * parameter table (params.c); the rules left here are those a table
 * cannot say (names and values a header can carry, HOST:PORT). spec.c's
 * raw-access helpers are shared through spec_maps.h. Never raises, never runs a
 * metamethod; strings are borrowed from the table as spec.c's are, and
 * what is made here is owned by the struct pc_http_spec_mem. */
#include "http/spec_maps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "http/params.h"
#include "http/rules.h"
#include "script/luahost.h"
#include "base/util.h"

/* ================================================ raw-access helpers */

bool pc_http__in_list(const char *s, const char *const *list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

/* t[k] without metamethods. */
int pc_http__rawfield(lua_State *L, int tbl, const char *k)
{
  lua_pushstring(L, k);
  return lua_rawget(L, tbl);
}

bool pc_http__is_null(lua_State *L, int idx)
{
  return lua_isnil(L, idx) || (lua_type(L, idx) == LUA_TLIGHTUSERDATA &&
                               lua_touserdata(L, idx) == NULL);
}

const char *pc_http__version_field(lua_State *L, int tbl, const char *key, char buf[32])
{
  const char *v = NULL;
  pc_http__rawfield(L, tbl, key);
  if (lua_type(L, -1) == LUA_TNUMBER) {
    snprintf(buf, 32, "%.1f", lua_tonumber(L, -1));
    v = buf;
  } else if (!pc_http__is_null(L, -1)) {
    v = lua_tostring(L, -1); /* kept alive by the options table */
  }
  lua_pop(L, 1);
  return v;
}

/* The text of a string at idx (borrowed: see the opening comment), or of a
 * number or a boolean (made, and kept in mem); NULL for anything else. */
const char *pc_http__scalar_text(struct pc_lua *h, int idx, size_t *len,
                               struct pc_http_spec_mem *mem)
{
  lua_State *L = pc_lua_state(h);
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING)
    return lua_tolstring(L, idx, len);
  if (t != LUA_TNUMBER && t != LUA_TBOOLEAN)
    return NULL;
  char *s = pc_lua_to_text(h, idx, len);
  mem->texts = pc_xrealloc(mem->texts, (mem->ntexts + 1) * sizeof *mem->texts);
  mem->texts[mem->ntexts++] = s;
  return s;
}

/* Optional text option `key` that becomes a C string (the table checked
 * its type and that no NUL byte cuts it short): absent or null, *out is
 * unchanged. */
void pc_http__opt_text(struct pc_lua *h, int tbl, const char *key, const char **out,
                       struct pc_http_spec_mem *mem)
{
  lua_State *L = pc_lua_state(h);
  pc_http__rawfield(L, tbl, key); /* value */
  size_t len;
  if (!pc_http__is_null(L, -1))
    *out = pc_http__scalar_text(h, -1, &len, mem);
  lua_pop(L, 1);
}

/* A Lua string whose text a C string would cut short (a NUL byte in it). */
bool pc_http__cut_by_nul(lua_State *L, int idx)
{
  size_t len;
  return lua_type(L, idx) == LUA_TSTRING && strlen(lua_tolstring(L, idx, &len)) != len;
}

void pc_http__opt_bool(lua_State *L, int tbl, const char *key, bool *out)
{
  pc_http__rawfield(L, tbl, key); /* value */
  if (lua_type(L, -1) == LUA_TBOOLEAN)
    *out = lua_toboolean(L, -1);
  else if (lua_type(L, -1) == LUA_TSTRING) /* "true" or "false": the table checked it */
    *out = strcmp(lua_tostring(L, -1), "true") == 0;
  lua_pop(L, 1);
}

/* Sets *err to msg (malloc'd) and returns -1: `return pc_http__fail(err, ...)`. */
int pc_http__fail(char **err, char *msg)
{
  *err = msg;
  return -1;
}

int pc_http__cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ============================================== options of issue 15 */

/* Text at t[key] of a multipart part (`what`: "multipart.NAME"; its type
 * the table checked), as a C string; absent: *out stays NULL. Returns 0,
 * or -1 with *err set. */
static int part_text(struct pc_lua *h, int t, const char *key, const char *what,
                     const char **out, struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  pc_http__rawfield(L, t, key);
  if (!pc_http__is_null(L, -1)) {
    size_t len = 0;
    const char *v = pc_http__scalar_text(h, -1, &len, mem);
    if (!pc_http_header_value_valid(v, len))
      *err = pc_asprintf("http.%s.%s contains a line break (CR or LF) or a NUL byte", what, key);
    else
      *out = v;
  }
  lua_pop(L, 1);
  return *err ? -1 : 0;
}

/* `multipart`: a map of part names (sent in name order) to text, or to
 * {value: TEXT | file: PATH, type?, filename?}. Into mem->parts. Returns
 * 0, or -1 with *err set. */
int pc_http__read_parts(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                      struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  pc_http__rawfield(L, tbl, "multipart"); /* parts: a table (the table checked it) */
  int pi = lua_gettop(L);
  const char **names = NULL;
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, pi)) { /* parts, name, value */
    size_t nlen = 0;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
    if (!*err && (!name || !nlen || !pc_http_header_value_valid(name, nlen)))
      *err = name ? pc_xstrdup("http.multipart: a part name is empty or contains a line break "
                               "or a NUL byte")
                  : pc_asprintf("http.multipart: part names must be text, got %s",
                                luaL_typename(L, -2));
    else if (!*err) {
      names = pc_xrealloc(names, (n + 1) * sizeof *names);
      names[n++] = name;
    }
    lua_pop(L, 1);
  }
  if (n)
    qsort(names, n, sizeof *names, pc_http__cmp_str);
  mem->parts = n ? pc_xcalloc(n, sizeof *mem->parts) : NULL;
  for (size_t i = 0; i < n && !*err; i++) {
    struct pc_http_part *p = &mem->parts[i];
    p->name = names[i];
    pc_http__rawfield(L, pi, names[i]); /* parts, value */
    int vi = lua_gettop(L);
    char *what = pc_asprintf("multipart.%s", names[i]);
    if (!lua_istable(L, vi)) { /* text (or the JSON null: neither value nor file) */
      p->data = pc_http__is_null(L, vi) ? NULL : pc_http__scalar_text(h, vi, &p->data_len, mem);
      if (!p->data)
        *err = pc_asprintf(PC_HTTP_MSG_PART, names[i]);
    } else {
      pc_http__rawfield(L, vi, "value");
      if (!pc_http__is_null(L, -1))
        p->data = pc_http__scalar_text(h, -1, &p->data_len, mem);
      lua_pop(L, 1);
      if (!*err)
        part_text(h, vi, "file", what, &p->file, mem, err);
      if (!*err && (!p->data) == (!p->file))
        *err = pc_asprintf(PC_HTTP_MSG_PART, names[i]);
      if (!*err && p->file && !*p->file)
        *err = pc_asprintf("http.%s.file: the path is empty", what);
      if (!*err)
        part_text(h, vi, "type", what, &p->type, mem, err);
      if (!*err)
        part_text(h, vi, "filename", what, &p->filename, mem, err);
    }
    free(what);
    lua_pop(L, 1);
  }
  free(names);
  lua_pop(L, 1);
  if (*err)
    return -1;
  sp->parts = mem->parts;
  sp->nparts = n;
  sp->multipart = true;
  return 0;
}

/* Whether a cookie value can go in a Cookie header as it is: no `;` (it
 * would start another cookie), no control character. */
static bool cookie_value_ok(const char *v, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if (v[i] == ';' || (unsigned char)v[i] < 0x20 || v[i] == 0x7f)
      return false;
  return true;
}

/* `cookies`: true or false (the session's jar, spec.cookie_jar), or a map
 * of cookies to send besides (jar on), written "a=1; b=2" in name order
 * into mem->cookie. Returns 0, or -1 with *err set. */
int pc_http__read_cookies(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                        struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  pc_http__rawfield(L, tbl, "cookies"); /* cookies */
  int ci = lua_gettop(L);
  if (!lua_istable(L, ci)) { /* true or false (the table checked it) */
    lua_pop(L, 1);
    pc_http__opt_bool(L, tbl, "cookies", &sp->cookie_jar);
    return 0;
  }
  const char **keys = NULL;
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, ci)) { /* cookies, name, value */
    size_t nlen = 0;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
    if (!*err && (!name || !pc_http_header_name_valid(name, nlen)))
      *err = name ? pc_asprintf(PC_HTTP_MSG_COOKIE_NAME, name)
                  : pc_asprintf("http.cookies: cookie names must be text, got %s",
                                luaL_typename(L, -2));
    else if (!*err) {
      keys = pc_xrealloc(keys, (n + 1) * sizeof *keys);
      keys[n++] = name; /* borrowed: the table holds it */
    }
    lua_pop(L, 1);
  }
  if (n)
    qsort(keys, n, sizeof *keys, pc_http__cmp_str);
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 20);
  for (size_t i = 0; i < n && !*err; i++) {
    pc_http__rawfield(L, ci, keys[i]); /* cookies, value */
    size_t vlen = 0;
    const char *v = pc_http__scalar_text(h, -1, &vlen, mem); /* NULL: null, not sent */
    if (v && !cookie_value_ok(v, vlen)) /* never echoed: it may be a secret */
      *err = pc_asprintf(PC_HTTP_MSG_COOKIE_VALUE, keys[i]);
    else if (v)
      pc_buf_printf(&b, "%s%s=%.*s", b.len ? "; " : "", keys[i], (int)vlen, v);
    lua_pop(L, 1);
  }
  free(keys);
  lua_pop(L, 1);
  if (*err) {
    pc_buf_free(&b);
    return -1;
  }
  if (b.len) {
    mem->cookie = pc_buf_steal(&b);
    sp->cookie = mem->cookie;
  } else {
    pc_buf_free(&b);
  }
  return 0;
}

/* Text at t[key] for `auth` (`what` names it in messages: "basic.user";
 * its type the table checked): no NUL byte, nor a line break (it goes in
 * a header). Never echoed: it may be a secret. Returns 0 with *out set, or
 * -1 with *err. */
static int auth_text(struct pc_lua *h, int t, const char *key, const char *what,
                     const char **out, struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  pc_http__rawfield(L, t, key);
  size_t len = 0;
  const char *v = pc_http__is_null(L, -1) ? NULL : pc_http__scalar_text(h, -1, &len, mem);
  if (!v)
    *err = pc_asprintf("http.auth.%s: expected text, got null", what);
  else if (!pc_http_header_value_valid(v, len))
    *err = pc_asprintf("http.auth.%s contains a line break (CR or LF) or a NUL byte", what);
  else
    *out = v;
  lua_pop(L, 1);
  return *err ? -1 : 0;
}

/* `auth`: {basic: {user, password}}, {digest: {user, password}} or
 * {bearer: TOKEN}; the table checked that it is one of them, and the
 * types. Returns 0, or -1 with *err set. */
int pc_http__read_auth(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                     struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  pc_http__rawfield(L, tbl, "auth"); /* auth */
  int ai = lua_gettop(L);
  if (pc_http__is_null(L, ai)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushnil(L);
  lua_next(L, ai);          /* auth, kind, value: its one key */
  lua_pop(L, 1);            /* auth, kind */
  const char *kind = lua_tostring(L, -1); /* borrowed: auth holds it */
  lua_pop(L, 1);            /* auth */
  if (strcmp(kind, "bearer") == 0) {
    sp->auth = PC_HTTP_AUTH_BEARER;
    auth_text(h, ai, "bearer", "bearer", &sp->auth_token, mem, err);
  } else {
    sp->auth = strcmp(kind, "basic") == 0 ? PC_HTTP_AUTH_BASIC : PC_HTTP_AUTH_DIGEST;
    pc_http__rawfield(L, ai, kind); /* auth, creds */
    int ci = lua_gettop(L);
    char what[32];
    if (!lua_istable(L, ci)) { /* the JSON null */
      *err = pc_asprintf("http.auth.%s: expected a map {user, password}, got null", kind);
    } else {
      snprintf(what, sizeof what, "%s.user", kind);
      if (auth_text(h, ci, "user", what, &sp->auth_user, mem, err) == 0 &&
          strchr(sp->auth_user, ':'))
        *err = pc_asprintf(PC_HTTP_MSG_AUTH_USER, kind);
      snprintf(what, sizeof what, "%s.password", kind);
      if (!*err)
        auth_text(h, ci, "password", what, &sp->auth_password, mem, err);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if (*err)
    return -1;
  for (size_t i = 0; i < sp->nheaders; i++)
    if (sp->headers[i].name_len == 13 && strncasecmp(sp->headers[i].name, "authorization", 13) == 0)
      return pc_http__fail(err, pc_xstrdup("http: `auth` and an Authorization header both authenticate "
                                  "the request; use one"));
  return 0;
}

/* Adds a CURLOPT_CONNECT_TO entry to mem (and the spec). */
static void add_connect_to(struct pc_http_spec *sp, struct pc_http_spec_mem *mem, char *entry)
{
  mem->connect_to = pc_xrealloc(mem->connect_to, (mem->nconnect_to + 1) * sizeof *mem->connect_to);
  mem->connect_to[mem->nconnect_to++] = entry;
  sp->connect_to = (const char *const *)mem->connect_to;
  sp->nconnect_to = mem->nconnect_to;
}

/* Whether s (len bytes) is text for a routing option: no whitespace, no
 * control character. */
static bool route_text_ok(const char *s, size_t len)
{
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
      return false;
  return len > 0;
}

/* Splits "HOST:PORT" (HOST may be a bracketed IPv6 address) into its
 * parts: true when both are there and PORT is 1 to 65535. */
static bool host_port(const char *s, size_t *hlen, long *port)
{
  const char *colon = strrchr(s, ':');
  if (!colon || colon == s)
    return false;
  char *end;
  *port = strtol(colon + 1, &end, 10);
  *hlen = (size_t)(colon - s);
  return colon[1] && !*end && *port >= 1 && *port <= 65535 &&
         (s[0] != '[' || s[*hlen - 1] == ']') && (s[0] == '[' || !memchr(s, ':', *hlen));
}

/* `resolve`: a map of "HOST:PORT" to an address, as curl --resolve, and
 * `connect_to`: a list of curl's "HOST:PORT:CONNECT-HOST:CONNECT-PORT";
 * both become CURLOPT_CONNECT_TO entries (see struct pc_http_spec). A map
 * and a list (the table checked them). Returns 0, or -1 with *err set. */
static int read_routes(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                       struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  {
    pc_http__rawfield(L, tbl, "resolve"); /* resolve */
    int ri = lua_gettop(L);
    if (lua_istable(L, ri)) {
      lua_pushnil(L);
      while (!*err && lua_next(L, ri)) { /* resolve, k, v */
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        size_t vlen = 0, hlen;
        long port;
        const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &vlen) : NULL;
        if (!k || pc_http__cut_by_nul(L, -2) || !host_port(k, &hlen, &port))
          *err = pc_asprintf(PC_HTTP_MSG_RESOLVE_KEY, k ? k : "(not text)");
        else if (!v || !route_text_ok(v, vlen) || strlen(v) != vlen)
          *err = pc_asprintf(PC_HTTP_MSG_RESOLVE_ADDRESS, k);
        else
          add_connect_to(sp, mem, pc_asprintf("%.*s:%ld:%s%s%s:%ld", (int)hlen, k, port,
                                              strchr(v, ':') && v[0] != '[' ? "[" : "", v,
                                              strchr(v, ':') && v[0] != '[' ? "]" : "", port));
        lua_pop(L, 1);
      }
      if (*err)
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (*err)
      return -1;
  }
  {
    pc_http__rawfield(L, tbl, "connect_to"); /* list */
    int ci = lua_gettop(L);
    if (lua_istable(L, ci)) {
      size_t n = (size_t)lua_rawlen(L, ci);
      for (size_t i = 1; i <= n && !*err; i++) {
        lua_rawgeti(L, ci, (lua_Integer)i);
        size_t len = 0;
        const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        int colons = 0;
        for (size_t j = 0; v && j < len; j++)
          colons += v[j] == ':';
        if (!v || !route_text_ok(v, len) || strlen(v) != len || colons < 3)
          *err = pc_asprintf(PC_HTTP_MSG_CONNECT_TO, i);
        else
          add_connect_to(sp, mem, pc_xstrdup(v));
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
  }
  return *err ? -1 : 0;
}

/* `tls_version`: the lowest accepted, "1.0" to "1.3" (the table checked
 * it: one of those, or a number written so). */
static void opt_tls_version(lua_State *L, int tbl, long *out)
{
  char num[32];
  const char *v = pc_http__version_field(L, tbl, "tls_version", num);
  if (v) {
    static const char *const names[] = {"1.0", "1.1", "1.2", "1.3"};
    static const long values[] = {CURL_SSLVERSION_TLSv1_0, CURL_SSLVERSION_TLSv1_1,
                                  CURL_SSLVERSION_TLSv1_2, CURL_SSLVERSION_TLSv1_3};
    for (size_t i = 0; i < 4; i++)
      if (strcmp(v, names[i]) == 0)
        *out = values[i];
  }
}

/* TLS and routing: cert, key, key_password, tls_version, proxy, resolve,
 * connect_to, unix_socket, max_redirects, compressed. Returns 0, or -1
 * with *err set. */
int pc_http__read_tls_routing(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                            struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  pc_http__opt_text(h, tbl, "cert", &sp->cert, mem);
  pc_http__opt_text(h, tbl, "key", &sp->key, mem);
  pc_http__opt_text(h, tbl, "key_password", &sp->key_password, mem);
  pc_http__opt_text(h, tbl, "proxy", &sp->proxy, mem);
  pc_http__opt_text(h, tbl, "unix_socket", &sp->unix_socket, mem);
  pc_http__opt_bool(L, tbl, "compressed", &sp->compressed);
  opt_tls_version(L, tbl, &sp->tls_version);
  if (read_routes(h, tbl, sp, mem, err) != 0)
    return -1;
  if (sp->unix_socket && !*sp->unix_socket)
    return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_EMPTY_PATH, "unix_socket"));
  if (sp->proxy && *sp->proxy && !route_text_ok(sp->proxy, strlen(sp->proxy)))
    return pc_http__fail(err, pc_xstrdup("http.proxy: the URL contains spaces or control characters"));
  pc_http__rawfield(L, tbl, "max_redirects"); /* 0 to 100: the table checked it */
  if (!pc_http__is_null(L, -1))
    sp->max_redirects = (int)lua_tointegerx(L, -1, NULL);
  lua_pop(L, 1);
  return 0;
}
