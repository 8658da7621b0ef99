'use strict';
// busy_poll: a worker that polls without sleeping after a read still forwards every call
// exactly once, goes back to sleep when nothing comes (idle, and with a long poll held), and
// the setting can be changed or turned off by a reload while calls keep working.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startEcho } = require('./lib/echo.js');
const h = require('./lib/harness.js');

const T = 60_000 * h.SLOW;
const P = `/${h.WS}/DescribeNamespace`;
const TCK = 100; // clock ticks per second (getconf CLK_TCK on Linux)

let echo, tg, sess;

/** tgate's CPU seconds so far (user + system, every thread). */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TCK;
}

/** CPU seconds tgate used over ms of wall time. */
async function cpuOver(ms) {
  const c0 = cpuSeconds(tg.pid);
  await h.sleep(ms);
  return cpuSeconds(tg.pid) - c0;
}

function metric(body, name) {
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

async function reload(yamlLine) {
  const cfg = fs.readFileSync(tg.configFile, 'utf8').replace(/^busy_poll: .*$/m, yamlLine);
  fs.writeFileSync(tg.configFile, cfg);
  const name = 'tgate_config_reloads_total{result="success"}';
  const ok0 = metric((await h.httpGet(tg.adminPort, '/metrics')).body, name);
  tg.proc.kill('SIGHUP');
  await h.waitFor(async () => metric((await h.httpGet(tg.adminPort, '/metrics')).body, name) > ok0,
    10_000 * h.SLOW, 'the reload');
}

async function calls(n, marker) {
  for (let i = 0; i < n; i++) {
    const r = await h.unaryCall(sess, P, Buffer.from(`m${i}`), { 'x-marker': `${marker}-${i}` });
    assert.equal(r.status, 0, r.message);
    assert.ok(r.data.equals(h.grpcFrame(Buffer.from(`m${i}`))), "the body is echoed");
  }
  const seen = echo.streams.filter((s) => String(s.headers['x-marker'] || '').startsWith(`${marker}-`));
  assert.equal(seen.length, n, 'every call reached the upstream exactly once');
}

before(async () => {
  echo = await startEcho();
  tg = await h.startTgate({ upstream: echo.port, workers: 1, adminPort: await h.freePort(),
    extraYaml: 'busy_poll: 200us' });
  sess = await h.h2connect(tg.port);
});

after(async () => {
  if (sess) await h.closeSessions([sess]);
  await h.stopAll([tg]);
  if (echo) await echo.close();
});

test('with busy_poll: 200us every call is forwarded once and answered', { timeout: T }, async () => {
  await calls(300, 'bp');
});

test('an idle worker sleeps: no spinning after the last read, nor while a long poll is held', { timeout: T }, async () => {
  await calls(50, 'idle');
  await h.sleep(100);
  // A worker that kept spinning would use about 1.5 s of CPU here.
  const idle = await cpuOver(1500);
  assert.ok(idle < 0.4, `tgate used ${idle.toFixed(2)} s of CPU in 1.5 s while idle`);
  const held = h.request(sess, h.grpcHeaders(P, { 'x-mode': 'hold' }), h.grpcFrame(Buffer.from('hold')),
    { timeoutMs: 30_000 * h.SLOW });
  held.catch(() => {});
  await h.waitFor(() => echo.streams.some((s) => s.headers['x-mode'] === 'hold'), 5000 * h.SLOW, 'the held call upstream');
  const holding = await cpuOver(1500);
  assert.ok(holding < 0.4, `tgate used ${holding.toFixed(2)} s of CPU in 1.5 s holding one call`);
  await calls(20, 'after-hold');
});

test('busy_poll is reloadable: changed, then turned off, calls keep working', { timeout: T }, async () => {
  await reload('busy_poll: 1ms');
  await calls(100, 'r1ms');
  await reload('busy_poll: 0us');
  await calls(100, 'roff');
  const off = await cpuOver(1000);
  assert.ok(off < 0.3, `tgate used ${off.toFixed(2)} s of CPU in 1 s with busy_poll off`);
});
