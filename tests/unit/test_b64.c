#include "tg_b64.h"
#include "tg_test.h"

TG_TEST(rfc4648_vectors_round_trip) {
  static const struct {
    const char *raw, *enc;
  } v[] = {{"", ""},
           {"f", "Zg"},
           {"fo", "Zm8"},
           {"foo", "Zm9v"},
           {"foob", "Zm9vYg"},
           {"fooba", "Zm9vYmE"},
           {"foobar", "Zm9vYmFy"}};
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
    char enc[32];
    uint8_t dec[32];
    size_t n = 0;
    tg_b64url_encode((const uint8_t *)v[i].raw, strlen(v[i].raw), enc);
    TG_CHECK(strcmp(enc, v[i].enc) == 0);
    TG_CHECK(tg_b64url_decode(v[i].enc, strlen(v[i].enc), dec, &n) == 0);
    TG_CHECK(n == strlen(v[i].raw) && memcmp(dec, v[i].raw, n) == 0);
  }
}

TG_TEST(url_alphabet_and_strictness) {
  const uint8_t raw[] = {0xfb, 0xff, 0xbf};
  char enc[8];
  uint8_t dec[8];
  size_t n;
  tg_b64url_encode(raw, 3, enc);
  TG_CHECK(strcmp(enc, "-_-_") == 0);
  TG_CHECK(tg_b64url_decode("Zg==", 4, dec, &n) == -1); /* padding */
  TG_CHECK(tg_b64url_decode("+/+/", 4, dec, &n) == -1); /* standard alphabet */
  TG_CHECK(tg_b64url_decode("Zh", 2, dec, &n) == -1);   /* leftover bits */
  TG_CHECK(tg_b64url_decode("Z", 1, dec, &n) == -1);    /* impossible length */
  TG_CHECK(tg_b64url_decode("Zm 9v", 5, dec, &n) == -1);
}

TG_TEST(value_table_is_the_alphabet) {
  static const char alpha[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  for (int c = 0; c < 256; c++) {
    const char *at = c ? memchr(alpha, c, 64) : NULL;
    TG_CHECK(tg_b64url_val((unsigned char)c) == (at ? (int)(at - alpha) : -1));
  }
}

int main(void) {
  TG_RUN(rfc4648_vectors_round_trip);
  TG_RUN(url_alphabet_and_strictness);
  TG_RUN(value_table_is_the_alphabet);
  return TG_DONE();
}
