/* Unit tests for tg_jwt: every token is minted here with OpenSSL from keys
 * generated at start-up, and verified against a keyset built from the JWKS
 * of their public parts. */
#include "tg_jwt.h"
#include "tg_test.h"
#include "tg_testutil.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include "tg_failmalloc_tracked.h"

/* The end of a variadic list of strings. */
#define END ((char *)NULL)

#define NOW 1700000000
#define EXP "1700003600"

static EVP_PKEY *k_rsa, *k_p256, *k_p384, *k_p521, *k_ed25519, *k_ed448;
static tg_keyset *std_ks; /* every key above, kids rsa, p256, ... */

static char *b64s(const char *s) {
  return b64url((const uint8_t *)s, strlen(s));
}

static char *bn_b64(EVP_PKEY *k, const char *param, size_t pad) {
  BIGNUM *bn = NULL;
  uint8_t buf[1024];
  EVP_PKEY_get_bn_param(k, param, &bn);
  int n = pad ? BN_bn2binpad(bn, buf, (int)pad) : BN_bn2bin(bn, buf);
  BN_free(bn);
  return b64url(buf, (size_t)n);
}

/* The public JWK of k, with extra members (",\"alg\":...") appended. */
static char *jwk_of(EVP_PKEY *k, const char *kid, const char *extra) {
  char kidm[128] = "";
  char *a = NULL, *b = NULL, *s;
  if (kid)
    snprintf(kidm, sizeof(kidm), ",\"kid\":\"%s\"", kid);
  if (EVP_PKEY_is_a(k, "RSA")) {
    a = bn_b64(k, OSSL_PKEY_PARAM_RSA_N, 0);
    b = bn_b64(k, OSSL_PKEY_PARAM_RSA_E, 0);
    s = xprintf("{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\"%s%s}", a, b, kidm,
                extra);
  } else if (EVP_PKEY_is_a(k, "EC")) {
    int bits = EVP_PKEY_get_bits(k);
    size_t len = (size_t)(bits + 7) / 8;
    a = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_X, len);
    b = bn_b64(k, OSSL_PKEY_PARAM_EC_PUB_Y, len);
    s = xprintf("{\"kty\":\"EC\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"%s%s}",
                bits == 256   ? "P-256"
                : bits == 384 ? "P-384"
                              : "P-521",
                a, b, kidm, extra);
  } else {
    uint8_t raw[64];
    size_t len = sizeof(raw);
    EVP_PKEY_get_raw_public_key(k, raw, &len);
    a = b64url(raw, len);
    s = xprintf("{\"kty\":\"OKP\",\"crv\":\"%s\",\"x\":\"%s\"%s%s}",
                EVP_PKEY_is_a(k, "ED25519") ? "Ed25519" : "Ed448", a, kidm,
                extra);
  }
  free(a);
  free(b);
  return s;
}

/* A keyset from JWKs given as strings, NULL-terminated; takes them. */
static tg_keyset *ks_of(char *first, ...) {
  va_list ap;
  char *doc = strdup("{\"keys\":["), *k = first;
  va_start(ap, first);
  for (int i = 0; k; k = va_arg(ap, char *), i++) {
    char *d = xprintf("%s%s%s", doc, i ? "," : "", k);
    free(doc);
    free(k);
    doc = d;
  }
  va_end(ap);
  char *d = xprintf("%s]}", doc);
  tg_keyset *ks = tg_keyset_new();
  size_t skipped = 0;
  char err[256];
  tg_keyset_add_jwks(ks, d, strlen(d), &skipped, err, sizeof(err));
  free(doc);
  free(d);
  return ks;
}

static const EVP_MD *alg_md(const char *alg) {
  if (strcmp(alg, "EdDSA") == 0)
    return NULL;
  if (strstr(alg, "384"))
    return EVP_sha384();
  if (strstr(alg, "512"))
    return EVP_sha512();
  return EVP_sha256();
}

/* A JWS signature in its JWS form (ECDSA as r||s). */
static size_t sign(EVP_PKEY *k, const char *alg, const char *in, uint8_t *out) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  uint8_t der[1024];
  size_t len = sizeof(der);
  EVP_DigestSignInit(ctx, &pctx, alg_md(alg), NULL, k);
  if (alg[0] == 'P') {
    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
  }
  if (EVP_DigestSign(ctx, der, &len, (const uint8_t *)in, strlen(in)) != 1)
    len = 0;
  EVP_MD_CTX_free(ctx);
  if (alg[0] != 'E' || alg[1] != 'S') {
    memcpy(out, der, len);
    return len;
  }
  const uint8_t *p = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
  int half = (EVP_PKEY_get_bits(k) + 7) / 8;
  BN_bn2binpad(ECDSA_SIG_get0_r(es), out, half);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), out + half, half);
  ECDSA_SIG_free(es);
  return (size_t)half * 2;
}

/* header.payload.signature; k NULL: empty signature. */
static char *mint(EVP_PKEY *k, const char *alg, const char *header,
                  const char *payload) {
  char *h = b64s(header), *p = b64s(payload);
  char *in = xprintf("%s.%s", h, p), *sig, *tok;
  uint8_t raw[1024];
  size_t n = k ? sign(k, alg, in, raw) : 0;
  sig = b64url(raw, n);
  tok = xprintf("%s.%s", in, sig);
  free(h);
  free(p);
  free(in);
  free(sig);
  return tok;
}

/* A token with a standard header {"alg":alg,"kid":kid} (kid may be NULL). */
static char *mint_std(EVP_PKEY *k, const char *alg, const char *kid,
                      const char *payload) {
  char *h = kid ? xprintf("{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid)
                : xprintf("{\"alg\":\"%s\"}", alg);
  char *t = mint(k, alg, h, payload);
  free(h);
  return t;
}

static const char *last_reason;

/* Verifies and frees tok; returns the code, claims in *c (cleared first when
 * c is NULL). */
static int verify_opts(char *tok, const tg_keyset *ks, const tg_jwt_opts *o,
                       tg_claims *c) {
  tg_claims local;
  tg_claims_init(&local);
  last_reason = NULL;
  int rv =
      tg_jwt_verify(tok, strlen(tok), ks, o, NOW, c ? c : &local, &last_reason);
  tg_claims_clear(&local);
  free(tok);
  return rv;
}

static int verify(char *tok) {
  return verify_opts(tok, std_ks, NULL, NULL);
}

static const char payload_ok[] = "{\"sub\":\"alice\",\"exp\":" EXP "}";

static int accepts(EVP_PKEY *k, const char *alg, const char *kid) {
  tg_claims c;
  tg_claims_init(&c);
  int rv =
      verify_opts(mint_std(k, alg, kid, payload_ok), std_ks, NULL, &c) == 0 &&
      c.subject && strcmp(c.subject, "alice") == 0 && (c.kinds & TG_CRED_JWT) &&
      c.not_after == 1700003600;
  tg_claims_clear(&c);
  return rv;
}

TG_TEST(rs256_accepted) {
  TG_CHECK(accepts(k_rsa, "RS256", "rsa"));
}
TG_TEST(rs384_accepted) {
  TG_CHECK(accepts(k_rsa, "RS384", "rsa"));
}
TG_TEST(rs512_accepted) {
  TG_CHECK(accepts(k_rsa, "RS512", "rsa"));
}
TG_TEST(ps256_ps384_ps512_accepted) {
  TG_CHECK(accepts(k_rsa, "PS256", "rsa"));
  TG_CHECK(accepts(k_rsa, "PS384", "rsa"));
  TG_CHECK(accepts(k_rsa, "PS512", "rsa"));
}
TG_TEST(es256_accepted) {
  TG_CHECK(accepts(k_p256, "ES256", "p256"));
}
TG_TEST(es384_accepted) {
  TG_CHECK(accepts(k_p384, "ES384", "p384"));
}
TG_TEST(es512_accepted) {
  TG_CHECK(accepts(k_p521, "ES512", "p521"));
}
TG_TEST(eddsa_ed25519_and_ed448_accepted) {
  TG_CHECK(accepts(k_ed25519, "EdDSA", "ed25519"));
  TG_CHECK(accepts(k_ed448, "EdDSA", "ed448"));
}

TG_TEST(ps256_with_a_different_salt_length_refused) {
  char *h = b64s("{\"alg\":\"PS256\",\"kid\":\"rsa\"}"), *p = b64s(payload_ok);
  char *in = xprintf("%s.%s", h, p);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_PKEY_CTX *pctx = NULL;
  uint8_t sig[512];
  size_t len = sizeof(sig);
  EVP_DigestSignInit(ctx, &pctx, EVP_sha256(), NULL, k_rsa);
  EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 20);
  EVP_DigestSign(ctx, sig, &len, (const uint8_t *)in, strlen(in));
  EVP_MD_CTX_free(ctx);
  char *s = b64url(sig, len);
  TG_CHECK(verify(xprintf("%s.%s", in, s)) == TG_JWT_ERR_SIGNATURE);
  free(h);
  free(p);
  free(in);
  free(s);
}

