/* result.c: the Lua view of a finished request (see result.h). The table
 * is filled under lua_pcall, because the body may not fit in what the Lua
 * state has left; every field but status is answered from one record (a
 * userdata that copies what they need, see struct lazy) and built only
 * when read, so a result keeps no request, no easy handle and no session
 * alive, and a result kept for later costs little more than its bytes. */
#include "http/result.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <lauxlib.h>
#include <lua.h>

#include "script/json.h"
#include "script/luahost.h"
#include "base/redact.h"

/* A result's record. An HTTP result is a Lua table holding only what every
 * expression reads (status; error and polls when set); everything else,
 * the engine's common fields included (outcome, attempts, times, an empty
 * outputs: struct pc_result_common, script/host.h, set by the engine when
 * the step ends), is one `struct lazy`, a full userdata: method, final
 * URL, step label, HTTP version, Set-Cookie lines, redirects and body in
 * one allocation (`data`), with the timings; its one user value is the raw
 * header block, a Lua string shared with other records whose blocks are
 * the same (push_shared_headers). A
 * kept result so costs its table, this record and nothing else (issue 16:
 * it was ~2.1 KB a result with every field a Lua value and the decoded
 * JSON cached; docs/BENCHMARKS.md).
 *
 * Every result table of a Lua state shares one metatable (made on first
 * use, kept in the registry) whose __index answers from the record:
 * the common fields, `method`, `url`, `http_version` and `reused` are
 * pushed on each read (short strings, interned by Lua); `body`, `headers`, `header_values`,
 * `cookies`, `redirects` and `timing` are built when first read and
 * rawset, so each is built at most once, and only if something reads it;
 * `json` is decoded from the record's body bytes on each read and never
 * stored in the table: the last document decoded is kept (with the result
 * it came from) in the registry, so reading `result.json.id` and then
 * `result.json.score`, or an expression and then the next one of the same
 * attempt, decodes once, while a result kept for later keeps no decoded
 * document. The record is found through a weak-keyed table (registry, and
 * upvalue 1 of the metamethods) from the result, so it lives exactly as
 * long as the result and nothing shows in the table itself. `__pairs`
 * builds every field but `json` into the table first, so pairs(), json()
 * and interpolation see every field; a raw next() sees them only once
 * built. The metatable is protected (__metatable): one plugin cannot
 * change every result. */
enum {
  LAZY_HEADERS = 1,
  LAZY_TIMING = 2,
  LAZY_VALUES = 4,
  LAZY_COOKIES = 8,
  LAZY_REDIRECTS = 16,
  LAZY_BODY = 32,
  LAZY_SCALARS = 64, /* method, url, http_version, reused (for pairs) */
  LAZY_JSON = 128,   /* json was read (and decoded): pairs() lists it, as when it was stored */
  LAZY_COMMON = 256, /* the engine's common fields (once the engine has set them) */
};
#define LAZY_ALL                                                                                   \
  (LAZY_HEADERS | LAZY_TIMING | LAZY_VALUES | LAZY_COOKIES | LAZY_REDIRECTS | LAZY_BODY |         \
   LAZY_SCALARS | LAZY_COMMON)

struct lazy {
  /* First: the engine's common fields (outcome, attempts, times; set when
   * the step finishes), answered like the fields below (script/host.h). */
  struct pc_result_common common;
  unsigned built;   /* LAZY_* already set in the table */
  bool reused;
  bool has_body;    /* a body (none with save_to once the file is written) */
  double timing[5]; /* dns, connect, tls, ttfb, total, in ms */
  /* The header block: a Lua string, user value 1 of the record, shared
   * by the records whose blocks are byte for byte the same (see
   * push_shared_headers); hdrs points at its bytes. */
  const char *hdrs;
  /* Offsets and lengths in data: 32 bits, as the header block is capped
   * at 256 KiB and a URL far below 4 GiB (l_http_result_fill checks). */
  uint32_t hdrs_len;
  uint32_t url_off;     /* of the final URL (NUL-terminated) */
  uint32_t version_off; /* of the HTTP version; 0: none */
  uint32_t label_off;   /* of the step label; 0: none ("http") */
  uint32_t cookies_off, cookies_len;     /* the Set-Cookie lines of the chain */
  uint32_t redirects_off, redirects_len; /* "STATUS URL" NUL per redirect followed */
  uint32_t body_off;
  size_t body_len;
  /* method NUL, URL NUL, [version NUL], [label NUL], Set-Cookie lines,
   * redirects, body */
  char data[];
};

