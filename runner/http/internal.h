/* internal.h: what the files of runner/http share and nobody else sees:
 * the session and request structs, the request options read from Lua, and
 * the functions one file of the folder calls in another (pc_http__ names).
 * The public interface is http.h. */
#ifndef PACER_HTTP_INTERNAL_H
#define PACER_HTTP_INTERNAL_H

#include <curl/curl.h>

#include "http/http.h"
#include "base/outfile.h"
#include "base/util.h"

#define FREE_EASY_MAX 64            /* idle easy handles kept for reuse */
#define HEADERS_MAX ((size_t)256 << 10) /* response header bytes accepted (below libcurl's own limit) */
#define SAVE_HEAD_MAX 4096          /* with save_to: body bytes kept for messages */
#define EXCERPT_MAX 200             /* body bytes shown in failure messages */
#define LABELS_MAX 8                /* step labels kept by a session */

struct pc_http_session {
  uv_loop_t *loop; /* borrowed */
  CURLM *multi;
  uv_timer_t timer;
  bool timer_closing;
  bool in_timer; /* inside on_loop_timer's curl_multi_socket_action */
  struct sock_ctx **socks;   /* by descriptor: every socket context not yet closing */
  size_t nsocks;             /* size of socks */
  struct pc_http_req *live;  /* requests added to the multi handle */
  CURL *idle[FREE_EASY_MAX]; /* recycled easy handles */
  bool idle_primed[FREE_EASY_MAX]; /* the constant options are still set */
  size_t nidle;
  int pending_closes;
  bool closing;
  struct pc_http_stats stats;
  char *last_prefix; /* "scheme://authority" of the URL last counted, as written */
  size_t last_host;  /* its entry in stats.hosts */
  char **warned; /* hosts already warned about insecure: true */
  size_t nwarned;
  /* pc_step_label of the steps that made requests lately (the steps are
   * the run's, and live as long as the session) */
  struct {
    const struct pc_step *step; /* borrowed */
    char *label;
  } labels[LABELS_MAX];
  size_t nextlabel;
};

struct resp_info {
  long status;
  const char *url; /* effective URL (borrowed from the easy handle: valid until it is recycled) */
  long version;
  long connects;
  curl_off_t t_dns, t_connect, t_tls, t_start, t_total; /* microseconds since start */
  curl_off_t down, up;
  long header_bytes, request_bytes;
};

/* A redirect that was followed: the status and the URL that answered it
 * (kept for the result's redirect chain). */
struct redirect {
  int status;
  char *url;
};

/* Timings of the responses of a request before its last one (redirects),
 * in microseconds, added to the last one's in the result. */
struct hop_sums {
  curl_off_t dns, connect, tls, total;
};

struct pc_http_req {
  struct pc_http_session *s; /* borrowed */
  bool plain; /* only the options of every request are set on easy (recycle_easy) */
  struct pc_http_req *prev, *next;
  CURL *easy;
  struct curl_slist *hdr_list;
  char *method, *url, *label;
  char errbuf[CURL_ERROR_SIZE];
  int open_errno; /* why on_open_socket could not make a socket; 0: it could */
  bool non_idempotent;
  int64_t max_bytes, received;
  bool too_big;
  bool no_memory;   /* the body (or headers) could not be stored */
  bool hdrs_too_big; /* the response headers passed HEADERS_MAX */
  bool in_headers;  /* a status line arrived, the end of its header block not yet */
  int sends;        /* requests libcurl sent (on_prereq): 1 + redirects followed + retries */
  struct pc_buf body;  /* the response body (not with save_to) */
  struct pc_buf hdrs;  /* header lines of the latest response */
  /* save_to */
  char *save_to;
  struct pc_outfile out; /* open (fd >= 0) while the body streams into save_to */
  int write_errno;
  bool saved;
  const struct pc_status_range *save_ok; /* borrowed */
  size_t nsave_ok;
  pc_http_done_cb cb;
  void *data;
  double timeout_ms, connect_timeout_ms;
  struct resp_info info;
  /* A request may have reached a server: libcurl got a connection for it
   * and was about to send (CURLOPT_PREREQFUNCTION). Until then a failure
   * provably sent nothing, and any method may be retried. */
  bool sent;
  /* Redirects are followed here, not by libcurl (follow_redirect). */
  bool follow;      /* follow_redirects */
  bool head;        /* the method is HEAD: responses have no body */
  bool discard;     /* its body belongs to a redirect we follow: dropped */
  bool as_get;      /* a redirect turned the method into GET without a body */
  bool has_body;    /* the request (still) sends a body */
  struct redirect *redirects; /* the redirects followed, in order */
  int nredirects;
  struct hop_sums before; /* timings of the responses before the last */
};

struct pc_http__spec {
  char *method;
  char *url;
  struct curl_slist *hdrs;
  bool has_ua, has_ctype, has_expect;
  char *body;
  size_t body_len;
  bool has_body;
  const char *body_ctype; /* default Content-Type for the body */
  double connect_timeout_ms, timeout_ms;
  bool follow;
  long version;
  bool insecure;
  char *ca_file;
  int64_t max_bytes;
  char *save_to;
};

/* spec.c */
int pc_http__load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v);
char *pc_http__parse_spec(struct pc_lua *h, CURL *e, int tbl, bool allow_timeout,
                          struct pc_http__spec *sp);
void pc_http__spec_free(struct pc_http__spec *sp);

/* rules.c */
bool pc_http__valid_header_name(const char *s, size_t len);
bool pc_http__has_crlf(const char *s, size_t len);
bool pc_http__is_redirect(long status);
int pc_http__status_of(const struct pc_buf *hdrs);
char *pc_http__host_port(const char *url);
char *pc_http__host_only(const char *url);
char *pc_http__origin(const char *url);
bool pc_http__status_ok(const struct pc_http_req *r, long status);
const char *pc_http__find_header(const struct pc_buf *hdrs, const char *name, size_t *len);
double pc_http__retry_after(const struct pc_buf *hdrs);
const char *pc_http__version_name(long v);
bool pc_http__header_is(const char *line, const char *name);
bool pc_http__body_header(const char *line);
bool pc_http__holds_secret(const char *line);
bool pc_http__same_origin(const char *a, const char *b);

/* session.c */
curl_socket_t pc_http__on_open_socket(void *clientp, curlsocktype purpose,
                                      struct curl_sockaddr *a);
int pc_http__on_close_socket(void *clientp, curl_socket_t fd);
void pc_http__recycle_easy(struct pc_http_session *s, CURL *e, bool primed);
void pc_http__count_response(struct pc_http_session *s, const struct pc_http_req *r,
                             bool failed);

/* request.c */
void pc_http__req_free(struct pc_http_req *r);
void pc_http__req_finish(struct pc_http_req *r, CURLcode rc);

/* failure.c */
enum pc_fail pc_http__describe_failure(struct pc_http_req *r, CURLcode rc, struct pc_buf *m);

/* result.c */
void pc_http__append_excerpt(struct pc_buf *b, const char *body, size_t body_len, size_t max);

#endif