/* PSS is randomised: sign until the signature starts with a zero byte, then
 * drop it. OpenSSL would accept the shorter form; JWS wants the full width. */
TG_TEST(rsa_signature_shorter_than_modulus_refused) {
  char *h = b64s("{\"alg\":\"PS256\",\"kid\":\"rsa\"}"), *p = b64s(payload_ok);
  char *in = xprintf("%s.%s", h, p);
  uint8_t sig[512];
  size_t len = 0;
  for (int i = 0; i < 10000; i++) {
    len = sign(k_rsa, "PS256", in, sig);
    if (sig[0] == 0)
      break;
  }
  TG_CHECK(sig[0] == 0);
  char *full = b64url(sig, len), *shorter = b64url(sig + 1, len - 1);
  TG_CHECK(verify(xprintf("%s.%s", in, full)) == 0);
  TG_CHECK(verify(xprintf("%s.%s", in, shorter)) == TG_JWT_ERR_SIGNATURE);
  free(full);
  free(shorter);
  free(h);
  free(p);
  free(in);
}

static int with_typ(const char *typ) {
  char *h = xprintf("{\"alg\":\"ES256\",\"kid\":\"p256\",\"typ\":%s}", typ);
  int rv = verify(mint(k_p256, "ES256", h, payload_ok));
  free(h);
  return rv;
}

TG_TEST(typ_jwt_and_at_jwt_accepted) {
  TG_CHECK(with_typ("\"JWT\"") == 0);
  TG_CHECK(with_typ("\"jwt\"") == 0);
  TG_CHECK(with_typ("\"at+jwt\"") == 0);
  TG_CHECK(with_typ("\"application/at+jwt\"") == 0);
  TG_CHECK(with_typ("\"Application/JWT\"") == 0);
}

TG_TEST(other_typ_refused) {
  TG_CHECK(with_typ("\"JOSE\"") == TG_JWT_ERR_MALFORMED);
  TG_CHECK(with_typ("\"application/json\"") == TG_JWT_ERR_MALFORMED);
  TG_CHECK(with_typ("\"\"") == TG_JWT_ERR_MALFORMED);
  TG_CHECK(with_typ("\"application/\"") == TG_JWT_ERR_MALFORMED);
  TG_CHECK(with_typ("\"JWTX\"") == TG_JWT_ERR_MALFORMED);
  TG_CHECK(with_typ("1") == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "type");
}

TG_TEST(alg_none_refused) {
  TG_CHECK(verify(mint(NULL, "none", "{\"alg\":\"none\",\"kid\":\"rsa\"}",
                       payload_ok)) == TG_JWT_ERR_ALG);
  TG_CHECK_STR_CONTAINS(last_reason, "algorithm not allowed");
  TG_CHECK(verify(mint(NULL, "none", "{\"alg\":\"none\"}", payload_ok)) ==
           TG_JWT_ERR_ALG);
  TG_CHECK(verify(mint(NULL, "none", "{\"alg\":\"None\",\"kid\":\"rsa\"}",
                       payload_ok)) == TG_JWT_ERR_ALG);
}

TG_TEST(missing_alg_refused) {
  TG_CHECK(verify(mint(k_p256, "ES256", "{\"kid\":\"p256\"}", payload_ok)) ==
           TG_JWT_ERR_MALFORMED);
  TG_CHECK(verify(mint(k_p256, "ES256", "{\"alg\":256,\"kid\":\"p256\"}",
                       payload_ok)) == TG_JWT_ERR_MALFORMED);
}

/* The classic confusion: HMAC keyed with the public key's PEM, which a
 * verifier trusting the token's alg would accept. */
TG_TEST(hs256_with_public_key_as_secret_refused) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *pem;
  PEM_write_bio_PUBKEY(bio, k_rsa);
  long pemlen = BIO_get_mem_data(bio, &pem);
  char *h = b64s("{\"alg\":\"HS256\",\"kid\":\"rsa\"}"), *p = b64s(payload_ok);
  char *in = xprintf("%s.%s", h, p);
  uint8_t mac[32];
  size_t maclen = 0;
  EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, (size_t)pemlen,
            (const uint8_t *)in, strlen(in), mac, sizeof(mac), &maclen);
  char *m = b64url(mac, maclen);
  TG_CHECK(verify(xprintf("%s.%s", in, m)) == TG_JWT_ERR_ALG);
  TG_CHECK_STR_CONTAINS(last_reason, "algorithm not allowed");
  free(h);
  free(p);
  free(in);
  free(m);
  BIO_free(bio);
}

TG_TEST(rs256_with_the_kid_of_an_ec_key_refused) {
  TG_CHECK(verify(mint_std(k_rsa, "RS256", "p256", payload_ok)) ==
           TG_JWT_ERR_ALG);
  TG_CHECK_STR_CONTAINS(last_reason, "algorithm does not match key");
  TG_CHECK(verify(mint_std(k_p256, "ES256", "rsa", payload_ok)) ==
           TG_JWT_ERR_ALG);
  TG_CHECK(verify(mint_std(k_ed25519, "EdDSA", "rsa", payload_ok)) ==
           TG_JWT_ERR_ALG);
  TG_CHECK(verify(mint_std(k_rsa, "PS256", "ed25519", payload_ok)) ==
           TG_JWT_ERR_ALG);
}

TG_TEST(es256_against_a_p384_key_refused) {
  TG_CHECK(verify(mint_std(k_p256, "ES256", "p384", payload_ok)) ==
           TG_JWT_ERR_ALG);
  TG_CHECK(verify(mint_std(k_p384, "ES512", "p384", payload_ok)) ==
           TG_JWT_ERR_ALG);
  TG_CHECK(verify(mint_std(k_p521, "ES384", "p521", payload_ok)) ==
           TG_JWT_ERR_ALG);
}

TG_TEST(jwk_alg_must_equal_token_alg) {
  tg_keyset *ks = ks_of(jwk_of(k_rsa, "r", ",\"alg\":\"RS256\""), END);
  TG_CHECK(tg_keyset_count(ks) == 1);
  TG_CHECK(verify_opts(mint_std(k_rsa, "PS256", "r", payload_ok), ks, NULL,
                       NULL) == TG_JWT_ERR_ALG);
  TG_CHECK(verify_opts(mint_std(k_rsa, "RS512", "r", payload_ok), ks, NULL,
                       NULL) == TG_JWT_ERR_ALG);
  TG_CHECK(verify_opts(mint_std(k_rsa, "RS256", "r", payload_ok), ks, NULL,
                       NULL) == 0);
  tg_keyset_unref(ks);
}

static int with_payload(const char *payload, const tg_jwt_opts *o,
                        tg_claims *c) {
  return verify_opts(mint_std(k_p256, "ES256", "p256", payload), std_ks, o, c);
}

