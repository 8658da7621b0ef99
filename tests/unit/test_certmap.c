/* Unit tests for src/certmap.c (tg_certmap_*, tg_cert_fields_*), on
 * certificates generated here with OpenSSL. */
#include "tg_certmap.h"
#include "tg_test.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <time.h>

#include "tg_failmalloc.h"

#define SPIFFE_A "spiffe://acme.test/ns/payments/sa/worker-a"

static EVP_PKEY *test_key;

/* One value of a subject attribute (len -1: NUL-terminated). */
typedef struct name_attr {
  const char *field; /* "CN", "O", "OU" */
  const char *value;
  int len;
  int type; /* 0: MBSTRING_UTF8; else stored as is with this V_ASN1_ type */
} name_attr;

/* A self-signed certificate with the given subject and, when san is set,
 * a subjectAltName built from an OpenSSL config string ("URI:...,DNS:...").
 * Returned after a DER round trip, as a peer certificate would be; with raw
 * set, just the subject, unsigned. */
static X509 *make_cert_ex(const name_attr *attrs, size_t nattrs,
                          const char *san, GENERAL_NAMES *gens, int raw) {
  X509 *x = X509_new(), *parsed = NULL;
  unsigned char *der = NULL;
  if (!x)
    return NULL;
  X509_NAME *name = X509_get_subject_name(x);
  int ok = X509_set_version(x, 2) &&
           ASN1_INTEGER_set(X509_get_serialNumber(x), 1) &&
           X509_gmtime_adj(X509_getm_notBefore(x), 0) &&
           X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  for (size_t i = 0; ok && i < nattrs; i++)
    ok = X509_NAME_add_entry_by_txt(
        name, attrs[i].field, attrs[i].type ? attrs[i].type : MBSTRING_UTF8,
        (const unsigned char *)attrs[i].value, attrs[i].len, -1, 0);
  if (ok && raw)
    return x; /* OpenSSL can neither copy nor encode a name it cannot decode */
  ok = ok && X509_set_issuer_name(x, name) && X509_set_pubkey(x, test_key);
  if (ok && san) {
    X509_EXTENSION *ext =
        X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, san);
    ok = ext && X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (ok && gens)
    ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0,
                           X509V3_ADD_DEFAULT) == 1;
  ok = ok && X509_sign(x, test_key, EVP_sha256()) > 0;
  int len = ok ? i2d_X509(x, &der) : -1;
  if (len > 0) {
    const unsigned char *p = der;
    parsed = d2i_X509(NULL, &p, len);
  }
  OPENSSL_free(der);
  X509_free(x);
  return parsed;
}

static X509 *make_cert(const name_attr *attrs, size_t nattrs, const char *san,
                       GENERAL_NAMES *gens) {
  return make_cert_ex(attrs, nattrs, san, gens, 0);
}

static X509 *worker_cert(void) {
  static const name_attr attrs[] = {{"CN", "worker-a", -1, 0},
                                    {"O", "Acme", -1, 0},
                                    {"O", "Payments Team", -1, 0},
                                    {"OU", "platform", -1, 0},
                                    {"OU", "oncall", -1, 0}};
  return make_cert(attrs, 5, "URI:" SPIFFE_A ",DNS:worker.acme.test", NULL);
}

static GENERAL_NAME *ia5_name(int type, const char *s, int len) {
  GENERAL_NAME *g = GENERAL_NAME_new();
  ASN1_IA5STRING *v = ASN1_IA5STRING_new();
  if (!g || !v || !ASN1_STRING_set(v, s, len)) {
    GENERAL_NAME_free(g);
    ASN1_IA5STRING_free(v);
    return NULL;
  }
  GENERAL_NAME_set0_value(g, type, v);
  return g;
}

/* Fields of one certificate, held by the test. */
static tg_cert_fields *fields_of(X509 *x) {
  tg_cert_fields *f = NULL;
  if (!x || tg_cert_fields_from_x509(x, &f) != 0)
    return NULL;
  return f;
}

static int has_value(const tg_cert_fields *f, int field, const char *v) {
  for (size_t i = 0; i < f->nvalues[field]; i++)
    if (strcmp(f->values[field][i], v) == 0)
      return 1;
  return 0;
}

static uint8_t role_of(const tg_claims *c, const char *ns) {
  return tg_claims_ns_role(c, ns, strlen(ns));
}

/* Builds a map with one rule; NULL (and a message) when it is refused. */
static tg_certmap *one_rule(const tg_cert_rule_conf *conf) {
  char err[256] = "";
  tg_certmap *m = tg_certmap_new();
  if (m && tg_certmap_add(m, conf, err, sizeof(err)) != 0) {
    fprintf(stderr, "  rule refused: %s\n", err);
    tg_certmap_free(m);
    return NULL;
  }
  return m;
}

/* Applies m to f with default options into a fresh c. */
static int run(const tg_certmap *m, const tg_cert_fields *f, tg_claims *c) {
  tg_claims_init(c);
  return tg_certmap_apply(m, f, NULL, c);
}

/* Hand-made fields: one value per listed field. */
static tg_cert_fields hand_fields(const char *const *v) {
  tg_cert_fields f;
  memset(&f, 0, sizeof(f));
  for (int i = 0; i < TG_CF_COUNT; i++) {
    if (v[i]) {
      f.values[i] = &v[i];
      f.nvalues[i] = 1;
    }
  }
  return f;
}

