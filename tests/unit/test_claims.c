/* Unit tests for src/claims.c (tg_claims_*, tg_perm_*). */
#include "tg_claims.h"
#include "tg_test.h"

#include <stdlib.h>
#include <time.h>

#include "tg_failmalloc.h"

static int apply(tg_claims *c, const char *perm, const tg_perm_opts *opts) {
  return tg_perm_apply(c, perm, strlen(perm), opts);
}

static uint8_t role_of(const tg_claims *c, const char *ns) {
  return tg_claims_ns_role(c, ns, strlen(ns));
}

static int has_ns(const tg_claims *c, const char *ns) {
  for (size_t i = 0; i < c->nns; i++)
    if (c->ns[i].len == strlen(ns) &&
        memcmp(c->ns[i].ns, ns, c->ns[i].len) == 0)
      return 1;
  return 0;
}

/* Sorted bytewise, unique, NUL-terminated, lengths right. */
static int well_formed(const tg_claims *c) {
  if (c->nns > c->cap || (c->nns && !c->ns))
    return 0;
  for (size_t i = 0; i < c->nns; i++) {
    if (!c->ns[i].ns || c->ns[i].ns[c->ns[i].len] != '\0' ||
        strlen(c->ns[i].ns) != c->ns[i].len)
      return 0;
    if (i > 0) {
      size_t a = c->ns[i - 1].len, b = c->ns[i].len, n = a < b ? a : b;
      int r = memcmp(c->ns[i - 1].ns, c->ns[i].ns, n);
      if (r > 0 || (r == 0 && a >= b))
        return 0;
    }
  }
  return 1;
}

TG_TEST(test_role_names) {
  TG_CHECK(tg_perm_role("read", 4) == TG_ROLE_READ);
  TG_CHECK(tg_perm_role("write", 5) == TG_ROLE_WRITE);
  TG_CHECK(tg_perm_role("worker", 6) == TG_ROLE_WORKER);
  TG_CHECK(tg_perm_role("admin", 5) == TG_ROLE_ADMIN);
  TG_CHECK(tg_perm_role("READ", 4) == TG_ROLE_READ);
  TG_CHECK(tg_perm_role("AdMiN", 5) == TG_ROLE_ADMIN);
  TG_CHECK(tg_perm_role("readx", 4) == TG_ROLE_READ); /* len counts */
  TG_CHECK(tg_perm_role("read", 3) == 0);
  TG_CHECK(tg_perm_role("", 0) == 0);
  TG_CHECK(tg_perm_role("reader", 6) == 0);
  TG_CHECK(tg_perm_role(" read", 5) == 0);
  TG_CHECK(tg_perm_role("read\0", 5) == 0);
  /* Go's ToLower maps U+0130 to 'i'; tgate does not (grants less). */
  TG_CHECK(tg_perm_role("ADM\xc4\xb0N", 6) == 0);
  TG_CHECK(TG_ROLE_WORKER == 1 && TG_ROLE_READ == 2 && TG_ROLE_WRITE == 4 &&
           TG_ROLE_ADMIN == 8);
}

