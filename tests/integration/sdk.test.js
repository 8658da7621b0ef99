'use strict';
// The Temporal TypeScript SDK client (@temporalio/client) through tgate with mutual TLS
// (worker-a certificate), in front of the development frontend over h2c.
// What the SDK sends is captured by a grpc-js interceptor and compared with what the frontend
// received: method, metadata and the serialized request, byte for byte.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const grpc = require('@grpc/grpc-js');
const proto = require('@temporalio/proto');
const { Connection, Client } = require('@temporalio/client');
const clientPkg = require('@temporalio/client/package.json');
const { startFrontend } = require('../frontend/frontend.js');
const h = require('./lib/harness.js');

const T = 30_000 * h.SLOW;
const WS = 'temporal.api.workflowservice.v1.WorkflowService';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const CUSTOM = { 'x-tgate-test': 'sdk-metadata-42' };

/** What the SDK sent, per call: path, metadata and the serialized request bytes. */
const sent = [];
function captureInterceptor(options, nextCall) {
  const rec = { path: options.method_definition.path, metadata: null, message: null };
  sent.push(rec);
  return new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      rec.metadata = metadata.clone();
      next(metadata, listener);
    },
    sendMessage(message, next) {
      rec.message = Buffer.from(message); // the SDK serializes before grpc-js: these are the bytes
      next(message);
    },
  });
}

/** Asserts the frontend got exactly what the SDK sent for its last call of method. */
function assertRelayed(fe, method, requestType) {
  const path = `/${WS}/${method}`;
  const mine = sent.filter((s) => s.path === path).at(-1);
  assert.ok(mine, `SDK sent ${method}`);
  const recs = fe.calls.filter((c) => c.method === method && Buffer.compare(c.requestBytes, mine.message) === 0);
  assert.equal(recs.length, 1, `frontend received ${method} once with the SDK's exact bytes`);
  const rec = recs[0];
  assert.equal(rec.path, path);
  // Byte-identical request, and it decodes to the same message.
  const T = proto.lookupType(`temporal.api.workflowservice.v1.${requestType}`);
  assert.deepEqual(T.decode(rec.requestBytes).toJSON(), T.decode(mine.message).toJSON());
  assert.deepEqual(rec.request, T.decode(mine.message).toJSON());
  // Every metadata entry the SDK sent arrived with the same values.
  for (const [k, vals] of Object.entries(mine.metadata.toJSON())) {
    if (k === 'grpc-timeout') continue; // consumed by grpc-js as the deadline
    assert.deepEqual(rec.metadataAll[k], mine.metadata.get(k), `metadata ${k}`);
    assert.ok(vals.length > 0);
  }
  assert.equal(rec.metadata['client-name'], 'temporal-typescript');
  assert.equal(rec.metadata['client-version'], clientPkg.version);
  assert.equal(rec.metadata['x-tgate-test'], CUSTOM['x-tgate-test']);
  assert.equal(rec.status && rec.status.code, grpc.status.OK);
  return rec;
}

