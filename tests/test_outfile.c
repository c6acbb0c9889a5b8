/* test_outfile.c: what a path names decides how outfile.c writes it:
 * regular files and missing ones atomically (the old content stays until
 * commit, the mode is kept, nothing is left behind on discard), character
 * devices and FIFOs by streaming (never replaced; a FIFO without a reader
 * fails at once), symbolic links through (dangling ones refused), parent
 * directories created on request, and the "check now, create later" mode
 * that reports use. Each test works in a fresh temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/outfile.h"
#include "base/util.h"

#include "scratch_dir.h"

static char *at(const char *name)
{
  return pc_asprintf("%s/%s", dir, name);
}

static void put(const char *path, const char *text, mode_t mode)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  chmod(path, mode);
}

static char *slurp(const char *path)
{
  char *data = NULL;
  size_t len = 0;
  assert_int_equal(pc_read_file(path, 1 << 20, &data, &len), 0);
  return data;
}

/* Entries of `d` whose name holds ".pacer-": temporary files left behind. */
static int temp_files(const char *d)
{
  DIR *dp = opendir(d);
  assert_non_null(dp);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(dp)))
    n += strstr(e->d_name, ".pacer-") != NULL;
  closedir(dp);
  return n;
}

static void test_missing_and_regular(void **state)
{
  (void)state;
  char *path = at("out.txt");
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  assert_int_equal(pc_outfile_open(&of, path, 0, &err), 0);
  assert_false(pc_outfile_is_stream(&of));
  assert_int_equal(pc_outfile_write(&of, "new", 3), 0);
  assert_int_equal(access(path, F_OK), -1); /* nothing until commit */
  assert_int_equal(pc_outfile_commit(&of, &err), 0);
  char *text = slurp(path);
  assert_string_equal(text, "new");
  free(text);

  /* An existing file keeps its content until commit, and its mode after. */
  put(path, "old", 0600);
  assert_int_equal(pc_outfile_open(&of, path, 0, &err), 0);
  assert_int_equal(pc_outfile_write(&of, "newer", 5), 0);
  text = slurp(path);
  assert_string_equal(text, "old");
  free(text);
  assert_int_equal(pc_outfile_commit(&of, &err), 0);
  text = slurp(path);
  assert_string_equal(text, "newer");
  free(text);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0600);

  /* Discarded: the old file stays, no temporary file is left. */
  assert_int_equal(pc_outfile_open(&of, path, 0, &err), 0);
  assert_int_equal(pc_outfile_write(&of, "lost", 4), 0);
  pc_outfile_discard(&of);
  text = slurp(path);
  assert_string_equal(text, "newer");
  free(text);
  assert_int_equal(temp_files(dir), 0);
  free(path);
}

static void test_char_device(void **state)
{
  (void)state;
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  assert_int_equal(pc_outfile_open(&of, "/dev/null", PC_OUTFILE_SYNC, &err), 0);
  assert_true(pc_outfile_is_stream(&of));
  assert_int_equal(pc_outfile_write(&of, "x", 1), 0);
  assert_int_equal(pc_outfile_commit(&of, &err), 0);
  struct stat st;
  assert_int_equal(stat("/dev/null", &st), 0);
  assert_true(S_ISCHR(st.st_mode));
}

static void test_fifo(void **state)
{
  (void)state;
  char *path = at("pipe");
  assert_int_equal(mkfifo(path, 0600), 0);
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  /* No reader: an error at once, never a wait. */
  assert_int_equal(pc_outfile_open(&of, path, 0, &err), -ENXIO);
  assert_non_null(strstr(err, "no process is reading"));
  free(err);
  pc_outfile_discard(&of);
  /* With a reader: written into, and still a FIFO afterwards. */
  int rfd = open(path, O_RDONLY | O_NONBLOCK);
  assert_true(rfd >= 0);
  assert_int_equal(pc_outfile_open(&of, path, 0, &err), 0);
  assert_true(pc_outfile_is_stream(&of));
  assert_int_equal(pc_outfile_write(&of, "hello", 5), 0);
  assert_int_equal(pc_outfile_commit(&of, &err), 0);
  char buf[16] = {0};
  assert_int_equal(read(rfd, buf, sizeof buf), 5);
  assert_string_equal(buf, "hello");
  close(rfd);
  struct stat st;
  assert_int_equal(lstat(path, &st), 0);
  assert_true(S_ISFIFO(st.st_mode));
  free(path);
}

