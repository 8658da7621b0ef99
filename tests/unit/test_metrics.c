#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_metrics.h"
#include "tg_test.h"

TG_TEST(namespace_slots_are_bounded_and_stable) {
  tg_nslabels *l = tg_nslabels_new(2);
  TG_CHECK(l != NULL);
  TG_CHECK(tg_nslabels_slot(l, "", 0, 1) == TG_NS_NONE);
  TG_CHECK(tg_nslabels_slot(l, "junk", 4, 0) == TG_NS_OTHER); /* not added */
  uint32_t a = tg_nslabels_slot(l, "team-a", 6, 1);
  uint32_t b = tg_nslabels_slot(l, "team-b", 6, 1);
  TG_CHECK(a >= 2 && b >= 2 && a != b);
  TG_CHECK(tg_nslabels_slot(l, "team-c", 6, 1) == TG_NS_OTHER); /* full */
  TG_CHECK(tg_nslabels_slot(l, "team-a", 6, 0) == a);
  TG_CHECK(tg_nslabels_slot(l, "team-axyz", 6, 0) == a); /* len counts */
  TG_CHECK(strcmp(tg_nslabels_name(l, a), "team-a") == 0);
  TG_CHECK(strcmp(tg_nslabels_name(l, b), "team-b") == 0);
  TG_CHECK(strcmp(tg_nslabels_name(l, TG_NS_NONE), "") == 0);
  TG_CHECK(strcmp(tg_nslabels_name(l, TG_NS_OTHER), "other") == 0);
  TG_CHECK(strcmp(tg_nslabels_name(l, 99), "other") == 0);
  tg_nslabels_free(l);
  l = tg_nslabels_new(0);
  TG_CHECK(tg_nslabels_slot(l, "x", 1, 1) == TG_NS_OTHER);
  tg_nslabels_free(l);
}

static tg_nslabels *shared;
static void *adder(void *arg) {
  char name[32];
  for (int i = 0; i < 2000; i++) {
    snprintf(name, sizeof name, "ns-%d", (i * 7 + (int)(long)arg) % 300);
    uint32_t s = tg_nslabels_slot(shared, name, strlen(name), 1);
    if (s != TG_NS_OTHER && strcmp(tg_nslabels_name(shared, s), name) != 0)
      abort();
  }
  return NULL;
}

TG_TEST(concurrent_registration_gives_each_name_one_slot) {
  shared = tg_nslabels_new(100);
  pthread_t t[4];
  for (long i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, adder, (void *)i);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  int labelled = 0;
  char name[32];
  for (int i = 0; i < 300; i++) {
    snprintf(name, sizeof name, "ns-%d", i);
    uint32_t s = tg_nslabels_slot(shared, name, strlen(name), 0);
    if (s != TG_NS_OTHER) {
      labelled++;
      TG_CHECK(strcmp(tg_nslabels_name(shared, s), name) == 0);
    }
  }
  TG_CHECK(labelled == 100);
  tg_nslabels_free(shared);
}

TG_TEST(call_counters_collect_and_merge) {
  tg_callstats *a = tg_callstats_new(), *b = tg_callstats_new();
  for (int i = 0; i < 5; i++)
    tg_callstats_add(a, 3, 2, 1, 0);
  tg_callstats_add(a, 3, 2, 3, 7);
  tg_callstats_add(b, 3, 2, 1, 0);
  tg_callstats_add(b, 0, TG_NS_OTHER, 3, 7);
  tg_callstat *v = NULL;
  size_t len = 0, cap = 0;
  TG_CHECK(tg_callstats_collect(a, &v, &len, &cap) == 0);
  TG_CHECK(tg_callstats_collect(b, &v, &len, &cap) == 0);
  TG_CHECK(len == 4);
  len = tg_callstats_merge(v, len);
  TG_CHECK(len == 3);
  uint64_t total = 0, allowed = 0;
  for (size_t i = 0; i < len; i++) {
    total += v[i].n;
    if (v[i].method == 3 && v[i].ns_slot == 2 && v[i].decision == 1 &&
        v[i].status == 0)
      allowed = v[i].n;
  }
  TG_CHECK(total == 8 && allowed == 6);
  free(v);
  tg_callstats_free(a);
  tg_callstats_free(b);
}

TG_TEST(a_full_counter_table_folds_into_overflow) {
  tg_callstats *s = tg_callstats_new();
  uint64_t added = 0;
  for (uint32_t m = 1; m < 200; m++)
    for (uint32_t ns = 2; ns < 60; ns++) {
      tg_callstats_add(s, m, ns, 1, 0);
      added++;
    }
  tg_callstat *v = NULL;
  size_t len = 0, cap = 0;
  TG_CHECK(tg_callstats_collect(s, &v, &len, &cap) == 0);
  TG_CHECK(len <= TG_CALLSTATS_CAPACITY);
  uint64_t total = 0, overflow = 0;
  for (size_t i = 0; i < len; i++) {
    total += v[i].n;
    if (v[i].method == 0 && v[i].ns_slot == TG_NS_OTHER)
      overflow += v[i].n;
  }
  TG_CHECK(total == added); /* nothing lost */
  TG_CHECK(overflow > 0);
  free(v);
  tg_callstats_free(s);
}

TG_TEST(histogram_buckets) {
  tg_hist h;
  memset(&h, 0, sizeof h);
  tg_hist_observe(&h, &tg_hist_added, 5000);      /* 5 us: first */
  tg_hist_observe(&h, &tg_hist_added, 10000);     /* 10 us: le, first */
  tg_hist_observe(&h, &tg_hist_added, 10001);     /* second */
  tg_hist_observe(&h, &tg_hist_added, 500000000); /* 500 ms: +Inf */
  TG_CHECK(atomic_load(&h.bucket[0]) == 2);
  TG_CHECK(atomic_load(&h.bucket[1]) == 1);
  TG_CHECK(atomic_load(&h.bucket[tg_hist_added.n]) == 1);
  TG_CHECK(atomic_load(&h.count) == 4);
  TG_CHECK(atomic_load(&h.sum_ns) == 5000 + 10000 + 10001 + 500000000ull);
}

int main(void) {
  TG_RUN(namespace_slots_are_bounded_and_stable);
  TG_RUN(concurrent_registration_gives_each_name_one_slot);
  TG_RUN(call_counters_collect_and_merge);
  TG_RUN(a_full_counter_table_folds_into_overflow);
  TG_RUN(histogram_buckets);
  return TG_DONE();
}
