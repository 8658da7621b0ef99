#include <stdlib.h>

#include "tg_pb.h"
#include "tg_test.h"
#include "tg_testutil.h"

/* A growable wire-format builder, for the messages too long to write out. */
typedef tg_pbw wb;

static tg_field_path path1(uint32_t a) {
  tg_field_path p = {1, {a, 0, 0, 0}};
  return p;
}

static tg_field_path path2(uint32_t a, uint32_t b) {
  tg_field_path p = {2, {a, b, 0, 0}};
  return p;
}

/* get_string on a byte array, checking the result is a slice of it. */
static int get(const uint8_t *buf, size_t len, tg_field_path path,
               tg_slice *out) {
  int rv = tg_pb_get_string(buf, len, &path, out);
  if (rv == 1 && out->len > 0 &&
      (out->p < buf || out->p + out->len > buf + len))
    return -100;
  if (rv != 1 && (out->len != 0 || out->p != NULL))
    return -101;
  return rv;
}

static int slice_is(tg_slice s, const char *want) {
  return s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

TG_TEST(string_at_field_1) {
  static const uint8_t m[] = {0x0a, 0x07, 'd', 'e', 'f', 'a', 'u', 'l', 't'};
  tg_slice s;
  TG_CHECK(tg_pb_validate(m, sizeof m) == 0);
  TG_CHECK(get(m, sizeof m, path1(1), &s) == 1);
  TG_CHECK(slice_is(s, "default"));
  TG_CHECK(get(m, sizeof m, path1(2), &s) == 0);
  TG_CHECK(s.len == 0);
}

TG_TEST(respond_workflow_task_completed_namespace_at_field_9) {
  /* task_token (bytes, not UTF-8), one command (signal external, its
   * namespace at 13.1), identity, return_new_workflow_task, namespace. */
  static const uint8_t m[] = {
      0x0a, 0x04, 0xff, 0xfe, 0x00, 0x80,                  /* 1: token */
      0x12, 0x07, 0x08, 0x0b, 0x6a, 0x03, 0x0a, 0x01, 'x', /* 2: command */
      0x1a, 0x02, 'w',  '1',                               /* 3: identity */
      0x28, 0x01,                                          /* 5: true */
      0x4a, 0x05, 'p',  'r',  'o',  'd',  '1'};            /* 9: namespace */
  tg_slice s;
  TG_CHECK(get(m, sizeof m, path1(9), &s) == 1);
  TG_CHECK(slice_is(s, "prod1"));
  TG_CHECK(get(m, sizeof m, path1(3), &s) == 1);
  TG_CHECK(slice_is(s, "w1"));
  /* The token is not valid UTF-8: read as a string it is malformed. */
  TG_CHECK(get(m, sizeof m, path1(1), &s) == TG_PB_ERR_MALFORMED);
}

TG_TEST(duplicated_leaf_last_wins) {
  static const uint8_t m[] = {0x0a, 0x07, 'a',  'l',  'l',  'o', 'w', 'e',
                              'd',  0x10, 0x01, 0x0a, 0x09, 'f', 'o', 'r',
                              'b',  'i',  'd',  'd',  'e',  'n'};
  tg_slice s;
  TG_CHECK(get(m, sizeof m, path1(1), &s) == 1);
  TG_CHECK(slice_is(s, "forbidden"));
}

TG_TEST(embedded_message_occurrences_are_merged) {
  /* StartWorkflowExecutionRequest.task_queue (4) .name (1), twice. Only
   * the first occurrence sets the name: the second merges without it. */
  static const uint8_t first_only[] = {0x22, 0x06, 0x0a, 0x02, 't',
                                       'q',  0x10, 0x01, /* 4{1:"tq" 2:1} */
                                       0x0a, 0x02, 'n',  's',   /* 1:"ns" */
                                       0x22, 0x02, 0x10, 0x02}; /* 4{2:2} */
  static const uint8_t both[] = {
      0x22, 0x04, 0x0a, 0x02, 't', 'q',       /* 4{1:"tq"} */
      0x22, 0x05, 0x0a, 0x03, 'e', 'v', 'l'}; /* 4{1:"evl"} */
  static const uint8_t empty_second[] = {0x22, 0x04, 0x0a, 0x02,
                                         't',  'q',  0x22, 0x00};
  tg_slice s;
  TG_CHECK(get(first_only, sizeof first_only, path2(4, 1), &s) == 1);
  TG_CHECK(slice_is(s, "tq"));
  TG_CHECK(get(both, sizeof both, path2(4, 1), &s) == 1);
  TG_CHECK(slice_is(s, "evl"));
  TG_CHECK(get(empty_second, sizeof empty_second, path2(4, 1), &s) == 1);
  TG_CHECK(slice_is(s, "tq"));
  TG_CHECK(get(both, sizeof both, path2(4, 2), &s) == 0);
  TG_CHECK(get(both, sizeof both, path2(5, 1), &s) == 0);
}

TG_TEST(merge_across_three_levels) {
  /* [1,2,3]: the leaf set in the first 1{2{3}}, the second 1 has a 2 without
   * a 3, the third sets it again inside its second 2: that one wins. */
  wb w = {0}, a = {0}, b = {0};
  tg_field_path p = {3, {1, 2, 3, 0}};
  tg_slice s;
  pbw_str(&b, 3, "one");
  pbw_len(&a, 2, b.b, b.n);
  pbw_len(&w, 1, a.b, a.n);
  a.n = b.n = 0;
  pbw_str(&b, 4, "other");
  pbw_len(&a, 2, b.b, b.n);
  pbw_len(&w, 1, a.b, a.n);
  a.n = b.n = 0;
  pbw_str(&b, 3, "two");
  pbw_len(&a, 2, NULL, 0);
  pbw_len(&a, 2, b.b, b.n);
  pbw_len(&w, 1, a.b, a.n);
  TG_CHECK(tg_pb_get_string(w.b, w.n, &p, &s) == 1);
  TG_CHECK(slice_is(s, "two"));
  free(w.b);
  free(a.b);
  free(b.b);
}

TG_TEST(unknown_fields_of_every_wire_type_are_skipped) {
  static const uint8_t m[] = {
      0x08, 0x96, 0x01,                                     /* 1: varint */
      0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* 2: varint */
      0xff, 0x01,                                           /* (10 bytes) */
      0x19, 1,    2,    3,    4,    5,    6,    7,    8,    /* 3: fixed64 */
      0x22, 0x03, 0xc0, 0x80, 0xff,                         /* 4: bytes */
      0x2d, 1,    2,    3,    4,                            /* 5: fixed32 */
      0x32, 0x02, 'n',  's',                                /* 6: "ns" */
      0x38, 0x80, 0x00,                                     /* 7: 0, long */
      0x42, 0x81, 0x00, 'x',                                /* 8: long len */
      0xfa, 0xff, 0xff, 0xff, 0x0f, 0x00};                  /* 2^29-1: "" */
  tg_slice s;
  TG_CHECK(tg_pb_validate(m, sizeof m) == 0);
  TG_CHECK(get(m, sizeof m, path1(6), &s) == 1);
  TG_CHECK(slice_is(s, "ns"));
  TG_CHECK(get(m, sizeof m, path1(8), &s) == 1);
  TG_CHECK(slice_is(s, "x"));
  TG_CHECK(get(m, sizeof m, path1(0x1fffffff), &s) == 1);
  TG_CHECK(s.len == 0);
  TG_CHECK(get(m, sizeof m, path1(9), &s) == 0);
}

/* Each is malformed for validate and for get_string at field 1. */
TG_TEST(malformed_wire_format) {
  static const struct {
    const char *what;
    uint8_t b[16];
    size_t n;
  } v[] = {
      {"truncated varint", {0x08, 0x80}, 2},
      {"truncated tag", {0x80}, 1},
      {"11-byte varint",
       {0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00},
       12},
      {"10th varint byte 2",
       {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02},
       11},
      {"length past end", {0x0a, 0x05, 'a', 'b', 'c', 'd'}, 6},
      {"huge length",
       {0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 'a'},
       12},
      {"truncated length", {0x0a}, 1},
      {"start group", {0x0b, 0x0c}, 2},
      {"end group", {0x0c}, 1},
      {"wire type 6", {0x0e, 0x00}, 2},
      {"wire type 7", {0x0f, 0x00}, 2},
      {"field 0", {0x02, 0x00}, 2},
      {"field 0 varint", {0x00, 0x00}, 2},
      {"field 2^29", {0x82, 0x80, 0x80, 0x80, 0x10, 0x00}, 6},
      {"truncated fixed64", {0x11, 1, 2, 3, 4, 5, 6, 7}, 8},
      {"truncated fixed32", {0x15, 1, 2, 3}, 4},
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    tg_slice s;
    int a = tg_pb_validate(v[i].b, v[i].n);
    int b = get(v[i].b, v[i].n, path1(1), &s);
    if (a != TG_PB_ERR_MALFORMED || b != TG_PB_ERR_MALFORMED) {
      fprintf(stderr, "  %s: validate %d get %d\n", v[i].what, a, b);
      TG_CHECK(0);
    }
  }
}

TG_TEST(malformed_after_the_leaf_is_still_malformed) {
  static const uint8_t m[] = {0x0a, 0x02, 'n', 's', 0x10, 0x80};
  tg_slice s;
  TG_CHECK(get(m, sizeof m, path1(1), &s) == TG_PB_ERR_MALFORMED);
}

TG_TEST(wrong_wire_type_on_the_path) {
  static const uint8_t varint_leaf[] = {0x08, 0x05};
  static const uint8_t fixed_leaf[] = {0x0d, 1, 2, 3, 4};
  static const uint8_t varint_outer[] = {0x20, 0x01};
  static const uint8_t later[] = {0x0a, 0x01, 'a', 0x08, 0x01};
  tg_slice s;
  TG_CHECK(tg_pb_validate(varint_leaf, sizeof varint_leaf) == 0);
  TG_CHECK(get(varint_leaf, sizeof varint_leaf, path1(1), &s) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(get(fixed_leaf, sizeof fixed_leaf, path1(1), &s) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(get(varint_outer, sizeof varint_outer, path2(4, 1), &s) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(get(later, sizeof later, path1(1), &s) == TG_PB_ERR_MALFORMED);
  /* Off the path, the same field is just unknown. */
  TG_CHECK(get(varint_leaf, sizeof varint_leaf, path1(2), &s) == 0);
}

TG_TEST(namespace_must_be_utf8) {
  static const struct {
    const char *what;
    uint8_t b[6];
    size_t n;
  } bad[] = {
      {"lone continuation", {0x80}, 1},
      {"overlong 2-byte", {0xc0, 0x80}, 2},
      {"overlong 2-byte C1", {0xc1, 0xbf}, 2},
      {"overlong 3-byte", {0xe0, 0x80, 0x80}, 3},
      {"overlong 4-byte", {0xf0, 0x80, 0x80, 0x80}, 4},
      {"surrogate D800", {0xed, 0xa0, 0x80}, 3},
      {"surrogate DFFF", {0xed, 0xbf, 0xbf}, 3},
      {"above U+10FFFF", {0xf4, 0x90, 0x80, 0x80}, 4},
      {"F5 lead", {0xf5, 0x80, 0x80, 0x80}, 4},
      {"FF", {0xff}, 1},
      {"truncated 3-byte", {'a', 0xe2, 0x82}, 3},
      {"bad continuation", {0xe2, 0x28, 0xa1}, 3},
  };
  static const struct {
    const char *what;
    uint8_t b[6];
    size_t n;
  } good[] = {
      {"NUL", {0x00}, 1},
      {"U+0080", {0xc2, 0x80}, 2},
      {"U+07FF", {0xdf, 0xbf}, 2},
      {"U+0800", {0xe0, 0xa0, 0x80}, 3},
      {"U+D7FF", {0xed, 0x9f, 0xbf}, 3},
      {"U+E000", {0xee, 0x80, 0x80}, 3},
      {"U+FFFF", {0xef, 0xbf, 0xbf}, 3},
      {"U+10000", {0xf0, 0x90, 0x80, 0x80}, 4},
      {"U+10FFFF", {0xf4, 0x8f, 0xbf, 0xbf}, 4},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    uint8_t m[16] = {0x4a, (uint8_t)bad[i].n};
    tg_slice s;
    memcpy(m + 2, bad[i].b, bad[i].n);
    if (get(m, bad[i].n + 2, path1(9), &s) != TG_PB_ERR_MALFORMED) {
      fprintf(stderr, "  accepted: %s\n", bad[i].what);
      TG_CHECK(0);
    }
  }
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    uint8_t m[16] = {0x4a, (uint8_t)good[i].n};
    tg_slice s;
    memcpy(m + 2, good[i].b, good[i].n);
    if (get(m, good[i].n + 2, path1(9), &s) != 1 || s.len != good[i].n) {
      fprintf(stderr, "  refused: %s\n", good[i].what);
      TG_CHECK(0);
    }
  }
}

TG_TEST(an_invalid_earlier_occurrence_is_malformed) {
  /* Go refuses the whole message for it, even though the last is valid. */
  static const uint8_t m[] = {0x4a, 0x01, 0xff, 0x4a, 0x02, 'o', 'k'};
  tg_slice s;
  TG_CHECK(get(m, sizeof m, path1(9), &s) == TG_PB_ERR_MALFORMED);
}

TG_TEST(empty_message_and_empty_path) {
  static const uint8_t one[] = {0x0a, 0x00};
  tg_field_path none = {0, {0, 0, 0, 0}};
  tg_slice s = {one, 5};
  TG_CHECK(tg_pb_validate(NULL, 0) == 0);
  TG_CHECK(get(NULL, 0, path1(1), &s) == 0);
  TG_CHECK(s.len == 0 && s.p == NULL);
  TG_CHECK(get(NULL, 0, path2(4, 1), &s) == 0);
  /* Present and empty is 1, not absent. */
  TG_CHECK(get(one, sizeof one, path1(1), &s) == 1);
  TG_CHECK(s.len == 0);
  TG_CHECK(tg_pb_get_string(one, sizeof one, &none, &s) == 0);
}

typedef struct seen {
  int n;
  tg_slice s[8];
  int stop_at;
} seen;

static int collect(const uint8_t *p, size_t len, void *arg) {
  seen *v = arg;
  if (v->n < 8) {
    v->s[v->n].p = p;
    v->s[v->n].len = len;
  }
  v->n++;
  return v->n == v->stop_at ? 42 : 0;
}

TG_TEST(foreach_repeated_field_2) {
  /* RespondWorkflowTaskCompletedRequest.commands: three, between others. */
  static const uint8_t m[] = {0x0a, 0x01, 't',  0x12, 0x02, 0x08, 0x01,
                              0x1a, 0x01, 'i',  0x12, 0x00, 0x28, 0x01,
                              0x12, 0x02, 0x08, 0x03, 0x4a, 0x01, 'n'};
  seen v = {0};
  TG_CHECK(tg_pb_foreach(m, sizeof m, 2, collect, &v) == 0);
  TG_CHECK(v.n == 3);
  TG_CHECK(v.s[0].p == m + 5 && v.s[0].len == 2 && v.s[0].p[1] == 1);
  TG_CHECK(v.s[1].len == 0);
  TG_CHECK(v.s[2].p == m + 16 && v.s[2].len == 2 && v.s[2].p[1] == 3);
  memset(&v, 0, sizeof v);
  v.stop_at = 2;
  TG_CHECK(tg_pb_foreach(m, sizeof m, 2, collect, &v) == 42);
  TG_CHECK(v.n == 2);
  memset(&v, 0, sizeof v);
  TG_CHECK(tg_pb_foreach(m, sizeof m, 7, collect, &v) == 0);
  TG_CHECK(v.n == 0);
  TG_CHECK(tg_pb_foreach(NULL, 0, 2, collect, &v) == 0);
}

TG_TEST(foreach_calls_nothing_on_a_malformed_message) {
  static const uint8_t late_flaw[] = {0x12, 0x00, 0x12, 0x00, 0x0b};
  static const uint8_t wrong_type[] = {0x12, 0x00, 0x10, 0x01};
  seen v = {0};
  TG_CHECK(tg_pb_foreach(late_flaw, sizeof late_flaw, 2, collect, &v) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(tg_pb_foreach(wrong_type, sizeof wrong_type, 2, collect, &v) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(v.n == 0);
}

TG_TEST(foreach_path_visits_every_occurrence_at_every_level) {
  /* Field 2 (repeated) holds field 1 (a message), which holds strings at
   * field 4: ExecuteMultiOperation.operations[].start_workflow's shape.
   * Occurrence A has two parts of field 1 (they merge: both are visited),
   * B one, C none; between them, other fields. */
  wb a1 = {0}, a2 = {0}, b1 = {0}, opa = {0}, opb = {0}, m = {0};
  pbw_str(&a1, 4, "a1");
  pbw_str(&a2, 4, "a2");
  pbw_str(&a2, 4, "a3");
  pbw_str(&b1, 4, "b1");
  pbw_len(&opa, 1, a1.b, a1.n);
  pbw_str(&opa, 3, "x");
  pbw_len(&opa, 1, a2.b, a2.n);
  pbw_len(&opb, 1, b1.b, b1.n);
  pbw_str(&m, 1, "ns");
  pbw_len(&m, 2, opa.b, opa.n);
  pbw_len(&m, 2, opb.b, opb.n);
  pbw_len(&m, 2, "", 0);
  static const uint32_t p3[] = {2, 1, 4};
  seen v = {0};
  TG_CHECK(tg_pb_foreach_path(m.b, m.n, p3, 3, 1, collect, &v) == 0);
  TG_CHECK(v.n == 4 && slice_is(v.s[0], "a1") && slice_is(v.s[1], "a2") &&
           slice_is(v.s[2], "a3") && slice_is(v.s[3], "b1"));
  /* Two levels: the messages of field 1 inside every element of 2. */
  memset(&v, 0, sizeof v);
  TG_CHECK(tg_pb_foreach_path(m.b, m.n, p3, 2, 0, collect, &v) == 0);
  TG_CHECK(v.n == 3 && v.s[0].len == a1.n && v.s[2].len == b1.n);
  memset(&v, 0, sizeof v);
  v.stop_at = 2;
  TG_CHECK(tg_pb_foreach_path(m.b, m.n, p3, 3, 1, collect, &v) == 42);
  TG_CHECK(v.n == 2);
  /* Malformed: a wrong wire type on the path, a flaw in a level, an
   * invalid string at the last level; and paths of no or too many steps. */
  static const uint8_t varint2[] = {0x10, 0x01};
  static const uint8_t flaw[] = {0x12, 0x02, 0x0a, 0x05};
  static const uint8_t bad_utf8[] = {0x12, 0x04, 0x0a, 0x02, 0x22, 0x00, 0x12,
                                     0x05, 0x0a, 0x03, 0x22, 0x01, 0xff};
  memset(&v, 0, sizeof v);
  TG_CHECK(tg_pb_foreach_path(varint2, sizeof varint2, p3, 3, 1, collect, &v) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(tg_pb_foreach_path(flaw, sizeof flaw, p3, 3, 1, collect, &v) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(v.n == 0);
  TG_CHECK(tg_pb_foreach_path(bad_utf8, sizeof bad_utf8, p3, 3, 1, collect,
                              &v) == TG_PB_ERR_MALFORMED);
  memset(&v, 0, sizeof v);
  TG_CHECK(tg_pb_foreach_path(bad_utf8, sizeof bad_utf8, p3, 3, 0, collect,
                              &v) == 0);
  TG_CHECK(v.n == 2);
  static const uint32_t deep[TG_PB_MAX_DEPTH + 1] = {0};
  TG_CHECK(tg_pb_foreach_path(m.b, m.n, p3, 0, 0, collect, &v) ==
           TG_PB_ERR_MALFORMED);
  TG_CHECK(tg_pb_foreach_path(m.b, m.n, deep, TG_PB_MAX_DEPTH + 1, 0, collect,
                              &v) == TG_PB_ERR_MALFORMED);
  free(a1.b);
  free(a2.b);
  free(b1.b);
  free(opa.b);
  free(opb.b);
  free(m.b);
}

static size_t varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

/* levels nested field-1 messages around 2:"deep", written outside in. */
static void nest(wb *w, int levels) {
  size_t *size = malloc(sizeof(size_t) * ((size_t)levels + 1));
  if (!size)
    abort();
  size[0] = 6;
  for (int i = 1; i <= levels; i++)
    size[i] = 1 + varint_size(size[i - 1]) + size[i - 1];
  for (int i = levels; i >= 1; i--) {
    pbw_varint(w, 1 << 3 | 2);
    pbw_varint(w, size[i - 1]);
  }
  pbw_str(w, 2, "deep");
  free(size);
}

TG_TEST(deep_nesting_is_bounded) {
  /* 100000 levels of field 1: only the path's (at most 8) levels are
   * descended, so the depth never approaches TG_PB_MAX_DEPTH and the stack
   * stays flat whatever the input's nesting. */
  wb deep = {0}, three = {0};
  tg_field_path p4 = {4, {1, 1, 1, 2}};
  tg_field_path p9 = {TG_FIELD_PATH_MAX + 1, {1, 1, 1, 2}};
  tg_slice s;
  nest(&deep, 100000);
  nest(&three, 3);
  TG_CHECK(tg_pb_validate(deep.b, deep.n) == 0);
  TG_CHECK(tg_pb_get_string(deep.b, deep.n, &p4, &s) == 0);
  TG_CHECK(tg_pb_get_string(three.b, three.n, &p4, &s) == 1);
  TG_CHECK(slice_is(s, "deep"));
  /* A path longer than tg_field_path holds is refused, not read past. */
  TG_CHECK(tg_pb_get_string(three.b, three.n, &p9, &s) == TG_PB_ERR_MALFORMED);
  free(deep.b);
  free(three.b);
}

TG_TEST(varint_leaf) {
  /* TaskQueue at field 2: {name "q" (1), kind 2 (2), normal_name "n" (3)},
   * then a second occurrence setting kind 1: merged, the last kind wins. */
  const uint8_t buf[] = {0x12, 0x08, 0x0a, 0x01, 'q',  0x10, 0x02,
                         0x1a, 0x01, 'n',  0x12, 0x02, 0x10, 0x01};
  tg_field_path kind = {.len = 2, .f = {2, 2}};
  uint64_t v = 99;
  TG_CHECK(tg_pb_get_varint(buf, 10, &kind, &v) == 1 && v == 2);
  TG_CHECK(tg_pb_get_varint(buf, sizeof buf, &kind, &v) == 1 && v == 1);
  tg_field_path absent = {.len = 2, .f = {2, 4}};
  TG_CHECK(tg_pb_get_varint(buf, sizeof buf, &absent, &v) == 0 && v == 0);
  tg_field_path wrong = {.len = 2, .f = {2, 1}}; /* a string, not a varint */
  TG_CHECK(tg_pb_get_varint(buf, sizeof buf, &wrong, &v) ==
           TG_PB_ERR_MALFORMED);
  const uint8_t overlong[] = {0x12, 0x0c, 0x10, 0xff, 0xff, 0xff, 0xff,
                              0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
  TG_CHECK(tg_pb_get_varint(overlong, sizeof overlong, &kind, &v) ==
           TG_PB_ERR_MALFORMED);
}

int main(void) {
  TG_RUN(varint_leaf);
  TG_RUN(string_at_field_1);
  TG_RUN(respond_workflow_task_completed_namespace_at_field_9);
  TG_RUN(duplicated_leaf_last_wins);
  TG_RUN(embedded_message_occurrences_are_merged);
  TG_RUN(merge_across_three_levels);
  TG_RUN(unknown_fields_of_every_wire_type_are_skipped);
  TG_RUN(malformed_wire_format);
  TG_RUN(malformed_after_the_leaf_is_still_malformed);
  TG_RUN(wrong_wire_type_on_the_path);
  TG_RUN(namespace_must_be_utf8);
  TG_RUN(an_invalid_earlier_occurrence_is_malformed);
  TG_RUN(empty_message_and_empty_path);
  TG_RUN(foreach_repeated_field_2);
  TG_RUN(foreach_calls_nothing_on_a_malformed_message);
  TG_RUN(foreach_path_visits_every_occurrence_at_every_level);
  TG_RUN(deep_nesting_is_bounded);
  return TG_DONE();
}
