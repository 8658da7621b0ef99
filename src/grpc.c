#include "tg_grpc.h"

#include <stdio.h>
#include <string.h>

size_t tg_grpc_percent_encode(const char *msg, char *out, size_t outlen) {
  static const char hex[] = "0123456789ABCDEF";
  size_t o = 0;
  if (outlen == 0)
    return 0;
  for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
    if (*p >= 0x20 && *p <= 0x7e && *p != '%') {
      if (o + 1 >= outlen)
        break;
      out[o++] = (char)*p;
    } else {
      if (o + 3 >= outlen)
        break;
      out[o++] = '%';
      out[o++] = hex[*p >> 4];
      out[o++] = hex[*p & 15];
    }
  }
  out[o] = '\0';
  return o;
}

int tg_grpc_read_prefix(const uint8_t *buf, size_t len, int *compressed,
                        uint32_t *msglen) {
  if (len < TG_GRPC_PREFIX_LEN)
    return 0;
  if (buf[0] > 1)
    return -1;
  *compressed = buf[0];
  *msglen = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 |
            (uint32_t)buf[3] << 8 | (uint32_t)buf[4];
  return 1;
}

int tg_grpc_trailers(tg_hdrs *h, int code, const char *msg) {
  char status[12], enc[512];
  snprintf(status, sizeof(status), "%d", code);
  if (tg_hdrs_add_str(h, "grpc-status", status) != 0)
    return -1;
  if (msg && *msg) {
    tg_grpc_percent_encode(msg, enc, sizeof(enc));
    if (tg_hdrs_add_str(h, "grpc-message", enc) != 0)
      return -1;
  }
  return 0;
}

int tg_grpc_trailers_only(tg_hdrs *h, int code, const char *msg) {
  if (tg_hdrs_add_str(h, ":status", "200") != 0 ||
      tg_hdrs_add_str(h, "content-type", "application/grpc") != 0)
    return -1;
  return tg_grpc_trailers(h, code, msg);
}

int tg_grpc_is_content_type(const char *v, size_t len) {
  static const char base[] = "application/grpc";
  size_t blen = sizeof(base) - 1;
  if (len < blen || strncmp(v, base, blen) != 0)
    return 0;
  return len == blen || v[blen] == '+' || v[blen] == ';';
}

int tg_grpc_scan(tg_grpc_scanner *s, const uint8_t *data, size_t len,
                 uint32_t max, uint32_t *msglen) {
  while (len > 0) {
    if (s->remaining > 0) {
      size_t n = len < s->remaining ? len : (size_t)s->remaining;
      s->remaining -= n;
      data += n;
      len -= n;
      continue;
    }
    size_t n = TG_GRPC_PREFIX_LEN - s->have;
    if (n > len)
      n = len;
    memcpy(s->prefix + s->have, data, n);
    s->have = (uint8_t)(s->have + n);
    data += n;
    len -= n;
    if (s->have < TG_GRPC_PREFIX_LEN)
      break;
    int compressed;
    uint32_t l;
    if (tg_grpc_read_prefix(s->prefix, TG_GRPC_PREFIX_LEN, &compressed, &l) < 0)
      return -1;
    s->have = 0;
    if (l > max) {
      *msglen = l;
      return 1;
    }
    s->remaining = l;
  }
  return 0;
}
