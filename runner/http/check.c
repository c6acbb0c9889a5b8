/* check.c: the load-time checks of a step's `http:` map and of
 * `defaults.http` (see check.h), on the YAML nodes and the templates the
 * loader made of them, so every problem is reported with its position.
 * Each option's type, bounds and allowed values are the parameter table's
 * (params.c), checked by the loader's pc_load_params; what is here is what
 * a table cannot say: one URL and its scheme, one body, `method` with
 * `url`, header and cookie names and values, empty paths, auth's user
 * name, routes, auth beside an Authorization header. Values written with
 * ${{ }} are known only at run time: they are checked then, by the same
 * table and spec.c's rules, with the same messages. */
#include "http/check.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model/action.h"
#include "http/params.h"
#include "http/rules.h"
#include "http/spec.h"
#include "base/util.h"

static bool in_list(const char *s, const char *const *list)
{
  for (; *list; list++)
    if (strcmp(s, *list) == 0)
      return true;
  return false;
}

/* The value is known only at run time. */
static bool dynamic(const struct pc_tmpl *t)
{
  return t && (t->kind == PC_T_EXPR || t->kind == PC_T_INTERP);
}

/* Text written out whole, no NUL byte in it: what the rules below read
 * (any other value the table refused already, or is checked at run time). */
static bool literal(const struct pc_node *n, const struct pc_tmpl *t)
{
  return n->kind == PC_NODE_SCALAR && pc_node_scalar_type(n) != PC_SCALAR_NULL && !dynamic(t) &&
         !memchr(n->str, '\0', n->len);
}

/* A map written out (not one ${{ }}), whose entries the rules read. */
static bool literal_map(const struct pc_node *n, const struct pc_tmpl *t)
{
  return n->kind == PC_NODE_MAP && !(t && t->kind == PC_T_EXPR);
}

static int check_url(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t,
                     const char *what)
{
  if (!literal(n, t))
    return 0;
  if (n->len == 0) {
    pc_load_error(c, n, "http.%s: the URL is empty", what);
    return -1;
  }
  if (strncasecmp(n->str, "http://", 7) != 0 && strncasecmp(n->str, "https://", 8) != 0) {
    pc_load_error(c, n, PC_HTTP_MSG_SCHEME, what, n->str);
    return -1;
  }
  return 0;
}

static int check_headers(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (!literal_map(n, t))
    return 0;
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (!pc_http_header_name_valid(k->str, k->len)) {
      pc_load_error(c, k, PC_HTTP_MSG_HEADER_NAME, k->str);
      bad = -1;
    }
    if (v->kind != PC_NODE_SCALAR)
      continue;
    /* Literal text must not break the header block; evaluated parts are
     * checked when the request is built. */
    bool crlf = false;
    if (vt && vt->kind == PC_T_INTERP) {
      for (size_t j = 0; j < vt->u.interp.n; j++) {
        const struct pc_tmpl_part *p = &vt->u.interp.parts[j];
        if (p->lit && !pc_http_header_value_valid(p->lit, p->lit_len))
          crlf = true;
      }
    } else if (!dynamic(vt)) {
      crlf = !pc_http_header_value_valid(v->str, v->len);
    }
    if (memchr(v->str, '\0', v->len)) {
      pc_load_error(c, v, PC_HTTP_MSG_HEADER_NUL, k->str);
      bad = -1;
    } else if (crlf) {
      pc_load_error(c, v, PC_HTTP_MSG_HEADER_CRLF, k->str);
      bad = -1;
    }
  }
  return bad;
}

static int check_method(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (!literal(n, t) || pc_http_method_parse(n->str) >= 0)
    return 0;
  pc_load_error(c, n, PC_HTTP_MSG_METHOD, n->str);
  return -1;
}

/* `cookies` as a map: names a Cookie header can carry, values without `;`. */
static int check_cookies(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (!literal_map(n, t))
    return 0;
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *k = n->keys[i], *v = n->items[i];
    if (!pc_http_header_name_valid(k->str, k->len)) {
      pc_load_error(c, k, PC_HTTP_MSG_COOKIE_NAME, k->str);
      bad = -1;
    }
    if (literal(v, pc_tmpl_at(t, i)) && strpbrk(v->str, ";\r\n")) {
      pc_load_error(c, v, PC_HTTP_MSG_COOKIE_VALUE, k->str);
      bad = -1;
    }
  }
  return bad;
}

/* `auth`: a Basic or Digest user name has no `:`. */
static int check_auth(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (!literal_map(n, t) || n->n != 1 || !literal_map(n->items[0], pc_tmpl_at(t, 0)))
    return 0;
  const struct pc_node *user = pc_node_get(n->items[0], "user");
  if (user && literal(user, pc_tmpl_get(pc_tmpl_at(t, 0), "user")) && strchr(user->str, ':')) {
    pc_load_error(c, user, PC_HTTP_MSG_AUTH_USER, n->keys[0]->str);
    return -1;
  }
  return 0;
}

/* `multipart`: a part given as a map has one of value and file. */
static int check_parts(struct pc_load_ctx *c, const struct pc_node *n, const struct pc_tmpl *t)
{
  if (!literal_map(n, t))
    return 0;
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *v = n->items[i];
    if (!literal_map(v, pc_tmpl_at(t, i)))
      continue;
    if ((pc_node_get(v, "value") != NULL) == (pc_node_get(v, "file") != NULL)) {
      pc_load_error(c, v, PC_HTTP_MSG_PART, n->keys[i]->str);
      bad = -1;
    }
  }
  return bad;
}

