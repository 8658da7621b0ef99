'use strict';
// Idle client connections give back the pages of their HTTP/2 output buffer (tg_conn_trim,
// once a second over connections that wrote no frame in the last interval): the memory goes
// down, and every connection, a call held across the trims included, keeps answering
// byte-identically afterwards.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startEcho } = require('./lib/echo.js');
const h = require('./lib/harness.js');

const T = 60_000 * h.SLOW;
const P = `/${h.WS}/DescribeNamespace`;
const N = 200;

let echo, tg;
const sessions = [];

before(async () => {
  echo = await startEcho();
  tg = await h.startTgate({ upstream: echo.port, workers: 1 });
  for (let i = 0; i < N; i++) sessions.push(await h.h2connect(tg.port));
});

after(async () => {
  await h.closeSessions(sessions);
  await h.stopAll([tg]);
  if (echo) await echo.close();
});

async function echoCall(s, size, headers = {}) {
  const body = crypto.randomBytes(size);
  const r = await h.unaryCall(s, P, body, headers, { timeoutMs: 20_000 * h.SLOW });
  assert.equal(r.status, 0, r.message);
  assert.ok(r.data.equals(h.grpcFrame(body)), 'the echoed body is byte-identical');
}

test(`${N} idle connections give their output buffers' pages back and keep working`, { timeout: T }, async (t) => {
  await Promise.all(sessions.map((s) => echoCall(s, 2000)));
  // a call answered only after several trim sweeps, on a connection that is otherwise idle
  const held = echoCall(sessions[0], 30_000, { 'x-mode': 'delay', 'x-delay-ms': '3500' });
  await h.sleep(300);
  const busy = h.rssBytes(tg.pid);
  await h.sleep(2600); // two sweeps: the first sees the frames just written, the second trims
  const idle = h.rssBytes(tg.pid);
  t.diagnostic(`RSS with ${N} connections after their calls ${(busy / 1024).toFixed(0)} KiB, ` +
    `idle 2.6 s later ${(idle / 1024).toFixed(0)} KiB (${((busy - idle) / N / 1024).toFixed(1)} KiB per connection)`);
  if (!h.ASAN) {
    // each connection's buffer had one page (4 KiB) written; allow for noise
    assert.ok(busy - idle >= N * 2048, `RSS went from ${busy} to ${idle} bytes only`);
  }
  await held;
  // frames of every size after the trim: a big answer spans many DATA frames
  await Promise.all(sessions.map((s, i) => echoCall(s, i % 10 === 0 ? 100_000 : 500)));
  await h.sleep(2600);
  await Promise.all(sessions.map((s) => echoCall(s, 64)));
});
