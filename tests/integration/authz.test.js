'use strict';
// Authorization end to end: Temporal's Authorizer decided on what the call really does, and
// every bypass attempt denied before anything reaches the development frontend.
// Identities are API keys (tgate apikey new), each with Temporal permissions.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const proto = require('@temporalio/proto');
const { startFrontend } = require('../frontend/frontend.js');
const h = require('./lib/harness.js');

const T = 30_000 * h.SLOW;
const WS = `/${h.WS}`;
const wf = proto.temporal.api.workflowservice.v1;
const cmd = proto.temporal.api.command.v1;
const enums = proto.temporal.api.enums.v1;

let fe, tg, s;
const keys = {};
const cleanups = [];

function newKey(subject, perms) {
  const out = execFileSync(h.TGATE_BIN, ['apikey', 'new', '--subject', subject,
    ...perms.flatMap((p) => ['--permission', p])], { encoding: 'utf8' });
  return { key: /#\s+(tgk_\S+)/.exec(out)[1], entry: out.split('\n').filter((l) => !l.startsWith('#')).join('\n') };
}

function authzYaml(file, extra = '') {
  return [
    'authentication:',
    '  require: [api_key]',
    `  api_keys_file: ${JSON.stringify(file)}`,
    'authorization:',
    '  mode: enforce',
    '  disabled_methods: ["WorkflowService/TerminateWorkflowExecution"]',
    '  rules:',
    '    - effect: allow',
    '      methods: ["WorkflowService/StartWorkflowExecution"]',
    '      namespaces: ["shared"]',
    '      subjects: ["starter-*"]',
    '      task_queues: ["public-*"]',
    '    - effect: allow',
    '      methods: ["WorkflowService/PollWorkflowTaskQueue"]',
    '      namespaces: ["shared"]',
    '      subjects: ["starter-*"]',
    '      task_queues: ["public-*"]',
    '    - effect: deny',
    '      methods: ["@admin"]',
    '      namespaces: ["prod-*"]',
    extra,
  ].join('\n');
}

before(async () => {
  const dir = h.tempDir('tgate-authz-');
  const spec = {
    writerA: ['writer-a', ['team-a:write']],
    readerA: ['reader-a', ['team-a:read']],
    workerA: ['worker-a', ['team-a:worker']],
    sysAdmin: ['ops', ['temporal-system:admin']],
    starter: ['starter-1', []],
    nobody: ['nobody', []],
  };
  const entries = [];
  for (const [k, [subject, perms]] of Object.entries(spec)) {
    const made = newKey(subject, perms);
    keys[k] = made.key;
    entries.push(made.entry);
  }
  const file = path.join(dir, 'keys.yaml');
  fs.writeFileSync(file, `keys:\n${entries.join('\n')}\n`);
  keys.file = file;
  fe = await startFrontend({ host: '127.0.0.1', port: 0, longPollMs: 200 });
  tg = await h.startTgate({ upstream: fe.port, extraYaml: authzYaml(file) });
  s = await h.h2connect(tg.port);
});

after(async () => {
  await h.closeSessions([s]);
  for (const c of cleanups.reverse()) await c();
  if (tg) await tg.stop();
  if (fe) await fe.close();
});

let seq = 0;
/** A raw call; body is the serialized request (Buffer) or {frames: Buffer[]} for custom framing. */
async function call(method, key, body, { headers = {}, raw = null, session = s } = {}) {
  const marker = `m-${++seq}`;
  const hdrs = { 'x-marker': marker, ...headers };
  if (key) hdrs.authorization = `Bearer ${key}`;
  const r = raw
    ? await raw(session, `${WS}/${method}`, h.grpcHeaders(`${WS}/${method}`, hdrs))
    : await h.unaryCall(session, `${WS}/${method}`, body, hdrs);
  r.reached = fe.calls.some((c) => c.metadata['x-marker'] === marker);
  return r;
}

const enc = (type, obj) => Buffer.from(wf[type].encode(obj).finish());
const describe = (ns) => enc('DescribeNamespaceRequest', { namespace: ns });
const start = (ns, tq = 'q', type = 'Wf') => enc('StartWorkflowExecutionRequest', {
  namespace: ns, workflowId: `w-${++seq}`, workflowType: { name: type }, taskQueue: { name: tq }, requestId: `r-${seq}`,
});

function assertDenied(r, status = 7, what = '') {
  assert.equal(r.status, status, `${what}: expected status ${status}, got ${JSON.stringify(r.trailers || r.headers)}`);
  assert.equal(r.reached, false, `${what}: the call reached the frontend`);
}
function assertAllowed(r, what = '') {
  assert.equal(r.status, 0, `${what}: ${JSON.stringify(r.trailers || r.headers)}`);
  assert.equal(r.reached, true, `${what}: the frontend did not see the call`);
}

test('Temporal semantics: write covers read, read does not cover write, other namespaces are denied', { timeout: T }, async () => {
  assertAllowed(await call('StartWorkflowExecution', keys.writerA, start('team-a')), 'writer starts');
  assertAllowed(await call('DescribeNamespace', keys.writerA, describe('team-a')), 'writer describes');
  assertAllowed(await call('DescribeNamespace', keys.readerA, describe('team-a')), 'reader describes');
  const denied = await call('StartWorkflowExecution', keys.readerA, start('team-a'));
  assertDenied(denied, 7, 'reader starts');
  assert.equal(decodeURIComponent(denied.message), 'Request unauthorized.');
  assertDenied(await call('StartWorkflowExecution', keys.writerA, start('team-b')), 7, 'other namespace');
  assertDenied(await call('ListNamespaces', keys.writerA, enc('ListNamespacesRequest', {})), 7, 'cluster read');
  assertAllowed(await call('ListNamespaces', keys.sysAdmin, enc('ListNamespacesRequest', {})), 'system admin');
  assertAllowed(await call('GetSystemInfo', keys.nobody, enc('GetSystemInfoRequest', {})), 'always allowed');
  assert.match(tg.log(), /needs write on namespace team-a|holds read/);
});

test('the worker role (extended): polls and completions, not starts', { timeout: T }, async () => {
  assertAllowed(await call('PollActivityTaskQueue', keys.workerA,
    enc('PollActivityTaskQueueRequest', { namespace: 'team-a', taskQueue: { name: 'q' } })), 'worker polls');
  assertDenied(await call('StartWorkflowExecution', keys.workerA, start('team-a')), 7, 'worker starts');
});

test('rules: an allow rule grants by subject and task queue; a deny rule and disabled methods win', { timeout: T }, async () => {
  assertAllowed(await call('StartWorkflowExecution', keys.starter, start('shared', 'public-1')), 'rule allows');
  assertDenied(await call('StartWorkflowExecution', keys.starter, start('shared', 'private-1')), 7, 'queue outside the rule');
  assertDenied(await call('StartWorkflowExecution', keys.starter, start('other', 'public-1')), 7, 'namespace outside the rule');
  assertDenied(await call('TerminateWorkflowExecution', keys.sysAdmin,
    enc('TerminateWorkflowExecutionRequest', { namespace: 'team-a' })), 7, 'disabled method');
  assertDenied(await call('UpdateNamespace', keys.sysAdmin, enc('UpdateNamespaceRequest', { namespace: 'prod-eu' })), 7, 'deny rule');
  assertAllowed(await call('UpdateNamespace', keys.sysAdmin, enc('UpdateNamespaceRequest', { namespace: 'staging' })), 'admin elsewhere');
});

test('bypass: temporal-namespace header differs from the body', { timeout: T }, async () => {
  assertDenied(await call('DescribeNamespace', keys.writerA, describe('team-b'),
    { headers: { 'temporal-namespace': 'team-a' } }), 7, 'header lies');
  assertAllowed(await call('DescribeNamespace', keys.writerA, describe('team-a'),
    { headers: { 'temporal-namespace': 'team-a' } }), 'header agrees');
});

test('bypass: the namespace field duplicated (the last occurrence wins, as in Go)', { timeout: T }, async () => {
  assertDenied(await call('DescribeNamespace', keys.writerA, Buffer.concat([describe('team-a'), describe('team-b')])),
    7, 'allowed first, forbidden last');
  const r = await call('DescribeNamespace', keys.writerA, Buffer.concat([describe('team-b'), describe('team-a')]));
  assertAllowed(r, 'forbidden first, allowed last');
  const seen = fe.calls.find((c) => c.metadata['x-marker'] === `m-${seq}`);
  assert.equal(seen.request.namespace, 'team-a', 'the frontend decoded the same namespace');
});

test('bypass: a gzip-compressed body naming a forbidden namespace', { timeout: T }, async () => {
  const gz = (buf) => zlib.gzipSync(buf);
  const raw = (body) => (session, p, headers) => h.request(session, { ...headers, 'grpc-encoding': 'gzip' }, h.grpcFrame(gz(body), 1));
  assertDenied(await call('DescribeNamespace', keys.writerA, null, { raw: raw(describe('team-b')) }), 7, 'gzip forbidden');
  assertAllowed(await call('DescribeNamespace', keys.writerA, null, { raw: raw(describe('team-a')) }), 'gzip allowed');
  const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024));
  assertDenied(await call('DescribeNamespace', keys.writerA, null,
    { raw: (session, p, headers) => h.request(session, { ...headers, 'grpc-encoding': 'gzip' }, h.grpcFrame(bomb, 1)) }),
  8, 'decompression bomb');
  const r = await call('DescribeNamespace', keys.writerA, null,
    { raw: (session, p, headers) => h.request(session, { ...headers, 'grpc-encoding': 'snappy' }, h.grpcFrame(describe('team-a'), 1)) });
  assertDenied(r, 12, 'unknown encoding');
  assert.match(decodeURIComponent(r.message), /snappy/);
});

