/*
 * libFuzzer harness for the protobuf reader.
 *
 * Input: a request message. It is validated, read at a few field paths (a
 * namespace, a task queue name, a command's namespace, the deepest path) and
 * walked for its repeated field 2. Checked: results are slices of the input
 * and UTF-8 (against a plain reference decoder); a malformed top level fails
 * every call and gets no callback; and merging: reading [a, rest...] equals
 * reading [rest...] over the concatenated occurrences of a. tg_pb_foreach_path
 * over the same paths (strings at the last step) agrees with
 * tg_pb_get_string: it fails exactly when that does, visits something
 * exactly when that finds the string, and visits it last; over one step it
 * visits what tg_pb_foreach does.
 */
#include "tg_pb.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const tg_field_path fuzz_paths[] = {
    {1, {1, 0, 0, 0}},  {1, {9, 0, 0, 0}}, {2, {4, 1, 0, 0}},
    {3, {2, 13, 1, 0}}, {4, {1, 1, 1, 1}}, {2, {0x1fffffff, 2, 0, 0}},
};

typedef struct fuzz_walk {
  const uint8_t *base, *end, *last;
  size_t n;
  uint8_t *cat; /* occurrences concatenated, when not NULL */
  size_t catlen;
} fuzz_walk;

/* Decodes code points one by one; 1 when s is RFC 3629 UTF-8. */
static int fuzz_utf8_ref(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint32_t cp;
    size_t n;
    if (s[i] < 0x80) {
      i++;
      continue;
    } else if ((s[i] & 0xe0) == 0xc0) {
      cp = s[i] & 0x1f, n = 1;
    } else if ((s[i] & 0xf0) == 0xe0) {
      cp = s[i] & 0x0f, n = 2;
    } else if ((s[i] & 0xf8) == 0xf0) {
      cp = s[i] & 0x07, n = 3;
    } else {
      return 0;
    }
    if (len - i - 1 < n)
      return 0;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80)
        return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    i += n + 1;
  }
  return 1;
}

static int fuzz_visit(const uint8_t *p, size_t len, void *arg) {
  fuzz_walk *w = arg;
  if (p < w->base || p > w->end || len > (size_t)(w->end - p) ||
      (w->last && p < w->last))
    abort();
  w->last = p + len;
  w->n++;
  if (w->cat) {
    if (len)
      memcpy(w->cat + w->catlen, p, len);
    w->catlen += len;
  }
  return 0;
}

static int fuzz_stop_second(const uint8_t *p, size_t len, void *arg) {
  (void)p;
  (void)len;
  return ++*(int *)arg == 2 ? 7 : 0;
}

/* Keeps the last visited string: last its end, catlen its length. */
static int fuzz_last(const uint8_t *p, size_t len, void *arg) {
  fuzz_walk *w = arg;
  if (p < w->base || p > w->end || len > (size_t)(w->end - p))
    abort();
  w->last = p + len;
  w->catlen = len;
  w->n++;
  return 0;
}

static void fuzz_check_slice(const uint8_t *data, size_t size, int rv,
                             tg_slice s) {
  if (rv == 1) {
    if (s.len && (s.p < data || s.len > size || s.p > data + size - s.len))
      abort();
    if (!fuzz_utf8_ref(s.p, s.len))
      abort();
  } else if (rv == 0 || rv == TG_PB_ERR_MALFORMED) {
    if (s.p || s.len)
      abort();
  } else {
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int valid = tg_pb_validate(data, size);
  fuzz_walk w = {data, data + size, NULL, 0, NULL, 0};
  int stops = 0;
  int rv, rv_each;
  uint8_t *cat;

  if (valid != 0 && valid != TG_PB_ERR_MALFORMED)
    abort();
  rv = tg_pb_foreach(data, size, 2, fuzz_visit, &w);
  if (rv != 0 && rv != TG_PB_ERR_MALFORMED)
    abort();
  if ((valid != 0 && rv == 0) || (rv != 0 && w.n != 0))
    abort();
  if (tg_pb_foreach(data, size, 2, fuzz_stop_second, &stops) != (rv != 0 ? rv
                                                                 : w.n >= 2
                                                                     ? 7
                                                                     : 0))
    abort();
  if (stops != (rv != 0 ? 0 : w.n >= 2 ? 2 : (int)w.n))
    abort();
  rv_each = rv;

  {
    static const uint32_t two = 2;
    fuzz_walk one = {data, data + size, NULL, 0, NULL, 0};
    if (tg_pb_foreach_path(data, size, &two, 1, 0, fuzz_visit, &one) !=
            rv_each ||
        one.n != w.n)
      abort();
  }
  for (size_t i = 0; i < sizeof fuzz_paths / sizeof fuzz_paths[0]; i++) {
    const tg_field_path *p = &fuzz_paths[i];
    fuzz_walk v = {data, data + size, NULL, 0, NULL, 0};
    tg_slice s;
    int rvs = tg_pb_get_string(data, size, p, &s);
    rv = tg_pb_foreach_path(data, size, p->f, p->len, 1, fuzz_last, &v);
    if ((rv == 0) != (rvs >= 0) || (rv != 0 && rv != TG_PB_ERR_MALFORMED))
      abort();
    if (rv == 0 && (v.n != 0) != (rvs == 1))
      abort();
    if (rvs == 1 && (v.catlen != s.len || v.last != s.p + s.len))
      abort();
  }

  cat = malloc(size + 1);
  if (!cat)
    return 0;
  for (size_t i = 0; i < sizeof fuzz_paths / sizeof fuzz_paths[0]; i++) {
    const tg_field_path *p = &fuzz_paths[i];
    tg_field_path rest = {0, {0, 0, 0, 0}};
    tg_slice s = {data, 1}, s2;
    int rv2;
    rv = tg_pb_get_string(data, size, p, &s);
    fuzz_check_slice(data, size, rv, s);
    if (valid != 0 && rv != TG_PB_ERR_MALFORMED)
      abort();
    if (rv == TG_PB_ERR_MALFORMED || p->len < 2)
      continue;
    fuzz_walk m = {data, data + size, NULL, 0, cat, 0};
    if (tg_pb_foreach(data, size, p->f[0], fuzz_visit, &m) != 0)
      abort();
    rest.len = (uint8_t)(p->len - 1);
    memcpy(rest.f, p->f + 1, sizeof(uint32_t) * rest.len);
    rv2 = tg_pb_get_string(cat, m.catlen, &rest, &s2);
    if (rv2 != rv || s2.len != s.len || (s.len && memcmp(s.p, s2.p, s.len)))
      abort();
  }
  free(cat);
  return 0;
}
