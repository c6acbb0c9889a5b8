/* outfile.c: see outfile.h. The path is looked at once, with lstat, hop by
 * hop through symbolic links, before anything is opened; what is opened is
 * then checked again with fstat, so a file swapped in between is refused
 * rather than written. Nothing here waits: a FIFO is opened non-blocking
 * (no reader: an error, not a hang), then switched back to blocking writes
 * so the data reaches the reader whole. */
#include "base/outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define MAX_HOPS 40       /* symbolic links followed, as the kernel's ELOOP limit */
#define TMP_BASE_MAX 200  /* bytes of the target's name kept in the temporary name */

void pc_outfile_init(struct pc_outfile *of)
{
  memset(of, 0, sizeof *of);
  of->fd = -1;
}

bool pc_outfile_is_stream(const struct pc_outfile *of)
{
  return !of->atomic;
}

/* The directory part of `path` ("." for a bare name), malloc'd. */
static char *dir_of(const char *path)
{
  const char *slash = strrchr(path, '/');
  if (!slash)
    return pc_xstrdup(".");
  if (slash == path)
    return pc_xstrdup("/");
  return pc_xstrndup(path, (size_t)(slash - path));
}

/* Creates the missing directories above `path`, like mkdir -p. */
static int make_parents(const char *path, char **err)
{
  char *p = pc_xstrdup(path);
  int rc = 0;
  for (char *s = p + 1; *s; s++) {
    if (*s != '/' || s[-1] == '/')
      continue;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      rc = -errno;
      *err = pc_asprintf("cannot create the directory \"%s\": %s", p, strerror(-rc));
      break;
    }
    *s = '/';
  }
  free(p);
  return rc;
}

/* Follows `path` through symbolic links without opening anything. On
 * success *final is the last path reached (malloc'd) and *st its lstat, or
 * *exists is false when `path` itself names nothing; *magic is set when a
 * link leads into /proc (/dev/stdout, /dev/fd/N), whose links are not paths
 * to follow but descriptors to open. */
static int resolve(const char *path, char **final, struct stat *st, bool *exists, bool *magic,
                   char **err)
{
  char *cur = pc_xstrdup(path);
  *exists = true;
  *magic = false;
  for (int hops = 0;; hops++) {
    if (lstat(cur, st) != 0) {
      int e = errno;
      if (e == ENOENT && hops == 0) {
        *exists = false;
        *final = cur;
        return 0;
      }
      if (e == ENOENT)
        *err = pc_asprintf("\"%s\" is a symbolic link to \"%s\", which does not exist", path,
                           cur);
      else
        *err = pc_asprintf("\"%s\": %s", cur, strerror(e));
      free(cur);
      return -e;
    }
    if (!S_ISLNK(st->st_mode)) {
      *final = cur;
      return 0;
    }
    char *dir = dir_of(cur);
    char *rdir = realpath(dir, NULL);
    if (rdir && strncmp(rdir, "/proc/", 6) == 0) {
      free(dir);
      free(rdir);
      *magic = true;
      *final = cur;
      return 0;
    }
    char link[PATH_MAX];
    ssize_t n = hops < MAX_HOPS ? readlink(cur, link, sizeof link - 1) : -1;
    if (n < 0) {
      int e = hops < MAX_HOPS ? errno : ELOOP;
      *err = pc_asprintf("\"%s\": %s", cur, strerror(e));
      free(dir);
      free(rdir);
      free(cur);
      return -e;
    }
    link[n] = '\0';
    free(cur);
    cur = link[0] == '/' ? pc_xstrdup(link) : pc_asprintf("%s/%s", rdir ? rdir : dir, link);
    free(dir);
    free(rdir);
  }
}

/* Creates a temporary file beside of->target; `kind` tells a check from
 * the real thing in its name. Returns the descriptor or a negative errno. */
static int make_temp(struct pc_outfile *of, const char *kind, char **name, char **err)
{
  const char *slash = strrchr(of->target, '/');
  const char *base = slash ? slash + 1 : of->target;
  int dlen = slash ? (int)(slash - of->target) + 1 : 0;
  int blen = (int)strnlen(base, TMP_BASE_MAX);
  *name = pc_asprintf("%.*s.%.*s.pacer-%sXXXXXX", dlen, of->target, blen, base, kind);
  /* Close-on-exec at once: programs are only started from the loop thread,
   * which is this one, so none can inherit it in between. */
  int fd = mkstemp(*name);
  if (fd >= 0)
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    *err = pc_asprintf("cannot create a file beside \"%s\": %s", of->target, strerror(e));
    free(*name);
    *name = NULL;
    return -e;
  }
  /* mkstemp makes the file 0600; the new file gets the old one's mode. */
  (void)fchmod(fd, (mode_t)of->mode);
  return fd;
}

