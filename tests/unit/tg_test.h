/*
 * tg_test: a minimal unit-test harness. Each test file defines tests with
 * TG_TEST(name) and lists them in main() with TG_RUN(name); TG_DONE() prints
 * "unit <file>: N passed, N failed" and returns the exit status.
 * A failed TG_CHECK marks the current test failed and continues.
 */
#ifndef TG_TEST_H
#define TG_TEST_H
#include <stdio.h>
#include <string.h>

static int tg_test_failed_now;
static int tg_test_passed, tg_test_failed;

#define TG_TEST(name) static void name(void)
#define TG_CHECK(cond)                                                        \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__,      \
              #cond);                                                         \
      tg_test_failed_now = 1;                                                 \
    }                                                                         \
  } while (0)
#define TG_CHECK_STR_CONTAINS(hay, needle)                                    \
  do {                                                                        \
    const char *h_ = (hay);                                                   \
    if (!h_ || !strstr(h_, (needle))) {                                       \
      fprintf(stderr, "  %s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,  \
              __LINE__, h_ ? h_ : "(null)", (needle));                        \
      tg_test_failed_now = 1;                                                 \
    }                                                                         \
  } while (0)
#define TG_RUN(name)                                                          \
  do {                                                                        \
    tg_test_failed_now = 0;                                                   \
    name();                                                                   \
    if (tg_test_failed_now) {                                                 \
      tg_test_failed++;                                                       \
      printf("not ok - %s\n", #name);                                         \
    } else {                                                                  \
      tg_test_passed++;                                                       \
      printf("ok - %s\n", #name);                                             \
    }                                                                         \
  } while (0)
#define TG_DONE()                                                             \
  (printf("unit %s: %d passed, %d failed\n", __FILE__, tg_test_passed,        \
          tg_test_failed),                                                    \
   tg_test_failed ? 1 : 0)
#endif
