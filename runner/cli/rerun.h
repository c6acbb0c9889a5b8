/* rerun.h: --rerun-failed REPORT on the command line (rerun.c;
 * docs/cron-and-ci.md, "Rerunning the failures"). */
#ifndef PACER_CLI_RERUN_H
#define PACER_CLI_RERUN_H

#include <stdbool.h>
#include <stddef.h>

/* Reads the JSON report at `path` (pacer's own, of the version this pacer
 * writes) of a run of the workflow and vars with these SHA-256 digests,
 * and gives the paths of its leaves that failed (failed, error, timeout,
 * cancelled; not those of `finally`, which runs every time) in *paths
 * (malloc'd strings in a malloc'd array; *n of them). Returns 0, or -1
 * with *err (malloc'd) when the report cannot be read, is not a pacer
 * report of this version, or is of another workflow file or vars. */
int pc_cli_rerun_read(const char *path, const char *workflow_sha256, const char *vars_sha256,
                      char ***paths, size_t *n, char **err);

/* Whether the file at `path` is a report of several workflow files (the
 * "pacer-runs" document of `pacer run A.yml B.yml --report json:PATH`,
 * report/runs.c), judged from the "schema" member that opens it. Only
 * its first bytes are read: a million-step report is not parsed to be
 * told apart. False when the file cannot be read (the reader of the
 * report says why). */
bool pc_cli_report_is_runs(const char *path);

#endif
