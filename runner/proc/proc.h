/* proc.h: the child-process runner that the `exec` and `shell` actions and
 * the Lua API (`pacer.exec`) share (proc.c).
 *
 * A process runs in its own process group and session (uv_spawn with
 * UV_PROCESS_DETACHED), so stopping it signals the whole group: SIGTERM, then
 * SIGKILL after PC_PROC_KILL_GRACE_MS. Its stdout and stderr are captured up
 * to PC_PROC_MAX_OUTPUT bytes each (the rest is read and discarded) and, when
 * a label is given, streamed to the log line by line. See docs/exec.md. */
#ifndef PACER_PROC_H
#define PACER_PROC_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "model/action.h"

#define PC_PROC_MAX_OUTPUT (1024u * 1024u) /* bytes kept per stream */
#define PC_PROC_KILL_GRACE_MS 2000         /* SIGTERM -> SIGKILL */
/* After SIGKILL, how long to wait for the group to be gone (a killed
 * process dies once it is scheduled; one stuck in the kernel may take
 * longer, and pacer gives up on it with a warning). */
#define PC_PROC_KILL_WAIT_MS 1000
#define PC_PROC_KILL_POLL_MS 10 /* how often to look meanwhile */
#define PC_PROC_DRAIN_MS 200 /* after exit, wait this long for output EOF */
#define PC_PROC_LINE_MAX 4096 /* a longer line is logged in pieces */

struct pc_run;
struct pc_proc;
struct pc_proc_set;

struct pc_proc_opts {
  const char *const *argv; /* NULL-terminated; argv[0] is looked up in PATH */
  const char *const *env;  /* NULL-terminated "NAME=VALUE" entries added to
                            * (or replacing in) pacer's environment; or NULL */
  const char *cwd;         /* NULL: pacer's working directory */
  const char *stdin_data;  /* NULL: the child reads /dev/null */
  size_t stdin_len;
  const char *label;       /* log prefix for output lines; NULL: not logged */
  bool quiet;              /* output lines are not logged (the step's output: quiet/on_failure) */
  size_t max_output;       /* per stream; 0: PC_PROC_MAX_OUTPUT */
};

struct pc_proc_result {
  int exit_code;  /* -1 when killed by a signal */
  int signal;     /* the terminating signal, 0 if none */
  const char *out; /* captured stdout (borrowed, NUL-terminated) */
  size_t out_len;
  bool out_truncated;
  const char *err; /* captured stderr */
  size_t err_len;
  bool err_truncated;
};

/* Called once when the process has exited and its output is read. It runs
 * from a libuv callback: Lua glue must get back to a clean stack with
 * pc_run_defer before resuming a coroutine. The result is valid only during
 * the call; the process object is freed soon after and must not be used. */
typedef void (*pc_proc_done_cb)(void *data, const struct pc_proc_result *r);

/* A set of processes on one loop. The run has one (pc_proc_set_of, created
 * on first use and closed when the run is torn down); tests make their
 * own. Closing it kills what is still running (SIGKILL), stops the
 * background processes finished steps left behind (SIGTERM, then SIGKILL
 * after the grace period), and frees the set once that is done: run the
 * loop afterwards until it returns. */
struct pc_proc_set *pc_proc_set_new(uv_loop_t *loop);
void pc_proc_set_close(struct pc_proc_set *s);
/* The run's set, shared by the exec and shell actions and pacer.exec: a
 * run hook (model/action.h) made on first use, closed when the run's steps
 * are over; its kill_now SIGKILLs every group it published, from any
 * thread. The actions declare these hooks. */
struct pc_proc_set *pc_proc_set_of(struct pc_run *run);
extern const struct pc_run_hooks pc_proc_run_hooks;

/* Starts a process. Returns 0 and sets *out, or a negative libuv error code
 * when the program cannot start (UV_ENOENT, UV_EACCES, ...; the callback is
 * then never called). Everything in `o` is copied. */
int pc_proc_spawn(struct pc_proc_set *s, const struct pc_proc_opts *o, pc_proc_done_cb cb,
                  void *data, struct pc_proc **out);
/* Stops a process that has not reported: the callback will not be called,
 * the group gets SIGTERM now and SIGKILL after the grace period. Returns at
 * once; the process is reaped and freed later (at the latest while the run
 * is torn down). The caller must not use `p` afterwards. */
void pc_proc_cancel(struct pc_proc *p);
/* The process id, which is also its process group id. */
int pc_proc_pid(const struct pc_proc *p);
/* What the process has captured so far (for partial results on cancel). */
void pc_proc_peek(const struct pc_proc *p, struct pc_proc_result *r);

/* "SIGTERM" for SIGTERM; "SIG<n>" (static buffer) for unknown numbers. */
const char *pc_signal_name(int sig);

#endif
