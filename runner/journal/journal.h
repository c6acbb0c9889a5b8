/* journal.h: durable runs (docs/cron-and-ci.md, "Journals and resume"):
 * the journal of a run's finished leaves in a SQLite file (--journal,
 * --resume), and the run history every run appends to (`pacer history`).
 * journal.c keeps the journal, history.c the history. */
#ifndef PACER_JOURNAL_H
#define PACER_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

struct pc_run;
struct pc_summary;

struct pc_journal;

/* Opens (creating it, mode 0600) the journal at `path` for a run of the
 * workflow whose file and vars overrides have these SHA-256 digests.
 * Without `resume` the journal is emptied and made this run's; with it the
 * journal must be one of the same workflow file and vars (else an error
 * that says which changed), and its leaves that finished ok are not run
 * again. Returns NULL with *err (malloc'd) on failure. */
struct pc_journal *pc_journal_open(const char *path, bool resume, const char *workflow_sha256,
                                   const char *vars_sha256, char **err);
/* --rerun-failed: of the leaves the journal does not restore, only those
 * at `paths` (as the JSON report names them) run; the others are skipped.
 * Takes `paths` (malloc'd strings in a malloc'd array). Before attach. */
void pc_journal_rerun_only(struct pc_journal *j, char **paths, size_t n);
/* Hooks the journal into a run before its roots start (the engine's
 * struct pc_journal_ops): records are committed in batches, before each
 * time the loop waits, so a crash loses at most what finished in the loop
 * iteration it came in. */
void pc_journal_attach(struct pc_journal *j, struct pc_run *run);
/* The run's steps are over: commits what is left and closes the journal's
 * handle (run the loop afterwards). */
void pc_journal_detach(struct pc_journal *j);
/* How many leaves the run took from the journal, and how many it recorded. */
size_t pc_journal_restored(const struct pc_journal *j);
void pc_journal_close(struct pc_journal *j);

/* ------------------------------------------------------------ history */

/* The default history database: $XDG_STATE_HOME/pacer/history.db, or
 * ~/.local/state/pacer/history.db. malloc'd; NULL if neither is set. */
char *pc_history_default_path(void);

struct pc_history_run {
  const char *workflow;        /* the file's real path ("-": stdin) */
  const char *workflow_sha256; /* or "" */
  double start_ms;             /* wall clock, epoch ms */
  double duration_ms;
  const char *outcome;
  int exit_code;
  const struct pc_summary *summary; /* counts by outcome */
};
/* Appends one row to the history at `path` (its folder made, mode 0700).
 * Returns 0, or -1 with *err (malloc'd): a warning for the caller, never
 * the run's failure. */
int pc_history_append(const char *path, const struct pc_history_run *r, char **err);
/* `pacer history [WORKFLOW] [--limit N] [--db PATH]`. */
int pc_history_main(int argc, char **argv);

#endif
