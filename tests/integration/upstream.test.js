'use strict';
// Many frontends: least-outstanding-streams balancing over three, a frontend killed among
// three while calls run (only its calls in flight fail), ejection on failing health checks
// (NOT_SERVING, no answer) and return, fail-open when all fail, and name re-resolution
// (localhost; and a name whose address changes, through a test DNS server).
//
// The upstream.* keys these tests need (health_check, dns_refresh_interval, resolv_conf)
// are added to the harness's configuration by startGate() below.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const dgram = require('node:dgram');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const http2 = require('node:http2');
const h = require('./lib/harness');
const { startEcho } = require('./lib/echo');
const { startFrontend } = require('../frontend/frontend.js');

const PATH = `/${h.WS}/DescribeNamespace`;
const T = 60_000 * h.SLOW;

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

// ---------- tgate with extra upstream keys ----------

const gates = new Set();
process.on('exit', () => {
  for (const g of gates) g.proc.kill('SIGKILL');
});

/**
 * Starts tgate like h.startTgate(opts), with `upstreamYaml` (lines indented by two spaces)
 * added to its upstream section. Waits for /health/ready unless waitReady is false.
 */
async function startGate(opts, upstreamYaml = '', { waitReady = true } = {}) {
  const port = await h.freePort();
  const adminPort = await h.freePort();
  const yaml = h.tgateConfig({ ...opts, port, adminPort }).replace(/^( {2}connect_timeout: .*\n)/m, `$1${upstreamYaml}`);
  const configFile = path.join(h.tempDir('tgate-up-'), 'tgate.yaml');
  fs.writeFileSync(configFile, yaml);
  const proc = spawn(h.TGATE_BIN, ['-c', configFile], { cwd: h.ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  proc.stdout.on('data', (d) => chunks.push(d));
  proc.stderr.on('data', (d) => chunks.push(d));
  let exit = null;
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => resolve((exit = { code, signal }))));
  const g = {
    port,
    adminPort,
    proc,
    log: () => Buffer.concat(chunks).toString('utf8'),
    async stop() {
      if (!exit) proc.kill('SIGTERM');
      const e = await h.within(exited, 10_000 * h.SLOW, 'tgate exit').catch(async (err) => {
        proc.kill('SIGKILL');
        await exited;
        throw err;
      });
      gates.delete(g);
      h.checkExit(g, e);
    },
  };
  gates.add(g);
  cleanups.push(() => g.stop());
  await h.waitFor(async () => {
    if (exit) throw new Error(`tgate exited during start-up:\n${g.log()}`);
    return (await h.canConnect(port, 200)) && (await h.canConnect(adminPort, 200));
  }, 5000 * h.SLOW, 'tgate to listen');
  if (waitReady) {
    await h.waitFor(async () => (await ready(g)) === 200, 5000 * h.SLOW, `tgate ready:\n${g.log()}`);
  }
  return g;
}

async function ready(g) {
  return (await h.httpGet(g.adminPort, '/health/ready').catch(() => ({}))).status;
}

