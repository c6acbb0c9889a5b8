/* journal.c: the journal of a run's finished leaves (--journal, --resume)
 * in a SQLite file in WAL mode. The engine (core/resume.c) names leaves by
 * stable keys and asks this file two things through struct pc_journal_ops:
 * whether a leaf finished ok in the run being resumed (and its result),
 * and to record a leaf that finished. Records go into one open transaction
 * that is committed when the loop is about to wait (a uv_prepare handle),
 * and while it is busy every COMMIT_BUSY_MS or BATCH_MAX records: a
 * 100 000-item fan-out commits a few hundred times, not 100 000, and a
 * crash (SIGKILL; a power loss, with WAL's guarantees) loses at most the
 * records of what finished since the loop last waited, whose leaves run
 * again on --resume.
 *
 * The file holds results (response bodies, outputs): it is created with
 * mode 0600 and narrowed to it when it exists (SECURITY.md); results are
 * not redacted, since a later step may need the value a secret was. */
#include "journal/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "base/log.h"
#include "base/util.h"
#include "core/engine.h"

/* While the loop is busy (it will not wait: work is queued), records are
 * committed every COMMIT_BUSY_MS, or every BATCH_MAX records. */
#define BATCH_MAX 4096
#define COMMIT_BUSY_MS 100

/* The journal's format; a journal of another version is refused. */
#define JOURNAL_VERSION "1"
#define LEAVES_TABLE                                                                       \
  "leaves (key TEXT NOT NULL, outcome TEXT NOT NULL, attempts INTEGER, result TEXT, "     \
  "restorable INTEGER NOT NULL, status INTEGER, method TEXT, url TEXT)"

struct pc_journal {
  sqlite3 *db;
  sqlite3_stmt *get, *put;
  char *path;
  char *text[3]; /* the last lookup's result, method and url (owned) */
  uv_prepare_t prepare;
  bool attached, in_tx;
  bool resume;     /* lookups answer; without --resume the journal starts empty */
  double last_commit; /* pc_mono_ms() */
  size_t pending;  /* records in the open transaction */
  size_t restored; /* leaves taken from the journal */
  bool failed;     /* a write failed: said once, then the journal is off */
  bool rerun_set;  /* --rerun-failed: only the leaves in rerun run (or are restored) */
  char **rerun;    /* --rerun-failed: the report's failed leaves, sorted (owned); or NULL */
  size_t nrerun;
};

static int exec_sql(struct pc_journal *j, const char *sql, char **err)
{
  char *msg = NULL;
  if (sqlite3_exec(j->db, sql, NULL, NULL, &msg) == SQLITE_OK)
    return 0;
  if (err)
    *err = pc_asprintf("%s: %s", j->path, msg ? msg : sqlite3_errmsg(j->db));
  sqlite3_free(msg);
  return -1;
}

/* A write failed (disk full, the file removed): the run goes on without
 * its journal, which says so once. */
static void write_failed(struct pc_journal *j)
{
  if (j->failed)
    return;
  j->failed = true;
  pc_log(PC_LOG_WARN, NULL, "journal %s: cannot write: %s; the run goes on without it", j->path,
         sqlite3_errmsg(j->db));
}

static void commit(struct pc_journal *j)
{
  if (!j->in_tx)
    return;
  j->in_tx = false;
  j->pending = 0;
  j->last_commit = pc_mono_ms();
  if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    write_failed(j);
    sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
  }
}

/* Before each time the loop polls: commit when it is about to wait (so
 * what finished before a wait is on disk before anything else happens),
 * and while it is busy, every COMMIT_BUSY_MS. */
static void on_prepare(uv_prepare_t *h)
{
  struct pc_journal *j = h->data;
  if (!j->in_tx)
    return;
  if ((uv_backend_timeout(h->loop) == 0 && pc_mono_ms() - j->last_commit < COMMIT_BUSY_MS))
    return;
  commit(j);
}

static const char *column_text(sqlite3_stmt *s, int i)
{
  return (const char *)sqlite3_column_text(s, i);
}

static bool j_lookup(void *p, const char *key, struct pc_journal_leaf *out)
{
  struct pc_journal *j = p;
  bool found = false;
  if (!j->resume)
    return false;
  sqlite3_reset(j->get);
  sqlite3_bind_text(j->get, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step(j->get) == SQLITE_ROW) {
    /* copied: the row's texts go with the next step of the statement */
    for (int i = 0; i < 3; i++) {
      free(j->text[i]);
      const char *v = column_text(j->get, i);
      j->text[i] = v ? pc_xstrdup(v) : NULL;
    }
    *out = (struct pc_journal_leaf){PC_OK, sqlite3_column_int(j->get, 3),
                                    sqlite3_column_int(j->get, 4), j->text[1], j->text[2],
                                    j->text[0] ? j->text[0] : "", true};
    found = true;
    j->restored++;
  }
  sqlite3_reset(j->get);
  return found;
}

