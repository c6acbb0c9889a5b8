/* mod_sleep.c: pacer.sleep(seconds), the simplest asynchronous primitive:
 * a timer on the job's loop, cancelled by closing it. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <uv.h>

#include "base/util.h"
#include "script/internal.h"

struct sleep_op {
  uv_timer_t timer;
  struct pc_coro *co;
};

static void on_sleep_closed(uv_handle_t *h)
{
  free(PC_CONTAINER_OF(h, struct sleep_op, timer));
}

static void on_sleep_fired(uv_timer_t *t)
{
  pc_coro_wake(PC_CONTAINER_OF(t, struct sleep_op, timer)->co);
}

/* Completed or not: closing stops the timer, and the op is freed once the
 * close callback has run. */
static void sleep_cancel(void *data)
{
  struct sleep_op *op = data;
  uv_close((uv_handle_t *)&op->timer, on_sleep_closed);
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx)
{
  sleep_cancel(pc_coro_woken(L));
  return 0;
}

int l_sleep_wait(lua_State *L)
{
  lua_Number sec = luaL_checknumber(L, 1);
  luaL_argcheck(L, sec >= 0 && sec <= 30.0 * 86400, 1, "seconds must be between 0 and 30 days");
  struct pc_coro *co = pc_coro_check(L, "pacer.sleep");
  uv_loop_t *loop = pc_coro_loop(co);
  struct sleep_op *op = pc_xmalloc(sizeof *op);
  op->co = co;
  uv_timer_init(loop, &op->timer);
  uv_update_time(loop); /* the cached clock may be stale */
  uv_timer_start(&op->timer, on_sleep_fired, (uint64_t)llround(sec * 1000.0), 0);
  return pc_coro_await(L, co, sleep_cancel, op, sleep_k);
}