test('bypass: a message split into 1-byte DATA frames is decided on the whole message', { timeout: T }, async () => {
  const oneByteAtATime = (body) => (session, p, headers) => new Promise((resolve, reject) => {
    const frame = h.grpcFrame(body);
    const req = session.request(headers);
    const res = { headers: null, trailers: null, chunks: [] };
    req.on('response', (x) => (res.headers = x));
    req.on('trailers', (x) => (res.trailers = x));
    req.on('data', (d) => res.chunks.push(d));
    req.on('error', () => {});
    req.on('close', () => {
      const t = res.trailers || res.headers || {};
      resolve({ status: t['grpc-status'] == null ? null : Number(t['grpc-status']), message: t['grpc-message'], headers: res.headers, trailers: res.trailers });
    });
    (async () => {
      for (let i = 0; i < frame.length; i++) {
        if (req.destroyed || req.closed) return;
        req.write(frame.subarray(i, i + 1));
        await new Promise((r) => setImmediate(r));
      }
      req.end();
    })().catch(reject);
  });
  assertDenied(await call('DescribeNamespace', keys.writerA, null, { raw: oneByteAtATime(describe('team-b')) }), 7, 'split forbidden');
  assertAllowed(await call('DescribeNamespace', keys.writerA, null, { raw: oneByteAtATime(describe('team-a')) }), 'split allowed');
});