/* `resolve` (HOST:PORT to an address) and `connect_to` (curl's
 * HOST:PORT:CONNECT-TO-HOST:CONNECT-TO-PORT); the run-time reader
 * (spec_maps.c) checks the same on evaluated values. */
static int check_routes(struct pc_load_ctx *c, const char *k, const struct pc_node *n,
                        const struct pc_tmpl *t)
{
  bool resolve = strcmp(k, "resolve") == 0;
  if ((t && t->kind == PC_T_EXPR) || n->kind != (resolve ? PC_NODE_MAP : PC_NODE_SEQ))
    return 0;
  int bad = 0;
  for (size_t i = 0; i < n->n; i++) {
    const struct pc_node *v = n->items[i];
    bool lit = literal(v, pc_tmpl_at(t, i));
    if (resolve) {
      const struct pc_node *key = n->keys[i];
      const char *colon = strrchr(key->str, ':');
      char *end = NULL;
      long port = colon ? strtol(colon + 1, &end, 10) : 0;
      if (!colon || colon == key->str || !colon[1] || *end || port < 1 || port > 65535) {
        pc_load_error(c, key, PC_HTTP_MSG_RESOLVE_KEY, key->str);
        bad = -1;
      }
      if (lit && strpbrk(v->str, " \t\r\n")) {
        pc_load_error(c, v, PC_HTTP_MSG_RESOLVE_ADDRESS, key->str);
        bad = -1;
      }
      continue;
    }
    int colons = 0;
    for (const char *p = v->str; lit && *p; p++)
      colons += *p == ':';
    if (lit && colons < 3) {
      pc_load_error(c, v, PC_HTTP_MSG_CONNECT_TO, i + 1);
      bad = -1;
    }
  }
  return bad;
}

/* What the table cannot say about the options a step's map and
 * defaults.http share (their types it checked already): header and cookie
 * names and values, paths that are empty, auth's user name, routes. */
static int check_rules(struct pc_load_ctx *c, const struct pc_node *map, const struct pc_tmpl *t)
{
  static const char *const paths[] = {"ca_file", "save_to", "body_file", "cert", "key",
                                      "unix_socket", NULL};
  int bad = 0;
  for (size_t i = 0; i < map->n; i++) {
    const char *k = map->keys[i]->str;
    const struct pc_node *v = map->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (strcmp(k, "headers") == 0) {
      bad |= check_headers(c, v, vt);
    } else if (in_list(k, paths)) {
      if (literal(v, vt) && v->len == 0) {
        pc_load_error(c, v, PC_HTTP_MSG_EMPTY_PATH, k);
        bad = -1;
      }
    } else if (strcmp(k, "cookies") == 0) {
      bad |= check_cookies(c, v, vt);
    } else if (strcmp(k, "auth") == 0) {
      bad |= check_auth(c, v, vt);
    } else if (strcmp(k, "multipart") == 0) {
      bad |= check_parts(c, v, vt);
    } else if (strcmp(k, "resolve") == 0 || strcmp(k, "connect_to") == 0) {
      bad |= check_routes(c, k, v, vt);
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
    pc_load_error(c, v, "http: expected a map of options like {get: URL}, got %s",
                  pc_node_kind_name(v));
    return -1;
  }
  /* The table: unknown keys, and each option's type. */
  int bad = pc_load_params(c, "http", &pc_http_params, v, t);

  /* Exactly one URL (`url`, alone or with `method`, or one shorthand) and
   * at most one body; a second one is reported where it is written. */
  const struct pc_node *first_url = NULL, *first_body = NULL, *method = NULL, *url = NULL;
  for (size_t i = 0; i < v->n; i++) {
    const struct pc_node *k = v->keys[i], *val = v->items[i];
    const struct pc_tmpl *vt = pc_tmpl_at(t, i);
    if (in_list(k->str, pc_http_params.one_of)) {
      if (first_url) {
        pc_load_error(c, k, PC_HTTP_MSG_TWO_URLS, first_url->str, k->str);
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
    } else if (in_list(k->str, pc_http_body_keys)) {
      if (first_body) {
        pc_load_error(c, k, PC_HTTP_MSG_TWO_BODIES, first_body->str, k->str);
        bad = -1;
      } else {
        first_body = k;
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
    pc_load_error(c, method, PC_HTTP_MSG_METHOD_WITH, first_url->str);
    bad = -1;
  } else if (method && !url) {
    pc_load_error(c, method, "http: `method` needs `url` (or use a shorthand like post: URL)");
    bad = -1;
  } else if (!first_url) {
    pc_load_error(c, v, PC_HTTP_MSG_NO_URL);
    bad = -1;
  }
  bad |= check_rules(c, v, t);
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
  struct pc_tmpl *t = pc_load_tmpl(c, map);
  if (!t)
    return NULL;
  int bad = pc_load_params(c, "defaults.http", &pc_http_defaults_params, map, t);
  bad |= check_rules(c, map, t);
  if (bad) {
    pc_tmpl_free(t); /* the load fails: nothing runs its expressions */
    return NULL;
  }
  return t;
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
