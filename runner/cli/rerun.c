/* rerun.c: --rerun-failed REPORT. The JSON report of a run names each step
 * instance by its path ("steps/each[2]", report.c) and says its outcome;
 * the leaves that did not finish ok there are what the rerun runs, while
 * the journal of the same run (--journal, required) gives the others their
 * results back (journal.c, pc_journal_rerun_only). The report's records
 * are streamed (jtree.h): a report of a million-item fan-out is never held
 * as a tree. */
#include "cli/rerun.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "report/jtree.h"

/* The report version this pacer writes (report/json.c). */
#define REPORT_VERSION 3

struct collect {
  char **paths;
  size_t n, cap;
};

static bool is_failure(const char *outcome)
{
  static const char *const words[] = {"failed", "error", "timeout", "cancelled"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(words); i++)
    if (strcmp(outcome, words[i]) == 0)
      return true;
  return false;
}

static int on_record(struct pc_jv *el, void *data, char **err)
{
  (void)err;
  struct collect *c = data;
  const char *kind = pc_jv_str(el, "kind"), *path = pc_jv_str(el, "path");
  const char *outcome = pc_jv_str(el, "outcome");
  /* leaves only ("step"): a group's outcome is its children's */
  if (kind && path && outcome && strcmp(kind, "step") == 0 && is_failure(outcome) &&
      strncmp(path, "finally", 7) != 0) {
    if (c->n == c->cap) {
      c->cap = c->cap ? 2 * c->cap : 16;
      c->paths = pc_xrealloc(c->paths, c->cap * sizeof *c->paths);
    }
    c->paths[c->n++] = pc_xstrdup(path);
  }
  pc_jv_free(el);
  return 0;
}

bool pc_cli_report_is_runs(const char *path)
{
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  /* report/runs.c writes the schema first; a document edited by hand may
   * have moved it, and is then told apart by the full read (as "not a
   * pacer JSON report"). */
  char head[512];
  size_t n = fread(head, 1, sizeof head - 1, f);
  fclose(f);
  head[n] = '\0';
  const char *p = strstr(head, "\"schema\"");
  if (!p)
    return false;
  p += strlen("\"schema\"");
  p += strspn(p, " \t\r\n");
  if (*p++ != ':')
    return false;
  p += strspn(p, " \t\r\n");
  return strncmp(p, "\"pacer-runs\"", 12) == 0;
}

int pc_cli_rerun_read(const char *path, const char *workflow_sha256, const char *vars_sha256,
                      char ***paths, size_t *n, char **err)
{
  struct collect c = {NULL, 0, 0};
  struct pc_jv *h = NULL;
  *err = NULL;
  if (pc_jt_parse_file(path, "steps", on_record, &c, &h, err) != 0)
    goto fail;
  const char *schema = pc_jv_str(h, "schema");
  int version = 0;
  const struct pc_jv *sh = pc_jv_get(h, "shard");
  const char *wf = pc_jv_str(sh, "workflow_sha256"), *vars = pc_jv_str(sh, "vars_sha256");
  if (!schema || strcmp(schema, "pacer-report") != 0 || !pc_jv_int(h, "version", &version)) {
    *err = pc_asprintf("%s: not a pacer JSON report (--report json:PATH writes one)", path);
  } else if (version != REPORT_VERSION) {
    *err = pc_asprintf("%s: a report of version %d; this pacer reads version %d (rerun the "
                       "workflow with this pacer to get one)", path, version, REPORT_VERSION);
  } else if (!wf || !vars) {
    *err = pc_asprintf("%s: the report has no workflow digest (its \"shard\" section)", path);
  } else if (strcmp(wf, workflow_sha256) != 0) {
    *err = pc_asprintf("%s: the report is of another workflow file (SHA-256 %.12s..., this one "
                       "%.12s...): its failures are not this workflow's", path, wf,
                       workflow_sha256);
  } else if (strcmp(vars, vars_sha256) != 0) {
    *err = pc_asprintf("%s: the report's run had other vars overrides (--var, --vars-file; "
                       "SHA-256 %.12s..., now %.12s...): give the same ones", path, vars,
                       vars_sha256);
  }
  if (*err)
    goto fail;
  pc_jv_free(h);
  *paths = c.paths;
  *n = c.n;
  return 0;
fail:
  pc_jv_free(h);
  for (size_t i = 0; i < c.n; i++)
    free(c.paths[i]);
  free(c.paths);
  *paths = NULL;
  *n = 0;
  return -1;
}
