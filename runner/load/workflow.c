/* workflow.c: the workflow document as a whole (SPEC.md sections 2 to 4):
 * its top-level keys in dependency order (pools and defaults before the
 * steps that refer to them), unique step ids, the sorting of what was
 * reported, and freeing the model. The parts live beside it: values.c,
 * tmpl.c, steps.c and defaults.c (see load/loader.h).
 *
 * Loading never stops at the first problem: every check reports through
 * pc_load_error and carries on with whatever it could build, so `pacer
 * validate` lists every mistake in one go. A load that reported anything
 * fails as a whole; the diagnostics it added are sorted by position at the
 * end, because the model is built in dependency order rather than file
 * order.
 *
 * Ownership: the workflow owns its strings, steps and templates; a template
 * owns its expressions and a step owns its bare expressions (if, assert,
 * expect.that), while wf->exprs only lists them for the Lua host. wf->root
 * is kept (owned): every step keeps its node in it (st->node), so actions
 * and messages point into the file without reading it again. Expressions
 * are not compiled here; that is the Lua host's job. */
#include "model/workflow.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "load/loader.h"
#include "load/refs.h"

static const char *const workflow_keys[] = {"name",    "description", "inputs",   "outputs",
                                            "vars",    "timeout",     "defaults", "pools",
                                            "steps",   "finally"};

/* ------------------------------------------------------------------- ids */

static int cmp_id_use(const void *pa, const void *pb)
{
  const struct id_use *a = pa, *b = pb;
  int c = strcmp(a->id, b->id);
  if (c == 0)
    c = a->at->line - b->at->line; /* the first occurrence sorts first */
  if (c == 0)
    c = a->at->col - b->at->col;
  return c;
}

/* Ids are unique in the whole file, finally included. Sorting (rather than
 * comparing each new id with all earlier ones) keeps a hostile file with a
 * huge number of steps from taking quadratic time. */
static void check_duplicate_ids(struct loader *L)
{
  if (L->nids < 2)
    return;
  qsort(L->ids, L->nids, sizeof *L->ids, cmp_id_use);
  for (size_t i = 1, first = 0; i < L->nids; i++) {
    if (strcmp(L->ids[i].id, L->ids[first].id) != 0) {
      first = i;
      continue;
    }
    pc_load_error(&L->c, L->ids[i].at, "duplicate step id \"%s\" (first used at line %d)",
                  L->ids[i].id, L->ids[first].at->line);
  }
}

/* -------------------------------------------------------------- document */

/* "dir/hn-top.yml" -> "hn-top" */
static char *name_from_path(const char *path)
{
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t len = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  return pc_xstrndup(base, len);
}

/* ------------------------------------------------------ inputs, outputs */

/* `inputs:` (what the file takes when another runs it as a step): NAME:
 * {type, required, default, description}, or NAME: null for an optional
 * input of any type. The default must be a constant; whether it fits the
 * type is checked where plugin inputs are (with the Lua host, when a file
 * that calls this one loads it). */
