/* test_trace.c: W3C trace context (base/trace.c: parsing TRACEPARENT by the
 * W3C rules, formatting, joining a trace) and the OpenTelemetry settings
 * read from the environment (export/otlp.c: the KEY=VALUE lists, the
 * endpoint, what turns the export off, header values as secrets). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/redact.h"
#include "base/trace.h"
#include "export/otlp.h"

#define GOOD "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static void test_parse_good(void **state)
{
  (void)state;
  uint8_t tid[16];
  uint64_t span = 0;
  uint8_t fl = 0xee;
  assert_int_equal(pc_trace_parse(GOOD, tid, &span, &fl), 0);
  assert_int_equal(tid[0], 0x0a);
  assert_int_equal(tid[15], 0x9c);
  assert_true(span == 0xb7ad6b7169203331ull);
  assert_int_equal(fl, 1);
  /* A later version: its first four fields are read, more may follow
   * after a dash. */
  assert_int_equal(pc_trace_parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-xyz",
                                  tid, &span, &fl), 0);
  assert_int_equal(fl, 0);
}

static void test_parse_bad(void **state)
{
  (void)state;
  static const char *const bad[] = {
      "",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",     /* short */
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-", /* v00 with more */
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  /* upper case */
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",  /* zero trace id */
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  /* zero span id */
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  /* version ff */
      "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  /* separator */
      "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",  /* not hex */
      "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x", /* v01, no dash */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    uint8_t tid[16];
    uint64_t span;
    uint8_t fl;
    if (pc_trace_parse(bad[i], tid, &span, &fl) != -1)
      fail_msg("accepted: \"%s\"", bad[i]);
  }
  assert_int_equal(pc_trace_parse(NULL, NULL, NULL, NULL), -1);
}

static void test_init_join_and_format(void **state)
{
  (void)state;
  struct pc_trace t;
  const char *why = "x";
  /* Flags other than "sampled" are not passed on. */
  pc_trace_init(&t, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03", &why);
  assert_null(why);
  assert_true(t.joined);
  assert_true(t.parent == 0xb7ad6b7169203331ull);
  assert_int_equal(t.flags, PC_TRACE_SAMPLED);
  assert_true(t.run_span != 0 && t.run_span != t.parent);
  char out[PC_TRACEPARENT_SIZE];
  pc_trace_format(&t, 0x1234, out);
  assert_string_equal(out, "00-0af7651916cd43dd8448eb211c80319c-0000000000001234-01");
  /* Two new spans differ, and neither is 0. */
  uint64_t a = pc_trace_new_span(&t), b = pc_trace_new_span(&t);
  assert_true(a && b && a != b);

  /* Invalid: ignored with a reason, and a trace of its own (sampled). */
  pc_trace_init(&t, "not-a-traceparent", &why);
  assert_non_null(why);
  assert_false(t.joined);
  assert_true(t.parent == 0);
  assert_int_equal(t.flags, PC_TRACE_SAMPLED);
  pc_trace_format(&t, t.run_span, out);
  uint8_t tid[16];
  uint64_t span;
  uint8_t fl;
  assert_int_equal(pc_trace_parse(out, tid, &span, &fl), 0);
  assert_true(span == t.run_span);
  assert_memory_equal(tid, t.trace_id, 16);

  /* Two runs start two traces. */
  struct pc_trace u;
  pc_trace_init(&u, NULL, &why);
  assert_null(why);
  assert_memory_not_equal(u.trace_id, t.trace_id, 16);
}

static void test_parse_list(void **state)
{
  (void)state;
  struct pc_kv *kv = NULL;
  size_t n = 0, bad = 0;
  assert_int_equal(pc_otlp_parse_list(" a = 1 ,, b=x%20y%2Cz ,c=,", &kv, &n, &bad), 0);
  assert_int_equal(n, 3);
  assert_string_equal(kv[0].key, "a");
  assert_string_equal(kv[0].value, "1");
  assert_string_equal(kv[1].value, "x y,z");
  assert_string_equal(kv[2].key, "c");
  assert_string_equal(kv[2].value, "");
  /* A later key replaces an earlier one; a bad entry appends nothing. */
  assert_int_equal(pc_otlp_parse_list("b=2,d=4", &kv, &n, &bad), 0);
  assert_int_equal(n, 4);
  assert_string_equal(kv[1].value, "2");
  assert_int_equal(pc_otlp_parse_list("e=5,novalue,f=6", &kv, &n, &bad), -1);
  assert_int_equal(bad, 2);
  assert_int_equal(pc_otlp_parse_list("=5", &kv, &n, &bad), -1);
  assert_int_equal(bad, 1);
  assert_int_equal(n, 4);
  for (size_t i = 0; i < n; i++) {
    free(kv[i].key);
    free(kv[i].value);
  }
  free(kv);
}

static const char *const otel_vars[] = {
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER"};

static int clear_env(void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof otel_vars / sizeof *otel_vars; i++)
    unsetenv(otel_vars[i]);
  pc_secrets_clear();
  return 0;
}

static const char *resource(const struct pc_otlp_config *c, const char *key)
{
  for (size_t i = 0; i < c->nresource; i++)
    if (strcmp(c->resource[i].key, key) == 0)
      return c->resource[i].value;
  return NULL;
}

static void test_config_endpoint(void **state)
{
  (void)state;
  struct pc_otlp_config c;
  assert_int_equal(pc_otlp_config_read(&c), 0); /* nothing set */
  pc_otlp_config_free(&c);

  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/", 1);
  assert_int_equal(pc_otlp_config_read(&c), 1);
  assert_string_equal(c.endpoint, "http://collector:4318/v1/traces");
  assert_string_equal(resource(&c, "service.name"), "unknown_service:pacer");
  assert_true(c.timeout_ms < 0);
  pc_otlp_config_free(&c);

  /* The traces endpoint is used as given, and wins. */
  setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://t.example/otlp/spans", 1);
  setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1500", 1);
  setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,team=ops", 1);
  assert_int_equal(pc_otlp_config_read(&c), 1);
  assert_string_equal(c.endpoint, "https://t.example/otlp/spans");
  assert_true(c.timeout_ms == 1500);
  assert_string_equal(resource(&c, "service.name"), "from-attrs");
  assert_string_equal(resource(&c, "team"), "ops");
  pc_otlp_config_free(&c);
  setenv("OTEL_SERVICE_NAME", "svc", 1);
  assert_int_equal(pc_otlp_config_read(&c), 1);
  assert_string_equal(resource(&c, "service.name"), "svc");
  pc_otlp_config_free(&c);

  /* Switched off. */
  setenv("OTEL_SDK_DISABLED", "TRUE", 1);
  assert_int_equal(pc_otlp_config_read(&c), 0);
  pc_otlp_config_free(&c);
  unsetenv("OTEL_SDK_DISABLED");
  setenv("OTEL_TRACES_EXPORTER", "none", 1);
  assert_int_equal(pc_otlp_config_read(&c), 0);
  pc_otlp_config_free(&c);
  unsetenv("OTEL_TRACES_EXPORTER");
  /* "" is unset, as the specification says. */
  setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "", 1);
  assert_int_equal(pc_otlp_config_read(&c), 1);
  assert_string_equal(c.endpoint, "http://collector:4318/v1/traces");
  pc_otlp_config_free(&c);
}

