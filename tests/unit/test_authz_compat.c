/* Compatibility of tgate's built-in authorizer (tg_authz_builtin) with
 * Temporal's default authorizer, method by method.
 *
 * The expected decisions are computed here, independently of tgate's
 * generated table, from EXPECTED: the scope and access of every
 * WorkflowService and OperatorService method, copied by hand from
 * Temporal's common/api/metadata.go (workflowServiceMetadata,
 * operatorServiceMetadata; the revision scripts/gen-methods.js names), with
 * Temporal's rule (common/authorization/default_authorizer.go), and
 * AdminService, which metadata.go gives cluster scope and admin access as a
 * whole (tgate: one family entry for every method name), with
 * health-check APIs (GetSystemInfo) are always allowed; cluster scope ->
 * claims.System; namespace scope -> claims.System | claims.Namespaces[ns];
 * a method not in the table (unknown scope) is denied; otherwise allowed iff
 * held >= required (read 2, write 4, admin 8), compared as numbers.
 * A generator mistake (scope, access, a dropped method) shows up as a
 * mismatch. */
#include "tg_claims.h"
#include "tg_methods.h"
#include "tg_policy.h"
#include "tg_test.h"

#include <stdint.h>

#define WS "/temporal.api.workflowservice.v1.WorkflowService/"
#define OS "/temporal.api.operatorservice.v1.OperatorService/"
#define AS "/temporal.server.api.adminservice.v1.AdminService/"

enum { SCOPE_UNKNOWN, NSC, CLU };
enum { READ = 2, WRITE = 4, ADMIN = 8 };

typedef struct expect {
  const char *path;
  int scope;
  uint8_t required;
  int always; /* Temporal's healthCheckAPI */
  int worker; /* a call SDK workers make (worker_role: extended) */
} expect;

