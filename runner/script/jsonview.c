/* jsonview.c: JSON text decoded into a read-only view instead of Lua
 * tables, for reads that cannot keep what they read: `result.json` while
 * expect.that, until and fail_if are evaluated with the shared `result`
 * view (expr.c, pc_lua_scope_bind_view; http/result.c asks
 * pc_lua_json_views). There a document is decoded to be read once and
 * thrown away, and building it as Lua tables (a table per container, a
 * string per key and value, the collector's work to free them) and then
 * wrapping it in read-only proxies cost about two thirds of what
 * `expect.that` added to a request (issue 16, docs/BENCHMARKS.md, w13).
 *
 * The same yajl parser builds a compact tree in one block instead (struct
 * jdoc: nodes, the child lists, the strings), which becomes one userdata;
 * a view is a small userdata naming a node of it (struct jref; the block
 * is its user value, so any view keeps its document alive). Reading a view
 * answers as a read-only proxy of the decoded tables would: `v.key`,
 * `v[i]`, `#v`, pairs() and ipairs(), JSON null as nil, writes refused
 * with "attempt to modify a read-only value", two views of the same node
 * equal, getmetatable() "read-only". Only the values read are made into
 * Lua values. Where a real table is needed (the helpers of SPEC section 4,
 * JSON encoding, a value handed back from an expression), lua/prelude.lua's
 * unwrap() asks for the node as tables (to_table, below), exactly what the
 * table decoder (json.c) would have made of the same text. */
#include "script/json.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <yajl/yajl_parse.h>

#include "base/util.h"
#include "script/json_int.h"

enum { JV_NULL, JV_FALSE, JV_TRUE, JV_INT, JV_FLOAT, JV_STR, JV_ARR, JV_OBJ };

struct jnode {
  uint8_t kind;
  uint32_t key_off, key_len; /* a member's key, in the strings */
  union {
    lua_Integer i;
    double d;
    struct {
      uint32_t off, len; /* in the strings */
    } s;
    struct {
      uint32_t first, count; /* in the child lists */
    } c;
  } v;
};

/* A view: a node of a document, which is its user value 1 (the document
 * itself for the view of its top container, which is the document). */
struct jref {
  struct jdoc *doc;
  uint32_t node;
};

/* One decoded document, one block: the view of its top container, then
 * nnodes nodes, nkids child indices (each container's children in order,
 * first..first+count), then the strings. */
struct jdoc {
  struct jref self;
  uint32_t nnodes, nkids;
  struct jnode nodes[];
};

static uint32_t *kids_of(struct jdoc *d)
{
  return (uint32_t *)(void *)(d->nodes + d->nnodes);
}

static const char *strs_of(struct jdoc *d)
{
  return (const char *)(kids_of(d) + d->nkids);
}

/* Registry key of the views' metatable. */
static const char VIEW_MT_KEY = 'v';

/* ------------------------------------------------------------ building */

/* A growable array that starts in storage of the builder's own (on the C
 * stack: small documents need no malloc) and moves to the heap when it
 * outgrows it. */
struct vec {
  void *p;
  size_t n, cap, size;
  void *inline_p;
};

static bool vec_grow(struct vec *v, size_t more)
{
  size_t cap = v->cap * 2;
  while (cap < v->n + more)
    cap *= 2;
  if (cap > UINT32_MAX)
    return false;
  void *p = v->p == v->inline_p ? malloc(cap * v->size) : realloc(v->p, cap * v->size);
  if (!p)
    return false;
  if (v->p == v->inline_p)
    memcpy(p, v->p, v->n * v->size);
  v->p = p;
  v->cap = cap;
  return true;
}

static inline bool vec_room(struct vec *v, size_t more)
{
  return v->n + more <= v->cap || vec_grow(v, more);
}

static void vec_free(struct vec *v)
{
  if (v->p != v->inline_p)
    free(v->p);
}

struct open {
  uint32_t node, mark; /* the container, and where its children start on `done` */
};

struct builder {
  struct vec nodes; /* struct jnode */
  struct vec kids;  /* uint32_t: the child lists, as containers close */
  struct vec done;  /* uint32_t: values complete, waiting for their container to close */
  struct vec strs;  /* char */
  struct vec open;  /* struct open */
  uint32_t key_off, key_len;
  bool too_deep, no_memory;
};

/* Appends a node of `kind` (with the waiting key when inside an object);
 * its index, or -1 when out of memory. */
