/* merge.h: `pacer merge`: the JSON reports of the shards of one run read
 * back and made into the report of the whole run (docs/shards.md). The
 * result is an ordinary run report (core/records.h), rebuilt from the
 * shards' records, so every report format is written by the writers a run
 * uses (report.h) and a merged JUnit or HTML report is the same kind of
 * file as a run's. */
#ifndef PACER_MERGE_H
#define PACER_MERGE_H

#include <stddef.h>

#include "core/records.h"

struct pc_merged;

/* Reads the shard reports at `paths`, checks that they are every shard of
 * one run exactly once (the same N, every K from 1 to N, the same
 * partition rule and the same workflow and vars digests) and merges them.
 * Returns 0 with *out set, or -1 with *err (malloc'd: what is wrong, naming
 * the files). */
int pc_merge_reports(const char *const *paths, size_t n, struct pc_merged **out, char **err);
/* The merged run, valid until pc_merged_free. */
const struct pc_run_report *pc_merged_report(const struct pc_merged *m);
void pc_merged_free(struct pc_merged *m);

#endif
