/* loader.h: what the files of the loader share, and nothing outside
 * runner/load/ uses: the state of one load (struct loader) and the helpers
 * one file of the loader defines for the others (double-underscore names).
 *
 * The loader is split by job: values.c (messages, and typed values read
 * from scalars), tmpl.c (templates and expressions), steps.c (steps and
 * their modifiers: retry, expect, pools, outputs), defaults.c (pools,
 * defaults and vars) and workflow.c (the document as a whole: its keys,
 * duplicate ids, sorting the diagnostics, freeing). The entry points are in
 * load/load.h (pc_load) and model/workflow.h (the model pass alone). */
#ifndef PACER_LOADER_H
#define PACER_LOADER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/yamlload.h"
#include "model/workflow.h"

/* ----------------------------------------------------------- one load */

/* workflow.c: the model of the document `root` (whose ownership passes to
 * the workflow, or is freed on failure). Returns 0 with *out set, or -1
 * with the errors (sorted by position) added to `d`. `file` names it in
 * messages. */
int pc__workflow_build(const char *file, struct pc_node *root,
                       const struct pc_action_ops *const *actions, struct pc_workflow **out,
                       struct pc_diag *d);

struct id_use {
  const char *id; /* borrowed from the step */
  const struct pc_node *at;
};

struct pool_ref {
  const char *name; /* borrowed from wf->pools */
  size_t index;
};

/* Per-load state beyond what action loaders see (they get only `c`). */
struct loader {
  struct pc_load_ctx c;
  struct id_use *ids; /* every valid id, checked for duplicates at the end */
  size_t nids, ids_cap;
  double default_timeout_ms; /* defaults.timeout, < 0 if none */
  struct pc_retry default_retry;
  const struct pc_node *default_retry_node; /* defaults.retry, NULL if none */
  /* wf->pools by name (sorted), and their names for hints; built once the
   * pools are loaded, so a step naming a pool costs a binary search, not a
   * scan of every pool (a hostile file has 20 000 of each). */
  struct pool_ref *pools_by_name;
  const char **pool_names;
  /* The table of actions the load was handed (borrowed, NULL-terminated),
   * and what steps.c makes of it once per load: every key a step may have
   * (the modifiers, the keys the actions declare, the actions' and the
   * groups'), and the list of action keys for "step has no action". */
  const struct pc_action_ops *const *actions;
  const char **step_keys;
  size_t nstep_keys;
  char *action_list;
};

/* ------------------------------------------------- values.c: messages */

/* An error at a position inside a scalar (pc_load_error takes a node). */
void pc__load_error_at(struct pc_load_ctx *c, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The value for `key` in `map`, and the key node itself (if `keynode` is
 * not NULL) for messages that are about the key rather than its value. */
const struct pc_node *pc__find_key(const struct pc_node *map, const char *key,
                                   const struct pc_node **keynode);
/* memmem() for a short needle (scalars may contain NULs). */
const char *pc__find(const char *s, size_t len, const char *needle);

/* --------------------------------------------- values.c: typed values */

/* The readers of the format's scalars, one wording for all: each reads
 * one value into *out, or reports "`what`: expected ..., got ..." at the
 * node and returns -1 (0 on success). pc_load_duration (model/workflow.h)
 * is pc__load_duration without `what`, for the actions. */
int pc__load_bool(struct pc_load_ctx *c, const char *what, const struct pc_node *n, bool *out);
int pc__load_int(struct pc_load_ctx *c, const char *what, const struct pc_node *n, long long min,
                 long long max, int *out);
int pc__load_number(struct pc_load_ctx *c, const char *what, const struct pc_node *n,
                    double *out);
/* A static duration; `what` may be NULL (no prefix in the message). */
int pc__load_duration(struct pc_load_ctx *c, const char *what, const struct pc_node *n,
                      double *ms);
/* Any non-empty scalar, as text (malloc'd), or NULL after reporting. */
char *pc__load_text(struct pc_load_ctx *c, const char *what, const struct pc_node *n);
/* Parses a core-schema integer (decimal, 0x, 0o); false on overflow. */
bool pc__parse_int(const struct pc_node *n, long long *out);

/* ------------------------------------------------------------ tmpl.c */

void pc__expr_free(struct pc_expr *e);

/* ----------------------------------------------------------- steps.c */

void pc__retry_init(struct pc_retry *r);
void pc__retry_free(struct pc_retry *r);
/* Applies the keys present in `n` over `r` (a step's retry refines
 * defaults.retry key by key). */
void pc__load_retry(struct pc_load_ctx *c, const struct pc_node *n, struct pc_retry *r);
/* A list of steps (`steps`, `finally`, a group's children). */
void pc__load_step_list(struct loader *L, const struct pc_node *n, const char *what,
                        struct pc_step ***out, size_t *nout);
void pc__step_free(struct pc_step *st);
/* The step keys and the list of actions of L->actions (L->step_keys,
 * L->action_list), made once per load; and freed. */
void pc__vocabulary_init(struct loader *L);
void pc__vocabulary_free(struct loader *L);

/* -------------------------------------------------------- defaults.c */

void pc__load_vars(struct loader *L, const struct pc_node *n);
void pc__load_pools(struct pc_load_ctx *c, const struct pc_node *n);
void pc__load_defaults(struct loader *L, const struct pc_node *n);
/* The index in wf->pools of the pool called `name`, or -1. The first call
 * indexes the pools (L->pools_by_name, L->pool_names). */
long pc__find_pool(struct loader *L, const char *name);

#endif