test('bypass: a second message on a unary call', { timeout: T }, async () => {
  const two = (session, p, headers) => h.request(session, headers,
    Buffer.concat([h.grpcFrame(describe('team-a')), h.grpcFrame(describe('team-b'))]));
  assertDenied(await call('DescribeNamespace', keys.writerA, null, { raw: two }), 3, 'two messages');
});

test('bypass: a RespondWorkflowTaskCompleted whose command signals another namespace', { timeout: T }, async () => {
  const complete = (target) => enc('RespondWorkflowTaskCompletedRequest', {
    namespace: 'team-a', taskToken: Buffer.from('tok'), identity: 'w',
    commands: [{
      commandType: enums.CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
      signalExternalWorkflowExecutionCommandAttributes: { namespace: target, execution: { workflowId: 'x' }, signalName: 's' },
    }],
  });
  assertDenied(await call('RespondWorkflowTaskCompleted', keys.writerA, complete('team-b')), 7, 'signal into team-b');
  assertAllowed(await call('RespondWorkflowTaskCompleted', keys.writerA, complete('team-a')), 'signal within team-a');
  assertAllowed(await call('RespondWorkflowTaskCompleted', keys.writerA, complete('')), 'signal, no namespace (own)');
});

test('bypass: :path variants and unknown methods', { timeout: T }, async () => {
  const variants = [
    `/${h.WS}/describenamespace`, `/${h.WS.toUpperCase()}/DescribeNamespace`, `//${h.WS}/DescribeNamespace`,
    `/${h.WS}//DescribeNamespace`, `/${h.WS}/DescribeNamespace/`, `/${h.WS}/Describe%4Eamespace`,
    `/${h.WS}/NoSuchMethod`, '/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo',
  ];
  for (const p of variants) {
    const marker = `m-${++seq}`;
    const r = await h.unaryCall(s, p, describe('team-a'), { authorization: `Bearer ${keys.sysAdmin}`, 'x-marker': marker });
    assert.equal(r.status, 7, `${p}: ${JSON.stringify(r.trailers || r.headers)}`);
    assert.equal(fe.calls.some((c) => c.metadata['x-marker'] === marker), false, `${p} reached the frontend`);
  }
});

