/* fdcheck.c: an LD_PRELOAD library for tests/torture.py that looks at a
 * pacer process at the very end of its life. A descriptor pacer lost track
 * of (a socket curl closed behind libuv, a pipe of a cancelled program, a
 * file a report writer forgot) vanishes with the process, so nothing outside
 * can see it afterwards; from inside, the last destructor still can.
 *
 * When a process whose executable is named "pacer" exits normally (main
 * returns, or exit() is called), the destructor appends one line to the file
 * named by $PACER_FDCHECK_OUT:
 *
 *     pid=PID fds=FD:TARGET,FD:TARGET,... children=PID,PID,...
 *
 * listing every descriptor still open except 0, 1 and 2 (with its
 * /proc/self/fd link target) and every child process not reaped (running or
 * zombie). The harness decides what is a leak. A process killed by a signal
 * or ended by _exit() writes nothing, and the harness reports that too.
 *
 * Other programs (pacer's children inherit LD_PRELOAD) do nothing. This is
 * built by tests/torture.py with the system compiler and without sanitizers,
 * so it can be preloaded into an ASan build (with verify_asan_link_order=0)
 * and into the plain programs that build starts. Standard C and POSIX only:
 * it must not allocate through anything the sanitizer build intercepts in a
 * way that matters, and it keeps its buffers on the stack. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int is_pacer(void)
{
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return 0;
  exe[n] = '\0';
  const char *base = strrchr(exe, '/');
  base = base ? base + 1 : exe;
  return strcmp(base, "pacer") == 0;
}

/* Appends "s" to the line buffer, dropping what does not fit (the harness
 * sees the truncation as a mangled line and fails loudly). */
static void put(char *line, size_t cap, size_t *len, const char *s)
{
  size_t n = strlen(s);
  if (*len + n >= cap)
    n = cap - *len - 1;
  memcpy(line + *len, s, n);
  *len += n;
  line[*len] = '\0';
}

/* The children of this process, read from /proc/PID/stat (field 4 is the
 * parent's pid; field 2, the command, is in parentheses and may hold
 * spaces, so parse from the last ')'). */
static void list_children(char *line, size_t cap, size_t *len)
{
  DIR *d = opendir("/proc");
  if (!d)
    return;
  pid_t self = getpid();
  int first = 1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9')
      continue;
    char path[300], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
      continue;
    buf[n] = '\0';
    char *rp = strrchr(buf, ')');
    char state;
    int ppid;
    if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || ppid != self)
      continue;
    char item[300];
    snprintf(item, sizeof item, "%s%s:%c", first ? "" : ",", e->d_name, state);
    put(line, cap, len, item);
    first = 0;
  }
  closedir(d);
}

__attribute__((destructor(101))) static void fdcheck_at_exit(void)
{
  const char *out = getenv("PACER_FDCHECK_OUT");
  if (!out || !*out || !is_pacer())
    return;
  char line[16384];
  size_t len = 0;
  char item[4200];
  snprintf(item, sizeof item, "pid=%d fds=", (int)getpid());
  put(line, sizeof line, &len, item);

  /* Open the output first so that its descriptor is known and left out;
   * the directory being read is left out the same way. */
  int ofd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (ofd < 0)
    return;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    int dfd = dirfd(d), first = 1;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9')
        continue;
      int fd = atoi(e->d_name);
      if (fd <= 2 || fd == ofd || fd == dfd)
        continue;
      char path[64], target[4096];
      snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
      ssize_t n = readlink(path, target, sizeof target - 1);
      target[n > 0 ? n : 0] = '\0';
      for (char *c = target; *c; c++)
        if (*c == ',' || *c == ' ' || *c == '\n')
          *c = '_';
      snprintf(item, sizeof item, "%s%d:%s", first ? "" : ",", fd, target);
      put(line, sizeof line, &len, item);
      first = 0;
    }
    closedir(d);
  }
  put(line, sizeof line, &len, " children=");
  list_children(line, sizeof line, &len);
  put(line, sizeof line, &len, "\n");
  ssize_t w = write(ofd, line, len);
  (void)w;
  close(ofd);
}
