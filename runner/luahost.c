/* luahost.c: the run's one lua_State, the expression sandbox and template
 * evaluation. The sandbox itself (read-only proxies, scopes, helpers, text
 * and JSON formatting) is Lua code in lua/prelude.lua, embedded in the
 * binary; this file creates the state, compiles every expression once,
 * evaluates them with a CPU guard, and turns templates and YAML nodes into
 * Lua values.
 *
 * Each expression is compiled as the chunk `return (EXPR\n)`, whose only
 * upvalue is _ENV. Evaluating sets that upvalue to a scope table and calls
 * the chunk: one compiled function serves every scope it runs in. */
#include "luahost.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include <uv.h>

#include "json.h"
#include "log.h"
#include "util.h"

extern char **environ;

struct pc_embedded {
  const char *name;
  const char *data;
  size_t len;
};
extern const struct pc_embedded pc_embedded_lua[];

/* An expression that runs for longer than this is stopped. */
#define EXPR_CPU_LIMIT_MS 1000.0
#define EXPR_HOOK_COUNT 10000

struct pc_lua {
  lua_State *L;
  int prelude_ref; /* the table lua/prelude.lua returned */
  /* Prelude functions called on hot paths, looked up once. */
  int ro_ref, unwrap_ref, to_text_ref, instance_mt_ref;
  double eval_started_ms;
  /* Memory accounting (see l_alloc). */
  size_t used;    /* bytes the state holds now */
  size_t limit;   /* PC_LUA_MEMORY_DEFAULT unless set */
  bool enforce;   /* the limit applies only while plugin code runs */
};

/* Keep the host reachable from C functions called by Lua. */
static const char HOST_KEY = 'h';

static struct pc_lua *host_of(lua_State *L)
{
  lua_rawgetp(L, LUA_REGISTRYINDEX, &HOST_KEY); /* host */
  struct pc_lua *h = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return h;
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
  lua_pushlightuserdata(L, h);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &HOST_KEY);
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
  if (nsize > old && h->enforce && h->used - old + nsize > h->limit)
    return NULL;
  void *p = realloc(ptr, nsize);
  if (p)
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

struct pc_lua *pc_lua_new(void)
{
  struct pc_lua *h = pc_xcalloc(1, sizeof *h);
  h->limit = PC_LUA_MEMORY_DEFAULT;
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

/* ------------------------------------------------------------ evaluation */

static void cpu_guard(lua_State *L, lua_Debug *ar)
{
  (void)ar;
  struct pc_lua *h = host_of(L);
  if (pc_mono_ms() - h->eval_started_ms > EXPR_CPU_LIMIT_MS)
    luaL_error(L, "the expression ran for more than %d ms and was stopped",
               (int)EXPR_CPU_LIMIT_MS);
}

int pc_lua_eval(struct pc_lua *h, const struct pc_expr *e, int scope_ref, char **err)
{
  lua_State *L = h->L;
  int top = lua_gettop(L);
  if (e->ref == LUA_NOREF || e->ref == LUA_REFNIL) {
    *err = pc_asprintf("expression \"%s\" at %s:%d:%d was not compiled", e->src, e->file,
                       e->line, e->col);
    return -1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref);     /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref);  /* fn, scope */
  lua_setupvalue(L, -2, 1);                      /* fn (with _ENV = scope) */
  h->eval_started_ms = pc_mono_ms();
  lua_sethook(L, cpu_guard, LUA_MASKCOUNT, EXPR_HOOK_COUNT);
  int rc = lua_pcall(L, 0, 1, 0);
  lua_sethook(L, NULL, 0, 0);
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    *err = pc_asprintf("expression \"%s\" at %s:%d:%d failed: %s", e->src, e->file, e->line,
                       e->col, msg ? strip_chunk_prefix(msg) : "(error object is not a string)");
    lua_settop(L, top);
    return -1;
  }
  /* Hand back plain values, never proxies. */
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->unwrap_ref); /* value, unwrap */
    lua_insert(L, -2);                                /* unwrap, value */
    lua_call(L, 1, 1);                                /* value */
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
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* text or message */
    char *m = pc_asprintf("<%s>", lua_tostring(L, -1));
    lua_pop(L, 1);
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
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* json or message */
    const char *m = lua_tostring(L, -1);
    *err = pc_xstrdup(m ? m : "the value cannot be encoded as JSON");
    lua_pop(L, 1);
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