test('bypass: a malformed protobuf is refused with INVALID_ARGUMENT', { timeout: T }, async () => {
  const bad = [
    Buffer.from([0x0a, 0x20, 0x61]), // length past the end
    Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // 11-byte varint
    Buffer.from([0x0b, 0x0c]), // group
    Buffer.from([0x08, 0x01]), // namespace with the varint wire type
    Buffer.concat([Buffer.from([0x0a, 0x02]), Buffer.from([0xc3, 0x28])]), // invalid UTF-8
  ];
  for (const b of bad) assertDenied(await call('DescribeNamespace', keys.writerA, b), 3, `malformed ${b.toString('hex')}`);
});

test('shadow mode lets everything through and logs each would-be denial', { timeout: T }, async () => {
  const yaml = authzYaml(keys.file).replace('mode: enforce', 'mode: shadow');
  const tg2 = await h.startTgate({ upstream: fe.port, extraYaml: yaml });
  cleanups.push(() => tg2.stop());
  const s2 = await h.h2connect(tg2.port);
  cleanups.push(() => h.closeSessions([s2]));
  assertAllowed(await call('StartWorkflowExecution', keys.readerA, start('team-a'), { session: s2 }), 'shadow');
  assert.match(tg2.log(), /shadow mode, would deny: .*StartWorkflowExecution|would deny/);
});

