/* http.c: the `http` action, and the HTTP session it shares with the Lua
 * API: one libcurl multi handle per run, driven by the run's libuv loop.
 *
 * The glue follows curl's multi_socket model (docs/examples/multi-uv.c, with
 * its known gap fixed): libcurl tells us which sockets to watch through the
 * socket callback (one uv_poll_t context per socket, attached with
 * curl_multi_assign) and when to wake it through the timer callback (one
 * uv_timer_t). Loop events go back to libcurl with curl_multi_socket_action,
 * and after EVERY call the finished transfers are read with
 * curl_multi_info_read. Inside libcurl's callbacks we only record state:
 * requests complete, start and are cancelled from loop callbacks, never
 * from inside libcurl.
 *
 * A request (struct pc_http_req) owns its easy handle while it runs; easy
 * handles are recycled through a small free list (curl_easy_reset), while
 * connections live in the multi handle's cache, so they are reused by every
 * later request of the run whatever step makes it. Over TLS, HTTP/2 is
 * negotiated and multiplexed (CURLPIPE_MULTIPLEX, CURLOPT_PIPEWAIT).
 *
 * Ownership: the session owns its live requests, its socket contexts and
 * the idle easy handles. A request is freed right after its completion
 * callback returns, or at once by pc_http_cancel. The session itself is
 * freed in the close callback of its last uv handle (pending_closes).
 *
 * Sockets: libcurl owns every descriptor it uses, and pacer's close-socket
 * callback is how it closes most of them; libuv only ever watches one
 * through a poll that pacer closes before the descriptor can be closed or
 * its number reused. The rule that makes this hold on every path (open,
 * connect, cancel while connecting or queued, reuse, close, teardown):
 * libcurl (7.88) closes a socket that is still connecting, or lost the
 * happy-eyeballs race, with a plain close() and tells us CURL_POLL_REMOVE
 * only afterwards; so a socket's poll outlives CURL_POLL_REMOVE only once
 * libcurl has asked to read it, which it does only for a connected socket
 * that it will close through the callback. Every other poll is closed on
 * CURL_POLL_REMOVE, still inside the libcurl call that closed the
 * descriptor, before anything else can take its number. Details at struct
 * sock_ctx; docs/http.md, "Sockets". */
#include "http/http.h"

#include "http/curlshim.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>

#include "model/action.h"
#include "script/json.h"
#include "base/log.h"
#include "base/outfile.h"
#include "base/util.h"

#define FREE_EASY_MAX 64            /* idle easy handles kept for reuse */
#define HEADERS_MAX ((size_t)256 << 10) /* response header bytes accepted (below libcurl's own limit) */
#define SAVE_HEAD_MAX 4096          /* with save_to: body bytes kept for messages */
#define EXCERPT_MAX 200             /* body bytes shown in failure messages */
#define LABELS_MAX 8                /* step labels kept by a session */

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                      "OPTIONS", "TRACE"};
static const char *const shorthands[] = {"get", "post", "put", "patch", "delete", "head"};

/* ============================================================ load time */

static const char *const http_keys[] = {
    "method",  "url",  "get",  "post",  "put", "patch", "delete", "head",
    "query",   "headers", "body", "json", "form", "connect_timeout", "follow_redirects",
    "http_version", "insecure", "ca_file", "max_response_bytes", "save_to"};

static const char *const defaults_keys[] = {
    "query",    "headers",          "connect_timeout",    "follow_redirects",
    "http_version", "insecure",     "ca_file",            "max_response_bytes",
    "max_connections", "max_connections_per_host"};

/* Keys of a request that defaults.http never supplies. */
static const char *const request_only[] = {"method", "url", "get",  "post", "put",  "patch",
                                           "delete", "head", "body", "json", "form", "save_to",
                                           "max_connections", "max_connections_per_host"};

static bool in_list(const char *s, const char *const *list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

static bool is_tchar(unsigned char ch)
{
  /* (strchr finds the terminator: a NUL byte is not a token character) */
  return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static bool valid_header_name(const char *s, size_t len)
{
  if (len == 0)
    return false;
  for (size_t i = 0; i < len; i++)
    if (!is_tchar((unsigned char)s[i]))
      return false;
  return true;
}

static bool has_crlf(const char *s, size_t len)
{
  return memchr(s, '\r', len) || memchr(s, '\n', len) || memchr(s, '\0', len);
}

/* The value is known only at run time. */
static bool dynamic(const struct pc_tmpl *t)
{
  return t && (t->kind == PC_T_EXPR || t->kind == PC_T_INTERP);
}

static bool plain_scalar(const struct pc_node *n)
{
  return n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) != PC_SCALAR_NULL;
}

static const char *kind_of(const struct pc_node *n)
{
  return pc_node_kind_name(n);
}

static int check_text(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t,
                      const char *what)
{
  if (dynamic(t) || plain_scalar(n))
    return 0;
  pc_load_error(c, n, "http.%s: expected text, got %s", what, kind_of(n));
  return -1;
}

static int check_bool(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t,
                      const char *what)
{
  if (dynamic(t) || (n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) == PC_SCALAR_BOOL))
    return 0;
  pc_load_error(c, n, "http.%s: expected true or false, got %s", what, kind_of(n));
  return -1;
}

static int check_url(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t,
                     const char *what)
{
  if (check_text(c, n, t, what) != 0)
    return -1;
  char *w = pc_asprintf("http.%s: the URL", what);
  int nul = pc_load_no_nul(c, n, w, "a URL");
  free(w);
  if (nul != 0)
    return -1;
  if (dynamic(t))
    return 0;
  if (n->len == 0) {
    pc_load_error(c, n, "http.%s: the URL is empty", what);
    return -1;
  }
  if (strncasecmp(n->str, "http://", 7) != 0 && strncasecmp(n->str, "https://", 8) != 0) {
    pc_load_error(c, n, "http.%s: \"%s\" is not an http:// or https:// URL", what, n->str);
    return -1;
  }
  return 0;
}

/* query and form: a map of scalars or lists of scalars. */
static int check_pairs(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t,
                       const char *what)
{
  if (t && t->kind == PC_T_EXPR)
    return 0;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "http.%s: expected a map of names to values, got %s", what, kind_of(n));
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *v = n->items[i];
    bool ok = plain_scalar(v);
    if (v->kind == PC_NODE_SEQ) {
      ok = true;
      for (size_t j = 0; j < v->n; j++)
        ok = ok && v->items[j]->kind == PC_NODE_SCALAR;
    }
    if (!ok) {
      pc_load_error(c, v, "http.%s: the value of %s must be text or a list of texts, got %s",
                    what, n->keys[i]->str, kind_of(v));
      bad = -1;
    }
  }
  return bad;
}

static int check_headers(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (t && t->kind == PC_T_EXPR)
    return 0;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "http.headers: expected a map of header names to values, got %s",
                  kind_of(n));
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (!valid_header_name(k->str, k->len)) {
      pc_load_error(c, k, "http.headers: \"%s\" is not a valid header name", k->str);
      bad = -1;
    }
    if (!plain_scalar(v) && !dynamic(vt)) {
      pc_load_error(c, v, "http.headers: the value of %s must be text, got %s", k->str,
                    kind_of(v));
      bad = -1;
      continue;
    }
    /* Literal text must not break the header block; evaluated parts are
     * checked when the request is built. */
    bool crlf = false;
    if (vt && vt->kind == PC_T_INTERP) {
      for (size_t j = 0; j < vt->u.interp.n; j++) {
        const struct pc_tmpl_part *p = &vt->u.interp.parts[j];
        if (p->lit && has_crlf(p->lit, p->lit_len))
          crlf = true;
      }
    } else if (!dynamic(vt) && v->kind == PC_NODE_SCALAR) {
      crlf = has_crlf(v->str, v->len);
    }
    if (v->kind == PC_NODE_SCALAR && memchr(v->str, '\0', v->len)) {
      pc_load_error(c, v, "http.headers: the value of %s contains a NUL byte (\\0), which "
                    "would cut the header short", k->str);
      bad = -1;
    } else if (crlf) {
      pc_load_error(c, v, "http.headers: the value of %s contains a line break (CR or LF), "
                    "which would split the header", k->str);
      bad = -1;
    }
  }
  return bad;
}

static int check_method(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (check_text(c, n, t, "method") != 0 || pc_load_no_nul(c, n, "http.method", "a method"))
    return -1;
  if (dynamic(t))
    return 0;
  char up[16];
  size_t len = n->len < sizeof up - 1 ? n->len : sizeof up - 1;
  for (size_t i = 0; i < len; i++)
    up[i] = (char)toupper((unsigned char)n->str[i]);
  up[len] = '\0';
  if (n->len < sizeof up && in_list(up, methods, PC_ARRAY_SIZE(methods)))
    return 0;
  pc_load_error(c, n, "http.method: unknown method \"%s\" (expected one of GET, HEAD, POST, PUT, "
                "PATCH, DELETE, OPTIONS, TRACE)", n->str);
  return -1;
}

static int check_version(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (dynamic(t))
    return 0;
  if (n->kind == PC_NODE_SCALAR) {
    static const char *const ok[] = {"auto", "1.0", "1.1", "2", "2.0"};
    if (in_list(n->str, ok, PC_ARRAY_SIZE(ok)))
      return 0;
  }
  pc_load_error(c, n, "http.http_version: expected auto, 1.0, 1.1 or 2, got %s",
                n->kind == PC_NODE_SCALAR ? n->str : kind_of(n));
  return -1;
}

static int check_int(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t,
                     const char *what, long long min, long long max, bool static_only)
{
  if (dynamic(t) && !static_only)
    return 0;
  if (t && t->kind == PC_T_INT && t->u.i >= min && t->u.i <= max)
    return 0;
  if (dynamic(t))
    pc_load_error(c, n, "http.%s: expected a plain number (it applies to the whole run, so it "
                  "cannot be an expression)", what);
  else
    pc_load_error(c, n, "http.%s: expected a whole number from %lld to %lld, got %s", what, min,
                  max, n->kind == PC_NODE_SCALAR ? n->str : kind_of(n));
  return -1;
}

/* The options shared by a step's http map and defaults.http. */
static int check_common(struct pc_load_ctx *c, const struct pc_node *map, const struct pc_tmpl *t)
{
  int bad = 0;
  for (size_t i = 0; i < map->n; i++) {
    const char *k = map->keys[i]->str;
    const struct pc_node *v = map->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (strcmp(k, "query") == 0) {
      bad |= check_pairs(c, v, vt, "query");
    } else if (strcmp(k, "headers") == 0) {
      bad |= check_headers(c, v, vt);
    } else if (strcmp(k, "connect_timeout") == 0) {
      double ms;
      if (!dynamic(vt) && (v->kind != PC_NODE_SCALAR || pc_parse_duration(v->str, &ms) != 0)) {
        pc_load_error(c, v, "http.connect_timeout: expected a duration like \"5s\" or "
                      "\"250ms\", got %s", v->kind == PC_NODE_SCALAR ? v->str : kind_of(v));
        bad = -1;
      }
    } else if (strcmp(k, "follow_redirects") == 0 || strcmp(k, "insecure") == 0) {
      bad |= check_bool(c, v, vt, k);
    } else if (strcmp(k, "http_version") == 0) {
      bad |= check_version(c, v, vt);
    } else if (strcmp(k, "ca_file") == 0 || strcmp(k, "save_to") == 0) {
      bad |= check_text(c, v, vt, k);
      char *w = pc_asprintf("http.%s", k);
      bad |= pc_load_no_nul(c, v, w, "a path");
      free(w);
      if (!bad && !dynamic(vt) && v->len == 0) {
        pc_load_error(c, v, "http.%s: the path is empty", k);
        bad = -1;
      }
    } else if (strcmp(k, "max_response_bytes") == 0) {
      bad |= check_int(c, v, vt, k, 1, (long long)1 << 50, false);
    } else if (strcmp(k, "max_connections") == 0 ||
               strcmp(k, "max_connections_per_host") == 0) {
      bad |= check_int(c, v, vt, k, 0, 100000, true);
    }
  }
  return bad;
}

static int http_load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
{
  struct pc_tmpl *t = pc_load_tmpl(c, v);
  if (!t)
    return -1;
  st->params = t;
  if (v->kind == PC_NODE_SCALAR && t->kind == PC_T_EXPR)
    return 0; /* a map made by an expression: checked when it runs */
  if (v->kind != PC_NODE_MAP) {
    pc_load_error(c, v, "http: expected a map of options like {get: URL}, got %s", kind_of(v));
    return -1;
  }
  int bad = pc_load_check_keys(c, v, http_keys, PC_ARRAY_SIZE(http_keys), "http") ? -1 : 0;

  /* Exactly one URL (`url`, alone or with `method`, or one shorthand) and
   * at most one body; a second one is reported where it is written. */
  const struct pc_node *first_url = NULL, *first_body = NULL, *method = NULL, *url = NULL;
  for (size_t i = 0; i < v->n; i++) {
    const struct pc_node *k = v->keys[i], *val = v->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    bool is_short = in_list(k->str, shorthands, PC_ARRAY_SIZE(shorthands));
    if (is_short || strcmp(k->str, "url") == 0) {
      if (first_url) {
        pc_load_error(c, k, "http: `%s` and `%s` both give the URL; use one shorthand (get: "
                      "URL, post: URL, ...) or method + url", first_url->str, k->str);
        bad = -1;
      } else {
        first_url = k;
      }
      bad |= check_url(c, val, vt, k->str);
      if (strcmp(k->str, "url") == 0)
        url = k;
    } else if (strcmp(k->str, "method") == 0) {
      method = k;
      bad |= check_method(c, val, vt);
    } else if (strcmp(k->str, "body") == 0 || strcmp(k->str, "json") == 0 ||
               strcmp(k->str, "form") == 0) {
      if (first_body) {
        pc_load_error(c, k, "http: `%s` and `%s` cannot both be set: a request has one body",
                      first_body->str, k->str);
        bad = -1;
      } else {
        first_body = k;
      }
      if (strcmp(k->str, "body") == 0 && !dynamic(vt) && !plain_scalar(val)) {
        pc_load_error(c, val, "http.body: expected text, got %s; use json: to send a map or a "
                      "list as JSON", kind_of(val));
        bad = -1;
      } else if (strcmp(k->str, "form") == 0) {
        bad |= check_pairs(c, val, vt, "form");
      }
    }
  }
  /* A method known now that is not idempotent (see pc_http_start): the
   * loader warns about retries that can never apply to it. */
  if (first_url && (strcmp(first_url->str, "post") == 0 || strcmp(first_url->str, "patch") == 0))
    st->unsafe_method = strcmp(first_url->str, "post") == 0 ? "POST" : "PATCH";
  if (method && !dynamic(pc_tmpl_get(t, "method"))) {
    const struct pc_node *mv = pc_node_get(v, "method");
    if (mv && mv->kind == PC_NODE_SCALAR)
      st->unsafe_method = strcasecmp(mv->str, "POST") == 0    ? "POST"
                          : strcasecmp(mv->str, "PATCH") == 0 ? "PATCH"
                                                              : NULL;
  }
  if (method && first_url && first_url != url) {
    pc_load_error(c, method, "http: `method` goes with `url`, not with the shorthand `%s`",
                  first_url->str);
    bad = -1;
  } else if (method && !url) {
    pc_load_error(c, method, "http: `method` needs `url` (or use a shorthand like post: URL)");
    bad = -1;
  } else if (!first_url) {
    pc_load_error(c, v, "http: no URL: write get: URL (or post:, put:, patch:, delete:, head:), "
                  "or method and url");
    bad = -1;
  }
  bad |= check_common(c, v, t);
  return bad ? -1 : 0;
}

