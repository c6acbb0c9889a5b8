/* log.h: everything pacer prints. Logs go to stderr (text or one JSON object
 * per line); `log` steps and plugin output go to stdout. Every byte printed
 * passes through secret redaction first: values read through `secrets` or
 * marked with secret() are replaced by "***". */
#ifndef PACER_LOG_H
#define PACER_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "base/redact.h" /* pc_secret_add, pc_redact: what every line passes through */

/* PC_LOG_TRACE (-vv): every HTTP request and response, headers and body
 * excerpts; printed as "debug" lines. */
enum pc_log_level { PC_LOG_ERROR, PC_LOG_WARN, PC_LOG_INFO, PC_LOG_DEBUG, PC_LOG_TRACE };

struct pc_log_opts {
  int verbosity; /* -1 quiet (errors only), 0 normal (warn + info), 1 debug, 2 trace */
  bool json;     /* --log-format json */
  bool color;    /* only on a TTY, never with NO_COLOR */
};

void pc_log_init(const struct pc_log_opts *o);
bool pc_log_enabled(enum pc_log_level lvl);
/* --log-format json: stderr carries JSON lines only. */
bool pc_log_json(void);
/* One log line on stderr. `step` may be NULL; otherwise it names the step in
 * the line (text: "[step] msg"; json: "step":"..."). The step and the
 * message are redacted, then escaped: in JSON, so the line is always valid
 * UTF-8 JSON; in text, control characters other than tab and newline, and
 * bytes that are not UTF-8, are shown as \xNN (CR as \r), so a message that
 * quotes a server or a program cannot drive the user's terminal. */
void pc_log(enum pc_log_level lvl, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* What a step's end-of-step line carries as fields of its own with
 * --log-format json (text lines show them in the message): the item label
 * of the fan-out item it belongs to (NULL: none), its outcome, and its
 * duration (< 0: none). */
struct pc_log_fields {
  const char *item;
  const char *outcome;
  double duration_ms;
};
/* pc_log with those fields. */
void pc_log_step(enum pc_log_level lvl, const char *step, const struct pc_log_fields *f,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The run's id, a field of every JSON line from now on (NULL: none). */
void pc_log_set_run_id(const char *id);
/* Several runs in one process (`pacer run --jobs N`): which run a JSON
 * line belongs to. A line naming a step takes the id of the run of the
 * file its label names ("get (a.yml:4)": the run registered for a.yml;
 * a sub-workflow's step, "t (a.yml:9 › login.yml:2)", the run that called
 * it). Registered here (the name copied) as each run starts; a name that
 * two runs share (two dir/a.yml) tells no run apart and is not used.
 * pc_log_clear_runs forgets them all. */
void pc_log_add_run(const char *file, const char *id);
void pc_log_clear_runs(void);
/* Other lines (no step, or one no registered file names) take the run
 * whose work is being done: the driver sets it around what it does for one
 * run (its deadline, its signal, its closing line). Returns the previous
 * one, to be given back with pc_log_pop_run_id. `id` is borrowed until
 * then; NULL: the id of pc_log_set_run_id. */
const char *pc_log_push_run_id(const char *id);
void pc_log_pop_run_id(const char *prev);
/* One line on stdout (a `log` step, plugin output). A trailing newline is
 * added. Returns 0, or -errno when stdout cannot be written (a reader that
 * went away: -EPIPE; a full disk: -ENOSPC): the caller makes that an error
 * of its step, since what the workflow prints is its output. */
int pc_out_line(const char *text, size_t len);

/* Terminal hooks for a live display on stderr (progress.c): `before` runs
 * just before pacer writes a line to stderr or stdout, `after` just after,
 * so the display can erase itself and redraw below the new line instead of
 * being torn by it. Pass NULLs to remove them. The hooks must not log. */
void pc_log_set_hooks(void (*before)(void *data), void (*after)(void *data), void *data);

#endif
