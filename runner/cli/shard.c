/* shard.c: the command line's side of --shard (docs/shards.md): which
 * shard this run is (K/N, or from a Kubernetes Indexed Job or a GitLab
 * parallel job), and the identity its reports carry so that `pacer merge`
 * can check the shards belong to one run. */
#include "cli/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/digest.h"
#include "base/util.h"
#include "base/yamlload.h"

/* The run's shard identity for its reports (core/records.h,
 * docs/shards.md): K of N (1 of 1 without --shard), the SHA-256 of the workflow
 * file's bytes (the text the run loads, read once) and of the vars
 * overrides: the bytes of --vars-file, then each --var in order, each
 * framed by its kind and length so that no two lists of overrides digest
 * alike. Returns 0, or -1 if the vars file cannot be read (the check of
 * the overrides has said so already). */
int pc_cli_shard_identity(struct pc_shard_id *sh, const char *wf_text, size_t wf_len,
                          const struct pc_run_opts *o, int index, int count)
{
  memset(sh, 0, sizeof *sh);
  sh->index = index;
  sh->count = count;
  sh->rule = count > 1 ? "striped" : "none";
  pc_sha256_hex_of(wf_text, wf_len, sh->workflow_sha256);
  struct pc_sha256 v;
  pc_sha256_init(&v);
  char frame[64];
  if (o->vars_file) {
    char *buf;
    size_t len;
    if (pc_read_file(o->vars_file, pc_yaml_default_limits.max_bytes, &buf, &len) != 0)
      return -1;
    int n = snprintf(frame, sizeof frame, "vars-file %zu\n", len);
    pc_sha256_update(&v, frame, (size_t)n);
    pc_sha256_update(&v, buf, len);
    free(buf);
  }
  for (size_t i = 0; i < o->nvars; i++) {
    size_t len = strlen(o->vars[i]);
    int n = snprintf(frame, sizeof frame, "var %zu\n", len);
    pc_sha256_update(&v, frame, (size_t)n);
    pc_sha256_update(&v, o->vars[i], len);
  }
  pc_sha256_hex(&v, sh->vars_sha256);
  return 0;
}

/* A whole number from 1 to 100000, all of s; -1 if not. */
static int shard_number(const char *s, size_t len)
{
  long v = 0;
  if (len == 0 || len > 6)
    return -1;
  for (size_t i = 0; i < len; i++) {
    if (s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v >= 1 && v <= 100000 ? (int)v : -1;
}

/* --shard K/N, or --shard auto: K and N from a Kubernetes Indexed Job
 * (JOB_COMPLETION_INDEX, 0-based, with the count from --shards N) or from
 * GitLab's `parallel:` (CI_NODE_INDEX, 1-based, and CI_NODE_TOTAL). A GitHub
 * Actions matrix passes K/N itself (docs/shards.md). Returns 0 with *k and
 * *n, or -1 having said what is wrong. */
int pc_cli_resolve_shard(const char *spec, const char *shards, int *k, int *n)
{
  *k = *n = 1;
  if (!spec) {
    if (shards) {
      fprintf(stderr, "pacer run: --shards applies only with --shard auto\n");
      return -1;
    }
    return 0;
  }
  if (strcmp(spec, "auto") == 0) {
    const char *jci = getenv("JOB_COMPLETION_INDEX");
    const char *ci = getenv("CI_NODE_INDEX"), *ct = getenv("CI_NODE_TOTAL");
    if (jci && *jci) {
      int idx = strcmp(jci, "0") == 0 ? 0 : shard_number(jci, strlen(jci));
      if (idx < 0) {
        fprintf(stderr, "pacer run: --shard auto: JOB_COMPLETION_INDEX is \"%s\", not a number "
                        "from 0 to 99999\n", jci);
        return -1;
      }
      if (!shards || (*n = shard_number(shards, strlen(shards))) < 0) {
        fprintf(stderr, "pacer run: --shard auto in a Kubernetes Indexed Job needs --shards N "
                        "(the Job's completions, 1 to 100000)%s%s%s\n",
                shards ? ", got \"" : "", shards ? shards : "", shards ? "\"" : "");
        return -1;
      }
      *k = idx + 1;
    } else if (ci && *ci && ct && *ct) {
      if ((*k = shard_number(ci, strlen(ci))) < 0 || (*n = shard_number(ct, strlen(ct))) < 0) {
        fprintf(stderr, "pacer run: --shard auto: CI_NODE_INDEX=\"%s\" CI_NODE_TOTAL=\"%s\" "
                        "are not numbers from 1 to 100000\n", ci, ct);
        return -1;
      }
      if (shards && shard_number(shards, strlen(shards)) != *n) {
        fprintf(stderr, "pacer run: --shards %s disagrees with CI_NODE_TOTAL=%s\n", shards, ct);
        return -1;
      }
    } else {
      fprintf(stderr, "pacer run: --shard auto: set by a Kubernetes Indexed Job "
                      "(JOB_COMPLETION_INDEX) or a GitLab parallel job (CI_NODE_INDEX, "
                      "CI_NODE_TOTAL); neither is set here: give --shard K/N\n");
      return -1;
    }
  } else {
    if (shards) {
      fprintf(stderr, "pacer run: --shards applies only with --shard auto\n");
      return -1;
    }
    const char *slash = strchr(spec, '/');
    if (!slash || (*k = shard_number(spec, (size_t)(slash - spec))) < 0 ||
        (*n = shard_number(slash + 1, strlen(slash + 1))) < 0) {
      fprintf(stderr, "pacer run: --shard expects K/N (1 <= K <= N <= 100000) or auto, got \"%s\"\n",
              spec);
      return -1;
    }
  }
  if (*k > *n) {
    fprintf(stderr, "pacer run: shard %d of %d: the index must be from 1 to %d\n", *k, *n, *n);
    return -1;
  }
  return 0;
}

/* Whether a step (or one below it) has shard_key: the shard rule is then
 * "keyed" (shard_key where given, striped elsewhere). */
bool pc_cli_has_shard_key(struct pc_step *const *steps, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (steps[i]->shard_key || pc_cli_has_shard_key(steps[i]->children, steps[i]->nchildren))
      return true;
  return false;
}

