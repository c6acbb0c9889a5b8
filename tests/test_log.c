/* test_log.c: the redactor (redact.c) and log line formatting (log.c).
 * Each secret is registered once and every form pacer or a server may
 * print it in is searched for: raw, %XX and `+` URL encoding, the JSON
 * escaping styles, each line of a multi-line value, a fragment left at a
 * cut, a value split across the pieces of a stream; then URL userinfo, and
 * what a log line looks like (valid UTF-8 JSON, control characters shown
 * in text). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"

static int teardown(void **state)
{
  (void)state;
  pc_secrets_clear();
  return 0;
}

/* pc_redact of a C string, compared with the expected text. */
#define EXPECT_REDACT(in, want)                                 \
  do {                                                          \
    size_t n_;                                                  \
    char *r_ = pc_redact((in), strlen(in), &n_);                \
    if (strcmp(r_, (want)) != 0)                                \
      fail_msg("redact(\"%s\") = \"%s\", want \"%s\"", (in), r_, (want)); \
    assert_int_equal(n_, strlen(r_));                           \
    free(r_);                                                   \
  } while (0)

static void add(const char *s)
{
  pc_secret_add(s, strlen(s));
}

/* ------------------------------------------------------------- matching */

static void test_raw(void **state)
{
  (void)state;
  EXPECT_REDACT("nothing registered", "nothing registered");
  add("hunter2-secret");
  add("ab"); /* too short: ignored */
  EXPECT_REDACT("token=hunter2-secret;", "token=***;");
  EXPECT_REDACT("hunter2-secrethunter2-secret", "******");
  EXPECT_REDACT("hunter2-secre", "hunter2-secre"); /* not a cut: a different text */
  EXPECT_REDACT("ab cd", "ab cd");
  EXPECT_REDACT("", "");
  /* Leftmost, then longest. */
  add("abcdef");
  add("abcdefghij");
  EXPECT_REDACT("xabcdefghijx", "x***x");
  EXPECT_REDACT("xabcdefghx", "x***ghx");
  /* Registering again is a no-op. */
  for (int i = 0; i < 1000; i++)
    add("hunter2-secret");
  EXPECT_REDACT("hunter2-secret", "***");
  /* Bytes that are not text, NUL included. */
  static const char bin[] = "\x01\xff\x00zz-secret-zz\x00";
  pc_secret_add("\xff\x00zz", 4);
  size_t n;
  char *r = pc_redact(bin, sizeof bin - 1, &n);
  assert_int_equal(n, 1 + 3 + 10 + 1);
  assert_memory_equal(r, "\x01***-secret-zz\x00", n);
  free(r);
}

static void test_url_encoded(void **state)
{
  (void)state;
  /* A base64 key: + / = are encoded by pacer's query: and urlencode(). */
  add("aB3+x/Yz9=");
  EXPECT_REDACT("GET /k?key=aB3%2Bx%2FYz9%3D&n=1", "GET /k?key=***&n=1");
  add("two words & more");
  EXPECT_REDACT("q=two%20words%20%26%20more", "q=***");
  EXPECT_REDACT("q=two+words+%26+more", "q=***");
  EXPECT_REDACT("q=two words & more", "q=***");
  add("p\xc3\xa9-secret"); /* é */
  EXPECT_REDACT("x=p%C3%A9-secret", "x=***");
}

static void test_json_escaped(void **state)
{
  (void)state;
  /* Quote, backslash, slash, newline, tab, <, & and a non-ASCII letter. */
  add("s\"e\\c/r\ne\tt<&\xc3\xa9!");
  static const char *const forms[] = {
      "s\\\"e\\\\c/r\\ne\\tt<&\xc3\xa9!",                    /* JavaScript, pacer */
      "s\\\"e\\\\c\\/r\\ne\\tt<&\xc3\xa9!",                  /* lua-cjson */
      "s\\\"e\\\\c/r\\ne\\tt<&\\u00e9!",                      /* Python */
      "s\\\"e\\\\c/r\\ne\\tt\\u003c\\u0026\xc3\xa9!",         /* Go */
  };
  for (size_t i = 0; i < PC_ARRAY_SIZE(forms); i++) {
    char in[128];
    snprintf(in, sizeof in, "{\"v\":\"%s\"}", forms[i]);
    EXPECT_REDACT(in, "{\"v\":\"***\"}");
  }
  /* Control characters: \b as itself or \u0008, DEL raw or \u007f;
   * past the BMP, Python writes a surrogate pair. */
  add("bs\b-del\x7f-\xf0\x9f\x94\x91");
  EXPECT_REDACT("[bs\\b-del\x7f-\xf0\x9f\x94\x91]", "[***]");
  EXPECT_REDACT("[bs\\u0008-del\x7f-\xf0\x9f\x94\x91]", "[***]");
  EXPECT_REDACT("[bs\\b-del\\u007f-\xf0\x9f\x94\x91]", "[***]");
  EXPECT_REDACT("[bs\\b-del\\u007f-\\ud83d\\udd11]", "[***]"); /* Python */
  /* A json: body pacer sent, quoted by an echo server in a JSON string. */
  add("q\"u\\o\nte-secret");
  EXPECT_REDACT("{\"data\": \"{\\\"k\\\": \\\"q\\\\\\\"u\\\\\\\\o\\\\nte-secret\\\"}\"}",
                "{\"data\": \"{\\\"k\\\": \\\"***\\\"}\"}");
}

