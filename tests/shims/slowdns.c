/* slowdns.c: an LD_PRELOAD shim for tests that makes name resolution slow
 * and local.
 *
 * getaddrinfo() of a name under `.pacer.test` (RFC 6761 reserves `.test`
 * for testing) waits PACER_TEST_DNS_DELAY_MS milliseconds (default 1000)
 * and then answers 127.0.0.1; every other name goes to the real resolver.
 * libcurl's threaded resolver calls getaddrinfo on a thread of its own, so
 * a workflow can keep several resolver threads busy for a known time,
 * cancel requests while their threads resolve, and never leave the
 * loopback interface (tests/cases/http_resolver_threads.yml, run by the
 * ThreadSanitizer pass). Nothing of this is linked into pacer. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

static const char suffix[] = ".pacer.test";

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
  /* Looked up on every call rather than in a constructor: a sanitizer
   * runtime loaded after this shim may not be initialised yet then. */
  getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
  size_t n = node ? strlen(node) : 0;
  if (n > sizeof suffix - 1 && strcmp(node + n - (sizeof suffix - 1), suffix) == 0) {
    const char *d = getenv("PACER_TEST_DNS_DELAY_MS");
    long ms = d && *d ? atol(d) : 1000;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return real("127.0.0.1", service, hints, res);
  }
  return real(node, service, hints, res);
}
