'use strict';
// Authorization end to end: Temporal's Authorizer decided on what the call really does, and
// every bypass attempt denied before anything reaches the development frontend.
// Identities are API keys (tgate apikey new), each with Temporal permissions.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http2 = require('node:http2');
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
    // Deny rules on what the request names, wherever it names it. Not scoped by methods: a
    // call whose request cannot name one has nothing for them to match (team-a's other calls
    // pass, which the tests below check).
    '    - effect: deny',
    '      namespaces: ["team-a"]',
    '      workflow_types: ["Forbidden*"]',
    '    - effect: deny',
    '      namespaces: ["team-a"]',
    '      task_queues: ["forbidden-*"]',
    // The authorization issue's example: a worker allowed on its task queues by a rule alone.
    '    - effect: allow',
    '      methods: ["@worker"]',
    '      namespaces: ["payments"]',
    '      subjects: ["pay-worker-*"]',
    '      task_queues: ["payments-*"]',
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
    nsAdmin: ['team-a-admin', ['team-a:admin']],
    starter: ['starter-1', []],
    payWorker: ['pay-worker-1', []],
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
const pathOf = (method) => (method.startsWith('/') ? method
  : method.includes('/') ? `/temporal.api.${method.split('/')[0].toLowerCase()}.v1.${method}` : `${WS}/${method}`);

/**
 * A raw call; body is the serialized request (Buffer) or {frames: Buffer[]} for custom framing.
 * method: "Method" (WorkflowService), "OperatorService/Method" or a full path.
 */
async function call(method, key, body, { headers = {}, raw = null, session = s } = {}) {
  const marker = `m-${++seq}`;
  const hdrs = { 'x-marker': marker, ...headers };
  if (key) hdrs.authorization = `Bearer ${key}`;
  const p = pathOf(method);
  const r = raw
    ? await raw(session, p, h.grpcHeaders(p, hdrs))
    : await h.unaryCall(session, p, body, hdrs);
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
  assert.equal(r.trailersOnly, true, `${what}: not a trailers-only response: ${JSON.stringify({ headers: r.headers, trailers: r.trailers })}`);
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
      resolve({ status: t['grpc-status'] == null ? null : Number(t['grpc-status']), message: t['grpc-message'], headers: res.headers, trailers: res.trailers,
        trailersOnly: !!res.headers && !res.trailers && res.headers['grpc-status'] !== undefined });
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
  assertAllowed(await call('DescribeNamespace', keys.writerA, describe('team-a'), { session: s2 }), 'allowed anyway');
  assertAllowed(await call('StartWorkflowExecution', keys.readerA, start('team-a'), { session: s2 }), 'shadow: role');
  assertAllowed(await call('TerminateWorkflowExecution', keys.sysAdmin,
    enc('TerminateWorkflowExecutionRequest', { namespace: 'team-a' }), { session: s2 }), 'shadow: disabled method');
  // One line per would-be denial, naming the method, the reason and the subject.
  const esc = (x) => x.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const wouldDeny = (method, reason, subject) => new RegExp(
    `: ${esc(`${WS}/${method}`)}: shadow mode, would deny: ${esc(reason)} \\(subject ${esc(subject)}\\)$`);
  await h.waitFor(() => (tg2.log().match(/would deny/g) || []).length >= 2, 5000, 'two would-deny lines');
  const lines = tg2.log().split('\n').filter((l) => /would deny/.test(l));
  assert.equal(lines.length, 2, `exactly the two would-be denials:\n${lines.join('\n')}`);
  const role = wouldDeny('StartWorkflowExecution', 'denied: needs write on namespace team-a, holds read', 'reader-a');
  const disabled = wouldDeny('TerminateWorkflowExecution', 'denied: method disabled', 'ops');
  assert.match(lines[0], role);
  assert.match(lines[1], disabled);
  assert.doesNotMatch(lines[1], role);
  assert.doesNotMatch(lines[0], disabled);
});

/** An RS256 JWT signed with key (kid k1) for the issuer of the explain test. */
function jwt(key, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const data = `${b64({ alg: 'RS256', typ: 'JWT', kid: 'k1' })}.${b64({
    iss: 'https://issuer.authz.test', aud: 'temporal', iat: now, exp: now + 3600, ...claims,
  })}`;
  return `${data}.${crypto.sign('sha256', Buffer.from(data), key).toString('base64url')}`;
}