static void load_inputs(struct pc_load_ctx *c, const struct pc_node *v)
{
  static const char *const keys[] = {"type", "required", "default", "description"};
  static const char *const types[] = {"string", "number", "integer", "boolean",
                                      "list",   "map",    "table",   "any"};
  struct pc_workflow *wf = c->wf;
  if (v->kind != PC_NODE_MAP) {
    pc_load_error(c, v, "inputs: expected a map of NAME: {type, required, default, description}, "
                  "got %s", pc_node_describe(v).s);
    return;
  }
  wf->inputs = pc_xcalloc(v->n ? v->n : 1, sizeof *wf->inputs);
  for (size_t i = 0; i < v->n; i++) {
    const struct pc_node *k = v->keys[i], *d = v->items[i];
    struct pc_input *in = &wf->inputs[wf->ninputs++];
    in->name = pc_xstrndup(k->str, k->len);
    in->line = k->line;
    in->col = k->col;
    if (d->kind == PC_NODE_SCALAR && pc_node_scalar_type(d) == PC_SCALAR_NULL)
      continue;
    if (d->kind != PC_NODE_MAP) {
      pc_load_error(c, d, "inputs.%s: expected a map {type, required, default, description}, "
                    "got %s", in->name, pc_node_describe(d).s);
      continue;
    }
    pc_load_check_keys(c, d, keys, PC_ARRAY_SIZE(keys), "input");
    const struct pc_node *x;
    if ((x = pc_node_get(d, "type"))) {
      char *ty = pc__load_text(c, "type", x);
      size_t j = 0;
      while (ty && j < PC_ARRAY_SIZE(types) && strcmp(types[j], ty) != 0)
        j++;
      if (ty && j == PC_ARRAY_SIZE(types)) {
        pc_load_error(c, x, "inputs.%s: unknown type \"%s\" (string, number, integer, boolean, "
                      "list, map, table, any)", in->name, ty);
        free(ty);
        ty = NULL;
      }
      in->type = ty;
    }
    if ((x = pc_node_get(d, "required")))
      pc__load_bool(c, "required", x, &in->required);
    if ((x = pc_node_get(d, "description")))
      in->description = pc__load_text(c, "description", x);
    if ((x = pc_node_get(d, "default"))) {
      in->def = pc_load_tmpl(c, x);
      if (in->def && in->def->has_expr)
        pc_load_error(c, x, "inputs.%s: the default must be a constant, not an expression",
                      in->name);
    }
  }
}

/* `outputs:` NAME: value, with expressions over the file's steps,
 * evaluated when the steps are over. */
static void load_wf_outputs(struct pc_load_ctx *c, const struct pc_node *v)
{
  struct pc_workflow *wf = c->wf;
  if (v->kind != PC_NODE_MAP) {
    pc_load_error(c, v, "outputs: expected a map of NAME: value, got %s", pc_node_describe(v).s);
    return;
  }
  wf->outputs = pc_xcalloc(v->n ? v->n : 1, sizeof *wf->outputs);
  for (size_t i = 0; i < v->n; i++) {
    struct pc_tmpl *t = pc_load_tmpl(c, v->items[i]);
    if (t == NULL)
      continue;
    wf->outputs[wf->noutputs].name = pc_xstrndup(v->keys[i]->str, v->keys[i]->len);
    wf->outputs[wf->noutputs].value = t;
    wf->noutputs++;
  }
}

static void load_root(struct loader *L, const struct pc_node *root)
{
  struct pc_load_ctx *c = &L->c;
  struct pc_workflow *wf = c->wf;
  if (root->kind != PC_NODE_MAP) {
    pc_load_error(c, root, "a workflow is a map (name, steps, ...), got %s",
                  pc_node_describe(root).s);
    return;
  }
  pc_load_check_keys(c, root, workflow_keys, PC_ARRAY_SIZE(workflow_keys), "workflow");
  const struct pc_node *v;
  if ((v = pc_node_get(root, "name")))
    wf->name = pc__load_text(c, "name", v);
  if ((v = pc_node_get(root, "description")))
    wf->description = pc__load_text(c, "description", v);
  if ((v = pc_node_get(root, "inputs")))
    load_inputs(c, v);
  if ((v = pc_node_get(root, "vars")))
    pc__load_vars(L, v);
  if ((v = pc_node_get(root, "timeout")))
    pc__load_duration(c, "timeout", v, &wf->timeout_ms);
  /* Pools and defaults come first: steps refer to both. */
  if ((v = pc_node_get(root, "pools")))
    pc__load_pools(c, v);
  if ((v = pc_node_get(root, "defaults")))
    pc__load_defaults(L, v);
  if ((v = pc_node_get(root, "steps")))
    pc__load_step_list(L, v, "steps", &wf->steps, &wf->nsteps);
  else
    pc_load_error(c, root, "the workflow has no `steps`");
  if ((v = pc_node_get(root, "finally")))
    pc__load_step_list(L, v, "finally", &wf->finally, &wf->nfinally);
  if ((v = pc_node_get(root, "outputs")))
    load_wf_outputs(c, v);
}

/* ----------------------------------------------------------- diagnostics */

struct diag_ref {
  struct pc_diag_item item;
  size_t seq; /* order of addition: keeps the sort stable */
};

