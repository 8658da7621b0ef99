#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tg_slab.h"
#include "tg_test.h"

TG_TEST(blocks_are_reused_by_size_class) {
  tg_slab s;
  tg_slab_init(&s);
  void *a = tg_slab_alloc(&s, 40);
  TG_CHECK(a != NULL);
  memset(a, 1, 40);
  tg_slab_release(&s, a);
  void *b = tg_slab_alloc(&s, 60); /* same 64-byte class */
  TG_CHECK(b == a);
  void *c = tg_slab_alloc(&s, 60); /* the list is empty: a new one */
  TG_CHECK(c != NULL && c != b);
  tg_slab_release(&s, b);
  tg_slab_release(&s, c);
  TG_CHECK(s.nfree[1] == 2);
  /* large blocks come from malloc and go back to it */
  void *big = tg_slab_alloc(&s, TG_SLAB_MAX + 1);
  TG_CHECK(big != NULL);
  memset(big, 2, TG_SLAB_MAX + 1);
  tg_slab_release(&s, big);
  tg_slab_release(&s, NULL);
  tg_slab_clear(&s);
  TG_CHECK(s.nfree[1] == 0 && s.free[1] == NULL);
}

TG_TEST(nghttp2_mem_interface) {
  tg_slab s;
  tg_slab_init(&s);
  nghttp2_mem *m = &s.mem;
  unsigned char *p = m->calloc(10, 10, m->mem_user_data);
  int zero = 1;
  for (int i = 0; i < 100; i++)
    zero &= p[i] == 0;
  TG_CHECK(zero);
  memset(p, 7, 100);
  p = m->realloc(p, 1000, m->mem_user_data); /* grows: moved, kept */
  TG_CHECK(p && p[0] == 7 && p[99] == 7);
  p = m->realloc(p, 3000, m->mem_user_data); /* into a large block */
  TG_CHECK(p && p[99] == 7);
  p = m->realloc(p, 5000, m->mem_user_data); /* large to large */
  TG_CHECK(p && p[0] == 7);
  p = m->realloc(p, 8, m->mem_user_data); /* shrinks into a class */
  TG_CHECK(p && p[7] == 7);
  m->free(p, m->mem_user_data);
  TG_CHECK(m->calloc(SIZE_MAX / 2, 4, m->mem_user_data) == NULL);
  void *q = m->realloc(NULL, 16, m->mem_user_data);
  TG_CHECK(q != NULL); /* realloc(NULL) allocates */
  m->free(q, m->mem_user_data);
  tg_slab_clear(&s);
}

TG_TEST(free_lists_are_bounded) {
  tg_slab s;
  tg_slab_init(&s);
  static void *v[TG_SLAB_KEEP + 10];
  for (size_t i = 0; i < TG_SLAB_KEEP + 10; i++)
    v[i] = tg_slab_alloc(&s, 100);
  for (size_t i = 0; i < TG_SLAB_KEEP + 10; i++)
    tg_slab_release(&s, v[i]);
  TG_CHECK(s.nfree[(100 - 1) / TG_SLAB_CLASS] == TG_SLAB_KEEP);
  tg_slab_clear(&s);
}

/* Blocks of TG_SLAB_MAP_MIN bytes and more are mappings of their own: they
 * keep their contents through realloc both ways and unmap when released. */
TG_TEST(large_blocks_are_mapped) {
  tg_slab s;
  tg_slab_init(&s);
  unsigned char *p = tg_slab_alloc(&s, TG_SLAB_MAP_MIN + 10);
  TG_CHECK(p != NULL);
  for (size_t i = 0; i < TG_SLAB_MAP_MIN + 10; i++)
    p[i] = (unsigned char)i;
  unsigned char *q = tg_slab_realloc(&s, p, 3 * TG_SLAB_MAP_MIN);
  TG_CHECK(q != NULL);
  int same = 1;
  for (size_t i = 0; i < TG_SLAB_MAP_MIN + 10; i++)
    same &= q[i] == (unsigned char)i;
  TG_CHECK(same);
  q[3 * TG_SLAB_MAP_MIN - 1] = 7;
  unsigned char *r = tg_slab_realloc(&s, q, 100);
  TG_CHECK(r != NULL);
  same = 1;
  for (size_t i = 0; i < 100; i++)
    same &= r[i] == (unsigned char)i;
  TG_CHECK(same);
  tg_slab_release(&s, r);
  tg_slab_release(&s, tg_slab_alloc(&s, 4096)); /* malloc'd, not mapped */
  tg_slab_clear(&s);
}