static int64_t add_node(struct builder *b, uint8_t kind)
{
  if (!vec_room(&b->nodes, 1)) {
    b->no_memory = true;
    return -1;
  }
  uint32_t at = (uint32_t)b->nodes.n++;
  struct jnode *n = (struct jnode *)b->nodes.p + at;
  memset(n, 0, sizeof *n);
  n->kind = kind;
  if (b->open.n && ((struct jnode *)b->nodes.p)[((struct open *)b->open.p)[b->open.n - 1].node]
                           .kind == JV_OBJ) {
    n->key_off = b->key_off;
    n->key_len = b->key_len;
  }
  return at;
}

/* The value at `at` is complete: it waits for its container to close. */
static int finish(struct builder *b, uint32_t at)
{
  if (!vec_room(&b->done, 1)) {
    b->no_memory = true;
    return 0;
  }
  ((uint32_t *)b->done.p)[b->done.n++] = at;
  return 1;
}

static int scalar(struct builder *b, uint8_t kind)
{
  int64_t at = add_node(b, kind);
  return at < 0 ? 0 : finish(b, (uint32_t)at);
}

static int b_null(void *ud)
{
  return scalar(ud, JV_NULL);
}

static int b_boolean(void *ud, int v)
{
  return scalar(ud, v ? JV_TRUE : JV_FALSE);
}

static int b_number(void *ud, const char *s, size_t len)
{
  struct builder *b = ud;
  lua_Integer i;
  double d;
  bool is_int = pc__json_number(s, len, &i, &d);
  int64_t at = add_node(b, is_int ? JV_INT : JV_FLOAT);
  if (at < 0)
    return 0;
  struct jnode *n = (struct jnode *)b->nodes.p + at;
  if (is_int)
    n->v.i = i;
  else
    n->v.d = d;
  return finish(b, (uint32_t)at);
}

/* Copies len bytes into the strings; their offset, or -1. */
static int64_t add_text(struct builder *b, const unsigned char *s, size_t len)
{
  if (len > UINT32_MAX || !vec_room(&b->strs, len)) {
    b->no_memory = true;
    return -1;
  }
  uint32_t off = (uint32_t)b->strs.n;
  memcpy((char *)b->strs.p + off, s, len);
  b->strs.n += len;
  return off;
}

static int b_string(void *ud, const unsigned char *s, size_t len)
{
  struct builder *b = ud;
  int64_t off = add_text(b, s, len);
  int64_t at = off < 0 ? -1 : add_node(b, JV_STR);
  if (at < 0)
    return 0;
  struct jnode *n = (struct jnode *)b->nodes.p + at;
  n->v.s.off = (uint32_t)off;
  n->v.s.len = (uint32_t)len;
  return finish(b, (uint32_t)at);
}

static int b_key(void *ud, const unsigned char *s, size_t len)
{
  struct builder *b = ud;
  int64_t off = add_text(b, s, len);
  if (off < 0)
    return 0;
  b->key_off = (uint32_t)off;
  b->key_len = (uint32_t)len;
  return 1;
}

static int b_open(struct builder *b, uint8_t kind)
{
  if (b->open.n >= PC_JSON_MAX_DEPTH) {
    b->too_deep = true;
    return 0;
  }
  int64_t at = add_node(b, kind);
  if (at < 0)
    return 0;
  if (!vec_room(&b->open, 1)) {
    b->no_memory = true;
    return 0;
  }
  ((struct open *)b->open.p)[b->open.n++] = (struct open){(uint32_t)at, (uint32_t)b->done.n};
  return 1;
}

static int b_start_map(void *ud)
{
  return b_open(ud, JV_OBJ);
}

static int b_start_array(void *ud)
{
  return b_open(ud, JV_ARR);
}

/* The innermost container closes: its children move from `done` to the
 * child lists, and it is done itself. */
static int b_end(void *ud)
{
  struct builder *b = ud;
  struct open o = ((struct open *)b->open.p)[--b->open.n];
  size_t count = b->done.n - o.mark;
  if (!vec_room(&b->kids, count)) {
    b->no_memory = true;
    return 0;
  }
  struct jnode *n = (struct jnode *)b->nodes.p + o.node;
  n->v.c.first = (uint32_t)b->kids.n;
  n->v.c.count = (uint32_t)count;
  memcpy((uint32_t *)b->kids.p + b->kids.n, (uint32_t *)b->done.p + o.mark,
         count * sizeof(uint32_t));
  b->kids.n += count;
  b->done.n = o.mark;
  return finish(b, o.node);
}

