/*
 * tg_failmalloc_tracked: allocation-failure injection for unit tests of code
 * on OpenSSL. As tg_failmalloc.h, but every block allocated while armed is
 * remembered until freed, armed or not: OpenSSL keeps the text of its
 * errors in a per-thread queue that only hook_settle() frees. A block freed
 * while armed that was allocated before counts -1, as when OpenSSL replaces
 * an entry of its method cache. Include it in one test file per binary.
 */
#ifndef TG_FAILMALLOC_TRACKED_H
#define TG_FAILMALLOC_TRACKED_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
#include <openssl/crypto.h>
#include <openssl/err.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);

#define HOOK_SLOTS 65536 /* a power of two */
#define HOOK_GONE ((void *)1)

static volatile int hook_armed; /* count and fail only between arm and disarm */
static volatile long hook_fail_at; /* 1-based index of the allocation to fail */
static volatile long hook_count;   /* allocations attempted since arming */
static volatile long hook_live;    /* blocks left over, as above */
static volatile int hook_failed;   /* an allocation was failed */
static void *hook_blocks[HOOK_SLOTS]; /* open addressing; HOOK_GONE: deleted */

static size_t hook_slot(void *p) {
  return ((uintptr_t)p >> 4) & (HOOK_SLOTS - 1);
}

static void hook_remember(void *p) {
  size_t i = hook_slot(p);
  while (hook_blocks[i] && hook_blocks[i] != HOOK_GONE)
    i = (i + 1) & (HOOK_SLOTS - 1);
  hook_blocks[i] = p;
  hook_live++;
}

/* Forgets p; 1 when it was remembered. */
static int hook_forget(void *p) {
  for (size_t i = hook_slot(p); hook_blocks[i]; i = (i + 1) & (HOOK_SLOTS - 1))
    if (hook_blocks[i] == p) {
      hook_blocks[i] = HOOK_GONE;
      hook_live--;
      return 1;
    }
  return 0;
}

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
    hook_remember(p);
  return p;
}

void *calloc(size_t n, size_t size) {
  if (hook_should_fail())
    return NULL;
  void *p = __libc_calloc(n, size);
  if (p && hook_armed)
    hook_remember(p);
  return p;
}

void *realloc(void *old, size_t n) {
  if (hook_should_fail())
    return NULL;
  int known = old && hook_forget(old);
  void *p = __libc_realloc(old, n);
  if (!p && known)
    hook_remember(old);
  else if (p && (known || (!old && hook_armed)))
    hook_remember(p);
  return p;
}

void free(void *p) {
  if (p && !hook_forget(p) && hook_armed)
    hook_live--;
  __libc_free(p);
}

static void hook_arm(long fail_at) {
  memset(hook_blocks, 0, sizeof(hook_blocks));
  hook_fail_at = fail_at;
  hook_count = 0;
  hook_live = 0;
  hook_failed = 0;
  hook_armed = 1;
}

/* Disarms, then lets OpenSSL free this thread's error queue, whose entries
 * keep their text buffers for reuse, and rebuilds it outside the count. */
static void hook_settle(void) {
  hook_armed = 0;
  OPENSSL_thread_stop();
  ERR_set_mark();
  ERR_pop_to_mark();
}
#endif
#endif
