/* test_http.c: the Lua side of runner/http: a Lua options table read into
 * a spec (spec.c) and every message for a bad one, requests started from
 * Lua options (pc_http_spec_start) against the tiny server of
 * http_test_server.h and their result tables (result.c: lazy headers,
 * timing and json, the shared protected metatable, a failure's table), and
 * the load-time checks of defaults.http (check.c), and the parameter
 * tables (params.c) against `pacer schema` and the messages they give at
 * load and at run time. The transport itself is
 * tested without Lua in test_http_transport.c. Every test closes what it
 * opened and ends with uv_loop_close() == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <uv.h>

#include <yajl/yajl_tree.h>

#include "http/action.h"
#include "http/check.h"
#include "http/params.h"
#include "http/result.h"
#include "http/spec.h"
#include "load/schema.h"
#include "script/luahost.h"
#include "base/util.h"
#include "base/yamlload.h"

#include "http_test_server.h"

/* ------------------------------------------------------------- fixture */

struct fx {
  uv_loop_t loop;
  struct pc_lua *h;
  lua_State *L;
  struct pc_http_session *s;
};

struct done {
  int calls;
  enum pc_fail fail;
  char *error;
  int status;
  double retry_after_ms;
  int result_ref;
  struct fx *fx;
};

static int setup(void **state)
{
  struct fx *f = pc_xcalloc(1, sizeof *f);
  assert_int_equal(uv_loop_init(&f->loop), 0);
  f->h = pc_lua_new();
  assert_non_null(f->h);
  f->L = pc_lua_state(f->h);
  f->s = pc_http_session_new(&f->loop, NULL);
  assert_non_null(f->s);
  *state = f;
  return 0;
}

static int teardown(void **state)
{
  struct fx *f = *state;
  pc_http_session_close(f->s);
  server_settle(&f->loop);
  assert_int_equal(uv_loop_close(&f->loop), 0);
  pc_lua_free(f->h);
  free(f);
  return 0;
}

