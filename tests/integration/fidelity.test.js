'use strict';
// What crosses tgate must come out unchanged: request metadata (binary, authorization,
// grpc-timeout, repeated), response headers, trailers and statuses (with
// grpc-status-details-bin), large messages both ways;
// and stream life: 1,000 concurrent streams, cancellation in both directions, an upstream that
// dies or is absent and comes back, flow control towards a slow reader and from a client to a
// frontend that does not read, long polls that no timer cuts.
// Clients are raw Node http2 sessions; upstreams are the dev frontend and a raw h2c echo server.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http2 = require('node:http2');
const { startFrontend } = require('../frontend/frontend.js');
const { startEcho, spawnEcho } = require('./lib/echo.js');
const h = require('./lib/harness.js');

const T = 30_000 * h.SLOW;
const { NGHTTP2_CANCEL } = http2.constants;
const DESCRIBE = `/${h.WS}/DescribeNamespace`;
const POLL = `/${h.WS}/PollWorkflowTaskQueue`;
const MiB = 1024 * 1024;
const nsName = (res) => h.decodeResponse('workflowservice.v1.DescribeNamespaceResponse', res.data).namespaceInfo.name;
const pctDecode = (s) => decodeURIComponent(s);
/** Non-pseudo header pairs of a rawHeaders list, in order. */
const regularPairs = (raw) => {
  const out = [];
  for (let i = 0; i < raw.length; i += 2) if (!raw[i].startsWith(':')) out.push([raw[i], raw[i + 1]]);
  return out;
};
/** Request metadata sent by the fidelity tests: binary, authorization, timeout, repeated, odd bytes. */
function testMetadata() {
  const bin = crypto.randomBytes(61);
  bin[0] = 0;
  bin[1] = 0xff;
  return {
    bin,
    headers: {
      'x-bin-bin': bin.toString('base64'),
      authorization: 'Bearer x',
      'grpc-timeout': '30000m',
      'x-custom': 'spaces, commas; and "quotes" ~!@#$%^&*()',
      'x-multi': ['first', 'second'],
      'user-agent': 'tgate-fidelity/1.0',
    },
  };
}

