/* luahost.c: the run's one lua_State, the expression sandbox and template
 * evaluation. The sandbox itself (read-only proxies, scopes, helpers, text
 * and JSON formatting) is Lua code in lua/prelude.lua, embedded in the
 * binary; this file creates the state, compiles every expression once,
 * evaluates them, and turns templates and YAML nodes into Lua values. It
 * also holds the machinery every entry into Lua shares: the guard (one
 * count hook for CPU deadlines and the blocking report, the memory limit
 * in the allocator), the door (pc_lua_call) and the description of error
 * objects.
 *
 * Each expression is compiled as the chunk `return (EXPR\n)`, whose only
 * upvalue is _ENV. Evaluating sets that upvalue to a scope table and calls
 * the chunk: one compiled function serves every scope it runs in. */
#include "script/luahost.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "script/json.h"
#include "base/log.h"
#include "base/util.h"

extern char **environ;

struct pc_embedded {
  const char *name;
  const char *data;
  size_t len;
};
extern const struct pc_embedded pc_embedded_lua[];

/* An expression that runs for longer than this is stopped. */
#define EXPR_CPU_LIMIT_MS 1000.0
/* Instructions between two looks at the clock by a guard's hook. */
#define GUARD_HOOK_COUNT 1000
/* Bound on describing an error object (its __tostring). */
#define DESCRIBE_LIMIT_MS 1000.0

enum refusal { REFUSED_NONE, REFUSED_LIMIT, REFUSED_SYSTEM };

struct pc_lua {
  lua_State *L;
  int prelude_ref; /* the table lua/prelude.lua returned */
  /* Prelude functions called on hot paths, looked up once. */
  int ro_ref, unwrap_ref, to_text_ref, instance_mt_ref;
  int plugin_mts_ref; /* weak-keyed set of metatables plugin code set */
  struct pc_lua_guard g; /* the guard of the code running now */
  /* Memory accounting (see l_alloc). */
  size_t used;    /* bytes the state holds now */
  size_t limit;   /* PC_LUA_MEMORY_DEFAULT unless set */
  bool enforce;   /* the limit applies only inside guards */
  enum refusal refused; /* why the last allocation failed, for messages */
  bool reserve_spent;   /* the util.c reserve was given back */
};

/* The host is the allocator's userdata: reachable from any thread, with no
 * registry access (the guard's hook runs every GUARD_HOOK_COUNT
 * instructions). */
static struct pc_lua *host_of(lua_State *L)
{
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

/* ------------------------------------------------------ C helpers for Lua */

static int l_getenv_secret(lua_State *L)
{
  const char *name = luaL_checkstring(L, 1);
  const char *v = getenv(name);
  if (!v) {
    lua_pushnil(L);
    return 1;
  }
  pc_secret_add(v, strlen(v));
  lua_pushstring(L, v);
  return 1;
}

static int l_mark_secret(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  pc_secret_add(s, len);
  return 0;
}

static int l_now(lua_State *L)
{
  lua_pushnumber(L, floor(pc_wall_ms()) / 1000.0);
  return 1;
}

/* ---------------------------------------------------------------- setup */

static const struct pc_embedded *find_embedded(const char *name)
{
  for (const struct pc_embedded *e = pc_embedded_lua; e->name; e++)
    if (strcmp(e->name, name) == 0)
      return e;
  return NULL;
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

  const struct pc_embedded *e = find_embedded("prelude");
  if (!e)
    return luaL_error(L, "prelude.lua is not embedded");
  if (luaL_loadbuffer(L, e->data, e->len, "=prelude.lua") != LUA_OK) /* json, chunk */
    return lua_error(L);
  lua_pushvalue(L, -2);                  /* json, chunk, json */
  lua_pushcfunction(L, l_getenv_secret); /* ..., getenv_secret */
  lua_pushcfunction(L, l_mark_secret);   /* ..., mark_secret */
  lua_pushcfunction(L, l_now);           /* ..., now */
  lua_call(L, 4, 1);                     /* json, P */
  lua_getfield(L, -1, "ro");                        /* json, P, ro */
  h->ro_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "unwrap");
  h->unwrap_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "to_text");
  h->to_text_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "instance_mt");
  h->instance_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->prelude_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* json */
  lua_pop(L, 1);
  lua_newtable(L);                      /* set */
  lua_createtable(L, 0, 1);             /* set, mt */
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);              /* set */
  h->plugin_mts_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* The state's allocator. It counts every byte and, while `enforce` is set
 * (plugin and inline Lua code running, see pacermod.c), refuses to grow past
 * the limit: Lua then collects garbage and retries, and if that does not
 * help raises "not enough memory" in the coroutine that asked, which fails
 * that step. Outside plugin code (the engine building results, expression
 * helpers) the limit does not apply, so an allocation the engine makes
 * unprotected can only fail when malloc itself does. Shrinking never fails,
 * as Lua requires. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  struct pc_lua *h = ud;
  size_t old = ptr ? osize : 0; /* without ptr, osize encodes a type */
  if (nsize == 0) {
    free(ptr);
    h->used -= old;
    return NULL;
  }
  if (nsize > old && h->enforce && h->used - old + nsize > h->limit) {
    h->refused = REFUSED_LIMIT;
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
    h->refused = REFUSED_SYSTEM;
    return NULL;
  }
  h->used = h->used - old + nsize;
  return p;
}

