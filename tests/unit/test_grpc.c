#include "tg_grpc.h"
#include "tg_test.h"

#include <stdint.h>

TG_TEST(percent_encoding_keeps_printable_ascii) {
  char out[64];
  TG_CHECK(tg_grpc_percent_encode("no upstream", out, sizeof(out)) == 11);
  TG_CHECK(strcmp(out, "no upstream") == 0);
}

TG_TEST(percent_encoding_escapes_percent_and_controls) {
  char out[64];
  tg_grpc_percent_encode("100%\n\xc3\xa9", out, sizeof(out));
  TG_CHECK(strcmp(out, "100%25%0A%C3%A9") == 0);
}

TG_TEST(percent_encoding_never_splits_an_escape) {
  char out[6];
  size_t n = tg_grpc_percent_encode("ab%%", out, sizeof(out));
  TG_CHECK(n == 5 || n == 2);
  TG_CHECK(strcmp(out, "ab%25") == 0);
  TG_CHECK(tg_grpc_percent_encode("x", out, 0) == 0);
}

TG_TEST(prefix_needs_five_bytes) {
  const uint8_t b[] = {0, 0, 0, 1};
  int c;
  uint32_t len;
  TG_CHECK(tg_grpc_read_prefix(b, sizeof(b), &c, &len) == 0);
}

TG_TEST(prefix_reads_flag_and_big_endian_length) {
  const uint8_t b[] = {1, 0x01, 0x02, 0x03, 0x04, 0xff};
  int c = -1;
  uint32_t len = 0;
  TG_CHECK(tg_grpc_read_prefix(b, sizeof(b), &c, &len) == 1);
  TG_CHECK(c == 1);
  TG_CHECK(len == 0x01020304u);
}

TG_TEST(prefix_rejects_unknown_flag) {
  const uint8_t b[] = {2, 0, 0, 0, 0};
  int c;
  uint32_t len;
  TG_CHECK(tg_grpc_read_prefix(b, sizeof(b), &c, &len) == -1);
}

TG_TEST(trailers_only_response_shape) {
  tg_hdrs h;
  tg_hdrs_init(&h);
  TG_CHECK(
      tg_grpc_trailers_only(&h, TG_GRPC_UNAVAILABLE, "no upstream: 100%") == 0);
  size_t len;
  const char *v = tg_hdrs_get(&h, ":status", &len);
  TG_CHECK(v && len == 3 && memcmp(v, "200", 3) == 0);
  v = tg_hdrs_get(&h, "content-type", &len);
  TG_CHECK(v && len == 16 && memcmp(v, "application/grpc", 16) == 0);
  v = tg_hdrs_get(&h, "grpc-status", &len);
  TG_CHECK(v && len == 2 && memcmp(v, "14", 2) == 0);
  v = tg_hdrs_get(&h, "grpc-message", &len);
  TG_CHECK(v && len == 19 && memcmp(v, "no upstream: 100%25", 19) == 0);
  TG_CHECK(h.n == 4);
  nghttp2_nv *nv = tg_hdrs_nv(&h);
  TG_CHECK(nv && nv[0].namelen == 7 && memcmp(nv[0].name, ":status", 7) == 0);
  tg_hdrs_clear(&h);
}

TG_TEST(content_type_recognition) {
  TG_CHECK(tg_grpc_is_content_type("application/grpc", 16));
  TG_CHECK(tg_grpc_is_content_type("application/grpc+proto", 22));
  TG_CHECK(tg_grpc_is_content_type("application/grpc;charset=x", 26));
  TG_CHECK(!tg_grpc_is_content_type("application/grpcx", 17));
  TG_CHECK(!tg_grpc_is_content_type("application/json", 16));
  TG_CHECK(!tg_grpc_is_content_type("application/grp", 15));
}

