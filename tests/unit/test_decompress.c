#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <zlib.h>

#include "tg_decompress.h"
#include "tg_test.h"
#include "tg_testutil.h"

#define GZIP_BITS (16 + MAX_WBITS)
#define ZLIB_BITS MAX_WBITS
#define RAW_BITS (-MAX_WBITS)

typedef tg_pbw blob; /* a growable byte buffer */

/* Compresses `reps` copies of in[0..n) into one stream of the given format,
 * streaming, so that a large input never exists in memory. */
static blob zcompress_rep(int bits, const uint8_t *in, size_t n, size_t reps,
                          int level) {
  blob b = {0};
  uint8_t chunk[16384];
  z_stream zs;
  memset(&zs, 0, sizeof zs);
  if (deflateInit2(&zs, level, Z_DEFLATED, bits, 9, Z_DEFAULT_STRATEGY) != Z_OK)
    abort();
  for (size_t r = 0; r <= reps; r++) {
    int flush = r == reps ? Z_FINISH : Z_NO_FLUSH;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = r == reps ? 0 : (uInt)n;
    do {
      zs.next_out = chunk;
      zs.avail_out = sizeof chunk;
      if (deflate(&zs, flush) == Z_STREAM_ERROR)
        abort();
      pbw_bytes(&b, chunk, sizeof chunk - zs.avail_out);
    } while (zs.avail_out == 0);
  }
  deflateEnd(&zs);
  return b;
}

static blob zcompress(int bits, const void *in, size_t n) {
  return zcompress_rep(bits, in, n, 1, Z_DEFAULT_COMPRESSION);
}

/* Some compressible, not trivially repetitive bytes. */
static uint8_t *sample(size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  uint32_t x = 2463534242u;
  if (!p)
    abort();
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    p[i] = (uint8_t)("temporal namespace "[x % 19]);
  }
  return p;
}

static int dec(const char *enc, const blob *b, size_t max_out, uint8_t **out,
               size_t *outlen) {
  return tg_decompress(enc, strlen(enc), b->b, b->n, max_out, out, outlen);
}

static int round_trips(const char *enc, int bits, size_t n) {
  uint8_t *raw = sample(n), *out = NULL;
  size_t outlen = 0;
  blob b = zcompress(bits, raw, n);
  int ok = dec(enc, &b, n, &out, &outlen) == 0 && outlen == n &&
           (n == 0 || memcmp(out, raw, n) == 0);
  free(out);
  free(b.b);
  free(raw);
  return ok;
}

TG_TEST(gzip_round_trip) {
  TG_CHECK(round_trips("gzip", GZIP_BITS, 10000));
  TG_CHECK(round_trips("gzip", GZIP_BITS, 1));
  TG_CHECK(round_trips("gzip", GZIP_BITS, 0));
  TG_CHECK(round_trips("gzip", GZIP_BITS, 300000));
}

TG_TEST(gzip_with_header_fields) {
  /* A name, a comment, extra data and a header CRC are all skipped. */
  static const char msg[] = "\x0a\x07"
                            "default";
  uint8_t chunk[512], *out = NULL;
  char name[] = "msg.bin", comment[] = "c";
  uint8_t extra[] = {'A', 'B', 2, 0, 'x', 'y'};
  gz_header h;
  z_stream zs;
  size_t outlen;
  memset(&h, 0, sizeof h);
  memset(&zs, 0, sizeof zs);
  h.name = (Bytef *)name;
  h.comment = (Bytef *)comment;
  h.extra = extra;
  h.extra_len = sizeof extra;
  h.hcrc = 1;
  TG_CHECK(deflateInit2(&zs, 6, Z_DEFLATED, GZIP_BITS, 8, Z_DEFAULT_STRATEGY) ==
           Z_OK);
  TG_CHECK(deflateSetHeader(&zs, &h) == Z_OK);
  zs.next_in = (Bytef *)(uintptr_t)msg;
  zs.avail_in = sizeof msg - 1;
  zs.next_out = chunk;
  zs.avail_out = sizeof chunk;
  TG_CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
  TG_CHECK(tg_decompress("gzip", 4, chunk, zs.total_out, 100, &out, &outlen) ==
           0);
  TG_CHECK(outlen == sizeof msg - 1 && memcmp(out, msg, outlen) == 0);
  free(out);
  deflateEnd(&zs);
}

