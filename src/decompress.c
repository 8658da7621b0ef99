#include "tg_decompress.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define ENC_IDENTITY 1
#define ENC_GZIP 2
#define ENC_DEFLATE 3
#define FIRST_CHUNK 16384

/* gRPC compares encoding names bytewise; they are lower case. */
static int encoding_of(const char *e, size_t len) {
  if (len == 8 && memcmp(e, "identity", 8) == 0)
    return ENC_IDENTITY;
  if (len == 4 && memcmp(e, "gzip", 4) == 0)
    return ENC_GZIP;
  if (len == 7 && memcmp(e, "deflate", 7) == 0)
    return ENC_DEFLATE;
  return 0;
}

int tg_decompress_supported(const char *encoding, size_t len) {
  return encoding_of(encoding, len) != 0;
}

static int copy_identity(const uint8_t *in, size_t inlen, size_t max_out,
                         uint8_t **out, size_t *outlen) {
  uint8_t *buf;
  if (inlen > max_out)
    return TG_DECOMP_ERR_TOO_BIG;
  buf = malloc(inlen ? inlen : 1);
  if (!buf)
    return TG_DECOMP_ERR_NOMEM;
  if (inlen)
    memcpy(buf, in, inlen);
  *out = buf;
  *outlen = inlen;
  return 0;
}

/* Inflates one stream (windowBits selects gzip or zlib; never raw, never
 * auto-detected). The output buffer grows by doubling up to max_out + 1
 * bytes: filling that last byte proves the result too big, and inflation
 * stops there. A gzip member followed by anything, a second member included,
 * is CORRUPT: Go's gzip reader would decode further members, and bytes we do
 * not inspect must not reach the frontend. */
static int inflate_stream(int window_bits, const uint8_t *in, size_t inlen,
                          size_t max_out, uint8_t **out, size_t *outlen) {
  z_stream zs;
  uint8_t *buf = NULL, *nbuf;
  size_t limit = max_out < SIZE_MAX ? max_out + 1 : SIZE_MAX;
  size_t cap = limit < FIRST_CHUNK ? limit : FIRST_CHUNK;
  size_t produced = 0, in_left = inlen;
  int rv, zrv;

  memset(&zs, 0, sizeof zs);
  zrv = inflateInit2(&zs, window_bits);
  if (zrv != Z_OK)
    return zrv == Z_MEM_ERROR ? TG_DECOMP_ERR_NOMEM : TG_DECOMP_ERR_CORRUPT;
  buf = malloc(cap);
  if (!buf) {
    rv = TG_DECOMP_ERR_NOMEM;
    goto fail;
  }
  zs.next_in = (Bytef *)(uintptr_t)in;
  for (;;) {
    if (produced == cap) {
      cap = cap > limit / 2 ? limit : cap * 2;
      nbuf = realloc(buf, cap);
      if (!nbuf) {
        rv = TG_DECOMP_ERR_NOMEM;
        goto fail;
      }
      buf = nbuf;
    }
    if (zs.avail_in == 0 && in_left > 0) {
      zs.avail_in = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
      in_left -= zs.avail_in;
    }
    zs.next_out = buf + produced;
    zs.avail_out =
        cap - produced > UINT_MAX ? UINT_MAX : (uInt)(cap - produced);
    uInt before = zs.avail_out;
    zrv = inflate(&zs, Z_NO_FLUSH);
    produced += before - zs.avail_out;
    if (produced > max_out) {
      rv = TG_DECOMP_ERR_TOO_BIG;
      goto fail;
    }
    if (zrv == Z_STREAM_END)
      break;
    if (zrv == Z_MEM_ERROR) {
      rv = TG_DECOMP_ERR_NOMEM;
      goto fail;
    }
    if (zrv == Z_OK)
      continue;
    /* There was room for output, so Z_BUF_ERROR means the input ended
     * mid-stream; Z_NEED_DICT, Z_DATA_ERROR, Z_STREAM_ERROR are bad data. */
    rv = TG_DECOMP_ERR_CORRUPT;
    goto fail;
  }
  if (zs.avail_in > 0 || in_left > 0) {
    rv = TG_DECOMP_ERR_CORRUPT;
    goto fail;
  }
  inflateEnd(&zs);
  if (produced < cap) {
    nbuf = realloc(buf, produced ? produced : 1);
    if (nbuf)
      buf = nbuf;
  }
  *out = buf;
  *outlen = produced;
  return 0;

fail:
  inflateEnd(&zs);
  free(buf);
  return rv;
}

int tg_decompress(const char *encoding, size_t enclen, const uint8_t *in,
                  size_t inlen, size_t max_out, uint8_t **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  switch (encoding_of(encoding, enclen)) {
  case ENC_IDENTITY:
    return copy_identity(in, inlen, max_out, out, outlen);
  case ENC_GZIP:
    return inflate_stream(16 + MAX_WBITS, in, inlen, max_out, out, outlen);
  case ENC_DEFLATE:
    return inflate_stream(MAX_WBITS, in, inlen, max_out, out, outlen);
  default:
    return TG_DECOMP_ERR_UNKNOWN;
  }
}