test('tgate explain agrees with the live decision', { timeout: T }, async () => {
  const cases = [
    ['writerA', 'StartWorkflowExecution', 'team-a', 'q'],
    ['writerA', 'StartWorkflowExecution', 'team-b', 'q'],
    ['readerA', 'StartWorkflowExecution', 'team-a', 'q'],
    ['readerA', 'DescribeNamespace', 'team-a', null],
    ['workerA', 'PollActivityTaskQueue', 'team-a', 'q'],
    ['workerA', 'StartWorkflowExecution', 'team-a', 'q'],
    ['starter', 'StartWorkflowExecution', 'shared', 'public-7'],
    ['starter', 'StartWorkflowExecution', 'shared', 'private-7'],
    ['sysAdmin', 'TerminateWorkflowExecution', 'team-a', null],
    ['sysAdmin', 'UpdateNamespace', 'prod-eu', null],
    ['nobody', 'GetSystemInfo', '', null],
  ];
  const bodies = {
    StartWorkflowExecution: (ns, tq) => start(ns, tq),
    DescribeNamespace: (ns) => describe(ns),
    PollActivityTaskQueue: (ns, tq) => enc('PollActivityTaskQueueRequest', { namespace: ns, taskQueue: { name: tq } }),
    TerminateWorkflowExecution: (ns) => enc('TerminateWorkflowExecutionRequest', { namespace: ns }),
    UpdateNamespace: (ns) => enc('UpdateNamespaceRequest', { namespace: ns }),
    GetSystemInfo: () => enc('GetSystemInfoRequest', {}),
  };
  for (const [who, method, ns, tq] of cases) {
    const live = await call(method, keys[who], bodies[method](ns, tq));
    const args = ['explain', '-c', tg.configFile, '--method', method, '--api-key', keys[who]];
    if (ns) args.push('--namespace', ns);
    if (tq) args.push('--task-queue', tq);
    const r = require('node:child_process').spawnSync(h.TGATE_BIN, args, { cwd: h.ROOT, encoding: 'utf8' });
    const explained = r.status === 0 ? 'allow' : r.status === 1 ? 'deny' : `error ${r.status}: ${r.stderr}`;
    const actual = live.status === 0 ? 'allow' : live.status === 7 ? 'deny' : `status ${live.status}`;
    assert.equal(explained, actual, `${who} ${method} ${ns}/${tq}:\n${r.stdout}`);
    assert.match(r.stdout, /^decision: (ALLOW|DENY)/m);
  }
});

test('identity headers: client-sent temporal-principal-* and subject headers are dropped; tgate sets the verified subject', { timeout: T }, async () => {
  const yaml = authzYaml(keys.file).replace('  mode: enforce', '  mode: enforce\n  subject_header: x-tgate-subject\n  forward_authorization: strip')
    .replace('  require: [api_key]', '  require: [api_key]\n  api_key_header: x-api-key');
  const tg3 = await h.startTgate({ upstream: fe.port, extraYaml: yaml });
  cleanups.push(() => tg3.stop());
  const s3 = await h.h2connect(tg3.port);
  cleanups.push(() => h.closeSessions([s3]));
  const r = await call('DescribeNamespace', keys.writerA, describe('team-a'), {
    session: s3,
    headers: { 'temporal-principal-name': 'admin', 'x-tgate-subject': 'ops', 'x-keep': 'yes' },
  });
  assertAllowed(r, 'described');
  const seen = fe.calls.find((c) => c.metadata['x-marker'] === `m-${seq}`);
  assert.equal(seen.metadata['temporal-principal-name'], undefined);
  assert.equal(seen.metadata['x-tgate-subject'], 'writer-a');
  assert.equal(seen.metadata.authorization, undefined, 'stripped by forward_authorization: strip');
  assert.equal(seen.metadata['x-keep'], 'yes');
  // A bare key in api_key_header is a credential too: stripped as well.
  const rk = await call('DescribeNamespace', null, describe('team-a'), { session: s3, headers: { 'x-api-key': keys.writerA } });
  assertAllowed(rk, 'described with x-api-key');
  const seenk = fe.calls.find((c) => c.metadata['x-marker'] === `m-${seq}`);
  assert.equal(seenk.metadata['x-api-key'], undefined, 'api_key_header stripped by forward_authorization: strip');
  assert.equal(seenk.metadata['x-tgate-subject'], 'writer-a');
  // Without these options the client's authorization header goes upstream unchanged.
  const r2 = await call('DescribeNamespace', keys.writerA, describe('team-a'));
  assertAllowed(r2, 'default forwarding');
  const seen2 = fe.calls.find((c) => c.metadata['x-marker'] === `m-${seq}`);
  assert.equal(seen2.metadata.authorization, `Bearer ${keys.writerA}`);
});