TG_TEST(expired_beyond_leeway_refused_within_accepted) {
  tg_jwt_opts o = {.leeway_s = 60};
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1699999939}", &o, NULL) ==
           TG_JWT_ERR_EXPIRED);
  TG_CHECK_STR_CONTAINS(last_reason, "expired");
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1699999940}", &o, NULL) ==
           TG_JWT_ERR_EXPIRED);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1699999941}", &o, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1699999970}", &o, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1700000000}", NULL, NULL) ==
           TG_JWT_ERR_EXPIRED);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1700000001}", NULL, NULL) == 0);
}

TG_TEST(nbf_in_the_future_refused) {
  tg_jwt_opts o = {.leeway_s = 60};
  const char *p = "{\"sub\":\"a\",\"exp\":" EXP ",\"nbf\":1700000061}";
  TG_CHECK(with_payload(p, &o, NULL) == TG_JWT_ERR_NOT_YET);
  TG_CHECK_STR_CONTAINS(last_reason, "not yet valid");
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"nbf\":1700000060}",
                        &o, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"nbf\":1700000001}",
                        NULL, NULL) == TG_JWT_ERR_NOT_YET);
}

TG_TEST(iat_in_the_future_refused) {
  tg_jwt_opts o = {.leeway_s = 60};
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"iat\":1700000100}",
                        &o, NULL) == TG_JWT_ERR_NOT_YET);
  TG_CHECK_STR_CONTAINS(last_reason, "future");
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"iat\":1700000030}",
                        &o, NULL) == 0);
}

TG_TEST(missing_exp_refused_unless_optional) {
  tg_jwt_opts o = {.exp_optional = 1};
  tg_claims c;
  TG_CHECK(with_payload("{\"sub\":\"a\"}", NULL, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "missing exp");
  tg_claims_init(&c);
  TG_CHECK(with_payload("{\"sub\":\"a\"}", &o, &c) == 0);
  TG_CHECK(c.not_after == 0);
  tg_claims_clear(&c);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1}", &o, NULL) ==
           TG_JWT_ERR_EXPIRED);
}

TG_TEST(numeric_dates_must_be_numbers) {
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":\"1700003600\"}", NULL, NULL) ==
           TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "invalid exp");
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":null}", NULL, NULL) ==
           TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":true}", NULL, NULL) ==
           TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"nbf\":\"0\"}", NULL,
                        NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "invalid nbf");
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"iat\":[]}", NULL,
                        NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "invalid iat");
}

TG_TEST(fractional_and_far_future_dates) {
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1700000000.5,\"iat\":"
                        "1699999999.25}",
                        NULL, &c) == 0);
  TG_CHECK(c.not_after == 1700000000);
  tg_claims_clear(&c);
  tg_claims_init(&c);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":99999999999999999999999}", NULL,
                        &c) == 0);
  TG_CHECK(c.not_after == INT64_MAX);
  tg_claims_clear(&c);
  tg_claims_init(&c);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":4102444800}", NULL, &c) == 0);
  TG_CHECK(c.not_after == 4102444800);
  tg_claims_clear(&c);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":1e400}", NULL, NULL) ==
           TG_JWT_ERR_MALFORMED);
}

TG_TEST(issuer_checked_when_set) {
  tg_jwt_opts o = {.issuer = "https://idp.example"};
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"iss\":\"https://idp.example\"}",
                        &o, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"iss\":\"https://idp.example/\"}",
                        &o, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "wrong issuer");
  TG_CHECK(with_payload(payload_ok, &o, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"iss\":[]}", &o,
                        NULL) == TG_JWT_ERR_CLAIMS);
}

TG_TEST(issuer_unchecked_when_null) {
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"iss\":\"https://anyone\"}",
                        NULL, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"iss\":5}", NULL,
                        NULL) == 0);
}

TG_TEST(audience_string_and_array) {
  const char *const auds[] = {"tgate", "temporal"};
  tg_jwt_opts o = {.audiences = auds, .naudiences = 2};
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"aud\":\"temporal\"}",
                        &o, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"aud\":[1,\"x\",\"tgate\"]}",
                        &o, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"aud\":\"other\"}", &o,
                        NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "wrong audience");
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"aud\":[\"other\",\"TGATE\"]}",
                        &o, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"aud\":[]}", &o,
                        NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload(payload_ok, &o, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"aud\":{}}", &o,
                        NULL) == TG_JWT_ERR_CLAIMS);
}

TG_TEST(audience_unchecked_when_unset_or_empty) {
  tg_jwt_opts o = {.audiences = (const char *const[]){"x"}, .naudiences = 0};
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"aud\":\"other\"}",
                        NULL, NULL) == 0);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"aud\":\"other\"}", &o,
                        NULL) == 0);
}

TG_TEST(unknown_kid) {
  TG_CHECK(verify(mint_std(k_p256, "ES256", "nope", payload_ok)) ==
           TG_JWT_ERR_UNKNOWN_KID);
  TG_CHECK_STR_CONTAINS(last_reason, "unknown key id");
  TG_CHECK(verify(mint_std(k_p256, "ES256", "p25", payload_ok)) ==
           TG_JWT_ERR_UNKNOWN_KID);
  TG_CHECK(verify(mint(k_p256, "ES256", "{\"alg\":\"ES256\",\"kid\":7}",
                       payload_ok)) == TG_JWT_ERR_MALFORMED);
}

TG_TEST(no_kid_only_with_exactly_one_key) {
  tg_keyset *one = ks_of(jwk_of(k_p256, NULL, ""), END);
  tg_keyset *two =
      ks_of(jwk_of(k_p256, NULL, ""), jwk_of(k_rsa, NULL, ""), END);
  tg_keyset *none = tg_keyset_new();
  TG_CHECK(tg_keyset_count(one) == 1 && tg_keyset_count(two) == 2);
  TG_CHECK(verify_opts(mint_std(k_p256, "ES256", NULL, payload_ok), one, NULL,
                       NULL) == 0);
  TG_CHECK(verify_opts(mint_std(k_p256, "ES256", NULL, payload_ok), two, NULL,
                       NULL) == TG_JWT_ERR_UNKNOWN_KID);
  TG_CHECK(verify_opts(mint_std(k_p256, "ES256", NULL, payload_ok), none, NULL,
                       NULL) == TG_JWT_ERR_UNKNOWN_KID);
  TG_CHECK(verify_opts(mint_std(k_p256, "ES256", NULL, payload_ok), NULL, NULL,
                       NULL) == TG_JWT_ERR_UNKNOWN_KID);
  TG_CHECK(verify_opts(mint_std(k_p256, "ES256", "p256", payload_ok), one, NULL,
                       NULL) == TG_JWT_ERR_UNKNOWN_KID);
  tg_keyset_unref(one);
  tg_keyset_unref(two);
  tg_keyset_unref(none);
}

TG_TEST(tampered_payload_bad_signature) {
  char *tok = mint_std(k_rsa, "RS256", "rsa", payload_ok);
  char *evil = b64s("{\"sub\":\"admin\",\"exp\":" EXP "}");
  char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
  *d1 = '\0';
  char *forged = xprintf("%s.%s%s", tok, evil, d2);
  TG_CHECK(verify(forged) == TG_JWT_ERR_SIGNATURE);
  TG_CHECK(strcmp(last_reason, "bad signature") == 0);
  *d1 = '.';
  /* One flipped bit of an ECDSA signature. */
  char *t2 = mint_std(k_p256, "ES256", "p256", payload_ok);
  char *last = t2 + strlen(t2) - 3;
  *last = *last == 'A' ? 'B' : 'A';
  TG_CHECK(verify(t2) == TG_JWT_ERR_SIGNATURE);
  free(tok);
  free(evil);
}

