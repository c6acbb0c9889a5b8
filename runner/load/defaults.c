/* defaults.c: the workflow-wide settings steps refer to: `pools` (named
 * concurrency and rate limits, indexed by name so a step naming one costs
 * a binary search), `defaults` (timeout and retry for every leaf step, and
 * defaults.KEY for each action that declares KEY, sent to that action's
 * load_defaults) and `vars` (a map of templates; a var whose value turns
 * out nil is declared but unset). */
#include <stdlib.h>
#include <string.h>

#include "base/redisbucket.h"
#include "base/util.h"
#include "load/loader.h"
#include "model/action.h"
#include "model/workflow.h"

/* The keys of `defaults` the loader reads itself; the actions add theirs. */
static const char *const own_defaults_keys[] = {"timeout", "retry"};
static const char *const pool_keys[] = {"concurrency", "rate", "burst", "shared"};

/* ------------------------------------------------------------ pool index */

static int cmp_pool_ref(const void *a, const void *b)
{
  return strcmp(((const struct pool_ref *)a)->name, ((const struct pool_ref *)b)->name);
}

static void index_pools(struct loader *L)
{
  struct pc_workflow *wf = L->c.wf;
  L->pools_by_name = pc_xcalloc(wf->npools + 1, sizeof *L->pools_by_name);
  L->pool_names = pc_xcalloc(wf->npools + 1, sizeof *L->pool_names);
  for (size_t i = 0; i < wf->npools; i++) {
    L->pools_by_name[i] = (struct pool_ref){wf->pools[i].name, i};
    L->pool_names[i] = wf->pools[i].name;
  }
  qsort(L->pools_by_name, wf->npools, sizeof *L->pools_by_name, cmp_pool_ref);
}

long pc__find_pool(struct loader *L, const char *name)
{
  if (L->pools_by_name == NULL)
    index_pools(L);
  struct pool_ref key = {name, 0};
  const struct pool_ref *r = bsearch(&key, L->pools_by_name, L->c.wf->npools,
                                     sizeof *L->pools_by_name, cmp_pool_ref);
  return r ? (long)r->index : -1;
}

/* ------------------------------------------------------------------ pools */

/* `shared: redis://...`: the URL is checked here so that a run never
 * starts with one it cannot use; the budget it names is the pool's rate. */
static void load_shared(struct pc_load_ctx *c, struct pc_pool_def *p, const struct pc_node *k,
                        const struct pc_node *x, bool has_rate)
{
  if (!has_rate) {
    pc_load_error(c, k, "shared applies only with rate (it shares the rate's budget)");
    return;
  }
  if (x->kind != PC_NODE_SCALAR) {
    pc_load_error(c, x, "shared: expected a URL like \"redis://HOST:PORT/KEY\", got %s",
                  pc_node_describe(x).s);
    return;
  }
  struct pc_redis_url u;
  char *err = NULL;
  if (pc_redis_url_parse(x->str, &u, &err) != 0) {
    pc_load_error(c, x, "shared: %s", err);
    free(err);
    return;
  }
  pc_redis_url_free(&u);
  p->shared = pc_xstrndup(x->str, x->len);
}

void pc__load_pools(struct pc_load_ctx *c, const struct pc_node *n)
{
  struct pc_workflow *wf = c->wf;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "pools: expected a map of pool names, got %s", pc_node_describe(n).s);
    return;
  }
  wf->pools = pc_xcalloc(n->n, sizeof *wf->pools);
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    struct pc_pool_def *p = &wf->pools[wf->npools++];
    p->name = pc_xstrndup(k->str, k->len);
    p->line = k->line;
    p->col = k->col;
    p->burst = 1;
    char *what = pc_asprintf("pool \"%s\"", p->name);
    int unknown = pc_load_check_keys(c, v, pool_keys, PC_ARRAY_SIZE(pool_keys), what);
    if (unknown >= 0) {
      const struct pc_node *x, *rate_v = pc_node_get(v, "rate"), *burst_k = NULL,
                           *shared_k = NULL;
      if ((x = pc_node_get(v, "concurrency")))
        pc__load_int(c, "concurrency", x, 1, 1000000, &p->concurrency);
      if (rate_v != NULL && (rate_v->kind != PC_NODE_SCALAR ||
                             pc_parse_rate(rate_v->str, &p->rate) < 0))
        pc_load_error(c, rate_v,
                      "rate: expected a rate like \"10/s\", \"30/min\" or \"100/h\", got %s",
                      pc_node_describe(rate_v).s);
      if ((x = pc__find_key(v, "burst", &burst_k))) {
        if (rate_v == NULL)
          pc_load_error(c, burst_k, "burst applies only with rate");
        else
          pc__load_int(c, "burst", x, 1, 1000000, &p->burst);
      }
      if ((x = pc__find_key(v, "shared", &shared_k)))
        load_shared(c, p, shared_k, x, rate_v != NULL);
      /* With a misspelt key the real problem has been reported already. */
      if (pc_node_get(v, "concurrency") == NULL && rate_v == NULL && unknown == 0)
        pc_load_error(c, v, "%s limits nothing: set concurrency, rate or both", what);
    }
    free(what);
  }
}

