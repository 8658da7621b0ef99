/* libFuzzer harness: JWKS and PEM key parsing. Adds the input to a fresh
 * keyset as a JWKS document, then as a PEM key, and checks that what was
 * added is consistent: counts, kids that find their key, a key per entry. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tg_jwks.h"

static void check_set(const tg_keyset *ks, size_t n) {
  if (tg_keyset_count(ks) != n || tg_keyset_get(ks, n))
    abort();
  for (size_t i = 0; i < n; i++) {
    const tg_jwk *k = tg_keyset_get(ks, i);
    if (!k || !k->pkey)
      abort();
    if (k->kid && tg_keyset_find(ks, k->kid, strlen(k->kid)) != k)
      abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[256];
  size_t skipped = 0;
  tg_keyset *ks = tg_keyset_new();
  if (!ks)
    return 0;
  int n = tg_keyset_add_jwks(ks, (const char *)data, size, &skipped, err,
                             sizeof(err));
  if (n < -1 || (n == -1 && (tg_keyset_count(ks) != 0 || !err[0])))
    abort();
  check_set(ks, n < 0 ? 0 : (size_t)n);
  size_t before = tg_keyset_count(ks);
  int rv =
      tg_keyset_add_pem(ks, (const char *)data, size, "pem", err, sizeof(err));
  if (rv != 0 && rv != -1)
    abort();
  check_set(ks, before + (rv == 0));
  tg_keyset_unref(tg_keyset_ref(ks));
  tg_keyset_unref(ks);
  return 0;
}
