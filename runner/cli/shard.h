/* shard.h: --shard on the command line (shard.c; docs/shards.md). */
#ifndef PACER_CLI_SHARD_H
#define PACER_CLI_SHARD_H

#include <stdbool.h>
#include <stddef.h>

#include "core/records.h"
#include "core/run.h"
#include "model/workflow.h"

/* The run's shard identity for its reports: K of N, the SHA-256 of the
 * workflow's bytes and of the vars overrides (--vars-file's bytes, then
 * each --var, framed). Returns 0, or -1 if the vars file cannot be read. */
int pc_cli_shard_identity(struct pc_shard_id *sh, const char *wf_text, size_t wf_len,
                          const struct pc_run_opts *o, int index, int count);
/* --shard SPEC (K/N or auto) and --shards N (or NULL): *k of *n (1 of 1
 * without --shard). Returns 0, or -1 having said what is wrong. */
int pc_cli_resolve_shard(const char *spec, const char *shards, int *k, int *n);
/* Whether a step (or one below it) has shard_key: the rule is then "keyed". */
bool pc_cli_has_shard_key(struct pc_step *const *steps, size_t n);

#endif