int pc_http_load_defaults(struct pc_load_ctx *c, const struct pc_node *map)
{
  if (!map || map->kind != PC_NODE_MAP) {
    pc_load_error(c, map, "defaults.http: expected a map of http options, got %s",
                  map ? kind_of(map) : "nothing");
    return -1;
  }
  int bad = pc_load_check_keys(c, map, defaults_keys, PC_ARRAY_SIZE(defaults_keys),
                               "defaults.http") ? -1 : 0;
  /* The checks need to know which values hold ${{ }}, i.e. a template.
   * The caller builds (and keeps) its own, which registers the expressions
   * with the workflow and reports their syntax errors; this throwaway one
   * is built against a scratch workflow and diag, so it registers and
   * reports nothing. */
  struct pc_workflow probe_wf;
  memset(&probe_wf, 0, sizeof probe_wf);
  struct pc_diag d;
  pc_diag_init(&d);
  struct pc_load_ctx pc = {.wf = &probe_wf, .d = &d, .file = c->file};
  struct pc_tmpl *t = pc_load_tmpl(&pc, map);
  pc_diag_free(&d);
  free(probe_wf.exprs);
  if (t) {
    bad |= check_common(c, map, t);
    pc_tmpl_free(t);
  }
  return bad ? -1 : 0;
}

/* ============================================================== session */

/* One context per socket libcurl asks us to watch, found by descriptor in
 * the session's table (libcurl's curl_multi_assign pointer is dropped on
 * every CURL_POLL_REMOVE, which a kept-alive connection gets between two
 * requests).
 *
 * Who may close a descriptor, and so when libuv may watch it (the rule in
 * the file's opening comment, in detail). libuv aborts the process if it
 * is asked to watch a descriptor that was closed behind its back: a
 * uv_poll_start is only queued, and the epoll_ctl(ADD or MOD) made at the
 * next loop iteration fails with EBADF; and a poll left on a closed
 * descriptor whose number is reused would take the new owner's events and,
 * when closed, remove the new owner's descriptor from epoll. libcurl 7.88
 * closes its sockets in two ways (lib/cf-socket.c):
 *
 *   - through CURLOPT_CLOSESOCKETFUNCTION (on_close_socket), after telling
 *     us CURL_POLL_REMOVE if we watched it: every socket that is connected
 *     and in use ("active": the happy-eyeballs winner, from the moment its
 *     TCP connect completes), and a socket whose own connect() failed;
 *   - with a plain close() and no callback at all, and only CURL_POLL_REMOVE
 *     *afterwards* (from singlesocket, in the same libcurl call): a socket
 *     still connecting, or one that lost the happy-eyeballs race, when its
 *     transfer is cancelled (curl_multi_remove_handle), times out or gives
 *     up on that address (cf_socket_close of a socket that is not "active").
 *
 * A connecting socket is only ever asked for CURL_POLL_OUT; libcurl asks to
 * read a socket only once it is connected and active. So a context is
 * `trusted` once libcurl has asked for CURL_POLL_IN on a socket that
 * on_open_socket opened: from then on it is closed only through
 * on_close_socket, which closes the poll (libuv forgets the descriptor at
 * once) before it closes the descriptor. Every other context (not trusted
 * yet, or a socket libcurl opened itself: the threaded resolver's socket
 * pair, which libcurl closes right after CURL_POLL_REMOVE) is closed on
 * CURL_POLL_REMOVE, whether or not its descriptor is still open: libcurl
 * has said nothing more will happen on it, and closing the poll of a
 * descriptor that is already closed only costs a failing epoll_ctl(DEL)
 * that libuv ignores, and takes a queued ADD off libuv's queue. Nothing
 * else can take the number between libcurl's close() and its REMOVE: both
 * happen inside one libcurl call, where only libcurl opens descriptors,
 * and a socket it opens comes through on_open_socket, which finds the old
 * context and closes it first.
 *
 * The poll of a context is initialised only when libcurl first asks to
 * watch it (uv_poll_init costs an epoll_ctl ADD and DEL and an ioctl, and
 * closing a poll removes its number from epoll, so a context never has a
 * poll on a descriptor libcurl has not reported). A context that on_open_
 * socket made but libcurl never watched (it connected, and sent and
 * received everything, within one call; or it was closed silently before
 * it was watched) has no poll; if its number is later reported by
 * libcurl's resolver, which asks only to read, the socket's family tells
 * them apart (one getsockopt, only for a new connection whose first
 * request is to read).
 *
 * A trusted context keeps its poll armed on CURL_POLL_REMOVE, only marked
 * unwanted (and unref'd: an idle connection must not keep the loop
 * running): a reused connection usually asks for the same events again,
 * which then costs no system call at all (uv_poll_start always removes the
 * descriptor from epoll and adds it back, so it is called only when the
 * events change). An event on an unwanted socket (an idle connection the
 * server closed) stops the poll, so it cannot spin the loop; libcurl
 * notices the dead connection when it next picks it. */
struct sock_ctx {
  uv_poll_t poll;            /* initialised only if `polling` was ever set */
  curl_socket_t fd;
  struct pc_http_session *s; /* borrowed: the owner */
  int family;                /* AF_* it was opened with (owned only) */
  int events;                /* UV_READABLE|UV_WRITABLE the poll is armed with */
  int want;                  /* UV_READABLE|UV_WRITABLE libcurl watches now; 0: none */
  bool polling;              /* the poll is initialised and not closing */
  bool owned;                /* opened by on_open_socket */
  bool watched;              /* libcurl has asked to watch it */
  bool trusted;              /* owned and asked to read: closed only by on_close_socket */
};

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

static void on_loop_timer(uv_timer_t *t);
static void drain(struct pc_http_session *s);
static const char *find_header(const struct pc_buf *hdrs, const char *name, size_t *len);

static void session_maybe_free(struct pc_http_session *s)
{
  if (!s->closing || s->pending_closes > 0)
    return;
  for (size_t i = 0; i < s->nwarned; i++)
    free(s->warned[i]);
  free(s->warned);
  free(s->socks);
  free(s->last_prefix);
  for (size_t i = 0; i < LABELS_MAX; i++)
    free(s->labels[i].label);
  pc_http_stats_free(&s->stats);
  free(s);
}

static void on_sock_closed(uv_handle_t *h)
{
  struct sock_ctx *ctx = PC_CONTAINER_OF(h, struct sock_ctx, poll);
  struct pc_http_session *s = ctx->s;
  free(ctx);
  s->pending_closes--;
  session_maybe_free(s);
}

static void on_timer_closed(uv_handle_t *h)
{
  struct pc_http_session *s = PC_CONTAINER_OF(h, struct pc_http_session, timer);
  s->pending_closes--;
  session_maybe_free(s);
}

static struct sock_ctx *sock_find(const struct pc_http_session *s, curl_socket_t fd)
{
  return fd >= 0 && (size_t)fd < s->nsocks ? s->socks[fd] : NULL;
}

/* Takes the context out of the table and ends it: its poll is closed
 * (which stops it: libuv forgets the descriptor now) and the context freed
 * in on_sock_closed; a context without a poll is freed at once. The
 * descriptor itself is not touched. */
static void sock_drop(struct pc_http_session *s, struct sock_ctx *ctx)
{
  assert(sock_find(s, ctx->fd) == ctx);
  s->socks[ctx->fd] = NULL;
  if (!ctx->polling) {
    free(ctx);
    return;
  }
  ctx->polling = false;
  s->pending_closes++;
  uv_close((uv_handle_t *)&ctx->poll, on_sock_closed);
}

/* A new context for fd, in the table, without a poll. */
static struct sock_ctx *sock_new(struct pc_http_session *s, curl_socket_t fd, bool owned,
                                 int family)
{
  assert(fd >= 0);
  if ((size_t)fd >= s->nsocks) {
    size_t n = s->nsocks ? s->nsocks : 64;
    while (n <= (size_t)fd)
      n *= 2;
    s->socks = pc_xrealloc(s->socks, n * sizeof *s->socks);
    memset(s->socks + s->nsocks, 0, (n - s->nsocks) * sizeof *s->socks);
    s->nsocks = n;
  }
  assert(!s->socks[fd]);
  struct sock_ctx *ctx = pc_xcalloc(1, sizeof *ctx);
  ctx->fd = fd;
  ctx->s = s;
  ctx->owned = owned;
  ctx->family = family;
  s->socks[fd] = ctx;
  return ctx;
}

static void on_poll(uv_poll_t *p, int status, int events);

/* Arms the context's poll for `events`, initialising it on first use.
 * Returns 0 or a libuv error (logged). */
static int sock_watch(struct pc_http_session *s, struct sock_ctx *ctx, int events)
{
  if (!ctx->polling) {
    int err = uv_poll_init_socket(s->loop, &ctx->poll, ctx->fd);
    if (err) {
      pc_log(PC_LOG_ERROR, NULL, "http: cannot watch socket %d: %s", (int)ctx->fd,
             uv_strerror(err));
      return err;
    }
    ctx->polling = true;
    ctx->events = 0;
    s->stats.sockets++;
  }
  if (events != ctx->events) {
    uv_poll_start(&ctx->poll, events, on_poll);
    ctx->events = events;
  }
  return 0;
}

/* Whether the descriptor of a context on_open_socket made and libcurl has
 * never watched is still that socket, rather than a descriptor libcurl
 * opened on the same number after closing the socket without telling us
 * (the resolver's socket pair: AF_UNIX; see struct sock_ctx). */
static bool sock_still_ours(const struct sock_ctx *ctx)
{
  int family = 0;
  socklen_t len = sizeof family;
  return getsockopt(ctx->fd, SOL_SOCKET, SO_DOMAIN, &family, &len) == 0 &&
         family == ctx->family;
}

static void on_poll(uv_poll_t *p, int status, int events)
{
  struct sock_ctx *ctx = PC_CONTAINER_OF(p, struct sock_ctx, poll);
  struct pc_http_session *s = ctx->s;
  if (!uv_is_active((uv_handle_t *)p))
    ctx->events = 0; /* libuv stopped it (POLLERR) */
  if (!ctx->want) {
    /* An idle kept-alive connection that the server closed (or wrote to):
     * stop watching it until libcurl asks again, or closes it. */
    if (ctx->events)
      uv_poll_stop(p);
    ctx->events = 0;
    return;
  }
  /* A poll error (POLLERR: the peer reset the connection, or a connect
   * failed) is passed on as the events libcurl waits for, not as
   * CURL_CSELECT_ERR: libcurl then reads or writes and meets the error
   * itself (ECONNRESET, EPIPE, SO_ERROR), as it does behind its own poll()
   * (lib/select.c, Curl_socket_check, reports POLLERR on a socket it reads
   * as readable). It matters for a kept-alive connection that the server
   * closes just as a request goes out on it: a receive error is what makes
   * libcurl retry the request on a new connection, where CURL_CSELECT_ERR
   * fails it at once ("select/poll returned error"). */
  int ev = status < 0 ? ctx->want : events;
  int flags = 0;
  if (ev & UV_READABLE)
    flags |= CURL_CSELECT_IN;
  if (ev & UV_WRITABLE)
    flags |= CURL_CSELECT_OUT;
  curl_socket_t fd = ctx->fd;
  int running;
  /* ctx may be closed (not freed) from here on, and another context may
   * take the descriptor's number. */
  curl_multi_socket_action(s->multi, fd, flags, &running);
  /* libuv stopped the poll on POLLERR: watch again what libcurl still
   * waits for (it normally closes the socket instead). */
  if (status < 0 && sock_find(s, fd) == ctx && ctx->want && !ctx->events)
    sock_watch(s, ctx, ctx->want);
  drain(s);
}

static void on_loop_timer(uv_timer_t *t)
{
  struct pc_http_session *s = PC_CONTAINER_OF(t, struct pc_http_session, timer);
  int running;
  s->in_timer = true;
  curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  s->in_timer = false;
  drain(s);
}

/* libcurl callbacks: record what to watch, nothing else. */
static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
  (void)e;
  (void)socketp;
  struct pc_http_session *s = userp;
  struct sock_ctx *ctx = sock_find(s, fd);
  if (what == CURL_POLL_REMOVE) {
    if (ctx && ctx->trusted) {
      /* The poll stays armed (see struct sock_ctx), but an idle
       * connection must not keep the loop running. */
      ctx->want = 0;
      if (ctx->polling)
        uv_unref((uv_handle_t *)&ctx->poll);
    } else if (ctx) {
      sock_drop(s, ctx); /* its descriptor may be closed already */
    }
    return 0;
  }
  /* A connecting socket is first asked for writing, the resolver's only
   * ever for reading. */
  if (ctx && ctx->owned && !ctx->watched && !(what & CURL_POLL_OUT) && !sock_still_ours(ctx)) {
    sock_drop(s, ctx);
    ctx = NULL;
  }
  if (!ctx)
    ctx = sock_new(s, fd, false, 0);
  ctx->watched = true;
  if ((what & CURL_POLL_IN) && ctx->owned)
    ctx->trusted = true; /* connected and active: see struct sock_ctx */
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  if (sock_watch(s, ctx, events) != 0) {
    sock_drop(s, ctx);
    return -1; /* libcurl fails every transfer (multi "dead"): nothing else is safe */
  }
  if (!ctx->want)
    uv_ref((uv_handle_t *)&ctx->poll);
  ctx->want = events;
  return 0;
}

