/* progress.h: the live progress display on a terminal (--progress).
 *
 * While a run goes on, a uv timer redraws a few lines at the bottom of
 * stderr every 100 ms from the engine's live records (core/records.h): a status
 * line, then one bar per running fan-out or gather with done/total, in
 * flight, failed and the rate in items per second. Log lines never tear or
 * interleave with it: the display registers log hooks (log.h) that erase it
 * before any line is written and redraw it below.
 *
 * Whether to show it at all is the caller's decision (--progress auto:
 * only when stderr is a terminal). Colour is used only when stderr is a
 * terminal and NO_COLOR is not set. */
#ifndef PACER_PROGRESS_H
#define PACER_PROGRESS_H

#include <stdbool.h>

#include <uv.h>

#include "core/records.h"

enum pc_progress_mode { PC_PROGRESS_AUTO, PC_PROGRESS_ALWAYS, PC_PROGRESS_NEVER };

/* Parses "auto", "always" or "never". Returns 0 or -1. */
int pc_progress_parse_mode(const char *s, enum pc_progress_mode *out);
/* Decides whether a display is shown for `mode`: auto means stderr is a
 * terminal that can move its cursor (TERM is not "dumb"). */
bool pc_progress_wanted(enum pc_progress_mode mode);

struct pc_progress;

/* Starts the display on `loop`, reading `rep` (borrowed; it must outlive
 * the display). The first frame is drawn after 100 ms, so runs shorter than
 * that never show one. Never fails. */
struct pc_progress *pc_progress_start(uv_loop_t *loop, const struct pc_run_report *rep);
/* Erases the display, removes the log hooks and closes the timer; the
 * struct is freed in the close callback, so the loop must run once more
 * (uv_loop_close() then returns 0). NULL is accepted. */
void pc_progress_stop(struct pc_progress *p);

/* Renders one frame into `out` as if the terminal were `width` columns wide
 * (no cursor movement): what a tick would draw. For tests. */
struct pc_buf;
void pc_progress_render(struct pc_progress *p, int width, struct pc_buf *out);

#endif