/** /metrics as a Map from 'name{labels}' to the number. */
async function metrics(g) {
  const r = await h.httpGet(g.adminPort, '/metrics');
  const m = new Map();
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

const up = (name, address, extra = '') => `${name}{address="${address}"${extra}}`;

async function metric(g, name, address, extra) {
  return (await metrics(g)).get(up(name, address, extra));
}

/** Waits until metric name{address} satisfies pred. */
function waitMetric(g, name, address, pred, what, extra) {
  return h.waitFor(
    async () => pred(await metric(g, name, address, extra)),
    10_000 * h.SLOW,
    `${name}{${address}} ${what}`,
    50,
  );
}

/** upstream.health_check; without a timeout, the timeout is the interval (at most 2 s). */
const HC_YAML = (interval, timeout) =>
  `  health_check:\n    interval: ${interval}\n${timeout ? `    timeout: ${timeout}\n` : ''}`;

function echoCall(session, id, headers = {}) {
  return h.unaryCall(session, PATH, Buffer.from(`call ${id}`), { 'x-id': String(id), ...headers });
}

const idsOf = (echo) => new Set(echo.streams.map((s) => s.headers['x-id']));

// ---------- balancing ----------

test('new calls go to the frontend with the fewest streams in flight', { timeout: T }, async () => {
  const echos = [await startEcho(), await startEcho(), await startEcho()];
  for (const e of echos) cleanups.push(() => e.close());
  const addrs = echos.map((e) => `127.0.0.1:${e.port}`);
  // One worker (one pool); checks once at start, then not for an hour, so that no check
  // stream tips the balance.
  const g = await startGate({ upstream: echos.map((e) => e.port), workers: 1 }, HC_YAML('1h'));
  for (const a of addrs) await waitMetric(g, 'tgate_upstream_healthy', a, (v) => v === 1, 'is 1');
  const s = await h.h2connect(g.port);
  cleanups.push(() => h.closeSessions([s]));

  // Nothing in flight: ties, broken round-robin.
  for (let i = 0; i < 30; i++) {
    const r = await echoCall(s, `rr-${i}`);
    assert.equal(r.status, 0);
  }
  for (const e of echos) assert.equal(e.streams.length, 10, 'round-robin over three idle frontends');

  // Six held calls spread two per frontend.
  const held = new Map();
  const holds = [];
  for (let i = 0; i < 6; i++) {
    holds.push(
      h.request(s, h.grpcHeaders(PATH, { 'x-id': `hold-${i}`, 'x-mode': 'hold' }), h.grpcFrame(Buffer.from('h')), {
        timeoutMs: 30_000 * h.SLOW,
        onStream: (req) => held.set(`hold-${i}`, req),
      }),
    );
  }
  const heldOn = (e) => e.streams.filter((st) => st.headers['x-mode'] === 'hold').length;
  await h.waitFor(() => echos.every((e) => heldOn(e) === 2), 5000 * h.SLOW, 'two held calls on each frontend');

  // The first frontend's held calls end: it has the fewest streams, every new call goes there.
  const [a, b, c] = echos;
  for (const st of a.streams.filter((x) => x.headers['x-mode'] === 'hold')) held.get(st.headers['x-id']).close(http2.constants.NGHTTP2_CANCEL);
  await h.waitFor(() => a.streams.every((x) => x.closed), 5000 * h.SLOW, 'held calls on the first frontend closed');
  await waitMetric(g, 'tgate_upstream_streams_outstanding', addrs[0], (v) => v === 0, 'is 0');
  assert.equal(await metric(g, 'tgate_upstream_streams_outstanding', addrs[1]), 2);
  const before = [a, b, c].map((e) => e.streams.length);
  for (let i = 0; i < 9; i++) {
    const r = await echoCall(s, `least-${i}`);
    assert.equal(r.status, 0);
  }
  assert.deepEqual(
    [a, b, c].map((e, i) => e.streams.length - before[i]),
    [9, 0, 0],
    'every new call went to the frontend without held calls',
  );
  for (const req of held.values()) req.close(http2.constants.NGHTTP2_CANCEL);
  await Promise.all(holds);
  await g.stop();
});

// ---------- a frontend killed among three ----------

test('a frontend killed among three: only the calls on it fail; calls continue on the others', { timeout: T }, async (t) => {
  const echos = [await startEcho(), await startEcho(), await startEcho()];
  cleanups.push(() => Promise.all(echos.map((e) => e.close())));
  const addrs = echos.map((e) => `127.0.0.1:${e.port}`);
  const workers = 2;
  const g = await startGate({ upstream: echos.map((e) => e.port), workers }, HC_YAML('500ms'));
  for (const a of addrs) await waitMetric(g, 'tgate_upstream_healthy', a, (v) => v === 1, 'is 1');
  const sessions = [];
  for (let i = 0; i < 4; i++) sessions.push(await h.h2connect(g.port));
  cleanups.push(() => h.closeSessions(sessions));

  const victim = echos[1];
  const calls = [];
  let killTime = null;
  let detectTime = null;
  let stopAt = Infinity;
  let n = 0;
  // Four loops of calls that each stay 30 ms on the frontend, so some are in flight on the
  // victim when it dies.
  const loops = sessions.map(async (s) => {
    while (Date.now() < stopAt) {
      const id = `k-${n++}`;
      const rec = { id, start: Date.now() };
      calls.push(rec);
      const r = await echoCall(s, id, { 'x-mode': 'delay', 'x-delay-ms': '30' });
      rec.end = Date.now();
      rec.status = r.status;
      rec.message = r.message;
    }
  });
  await h.sleep(500);
  // And long calls in flight at the kill, at least one on each frontend. Balancing picks the
  // frontend with the fewest streams in flight per worker, and the short calls above move
  // those counts, so a fixed number of long calls need not reach all three: one is added at a
  // time (on the next session), each once the last has arrived, until all three hold one.
  const long = [];
  const onEvery = () => echos.every((e) => long.some((l) => idsOf(e).has(l.id)));
  const seen = (id) => echos.some((e) => idsOf(e).has(id));
  for (let i = 0; i < 30 && !onEvery(); i++) {
    const id = `long-${i}`;
    long.push({ id, result: echoCall(sessions[i % 4], id, { 'x-mode': 'delay', 'x-delay-ms': String(3000 * h.SLOW) }) });
    await h.waitFor(() => seen(id), 5000 * h.SLOW, `${id} to reach a frontend`);
  }
  assert.ok(onEvery(), `long calls on every frontend: ${echos.map((e) => long.filter((l) => idsOf(e).has(l.id)).length)}`);
  killTime = Date.now();
  await victim.kill(); // its sockets are destroyed (no GOAWAY) and it stops listening
  const idsAtKill = idsOf(victim);
  await waitMetric(g, 'tgate_upstream_ejections_total', addrs[1], (v) => v >= workers, `>= ${workers} (every worker)`);
  detectTime = Date.now();
  stopAt = detectTime + 1500;
  await Promise.all(loops);

  for (const l of long) {
    const r = await l.result;
    if (idsAtKill.has(l.id)) assert.equal(r.status, 14, `${l.id} on the killed frontend: UNAVAILABLE`);
    else assert.equal(r.status, 0, `${l.id} on another frontend finished`);
  }
  const failed = calls.filter((c) => c.status !== 0);
  const after = calls.filter((c) => c.start >= detectTime);
  assert.ok(calls.filter((c) => c.start < killTime).length > 20, 'calls ran before the kill');
  assert.ok(after.length > 20, `calls ran after the kill was noticed (${after.length})`);
  for (const c of failed) {
    assert.equal(c.status, 14, `failed call ${c.id}: status ${c.status} ${c.message}`);
    assert.ok(c.start < detectTime, `call ${c.id} started after the kill was noticed and failed`);
    // It was on the killed frontend: the others never saw it (the victim may not have
    // either, when its sockets went before the request arrived).
    assert.ok(!idsOf(echos[0]).has(c.id) && !idsOf(echos[2]).has(c.id), `failed call ${c.id} was on a live frontend`);
  }
  assert.deepEqual(after.filter((c) => c.status !== 0), [], 'no failure after the kill was noticed');
  const afterIds = new Set(after.map((c) => c.id));
  const served = [echos[0], echos[2]].map((e) => [...idsOf(e)].filter((id) => afterIds.has(id)).length);
  assert.equal(served[0] + served[1], after.length, 'the calls after the kill went to the two others');
  assert.ok(served[0] > 0 && served[1] > 0, `both others served calls: ${served}`);
  t.diagnostic(`${long.length} long calls; ${calls.length} calls; ${failed.length} failed (in flight on the killed frontend); ` +
    `${after.length} after the kill was noticed, ${detectTime - killTime} ms after it`);
  assert.equal(await ready(g), 200);
  assert.match(g.log(), new RegExp(`upstream 127\\.0\\.0\\.1:${victim.port}: ejected by worker \\d \\(connection lost\\)`));
  await g.stop();
});

// ---------- health checks ----------

test('a frontend answering NOT_SERVING is ejected and comes back when it serves again; all failing: fail-open', { timeout: T }, async () => {
  const fes = [];
  for (let i = 0; i < 3; i++) {
    const fe = await startFrontend({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => fe.close());
    fes.push(fe);
  }
  const addrs = fes.map((fe) => `127.0.0.1:${fe.port}`);
  const workers = 2;
  const g = await startGate({ upstream: fes.map((fe) => fe.port), workers }, HC_YAML('200ms'));
  for (const a of addrs) await waitMetric(g, 'tgate_upstream_healthy', a, (v) => v === 1, 'is 1');
  const sessions = [await h.h2connect(g.port), await h.h2connect(g.port)];
  cleanups.push(() => h.closeSessions(sessions));
  const calls = (fe) => fe.calls.filter((c) => c.service === h.WS).length;
  const run = async (count) => {
    for (let i = 0; i < count; i++) {
      const r = await h.unaryCall(sessions[i % 2], PATH, h.describeNs('default'));
      assert.equal(r.status, 0, JSON.stringify(r.trailers || r.headers));
    }
  };
  // The check asks about Temporal's WorkflowService (the default service).
  const check = fes[0].calls.find((c) => c.method === 'Check');
  assert.ok(check, 'the frontend was asked');
  assert.equal(check.request.service, h.WS);

  // The WorkflowService of the second frontend stops serving: it is ejected.
  fes[1].setServing(false, h.WS);
  await waitMetric(g, 'tgate_upstream_ejections_total', addrs[1], (v) => v >= workers, 'in every worker');
  await waitMetric(g, 'tgate_upstream_healthy', addrs[1], (v) => v === 0, 'is 0');
  assert.ok((await metric(g, 'tgate_upstream_health_checks_total', addrs[1], ',result="fail"')) >= 2 * workers);
  for (const fe of fes) fe.reset();
  await run(30);
  assert.equal(calls(fes[1]), 0, 'no call reached the ejected frontend');
  assert.equal(calls(fes[0]) + calls(fes[2]), 30);
  assert.equal(await ready(g), 200);
  assert.match(g.log(), /ejected by worker \d \(status NOT_SERVING \(2\)\)/);

  // It serves again: after its backoff it passes a check and takes calls.
  fes[1].setServing(true);
  await waitMetric(g, 'tgate_upstream_healthy', addrs[1], (v) => v === 1, 'is 1 again');
  for (const fe of fes) fe.reset();
  await run(30);
  assert.ok(calls(fes[1]) >= 5, `the frontend takes calls again (${calls(fes[1])})`);

  // Every frontend fails its checks: calls still go through (fail-open); not ready.
  for (const fe of fes) fe.setServing(false);
  for (const a of addrs) await waitMetric(g, 'tgate_upstream_healthy', a, (v) => v === 0, 'is 0');
  await h.waitFor(async () => (await ready(g)) === 503, 5000 * h.SLOW, '/health/ready 503');
  for (const fe of fes) fe.reset();
  await run(12);
  assert.ok(fes.every((fe) => calls(fe) > 0), 'fail-open: calls go to every frontend');
  assert.match(g.log(), /no upstream frontend passes its health check; calls go to every connected one \(fail-open\)/);
  for (const fe of fes) fe.setServing(true);
  await h.waitFor(async () => (await ready(g)) === 200, 5000 * h.SLOW, '/health/ready 200 again');
  await g.stop();
});

test('frontends failing their checks from the start: calls flow fail-open; not ready', { timeout: T }, async () => {
  const echos = [await startEcho(), await startEcho()];
  for (const e of echos) {
    cleanups.push(() => e.close());
    e.setServing(false);
  }
  const g = await startGate({ upstream: echos.map((e) => e.port), workers: 1 }, HC_YAML('200ms'), { waitReady: false });
  await h.waitFor(() => /calls go to every connected one \(fail-open\)/.test(g.log()), 5000 * h.SLOW, 'the fail-open warning');
  assert.equal(await ready(g), 503);
  const s = await h.h2connect(g.port);
  cleanups.push(() => h.closeSessions([s]));
  for (let i = 0; i < 6; i++) assert.equal((await echoCall(s, `f-${i}`)).status, 0);
  assert.ok(echos.every((e) => e.streams.length > 0), 'both frontends take calls');
  echos[1].setServing(true);
  await h.waitFor(async () => (await ready(g)) === 200, 5000 * h.SLOW, 'ready once one frontend passes');
  for (const e of echos) e.reset();
  for (let i = 0; i < 6; i++) assert.equal((await echoCall(s, `g-${i}`)).status, 0);
  assert.deepEqual(echos.map((e) => e.streams.length), [0, 6], 'then only the healthy one');
  assert.match(g.log(), /an upstream frontend is healthy again; calls go to healthy frontends only/);
  await g.stop();
});

test('health checks over TLS (mTLS frontends)', { timeout: T }, async () => {
  const c = h.certs();
  const fes = [];
  for (let i = 0; i < 2; i++) {
    const fe = await startFrontend({
      host: '127.0.0.1',
      port: 0,
      tls: { cert: c.file('server.pem'), key: c.file('server.key'), ca: c.file('ca.pem'), requireClientCert: true },
    });
    cleanups.push(() => fe.close());
    fes.push(fe);
  }
  const addrs = fes.map((fe) => `127.0.0.1:${fe.port}`);
  const g = await startGate({ upstream: fes.map((fe) => fe.port), upstreamTls: true, workers: 1 }, HC_YAML('200ms'));
  for (const a of addrs) await waitMetric(g, 'tgate_upstream_healthy', a, (v) => v === 1, 'is 1');
  const check = fes[1].calls.find((x) => x.method === 'Check');
  assert.equal(check.authority, addrs[1], ':authority of the check is the address');
  fes[0].setServing(false);
  await waitMetric(g, 'tgate_upstream_healthy', addrs[0], (v) => v === 0, 'is 0');
  const s = await h.h2connect(g.port);
  cleanups.push(() => h.closeSessions([s]));
  for (const fe of fes) fe.reset();
  for (let i = 0; i < 6; i++) assert.equal((await h.unaryCall(s, PATH, h.describeNs('default'))).status, 0);
  assert.equal(fes[0].calls.filter((x) => x.service === h.WS).length, 0);
  assert.equal(fes[1].calls.filter((x) => x.service === h.WS).length, 6);
  await g.stop();
});

test('a frontend that does not answer its health check in time is ejected', { timeout: T }, async () => {
  const echos = [await startEcho(), await startEcho()];
  for (const e of echos) cleanups.push(() => e.close());
  const addrs = echos.map((e) => `127.0.0.1:${e.port}`);
  const g = await startGate(
    { upstream: echos.map((e) => e.port), workers: 1 },
    `${HC_YAML('300ms', '100ms')}    unhealthy_threshold: 1\n    healthy_threshold: 2\n`,
  );
  for (const a of addrs) await waitMetric(g, 'tgate_upstream_healthy', a, (v) => v === 1, 'is 1');
  echos[0].setServing('hang');
  await waitMetric(g, 'tgate_upstream_healthy', addrs[0], (v) => v === 0, 'is 0');
  assert.match(g.log(), /ejected by worker 0 \(timed out\)/);
  const s = await h.h2connect(g.port);
  cleanups.push(() => h.closeSessions([s]));
  echos[0].reset();
  for (let i = 0; i < 10; i++) assert.equal((await echoCall(s, `t-${i}`)).status, 0);
  assert.equal(echos[0].streams.length, 0, 'no call reached the frontend that does not answer');
  // Its check streams were reset, not left open: the connection has no stream in flight.
  await waitMetric(g, 'tgate_upstream_streams_outstanding', addrs[0], (v) => v <= 1, '<= 1');
  const passesBefore = await metric(g, 'tgate_upstream_health_checks_total', addrs[0], ',result="ok"');
  echos[0].setServing(true);
  await waitMetric(g, 'tgate_upstream_healthy', addrs[0], (v) => v === 1, 'is 1 again');
  // healthy_threshold 2: two passing checks in a row brought it back.
  assert.ok((await metric(g, 'tgate_upstream_health_checks_total', addrs[0], ',result="ok"')) >= passesBefore + 2);
  await g.stop();
});

// ---------- names ----------

test('a host name is re-resolved periodically; an unchanged answer keeps the connections', { timeout: T }, async (t) => {
  const resolves = await new Promise((resolve) =>
    require('node:dns').lookup('localhost', { family: 4 }, (err, a) => resolve(!err && a === '127.0.0.1')),
  );
  if (!resolves) {
    t.skip('localhost does not resolve to 127.0.0.1 here');
    return;
  }
  const named = await startEcho();
  const literal = await startEcho();
  cleanups.push(() => named.close());
  cleanups.push(() => literal.close());
  const workers = 2;
  const g = await startGate(
    { upstream: [`localhost:${named.port}`, literal.port], workers },
    '  dns_refresh_interval: 100ms\n',
  );
  const name = `localhost:${named.port}`;
  await waitMetric(g, 'tgate_upstream_healthy', name, (v) => v === 1, 'is 1');
  await waitMetric(g, 'tgate_upstream_dns_refreshes_total', name, (v) => v >= 10 * workers, 'counts lookups', ',result="ok"');
  assert.equal(await metric(g, 'tgate_upstream_dns_refreshes_total', `127.0.0.1:${literal.port}`, ',result="ok"'), 0,
    'an IP literal is never resolved');
  const s = await h.h2connect(g.port);
  cleanups.push(() => h.closeSessions([s]));
  for (let i = 0; i < 20; i++) assert.equal((await echoCall(s, `n-${i}`)).status, 0);
  assert.ok(named.streams.length >= 5, 'the named frontend takes calls');
  assert.equal(named.sessionCount(), workers, 'one connection per worker, kept across lookups');
  await g.stop();
});

/** A DNS server on 127.0.0.1 answering A queries from `answers` (name -> IPv4); others:
 * NXDOMAIN, or no data for a known name's other types. */
function startDns(answers) {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    if (msg.length < 17) return;
    let off = 12;
    const labels = [];
    while (off < msg.length && msg[off] !== 0) {
      labels.push(msg.subarray(off + 1, off + 1 + msg[off]).toString('latin1'));
      off += msg[off] + 1;
    }
    if (off + 5 > msg.length) return;
    const qtype = msg.readUInt16BE(off + 1);
    const question = msg.subarray(12, off + 5); // echoed as asked (evdns randomizes the case)
    const ip = answers.get(labels.join('.').toLowerCase());
    const header = Buffer.alloc(12);
    header.writeUInt16BE(msg.readUInt16BE(0), 0);
    header.writeUInt16BE(0x8180 | (ip === undefined ? 3 : 0), 2);
    header.writeUInt16BE(1, 4);
    const parts = [header, question];
    if (ip !== undefined && qtype === 1) {
      header.writeUInt16BE(1, 6);
      const rr = Buffer.alloc(16);
      rr.writeUInt16BE(0xc00c, 0); // the name in the question
      rr.writeUInt16BE(1, 2); // A
      rr.writeUInt16BE(1, 4); // IN
      rr.writeUInt32BE(1, 6); // TTL
      rr.writeUInt16BE(4, 10);
      ip.split('.').forEach((b, i) => (rr[12 + i] = Number(b)));
      parts.push(rr);
    }
    sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  return new Promise((resolve) =>
    sock.bind(0, '127.0.0.1', () => resolve({ port: sock.address().port, close: () => new Promise((r) => sock.close(r)) })),
  );
}

/** Whether a TCP server can listen on ip (other loopback addresses than 127.0.0.1). */
function canListen(ip) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(0, ip, () => s.close(() => resolve(true)));
  });
}