static const yajl_callbacks view_callbacks = {
    .yajl_null = b_null,
    .yajl_boolean = b_boolean,
    .yajl_number = b_number,
    .yajl_string = b_string,
    .yajl_start_map = b_start_map,
    .yajl_map_key = b_key,
    .yajl_end_map = b_end,
    .yajl_start_array = b_start_array,
    .yajl_end_array = b_end,
};

/* ------------------------------------------------------------ reading */

static void push_view(lua_State *L, int holder, struct jdoc *doc, uint32_t at);

/* Pushes a node that is not a container (JSON null as nil, or as the
 * light userdata NULL that tables hold); false for a container. */
static bool push_scalar(lua_State *L, const struct jnode *n, const char *strs, bool null_is_nil)
{
  switch (n->kind) {
  case JV_NULL:
    if (null_is_nil)
      lua_pushnil(L);
    else
      lua_pushlightuserdata(L, NULL);
    return true;
  case JV_FALSE:
  case JV_TRUE:
    lua_pushboolean(L, n->kind == JV_TRUE);
    return true;
  case JV_INT:
    lua_pushinteger(L, n->v.i);
    return true;
  case JV_FLOAT:
    lua_pushnumber(L, n->v.d);
    return true;
  case JV_STR:
    lua_pushlstring(L, strs + n->v.s.off, n->v.s.len);
    return true;
  default:
    return false;
  }
}

/* Pushes node `at` of doc as a value: a container as a view (`holder` is
 * a view of the same document). */
static void push_value(lua_State *L, int holder, struct jdoc *doc, uint32_t at, bool null_is_nil)
{
  if (!push_scalar(L, &doc->nodes[at], strs_of(doc), null_is_nil))
    push_view(L, holder, doc, at);
}

/* A new view of node `at` of doc; `holder` is a view of the same document. */
static void push_view(lua_State *L, int holder, struct jdoc *doc, uint32_t at)
{
  holder = lua_absindex(L, holder);
  struct jref *r = lua_newuserdatauv(L, sizeof *r, 1); /* view */
  r->doc = doc;
  r->node = at;
  if (lua_getiuservalue(L, holder, 1) != LUA_TUSERDATA) { /* view, doc or nil */
    lua_pop(L, 1);
    lua_pushvalue(L, holder);                          /* view, doc (the holder) */
  }
  lua_setiuservalue(L, -2, 1);                         /* view */
  lua_rawgetp(L, LUA_REGISTRYINDEX, &VIEW_MT_KEY);     /* view, mt */
  lua_setmetatable(L, -2);                             /* view */
}

/* The view at idx, or NULL if the value is not one. */
static struct jref *to_view(lua_State *L, int idx)
{
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
    return NULL;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &VIEW_MT_KEY);
  bool is = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return is ? lua_touserdata(L, idx) : NULL;
}

/* Objects of more than this many members are searched through a key map
 * (below) rather than member by member. */
#define SMALL_OBJECT 16

/* Pushes the document userdata of the view at idx (the top container's
 * view is the document; another view has it as user value 1). */
static void push_doc(lua_State *L, int idx)
{
  if (lua_getiuservalue(L, idx, 1) != LUA_TUSERDATA) {
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
  }
}

/* Pushes the key map of object node `node` (key -> child node index, the
 * last of duplicate keys, as a table keeps the last): made on first use
 * and kept in the document's user value (node -> map), so that reading
 * every member of a large object costs one pass, not one pass a member. */
static void push_key_map(lua_State *L, int view, struct jdoc *doc, uint32_t node)
{
  view = lua_absindex(L, view);
  push_doc(L, view);                               /* doc */
  if (lua_getiuservalue(L, -1, 1) != LUA_TTABLE) { /* doc, maps or nil */
    lua_pop(L, 1);
    lua_newtable(L);                               /* doc, maps */
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, -3, 1);                   /* doc, maps */
  }
  if (lua_rawgeti(L, -1, node) != LUA_TTABLE) {    /* doc, maps, map or nil */
    lua_pop(L, 1);
    const struct jnode *n = &doc->nodes[node];
    const uint32_t *kids = kids_of(doc) + n->v.c.first;
    lua_createtable(L, 0, (int)n->v.c.count);      /* doc, maps, map */
    for (uint32_t i = 0; i < n->v.c.count; i++) {
      const struct jnode *m = &doc->nodes[kids[i]];
      lua_pushlstring(L, strs_of(doc) + m->key_off, m->key_len);
      lua_pushinteger(L, kids[i]);
      lua_rawset(L, -3);
    }
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, node);                      /* doc, maps, map */
  }
  lua_replace(L, -3);                              /* map, maps */
  lua_pop(L, 1);                                   /* map */
}

