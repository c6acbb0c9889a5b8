/* curlshim.h: libcurl, loaded when it is first needed.
 *
 * pacer is not linked to libcurl. Debian's libcurl pulls in some 35 shared
 * libraries (OpenSSL, GnuTLS, Kerberos, LDAP, SSH, ...), and mapping them
 * was most of the start-up of a workflow that makes no HTTP request at all.
 * curlshim.c defines every curl_* function pacer calls, with the prototypes
 * of <curl/curl.h>; the first call dlopen()s libcurl.so.4 (or the file named
 * by the environment variable PACER_LIBCURL, for tests) and each function
 * forwards to the real one. The rest of pacer includes <curl/curl.h> and
 * calls libcurl as usual.
 *
 * If libcurl cannot be loaded, curl_global_init() returns CURLE_FAILED_INIT
 * (session.c then creates no session and the step fails), the constructors
 * return NULL and the rest return error codes or do nothing: none of them
 * can be reached with a handle, since no handle could be made. */
#ifndef PACER_CURLSHIM_H
#define PACER_CURLSHIM_H

#include <stdbool.h>

/* The soname loaded unless PACER_LIBCURL names another file. */
#define PC_LIBCURL_SONAME "libcurl.so.4"

/* Loads libcurl now if no curl_* function has yet. Returns true if it is
 * loaded. */
bool pc_curl_load(void);

/* Whether libcurl has been loaded (without trying to load it). */
bool pc_curl_loaded(void);

/* Why loading failed: "http: cannot load libcurl (SONAME): DLERROR"; NULL
 * if it has not failed (not tried yet, or loaded). */
const char *pc_curl_load_error(void);

#endif
