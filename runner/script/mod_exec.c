/* mod_exec.c: pacer.exec(argv, opts), a program run without a shell by
 * the run's process set (proc/proc.h), as the `exec` action runs one:
 * its own process group, output captured and logged line by line; and the
 * result table both share (mod_exec.h). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <uv.h>

#include "script/mod_exec.h"

#include "proc/proc.h"
#include "base/util.h"
#include "script/coro.h"
#include "script/internal.h"

/* ========================================================= the result */

void pc_exec_result_fill(lua_State *L, int idx, const struct pc_proc_result *r, bool finished)
{
  idx = lua_absindex(L, idx);
  if (finished && r->exit_code >= 0)
    lua_pushinteger(L, r->exit_code);
  else
    lua_pushnil(L);
  lua_setfield(L, idx, "exit_code");
  if (finished && r->signal)
    lua_pushstring(L, pc_signal_name(r->signal));
  else
    lua_pushnil(L);
  lua_setfield(L, idx, "signal");
  lua_pushlstring(L, r->out ? r->out : "", r->out_len);
  lua_setfield(L, idx, "stdout");
  lua_pushlstring(L, r->err ? r->err : "", r->err_len);
  lua_setfield(L, idx, "stderr");
  lua_pushboolean(L, r->out_truncated);
  lua_setfield(L, idx, "stdout_truncated");
  lua_pushboolean(L, r->err_truncated);
  lua_setfield(L, idx, "stderr_truncated");
  lua_pushboolean(L, r->out_truncated || r->err_truncated);
  lua_setfield(L, idx, "truncated");
}

/* ========================================================= pacer.exec */

struct exec_op {
  struct pc_coro *co;
  struct pc_proc *proc;     /* NULL once it reported */
  struct pc_proc_result r;  /* once it reported; out and err are ours */
};

static void exec_op_free(struct exec_op *op)
{
  free((char *)op->r.out);
  free((char *)op->r.err);
  free(op);
}

/* From a libuv callback: the result is valid only now, so it is copied. */
static void on_exec_done(void *data, const struct pc_proc_result *r)
{
  struct exec_op *op = data;
  op->proc = NULL;
  op->r = *r;
  op->r.out = pc_xstrndup(r->out ? r->out : "", r->out_len);
  op->r.err = pc_xstrndup(r->err ? r->err : "", r->err_len);
  pc_coro_wake(op->co);
}

static void exec_cancel(void *data)
{
  struct exec_op *op = data;
  if (op->proc)
    pc_proc_cancel(op->proc);
  exec_op_free(op);
}

static int exec_k(lua_State *L, int status, lua_KContext ctx)
{
  struct exec_op *op = pc_coro_woken(L);
  lua_createtable(L, 0, 7);
  pc_exec_result_fill(L, -1, &op->r, true);
  exec_op_free(op);
  return 1;
}

/* pacer.exec(argv, {env =, cwd =, stdin =, log =}) -> {exit_code, signal,
 * stdout, stderr, truncated}; nil, message when the program cannot start. */
int l_exec_run(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2))
    luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_Integer n = luaL_len(L, 1);
  luaL_argcheck(L, n >= 1 && n < 4096, 1, "argv must be a non-empty list of strings");
  struct pc_coro *co = pc_coro_check(L, "pacer.exec");
  luaL_checkstack(L, (int)n + 8, "too many arguments");
  /* Strings stay on the stack (slots 3..) while spawning copies them. */
  const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0); /* 3 */
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
      return luaL_error(L, "pacer.exec: argv[%d] is a %s, not a string", (int)i,
                        luaL_typename(L, -1));
    argv[i - 1] = pc__cstring(L, -1, "pacer.exec", "argv[%d]", (int)i);
  }
  argv[n] = NULL;
  struct pc_proc_opts o;
  memset(&o, 0, sizeof o);
  o.argv = argv;
  const char **env = NULL;
  bool log_output = true;
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, "cwd") != LUA_TNIL) {
      luaL_checktype(L, -1, LUA_TSTRING);
      o.cwd = pc__cstring(L, -1, "pacer.exec", "cwd");
    }
    if (lua_getfield(L, 2, "stdin") != LUA_TNIL)
      o.stdin_data = luaL_checklstring(L, -1, &o.stdin_len);
    if (lua_getfield(L, 2, "log") != LUA_TNIL)
      log_output = lua_toboolean(L, -1);
    if (lua_getfield(L, 2, "env") != LUA_TNIL) {
      luaL_checktype(L, -1, LUA_TTABLE);
      int envt = lua_gettop(L);
      lua_newtable(L); /* the "NAME=VALUE" strings, anchored while spawning */
      int strs = lua_gettop(L);
      lua_Integer cnt = 0;
      lua_pushnil(L);
      while (lua_next(L, envt)) {                          /* key, value */
        if (lua_type(L, -2) != LUA_TSTRING)
          return luaL_error(L, "pacer.exec: env names must be strings");
        const char *k = pc__cstring(L, -2, "pacer.exec", "an env name");
        if (!*k || strchr(k, '='))
          return luaL_error(L, "pacer.exec: env: \"%s\" is not a valid variable name", k);
        int vt = lua_type(L, -1);
        if (vt != LUA_TSTRING && vt != LUA_TNUMBER && vt != LUA_TBOOLEAN)
          return luaL_error(L, "pacer.exec: env: the value of %s must be a string, got %s", k,
                            luaL_typename(L, -1));
        const char *v = luaL_tolstring(L, -1, NULL);      /* key, value, vtext */
        v = pc__cstring(L, -1, "pacer.exec", "env %s", k);
        lua_pushfstring(L, "%s=%s", k, v);                 /* ..., "k=v" */
        lua_rawseti(L, strs, ++cnt);                       /* key, value, vtext */
        lua_pop(L, 2);                                     /* key */
      }
      env = lua_newuserdatauv(L, sizeof(char *) * (size_t)(cnt + 1), 0);
      for (lua_Integer i = 1; i <= cnt; i++) {
        lua_rawgeti(L, strs, i);
        env[i - 1] = lua_tostring(L, -1);
        lua_pop(L, 1);
      }
      env[cnt] = NULL;
      o.env = env;
    }
  }
  o.label = log_output ? pc_coro_label(co) : NULL;
  struct pc_run *run = pc_coro_run(co);
  if (!run)
    return luaL_error(L, "pacer.exec: no process runner here");
  struct exec_op *op = pc_xcalloc(1, sizeof *op);
  op->co = co;
  int rc = pc_proc_spawn(pc_proc_set_of(run), &o, on_exec_done, op, &op->proc);
  if (rc) {
    free(op);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot start \"%s\": %s", argv[0], uv_strerror(rc));
    return 2;
  }
  return pc_coro_await(L, co, exec_cancel, op, exec_k);
}
