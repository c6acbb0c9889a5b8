/* spec.c: a request's options, from Lua (see spec.h).
 *
 * The run-time reader of the options: it works on the Lua table an
 * attempt evaluated (or pacer.http was given) and returns the first
 * problem as a message. Each option's type is checked first, against the
 * parameter table the loader checks the file with (params.c, through
 * pc_param_check: the same messages); what the table cannot say (one
 * URL, one body, header names, the URL's scheme) is checked here, as
 * check.c checks it at load time. The reader never raises and never runs
 * a metamethod: the table is read with raw access, since a plugin's table
 * may have an __index that raises and nothing here runs under a pcall.
 *
 * Borrowing: the spec points into the Lua table for its strings (the URL,
 * header names and values, a text body, ca_file, save_to): Lua never moves
 * a string, and a string that a table on the stack holds is not collected.
 * What the reader makes itself (a URL with its query, a json or form body,
 * numbers as text) is owned by a struct pc_http_spec_mem. The only Lua code
 * the reader runs is the JSON encoder of a `json:` body, which a plugin's
 * value could make call back into Lua; it runs before anything is
 * borrowed, so nothing it does can free a string the spec points at. */
#include "http/spec.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "http/curlcmd.h"
#include "http/rules.h"
#include "script/luahost.h"
#include "script/params.h"
#include "base/util.h"

/* Keys of a request that defaults.http never supplies. */
static const char *const request_only[] = {"method", "url", "get",  "post", "put",  "patch",
                                           "delete", "head", "body", "json", "form", "save_to",
                                           "body_file", "multipart",
                                           "max_connections", "max_connections_per_host",
                                           "trace_context"};


void pc_http_limits_of(const struct pc_tmpl *d, struct pc_http_limits *lim)
{
  lim->max_connections = PC_HTTP_MAX_CONNECTIONS_DEFAULT;
  lim->max_per_host = PC_HTTP_MAX_PER_HOST_DEFAULT;
  const struct pc_tmpl *v;
  if ((v = pc_tmpl_get(d, "max_connections")) && v->kind == PC_T_INT && v->u.i >= 0)
    lim->max_connections = (long)v->u.i;
  if ((v = pc_tmpl_get(d, "max_connections_per_host")) && v->kind == PC_T_INT && v->u.i >= 0)
    lim->max_per_host = (long)v->u.i;
}

bool pc_http_trace_context_of(const struct pc_tmpl *d)
{
  const struct pc_tmpl *v = pc_tmpl_get(d, "trace_context");
  return v && v->kind == PC_T_BOOL && v->u.b;
}

/* ======================================================= options from Lua */

void pc_http_spec_mem_free(struct pc_http_spec_mem *mem)
{
  free(mem->headers);
  free(mem->url);
  free(mem->body);
  free(mem->cookie);
  free(mem->parts);
  for (size_t i = 0; i < mem->nconnect_to; i++)
    free(mem->connect_to[i]);
  free(mem->connect_to);
  for (size_t i = 0; i < mem->ntexts; i++)
    free(mem->texts[i]);
  free(mem->texts);
  memset(mem, 0, sizeof *mem);
}







/* A duration option (the table checked it: a number of seconds or a
 * duration's text) in milliseconds; absent or null: *ms unchanged. */
static void opt_duration(lua_State *L, int tbl, const char *key, double *ms)
{
  pc_http__rawfield(L, tbl, key); /* value */
  if (!pc_http__is_null(L, -1))
    pc_lua_duration(L, -1, ms);
  lua_pop(L, 1);
}

/* http_version (the table checked it: one of its allowed texts, or a
 * number written so). */
static void opt_version(lua_State *L, int tbl, enum pc_http_version *out)
{
  char num[32];
  const char *v = pc_http__version_field(L, tbl, "http_version", num);
  if (v) {
    *out = strcmp(v, "1.0") == 0   ? PC_HTTP_VERSION_1_0
           : strcmp(v, "1.1") == 0 ? PC_HTTP_VERSION_1_1
           : strcmp(v, "auto") == 0 ? PC_HTTP_VERSION_AUTO
                                    : PC_HTTP_VERSION_2;
  }
}

