/* merge.c: `pacer merge SHARD.json... --report FORMAT:PATH...`: the report
 * of a whole run from the JSON reports of its shards (docs/shards.md). The
 * reports are checked writable before anything is read, as for a run; a
 * set of reports that is not every shard of one run exactly once is refused
 * with exit 2 and nothing written (report/merge.c says what is checked);
 * otherwise every report is written and pacer exits with the merged run's
 * exit code (SPEC §1: the highest-ranking of the shards' codes), so that a
 * CI merge job fails when a shard failed. */
#include "cli/merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/outfile.h"
#include "base/util.h"
#include "cli/rerun.h"
#include "model/outcome.h"
#include "report/merge.h"
#include "report/report.h"

static void usage(FILE *f)
{
  fputs("usage: pacer merge SHARD.json... --report FORMAT:PATH [--report FORMAT:PATH...]\n"
        "  merges the JSON reports of every shard of one run (--shard K/N) into the\n"
        "  reports of the whole run (json, junit, trace, html, prometheus); exits with\n"
        "  the merged run's exit code, or 2 if a shard is missing, given twice, or of\n"
        "  another run\n",
        f);
}

int pc_cli_merge(int argc, char **argv)
{
  const char **files = pc_xcalloc((size_t)argc + 1, sizeof *files);
  const char **reports = pc_xcalloc((size_t)argc + 1, sizeof *reports);
  size_t nfiles = 0, nreports = 0, opened = 0;
  struct pc_outfile *outs = NULL;
  struct pc_merged *m = NULL;
  int code = PC_EXIT_USAGE;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      usage(stdout);
      code = PC_EXIT_OK;
      goto out;
    }
    if (strcmp(a, "--report") == 0 || strncmp(a, "--report=", 9) == 0) {
      const char *v = a[8] == '=' ? a + 9 : i + 1 < argc ? argv[++i] : NULL;
      const char *colon = v ? strchr(v, ':') : NULL;
      char *format = colon ? pc_xstrndup(v, (size_t)(colon - v)) : NULL;
      bool known = format && pc_report_format_known(format);
      free(format);
      if (!known || !colon[1]) {
        fprintf(stderr, "pacer merge: --report expects FORMAT:PATH with FORMAT one of json, "
                        "junit, trace, html; got \"%s\"\n", v ? v : "");
        goto out;
      }
      reports[nreports++] = v;
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "pacer merge: unknown option \"%s\"\n", a);
      usage(stderr);
      goto out;
    } else {
      files[nfiles++] = a;
    }
  }
  if (nfiles == 0 || nreports == 0) {
    fprintf(stderr, "pacer merge: name the shards' JSON reports and at least one --report\n");
    usage(stderr);
    goto out;
  }
  /* A report of several workflow files (pacer run A.yml B.yml) holds whole
   * runs of different files, not shards of one run: nothing to merge. */
  for (size_t i = 0; i < nfiles; i++)
    if (pc_cli_report_is_runs(files[i])) {
      fprintf(stderr, "pacer merge: %s: a report of several workflow files; merge takes shard "
                      "reports (run --shard K/N --report json:PATH), and that report already "
                      "covers its files; nothing was written\n", files[i]);
      goto out;
    }
  /* Every report must be writable before the shards are read (as for a
   * run: nothing is half done for want of a report). */
  outs = pc_xcalloc(nreports, sizeof *outs);
  for (; opened < nreports; opened++) {
    pc_outfile_init(&outs[opened]);
    char *oerr = NULL;
    if (pc_outfile_open(&outs[opened], strchr(reports[opened], ':') + 1,
                        PC_OUTFILE_MKDIRS | PC_OUTFILE_SYNC | PC_OUTFILE_LATER, &oerr) != 0) {
      fprintf(stderr, "pacer merge: --report %s: %s\n", reports[opened], oerr);
      free(oerr);
      opened++;
      goto out;
    }
  }
  char *err = NULL;
  if (pc_merge_reports(files, nfiles, &m, &err) != 0) {
    fprintf(stderr, "pacer merge: %s; nothing was written\n", err);
    free(err);
    goto out;
  }
  const struct pc_run_report *r = pc_merged_report(m);
  code = r->exit_code;
  for (size_t i = 0; i < nreports; i++) {
    char *format = pc_xstrndup(reports[i], (size_t)(strchr(reports[i], ':') - reports[i]));
    char *werr = NULL;
    if (pc_report_write(format, &outs[i], r, &werr) != 0) {
      fprintf(stderr, "pacer merge: report %s: %s\n", format, werr);
      free(werr);
      if (code == PC_EXIT_OK)
        code = PC_EXIT_ERROR;
    }
    free(format);
  }
  opened = 0; /* written or discarded by pc_report_write */
  fprintf(stderr, "pacer merge: %zu shard%s of %s: %s (exit %d)\n", nfiles,
          nfiles == 1 ? "" : "s", r->wf->name, r->outcome, r->exit_code);
out:
  for (size_t i = 0; i < opened; i++)
    pc_outfile_discard(&outs[i]);
  free(outs);
  pc_merged_free(m);
  free(files);
  free(reports);
  return code;
}