static int l_panic(lua_State *L)
{
  const char *msg = lua_tostring(L, -1);
  fprintf(stderr, "pacer: unprotected error in Lua: %s\n", msg ? msg : "(not a string)");
  return 0; /* abort() follows */
}

void pc_lua_set_memory_limit(struct pc_lua *h, size_t bytes)
{
  h->limit = bytes;
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
  if (h->refused == REFUSED_SYSTEM)
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
  h->L = lua_newstate(l_alloc, h);
  if (h->L) {
    lua_atpanic(h->L, l_panic);
    /* Every thread copies the main thread's extra space; pacermod.c keeps a
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

void pc_lua_push_prelude(struct pc_lua *h, const char *name)
{
  lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->prelude_ref); /* P */
  if (!name)
    return;
  lua_getfield(h->L, -1, name);                         /* P, value */
  lua_remove(h->L, -2);                                 /* value */
}

/* Pushes prelude function `name`. */
static void push_fn(struct pc_lua *h, const char *name)
{
  lua_rawgeti(h->L, LUA_REGISTRYINDEX, h->prelude_ref); /* P */
  lua_getfield(h->L, -1, name);                         /* P, fn */
  lua_remove(h->L, -2);                                 /* fn */
}

/* ------------------------------------------------------------- compiling */

/* Lua's messages for a chunk named "=" start with ":LINE: "; drop that. */
static const char *strip_chunk_prefix(const char *msg)
{
  if (msg[0] == ':') {
    const char *p = msg + 1;
    while (*p >= '0' && *p <= '9')
      p++;
    if (*p == ':' && p[1] == ' ')
      return p + 2;
  }
  return msg;
}

int pc_lua_compile_expr(struct pc_lua *h, struct pc_expr *e, struct pc_diag *d)
{
  lua_State *L = h->L;
  char *code = pc_asprintf("return (%s\n)", e->src);
  int rc = luaL_loadbuffer(L, code, strlen(code), "=");
  free(code);
  if (rc != LUA_OK) {
    pc_diag_add(d, e->file, e->line, e->col, "syntax error in expression \"%s\": %s", e->src,
                strip_chunk_prefix(lua_tostring(L, -1)));
    lua_pop(L, 1);
    return -1;
  }
  e->ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

int pc_lua_compile_workflow(struct pc_lua *h, struct pc_workflow *wf, struct pc_diag *d)
{
  int rc = 0;
  for (size_t i = 0; i < wf->nexprs; i++)
    if (pc_lua_compile_expr(h, wf->exprs[i], d) != 0)
      rc = -1;
  return rc;
}

/* ------------------------------------------------------------ YAML nodes */

static bool parse_yaml_int(const char *s, long long *out)
{
  int base = 10;
  const char *p = s;
  bool neg = false;
  if (*p == '-' || *p == '+') {
    neg = *p == '-';
    p++;
  }
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
    base = p[1] == 'x' ? 16 : 8;
    p += 2;
  }
  errno = 0;
  char *end;
  unsigned long long v = strtoull(p, &end, base);
  if (errno || end == p || *end)
    return false;
  if (v > (unsigned long long)LLONG_MAX + (neg ? 1u : 0u))
    return false;
  *out = neg ? (long long)(0 - v) : (long long)v;
  return true;
}

static double parse_yaml_float(const char *s)
{
  const char *p = s;
  double sign = 1;
  if (*p == '-' || *p == '+') {
    sign = *p == '-' ? -1 : 1;
    p++;
  }
  if (strcasecmp(p, ".inf") == 0)
    return sign * HUGE_VAL;
  if (strcasecmp(p, ".nan") == 0)
    return NAN;
  return strtod(s, NULL);
}

/* `nested`: n is inside a list or map, where null is kept as JSON null
 * (the light userdata NULL) so the key or the list's length survives; at the
 * top level null is nil. */
static void push_node(struct pc_lua *h, const struct pc_node *n, bool nested)
{
  lua_State *L = h->L;
  luaL_checkstack(L, 4, "YAML value too deep");
  switch (n->kind) {
  case PC_NODE_SCALAR:
    switch (pc_node_scalar_type(n)) {
    case PC_SCALAR_NULL:
      if (nested)
        lua_pushlightuserdata(L, NULL);
      else
        lua_pushnil(L);
      return;
    case PC_SCALAR_BOOL:
      lua_pushboolean(L, n->str[0] == 't' || n->str[0] == 'T');
      return;
    case PC_SCALAR_INT: {
      long long v;
      if (parse_yaml_int(n->str, &v))
        lua_pushinteger(L, (lua_Integer)v);
      else
        lua_pushnumber(L, strtod(n->str, NULL)); /* too large for an integer */
      return;
    }
    case PC_SCALAR_FLOAT:
      lua_pushnumber(L, parse_yaml_float(n->str));
      return;
    case PC_SCALAR_STR:
      lua_pushlstring(L, n->str, n->len);
      return;
    }
    return;
  case PC_NODE_SEQ:
    lua_createtable(L, (int)n->n, 0); /* list */
    for (size_t i = 0; i < n->n; i++) {
      push_node(h, n->items[i], true); /* list, item */
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return;
  case PC_NODE_MAP:
    lua_createtable(L, 0, (int)n->n); /* map */
    for (size_t i = 0; i < n->n; i++) {
      push_node(h, n->items[i], true); /* map, value */
      lua_setfield(L, -2, n->keys[i]->str);
    }
    if (n->n == 0)
      pc_json_mark_object(L, -1); /* {} stays a map in JSON */
    return;
  }
}

void pc_lua_push_node(struct pc_lua *h, const struct pc_node *n)
{
  push_node(h, n, false);
}

/* --------------------------------------------------------------- scopes */

int pc_lua_root_scope(struct pc_lua *h, const char *wf_name, const char *run_id)
{
  lua_State *L = h->L;
  int vars = lua_gettop(L);
  push_fn(h, "root_scope"); /* vars, fn */
  lua_pushvalue(L, vars);   /* vars, fn, vars */
  lua_newtable(L);          /* vars, fn, vars, env */
  for (char **e = environ; *e; e++) {
    const char *eq = strchr(*e, '=');
    if (!eq)
      continue;
    lua_pushlstring(L, *e, (size_t)(eq - *e)); /* ..., env, name */
    lua_pushstring(L, eq + 1);                 /* ..., env, name, value */
    lua_rawset(L, -3);                         /* ..., env */
  }
  lua_createtable(L, 0, 3); /* vars, fn, vars, env, workflow */
  lua_pushstring(L, wf_name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, run_id);
  lua_setfield(L, -2, "run_id");
  lua_call(L, 3, 1);   /* vars, scope */
  lua_remove(L, vars); /* scope */
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

int pc_lua_child_scope(struct pc_lua *h, int parent_ref)
{
  lua_State *L = h->L;
  push_fn(h, "child_scope");                      /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, parent_ref);  /* fn, parent */
  lua_call(L, 1, 1);                              /* scope */
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Calls prelude function `fn`(scope, name, value) with the value popped. */
static void scope_call(struct pc_lua *h, const char *fn, int scope_ref, const char *name)
{
  lua_State *L = h->L;
  int value = lua_gettop(L);
  push_fn(h, fn);                                /* value, fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref);  /* value, fn, scope */
  lua_pushstring(L, name);                       /* value, fn, scope, name */
  lua_pushvalue(L, value);                       /* value, fn, scope, name, value */
  lua_call(L, 3, 0);                             /* value */
  lua_pop(L, 1);
}

/* Replaces the value on top of the stack by what expressions see of it: a
 * table by its read-only proxy, JSON null by nil (an `item` that is null
 * reads as nil, as a null member does). */
static void to_ro(struct pc_lua *h)
{
  lua_State *L = h->L;
  if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL) {
    lua_pop(L, 1);
    lua_pushnil(L);
    return;
  }
  if (lua_type(L, -1) != LUA_TTABLE)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->ro_ref); /* v, ro */
  lua_insert(L, -2);                            /* ro, v */
  lua_call(L, 1, 1);                            /* proxy */
}

void pc_lua_scope_bind(struct pc_lua *h, int scope_ref, const char *name)
{
  lua_State *L = h->L;
  to_ro(h);                                     /* value */
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref); /* value, scope */
  lua_pushstring(L, name);                      /* value, scope, name */
  lua_rawget(L, -2);                            /* value, scope, old */
  lua_insert(L, -3);                            /* old, value, scope */
  lua_pushstring(L, name);                      /* old, value, scope, name */
  lua_rotate(L, -3, -1);                        /* old, scope, name, value */
  lua_rawset(L, -3);                            /* old, scope (scopes refuse __newindex) */
  lua_pop(L, 1);                                /* old */
}