/* (curl_easy_escape ignores its handle: none is needed.) */
static void put_escaped(struct pc_buf *b, const char *s, size_t len)
{
  char *esc = curl_easy_escape(NULL, s, (int)len);
  if (esc) {
    pc_buf_puts(b, esc);
    curl_free(esc);
  }
}

/* Appends name=value pairs (sorted by name, lists repeated) of the table at
 * `tbl` to b, urlencoded; the values' types the table checked (params.c).
 * Returns 0, or -1 with *err set (*err is NULL on entry). */
static int encode_pairs(struct pc_lua *h, int tbl, const char *what, struct pc_buf *b,
                        struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  if (!lua_istable(L, tbl))
    return pc_http__fail(err, pc_asprintf("http.%s: expected a map of names to values, got %s", what,
                                 luaL_typename(L, tbl)));
  const char **keys = NULL;
  size_t n = 0;
  lua_pushnil(L); /* nil */
  while (lua_next(L, tbl)) { /* key, value */
    if (lua_type(L, -2) != LUA_TSTRING && !*err)
      *err = pc_asprintf("http.%s: names must be text, got %s", what, luaL_typename(L, -2));
    else if (!*err && strlen(lua_tostring(L, -2)) != lua_rawlen(L, -2))
      *err = pc_asprintf("http.%s: a name contains a NUL byte", what);
    else if (!*err) {
      keys = pc_xrealloc(keys, (n + 1) * sizeof *keys);
      keys[n++] = lua_tostring(L, -2); /* borrowed: the table holds it */
    }
    lua_pop(L, 1); /* key */
  }
  if (n)
    qsort(keys, n, sizeof *keys, pc_http__cmp_str);
  for (size_t i = 0; i < n && !*err; i++) {
    pc_http__rawfield(L, tbl, keys[i]); /* value */
    int vi = lua_gettop(L);
    size_t cnt = 1;
    bool list = lua_istable(L, vi); /* a list: the table refused a map here */
    if (list)
      cnt = (size_t)lua_rawlen(L, vi);
    for (size_t j = 1; j <= cnt && !*err; j++) {
      if (list)
        lua_rawgeti(L, vi, (lua_Integer)j); /* value, item */
      else
        lua_pushvalue(L, vi); /* value, value */
      size_t len;
      const char *txt = pc_http__is_null(L, -1) ? NULL : pc_http__scalar_text(h, -1, &len, mem);
      if (txt) {
        if (b->len)
          pc_buf_puts(b, "&");
        put_escaped(b, keys[i], strlen(keys[i]));
        pc_buf_puts(b, "=");
        put_escaped(b, txt, len);
      }
      lua_pop(L, 1); /* value */
    }
    lua_pop(L, 1);
  }
  free(keys);
  return *err ? -1 : 0;
}

/* The headers table at tbl into mem->headers (names and values borrowed,
 * or values made from numbers; their types the table checked). Returns 0,
 * or -1 with *err set. */
static int read_headers(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                        struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  size_t cap = 0;
  lua_pushnil(L); /* nil */
  while (!*err && lua_next(L, tbl)) { /* name, value */
    size_t nlen = 0;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
    if (!name || !pc_http_header_name_valid(name, nlen)) {
      *err = name ? pc_asprintf(PC_HTTP_MSG_HEADER_NAME, name)
                  : pc_asprintf("http.headers: header names must be text, got %s",
                                luaL_typename(L, -2));
      lua_pop(L, 2);
      break;
    }
    if (!pc_http__is_null(L, -1)) {
      size_t vlen;
      const char *val = pc_http__scalar_text(h, -1, &vlen, mem);
      if (!pc_http_header_value_valid(val, vlen)) { /* never echoed: it may be a secret */
        *err = pc_asprintf(memchr(val, '\0', vlen) ? PC_HTTP_MSG_HEADER_NUL
                                                   : PC_HTTP_MSG_HEADER_CRLF, name);
      } else {
        if (sp->nheaders == cap) {
          cap = cap ? cap * 2 : 8;
          mem->headers = pc_xrealloc(mem->headers, cap * sizeof *mem->headers);
        }
        mem->headers[sp->nheaders++] = (struct pc_http_header){name, nlen, val, vlen};
      }
    }
    lua_pop(L, 1); /* name */
  }
  sp->headers = mem->headers;
  return *err ? -1 : 0;
}

