/* test_http_rules.c: the pure decisions of HTTP (runner/http/rules.c) and
 * the failure sentences (failure.c), each checked against a table: methods
 * and idempotency, header names, values and lookups, the status line,
 * redirect statuses and what a redirect does to the method, the body and
 * each header (across origins too), origins and URL parts, Retry-After,
 * the statuses save_to keeps, version names, and what every kind of failed
 * transfer is called and how it is classified. No loop, no Lua. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "http/failure.h"
#include "http/rules.h"
#include "base/redact.h"
#include "base/util.h"

/* =============================================================== rules */

static void test_rules_methods(void **state)
{
  (void)state;
  static const struct {
    const char *name;
    int method;
    bool idempotent, sends_body;
  } cases[] = {
      {"GET", PC_HTTP_GET, true, false},         {"get", PC_HTTP_GET, true, false},
      {"HEAD", PC_HTTP_HEAD, true, false},       {"Post", PC_HTTP_POST, false, true},
      {"PUT", PC_HTTP_PUT, true, true},          {"patch", PC_HTTP_PATCH, false, true},
      {"DELETE", PC_HTTP_DELETE, true, false},   {"OPTIONS", PC_HTTP_OPTIONS, true, false},
      {"trace", PC_HTTP_TRACE, true, false},     {"BREW", -1, false, false},
      {"", -1, false, false},                    {"GETS", -1, false, false},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    int m = pc_http_method_parse(cases[i].name);
    assert_int_equal(m, cases[i].method);
    if (m < 0)
      continue;
    assert_int_equal(strcasecmp(pc_http_method_name(m), cases[i].name), 0);
    assert_int_equal(pc_http_method_idempotent(m), cases[i].idempotent);
    assert_int_equal(pc_http_method_sends_body(m), cases[i].sends_body);
  }
}

static void test_rules_headers(void **state)
{
  (void)state;
  static const struct {
    const char *s;
    size_t len;
    bool name_ok, value_ok;
  } cases[] = {
      {"X-Api-Key", 9, true, true},   {"a!#$%&'*+-.^_`|~z", 17, true, true},
      {"", 0, false, true},           {"Bad Name", 8, false, true},
      {"Colon:", 6, false, true},     {"a\r\nB: c", 7, false, false},
      {"line\n", 5, false, false},    {"nul\0x", 5, false, false},
      {"caf\xc3\xa9", 5, false, true},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    assert_int_equal(pc_http_header_name_valid(cases[i].s, cases[i].len), cases[i].name_ok);
    assert_int_equal(pc_http_header_value_valid(cases[i].s, cases[i].len), cases[i].value_ok);
  }
  assert_true(pc_http_header_is("Content-Type: x", "content-type"));
  assert_true(pc_http_header_is("X-Empty;", "X-Empty"));
  assert_true(pc_http_header_is("Expect:", "expect"));
  assert_false(pc_http_header_is("Content-Types: x", "Content-Type"));
  assert_false(pc_http_header_is("Content", "Content-Type"));

  const char block[] = "HTTP/1.1 302 Found\r\nLocation:  /next \r\nRetry-After:\t5\r\n"
                       "X-Empty:\r\nlocationx: no\r\n\r\n";
  size_t len = 0;
  const char *v = pc_http_header_find(block, sizeof block - 1, "location", &len);
  assert_non_null(v);
  assert_int_equal(len, 5);
  assert_memory_equal(v, "/next", 5);
  v = pc_http_header_find(block, sizeof block - 1, "retry-after", &len);
  assert_int_equal(len, 1);
  assert_int_equal(*v, '5');
  v = pc_http_header_find(block, sizeof block - 1, "x-empty", &len);
  assert_non_null(v);
  assert_int_equal(len, 0);
  assert_null(pc_http_header_find(block, sizeof block - 1, "cookie", &len));

  static const struct {
    const char *line;
    int status;
  } lines[] = {
      {"HTTP/1.1 302 Found\r\n", 302}, {"HTTP/2 200\r\n", 200}, {"HTTP/1.0 404 x", 404},
      {"HTTP/1.1 2x0 Bad\r\n", 0},      {"HTTP/1.1\r\n", 0},    {"", 0},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(lines); i++)
    assert_int_equal(pc_http_status_line(lines[i].line, strlen(lines[i].line)), lines[i].status);
}

