/* json.c: decodes JSON text into Lua values with yajl's event (SAX)
 * parser, building the tables directly as the events come: no tree in
 * between. For the benchmark's 170-byte document (docs/BENCHMARKS.md, w1)
 * that costs about 17 000 instructions, against lua-cjson's 19 500 and
 * jansson's 40 000 (a tree, then tables). lua-cjson, which pacer used
 * before, turns every number into a float (the id 3 of a response became
 * "3.0" in a URL); yajl hands over each number's text, so integers stay
 * integers here.
 *
 * A Lua error inside a callback (out of memory, the Lua memory limit of
 * plugin code) must not leak the parser: the parse runs in a protected call,
 * and the parser and the frame stack are freed after it whatever happened,
 * then the error is raised again. The value being built lives on the Lua
 * stack: each open container, and for maps the key waiting for its value. */
#include "script/json.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yajl/yajl_parse.h>

#include "base/util.h"
#include "script/json_int.h"

/* Registry key of the metatable that marks empty JSON objects. */
static const char OBJECT_MT_KEY = 'o';

struct frame {
  bool map;
  lua_Integer n; /* items (lists) or pairs (maps) added so far */
};

struct decoder {
  lua_State *L;
  yajl_handle y;
  int object_mt;        /* stack index of the object metatable */
  struct frame *frames; /* open containers (depth of them): `inline_frames`
                           until a document nests deeper, then malloc'd */
  size_t depth, cap;
  bool have_value;      /* the top-level value is complete */
  bool too_deep;
  struct frame inline_frames[16];
};

/* Size hints for new tables, per kind and nesting level: the size of the
 * last container completed there. A table that grows from a guess rehashes
 * at each doubling (a tenth of decoding a small document); documents of one
 * API, and the objects of one list, tend to have the same shape, so the
 * last one's size is a good first guess. Only the Lua state's thread
 * decodes, so this cache needs no lock; a wrong hint costs a rehash or a
 * few empty slots, nothing else. */
#define HINT_LEVELS 8
static int size_hint[2][HINT_LEVELS];

/* Adds the value on top of the stack to the open container (or keeps it as
 * the result at the top level). */
static int put(struct decoder *d)
{
  lua_State *L = d->L;
  if (d->depth == 0) {
    d->have_value = true;
    return 1;
  }
  struct frame *f = &d->frames[d->depth - 1];
  f->n++;
  if (f->map)
    lua_rawset(L, -3); /* map, key, value -> map */
  else
    lua_rawseti(L, -2, f->n); /* list, value -> list */
  return 1;
}

static int on_null(void *ud)
{
  struct decoder *d = ud;
  lua_pushlightuserdata(d->L, NULL);
  return put(d);
}

static int on_boolean(void *ud, int b)
{
  struct decoder *d = ud;
  lua_pushboolean(d->L, b);
  return put(d);
}

/* An integer when the text is one (no fraction, no exponent) and fits in
 * 64 bits; a float otherwise. yajl has checked the syntax, so up to 18
 * digits (below 10^18, always in range) are summed here directly: strtoll
 * cost ~500 instructions a number, a third of decoding a small document.
 * Returns whether it is an integer (*i) or a float (*d). */
bool pc__json_number(const char *s, size_t len, lua_Integer *i, double *d)
{
  size_t neg = s[0] == '-' ? 1 : 0;
  if (len - neg <= 18) {
    lua_Integer v = 0;
    size_t j = neg;
    while (j < len && s[j] >= '0' && s[j] <= '9')
      v = v * 10 + (s[j++] - '0');
    if (j == len) {
      *i = neg ? -v : v;
      return true;
    }
  }
  char buf[64];
  char *text = len < sizeof buf ? buf : pc_xmalloc(len + 1);
  memcpy(text, s, len);
  text[len] = '\0';
  bool integral = strpbrk(text, ".eE") == NULL;
  errno = 0;
  long long n = integral ? strtoll(text, NULL, 10) : 0;
  bool is_int = integral && errno == 0;
  if (is_int)
    *i = (lua_Integer)n;
  else
    *d = strtod(text, NULL);
  if (text != buf)
    free(text);
  return is_int;
}

static int on_number(void *ud, const char *s, size_t len)
{
  struct decoder *d = ud;
  lua_Integer i;
  double f;
  if (pc__json_number(s, len, &i, &f))
    lua_pushinteger(d->L, i);
  else
    lua_pushnumber(d->L, f);
  return put(d);
}

