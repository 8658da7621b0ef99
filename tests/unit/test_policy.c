#include "tg_policy.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>

#include "tg_test.h"

#define START "WorkflowService/StartWorkflowExecution"
#define DESCRIBE "WorkflowService/DescribeWorkflowExecution"
#define SIGNAL "WorkflowService/SignalWorkflowExecution"
#define POLL_WF "WorkflowService/PollWorkflowTaskQueue"
#define POLL_ACT "WorkflowService/PollActivityTaskQueue"
#define RESPOND "WorkflowService/RespondWorkflowTaskCompleted"
#define LIST_NS "WorkflowService/ListNamespaces"
#define REGISTER_NS "WorkflowService/RegisterNamespace"
#define LIST_CLUSTERS "OperatorService/ListClusters"
#define SYSINFO "WorkflowService/GetSystemInfo"

/* ---- helpers ---- */

static const tg_method *method(const char *name) {
  for (size_t i = 0; i < tg_methods_count(); i++)
    if (!strcmp(tg_method_at(i)->name, name))
      return tg_method_at(i);
  fprintf(stderr, "  method %s is not in the table\n", name);
  tg_test_failed_now = 1;
  return NULL;
}

static void list_set(tg_strlist *l, const char *const *v) {
  l->n = 0;
  l->v = NULL;
  if (!v)
    return;
  while (v[l->n])
    l->n++;
  l->v = calloc(l->n + 1, sizeof(*l->v));
  for (size_t i = 0; i < l->n; i++)
    l->v[i] = strdup(v[i]);
}

static void list_clear(tg_strlist *l) {
  for (size_t i = 0; i < l->n; i++)
    free(l->v[i]);
  free(l->v);
}

