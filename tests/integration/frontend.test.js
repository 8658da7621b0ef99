'use strict';
// Checks the development Temporal frontend fixture (tests/frontend/frontend.js) against the real
// Temporal TypeScript SDK client and a raw grpc-js client, in plaintext h2c and in mutual TLS.
// Run: cd tests && node --test integration/frontend.test.js
// Everything listens on and connects to 127.0.0.1 only; every test has a timeout.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const fs = require('node:fs');
const os = require('node:os');
const { execFileSync } = require('node:child_process');
const grpc = require('@grpc/grpc-js');
const proto = require('@temporalio/proto');
const { Connection, Client } = require('@temporalio/client');
const { startFrontend, buildMethodTable, SERVER_VERSION } = require('../frontend/frontend.js');
require('./lib/watchdog.js');

const T = 20_000; // per-test timeout (ms)
const GEN = path.resolve(__dirname, '..', '..', 'certs-dev', 'gen.sh');
const WS = 'temporal.api.workflowservice.v1.WorkflowService';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Raw unary call through grpc-js; resolves with {err, value, headers, trailers}. */
function rawCall(client, pathName, reqBytes, md = {}, { deadlineMs = 5000, onCall } = {}) {
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(md)) metadata.set(k, v);
  return new Promise((resolve) => {
    let headers = null;
    let trailers = null;
    let result = null;
    let status = null;
    const done = () => {
      if (result && status) resolve({ ...result, headers, trailers, status });
    };
    const call = client.makeUnaryRequest(
      pathName,
      (b) => b,
      (b) => Buffer.from(b),
      reqBytes,
      metadata,
      { deadline: Date.now() + deadlineMs },
      (err, value) => {
        result = { err, value };
        done();
      },
    );
    call.on('metadata', (m) => (headers = m));
    call.on('status', (s) => {
      status = s;
      trailers = s.metadata;
      done();
    });
    if (onCall) onCall(call);
  });
}

function encode(typeName, obj) {
  const t = proto.lookupType(typeName);
  return Buffer.from(t.encode(t.fromObject(obj)).finish());
}

