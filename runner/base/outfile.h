/* outfile.h: writing a file the user names (reports, `save_to`) without
 * destroying what is there.
 *
 * What a path names decides how it is written:
 *
 * - nothing yet, or a regular file: ATOMIC. The data goes to a temporary
 *   file beside the target (`.NAME.pacer-XXXXXX`, created exclusively, so a
 *   planted symlink cannot redirect it), which is renamed over the target
 *   on commit: a reader sees the old file or the complete new one. The new
 *   file keeps the mode of the one it replaces (else 0666 minus the umask).
 * - a character device (/dev/null, a terminal) or a FIFO: STREAM. The data
 *   is written into it as it comes; nothing is renamed, so /dev/null stays
 *   /dev/null and a FIFO stays a FIFO. A FIFO must already have a reader:
 *   opening one never waits (that would stop the event loop), it fails with
 *   "no process is reading it".
 * - a symbolic link: written THROUGH it, with the same rules applied to what
 *   it finally points to (a regular file is replaced atomically beside the
 *   resolved target; the link itself is never replaced). A link to nothing
 *   is refused. Links into /proc (/dev/stdout, /dev/fd/N) stream into the
 *   descriptor they stand for, appending.
 * - anything else (a directory, a block device, a socket): refused.
 *
 * Ownership: a struct pc_outfile owns its descriptor and the temporary file
 * until pc_outfile_commit or pc_outfile_discard, which are idempotent. */
#ifndef PACER_OUTFILE_H
#define PACER_OUTFILE_H

#include <stdbool.h>
#include <stddef.h>

enum {
  PC_OUTFILE_MKDIRS = 1u, /* create missing parent directories (reports) */
  PC_OUTFILE_SYNC = 2u,   /* fsync the data and the directory on commit (reports) */
  PC_OUTFILE_LATER = 4u,  /* open: for an ATOMIC target only check that the temporary
                             file can be created; it is created by the first write */
};

struct pc_outfile {
  char *path;   /* as given, for messages */
  char *target; /* ATOMIC: the regular file to replace (symlinks resolved) */
  char *tmp;    /* ATOMIC: the temporary file, while it exists */
  int fd;       /* -1 when not open */
  int mode;     /* ATOMIC: the mode the new file gets */
  unsigned flags;
  bool atomic;
};

void pc_outfile_init(struct pc_outfile *of);
/* Prepares `path` for writing (see above); never blocks. Returns 0, or a
 * negative errno with a malloc'd message in *err that names the path. */
int pc_outfile_open(struct pc_outfile *of, const char *path, unsigned flags, char **err);
/* Writes all of `data`. Returns 0 or a negative errno. */
int pc_outfile_write(struct pc_outfile *of, const void *data, size_t len);
/* ATOMIC: closes (after fsync with PC_OUTFILE_SYNC) and renames the
 * temporary file over the target; STREAM: closes. Returns 0, or a negative
 * errno with a message in *err. Either way the struct is closed. */
int pc_outfile_commit(struct pc_outfile *of, char **err);
/* Closes without committing and frees what the struct holds: the
 * temporary file is removed, the target is left as it was (a STREAM keeps
 * what was already written into it). */
void pc_outfile_discard(struct pc_outfile *of);
/* Whether the target is streamed into (not replaced atomically). */
bool pc_outfile_is_stream(const struct pc_outfile *of);

#endif
