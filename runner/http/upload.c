/* upload.c: a body_file streamed from its descriptor, and a multipart
 * body made with libcurl's mime API (see upload.h). libcurl calls on_read
 * and on_seek from inside a transfer: they only read and seek the file. */
#include "http/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/util.h"

#define CA_FILE_MAX ((off_t)64 << 20) /* a CA bundle is well under a megabyte */

void pc_http__upload_init(struct pc_http__upload *u)
{
  memset(u, 0, sizeof *u);
  u->fd = -1;
}

void pc_http__upload_free(struct pc_http__upload *u)
{
  if (u->fd >= 0)
    close(u->fd);
  u->fd = -1;
  free(u->path);
  u->path = NULL;
  curl_mime_free(u->mime);
  u->mime = NULL;
  free(u->parts);
  u->parts = NULL;
  u->nparts = 0;
  u->multipart = false;
}

/* 0 if `path` names a regular file pacer can read, else -1 with *err set
 * ("http.WHAT: ...", `want` saying what to name instead). Files are read
 * on the loop thread: a ca_file by libcurl (OpenSSL) during the TLS
 * handshake, a body_file or a multipart file while the body is sent. A
 * FIFO, a terminal or a character device would block the whole run there
 * (timeouts and signals included), so only a regular file (of a sane size,
 * for CA certificates) gets that far. stat() itself never waits on the
 * file. */
int pc_http__check_file(const char *what, const char *path, const char *want, char **err)
{
  struct stat st;
  if (stat(path, &st) != 0 || access(path, R_OK) != 0)
    *err = pc_asprintf("http.%s: cannot read \"%s\": %s", what, path, strerror(errno));
  else if (!S_ISREG(st.st_mode))
    *err = pc_asprintf("http.%s: \"%s\" is not a regular file (%s); name %s", what, path,
                       S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory"
                       : S_ISCHR(st.st_mode) ? "a character device"
                       : S_ISSOCK(st.st_mode) ? "a socket" : "not a file", want);
  else if (strcmp(what, "ca_file") == 0 && st.st_size > CA_FILE_MAX)
    *err = pc_asprintf("http.ca_file: \"%s\" is %lld bytes: too large for a file of CA "
                       "certificates (at most %lld)", path, (long long)st.st_size,
                       (long long)CA_FILE_MAX);
  else
    return 0;
  return -1;
}

/* CURLOPT_READFUNCTION: the next bytes of body_file, straight from the
 * file into libcurl's buffer (the body is never held in memory). A
 * regular file: read() does not wait on anything but the disk. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *userdata)
{
  struct pc_http__upload *u = userdata;
  ssize_t got;
  do
    got = read(u->fd, buf, size * nitems);
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    u->read_errno = errno;
    return CURL_READFUNC_ABORT;
  }
  return (size_t)got;
}

/* CURLOPT_SEEKFUNCTION: libcurl sends the body again (a kept-alive
 * connection that died, a Digest challenge): back to where it asks. */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
  struct pc_http__upload *u = userdata;
  return lseek(u->fd, (off_t)offset, origin) < 0 ? CURL_SEEKFUNC_FAIL : CURL_SEEKFUNC_OK;
}