/* RFC 9110 §15.4 as fetch and aiohttp read it (docs/http.md, Redirects). */
static void test_rules_redirects(void **state)
{
  (void)state;
  static const long redirects[] = {301, 302, 303, 307, 308};
  static const long others[] = {200, 300, 304, 305, 306, 309, 404};
  for (size_t i = 0; i < PC_ARRAY_SIZE(redirects); i++)
    assert_true(pc_http_is_redirect(redirects[i]));
  for (size_t i = 0; i < PC_ARRAY_SIZE(others); i++)
    assert_false(pc_http_is_redirect(others[i]));

  static const struct {
    int status;
    enum pc_http_method m;
    bool has_body, as_get;
  } cases[] = {
      {303, PC_HTTP_GET, false, false},   {303, PC_HTTP_GET, true, true},
      {303, PC_HTTP_HEAD, false, false},  {303, PC_HTTP_POST, true, true},
      {303, PC_HTTP_PUT, true, true},     {303, PC_HTTP_DELETE, false, true},
      {303, PC_HTTP_PATCH, false, true},  {301, PC_HTTP_POST, true, true},
      {302, PC_HTTP_POST, false, true},   {301, PC_HTTP_PUT, true, false},
      {302, PC_HTTP_PATCH, true, false},  {302, PC_HTTP_DELETE, false, false},
      {301, PC_HTTP_GET, false, false},   {307, PC_HTTP_POST, true, false},
      {308, PC_HTTP_POST, true, false},   {307, PC_HTTP_PUT, true, false},
      {308, PC_HTTP_HEAD, false, false},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++)
    if (pc_http_redirect_as_get(cases[i].status, cases[i].m, cases[i].has_body) !=
        cases[i].as_get)
      fail_msg("case %zu: %d %s", i, cases[i].status, pc_http_method_name(cases[i].m));

  pc_secret_add("s3cr3t-value", 12);
  static const struct {
    const char *line;
    bool as_get, cross, kept, secret;
  } hdrs[] = {
      {"Content-Type: text/plain", false, false, true, false},
      {"Content-Type: text/plain", true, false, false, false},
      {"Content-Length: 3", true, false, false, false},
      {"content-encoding: gzip", true, false, false, false},
      {"Content-Language: en", true, false, false, false},
      {"Content-Location: /x", true, false, false, false},
      {"Content-Type:", true, true, false, false},
      {"Authorization: Bearer x", false, false, true, false},
      {"Authorization: Bearer x", false, true, false, false},
      {"Cookie: a=b", false, true, false, false},
      {"Cookie: a=b", true, false, true, false},
      {"X-Api-Key: s3cr3t-value", false, false, true, false},
      {"X-Api-Key: s3cr3t-value", false, true, false, true},
      {"X-Signed: v1 s3cr3t-value!", true, true, false, true},
      {"X-Plain: hello", true, true, true, false},
      {"X-Empty;", false, true, true, false},
      {"Expect:", true, true, true, false},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(hdrs); i++) {
    bool secret = false;
    bool kept = pc_http_redirect_keeps_header(hdrs[i].line, hdrs[i].as_get, hdrs[i].cross,
                                              &secret);
    if (kept != hdrs[i].kept || secret != hdrs[i].secret)
      fail_msg("%s (as_get %d, cross %d): kept %d, secret %d", hdrs[i].line, hdrs[i].as_get,
               hdrs[i].cross, kept, secret);
  }
  pc_secrets_clear();
}

