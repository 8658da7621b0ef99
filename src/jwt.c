/*
 * tg_jwt: JWS compact verification and claim mapping (see include/tg_jwt.h).
 *
 * The key is chosen by the set, never by the token: "jwk", "jku", "x5u" and
 * "x5c" headers are ignored, and the alg must fit the chosen key, which is
 * what stops algorithm confusion (HS256 with a public key as secret, RS256
 * against an EC key).
 */
#include "tg_jwt.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tg_b64.h"

#define JWT_DEFAULT_MAX_LEN 16384
/* DER of an ECDSA signature on P-521: two 67-byte INTEGERs in a SEQUENCE. */
#define JWT_ECDSA_DER_MAX 160

typedef enum jwt_kind { JWT_RS, JWT_PS, JWT_ES, JWT_ED } jwt_kind;

typedef struct jwt_alg {
  const char *name;
  const EVP_MD *(*md)(void); /* NULL for EdDSA, which hashes internally */
  size_t half;               /* ES: bytes of r, and of s */
  jwt_kind kind;
  int curve_nid; /* ES: the one curve it verifies on */
} jwt_alg;

static const jwt_alg jwt_algs[] = {
    {"RS256", EVP_sha256, 0, JWT_RS, 0},
    {"RS384", EVP_sha384, 0, JWT_RS, 0},
    {"RS512", EVP_sha512, 0, JWT_RS, 0},
    {"PS256", EVP_sha256, 0, JWT_PS, 0},
    {"PS384", EVP_sha384, 0, JWT_PS, 0},
    {"PS512", EVP_sha512, 0, JWT_PS, 0},
    {"ES256", EVP_sha256, 32, JWT_ES, NID_X9_62_prime256v1},
    {"ES384", EVP_sha384, 48, JWT_ES, NID_secp384r1},
    {"ES512", EVP_sha512, 66, JWT_ES, NID_secp521r1},
    {"EdDSA", NULL, 0, JWT_ED, 0},
};

typedef struct jwt_token {
  const char *signing_input; /* "header.payload" as received */
  size_t signing_len;
  uint8_t *buf; /* the decoded parts, back to back */
  const uint8_t *sig;
  size_t siglen;
  json_t *header, *claims;
} jwt_token;

static void token_clear(jwt_token *t) {
  json_decref(t->claims);
  json_decref(t->header);
  free(t->buf);
}

/* jansson reports running out of memory as a parse error, with a code when
 * it can tell. */
static int json_failure(const json_error_t *e, const char *malformed,
                        const char **why) {
  if (json_error_code(e) == json_error_out_of_memory) {
    *why = "out of memory";
    return TG_JWT_ERR_NOMEM;
  }
  /* Temporal (Go's encoding/json) would take the last of the two. */
  *why = json_error_code(e) == json_error_duplicate_key
             ? "malformed token: duplicate member name"
             : malformed;
  return TG_JWT_ERR_MALFORMED;
}

