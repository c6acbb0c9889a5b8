/* fuzz_common.h: what both libFuzzer harnesses share.
 *
 * Fuzzed Lua code may allocate without bound (`range(1, 1e9)`, `("x"):rep(n)`)
 * or spin until the expression CPU guard stops it (1 s). Neither is a bug
 * in the sense a fuzzer looks for, but both would drown the run in OOM and
 * timeout reports or slow it to one input a second. So the harnesses
 *   - cap the Lua state's memory (pc_lua_set_memory_cap: the host's
 *     allocator refuses to grow past FUZZ_LUA_MEMORY; Lua turns that into
 *     "not enough memory", which pc_lua_eval reports as an ordinary error;
 *     the allocator's userdata stays the host, which the guard finds
 *     through it), and
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

/* Caps h's state at FUZZ_LUA_MEMORY, inside guards and out. */
static void fuzz_cap_memory(struct pc_lua *h)
{
  pc_lua_set_memory_cap(h, FUZZ_LUA_MEMORY);
}

#endif
