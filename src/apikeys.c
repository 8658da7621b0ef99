#include "tg_apikeys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

#include "tg_b64.h"

static void sha256(const char *s, size_t len, uint8_t out[32]) {
  unsigned int n = 32;
  EVP_Digest(s, len, out, &n, EVP_sha256(), NULL);
}

void tg_apikey_hash_hex(const char *key, size_t len, char hex[65]) {
  static const char digits[] = "0123456789abcdef";
  uint8_t d[32];
  sha256(key, len, d);
  for (size_t i = 0; i < 32; i++) {
    hex[2 * i] = digits[d[i] >> 4];
    hex[2 * i + 1] = digits[d[i] & 15];
  }
  hex[64] = '\0';
}

int tg_apikey_generate(char key[TG_APIKEY_LEN + 1], char hex[65]) {
  uint8_t raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return -1;
  memcpy(key, "tgk_", 4);
  tg_b64url_encode(raw, sizeof raw, key + 4); /* 43 characters */
  OPENSSL_cleanse(raw, sizeof raw);
  tg_apikey_hash_hex(key, TG_APIKEY_LEN, hex);
  return 0;
}

int tg_apikeys_check(const tg_apikeys_file *keys, const char *key, size_t len,
                     int64_t now, const tg_perm_opts *popts, tg_claims *out,
                     const char **reason) {
  uint8_t d[32];
  const tg_apikey_entry *found = NULL;
  sha256(key, len, d);
  /* Every entry is compared, so the time taken does not depend on where
   * (or whether) the key is listed. */
  for (size_t i = 0; keys && i < keys->n; i++)
    if (CRYPTO_memcmp(d, keys->v[i].sha256, 32) == 0)
      found = &keys->v[i];
  if (!found) {
    *reason = "unknown API key";
    return TG_APIKEY_REJECTED;
  }
  if (found->expires && now >= found->expires) {
    *reason = "API key expired";
    return TG_APIKEY_REJECTED;
  }
  tg_claims c;
  tg_claims_init(&c);
  if (tg_claims_set_subject(&c, found->subject, strlen(found->subject)) != 0)
    goto nomem;
  for (size_t i = 0; i < found->permissions.n; i++) {
    const char *p = found->permissions.v[i];
    if (tg_perm_apply(&c, p, strlen(p), popts) < 0)
      goto nomem;
  }
  c.kinds = TG_CRED_API_KEY;
  c.not_after = found->expires;
  if (tg_claims_merge(out, &c) != 0)
    goto nomem;
  tg_claims_clear(&c);
  return 0;
nomem:
  tg_claims_clear(&c);
  return TG_CLAIMS_ERR_NOMEM;
}