static const char *const timing_names[5] = {"dns", "connect", "tls", "ttfb", "total"};
static const char result_mt_key = 'm';   /* registry: the shared metatable */
static const char result_data_key = 'd'; /* registry: result -> struct lazy */

/* The struct lazy of the result at t, or NULL. */
static struct lazy *lazy_of(lua_State *L, int t)
{
  lua_pushvalue(L, t);                          /* result */
  lua_rawget(L, lua_upvalueindex(1));           /* lazy or nil */
  struct lazy *z = lua_touserdata(L, -1);
  lua_pop(L, 1); /* t keeps it alive */
  return z;
}

/* "GET URL (step LABEL)": the request, for messages. */
static void put_request(const struct lazy *z, struct pc_buf *b)
{
  pc_buf_printf(b, "%s %s", z->data, z->data + z->url_off);
  if (z->label_off)
    pc_buf_printf(b, " (step %s)", z->data + z->label_off);
}

/* Registry keys of the last document decoded and the result it is of: as
 * tables, and as a read-only view (while pc_lua_json_views says so). */
static const char json_of_key = 'r';
static const char json_doc_key = 'j';
static const char view_of_key = 'R';
static const char view_doc_key = 'J';

/* lua_pcall'd by push_json (1: the struct lazy): the decoded body. */
static int decode_body(lua_State *L)
{
  const struct lazy *z = lua_touserdata(L, 1);
  return pc_json_decode_text(L, z->data + z->body_off, z->body_len);
}

/* Pushes `json` of the result t at 1 (its record z): the last document
 * decoded if it is this result's, or the body decoded now (see struct
 * lazy); nothing (returns 0) without a body. Raises "response body of ...
 * is not JSON: ..." if the body is not JSON. While expect.that, until or
 * fail_if read it with the shared `result` view, the document is a
 * read-only view (script/json.h): they keep nothing, and it costs less
 * than tables and their proxies (issue 16). */
static int push_json(lua_State *L, struct lazy *z)
{
  if (!z->has_body)
    return 0;
  bool views = pc_lua_json_views(L);
  const char *of_key = views ? &view_of_key : &json_of_key;
  const char *doc_key = views ? &view_doc_key : &json_doc_key;
  lua_rawgetp(L, LUA_REGISTRYINDEX, of_key); /* ..., of */
  bool same = lua_rawequal(L, -1, 1);
  lua_pop(L, 1);
  if (same) {
    lua_rawgetp(L, LUA_REGISTRYINDEX, doc_key);
    return 1;
  }
  char err[400];
  const char *why = NULL;
  if (views) {
    if (pc_json_view_decode(L, z->data + z->body_off, z->body_len, err, sizeof err) != 0)
      why = err; /* ..., value unless why */
  } else {
    lua_pushcfunction(L, decode_body);     /* ..., decode */
    lua_pushlightuserdata(L, z);           /* ..., decode, z (t keeps it alive) */
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* ..., value or message */
      snprintf(err, sizeof err, "%s", lua_tostring(L, -1));
      why = err;
    }
  }
  if (why) {
    struct pc_buf b;
    pc_buf_init(&b, 4096);
    pc_buf_puts(&b, "response body of ");
    put_request(z, &b);
    pc_buf_puts(&b, " is not JSON: ");
    if (z->body_len == 0) {
      pc_buf_puts(&b, "the body is empty");
    } else {
      pc_buf_printf(&b, "%s; it starts with: ", why);
      pc_http_excerpt(&b, z->data + z->body_off, z->body_len, 80);
    }
    lua_pushlstring(L, b.data, b.len);
    pc_buf_free(&b);
    return lua_error(L);
  }
  z->built |= LAZY_JSON;
  lua_pushvalue(L, -1);                        /* ..., value, value */
  lua_rawsetp(L, LUA_REGISTRYINDEX, doc_key);  /* ..., value */
  lua_pushvalue(L, 1);                         /* ..., value, t */
  lua_rawsetp(L, LUA_REGISTRYINDEX, of_key);   /* ..., value */
  return 1;
}

/* The metatable of `headers` and `header_values` (made on first use, kept
 * in the registry): names are stored lower-cased, and __index finds a name
 * written in any case (`headers['Content-Type']`). */
static const char headers_mt_key = 'h';

