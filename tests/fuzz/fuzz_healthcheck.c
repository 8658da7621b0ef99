/* libFuzzer harness: the health-check answer as a frontend sends it. The
 * input is read as a response body (one gRPC message holding a
 * HealthCheckResponse) and judged with every status combination; checked: a
 * verdict is SERVING exactly when the parse says so, the reason is a short
 * NUL-terminated line; and the input, as a service name, encodes to a
 * request whose message the protobuf reader reads back as that name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tg_healthcheck.h"
#include "tg_pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t st = 0;
  const char *desc = NULL;
  int parsed = tg_hc_parse_response(data, size, &st, &desc);
  if (parsed != 0 && (parsed != TG_HC_ERR_MALFORMED || !desc))
    abort();
  char why[64];
  int ok = tg_hc_verdict(200, 0, data, size, why, sizeof(why));
  if (ok != (parsed == 0 && st == TG_HC_SERVING) || strlen(why) >= sizeof(why))
    abort();
  if (tg_hc_verdict(200, 14, data, size, why, sizeof(why)) != 0 ||
      tg_hc_verdict(500, 0, data, size, why, sizeof(why)) != 0)
    abort();

  char *name = malloc(size + 1);
  if (!name)
    return 0;
  memcpy(name, data, size);
  name[size] = '\0';
  size_t nlen = strlen(name);
  uint8_t req[TG_HC_REQUEST_MAX];
  int n = tg_hc_encode_request(name, req, sizeof(req));
  if (nlen > TG_HC_MAX_SERVICE) {
    if (n != TG_HC_ERR_TOO_LONG)
      abort();
  } else {
    static const tg_field_path service = {1, {1, 0, 0, 0}};
    uint32_t msglen = (uint32_t)req[3] << 8 | req[4];
    tg_slice s = {0};
    if (n < 5 || (size_t)n != 5 + msglen || req[0] != 0)
      abort();
    /* tg_pb refuses invalid UTF-8; the name is compared only when valid */
    int rv = tg_pb_get_string(req + 5, msglen, &service, &s);
    if (rv == 1 && (s.len != nlen || memcmp(s.p, name, nlen) != 0))
      abort();
    if (rv == 0 && nlen != 0)
      abort();
  }
  free(name);
  return 0;
}