static void test_multiline(void **state)
{
  (void)state;
  add("-----BEGIN KEY-----\nMIIEvQIBADANBgkq\r\nshort\nhkiG9w0BAQEFAASC\n-----END KEY-----");
  EXPECT_REDACT("MIIEvQIBADANBgkq", "***");
  EXPECT_REDACT("line: hkiG9w0BAQEFAASC.", "line: ***.");
  EXPECT_REDACT("-----END KEY-----", "***");
  /* A line shorter than PC_SECRET_PART_MIN is not redacted on its own. */
  EXPECT_REDACT("short", "short");
  /* The whole value, raw and JSON-escaped (one line). */
  EXPECT_REDACT("k=-----BEGIN KEY-----\nMIIEvQIBADANBgkq\r\nshort\nhkiG9w0BAQEFAASC\n"
                "-----END KEY-----;", "k=***;");
  EXPECT_REDACT("\"-----BEGIN KEY-----\\nMIIEvQIBADANBgkq\\r\\nshort\\nhkiG9w0BAQEFAASC\\n"
                "-----END KEY-----\"", "\"***\"");
  /* Lines joined by another separator (an excerpt collapsing white space)
   * are still caught line by line. */
  EXPECT_REDACT("MIIEvQIBADANBgkq short hkiG9w0BAQEFAASC", "*** short ***");
  /* A line's own forms: URL-encoded, JSON-escaped. */
  add("user\nMzEf+Yyj/iWA4R4\"x");
  EXPECT_REDACT("?l=MzEf%2BYyj%2FiWA4R4%22x", "?l=***");
  EXPECT_REDACT("{\"l\":\"MzEf+Yyj\\/iWA4R4\\\"x\"}", "{\"l\":\"***\"}");
  EXPECT_REDACT("user", "user");
}

/* ----------------------------------------------------------------- cuts */

static void test_cut_fragment(void **state)
{
  (void)state;
  add("sk_live_0123456789abcdef");
  /* A text cut inside the secret: the fragment becomes a secret. */
  const char *kept = "output... sk_live_0123";
  pc_secret_cut(kept, strlen(kept));
  EXPECT_REDACT(kept, "output... ***");
  EXPECT_REDACT("elsewhere sk_live_0123 too", "elsewhere *** too");
  /* Fragments shorter than PC_SECRET_PART_MIN are left (and not
   * registered). */
  const char *small = "output... sk_li";
  pc_secret_cut(small, strlen(small));
  EXPECT_REDACT(small, small);
  /* Exactly PC_SECRET_PART_MIN bytes are enough. */
  assert_int_equal(PC_SECRET_PART_MIN, 6);
  const char *six = "x sk_liv";
  pc_secret_cut(six, strlen(six));
  EXPECT_REDACT(six, "x ***");
  /* A text that does not end inside a secret registers nothing. */
  const char *plain = "output ends normally";
  pc_secret_cut(plain, strlen(plain));
  EXPECT_REDACT(plain, plain);
  /* The URL-encoded form cut in the middle counts too. */
  add("pa ss/word+1");
  const char *enc = "GET /?p=pa%20ss%2Fwo";
  pc_secret_cut(enc, strlen(enc));
  EXPECT_REDACT(enc, "GET /?p=***");
}

