/* refs.h: what expressions refer to, found at load time: the names checked
 * (below), and which steps' results anything can read at all.
 *
 * Load-time checks of the names expressions refer to. An
 * expression reading `steps.ID` where no step has that id, or `vars.NAME`
 * where NAME is defined neither under `vars:` nor by --var/--vars-file,
 * would fail in the middle of a run, after earlier steps had their side
 * effects; `pacer validate` reports it instead, with a did-you-mean.
 *
 * Only what can be known from the text is checked: `steps.ID`,
 * `steps["ID"]`, `vars.NAME` and `vars["NAME"]` in ${{ }} and bare
 * expressions. Computed names (`steps[x]`), expressions that define a
 * function (whose parameters or locals could be called steps or vars) and
 * inline `lua:` code are not checked. */
#ifndef PACER_REFS_H
#define PACER_REFS_H

#include <stddef.h>

#include "base/diag.h"
#include "model/workflow.h"

/* Checks every expression of the workflow; `extra_vars` are the names
 * --var and --vars-file define. Adds one error per unknown reference to d.
 * Returns 0, or -1 if any was found. */
int pc_workflow_check_refs(const struct pc_workflow *wf, const char *const *extra_vars,
                           size_t nextra, struct pc_diag *d);

/* Sets each step's results_read (workflow.h): whether anything can read its
 * result table. An expression reads steps.ID or steps["ID"]; one that uses
 * `steps` any other way (steps[x], pairs(steps)) or _ENV, or any Lua code
 * in the workflow (lua: steps, plugins), could read every step's. The
 * loader calls it on every workflow it builds. */
void pc_workflow_mark_readers(struct pc_workflow *wf);

/* Whether an expression of the step or of a step inside it reads steps.ID
 * (or reads `steps` in a way that could reach any step): the steps after
 * a background step that read its result wait for it. */
bool pc_step_reads_id(const struct pc_step *st, const char *id);

#endif