static tg_config *cfg_new(int worker_extended) {
  tg_config *c = calloc(1, sizeof(*c));
  c->authz_mode = TG_AUTHZ_ENFORCE;
  c->worker_role_extended = worker_extended;
  return c;
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static void cfg_rule(tg_config *c, int allow, size_t line,
                     const char *const *methods, const char *const *ns,
                     const char *const *subjects, const char *const *tqs,
                     const char *const *wts) {
  tg_authz_rule_cfg *r;
  c->authz_rules =
      realloc(c->authz_rules, (c->nauthz_rules + 1) * sizeof(*c->authz_rules));
  r = &c->authz_rules[c->nauthz_rules++];
  memset(r, 0, sizeof(*r));
  r->allow = allow;
  r->line = line;
  list_set(&r->methods, methods);
  list_set(&r->namespaces, ns);
  list_set(&r->subjects, subjects);
  list_set(&r->task_queues, tqs);
  list_set(&r->workflow_types, wts);
}

static void cfg_free(tg_config *c) {
  for (size_t i = 0; i < c->nauthz_rules; i++) {
    tg_authz_rule_cfg *r = &c->authz_rules[i];
    list_clear(&r->methods);
    list_clear(&r->namespaces);
    list_clear(&r->subjects);
    list_clear(&r->task_queues);
    list_clear(&r->workflow_types);
  }
  free(c->authz_rules);
  list_clear(&c->disabled_methods);
  free(c);
}

static tg_policy *policy(const tg_config *c) {
  char err[256] = "";
  tg_policy *p = tg_policy_new(c, err, sizeof(err));
  if (!p) {
    fprintf(stderr, "  tg_policy_new: %s\n", err);
    tg_test_failed_now = 1;
  }
  return p;
}

static tg_slice S(const char *s) {
  tg_slice x = {(const uint8_t *)s, s ? strlen(s) : 0};
  return x;
}

/* A request's task queues or workflow types: up to 8 C strings. */
typedef struct names {
  tg_slice v[8];
} names;

static tg_names N(names *buf, const char *const *v, int overflow) {
  size_t n = 0;
  while (v && v[n] && n < 8) {
    buf->v[n] = S(v[n]);
    n++;
  }
  return (tg_names){buf->v, n, overflow};
}

static tg_authz_request req(const char *name, const tg_claims *c,
                            const char *ns) {
  tg_authz_request rq;
  memset(&rq, 0, sizeof(rq));
  rq.method = method(name);
  rq.path = rq.method ? rq.method->path : "";
  rq.path_len = strlen(rq.path);
  rq.claims = c;
  rq.ns = S(ns);
  return rq;
}

static tg_authz_verdict decide(const tg_policy *p, const tg_authz_request *rq);

/* Claims from "ns:role" strings; "system:role" sets the system role. */
static void claims(tg_claims *c, const char *subject,
                   const char *const *perms) {
  tg_claims_init(c);
  if (subject)
    tg_claims_set_subject(c, subject, strlen(subject));
  for (size_t i = 0; perms && perms[i]; i++) {
    const char *colon = strchr(perms[i], ':');
    uint8_t role = tg_perm_role(colon + 1, strlen(colon + 1));
    if ((size_t)(colon - perms[i]) == 6 && !strncmp(perms[i], "system", 6))
      c->system |= role;
    else
      tg_claims_grant(c, perms[i], (size_t)(colon - perms[i]), role);
  }
}

static int builtin(const char *name, const tg_claims *c, const char *ns,
                   int ext) {
  const char *why = NULL;
  int r = tg_authz_builtin(method(name), c, ns, ns ? strlen(ns) : 0, ext, NULL,
                           0, &why);
  TG_CHECK(why != NULL);
  return r;
}

/* ---- trace collection ---- */

typedef struct lines {
  char v[64][512];
  size_t n;
} lines;

static void collect(void *arg, const char *line) {
  lines *l = arg;
  if (l->n < 64)
    snprintf(l->v[l->n++], sizeof(l->v[0]), "%s", line);
}

static int has_line(const lines *l, const char *prefix) {
  for (size_t i = 0; i < l->n; i++)
    if (!strncmp(l->v[i], prefix, strlen(prefix)))
      return 1;
  return 0;
}

/* Decides with and without a trace, and with terse_allow: all must give
 * the same verdict; terse_allow shortens only an allow's reason. */
static tg_authz_verdict decide(const tg_policy *p, const tg_authz_request *rq) {
  tg_authz_verdict a, b, t;
  tg_authz_request terse = *rq;
  lines *l = calloc(1, sizeof(*l));
  TG_CHECK(tg_policy_decide(p, rq, &a, NULL, NULL) == 0);
  TG_CHECK(tg_policy_decide(p, rq, &b, collect, l) == 0);
  TG_CHECK(a.allow == b.allow && a.rule == b.rule);
  TG_CHECK(!strcmp(a.reason, b.reason));
  terse.terse_allow = 1;
  TG_CHECK(tg_policy_decide(p, &terse, &t, NULL, NULL) == 0);
  TG_CHECK(t.allow == a.allow && t.rule == a.rule);
  TG_CHECK(!strcmp(t.reason, a.allow ? TG_POLICY_TERSE_ALLOW : a.reason));
  TG_CHECK(l->n >= 2);
  if (l->n) {
    TG_CHECK_STR_CONTAINS(l->v[0], "claims: ");
    TG_CHECK_STR_CONTAINS(l->v[l->n - 1], "decision: ");
    TG_CHECK_STR_CONTAINS(l->v[l->n - 1], a.reason);
  }
  free(l);
  return a;
}

/* ---- glob ---- */

TG_TEST(glob_basics) {
  TG_CHECK(tg_glob_match("", "", 0));
  TG_CHECK(!tg_glob_match("", "a", 1));
  TG_CHECK(tg_glob_match("*", "", 0));
  TG_CHECK(tg_glob_match("*", NULL, 0));
  TG_CHECK(tg_glob_match("*", "anything", 8));
  TG_CHECK(tg_glob_match("**", "", 0));
  TG_CHECK(tg_glob_match("abc", "abc", 3));
  TG_CHECK(!tg_glob_match("abc", "abcd", 4));
  TG_CHECK(!tg_glob_match("abc", "ab", 2));
  TG_CHECK(!tg_glob_match("ABC", "abc", 3));
  TG_CHECK(tg_glob_match("a*", "a", 1));
  TG_CHECK(tg_glob_match("a*", "abc", 3));
  TG_CHECK(!tg_glob_match("a*", "ba", 2));
  TG_CHECK(tg_glob_match("*c", "abc", 3));
  TG_CHECK(!tg_glob_match("*c", "cb", 2));
  TG_CHECK(tg_glob_match("a*c", "ac", 2));
  TG_CHECK(!tg_glob_match("ab*bc", "abc", 3)); /* segments may not overlap */
  TG_CHECK(tg_glob_match("ab*bc", "abbc", 4));
  TG_CHECK(tg_glob_match("a*b*c", "aXbYc", 5));
  TG_CHECK(tg_glob_match("a*b*c", "abbbc", 5));
  TG_CHECK(!tg_glob_match("a*b*c", "acb", 3));
  TG_CHECK(tg_glob_match("*aab*", "aaab", 4));
  TG_CHECK(tg_glob_match("*a*a*", "aa", 2));
  TG_CHECK(!tg_glob_match("*a*a*", "a", 1));
  TG_CHECK(tg_glob_match("prod-*-eu", "prod-x-eu", 9));
  TG_CHECK(!tg_glob_match("prod-*-eu", "prod-eu", 7));
  TG_CHECK(tg_glob_match("a\0b", "a", 1)); /* pattern ends at NUL */
  TG_CHECK(!tg_glob_match("a", "a\0", 2)); /* subject bytes are literal */
  TG_CHECK(tg_glob_match("*", "a\0b", 3));
}

TG_TEST(glob_long_input_is_linear) {
  size_t n = 1u << 22;
  char *s = malloc(n);
  memset(s, 'a', n);
  /* a backtracking matcher would take ~n * 40 steps per pattern */
  TG_CHECK(!tg_glob_match("*aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab*", s, n));
  TG_CHECK(!tg_glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", s, n));
  TG_CHECK(tg_glob_match("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a", s, n));
  free(s);
}

/* ---- built-in ---- */

TG_TEST(builtin_table) {
  tg_claims none, nsread, nswrite, nsadmin, nsrw, sysread, syswrite, sysadmin,
      other;
  const tg_method *m;

  /* the table's facts this test relies on */
  if ((m = method(START)))
    TG_CHECK(m->scope == TG_SCOPE_NAMESPACE && m->required == TG_ROLE_WRITE &&
             !m->worker);
  if ((m = method(DESCRIBE)))
    TG_CHECK(m->scope == TG_SCOPE_NAMESPACE && m->required == TG_ROLE_READ);
  if ((m = method(LIST_NS)))
    TG_CHECK(m->scope == TG_SCOPE_CLUSTER && m->required == TG_ROLE_READ);
  if ((m = method(LIST_CLUSTERS)))
    TG_CHECK(m->scope == TG_SCOPE_CLUSTER && m->required == TG_ROLE_ADMIN);
  if ((m = method(REGISTER_NS)))
    TG_CHECK(m->scope == TG_SCOPE_NAMESPACE && m->required == TG_ROLE_ADMIN);
  if ((m = method(SYSINFO)))
    TG_CHECK(m->always_allowed);

  claims(&none, "nobody", NULL);
  claims(&nsread, "r", L("pay:read"));
  claims(&nswrite, "w", L("pay:write"));
  claims(&nsadmin, "a", L("pay:admin"));
  claims(&nsrw, "rw", L("pay:read", "pay:worker"));
  claims(&sysread, "sr", L("system:read"));
  claims(&syswrite, "sw", L("system:write"));
  claims(&sysadmin, "sa", L("system:admin"));
  claims(&other, "o", L("other:admin"));

  /* namespace read */
  TG_CHECK(!builtin(DESCRIBE, &none, "pay", 0));
  TG_CHECK(builtin(DESCRIBE, &nsread, "pay", 0));
  TG_CHECK(builtin(DESCRIBE, &nswrite, "pay", 0));
  TG_CHECK(builtin(DESCRIBE, &nsadmin, "pay", 0));
  TG_CHECK(builtin(DESCRIBE, &sysread, "pay", 0));
  TG_CHECK(!builtin(DESCRIBE, &other, "pay", 0));
  TG_CHECK(!builtin(DESCRIBE, &nsread, "Pay", 0)); /* exact namespace */
  /* namespace write */
  TG_CHECK(!builtin(START, &nsread, "pay", 0));
  TG_CHECK(!builtin(START, &nsrw, "pay", 1)); /* read|worker = 3 < 4 */
  TG_CHECK(builtin(START, &nswrite, "pay", 0));
  TG_CHECK(builtin(START, &nsadmin, "pay", 0));
  TG_CHECK(!builtin(START, &sysread, "pay", 0));
  TG_CHECK(builtin(START, &syswrite, "pay", 0));
  TG_CHECK(!builtin(START, &other, "pay", 0));
  /* cluster scope: the system role only */
  TG_CHECK(!builtin(LIST_NS, &nsadmin, "pay", 0));
  TG_CHECK(builtin(LIST_NS, &sysread, "", 0));
  TG_CHECK(!builtin(LIST_CLUSTERS, &syswrite, "", 0));
  TG_CHECK(builtin(LIST_CLUSTERS, &sysadmin, "", 0));
  TG_CHECK(!builtin(LIST_CLUSTERS, &nsadmin, "pay", 0));
  /* namespace admin */
  TG_CHECK(!builtin(REGISTER_NS, &nswrite, "pay", 0));
  TG_CHECK(builtin(REGISTER_NS, &nsadmin, "pay", 0));
  TG_CHECK(builtin(REGISTER_NS, &sysadmin, "new", 0));
  /* always allowed, even without claims; unknown never */
  TG_CHECK(builtin(SYSINFO, &none, "", 0));
  TG_CHECK(builtin(SYSINFO, NULL, "", 0));
  TG_CHECK(!builtin(START, NULL, "pay", 0));
  {
    const char *why = NULL;
    TG_CHECK(!tg_authz_builtin(NULL, &sysadmin, "pay", 3, 1, NULL, 0, &why));
    TG_CHECK(why && !strcmp(why, "unknown method"));
    TG_CHECK(tg_authz_builtin(method(START), &nswrite, "pay", 3, 0, NULL, 0,
                              NULL)); /* why may be NULL */
  }

  tg_claims_clear(&none);
  tg_claims_clear(&nsread);
  tg_claims_clear(&nswrite);
  tg_claims_clear(&nsadmin);
  tg_claims_clear(&nsrw);
  tg_claims_clear(&sysread);
  tg_claims_clear(&syswrite);
  tg_claims_clear(&sysadmin);
  tg_claims_clear(&other);
}

TG_TEST(builtin_worker_role) {
  tg_claims w, sysw;
  claims(&w, "wk", L("orders:worker"));
  claims(&sysw, "swk", L("system:worker"));
  if (method(POLL_WF))
    TG_CHECK(method(POLL_WF)->worker);
  TG_CHECK(!builtin(POLL_WF, &w, "orders", 0));
  TG_CHECK(!builtin(POLL_ACT, &w, "orders", 0));
  TG_CHECK(!builtin(DESCRIBE, &w, "orders", 0));
  TG_CHECK(builtin(POLL_WF, &w, "orders", 1));
  TG_CHECK(builtin(POLL_ACT, &w, "orders", 1));
  TG_CHECK(builtin(RESPOND, &w, "orders", 1));
  TG_CHECK(!builtin(START, &w, "orders", 1));
  TG_CHECK(!builtin(DESCRIBE, &w, "orders", 1)); /* not a worker method */
  TG_CHECK(!builtin(POLL_WF, &w, "billing", 1));
  TG_CHECK(builtin(POLL_WF, &sysw, "billing", 1)); /* held includes system */
  tg_claims_clear(&w);
  tg_claims_clear(&sysw);
}

TG_TEST(builtin_empty_namespace_is_system_only) {
  tg_claims c;
  claims(&c, "x", NULL);
  TG_CHECK(tg_claims_grant(&c, "", 0, TG_ROLE_ADMIN) == 0);
  TG_CHECK(!builtin(START, &c, "", 0));
  TG_CHECK(!builtin(DESCRIBE, &c, NULL, 0));
  c.system = TG_ROLE_READ;
  TG_CHECK(builtin(DESCRIBE, &c, "", 0));
  TG_CHECK(!builtin(START, &c, "", 0));
  c.system = TG_ROLE_WRITE;
  TG_CHECK(builtin(START, &c, "", 0));
  tg_claims_clear(&c);
}

TG_TEST(builtin_extra_namespaces) {
  tg_claims c, wk, sys;
  const tg_method *m = method(RESPOND);
  const char *why = NULL;
  tg_slice b_only[] = {S("b")}, bc[] = {S("b"), S("c")}, empty[] = {S("")};

  claims(&c, "x", L("a:write", "b:write", "c:read"));
  claims(&wk, "y", L("a:worker", "b:worker"));
  claims(&sys, "z", L("system:write"));
  if (m)
    TG_CHECK(m->inspect_commands);
  TG_CHECK(tg_authz_builtin(m, &c, "a", 1, 0, b_only, 1, &why));
  TG_CHECK(!tg_authz_builtin(m, &c, "a", 1, 0, bc, 2, &why));
  TG_CHECK(why && strstr(why, "without write"));
  TG_CHECK(tg_authz_builtin(m, &sys, "a", 1, 0, bc, 2, &why));
  TG_CHECK(tg_authz_builtin(m, &c, "a", 1, 0, empty, 1, &why));
  TG_CHECK(!tg_authz_builtin(m, &c, "c", 1, 0, empty, 1, &why)); /* c: read */
  /* the worker extension covers the call, not the command targets */
  TG_CHECK(tg_authz_builtin(m, &wk, "a", 1, 1, NULL, 0, &why));
  TG_CHECK(!tg_authz_builtin(m, &wk, "a", 1, 1, b_only, 1, &why));
  tg_claims_clear(&c);
  tg_claims_clear(&wk);
  tg_claims_clear(&sys);
}

/* ---- policy: built-in through decide ---- */

TG_TEST(decide_builtin_reasons) {
  tg_config *cfg = cfg_new(1);
  tg_policy *p = policy(cfg);
  tg_claims r, w, s;
  tg_authz_request rq;
  tg_authz_verdict v;

  claims(&r, "reader", L("payments:read"));
  claims(&w, "writer", L("payments:write"));
  claims(&s, "ops", L("system:read"));
  if (!p)
    goto end;
  rq = req(START, &w, "payments");
  v = decide(p, &rq);
  TG_CHECK(v.allow && v.rule == -1);
  TG_CHECK(
      !strcmp(v.reason, "allowed: write on namespace payments (needs write)"));
  rq = req(START, &r, "payments");
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == -1);
  TG_CHECK(!strcmp(v.reason,
                   "denied: needs write on namespace payments, holds read"));
  rq = req(LIST_NS, &s, "");
  v = decide(p, &rq);
  TG_CHECK(v.allow);
  TG_CHECK_STR_CONTAINS(v.reason, "the system scope");
  rq = req(START, &s, "");
  v = decide(p, &rq);
  TG_CHECK(!v.allow);
  TG_CHECK_STR_CONTAINS(v.reason, "no namespace");
  rq = req(SYSINFO, NULL, "");
  v = decide(p, &rq);
  TG_CHECK(v.allow);
  TG_CHECK_STR_CONTAINS(v.reason, "always allowed");
  /* a hostile namespace is cut and made printable in the reason */
  {
    char ns[300];
    memset(ns, 'n', sizeof(ns) - 1);
    ns[sizeof(ns) - 1] = '\0';
    ns[3] = '\n';
    rq = req(START, &r, ns);
    v = decide(p, &rq);
    TG_CHECK(!v.allow);
    TG_CHECK(!strchr(v.reason, '\n'));
    TG_CHECK_STR_CONTAINS(v.reason, "nnn?nnn");
    TG_CHECK_STR_CONTAINS(v.reason, "...");
  }
end:
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&r);
  tg_claims_clear(&w);
  tg_claims_clear(&s);
}

