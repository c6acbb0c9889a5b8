/* steps.c: a step and its modifiers (SPEC.md section 3): the one action
 * key of a step (groups recurse; every action is looked up in the table of
 * actions the loader was handed and reads its own value through its
 * `load`, the step's other keys it declares included), then id, name, if,
 * for_each, label, concurrency, fail_fast, pool, timeout, retry (with the warning
 * about retry.on conditions a non-idempotent request can never meet),
 * continue_on_error, expect and outputs; defaults.timeout and
 * defaults.retry fill in leaf steps. Ownership: a step owns its strings, templates, bare expressions
 * (if, assert, expect.that, until, fail_if) and children; retry.on codes belong to the
 * workflow (shared by every step that inherits them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "load/loader.h"
#include "load/refs.h"
#include "model/action.h"
#include "model/workflow.h"

/* ------------------------------------------------------------ vocabulary */

/* The keys of a group, which the loader reads itself. */
static const char *const group_keys[] = {"steps", "gather"};

static const char *const retry_keys[] = {"attempts", "backoff", "max_backoff", "factor",
                                         "jitter",   "on",      "unsafe"};
static const char *const expect_keys[] = {"status", "exit_code", "that"};
/* The modifiers; a step's keys are these, the keys the actions declare
 * (uses: with), the actions' own and the groups' (see vocabulary_init). */
static const char *const modifier_keys[] = {
  "id",   "name",  "if",      "for_each", "label", "concurrency", "fail_fast", "pool",
  "timeout", "retry", "continue_on_error", "expect", "outputs", "shard", "shard_key",
  "key",  "until", "fail_if", "every", "within", "background", "wait",
};

static const char *const every_keys[] = {"interval", "factor", "max", "jitter"};

/* retry.on words and their flags, index for index. */
static const char *const retry_on_words[] = {"network", "timeout", "5xx", "4xx", "expect",
                                             "error"};
static const unsigned retry_on_flags[] = {PC_ON_NETWORK, PC_ON_TIMEOUT, PC_ON_5XX,
                                          PC_ON_4XX,     PC_ON_EXPECT,  PC_ON_ERROR};

static void add_key(struct loader *L, const char *key)
{
  L->step_keys = pc_xrealloc(L->step_keys, (L->nstep_keys + 1) * sizeof *L->step_keys);
  L->step_keys[L->nstep_keys++] = key;
}

#define GROUPS_AFTER 3

static void add_groups(struct loader *L, struct pc_buf *list)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(group_keys); i++) {
    add_key(L, group_keys[i]);
    pc_buf_printf(list, "%s%s", list->len ? ", " : "", group_keys[i]);
  }
}

void pc__vocabulary_init(struct loader *L)
{
  for (size_t i = 0; i < PC_ARRAY_SIZE(modifier_keys); i++)
    add_key(L, modifier_keys[i]);
  for (const struct pc_action_ops *const *a = L->actions; a && *a; a++)
    for (const char *const *k = (*a)->step_keys; k && *k; k++)
      add_key(L, *k);
  /* The groups come after the first three actions, where messages have
   * always listed them ("sleep, log, assert, steps, gather, http, ..."). */
  struct pc_buf list;
  pc_buf_init(&list, 1 << 20);
  size_t i = 0;
  for (const struct pc_action_ops *const *a = L->actions; a && *a; a++, i++) {
    if (i == GROUPS_AFTER)
      add_groups(L, &list);
    add_key(L, (*a)->key);
    pc_buf_printf(&list, "%s%s", list.len ? ", " : "", (*a)->key);
  }
  if (i <= GROUPS_AFTER)
    add_groups(L, &list);
  L->action_list = pc_buf_steal(&list);
}

void pc__vocabulary_free(struct loader *L)
{
  free(L->step_keys);
  free(L->action_list);
}

/* The kind a step key makes (*ops set for a leaf), or -1 if it is no
 * action's and no group's. */
static int key_kind(const struct loader *L, const char *key, const struct pc_action_ops **ops)
{
  if (strcmp(key, "steps") == 0)
    return PC_STEP_SEQUENCE;
  if (strcmp(key, "gather") == 0)
    return PC_STEP_GATHER;
  *ops = pc_actions_find(L->actions, key);
  return *ops ? PC_STEP_LEAF : -1;
}

/* ------------------------------------------------------------------ retry */

void pc__retry_init(struct pc_retry *r)
{
  *r = (struct pc_retry){
    .attempts = 1,
    .backoff_ms = 0,
    .factor = 2,
    .max_backoff_ms = 30000,
    .jitter = true,
  };
}

/* The codes array is the workflow's (see load_retry_on): a copy shares it. */
static void retry_copy(struct pc_retry *dst, const struct pc_retry *src)
{
  *dst = *src;
}

void pc__retry_free(struct pc_retry *r)
{
  r->codes = NULL;
  r->ncodes = 0;
}