/* Splits and decodes the three parts; parses header and claims. */
static int token_parse(const char *s, size_t len, size_t max_len, jwt_token *t,
                       const char **why) {
  const char *part[3];
  size_t plen[3], dlen[3], off = 0, start = 0, n = 0;
  json_error_t jerr;
  if (len > max_len) {
    *why = "token too large";
    return TG_JWT_ERR_MALFORMED;
  }
  for (size_t i = 0; i <= len; i++) {
    if (i < len && s[i] != '.')
      continue;
    if (n == 3) {
      *why = "malformed token";
      return TG_JWT_ERR_MALFORMED;
    }
    part[n] = s + start;
    plen[n++] = i - start;
    start = i + 1;
  }
  if (n != 3) {
    *why = "malformed token";
    return TG_JWT_ERR_MALFORMED;
  }
  if (!(t->buf = malloc(len))) {
    *why = "out of memory";
    return TG_JWT_ERR_NOMEM;
  }
  for (size_t i = 0; i < 3; i++) {
    if (tg_b64url_decode(part[i], plen[i], t->buf + off, &dlen[i]) != 0) {
      *why = "malformed token: bad base64url";
      return TG_JWT_ERR_MALFORMED;
    }
    off += dlen[i];
  }
  t->signing_input = s;
  t->signing_len = plen[0] + 1 + plen[1];
  t->sig = t->buf + dlen[0] + dlen[1];
  t->siglen = dlen[2];
  t->header =
      json_loadb((const char *)t->buf, dlen[0], JSON_REJECT_DUPLICATES, &jerr);
  if (!t->header)
    return json_failure(&jerr, "malformed token: header is not JSON", why);
  /* Integers as reals: a NumericDate beyond int64 (a token that "never"
   * expires) still parses, and fractional dates are allowed anyway. */
  t->claims =
      json_loadb((const char *)t->buf + dlen[0], dlen[1],
                 JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
  if (!t->claims)
    return json_failure(&jerr, "malformed token: payload is not JSON", why);
  if (!json_is_object(t->header) || !json_is_object(t->claims)) {
    *why = json_is_object(t->header)
               ? "malformed token: payload is not a JSON object"
               : "malformed token: header is not a JSON object";
    return TG_JWT_ERR_MALFORMED;
  }
  return 0;
}

/* "JWT" or "at+jwt" (RFC 9068), case-insensitive, "application/" allowed. */
static int typ_ok(const char *s, size_t len) {
  static const char prefix[] = "application/";
  if (len >= sizeof(prefix) - 1 &&
      strncasecmp(s, prefix, sizeof(prefix) - 1) == 0) {
    s += sizeof(prefix) - 1;
    len -= sizeof(prefix) - 1;
  }
  return (len == 3 && strncasecmp(s, "JWT", 3) == 0) ||
         (len == 6 && strncasecmp(s, "at+jwt", 6) == 0);
}

static int check_header(json_t *h, const jwt_alg **alg, const char **why) {
  json_t *a = json_object_get(h, "alg"), *typ = json_object_get(h, "typ");
  if (!json_is_string(a)) {
    *why = "malformed token: missing alg";
    return TG_JWT_ERR_MALFORMED;
  }
  *alg = NULL;
  for (size_t i = 0; i < sizeof(jwt_algs) / sizeof(jwt_algs[0]); i++)
    if (strcmp(json_string_value(a), jwt_algs[i].name) == 0)
      *alg = &jwt_algs[i];
  if (!*alg) {
    *why = "algorithm not allowed";
    return TG_JWT_ERR_ALG;
  }
  if (typ && !(json_is_string(typ) &&
               typ_ok(json_string_value(typ), json_string_length(typ)))) {
    *why = "unsupported token type";
    return TG_JWT_ERR_MALFORMED;
  }
  if (json_object_get(h, "crit")) {
    *why = "unsupported critical header";
    return TG_JWT_ERR_MALFORMED;
  }
  return 0;
}

static int select_key(json_t *h, const tg_keyset *ks, const jwt_alg *alg,
                      const tg_jwk **key, const char **why) {
  json_t *kid = json_object_get(h, "kid");
  const tg_jwk *k;
  int fits = 0;
  if (kid && !json_is_string(kid)) {
    *why = "malformed token: kid is not a string";
    return TG_JWT_ERR_MALFORMED;
  }
  if (kid) {
    k = tg_keyset_find(ks, json_string_value(kid), json_string_length(kid));
  } else if (tg_keyset_count(ks) == 1) {
    k = tg_keyset_get(ks, 0);
  } else {
    *why =
        tg_keyset_count(ks) ? "no key id and several keys" : "unknown key id";
    return TG_JWT_ERR_UNKNOWN_KID;
  }
  if (!k) {
    *why = "unknown key id";
    return TG_JWT_ERR_UNKNOWN_KID;
  }
  switch (alg->kind) {
  case JWT_RS:
  case JWT_PS:
    fits = k->type == TG_JWK_RSA;
    break;
  case JWT_ES:
    fits = k->type == TG_JWK_EC && k->curve_nid == alg->curve_nid;
    break;
  case JWT_ED:
    fits = k->type == TG_JWK_OKP;
    break;
  }
  if (!fits || (k->alg && strcmp(k->alg, alg->name) != 0)) {
    *why = "algorithm does not match key";
    return TG_JWT_ERR_ALG;
  }
  *key = k;
  return 0;
}

/* JWS carries ECDSA as fixed-width r||s; OpenSSL wants DER. 0, or -1 with
 * *nomem set when an allocation failed. */
static int ecdsa_der(const uint8_t *rs, size_t half, uint8_t *der,
                     size_t *derlen, int *nomem) {
  ECDSA_SIG *es = ECDSA_SIG_new();
  BIGNUM *r = BN_bin2bn(rs, (int)half, NULL);
  BIGNUM *s = BN_bin2bn(rs + half, (int)half, NULL);
  unsigned char *p = der;
  int len, rv = -1;
  if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    *nomem = 1;
    goto end;
  }
  len = i2d_ECDSA_SIG(es, NULL);
  if (len <= 0 || len > JWT_ECDSA_DER_MAX)
    goto end;
  *derlen = (size_t)i2d_ECDSA_SIG(es, &p);
  rv = 0;
end:
  ECDSA_SIG_free(es);
  return rv;
}