/* The child of the object the view at 1 stands for (node n) named by the
 * key at 2 (the last one so named, as a table keeps the last), or -1. */
static int64_t member(lua_State *L, struct jdoc *doc, uint32_t node)
{
  const struct jnode *n = &doc->nodes[node];
  if (n->v.c.count > SMALL_OBJECT) {
    push_key_map(L, 1, doc, node);       /* map */
    lua_pushvalue(L, 2);
    int isnum = 0;
    lua_Integer at = lua_rawget(L, -2) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : -1;
    lua_pop(L, 2);
    return isnum ? at : -1;
  }
  size_t klen;
  const char *k = lua_tolstring(L, 2, &klen);
  const uint32_t *kids = kids_of(doc) + n->v.c.first;
  const char *strs = strs_of(doc);
  for (uint32_t i = n->v.c.count; i-- > 0;) {
    const struct jnode *m = &doc->nodes[kids[i]];
    if (m->key_len == klen && memcmp(strs + m->key_off, k, klen) == 0)
      return kids[i];
  }
  return -1;
}

/* __index (view, key) */
static int view_index(lua_State *L)
{
  struct jref *r = lua_touserdata(L, 1);
  const struct jnode *n = &r->doc->nodes[r->node];
  int64_t at = -1;
  if (n->kind == JV_OBJ && lua_type(L, 2) == LUA_TSTRING) {
    at = member(L, r->doc, r->node);
  } else if (n->kind == JV_ARR) {
    int isnum = 0;
    lua_Integer i = lua_tointegerx(L, 2, &isnum);
    if (isnum && i >= 1 && (lua_Unsigned)i <= n->v.c.count && lua_type(L, 2) == LUA_TNUMBER)
      at = kids_of(r->doc)[n->v.c.first + (uint32_t)(i - 1)];
  }
  if (at < 0)
    return 0;
  push_value(L, 1, r->doc, (uint32_t)at, true);
  return 1;
}

/* __len (view): a list's length; an object has none (0, as # of a table
 * with string keys only). */
static int view_len(lua_State *L)
{
  struct jref *r = lua_touserdata(L, 1);
  const struct jnode *n = &r->doc->nodes[r->node];
  lua_pushinteger(L, n->kind == JV_ARR ? (lua_Integer)n->v.c.count : 0);
  return 1;
}

/* Whether the member at position i of the object the view at 1 stands
 * for is followed by one with the same key (the table the view stands for
 * keeps only the last). */
static bool shadowed(lua_State *L, struct jdoc *doc, uint32_t node, uint32_t i)
{
  const struct jnode *n = &doc->nodes[node];
  const uint32_t *kids = kids_of(doc) + n->v.c.first;
  const struct jnode *m = &doc->nodes[kids[i]];
  const char *strs = strs_of(doc);
  if (n->v.c.count > SMALL_OBJECT) {
    push_key_map(L, 1, doc, node);                        /* map */
    lua_pushlstring(L, strs + m->key_off, m->key_len);
    bool last = lua_rawget(L, -2) == LUA_TNUMBER && lua_tointeger(L, -1) == kids[i];
    lua_pop(L, 2);
    return !last;
  }
  for (uint32_t j = i + 1; j < n->v.c.count; j++) {
    const struct jnode *o = &doc->nodes[kids[j]];
    if (o->key_len == m->key_len && memcmp(strs + o->key_off, strs + m->key_off, m->key_len) == 0)
      return true;
  }
  return false;
}

