/* redact_bench.c: what redaction costs per log line and per report, with
 * no secret, with a few, and with a PEM key (docs/redaction.md quotes the
 * figures). It also times the redactor pacer had before (a memcmp of every
 * secret at every byte, appending one byte at a time) on the same inputs,
 * for comparison. Build: cmake --build build --target redact_bench; run:
 * build/redact_bench. Single-threaded; take the best of a few runs on a
 * busy machine. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/redact.h"
#include "base/util.h"

/* ------------------------------------------------ the previous redactor */

static char **old_secrets;
static size_t *old_lens;
static size_t old_n;

static void old_add(const char *s, size_t len)
{
  old_secrets = pc_xrealloc(old_secrets, (old_n + 1) * sizeof *old_secrets);
  old_lens = pc_xrealloc(old_lens, (old_n + 1) * sizeof *old_lens);
  old_secrets[old_n] = pc_xstrndup(s, len);
  old_lens[old_n++] = len;
}

static char *old_redact(const char *s, size_t len, size_t *outlen)
{
  struct pc_buf b;
  pc_buf_init(&b, (size_t)1 << 40);
  size_t i = 0;
  while (i < len) {
    size_t hit = 0;
    for (size_t k = 0; k < old_n; k++)
      if (old_lens[k] <= len - i && memcmp(s + i, old_secrets[k], old_lens[k]) == 0 &&
          old_lens[k] > hit)
        hit = old_lens[k];
    if (hit) {
      pc_buf_append(&b, "***", 3);
      i += hit;
    } else {
      pc_buf_append(&b, s + i, 1);
      i++;
    }
  }
  *outlen = b.len;
  return b.data ? pc_buf_steal(&b) : pc_xstrdup("");
}

/* ---------------------------------------------------------------- timing */

static const char line[] =
    "12:00:01.001 info  [fetch (nightly.yml:12)] GET https://api.example.com/v1/items?page=3 "
    "-> 200 (HTTP/2, reused connection, 41.2ms)";

static const char pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n"
    "-----END PRIVATE KEY-----";

static double ns_per_call(char *(*fn)(const char *, size_t, size_t *), const char *s,
                          size_t len, int iters)
{
  double best = 1e30;
  for (int round = 0; round < 5; round++) {
    double t0 = pc_mono_ms();
    for (int i = 0; i < iters; i++) {
      size_t n;
      free(fn(s, len, &n));
    }
    double ns = (pc_mono_ms() - t0) * 1e6 / iters;
    if (ns < best)
      best = ns;
  }
  return best;
}

static void row(const char *what, const char *report, size_t report_len)
{
  double l_new = ns_per_call(pc_redact, line, sizeof line - 1, 200000);
  double l_old = ns_per_call(old_redact, line, sizeof line - 1, 200000);
  double r_new = ns_per_call(pc_redact, report, report_len, 20);
  double r_old = ns_per_call(old_redact, report, report_len, 20);
  printf("| %-32s | %8.0f ns | %8.0f ns | %8.2f ms | %8.2f ms |\n", what, l_new, l_old,
         r_new / 1e6, r_old / 1e6);
}

/* Registers the secrets of configuration `level` (0: none, 1: one token,
 * 2: five tokens, 3: five tokens and a PEM key) with both redactors. */
static const char *const tokens[] = {"ghp_R2d2C3poX9yZ8wV7uT6sR5qP4oN3mL2kJ1i",
                                     "sk_live_51Habc0123456789xyz", "hunter2-hunter2",
                                     "AKIAIOSFODNN7EXAMPLE",
                                     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"};

static void setup(int level)
{
  size_t n = level == 0 ? 0 : level == 1 ? 1 : PC_ARRAY_SIZE(tokens);
  for (size_t i = 0; i < n; i++) {
    pc_secret_add(tokens[i], strlen(tokens[i]));
    old_add(tokens[i], strlen(tokens[i]));
  }
  if (level == 3) {
    pc_secret_add(pem, sizeof pem - 1);
    old_add(pem, sizeof pem - 1);
  }
}

static void make_report(struct pc_buf *rep)
{
  pc_buf_init(rep, (size_t)1 << 30);
  while (rep->len < (1u << 20))
    pc_buf_puts(rep, "{\"id\":\"fetch\",\"outcome\":\"ok\",\"url\":\"https://api.example.com/"
                     "v1/items?page=3\",\"message\":\"expected status 200, got 503\"},\n");
}

int main(int argc, char **argv)
{
  if (argc == 4) {
    /* One configuration, to count instructions (stable on a busy machine):
     * valgrind --tool=cachegrind --cache-sim=no redact_bench line|report
     * LEVEL new|old|skip, minus the `skip` run (set-up only). */
    setup(atoi(argv[2]));
    struct pc_buf rep;
    make_report(&rep);
    bool is_line = strcmp(argv[1], "line") == 0;
    char *(*fn)(const char *, size_t, size_t *) = strcmp(argv[3], "old") == 0 ? old_redact
                                                                               : pc_redact;
    int iters = strcmp(argv[3], "skip") == 0 ? 0 : is_line ? 100000 : 10; /* skip: the baseline */
    for (int i = 0; i < iters; i++) {
      size_t n;
      free(is_line ? fn(line, sizeof line - 1, &n) : fn(rep.data, rep.len, &n));
    }
    pc_buf_free(&rep);
    return 0;
  }

  struct pc_buf rep;
  make_report(&rep);
  printf("| secrets registered               | log line | (before) | 1 MiB report | (before) |\n");
  printf("|---|---|---|---|---|\n");
  static const char *const names[] = {"none", "1 token", "5 tokens", "5 tokens and a PEM key"};
  for (int level = 0; level < 4; level++) {
    pc_secrets_clear();
    old_n = 0;
    setup(level);
    row(names[level], rep.data, rep.len);
  }
  pc_buf_free(&rep);
  pc_secrets_clear();
  return 0;
}
