/* host.c: the run's one lua_State and the machinery every entry into Lua
 * shares: creating the state (the safe libraries, the JSON module and the
 * embedded prelude, lua/prelude.lua), the allocator with its memory limit,
 * the guard (one count hook for CPU deadlines and the blocking report), the
 * door (pc_lua_call) and the description of error objects. Expressions and
 * templates are expr.c's, values as text or JSON value.c's. */
#include "script/host.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "script/internal.h"
#include "script/json.h"
#include "base/log.h"
#include "base/signal.h"
#include "base/util.h"

extern const struct pc_embedded pc_embedded_lua[];

/* Instructions between two looks at the clock by a guard's hook. */
#define GUARD_HOOK_COUNT 1000
/* Bound on describing an error object (its __tostring). */
#define DESCRIBE_LIMIT_MS 1000.0

/* ------------------------------------------------------ C helpers for Lua */

static int l_secret_getenv(lua_State *L)
{
  const char *name = luaL_checkstring(L, 1);
  const char *v = getenv(name);
  if (!v) {
    lua_pushnil(L);
    return 1;
  }
  pc_secret_add(v, strlen(v));
  pc_secret_name(name, v, strlen(v));
  lua_pushstring(L, v);
  return 1;
}

static int l_secret_mark(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  pc_secret_add(s, len);
  return 0;
}

/* Read-only proxies (lua/prelude.lua, "read-only proxies"), the two hot
 * functions in C: every `result.json.id` an expression reads goes through
 * them, and as Lua functions they were about a fifth of the price of
 * `expect.that` (issue 16). The tables are the prelude's: upvalue 1 maps a
 * target to its proxy (weak both ways), upvalue 2 a proxy to its target
 * (weak-keyed), upvalue 3 is the metatable every proxy shares. */

/* Replaces the value at the top by its proxy if it is a table that is not
 * one already (a cached proxy if the table has one). Upvalues as above. */
static void ro_wrap(lua_State *L)
{
  if (lua_type(L, -1) != LUA_TTABLE)
    return;
  lua_pushvalue(L, -1);                                   /* v, v */
  if (lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL) {   /* v, target */
    lua_pop(L, 1);                                        /* v: a proxy already */
    return;
  }
  lua_pop(L, 1);                                          /* v */
  lua_pushvalue(L, -1);                                   /* v, v */
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) {   /* v, proxy */
    lua_remove(L, -2);                                    /* proxy */
    return;
  }
  lua_pop(L, 1);                                          /* v */
  lua_createtable(L, 0, 0);                               /* v, p */
  lua_pushvalue(L, lua_upvalueindex(3));                  /* v, p, mt */
  lua_setmetatable(L, -2);                                /* v, p */
  lua_pushvalue(L, -2);                                   /* v, p, v */
  lua_pushvalue(L, -2);                                   /* v, p, v, p */
  lua_rawset(L, lua_upvalueindex(1));                     /* v, p */
  lua_pushvalue(L, -1);                                   /* v, p, p */
  lua_pushvalue(L, -3);                                   /* v, p, p, v */
  lua_rawset(L, lua_upvalueindex(2));                     /* v, p */
  lua_remove(L, -2);                                      /* p */
}

/* ro(v): the read-only view of v (itself unless a table). */
static int l_ro(lua_State *L)
{
  lua_settop(L, 1);
  ro_wrap(L);
  return 1;
}

/* The proxies' __index (p, k): the target's value (through the target's
 * own __index, as a result's lazy fields), JSON null as nil, a table as
 * its proxy. */
static int l_ro_index(lua_State *L)
{
  lua_settop(L, 2);
  lua_pushvalue(L, 1);                   /* p, k, p */
  lua_rawget(L, lua_upvalueindex(2));    /* p, k, target */
  lua_pushvalue(L, 2);                   /* p, k, target, k */
  int t = lua_gettable(L, -2);           /* p, k, target, v */
  if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL)
    return 0;
  ro_wrap(L);
  return 1;
}