static int l_headers_index(lua_State *L)
{
  size_t len;
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &len) : NULL;
  if (!k || len > 255)
    return 0;
  char low[256];
  bool upper = false;
  for (size_t i = 0; i < len; i++) {
    low[i] = (char)tolower((unsigned char)k[i]);
    upper |= low[i] != k[i];
  }
  if (!upper)
    return 0; /* already lower-case: the raw lookup said nil */
  lua_pushlstring(L, low, len);
  lua_rawget(L, 1);
  return 1;
}

static void set_headers_mt(lua_State *L, int t)
{
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &headers_mt_key) != LUA_TTABLE) { /* mt */
    lua_pop(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, l_headers_index);
    lua_setfield(L, -2, "__index");
    lua_pushliteral(L, "http headers");
    lua_setfield(L, -2, "__metatable");
    /* its raw contents are the data: the journal writes it as an object
     * (script/json.c, pc_json_encode_exact) */
    lua_pushliteral(L, "object");
    lua_setfield(L, -2, "__json");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &headers_mt_key);
  }
  lua_setmetatable(L, t);
}

void pc_http_result_restored(struct pc_lua *h, int idx)
{
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  static const char *const fields[] = {"headers", "header_values"};
  for (size_t i = 0; i < 2; i++) {
    if (lua_getfield(L, idx, fields[i]) == LUA_TTABLE) { /* value */
      if (lua_getmetatable(L, -1))
        lua_pop(L, 1); /* it has one already: leave it */
      else
        set_headers_mt(L, lua_gettop(L));
    }
    lua_pop(L, 1);
  }
}

/* Adds one header (name lower-cased, value) to the table at t: as text,
 * a repeated name's values joined with ", " (`headers`), or as a list of
 * every value in order (`header_values`). */
static void add_header(lua_State *L, int t, const char *name, const char *v, size_t vlen,
                       bool lists)
{
  if (lists) {
    if (lua_getfield(L, t, name) != LUA_TTABLE) { /* list or nil */
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_setfield(L, t, name);
    }
    lua_pushlstring(L, v, vlen);
    lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    lua_pop(L, 1);
    return;
  }
  if (lua_getfield(L, t, name) == LUA_TSTRING) { /* headers, old */
    lua_pushliteral(L, ", ");
    lua_pushlstring(L, v, vlen);
    lua_concat(L, 3); /* headers, value */
  } else {
    lua_pop(L, 1);
    lua_pushlstring(L, v, vlen);
  }
  lua_setfield(L, t, name);
}

/* Appends " " and v to the value of `name` last added to the table at t
 * (obsolete line folding continues the previous value). */
static void fold_header(lua_State *L, int t, const char *name, const char *v, size_t vlen,
                        bool lists)
{
  if (lists) {
    if (lua_getfield(L, t, name) != LUA_TTABLE) { /* list */
      lua_pop(L, 1);
      return;
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lua_rawgeti(L, -1, n); /* list, old */
    lua_pushliteral(L, " ");
    lua_pushlstring(L, v, vlen);
    lua_concat(L, 3);      /* list, value */
    lua_rawseti(L, -2, n); /* list */
    lua_pop(L, 1);
    return;
  }
  lua_getfield(L, t, name); /* old */
  lua_pushliteral(L, " ");
  lua_pushlstring(L, v, vlen);
  lua_concat(L, 3);
  lua_setfield(L, t, name);
}

/* Pushes the headers table parsed from a raw header block: `headers`, or
 * with `lists` `header_values`. Nothing here holds memory of its own: the
 * Lua state may raise (out of memory) at any allocation. */
static void push_headers(lua_State *L, const char *data, size_t len, bool lists)
{
  lua_newtable(L); /* headers */
  int t = lua_gettop(L);
  const char *p = data, *end = data + len;
  char name[256];
  bool have_name = false;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    while (le > p && le[-1] == '\r')
      le--;
    if (le > p && (*p == ' ' || *p == '\t') && have_name) {
      const char *v = p;
      while (v < le && (*v == ' ' || *v == '\t'))
        v++;
      fold_header(L, t, name, v, (size_t)(le - v), lists);
    } else {
      const char *colon = memchr(p, ':', (size_t)(le - p));
      if (colon && colon > p && (size_t)(colon - p) < sizeof name) {
        size_t nl = (size_t)(colon - p);
        for (size_t i = 0; i < nl; i++)
          name[i] = (char)tolower((unsigned char)p[i]);
        name[nl] = '\0';
        have_name = true;
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
          v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
          ve--;
        add_header(L, t, name, v, (size_t)(ve - v), lists);
      } else {
        have_name = false;
      }
    }
    p = eol ? eol + 1 : end;
  }
  set_headers_mt(L, t);
}

