/* spec.c: the options of a request as the `http` action and pacer.http
 * take them: the load-time checks of a step's `http:` map and of
 * `defaults.http` (on YAML nodes, with positions), the options table read
 * from Lua into a struct pc_http__spec (checked again: expressions can make
 * any value), and the merge of `defaults.http` under a request's options. */
#include "http/internal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "core/engine.h"
#include "script/json.h"

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
    if (!pc_http__valid_header_name(k->str, k->len)) {
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
        if (p->lit && pc_http__has_crlf(p->lit, p->lit_len))
          crlf = true;
      }
    } else if (!dynamic(vt) && v->kind == PC_NODE_SCALAR) {
      crlf = pc_http__has_crlf(v->str, v->len);
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

int pc_http__load(struct pc_load_ctx *c, struct pc_step *st, const struct pc_node *v)
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

/* ------------------------------------------------- options from Lua */

void pc_http__spec_free(struct pc_http__spec *sp)
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

static char *parse_headers(struct pc_lua *h, int tbl, struct pc_http__spec *sp)
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
    if (!name || !pc_http__valid_header_name(name, nlen)) {
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
      } else if (pc_http__has_crlf(val, vlen)) {
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
char *pc_http__parse_spec(struct pc_lua *h, CURL *e, int tbl, bool allow_timeout, struct pc_http__spec *sp)
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
