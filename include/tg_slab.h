/*
 * tg_slab: a worker's allocator for nghttp2 (nghttp2_mem): freed blocks of
 * up to TG_SLAB_MAX bytes are kept on per-size free lists and handed out
 * again, so the per-stream and per-header allocations of HTTP/2 sessions
 * (streams, frames, decoded header fields) stop going through malloc's
 * slow paths (a quarter of tgate's time under load before).
 *
 * Size classes are multiples of 32 bytes; each block carries a 16-byte
 * header with its class. Larger blocks go to malloc directly, except those
 * of TG_SLAB_MAP_MIN to TG_SLAB_SLOT bytes: each takes a slot of its own in
 * a region of address space the slab reserves (TG_SLAB_REGION bytes, not
 * reserved at all under an address space limit, RLIMIT_AS), page-aligned
 * and with its size kept beside the region. Slots are TG_SLAB_SLOT bytes
 * rounded up to whole pages, so that giving a block's pages back never
 * touches the next slot on 16 or 64 KiB pages either. The region is mapped
 * inaccessible and made writable TG_SLAB_GROW slots at a time as they are
 * first used, so that even under strict overcommit accounting
 * (vm.overcommit_memory=2, which ignores MAP_NORESERVE) it is charged only
 * for slots in use or free for reuse. A block costs only the pages written
 * to (each session's 16 KiB output buffer: one page for an idle connection)
 * and tg_slab_discard can give all of its pages back. Without the region (the
 * reservation failed) they come from malloc too. Each class keeps at most
 * TG_SLAB_KEEP free blocks, and all of them at most TG_SLAB_KEEP_BYTES;
 * beyond that they go back to malloc. Not thread-safe: one worker's
 * sessions only, created and freed on its thread (tg_slab_clear after they
 * are all gone).
 */
#ifndef TG_SLAB_H
#define TG_SLAB_H
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

#define TG_SLAB_MAX 2048
#define TG_SLAB_CLASS 32
#define TG_SLAB_NCLASS (TG_SLAB_MAX / TG_SLAB_CLASS)
#define TG_SLAB_KEEP 16384
#define TG_SLAB_MAP_MIN (16 * 1024)
#define TG_SLAB_SLOT (20 * 1024) /* nghttp2's frame buffer: 16394 bytes */
#define TG_SLAB_REGION ((size_t)320 << 20) /* 16384 slots on 4 KiB pages */
#define TG_SLAB_GROW 64                    /* slots made writable at a time */
/* and all classes together at most this many bytes */
#define TG_SLAB_KEEP_BYTES (16u * 1024 * 1024)

typedef struct tg_slab_block tg_slab_block;

typedef struct tg_slab {
  tg_slab_block *free[TG_SLAB_NCLASS];
  uint32_t nfree[TG_SLAB_NCLASS];
  size_t kept_bytes;
  nghttp2_mem mem; /* hand &slab->mem to nghttp2_session_*_new3 */
  /* the slot region: reserved at the first slot block; region_failed when
   * that could not be done (malloc is used instead) */
  char *region;
  int region_failed;
  size_t page;          /* the page size; 0: the system's (tests set it) */
  size_t slot_stride;   /* TG_SLAB_SLOT rounded up to pages */
  uint32_t nslots;      /* slots in the region */
  uint32_t rw_slots;    /* slots made writable so far, from the start */
  uint32_t *slot_size;  /* bytes asked for, per slot; 0: free */
  uint32_t *slot_gen;   /* bumped at every allocation of the slot */
  uint32_t *free_slots; /* a stack of released slots */
  uint32_t nfree_slots, next_slot;
  /* While set, the first slot block allocated is recorded here (the output
   * buffer of the session being created). */
  struct tg_slab_ref *capture;
} tg_slab;

/* A slot block as tg_slab_discard takes it: the block and the slot's
 * generation when it was allocated, so that a block freed since (its slot
 * perhaps given to another) is never touched. */
typedef struct tg_slab_ref {
  void *p;
  uint32_t gen;
} tg_slab_ref;

/* The allocator to give nghttp2: &s->mem, or NULL (malloc) in sanitizer
 * builds, so that misuse of nghttp2's memory is still caught there. */
nghttp2_mem *tg_slab_mem(tg_slab *s);

void tg_slab_init(tg_slab *s);
void tg_slab_clear(tg_slab *s); /* frees the kept blocks */

void *tg_slab_alloc(tg_slab *s, size_t size);
void tg_slab_release(tg_slab *s, void *p); /* NULL-safe */
void *tg_slab_realloc(tg_slab *s, void *p, size_t size);

/* Gives the pages of the slot block ref names back to the system, its
 * contents becoming zeros: only for a block whose contents are no longer
 * needed. Returns 1 when it did, 0 when ref is not a live slot block. */
int tg_slab_discard(tg_slab *s, const tg_slab_ref *ref);
#endif