TG_TEST(test_fields_from_x509) {
  X509 *x = worker_cert();
  TG_CHECK(x != NULL);
  tg_cert_fields *f = fields_of(x);
  TG_CHECK(f != NULL);
  if (f) {
    TG_CHECK(f->nvalues[TG_CF_CN] == 1 && has_value(f, TG_CF_CN, "worker-a"));
    TG_CHECK(f->nvalues[TG_CF_O] == 2);
    TG_CHECK(strcmp(f->values[TG_CF_O][0], "Acme") == 0);
    TG_CHECK(strcmp(f->values[TG_CF_O][1], "Payments Team") == 0);
    TG_CHECK(f->nvalues[TG_CF_OU] == 2 && has_value(f, TG_CF_OU, "oncall"));
    TG_CHECK(f->nvalues[TG_CF_URI_SAN] == 1 &&
             has_value(f, TG_CF_URI_SAN, SPIFFE_A));
    TG_CHECK(f->nvalues[TG_CF_DNS_SAN] == 1 &&
             has_value(f, TG_CF_DNS_SAN, "worker.acme.test"));
    TG_CHECK(f->nvalues[TG_CF_EMAIL_SAN] == 0);
  }
  tg_cert_fields_free(f);
  X509_free(x);

  /* No SAN, UTF-8 subject, email SAN, several SANs of one kind. */
  static const name_attr utf8[] = {{"CN", "J\xc3\xbcrgen", -1, 0}};
  x = make_cert(utf8, 1, "email:ops@acme.test,DNS:a.acme.test,DNS:b.acme.test",
                NULL);
  f = fields_of(x);
  TG_CHECK(f != NULL);
  if (f) {
    TG_CHECK(has_value(f, TG_CF_CN, "J\xc3\xbcrgen"));
    TG_CHECK(f->nvalues[TG_CF_O] == 0 && f->nvalues[TG_CF_URI_SAN] == 0);
    TG_CHECK(has_value(f, TG_CF_EMAIL_SAN, "ops@acme.test"));
    TG_CHECK(f->nvalues[TG_CF_DNS_SAN] == 2);
    TG_CHECK(strcmp(f->values[TG_CF_DNS_SAN][1], "b.acme.test") == 0);
  }
  tg_cert_fields_free(f);
  X509_free(x);

  /* A certificate with nothing in it. */
  x = make_cert(NULL, 0, NULL, NULL);
  f = fields_of(x);
  TG_CHECK(f != NULL);
  for (int i = 0; f && i < TG_CF_COUNT; i++)
    TG_CHECK(f->nvalues[i] == 0);
  tg_cert_fields_free(f);
  X509_free(x);
  tg_cert_fields_free(NULL);
}

TG_TEST(test_fields_drop_bad_values) {
  /* NUL bytes in a SAN and in the CN; a non-ASCII SAN (not IA5). */
  GENERAL_NAMES *gens = GENERAL_NAMES_new();
  GENERAL_NAME *g1 = ia5_name(GEN_DNS, "evil\0.acme.test", 15);
  GENERAL_NAME *g2 = ia5_name(GEN_DNS, "ok.acme.test", -1);
  GENERAL_NAME *g3 =
      ia5_name(GEN_URI, "spiffe://acme.test/ns/payments\0/sa/x", 36);
  GENERAL_NAME *g4 = ia5_name(GEN_DNS, "caf\xc3\xa9.acme.test", -1);
  GENERAL_NAME *g5 = ia5_name(GEN_EMAIL, "a@acme.test\0", 12);
  TG_CHECK(gens && g1 && g2 && g3 && g4 && g5);
  sk_GENERAL_NAME_push(gens, g1);
  sk_GENERAL_NAME_push(gens, g2);
  sk_GENERAL_NAME_push(gens, g3);
  sk_GENERAL_NAME_push(gens, g4);
  sk_GENERAL_NAME_push(gens, g5);
  static const name_attr attrs[] = {{"CN", "admin\0worker-a", 14, 0},
                                    {"CN", "worker-b", -1, 0},
                                    {"O", "Acme", -1, 0}};
  X509 *x = make_cert(attrs, 3, NULL, gens);
  GENERAL_NAMES_free(gens);
  TG_CHECK(x != NULL);
  tg_cert_fields *f = fields_of(x);
  TG_CHECK(f != NULL);
  if (f) {
    TG_CHECK(f->nvalues[TG_CF_DNS_SAN] == 1);
    TG_CHECK(has_value(f, TG_CF_DNS_SAN, "ok.acme.test"));
    TG_CHECK(f->nvalues[TG_CF_URI_SAN] == 0);
    TG_CHECK(f->nvalues[TG_CF_EMAIL_SAN] == 0);
    TG_CHECK(f->nvalues[TG_CF_CN] == 1 && has_value(f, TG_CF_CN, "worker-b"));

    /* The dropped value is never matched, by any pattern. */
    static const char *const perms[] = {"payments:read"};
    tg_cert_rule_conf conf = {.match = {[TG_CF_DNS_SAN] = "evil*"},
                              .permissions = perms,
                              .npermissions = 1};
    tg_certmap *m = one_rule(&conf);
    tg_claims c;
    TG_CHECK(m && run(m, f, &c) == 0);
    TG_CHECK(c.nns == 0 && c.kinds == 0 && c.subject == NULL);
    tg_claims_clear(&c);
    tg_certmap_free(m);
    /* The default subject is the first CN that survived. */
    conf.match[TG_CF_DNS_SAN] = "*.acme.test";
    m = one_rule(&conf);
    TG_CHECK(m && run(m, f, &c) == 1);
    TG_CHECK(c.subject && strcmp(c.subject, "worker-b") == 0);
    tg_claims_clear(&c);
    tg_certmap_free(m);
  }
  tg_cert_fields_free(f);
  X509_free(x);

  /* Strings that do not decode (a code point past U+10FFFF, bad UTF-8) are
   * dropped, and OpenSSL's error queue is left as it was found. OpenSSL
   * neither signs nor parses such a name, so the certificate stays raw. */
  static const name_attr bad[] = {
      {"CN", "\x7f\xff\xff\xff", 4, V_ASN1_UNIVERSALSTRING},
      {"CN", "\0o\0k", 4, V_ASN1_BMPSTRING},
      {"O", "\xff\xfe", 2, V_ASN1_UTF8STRING},
      {"O", "Acme", -1, V_ASN1_UTF8STRING}};
  x = make_cert_ex(bad, 4, NULL, NULL, 1);
  TG_CHECK(x != NULL);
  ERR_clear_error();
  ERR_raise(ERR_LIB_X509, ERR_R_INTERNAL_ERROR);
  unsigned long before = ERR_peek_last_error();
  f = fields_of(x);
  TG_CHECK(f != NULL);
  if (f) {
    TG_CHECK(f->nvalues[TG_CF_CN] == 1 && has_value(f, TG_CF_CN, "ok"));
    TG_CHECK(f->nvalues[TG_CF_O] == 1 && has_value(f, TG_CF_O, "Acme"));
  }
  TG_CHECK(ERR_peek_last_error() == before && ERR_get_error() == before);
  TG_CHECK(ERR_get_error() == 0);
  tg_cert_fields_free(f);
  X509_free(x);
}

