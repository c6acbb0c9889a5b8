/* plan.c: `pacer run --dry-run`: the plan of a loaded workflow printed as
 * a tree (its pools, steps and finally, with what each step is set to do),
 * for a shard its share. Nothing runs. */
#include "cli/plan.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/pool.h"
#include "base/redisbucket.h"
#include "base/util.h"
#include "model/action.h"

/* The plan of shard k of n (1 of 1: not sharded); `split`: a fan-out
 * above has been partitioned already. */
struct plan_shard {
  int k, n;
};

/* `in`: the workflow file the step is written in when it is not the top
 * one (the steps of a workflow file run as a step, s->sub), else NULL. */
static void print_step(const struct pc_workflow *wf, const struct pc_step *s, int depth,
                       struct plan_shard sh, bool split, const char *in)
{
  printf("%*s- ", depth * 2, "");
  if (s->id)
    printf("%s: ", s->id);
  if (s->name)
    printf("\"%s\" ", s->name);
  printf("%s", pc_step_key(s));
  if (s->uses)
    printf(" %s", s->uses);
  if (s->for_each)
    printf(", for_each");
  for (size_t i = 0; i < s->nmatrix_keys; i++) /* the dimensions, outermost first */
    printf("%s%s", i ? " x " : " matrix ", s->matrix_keys[i]);
  if (s->for_each && sh.n > 1 && !split) {
    if (sh.n == 2)
      printf(" (this shard: items %d, %d, ...)", sh.k, sh.k + sh.n);
    else
      printf(" (this shard: items %d, %d, %d, ...)", sh.k, sh.k + sh.n, sh.k + 2 * sh.n);
  }
  if (s->shard_one)
    printf(sh.n > 1 && sh.k > 1 && !split ? ", shard one (not on this shard)" : ", shard one");
  if (s->if_expr)
    printf(", if %s", s->if_expr->src);
  if ((s->for_each || s->kind == PC_STEP_GATHER) && s->concurrency)
    printf(", concurrency %d", s->concurrency);
  if ((s->for_each || pc_step_is_group(s)) && !s->fail_fast)
    printf(", fail_fast false");
  for (size_t i = 0; i < s->npools; i++)
    printf("%s%s", i ? "," : ", pool ", wf->pools[s->pools[i]].name);
  if (s->timeout_ms >= 0) {
    char d[32];
    pc_format_duration(s->timeout_ms, d, sizeof d);
    printf(", timeout %s", d);
  }
  if (s->retry.attempts > 1)
    printf(", retry %d", s->retry.attempts);
  if (s->continue_on_error)
    printf(", continue_on_error");
  if (s->poll.until) {
    char d[32];
    pc_format_duration(s->poll.within_ms, d, sizeof d);
    printf(", until %s within %s", s->poll.until->src, d);
  }
  if (s->background)
    printf(", background");
  for (size_t i = 0; i < s->nwaits; i++)
    printf("%s%s", i ? "," : ", waits for ", s->waits[i]);
  if (in)
    printf("  (%s line %d)\n", in, s->line);
  else
    printf("  (line %d)\n", s->line);
  bool below_split = split || (s->for_each && sh.n > 1);
  for (size_t i = 0; i < s->nchildren; i++)
    print_step(wf, s->children[i], depth + 1, sh, below_split, in);
  if (s->sub) { /* its pools were made the top file's when it loaded */
    const char *base = strrchr(s->sub->file, '/');
    base = base ? base + 1 : s->sub->file;
    for (size_t i = 0; i < s->sub->nsteps; i++)
      print_step(wf, s->sub->steps[i], depth + 1, sh, below_split, base);
    if (s->sub->nfinally)
      printf("%*sfinally:\n", (depth + 1) * 2, "");
    for (size_t i = 0; i < s->sub->nfinally; i++)
      print_step(wf, s->sub->finally[i], depth + 1, sh, below_split, base);
  }
}

void pc_cli_print_plan(const struct pc_workflow *wf, int shard_k, int shard_n)
{
  struct plan_shard sh = {shard_k, shard_n};
  printf("workflow %s (%s)\n", wf->name, wf->file);
  if (sh.n > 1)
    printf("shard %d of %d (striped)\n", sh.k, sh.n);
  if (wf->timeout_ms >= 0) {
    char d[32];
    pc_format_duration(wf->timeout_ms, d, sizeof d);
    printf("timeout: %s\n", d);
  }
  for (size_t i = 0; i < wf->npools; i++) {
    const struct pc_pool_def *def = &wf->pools[i];
    struct pc_pool_limits whole = {def->concurrency, def->rate, def->burst};
    struct pc_pool_limits p = sh.n > 1 ? pc_pool_limits_share(&whole, sh.k, sh.n) : whole;
    printf("pool %s:", def->name);
    if (p.concurrency)
      printf(" concurrency %d", p.concurrency);
    if (p.rate > 0)
      printf(" rate %g/s burst %d", p.rate, p.burst);
    if (sh.n > 1)
      printf(" (this shard's share)");
    if (def->shared) {
      /* The whole rate, from Redis; the URL without its password. */
      struct pc_redis_url u;
      char *err = NULL;
      if (pc_redis_url_parse(def->shared, &u, &err) == 0) {
        printf(", shared: rate %g/s from redis://%s%s%s:%d/%s%s", wf->pools[i].rate,
               strchr(u.host, ':') ? "[" : "", u.host, strchr(u.host, ':') ? "]" : "", u.port,
               u.key, u.password ? " (with a password)" : "");
        pc_redis_url_free(&u);
      }
      free(err);
    }
    printf("\n");
  }
  printf("steps:\n");
  for (size_t i = 0; i < wf->nsteps; i++)
    print_step(wf, wf->steps[i], 1, sh, false, NULL);
  if (wf->nfinally) {
    printf("finally:\n");
    for (size_t i = 0; i < wf->nfinally; i++)
      print_step(wf, wf->finally[i], 1, sh, false, NULL);
  }
}
