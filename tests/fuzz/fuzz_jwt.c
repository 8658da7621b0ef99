/* libFuzzer harness: JWT verification. Verifies the input as a token
 * against a fixed keyset (one P-256 and one RSA-2048 key, whose private
 * halves signed the seed tokens in corpus/fuzz_jwt and were then thrown
 * away), twice: with issuer, audience and exp required, and with exp
 * optional and custom subject/permissions claims. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tg_jwt.h"

#define FUZZ_NOW 1700000000

static const char fuzz_jwks[] =
    "{\"keys\":["
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"fuzz-ec\","
    "\"alg\":\"ES256\",\"use\":\"sig\","
    "\"x\":\"j-BhsK_9O8gFLsNrP8ctl9k75N2PPPGBSgzNwDFAQco\","
    "\"y\":\"J2DqdFw4X72pYnQGNTfgV2YowW_F-buzQX6s55Qxsq0\"},"
    "{\"kty\":\"RSA\",\"kid\":\"fuzz-rsa\",\"use\":\"sig\",\"e\":\"AQAB\","
    "\"n\":\""
    "rzERviQmCa-XYvgO9NdzX3c853pYcsf0gQi-vhwp2aOKIWzleIE2g7ToYlTj"
    "5aM5KjRwcO2JnP3TwBdIMMZM7MUFMDD-hSycQVW2omywgkjR9yz58VjcYk9H"
    "za4kgGFELlwRNPWlqRldBmeLbnv-hb-pgKVo0hQtYM88hJtGLIv-NFu9CJO5"
    "PXqxYlb29m0yUeZF2R37MkD_LgC9CH-OkSwCRx4317kk9jvvQW7mZ8TYI63B"
    "b_Nif4KjeuETOmYWf4W8Kh3m36qJYytC4wik0lX0BCNCNAZH2HwSw8XMKbJQ"
    "Pfad_mT3sO9F0Ds-ofzuySNDYOnDsegC6PGSCmQGlw"
    "\"}]}";

static const tg_keyset *fuzz_keyset(void) {
  static tg_keyset *ks;
  if (!ks) {
    size_t skipped = 0;
    ks = tg_keyset_new();
    if (!ks || tg_keyset_add_jwks(ks, fuzz_jwks, sizeof(fuzz_jwks) - 1,
                                  &skipped, NULL, 0) != 2)
      abort();
  }
  return ks;
}

static void check(const uint8_t *data, size_t size, const tg_jwt_opts *o) {
  tg_claims c;
  const char *reason = NULL;
  tg_claims_init(&c);
  int rv = tg_jwt_verify((const char *)data, size, fuzz_keyset(), o, FUZZ_NOW,
                         &c, &reason);
  if (rv == 0 && (!c.subject || !(c.kinds & TG_CRED_JWT)))
    abort();
  if (rv != 0 && (rv < TG_JWT_ERR_NOMEM || rv > TG_JWT_ERR_MALFORMED ||
                  !reason || c.subject || c.kinds || c.nns || c.not_after))
    abort();
  tg_claims_clear(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const auds[] = {"tgate"};
  const tg_jwt_opts strict = {.leeway_s = 60,
                              .issuer = "https://issuer.example",
                              .audiences = auds,
                              .naudiences = 1};
  const tg_jwt_opts loose = {.leeway_s = 60,
                             .exp_optional = 1,
                             .subject_claim = "client_id",
                             .permissions_claim = "roles"};
  tg_jwt_looks_like((const char *)data, size);
  check(data, size, &strict);
  check(data, size, &loose);
  return 0;
}