/* How many of the pages of [p, p + len) are in memory. */
static size_t resident_pages(void *p, size_t len) {
  unsigned char vec[16];
  size_t pages = (len + 4095) / 4096, n = 0;
  if (pages > sizeof vec || mincore(p, len, vec) != 0)
    return (size_t)-1;
  for (size_t i = 0; i < pages; i++)
    n += vec[i] & 1;
  return n;
}

/* A slot block (an nghttp2 session's output buffer) is page-aligned, costs
 * only the pages written to, and tg_slab_discard gives them back (contents
 * then zeros) for the block it was captured as, never for a block that
 * was freed since, even when its slot is in use again. */
TG_TEST(slot_blocks_discard) {
  tg_slab s;
  tg_slab_init(&s);
  tg_slab_ref ref = {NULL, 0};
  s.capture = &ref;
  unsigned char *p = tg_slab_alloc(&s, TG_SLAB_MAP_MIN + 10);
  unsigned char *other = tg_slab_alloc(&s, TG_SLAB_MAP_MIN + 10);
  s.capture = NULL;
  TG_CHECK(p != NULL && other != NULL && ref.p == p && ref.gen != 0);
  TG_CHECK(((uintptr_t)p & 4095) == 0);
  TG_CHECK(resident_pages(p, TG_SLAB_MAP_MIN + 10) == 0);
  memset(p, 0xab, 100);
  memset(other, 0xcd, TG_SLAB_MAP_MIN + 10);
  TG_CHECK(resident_pages(p, TG_SLAB_MAP_MIN + 10) == 1);
  TG_CHECK(tg_slab_discard(&s, &ref) == 1);
  TG_CHECK(resident_pages(p, TG_SLAB_MAP_MIN + 10) == 0);
  TG_CHECK(p[0] == 0 && p[99] == 0);
  p[5] = 1; /* still the caller's to use */
  TG_CHECK(p[5] == 1 && other[TG_SLAB_MAP_MIN + 9] == 0xcd);
  tg_slab_release(&s, p);
  TG_CHECK(tg_slab_discard(&s, &ref) == 0); /* freed */
  unsigned char *again = tg_slab_alloc(&s, TG_SLAB_MAP_MIN + 100);
  TG_CHECK(again == p); /* the same slot, a new generation */
  memset(again, 0xef, 10);
  TG_CHECK(tg_slab_discard(&s, &ref) == 0 && again[9] == 0xef);
  tg_slab_ref none = {NULL, 0}, heap = {malloc(64), 0};
  TG_CHECK(tg_slab_discard(&s, &none) == 0 && tg_slab_discard(&s, &heap) == 0);
  free(heap.p);
  /* blocks over a slot come from malloc and realloc keeps the contents
   * from slot to malloc and back */
  unsigned char *big = tg_slab_realloc(&s, again, TG_SLAB_SLOT + 1);
  TG_CHECK(big != NULL && big[9] == 0xef && big[10] == 0);
  unsigned char *back = tg_slab_realloc(&s, big, TG_SLAB_MAP_MIN);
  TG_CHECK(back != NULL && back[9] == 0xef && ((uintptr_t)back & 4095) == 0);
  tg_slab_release(&s, back);
  tg_slab_release(&s, other);
  tg_slab_clear(&s);
  TG_CHECK(s.region == NULL);
}

/* The region is charged for what is used: only the first TG_SLAB_GROW
 * slots are writable after one slot block, the rest of it is inaccessible
 * (so strict overcommit accounting counts ~1 MiB, not the whole region). */
static int maps_line(const void *p, char perms[5], size_t *len) {
  FILE *f = fopen("/proc/self/maps", "r");
  if (!f)
    return -1;
  char line[512];
  int found = -1;
  while (found < 0 && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
        (uintptr_t)p >= lo && (uintptr_t)p < hi) {
      *len = hi - lo;
      found = 0;
    }
  }
  fclose(f);
  return found;
}

static int in_slot_region(const tg_slab *s, const void *p) {
  return (const char *)p >= s->region &&
         (const char *)p < s->region + (size_t)s->nslots * s->slot_stride;
}