/* --------------------------------------------------------------- defaults */

/* defaults.KEY of an action whose table says it all: a literal map,
 * checked against the table (with its template, for static_only). */
static struct pc_tmpl *load_by_table(struct pc_load_ctx *c, const struct pc_action_ops *a,
                                     const struct pc_node *v)
{
  char *what = pc_asprintf("defaults.%s", a->defaults_key);
  struct pc_tmpl *t = NULL;
  if (!a->defaults_params) {
    t = pc_load_tmpl(c, v);
  } else if (v->kind != PC_NODE_MAP) {
    pc_load_check_keys(c, v, NULL, 0, what); /* "expected a map" */
  } else if ((t = pc_load_tmpl(c, v)) && pc_load_params(c, what, a->defaults_params, v, t) != 0) {
    pc_tmpl_free(t); /* the load fails: nothing runs its expressions */
    t = NULL;
  }
  free(what);
  return t;
}

void pc__load_defaults(struct loader *L, const struct pc_node *n)
{
  struct pc_load_ctx *c = &L->c;
  const char *keys[64];
  size_t nkeys = 0;
  for (size_t i = 0; i < PC_ARRAY_SIZE(own_defaults_keys); i++)
    keys[nkeys++] = own_defaults_keys[i];
  for (const struct pc_action_ops *const *a = L->actions; a && *a; a++)
    if ((*a)->defaults_key && nkeys < PC_ARRAY_SIZE(keys))
      keys[nkeys++] = (*a)->defaults_key;
  if (pc_load_check_keys(c, n, keys, nkeys, "defaults") < 0)
    return;
  const struct pc_node *v;
  if ((v = pc_node_get(n, "timeout")))
    pc__load_duration(c, "defaults.timeout", v, &L->default_timeout_ms);
  if ((v = pc_node_get(n, "retry"))) {
    pc__load_retry(c, v, &L->default_retry);
    L->default_retry_node = v;
  }
  struct pc_workflow *wf = c->wf;
  for (const struct pc_action_ops *const *a = L->actions; a && *a; a++) {
    if (!(*a)->defaults_key || !(v = pc_node_get(n, (*a)->defaults_key)))
      continue;
    struct pc_tmpl *t = (*a)->load_defaults ? (*a)->load_defaults(c, v)
                                            : load_by_table(c, *a, v);
    if (t == NULL)
      continue;
    wf->defaults = pc_xrealloc(wf->defaults, (wf->ndefaults + 1) * sizeof *wf->defaults);
    wf->defaults[wf->ndefaults++] = (struct pc_action_defaults){(*a)->defaults_key, t};
  }
}


/* ------------------------------------------------------------------- vars */

void pc__load_vars(struct loader *L, const struct pc_node *v)
{
  struct pc_load_ctx *c = &L->c;
  struct pc_workflow *wf = c->wf;
  if (v->kind != PC_NODE_MAP)
    pc_load_error(c, v, "vars: expected a map of NAME: value, got %s", pc_node_describe(v).s);
  else
    wf->vars = pc_load_tmpl(c, v);
  /* `token: ${{ env.TOKEN }}` with TOKEN unset declares the var, unset:
   * using it is the error, with default() as the way out. */
  for (size_t i = 0; wf->vars && i < wf->vars->u.coll.n; i++)
    wf->vars->u.coll.items[i]->nil_ok = true;
}
