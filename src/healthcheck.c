#include "tg_healthcheck.h"

#include <stdio.h>
#include <string.h>

#include "tg_grpc.h"
#include "tg_pb.h"

int tg_hc_encode_request(const char *service, uint8_t *out, size_t cap) {
  size_t n = strlen(service);
  if (n > TG_HC_MAX_SERVICE)
    return TG_HC_ERR_TOO_LONG;
  /* field 1, wire type 2; the length as a varint of one or two bytes */
  size_t msg = n == 0 ? 0 : 1 + (n < 128 ? 1 : 2) + n;
  if (cap < TG_GRPC_PREFIX_LEN + msg)
    return TG_HC_ERR_TOO_LONG;
  out[0] = 0;
  out[1] = 0;
  out[2] = 0;
  out[3] = (uint8_t)(msg >> 8);
  out[4] = (uint8_t)msg;
  size_t o = TG_GRPC_PREFIX_LEN;
  if (n > 0) {
    out[o++] = 0x0a;
    if (n < 128) {
      out[o++] = (uint8_t)n;
    } else {
      out[o++] = (uint8_t)(0x80 | (n & 0x7f));
      out[o++] = (uint8_t)(n >> 7);
    }
    memcpy(out + o, service, n);
    o += n;
  }
  return (int)o;
}

int tg_hc_parse_response(const uint8_t *body, size_t len, uint64_t *status,
                         const char **err_desc) {
  static const tg_field_path status_path = {1, {1, 0, 0, 0}};
  int compressed;
  uint32_t msglen;
  int rv = tg_grpc_read_prefix(body, len, &compressed, &msglen);
  if (rv == 0) {
    *err_desc = len == 0 ? "no response message" : "truncated message prefix";
    return TG_HC_ERR_MALFORMED;
  }
  if (rv < 0) {
    *err_desc = "malformed message prefix";
    return TG_HC_ERR_MALFORMED;
  }
  if (compressed) {
    *err_desc = "compressed response (none was offered)";
    return TG_HC_ERR_MALFORMED;
  }
  if (len - TG_GRPC_PREFIX_LEN != msglen) {
    *err_desc = len - TG_GRPC_PREFIX_LEN < msglen ? "truncated response message"
                                                  : "more than one message";
    return TG_HC_ERR_MALFORMED;
  }
  if (tg_pb_get_varint(body + TG_GRPC_PREFIX_LEN, msglen, &status_path,
                       status) < 0) {
    *err_desc = "malformed HealthCheckResponse";
    return TG_HC_ERR_MALFORMED;
  }
  return 0;
}

const char *tg_hc_status_name(uint64_t status) {
  static const char *const names[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                      "SERVICE_UNKNOWN"};
  return status < sizeof(names) / sizeof(names[0]) ? names[status] : "?";
}

int tg_hc_verdict(int http_status, int grpc_status, const uint8_t *body,
                  size_t len, char *why, size_t whylen) {
  const char *desc;
  uint64_t st;
  if (http_status != 200) {
    if (http_status == 0)
      snprintf(why, whylen, "no response");
    else
      snprintf(why, whylen, "HTTP status %d", http_status);
    return 0;
  }
  if (grpc_status < 0) {
    snprintf(why, whylen, "no grpc-status");
    return 0;
  }
  if (grpc_status != TG_GRPC_OK) {
    snprintf(why, whylen, "grpc-status %d%s", grpc_status,
             grpc_status == 5    ? " (NOT_FOUND: unknown service)"
             : grpc_status == 12 ? " (UNIMPLEMENTED: no health service)"
                                 : "");
    return 0;
  }
  if (tg_hc_parse_response(body, len, &st, &desc) != 0) {
    snprintf(why, whylen, "%s", desc);
    return 0;
  }
  if (st != TG_HC_SERVING) {
    snprintf(why, whylen, "status %s (%llu)", tg_hc_status_name(st),
             (unsigned long long)st);
    return 0;
  }
  snprintf(why, whylen, "SERVING");
  return 1;
}