/* make_ro(proxy_of, target_of, mt): ro and the proxies' __index, sharing
 * those tables (the prelude calls it once). */
static int l_make_ro(lua_State *L)
{
  lua_settop(L, 3);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_pushcclosure(L, l_ro, 3);       /* ..., ro */
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_pushcclosure(L, l_ro_index, 3); /* ..., ro, index */
  return 2;
}

/* ---------------------------------------------------------------- setup */

/* Registry key of the shared read-only empty table (prelude, empty_ro). */
static const char empty_ro_key = 'e';

const struct pc_embedded *pc__embedded(const char *name)
{
  for (const struct pc_embedded *e = pc_embedded_lua; e->name; e++)
    if (strcmp(e->name, name) == 0)
      return e;
  return NULL;
}

void pc__push_weak_keys(lua_State *L)
{
  lua_newtable(L);          /* t */
  lua_createtable(L, 0, 1); /* t, mt */
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);  /* t */
}

/* Runs inside lua_pcall so that an allocation failure (or a broken prelude)
 * raises instead of aborting. */
static int init_state(lua_State *L)
{
  struct pc_lua *h = lua_touserdata(L, 1);
  static const luaL_Reg libs[] = {
      {LUA_GNAME, luaopen_base},     {LUA_STRLIBNAME, luaopen_string},
      {LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
      {LUA_UTF8LIBNAME, luaopen_utf8}, {LUA_COLIBNAME, luaopen_coroutine},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(libs); i++) {
    luaL_requiref(L, libs[i].name, libs[i].func, 1);
    lua_pop(L, 1);
  }
  luaL_requiref(L, PC_JSON_MODULE, pc_json_open, 0); /* json */

  const struct pc_embedded *e = pc__embedded("prelude");
  if (!e)
    return luaL_error(L, "prelude.lua is not embedded");
  if (luaL_loadbuffer(L, e->data, e->len, "=prelude.lua") != LUA_OK) /* json, chunk */
    return lua_error(L);
  lua_pushvalue(L, -2);                  /* json, chunk, json */
  lua_pushcfunction(L, l_secret_getenv); /* ..., getenv_secret */
  lua_pushcfunction(L, l_secret_mark);   /* ..., mark_secret */
  lua_pushcfunction(L, l_misc_now);      /* ..., now */
  lua_pushcfunction(L, l_make_ro);       /* ..., make_ro */
  pc__codec_push(L);                     /* ..., codec */
  pc_json_view_open(L);                  /* ..., jview */
  lua_call(L, 7, 1);                     /* json, P */
  lua_getfield(L, -1, "ro");                        /* json, P, ro */
  h->ro_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "unwrap");
  h->unwrap_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "to_text");
  h->to_text_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "empty_ro");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &empty_ro_key);
  lua_getfield(L, -1, "result_view");
  h->view_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "no_target");
  h->no_target_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "target_of");
  h->target_of_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "instance_mt");
  h->instance_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "item");
  h->key_item_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "index");
  h->key_index_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushliteral(L, "result");
  h->key_result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->prelude_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* json */
  lua_pop(L, 1);
  pc__push_weak_keys(L);                /* set */
  h->plugin_mts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* The state's allocator. It counts every byte and, while `enforce` is set
 * (inside guards: plugin and inline Lua code running), refuses to grow past
 * the limit: Lua then collects garbage and retries, and if that does not
 * help raises "not enough memory" in the coroutine that asked, which fails
 * that step. Outside plugin code (the engine building results, expression
 * helpers) the limit does not apply, so an allocation the engine makes
 * unprotected can only fail when malloc itself does. Shrinking never fails,
 * as Lua requires. */
