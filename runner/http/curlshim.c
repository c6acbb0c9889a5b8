/* curlshim.c: the curl_* functions pacer calls, forwarding to a libcurl
 * loaded with dlopen() on the first call (see curlshim.h for why). Every
 * wrapper has the exact prototype of <curl/curl.h>. The variadic setopt
 * and getinfo functions read their third argument the way libcurl itself
 * does (lib/setopt.c, lib/multi.c, lib/getinfo.c): by the option's type
 * range for setopt, always a pointer for getinfo, and pass it on with the
 * same type. Loading happens once, under pthread_once; in practice only the
 * loop thread ever calls libcurl. */
#define CURL_DISABLE_TYPECHECK /* the typecheck macros would rename our definitions */
#include "http/curlshim.h"

#include <assert.h>
#include <curl/curl.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"

/* Every function we forward: X(return type, name, parameter list). The
 * variadic ones take their third argument as the widest type they forward
 * (a union would not do: each call passes exactly one type). */
#define PC_CURL_FUNCS(X)                                                             \
  X(CURLcode, curl_global_init, (long))                                              \
  X(curl_version_info_data *, curl_version_info, (CURLversion))                      \
  X(CURL *, curl_easy_init, (void))                                                  \
  X(void, curl_easy_cleanup, (CURL *))                                               \
  X(void, curl_easy_reset, (CURL *))                                                 \
  X(CURLcode, curl_easy_setopt, (CURL *, CURLoption, ...))                           \
  X(CURLcode, curl_easy_getinfo, (CURL *, CURLINFO, ...))                            \
  X(const char *, curl_easy_strerror, (CURLcode))                                    \
  X(char *, curl_easy_escape, (CURL *, const char *, int))                           \
  X(void, curl_free, (void *))                                                       \
  X(time_t, curl_getdate, (const char *, const time_t *))                            \
  X(struct curl_slist *, curl_slist_append, (struct curl_slist *, const char *))     \
  X(void, curl_slist_free_all, (struct curl_slist *))                                \
  X(CURLM *, curl_multi_init, (void))                                                \
  X(CURLMcode, curl_multi_cleanup, (CURLM *))                                        \
  X(CURLMcode, curl_multi_add_handle, (CURLM *, CURL *))                             \
  X(CURLMcode, curl_multi_remove_handle, (CURLM *, CURL *))                          \
  X(CURLMcode, curl_multi_setopt, (CURLM *, CURLMoption, ...))                       \
  X(CURLMcode, curl_multi_assign, (CURLM *, curl_socket_t, void *))                  \
  X(CURLMcode, curl_multi_socket_action, (CURLM *, curl_socket_t, int, int *))       \
  X(CURLMsg *, curl_multi_info_read, (CURLM *, int *))                               \
  X(const char *, curl_multi_strerror, (CURLMcode))                                  \
  X(CURLU *, curl_url, (void))                                                       \
  X(void, curl_url_cleanup, (CURLU *))                                               \
  X(CURLUcode, curl_url_get, (CURLU *, CURLUPart, char **, unsigned int))            \
  X(CURLUcode, curl_url_set, (CURLU *, CURLUPart, const char *, unsigned int))        \
  X(char *, curl_easy_unescape, (CURL *, const char *, int, int *))                  \
  X(CURLSH *, curl_share_init, (void))                                               \
  X(CURLSHcode, curl_share_setopt, (CURLSH *, CURLSHoption, ...))                    \
  X(CURLSHcode, curl_share_cleanup, (CURLSH *))                                      \
  X(curl_mime *, curl_mime_init, (CURL *))                                           \
  X(void, curl_mime_free, (curl_mime *))                                             \
  X(curl_mimepart *, curl_mime_addpart, (curl_mime *))                               \
  X(CURLcode, curl_mime_name, (curl_mimepart *, const char *))                       \
  X(CURLcode, curl_mime_filename, (curl_mimepart *, const char *))                   \
  X(CURLcode, curl_mime_type, (curl_mimepart *, const char *))                       \
  X(CURLcode, curl_mime_data, (curl_mimepart *, const char *, size_t))               \
  X(CURLcode, curl_mime_filedata, (curl_mimepart *, const char *))

