/* Unit tests for the generated method table (src/methods_gen.c). */
#include "tg_claims.h"
#include "tg_methods.h"
#include "tg_test.h"

#define WS "/temporal.api.workflowservice.v1.WorkflowService/"
#define OS "/temporal.api.operatorservice.v1.OperatorService/"
#define AS "/temporal.server.api.adminservice.v1.AdminService/"

/* What scripts/gen-methods.js printed for @temporalio/proto 1.24.0: the
 * proto's 123 WorkflowService methods less PollWorkflowExecutionTimeSkipping
 * (not in Temporal's metadata.go revision used), its 12 OperatorService
 * methods, grpc.health.v1.Health/Check, and the AdminService family entry.
 * A regeneration that drops a method fails here. */
#define N_WORKFLOW_SERVICE 122
#define N_OPERATOR_SERVICE 12
#define N_HEALTH 1
#define N_ADMIN_SERVICE 1

static const tg_method *find(const char *path) {
  return tg_method_find(path, strlen(path));
}

static int path_is(const tg_field_path *p, int len, uint32_t a, uint32_t b) {
  if (p->len != len)
    return 0;
  if (len >= 1 && p->f[0] != a)
    return 0;
  if (len >= 2 && p->f[1] != b)
    return 0;
  return 1;
}

/* Is place p a leaf of that kind at those field numbers (n of them), with
 * those repeated steps? */
static int place_is(const tg_name_place *p, uint8_t leaf, uint8_t repeated,
                    unsigned n, uint32_t a, uint32_t b, uint32_t c,
                    uint32_t d) {
  const uint32_t want[4] = {a, b, c, d};
  if (p->leaf != leaf || p->repeated != repeated || p->len != n)
    return 0;
  for (unsigned i = 0; i < n && i < 4; i++)
    if (p->f[i] != want[i])
      return 0;
  return 1;
}

static int starts_with(const char *s, const char *prefix) {
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

TG_TEST(exact_paths_are_found) {
  const tg_method *m = find(WS "StartWorkflowExecution");
  TG_CHECK(m != NULL);
  TG_CHECK(m && strcmp(m->name, "WorkflowService/StartWorkflowExecution") == 0);
  m = find(OS "AddSearchAttributes");
  TG_CHECK(m && strcmp(m->name, "OperatorService/AddSearchAttributes") == 0);
  m = find("/grpc.health.v1.Health/Check");
  TG_CHECK(m && strcmp(m->name, "Health/Check") == 0);

  /* The length bounds the path: the bytes after it are not read. */
  const char buf[] = WS "GetSystemInfoXYZ";
  m = tg_method_find(buf, sizeof buf - 1 - 3);
  TG_CHECK(m && strcmp(m->name, "WorkflowService/GetSystemInfo") == 0);
}

TG_TEST(near_misses_are_not_found) {
  static const char *const miss[] = {
      WS "startWorkflowExecution",
      WS "STARTWORKFLOWEXECUTION",
      "/Temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution",
      WS "StartWorkflowExecution/",
      WS "StartWorkflowExecution ",
      WS "StartWorkflowExecutionX",
      "//temporal.api.workflowservice.v1.WorkflowService/"
      "StartWorkflowExecution",
      "/temporal.api.workflowservice.v1.WorkflowService//"
      "StartWorkflowExecution",
      "%2Ftemporal.api.workflowservice.v1.WorkflowService/"
      "StartWorkflowExecution",
      WS "Start%57orkflowExecution",
      "/temporal.api.workflowservice.v1.WorkflowService%2F"
      "StartWorkflowExecution",
      WS "StartWorkflow",
      WS,
      "/temporal.api.workflowservice.v1.WorkflowService",
      "/",
      "temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution",
      "/WorkflowService/StartWorkflowExecution",
      "WorkflowService/StartWorkflowExecution",
      "/grpc.health.v1.Health/Watch",
      "/grpc.health.v1.Health/check",
      WS "PollWorkflowExecutionTimeSkipping",
  };
  for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++) {
    if (find(miss[i]) != NULL) {
      fprintf(stderr, "  found: %s\n", miss[i]);
      TG_CHECK(!"near miss found");
    }
  }
  TG_CHECK(tg_method_find("", 0) == NULL);
  TG_CHECK(tg_method_find(NULL, 0) == NULL);
  TG_CHECK(tg_method_find(WS "GetSystemInfo", 0) == NULL);

  /* A NUL byte inside or after the name is part of the path. */
  const char nul_after[] = WS "GetSystemInfo\0";
  TG_CHECK(tg_method_find(nul_after, sizeof nul_after) == NULL);
  const char nul_inside[] = WS "GetSystem\0Info";
  TG_CHECK(tg_method_find(nul_inside, sizeof nul_inside - 1) == NULL);
}

