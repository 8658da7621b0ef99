#include "tg_apikeys.h"
#include "tg_test.h"
#include "tg_tokencache.h"

#include <stdlib.h>

static const char keys_yaml_fmt[] =
    "keys:\n"
    "  - id: deployer\n"
    "    sha256: \"%s\"\n"
    "    subject: ci\n"
    "    permissions: [\"default:write\", \"payments:READ\", "
    "\"temporal-system:read\"]\n"
    "  - sha256: \"%s\"\n"
    "    subject: old\n"
    "    permissions: [\"default:admin\"]\n"
    "    expires: 2020-01-01T00:00:00Z\n";

TG_TEST(generated_keys_have_the_documented_form) {
  char k1[TG_APIKEY_LEN + 1], k2[TG_APIKEY_LEN + 1], h1[65], h2[65];
  TG_CHECK(tg_apikey_generate(k1, h1) == 0);
  TG_CHECK(tg_apikey_generate(k2, h2) == 0);
  TG_CHECK(strlen(k1) == TG_APIKEY_LEN && strncmp(k1, "tgk_", 4) == 0);
  TG_CHECK(strcmp(k1, k2) != 0 && strcmp(h1, h2) != 0);
  TG_CHECK(strchr(k1, '.') == NULL);
  char again[65];
  tg_apikey_hash_hex(k1, strlen(k1), again);
  TG_CHECK(strcmp(again, h1) == 0);
  /* SHA-256("abc") */
  tg_apikey_hash_hex("abc", 3, again);
  TG_CHECK(
      strcmp(
          again,
          "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") ==
      0);
}

TG_TEST(keys_file_check) {
  char k1[TG_APIKEY_LEN + 1], k2[TG_APIKEY_LEN + 1], h1[65], h2[65];
  tg_apikey_generate(k1, h1);
  tg_apikey_generate(k2, h2);
  char yaml[1024];
  snprintf(yaml, sizeof yaml, keys_yaml_fmt, h1, h2);
  tg_apikeys_file *f = NULL;
  char *errors = NULL;
  TG_CHECK(tg_apikeys_file_parse(yaml, strlen(yaml), "k.yaml", &f, &errors) ==
           0);
  TG_CHECK(errors == NULL);
  if (!f)
    return;
  TG_CHECK(f->n == 2 && f->v[1].expires == 1577836800);
  tg_claims c;
  tg_claims_init(&c);
  const char *reason = NULL;
  TG_CHECK(tg_apikeys_check(f, k1, strlen(k1), 1700000000, NULL, &c, &reason) ==
           0);
  TG_CHECK(c.subject && strcmp(c.subject, "ci") == 0);
  TG_CHECK(c.kinds == TG_CRED_API_KEY);
  TG_CHECK(tg_claims_ns_role(&c, "default", 7) == TG_ROLE_WRITE);
  TG_CHECK(tg_claims_ns_role(&c, "payments", 8) == TG_ROLE_READ);
  TG_CHECK(c.system == TG_ROLE_READ);
  tg_claims_clear(&c);
  tg_claims_init(&c);
  TG_CHECK(tg_apikeys_check(f, k2, strlen(k2), 1700000000, NULL, &c, &reason) ==
           TG_APIKEY_REJECTED);
  TG_CHECK_STR_CONTAINS(reason, "expired");
  TG_CHECK(c.subject == NULL && c.kinds == 0);
  TG_CHECK(tg_apikeys_check(f, "tgk_nope", 8, 1700000000, NULL, &c, &reason) ==
           TG_APIKEY_REJECTED);
  TG_CHECK_STR_CONTAINS(reason, "unknown API key");
  /* a key one character off is unknown */
  k1[10] ^= 1;
  TG_CHECK(tg_apikeys_check(f, k1, strlen(k1), 1700000000, NULL, &c, &reason) ==
           TG_APIKEY_REJECTED);
  tg_claims_clear(&c);
  tg_apikeys_file_free(f);
}