static int check_signature(const jwt_token *t, const jwt_alg *alg,
                           EVP_PKEY *pkey, const char **why) {
  uint8_t der[JWT_ECDSA_DER_MAX];
  const uint8_t *sig = t->sig;
  size_t siglen = t->siglen;
  const EVP_MD *md = alg->md ? alg->md() : NULL;
  EVP_MD_CTX *mctx = NULL;
  EVP_PKEY_CTX *pctx = NULL;
  int nomem = 0, ok = 0;
  ERR_set_mark();
  /* Exact lengths: RSA and EdDSA signatures are as long as the key's size
   * (no leading zeros dropped), ECDSA's r and s are fixed-width. */
  if (alg->kind == JWT_ES) {
    if (siglen != 2 * alg->half ||
        ecdsa_der(sig, alg->half, der, &siglen, &nomem) != 0)
      goto end;
    sig = der;
  } else if (siglen != (size_t)EVP_PKEY_get_size(pkey)) {
    goto end;
  }
  if (!(mctx = EVP_MD_CTX_new())) {
    nomem = 1;
    goto end;
  }
  if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey) != 1)
    goto end;
  if (alg->kind == JWT_PS &&
      (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
       EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
       EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0))
    goto end;
  ok = EVP_DigestVerify(mctx, sig, siglen,
                        (const unsigned char *)t->signing_input,
                        t->signing_len) == 1;
end:
  EVP_MD_CTX_free(mctx);
  ERR_pop_to_mark();
  if (ok)
    return 0;
  *why = nomem ? "out of memory" : "bad signature";
  return nomem ? TG_JWT_ERR_NOMEM : TG_JWT_ERR_SIGNATURE;
}

/* A NumericDate claim: 1 (in *out), 0 when absent, -1 when not a number. */
static int numeric_date(json_t *claims, const char *name, double *out) {
  json_t *v = json_object_get(claims, name);
  if (!v)
    return 0;
  if (!json_is_number(v))
    return -1;
  *out = json_number_value(v);
  return 1;
}

static int audience_ok(json_t *aud, const tg_jwt_opts *o) {
  size_t i;
  json_t *v;
  if (json_is_string(aud)) {
    for (size_t j = 0; j < o->naudiences; j++)
      if (strcmp(json_string_value(aud), o->audiences[j]) == 0)
        return 1;
    return 0;
  }
  if (!json_is_array(aud))
    return 0;
  json_array_foreach(aud, i, v) {
    if (json_is_string(v) && audience_ok(v, o))
      return 1;
  }
  return 0;
}

/* Checks the claims; *has_exp tells whether "exp" is present, in *exp. */
static int check_claims(json_t *c, const tg_jwt_opts *o, int64_t now,
                        int *has_exp, double *exp, const char **why) {
  int64_t leeway = o->leeway_s > 0 ? o->leeway_s : 0;
  double lo = (double)now - (double)leeway, hi = (double)now + (double)leeway;
  double t;
  json_t *v;
  int has;
  if ((has = numeric_date(c, "exp", exp)) < 0) {
    *why = "invalid exp";
    return TG_JWT_ERR_CLAIMS;
  }
  if (!has && !o->exp_optional) {
    *why = "missing exp";
    return TG_JWT_ERR_CLAIMS;
  }
  *has_exp = has;
  if (has && !(*exp > lo)) {
    *why = "token expired";
    return TG_JWT_ERR_EXPIRED;
  }
  if ((has = numeric_date(c, "nbf", &t)) < 0) {
    *why = "invalid nbf";
    return TG_JWT_ERR_CLAIMS;
  }
  if (has && t > hi) {
    *why = "token not yet valid";
    return TG_JWT_ERR_NOT_YET;
  }
  if ((has = numeric_date(c, "iat", &t)) < 0) {
    *why = "invalid iat";
    return TG_JWT_ERR_CLAIMS;
  }
  if (has && t > hi) {
    *why = "token issued in the future";
    return TG_JWT_ERR_NOT_YET;
  }
  v = json_object_get(c, "iss");
  if (o->issuer &&
      !(json_is_string(v) && strcmp(json_string_value(v), o->issuer) == 0)) {
    *why = "wrong issuer";
    return TG_JWT_ERR_CLAIMS;
  }
  if (o->audiences && o->naudiences &&
      !audience_ok(json_object_get(c, "aud"), o)) {
    *why = "wrong audience";
    return TG_JWT_ERR_CLAIMS;
  }
  v = json_object_get(c, o->subject_claim ? o->subject_claim : "sub");
  if (!json_is_string(v)) {
    *why = v ? "invalid subject" : "missing subject";
    return TG_JWT_ERR_CLAIMS;
  }
  v = json_object_get(c, o->permissions_claim ? o->permissions_claim
                                              : "permissions");
  if (v && !json_is_array(v)) {
    *why = "invalid permissions";
    return TG_JWT_ERR_CLAIMS;
  }
  return 0;
}

