/* guard.h: the state of one guard around Lua code (struct pc_lua_guard),
 * which host.h's pc_lua_guard_enter and pc_lua_guard_leave save and
 * restore and the host struct (script/internal.h) holds for the code
 * running now. A header of its own so that the host's private header needs
 * nothing of host.h: what a guard does, and when, is said there. */
#ifndef PACER_SCRIPT_GUARD_H
#define PACER_SCRIPT_GUARD_H

#include <stdbool.h>

#include <lua.h>

/* How pc_lua_guard_enter may stop the code (see there). */
#define PC_LUA_GUARD_STOP 1u    /* past the deadline, yield `co` instead of raising */
#define PC_LUA_GUARD_PREEMPT 2u /* while a signal is pending, yield `co` now and then */
struct pc_lua_guard {
  bool active;
  bool tripped;      /* the deadline passed; every instruction stops the code */
  bool warned;       /* the blocking warning was given */
  bool prev_enforce; /* in the frame enter() saved: enforcement before */
  bool can_stop;     /* PC_LUA_GUARD_STOP */
  bool can_preempt;  /* PC_LUA_GUARD_PREEMPT */
  bool stopped;      /* the guard yielded `co` at the deadline (see below) */
  bool preempted;    /* the guard yielded `co` for a pending signal (see below) */
  bool raised_on_co; /* the guard raised its error on `co` itself */
  double started;    /* pc_mono_ms() */
  double deadline;   /* pc_mono_ms(); INFINITY for none */
  const char *label; /* step label for the warning, or NULL; borrowed */
  const char *what;  /* the error raised at the deadline; borrowed */
  lua_State *co;     /* the thread the guard armed the hook on */
  char where[160];   /* " (at FILE:LINE)" where it tripped, or "" */
};

#endif
