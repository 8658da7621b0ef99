#include "tg_tokencache.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>

#define WAYS 4
/* The hash key: a seed and one word per lane. */
#define TC_KEYS 7

typedef struct entry {
  char *token;
  size_t len;
  uint64_t generation;
  int64_t valid_until;
  uint64_t inserted; /* insertion sequence, for "oldest" */
  tg_claims claims;
} entry;

/* tags[i] is the hash of e[i]'s token, 0 when e[i] is empty: a lookup reads
 * its set's four tags (one cache line) and touches an entry only when a tag
 * matches. */
struct tg_tokencache {
  uint64_t *tags;
  entry *e;
  size_t nsets; /* power of two */
  uint64_t key[TC_KEYS], seq;
  tg_tokencache_stats st;
};

/* The high and low halves of the 128-bit product, folded. */
static inline uint64_t tc_mix(uint64_t a, uint64_t b) {
#ifdef __SIZEOF_INT128__
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
  uint64_t ha = a >> 32, hb = b >> 32, la = (uint32_t)a, lb = (uint32_t)b;
  uint64_t hh = ha * hb, hl = ha * lb, lh = la * hb, ll = la * lb;
  uint64_t mid = (ll >> 32) + (uint32_t)hl + (uint32_t)lh;
  uint64_t lo = (mid << 32) | (uint32_t)ll;
  uint64_t hi = hh + (hl >> 32) + (lh >> 32) + (mid >> 32);
  return lo ^ hi;
#endif
}

