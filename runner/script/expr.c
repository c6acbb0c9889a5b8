/* expr.c: expressions, scopes and templates. The sandbox itself (read-only
 * proxies, scopes, helpers) is Lua code in lua/prelude.lua; this file
 * compiles every expression once, builds and binds scopes, evaluates
 * expressions through the host's door (pc_lua_call, under a guard) and
 * turns templates into Lua values.
 *
 * Each expression is compiled as the chunk `return (EXPR\n)`, whose only
 * upvalue is _ENV. Evaluating sets that upvalue to a scope table and calls
 * the chunk: one compiled function serves every scope it runs in. */
#include "script/expr.h"

#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "script/host.h"
#include "script/internal.h"
#include "script/json.h"
#include "script/value.h"
#include "base/util.h"

extern char **environ;

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
    const char *msg = strip_chunk_prefix(lua_tostring(L, -1));
    /* YAML traps: an expression that stops short ("near ')'", the bracket
     * this chunk adds) was cut by YAML, or a string in it by "}}". */
    const char *hint = "";
    if (e->brace_cut && strstr(msg, "unfinished string"))
      hint = " (hint: the first \"}}\" ends ${{ }}, even inside a string: write \"}\" .. \"}\", "
             "or, in if/assert/expect.that, the expression bare)";
    else if (e->yaml_plain && (strstr(msg, "near ')'") || strstr(msg, "<eof>")))
      hint = " (hint: YAML ends an unquoted value at \" #\", which starts a comment, so `#x` "
             "and what follows were cut off; quote the whole value)";
    pc_diag_add(d, e->file, e->line, e->col, "syntax error in expression \"%s\": %s%s", e->src,
                msg, hint);
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

/* --------------------------------------------------------------- scopes */

int pc_lua_root_scope(struct pc_lua *h, const char *wf_name, const char *run_id)
{
  lua_State *L = h->L;
  int vars = lua_gettop(L);
  pc_lua_push_prelude(h, "root_scope"); /* vars, fn */
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
  pc_lua_push_prelude(h, "child_scope");                      /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, parent_ref);  /* fn, parent */
  lua_call(L, 1, 1);                              /* scope */
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Calls prelude function `fn`(scope, name, value) with the value popped. */
static void scope_call(struct pc_lua *h, const char *fn, int scope_ref, const char *name)
{
  lua_State *L = h->L;
  int value = lua_gettop(L);
  pc_lua_push_prelude(h, fn);                                /* value, fn */
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

/* Pushes the string `name`: the names bound for every attempt and item
 * are interned once (see pc_lua_instance_scope). */
static void push_name(struct pc_lua *h, const char *name)
{
  lua_State *L = h->L;
  if (strcmp(name, "result") == 0)
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->key_result_ref);
  else if (strcmp(name, "item") == 0)
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->key_item_ref);
  else if (strcmp(name, "index") == 0)
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->key_index_ref);
  else
    lua_pushstring(L, name);
}

/* Sets `name` in the scope to the value on top, which is replaced by the
 * name's old value. */
static void bind_top(struct pc_lua *h, int scope_ref, const char *name)
{
  lua_State *L = h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref); /* value, scope */
  push_name(h, name);                           /* value, scope, name */
  lua_rawget(L, -2);                            /* value, scope, old */
  lua_insert(L, -3);                            /* old, value, scope */
  push_name(h, name);                           /* old, value, scope, name */
  lua_rotate(L, -3, -1);                        /* old, scope, name, value */
  lua_rawset(L, -3);                            /* old, scope (scopes refuse __newindex) */
  lua_pop(L, 1);                                /* old */
}

void pc_lua_scope_bind(struct pc_lua *h, int scope_ref, const char *name)
{
  to_ro(h);                    /* value */
  bind_top(h, scope_ref, name); /* old */
}

/* Points the view at the value on top (popped), or at no_target. */
static void view_target(struct pc_lua *h, bool value)
{
  lua_State *L = h->L;
  if (!value)
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->no_target_ref); /* v */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->target_of_ref);   /* v, target_of */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->view_ref);        /* v, target_of, view */
  lua_rotate(L, -3, -1);                                 /* target_of, view, v */
  lua_rawset(L, -3);                                     /* target_of */
  lua_pop(L, 1);
}

