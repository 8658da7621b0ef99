#!/usr/bin/env node
// Generates src/methods_gen.c, the method table of include/tg_methods.h:
//
//   node scripts/gen-methods.js > src/methods_gen.c
//
// Inputs:
// - the protobuf descriptors shipped in the npm package @temporalio/proto
//   (tests/node_modules): the services, their methods and request messages;
// - Temporal's own authorization table, common/api/metadata.go of
//   temporalio/temporal, copied below as METADATA (scope and access level of
//   every method, as the server's default authorizer reads them).
//
// It fails (exit 1, nothing on stdout) when a method of the proto is not in
// METADATA: a new API version must be looked at, method by method, before
// tgate knows it. The output is piped through clang-format, so that
// `make format-check` passes on the committed file.
'use strict';

const path = require('path');
const { spawnSync } = require('child_process');

const NODE_MODULES = path.join(__dirname, '../tests/node_modules');
const PROTO_PKG = path.join(NODE_MODULES, '@temporalio/proto');
const root = require(PROTO_PKG);
const PROTO_VERSION = require(path.join(PROTO_PKG, 'package.json')).version;
const REPO = path.join(__dirname, '..');

// Which revision of metadata.go METADATA was copied from. The reference
// index it was read from does not record the commit hash of that revision;
// it is the one that added the Redirection field (WorkflowServiceForwardedAPIs)
// and CompleteNexusOperationChasm. Older revisions read for comparison:
// 76125220b2fa20e54808ea1d3673b51d351004dd, 004c5407037b688cd98ba2a2e045817fbbd16a77.
const METADATA_SOURCE =
  "Temporal's common/api/metadata.go at its revision with Redirection " +
  'and CompleteNexusOperationChasm (commit hash not recorded by the ' +
  'reference index it was read from)';

const N = 'namespace';
const C = 'cluster';
const R = 'read';
const W = 'write';
const A = 'admin';
const m = (scope, access) => ({ scope, access });

