/*
 * tg_decompress: gRPC message decompression for inspection (the original
 * bytes are what is forwarded). grpc-encoding "gzip" and "deflate" (zlib
 * format, as gRPC defines it) via zlib; "identity" is no compression.
 *
 * Bounded: output beyond max_out bytes stops inflation at once with
 * TG_DECOMP_ERR_TOO_BIG (a decompression bomb is refused, not inflated).
 * Pure; thread-safe.
 */
#ifndef TG_DECOMPRESS_H
#define TG_DECOMPRESS_H
#include <stddef.h>
#include <stdint.h>

#define TG_DECOMP_ERR_UNKNOWN -1 /* encoding not supported */
#define TG_DECOMP_ERR_CORRUPT -2 /* not a valid stream, or trailing garbage */
#define TG_DECOMP_ERR_TOO_BIG -3
#define TG_DECOMP_ERR_NOMEM -4

/* Is encoding (len bytes, as in the grpc-encoding header) supported? */
int tg_decompress_supported(const char *encoding, size_t len);

/* Inflates in into a new buffer *out (free() it) of *outlen bytes. */
int tg_decompress(const char *encoding, size_t enclen, const uint8_t *in,
                  size_t inlen, size_t max_out, uint8_t **out, size_t *outlen);
#endif
