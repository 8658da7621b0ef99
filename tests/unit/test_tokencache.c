#include "tg_test.h"
#include "tg_tokencache.h"

#include <stdio.h>
#include <stdlib.h>

/* Claims whose subject names n, to tell entries apart. */
static void claims_for(tg_claims *c, size_t n) {
  char s[32];
  tg_claims_init(c);
  snprintf(s, sizeof s, "s%zu", n);
  tg_claims_set_subject(c, s, strlen(s));
}

static int subject_is(const tg_claims *c, size_t n) {
  char s[32];
  snprintf(s, sizeof s, "s%zu", n);
  return c && c->subject && strcmp(c->subject, s) == 0;
}

TG_TEST(every_length_and_every_byte_counts) {
  char tok[256];
  /* Room enough that no set overflows (257 tokens in 16384 sets). */
  tg_tokencache *c = tg_tokencache_new(65536);
  uint64_t h[sizeof tok + 1];
  for (size_t i = 0; i < sizeof tok; i++)
    tok[i] = (char)('A' + (i * 7) % 26);
  /* Every prefix: word, 16- and 48-byte boundaries included. */
  for (size_t n = 0; n <= sizeof tok; n++) {
    tg_claims cl;
    claims_for(&cl, n);
    h[n] = tg_tokencache_hash(c, tok, n);
    TG_CHECK(h[n] != 0);
    TG_CHECK(tg_tokencache_put(c, tok, n, 1, 100, &cl) == 0);
    tg_claims_clear(&cl);
  }
  for (size_t n = 0; n <= sizeof tok; n++) {
    TG_CHECK(subject_is(tg_tokencache_get(c, tok, n, 1, 50), n));
    for (size_t m = 0; m < n; m++)
      TG_CHECK(h[m] != h[n]);
  }
  /* One changed byte anywhere changes the hash, and is a miss. */
  for (size_t n = 1; n <= 130; n++)
    for (size_t i = 0; i < n; i++) {
      tok[i] ^= 0x20;
      TG_CHECK(tg_tokencache_hash(c, tok, n) != h[n]);
      TG_CHECK(tg_tokencache_get(c, tok, n, 1, 50) == NULL);
      tok[i] ^= 0x20;
    }
  tg_tokencache_free(c);
}

/* The same change to equal blocks read by two lanes still changes the
 * hash: each lane has its own key word. */
TG_TEST(equal_blocks_in_two_lanes_do_not_cancel) {
  char base[200], tok[200];
  tg_tokencache *c = tg_tokencache_new(8);
  memset(base, 'x', sizeof base);
  uint64_t h = tg_tokencache_hash(c, base, sizeof base);
  for (size_t i = 0; i < sizeof base; i++)
    for (size_t j = i + 16; j < sizeof base; j += 16) {
      memcpy(tok, base, sizeof tok);
      tok[i] ^= 1;
      tok[j] ^= 1;
      TG_CHECK(tg_tokencache_hash(c, tok, sizeof tok) != h);
    }
  tg_tokencache_free(c);
}

/* Any key word changes the hash of a long token (every lane runs); the
 * seed word changes every hash. */
TG_TEST(hash_depends_on_the_key) {
  const uint64_t k[4] = {1, 2, 3, 4};
  const char *t = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
  char longer[300];
  tg_tokencache *a = tg_tokencache_new_keyed(8, k);
  tg_tokencache *b = tg_tokencache_new_keyed(8, k);
  for (size_t i = 0; i < sizeof longer; i++)
    longer[i] = (char)('a' + i % 26);
  TG_CHECK(tg_tokencache_hash(a, t, strlen(t)) ==
           tg_tokencache_hash(b, t, strlen(t)));
  for (int w = 0; w < 4; w++) {
    uint64_t k2[4] = {1, 2, 3, 4};
    k2[w] ^= 1;
    tg_tokencache *d = tg_tokencache_new_keyed(8, k2);
    TG_CHECK(tg_tokencache_hash(a, longer, sizeof longer) !=
             tg_tokencache_hash(d, longer, sizeof longer));
    if (w == 0)
      TG_CHECK(tg_tokencache_hash(a, t, strlen(t)) !=
               tg_tokencache_hash(d, t, strlen(t)));
    tg_tokencache_free(d);
  }
  tg_tokencache_free(a);
  tg_tokencache_free(b);
}

