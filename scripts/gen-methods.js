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
    // metadata.go: every AdminService method is cluster scope, admin access
    // (the server's AdminService is not in Temporal's per-method tables: its
    // interceptor gives the whole service that scope and access).
    // @temporalio/proto does not ship AdminService, so its methods cannot be
    // listed; one entry, "AdminService/*" (tg_method.family), stands for
    // every syntactically valid method name under the service's path. Were
    // the package to ship it, its methods would get entries of their own as
    // well, and the family entry would still take the others.
    full: 'temporal.server.api.adminservice.v1.AdminService',
    macro: 'TG_AS',
    table: null,
    family: true,
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

// ---- where a request names task queues and workflow types ----
//
// Every place a request message can name a task queue or a workflow type,
// found by walking its type through the descriptors (embedded messages,
// repeated ones included; map fields are not walked, nor a type already on
// the way, so recursive types end): a field of type TaskQueue (tgate reads
// its name, or for kind STICKY its normal_name), a field of type
// WorkflowType (its name), or a string field called task_queue (or a
// repeated one called task_queues). tgate collects the values at all of
// them (include/tg_methods.h, src/authz.c).
const TASK_QUEUE_TYPE = 'temporal.api.taskqueue.v1.TaskQueue';
const WORKFLOW_TYPE_TYPE = 'temporal.api.common.v1.WorkflowType';
// Field numbers src/authz.c reads inside those messages (tg_methods.h):
// checked against the descriptors below.
const TASK_QUEUE_FIELDS = { name: 1, kind: 2, normal_name: 3 };
const WORKFLOW_TYPE_FIELDS = { name: 1 };
const STICKY_KIND = { name: 'TASK_QUEUE_KIND_STICKY', value: 2 };
const PLACE_MAX_DEPTH = 6; // TG_PLACE_MAX_DEPTH

// Message types whose subtree is not walked, and why.
const SKIP_TYPES = {
  'temporal.api.failure.v1.Failure':
    'a failure reports what went wrong (its ChildWorkflowExecutionFailureInfo ' +
    "names a failed child's workflow type); the call does not act on it",
};

// String fields whose name says task queue or workflow type but which are
// not places, and why. Any other such field fails the generator, so that a
// new API version's fields get looked at.
const NOT_PLACES = {
  worker_control_task_queue:
    "a per-worker Nexus queue on which the server sends the worker's own " +
    'control tasks; named after the worker instance, not an application queue',
  sticky_task_queue:
    "ShutdownWorker: the worker's per-worker sticky queue; the queue it " +
    'belongs to is the same request\'s task_queue, which is a place',
};

const isMessage = (f) => !!(f.resolvedType && f.resolvedType.fieldsArray);
const snake = (s) => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

// The places of request type req: [{kind: 'tq'|'wt', leaf: 'msg'|'string',
// steps: [{id, repeated, name}]}], in descriptor order.
function placesOf(req, methodName) {
  const out = [];
  const walk = (type, steps, onPath) => {
    for (const f of type.fieldsArray) {
      const step = { id: f.id, repeated: !!f.repeated && !f.map, name: snake(f.name) };
      const here = [...steps, step];
      const t = typeName(f);
      const add = (kind, leaf) => {
        if (here.length > PLACE_MAX_DEPTH)
          fail(`${methodName}: ${showSteps(here)} is deeper than ${PLACE_MAX_DEPTH} fields`);
        else out.push({ kind, leaf, steps: here });
      };
      if (f.map) continue;
      if (t === TASK_QUEUE_TYPE) {
        add('tq', 'msg');
        continue;
      }
      if (t === WORKFLOW_TYPE_TYPE) {
        add('wt', 'msg');
        continue;
      }
      if (f.type === 'string') {
        const n = norm(f.name);
        if ((n === 'taskqueue' && !f.repeated) || (n === 'taskqueues' && f.repeated))
          add('tq', 'string');
        else if ((n.includes('taskqueue') || n.includes('workflowtype')) && !NOT_PLACES[snake(f.name)])
          fail(`${methodName}: string field ${showSteps(here)} names a task queue or workflow ` +
            'type: make it a place or list it in NOT_PLACES');
        continue;
      }
      if (!isMessage(f) || SKIP_TYPES[t] || onPath.has(t)) continue;
      onPath.add(t);
      walk(f.resolvedType, here, onPath);
      onPath.delete(t);
    }
  };
  walk(req, [], new Set([req.fullName.replace(/^\./, '')]));
  return out;
}