static void load_retry_on(struct pc_load_ctx *c, const struct pc_node *v, struct pc_retry *r)
{
  /* `on` replaces the inherited list as a whole: it is one key. */
  pc__retry_free(r);
  r->on = 0;
  r->on_set = true;
  size_t n = v->kind == PC_NODE_SEQ ? v->n : 1;
  if (v->kind == PC_NODE_MAP) {
    pc_load_error(c, v, "retry.on: expected a list of conditions, got a map");
    return;
  }
  /* Each code is kept once (there are at most 500), in an array the
   * workflow owns: every leaf step that inherits defaults.retry shares it,
   * where a copy per step made a hostile list of 60 000 codes over 40 000
   * steps cost gigabytes. */
  bool seen[600] = {false};
  struct pc_workflow *wf = c->wf;
  int *codes = NULL;
  for (size_t i = 0; i < n; i++) {
    const struct pc_node *it = v->kind == PC_NODE_SEQ ? v->items[i] : v;
    if (it->kind == PC_NODE_SCALAR && pc_node_scalar_type(it) == PC_SCALAR_INT) {
      int code;
      if (pc__load_int(c, "retry.on", it, 100, 599, &code) == 0 && !seen[code]) {
        seen[code] = true;
        if (codes == NULL) {
          codes = pc_xcalloc(500, sizeof *codes);
          wf->retry_codes = pc_xrealloc(wf->retry_codes,
                                        (wf->nretry_codes + 1) * sizeof *wf->retry_codes);
          wf->retry_codes[wf->nretry_codes++] = codes;
          r->codes = codes;
        }
        codes[r->ncodes++] = code;
      }
      continue;
    }
    size_t nwords = PC_ARRAY_SIZE(retry_on_words), j = nwords;
    if (it->kind == PC_NODE_SCALAR)
      for (j = 0; j < nwords; j++)
        if (strcmp(it->str, retry_on_words[j]) == 0)
          break;
    if (j < nwords) {
      r->on |= retry_on_flags[j];
      continue;
    }
    const char *hint =
        it->kind == PC_NODE_SCALAR ? pc_did_you_mean(it->str, retry_on_words, nwords) : NULL;
    if (hint)
      pc_load_error(c, it, "retry.on: unknown condition %s; did you mean \"%s\"?",
                    pc_node_describe(it).s, hint);
    else
      pc_load_error(c, it,
                    "retry.on: expected network, timeout, 5xx, 4xx, expect, error or a "
                    "status code, got %s",
                    pc_node_describe(it).s);
  }
}

/* A step that sends a request that is not idempotent is retried without
 * retry.unsafe only after failures that sent nothing (connection refused,
 * DNS, TLS handshake, connect timeout; see the engine's should_retry): a
 * failure that comes with a response never qualifies. Warns about each
 * condition of retry.on (the step's, or defaults.retry's) that therefore
 * can never apply. `retry` is the step's own retry node, or NULL. */
static void warn_unsafe_retry(struct loader *L, const struct pc_step *st,
                              const struct pc_node *retry)
{
  const struct pc_retry *r = &st->retry;
  if (!st->unsafe_method || r->unsafe || r->attempts < 2 || !r->on_set)
    return;
  const struct pc_node *on = retry && retry->kind == PC_NODE_MAP ? pc_node_get(retry, "on") : NULL;
  bool from_defaults = false;
  if (!on && L->default_retry_node && L->default_retry_node->kind == PC_NODE_MAP) {
    on = pc_node_get(L->default_retry_node, "on");
    from_defaults = true;
  }
  if (!on || on->kind != PC_NODE_SEQ)
    return;
  for (size_t i = 0; i < on->n; i++) {
    const struct pc_node *it = on->items[i];
    if (it->kind != PC_NODE_SCALAR || strcmp(it->str, "network") == 0 ||
        strcmp(it->str, "timeout") == 0 || strcmp(it->str, "error") == 0)
      continue;
    char *where = from_defaults ? pc_asprintf(" (from defaults.retry, for the step at line %d)",
                                              st->line)
                                : pc_xstrdup("");
    pc_load_warn(&L->c, it,
                 "retry.on: %s can never apply%s: %s is not idempotent, so without "
                 "retry.unsafe: true it is retried only after failures that sent nothing "
                 "(network, timeout); add unsafe: true if sending it twice is harmless",
                 it->str, where, st->unsafe_method);
    free(where);
  }
}

/* A backoff factor (retry.factor, every.factor): a finite number >= 1,
 * stored in *out only when it is one. */
static void load_factor(struct pc_load_ctx *c, const char *what, const struct pc_node *v,
                        double *out)
{
  double f;
  if (pc__load_number(c, what, v, &f) != 0)
    return;
  if (!(f >= 1 && isfinite(f)))
    pc_load_error(c, v, "%s: expected a number >= 1, got %s", what, pc_node_describe(v).s);
  else
    *out = f;
}

/* Applies the keys present in `n` over `r`: a step's retry refines
 * defaults.retry key by key instead of replacing it. */