/* CURLOPT_OPENSOCKETFUNCTION (clientp: the request): the connection's
 * socket, close-on-exec so `exec` steps do not inherit connections, and
 * its context, without a poll until libcurl asks to watch it. */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *a)
{
  (void)purpose;
  struct pc_http_req *r = clientp;
  struct pc_http_session *s = r->s;
  curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (fd == CURL_SOCKET_BAD) {
    r->open_errno = errno; /* for the message: libcurl only says it could not connect */
    return CURL_SOCKET_BAD;
  }
  struct sock_ctx *stale = sock_find(s, fd);
  if (stale) /* a socket libcurl closed before it ever watched it */
    sock_drop(s, stale);
  sock_new(s, fd, true, a->family);
  return fd;
}

/* CURLOPT_CLOSESOCKETFUNCTION: libuv must forget the descriptor (uv_close
 * stops the poll at once) before it is closed and its number reused. */
static int on_close_socket(void *clientp, curl_socket_t fd)
{
  struct pc_http_session *s = clientp;
  struct sock_ctx *ctx = sock_find(s, fd);
  if (ctx)
    sock_drop(s, ctx);
  return close(fd) == 0 ? 0 : 1;
}

static int on_curl_timer(CURLM *m, long timeout_ms, void *userp)
{
  (void)m;
  struct pc_http_session *s = userp;
  if (s->timer_closing)
    return 0;
  /* 0 means "now": a 0 ms timer runs in the loop's next timer phase, out
   * of libcurl. But libuv (1.44) runs a timer restarted at 0 from its own
   * callback again in the same pass, so if libcurl asks for "now" from the
   * timer's socket_action, wait 1 ms: it cannot starve the I/O it waits
   * for. */
  if (timeout_ms < 0)
    uv_timer_stop(&s->timer);
  else
    uv_timer_start(&s->timer, on_loop_timer,
                   timeout_ms == 0 && s->in_timer ? 1 : (uint64_t)timeout_ms, 0);
  return 0;
}

static bool curl_ready(void)
{
  static int state; /* 0: not tried, 1: ok, -1: failed */
  if (state == 0)
    state = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 1 : -1;
  return state == 1;
}

struct pc_http_session *pc_http_session_new(uv_loop_t *loop, const struct pc_http_limits *lim)
{
  if (!curl_ready()) {
    pc_log(PC_LOG_ERROR, NULL, "http: libcurl could not be initialised");
    return NULL;
  }
  CURLM *multi = curl_multi_init();
  if (!multi) {
    pc_log(PC_LOG_ERROR, NULL, "http: libcurl could not create a multi handle");
    return NULL;
  }
  struct pc_http_session *s = pc_xcalloc(1, sizeof *s);
  s->loop = loop;
  s->multi = multi;
  uv_timer_init(loop, &s->timer);
  curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, s);
  curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(multi, CURLMOPT_TIMERDATA, s);
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  long total = lim ? lim->max_connections : PC_HTTP_MAX_CONNECTIONS_DEFAULT;
  long per_host = lim ? lim->max_per_host : PC_HTTP_MAX_PER_HOST_DEFAULT;
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
  /* Keep as many idle connections as may be open at once, so a burst
   * followed by a quiet moment does not lose them. */
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, total > 0 ? total : 1000L);
  return s;
}

static void req_free(struct pc_http_req *r);

void pc_http_session_close(struct pc_http_session *s)
{
  if (!s || s->closing)
    return;
  s->closing = true;
  if (pc_log_enabled(PC_LOG_DEBUG)) {
    const struct pc_http_stats *st = &s->stats;
    pc_log(PC_LOG_DEBUG, NULL,
           "http: %llu requests (%llu failed, %llu cancelled), %llu connections opened, %llu "
           "requests on a reused connection, %llu bytes down, %llu bytes up",
           (unsigned long long)st->requests, (unsigned long long)st->failed,
           (unsigned long long)st->cancelled, (unsigned long long)st->connections,
           (unsigned long long)st->reused, (unsigned long long)st->bytes_down,
           (unsigned long long)st->bytes_up);
    for (size_t i = 0; i < st->nhosts; i++) {
      const struct pc_http_host_stats *hs = &st->hosts[i];
      pc_log(PC_LOG_DEBUG, NULL,
             "http: %s: %llu requests, %llu connections opened, %llu reused, %llu bytes down, "
             "%llu bytes up",
             hs->host, (unsigned long long)hs->requests, (unsigned long long)hs->connections,
             (unsigned long long)hs->reused, (unsigned long long)hs->bytes_down,
             (unsigned long long)hs->bytes_up);
    }
  }
  /* 1. every easy handle out of the multi handle and gone */
  while (s->live) {
    struct pc_http_req *r = s->live;
    curl_multi_remove_handle(s->multi, r->easy);
    s->live = r->next;
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    req_free(r);
  }
  for (size_t i = 0; i < s->nidle; i++)
    curl_easy_cleanup(s->idle[i]);
  s->nidle = 0;
  /* 2. the multi handle (closing connections may still call on_curl_socket) */
  curl_multi_cleanup(s->multi);
  s->multi = NULL;
  /* 3. what libcurl did not close or tell us to forget, then the timer */
  for (size_t fd = 0; fd < s->nsocks; fd++)
    if (s->socks[fd])
      sock_drop(s, s->socks[fd]);
  s->timer_closing = true;
  s->pending_closes++;
  uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

/* ============================================================ requests */

static void req_free(struct pc_http_req *r)
{
  pc_outfile_discard(&r->out); /* closes and removes a temporary file */
  curl_slist_free_all(r->hdr_list);
  free(r->method);
  free(r->url);
  free(r->label);
  free(r->save_to);
  for (int i = 0; i < r->nredirects; i++)
    free(r->redirects[i].url);
  free(r->redirects);
  pc_buf_free(&r->body);
  pc_buf_free(&r->hdrs);
  free(r);
}

static void unlink_live(struct pc_http_session *s, struct pc_http_req *r)
{
  if (r->prev)
    r->prev->next = r->next;
  else
    s->live = r->next;
  if (r->next)
    r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

/* Back to the free list. A handle that carried only the options every
 * request sets (see pc_http_start) keeps them and skips curl_easy_reset,
 * which with the constant options set again was ~8% of a small request's
 * CPU; its pointers into the finished request are cleared. Any other
 * option (redirects, a method, a body, timeouts, TLS settings) means a
 * full reset. `primed`: the constant options are set on e. */
static void recycle_easy(struct pc_http_session *s, CURL *e, bool primed)
{
  if (!e)
    return;
  if (s->nidle < FREE_EASY_MAX && !s->closing) {
    if (primed) {
      curl_easy_setopt(e, CURLOPT_PRIVATE, NULL);
      curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
      curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
      curl_easy_setopt(e, CURLOPT_HEADERDATA, NULL);
      curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
      /* CURLOPT_PREREQDATA is left: only a transfer calls it, and the next
       * one sets it first. */
    } else {
      curl_easy_reset(e);
    }
    s->idle_primed[s->nidle] = primed;
    s->idle[s->nidle++] = e;
  } else {
    curl_easy_cleanup(e);
  }
}

/* CURLOPT_PREREQFUNCTION (clientp: the request): libcurl has a connection
 * for the request (new or reused, TLS done) and sends it next. Called
 * before every request libcurl sends for a transfer, so also for each of
 * its own retries on a kept-alive connection that died (`sends`). */
static int on_prereq(void *clientp, char *primary_ip, char *local_ip, int primary_port,
                     int local_port)
{
  (void)primary_ip;
  (void)local_ip;
  (void)primary_port;
  (void)local_port;
  struct pc_http_req *r = clientp;
  r->sent = true;
  r->sends++;
  return CURL_PREREQFUNC_OK;
}

/* Appends n bytes to b (its max is checked by the caller) with a plain
 * realloc, so that a response that does not fit in memory fails its
 * request instead of aborting pacer (pc_xrealloc). The room doubles, or
 * starts at `hint` bytes (the announced Content-Length). Returns 0 or
 * -ENOMEM (b unchanged). */
static int buf_try_append(struct pc_buf *b, const char *p, size_t n, size_t hint)
{
  size_t need = b->len + n + 1;
  if (need > b->cap) {
    size_t cap = b->cap ? b->cap : (hint >= 256 ? hint + 1 : 256);
    while (cap < need)
      cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max < SIZE_MAX && cap > b->max + 1)
      cap = b->max + 1 > need ? b->max + 1 : need;
    char *d = realloc(b->cap ? b->data : NULL, cap);
    if (!d)
      return -ENOMEM;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct pc_http_req *r = userdata;
  size_t n = size * nmemb;
  if (r->discard)
    return n; /* a redirect's body: the next response is the one we keep */
  if (r->received + (int64_t)n > r->max_bytes) {
    r->too_big = true;
    return 0; /* CURLE_WRITE_ERROR */
  }
  r->received += (int64_t)n;
  if (r->out.fd < 0) {
    size_t hint = 0;
    if (r->body.cap == 0) {
      /* Room for the whole announced body at once: no copies while it
       * grows, and a body that cannot fit fails on its first bytes. */
      curl_off_t cl = -1;
      curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
      if (cl > 0 && cl <= r->max_bytes && (uint64_t)cl < SIZE_MAX / 2)
        hint = (size_t)cl;
    }
    if (buf_try_append(&r->body, ptr, n, hint) != 0) {
      r->no_memory = true;
      return 0; /* CURLE_WRITE_ERROR */
    }
    return n;
  }
  if (r->body.len < SAVE_HEAD_MAX) {
    size_t keep = SAVE_HEAD_MAX - r->body.len;
    pc_buf_append(&r->body, ptr, n < keep ? n : keep);
  }
  int werr = pc_outfile_write(&r->out, ptr, n);
  if (werr) {
    r->write_errno = -werr;
    return 0;
  }
  return n;
}

/* The statuses whose Location pacer follows (as fetch and aiohttp do;
 * curl also follows 300). */
static bool is_redirect(long status)
{
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* The status code of the header block's status line ("HTTP/1.1 302 Found",
 * "HTTP/2 302"), or 0. Written out rather than with strtol: it runs for
 * every response. */
static int status_of(const struct pc_buf *hdrs)
{
  const char *d = hdrs->data;
  size_t i = 5, end = hdrs->len < 16 ? hdrs->len : 16;
  while (i < end && d[i] != ' ')
    i++;
  if (i + 3 >= hdrs->len)
    return 0;
  int st = 0;
  for (size_t j = i + 1; j <= i + 3; j++) {
    if (d[j] < '0' || d[j] > '9')
      return 0;
    st = st * 10 + (d[j] - '0');
  }
  return st;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
  struct pc_http_req *r = userdata;
  size_t n = size * nitems;
  /* A status line starts a new response (a redirect, 100 Continue): keep
   * only the headers of the last one. An empty line ends them. */
  if (n >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
    pc_buf_reset(&r->hdrs);
    r->in_headers = true;
    r->discard = false;
  } else if (n > 0 && n <= 2 && (buf[0] == '\r' || buf[0] == '\n')) {
    r->in_headers = false;
    /* The end of a redirect's headers: if it says where to go, its body
     * is of no use (and must not count against max_response_bytes or
     * reach a save_to file). */
    size_t len;
    if (r->follow && is_redirect(status_of(&r->hdrs)))
      r->discard = find_header(&r->hdrs, "location", &len) != NULL;
  }
  if (n > HEADERS_MAX - r->hdrs.len) {
    r->hdrs_too_big = true;
    return 0; /* CURLE_WRITE_ERROR */
  }
  if (buf_try_append(&r->hdrs, buf, n, 0) != 0) {
    r->no_memory = true;
    return 0;
  }
  return n;
}

/* ------------------------------------------------- options from Lua */

struct spec {
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

static void spec_free(struct spec *sp)
{
  free(sp->method);
  free(sp->url);
  curl_slist_free_all(sp->hdrs);
  free(sp->body);
  free(sp->ca_file);
  free(sp->save_to);
}

/* t[k] without metamethods: an options table from a plugin may have an
 * __index that raises, and nothing here runs under a pcall. */
static int rawfield(lua_State *L, int tbl, const char *k)
{
  lua_pushstring(L, k);
  return lua_rawget(L, tbl);
}

static bool is_null(lua_State *L, int idx)
{
  return lua_isnil(L, idx) || (lua_type(L, idx) == LUA_TLIGHTUSERDATA &&
                               lua_touserdata(L, idx) == NULL);
}

/* Text of a string, number or boolean at idx (malloc'd), else NULL. */
static char *scalar_text(struct pc_lua *h, int idx, size_t *len)
{
  lua_State *L = pc_lua_state(h);
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    char *r = pc_xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = '\0';
    if (len)
      *len = n;
    return r;
  }
  if (t == LUA_TNUMBER || t == LUA_TBOOLEAN)
    return pc_lua_to_text(h, idx, len);
  return NULL;
}

/* Optional text field: 0 (absent or set), -1 with *err. When `cstring`
 * names what the text becomes (a URL, a path), a NUL byte in it is refused:
 * the C string would end there. */
static int opt_cstring(struct pc_lua *h, int tbl, const char *key, char **out,
                       const char *cstring, char **err);

static int opt_text(struct pc_lua *h, int tbl, const char *key, char **out, size_t *len,
                    char **err)
{
  lua_State *L = pc_lua_state(h);
  rawfield(L, tbl, key); /* value */
  int rc = 0;
  if (!is_null(L, -1)) {
    size_t n = 0;
    *out = scalar_text(h, -1, &n);
    if (!*out) {
      *err = pc_asprintf("http.%s: expected text, got %s", key, luaL_typename(L, -1));
      rc = -1;
    } else if (!len && strlen(*out) != n) { /* a C string: a NUL would cut it */
      *err = pc_asprintf("http.%s: contains a NUL byte", key);
      free(*out);
      *out = NULL;
      rc = -1;
    } else if (len) {
      *len = n;
    }
  }
  lua_pop(L, 1);
  return rc;
}

static int opt_cstring(struct pc_lua *h, int tbl, const char *key, char **out,
                       const char *cstring, char **err)
{
  size_t len = 0;
  if (opt_text(h, tbl, key, out, &len, err) != 0)
    return -1;
  if (*out && memchr(*out, '\0', len)) {
    *err = pc_asprintf("http.%s contains a NUL byte (\\0), which %s cannot hold", key, cstring);
    free(*out);
    *out = NULL;
    return -1;
  }
  return 0;
}

/* A Lua string whose text a C string would cut short (a NUL byte in it). */
static bool cut_by_nul(lua_State *L, int idx)
{
  size_t len;
  return lua_type(L, idx) == LUA_TSTRING && strlen(lua_tolstring(L, idx, &len)) != len;
}

static int opt_bool(lua_State *L, int tbl, const char *key, bool *out, char **err)
{
  rawfield(L, tbl, key); /* value */
  int rc = 0;
  if (cut_by_nul(L, -1)) {
    *err = pc_asprintf("http.%s: contains a NUL byte", key);
    rc = -1;
  } else if (lua_type(L, -1) == LUA_TBOOLEAN) {
    *out = lua_toboolean(L, -1);
  } else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "true") == 0) {
    *out = true;
  } else if (lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "false") == 0) {
    *out = false;
  } else if (!is_null(L, -1)) {
    *err = pc_asprintf("http.%s: expected true or false, got %s", key, luaL_typename(L, -1));
    rc = -1;
  }
  lua_pop(L, 1);
  return rc;
}