/* Opens body_file for on_read. Returns 0, or -1 with *err set. */
static int open_body_file(struct pc_http__upload *u, const char *path, char **err)
{
  if (pc_http__check_file("body_file", path, "a file to send", err) != 0)
    return -1;
  u->path = pc_xstrdup(path);
  u->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (u->fd < 0) {
    *err = pc_asprintf("http.body_file: cannot open \"%s\": %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

/* Keeps a copy of the parts (one allocation: the array, then each part's
 * strings and data), for make_mime once the request has an easy handle.
 * Each file is checked now, so that a bad one fails the start. Returns 0,
 * or -1 with *err set. */
static int keep_parts(struct pc_http__upload *u, const struct pc_http_part *parts,
                      size_t nparts, char **err)
{
  size_t n = nparts * sizeof *parts;
  for (size_t i = 0; i < nparts; i++) {
    const struct pc_http_part *p = &parts[i];
    if (p->file) {
      char *what = pc_asprintf("multipart.%s", p->name);
      int bad = pc_http__check_file(what, p->file, "a file to send", err);
      free(what);
      if (bad)
        return -1;
    }
    n += strlen(p->name) + 1 + (p->file ? strlen(p->file) + 1 : p->data_len + 1) +
         (p->type ? strlen(p->type) + 1 : 0) + (p->filename ? strlen(p->filename) + 1 : 0);
  }
  struct pc_http_part *kept = pc_xmalloc(n ? n : 1);
  char *at = (char *)(kept + nparts);
#define PUT(dst, src, len)                                                                     \
  do {                                                                                         \
    memcpy(at, (src), (len));                                                                  \
    at[len] = '\0';                                                                            \
    (dst) = at;                                                                                \
    at += (len) + 1;                                                                           \
  } while (0)
  for (size_t i = 0; i < nparts; i++) {
    const struct pc_http_part *p = &parts[i];
    struct pc_http_part *k = &kept[i];
    memset(k, 0, sizeof *k);
    PUT(k->name, p->name, strlen(p->name));
    if (p->file) {
      PUT(k->file, p->file, strlen(p->file));
    } else {
      PUT(k->data, p->data ? p->data : "", p->data ? p->data_len : 0);
      k->data_len = p->data ? p->data_len : 0;
    }
    if (p->type)
      PUT(k->type, p->type, strlen(p->type));
    if (p->filename)
      PUT(k->filename, p->filename, strlen(p->filename));
  }
#undef PUT
  u->parts = kept;
  u->nparts = nparts;
  u->multipart = true;
  return 0;
}

/* The multipart body of the kept parts, with libcurl's mime API (it copies
 * what it is given; files are opened and streamed by libcurl as the body
 * is sent), made for easy handle e. Returns CURLE_OK or libcurl's error. */
static CURLcode make_mime(struct pc_http__upload *u, CURL *e)
{
  u->mime = curl_mime_init(e);
  if (!u->mime)
    return CURLE_OUT_OF_MEMORY;
  for (size_t i = 0; i < u->nparts; i++) {
    const struct pc_http_part *p = &u->parts[i];
    curl_mimepart *part = curl_mime_addpart(u->mime);
    CURLcode rc = part ? curl_mime_name(part, p->name) : CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_OK && p->file)
      rc = curl_mime_filedata(part, p->file);
    else if (rc == CURLE_OK)
      rc = curl_mime_data(part, p->data, p->data_len);
    if (rc == CURLE_OK && p->type)
      rc = curl_mime_type(part, p->type);
    if (rc == CURLE_OK && p->filename)
      rc = curl_mime_filename(part, p->filename);
    if (rc != CURLE_OK)
      return rc;
  }
  return CURLE_OK;
}

int pc_http__upload_open(struct pc_http__upload *u, const char *body_file, bool multipart,
                         const struct pc_http_part *parts, size_t nparts, char **err)
{
  if (body_file)
    return open_body_file(u, body_file, err);
  if (multipart)
    return keep_parts(u, parts, nparts, err);
  return 0;
}

int pc_http__upload_set(struct pc_http__upload *u, CURL *e)
{
  if (u->multipart) {
    if (!u->mime && make_mime(u, e) != CURLE_OK)
      return -1;
    curl_easy_setopt(e, CURLOPT_MIMEPOST, u->mime);
    return 1;
  }
  if (u->fd < 0)
    return 0;
  struct stat st;
  curl_off_t size = fstat(u->fd, &st) == 0 ? (curl_off_t)st.st_size : -1;
  curl_easy_setopt(e, CURLOPT_POST, 1L); /* with the request's method, if not POST */
  curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(e, CURLOPT_READDATA, u);
  curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
  curl_easy_setopt(e, CURLOPT_SEEKDATA, u);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, size);
  return 1;
}

int pc_http__upload_rewind(struct pc_http__upload *u)
{
  return u->fd >= 0 && lseek(u->fd, 0, SEEK_SET) != 0 ? -1 : 0;
}