TG_TEST(deflate_is_the_zlib_format) {
  static const char msg[] = "namespace: default";
  uint8_t z[128], *out = NULL;
  uLongf zlen = sizeof z;
  size_t outlen;
  TG_CHECK(compress2(z, &zlen, (const Bytef *)msg, sizeof msg - 1, 9) == Z_OK);
  TG_CHECK(tg_decompress("deflate", 7, z, zlen, 1024, &out, &outlen) == 0);
  TG_CHECK(outlen == sizeof msg - 1 && memcmp(out, msg, outlen) == 0);
  free(out);
  TG_CHECK(round_trips("deflate", ZLIB_BITS, 200000));
  TG_CHECK(round_trips("deflate", ZLIB_BITS, 0));
}

TG_TEST(formats_are_not_mixed_or_guessed) {
  static const char msg[] = "namespace: default";
  blob gz = zcompress(GZIP_BITS, msg, sizeof msg - 1);
  blob zl = zcompress(ZLIB_BITS, msg, sizeof msg - 1);
  blob raw = zcompress(RAW_BITS, msg, sizeof msg - 1);
  uint8_t *out = (uint8_t *)1;
  size_t outlen = 7;
  TG_CHECK(dec("deflate", &raw, 1024, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
  TG_CHECK(out == NULL && outlen == 0);
  TG_CHECK(dec("gzip", &raw, 1024, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
  TG_CHECK(dec("deflate", &gz, 1024, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
  TG_CHECK(dec("gzip", &zl, 1024, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
  free(gz.b);
  free(zl.b);
  free(raw.b);
}

TG_TEST(identity_copies) {
  static const uint8_t msg[] = {0x0a, 0x02, 'n', 's', 0x00, 0xff};
  uint8_t *out = NULL;
  size_t outlen;
  TG_CHECK(tg_decompress("identity", 8, msg, sizeof msg, sizeof msg, &out,
                         &outlen) == 0);
  TG_CHECK(outlen == sizeof msg && out != msg &&
           memcmp(out, msg, sizeof msg) == 0);
  free(out);
  out = NULL;
  TG_CHECK(tg_decompress("identity", 8, msg, sizeof msg, sizeof msg - 1, &out,
                         &outlen) == TG_DECOMP_ERR_TOO_BIG);
  TG_CHECK(out == NULL);
  TG_CHECK(tg_decompress("identity", 8, NULL, 0, 0, &out, &outlen) == 0);
  TG_CHECK(out != NULL && outlen == 0);
  free(out);
}

TG_TEST(unknown_encodings) {
  static const char *const bad[] = {"snappy",   "GZIP",  "Gzip", "Deflate",
                                    "IDENTITY", "gzip ", "gzi",  "x-gzip",
                                    "zstd",     "br",    ""};
  static const uint8_t msg[] = {1, 2, 3};
  uint8_t *out = (uint8_t *)1;
  size_t outlen = 9;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (tg_decompress_supported(bad[i], strlen(bad[i])) ||
        tg_decompress(bad[i], strlen(bad[i]), msg, sizeof msg, 100, &out,
                      &outlen) != TG_DECOMP_ERR_UNKNOWN ||
        out != NULL || outlen != 0) {
      fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
      TG_CHECK(0);
    }
  }
  TG_CHECK(tg_decompress_supported("gzip", 4));
  TG_CHECK(tg_decompress_supported("deflate", 7));
  TG_CHECK(tg_decompress_supported("identity", 8));
  /* The length is what counts, not a terminator. */
  TG_CHECK(tg_decompress_supported("gzipped", 4));
  TG_CHECK(!tg_decompress_supported("gzip", 3));
}

TG_TEST(corrupt_data) {
  uint8_t *raw = sample(5000), *out = NULL;
  blob gz = zcompress(GZIP_BITS, raw, 5000);
  blob zl = zcompress(ZLIB_BITS, raw, 5000);
  static const uint8_t junk[] = "this is not compressed at all";
  size_t outlen;
  TG_CHECK(tg_decompress("gzip", 4, junk, sizeof junk, 1 << 20, &out,
                         &outlen) == TG_DECOMP_ERR_CORRUPT);
  TG_CHECK(tg_decompress("deflate", 7, junk, sizeof junk, 1 << 20, &out,
                         &outlen) == TG_DECOMP_ERR_CORRUPT);
  /* A flipped bit in the trailer: CRC-32 (gzip), Adler-32 (zlib). */
  gz.b[gz.n - 6] ^= 1;
  zl.b[zl.n - 2] ^= 1;
  TG_CHECK(dec("gzip", &gz, 1 << 20, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
  TG_CHECK(dec("deflate", &zl, 1 << 20, &out, &outlen) ==
           TG_DECOMP_ERR_CORRUPT);
  /* The gzip length (ISIZE) wrong. */
  gz.b[gz.n - 6] ^= 1;
  gz.b[gz.n - 1] ^= 1;
  TG_CHECK(dec("gzip", &gz, 1 << 20, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
  /* A zlib header asking for a preset dictionary. */
  static const uint8_t dict[] = {0x78, 0xbb, 0, 0, 0, 1, 3, 0, 0, 0, 0, 1};
  TG_CHECK(tg_decompress("deflate", 7, dict, sizeof dict, 100, &out, &outlen) ==
           TG_DECOMP_ERR_CORRUPT);
  TG_CHECK(out == NULL);
  free(gz.b);
  free(zl.b);
  free(raw);
}

TG_TEST(every_truncation_is_corrupt) {
  uint8_t *raw = sample(3000), *out = NULL;
  blob s[2] = {zcompress(GZIP_BITS, raw, 3000),
               zcompress(ZLIB_BITS, raw, 3000)};
  const char *enc[2] = {"gzip", "deflate"};
  size_t outlen;
  for (int k = 0; k < 2; k++) {
    for (size_t n = 0; n < s[k].n; n++) {
      int rv = tg_decompress(enc[k], strlen(enc[k]), s[k].b, n, 1 << 20, &out,
                             &outlen);
      if (rv != TG_DECOMP_ERR_CORRUPT) {
        fprintf(stderr, "  %s cut at %zu of %zu: %d\n", enc[k], n, s[k].n, rv);
        TG_CHECK(0);
        free(out);
        break;
      }
    }
    free(s[k].b);
  }
  free(raw);
}

TG_TEST(trailing_bytes_are_corrupt) {
  static const char msg[] = "namespace: default";
  static const char other[] = "namespace: other";
  uint8_t *out = NULL;
  size_t outlen;
  const int bits[2] = {GZIP_BITS, ZLIB_BITS};
  const char *enc[2] = {"gzip", "deflate"};
  for (int k = 0; k < 2; k++) {
    blob a = zcompress(bits[k], msg, sizeof msg - 1);
    blob b = zcompress(bits[k], other, sizeof other - 1);
    size_t n = a.n;
    TG_CHECK(dec(enc[k], &a, 1024, &out, &outlen) == 0);
    free(out);
    pbw_bytes(&a, (const uint8_t *)"\0", 1);
    TG_CHECK(dec(enc[k], &a, 1024, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
    /* A second member (gzip) or stream (zlib): strict, never decoded. */
    a.n = n;
    pbw_bytes(&a, b.b, b.n);
    TG_CHECK(dec(enc[k], &a, 1024, &out, &outlen) == TG_DECOMP_ERR_CORRUPT);
    TG_CHECK(out == NULL);
    free(a.b);
    free(b.b);
  }
}

TG_TEST(exactly_max_out_is_accepted) {
  static const size_t sizes[] = {0, 1, 16383, 16384, 16385, 32768, 1 << 20};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    uint8_t *raw = sample(n);
    blob gz = zcompress(GZIP_BITS, raw, n);
    blob zl = zcompress(ZLIB_BITS, raw, n);
    for (int k = 0; k < 2; k++) {
      const char *enc = k ? "deflate" : "gzip";
      const blob *b = k ? &zl : &gz;
      uint8_t *out = NULL;
      size_t outlen = 0;
      int at = dec(enc, b, n, &out, &outlen);
      int ok = at == 0 && outlen == n && (n == 0 || memcmp(out, raw, n) == 0);
      free(out);
      out = NULL;
      TG_CHECK(dec(enc, b, n + 1, &out, &outlen) == 0);
      free(out);
      out = NULL;
      if (n > 0) {
        ok = ok && dec(enc, b, n - 1, &out, &outlen) == TG_DECOMP_ERR_TOO_BIG &&
             out == NULL && outlen == 0;
      }
      if (!ok) {
        fprintf(stderr, "  %s at %zu: %d\n", enc, n, at);
        TG_CHECK(0);
      }
    }
    free(gz.b);
    free(zl.b);
    free(raw);
  }
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long max_rss_kib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

TG_TEST(bomb_is_refused_early) {
  /* 100 MiB of zeros in about 100 KiB, against a 4 MiB limit. */
  static const uint8_t zeros[65536];
  const size_t max_out = 4u << 20;
  blob bomb = zcompress_rep(GZIP_BITS, zeros, sizeof zeros, 1600, 9);
  blob zbomb = zcompress_rep(ZLIB_BITS, zeros, sizeof zeros, 1600, 9);
  uint8_t *out = NULL;
  size_t outlen = 0;
  long rss0 = max_rss_kib();
  double t0 = now();
  TG_CHECK(bomb.n < 200000);
  TG_CHECK(dec("gzip", &bomb, max_out, &out, &outlen) == TG_DECOMP_ERR_TOO_BIG);
  double dt = now() - t0;
  long grown = max_rss_kib() - rss0;
  /* Inflating it all would need 100 MiB; 6 x max_out leaves room for the
   * sanitizers' and valgrind's copying realloc and quarantine (ASan: +14 MiB,
   * plain: +4 MiB at most). */
  if (dt > 5.0 || grown > 6 * 4096) {
    fprintf(stderr, "  bomb: %.2f s, peak RSS +%ld KiB\n", dt, grown);
    TG_CHECK(0);
  }
  TG_CHECK(dec("deflate", &zbomb, max_out, &out, &outlen) ==
           TG_DECOMP_ERR_TOO_BIG);
  TG_CHECK(out == NULL && outlen == 0);
  /* Cut in half, the bomb is truncated; TOO_BIG rather than CORRUPT proves
   * inflation stopped at the limit instead of running to the end. */
  bomb.n /= 2;
  zbomb.n /= 2;
  TG_CHECK(dec("gzip", &bomb, max_out, &out, &outlen) == TG_DECOMP_ERR_TOO_BIG);
  TG_CHECK(dec("deflate", &zbomb, max_out, &out, &outlen) ==
           TG_DECOMP_ERR_TOO_BIG);
  free(bomb.b);
  free(zbomb.b);
}

int main(void) {
  TG_RUN(gzip_round_trip);
  TG_RUN(gzip_with_header_fields);
  TG_RUN(deflate_is_the_zlib_format);
  TG_RUN(formats_are_not_mixed_or_guessed);
  TG_RUN(identity_copies);
  TG_RUN(unknown_encodings);
  TG_RUN(corrupt_data);
  TG_RUN(every_truncation_is_corrupt);
  TG_RUN(trailing_bytes_are_corrupt);
  TG_RUN(exactly_max_out_is_accepted);
  TG_RUN(bomb_is_refused_early);
  return TG_DONE();
}