TG_TEST(test_exact_match) {
  X509 *x = worker_cert();
  tg_cert_fields *f = fields_of(x);
  static const char *const perms[] = {"payments:read"};
  tg_cert_rule_conf conf = {.match = {[TG_CF_CN] = "worker-a"},
                            .permissions = perms,
                            .npermissions = 1};
  tg_certmap *m = one_rule(&conf);
  tg_claims c;
  TG_CHECK(f && m);
  if (!f || !m)
    goto end;
  TG_CHECK(run(m, f, &c) == 1);
  TG_CHECK(c.kinds == TG_CRED_CLIENT_CERT);
  TG_CHECK(c.subject && strcmp(c.subject, "worker-a") == 0);
  TG_CHECK(role_of(&c, "payments") == TG_ROLE_READ && c.nns == 1);
  TG_CHECK(c.system == 0 && c.not_after == 0);
  tg_claims_clear(&c);
  tg_certmap_free(m);

  /* Literal patterns: whole value, case-sensitive. */
  static const char *const misses[] = {"worker", "worker-a ", "Worker-a",
                                       "worker-ab", "orker-a"};
  for (size_t i = 0; i < sizeof(misses) / sizeof(misses[0]); i++) {
    conf.match[TG_CF_CN] = misses[i];
    m = one_rule(&conf);
    TG_CHECK(m && run(m, f, &c) == 0);
    TG_CHECK(c.nns == 0 && c.kinds == 0 && c.subject == NULL);
    tg_claims_clear(&c);
    tg_certmap_free(m);
  }
  m = NULL;
end:
  tg_certmap_free(m);
  tg_cert_fields_free(f);
  X509_free(x);
}

/* pattern against value: does it match, and what are the captures. */
static void check_glob(const char *pattern, const char *value, int want,
                       const char *cap1, const char *cap2) {
  static const char *const perms[] = {"{1}:read", "{2}:write"};
  const char *v[TG_CF_COUNT] = {[TG_CF_URI_SAN] = value};
  tg_cert_fields f = hand_fields(v);
  tg_cert_rule_conf conf = {.match = {[TG_CF_URI_SAN] = pattern},
                            .permissions = perms,
                            .npermissions = cap2   ? 2
                                            : cap1 ? 1
                                                   : 0};
  tg_certmap *m = one_rule(&conf);
  tg_claims c;
  TG_CHECK(m != NULL);
  if (!m)
    return;
  int rc = run(m, &f, &c);
  int ok = rc == want;
  if (want && cap1)
    ok = ok && role_of(&c, cap1) & TG_ROLE_READ;
  if (want && cap2)
    ok = ok && role_of(&c, cap2) & TG_ROLE_WRITE;
  if (!ok) {
    fprintf(stderr, "  \"%s\" vs \"%s\": rc %d, %zu namespaces:", pattern,
            value, rc, c.nns);
    for (size_t i = 0; i < c.nns; i++)
      fprintf(stderr, " %s=%u", c.ns[i].ns, c.ns[i].role);
    fprintf(stderr, "\n");
  }
  TG_CHECK(ok);
  tg_claims_clear(&c);
  tg_certmap_free(m);
}

TG_TEST(test_glob) {
  check_glob("spiffe://acme.test/ns/*/sa/*", SPIFFE_A, 1, "payments",
             "worker-a");
  check_glob("spiffe://acme.test/ns/payments/sa/*", SPIFFE_A, 1, "worker-a",
             NULL);
  check_glob("*", "abc", 1, "abc", NULL);
  check_glob("a*", "abc", 1, "bc", NULL);
  check_glob("*c", "abc", 1, "ab", NULL);
  check_glob("a*c", "abc", 1, "b", NULL);
  /* '*' needs at least one character. */
  check_glob("a*c", "ac", 0, NULL, NULL);
  check_glob("abc*", "abc", 0, NULL, NULL);
  check_glob("*abc", "abc", 0, NULL, NULL);
  check_glob("spiffe://acme.test/ns/*/sa/*", "spiffe://acme.test/ns//sa/worker",
             0, NULL, NULL);
  check_glob("spiffe://acme.test/ns/*/sa/*", "spiffe://acme.test/ns/p/sa/", 0,
             NULL, NULL);
  /* '*' does not cross '/'. */
  check_glob("spiffe://acme.test/ns/*", SPIFFE_A, 0, NULL, NULL);
  check_glob("spiffe://acme.test/*/sa/*", SPIFFE_A, 0, NULL, NULL);
  check_glob("*", "a/b", 0, NULL, NULL);
  check_glob("*/*", "a/b", 1, "a", "b");
  check_glob("*/*", "a/b/c", 0, NULL, NULL);
  /* ... but does cross '.', ':' and anything else. */
  check_glob("*.acme.test", "a.b.acme.test", 1, "a.b", NULL);
  check_glob("x*y", "x\xc3\xa9 .{}*y", 1, "\xc3\xa9 .{}*", NULL);
  /* Earlier captures take as much as they can. */
  check_glob("*.*", "a.b.c", 1, "a.b", "c");
  check_glob("*-*-end", "a-b-c-end", 1, "a-b", "c");
  check_glob("*.*", "abc", 0, NULL, NULL);
  /* Literal characters are case-sensitive. */
  check_glob("SPIFFE://*", "spiffe://x", 0, NULL, NULL);
  check_glob("*.Acme.test", "w.acme.test", 0, NULL, NULL);
}