static void test_head(void **state)
{
  (void)state;
  add("0123456789-secret");
  /* The secret straddles the cut at 10: it is redacted whole. */
  char body[300];
  snprintf(body, sizeof body, "abcdefgh 0123456789-secret %0200d", 0);
  size_t n;
  bool more;
  char *r = pc_redact_head(body, strlen(body), 10, &n, &more);
  assert_true(n >= 10);
  assert_true(n < strlen(body));
  assert_true(more);
  assert_memory_equal(r, "abcdefgh *** 000", 16);
  assert_null(strstr(r, "0123"));
  free(r);
  /* All of it when short enough. */
  const char *small = "abcdefgh 0123456789-secret and more text after it";
  r = pc_redact_head(small, strlen(small), 500, &n, &more);
  assert_false(more);
  assert_string_equal(r, "abcdefgh *** and more text after it");
  free(r);
  /* Many secrets ahead of the cut shrink the text: the window grows. */
  struct pc_buf b;
  pc_buf_init(&b, 1 << 20);
  for (int i = 0; i < 100; i++)
    pc_buf_puts(&b, "0123456789-secret");
  for (int i = 0; i < 100; i++)
    pc_buf_puts(&b, "tail-text.");
  r = pc_redact_head(b.data, b.len, 200, &n, &more);
  assert_true(n >= 200);
  assert_true(more);
  assert_null(strstr(r, "0123"));
  free(r);
  pc_buf_free(&b);
}

/* Feeds `in` to a stream in pieces cut at `cuts` (ascending offsets). */
static char *stream_pieces(const char *in, const size_t *cuts, size_t ncuts)
{
  struct pc_redact_stream rs;
  pc_redact_stream_init(&rs);
  struct pc_buf out;
  pc_buf_init(&out, 1 << 20);
  size_t at = 0, len = strlen(in);
  for (size_t i = 0; i <= ncuts; i++) {
    size_t to = i < ncuts ? cuts[i] : len;
    pc_redact_stream_feed(&rs, in + at, to - at, &out);
    at = to;
  }
  pc_redact_stream_end(&rs, &out);
  pc_redact_stream_free(&rs);
  return pc_buf_steal(&out);
}

static void test_stream(void **state)
{
  (void)state;
  /* No secret: the bytes go through untouched. */
  size_t cut1[] = {3};
  char *r = stream_pieces("plain text", cut1, 1);
  assert_string_equal(r, "plain text");
  free(r);

  add("line-one-of-it\nline-two-of-it");
  add("zzz");
  const char *in = "a line-one-of-it\nline-two-of-it b zzz\n";
  size_t len = strlen(in);
  /* Every split into two pieces, and every split into three. */
  for (size_t i = 0; i <= len; i++) {
    size_t c[] = {i};
    r = stream_pieces(in, c, 1);
    if (strcmp(r, "a *** b ***\n") != 0)
      fail_msg("cut at %zu: \"%s\"", i, r);
    free(r);
    for (size_t j = i; j <= len; j++) {
      size_t c2[] = {i, j};
      r = stream_pieces(in, c2, 2);
      if (strcmp(r, "a *** b ***\n") != 0)
        fail_msg("cuts at %zu, %zu: \"%s\"", i, j, r);
      free(r);
    }
  }
  /* Byte by byte. */
  size_t bytes[64];
  for (size_t i = 0; i < len; i++)
    bytes[i] = i + 1;
  r = stream_pieces(in, bytes, len - 1);
  assert_string_equal(r, "a *** b ***\n");
  free(r);
  /* The stream ends inside the secret: a start of PC_SECRET_PART_MIN bytes
   * or more is redacted, a shorter one is not. */
  size_t none[1] = {0};
  r = stream_pieces("out: line-one-of", none, 0);
  assert_string_equal(r, "out: ***");
  free(r);
  r = stream_pieces("out: line-", none, 0);
  assert_string_equal(r, "out: line-");
  free(r);
  /* What is decided comes out at once; only a possible start is held. */
  struct pc_redact_stream rs;
  pc_redact_stream_init(&rs);
  struct pc_buf out;
  pc_buf_init(&out, 1 << 20);
  pc_redact_stream_feed(&rs, "hello line-one", 14, &out);
  assert_string_equal(out.data, "hello ");
  pc_redact_stream_feed(&rs, "-and-not", 8, &out);
  assert_string_equal(out.data, "hello line-one-and-not");
  pc_redact_stream_end(&rs, &out);
  pc_redact_stream_free(&rs);
  pc_buf_free(&out);
}

