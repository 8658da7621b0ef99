/* tg_authz_decide: what the relay asks, and the reasons it gets back. */
#include "tg_authz.h"
#include "tg_test.h"

#include <stdlib.h>

#define WS "/temporal.api.workflowservice.v1.WorkflowService/"

static const char config_fmt[] =
    "listen:\n"
    "  address: \"127.0.0.1:1\"\n"
    "upstream:\n"
    "  addresses: [\"127.0.0.1:2\"]\n"
    "authorization:\n"
    "  mode: %s\n"
    "  rules:\n"
    "    - effect: allow\n"
    "      methods: [\"WorkflowService/SignalWorkflowExecution\"]\n"
    "      namespaces: [\"orders\"]\n"
    "    - effect: deny\n"
    "      methods: [\"WorkflowService/StartWorkflowExecution\"]\n"
    "      workflow_types: [\"Forbidden*\"]\n"
    "authentication:\n"
    "  require: [jwt]\n"
    "  jwt:\n"
    "    key_sources: [\"pem:/nonexistent/key.pem#k\"]\n";

static tg_authz *authz_new(const char *mode, tg_config **cfg) {
  char yaml[1024], err[256] = "";
  char *errors = NULL;
  tg_authz *a = NULL;
  snprintf(yaml, sizeof yaml, config_fmt, mode);
  *cfg = NULL;
  if (tg_config_parse(yaml, strlen(yaml), "test.yaml", cfg, &errors) != 0) {
    fprintf(stderr, "  config: %s", errors ? errors : "?\n");
    tg_test_failed_now = 1;
    goto end;
  }
  if (!(a = tg_authz_new(*cfg, err, sizeof err))) {
    fprintf(stderr, "  tg_authz_new: %s\n", err);
    tg_test_failed_now = 1;
  }
end:
  free(errors);
  return a;
}

/* A protobuf string field (tag, length < 128, bytes). */
static size_t pb_str(uint8_t *out, unsigned field, const char *s, size_t len) {
  out[0] = (uint8_t)(field << 3 | 2);
  out[1] = (uint8_t)len;
  memcpy(out + 2, s, len);
  return len + 2;
}

/* A request carrying namespace ns (field 1) and, when wf_type is given, a
 * WorkflowType (field 3) named so. */
static size_t msg(uint8_t *out, const char *ns, size_t nslen,
                  const char *wf_type) {
  size_t n = pb_str(out, 1, ns, nslen);
  if (wf_type) {
    uint8_t inner[64];
    size_t il = pb_str(inner, 1, wf_type, strlen(wf_type));
    n += pb_str(out + n, 3, (const char *)inner, il);
  }
  return n;
}

/* Asks as the relay does: headers first, then with the message. */
static tg_authz_result ask(const tg_authz *a, const char *method,
                           const tg_hdrs *h, const tg_claims *c,
                           const uint8_t *m, size_t mlen, int terse,
                           tg_verdict *v) {
  char path[256];
  snprintf(path, sizeof path, WS "%s", method);
  tg_call_info call = {.headers = h,
                       .path = path,
                       .path_len = strlen(path),
                       .claims = c,
                       .terse_allow = terse};
  tg_authz_result r = tg_authz_decide(a, &call, v);
  if (r != TG_AUTHZ_NEED_MESSAGE)
    return r;
  call.msg = m;
  call.msg_len = mlen;
  call.have_msg = 1;
  return tg_authz_decide(a, &call, v);
}

static void headers(tg_hdrs *h) {
  tg_hdrs_init(h);
  tg_hdrs_add_str(h, ":method", "POST");
  tg_hdrs_add_str(h, ":path", "/x");
  tg_hdrs_add_str(h, "content-type", "application/grpc");
}

static void claims(tg_claims *c) {
  tg_claims_init(c);
  tg_claims_set_subject(c, "alice", 5);
  tg_claims_grant(c, "payments", 8, TG_ROLE_WRITE);
  tg_claims_grant(c, "orders", 6, TG_ROLE_READ);
}

TG_TEST(allow_reason_is_terse_only_when_asked) {
  tg_config *cfg;
  tg_authz *a = authz_new("enforce", &cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  uint8_t m[256];
  size_t n = msg(m, "payments", 8, NULL);
  headers(&h);
  claims(&c);
  if (!a)
    goto end;
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_ALLOW);
  TG_CHECK(!strcmp(v.reason, "allowed") && !strcmp(v.ns, "payments"));
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 0, &v) == TG_AUTHZ_ALLOW);
  TG_CHECK(!strcmp(v.reason, "allowed: write on namespace payments (needs "
                             "read)"));
  TG_CHECK(!strcmp(v.ns, "payments"));
  /* Allowed by a rule. */
  n = msg(m, "orders", 6, NULL);
  TG_CHECK(ask(a, "SignalWorkflowExecution", &h, &c, m, n, 1, &v) ==
           TG_AUTHZ_ALLOW);
  TG_CHECK(!strcmp(v.reason, "allowed"));
  TG_CHECK(ask(a, "SignalWorkflowExecution", &h, &c, m, n, 0, &v) ==
           TG_AUTHZ_ALLOW);
  TG_CHECK(!strcmp(v.reason, "allowed by rule 1 (line 8)"));