TG_TEST(signature_of_wrong_length_refused) {
  char *tok = mint_std(k_p256, "ES256", "p256", payload_ok);
  char *d2 = strrchr(tok, '.');
  /* 64 bytes of signature are 86 characters; 63 bytes are 84. */
  TG_CHECK(strlen(d2 + 1) == 86);
  d2[1 + 84] = '\0';
  d2[1 + 83] = 'A';
  TG_CHECK(verify(tok) == TG_JWT_ERR_SIGNATURE);
  tok = mint_std(k_rsa, "RS256", "rsa", payload_ok);
  d2 = strrchr(tok, '.');
  d2[1] = '\0';
  TG_CHECK(verify(tok) == TG_JWT_ERR_SIGNATURE);
}

TG_TEST(truncated_token) {
  char *tok = mint_std(k_p256, "ES256", "p256", payload_ok);
  char *d2 = strrchr(tok, '.');
  *d2 = '\0';
  TG_CHECK(verify(strdup(tok)) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "malformed");
  tok[20] = '\0';
  TG_CHECK(verify(strdup(tok)) == TG_JWT_ERR_MALFORMED);
  TG_CHECK(verify(strdup("")) == TG_JWT_ERR_MALFORMED);
  TG_CHECK(verify(strdup("..")) == TG_JWT_ERR_MALFORMED);
  TG_CHECK(verify(strdup("a.b.c.d")) == TG_JWT_ERR_MALFORMED);
  free(tok);
}

TG_TEST(oversized_token_refused_before_parsing) {
  size_t n = 17000;
  char *pad = malloc(n + 1);
  memset(pad, 'x', n);
  pad[n] = '\0';
  char *payload =
      xprintf("{\"sub\":\"a\",\"exp\":" EXP ",\"pad\":\"%s\"}", pad);
  char *tok = mint_std(k_p256, "ES256", "p256", payload);
  char *copy = strdup(tok);
  tg_jwt_opts big = {.max_len = 65536};
  TG_CHECK(strlen(tok) > 16384);
  TG_CHECK(verify(tok) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "too large");
  TG_CHECK(verify_opts(copy, std_ks, &big, NULL) == 0);
  /* Size comes first: garbage that is too large is "too large". */
  char *junk = malloc(20001);
  memset(junk, '!', 20000);
  junk[20000] = '\0';
  TG_CHECK(verify(junk) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "too large");
  free(pad);
  free(payload);
}

TG_TEST(bad_base64_refused) {
  char *tok = mint_std(k_rsa, "RS256", "rsa", payload_ok);
  size_t len = strlen(tok);
  char *padded = xprintf("%s=", tok);
  TG_CHECK(verify(padded) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "base64");
  char *plus = strdup(tok);
  plus[3] = '+';
  TG_CHECK(verify(plus) == TG_JWT_ERR_MALFORMED);
  char *slash = strdup(tok);
  slash[strchr(tok, '.') - tok + 2] = '/';
  TG_CHECK(verify(slash) == TG_JWT_ERR_MALFORMED);
  char *space = strdup(tok);
  space[len - 5] = ' ';
  TG_CHECK(verify(space) == TG_JWT_ERR_MALFORMED);
  /* 256 signature bytes end in 2 characters carrying 4 unused bits: set one
   * and the encoding is not canonical. */
  char *loose = strdup(tok);
  TG_CHECK(strlen(strrchr(tok, '.') + 1) == 342);
  static const char a[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  loose[len - 1] = a[(strchr(a, loose[len - 1]) - a) ^ 1];
  TG_CHECK(verify(loose) == TG_JWT_ERR_MALFORMED);
  /* A header whose length leaves one lone character. */
  char *h = b64s("{\"alg\":\"ES256\",\"kid\":\"p256\"}");
  size_t k = (5 - strlen(h) % 4) % 4;
  char *lone =
      xprintf("%s%.*s.%s", h, (int)(k ? k : 4), "AAAA", strchr(tok, '.') + 1);
  TG_CHECK(verify(lone) == TG_JWT_ERR_MALFORMED);
  free(h);
  free(tok);
}

TG_TEST(payload_not_an_object) {
  TG_CHECK(with_payload("[1,2]", NULL, NULL) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "payload");
  TG_CHECK(with_payload("\"sub\"", NULL, NULL) == TG_JWT_ERR_MALFORMED);
  TG_CHECK(with_payload("", NULL, NULL) == TG_JWT_ERR_MALFORMED);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP "} x", NULL, NULL) ==
           TG_JWT_ERR_MALFORMED);
  TG_CHECK(verify(mint(k_p256, "ES256", "[\"ES256\"]", payload_ok)) ==
           TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "header");
}

TG_TEST(duplicate_names_refused) {
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"sub\":\"admin\"}",
                        NULL, NULL) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "duplicate member name");
  TG_CHECK(verify(mint(k_p256, "ES256",
                       "{\"alg\":\"ES256\",\"kid\":\"p256\",\"alg\":\"none\"}",
                       payload_ok)) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "duplicate member name");
}

TG_TEST(subject_must_be_a_string) {
  TG_CHECK(with_payload("{\"exp\":" EXP "}", NULL, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "missing subject");
  TG_CHECK(with_payload("{\"sub\":42,\"exp\":" EXP "}", NULL, NULL) ==
           TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "invalid subject");
  TG_CHECK(with_payload("{\"sub\":null,\"exp\":" EXP "}", NULL, NULL) ==
           TG_JWT_ERR_CLAIMS);
}

TG_TEST(permissions_must_be_an_array) {
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"permissions\":\"default:admin\"}",
                        NULL, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK_STR_CONTAINS(last_reason, "invalid permissions");
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"permissions\":{}}",
                        NULL, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP ",\"permissions\":[]}",
                        NULL, NULL) == 0);
}

TG_TEST(mapped_claims) {
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(with_payload("{\"sub\":\"alice@example\",\"exp\":" EXP
                        ",\"permissions\":[\"default:read\",7,"
                        "\"default:WRITE\",null,\"ns2:worker\","
                        "\"temporal-system:admin\",{\"x\":1},\"nocolon\","
                        "\"ns3:bogus\"]}",
                        NULL, &c) == 0);
  TG_CHECK(c.subject && strcmp(c.subject, "alice@example") == 0);
  TG_CHECK(c.kinds == TG_CRED_JWT);
  TG_CHECK(c.not_after == 1700003600);
  TG_CHECK(tg_claims_ns_role(&c, "default", 7) ==
           (TG_ROLE_READ | TG_ROLE_WRITE));
  TG_CHECK(tg_claims_ns_role(&c, "ns2", 3) == TG_ROLE_WORKER);
  TG_CHECK(tg_claims_ns_role(&c, "ns3", 3) == 0);
  TG_CHECK(c.system == TG_ROLE_ADMIN);
  TG_CHECK(tg_claims_ns_role(&c, "temporal-system", 15) == 0);
  tg_claims_clear(&c);
}

