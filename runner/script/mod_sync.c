/* mod_sync.c: permits. pacer.semaphore(n) makes a semaphore of the plugin's
 * own; pacer.pool(NAME) names one of the workflow's pools (base/pool.h),
 * shared with the steps that use it. Both hand out permits (userdata
 * "pacer.permit", released by :release(), a <close> variable or the
 * collector). A held permit is on its job's hold list (coro.h), so the job
 * releases whatever its code forgot when it ends. Waiters are served in
 * the order they came. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "base/pool.h"
#include "base/util.h"
#include "script/coro.h"
#include "script/internal.h"

enum permit_kind { PERMIT_SEM, PERMIT_POOL };

struct sem {
  lua_Integer size;
  lua_Integer avail;
  struct pc_queue waiters; /* struct semw, oldest first */
};

struct semw {
  struct pc_queue node; /* in sem->waiters while queued */
  struct sem *sem;      /* kept alive by the waiting coroutine's stack */
  struct pc_coro *co;
  bool granted;
};

struct permit {
  enum permit_kind kind;
  struct sem *sem;          /* kept alive by the permit's user value */
  struct pc_pool *pool;     /* valid while held (the run outlives its steps) */
  struct pc_coro_hold hold; /* on the job's list while held */
  bool held;
};

static void sem_give(struct sem *sem)
{
  if (pc_queue_empty(&sem->waiters)) {
    sem->avail++;
    return;
  }
  struct semw *w = pc_queue_data(pc_queue_head(&sem->waiters), struct semw, node);
  pc_queue_remove(&w->node);
  w->granted = true;
  pc_coro_wake(w->co);
}

static void release_permit(struct permit *p)
{
  if (!p->held)
    return;
  p->held = false;
  pc_coro_unhold(&p->hold);
  if (p->kind == PERMIT_SEM)
    sem_give(p->sem);
  else
    pc_pool_release(p->pool);
}

static void on_job_end(struct pc_coro_hold *x)
{
  release_permit(PC_CONTAINER_OF(x, struct permit, hold));
}

/* Pushes a held permit; the object at `owner_idx` (the semaphore) is kept
 * alive through the permit's user value. */
static void push_permit(lua_State *L, struct pc_coro *co, enum permit_kind kind, int owner_idx,
                        struct sem *sem, struct pc_pool *pool)
{
  owner_idx = lua_absindex(L, owner_idx);
  struct permit *p = lua_newuserdatauv(L, sizeof *p, 1);
  memset(p, 0, sizeof *p);
  luaL_setmetatable(L, "pacer.permit");
  lua_pushvalue(L, owner_idx);
  lua_setiuservalue(L, -2, 1);
  p->kind = kind;
  p->sem = sem;
  p->pool = pool;
  p->held = true;
  p->hold.what = "a permit";
  p->hold.release = on_job_end;
  pc_coro_hold(pc_coro_job_of(co), &p->hold);
}

int l_sync_permit_release(lua_State *L)
{
  release_permit(luaL_checkudata(L, 1, "pacer.permit"));
  return 0;
}

int l_sync_permit_held(lua_State *L)
{
  struct permit *p = luaL_checkudata(L, 1, "pacer.permit");
  lua_pushboolean(L, p->held);
  return 1;
}

/* ========================================================== semaphores */

static void semw_cancel(void *data)
{
  struct semw *w = data;
  pc_queue_remove(&w->node); /* if still queued */
  if (w->granted)
    sem_give(w->sem);
  free(w);
}

static int sem_acquire_k(lua_State *L, int status, lua_KContext ctx)
{
  struct semw *w = pc_coro_woken(L);
  struct sem *sem = w->sem;
  struct pc_coro *co = w->co;
  free(w);
  push_permit(L, co, PERMIT_SEM, 1, sem, NULL);
  return 1;
}