TG_TEST(test_glob_on_certificate) {
  X509 *x = worker_cert();
  tg_cert_fields *f = fields_of(x);
  static const char *const perms[] = {"{1}:worker", "{2}:read"};
  tg_cert_rule_conf conf = {
      .match = {[TG_CF_URI_SAN] = "spiffe://acme.test/ns/*/sa/*",
                [TG_CF_DNS_SAN] = "*.acme.test"},
      .permissions = perms,
      .npermissions = 2};
  tg_certmap *m = one_rule(&conf);
  tg_claims c;
  TG_CHECK(f && m);
  if (f && m) {
    /* dns_san comes before uri_san: its '*' is {1}. */
    TG_CHECK(run(m, f, &c) == 1);
    TG_CHECK(role_of(&c, "worker") == TG_ROLE_WORKER);
    TG_CHECK(role_of(&c, "payments") == TG_ROLE_READ);
    TG_CHECK(c.nns == 2);
    TG_CHECK(c.subject && strcmp(c.subject, SPIFFE_A) == 0);
    tg_claims_clear(&c);
  }
  tg_certmap_free(m);

  conf.match[TG_CF_DNS_SAN] = NULL;
  m = one_rule(&conf);
  TG_CHECK(m && run(m, f, &c) == 1);
  TG_CHECK(role_of(&c, "payments") == TG_ROLE_WORKER);
  TG_CHECK(role_of(&c, "worker-a") == TG_ROLE_READ);
  tg_claims_clear(&c);
  tg_certmap_free(m);
  tg_cert_fields_free(f);
  X509_free(x);
}

TG_TEST(test_named_captures_and_fields) {
  X509 *x = worker_cert();
  tg_cert_fields *f = fields_of(x);
  static const char *const perms[] = {"{ns}:write", "{sa}:read",
                                      "{cn}-{ns}:admin", "o-{o}:worker",
                                      "{email_san}:admin"};
  tg_cert_rule_conf conf = {
      .match = {[TG_CF_URI_SAN] = "spiffe://acme.test/ns/{ns}/sa/{sa}"},
      .subject = "{sa}@{ns} ({cn}, {2}, {dns_san})",
      .permissions = perms,
      .npermissions = 5};
  tg_certmap *m = one_rule(&conf);
  tg_claims c;
  TG_CHECK(f && m);
  if (f && m) {
    TG_CHECK(run(m, f, &c) == 1);
    TG_CHECK(
        c.subject &&
        strcmp(c.subject,
               "worker-a@payments (worker-a, worker-a, worker.acme.test)") ==
            0);
    TG_CHECK(role_of(&c, "payments") == TG_ROLE_WRITE);
    TG_CHECK(role_of(&c, "worker-a") == TG_ROLE_READ);
    TG_CHECK(role_of(&c, "worker-a-payments") == TG_ROLE_ADMIN);
    /* A field the rule does not match: the first value. */
    TG_CHECK(role_of(&c, "o-Acme") == TG_ROLE_WORKER);
    /* A field the certificate lacks: that permission alone is skipped. */
    TG_CHECK(c.nns == 4);
    tg_claims_clear(&c);
  }
  tg_certmap_free(m);

  /* The {o} of a rule matching O is the value that matched, not the first. */
  static const char *const operms[] = {"team-{o}:read", "{team}:write"};
  tg_cert_rule_conf oconf = {.match = {[TG_CF_O] = "Payments {team}"},
                             .permissions = operms,
                             .npermissions = 2};
  m = one_rule(&oconf);
  TG_CHECK(m && run(m, f, &c) == 1);
  TG_CHECK(role_of(&c, "team-Payments Team") == TG_ROLE_READ);
  TG_CHECK(role_of(&c, "Team") == TG_ROLE_WRITE);
  TG_CHECK(c.subject && strcmp(c.subject, "worker-a") == 0);
  tg_claims_clear(&c);
  tg_certmap_free(m);
  tg_cert_fields_free(f);
  X509_free(x);
}

TG_TEST(test_two_fields) {
  X509 *x = worker_cert();
  tg_cert_fields *f = fields_of(x);
  static const char *const perms[] = {"payments:admin"};
  static const struct {
    const char *cn, *o, *ou;
    int want;
  } cases[] = {
      {"worker-a", "Acme", NULL, 1},
      {"worker-a", "Payments Team", NULL, 1}, /* the second O */
      {"worker-a", "Other", NULL, 0},
      {"worker-b", "Acme", NULL, 0},
      {"worker-*", "Payments *", "oncall", 1},
      {"worker-*", "Payments *", "sales", 0},
      {NULL, "Acme", "platform", 1},
  };
  for (size_t i = 0; f && i < sizeof(cases) / sizeof(cases[0]); i++) {
    tg_cert_rule_conf conf = {.match = {[TG_CF_CN] = cases[i].cn,
                                        [TG_CF_O] = cases[i].o,
                                        [TG_CF_OU] = cases[i].ou},
                              .permissions = perms,
                              .npermissions = 1};
    tg_certmap *m = one_rule(&conf);
    tg_claims c;
    TG_CHECK(m != NULL);
    if (!m)
      continue;
    int rc = run(m, f, &c);
    if (rc != cases[i].want)
      fprintf(stderr, "  case %zu: rc %d\n", i, rc);
    TG_CHECK(rc == cases[i].want);
    TG_CHECK(role_of(&c, "payments") == (cases[i].want ? TG_ROLE_ADMIN : 0));
    TG_CHECK(!!(c.kinds & TG_CRED_CLIENT_CERT) == cases[i].want);
    tg_claims_clear(&c);
    tg_certmap_free(m);
  }
  tg_cert_fields_free(f);
  X509_free(x);
}