describe('tgate relays gRPC faithfully (h2c)', () => {
  let fe;
  let echo;
  let tgFe;
  let tgEcho;
  let sFe;
  let sEcho;
  let sDirect;
  const extra = []; // tgates and sessions made by single tests, closed at the end
  const sessions = () => [sFe, sEcho, sDirect, ...extra.filter((x) => x.request)];

  before(async () => {
    fe = await startFrontend({ host: '127.0.0.1', port: 0, longPollMs: 60_000 });
    echo = await startEcho();
    tgFe = await h.startTgate({ upstream: fe.port });
    tgEcho = await h.startTgate({ upstream: echo.port });
    sFe = await h.h2connect(tgFe.port);
    sEcho = await h.h2connect(tgEcho.port);
    sDirect = await h.h2connect(fe.port);
  });

  after(async () => {
    await h.closeSessions(sessions());
    try {
      await h.stopAll([tgFe, tgEcho, ...extra.filter((x) => x.stop)]);
    } finally {
      if (fe) await fe.close();
      if (echo) await echo.close();
    }
  });

  test('request metadata arrives unchanged (binary, authorization, grpc-timeout, repeated)', { timeout: T }, async () => {
    const { bin, headers } = testMetadata();
    // At the frontend, as grpc-js parses it.
    const t0 = Date.now();
    const r = await h.unaryCall(sFe, DESCRIBE, h.describeNs('fid-md'), headers);
    assert.equal(r.status, 0);
    const rec = await fe.waitForCall((c) => c.namespace === 'fid-md', 2000);
    assert.deepEqual(rec.metadata['x-bin-bin'], bin);
    assert.equal(rec.metadata.authorization, 'Bearer x');
    assert.equal(rec.metadata['x-custom'], headers['x-custom']);
    assert.deepEqual(rec.metadataAll['x-multi'], ['first, second']); // Node's server joins repeated fields
    assert.ok(rec.deadline && Math.abs(rec.deadline - (t0 + 30_000)) < 2000, `deadline ${rec.deadline - t0} ms`);

    // At a raw HTTP/2 upstream: the exact header fields, in order, and the pseudo-headers.
    const id = 'fid-raw';
    await h.unaryCall(sEcho, '/test.Fidelity/Raw', Buffer.from('abc'), { ...headers, 'x-id': id });
    const er = await echo.waitForStream((s) => s.headers['x-id'] === id);
    const sentPairs = [];
    for (const [k, v] of Object.entries({ 'content-type': 'application/grpc', te: 'trailers', ...headers, 'x-id': id })) {
      for (const one of [].concat(v)) sentPairs.push([k, one]);
    }
    assert.deepEqual(regularPairs(er.rawHeaders), sentPairs);
    assert.equal(er.headers[':method'], 'POST');
    assert.equal(er.headers[':path'], '/test.Fidelity/Raw');
    assert.equal(er.headers[':authority'], `127.0.0.1:${tgEcho.port}`);
    assert.deepEqual(er.body, h.grpcFrame(Buffer.from('abc')));
  });

  test('response headers, trailers and statuses come back as the frontend sent them', { timeout: T }, async () => {
    const trailerBin = crypto.randomBytes(33);
    const echoBin = crypto.randomBytes(17);
    // The rich error status (google.rpc.Status) is opaque bytes to tgate; 50 bytes end the
    // base64 text with padding, which must cross unchanged too.
    const details = crypto.randomBytes(50);
    details[0] = 0;
    details[1] = 0xff;
    const cases = [
      { name: 'success with echoed metadata and a binary trailer', hdrs: {}, ok: true },
      { name: 'error after headers', hdrs: { 'x-test-fail': '5:not found %' } },
      { name: 'error, trailers-only', hdrs: { 'x-test-fail': 'NOT_FOUND:not found % 100' }, noEcho: true },
      { name: 'error without message', hdrs: { 'x-test-fail': '14:' }, noEcho: true },
    ];
    for (const c of cases) {
      const hdrs = { 'x-test-trailer-bin': trailerBin.toString('base64'), ...c.hdrs };
      if (!c.ok) hdrs['x-test-status-details-bin'] = details.toString('base64');
      if (!c.noEcho) Object.assign(hdrs, { 'x-echo-one': 'value 1', 'x-echo-blob-bin': echoBin.toString('base64') });
      const direct = await h.unaryCall(sDirect, DESCRIBE, h.describeNs('fid-resp'), hdrs);
      const via = await h.unaryCall(sFe, DESCRIBE, h.describeNs('fid-resp'), hdrs);
      const strip = (x) => {
        if (!x) return x;
        const o = { ...x };
        delete o.date;
        return o;
      };
      assert.deepEqual(strip(via.headers), strip(direct.headers), `${c.name}: response headers`);
      assert.deepEqual(via.trailers, direct.trailers, `${c.name}: trailers`);
      assert.equal(via.trailersOnly, direct.trailersOnly, `${c.name}: trailers-only or not`);
      assert.deepEqual(via.data, direct.data, `${c.name}: body`);
      assert.equal(via.rstCode, 0);
      const tr = via.trailers || via.headers;
      assert.deepEqual(Buffer.from(tr['x-echo-trailer-bin'], 'base64'), trailerBin, `${c.name}: binary trailer`);
      if (!c.ok) {
        const direct64 = (direct.trailers || direct.headers)['grpc-status-details-bin'];
        assert.ok(direct64, `${c.name}: the frontend sent grpc-status-details-bin`);
        assert.deepEqual(Buffer.from(direct64, 'base64'), details);
        assert.equal(tr['grpc-status-details-bin'], direct64, `${c.name}: grpc-status-details-bin byte-identical through tgate`);
      }
      if (!c.noEcho) {
        assert.equal(via.headers['x-echo-one'], 'value 1');
        assert.deepEqual(Buffer.from(via.headers['x-echo-blob-bin'], 'base64'), echoBin);
      }
    }
    // The statuses themselves.
    const nf = await h.unaryCall(sFe, DESCRIBE, h.describeNs('x'), { 'x-test-fail': '5:not found %' });
    assert.equal(nf.status, 5);
    assert.equal(pctDecode(nf.message), 'not found %');
    const nf2 = await h.unaryCall(sFe, DESCRIBE, h.describeNs('x'), { 'x-test-fail': 'NOT_FOUND:not found % 100' });
    assert.equal(nf2.status, 5);
    assert.ok(nf2.trailersOnly);
    assert.equal(pctDecode(nf2.message), 'not found % 100');
    const ok = await h.unaryCall(sFe, DESCRIBE, h.describeNs('fid-ok'));
    assert.equal(ok.status, 0);
    assert.equal(nsName(ok), 'fid-ok');
  });

  test('an 8 MiB message both ways is relayed intact', { timeout: T }, async () => {
    const body = h.grpcFrame(crypto.randomBytes(8 * MiB));
    const want = h.sha256(body);
    const r = await h.request(sEcho, h.grpcHeaders('/test.Echo/Big', { 'x-id': 'big-1' }), body, { timeoutMs: 30_000 * h.SLOW });
    assert.equal(r.status, 0);
    const er = echo.streams.find((s) => s.headers['x-id'] === 'big-1');
    assert.equal(er.bodyLength, body.length, 'upstream got every request byte');
    assert.equal(er.bodySha256, want, 'request SHA-256 at the upstream');
    assert.equal(r.data.length, body.length, 'client got every response byte');
    assert.equal(h.sha256(r.data), want, 'response SHA-256 at the client');
    assert.equal(h.parseGrpcFrames(r.data)[0].data.length, 8 * MiB);
  });

  test('1,000 concurrent streams on one connection', { timeout: 60_000 * h.SLOW }, async (t) => {
    const s = await h.h2connect(tgFe.port);
    extra.push(s);
    const N = 1000;
    const t0 = Date.now();
    // Each call is held 2 s by the frontend, so all of them are in flight together.
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        h.unaryCall(s, DESCRIBE, h.describeNs(`ns-${i}`), { 'x-test-delay-ms': '2000' }, { timeoutMs: 45_000 * h.SLOW }),
      ),
    );
    const took = Date.now() - t0;
    t.diagnostic(`1000 calls held 2 s each took ${took} ms`);
    results.forEach((r, i) => {
      assert.equal(r.status, 0, `call ${i}: status ${r.status} ${r.message || ''} rst ${r.rstCode}`);
      assert.equal(nsName(r), `ns-${i}`, `call ${i} got its own answer`);
    });
    const recs = fe.calls.filter((c) => /^ns-\d+$/.test(c.namespace));
    assert.equal(new Set(recs.map((c) => c.namespace)).size, N, 'the frontend saw 1000 distinct calls');
    assert.equal(recs.length, N, 'and each once');
    const firstEnd = Math.min(...recs.map((c) => c.endTime));
    const overlapping = recs.filter((c) => c.time <= firstEnd).length;
    assert.equal(overlapping, N, 'all 1000 calls were open at the frontend at the same time');
    assert.ok(took < 30_000 * h.SLOW, `took ${took} ms`);
  });

  test('client cancellation (RST_STREAM CANCEL) reaches the upstream', { timeout: T }, async () => {
    // Raw upstream: the stream is reset with CANCEL.
    let req;
    const p = h.request(sEcho, h.grpcHeaders('/test.Echo/Hold', { 'x-mode': 'hold', 'x-id': 'cancel-1' }), h.grpcFrame(Buffer.from('x')), {
      onStream: (s) => (req = s),
    });
    await echo.waitForStream((s) => s.headers['x-id'] === 'cancel-1');
    req.close(NGHTTP2_CANCEL);
    const r = await p;
    assert.equal(r.rstCode, NGHTTP2_CANCEL);
    const er = await echo.waitForClose((s) => s.headers['x-id'] === 'cancel-1', 3000);
    assert.equal(er.rstCode, NGHTTP2_CANCEL, 'the upstream stream was reset with CANCEL');

    // Frontend: a long poll is recorded as cancelled.
    let req2;
    const p2 = h.unaryCall(sFe, POLL, h.pollWft('default', 'cancel-q'), { 'x-test-delay-ms': '20000' }, { onStream: (s) => (req2 = s) });
    const rec = await fe.waitForCall((c) => c.method === 'PollWorkflowTaskQueue' && c.request.taskQueue.name === 'cancel-q', 3000);
    req2.close(NGHTTP2_CANCEL);
    await p2;
    await h.waitFor(() => rec.cancelled, 3000, 'the frontend to see the cancellation');
    assert.equal(rec.status.code, 1 /* CANCELLED */);
  });

  test('upstream cancellation (RST_STREAM CANCEL mid-response) reaches the client', { timeout: T }, async () => {
    // The client does not read until the upstream has reset its stream (see echo.js rst-mid).
    let req;
    const p = h.request(sEcho, h.grpcHeaders('/test.Echo/Rst', { 'x-mode': 'rst-mid', 'x-id': 'rst-1' }), h.grpcFrame(Buffer.from('x')), {
      paused: true,
      timeoutMs: 5000,
      onStream: (x) => (req = x),
    });
    const er = await echo.waitForClose((x) => x.headers['x-id'] === 'rst-1', 3000);
    assert.equal(er.rstCode, NGHTTP2_CANCEL, 'the upstream reset its stream');
    req.resume();
    const r = await p;
    assert.equal(r.headers[':status'], 200, 'the response had begun');
    assert.equal(r.rstCode, NGHTTP2_CANCEL, `client stream reset with CANCEL (got ${r.rstCode})`);
    assert.ok(r.data.length < 16 << 20, 'the body was cut');
    assert.equal(r.trailers, null);
    // The connection is still usable.
    const ok = await h.unaryCall(sEcho, '/test.Echo/After', Buffer.from('after'));
    assert.equal(ok.status, 0);
  });

  test('upstream killed mid-call: the client gets UNAVAILABLE, never hangs', { timeout: T }, async () => {
    const port = await h.freePort();
    let child = await spawnEcho(port);
    const tg = await h.startTgate({ upstream: port });
    extra.push(tg);
    const s = await h.h2connect(tg.port);
    extra.push(s);
    try {
      const before = h.unaryCall(s, '/test.Echo/Hold', Buffer.from('a'), { 'x-mode': 'hold', 'x-id': 'k1' }, { timeoutMs: 8000 });
      const begun = h.unaryCall(s, '/test.Echo/Hold', Buffer.from('b'), { 'x-mode': 'headers-hold', 'x-id': 'k2' }, { timeoutMs: 8000 });
      await child.waitForStream('k1');
      await child.waitForStream('k2');
      await h.sleep(100); // let k2's response headers reach the client
      const t0 = Date.now();
      await child.kill('SIGKILL');
      const [r1, r2] = await Promise.all([before, begun]);
      assert.ok(Date.now() - t0 < 3000, 'answered promptly');
      assert.equal(r1.status, 14, `no answer yet: UNAVAILABLE (got status ${r1.status}, rst ${r1.rstCode})`);
      assert.ok(r1.trailersOnly, 'trailers-only');
      assert.equal(r2.headers && r2.headers[':status'], 200);
      assert.ok(r2.status === 14 || (r2.rstCode && r2.rstCode !== 0), `answer begun: UNAVAILABLE trailers or a reset (status ${r2.status}, rst ${r2.rstCode})`);
      // tgate reconnects once the upstream is back.
      child = await spawnEcho(port);
      await h.waitFor(async () => (await h.unaryCall(s, '/test.Echo/Again', Buffer.from('c'), {}, { timeoutMs: 3000 })).status === 0, 8000 * h.SLOW, 'calls to succeed again');
    } finally {
      await child.kill();
    }
  });

  describe('upstream absent, then back', () => {
    let port;
    let tg;
    let s;

    before(async () => {
      port = await h.freePort(); // nothing listens here yet
      tg = await h.startTgate({ upstream: port, waitReady: false, connectTimeout: '1s' });
      extra.push(tg);
      s = await h.h2connect(tg.port);
      extra.push(s);
    });

    test('no upstream: UNAVAILABLE, trailers-only, within 2 s', { timeout: T }, async () => {
      assert.equal((await h.httpGet(tg.adminPort, '/health/ready')).status, 503);
      for (let i = 0; i < 3; i++) {
        const t0 = Date.now();
        const r = await h.unaryCall(s, DESCRIBE, h.describeNs('absent'), {}, { timeoutMs: 5000 });
        const took = Date.now() - t0;
        assert.ok(took < 2000, `answered in ${took} ms`);
        assert.ok(r.headers, `response headers received (got none; stream reset with code ${r.rstCode})`);
        assert.equal(r.headers[':status'], 200);
        assert.ok(r.trailersOnly, 'trailers-only');
        assert.equal(r.status, 14, `status ${r.status} ${r.message}`);
      }
    });

    test('the upstream comes back: calls succeed again within 5 s', { timeout: T }, async () => {
      const failing = await h.unaryCall(s, DESCRIBE, h.describeNs('absent'), {}, { timeoutMs: 5000 });
      assert.notEqual(failing.status, 0);
      const fe2 = await startFrontend({ host: '127.0.0.1', port });
      try {
        const t0 = Date.now();
        await h.waitFor(
          async () => (await h.unaryCall(s, DESCRIBE, h.describeNs('back'), {}, { timeoutMs: 3000 })).status === 0,
          5000 * h.SLOW,
          'calls to succeed once the upstream is back',
          100,
        );
        const r = await h.unaryCall(s, DESCRIBE, h.describeNs('back-2'));
        assert.equal(nsName(r), 'back-2');
        assert.ok(Date.now() - t0 <= 5000 * h.SLOW);
        assert.equal((await h.httpGet(tg.adminPort, '/health/ready')).status, 200);
      } finally {
        await h.closeSessions([s]);
        await tg.stop();
        await fe2.close();
      }
    });
  });

  test('flow control: a stalled reader does not make tgate buffer the response', { timeout: T }, async (t) => {
    // A fresh tgate (one worker) so the heap has not grown yet from earlier large transfers.
    const tg = await h.startTgate({ upstream: echo.port, workers: 1 });
    extra.push(tg);
    const s = await h.h2connect(tg.port);
    extra.push(s);
    const warm = await h.unaryCall(s, '/test.Echo/Warm', Buffer.alloc(1000), { 'x-mode': 'big', 'x-size': '1000' });
    assert.equal(warm.status, 0);
    const size = 8 * MiB;
    const baseline = h.rssBytes(tg.pid);
    let req;
    const p = h.unaryCall(s, '/test.Echo/Slow', Buffer.from('x'), { 'x-mode': 'big', 'x-size': String(size), 'x-id': 'slow-1' }, {
      paused: true,
      timeoutMs: 20_000 * h.SLOW,
      onStream: (x) => (req = x),
    });
    await echo.waitForStream((x) => x.headers['x-id'] === 'slow-1');
    let peak = baseline;
    const end = Date.now() + 1000;
    while (Date.now() < end) {
      peak = Math.max(peak, h.rssBytes(tg.pid));
      await h.sleep(25);
    }
    const received = req.readableLength;
    req.resume();
    const r = await p;
    assert.equal(r.status, 0);
    assert.equal(r.data.length, size + 5);
    assert.equal(h.sha256(r.data), r.headers['x-body-sha256'], 'response intact after the stall');
    assert.ok(received < 2 * MiB, `client had ${received} bytes buffered during the stall`);
    const grew = peak - baseline;
    t.diagnostic(`tgate RSS: baseline ${(baseline / MiB).toFixed(1)} MiB, +${(grew / MiB).toFixed(2)} MiB during the stall; client buffered ${received} bytes`);
    assert.ok(grew < 4 * MiB, `tgate RSS grew by ${(grew / MiB).toFixed(2)} MiB during the stall (limit 4 MiB)`);
  });

  test('flow control: a frontend that does not read stalls the client\'s streaming request; tgate does not buffer it', { timeout: T }, async (t) => {
    const tg = await h.startTgate({ upstream: echo.port, workers: 1 });
    extra.push(tg);
    const s = await h.h2connect(tg.port);
    extra.push(s);
    const warm = await h.unaryCall(s, '/test.Echo/Warm', Buffer.alloc(1000));
    assert.equal(warm.status, 0);
    const baseline = h.rssBytes(tg.pid);
    // 32 MiB in 64 KiB messages, all handed to the client stream at once: a write completes
    // only once its bytes went out within tgate's flow-control window.
    const msg = h.grpcFrame(crypto.randomBytes(64 * 1024 - 5));
    const total = 512 * msg.length;
    const res = { headers: null, trailers: null };
    const req = s.request(h.grpcHeaders('/test.Echo/NoRead', { 'x-mode': 'no-read', 'x-id': 'noread-1' }));
    const closed = new Promise((resolve) => req.on('close', resolve));
    req.on('response', (x) => (res.headers = x));
    req.on('trailers', (x) => (res.trailers = x));
    req.on('error', () => {});
    req.resume();
    let written = 0;
    for (let i = 0; i < 512; i++) req.write(msg, () => (written += msg.length));
    req.end();
    const rec = await echo.waitForStream((x) => x.headers['x-id'] === 'noread-1');
    // Wait for the writes to stop completing (no progress for 1 s), watching tgate's RSS.
    let peak = baseline;
    let last = -1;
    let since = Date.now();
    const end = Date.now() + 10_000 * h.SLOW;
    while (Date.now() - since < 1000 && Date.now() < end) {
      peak = Math.max(peak, h.rssBytes(tg.pid));
      if (written !== last) {
        last = written;
        since = Date.now();
      }
      await h.sleep(25);
    }
    const stalledAt = written;
    const grew = peak - baseline;
    t.diagnostic(`client writes stalled after ${(stalledAt / MiB).toFixed(2)} MiB of ${total / MiB}; tgate RSS +${(grew / MiB).toFixed(2)} MiB`);
    assert.ok(stalledAt < 4 * MiB, `the client's writes stopped completing after about a window (${stalledAt} bytes went out)`);
    assert.ok(grew < 8 * MiB, `tgate RSS grew by ${(grew / MiB).toFixed(2)} MiB during the stall (limit 8 MiB)`);
    assert.equal(rec.closed, false);
    // The frontend reads again: everything arrives, in order.
    rec.resumeRead();
    await h.within(closed, 20_000 * h.SLOW, 'the call to end once the frontend reads');
    assert.equal(written, total);
    assert.equal(req.rstCode, 0);
    assert.equal(res.headers && res.headers[':status'], 200);
    assert.equal(res.trailers && res.trailers['grpc-status'], '0');
    const sha = crypto.createHash('sha256');
    for (let i = 0; i < 512; i++) sha.update(msg);
    assert.equal(rec.bodyLength, total, 'the frontend got every request byte');
    assert.equal(rec.bodySha256, sha.digest('hex'), 'request SHA-256 at the frontend');
  });

  test('a long poll held past the usual timers is not cut (5 s, grpc-timeout 90S)', { timeout: T }, async () => {
    // No idle or stream timer in tgate may end a call that is waiting for its answer: a held
    // call gets its answer, with no reset and no GOAWAY. TGATE_LONG_TESTS=1 holds one 65 s.
    const s = await h.h2connect(tgFe.port);
    extra.push(s);
    let goaway = null;
    s.on('goaway', (code) => (goaway = code));
    const t0 = Date.now();
    const r = await h.unaryCall(s, POLL, h.pollWft('default', 'held-5s'), { 'grpc-timeout': '90S', 'x-test-delay-ms': '5000' }, { timeoutMs: 20_000 * h.SLOW });
    const took = Date.now() - t0;
    assert.equal(r.rstCode, 0, `no RST_STREAM (got ${r.rstCode})`);
    assert.equal(goaway, null, `no GOAWAY (got ${goaway})`);
    assert.equal(r.status, 0, `status ${r.status} ${r.message || ''}`);
    assert.ok(took >= 4900, `held ${took} ms`);
    const rec = await fe.waitForCall((c) => c.method === 'PollWorkflowTaskQueue' && c.request.taskQueue.name === 'held-5s', 1000);
    assert.equal(rec.cancelled, false);
  });

  test('a long poll of 65 s is not cut (TGATE_LONG_TESTS=1)', { timeout: 120_000, skip: process.env.TGATE_LONG_TESTS !== '1' && 'set TGATE_LONG_TESTS=1 to run' }, async () => {
    const s = await h.h2connect(tgFe.port);
    extra.push(s);
    let goaway = null;
    s.on('goaway', (code) => (goaway = code));
    const t0 = Date.now();
    const r = await h.unaryCall(s, POLL, h.pollWft('default', 'held-65s'), { 'grpc-timeout': '90S', 'x-test-delay-ms': '65000' }, { timeoutMs: 100_000 });
    const took = Date.now() - t0;
    assert.equal(r.rstCode, 0, `no RST_STREAM (got ${r.rstCode})`);
    assert.equal(goaway, null, `no GOAWAY (got ${goaway})`);
    assert.equal(r.status, 0, `status ${r.status} ${r.message || ''}`);
    assert.ok(took >= 64_900, `held ${took} ms`);
  });
});

