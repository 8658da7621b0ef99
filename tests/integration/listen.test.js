'use strict';
// The listen address belongs to one tgate: its workers share it (SO_REUSEPORT), but a second
// tgate, or any other program, already listening there makes start-up fail with "address in
// use" instead of silently splitting connections with it.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./lib/harness.js');

const T = 30_000 * h.SLOW;
const started = [];
after(() => h.stopAll(started));

/** Runs a second tgate on port (bounded); returns its exit status and output. */
function runOn(port, upstream) {
  const dir = h.tempDir('tgate-listen-');
  const f = path.join(dir, 'tgate.yaml');
  fs.writeFileSync(f, h.tgateConfig({ port, upstream, workers: 2 }));
  const r = spawnSync(h.TGATE_BIN, ['-c', f], { cwd: h.ROOT, encoding: 'utf8', timeout: 10_000 * h.SLOW });
  assert.ifError(r.error);
  return r;
}

test('a second tgate on the same listen address is refused, the first keeps serving', { timeout: T }, async () => {
  const upstream = await h.freePort();
  const first = await h.startTgate({ upstream, workers: 2, waitReady: false });
  started.push(first);
  const r = runOn(first.port, upstream);
  assert.notEqual(r.status, 0, `the second tgate started:\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: Address already in use`));
  assert.ok(await h.canConnect(first.port), 'the first tgate stopped accepting');
  assert.equal(first.proc.exitCode, null);
});

test('a port another program listens on is refused', { timeout: T }, async () => {
  const srv = net.createServer((s) => s.destroy());
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    const r = runOn(srv.address().port, await h.freePort());
    assert.notEqual(r.status, 0, `tgate started on a taken port:\n${r.stderr}`);
    assert.match(r.stderr, /Address already in use/);
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
});

// A fleet of workers reconnecting at once (a gateway restart, a network blip) must fit in the
// accept queue: when it is full the kernel drops SYNs and handshake ACKs, and each of those
// clients waits for a retransmit (1 s, 3 s, 7 s...). With tgate stopped (SIGSTOP), only the
// kernel completes handshakes, up to the queue's length; libevent's default is 128.
test('the accept queue holds 600 connections arriving while no worker accepts; all are served after', { timeout: T }, async () => {
  const N = 600;
  const upstream = await h.freePort();
  const tg = await h.startTgate({ upstream, workers: 1, waitReady: false });
  started.push(tg);
  await h.waitFor(async () => (await h.httpGet(tg.adminPort, '/health/live').catch(() => ({}))).status === 200,
    5000 * h.SLOW, 'tgate admin');
  const accepted = async () => {
    const r = await h.httpGet(tg.adminPort, '/metrics');
    return Number(/^tgate_connections_accepted_total (\S+)$/m.exec(r.body)[1]);
  };
  const before = await accepted();
  const socks = [];
  let connected = 0;
  let closed = 0;
  process.kill(tg.pid, 'SIGSTOP');
  try {
    for (let i = 0; i < N; i++) {
      const s = net.connect({ host: '127.0.0.1', port: tg.port });
      s.on('connect', () => connected++);
      s.on('error', () => {});
      s.on('close', () => closed++);
      socks.push(s);
    }
    await h.waitFor(() => connected + closed >= N, 3000 * h.SLOW,
      `${N} handshakes completed by the kernel`).catch((e) => {
      throw new Error(`${e.message}: ${connected} connected (the accept queue is full)`);
    });
    assert.equal(connected, N, `${closed} connections closed before tgate ran`);
  } finally {
    process.kill(tg.pid, 'SIGCONT');
  }
  await h.waitFor(async () => (await accepted()) - before >= N, 10_000 * h.SLOW, `tgate to accept all ${N}`);
  assert.equal(closed, 0, 'no connection was dropped');
  for (const s of socks) s.destroy();
  assert.equal(tg.proc.exitCode, null);
});
