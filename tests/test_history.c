/* test_history.c: the run history's database (journal/history.c) stays
 * small however many runs append to it. Each append is the only
 * connection to the file, as each `pacer run` is, so SQLite's automatic
 * checkpoint could never start the WAL again: it grew by ~9 KB a run and
 * every run read all of it when it opened the file. The test appends many
 * rows and checks that the WAL stays within the bound history.c keeps it
 * to, and that every row is there. Each test works in a fresh temporary
 * directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sqlite3.h>

#include "base/util.h"
#include "journal/journal.h"

#include "scratch_dir.h"

static long long file_size(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : 0;
}

static void test_wal_stays_small(void **state)
{
  (void)state;
  char *db_path = pc_asprintf("%s/state/pacer/history.db", dir);
  char *wal_path = pc_asprintf("%s-wal", db_path);
  enum { RUNS = 600 };
  /* 128 frames (history.c's WAL_MAX_FRAMES) of a 4 KiB page and its
   * 24-byte header, the WAL's header, and the frames of one more run. */
  const long long bound = 32 + (128 + 4) * (4096 + 24);
  long long largest = 0;
  for (int i = 0; i < RUNS; i++) {
    struct pc_history_run r = {.workflow = "/w/flow.yml",
                               .workflow_sha256 = "",
                               .start_ms = 1.7e12 + i * 1000.0,
                               .duration_ms = 12.5,
                               .outcome = "ok",
                               .exit_code = 0};
    char *err = NULL;
    assert_int_equal(pc_history_append(db_path, &r, &err), 0);
    assert_null(err);
    long long n = file_size(wal_path);
    if (n > largest)
      largest = n;
  }
  /* Without the truncation the WAL was ~5.6 MB after 600 runs. */
  if (largest > bound)
    fail_msg("the WAL reached %lld bytes (bound %lld)", largest, bound);

  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *s = NULL;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM runs", -1, &s, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(s), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int(s, 0), RUNS);
  sqlite3_finalize(s);
  sqlite3_close(db);
  free(wal_path);
  free(db_path);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_wal_stays_small, scratch_setup, scratch_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