TG_TEST(decide_worker_extended) {
  tg_config *c0 = cfg_new(0), *c1 = cfg_new(1);
  tg_policy *p0 = policy(c0), *p1 = policy(c1);
  tg_claims w;
  tg_authz_request rq;
  tg_authz_verdict v;

  claims(&w, "wk", L("orders:worker"));
  if (!p0 || !p1)
    goto end;
  rq = req(POLL_WF, &w, "orders");
  TG_CHECK(!decide(p0, &rq).allow);
  v = decide(p1, &rq);
  TG_CHECK(v.allow);
  TG_CHECK_STR_CONTAINS(v.reason, "worker method");
  rq = req(START, &w, "orders");
  TG_CHECK(!decide(p0, &rq).allow);
  TG_CHECK(!decide(p1, &rq).allow);
end:
  tg_policy_free(p0);
  tg_policy_free(p1);
  cfg_free(c0);
  cfg_free(c1);
  tg_claims_clear(&w);
}

TG_TEST(decide_extra_namespaces) {
  tg_config *cfg = cfg_new(1);
  tg_policy *p;
  tg_claims c;
  tg_authz_request rq;
  tg_authz_verdict v;
  tg_slice xs[] = {S("b"), S("c")};

  /* rule 1 lets "x" target c from commands; rule 2 forbids d */
  cfg_rule(cfg, 1, 5, L(RESPOND), L("c"), L("x"), NULL, NULL);
  cfg_rule(cfg, 0, 9, NULL, L("d"), NULL, NULL, NULL);
  p = policy(cfg);
  claims(&c, "x", L("a:write", "b:write", "d:write"));
  if (!p)
    goto end;
  rq = req(RESPOND, &c, "a");
  rq.extra_ns = xs;
  rq.nextra_ns = 1;
  TG_CHECK(decide(p, &rq).allow);
  rq.nextra_ns = 2; /* c: no role, but rule 1 allows it */
  v = decide(p, &rq);
  TG_CHECK(v.allow && v.rule == -1);
  xs[1] = S("e");
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == -1);
  TG_CHECK(
      !strcmp(v.reason, "denied: command targets namespace e without write"));
  xs[1] = S("d"); /* write held, but rule 2 denies d */
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == 1);
  TG_CHECK(
      !strcmp(v.reason, "denied by rule 2 (line 9) for command namespace d"));
