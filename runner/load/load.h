/* load.h: the one door to loading a workflow. pc_load runs every pass a
 * file goes through before anything runs, in this order:
 *
 *   1. YAML -> node tree (base/yamlload.c: limits, positions, duplicate
 *      keys), node tree -> model, every check of the format (load/,
 *      each action's own `load` through the action table);
 *   2. the names expressions refer to: steps.ID, vars.NAME (load/refs.c;
 *      the names --var and --vars-file define count, from the options);
 *   3. every expression compiled by the Lua host, so syntax errors come
 *      with their position (this pass runs even when 2 found something, so
 *      one `pacer validate` shows every mistake);
 *   4. the load checks of the actions the workflow uses (plugins found,
 *      loaded and their inputs checked; inline Lua compiled), once the
 *      passes before found nothing: they run plugin code.
 *
 * The command line and the tests use it alike; nothing reads the file
 * again after pass 1 (positions come from the nodes the model keeps). */
#ifndef PACER_LOAD_H
#define PACER_LOAD_H

#include <stddef.h>

#include "base/diag.h"
#include "model/workflow.h"

struct pc_lua;

/* Loads `path` through every pass into a checked, compiled workflow.
 * opts->actions is the table of actions steps may use (cli/builtins.c);
 * `opts` may be NULL only to load nothing but errors (no actions: every
 * step is refused; no plugin directories beyond the defaults, no --var
 * names, warnings kept). `h` is the Lua host the run will use: expressions and
 * plugins are compiled into it. Returns 0 with *out set, or -1 with *out
 * NULL; either way, what was found (errors, and warnings unless
 * opts->warnings is false and the load succeeded) is added to `d`, sorted
 * by position within each pass. */
int pc_load(const char *path, const struct pc_load_opts *opts, struct pc_lua *h,
            struct pc_workflow **out, struct pc_diag *d);

/* The same for a text in memory (tests, the fuzz harness). `name` stands
 * for the file in messages and in the plugin search (plugins/ beside it). */
int pc_load_string(const char *name, const char *text, size_t len,
                   const struct pc_load_opts *opts, struct pc_lua *h, struct pc_workflow **out,
                   struct pc_diag *d);

#endif
