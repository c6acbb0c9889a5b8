/* files.c: what `pacer run` needs around its workflow files: the files a
 * run argument names (a directory's *.yml and *.yaml), the exit code of
 * several runs by SPEC's precedence, the warning when they set the shared
 * HTTP session's limits differently, and --lock. */
#include "cli/files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include <limits.h>

#include "base/log.h"
#include "base/util.h"
#include "cli/shard.h"
#include "core/run.h"
#include "core/summary.h"
#include "http/spec.h"
#include "model/outcome.h"
#include "report/report.h"

/* Takes an exclusive, non-blocking flock on `path` (created if needed). The
 * lock lives as long as the descriptor, and the kernel drops it if pacer
 * dies, so a crashed run never leaves a stale lock behind (unlike a PID
 * file). Returns the descriptor, -EWOULDBLOCK if another run holds it, or
 * another negative errno. */
int pc_cli_take_lock(const char *path)
{
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    fprintf(stderr, "pacer run: --lock %s: %s\n", path, strerror(err));
    return -err;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    close(fd);
    if (err == EWOULDBLOCK) {
      fprintf(stderr, "pacer run: %s is locked by another run; exiting\n", path);
      return -EWOULDBLOCK;
    }
    fprintf(stderr, "pacer run: --lock %s: %s\n", path, strerror(err));
    return -err;
  }
  return fd;
}

static int cmp_cstr(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The files a `run` argument names: itself, or for a directory its *.yml
 * and *.yaml files (not recursive), sorted, appended to *files (malloc'd
 * paths). Returns 0, or -1 with a message. */
int pc_cli_add_run_files(const char *arg, char ***files, size_t *n, size_t *cap)
{
  struct stat st;
  if (strcmp(arg, "-") != 0 && stat(arg, &st) == 0 && S_ISDIR(st.st_mode)) {
    uv_fs_t req;
    int rc = uv_fs_scandir(NULL, &req, arg, 0, NULL);
    if (rc < 0) {
      fprintf(stderr, "pacer run: %s: %s\n", arg, uv_strerror(rc));
      uv_fs_req_cleanup(&req);
      return -1;
    }
    size_t first = *n;
    uv_dirent_t ent;
    while (uv_fs_scandir_next(&req, &ent) != UV_EOF) {
      size_t len = strlen(ent.name);
      bool yml = (len > 4 && strcmp(ent.name + len - 4, ".yml") == 0) ||
                 (len > 5 && strcmp(ent.name + len - 5, ".yaml") == 0);
      if (!yml || ent.name[0] == '.' || (ent.type != UV_DIRENT_FILE && ent.type != UV_DIRENT_LINK &&
                                         ent.type != UV_DIRENT_UNKNOWN))
        continue;
      if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *files = pc_xrealloc(*files, *cap * sizeof **files);
      }
      size_t alen = strlen(arg);
      (*files)[(*n)++] = pc_asprintf("%s%s%s", arg, alen && arg[alen - 1] == '/' ? "" : "/",
                                     ent.name);
    }
    uv_fs_req_cleanup(&req);
    if (*n == first) {
      fprintf(stderr, "pacer run: %s: no workflow files (*.yml, *.yaml) in this directory\n", arg);
      return -1;
    }
    qsort(*files + first, *n - first, sizeof **files, cmp_cstr);
    return 0;
  }
  if (*n == *cap) {
    *cap = *cap ? *cap * 2 : 8;
    *files = pc_xrealloc(*files, *cap * sizeof **files);
  }
  (*files)[(*n)++] = pc_xstrdup(arg);
  return 0;
}


int pc_cli_parse_jobs(const char *v, int *jobs)
{
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || end == v || *end || n < 1 || n > PC_CLI_JOBS_MAX) {
    fprintf(stderr, "pacer run: --jobs expects how many workflow files run at once, a whole "
                    "number from 1 to %d; got \"%s\"; nothing was run\n", PC_CLI_JOBS_MAX, v);
    return -1;
  }
  *jobs = (int)n;
  return 0;
}

