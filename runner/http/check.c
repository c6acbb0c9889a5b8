/* check.c: the load-time checks of a step's `http:` map and of
 * `defaults.http` (see check.h), on the YAML nodes and the templates the
 * loader made of them, so every problem is reported with its position.
 * Values written with ${{ }} are known only at run time: they are checked
 * then, by spec.c, with the same messages. */
#include "http/check.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/action.h"
#include "http/rules.h"
#include "http/spec.h"
#include "base/util.h"

static bool in_list(const char *s, const char *const *list, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, list[i]) == 0)
      return true;
  return false;
}

static const char *const defaults_keys[] = {
    "query",    "headers",          "connect_timeout",    "follow_redirects",
    "http_version", "insecure",     "ca_file",            "max_response_bytes",
    "max_connections", "max_connections_per_host", "trace_context",
    /* issue 15 */
    "cookies", "auth", "cert", "key", "key_password", "tls_version", "proxy", "resolve",
    "connect_to", "unix_socket", "max_redirects", "compressed"};

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
    if (!pc_http_header_name_valid(k->str, k->len)) {
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
        if (p->lit && !pc_http_header_value_valid(p->lit, p->lit_len))
          crlf = true;
      }
    } else if (!dynamic(vt) && v->kind == PC_NODE_SCALAR) {
      crlf = !pc_http_header_value_valid(v->str, v->len);
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
  if (dynamic(t) || pc_http_method_parse(n->str) >= 0)
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

/* issue 15: `cookies`: true, false, or a map of cookie names to text. */
static int check_cookies(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (dynamic(t) || (n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) == PC_SCALAR_BOOL))
    return 0;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "http.cookies: expected true, false or a map of cookie names to "
                  "values, got %s", kind_of(n));
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (!pc_http_header_name_valid(k->str, k->len)) {
      pc_load_error(c, k, "http.cookies: \"%s\" is not a valid cookie name", k->str);
      bad = -1;
    }
    if (!plain_scalar(v) && !dynamic(vt)) {
      pc_load_error(c, v, "http.cookies: the value of %s must be text, got %s", k->str,
                    kind_of(v));
      bad = -1;
    } else if (!dynamic(vt) && v->kind == PC_NODE_SCALAR && strpbrk(v->str, ";\r\n")) {
      pc_load_error(c, v, "http.cookies: the value of %s contains a `;` or a control "
                    "character, which a Cookie header cannot carry", k->str);
      bad = -1;
    }
  }
  return bad;
}

/* issue 15: `auth`: one of {basic: {user, password}}, {digest: {user,
 * password}}, {bearer: TOKEN}. */
static int check_auth(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (t && t->kind == PC_T_EXPR)
    return 0;
  static const char *const kinds[] = {"basic", "digest", "bearer"};
  if (n->kind != PC_NODE_MAP || n->n != 1) {
    pc_load_error(c, n, "http.auth: expected a map with one of basic, digest or bearer%s%s",
                  n->kind == PC_NODE_MAP ? "" : ", got ", n->kind == PC_NODE_MAP ? "" : kind_of(n));
    return -1;
  }
  const struct pc_node *k = n->keys[0], *v = n->items[0];
  const struct pc_tmpl *vt = pc_tmpl_at(t, 0);
  if (!in_list(k->str, kinds, PC_ARRAY_SIZE(kinds))) {
    pc_load_error(c, k, "http.auth: unknown kind \"%s\" (expected basic, digest or bearer)",
                  k->str);
    return -1;
  }
  if (strcmp(k->str, "bearer") == 0) {
    return check_text(c, v, vt, "auth.bearer");
  }
  if (vt && vt->kind == PC_T_EXPR)
    return 0;
  if (v->kind != PC_NODE_MAP) {
    pc_load_error(c, v, "http.auth.%s: expected a map {user, password}, got %s", k->str,
                  kind_of(v));
    return -1;
  }
  static const char *const keys[] = {"user", "password"};
  int bad = 0;
  for (size_t i = 0; i < v->n; i++) {
    const struct pc_node *ck = v->keys[i], *cv = v->items[i];
    char *w = pc_asprintf("auth.%s.%s", k->str, ck->str);
    if (!in_list(ck->str, keys, 2)) {
      pc_load_error(c, ck, "http.auth.%s: unknown key \"%s\" (expected user and password)",
                    k->str, ck->str);
      bad = -1;
    } else if (check_text(c, cv, pc_tmpl_at(vt, i), w) != 0) {
      bad = -1;
    } else if (strcmp(ck->str, "user") == 0 && !dynamic(pc_tmpl_at(vt, i)) &&
               strchr(cv->str, ':')) {
      pc_load_error(c, cv, "http.auth.%s.user contains `:`, which Basic and Digest "
                    "credentials cannot carry in a user name", k->str);
      bad = -1;
    }
    free(w);
  }
  for (size_t i = 0; i < 2 && !bad; i++)
    if (!pc_node_get(v, keys[i])) {
      pc_load_error(c, v, "http.auth.%s: `%s` is missing", k->str, keys[i]);
      bad = -1;
    }
  return bad;
}

