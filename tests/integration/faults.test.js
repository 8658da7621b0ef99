'use strict';
// Faults around tgate, each provoked for real on 127.0.0.1 and every wait bounded:
//   - the upstream frontend (a child process) SIGKILLed and restarted under load: calls get
//     14 UNAVAILABLE while it is away (never a hang, another status or a dropped client
//     connection), are served again soon after it is back, and nothing leaks (streams gauge
//     back to 0, RSS flat over the cycles, no LeakSanitizer report at stop);
//   - the JWKS endpoint down, then slow (accepts and never answers): the last good keys keep
//     verifying tokens, failures are counted, readiness holds, the call path never waits for
//     the fetch, and the fetch times out (TG_KEYSTORE_FETCH_TIMEOUT_S);
//   - the audit log's disk full (a small tmpfs when we may mount one, else RLIMIT_FSIZE set on
//     the running tgate with prlimit(1)): fail_closed refuses allowed calls with 14 and turns
//     unready while denials are still answered (and kept, written later); fail_open serves; both resume writing (the
//     chain intact) once space is back; and RLIMIT_FSIZE alone must not kill tgate (SIGXFSZ);
//   - file descriptors exhausted (RLIMIT_NOFILE lowered with prlimit): accept fails with
//     EMFILE; tgate stays up, serves the connections it has, logs the failure without spinning,
//     and accepts again once descriptors are free.
// TGATE_FAULTS_DISK=tmpfs|fsize forces the disk-full method (default: tmpfs when possible).
const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { startFrontend } = require('../frontend/frontend.js');
const { startIssuer } = require('../issuer/issuer.js');
const { spawnEcho } = require('./lib/echo.js');
const h = require('./lib/harness.js');
const proc = require('./lib/proc.js');

const DESCRIBE = `/${h.WS}/DescribeNamespace`;
const MiB = 1024 * 1024;

const cleanups = [];
after(async () => {
  let first = null;
  for (const c of cleanups.reverse()) {
    try {
      await c();
    } catch (e) {
      first = first || e;
    }
  }
  if (first) throw first;
});

/**
 * Registers a tgate for cleanup: stopped with the usual checks (exit status 0, no sanitizer
 * report) unless the test stopped it; mayDie: a death by signal is the bug under test.
 */
function own(tg, { mayDie = false } = {}) {
  let stopped = false;
  const stop = tg.stop;
  tg.stop = (...args) => {
    stopped = true;
    return stop(...args);
  };
  cleanups.push(async () => {
    if (stopped) return;
    if (mayDie && (await Promise.race([tg.exited.then((e) => e.signal !== null), h.sleep(100).then(() => false)]))) return;
    await tg.stop();
  });
  return tg;
}

async function metrics(tg) {
  return proc.scrape(tg.adminPort);
}

const fmtMiB = (b) => `${(b / MiB).toFixed(1)} MiB`;

// ---------------------------------------------------------------------------------------------
// Upstream killed and restarted under load

