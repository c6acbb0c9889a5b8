/* internal.h: what the files of runner/script share and nobody else sees:
 * the host struct (one per lua_State, the allocator's userdata, so any
 * thread reaches it without touching the registry) and the few limits and
 * helpers several of them use. The public faces are luahost.h (host.h,
 * expr.h, value.h), coro.h and pacermod.h. */
#ifndef PACER_SCRIPT_INTERNAL_H
#define PACER_SCRIPT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "script/host.h"

/* The Lua sources embedded in the binary (lua/NAME.lua as bytecode, see
 * CMakeLists.txt); NULL when there is none of that name. */
struct pc_embedded {
  const char *name;
  const char *data;
  size_t len;
};
const struct pc_embedded *pc__embedded(const char *name);

/* An expression, or formatting a value as text or JSON, that runs for
 * longer than this is stopped. */
#define PC__EXPR_LIMIT_MS 1000.0

enum pc__refusal { PC__REFUSED_NONE, PC__REFUSED_LIMIT, PC__REFUSED_SYSTEM };

struct pc_lua {
  lua_State *L;
  int prelude_ref; /* the table lua/prelude.lua returned */
  /* Prelude functions called on hot paths, looked up once. */
  int ro_ref, unwrap_ref, to_text_ref, instance_mt_ref;
  int plugin_mts_ref; /* weak-keyed set of metatables plugin code set */
  struct pc_lua_guard g; /* the guard of the code running now */
  /* Memory accounting (see host.c, l_alloc). */
  size_t used;    /* bytes the state holds now */
  size_t limit;   /* PC_LUA_MEMORY_DEFAULT unless set */
  bool enforce;   /* the limit applies only inside guards */
  enum pc__refusal refused; /* why the last allocation failed, for messages */
  bool reserve_spent;       /* the util.c reserve was given back */
};

/* The host of any thread of the state. */
static inline struct pc_lua *pc__host(lua_State *L)
{
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

#endif
