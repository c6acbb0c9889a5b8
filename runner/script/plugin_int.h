/* plugin_int.h: what the three files of the `uses:` and `lua:` actions
 * share, and nobody else may use: plugin.c (the two actions),
 * plugin_find.c (finding and loading plugins, `pacer plugins`) and
 * plugin_check.c (the load-time checks). The public side is plugin.h.
 * Names here carry the internal prefix pc__plugin_ (STYLE.md, Naming). */
#ifndef PACER_PLUGIN_INT_H
#define PACER_PLUGIN_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "model/workflow.h"
#include "script/luahost.h"

/* The registry key (its address, a light userdata) of the table that maps
 * a step (a light userdata) to what its load check prepared: the plugin
 * entry {spec, name, path} of a `uses` step, the compiled function of a
 * `lua:` step. Made by pc_plugins_check, read when an attempt starts. */
extern const char pc__plugin_steps_key;

/* Whether s[0..len) is a plugin name: [A-Za-z0-9_-]+, at most 64 bytes, so
 * NAME.lua cannot leave the directory it is looked for in. */
bool pc__plugin_valid_name(const char *s, size_t len);

/* Whether `path` is a regular file (following links). */
bool pc__plugin_is_file(const char *path);

/* Finds `file` (NAME.lua, NAME.yml) on the search path: plugins/ beside
 * `workflow_file` (if not NULL), then opts->plugin_dirs (`opts` may be
 * NULL). Returns the malloc'd path of the first, or NULL with *looked set
 * to the directories searched, comma-separated (malloc'd). */
char *pc__plugin_find(const char *workflow_file, const struct pc_load_opts *opts, const char *file,
                      char **looked);

/* Pushes the spec of the plugin at `path`, loading it once per state.
 * Returns 0, or -1 with *err set and nothing pushed. */
int pc__plugin_load(struct pc_lua *h, const char *path, char **err);

#endif