test('upstream SIGKILLed and restarted under load: 14 while away, served again, nothing leaks', { timeout: 180_000 * h.SLOW }, async () => {
  const CYCLES = 4;
  const CALL_MS = 5000 * h.SLOW;
  const port = await h.freePort();
  let echo = await spawnEcho(port);
  cleanups.push(() => echo.kill());
  // Under ASan, freed memory waits in a quarantine (256 MiB by default) before reuse, which
  // RSS would show as growth: a small one keeps the RSS check meaningful there too.
  const asanOptions = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=8'].filter(Boolean).join(':');
  const tg = own(await h.startTgate({ upstream: port, workers: 2, connectTimeout: '1s',
    wrapper: h.ASAN ? ['env', `ASAN_OPTIONS=${asanOptions}`] : [] }));

  const sessions = [];
  const sessionEvents = [];
  for (let i = 0; i < 4; i++) {
    const s = await h.h2connect(tg.port);
    s.on('goaway', (code) => sessionEvents.push(`session ${i}: GOAWAY ${code}`));
    s.on('close', () => sessionEvents.push(`session ${i}: closed`));
    sessions.push(s);
  }
  cleanups.push(() => h.closeSessions(sessions));

  // Two call loops per session, each call bounded; every outcome is recorded.
  const results = [];
  let running = true;
  async function loop(s, i) {
    while (running) {
      const start = Date.now();
      let r;
      try {
        r = await h.unaryCall(s, DESCRIBE, h.describeNs(`load-${i}`), {}, { timeoutMs: CALL_MS });
      } catch (e) {
        r = { status: null, hung: e.message };
      }
      results.push({ session: i, start, end: Date.now(), status: r.status, rstCode: r.rstCode || 0,
        message: r.message ? decodeURIComponent(r.message) : '', hung: r.hung || null });
      if (r.status !== 0) await h.sleep(5); // failures are fast: do not spin the test process
    }
  }
  const loops = sessions.flatMap((s, i) => [loop(s, i), loop(s, i)]);

  const cycles = [];
  const rss = [];
  try {
    for (let c = 0; c < CYCLES; c++) {
      await h.sleep(1000);
      // Calls in flight when the frontend dies: held by it, one per session.
      const held = sessions.map((s, i) =>
        h.unaryCall(s, DESCRIBE, h.describeNs('held'), { 'x-mode': 'hold', 'x-id': `held-${c}-${i}` }, { timeoutMs: CALL_MS }));
      for (let i = 0; i < sessions.length; i++) await echo.waitForStream(`held-${c}-${i}`, 5000 * h.SLOW);
      const killStart = Date.now();
      await echo.kill('SIGKILL');
      const killedAt = Date.now();
      const heldResults = await Promise.all(held);
      const heldDone = Date.now();
      for (const r of heldResults) {
        assert.equal(r.status, 14, `a call in flight when the frontend died: ${JSON.stringify({ status: r.status, rst: r.rstCode, message: r.message })}`);
      }
      assert.ok(heldDone - killedAt < 3000 * h.SLOW, `calls in flight ended ${heldDone - killedAt} ms after the kill`);
      await h.sleep(1500);
      const restartAt = Date.now();
      echo = await spawnEcho(port);
      await h.waitFor(() => sessions.every((_, i) => results.some((r) => r.session === i && r.status === 0 && r.start >= restartAt)),
        6000 * h.SLOW, `cycle ${c}: every session served again after the restart`, 50);
      const recoveredAt = Date.now();
      cycles.push({ killStart, killedAt, restartAt, recoveredAt, heldMs: heldDone - killedAt });
      await h.sleep(300);
      rss.push(proc.rssBytes(tg.pid));
    }
  } finally {
    running = false;
    await Promise.all(loops);
  }

  // Every call ended with 0 or 14, in bounded time, and no client connection was dropped.
  const bad = results.filter((r) => r.hung || (r.status !== 0 && r.status !== 14));
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} calls hung or ended with another status`);
  assert.deepEqual(sessionEvents, [], 'client connections must stay up');
  for (const s of sessions) assert.ok(!s.closed && !s.destroyed);

  const summary = [];
  for (let c = 0; c < cycles.length; c++) {
    const { killedAt, restartAt, recoveredAt } = cycles[c];
    const nextKill = c + 1 < cycles.length ? cycles[c + 1].killStart : Infinity;
    // Started and ended while the frontend was away: 14, and fast (at most connect_timeout).
    const away = results.filter((r) => r.start >= killedAt && r.end <= restartAt);
    assert.ok(away.length >= 8, `cycle ${c}: only ${away.length} calls while the frontend was away`);
    const awayBad = away.filter((r) => r.status !== 14);
    assert.deepEqual(awayBad.slice(0, 3), [], `cycle ${c}: calls while the frontend was away must get 14`);
    const slowest = Math.max(...away.map((r) => r.end - r.start));
    assert.ok(slowest < 2500 * h.SLOW, `cycle ${c}: a call waited ${slowest} ms while the frontend was away`);
    // Once every session was served again: every call succeeds until the next kill.
    const back = results.filter((r) => r.start >= recoveredAt && r.end < nextKill);
    assert.ok(back.length > 0, `cycle ${c}: calls after recovery`);
    const backBad = back.filter((r) => r.status !== 0);
    assert.deepEqual(backBad.slice(0, 3), [], `cycle ${c}: calls after recovery must succeed`);
    summary.push(`cycle ${c}: in flight ended ${cycles[c].heldMs} ms after the kill; ${away.length} calls while away ` +
      `(all 14, slowest ${slowest} ms); served again ${recoveredAt - restartAt} ms after the restart`);
  }
  const byStatus = {};
  for (const r of results) byStatus[`${r.status} ${r.message}`] = (byStatus[`${r.status} ${r.message}`] || 0) + 1;

  // Nothing left open, and memory flat over the cycles.
  let last = '';
  await h.waitFor(async () => {
    last = await metrics(tg);
    return proc.metric(last, 'tgate_streams_open') === 0;
  }, 5000 * h.SLOW, 'tgate_streams_open to return to 0', 100);
  assert.equal(proc.metric(last, 'tgate_connections_open'), sessions.length);
  const growth = rss[rss.length - 1] - rss[0];
  const bound = (h.ASAN ? 32 : 12) * MiB;
  console.log(`# upstream kill: ${results.length} calls ${JSON.stringify(byStatus)}\n# ${summary.join('\n# ')}\n` +
    `# RSS after each cycle: ${rss.map(fmtMiB).join(', ')} (growth ${fmtMiB(growth)}, bound ${fmtMiB(bound)})`);
  assert.ok(growth < bound, `RSS grew ${fmtMiB(growth)} over ${CYCLES - 1} kill/restart cycles: ${rss.map(fmtMiB).join(', ')}`);
  await h.closeSessions(sessions);
  await tg.stop(); // exit 0 and, under ASan, no leak report
});