// workflowServiceMetadata, in metadata.go's order.
const WORKFLOW_SERVICE = {
  RegisterNamespace: m(N, A),
  DescribeNamespace: m(N, R),
  ListNamespaces: m(C, R),
  UpdateNamespace: m(N, A),
  DeprecateNamespace: m(N, A),
  StartWorkflowExecution: m(N, W),
  GetWorkflowExecutionHistory: m(N, R),
  GetWorkflowExecutionHistoryReverse: m(N, R),
  PollWorkflowTaskQueue: m(N, W),
  RespondWorkflowTaskCompleted: m(N, W),
  RespondWorkflowTaskFailed: m(N, W),
  PollActivityTaskQueue: m(N, W),
  RecordActivityTaskHeartbeat: m(N, W),
  RecordActivityTaskHeartbeatById: m(N, W),
  RespondActivityTaskCompleted: m(N, W),
  RespondActivityTaskCompletedById: m(N, W),
  RespondActivityTaskFailed: m(N, W),
  RespondActivityTaskFailedById: m(N, W),
  RespondActivityTaskCanceled: m(N, W),
  RespondActivityTaskCanceledById: m(N, W),
  CountActivityExecutions: m(N, R),
  CountNexusOperationExecutions: m(N, R),
  DeleteActivityExecution: m(N, W),
  DeleteNexusOperationExecution: m(N, W),
  DescribeActivityExecution: m(N, R),
  DescribeNexusOperationExecution: m(N, R),
  PollActivityExecution: m(N, R),
  PollNexusOperationExecution: m(N, R),
  ListActivityExecutions: m(N, R),
  ListNexusOperationExecutions: m(N, R),
  RequestCancelActivityExecution: m(N, W),
  RequestCancelNexusOperationExecution: m(N, W),
  StartActivityExecution: m(N, W),
  StartNexusOperationExecution: m(N, W),
  TerminateActivityExecution: m(N, W),
  TerminateNexusOperationExecution: m(N, W),
  PollNexusTaskQueue: m(N, W),
  RespondNexusTaskCompleted: m(N, W),
  RespondNexusTaskFailed: m(N, W),
  RequestCancelWorkflowExecution: m(N, W),
  SignalWorkflowExecution: m(N, W),
  SignalWithStartWorkflowExecution: m(N, W),
  ResetWorkflowExecution: m(N, W),
  TerminateWorkflowExecution: m(N, W),
  DeleteWorkflowExecution: m(N, W),
  ListOpenWorkflowExecutions: m(N, R),
  ListClosedWorkflowExecutions: m(N, R),
  ListWorkflowExecutions: m(N, R),
  ListArchivedWorkflowExecutions: m(N, R),
  ScanWorkflowExecutions: m(N, R),
  CountWorkflowExecutions: m(N, R),
  GetSearchAttributes: m(C, R),
  RespondQueryTaskCompleted: m(N, W),
  ResetStickyTaskQueue: m(N, W),
  ShutdownWorker: m(N, W),
  ExecuteMultiOperation: m(N, W),
  QueryWorkflow: m(N, R),
  DescribeWorkflowExecution: m(N, R),
  DescribeTaskQueue: m(N, R),
  GetClusterInfo: m(C, R),
  GetSystemInfo: m(C, R),
  ListTaskQueuePartitions: m(N, R),
  CreateSchedule: m(N, W),
  DescribeSchedule: m(N, R),
  UpdateSchedule: m(N, W),
  PatchSchedule: m(N, W),
  ListScheduleMatchingTimes: m(N, R),
  DeleteSchedule: m(N, W),
  ListSchedules: m(N, R),
  CountSchedules: m(N, R),
  UpdateWorkerBuildIdCompatibility: m(N, W),
  GetWorkerBuildIdCompatibility: m(N, R),
  UpdateWorkerVersioningRules: m(N, W),
  GetWorkerVersioningRules: m(N, R),
  GetWorkerTaskReachability: m(N, R),
  UpdateWorkflowExecution: m(N, W),
  PollWorkflowExecutionUpdate: m(N, R),
  StartBatchOperation: m(N, W),
  StopBatchOperation: m(N, W),
  DescribeBatchOperation: m(N, R),
  ListBatchOperations: m(N, R),
  UpdateActivityOptions: m(N, W),
  PauseActivity: m(N, W),
  UnpauseActivity: m(N, W),
  ResetActivity: m(N, W),
  UpdateActivityExecutionOptions: m(N, W),
  PauseActivityExecution: m(N, W),
  UnpauseActivityExecution: m(N, W),
  ResetActivityExecution: m(N, W),
  UpdateWorkflowExecutionOptions: m(N, W),
  DescribeDeployment: m(N, R),
  ListDeployments: m(N, R),
  GetDeploymentReachability: m(N, R),
  GetCurrentDeployment: m(N, R),
  SetCurrentDeployment: m(N, W),
  DescribeWorkerDeploymentVersion: m(N, R),
  DescribeWorkerDeployment: m(N, R),
  SetWorkerDeploymentCurrentVersion: m(N, W),
  SetWorkerDeploymentRampingVersion: m(N, W),
  SetWorkerDeploymentManager: m(N, W),
  CreateWorkerDeployment: m(N, W),
  DeleteWorkerDeployment: m(N, W),
  CreateWorkerDeploymentVersion: m(N, W),
  UpdateWorkerDeploymentVersionComputeConfig: m(N, W),
  ValidateWorkerDeploymentVersionComputeConfig: m(N, R),
  DeleteWorkerDeploymentVersion: m(N, W),
  UpdateWorkerDeploymentVersionMetadata: m(N, W),
  ListWorkerDeployments: m(N, R),
  CreateWorkflowRule: m(N, W),
  DescribeWorkflowRule: m(N, R),
  DeleteWorkflowRule: m(N, W),
  ListWorkflowRules: m(N, R),
  TriggerWorkflowRule: m(N, W),
  RecordWorkerHeartbeat: m(N, W),
  ListWorkers: m(N, R),
  CountWorkers: m(N, R),
  DescribeWorker: m(N, R),
  UpdateTaskQueueConfig: m(N, W),
  FetchWorkerConfig: m(N, R),
  UpdateWorkerConfig: m(N, W),
  PauseWorkflowExecution: m(N, W),
  UnpauseWorkflowExecution: m(N, W),
};

