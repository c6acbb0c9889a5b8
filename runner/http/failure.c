/* failure.c: a failed transfer in words (see failure.h). The checks run
 * in order: what the request's own callbacks noticed first (libcurl only
 * knows that a callback refused the data), then running out of
 * descriptors (which libcurl reports as an ordinary connect or resolve
 * failure), then libcurl's code, with its errno telling a reset from a
 * malformed response and a refusal from an unreachable network. */
#include "http/failure.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/rules.h"

static const char *reason(const struct pc_http_failure *f)
{
  return f->errbuf && f->errbuf[0] ? f->errbuf : curl_easy_strerror(f->rc);
}

/* EMFILE or ENFILE if running out of descriptors made the transfer fail,
 * else 0: what the open-socket callback met, or, for a failure libcurl
 * reports as "could not connect" or "could not resolve" without saying why
 * (its resolver's socket pair could not be made, say), what making a
 * descriptor gives now (a probe on this failure path only). */
static int fd_exhaustion(const struct pc_http_failure *f)
{
  int e = f->open_errno;
  if (!e && (f->rc == CURLE_COULDNT_CONNECT || f->rc == CURLE_COULDNT_RESOLVE_HOST)) {
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0)
      close(fd);
    else
      e = errno;
  }
  return e == EMFILE || e == ENFILE ? e : 0;
}

