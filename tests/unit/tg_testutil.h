/*
 * Helpers the unit tests share: formatted allocation and a base64url
 * encoder of their own (independent of src/b64.c, which some of them test),
 * for building tokens and JWKS documents.
 */
#ifndef TG_TESTUTIL_H
#define TG_TESTUTIL_H
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* vasprintf into a new string (free it), or NULL. */
static inline char *xprintf(const char *fmt, ...) {
  va_list ap;
  char *s = NULL;
  va_start(ap, fmt);
  if (vasprintf(&s, fmt, ap) < 0)
    s = NULL;
  va_end(ap);
  return s;
}

/* base64url without padding of len bytes, in a new string (free it). */
static inline char *b64url(const uint8_t *in, size_t len) {
  static const char a[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  char *out = malloc(len * 4 / 3 + 4), *o = out;
  if (!out)
    return NULL;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    *o++ = a[v >> 18];
    *o++ = a[(v >> 12) & 63];
    *o++ = a[(v >> 6) & 63];
    *o++ = a[v & 63];
  }
  if (len - i == 1) {
    *o++ = a[in[i] >> 2];
    *o++ = a[(in[i] & 3) << 4];
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
    *o++ = a[v >> 10];
    *o++ = a[(v >> 4) & 63];
    *o++ = a[(v & 15) << 2];
  }
  *o = '\0';
  return out;
}
#endif