// operatorServiceMetadata.
const OPERATOR_SERVICE = {
  AddSearchAttributes: m(N, A),
  RemoveSearchAttributes: m(N, A),
  ListSearchAttributes: m(N, R),
  DeleteNamespace: m(N, A),
  AddOrUpdateRemoteCluster: m(C, A),
  RemoveRemoteCluster: m(C, A),
  ListClusters: m(C, A),
  CreateNexusEndpoint: m(C, A),
  UpdateNexusEndpoint: m(C, A),
  DeleteNexusEndpoint: m(C, A),
  GetNexusEndpoint: m(C, A),
  ListNexusEndpoints: m(C, A),
};

// nexusServiceMetadata: Nexus HTTP endpoints, "technically not a gRPC
// service"; used only if a package ever ships a NexusService descriptor.
const NEXUS_SERVICE = {
  DispatchNexusTask: m(N, W),
  DispatchByNamespaceAndTaskQueue: m(N, W),
  DispatchByEndpoint: m(N, W),
  CompleteNexusOperation: m(N, W),
  CompleteNexusOperationChasm: m(N, W),
};

// Methods of the proto that METADATA's revision does not know yet, each
// looked at. They are left out of the table, so tgate denies them as unknown
// methods -- what Temporal's default authorizer does for a method missing
// from its table (ScopeUnknown -> deny). Entries here must not also be in
// METADATA: copy the newer metadata.go instead, and drop them from here.
const NOT_IN_METADATA = {
  'WorkflowService/PollWorkflowExecutionTimeSkipping':
    'time-skipping long poll, added to the API by temporalio/api#835 and ' +
    'to the server by temporalio/temporal#11223, after the metadata.go ' +
    'revision above; its scope and access are not known from that source',
};

// The calls SDK workers make (tg_method.worker: allowed to a worker role
// under worker_role: extended). Reasons from the TypeScript SDK's Rust core
// (sdk-core / sdk-rust, crates/sdk-core/src/worker/client.rs, the
// WorkerClient trait, plus the client connection and Worker::validate).
const WORKER = {
  PollWorkflowTaskQueue: 'polls workflow tasks (normal and sticky queue)',
  PollActivityTaskQueue: 'polls activity tasks',
  PollNexusTaskQueue: 'polls Nexus tasks (and the worker-commands queue)',
  RespondWorkflowTaskCompleted: 'completes workflow tasks',
  RespondWorkflowTaskFailed: 'fails workflow tasks',
  RespondQueryTaskCompleted: 'answers legacy queries',
  RespondActivityTaskCompleted: 'completes activities',
  RespondActivityTaskFailed: 'fails activities',
  RespondActivityTaskCanceled: 'reports activity cancellation',
  RespondActivityTaskCompletedById:
    'by-id completion, used from activity code / async completion',
  RespondActivityTaskFailedById: 'by-id failure (async completion)',
  RespondActivityTaskCanceledById: 'by-id cancellation (async completion)',
  RecordActivityTaskHeartbeat: 'activity heartbeats',
  RecordActivityTaskHeartbeatById: 'by-id heartbeats (async completion)',
  RespondNexusTaskCompleted: 'completes Nexus tasks',
  RespondNexusTaskFailed: 'fails Nexus tasks',
  ResetStickyTaskQueue: 'sticky queue reset (SDKs other than core)',
  ShutdownWorker: 'sent by core when a worker shuts down',
  RecordWorkerHeartbeat: 'worker heartbeats sent by core',
  DescribeNamespace: 'core validates the namespace at worker start-up',
  GetSystemInfo: 'capabilities, asked when the client connects',
  GetWorkflowExecutionHistory:
    'core fetches further history pages of a workflow task (long ' +
    'histories) and full histories after a sticky cache miss',
};
// Not worker calls, though the question came up: GetWorkerBuildIdCompatibility
// and DescribeTaskQueue (core never calls them; only clients and the CLI do),
// FetchWorkerConfig / UpdateWorkerConfig (the server's worker commands reach
// the worker through PollNexusTaskQueue, not through these).