static int on_string(void *ud, const unsigned char *s, size_t len)
{
  struct decoder *d = ud;
  lua_pushlstring(d->L, (const char *)s, len);
  return put(d);
}

static int on_key(void *ud, const unsigned char *s, size_t len)
{
  struct decoder *d = ud;
  lua_pushlstring(d->L, (const char *)s, len);
  return 1;
}

static int open_container(struct decoder *d, bool map)
{
  if (d->depth >= PC_JSON_MAX_DEPTH) {
    d->too_deep = true;
    return 0; /* cancels the parse */
  }
  luaL_checkstack(d->L, 3, "JSON nested too deep");
  if (d->depth == d->cap) {
    size_t cap = d->cap * 2;
    struct frame *f = pc_xmalloc(cap * sizeof *f);
    memcpy(f, d->frames, d->depth * sizeof *f);
    if (d->frames != d->inline_frames)
      free(d->frames);
    d->frames = f;
    d->cap = cap;
  }
  int hint = d->depth < HINT_LEVELS ? size_hint[map][d->depth] : 0;
  d->frames[d->depth++] = (struct frame){map, 0};
  if (map)
    lua_createtable(d->L, 0, hint);
  else
    lua_createtable(d->L, hint, 0);
  return 1;
}

static int on_start_map(void *ud)
{
  return open_container(ud, true);
}

static int on_start_array(void *ud)
{
  return open_container(ud, false);
}

static int on_end(void *ud)
{
  struct decoder *d = ud;
  struct frame *f = &d->frames[--d->depth];
  if (d->depth < HINT_LEVELS)
    size_hint[f->map][d->depth] = f->n < 64 ? (int)f->n : 64;
  if (f->map && f->n == 0) {
    lua_pushvalue(d->L, d->object_mt); /* map, mt */
    lua_setmetatable(d->L, -2);        /* map */
  }
  return put(d);
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_key,
    .yajl_end_map = on_end,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end,
};

/* Writes "invalid JSON: <yajl's message> at byte N" into msg. yajl counts
 * the bytes consumed only for the text it was given: an error found when
 * the parse is completed (the text ended early, or more follows a value)
 * is at the end. yajl's copy of its message is freed here. */
void pc__json_parse_error(yajl_handle y, bool too_deep, const char *text, size_t len,
                          bool at_end, char *msg, size_t size)
{
  size_t at = at_end ? len : yajl_get_bytes_consumed(y);
  if (too_deep) {
    snprintf(msg, size, "invalid JSON: nested deeper than %d levels (at byte %d)",
             PC_JSON_MAX_DEPTH, (int)at);
    return;
  }
  char what[256] = "parse error";
  unsigned char *m = yajl_get_error(y, 0, (const unsigned char *)text, len);
  if (m) {
    snprintf(what, sizeof what, "%s", (const char *)m);
    yajl_free_error(y, m);
  }
  size_t n = strlen(what);
  while (n > 0 && (what[n - 1] == '\n' || what[n - 1] == '.' || what[n - 1] == ' '))
    what[--n] = '\0';
  if (at_end)
    snprintf(msg, size, "invalid JSON: %s at the end of the text", what);
  else
    snprintf(msg, size, "invalid JSON: %s at byte %d", what, (int)(at > 0 ? at : 1));
}

static int raise_parse_error(lua_State *L, struct decoder *d, const char *text, size_t len,
                             bool at_end)
{
  char msg[400];
  pc__json_parse_error(d->y, d->too_deep, text, len, at_end, msg, sizeof msg);
  return luaL_error(L, "%s", msg);
}

/* The text to decode, for decode_protected. */
struct text {
  const char *s;
  size_t len;
};

/* Protected part: (decoder, text) -> value. */
static int decode_protected(lua_State *L)
{
  struct decoder *d = lua_touserdata(L, 1);
  const struct text *tx = lua_touserdata(L, 2);
  const char *text = tx->s;
  size_t len = tx->len;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &OBJECT_MT_KEY); /* d, text, mt */
  d->object_mt = lua_gettop(L);
  yajl_status st = yajl_parse(d->y, (const unsigned char *)text, len);
  if (st != yajl_status_ok)
    return raise_parse_error(L, d, text, len, false);
  if (yajl_complete_parse(d->y) != yajl_status_ok)
    return raise_parse_error(L, d, text, len, true);
  if (!d->have_value)
    return luaL_error(L, "invalid JSON: the text is empty");
  return 1; /* the value */
}