/* Indices in pc_http_option_params (params.c): pc_http_spec_read looks up
 * only the keys the table has. */
typedef uint64_t keyset; /* K_* bits */
#define HAS(k) ((present >> (k)) & 1u)
enum {
  K_METHOD, K_URL, K_GET, K_POST, K_PUT, K_PATCH, K_DELETE, K_HEAD, K_QUERY, K_HEADERS,
  K_BODY, K_JSON, K_FORM, K_CONNECT_TIMEOUT, K_FOLLOW, K_VERSION, K_INSECURE, K_CA_FILE,
  K_MAX_BYTES, K_SAVE_TO, K_COOKIES, K_AUTH, K_BODY_FILE, K_MULTIPART, K_CERT, K_KEY, K_KEY_PASSWORD,
  K_TLS_VERSION, K_PROXY, K_RESOLVE, K_CONNECT_TO, K_UNIX_SOCKET, K_MAX_REDIRECTS, K_COMPRESSED,
  K_TIMEOUT, K_COUNT
};
_Static_assert(K_COUNT == PC_HTTP_OPTION_KEYS, "pc_http_option_params and K_* differ");
_Static_assert(K_GET == PC_HTTP_SHORTHAND_FIRST && K_HEAD == K_GET + PC_HTTP_SHORTHANDS - 1 &&
                   K_TIMEOUT == K_COUNT - 1,
               "the shorthands are K_GET .. K_HEAD, and timeout is last");

/* The keys pc_http__read_tls_routing reads. */
#define TLS_ROUTING_KEYS                                                                       \
  (((keyset)1 << K_CERT) | ((keyset)1 << K_KEY) | ((keyset)1 << K_KEY_PASSWORD) |             \
   ((keyset)1 << K_TLS_VERSION) | ((keyset)1 << K_PROXY) | ((keyset)1 << K_RESOLVE) |         \
   ((keyset)1 << K_CONNECT_TO) | ((keyset)1 << K_UNIX_SOCKET) |                               \
   ((keyset)1 << K_MAX_REDIRECTS) | ((keyset)1 << K_COMPRESSED))

static int runtime_key(const char *k)
{
  for (int i = 0; i < K_COUNT; i++)
    if (strcmp(k, pc_http_option_params[i].name) == 0)
      return i;
  return -1;
}

/* The keys of the table at tbl as K_* bits (`given`: those whose value is
 * not the JSON null), each value checked against its entry of the
 * parameter table (as the loader checks the file's), or -1 with *err for a
 * key that is no option or a value of the wrong type. Null is no value:
 * the option is not given (but `json: null` is a body). */
static int read_keys(lua_State *L, int tbl, bool allow_timeout, keyset *out, keyset *given,
                     char **err)
{
  keyset present = 0, set = 0;
  lua_pushnil(L);
  while (lua_next(L, tbl)) { /* key, value */
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    int ki = k ? runtime_key(k) : -1;
    bool ok = ki >= 0 && (allow_timeout || ki != K_TIMEOUT);
    bool null = !ok || pc_http__is_null(L, -1);
    if (!null && (*err = pc_param_check(L, -1, "http", &pc_http_option_params[ki])) != NULL) {
      lua_pop(L, 2);
      return -1;
    }
    if (ok)
      present |= (keyset)1 << ki;
    if (!null)
      set |= (keyset)1 << ki;
    lua_pop(L, 1);
    if (!ok) {
      *err = k ? pc_asprintf("http: unknown option \"%s\"", k)
               : pc_asprintf("http: option names must be text, got %s", luaL_typename(L, -1));
      lua_pop(L, 1);
      return -1;
    }
  }
  *out = present;
  *given = set;
  return 0;
}