// ---------------------------------------------------------------------------------------------
// JWKS endpoint down, then slow

/** A TCP server that accepts connections, reads, and never answers. */
function startHangingServer(port) {
  const sockets = new Set();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    s.resume();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () =>
      resolve({
        get accepted() {
          return accepted;
        },
        close: () =>
          new Promise((r) => {
            for (const s of sockets) s.destroy();
            server.close(() => r());
          }),
      }));
  });
}

test('JWKS endpoint down, then slow: last good keys keep working, no stall, the fetch times out', { timeout: 120_000 * h.SLOW }, async () => {
  const FETCH_TIMEOUT_S = 10; // TG_KEYSTORE_FETCH_TIMEOUT_S in include/tg_keystore.h
  const fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => fe.close());
  const iss = await startIssuer({ port: 0, host: '127.0.0.1', algs: ['RS256', 'ES256'], audience: 'temporal' });
  cleanups.push(() => iss.stop());
  const yaml = [
    'authentication:',
    '  require: [jwt]',
    '  jwt:',
    `    key_sources: [${JSON.stringify(iss.jwksUri)}]`,
    `    issuer: ${JSON.stringify(iss.issuer)}`,
    '    audience: temporal',
    '    refresh_interval: 1s',
    '    cache_size: 0', // every call verifies its signature against the key set in use
  ].join('\n');
  const tg = own(await h.startTgate({ upstream: fe.port, extraYaml: yaml }));
  const s = await h.h2connect(tg.port);
  cleanups.push(() => h.closeSessions([s]));
  // Tokens of both algs, minted while the issuer is up.
  const tokens = [];
  for (const alg of ['RS256', 'ES256']) {
    for (let i = 0; i < 3; i++) tokens.push(await iss.token({ clientId: 'worker-a', alg }));
  }
  let k = 0;
  const timedCall = async () => {
    const t0 = Date.now();
    const r = await h.unaryCall(s, DESCRIBE, h.describeNs('team-a'), { authorization: `Bearer ${tokens[k++ % tokens.length]}` },
      { timeoutMs: 10_000 * h.SLOW });
    return { status: r.status, message: r.message, ms: Date.now() - t0 };
  };
  const ready = async () => {
    const t0 = Date.now();
    const r = await h.httpGet(tg.adminPort, '/health/ready', 5000 * h.SLOW);
    return { status: r.status, body: r.body, ms: Date.now() - t0 };
  };
  for (let i = 0; i < tokens.length; i++) assert.equal((await timedCall()).status, 0);
  const m0 = await metrics(tg);
  const keys = proc.metric(m0, 'tgate_jwks_keys');
  assert.ok(keys >= 2, `tgate_jwks_keys ${keys}`);

  // Down: connection refused at every refresh.
  await iss.stop();
  const f0 = proc.metric(await metrics(tg), 'tgate_jwks_failures_total');
  const r0 = proc.metric(await metrics(tg), 'tgate_jwks_refreshes_total');
  let downCalls = 0;
  await h.waitFor(async () => {
    const c = await timedCall();
    assert.equal(c.status, 0, `a known key while the JWKS endpoint is down: ${c.status} ${c.message}`);
    const rd = await ready();
    assert.equal(rd.status, 200, `/health/ready while the JWKS endpoint is down: ${rd.body}`);
    downCalls++;
    return proc.metric(await metrics(tg), 'tgate_jwks_failures_total') - f0 >= 3;
  }, 15_000 * h.SLOW, 'three failed refreshes while the JWKS endpoint is down', 250);
  const m1 = await metrics(tg);
  assert.ok(proc.metric(m1, 'tgate_jwks_refreshes_total') - r0 >= 3, 'refreshes keep being tried');
  assert.equal(proc.metric(m1, 'tgate_jwks_keys'), keys, 'the last good keys stay in use');
  assert.match(tg.log(), /JWKS source http:\/\/127\.0\.0\.1:\d+\/jwks: .*keeping its last good keys/);

  // Slow: the endpoint accepts the connection and never answers.
  const hang = await startHangingServer(iss.port);
  cleanups.push(() => hang.close());
  await h.waitFor(() => hang.accepted > 0, 5000 * h.SLOW, 'a JWKS fetch to reach the hanging endpoint');
  const hungAt = Date.now();
  const f1 = proc.metric(await metrics(tg), 'tgate_jwks_failures_total');
  let slowCalls = 0;
  let slowest = 0;
  let slowestReady = 0;
  let acceptedBeforeTimeout = 0;
  let timedOutAt = 0;
  await h.waitFor(async () => {
    const c = await timedCall();
    assert.equal(c.status, 0, `a known key while the JWKS fetch hangs: ${c.status} ${c.message}`);
    assert.ok(c.ms < 2000, `a call took ${c.ms} ms while the JWKS fetch hangs`);
    const rd = await ready();
    assert.equal(rd.status, 200, `/health/ready while the JWKS fetch hangs: ${rd.body}`);
    assert.ok(rd.ms < 2000, `/health/ready took ${rd.ms} ms while the JWKS fetch hangs`);
    slowCalls++;
    slowest = Math.max(slowest, c.ms);
    slowestReady = Math.max(slowestReady, rd.ms);
    if (proc.metric(await metrics(tg), 'tgate_jwks_failures_total') > f1) {
      timedOutAt = Date.now();
      return true;
    }
    acceptedBeforeTimeout = hang.accepted;
    return false;
  }, (FETCH_TIMEOUT_S + 10) * 1000 * h.SLOW, 'the hanging JWKS fetch to time out', 200);
  const hungMs = timedOutAt - hungAt;
  assert.ok(hungMs >= (FETCH_TIMEOUT_S - 1.5) * 1000, `the fetch failed ${hungMs} ms after it hung: not the ${FETCH_TIMEOUT_S} s timeout`);
  assert.equal(acceptedBeforeTimeout, 1, 'one fetch at a time: refreshes do not pile up behind a hanging one');
  assert.match(tg.log(), /JWKS source http:\/\/127\.0\.0\.1:\d+\/jwks: [^\n]*[Tt]imed? ?out[^\n]*keeping its last good keys/);
  const c = await timedCall();
  assert.equal(c.status, 0, 'still served after the timeout');

  // Back: the issuer's keys are fetched again (a rotated key is picked up).
  await hang.close();
  await iss.start();
  await iss.rotate();
  const fresh = await iss.token({ clientId: 'worker-a', alg: 'ES256' });
  await h.waitFor(async () => (await h.unaryCall(s, DESCRIBE, h.describeNs('team-a'), { authorization: `Bearer ${fresh}` })).status === 0,
    10_000 * h.SLOW, 'a key rotated after the outage to be accepted', 300);
  console.log(`# JWKS: ${downCalls} calls while down (${proc.metric(m1, 'tgate_jwks_failures_total') - f0} failed refreshes), ` +
    `${slowCalls} while the fetch hung (slowest call ${slowest} ms, slowest /health/ready ${slowestReady} ms); ` +
    `the hanging fetch failed after ${hungMs} ms`);
  await h.closeSessions([s]);
  await tg.stop();
});