/* Pushes the map of cookie names to values that the Set-Cookie lines
 * (`Set-Cookie: NAME=VALUE; attributes`) set, a later one winning. */
static void push_cookies(lua_State *L, const char *data, size_t len)
{
  lua_newtable(L);
  const char *p = data, *end = data + len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    const char *v = memchr(p, ':', (size_t)(le - p));
    if (v) {
      v++;
      const char *semi = memchr(v, ';', (size_t)(le - v));
      const char *pe = semi ? semi : le;
      const char *eq = memchr(v, '=', (size_t)(pe - v));
      if (eq) {
        const char *n = v, *ne = eq, *vs = eq + 1, *ve = pe;
        while (n < ne && (*n == ' ' || *n == '\t'))
          n++;
        while (ne > n && (ne[-1] == ' ' || ne[-1] == '\t'))
          ne--;
        while (vs < ve && (*vs == ' ' || *vs == '\t'))
          vs++;
        while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r'))
          ve--;
        if (ne > n) {
          lua_pushlstring(L, n, (size_t)(ne - n));
          lua_pushlstring(L, vs, (size_t)(ve - vs));
          lua_rawset(L, -3);
        }
      }
    }
    p = eol ? eol + 1 : end;
  }
}

/* Whether t[k] is not set (raw). */
static bool raw_absent(lua_State *L, int t, const char *k)
{
  lua_pushstring(L, k);
  bool absent = lua_rawget(L, t) == LUA_TNIL;
  lua_pop(L, 1);
  return absent;
}

/* Pushes the value of a field answered on each read (LAZY_SCALARS);
 * returns whether k is one. */
static bool push_scalar(lua_State *L, const struct lazy *z, const char *k)
{
  if (strcmp(k, "method") == 0)
    lua_pushstring(L, z->data);
  else if (strcmp(k, "url") == 0)
    lua_pushstring(L, z->data + z->url_off);
  else if (strcmp(k, "reused") == 0)
    lua_pushboolean(L, z->reused);
  else if (strcmp(k, "http_version") == 0 && z->version_off)
    lua_pushstring(L, z->data + z->version_off);
  else
    return false;
  return true;
}

/* Builds the lazy fields in `which` not built yet into the table at t
 * (unless the table's owner has set them already). */
static void lazy_build(lua_State *L, int t, struct lazy *z, unsigned which)
{
  if (!z->common.outcome)
    which &= ~(unsigned)LAZY_COMMON; /* not set yet: built when they are */
  which &= ~z->built;
  z->built |= which;
  if (which & LAZY_COMMON)
    pc_lua_result_common_build(L, t, &z->common);
  if (which & LAZY_SCALARS) {
    static const char *const names[] = {"method", "url", "reused", "http_version"};
    for (size_t i = 0; i < PC_ARRAY_SIZE(names); i++)
      if (raw_absent(L, t, names[i]) && push_scalar(L, z, names[i]))
        lua_setfield(L, t, names[i]);
  }
  if ((which & LAZY_BODY) && z->has_body && raw_absent(L, t, "body")) {
    lua_pushlstring(L, z->data + z->body_off, z->body_len);
    lua_setfield(L, t, "body");
  }
  if ((which & LAZY_HEADERS) && raw_absent(L, t, "headers")) {
    push_headers(L, z->hdrs, z->hdrs_len, false); /* headers */
    lua_setfield(L, t, "headers");                /* (t has no __newindex) */
  }
  if ((which & LAZY_VALUES) && raw_absent(L, t, "header_values")) {
    push_headers(L, z->hdrs, z->hdrs_len, true);
    lua_setfield(L, t, "header_values");
  }
  if ((which & LAZY_REDIRECTS) && raw_absent(L, t, "redirects")) {
    lua_newtable(L); /* redirects */
    const char *p = z->data + z->redirects_off, *end = p + z->redirects_len;
    for (lua_Integer i = 1; p < end; i++) {
      char *sp;
      long status = strtol(p, &sp, 10);
      lua_createtable(L, 0, 2);
      lua_pushinteger(L, status);
      lua_setfield(L, -2, "status");
      lua_pushstring(L, sp + 1);
      lua_setfield(L, -2, "url");
      lua_rawseti(L, -2, i);
      p += strlen(p) + 1;
    }
    lua_setfield(L, t, "redirects");
  }
  if ((which & LAZY_COOKIES) && raw_absent(L, t, "cookies")) {
    push_cookies(L, z->data + z->cookies_off, z->cookies_len);
    lua_setfield(L, t, "cookies");
  }
  if ((which & LAZY_TIMING) && raw_absent(L, t, "timing")) {
    lua_createtable(L, 0, 5); /* timing */
    for (int i = 0; i < 5; i++) {
      lua_pushnumber(L, z->timing[i]);
      lua_setfield(L, -2, timing_names[i]);
    }
    lua_setfield(L, t, "timing");
  }
}

