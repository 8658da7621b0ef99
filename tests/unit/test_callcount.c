#include <pthread.h>
#include <stdio.h>

#include "tg_callcount.h"
#include "tg_failmalloc.h"
#include "tg_test.h"

TG_TEST(counts_per_subject_up_to_the_limit) {
  tg_callcount *c = tg_callcount_new();
  TG_CHECK(c != NULL);
  TG_CHECK(tg_callcount_acquire(c, "alice", 2) == 0);
  TG_CHECK(tg_callcount_acquire(c, "alice", 2) == 0);
  TG_CHECK(tg_callcount_acquire(c, "alice", 2) == 1);
  TG_CHECK(tg_callcount_acquire(c, "bob", 2) == 0);
  TG_CHECK(tg_callcount_get(c, "alice") == 2);
  TG_CHECK(tg_callcount_get(c, "bob") == 1);
  tg_callcount_release(c, "alice");
  TG_CHECK(tg_callcount_acquire(c, "alice", 2) == 0);
  tg_callcount_release(c, "alice");
  tg_callcount_release(c, "alice");
  tg_callcount_release(c, "bob");
  TG_CHECK(tg_callcount_get(c, "alice") == 0);
  TG_CHECK(tg_callcount_get(c, "bob") == 0);
  /* a limit of 0 admits nothing; unknown releases are ignored */
  TG_CHECK(tg_callcount_acquire(c, "carol", 0) == 1);
  tg_callcount_release(c, "nobody");
  tg_callcount_free(c);
  tg_callcount_free(NULL);
}

TG_TEST(many_subjects_share_buckets) {
  tg_callcount *c = tg_callcount_new();
  char name[32];
  for (int i = 0; i < 5000; i++) {
    snprintf(name, sizeof name, "svc-%d", i);
    TG_CHECK(tg_callcount_acquire(c, name, 1) == 0);
  }
  for (int i = 0; i < 5000; i++) {
    snprintf(name, sizeof name, "svc-%d", i);
    TG_CHECK(tg_callcount_acquire(c, name, 1) == 1);
    if (i % 2)
      tg_callcount_release(c, name);
  }
  for (int i = 0; i < 5000; i++) {
    snprintf(name, sizeof name, "svc-%d", i);
    TG_CHECK(tg_callcount_get(c, name) == (i % 2 ? 0u : 1u));
  }
  tg_callcount_free(c); /* frees what is left */
}

static tg_callcount *shared;
static int admitted[4];

static void *worker(void *arg) {
  int id = (int)(long)arg;
  for (int i = 0; i < 20000; i++) {
    if (tg_callcount_acquire(shared, "svc", 3) == 0) {
      admitted[id]++;
      tg_callcount_release(shared, "svc");
    }
  }
  return NULL;
}

TG_TEST(threads_never_exceed_the_limit_and_end_at_zero) {
  shared = tg_callcount_new();
  pthread_t t[4];
  for (long i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, worker, (void *)i);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  TG_CHECK(tg_callcount_get(shared, "svc") == 0);
  TG_CHECK(admitted[0] + admitted[1] + admitted[2] + admitted[3] > 0);
  tg_callcount_free(shared);
}

TG_TEST(out_of_memory_admits_nothing) {
#ifdef TG_TEST_MALLOC_HOOK
  if (!hook_works())
    return;
  tg_callcount *c = tg_callcount_new();
  hook_arm(1); /* the first allocation fails */
  int rv = tg_callcount_acquire(c, "dave", 5);
  hook_armed = 0;
  TG_CHECK(rv == -1);
  TG_CHECK(tg_callcount_get(c, "dave") == 0);
  tg_callcount_free(c);
#endif
}

int main(void) {
  TG_RUN(counts_per_subject_up_to_the_limit);
  TG_RUN(many_subjects_share_buckets);
  TG_RUN(threads_never_exceed_the_limit_and_end_at_zero);
  TG_RUN(out_of_memory_admits_nothing);
  return TG_DONE();
}
