/* mod_task.c: coroutines as Lua sees them. pacer.spawn makes a task owned
 * by the job (a handle with :wait(), :cancel(), :status()); lua/pacer.lua
 * builds pacer.gather and pacer.timeout on core.child (a child of the
 * caller, closed with it) and core.next_done (the next child that ended).
 * The coroutines themselves are coro.c's; a handle's payload (packed
 * results, or the error) is set there when the coroutine ends. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/util.h"
#include "script/coro.h"
#include "script/internal.h"

static struct pc__task *check_task(lua_State *L, int idx)
{
  return luaL_checkudata(L, idx, "pacer.task");
}

/* Starts fn(args...) (stack index 1..) in a new coroutine, a child of the
 * caller or a task of its job, and pushes its handle. */
static int start_task(lua_State *L, bool child, const char *what)
{
  struct pc_coro *me = pc_coro_check(L, what);
  luaL_checkany(L, 1);
  int nargs = lua_gettop(L) - 1;
  struct pc__task *t = lua_newuserdatauv(L, sizeof *t, 1); /* fn, args..., task */
  t->co = NULL;
  t->state = PC__TASK_RUNNING;
  luaL_setmetatable(L, "pacer.task");
  lua_insert(L, 1);                                         /* task, fn, args... */
  struct pc_coro *co = pc__coro_new(me->job, L, nargs, child ? me : NULL); /* task */
  co->task = t;
  t->co = co;
  lua_pushvalue(L, 1);                                      /* task, task */
  co->task_ref = luaL_ref(L, LUA_REGISTRYINDEX);            /* task */
  if (!child) {
    co->spawned = true;
    luaL_where(L, 1);
    co->where = pc_xstrdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    size_t n = strlen(co->where);
    if (n >= 2 && co->where[n - 2] == ':' && co->where[n - 1] == ' ')
      co->where[n - 2] = '\0';
    if (!co->where[0]) {
      free(co->where);
      co->where = pc_xstrdup("?");
    }
  }
  return 1;
}

int l_task_spawn(lua_State *L)
{
  return start_task(L, false, "pacer.spawn");
}

int l_task_child(lua_State *L)
{
  return start_task(L, true, "pacer.gather");
}

/* Pushes handle, ok, payload for a finished handle at the top. */
static int push_outcome(lua_State *L, struct pc__task *t)
{
  lua_pushboolean(L, t->state == PC__TASK_OK); /* task, ok */
  lua_getiuservalue(L, -2, 1);                 /* task, ok, payload */
  return 3;
}

static void next_done_cancel(void *data)
{
  struct pc_coro *co = data;
  co->in_next_done = false;
}

static int next_done_k(lua_State *L, int status, lua_KContext ctx);

/* core.next_done() -> handle, ok, payload of the next child that ended
 * (waiting for one if none has). */
int l_task_next_done(lua_State *L)
{
  struct pc_coro *me = pc_coro_check(L, "pacer.gather");
  if (me->doneq_head < me->doneq_tail) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, me->doneq_ref); /* q */
    lua_rawgeti(L, -1, ++me->doneq_head);             /* q, task */
    lua_pushnil(L);
    lua_rawseti(L, -3, me->doneq_head);
    lua_remove(L, -2);                                /* task */
    return push_outcome(L, lua_touserdata(L, -1));
  }
  if (!pc__coro_open_kid(me))
    return luaL_error(L, "pacer: next_done without running children");
  me->in_next_done = true;
  return pc_coro_await(L, me, next_done_cancel, me, next_done_k);
}

static int next_done_k(lua_State *L, int status, lua_KContext ctx)
{
  struct pc_coro *me = pc_coro_woken(L);
  me->in_next_done = false;
  return l_task_next_done(L);
}

static void wait_cancel(void *data)
{
  pc__coro_unwait(data);
}

static int task_wait_k(lua_State *L, int status, lua_KContext ctx);

/* task:wait() -> what the task returned; raises what it raised, or that it
 * was cancelled. */
int l_task_wait(lua_State *L)
{
  struct pc__task *t = check_task(L, 1);
  lua_settop(L, 1);
  if (t->co) {
    struct pc_coro *me = pc_coro_check(L, "task:wait");
    if (t->co == me)
      return luaL_error(L, "task:wait: a task cannot wait for itself");
    t->co->waited = true;
    me->awaiting = t->co;
    pc_queue_insert_head(&t->co->waiters, &me->waiting);
    return pc_coro_await(L, me, wait_cancel, me, task_wait_k);
  }
  lua_getiuservalue(L, 1, 1); /* task, payload */
  if (t->state == PC__TASK_OK) {
    lua_Integer n = (lua_getfield(L, 2, "n"), lua_tointeger(L, -1));
    lua_pop(L, 1);
    luaL_checkstack(L, (int)n, "too many results");
    for (lua_Integer i = 1; i <= n; i++)
      lua_rawgeti(L, 2, i);
    return (int)n;
  }
  if (t->state == PC__TASK_CANCELLED && lua_type(L, 2) == LUA_TSTRING)
    return luaL_error(L, "task:wait: the task was %s", lua_tostring(L, 2));
  return lua_error(L);
}

static int task_wait_k(lua_State *L, int status, lua_KContext ctx)
{
  pc_coro_woken(L);
  return l_task_wait(L);
}

int l_task_cancel(lua_State *L)
{
  struct pc__task *t = check_task(L, 1);
  if (t->co) {
    t->co->waited = true; /* cancelling counts as dealing with it */
    pc__coro_close(t->co, "cancelled");
  }
  struct pc_coro *me = pc_coro_of(L);
  if (me && me->kill_requested && lua_isyieldable(L))
    return lua_yield(L, 0); /* coro_run closes it */
  return 0;
}

int l_task_status(lua_State *L)
{
  struct pc__task *t = check_task(L, 1);
  static const char *const names[] = {"running", "ok", "error", "cancelled"};
  lua_pushstring(L, names[t->state]);
  return 1;
}

int l_task_tostring(lua_State *L)
{
  struct pc__task *t = check_task(L, 1);
  lua_pushfstring(L, "pacer.task (%p)", (void *)t);
  return 1;
}