TG_TEST(start_workflow_execution) {
  const tg_method *m = find(WS "StartWorkflowExecution");
  TG_CHECK(m != NULL);
  if (!m)
    return;
  TG_CHECK(m->scope == TG_SCOPE_NAMESPACE);
  TG_CHECK(m->required == TG_ROLE_WRITE);
  TG_CHECK(path_is(&m->ns, 1, 1, 0));
  /* task_queue = 4 (a TaskQueue), workflow_type = 3 (a WorkflowType); the
   * WorkflowType inside continued_failure is a failure's, not a place. */
  TG_CHECK(m->ntask_queues == 1 && m->nworkflow_types == 1);
  TG_CHECK(place_is(&m->task_queues[0], TG_PLACE_TASK_QUEUE, 0, 1, 4, 0, 0, 0));
  TG_CHECK(place_is(&m->workflow_types[0], TG_PLACE_WORKFLOW_TYPE, 0, 1, 3, 0,
                    0, 0));
  TG_CHECK(!m->worker && !m->always_allowed && !m->inspect_commands);
}

/* Values named inside nested messages: the places the generator found. */
TG_TEST(nested_places) {
  /* ExecuteMultiOperationRequest.operations = 2 (repeated), Operation.
   * start_workflow = 1, then StartWorkflowExecutionRequest's. */
  const tg_method *m = find(WS "ExecuteMultiOperation");
  TG_CHECK(m && m->ntask_queues == 1 && m->nworkflow_types == 1);
  TG_CHECK(m &&
           place_is(&m->task_queues[0], TG_PLACE_TASK_QUEUE, 1, 3, 2, 1, 4, 0));
  TG_CHECK(m && place_is(&m->workflow_types[0], TG_PLACE_WORKFLOW_TYPE, 1, 3, 2,
                         1, 3, 0));
  /* Create/UpdateSchedule: schedule = 3, action = 2, start_workflow = 1,
   * NewWorkflowExecutionInfo.task_queue = 3, workflow_type = 2. */
  const char *const sched[] = {WS "CreateSchedule", WS "UpdateSchedule"};
  for (size_t i = 0; i < 2; i++) {
    m = find(sched[i]);
    TG_CHECK(m && m->ntask_queues == 1 && m->nworkflow_types == 1);
    TG_CHECK(m && place_is(&m->task_queues[0], TG_PLACE_TASK_QUEUE, 0, 4, 3, 2,
                           1, 3));
    TG_CHECK(m && place_is(&m->workflow_types[0], TG_PLACE_WORKFLOW_TYPE, 0, 4,
                           3, 2, 1, 2));
  }
  m = find(WS "SignalWithStartWorkflowExecution");
  TG_CHECK(m && m->ntask_queues == 1 && m->nworkflow_types == 1);
  TG_CHECK(m &&
           place_is(&m->task_queues[0], TG_PLACE_TASK_QUEUE, 0, 1, 4, 0, 0, 0));
  /* RespondWorkflowTaskCompleted: commands = 2 (repeated); in Command
   * schedule_activity_task_command_attributes = 2 (task_queue 4),
   * continue_as_new... = 11 (workflow_type 1, task_queue 2),
   * start_child... = 12 (workflow_type 3, task_queue 4); and
   * sticky_attributes = 4, worker_task_queue = 1. */
  m = find(WS "RespondWorkflowTaskCompleted");
  TG_CHECK(m && m->ntask_queues == 4 && m->nworkflow_types == 2);
  if (m && m->ntask_queues == 4 && m->nworkflow_types == 2) {
    TG_CHECK(
        place_is(&m->task_queues[0], TG_PLACE_TASK_QUEUE, 1, 3, 2, 2, 4, 0));
    TG_CHECK(
        place_is(&m->task_queues[1], TG_PLACE_TASK_QUEUE, 1, 3, 2, 11, 2, 0));
    TG_CHECK(
        place_is(&m->task_queues[2], TG_PLACE_TASK_QUEUE, 1, 3, 2, 12, 4, 0));
    TG_CHECK(
        place_is(&m->task_queues[3], TG_PLACE_TASK_QUEUE, 0, 2, 4, 1, 0, 0));
    TG_CHECK(place_is(&m->workflow_types[0], TG_PLACE_WORKFLOW_TYPE, 1, 3, 2,
                      11, 1, 0));
    TG_CHECK(place_is(&m->workflow_types[1], TG_PLACE_WORKFLOW_TYPE, 1, 3, 2,
                      12, 3, 0));
  }
  /* A repeated string: GetWorkerTaskReachabilityRequest.task_queues = 3. */
  m = find(WS "GetWorkerTaskReachability");
  TG_CHECK(m && m->ntask_queues == 1 &&
           place_is(&m->task_queues[0], TG_PLACE_STRING, 1, 1, 3, 0, 0, 0));
  /* Failures are not places; these name no task queue or workflow type. */
  static const char *const none[] = {
      WS "RespondWorkflowTaskFailed", WS "RespondActivityTaskCompleted",
      WS "RespondActivityTaskFailed", WS "RecordActivityTaskHeartbeat",
      WS "DescribeNamespace",         WS "GetWorkflowExecutionHistory",
      WS "RespondQueryTaskCompleted", WS "SignalWorkflowExecution",
      WS "ResetStickyTaskQueue",      OS "ListClusters",
      "/grpc.health.v1.Health/Check",
  };
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    m = find(none[i]);
    TG_CHECK(m && m->ntask_queues == 0 && m->nworkflow_types == 0);
  }
}