// ---------------------------------------------------------------------------------------------
// Disk full for the audit log

function apiKey(subject, perms) {
  const out = execFileSync(h.TGATE_BIN, ['apikey', 'new', '--subject', subject, ...perms.flatMap((p) => ['--permission', p])],
    { encoding: 'utf8' });
  return { key: /#\s+(tgk_\S+)/.exec(out)[1], entry: out.split('\n').filter((l) => !l.startsWith('#')).join('\n') };
}

/**
 * Where the audit log goes and how its writes are made to fail: 'tmpfs' (a 256 KiB tmpfs filled
 * up by another file: ENOSPC; needs mount rights) or 'fsize' (RLIMIT_FSIZE of the running tgate
 * lowered to the file's size: EFBIG; tgate is started with SIGXFSZ ignored, see the last test).
 */
function diskFault(dir) {
  const want = process.env.TGATE_FAULTS_DISK || 'auto';
  if (want !== 'fsize' && process.getuid && process.getuid() === 0) {
    const mnt = path.join(dir, 'mnt');
    fs.mkdirSync(mnt);
    const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mnt], { encoding: 'utf8', timeout: 10_000 });
    if (r.status === 0) {
      const filler = path.join(mnt, 'filler');
      cleanups.push(() => spawnSync('umount', ['-l', mnt], { timeout: 10_000 }));
      return {
        method: 'tmpfs (ENOSPC)',
        file: path.join(mnt, 'audit.jsonl'),
        wrapper: [],
        fill() {
          const fd = fs.openSync(filler, 'w');
          const block = Buffer.alloc(4096, 0x61);
          try {
            for (let i = 0; i < 1024; i++) fs.writeSync(fd, block);
            throw new Error('the tmpfs did not fill up');
          } catch (e) {
            if (e.code !== 'ENOSPC') throw e;
          } finally {
            fs.closeSync(fd);
          }
        },
        restore() {
          fs.rmSync(filler, { force: true });
        },
      };
    }
    if (want === 'tmpfs') throw new Error(`cannot mount a tmpfs: ${r.stderr}`);
  }
  const file = path.join(dir, 'audit.jsonl');
  let pid = 0;
  return {
    method: 'RLIMIT_FSIZE (EFBIG)',
    file,
    // SIGXFSZ ignored (inherited across exec), so that a write past the limit fails with EFBIG.
    wrapper: ['bash', '-c', 'trap "" XFSZ; exec "$0" "$@"'],
    fill(tgPid) {
      pid = tgPid;
      proc.setSoftLimit(pid, 'fsize', fs.statSync(file).size);
    },
    restore() {
      proc.setSoftLimit(pid, 'fsize', 'unlimited');
    },
  };
}