void pc_lua_scope_set(struct pc_lua *h, int scope_ref, const char *name)
{
  pc_lua_scope_bind(h, scope_ref, name);
  lua_pop(h->L, 1);
}

void pc_lua_scope_unbind(struct pc_lua *h, int scope_ref, const char *name)
{
  pc_lua_scope_set(h, scope_ref, name);
}

int pc_lua_instance_mt(struct pc_lua *h, int parent_ref)
{
  lua_State *L = h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->instance_mt_ref); /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, parent_ref);      /* fn, parent */
  lua_call(L, 1, 1);                                  /* mt */
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

int pc_lua_instance_scope(struct pc_lua *h, int mt_ref)
{
  lua_State *L = h->L;
  int value = lua_gettop(L) - 1;                /* item, index */
  lua_createtable(L, 0, 2);                     /* item, index, scope */
  lua_pushvalue(L, value);
  to_ro(h);
  lua_setfield(L, -2, "item"); /* no metatable yet: a raw set */
  lua_pushvalue(L, value + 1);
  lua_setfield(L, -2, "index");
  lua_rawgeti(L, LUA_REGISTRYINDEX, mt_ref);    /* item, index, scope, mt */
  lua_setmetatable(L, -2);                      /* item, index, scope */
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);     /* item, index */
  lua_pop(L, 2);
  return ref;
}

