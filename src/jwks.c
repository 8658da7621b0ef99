/*
 * tg_jwks: JWKS documents and PEM keys -> EVP_PKEYs (see include/tg_jwks.h).
 *
 * Every check on a key happens here, once per refresh, so that verification
 * only has to match the token's alg against the key's type and curve.
 */
#include "tg_jwks.h"

#include <jansson.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tg_b64.h"

#define JWKS_RSA_MIN_BITS 2048
/* OpenSSL refuses to verify with a larger modulus or public exponent
 * (OPENSSL_RSA_MAX_MODULUS_BITS, OPENSSL_RSA_MAX_PUBEXP_BITS). */
#define JWKS_RSA_MAX_BITS 16384
#define JWKS_RSA_MAX_E_BITS 64
/* Longest member we decode: an RSA modulus of JWKS_RSA_MAX_BITS. */
#define JWKS_MAX_B64 (JWKS_RSA_MAX_BITS / 6 + 4)

struct tg_keyset {
  atomic_size_t refs;
  tg_jwk *keys;
  size_t n, cap;
};

typedef struct jwks_curve {
  const char *crv;   /* JWK name */
  const char *group; /* OpenSSL group name */
  int nid;
  size_t len; /* bytes of a coordinate (EC) or of the key (OKP) */
} jwks_curve;

static const jwks_curve ec_curves[] = {
    {"P-256", "prime256v1", NID_X9_62_prime256v1, 32},
    {"P-384", "secp384r1", NID_secp384r1, 48},
    {"P-521", "secp521r1", NID_secp521r1, 66},
};

static const jwks_curve okp_curves[] = {
    {"Ed25519", "ED25519", NID_ED25519, 32},
    {"Ed448", "ED448", NID_ED448, 57},
};

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen)
    snprintf(err, errlen, "%s", msg);
}

/* A base64url string member of a JWK, decoded into buf (JWKS_MAX_B64 * 3 / 4
 * bytes); 0, or -1 when absent, not a string, too long or not base64url. */
static int member_b64(json_t *key, const char *name, uint8_t *buf,
                      size_t *outlen) {
  json_t *v = json_object_get(key, name);
  if (!json_is_string(v) || json_string_length(v) > JWKS_MAX_B64)
    return -1;
  return tg_b64url_decode(json_string_value(v), json_string_length(v), buf,
                          outlen);
}

static int rsa_params_ok(const BIGNUM *n, const BIGNUM *e) {
  int nbits = BN_num_bits(n), ebits = BN_num_bits(e);
  return nbits >= JWKS_RSA_MIN_BITS && nbits <= JWKS_RSA_MAX_BITS &&
         BN_is_odd(n) && BN_is_odd(e) && ebits >= 2 &&
         ebits <= JWKS_RSA_MAX_E_BITS;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld) {
  EVP_PKEY *pkey = NULL;
  OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    pkey = NULL;
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return pkey;
}

/* fromdata already refuses a point off the curve; the public check also
 * refuses the point at infinity and points outside the prime-order group. */
static int ec_public_ok(EVP_PKEY *pkey) {
  EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
  int ok = ctx && EVP_PKEY_public_check(ctx) == 1;
  EVP_PKEY_CTX_free(ctx);
  return ok;
}

static EVP_PKEY *jwk_rsa(json_t *key) {
  uint8_t buf[JWKS_MAX_B64 * 3 / 4];
  size_t len;
  BIGNUM *n = NULL, *e = NULL;
  OSSL_PARAM_BLD *bld = NULL;
  EVP_PKEY *pkey = NULL;
  if (member_b64(key, "n", buf, &len) != 0 ||
      !(n = BN_bin2bn(buf, (int)len, NULL)))
    goto end;
  if (member_b64(key, "e", buf, &len) != 0 ||
      !(e = BN_bin2bn(buf, (int)len, NULL)))
    goto end;
  if (!rsa_params_ok(n, e))
    goto end;
  if (!(bld = OSSL_PARAM_BLD_new()) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
      !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e))
    goto end;
  pkey = pkey_fromdata("RSA", bld);