int pc_json_decode(lua_State *L)
{
  struct text tx;
  tx.s = luaL_checklstring(L, 1, &tx.len);
  lua_settop(L, 1); /* the string stays on the stack while it is parsed */
  return pc_json_decode_text(L, tx.s, tx.len);
}

/* yajl's own allocations for a document (its handle, lexer, buffers and
 * state stack: half a dozen blocks, freed when the document is done) come
 * from one block reused by every decode, which saves malloc and free ~900
 * instructions a document (issue 16). A block that does not fit is
 * malloc'd. No decode can start inside another today (the callbacks call
 * no metamethod, and plugin finalizers are queued, gc.c), but one that
 * did would find the block held and use malloc throughout.
 * Each block starts with its size, for realloc. Only the Lua state's
 * thread decodes, as for size_hint. */
#define ARENA_ALIGN 16
static _Alignas(ARENA_ALIGN) unsigned char arena[4096];
static size_t arena_used;
static bool arena_busy;

static bool in_arena(const void *p)
{
  return (const unsigned char *)p >= arena && (const unsigned char *)p < arena + sizeof arena;
}

static void *arena_malloc(void *ctx, size_t size)
{
  (void)ctx;
  size_t need = (size + 2 * ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
  unsigned char *p;
  if (need <= sizeof arena - arena_used) {
    p = arena + arena_used;
    arena_used += need;
  } else {
    p = malloc(size + ARENA_ALIGN);
    if (!p)
      return NULL;
  }
  memcpy(p, &size, sizeof size);
  return p + ARENA_ALIGN;
}

static void arena_free(void *ctx, void *ptr)
{
  (void)ctx;
  if (ptr && !in_arena(ptr))
    free((unsigned char *)ptr - ARENA_ALIGN);
}

static void *arena_realloc(void *ctx, void *ptr, size_t size)
{
  if (!ptr)
    return arena_malloc(ctx, size);
  unsigned char *head = (unsigned char *)ptr - ARENA_ALIGN;
  size_t old;
  memcpy(&old, head, sizeof old);
  if (!in_arena(ptr)) {
    unsigned char *q = realloc(head, size + ARENA_ALIGN);
    if (!q)
      return NULL;
    memcpy(q, &size, sizeof size);
    return q + ARENA_ALIGN;
  }
  void *q = arena_malloc(ctx, size);
  if (q)
    memcpy(q, ptr, old < size ? old : size);
  return q;
}

static yajl_alloc_funcs arena_funcs = {arena_malloc, arena_realloc, arena_free, NULL};

yajl_alloc_funcs *pc__json_arena_acquire(void)
{
  if (arena_busy)
    return NULL;
  arena_busy = true;
  arena_used = 0;
  return &arena_funcs;
}

void pc__json_arena_release(yajl_alloc_funcs *funcs)
{
  if (funcs)
    arena_busy = false;
}

int pc_json_decode_text(lua_State *L, const char *text, size_t len)
{
  struct text tx = {text, len};
  struct decoder d = {.L = L};
  d.frames = d.inline_frames;
  d.cap = PC_ARRAY_SIZE(d.inline_frames);
  yajl_alloc_funcs *funcs = pc__json_arena_acquire();
  d.y = yajl_alloc(&callbacks, funcs, &d);
  if (!d.y) {
    pc__json_arena_release(funcs);
    return luaL_error(L, "not enough memory");
  }
  /* Bytes are passed on as they are, as lua-cjson did: a Latin-1 byte in a
   * string does not make a whole response unreadable. */
  yajl_config(d.y, yajl_dont_validate_strings, 1);
  lua_pushcfunction(L, decode_protected); /* fn */
  lua_pushlightuserdata(L, &d);           /* fn, d */
  lua_pushlightuserdata(L, &tx);          /* fn, d, text */
  int rc = lua_pcall(L, 2, 1, 0);         /* value or message */
  yajl_free(d.y);
  pc__json_arena_release(funcs);
  if (d.frames != d.inline_frames)
    free(d.frames);
  if (rc != LUA_OK)
    return lua_error(L);
  return 1;
}

void pc_json_mark_object(lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &OBJECT_MT_KEY); /* mt */
  lua_setmetatable(L, idx);
}

