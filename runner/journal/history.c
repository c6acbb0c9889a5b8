/* history.c: the run history (docs/cron-and-ci.md, "Run history"): every
 * `pacer run` appends a row to a SQLite database (workflow, digest,
 * start, duration, outcome, exit code, steps by outcome), by default
 * $XDG_STATE_HOME/pacer/history.db, and `pacer history [WORKFLOW]` prints
 * the last runs, flagging one much slower than the median of the runs of
 * the same workflow before it. Writing the history never fails a run: a
 * problem is a warning. */
#include "journal/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "base/util.h"
#include "core/summary.h"
#include "model/outcome.h"

/* A run is flagged slow when it took more than SLOW_FACTOR times the
 * median of the (up to MEDIAN_OF) runs of its workflow before it, given at
 * least MEDIAN_MIN of them, and SLOW_MIN_MS more than it: a run of 2 ms
 * that took 5 on a busy machine is noise, not news. */
#define SLOW_FACTOR 2.0
#define SLOW_MIN_MS 250.0
#define MEDIAN_OF 20
#define MEDIAN_MIN 3

/* WAL with synchronous=NORMAL and no checkpoint on close: appending a row
 * costs no fsync (a run of 10 ms must not wait for the disk at its end,
 * however loaded the machine). A power loss may lose the last rows, never
 * corrupt the file. Making the file (the first run) is not synced at all:
 * an empty history lost to a power cut is made again.
 *
 * The WAL is truncated by the run whose row takes it past WAL_MAX_FRAMES
 * (~2 frames a run, so one run in ~64 pays a checkpoint's fsyncs). SQLite's
 * own automatic checkpoint cannot keep it short here: each run is the only
 * connection, so opening the file rebuilds the WAL index from the WAL
 * (reading all of it), which also forgets what the last checkpoint copied,
 * and a WAL is only started again from its beginning once everything in it
 * is known to be copied. Left to itself it grew by ~9 KB a run, forever,
 * and every run read all of it: 9 M instructions at the end of a run with
 * a 10 MB WAL, against 0.6 M for a short one (docs/BENCHMARKS.md, "The
 * redesign (issue 13)"). The checkpoint does not wait: with another
 * connection busy it is left to a later run. */
#define WAL_MAX_FRAMES 128
static const char schema_sql[] =
    "PRAGMA synchronous=OFF; PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, workflow TEXT NOT NULL, "
    "sha256 TEXT, started REAL NOT NULL, duration_ms REAL NOT NULL, outcome TEXT NOT NULL, "
    "exit_code INTEGER NOT NULL, ok INTEGER, failed INTEGER, error INTEGER, timeout INTEGER, "
    "cancelled INTEGER, skipped INTEGER);"
    "CREATE INDEX IF NOT EXISTS runs_workflow ON runs (workflow, started);"
    "PRAGMA synchronous=NORMAL";

char *pc_history_default_path(void)
{
  const char *x = getenv("XDG_STATE_HOME");
  if (x && x[0] == '/')
    return pc_asprintf("%s/pacer/history.db", x);
  const char *home = getenv("HOME");
  if (home && *home)
    return pc_asprintf("%s/.local/state/pacer/history.db", home);
  return NULL;
}

/* Makes the folders above `path` (mode 0700: the history names workflows
 * and their outcomes). */
static int make_parents(const char *path, char **err)
{
  char *p = pc_xstrdup(path);
  for (char *s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
    *s = 0;
    if (mkdir(p, 0700) != 0 && errno != EEXIST) {
      *err = pc_asprintf("cannot make %s: %s", p, strerror(errno));
      free(p);
      return -1;
    }
    *s = '/';
  }
  free(p);
  return 0;
}