TG_TEST(custom_subject_and_permissions_claims) {
  tg_jwt_opts o = {.subject_claim = "client_id", .permissions_claim = "roles"};
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(with_payload("{\"client_id\":\"svc-1\",\"exp\":" EXP
                        ",\"roles\":[\"billing:admin\"],"
                        "\"permissions\":[\"default:admin\"]}",
                        &o, &c) == 0);
  TG_CHECK(c.subject && strcmp(c.subject, "svc-1") == 0);
  TG_CHECK(tg_claims_ns_role(&c, "billing", 7) == TG_ROLE_ADMIN);
  TG_CHECK(tg_claims_ns_role(&c, "default", 7) == 0);
  tg_claims_clear(&c);
  TG_CHECK(with_payload(payload_ok, &o, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(with_payload("{\"client_id\":\"s\",\"exp\":" EXP ",\"roles\":1}", &o,
                        NULL) == TG_JWT_ERR_CLAIMS);
}

TG_TEST(crit_header_refused) {
  TG_CHECK(verify(mint(k_p256, "ES256",
                       "{\"alg\":\"ES256\",\"kid\":\"p256\",\"crit\":[\"b64\"],"
                       "\"b64\":false}",
                       payload_ok)) == TG_JWT_ERR_MALFORMED);
  TG_CHECK_STR_CONTAINS(last_reason, "crit");
}

TG_TEST(embedded_jwk_header_ignored) {
  /* A token carrying its own key must still verify against the set. */
  char *jwk = jwk_of(k_p384, NULL, "");
  char *h = xprintf("{\"alg\":\"ES384\",\"jwk\":%s}", jwk);
  TG_CHECK(verify(mint(k_p384, "ES384", h, payload_ok)) ==
           TG_JWT_ERR_UNKNOWN_KID);
  free(h);
  free(jwk);
}

TG_TEST(out_unchanged_on_failure_and_merged_on_success) {
  tg_claims c;
  tg_claims_init(&c);
  tg_claims_set_subject(&c, "cert-cn", 7);
  tg_claims_grant(&c, "default", 7, TG_ROLE_READ);
  c.kinds = TG_CRED_CLIENT_CERT;
  c.not_after = 1800000000;
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"permissions\":[\"x:admin\"],\"aud\":\"z\","
                        "\"iss\":\"i\"}",
                        &(tg_jwt_opts){.issuer = "j"},
                        &c) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(strcmp(c.subject, "cert-cn") == 0 && c.nns == 1 &&
           c.kinds == TG_CRED_CLIENT_CERT && c.not_after == 1800000000);
  TG_CHECK(with_payload("{\"sub\":\"a\",\"exp\":" EXP
                        ",\"permissions\":[\"x:admin\",\"default:write\"]}",
                        NULL, &c) == 0);
  TG_CHECK(strcmp(c.subject, "cert-cn") == 0);
  TG_CHECK(c.kinds == (TG_CRED_CLIENT_CERT | TG_CRED_JWT));
  TG_CHECK(c.not_after == 1700003600);
  TG_CHECK(tg_claims_ns_role(&c, "default", 7) ==
           (TG_ROLE_READ | TG_ROLE_WRITE));
  TG_CHECK(tg_claims_ns_role(&c, "x", 1) == TG_ROLE_ADMIN);
  tg_claims_clear(&c);
}

TG_TEST(reasons_never_quote_the_token) {
  const char *p = "{\"sub\":\"SECRETSUB\",\"exp\":\"SECRETEXP\"}";
  TG_CHECK(with_payload(p, NULL, NULL) == TG_JWT_ERR_CLAIMS);
  TG_CHECK(last_reason && !strstr(last_reason, "SECRET"));
  TG_CHECK(verify(strdup("SECRET.SECRET.SECRET")) == TG_JWT_ERR_MALFORMED);
  TG_CHECK(last_reason && !strstr(last_reason, "SECRET"));
}

/* Every allocation of a verification fails in turn: nothing leaks, a bad
 * token is never accepted, and a failure leaves out alone. OpenSSL may
 * survive a failed allocation of its own, so a good token may still pass. */
TG_TEST(out_of_memory_never_accepts_or_leaks) {
#ifdef TG_TEST_MALLOC_HOOK
  hook_arm(1);
  void *volatile probe = malloc(1);
  hook_armed = 0;
  free(probe);
  if (probe) {
    printf("# skipped: malloc is not replaceable here\n");
    return;
  }
  const char *pl = "{\"sub\":\"alice\",\"exp\":" EXP ",\"permissions\":["
                   "\"default:read\",\"temporal-system:admin\",\"b:write\"]}";
  char *toks[] = {mint_std(k_rsa, "RS256", "rsa", pl),
                  mint_std(k_rsa, "PS256", "rsa", pl),
                  mint_std(k_p256, "ES256", "p256", pl),
                  mint_std(k_ed25519, "EdDSA", "ed25519", pl),
                  mint_std(k_p384, "ES384", "p384", pl),
                  mint_std(k_rsa, "RS256", "rsa", pl)};
  const size_t ntoks = sizeof(toks) / sizeof(toks[0]);
  char *bad = toks[ntoks - 2] + strlen(toks[ntoks - 2]) - 3;
  *bad = *bad == 'A' ? 'B' : 'A';
  bad = toks[ntoks - 1] + strlen(toks[ntoks - 1]) - 3;
  *bad = *bad == 'A' ? 'B' : 'A';
  for (size_t i = 0; i < ntoks; i++) {
    int good = i < ntoks - 2;
    /* Once unarmed, so that OpenSSL's lazily built caches exist. */
    TG_CHECK(verify_opts(strdup(toks[i]), std_ks, NULL, NULL) ==
             (good ? 0 : TG_JWT_ERR_SIGNATURE));
    long n;
    for (n = 1; n < 100000; n++) {
      tg_claims c;
      const char *why = NULL;
      tg_claims_init(&c);
      hook_arm(n);
      int rv =
          tg_jwt_verify(toks[i], strlen(toks[i]), std_ks, NULL, NOW, &c, &why);
      int failed = hook_failed;
      int untouched = !c.subject && !c.nns && !c.kinds && !c.not_after;
      tg_claims_clear(&c);
      hook_settle();
      if (hook_live != 0)
        fprintf(stderr, "  token %zu, failing allocation %ld: %ld leaked\n", i,
                n, hook_live);
      TG_CHECK(hook_live == 0);
      TG_CHECK(rv != 0 || good);
      TG_CHECK(rv == 0 || (why && untouched));
      if (!failed) {
        TG_CHECK(rv == (good ? 0 : TG_JWT_ERR_SIGNATURE));
        break;
      }
      /* OpenSSL's own failures read as a bad signature; jansson does not
       * always tell a failed allocation from bad JSON. */
      TG_CHECK(rv == 0 || rv == TG_JWT_ERR_NOMEM ||
               rv == TG_JWT_ERR_SIGNATURE || rv == TG_JWT_ERR_MALFORMED);
    }
    TG_CHECK(n > 1 && n < 100000);
    free(toks[i]);
  }
#endif
}

TG_TEST(looks_like) {
  TG_CHECK(tg_jwt_looks_like("eyJh.eyJz.c2ln", 14));
  TG_CHECK(tg_jwt_looks_like("a.b.", 4));
  TG_CHECK(!tg_jwt_looks_like("a.b", 3));
  TG_CHECK(!tg_jwt_looks_like("a..c", 4));
  TG_CHECK(!tg_jwt_looks_like(".b.c", 4));
  TG_CHECK(!tg_jwt_looks_like("a.b.c.d", 7));
  TG_CHECK(!tg_jwt_looks_like("a.b+.c", 6));
  TG_CHECK(!tg_jwt_looks_like("tgk_live_abcdef", 15));
  TG_CHECK(!tg_jwt_looks_like("", 0));
  char *tok = mint_std(k_p256, "ES256", "p256", payload_ok);
  TG_CHECK(tg_jwt_looks_like(tok, strlen(tok)));
  free(tok);
}

/* ---- parity with Temporal's default JWT ClaimMapper ----
 *
 * Each token below carries the outcome Temporal's defaultJWTClaimMapper
 * (with defaultTokenKeyProvider, golang-jwt v5) gives it, worked out by hand
 * from that code at now = NOW, and tgate's with its configuration defaults
 * (leeway 60 s, exp required, no issuer or audience). Temporal's path:
 *  - parser: the alg must be in SupportedMethods(), RS256 or ES256 (so PS*,
 *    EdDSA, RS384/512, ES384/512 fail); the key function wants a string
 *    "kid" and finds RSA keys by kid for RS*, EC keys for ES* (a JWK's "alg"
 *    is not looked at, nor its size); typ and crit are ignored; base64url
 *    is decoded non-strictly; duplicate JSON members: the last one wins;
 *  - claims: exp and nbf checked with no leeway (0 reads as absent), iat not
 *    checked, iss and aud not checked (no AudienceGetter by default);
 *  - "sub" must be a string; "permissions", if an array, gives roles: each
 *    string split at the first ':' (else skipped), "temporal-system" is the
 *    system scope, strings.ToLower(role) among read/write/worker/admin,
 *    namespaces recorded even with role 0, grants OR-ed.
 * Outcomes are written "sub=S sys=N ns=N ..." (namespaces in byte order),
 * or NULL for refused. Where the two differ, doc names the row of
 * docs/authentication.md that documents the difference. */

enum { PS_STD, PS_ONE, PS_WEAK, PS_JWK_ALG, PS_N };
enum { PO_DEFAULT, PO_ISSUER };
enum { MG_NONE, MG_SIG_BITS };

struct parity_case {
  const char *name;
  EVP_PKEY **key;     /* signs; NULL: empty signature */
  const char *alg;    /* the signature's algorithm */
  const char *header; /* the JOSE header */
  const char *payload;
  size_t pad; /* > 0: a "pad" claim of that many bytes is added */
  int set;    /* PS_*: the keys it is verified against */
  int opts;   /* PO_* */
  int mangle; /* MG_* */
  const char *temporal, *tgate;
  const char *doc; /* the first cell of a row in docs/authentication.md */
};

static EVP_PKEY *k_rsa1024, *k_p256_other;

#define H_RSA(alg) "{\"alg\":\"" alg "\",\"kid\":\"rsa\"}"
#define P_ALICE(extra) "{\"sub\":\"alice\",\"exp\":" EXP extra "}"
#define ALICE "sub=alice sys=0"

#define D_NO_EXP "no `exp`"
#define D_EXP0 "`exp` of `0`"
#define D_IAT "`iat` later than now + `leeway`"
#define D_ISS "`iss` other than the configured issuer"
#define D_TYP "`typ` other than `JWT` / `at+jwt`"
#define D_CRIT "`crit` header"
#define D_PERMS "`permissions` present but not an array"
#define D_DUP "duplicate member names in header or payload"
#define D_B64 "a part whose base64url has nonzero unused bits"
#define D_JWK_ALG "JWK `alg` other than the token's `alg`"
#define D_SIZE "larger than `max_token_size` (16 KiB)"
#define D_WEAK "RSA key shorter than 2048 bits in the JWKS"
#define D_EMPTY_NS "permission with an empty namespace (`:read`)"
#define D_FOLD "role spelled with non-ASCII case folding (`WR\\u0130TE`)"
#define D_PS_ED "`alg` PS256, PS384, PS512 or EdDSA"
#define D_RS_ES "`alg` RS384, RS512, ES384 or ES512"
#define D_LEEWAY "`exp` or `nbf` off by at most `leeway`"
#define D_NO_KID "no `kid`, and the key set holds exactly one key"

static const struct parity_case parity[] = {
    /* Both accept, with the same roles. */
    {"RS256, grants OR-ed", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"permissions\":[\"default:read\",\"default:write\"]"), 0,
     PS_STD, PO_DEFAULT, MG_NONE, ALICE " default=6", ALICE " default=6", NULL},
    {"ES256, system scope", &k_p256, "ES256",
     "{\"alg\":\"ES256\",\"kid\":\"p256\",\"typ\":\"JWT\"}",
     "{\"sub\":\"bob\",\"exp\":" EXP ",\"permissions\":"
     "[\"temporal-system:admin\",\"ns2:worker\"]}",
     0, PS_STD, PO_DEFAULT, MG_NONE, "sub=bob sys=8 ns2=1",
     "sub=bob sys=8 ns2=1", NULL},
    {"role case, unknown roles, odd entries", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"permissions\":[\"default:READ\",7,\"nocolon\",\"ns3:bogus\","
             "\"a:b:c\",null,\"default:Worker\",{\"x\":1},\"b:read:x\"]"),
     0, PS_STD, PO_DEFAULT, MG_NONE, ALICE " a=0 b=0 default=3 ns3=0",
     ALICE " a=0 b=0 default=3 ns3=0", NULL},
    {"the older system name is a namespace", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"permissions\":[\"system:admin\"]"), 0, PS_STD, PO_DEFAULT,
     MG_NONE, ALICE " system=8", ALICE " system=8", NULL},
    {"no permissions claim", &k_rsa, "RS256", H_RSA("RS256"), P_ALICE(""), 0,
     PS_STD, PO_DEFAULT, MG_NONE, ALICE, ALICE, NULL},
    {"empty permissions", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"permissions\":[]"), 0, PS_STD, PO_DEFAULT, MG_NONE, ALICE,
     ALICE, NULL},
    {"aud and iss present, not configured", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"aud\":[\"x\"],\"iss\":\"https://other\""), 0, PS_STD,
     PO_DEFAULT, MG_NONE, ALICE, ALICE, NULL},
    {"fractional exp", &k_rsa, "RS256", H_RSA("RS256"),
     "{\"sub\":\"alice\",\"exp\":1700000000.5}", 0, PS_STD, PO_DEFAULT, MG_NONE,
     ALICE, ALICE, NULL},
    {"exp in 2100", &k_rsa, "RS256", H_RSA("RS256"),
     "{\"sub\":\"alice\",\"exp\":4102444800}", 0, PS_STD, PO_DEFAULT, MG_NONE,
     ALICE, ALICE, NULL},
    {"iat within the leeway ahead", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"iat\":1700000030"), 0, PS_STD, PO_DEFAULT, MG_NONE, ALICE,
     ALICE, NULL},
    /* Both refuse. */
    {"expired beyond the leeway", &k_rsa, "RS256", H_RSA("RS256"),
     "{\"sub\":\"alice\",\"exp\":1699999880}", 0, PS_STD, PO_DEFAULT, MG_NONE,
     NULL, NULL, NULL},
    {"exp a string", &k_rsa, "RS256", H_RSA("RS256"),
     "{\"sub\":\"alice\",\"exp\":\"" EXP "\"}", 0, PS_STD, PO_DEFAULT, MG_NONE,
     NULL, NULL, NULL},
    {"nbf beyond the leeway", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"nbf\":1700003600"), 0, PS_STD, PO_DEFAULT, MG_NONE, NULL, NULL,
     NULL},
    {"no sub", &k_rsa, "RS256", H_RSA("RS256"), "{\"exp\":" EXP "}", 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, NULL, NULL},
    {"sub a number", &k_rsa, "RS256", H_RSA("RS256"),
     "{\"sub\":42,\"exp\":" EXP "}", 0, PS_STD, PO_DEFAULT, MG_NONE, NULL, NULL,
     NULL},
    {"payload not an object", &k_rsa, "RS256", H_RSA("RS256"), "[1]", 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, NULL, NULL},
    {"alg none", NULL, "none", "{\"alg\":\"none\",\"kid\":\"rsa\"}",
     P_ALICE(""), 0, PS_STD, PO_DEFAULT, MG_NONE, NULL, NULL, NULL},
    {"HS256", NULL, "HS256", "{\"alg\":\"HS256\",\"kid\":\"rsa\"}", P_ALICE(""),
     0, PS_STD, PO_DEFAULT, MG_NONE, NULL, NULL, NULL},
    {"RS256 naming the EC key", &k_rsa, "RS256",
     "{\"alg\":\"RS256\",\"kid\":\"p256\"}", P_ALICE(""), 0, PS_STD, PO_DEFAULT,
     MG_NONE, NULL, NULL, NULL},
    {"ES256 naming the P-384 key", &k_p256, "ES256",
     "{\"alg\":\"ES256\",\"kid\":\"p384\"}", P_ALICE(""), 0, PS_STD, PO_DEFAULT,
     MG_NONE, NULL, NULL, NULL},
    {"signed by another key", &k_p256_other, "ES256",
     "{\"alg\":\"ES256\",\"kid\":\"p256\"}", P_ALICE(""), 0, PS_STD, PO_DEFAULT,
     MG_NONE, NULL, NULL, NULL},
    {"unknown kid", &k_rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"nope\"}",
     P_ALICE(""), 0, PS_STD, PO_DEFAULT, MG_NONE, NULL, NULL, NULL},
    /* Temporal accepts, tgate refuses. */
    {"no exp", &k_rsa, "RS256", H_RSA("RS256"), "{\"sub\":\"alice\"}", 0,
     PS_STD, PO_DEFAULT, MG_NONE, ALICE, NULL, D_NO_EXP},
    {"exp 0", &k_rsa, "RS256", H_RSA("RS256"), "{\"sub\":\"alice\",\"exp\":0}",
     0, PS_STD, PO_DEFAULT, MG_NONE, ALICE, NULL, D_EXP0},
    {"iat an hour ahead", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"iat\":1700003600"), 0, PS_STD, PO_DEFAULT, MG_NONE, ALICE,
     NULL, D_IAT},
    {"another issuer", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"iss\":\"https://other\""), 0, PS_STD, PO_ISSUER, MG_NONE,
     ALICE, NULL, D_ISS},
    {"typ JOSE", &k_rsa, "RS256",
     "{\"alg\":\"RS256\",\"kid\":\"rsa\",\"typ\":\"JOSE\"}", P_ALICE(""), 0,
     PS_STD, PO_DEFAULT, MG_NONE, ALICE, NULL, D_TYP},
    {"crit", &k_rsa, "RS256",
     "{\"alg\":\"RS256\",\"kid\":\"rsa\",\"crit\":[\"exp\"]}", P_ALICE(""), 0,
     PS_STD, PO_DEFAULT, MG_NONE, ALICE, NULL, D_CRIT},
    {"permissions a string", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"permissions\":\"default:admin\""), 0, PS_STD, PO_DEFAULT,
     MG_NONE, ALICE, NULL, D_PERMS},
    {"a second sub", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"sub\":\"admin\""), 0, PS_STD, PO_DEFAULT, MG_NONE,
     "sub=admin sys=0", NULL, D_DUP},
    {"a second kid", &k_rsa, "RS256",
     "{\"alg\":\"RS256\",\"kid\":\"rsa\",\"kid\":\"rsa\"}", P_ALICE(""), 0,
     PS_STD, PO_DEFAULT, MG_NONE, ALICE, NULL, D_DUP},
    {"signature with a stray low bit", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(""), 0, PS_STD, PO_DEFAULT, MG_SIG_BITS, ALICE, NULL, D_B64},
    {"JWK alg RS512, token RS256", &k_rsa, "RS256",
     "{\"alg\":\"RS256\",\"kid\":\"rsa-512\"}", P_ALICE(""), 0, PS_JWK_ALG,
     PO_DEFAULT, MG_NONE, ALICE, NULL, D_JWK_ALG},
    {"17 KB token", &k_rsa, "RS256", H_RSA("RS256"), P_ALICE(""), 17000, PS_STD,
     PO_DEFAULT, MG_NONE, ALICE, NULL, D_SIZE},
    {"RSA-1024 key", &k_rsa1024, "RS256",
     "{\"alg\":\"RS256\",\"kid\":\"weak\"}", P_ALICE(""), 0, PS_WEAK,
     PO_DEFAULT, MG_NONE, ALICE, NULL, D_WEAK},
    {"empty namespace", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"permissions\":[\":read\",\"default:read\"]"), 0, PS_STD,
     PO_DEFAULT, MG_NONE, ALICE " =2 default=2", ALICE " default=2",
     D_EMPTY_NS},
    {"dotted capital I", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"permissions\":[\"default:WR\\u0130TE\"]"), 0, PS_STD,
     PO_DEFAULT, MG_NONE, ALICE " default=4", ALICE " default=0", D_FOLD},
    /* tgate accepts, Temporal refuses. */
    {"PS256", &k_rsa, "PS256", H_RSA("PS256"), P_ALICE(""), 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, ALICE, D_PS_ED},
    {"PS384", &k_rsa, "PS384", H_RSA("PS384"), P_ALICE(""), 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, ALICE, D_PS_ED},
    {"PS512", &k_rsa, "PS512", H_RSA("PS512"), P_ALICE(""), 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, ALICE, D_PS_ED},
    {"EdDSA, Ed25519", &k_ed25519, "EdDSA",
     "{\"alg\":\"EdDSA\",\"kid\":\"ed25519\"}", P_ALICE(""), 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, ALICE, D_PS_ED},
    {"EdDSA, Ed448", &k_ed448, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ed448\"}",
     P_ALICE(""), 0, PS_STD, PO_DEFAULT, MG_NONE, NULL, ALICE, D_PS_ED},
    {"RS384", &k_rsa, "RS384", H_RSA("RS384"), P_ALICE(""), 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, ALICE, D_RS_ES},
    {"RS512", &k_rsa, "RS512", H_RSA("RS512"), P_ALICE(""), 0, PS_STD,
     PO_DEFAULT, MG_NONE, NULL, ALICE, D_RS_ES},
    {"ES384", &k_p384, "ES384", "{\"alg\":\"ES384\",\"kid\":\"p384\"}",
     P_ALICE(""), 0, PS_STD, PO_DEFAULT, MG_NONE, NULL, ALICE, D_RS_ES},
    {"ES512", &k_p521, "ES512", "{\"alg\":\"ES512\",\"kid\":\"p521\"}",
     P_ALICE(""), 0, PS_STD, PO_DEFAULT, MG_NONE, NULL, ALICE, D_RS_ES},
    {"expired 30 s ago", &k_rsa, "RS256", H_RSA("RS256"),
     "{\"sub\":\"alice\",\"exp\":1699999970}", 0, PS_STD, PO_DEFAULT, MG_NONE,
     NULL, ALICE, D_LEEWAY},
    {"exp now", &k_rsa, "RS256", H_RSA("RS256"),
     "{\"sub\":\"alice\",\"exp\":1700000000}", 0, PS_STD, PO_DEFAULT, MG_NONE,
     NULL, ALICE, D_LEEWAY},
    {"nbf 30 s ahead", &k_rsa, "RS256", H_RSA("RS256"),
     P_ALICE(",\"nbf\":1700000030"), 0, PS_STD, PO_DEFAULT, MG_NONE, NULL,
     ALICE, D_LEEWAY},
    {"no kid, one key", &k_rsa, "RS256", "{\"alg\":\"RS256\"}", P_ALICE(""), 0,
     PS_ONE, PO_DEFAULT, MG_NONE, NULL, ALICE, D_NO_KID},
};