void pc__load_retry(struct pc_load_ctx *c, const struct pc_node *n, struct pc_retry *r)
{
  if (pc_load_check_keys(c, n, retry_keys, PC_ARRAY_SIZE(retry_keys), "retry") < 0)
    return;
  const struct pc_node *v;
  if ((v = pc_node_get(n, "attempts")))
    pc__load_int(c, "retry.attempts", v, 1, 1000000, &r->attempts);
  if ((v = pc_node_get(n, "backoff")))
    pc__load_duration(c, "retry.backoff", v, &r->backoff_ms);
  if ((v = pc_node_get(n, "max_backoff")))
    pc__load_duration(c, "retry.max_backoff", v, &r->max_backoff_ms);
  if ((v = pc_node_get(n, "factor")))
    load_factor(c, "retry.factor", v, &r->factor);
  if ((v = pc_node_get(n, "jitter")))
    pc__load_bool(c, "retry.jitter", v, &r->jitter);
  if ((v = pc_node_get(n, "unsafe")))
    pc__load_bool(c, "retry.unsafe", v, &r->unsafe);
  if ((v = pc_node_get(n, "on")))
    load_retry_on(c, v, r);
}

/* ----------------------------------------------------------------- expect */

/* (expect.that: [] checks nothing, as it always has; assert: [] is refused.) */
struct pc_expr **pc_load_expr_list(struct pc_load_ctx *c, const char *what,
                                   const struct pc_node *v, bool empty_ok, size_t *n)
{
  if (v->kind == PC_NODE_MAP) {
    pc_load_error(c, v, "%s: expected an expression or a list of them, got a map", what);
    return NULL;
  }
  if (v->kind == PC_NODE_SEQ && v->n == 0 && !empty_ok) {
    pc_load_error(c, v, "%s: the list is empty", what);
    return NULL;
  }
  size_t cnt = v->kind == PC_NODE_SEQ ? v->n : 1;
  struct pc_expr **out = pc_xcalloc(cnt, sizeof *out);
  for (size_t i = 0; i < cnt; i++) {
    struct pc_expr *e = pc_load_bare_expr(c, v->kind == PC_NODE_SEQ ? v->items[i] : v);
    if (e)
      out[(*n)++] = e;
  }
  return out;
}

static void add_status(struct pc_expect *e, int lo, int hi)
{
  e->status = pc_xrealloc(e->status, (e->nstatus + 1) * sizeof *e->status);
  e->status[e->nstatus++] = (struct pc_status_range){lo, hi};
}

static void load_status_item(struct pc_load_ctx *c, const struct pc_node *it, struct pc_expect *e)
{
  if (it->kind == PC_NODE_SCALAR && pc_node_scalar_type(it) == PC_SCALAR_INT) {
    int code;
    if (pc__load_int(c, "expect.status", it, 100, 599, &code) == 0)
      add_status(e, code, code);
    return;
  }
  if (it->kind == PC_NODE_SCALAR && it->len == 3 && it->str[0] >= '1' && it->str[0] <= '5' &&
      (it->str[1] == 'x' || it->str[1] == 'X') && (it->str[2] == 'x' || it->str[2] == 'X')) {
    int base = (it->str[0] - '0') * 100;
    add_status(e, base, base + 99);
    return;
  }
  pc_load_error(c, it, "expect.status: expected a status code or a class like \"2xx\", got %s",
                pc_node_describe(it).s);
}

static void load_expect(struct pc_load_ctx *c, const struct pc_node *n, struct pc_expect *e)
{
  if (pc_load_check_keys(c, n, expect_keys, PC_ARRAY_SIZE(expect_keys), "expect") < 0)
    return;
  const struct pc_node *v;
  if ((v = pc_node_get(n, "status"))) {
    if (v->kind == PC_NODE_SEQ) {
      if (v->n == 0)
        pc_load_error(c, v, "expect.status: the list is empty");
      for (size_t i = 0; i < v->n; i++)
        load_status_item(c, v->items[i], e);
    } else {
      load_status_item(c, v, e);
    }
  }
  if ((v = pc_node_get(n, "exit_code"))) {
    size_t cnt = v->kind == PC_NODE_SEQ ? v->n : 1;
    if (v->kind == PC_NODE_SEQ && v->n == 0)
      pc_load_error(c, v, "expect.exit_code: the list is empty");
    for (size_t i = 0; i < cnt; i++) {
      const struct pc_node *it = v->kind == PC_NODE_SEQ ? v->items[i] : v;
      int code;
      if (pc__load_int(c, "expect.exit_code", it, 0, 255, &code) == 0) {
        e->exit_codes = pc_xrealloc(e->exit_codes, (e->nexit_codes + 1) * sizeof *e->exit_codes);
        e->exit_codes[e->nexit_codes++] = code;
      }
    }
  }
  if ((v = pc_node_get(n, "that")))
    e->that = pc_load_expr_list(c, "expect.that", v, true, &e->nthat);
}

/* ------------------------------------------------------------------ steps */