static void test_symlinks(void **state)
{
  (void)state;
  char *real = at("real.txt"), *link = at("link.txt"), *dangling = at("dangling.txt");
  put(real, "old", 0640);
  assert_int_equal(symlink("real.txt", link), 0); /* relative to the link's directory */
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  assert_int_equal(pc_outfile_open(&of, link, 0, &err), 0);
  assert_false(pc_outfile_is_stream(&of));
  assert_int_equal(pc_outfile_write(&of, "through", 7), 0);
  assert_int_equal(pc_outfile_commit(&of, &err), 0);
  struct stat st;
  assert_int_equal(lstat(link, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  char *text = slurp(real);
  assert_string_equal(text, "through");
  free(text);
  assert_int_equal(stat(real, &st), 0);
  assert_int_equal(st.st_mode & 07777, 0640);

  /* A link to nothing is refused, and left as it is. */
  assert_int_equal(symlink("nowhere/x.txt", dangling), 0);
  assert_int_equal(pc_outfile_open(&of, dangling, PC_OUTFILE_MKDIRS, &err), -ENOENT);
  assert_non_null(strstr(err, "does not exist"));
  free(err);
  pc_outfile_discard(&of);
  assert_int_equal(lstat(dangling, &st), 0);
  assert_true(S_ISLNK(st.st_mode));
  char *nowhere = at("nowhere");
  assert_int_equal(access(nowhere, F_OK), -1);
  assert_int_equal(temp_files(dir), 0);
  free(nowhere);
  free(real);
  free(link);
  free(dangling);
}

static void test_refused_and_mkdirs(void **state)
{
  (void)state;
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  assert_int_equal(pc_outfile_open(&of, dir, 0, &err), -EISDIR);
  free(err);
  char *slash = pc_asprintf("%s/", dir);
  assert_int_equal(pc_outfile_open(&of, slash, 0, &err), -EISDIR);
  free(err);
  free(slash);
  pc_outfile_discard(&of);

  /* Missing parents: an error without MKDIRS, created with it. */
  char *deep = at("a/b/c/report.json");
  assert_true(pc_outfile_open(&of, deep, 0, &err) < 0);
  free(err);
  pc_outfile_discard(&of);
  assert_int_equal(pc_outfile_open(&of, deep, PC_OUTFILE_MKDIRS | PC_OUTFILE_SYNC, &err), 0);
  assert_int_equal(pc_outfile_write(&of, "{}", 2), 0);
  assert_int_equal(pc_outfile_commit(&of, &err), 0);
  char *text = slurp(deep);
  assert_string_equal(text, "{}");
  free(text);

  /* A path through a regular file: ENOTDIR, with MKDIRS too. */
  char *file = at("plain"), *under = at("plain/x/y.json");
  put(file, "x", 0644);
  assert_int_equal(pc_outfile_open(&of, under, PC_OUTFILE_MKDIRS, &err), -ENOTDIR);
  free(err);
  pc_outfile_discard(&of);
  free(deep);
  free(file);
  free(under);
}

static void test_later(void **state)
{
  (void)state;
  char *path = at("late.json");
  struct pc_outfile of;
  pc_outfile_init(&of);
  char *err = NULL;
  /* The check creates and removes its probe: nothing is there meanwhile. */
  assert_int_equal(pc_outfile_open(&of, path, PC_OUTFILE_LATER, &err), 0);
  assert_int_equal(of.fd, -1);
  assert_int_equal(temp_files(dir), 0);
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(pc_outfile_write(&of, "late", 4), 0);
  assert_int_equal(temp_files(dir), 1);
  assert_int_equal(pc_outfile_commit(&of, &err), 0);
  assert_int_equal(temp_files(dir), 0);
  char *text = slurp(path);
  assert_string_equal(text, "late");
  free(text);
  free(path);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_missing_and_regular, scratch_setup, scratch_teardown),
    cmocka_unit_test_setup_teardown(test_char_device, scratch_setup, scratch_teardown),
    cmocka_unit_test_setup_teardown(test_fifo, scratch_setup, scratch_teardown),
    cmocka_unit_test_setup_teardown(test_symlinks, scratch_setup, scratch_teardown),
    cmocka_unit_test_setup_teardown(test_refused_and_mkdirs, scratch_setup, scratch_teardown),
    cmocka_unit_test_setup_teardown(test_later, scratch_setup, scratch_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