enum pc_fail pc_http_failure_describe(const struct pc_http_failure *f, struct pc_buf *m)
{
  const char *url = f->final_url ? f->final_url : f->url;
  char *hp = pc_http_url_host_port(url);
  enum pc_fail kind = PC_FAIL_NETWORK;
  int fd_err = 0;
  pc_buf_printf(m, "%s %s: ", f->method, f->url);
  if (f->nredirects > 0)
    pc_buf_printf(m, "redirected to %s: ", url);
  if (f->too_big || f->rc == CURLE_FILESIZE_EXCEEDED) {
    pc_buf_printf(m, "response larger than %lld bytes (max_response_bytes)",
                  (long long)f->max_bytes);
    kind = PC_FAIL_ERROR;
  } else if (f->write_errno) {
    pc_buf_printf(m, "cannot write \"%s\": %s", f->save_to, strerror(f->write_errno));
    kind = PC_FAIL_ERROR;
  } else if (f->read_errno) {
    pc_buf_printf(m, "cannot read \"%s\" (body_file): %s", f->body_file,
                  strerror(f->read_errno));
    kind = PC_FAIL_ERROR;
  } else if (f->no_memory) {
    pc_buf_printf(m, "the response from %s does not fit in memory (%lld bytes received)", hp,
                  (long long)f->received);
    kind = PC_FAIL_ERROR;
  } else if (f->headers_too_big) {
    pc_buf_printf(m, "the response headers from %s are larger than %zu KiB", hp,
                  f->header_max >> 10);
    kind = PC_FAIL_ERROR;
  } else if (f->rc == CURLE_OUT_OF_MEMORY && f->in_headers) {
    /* libcurl's buffer for one header line is capped (CURL_MAX_HTTP_HEADER)
     * and it reports passing the cap as running out of memory. */
    pc_buf_printf(m, "the response headers from %s are too large: a header line longer than "
                  "%d KiB", hp, CURL_MAX_HTTP_HEADER >> 10);
    kind = PC_FAIL_ERROR;
  } else if ((fd_err = fd_exhaustion(f)) != 0) {
    int e = fd_err;
    struct rlimit rl;
    if (e == EMFILE && getrlimit(RLIMIT_NOFILE, &rl) == 0)
      pc_buf_printf(m, "too many open files (EMFILE): cannot open a connection to %s; pacer may "
                    "open %llu descriptors (ulimit -n): raise the limit, or lower concurrency "
                    "or max_connections", hp, (unsigned long long)rl.rlim_cur);
    else
      pc_buf_printf(m, "cannot open a connection to %s: %s (%s)", hp, strerror(e),
                    e == EMFILE ? "EMFILE" : "ENFILE: the system's table of open files is full");
    kind = PC_FAIL_ERROR;
  } else if (f->rc == CURLE_UNSUPPORTED_PROTOCOL && f->status <= 0) {
    /* Only http:// and https:// URLs get this far: the reply itself was
     * not HTTP (libcurl takes it for HTTP/0.9, which it refuses). */
    pc_buf_printf(m, "%s did not reply with HTTP (its reply does not start with an HTTP status "
                  "line: not a web server, or an https:// server asked with http://?)", hp);
    kind = PC_FAIL_ERROR;
  } else {
    switch (f->rc) {
    case CURLE_COULDNT_CONNECT: {
      long oserr = f->os_errno;
      if (oserr == ECONNREFUSED)
        pc_buf_printf(m, "connection refused to %s", hp);
      else if (oserr == ENETUNREACH || oserr == EHOSTUNREACH)
        pc_buf_printf(m, "%s is unreachable (%s)", hp, strerror((int)oserr));
      else
        pc_buf_printf(m, "could not connect to %s: %s", hp, reason(f));
      break;
    }
    case CURLE_COULDNT_RESOLVE_HOST: {
      char *host = pc_http_url_host(url);
      pc_buf_printf(m, "could not resolve host %s", host);
      free(host);
      break;
    }
    case CURLE_OPERATION_TIMEDOUT: {
      kind = PC_FAIL_TIMEOUT;
      char dur[32];
      if (!f->connected && f->connect_timeout_ms >= 0) {
        pc_format_duration(f->connect_timeout_ms, dur, sizeof dur);
        pc_buf_printf(m, "could not connect to %s within %s (connect_timeout)", hp, dur);
      } else if (f->timeout_ms > 0) {
        pc_format_duration(f->timeout_ms, dur, sizeof dur);
        pc_buf_printf(m, "timed out after %s", dur);
      } else {
        pc_buf_printf(m, "timed out: %s", reason(f));
      }
      break;
    }
    case CURLE_PEER_FAILED_VERIFICATION:
      pc_buf_printf(m, "TLS certificate verification failed for %s: %s (use ca_file to trust "
                    "a private CA)", hp, reason(f));
      break;
    case CURLE_SSL_CONNECT_ERROR:
      pc_buf_printf(m, "TLS handshake with %s failed: %s", hp, reason(f));
      break;
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
      pc_buf_printf(m, "TLS setup failed: %s", reason(f));
      kind = PC_FAIL_ERROR;
      break;
    case CURLE_GOT_NOTHING:
      pc_buf_printf(m, "%s closed the connection without sending a response", hp);
      break;
    case CURLE_RECV_ERROR:
      if (f->os_errno) /* the socket failed (a reset, say) */
        pc_buf_printf(m, "the connection to %s failed while receiving the response: %s", hp,
                      reason(f));
      else /* libcurl could not parse what arrived */
        pc_buf_printf(m, "%s sent an invalid HTTP response: %s", hp, reason(f));
      break;
    case CURLE_SEND_ERROR:
      pc_buf_printf(m, "the connection to %s failed while sending the request: %s", hp,
                    reason(f));
      break;
    case CURLE_PARTIAL_FILE:
      pc_buf_printf(m, "the response from %s ended early: %s", hp, reason(f));
      break;
    case CURLE_URL_MALFORMAT:
      pc_buf_printf(m, "invalid URL: %s", reason(f));
      kind = PC_FAIL_ERROR;
      break;
    case CURLE_UNSUPPORTED_PROTOCOL:
      pc_buf_printf(m, "unsupported protocol (only http and https): %s", reason(f));
      kind = PC_FAIL_ERROR;
      break;
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      pc_buf_printf(m, "HTTP/2 error with %s: %s", hp, reason(f));
      break;
    case CURLE_WEIRD_SERVER_REPLY:
      pc_buf_printf(m, "%s sent an invalid HTTP response: %s", hp, reason(f));
      break;
    case CURLE_OUT_OF_MEMORY:
      pc_buf_printf(m, "out of memory (libcurl: %s)", reason(f));
      kind = PC_FAIL_ERROR;
      break;
    default:
      pc_buf_printf(m, "%s (%s)", curl_easy_strerror(f->rc), reason(f));
      break;
    }
  }
  free(hp);
  return kind;
}