/* __index (t, k); upvalue: the weak table of struct lazy. */
static int l_http_result_index(lua_State *L)
{
  if (lua_type(L, 2) != LUA_TSTRING)
    return 0;
  const char *k = lua_tostring(L, 2);
  struct lazy *z = lazy_of(L, 1);
  if (!z)
    return 0;
  if (strcmp(k, "json") == 0)
    return push_json(L, z);
  unsigned which = 0;
  if (strcmp(k, "body") == 0)
    which = LAZY_BODY;
  else if (strcmp(k, "headers") == 0)
    which = LAZY_HEADERS;
  else if (strcmp(k, "timing") == 0)
    which = LAZY_TIMING;
  else if (strcmp(k, "header_values") == 0)
    which = LAZY_VALUES;
  else if (strcmp(k, "cookies") == 0)
    which = LAZY_COOKIES;
  else if (strcmp(k, "redirects") == 0)
    which = LAZY_REDIRECTS;
  else if (!(z->built & LAZY_COMMON) && pc_lua_result_common_push(L, &z->common, k))
    return 1;
  else
    return !(z->built & LAZY_SCALARS) && push_scalar(L, z, k) ? 1 : 0;
  if (z->built & which)
    return 0; /* built once: a field the caller removed stays removed */
  lazy_build(L, 1, z, which);
  lua_pushvalue(L, 2); /* t, k, k */
  lua_rawget(L, 1);    /* t, k, value */
  return 1;
}

/* The iterator __pairs gives (upvalue 1 as __index's): the table's raw
 * pairs, then `json` if it was read (decoded again if the registry no
 * longer holds it): a result lists the same fields as when `json` was
 * stored in it once read. */
static int l_http_result_next(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_type(L, 2) == LUA_TSTRING && strcmp(lua_tostring(L, 2), "json") == 0 &&
      raw_absent(L, 1, "json")) {
    lua_pushnil(L); /* after the listed json: the end */
    return 1;
  }
  if (lua_next(L, 1))
    return 2;
  struct lazy *z = lazy_of(L, 1);
  if (z && (z->built & LAZY_JSON) && raw_absent(L, 1, "json")) {
    lua_pushliteral(L, "json"); /* t, "json" */
    if (push_json(L, z))        /* t, "json", value */
      return 2;
  }
  lua_pushnil(L);
  return 1;
}

/* __pairs (t): next, t, nil once every field but json is in the table. */
static int l_http_result_pairs(lua_State *L)
{
  struct lazy *z = lazy_of(L, 1);
  if (z)
    lazy_build(L, 1, z, LAZY_ALL);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushcclosure(L, l_http_result_next, 1); /* t, next */
  lua_pushvalue(L, 1);                        /* t, next, t */
  lua_pushnil(L);                             /* t, next, t, nil */
  return 3;
}