TG_TEST(test_several_rules) {
  X509 *x = worker_cert();
  tg_cert_fields *f = fields_of(x);
  static const char *const p1[] = {"payments:read", "orders:read"};
  static const char *const p2[] = {"payments:write", "billing:worker"};
  static const char *const p3[] = {"payments:admin"};
  static const char *const p4[] = {"payments:worker"};
  tg_cert_rule_conf rules[] = {
      {.match = {[TG_CF_CN] = "nobody"},
       .subject = "never",
       .permissions = p3,
       .npermissions = 1},
      {.match = {[TG_CF_OU] = "oncall"},
       .subject = "first-{ou}",
       .permissions = p1,
       .npermissions = 2},
      {.match = {[TG_CF_DNS_SAN] = "worker.acme.test"},
       .subject = "second",
       .permissions = p2,
       .npermissions = 2},
      {.match = {[TG_CF_CN] = "worker-a"},
       .permissions = p4,
       .npermissions = 1},
  };
  char err[256];
  tg_certmap *m = tg_certmap_new();
  TG_CHECK(m && f);
  if (!m || !f)
    goto end;
  for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++)
    TG_CHECK(tg_certmap_add(m, &rules[i], err, sizeof(err)) == 0);
  tg_claims c;
  TG_CHECK(run(m, f, &c) == 3);
  TG_CHECK(role_of(&c, "payments") ==
           (TG_ROLE_READ | TG_ROLE_WRITE | TG_ROLE_WORKER));
  TG_CHECK(role_of(&c, "orders") == TG_ROLE_READ);
  TG_CHECK(role_of(&c, "billing") == TG_ROLE_WORKER);
  TG_CHECK(c.nns == 3);
  TG_CHECK(c.kinds == TG_CRED_CLIENT_CERT);
  /* The first matching rule's subject; "{ou}" is the OU that matched. */
  TG_CHECK(c.subject && strcmp(c.subject, "first-oncall") == 0);
  tg_claims_clear(&c);

  /* A subject already set (by another credential) stays. */
  tg_claims_init(&c);
  TG_CHECK(tg_claims_set_subject(&c, "jwt-user", 8) == 0);
  c.kinds = TG_CRED_JWT;
  TG_CHECK(tg_certmap_apply(m, f, NULL, &c) == 3);
  TG_CHECK(strcmp(c.subject, "jwt-user") == 0);
  TG_CHECK(c.kinds == (TG_CRED_JWT | TG_CRED_CLIENT_CERT));
  tg_claims_clear(&c);

  /* An empty map matches nothing. */
  tg_certmap *empty = tg_certmap_new();
  TG_CHECK(empty && run(empty, f, &c) == 0);
  TG_CHECK(c.kinds == 0);
  tg_claims_clear(&c);
  tg_certmap_free(empty);
end:
  tg_certmap_free(m);
  tg_cert_fields_free(f);
  X509_free(x);
}

TG_TEST(test_subject_fallbacks) {
  /* A first rule whose subject cannot be expanded leaves it to the next. */
  static const char *const v[TG_CF_COUNT] = {
      [TG_CF_CN] = "svc", [TG_CF_O] = "Acme"};
  tg_cert_fields f = hand_fields(v);
  tg_cert_rule_conf rules[] = {
      {.match = {[TG_CF_O] = "Acme"}, .subject = "{uri_san}"},
      {.match = {[TG_CF_O] = "Acme"}, .subject = ""},
      {.match = {[TG_CF_O] = "*"}, .subject = "{1}/{cn}"},
  };
  char err[256];
  tg_certmap *m = tg_certmap_new();
  for (size_t i = 0; m && i < 3; i++)
    TG_CHECK(tg_certmap_add(m, &rules[i], err, sizeof(err)) == 0);
  tg_claims c;
  TG_CHECK(m && run(m, &f, &c) == 3);
  TG_CHECK(c.subject && strcmp(c.subject, "Acme/svc") == 0);
  tg_claims_clear(&c);
  tg_certmap_free(m);

  /* Default subject: the matched URI SAN, else the CN, else none. */
  static const char *const v2[TG_CF_COUNT] = {
      [TG_CF_O] = "Acme", [TG_CF_URI_SAN] = "spiffe://x/y"};
  f = hand_fields(v2);
  tg_cert_rule_conf d = {.match = {[TG_CF_O] = "Acme"}};
  m = one_rule(&d);
  TG_CHECK(m && run(m, &f, &c) == 1);
  TG_CHECK(c.subject == NULL && c.kinds == TG_CRED_CLIENT_CERT);
  tg_claims_clear(&c);
  tg_certmap_free(m);
  d.match[TG_CF_URI_SAN] = "spiffe://x/*";
  m = one_rule(&d);
  TG_CHECK(m && run(m, &f, &c) == 1);
  TG_CHECK(c.subject && strcmp(c.subject, "spiffe://x/y") == 0);
  tg_claims_clear(&c);
  tg_certmap_free(m);
}

