'use strict';
// The REAL Temporal TypeScript SDK worker (@temporalio/worker, its Rust core through the native
// bridge) through tgate with mutual TLS, holding ONLY the worker role on its namespace
// (worker-a certificate, URI SAN spiffe://tgate.dev/ns/team-a/worker-a -> team-a:worker).
//
//   worker_role: extended  the worker starts, polls, and completes a workflow task and an
//                          activity task handed to it; tgate denies none of its calls.
//   worker_role: temporal  Temporal's own behaviour (worker alone allows nothing): it cannot run.
//   other namespace        the same certificate as a worker of team-b is denied; and the
//                          worker role does not let it start a workflow.
//
// The development frontend answers every poll empty after longPollMs; to let the worker do real
// work, this file hands it one workflow task and one activity task by substituting the poll
// answer (Frontend#answer is called per call through `this`, so an instance override works).
// A second run makes DescribeNamespace advertise what a recent server does (worker heartbeats,
// worker commands), so the core also heartbeats and polls its worker-commands queue.
// The methods the worker called (fe.calls) are printed: the evidence for the worker method list
// (scripts/gen-methods.js, WORKER).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const proto = require('@temporalio/proto');
const { Connection, Client } = require('@temporalio/client');
const {
  Worker, NativeConnection, Runtime, DefaultLogger, bundleWorkflowCode,
} = require('@temporalio/worker');
const workerPkg = require('@temporalio/worker/package.json');
const clientPkg = require('@temporalio/client/package.json');
const { startFrontend } = require('../frontend/frontend.js');
const h = require('./lib/harness.js');

const T = 60_000 * h.SLOW;
const WS = 'temporal.api.workflowservice.v1.WorkflowService';
const enums = proto.temporal.api.enums.v1;
const LONG_POLL_MS = 300;

// Warnings and errors only (the core's own log lines are noise in test output); worker
// heartbeats (sent only when the namespace advertises them) every second instead of 60 s.
Runtime.install({ logger: new DefaultLogger('WARN'), workerHeartbeatInterval: '1s' });

let fe, tgExt, tgTemporal, workflowBundle;
const cleanups = [];

function authYaml(workerRole) {
  return [
    'authentication:',
    '  require: [client_cert]',
    '  client_certs:',
    '    - match: { uri_san: "spiffe://tgate.dev/ns/{ns}/*" }',
    '      permissions: ["{ns}:worker"]',
    'authorization:',
    '  mode: enforce',
    `  worker_role: ${workerRole}`,
    // Tells the frontend which gateway a call came through (both share it, and a worker of one
    // test may still be winding down while the next one runs).
    `  subject_header: x-via-${workerRole}`,
  ].join('\n');
}

function tlsOf(name) {
  const c = h.certs();
  const p = c.pair(name);
  return { serverRootCACertificate: c.ca, clientCertPair: { crt: p.cert, key: p.key }, serverNameOverride: 'localhost' };
}

// ---------- tasks handed to the worker ----------

/** Tasks served instead of an empty poll answer, per method, FIFO; {match(rec), body}. */
const inject = { PollWorkflowTaskQueue: [], PollActivityTaskQueue: [] };
/** When set, DescribeNamespace answers advertise these namespace capabilities (as a recent server). */
let advertise = null;

const json = (v) => ({ metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from(JSON.stringify(v)) });
const ts = (ms = Date.now()) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 });