/* issue 15: `multipart`: part names to text, or to {value | file, type,
 * filename}. */
static int check_parts(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (t && t->kind == PC_T_EXPR)
    return 0;
  if (n->kind != PC_NODE_MAP) {
    pc_load_error(c, n, "http.multipart: expected a map of part names to text or {file: PATH}, "
                  "got %s", kind_of(n));
    return -1;
  }
  static const char *const keys[] = {"value", "file", "type", "filename"};
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (dynamic(vt) || plain_scalar(v))
      continue;
    if (v->kind != PC_NODE_MAP) {
      pc_load_error(c, v, "http.multipart.%s: expected text or {file: PATH}, got %s", k->str,
                    kind_of(v));
      bad = -1;
      continue;
    }
    int given = 0;
    for (size_t j = 0; j < v->n; j++) {
      const struct pc_node *pk = v->keys[j];
      char *w = pc_asprintf("multipart.%s.%s", k->str, pk->str);
      if (!in_list(pk->str, keys, PC_ARRAY_SIZE(keys))) {
        pc_load_error(c, pk, "http.multipart.%s: unknown key \"%s\" (expected value or file, "
                      "type, filename)", k->str, pk->str);
        bad = -1;
      } else if (check_text(c, v->items[j], pc_tmpl_at(vt, j), w) != 0) {
        bad = -1;
      }
      free(w);
      given += strcmp(pk->str, "value") == 0 || strcmp(pk->str, "file") == 0;
    }
    if (given != 1 && !bad) {
      pc_load_error(c, v, "http.multipart.%s: give one of value and file", k->str);
      bad = -1;
    }
  }
  return bad;
}

/* issue 15: `resolve` (a map of HOST:PORT to an address) and `connect_to`
 * (a list of HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT); the run-time
 * reader (spec.c) checks the same, and evaluated values. */
