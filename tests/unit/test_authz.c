/* tg_authz_decide: what the relay asks, and the reasons it gets back. */
#include "tg_authz.h"
#include "tg_test.h"
#include "tg_testutil.h"

#include <stdlib.h>

#include "tg_grpc.h"
#include "tg_policy.h"

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

/* ---- task queues and workflow types read where the request names them ---- */

static const char nested_yaml[] =
    "listen:\n"
    "  address: \"127.0.0.1:1\"\n"
    "upstream:\n"
    "  addresses: [\"127.0.0.1:2\"]\n"
    "authorization:\n"
    "  mode: enforce\n"
    "  rules:\n"
    "    - effect: deny\n"
    "      methods: &starts [\"WorkflowService/ExecuteMultiOperation\",\n"
    "        \"WorkflowService/*Schedule\",\n"
    "        \"WorkflowService/SignalWithStartWorkflowExecution\",\n"
    "        \"WorkflowService/RespondWorkflowTaskCompleted\"]\n"
    "      workflow_types: [\"Forbidden*\"]\n"
    "    - effect: deny\n"
    "      methods: *starts\n"
    "      task_queues: [\"secret-*\"]\n"
    "    - effect: allow\n"
    "      methods: [\"@worker\"]\n"
    "      namespaces: [\"payments\"]\n"
    "      subjects: [\"pay-worker\"]\n"
    "      task_queues: [\"payments-*\"]\n"
    "authentication:\n"
    "  require: [jwt]\n"
    "  jwt:\n"
    "    key_sources: [\"pem:/nonexistent/key.pem#k\"]\n";

/* A growable protobuf message. */
typedef tg_pbw pbm;

/* Appends inner as field `field` of w, and frees inner. */
static void pbm_msg(pbm *w, unsigned field, pbm *inner) {
  pbw_len(w, field, inner->b, inner->n);
  free(inner->b);
  memset(inner, 0, sizeof *inner);
}

/* A message {name = 1: name}: a WorkflowType, or a normal TaskQueue. */
static void pbm_named(pbm *w, unsigned field, const char *name) {
  pbm m = {0};
  pbw_str(&m, 1, name);
  pbm_msg(w, field, &m);
}

/* A sticky TaskQueue: {name = 1, kind = 2 (STICKY 2), normal_name = 3}. */
static void pbm_sticky(pbm *w, unsigned field, const char *name,
                       const char *normal) {
  pbm m = {0};
  pbw_str(&m, 1, name);
  pbw_varint(&m, 2 << 3 | 0);
  pbw_varint(&m, 2);
  pbw_str(&m, 3, normal);
  pbm_msg(w, field, &m);
}

/* RespondWorkflowTaskCompletedRequest commands (field 2): attrs is the
 * Command's attributes field (2 schedule activity, 11 continue as new, 12
 * start child), whose TaskQueue is at tq_field and WorkflowType at
 * wt_field (0: none). */
static void pbm_command(pbm *w, unsigned attrs, unsigned tq_field,
                        const char *tq, unsigned wt_field, const char *wt) {
  pbm a = {0}, c = {0};
  if (tq_field)
    pbm_named(&a, tq_field, tq);
  if (wt_field)
    pbm_named(&a, wt_field, wt);
  pbm_msg(&c, attrs, &a);
  pbm_msg(w, 2, &c);
}

/* Asks about a message built in w (freed). */
static tg_authz_result ask_pbm(const tg_authz *a, const char *method,
                               const tg_hdrs *h, const tg_claims *c, pbm *w,
                               tg_verdict *v) {
  tg_authz_result r = ask(a, method, h, c, w->b, w->n, 0, v);
  free(w->b);
  memset(w, 0, sizeof *w);
  return r;
}

static tg_authz *nested_authz(tg_config **cfg) {
  char err[256] = "";
  char *errors = NULL;
  tg_authz *a = NULL;
  *cfg = NULL;
  if (tg_config_parse(nested_yaml, strlen(nested_yaml), "test.yaml", cfg,
                      &errors) != 0) {
    fprintf(stderr, "  config: %s", errors ? errors : "?\n");
    tg_test_failed_now = 1;
  } else if (!(a = tg_authz_new(*cfg, err, sizeof err))) {
    fprintf(stderr, "  tg_authz_new: %s\n", err);
    tg_test_failed_now = 1;
  }
  free(errors);
  return a;
}