TG_TEST(test_system_scope) {
  static const char *const v[TG_CF_COUNT] = {
      [TG_CF_CN] = "temporal-system",
      [TG_CF_URI_SAN] = "spiffe://acme.test/ns/temporal-system/sa/x",
      [TG_CF_DNS_SAN] = "temporal-system:admin.acme.test"};
  tg_cert_fields f = hand_fields(v);
  static const struct {
    const char *perm;
    uint8_t system; /* expected system role */
    const char *ns; /* else this namespace is expected, with role */
    uint8_t role;
  } cases[] = {
      /* Namespaces from the certificate never reach the system scope. */
      {"{1}", 0, NULL, 0},      /* "temporal-system:admin" */
      {"{1}:read", 0, NULL, 0}, /* "temporal-system:admin:read" */
      {"{ns}:admin", 0, NULL, 0},
      {"{2}:admin", 0, NULL, 0},
      {"{cn}:admin", 0, NULL, 0},
      {"{dns_san}", 0, NULL, 0},
      /* Literal system permissions are granted, whatever the role. */
      {"temporal-system:read", TG_ROLE_READ, NULL, 0},
      {"temporal-system:{sa}", 0, NULL, 0}, /* role "x": unknown */
      /* Other namespaces from captures are fine. */
      {"{ns}-copy:admin", 0, "temporal-system-copy", TG_ROLE_ADMIN},
      {"{sa}:write", 0, "x", TG_ROLE_WRITE},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *perms[] = {cases[i].perm};
    tg_cert_rule_conf conf = {
        .match = {[TG_CF_DNS_SAN] = "*.acme.test",
                  [TG_CF_URI_SAN] = "spiffe://acme.test/ns/{ns}/sa/{sa}"},
        .permissions = perms,
        .npermissions = 1};
    tg_certmap *m = one_rule(&conf);
    tg_claims c;
    TG_CHECK(m != NULL);
    if (!m)
      continue;
    TG_CHECK(run(m, &f, &c) == 1);
    int ok = c.system == cases[i].system && c.nns == (cases[i].ns ? 1u : 0u) &&
             (!cases[i].ns || role_of(&c, cases[i].ns) == cases[i].role);
    if (!ok)
      fprintf(stderr, "  case \"%s\": system %u, %zu namespaces\n",
              cases[i].perm, c.system, c.nns);
    TG_CHECK(ok);
    tg_claims_clear(&c);
    tg_certmap_free(m);
  }

  /* A literal system namespace with a role from the certificate. */
  static const char *const v2[TG_CF_COUNT] = {[TG_CF_CN] = "ops-read"};
  tg_cert_fields f2 = hand_fields(v2);
  static const char *const p2[] = {"temporal-system:{1}"};
  tg_cert_rule_conf c2 = {
      .match = {[TG_CF_CN] = "ops-*"}, .permissions = p2, .npermissions = 1};
  tg_certmap *m = one_rule(&c2);
  tg_claims c;
  TG_CHECK(m && run(m, &f2, &c) == 1);
  TG_CHECK(c.system == TG_ROLE_READ);
  tg_claims_clear(&c);

  /* Custom system names: "system" from a capture is refused too. */
  static const char *const sysnames[] = {"system"};
  tg_perm_opts o = {.system_names = sysnames, .nsystem_names = 1};
  static const char *const v3[TG_CF_COUNT] = {[TG_CF_CN] = "system"};
  tg_cert_fields f3 = hand_fields(v3);
  static const char *const p3[] = {"{cn}:admin", "system:worker",
                                   "temporal-system:read"};
  tg_cert_rule_conf c3 = {
      .match = {[TG_CF_CN] = "*"}, .permissions = p3, .npermissions = 3};
  tg_certmap_free(m);
  m = one_rule(&c3);
  tg_claims_init(&c);
  TG_CHECK(m && tg_certmap_apply(m, &f3, &o, &c) == 1);
  TG_CHECK(c.system == TG_ROLE_WORKER);
  TG_CHECK(c.nns == 1 && role_of(&c, "temporal-system") == TG_ROLE_READ);
  tg_claims_clear(&c);
  tg_certmap_free(m);
}