static void test_rules_urls(void **state)
{
  (void)state;
  assert_true(pc_http_url_scheme_ok("http://x/"));
  assert_true(pc_http_url_scheme_ok("HTTPS://x/"));
  assert_false(pc_http_url_scheme_ok("ftp://x/"));
  assert_false(pc_http_url_scheme_ok("http:/x"));

  static const struct {
    const char *a, *b;
    bool same;
  } origins[] = {
      {"http://a.example/x", "http://a.example:80/y?q", true},
      {"https://a.example/", "https://A.EXAMPLE:443/z", true},
      {"http://a.example/", "https://a.example/", false},
      {"http://a.example:8080/", "http://a.example:8081/", false},
      {"http://127.0.0.1:5/", "http://localhost:5/", false},
      {"http://user:pw@a.example/", "http://a.example/", true},
      {"not a url", "not a url", false},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(origins); i++)
    if (pc_http_same_origin(origins[i].a, origins[i].b) != origins[i].same)
      fail_msg("%s vs %s", origins[i].a, origins[i].b);

  static const struct {
    const char *url, *origin, *host_port, *host;
    size_t prefix;
  } urls[] = {
      {"http://a.example/x", "http://a.example:80", "a.example:80", "a.example", 16},
      {"https://b.example:8443?q", "https://b.example:8443", "b.example:8443", "b.example", 22},
      {"http://[::1]:9/", "http://[::1]:9", "[::1]:9", "[::1]", 14},
      {"bogus", "?", "bogus", "bogus", 0},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(urls); i++) {
    char *o = pc_http_url_origin(urls[i].url), *hp = pc_http_url_host_port(urls[i].url),
         *h = pc_http_url_host(urls[i].url);
    assert_string_equal(o, urls[i].origin);
    assert_string_equal(hp, urls[i].host_port);
    assert_string_equal(h, urls[i].host);
    assert_int_equal(pc_http_url_prefix_len(urls[i].url), urls[i].prefix);
    free(o);
    free(hp);
    free(h);
  }
}

static void test_rules_values(void **state)
{
  (void)state;
  time_t now = curl_getdate("Sun, 06 Nov 1994 08:49:37 GMT", NULL);
  assert_true(now > 0);
  static const struct {
    const char *v;
    double ms;
  } ra[] = {
      {"3", 3000},
      {"0", 0},
      {"120", 120000},
      {"9999999999", 1e12},                      /* more than 9 digits: "a long time" */
      {"Sun, 06 Nov 1994 08:49:47 GMT", 10000}, /* an HTTP-date 10 s from now */
      {"Sun, 06 Nov 1994 08:49:30 GMT", 0},     /* in the past: at once */
      {"soon", -1},
      {"", -1},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(ra); i++) {
    double ms = pc_http_retry_after_ms(ra[i].v, strlen(ra[i].v), now);
    if (ms != ra[i].ms)
      fail_msg("Retry-After: %s: %g, expected %g", ra[i].v, ms, ra[i].ms);
  }

  const struct pc_status_range ok[] = {{200, 299}, {404, 404}};
  assert_true(pc_http_status_accepted(204, ok, 2));
  assert_true(pc_http_status_accepted(404, ok, 2));
  assert_false(pc_http_status_accepted(302, ok, 2));
  assert_true(pc_http_status_accepted(302, NULL, 0)); /* default: below 400 */
  assert_true(pc_http_status_accepted(100, NULL, 0));
  assert_false(pc_http_status_accepted(400, NULL, 0));
  assert_false(pc_http_status_accepted(0, NULL, 0));

  assert_string_equal(pc_http_version_name(CURL_HTTP_VERSION_1_0), "1.0");
  assert_string_equal(pc_http_version_name(CURL_HTTP_VERSION_1_1), "1.1");
  assert_string_equal(pc_http_version_name(CURL_HTTP_VERSION_2_0), "2");
  assert_string_equal(pc_http_version_name(CURL_HTTP_VERSION_3), "3");
  assert_null(pc_http_version_name(0));
}