/* object(t) -> t, marked: an empty table encodes as {}. */
static int l_json_object(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  if (lua_getmetatable(L, 1)) {                         /* t, mt */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &OBJECT_MT_KEY); /* t, mt, object_mt */
    if (!lua_rawequal(L, -1, -2))
      return luaL_error(L, "pacer.json.object: the table already has a metatable");
    lua_settop(L, 1);
    return 1;
  }
  pc_json_mark_object(L, 1);
  return 1;
}

/* is_object(t) -> whether t carries the mark. */
static int l_json_is_object(lua_State *L)
{
  bool is = false;
  if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) { /* t, mt */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &OBJECT_MT_KEY);         /* t, mt, object_mt */
    is = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, is);
  return 1;
}

int pc_json_open(lua_State *L)
{
  /* The mark: protected, so that no plugin can give every empty object an
   * __index of its own (getmetatable(t) answers "json object"). */
  lua_createtable(L, 0, 1);                          /* mt */
  lua_pushliteral(L, "json object");                 /* mt, name */
  lua_setfield(L, -2, "__metatable");                /* mt */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &OBJECT_MT_KEY); /* */
  static const luaL_Reg fns[] = {
      {"decode", pc_json_decode}, {"object", l_json_object}, {"is_object", l_json_is_object}, {NULL, NULL}};
  luaL_newlib(L, fns);          /* json */
  lua_pushlightuserdata(L, NULL); /* json, null */
  lua_setfield(L, -2, "null");    /* json */
  return 1;
}

/* ------------------------------------------------------------ encoding */

/* A string that is valid UTF-8 throughout (NUL included): pc_json_quote
 * would change anything else. */
static bool utf8_exact(const char *s, size_t len)
{
  const unsigned char *p = (const unsigned char *)s;
  for (size_t i = 0; i < len;) {
    uint32_t cp;
    size_t n = pc_utf8_decode(p + i, len - i, &cp);
    if (n == 0)
      return false;
    i += n;
  }
  return true;
}

/* A JSON string literal of len bytes of valid UTF-8 (NUL included). */
static void quote_exact(struct pc_buf *out, const char *s, size_t len)
{
  pc_buf_puts(out, "\"");
  size_t from = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\')
      continue;
    pc_buf_append(out, s + from, i - from);
    if (c == '"' || c == '\\')
      pc_buf_printf(out, "\\%c", c);
    else
      pc_buf_printf(out, "\\u%04x", c);
    from = i + 1;
  }
  pc_buf_append(out, s + from, len - from);
  pc_buf_puts(out, "\"");
}

static int encode_value(lua_State *L, int idx, struct pc_buf *out, int depth);

/* get(t, k) -> t[k], metamethods included (under lua_pcall). */
static int get_field(lua_State *L)
{
  lua_gettable(L, 1);
  return 1;
}

