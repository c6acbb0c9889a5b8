/* load.c: the one door to loading (load.h): the passes a workflow file
 * goes through before anything runs, in order, for the command line and
 * the tests alike. The passes themselves live elsewhere (the model in
 * load/workflow.c and its parts, names in refs.c, compilation in the Lua
 * host, plugins in the actions' load checks); this file decides which run
 * when, and what the options add: the names --var and --vars-file define,
 * the warning about a --var the file does not declare, and whether
 * warnings are kept.
 *
 * The load checks are reached through the action table only: the loader
 * does not know which actions have one. It walks the steps, asks each
 * leaf step's action for its check and runs each distinct check once. */
#include "load/load.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "base/yamlload.h"
#include "load/loader.h"
#include "load/refs.h"
#include "model/action.h"
#include "script/luahost.h"

/* ------------------------------------------------------ the load checks */

typedef int (*load_check_fn)(struct pc_lua *h, struct pc_workflow *wf,
                             const struct pc_load_opts *opts, struct pc_diag *d);

/* The distinct load checks of the actions the steps use, in the order they
 * are first met. There are at most as many as actions. */
struct checks {
  load_check_fn fn[16];
  size_t n;
};

static void collect_checks(struct checks *cs, struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    const struct pc_step *st = steps[i];
    const struct pc_action_ops *ops = st->ops; /* NULL for groups */
    if (ops && ops->load_check) {
      size_t j = 0;
      while (j < cs->n && cs->fn[j] != ops->load_check)
        j++;
      if (j == cs->n && cs->n < PC_ARRAY_SIZE(cs->fn))
        cs->fn[cs->n++] = ops->load_check;
    }
    collect_checks(cs, st->children, st->nchildren);
  }
}

static int run_load_checks(struct pc_lua *h, struct pc_workflow *wf,
                           const struct pc_load_opts *opts, struct pc_diag *d)
{
  struct checks cs = {.n = 0};
  collect_checks(&cs, wf->steps, wf->nsteps);
  collect_checks(&cs, wf->finally, wf->nfinally);
  int rc = 0;
  for (size_t i = 0; i < cs.n; i++)
    if (cs.fn[i](h, wf, opts, d) != 0)
      rc = -1;
  return rc;
}

/* ----------------------------------------------------------- warnings */

/* --var of a name the workflow does not declare under `vars:` is allowed (a
 * var only --var sets), but is often a typo: say so. */
static void warn_undeclared_vars(const struct pc_workflow *wf, const struct pc_load_opts *opts,
                                 struct pc_diag *d)
{
  size_t ndecl = wf->vars ? wf->vars->u.coll.n : 0;
  const char *const *decl = ndecl ? (const char *const *)wf->vars->u.coll.keys : NULL;
  for (size_t i = 0; i < opts->nvar_cli; i++) {
    const char *name = opts->var_names[i];
    size_t j = 0;
    while (j < ndecl && strcmp(decl[j], name) != 0)
      j++;
    if (j < ndecl)
      continue;
    const char *hint = pc_did_you_mean(name, decl, ndecl);
    if (hint)
      pc_diag_warn(d, wf->file, 0, 0,
                   "--var %s: the workflow declares no var \"%s\"; did you mean \"%s\"?", name,
                   name, hint);
    else
      pc_diag_warn(d, wf->file, 0, 0,
                   "--var %s: the workflow declares no var \"%s\" under `vars:`", name, name);
  }
}

/* Removes the warnings among the items this load added (from `first` on).
 * Warnings are never counted as dropped errors, so only the kept list
 * changes. */
static void drop_warnings(struct pc_diag *d, size_t first)
{
  size_t out = first;
  for (size_t i = first; i < d->n; i++) {
    if (d->items[i].warning) {
      free(d->items[i].file);
      free(d->items[i].msg);
    } else {
      d->items[out++] = d->items[i];
    }
  }
  d->n = out;
}

/* ------------------------------------------------------------- the door */

/* Passes 2 to 4 over the model of pass 1 (`rc` its outcome, `wf` NULL if
 * it failed); see load.h. */
static int after_model(int rc, struct pc_workflow *wf, const struct pc_load_opts *opts,
                       struct pc_lua *h, struct pc_workflow **out, struct pc_diag *d,
                       size_t first)
{
  static const struct pc_load_opts none = {.warnings = true};
  if (opts == NULL)
    opts = &none;
  /* Names that do not exist (steps.ID, vars.NAME); then expressions are
   * compiled whatever the outcome, so one validate shows every mistake. */
  if (rc == 0 && pc_workflow_check_refs(wf, opts->var_names, opts->nvar_names, d) != 0)
    rc = -1;
  if (wf && pc_lua_compile_workflow(h, wf, d) != 0)
    rc = -1;
  /* Plugins and inline Lua: found, loaded, inputs checked, code compiled.
   * Only for a file with no mistake so far: loading a plugin runs it. */
  if (rc == 0) {
    /* The checks get the loader itself, for the workflow files an action
     * runs as steps (loaded through this door, with the same options). */
    struct pc_load_opts with_load = *opts;
    size_t nested = 0;
    with_load.load = pc_load;
    if (!with_load.nested_loads)
      with_load.nested_loads = &nested;
    if (run_load_checks(h, wf, &with_load, d) != 0)
      rc = -1;
  }
  if (rc == 0)
    warn_undeclared_vars(wf, opts, d);
  if (rc == 0 && !opts->warnings)
    drop_warnings(d, first);
  if (rc != 0) {
    pc_workflow_free(wf);
    wf = NULL;
  }
  *out = wf;
  return rc;
}

int pc_load(const char *path, const struct pc_load_opts *opts, struct pc_lua *h,
            struct pc_workflow **out, struct pc_diag *d)
{
  assert(h != NULL);
  size_t first = d->n;
  *out = NULL;
  struct pc_workflow *wf = NULL;
  struct pc_node *root;
  int rc = pc_yaml_load_file(path, NULL, &root, d) < 0 ? -1 : 0;
  if (rc == 0)
    rc = pc__workflow_build(path, root, opts ? opts->actions : NULL, &wf, d);
  return after_model(rc, wf, opts, h, out, d, first);
}

int pc_load_string(const char *name, const char *text, size_t len,
                   const struct pc_load_opts *opts, struct pc_lua *h, struct pc_workflow **out,
                   struct pc_diag *d)
{
  assert(h != NULL);
  size_t first = d->n;
  *out = NULL;
  struct pc_workflow *wf = NULL;
  int rc = pc_workflow_load_string(name, text, len, opts ? opts->actions : NULL, &wf, d);
  return after_model(rc, wf, opts, h, out, d, first);
}