void pc__step_free(struct pc_step *st)
{
  if (st == NULL)
    return;
  free(st->id);
  free(st->name);
  pc__expr_free(st->if_expr);
  pc__expr_free(st->shard_key);
  pc__expr_free(st->item_key);
  free(st->waits);
  pc__expr_free(st->poll.until);
  pc__expr_free(st->poll.fail_if);
  for (size_t i = 0; i < st->nmatrix_keys; i++)
    free(st->matrix_keys[i]);
  free(st->matrix_keys);
  pc_tmpl_free(st->for_each);
  pc_tmpl_free(st->label);
  free(st->pools);
  pc__retry_free(&st->retry);
  free(st->expect.status);
  free(st->expect.exit_codes);
  for (size_t i = 0; i < st->expect.nthat; i++)
    pc__expr_free(st->expect.that[i]);
  free(st->expect.that);
  for (size_t i = 0; i < st->noutputs; i++) {
    free(st->outputs[i].name);
    pc_tmpl_free(st->outputs[i].value);
  }
  free(st->outputs);
  pc_tmpl_free(st->with);
  free(st->uses);
  pc_workflow_free(st->sub);
  pc_tmpl_free(st->params);
  for (size_t i = 0; i < st->nasserts; i++)
    pc__expr_free(st->asserts[i]);
  free(st->asserts);
  for (size_t i = 0; i < st->nchildren; i++)
    pc__step_free(st->children[i]);
  free(st->children);
  free(st);
}

static void load_id(struct loader *L, struct pc_step *st, const struct pc_node *v)
{
  struct pc_load_ctx *c = &L->c;
  if (v->kind != PC_NODE_SCALAR || pc_node_scalar_type(v) != PC_SCALAR_STR) {
    pc_load_error(c, v, "id: expected an identifier, got %s", pc_node_describe(v).s);
    return;
  }
  bool valid = (v->str[0] >= 'a' && v->str[0] <= 'z') || v->str[0] == '_';
  for (size_t i = 1; valid && i < v->len; i++) {
    char ch = v->str[i];
    valid = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
  }
  if (!valid) {
    pc_load_error(c, v,
                  "id: %s is not a valid id (lower-case letters, digits and _, not starting "
                  "with a digit)",
                  pc_node_describe(v).s);
    return;
  }
  st->id = pc_xstrndup(v->str, v->len);
  if (L->nids == L->ids_cap) {
    L->ids_cap = L->ids_cap ? L->ids_cap * 2 : 16;
    L->ids = pc_xrealloc(L->ids, L->ids_cap * sizeof *L->ids);
  }
  L->ids[L->nids++] = (struct id_use){st->id, v};
}