static int opt_duration(lua_State *L, int tbl, const char *key, double *ms, char **err)
{
  rawfield(L, tbl, key); /* value */
  int rc = 0;
  if (cut_by_nul(L, -1)) {
    *err = pc_asprintf("http.%s: contains a NUL byte", key);
    lua_pop(L, 1);
    return -1;
  }
  if (lua_type(L, -1) == LUA_TNUMBER) {
    double sec = lua_tonumber(L, -1);
    if (!(sec >= 0 && sec <= 30.0 * 86400))
      rc = -1;
    else
      *ms = sec * 1000.0;
  } else if (lua_type(L, -1) == LUA_TSTRING) {
    rc = pc_parse_duration(lua_tostring(L, -1), ms) == 0 ? 0 : -1;
  } else if (!is_null(L, -1)) {
    rc = -1;
  }
  if (rc)
    *err = pc_asprintf("http.%s: expected a duration like \"5s\", got %s", key,
                       lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                      : luaL_typename(L, -1));
  lua_pop(L, 1);
  return rc;
}

static int opt_version(lua_State *L, int tbl, long *out, char **err)
{
  rawfield(L, tbl, "http_version"); /* value */
  int rc = 0;
  if (cut_by_nul(L, -1)) {
    *err = pc_xstrdup("http.http_version: contains a NUL byte");
    rc = -1;
  } else if (!is_null(L, -1)) {
    const char *v = NULL;
    char num[32];
    if (lua_type(L, -1) == LUA_TNUMBER) {
      double d = lua_tonumber(L, -1);
      snprintf(num, sizeof num, "%.1f", d);
      v = num;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      v = lua_tostring(L, -1);
    }
    if (v && strcmp(v, "auto") == 0)
      *out = CURL_HTTP_VERSION_2TLS;
    else if (v && strcmp(v, "1.0") == 0)
      *out = CURL_HTTP_VERSION_1_0;
    else if (v && strcmp(v, "1.1") == 0)
      *out = CURL_HTTP_VERSION_1_1;
    else if (v && (strcmp(v, "2") == 0 || strcmp(v, "2.0") == 0))
      *out = CURL_HTTP_VERSION_2_0;
    else {
      *err = pc_asprintf("http.http_version: expected auto, 1.0, 1.1 or 2, got %s",
                         v ? v : luaL_typename(L, -1));
      rc = -1;
    }
  }
  lua_pop(L, 1);
  return rc;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void put_escaped(CURL *e, struct pc_buf *b, const char *s, size_t len)
{
  char *esc = curl_easy_escape(e, s, (int)len);
  if (esc) {
    pc_buf_puts(b, esc);
    curl_free(esc);
  }
}

/* Appends name=value pairs (sorted by name, lists repeated) of the table at
 * `tbl` to b, urlencoded. Returns NULL or an error message. */
static char *encode_pairs(struct pc_lua *h, CURL *e, int tbl, const char *what, struct pc_buf *b)
{
  lua_State *L = pc_lua_state(h);
  if (!lua_istable(L, tbl))
    return pc_asprintf("http.%s: expected a map of names to values, got %s", what,
                       luaL_typename(L, tbl));
  char **keys = NULL;
  size_t n = 0;
  char *err = NULL;
  lua_pushnil(L); /* nil */
  while (lua_next(L, tbl)) { /* key, value */
    if (lua_type(L, -2) != LUA_TSTRING && !err)
      err = pc_asprintf("http.%s: names must be text, got %s", what, luaL_typename(L, -2));
    else if (!err && strlen(lua_tostring(L, -2)) != lua_rawlen(L, -2))
      err = pc_asprintf("http.%s: a name contains a NUL byte", what);
    else if (!err) {
      keys = pc_xrealloc(keys, (n + 1) * sizeof *keys);
      keys[n++] = pc_xstrdup(lua_tostring(L, -2));
    }
    lua_pop(L, 1); /* key */
  }
  if (n)
    qsort(keys, n, sizeof *keys, cmp_str);
  for (size_t i = 0; i < n && !err; i++) {
    rawfield(L, tbl, keys[i]); /* value */
    int vi = lua_gettop(L);
    size_t cnt = 1;
    bool list = lua_istable(L, vi);
    if (list) {
      cnt = (size_t)lua_rawlen(L, vi);
      size_t entries = 0;
      lua_pushnil(L);
      while (lua_next(L, vi)) { /* value, k, v */
        entries++;
        lua_pop(L, 1);
      }
      if (entries != cnt)
        err = pc_asprintf("http.%s: the value of %s must be text or a list of texts, got a map",
                          what, keys[i]);
    }
    for (size_t j = 1; j <= cnt && !err; j++) {
      if (list)
        lua_rawgeti(L, vi, (lua_Integer)j); /* value, item */
      else
        lua_pushvalue(L, vi); /* value, value */
      if (!is_null(L, -1)) {
        size_t len;
        char *txt = scalar_text(h, -1, &len);
        if (!txt) {
          err = pc_asprintf("http.%s: the value of %s must be text or a list of texts, got %s",
                            what, keys[i], luaL_typename(L, -1));
        } else {
          if (b->len)
            pc_buf_puts(b, "&");
          put_escaped(e, b, keys[i], strlen(keys[i]));
          pc_buf_puts(b, "=");
          put_escaped(e, b, txt, len);
          free(txt);
        }
      }
      lua_pop(L, 1); /* value */
    }
    lua_pop(L, 1);
  }
  for (size_t i = 0; i < n; i++)
    free(keys[i]);
  free(keys);
  return err;
}

static char *parse_headers(struct pc_lua *h, int tbl, struct spec *sp)
{
  lua_State *L = pc_lua_state(h);
  if (!lua_istable(L, tbl))
    return pc_asprintf("http.headers: expected a map of header names to values, got %s",
                       luaL_typename(L, tbl));
  char *err = NULL;
  lua_pushnil(L); /* nil */
  while (!err && lua_next(L, tbl)) { /* name, value */
    size_t nlen = 0;
    const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &nlen) : NULL;
    if (!name || !valid_header_name(name, nlen)) {
      err = name ? pc_asprintf("http.headers: \"%s\" is not a valid header name", name)
                 : pc_asprintf("http.headers: header names must be text, got %s",
                               luaL_typename(L, -2));
      lua_pop(L, 2);
      break;
    }
    if (!is_null(L, -1)) {
      size_t vlen;
      char *val = scalar_text(h, -1, &vlen);
      if (!val) {
        err = pc_asprintf("http.headers: the value of %s must be text, got %s", name,
                          luaL_typename(L, -1));
      } else if (has_crlf(val, vlen)) {
        /* Never echo the value: it may be a secret. */
        err = pc_asprintf("http.headers: the value of %s contains a line break (CR or LF) or "
                          "a NUL byte, which would split the header", name);
      } else {
        if (strcasecmp(name, "User-Agent") == 0)
          sp->has_ua = true;
        if (strcasecmp(name, "Content-Type") == 0)
          sp->has_ctype = true;
        if (strcasecmp(name, "Expect") == 0)
          sp->has_expect = true;
        /* "Name;" is curl's way to send a header with an empty value. */
        char *line = vlen ? pc_asprintf("%s: %s", name, val) : pc_asprintf("%s;", name);
        sp->hdrs = curl_slist_append(sp->hdrs, line);
        free(line);
      }
      free(val);
    }
    lua_pop(L, 1); /* name */
  }
  return err;
}

static const char *const runtime_keys[] = {
    "method", "url", "get", "post", "put", "patch", "delete", "head", "query", "headers",
    "body", "json", "form", "connect_timeout", "follow_redirects", "http_version", "insecure",
    "ca_file", "max_response_bytes", "save_to", "timeout"};

/* Indices in runtime_keys: parse_spec looks up only the keys the table has. */
#define HAS(k) ((present >> (k)) & 1u)
enum {
  K_METHOD, K_URL, K_GET, K_POST, K_PUT, K_PATCH, K_DELETE, K_HEAD, K_QUERY, K_HEADERS,
  K_BODY, K_JSON, K_FORM, K_CONNECT_TIMEOUT, K_FOLLOW, K_VERSION, K_INSECURE, K_CA_FILE,
  K_MAX_BYTES, K_SAVE_TO, K_TIMEOUT, K_COUNT
};
_Static_assert(K_COUNT == PC_ARRAY_SIZE(runtime_keys), "runtime_keys and K_* differ");
_Static_assert(K_GET + 5 == K_HEAD, "shorthands are K_GET .. K_HEAD, in their order");

static int runtime_key(const char *k)
{
  for (int i = 0; i < K_COUNT; i++)
    if (strcmp(k, runtime_keys[i]) == 0)
      return i;
  return -1;
}

#define CA_FILE_MAX ((off_t)64 << 20) /* a CA bundle is well under a megabyte */

/* NULL if `path` names a regular file pacer can read, else a message.
 * libcurl (OpenSSL) reads the file on the loop thread during the TLS
 * handshake: a FIFO, a terminal or a character device would block the
 * whole run there (timeouts and signals included), so only a regular file
 * of a sane size gets that far. stat() itself never waits on the file. */
