#include "tg_pb.h"

#define WT_VARINT 0
#define WT_I64 1
#define WT_LEN 2
#define WT_I32 5
#define MAX_FIELD 0x1fffffffu

/* One field as read off the wire; for WT_LEN, val/vlen is its payload. */
typedef struct field {
  uint32_t num;
  int wt;
  const uint8_t *val;
  size_t vlen;
  uint64_t u64; /* WT_VARINT: the value */
} field;

/* Reads a varint at *pos; at most 10 bytes, the 10th only 0 or 1 (as Go's
 * protowire.ConsumeVarint). 0, or -1 when truncated or overlong. */
static int read_varint(const uint8_t *buf, size_t len, size_t *pos,
                       uint64_t *v) {
  uint64_t x = 0;
  size_t p = *pos;
  for (unsigned i = 0; i < 10; i++) {
    if (p >= len)
      return -1;
    uint8_t b = buf[p++];
    if (i == 9 && b > 1)
      return -1;
    x |= (uint64_t)(b & 0x7f) << (7 * i);
    if (b < 0x80) {
      *pos = p;
      *v = x;
      return 0;
    }
  }
  return -1;
}

/* Reads the field at *pos and advances past it. 0, or -1 when malformed. */
static int next_field(const uint8_t *buf, size_t len, size_t *pos, field *f) {
  uint64_t tag, n;
  if (read_varint(buf, len, pos, &tag) != 0)
    return -1;
  if (tag >> 3 == 0 || tag >> 3 > MAX_FIELD)
    return -1;
  f->num = (uint32_t)(tag >> 3);
  f->wt = (int)(tag & 7);
  f->val = NULL;
  f->vlen = 0;
  switch (f->wt) {
  case WT_VARINT:
    return read_varint(buf, len, pos, &f->u64);
  case WT_I64:
  case WT_I32:
    n = f->wt == WT_I64 ? 8 : 4;
    if (n > len - *pos)
      return -1;
    *pos += (size_t)n;
    return 0;
  case WT_LEN:
    if (read_varint(buf, len, pos, &n) != 0 || n > (uint64_t)(len - *pos))
      return -1;
    f->val = buf + *pos;
    f->vlen = (size_t)n;
    *pos += (size_t)n;
    return 0;
  default:
    return -1; /* groups (3, 4) and the reserved 6, 7 */
  }
}

/* RFC 3629 UTF-8, as Go's utf8.Valid: no overlong forms, no surrogates,
 * nothing above U+10FFFF. */
static int utf8_valid(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf) {
      n = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c == 0xe0)
        lo = 0xa0;
      else if (c == 0xed)
        hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c == 0xf0)
        lo = 0x90;
      else if (c == 0xf4)
        hi = 0x8f;
    } else {
      return 0;
    }
    if (n > len - i - 1)
      return 0;
    if (s[i + 1] < lo || s[i + 1] > hi)
      return 0;
    for (size_t k = 2; k <= n; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xbf)
        return 0;
    i += n + 1;
  }
  return 1;
}

int tg_pb_validate(const uint8_t *buf, size_t len) {
  size_t pos = 0;
  field f;
  while (pos < len)
    if (next_field(buf, len, &pos, &f) != 0)
      return TG_PB_ERR_MALFORMED;
  return 0;
}

/* Walks every field of buf at path element d. Visiting the occurrences of an
 * embedded message in order and letting each leaf overwrite *leaf is the
 * same as merging them: the last leaf across all of them wins. The leaf must
 * have wire type leaf_wt; a length-delimited leaf is a string, and every
 * occurrence is checked, not only the last: Go rejects the whole message
 * for any invalid one. */
static int find_leaf(const uint8_t *buf, size_t len, const tg_field_path *path,
                     unsigned d, int leaf_wt, field *leaf, int *found) {
  size_t pos = 0;
  field f;
  if (d >= TG_PB_MAX_DEPTH)
    return TG_PB_ERR_MALFORMED;
  while (pos < len) {
    if (next_field(buf, len, &pos, &f) != 0)
      return TG_PB_ERR_MALFORMED;
    if (f.num != path->f[d])
      continue;
    if (d + 1 < path->len) {
      if (f.wt != WT_LEN)
        return TG_PB_ERR_MALFORMED;
      int rv = find_leaf(f.val, f.vlen, path, d + 1, leaf_wt, leaf, found);
      if (rv != 0)
        return rv;
      continue;
    }
    if (f.wt != leaf_wt || (f.wt == WT_LEN && !utf8_valid(f.val, f.vlen)))
      return TG_PB_ERR_MALFORMED;
    *leaf = f;
    *found = 1;
  }
  return 0;
}