end:
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&c);
}

/* ---- rules ---- */

TG_TEST(rule_allow_grants_what_builtin_denies) {
  tg_config *cfg = cfg_new(0);
  tg_policy *p;
  tg_claims wk, alice, anon;
  tg_authz_request rq;
  tg_authz_verdict v;
  names tq;

  cfg_rule(cfg, 1, 14, L("@worker"), L("orders", "orders-*"), L("worker-*"),
           L("orders-*"), NULL);
  p = policy(cfg);
  claims(&wk, "worker-7", NULL);
  claims(&alice, "alice", NULL);
  claims(&anon, NULL, NULL);
  if (!p)
    goto end;
  rq = req(POLL_WF, &wk, "orders");
  rq.task_queues = N(&tq, L("orders-main"), 0);
  v = decide(p, &rq);
  TG_CHECK(v.allow && v.rule == 0);
  TG_CHECK(!strcmp(v.reason, "allowed by rule 1 (line 14)"));
  rq.ns = S("orders-eu");
  TG_CHECK(decide(p, &rq).allow);
  rq.ns = S("billing");
  TG_CHECK(!decide(p, &rq).allow);
  rq.ns = S("");
  TG_CHECK(!decide(p, &rq).allow); /* names namespaces: needs one */
  rq.ns = S("orders");
  rq.task_queues = N(&tq, L("billing-main"), 0);
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == -1);
  TG_CHECK_STR_CONTAINS(v.reason, "denied: needs write on namespace orders");
  rq.task_queues = N(&tq, L("orders-main"), 0);
  rq.claims = &alice;
  TG_CHECK(!decide(p, &rq).allow);
  rq.claims = &anon; /* names subjects: needs one */
  TG_CHECK(!decide(p, &rq).allow);
  rq.claims = NULL;
  TG_CHECK(!decide(p, &rq).allow);
  rq = req(START, &wk, "orders"); /* not @worker */
  rq.task_queues = N(&tq, L("orders-main"), 0);
  TG_CHECK(!decide(p, &rq).allow);
  /* The rest of a worker's calls: a request type that names no task
   * queue is not restricted by task_queues. */
  rq = req("WorkflowService/RespondActivityTaskCompleted", &wk, "orders");
  TG_CHECK(decide(p, &rq).allow);
  rq = req("WorkflowService/DescribeNamespace", &wk, "orders");
  TG_CHECK(decide(p, &rq).allow);