static int cmp_diag_ref(const void *pa, const void *pb)
{
  const struct diag_ref *a = pa, *b = pb;
  if (a->item.line != b->item.line)
    return a->item.line - b->item.line;
  if (a->item.col != b->item.col)
    return a->item.col - b->item.col;
  return (a->seq > b->seq) - (a->seq < b->seq);
}

/* Sorts the items added by this load by position; messages at the same
 * position keep the order they were reported in. */
static void sort_diags(struct pc_diag *d, size_t from)
{
  size_t n = d->n - from;
  if (n < 2)
    return;
  struct diag_ref *refs = pc_xmalloc(n * sizeof *refs);
  for (size_t i = 0; i < n; i++)
    refs[i] = (struct diag_ref){d->items[from + i], i};
  qsort(refs, n, sizeof *refs, cmp_diag_ref);
  for (size_t i = 0; i < n; i++)
    d->items[from + i] = refs[i].item;
  free(refs);
}

/* ----------------------------------------------------------------- build */

int pc__workflow_build(const char *file, struct pc_node *root,
                       const struct pc_action_ops *const *actions, struct pc_workflow **out,
                       struct pc_diag *d)
{
  struct pc_workflow *wf = pc_xcalloc(1, sizeof *wf);
  wf->file = pc_xstrdup(file);
  wf->root = root;
  wf->timeout_ms = -1;
  wf->actions = actions;
  struct loader L = {.c = {.wf = wf, .d = d, .file = wf->file},
                     .default_timeout_ms = -1,
                     .actions = actions};
  pc__retry_init(&L.default_retry);
  pc__vocabulary_init(&L);
  size_t first_diag = d->n, first_count = pc_diag_count(d);

  load_root(&L, root);
  check_duplicate_ids(&L);
  if (wf->name == NULL)
    wf->name = name_from_path(file);

  pc__retry_free(&L.default_retry);
  pc__vocabulary_free(&L);
  free(L.ids);
  free(L.pools_by_name);
  free(L.pool_names);
  sort_diags(d, first_diag);
  if (pc_diag_count(d) > first_count) {
    pc_workflow_free(wf);
    return -1;
  }
  pc_workflow_mark_readers(wf);
  *out = wf;
  return 0;
}

int pc_workflow_load_string(const char *name, const char *text, size_t len,
                            const struct pc_action_ops *const *actions, struct pc_workflow **out,
                            struct pc_diag *d)
{
  *out = NULL;
  struct pc_node *root;
  if (pc_yaml_load_string(name, text, len, NULL, &root, d) < 0)
    return -1;
  return pc__workflow_build(name, root, actions, out, d);
}

void pc_workflow_free(struct pc_workflow *wf)
{
  if (wf == NULL)
    return;
  free(wf->file);
  free(wf->name);
  free(wf->description);
  pc_tmpl_free(wf->vars);
  for (size_t i = 0; i < wf->ndefaults; i++)
    pc_tmpl_free(wf->defaults[i].value);
  free(wf->defaults);
  for (size_t i = 0; i < wf->npools; i++) {
    free(wf->pools[i].name);
    free(wf->pools[i].shared);
  }
  free(wf->pools);
  for (size_t i = 0; i < wf->ninputs; i++) {
    free(wf->inputs[i].name);
    free(wf->inputs[i].type);
    free(wf->inputs[i].description);
    pc_tmpl_free(wf->inputs[i].def);
  }
  free(wf->inputs);
  for (size_t i = 0; i < wf->noutputs; i++) {
    free(wf->outputs[i].name);
    pc_tmpl_free(wf->outputs[i].value);
  }
  free(wf->outputs);
  for (size_t i = 0; i < wf->nsteps; i++)
    pc__step_free(wf->steps[i]);
  free(wf->steps);
  for (size_t i = 0; i < wf->nfinally; i++)
    pc__step_free(wf->finally[i]);
  free(wf->finally);
  for (size_t i = 0; i < wf->nretry_codes; i++)
    free(wf->retry_codes[i]);
  free(wf->retry_codes);
  /* The expressions themselves belong to templates and steps. */
  free(wf->exprs);
  pc_node_free(wf->root);
  free(wf);
}
