'use strict';
// The upstream pool: streams spread over more connections when the frontend's
// MAX_CONCURRENT_STREAMS is reached, failover between frontend addresses, recovery after
// every frontend was away, and reconnect backoff while none answers.
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const http2 = require('node:http2');
const net = require('node:net');
const h = require('./lib/harness');

const PATH = `/${h.WS}/DescribeNamespace`;

/** An h2c upstream that holds each call holdMs, then answers it; it records, per
 * session, the highest number of streams it saw open at once. Health checks (tgate
 * sends them when there are two or more addresses) are answered SERVING at once and
 * not counted. */
function startLimitedUpstream({ maxConcurrentStreams, holdMs }) {
  const server = http2.createServer({ settings: { maxConcurrentStreams } });
  const stats = { sessions: [], calls: 0 };
  const sockets = new Set();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('session', (session) => {
    const st = { open: 0, maxOpen: 0 };
    stats.sessions.push(st);
    session.on('stream', (stream, headers) => {
      if (headers[':path'] === '/grpc.health.v1.Health/Check') {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(h.grpcFrame(Buffer.from([0x08, 0x01]))); // HealthCheckResponse{status: SERVING}
        return;
      }
      st.open++;
      st.maxOpen = Math.max(st.maxOpen, st.open);
      stats.calls++;
      stream.on('close', () => st.open--);
      stream.resume();
      stream.on('end', () => {
        setTimeout(() => {
          if (stream.destroyed) return;
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          stream.end(h.grpcFrame(Buffer.alloc(0)));
        }, holdMs);
      });
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: server.address().port,
        stats,
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }),
    );
  });
}

const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

test('streams spread over new connections when the frontend allows 4 at a time', { timeout: 30_000 }, async () => {
  const up = await startLimitedUpstream({ maxConcurrentStreams: 4, holdMs: 300 });
  cleanups.push(up.close);
  const tg = await h.startTgate({ upstream: up.port, workers: 1, maxConnections: 4 });
  cleanups.push(() => tg.stop());
  const s = await h.h2connect(tg.port);
  cleanups.push(() => h.closeSessions([s]));
  const calls = [];
  for (let i = 0; i < 24; i++) calls.push(h.unaryCall(s, PATH, h.describeNs(`ns-${i}`)));
  const results = await Promise.all(calls);
  for (const r of results) assert.equal(r.status, 0, JSON.stringify(r.trailers || r.headers));
  assert.equal(up.stats.calls, 24);
  assert.ok(up.stats.sessions.length >= 2, `expected more than one upstream connection, saw ${up.stats.sessions.length}`);
  assert.ok(up.stats.sessions.length <= 4, `max_connections 4 exceeded: ${up.stats.sessions.length}`);
  for (const st of up.stats.sessions) assert.ok(st.maxOpen <= 4, `a connection carried ${st.maxOpen} streams at once`);
});

test('when every connection is full and max_connections is reached, calls wait for a slot', { timeout: 30_000 }, async () => {
  const up = await startLimitedUpstream({ maxConcurrentStreams: 2, holdMs: 200 });
  cleanups.push(up.close);
  const tg = await h.startTgate({ upstream: up.port, workers: 1, maxConnections: 1, connectTimeout: '5s' });
  cleanups.push(() => tg.stop());
  const s = await h.h2connect(tg.port);
  cleanups.push(() => h.closeSessions([s]));
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => h.unaryCall(s, PATH, h.describeNs(`w-${i}`))));
  for (const r of results) assert.equal(r.status, 0);
  assert.equal(up.stats.sessions.length, 1);
  assert.equal(up.stats.sessions[0].maxOpen, 2);
});

test('a dead frontend address is skipped; calls go to the live one', { timeout: 30_000 }, async () => {
  const up = await startLimitedUpstream({ maxConcurrentStreams: 100, holdMs: 0 });
  cleanups.push(up.close);
  const dead = await h.freePort();
  const tg = await h.startTgate({ upstream: [dead, up.port], workers: 1 });
  cleanups.push(() => tg.stop());
  const s = await h.h2connect(tg.port);
  cleanups.push(() => h.closeSessions([s]));
  for (let i = 0; i < 20; i++) {
    const r = await h.unaryCall(s, PATH, h.describeNs(`f-${i}`));
    assert.equal(r.status, 0, `call ${i}: ${JSON.stringify(r.trailers || r.headers)}`);
  }
  assert.equal(up.stats.calls, 20);
});

test('with no frontend, reconnect attempts back off: spaced, each gap longer than the last', { timeout: 30_000 }, async (t) => {
  // A TCP server that accepts and at once closes every connection: each accept is one
  // connection attempt of tgate's.
  const accepts = [];
  const sockets = new Set();
  const server = net.createServer((sock) => {
    accepts.push(Date.now());
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => {});
    sock.destroy();
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((r) => {
    for (const s of sockets) s.destroy();
    server.close(() => r());
  }));
  const tg = await h.startTgate({ upstream: server.address().port, workers: 1, waitReady: false });
  cleanups.push(() => tg.stop());
  await h.waitFor(() => accepts.length > 0, 5000 * h.SLOW, 'the first connection attempt');
  await h.sleep(3000);
  const first = accepts[0];
  const within3s = accepts.filter((t) => t - first <= 3000);
  const gaps = within3s.slice(1).map((t, i) => t - within3s[i]);
  const msg = `attempts in 3 s: ${within3s.length}, gaps ${gaps.join(', ')} ms`;
  t.diagnostic(msg);
  assert.ok(within3s.length >= 3, `tgate keeps trying (${msg})`);
  assert.ok(within3s.length < 10, `tgate backs off (${msg})`);
  assert.ok(gaps[0] >= 50, `attempts are spaced (${msg})`);
  for (let i = 1; i < gaps.length; i++) assert.ok(gaps[i] > gaps[i - 1], `each wait is longer than the last (${msg})`);
});