function auditEntries(file) {
  return fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** tgate with API keys, authorization enforced, and the audit log at file (every decision). */
async function auditTgate(file, policy, wrapper, fe, { mayDie = false } = {}) {
  const dir = h.tempDir('tgate-fault-keys-');
  const reader = apiKey('reader', ['team-a:read']);
  const keysFile = path.join(dir, 'keys.yaml');
  fs.writeFileSync(keysFile, `keys:\n${reader.entry}\n`);
  const yaml = [
    'authentication:',
    '  require: [api_key]',
    `  api_keys_file: ${JSON.stringify(keysFile)}`,
    'authorization:',
    '  mode: enforce',
    'audit:',
    `  file: ${JSON.stringify(file)}`,
    '  include_allows: true',
    `  on_write_failure: ${policy}`,
  ].join('\n');
  const tg = own(await h.startTgate({ upstream: fe.port, extraYaml: yaml, wrapper }), { mayDie });
  const s = await h.h2connect(tg.port);
  cleanups.push(() => h.closeSessions([s]));
  const call = async (ns) => {
    const r = await h.unaryCall(s, DESCRIBE, h.describeNs(ns), { authorization: `Bearer ${reader.key}` }, { timeoutMs: 10_000 * h.SLOW });
    return { status: r.status, message: r.message ? decodeURIComponent(r.message) : '' };
  };
  return { tg, s, call };
}

const WRITE_FAILED = /audit: write [^\n]*: (No space left on device|File too large)/;

async function auditFaultTest(policy) {
  const fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => fe.close());
  const fault = diskFault(h.tempDir('tgate-fault-disk-'));
  const { tg, s, call } = await auditTgate(fault.file, policy, fault.wrapper, fe);
  assert.equal((await call('team-a')).status, 0);
  assert.equal((await call('before-full')).status, 7);
  await h.waitFor(() => auditEntries(fault.file).some((e) => e.namespace === 'before-full'), 3000 * h.SLOW, 'the denial to be written');

  fault.fill(tg.pid);
  // The first entries may still fit (tmpfs: the rest of the file's last page).
  let n = 0;
  await h.waitFor(async () => {
    const d = await call(`filling-${n++}`);
    assert.equal(d.status, 7, `a denial while the disk fills up: ${JSON.stringify(d)}`);
    return WRITE_FAILED.test(tg.log());
  }, 15_000 * h.SLOW, `an audit write to fail (${fault.method})`, 100);

  const outcome = { policy, method: fault.method, denied: [], allowed: [], ready: [] };
  if (policy === 'fail_closed') {
    await h.waitFor(async () => (await h.httpGet(tg.adminPort, '/health/ready')).status === 503, 3000 * h.SLOW, '/health/ready 503');
    for (let i = 0; i < 5; i++) {
      const d = await call(`while-full-${i}`);
      const a = await call('team-a');
      const rd = await h.httpGet(tg.adminPort, '/health/ready');
      outcome.denied.push(d.status);
      outcome.allowed.push(`${a.status} ${a.message}`);
      outcome.ready.push(rd.status);
      assert.equal(d.status, 7, 'a denied call still gets its denial');
      assert.equal(a.status, 14, `an allowed call that cannot be recorded is refused: ${JSON.stringify(a)}`);
      assert.match(a.message, /audit log unavailable/);
      assert.equal(rd.status, 503);
      assert.match(rd.body, /audit log cannot be written/);
    }
    assert.match(tg.log(), /refusing new entries meanwhile/);
  } else {
    for (let i = 0; i < 5; i++) {
      const d = await call(`while-full-${i}`);
      const a = await call('team-a');
      const rd = await h.httpGet(tg.adminPort, '/health/ready');
      outcome.denied.push(d.status);
      outcome.allowed.push(`${a.status} ${a.message}`);
      outcome.ready.push(rd.status);
      assert.equal(d.status, 7, 'a denied call still gets its denial');
      assert.equal(a.status, 0, `fail_open: an allowed call proceeds: ${JSON.stringify(a)}`);
      assert.equal(rd.status, 200, `fail_open: still ready: ${rd.body}`);
    }
  }

  // Space again: writing resumes within the retry interval (1 s), the chain intact.
  fault.restore();
  await h.waitFor(() => /audit: writing [^\n]* works again/.test(tg.log()), 5000 * h.SLOW, 'the audit log to be written again', 100);
  assert.equal((await h.httpGet(tg.adminPort, '/health/ready')).status, 200);
  assert.equal((await call('team-a')).status, 0);
  assert.equal((await call('after-restore')).status, 7);
  await h.waitFor(() => auditEntries(fault.file).some((e) => e.namespace === 'after-restore'), 3000 * h.SLOW, 'entries after the restore');
  const entries = auditEntries(fault.file);
  const namespaces = new Set(entries.map((e) => e.namespace));
  // Denials happen whatever the log's state: in both policies they are queued while the disk is
  // full and written once it is not (fail_closed refuses only what it would have to allow).
  for (let i = 0; i < 5; i++) assert.ok(namespaces.has(`while-full-${i}`), `${policy}: the denial while-full-${i} was written later`);
  const deniedWhileFull = [0, 1, 2, 3, 4].filter((i) => namespaces.has(`while-full-${i}`)).length;
  const seqs = entries.map((e) => e.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => seqs[0] + i), 'entries are consecutive');
  const v = spawnSync(h.TGATE_BIN, ['audit', 'verify', fault.file], { encoding: 'utf8' });
  assert.equal(v.status, 0, `tgate audit verify: ${v.stdout}${v.stderr}`);
  console.log(`# audit ${policy} via ${fault.method}: while full: denied ${outcome.denied.join(',')}; allowed ` +
    `${[...new Set(outcome.allowed)].join(' | ')}; ready ${[...new Set(outcome.ready)].join(',')}; ` +
    `${entries.length} entries after the restore, chain verified; ${deniedWhileFull} of the 5 denials made while full are in the log`);
  await h.closeSessions([s]);
  await tg.stop();
}