/* claims as "sub=S sys=N ns=N ...". */
static char *outcome(const tg_claims *c) {
  char *s = xprintf("sub=%s sys=%u", c->subject ? c->subject : "",
                    (unsigned)c->system);
  for (size_t i = 0; s && i < c->nns; i++) {
    char *t = xprintf("%s %s=%u", s, c->ns[i].ns, (unsigned)c->ns[i].role);
    free(s);
    s = t;
  }
  return s;
}

static char *parity_token(const struct parity_case *pc) {
  char *payload = strdup(pc->payload);
  if (pc->pad) {
    char *pad = malloc(pc->pad + 1);
    memset(pad, 'x', pc->pad);
    pad[pc->pad] = '\0';
    payload[strlen(payload) - 1] = '\0';
    char *p = xprintf("%s,\"pad\":\"%s\"}", payload, pad);
    free(payload);
    free(pad);
    payload = p;
  }
  char *tok = mint(pc->key ? *pc->key : NULL, pc->alg, pc->header, payload);
  free(payload);
  if (pc->mangle == MG_SIG_BITS) {
    /* 256 signature bytes end in a character with 4 unused bits. */
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *last = tok + strlen(tok) - 1;
    *last = a[(strchr(a, *last) - a) ^ 1];
  }
  return tok;
}

