/* files.c: what `pacer run` needs around its workflow files: the files a
 * run argument names (a directory's *.yml and *.yaml), the exit code of
 * several runs by SPEC's precedence, and --lock. */
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

#include "base/util.h"
#include "model/outcome.h"

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

/* The exit code of several runs: SPEC's precedence, top to bottom --
 * signals, the deadline, an error, a failure, a bad file, the lock, ok. */
int pc_cli_exit_rank(int code)
{
  switch (code) {
  case PC_EXIT_SIGHUP:
  case PC_EXIT_SIGINT:
  case PC_EXIT_SIGTERM:
    return 7;
  case PC_EXIT_DEADLINE:
    return 6;
  case PC_EXIT_ERROR:
    return 5;
  case PC_EXIT_FAILED:
    return 4;
  case PC_EXIT_USAGE:
    return 3;
  case PC_EXIT_LOCKED:
    return 2;
  case PC_EXIT_OK:
    return 0;
  }
  return 5;
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

