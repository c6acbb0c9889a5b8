/* luahost.h: the Lua host as the rest of pacer uses it: the state, the
 * door and the guards (host.h), expressions, scopes and templates (expr.h),
 * the values behind a failed condition (explain.h), and values as text and
 * JSON (value.h). Files of runner/script include
 * the one they need; the coroutine runtime is coro.h, the `pacer` module
 * pacermod.h. */
#ifndef PACER_LUAHOST_H
#define PACER_LUAHOST_H

#include "script/explain.h"
#include "script/expr.h"
#include "script/host.h"
#include "script/value.h"

#endif
