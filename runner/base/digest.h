/* digest.h: SHA-256 digests as lowercase hex, through nettle (the small
 * crypto library of GnuTLS, which libcurl's dependencies load anyway; it is
 * linked normally: 300 KiB and no dependencies of its own, against
 * libcrypto's 4.5 MiB). A shard's report carries the digests of the workflow
 * file and of the vars overrides, so that `pacer merge` can refuse shards
 * of different runs (docs/shards.md). */
#ifndef PACER_DIGEST_H
#define PACER_DIGEST_H

#include <stddef.h>

#include <nettle/sha2.h>

#define PC_SHA256_HEX 65 /* 64 hex digits and the NUL */

struct pc_sha256 {
  struct sha256_ctx ctx;
};

void pc_sha256_init(struct pc_sha256 *s);
void pc_sha256_update(struct pc_sha256 *s, const void *data, size_t len);
/* Writes the digest of everything fed so far as hex into out. */
void pc_sha256_hex(struct pc_sha256 *s, char out[PC_SHA256_HEX]);
/* The digest of one buffer. */
void pc_sha256_hex_of(const void *data, size_t len, char out[PC_SHA256_HEX]);

#endif