static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  struct pc_lua *h = ud;
  size_t old = ptr ? osize : 0; /* without ptr, osize encodes a type */
  if (nsize == 0) {
    free(ptr);
    h->used -= old;
    return NULL;
  }
  if (nsize > old && (h->enforce || h->cap) &&
      h->used - old + nsize > (h->enforce ? h->limit : h->cap)) {
    h->refused = PC__REFUSED_LIMIT;
    return NULL;
  }
  void *p = realloc(ptr, nsize);
  if (!p && !h->enforce && pc_mem_release()) {
    /* The engine's own allocation, unprotected: give back the reserve
     * rather than let Lua panic. Guarded code gets NULL instead: Lua
     * collects garbage, retries, and raises "not enough memory" there. */
    h->reserve_spent = true;
    p = realloc(ptr, nsize);
  }
  if (!p) {
    h->refused = PC__REFUSED_SYSTEM;
    return NULL;
  }
  h->used = h->used - old + nsize;
  return p;
}

static int host_panic(lua_State *L)
{
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "pacer: unprotected error in Lua: %s\n", msg ? msg : "(not a string)");
  return 0; /* abort() follows */
}

void pc_lua_set_memory_limit(struct pc_lua *h, size_t bytes)
{
  h->limit = bytes;
  if (h->cap && h->cap < h->limit)
    h->limit = h->cap;
}

void pc_lua_set_memory_cap(struct pc_lua *h, size_t bytes)
{
  h->cap = bytes;
  if (h->cap && h->limit > h->cap)
    h->limit = h->cap;
}

size_t pc_lua_memory_limit(const struct pc_lua *h)
{
  return h->limit;
}

size_t pc_lua_memory_used(const struct pc_lua *h)
{
  return h->used;
}

bool pc_lua_memory_enforce(struct pc_lua *h, bool on)
{
  bool was = h->enforce;
  h->enforce = on;
  return was;
}

char *pc_lua_memory_error(struct pc_lua *h)
{
  if (h->refused == PC__REFUSED_SYSTEM)
    return pc_asprintf("out of memory: the system refused an allocation (Lua held %zu MiB; "
                       "see ulimit -v)", h->used >> 20);
  return pc_asprintf("Lua memory limit of %zu MiB exceeded (set it with --lua-memory MB or "
                     "PACER_LUA_MEMORY)", h->limit >> 20);
}

void pc_lua_memory_recover(struct pc_lua *h)
{
  if (h->reserve_spent && pc_mem_reserve())
    h->reserve_spent = false;
}

struct pc_lua *pc_lua_new(void)
{
  struct pc_lua *h = pc_xcalloc(1, sizeof *h);
  h->limit = PC_LUA_MEMORY_DEFAULT;
  h->reserve_spent = !pc_mem_reserve();
  h->plugin_mts_ref = LUA_NOREF;
  h->module_ref = LUA_NOREF;
  h->finq_ref = LUA_NOREF;
  h->sentinels_ref = LUA_NOREF;
  h->L = lua_newstate(host_alloc, h);
  if (h->L) {
    lua_atpanic(h->L, host_panic);
    /* Every thread copies the main thread's extra space; coro.c keeps a
     * pointer there (NULL: not a pacer coroutine). Lua leaves it as is. */
    memset(lua_getextraspace(h->L), 0, LUA_EXTRASPACE);
  }
  if (!h->L) {
    fprintf(stderr, "pacer: cannot create the Lua state (out of memory)\n");
    free(h);
    return NULL;
  }
  lua_pushcfunction(h->L, init_state);
  lua_pushlightuserdata(h->L, h);
  if (lua_pcall(h->L, 1, 0, 0) != LUA_OK) {
    fprintf(stderr, "pacer: cannot initialise Lua: %s\n", lua_tostring(h->L, -1));
    lua_close(h->L);
    free(h);
    return NULL;
  }
  return h;
}

void pc_lua_free(struct pc_lua *h)
{
  if (!h)
    return;
  lua_close(h->L);
  free(h);
  pc_mem_release();
}

lua_State *pc_lua_state(struct pc_lua *h)
{
  return h->L;
}

void pc_lua_unref(struct pc_lua *h, int ref)
{
  luaL_unref(h->L, LUA_REGISTRYINDEX, ref);
}

bool pc_lua_json_views(lua_State *L)
{
  return pc__host(L)->view_bound;
}

void pc_lua_note_plugin_value(struct pc_lua *h)
{
  h->plugin_values = true;
}