end:
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&wk);
  tg_claims_clear(&alice);
  tg_claims_clear(&anon);
}

/* Allow: every value the request names must match (none: matches). Deny:
 * any value matching is enough. Too many values: allow rules do not match,
 * deny rules do. A request type that cannot name one: allow rules are not
 * restricted, deny rules do not match. */
TG_TEST(rule_task_queues_every_value_for_allow_any_for_deny) {
  tg_config *cfg = cfg_new(0);
  tg_policy *p;
  tg_claims c, w;
  tg_authz_request rq;
  lines *l = calloc(1, sizeof(*l));
  tg_authz_verdict v;
  names tq, wt;

  cfg_rule(cfg, 1, 3, L("*"), NULL, NULL, L("pay-*"), NULL);
  cfg_rule(cfg, 0, 7, L(START, RESPOND), NULL, NULL, NULL, L("Evil*"));
  cfg_rule(cfg, 0, 9, NULL, L("locked"), NULL, NULL, L("*"));
  p = policy(cfg);
  claims(&c, "s", NULL);
  claims(&w, "s", L("a:write", "locked:write"));
  if (!p)
    goto end;
  /* Allow rule 1. DescribeWorkflowExecution's request names no queue. */
  rq = req(DESCRIBE, &c, "a");
  v = decide(p, &rq);
  TG_CHECK(v.allow && v.rule == 0);
  rq = req(POLL_WF, &c, "a");
  TG_CHECK(decide(p, &rq).allow); /* none named */
  rq.task_queues = N(&tq, L("pay-1"), 0);
  TG_CHECK(decide(p, &rq).allow);
  rq = req(RESPOND, &c, "a");
  rq.task_queues = N(&tq, L("pay-1", "pay-2", "pay-3"), 0);
  TG_CHECK(decide(p, &rq).allow);
  rq.task_queues = N(&tq, L("pay-1", "other", "pay-3"), 0);
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(!v.allow);
  TG_CHECK(has_line(l, "rule 1 (line 3, allow): no match: task queue other "
                       "not in its task_queues"));
  rq.task_queues = N(&tq, L("pay-1"), 1);
  l->n = 0;
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(!v.allow);
  TG_CHECK(has_line(l, "rule 1 (line 3, allow): no match: request names "
                       "more than 32 task queues"));
  /* Deny rule 2 (workflow types), for a caller the built-in allows. */
  rq = req(START, &w, "a");
  TG_CHECK(decide(p, &rq).allow);
  l->n = 0;
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(has_line(l, "rule 2 (line 7, deny): no match: request names no "
                       "workflow type"));
  rq.workflow_types = N(&wt, L("Good"), 0);
  TG_CHECK(decide(p, &rq).allow);
  rq = req(RESPOND, &w, "a");
  rq.workflow_types = N(&wt, L("Good", "Fine"), 0);
  l->n = 0;
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(v.allow);
  TG_CHECK(has_line(l, "rule 2 (line 7, deny): no match: none of the "
                       "request's 2 workflow types in its workflow_types"));
  rq.workflow_types = N(&wt, L("Good", "EvilTwin"), 0);
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == 1);
  TG_CHECK(!strcmp(v.reason, "denied by rule 2 (line 7)"));
  rq.workflow_types = N(&wt, L("Good"), 1); /* more than it could read */
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == 1);
  /* Deny rule 3: workflow_types ["*"] on namespace locked. A request type
   * that cannot name one has nothing for it to match: the call passes. */
  rq = req(DESCRIBE, &w, "locked");
  v = decide(p, &rq);
  TG_CHECK(v.allow);
  l->n = 0;
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(has_line(l, "rule 3 (line 9, deny): no match: this method's "
                       "request cannot name a workflow type"));
  rq = req(START, &w, "locked"); /* can, but names none */
  TG_CHECK(decide(p, &rq).allow);
  rq.workflow_types = N(&wt, L(""), 0); /* an empty name is a value */
  TG_CHECK(!decide(p, &rq).allow);