/* Pushes the shared metatable, then the weak table of struct lazy. */
static void push_result_mt(lua_State *L)
{
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &result_mt_key) == LUA_TTABLE) { /* mt */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &result_data_key);                 /* mt, data */
    return;
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 3);       /* mt */
  lua_createtable(L, 0, 0);       /* mt, data */
  lua_createtable(L, 0, 1);       /* mt, data, datamt */
  lua_pushliteral(L, "k");        /* mt, data, datamt, "k" */
  lua_setfield(L, -2, "__mode");  /* mt, data, datamt */
  lua_setmetatable(L, -2);        /* mt, data */
  lua_pushvalue(L, -1);           /* mt, data, data */
  lua_pushcclosure(L, l_http_result_index, 1); /* mt, data, __index */
  lua_setfield(L, -3, "__index");           /* mt, data */
  lua_pushvalue(L, -1);                     /* mt, data, data */
  lua_pushcclosure(L, l_http_result_pairs, 1); /* mt, data, __pairs */
  lua_setfield(L, -3, "__pairs");           /* mt, data */
  /* The field pairs() does not list, for readers that write a result down
   * whole (the journal: script/json.h, pc_json_encode_exact). */
  lua_createtable(L, 1, 0);                 /* mt, data, fields */
  lua_pushliteral(L, "json");
  lua_rawseti(L, -2, 1);
  lua_setfield(L, -3, "__fields");          /* mt, data */
  /* The engine finds the common fields' record through the same table. */
  lua_pushvalue(L, -1);                     /* mt, data, data */
  lua_rawsetp(L, -3, &pc_result_common_key); /* mt, data */
  lua_pushliteral(L, "http result");        /* mt, data, name */
  lua_setfield(L, -3, "__metatable");       /* mt, data */
  lua_pushvalue(L, -2);                     /* mt, data, mt */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &result_mt_key); /* mt, data */
  lua_pushvalue(L, -1);                     /* mt, data, data */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &result_data_key); /* mt, data */
}

/* Pushes the header block of a response as a Lua string: the same string
 * as a recent record's when the bytes are the same. A server answers a
 * fan-out's requests with the same headers but for a date that changes
 * once a second and a length that changes with the body's, so most kept
 * results share their block (issue 16: it was ~150 of the ~690 bytes a
 * kept result holds). The last HDRS_CACHE distinct blocks are remembered
 * (registry, replaced in turn); blocks longer than HDRS_SHARE_MAX are not
 * (few servers repeat those, and the cache must stay small). */
#define HDRS_CACHE 4
#define HDRS_SHARE_MAX 4096
static const char hdrs_cache_key = 'H';

static void push_shared_headers(lua_State *L, const char *p, size_t len)
{
  if (len > HDRS_SHARE_MAX || len == 0) {
    lua_pushlstring(L, p ? p : "", len);
    return;
  }
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &hdrs_cache_key) != LUA_TTABLE) { /* cache */
    lua_pop(L, 1);
    lua_createtable(L, HDRS_CACHE + 1, 0);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &hdrs_cache_key);
  }
  for (lua_Integer i = 1; i <= HDRS_CACHE; i++) {
    if (lua_rawgeti(L, -1, i) == LUA_TSTRING) { /* cache, block */
      size_t n;
      const char *s = lua_tolstring(L, -1, &n);
      if (n == len && memcmp(s, p, len) == 0) {
        lua_remove(L, -2); /* block */
        return;
      }
    }
    lua_pop(L, 1);
  }
  lua_pushlstring(L, p, len);                          /* cache, block */
  lua_rawgeti(L, -2, HDRS_CACHE + 1);                  /* cache, block, turn */
  lua_Integer turn = lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_pushinteger(L, turn + 1);
  lua_rawseti(L, -3, HDRS_CACHE + 1);
  lua_pushvalue(L, -1);
  lua_rawseti(L, -3, turn % HDRS_CACHE + 1);           /* cache, block */
  lua_remove(L, -2);                                   /* block */
}

/* lua_pcall'd by pc_http_result_fill (1: the result table, 2: the struct
 * pc_http_result as a light userdata): everything it allocates, the body
 * above all, may run out of memory. */