void pc_lua_push_empty_ro(lua_State *L)
{
  lua_rawgetp(L, LUA_REGISTRYINDEX, &empty_ro_key);
}

bool pc_lua_is_empty_ro(lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &empty_ro_key);
  bool same = lua_rawequal(L, idx, -1);
  lua_pop(L, 1);
  return same;
}

/* ------------------------------------------------ results' common fields */

const char pc_result_common_key = 'c';

struct pc_result_common *pc_lua_result_common(lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  if (!lua_getmetatable(L, idx)) /* raw: __metatable does not hide it */
    return NULL;
  struct pc_result_common *c = NULL;
  if (lua_rawgetp(L, -1, &pc_result_common_key) == LUA_TTABLE) { /* mt, records */
    lua_pushvalue(L, idx);
    if (lua_rawget(L, -2) == LUA_TUSERDATA) /* mt, records, record */
      c = lua_touserdata(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 2);
  return c; /* the result keeps it alive */
}

bool pc_lua_result_common_push(lua_State *L, const struct pc_result_common *c, const char *k)
{
  if (!c->outcome)
    return false;
  switch (k[0]) {
  case 'o':
    if (strcmp(k, "outcome") == 0) {
      lua_pushstring(L, c->outcome);
      return true;
    }
    if (strcmp(k, "outputs") == 0) {
      pc_lua_push_empty_ro(L);
      return true;
    }
    return false;
  case 'a':
    if (c->attempts >= 0 && strcmp(k, "attempts") == 0) {
      lua_pushinteger(L, c->attempts);
      return true;
    }
    return false;
  case 's':
    if (c->started_at >= 0 && strcmp(k, "started_at") == 0) {
      char ts[40];
      pc_format_iso8601(c->started_at, ts, sizeof ts);
      lua_pushstring(L, ts);
      return true;
    }
    return false;
  case 'd':
    if (c->started_at >= 0 && strcmp(k, "duration_ms") == 0) {
      lua_pushinteger(L, c->duration_ms);
      return true;
    }
    return false;
  case 'q':
    if (c->started_at >= 0 && c->queued_ms >= 0 && strcmp(k, "queued_ms") == 0) {
      lua_pushinteger(L, c->queued_ms);
      return true;
    }
    return false;
  default:
    return false;
  }
}

void pc_lua_result_common_build(lua_State *L, int t, const struct pc_result_common *c)
{
  static const char *const names[] = {"outcome", "attempts", "started_at", "duration_ms",
                                      "queued_ms", "outputs"};
  t = lua_absindex(L, t);
  for (size_t i = 0; i < PC_ARRAY_SIZE(names); i++) {
    lua_pushstring(L, names[i]); /* k */
    if (lua_rawget(L, t) != LUA_TNIL || !pc_lua_result_common_push(L, c, names[i])) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushstring(L, names[i]); /* v, k */
    lua_insert(L, -2);           /* k, v */
    lua_rawset(L, t);
  }
}

void pc_lua_push_prelude(struct pc_lua *h, const char *name)
{
  lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->prelude_ref); /* P */
  if (!name)
    return;
  lua_getfield(h->L, -1, name);                         /* P, value */
  lua_remove(h->L, -2);                                 /* value */
}

/* ---------------------------------------------------------------- guards */

static void guard_hook(lua_State *L, lua_Debug *ar);

static void arm(lua_State *co, bool tripped)
{
  if (tripped)
    lua_sethook(co, guard_hook, LUA_MASKCOUNT, 1);
  else
    lua_sethook(co, guard_hook, LUA_MASKCOUNT, GUARD_HOOK_COUNT);
}

/* Runs every GUARD_HOOK_COUNT instructions on a guarded thread (and on
 * every thread plugin code created from one: they inherit the hook), and
 * on every instruction once tripped. Outside guards it returns at once. */
