#include "tg_tokencache.h"

#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4

typedef struct entry {
  uint64_t hash;
  char *token;
  size_t len;
  uint64_t generation;
  int64_t valid_until;
  uint64_t inserted; /* insertion sequence, for "oldest" */
  tg_claims claims;
} entry;

struct tg_tokencache {
  entry *e;
  size_t nsets; /* power of two */
  uint64_t seed, seq;
  tg_tokencache_stats st;
};

/* FNV-1a, seeded: only verified tokens are stored, so an attacker cannot
 * fill sets with forged ones; the seed keeps set placement unpredictable. */
static uint64_t hash(const tg_tokencache *c, const char *s, size_t len) {
  uint64_t h = 1469598103934665603ULL ^ c->seed;
  for (size_t i = 0; i < len; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h ^ (h >> 29);
}

tg_tokencache *tg_tokencache_new(size_t capacity) {
  tg_tokencache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  size_t sets = 1;
  while (sets * WAYS < capacity)
    sets *= 2;
  if (capacity > 0) {
    c->e = calloc(sets * WAYS, sizeof *c->e);
    if (!c->e) {
      free(c);
      return NULL;
    }
    c->nsets = sets;
  }
  if (RAND_bytes((unsigned char *)&c->seed, sizeof c->seed) != 1)
    c->seed = (uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ULL;
  return c;
}

static void entry_clear(entry *e) {
  if (!e->token)
    return;
  free(e->token);
  tg_claims_clear(&e->claims);
  memset(e, 0, sizeof *e);
}

void tg_tokencache_free(tg_tokencache *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nsets * WAYS; i++)
    entry_clear(&c->e[i]);
  free(c->e);
  free(c);
}

const tg_claims *tg_tokencache_get(tg_tokencache *c, const char *token,
                                   size_t len, uint64_t generation,
                                   int64_t now) {
  if (!c->nsets) {
    c->st.misses++;
    return NULL;
  }
  uint64_t h = hash(c, token, len);
  entry *set = &c->e[(h & (c->nsets - 1)) * WAYS];
  for (int i = 0; i < WAYS; i++) {
    entry *e = &set[i];
    if (e->token && e->hash == h && e->len == len &&
        memcmp(e->token, token, len) == 0) {
      if (e->generation == generation && now < e->valid_until) {
        c->st.hits++;
        return &e->claims;
      }
      entry_clear(e);
      c->st.entries--;
      break;
    }
  }
  c->st.misses++;
  return NULL;
}

int tg_tokencache_put(tg_tokencache *c, const char *token, size_t len,
                      uint64_t generation, int64_t valid_until,
                      const tg_claims *claims) {
  if (!c->nsets)
    return 0;
  uint64_t h = hash(c, token, len);
  entry *set = &c->e[(h & (c->nsets - 1)) * WAYS];
  entry *victim = NULL;
  for (int i = 0; i < WAYS && !victim; i++)
    if (!set[i].token || (set[i].hash == h && set[i].len == len &&
                          memcmp(set[i].token, token, len) == 0))
      victim = &set[i];
  for (int i = 0; i < WAYS && !victim; i++)
    if (set[i].generation != generation)
      victim = &set[i];
  if (!victim) {
    victim = &set[0];
    for (int i = 1; i < WAYS; i++)
      if (set[i].inserted < victim->inserted)
        victim = &set[i];
  }
  entry fresh = {.hash = h,
                 .len = len,
                 .generation = generation,
                 .valid_until = valid_until,
                 .inserted = ++c->seq};
  tg_claims_init(&fresh.claims);
  fresh.token = malloc(len ? len : 1);
  if (!fresh.token || tg_claims_copy(&fresh.claims, claims) != 0) {
    free(fresh.token);
    tg_claims_clear(&fresh.claims);
    return -1;
  }
  memcpy(fresh.token, token, len);
  if (victim->token) {
    entry_clear(victim);
    c->st.evictions++;
  } else {
    c->st.entries++;
  }
  *victim = fresh;
  c->st.inserts++;
  return 0;
}

void tg_tokencache_stats_get(const tg_tokencache *c, tg_tokencache_stats *out) {
  *out = c->st;
}