end:
  free(l);
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&c);
  tg_claims_clear(&w);
}

TG_TEST(rule_deny_overrides) {
  tg_config *cfg = cfg_new(1);
  tg_policy *p;
  tg_claims boss, mallory;
  tg_authz_request rq;
  tg_authz_verdict v;

  cfg_rule(cfg, 1, 10, NULL, NULL, L("mallory"), NULL, NULL);
  cfg_rule(cfg, 0, 12, L("WorkflowService/Start*", SIGNAL), L("prod-*"),
           L("mallory", "intern-*"), NULL, NULL);
  p = policy(cfg);
  claims(&boss, "intern-3", L("system:admin"));
  claims(&mallory, "mallory", NULL);
  if (!p)
    goto end;
  rq = req(START, &boss, "prod-eu");
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == 1);
  TG_CHECK(!strcmp(v.reason, "denied by rule 2 (line 12)"));
  rq = req(SIGNAL, &mallory, "prod-us"); /* rule 1 allows, rule 2 denies */
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == 1);
  rq = req(SIGNAL, &mallory, "dev");
  v = decide(p, &rq);
  TG_CHECK(v.allow && v.rule == 0);
  rq = req(DESCRIBE, &boss, "prod-eu");
  TG_CHECK(decide(p, &rq).allow);
end:
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&boss);
  tg_claims_clear(&mallory);
}

TG_TEST(disabled_methods) {
  tg_config *cfg = cfg_new(1);
  tg_policy *p;
  tg_claims admin;
  tg_authz_request rq;
  tg_authz_verdict v;
  lines *l = calloc(1, sizeof(*l));

  list_set(&cfg->disabled_methods,
           L(SIGNAL, "/temporal.api.workflowservice.v1.WorkflowService/"
                     "RegisterNamespace"));
  cfg_rule(cfg, 1, 2, L("*"), NULL, NULL, NULL, NULL);
  p = policy(cfg);
  claims(&admin, "root", L("system:admin"));
  if (!p)
    goto end;
  rq = req(SIGNAL, &admin, "a");
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == -1);
  TG_CHECK(!strcmp(v.reason, "denied: method disabled"));
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(has_line(l, "disabled: yes"));
  rq = req(REGISTER_NS, &admin, "");
  TG_CHECK(!decide(p, &rq).allow);
  rq = req(START, &admin, "a");
  TG_CHECK(decide(p, &rq).allow);
end:
  free(l);
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&admin);
}

TG_TEST(unknown_method_always_denied) {
  tg_config *cfg = cfg_new(1);
  tg_policy *p;
  tg_claims admin;
  tg_authz_request rq;
  tg_authz_verdict v;
  tg_method copy;

  cfg_rule(cfg, 1, 2, L("*"), NULL, NULL, NULL, NULL);
  cfg_rule(cfg, 1, 3, NULL, NULL, NULL, NULL, NULL);
  p = policy(cfg);
  claims(&admin, "root", L("system:admin"));
  if (!p)
    goto end;
  memset(&rq, 0, sizeof(rq));
  rq.path = "/x.Y/Z";
  rq.path_len = 6;
  rq.claims = &admin;
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == -1);
  TG_CHECK(!strcmp(v.reason, "denied: unknown method"));
  if (method(START)) {
    copy = *method(START); /* not an entry of the table */
    rq.method = &copy;
    v = decide(p, &rq);
    TG_CHECK(!v.allow);
    TG_CHECK(!strcmp(v.reason, "denied: unknown method"));
    /* Inside the table, aligned, but not at an entry's start. */
    rq.method =
        (const tg_method *)((const char *)method(START) + sizeof(void *));
    v = decide(p, &rq);
    TG_CHECK(!v.allow);
    TG_CHECK(!strcmp(v.reason, "denied: unknown method"));
  }
end:
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&admin);
}

TG_TEST(categories) {
  static const char *const cats[] = {"@read", "@write", "@admin", "@worker",
                                     "@WRITE"};
  tg_claims c;
  claims(&c, "s", NULL);
  for (size_t k = 0; k < sizeof(cats) / sizeof(cats[0]); k++) {
    tg_config *cfg = cfg_new(0);
    tg_policy *p;
    cfg_rule(cfg, 1, 1, ((const char *const[]){cats[k], NULL}), NULL, NULL,
             NULL, NULL);
    p = policy(cfg);
    for (size_t i = 0; p && i < tg_methods_count(); i++) {
      const tg_method *m = tg_method_at(i);
      tg_authz_request rq;
      int want;
      memset(&rq, 0, sizeof(rq));
      rq.method = m;
      rq.claims = &c;
      rq.ns = S("a");
      switch (k) {
      case 0:
        want = m->required == TG_ROLE_READ;
        break;
      case 1:
      case 4:
        want = m->required == TG_ROLE_WRITE;
        break;
      case 2:
        want = m->required == TG_ROLE_ADMIN;
        break;
      default:
        want = m->worker != 0;
        break;
      }
      if (m->always_allowed)
        want = 1;
      TG_CHECK(decide(p, &rq).allow == want);
    }
    tg_policy_free(p);
    cfg_free(cfg);
  }
  tg_claims_clear(&c);
}

static void expect_error(tg_config *cfg, const char *needle) {
  char err[256] = "";
  tg_policy *p = tg_policy_new(cfg, err, sizeof(err));
  TG_CHECK(p == NULL);
  TG_CHECK_STR_CONTAINS(err, needle);
  tg_policy_free(p);
  cfg_free(cfg);
}