static int cmp_size(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

static void load_step_pools(struct loader *L, struct pc_step *st, const struct pc_node *v)
{
  struct pc_load_ctx *c = &L->c;
  struct pc_workflow *wf = c->wf;
  if (v->kind == PC_NODE_MAP) {
    pc_load_error(c, v, "pool: expected a pool name or a list of names, got a map");
    return;
  }
  size_t cnt = v->kind == PC_NODE_SEQ ? v->n : 1;
  st->pools = pc_xcalloc(cnt, sizeof *st->pools);
  for (size_t i = 0; i < cnt; i++) {
    const struct pc_node *it = v->kind == PC_NODE_SEQ ? v->items[i] : v;
    if (it->kind != PC_NODE_SCALAR || pc_node_scalar_type(it) == PC_SCALAR_NULL) {
      pc_load_error(c, it, "pool: expected a pool name, got %s", pc_node_describe(it).s);
      continue;
    }
    long j = pc__find_pool(L, it->str);
    if (j >= 0) {
      st->pools[st->npools++] = (size_t)j;
      continue;
    }
    /* The hint compares with every pool: only while messages are kept. */
    const char *hint =
        pc_diag_full(c->d) ? NULL : pc_did_you_mean(it->str, L->pool_names, wf->npools);
    if (hint)
      pc_load_error(c, it, "unknown pool \"%s\"; did you mean \"%s\"?", it->str, hint);
    else if (wf->npools == 0)
      pc_load_error(c, it, "unknown pool \"%s\" (the workflow defines no pools)", it->str);
    else
      pc_load_error(c, it, "unknown pool \"%s\" (not defined under `pools`)", it->str);
  }
  /* Sorted and unique, so the engine can acquire permits in one global
   * order and never deadlock two steps that share pools. */
  qsort(st->pools, st->npools, sizeof *st->pools, cmp_size);
  size_t out = 0;
  for (size_t i = 0; i < st->npools; i++)
    if (out == 0 || st->pools[out - 1] != st->pools[i])
      st->pools[out++] = st->pools[i];
  st->npools = out;
}

static void load_outputs(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  if (v->kind != PC_NODE_MAP) {
    pc_load_error(c, v, "outputs: expected a map of NAME: value, got %s", pc_node_describe(v).s);
    return;
  }
  st->outputs = pc_xcalloc(v->n, sizeof *st->outputs);
  for (size_t i = 0; i < v->n; i++) {
    struct pc_tmpl *t = pc_load_tmpl(c, v->items[i]);
    if (t == NULL)
      continue;
    st->outputs[st->noutputs].name = pc_xstrndup(v->keys[i]->str, v->keys[i]->len);
    st->outputs[st->noutputs].value = t;
    st->noutputs++;
  }
}


/* ---------------------------------------------------------------- polling */

/* `every:` is an interval, or a map of interval, factor, max and jitter
 * (retry's backoff options under the names a poll reads them by). */
static void load_every(struct pc_load_ctx *c, const struct pc_node *v, struct pc_poll *p)
{
  if (v->kind != PC_NODE_MAP) {
    pc__load_duration(c, "every", v, &p->every_ms);
    return;
  }
  if (pc_load_check_keys(c, v, every_keys, PC_ARRAY_SIZE(every_keys), "every") < 0)
    return;
  const struct pc_node *x;
  if ((x = pc_node_get(v, "interval")))
    pc__load_duration(c, "every.interval", x, &p->every_ms);
  if ((x = pc_node_get(v, "max")))
    pc__load_duration(c, "every.max", x, &p->max_ms);
  if ((x = pc_node_get(v, "jitter")))
    pc__load_bool(c, "every.jitter", x, &p->jitter);
  if ((x = pc_node_get(v, "factor")))
    load_factor(c, "every.factor", x, &p->factor);
}

/* until / fail_if / every / within: polling belongs to a leaf's attempts,
 * and needs one deadline (a condition that never comes true would
 * otherwise poll until the workflow's deadline, or forever). */
static void load_poll(struct loader *L, struct pc_step *st, const struct pc_node *n, bool group)
{
  struct pc_load_ctx *c = &L->c;
  static const char *const with_until[] = {"fail_if", "every", "within"};
  const struct pc_node *uk = NULL, *k = NULL, *v;
  const struct pc_node *until = pc__find_key(n, "until", &uk);
  if (!until) {
    for (size_t i = 0; i < PC_ARRAY_SIZE(with_until); i++)
      if (pc__find_key(n, with_until[i], &k))
        pc_load_error(c, k, "%s applies only with until: (a polled step)", with_until[i]);
    return;
  }
  if (group) {
    pc_load_error(c, uk, "until applies to single steps (it re-runs one action); put it on the "
                         "step inside that polls");
    return;
  }
  st->poll = (struct pc_poll){.every_ms = 1000, .factor = 1, .max_ms = INFINITY,
                              .within_ms = -1};
  st->poll.until = pc_load_bare_expr(c, until);
  if ((v = pc_node_get(n, "fail_if")))
    st->poll.fail_if = pc_load_bare_expr(c, v);
  if ((v = pc_node_get(n, "every")))
    load_every(c, v, &st->poll);
  if ((v = pc_node_get(n, "within"))) {
    if (pc__load_duration(c, "within", v, &st->poll.within_ms) == 0 && st->poll.within_ms <= 0)
      pc_load_error(c, v, "within: expected a duration above zero, got %s", pc_node_describe(v).s);
  } else
    pc_load_error(c, uk, "until needs within: DURATION, one deadline over all the polls (e.g. "
                         "`within: 2m`)");
}

/* ----------------------------------------------------------------- matrix */

/* `include` / `exclude` of a matrix: a list of maps, or one expression. */
static bool matrix_entries_ok(struct pc_load_ctx *c, const struct pc_node *v, const char *what,
                              const struct pc_node *m)
{
  if (v->kind == PC_NODE_SCALAR && pc__find(v->str, v->len, "${{"))
    return true;
  if (v->kind != PC_NODE_SEQ) {
    pc_load_error(c, v, "for_each.matrix.%s: expected a list of maps, got %s", what,
                  pc_node_describe(v).s);
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < v->n; i++) {
    const struct pc_node *e = v->items[i];
    if (e->kind != PC_NODE_MAP || e->n == 0) {
      pc_load_error(c, e, "for_each.matrix.%s: expected a map of dimension: value, got %s", what,
                    pc_node_describe(e).s);
      ok = false;
      continue;
    }
    /* An exclude entry naming no dimension would never match anything. */
    for (size_t j = 0; j < e->n && strcmp(what, "exclude") == 0; j++) {
      const char *k = e->keys[j]->str;
      if (strcmp(k, "include") == 0 || strcmp(k, "exclude") == 0 || !pc_node_get(m, k)) {
        pc_load_error(c, e->keys[j], "for_each.matrix.exclude: \"%s\" is not a dimension of the "
                                     "matrix", k);
        ok = false;
      }
    }
  }
  return ok;
}

/* for_each: {matrix: {DIM: [values] or ${{ }}, ..., include: [...],
 * exclude: [...]}}: the template is the matrix map; the dimensions' order
 * (the file's) is kept for the engine, which makes the combinations. */
static void load_matrix(struct loader *L, struct pc_step *st, const struct pc_node *v)
{
  struct pc_load_ctx *c = &L->c;
  static const char *const keys[] = {"matrix"};
  const struct pc_node *m = pc_node_get(v, "matrix");
  if (!m) {
    pc_load_error(c, v, "for_each: expected a list or one ${{ }} expression, got a map without "
                        "`matrix:` (for_each: {matrix: {DIM: [values], ...}} runs each "
                        "combination)");
    return;
  }
  if (pc_load_check_keys(c, v, keys, 1, "for_each") < 0)
    return;
  if (m->kind != PC_NODE_MAP || m->n == 0) {
    pc_load_error(c, m, "for_each.matrix: expected a map of dimension: [values], got %s",
                  pc_node_describe(m).s);
    return;
  }
  bool ok = true;
  size_t ndims = 0;
  for (size_t i = 0; i < m->n; i++) {
    const char *k = m->keys[i]->str;
    const struct pc_node *d = m->items[i];
    if (strcmp(k, "include") == 0 || strcmp(k, "exclude") == 0) {
      ok = matrix_entries_ok(c, d, k, m) && ok;
      continue;
    }
    ndims++;
    if (d->kind == PC_NODE_SCALAR && pc__find(d->str, d->len, "${{"))
      continue; /* its value must be a non-empty list: checked when it runs */
    if (d->kind != PC_NODE_SEQ || d->n == 0) {
      pc_load_error(c, d, "for_each.matrix.%s: expected a non-empty list of values or one "
                          "${{ }} expression, got %s", k,
                    d->kind == PC_NODE_SEQ ? "an empty list" : pc_node_describe(d).s);
      ok = false;
    }
  }
  if (ndims == 0) {
    pc_load_error(c, m, "for_each.matrix: no dimension (only include/exclude)");
    ok = false;
  }
  if (!ok)
    return;
  size_t nexprs = c->wf->nexprs;
  struct pc_tmpl *t = pc_load_tmpl(c, m);
  if (!t || t->kind != PC_T_MAP) {
    pc_tmpl_free(t);
    c->wf->nexprs = nexprs;
    return;
  }
  st->for_each = t;
  st->matrix_keys = pc_xcalloc(ndims, sizeof *st->matrix_keys);
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->keys[i]->str, "include") != 0 && strcmp(m->keys[i]->str, "exclude") != 0)
      st->matrix_keys[st->nmatrix_keys++] = pc_xstrndup(m->keys[i]->str, m->keys[i]->len);
}

