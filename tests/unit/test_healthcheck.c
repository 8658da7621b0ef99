/* Unit tests for src/healthcheck.c (tg_hc_*). */
#include "tg_healthcheck.h"
#include "tg_test.h"

#include <stdint.h>

/* "SERVING": one gRPC message holding HealthCheckResponse{status: 1}. */
static const uint8_t serving[] = {0, 0, 0, 0, 2, 0x08, 0x01};

TG_TEST(request_for_temporal_service) {
  uint8_t out[TG_HC_REQUEST_MAX];
  int n = tg_hc_encode_request(TG_HC_DEFAULT_SERVICE, out, sizeof(out));
  size_t slen = strlen(TG_HC_DEFAULT_SERVICE); /* 47 */
  TG_CHECK(n == (int)(5 + 2 + slen));
  TG_CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0 && out[3] == 0);
  TG_CHECK(out[4] == 2 + slen);
  TG_CHECK(out[5] == 0x0a); /* field 1, length-delimited */
  TG_CHECK(out[6] == slen);
  TG_CHECK(memcmp(out + 7, TG_HC_DEFAULT_SERVICE, slen) == 0);
}

TG_TEST(request_for_whole_server_is_empty_message) {
  uint8_t out[8];
  TG_CHECK(tg_hc_encode_request("", out, sizeof(out)) == 5);
  TG_CHECK(memcmp(out, "\0\0\0\0\0", 5) == 0);
}

TG_TEST(request_long_name_two_byte_length) {
  char name[301];
  uint8_t out[TG_HC_REQUEST_MAX];
  memset(name, 'a', 300);
  name[300] = '\0';
  TG_CHECK(tg_hc_encode_request(name, out, sizeof(out)) == 5 + 3 + 300);
  TG_CHECK(out[3] == 1 && out[4] == (303 & 0xff)); /* message of 303 bytes */
  TG_CHECK(out[6] == (0x80 | (300 & 0x7f)) && out[7] == 300 >> 7);
  TG_CHECK(out[8] == 'a' && out[307] == 'a');
}

TG_TEST(request_too_long) {
  static char name[TG_HC_MAX_SERVICE + 2];
  uint8_t out[TG_HC_REQUEST_MAX], small[10];
  memset(name, 's', TG_HC_MAX_SERVICE);
  TG_CHECK(tg_hc_encode_request(name, out, sizeof(out)) ==
           5 + 3 + TG_HC_MAX_SERVICE);
  name[TG_HC_MAX_SERVICE] = 's';
  TG_CHECK(tg_hc_encode_request(name, out, sizeof(out)) == TG_HC_ERR_TOO_LONG);
  TG_CHECK(tg_hc_encode_request("abcdefgh", small, sizeof(small)) ==
           TG_HC_ERR_TOO_LONG);
}

TG_TEST(response_statuses) {
  uint64_t st = 99;
  const char *why = NULL;
  TG_CHECK(tg_hc_parse_response(serving, sizeof(serving), &st, &why) == 0);
  TG_CHECK(st == TG_HC_SERVING);
  const uint8_t not_serving[] = {0, 0, 0, 0, 2, 0x08, 0x02};
  TG_CHECK(tg_hc_parse_response(not_serving, sizeof(not_serving), &st, &why) ==
           0);
  TG_CHECK(st == TG_HC_NOT_SERVING);
  /* an empty message: the proto3 default, UNKNOWN */
  const uint8_t empty[] = {0, 0, 0, 0, 0};
  TG_CHECK(tg_hc_parse_response(empty, sizeof(empty), &st, &why) == 0);
  TG_CHECK(st == TG_HC_UNKNOWN);
  /* unknown fields are skipped; the last status wins */
  const uint8_t extra[] = {0,    0,   0,    0,    7,    0x12,
                           0x01, 'x', 0x08, 0x02, 0x08, 0x01};
  TG_CHECK(tg_hc_parse_response(extra, sizeof(extra), &st, &why) == 0);
  TG_CHECK(st == TG_HC_SERVING);
  TG_CHECK(
      strcmp(tg_hc_status_name(TG_HC_SERVICE_UNKNOWN), "SERVICE_UNKNOWN") == 0);
  TG_CHECK(strcmp(tg_hc_status_name(7), "?") == 0);
}