const ALWAYS_ALLOWED = {
  // Temporal's healthCheckAPI (common/authorization/frontend_api.go).
  'WorkflowService/GetSystemInfo': true,
  'Health/Check': true,
};

const INSPECT_COMMANDS = { 'WorkflowService/RespondWorkflowTaskCompleted': true };

const COMMAND_NS_ATTRS = [
  'temporal.api.command.v1.SignalExternalWorkflowExecutionCommandAttributes',
  'temporal.api.command.v1.StartChildWorkflowExecutionCommandAttributes',
  'temporal.api.command.v1.RequestCancelExternalWorkflowExecutionCommandAttributes',
];

const ROLE = { read: 'TG_ROLE_READ', write: 'TG_ROLE_WRITE', admin: 'TG_ROLE_ADMIN' };
const SCOPE = { namespace: 'TG_SCOPE_NAMESPACE', cluster: 'TG_SCOPE_CLUSTER' };

const SERVICES = [
  {
    full: 'temporal.api.workflowservice.v1.WorkflowService',
    macro: 'TG_WS',
    table: WORKFLOW_SERVICE,
    required: true,
  },
  {
    full: 'temporal.api.operatorservice.v1.OperatorService',
    macro: 'TG_OS',
    table: OPERATOR_SERVICE,
    required: true,
  },
  {
    full: 'temporal.api.nexusservice.v1.NexusService',
    macro: 'TG_NS',
    table: NEXUS_SERVICE,
  },
  {
    // metadata.go: every AdminService method is cluster scope, admin access.
    full: 'temporal.server.api.adminservice.v1.AdminService',
    macro: 'TG_AS',
    table: null,
  },
];

const errors = [];
const notes = [];
const fail = (msg) => errors.push(msg);

// protobufjs spells field names in camelCase; compare without case or '_'.
const norm = (s) => s.replace(/_/g, '').toLowerCase();
const fieldNamed = (type, name) =>
  type.fieldsArray.find((f) => norm(f.name) === norm(name)) || null;
const typeName = (f) =>
  f.resolvedType ? f.resolvedType.fullName.replace(/^\./, '') : f.type;

function lookup(name, kind) {
  try {
    const o = root.lookup(name);
    return o && o.constructor.name === kind ? o : null;
  } catch (e) {
    return null;
  }
}

// Path to the `name` string inside a top-level field of message type
// msgType. Several candidates: the one called preferName.
function pathTo(req, msgType, preferName, what) {
  const cands = req.fieldsArray.filter(
    (f) => !f.repeated && typeName(f) === msgType,
  );
  if (cands.length === 0) return null;
  let f = cands[0];
  if (cands.length > 1) {
    f = cands.find((c) => norm(c.name) === norm(preferName));
    if (!f) {
      fail(`${req.fullName}: several ${what} fields, none named ${preferName}`);
      return null;
    }
  }
  const leaf = fieldNamed(f.resolvedType, 'name');
  if (!leaf || leaf.type !== 'string') {
    fail(`${msgType} has no string field "name"`);
    return null;
  }
  return [f.id, leaf.id];
}

function stringField(req, name) {
  const f = fieldNamed(req, name);
  if (!f || f.repeated || f.type !== 'string') return null;
  return [f.id];
}

root.resolveAll();

const rows = [];
const counts = [];
const macros = [];