void pc_lua_scope_set_step(struct pc_lua *h, int scope_ref, const char *id)
{
  scope_call(h, "set_step", scope_ref, id);
}

void pc_lua_set_workflow_field(struct pc_lua *h, int root_ref, const char *field)
{
  scope_call(h, "set_workflow_field", root_ref, field);
}

void pc_lua_scope_get_step(struct pc_lua *h, int scope_ref, const char *id)
{
  lua_State *L = h->L;
  push_fn(h, "get_step");                        /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref);  /* fn, scope */
  lua_pushstring(L, id);                         /* fn, scope, id */
  lua_call(L, 2, 1);                             /* value */
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
  struct pc_lua *h = host_of(L);
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
    if (now < g->deadline)
      return;
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
                        double deadline, const char *label, const char *what, bool can_stop)
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
  g->can_stop = can_stop;
  g->stopped = false;
  g->raised_on_co = false;
  g->started = saved->active ? saved->started : now;
  g->deadline = deadline;
  g->label = label;
  g->what = what;
  g->co = co;
  g->where[0] = '\0';
  h->enforce = true;
  h->refused = REFUSED_NONE;
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
      char *m = pc_lua_memory_error(host_of(L));
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
    pc_lua_guard_enter(h, &saved, L, pc_mono_ms() + limit_ms, NULL, what, false);
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

