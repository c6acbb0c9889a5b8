/* failure.c: why a transfer failed, as a kind (network, timeout, error)
 * and a sentence that starts with the method and URL, from libcurl's
 * CURLcode, the errno it recorded and what the request itself noticed. */
#include "http/internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *reason(struct pc_http_req *r, CURLcode rc)
{
  return r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
}

/* EMFILE or ENFILE if running out of descriptors made the transfer fail,
 * else 0: what pc_http__on_open_socket met, or, for a failure libcurl reports as
 * "could not connect" or "could not resolve" without saying why (its
 * resolver's socket pair could not be made, say), what making a
 * descriptor gives now (a probe on this failure path only). */
static int fd_exhaustion(const struct pc_http_req *r, CURLcode rc)
{
  int e = r->open_errno;
  if (!e && (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0)
      close(fd);
    else
      e = errno;
  }
  return e == EMFILE || e == ENFILE ? e : 0;
}

/* The errno of this transfer's failure as libcurl recorded it, or 0.
 * libcurl keeps the last one a handle met for the handle's lifetime
 * (CURLINFO_OS_ERRNO is never reset, not even by curl_easy_reset), so
 * only handles that have none are recycled (req_finish): a value here is
 * this transfer's. */
static long fresh_os_errno(const struct pc_http_req *r)
{
  long oserr = 0;
  curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
  return oserr;
}

