/* upload.h: a request body that is not in memory (issue 15): a body_file,
 * streamed from its descriptor by CURLOPT_READFUNCTION, or a multipart
 * body made with libcurl's mime API (its files streamed by libcurl).
 * Transport only: no Lua. For request.c (pc_http__ names).
 *
 * Ownership: a struct pc_http__upload is embedded in its request and owns
 * the descriptor, the path and the curl_mime; pc_http__upload_free must
 * come after the easy handle has let go of them (recycled with
 * curl_easy_reset, or cleaned up). */
#ifndef PACER_HTTP_UPLOAD_H
#define PACER_HTTP_UPLOAD_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

/* One part of a multipart/form-data body (spec `multipart`): text
 * (`data`) or the content of a file (`file`, streamed by libcurl). */
struct pc_http_part {
  const char *name;
  const char *data; /* data_len bytes; NULL: `file` */
  size_t data_len;
  const char *file;     /* a regular file; its name goes as the filename unless `filename` */
  const char *type;     /* Content-Type of the part; NULL: libcurl's guess (files), none (text) */
  const char *filename; /* NULL: the file's base name (files), none (text) */
};

struct pc_http__upload {
  int fd;          /* spec.body_file, open while the request lives; -1: none */
  char *path;      /* its path (owned; NULL: none) */
  int read_errno;  /* reading it failed with this errno (the request fails) */
  /* spec.multipart: a copy of its parts (one allocation, owned), kept
   * until the request is admitted and has an easy handle, and the body
   * made of them then (CURLOPT_MIMEPOST; NULL: not yet). */
  bool multipart;
  struct pc_http_part *parts;
  size_t nparts;
  curl_mime *mime;
};

void pc_http__upload_init(struct pc_http__upload *u);
/* When the request starts (no easy handle yet): opens body_file (not
 * NULL), or keeps a copy of the nparts parts of a multipart body
 * (multipart); nothing otherwise. Every file must be a regular file pacer
 * can read. Returns 0, or -1 with *err set ("http.body_file: ..."). */
int pc_http__upload_open(struct pc_http__upload *u, const char *body_file, bool multipart,
                         const struct pc_http_part *parts, size_t nparts, char **err);
/* Sets the body's options on e (after the method), making the multipart
 * body first: 1 if there is such a body, 0 (nothing set) if not, -1 if
 * libcurl could not make the multipart body. */
int pc_http__upload_set(struct pc_http__upload *u, CURL *e);
/* Before a redirect that keeps the body: a body_file goes again from its
 * start (libcurl rewinds a multipart body itself). 0, or -1 with errno. */
int pc_http__upload_rewind(struct pc_http__upload *u);
void pc_http__upload_free(struct pc_http__upload *u);

/* 0 if `path` names a regular file pacer can read, else -1 with *err set
 * ("http.WHAT: ...", `want` saying what to name instead; a ca_file must
 * also be at most 64 MiB). */
int pc_http__check_file(const char *what, const char *path, const char *want, char **err);

#endif