/* ------------------------------------------------------------ evaluation */

/* Replaces the table on top by a plain copy if plugin code gave it its
 * metatable: C reads values with the plain API (lua_geti, luaL_len, ...),
 * which would run those metamethods outside any guard. */
static void strip_plugin_mt(struct pc_lua *h)
{
  lua_State *L = h->L;
  if (!lua_getmetatable(L, -1))                          /* v, mt */
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->plugin_mts_ref);  /* v, mt, set */
  lua_insert(L, -2);                                     /* v, set, mt */
  bool plugin = lua_rawget(L, -2) != LUA_TNIL;           /* v, set, flag */
  lua_pop(L, 2);                                         /* v */
  if (!plugin)
    return;
  lua_newtable(L);                                       /* v, copy */
  lua_pushnil(L);
  while (lua_next(L, -3)) {                              /* v, copy, k, x */
    lua_pushvalue(L, -2);                                /* v, copy, k, x, k */
    lua_insert(L, -2);                                   /* v, copy, k, k, x */
    lua_rawset(L, -4);                                   /* v, copy, k */
  }
  lua_remove(L, -2);                                     /* copy */
}

int pc_lua_eval(struct pc_lua *h, const struct pc_expr *e, int scope_ref, char **err)
{
  lua_State *L = h->L;
  if (e->ref == LUA_NOREF || e->ref == LUA_REFNIL) {
    *err = pc_asprintf("expression \"%s\" at %s:%d:%d was not compiled", e->src, e->file,
                       e->line, e->col);
    return -1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);     /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref);  /* fn, scope */
  lua_setupvalue(L, -2, 1);                      /* fn (with _ENV = scope) */
  char *msg = NULL;
  if (pc_lua_call(h, 0, 1, EXPR_CPU_LIMIT_MS, "the expression ran for more than 1000 ms and "
                  "was stopped", false, &msg) != 0) {
    *err = pc_asprintf("expression \"%s\" at %s:%d:%d failed: %s", e->src, e->file, e->line,
                       e->col, strip_chunk_prefix(msg));
    free(msg);
    return -1;
  }
  /* Hand back plain values, never proxies. */
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->unwrap_ref); /* value, unwrap */
    lua_insert(L, -2);                                /* unwrap, value */
    lua_call(L, 1, 1);                                /* value */
    strip_plugin_mt(h);
  }
  return 0;
}

int pc_lua_eval_bool(struct pc_lua *h, const struct pc_expr *e, int scope_ref, bool *out,
                     char **err)
{
  if (pc_lua_eval(h, e, scope_ref, err) != 0)
    return -1;
  /* JSON null is false, as nil is. Reads through the sandbox's views
   * already give nil; this is the safety net for any other way to it. */
  lua_State *L = h->L;
  *out = lua_toboolean(L, -1) &&
         !(lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL);
  lua_pop(L, 1);
  return 0;
}

char *pc_lua_to_text(struct pc_lua *h, int idx, size_t *len)
{
  lua_State *L = h->L;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    char *r = pc_xmalloc(n + 1);
    memcpy(r, s, n + 1);
    if (len)
      *len = n;
    return r;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->to_text_ref); /* fn */
  lua_pushvalue(L, idx);  /* fn, value */
  char *err = NULL;
  if (pc_lua_call(h, 1, 1, EXPR_CPU_LIMIT_MS, "formatting a value as text took more than "
                  "1000 ms", false, &err) != 0) { /* text */
    char *m = pc_asprintf("<%s>", err);
    free(err);
    if (len)
      *len = strlen(m);
    return m;
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  char *r = pc_xmalloc(n + 1);
  memcpy(r, s, n);
  r[n] = '\0';
  lua_pop(L, 1);
  if (len)
    *len = n;
  return r;
}

