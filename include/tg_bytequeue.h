/*
 * tg_bytequeue: a FIFO of bytes in one growable buffer, for a call's request
 * and response bodies on their way through the relay.
 *
 * Why not an evbuffer: an evbuffer allocates a chain (over a kilobyte, past
 * malloc's fast caches) for every message added and frees it when read, a
 * sixth of the time per call; a queue kept with its relay (relays are
 * reused) allocates nothing once it has grown to its usual size.
 *
 * Bytes are appended at the tail and taken from the head; the data is kept
 * contiguous (tg_bytequeue_data), moved to the front when the free space at
 * the tail runs short. Zero-initialise, or tg_bytequeue_init. Not
 * thread-safe (one worker owns it).
 */
#ifndef TG_BYTEQUEUE_H
#define TG_BYTEQUEUE_H
#include <stddef.h>
#include <stdint.h>

typedef struct tg_bytequeue {
  uint8_t *buf;
  size_t head; /* offset of the first byte */
  size_t len;  /* bytes queued */
  size_t cap;
} tg_bytequeue;

#define TG_BYTEQUEUE_KEEP (64 * 1024) /* tg_bytequeue_reset keeps <= this */

void tg_bytequeue_init(tg_bytequeue *q);
void tg_bytequeue_free(tg_bytequeue *q); /* releases the buffer */
/* Empties q; keeps the buffer for reuse when it is at most
 * TG_BYTEQUEUE_KEEP bytes. */
void tg_bytequeue_reset(tg_bytequeue *q);

static inline size_t tg_bytequeue_len(const tg_bytequeue *q) {
  return q->len;
}
/* The queued bytes, contiguous (NULL when empty). Valid until the next
 * add. */
static inline const uint8_t *tg_bytequeue_data(const tg_bytequeue *q) {
  return q->len ? q->buf + q->head : NULL;
}

/* Appends n bytes. 0, or -1 when memory runs out (q unchanged). */
int tg_bytequeue_add(tg_bytequeue *q, const uint8_t *p, size_t n);
/* Copies up to n bytes from the head into out and removes them; returns
 * how many. */
size_t tg_bytequeue_take(tg_bytequeue *q, uint8_t *out, size_t n);
/* Removes up to n bytes from the head. */
void tg_bytequeue_drain(tg_bytequeue *q, size_t n);
#endif