/* A deny rule on workflow_types / task_queues catches the value wherever
 * the request names it, not only at the top level. */
TG_TEST(deny_rules_see_nested_values) {
  tg_config *cfg;
  tg_authz *a = nested_authz(&cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  pbm w = {0}, op = {0}, sw = {0}, sched = {0}, act = {0};
  headers(&h);
  claims(&c); /* write on payments */
  if (!a)
    goto end;
  /* ExecuteMultiOperation: operations (2)[].start_workflow (1). */
  for (int bad = 0; bad <= 1; bad++) {
    pbw_str(&w, 1, "payments");
    pbw_str(&sw, 1, "payments");
    pbm_named(&sw, 3, "Fine");
    pbm_named(&sw, 4, "q");
    pbm_msg(&op, 1, &sw);
    pbm_msg(&w, 2, &op);
    pbw_str(&sw, 1, "payments");
    pbm_named(&sw, 3, bad ? "ForbiddenFlow" : "AlsoFine");
    pbm_named(&sw, 4, "q2");
    pbm_msg(&op, 1, &sw);
    pbm_msg(&w, 2, &op);
    TG_CHECK(ask_pbm(a, "ExecuteMultiOperation", &h, &c, &w, &v) ==
             (bad ? TG_AUTHZ_DENY : TG_AUTHZ_ALLOW));
    if (bad)
      TG_CHECK(!strcmp(v.reason, "denied by rule 1 (line 8)"));
  }
  /* Create/UpdateSchedule: schedule (3).action (2).start_workflow (1) with
   * workflow_type 2, task_queue 3. */
  static const char *const sched_methods[] = {"CreateSchedule",
                                              "UpdateSchedule"};
  for (int i = 0; i < 2; i++) {
    for (int bad = 0; bad <= 2; bad++) {
      pbw_str(&w, 1, "payments");
      pbm_named(&sw, 2, bad == 1 ? "ForbiddenNightly" : "Nightly");
      pbm_named(&sw, 3, bad == 2 ? "secret-cron" : "cron");
      pbm_msg(&act, 1, &sw);
      pbm_msg(&sched, 2, &act);
      pbm_msg(&w, 3, &sched);
      TG_CHECK(ask_pbm(a, sched_methods[i], &h, &c, &w, &v) ==
               (bad ? TG_AUTHZ_DENY : TG_AUTHZ_ALLOW));
      if (bad)
        TG_CHECK(!strcmp(v.reason, bad == 1 ? "denied by rule 1 (line 8)"
                                            : "denied by rule 2 (line 14)"));
    }
  }
  /* A deny rule's lists have nothing to match in a method whose request
   * type names neither: DeleteSchedule is left to the other checks (the
   * built-in allows it for a writer). */
  pbw_str(&w, 1, "payments");
  TG_CHECK(ask_pbm(a, "DeleteSchedule", &h, &c, &w, &v) == TG_AUTHZ_ALLOW);
  /* SignalWithStartWorkflowExecution: workflow_type 3, task_queue 4. */
  pbw_str(&w, 1, "payments");
  pbm_named(&w, 3, "ForbiddenFlow");
  pbm_named(&w, 4, "q");
  TG_CHECK(ask_pbm(a, "SignalWithStartWorkflowExecution", &h, &c, &w, &v) ==
           TG_AUTHZ_DENY);
  /* RespondWorkflowTaskCompleted (namespace 9): each command kind, and the
   * sticky attributes (4).worker_task_queue (1), matched on normal_name. */
  for (int k = 0; k < 5; k++) {
    pbw_str(&w, 9, "payments");
    pbm_command(&w, 2, 4, "q", 0, NULL); /* an allowed one first */
    if (k == 0)
      pbm_command(&w, 2, 4, "secret-1", 0, NULL);
    else if (k == 1)
      pbm_command(&w, 11, 2, "secret-2", 1, "Fine");
    else if (k == 2)
      pbm_command(&w, 12, 4, "q", 3, "ForbiddenChild");
    else if (k == 3)
      pbm_command(&w, 11, 2, "q", 1, "ForbiddenNext");
    else {
      pbm sticky = {0};
      pbm_sticky(&sticky, 1, "host-1234-sticky", "secret-main");
      pbm_msg(&w, 4, &sticky);
    }
    TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
             TG_AUTHZ_DENY);
  }
  pbw_str(&w, 9, "payments");
  pbm_command(&w, 2, 4, "q", 0, NULL);
  pbm_command(&w, 12, 4, "q", 3, "Child");
  TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
           TG_AUTHZ_ALLOW);
  /* A malformed value on the way: a TaskQueue name with the varint wire
   * type inside a command. */
  {
    pbm attrs = {0}, tq = {0}, cmd = {0};
    pbw_varint(&tq, 1 << 3 | 0);
    pbw_varint(&tq, 7);
    pbm_msg(&attrs, 4, &tq);
    pbm_msg(&cmd, 2, &attrs);
    pbw_str(&w, 9, "payments");
    pbm_msg(&w, 2, &cmd);
    TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
             TG_AUTHZ_DENY);
    TG_CHECK(v.grpc_status == TG_GRPC_INVALID_ARGUMENT);
  }