static char *check_ca_file(const char *path)
{
  struct stat st;
  if (stat(path, &st) != 0 || access(path, R_OK) != 0)
    return pc_asprintf("http.ca_file: cannot read \"%s\": %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode))
    return pc_asprintf("http.ca_file: \"%s\" is not a regular file (%s); name a PEM file of CA "
                       "certificates", path,
                       S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISDIR(st.st_mode) ? "a directory"
                       : S_ISCHR(st.st_mode) ? "a character device"
                       : S_ISSOCK(st.st_mode) ? "a socket" : "not a file");
  if (st.st_size > CA_FILE_MAX)
    return pc_asprintf("http.ca_file: \"%s\" is %lld bytes: too large for a file of CA "
                       "certificates (at most %lld)", path, (long long)st.st_size,
                       (long long)CA_FILE_MAX);
  return NULL;
}

/* Reads the options table at `tbl` into sp. Returns NULL or a message. */
static char *parse_spec(struct pc_lua *h, CURL *e, int tbl, bool allow_timeout, struct spec *sp)
{
  lua_State *L = pc_lua_state(h);
  char *err = NULL;
  sp->connect_timeout_ms = -1;
  sp->timeout_ms = -1;
  sp->follow = true;
  sp->version = CURL_HTTP_VERSION_2TLS;
  sp->max_bytes = PC_HTTP_MAX_RESPONSE_DEFAULT;
  if (!lua_istable(L, tbl))
    return pc_asprintf("http: expected a map of options, got %s", luaL_typename(L, tbl));

  /* Unknown keys (a map built by an expression, or the Lua API); the
   * others are noted in `present`, and only those are looked up. */
  uint32_t present = 0;
  lua_pushnil(L);
  while (lua_next(L, tbl)) { /* key, value */
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    int ki = k ? runtime_key(k) : -1;
    bool ok = ki >= 0 && (allow_timeout || ki != K_TIMEOUT);
    if (ok)
      present |= (uint32_t)1 << ki;
    lua_pop(L, 1);
    if (!ok) {
      err = k ? pc_asprintf("http: unknown option \"%s\"", k)
              : pc_asprintf("http: option names must be text, got %s", luaL_typename(L, -1));
      lua_pop(L, 1);
      return err;
    }
  }

  /* URL and method */
  const char *url_key = NULL;
  for (size_t i = 0; i < PC_ARRAY_SIZE(shorthands); i++) {
    if (!HAS(K_GET + (int)i))
      continue;
    rawfield(L, tbl, shorthands[i]);
    bool set = !is_null(L, -1);
    lua_pop(L, 1);
    if (set && url_key)
      return pc_asprintf("http: `%s` and `%s` both give the URL", url_key, shorthands[i]);
    if (set)
      url_key = shorthands[i];
  }
  bool has_url = false;
  if (HAS(K_URL)) {
    rawfield(L, tbl, "url");
    has_url = !is_null(L, -1);
    lua_pop(L, 1);
  }
  if (has_url && url_key)
    return pc_asprintf("http: `%s` and `url` both give the URL", url_key);
  if (!has_url && !url_key)
    return pc_xstrdup("http: no URL: give get: URL (or post:, put:, ...), or method and url");
  if (opt_cstring(h, tbl, has_url ? "url" : url_key, &sp->url, "a URL", &err) != 0)
    return err;
  if (HAS(K_METHOD) && opt_cstring(h, tbl, "method", &sp->method, "a method", &err) != 0)
    return err;
  if (sp->method && url_key)
    return pc_asprintf("http: `method` goes with `url`, not with `%s`", url_key);
  if (!sp->method)
    sp->method = pc_xstrdup(url_key ? url_key : "GET");
  for (char *p = sp->method; *p; p++)
    *p = (char)toupper((unsigned char)*p);
  if (!in_list(sp->method, methods, PC_ARRAY_SIZE(methods)))
    return pc_asprintf("http.method: unknown method \"%s\" (expected one of GET, HEAD, POST, "
                       "PUT, PATCH, DELETE, OPTIONS, TRACE)", sp->method);
  if (strncasecmp(sp->url, "http://", 7) != 0 && strncasecmp(sp->url, "https://", 8) != 0)
    return pc_asprintf("http: \"%s\" is not an http:// or https:// URL", sp->url);
  if (strpbrk(sp->url, " \r\n\t"))
    return pc_asprintf("http: the URL \"%s\" contains spaces or line breaks; encode them, or "
                       "pass values with query:", sp->url);

  /* query */
  if (HAS(K_QUERY))
    rawfield(L, tbl, "query"); /* query */
  else
    lua_pushnil(L);
  if (!is_null(L, -1)) {
    struct pc_buf q;
    pc_buf_init(&q, (size_t)64 << 20);
    err = encode_pairs(h, e, lua_gettop(L), "query", &q);
    if (!err && q.len) {
      const char *hash = strchr(sp->url, '#');
      size_t base = hash ? (size_t)(hash - sp->url) : strlen(sp->url);
      char last = base ? sp->url[base - 1] : '\0';
      const char *sep = !memchr(sp->url, '?', base) ? "?" : (last == '?' || last == '&') ? "" : "&";
      char *u = pc_asprintf("%.*s%s%s", (int)base, sp->url, sep, q.data);
      free(sp->url);
      sp->url = u;
    }
    pc_buf_free(&q);
  }
  lua_pop(L, 1);
  if (err)
    return err;

  /* headers */
  if (HAS(K_HEADERS)) {
    rawfield(L, tbl, "headers"); /* headers */
    if (!is_null(L, -1))
      err = parse_headers(h, lua_gettop(L), sp);
    lua_pop(L, 1);
    if (err)
      return err;
  }

  /* body: at most one of body, json, form */
  static const char *const body_keys[] = {"body", "json", "form"};
  const char *body_key = NULL;
  for (size_t i = 0; i < 3; i++) {
    if (!HAS(K_BODY + (int)i))
      continue;
    rawfield(L, tbl, body_keys[i]);
    bool set = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (set && body_key)
      return pc_asprintf("http: `%s` and `%s` cannot both be set: a request has one body",
                         body_key, body_keys[i]);
    if (set)
      body_key = body_keys[i];
  }
  if (body_key && strcmp(body_key, "body") == 0) {
    rawfield(L, tbl, "body"); /* body */
    sp->body = scalar_text(h, -1, &sp->body_len);
    if (!sp->body)
      err = pc_asprintf("http.body: expected text, got %s; use json: to send a map or a list",
                        luaL_typename(L, -1));
    lua_pop(L, 1);
    if (err)
      return err;
    sp->body_ctype = "text/plain; charset=utf-8";
  } else if (body_key && strcmp(body_key, "json") == 0) {
    rawfield(L, tbl, "json"); /* json */
    char *jerr = NULL;
    sp->body = pc_lua_to_json(h, -1, &jerr);
    lua_pop(L, 1);
    if (!sp->body) {
      err = pc_asprintf("http.json: %s", jerr);
      free(jerr);
      return err;
    }
    sp->body_len = strlen(sp->body);
    sp->body_ctype = "application/json";
  } else if (body_key) {
    rawfield(L, tbl, "form"); /* form */
    struct pc_buf f;
    pc_buf_init(&f, (size_t)64 << 20);
    err = encode_pairs(h, e, lua_gettop(L), "form", &f);
    lua_pop(L, 1);
    sp->body_len = f.len;
    sp->body = pc_buf_steal(&f);
    if (err)
      return err;
    sp->body_ctype = "application/x-www-form-urlencoded";
  }
  sp->has_body = body_key != NULL;
  if (sp->has_body && strcmp(sp->method, "HEAD") == 0)
    return pc_xstrdup("http: a HEAD request cannot have a body");

  /* the rest */
  if ((HAS(K_CONNECT_TIMEOUT) &&
       opt_duration(L, tbl, "connect_timeout", &sp->connect_timeout_ms, &err) != 0) ||
      (HAS(K_TIMEOUT) && opt_duration(L, tbl, "timeout", &sp->timeout_ms, &err) != 0) ||
      (HAS(K_FOLLOW) && opt_bool(L, tbl, "follow_redirects", &sp->follow, &err) != 0) ||
      (HAS(K_INSECURE) && opt_bool(L, tbl, "insecure", &sp->insecure, &err) != 0) ||
      (HAS(K_VERSION) && opt_version(L, tbl, &sp->version, &err) != 0) ||
      (HAS(K_CA_FILE) && opt_cstring(h, tbl, "ca_file", &sp->ca_file, "a path", &err) != 0) ||
      (HAS(K_SAVE_TO) && opt_cstring(h, tbl, "save_to", &sp->save_to, "a path", &err) != 0))
    return err;
  if (HAS(K_MAX_BYTES))
    rawfield(L, tbl, "max_response_bytes"); /* max */
  else
    lua_pushnil(L);
  if (!is_null(L, -1)) {
    int isnum = 0;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < 1) {
      char *txt = scalar_text(h, -1, NULL);
      err = pc_asprintf("http.max_response_bytes: expected a whole number >= 1, got %s",
                        txt ? txt : luaL_typename(L, -1));
      free(txt);
    } else {
      sp->max_bytes = (int64_t)v;
    }
  }
  lua_pop(L, 1);
  if (err)
    return err;
  if (sp->ca_file && (err = check_ca_file(sp->ca_file)))
    return err;
  if (sp->save_to && !*sp->save_to)
    return pc_xstrdup("http.save_to: the path is empty");
  return NULL;
}

/* Opens save_to through outfile.h: a regular file (or none yet) gets a
 * temporary file beside it, renamed over it only on success; a device or a
 * FIFO is written into. Returns NULL or a message. */
static char *open_save_to(struct pc_http_req *r)
{
  char *err = NULL;
  if (pc_outfile_open(&r->out, r->save_to, 0, &err) == 0)
    return NULL;
  char *m = pc_asprintf("http.save_to: %s", err);
  free(err);
  return m;
}

/* A password in the URL's userinfo is a secret, in the Basic credentials
 * libcurl makes of it too (a server may echo them back). */
static void note_url_password(const char *url)
{
  CURLU *u = curl_url();
  char *user = NULL, *pw = NULL;
  if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PASSWORD, &pw, CURLU_URLDECODE) == CURLUE_OK) {
    if (curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE) != CURLUE_OK)
      user = NULL;
    pc_secret_add_userinfo(user ? user : "", pw);
  }
  curl_free(user);
  curl_free(pw);
  curl_url_cleanup(u);
}

static void warn_insecure(struct pc_http_session *s, const char *label, const char *url)
{
  CURLU *u = curl_url();
  char *host = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
    host = NULL;
  const char *hn = host ? host : url;
  bool seen = false;
  for (size_t i = 0; i < s->nwarned && !seen; i++)
    seen = strcmp(s->warned[i], hn) == 0;
  if (!seen) {
    s->warned = pc_xrealloc(s->warned, (s->nwarned + 1) * sizeof *s->warned);
    s->warned[s->nwarned++] = pc_xstrdup(hn);
    pc_log(PC_LOG_WARN, label,
           "WARNING: insecure: true turns OFF TLS certificate verification for %s: anyone on "
           "the network path can read and change this traffic. Use ca_file to trust a private "
           "CA instead.", hn);
  }
  curl_free(host);
  curl_url_cleanup(u);
}

int pc_http_start(struct pc_http_session *s, struct pc_lua *h, int idx,
                  const struct pc_http_start_opts *o, pc_http_done_cb cb, void *data,
                  struct pc_http_req **out, char **err)
{
  assert(s && !s->closing && cb);
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  bool primed = false;
  CURL *e = NULL;
  if (s->nidle) {
    s->nidle--;
    e = s->idle[s->nidle];
    primed = s->idle_primed[s->nidle];
  } else {
    e = curl_easy_init();
  }
  if (!e) {
    *err = pc_xstrdup("http: libcurl could not create a transfer");
    return -1;
  }
  struct spec sp;
  memset(&sp, 0, sizeof sp);
  *err = parse_spec(h, e, idx, o && o->allow_timeout, &sp);
  if (*err) {
    spec_free(&sp);
    recycle_easy(s, e, primed);
    return -1;
  }

  struct pc_http_req *r = pc_xcalloc(1, sizeof *r);
  r->s = s;
  r->easy = e;
  pc_outfile_init(&r->out);
  r->method = sp.method;
  r->url = sp.url;
  sp.method = sp.url = NULL;
  r->label = pc_xstrdup(o && o->label ? o->label : "http");
  r->max_bytes = sp.max_bytes;
  r->save_to = sp.save_to;
  sp.save_to = NULL;
  r->save_ok = o ? o->save_ok : NULL;
  r->nsave_ok = o ? o->nsave_ok : 0;
  r->cb = cb;
  r->data = data;
  r->timeout_ms = sp.timeout_ms;
  r->connect_timeout_ms = sp.connect_timeout_ms;
  r->follow = sp.follow;
  r->head = strcmp(r->method, "HEAD") == 0;
  r->has_body = sp.has_body;
  r->non_idempotent = !(strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0 ||
                        strcmp(r->method, "PUT") == 0 || strcmp(r->method, "DELETE") == 0 ||
                        strcmp(r->method, "OPTIONS") == 0 || strcmp(r->method, "TRACE") == 0);
  pc_buf_init(&r->body, r->max_bytes > 0 && (uint64_t)r->max_bytes < SIZE_MAX
                            ? (size_t)r->max_bytes : SIZE_MAX);
  pc_buf_init(&r->hdrs, HEADERS_MAX);
  if (r->save_to) {
    char *m = open_save_to(r);
    if (m) {
      *err = m;
      spec_free(&sp);
      recycle_easy(s, e, primed);
      r->easy = NULL;
      req_free(r);
      return -1;
    }
  }

  /* Headers pacer adds unless the request sets them. */
  r->hdr_list = sp.hdrs;
  sp.hdrs = NULL;
  if (sp.has_body && !sp.has_ctype) {
    char *line = pc_asprintf("Content-Type: %s", sp.body_ctype);
    r->hdr_list = curl_slist_append(r->hdr_list, line);
    free(line);
  } else if (!sp.has_body && !sp.has_ctype) {
    r->hdr_list = curl_slist_append(r->hdr_list, "Content-Type:");
  }
  if (!sp.has_expect) /* no 100-continue round trip before the body */
    r->hdr_list = curl_slist_append(r->hdr_list, "Expect:");

  /* The options of every request: per-request pointers, then constants
   * (already set on a primed handle, see recycle_easy). */
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  if (strchr(r->url, '@'))
    note_url_password(r->url);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
  curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdr_list);
  /* A HEAD response's Content-Length is that of a body it does not have:
   * no limit applies (0). */
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, r->head ? (curl_off_t)0
                                                         : (curl_off_t)r->max_bytes);
  if (!primed) {
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, s);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "pacer/" PACER_VERSION);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  }
  /* Everything below is an option the next request may not want: the
   * handle then goes through curl_easy_reset when it is recycled. Options
   * left at curl_easy_reset's defaults are not set (CURL_HTTP_VERSION_2TLS,
   * GET, no CURLOPT_FOLLOWLOCATION: redirects are followed by
   * follow_redirect); PIPEWAIT is set either way. */
  bool plain = true;
  if (sp.version != CURL_HTTP_VERSION_2TLS) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, sp.version);
  }
  /* Over TLS, wait for a connection that may multiplex (HTTP/2) instead of
   * opening another one; over cleartext there is nothing to wait for. Set
   * either way: a primed handle may carry the previous request's value. */
  bool pipewait = strncasecmp(r->url, "https://", 8) == 0 &&
                  sp.version != CURL_HTTP_VERSION_1_1 && sp.version != CURL_HTTP_VERSION_1_0;
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, pipewait ? 1L : 0L);
  if (sp.connect_timeout_ms >= 0) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(sp.connect_timeout_ms > 0 && sp.connect_timeout_ms < 1 ? 1
                                                                   : sp.connect_timeout_ms));
  }
  if (sp.timeout_ms > 0) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(sp.timeout_ms));
  }
  if (sp.insecure) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    warn_insecure(s, r->label, r->url);
  }
  if (sp.ca_file) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_CAINFO, sp.ca_file);
  }

  if (strcmp(r->method, "HEAD") == 0) {
    plain = false;
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (strcmp(r->method, "GET") == 0 && !sp.has_body) {
    /* the default */
  } else {
    plain = false;
    if (strcmp(r->method, "POST") == 0)
      curl_easy_setopt(e, CURLOPT_POST, 1L);
    else
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    bool send_empty = strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0 ||
                      strcmp(r->method, "PATCH") == 0;
    if (sp.has_body || send_empty) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)sp.body_len);
      curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, sp.body ? sp.body : "");
    }
  }
  spec_free(&sp);
  r->plain = plain;

  CURLMcode mc = curl_multi_add_handle(s->multi, e);
  if (mc != CURLM_OK) {
    *err = pc_asprintf("http: cannot start the request: %s", curl_multi_strerror(mc));
    recycle_easy(s, e, plain);
    r->easy = NULL;
    req_free(r);
    return -1;
  }
  r->next = s->live;
  if (s->live)
    s->live->prev = r;
  s->live = r;
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s", r->method, r->url);
  *out = r;
  return 0;
}

void pc_http_cancel(struct pc_http_req *r)
{
  if (!r)
    return;
  struct pc_http_session *s = r->s;
  curl_multi_remove_handle(s->multi, r->easy);
  unlink_live(s, r);
  curl_easy_cleanup(r->easy); /* it may carry an errno of its own (see fresh_os_errno) */
  r->easy = NULL;
  s->stats.cancelled++;
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s cancelled", r->method, r->url);
  req_free(r); /* closes and removes the save_to temporary file */
}

bool pc_http_req_non_idempotent(const struct pc_http_req *r)
{
  return r->non_idempotent;
}

bool pc_http_req_nothing_sent(const struct pc_http_req *r)
{
  return !r->sent;
}

/* ---------------------------------------------------------- completion */

/* "host:port" of a URL (malloc'd), for messages. */
static char *host_port(const char *url)
{
  CURLU *u = curl_url();
  char *host = NULL, *port = NULL, *r = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    r = pc_asprintf("%s:%s", host, port);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return r ? r : pc_xstrdup(url);
}

static char *host_only(const char *url)
{
  CURLU *u = curl_url();
  char *host = NULL, *r = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
    r = pc_xstrdup(host);
  curl_free(host);
  curl_url_cleanup(u);
  return r ? r : pc_xstrdup(url);
}