static int open_stream(struct pc_outfile *of, const char *path, bool magic, char **err)
{
  /* Non-blocking, so a FIFO without a reader fails (ENXIO) instead of
   * waiting; never following a last link we did not resolve ourselves. */
  int flags = O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
  flags |= magic ? O_APPEND : O_NOFOLLOW;
  int fd = open(path, flags);
  if (fd < 0) {
    int e = errno;
    if (e == ENXIO)
      *err = pc_asprintf("\"%s\" is a FIFO that no process is reading", of->path);
    else
      *err = pc_asprintf("cannot open \"%s\": %s", of->path, strerror(e));
    return -e;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || (!magic && !S_ISCHR(st.st_mode) && !S_ISFIFO(st.st_mode))) {
    close(fd);
    *err = pc_asprintf("\"%s\" changed while it was being opened", of->path);
    return -EAGAIN;
  }
  /* The reader sets the pace from now on. */
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0)
    (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  of->fd = fd;
  return 0;
}

int pc_outfile_open(struct pc_outfile *of, const char *path, unsigned flags, char **err)
{
  *err = NULL;
  pc_outfile_discard(of);
  of->path = pc_xstrdup(path);
  of->flags = flags;
  if (!*path || path[strlen(path) - 1] == '/') {
    *err = pc_asprintf("\"%s\" names a directory, not a file", path);
    return -EISDIR;
  }
  if ((flags & PC_OUTFILE_MKDIRS) && strchr(path, '/')) {
    int rc = make_parents(path, err);
    if (rc)
      return rc;
  }
  struct stat st;
  bool exists, magic;
  char *final = NULL;
  int rc = resolve(path, &final, &st, &exists, &magic, err);
  if (rc)
    return rc;
  if (magic || (exists && (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)))) {
    of->atomic = false;
    rc = open_stream(of, magic ? path : final, magic, err);
    free(final);
    return rc;
  }
  if (exists && S_ISDIR(st.st_mode)) {
    *err = pc_asprintf("\"%s\" is a directory", path);
    free(final);
    return -EISDIR;
  }
  if (exists && !S_ISREG(st.st_mode)) {
    *err = pc_asprintf("\"%s\" is not a regular file, a character device or a FIFO", path);
    free(final);
    return -EINVAL;
  }
  of->atomic = true;
  of->target = final;
  if (exists) {
    of->mode = (int)(st.st_mode & 07777);
  } else {
    mode_t um = umask(0);
    umask(um);
    of->mode = (int)(0666 & ~um);
  }
  if (flags & PC_OUTFILE_LATER) {
    /* Check now that the temporary file can be made, and make it later. */
    char *probe = NULL;
    int fd = make_temp(of, "check-", &probe, err);
    if (fd < 0)
      return fd;
    close(fd);
    unlink(probe);
    free(probe);
    return 0;
  }
  int fd = make_temp(of, "", &of->tmp, err);
  if (fd < 0)
    return fd;
  of->fd = fd;
  return 0;
}

int pc_outfile_write(struct pc_outfile *of, const void *data, size_t len)
{
  if (of->fd < 0 && of->atomic && !of->tmp) {
    char *err = NULL;
    int fd = make_temp(of, "", &of->tmp, &err);
    free(err);
    if (fd < 0)
      return fd;
    of->fd = fd;
  }
  if (of->fd < 0)
    return -EBADF;
  return pc_write_all(of->fd, data, len);
}

int pc_outfile_commit(struct pc_outfile *of, char **err)
{
  *err = NULL;
  if (of->atomic && of->fd < 0 && !of->tmp) {
    int rc = pc_outfile_write(of, "", 0); /* nothing was written: an empty file */
    if (rc) {
      *err = pc_asprintf("cannot write \"%s\": %s", of->path, strerror(-rc));
      return rc;
    }
  }
  if (of->fd < 0) {
    *err = pc_asprintf("cannot write \"%s\": not open", of->path);
    return -EBADF;
  }
  int rc = 0;
  if (of->atomic && (of->flags & PC_OUTFILE_SYNC) && fsync(of->fd) != 0)
    rc = -errno;
  if (close(of->fd) != 0 && rc == 0)
    rc = -errno;
  of->fd = -1;
  if (rc == 0 && of->atomic && rename(of->tmp, of->target) != 0)
    rc = -errno;
  if (rc) {
    *err = pc_asprintf("cannot write \"%s\": %s", of->path, strerror(-rc));
    pc_outfile_discard(of);
    return rc;
  }
  if (of->atomic) {
    free(of->tmp);
    of->tmp = NULL;
    if (of->flags & PC_OUTFILE_SYNC) {
      /* Make the rename itself durable (best effort). */
      char *dir = dir_of(of->target);
      int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
      }
      free(dir);
    }
  }
  pc_outfile_discard(of);
  return 0;
}

void pc_outfile_discard(struct pc_outfile *of)
{
  if (of->fd >= 0) {
    close(of->fd);
    of->fd = -1;
  }
  if (of->tmp) {
    unlink(of->tmp);
    free(of->tmp);
    of->tmp = NULL;
  }
  free(of->target);
  of->target = NULL;
  free(of->path);
  of->path = NULL;
}
