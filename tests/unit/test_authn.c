/* Unit tests for tg_authn_call: the Bearer header as Temporal reads it,
 * token_header, exempt methods, and JWT verification through the worker's
 * cache (tokens minted here, verified against a pem: key source). */
#include "tg_authn.h"
#include "tg_test.h"
#include "tg_testutil.h"

#include <event2/event.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tg_log.h"

#define NOW 1700000000
#define SYSINFO "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo"
#define HEALTH "/grpc.health.v1.Health/Check"

static char dir[] = "/tmp/tgate-test-authn-XXXXXX";
static char *pem_path, *keys_path;
static EVP_PKEY *key;
static struct event_base *base;

/* An ES256 token with kid "k1" for payload. */
static char *mint(const char *payload) {
  const char *header = "{\"alg\":\"ES256\",\"kid\":\"k1\"}";
  char *h = b64url((const uint8_t *)header, strlen(header));
  char *p = b64url((const uint8_t *)payload, strlen(payload));
  char *in = xprintf("%s.%s", h, p);
  uint8_t der[128], rs[64];
  size_t len = sizeof der;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key);
  EVP_DigestSign(ctx, der, &len, (const uint8_t *)in, strlen(in));
  EVP_MD_CTX_free(ctx);
  const uint8_t *d = der;
  ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &d, (long)len);
  BN_bn2binpad(ECDSA_SIG_get0_r(es), rs, 32);
  BN_bn2binpad(ECDSA_SIG_get0_s(es), rs + 32, 32);
  ECDSA_SIG_free(es);
  char *s = b64url(rs, sizeof rs);
  char *tok = xprintf("%s.%s", in, s);
  free(h);
  free(p);
  free(in);
  free(s);
  return tok;
}

/* One gateway built from an authentication section. */
typedef struct gw {
  tg_config *cfg;
  tg_keystore *ks;
  tg_authn *a;
  tg_authn_local *l;
  tg_authn_counters n;
} gw;

static int gw_open(gw *g, const char *authn_yaml) {
  memset(g, 0, sizeof *g);
  char *yaml = xprintf("listen: {address: \"127.0.0.1:1\"}\n"
                       "upstream: {addresses: [\"127.0.0.1:2\"]}\n"
                       "authentication:\n%s",
                       authn_yaml);
  char *errors = NULL, err[512] = "";
  int rc = tg_config_parse(yaml, strlen(yaml), "test.yaml", &g->cfg, &errors);
  free(yaml);
  if (rc != 0) {
    fprintf(stderr, "  config: %s", errors ? errors : "?\n");
    free(errors);
    return -1;
  }
  if (g->cfg->authn->jwt && !(g->ks = tg_keystore_new(base, g->cfg->authn->jwt,
                                                      NULL, err, sizeof err))) {
    fprintf(stderr, "  keystore: %s\n", err);
    return -1;
  }
  if (!(g->a = tg_authn_new(g->cfg, g->ks, err, sizeof err))) {
    fprintf(stderr, "  authn: %s\n", err);
    return -1;
  }
  g->l = tg_authn_local_new(g->a, &g->n);
  return g->l ? 0 : -1;
}

static void gw_close(gw *g) {
  tg_authn_local_free(g->l);
  tg_authn_free(g->a);
  tg_keystore_free(g->ks);
  tg_config_free(g->cfg);
}

static const char *last_reason;
static tg_claims last;

/* Authenticates a call with the given header fields (name, value pairs,
 * NULL-terminated) on path; the claims land in last. */
static int call(gw *g, const char *path, ...) {
  tg_hdrs h;
  va_list ap;
  tg_hdrs_init(&h);
  tg_hdrs_add_str(&h, ":path", path);
  va_start(ap, path);
  for (const char *name; (name = va_arg(ap, const char *)) != NULL;)
    tg_hdrs_add_str(&h, name, va_arg(ap, const char *));
  va_end(ap);
  tg_claims_clear(&last);
  tg_claims_init(&last);
  last_reason = NULL;
  int rv = tg_authn_call(g->a, g->l, &h, NULL, NULL, NOW, &last, &last_reason);
  tg_hdrs_clear(&h);
  return rv;
}

static char *jwt_yaml(const char *require, const char *extra) {
  return xprintf("  require: %s\n%s"
                 "  jwt:\n"
                 "    key_sources: [\"pem:%s#k1\"]\n",
                 require, extra, pem_path);
}