/* Loads the action value: groups recurse, every action validates its own
 * value through its ops. */
static void load_action(struct loader *L, struct pc_step *st, const struct pc_node *key,
                        const struct pc_node *v)
{
  const struct pc_action_ops *ops = NULL;
  st->kind = (enum pc_step_kind)key_kind(L, key->str, &ops);
  if (st->kind != PC_STEP_LEAF) {
    pc__load_step_list(L, v, key->str, &st->children, &st->nchildren);
    return;
  }
  st->ops = ops;
  if (ops->load) {
    ops->load(&L->c, st, v);
  } else if (ops->params) {
    /* An action with a table and no load of its own: its value is a
     * template, checked against the table. A value of the wrong kind for
     * a scalar parameter is refused without reading what is inside. */
    const struct pc_params *p = ops->params;
    if (v->kind != PC_NODE_SCALAR && p->nkeys == 0 && p->value &&
        pc_param_is_scalar(p->value->type)) {
      pc_load_params(&L->c, ops->key, p, v, NULL);
      return;
    }
    st->params = pc_load_tmpl(&L->c, v);
    if (st->params)
      pc_load_params(&L->c, ops->key, p, v, st->params);
  }
}

/* A key an action declares (uses: `with`) on a step of another action. */
static void check_action_keys(struct loader *L, const struct pc_step *st,
                              const struct pc_node *n)
{
  for (const struct pc_action_ops *const *a = L->actions; a && *a; a++) {
    if (*a == st->ops)
      continue;
    for (const char *const *k = (*a)->step_keys; k && *k; k++) {
      const struct pc_node *kn = NULL;
      if (pc__find_key(n, *k, &kn))
        pc_load_error(&L->c, kn, "`%s` applies only to `%s` steps", *k, (*a)->key);
    }
  }
}

static bool applies_to_fanout(struct pc_load_ctx *c, const struct pc_node *key, bool fanout)
{
  if (!fanout)
    pc_load_error(c, key, "%s applies to gather or for_each", key->str);
  return fanout;
}

