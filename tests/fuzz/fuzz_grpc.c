/* libFuzzer harness: gRPC message framing and grpc-message encoding. Walks
 * the input as a sequence of length-prefixed messages, as the relay does when
 * it holds a request for its first message, and percent-encodes it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tg_grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t off = 0;
  for (;;) {
    int compressed;
    uint32_t len;
    int rv = tg_grpc_read_prefix(data + off, size - off, &compressed, &len);
    if (rv <= 0)
      break;
    if (compressed != 0 && compressed != 1)
      abort();
    if ((size_t)len > size - off - TG_GRPC_PREFIX_LEN)
      break;
    off += TG_GRPC_PREFIX_LEN + len;
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
