/* digest.c: SHA-256 as hex (digest.h), a thin layer over nettle's
 * sha256_* so that callers never see nettle's byte-level interface. */
#include "base/digest.h"

#include <stdint.h>

void pc_sha256_init(struct pc_sha256 *s)
{
  sha256_init(&s->ctx);
}

void pc_sha256_update(struct pc_sha256 *s, const void *data, size_t len)
{
  sha256_update(&s->ctx, len, data);
}

void pc_sha256_hex(struct pc_sha256 *s, char out[PC_SHA256_HEX])
{
  static const char hex[] = "0123456789abcdef";
  uint8_t d[SHA256_DIGEST_SIZE];
  sha256_digest(&s->ctx, sizeof d, d);
  for (size_t i = 0; i < sizeof d; i++) {
    out[2 * i] = hex[d[i] >> 4];
    out[2 * i + 1] = hex[d[i] & 15];
  }
  out[2 * sizeof d] = '\0';
}

void pc_sha256_hex_of(const void *data, size_t len, char out[PC_SHA256_HEX])
{
  struct pc_sha256 s;
  pc_sha256_init(&s);
  pc_sha256_update(&s, data, len);
  pc_sha256_hex(&s, out);
}
