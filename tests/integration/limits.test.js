'use strict';
// limits: every refusal is grpc-status 8 (RESOURCE_EXHAUSTED), counted in
// tgate_limit_refusals_total{limit}, and never reaches the upstream; what stays within the
// limits keeps working.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startEcho } = require('./lib/echo.js');
const h = require('./lib/harness.js');

const T = 60_000 * h.SLOW;
const P = `/${h.WS}/DescribeNamespace`;

let echo, tg, keysFile;
const keys = {};
const sessions = [];

function newKey(subject) {
  const out = execFileSync(h.TGATE_BIN, ['apikey', 'new', '--subject', subject, '--permission', 'default:admin'],
    { encoding: 'utf8' });
  return { key: /#\s+(tgk_\S+)/.exec(out)[1], entry: out.split('\n').filter((l) => !l.startsWith('#')).join('\n') };
}

async function refusals() {
  const r = await h.httpGet(tg.adminPort, '/metrics');
  const out = {};
  for (const m of r.body.matchAll(/^tgate_limit_refusals_total\{limit="(\w+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  return out;
}

async function connect() {
  const s = await h.h2connect(tg.port);
  sessions.push(s);
  return s;
}

const reached = (marker) => echo.streams.some((st) => st.headers['x-marker'] === marker);

before(async () => {
  const dir = h.tempDir('tgate-limits-');
  keysFile = path.join(dir, 'keys.yaml');
  keys.a = newKey('svc-a');
  keys.b = newKey('svc-b');
  fs.writeFileSync(keysFile, `keys:\n${keys.a.entry}\n${keys.b.entry}\n`);
  echo = await startEcho();
  tg = await h.startTgate({
    upstream: echo.port,
    workers: 2,
    extraYaml: [
      'authentication:',
      '  require: [api_key]',
      `  api_keys_file: ${JSON.stringify(keysFile)}`,
      'limits:',
      '  max_connections: 3',
      '  max_header_list_size: 4096',
      '  max_message_size: 2048',
      '  max_calls_per_subject: 2',
    ].join('\n'),
  });
});

after(async () => {
  await h.closeSessions(sessions);
  await h.stopAll([tg]);
  if (echo) await echo.close();
});

const auth = (who) => ({ authorization: `Bearer ${keys[who].key}` });

test('a request header list over max_header_list_size: 8, counted, not forwarded', { timeout: T }, async () => {
  const s = await connect();
  const before = await refusals();
  const r = await h.unaryCall(s, P, Buffer.from('x'), { ...auth('a'), 'x-marker': 'hdr-big', 'x-pad': 'p'.repeat(5000) });
  assert.equal(r.status, 8, r.message);
  assert.match(decodeURIComponent(r.message || ''), /header list larger/);
  assert.equal(reached('hdr-big'), false);
  assert.equal((await refusals()).header_list_size, before.header_list_size + 1);
  const ok = await h.unaryCall(s, P, Buffer.from('x'), { ...auth('a'), 'x-marker': 'hdr-ok', 'x-pad': 'p'.repeat(2000) });
  assert.equal(ok.status, 0, 'within the limit, on the same connection');
});

test('a request message over max_message_size: 8 whether it comes first or later, in one or many frames', { timeout: T }, async () => {
  const s = await connect();
  const before = await refusals();
  const big = h.unaryCall(s, P, Buffer.alloc(3000, 7), { ...auth('a'), 'x-marker': 'msg-big' });
  const r = await big;
  assert.equal(r.status, 8, r.message);
  assert.match(decodeURIComponent(r.message || ''), /3000 bytes larger/);
  assert.equal(reached('msg-big'), false);
  // A client-streaming body: a small message first (forwarded), then one too large, sent in
  // small DATA frames: the call is cancelled upstream and answered 8.
  const res = await new Promise((resolve, reject) => {
    const req = s.request(h.grpcHeaders(P, { ...auth('a'), 'x-marker': 'msg-later', 'x-mode': 'hold' }));
    const out = { headers: null, trailers: null, rstCode: null, error: null };
    const t = setTimeout(() => { req.close(); reject(new Error('no answer')); }, 10_000 * h.SLOW);
    req.on('response', (hd) => { out.headers = hd; });
    req.on('trailers', (hd) => { out.trailers = hd; });
    req.on('error', (e) => { out.error = e; });
    req.on('data', () => {});
    req.on('close', () => {
      clearTimeout(t);
      const src = out.trailers || out.headers || {};
      out.status = src['grpc-status'] === undefined ? null : Number(src['grpc-status']);
      out.rstCode = req.rstCode;
      resolve(out);
    });
    req.write(h.grpcFrame(Buffer.alloc(100, 1)));
    const second = h.grpcFrame(Buffer.alloc(5000, 2));
    let off = 0;
    const tick = setInterval(() => {
      if (off >= second.length || req.destroyed || req.closed) {
        clearInterval(tick);
        if (!req.destroyed && !req.closed) req.end();
        return;
      }
      req.write(second.subarray(off, off + 700));
      off += 700;
    }, 5);
  });
  assert.equal(res.status, 8, JSON.stringify({ headers: res.headers, rst: res.rstCode, err: String(res.error) }) + tg.log().slice(-3000));
  await h.waitFor(() => echo.streams.some((st) => st.headers['x-marker'] === 'msg-later' && st.closed), 5000 * h.SLOW,
    'the upstream stream to be cancelled');
  const up = echo.streams.find((st) => st.headers['x-marker'] === 'msg-later');
  assert.ok(up.bodyLength < 5000, `the large message did not reach the upstream (${up.bodyLength} bytes)`);
  assert.equal((await refusals()).message_size, before.message_size + 2);
});

test('max_calls_per_subject: the third call in flight of one identity gets 8; others are not affected', { timeout: T }, async () => {
  const s = await connect();
  const before = await refusals();
  const reqs = [];
  const held = [0, 1].map((i) => h.unaryCall(s, P, Buffer.from('x'), { ...auth('a'), 'x-mode': 'hold', 'x-marker': `held-${i}` },
    { timeoutMs: 30_000 * h.SLOW, onStream: (req) => reqs.push(req) }));
  await h.waitFor(() => reached('held-0') && reached('held-1'), 5000 * h.SLOW, 'two held calls upstream');
  const third = await h.unaryCall(s, P, Buffer.from('x'), { ...auth('a'), 'x-marker': 'third' });
  assert.equal(third.status, 8);
  assert.match(decodeURIComponent(third.message || ''), /too many calls in flight/);
  assert.equal(reached('third'), false);
  const other = await h.unaryCall(s, P, Buffer.from('x'), { ...auth('b'), 'x-marker': 'other' });
  assert.equal(other.status, 0, 'another identity is not limited');
  assert.equal((await refusals()).calls_per_subject, before.calls_per_subject + 1);
  // One held call ends: the identity may make a call again.
  reqs[0].close();
  await held[0];
  await h.waitFor(async () => (await h.unaryCall(s, P, Buffer.from('x'), auth('a'))).status === 0, 5000 * h.SLOW,
    'a call once one of the two ended');
  reqs[1].close();
  await held[1];
});

test('max_connections: a connection over the limit is told 8 on its call and sent GOAWAY; the others go on', { timeout: T }, async () => {
  await h.closeSessions(sessions.splice(0));
  await h.waitFor(async () => {
    const m = (await h.httpGet(tg.adminPort, '/metrics')).body;
    return /^tgate_connections_open 0$/m.test(m);
  }, 5000 * h.SLOW, 'no connection open');
  const before = await refusals();
  const within = [await connect(), await connect(), await connect()];
  for (const s of within) assert.equal((await h.unaryCall(s, P, Buffer.from('x'), auth('a'))).status, 0);
  const over = await connect();
  let goaway = false;
  over.on('goaway', () => { goaway = true; });
  const r = await h.unaryCall(over, P, Buffer.from('x'), { ...auth('a'), 'x-marker': 'over' });
  assert.equal(r.status, 8);
  assert.match(decodeURIComponent(r.message || ''), /too many connections/);
  assert.equal(reached('over'), false);
  await h.waitFor(() => goaway || over.closed || over.destroyed, 5000 * h.SLOW, 'GOAWAY on the connection over the limit');
  assert.equal((await refusals()).connections, before.connections + 1);
  for (const s of within) assert.equal((await h.unaryCall(s, P, Buffer.from('x'), auth('a'))).status, 0, 'the others go on');
  // One closes: a new connection is served again.
  await h.closeSessions([within[0], over]);
  await h.waitFor(async () => {
    const s = await connect();
    const ok = (await h.unaryCall(s, P, Buffer.from('x'), auth('a'))).status === 0;
    if (!ok) await h.closeSessions([s]);
    return ok;
  }, 5000 * h.SLOW, 'a new connection served once one closed');
});