end:
  tg_hdrs_clear(&h);
  tg_claims_clear(&c);
  tg_authz_free(a);
  tg_config_free(cfg);
}

/* The authorization issue's example: allow @worker on payments for a
 * subject, task_queues ["payments-*"]. A worker can run: calls whose
 * request names no queue are not restricted, the others must name only
 * its queues. */
TG_TEST(allow_rule_lets_a_real_worker_run) {
  tg_config *cfg;
  tg_authz *a = nested_authz(&cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  pbm w = {0};
  char q[32];
  headers(&h);
  tg_claims_init(&c);
  tg_claims_set_subject(&c, "pay-worker", 10);
  if (!a)
    goto end;
  /* Polls: the normal queue and its sticky queue. */
  pbw_str(&w, 1, "payments");
  pbm_named(&w, 2, "payments-main");
  TG_CHECK(ask_pbm(a, "PollWorkflowTaskQueue", &h, &c, &w, &v) ==
           TG_AUTHZ_ALLOW);
  pbw_str(&w, 1, "payments");
  pbm_sticky(&w, 2, "host-1234-sticky", "payments-main");
  TG_CHECK(ask_pbm(a, "PollWorkflowTaskQueue", &h, &c, &w, &v) ==
           TG_AUTHZ_ALLOW);
  /* No queue in the request type: not restricted. */
  static const struct {
    const char *method;
    unsigned ns_field;
  } plain[] = {{"DescribeNamespace", 1},
               {"RespondActivityTaskCompleted", 4},
               {"RecordActivityTaskHeartbeat", 4},
               {"RespondWorkflowTaskFailed", 6},
               {"GetWorkflowExecutionHistory", 1}};
  for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
    pbw_str(&w, plain[i].ns_field, "payments");
    TG_CHECK(ask_pbm(a, plain[i].method, &h, &c, &w, &v) == TG_AUTHZ_ALLOW);
  }
  /* A workflow task completed: activities on its queues, the sticky
   * attributes; then on another queue. */
  pbw_str(&w, 9, "payments");
  pbm_command(&w, 2, 4, "payments-main", 0, NULL);
  pbm_command(&w, 2, 4, "payments-io", 0, NULL);
  {
    pbm sticky = {0};
    pbm_sticky(&sticky, 1, "host-1234-sticky", "payments-main");
    pbm_msg(&w, 4, &sticky);
  }
  TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
           TG_AUTHZ_ALLOW);
  pbw_str(&w, 9, "payments");
  pbm_command(&w, 2, 4, "payments-main", 0, NULL);
  pbm_command(&w, 2, 4, "billing-main", 0, NULL);
  TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
           TG_AUTHZ_DENY);
  TG_CHECK_STR_CONTAINS(v.reason, "denied: needs write on namespace payments");
  /* A completion with no command naming a queue. */
  pbw_str(&w, 9, "payments");
  TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
           TG_AUTHZ_ALLOW);
  /* Many commands on one queue: one value. TG_NAMES_MAX distinct values
   * are read; one more and the allow rule fails closed. */
  pbw_str(&w, 9, "payments");
  for (int i = 0; i < 200; i++)
    pbm_command(&w, 2, 4, "payments-main", 0, NULL);
  TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
           TG_AUTHZ_ALLOW);
  for (int extra = 0; extra <= 1; extra++) {
    pbw_str(&w, 9, "payments");
    for (int i = 0; i < TG_NAMES_MAX + extra; i++) {
      snprintf(q, sizeof q, "payments-%d", i);
      pbm_command(&w, 2, 4, q, 0, NULL);
      pbm_command(&w, 2, 4, q, 0, NULL);
    }
    TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
             (extra ? TG_AUTHZ_DENY : TG_AUTHZ_ALLOW));
  }
