/* mod_sleep.c: pacer.sleep(seconds), the simplest asynchronous primitive:
 * a sleep of the host's set (base/sleep.h, the implementation the `sleep`
 * action uses too: sleeps ending in the same millisecond share a timer). */
#include <stdlib.h>

#include <lauxlib.h>

#include "base/sleep.h"
#include "base/util.h"
#include "script/coro.h"
#include "script/internal.h"

struct sleep_op {
  struct pc_sleep sleep;
  struct pc_coro *co;
};

static void on_slept(struct pc_sleep *s)
{
  pc_coro_wake(PC_CONTAINER_OF(s, struct sleep_op, sleep)->co);
}

/* Over or not: a sleep that still waits stops. */
static void sleep_cancel(void *data)
{
  struct sleep_op *op = data;
  pc_sleep_stop(&op->sleep);
  free(op);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
  free(pc_coro_woken(L));
  return 0;
}

int l_sleep_wait(lua_State *L)
{
  lua_Number sec = luaL_checknumber(L, 1);
  luaL_argcheck(L, sec >= 0 && sec <= 30.0 * 86400, 1, "seconds must be between 0 and 30 days");
  struct pc_coro *co = pc_coro_check(L, "pacer.sleep");
  struct pc_lua *h = pc__host(L);
  if (!h->sleeps.cb)
    pc_sleeps_init(&h->sleeps, on_slept);
  struct sleep_op *op = pc_xcalloc(1, sizeof *op);
  op->co = co;
  pc_sleep_start(&h->sleeps, pc_coro_loop(co), &op->sleep, sec * 1000.0);
  return pc_coro_await(L, co, sleep_cancel, op, sleep_k);
}