/* With an all-zero key every token of 1 to 3 bytes hashes alike: tokens
 * with equal hashes, of equal or different lengths, in one set. */
TG_TEST(equal_hashes_are_told_apart) {
  const uint64_t zero[4] = {0, 0, 0, 0};
  const char *tok[] = {"abc", "xyz", "ab", "q"};
  tg_tokencache *c = tg_tokencache_new_keyed(4, zero);
  tg_tokencache_stats st;
  tg_claims cl;
  for (size_t i = 1; i < 4; i++)
    TG_CHECK(tg_tokencache_hash(c, tok[i], strlen(tok[i])) ==
             tg_tokencache_hash(c, tok[0], 3));
  claims_for(&cl, 0);
  TG_CHECK(tg_tokencache_put(c, tok[0], 3, 1, 100, &cl) == 0);
  tg_claims_clear(&cl);
  TG_CHECK(tg_tokencache_get(c, "xyz", 3, 1, 50) == NULL);
  TG_CHECK(tg_tokencache_get(c, "ab", 2, 1, 50) == NULL);
  TG_CHECK(tg_tokencache_get(c, "abcd", 4, 1, 50) == NULL);
  for (size_t i = 1; i < 4; i++) {
    claims_for(&cl, i);
    TG_CHECK(tg_tokencache_put(c, tok[i], strlen(tok[i]), 1, 100, &cl) == 0);
    tg_claims_clear(&cl);
  }
  for (size_t i = 0; i < 4; i++)
    TG_CHECK(
        subject_is(tg_tokencache_get(c, tok[i], strlen(tok[i]), 1, 50), i));
  /* Putting a cached token again replaces its entry, not another one. */
  claims_for(&cl, 9);
  TG_CHECK(tg_tokencache_put(c, "xyz", 3, 1, 100, &cl) == 0);
  tg_claims_clear(&cl);
  TG_CHECK(subject_is(tg_tokencache_get(c, "xyz", 3, 1, 50), 9));
  TG_CHECK(subject_is(tg_tokencache_get(c, "abc", 3, 1, 50), 0));
  TG_CHECK(subject_is(tg_tokencache_get(c, "ab", 2, 1, 50), 2));
  TG_CHECK(subject_is(tg_tokencache_get(c, "q", 1, 1, 50), 3));
  tg_tokencache_stats_get(c, &st);
  TG_CHECK(st.entries == 4 && st.evictions == 1);
  /* A fifth colliding token evicts the oldest (abc). */
  claims_for(&cl, 5);
  TG_CHECK(tg_tokencache_put(c, "zz", 2, 1, 100, &cl) == 0);
  tg_claims_clear(&cl);
  TG_CHECK(tg_tokencache_get(c, "abc", 3, 1, 50) == NULL);
  TG_CHECK(subject_is(tg_tokencache_get(c, "zz", 2, 1, 50), 5));
  TG_CHECK(subject_is(tg_tokencache_get(c, "q", 1, 1, 50), 3));
  /* An expired or old-generation entry among equal hashes is dropped
   * alone. */
  TG_CHECK(tg_tokencache_get(c, "q", 1, 2, 50) == NULL);
  TG_CHECK(tg_tokencache_get(c, "q", 1, 1, 50) == NULL);
  TG_CHECK(tg_tokencache_get(c, "zz", 2, 1, 100) == NULL);
  TG_CHECK(subject_is(tg_tokencache_get(c, "ab", 2, 1, 50), 2));
  tg_tokencache_stats_get(c, &st);
  TG_CHECK(st.entries == 2);
  tg_tokencache_free(c);
}

TG_TEST(zero_capacity_holds_nothing) {
  tg_tokencache *c = tg_tokencache_new(0);
  tg_claims cl;
  claims_for(&cl, 1);
  TG_CHECK(tg_tokencache_put(c, "a.b.c", 5, 1, 100, &cl) == 0);
  TG_CHECK(tg_tokencache_get(c, "a.b.c", 5, 1, 50) == NULL);
  tg_claims_clear(&cl);
  tg_tokencache_free(c);
}

int main(void) {
  TG_RUN(every_length_and_every_byte_counts);
  TG_RUN(equal_blocks_in_two_lanes_do_not_cancel);
  TG_RUN(hash_depends_on_the_key);
  TG_RUN(equal_hashes_are_told_apart);
  TG_RUN(zero_capacity_holds_nothing);
  return TG_DONE();
}