describe('Temporal SDK through tgate (mTLS)', () => {
  let fe;
  let tg;
  let conn;

  before(async () => {
    const c = h.certs();
    fe = await startFrontend({ host: '127.0.0.1', port: 0, longPollMs: 3000 });
    tg = await h.startTgate({ upstream: fe.port, tls: true });
    conn = await Connection.connect({
      address: `127.0.0.1:${tg.port}`,
      connectTimeout: `${5 * h.SLOW}s`,
      metadata: CUSTOM,
      interceptors: [captureInterceptor],
      tls: {
        serverRootCACertificate: c.ca,
        clientCertPair: { crt: c.read('worker-a.pem'), key: c.read('worker-a.key') },
        serverNameOverride: 'localhost',
      },
    });
  });

  after(async () => {
    if (conn) await conn.close();
    try {
      if (tg) await tg.stop();
    } finally {
      if (fe) await fe.close();
    }
  });

  test('getSystemInfo, describeNamespace and workflow.start arrive unchanged', { timeout: T }, async () => {
    // Connection.connect already called GetSystemInfo.
    const rec0 = assertRelayed(fe, 'GetSystemInfo', 'GetSystemInfoRequest');
    assert.equal(rec0.metadata['temporal-namespace'], undefined);

    const info = await conn.workflowService.getSystemInfo({});
    assert.equal(info.serverVersion, '1.24.0-tgate-dev');
    assert.equal(info.capabilities.sdkMetadata, true);
    assert.equal(fe.calls.filter((c) => c.method === 'GetSystemInfo').length, 2);

    const ns = await conn.workflowService.describeNamespace({ namespace: 'default' });
    assert.equal(ns.namespaceInfo.name, 'default');
    const nsRec = assertRelayed(fe, 'DescribeNamespace', 'DescribeNamespaceRequest');
    assert.equal(nsRec.namespace, 'default');
    assert.equal(nsRec.metadata['temporal-namespace'], 'default');
    // Exactly what an independent encoding of the same request gives.
    assert.deepEqual(nsRec.requestBytes, h.encode('workflowservice.v1.DescribeNamespaceRequest', { namespace: 'default' }));

    const client = new Client({ connection: conn, namespace: 'default' });
    const handle = await client.workflow.start('greetWorkflow', {
      taskQueue: 'sdk-q',
      workflowId: 'sdk-wf-1',
      args: ['tgate', 42],
    });
    assert.match(handle.firstExecutionRunId, UUID_RE);
    const st = assertRelayed(fe, 'StartWorkflowExecution', 'StartWorkflowExecutionRequest');
    assert.equal(st.namespace, 'default');
    assert.equal(st.metadata['temporal-namespace'], 'default');
    const req = proto.temporal.api.workflowservice.v1.StartWorkflowExecutionRequest.decode(st.requestBytes);
    assert.equal(req.workflowId, 'sdk-wf-1');
    assert.equal(req.workflowType.name, 'greetWorkflow');
    assert.equal(req.taskQueue.name, 'sdk-q');
    assert.match(req.requestId, UUID_RE);
    assert.deepEqual(req.input.payloads.map((p) => JSON.parse(Buffer.from(p.data).toString())), ['tgate', 42]);
  });

  test('a long poll held 3 s by the frontend is not cut off by tgate', { timeout: T }, async () => {
    const t0 = Date.now();
    const res = await conn.workflowService.pollWorkflowTaskQueue({ namespace: 'default', taskQueue: { name: 'q' } });
    const took = Date.now() - t0;
    assert.ok(took >= 2500, `returned after ${took} ms, expected the frontend's 3 s hold`);
    assert.ok(took < 10_000 * h.SLOW, `took ${took} ms`);
    assert.equal(res.taskToken.length, 0, 'empty poll response');
    const rec = assertRelayed(fe, 'PollWorkflowTaskQueue', 'PollWorkflowTaskQueueRequest');
    assert.equal(rec.request.taskQueue.name, 'q');
    assert.equal(rec.cancelled, false);
  });

  test('a long poll cancelled by the client is cancelled at the frontend', { timeout: T }, async () => {
    const ctrl = new AbortController();
    const poll = conn.withAbortSignal(ctrl.signal, () =>
      conn.workflowService.pollWorkflowTaskQueue({ namespace: 'default', taskQueue: { name: 'abort-q' } }),
    );
    const rec = await fe.waitForCall((c) => c.method === 'PollWorkflowTaskQueue' && c.request.taskQueue.name === 'abort-q', 5000);
    ctrl.abort();
    await assert.rejects(poll, (e) => e.code === grpc.status.CANCELLED);
    await h.waitFor(() => rec.cancelled, 3000, 'the frontend to see the cancellation');
    assert.equal(rec.status.code, grpc.status.CANCELLED);
    assert.ok(rec.endTime - rec.time < 2500, 'cancelled well before the 3 s hold ended');
  });

  test('a long poll past its deadline is cancelled at the frontend', { timeout: T }, async () => {
    const t0 = Date.now();
    const poll = conn.withDeadline(Date.now() + 800, () =>
      conn.workflowService.pollWorkflowTaskQueue({ namespace: 'default', taskQueue: { name: 'deadline-q' } }),
    );
    await assert.rejects(poll, (e) => e.code === grpc.status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - t0 < 2500, 'deadline honoured');
    const rec = await fe.waitForCall((c) => c.method === 'PollWorkflowTaskQueue' && c.request.taskQueue.name === 'deadline-q', 2000);
    assert.ok(rec.deadline && Math.abs(rec.deadline - (t0 + 800)) < 1000, 'grpc-timeout reached the frontend');
    await h.waitFor(() => rec.cancelled, 3000, 'the frontend to see the cancellation');
    assert.ok([grpc.status.CANCELLED, grpc.status.DEADLINE_EXCEEDED].includes(rec.status.code), `status ${rec.status.code}`);
  });
});

describe('Temporal SDK through tgate, no upstream reachable', () => {
  let tg;
  let conn;

  before(async () => {
    const c = h.certs();
    tg = await h.startTgate({ upstream: await h.freePort(), tls: true, waitReady: false });
    conn = Connection.lazy({
      address: `127.0.0.1:${tg.port}`,
      interceptors: [], // no retries: the first answer is what tgate sent
      tls: {
        serverRootCACertificate: c.ca,
        clientCertPair: { crt: c.read('worker-a.pem'), key: c.read('worker-a.key') },
        serverNameOverride: 'localhost',
      },
    });
  });

  after(async () => {
    if (conn) await conn.close();
    if (tg) await tg.stop();
  });

  test('calls fail fast with UNAVAILABLE (which the SDK retries)', { timeout: T }, async () => {
    for (const call of [
      () => conn.workflowService.getSystemInfo({}),
      () => conn.workflowService.describeNamespace({ namespace: 'default' }),
    ]) {
      const t0 = Date.now();
      const err = await conn.withDeadline(Date.now() + 5000, call).then(
        () => assert.fail('the call succeeded without an upstream'),
        (e) => e,
      );
      assert.ok(Date.now() - t0 < 2000, 'failed fast');
      assert.equal(err.code, grpc.status.UNAVAILABLE, `status ${err.code}: ${err.details}`);
    }
  });
});