test('a first message larger than max_message_bytes is refused (8) and reasons can be exposed', { timeout: T }, async () => {
  const yaml = authzYaml(keys.file).replace('  mode: enforce', '  mode: enforce\n  max_message_bytes: 65536\n  expose_reasons: true');
  const tg4 = await h.startTgate({ upstream: fe.port, extraYaml: yaml });
  cleanups.push(() => tg4.stop());
  const s4 = await h.h2connect(tg4.port);
  cleanups.push(() => h.closeSessions([s4]));
  const big = enc('StartWorkflowExecutionRequest', {
    namespace: 'team-a', workflowId: 'big', workflowType: { name: 'Wf' }, taskQueue: { name: 'q' },
    input: { payloads: [{ data: Buffer.alloc(100 * 1024, 1) }] },
  });
  assertDenied(await call('StartWorkflowExecution', keys.writerA, big, { session: s4 }), 8, 'too large');
  const r = await call('StartWorkflowExecution', keys.readerA, start('team-a'), { session: s4 });
  assertDenied(r, 7, 'exposed');
  assert.match(decodeURIComponent(r.message), /needs write on namespace team-a, holds read/);
});

test('bypass: a repeated temporal-namespace header is refused', { timeout: T }, async () => {
  // An array value makes Node's http2 send the header field twice.
  const r = await call('DescribeNamespace', keys.writerA, describe('team-a'),
    { headers: { 'temporal-namespace': ['team-a', 'team-b'] } });
  assertDenied(r, 3, 'repeated header');
});

test('sticky polls are matched on their normal queue; normal_name counts only for sticky queues', { timeout: T }, async () => {
  const kinds = enums.TaskQueueKind;
  const poll = (name, kind, normalName) => enc('PollWorkflowTaskQueueRequest', {
    namespace: 'shared', identity: 'w', taskQueue: { name, kind, normalName },
  });
  assertAllowed(await call('PollWorkflowTaskQueue', keys.starter, poll('public-1', kinds.TASK_QUEUE_KIND_NORMAL)), 'normal queue in the rule');
  assertAllowed(await call('PollWorkflowTaskQueue', keys.starter,
    poll('123@host-abc', kinds.TASK_QUEUE_KIND_STICKY, 'public-1')), 'sticky queue of a permitted queue');
  assertDenied(await call('PollWorkflowTaskQueue', keys.starter,
    poll('private-1', kinds.TASK_QUEUE_KIND_NORMAL, 'public-1')), 7, 'normal_name on a normal queue is ignored');
  assertDenied(await call('PollWorkflowTaskQueue', keys.starter,
    poll('123@host-abc', kinds.TASK_QUEUE_KIND_STICKY, 'private-1')), 7, 'sticky queue of a forbidden queue');
});

test('access log: one JSON line per call with subject, decision, status and sizes; reopened on SIGUSR1', { timeout: T }, async () => {
  const dir = h.tempDir('tgate-access-');
  const file = path.join(dir, 'access.jsonl');
  const tg5 = await h.startTgate({ upstream: fe.port, extraYaml: authzYaml(keys.file), accessLog: file });
  cleanups.push(() => tg5.stop());
  const s5 = await h.h2connect(tg5.port);
  cleanups.push(() => h.closeSessions([s5]));
  assertAllowed(await call('StartWorkflowExecution', keys.writerA, start('team-a'), { session: s5 }), 'allowed');
  assertDenied(await call('StartWorkflowExecution', keys.readerA, start('team-a'), { session: s5 }), 7, 'denied');
  const unauth = await call('DescribeNamespace', 'tgk_not-a-key', describe('team-a'), { session: s5 });
  assert.equal(unauth.status, 16);
  const lines = () => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  await h.waitFor(() => lines().length >= 3, 5000, 'three access log lines');
  const [ok, denied, un] = lines();
  assert.equal(ok.decision, 'allowed');
  assert.equal(ok.subject, 'writer-a');
  assert.deepEqual(ok.credentials, ['api_key']);
  assert.equal(ok.method, `${WS}/StartWorkflowExecution`);
  assert.equal(ok.namespace, 'team-a');
  assert.equal(ok.grpc_status, 0);
  assert.ok(ok.bytes_in > 0 && ok.bytes_out > 0 && ok.duration_ms >= 0);
  assert.equal(denied.decision, 'denied');
  assert.equal(denied.grpc_status, 7);
  assert.match(denied.reason, /needs write on namespace team-a/);
  assert.equal(un.decision, 'unauthenticated');
  assert.equal(un.grpc_status, 16);
  assert.equal(un.reason, 'unknown API key');
  // Rotation: move the file away, SIGUSR1, and the next line goes to a new file.
  fs.renameSync(file, `${file}.1`);
  tg5.proc.kill('SIGUSR1');
  await h.waitFor(() => /log files reopened/.test(tg5.log()), 5000, 'the reopen');
  assertAllowed(await call('DescribeNamespace', keys.writerA, describe('team-a'), { session: s5 }), 'after rotation');
  await h.waitFor(() => lines().length === 1, 5000, 'a line in the new file');
  assert.equal(lines()[0].method, `${WS}/DescribeNamespace`);
});