/* ============================================================= failure */

static void test_failure_messages(void **state)
{
  (void)state;
  static const struct {
    struct pc_http_failure f;
    enum pc_fail kind;
    const char *msg;
  } cases[] = {
      {{.rc = CURLE_COULDNT_CONNECT, .os_errno = ECONNREFUSED}, PC_FAIL_NETWORK,
       "GET http://127.0.0.1:9/x: connection refused to 127.0.0.1:9"},
      {{.rc = CURLE_COULDNT_CONNECT, .os_errno = EHOSTUNREACH}, PC_FAIL_NETWORK,
       "GET http://127.0.0.1:9/x: 127.0.0.1:9 is unreachable (No route to host)"},
      {{.rc = CURLE_COULDNT_CONNECT, .errbuf = "Failed to connect"}, PC_FAIL_NETWORK,
       "GET http://127.0.0.1:9/x: could not connect to 127.0.0.1:9: Failed to connect"},
      {{.rc = CURLE_COULDNT_RESOLVE_HOST}, PC_FAIL_NETWORK,
       "GET http://127.0.0.1:9/x: could not resolve host 127.0.0.1"},
      {{.rc = CURLE_OPERATION_TIMEDOUT, .connect_timeout_ms = 200, .timeout_ms = -1},
       PC_FAIL_TIMEOUT,
       "GET http://127.0.0.1:9/x: could not connect to 127.0.0.1:9 within 200ms (connect_timeout)"},
      {{.rc = CURLE_OPERATION_TIMEDOUT, .connected = true, .connect_timeout_ms = 200,
        .timeout_ms = 1500},
       PC_FAIL_TIMEOUT, "GET http://127.0.0.1:9/x: timed out after 1.5s"},
      {{.rc = CURLE_OPERATION_TIMEDOUT, .connected = true, .connect_timeout_ms = -1,
        .errbuf = "Operation timed out"},
       PC_FAIL_TIMEOUT, "GET http://127.0.0.1:9/x: timed out: Operation timed out"},
      {{.rc = CURLE_WRITE_ERROR, .too_big = true, .max_bytes = 100}, PC_FAIL_ERROR,
       "GET http://127.0.0.1:9/x: response larger than 100 bytes (max_response_bytes)"},
      {{.rc = CURLE_FILESIZE_EXCEEDED, .max_bytes = 100}, PC_FAIL_ERROR,
       "response larger than 100 bytes (max_response_bytes)"},
      {{.rc = CURLE_WRITE_ERROR, .write_errno = ENOSPC, .save_to = "out.bin"}, PC_FAIL_ERROR,
       "GET http://127.0.0.1:9/x: cannot write \"out.bin\": No space left on device"},
      {{.rc = CURLE_WRITE_ERROR, .no_memory = true, .received = 4096}, PC_FAIL_ERROR,
       "the response from 127.0.0.1:9 does not fit in memory (4096 bytes received)"},
      {{.rc = CURLE_WRITE_ERROR, .headers_too_big = true, .header_max = 256 << 10},
       PC_FAIL_ERROR, "the response headers from 127.0.0.1:9 are larger than 256 KiB"},
      {{.rc = CURLE_OUT_OF_MEMORY, .in_headers = true}, PC_FAIL_ERROR,
       "the response headers from 127.0.0.1:9 are too large: a header line longer than 100 KiB"},
      {{.rc = CURLE_OUT_OF_MEMORY, .errbuf = "x"}, PC_FAIL_ERROR,
       "out of memory (libcurl: x)"},
      {{.rc = CURLE_COULDNT_CONNECT, .open_errno = EMFILE}, PC_FAIL_ERROR,
       "too many open files (EMFILE): cannot open a connection to 127.0.0.1:9; pacer may open"},
      {{.rc = CURLE_COULDNT_CONNECT, .open_errno = ENFILE}, PC_FAIL_ERROR,
       "cannot open a connection to 127.0.0.1:9: Too many open files in system (ENFILE"},
      {{.rc = CURLE_UNSUPPORTED_PROTOCOL}, PC_FAIL_ERROR,
       "127.0.0.1:9 did not reply with HTTP"},
      {{.rc = CURLE_UNSUPPORTED_PROTOCOL, .status = 200, .errbuf = "x"}, PC_FAIL_ERROR,
       "unsupported protocol (only http and https): x"},
      {{.rc = CURLE_GOT_NOTHING}, PC_FAIL_NETWORK,
       "127.0.0.1:9 closed the connection without sending a response"},
      {{.rc = CURLE_RECV_ERROR, .os_errno = ECONNRESET, .errbuf = "Recv failure"},
       PC_FAIL_NETWORK,
       "the connection to 127.0.0.1:9 failed while receiving the response: Recv failure"},
      {{.rc = CURLE_RECV_ERROR, .errbuf = "Illegal chunk"}, PC_FAIL_NETWORK,
       "127.0.0.1:9 sent an invalid HTTP response: Illegal chunk"},
      {{.rc = CURLE_SEND_ERROR, .errbuf = "Send failure"}, PC_FAIL_NETWORK,
       "the connection to 127.0.0.1:9 failed while sending the request: Send failure"},
      {{.rc = CURLE_PARTIAL_FILE, .errbuf = "transfer closed"}, PC_FAIL_NETWORK,
       "the response from 127.0.0.1:9 ended early: transfer closed"},
      {{.rc = CURLE_PEER_FAILED_VERIFICATION, .errbuf = "self-signed"}, PC_FAIL_NETWORK,
       "TLS certificate verification failed for 127.0.0.1:9: self-signed (use ca_file"},
      {{.rc = CURLE_SSL_CONNECT_ERROR, .errbuf = "alert"}, PC_FAIL_NETWORK,
       "TLS handshake with 127.0.0.1:9 failed: alert"},
      {{.rc = CURLE_SSL_CACERT_BADFILE, .errbuf = "bad"}, PC_FAIL_ERROR, "TLS setup failed: bad"},
      {{.rc = CURLE_URL_MALFORMAT, .errbuf = "bad"}, PC_FAIL_ERROR, "invalid URL: bad"},
      {{.rc = CURLE_HTTP2, .errbuf = "stream"}, PC_FAIL_NETWORK,
       "HTTP/2 error with 127.0.0.1:9: stream"},
      {{.rc = CURLE_WEIRD_SERVER_REPLY, .errbuf = "odd"}, PC_FAIL_NETWORK,
       "127.0.0.1:9 sent an invalid HTTP response: odd"},
      {{.rc = CURLE_GOT_NOTHING, .final_url = "http://localhost:7/y", .nredirects = 2},
       PC_FAIL_NETWORK,
       "GET http://127.0.0.1:9/x: redirected to http://localhost:7/y: localhost:7 closed the "
       "connection"},
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(cases); i++) {
    struct pc_http_failure f = cases[i].f;
    f.method = "GET";
    f.url = "http://127.0.0.1:9/x";
    struct pc_buf m;
    pc_buf_init(&m, 4096);
    enum pc_fail kind = pc_http_failure_describe(&f, &m);
    if (kind != cases[i].kind || !strstr(m.data, cases[i].msg))
      fail_msg("case %zu: kind %d, \"%s\"; expected %d, \"%s\"", i, kind, m.data,
               cases[i].kind, cases[i].msg);
    pc_buf_free(&m);
  }
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rules_methods),
      cmocka_unit_test(test_rules_headers),
      cmocka_unit_test(test_rules_redirects),
      cmocka_unit_test(test_rules_urls),
      cmocka_unit_test(test_rules_values),
      cmocka_unit_test(test_failure_messages),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