describe('tgate relays gRPC faithfully (mTLS downstream)', () => {
  let echo;
  let tg;
  let s;

  before(async () => {
    const c = h.certs();
    echo = await startEcho();
    tg = await h.startTgate({ upstream: echo.port, tls: true });
    s = await h.h2connect(tg.port, { tls: { ca: c.ca, ...c.pair('worker-a') } });
  });

  after(async () => {
    await h.closeSessions([s]);
    try {
      if (tg) await tg.stop();
    } finally {
      if (echo) await echo.close();
    }
  });

  test('metadata, body and echoed headers pass unchanged over TLS', { timeout: T }, async () => {
    const { headers } = testMetadata();
    const body = crypto.randomBytes(300_000);
    const r = await h.unaryCall(s, '/test.Fidelity/Tls', body, { ...headers, 'x-id': 'tls-1' }, { timeoutMs: 10_000 * h.SLOW });
    assert.equal(r.status, 0);
    const er = await echo.waitForStream((x) => x.headers['x-id'] === 'tls-1');
    const sentPairs = [];
    for (const [k, v] of Object.entries({ 'content-type': 'application/grpc', te: 'trailers', ...headers, 'x-id': 'tls-1' })) {
      for (const one of [].concat(v)) sentPairs.push([k, one]);
    }
    assert.deepEqual(regularPairs(er.rawHeaders), sentPairs);
    assert.equal(er.headers[':path'], '/test.Fidelity/Tls');
    assert.deepEqual(h.parseGrpcFrames(r.data)[0].data, body);
    assert.equal(r.headers['x-bin-bin'], headers['x-bin-bin']);
    assert.equal(r.headers['x-multi'], 'first, second'); // Node joins repeated fields
  });
});
