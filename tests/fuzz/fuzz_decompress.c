/*
 * libFuzzer harness for gRPC message decompression.
 *
 * Input: a compressed message, inflated as "gzip" and as "deflate" with
 * max_out 1 MiB, and copied as "identity". Also, since zlib is not
 * instrumented and random bytes seldom make a valid stream, the input
 * compressed by zlib in both formats, whole and with one byte changed.
 * Checked: the result codes and buffers agree with each other; a result of
 * n bytes is accepted with max_out n and refused (TOO_BIG) with n - 1;
 * "deflate" agrees with zlib's own uncompress2() on a complete, trailer-free
 * stream; what zlib compressed comes back unchanged.
 */
#include "tg_decompress.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FUZZ_MAX_OUT (1u << 20)

static uint8_t fuzz_ref[FUZZ_MAX_OUT + 1];

static void fuzz_check_rv(int rv, const uint8_t *out, size_t outlen,
                          size_t max_out) {
  if (rv == 0) {
    if (!out || outlen > max_out)
      abort();
  } else if (rv == TG_DECOMP_ERR_CORRUPT || rv == TG_DECOMP_ERR_TOO_BIG ||
             rv == TG_DECOMP_ERR_NOMEM) {
    if (out || outlen)
      abort();
  } else {
    abort();
  }
}

static void fuzz_one(const char *enc, const uint8_t *data, size_t size) {
  size_t elen = strlen(enc), outlen = 1, n2 = 1;
  uint8_t *out = (uint8_t *)1, *o2 = (uint8_t *)1;
  int rv = tg_decompress(enc, elen, data, size, FUZZ_MAX_OUT, &out, &outlen);
  int rv2;

  fuzz_check_rv(rv, out, outlen, FUZZ_MAX_OUT);
  if (rv == 0) {
    rv2 = tg_decompress(enc, elen, data, size, outlen, &o2, &n2);
    fuzz_check_rv(rv2, o2, n2, outlen);
    if (rv2 != 0 || n2 != outlen || (outlen && memcmp(out, o2, outlen)))
      abort();
    free(o2);
    if (outlen > 0) {
      rv2 = tg_decompress(enc, elen, data, size, outlen - 1, &o2, &n2);
      fuzz_check_rv(rv2, o2, n2, outlen - 1);
      if (rv2 != TG_DECOMP_ERR_TOO_BIG)
        abort();
    }
  } else if (rv == TG_DECOMP_ERR_TOO_BIG) {
    rv2 = tg_decompress(enc, elen, data, size, 64, &o2, &n2);
    fuzz_check_rv(rv2, o2, n2, 64);
    if (rv2 != TG_DECOMP_ERR_TOO_BIG)
      abort();
  }

  if (strcmp(enc, "deflate") == 0) {
    uLongf reflen = sizeof fuzz_ref;
    uLong srclen = size;
    int zrv = uncompress2(fuzz_ref, &reflen, data, &srclen);
    int complete = zrv == Z_OK && srclen == size;
    if (rv == 0 && (!complete || reflen != outlen ||
                    (outlen && memcmp(out, fuzz_ref, outlen))))
      abort();
    if (complete && reflen <= FUZZ_MAX_OUT && rv != 0)
      abort();
    if (complete && reflen > FUZZ_MAX_OUT && rv != TG_DECOMP_ERR_TOO_BIG)
      abort();
  }
  free(out);
}

/* Compresses data with zlib in format bits, then inflates it (must give data
 * back) and a copy with the byte at `at` xor-ed with `x`. */
static void fuzz_round_trip(const char *enc, int bits, const uint8_t *data,
                            size_t size, size_t at, uint8_t x) {
  z_stream zs;
  size_t bound, zlen, outlen = 0;
  uint8_t *z = NULL, *out = NULL;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, 6, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    return;
  bound = deflateBound(&zs, size);
  z = malloc(bound);
  if (!z)
    goto end;
  zs.next_in = (Bytef *)(uintptr_t)data;
  zs.avail_in = (uInt)size;
  zs.next_out = z;
  zs.avail_out = (uInt)bound;
  if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
    abort();
  zlen = zs.total_out;
  if (tg_decompress(enc, strlen(enc), z, zlen, size, &out, &outlen) != 0 ||
      outlen != size || (size && memcmp(out, data, size)))
    abort();
  free(out);
  fuzz_one(enc, z, zlen);
  z[at % zlen] ^= x;
  fuzz_one(enc, z, zlen);
  fuzz_one(enc, z, at % zlen);
end:
  free(z);
  deflateEnd(&zs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *out = NULL;
  size_t outlen = 0;
  fuzz_one("gzip", data, size);
  fuzz_one("deflate", data, size);
  if (size >= 3) {
    size_t at = (size_t)data[0] << 8 | data[1];
    fuzz_round_trip("gzip", 16 + MAX_WBITS, data + 3, size - 3, at, data[2]);
    fuzz_round_trip("deflate", MAX_WBITS, data + 3, size - 3, at, data[2]);
  }
  if (tg_decompress("identity", 8, data, size, FUZZ_MAX_OUT, &out, &outlen) ==
      0) {
    if (outlen != size || (size && memcmp(out, data, size)))
      abort();
    free(out);
  } else if (size <= FUZZ_MAX_OUT) {
    abort();
  }
  return 0;
}
