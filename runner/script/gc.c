/* gc.c: __gc finalizers of plugin tables, kept under pacer's guards.
 *
 * A __gc metamethod runs wherever the collector happens to be, with debug
 * hooks off: no guard could stop it. So the sandbox's setmetatable never
 * lets Lua mark a plugin's table for finalization: it marks a hidden
 * sentinel that lives exactly as long as the table (an ephemeron) and
 * whose C finalizer only queues the table. The queue is run after a
 * coroutine yields or returns (never inside anything), each finalizer in a
 * coroutine of its own under a guard. */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>

#include "base/log.h"
#include "base/util.h"
#include "script/host.h"
#include "script/internal.h"

#define FINALIZER_LIMIT_MS 1000.0 /* bound on the __gc finalizers run at one time */

void pc__gc_open(struct pc_lua *h)
{
  lua_State *L = h->L;
  lua_newtable(L);                             /* finq */
  h->finq_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  pc__push_weak_keys(L);                       /* sentinels */
  h->sentinels_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* setmetatable(t, mt) for plugin code: the standard function, except that
 * a metatable with __gc gets the table a sentinel (see the file's opening
 * paragraph) instead of Lua's own mark, and every metatable is noted as
 * plugin-made (luahost.h: C reads such tables raw). */
int l_gc_setmetatable(lua_State *L)
{
  struct pc_lua *h = pc__host(L);
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  if (t == LUA_TNIL) {
    lua_setmetatable(L, 1);
    return 1;
  }
  pc_lua_note_plugin_mt(h, L, 2);
  lua_pushliteral(L, "__gc");
  if (lua_rawget(L, 2) == LUA_TNIL) { /* t, mt, nil */
    lua_pop(L, 1);
    lua_setmetatable(L, 1);
    return 1;
  }
  /* Set it while __gc is absent, so that Lua does not mark t itself. */
  lua_pushliteral(L, "__gc");  /* t, mt, gc, "__gc" */
  lua_pushnil(L);
  lua_rawset(L, 2);            /* t, mt, gc */
  lua_pushvalue(L, 2);
  lua_setmetatable(L, 1);
  lua_pushliteral(L, "__gc");
  lua_insert(L, -2);           /* t, mt, "__gc", gc */
  lua_rawset(L, 2);            /* t, mt */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->sentinels_ref); /* t, mt, sentinels */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TNIL) {                   /* t, mt, sentinels, nil */
    lua_pop(L, 1);
    lua_pushvalue(L, 1);                                 /* ..., sentinels, t */
    lua_newuserdatauv(L, 0, 1);                          /* ..., sentinels, t, s */
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);                         /* s keeps t */
    luaL_setmetatable(L, "pacer.sentinel");
    lua_rawset(L, -3);                                   /* sentinels[t] = s */
  }
  lua_settop(L, 1);
  return 1;
}

/* __gc of a sentinel: its table is unreachable now; queue it. Runs inside
 * the collector (anywhere, hooks off), so it only appends to a list, with
 * the memory limit off: losing the entry would lose the finalizer. */
int l_gc_sentinel(lua_State *L)
{
  struct pc_lua *h = pc__host(L);
  if (h->finq_ref == LUA_NOREF)
    return 0;
  bool was = pc_lua_memory_enforce(h, false);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->finq_ref); /* s, q */
  lua_getiuservalue(L, 1, 1);                      /* s, q, t */
  lua_rawseti(L, -2, ++h->finq_tail);             /* s, q */
  lua_pop(L, 1);
  pc_lua_memory_enforce(h, was);
  return 0;
}

/* Where a function was defined, for messages: "FILE:LINE" or "?". */
static void defined_at(lua_State *L, int idx, char *out, size_t n)
{
  lua_Debug ar;
  snprintf(out, n, "?");
  if (lua_type(L, idx) != LUA_TFUNCTION)
    return;
  lua_pushvalue(L, idx);
  if (lua_getinfo(L, ">S", &ar) && ar.linedefined > 0) /* (pops the function) */
    snprintf(out, n, "%s:%d", ar.short_src, ar.linedefined);
}

/* Runs one queued table's finalizer (its metatable's __gc now, as Lua
 * would) in a coroutine of its own, until `until` at the latest. */
static void run_finalizer(struct pc_lua *h, double until)
{
  lua_State *L = h->L;
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->finq_ref); /* q */
  lua_rawgeti(L, -1, ++h->finq_head);             /* q, t */
  lua_pushnil(L);
  lua_rawseti(L, -3, h->finq_head);
  /* Its sentinel is spent: a setmetatable in the finalizer makes a new
   * one, and the table is finalized again, as Lua would. */
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->sentinels_ref); /* q, t, sentinels */
  lua_pushvalue(L, -2);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);                                   /* q, t */
  if (!lua_getmetatable(L, -1)) {                  /* q, t, mt */
    lua_settop(L, top);
    return;
  }
  lua_pushliteral(L, "__gc");
  if (lua_rawget(L, -2) == LUA_TNIL) {             /* q, t, mt, gc */
    lua_settop(L, top);
    return;
  }
  char where[300], label[340];
  defined_at(L, -1, where, sizeof where);
  snprintf(label, sizeof label, "__gc finalizer at %s", where);
  lua_State *co = lua_newthread(L);                /* q, t, mt, gc, co */
  *pc__thread_slot(co) = PC__HOST_THREAD;
  lua_pushvalue(L, -2);
  lua_pushvalue(L, -5);
  lua_xmove(L, co, 2);                             /* (co) gc, t */
  struct pc_lua_guard saved, ended;
  pc_lua_guard_enter(h, &saved, co, until, label,
                     "a __gc finalizer ran for too long and was stopped", PC_LUA_GUARD_STOP);
  int nres = 0;
  int st = lua_resume(co, L, 1, &nres);
  pc_lua_guard_leave(h, &saved, &ended);
  if (st == LUA_YIELD) {
    pc_log(PC_LOG_WARN, NULL, "the %s %s", label,
           ended.stopped ? "ran for too long and was stopped" : "yielded and was stopped");
  } else if (st != LUA_OK) {
    char *msg = pc_lua_error_text(h, co, st, false);
    pc_log(PC_LOG_WARN, NULL, "error in the %s: %s", label, msg);
    free(msg);
  }
  if (!(ended.raised_on_co && st != LUA_OK && st != LUA_YIELD)) { /* see reset_thread */
    pc_lua_guard_enter(h, &saved, co, until, label,
                       "a __gc finalizer's <close> handler ran for too long", 0);
    lua_resetthread(co);
    pc_lua_guard_leave(h, &saved, NULL);
  }
  *pc__thread_slot(co) = NULL;
  lua_settop(L, top);
}

/* Runs the finalizers queued so far (not those they cause: a finalizer
 * that makes garbage with finalizers cannot keep this going), for
 * FINALIZER_LIMIT_MS at most; the rest wait for the next time. Called only
 * when no Lua code is running. */
void pc__run_finalizers(struct pc_lua *h)
{
  if (h->finq_head == h->finq_tail || h->in_finalizers || h->current)
    return;
  h->in_finalizers = true;
  double until = pc_mono_ms() + FINALIZER_LIMIT_MS;
  lua_Integer end = h->finq_tail;
  while (h->finq_head < end && pc_mono_ms() < until)
    run_finalizer(h, until);
  if (h->finq_head == h->finq_tail)
    h->finq_head = h->finq_tail = 0;
  h->in_finalizers = false;
}