TG_TEST(worker_calls) {
  const tg_method *m = find(WS "RespondWorkflowTaskCompleted");
  TG_CHECK(m && path_is(&m->ns, 1, 9, 0) && m->inspect_commands && m->worker);
  m = find(WS "RespondWorkflowTaskFailed");
  TG_CHECK(m && path_is(&m->ns, 1, 6, 0) && !m->inspect_commands);
  m = find(WS "RespondQueryTaskCompleted");
  TG_CHECK(m && path_is(&m->ns, 1, 6, 0));
  m = find(WS "RecordActivityTaskHeartbeat");
  TG_CHECK(m && path_is(&m->ns, 1, 4, 0));
  m = find(WS "RespondActivityTaskCompleted");
  TG_CHECK(m && path_is(&m->ns, 1, 4, 0));
  m = find(WS "RespondActivityTaskFailed");
  TG_CHECK(m && path_is(&m->ns, 1, 4, 0));
  m = find(WS "RespondActivityTaskCanceled");
  TG_CHECK(m && path_is(&m->ns, 1, 4, 0));
  m = find(WS "RespondActivityTaskCompletedById");
  TG_CHECK(m && path_is(&m->ns, 1, 1, 0));
  m = find(WS "PollWorkflowTaskQueue");
  TG_CHECK(m && m->worker && m->required == TG_ROLE_WRITE &&
           path_is(&m->ns, 1, 1, 0) && m->ntask_queues == 1 &&
           place_is(&m->task_queues[0], TG_PLACE_TASK_QUEUE, 0, 1, 2, 0, 0, 0));
  /* PollNexusTaskQueue: task_queue = 3, worker_heartbeat[] = 7 with its
   * string task_queue = 4. */
  m = find(WS "PollNexusTaskQueue");
  TG_CHECK(
      m && m->ntask_queues == 2 &&
      place_is(&m->task_queues[0], TG_PLACE_TASK_QUEUE, 0, 1, 3, 0, 0, 0) &&
      place_is(&m->task_queues[1], TG_PLACE_STRING, 1, 2, 7, 4, 0, 0));
  /* A plain string task_queue field counts too (sticky_task_queue, a
   * per-worker name, does not). */
  m = find(WS "ShutdownWorker");
  TG_CHECK(m && m->worker && m->ntask_queues == 2 &&
           place_is(&m->task_queues[1], TG_PLACE_STRING, 0, 1, 7, 0, 0, 0));
  m = find(WS "UpdateWorkerVersioningRules");
  TG_CHECK(m && !m->worker && m->ntask_queues == 1 &&
           place_is(&m->task_queues[0], TG_PLACE_STRING, 0, 1, 2, 0, 0, 0));
}