static const char payload_ok[] =
    "{\"sub\":\"alice\",\"exp\":1700003600,\"permissions\":[\"default:read\"]}";

TG_TEST(bearer_scheme_is_case_insensitive) {
  gw g;
  char *y = jwt_yaml("[jwt]", "");
  char *tok = mint(payload_ok);
  const char *schemes[] = {"Bearer", "bearer", "BEARER", "bEaReR"};
  if (gw_open(&g, y) == 0) {
    for (size_t i = 0; i < 4; i++) {
      char *v = xprintf("%s %s", schemes[i], tok);
      TG_CHECK(call(&g, "/x/Y", "authorization", v, NULL) == TG_AUTHN_OK);
      TG_CHECK(last.subject && strcmp(last.subject, "alice") == 0);
      TG_CHECK(tg_claims_ns_role(&last, "default", 7) == TG_ROLE_READ);
      free(v);
    }
  } else {
    TG_CHECK(0);
  }
  gw_close(&g);
  free(tok);
  free(y);
}

TG_TEST(two_spaces_or_a_tab_or_other_schemes_refused) {
  gw g;
  char *keys = xprintf("  api_keys_file: \"%s\"\n", keys_path);
  char *y = jwt_yaml("[]", keys);
  char *tok = mint(payload_ok);
  char *two = xprintf("Bearer  %s", tok), *tab = xprintf("Bearer\t%s", tok);
  char *trail = xprintf("Bearer %s ", tok), *basic = xprintf("Basic %s", tok);
  char *inner = xprintf("Bearer %.10s %s", tok, tok + 10);
  if (gw_open(&g, y) == 0) {
    const char *bad[] = {two,
                         tab,
                         trail,
                         basic,
                         inner,
                         "Bearer",
                         "Bearer  tgk_key",
                         "Bearertgk_key"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
      TG_CHECK(call(&g, "/x/Y", "authorization", bad[i], NULL) ==
               TG_AUTHN_UNAUTHENTICATED);
      TG_CHECK_STR_CONTAINS(last_reason, "\"Bearer <token>\"");
      TG_CHECK(!last.subject && !last.kinds);
    }
    TG_CHECK(call(&g, "/x/Y", "authorization", "Bearer ", NULL) ==
             TG_AUTHN_UNAUTHENTICATED);
    TG_CHECK_STR_CONTAINS(last_reason, "empty bearer token");
  } else {
    TG_CHECK(0);
  }
  gw_close(&g);
  free(tok);
  free(two);
  free(tab);
  free(trail);
  free(basic);
  free(inner);
  free(keys);
  free(y);
}

TG_TEST(empty_header_means_no_token) {
  gw opt, req;
  char *y1 = jwt_yaml("[]", ""), *y2 = jwt_yaml("[jwt]", "");
  if (gw_open(&opt, y1) == 0 && gw_open(&req, y2) == 0) {
    TG_CHECK(call(&opt, "/x/Y", "authorization", "", NULL) == TG_AUTHN_OK);
    TG_CHECK(!last.subject && last.kinds == 0);
    TG_CHECK(call(&req, "/x/Y", "authorization", "", NULL) ==
             TG_AUTHN_UNAUTHENTICATED);
    TG_CHECK_STR_CONTAINS(last_reason, "bearer token (JWT) required");
    TG_CHECK(call(&req, "/x/Y", NULL) == TG_AUTHN_UNAUTHENTICATED);
    TG_CHECK_STR_CONTAINS(last_reason, "bearer token (JWT) required");
  } else {
    TG_CHECK(0);
  }
  gw_close(&opt);
  gw_close(&req);
  free(y1);
  free(y2);
}

TG_TEST(custom_token_header_and_authorization_ignored) {
  gw g;
  char *y = jwt_yaml("[jwt]", "  token_header: X-Temporal-Token\n");
  char *tok = mint(payload_ok);
  char *v = xprintf("Bearer %s", tok);
  if (gw_open(&g, y) == 0) {
    TG_CHECK(call(&g, "/x/Y", "x-temporal-token", v, NULL) == TG_AUTHN_OK);
    TG_CHECK(last.subject && strcmp(last.subject, "alice") == 0);
    /* authorization is not read at all: a good token there is no token,
     * a malformed one is no error. */
    TG_CHECK(call(&g, "/x/Y", "authorization", v, NULL) ==
             TG_AUTHN_UNAUTHENTICATED);
    TG_CHECK_STR_CONTAINS(last_reason, "bearer token (JWT) required");
    TG_CHECK(call(&g, "/x/Y", "x-temporal-token", v, "authorization",
                  "Basic !!", "authorization", "twice", NULL) == TG_AUTHN_OK);
  } else {
    TG_CHECK(0);
  }
  gw_close(&g);
  free(tok);
  free(v);
  free(y);
}

