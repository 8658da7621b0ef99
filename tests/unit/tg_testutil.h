/*
 * Helpers the unit tests share: formatted allocation, a base64url encoder
 * of their own (independent of src/b64.c, which some of them test) for
 * building tokens and JWKS documents, and a protobuf wire-format writer
 * (independent of src/pb.c) for building requests.
 */
#ifndef TG_TESTUTIL_H
#define TG_TESTUTIL_H
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A growable protobuf message being written (zero-initialise; free b). */
typedef struct tg_pbw {
  uint8_t *b;
  size_t n, cap;
} tg_pbw;

static inline void pbw_bytes(tg_pbw *w, const void *p, size_t n) {
  if (n == 0)
    return;
  if (w->n + n > w->cap) {
    size_t cap = (w->n + n) * 2 + 64;
    uint8_t *b = realloc(w->b, cap);
    if (!b)
      abort();
    w->b = b;
    w->cap = cap;
  }
  memcpy(w->b + w->n, p, n);
  w->n += n;
}

static inline void pbw_varint(tg_pbw *w, uint64_t v) {
  uint8_t b[10];
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (uint8_t)v;
  pbw_bytes(w, b, n);
}

/* Field `field`, wire type 2 (length-delimited), holding n bytes at p. */
static inline void pbw_len(tg_pbw *w, uint32_t field, const void *p,
                           size_t n) {
  pbw_varint(w, (uint64_t)field << 3 | 2);
  pbw_varint(w, n);
  pbw_bytes(w, p, n);
}

static inline void pbw_str(tg_pbw *w, uint32_t field, const char *s) {
  pbw_len(w, field, s, strlen(s));
}
#endif
