/*
 * tg_grpc: gRPC-over-HTTP/2 framing helpers. Pure functions, no I/O.
 *
 * - Status codes (the subset the gateway answers with itself).
 * - grpc-message percent-encoding (gRPC's PROTOCOL-HTTP2 rules: bytes outside
 *   0x20..0x7E and '%' are encoded as %XX).
 * - Length-prefixed message framing: every gRPC message on the wire is
 *   1 byte compressed-flag + 4 bytes big-endian length + payload.
 * - Building the header list of a trailers-only response.
 */
#ifndef TG_GRPC_H
#define TG_GRPC_H
#include <stddef.h>
#include <stdint.h>

#include "tg_hdrs.h"

enum {
  TG_GRPC_OK = 0,
  TG_GRPC_CANCELLED = 1,
  TG_GRPC_UNKNOWN = 2,
  TG_GRPC_INVALID_ARGUMENT = 3,
  TG_GRPC_DEADLINE_EXCEEDED = 4,
  TG_GRPC_PERMISSION_DENIED = 7,
  TG_GRPC_RESOURCE_EXHAUSTED = 8,
  TG_GRPC_UNIMPLEMENTED = 12,
  TG_GRPC_INTERNAL = 13,
  TG_GRPC_UNAVAILABLE = 14,
  TG_GRPC_UNAUTHENTICATED = 16,
};

#define TG_GRPC_PREFIX_LEN 5

/* Percent-encodes msg into out (NUL-terminated, truncated to fit outlen, never
 * splitting an escape). Returns the length written (without the NUL). */
size_t tg_grpc_percent_encode(const char *msg, char *out, size_t outlen);

/* Reads a message prefix. Returns 1 and fills *compressed and *msglen when
 * len >= 5; 0 when more bytes are needed; -1 when the compressed flag is
 * neither 0 nor 1 (a malformed stream). */
int tg_grpc_read_prefix(const uint8_t *buf, size_t len, int *compressed,
                        uint32_t *msglen);

/* Follows the message framing of one direction of a stream, chunk by
 * chunk, to bound the size of every message. Zero-initialise. */
typedef struct tg_grpc_scanner {
  uint8_t prefix[TG_GRPC_PREFIX_LEN];
  uint8_t have;       /* prefix bytes seen of the next message */
  uint64_t remaining; /* payload bytes left of the current message */
} tg_grpc_scanner;

/* Feeds len bytes. Returns 0 while every message announced so far is at
 * most max bytes; 1 when one announces more (*msglen gets its length); -1
 * on a compressed flag other than 0 or 1. Once it returned non-zero the
 * scanner is spent. */
int tg_grpc_scan(tg_grpc_scanner *s, const uint8_t *data, size_t len,
                 uint32_t max, uint32_t *msglen);

/* Fills h (which must be empty) with a trailers-only response:
 * :status 200, content-type application/grpc, grpc-status, grpc-message.
 * Returns 0 or -1 when memory runs out. */
int tg_grpc_trailers_only(tg_hdrs *h, int code, const char *msg);

/* Fills h (which must be empty) with trailers: grpc-status, grpc-message. */
int tg_grpc_trailers(tg_hdrs *h, int code, const char *msg);

/* True when a content-type value names gRPC: "application/grpc" exactly or
 * followed by '+' or ';' (application/grpc+proto, ...). */
int tg_grpc_is_content_type(const char *v, size_t len);
#endif
