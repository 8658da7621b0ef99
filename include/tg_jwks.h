/*
 * tg_jwks: verification keys for JWTs, built from JWKS documents (RFC 7517)
 * and PEM public keys, parsed once per refresh into OpenSSL EVP_PKEYs.
 *
 * Accepted keys: kty RSA (n, e; at least 2048 bits), kty EC (crv P-256,
 * P-384, P-521; x, y; the point must be on the curve), kty OKP (crv Ed25519,
 * Ed448; x). Keys with "use" other than "sig", with "key_ops" not containing
 * "verify", with private parts ("d", "p", ...), or of unknown kty/crv are
 * skipped (counted in *skipped); symmetric "oct" keys are always skipped:
 * a public key set never verifies HMAC.
 *
 * A tg_keyset is immutable once built and reference-counted with atomic
 * operations, so a new set can be published to worker threads while calls
 * still use the old one. Pure: no I/O.
 */
#ifndef TG_JWKS_H
#define TG_JWKS_H
#include <openssl/evp.h>
#include <stddef.h>

typedef enum tg_jwk_type { TG_JWK_RSA, TG_JWK_EC, TG_JWK_OKP } tg_jwk_type;

typedef struct tg_jwk {
  char *kid; /* NULL when the key has none */
  char *
      alg; /* the JWK's "alg" if present (token alg must equal it), else NULL */
  tg_jwk_type type;
  int curve_nid; /* EC: NID_X9_62_prime256v1, NID_secp384r1, NID_secp521r1;
                    OKP: NID_ED25519 / NID_ED448; RSA: 0 */
  EVP_PKEY *pkey;
} tg_jwk;

typedef struct tg_keyset tg_keyset;

/* An empty set (refcount 1). NULL on no memory. */
tg_keyset *tg_keyset_new(void);

/* Adds the keys of a JWKS document ({"keys": [...]}) of len bytes. Returns
 * the number of keys added (>= 0) or -1 when the document itself is
 * malformed (not JSON, no "keys" array, duplicate member names), with a
 * reason in err. Keys with a kid already in the set are skipped. */
int tg_keyset_add_jwks(tg_keyset *ks, const char *json, size_t len,
                       size_t *skipped, char *err, size_t errlen);

/* Adds one PEM public key (SubjectPublicKeyInfo, "BEGIN PUBLIC KEY", or an
 * X.509 certificate, whose public key is used) with the given kid (may be
 * NULL). 0, or -1 with a reason in err. */
int tg_keyset_add_pem(tg_keyset *ks, const char *pem, size_t len,
                      const char *kid, char *err, size_t errlen);

size_t tg_keyset_count(const tg_keyset *ks);
const tg_jwk *tg_keyset_get(const tg_keyset *ks, size_t i);
/* The key with this kid, or NULL. */
const tg_jwk *tg_keyset_find(const tg_keyset *ks, const char *kid,
                             size_t kidlen);

/* Reference counting; thread-safe. unref of the last reference frees. */
tg_keyset *tg_keyset_ref(tg_keyset *ks);
void tg_keyset_unref(tg_keyset *ks); /* NULL-safe */
#endif
