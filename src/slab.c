#include "tg_slab.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

/* Every block from a class or malloc starts with this header; the caller's
 * memory follows at offset 16 (malloc's alignment). Slot blocks have none:
 * their size is in slot_size. */
struct tg_slab_block {
  tg_slab_block *next; /* while free */
  uint32_t cls;        /* size class + 1; 0: a large block from malloc */
  uint32_t size;       /* large blocks: the size asked for (realloc) */
};

#define HDR 16

/* size rounded up to whole pages */
static size_t round_page(const tg_slab *s, size_t size) {
  return (size + s->page - 1) / s->page * s->page;
}

static size_t region_bytes(const tg_slab *s) {
  return (size_t)s->nslots * s->slot_stride;
}

static int in_region(const tg_slab *s, const void *p) {
  return s->region && (const char *)p >= s->region &&
         (const char *)p < s->region + region_bytes(s);
}

static uint32_t slot_of(const tg_slab *s, const void *p) {
  return (uint32_t)((size_t)((const char *)p - s->region) / s->slot_stride);
}

static void region_free(tg_slab *s) {
  if (s->region)
    munmap(s->region, region_bytes(s));
  free(s->slot_size);
  free(s->slot_gen);
  free(s->free_slots);
  s->region = NULL;
  s->slot_size = s->slot_gen = s->free_slots = NULL;
  s->nfree_slots = s->next_slot = s->rw_slots = s->nslots = 0;
}

/* Reserves the slot region (address space only: PROT_NONE and
 * MAP_NORESERVE, no memory and no commit charge until slots are made
 * writable). 0, or -1 when it cannot be had. */
static int region_init(tg_slab *s) {
  if (s->region)
    return 0;
  if (s->region_failed)
    return -1;
  /* Under an address-space limit the reservation would use up what
   * malloc needs: blocks come from malloc then. */
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    s->region_failed = 1;
    return -1;
  }
  if (!s->page) {
    long pg = sysconf(_SC_PAGESIZE);
    s->page = pg > 0 ? (size_t)pg : 4096;
  }
  s->slot_stride = round_page(s, TG_SLAB_SLOT);
  s->nslots = (uint32_t)(TG_SLAB_REGION / s->slot_stride);
  void *m = s->nslots ? mmap(NULL, region_bytes(s), PROT_NONE,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
                      : MAP_FAILED;
  s->region = m == MAP_FAILED ? NULL : m;
  s->slot_size = calloc(s->nslots, sizeof *s->slot_size);
  s->slot_gen = calloc(s->nslots, sizeof *s->slot_gen);
  s->free_slots = malloc(s->nslots * sizeof *s->free_slots);
  if (!s->region || !s->slot_size || !s->slot_gen || !s->free_slots) {
    region_free(s);
    s->region_failed = 1;
    return -1;
  }
  return 0;
}

/* Makes the next TG_SLAB_GROW slots (or what is left) writable; they
 * join the writable ones before them in one mapping. 0, or -1 when the
 * region is used up or the system will not commit more (ENOMEM under
 * strict overcommit): the caller uses malloc then. */
static int region_grow(tg_slab *s) {
  uint32_t n = s->nslots - s->rw_slots;
  if (n > TG_SLAB_GROW)
    n = TG_SLAB_GROW;
  if (n == 0 ||
      mprotect(s->region + (size_t)s->rw_slots * s->slot_stride,
               (size_t)n * s->slot_stride, PROT_READ | PROT_WRITE) != 0)
    return -1;
  s->rw_slots += n;
  return 0;
}

/* A slot for a block of size bytes (TG_SLAB_MAP_MIN..TG_SLAB_SLOT), or
 * NULL when there is none (the caller uses malloc). */
static void *slot_alloc(tg_slab *s, size_t size) {
  uint32_t i;
  if (region_init(s) != 0)
    return NULL;
  if (s->nfree_slots)
    i = s->free_slots[--s->nfree_slots];
  else if (s->next_slot < s->rw_slots || region_grow(s) == 0)
    i = s->next_slot++;
  else
    return NULL;
  s->slot_size[i] = (uint32_t)size;
  s->slot_gen[i]++;
  char *p = s->region + (size_t)i * s->slot_stride;
  if (s->capture && !s->capture->p) {
    s->capture->p = p;
    s->capture->gen = s->slot_gen[i];
  }
  return p;
}

/* Gives back the pages of the block p in slot i (whole pages of its own
 * slot: the stride is whole pages). 0, or -1 when madvise refused. */
static int slot_drop_pages(const tg_slab *s, void *p, uint32_t i) {
  return madvise(p, round_page(s, s->slot_size[i]), MADV_DONTNEED);
}

/* Releases a slot block: its pages go back, the slot to the free stack. */
static void slot_release(tg_slab *s, void *p) {
  uint32_t i = slot_of(s, p);
  slot_drop_pages(s, p, i);
  s->slot_size[i] = 0;
  s->free_slots[s->nfree_slots++] = i;
}

int tg_slab_discard(tg_slab *s, const tg_slab_ref *ref) {
  if (!ref->p || !in_region(s, ref->p))
    return 0;
  uint32_t i = slot_of(s, ref->p);
  if (s->slot_size[i] == 0 || s->slot_gen[i] != ref->gen)
    return 0;
  return slot_drop_pages(s, ref->p, i) == 0;
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
  region_free(s);
  s->region_failed = 0;
}

void *tg_slab_alloc(tg_slab *s, size_t size) {
  tg_slab_block *b;
  if (size == 0)
    size = 1;
  if (size > TG_SLAB_MAX) {
    if (size > UINT32_MAX - 2 * 65536)
      return NULL;
    if (size >= TG_SLAB_MAP_MIN && size <= TG_SLAB_SLOT) {
      void *p = slot_alloc(s, size);
      if (p)
        return p;
    }
    if (!(b = malloc(HDR + size)))
      return NULL;
    b->cls = 0;
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
  if (in_region(s, p)) {
    slot_release(s, p);
    return;
  }
  tg_slab_block *b = (tg_slab_block *)((char *)p - HDR);
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
  size_t have; /* bytes of p's block that hold the caller's data */
  if (in_region(s, p)) {
    have = s->slot_size[slot_of(s, p)];
  } else {
    tg_slab_block *b = (tg_slab_block *)((char *)p - HDR);
    if (b->cls && size <= b->cls * TG_SLAB_CLASS) {
      b->size = (uint32_t)size;
      return p;
    }
    have = b->size;
  }
  void *n = tg_slab_alloc(s, size);
  if (!n)
    return NULL;
  memcpy(n, p, have < size ? have : size);
  tg_slab_release(s, p);
  return n;
}