/* Every AdminService method: cluster scope, admin (Temporal's metadata.go),
 * through one family entry. */
TG_TEST(admin_service_family) {
  const tg_method *m = find(AS "DescribeCluster");
  TG_CHECK(m && m->family && m->scope == TG_SCOPE_CLUSTER &&
           m->required == TG_ROLE_ADMIN && m->ns.len == 0);
  TG_CHECK(m && !strcmp(m->name, "AdminService/*") && !strcmp(m->path, AS "*"));
  TG_CHECK(m && !m->worker && !m->always_allowed && !m->ntask_queues &&
           !m->nworkflow_types);
  TG_CHECK(find(AS "AddSearchAttributes") == m);
  TG_CHECK(find(AS "_x9") == m);
  TG_CHECK(find(AS "StreamWorkflowReplicationMessages") == m);
  static const char *const miss[] = {
      AS "*",
      AS,
      AS "9Describe",
      AS "Describe/Cluster",
      AS "Describe-Cluster",
      AS "Describe.Cluster",
      AS "DescribeCluster/",
      AS "Describe%43luster",
      "/temporal.server.api.adminservice.v1.adminservice/DescribeCluster",
      "/temporal.server.api.adminservice.v1.AdminService2/DescribeCluster",
      "/temporal.server.api.adminservice.v2.AdminService/DescribeCluster",
      "//temporal.server.api.adminservice.v1.AdminService/DescribeCluster",
      "temporal.server.api.adminservice.v1.AdminService/DescribeCluster",
  };
  for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++) {
    if (find(miss[i]) != NULL) {
      fprintf(stderr, "  found: %s\n", miss[i]);
      TG_CHECK(!"near miss found");
    }
  }
  /* The length bounds the path, a NUL is a byte like any other. */
  const char nul[] = AS "Describe\0Cluster";
  TG_CHECK(tg_method_find(nul, sizeof nul - 1) == NULL);
  TG_CHECK(tg_method_find(nul, strlen(nul)) == m);
}

TG_TEST(operator_service) {
  /* AddSearchAttributesRequest: search_attributes = 1, namespace = 2. */
  const tg_method *m = find(OS "AddSearchAttributes");
  TG_CHECK(m && m->scope == TG_SCOPE_NAMESPACE && m->required == TG_ROLE_ADMIN);
  TG_CHECK(m && path_is(&m->ns, 1, 2, 0));
  m = find(OS "RemoveSearchAttributes");
  TG_CHECK(m && m->scope == TG_SCOPE_NAMESPACE && m->required == TG_ROLE_ADMIN);
  TG_CHECK(m && path_is(&m->ns, 1, 2, 0));
  m = find(OS "ListSearchAttributes");
  TG_CHECK(m && m->required == TG_ROLE_READ && path_is(&m->ns, 1, 1, 0));
  m = find(OS "ListClusters");
  TG_CHECK(m && m->scope == TG_SCOPE_CLUSTER && m->required == TG_ROLE_ADMIN);
  TG_CHECK(m && m->ns.len == 0);
}

