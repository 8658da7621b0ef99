#include "tg_bytequeue.h"

#include <stdlib.h>
#include <string.h>

void tg_bytequeue_init(tg_bytequeue *q) {
  memset(q, 0, sizeof *q);
}

void tg_bytequeue_free(tg_bytequeue *q) {
  free(q->buf);
  memset(q, 0, sizeof *q);
}

void tg_bytequeue_reset(tg_bytequeue *q) {
  if (q->cap > TG_BYTEQUEUE_KEEP) {
    tg_bytequeue_free(q);
    return;
  }
  q->head = q->len = 0;
}

int tg_bytequeue_add(tg_bytequeue *q, const uint8_t *p, size_t n) {
  if (n == 0)
    return 0;
  if (n > SIZE_MAX / 2 - q->len)
    return -1;
  if (q->head + q->len + n > q->cap) {
    if (q->len + n <= q->cap) {
      /* Room enough once the queued bytes move to the front. */
      memmove(q->buf, q->buf + q->head, q->len);
      q->head = 0;
    } else {
      size_t cap = q->cap ? q->cap : 1024;
      while (cap < q->len + n)
        cap *= 2;
      uint8_t *b = malloc(cap);
      if (!b)
        return -1;
      if (q->len)
        memcpy(b, q->buf + q->head, q->len);
      free(q->buf);
      q->buf = b;
      q->cap = cap;
      q->head = 0;
    }
  }
  memcpy(q->buf + q->head + q->len, p, n);
  q->len += n;
  return 0;
}

void tg_bytequeue_drain(tg_bytequeue *q, size_t n) {
  if (n >= q->len) {
    q->head = q->len = 0;
    return;
  }
  q->head += n;
  q->len -= n;
}

size_t tg_bytequeue_take(tg_bytequeue *q, uint8_t *out, size_t n) {
  if (n > q->len)
    n = q->len;
  if (n)
    memcpy(out, q->buf + q->head, n);
  tg_bytequeue_drain(q, n);
  return n;
}