static sqlite3 *open_db(const char *path, bool create, char **err)
{
  sqlite3 *db = NULL;
  if (create) {
    if (make_parents(path, err) != 0)
      return NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      *err = pc_asprintf("%s: %s", path, strerror(errno));
      return NULL;
    }
    close(fd);
  }
  int flags = create ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY;
  if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
    *err = pc_asprintf("%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_close(db);
    return NULL;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
  if (create && sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
    *err = pc_asprintf("%s: %s", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    return NULL;
  }
  return db;
}

/* sqlite3_wal_hook: the number of frames in the WAL after a commit. */
static int note_wal_frames(void *frames, sqlite3 *db, const char *name, int n)
{
  (void)db;
  (void)name;
  *(int *)frames = n;
  return SQLITE_OK;
}

int pc_history_append(const char *path, const struct pc_history_run *r, char **err)
{
  *err = NULL;
  sqlite3 *db = open_db(path, true, err);
  if (!db)
    return -1;
  int frames = 0; /* (the hook replaces SQLite's automatic checkpoint) */
  sqlite3_wal_hook(db, note_wal_frames, &frames);
  sqlite3_stmt *s = NULL;
  int rc = -1;
  if (sqlite3_prepare_v2(db,
                         "INSERT INTO runs (workflow, sha256, started, duration_ms, outcome, "
                         "exit_code, ok, failed, error, timeout, cancelled, skipped) VALUES "
                         "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", -1, &s, NULL) == SQLITE_OK) {
    sqlite3_bind_text(s, 1, r->workflow, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, r->workflow_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 3, r->start_ms / 1000.0);
    sqlite3_bind_double(s, 4, r->duration_ms);
    sqlite3_bind_text(s, 5, r->outcome, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 6, r->exit_code);
    for (int o = PC_OK; o <= PC_SKIPPED; o++)
      sqlite3_bind_int64(s, 7 + o, r->summary ? (sqlite3_int64)r->summary->counts[o] : 0);
    rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
  }
  if (rc != 0)
    *err = pc_asprintf("%s: %s", path, sqlite3_errmsg(db));
  sqlite3_finalize(s);
  if (rc == 0 && frames >= WAL_MAX_FRAMES) {
    sqlite3_busy_timeout(db, 0); /* busy: a later run does it */
    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
  }
  sqlite3_close(db);
  return rc;
}

/* ------------------------------------------------------- pacer history */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The median duration of the runs of `workflow` before run `id` (the last
 * MEDIAN_OF), or -1 when there are fewer than MEDIAN_MIN. */
static double median_before(sqlite3 *db, const char *workflow, sqlite3_int64 id)
{
  sqlite3_stmt *s;
  double v[MEDIAN_OF];
  int n = 0;
  if (sqlite3_prepare_v2(db, "SELECT duration_ms FROM runs WHERE workflow = ? AND id < ? "
                             "ORDER BY id DESC LIMIT ?", -1, &s, NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(s, 1, workflow, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, id);
  sqlite3_bind_int(s, 3, MEDIAN_OF);
  while (n < MEDIAN_OF && sqlite3_step(s) == SQLITE_ROW)
    v[n++] = sqlite3_column_double(s, 0);
  sqlite3_finalize(s);
  if (n < MEDIAN_MIN)
    return -1;
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static const char history_usage[] =
    "usage: pacer history [WORKFLOW] [--limit N] [--db PATH]\n";

int pc_history_main(int argc, char **argv)
{
  const char *workflow = NULL, *db_path = NULL;
  long limit = 20;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--limit") == 0 || strcmp(a, "--db") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "pacer history: option \"%s\" needs a value\n", a);
        return PC_EXIT_USAGE;
      }
      const char *v = argv[++i];
      if (a[2] == 'd') {
        db_path = v;
      } else {
        char *end;
        limit = strtol(v, &end, 10);
        if (*v == 0 || *end || limit < 1 || limit > 100000) {
          fprintf(stderr, "pacer history: --limit expects a number from 1 to 100000, got "
                          "\"%s\"\n", v);
          return PC_EXIT_USAGE;
        }
      }
    } else if (a[0] == '-' && a[1]) {
      fprintf(stderr, "pacer history: unknown option \"%s\"\n%s", a, history_usage);
      return PC_EXIT_USAGE;
    } else if (workflow) {
      fprintf(stderr, "pacer history: name one workflow at most\n%s", history_usage);
      return PC_EXIT_USAGE;
    } else {
      workflow = a;
    }
  }
  char *def = db_path ? NULL : pc_history_default_path();
  const char *path = db_path ? db_path : def;
  if (!path) {
    fprintf(stderr, "pacer history: neither XDG_STATE_HOME nor HOME is set: give --db PATH\n");
    return PC_EXIT_USAGE;
  }
  struct stat st;
  if (stat(path, &st) != 0) {
    printf("no runs recorded yet (%s does not exist)\n", path);
    free(def);
    return PC_EXIT_OK;
  }
  char *err = NULL;
  sqlite3 *db = open_db(path, false, &err);
  if (!db) {
    fprintf(stderr, "pacer history: %s\n", err);
    free(err);
    free(def);
    return PC_EXIT_ERROR;
  }
  /* A workflow named as a file is matched by its real path (how runs
   * record it); otherwise as given. */
  char real[PATH_MAX];
  const char *wf = workflow && realpath(workflow, real) ? real : workflow;
  sqlite3_stmt *s;
  int code = PC_EXIT_OK;
  const char *sql = wf ? "SELECT * FROM (SELECT id, workflow, started, duration_ms, outcome, "
                         "exit_code, ok, failed, error, timeout, cancelled, skipped FROM runs "
                         "WHERE workflow = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id"
                       : "SELECT * FROM (SELECT id, workflow, started, duration_ms, outcome, "
                         "exit_code, ok, failed, error, timeout, cancelled, skipped FROM runs "
                         "ORDER BY id DESC LIMIT ?2) ORDER BY id";
  if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) {
    fprintf(stderr, "pacer history: %s: %s\n", path, sqlite3_errmsg(db));
    sqlite3_close(db);
    free(def);
    return PC_EXIT_ERROR;
  }
  if (wf)
    sqlite3_bind_text(s, 1, wf, -1, SQLITE_STATIC);
  sqlite3_bind_int64(s, 2, limit);
  int rows = 0;
  while (sqlite3_step(s) == SQLITE_ROW) {
    if (rows++ == 0)
      printf("%-20s  %9s  %-9s  %4s  %-28s  %s\n", "STARTED", "DURATION", "OUTCOME", "EXIT",
             "STEPS", "WORKFLOW");
    sqlite3_int64 id = sqlite3_column_int64(s, 0);
    const char *w = (const char *)sqlite3_column_text(s, 1);
    double dur = sqlite3_column_double(s, 3);
    char when[40], d[32], steps[64];
    pc_format_iso8601(sqlite3_column_double(s, 2) * 1000.0, when, sizeof when);
    when[19] = 0; /* to the second */
    pc_format_duration(dur, d, sizeof d);
    snprintf(steps, sizeof steps, "%lld ok, %lld failed, %lld other",
             (long long)sqlite3_column_int64(s, 6),
             (long long)(sqlite3_column_int64(s, 7) + sqlite3_column_int64(s, 8) +
                         sqlite3_column_int64(s, 9)),
             (long long)(sqlite3_column_int64(s, 10) + sqlite3_column_int64(s, 11)));
    printf("%-20s  %9s  %-9s  %4d  %-28s  %s", when, d, (const char *)sqlite3_column_text(s, 4),
           sqlite3_column_int(s, 5), steps, w ? w : "?");
    double med = median_before(db, w ? w : "", id);
    if (med > 0 && dur > SLOW_FACTOR * med && dur - med >= SLOW_MIN_MS) {
      char m[32];
      pc_format_duration(med, m, sizeof m);
      printf("  SLOW: %.1fx the median (%s) of the runs before", dur / med, m);
    }
    printf("\n");
  }
  if (rows == 0)
    printf(wf ? "no runs of %s recorded in %s\n" : "no runs recorded in %s%s\n", wf ? wf : path,
           wf ? path : "");
  sqlite3_finalize(s);
  sqlite3_close(db);
  free(def);
  return code;
}