describe('dev frontend, plaintext h2c', () => {
  let fe;
  let conn;
  let raw;

  before(async () => {
    fe = await startFrontend({ host: '127.0.0.1', port: 0, tls: null, longPollMs: 300 });
    raw = new grpc.Client(`127.0.0.1:${fe.port}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    if (conn) await conn.close();
    if (raw) raw.close();
    if (fe) await fe.close();
  });

  test('method table covers every WorkflowService and OperatorService method', { timeout: T }, () => {
    const table = buildMethodTable();
    const ws = proto.lookupService(WS);
    const ops = proto.lookupService('temporal.api.operatorservice.v1.OperatorService');
    const names = new Set(table.map((m) => m.path));
    for (const svc of [ws, ops]) {
      const full = svc.fullName.slice(1);
      for (const name of Object.keys(svc.methods)) assert.ok(names.has(`/${full}/${name}`), name);
    }
    assert.equal(table.length, Object.keys(ws.methods).length + Object.keys(ops.methods).length);
    assert.ok(Object.keys(ws.methods).length > 50);
    for (const m of table) {
      assert.equal(typeof m.requestType.decode, 'function');
      assert.equal(typeof m.responseType.encode, 'function');
    }
  });

  test('SDK Connection.connect, getSystemInfo, describeNamespace, workflow.start are recorded', { timeout: T }, async () => {
    fe.reset();
    conn = await Connection.connect({
      address: `127.0.0.1:${fe.port}`,
      connectTimeout: '5s',
      metadata: { 'x-tenant': 'team-a' },
    });
    // connect() itself does a GetSystemInfo.
    assert.ok(fe.calls.some((c) => c.method === 'GetSystemInfo'));

    const info = await conn.workflowService.getSystemInfo({});
    assert.equal(info.serverVersion, SERVER_VERSION);
    assert.equal(info.capabilities.signalAndQueryHeader, true);

    const ns = await conn.workflowService.describeNamespace({ namespace: 'default' });
    assert.equal(ns.namespaceInfo.name, 'default');
    assert.equal(ns.namespaceInfo.state, proto.temporal.api.enums.v1.NamespaceState.NAMESPACE_STATE_REGISTERED);
    assert.ok(ns.config.workflowExecutionRetentionTtl);

    const client = new Client({ connection: conn, namespace: 'default' });
    const handle = await client.workflow.start('wf', { taskQueue: 'q', workflowId: 'w1' });
    assert.match(handle.firstExecutionRunId, UUID_RE);

    const sys = fe.calls.filter((c) => c.method === 'GetSystemInfo');
    assert.ok(sys.length >= 2);
    for (const c of sys) {
      assert.equal(c.service, WS);
      assert.equal(c.path, `/${WS}/GetSystemInfo`);
      assert.equal(c.metadata['client-name'], 'temporal-typescript');
      assert.equal(typeof c.metadata['client-version'], 'string');
      assert.equal(c.metadata['x-tenant'], 'team-a');
      assert.equal(c.status.code, grpc.status.OK);
      assert.equal(c.cancelled, false);
    }

    const d = fe.calls.find((c) => c.method === 'DescribeNamespace');
    assert.ok(d, 'DescribeNamespace recorded');
    assert.equal(d.namespace, 'default');
    assert.equal(d.request.namespace, 'default');
    assert.equal(d.metadata['temporal-namespace'], 'default');
    assert.equal(d.authority, `127.0.0.1:${fe.port}`);
    assert.deepEqual(d.requestBytes, encode('temporal.api.workflowservice.v1.DescribeNamespaceRequest', { namespace: 'default' }));

    const s = fe.calls.find((c) => c.method === 'StartWorkflowExecution');
    assert.ok(s, 'StartWorkflowExecution recorded');
    assert.equal(s.path, `/${WS}/StartWorkflowExecution`);
    assert.equal(s.namespace, 'default');
    assert.equal(s.metadata['temporal-namespace'], 'default');
    assert.equal(s.metadata['x-tenant'], 'team-a');
    assert.equal(s.request.workflowId, 'w1');
    assert.equal(s.request.workflowType.name, 'wf');
    assert.equal(s.request.taskQueue.name, 'q');
    assert.ok(Buffer.isBuffer(s.requestBytes) && s.requestBytes.length > 0);
    // requestBytes are the exact bytes on the wire: decoding them gives the recorded request.
    const T_ = proto.temporal.api.workflowservice.v1.StartWorkflowExecutionRequest;
    assert.deepEqual(T_.decode(s.requestBytes).toJSON(), s.request);
    assert.ok(typeof s.time === 'number' && s.endTime >= s.time);
  });

  test('every unary method answers OK with its real response type', { timeout: T }, async () => {
    fe.reset();
    const table = buildMethodTable();
    for (const m of table) {
      // x-test-delay-ms: 0 also turns long polls into immediate answers.
      const r = await rawCall(raw, m.path, Buffer.alloc(0), { 'x-test-delay-ms': '0' });
      assert.equal(r.status.code, grpc.status.OK, `${m.path}: ${r.status.details}`);
      m.responseType.decode(r.value); // must be a well-formed message of the response type
    }
    assert.equal(fe.calls.length, table.length);
  });

  test('health Check returns SERVING; unknown method is UNIMPLEMENTED', { timeout: T }, async () => {
    const r = await rawCall(raw, '/grpc.health.v1.Health/Check', Buffer.alloc(0));
    assert.equal(r.status.code, grpc.status.OK);
    assert.deepEqual(r.value, Buffer.from([0x08, 0x01]));
    const h = await conn.healthService.check({});
    assert.equal(h.status, 1);
    const u = await rawCall(raw, `/${WS}/NoSuchMethod`, Buffer.alloc(0));
    assert.equal(u.status.code, grpc.status.UNIMPLEMENTED);
  });

  test('hooks: x-test-fail, x-echo-*, x-test-trailer-bin, x-test-delay-ms', { timeout: T }, async () => {
    fe.reset();
    const req = encode('temporal.api.workflowservice.v1.DescribeNamespaceRequest', { namespace: 'team-a' });
    const p = `/${WS}/DescribeNamespace`;

    const f = await rawCall(raw, p, req, {
      'x-test-fail': 'PERMISSION_DENIED:no way',
      'x-test-trailer-bin': Buffer.from([0, 1, 2, 255]),
    });
    assert.equal(f.status.code, grpc.status.PERMISSION_DENIED);
    assert.equal(f.status.details, 'no way');
    assert.deepEqual(f.trailers.get('x-echo-trailer-bin'), [Buffer.from([0, 1, 2, 255])]);

    const f2 = await rawCall(raw, p, req, { 'x-test-fail': '14:try later' });
    assert.equal(f2.status.code, grpc.status.UNAVAILABLE);
    assert.equal(f2.status.details, 'try later');

    const e = await rawCall(raw, p, req, {
      'x-echo-hello': 'world',
      'x-echo-blob-bin': Buffer.from('\x00\xffbin', 'latin1'),
      'x-test-trailer-bin': Buffer.from('tr'),
    });
    assert.equal(e.status.code, grpc.status.OK);
    assert.deepEqual(e.headers.get('x-echo-hello'), ['world']);
    assert.deepEqual(e.headers.get('x-echo-blob-bin'), [Buffer.from('\x00\xffbin', 'latin1')]);
    assert.deepEqual(e.trailers.get('x-echo-trailer-bin'), [Buffer.from('tr')]);
    const resp = proto.temporal.api.workflowservice.v1.DescribeNamespaceResponse.decode(e.value);
    assert.equal(resp.namespaceInfo.name, 'team-a');

    const t0 = Date.now();
    const dl = await rawCall(raw, p, req, { 'x-test-delay-ms': '250' });
    assert.equal(dl.status.code, grpc.status.OK);
    assert.ok(Date.now() - t0 >= 240, 'delayed');

    const rec = fe.calls.find((c) => c.metadata['x-echo-blob-bin']);
    assert.ok(Buffer.isBuffer(rec.metadata['x-echo-blob-bin']), 'binary metadata recorded as Buffer');
    assert.equal(typeof rec.metadata['x-echo-hello'], 'string');
    assert.equal(rec.namespace, 'team-a');
  });

  test('long poll: held for longPollMs then empty; client cancel is recorded', { timeout: T }, async () => {
    fe.reset();
    const req = encode('temporal.api.workflowservice.v1.PollWorkflowTaskQueueRequest', {
      namespace: 'default',
      taskQueue: { name: 'q' },
    });
    const p = `/${WS}/PollWorkflowTaskQueue`;
    const t0 = Date.now();
    const r = await rawCall(raw, p, req);
    const took = Date.now() - t0;
    assert.equal(r.status.code, grpc.status.OK);
    assert.equal(r.value.length, 0, 'empty response');
    assert.ok(took >= 280 && took < 5000, `held ${took} ms`);

    // Via the SDK, too.
    const act = await conn.workflowService.pollActivityTaskQueue({ namespace: 'default', taskQueue: { name: 'q' } });
    assert.equal(act.taskToken.length, 0);

    // Cancel: a 10 s hold cancelled by the client after 100 ms.
    let callRef;
    const pending = rawCall(raw, p, req, { 'x-test-delay-ms': '10000' }, { onCall: (c) => (callRef = c) });
    const rec = await fe.waitForCall((c) => c.method === 'PollWorkflowTaskQueue' && c.metadata['x-test-delay-ms'] === '10000', 3000);
    await new Promise((res) => setTimeout(res, 100));
    callRef.cancel();
    const c = await pending;
    assert.equal(c.status.code, grpc.status.CANCELLED);
    const t1 = Date.now();
    while (!rec.cancelled && Date.now() - t1 < 3000) await new Promise((res) => setTimeout(res, 20));
    assert.equal(rec.cancelled, true);

    // Deadline shorter than the hold: the client sees DEADLINE_EXCEEDED, the fixture records it.
    const d = await rawCall(raw, p, req, { 'x-test-delay-ms': '10000' }, { deadlineMs: 200 });
    assert.equal(d.status.code, grpc.status.DEADLINE_EXCEEDED);
    const drec = fe.calls[fe.calls.length - 1];
    assert.ok(drec.deadline && drec.deadline > drec.time - 1000);
    const t2 = Date.now();
    while (!drec.status && Date.now() - t2 < 3000) await new Promise((res) => setTimeout(res, 20));
    assert.equal(drec.cancelled, true);
    assert.equal(drec.status.code, grpc.status.DEADLINE_EXCEEDED);
  });

  test('close() does not wait for pending long polls', { timeout: T }, async () => {
    const fe2 = await startFrontend({ port: 0 }); // default 60 s long poll
    const c2 = new grpc.Client(`127.0.0.1:${fe2.port}`, grpc.credentials.createInsecure());
    try {
      const req = encode('temporal.api.workflowservice.v1.PollActivityTaskQueueRequest', { namespace: 'default' });
      const pending = rawCall(c2, `/${WS}/PollActivityTaskQueue`, req, {}, { deadlineMs: 15000 });
      await fe2.waitForCall((c) => c.method === 'PollActivityTaskQueue', 3000);
      const t0 = Date.now();
      await fe2.close();
      const r = await pending;
      assert.ok(Date.now() - t0 < 3000, 'closed quickly');
      assert.notEqual(r.status.code, grpc.status.OK);
    } finally {
      c2.close();
      await fe2.close();
    }
  });
});

describe('dev frontend, mutual TLS', () => {
  let dir;
  let fe;
  const read = (n) => fs.readFileSync(path.join(dir, n));

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tgate-fe-certs-'));
    execFileSync('bash', [GEN, dir], { timeout: 30_000, stdio: ['ignore', 'ignore', 'inherit'] });
  });

  after(async () => {
    if (fe) await fe.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  test('requireClientCert: SDK with worker-a cert works, peer cert is recorded', { timeout: T }, async () => {
    fe = await startFrontend({
      host: '127.0.0.1',
      port: 0,
      tls: { cert: read('server.pem'), key: read('server.key'), ca: read('ca.pem'), requireClientCert: true },
      longPollMs: 300,
    });
    const conn = await Connection.connect({
      address: `127.0.0.1:${fe.port}`,
      connectTimeout: '5s',
      tls: {
        serverRootCACertificate: read('ca.pem'),
        clientCertPair: { crt: read('worker-a.pem'), key: read('worker-a.key') },
        serverNameOverride: 'localhost',
      },
    });
    try {
      const info = await conn.workflowService.getSystemInfo({});
      assert.equal(info.serverVersion, SERVER_VERSION);
      const ns = await conn.workflowService.describeNamespace({ namespace: 'default' });
      assert.equal(ns.namespaceInfo.name, 'default');
      const client = new Client({ connection: conn, namespace: 'default' });
      const h = await client.workflow.start('wf', { taskQueue: 'q', workflowId: 'w1' });
      assert.match(h.firstExecutionRunId, UUID_RE);

      const s = fe.calls.find((c) => c.method === 'StartWorkflowExecution');
      assert.ok(s);
      assert.equal(s.namespace, 'default');
      assert.equal(s.auth.transportSecurityType, 'ssl');
      assert.equal(s.auth.peerCertificate.subject.CN, 'worker-a');
      assert.equal(s.auth.peerCertificate.subject.O, 'team-a');
      assert.match(s.auth.peerCertificate.subjectaltname, /spiffe:\/\/tgate\.dev\/ns\/team-a\/worker-a/);
    } finally {
      await conn.close();
    }
  });

  test('requireClientCert: no client cert, foreign-CA cert and expired cert are refused', { timeout: T }, async () => {
    assert.ok(fe, 'server from previous test');
    const before_ = fe.calls.length;
    const attempt = async (pair) => {
      const creds = pair
        ? grpc.credentials.createSsl(read('ca.pem'), read(`${pair}.key`), read(`${pair}.pem`))
        : grpc.credentials.createSsl(read('ca.pem'));
      const c = new grpc.Client(`127.0.0.1:${fe.port}`, creds, { 'grpc.ssl_target_name_override': 'localhost' });
      try {
        return await rawCall(c, `/${WS}/GetSystemInfo`, Buffer.alloc(0), {}, { deadlineMs: 3000 });
      } finally {
        c.close();
      }
    };
    for (const who of [null, 'other-client', 'expired-client']) {
      const r = await attempt(who);
      assert.notEqual(r.status.code, grpc.status.OK, `${who || 'no cert'} must be refused`);
    }
    // ... while a good cert still works over the same kind of channel.
    const ok = await attempt('worker-b');
    assert.equal(ok.status.code, grpc.status.OK);
    assert.equal(fe.calls.length, before_ + 1);
    assert.equal(fe.calls[fe.calls.length - 1].auth.peerCertificate.subject.CN, 'worker-b');
  });
});