/* "scheme://host:port" for the statistics. */
static char *origin(const char *url)
{
  CURLU *u = curl_url();
  char *scheme = NULL, *host = NULL, *port = NULL, *r = NULL;
  if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK)
    r = pc_asprintf("%s://%s:%s", scheme, host, port);
  curl_free(scheme);
  curl_free(host);
  curl_free(port);
  curl_url_cleanup(u);
  return r ? r : pc_xstrdup("?");
}

static const char *reason(struct pc_http_req *r, CURLcode rc)
{
  return r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc);
}

/* EMFILE or ENFILE if running out of descriptors made the transfer fail,
 * else 0: what on_open_socket met, or, for a failure libcurl reports as
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
static enum pc_fail describe_failure(struct pc_http_req *r, CURLcode rc, struct pc_buf *m)
{
  const char *url = r->info.url ? r->info.url : r->url;
  char *hp = host_port(url);
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
      char *host = host_only(url);
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

static bool status_ok(const struct pc_http_req *r, long status)
{
  if (!r->nsave_ok)
    return status > 0 && status < 400;
  for (size_t i = 0; i < r->nsave_ok; i++)
    if (status >= r->save_ok[i].lo && status <= r->save_ok[i].hi)
      return true;
  return false;
}

/* Finds header `name` (lower-case) in the raw header block; returns a
 * pointer to its value and sets *len, or NULL. */
static const char *find_header(const struct pc_buf *hdrs, const char *name, size_t *len)
{
  size_t nlen = strlen(name);
  const char *p = hdrs->data, *end = hdrs->data + hdrs->len;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    if ((size_t)(le - p) > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
      const char *v = p + nlen + 1;
      while (v < le && (*v == ' ' || *v == '\t'))
        v++;
      const char *ve = le;
      while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
      *len = (size_t)(ve - v);
      return v;
    }
    p = eol ? eol + 1 : end;
  }
  return NULL;
}

static double retry_after(const struct pc_buf *hdrs)
{
  size_t len;
  const char *v = find_header(hdrs, "retry-after", &len);
  if (!v || len == 0 || len > 100)
    return -1;
  char tmp[128];
  memcpy(tmp, v, len);
  tmp[len] = '\0';
  bool digits = true;
  for (size_t i = 0; i < len; i++)
    digits = digits && isdigit((unsigned char)tmp[i]);
  if (digits)
    return len > 9 ? 1e12 : atof(tmp) * 1000.0;
  time_t when = curl_getdate(tmp, NULL);
  if (when < 0)
    return -1;
  double ms = ((double)when - (double)time(NULL)) * 1000.0;
  return ms > 0 ? ms : 0;
}

/* The length of "scheme://authority" at the start of url (0 if none). */
static size_t prefix_len(const char *url)
{
  const char *p = strstr(url, "://");
  return p ? strcspn(p + 3, "/?#") + (size_t)(p + 3 - url) : 0;
}

/* The statistics entry of url's origin. Requests to the origin of the
 * previous one, written the same way, find it without parsing the URL. */
static struct pc_http_host_stats *host_stats_of(struct pc_http_session *s, const char *url)
{
  struct pc_http_stats *st = &s->stats;
  size_t plen = prefix_len(url);
  if (s->last_prefix && plen && strlen(s->last_prefix) == plen &&
      memcmp(s->last_prefix, url, plen) == 0)
    return &st->hosts[s->last_host];
  char *host = origin(url);
  size_t i = 0;
  while (i < st->nhosts && strcmp(st->hosts[i].host, host) != 0)
    i++;
  if (i == st->nhosts) {
    st->hosts = pc_xrealloc(st->hosts, (st->nhosts + 1) * sizeof *st->hosts);
    memset(&st->hosts[i], 0, sizeof *st->hosts);
    st->hosts[i].host = host;
    st->nhosts++;
  } else {
    free(host);
  }
  free(s->last_prefix);
  s->last_prefix = plen ? pc_xstrndup(url, plen) : NULL;
  s->last_host = i;
  return &st->hosts[i];
}

static void host_stats_add(struct pc_http_host_stats *hs, const struct pc_http_host_stats *d)
{
  hs->requests += d->requests;
  hs->connections += d->connections;
  hs->reused += d->reused;
  hs->bytes_down += d->bytes_down;
  hs->bytes_up += d->bytes_up;
}

static void collect_info(struct pc_http_req *r)
{
  CURL *e = r->easy;
  struct resp_info *in = &r->info;
  char *u = NULL;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &in->status);
  if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &u) == CURLE_OK && u)
    in->url = u;
  curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &in->version);
  curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &in->connects);
  curl_easy_getinfo(e, CURLINFO_NAMELOOKUP_TIME_T, &in->t_dns);
  curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &in->t_connect);
  curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &in->t_tls);
  curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &in->t_start);
  curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &in->t_total);
  curl_easy_getinfo(e, CURLINFO_SIZE_DOWNLOAD_T, &in->down);
  curl_easy_getinfo(e, CURLINFO_SIZE_UPLOAD_T, &in->up);
  curl_easy_getinfo(e, CURLINFO_HEADER_SIZE, &in->header_bytes);
  curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &in->request_bytes);
}

static const char *version_name(long v)
{
  switch (v) {
  case CURL_HTTP_VERSION_1_0:
    return "1.0";
  case CURL_HTTP_VERSION_1_1:
    return "1.1";
  case CURL_HTTP_VERSION_2_0:
    return "2";
  case CURL_HTTP_VERSION_3:
    return "3";
  }
  return NULL;
}

/* Adds the response just received (one hop of a redirect chain, or the
 * last) to the statistics, under the origin that sent it. */
static void count_response(struct pc_http_session *s, const struct pc_http_req *r, bool failed)
{
  struct pc_http_stats *st = &s->stats;
  struct pc_http_host_stats d = {
      .requests = 1,
      .connections = (uint64_t)(r->info.connects > 0 ? r->info.connects : 0),
      .reused = r->info.connects == 0 && r->info.status > 0,
      .bytes_down = (uint64_t)(r->info.down + r->info.header_bytes),
      .bytes_up = (uint64_t)(r->info.up + r->info.request_bytes),
  };
  st->requests++;
  st->failed += failed;
  st->connections += d.connections;
  st->reused += d.reused;
  st->bytes_down += d.bytes_down;
  st->bytes_up += d.bytes_up;
  host_stats_add(host_stats_of(s, r->info.url ? r->info.url : r->url), &d);
}

/* ----------------------------------------------------------- redirects */

/* pacer follows redirects itself instead of with CURLOPT_FOLLOWLOCATION,
 * because libcurl's rules differ from RFC 9110 as fetch and aiohttp read
 * it: with CURLOPT_CUSTOMREQUEST it replays PUT, PATCH and DELETE on a
 * 303, and it re-sends a PUT or PATCH without its body (but with its
 * Content-Type) on a 301 or 302; and on a redirect to another origin it
 * drops only Authorization and Cookie, not the custom headers that carry
 * secrets. When a response is a redirect, req_finish (a loop callback,
 * never inside libcurl) calls follow_redirect, which changes the request
 * on the same easy handle and adds it again: connections stay in the
 * multi handle's cache and are reused as for any request. */

/* Whether the header line ("Name: value", "Name;" or "Name:") is `name`. */
static bool header_is(const char *line, const char *name)
{
  size_t n = strlen(name);
  return strncasecmp(line, name, n) == 0 && (line[n] == ':' || line[n] == ';');
}

/* The headers that describe a request body (fetch's "request-body-header
 * names", plus Content-Length): they go when the body goes. */
static bool body_header(const char *line)
{
  static const char *const names[] = {"Content-Type", "Content-Length", "Content-Encoding",
                                      "Content-Language", "Content-Location"};
  for (size_t i = 0; i < PC_ARRAY_SIZE(names); i++)
    if (header_is(line, names[i]))
      return true;
  return false;
}

/* Whether the value of the header line is, or contains, a secret: pc_redact
 * changes it exactly then (whatever forms of a secret it knows). */
static bool holds_secret(const char *line)
{
  const char *v = strchr(line, ':');
  if (!v)
    return false; /* "Name;": an empty value */
  v++;
  size_t len = strlen(v), rlen = 0;
  char *red = pc_redact(v, len, &rlen);
  bool hit = rlen != len || memcmp(red, v, len) != 0;
  free(red);
  return hit;
}

/* Whether a and b have the same origin (scheme, host, port: RFC 6454).
 * A URL that does not parse has no origin in common with anything. */
static bool same_origin(const char *a, const char *b)
{
  char *oa = origin(a), *ob = origin(b);
  bool same = strcmp(oa, "?") != 0 && strcasecmp(oa, ob) == 0;
  free(oa);
  free(ob);
  return same;
}

/* The response just received by r is a redirect to `next` (absolute, from
 * CURLINFO_REDIRECT_URL). Sets the next request up on r's easy handle and
 * adds it to the multi handle again. Returns PC_FAIL_NONE when it is on its
 * way; otherwise the request ends with the failure returned and its
 * message in m. */
static enum pc_fail follow_redirect(struct pc_http_req *r, const char *next, struct pc_buf *m)
{
  struct pc_http_session *s = r->s;
  CURL *e = r->easy;
  const char *here = r->info.url ? r->info.url : r->url;
  int status = (int)r->info.status;
  if (r->nredirects >= PC_HTTP_MAX_REDIRECTS) {
    pc_buf_printf(m, "%s %s: too many redirects (more than %d; a redirect loop?), last at %s",
                  r->method, r->url, PC_HTTP_MAX_REDIRECTS, here);
    return PC_FAIL_ERROR;
  }
  if (strncasecmp(next, "http://", 7) != 0 && strncasecmp(next, "https://", 8) != 0) {
    pc_buf_printf(m, "%s %s: %s answered %d with a redirect to %s, which is not an http:// or "
                  "https:// URL", r->method, r->url, here, status, next);
    return PC_FAIL_ERROR;
  }
  /* The Lua API's `timeout` bounds the whole chain. */
  double left = -1;
  if (r->timeout_ms > 0) {
    left = r->timeout_ms - (double)(r->before.total + r->info.t_total) / 1000.0;
    if (left <= 0) {
      char dur[32];
      pc_format_duration(r->timeout_ms, dur, sizeof dur);
      pc_buf_printf(m, "%s %s: timed out after %s", r->method, r->url, dur);
      return PC_FAIL_TIMEOUT;
    }
  }

  count_response(s, r, false);
  r->redirects = pc_xrealloc(r->redirects, (size_t)(r->nredirects + 1) * sizeof *r->redirects);
  r->redirects[r->nredirects].status = status;
  r->redirects[r->nredirects].url = pc_xstrdup(here);
  r->nredirects++;
  const struct resp_info *in = &r->info;
  r->before.dns += in->t_dns;
  r->before.connect += in->t_connect > in->t_dns ? in->t_connect - in->t_dns : 0;
  r->before.tls += in->t_tls > in->t_connect ? in->t_tls - in->t_connect : 0;
  r->before.total += in->t_total;

  /* RFC 9110 15.4: a 303 makes every method but HEAD a GET without a
   * body; a 301 or 302 makes a POST a GET (what every browser, fetch,
   * aiohttp and curl do); every other method, and every method on a 307
   * or 308, is repeated with its body. */
  const char *method = r->as_get ? "GET" : r->method;
  bool to_get = (status == 303 && !r->head && (strcmp(method, "GET") != 0 || r->has_body)) ||
                ((status == 301 || status == 302) && strcmp(method, "POST") == 0);
  /* To another origin: no credentials (what libcurl does for Authorization
   * and Cookie), and no header that carries a secret (X-Api-Key: ...). */
  bool cross = !same_origin(here, next);
  bool cross_secret = false;
  if (to_get || cross) {
    struct curl_slist *kept = NULL;
    for (struct curl_slist *h = r->hdr_list; h; h = h->next) {
      bool drop = (to_get && body_header(h->data)) ||
                  (cross && (header_is(h->data, "Authorization") ||
                             header_is(h->data, "Cookie")));
      if (!drop && cross && holds_secret(h->data))
        drop = cross_secret = true;
      if (!drop)
        kept = curl_slist_append(kept, h->data);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, kept);
    curl_slist_free_all(r->hdr_list);
    r->hdr_list = kept;
  }
  if (to_get) {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    r->as_get = true;
    r->has_body = false;
    r->plain = false;
  }
  /* `here` (the handle's effective URL) is invalid from here on. */
  curl_easy_setopt(e, CURLOPT_URL, next);
  r->info.url = NULL;
  if (left > 0)
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(left));
  if (pc_log_enabled(PC_LOG_DEBUG))
    pc_log(PC_LOG_DEBUG, r->label, "%s %s -> %d, redirected to %s %s%s", r->method,
           r->redirects[r->nredirects - 1].url, status,
           r->as_get ? "GET" : r->method, next,
           cross_secret ? " (without the headers that hold secrets: another origin)" : "");
  /* The next response starts from nothing. A redirect's body is dropped
   * as it arrives (on_header), unless its Location came past HEADERS_MAX:
   * then what reached a save_to file goes. */
  if (r->out.fd >= 0 && r->received > 0 &&
      (pc_outfile_is_stream(&r->out) || ftruncate(r->out.fd, 0) != 0 ||
       lseek(r->out.fd, 0, SEEK_SET) != 0)) {
    pc_buf_printf(m, "%s %s: cannot write \"%s\": %s", r->method, r->url, r->save_to,
                  pc_outfile_is_stream(&r->out) ? "a redirect's body already reached it"
                                                : strerror(errno));
    return PC_FAIL_ERROR;
  }
  r->received = 0;
  r->too_big = false;
  r->discard = false;
  r->errbuf[0] = '\0';
  pc_buf_reset(&r->body);
  CURLMcode mc = curl_multi_add_handle(s->multi, e);
  if (mc != CURLM_OK) {
    pc_buf_printf(m, "%s %s: cannot follow the redirect to %s: %s", r->method, r->url, next,
                  curl_multi_strerror(mc));
    return PC_FAIL_ERROR;
  }
  r->next = s->live;
  if (s->live)
    s->live->prev = r;
  s->live = r;
  return PC_FAIL_NONE;
}