/* The iterator of __pairs (view, key): upvalue 1 is the position reached. */
static int view_next(lua_State *L)
{
  struct jref *r = lua_touserdata(L, 1);
  const struct jnode *n = &r->doc->nodes[r->node];
  lua_Integer pos = lua_tointeger(L, lua_upvalueindex(1));
  uint32_t count = n->kind == JV_ARR || n->kind == JV_OBJ ? n->v.c.count : 0;
  while ((lua_Unsigned)pos < count && n->kind == JV_OBJ &&
         shadowed(L, r->doc, r->node, (uint32_t)pos))
    pos++;
  if ((lua_Unsigned)pos >= count)
    return 0;
  lua_pushinteger(L, pos + 1);
  lua_replace(L, lua_upvalueindex(1));
  uint32_t at = kids_of(r->doc)[n->v.c.first + (uint32_t)pos];
  if (n->kind == JV_ARR) {
    lua_pushinteger(L, pos + 1);
  } else {
    const struct jnode *m = &r->doc->nodes[at];
    lua_pushlstring(L, strs_of(r->doc) + m->key_off, m->key_len);
  }
  push_value(L, 1, r->doc, at, true);
  return 2;
}

/* __pairs (view) -> next, view, nil */
static int view_pairs(lua_State *L)
{
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, view_next, 1);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* __newindex: the words of the read-only proxies (lua/prelude.lua). */
static int view_newindex(lua_State *L)
{
  luaL_where(L, 2);
  lua_pushliteral(L, "attempt to modify a read-only value");
  lua_concat(L, 2);
  return lua_error(L);
}

/* __eq (a, b): views of the same node. */
static int view_eq(lua_State *L)
{
  struct jref *a = to_view(L, 1), *b = to_view(L, 2);
  lua_pushboolean(L, a && b && a->doc == b->doc && a->node == b->node);
  return 1;
}

/* __tostring: as a table's (a proxy's) prints. */
static int view_tostring(lua_State *L)
{
  lua_pushfstring(L, "table: %p", lua_topointer(L, 1));
  return 1;
}