static struct pc_step *load_step(struct loader *L, const struct pc_node *n, int index)
{
  struct pc_load_ctx *c = &L->c;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "a step must be a map with one action (e.g. `log: hello`), got %s",
                  pc_node_describe(n).s);
    return NULL;
  }
  struct pc_step *st = pc_xcalloc(1, sizeof *st);
  st->file = c->file;
  st->node = n;
  st->line = n->line;
  st->col = n->col;
  st->index = index;
  st->timeout_ms = -1;
  st->fail_fast = true;
  pc__retry_init(&st->retry);
  pc_load_check_keys(c, n, L->step_keys, L->nstep_keys, "step");

  const struct pc_node *act_key = NULL, *act_val = NULL;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i];
    const struct pc_action_ops *ops;
    if (key_kind(L, k->str, &ops) < 0)
      continue;
    if (act_key == NULL) {
      act_key = k;
      act_val = n->items[i];
    } else {
      pc_load_error(c, k, "a step has exactly one action, this one has `%s` and `%s`",
                    act_key->str, k->str);
    }
  }
  if (act_key == NULL && pc_node_get(n, "wait"))
    st->kind = PC_STEP_SEQUENCE; /* `- wait: [IDS]`: an empty sequence that waits first */
  else if (act_key == NULL)
    pc_load_error(c, n, "step has no action (one of: %s)", L->action_list);
  else
    load_action(L, st, act_key, act_val);
  bool group = pc_step_is_group(st);

  const struct pc_node *k = NULL, *v;
  if ((v = pc_node_get(n, "id")))
    load_id(L, st, v);
  if ((v = pc_node_get(n, "name")))
    st->name = pc__load_text(c, "name", v);
  if ((v = pc_node_get(n, "if")))
    st->if_expr = pc_load_bare_expr(c, v);
  if ((v = pc_node_get(n, "shard"))) {
    if (v->kind == PC_NODE_SCALAR && strcmp(v->str, "one") == 0)
      st->shard_one = true;
    else if (v->kind != PC_NODE_SCALAR || strcmp(v->str, "all") != 0)
      pc_load_error(c, v, "shard: expected one (shard 1 only) or all (every shard), got %s",
                    pc_node_describe(v).s);
  }
  if ((v = pc_node_get(n, "for_each")) && v->kind == PC_NODE_MAP) {
    load_matrix(L, st, v);
  } else if (v) {
    size_t nexprs = c->wf->nexprs;
    struct pc_tmpl *t = pc_load_tmpl(c, v);
    if (t && t->kind != PC_T_SEQ && t->kind != PC_T_EXPR) {
      pc_load_error(c, v, "for_each: expected a list or one ${{ }} expression, got %s",
                    pc_node_describe(v).s);
      pc_tmpl_free(t); /* and unlist its expressions, as pc_load_tmpl does */
      c->wf->nexprs = nexprs;
      t = NULL;
    }
    st->for_each = t;
  }
  bool fanout = st->kind == PC_STEP_GATHER || pc_node_get(n, "for_each") != NULL;
  if ((v = pc__find_key(n, "shard_key", &k))) {
    if (!pc_node_get(n, "for_each"))
      pc_load_error(c, k, "shard_key applies to for_each");
    else
      st->shard_key = pc_load_bare_expr(c, v);
  }
  if ((v = pc__find_key(n, "key", &k))) {
    /* An item's identity in the journal (--journal, --resume): core/resume.c. */
    if (!pc_node_get(n, "for_each"))
      pc_load_error(c, k, "key applies to for_each (it names each item in the journal)");
    else
      st->item_key = pc_load_bare_expr(c, v);
  }
  if ((v = pc__find_key(n, "label", &k))) {
    /* Names each item of a fan-out in logs and reports (stories[3] ...). */
    if (!pc_node_get(n, "for_each"))
      pc_load_error(c, k, "label applies to for_each (it names each item)");
    else
      st->label = pc_load_tmpl(c, v);
  }
  if ((v = pc__find_key(n, "concurrency", &k)) && applies_to_fanout(c, k, fanout))
    pc__load_int(c, "concurrency", v, 1, 1000000, &st->concurrency);
  /* fail_fast applies to every group: a fan-out or a gather stops its
   * running siblings, a sequence its next steps; false runs them all and
   * fails the group at the end. */
  if ((v = pc__find_key(n, "fail_fast", &k))) {
    if (fanout || group)
      pc__load_bool(c, "fail_fast", v, &st->fail_fast);
    else
      pc_load_error(c, k, "fail_fast applies to steps, gather or for_each");
  }
  if ((v = pc_node_get(n, "pool")))
    load_step_pools(L, st, v);
  bool has_timeout = false;
  if ((v = pc_node_get(n, "timeout")))
    has_timeout = pc__load_duration(c, "timeout", v, &st->timeout_ms) == 0;
  bool has_retry = false;
  const struct pc_node *retry_node = NULL;
  if ((v = pc__find_key(n, "retry", &k))) {
    retry_node = v;
    if (group) {
      pc_load_error(c, k, "retry applies to single steps; put it on the steps inside");
    } else {
      retry_copy(&st->retry, &L->default_retry);
      pc__load_retry(c, v, &st->retry);
      has_retry = true;
    }
  }
  if ((v = pc_node_get(n, "continue_on_error")))
    pc__load_bool(c, "continue_on_error", v, &st->continue_on_error);
  if ((v = pc_node_get(n, "expect"))) {
    load_expect(c, v, &st->expect);
    /* Status and exit code only exist for some actions; a typo'd intention
     * ("expect.status" on a shell step) should not pass silently. */
    const struct pc_action_ops *ops = st->ops;
    const struct pc_node *sk = NULL, *ek = NULL;
    pc__find_key(v, "status", &sk);
    pc__find_key(v, "exit_code", &ek);
    if (sk && act_key && (group || !ops->has_status))
      pc_load_error(c, sk, "expect.status does not apply to `%s` steps", pc_step_key(st));
    if (ek && act_key && (group || !ops->has_exit_code))
      pc_load_error(c, ek, "expect.exit_code does not apply to `%s` steps", pc_step_key(st));
  }
  if ((v = pc_node_get(n, "outputs")))
    load_outputs(c, st, v);
  load_poll(L, st, n, group);
  if ((v = pc_node_get(n, "background")))
    pc__load_bool(c, "background", v, &st->background);
  if (act_key != NULL)
    check_action_keys(L, st, n);

  /* Defaults fill in leaf steps only: a group's timeout bounds the whole
   * group, and retrying a group is not a thing. */
  if (!group) {
    if (!has_timeout)
      st->timeout_ms = L->default_timeout_ms;
    if (!has_retry)
      retry_copy(&st->retry, &L->default_retry);
    warn_unsafe_retry(L, st, retry_node);
  }
  return st;
}

