/*
 * tg_slab: a worker's allocator for nghttp2 (nghttp2_mem): freed blocks of
 * up to TG_SLAB_MAX bytes are kept on per-size free lists and handed out
 * again, so the per-stream and per-header allocations of HTTP/2 sessions
 * (streams, frames, decoded header fields) stop going through malloc's
 * slow paths (a quarter of tgate's time under load before).
 *
 * Size classes are multiples of 32 bytes; each block carries a 16-byte
 * header with its class. Larger blocks go to malloc directly, and those of
 * TG_SLAB_MAP_MIN bytes or more to mmap: each session's 16 KiB output
 * buffer then costs only the pages frames were written to (an idle
 * connection's buffer is one page, not four reused heap pages). Each class
 * keeps at most TG_SLAB_KEEP free blocks, and all of them at most
 * TG_SLAB_KEEP_BYTES; beyond that they go back to malloc. Not thread-safe: one
 * worker's sessions only, created and freed on its thread (tg_slab_free after
 * they are all gone).
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
/* and all classes together at most this many bytes */
#define TG_SLAB_KEEP_BYTES (16u * 1024 * 1024)

typedef struct tg_slab_block tg_slab_block;

typedef struct tg_slab {
  tg_slab_block *free[TG_SLAB_NCLASS];
  uint32_t nfree[TG_SLAB_NCLASS];
  size_t kept_bytes;
  nghttp2_mem mem; /* hand &slab->mem to nghttp2_session_*_new3 */
} tg_slab;

/* The allocator to give nghttp2: &s->mem, or NULL (malloc) in sanitizer
 * builds, so that misuse of nghttp2's memory is still caught there. */
nghttp2_mem *tg_slab_mem(tg_slab *s);

void tg_slab_init(tg_slab *s);
void tg_slab_clear(tg_slab *s); /* frees the kept blocks */

void *tg_slab_alloc(tg_slab *s, size_t size);
void tg_slab_release(tg_slab *s, void *p); /* NULL-safe */
void *tg_slab_realloc(tg_slab *s, void *p, size_t size);
#endif