test('tgate explain agrees with the live decision, for an API key, a client certificate and a JWT', { timeout: T * 2 }, async () => {
  // A second gateway takes all three credentials (TLS with an optional client certificate).
  const dir = h.tempDir('tgate-explain-');
  const { publicKey, privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pub = path.join(dir, 'jwt.pub.pem');
  fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
  const yaml = authzYaml(keys.file).replace('  require: [api_key]\n', [
    '  require: []',
    '  jwt:',
    `    key_sources: [${JSON.stringify(`pem:${pub}#k1`)}]`,
    '    issuer: "https://issuer.authz.test"',
    '    audience: temporal',
    '  client_certs:',
    '    - match: { uri_san: "spiffe://tgate.dev/ns/{ns}/*" }',
    '      permissions: ["{ns}:worker"]',
    '',
  ].join('\n'));
  const tg8 = await h.startTgate({ upstream: fe.port, tls: 'optional', extraYaml: yaml });
  cleanups.push(() => tg8.stop());
  const c = h.certs();
  const withCert = await h.h2connect(tg8.port, { tls: { ca: c.ca, ...c.pair('worker-a') } });
  const noCert = await h.h2connect(tg8.port, { tls: { ca: c.ca } });
  cleanups.push(() => h.closeSessions([withCert, noCert]));
  const tokens = {
    'team-a:write': jwt(privateKey, { sub: 'jwt-writer', permissions: ['team-a:write'] }),
    'temporal-system:admin': jwt(privateKey, { sub: 'jwt-ops', permissions: ['temporal-system:admin'] }),
  };

  const complete = (ns, tq) => enc('RespondWorkflowTaskCompletedRequest', {
    namespace: ns, taskToken: Buffer.from('tok'), identity: 'w',
    commands: tq ? [{
      commandType: enums.CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
      scheduleActivityTaskCommandAttributes: { activityId: '1', activityType: { name: 'A' }, taskQueue: { name: tq } },
    }] : [],
  });
  const bodies = {
    StartWorkflowExecution: (ns, tq) => start(ns, tq || 'q'),
    DescribeNamespace: (ns) => describe(ns),
    PollActivityTaskQueue: (ns, tq) => enc('PollActivityTaskQueueRequest', { namespace: ns, taskQueue: { name: tq } }),
    TerminateWorkflowExecution: (ns) => enc('TerminateWorkflowExecutionRequest', { namespace: ns }),
    UpdateNamespace: (ns) => enc('UpdateNamespaceRequest', { namespace: ns }),
    GetSystemInfo: () => enc('GetSystemInfoRequest', {}),
    RespondWorkflowTaskCompleted: complete,
    'OperatorService/ListClusters': () => Buffer.from(proto.temporal.api.operatorservice.v1.ListClustersRequest.encode({}).finish()),
    ListNamespaces: () => enc('ListNamespacesRequest', {}),
  };
  // [credential, method, namespace, task queue]: explain is given the namespace and the task
  // queue; the live request carries them where its message has room for them.
  const cases = [
    ['key:writerA', 'StartWorkflowExecution', 'team-a', 'q'],
    ['key:writerA', 'StartWorkflowExecution', 'team-b', 'q'],
    ['key:readerA', 'StartWorkflowExecution', 'team-a', 'q'],
    ['key:readerA', 'DescribeNamespace', 'team-a', null],
    ['key:workerA', 'PollActivityTaskQueue', 'team-a', 'q'],
    ['key:workerA', 'StartWorkflowExecution', 'team-a', 'q'],
    ['key:starter', 'StartWorkflowExecution', 'shared', 'public-7'],
    ['key:starter', 'StartWorkflowExecution', 'shared', 'private-7'],
    ['key:sysAdmin', 'TerminateWorkflowExecution', 'team-a', null],
    ['key:sysAdmin', 'UpdateNamespace', 'prod-eu', null],
    ['key:nobody', 'GetSystemInfo', '', null],
    // A task queue on RespondWorkflowTaskCompleted (its commands name queues): a deny rule.
    ['key:writerA', 'RespondWorkflowTaskCompleted', 'team-a', 'forbidden-1'],
    ['key:writerA', 'RespondWorkflowTaskCompleted', 'team-a', 'q'],
    // The rule-allowed worker of the issue's example: its queues, another queue.
    ['key:payWorker', 'RespondWorkflowTaskCompleted', 'payments', 'payments-io'],
    ['key:payWorker', 'RespondWorkflowTaskCompleted', 'payments', 'billing'],
    // A --task-queue the request cannot carry is ignored, as is a --namespace of a
    // cluster-scoped method (both used to change explain's answer).
    ['key:payWorker', 'DescribeNamespace', 'payments', 'billing'],
    ['key:writerA', 'DescribeNamespace', 'team-a', 'forbidden-5'],
    ['key:sysAdmin', 'OperatorService/ListClusters', 'prod-eu', null],
    ['key:sysAdmin', 'ListNamespaces', 'prod-eu', null],
    // A client certificate (worker-a: worker on team-a) and JWTs.
    ['cert:worker-a', 'PollActivityTaskQueue', 'team-a', 'q'],
    ['cert:worker-a', 'StartWorkflowExecution', 'team-a', 'q'],
    ['cert:worker-a', 'RespondWorkflowTaskCompleted', 'team-a', 'q'],
    ['cert:worker-a', 'RespondWorkflowTaskCompleted', 'team-a', 'forbidden-2'],
    ['cert:worker-a', 'DescribeNamespace', 'team-b', null],
    ['token:team-a:write', 'StartWorkflowExecution', 'team-a', 'q'],
    ['token:team-a:write', 'StartWorkflowExecution', 'team-a', 'forbidden-3'],
    ['token:team-a:write', 'StartWorkflowExecution', 'team-b', 'q'],
    ['token:team-a:write', 'DescribeNamespace', 'team-a', 'forbidden-4'],
    ['token:temporal-system:admin', 'OperatorService/ListClusters', 'prod-eu', null],
    ['token:temporal-system:admin', 'UpdateNamespace', 'prod-eu', null],
  ];
  const seen = { allow: 0, deny: 0 };
  for (const [cred, method, ns, tq] of cases) {
    const [kind, ...rest] = cred.split(':');
    const who = rest.join(':');
    const args = ['explain', '-c', kind === 'key' ? tg.configFile : tg8.configFile, '--method', method];
    const body = bodies[method](ns, tq);
    let live;
    if (kind === 'key') {
      live = await call(method, keys[who], body);
      args.push('--api-key', keys[who]);
    } else if (kind === 'cert') {
      live = await call(method, null, body, { session: withCert });
      args.push('--cert', c.paths[who].cert);
    } else {
      live = await call(method, tokens[who], body, { session: noCert });
      args.push('--token', tokens[who]);
    }
    if (ns) args.push('--namespace', ns);
    if (tq) args.push('--task-queue', tq);
    const r = spawnSync(h.TGATE_BIN, args, { cwd: h.ROOT, encoding: 'utf8' });
    const explained = r.status === 0 ? 'allow' : r.status === 1 ? 'deny' : `error ${r.status}: ${r.stderr}`;
    const actual = live.status === 0 ? 'allow' : live.status === 7 ? 'deny' : `status ${live.status}`;
    assert.equal(explained, actual, `${cred} ${method} ${ns}/${tq}:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /^decision: (ALLOW|DENY)/m);
    seen[actual]++;
  }
  assert.ok(seen.allow >= 10 && seen.deny >= 10, JSON.stringify(seen));
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

test('let-through: a deny rule on workflow_types / task_queues sees values named in nested messages', { timeout: T }, async () => {
  const sw = (type = 'Wf', tq = 'q') => ({
    namespace: 'team-a', workflowId: `w-${++seq}`, workflowType: { name: type }, taskQueue: { name: tq }, requestId: `r-${seq}`,
  });
  const multi = (type, tq) => enc('ExecuteMultiOperationRequest', {
    namespace: 'team-a',
    operations: [{ startWorkflow: sw(type, tq) }, { updateWorkflow: { namespace: 'team-a', workflowExecution: { workflowId: 'x' } } }],
  });
  assertDenied(await call('ExecuteMultiOperation', keys.writerA, multi('ForbiddenFlow', 'q')), 7, 'multi-op workflow type');
  assertDenied(await call('ExecuteMultiOperation', keys.writerA, multi('Wf', 'forbidden-q')), 7, 'multi-op task queue');
  assertAllowed(await call('ExecuteMultiOperation', keys.writerA, multi('Wf', 'q')), 'multi-op allowed');
  const schedule = (type, tq) => ({
    namespace: 'team-a', scheduleId: `s-${++seq}`,
    schedule: { action: { startWorkflow: { workflowId: 'sw', workflowType: { name: type }, taskQueue: { name: tq } } } },
  });
  for (const m of ['CreateSchedule', 'UpdateSchedule']) {
    assertDenied(await call(m, keys.writerA, enc(`${m}Request`, schedule('ForbiddenNightly', 'q'))), 7, `${m} workflow type`);
    assertDenied(await call(m, keys.writerA, enc(`${m}Request`, schedule('Nightly', 'forbidden-cron'))), 7, `${m} task queue`);
    assertAllowed(await call(m, keys.writerA, enc(`${m}Request`, schedule('Nightly', 'cron'))), `${m} allowed`);
  }
  assertDenied(await call('SignalWithStartWorkflowExecution', keys.writerA,
    enc('SignalWithStartWorkflowExecutionRequest', { ...sw('ForbiddenFlow'), signalName: 's' })), 7, 'signal-with-start');
  const C = enums.CommandType;
  const complete = (commands, stickyAttributes) => enc('RespondWorkflowTaskCompletedRequest', {
    namespace: 'team-a', taskToken: Buffer.from('tok'), identity: 'w', commands, stickyAttributes,
  });
  const activity = (tq) => ({ commandType: C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
    scheduleActivityTaskCommandAttributes: { activityId: `a-${++seq}`, activityType: { name: 'A' }, taskQueue: { name: tq } } });
  const child = (type, tq) => ({ commandType: C.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
    startChildWorkflowExecutionCommandAttributes: { workflowId: `c-${++seq}`, workflowType: { name: type }, taskQueue: { name: tq } } });
  const next = (type, tq) => ({ commandType: C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
    continueAsNewWorkflowExecutionCommandAttributes: { workflowType: { name: type }, taskQueue: { name: tq } } });
  const sticky = (normalName) => ({
    workerTaskQueue: { name: 'host-1-sticky', kind: enums.TaskQueueKind.TASK_QUEUE_KIND_STICKY, normalName },
  });
  const bad = [
    ['activity', [activity('q'), activity('forbidden-acts')]],
    ['child type', [child('ForbiddenChild', 'q')]],
    ['child queue', [child('Child', 'forbidden-kids')]],
    ['continue-as-new type', [next('ForbiddenNext', 'q')]],
    ['continue-as-new queue', [next('Wf', 'forbidden-next')]],
    ['sticky attributes', [activity('q')], sticky('forbidden-main')],
  ];
  for (const [what, commands, st] of bad) {
    assertDenied(await call('RespondWorkflowTaskCompleted', keys.writerA, complete(commands, st)), 7, what);
  }
  assertAllowed(await call('RespondWorkflowTaskCompleted', keys.writerA,
    complete([activity('q'), child('Child', 'q'), next('Wf', 'q')], sticky('q'))), 'completion allowed');
  // The top level still counts, and a poll of a sticky queue is matched on its normal queue.
  assertDenied(await call('PollWorkflowTaskQueue', keys.writerA, enc('PollWorkflowTaskQueueRequest', {
    namespace: 'team-a', taskQueue: { name: 'host-2-sticky', kind: enums.TaskQueueKind.TASK_QUEUE_KIND_STICKY, normalName: 'forbidden-main' },
  })), 7, 'sticky poll');
});

test('the issue\'s example: a worker allowed by a rule on its task queues alone can run', { timeout: T }, async () => {
  const k = keys.payWorker;
  const kinds = enums.TaskQueueKind;
  const tq = (name, kind = kinds.TASK_QUEUE_KIND_NORMAL, normalName) => ({ name, kind, normalName });
  assertAllowed(await call('DescribeNamespace', k, describe('payments')), 'describe');
  assertAllowed(await call('PollWorkflowTaskQueue', k, enc('PollWorkflowTaskQueueRequest', {
    namespace: 'payments', identity: 'w', taskQueue: tq('payments-main') })), 'poll');
  assertAllowed(await call('PollWorkflowTaskQueue', k, enc('PollWorkflowTaskQueueRequest', {
    namespace: 'payments', identity: 'w', taskQueue: tq('host-3-sticky', kinds.TASK_QUEUE_KIND_STICKY, 'payments-main') })), 'sticky poll');
  assertAllowed(await call('PollActivityTaskQueue', k, enc('PollActivityTaskQueueRequest', {
    namespace: 'payments', identity: 'w', taskQueue: tq('payments-io') })), 'activity poll');
  const complete = (queues) => enc('RespondWorkflowTaskCompletedRequest', {
    namespace: 'payments', taskToken: Buffer.from('tok'), identity: 'w',
    commands: queues.map((q) => ({ commandType: enums.CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
      scheduleActivityTaskCommandAttributes: { activityId: q, activityType: { name: 'A' }, taskQueue: { name: q } } })),
    stickyAttributes: { workerTaskQueue: tq('host-3-sticky', kinds.TASK_QUEUE_KIND_STICKY, 'payments-main') },
  });
  assertAllowed(await call('RespondWorkflowTaskCompleted', k, complete(['payments-main', 'payments-io'])), 'completion');
  assertAllowed(await call('RespondWorkflowTaskCompleted', k, complete([])), 'completion without activities');
  assertDenied(await call('RespondWorkflowTaskCompleted', k, complete(['payments-io', 'billing-io'])), 7, 'an activity elsewhere');
  assertAllowed(await call('RespondWorkflowTaskFailed', k, enc('RespondWorkflowTaskFailedRequest', {
    namespace: 'payments', taskToken: Buffer.from('tok') })), 'task failed');
  for (const m of ['RespondActivityTaskCompleted', 'RecordActivityTaskHeartbeat', 'RespondActivityTaskFailed']) {
    assertAllowed(await call(m, k, enc(`${m}Request`, { namespace: 'payments', taskToken: Buffer.from('tok') })), m);
  }
  assertAllowed(await call('ShutdownWorker', k, enc('ShutdownWorkerRequest', {
    namespace: 'payments', stickyTaskQueue: 'host-3-sticky', identity: 'w', taskQueue: 'payments-main' })), 'shutdown');
  assertDenied(await call('PollActivityTaskQueue', k, enc('PollActivityTaskQueueRequest', {
    namespace: 'payments', taskQueue: tq('billing-io') })), 7, 'another queue');
  assertDenied(await call('DescribeNamespace', k, describe('billing')), 7, 'another namespace');
  assertDenied(await call('StartWorkflowExecution', k, enc('StartWorkflowExecutionRequest', {
    namespace: 'payments', workflowId: 'x', workflowType: { name: 'Wf' }, taskQueue: { name: 'payments-main' } })), 7, 'not a worker call');
});

/**
 * A raw h2c upstream that records every request (path, headers, trailers) and answers an empty
 * message with grpc-status 0 (health checks included).
 */
function startRecorder() {
  const seen = [];
  const sessions = new Set();
  const server = http2.createServer();
  server.on('session', (x) => {
    sessions.add(x);
    x.on('close', () => sessions.delete(x));
    x.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    const rec = { path: headers[':path'], headers, trailers: null };
    seen.push(rec);
    stream.on('error', () => {});
    stream.on('trailers', (t) => (rec.trailers = t));
    stream.on('data', () => {});
    stream.on('end', () => {
      if (stream.destroyed || stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(h.grpcFrame(Buffer.alloc(0)));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    port: server.address().port,
    seen,
    close() {
      for (const x of sessions) x.destroy();
      return new Promise((res) => server.close(() => res()));
    },
  })));
}

test('AdminService: every method is cluster scope, admin: the system admin is forwarded, a namespace admin denied', { timeout: T }, async () => {
  const AS = '/temporal.server.api.adminservice.v1.AdminService';
  const empty = Buffer.alloc(0);
  // Through the development frontend, which does not serve AdminService: forwarded, it answers 12.
  const r = await call(`${AS}/DescribeCluster`, keys.sysAdmin, empty);
  assert.equal(r.status, 12, JSON.stringify(r.trailers || r.headers));
  assert.match(decodeURIComponent(r.message || ''), /does not implement|unimplemented/i);
  for (const who of ['nsAdmin', 'writerA', 'workerA', 'nobody']) {
    assertDenied(await call(`${AS}/DescribeCluster`, keys[who], empty), 7, `AdminService as ${who}`);
  }
  for (const p of [`${AS}/Describe-Cluster`, `${AS}/`, `${AS}/*`, `${AS.toLowerCase()}/DescribeCluster`]) {
    assertDenied(await call(p, keys.sysAdmin, empty), 7, `unknown ${p}`);
  }
  // Through an upstream that records what reaches it.
  const rec = await startRecorder();
  const tg9 = await h.startTgate({ upstream: rec.port, extraYaml: authzYaml(keys.file) });
  cleanups.push(() => rec.close());
  cleanups.push(() => tg9.stop());
  const s9 = await h.h2connect(tg9.port);
  cleanups.push(() => h.closeSessions([s9]));
  for (const m of ['DescribeCluster', 'ListClusterMembers', 'AddSearchAttributes']) {
    const x = await h.unaryCall(s9, `${AS}/${m}`, empty, { authorization: `Bearer ${keys.sysAdmin}` });
    assert.equal(x.status, 0, `${m}: ${JSON.stringify(x.trailers || x.headers)}`);
    assert.ok(rec.seen.some((c) => c.path === `${AS}/${m}`), `${m} reached the upstream`);
  }
  const before = rec.seen.length;
  const d = await h.unaryCall(s9, `${AS}/DescribeCluster`, empty, { authorization: `Bearer ${keys.nsAdmin}` });
  assert.equal(d.status, 7);
  assert.equal(rec.seen.length, before, 'a denied AdminService call reached the upstream');
});

test('request trailers: client-sent temporal-principal-* and subject header trailers are dropped, others forwarded', { timeout: T }, async () => {
  const rec = await startRecorder();
  const yaml = authzYaml(keys.file).replace('  mode: enforce', '  mode: enforce\n  subject_header: x-tgate-subject');
  const tg10 = await h.startTgate({ upstream: rec.port, extraYaml: yaml });
  cleanups.push(() => rec.close());
  cleanups.push(() => tg10.stop());
  const s10 = await h.h2connect(tg10.port);
  cleanups.push(() => h.closeSessions([s10]));
  const p = `${WS}/DescribeNamespace`;
  const res = await new Promise((resolve, reject) => {
    const req = s10.request(h.grpcHeaders(p, { authorization: `Bearer ${keys.writerA}`, 'x-marker': 'trailers' }),
      { waitForTrailers: true });
    const out = { headers: null, trailers: null };
    req.on('response', (x) => (out.headers = x));
    req.on('trailers', (x) => (out.trailers = x));
    req.on('data', () => {});
    req.on('error', reject);
    req.on('wantTrailers', () => req.sendTrailers({
      'temporal-principal-name': 'admin', 'temporal-principal-role': 'admin', 'x-tgate-subject': 'ops', 'x-keep-trailer': 'yes',
    }));
    req.on('close', () => resolve(out));
    req.end(h.grpcFrame(describe('team-a')));
  });
  assert.equal((res.trailers || res.headers || {})['grpc-status'], '0', JSON.stringify(res));
  const seen = rec.seen.find((c) => c.headers['x-marker'] === 'trailers');
  assert.ok(seen, 'the call reached the upstream');
  assert.equal(seen.headers['x-tgate-subject'], 'writer-a', 'the verified subject, in the headers');
  assert.ok(seen.trailers, 'the request trailers reached the upstream');
  assert.equal(seen.trailers['x-keep-trailer'], 'yes');
  assert.equal(seen.trailers['temporal-principal-name'], undefined);
  assert.equal(seen.trailers['temporal-principal-role'], undefined);
  assert.equal(seen.trailers['x-tgate-subject'], undefined);
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