for (const svc of SERVICES) {
  const service = lookup(svc.full, 'Service');
  const short = svc.full.split('.').pop();
  if (!service) {
    if (svc.required) fail(`${svc.full} is not in @temporalio/proto`);
    else notes.push(`${svc.full}: not shipped in @temporalio/proto, skipped`);
    continue;
  }
  macros.push([svc.macro, `/${svc.full}/`]);
  let n = 0;
  const inProto = new Set();
  for (const meth of service.methodsArray) {
    const name = `${short}/${meth.name}`;
    inProto.add(meth.name);
    const md = svc.table ? svc.table[meth.name] : m(C, A);
    if (!md) {
      if (!NOT_IN_METADATA[name])
        fail(`${name}: in the proto but not in Temporal's metadata.go table`);
      continue;
    }
    if (NOT_IN_METADATA[name])
      fail(`${name}: in METADATA now; remove it from NOT_IN_METADATA`);
    const req = meth.resolvedRequestType;
    const ns = stringField(req, 'namespace');
    if (md.scope === N && !ns)
      fail(`${name}: namespace scope, but ${req.fullName} has no namespace`);
    // A string field named task_queue names the queue too (the
    // versioning, config and ShutdownWorker calls).
    let tq = pathTo(req, 'temporal.api.taskqueue.v1.TaskQueue', 'task_queue',
      'TaskQueue');
    if (!tq) tq = stringField(req, 'task_queue');
    const wt = pathTo(req, 'temporal.api.common.v1.WorkflowType',
      'workflow_type', 'WorkflowType');
    rows.push({
      path: `/${svc.full}/${meth.name}`,
      macro: svc.macro,
      method: meth.name,
      name,
      scope: md.scope,
      access: md.access,
      worker: short === 'WorkflowService' && !!WORKER[meth.name],
      always: !!ALWAYS_ALLOWED[name],
      inspect: !!INSPECT_COMMANDS[name],
      ns,
      tq,
      wt,
    });
    n++;
  }
  if (svc.table) {
    for (const k of Object.keys(svc.table))
      if (!inProto.has(k))
        notes.push(`${short}/${k}: in metadata.go but not in this proto`);
  }
  counts.push(`${short}: ${n} of ${service.methodsArray.length} proto methods`);
}

for (const k of Object.keys(WORKER))
  if (!rows.some((r) => r.name === `WorkflowService/${k}`))
    fail(`worker method ${k} is not a WorkflowService method of the table`);

// grpc.health.v1.Health/Check: always allowed, as in Temporal. Watch is
// not in Temporal's list, so it stays unknown (denied).
{
  const health = lookup('grpc.health.v1.Health', 'Service');
  const check = health && health.methodsArray.find((x) => x.name === 'Check');
  if (!check) fail('grpc.health.v1.Health/Check is not in @temporalio/proto');
  macros.push(['TG_HEALTH', '/grpc.health.v1.Health/']);
  rows.push({
    path: '/grpc.health.v1.Health/Check',
    macro: 'TG_HEALTH',
    method: 'Check',
    name: 'Health/Check',
    scope: C,
    access: R,
    worker: false,
    always: true,
    inspect: false,
    ns: null,
    tq: null,
    wt: null,
  });
  counts.push('Health: 1 (Check)');
}

// RespondWorkflowTaskCompletedRequest.commands and the namespaces in them.
let commandsField = 0;
const commandNs = [];
{
  const req = lookup(
    'temporal.api.workflowservice.v1.RespondWorkflowTaskCompletedRequest',
    'Type',
  );
  const f = req && fieldNamed(req, 'commands');
  if (!f || !f.repeated || typeName(f) !== 'temporal.api.command.v1.Command')
    fail('RespondWorkflowTaskCompletedRequest.commands: not repeated Command');
  else commandsField = f.id;
  const cmd = lookup('temporal.api.command.v1.Command', 'Type');
  for (const attr of COMMAND_NS_ATTRS) {
    const af = cmd && cmd.fieldsArray.find((x) => typeName(x) === attr);
    const nf = af && stringField(af.resolvedType, 'namespace');
    if (!af || !nf) {
      fail(`Command: no ${attr} field with a string namespace`);
      continue;
    }
    commandNs.push({ attr: af.id, ns: nf[0], what: attr.split('.').pop() });
  }
  commandNs.sort((a, b) => a.attr - b.attr);
}

if (errors.length) {
  process.stderr.write('gen-methods: FAILED\n');
  for (const e of errors) process.stderr.write(`  ${e}\n`);
  process.exit(1);
}

