/*
 * tg_tokencache: verified bearer tokens and the claims they map to, per
 * worker thread (no locks), so a worker's repeated token costs a hash
 * lookup instead of a signature check.
 *
 * Bounded: at most `capacity` entries in 4-way sets; a full set replaces its
 * expired or oldest entry. An entry serves only while now < valid_until and
 * only for the key-set generation it was verified under, so new keys (a
 * rotation, a removed key) are honoured at once. Only verified tokens are
 * inserted; the hash is keyed with a per-cache random seed.
 */
#ifndef TG_TOKENCACHE_H
#define TG_TOKENCACHE_H
#include <stddef.h>
#include <stdint.h>

#include "tg_claims.h"

typedef struct tg_tokencache tg_tokencache;

/* capacity 0 gives a cache that holds nothing. NULL on no memory. */
tg_tokencache *tg_tokencache_new(size_t capacity);
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

typedef struct tg_tokencache_stats {
  uint64_t hits, misses, inserts, evictions;
  size_t entries;
} tg_tokencache_stats;
void tg_tokencache_stats_get(const tg_tokencache *c, tg_tokencache_stats *out);
#endif