TG_TEST(test_permission_table) {
  static const struct {
    const char *perm;
    int rc;
    const char *ns; /* namespace expected to be recorded, or NULL */
    uint8_t role;
    uint8_t system;
  } cases[] = {
      {"payments:read", 1, "payments", TG_ROLE_READ, 0},
      {"payments:READ", 1, "payments", TG_ROLE_READ, 0},
      {"payments:Write", 1, "payments", TG_ROLE_WRITE, 0},
      {"payments:worker", 1, "payments", TG_ROLE_WORKER, 0},
      {"payments:admin", 1, "payments", TG_ROLE_ADMIN, 0},
      {"payments:owner", 1, "payments", 0, 0},
      {"payments:", 1, "payments", 0, 0},
      {"a:b:c", 1, "a", 0, 0},
      {"ns:read:x", 1, "ns", 0, 0},
      {"a::read", 1, "a", 0, 0},
      {"payments", 0, NULL, 0, 0},
      {"", 0, NULL, 0, 0},
      {":read", 0, NULL, 0, 0},
      {":", 0, NULL, 0, 0},
      {"temporal-system:admin", 1, NULL, 0, TG_ROLE_ADMIN},
      {"temporal-system:READ", 1, NULL, 0, TG_ROLE_READ},
      {"temporal-system:bogus", 1, NULL, 0, 0},
      {"Temporal-System:admin", 1, "Temporal-System", TG_ROLE_ADMIN, 0},
      {"system:admin", 1, "system", TG_ROLE_ADMIN, 0},
      {"temporal-system :admin", 1, "temporal-system ", TG_ROLE_ADMIN, 0},
      {"my.ns-1_x:read", 1, "my.ns-1_x", TG_ROLE_READ, 0},
      {" payments:read", 1, " payments", TG_ROLE_READ, 0},
      {"payments: read", 1, "payments", 0, 0},
      {"ns\xc3\xa9:write", 1, "ns\xc3\xa9", TG_ROLE_WRITE, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tg_claims c;
    tg_claims_init(&c);
    int rc = apply(&c, cases[i].perm, NULL);
    if (rc != cases[i].rc || c.system != cases[i].system ||
        c.nns != (cases[i].ns ? 1u : 0u) ||
        (cases[i].ns && (!has_ns(&c, cases[i].ns) ||
                         role_of(&c, cases[i].ns) != cases[i].role))) {
      fprintf(stderr, "  case \"%s\": rc %d, system %u, %zu namespaces\n",
              cases[i].perm, rc, c.system, c.nns);
      TG_CHECK(0);
    }
    TG_CHECK(c.subject == NULL && c.kinds == 0 && c.not_after == 0);
    tg_claims_clear(&c);
  }
}

TG_TEST(test_permission_nul_bytes) {
  tg_claims c;
  tg_claims_init(&c);
  /* A NUL in the namespace would read as "payments" to C-string users. */
  TG_CHECK(tg_perm_apply(&c, "payments\0x:admin", 16, NULL) == 0);
  TG_CHECK(c.nns == 0);
  TG_CHECK(tg_perm_apply(&c, "payments:read\0", 14, NULL) == 1);
  TG_CHECK(role_of(&c, "payments") == 0);
  TG_CHECK(tg_perm_apply(&c, "payments:readx", 13, NULL) == 1);
  TG_CHECK(role_of(&c, "payments") == TG_ROLE_READ);
  TG_CHECK(tg_perm_apply(&c, NULL, 0, NULL) == 0);
  tg_claims_clear(&c);
}

TG_TEST(test_system_names) {
  static const char *const custom[] = {"system"};
  static const char *const both[] = {"temporal-system", "system"};
  tg_perm_opts o = {.system_names = custom, .nsystem_names = 1};
  tg_claims c;

  tg_claims_init(&c);
  TG_CHECK(apply(&c, "system:admin", &o) == 1);
  TG_CHECK(c.system == TG_ROLE_ADMIN && c.nns == 0);
  TG_CHECK(apply(&c, "temporal-system:read", &o) == 1);
  TG_CHECK(c.system == TG_ROLE_ADMIN);
  TG_CHECK(role_of(&c, "temporal-system") == TG_ROLE_READ);
  tg_claims_clear(&c);

  o.system_names = both;
  o.nsystem_names = 2;
  TG_CHECK(apply(&c, "system:read", &o) == 1);
  TG_CHECK(apply(&c, "temporal-system:worker", &o) == 1);
  TG_CHECK(c.system == (TG_ROLE_READ | TG_ROLE_WORKER) && c.nns == 0);
  tg_claims_clear(&c);

  /* An empty list: no system scope at all. */
  o.nsystem_names = 0;
  TG_CHECK(apply(&c, "temporal-system:admin", &o) == 1);
  TG_CHECK(c.system == 0 && role_of(&c, "temporal-system") == TG_ROLE_ADMIN);
  tg_claims_clear(&c);

  TG_CHECK(tg_perm_is_system("temporal-system", 15, NULL));
  TG_CHECK(!tg_perm_is_system("temporal-system", 14, NULL));
  TG_CHECK(!tg_perm_is_system("system", 6, NULL));
  TG_CHECK(!tg_perm_is_system("", 0, NULL));
  o.nsystem_names = 2;
  TG_CHECK(tg_perm_is_system("system", 6, &o));
  tg_perm_opts defaults = {0};
  TG_CHECK(tg_perm_is_system("temporal-system", 15, &defaults));
}

TG_TEST(test_duplicates_and_case) {
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(apply(&c, "payments:read", NULL) == 1);
  TG_CHECK(apply(&c, "payments:WRITE", NULL) == 1);
  TG_CHECK(apply(&c, "payments:read", NULL) == 1);
  TG_CHECK(apply(&c, "payments:nothing", NULL) == 1);
  TG_CHECK(apply(&c, "Payments:admin", NULL) == 1);
  TG_CHECK(apply(&c, "PAYMENTS:worker", NULL) == 1);
  TG_CHECK(c.nns == 3);
  TG_CHECK(role_of(&c, "payments") == (TG_ROLE_READ | TG_ROLE_WRITE));
  TG_CHECK(role_of(&c, "Payments") == TG_ROLE_ADMIN);
  TG_CHECK(role_of(&c, "PAYMENTS") == TG_ROLE_WORKER);
  TG_CHECK(role_of(&c, "payment") == 0);
  TG_CHECK(role_of(&c, "paymentsx") == 0);
  TG_CHECK(role_of(&c, "") == 0);
  TG_CHECK(well_formed(&c));
  TG_CHECK(tg_claims_grant(&c, "payments", 8, TG_ROLE_ADMIN) == 0);
  TG_CHECK(role_of(&c, "payments") ==
           (TG_ROLE_READ | TG_ROLE_WRITE | TG_ROLE_ADMIN));
  TG_CHECK(c.nns == 3);
  tg_claims_clear(&c);
}

TG_TEST(test_long_names) {
  size_t n = 100000;
  char *p = malloc(n + 7);
  TG_CHECK(p != NULL);
  if (!p)
    return;
  memset(p, 'n', n);
  memcpy(p + n, ":admin", 7);
  p[10] = '.';
  p[20] = '-';
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(tg_perm_apply(&c, p, n + 6, NULL) == 1);
  TG_CHECK(c.nns == 1 && c.ns[0].len == n &&
           tg_claims_ns_role(&c, p, n) == TG_ROLE_ADMIN);
  TG_CHECK(tg_claims_ns_role(&c, p, n - 1) == 0);
  /* A role made of 100000 bytes is simply unknown. */
  memset(p, 'r', n);
  memcpy(p, "ns:", 3);
  TG_CHECK(tg_perm_apply(&c, p, n, NULL) == 1);
  TG_CHECK(role_of(&c, "ns") == 0 && c.nns == 2);
  TG_CHECK(well_formed(&c));
  tg_claims_clear(&c);
  free(p);
}

TG_TEST(test_sorted_unique) {
  static const char *const names[] = {"m",     "b",    "zz",  "a", "B", "a-",
                                      "ab",    "\xff", "a.b", "",  "m", "a",
                                      "b\x7f", "b",    "Z",   "aa"};
  size_t n = sizeof(names) / sizeof(names[0]);
  tg_claims c;
  tg_claims_init(&c);
  for (size_t round = 0; round < 3; round++)
    for (size_t i = 0; i < n; i++) {
      size_t k = (i * 7 + round * 5) % n;
      TG_CHECK(tg_claims_grant(&c, names[k], strlen(names[k]),
                               (uint8_t)(1u << (k % 4))) == 0);
    }
  TG_CHECK(well_formed(&c));
  TG_CHECK(c.nns == 13);
  /* Bytewise: uppercase before lowercase, prefixes first, 0xff last. */
  TG_CHECK(c.ns[0].len == 0);
  TG_CHECK(strcmp(c.ns[1].ns, "B") == 0 && strcmp(c.ns[2].ns, "Z") == 0);
  TG_CHECK(strcmp(c.ns[3].ns, "a") == 0 && strcmp(c.ns[4].ns, "a-") == 0);
  TG_CHECK(strcmp(c.ns[5].ns, "a.b") == 0 && strcmp(c.ns[6].ns, "aa") == 0);
  TG_CHECK(strcmp(c.ns[c.nns - 1].ns, "\xff") == 0);
  /* "a" appears at k=3 and k=11: both grants OR-ed. */
  TG_CHECK(role_of(&c, "a") == ((1u << 3) | (1u << 3)));
  TG_CHECK(role_of(&c, "m") == ((1u << 0) | (1u << 2)));
  TG_CHECK(role_of(&c, "absent") == 0);
  tg_claims_clear(&c);
  TG_CHECK(c.nns == 0 && c.ns == NULL && c.subject == NULL);
  TG_CHECK(role_of(&c, "a") == 0);
  /* Reusable after clear. */
  TG_CHECK(apply(&c, "x:read", NULL) == 1);
  TG_CHECK(role_of(&c, "x") == TG_ROLE_READ);
  tg_claims_clear(&c);
}

TG_TEST(test_many_namespaces) {
  tg_claims c;
  char name[32];
  tg_claims_init(&c);
  srand(7);
  for (int i = 0; i < 3000; i++) {
    int k = rand() % 1000;
    int len = snprintf(name, sizeof(name), "ns-%d", k);
    TG_CHECK(tg_claims_grant(&c, name, (size_t)len, TG_ROLE_READ) == 0);
  }
  TG_CHECK(well_formed(&c));
  TG_CHECK(c.nns <= 1000 && c.nns > 900);
  for (size_t i = 0; i < c.nns; i++)
    TG_CHECK(c.ns[i].role == TG_ROLE_READ);
  tg_claims_clear(&c);
}

TG_TEST(test_subject) {
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(tg_claims_set_subject(&c, "alice@x", 5) == 0);
  TG_CHECK(c.subject && strcmp(c.subject, "alice") == 0);
  TG_CHECK(tg_claims_set_subject(&c, "bob", 3) == 0);
  TG_CHECK(strcmp(c.subject, "alice") == 0);
  tg_claims_clear(&c);
  TG_CHECK(tg_claims_set_subject(&c, "", 0) == 0);
  TG_CHECK(c.subject && *c.subject == '\0');
  tg_claims_clear(&c);
}

TG_TEST(test_merge) {
  tg_claims a, b;
  tg_claims_init(&a);
  tg_claims_init(&b);
  TG_CHECK(apply(&a, "payments:read", NULL) == 1);
  TG_CHECK(apply(&a, "orders:nothing", NULL) == 1);
  TG_CHECK(apply(&a, "temporal-system:read", NULL) == 1);
  a.kinds = TG_CRED_CLIENT_CERT;
  a.not_after = 2000;
  TG_CHECK(apply(&b, "payments:write", NULL) == 1);
  TG_CHECK(apply(&b, "billing:admin", NULL) == 1);
  TG_CHECK(apply(&b, "zeta:bogus", NULL) == 1);
  TG_CHECK(apply(&b, "temporal-system:admin", NULL) == 1);
  TG_CHECK(tg_claims_set_subject(&b, "bob", 3) == 0);
  b.kinds = TG_CRED_JWT;
  b.not_after = 1000;

  TG_CHECK(tg_claims_merge(&a, &b) == 0);
  TG_CHECK(well_formed(&a));
  TG_CHECK(a.nns == 4);
  TG_CHECK(role_of(&a, "payments") == (TG_ROLE_READ | TG_ROLE_WRITE));
  TG_CHECK(role_of(&a, "billing") == TG_ROLE_ADMIN);
  TG_CHECK(has_ns(&a, "orders") && has_ns(&a, "zeta"));
  TG_CHECK(a.system == (TG_ROLE_READ | TG_ROLE_ADMIN));
  TG_CHECK(a.kinds == (TG_CRED_CLIENT_CERT | TG_CRED_JWT));
  TG_CHECK(a.subject && strcmp(a.subject, "bob") == 0);
  TG_CHECK(a.subject != b.subject);
  TG_CHECK(a.not_after == 1000);
  /* src untouched, and not aliased. */
  TG_CHECK(b.nns == 3 && role_of(&b, "payments") == TG_ROLE_WRITE);
  for (size_t i = 0; i < a.nns; i++)
    for (size_t j = 0; j < b.nns; j++)
      TG_CHECK(a.ns[i].ns != b.ns[j].ns);

  /* The first subject stays. */
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(tg_claims_set_subject(&c, "carol", 5) == 0);
  TG_CHECK(tg_claims_merge(&a, &c) == 0);
  TG_CHECK(strcmp(a.subject, "bob") == 0);
  TG_CHECK(tg_claims_merge(&c, &a) == 0);
  TG_CHECK(strcmp(c.subject, "carol") == 0 && c.nns == 4);
  tg_claims_clear(&c);

  /* Merging into itself, or an empty value, changes nothing. */
  TG_CHECK(tg_claims_merge(&a, &a) == 0);
  TG_CHECK(a.nns == 4 && role_of(&a, "billing") == TG_ROLE_ADMIN);
  tg_claims_init(&c);
  TG_CHECK(tg_claims_merge(&a, &c) == 0);
  TG_CHECK(a.nns == 4 && a.not_after == 1000 && well_formed(&a));
  tg_claims_clear(&a);
  tg_claims_clear(&b);
}

TG_TEST(test_not_after) {
  static const struct {
    int64_t dst, src, want;
  } cases[] = {{0, 0, 0},         {0, 500, 500},    {500, 0, 500},
               {500, 400, 400},   {400, 500, 400},  {500, 500, 500},
               {1, INT64_MAX, 1}, {INT64_MAX, 7, 7}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    tg_claims a, b;
    tg_claims_init(&a);
    tg_claims_init(&b);
    a.not_after = cases[i].dst;
    b.not_after = cases[i].src;
    TG_CHECK(tg_claims_merge(&a, &b) == 0);
    if (a.not_after != cases[i].want)
      fprintf(stderr, "  case %zu: not_after %lld\n", i,
              (long long)a.not_after);
    TG_CHECK(a.not_after == cases[i].want);
    tg_claims_clear(&a);
    tg_claims_clear(&b);
  }
}

TG_TEST(test_copy) {
  tg_claims src, dst;
  tg_claims_init(&src);
  tg_claims_init(&dst);
  TG_CHECK(apply(&src, "payments:read", NULL) == 1);
  TG_CHECK(apply(&src, "orders:worker", NULL) == 1);
  TG_CHECK(apply(&src, "unknown:x", NULL) == 1);
  TG_CHECK(apply(&src, "temporal-system:write", NULL) == 1);
  TG_CHECK(tg_claims_set_subject(&src, "svc", 3) == 0);
  src.kinds = TG_CRED_API_KEY | TG_CRED_PLUGIN;
  src.not_after = 42;

  TG_CHECK(tg_claims_copy(&dst, &src) == 0);
  TG_CHECK(well_formed(&dst));
  TG_CHECK(dst.nns == 3 && dst.system == TG_ROLE_WRITE);
  TG_CHECK(dst.kinds == (TG_CRED_API_KEY | TG_CRED_PLUGIN));
  TG_CHECK(dst.not_after == 42);
  TG_CHECK(dst.subject && strcmp(dst.subject, "svc") == 0 &&
           dst.subject != src.subject);
  TG_CHECK(role_of(&dst, "unknown") == 0 && has_ns(&dst, "unknown"));
  /* Deep: changing or freeing src leaves the copy alone. */
  TG_CHECK(apply(&src, "payments:admin", NULL) == 1);
  src.ns[0].ns[0] = 'X';
  TG_CHECK(role_of(&dst, "payments") == TG_ROLE_READ);
  TG_CHECK(has_ns(&dst, "orders"));
  tg_claims_clear(&src);
  TG_CHECK(role_of(&dst, "orders") == TG_ROLE_WORKER);
  tg_claims_clear(&dst);

  /* A copy of an empty value is empty. */
  TG_CHECK(tg_claims_copy(&dst, &src) == 0);
  TG_CHECK(dst.nns == 0 && dst.subject == NULL && dst.not_after == 0);
  tg_claims_clear(&dst);
}

/* A merge's result lives in one block; growing it afterwards (a new
 * namespace, a first subject) works as on any other value. */
TG_TEST(test_packed_then_changed) {
  tg_claims src, dst;
  tg_claims_init(&src);
  tg_claims_init(&dst);
  TG_CHECK(apply(&src, "payments:read", NULL) == 1);
  TG_CHECK(apply(&src, "orders:worker", NULL) == 1);
  TG_CHECK(tg_claims_copy(&dst, &src) == 0);
  TG_CHECK(dst.packed != NULL && dst.subject == NULL && well_formed(&dst));
  /* An existing namespace: in place. */
  TG_CHECK(tg_claims_grant(&dst, "orders", 6, TG_ROLE_READ) == 0);
  TG_CHECK(dst.packed != NULL);
  TG_CHECK(role_of(&dst, "orders") == (TG_ROLE_WORKER | TG_ROLE_READ));
  TG_CHECK(role_of(&src, "orders") == TG_ROLE_WORKER);
  TG_CHECK(tg_claims_set_subject(&dst, "svc", 3) == 0);
  TG_CHECK(dst.packed == NULL && strcmp(dst.subject, "svc") == 0);
  TG_CHECK(well_formed(&dst) && dst.nns == 2);
  tg_claims_clear(&dst);
  TG_CHECK(tg_claims_set_subject(&src, "s", 1) == 0);
  TG_CHECK(tg_claims_copy(&dst, &src) == 0);
  TG_CHECK(tg_claims_grant(&dst, "aardvark", 8, TG_ROLE_ADMIN) == 0);
  TG_CHECK(tg_claims_grant(&dst, "zebra", 5, TG_ROLE_WRITE) == 0);
  TG_CHECK(well_formed(&dst) && dst.nns == 4 && strcmp(dst.subject, "s") == 0);
  TG_CHECK(role_of(&dst, "payments") == TG_ROLE_READ);
  TG_CHECK(role_of(&dst, "aardvark") == TG_ROLE_ADMIN);
  /* A merge into a packed value, and of a packed value. */
  tg_claims more;
  tg_claims_init(&more);
  TG_CHECK(tg_claims_copy(&more, &src) == 0);
  TG_CHECK(tg_claims_merge(&more, &dst) == 0);
  TG_CHECK(well_formed(&more) && more.nns == 4 && more.packed != NULL);
  TG_CHECK(role_of(&more, "zebra") == TG_ROLE_WRITE);
  TG_CHECK(strcmp(more.subject, "s") == 0 && more.subject != dst.subject);
  /* Only a subject to add. */
  tg_claims subj, empty;
  tg_claims_init(&subj);
  tg_claims_init(&empty);
  TG_CHECK(tg_claims_set_subject(&subj, "only", 4) == 0);
  TG_CHECK(tg_claims_merge(&empty, &subj) == 0);
  TG_CHECK(empty.nns == 0 && empty.ns == NULL && empty.packed != NULL &&
           strcmp(empty.subject, "only") == 0);
  TG_CHECK(tg_claims_grant(&empty, "x", 1, TG_ROLE_READ) == 0);
  TG_CHECK(well_formed(&empty) && strcmp(empty.subject, "only") == 0);
  tg_claims_clear(&empty);
  tg_claims_clear(&subj);
  tg_claims_clear(&more);
  tg_claims_clear(&dst);
  tg_claims_clear(&src);
}

TG_TEST(test_regex) {
  char err[256] = "";
  tg_perm_regex *re = tg_perm_regex_new("(?P<namespace>[^.]+)\\.(?P<role>\\w+)",
                                        err, sizeof(err));
  TG_CHECK(re != NULL);
  if (!re) {
    fprintf(stderr, "  %s\n", err);
    return;
  }
  tg_perm_opts o = {.regex = re};
  tg_claims c;
  tg_claims_init(&c);
  TG_CHECK(apply(&c, "payments.read", &o) == 1);
  TG_CHECK(role_of(&c, "payments") == TG_ROLE_READ);
  TG_CHECK(apply(&c, "payments.ADMIN", &o) == 1);
  TG_CHECK(role_of(&c, "payments") == (TG_ROLE_READ | TG_ROLE_ADMIN));
  /* Unanchored, first match: "x.write.y" -> "x", "write". */
  TG_CHECK(apply(&c, "orders.write.admin", &o) == 1);
  TG_CHECK(role_of(&c, "orders") == TG_ROLE_WRITE);
  TG_CHECK(role_of(&c, "write") == 0 && !has_ns(&c, "write"));
  /* \w+ stops at '-': the role is "work". */
  TG_CHECK(apply(&c, "ops.work-er", &o) == 1);
  TG_CHECK(has_ns(&c, "ops") && role_of(&c, "ops") == 0);
  /* The split form no longer applies. */
  TG_CHECK(apply(&c, "billing:read", &o) == 0);
  TG_CHECK(!has_ns(&c, "billing") && !has_ns(&c, "billing:read"));
  TG_CHECK(apply(&c, "", &o) == 0);
  TG_CHECK(apply(&c, ".read", &o) == 0);
  TG_CHECK(apply(&c, "temporal-system.admin", &o) == 1);
  TG_CHECK(c.system == TG_ROLE_ADMIN);
  TG_CHECK(well_formed(&c));
  tg_claims_clear(&c);
  tg_perm_regex_free(re);

  /* A group that does not take part yields "" (Go): role unknown. */
  re = tg_perm_regex_new("^(?P<namespace>[a-z]+)(?:=(?P<role>[a-z]+))?$", err,
                         sizeof(err));
  TG_CHECK(re != NULL);
  o.regex = re;
  TG_CHECK(apply(&c, "payments", &o) == 1);
  TG_CHECK(has_ns(&c, "payments") && role_of(&c, "payments") == 0);
  TG_CHECK(apply(&c, "payments=worker", &o) == 1);
  TG_CHECK(role_of(&c, "payments") == TG_ROLE_WORKER);
  /* '$' is the very end, as in Go: not before a final newline. */
  TG_CHECK(apply(&c, "orders=read\n", &o) == 0);
  TG_CHECK(!has_ns(&c, "orders"));
  tg_claims_clear(&c);
  tg_perm_regex_free(re);

  /* A namespace group that matches "" is skipped. */
  re = tg_perm_regex_new("(?P<namespace>[a-z]*)/(?P<role>[a-z]+)", err,
                         sizeof(err));
  TG_CHECK(re != NULL);
  o.regex = re;
  TG_CHECK(apply(&c, "/admin", &o) == 0);
  TG_CHECK(c.nns == 0 && c.system == 0);
  TG_CHECK(apply(&c, "ns/admin", &o) == 1);
  TG_CHECK(role_of(&c, "ns") == TG_ROLE_ADMIN);
  tg_claims_clear(&c);
  tg_perm_regex_free(re);

  /* Roles and namespaces in either order; custom system names apply. */
  static const char *const sys[] = {"system"};
  re =
      tg_perm_regex_new("^(?<role>[a-z]+)@(?<namespace>.+)$", err, sizeof(err));
  TG_CHECK(re != NULL);
  o.regex = re;
  o.system_names = sys;
  o.nsystem_names = 1;
  TG_CHECK(apply(&c, "write@system", &o) == 1);
  TG_CHECK(c.system == TG_ROLE_WRITE && c.nns == 0);
  TG_CHECK(apply(&c, "read@a@b", &o) == 1);
  TG_CHECK(role_of(&c, "a@b") == TG_ROLE_READ);
  tg_claims_clear(&c);
  tg_perm_regex_free(re);
  tg_perm_regex_free(NULL);
}

TG_TEST(test_regex_errors) {
  char err[256];
  static const struct {
    const char *pattern;
    const char *why;
  } cases[] = {
      {"(?P<namespace>[a-z]+):(?P<rol>[a-z]+)", "\"role\""},
      {"(?P<ns>[a-z]+):(?P<role>[a-z]+)", "\"namespace\""},
      {"([a-z]+):([a-z]+)", "\"namespace\""},
      {"", "\"namespace\""},
      {"(?P<namespace>[a-z+:(?P<role>[a-z]+)", "\"role\""},
      {"(?P<namespace>[a-z]+:(?P<role>[a-z]+)", "invalid permissions regex"},
      {"(?P<namespace>a)(?P<role>b", "invalid permissions regex"},
      {"(?P<namespace>a)(?P<role>b)(?P<role>c)", "same name"},
      {"(?P<namespace>a)(?P<role>b)\\", "invalid permissions regex"},
      {"*(?P<namespace>a)(?P<role>b)", "at offset 0"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    strcpy(err, "");
    tg_perm_regex *re = tg_perm_regex_new(cases[i].pattern, err, sizeof(err));
    TG_CHECK(re == NULL);
    TG_CHECK_STR_CONTAINS(err, cases[i].why);
    tg_perm_regex_free(re);
  }
  TG_CHECK(tg_perm_regex_new(NULL, err, sizeof(err)) == NULL);
  TG_CHECK(tg_perm_regex_new("(", NULL, 0) == NULL);
  char tiny[8];
  TG_CHECK(tg_perm_regex_new("(", tiny, sizeof(tiny)) == NULL);
  TG_CHECK(strlen(tiny) == sizeof(tiny) - 1);
}

TG_TEST(test_regex_backtracking_bounded) {
  char err[256] = "";
  tg_perm_regex *re =
      tg_perm_regex_new("^(?P<namespace>(a|aa)+)(?P<role>)$", err, sizeof(err));
  TG_CHECK(re != NULL);
  if (!re)
    return;
  tg_perm_opts o = {.regex = re};
  char s[64];
  memset(s, 'a', sizeof(s));
  s[sizeof(s) - 1] = 'b';
  tg_claims c;
  tg_claims_init(&c);
  clock_t t0 = clock();
  TG_CHECK(tg_perm_apply(&c, s, sizeof(s), &o) == 0);
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  if (secs > 2.0)
    fprintf(stderr, "  catastrophic pattern took %.2fs\n", secs);
  TG_CHECK(secs < 2.0);
  TG_CHECK(c.nns == 0);
  /* Still matches what it should. */
  TG_CHECK(tg_perm_apply(&c, s, sizeof(s) - 1, &o) == 1);
  TG_CHECK(c.nns == 1 && c.ns[0].len == sizeof(s) - 1);
  tg_claims_clear(&c);
  tg_perm_regex_free(re);
}

TG_TEST(test_out_of_memory) {
#ifdef TG_TEST_MALLOC_HOOK
  if (!hook_works())
    return;
  static const char *const perms[] = {"payments:read", "orders:write",
                                      "a:admin",       "temporal-system:read",
                                      "zz:worker",     "m:x"};
  size_t nperms = sizeof(perms) / sizeof(perms[0]);
  char err[256];
  long n;

  /* tg_perm_apply: a failure leaves what was granted before intact. */
  for (n = 1; n < 1000; n++) {
    tg_claims c;
    tg_claims_init(&c);
    hook_arm(n);
    int nomem = 0;
    for (size_t i = 0; i < nperms && !nomem; i++) {
      int rc = apply(&c, perms[i], NULL);
      TG_CHECK(rc == 1 || rc == TG_CLAIMS_ERR_NOMEM);
      nomem = rc == TG_CLAIMS_ERR_NOMEM;
      TG_CHECK(well_formed(&c));
    }
    int failed = hook_failed;
    TG_CHECK(nomem == failed);
    tg_claims_clear(&c);
    hook_armed = 0;
    TG_CHECK(hook_live == 0);
    if (!failed)
      break;
  }
  TG_CHECK(n > 1 && n < 1000);

  /* tg_claims_merge: all or nothing. */
  tg_claims base, src;
  tg_claims_init(&base);
  tg_claims_init(&src);
  for (size_t i = 0; i < 3; i++)
    TG_CHECK(apply(&base, perms[i], NULL) == 1);
  for (size_t i = 2; i < nperms; i++)
    TG_CHECK(apply(&src, perms[i], NULL) == 1);
  TG_CHECK(tg_claims_set_subject(&src, "s", 1) == 0);
  src.not_after = 9;
  for (n = 1; n < 1000; n++) {
    tg_claims dst;
    tg_claims_init(&dst);
    hook_arm(0); /* count live blocks, fail nothing */
    TG_CHECK(tg_claims_copy(&dst, &base) == 0);
    hook_count = 0;
    hook_fail_at = n;
    int rc = tg_claims_merge(&dst, &src);
    int failed = hook_failed;
    hook_fail_at = 0;
    if (failed) {
      TG_CHECK(rc == TG_CLAIMS_ERR_NOMEM);
      TG_CHECK(dst.nns == 3 && dst.subject == NULL && dst.not_after == 0);
      TG_CHECK(dst.system == 0 && role_of(&dst, "a") == TG_ROLE_ADMIN);
      TG_CHECK(well_formed(&dst));
    } else {
      TG_CHECK(rc == 0 && dst.nns == 5 && dst.not_after == 9);
    }
    tg_claims_clear(&dst);
    hook_armed = 0;
    TG_CHECK(hook_live == 0);
    if (!failed)
      break;
  }
  TG_CHECK(n > 1 && n < 1000);

  /* A new namespace or subject on a packed value: all or nothing. */
  for (n = 1; n < 1000; n++) {
    tg_claims dst;
    tg_claims_init(&dst);
    hook_arm(0);
    TG_CHECK(tg_claims_copy(&dst, &base) == 0);
    hook_count = 0;
    hook_fail_at = n;
    int rc = tg_claims_grant(&dst, "new", 3, TG_ROLE_READ);
    int rs = tg_claims_set_subject(&dst, "s", 1);
    int failed = hook_failed;
    hook_fail_at = 0;
    TG_CHECK(well_formed(&dst) && role_of(&dst, "a") == TG_ROLE_ADMIN);
    if (rc == 0)
      TG_CHECK(dst.nns == 4 && role_of(&dst, "new") == TG_ROLE_READ);
    else
      TG_CHECK(rc == TG_CLAIMS_ERR_NOMEM && dst.nns == 3 &&
               !has_ns(&dst, "new"));
    if (rs == 0)
      TG_CHECK(strcmp(dst.subject, "s") == 0);
    else
      TG_CHECK(rs == TG_CLAIMS_ERR_NOMEM && dst.subject == NULL);
    TG_CHECK(failed == (rc != 0 || rs != 0));
    tg_claims_clear(&dst);
    hook_armed = 0;
    TG_CHECK(hook_live == 0);
    if (!failed)
      break;
  }
  TG_CHECK(n > 3 && n < 1000);
  tg_claims_clear(&base);
  tg_claims_clear(&src);

  /* Regex compile and match. */
  for (n = 1; n < 1000; n++) {
    hook_arm(n);
    tg_perm_regex *re = tg_perm_regex_new(
        "(?P<namespace>[^.]+)\\.(?P<role>\\w+)", err, sizeof(err));
    int failed = hook_failed;
    int rc = 0;
    tg_claims c;
    tg_claims_init(&c);
    if (re) {
      tg_perm_opts o = {.regex = re};
      rc = apply(&c, "payments.read", &o);
      failed = hook_failed;
    }
    if (failed && !re)
      TG_CHECK_STR_CONTAINS(err, "out of memory");
    if (failed && re)
      TG_CHECK(rc == TG_CLAIMS_ERR_NOMEM && c.nns == 0);
    tg_claims_clear(&c);
    tg_perm_regex_free(re);
    hook_armed = 0;
    TG_CHECK(hook_live == 0);
    if (!failed) {
      TG_CHECK(re && rc == 1);
      break;
    }
  }
  TG_CHECK(n > 1 && n < 1000);
#endif
}

int main(void) {
  TG_RUN(test_role_names);
  TG_RUN(test_permission_table);
  TG_RUN(test_permission_nul_bytes);
  TG_RUN(test_system_names);
  TG_RUN(test_duplicates_and_case);
  TG_RUN(test_long_names);
  TG_RUN(test_sorted_unique);
  TG_RUN(test_many_namespaces);
  TG_RUN(test_subject);
  TG_RUN(test_merge);
  TG_RUN(test_not_after);
  TG_RUN(test_copy);
  TG_RUN(test_packed_then_changed);
  TG_RUN(test_regex);
  TG_RUN(test_regex_errors);
  TG_RUN(test_regex_backtracking_bounded);
  TG_RUN(test_out_of_memory);
  return TG_DONE();
}