static char *read_docs(void) {
  static const char *const paths[] = {"docs/authentication.md",
                                      "../docs/authentication.md",
                                      "../../docs/authentication.md"};
  for (size_t i = 0; i < 3; i++) {
    FILE *f = fopen(paths[i], "r");
    if (!f)
      continue;
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
  }
  return NULL;
}

/* The first cells of the rows of the two difference tables. */
static size_t doc_rows(const char *docs, char rows[][160], size_t max) {
  const char *p = strstr(docs, "### Where tgate differs");
  const char *end = p ? strstr(p, "\n## ") : NULL;
  size_t n = 0;
  for (; p && (!end || p < end) && (p = strstr(p, "\n| ")) &&
         (!end || p < end) && n < max;
       p++) {
    const char *cell = p + 3, *bar = strstr(cell, " |");
    if (!bar || (size_t)(bar - cell) >= 160 || strncmp(cell, "token |", 7) == 0)
      continue;
    memcpy(rows[n], cell, (size_t)(bar - cell));
    rows[n++][bar - cell] = '\0';
  }
  return n;
}

TG_TEST(temporal_parity) {
  char *docs = read_docs();
  TG_CHECK(docs != NULL);
  if (!docs)
    return;
  char rows[64][160];
  size_t nrows = doc_rows(docs, rows, 64);
  TG_CHECK(nrows >= 18);
  int used[64] = {0};
  tg_keyset *sets[PS_N] = {
      tg_keyset_ref(std_ks),
      ks_of(jwk_of(k_rsa, "rsa", ""), END),
      ks_of(jwk_of(k_rsa1024, "weak", ""), END),
      ks_of(jwk_of(k_rsa, "rsa-512", ",\"alg\":\"RS512\""), END),
  };
  TG_CHECK(tg_keyset_count(sets[PS_ONE]) == 1);
  TG_CHECK(tg_keyset_count(sets[PS_WEAK]) == 0); /* the one key is skipped */
  TG_CHECK(tg_keyset_count(sets[PS_JWK_ALG]) == 1);
  const tg_jwt_opts opts[] = {
      {.leeway_s = 60},
      {.leeway_s = 60, .issuer = "https://idp.example"},
  };
  for (size_t i = 0; i < sizeof parity / sizeof parity[0]; i++) {
    const struct parity_case *pc = &parity[i];
    tg_claims c;
    tg_claims_init(&c);
    char *tok = parity_token(pc);
    const char *why = NULL;
    int rv = tg_jwt_verify(tok, strlen(tok), sets[pc->set], &opts[pc->opts],
                           NOW, &c, &why);
    char *got = rv == 0 ? outcome(&c) : NULL;
    int as_stated =
        got && pc->tgate ? strcmp(got, pc->tgate) == 0 : !got && !pc->tgate;
    if (!as_stated)
      fprintf(stderr, "  %s: tgate gives %s (%s), the table says %s\n",
              pc->name, got ? got : "refused", why ? why : "-",
              pc->tgate ? pc->tgate : "refused");
    TG_CHECK(as_stated);
    int same = pc->temporal && pc->tgate ? strcmp(pc->temporal, pc->tgate) == 0
                                         : !pc->temporal && !pc->tgate;
    if (same && pc->doc)
      fprintf(stderr, "  %s: no difference, yet documented\n", pc->name);
    TG_CHECK(!same || !pc->doc);
    size_t r = 0;
    while (pc->doc && r < nrows && strcmp(rows[r], pc->doc) != 0)
      r++;
    if (!same && r == nrows)
      fprintf(stderr,
              "  %s: differs from Temporal, but \"%s\" is not a row "
              "of docs/authentication.md\n",
              pc->name, pc->doc ? pc->doc : "(no row named)");
    TG_CHECK(same || (pc->doc && r < nrows));
    if (pc->doc && r < nrows)
      used[r] = 1;
    free(got);
    free(tok);
    tg_claims_clear(&c);
  }
  for (size_t r = 0; r < nrows; r++) {
    if (!used[r])
      fprintf(stderr, "  documented difference without a case: %s\n", rows[r]);
    TG_CHECK(used[r]);
  }
  for (size_t i = 0; i < PS_N; i++)
    tg_keyset_unref(sets[i]);
  free(docs);
}