char *pc_lua_to_json(struct pc_lua *h, int idx, char **err)
{
  lua_State *L = h->L;
  idx = lua_absindex(L, idx);
  push_fn(h, "to_json");                 /* fn */
  lua_pushvalue(L, idx);                 /* fn, value */
  if (pc_lua_call(h, 1, 1, EXPR_CPU_LIMIT_MS, "encoding a value as JSON took more than "
                  "1000 ms", false, err) != 0) {
    if (!*err)
      *err = pc_xstrdup("the value cannot be encoded as JSON");
    return NULL;
  }
  size_t n;
  const char *s = lua_tolstring(L, -1, &n);
  char *r = pc_xmalloc(n + 1);
  memcpy(r, s, n + 1);
  lua_pop(L, 1);
  return r;
}

/* If `src` reads one variable of the environment (`secrets.NAME`,
 * `env.NAME`, or with ["NAME"]) that is not set, its name (malloc'd). */
static char *unset_env_name(const char *src)
{
  const char *p = src;
  while (*p == ' ')
    p++;
  size_t base = strncmp(p, "secrets", 7) == 0 ? 7 : strncmp(p, "env", 3) == 0 ? 3 : 0;
  if (base == 0)
    return NULL;
  p += base;
  while (*p == ' ')
    p++;
  const char *name, *end;
  if (*p == '.') {
    p++;
    while (*p == ' ')
      p++;
    name = end = p;
    while ((*end >= 'a' && *end <= 'z') || (*end >= 'A' && *end <= 'Z') ||
           (*end >= '0' && *end <= '9') || *end == '_')
      end++;
    p = end;
  } else if (*p == '[') {
    p++;
    while (*p == ' ')
      p++;
    char q = *p;
    if (q != '"' && q != '\'')
      return NULL;
    name = ++p;
    end = strchr(name, q);
    if (!end)
      return NULL;
    p = end + 1;
    while (*p == ' ')
      p++;
    if (*p++ != ']')
      return NULL;
  } else {
    return NULL;
  }
  while (*p == ' ' || *p == '\n')
    p++;
  if (*p || end == name)
    return NULL;
  char *n = pc_xstrndup(name, (size_t)(end - name));
  if (getenv(n)) {
    free(n);
    return NULL;
  }
  return n;
}

/* The message for an expression whose nil value would be interpolated or
 * sent: it names the expression, where it is written and, for an unset
 * environment variable, which one. */
static char *nil_error(const struct pc_expr *e)
{
  char *var = unset_env_name(e->src);
  char *m;
  if (var)
    m = pc_asprintf("expression \"%s\" at %s:%d:%d is nil: the environment variable %s is not "
                    "set (use default(value, fallback))",
                    e->src, e->file, e->line, e->col, var);
  else
    m = pc_asprintf("expression \"%s\" at %s:%d:%d is nil (use default(value, fallback))",
                    e->src, e->file, e->line, e->col);
  free(var);
  return m;
}