/* ------------------------------------------------------------- userinfo */

static void test_userinfo(void **state)
{
  (void)state;
  /* Whether or not the password is a secret. */
  EXPECT_REDACT("GET https://user:pa55word@example.com/x: 401",
                "GET https://user:***@example.com/x: 401");
  EXPECT_REDACT("redis://:p@example.com:6379/0", "redis://:***@example.com:6379/0");
  EXPECT_REDACT("https://u:p@ss@h.example/", "https://u:***@h.example/");
  EXPECT_REDACT("a https://a:b@h1/ and http://c:d@[::1]:80/ z",
                "a https://a:***@h1/ and http://c:***@[::1]:80/ z");
  EXPECT_REDACT("\"url\":\"https://u:pw@h\"", "\"url\":\"https://u:***@h\"");
  /* No password, no userinfo, or an @ past the authority: unchanged. */
  EXPECT_REDACT("https://token@example.com/", "https://token@example.com/");
  EXPECT_REDACT("https://user:@example.com/", "https://user:@example.com/");
  EXPECT_REDACT("https://example.com/a:b@c", "https://example.com/a:b@c");
  EXPECT_REDACT("https://example.com?a:b@c", "https://example.com?a:b@c");
  EXPECT_REDACT("mailto:a:b@c", "mailto:a:b@c");
  EXPECT_REDACT("://", "://");
  EXPECT_REDACT("x://", "x://");
  /* With secrets registered the same rule applies. */
  add("pa55word");
  EXPECT_REDACT("https://user:pa55word@example.com/", "https://user:***@example.com/");
  EXPECT_REDACT("https://other:hunter22@example.com/", "https://other:***@example.com/");
  /* A password given in a URL is a secret, with the Basic credentials
   * libcurl makes of it (base64 padded with one, two or no "="). */
  pc_secret_add_userinfo("pacer-user", "Url-Pa55w0rd-x");
  pc_secret_add_userinfo("u", "pwd");
  pc_secret_add_userinfo("ab", "cdef");
  pc_secret_add_userinfo("", "secret1");
  EXPECT_REDACT("password Url-Pa55w0rd-x", "password ***");
  EXPECT_REDACT("\"authorization\": \"Basic cGFjZXItdXNlcjpVcmwtUGE1NXcwcmQteA==\"",
                "\"authorization\": \"Basic ***\"");
  EXPECT_REDACT("dTpwd2Q= YWI6Y2RlZg== OnNlY3JldDE=", "*** *** ***");
}

/* ------------------------------------------------------------ log lines */

/* Runs pc_log with stderr sent to a file; returns what it wrote. */
static char *logged(bool json, const char *step, const char *msg)
{
  struct pc_log_opts o = {0, json, false};
  pc_log_init(&o);
  char path[] = "/tmp/pacer-test-log-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  pc_log(PC_LOG_INFO, step, "%s", msg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  off_t end = lseek(fd, 0, SEEK_END);
  char *buf = calloc(1, (size_t)end + 1);
  assert_int_equal(pread(fd, buf, (size_t)end, 0), end);
  close(fd);
  return buf;
}

static void assert_valid_utf8(const char *s)
{
  const unsigned char *p = (const unsigned char *)s;
  size_t len = strlen(s);
  while (len > 0) {
    uint32_t cp;
    size_t n = pc_utf8_decode(p, len, &cp);
    if (n == 0)
      fail_msg("invalid UTF-8 at \"%s\"", (const char *)p);
    p += n;
    len -= n;
  }
}

static void test_log_json(void **state)
{
  (void)state;
  add("tok\"en\x01\xff-secret");
  /* A PNG header, ESC, a lone continuation byte, a truncated sequence. */
  char *line = logged(true, "get (wf.yml:3)",
                      "body: \x89PNG\r\n\x1a\n tok\"en\x01\xff-secret \x1b[2J \x80 \xe2\x82 \xc3\xa9");
  assert_valid_utf8(line);
  assert_non_null(strstr(line, "\"step\":\"get (wf.yml:3)\""));
  assert_non_null(strstr(line, "\"msg\":\"body: \\ufffdPNG\\r\\n\\u001a\\n *** \\u001b[2J "
                               "\\ufffd \\ufffd\\ufffd \xc3\xa9\"}\n"));
  assert_null(strstr(line, "tok"));
  free(line);
}

