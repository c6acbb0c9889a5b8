/* flow.h: a workflow file run as a step (`uses: ./flows/login.yml`), the
 * part of the `uses` action (script/plugin.c) that is not about Lua
 * plugins: loading the file through the loader at load time, with cycles
 * refused, and running its steps as a sub-group of the engine. */
#ifndef PACER_FLOW_H
#define PACER_FLOW_H

#include <stdbool.h>
#include <stdio.h>

#include "base/diag.h"
#include "model/action.h"
#include "model/workflow.h"
#include "script/luahost.h"

/* Whether a `uses:` value names a workflow file (NAME.yml, a path ending
 * in .yml or .yaml) rather than a Lua plugin. */
bool pc_flow_is_file(const char *uses);

/* Load time: loads the workflow file at `path` (found by the caller) for
 * step `st` of `wf` into st->sub, through opts->load with the same options
 * and the call added to opts->caller, refusing a cycle; checks what must
 * hold for a file run as a step; moves the pools its steps use into wf's
 * (the same pools, by name); and pushes its spec for the caller's check
 * of `with`: {description =, inputs = {NAME = {type, required, default,
 * description}}}, the shape of a plugin's. (line, col) is the `uses:`
 * value. Returns 0 with the spec pushed, or -1 after reporting. */
int pc_flow_load(struct pc_lua *h, struct pc_workflow *wf, struct pc_step *st, const char *path,
                 int line, int col, const struct pc_load_opts *opts, struct pc_diag *d);

/* Run time: starts the attempt of a step whose st->sub is set, with the
 * spec pc_flow_load pushed (kept by the caller) on top of the Lua stack
 * (popped): `with` is evaluated, checked and completed with the inputs'
 * defaults, then the file's steps start. */
void pc_flow_start(struct pc_attempt *a);
void pc_flow_cancel(struct pc_attempt *a);

/* `pacer plugins`: prints the workflow file at `path` (NAME.yml) as a
 * flow with its inputs, read from its YAML. Returns 0, or -1 with a
 * message on stderr. */
int pc_flow_print(const char *name, const char *path, FILE *out);

#endif