test('audit log disk full, fail_closed: denials still answered, allowed calls 14, unready; then resumes', { timeout: 60_000 * h.SLOW }, async () => {
  await auditFaultTest('fail_closed');
});

test('audit log disk full, fail_open: calls go on, ready; the queued entries are written once space is back', { timeout: 60_000 * h.SLOW }, async () => {
  await auditFaultTest('fail_open');
});

test('a file size limit (RLIMIT_FSIZE) reached by the audit log: tgate survives (SIGXFSZ) and fails closed', {
  timeout: 60_000 * h.SLOW,
}, async () => {
  const fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => fe.close());
  const file = path.join(h.tempDir('tgate-fault-fsize-'), 'audit.jsonl');
  const { tg, s, call } = await auditTgate(file, 'fail_closed', [], fe, { mayDie: true });
  assert.equal((await call('before-limit')).status, 7);
  await h.waitFor(() => auditEntries(file).some((e) => e.namespace === 'before-limit'), 3000 * h.SLOW, 'the denial to be written');
  proc.setSoftLimit(tg.pid, 'fsize', fs.statSync(file).size);
  const denied = call('past-limit');
  const exit = await Promise.race([tg.exited, h.sleep(2000 * h.SLOW).then(() => null)]);
  assert.equal(exit, null, `tgate died: ${JSON.stringify(exit)}; last log lines:\n${tg.log().slice(-1500)}`);
  assert.equal((await denied).status, 7);
  assert.match(tg.log(), /audit: write [^\n]*: File too large/);
  assert.equal((await h.httpGet(tg.adminPort, '/health/ready')).status, 503);
  proc.setSoftLimit(tg.pid, 'fsize', 'unlimited');
  await h.closeSessions([s]);
  await tg.stop();
});