/* The URL and the method. Returns 0, or -1 with *err set. */
static int read_target(struct pc_lua *h, int tbl, keyset given, struct pc_http_spec *sp,
                       struct pc_http_spec_mem *mem, char **err)
{
  keyset present = given; /* HAS(): only the keys with a value */
  const char *url_key = NULL;
  for (int k = K_GET; k <= K_HEAD; k++) {
    if (!HAS(k))
      continue;
    const char *key = pc_http_option_params[k].name;
    if (url_key)
      return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_TWO_URLS, url_key, key));
    url_key = key;
  }
  bool has_url = HAS(K_URL);
  if (has_url && url_key)
    return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_TWO_URLS, "url", url_key));
  if (!has_url && !url_key)
    return pc_http__fail(err, pc_xstrdup(PC_HTTP_MSG_NO_URL));
  pc_http__opt_text(h, tbl, has_url ? "url" : url_key, &sp->url, mem);
  const char *method = NULL;
  if (HAS(K_METHOD))
    pc_http__opt_text(h, tbl, "method", &method, mem);
  if (method && url_key)
    return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_METHOD_WITH, url_key));
  int m = pc_http_method_parse(method ? method : url_key ? url_key : "GET");
  if (m < 0) /* as written, as the loader says it */
    return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_METHOD, method));
  sp->method = (enum pc_http_method)m;
  if (!pc_http_url_scheme_ok(sp->url))
    return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_SCHEME, has_url ? "url" : url_key, sp->url));
  if (strpbrk(sp->url, " \r\n\t"))
    return pc_http__fail(err, pc_asprintf("http: the URL \"%s\" contains spaces or line breaks; encode "
                                 "them, or pass values with query:", sp->url));
  return 0;
}

/* `query`, added to the URL. Returns 0, or -1 with *err set. */
static int read_query(struct pc_lua *h, int tbl, struct pc_http_spec *sp,
                      struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  pc_http__rawfield(L, tbl, "query"); /* query */
  if (!pc_http__is_null(L, -1)) {
    struct pc_buf q;
    pc_buf_init(&q, (size_t)64 << 20);
    int rc = encode_pairs(h, lua_gettop(L), "query", &q, mem, err);
    if (rc == 0 && q.len) {
      const char *url = sp->url, *hash = strchr(url, '#');
      size_t base = hash ? (size_t)(hash - url) : strlen(url);
      char last = base ? url[base - 1] : '\0';
      const char *sep = !memchr(url, '?', base) ? "?" : (last == '?' || last == '&') ? "" : "&";
      mem->url = pc_asprintf("%.*s%s%s", (int)base, url, sep, q.data);
      sp->url = mem->url;
    }
    pc_buf_free(&q);
  }
  lua_pop(L, 1);
  return *err ? -1 : 0;
}

/* The body: at most one of body, json (encoded already: json, jerr), form,
 * body_file and multipart. Returns 0, or -1 with *err set. */
