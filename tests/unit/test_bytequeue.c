#include <stdlib.h>
#include <string.h>

#include "tg_bytequeue.h"
#include "tg_test.h"

TG_TEST(fifo_order_across_growth_and_compaction) {
  tg_bytequeue q;
  tg_bytequeue_init(&q);
  TG_CHECK(tg_bytequeue_data(&q) == NULL && tg_bytequeue_len(&q) == 0);
  /* A model: bytes numbered in order; random-ish adds and takes. */
  uint8_t in[300], out[300];
  uint32_t next_in = 0, next_out = 0, seed = 7;
  for (int round = 0; round < 20000; round++) {
    seed = seed * 1103515245u + 12345u;
    size_t n = (seed >> 16) % 300;
    if ((seed >> 8) & 1) {
      for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)(next_in + i);
      TG_CHECK(tg_bytequeue_add(&q, in, n) == 0);
      next_in += (uint32_t)n;
    } else {
      size_t got = tg_bytequeue_take(&q, out, n);
      TG_CHECK(got == (n < next_in - next_out ? n : next_in - next_out));
      for (size_t i = 0; i < got; i++)
        if (out[i] != (uint8_t)(next_out + i)) {
          TG_CHECK(!"byte out of order");
          break;
        }
      next_out += (uint32_t)got;
    }
    TG_CHECK(tg_bytequeue_len(&q) == next_in - next_out);
    if (tg_bytequeue_len(&q))
      TG_CHECK(tg_bytequeue_data(&q)[0] == (uint8_t)next_out);
  }
  tg_bytequeue_free(&q);
}

TG_TEST(drain_reset_and_keep) {
  tg_bytequeue q;
  tg_bytequeue_init(&q);
  uint8_t big[100000];
  memset(big, 'x', sizeof big);
  TG_CHECK(tg_bytequeue_add(&q, (const uint8_t *)"hello", 5) == 0);
  tg_bytequeue_drain(&q, 2);
  TG_CHECK(tg_bytequeue_len(&q) == 3 &&
           memcmp(tg_bytequeue_data(&q), "llo", 3) == 0);
  tg_bytequeue_drain(&q, 99);
  TG_CHECK(tg_bytequeue_len(&q) == 0);
  TG_CHECK(tg_bytequeue_add(&q, (const uint8_t *)"ab", 2) == 0);
  tg_bytequeue_reset(&q);
  TG_CHECK(q.len == 0 && q.buf != NULL); /* small: kept */
  TG_CHECK(tg_bytequeue_add(&q, big, sizeof big) == 0);
  tg_bytequeue_reset(&q);
  TG_CHECK(q.len == 0 && q.buf == NULL && q.cap == 0); /* large: freed */
  TG_CHECK(tg_bytequeue_add(&q, NULL, 0) == 0);
  tg_bytequeue_free(&q);
}

int main(void) {
  TG_RUN(fifo_order_across_growth_and_compaction);
  TG_RUN(drain_reset_and_keep);
  return TG_DONE();
}