TG_TEST(scopes_and_access) {
  const tg_method *m = find(WS "ListNamespaces");
  TG_CHECK(m && m->scope == TG_SCOPE_CLUSTER && m->required == TG_ROLE_READ);
  TG_CHECK(m && m->ns.len == 0);
  m = find(WS "RegisterNamespace");
  TG_CHECK(m && m->scope == TG_SCOPE_NAMESPACE && m->required == TG_ROLE_ADMIN);
  m = find(WS "DescribeNamespace");
  TG_CHECK(m && m->scope == TG_SCOPE_NAMESPACE && m->required == TG_ROLE_READ);
  m = find(WS "GetSystemInfo");
  TG_CHECK(m && m->always_allowed && m->scope == TG_SCOPE_CLUSTER);
  m = find("/grpc.health.v1.Health/Check");
  TG_CHECK(m && m->always_allowed);
  m = find(WS "GetClusterInfo");
  TG_CHECK(m && !m->always_allowed && m->scope == TG_SCOPE_CLUSTER);
}

TG_TEST(table_is_sorted_and_well_formed) {
  size_t n = tg_methods_count();
  size_t nws = 0, nos = 0, nhealth = 0, nas = 0;
  TG_CHECK(n == N_WORKFLOW_SERVICE + N_OPERATOR_SERVICE + N_HEALTH +
                    N_ADMIN_SERVICE);
  TG_CHECK(tg_method_at(n) == NULL);
  for (size_t i = 0; i < n; i++) {
    const tg_method *m = tg_method_at(i);
    TG_CHECK(m != NULL);
    if (!m)
      continue;
    if (i > 0 && strcmp(tg_method_at(i - 1)->path, m->path) >= 0) {
      fprintf(stderr, "  not sorted at %s\n", m->path);
      TG_CHECK(!"sorted");
    }
    TG_CHECK(find(m->path) == (m->family ? NULL : m));
    /* name is "Service/Method", the path's last two components. */
    const char *svc = strrchr(m->path, '.');
    TG_CHECK(svc && strcmp(svc + 1, m->name) == 0);
    TG_CHECK(m->scope == TG_SCOPE_NAMESPACE || m->scope == TG_SCOPE_CLUSTER);
    TG_CHECK(m->required == TG_ROLE_READ || m->required == TG_ROLE_WRITE ||
             m->required == TG_ROLE_ADMIN);
    TG_CHECK(m->scope != TG_SCOPE_NAMESPACE || m->ns.len == 1);
    TG_CHECK(m->ns.len <= 1 && (m->ns.len == 0 || m->ns.f[0] >= 1));
    const tg_name_place *pls[] = {m->task_queues, m->workflow_types};
    size_t npls[] = {m->ntask_queues, m->nworkflow_types};
    for (size_t k = 0; k < 2; k++) {
      TG_CHECK((pls[k] == NULL) == (npls[k] == 0));
      for (size_t j = 0; j < npls[k]; j++) {
        const tg_name_place *pl = &pls[k][j];
        TG_CHECK(pl->len >= 1 && pl->len <= TG_PLACE_MAX_DEPTH);
        TG_CHECK(pl->repeated >> pl->len == 0);
        TG_CHECK(k == 0 ? pl->leaf == TG_PLACE_TASK_QUEUE ||
                              pl->leaf == TG_PLACE_STRING
                        : pl->leaf == TG_PLACE_WORKFLOW_TYPE);
        for (size_t q = 0; q < pl->len && q < TG_PLACE_MAX_DEPTH; q++)
          TG_CHECK(pl->f[q] >= 1 && pl->f[q] <= 536870911u);
      }
    }
    TG_CHECK(
        m->inspect_commands ==
        (strcmp(m->name, "WorkflowService/RespondWorkflowTaskCompleted") == 0));
    TG_CHECK(m->always_allowed ==
             (strcmp(m->name, "WorkflowService/GetSystemInfo") == 0 ||
              strcmp(m->name, "Health/Check") == 0));
    if (starts_with(m->path, WS))
      nws++;
    else if (starts_with(m->path, OS))
      nos++;
    else if (starts_with(m->path, "/grpc.health.v1.Health/"))
      nhealth++;
    else if (starts_with(m->path, AS) && m->family)
      nas++;
    else
      TG_CHECK(!"unexpected service");
  }
  TG_CHECK(nws == N_WORKFLOW_SERVICE);
  TG_CHECK(nos == N_OPERATOR_SERVICE);
  TG_CHECK(nhealth == N_HEALTH);
  TG_CHECK(nas == N_ADMIN_SERVICE);
}

