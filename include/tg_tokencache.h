/*
 * tg_tokencache: verified bearer tokens and the claims they map to, per
 * worker thread (no locks), so a worker's repeated token costs a hash
 * lookup instead of a signature check.
 *
 * Bounded: at most `capacity` entries in 4-way sets; a full set replaces its
 * expired or oldest entry. An entry serves only while now < valid_until and
 * only for the key-set generation it was verified under, so new keys (a
 * rotation, a removed key) are honoured at once. Only verified tokens are
 * inserted.
 *
 * A lookup costs one hash of the token (a wyhash-style multiply-mix over
 * 8-byte words, keyed with 448 random bits per cache from RAND_bytes), a
 * compare of the set's four stored 64-bit hashes, and, for an equal hash,
 * a compare of the length and then of the bytes: equal hashes of different
 * tokens are told apart, they only cost a memcmp.
 */
#ifndef TG_TOKENCACHE_H
#define TG_TOKENCACHE_H
#include <stddef.h>
#include <stdint.h>

#include "tg_claims.h"

typedef struct tg_tokencache tg_tokencache;

/* capacity 0 gives a cache that holds nothing. NULL on no memory. */
tg_tokencache *tg_tokencache_new(size_t capacity);
/* The same with the hash key given rather than random (four words; the
 * rest of the key is derived from them): for tests, which need to know
 * where tokens land and which of them collide. */
tg_tokencache *tg_tokencache_new_keyed(size_t capacity, const uint64_t key[4]);
void tg_tokencache_free(tg_tokencache *c); /* NULL-safe */

/* The claims cached for token, or NULL. Valid until the next put. */
const tg_claims *tg_tokencache_get(tg_tokencache *c, const char *token,
                                   size_t len, uint64_t generation,
                                   int64_t now);

/* Caches a deep copy of claims. 0, or -1 when memory runs out (the cache is
 * then unchanged). */
int tg_tokencache_put(tg_tokencache *c, const char *token, size_t len,
                      uint64_t generation, int64_t valid_until,
                      const tg_claims *claims);

/* The cache's (keyed) hash of token; never 0. Pure for a given cache. */
uint64_t tg_tokencache_hash(const tg_tokencache *c, const char *token,
                            size_t len);

typedef struct tg_tokencache_stats {
  uint64_t hits, misses, inserts, evictions;
  size_t entries;
} tg_tokencache_stats;
void tg_tokencache_stats_get(const tg_tokencache *c, tg_tokencache_stats *out);
#endif