static void req_finish(struct pc_http_req *r, CURLcode rc)
{
  struct pc_http_session *s = r->s;
  collect_info(r);
  curl_multi_remove_handle(s->multi, r->easy);
  unlink_live(s, r);

  struct pc_http_result res;
  memset(&res, 0, sizeof res);
  res.req = r;
  res.retry_after_ms = -1;
  struct pc_buf msg;
  pc_buf_init(&msg, 8192);
  enum pc_fail redirect_fail = PC_FAIL_NONE;
  if (rc == CURLE_OK && r->follow && is_redirect(r->info.status)) {
    char *next = NULL;
    if (curl_easy_getinfo(r->easy, CURLINFO_REDIRECT_URL, &next) == CURLE_OK && next) {
      next = pc_xstrdup(next); /* libcurl's copy goes with the next transfer */
      redirect_fail = follow_redirect(r, next, &msg);
      free(next);
      if (redirect_fail == PC_FAIL_NONE) {
        pc_buf_free(&msg);
        return; /* the next request of the chain is on its way */
      }
    }
  }
  if (redirect_fail != PC_FAIL_NONE) {
    res.fail = redirect_fail;
  } else if (rc != CURLE_OK) {
    pc_buf_free(&r->body); /* not reported: give its memory back first */
    res.fail = describe_failure(r, rc, &msg);
  } else {
    res.fail = PC_FAIL_NONE;
    if (r->out.fd >= 0) {
      char *werr = NULL;
      if (!status_ok(r, r->info.status)) {
        pc_outfile_discard(&r->out); /* an error status: no file */
      } else if (pc_outfile_commit(&r->out, &werr) != 0) {
        res.fail = PC_FAIL_ERROR;
        pc_buf_printf(&msg, "%s %s: save_to: %s", r->method, r->url, werr);
      } else {
        r->saved = true;
      }
      free(werr);
    }
  }
  if (r->info.status > 0)
    res.status = (int)r->info.status;
  res.retry_after_ms = retry_after(&r->hdrs);
  res.error = res.fail != PC_FAIL_NONE ? msg.data : NULL;
  res.nothing_sent = !r->sent;

  count_response(s, r, res.fail != PC_FAIL_NONE);

  if (pc_log_enabled(PC_LOG_DEBUG)) {
    const char *v = version_name(r->info.version);
    if (res.fail == PC_FAIL_NONE)
      pc_log(PC_LOG_DEBUG, r->label, "%s %s -> %ld (HTTP/%s, %s connection, %.1fms)", r->method,
             r->url, r->info.status, v ? v : "?", r->info.connects ? "new" : "reused",
             (double)r->info.t_total / 1000.0);
    else
      pc_log(PC_LOG_DEBUG, r->label, "%s", msg.data);
  }

  r->cb(r->data, &res);
  pc_buf_free(&msg);
  /* A handle that met a system error (a failed transfer, or one that
   * succeeded after one: a connect refused on one address, a retry) keeps
   * its errno for good (see fresh_os_errno): it is not recycled. One whose
   * transfer libcurl retried on a new connection (a kept-alive one died
   * under it) goes through curl_easy_reset: libcurl before 8.17 counts
   * those retries per handle, never per transfer (curl/curl#18926), and
   * gives up after 5, so a handle kept as it is would fail a later request
   * that a fresh handle retries. */
  long oserr = 0;
  curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
  if (rc != CURLE_OK || oserr != 0)
    curl_easy_cleanup(r->easy);
  else /* each redirect pacer followed is one send of its own */
    recycle_easy(s, r->easy, r->plain && r->sends <= r->nredirects + 1);
  r->easy = NULL;
  req_free(r);
}

static void drain(struct pc_http_session *s)
{
  CURLMsg *m;
  int left;
  while (s->multi && (m = curl_multi_info_read(s->multi, &left))) {
    if (m->msg != CURLMSG_DONE)
      continue;
    struct pc_http_req *r = NULL;
    CURLcode rc = m->data.result;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    assert(r);
    req_finish(r, rc); /* m is invalid from here on */
  }
}

/* --------------------------------------------------------- Lua results */

/* Appends up to `max` bytes of s on one line, control characters replaced.
 * Secrets are redacted before the cut (see redact.h). */
static void append_excerpt(struct pc_buf *b, const char *body, size_t body_len, size_t max)
{
  while (body_len > 0 && strchr(" \t\r\n", body[0])) {
    body++;
    body_len--;
  }
  bool more;
  size_t len;
  char *red = pc_redact_head(body, body_len, max, &len, &more);
  const char *s = red;
  size_t n = len > max ? max : len;
  while (n > 0 && n < len && ((unsigned char)s[n] & 0xC0) == 0x80)
    n--; /* end on a UTF-8 boundary */
  bool space = false;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t') {
      space = true; /* runs of white space become one space */
      continue;
    }
    if (space)
      pc_buf_puts(b, " ");
    space = false;
    char c = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    pc_buf_append(b, &c, 1);
  }
  if (n < len || more)
    pc_buf_puts(b, "...");
  free(red);
}

/* A result's lazy fields. Every result table of a Lua state shares one
 * metatable (made on first use, kept in the registry) whose __index builds
 * `json`, `headers` and `timing` when first read and rawsets them, so each
 * is built at most once, and only if something reads it. What they are
 * built from is a `struct lazy` (a full userdata: the header block, the
 * timings, the request's method and step label; user value 1: the URL),
 * found through a weak-keyed table (registry, and upvalue 1 of the
 * metamethods) from the result, so it lives exactly as long as the result
 * and nothing shows in the table itself. `__pairs` builds `headers` and
 * `timing` first, so pairs(), json() and interpolation see every field;
 * a raw next() sees them only once built. The metatable is protected
 * (__metatable): one plugin cannot change every result. */
enum { LAZY_HEADERS = 1, LAZY_TIMING = 2 };

struct lazy {
  unsigned built;   /* LAZY_* already set in the table */
  double timing[5]; /* dns, connect, tls, ttfb, total, in ms */
  size_t hdrs_len;
  size_t label_off; /* of the step label in data; 0: none ("http") */
  char data[];      /* header block, method NUL, [label NUL] */
};

static const char *const timing_names[5] = {"dns", "connect", "tls", "ttfb", "total"};
static const char result_mt_key = 'm';   /* registry: the shared metatable */
static const char result_data_key = 'd'; /* registry: result -> struct lazy */

/* The struct lazy of the result at t, or NULL. */
static struct lazy *lazy_of(lua_State *L, int t)
{
  lua_pushvalue(L, t);                          /* result */
  lua_rawget(L, lua_upvalueindex(1));           /* lazy or nil */
  struct lazy *z = lua_touserdata(L, -1);
  lua_pop(L, 1); /* t keeps it alive */
  return z;
}

/* "GET URL (step LABEL)": the request, for messages. */
static void put_request(lua_State *L, const struct lazy *z, int zi, struct pc_buf *b)
{
  lua_getiuservalue(L, zi, 1); /* ..., url */
  pc_buf_printf(b, "%s %s", z->data + z->hdrs_len, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (z->label_off)
    pc_buf_printf(b, " (step %s)", z->data + z->label_off);
}

/* Decodes `body` (t at 1) with json.decode (upvalue 2, runner/script/json.c); pushes the value. */
static int push_json(lua_State *L)
{
  lua_pushliteral(L, "body");
  if (lua_rawget(L, 1) != LUA_TSTRING) /* t, k, body */
    return 0;
  size_t len;
  const char *body = lua_tolstring(L, 3, &len);
  lua_pushvalue(L, lua_upvalueindex(2)); /* t, k, body, decode */
  lua_pushvalue(L, 3);                   /* t, k, body, decode, body */
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* t, k, body, value or message */
    struct pc_buf b;
    pc_buf_init(&b, 4096);
    pc_buf_puts(&b, "response body of ");
    lua_pushvalue(L, 1);                /* ..., message, t */
    lua_rawget(L, lua_upvalueindex(1)); /* ..., message, lazy */
    struct lazy *z = lua_touserdata(L, -1);
    if (z)
      put_request(L, z, lua_gettop(L), &b);
    lua_pop(L, 1); /* ..., message */
    pc_buf_puts(&b, " is not JSON: ");
    if (len == 0) {
      pc_buf_puts(&b, "the body is empty");
    } else {
      pc_buf_printf(&b, "%s; it starts with: ", lua_tostring(L, -1));
      append_excerpt(&b, body, len, 80);
    }
    lua_pushlstring(L, b.data, b.len);
    pc_buf_free(&b);
    return lua_error(L);
  }
  lua_pushliteral(L, "json"); /* t, k, body, value, "json" */
  lua_pushvalue(L, -2);       /* t, k, body, value, "json", value */
  lua_rawset(L, 1);           /* t, k, body, value */
  return 1;
}

/* Pushes the headers table parsed from a raw header block. */
static void push_headers(lua_State *L, const char *data, size_t len)
{
  lua_newtable(L); /* headers */
  int t = lua_gettop(L);
  const char *p = data, *end = data + len;
  char name[256];
  bool have_name = false;
  while (p < end) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    while (le > p && le[-1] == '\r')
      le--;
    if (le > p && (*p == ' ' || *p == '\t') && have_name) {
      /* obsolete line folding: continues the previous value */
      const char *v = p;
      while (v < le && (*v == ' ' || *v == '\t'))
        v++;
      lua_getfield(L, t, name);                /* headers, old */
      lua_pushliteral(L, " ");                 /* headers, old, " " */
      lua_pushlstring(L, v, (size_t)(le - v)); /* headers, old, " ", more */
      lua_concat(L, 3);                        /* headers, value */
      lua_setfield(L, t, name);                /* headers */
    } else {
      const char *colon = memchr(p, ':', (size_t)(le - p));
      if (colon && colon > p && (size_t)(colon - p) < sizeof name) {
        size_t nl = (size_t)(colon - p);
        for (size_t i = 0; i < nl; i++)
          name[i] = (char)tolower((unsigned char)p[i]);
        name[nl] = '\0';
        have_name = true;
        const char *v = colon + 1;
        while (v < le && (*v == ' ' || *v == '\t'))
          v++;
        const char *ve = le;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
          ve--;
        if (lua_getfield(L, t, name) == LUA_TSTRING) { /* headers, old */
          lua_pushliteral(L, ", ");                      /* headers, old, ", " */
          lua_pushlstring(L, v, (size_t)(ve - v));       /* headers, old, ", ", more */
          lua_concat(L, 3);                              /* headers, value */
        } else {
          lua_pop(L, 1);
          lua_pushlstring(L, v, (size_t)(ve - v)); /* headers, value */
        }
        lua_setfield(L, t, name); /* headers */
      } else {
        have_name = false;
      }
    }
    p = eol ? eol + 1 : end;
  }
}

/* Whether t[k] is not set (raw). */
static bool raw_absent(lua_State *L, int t, const char *k)
{
  lua_pushstring(L, k);
  bool absent = lua_rawget(L, t) == LUA_TNIL;
  lua_pop(L, 1);
  return absent;
}

/* Builds the lazy fields in `which` not built yet into the table at t
 * (unless the table's owner has set them already). */
static void lazy_build(lua_State *L, int t, struct lazy *z, unsigned which)
{
  which &= ~z->built;
  z->built |= which;
  if ((which & LAZY_HEADERS) && raw_absent(L, t, "headers")) {
    push_headers(L, z->data, z->hdrs_len); /* headers */
    lua_setfield(L, t, "headers");         /* (t has no __newindex) */
  }
  if ((which & LAZY_TIMING) && raw_absent(L, t, "timing")) {
    lua_createtable(L, 0, 5); /* timing */
    for (int i = 0; i < 5; i++) {
      lua_pushnumber(L, z->timing[i]);
      lua_setfield(L, -2, timing_names[i]);
    }
    lua_setfield(L, t, "timing");
  }
}

/* __index (t, k); upvalues: the weak table of struct lazy, json.decode. */
static int result_index(lua_State *L)
{
  if (lua_type(L, 2) != LUA_TSTRING)
    return 0;
  const char *k = lua_tostring(L, 2);
  unsigned which = 0;
  if (strcmp(k, "json") == 0)
    return push_json(L);
  if (strcmp(k, "headers") == 0)
    which = LAZY_HEADERS;
  else if (strcmp(k, "timing") == 0)
    which = LAZY_TIMING;
  struct lazy *z = which ? lazy_of(L, 1) : NULL;
  if (!z || (z->built & which))
    return 0; /* built once: a field the caller removed stays removed */
  lazy_build(L, 1, z, which);
  lua_pushvalue(L, 2); /* t, k, k */
  lua_rawget(L, 1);    /* t, k, value */
  return 1;
}

static int result_next(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 2);
  if (lua_next(L, 1))
    return 2;
  lua_pushnil(L);
  return 1;
}

/* __pairs (t): next, t, nil once headers and timing are in the table. */
static int result_pairs(lua_State *L)
{
  struct lazy *z = lazy_of(L, 1);
  if (z)
    lazy_build(L, 1, z, LAZY_HEADERS | LAZY_TIMING);
  lua_pushcfunction(L, result_next); /* t, next */
  lua_pushvalue(L, 1);               /* t, next, t */
  lua_pushnil(L);                    /* t, next, t, nil */
  return 3;
}

/* Pushes the shared metatable, then the weak table of struct lazy. */
static void push_result_mt(lua_State *L)
{
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &result_mt_key) == LUA_TTABLE) { /* mt */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &result_data_key);                 /* mt, data */
    return;
  }
  lua_pop(L, 1);
  lua_createtable(L, 0, 3);       /* mt */
  lua_createtable(L, 0, 0);       /* mt, data */
  lua_createtable(L, 0, 1);       /* mt, data, datamt */
  lua_pushliteral(L, "k");        /* mt, data, datamt, "k" */
  lua_setfield(L, -2, "__mode");  /* mt, data, datamt */
  lua_setmetatable(L, -2);        /* mt, data */
  lua_pushvalue(L, -1);           /* mt, data, data */
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE); /* mt, data, data, loaded */
  if (lua_getfield(L, -1, PC_JSON_MODULE) == LUA_TTABLE) /* mt, data, data, loaded, json */
    lua_getfield(L, -1, "decode");                /* ..., json, decode */
  else
    lua_pushnil(L);
  lua_replace(L, -3);                       /* mt, data, data, decode, json */
  lua_pop(L, 1);                            /* mt, data, data, decode */
  lua_pushcclosure(L, result_index, 2);     /* mt, data, __index */
  lua_setfield(L, -3, "__index");           /* mt, data */
  lua_pushvalue(L, -1);                     /* mt, data, data */
  lua_pushcclosure(L, result_pairs, 1);     /* mt, data, __pairs */
  lua_setfield(L, -3, "__pairs");           /* mt, data */
  lua_pushliteral(L, "http result");        /* mt, data, name */
  lua_setfield(L, -3, "__metatable");       /* mt, data */
  lua_pushvalue(L, -2);                     /* mt, data, mt */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &result_mt_key); /* mt, data */
  lua_pushvalue(L, -1);                     /* mt, data, data */
  lua_rawsetp(L, LUA_REGISTRYINDEX, &result_data_key); /* mt, data */
}