/* exp as not_after: whole seconds, rounded down (the token is void from
 * exp on), at least 1 since 0 means "no expiry". */
static int64_t exp_seconds(double exp) {
  if (exp < 1)
    return 1;
  if (exp >= 9223372036854775807.0)
    return INT64_MAX;
  return (int64_t)exp;
}

/* Adds the checked claims to a copy of *out, which replaces it only once
 * everything succeeded, so that out is unchanged on any failure. */
static int map_claims(json_t *c, const tg_jwt_opts *o, int has_exp, double exp,
                      tg_claims *out, const char **why) {
  json_t *sub = json_object_get(c, o->subject_claim ? o->subject_claim : "sub");
  json_t *perms = json_object_get(c, o->permissions_claim ? o->permissions_claim
                                                          : "permissions");
  json_t *p;
  size_t i;
  tg_claims tmp;
  tg_claims_init(&tmp);
  if (tg_claims_copy(&tmp, out) != 0 ||
      tg_claims_set_subject(&tmp, json_string_value(sub),
                            json_string_length(sub)) != 0)
    goto nomem;
  json_array_foreach(perms, i, p) {
    if (json_is_string(p) && tg_perm_apply(&tmp, json_string_value(p),
                                           json_string_length(p), o->perm) < 0)
      goto nomem;
  }
  tmp.kinds |= TG_CRED_JWT;
  if (has_exp) {
    int64_t na = exp_seconds(exp);
    if (tmp.not_after == 0 || na < tmp.not_after)
      tmp.not_after = na;
  }
  tg_claims_clear(out);
  *out = tmp;
  return 0;
nomem:
  tg_claims_clear(&tmp);
  *why = "out of memory";
  return TG_JWT_ERR_NOMEM;
}

int tg_jwt_verify(const char *token, size_t len, const tg_keyset *ks,
                  const tg_jwt_opts *opts, int64_t now, tg_claims *out,
                  const char **reason) {
  static const tg_jwt_opts defaults;
  const tg_jwt_opts *o = opts ? opts : &defaults;
  jwt_token t = {0};
  const jwt_alg *alg = NULL;
  const tg_jwk *key = NULL;
  const char *why = NULL;
  double exp = 0;
  int has_exp = 0, rv;
  rv = token_parse(token, len, o->max_len ? o->max_len : JWT_DEFAULT_MAX_LEN,
                   &t, &why);
  if (rv == 0)
    rv = check_header(t.header, &alg, &why);
  if (rv == 0)
    rv = select_key(t.header, ks, alg, &key, &why);
  if (rv == 0)
    rv = check_signature(&t, alg, key->pkey, &why);
  if (rv == 0)
    rv = check_claims(t.claims, o, now, &has_exp, &exp, &why);
  if (rv == 0)
    rv = map_claims(t.claims, o, has_exp, exp, out, &why);
  token_clear(&t);
  if (rv != 0 && reason)
    *reason = why;
  return rv;
}

int tg_jwt_looks_like(const char *s, size_t len) {
  size_t dots = 0, seg = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '.') {
      if (seg == 0 && dots < 2)
        return 0;
      dots++;
      seg = 0;
    } else if (tg_b64url_val((unsigned char)s[i]) < 0) {
      return 0;
    } else {
      seg++;
    }
  }
  return dots == 2;
}
