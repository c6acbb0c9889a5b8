/* plan.h: the plan of a workflow, printed by `pacer run --dry-run`
 * (plan.c). */
#ifndef PACER_CLI_PLAN_H
#define PACER_CLI_PLAN_H

#include "model/workflow.h"

/* Prints the plan of `wf` on stdout; for shard K of N (1 of 1: not
 * sharded), the shard's share. */
void pc_cli_print_plan(const struct pc_workflow *wf, int shard_k, int shard_n);

#endif