test('/metrics: Prometheus counters move as calls are made', { timeout: T }, async () => {
  const metric = async (re) => {
    const r = await h.httpGet(tg.adminPort, '/metrics');
    assert.equal(r.status, 200);
    const m = re.exec(r.body);
    assert.ok(m, `no ${re} in:\n${r.body}`);
    return Number(m[1]);
  };
  const allowed0 = await metric(/^tgate_calls_total\{decision="allowed"\} (\d+)$/m);
  const denied0 = await metric(/^tgate_calls_total\{decision="denied"\} (\d+)$/m);
  const status7 = await metric(/^tgate_calls_by_status_total\{grpc_status="7"\} (\d+)$/m);
  assertAllowed(await call('DescribeNamespace', keys.writerA, describe('team-a')), 'allowed');
  assertAllowed(await call('DescribeNamespace', keys.writerA, describe('team-a')), 'allowed');
  assertDenied(await call('DescribeNamespace', keys.writerA, describe('team-b')), 7, 'denied');
  await h.waitFor(async () => (await metric(/^tgate_calls_total\{decision="allowed"\} (\d+)$/m)) >= allowed0 + 2,
    5000, 'allowed calls counted');
  assert.equal(await metric(/^tgate_calls_total\{decision="denied"\} (\d+)$/m), denied0 + 1);
  assert.equal(await metric(/^tgate_calls_by_status_total\{grpc_status="7"\} (\d+)$/m), status7 + 1);
  assert.ok((await metric(/^tgate_connections_open (\d+)$/m)) >= 1);
  assert.ok((await metric(/^tgate_upstream_connections_ready (\d+)$/m)) >= 1);
  assert.ok((await metric(/^tgate_request_bytes_total (\d+)$/m)) > 0);
});