static void guard_hook(lua_State *L, lua_Debug *ar)
{
  struct pc_lua *h = pc__host(L);
  struct pc_lua_guard *g = &h->g;
  if (!g->active)
    return;
  double now = pc_mono_ms();
  if (!g->tripped) {
    if (!g->warned && now - g->started > PC_LUA_BLOCK_WARN_MS) {
      g->warned = true;
      if (g->label) {
        pc_log(PC_LOG_WARN, g->label,
               "Lua code has run for %.0f ms without yielding: the event loop is blocked",
               now - g->started);
      } else {
        char where[256] = "?";
        if (ar && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
          snprintf(where, sizeof where, "%s:%d", ar->short_src, ar->currentline);
        pc_log(PC_LOG_WARN, NULL,
               "Lua code (at %s) has run for %.0f ms without returning: the event loop is "
               "blocked", where, now - g->started);
      }
    }
    if (now < g->deadline) {
      if (g->can_preempt && L == g->co && now - g->started >= PC_LUA_PREEMPT_MS &&
          pc_signal_pending() && lua_isyieldable(L)) {
        g->preempted = true;
        lua_yield(L, 0); /* from a hook: returns, and Lua yields after it */
      }
      return;
    }
    g->tripped = true;
  }
  /* From now on every instruction stops the code again, so a pcall cannot
   * swallow it. */
  arm(L, true);
  if (g->co && g->co != L)
    arm(g->co, true);
  if (!g->where[0] && ar && lua_getinfo(L, "Sl", ar) && ar->currentline > 0)
    snprintf(g->where, sizeof g->where, " (at %s:%d)", ar->short_src, ar->currentline);
  if (g->can_stop && lua_isyieldable(L)) {
    /* A coroutine plugin code made yields back to its resumer (whose next
     * instruction stops in turn); the guard's own coroutine is closed by
     * the caller. */
    if (L == g->co)
      g->stopped = true;
    lua_yield(L, 0); /* from a hook: returns, and Lua yields after it */
    return;
  }
  if (L == g->co)
    g->raised_on_co = true;
  lua_pushfstring(L, "%s%s", g->what, g->where); /* no "caller:line:" prefix */
  lua_error(L);
}

void pc_lua_guard_enter(struct pc_lua *h, struct pc_lua_guard *saved, lua_State *co,
                        double deadline, const char *label, const char *what, unsigned flags)
{
  *saved = h->g;
  saved->prev_enforce = h->enforce;
  double now = pc_mono_ms();
  struct pc_lua_guard *g = &h->g;
  if (g->active) { /* nested: never past the outer deadline */
    if (g->deadline < deadline)
      deadline = g->deadline;
    if (!label)
      label = g->label;
  }
  g->active = true;
  g->tripped = false;
  g->warned = saved->active && saved->warned; /* one warning per outer run */
  g->can_stop = flags & PC_LUA_GUARD_STOP;
  g->can_preempt = flags & PC_LUA_GUARD_PREEMPT;
  g->stopped = false;
  g->preempted = false;
  g->raised_on_co = false;
  g->started = saved->active ? saved->started : now;
  g->deadline = deadline;
  g->label = label;
  g->what = what;
  g->co = co;
  g->where[0] = '\0';
  h->enforce = true;
  h->refused = PC__REFUSED_NONE;
  arm(co, false);
}

double pc_lua_guard_leave(struct pc_lua *h, const struct pc_lua_guard *saved,
                          struct pc_lua_guard *ended)
{
  struct pc_lua_guard *g = &h->g;
  double ran = 0;
  if (ended) { /* only resumes ask */
    ran = pc_mono_ms() - g->started;
    *ended = *g;
  }
  lua_State *co = g->co;
  bool warned = g->warned;
  bool outer_due = g->tripped && g->deadline >= saved->deadline; /* the outer's deadline */
  *g = *saved;
  if (g->active) {
    g->warned = g->warned || warned;
    g->tripped = g->tripped || outer_due;
  }
  h->enforce = saved->prev_enforce;
  if (!g->active || g->co != co)
    lua_sethook(co, NULL, 0, 0);
  if (g->active && (g->co == co || outer_due))
    arm(g->co, g->tripped);
  return ran;
}

void pc_lua_guard_trip(struct pc_lua *h, lua_State *co)
{
  h->g.tripped = true;
  arm(co, true);
}

bool pc_lua_guard_tripped(struct pc_lua *h)
{
  return h->g.active && h->g.tripped;
}

/* ----------------------------------------------------- error objects */

/* Replaces the string on top by one fit for a message: NUL bytes spelled
 * \0 (C would cut the text there), and past PC_LUA_ERROR_MAX bytes cut,
 * after secrets are redacted (a cut must not leave part of one). */
static void tidy_message(lua_State *L)
{
  size_t len;
  const char *s = lua_tolstring(L, -1, &len);
  if (len <= PC_LUA_ERROR_MAX && strlen(s) == len)
    return;
  size_t rlen = len;
  char *red = len > PC_LUA_ERROR_MAX ? pc_redact(s, len, &rlen) : NULL;
  const char *src = red ? red : s;
  size_t n = rlen > PC_LUA_ERROR_MAX ? PC_LUA_ERROR_MAX : rlen;
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (size_t i = 0; i < n; i++) {
    if (src[i] == '\0')
      luaL_addstring(&b, "\\0");
    else
      luaL_addchar(&b, src[i]);
  }
  free(red);
  if (n < rlen) {
    lua_pushfstring(L, "... (%I bytes in all)", (lua_Integer)len);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b); /* old, new */
  lua_remove(L, -2);   /* new */
}

/* Pushes a description of the value at idx that calls nothing. */
static void push_plain_message(lua_State *L, int idx)
{
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING || t == LUA_TNUMBER) {
    lua_pushvalue(L, idx);
    lua_tostring(L, -1);
  } else if (t == LUA_TNIL || t == LUA_TNONE) {
    lua_pushliteral(L, "(error object is nil)");
  } else {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, idx));
  }
}