static const expect EXPECTED[] = {
    /* workflowServiceMetadata */
    {WS "RegisterNamespace", NSC, ADMIN, 0, 0},
    {WS "DescribeNamespace", NSC, READ, 0, 1},
    {WS "ListNamespaces", CLU, READ, 0, 0},
    {WS "UpdateNamespace", NSC, ADMIN, 0, 0},
    {WS "DeprecateNamespace", NSC, ADMIN, 0, 0},
    {WS "StartWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "GetWorkflowExecutionHistory", NSC, READ, 0, 1},
    {WS "GetWorkflowExecutionHistoryReverse", NSC, READ, 0, 0},
    {WS "PollWorkflowTaskQueue", NSC, WRITE, 0, 1},
    {WS "RespondWorkflowTaskCompleted", NSC, WRITE, 0, 1},
    {WS "RespondWorkflowTaskFailed", NSC, WRITE, 0, 1},
    {WS "PollActivityTaskQueue", NSC, WRITE, 0, 1},
    {WS "RecordActivityTaskHeartbeat", NSC, WRITE, 0, 1},
    {WS "RecordActivityTaskHeartbeatById", NSC, WRITE, 0, 1},
    {WS "RespondActivityTaskCompleted", NSC, WRITE, 0, 1},
    {WS "RespondActivityTaskCompletedById", NSC, WRITE, 0, 1},
    {WS "RespondActivityTaskFailed", NSC, WRITE, 0, 1},
    {WS "RespondActivityTaskFailedById", NSC, WRITE, 0, 1},
    {WS "RespondActivityTaskCanceled", NSC, WRITE, 0, 1},
    {WS "RespondActivityTaskCanceledById", NSC, WRITE, 0, 1},
    {WS "CountActivityExecutions", NSC, READ, 0, 0},
    {WS "CountNexusOperationExecutions", NSC, READ, 0, 0},
    {WS "DeleteActivityExecution", NSC, WRITE, 0, 0},
    {WS "DeleteNexusOperationExecution", NSC, WRITE, 0, 0},
    {WS "DescribeActivityExecution", NSC, READ, 0, 0},
    {WS "DescribeNexusOperationExecution", NSC, READ, 0, 0},
    {WS "PollActivityExecution", NSC, READ, 0, 0},
    {WS "PollNexusOperationExecution", NSC, READ, 0, 0},
    {WS "ListActivityExecutions", NSC, READ, 0, 0},
    {WS "ListNexusOperationExecutions", NSC, READ, 0, 0},
    {WS "RequestCancelActivityExecution", NSC, WRITE, 0, 0},
    {WS "RequestCancelNexusOperationExecution", NSC, WRITE, 0, 0},
    {WS "StartActivityExecution", NSC, WRITE, 0, 0},
    {WS "StartNexusOperationExecution", NSC, WRITE, 0, 0},
    {WS "TerminateActivityExecution", NSC, WRITE, 0, 0},
    {WS "TerminateNexusOperationExecution", NSC, WRITE, 0, 0},
    {WS "PollNexusTaskQueue", NSC, WRITE, 0, 1},
    {WS "RespondNexusTaskCompleted", NSC, WRITE, 0, 1},
    {WS "RespondNexusTaskFailed", NSC, WRITE, 0, 1},
    {WS "RequestCancelWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "SignalWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "SignalWithStartWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "ResetWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "TerminateWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "DeleteWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "ListOpenWorkflowExecutions", NSC, READ, 0, 0},
    {WS "ListClosedWorkflowExecutions", NSC, READ, 0, 0},
    {WS "ListWorkflowExecutions", NSC, READ, 0, 0},
    {WS "ListArchivedWorkflowExecutions", NSC, READ, 0, 0},
    {WS "ScanWorkflowExecutions", NSC, READ, 0, 0},
    {WS "CountWorkflowExecutions", NSC, READ, 0, 0},
    {WS "GetSearchAttributes", CLU, READ, 0, 0},
    {WS "RespondQueryTaskCompleted", NSC, WRITE, 0, 1},
    {WS "ResetStickyTaskQueue", NSC, WRITE, 0, 1},
    {WS "ShutdownWorker", NSC, WRITE, 0, 1},
    {WS "ExecuteMultiOperation", NSC, WRITE, 0, 0},
    {WS "QueryWorkflow", NSC, READ, 0, 0},
    {WS "DescribeWorkflowExecution", NSC, READ, 0, 0},
    {WS "DescribeTaskQueue", NSC, READ, 0, 0},
    {WS "GetClusterInfo", CLU, READ, 0, 0},
    {WS "GetSystemInfo", CLU, READ, 1, 1},
    {WS "ListTaskQueuePartitions", NSC, READ, 0, 0},
    {WS "CreateSchedule", NSC, WRITE, 0, 0},
    {WS "DescribeSchedule", NSC, READ, 0, 0},
    {WS "UpdateSchedule", NSC, WRITE, 0, 0},
    {WS "PatchSchedule", NSC, WRITE, 0, 0},
    {WS "ListScheduleMatchingTimes", NSC, READ, 0, 0},
    {WS "DeleteSchedule", NSC, WRITE, 0, 0},
    {WS "ListSchedules", NSC, READ, 0, 0},
    {WS "CountSchedules", NSC, READ, 0, 0},
    {WS "UpdateWorkerBuildIdCompatibility", NSC, WRITE, 0, 0},
    {WS "GetWorkerBuildIdCompatibility", NSC, READ, 0, 0},
    {WS "UpdateWorkerVersioningRules", NSC, WRITE, 0, 0},
    {WS "GetWorkerVersioningRules", NSC, READ, 0, 0},
    {WS "GetWorkerTaskReachability", NSC, READ, 0, 0},
    {WS "UpdateWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "PollWorkflowExecutionUpdate", NSC, READ, 0, 0},
    {WS "StartBatchOperation", NSC, WRITE, 0, 0},
    {WS "StopBatchOperation", NSC, WRITE, 0, 0},
    {WS "DescribeBatchOperation", NSC, READ, 0, 0},
    {WS "ListBatchOperations", NSC, READ, 0, 0},
    {WS "UpdateActivityOptions", NSC, WRITE, 0, 0},
    {WS "PauseActivity", NSC, WRITE, 0, 0},
    {WS "UnpauseActivity", NSC, WRITE, 0, 0},
    {WS "ResetActivity", NSC, WRITE, 0, 0},
    {WS "UpdateActivityExecutionOptions", NSC, WRITE, 0, 0},
    {WS "PauseActivityExecution", NSC, WRITE, 0, 0},
    {WS "UnpauseActivityExecution", NSC, WRITE, 0, 0},
    {WS "ResetActivityExecution", NSC, WRITE, 0, 0},
    {WS "UpdateWorkflowExecutionOptions", NSC, WRITE, 0, 0},
    {WS "DescribeDeployment", NSC, READ, 0, 0},
    {WS "ListDeployments", NSC, READ, 0, 0},
    {WS "GetDeploymentReachability", NSC, READ, 0, 0},
    {WS "GetCurrentDeployment", NSC, READ, 0, 0},
    {WS "SetCurrentDeployment", NSC, WRITE, 0, 0},
    {WS "DescribeWorkerDeploymentVersion", NSC, READ, 0, 0},
    {WS "DescribeWorkerDeployment", NSC, READ, 0, 0},
    {WS "SetWorkerDeploymentCurrentVersion", NSC, WRITE, 0, 0},
    {WS "SetWorkerDeploymentRampingVersion", NSC, WRITE, 0, 0},
    {WS "SetWorkerDeploymentManager", NSC, WRITE, 0, 0},
    {WS "CreateWorkerDeployment", NSC, WRITE, 0, 0},
    {WS "DeleteWorkerDeployment", NSC, WRITE, 0, 0},
    {WS "CreateWorkerDeploymentVersion", NSC, WRITE, 0, 0},
    {WS "UpdateWorkerDeploymentVersionComputeConfig", NSC, WRITE, 0, 0},
    {WS "ValidateWorkerDeploymentVersionComputeConfig", NSC, READ, 0, 0},
    {WS "DeleteWorkerDeploymentVersion", NSC, WRITE, 0, 0},
    {WS "UpdateWorkerDeploymentVersionMetadata", NSC, WRITE, 0, 0},
    {WS "ListWorkerDeployments", NSC, READ, 0, 0},
    {WS "CreateWorkflowRule", NSC, WRITE, 0, 0},
    {WS "DescribeWorkflowRule", NSC, READ, 0, 0},
    {WS "DeleteWorkflowRule", NSC, WRITE, 0, 0},
    {WS "ListWorkflowRules", NSC, READ, 0, 0},
    {WS "TriggerWorkflowRule", NSC, WRITE, 0, 0},
    {WS "RecordWorkerHeartbeat", NSC, WRITE, 0, 1},
    {WS "ListWorkers", NSC, READ, 0, 0},
    {WS "CountWorkers", NSC, READ, 0, 0},
    {WS "DescribeWorker", NSC, READ, 0, 0},
    {WS "UpdateTaskQueueConfig", NSC, WRITE, 0, 0},
    {WS "FetchWorkerConfig", NSC, READ, 0, 0},
    {WS "UpdateWorkerConfig", NSC, WRITE, 0, 0},
    {WS "PauseWorkflowExecution", NSC, WRITE, 0, 0},
    {WS "UnpauseWorkflowExecution", NSC, WRITE, 0, 0},
    /* In the proto, not in that metadata.go: unknown scope, denied. */
    {WS "PollWorkflowExecutionTimeSkipping", SCOPE_UNKNOWN, 0, 0, 0},
    /* operatorServiceMetadata */
    {OS "AddSearchAttributes", NSC, ADMIN, 0, 0},
    {OS "RemoveSearchAttributes", NSC, ADMIN, 0, 0},
    {OS "ListSearchAttributes", NSC, READ, 0, 0},
    {OS "DeleteNamespace", NSC, ADMIN, 0, 0},
    {OS "AddOrUpdateRemoteCluster", CLU, ADMIN, 0, 0},
    {OS "RemoveRemoteCluster", CLU, ADMIN, 0, 0},
    {OS "ListClusters", CLU, ADMIN, 0, 0},
    {OS "CreateNexusEndpoint", CLU, ADMIN, 0, 0},
    {OS "UpdateNexusEndpoint", CLU, ADMIN, 0, 0},
    {OS "DeleteNexusEndpoint", CLU, ADMIN, 0, 0},
    {OS "GetNexusEndpoint", CLU, ADMIN, 0, 0},
    {OS "ListNexusEndpoints", CLU, ADMIN, 0, 0},
    /* AdminService: every method, cluster scope, admin access. */
    {AS "DescribeCluster", CLU, ADMIN, 0, 0},
    {AS "AddSearchAttributes", CLU, ADMIN, 0, 0},
    {AS "RemoveRemoteCluster", CLU, ADMIN, 0, 0},
    {AS "DescribeMutableState", CLU, ADMIN, 0, 0},
    {AS "GetNamespaceReplicationMessages", CLU, ADMIN, 0, 0},
    {AS "ListClusterMembers", CLU, ADMIN, 0, 0},
    {AS "DeleteWorkflowExecution", CLU, ADMIN, 0, 0},
    {AS "A_Method_Not_Yet_Written2", CLU, ADMIN, 0, 0},
    /* Not a method name under the service: unknown, denied. */
    {AS "Describe/Cluster", SCOPE_UNKNOWN, 0, 0, 0},
    {AS "", SCOPE_UNKNOWN, 0, 0, 0},
    {AS "*", SCOPE_UNKNOWN, 0, 0, 0},
};
#define NEXPECTED (sizeof EXPECTED / sizeof EXPECTED[0])

/* The calls are made on namespace NS; ROLE_SETS name roles held. */
#define NS "orders"

typedef struct role_set {
  const char *label;
  uint8_t system;
  const char *ns; /* namespace granted ns_role, or NULL */
  uint8_t ns_role;
} role_set;

static const role_set ROLE_SETS[] = {
    {"none", 0, NULL, 0},
    {"worker on ns", 0, NS, TG_ROLE_WORKER},
    {"read on ns", 0, NS, TG_ROLE_READ},
    {"write on ns", 0, NS, TG_ROLE_WRITE},
    {"admin on ns", 0, NS, TG_ROLE_ADMIN},
    {"system read", TG_ROLE_READ, NULL, 0},
    {"system admin", TG_ROLE_ADMIN, NULL, 0},
    {"admin on another namespace", 0, "payments", TG_ROLE_ADMIN},
};
#define NROLE_SETS (sizeof ROLE_SETS / sizeof ROLE_SETS[0])

/* Temporal's default authorizer. */
static int temporal_decides(const expect *e, const role_set *r,
                            const char *ns) {
  uint8_t held;
  if (e->always)
    return 1;
  switch (e->scope) {
  case CLU:
    held = r->system;
    break;
  case NSC:
    held = r->system | (r->ns && strcmp(r->ns, ns) == 0 ? r->ns_role : 0);
    break;
  default:
    return 0;
  }
  return held >= e->required;
}

/* worker_role extended: a worker-role holder may also make the worker
 * calls of namespaces it holds the worker role on. */
static int extended_decides(const expect *e, const role_set *r,
                            const char *ns) {
  if (temporal_decides(e, r, ns))
    return 1;
  if (!e->worker || e->scope != NSC)
    return 0;
  uint8_t held = r->system | (r->ns && strcmp(r->ns, ns) == 0 ? r->ns_role : 0);
  return (held & TG_ROLE_WORKER) != 0;
}

static int build_claims(tg_claims *c, const role_set *r) {
  tg_claims_init(c);
  c->system = r->system;
  if (r->ns && tg_claims_grant(c, r->ns, strlen(r->ns), r->ns_role) != 0)
    return -1;
  return 0;
}

static size_t decisions;

/* Runs every method x role set through tg_authz_builtin with
 * worker_extended we and compares with decide(). */
static void compare_all(int we, int (*decide)(const expect *, const role_set *,
                                              const char *)) {
  for (size_t r = 0; r < NROLE_SETS; r++) {
    tg_claims c;
    TG_CHECK(build_claims(&c, &ROLE_SETS[r]) == 0);
    for (size_t i = 0; i < NEXPECTED; i++) {
      const expect *e = &EXPECTED[i];
      const tg_method *m = tg_method_find(e->path, strlen(e->path));
      const char *why = NULL;
      int got = tg_authz_builtin(m, &c, NS, strlen(NS), we, NULL, 0, &why);
      int want = decide(e, &ROLE_SETS[r], NS);
      decisions++;
      if (got != want) {
        fprintf(stderr,
                "  %s as \"%s\" (worker_extended %d): tgate %s (%s), "
                "Temporal %s\n",
                e->path, ROLE_SETS[r].label, we, got ? "allows" : "denies",
                why ? why : "?", want ? "allows" : "denies");
        TG_CHECK(got == want);
      }
    }
    tg_claims_clear(&c);
  }
}

TG_TEST(expected_covers_the_table) {
  size_t in_table = 0;
  for (size_t i = 0; i < NEXPECTED; i++) {
    const expect *e = &EXPECTED[i];
    const tg_method *m = tg_method_find(e->path, strlen(e->path));
    if (e->scope == SCOPE_UNKNOWN) {
      TG_CHECK(m == NULL);
      continue;
    }
    if (!m) {
      fprintf(stderr, "  missing from tgate's table: %s\n", e->path);
      TG_CHECK(m != NULL);
      continue;
    }
    if (strncmp(e->path, AS, strlen(AS)) == 0)
      TG_CHECK(m->family);
    else
      in_table++;
  }
  /* Every WorkflowService / OperatorService method of tgate's table is in
   * EXPECTED (the table has no method Temporal does not know). */
  size_t services = 0;
  for (size_t i = 0; i < tg_methods_count(); i++) {
    const char *p = tg_method_at(i)->path;
    if (strncmp(p, WS, strlen(WS)) != 0 && strncmp(p, OS, strlen(OS)) != 0)
      continue;
    services++;
    int found = 0;
    for (size_t j = 0; j < NEXPECTED && !found; j++)
      found = strcmp(EXPECTED[j].path, p) == 0;
    if (!found) {
      fprintf(stderr, "  not in Temporal's table: %s\n", p);
      TG_CHECK(found);
    }
  }
  TG_CHECK(services == in_table);
  TG_CHECK(in_table == 122 + 12);
}

TG_TEST(builtin_matches_temporal_default_authorizer) {
  compare_all(0, temporal_decides);
}

TG_TEST(worker_extended_adds_exactly_the_worker_calls) {
  compare_all(1, extended_decides);

  /* Spelled out for the worker role on the namespace: allowed are exactly
   * the worker calls (and the always-allowed ones). */
  tg_claims c;
  TG_CHECK(build_claims(&c, &ROLE_SETS[1]) == 0);
  size_t allowed = 0, worker_calls = 0;
  for (size_t i = 0; i < NEXPECTED; i++) {
    const expect *e = &EXPECTED[i];
    const tg_method *m = tg_method_find(e->path, strlen(e->path));
    int got = tg_authz_builtin(m, &c, NS, strlen(NS), 1, NULL, 0, NULL);
    int plain = tg_authz_builtin(m, &c, NS, strlen(NS), 0, NULL, 0, NULL);
    TG_CHECK(got == (e->worker || e->always));
    TG_CHECK(plain == e->always);
    TG_CHECK(!got || !m || m->worker || m->always_allowed);
    allowed += got;
    worker_calls += e->worker;
  }
  TG_CHECK(allowed == worker_calls);
  /* ...and only on that namespace. */
  const tg_method *poll = tg_method_find(WS "PollWorkflowTaskQueue",
                                         strlen(WS "PollWorkflowTaskQueue"));
  TG_CHECK(tg_authz_builtin(poll, &c, "payments", 8, 1, NULL, 0, NULL) == 0);
  TG_CHECK(tg_authz_builtin(poll, &c, "", 0, 1, NULL, 0, NULL) == 0);
  tg_claims_clear(&c);
}

int main(void) {
  TG_RUN(expected_covers_the_table);
  TG_RUN(builtin_matches_temporal_default_authorizer);
  TG_RUN(worker_extended_adds_exactly_the_worker_calls);
  printf("%zu decisions compared\n", decisions);
  return TG_DONE();
}
