#include "tg_slab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Every block starts with this header; the caller's memory follows at
 * offset 16 (malloc's alignment). */
struct tg_slab_block {
  tg_slab_block *next; /* while free */
  uint32_t cls;  /* size class + 1; 0: a large block from malloc; MAPPED */
  uint32_t size; /* large blocks: the size asked for (realloc) */
};

#define HDR 16
#define MAPPED UINT32_MAX

/* Bytes of the mapping behind a block of size bytes. */
static size_t map_len(size_t size) {
  static size_t page;
  if (!page) {
    long p = sysconf(_SC_PAGESIZE);
    page = p > 0 ? (size_t)p : 4096;
  }
  return (HDR + size + page - 1) / page * page;
}

static void *mem_malloc(size_t size, void *user) {
  return tg_slab_alloc(user, size);
}

static void mem_free(void *p, void *user) {
  tg_slab_release(user, p);
}

static void *mem_calloc(size_t nmemb, size_t size, void *user) {
  if (size && nmemb > SIZE_MAX / size)
    return NULL;
  void *p = tg_slab_alloc(user, nmemb * size);
  if (p)
    memset(p, 0, nmemb * size);
  return p;
}

static void *mem_realloc(void *p, size_t size, void *user) {
  return tg_slab_realloc(user, p, size);
}

nghttp2_mem *tg_slab_mem(tg_slab *s) {
#if defined(__SANITIZE_ADDRESS__)
  (void)s;
  return NULL;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  (void)s;
  return NULL;
#else
  return &s->mem;
#endif
#else
  return &s->mem;
#endif
}

void tg_slab_init(tg_slab *s) {
  memset(s, 0, sizeof *s);
  s->mem.mem_user_data = s;
  s->mem.malloc = mem_malloc;
  s->mem.free = mem_free;
  s->mem.calloc = mem_calloc;
  s->mem.realloc = mem_realloc;
}

void tg_slab_clear(tg_slab *s) {
  for (size_t i = 0; i < TG_SLAB_NCLASS; i++) {
    tg_slab_block *b = s->free[i];
    while (b) {
      tg_slab_block *next = b->next;
      free(b);
      b = next;
    }
    s->free[i] = NULL;
    s->nfree[i] = 0;
  }
  s->kept_bytes = 0;
}

void *tg_slab_alloc(tg_slab *s, size_t size) {
  tg_slab_block *b;
  if (size == 0)
    size = 1;
  if (size > TG_SLAB_MAX) {
    if (size > UINT32_MAX - 2 * 65536)
      return NULL;
    b = NULL;
    if (size >= TG_SLAB_MAP_MIN) {
      void *m = mmap(NULL, map_len(size), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (m != MAP_FAILED) {
        b = m;
        b->cls = MAPPED;
      }
    }
    if (!b) {
      if (!(b = malloc(HDR + size)))
        return NULL;
      b->cls = 0;
    }
    b->size = (uint32_t)size;
    return (char *)b + HDR;
  }
  size_t c = (size - 1) / TG_SLAB_CLASS;
  if ((b = s->free[c]) != NULL) {
    s->free[c] = b->next;
    s->nfree[c]--;
    s->kept_bytes -= (c + 1) * TG_SLAB_CLASS;
  } else if (!(b = malloc(HDR + (c + 1) * TG_SLAB_CLASS))) {
    return NULL;
  }
  b->cls = (uint32_t)c + 1;
  b->size = (uint32_t)size;
  return (char *)b + HDR;
}

void tg_slab_release(tg_slab *s, void *p) {
  if (!p)
    return;
  tg_slab_block *b = (tg_slab_block *)((char *)p - HDR);
  if (b->cls == MAPPED) {
    munmap(b, map_len(b->size));
    return;
  }
  size_t c = b->cls;
  if (c == 0 || s->nfree[c - 1] >= TG_SLAB_KEEP ||
      s->kept_bytes + c * TG_SLAB_CLASS > TG_SLAB_KEEP_BYTES) {
    free(b);
    return;
  }
  b->next = s->free[c - 1];
  s->free[c - 1] = b;
  s->nfree[c - 1]++;
  s->kept_bytes += c * TG_SLAB_CLASS;
}

void *tg_slab_realloc(tg_slab *s, void *p, size_t size) {
  if (!p)
    return tg_slab_alloc(s, size);
  if (size == 0) {
    tg_slab_release(s, p);
    return NULL;
  }
  tg_slab_block *b = (tg_slab_block *)((char *)p - HDR);
  size_t have = b->cls && b->cls != MAPPED ? b->cls * TG_SLAB_CLASS : b->size;
  if (size <= have && b->cls && b->cls != MAPPED) {
    b->size = (uint32_t)size;
    return p;
  }
  void *n = tg_slab_alloc(s, size);
  if (!n)
    return NULL;
  memcpy(n, p, b->size < size ? b->size : size);
  tg_slab_release(s, p);
  return n;
}