end:
  OSSL_PARAM_BLD_free(bld);
  BN_free(e);
  BN_free(n);
  return pkey;
}

static const jwks_curve *find_curve(const jwks_curve *tab, size_t n,
                                    json_t *crv) {
  if (!json_is_string(crv))
    return NULL;
  for (size_t i = 0; i < n; i++)
    if (strcmp(json_string_value(crv), tab[i].crv) == 0)
      return &tab[i];
  return NULL;
}

static EVP_PKEY *jwk_ec(json_t *key, int *nid) {
  const jwks_curve *c =
      find_curve(ec_curves, sizeof(ec_curves) / sizeof(ec_curves[0]),
                 json_object_get(key, "crv"));
  uint8_t x[JWKS_MAX_B64 * 3 / 4], y[JWKS_MAX_B64 * 3 / 4];
  uint8_t pt[1 + 2 * 66];
  size_t xlen, ylen;
  OSSL_PARAM_BLD *bld = NULL;
  EVP_PKEY *pkey = NULL;
  if (!c || member_b64(key, "x", x, &xlen) != 0 || xlen != c->len ||
      member_b64(key, "y", y, &ylen) != 0 || ylen != c->len)
    return NULL;
  pt[0] = 0x04; /* uncompressed point */
  memcpy(pt + 1, x, c->len);
  memcpy(pt + 1 + c->len, y, c->len);
  if (!(bld = OSSL_PARAM_BLD_new()) ||
      !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                       c->group, 0) ||
      !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt,
                                        1 + 2 * c->len))
    goto end;
  pkey = pkey_fromdata("EC", bld);
  if (pkey && !ec_public_ok(pkey)) {
    EVP_PKEY_free(pkey);
    pkey = NULL;
  }
  *nid = c->nid;
end:
  OSSL_PARAM_BLD_free(bld);
  return pkey;
}

static EVP_PKEY *jwk_okp(json_t *key, int *nid) {
  const jwks_curve *c =
      find_curve(okp_curves, sizeof(okp_curves) / sizeof(okp_curves[0]),
                 json_object_get(key, "crv"));
  uint8_t x[JWKS_MAX_B64 * 3 / 4];
  size_t xlen;
  if (!c || member_b64(key, "x", x, &xlen) != 0 || xlen != c->len)
    return NULL;
  *nid = c->nid;
  return EVP_PKEY_new_raw_public_key(
      c->nid == NID_ED25519 ? EVP_PKEY_ED25519 : EVP_PKEY_ED448, NULL, x, xlen);
}

/* A JWK meant for verifying signatures: "use" absent or "sig", "key_ops"
 * absent or containing "verify", no private or symmetric key material. */
static int jwk_usable(json_t *key) {
  static const char *const secret[] = {"d",  "p",  "q",   "dp",
                                       "dq", "qi", "oth", "k"};
  json_t *use = json_object_get(key, "use");
  json_t *ops = json_object_get(key, "key_ops");
  if (use &&
      !(json_is_string(use) && strcmp(json_string_value(use), "sig") == 0))
    return 0;
  if (ops) {
    size_t i;
    json_t *op;
    int verify = 0;
    if (!json_is_array(ops))
      return 0;
    json_array_foreach(ops, i, op) {
      if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
        verify = 1;
    }
    if (!verify)
      return 0;
  }
  for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
    if (json_object_get(key, secret[i]))
      return 0;
  return 1;
}

static const tg_jwk *find_kid(const tg_keyset *ks, const char *kid,
                              size_t kidlen) {
  for (size_t i = 0; i < ks->n; i++) {
    const char *k = ks->keys[i].kid;
    if (k && strlen(k) == kidlen && memcmp(k, kid, kidlen) == 0)
      return &ks->keys[i];
  }
  return NULL;
}