const showSteps = (steps) => steps.map((s) => s.name + (s.repeated ? '[]' : '')).join('.');

function checkLeafFields() {
  const check = (typeFull, want) => {
    const t = lookup(typeFull, 'Type');
    for (const [name, id] of Object.entries(want)) {
      const f = t && fieldNamed(t, name);
      if (!f || f.id !== id) fail(`${typeFull}.${name} is not field ${id}: update tg_methods.h`);
    }
  };
  check(TASK_QUEUE_TYPE, TASK_QUEUE_FIELDS);
  check(WORKFLOW_TYPE_TYPE, WORKFLOW_TYPE_FIELDS);
  const kinds = lookup('temporal.api.enums.v1.TaskQueueKind', 'Enum');
  if (!kinds || kinds.values[STICKY_KIND.name] !== STICKY_KIND.value)
    fail(`${STICKY_KIND.name} is not ${STICKY_KIND.value}: update tg_methods.h`);
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

checkLeafFields();

for (const svc of SERVICES) {
  const service = lookup(svc.full, 'Service');
  const short = svc.full.split('.').pop();
  if (svc.family) {
    rows.push({
      path: `/${svc.full}/*`,
      macro: svc.macro,
      method: '*',
      name: `${short}/*`,
      scope: C,
      access: A,
      worker: false,
      always: false,
      inspect: false,
      family: true,
      ns: null,
      places: [],
    });
    counts.push(`${short}: every method, as one entry (${short}/*)`);
  }
  if (!service) {
    if (svc.required) fail(`${svc.full} is not in @temporalio/proto`);
    else if (!svc.family) notes.push(`${svc.full}: not shipped in @temporalio/proto, skipped`);
    if (svc.family) macros.push([svc.macro, `/${svc.full}/`]);
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
    const places = placesOf(req, name);
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
      places,
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
    places: [],
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

// tg_method_find's hash (path_hash in the C below, which this must equal):
// the length plus the path's little-endian 64-bit words each multiplied
// (independent multiplications: they pipeline), plus the last 8 bytes (a
// word overlapping the one before), mixed once; the slot is the top
// SLOT_BITS bits. Any path of 8 bytes or more has a hash; the
// table's are all longer.
const SLOT_BITS = 9;
const M64 = (1n << 64n) - 1n;
const HASH_MUL = 0x9e3779b97f4a7c15n;
function pathSlot(p) {
  const b = Buffer.from(p);
  const word = (i) => b.readBigUInt64LE(i);
  let h = BigInt(b.length);
  for (let i = 0; i + 8 <= b.length; i += 8) h = (h + word(i) * HASH_MUL) & M64;
  h = (h + word(b.length - 8)) & M64;
  h = ((h ^ (h >> 29n)) * HASH_MUL) & M64;
  return Number(h >> BigInt(64 - SLOT_BITS));
}

function slotTable(rs) {
  const size = 1 << SLOT_BITS;
  const t = new Array(size).fill(0);
  if (rs.length > 255 || rs.length * 2 > size) {
    process.stderr.write('gen-methods: the path hash table is too small: raise SLOT_BITS\n');
    process.exit(1);
  }
  rs.forEach((r, i) => {
    if (r.family) return;
    if (Buffer.byteLength(r.path) < 8) {
      process.stderr.write(`gen-methods: ${r.path}: shorter than 8 bytes\n`);
      process.exit(1);
    }
    let k = pathSlot(r.path);
    while (t[k]) k = (k + 1) % size;
    t[k] = i + 1;
  });
  return t;
}

const LEAF = { msg: { tq: 'TG_PLACE_TASK_QUEUE', wt: 'TG_PLACE_WORKFLOW_TYPE' }, string: { tq: 'TG_PLACE_STRING' } };
const ident = (r) => `${r.macro.replace(/^TG_/, '')}_${r.method}`;

// The place arrays of row r, as C lines; sets r.tqArray / r.wtArray.
function placeArrays(r) {
  const lines = [];
  for (const kind of ['tq', 'wt']) {
    const ps = r.places.filter((p) => p.kind === kind);
    if (!ps.length) continue;
    const arr = `${kind}_${ident(r)}`;
    r[`${kind}Array`] = [arr, ps.length];
    lines.push(`static const tg_name_place ${arr}[] = {`);
    for (const p of ps) {
      const rep = p.steps.reduce((acc, st, i) => acc | (st.repeated ? 1 << i : 0), 0);
      lines.push(`  /* ${showSteps(p.steps)} */`);
      lines.push(`  {.leaf = ${LEAF[p.leaf][kind]}, .len = ${p.steps.length}, ` +
        `.repeated = 0x${rep.toString(16)}, .f = {${p.steps.map((st) => st.id).join(', ')}}},`);
    }
    lines.push('};');
  }
  return lines;
}

function entry(r) {
  const f = [
    `.path = ${r.macro} "${r.method}"`,
    `.path_len = ${Buffer.byteLength(r.path)}`,
    `.name = "${r.name}"`,
    `.scope = ${SCOPE[r.scope]}`,
    `.required = ${ROLE[r.access]}`,
  ];
  if (r.worker) f.push('.worker = 1');
  if (r.always) f.push('.always_allowed = 1');
  if (r.inspect) f.push('.inspect_commands = 1');
  if (r.family) f.push('.family = 1');
  if (r.ns) f.push(`.ns = ${fp(r.ns)}`);
  if (r.tqArray) f.push(`.task_queues = ${r.tqArray[0]}`, `.ntask_queues = ${r.tqArray[1]}`);
  if (r.wtArray) f.push(`.workflow_types = ${r.wtArray[0]}`, `.nworkflow_types = ${r.wtArray[1]}`);
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
out.push('/* Where requests name task queues (tq_) and workflow types (wt_); the');
out.push(' * comments give the fields by name, [] marking a repeated one. */');
for (const r of rows) out.push(...placeArrays(r));
out.push('');
out.push('/* Sorted bytewise by path. */');
out.push('static const tg_method methods[] = {');
for (const r of rows) out.push(entry(r));
out.push('};');
out.push('');
out.push(`/* An open-addressing hash of the paths (path_hash, linear probing): the
 * index in methods[] + 1, 0 for an empty slot. The family entries are not
 * in it. */`);
out.push(`#define SLOT_BITS ${SLOT_BITS}`);
out.push(`static const uint8_t slots[1u << SLOT_BITS] = {${slotTable(rows).join(', ')}};`);
out.push('');
out.push('/* The family entries (tg_method.family), by index in methods[]. */');
out.push(`static const size_t families[] = {${rows.map((r, i) => (r.family ? i : -1)).filter((i) => i >= 0).join(', ')}};`);
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
static uint64_t load64le(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint64_t)u[0] | (uint64_t)u[1] << 8 | (uint64_t)u[2] << 16 |
         (uint64_t)u[3] << 24 | (uint64_t)u[4] << 32 | (uint64_t)u[5] << 40 |
         (uint64_t)u[6] << 48 | (uint64_t)u[7] << 56;
}

/* The slot of a path of len >= 8 bytes (scripts/gen-methods.js, pathSlot,
 * computes the same). */
static size_t path_hash(const char *path, size_t len) {
  uint64_t h = len;
  for (size_t i = 0; i + 8 <= len; i += 8)
    h += load64le(path + i) * UINT64_C(0x9e3779b97f4a7c15);
  h += load64le(path + len - 8);
  h = (h ^ h >> 29) * UINT64_C(0x9e3779b97f4a7c15);
  return (size_t)(h >> (64 - SLOT_BITS));
}

/* A protobuf identifier: [A-Za-z_][A-Za-z0-9_]*. */
static int is_ident(const char *s, size_t len) {
  if (len == 0 || (s[0] >= '0' && s[0] <= '9'))
    return 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '_'))
      return 0;
  }
  return 1;
}

const tg_method *tg_method_find(const char *path, size_t len) {
  if (!path || len < 8)
    return NULL;
  for (size_t k = path_hash(path, len); slots[k];
       k = (k + 1) & ((1u << SLOT_BITS) - 1)) {
    const tg_method *m = &methods[slots[k] - 1];
    if (m->path_len == len && memcmp(m->path, path, len) == 0)
      return m;
  }
  /* A family entry's path is its service's path and "*". */
  for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
    const tg_method *m = &methods[families[i]];
    size_t plen = m->path_len - 1;
    if (len > plen && memcmp(path, m->path, plen) == 0 &&
        is_ident(path + plen, len - plen))
      return m;
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
