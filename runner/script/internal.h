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

#include "base/queue.h"
#include "base/sleep.h"
/* The run services the pacer.* functions use (pc_run_pool, pc_run_defer)
 * and the node of the run's deferred queue a coroutine embeds: the action
 * interface declares them. */
#include "model/action.h"
#include "script/coro_sched.h"
#include "script/guard.h"

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

/* Calls the compiled expression chunk `ref` with _ENV set to the scope,
 * under a guard of `limit_ms` (raising `what` past it): pushes its value (a table unwrapped from its
 * proxy, plugin metatables stripped) and returns 0, or returns -1 with
 * *msg set to Lua's message (malloc'd) and nothing pushed. pc_lua_eval and
 * the explanations of failed conditions (explain.c) share it. */
int pc__expr_call(struct pc_lua *h, int ref, int scope_ref, double limit_ms, const char *what,
                  char **msg);

enum pc__refusal { PC__REFUSED_NONE, PC__REFUSED_LIMIT, PC__REFUSED_SYSTEM };

struct pc_lua {
  lua_State *L;
  int prelude_ref; /* the table lua/prelude.lua returned */
  /* Prelude functions called on hot paths, looked up once. */
  int ro_ref, unwrap_ref, to_text_ref, instance_mt_ref;
  int view_ref, no_target_ref, target_of_ref; /* pc_lua_scope_bind_view's */
  bool view_bound;                            /* the view is in use */
  bool plugin_values; /* a plugin step has returned a value (pc_lua_note_plugin_value) */
  int key_item_ref, key_index_ref, key_result_ref; /* "item", "index", "result" */
  int plugin_mts_ref; /* weak-keyed set of metatables plugin code set */
  struct pc_lua_guard g; /* the guard of the code running now */
  /* Memory accounting (see host.c, host_alloc). */
  size_t used;    /* bytes the state holds now */
  size_t limit;   /* PC_LUA_MEMORY_DEFAULT unless set; never above cap */
  size_t cap;     /* applies everywhere; 0 for none */
  bool enforce;   /* the limit applies only inside guards */
  enum pc__refusal refused; /* why the last allocation failed, for messages */
  bool reserve_spent;       /* the util.c reserve was given back */
  /* The pacer module (pacermod.c) and the coroutine runtime (coro.c). */
  int module_ref;          /* the table lua/pacer.lua returned; LUA_NOREF until opened */
  struct pc_coro *current; /* the coroutine being resumed now, or NULL */
  /* Finalizers of plugin tables (gc.c): tables whose __gc is due, a Lua
   * list [finq_head+1 .. finq_tail], and table -> sentinel (weak keys). */
  int finq_ref;
  lua_Integer finq_head, finq_tail;
  int sentinels_ref;
  bool in_finalizers;
  /* The sleeps of pacer.sleep (mod_sleep.c), and those of coroutines
   * preempted for a signal (coro.c); zeroed until the first. */
  struct pc_sleeps sleeps, turns;
};

/* The host of any thread of the state. */
static inline struct pc_lua *pc__host(lua_State *L)
{
  void *ud;
  lua_getallocf(L, &ud);
  return ud;
}

/* A thread's extra space (LUA_EXTRASPACE) holds its struct pc_coro: NULL
 * for the main thread and for coroutines plugin code makes (they copy the
 * main thread's), PC__HOST_THREAD for the coroutines gc.c runs finalizers
 * in (which cannot wait either). */
extern char pc__host_thread_mark;
#define PC__HOST_THREAD ((struct pc_coro *)(void *)&pc__host_thread_mark)
static inline struct pc_coro **pc__thread_slot(lua_State *L)
{
  return (struct pc_coro **)lua_getextraspace(L);
}

/* Pushes a new table with weak keys (an ephemeron table). */
void pc__push_weak_keys(lua_State *L);

/* The string at `idx` as a C string for function `who`: a string with a
 * NUL byte in it would be cut there silently, so it raises instead, as it
 * does for a value that is not a string. `what` names the value (a format
 * with at most one argument). */