static inline uint64_t tc_r8(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t tc_r4(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* wyhash's construction (Wang Yi, public domain) with a per-cache random
 * key: 16 bytes per multiply, six independent lanes (each with its own key
 * word, so equal blocks in two lanes do not cancel) over long input, the
 * length mixed in last. Only verified tokens are stored, so nobody can fill
 * sets with forged ones; the key keeps placement unpredictable, and a
 * colliding lookup costs no more than a miss. */
static uint64_t tc_hash(const uint64_t k[TC_KEYS], const void *data,
                        size_t len) {
  const uint8_t *p = data;
  uint64_t seed = k[0] ^ tc_mix(k[0] ^ k[1], k[2]), a, b;
  if (len <= 16) {
    if (len >= 4) {
      size_t q = (len >> 3) << 2;
      a = (tc_r4(p) << 32) | tc_r4(p + q);
      b = (tc_r4(p + len - 4) << 32) | tc_r4(p + len - 4 - q);
    } else if (len > 0) {
      a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = len;
    if (i > 96) {
      uint64_t s1 = seed, s2 = seed, s3 = seed, s4 = seed, s5 = seed;
      do {
        seed = tc_mix(tc_r8(p) ^ k[1], tc_r8(p + 8) ^ seed);
        s1 = tc_mix(tc_r8(p + 16) ^ k[2], tc_r8(p + 24) ^ s1);
        s2 = tc_mix(tc_r8(p + 32) ^ k[3], tc_r8(p + 40) ^ s2);
        s3 = tc_mix(tc_r8(p + 48) ^ k[4], tc_r8(p + 56) ^ s3);
        s4 = tc_mix(tc_r8(p + 64) ^ k[5], tc_r8(p + 72) ^ s4);
        s5 = tc_mix(tc_r8(p + 80) ^ k[6], tc_r8(p + 88) ^ s5);
        p += 96;
        i -= 96;
      } while (i > 96);
      seed ^= s1 ^ s2 ^ s3 ^ s4 ^ s5;
    }
    while (i > 16) {
      seed = tc_mix(tc_r8(p) ^ k[1], tc_r8(p + 8) ^ seed);
      p += 16;
      i -= 16;
    }
    a = tc_r8(p + i - 16);
    b = tc_r8(p + i - 8);
  }
  uint64_t h = tc_mix(k[1] ^ len, tc_mix(a ^ k[1], b ^ seed));
  return h ? h : 1;
}

uint64_t tg_tokencache_hash(const tg_tokencache *c, const char *token,
                            size_t len) {
  return tc_hash(c->key, token, len);
}

static tg_tokencache *tc_alloc(size_t capacity) {
  tg_tokencache *c = calloc(1, sizeof *c);
  if (!c)
    return NULL;
  size_t sets = 1;
  while (sets * WAYS < capacity)
    sets *= 2;
  if (capacity > 0) {
    c->e = calloc(sets * WAYS, sizeof *c->e);
    c->tags = calloc(sets * WAYS, sizeof *c->tags);
    if (!c->e || !c->tags) {
      free(c->e);
      free(c->tags);
      free(c);
      return NULL;
    }
    c->nsets = sets;
  }
  return c;
}

/* splitmix64's finaliser: the key words past the four a test gives. */
static uint64_t tc_spread(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

tg_tokencache *tg_tokencache_new_keyed(size_t capacity, const uint64_t key[4]) {
  tg_tokencache *c = tc_alloc(capacity);
  if (!c)
    return NULL;
  for (int i = 0; i < TC_KEYS; i++)
    c->key[i] = i < 4 ? key[i] : tc_spread(key[i - 3] + (uint64_t)i);
  return c;
}

tg_tokencache *tg_tokencache_new(size_t capacity) {
  tg_tokencache *c = tc_alloc(capacity);
  if (c && RAND_bytes((unsigned char *)c->key, sizeof c->key) != 1)
    for (int i = 0; i < TC_KEYS; i++)
      c->key[i] = tc_spread((uint64_t)(uintptr_t)c + (uint64_t)i);
  return c;
}

static void entry_clear(tg_tokencache *c, size_t i) {
  entry *e = &c->e[i];
  if (!e->token)
    return;
  free(e->token);
  tg_claims_clear(&e->claims);
  memset(e, 0, sizeof *e);
  c->tags[i] = 0;
}

void tg_tokencache_free(tg_tokencache *c) {
  if (!c)
    return;
  for (size_t i = 0; i < c->nsets * WAYS; i++)
    entry_clear(c, i);
  free(c->e);
  free(c->tags);
  OPENSSL_cleanse(c->key, sizeof c->key);
  free(c);
}

/* The slot holding token in the set at base, or WAYS. */
static int tc_find(const tg_tokencache *c, size_t base, uint64_t h,
                   const char *token, size_t len) {
  const uint64_t *tags = &c->tags[base];
  for (int i = 0; i < WAYS; i++) {
    if (tags[i] != h)
      continue;
    const entry *e = &c->e[base + (size_t)i];
    if (e->len == len && memcmp(e->token, token, len) == 0)
      return i;
  }
  return WAYS;
}

const tg_claims *tg_tokencache_get(tg_tokencache *c, const char *token,
                                   size_t len, uint64_t generation,
                                   int64_t now) {
  if (!c->nsets) {
    c->st.misses++;
    return NULL;
  }
  uint64_t h = tc_hash(c->key, token, len);
  size_t base = (h & (c->nsets - 1)) * WAYS;
  int i = tc_find(c, base, h, token, len);
  if (i < WAYS) {
    entry *e = &c->e[base + (size_t)i];
    if (e->generation == generation && now < e->valid_until) {
      c->st.hits++;
      return &e->claims;
    }
    entry_clear(c, base + (size_t)i);
    c->st.entries--;
  }
  c->st.misses++;
  return NULL;
}

int tg_tokencache_put(tg_tokencache *c, const char *token, size_t len,
                      uint64_t generation, int64_t valid_until,
                      const tg_claims *claims) {
  if (!c->nsets)
    return 0;
  uint64_t h = tc_hash(c->key, token, len);
  size_t base = (h & (c->nsets - 1)) * WAYS;
  entry *set = &c->e[base];
  int v = tc_find(c, base, h, token, len);
  for (int i = 0; i < WAYS && v == WAYS; i++)
    if (!set[i].token)
      v = i;
  for (int i = 0; i < WAYS && v == WAYS; i++)
    if (set[i].generation != generation)
      v = i;
  if (v == WAYS) {
    v = 0;
    for (int i = 1; i < WAYS; i++)
      if (set[i].inserted < set[v].inserted)
        v = i;
  }
  entry fresh = {.len = len,
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
  if (set[v].token) {
    entry_clear(c, base + (size_t)v);
    c->st.evictions++;
  } else {
    c->st.entries++;
  }
  set[v] = fresh;
  c->tags[base + (size_t)v] = h;
  c->st.inserts++;
  return 0;
}

void tg_tokencache_stats_get(const tg_tokencache *c, tg_tokencache_stats *out) {
  *out = c->st;
}