/* ------------------------------------------------------------- background */

static void add_wait(struct pc_step *st, const char *id)
{
  for (size_t i = 0; i < st->nwaits; i++)
    if (strcmp(st->waits[i], id) == 0)
      return;
  st->waits = pc_xrealloc(st->waits, (st->nwaits + 1) * sizeof *st->waits);
  st->waits[st->nwaits++] = id;
}

/* One name of a step's `wait:` (steps[i]): an earlier background step of
 * the same sequence. */
static void load_wait_item(struct loader *L, struct pc_step *const *steps, size_t i,
                           const struct pc_node *it)
{
  struct pc_load_ctx *c = &L->c;
  if (it->kind != PC_NODE_SCALAR || pc_node_scalar_type(it) != PC_SCALAR_STR) {
    pc_load_error(c, it, "wait: expected a step id, got %s", pc_node_describe(it).s);
    return;
  }
  for (size_t j = 0; j < i; j++) {
    if (!steps[j]->id || strcmp(steps[j]->id, it->str) != 0)
      continue;
    if (steps[j]->background)
      add_wait(steps[i], steps[j]->id);
    else
      pc_load_error(c, it, "wait: step \"%s\" does not run in the background (background: "
                           "true); a sequence runs it before this step anyway", it->str);
    return;
  }
  pc_load_error(c, it, "wait: \"%s\" is no background step earlier in this sequence (wait "
                       "names a background step of the same list of steps, written before it)",
                it->str);
}

/* A list's background steps and the steps that wait for them: `wait:`
 * names, checked, and the reads of steps.ID of a background step written
 * before (an implicit wait, so that the value read is the finished one). */
static void link_background(struct loader *L, struct pc_step *const *steps, size_t n, bool seq)
{
  struct pc_load_ctx *c = &L->c;
  bool any_bg = false;
  for (size_t i = 0; i < n; i++) {
    struct pc_step *st = steps[i];
    const struct pc_node *k = NULL, *w;
    if (st->background && !seq && pc__find_key(st->node, "background", &k))
      pc_load_error(c, k, "background applies to the steps of a sequence; a gather runs all "
                          "its steps at once already");
    if ((w = pc__find_key(st->node, "wait", &k))) {
      if (!seq) {
        pc_load_error(c, k, "wait applies to the steps of a sequence");
      } else if (w->kind == PC_NODE_SEQ) {
        if (w->n == 0)
          pc_load_error(c, w, "wait: the list is empty");
        for (size_t j = 0; j < w->n; j++)
          load_wait_item(L, steps, i, w->items[j]);
      } else {
        load_wait_item(L, steps, i, w);
      }
    }
    if (seq && any_bg)
      for (size_t j = 0; j < i; j++)
        if (steps[j]->background && steps[j]->id && pc_step_reads_id(st, steps[j]->id))
          add_wait(st, steps[j]->id);
    any_bg = any_bg || st->background;
  }
}

void pc__load_step_list(struct loader *L, const struct pc_node *n, const char *what,
                        struct pc_step ***out, size_t *nout)
{
  struct pc_load_ctx *c = &L->c;
  if (n->kind != PC_NODE_SEQ) {
    pc_load_error(c, n, "%s: expected a list of steps, got %s", what, pc_node_describe(n).s);
    return;
  }
  if (n->n == 0) {
    pc_load_error(c, n, "%s: the list of steps is empty", what);
    return;
  }
  *out = pc_xcalloc(n->n, sizeof **out);
  for (size_t i = 0; i < n->n; i++) {
    struct pc_step *st = load_step(L, n->items[i], (int)i + 1);
    if (st)
      (*out)[(*nout)++] = st;
  }
  link_background(L, *out, *nout, strcmp(what, "gather") != 0);
}