/* Every AdminService method is one entry: cluster scope, admin. */
TG_TEST(admin_service_family) {
  static const char path[] =
      "/temporal.server.api.adminservice.v1.AdminService/DescribeCluster";
  tg_config *cfg = cfg_new(1);
  tg_policy *p = NULL;
  tg_claims sys, nsadmin, ops;
  tg_authz_request rq;
  tg_authz_verdict v;
  const tg_method *m = tg_method_find(path, strlen(path));

  TG_CHECK(m && m->family);
  claims(&sys, "root", L("system:admin"));
  claims(&nsadmin, "alice", L("orders:admin"));
  claims(&ops, "ops-1", L("system:write"));
  if (!m)
    goto end;
  memset(&rq, 0, sizeof(rq));
  rq.method = m;
  rq.path = path;
  rq.path_len = strlen(path);
  rq.ns = S("orders"); /* not read for a cluster-scoped method */
  p = policy(cfg);
  if (!p)
    goto end;
  rq.claims = &sys;
  v = decide(p, &rq);
  TG_CHECK(v.allow &&
           !strcmp(v.reason, "allowed: admin on the system scope (needs "
                             "admin)"));
  rq.claims = &nsadmin;
  TG_CHECK(!decide(p, &rq).allow);
  rq.claims = &ops;
  TG_CHECK(!decide(p, &rq).allow);
  rq.claims = NULL;
  TG_CHECK(!decide(p, &rq).allow);
  tg_policy_free(p);
  /* Rules name it by its name or path, with a glob, or as @admin. */
  cfg_rule(cfg, 1, 3, L("AdminService/*"), NULL, L("ops-*"), NULL, NULL);
  cfg_rule(cfg, 0, 5, L("@admin"), NULL, L("root"), NULL, NULL);
  p = policy(cfg);
  if (!p)
    goto end;
  rq.claims = &ops;
  v = decide(p, &rq);
  TG_CHECK(v.allow && v.rule == 0);
  rq.claims = &sys;
  v = decide(p, &rq);
  TG_CHECK(!v.allow && v.rule == 1);
  tg_policy_free(p);
  list_set(&cfg->disabled_methods,
           L("/temporal.server.api.adminservice.v1.AdminService/*"));
  p = policy(cfg);
  if (!p)
    goto end;
  rq.claims = &ops;
  TG_CHECK(!strcmp(decide(p, &rq).reason, "denied: method disabled"));
end:
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&sys);
  tg_claims_clear(&nsadmin);
  tg_claims_clear(&ops);
}

TG_TEST(compile_errors) {
  tg_config *cfg;
  tg_policy *p;

  cfg = cfg_new(0);
  cfg_rule(cfg, 1, 4, L(START), NULL, NULL, NULL, NULL);
  cfg_rule(cfg, 0, 8, L(DESCRIBE, "WorkflowService/StartWorkflowExecutoin"),
           NULL, NULL, NULL, NULL);
  expect_error(cfg, "rule 2 (line 8): method pattern "
                    "\"WorkflowService/StartWorkflowExecutoin\" matches no "
                    "known method");

  cfg = cfg_new(0);
  cfg_rule(cfg, 1, 4, L("WorkflowServce/*"), NULL, NULL, NULL, NULL);
  expect_error(cfg, "\"WorkflowServce/*\" matches no known method");

  cfg = cfg_new(0);
  cfg_rule(cfg, 1, 4, L(""), NULL, NULL, NULL, NULL);
  expect_error(cfg, "matches no known method");

  cfg = cfg_new(0);
  cfg_rule(cfg, 0, 5, L("AdminService/DescribeCluster"), NULL, NULL, NULL,
           NULL);
  expect_error(cfg, "rule 1 (line 5): method pattern "
                    "\"AdminService/DescribeCluster\" matches no known "
                    "method (the methods of a service whose descriptors tgate "
                    "does not have are one entry: \"AdminService/*\")");

  cfg = cfg_new(0);
  cfg_rule(cfg, 1, 6, L("@writer"), NULL, NULL, NULL, NULL);
  expect_error(cfg, "rule 1 (line 6): unknown method category \"@writer\"");

  cfg = cfg_new(0);
  list_set(&cfg->disabled_methods, L("WorkflowService/Nope"));
  expect_error(cfg, "disabled_methods: method pattern "
                    "\"WorkflowService/Nope\" matches no known method");

  cfg = cfg_new(0);
  list_set(&cfg->disabled_methods, L("@nope"));
  expect_error(cfg, "disabled_methods: unknown method category");

  /* err may be NULL; full paths and globs over paths are accepted */
  cfg = cfg_new(0);
  list_set(&cfg->disabled_methods, L("@nope"));
  TG_CHECK(tg_policy_new(cfg, NULL, 0) == NULL);
  cfg_free(cfg);
  cfg = cfg_new(0);
  cfg_rule(cfg, 1, 1,
           L("/temporal.api.workflowservice.v1.WorkflowService/"
             "StartWorkflowExecution",
             "/temporal.api.workflowservice.v1.*"),
           NULL, NULL, NULL, NULL);
  p = policy(cfg);
  tg_policy_free(p);
  cfg_free(cfg);
  tg_policy_free(NULL);
}