static int read_body(struct pc_lua *h, int tbl, keyset present, char *json,
                     const char *jerr, struct pc_http_spec *sp, struct pc_http_spec_mem *mem,
                     char **err)
{
  lua_State *L = pc_lua_state(h);
  static const char *const body_keys[] = {"body", "json", "form", "body_file", "multipart"};
  static const int body_k[] = {K_BODY, K_JSON, K_FORM, K_BODY_FILE, K_MULTIPART};
  const char *body_key = NULL;
  for (size_t i = 0; i < PC_ARRAY_SIZE(body_keys); i++) {
    if (!HAS(body_k[i])) /* (a key a table has has a value: `json: null` is a body) */
      continue;
    if (body_key)
      return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_TWO_BODIES, body_key, body_keys[i]));
    body_key = body_keys[i];
  }
  if (body_key && strcmp(body_key, "body") == 0) {
    pc_http__rawfield(L, tbl, "body"); /* body */
    sp->body = pc_http__scalar_text(h, -1, &sp->body_len, mem);
    lua_pop(L, 1);
    sp->body_type = "text/plain; charset=utf-8";
  } else if (body_key && strcmp(body_key, "json") == 0) {
    if (!json)
      return pc_http__fail(err, pc_asprintf("http.json: %s", jerr));
    mem->body = json;
    sp->body = json;
    sp->body_len = strlen(json);
    sp->body_type = "application/json";
  } else if (body_key && strcmp(body_key, "body_file") == 0) {
    pc_http__opt_text(h, tbl, "body_file", &sp->body_file, mem);
    if (!*sp->body_file)
      return pc_http__fail(err, pc_asprintf(PC_HTTP_MSG_EMPTY_PATH, "body_file"));
    sp->body_type = "application/octet-stream";
  } else if (body_key && strcmp(body_key, "multipart") == 0) {
    if (pc_http__read_parts(h, tbl, sp, mem, err) != 0)
      return -1;
  } else if (body_key) {
    pc_http__rawfield(L, tbl, "form"); /* form */
    struct pc_buf f;
    pc_buf_init(&f, (size_t)64 << 20);
    int rc = encode_pairs(h, lua_gettop(L), "form", &f, mem, err);
    lua_pop(L, 1);
    sp->body_len = f.len;
    mem->body = pc_buf_steal(&f);
    sp->body = mem->body;
    if (rc != 0)
      return -1;
    sp->body_type = "application/x-www-form-urlencoded";
  }
  sp->has_body = body_key != NULL;
  if (sp->has_body && sp->method == PC_HTTP_HEAD)
    return pc_http__fail(err, pc_xstrdup("http: a HEAD request cannot have a body"));
  return 0;
}

/* The options that take one value each (their types the table checked). */
static void read_rest(struct pc_lua *h, int tbl, keyset present, struct pc_http_spec *sp,
                      struct pc_http_spec_mem *mem)
{
  lua_State *L = pc_lua_state(h);
  if (HAS(K_CONNECT_TIMEOUT))
    opt_duration(L, tbl, "connect_timeout", &sp->connect_timeout_ms);
  if (HAS(K_TIMEOUT))
    opt_duration(L, tbl, "timeout", &sp->timeout_ms);
  if (HAS(K_FOLLOW))
    pc_http__opt_bool(L, tbl, "follow_redirects", &sp->follow_redirects);
  if (HAS(K_INSECURE))
    pc_http__opt_bool(L, tbl, "insecure", &sp->insecure);
  if (HAS(K_VERSION))
    opt_version(L, tbl, &sp->version);
  if (HAS(K_CA_FILE))
    pc_http__opt_text(h, tbl, "ca_file", &sp->ca_file, mem);
  if (HAS(K_SAVE_TO))
    pc_http__opt_text(h, tbl, "save_to", &sp->save_to, mem);
  if (HAS(K_MAX_BYTES)) {
    pc_http__rawfield(L, tbl, "max_response_bytes"); /* max */
    if (!pc_http__is_null(L, -1))
      sp->max_response_bytes = (int64_t)lua_tointegerx(L, -1, NULL);
    lua_pop(L, 1);
  }
}

