/* libFuzzer harness: gRPC message framing and grpc-message encoding. Walks
 * the input as a sequence of length-prefixed messages, as the relay does when
 * it holds a request for its first message; feeds it to the streaming
 * scanner in chunks (sizes taken from the first byte) and checks that it
 * agrees with the walk; and percent-encodes it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tg_grpc.h"

/* What the walk finds: 0 all within max, 1 a message over max, -1 bad
 * flag; a truncated last message counts by its announced length. */
static int walk(const uint8_t *data, size_t size, uint32_t max) {
  size_t off = 0;
  for (;;) {
    int compressed;
    uint32_t len;
    int rv = tg_grpc_read_prefix(data + off, size - off, &compressed, &len);
    if (rv < 0)
      return -1;
    if (rv == 0)
      return 0;
    if (compressed != 0 && compressed != 1)
      abort();
    if (len > max)
      return 1;
    if ((size_t)len > size - off - TG_GRPC_PREFIX_LEN)
      return 0;
    off += TG_GRPC_PREFIX_LEN + len;
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 0) {
    uint32_t max = 64u * (data[0] & 0x3f);
    size_t step = (size_t)(data[0] >> 6) * 7 + 1;
    tg_grpc_scanner sc;
    memset(&sc, 0, sizeof sc);
    int got = 0;
    uint32_t msglen = 0;
    for (size_t off = 1; off < size && got == 0; off += step) {
      size_t n = size - off < step ? size - off : step;
      got = tg_grpc_scan(&sc, data + off, n, max, &msglen);
    }
    if (got != walk(data + 1, size - 1, max))
      abort();
    if (got == 1 && msglen <= max)
      abort();
  }
  char *s = malloc(size + 1);
  if (!s)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  char out[512];
  size_t n = tg_grpc_percent_encode(s, out, sizeof(out));
  if (n >= sizeof(out) || strlen(out) != n)
    abort();
  tg_hdrs h;
  tg_hdrs_init(&h);
  if (tg_grpc_trailers_only(&h, 14, s) == 0 && !tg_hdrs_nv(&h))
    abort();
  tg_hdrs_clear(&h);
  free(s);
  return 0;
}