/* tostring_of(obj): its __tostring's result (called unprotected). */
static int tostring_of(lua_State *L)
{
  luaL_callmeta(L, 1, "__tostring");
  return 1;
}

/* Pushes the message of the error object at idx: a string or number as it
 * is, what its __tostring gives (plugin code, under the caller's guard,
 * and protected: if it raises, yields or runs out of time, the message
 * says so), or a description of the value. With `meta` false no
 * metamethod is called. */
static void push_message(lua_State *L, int idx, bool meta)
{
  idx = lua_absindex(L, idx);
  int t = lua_type(L, idx);
  if (!meta || t == LUA_TSTRING || t == LUA_TNUMBER || !luaL_getmetafield(L, idx, "__tostring")) {
    push_plain_message(L, idx);
  } else {
    lua_pop(L, 1);                       /* (the field) */
    lua_pushcfunction(L, tostring_of);   /* tostring_of */
    lua_pushvalue(L, idx);               /* tostring_of, obj */
    int st = lua_pcall(L, 1, 1, 0);     /* result, or the failure's object */
    if (st == LUA_ERRMEM) {
      char *m = pc_lua_memory_error(pc__host(L));
      lua_pushstring(L, m);
      free(m);
      lua_replace(L, -2);
    }
    if (st != LUA_OK) {
      push_plain_message(L, -1);         /* failure, its text */
      push_plain_message(L, idx);        /* failure, its text, obj's text */
      lua_pushfstring(L, "(the error object's __tostring failed: %s) %s", lua_tostring(L, -2),
                      lua_tostring(L, -1));
      lua_replace(L, -4);
      lua_pop(L, 2);
    } else if (lua_type(L, -1) != LUA_TSTRING) {
      const char *got = luaL_typename(L, -1);
      lua_pop(L, 1);
      lua_pushfstring(L, "(error object is a %s value whose __tostring returned a %s)",
                      luaL_typename(L, idx), got);
    }
  }
  tidy_message(L);
}

/* Message handlers of pc_lua_call (error object at 1). An error raised in
 * here (the object's __tostring) calls the handler again for the new
 * object; Lua ends a runaway chain with LUA_ERRERR. */
static int msgh_traceback(lua_State *L)
{
  push_message(L, 1, true);
  luaL_traceback(L, L, lua_tostring(L, -1), 1);
  return 1;
}