static int eval_interp(struct pc_lua *h, const struct pc_tmpl *t, int scope_ref, char **err)
{
  lua_State *L = h->L;
  struct pc_buf b;
  pc_buf_init(&b, (size_t)64 << 20);
  for (size_t i = 0; i < t->u.interp.n; i++) {
    const struct pc_tmpl_part *p = &t->u.interp.parts[i];
    if (p->lit) {
      pc_buf_append(&b, p->lit, p->lit_len);
      continue;
    }
    if (pc_lua_eval(h, p->expr, scope_ref, err) != 0) {
      pc_buf_free(&b);
      return -1;
    }
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      *err = nil_error(p->expr);
      pc_buf_free(&b);
      return -1;
    }
    size_t n;
    int rc;
    if (lua_type(L, -1) == LUA_TSTRING || lua_isinteger(L, -1)) {
      /* the common cases, formatted as to_text would, without a copy */
      const char *s = lua_tolstring(L, -1, &n);
      rc = pc_buf_append(&b, s, n);
      lua_pop(L, 1);
    } else {
      char *s = pc_lua_to_text(h, -1, &n);
      lua_pop(L, 1);
      rc = pc_buf_append(&b, s, n);
      free(s);
    }
    if (rc != 0) {
      *err = pc_asprintf("interpolated text at %s:%d:%d is larger than 64 MiB",
                         p->expr->file, p->expr->line, p->expr->col);
      pc_buf_free(&b);
      return -1;
    }
  }
  lua_pushlstring(L, b.data ? b.data : "", b.len);
  pc_buf_free(&b);
  return 0;
}

/* Evaluates a template at `depth` (0: the value as written under its key,
 * e.g. a step's http map). Inside maps and lists:
 * - a member written as one ${{ }} whose value is nil is an error, as
 *   interpolating nil is: it would otherwise vanish from what is sent (a
 *   header, a JSON member, a plugin input...), unless the template allows
 *   it (nil_ok: vars), when the member is left out;
 * - `null` written in the file is kept as JSON null (the light userdata
 *   NULL), except directly in the top-level map, whose keys are options
 *   (`timeout: null` means no timeout) and leave it out. */
static int eval_tmpl(struct pc_lua *h, const struct pc_tmpl *t, int scope_ref, char **err,
                     int depth)
{
  lua_State *L = h->L;
  luaL_checkstack(L, 4, "template too deep");
  switch (t->kind) {
  case PC_T_NIL:
    lua_pushnil(L);
    return 0;
  case PC_T_BOOL:
    lua_pushboolean(L, t->u.b);
    return 0;
  case PC_T_INT:
    lua_pushinteger(L, (lua_Integer)t->u.i);
    return 0;
  case PC_T_NUM:
    lua_pushnumber(L, t->u.num);
    return 0;
  case PC_T_STR:
    lua_pushlstring(L, t->u.str.s, t->u.str.len);
    return 0;
  case PC_T_EXPR:
    return pc_lua_eval(h, t->u.expr, scope_ref, err);
  case PC_T_INTERP:
    return eval_interp(h, t, scope_ref, err);
  case PC_T_SEQ:
  case PC_T_MAP: {
    bool map = t->kind == PC_T_MAP;
    if (map)
      lua_createtable(L, 0, (int)t->u.coll.n); /* map */
    else
      lua_createtable(L, (int)t->u.coll.n, 0); /* list */
    for (size_t i = 0; i < t->u.coll.n; i++) {
      const struct pc_tmpl *it = t->u.coll.items[i];
      if (eval_tmpl(h, it, scope_ref, err, depth + 1) != 0) { /* coll, value */
        lua_pop(L, 1);
        return -1;
      }
      if (lua_isnil(L, -1)) {
        if (it->kind == PC_T_EXPR && !it->nil_ok) {
          lua_pop(L, 2);
          *err = nil_error(it->u.expr);
          return -1;
        }
        if (it->kind == PC_T_NIL && (!map || depth > 0)) {
          lua_pop(L, 1);
          lua_pushlightuserdata(L, NULL); /* coll, null */
        }
      }
      if (map)
        lua_setfield(L, -2, t->u.coll.keys[i]); /* map */
      else if (!lua_isnil(L, -1))
        lua_rawseti(L, -2, (lua_Integer)i + 1); /* list */
      else
        lua_pop(L, 1);
    }
    if (map && t->u.coll.n == 0)
      pc_json_mark_object(L, -1); /* {} stays a map in JSON */
    return 0;
  }
  }
  *err = pc_xstrdup("unknown template kind");
  return -1;
}

int pc_lua_eval_tmpl(struct pc_lua *h, const struct pc_tmpl *t, int scope_ref, char **err)
{
  return eval_tmpl(h, t, scope_ref, err, 0);
}