/* Classifies a failed transfer and says what happened, in words. */
enum pc_fail pc_http__describe_failure(struct pc_http_req *r, CURLcode rc, struct pc_buf *m)
{
  const char *url = r->info.url ? r->info.url : r->url;
  char *hp = pc_http__host_port(url);
  enum pc_fail f = PC_FAIL_NETWORK;
  int fd_err = 0;
  pc_buf_printf(m, "%s %s: ", r->method, r->url);
  if (r->nredirects > 0)
    pc_buf_printf(m, "redirected to %s: ", url);
  if (r->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
    pc_buf_printf(m, "response larger than %lld bytes (max_response_bytes)",
                  (long long)r->max_bytes);
    f = PC_FAIL_ERROR;
  } else if (r->write_errno) {
    pc_buf_printf(m, "cannot write \"%s\": %s", r->save_to, strerror(r->write_errno));
    f = PC_FAIL_ERROR;
  } else if (r->no_memory) {
    pc_buf_printf(m, "the response from %s does not fit in memory (%lld bytes received)", hp,
                  (long long)r->received);
    f = PC_FAIL_ERROR;
  } else if (r->hdrs_too_big) {
    pc_buf_printf(m, "the response headers from %s are larger than %zu KiB", hp,
                  HEADERS_MAX >> 10);
    f = PC_FAIL_ERROR;
  } else if (rc == CURLE_OUT_OF_MEMORY && r->in_headers) {
    /* libcurl's buffer for one header line is capped (CURL_MAX_HTTP_HEADER)
     * and it reports passing the cap as running out of memory. */
    pc_buf_printf(m, "the response headers from %s are too large: a header line longer than "
                  "%d KiB", hp, CURL_MAX_HTTP_HEADER >> 10);
    f = PC_FAIL_ERROR;
  } else if ((fd_err = fd_exhaustion(r, rc)) != 0) {
    int e = fd_err;
    struct rlimit rl;
    if (e == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
      pc_buf_printf(m, "too many open files (EMFILE): cannot open a connection to %s; pacer may "
                    "open %llu descriptors (ulimit -n): raise the limit, or lower concurrency "
                    "or max_connections", hp, (unsigned long long)rl.rlim_cur);
    else
      pc_buf_printf(m, "cannot open a connection to %s: %s (%s)", hp, strerror(e),
                    e == EMFILE ? "EMFILE" : "ENFILE: the system's table of open files is full");
    f = PC_FAIL_ERROR;
  } else if (rc == CURLE_UNSUPPORTED_PROTOCOL && r->info.status <= 0) {
    /* Only http:// and https:// URLs get this far: the reply itself was
     * not HTTP (libcurl takes it for HTTP/0.9, which it refuses). */
    pc_buf_printf(m, "%s did not reply with HTTP (its reply does not start with an HTTP status "
                  "line: not a web server, or an https:// server asked with http://?)", hp);
    f = PC_FAIL_ERROR;
  } else {
    switch (rc) {
    case CURLE_COULDNT_CONNECT: {
      long oserr = fresh_os_errno(r);
      if (oserr == ECONNREFUSED)
        pc_buf_printf(m, "connection refused to %s", hp);
      else if (oserr == ENETUNREACH || oserr == EHOSTUNREACH)
        pc_buf_printf(m, "%s is unreachable (%s)", hp, strerror((int)oserr));
      else
        pc_buf_printf(m, "could not connect to %s: %s", hp, reason(r, rc));
      break;
    }
    case CURLE_COULDNT_RESOLVE_HOST: {
      char *host = pc_http__host_only(url);
      pc_buf_printf(m, "could not resolve host %s", host);
      free(host);
      break;
    }
    case CURLE_OPERATION_TIMEDOUT: {
      f = PC_FAIL_TIMEOUT;
      curl_off_t conn = 0;
      curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &conn);
      char dur[32];
      if (conn == 0 && r->connect_timeout_ms >= 0) {
        pc_format_duration(r->connect_timeout_ms, dur, sizeof dur);
        pc_buf_printf(m, "could not connect to %s within %s (connect_timeout)", hp, dur);
      } else if (r->timeout_ms > 0) {
        pc_format_duration(r->timeout_ms, dur, sizeof dur);
        pc_buf_printf(m, "timed out after %s", dur);
      } else {
        pc_buf_printf(m, "timed out: %s", reason(r, rc));
      }
      break;
    }
    case CURLE_PEER_FAILED_VERIFICATION:
      pc_buf_printf(m, "TLS certificate verification failed for %s: %s (use ca_file to trust "
                    "a private CA)", hp, reason(r, rc));
      break;
    case CURLE_SSL_CONNECT_ERROR:
      pc_buf_printf(m, "TLS handshake with %s failed: %s", hp, reason(r, rc));
      break;
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
      pc_buf_printf(m, "TLS setup failed: %s", reason(r, rc));
      f = PC_FAIL_ERROR;
      break;
    case CURLE_GOT_NOTHING:
      pc_buf_printf(m, "%s closed the connection without sending a response", hp);
      break;
    case CURLE_RECV_ERROR:
      if (fresh_os_errno(r)) /* the socket failed (a reset, say) */
        pc_buf_printf(m, "the connection to %s failed while receiving the response: %s", hp,
                      reason(r, rc));
      else /* libcurl could not parse what arrived */
        pc_buf_printf(m, "%s sent an invalid HTTP response: %s", hp, reason(r, rc));
      break;
    case CURLE_SEND_ERROR:
      pc_buf_printf(m, "the connection to %s failed while sending the request: %s", hp,
                    reason(r, rc));
      break;
    case CURLE_PARTIAL_FILE:
      pc_buf_printf(m, "the response from %s ended early: %s", hp, reason(r, rc));
      break;
    case CURLE_URL_MALFORMAT:
      pc_buf_printf(m, "invalid URL: %s", reason(r, rc));
      f = PC_FAIL_ERROR;
      break;
    case CURLE_UNSUPPORTED_PROTOCOL:
      pc_buf_printf(m, "unsupported protocol (only http and https): %s", reason(r, rc));
      f = PC_FAIL_ERROR;
      break;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      pc_buf_printf(m, "HTTP/2 error with %s: %s", hp, reason(r, rc));
      break;
    case CURLE_WEIRD_SERVER_REPLY:
      pc_buf_printf(m, "%s sent an invalid HTTP response: %s", hp, reason(r, rc));
      break;
    case CURLE_OUT_OF_MEMORY:
      pc_buf_printf(m, "out of memory (libcurl: %s)", reason(r, rc));
      f = PC_FAIL_ERROR;
      break;
    default:
      pc_buf_printf(m, "%s (%s)", curl_easy_strerror(rc), reason(r, rc));
      break;
    }
  }
  free(hp);
  return f;
}
