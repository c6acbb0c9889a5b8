/* plugin.h: the `uses:` and `lua:` actions, plugin discovery, the load-time
 * check of plugin inputs and inline code, and `pacer plugins`.
 *
 * `uses: NAME` looks for NAME.lua in plugins/ beside the workflow file, then
 * in each --plugins directory (in order), then in each PACER_PLUGIN_PATH
 * entry, then in the plugins bundled with pacer (all given in the load
 * options, struct pc_load_opts: the command line finds the bundled ones
 * relative to its binary). NAME is
 * [A-Za-z0-9_-]+, so it cannot leave those directories. See docs/plugins.md. */
#ifndef PACER_PLUGIN_H
#define PACER_PLUGIN_H

#include <stdio.h>

#include "model/action.h"
#include "base/diag.h"
#include "script/luahost.h"
#include "model/workflow.h"

extern const struct pc_action_ops pc_uses_ops;
extern const struct pc_action_ops pc_lua_ops;

/* Load-time pass over every step (the load_check of both actions, run by
 * pc_load): finds and loads each `uses` plugin and checks its inputs
 * (unknown, missing, wrong type for static values), and compiles each
 * inline `lua:` block. Plugins are searched in opts->plugin_dirs besides
 * the fixed places (`opts` may be NULL). Errors go to `d` with the position
 * of the `uses` value or the `with` key/value. Returns 0 or -1. */
int pc_plugins_check(struct pc_lua *h, struct pc_workflow *wf, const struct pc_load_opts *opts,
                     struct pc_diag *d);

/* `pacer plugins [WORKFLOW]`: lists every plugin found in the search path
 * (opts->plugin_dirs besides the fixed places; `opts` may be NULL), with
 * its description and inputs, on `out`. Problems loading a plugin are
 * reported on stderr. Returns an exit code. */
int pc_plugins_list(struct pc_lua *h, const char *workflow_file,
                    const struct pc_load_opts *opts, FILE *out);

#endif
