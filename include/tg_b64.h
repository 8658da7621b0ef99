/*
 * tg_b64: base64url (RFC 4648 section 5) without padding, strict: any
 * character outside the alphabet, '=' padding, an impossible length, or
 * non-zero leftover bits is refused, so one value has exactly one encoding
 * (a token cannot be altered without changing its signature input).
 * Pure functions.
 */
#ifndef TG_B64_H
#define TG_B64_H
#include <stddef.h>
#include <stdint.h>

/* The value of each byte as a base64url character, or -1. */
extern const int8_t tg_b64url_table[256];

/* The value of one base64url character, or -1. A table lookup, inline: it
 * runs once per byte of every token that is checked. */
static inline int tg_b64url_val(unsigned char c) {
  return tg_b64url_table[c];
}

/* Decodes len characters into out, which must have room for len * 3 / 4
 * bytes. 0 and *outlen, or -1. */
int tg_b64url_decode(const char *in, size_t len, uint8_t *out, size_t *outlen);

/* Encodes len bytes into out (room for (len * 4 + 2) / 3 + 1 characters),
 * NUL-terminated; returns the number of characters. */
size_t tg_b64url_encode(const uint8_t *in, size_t len, char *out);
#endif