int pc_http_spec_read(struct pc_lua *h, int idx, bool allow_timeout, struct pc_http_spec *sp,
                      struct pc_http_spec_mem *mem, char **err)
{
  lua_State *L = pc_lua_state(h);
  int tbl = lua_absindex(L, idx);
  pc_http_spec_init(sp);
  memset(mem, 0, sizeof *mem);
  *err = NULL;
  if (!lua_istable(L, tbl)) {
    *err = pc_asprintf("http: expected a map of options like {get: URL}, got %s",
                       pc_lua_kind_name(L, tbl)); /* as check.c says it */
    return -1;
  }
  /* Unknown keys (a map built by an expression, or the Lua API); the
   * others are noted in `present`, and only those are looked up. */
  keyset present, given;
  if (read_keys(L, tbl, allow_timeout, &present, &given, err) != 0)
    return -1;
  /* The JSON body first (see the opening comment); its error, if any, is
   * reported where the other checks would reach it. */
  char *json = NULL, *jerr = NULL;
  if (HAS(K_JSON) && pc_http__rawfield(L, tbl, "json") != LUA_TNIL) /* json */
    json = pc_lua_to_json(h, -1, &jerr);
  if (HAS(K_JSON))
    lua_pop(L, 1);
  int top = lua_gettop(L);
  int rc = read_target(h, tbl, given, sp, mem, err);
  if (rc == 0 && HAS(K_QUERY))
    rc = read_query(h, tbl, sp, mem, err);
  if (rc == 0 && HAS(K_HEADERS)) {
    pc_http__rawfield(L, tbl, "headers"); /* headers */
    if (!pc_http__is_null(L, -1))
      rc = read_headers(h, lua_gettop(L), sp, mem, err);
    lua_settop(L, top); /* (tbl still holds the headers) */
  }
  if (rc == 0)
    rc = read_body(h, tbl, present, json, jerr, sp, mem, err);
  if (rc == 0)
    read_rest(h, tbl, present, sp, mem);
  if (rc == 0 && HAS(K_COOKIES))
    rc = pc_http__read_cookies(h, tbl, sp, mem, err);
  if (rc == 0 && HAS(K_AUTH))
    rc = pc_http__read_auth(h, tbl, sp, mem, err);
  if (rc == 0 && (present & TLS_ROUTING_KEYS))
    rc = pc_http__read_tls_routing(h, tbl, sp, mem, err);
  if (json && mem->body != json)
    free(json);
  free(jerr);
  return rc;
}

/* ================================================== defaults.http merged */

/* Copies the table at src into the table at dst (keys compared as given,
 * or case-insensitively for headers: a later name replaces an earlier one
 * that differs only in case). */
static void merge_into(lua_State *L, int dst, int src, bool nocase)
{
  lua_pushnil(L);
  while (lua_next(L, src)) { /* key, value */
    if (nocase && lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      lua_pushnil(L);
      while (lua_next(L, dst)) { /* key, value, dkey, dvalue */
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && strcasecmp(lua_tostring(L, -1), k) == 0 &&
            strcmp(lua_tostring(L, -1), k) != 0) {
          lua_pushvalue(L, -1); /* key, value, dkey, dkey */
          lua_pushnil(L);
          lua_rawset(L, dst); /* key, value, dkey */
          lua_pop(L, 1);
          lua_pushnil(L); /* restart: the table changed */
        }
      }
    }
    lua_pushvalue(L, -2); /* key, value, key */
    lua_insert(L, -2);    /* key, key, value */
    lua_rawset(L, dst);   /* key */
  }
}

