/*
 * tg_failmalloc: allocation-failure injection for unit tests (as nghttp2's
 * failmalloc). Replacing malloc in the test binary lets every allocation of
 * one call under test, libraries' included, fail in turn, and counts live
 * blocks to catch a leak on each of those paths. Only without a sanitizer
 * runtime, which owns malloc itself: TG_TEST_MALLOC_HOOK is defined when the
 * hook is active. Include it in one test file per binary.
 */
#ifndef TG_FAILMALLOC_H
#define TG_FAILMALLOC_H
#include <stdio.h>
#include <stdlib.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer) ||     \
    __has_feature(thread_sanitizer)
#define TG_TEST_NO_MALLOC_HOOK
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TG_TEST_NO_MALLOC_HOOK
#endif
#if defined(__GLIBC__) && !defined(TG_TEST_NO_MALLOC_HOOK)
#define TG_TEST_MALLOC_HOOK

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

static volatile int hook_armed;
static volatile long hook_fail_at;
static volatile long hook_count;
static volatile long hook_live;
static volatile int hook_failed;

static int hook_should_fail(void) {
  if (!hook_armed)
    return 0;
  if (++hook_count == hook_fail_at) {
    hook_failed = 1;
    return 1;
  }
  return 0;
}

void *malloc(size_t n) {
  if (hook_should_fail())
    return NULL;
  void *p = __libc_malloc(n);
  if (p && hook_armed)
    hook_live++;
  return p;
}

void *calloc(size_t n, size_t size) {
  if (hook_should_fail())
    return NULL;
  void *p = __libc_calloc(n, size);
  if (p && hook_armed)
    hook_live++;
  return p;
}

void *realloc(void *old, size_t n) {
  if (hook_should_fail())
    return NULL;
  void *p = __libc_realloc(old, n);
  if (p && !old && hook_armed)
    hook_live++;
  return p;
}

void free(void *p) {
  if (p && hook_armed)
    hook_live--;
  __libc_free(p);
}

static void hook_arm(long fail_at) {
  hook_fail_at = fail_at;
  hook_count = 0;
  hook_live = 0;
  hook_failed = 0;
  hook_armed = 1;
}

__attribute__((unused)) static int hook_works(void) {
  hook_arm(1);
  void *volatile probe = malloc(1);
  hook_armed = 0;
  free(probe);
  if (probe)
    printf("# skipped: malloc is not replaceable here\n");
  return probe == NULL;
}
#endif
#endif
