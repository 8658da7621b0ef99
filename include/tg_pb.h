/*
 * tg_pb: a minimal, strict protobuf wire-format reader for what the
 * authorizer needs from a request: string fields at field-number paths, and
 * the occurrences of a repeated embedded message. Pure functions over bytes.
 *
 * Semantics (as the frontend's Go protobuf decoder reads the same bytes):
 * - the whole message is walked; unknown fields of every wire type (varint,
 *   64-bit, length-delimited, 32-bit) are skipped; groups (wire types 3/4)
 *   and field number 0 are malformed;
 * - a varint longer than 10 bytes, a length running past the end, or a
 *   truncated fixed field is malformed (TG_PB_ERR_MALFORMED);
 * - for a string (leaf) field the LAST occurrence wins; for an embedded
 *   message on the way, every occurrence is merged in order, so the result
 *   is the last occurrence of the leaf across all of them;
 * - a field on the path that appears with the wrong wire type, or a string
 *   that is not valid UTF-8, is malformed (stricter than Go, which would keep
 *   it as an unknown field or fail the whole call).
 * Nesting is limited to TG_PB_MAX_DEPTH.
 */
#ifndef TG_PB_H
#define TG_PB_H
#include <stddef.h>
#include <stdint.h>

#include "tg_methods.h"

#define TG_PB_ERR_MALFORMED -1
#define TG_PB_MAX_DEPTH 32

typedef struct tg_slice {
  const uint8_t *p;
  size_t len;
} tg_slice;

/* Validates the wire format of the message's top level (every field's tag,
 * varint, length and fixed size). 0 or TG_PB_ERR_MALFORMED. */
int tg_pb_validate(const uint8_t *buf, size_t len);

/* Finds the string at path. Returns 1 and *out when present, 0 when absent
 * (out->len 0), or TG_PB_ERR_MALFORMED. */
int tg_pb_get_string(const uint8_t *buf, size_t len, const tg_field_path *path,
                     tg_slice *out);

/* Finds the varint (an enum, an integer) at path: the same rules, the leaf
 * must have the varint wire type. Returns 1 and *out, 0 when absent (*out
 * 0), or TG_PB_ERR_MALFORMED. */
int tg_pb_get_varint(const uint8_t *buf, size_t len, const tg_field_path *path,
                     uint64_t *out);

/* Calls cb for every occurrence, in order, of the length-delimited field
 * `field` at the top level of buf. Stops at a non-zero return of cb and
 * returns it; 0 when all were visited; TG_PB_ERR_MALFORMED. */
int tg_pb_foreach(const uint8_t *buf, size_t len, uint32_t field,
                  int (*cb)(const uint8_t *p, size_t len, void *arg),
                  void *arg);
/* Calls cb for every occurrence, in order, of the length-delimited field
 * path[n - 1] inside every occurrence of path[n - 2] ... inside every
 * occurrence of path[0] at the top level of buf (1 <= n <= TG_PB_MAX_DEPTH).
 * Visiting every occurrence at every level is what merging does: for a
 * repeated field these are its elements, for a singular embedded message
 * the parts that merge into it. With strings, the last field's values are
 * strings and must be valid UTF-8. The wire format of each level is
 * validated before its first callback. Stops at a non-zero return of cb and
 * returns it; 0 when all were visited; TG_PB_ERR_MALFORMED (a field on the path
 * with another wire type included). */
int tg_pb_foreach_path(const uint8_t *buf, size_t len, const uint32_t *path,
                       size_t n, int strings,
                       int (*cb)(const uint8_t *p, size_t len, void *arg),
                       void *arg);
#endif
