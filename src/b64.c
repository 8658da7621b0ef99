#include "tg_b64.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int tg_b64url_val(unsigned char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '-')
    return 62;
  if (c == '_')
    return 63;
  return -1;
}

int tg_b64url_decode(const char *in, size_t len, uint8_t *out, size_t *outlen) {
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  if (len % 4 == 1)
    return -1;
  for (size_t i = 0; i < len; i++) {
    int v = tg_b64url_val((unsigned char)in[i]);
    if (v < 0)
      return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0)
    return -1;
  *outlen = o;
  return 0;
}

size_t tg_b64url_encode(const uint8_t *in, size_t len, char *out) {
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    acc = (acc << 8) | in[i];
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out[o++] = alphabet[(acc >> bits) & 63];
    }
    acc &= (1u << bits) - 1;
  }
  if (bits > 0)
    out[o++] = alphabet[(acc << (6 - bits)) & 63];
  out[o] = '\0';
  return o;
}