TG_TEST(header_list_keeps_binary_values_and_order) {
  tg_hdrs h;
  tg_hdrs_init(&h);
  const uint8_t bin[] = {0, 1, 2, 0xff};
  for (int i = 0; i < 100; i++)
    TG_CHECK(tg_hdrs_add(&h, (const uint8_t *)"x-a", 3, bin, sizeof(bin), 0) ==
             0);
  TG_CHECK(tg_hdrs_add(&h, (const uint8_t *)"x-b-bin", 7, bin, sizeof(bin),
                       NGHTTP2_NV_FLAG_NO_INDEX) == 0);
  TG_CHECK(h.n == 101);
  size_t len;
  const char *v = tg_hdrs_get(&h, "x-b-bin", &len);
  TG_CHECK(v && len == 4 && memcmp(v, bin, 4) == 0);
  TG_CHECK(tg_hdrs_get(&h, "x-c", &len) == NULL);
  nghttp2_nv *nv = tg_hdrs_nv(&h);
  TG_CHECK(nv[100].flags == NGHTTP2_NV_FLAG_NO_INDEX);
  TG_CHECK(nv[99].valuelen == 4 && memcmp(nv[99].value, bin, 4) == 0);
  TG_CHECK(tg_hdrs_size(&h) == 100 * (3 + 4 + 32) + (7 + 4 + 32));
  tg_hdrs_clear(&h);
  TG_CHECK(h.n == 0 && h.arena == NULL);
}

/* Feeds buf to a fresh scanner in chunks of step bytes. */
static int scan_in_steps(const uint8_t *buf, size_t len, size_t step,
                         uint32_t max, uint32_t *msglen) {
  tg_grpc_scanner sc;
  memset(&sc, 0, sizeof sc);
  for (size_t off = 0; off < len; off += step) {
    size_t n = len - off < step ? len - off : step;
    int rv = tg_grpc_scan(&sc, buf + off, n, max, msglen);
    if (rv != 0)
      return rv;
  }
  return 0;
}

TG_TEST(scanner_bounds_every_message_whatever_the_chunks) {
  /* three messages: 3 bytes, 10 bytes, 11 bytes */
  uint8_t buf[64];
  size_t len = 0;
  const uint32_t sizes[] = {3, 10, 11};
  for (int m = 0; m < 3; m++) {
    buf[len++] = 0;
    buf[len++] = 0;
    buf[len++] = 0;
    buf[len++] = 0;
    buf[len++] = (uint8_t)sizes[m];
    memset(buf + len, 'x', sizes[m]);
    len += sizes[m];
  }
  for (size_t step = 1; step <= len; step++) {
    uint32_t got = 0;
    TG_CHECK(scan_in_steps(buf, len, step, 11, &got) == 0);
    TG_CHECK(scan_in_steps(buf, len, step, 10, &got) == 1 && got == 11);
    TG_CHECK(scan_in_steps(buf, len, step, 9, &got) == 1 && got == 10);
  }
  /* a prefix announcing 4 GiB - 1, split across chunks */
  const uint8_t huge[] = {1, 0xff, 0xff, 0xff, 0xff};
  uint32_t got = 0;
  TG_CHECK(scan_in_steps(huge, sizeof huge, 2, 4u << 20, &got) == 1 &&
           got == 0xffffffffu);
  const uint8_t bad[] = {0, 0, 0, 0, 1, 'a', 7, 0, 0, 0, 0};
  TG_CHECK(scan_in_steps(bad, sizeof bad, 3, 100, &got) == -1);
}

int main(void) {
  TG_RUN(percent_encoding_keeps_printable_ascii);
  TG_RUN(percent_encoding_escapes_percent_and_controls);
  TG_RUN(percent_encoding_never_splits_an_escape);
  TG_RUN(prefix_needs_five_bytes);
  TG_RUN(prefix_reads_flag_and_big_endian_length);
  TG_RUN(prefix_rejects_unknown_flag);
  TG_RUN(trailers_only_response_shape);
  TG_RUN(content_type_recognition);
  TG_RUN(header_list_keeps_binary_values_and_order);
  TG_RUN(scanner_bounds_every_message_whatever_the_chunks);
  return TG_DONE();
}