int pc_http_spec_merge(struct pc_lua *h, const struct pc_tmpl *d, int idx, int scope_ref,
                       char **err)
{
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  if (!d || !lua_istable(L, idx)) {
    lua_pushvalue(L, idx);
    return 0;
  }
  char *e = NULL;
  if (pc_lua_eval_tmpl(h, d, scope_ref, &e) != 0) { /* defaults */
    *err = pc_asprintf("defaults.http: %s", e);
    free(e);
    return -1;
  }
  int D = lua_gettop(L);
  if (!lua_istable(L, D)) {
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    return 0;
  }
  lua_newtable(L); /* defaults, merged */
  int M = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, D)) { /* defaults, merged, key, value */
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (k && !pc_http__in_list(k, request_only, PC_ARRAY_SIZE(request_only))) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, M); /* defaults, merged, key */
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* defaults, merged, key, value */
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    bool keywise = k && (strcmp(k, "headers") == 0 || strcmp(k, "query") == 0);
    if (keywise && lua_istable(L, -1)) {
      if (lua_getfield(L, M, k) == LUA_TTABLE) { /* ..., key, value, dvalue */
        lua_newtable(L);                         /* ..., key, value, dvalue, copy */
        int C = lua_gettop(L);
        merge_into(L, C, C - 1, false);
        merge_into(L, C, C - 2, strcmp(k, "headers") == 0);
        lua_replace(L, C - 2); /* ..., key, copy, dvalue */
      }
      lua_pop(L, 1); /* defaults, merged, key, value */
    }
    lua_pushvalue(L, -2); /* defaults, merged, key, value, key */
    lua_insert(L, -2);    /* defaults, merged, key, key, value */
    lua_rawset(L, M);     /* defaults, merged, key */
  }
  lua_remove(L, D); /* merged */
  return 0;
}

/* Adds `traceparent: VALUE` to the spec's headers, unless the request
 * sets one itself (it then wins, as every header of a step does). */
static void add_traceparent(struct pc_http_spec *sp, struct pc_http_spec_mem *mem,
                            const char *value)
{
  for (size_t i = 0; i < sp->nheaders; i++)
    if (sp->headers[i].name_len == 11 && strncasecmp(sp->headers[i].name, "traceparent", 11) == 0)
      return;
  if (sp->headers != mem->headers) { /* not ours to grow: copy */
    struct pc_http_header *copy = pc_xcalloc(sp->nheaders + 1, sizeof *copy);
    if (sp->nheaders)
      memcpy(copy, sp->headers, sp->nheaders * sizeof *copy);
    free(mem->headers);
    mem->headers = copy;
  } else {
    mem->headers = pc_xrealloc(mem->headers, (sp->nheaders + 1) * sizeof *mem->headers);
  }
  mem->headers[sp->nheaders++] = (struct pc_http_header){"traceparent", 11, value,
                                                          strlen(value)};
  sp->headers = mem->headers;
}

int pc_http_spec_start(struct pc_lua *h, int idx, const struct pc_http_spec_opts *o,
                       struct pc_http_session *s, pc_http_done_cb cb, void *data,
                       struct pc_http_request **out, char **err)
{
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  if (pc_http_spec_merge(h, o->defaults, idx, o->scope_ref, err) != 0)
    return -1;
  /* merged: the spec borrows from it until the request has started */
  struct pc_http_spec sp;
  struct pc_http_spec_mem mem;
  int rc = pc_http_spec_read(h, -1, o->allow_timeout, &sp, &mem, err);
  if (rc == 0) {
    sp.label = o->label;
    sp.save_ok = o->save_ok;
    sp.nsave_ok = o->nsave_ok;
    if (o->traceparent)
      add_traceparent(&sp, &mem, o->traceparent);
    rc = pc_http_request_start(s, &sp, cb, data, out, err);
  }
  pc_http_spec_mem_free(&mem);
  lua_pop(L, 1);
  return rc;
}

void pc_http_spec_curl(struct pc_lua *h, int idx, const struct pc_tmpl *defaults, int scope_ref,
                       struct pc_buf *out)
{
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  char *err = NULL;
  if (pc_http_spec_merge(h, defaults, idx, scope_ref, &err) != 0) {
    free(err);
    return;
  }
  struct pc_http_spec sp;
  struct pc_http_spec_mem mem;
  if (pc_http_spec_read(h, -1, false, &sp, &mem, &err) == 0)
    pc_http_curl_command(&sp, out);
  free(err);
  pc_http_spec_mem_free(&mem);
  lua_pop(L, 1);
}