static int check_routes(struct pc_load_ctx *c, const char *k, const struct pc_node *n,
                        const struct pc_tmpl *t)
{
  if (t && t->kind == PC_T_EXPR)
    return 0;
  bool resolve = strcmp(k, "resolve") == 0;
  if (n->kind != (resolve ? PC_NODE_MAP : PC_NODE_SEQ)) {
    pc_load_error(c, n, resolve ? "http.resolve: expected a map of HOST:PORT to addresses, got %s"
                                : "http.connect_to: expected a list of HOST:PORT:CONNECT-TO-HOST:"
                                  "CONNECT-TO-PORT, got %s", kind_of(n));
    return -1;
  }
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *v = n->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (resolve) {
      const struct pc_node *key = n->keys[i];
      const char *colon = strrchr(key->str, ':');
      char *end = NULL;
      long port = colon ? strtol(colon + 1, &end, 10) : 0;
      if (!colon || colon == key->str || !colon[1] || *end || port < 1 || port > 65535) {
        pc_load_error(c, key, "http.resolve: \"%s\" is not HOST:PORT", key->str);
        bad = -1;
      }
      if (check_text(c, v, vt, "resolve") != 0)
        bad = -1;
      else if (!dynamic(vt) && strpbrk(v->str, " \t\r\n")) {
        pc_load_error(c, v, "http.resolve: the address for %s must be an IP address", key->str);
        bad = -1;
      }
      continue;
    }
    if (check_text(c, v, vt, "connect_to") != 0) {
      bad = -1;
      continue;
    }
    int colons = 0;
    for (const char *p = v->str; !dynamic(vt) && *p; p++)
      colons += *p == ':';
    if (!dynamic(vt) && colons < 3) {
      pc_load_error(c, v, "http.connect_to: entry %zu must be HOST:PORT:CONNECT-TO-HOST:"
                    "CONNECT-TO-PORT (as curl --connect-to)", i + 1);
      bad = -1;
    }
  }
  return bad;
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
    } else if (strcmp(k, "ca_file") == 0 || strcmp(k, "save_to") == 0 ||
               strcmp(k, "body_file") == 0 || strcmp(k, "cert") == 0 || strcmp(k, "key") == 0 ||
               strcmp(k, "unix_socket") == 0) {
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
    } else if (strcmp(k, "cookies") == 0) {
      bad |= check_cookies(c, v, vt);
    } else if (strcmp(k, "auth") == 0) {
      bad |= check_auth(c, v, vt);
    } else if (strcmp(k, "key_password") == 0 || strcmp(k, "proxy") == 0) {
      bad |= check_text(c, v, vt, k);
    } else if (strcmp(k, "compressed") == 0) {
      bad |= check_bool(c, v, vt, k);
    } else if (strcmp(k, "max_redirects") == 0) {
      bad |= check_int(c, v, vt, k, 0, 100, false);
    } else if (strcmp(k, "tls_version") == 0) {
      static const char *const ok[] = {"1.0", "1.1", "1.2", "1.3"};
      if (!dynamic(vt) && (v->kind != PC_NODE_SCALAR || !in_list(v->str, ok, 4))) {
        pc_load_error(c, v, "http.tls_version: expected 1.0, 1.1, 1.2 or 1.3, got %s",
                      v->kind == PC_NODE_SCALAR ? v->str : kind_of(v));
        bad = -1;
      }
    } else if (strcmp(k, "resolve") == 0 || strcmp(k, "connect_to") == 0) {
      bad |= check_routes(c, k, v, vt);
    } else if (strcmp(k, "trace_context") == 0) {
      /* issue 18: whether requests send a traceparent header; run-wide,
       * so a plain boolean (defaults.http only: a step's keys exclude it). */
      if (dynamic(vt)) {
        pc_load_error(c, v, "http.trace_context: expected a plain true or false (it applies "
                      "to the whole run, so it cannot be an expression)");
        bad = -1;
      } else {
        bad |= check_bool(c, v, vt, k);
      }
    }
  }
  return bad;
}

/* The name of the method s names (any case) if it is not idempotent, else
 * NULL. */
static const char *unsafe_method(const char *s)
{
  int m = pc_http_method_parse(s);
  return m >= 0 && !pc_http_method_idempotent(m) ? pc_http_method_name(m) : NULL;
}

