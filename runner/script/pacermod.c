/* pacermod.c: the `pacer` Lua module assembled in one place. The C
 * functions come one file per area (mod_task.c, mod_sleep.c, mod_sync.c,
 * mod_exec.c, mod_http.c, mod_misc.c, gc.c; asynchronous ones on coro.h);
 * lua/pacer.lua builds the rest on top of them (gather, timeout, log, json,
 * the plugin sandbox) and returns the table the C side calls: load_plugin,
 * check_input, prepare_run, inline_args, new_env, module... */
#include "script/pacermod.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "base/util.h"
#include "script/host.h"
#include "script/internal.h"
#include "script/json.h"

const char *pc__cstring(lua_State *L, int idx, const char *who, const char *what, ...)
{
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (s && strlen(s) == len)
    return s;
  char name[200];
  va_list ap;
  va_start(ap, what);
  vsnprintf(name, sizeof name, what, ap);
  va_end(ap);
  if (!s)
    luaL_error(L, "%s: %s must be a string, got %s", who, name, luaL_typename(L, idx));
  luaL_error(L, "%s: %s contains a NUL byte", who, name);
  return NULL;
}

static void new_class(lua_State *L, const char *name, const luaL_Reg *methods,
                      const luaL_Reg *metas)
{
  luaL_newmetatable(L, name); /* mt */
  lua_newtable(L);            /* mt, methods */
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index"); /* mt */
  if (metas)
    luaL_setfuncs(L, metas, 0);
  lua_pushliteral(L, "pacer object");
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

/* The objects the module hands out. */
static void open_classes(lua_State *L)
{
  static const luaL_Reg task_m[] = {{"wait", l_task_wait}, {"cancel", l_task_cancel},
                                    {"status", l_task_status}, {NULL, NULL}};
  static const luaL_Reg task_mm[] = {{"__tostring", l_task_tostring}, {NULL, NULL}};
  new_class(L, "pacer.task", task_m, task_mm);
  static const luaL_Reg sem_m[] = {{"acquire", l_sync_sem_acquire},
                                   {"available", l_sync_sem_available}, {NULL, NULL}};
  new_class(L, "pacer.semaphore", sem_m, NULL);
  static const luaL_Reg pool_m[] = {{"acquire", l_sync_pool_acquire}, {NULL, NULL}};
  new_class(L, "pacer.pool", pool_m, NULL);
  static const luaL_Reg permit_m[] = {{"release", l_sync_permit_release},
                                      {"held", l_sync_permit_held}, {NULL, NULL}};
  static const luaL_Reg permit_mm[] = {{"__close", l_sync_permit_release},
                                       {"__gc", l_sync_permit_release}, {NULL, NULL}};
  new_class(L, "pacer.permit", permit_m, permit_mm);
  static const luaL_Reg sentinel_mm[] = {{"__gc", l_gc_sentinel}, {NULL, NULL}};
  static const luaL_Reg none[] = {{NULL, NULL}};
  new_class(L, "pacer.sentinel", none, sentinel_mm);
}

/* The primitives lua/pacer.lua receives as `core`. */
static const luaL_Reg core_funcs[] = {
    {"sleep", l_sleep_wait},
    {"spawn", l_task_spawn},
    {"child", l_task_child},
    {"next_done", l_task_next_done},
    {"cancel", l_task_cancel},
    {"semaphore", l_sync_semaphore},
    {"pool", l_sync_pool},
    {"exec", l_exec_run},
    {"http_request", l_http_request},
    {"log", l_misc_log},
    {"out", l_misc_out},
    {"read_file", l_misc_read_file},
    {"is_managed", l_misc_is_managed},
    {"guard_tripped", l_misc_guard_tripped},
    {"setmetatable", l_gc_setmetatable},
    {NULL, NULL},
};

static int open_module(lua_State *L)
{
  struct pc_lua *h = lua_touserdata(L, 1);
  open_classes(L);
  pc__gc_open(h);

  const struct pc_embedded *e = pc__embedded("pacer");
  if (!e)
    return luaL_error(L, "pacer.lua is not embedded");
  if (luaL_loadbuffer(L, e->data, e->len, "=pacer.lua") != LUA_OK) /* chunk */
    return lua_error(L);

  luaL_newlib(L, core_funcs);                      /* chunk, core */
  luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);  /* chunk, core, os */
  lua_getfield(L, -1, "time");
  lua_setfield(L, -3, "os_time");
  lua_getfield(L, -1, "clock");
  lua_setfield(L, -3, "os_clock");
  lua_getfield(L, -1, "date");
  lua_setfield(L, -3, "os_date");
  lua_pop(L, 1);                                   /* chunk, core */
  luaL_requiref(L, LUA_DBLIBNAME, luaopen_debug, 0); /* chunk, core, debug */
  lua_getfield(L, -1, "traceback");
  lua_setfield(L, -3, "traceback");
  lua_pop(L, 1);                                   /* chunk, core */
  /* Neither library stays reachable by name: drop them from package.loaded. */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* chunk, core, loaded */
  lua_pushnil(L);
  lua_setfield(L, -2, LUA_OSLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, LUA_DBLIBNAME);
  lua_getfield(L, -1, PC_JSON_MODULE);             /* chunk, core, loaded, json */
  lua_remove(L, -2);                               /* chunk, core, json */
  pc_lua_push_prelude(h, NULL);                    /* chunk, core, json, P */
  lua_insert(L, -2);                               /* chunk, core, P, json */
  lua_call(L, 3, 1);                               /* M */
  h->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  /* The string metatable is shared by every string in the state: keep
   * plugins from replacing its __index. */
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);                         /* "", mt */
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  return 0;
}

int pc_pacer_open(struct pc_lua *h, char **err)
{
  if (h->module_ref != LUA_NOREF)
    return 0;
  lua_pushcfunction(h->L, open_module);
  lua_pushlightuserdata(h->L, h);
  char *msg = NULL;
  if (pc_lua_call(h, 1, 0, PC_LUA_HOST_CODE, NULL, true, &msg) != 0) {
    *err = pc_asprintf("cannot build the pacer module: %s", msg);
    free(msg);
    return -1;
  }
  return 0;
}

void pc_pacer_push(struct pc_lua *h, const char *name)
{
  lua_State *L = h->L;
  assert(h->module_ref != LUA_NOREF);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->module_ref); /* M */
  lua_getfield(L, -1, name);                        /* M, value */
  lua_remove(L, -2);                                /* value */
}

int pc_pacer_call(struct pc_lua *h, int nargs, int nres, double limit_ms, const char *what,
                  char **err)
{
  assert(h->module_ref != LUA_NOREF && !h->current);
  int rc = pc_lua_call(h, nargs, nres, limit_ms, what, true, err);
  pc__run_finalizers(h); /* above the results, and leaves the stack as it was */
  return rc;
}