static void test_log_text(void **state)
{
  (void)state;
  add("sec\x1bret");
  char *line = logged(false, "st\x1b]0;x\x07" "ep",
                      "a\x1b[31mred\r\tb\nc \xc2\x9b d \xff e sec\x1bret \x7f \xc3\xa9");
  /* Tab and newline as they are; ESC, CR, BEL, C1, DEL and stray bytes
   * shown; the secret (holding ESC) redacted before. */
  assert_non_null(strstr(line, "[st\\x1b]0;x\\x07ep] a\\x1b[31mred\\r\tb\nc \\xc2\\x9b d \\xff e "
                               "*** \\x7f \xc3\xa9\n"));
  assert_null(strchr(line, '\x1b'));
  assert_null(strchr(line, '\r'));
  free(line);
}

/* The run_id of the JSON line pc_log writes for `step` (malloc'd; "" when
 * the line has none). */
static char *run_of(const char *step)
{
  char *line = logged(true, step, "m");
  const char *p = strstr(line, "\"run_id\":\"");
  char *id = strdup("");
  if (p) {
    p += strlen("\"run_id\":\"");
    free(id);
    id = strndup(p, strcspn(p, "\""));
  }
  free(line);
  return id;
}

#define EXPECT_RUN(step, want)                                                                  \
  do {                                                                                          \
    char *got_ = run_of(step);                                                                  \
    assert_string_equal(got_, want);                                                            \
    free(got_);                                                                                 \
  } while (0)

/* Several runs in one process (pacer run --jobs N): a line is the run's
 * of the file its step's label names, else the run pushed (the one whose
 * work is being done), else the process's. */
static void test_log_run_ids(void **state)
{
  (void)state;
  pc_log_set_run_id("base");
  pc_log_add_run("dir/a.yml", "ra");
  pc_log_add_run("b.yml", "rb");
  pc_log_add_run("one/x.yml", "rx1");
  pc_log_add_run("two/x.yml", "rx2"); /* one name, two runs: tells neither */
  EXPECT_RUN("get (a.yml:4)", "ra");
  EXPECT_RUN("each[2] y (z) / get (b.yml:12)", "rb");    /* the last " (" is the place */
  EXPECT_RUN("t (a.yml:9 \u203a b.yml:2)", "ra");         /* a sub-workflow: the caller's */
  EXPECT_RUN(NULL, "base");
  EXPECT_RUN("s (x.yml:1)", "base");
  EXPECT_RUN("s (other.yml:1)", "base");
  const char *prev = pc_log_push_run_id("rx2");
  EXPECT_RUN("s (x.yml:1)", "rx2");
  EXPECT_RUN(NULL, "rx2");
  EXPECT_RUN("get (a.yml:4)", "ra"); /* the label wins over the pushed run */
  const char *inner = pc_log_push_run_id("rb");
  EXPECT_RUN(NULL, "rb");
  pc_log_pop_run_id(inner);
  EXPECT_RUN(NULL, "rx2");
  pc_log_pop_run_id(prev);
  EXPECT_RUN(NULL, "base");
  pc_log_clear_runs();
  EXPECT_RUN("get (a.yml:4)", "base");
  pc_log_set_run_id(NULL);
  EXPECT_RUN("get (a.yml:4)", "");
}

static void test_json_quote(void **state)
{
  (void)state;
  struct pc_buf b;
  pc_buf_init(&b, 4096);
  pc_json_quote(&b, "a\"\\\n\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91|\xc3|\xed\xa0\x80|\xc0\xaf");
  assert_string_equal(b.data, "\"a\\\"\\\\\\n\\u0001\xc3\xa9\xe2\x82\xac\xf0\x9f\x94\x91|"
                              "\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd\"");
  pc_buf_free(&b);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_raw, teardown),
      cmocka_unit_test_teardown(test_url_encoded, teardown),
      cmocka_unit_test_teardown(test_json_escaped, teardown),
      cmocka_unit_test_teardown(test_multiline, teardown),
      cmocka_unit_test_teardown(test_cut_fragment, teardown),
      cmocka_unit_test_teardown(test_head, teardown),
      cmocka_unit_test_teardown(test_stream, teardown),
      cmocka_unit_test_teardown(test_userinfo, teardown),
      cmocka_unit_test_teardown(test_log_json, teardown),
      cmocka_unit_test_teardown(test_log_text, teardown),
      cmocka_unit_test_teardown(test_log_run_ids, teardown),
      cmocka_unit_test_teardown(test_json_quote, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