int main(void) {
  k_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  k_p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  k_p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  k_p521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
  k_ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  k_ed448 = EVP_PKEY_Q_keygen(NULL, NULL, "ED448");
  k_rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
  k_p256_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (!k_rsa || !k_p256 || !k_p384 || !k_p521 || !k_ed25519 || !k_ed448 ||
      !k_rsa1024 || !k_p256_other) {
    fprintf(stderr, "key generation failed\n");
    return 1;
  }
  std_ks = ks_of(jwk_of(k_rsa, "rsa", ""), jwk_of(k_p256, "p256", ""),
                 jwk_of(k_p384, "p384", ""), jwk_of(k_p521, "p521", ""),
                 jwk_of(k_ed25519, "ed25519", ""), jwk_of(k_ed448, "ed448", ""),
                 END);
  if (tg_keyset_count(std_ks) != 6) {
    fprintf(stderr, "keyset has %zu keys\n", tg_keyset_count(std_ks));
    return 1;
  }
  TG_RUN(rs256_accepted);
  TG_RUN(rs384_accepted);
  TG_RUN(rs512_accepted);
  TG_RUN(ps256_ps384_ps512_accepted);
  TG_RUN(es256_accepted);
  TG_RUN(es384_accepted);
  TG_RUN(es512_accepted);
  TG_RUN(eddsa_ed25519_and_ed448_accepted);
  TG_RUN(ps256_with_a_different_salt_length_refused);
  TG_RUN(rsa_signature_shorter_than_modulus_refused);
  TG_RUN(typ_jwt_and_at_jwt_accepted);
  TG_RUN(other_typ_refused);
  TG_RUN(alg_none_refused);
  TG_RUN(missing_alg_refused);
  TG_RUN(hs256_with_public_key_as_secret_refused);
  TG_RUN(rs256_with_the_kid_of_an_ec_key_refused);
  TG_RUN(es256_against_a_p384_key_refused);
  TG_RUN(jwk_alg_must_equal_token_alg);
  TG_RUN(expired_beyond_leeway_refused_within_accepted);
  TG_RUN(nbf_in_the_future_refused);
  TG_RUN(iat_in_the_future_refused);
  TG_RUN(missing_exp_refused_unless_optional);
  TG_RUN(numeric_dates_must_be_numbers);
  TG_RUN(fractional_and_far_future_dates);
  TG_RUN(issuer_checked_when_set);
  TG_RUN(issuer_unchecked_when_null);
  TG_RUN(audience_string_and_array);
  TG_RUN(audience_unchecked_when_unset_or_empty);
  TG_RUN(unknown_kid);
  TG_RUN(no_kid_only_with_exactly_one_key);
  TG_RUN(tampered_payload_bad_signature);
  TG_RUN(signature_of_wrong_length_refused);
  TG_RUN(truncated_token);
  TG_RUN(oversized_token_refused_before_parsing);
  TG_RUN(bad_base64_refused);
  TG_RUN(payload_not_an_object);
  TG_RUN(duplicate_names_refused);
  TG_RUN(subject_must_be_a_string);
  TG_RUN(permissions_must_be_an_array);
  TG_RUN(mapped_claims);
  TG_RUN(custom_subject_and_permissions_claims);
  TG_RUN(crit_header_refused);
  TG_RUN(embedded_jwk_header_ignored);
  TG_RUN(out_unchanged_on_failure_and_merged_on_success);
  TG_RUN(reasons_never_quote_the_token);
  TG_RUN(out_of_memory_never_accepts_or_leaks);
  TG_RUN(looks_like);
  TG_RUN(temporal_parity);
  tg_keyset_unref(std_ks);
  EVP_PKEY_free(k_rsa);
  EVP_PKEY_free(k_p256);
  EVP_PKEY_free(k_p384);
  EVP_PKEY_free(k_p521);
  EVP_PKEY_free(k_ed25519);
  EVP_PKEY_free(k_ed448);
  EVP_PKEY_free(k_rsa1024);
  EVP_PKEY_free(k_p256_other);
  return TG_DONE();
}
