/* flow.c: a workflow file run as a step (`uses: ./flows/login.yml`,
 * flow.h). At load time the file is loaded through the loader's own door
 * (opts->load, with the caller's options and the call added to the chain
 * of callers, so a file that runs itself, directly or through others, is
 * refused with the path through the files), its pools become the calling
 * file's (by name) and its `inputs:` become a spec of a plugin's shape, so
 * that the `uses` action checks `with` the same way for both. At run time
 * its steps and `finally` run as a sub-group of the engine
 * (pc_attempt_run_steps) in a scope of their own: the file's vars, its
 * inputs, env and secrets, its own steps; when they are over its
 * `outputs:` become the step's outputs.
 *
 * Ownership: the step owns the loaded workflow (st->sub); an attempt owns
 * a struct flow (a->data) until its sub-group is over or it is cancelled;
 * the sub-group owns the scope. */
#include "actions/flow.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "base/util.h"
#include "base/yamlload.h"
#include "script/pacermod.h"

/* At most this many workflow files are loaded as steps under one top
 * file (each call loads its file: a file that runs another twice, which
 * runs another twice, ... would otherwise grow exponentially). */
#define MAX_FLOW_LOADS 1000
#define CALL_LIMIT_MS 1000.0
#define CALL_TOO_LONG "checking the flow's inputs took more than 1000 ms"

bool pc_flow_is_file(const char *uses)
{
  size_t n = strlen(uses);
  return (n > 4 && strcmp(uses + n - 4, ".yml") == 0) ||
         (n > 5 && strcmp(uses + n - 5, ".yaml") == 0);
}