rows.sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
for (let i = 1; i < rows.length; i++)
  if (rows[i - 1].path === rows[i].path) {
    process.stderr.write(`gen-methods: duplicate ${rows[i].path}\n`);
    process.exit(1);
  }

const fp = (p) => (p ? `{${p.length}, {${p.join(', ')}}}` : null);

function entry(r) {
  const f = [
    `.path = ${r.macro} "${r.method}"`,
    `.name = "${r.name}"`,
    `.scope = ${SCOPE[r.scope]}`,
    `.required = ${ROLE[r.access]}`,
  ];
  if (r.worker) f.push('.worker = 1');
  if (r.always) f.push('.always_allowed = 1');
  if (r.inspect) f.push('.inspect_commands = 1');
  if (r.ns) f.push(`.ns = ${fp(r.ns)}`);
  if (r.tq) f.push(`.task_queue = ${fp(r.tq)}`);
  if (r.wt) f.push(`.workflow_type = ${fp(r.wt)}`);
  return `  {${f.join(', ')}},`;
}

const out = [];
out.push(`/* generated by scripts/gen-methods.js from @temporalio/proto ${PROTO_VERSION}
 * and ${METADATA_SOURCE}; do not edit. */`);
out.push('#include "tg_claims.h"');
out.push('#include "tg_methods.h"');
out.push('');
out.push('#include <string.h>');
out.push('');
for (const [k, v] of macros) out.push(`#define ${k} "${v}"`);
out.push('');
out.push('/* Sorted bytewise by path, for tg_method_find. */');
out.push('static const tg_method methods[] = {');
for (const r of rows) out.push(entry(r));
out.push('};');
out.push('');
out.push(`const uint32_t tg_commands_field = ${commandsField};`);
out.push('const tg_command_ns tg_command_namespaces[] = {');
for (const c of commandNs) {
  out.push(`  /* ${c.what} */`);
  out.push(`  {.attr_field = ${c.attr}, .ns_field = ${c.ns}},`);
}
out.push('};');
out.push(
  'const size_t tg_command_namespaces_len =\n' +
    '    sizeof tg_command_namespaces / sizeof tg_command_namespaces[0];',
);
out.push(`
static int cmp_path(const char *path, size_t len, const char *key) {
  size_t klen = strlen(key);
  int c = memcmp(path, key, len < klen ? len : klen);
  if (c != 0)
    return c;
  return len < klen ? -1 : len > klen;
}

const tg_method *tg_method_find(const char *path, size_t len) {
  size_t lo = 0, hi = sizeof methods / sizeof methods[0];
  if (!path || len == 0)
    return NULL;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = cmp_path(path, len, methods[mid].path);
    if (c == 0)
      return &methods[mid];
    if (c < 0)
      hi = mid;
    else
      lo = mid + 1;
  }
  return NULL;
}

size_t tg_methods_count(void) { return sizeof methods / sizeof methods[0]; }

const tg_method *tg_method_at(size_t i) {
  return i < tg_methods_count() ? &methods[i] : NULL;
}
`);

const clangFormat = process.env.CLANG_FORMAT || 'clang-format';
const fmt = spawnSync(
  clangFormat,
  ['--style=file', `--assume-filename=${path.join(REPO, 'src/methods_gen.c')}`],
  { input: out.join('\n') + '\n', encoding: 'utf8', cwd: REPO },
);
if (fmt.error || fmt.status !== 0) {
  process.stderr.write(
    `gen-methods: ${clangFormat} failed: ${fmt.error ? fmt.error.message : fmt.stderr}\n`,
  );
  process.exit(1);
}
process.stdout.write(fmt.stdout);

for (const c of counts) process.stderr.write(`gen-methods: ${c}\n`);
process.stderr.write(`gen-methods: ${rows.length} methods in the table\n`);
for (const [k, v] of Object.entries(NOT_IN_METADATA))
  process.stderr.write(`gen-methods: left out (unknown, denied): ${k}: ${v}\n`);
for (const n of notes) process.stderr.write(`gen-methods: note: ${n}\n`);