TG_TEST(region_writable_as_used) {
  tg_slab s;
  tg_slab_init(&s);
  unsigned char *p = tg_slab_alloc(&s, TG_SLAB_MAP_MIN + 10);
  TG_CHECK(p != NULL && s.region != NULL && s.rw_slots == TG_SLAB_GROW);
  char perms[5] = "";
  size_t len = 0;
  TG_CHECK(maps_line(p, perms, &len) == 0);
  TG_CHECK(strcmp(perms, "rw-p") == 0 &&
           len == (size_t)TG_SLAB_GROW * s.slot_stride);
  char *last = s.region + (size_t)(s.nslots - 1) * s.slot_stride;
  TG_CHECK(maps_line(last, perms, &len) == 0 && strcmp(perms, "---p") == 0);
  /* more slots than one step: the writable part grows and stays one
   * mapping */
  static void *v[TG_SLAB_GROW + 1];
  v[0] = p;
  for (size_t i = 1; i <= TG_SLAB_GROW; i++) {
    v[i] = tg_slab_alloc(&s, TG_SLAB_MAP_MIN);
    TG_CHECK(v[i] != NULL && in_slot_region(&s, v[i]));
    memset(v[i], 1, TG_SLAB_MAP_MIN);
  }
  TG_CHECK(s.rw_slots == 2 * TG_SLAB_GROW);
  TG_CHECK(maps_line(p, perms, &len) == 0 &&
           len == (size_t)2 * TG_SLAB_GROW * s.slot_stride);
  for (size_t i = 0; i <= TG_SLAB_GROW; i++)
    tg_slab_release(&s, v[i]);
  tg_slab_clear(&s);
}

/* Slots are whole pages: with 16 KiB pages (set here; the kernel's are
 * smaller, which madvise accepts), a slot is 32 KiB, and giving a block's
 * pages back never reaches into its neighbour's. */
TG_TEST(slots_are_whole_pages) {
  tg_slab s;
  tg_slab_init(&s);
  s.page = 16384;
  unsigned char *b[4];
  for (int i = 0; i < 4; i++) {
    b[i] = tg_slab_alloc(&s, 16394); /* nghttp2's frame buffer */
    TG_CHECK(b[i] != NULL);
    memset(b[i], 'A' + i, 16394);
  }
  TG_CHECK(s.slot_stride == 32768 && b[1] - b[0] == 32768);
  tg_slab_ref ref = {b[1], s.slot_gen[1]};
  TG_CHECK(tg_slab_discard(&s, &ref) == 1);
  tg_slab_release(&s, b[2]);
  int intact = 1;
  for (size_t j = 0; j < 16394; j++)
    intact &= b[0][j] == 'A' && b[3][j] == 'D';
  TG_CHECK(intact && b[1][0] == 0);
  tg_slab_release(&s, b[0]);
  tg_slab_release(&s, b[1]);
  tg_slab_release(&s, b[3]);
  tg_slab_clear(&s);
}

/* Under an address-space limit no region is reserved: slot-sized blocks
 * come from malloc and still work (run in a child: the limit stays there). */
#if defined(__SANITIZE_ADDRESS__)
#define TG_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_ASAN 1
#endif
#endif

TG_TEST(no_region_under_rlimit_as) {
#ifdef TG_ASAN
  return; /* the sanitizer's own reservations exceed any such limit */
#endif
  pid_t pid = fork();
  if (pid == 0) {
    struct rlimit as = {(rlim_t)8 << 30, (rlim_t)8 << 30};
    int ok = setrlimit(RLIMIT_AS, &as) == 0;
    tg_slab s;
    tg_slab_init(&s);
    tg_slab_ref ref = {NULL, 0};
    s.capture = &ref;
    unsigned char *p = tg_slab_alloc(&s, TG_SLAB_MAP_MIN + 10);
    s.capture = NULL;
    ok = ok && p && s.region == NULL && s.region_failed && ref.p == NULL;
    if (p) {
      memset(p, 3, TG_SLAB_MAP_MIN + 10);
      p = tg_slab_realloc(&s, p, TG_SLAB_MAP_MIN + 100);
      ok = ok && p && p[TG_SLAB_MAP_MIN + 9] == 3;
    }
    tg_slab_ref r2 = {p, 1};
    ok = ok && tg_slab_discard(&s, &r2) == 0;
    tg_slab_release(&s, p);
    tg_slab_clear(&s);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  TG_CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  TG_CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
  TG_RUN(blocks_are_reused_by_size_class);
  TG_RUN(nghttp2_mem_interface);
  TG_RUN(free_lists_are_bounded);
  TG_RUN(large_blocks_are_mapped);
  TG_RUN(slot_blocks_discard);
  TG_RUN(region_writable_as_used);
  TG_RUN(slots_are_whole_pages);
  TG_RUN(no_region_under_rlimit_as);
  return TG_DONE();
}