static const char *base_name(const char *path)
{
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* ------------------------------------------------------------ load time */

/* Whether a and b are the same file (both exist: the caller found them). */
static bool same_file(const char *a, const char *b)
{
  char ra[PATH_MAX], rb[PATH_MAX];
  return realpath(a, ra) && realpath(b, rb) && strcmp(ra, rb) == 0;
}

/* "a.yml:3 › b.yml:5 › a.yml": the calls from the top down to `path`. */
static void chain_text(struct pc_buf *b, const struct pc_load_caller *c, const char *path)
{
  if (c->up)
    chain_text(b, c->up, NULL);
  pc_buf_printf(b, "%s:%d \u203a ", base_name(c->file), c->line);
  if (path)
    pc_buf_puts(b, base_name(path));
}

/* The child's pool `p` in wf->pools, added if wf has none of that name.
 * A pool of that name defined otherwise is the caller's all the same: a
 * warning says so, at the child's definition. */
static size_t pool_index(struct pc_workflow *wf, const struct pc_pool_def *p,
                         const char *sub_file, struct pc_diag *d)
{
  for (size_t i = 0; i < wf->npools; i++) {
    const struct pc_pool_def *q = &wf->pools[i];
    if (strcmp(q->name, p->name) != 0)
      continue;
    if (q->concurrency != p->concurrency || q->rate != p->rate || q->burst != p->burst ||
        (q->shared == NULL) != (p->shared == NULL) ||
        (q->shared && strcmp(q->shared, p->shared) != 0))
      pc_diag_warn(d, sub_file, p->line, p->col,
                   "pools.%s: the calling file (%s:%d) defines a pool of that name "
                   "otherwise; the steps of this file use the caller's", p->name,
                   base_name(wf->file), q->line);
    return i;
  }
  wf->pools = pc_xrealloc(wf->pools, (wf->npools + 1) * sizeof *wf->pools);
  struct pc_pool_def *n = &wf->pools[wf->npools];
  *n = *p;
  n->name = pc_xstrdup(p->name);
  n->shared = p->shared ? pc_xstrdup(p->shared) : NULL;
  return wf->npools++;
}

static int cmp_size(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* Renumbers the pools of steps (and of the files they run, already in
 * their caller's numbering) from the child's numbering to wf's. */
static void remap_pools(struct pc_step *const *steps, size_t n, const size_t *map)
{
  for (size_t i = 0; i < n; i++) {
    struct pc_step *st = steps[i];
    for (size_t k = 0; k < st->npools; k++)
      st->pools[k] = map[st->pools[k]];
    if (st->npools > 1)
      qsort(st->pools, st->npools, sizeof *st->pools, cmp_size);
    remap_pools(st->children, st->nchildren, map);
    if (st->sub) {
      remap_pools(st->sub->steps, st->sub->nsteps, map);
      remap_pools(st->sub->finally, st->sub->nfinally, map);
    }
  }
}

/* Pushes {description, inputs} for the uses action's check of `with`;
 * checks each default against its type. Returns 0 or -1 (reported). */
static int push_spec(struct pc_lua *h, const struct pc_workflow *sub, struct pc_diag *d)
{
  lua_State *L = pc_lua_state(h);
  int rc = 0;
  lua_createtable(L, 0, 2);                 /* spec */
  if (sub->description) {
    lua_pushstring(L, sub->description);
    lua_setfield(L, -2, "description");
  }
  lua_createtable(L, 0, (int)sub->ninputs); /* spec, inputs */
  for (size_t i = 0; i < sub->ninputs; i++) {
    const struct pc_input *in = &sub->inputs[i];
    lua_createtable(L, 0, 4);               /* spec, inputs, def */
    lua_pushstring(L, in->type ? in->type : "any");
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, in->required);
    lua_setfield(L, -2, "required");
    if (in->description) {
      lua_pushstring(L, in->description);
      lua_setfield(L, -2, "description");
    }
    if (in->def) {
      char *err = NULL;
      if (pc_lua_eval_tmpl(h, in->def, LUA_NOREF, &err) != 0) { /* a constant */
        free(err);
        lua_pushnil(L);
      }
      if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
      } else {
        int def = lua_gettop(L) - 1;
        pc_pacer_push(h, "check_input");    /* ..., def, default, check */
        lua_pushstring(L, in->name);
        lua_pushvalue(L, def);
        lua_pushvalue(L, def + 1);          /* ..., def, default, check, name, def, default */
        if (pc_pacer_call(h, 3, 1, CALL_LIMIT_MS, CALL_TOO_LONG, &err) != 0) {
          pc_diag_add(d, sub->file, in->def->line, in->def->col, "inputs.%s: %s", in->name, err);
          free(err);
          rc = -1;
        } else {
          if (lua_type(L, -1) == LUA_TSTRING) {
            pc_diag_add(d, sub->file, in->def->line, in->def->col, "inputs.%s: the default "
                        "does not fit: %s", in->name, lua_tostring(L, -1));
            rc = -1;
          }
          lua_pop(L, 1);
        }                                   /* ..., def, default */
        lua_setfield(L, -2, "default");     /* ..., def */
      }
    }
    lua_setfield(L, -2, in->name);          /* spec, inputs */
  }
  lua_setfield(L, -2, "inputs");            /* spec */
  if (rc != 0)
    lua_pop(L, 1);
  return rc;
}

/* What must hold for a file run as a step, once it loaded; pushes its
 * spec (push_spec). Returns 0 or -1 (reported). */
static int check_sub(struct pc_lua *h, const struct pc_workflow *wf,
                     const struct pc_workflow *sub, int line, struct pc_diag *d)
{
  /* Action defaults are read from the run's workflow (the top file): a
   * file run as a step takes its caller's, and may not declare its own. */
  if (sub->ndefaults) {
    const struct pc_node *dn = pc_node_get(sub->root, "defaults");
    const struct pc_node *kn = dn ? pc_node_get(dn, sub->defaults[0].key) : NULL;
    pc_diag_add(d, sub->file, kn ? kn->line : 0, kn ? kn->col : 0,
                "defaults.%s: a workflow file run as a step (by %s:%d) uses its caller's "
                "defaults.%s; move it to the calling workflow", sub->defaults[0].key,
                base_name(wf->file), line, sub->defaults[0].key);
    return -1;
  }
  return push_spec(h, sub, d);
}

int pc_flow_load(struct pc_lua *h, struct pc_workflow *wf, struct pc_step *st, const char *path,
                 int line, int col, const struct pc_load_opts *opts, struct pc_diag *d)
{
  const struct pc_load_caller *up = opts ? opts->caller : NULL;
  bool cycle = same_file(path, wf->file);
  for (const struct pc_load_caller *c = up; c && !cycle; c = c->up)
    cycle = same_file(path, c->file);
  struct pc_load_caller me = {wf->file, line, col, up};
  if (cycle) {
    struct pc_buf b;
    pc_buf_init(&b, 1 << 16);
    chain_text(&b, &me, path);
    pc_diag_add(d, wf->file, line, col,
                "uses: %s runs itself: %s (a workflow file may not run itself, directly or "
                "through others)", st->uses, b.data);
    pc_buf_free(&b);
    return -1;
  }
  if (!opts || !opts->load) {
    pc_diag_add(d, wf->file, line, col, "uses: %s: workflow files cannot be loaded here",
                st->uses);
    return -1;
  }
  if (opts->nested_loads && ++*opts->nested_loads > MAX_FLOW_LOADS) {
    pc_diag_add(d, wf->file, line, col,
                "uses: %s: more than %d workflow files loaded as steps under one workflow",
                st->uses, MAX_FLOW_LOADS);
    return -1;
  }
  struct pc_load_opts child = *opts;
  child.caller = &me;
  child.load = NULL;
  /* --var and --vars-file set the top file's vars, not this one's. */
  child.var_names = NULL;
  child.nvar_names = child.nvar_cli = 0;
  size_t first = d->n;
  struct pc_workflow *sub = NULL;
  int rc = opts->load(path, &child, h, &sub, d);
  if (rc == 0)
    rc = check_sub(h, wf, sub, line, d);
  /* Messages about the file say which call loaded it. */
  for (size_t i = first; i < d->n; i++) {
    char *m = pc_asprintf("%s (in %s, run by %s:%d:%d)", d->items[i].msg, st->uses,
                          base_name(wf->file), line, col);
    free(d->items[i].msg);
    d->items[i].msg = m;
  }
  if (rc != 0) {
    pc_workflow_free(sub);
    return -1;
  }
  size_t *map = pc_xcalloc(sub->npools ? sub->npools : 1, sizeof *map);
  for (size_t i = 0; i < sub->npools; i++)
    map[i] = pool_index(wf, &sub->pools[i], sub->file, d);
  remap_pools(sub->steps, sub->nsteps, map);
  remap_pools(sub->finally, sub->nfinally, map);
  free(map);
  st->sub = sub;
  return 0;
}

/* ------------------------------------------------------------- run time */

struct flow {
  struct pc_attempt *a;   /* borrowed: the attempt this runs for */
  struct pc_subgroup *g;  /* the steps, while they run */
  int scope_ref;          /* borrowed from the sub-group: valid until `done` returns */
};

/* The file's outputs, evaluated in its scope, into result.outputs. */
static int set_outputs(struct flow *f, char **err)
{
  struct pc_attempt *a = f->a;
  const struct pc_workflow *sub = a->step->sub;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  lua_createtable(L, 0, (int)sub->noutputs);        /* result, outputs */
  for (size_t i = 0; i < sub->noutputs; i++) {
    char *e = NULL;
    if (pc_lua_eval_tmpl(h, sub->outputs[i].value, f->scope_ref, &e) != 0) {
      *err = pc_asprintf("%s: outputs.%s: %s", a->step->uses, sub->outputs[i].name, e);
      free(e);
      lua_pop(L, 2);
      return -1;
    }
    lua_setfield(L, -2, sub->outputs[i].name);
  }
  lua_setfield(L, -2, "outputs"); /* result */
  lua_pop(L, 1);
  return 0;
}

static void on_flow_done(void *data, enum pc_outcome o, const char *msg)
{
  struct flow *f = data;
  struct pc_attempt *a = f->a;
  char *err = NULL;
  enum pc_fail fail = PC_FAIL_NONE;
  if (o == PC_OK || o == PC_SKIPPED) {
    if (set_outputs(f, &err) != 0)
      fail = PC_FAIL_ERROR;
  } else {
    fail = o == PC_FAILED ? PC_FAIL_EXPECT : PC_FAIL_ERROR;
    err = pc_xstrdup(msg ? msg : pc_outcome_name(o));
  }
  a->data = NULL;
  free(f);
  pc_attempt_done(a, fail, err);
  free(err);
}

/* `with` evaluated, checked against the spec on top of the stack and
 * completed with the defaults (prepare_with, as a plugin's inputs are), in
 * place of the spec. Returns 0, or -1 with the spec popped and *err set. */
static int prepare_inputs(struct pc_attempt *a, char **err)
{
  const struct pc_step *st = a->step;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  int spec = lua_gettop(L);               /* spec */
  pc_pacer_push(h, "prepare_with");       /* spec, prepare_with */
  lua_pushvalue(L, spec);                 /* spec, prepare_with, spec */
  if (st->with) {
    char *werr = NULL;
    if (pc_lua_eval_tmpl(h, st->with, a->scope_ref, &werr) != 0) {
      *err = pc_asprintf("with: %s", werr);
      free(werr);
      lua_settop(L, spec - 1);
      return -1;
    }
  } else {
    lua_newtable(L);
  }                                       /* spec, prepare_with, spec, with */
  char *cerr = NULL;
  if (pc_pacer_call(h, 2, 2, PC_LUA_HOST_CODE, NULL, &cerr) != 0 ||
      lua_isnil(L, -2)) {                 /* spec, with, nil (or nil, msg) */
    *err = pc_asprintf("%s: %s", st->uses,
                       cerr ? cerr : lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    free(cerr);
    lua_settop(L, spec - 1);
    return -1;
  }
  lua_pop(L, 1);                          /* spec, with */
  lua_replace(L, spec);                   /* with */
  return 0;
}

void pc_flow_start(struct pc_attempt *a)
{
  const struct pc_workflow *sub = a->step->sub;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  char *perr = NULL;
  if (prepare_inputs(a, &perr) != 0) {
    pc_attempt_done(a, PC_FAIL_ERROR, perr);
    free(perr);
    return;
  }
  int inputs = lua_gettop(L);                        /* inputs */
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->scope_ref);   /* inputs, scope */
  lua_getfield(L, -1, "workflow");                   /* inputs, scope, workflow */
  lua_getfield(L, -1, "run_id");                     /* inputs, scope, workflow, run_id */
  char *run_id = pc_xstrdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
  lua_settop(L, inputs);                             /* inputs */
  /* Its vars may read its inputs (and env, secrets), as a top file's
   * vars read env: evaluated in a scope with empty vars. */
  lua_newtable(L);                                   /* inputs, {} */
  int boot = pc_lua_root_scope(h, sub->name, run_id); /* inputs */
  lua_pushvalue(L, inputs);
  pc_lua_scope_set(h, boot, "inputs");
  if (sub->vars) {
    char *err = NULL;
    if (pc_lua_eval_tmpl(h, sub->vars, boot, &err) != 0) { /* inputs, vars */
      char *m = pc_asprintf("%s: vars: %s", a->step->uses, err);
      free(err);
      pc_lua_unref(h, boot);
      free(run_id);
      lua_settop(L, inputs - 1);
      pc_attempt_done(a, PC_FAIL_ERROR, m);
      free(m);
      return;
    }
  } else {
    lua_newtable(L);
  }
  pc_lua_unref(h, boot);
  int scope = pc_lua_root_scope(h, sub->name, run_id); /* inputs */
  free(run_id);
  pc_lua_scope_set(h, scope, "inputs");               /* (popped) */
  struct flow *f = pc_xcalloc(1, sizeof *f);
  f->a = a;
  f->scope_ref = scope;
  a->data = f;
  struct pc_subgroup_spec spec = {
      .steps = sub->steps, .nsteps = sub->nsteps,
      .finally = sub->finally, .nfinally = sub->nfinally,
      .scope_ref = scope, .timeout_ms = sub->timeout_ms,
      .done = on_flow_done, .data = f,
  };
  f->g = pc_attempt_run_steps(a, &spec);
}

void pc_flow_cancel(struct pc_attempt *a)
{
  struct flow *f = a->data;
  if (!f)
    return;
  pc_subgroup_detach(f->g);
  free(f);
  a->data = NULL;
}

/* ------------------------------------------------------- pacer plugins */

int pc_flow_print(const char *name, const char *path, FILE *out)
{
  struct pc_diag dg;
  pc_diag_init(&dg);
  struct pc_node *root = NULL;
  if (pc_yaml_load_file(path, NULL, &root, &dg) != 0 || root->kind != PC_NODE_MAP) {
    fprintf(stderr, "pacer plugins: %s: not a workflow file\n", path);
    pc_node_free(root);
    pc_diag_free(&dg);
    return -1;
  }
  pc_diag_free(&dg);
  fprintf(out, "%s  (%s, a workflow file)\n", name, path);
  const struct pc_node *v = pc_node_get(root, "description");
  if (v && v->kind == PC_NODE_SCALAR)
    fprintf(out, "  %.*s\n", (int)v->len, v->str);
  const struct pc_node *in = pc_node_get(root, "inputs");
  if (in && in->kind == PC_NODE_MAP && in->n) {
    fprintf(out, "  inputs:\n");
    for (size_t i = 0; i < in->n; i++) {
      const struct pc_node *def = in->items[i];
      const struct pc_node *ty = def->kind == PC_NODE_MAP ? pc_node_get(def, "type") : NULL;
      const struct pc_node *rq = def->kind == PC_NODE_MAP ? pc_node_get(def, "required") : NULL;
      const struct pc_node *dv = def->kind == PC_NODE_MAP ? pc_node_get(def, "default") : NULL;
      const struct pc_node *ds = def->kind == PC_NODE_MAP ? pc_node_get(def, "description") : NULL;
      fprintf(out, "    %-14.*s %.*s", (int)in->keys[i]->len, in->keys[i]->str,
              ty && ty->kind == PC_NODE_SCALAR ? (int)ty->len : 3,
              ty && ty->kind == PC_NODE_SCALAR ? ty->str : "any");
      if (dv && dv->kind == PC_NODE_SCALAR && pc_node_scalar_type(dv) == PC_SCALAR_STR)
        fprintf(out, ", default \"%.*s\"", (int)dv->len, dv->str);
      else if (dv && dv->kind == PC_NODE_SCALAR)
        fprintf(out, ", default %.*s", (int)dv->len, dv->str);
      else if (dv)
        fprintf(out, ", default (a table)");
      else if (rq && rq->kind == PC_NODE_SCALAR && rq->len == 4 && memcmp(rq->str, "true", 4) == 0)
        fprintf(out, ", required");
      if (ds && ds->kind == PC_NODE_SCALAR)
        fprintf(out, "  %.*s", (int)ds->len, ds->str);
      fputc('\n', out);
    }
  }
  pc_node_free(root);
  return 0;
}