TG_TEST(health_check_and_system_info_exempt_by_default) {
  gw g;
  char *y = jwt_yaml("[jwt]", "");
  if (gw_open(&g, y) == 0) {
    TG_CHECK(tg_authn_is_exempt(g.a, HEALTH, strlen(HEALTH)));
    TG_CHECK(tg_authn_is_exempt(g.a, SYSINFO, strlen(SYSINFO)));
    TG_CHECK(!tg_authn_is_exempt(g.a, HEALTH "x", strlen(HEALTH) + 1));
    TG_CHECK(!tg_authn_is_exempt(g.a, "/grpc.health.v1.Health/Watch",
                                 strlen("/grpc.health.v1.Health/Watch")));
  } else {
    TG_CHECK(0);
  }
  gw_close(&g);
  free(y);
}

TG_TEST(empty_exempt_methods_make_system_info_need_credentials) {
  gw g;
  char *y = jwt_yaml("[jwt]", "  exempt_methods: []\n");
  if (gw_open(&g, y) == 0) {
    TG_CHECK(!tg_authn_is_exempt(g.a, SYSINFO, strlen(SYSINFO)));
    TG_CHECK(!tg_authn_is_exempt(g.a, HEALTH, strlen(HEALTH)));
    TG_CHECK(call(&g, SYSINFO, NULL) == TG_AUTHN_UNAUTHENTICATED);
    TG_CHECK_STR_CONTAINS(last_reason, "bearer token (JWT) required");
  } else {
    TG_CHECK(0);
  }
  gw_close(&g);
  free(y);
}

/* exp beyond int64 maps to not_after INT64_MAX; the cache lifetime adds the
 * leeway to it, which must saturate (UBSan aborts on the overflow). */
TG_TEST(far_future_exp_is_cached_without_overflow) {
  gw g;
  char *y = jwt_yaml("[jwt]", "");
  char *tok = mint("{\"sub\":\"bob\",\"exp\":1e30}");
  char *v = xprintf("Bearer %s", tok);
  if (gw_open(&g, y) == 0) {
    TG_CHECK(call(&g, "/x/Y", "authorization", v, NULL) == TG_AUTHN_OK);
    TG_CHECK(last.not_after == INT64_MAX);
    TG_CHECK(call(&g, "/x/Y", "authorization", v, NULL) == TG_AUTHN_OK);
    TG_CHECK(last.subject && strcmp(last.subject, "bob") == 0);
    TG_CHECK(atomic_load(&g.n.verified) == 1);
    TG_CHECK(atomic_load(&g.n.cache_hits) == 1);
  } else {
    TG_CHECK(0);
  }
  gw_close(&g);
  free(tok);
  free(v);
  free(y);
}

int main(void) {
  tg_log_set_level(TG_LOG_ERROR);
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  pem_path = xprintf("%s/k1.pem", dir);
  FILE *f = fopen(pem_path, "w");
  if (!key || !f || PEM_write_PUBKEY(f, key) != 1) {
    fprintf(stderr, "cannot write %s\n", pem_path);
    return 1;
  }
  fclose(f);
  keys_path = xprintf("%s/keys.yaml", dir);
  if (!(f = fopen(keys_path, "w")) || fputs("keys: []\n", f) < 0) {
    fprintf(stderr, "cannot write %s\n", keys_path);
    return 1;
  }
  fclose(f);
  base = event_base_new();
  tg_claims_init(&last);
  TG_RUN(bearer_scheme_is_case_insensitive);
  TG_RUN(two_spaces_or_a_tab_or_other_schemes_refused);
  TG_RUN(empty_header_means_no_token);
  TG_RUN(custom_token_header_and_authorization_ignored);
  TG_RUN(health_check_and_system_info_exempt_by_default);
  TG_RUN(empty_exempt_methods_make_system_info_need_credentials);
  TG_RUN(far_future_exp_is_cached_without_overflow);
  tg_claims_clear(&last);
  event_base_free(base);
  EVP_PKEY_free(key);
  unlink(pem_path);
  unlink(keys_path);
  rmdir(dir);
  free(pem_path);
  free(keys_path);
  return TG_DONE();
}