int l_sync_sem_acquire(lua_State *L)
{
  struct sem *sem = luaL_checkudata(L, 1, "pacer.semaphore");
  lua_settop(L, 1);
  struct pc_coro *co = pc_coro_check(L, "semaphore:acquire");
  if (sem->avail > 0 && pc_queue_empty(&sem->waiters)) {
    sem->avail--;
    push_permit(L, co, PERMIT_SEM, 1, sem, NULL);
    return 1;
  }
  struct semw *w = pc_xcalloc(1, sizeof *w);
  w->sem = sem;
  w->co = co;
  pc_queue_insert_tail(&sem->waiters, &w->node);
  return pc_coro_await(L, co, semw_cancel, w, sem_acquire_k);
}

int l_sync_sem_available(lua_State *L)
{
  struct sem *sem = luaL_checkudata(L, 1, "pacer.semaphore");
  lua_pushinteger(L, sem->avail);
  return 1;
}

int l_sync_semaphore(lua_State *L)
{
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n >= 1, 1, "a semaphore needs at least one permit");
  struct sem *sem = lua_newuserdatauv(L, sizeof *sem, 0);
  memset(sem, 0, sizeof *sem);
  sem->size = sem->avail = n;
  pc_queue_init(&sem->waiters);
  luaL_setmetatable(L, "pacer.semaphore");
  return 1;
}

/* =============================================================== pools */

/* pacer.pool(NAME): a table {name = NAME} with the "pacer.pool" metatable;
 * the pool itself is looked up in the running workflow at acquire time, so
 * a plugin may create it while it loads. */
struct poolw {
  struct pc_pool_waiter w;
  struct pc_pool *pool;
  struct pc_coro *co;
  bool granted;
};

static void on_pool_granted(struct pc_pool_waiter *w)
{
  struct poolw *pw = w->data;
  pw->granted = true;
  pc_coro_wake(pw->co);
}

static void poolw_cancel(void *data)
{
  struct poolw *pw = data;
  if (pw->granted)
    pc_pool_release(pw->pool);
  else
    pc_pool_cancel(&pw->w);
  free(pw);
}

static int pool_acquire_k(lua_State *L, int status, lua_KContext ctx)
{
  struct poolw *pw = pc_coro_woken(L);
  struct pc_pool *pool = pw->pool;
  struct pc_coro *co = pw->co;
  free(pw);
  push_permit(L, co, PERMIT_POOL, 1, NULL, pool);
  return 1;
}

/* The workflow's pool named `name`, or NULL (also where there is no run). */
static struct pc_pool *find_pool(struct pc_coro *co, const char *name)
{
  struct pc_run *run = pc_coro_run(co);
  return run ? pc_run_pool(run, name) : NULL;
}

int l_sync_pool_acquire(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getfield(L, 1, "name") != LUA_TSTRING)
    return luaL_error(L, "pool:acquire: not a pool object (call it as p:acquire())");
  const char *name = pc__cstring(L, -1, "pool:acquire", "the pool's name");
  struct pc_coro *co = pc_coro_check(L, "pool:acquire");
  struct pc_pool *pool = find_pool(co, name);
  if (!pool)
    return luaL_error(L, "pacer.pool: the workflow has no pool named \"%s\"", name);
  lua_pop(L, 1);
  struct poolw *pw = pc_xcalloc(1, sizeof *pw);
  pw->pool = pool;
  pw->co = co;
  pw->w.data = pw;
  if (pc_pool_acquire(pool, &pw->w, on_pool_granted)) {
    free(pw);
    push_permit(L, co, PERMIT_POOL, 1, NULL, pool);
    return 1;
  }
  return pc_coro_await(L, co, poolw_cancel, pw, pool_acquire_k);
}

int l_sync_pool(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TSTRING);
  const char *name = pc__cstring(L, 1, "pacer.pool", "the name");
  struct pc_coro *co = pc_coro_of(L);
  if (co && !find_pool(co, name))
    return luaL_error(L, "pacer.pool: the workflow has no pool named \"%s\"", name);
  lua_createtable(L, 0, 1);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "name");
  luaL_setmetatable(L, "pacer.pool");
  return 1;
}