test('a name whose address changes: new calls go to the new address, the old connection drains', { timeout: T }, async (t) => {
  // Two frontends on one port need two addresses: 127.0.0.2 and 127.0.0.3 (loopback too).
  if (!(await canListen('127.0.0.2')) || !(await canListen('127.0.0.3'))) {
    t.skip('cannot listen on 127.0.0.2 and 127.0.0.3 here');
    return;
  }
  let oldFe;
  let newFe;
  for (let i = 0; i < 5 && !newFe; i++) {
    const port = await h.freePort();
    oldFe = await startEcho({ host: '127.0.0.2', port }).catch(() => null);
    newFe = oldFe && (await startEcho({ host: '127.0.0.3', port }).catch(() => null));
    if (oldFe && !newFe) await oldFe.close();
  }
  assert.ok(newFe, 'two frontends on one port');
  cleanups.push(() => oldFe.close());
  cleanups.push(() => newFe.close());
  const answers = new Map([['frontend.tgate.test', '127.0.0.2']]);
  const dns = await startDns(answers);
  cleanups.push(() => dns.close());
  const resolvConf = path.join(h.tempDir('tgate-dns-'), 'resolv.conf');
  fs.writeFileSync(resolvConf, `nameserver 127.0.0.1:${dns.port}\n`);
  const name = `frontend.tgate.test:${oldFe.port}`;
  const g = await startGate(
    { upstream: [name], workers: 1 },
    `  dns_refresh_interval: 200ms\n  resolv_conf: ${JSON.stringify(resolvConf)}\n`,
  );
  const s = await h.h2connect(g.port);
  cleanups.push(() => h.closeSessions([s]));
  for (let i = 0; i < 5; i++) assert.equal((await echoCall(s, `old-${i}`)).status, 0);
  assert.equal(oldFe.streams.length, 5);
  // A call that stays on the old address while the name moves.
  const slow = echoCall(s, 'slow', { 'x-mode': 'delay', 'x-delay-ms': String(1500 * h.SLOW) });
  await oldFe.waitForStream((st) => st.headers['x-id'] === 'slow');

  answers.set('frontend.tgate.test', '127.0.0.3');
  await h.waitFor(() => newFe.sessionCount() > 0, 5000 * h.SLOW, 'a connection to the new address');
  for (let i = 0; i < 10; i++) assert.equal((await echoCall(s, `new-${i}`)).status, 0);
  assert.equal(newFe.streams.length, 10, 'new calls go to the new address');
  assert.equal(oldFe.streams.length, 6, 'none to the old one');
  const r = await slow;
  assert.equal(r.status, 0, 'the call on the draining connection finished');
  await h.waitFor(() => oldFe.sessionCount() === 0, 5000 * h.SLOW, 'the drained connection closed');
  assert.match(g.log(), /resolves to 127\.0\.0\.3 \(was 127\.0\.0\.2\)/);
  await g.stop();
});

// ---------- recovery after a long outage ----------

test('after a long outage, a waiting call finds the frontend back within about a second, not at the end of the backoff', { timeout: T }, async () => {
  const port = await h.freePort();
  // Nothing listens: after 8 s the connection attempts are ~6.4 s apart (100 ms doubling).
  const g = await startGate({ upstream: port, workers: 1 }, '', { waitReady: false });
  const s = await h.h2connect(g.port);
  cleanups.push(() => h.closeSessions([s]));
  await h.sleep(8000);
  const r0 = await echoCall(s, 'down');
  assert.equal(r0.status, 14, 'no frontend yet: UNAVAILABLE');
  const echo = await startEcho({ port });
  cleanups.push(() => echo.close());
  const back = Date.now();
  let ok = null;
  for (let i = 0; i < 40 && !ok; i++) {
    const r = await echoCall(s, `after-${i}`);
    if (r.status === 0) ok = Date.now() - back;
    else await h.sleep(100);
  }
  assert.ok(ok !== null, 'calls never got through after the frontend came back');
  assert.ok(ok < 2500 * h.SLOW, `the first call got through ${ok} ms after the frontend came back`);
});