int pc_http_load_step(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
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
  int bad = pc_load_check_keys(c, v, pc_http_option_keys, PC_HTTP_OPTION_KEYS - 1, "http") ? -1 : 0;

  /* Exactly one URL (`url`, alone or with `method`, or one shorthand) and
   * at most one body; a second one is reported where it is written. */
  const struct pc_node *first_url = NULL, *first_body = NULL, *method = NULL, *url = NULL;
  for (size_t i = 0; i < v->n; i++) {
    const struct pc_node *k = v->keys[i], *val = v->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    bool is_short = in_list(k->str, pc_http_option_keys + PC_HTTP_SHORTHAND_FIRST,
                            PC_HTTP_SHORTHANDS);
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
               strcmp(k->str, "form") == 0 || strcmp(k->str, "body_file") == 0 ||
               strcmp(k->str, "multipart") == 0) {
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
      } else if (strcmp(k->str, "multipart") == 0) {
        bad |= check_parts(c, val, vt);
      }
    }
  }
  /* A method known now that is not idempotent (rules.h): the loader warns
   * about retries that can never apply to it. */
  if (first_url && first_url != url)
    st->unsafe_method = unsafe_method(first_url->str);
  if (method && !dynamic(pc_tmpl_get(t, "method"))) {
    const struct pc_node *mv = pc_node_get(v, "method");
    if (mv && mv->kind == PC_NODE_SCALAR)
      st->unsafe_method = unsafe_method(mv->str);
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
  /* issue 15: `auth` and a literal Authorization header both authenticate */
  const struct pc_node *auth = pc_node_get(v, "auth"), *hdrs = pc_node_get(v, "headers");
  for (size_t i = 0; auth && hdrs && hdrs->kind == PC_NODE_MAP && i < hdrs->n; i++)
    if (strcasecmp(hdrs->keys[i]->str, "Authorization") == 0) {
      pc_load_error(c, hdrs->keys[i], "http: `auth` and an Authorization header both "
                    "authenticate the request; use one");
      bad = -1;
    }
  return bad ? -1 : 0;
}

struct pc_tmpl *pc_http_load_defaults(struct pc_load_ctx *c, const struct pc_node *map)
{
  if (map->kind != PC_NODE_MAP) {
    pc_load_error(c, map, "defaults.http: expected a map of http options, got %s",
                  pc_node_describe(map).s);
    return NULL;
  }
  int bad = pc_load_check_keys(c, map, defaults_keys, PC_ARRAY_SIZE(defaults_keys),
                               "defaults.http") ? -1 : 0;
  /* The checks need to know which values hold ${{ }}, i.e. a template.
   * The one the workflow keeps is built only once they pass, which
   * registers its expressions with the workflow and reports their syntax
   * errors; this throwaway one is built against a scratch workflow and
   * diag, so it registers and reports nothing. */
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
  return bad ? NULL : pc_load_tmpl(c, map);
}

/* ------------------------------------------------ concurrency over the cap */

/* Whether the step or a step under it is an `http` step. */
static bool sends_http(const struct pc_step *st)
{
  if (st->ops && st->ops->load == pc_http_load_step)
    return true;
  for (size_t i = 0; i < st->nchildren; i++)
    if (sends_http(st->children[i]))
      return true;
  return false;
}

static void warn_over_cap(const struct pc_workflow *wf, struct pc_step *const *steps, size_t n,
                          long cap, struct pc_diag *d)
{
  for (size_t i = 0; i < n; i++) {
    const struct pc_step *st = steps[i];
    if (st->concurrency > cap && sends_http(st)) {
      const struct pc_node *at = st->node ? pc_node_get(st->node, "concurrency") : NULL;
      pc_diag_warn(d, wf->file, at ? at->line : st->line, at ? at->col : st->col,
                   "concurrency %d exceeds the connection cap (max_connections: %ld): at most "
                   "%ld requests run at once over HTTP/1.1, the rest wait for a connection; "
                   "set defaults.http.max_connections (0: no cap) to run more at once",
                   st->concurrency, cap, cap);
      continue; /* the steps under it cannot run more at once than it does */
    }
    warn_over_cap(wf, st->children, st->nchildren, cap, d);
  }
}

int pc_http_load_check(struct pc_lua *h, struct pc_workflow *wf, const struct pc_load_opts *opts,
                       struct pc_diag *d)
{
  (void)h;
  (void)opts;
  struct pc_http_limits lim;
  pc_http_limits_of(pc_workflow_defaults(wf, "http"), &lim);
  if (lim.max_connections > 0) {
    warn_over_cap(wf, wf->steps, wf->nsteps, lim.max_connections, d);
    warn_over_cap(wf, wf->finally, wf->nfinally, lim.max_connections, d);
  }
  return 0;
}