bool pc_lua_scope_bind_view(struct pc_lua *h, int scope_ref, const char *name)
{
  lua_State *L = h->L;
  /* Expressions alone cannot keep a value past their evaluation, but a
   * function a plugin returned (steps.x.value.f(result)) could. Functions
   * reach expressions only in plugin steps' values (vars, env and the
   * engine's fields hold none), so once a plugin step has returned one
   * (pc_lua_note_plugin_value), results get proxies of their own, as
   * they did. */
  bool view = !h->view_bound && !h->plugin_values && lua_type(L, -1) == LUA_TTABLE;
  if (view) {
    /* A proxy already (ro's target_of knows it) is bound as it is. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->target_of_ref); /* v, target_of */
    lua_pushvalue(L, -2);
    view = lua_rawget(L, -2) == LUA_TNIL;                /* v, target_of, t */
    lua_pop(L, 2);                                       /* v */
  }
  if (!view) {
    pc_lua_scope_bind(h, scope_ref, name);
    return false;
  }
  h->view_bound = true;
  view_target(h, true);                           /* (v popped) */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->view_ref); /* view */
  bind_top(h, scope_ref, name);                   /* old */
  return true;
}

void pc_lua_scope_unbind_view(struct pc_lua *h, int scope_ref, const char *name, bool view)
{
  pc_lua_scope_unbind(h, scope_ref, name);
  if (view) {
    view_target(h, false);
    h->view_bound = false;
  }
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
  /* Room for `result` too, bound for each attempt's expect.that and
   * outputs: a third key would rehash the table on every attempt. */
  lua_createtable(L, 0, 3);                     /* item, index, scope */
  /* The keys are interned once (host.c): lua_setfield would look each C
   * string up in Lua's string cache, keyed by the literal's address, whose
   * hit or miss depends on where the linker put it. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->key_item_ref); /* ..., scope, "item" */
  lua_pushvalue(L, value);
  to_ro(h);                                     /* ..., scope, "item", item */
  lua_rawset(L, -3);                            /* no metatable yet: a raw set */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->key_index_ref); /* ..., scope, "index" */
  lua_pushvalue(L, value + 1);
  lua_rawset(L, -3);
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
  pc_lua_push_prelude(h, "get_step");                        /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref);  /* fn, scope */
  lua_pushstring(L, id);                         /* fn, scope, id */
  lua_call(L, 2, 1);                             /* value */
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

int pc__expr_call(struct pc_lua *h, int ref, int scope_ref, double limit_ms, const char *what,
                  char **msg)
{
  lua_State *L = h->L;
  lua_rawgeti(L, LUA_REGISTRYINDEX, ref);        /* fn */
  lua_rawgeti(L, LUA_REGISTRYINDEX, scope_ref);  /* fn, scope */
  lua_setupvalue(L, -2, 1);                      /* fn (with _ENV = scope) */
  char *m = NULL;
  if (pc_lua_call(h, 0, 1, limit_ms, what, false, &m) != 0) {
    *msg = pc_xstrdup(strip_chunk_prefix(m));
    free(m);
    return -1;
  }
  /* Hand back plain values, never proxies or JSON views. */
  if (lua_type(L, -1) == LUA_TTABLE || lua_type(L, -1) == LUA_TUSERDATA) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->unwrap_ref); /* value, unwrap */
    lua_insert(L, -2);                                /* unwrap, value */
    lua_call(L, 1, 1);                                /* value */
    strip_plugin_mt(h);
  }
  return 0;
}

int pc_lua_eval(struct pc_lua *h, const struct pc_expr *e, int scope_ref, char **err)
{
  if (e->ref == LUA_NOREF || e->ref == LUA_REFNIL) {
    *err = pc_asprintf("expression \"%s\" at %s:%d:%d was not compiled", e->src, e->file,
                       e->line, e->col);
    return -1;
  }
  char *msg = NULL;
  if (pc__expr_call(h, e->ref, scope_ref, PC__EXPR_LIMIT_MS,
                    "the expression ran for more than 1000 ms and was stopped", &msg) != 0) {
    *err = pc_asprintf("expression \"%s\" at %s:%d:%d failed: %s", e->src, e->file, e->line,
                       e->col, msg);
    free(msg);
    return -1;
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