static void jwk_clear(tg_jwk *k) {
  free(k->kid);
  free(k->alg);
  EVP_PKEY_free(k->pkey);
}

/* Appends a key, taking pkey (freed on failure too). 0 or -1 (no memory). */
static int keyset_push(tg_keyset *ks, const char *kid, const char *alg,
                       tg_jwk_type type, int nid, EVP_PKEY *pkey) {
  tg_jwk k = {.type = type, .curve_nid = nid, .pkey = pkey};
  if ((kid && !(k.kid = strdup(kid))) || (alg && !(k.alg = strdup(alg))))
    goto fail;
  if (ks->n == ks->cap) {
    size_t cap = ks->cap ? ks->cap * 2 : 4;
    tg_jwk *keys = realloc(ks->keys, cap * sizeof(*keys));
    if (!keys)
      goto fail;
    ks->keys = keys;
    ks->cap = cap;
  }
  ks->keys[ks->n++] = k;
  return 0;
fail:
  jwk_clear(&k);
  return -1;
}

/* One element of "keys": 1 added, 0 skipped, -1 no memory. */
static int add_jwk(tg_keyset *ks, json_t *key) {
  json_t *kty = json_object_get(key, "kty");
  json_t *kid = json_object_get(key, "kid");
  json_t *alg = json_object_get(key, "alg");
  EVP_PKEY *pkey = NULL;
  tg_jwk_type type;
  int nid = 0;
  if (!json_is_object(key) || !json_is_string(kty) || !jwk_usable(key))
    return 0;
  if ((kid && !json_is_string(kid)) || (alg && !json_is_string(alg)))
    return 0;
  if (kid && find_kid(ks, json_string_value(kid), json_string_length(kid)))
    return 0;
  if (strcmp(json_string_value(kty), "RSA") == 0) {
    type = TG_JWK_RSA;
    pkey = jwk_rsa(key);
  } else if (strcmp(json_string_value(kty), "EC") == 0) {
    type = TG_JWK_EC;
    pkey = jwk_ec(key, &nid);
  } else if (strcmp(json_string_value(kty), "OKP") == 0) {
    type = TG_JWK_OKP;
    pkey = jwk_okp(key, &nid);
  } else {
    return 0;
  }
  if (!pkey)
    return 0;
  if (keyset_push(ks, kid ? json_string_value(kid) : NULL,
                  alg ? json_string_value(alg) : NULL, type, nid, pkey) != 0)
    return -1;
  return 1;
}

static void keyset_truncate(tg_keyset *ks, size_t n) {
  while (ks->n > n)
    jwk_clear(&ks->keys[--ks->n]);
}

tg_keyset *tg_keyset_new(void) {
  tg_keyset *ks = calloc(1, sizeof(*ks));
  if (!ks)
    return NULL;
  atomic_init(&ks->refs, 1);
  return ks;
}

int tg_keyset_add_jwks(tg_keyset *ks, const char *json, size_t len,
                       size_t *skipped, char *err, size_t errlen) {
  json_error_t jerr;
  json_t *root, *keys, *key;
  size_t i, start = ks->n, nskipped = 0;
  int added = 0;
  if (skipped)
    *skipped = 0;
  root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) {
    if (err && errlen)
      snprintf(err, errlen, "JWKS is not valid JSON: %s (line %d, column %d)",
               jerr.text, jerr.line, jerr.column);
    return -1;
  }
  keys = json_object_get(root, "keys");
  if (!json_is_array(keys)) {
    set_err(err, errlen, "JWKS has no \"keys\" array");
    json_decref(root);
    return -1;
  }
  ERR_set_mark();
  json_array_foreach(keys, i, key) {
    int rv = add_jwk(ks, key);
    if (rv < 0) {
      keyset_truncate(ks, start);
      set_err(err, errlen, "out of memory");
      added = -1;
      break;
    }
    if (rv == 0)
      nskipped++;
    else
      added++;
  }
  ERR_pop_to_mark();
  json_decref(root);
  if (skipped && added >= 0)
    *skipped = nskipped;
  return added;
}