// ---------------------------------------------------------------------------------------------
// File-descriptor exhaustion

/**
 * Starts tgate with one client connection that has made a call, lowers its RLIMIT_NOFILE to
 * what it has open plus `slack`, and opens raw connections until accept fails (EMFILE is
 * logged). Returns {tg, s, flood, limit, original, call}.
 */
async function atFdLimit(fe, slack = 6) {
  const tg = own(await h.startTgate({ upstream: fe.port, workers: 2 }));
  const s = await h.h2connect(tg.port);
  cleanups.push(() => h.closeSessions([s]));
  const call = async (sess, ns) => {
    const t0 = Date.now();
    const r = await h.unaryCall(sess, DESCRIBE, h.describeNs(ns), {}, { timeoutMs: 5000 * h.SLOW });
    return { status: r.status, message: r.message, ms: Date.now() - t0 };
  };
  // Calls on both workers' upstream pools: a few in parallel on the one connection.
  for (const r of await Promise.all(Array.from({ length: 4 }, (_, i) => call(s, `warm-${i}`)))) assert.equal(r.status, 0);
  const original = proc.getLimit(tg.pid, 'nofile').soft;
  const limit = proc.fdCount(tg.pid) + slack;
  proc.setSoftLimit(tg.pid, 'nofile', limit);
  const restore = () => {
    if (tg.proc.exitCode === null && tg.proc.signalCode === null) proc.setSoftLimit(tg.pid, 'nofile', original);
  };
  cleanups.push(restore);
  const flood = [];
  cleanups.push(() => flood.forEach((c) => c.destroy()));
  for (let i = 0; i < slack + 10; i++) {
    const c = net.connect({ host: '127.0.0.1', port: tg.port });
    c.on('error', () => {});
    flood.push(c);
  }
  await h.waitFor(() => /accept failed: Too many open files/.test(tg.log()), 5000 * h.SLOW, 'accept to fail with EMFILE');
  return { tg, s, flood, limit, restore, call };
}