static void test_config_wrong(void **state)
{
  (void)state;
  struct pc_otlp_config c;
  struct pc_log_opts lo = {.verbosity = -1}; /* the warnings are expected */
  pc_log_init(&lo);
  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", 1);
  assert_int_equal(pc_otlp_config_read(&c), -1);
  assert_null(c.endpoint);
  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318", 1);
  setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
  assert_int_equal(pc_otlp_config_read(&c), -1);
  setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf", 1);
  assert_int_equal(pc_otlp_config_read(&c), 1);
  pc_otlp_config_free(&c);
  /* A bad header list turns the export off, but its values are secrets
   * all the same. */
  setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20tok-123456,broken", 1);
  assert_int_equal(pc_otlp_config_read(&c), -1);
  const char *text = "sent tok-123456 and Authorization=Bearer%20tok-123456,broken";
  size_t len;
  char *red = pc_redact(text, strlen(text), &len);
  assert_null(strstr(red, "tok-123456"));
  free(red);
  pc_secrets_clear();
  /* A good one: decoded, sent as given; the value and the token are secrets. */
  setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20tok-654321, x-key = k-999999 ", 1);
  assert_int_equal(pc_otlp_config_read(&c), 1);
  assert_int_equal(c.nheaders, 2);
  assert_string_equal(c.headers[0].value, "Bearer tok-654321");
  assert_string_equal(c.headers[1].key, "x-key");
  assert_string_equal(c.headers[1].value, "k-999999");
  text = "a tok-654321 b k-999999";
  red = pc_redact(text, strlen(text), &len);
  assert_string_equal(red, "a *** b ***");
  free(red);
  pc_otlp_config_free(&c);
}

int main(void)
{
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_good),
      cmocka_unit_test(test_parse_bad),
      cmocka_unit_test(test_init_join_and_format),
      cmocka_unit_test(test_parse_list),
      cmocka_unit_test_setup_teardown(test_config_endpoint, clear_env, clear_env),
      cmocka_unit_test_setup_teardown(test_config_wrong, clear_env, clear_env),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