static int encode_table(lua_State *L, int idx, struct pc_buf *out, int depth)
{
  if (depth > PC_JSON_MAX_DEPTH)
    return -1;
  bool marked = false, lazy = false;
  if (lua_getmetatable(L, idx)) {                        /* mt */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &OBJECT_MT_KEY); /* mt, object_mt */
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    /* A metatable that says how its table's raw contents encode: as an
     * object (the HTTP result's case-insensitive headers: __json =
     * "object"), or as plain data (the shared read-only empty `outputs`:
     * __json = "array", an empty table, as a table of its own encoded). */
    bool plain = false;
    if (!marked && luaL_getmetafield(L, idx, "__json") != LUA_TNIL) { /* __json */
      const char *how = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
      marked = strcmp(how, "object") == 0;
      plain = strcmp(how, "array") == 0;
      lua_pop(L, 1);
      if (!marked && !plain)
        return -1;
    }
    if (!marked && !plain) {
      /* A table with fields built on first use (an HTTP result): its
       * __pairs builds those pairs() lists, __fields names those it does
       * not (read through __index). Any other metatable: a proxy, or a
       * plugin's object, is not plain data. */
      if (luaL_getmetafield(L, idx, "__pairs") == LUA_TNIL)
        return -1;
      lua_pushvalue(L, idx);
      if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        return -1;
      }
      lazy = true;
    }
  }
  /* Which shape: count the keys, and see whether they are 1..n. */
  size_t nkeys = 0;
  bool strings = true, ints = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* k, v */
    lua_pop(L, 1);
    nkeys++;
    if (lua_type(L, -1) != LUA_TSTRING)
      strings = false;
    if (!lua_isinteger(L, -1))
      ints = false;
  }
  lua_Unsigned n = lua_rawlen(L, idx);
  if (nkeys == 0 && !lazy) {
    pc_buf_puts(out, marked ? "{}" : "[]");
    return 0;
  }
  if (ints && n == nkeys && !marked && !lazy) {
    pc_buf_puts(out, "[");
    for (lua_Unsigned i = 1; i <= n; i++) {
      if (i > 1)
        pc_buf_puts(out, ",");
      lua_rawgeti(L, idx, (lua_Integer)i);
      int rc = encode_value(L, lua_gettop(L), out, depth + 1);
      lua_pop(L, 1);
      if (rc != 0)
        return -1;
    }
    pc_buf_puts(out, "]");
    return 0;
  }
  if (!strings)
    return -1;
  pc_buf_puts(out, "{");
  bool first = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* k, v */
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen);
    if (!utf8_exact(k, klen)) {
      lua_pop(L, 2);
      return -1;
    }
    if (!first)
      pc_buf_puts(out, ",");
    first = false;
    quote_exact(out, k, klen);
    pc_buf_puts(out, ":");
    if (encode_value(L, lua_gettop(L), out, depth + 1) != 0) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1); /* k */
  }
  int ft = lazy ? luaL_getmetafield(L, idx, "__fields") : LUA_TNIL; /* [fields] */
  if (ft == LUA_TTABLE) {
    int fields = lua_gettop(L);
    for (lua_Integer i = 1; lua_rawgeti(L, fields, i) == LUA_TSTRING; i++) { /* fields, name */
      lua_pushvalue(L, -1);
      bool absent = lua_rawget(L, idx) == LUA_TNIL; /* fields, name, raw */
      lua_pop(L, 1);
      if (!absent) {
        lua_pop(L, 1);
        continue;
      }
      /* Read through __index, which may raise (a body that is not JSON):
       * then the field is left out, as pairs() leaves it out. */
      lua_pushcfunction(L, get_field); /* fields, name, get */
      lua_pushvalue(L, idx);
      lua_pushvalue(L, -3);
      if (lua_pcall(L, 2, 1, 0) != LUA_OK || lua_isnil(L, -1)) {
        lua_pop(L, 2); /* fields */
        continue;
      }
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen);
      if (!first)
        pc_buf_puts(out, ",");
      first = false;
      quote_exact(out, k, klen);
      pc_buf_puts(out, ":");
      int rc = encode_value(L, lua_gettop(L), out, depth + 1);
      lua_pop(L, 2); /* fields */
      if (rc != 0)
        return -1; /* pc_json_encode_exact restores the stack */
    }
    lua_pop(L, 1); /* fields (the value that ended the list) */
  }
  if (ft != LUA_TNIL)
    lua_pop(L, 1); /* fields */
  pc_buf_puts(out, "}");
  return 0;
}

static int encode_value(lua_State *L, int idx, struct pc_buf *out, int depth)
{
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    pc_buf_puts(out, "null");
    return 0;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) != NULL)
      return -1;
    pc_buf_puts(out, "null");
    return 0;
  case LUA_TBOOLEAN:
    pc_buf_puts(out, lua_toboolean(L, idx) ? "true" : "false");
    return 0;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      pc_buf_printf(out, "%lld", (long long)lua_tointeger(L, idx));
    } else {
      double v = lua_tonumber(L, idx);
      if (!isfinite(v))
        return -1;
      char num[40];
      snprintf(num, sizeof num, "%.17g", v);
      pc_buf_puts(out, num);
      if (!strpbrk(num, ".eE"))
        pc_buf_puts(out, ".0");
    }
    return 0;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (!utf8_exact(s, len))
      return -1;
    quote_exact(out, s, len);
    return 0;
  }
  case LUA_TTABLE:
    if (!lua_checkstack(L, 4))
      return -1;
    return encode_table(L, idx, out, depth);
  default:
    return -1;
  }
}

int pc_json_encode_exact(lua_State *L, int idx, struct pc_buf *out)
{
  int top = lua_gettop(L);
  int rc = encode_value(L, lua_absindex(L, idx), out, 0);
  lua_settop(L, top); /* a failure may leave values on the stack */
  return rc;
}
