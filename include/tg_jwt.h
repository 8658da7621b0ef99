/*
 * tg_jwt: verification of JWT bearer tokens (JWS compact serialization,
 * RFC 7515/7519) and their mapping to Temporal claims, as Temporal's default
 * JWT ClaimMapper does, made strict.
 *
 * Checks, in order (the first failure is reported):
 *  - size <= opts->max_len (default 16 KiB); three base64url parts (no
 *    padding, no other characters); header and payload are JSON objects
 *    without duplicate member names;
 *  - header: "alg" one of RS256/384/512, PS256/384/512, ES256/384/512,
 *    EdDSA ("none" and HS* are always refused); "typ", when present, is
 *    "JWT" or "at+jwt" (case-insensitive, "application/" prefix allowed);
 *    "crit" is refused;
 *  - key: by "kid"; without a kid only when the set holds exactly one key;
 *    an unknown kid is TG_JWT_ERR_UNKNOWN_KID (the caller may refresh keys);
 *    the algorithm must fit the key: RSA keys verify RS* and PS* only, EC
 *    keys only their curve's ES alg (P-256 ES256, P-384 ES384, P-521
 *    ES512), OKP keys only EdDSA; and equal the JWK's "alg" if it has one;
 *  - signature (OpenSSL EVP; ECDSA's raw r||s is converted to DER);
 *  - claims: "exp" (a number) required unless opts->exp_optional; "exp" >
 *    now - leeway; "nbf" <= now + leeway; "iat" <= now + leeway; "iss" equal
 *    to opts->issuer when set; "aud" (string or array) containing one of
 *    opts->audiences when set; the subject claim (opts->subject_claim,
 *    default "sub") must be a string; the permissions claim
 *    (opts->permissions_claim, default "permissions"), when present, must
 *    be an array (elements that are not strings are skipped, as Temporal
 *    does).
 * On success the claims are added to *out: subject, permissions through
 * tg_perm_apply(), kind TG_CRED_JWT, not_after = exp.
 *
 * Pure: no I/O, no clock (now is a parameter); thread-safe on a shared
 * keyset. Reasons are short static strings that never contain token bytes.
 */
#ifndef TG_JWT_H
#define TG_JWT_H
#include <stddef.h>
#include <stdint.h>

#include "tg_claims.h"
#include "tg_jwks.h"

/* Error codes, each with its reasons:
 * MALFORMED: "malformed token", "token too large", ...
 * UNKNOWN_KID: "unknown key id"
 * ALG: "algorithm not allowed", "algorithm does not match key"
 * SIGNATURE: "bad signature"; EXPIRED: "token expired";
 * NOT_YET: "token not yet valid"
 * CLAIMS: "wrong issuer", "wrong audience", "missing exp", ... */
#define TG_JWT_ERR_MALFORMED -1
#define TG_JWT_ERR_UNKNOWN_KID -2
#define TG_JWT_ERR_ALG -3
#define TG_JWT_ERR_SIGNATURE -4
#define TG_JWT_ERR_EXPIRED -5
#define TG_JWT_ERR_NOT_YET -6
#define TG_JWT_ERR_CLAIMS -7
#define TG_JWT_ERR_NOMEM -8

typedef struct tg_jwt_opts {
  size_t max_len;               /* 0: 16384 */
  int64_t leeway_s;             /* for exp, nbf, iat */
  int exp_optional;             /* 0: exp required */
  const char *issuer;           /* NULL: not checked */
  const char *const *audiences; /* any one must be in "aud"; NULL or
                                   naudiences 0: not checked */
  size_t naudiences;
  const char *subject_claim;     /* NULL: "sub" */
  const char *permissions_claim; /* NULL: "permissions" */
  const tg_perm_opts *perm;      /* NULL: Temporal defaults */
} tg_jwt_opts;

/* Verifies token (len bytes, without the "Bearer " prefix) at time now (unix
 * seconds). Returns 0 and adds to *out, or a TG_JWT_ERR_* with *reason set
 * (out is then unchanged). */
int tg_jwt_verify(const char *token, size_t len, const tg_keyset *ks,
                  const tg_jwt_opts *opts, int64_t now, tg_claims *out,
                  const char **reason);

/* Does s look like a JWS compact token (two dots, base64url characters)?
 * Used to tell JWTs from API keys in the same header. */
int tg_jwt_looks_like(const char *s, size_t len);
#endif