#define PC_CURL_FIELD(ret, name, params) ret(*name) params;
static struct {
  PC_CURL_FUNCS(PC_CURL_FIELD)
} real;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static void *lib;            /* the dlopen handle; NULL until loaded */
static char load_error[512]; /* "" unless loading failed */

static void load(void)
{
  const char *soname = getenv("PACER_LIBCURL");
  if (!soname || !*soname)
    soname = PC_LIBCURL_SONAME;
  /* Lazy binding: a run with one request should not resolve every symbol
   * of libcurl and its dependencies. RTLD_LOCAL keeps libcurl's symbols
   * out of the global scope, where our wrappers' names would collide. */
  void *h = dlopen(soname, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    snprintf(load_error, sizeof load_error, "http: cannot load libcurl (%s): %s", soname,
             e ? e : "unknown error");
    return;
  }
#define PC_CURL_RESOLVE(ret, name, params)                                                     \
  if (!(real.name = (ret(*) params)dlsym(h, #name))) {                                         \
    snprintf(load_error, sizeof load_error, "http: cannot load libcurl (%s): no symbol %s", \
             soname, #name);                                                                   \
    dlclose(h);                                                                                \
    return;                                                                                    \
  }
  PC_CURL_FUNCS(PC_CURL_RESOLVE)
#undef PC_CURL_RESOLVE
  lib = h;
}

bool pc_curl_load(void)
{
  pthread_once(&load_once, load);
  return lib != NULL;
}

bool pc_curl_loaded(void)
{
  return lib != NULL;
}

const char *pc_curl_load_error(void)
{
  return load_error[0] ? load_error : NULL;
}

/* ------------------------------------------------------------ global */

/* With SSLKEYLOGFILE set, libcurl's global init opens that file (append,
 * not close-on-exec) and keeps it open for good, to log TLS secrets into:
 * programs pacer starts must not inherit it. Its descriptor is found by
 * path, once, and only when the variable is set. */
static void keylog_cloexec(void)
{
  const char *name = getenv("SSLKEYLOGFILE");
  char want[PATH_MAX];
  if (!name || !*name || !realpath(name, want))
    return;
  DIR *d = opendir("/proc/self/fd");
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d))) {
    char link[64], target[PATH_MAX];
    int fd = atoi(de->d_name);
    if (fd <= 2 || fd == dirfd(d))
      continue;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0)
      continue;
    target[n] = '\0';
    int fl = fcntl(fd, F_GETFD);
    if (strcmp(target, want) == 0 && fl >= 0)
      fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  }
  closedir(d);
}

CURLcode curl_global_init(long flags)
{
  if (!pc_curl_load()) {
    /* session.c reports only that libcurl "could not be initialised": say why
     * here, once (curl_global_init is called once per process). */
    pc_log(PC_LOG_ERROR, NULL, "%s", load_error);
    return CURLE_FAILED_INIT;
  }
  CURLcode rc = real.curl_global_init(flags);
  keylog_cloexec();
  return rc;
}

curl_version_info_data *curl_version_info(CURLversion age)
{
  return pc_curl_load() ? real.curl_version_info(age) : NULL;
}

void curl_free(void *p)
{
  /* Only libcurl hands out what curl_free frees, so p is NULL if it is not
   * loaded. */
  if (pc_curl_load())
    real.curl_free(p);
}

time_t curl_getdate(const char *p, const time_t *unused)
{
  return pc_curl_load() ? real.curl_getdate(p, unused) : (time_t)-1;
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *data)
{
  return pc_curl_load() ? real.curl_slist_append(list, data) : NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
  if (pc_curl_load())
    real.curl_slist_free_all(list);
}

/* -------------------------------------------------------------- easy */

CURL *curl_easy_init(void)
{
  return pc_curl_load() ? real.curl_easy_init() : NULL;
}

void curl_easy_cleanup(CURL *curl)
{
  if (pc_curl_load())
    real.curl_easy_cleanup(curl);
}

void curl_easy_reset(CURL *curl)
{
  if (pc_curl_load())
    real.curl_easy_reset(curl);
}