TG_TEST(response_malformed) {
  uint64_t st;
  const char *why = NULL;
  TG_CHECK(tg_hc_parse_response(NULL, 0, &st, &why) == TG_HC_ERR_MALFORMED);
  TG_CHECK(strcmp(why, "no response message") == 0);
  TG_CHECK(tg_hc_parse_response(serving, 4, &st, &why) == TG_HC_ERR_MALFORMED);
  TG_CHECK(tg_hc_parse_response(serving, 6, &st, &why) == TG_HC_ERR_MALFORMED);
  TG_CHECK(strcmp(why, "truncated response message") == 0);
  const uint8_t two[] = {0, 0, 0, 0, 2, 0x08, 0x01, 0, 0, 0, 0, 0};
  TG_CHECK(tg_hc_parse_response(two, sizeof(two), &st, &why) ==
           TG_HC_ERR_MALFORMED);
  TG_CHECK(strcmp(why, "more than one message") == 0);
  const uint8_t compressed[] = {1, 0, 0, 0, 2, 0x08, 0x01};
  TG_CHECK(tg_hc_parse_response(compressed, sizeof(compressed), &st, &why) ==
           TG_HC_ERR_MALFORMED);
  const uint8_t bad_flag[] = {2, 0, 0, 0, 2, 0x08, 0x01};
  TG_CHECK(tg_hc_parse_response(bad_flag, sizeof(bad_flag), &st, &why) ==
           TG_HC_ERR_MALFORMED);
  /* status with the wrong wire type, and a truncated varint */
  const uint8_t wrong_type[] = {0, 0, 0, 0, 3, 0x0a, 0x01, 0x01};
  TG_CHECK(tg_hc_parse_response(wrong_type, sizeof(wrong_type), &st, &why) ==
           TG_HC_ERR_MALFORMED);
  const uint8_t truncated[] = {0, 0, 0, 0, 2, 0x08, 0x81};
  TG_CHECK(tg_hc_parse_response(truncated, sizeof(truncated), &st, &why) ==
           TG_HC_ERR_MALFORMED);
  TG_CHECK(strcmp(why, "malformed HealthCheckResponse") == 0);
}

TG_TEST(verdicts) {
  char why[160];
  TG_CHECK(tg_hc_verdict(200, 0, serving, sizeof(serving), why, sizeof(why)) ==
           1);
  TG_CHECK(strcmp(why, "SERVING") == 0);
  const uint8_t not_serving[] = {0, 0, 0, 0, 2, 0x08, 0x02};
  TG_CHECK(tg_hc_verdict(200, 0, not_serving, sizeof(not_serving), why,
                         sizeof(why)) == 0);
  TG_CHECK(strcmp(why, "status NOT_SERVING (2)") == 0);
  TG_CHECK(tg_hc_verdict(0, -1, NULL, 0, why, sizeof(why)) == 0);
  TG_CHECK(strcmp(why, "no response") == 0);
  TG_CHECK(tg_hc_verdict(503, -1, NULL, 0, why, sizeof(why)) == 0);
  TG_CHECK(strcmp(why, "HTTP status 503") == 0);
  TG_CHECK(tg_hc_verdict(200, -1, serving, sizeof(serving), why, sizeof(why)) ==
           0);
  TG_CHECK(strcmp(why, "no grpc-status") == 0);
  /* trailers-only NOT_FOUND: the service name is not one the frontend has */
  TG_CHECK(tg_hc_verdict(200, 5, NULL, 0, why, sizeof(why)) == 0);
  TG_CHECK_STR_CONTAINS(why, "NOT_FOUND");
  TG_CHECK(tg_hc_verdict(200, 12, NULL, 0, why, sizeof(why)) == 0);
  TG_CHECK_STR_CONTAINS(why, "UNIMPLEMENTED");
  TG_CHECK(tg_hc_verdict(200, 0, NULL, 0, why, sizeof(why)) == 0);
  TG_CHECK(strcmp(why, "no response message") == 0);
  /* the reason is cut to the room given */
  char tiny[4];
  TG_CHECK(tg_hc_verdict(503, -1, NULL, 0, tiny, sizeof(tiny)) == 0);
  TG_CHECK(strcmp(tiny, "HTT") == 0);
}

int main(void) {
  TG_RUN(request_for_temporal_service);
  TG_RUN(request_for_whole_server_is_empty_message);
  TG_RUN(request_long_name_two_byte_length);
  TG_RUN(request_too_long);
  TG_RUN(response_statuses);
  TG_RUN(response_malformed);
  TG_RUN(verdicts);
  return TG_DONE();
}