static double to_ms(curl_off_t us)
{
  return us > 0 ? (double)llround((double)us / 10.0) / 100.0 : 0.0;
}

/* lua_pcall'd by pc_http_result_fill (1: the result table, 2: the struct
 * pc_http_result as a light userdata): everything it allocates, the body
 * above all, may run out of memory. */
static int result_fill_p(lua_State *L)
{
  const struct pc_http_result *res = lua_touserdata(L, 2);
  const struct pc_http_req *r = res->req;
  const struct resp_info *in = &r->info;
  const int idx = 1;
  lua_settop(L, 1);
  lua_pushstring(L, r->method);
  lua_setfield(L, idx, "method");
  lua_pushstring(L, in->url ? in->url : r->url); /* url */
  lua_pushvalue(L, -1);                          /* url, url */
  lua_setfield(L, idx, "url");                   /* url */
  if (res->status <= 0)
    return 0;
  lua_pushinteger(L, res->status);
  lua_setfield(L, idx, "status");
  const char *v = version_name(in->version);
  if (v) {
    lua_pushstring(L, v);
    lua_setfield(L, idx, "http_version");
  }
  lua_pushboolean(L, in->connects == 0);
  lua_setfield(L, idx, "reused");
  if (r->saved) {
    lua_pushstring(L, r->save_to);
    lua_setfield(L, idx, "saved_to");
  } else if (res->fail == PC_FAIL_NONE) {
    /* The body (with save_to and a status that was not accepted: its start). */
    if ((int64_t)r->body.len < r->received)
      pc_secret_cut(r->body.data, r->body.len); /* its start: cut by pacer */
    lua_pushlstring(L, r->body.data, r->body.len);
    lua_setfield(L, idx, "body");
  }

  /* headers, timing and json: built on first use (see struct lazy) */
  size_t mlen = strlen(r->method) + 1;
  bool labelled = r->label && strcmp(r->label, "http") != 0;
  size_t llen = labelled ? strlen(r->label) + 1 : 0;
  struct lazy *z = lua_newuserdatauv(L, sizeof *z + r->hdrs.len + mlen + llen, 1);
  /* url, lazy */
  z->built = 0;
  /* After redirects: the phases of every response added up, and ttfb and
   * total counted from the start of the first request. */
  curl_off_t dns = in->t_dns, conn = in->t_connect, tls = in->t_tls;
  const struct hop_sums *p = &r->before;
  z->timing[0] = to_ms(p->dns + dns);
  z->timing[1] = to_ms(p->connect + (conn > dns ? conn - dns : 0));
  z->timing[2] = to_ms(p->tls + (tls > conn ? tls - conn : 0));
  z->timing[3] = to_ms(p->total + in->t_start);
  z->timing[4] = to_ms(p->total + in->t_total);
  z->hdrs_len = r->hdrs.len;
  memcpy(z->data, r->hdrs.data, r->hdrs.len);
  memcpy(z->data + r->hdrs.len, r->method, mlen);
  z->label_off = labelled ? r->hdrs.len + mlen : 0;
  if (labelled)
    memcpy(z->data + z->label_off, r->label, llen);
  lua_rotate(L, -2, 1);        /* lazy, url */
  lua_setiuservalue(L, -2, 1); /* lazy */
  push_result_mt(L);           /* lazy, mt, data */
  lua_rotate(L, -2, 1);        /* lazy, data, mt */
  lua_setmetatable(L, idx);    /* lazy, data */
  lua_pushvalue(L, idx);       /* lazy, data, result */
  lua_rotate(L, -3, -1);       /* data, result, lazy */
  lua_rawset(L, -3);           /* data */
  return 0;
}

int pc_http_result_fill(const struct pc_http_result *res, struct pc_lua *h, int idx, char **err)
{
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  if (!lua_checkstack(L, 8))
    goto no_memory;
  lua_pushcfunction(L, result_fill_p);    /* fill */
  lua_pushvalue(L, idx);                  /* fill, result */
  lua_pushlightuserdata(L, (void *)res);  /* fill, result, res */
  if (lua_pcall(L, 2, 0, 0) == LUA_OK)
    return 0;
  lua_pop(L, 1); /* the error: only memory can run out here (no metamethods run) */
no_memory:
  *err = pc_asprintf("%s %s: the response does not fit in memory (%zu bytes of body)",
                     res->req->method, res->req->url, res->req->body.len);
  return -1;
}

/* ============================================================ the action */

struct pc_http_session *pc_http_session_of(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_HTTP);
  if (!*slot) {
    struct pc_http_limits lim = {PC_HTTP_MAX_CONNECTIONS_DEFAULT, PC_HTTP_MAX_PER_HOST_DEFAULT};
    const struct pc_tmpl *d = pc_run_workflow_def(run)->http_defaults;
    const struct pc_tmpl *v;
    if ((v = pc_tmpl_get(d, "max_connections")) && v->kind == PC_T_INT && v->u.i >= 0)
      lim.max_connections = (long)v->u.i;
    if ((v = pc_tmpl_get(d, "max_connections_per_host")) && v->kind == PC_T_INT && v->u.i >= 0)
      lim.max_per_host = (long)v->u.i;
    *slot = pc_http_session_new(pc_run_loop(run), &lim);
  }
  return *slot;
}

/* Copies the table at src into the table at dst (keys compared as given,
 * or case-insensitively for headers: a later name replaces an earlier one
 * that differs only in case). */
static void merge_into(lua_State *L, int dst, int src, bool nocase)
{
  lua_pushnil(L);
  while (lua_next(L, src)) { /* key, value */
    if (nocase && lua_type(L, -2) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -2);
      lua_pushnil(L);
      while (lua_next(L, dst)) { /* key, value, dkey, dvalue */
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && strcasecmp(lua_tostring(L, -1), k) == 0 &&
            strcmp(lua_tostring(L, -1), k) != 0) {
          lua_pushvalue(L, -1); /* key, value, dkey, dkey */
          lua_pushnil(L);
          lua_rawset(L, dst); /* key, value, dkey */
          lua_pop(L, 1);
          lua_pushnil(L); /* restart: the table changed */
        }
      }
    }
    lua_pushvalue(L, -2); /* key, value, key */
    lua_insert(L, -2);    /* key, key, value */
    lua_rawset(L, dst);   /* key */
  }
}

int pc_http_push_merged(struct pc_run *run, int idx, int scope_ref, char **err)
{
  struct pc_lua *h = pc_run_lua(run);
  lua_State *L = pc_lua_state(h);
  idx = lua_absindex(L, idx);
  const struct pc_tmpl *d = pc_run_workflow_def(run)->http_defaults;
  if (!d || !lua_istable(L, idx)) {
    lua_pushvalue(L, idx);
    return 0;
  }
  char *e = NULL;
  if (pc_lua_eval_tmpl(h, d, scope_ref, &e) != 0) { /* defaults */
    *err = pc_asprintf("defaults.http: %s", e);
    free(e);
    return -1;
  }
  int D = lua_gettop(L);
  if (!lua_istable(L, D)) {
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    return 0;
  }
  lua_newtable(L); /* defaults, merged */
  int M = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, D)) { /* defaults, merged, key, value */
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    if (k && !in_list(k, request_only, PC_ARRAY_SIZE(request_only))) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, M); /* defaults, merged, key */
    } else {
      lua_pop(L, 1);
    }
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* defaults, merged, key, value */
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    bool keywise = k && (strcmp(k, "headers") == 0 || strcmp(k, "query") == 0);
    if (keywise && lua_istable(L, -1)) {
      if (lua_getfield(L, M, k) == LUA_TTABLE) { /* ..., key, value, dvalue */
        lua_newtable(L);                         /* ..., key, value, dvalue, copy */
        int C = lua_gettop(L);
        merge_into(L, C, C - 1, false);
        merge_into(L, C, C - 2, strcmp(k, "headers") == 0);
        lua_replace(L, C - 2); /* ..., key, copy, dvalue */
      }
      lua_pop(L, 1); /* defaults, merged, key, value */
    }
    lua_pushvalue(L, -2); /* defaults, merged, key, value, key */
    lua_insert(L, -2);    /* defaults, merged, key, key, value */
    lua_rawset(L, M);     /* defaults, merged, key */
  }
  lua_remove(L, D); /* merged */
  return 0;
}

static void on_http_done(void *data, const struct pc_http_result *r)
{
  struct pc_attempt *a = data;
  a->data = NULL;
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  char *err = NULL;
  int rc = pc_http_result_fill(r, h, -1, &err);
  lua_pop(L, 1);
  a->status = r->status;
  a->retry_after_ms = r->retry_after_ms;
  a->nothing_sent = r->nothing_sent;
  if (rc != 0) {
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  pc_attempt_done(a, r->fail, r->error);
}

/* pc_step_label(step), formatted once per step rather than per request. */
static const char *step_label(struct pc_http_session *s, const struct pc_step *step)
{
  for (size_t i = 0; i < LABELS_MAX; i++)
    if (s->labels[i].step == step && s->labels[i].label)
      return s->labels[i].label;
  size_t i = s->nextlabel++ % LABELS_MAX;
  free(s->labels[i].label);
  s->labels[i].step = step;
  s->labels[i].label = pc_step_label(step);
  return s->labels[i].label;
}

static void http_start(struct pc_attempt *a)
{
  struct pc_lua *h = pc_run_lua(a->run);
  lua_State *L = pc_lua_state(h);
  char *err = NULL;
  struct pc_http_session *s = pc_http_session_of(a->run);
  if (!s) {
    const char *why = pc_curl_load_error();
    pc_attempt_done(a, PC_FAIL_ERROR, why ? why : "http: libcurl could not be initialised");
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->params_ref); /* params */
  if (pc_http_push_merged(a->run, -1, a->scope_ref, &err) != 0) {
    lua_pop(L, 1);
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  /* params, merged */
  const char *label = step_label(s, a->step);
  struct pc_http_start_opts o = {
      .label = label,
      .save_ok = a->step->expect.status,
      .nsave_ok = a->step->expect.nstatus,
  };
  struct pc_http_req *r = NULL;
  int rc = pc_http_start(s, h, -1, &o, on_http_done, a, &r, &err);
  lua_pop(L, 2);
  if (rc != 0) {
    pc_attempt_done(a, PC_FAIL_ERROR, err);
    free(err);
    return;
  }
  a->data = r;
  a->non_idempotent = pc_http_req_non_idempotent(r);
}

static void http_cancel(struct pc_attempt *a)
{
  struct pc_http_req *r = a->data;
  if (!r)
    return;
  a->data = NULL;
  /* Keep what was asked for: reports show the URL of a cancelled step. */
  if (a->result_ref != LUA_NOREF) {
    lua_State *L = pc_lua_state(pc_run_lua(a->run));
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
    lua_pushstring(L, r->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r->url);
    lua_setfield(L, -2, "url");
    lua_pop(L, 1);
  }
  a->nothing_sent = pc_http_req_nothing_sent(r); /* a step timeout while connecting */
  pc_http_cancel(r);
}

/* "METHOD URL" of the attempt, from the result table (http_cancel keeps
 * them there), for the engine's own messages: a step timeout. */
static void http_subject(struct pc_attempt *a, struct pc_buf *out)
{
  if (a->result_ref == LUA_NOREF)
    return;
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  lua_getfield(L, -1, "method");                    /* result, method */
  lua_getfield(L, -2, "url");                       /* result, method, url */
  if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
    pc_buf_printf(out, "%s %s", lua_tostring(L, -2), lua_tostring(L, -1));
  lua_pop(L, 3);
}

static void http_describe(struct pc_attempt *a, struct pc_buf *out)
{
  lua_State *L = pc_lua_state(pc_run_lua(a->run));
  if (a->result_ref == LUA_NOREF)
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->result_ref); /* result */
  int t = lua_gettop(L);
  lua_getfield(L, t, "method"); /* result, method */
  lua_getfield(L, t, "url");    /* result, method, url */
  if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
    pc_buf_printf(out, "; %s %s -> %d", lua_tostring(L, -2), lua_tostring(L, -1), a->status);
    lua_pushliteral(L, "body"); /* ..., "body" */
    if (lua_rawget(L, t) == LUA_TSTRING) {
      size_t len;
      const char *b = lua_tolstring(L, -1, &len);
      if (len) {
        pc_buf_puts(out, ": ");
        append_excerpt(out, b, len, EXCERPT_MAX);
      }
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 3);
}

static void http_run_cleanup(struct pc_run *run)
{
  void **slot = pc_run_action_slot(run, PC_ACT_HTTP);
  struct pc_http_session *s = *slot;
  *slot = NULL;
  pc_http_session_close(s);
}

const struct pc_action_ops pc_http_ops = {
    .action = PC_ACT_HTTP,
    .key = "http",
    .load = http_load,
    .start = http_start,
    .cancel = http_cancel,
    .describe = http_describe,
    .subject = http_subject,
    .run_cleanup = http_run_cleanup,
    .default_on = PC_ON_NETWORK | PC_ON_TIMEOUT,
    .has_status = true,
    .fills_result = true,
};

/* =========================================================== statistics */

void pc_http_session_stats(const struct pc_http_session *s, struct pc_http_stats *out)
{
  memset(out, 0, sizeof *out);
  if (!s)
    return;
  *out = s->stats;
  out->hosts = s->stats.nhosts ? pc_xcalloc(s->stats.nhosts, sizeof *out->hosts) : NULL;
  for (size_t i = 0; i < s->stats.nhosts; i++) {
    out->hosts[i] = s->stats.hosts[i];
    out->hosts[i].host = pc_xstrdup(s->stats.hosts[i].host);
  }
}

void pc_http_stats_get(struct pc_run *run, struct pc_http_stats *out)
{
  pc_http_session_stats(*pc_run_action_slot(run, PC_ACT_HTTP), out);
}

void pc_http_stats_free(struct pc_http_stats *st)
{
  for (size_t i = 0; i < st->nhosts; i++)
    free(st->hosts[i].host);
  free(st->hosts);
  st->hosts = NULL;
  st->nhosts = 0;
}