test('file descriptors exhausted: tgate stays up, serves its connections, accepts again once some close', { timeout: 60_000 * h.SLOW }, async () => {
  const fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => fe.close());
  const { tg, s, flood, limit, restore, call } = await atFdLimit(fe);
  const atLimit = proc.fdCount(tg.pid);
  assert.ok(atLimit >= limit - 1, `tgate has ${atLimit} descriptors open at a limit of ${limit}`);
  // Calls on the connection it already has keep being served.
  const during = [];
  for (let i = 0; i < 10; i++) {
    const r = await call(s, `at-limit-${i}`);
    assert.equal(r.status, 0, `a call on an existing connection at the fd limit: ${JSON.stringify(r)}`);
    during.push(r.ms);
  }
  assert.ok(Math.max(...during) < 2000 * h.SLOW, `calls at the fd limit took up to ${Math.max(...during)} ms`);
  assert.equal(tg.proc.exitCode, null, 'tgate is alive');
  assert.equal(tg.proc.signalCode, null, 'tgate is alive');
  // Some connections close: new ones are accepted (and served) again.
  for (const c of flood) c.destroy();
  const t0 = Date.now();
  const s2 = await h.waitFor(() => h.h2connect(tg.port, { ms: 1000 }).then((x) => h.unaryCall(x, DESCRIBE, h.describeNs('after'), {}, { timeoutMs: 1000 })
    .then((r) => (r.status === 0 ? x : (x.destroy(), null)), () => (x.destroy(), null)), () => null),
  10_000 * h.SLOW, 'a new connection to be served after descriptors were freed', 200);
  const recoverMs = Date.now() - t0;
  cleanups.push(() => h.closeSessions([s2]));
  assert.equal((await call(s, 'old-again')).status, 0);
  const lines = (tg.log().match(/accept failed: Too many open files/g) || []).length;
  console.log(`# fd limit ${limit}: ${atLimit} open; calls on the existing connection took ${Math.min(...during)}..${Math.max(...during)} ms; ` +
    `"accept failed" logged ${lines} times; a new connection was served ${recoverMs} ms after the flood closed`);
  restore();
  await h.closeSessions([s, s2]);
  await tg.stop();
});

test('file descriptors exhausted: the accept failure is logged without a busy loop', {
  timeout: 60_000 * h.SLOW,
}, async () => {
  const fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => fe.close());
  const { tg, s, flood, limit, restore } = await atFdLimit(fe);
  const WINDOW_MS = 2000;
  const count = () => (tg.log().match(/accept failed: Too many open files/g) || []).length;
  await h.sleep(200);
  const cpu0 = proc.cpuSeconds(tg.pid);
  const lines0 = count();
  await h.sleep(WINDOW_MS);
  const cpu = proc.cpuSeconds(tg.pid) - cpu0;
  const lines = count() - lines0;
  for (const c of flood) c.destroy();
  restore();
  console.log(`# at the fd limit (${limit}) for ${WINDOW_MS} ms: tgate used ${cpu.toFixed(2)} s of CPU and logged ` +
    `"accept failed" ${lines} times (${lines0} before)`);
  await h.closeSessions([s]);
  await tg.stop();
  // Generous: an idle tgate uses ~0; a loop retrying accept uses a whole core.
  assert.ok(cpu < 0.2 * (WINDOW_MS / 1000), `tgate used ${cpu.toFixed(2)} s of CPU in ${WINDOW_MS} ms at the fd limit`);
  assert.ok(lines <= 25, `"accept failed" logged ${lines} times in ${WINDOW_MS} ms`);
});
