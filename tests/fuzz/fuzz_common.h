/* fuzz_common.h: what both libFuzzer harnesses share.
 *
 * Fuzzed Lua code may allocate without bound (`range(1, 1e9)`, `("x"):rep(n)`)
 * or spin until the expression CPU guard stops it (1 s). Neither is a bug
 * in the sense a fuzzer looks for, but both would drown the run in OOM and
 * timeout reports or slow it to one input a second. So the harnesses
 *   - cap the Lua state's memory by wrapping its allocator (the wrapper
 *     forwards to whatever allocator luahost.c installed, and refuses to
 *     grow past FUZZ_LUA_MEMORY; Lua turns that into "not enough memory",
 *     which pc_lua_eval reports as an ordinary error), and
 *   - speed up the clock the CPU guard reads: the fuzz build links with
 *     -Wl,--wrap=pc_mono_ms, and __wrap_pc_mono_ms runs FUZZ_CLOCK_SPEEDUP
 *     times faster than real time, so the guard trips after 1000/SPEEDUP ms
 *     of real CPU. Nothing else the harnesses reach reads that clock. */
#ifndef PACER_FUZZ_COMMON_H
#define PACER_FUZZ_COMMON_H

#include <stddef.h>
#include <stdlib.h>

#include <lua.h>

#include "script/luahost.h"

#define FUZZ_LUA_MEMORY ((size_t)64 << 20)
#define FUZZ_CLOCK_SPEEDUP 20.0

double __real_pc_mono_ms(void);
double __wrap_pc_mono_ms(void);
double __wrap_pc_mono_ms(void)
{
  return __real_pc_mono_ms() * FUZZ_CLOCK_SPEEDUP;
}

struct fuzz_alloc {
  lua_Alloc inner;
  void *inner_ud;
  size_t used; /* bytes allocated through the wrapper, net */
};

/* luahost.c finds its host through the allocator's user data (host_of,
 * lua_getallocf): the wrapper must keep that ud, so its own state lives
 * here. The harnesses are single-threaded and use one state at a time. */
static struct fuzz_alloc *fuzz_current;

static void *fuzz_alloc_cb(void *ud, void *ptr, size_t osize, size_t nsize)
{
  struct fuzz_alloc *fa = fuzz_current;
  size_t old = ptr ? osize : 0; /* without ptr, osize encodes a type */
  if (nsize > old && fa->used + (nsize - old) > FUZZ_LUA_MEMORY)
    return NULL;
  void *p = fa->inner(ud, ptr, osize, nsize);
  if (nsize == 0 || p) {
    /* Blocks allocated before the wrapper was installed may be freed
     * through it: never let the count wrap below zero. */
    size_t sub = old > fa->used + nsize ? fa->used + nsize : old;
    fa->used = fa->used + nsize - sub;
  }
  return p;
}

/* Installs the capped allocator on h's state; `fa` must outlive the state. */
static void fuzz_cap_memory(struct pc_lua *h, struct fuzz_alloc *fa)
{
  lua_State *L = pc_lua_state(h);
  fa->inner = lua_getallocf(L, &fa->inner_ud);
  fa->used = (size_t)lua_gc(L, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB);
  fuzz_current = fa;
  lua_setallocf(L, fuzz_alloc_cb, fa->inner_ud);
}

#endif