test('/metrics: calls by method and namespace (folded into "other" beyond the limit), latency histograms', { timeout: T }, async () => {
  const tg7 = await h.startTgate({ upstream: fe.port, extraYaml: authzYaml(keys.file), metricsMaxNamespaces: 2 });
  cleanups.push(() => tg7.stop());
  const s7 = await h.h2connect(tg7.port);
  cleanups.push(() => h.closeSessions([s7]));
  // Denied calls with made-up namespaces first: they must not take the two labels.
  for (const ns of ['junk-1', 'junk-2', 'junk-3']) {
    assertDenied(await call('DescribeNamespace', keys.writerA, describe(ns), { session: s7 }), 7, ns);
  }
  for (const ns of ['team-a', 'team-b', 'team-c', 'team-a']) {
    assertAllowed(await call('DescribeNamespace', keys.sysAdmin, describe(ns), { session: s7 }), ns);
  }
  assertDenied(await call('DescribeNamespace', keys.writerA, describe('team-b'), { session: s7 }), 7, 'team-b by writer-a');
  let body;
  const series = (ns, decision, st) => {
    const re = new RegExp(`^tgate_grpc_calls_total\\{service="temporal\\.api\\.workflowservice\\.v1\\.WorkflowService",`
      + `method="DescribeNamespace",namespace="${ns}",decision="${decision}",grpc_status="${st}"\\} (\\d+)$`, 'm');
    const m = re.exec(body);
    return m ? Number(m[1]) : 0;
  };
  await h.waitFor(async () => {
    body = (await h.httpGet(tg7.adminPort, '/metrics')).body;
    return series('team-a', 'allowed', 0) === 2;
  }, 5000, 'the calls counted');
  assert.equal(series('team-b', 'allowed', 0), 1, body);
  assert.equal(series('other', 'allowed', 0), 1, 'team-c is the third namespace: "other"');
  assert.equal(series('other', 'denied', 7), 3, 'denied made-up namespaces are "other"');
  assert.equal(series('team-b', 'denied', 7), 1, 'a denied call in a labelled namespace keeps its label');
  assert.equal(series('junk-1', 'denied', 7), 0);
  const count = (name) => Number((new RegExp(`^${name} (\\d+)$`, 'm').exec(body) || [0, NaN])[1]);
  assert.equal(count('tgate_added_latency_seconds_count'), 4, 'one added-latency sample per forwarded call');
  assert.equal(count('tgate_added_latency_seconds_bucket\\{le="\\+Inf"\\}'), 4);
  assert.equal(count('tgate_upstream_latency_seconds_count\\{service="temporal\\.api\\.workflowservice\\.v1\\.WorkflowService",method="DescribeNamespace"\\}'), 4);
});

test('audit log: denials are chained; tgate audit verify passes it and names each kind of tampering', { timeout: T }, async () => {
  const dir = h.tempDir('tgate-audit-');
  const file = path.join(dir, 'audit.jsonl');
  const yaml = `${authzYaml(keys.file)}\naudit:\n  file: ${JSON.stringify(file)}\n  include_allows: false\n`;
  const tg6 = await h.startTgate({ upstream: fe.port, extraYaml: yaml });
  const s6 = await h.h2connect(tg6.port);
  assertAllowed(await call('DescribeNamespace', keys.writerA, describe('team-a'), { session: s6 }), 'allowed');
  for (const ns of ['team-b', 'team-c', 'team-d']) {
    assertDenied(await call('DescribeNamespace', keys.writerA, describe(ns), { session: s6 }), 7, `denied ${ns}`);
  }
  await h.closeSessions([s6]);
  await tg6.stop(); // a clean shutdown writes every entry
  const text = fs.readFileSync(file, 'utf8');
  const entries = text.trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(entries.map((e) => e.event), ['start', 'deny', 'deny', 'deny', 'stop']);
  assert.deepEqual(entries.filter((e) => e.event === 'deny').map((e) => e.namespace), ['team-b', 'team-c', 'team-d']);
  assert.equal(entries[1].subject, 'writer-a');
  const verify = (content) => {
    const f = path.join(dir, `v-${Math.random().toString(16).slice(2)}.jsonl`);
    fs.writeFileSync(f, content);
    return require('node:child_process').spawnSync(h.TGATE_BIN, ['audit', 'verify', f], { encoding: 'utf8' });
  };
  const ok = verify(text);
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /ok: 5 entries/);
  const lines = text.trim().split('\n');
  const altered = [...lines];
  altered[2] = altered[2].replace('team-c', 'team-x');
  const removed = lines.filter((_, i) => i !== 2);
  const swapped = [lines[0], lines[2], lines[1], lines[3], lines[4]];
  for (const [what, content] of [['altered', altered], ['removed', removed], ['reordered', swapped]]) {
    const r = verify(`${content.join('\n')}\n`);
    assert.equal(r.status, 1, `${what}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /entry \d/, `${what} names the entry`);
  }
});