/* Calls fn(handle, option, ARG) with ARG read from ap as the type libcurl
 * reads for the option's type range (lib/setopt.c; multi options have no
 * blobs), for the two variadic setopts. */
#define FORWARD_SETOPT(fn, handle, option, ap)                                              \
  ((long)(option) < CURLOPTTYPE_OBJECTPOINT     ? fn(handle, option, va_arg(ap, long))     \
   : (long)(option) < CURLOPTTYPE_FUNCTIONPOINT ? fn(handle, option, va_arg(ap, void *))   \
   : (long)(option) < CURLOPTTYPE_OFF_T ? fn(handle, option, va_arg(ap, void (*)(void)))   \
   : (long)(option) < CURLOPTTYPE_BLOB  ? fn(handle, option, va_arg(ap, curl_off_t))       \
                                        : fn(handle, option, va_arg(ap, struct curl_blob *)))

CURLcode curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
  if (!pc_curl_load())
    return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, option);
  CURLcode rc = FORWARD_SETOPT(real.curl_easy_setopt, curl, option, ap);
  va_end(ap);
  return rc;
}

CURLcode curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
  if (!pc_curl_load())
    return CURLE_FAILED_INIT;
  va_list ap;
  va_start(ap, info);
  void *p = va_arg(ap, void *);
  va_end(ap);
  return real.curl_easy_getinfo(curl, info, p);
}

const char *curl_easy_strerror(CURLcode code)
{
  return pc_curl_load() ? real.curl_easy_strerror(code) : load_error;
}

char *curl_easy_escape(CURL *handle, const char *string, int length)
{
  return pc_curl_load() ? real.curl_easy_escape(handle, string, length) : NULL;
}

/* ------------------------------------------------------------- multi */

CURLM *curl_multi_init(void)
{
  return pc_curl_load() ? real.curl_multi_init() : NULL;
}