/* Finds the last leaf at path; 1 found, 0 absent, or TG_PB_ERR_MALFORMED. */
static int get_leaf(const uint8_t *buf, size_t len, const tg_field_path *path,
                    int leaf_wt, field *leaf) {
  int found = 0;
  if (path->len == 0)
    return 0;
  if (path->len > sizeof path->f / sizeof path->f[0])
    return TG_PB_ERR_MALFORMED;
  int rv = find_leaf(buf, len, path, 0, leaf_wt, leaf, &found);
  return rv != 0 ? rv : found;
}

int tg_pb_get_string(const uint8_t *buf, size_t len, const tg_field_path *path,
                     tg_slice *out) {
  field leaf;
  int rv = get_leaf(buf, len, path, WT_LEN, &leaf);
  out->p = rv == 1 ? leaf.val : NULL;
  out->len = rv == 1 ? leaf.vlen : 0;
  return rv;
}

int tg_pb_get_varint(const uint8_t *buf, size_t len, const tg_field_path *path,
                     uint64_t *out) {
  field leaf;
  int rv = get_leaf(buf, len, path, WT_VARINT, &leaf);
  *out = rv == 1 ? leaf.u64 : 0;
  return rv;
}

/* Walks the top level of buf; calls cb (when not NULL) for each occurrence of
 * field_num, which must be length-delimited. */
static int each(const uint8_t *buf, size_t len, uint32_t field_num,
                int (*cb)(const uint8_t *p, size_t len, void *arg), void *arg) {
  size_t pos = 0;
  field f;
  while (pos < len) {
    if (next_field(buf, len, &pos, &f) != 0)
      return TG_PB_ERR_MALFORMED;
    if (f.num != field_num)
      continue;
    if (f.wt != WT_LEN)
      return TG_PB_ERR_MALFORMED;
    if (cb) {
      int rv = cb(f.val, f.vlen, arg);
      if (rv != 0)
        return rv;
    }
  }
  return 0;
}

int tg_pb_foreach(const uint8_t *buf, size_t len, uint32_t field_num,
                  int (*cb)(const uint8_t *p, size_t len, void *arg),
                  void *arg) {
  /* A malformed message gets no callback at all, so that a caller never acts
   * on the part before the flaw. */
  if (each(buf, len, field_num, NULL, NULL) != 0)
    return TG_PB_ERR_MALFORMED;
  return each(buf, len, field_num, cb, arg);
}

static int foreach_path(const uint8_t *buf, size_t len, const uint32_t *path,
                        size_t n, size_t d, int strings,
                        int (*cb)(const uint8_t *p, size_t len, void *arg),
                        void *arg) {
  size_t pos = 0;
  field f;
  if (each(buf, len, path[d], NULL, NULL) != 0)
    return TG_PB_ERR_MALFORMED;
  while (pos < len) {
    if (next_field(buf, len, &pos, &f) != 0)
      return TG_PB_ERR_MALFORMED;
    if (f.num != path[d])
      continue;
    int rv;
    if (d + 1 < n)
      rv = foreach_path(f.val, f.vlen, path, n, d + 1, strings, cb, arg);
    else if (strings && !utf8_valid(f.val, f.vlen))
      rv = TG_PB_ERR_MALFORMED;
    else
      rv = cb(f.val, f.vlen, arg);
    if (rv != 0)
      return rv;
  }
  return 0;
}

int tg_pb_foreach_path(const uint8_t *buf, size_t len, const uint32_t *path,
                       size_t n, int strings,
                       int (*cb)(const uint8_t *p, size_t len, void *arg),
                       void *arg) {
  if (n == 0 || n > TG_PB_MAX_DEPTH)
    return TG_PB_ERR_MALFORMED;
  return foreach_path(buf, len, path, n, 0, strings, cb, arg);
}