end:
  tg_hdrs_clear(&h);
  tg_claims_clear(&c);
  tg_authz_free(a);
  tg_config_free(cfg);
}

/* Beyond TG_NAMES_MAX distinct values a deny rule on the list matches,
 * though none of the values read matches it. */
TG_TEST(too_many_values_match_deny_rules) {
  tg_config *cfg;
  tg_authz *a = nested_authz(&cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  pbm w = {0};
  char q[32];
  headers(&h);
  claims(&c); /* write on payments */
  if (!a)
    goto end;
  for (int extra = 0; extra <= 1; extra++) {
    pbw_str(&w, 9, "payments");
    for (int i = 0; i < TG_NAMES_MAX + extra; i++) {
      snprintf(q, sizeof q, "q-%d", i);
      pbm_command(&w, 2, 4, q, 0, NULL);
    }
    TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
             (extra ? TG_AUTHZ_DENY : TG_AUTHZ_ALLOW));
    if (extra)
      TG_CHECK(!strcmp(v.reason, "denied by rule 2 (line 14)"));
  }
end:
  tg_hdrs_clear(&h);
  tg_claims_clear(&c);
  tg_authz_free(a);
  tg_config_free(cfg);
}

/* A SignalExternalWorkflowExecution command (Command field 13) into ns. */
static void pbm_signal_into(pbm *w, const char *ns) {
  pbm a = {0}, c = {0};
  pbw_str(&a, 1, ns);
  pbm_msg(&c, 13, &a);
  pbm_msg(w, 2, &c);
}

/* Commands naming the same namespace are one target: any number of them
 * is allowed with write there; more than 64 distinct ones are refused. */
TG_TEST(command_namespaces_are_counted_once) {
  tg_config *cfg;
  tg_authz *a = authz_new("enforce", &cfg);
  tg_hdrs h;
  tg_claims c;
  tg_verdict v;
  pbm w = {0};
  char ns[32];
  headers(&h);
  claims(&c); /* write on payments */
  tg_claims_grant(&c, "billing", 7, TG_ROLE_WRITE);
  for (int i = 0; i < 65; i++) {
    snprintf(ns, sizeof ns, "ns-%d", i);
    tg_claims_grant(&c, ns, strlen(ns), TG_ROLE_WRITE);
  }
  if (!a)
    goto end;
  pbw_str(&w, 9, "payments");
  for (int i = 0; i < 200; i++)
    pbm_signal_into(&w, i % 2 ? "billing" : "payments");
  TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
           TG_AUTHZ_ALLOW);
  pbw_str(&w, 9, "payments");
  for (int i = 0; i < 200; i++)
    pbm_signal_into(&w, i % 2 ? "billing" : "orders"); /* read on orders */
  TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
           TG_AUTHZ_DENY);
  TG_CHECK(!strcmp(v.reason, "denied: command targets namespace orders "
                             "without write"));
  for (int extra = 0; extra <= 1; extra++) {
    pbw_str(&w, 9, "payments");
    for (int rep = 0; rep < 2; rep++)
      for (int i = 0; i < 64 + extra; i++) {
        snprintf(ns, sizeof ns, "ns-%d", i);
        pbm_signal_into(&w, ns);
      }
    TG_CHECK(ask_pbm(a, "RespondWorkflowTaskCompleted", &h, &c, &w, &v) ==
             (extra ? TG_AUTHZ_DENY : TG_AUTHZ_ALLOW));
    if (extra)
      TG_CHECK(!strcmp(v.reason, "denied: commands name too many namespaces"));
  }
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
  TG_RUN(deny_rules_see_nested_values);
  TG_RUN(allow_rule_lets_a_real_worker_run);
  TG_RUN(too_many_values_match_deny_rules);
  TG_RUN(command_namespaces_are_counted_once);
  return TG_DONE();
}