TG_TEST(keys_file_errors_name_line_and_column) {
  const char *bad = "keys:\n"
                    "  - sha256: \"abcd\"\n"
                    "    subject: x\n"
                    "  - subject: y\n"
                    "    expires: tomorrow\n"
                    "    colour: red\n";
  tg_apikeys_file *f = (tg_apikeys_file *)1;
  char *errors = NULL;
  TG_CHECK(tg_apikeys_file_parse(bad, strlen(bad), "k.yaml", &f, &errors) ==
           TG_CONFIG_ERR_INVALID);
  TG_CHECK(f == NULL);
  TG_CHECK_STR_CONTAINS(errors,
                        "k.yaml:2:13: 'keys[0].sha256' must be 64 hexadecimal");
  TG_CHECK_STR_CONTAINS(errors, "k.yaml:4:5: missing required key 'sha256'");
  TG_CHECK_STR_CONTAINS(errors,
                        "k.yaml:5:14: 'keys[1].expires' must be a UTC time");
  TG_CHECK_STR_CONTAINS(errors, "k.yaml:6:5: unknown key 'colour'");
  TG_CHECK(strstr(errors, "same sha256") == NULL);
  free(errors);
  errors = NULL;
  TG_CHECK(tg_apikeys_file_load("/nonexistent/keys.yaml", &f, &errors) ==
           TG_CONFIG_ERR_IO);
  TG_CHECK_STR_CONTAINS(errors, "/nonexistent/keys.yaml: cannot read");
  free(errors);
}

TG_TEST(duplicate_digests_are_refused) {
  char k[TG_APIKEY_LEN + 1], h[65], yaml[512];
  tg_apikey_generate(k, h);
  snprintf(yaml, sizeof yaml,
           "keys:\n  - {sha256: \"%s\", subject: a}\n  - {sha256: \"%s\", "
           "subject: b}\n",
           h, h);
  tg_apikeys_file *f = NULL;
  char *errors = NULL;
  TG_CHECK(tg_apikeys_file_parse(yaml, strlen(yaml), "k.yaml", &f, &errors) ==
           TG_CONFIG_ERR_INVALID);
  TG_CHECK_STR_CONTAINS(errors,
                        "k.yaml:3:5: keys[1] has the same sha256 as keys[0]");
  free(errors);
}

TG_TEST(token_cache_hits_until_expiry_or_new_keys) {
  tg_tokencache *c = tg_tokencache_new(8);
  tg_claims cl;
  tg_claims_init(&cl);
  tg_claims_set_subject(&cl, "w", 1);
  tg_claims_grant(&cl, "ns", 2, TG_ROLE_WORKER);
  TG_CHECK(tg_tokencache_get(c, "a.b.c", 5, 1, 100) == NULL);
  TG_CHECK(tg_tokencache_put(c, "a.b.c", 5, 1, 200, &cl) == 0);
  const tg_claims *hit = tg_tokencache_get(c, "a.b.c", 5, 1, 150);
  TG_CHECK(hit && hit->subject && strcmp(hit->subject, "w") == 0 &&
           tg_claims_ns_role(hit, "ns", 2) == TG_ROLE_WORKER);
  TG_CHECK(tg_tokencache_get(c, "a.b.d", 5, 1, 150) == NULL);
  TG_CHECK(tg_tokencache_get(c, "a.b.c", 5, 1, 200) == NULL); /* expired */
  TG_CHECK(tg_tokencache_put(c, "a.b.c", 5, 1, 300, &cl) == 0);
  TG_CHECK(tg_tokencache_get(c, "a.b.c", 5, 2, 150) == NULL); /* new keys */
  tg_tokencache_stats st;
  tg_tokencache_stats_get(c, &st);
  TG_CHECK(st.hits == 1 && st.misses == 4);
  tg_claims_clear(&cl);
  tg_tokencache_free(c);
}

TG_TEST(token_cache_is_bounded) {
  tg_tokencache *c = tg_tokencache_new(16);
  tg_claims cl;
  tg_claims_init(&cl);
  char tok[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(tok, sizeof tok, "tok.%d.x", i);
    TG_CHECK(tg_tokencache_put(c, tok, strlen(tok), 1, 1000, &cl) == 0);
  }
  tg_tokencache_stats st;
  tg_tokencache_stats_get(c, &st);
  TG_CHECK(st.entries <= 16);
  TG_CHECK(st.inserts == 1000 && st.evictions == 1000 - st.entries);
  /* the most recent token survives */
  TG_CHECK(tg_tokencache_get(c, tok, strlen(tok), 1, 10) != NULL);
  tg_tokencache_free(c);
  c = tg_tokencache_new(0);
  TG_CHECK(tg_tokencache_put(c, "x", 1, 1, 10, &cl) == 0);
  TG_CHECK(tg_tokencache_get(c, "x", 1, 1, 5) == NULL);
  tg_tokencache_free(c);
}

int main(void) {
  TG_RUN(generated_keys_have_the_documented_form);
  TG_RUN(keys_file_check);
  TG_RUN(keys_file_errors_name_line_and_column);
  TG_RUN(duplicate_digests_are_refused);
  TG_RUN(token_cache_hits_until_expiry_or_new_keys);
  TG_RUN(token_cache_is_bounded);
  return TG_DONE();
}
