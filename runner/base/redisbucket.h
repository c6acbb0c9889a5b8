/* redisbucket.h: a pool's rate budget shared between processes, held in
 * Redis (`pools.NAME.shared: redis://HOST:PORT/KEY`, docs/shards.md).
 *
 * The budget is a GCRA bucket (the generic cell rate algorithm: one
 * "theoretical arrival time" per key) kept by a Lua script that Redis runs
 * atomically with EVALSHA: each call reserves up to N tokens that fall due
 * within the next PC_REDIS_HORIZON_MS, evenly spaced at the pool's rate on
 * Redis's own clock (a quarter of the horizon's worth at most, so that one
 * process cannot take it all), and says when the first may be used. Every process
 * using the key therefore shares one rate and one burst, however many there
 * are. It is a token source for base/pool.c (pool.h, struct
 * pc_pool_source): the pool asks for as many tokens as wait.
 *
 * It never blocks the loop: the name is resolved on libuv's threadpool
 * (uv_getaddrinfo), and hiredis talks to Redis through its libuv adapter.
 * If Redis cannot be used (refused, unreachable, no answer within
 * PC_REDIS_TIMEOUT_MS, a lost connection, an error reply), the bucket says
 * so once (a warning naming the pool) and the pool falls back to its own
 * rate for the rest of the run.
 *
 * Credentials: a password in the URL, or else in the environment variable
 * REDISCLI_AUTH (redis-cli's), is sent with AUTH before the first call and
 * registered as a secret (base/redact.h), so no message shows it. */
#ifndef PACER_REDISBUCKET_H
#define PACER_REDISBUCKET_H

#include <uv.h>

#include "base/pool.h"

/* How far ahead one call may reserve tokens. */
#define PC_REDIS_HORIZON_MS 250
/* A call (the connection included) that gets no answer this long means
 * Redis cannot be used. */
#define PC_REDIS_TIMEOUT_MS 2000

struct pc_redis_bucket;

/* A parsed `shared:` URL; every string malloc'd (pc_redis_url_free). */
struct pc_redis_url {
  char *user;     /* NULL: none (AUTH with the password alone) */
  char *password; /* NULL: none in the URL */
  char *host;
  int port;
  char *key;
};

/* Parses "redis://[[USER]:PASSWORD@]HOST[:PORT]/KEY" (PORT defaults to
 * 6379; HOST may be [v6]; USER and PASSWORD are taken as written). Returns
 * 0, or -1 with *err (malloc'd, saying what is wrong; it never quotes the
 * password). */
int pc_redis_url_parse(const char *url, struct pc_redis_url *u, char **err);
void pc_redis_url_free(struct pc_redis_url *u);

/* Becomes the token source of pool `p` (named `name` in the warning;
 * borrowed, it outlives the bucket) and starts connecting to `url`, which
 * pc_redis_url_parse accepts. `budget` is the pool as the workflow defines
 * it: its rate and burst are the shared bucket's. The pool's own limits may
 * be a shard's share of it, the rate the pool falls back to. */
struct pc_redis_bucket *pc_redis_bucket_start(uv_loop_t *loop, struct pc_pool *p,
                                              const char *name, const char *url,
                                              const struct pc_pool_limits *budget);
/* True once the bucket has given up on Redis (the pool uses its own rate). */
bool pc_redis_bucket_failed(const struct pc_redis_bucket *b);
/* Stops answering the pool, disconnects, and frees the bucket once its
 * handles are closed (run the loop). Call it before closing the pool. */
void pc_redis_bucket_close(struct pc_redis_bucket *b);

#endif