/* Pushes node `at` as the tables json.c would have decoded it to. */
static void push_tables(lua_State *L, struct jdoc *doc, uint32_t at)
{
  const struct jnode *n = &doc->nodes[at];
  if (n->kind != JV_ARR && n->kind != JV_OBJ) {
    push_value(L, 0, doc, at, false);
    return;
  }
  luaL_checkstack(L, 3, "JSON nested too deep");
  const uint32_t *kids = kids_of(doc) + n->v.c.first;
  if (n->kind == JV_ARR) {
    lua_createtable(L, (int)n->v.c.count, 0);
    for (uint32_t i = 0; i < n->v.c.count; i++) {
      push_tables(L, doc, kids[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return;
  }
  lua_createtable(L, 0, (int)n->v.c.count);
  for (uint32_t i = 0; i < n->v.c.count; i++) {
    const struct jnode *m = &doc->nodes[kids[i]];
    lua_pushlstring(L, strs_of(doc) + m->key_off, m->key_len);
    push_tables(L, doc, kids[i]);
    lua_rawset(L, -3);
  }
  if (n->v.c.count == 0)
    pc_json_mark_object(L, -1);
}

/* to_table(v): the tables a view stands for (made anew on each call); any
 * other value as it is. */
static int l_to_table(lua_State *L)
{
  lua_settop(L, 1);
  struct jref *r = to_view(L, 1);
  if (r)
    push_tables(L, r->doc, r->node);
  return 1;
}

/* is_view(v) */
static int l_is_view(lua_State *L)
{
  lua_pushboolean(L, to_view(L, 1) != NULL);
  return 1;
}

/* type(v): as Lua's, but "table" for a view (the expression sandbox's
 * `type`: a view stands for a table). */
static int l_type(lua_State *L)
{
  luaL_checkany(L, 1);
  lua_pushstring(L, to_view(L, 1) ? "table" : luaL_typename(L, 1));
  return 1;
}

int pc_json_view_open(lua_State *L)
{
  static const luaL_Reg mt[] = {
      {"__index", view_index}, {"__len", view_len},         {"__pairs", view_pairs},
      {"__newindex", view_newindex}, {"__eq", view_eq}, {"__tostring", view_tostring},
      {NULL, NULL}};
  lua_createtable(L, 0, 7);                          /* mt */
  luaL_setfuncs(L, mt, 0);
  lua_pushliteral(L, "read-only");
  lua_setfield(L, -2, "__metatable");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &VIEW_MT_KEY);   /* */
  static const luaL_Reg fns[] = {
      {"to_table", l_to_table}, {"is_view", l_is_view}, {"type", l_type}, {NULL, NULL}};
  luaL_newlib(L, fns);
  return 1;
}

/* ------------------------------------------------------------ decoding */

/* Copies what the builder made into a new document userdata (pushed). */
static struct jdoc *new_doc(lua_State *L, const struct builder *b)
{
  size_t size = sizeof(struct jdoc) + b->nodes.n * sizeof(struct jnode) +
                b->kids.n * sizeof(uint32_t) + b->strs.n;
  struct jdoc *doc = lua_newuserdatauv(L, size, 1); /* 1: key maps (push_key_map) */
  doc->self.doc = doc;
  doc->self.node = ((const uint32_t *)b->done.p)[0];
  doc->nnodes = (uint32_t)b->nodes.n;
  doc->nkids = (uint32_t)b->kids.n;
  memcpy(doc->nodes, b->nodes.p, b->nodes.n * sizeof(struct jnode));
  memcpy(kids_of(doc), b->kids.p, b->kids.n * sizeof(uint32_t));
  memcpy((char *)strs_of(doc), b->strs.p, b->strs.n);
  return doc;
}

/* (builder) -> the document's value: a scalar as json.c gives it, a
 * container as a view. Run under lua_pcall when the builder's arrays are
 * on the heap, so that running out of Lua memory cannot leak them. */
static int push_result(lua_State *L)
{
  const struct builder *b = lua_touserdata(L, -1);
  lua_pop(L, 1);
  uint32_t root = ((const uint32_t *)b->done.p)[0];
  const struct jnode *rn = (const struct jnode *)b->nodes.p + root;
  if (!push_scalar(L, rn, b->strs.p, false)) {
    new_doc(L, b); /* the view of the top container */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &VIEW_MT_KEY);
    lua_setmetatable(L, -2);
  }
  return 1;
}

static bool spilled(const struct builder *b)
{
  const struct vec *v[] = {&b->nodes, &b->kids, &b->done, &b->strs, &b->open};
  for (size_t i = 0; i < PC_ARRAY_SIZE(v); i++)
    if (v[i]->p != v[i]->inline_p)
      return true;
  return false;
}

static void builder_free(struct builder *b)
{
  vec_free(&b->nodes);
  vec_free(&b->kids);
  vec_free(&b->done);
  vec_free(&b->strs);
  vec_free(&b->open);
}

int pc_json_view_decode(lua_State *L, const char *text, size_t len, char *err, size_t size)
{
  struct jnode nodes[48];
  uint32_t kids[64], done[64];
  char strs[768];
  struct open open[16];
  struct builder b = {
      .nodes = {nodes, 0, PC_ARRAY_SIZE(nodes), sizeof nodes[0], nodes},
      .kids = {kids, 0, PC_ARRAY_SIZE(kids), sizeof kids[0], kids},
      .done = {done, 0, PC_ARRAY_SIZE(done), sizeof done[0], done},
      .strs = {strs, 0, sizeof strs, 1, strs},
      .open = {open, 0, PC_ARRAY_SIZE(open), sizeof open[0], open},
  };
  yajl_alloc_funcs *funcs = pc__json_arena_acquire();
  yajl_handle y = yajl_alloc(&view_callbacks, funcs, &b);
  if (!y) {
    pc__json_arena_release(funcs);
    snprintf(err, size, "not enough memory");
    return -1;
  }
  /* As json.c: bytes are passed on as they are. */
  yajl_config(y, yajl_dont_validate_strings, 1);
  char *msg = err;
  msg[0] = '\0';
  if (yajl_parse(y, (const unsigned char *)text, len) != yajl_status_ok) {
    if (b.no_memory)
      snprintf(msg, size, "not enough memory");
    else
      pc__json_parse_error(y, b.too_deep, text, len, false, msg, size);
  } else if (yajl_complete_parse(y) != yajl_status_ok) {
    if (b.no_memory)
      snprintf(msg, size, "not enough memory");
    else
      pc__json_parse_error(y, false, text, len, true, msg, size);
  } else if (b.done.n != 1) {
    snprintf(msg, size, "invalid JSON: the text is empty");
  }
  yajl_free(y);
  pc__json_arena_release(funcs);
  if (msg[0]) {
    builder_free(&b);
    return -1;
  }
  if (!spilled(&b)) {
    lua_pushlightuserdata(L, &b);
    push_result(L); /* nothing to free if this raises */
    return 0;
  }
  lua_pushcfunction(L, push_result);
  lua_pushlightuserdata(L, &b);
  int rc = lua_pcall(L, 1, 1, 0);
  builder_free(&b);
  if (rc != LUA_OK)
    return lua_error(L);
  return 0;
}