int pc_cli_run_many(const struct pc_cli_files *cf, const struct pc_run_opts *base, int jobs,
                    int shard_k, int shard_n)
{
  size_t n = cf->n;
  struct pc_run_file *runs = pc_xcalloc(n, sizeof *runs);
  struct pc_shard_id *shards = pc_xcalloc(n, sizeof *shards);
  char **real = pc_xcalloc(n, sizeof *real);
  struct pc_summary all;
  memset(&all, 0, sizeof all);
  for (size_t f = 0; f < n; f++) {
    struct pc_run_opts *o = &runs[f].opts;
    runs[f].wf = cf->wfs[f];
    runs[f].h = cf->hosts[f];
    *o = *base;
    /* The reports are one set for all the files (pc_run_many); each run
     * keeps its records for them. */
    o->reports = NULL;
    o->nreports = 0;
    o->record = base->record || base->nreports > 0;
    /* One live display at a time: with files running together their
     * progress would overwrite each other's lines. */
    o->progress = base->progress && jobs == 1;
    o->summary = &all;
    /* The shard identity of this file for its reports: the digest of the
     * bytes it was loaded from. */
    o->shard = NULL;
    if (cf->texts[f] && pc_cli_shard_identity(&shards[f], cf->texts[f], cf->text_lens[f], base,
                                              shard_k, shard_n) == 0) {
      o->shard = &shards[f];
      if (shard_n > 1 && (pc_cli_has_shard_key(cf->wfs[f]->steps, cf->wfs[f]->nsteps) ||
                          pc_cli_has_shard_key(cf->wfs[f]->finally, cf->wfs[f]->nfinally)))
        shards[f].rule = "keyed";
    }
    real[f] = strcmp(cf->files[f], "-") != 0 ? realpath(cf->files[f], NULL) : NULL;
    o->history_workflow = real[f] ? real[f] : cf->files[f];
  }
  struct pc_run_many_opts mo = {.jobs = jobs, .reports = base->reports,
                                .nreports = base->nreports};
  int code = pc_run_many(runs, n, &mo);

  /* One summary for all of them, then which files did not exit 0. */
  size_t ran = 0, nok = 0;
  struct pc_buf failed; /* "FILE (exit N)" of the files that did not exit 0 */
  pc_buf_init(&failed, (size_t)1 << 20);
  for (size_t f = 0; f < n; f++) {
    if (!runs[f].ran)
      continue;
    ran++;
    if (runs[f].code == PC_EXIT_OK)
      nok++;
    else
      pc_buf_printf(&failed, "%s%s (exit %d)", failed.len ? ", " : "", cf->files[f],
                    runs[f].code);
  }
  int lvl = code == 0 ? PC_LOG_INFO : PC_LOG_ERROR;
  pc__summary_log(&all, lvl, mo.written, mo.nwritten);
  pc_log(lvl, NULL, "%zu workflow files: %zu ok%s%s%s (exit %d)", n, nok,
         failed.len ? ", not ok: " : "", failed.len ? failed.data : "",
         ran < n ? ", the rest not run" : "", code);
  pc_buf_free(&failed);
  pc__summary_free(&all);
  free(mo.written);
  for (size_t f = 0; f < n; f++)
    free(real[f]);
  free(real);
  free(shards);
  free(runs);
  return code;
}

int pc_cli_check_runs_reports(const char *const *reports, size_t nreports,
                              struct pc_workflow *const *wfs, size_t nfiles)
{
  for (size_t r = 0; r < nreports; r++) {
    const char *colon = strchr(reports[r], ':');
    char *format = pc_xstrndup(reports[r], (size_t)(colon - reports[r]));
    bool known = pc_report_format_runs(format);
    bool prom = strcmp(format, "prometheus") == 0;
    free(format);
    if (!known) {
      fprintf(stderr, "pacer run: --report %s: this format covers one workflow file, not the "
                      "%zu given; nothing was run\n", reports[r], nfiles);
      return -1;
    }
    /* Prometheus tells the files' series apart by the workflow label (the
     * workflow's name): two files of one name would write one series
     * twice, which the text format forbids. */
    for (size_t i = 0; prom && i < nfiles; i++)
      for (size_t k = 0; k < i; k++)
        if (strcmp(wfs[i]->name, wfs[k]->name) == 0) {
          fprintf(stderr, "pacer run: --report %s: %s and %s are both workflow \"%s\", and "
                          "the metrics of several files are told apart by the workflow's name "
                          "(give one a `name:`); nothing was run\n",
                  reports[r], wfs[k]->file, wfs[i]->file, wfs[i]->name);
          return -1;
        }
  }
  return 0;
}

/* A connection limit of `wf` as its session would take it, and where the
 * file sets it (NULL: it does not, the value is the default). */
static long shared_limit(const struct pc_workflow *wf, const char *key,
                         const struct pc_tmpl **where)
{
  const struct pc_tmpl *d = pc_workflow_defaults(wf, "http");
  struct pc_http_limits lim;
  pc_http_limits_of(d, &lim);
  *where = d ? pc_tmpl_get(d, key) : NULL;
  return strcmp(key, "max_connections") == 0 ? lim.max_connections : lim.max_per_host;
}

/* "a.yml:3:5" where the file sets it, else the file (malloc'd). */
static char *limit_place(const struct pc_workflow *wf, const struct pc_tmpl *where)
{
  return where ? pc_asprintf("%s:%d:%d", wf->file, where->line, where->col)
               : pc_xstrdup(wf->file);
}

void pc_cli_warn_shared_limits(struct pc_workflow *const *wfs, size_t nfiles)
{
  static const char *const keys[] = {"max_connections", "max_connections_per_host"};
  for (size_t k = 0; k < PC_ARRAY_SIZE(keys) && nfiles > 1; k++) {
    const struct pc_tmpl *w0, *wi;
    long v0 = shared_limit(wfs[0], keys[k], &w0);
    for (size_t i = 1; i < nfiles; i++) {
      long vi = shared_limit(wfs[i], keys[k], &wi);
      if (vi == v0)
        continue;
      /* The file that sets it leads the line (file:line:col, as a load
       * warning); the other is named with its value. */
      bool first_leads = w0 || !wi;
      char *lead = first_leads ? limit_place(wfs[0], w0) : limit_place(wfs[i], wi);
      const struct pc_workflow *other = first_leads ? wfs[i] : wfs[0];
      const struct pc_tmpl *ow = first_leads ? wi : w0;
      long lv = first_leads ? v0 : vi, ov = first_leads ? vi : v0;
      pc_log(PC_LOG_WARN, NULL,
             "%s: defaults.http.%s is %ld here and %ld in %s%s: the files share one "
             "HTTP session, whose connection limits are those of the first file that makes a "
             "request (so either value may hold; set the same in every file)",
             lead, keys[k], lv, ov, other->file, ow ? "" : " (unset: the default)");
      free(lead);
      break;
    }
  }
}