TG_TEST(test_system_scope_regex) {
  char err[256];
  tg_perm_regex *re = tg_perm_regex_new("(?P<namespace>[^.]+)\\.(?P<role>\\w+)",
                                        err, sizeof(err));
  TG_CHECK(re != NULL);
  if (!re)
    return;
  tg_perm_opts o = {.regex = re};
  static const char *const v[TG_CF_COUNT] = {
      [TG_CF_CN] = "temporal-system", [TG_CF_O] = "read"};
  tg_cert_fields f = hand_fields(v);
  static const struct {
    const char *perm;
    uint8_t system;
    size_t nns;
  } cases[] = {
      {"{cn}.admin", 0, 0},
      {"x{1}.admin", 0, 1},          /* "xtemporal-system" */
      {"temporal-system.{o}", 0, 0}, /* any placeholder, with a regex */
      {"temporal-system.read", TG_ROLE_READ, 0},
      {"payments.{o}", 0, 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *perms[] = {cases[i].perm};
    tg_cert_rule_conf conf = {
        .match = {[TG_CF_CN] = "*"}, .permissions = perms, .npermissions = 1};
    tg_certmap *m = one_rule(&conf);
    tg_claims c;
    tg_claims_init(&c);
    TG_CHECK(m && tg_certmap_apply(m, &f, &o, &c) == 1);
    if (c.system != cases[i].system || c.nns != cases[i].nns)
      fprintf(stderr, "  case \"%s\": system %u, %zu namespaces\n",
              cases[i].perm, c.system, c.nns);
    TG_CHECK(c.system == cases[i].system && c.nns == cases[i].nns);
    tg_claims_clear(&c);
    tg_certmap_free(m);
  }
  tg_perm_regex_free(re);
}

TG_TEST(test_add_errors) {
  static const struct {
    const char *match[TG_CF_COUNT];
    const char *subject;
    const char *perm;
    const char *why;
  } cases[] = {
      {{NULL}, NULL, "a:read", "at least one of"},
      {{[TG_CF_CN] = "*"}, NULL, "{nope}:read", "unknown placeholder {nope}"},
      {{[TG_CF_CN] = "*"}, "{nope}", NULL, "subject: unknown placeholder"},
      {{[TG_CF_CN] = "*"}, NULL, "{2}:read", "permissions[0]: unknown"},
      {{[TG_CF_CN] = "*"}, NULL, "{0}:read", "unknown placeholder {0}"},
      {{[TG_CF_CN] = "*"}, NULL, "{}:read", "unknown placeholder {}"},
      {{[TG_CF_CN] = "*"}, NULL, "{99999999999999999999999}:r", "unknown"},
      {{[TG_CF_CN] = "a"}, NULL, "{1}:read", "unknown placeholder {1}"},
      {{[TG_CF_CN] = "{x}"}, NULL, "{y}:read", "unknown placeholder {y}"},
      {{[TG_CF_CN] = "*"}, NULL, "{1:read", "without a closing"},
      {{[TG_CF_CN] = "*"}, NULL, "{ cn }:read", "unknown placeholder"},
      {{[TG_CF_CN] = ""}, NULL, NULL, "cn: empty pattern"},
      {{[TG_CF_CN] = "**"}, NULL, NULL, "cn: two wildcards in a row"},
      {{[TG_CF_CN] = "a*{x}"}, NULL, NULL, "two wildcards"},
      {{[TG_CF_CN] = "{x}*"}, NULL, NULL, "two wildcards"},
      {{[TG_CF_O] = "a{"}, NULL, NULL, "o: '{' must open a capture"},
      {{[TG_CF_O] = "a{}"}, NULL, NULL, "'{' must open"},
      {{[TG_CF_O] = "a{1}"}, NULL, NULL, "'{' must open"},
      {{[TG_CF_O] = "{a-b}"}, NULL, NULL, "'{' must open"},
      {{[TG_CF_O] = "{ab"}, NULL, NULL, "'{' must open"},
      {{[TG_CF_OU] = "{cn}"}, NULL, NULL, "ou: capture {cn} has the name"},
      {{[TG_CF_CN] = "{x}", [TG_CF_OU] = "{x}"},
       NULL,
       NULL,
       "ou: capture {x} is named twice"},
      {{[TG_CF_URI_SAN] = "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*."
                          "*.*.*.*.*.*.*"},
       NULL,
       NULL,
       "uri_san: more than 32 wildcards"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *perms[] = {cases[i].perm};
    tg_cert_rule_conf conf = {.subject = cases[i].subject,
                              .permissions = perms,
                              .npermissions = cases[i].perm ? 1 : 0};
    memcpy(conf.match, cases[i].match, sizeof(conf.match));
    char err[256] = "";
    tg_certmap *m = tg_certmap_new();
    TG_CHECK(m != NULL);
    TG_CHECK(tg_certmap_add(m, &conf, err, sizeof(err)) == -1);
    TG_CHECK_STR_CONTAINS(err, cases[i].why);
    /* A refused rule leaves the map as it was. */
    static const char *const v[TG_CF_COUNT] = {"a", "a", "a", "a", "a", "a"};
    tg_cert_fields f = hand_fields(v);
    tg_claims c;
    TG_CHECK(run(m, &f, &c) == 0);
    tg_claims_clear(&c);
    tg_certmap_free(m);
  }

  /* Accepted: 32 wildcards, names with '_' and digits, "}" literal,
   * a NULL err, an empty subject, captures numbered across fields. */
  static const char *const perms[] = {"{_a1}:read", "x}:read", "{32}:read"};
  tg_cert_rule_conf ok = {
      .match = {[TG_CF_CN] = "{_a1}}",
                [TG_CF_URI_SAN] = "*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*.*."
                                  "*.*.*.*.*.*.*.*.*.*"},
      .subject = "",
      .permissions = perms,
      .npermissions = 3};
  tg_certmap *m = tg_certmap_new();
  TG_CHECK(m && tg_certmap_add(m, &ok, NULL, 0) == 0);
  static const char *const v[TG_CF_COUNT] = {
      [TG_CF_CN] = "b}",
      [TG_CF_URI_SAN] = "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21."
                        "22.23.24.25.26.27.28.29.30.31.32"};
  tg_cert_fields f = hand_fields(v);
  tg_claims c;
  TG_CHECK(run(m, &f, &c) == 1);
  TG_CHECK(role_of(&c, "b") == TG_ROLE_READ);
  TG_CHECK(role_of(&c, "x}") == TG_ROLE_READ);
  TG_CHECK(role_of(&c, "31") == TG_ROLE_READ);
  TG_CHECK(c.subject == NULL);
  tg_claims_clear(&c);
  tg_certmap_free(m);
  tg_certmap_free(NULL);
  TG_CHECK(tg_certmap_add(NULL, &ok, NULL, 0) == -1);
}

TG_TEST(test_rule_is_copied) {
  char cn[] = "worker-*", perm[] = "{1}:read", subject[] = "s-{1}";
  const char *perms[] = {perm};
  tg_cert_rule_conf conf = {.match = {[TG_CF_CN] = cn},
                            .subject = subject,
                            .permissions = perms,
                            .npermissions = 1};
  tg_certmap *m = one_rule(&conf);
  memset(cn, 'x', sizeof(cn) - 1);
  memset(perm, 'x', sizeof(perm) - 1);
  memset(subject, 'x', sizeof(subject) - 1);
  perms[0] = NULL;
  static const char *const v[TG_CF_COUNT] = {[TG_CF_CN] = "worker-a"};
  tg_cert_fields f = hand_fields(v);
  tg_claims c;
  TG_CHECK(m && run(m, &f, &c) == 1);
  TG_CHECK(role_of(&c, "a") == TG_ROLE_READ);
  TG_CHECK(c.subject && strcmp(c.subject, "s-a") == 0);
  tg_claims_clear(&c);
  tg_certmap_free(m);
}

TG_TEST(test_long_values) {
  /* Many wildcards against a long run with no match: bounded work. */
  size_t n = 200000;
  char *v = malloc(n + 1);
  TG_CHECK(v != NULL);
  if (!v)
    return;
  memset(v, 'a', n);
  v[n] = '\0';
  const char *vals[TG_CF_COUNT] = {[TG_CF_CN] = v};
  tg_cert_fields f = hand_fields(vals);
  static const char *const perms[] = {"{1}:read"};
  tg_cert_rule_conf conf = {.match = {[TG_CF_CN] = "*a*a*a*a*a*a*a*a*a*a*b"},
                            .permissions = perms,
                            .npermissions = 1};
  tg_certmap *m = one_rule(&conf);
  tg_claims c;
  clock_t t0 = clock();
  TG_CHECK(m && run(m, &f, &c) == 0);
  tg_claims_clear(&c);
  tg_certmap_free(m);
  /* The same, matching: captures are greedy from the left. */
  conf.match[TG_CF_CN] = "*a*a*a*a*a*a*a*a*a*a*";
  m = one_rule(&conf);
  TG_CHECK(m && run(m, &f, &c) == 1);
  TG_CHECK(c.nns == 1 && c.ns[0].len == n - 20);
  tg_claims_clear(&c);
  tg_certmap_free(m);
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  if (secs > 2.0)
    fprintf(stderr, "  took %.2fs\n", secs);
  TG_CHECK(secs < 2.0);
  free(v);
}

TG_TEST(test_out_of_memory) {
#ifdef TG_TEST_MALLOC_HOOK
  if (!hook_works())
    return;
  X509 *x = worker_cert();
  TG_CHECK(x != NULL);
  if (!x)
    return;
  /* Warm OpenSSL's lazily built tables outside the armed region, and the
   * per-thread error queue, which keeps the text buffers of popped errors
   * for reuse. */
  tg_cert_fields *f = fields_of(x);
  tg_cert_fields_free(f);
  ERR_set_mark();
  for (int i = 0; i < 16; i++)
    ERR_raise_data(ERR_LIB_X509, ERR_R_INTERNAL_ERROR, "%s", "warm-up");
  ERR_pop_to_mark();
  long n;

  for (n = 1; n < 10000; n++) {
    f = NULL;
    hook_arm(n);
    int rc = tg_cert_fields_from_x509(x, &f);
    int failed = hook_failed;
    TG_CHECK(rc == 0 || (rc == -1 && f == NULL && failed));
    tg_cert_fields_free(f);
    hook_armed = 0;
    if (hook_live != 0)
      fprintf(stderr, "  from_x509, failing allocation %ld: %ld leaked\n", n,
              hook_live);
    TG_CHECK(hook_live == 0);
    if (!failed)
      break;
  }
  TG_CHECK(n > 1 && n < 10000);

  f = fields_of(x);
  TG_CHECK(f != NULL);
  static const char *const perms[] = {"{ns}:write", "{sa}:read",
                                      "temporal-system:read", "{cn}:admin",
                                      "{1}-{2}:worker"};
  tg_cert_rule_conf conf = {
      .match = {[TG_CF_URI_SAN] = "spiffe://acme.test/ns/{ns}/sa/{sa}",
                [TG_CF_O] = "Payments *"},
      .subject = "{sa}@{ns}",
      .permissions = perms,
      .npermissions = 5};
  char err[256];
  for (n = 1; n < 10000; n++) {
    hook_arm(n);
    tg_certmap *m = tg_certmap_new();
    int rc = m ? tg_certmap_add(m, &conf, err, sizeof(err)) : -1;
    int failed = hook_failed;
    if (rc != 0 && m)
      TG_CHECK_STR_CONTAINS(err, "out of memory");
    int matched = -2;
    tg_claims c;
    tg_claims_init(&c);
    if (rc == 0) {
      matched = tg_certmap_apply(m, f, NULL, &c);
      failed = hook_failed;
      TG_CHECK(matched == 1 || (failed && matched == TG_CLAIMS_ERR_NOMEM));
    }
    if (!failed) {
      TG_CHECK(matched == 1 && c.nns == 3 && c.system == TG_ROLE_READ);
      TG_CHECK(role_of(&c, "worker-a") == (TG_ROLE_READ | TG_ROLE_ADMIN));
      TG_CHECK(role_of(&c, "Team-payments") == TG_ROLE_WORKER);
      TG_CHECK(c.subject && strcmp(c.subject, "worker-a@payments") == 0);
    }
    tg_claims_clear(&c);
    tg_certmap_free(m);
    hook_armed = 0;
    if (hook_live != 0)
      fprintf(stderr, "  certmap, failing allocation %ld: %ld leaked\n", n,
              hook_live);
    TG_CHECK(hook_live == 0);
    if (!failed)
      break;
  }
  TG_CHECK(n > 1 && n < 10000);
  tg_cert_fields_free(f);
  X509_free(x);
#endif
}

int main(void) {
  test_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  if (!test_key) {
    fprintf(stderr, "cannot generate a P-256 key\n");
    return 1;
  }
  TG_RUN(test_fields_from_x509);
  TG_RUN(test_fields_drop_bad_values);
  TG_RUN(test_exact_match);
  TG_RUN(test_glob);
  TG_RUN(test_glob_on_certificate);
  TG_RUN(test_named_captures_and_fields);
  TG_RUN(test_two_fields);
  TG_RUN(test_several_rules);
  TG_RUN(test_subject_fallbacks);
  TG_RUN(test_system_scope);
  TG_RUN(test_system_scope_regex);
  TG_RUN(test_add_errors);
  TG_RUN(test_rule_is_copied);
  TG_RUN(test_long_values);
  TG_RUN(test_out_of_memory);
  EVP_PKEY_free(test_key);
  return TG_DONE();
}