CURLMcode curl_multi_cleanup(CURLM *multi_handle)
{
  return pc_curl_load() ? real.curl_multi_cleanup(multi_handle) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_add_handle(CURLM *multi_handle, CURL *curl_handle)
{
  return pc_curl_load() ? real.curl_multi_add_handle(multi_handle, curl_handle)
                        : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_remove_handle(CURLM *multi_handle, CURL *curl_handle)
{
  return pc_curl_load() ? real.curl_multi_remove_handle(multi_handle, curl_handle)
                        : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_setopt(CURLM *multi_handle, CURLMoption option, ...)
{
  if (!pc_curl_load())
    return CURLM_BAD_HANDLE;
  va_list ap;
  va_start(ap, option);
  CURLMcode rc = FORWARD_SETOPT(real.curl_multi_setopt, multi_handle, option, ap);
  va_end(ap);
  return rc;
}

CURLMcode curl_multi_assign(CURLM *multi_handle, curl_socket_t sockfd, void *sockp)
{
  return pc_curl_load() ? real.curl_multi_assign(multi_handle, sockfd, sockp) : CURLM_BAD_HANDLE;
}

CURLMcode curl_multi_socket_action(CURLM *multi_handle, curl_socket_t s, int ev_bitmask,
                                   int *running_handles)
{
  return pc_curl_load() ? real.curl_multi_socket_action(multi_handle, s, ev_bitmask,
                                                        running_handles)
                        : CURLM_BAD_HANDLE;
}

CURLMsg *curl_multi_info_read(CURLM *multi_handle, int *msgs_in_queue)
{
  if (pc_curl_load())
    return real.curl_multi_info_read(multi_handle, msgs_in_queue);
  if (msgs_in_queue)
    *msgs_in_queue = 0;
  return NULL;
}

const char *curl_multi_strerror(CURLMcode code)
{
  return pc_curl_load() ? real.curl_multi_strerror(code) : load_error;
}

/* --------------------------------------------------------------- URL */

CURLU *curl_url(void)
{
  return pc_curl_load() ? real.curl_url() : NULL;
}

void curl_url_cleanup(CURLU *handle)
{
  if (pc_curl_load())
    real.curl_url_cleanup(handle);
}

CURLUcode curl_url_get(CURLU *handle, CURLUPart what, char **part, unsigned int flags)
{
  if (!pc_curl_load()) {
    if (part)
      *part = NULL;
    return CURLUE_BAD_HANDLE;
  }
  return real.curl_url_get(handle, what, part, flags);
}

CURLUcode curl_url_set(CURLU *handle, CURLUPart what, const char *part, unsigned int flags)
{
  return pc_curl_load() ? real.curl_url_set(handle, what, part, flags) : CURLUE_BAD_HANDLE;
}

char *curl_easy_unescape(CURL *handle, const char *string, int length, int *outlength)
{
  return pc_curl_load() ? real.curl_easy_unescape(handle, string, length, outlength) : NULL;
}

/* ------------------------------------------------------------- share */

CURLSH *curl_share_init(void)
{
  return pc_curl_load() ? real.curl_share_init() : NULL;
}

/* pacer passes only CURLSHOPT_SHARE and CURLSHOPT_UNSHARE, which take a
 * long. */
CURLSHcode curl_share_setopt(CURLSH *share, CURLSHoption option, ...)
{
  if (!pc_curl_load())
    return CURLSHE_INVALID;
  va_list ap;
  va_start(ap, option);
  long v = va_arg(ap, long);
  va_end(ap);
  assert(option == CURLSHOPT_SHARE || option == CURLSHOPT_UNSHARE);
  return real.curl_share_setopt(share, option, v);
}

CURLSHcode curl_share_cleanup(CURLSH *share)
{
  return pc_curl_load() ? real.curl_share_cleanup(share) : CURLSHE_INVALID;
}

/* -------------------------------------------------------------- mime */

curl_mime *curl_mime_init(CURL *easy)
{
  return pc_curl_load() ? real.curl_mime_init(easy) : NULL;
}

void curl_mime_free(curl_mime *mime)
{
  if (pc_curl_load())
    real.curl_mime_free(mime);
}

curl_mimepart *curl_mime_addpart(curl_mime *mime)
{
  return pc_curl_load() ? real.curl_mime_addpart(mime) : NULL;
}

CURLcode curl_mime_name(curl_mimepart *part, const char *name)
{
  return pc_curl_load() ? real.curl_mime_name(part, name) : CURLE_FAILED_INIT;
}

CURLcode curl_mime_filename(curl_mimepart *part, const char *filename)
{
  return pc_curl_load() ? real.curl_mime_filename(part, filename) : CURLE_FAILED_INIT;
}

CURLcode curl_mime_type(curl_mimepart *part, const char *mimetype)
{
  return pc_curl_load() ? real.curl_mime_type(part, mimetype) : CURLE_FAILED_INIT;
}

CURLcode curl_mime_data(curl_mimepart *part, const char *data, size_t datasize)
{
  return pc_curl_load() ? real.curl_mime_data(part, data, datasize) : CURLE_FAILED_INIT;
}

CURLcode curl_mime_filedata(curl_mimepart *part, const char *filename)
{
  return pc_curl_load() ? real.curl_mime_filedata(part, filename) : CURLE_FAILED_INIT;
}

/* ------------------------------------------------------- socketpair */

/* libcurl makes socket pairs with socketpair(AF_UNIX, SOCK_STREAM, 0) and
 * no SOCK_CLOEXEC, and offers no hook for them: the multi handle's wake-up
 * pair (open as long as the session) and the threaded resolver's pair (one
 * per name resolution). Every program pacer starts afterwards would inherit
 * them. This definition, exported from the executable (CMakeLists.txt:
 * --export-dynamic-symbol), comes first in the dynamic loader's search
 * order, so libcurl's (and libuv's) calls bind to it rather than to libc's:
 * every socket pair in pacer is close-on-exec. That is pacer's rule for all
 * its descriptors (libuv asks for SOCK_CLOEXEC itself; a program gets its
 * standard streams by dup2, which clears the flag on the copy). */
__attribute__((visibility("default"))) int socketpair(int domain, int type, int protocol,
                                                      int sv[2])
{
  return (int)syscall(SYS_socketpair, domain, type | SOCK_CLOEXEC, protocol, sv);
}