static int msgh_plain(lua_State *L)
{
  push_message(L, 1, true);
  return 1;
}

/* The text of a failed pc_lua_call's result on top (a string our handler
 * made, or what Lua put there for memory and handler errors). */
static char *call_error(struct pc_lua *h, int rc)
{
  lua_State *L = h->L;
  if (rc == LUA_ERRMEM)
    return pc_lua_memory_error(h);
  const char *m = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  if (rc == LUA_ERRERR)
    return pc_asprintf("error while handling an error (the error object's __tostring "
                       "failed again and again)%s%s", m ? ": " : "", m ? m : "");
  return pc_xstrdup(m ? m : "(error object is not a string)");
}

int pc_lua_call(struct pc_lua *h, int nargs, int nres, double limit_ms, const char *what,
                bool traceback, char **err)
{
  lua_State *L = h->L;
  int base = lua_gettop(L) - nargs; /* the function */
  lua_pushcfunction(L, traceback ? msgh_traceback : msgh_plain);
  lua_insert(L, base);              /* msgh, fn, args... */
  int rc;
  if (limit_ms == PC_LUA_HOST_CODE) {
    rc = lua_pcall(L, nargs, nres, base);
  } else {
    struct pc_lua_guard saved;
    pc_lua_guard_enter(h, &saved, L, pc_mono_ms() + limit_ms, NULL, what, 0);
    rc = lua_pcall(L, nargs, nres, base);
    pc_lua_guard_leave(h, &saved, NULL);
  }
  if (rc != LUA_OK) {
    *err = call_error(h, rc);
    lua_settop(L, base - 1);
    return -1;
  }
  lua_remove(L, base);
  return 0;
}

/* describe(thread, object, meta, traceback): the text of a coroutine's
 * error object, and its traceback. */
static int describe(lua_State *L)
{
  lua_State *co = lua_tothread(L, 1);
  push_message(L, 2, lua_toboolean(L, 3)); /* ..., msg */
  if (lua_toboolean(L, 4))
    luaL_traceback(L, co, lua_tostring(L, -1), 0); /* ..., msg, text */
  return 1;
}

char *pc_lua_error_text(struct pc_lua *h, lua_State *co, int status, bool traceback)
{
  if (status == LUA_ERRMEM)
    return pc_lua_memory_error(h);
  lua_State *L = h->L;
  char *first = NULL;
  /* Once as a user would expect (the __tostring), then without calling
   * anything if that failed: the traceback is worth keeping. */
  for (int meta = 1; meta >= 0; meta--) {
    if (!lua_checkstack(L, 6) || !lua_checkstack(co, 2))
      break;
    lua_pushcfunction(L, describe); /* describe */
    lua_pushthread(co);             /* (co) co */
    lua_pushvalue(co, -2);          /* (co) obj, co, obj */
    lua_xmove(co, L, 2);            /* describe, co, obj */
    lua_pushboolean(L, meta);
    lua_pushboolean(L, traceback);  /* describe, co, obj, meta, traceback */
    char *err = NULL;
    if (pc_lua_call(h, 4, 1, DESCRIBE_LIMIT_MS,
                    "the error object's __tostring ran for too long", false, &err) == 0) {
      char *text = pc_xstrdup(lua_tostring(L, -1));
      lua_pop(L, 1);
      if (!first)
        return text;
      char *r = pc_asprintf("(the error object's __tostring failed: %s) %s", first, text);
      free(first);
      free(text);
      return r;
    }
    if (!first)
      first = err;
    else
      free(err);
  }
  if (first)
    return first;
  return pc_xstrdup("(the error could not be described: out of memory)");
}

void pc_lua_note_plugin_mt(struct pc_lua *h, lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->plugin_mts_ref); /* set */
  lua_pushvalue(L, idx);                                 /* set, mt */
  lua_pushboolean(L, 1);                                 /* set, mt, true */
  lua_rawset(L, -3);                                     /* set */
  lua_pop(L, 1);
}