end:
  tg_hdrs_clear(&h);
  tg_claims_clear(&c);
  tg_authz_free(a);
  tg_config_free(cfg);
}

TG_TEST(denials_always_have_the_full_reason) {
  tg_config *cfg;
  tg_authz *a = authz_new("enforce", &cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  uint8_t m[256];
  size_t n;
  headers(&h);
  claims(&c);
  if (!a)
    goto end;
  for (int terse = 0; terse <= 1; terse++) {
    n = msg(m, "other", 5, NULL);
    TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, terse, &v) ==
             TG_AUTHZ_DENY);
    TG_CHECK(
        !strcmp(v.reason, "denied: needs read on namespace other, holds none"));
    TG_CHECK(!strcmp(v.message, "Request unauthorized."));
    TG_CHECK(!strcmp(v.ns, "other"));
    n = msg(m, "payments", 8, "ForbiddenFlow");
    TG_CHECK(ask(a, "StartWorkflowExecution", &h, &c, m, n, terse, &v) ==
             TG_AUTHZ_DENY);
    TG_CHECK(!strcmp(v.reason, "denied by rule 2 (line 11)"));
  }
  /* Read from the headers: a namespace that differs from the body's, a
   * repeated grpc-encoding. */
  tg_hdrs_add_str(&h, "temporal-namespace", "orders");
  n = msg(m, "payments", 8, NULL);
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_DENY);
  TG_CHECK(!strcmp(v.reason, "denied: temporal-namespace header 'orders' "
                             "differs from the request's namespace "
                             "'payments'"));
  tg_hdrs_clear(&h);
  headers(&h);
  tg_hdrs_add_str(&h, "temporal-namespace", "payments");
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_ALLOW);
  tg_hdrs_add_str(&h, "grpc-encoding", "identity");
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_ALLOW);
  tg_hdrs_add_str(&h, "grpc-encoding", "gzip");
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_DENY);
  TG_CHECK(
      !strcmp(v.reason, "repeated grpc-encoding or temporal-namespace header"));
  tg_hdrs_clear(&h);
  headers(&h);
  tg_hdrs_add_str(&h, "grpc-encoding", "br");
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_DENY);
  TG_CHECK(!strcmp(v.reason, "grpc-encoding 'br' is not supported (gzip, "
                             "deflate, identity)"));
end:
  tg_hdrs_clear(&h);
  tg_claims_clear(&c);
  tg_authz_free(a);
  tg_config_free(cfg);
}

TG_TEST(shadow_denials_keep_the_full_reason) {
  tg_config *cfg;
  tg_authz *a = authz_new("shadow", &cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  uint8_t m[256];
  size_t n = msg(m, "other", 5, NULL);
  headers(&h);
  claims(&c);
  if (!a)
    goto end;
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_ALLOW);
  TG_CHECK(v.shadow_denied);
  TG_CHECK(
      !strcmp(v.reason, "denied: needs read on namespace other, holds none"));
  n = msg(m, "payments", 8, NULL);
  TG_CHECK(ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v) == TG_AUTHZ_ALLOW);
  TG_CHECK(!v.shadow_denied && !strcmp(v.reason, "allowed"));
end:
  tg_hdrs_clear(&h);
  tg_claims_clear(&c);
  tg_authz_free(a);
  tg_config_free(cfg);
}

/* v.ns is what "%.*s" into 128 bytes gives: cut at 127, or at a NUL. */
TG_TEST(namespace_for_logs) {
  tg_config *cfg;
  tg_authz *a = authz_new("enforce", &cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  uint8_t m[256];
  char ns[126 + 1];
  size_t n;
  headers(&h);
  claims(&c);
  if (!a)
    goto end;
  memset(ns, 'n', sizeof ns);
  n = msg(m, ns, 126, NULL);
  ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v);
  TG_CHECK(strlen(v.ns) == 126);
  n = msg(m, "pay\0ments", 9, NULL);
  ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v);
  TG_CHECK(!strcmp(v.ns, "pay"));
  n = msg(m, "", 0, NULL);
  ask(a, "DescribeNamespace", &h, &c, m, n, 1, &v);
  TG_CHECK(!strcmp(v.ns, ""));
end:
  tg_hdrs_clear(&h);
  tg_claims_clear(&c);
  tg_authz_free(a);
  tg_config_free(cfg);
}

int main(void) {
  TG_RUN(allow_reason_is_terse_only_when_asked);
  TG_RUN(denials_always_have_the_full_reason);
  TG_RUN(shadow_denials_keep_the_full_reason);
  TG_RUN(namespace_for_logs);
  return TG_DONE();
}
