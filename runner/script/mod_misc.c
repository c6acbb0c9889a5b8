/* mod_misc.c: the `pacer` functions that need C but never wait: logging
 * with the step's label, stdout (the sandbox's print), reading a file, the
 * clock, and the two questions the sandbox in lua/pacer.lua asks (is this
 * coroutine pacer's? has the guard stopped the code?). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/log.h"
#include "base/util.h"
#include "script/coro.h"
#include "script/host.h"
#include "script/internal.h"

/* core.log(level, text): one log line with the label of the running job. */
int l_misc_log(lua_State *L)
{
  const char *level = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TSTRING);
  const char *text = pc__cstring(L, 2, "pacer.log", "the message");
  struct pc_coro *co = pc_coro_of(L);
  if (!co)
    co = pc__host(L)->current; /* a user coroutine inside a job's */
  enum pc_log_level lvl = PC_LOG_INFO;
  if (strcmp(level, "debug") == 0)
    lvl = PC_LOG_DEBUG;
  else if (strcmp(level, "warn") == 0)
    lvl = PC_LOG_WARN;
  else if (strcmp(level, "error") == 0)
    lvl = PC_LOG_ERROR;
  pc_log(lvl, co ? pc_coro_label(co) : NULL, "%s", text);
  return 0;
}

/* core.out(text): a line on stdout (print). */
int l_misc_out(lua_State *L)
{
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  int err = pc_out_line(text, len);
  if (err)
    return luaL_error(L, "cannot write to stdout: %s", strerror(-err));
  return 0;
}

/* core.read_file(path) -> text, or nil, message (4 MiB at most). */
int l_misc_read_file(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  char *text = NULL;
  size_t len = 0;
  int err = pc_read_file(path, (size_t)4 << 20, &text, &len);
  if (err) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s: %s", path, strerror(-err));
    return 2;
  }
  lua_pushlstring(L, text, len);
  free(text);
  return 1;
}

/* now(): wall-clock seconds, to the millisecond (the helper of SPEC §4
 * and pacer.now). */
int l_misc_now(lua_State *L)
{
  lua_pushnumber(L, floor(pc_wall_ms()) / 1000.0);
  return 1;
}

/* core.is_managed(thread): true for the threads plugin code must not
 * resume, close or yield by hand: pacer's coroutines, the ones it runs
 * finalizers in, and the main thread (which is never a suspended
 * coroutine, whatever its stack holds). */
int l_misc_is_managed(lua_State *L)
{
  lua_State *T = lua_tothread(L, 1);
  bool managed = false;
  if (T) {
    managed = *pc__thread_slot(T) != NULL;
    if (!managed) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD); /* T, main */
      managed = lua_tothread(L, -1) == T;
      lua_pop(L, 1);
    }
  }
  lua_pushboolean(L, managed);
  return 1;
}

/* core.guard_tripped(): whether the guard of the code running now has
 * stopped it (the sandbox's xpcall then skips the message handler). */
int l_misc_guard_tripped(lua_State *L)
{
  lua_pushboolean(L, pc_lua_guard_tripped(pc__host(L)));
  return 1;
}