const char *pc__cstring(lua_State *L, int idx, const char *who, const char *what, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------ coroutines
 *
 * The structures of coro.c, shared with mod_task.c (task handles, children,
 * waiting) and gc.c. */

enum pc__task_state { PC__TASK_RUNNING, PC__TASK_OK, PC__TASK_ERROR, PC__TASK_CANCELLED };

/* A task handle (userdata "pacer.task"); its user value 1 holds the packed
 * results, or the error, once the task has ended. */
struct pc__task {
  struct pc_coro *co; /* NULL once the task has ended */
  enum pc__task_state state;
};

struct pc_coro {
  struct pc_coro_job *job;  /* borrowed: the job outlives its coroutines */
  struct pc_coro *parent;   /* structured parent (gather/timeout), or NULL */
  struct pc_queue sibling;  /* in parent->kids, or in job->tops without a parent */
  struct pc_queue kids;     /* children, newest first */
  lua_State *L;
  int ref;                  /* anchors L in the registry; unreffed in coro_free */
  int nargs;                /* arguments waiting on L's stack for the first resume */
  struct pc_deferred dq;
  struct {
    void (*cancel)(void *data);
    void *data;
  } pending;
  void *woken;              /* the completed operation, for the continuation */
  struct pc__task *task;    /* handle (valid while task_ref is held), NULL for the root */
  int task_ref;
  struct pc_queue waiters;  /* coroutines blocked in :wait() on this one, newest first */
  struct pc_queue waiting;  /* node in awaiting->waiters */
  struct pc_coro *awaiting; /* the task this one waits for, or NULL */
  int doneq_ref;            /* children that ended, for next_done (a Lua list) */
  lua_Integer doneq_head, doneq_tail;
  bool in_next_done;
  bool closing;
  bool ending;         /* in coro_finish, which frees it */
  bool hooks_off;      /* died of the guard's error raised on it (see reset_thread) */
  bool stopped;        /* the guard yielded it at its job's deadline */
  bool preempted;      /* the guard yielded it for a pending signal */
  bool kill_requested;
  bool spawned;        /* pacer.spawn: warn if still running, unwaited, at the end */
  bool waited;
  char *where;         /* where pacer.spawn was called */
};

struct pc_coro_job {
  struct pc_lua *h;
  struct pc_coro_sched sched;
  struct pc_run *run;                /* borrowed, or NULL */
  int scope_ref;                     /* borrowed */
  struct pc_attempt *attempt;        /* borrowed, or NULL */
  char *label;
  struct pc_coro *root;
  struct pc_queue tops;  /* coroutines without a parent (the root, tasks), newest first */
  struct pc_queue holds; /* struct pc_coro_hold: permits held by the job's code */
  double deadline;       /* mono ms; INFINITY for none */
  double timeout_ms;
  bool cpu_tripped;
  char cpu_where[160];   /* where the guard stopped it first */
  bool ending;
  void (*returned)(void *data);
  void (*done)(void *data, enum pc_fail fail, const char *msg);
  void *data;
};

/* Creates a coroutine of job `j` for the function below `nargs` arguments
 * on L's stack (popped), a child of `parent` or (NULL) one of the job's
 * top-level coroutines, and queues its first resume. */
struct pc_coro *pc__coro_new(struct pc_coro_job *j, lua_State *L, int nargs,
                             struct pc_coro *parent);
/* Closes a coroutine (cancellation): its children first, then its pending
 * operation, then its to-be-closed variables; a task's handle settles as
 * cancelled with `why`. Closing the coroutine running now only marks it:
 * it stops at its next yield. */
void pc__coro_close(struct pc_coro *co, const char *why);
/* The first child of co not being closed already, or NULL. */
struct pc_coro *pc__coro_open_kid(struct pc_coro *co);
/* Takes a waiter off the list of the task it waits for. */
void pc__coro_unwait(struct pc_coro *w);

/* gc.c: creates the finalizer queue and the sentinel class (when the
 * module opens), and runs the finalizers that came due (only when no Lua
 * code runs). */
void pc__gc_open(struct pc_lua *h);
void pc__run_finalizers(struct pc_lua *h);

/* ------------------------------------------------ the module's functions
 *
 * The Lua-visible C functions of the `pacer` module, one file per area,
 * assembled into the module by pacermod.c. Named l_<area>_<verb>. */

/* mod_task.c: pacer.spawn, the children of gather/timeout, task handles */
int l_task_spawn(lua_State *L);
int l_task_child(lua_State *L);
int l_task_next_done(lua_State *L);
int l_task_wait(lua_State *L);
int l_task_cancel(lua_State *L);
int l_task_status(lua_State *L);
int l_task_tostring(lua_State *L);
/* mod_sleep.c */
int l_sleep_wait(lua_State *L);
/* mod_sync.c: semaphores, pool permits */
int l_sync_semaphore(lua_State *L);
int l_sync_sem_acquire(lua_State *L);
int l_sync_sem_available(lua_State *L);
int l_sync_pool(lua_State *L);
int l_sync_pool_acquire(lua_State *L);
int l_sync_permit_release(lua_State *L);
int l_sync_permit_held(lua_State *L);
/* mod_exec.c */
int l_exec_run(lua_State *L);
/* mod_http.c */
int l_http_request(lua_State *L);
/* mod_misc.c: logging, stdout, files, the clock, what the sandbox asks */
int l_misc_log(lua_State *L);
int l_misc_out(lua_State *L);
int l_misc_read_file(lua_State *L);
int l_misc_now(lua_State *L);
/* mod_codec.c: pushes a table of the encoding and hashing helpers
 * (base64_encode, base64_decode, base64url_encode, base64url_decode,
 * sha256, hmac_sha256, urldecode, parse_url), for the prelude's helpers
 * and the pacer module. */
void pc__codec_push(lua_State *L);
int l_misc_is_managed(lua_State *L);
int l_misc_guard_tripped(lua_State *L);
/* gc.c: the sandbox's setmetatable, and a sentinel's __gc */
int l_gc_setmetatable(lua_State *L);
int l_gc_sentinel(lua_State *L);

#endif