TG_TEST(worker_flag_marks_exactly_the_worker_calls) {
  static const char *const worker[] = {
      "PollWorkflowTaskQueue",
      "PollActivityTaskQueue",
      "PollNexusTaskQueue",
      "RespondWorkflowTaskCompleted",
      "RespondWorkflowTaskFailed",
      "RespondQueryTaskCompleted",
      "RespondActivityTaskCompleted",
      "RespondActivityTaskFailed",
      "RespondActivityTaskCanceled",
      "RespondActivityTaskCompletedById",
      "RespondActivityTaskFailedById",
      "RespondActivityTaskCanceledById",
      "RecordActivityTaskHeartbeat",
      "RecordActivityTaskHeartbeatById",
      "RespondNexusTaskCompleted",
      "RespondNexusTaskFailed",
      "ResetStickyTaskQueue",
      "ShutdownWorker",
      "RecordWorkerHeartbeat",
      "DescribeNamespace",
      "GetSystemInfo",
      "GetWorkflowExecutionHistory",
  };
  size_t nflag = 0;
  for (size_t i = 0; i < tg_methods_count(); i++)
    nflag += tg_method_at(i)->worker;
  TG_CHECK(nflag == sizeof worker / sizeof worker[0]);
  for (size_t i = 0; i < sizeof worker / sizeof worker[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, WS "%s", worker[i]);
    const tg_method *m = find(path);
    if (!m || !m->worker) {
      fprintf(stderr, "  not a worker call: %s\n", worker[i]);
      TG_CHECK(!"worker flag");
    }
  }
}

TG_TEST(command_namespaces) {
  /* RespondWorkflowTaskCompletedRequest.commands = 2; in Command:
   * request_cancel_external_workflow_execution_command_attributes = 9,
   * start_child_workflow_execution_command_attributes = 12,
   * signal_external_workflow_execution_command_attributes = 13, each with
   * namespace = 1. */
  TG_CHECK(tg_commands_field == 2);
  TG_CHECK(tg_command_namespaces_len == 3);
  static const tg_command_ns want[] = {{9, 1}, {12, 1}, {13, 1}};
  for (size_t i = 0; i < 3 && i < tg_command_namespaces_len; i++) {
    TG_CHECK(tg_command_namespaces[i].attr_field == want[i].attr_field);
    TG_CHECK(tg_command_namespaces[i].ns_field == want[i].ns_field);
  }
}

int main(void) {
  TG_RUN(exact_paths_are_found);
  TG_RUN(near_misses_are_not_found);
  TG_RUN(start_workflow_execution);
  TG_RUN(nested_places);
  TG_RUN(worker_calls);
  TG_RUN(admin_service_family);
  TG_RUN(operator_service);
  TG_RUN(scopes_and_access);
  TG_RUN(table_is_sorted_and_well_formed);
  TG_RUN(worker_flag_marks_exactly_the_worker_calls);
  TG_RUN(command_namespaces);
  return TG_DONE();
}