static int l_http_result_fill(lua_State *L)
{
  const struct pc_http_result *res = lua_touserdata(L, 2);
  const int idx = 1;
  lua_settop(L, 1);
  if (res->status <= 0) {
    /* No response: what was asked for, for messages and reports. */
    lua_pushstring(L, res->method);
    lua_setfield(L, idx, "method");
    lua_pushstring(L, res->final_url);
    lua_setfield(L, idx, "url");
    return 0;
  }
  lua_pushinteger(L, res->status);
  lua_setfield(L, idx, "status");
  if (res->saved_to) {
    lua_pushstring(L, res->saved_to);
    lua_setfield(L, idx, "saved_to");
  }
  bool has_body = !res->saved_to && res->body;
  if (has_body && res->body_cut)
    pc_secret_cut(res->body, res->body_len); /* its start: cut by pacer */

  /* Everything else: the record (see struct lazy) */
  size_t mlen = strlen(res->method) + 1;
  size_t ulen = strlen(res->final_url) + 1;
  size_t vlen = res->http_version ? strlen(res->http_version) + 1 : 0;
  bool labelled = res->label && strcmp(res->label, "http") != 0;
  size_t llen = labelled ? strlen(res->label) + 1 : 0;
  size_t rdlen = 0; /* the redirects, "STATUS URL" NUL each */
  for (size_t i = 0; i < res->nredirects; i++)
    rdlen += (size_t)snprintf(NULL, 0, "%d %s", res->redirects[i].status,
                              res->redirects[i].url) + 1;
  size_t blen = has_body ? res->body_len : 0;
  size_t head = mlen + ulen + vlen + llen + res->set_cookies_len + rdlen;
  if (head > UINT32_MAX || res->headers_len > UINT32_MAX)
    return luaL_error(L, "the response's headers and URLs take %zu bytes",
                      head + res->headers_len);
  struct lazy *z = lua_newuserdatauv(L, sizeof *z + head + blen, 1); /* lazy */
  push_shared_headers(L, res->headers, res->headers_len); /* lazy, block */
  z->hdrs = lua_tostring(L, -1);
  lua_setiuservalue(L, -2, 1);                            /* lazy */
  z->common = (struct pc_result_common){.outcome = NULL};
  z->built = 0;
  z->reused = res->reused;
  z->has_body = has_body;
  const struct pc_http_timing *tm = &res->timing;
  z->timing[0] = tm->dns;
  z->timing[1] = tm->connect;
  z->timing[2] = tm->tls;
  z->timing[3] = tm->ttfb;
  z->timing[4] = tm->total;
  size_t at = 0;
  z->hdrs_len = (uint32_t)res->headers_len;
  memcpy(z->data + at, res->method, mlen);
  at += mlen;
  z->url_off = (uint32_t)at;
  memcpy(z->data + at, res->final_url, ulen);
  at += ulen;
  z->version_off = vlen ? (uint32_t)at : 0;
  if (vlen)
    memcpy(z->data + at, res->http_version, vlen);
  at += vlen;
  z->label_off = labelled ? (uint32_t)at : 0;
  if (labelled)
    memcpy(z->data + at, res->label, llen);
  at += llen;
  z->cookies_off = (uint32_t)at;
  z->cookies_len = (uint32_t)res->set_cookies_len;
  if (res->set_cookies_len)
    memcpy(z->data + at, res->set_cookies, res->set_cookies_len);
  at += res->set_cookies_len;
  z->redirects_off = (uint32_t)at;
  z->redirects_len = (uint32_t)rdlen;
  char *rp = z->data + at;
  for (size_t i = 0; i < res->nredirects; i++)
    rp += sprintf(rp, "%d %s", res->redirects[i].status, res->redirects[i].url) + 1;
  at += rdlen;
  z->body_off = (uint32_t)at;
  z->body_len = blen;
  if (blen)
    memcpy(z->data + at, res->body, blen);
  push_result_mt(L);           /* lazy, mt, data */
  lua_rotate(L, -2, 1);        /* lazy, data, mt */
  lua_setmetatable(L, idx);    /* lazy, data */
  lua_pushvalue(L, idx);       /* lazy, data, result */
  lua_rotate(L, -3, -1);       /* data, result, lazy */
  lua_rawset(L, -3);           /* data */
  return 0;
}

int pc_http_result_fill(const struct pc_http_result *res, struct pc_lua *h, int idx, char **err)
{
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 8))
    goto no_memory;
  lua_pushcfunction(L, l_http_result_fill);    /* fill */
  lua_pushvalue(L, idx);                  /* fill, result */
  lua_pushlightuserdata(L, (void *)res);  /* fill, result, res */
  if (lua_pcall(L, 2, 0, 0) == LUA_OK)
    return 0;
  lua_pop(L, 1); /* the error: only memory can run out here (no metamethods run) */
no_memory:
  *err = pc_asprintf("%s %s: the response does not fit in memory (%zu bytes of body)",
                     res->method, res->url, res->body_len);
  return -1;
}

void pc_http_result_exchange(struct pc_lua *h, int idx, struct pc_buf *out, size_t max)
{
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &result_data_key); /* data */
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, idx);
  lua_rawget(L, -2); /* data, lazy */
  const struct lazy *z = lua_touserdata(L, -1);
  if (z && z->hdrs_len)
    pc_http_show_response(out, z->hdrs, z->hdrs_len, z->has_body ? z->data + z->body_off : NULL,
                          z->body_len, max);
  lua_pop(L, 2);
}
