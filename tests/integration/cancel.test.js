'use strict';
// A client that cancels a call in the same packet as its HEADERS (or whose call tgate stops
// before the upstream HEADERS left) must not make tgate reset an upstream stream the
// frontend never saw: that is a connection error for the frontend (GOAWAY PROTOCOL_ERROR),
// which would fail every other call on the shared upstream connection.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const http2 = require('node:http2');
const { startEcho } = require('./lib/echo.js');
const h = require('./lib/harness.js');

const T = 60_000 * h.SLOW;
const P = `/${h.WS}/DescribeNamespace`;
let echo, tg, s;

before(async () => {
  echo = await startEcho();
  tg = await h.startTgate({ upstream: echo.port, workers: 1, extraYaml: 'limits:\n  max_message_size: 2048\n' });
  s = await h.h2connect(tg.port);
});

after(async () => {
  if (s) await h.closeSessions([s]);
  await h.stopAll([tg]);
  if (echo) await echo.close();
});

test('HEADERS and RST_STREAM in one packet, and calls stopped at once, leave the other calls on the upstream connection alone', { timeout: T }, async () => {
  // A call in flight on the (single) upstream connection.
  const held = h.unaryCall(s, P, Buffer.from('x'), { 'x-mode': 'headers-hold', 'x-marker': 'victim' },
    { timeoutMs: 20_000 * h.SLOW });
  await h.waitFor(() => echo.streams.some((st) => st.headers['x-marker'] === 'victim'), 5000 * h.SLOW, 'the held call upstream');
  for (let i = 0; i < 50; i++) {
    const req = s.request(h.grpcHeaders(P, { 'x-marker': `cancel-${i}` }), { endStream: true });
    req.on('error', () => {});
    req.close(http2.constants.NGHTTP2_CANCEL); // same tick: one packet with HEADERS
  }
  // Calls tgate stops itself right after forwarding them (a message over the limit).
  for (let i = 0; i < 20; i++) {
    const r = await h.unaryCall(s, P, Buffer.alloc(3000, 1), { 'x-marker': `big-${i}` });
    assert.equal(r.status, 8);
  }
  const ok = await h.unaryCall(s, P, Buffer.from('y'), { 'x-marker': 'after' });
  assert.equal(ok.status, 0, 'a new call works');
  assert.equal(tg.log().includes('GOAWAY received'), false, `the upstream sent GOAWAY:\n${tg.log().slice(-2000)}`);
  const victim = echo.streams.find((st) => st.headers['x-marker'] === 'victim');
  assert.equal(victim.closed, false, 'the held call is still open upstream');
  s.destroy();
  s = null;
  const r = await held;
  assert.ok(r.rstCode != null || r.error, 'the held call ended when its client went away');
});