TG_TEST(trace_lines) {
  tg_config *cfg = cfg_new(1);
  tg_policy *p;
  tg_claims c;
  tg_authz_request rq;
  tg_authz_verdict v;
  lines *l = calloc(1, sizeof(*l));
  names tq;

  cfg_rule(cfg, 1, 3, L("@worker"), L("orders"), NULL, L("orders-*"), NULL);
  cfg_rule(cfg, 0, 5, L(START), NULL, L("bob"), NULL, NULL);
  p = policy(cfg);
  claims(&c, "alice", L("payments:write", "orders:read"));
  if (!p)
    goto end;
  rq = req(START, &c, "payments");
  TG_CHECK(tg_policy_decide(p, &rq, &v, collect, l) == 0);
  TG_CHECK(v.allow);
  TG_CHECK(l->n == 7);
  TG_CHECK(!strcmp(l->v[0], "claims: subject alice, system none, namespaces "
                            "orders=read, payments=write"));
  TG_CHECK(
      !strcmp(l->v[1], "method: " START " (namespace scope, needs write)"));
  TG_CHECK(!strcmp(l->v[2], "built-in: allowed: write on namespace payments "
                            "(needs write)"));
  TG_CHECK(!strcmp(l->v[3], "rule 1 (line 3, allow): no match: method not in "
                            "its methods"));
  TG_CHECK(!strcmp(l->v[4], "rule 2 (line 5, deny): no match: subject alice "
                            "not in its subjects"));
  TG_CHECK(!strcmp(l->v[5], "disabled: no"));
  TG_CHECK(!strcmp(l->v[6], "decision: allowed: write on namespace payments "
                            "(needs write)"));
  l->n = 0;
  rq = req(POLL_WF, &c, "orders");
  rq.task_queues = N(&tq, L("billing"), 0);
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(!v.allow);
  TG_CHECK(has_line(l, "rule 1 (line 3, allow): no match: task queue billing "
                       "not in its task_queues"));
  TG_CHECK(has_line(l, "built-in: denied: needs write on namespace orders, "
                       "holds read"));
  l->n = 0;
  rq = req(SIGNAL, NULL, "x");
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(has_line(l, "claims: none"));
  TG_CHECK(has_line(l, "rule 2 (line 5, deny): no match: method not in"));
  l->n = 0;
  memset(&rq, 0, sizeof(rq));
  rq.path = "/a\nb";
  rq.path_len = 4;
  tg_policy_decide(p, &rq, &v, collect, l);
  TG_CHECK(l->n == 3 && has_line(l, "method: /a?b: unknown"));
end:
  free(l);
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&c);
}

TG_TEST(terse_allow_shortens_allows_only) {
  tg_config *cfg = cfg_new(1);
  tg_policy *p;
  tg_claims c;
  tg_authz_request rq;
  tg_authz_verdict v;
  lines *l = calloc(1, sizeof(*l));

  cfg_rule(cfg, 1, 3, L(SIGNAL), L("orders"), NULL, NULL, NULL);
  cfg_rule(cfg, 0, 5, L(START), L("payments"), L("bob"), NULL, NULL);
  p = policy(cfg);
  claims(&c, "alice", L("payments:write", "orders:read"));
  if (!p)
    goto end;
  /* Allowed by the built-in, then by a rule: "allowed", rule kept. */
  rq = req(START, &c, "payments");
  rq.terse_allow = 1;
  TG_CHECK(tg_policy_decide(p, &rq, &v, NULL, NULL) == 0);
  TG_CHECK(v.allow && v.rule == -1 && !strcmp(v.reason, "allowed"));
  rq = req(SIGNAL, &c, "orders");
  rq.terse_allow = 1;
  TG_CHECK(tg_policy_decide(p, &rq, &v, NULL, NULL) == 0);
  TG_CHECK(v.allow && v.rule == 0 && !strcmp(v.reason, "allowed"));
  /* A trace always gets the full reasons. */
  TG_CHECK(tg_policy_decide(p, &rq, &v, collect, l) == 0);
  TG_CHECK(v.allow && !strcmp(v.reason, "allowed by rule 1 (line 3)"));
  TG_CHECK(has_line(l, "decision: allowed by rule 1 (line 3)"));
  /* Denials keep their reason: built-in, rule, command namespace. */
  rq = req(SIGNAL, &c, "billing");
  rq.terse_allow = 1;
  TG_CHECK(tg_policy_decide(p, &rq, &v, NULL, NULL) == 0);
  TG_CHECK(!v.allow && !strcmp(v.reason, "denied: needs write on namespace "
                                         "billing, holds none"));
  tg_claims_clear(&c);
  claims(&c, "bob", L("payments:write"));
  rq = req(START, &c, "payments");
  rq.terse_allow = 1;
  TG_CHECK(tg_policy_decide(p, &rq, &v, NULL, NULL) == 0);
  TG_CHECK(!v.allow && v.rule == 1 &&
           !strcmp(v.reason, "denied by rule 2 (line 5)"));
  {
    tg_slice x = S("elsewhere");
    rq = req(RESPOND, &c, "payments");
    rq.extra_ns = &x;
    rq.nextra_ns = 1;
    rq.terse_allow = 1;
    TG_CHECK(tg_policy_decide(p, &rq, &v, NULL, NULL) == 0);
    TG_CHECK(!v.allow && !strcmp(v.reason, "denied: command targets "
                                           "namespace elsewhere without "
                                           "write"));
  }
end:
  free(l);
  tg_policy_free(p);
  cfg_free(cfg);
  tg_claims_clear(&c);
}

int main(void) {
  TG_RUN(glob_basics);
  TG_RUN(glob_long_input_is_linear);
  TG_RUN(builtin_table);
  TG_RUN(builtin_worker_role);
  TG_RUN(builtin_empty_namespace_is_system_only);
  TG_RUN(builtin_extra_namespaces);
  TG_RUN(decide_builtin_reasons);
  TG_RUN(decide_worker_extended);
  TG_RUN(decide_extra_namespaces);
  TG_RUN(rule_allow_grants_what_builtin_denies);
  TG_RUN(rule_task_queues_every_value_for_allow_any_for_deny);
  TG_RUN(rule_deny_overrides);
  TG_RUN(disabled_methods);
  TG_RUN(unknown_method_always_denied);
  TG_RUN(categories);
  TG_RUN(admin_service_family);
  TG_RUN(compile_errors);
  TG_RUN(trace_lines);
  TG_RUN(terse_allow_shortens_allows_only);
  return TG_DONE();
}