static void on_done(void *data, const struct pc_http_result *r)
{
  struct done *d = data;
  d->calls++;
  d->fail = r->fail;
  free(d->error);
  d->error = r->error ? pc_xstrdup(r->error) : NULL;
  d->status = r->status;
  d->retry_after_ms = r->retry_after_ms;
  lua_State *L = d->fx->L;
  lua_newtable(L);
  char *err = NULL;
  assert_int_equal(pc_http_result_fill(r, d->fx->h, -1, &err), 0);
  luaL_unref(L, LUA_REGISTRYINDEX, d->result_ref);
  d->result_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

static void done_init(struct done *d, struct fx *f)
{
  memset(d, 0, sizeof *d);
  d->fx = f;
  d->result_ref = LUA_NOREF;
}

static void done_free(struct done *d)
{
  free(d->error);
  luaL_unref(d->fx->L, LUA_REGISTRYINDEX, d->result_ref);
}

/* Starts a request from a Lua chunk that returns the options table. */
static int start(struct fx *f, const char *chunk, struct done *d, struct pc_http_request **r,
                 char **err)
{
  assert_int_equal(luaL_dostring(f->L, chunk), LUA_OK); /* opts */
  struct pc_http_spec_opts o = {0};
  int rc = pc_http_spec_start(f->h, -1, &o, f->s, on_done, d, r, err);
  lua_pop(f->L, 1);
  return rc;
}

static const char *field(struct fx *f, struct done *d, const char *expr)
{
  /* tostring(EXPR) with `r` bound to the result table; "error: ..." if it
   * raises. The text lives in a static buffer until the next call. */
  static char out[512];
  char *code = pc_asprintf("return function(r) return tostring(%s) end", expr);
  assert_int_equal(luaL_dostring(f->L, code), LUA_OK);
  free(code);
  lua_rawgeti(f->L, LUA_REGISTRYINDEX, d->result_ref);
  if (lua_pcall(f->L, 1, 1, 0) != LUA_OK)
    snprintf(out, sizeof out, "error: %s", lua_tostring(f->L, -1));
  else
    snprintf(out, sizeof out, "%s", lua_tostring(f->L, -1));
  lua_pop(f->L, 1);
  return out;
}

/* --------------------------------------------------------------- tests */

/* A Lua options table read into a spec: what each option becomes, what
 * the spec borrows and what it makes (a URL with its query, a json or form
 * body, numbers as text). */
static void test_spec_read(void **state)
{
  struct fx *f = *state;
  struct pc_http_spec sp;
  struct pc_http_spec_mem mem;
  char *err = NULL;
  assert_int_equal(luaL_dostring(f->L, "return {method = 'put', url = 'http://h/p?x=1#frag', "
                                       "query = {b = 'c d', a = {1, true}}, "
                                       "headers = {['X-N'] = 42, ['X-Empty'] = ''}, "
                                       "json = {k = 'v'}, connect_timeout = '250ms', "
                                       "follow_redirects = 'false', http_version = 1.1, "
                                       "insecure = true, ca_file = 'ca.pem', "
                                       "max_response_bytes = 10, save_to = 'out'}"), LUA_OK);
  assert_int_equal(pc_http_spec_read(f->h, -1, false, &sp, &mem, &err), 0);
  assert_int_equal(sp.method, PC_HTTP_PUT);
  assert_string_equal(sp.url, "http://h/p?x=1&a=1&a=true&b=c%20d"); /* (no fragment) */
  assert_ptr_equal(sp.url, mem.url); /* made */
  assert_int_equal(sp.nheaders, 2);
  for (size_t i = 0; i < sp.nheaders; i++) {
    const struct pc_http_header *h = &sp.headers[i];
    if (h->name_len == 3)
      assert_memory_equal(h->value, "42", h->value_len);
    else
      assert_int_equal(h->value_len, 0);
  }
  assert_true(sp.has_body);
  assert_string_equal(sp.body, "{\"k\":\"v\"}");
  assert_int_equal(sp.body_len, strlen(sp.body));
  assert_string_equal(sp.body_type, "application/json");
  assert_true(sp.connect_timeout_ms == 250);
  assert_true(sp.timeout_ms < 0);
  assert_false(sp.follow_redirects);
  assert_int_equal(sp.version, PC_HTTP_VERSION_1_1);
  assert_true(sp.insecure);
  assert_string_equal(sp.ca_file, "ca.pem");
  assert_int_equal(sp.max_response_bytes, 10);
  assert_string_equal(sp.save_to, "out");
  pc_http_spec_mem_free(&mem);
  lua_pop(f->L, 1);

  /* a shorthand, a text body borrowed from the table, form, timeout */
  assert_int_equal(luaL_dostring(f->L, "return {post = 'https://h/', body = 'text', "
                                       "timeout = 2}"), LUA_OK);
  assert_int_equal(pc_http_spec_read(f->h, -1, true, &sp, &mem, &err), 0);
  assert_int_equal(sp.method, PC_HTTP_POST);
  assert_string_equal(sp.url, "https://h/");
  assert_null(mem.url); /* borrowed */
  assert_string_equal(sp.body, "text");
  assert_string_equal(sp.body_type, "text/plain; charset=utf-8");
  assert_true(sp.timeout_ms == 2000);
  assert_true(sp.follow_redirects);
  assert_int_equal(sp.version, PC_HTTP_VERSION_AUTO);
  assert_int_equal(sp.max_response_bytes, PC_HTTP_MAX_RESPONSE_DEFAULT);
  pc_http_spec_mem_free(&mem);
  lua_pop(f->L, 1);
  assert_int_equal(luaL_dostring(f->L, "return {url = 'http://h/', form = {z = 1, a = 'b&c'}}"),
                   LUA_OK);
  assert_int_equal(pc_http_spec_read(f->h, -1, true, &sp, &mem, &err), 0);
  assert_int_equal(sp.method, PC_HTTP_GET);
  assert_string_equal(sp.body, "a=b%26c&z=1");
  assert_string_equal(sp.body_type, "application/x-www-form-urlencoded");
  pc_http_spec_mem_free(&mem);
  lua_pop(f->L, 1);
}

/* issue 15: the options that are maps and lists, TLS and routing, read
 * into a spec: cookies as one Cookie value in name order, auth, resolve as
 * CURLOPT_CONNECT_TO entries (an IPv6 address bracketed), multipart parts
 * in name order. */
static void test_spec_read_issue15(void **state)
{
  struct fx *f = *state;
  struct pc_http_spec sp;
  struct pc_http_spec_mem mem;
  char *err = NULL;
  assert_int_equal(luaL_dostring(f->L, "return {post = 'http://h/', cookies = {b = 2, a = 'x'}, "
                                       "auth = {digest = {user = 'u', password = 'pw'}}, "
                                       "resolve = {['h:80'] = '::1'}, "
                                       "connect_to = {'h:443:127.0.0.1:8443'}, "
                                       "tls_version = '1.2', proxy = '', max_redirects = 0, "
                                       "compressed = false, cert = 'c.pem', key = 'k.pem', "
                                       "key_password = 'kp', unix_socket = '/s', "
                                       "multipart = {z = 'text', a = {file = 'f.bin', "
                                       "type = 'image/png', filename = 'x.png'}}}"), LUA_OK);
  if (pc_http_spec_read(f->h, -1, false, &sp, &mem, &err) != 0)
    fail_msg("%s", err);
  assert_string_equal(sp.cookie, "a=x; b=2");
  assert_true(sp.cookie_jar);
  assert_int_equal(sp.auth, PC_HTTP_AUTH_DIGEST);
  assert_string_equal(sp.auth_user, "u");
  assert_string_equal(sp.auth_password, "pw");
  assert_int_equal(sp.nconnect_to, 2);
  assert_string_equal(sp.connect_to[0], "h:80:[::1]:80");
  assert_string_equal(sp.connect_to[1], "h:443:127.0.0.1:8443");
  assert_int_equal(sp.tls_version, CURL_SSLVERSION_TLSv1_2);
  assert_string_equal(sp.proxy, "");
  assert_int_equal(sp.max_redirects, 0);
  assert_false(sp.compressed);
  assert_string_equal(sp.cert, "c.pem");
  assert_string_equal(sp.key, "k.pem");
  assert_string_equal(sp.key_password, "kp");
  assert_string_equal(sp.unix_socket, "/s");
  assert_true(sp.multipart && sp.has_body);
  assert_int_equal(sp.nparts, 2);
  assert_string_equal(sp.parts[0].name, "a");
  assert_string_equal(sp.parts[0].file, "f.bin");
  assert_string_equal(sp.parts[0].type, "image/png");
  assert_string_equal(sp.parts[0].filename, "x.png");
  assert_string_equal(sp.parts[1].name, "z");
  assert_memory_equal(sp.parts[1].data, "text", 4);
  pc_http_spec_mem_free(&mem);
  lua_pop(f->L, 1);
  assert_int_equal(luaL_dostring(f->L, "return {put = 'http://h/', body_file = 'b.bin', "
                                       "cookies = false, auth = {bearer = 'tok'}}"), LUA_OK);
  assert_int_equal(pc_http_spec_read(f->h, -1, false, &sp, &mem, &err), 0);
  assert_string_equal(sp.body_file, "b.bin");
  assert_string_equal(sp.body_type, "application/octet-stream");
  assert_false(sp.cookie_jar);
  assert_null(sp.cookie);
  assert_int_equal(sp.auth, PC_HTTP_AUTH_BEARER);
  assert_string_equal(sp.auth_token, "tok");
  assert_int_equal(sp.max_redirects, PC_HTTP_MAX_REDIRECTS);
  assert_true(sp.compressed);
  pc_http_spec_mem_free(&mem);
  lua_pop(f->L, 1);
}

static void test_response_and_reuse(void **state)
{
  struct fx *f = *state;
  struct server srv;
  assert_int_equal(server_start(&f->loop, &srv, true), 0);
  char *chunk = pc_asprintf("return {get = 'http://127.0.0.1:%d/x', query = {a = 'b c'}}",
                            srv.port);
  struct done d1, d2;
  done_init(&d1, f);
  done_init(&d2, f);
  struct pc_http_request *r = NULL;
  char *err = NULL;
  assert_int_equal(start(f, chunk, &d1, &r, &err), 0);
  assert_int_equal(pc_http_request_method(r), PC_HTTP_GET);
  while (d1.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(start(f, chunk, &d2, &r, &err), 0);
  while (d2.calls == 0)
    uv_run(&f->loop, UV_RUN_ONCE);
  assert_int_equal(d1.calls, 1);
  assert_int_equal(d1.fail, PC_FAIL_NONE);
  assert_int_equal(d1.status, 200);
  assert_true(d1.retry_after_ms == 3000);
  /* headers and timing are built on first use, once; json is decoded when
   * read and not stored in the result (the last document decoded is kept
   * apart, so two reads in a row give the same table) */
  assert_string_equal(field(f, &d1, "rawget(r, 'headers') == nil and rawget(r, 'timing') == nil"),
                      "true");
  assert_string_equal(field(f, &d1, "r.headers['x-rep']"), "1, 2");
  assert_string_equal(field(f, &d1, "r.headers['x-fold']"), "a b");
  assert_string_equal(field(f, &d1, "rawequal(rawget(r, 'headers'), r.headers)"), "true");
  assert_string_equal(field(f, &d1, "rawget(r, 'json') == nil and r.json == r.json and "
                                    "rawget(r, 'json') == nil and rawget(r, 'body') == nil and "
                                    "rawget(r, 'url') == nil and r.body ~= nil and "
                                    "rawget(r, 'body') == r.body"),
                      "true");
  assert_string_equal(field(f, &d2, "(function() local n = 0 for k in pairs(r) do "
                                    "n = n + ((k == 'headers' or k == 'timing') and 1 or 0) end "
                                    "return n end)()"), "2");
  assert_string_equal(field(f, &d2, "r.timing.connect == 0 and r.timing.ttfb <= r.timing.total"),
                      "true");
  assert_string_equal(field(f, &d2, "getmetatable(r)"), "http result");
  assert_string_equal(field(f, &d2, "pcall(setmetatable, r, nil)"), "false");
  assert_string_equal(field(f, &d1, "r.json.ok"), "true");
  assert_string_equal(field(f, &d1, "r.http_version"), "1.1");
  assert_string_equal(field(f, &d1, "r.reused"), "false");
  assert_string_equal(field(f, &d2, "r.reused"), "true");
  assert_string_equal(field(f, &d1, "r.method"), "GET");
  assert_string_equal(field(f, &d1, "r.url:match('/x%?a=b%%20c$') ~= nil"), "true");
  assert_string_equal(field(f, &d1, "type(r.timing.total)"), "number");
  assert_int_equal(srv.accepted, 1);
  assert_int_equal(srv.requests, 2);

  struct pc_http_stats st;
  pc_http_session_stats(f->s, &st);
  assert_int_equal(st.requests, 2);
  assert_int_equal(st.connections, 1);
  assert_int_equal(st.reused, 1);
  assert_int_equal(st.sockets, 1); /* one poll context for both requests */
  assert_int_equal(st.nhosts, 1);
  assert_true(strstr(st.hosts[0].host, "http://127.0.0.1:") == st.hosts[0].host);
  pc_http_stats_free(&st);

  free(chunk);
  done_free(&d1);
  done_free(&d2);
  server_stop(&srv);
}

static void test_refused(void **state)
{
  struct fx *f = *state;
  struct done d;
  done_init(&d, f);
  struct pc_http_request *r = NULL;
  char *err = NULL;
  assert_int_equal(start(f, "return {method = 'post', url = 'http://127.0.0.1:9/'}", &d, &r,
                         &err), 0);
  assert_int_equal(pc_http_request_method(r), PC_HTTP_POST);
  uv_run(&f->loop, UV_RUN_DEFAULT);
  assert_int_equal(d.calls, 1);
  assert_int_equal(d.fail, PC_FAIL_NETWORK);
  assert_int_equal(d.status, 0);
  assert_non_null(strstr(d.error, "POST http://127.0.0.1:9/: connection refused to 127.0.0.1:9"));
  assert_string_equal(field(f, &d, "r.status"), "nil");
  done_free(&d);
}

static void test_bad_options(void **state)
{
  struct fx *f = *state;
  static const char *const cases[][2] = {
      {"return {}", "http: no URL"},
      {"return {get = 'ftp://x/'}", "is not an http:// or https:// URL"},
      {"return {get = 'http://x/', post = 'http://x/'}", "both give the URL"},
      {"return {url = 'http://x/', method = 'BREW'}", "unknown method \"BREW\""},
      {"return {get = 'http://x/', headers = {['X-A'] = 'a\\r\\nB: c'}}", "line break"},
      {"return {get = 'http://x/', headers = {['Bad Name'] = 'x'}}", "not a valid header name"},
      {"return {post = 'http://x/', body = 'a', json = {}}", "cannot both be set"},
      {"return {get = 'http://x/', bogus = 1}", "unknown option \"bogus\""},
      {"return {get = 'http://x/', timeout = '1s'}", "unknown option \"timeout\""},
      {"return {get = 'http://x/', connect_timeout = 'soon'}", "http.connect_timeout"},
      {"return {get = 'http://x/', http_version = '3'}", "http.http_version"},
      {"return {get = 'http://x/', max_response_bytes = 0}", "http.max_response_bytes"},
      {"return {head = 'http://x/', body = 'a'}", "HEAD request cannot have a body"},
      {"return {get = 'http://x/', query = {a = {b = {}}}}", "must be text"},
      /* issue 15 */
      {"return {get = 'http://x/', cookies = {a = 'b;c'}}", "contains a `;`"},
      {"return {get = 'http://x/', cookies = 3}", "expected true, false or a map"},
      {"return {get = 'http://x/', auth = {basic = {user = 'a:b', password = 'p'}}}",
       "contains `:`"},
      {"return {get = 'http://x/', auth = {basic = {user = 'a'}, bearer = 't'}}",
       "a request authenticates one way"},
      {"return {get = 'http://x/', auth = {bearer = 't'}, headers = {authorization = 'x'}}",
       "both authenticate"},
      {"return {post = 'http://x/', body_file = '/nonexistent/f'}", "http.body_file: cannot read"},
      {"return {post = 'http://x/', multipart = {f = {file = '/'}}}", "is not a regular file"},
      {"return {post = 'http://x/', multipart = {f = {value = 'a', file = 'b'}}}",
       "give one of value and file"},
      {"return {get = 'http://x/', resolve = {x = '127.0.0.1'}}", "is not HOST:PORT"},
      {"return {get = 'http://x/', connect_to = {'a:b'}}", "http.connect_to: entry 1"},
      {"return {get = 'http://x/', tls_version = '1.4'}", "http.tls_version"},
      {"return {get = 'http://x/', max_redirects = 101}", "http.max_redirects"},
      {"return {get = 'https://x/', cert = '/nonexistent.pem'}", "http.cert: cannot read"},
      /* a plugin's table whose __index raises: read raw, no Lua error escapes */
      {"return setmetatable({}, {__index = function() error('boom') end})", "http: no URL"},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    struct done d;
    done_init(&d, f);
    struct pc_http_request *r = NULL;
    char *err = NULL;
    assert_int_equal(start(f, cases[i][0], &d, &r, &err), -1);
    assert_non_null(err);
    if (!strstr(err, cases[i][1]))
      fail_msg("%s: got \"%s\", expected \"%s\"", cases[i][0], err, cases[i][1]);
    free(err);
    done_free(&d);
  }
  uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------------------------------ defaults */

/* Loads `yaml` as defaults.http (`step`: as a step's http map instead):
 * 0 or -1, and the messages ("line:col: msg\n") in *msgs. */
static int load_http(const char *yaml, bool step, char **msgs)
{
  struct pc_node *n = NULL;
  struct pc_diag d;
  pc_diag_init(&d);
  assert_int_equal(pc_yaml_load_string("t.yml", yaml, strlen(yaml), &pc_yaml_default_limits, &n,
                                       &d), 0);
  struct pc_workflow wf;
  memset(&wf, 0, sizeof wf);
  struct pc_load_ctx c = {.wf = &wf, .d = &d, .file = "t.yml"};
  struct pc_step st;
  memset(&st, 0, sizeof st);
  struct pc_tmpl *t = NULL;
  int rc = step ? pc_http_load_step(&c, &st, n) : (t = pc_http_load_defaults(&c, n)) ? 0 : -1;
  pc_tmpl_free(t);
  pc_tmpl_free(st.params);
  struct pc_buf b;
  pc_buf_init(&b, 1 << 16);
  for (size_t i = 0; i < d.n; i++)
    pc_buf_printf(&b, "%d:%d: %s\n", d.items[i].line, d.items[i].col, d.items[i].msg);
  *msgs = pc_buf_steal(&b);
  pc_diag_free(&d);
  pc_node_free(n);
  free(wf.exprs);
  return rc;
}

static int load_defaults(const char *yaml, char **msgs)
{
  return load_http(yaml, false, msgs);
}

static void test_load_defaults(void **state)
{
  (void)state;
  char *m = NULL;
  assert_int_equal(load_defaults("headers: {User-Agent: x, X-T: \"${{ env.T }}\"}\n"
                                 "query: {k: 1}\nconnect_timeout: 2s\nfollow_redirects: false\n"
                                 "http_version: 1.1\ninsecure: false\nca_file: ca.pem\n"
                                 "max_response_bytes: 1000\nmax_connections: 10\n"
                                 "max_connections_per_host: 0\n", &m), 0);
  assert_string_equal(m, "");
  free(m);
  assert_int_equal(load_defaults("get: http://x/\nmax_connection: 5\n", &m), -1);
  assert_non_null(strstr(m, "1:1: unknown key \"get\" in defaults.http"));
  assert_non_null(strstr(m, "2:1: unknown key \"max_connection\" in defaults.http; did you "
                            "mean \"max_connections\"?"));
  free(m);
  assert_int_equal(load_defaults("max_connections: \"${{ vars.n }}\"\n"
                                 "max_connections_per_host: -1\n"
                                 "headers: {X-A: \"a\\nb\"}\n", &m), -1);
  assert_non_null(strstr(m, "1:18: http.max_connections: expected a plain number"));
  assert_non_null(strstr(m, "2:27: http.max_connections_per_host: expected a whole number"));
  assert_non_null(strstr(m, "3:16: http.headers: the value of X-A contains a line break"));
  free(m);
  assert_int_equal(load_defaults("[1, 2]\n", &m), -1);
  assert_non_null(strstr(m, "defaults.http: expected a map"));
  free(m);
}


/* ------------------------------------------------- the parameter tables */

/* The schema node of a param: the object branch of a union or of "this or
 * one ${{ }}", or the node itself. */
static yajl_val object_branch(yajl_val v)
{
  const char *one_of[] = {"oneOf", NULL}, *type[] = {"type", NULL};
  yajl_val alts = yajl_tree_get(v, one_of, yajl_t_array);
  for (size_t i = 0; alts && i < alts->u.array.len; i++) {
    yajl_val t = yajl_tree_get(alts->u.array.values[i], type, yajl_t_string);
    if (t && strcmp(t->u.string, "object") == 0)
      return alts->u.array.values[i];
  }
  return v;
}

/* Every key of `p` (and of the maps of given keys below it) is a property
 * of the schema object `obj`, with the table's description, and the
 * object has no other property. */
static void check_keys_in_schema(const struct pc_params *p, yajl_val obj, const char *where)
{
  const char *props_path[] = {"properties", NULL}, *desc_path[] = {"description", NULL};
  yajl_val props = yajl_tree_get(obj, props_path, yajl_t_object);
  if (!props)
    fail_msg("%s: no properties in the schema", where);
  if (props->u.object.len != p->nkeys)
    fail_msg("%s: the schema has %zu properties, the table %zu keys", where,
             props->u.object.len, p->nkeys);
  for (size_t i = 0; i < p->nkeys; i++) {
    const struct pc_param *pm = &p->keys[i];
    const char *key_path[] = {pm->name, NULL};
    yajl_val v = yajl_tree_get(props, key_path, yajl_t_object);
    if (!v)
      fail_msg("%s.%s: in the table, not in the schema", where, pm->name);
    yajl_val d = yajl_tree_get(v, desc_path, yajl_t_string);
    if (pm->description && (!d || strcmp(d->u.string, pm->description) != 0))
      fail_msg("%s.%s: the schema's description is not the table's", where, pm->name);
    if (pm->type == PC_PARAM_MAP && pm->sub && pm->sub->nkeys) {
      char *sub = pc_asprintf("%s.%s", where, pm->name);
      check_keys_in_schema(pm->sub, object_branch(v), sub);
      free(sub);
    }
  }
}

/* Loads `yaml` as a step's http map: the first message (without its
 * position), or NULL. */
static char *load_step_msg(const char *yaml)
{
  char *msgs = NULL;
  load_http(yaml, true, &msgs);
  char *m = NULL;
  if (msgs && *msgs) {
    const char *text = strchr(strchr(msgs, ':') + 1, ':') + 2; /* after "L:C: " */
    m = pc_xstrdup(text);
    m[strcspn(m, "\n")] = '\0';
  }
  free(msgs);
  return m;
}

/* Reads the options a Lua chunk returns: the message, or NULL. */
static char *read_msg(struct fx *f, const char *chunk)
{
  assert_int_equal(luaL_dostring(f->L, chunk), LUA_OK); /* opts */
  struct pc_http_spec sp;
  struct pc_http_spec_mem mem;
  char *err = NULL;
  pc_http_spec_read(f->h, -1, false, &sp, &mem, &err);
  pc_http_spec_mem_free(&mem);
  lua_pop(f->L, 1);
  return err;
}

/* The tables are what `pacer schema` says (every key, with its
 * description, and no other), and a value of the wrong type gives the same
 * message when the file has it (load time) as when a ${{ }} computed it
 * (run time): both come from the table. */
static void test_table_schema_and_messages(void **state)
{
  struct fx *f = *state;
  const struct pc_action_ops *const actions[] = {&pc_http_ops, NULL};
  char *json = pc_schema_json(actions);
  assert_non_null(json);
  char err[256];
  yajl_val root = yajl_tree_parse(json, err, sizeof err);
  assert_non_null(root);
  const char *http_path[] = {"definitions", "http", NULL};
  const char *defaults_path[] = {"definitions", "http_defaults", NULL};
  check_keys_in_schema(&pc_http_params, yajl_tree_get(root, http_path, yajl_t_object),
                       "definitions.http");
  check_keys_in_schema(&pc_http_defaults_params,
                       yajl_tree_get(root, defaults_path, yajl_t_object),
                       "definitions.http_defaults");
  yajl_tree_free(root);
  free(json);

  /* Each option with values of every kind, in YAML and in Lua. */
  static const char *const values[][2] = {
      {"{a: 1}", "{a = 1}"}, {"[1]", "{1}"},      {"x y", "'x y'"},  {"7", "7"},
      {"true", "true"},      {"{a: [1]}", "{a = {1}}"}, {"{a: {b: 1}}", "{a = {b = 1}}"},
      {"[{a: 1}]", "{{a = 1}}"}, {"\"1.4\"", "'1.4'"}, {"-1", "-1"},
      /* (not {}: in Lua an empty table is a map and a list alike) */
  };
  size_t compared = 0;
  for (size_t i = 0; i < pc_http_params.nkeys; i++) {
    const char *k = pc_http_params.keys[i].name;
    bool is_url = i >= 1 && i < PC_HTTP_SHORTHAND_FIRST + PC_HTTP_SHORTHANDS;
    const char *base_y = is_url ? "" : strcmp(k, "method") == 0 ? "url: http://h/, " : "get: http://h/, ";
    const char *base_l = is_url ? "" : strcmp(k, "method") == 0 ? "url = 'http://h/', " : "get = 'http://h/', ";
    for (size_t j = 0; j < PC_ARRAY_SIZE(values); j++) {
      char *y = pc_asprintf("{%s%s: %s}\n", base_y, k, values[j][0]);
      char *l = pc_asprintf("return {%s%s = %s}", base_l, k, values[j][1]);
      char *lm = load_step_msg(y), *rm = read_msg(f, l);
      /* Where the loader finds the type wrong, the run finds it so too,
       * with the same words. */
      if (lm && strstr(lm, "expected") && (!rm || strcmp(lm, rm) != 0))
        fail_msg("%s: load time says \"%s\", run time \"%s\"", y, lm, rm ? rm : "(nothing)");
      compared += lm != NULL;
      free(lm);
      free(rm);
      free(y);
      free(l);
    }
  }
  assert_true(compared > 100);
  /* The rules a table cannot say, written once for both (params.h). */
  static const char *const rules[][2] = {
      {"{get: http://h/, post: http://h/}", "{get = 'http://h/', post = 'http://h/'}"},
      {"{url: http://h/, get: http://h/}", "{url = 'http://h/', get = 'http://h/'}"},
      {"{post: http://h/, body: a, json: 1}", "{post = 'http://h/', body = 'a', json = 1}"},
      {"{url: http://h/, method: FETCH}", "{url = 'http://h/', method = 'FETCH'}"},
      {"{get: ftp://h/}", "{get = 'ftp://h/'}"},
      {"{headers: {a: b}}", "{headers = {a = 'b'}}"},
      {"{post: http://h/, method: PUT}", "{post = 'http://h/', method = 'PUT'}"},
      {"{get: http://h/, headers: {X-A: \"a\\nb\"}}", "{get = 'http://h/', headers = {['X-A'] = 'a\\nb'}}"},
      {"{get: http://h/, headers: {X-A: \"a\\0b\"}}", "{get = 'http://h/', headers = {['X-A'] = 'a\\0b'}}"},
      {"{get: http://h/, headers: {\"A B\": x}}", "{get = 'http://h/', headers = {['A B'] = 'x'}}"},
      {"{get: http://h/, cookies: {a: \"b;c\"}}", "{get = 'http://h/', cookies = {a = 'b;c'}}"},
      {"{get: http://h/, cookies: {\"a b\": c}}", "{get = 'http://h/', cookies = {['a b'] = 'c'}}"},
      {"{get: http://h/, auth: {basic: {user: \"a:b\", password: p}}}",
       "{get = 'http://h/', auth = {basic = {user = 'a:b', password = 'p'}}}"},
      {"{post: http://h/, multipart: {f: {type: a}}}",
       "{post = 'http://h/', multipart = {f = {type = 'a'}}}"},
      {"{get: http://h/, resolve: {h: 1.2.3.4}}", "{get = 'http://h/', resolve = {h = '1.2.3.4'}}"},
      {"{get: http://h/, resolve: {\"h:1\": \"1 2\"}}", "{get = 'http://h/', resolve = {['h:1'] = '1 2'}}"},
      {"{get: http://h/, connect_to: [\"a:b\"]}", "{get = 'http://h/', connect_to = {'a:b'}}"},
      {"{get: http://h/, unix_socket: \"\"}", "{get = 'http://h/', unix_socket = ''}"},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(rules); i++) {
    char *l = pc_asprintf("return %s", rules[i][1]);
    char *lm = load_step_msg(rules[i][0]), *rm = read_msg(f, l);
    if (!lm || !rm || strcmp(lm, rm) != 0)
      fail_msg("%s: load time says \"%s\", run time \"%s\"", rules[i][0], lm ? lm : "(nothing)",
               rm ? rm : "(nothing)");
    free(lm);
    free(rm);
    free(l);
  }
  /* The whole value, not a map. */
  char *lm = load_step_msg("just text\n"), *rm = read_msg(f, "return 'just text'");
  assert_non_null(lm);
  assert_non_null(rm);
  assert_string_equal(lm, rm);
  free(lm);
  free(rm);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_spec_read, setup, teardown),
      cmocka_unit_test_setup_teardown(test_spec_read_issue15, setup, teardown),
      cmocka_unit_test_setup_teardown(test_response_and_reuse, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
      cmocka_unit_test(test_load_defaults),
      cmocka_unit_test_setup_teardown(test_table_schema_and_messages, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