static EVP_PKEY *read_pem(const char *pem, size_t len) {
  EVP_PKEY *pkey = NULL;
  X509 *cert = NULL;
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio)
    return NULL;
  pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
  if (!pkey && BIO_reset(bio) == 1 &&
      (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)))
    pkey = X509_get_pubkey(cert);
  X509_free(cert);
  BIO_free(bio);
  return pkey;
}

static int pem_ec_nid(EVP_PKEY *pkey) {
  char group[64];
  int nid;
  if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                     sizeof(group), NULL) != 1)
    return 0;
  nid = OBJ_txt2nid(group);
  for (size_t i = 0; i < sizeof(ec_curves) / sizeof(ec_curves[0]); i++)
    if (nid == ec_curves[i].nid)
      return ec_public_ok(pkey) ? nid : 0;
  return 0;
}

static int pem_rsa_ok(EVP_PKEY *pkey) {
  BIGNUM *n = NULL, *e = NULL;
  int ok = EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
           EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
           rsa_params_ok(n, e);
  BN_free(n);
  BN_free(e);
  return ok;
}

int tg_keyset_add_pem(tg_keyset *ks, const char *pem, size_t len,
                      const char *kid, char *err, size_t errlen) {
  EVP_PKEY *pkey = NULL;
  tg_jwk_type type;
  int nid = 0, rv = -1;
  ERR_set_mark();
  if (len == 0 || len > INT_MAX || !(pkey = read_pem(pem, len))) {
    set_err(err, errlen, "no PEM public key or certificate");
    goto end;
  }
  if (kid && find_kid(ks, kid, strlen(kid))) {
    set_err(err, errlen, "duplicate key id");
    goto end;
  }
  /* EVP_PKEY_is_a("RSA") is false for RSA-PSS keys, whose parameters could
   * contradict the token's alg: they are not accepted. */
  if (EVP_PKEY_is_a(pkey, "RSA")) {
    type = TG_JWK_RSA;
    if (!pem_rsa_ok(pkey)) {
      set_err(err, errlen, "RSA key too small or invalid");
      goto end;
    }
  } else if (EVP_PKEY_is_a(pkey, "EC")) {
    type = TG_JWK_EC;
    if (!(nid = pem_ec_nid(pkey))) {
      set_err(err, errlen, "EC key not on P-256, P-384 or P-521");
      goto end;
    }
  } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
    type = TG_JWK_OKP;
    nid = NID_ED25519;
  } else if (EVP_PKEY_is_a(pkey, "ED448")) {
    type = TG_JWK_OKP;
    nid = NID_ED448;
  } else {
    set_err(err, errlen, "unsupported key type");
    goto end;
  }
  rv = keyset_push(ks, kid, NULL, type, nid, pkey);
  pkey = NULL;
  if (rv != 0)
    set_err(err, errlen, "out of memory");
end:
  EVP_PKEY_free(pkey);
  ERR_pop_to_mark();
  return rv;
}

size_t tg_keyset_count(const tg_keyset *ks) {
  return ks ? ks->n : 0;
}

const tg_jwk *tg_keyset_get(const tg_keyset *ks, size_t i) {
  return ks && i < ks->n ? &ks->keys[i] : NULL;
}

const tg_jwk *tg_keyset_find(const tg_keyset *ks, const char *kid,
                             size_t kidlen) {
  return ks && kid ? find_kid(ks, kid, kidlen) : NULL;
}

tg_keyset *tg_keyset_ref(tg_keyset *ks) {
  if (ks)
    atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
  return ks;
}

void tg_keyset_unref(tg_keyset *ks) {
  if (!ks || atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) != 1)
    return;
  keyset_truncate(ks, 0);
  free(ks->keys);
  free(ks);
}