function workflowTask({ workflowId, runId, queue, name, arg, token }) {
  const now = ts();
  const event = (eventId, eventType, attrs) => ({ eventId, eventTime: now, eventType, taskId: eventId, ...attrs });
  return {
    taskToken: Buffer.from(token),
    workflowExecution: { workflowId, runId },
    workflowType: { name },
    previousStartedEventId: 0,
    startedEventId: 3,
    attempt: 1,
    history: {
      events: [
        event(1, enums.EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, {
          workflowExecutionStartedEventAttributes: {
            workflowType: { name },
            taskQueue: { name: queue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            input: { payloads: [json(arg)] },
            workflowTaskTimeout: { seconds: 10 },
            originalExecutionRunId: runId,
            firstExecutionRunId: runId,
            attempt: 1,
            identity: 'worker.test.js',
          },
        }),
        event(2, enums.EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, {
          workflowTaskScheduledEventAttributes: {
            taskQueue: { name: queue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            startToCloseTimeout: { seconds: 10 },
            attempt: 1,
          },
        }),
        event(3, enums.EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, {
          workflowTaskStartedEventAttributes: { scheduledEventId: 2, identity: 'worker.test.js', requestId: crypto.randomUUID() },
        }),
      ],
    },
    workflowExecutionTaskQueue: { name: queue, kind: enums.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    scheduledTime: now,
    startedTime: now,
  };
}

function activityTask({ namespace, workflowId, runId, name, arg, token }) {
  const now = ts();
  return {
    taskToken: Buffer.from(token),
    workflowNamespace: namespace,
    workflowType: { name: 'hello' },
    workflowExecution: { workflowId, runId },
    activityType: { name },
    activityId: '1',
    input: { payloads: [json(arg)] },
    scheduledTime: now,
    currentAttemptScheduledTime: now,
    startedTime: now,
    attempt: 1,
    scheduleToCloseTimeout: { seconds: 30 },
    startToCloseTimeout: { seconds: 30 },
    heartbeatTimeout: { seconds: 0 },
  };
}

const decodePayload = (p) => JSON.parse(Buffer.from(p.data, 'base64').toString('utf8'));

// ---------- setup ----------

before(async () => {
  const dir = h.tempDir('tgate-worker-wf-');
  const workflowsPath = path.join(dir, 'workflows.js');
  fs.writeFileSync(workflowsPath, 'exports.hello = async function hello(name) { return `hello, ${name}`; };\n');
  const modules = path.join(h.TESTS, 'node_modules');
  const bundle = await h.within(bundleWorkflowCode({
    workflowsPath,
    logger: new DefaultLogger('WARN'),
    // The workflow file lives in a temporary directory: resolve the SDK from tests/node_modules.
    webpackConfigHook: (config) => {
      config.resolve.modules = [...config.resolve.modules, modules];
      config.resolveLoader = { ...(config.resolveLoader || {}), modules: ['node_modules', modules] };
      return config;
    },
  }), 60_000, 'bundleWorkflowCode');
  workflowBundle = { code: bundle.code };

  fe = await startFrontend({ host: '127.0.0.1', port: 0, longPollMs: LONG_POLL_MS });
  const answer = fe.answer.bind(fe);
  fe.answer = (rec, call, callback, opts) => {
    const queue = inject[rec.method];
    const i = queue ? queue.findIndex((t) => t.match(rec)) : -1;
    if (i >= 0) {
      const [task] = queue.splice(i, 1);
      opts = { ...opts, holdMs: 0, body: task.body };
    }
    if (rec.method === 'DescribeNamespace' && advertise) {
      opts = { ...opts, body: { ...opts.body, namespaceInfo: { ...opts.body.namespaceInfo, capabilities: advertise } } };
    }
    return answer(rec, call, callback, opts);
  };
  tgExt = await h.startTgate({ upstream: fe.port, tls: true, extraYaml: authYaml('extended'), logLevel: 'debug' });
  tgTemporal = await h.startTgate({ upstream: fe.port, tls: true, extraYaml: authYaml('temporal'), logLevel: 'debug' });
});

after(async () => {
  // Bounded: a connection that does not close must not keep the process alive.
  for (const c of cleanups.reverse()) await h.within(c(), 5000, 'cleanup').catch(() => {});
  await h.stopAll([tgExt, tgTemporal]);
  if (fe) await fe.close();
});

/** A NativeConnection (the worker's own, Rust core) to tgate with the worker-a certificate. */
async function connect(tg) {
  const conn = await h.within(NativeConnection.connect({
    address: `127.0.0.1:${tg.port}`,
    tls: tlsOf('worker-a'),
  }), 15_000, 'NativeConnection.connect');
  cleanups.push(() => conn.close());
  return conn;
}

/** The log lines of tg's authorization denials (PERMISSION_DENIED). */
const denials = (log) => log.split('\n').filter((l) => / status 7: /.test(l));
/** Waits (bounded) until tg's log after offset `since` has a line containing text. */
async function logShows(tg, since, text) {
  await h.waitFor(() => tg.log().slice(since).includes(text), 5000 * h.SLOW, `tgate log line "${text}"`)
    .catch((e) => assert.fail(`${e.message}; log:\n${tg.log().slice(since).slice(-3000)}`));
}
/** WorkflowService calls the frontend received after index since (the tests run one at a time,
 * and only this file's workers and client talk to this frontend). */
const workerCalls = (since) => fe.calls.slice(since).filter((c) => c.service === WS);

test(`the native bridge of @temporalio/worker ${workerPkg.version} loads (same version as the client)`, () => {
  assert.equal(workerPkg.version, clientPkg.version);
  assert.equal(typeof require('@temporalio/core-bridge').native, 'object');
  assert.ok(workflowBundle.code.length > 1000, 'workflow bundle built');
});

/**
 * Runs a worker (team-a, queue q) against tgExt, hands it a workflow task and an activity task,
 * waits for both completions, keeps it polling extraMs more, shuts it down, and checks that every
 * call went through tgate allowed. Returns the WorkflowService calls the frontend received.
 */
async function runExtended(label, extraMs) {
  const since = fe.calls.length;
  const logSince = tgExt.log().length;
  const runId = crypto.randomUUID();
  const workflowId = `wf-${runId.slice(0, 8)}`;
  const forQ = (rec) => rec.namespace === 'team-a' && rec.request.taskQueue && rec.request.taskQueue.name === 'q';
  inject.PollWorkflowTaskQueue.push({
    match: forQ,
    body: workflowTask({ workflowId, runId, queue: 'q', name: 'hello', arg: 'tgate', token: 'wft-token-1' }),
  });
  inject.PollActivityTaskQueue.push({
    match: forQ,
    body: activityTask({ namespace: 'team-a', workflowId, runId, name: 'greet', arg: 'activity', token: 'act-token-1' }),
  });
  let activityRan = 0;
  const connection = await connect(tgExt);
  const worker = await h.within(Worker.create({
    connection,
    namespace: 'team-a',
    taskQueue: 'q',
    workflowBundle,
    activities: {
      async greet(name) {
        activityRan++;
        return `greetings, ${name}`;
      },
    },
    shutdownGraceTime: '2s',
  }), 20_000, 'Worker.create');
  let running = null;
  // Should the test fail before the worker stopped: stop it before its connection is closed.
  cleanups.push(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    if (running) await running.catch(() => {});
  });

  const completed = (method) => fe.calls.slice(since).find((c) => c.method === method && c.status && c.status.code === 0);
  await h.within(running = worker.runUntil(async () => {
    await h.waitFor(() => completed('RespondWorkflowTaskCompleted') && completed('RespondActivityTaskCompleted'),
      15_000, 'the worker to complete the workflow task and the activity task');
    // Keep polling a little longer: several empty long polls (longPollMs) on each queue.
    await h.sleep(extraMs);
  }), 40_000, 'worker.runUntil');
  assert.equal(worker.getState(), 'STOPPED');

  const calls = workerCalls(since);
  const methods = [...new Set(calls.map((c) => c.method))].sort();
  const counts = Object.fromEntries(methods.map((m) => [m, calls.filter((c) => c.method === m).length]));
  const order = [...new Set(calls.map((c) => c.method))];
  console.log(`# ${label}: @temporalio/worker ${workerPkg.version}: methods the worker called through tgate (calls each):`);
  console.log(`# ${JSON.stringify(counts)}`);
  console.log(`# in order of first call: ${order.join(' -> ')}`);

  // Start-up and polling went through tgate to the frontend, for team-a.
  for (const m of ['PollWorkflowTaskQueue', 'PollActivityTaskQueue']) {
    assert.ok(calls.some((c) => c.method === m && c.namespace === 'team-a'), `the frontend got ${m} for team-a`);
  }
  // Every authenticated call carries the gateway's subject header (what the worker_role temporal
  // test relies on to tell which gateway a call came through).
  const viaHeader = calls.filter((c) => c.method !== 'GetSystemInfo' && !Object.keys(c.metadata).some((k) => k.startsWith('x-via-')));
  assert.deepEqual(viaHeader.map((c) => c.method), [], 'calls without the x-via-* subject header');
  for (const c of calls) {
    if (c.namespace !== undefined && c.namespace !== '') assert.equal(c.namespace, 'team-a', `${c.method} namespace`);
    assert.match(String(c.metadata['client-name']), /temporal-typescript/, `${c.method}: client-name`);
  }
  // The work: the workflow ran and returned; the activity ran and returned.
  const wft = completed('RespondWorkflowTaskCompleted');
  assert.equal(Buffer.from(wft.request.taskToken, 'base64').toString(), 'wft-token-1');
  assert.equal(wft.request.namespace, 'team-a');
  const done = wft.request.commands.find((c) => c.commandType === 'COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION');
  assert.ok(done, `a CompleteWorkflowExecution command: ${JSON.stringify(wft.request.commands)}`);
  assert.equal(decodePayload(done.completeWorkflowExecutionCommandAttributes.result.payloads[0]), 'hello, tgate');
  const act = completed('RespondActivityTaskCompleted');
  assert.equal(Buffer.from(act.request.taskToken, 'base64').toString(), 'act-token-1');
  assert.equal(act.request.namespace, 'team-a');
  assert.equal(decodePayload(act.request.result.payloads[0]), 'greetings, activity');
  assert.equal(activityRan, 1);

  // tgate denied nothing, and allowed each method: on the worker role, or as always allowed.
  const log = tgExt.log().slice(logSince);
  assert.deepEqual(denials(log), [], 'no denial in the tgate log');
  assert.match(log, /authenticated as spiffe:\/\/tgate.dev\/ns\/team-a\/worker-a/);
  for (const m of methods) {
    const why = m === 'GetSystemInfo' ? 'allowed: always allowed method' : 'allowed: worker on namespace team-a (worker method)';
    assert.ok(log.includes(`/${WS}/${m}: ${why}`), `tgate log: ${m}: ${why}`);
    for (const c of calls.filter((x) => x.method === m)) {
      // Answered OK by the frontend; only long polls may have been cancelled when the worker shut
      // down, or still be held (the worker-commands poll belongs to the connection, not the worker).
      const ok = c.status ? c.status.code === 0 || (c.cancelled && /^Poll/.test(m)) : /^Poll/.test(m);
      assert.ok(ok, `${m}: answered by the frontend (${JSON.stringify(c.status)})`);
    }
  }
  console.log(`# task queues polled: ${JSON.stringify([...new Set(calls.filter((c) => /^Poll/.test(c.method))
    .map((c) => `${c.method} ${c.request.taskQueue.name} ${c.request.taskQueue.kind || ''}`.trim()))].sort())}`);
  return calls;
}

test('worker_role extended: a worker holding only team-a:worker starts, polls and completes work', { timeout: T }, async () => {
  await runExtended('plain server', 2000);
});

test('worker_role extended, a server advertising worker heartbeats and commands: those calls are allowed too', { timeout: T }, async () => {
  // What a recent Temporal server says in DescribeNamespace: the core then also heartbeats
  // (RecordWorkerHeartbeat) and polls the namespace's worker-commands queue (PollNexusTaskQueue).
  advertise = { workerHeartbeats: true, workerCommands: true, pollerAutoscaling: true, workerPollCompleteOnShutdown: true };
  try {
    const calls = await runExtended('server with worker heartbeats and commands', 3000);
    for (const m of ['RecordWorkerHeartbeat', 'PollNexusTaskQueue']) {
      assert.ok(calls.some((c) => c.method === m && c.namespace === 'team-a'), `the frontend got ${m} for team-a`);
    }
  } finally {
    advertise = null;
  }
});

/**
 * Runs a worker for namespace against tg, expecting it not to get anywhere; returns
 * {stage: 'create' | 'run' | 'ran', error}.
 * debugMode: workflows in this thread instead of a worker-thread pool. In @temporalio/worker
 * 1.24.0 a Worker.create that fails (here: its namespace check is denied) does not destroy the
 * thread pool it already made, and those threads keep the process alive after the tests.
 * The calls the worker makes are the same either way.
 */
async function expectWorkerDenied(tg, namespace) {
  const connection = await connect(tg);
  let worker;
  try {
    worker = await h.within(Worker.create({
      connection, namespace, taskQueue: 'q', workflowBundle, activities: { async greet() {} }, shutdownGraceTime: '1s',
      debugMode: true,
    }), 20_000, 'Worker.create');
  } catch (e) {
    return { stage: 'create', error: e };
  }
  // Created (not expected: the core checks the namespace first): its polls must then fail it.
  let running = null;
  cleanups.push(async () => {
    if (worker.getState() === 'RUNNING') worker.shutdown();
    if (running) await running.catch(() => {});
  });
  try {
    await h.within(running = worker.runUntil(h.sleep(10_000)), 30_000, 'worker.runUntil');
  } catch (e) {
    return { stage: 'run', error: e };
  }
  return { stage: 'ran', error: null };
}

test('worker_role temporal: the same worker cannot run (worker alone allows nothing)', { timeout: T }, async () => {
  const since = fe.calls.length;
  const logSince = tgTemporal.log().length;
  const r = await expectWorkerDenied(tgTemporal, 'team-a');
  console.log(`# worker_role temporal: ${r.stage}: ${r.error && r.error.message}`);
  assert.notEqual(r.stage, 'ran', 'the worker ran');
  assert.match(String(r.error && r.error.message), /PERMISSION_DENIED|Request unauthorized|permission/i);
  await logShows(tgTemporal, logSince, `/${WS}/DescribeNamespace: status 7: denied: needs read on namespace team-a, holds worker`);
  const reached = workerCalls(since).filter((c) => c.method !== 'GetSystemInfo' && c.metadata['x-via-temporal']);
  assert.deepEqual(reached.map((c) => c.method), [], 'nothing but GetSystemInfo reached the frontend');
});

test('other namespace: the team-a certificate cannot run a worker of team-b', { timeout: T }, async () => {
  const since = fe.calls.length;
  const logSince = tgExt.log().length;
  const r = await expectWorkerDenied(tgExt, 'team-b');
  console.log(`# team-b: ${r.stage}: ${r.error && r.error.message}`);
  assert.notEqual(r.stage, 'ran', 'the worker ran');
  assert.match(String(r.error && r.error.message), /PERMISSION_DENIED|Request unauthorized|permission/i);
  await logShows(tgExt, logSince, `/${WS}/DescribeNamespace: status 7: denied: needs read on namespace team-b, holds none`);
  const reached = workerCalls(since).filter((c) => c.namespace === 'team-b');
  assert.deepEqual(reached.map((c) => c.method), [], 'nothing for team-b reached the frontend');
});

test('the worker role does not start workflows: the SDK client with the same certificate is denied', { timeout: T }, async () => {
  const since = fe.calls.length;
  const logSince = tgExt.log().length;
  const t = tlsOf('worker-a');
  const connection = await h.within(Connection.connect({ address: `127.0.0.1:${tgExt.port}`, tls: t, connectTimeout: '5s' }),
    15_000, 'Connection.connect');
  cleanups.push(() => connection.close());
  const client = new Client({ connection, namespace: 'team-a' });
  await assert.rejects(
    h.within(client.workflow.start('hello', { taskQueue: 'q', workflowId: 'not-allowed', args: ['x'] }), 15_000, 'workflow.start'),
    (e) => /PERMISSION_DENIED|Request unauthorized/i.test(`${e.message} ${e.cause && e.cause.message}`) || assert.fail(e),
  );
  await logShows(tgExt, logSince, `/${WS}/StartWorkflowExecution: status 7: denied: needs write on namespace team-a, holds worker`);
  assert.equal(fe.calls.slice(since).some((c) => c.method === 'StartWorkflowExecution'), false);
});