static void j_record(void *p, const char *key, const struct pc_journal_leaf *l)
{
  struct pc_journal *j = p;
  if (j->failed)
    return;
  if (!j->in_tx) {
    if (sqlite3_exec(j->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
      write_failed(j);
      return;
    }
    j->in_tx = true;
  }
  sqlite3_stmt *s = j->put;
  sqlite3_reset(s);
  sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, pc_outcome_name(l->outcome), -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 3, l->attempts);
  if (l->json)
    sqlite3_bind_text(s, 4, l->json, -1, SQLITE_STATIC);
  sqlite3_bind_int(s, 5, l->restorable);
  sqlite3_bind_int(s, 6, l->status);
  if (l->method)
    sqlite3_bind_text(s, 7, l->method, -1, SQLITE_STATIC);
  if (l->url)
    sqlite3_bind_text(s, 8, l->url, -1, SQLITE_STATIC);
  if (sqlite3_step(s) != SQLITE_DONE)
    write_failed(j);
  sqlite3_reset(s);
  sqlite3_clear_bindings(s); /* unbound parameters are NULL */
  if (++j->pending >= BATCH_MAX)
    commit(j);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool j_rerun(void *p, const char *path)
{
  struct pc_journal *j = p;
  return bsearch(&path, j->rerun, j->nrerun, sizeof *j->rerun, cmp_str) != NULL;
}

static const struct pc_journal_ops journal_ops = {j_lookup, j_record, NULL};
static const struct pc_journal_ops rerun_ops = {j_lookup, j_record, j_rerun};

void pc_journal_rerun_only(struct pc_journal *j, char **paths, size_t n)
{
  qsort(paths, n, sizeof *paths, cmp_str);
  j->rerun = paths;
  j->nrerun = n;
  j->rerun_set = true;
}

/* Creates the file with mode 0600, or narrows an existing one of ours to
 * it, before SQLite opens it (SQLite gives its -wal and -shm files the
 * mode of the database). */
static int make_private(const char *path, char **err)
{
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = pc_asprintf("%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && (st.st_mode & 077) && st.st_uid == geteuid())
    fchmod(fd, 0600);
  close(fd);
  return 0;
}

/* The meta value `k`, malloc'd, or NULL. */
static char *meta_get(struct pc_journal *j, const char *k)
{
  sqlite3_stmt *s;
  char *v = NULL;
  if (sqlite3_prepare_v2(j->db, "SELECT v FROM meta WHERE k = ?", -1, &s, NULL) != SQLITE_OK)
    return NULL;
  sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
    v = pc_xstrdup((const char *)sqlite3_column_text(s, 0));
  sqlite3_finalize(s);
  return v;
}

static int meta_set(struct pc_journal *j, const char *k, const char *v)
{
  sqlite3_stmt *s;
  if (sqlite3_prepare_v2(j->db, "INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", -1, &s,
                         NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(s, 1, k, -1, SQLITE_STATIC);
  sqlite3_bind_text(s, 2, v, -1, SQLITE_STATIC);
  int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
  sqlite3_finalize(s);
  return rc;
}

/* --resume: the journal must be of this workflow file and these vars. */
static int check_same(struct pc_journal *j, const char *wf, const char *vars, char **err)
{
  char *version = meta_get(j, "version");
  char *jwf = meta_get(j, "workflow_sha256");
  char *jvars = meta_get(j, "vars_sha256");
  int rc = -1;
  if (!version || !jwf || !jvars)
    *err = pc_asprintf("%s: --resume: the journal has no run to resume (run with --journal "
                       "and without --resume first)", j->path);
  else if (strcmp(version, JOURNAL_VERSION) != 0)
    *err = pc_asprintf("%s: --resume: the journal is of format %s, this pacer writes %s", j->path,
                       version, JOURNAL_VERSION);
  else if (strcmp(jwf, wf) != 0)
    *err = pc_asprintf("%s: --resume: the workflow file changed since the journaled run "
                       "(SHA-256 %.12s..., now %.12s...): results of another workflow cannot "
                       "be reused; run without --resume to start over", j->path, jwf, wf);
  else if (strcmp(jvars, vars) != 0)
    *err = pc_asprintf("%s: --resume: the vars overrides (--var, --vars-file) differ from the "
                       "journaled run's (SHA-256 %.12s..., now %.12s...); give the same ones, "
                       "or run without --resume to start over", j->path, jvars, vars);
  else
    rc = 0;
  free(version);
  free(jwf);
  free(jvars);
  return rc;
}

struct pc_journal *pc_journal_open(const char *path, bool resume, const char *workflow_sha256,
                                   const char *vars_sha256, char **err)
{
  struct pc_journal *j = pc_xcalloc(1, sizeof *j);
  j->path = pc_xstrdup(path);
  *err = NULL;
  j->resume = resume;
  struct stat st;
  if (resume && stat(path, &st) != 0) {
    *err = pc_asprintf("%s: --resume: no journal there (%s); run with --journal and without "
                       "--resume first", path, strerror(errno));
    goto fail;
  }
  if (make_private(path, err) != 0)
    goto fail;
  if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK) {
    *err = pc_asprintf("%s: %s", path, j->db ? sqlite3_errmsg(j->db) : "cannot open");
    goto fail;
  }
  sqlite3_busy_timeout(j->db, 5000);
  /* WAL: a commit appends to the log, and a crash at any point leaves the
   * database as of the last commit. synchronous=NORMAL: commits are not
   * synced one by one (the WAL is at checkpoints), so a power loss may
   * lose the last ones, never corrupt the file; a killed process loses
   * nothing committed. */
  if (exec_sql(j, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-32768;"
                  "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);"
                  "CREATE TABLE IF NOT EXISTS " LEAVES_TABLE,
               err) != 0)
    goto fail;
  if (resume) {
    /* A run appends its records in the order leaves finish (no index: an
     * insert at a random place of a B-tree per leaf costs 5 times more);
     * the index is made once, when a run resumes. A leaf recorded twice
     * (failed, then ok in a resumed run) has two rows: any ok one counts. */
    if (check_same(j, workflow_sha256, vars_sha256, err) != 0 ||
        exec_sql(j, "CREATE INDEX IF NOT EXISTS leaves_key ON leaves (key)", err) != 0)
      goto fail;
  } else if (exec_sql(j, "BEGIN; DROP TABLE leaves; DELETE FROM meta; "
                         "CREATE TABLE " LEAVES_TABLE ";", err) != 0 ||
             meta_set(j, "version", JOURNAL_VERSION) != 0 ||
             meta_set(j, "workflow_sha256", workflow_sha256) != 0 ||
             meta_set(j, "vars_sha256", vars_sha256) != 0 || exec_sql(j, "COMMIT", err) != 0) {
    if (!*err)
      *err = pc_asprintf("%s: %s", path, sqlite3_errmsg(j->db));
    goto fail;
  }
  if (sqlite3_prepare_v2(j->db,
                         "SELECT result, method, url, attempts, status FROM leaves WHERE "
                         "key = ? AND outcome = 'ok' AND restorable = 1 LIMIT 1",
                         -1, &j->get, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(j->db,
                         "INSERT INTO leaves (key, outcome, attempts, result, "
                         "restorable, status, method, url) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         -1, &j->put, NULL) != SQLITE_OK) {
    *err = pc_asprintf("%s: %s", path, sqlite3_errmsg(j->db));
    goto fail;
  }
  return j;
fail:
  pc_journal_close(j);
  return NULL;
}

void pc_journal_attach(struct pc_journal *j, struct pc_run *run)
{
  run->journal_ops = j->rerun_set ? &rerun_ops : &journal_ops;
  run->journal = j;
  uv_prepare_init(pc_run_loop(run), &j->prepare);
  j->prepare.data = j;
  uv_prepare_start(&j->prepare, on_prepare);
  uv_unref((uv_handle_t *)&j->prepare); /* it never keeps the run alive */
  j->attached = true;
}

void pc_journal_detach(struct pc_journal *j)
{
  commit(j);
  if (j->attached) {
    uv_close((uv_handle_t *)&j->prepare, NULL);
    j->attached = false;
  }
}

size_t pc_journal_restored(const struct pc_journal *j)
{
  return j->restored;
}

void pc_journal_close(struct pc_journal *j)
{
  if (!j)
    return;
  if (j->db) {
    commit(j);
    sqlite3_finalize(j->get);
    sqlite3_finalize(j->put);
    sqlite3_close(j->db);
  }
  for (int i = 0; i < 3; i++)
    free(j->text[i]);
  for (size_t i = 0; i < j->nrerun; i++)
    free(j->rerun[i]);
  free(j->rerun);
  free(j->path);
  free(j);
}
