'use strict';
// Operating tgate: --check-config and --version, the admin health endpoints, graceful
// shutdown on SIGTERM and SIGINT (drain, grace period, second signal), non-gRPC requests, and
// `make install`.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { startFrontend } = require('../frontend/frontend.js');
const h = require('./lib/harness.js');

const T = 20_000 * h.SLOW;
const DESCRIBE = `/${h.WS}/DescribeNamespace`;

function runTgate(args) {
  const r = spawnSync(h.TGATE_BIN, args, { cwd: h.ROOT, encoding: 'utf8', timeout: 10_000 * h.SLOW });
  assert.ifError(r.error);
  return r;
}

/** Every sanitizer report must be absent from a short run's output too. */
function assertNoSanitizerReport(r) {
  for (const s of ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer']) {
    assert.ok(!r.stderr.includes(s), `sanitizer report:\n${r.stderr}`);
  }
}

describe('command line', () => {
  let dir;
  before(() => {
    dir = h.tempDir('tgate-ops-');
  });

  test('--version prints the version from VERSION', { timeout: T }, () => {
    const r = runTgate(['--version']);
    assertNoSanitizerReport(r);
    assert.equal(r.status, 0);
    const version = fs.readFileSync(path.join(h.ROOT, 'VERSION'), 'utf8').trim();
    assert.match(r.stdout, new RegExp(`^tgate ${version.replace(/\./g, '\\.')} \\(nghttp2 [\\d.]+, OpenSSL [^,]+, libevent [^)]+\\)\\n$`));
  });

  test('--check-config accepts a valid file (and the certificates it names)', { timeout: T }, async () => {
    const f = path.join(dir, 'valid.yaml');
    fs.writeFileSync(f, h.tgateConfig({ port: 7233, adminPort: 9233, upstream: 7234, tls: true, upstreamTls: true }));
    const r = runTgate(['--check-config', '-c', f]);
    assertNoSanitizerReport(r);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /is valid/);
  });

  test('--check-config rejects an invalid file with FILE:LINE:COL for every problem', { timeout: T }, () => {
    const f = path.join(dir, 'invalid.yaml');
    fs.writeFileSync(
      f,
      [
        'listen:',
        '  address: "127.0.0.1:7233"',
        '  bogus_key: 1',
        'upstream:',
        '  addresses: ["127.0.0.1:7234"]',
        'workers: "many"',
        'shutdown_grace_period: 10x',
        '',
      ].join('\n'),
    );
    const r = runTgate(['--check-config', '-c', f]);
    assertNoSanitizerReport(r);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:3: .*bogus_key`, 'm'));
    assert.match(r.stderr, /:6:10: .*workers/);
    assert.match(r.stderr, /:7:24: .*shutdown_grace_period/);
    assert.match(r.stderr, /is invalid/);
    assert.equal(r.stdout, '');
  });

  test('--check-config reports a YAML syntax error with its position', { timeout: T }, () => {
    const f = path.join(dir, 'syntax.yaml');
    fs.writeFileSync(f, 'listen:\n  address: [1, 2\nupstream: x\n');
    const r = runTgate(['--check-config', '-c', f]);
    assertNoSanitizerReport(r);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /syntax\.yaml:\d+:\d+: YAML syntax error/);
  });

  test('--check-config fails on a certificate that cannot be loaded', { timeout: T }, () => {
    const f = path.join(dir, 'nocert.yaml');
    fs.writeFileSync(f, h.tgateConfig({ port: 7233, upstream: 7234, tls: { cert_file: path.join(dir, 'missing.pem'), key_file: path.join(dir, 'missing.key') } }));
    const r = runTgate(['--check-config', '-c', f]);
    assertNoSanitizerReport(r);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /missing\.pem/);
  });

  test('--check-config reports every file that does not load, each at the key that named it', { timeout: T }, () => {
    const c = h.certs();
    const garbage = path.join(dir, 'garbage-ca.pem');
    fs.writeFileSync(garbage, 'not a certificate\n');
    const f = path.join(dir, 'badfiles.yaml');
    const yaml = h.tgateConfig({
      port: 7233,
      upstream: 7234,
      tls: { cert_file: path.join(dir, 'absent.pem'), key_file: c.file('server.key') },
      // a CA bundle without a certificate, and a key that belongs to another certificate
      upstreamTls: { ca_file: garbage, cert_file: c.file('worker-a.pem'), key_file: c.file('worker-b.key') },
    });
    fs.writeFileSync(f, yaml);
    const lines = yaml.split('\n');
    /** "LINE:COL" of the key under section (listen or upstream). */
    const at = (section, key) => {
      const from = lines.indexOf(`${section}:`);
      const i = lines.findIndex((l, j) => j > from && l.trimStart().startsWith(`${key}:`));
      return `${i + 1}:${lines[i].indexOf(key) + 1}`;
    };
    const r = runTgate(['--check-config', '-c', f]);
    assertNoSanitizerReport(r);
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    const esc = f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const want = [
      [at('listen', 'cert_file'), /listen\.tls\.cert_file: cannot load certificate .*absent\.pem: No such file/],
      [at('upstream', 'ca_file'), /upstream\.tls\.ca_file: .*garbage-ca\.pem/],
      [at('upstream', 'key_file'), /upstream\.tls\.key_file: the private key in .*worker-b\.key does not match the certificate in .*worker-a\.pem/],
    ];
    const problems = r.stderr.split('\n').filter((l) => new RegExp(`${esc}:\\d+:\\d+: `).test(l));
    assert.equal(problems.length, want.length, `one line per problem:\n${r.stderr}`);
    for (const [pos, re] of want) {
      const line = problems.find((l) => l.includes(`${f}:${pos}: `));
      assert.ok(line, `a problem at ${pos}:\n${r.stderr}`);
      assert.match(line, re);
    }
    assert.match(r.stderr, /is invalid/);
  });

  test('make install DESTDIR=... PREFIX=/usr puts an executable tgate that runs', { timeout: 300_000 }, () => {
    const dest = h.tempDir('tgate-install-');
    const m = spawnSync('make', ['-s', 'install', `DESTDIR=${dest}`, 'PREFIX=/usr'], { cwd: h.ROOT, encoding: 'utf8', timeout: 280_000 });
    assert.ifError(m.error);
    assert.equal(m.status, 0, `make install failed:\n${m.stdout}${m.stderr}`);
    const bin = path.join(dest, 'usr', 'bin', 'tgate');
    const st = fs.statSync(bin);
    assert.ok(st.isFile(), `${bin} is a file`);
    assert.equal(st.mode & 0o111, 0o111, `${bin} is executable by all (mode ${(st.mode & 0o777).toString(8)})`);
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    assert.ifError(v.error);
    assert.equal(v.status, 0, v.stderr);
    const version = fs.readFileSync(path.join(h.ROOT, 'VERSION'), 'utf8').trim();
    assert.match(v.stdout, new RegExp(`^tgate ${version.replace(/\./g, '\\.')} `));
  });
});

describe('admin health', () => {
  let fe;
  const tgates = [];

  before(async () => {
    fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  });

  after(async () => {
    try {
      await h.stopAll(tgates);
    } finally {
      if (fe) await fe.close();
    }
  });

  test('live 200; ready 200 with an upstream connection', { timeout: T }, async () => {
    const tg = await h.startTgate({ upstream: fe.port });
    tgates.push(tg);
    const live = await h.httpGet(tg.adminPort, '/health/live');
    assert.equal(live.status, 200);
    const ready = await h.httpGet(tg.adminPort, '/health/ready');
    assert.equal(ready.status, 200);
    assert.match(ready.body, /ready/);
    assert.equal((await h.httpGet(tg.adminPort, '/nope')).status, 404);
  });

  test('live 200; ready 503 with a reason when no upstream is reachable', { timeout: T }, async () => {
    const tg = await h.startTgate({ upstream: await h.freePort(), waitReady: false });
    tgates.push(tg);
    assert.equal((await h.httpGet(tg.adminPort, '/health/live')).status, 200);
    const ready = await h.httpGet(tg.adminPort, '/health/ready');
    assert.equal(ready.status, 503);
    assert.match(ready.body, /not ready: .*upstream/);
  });
});

describe('graceful shutdown', () => {
  let fe;
  const tgates = [];
  const sessions = [];

  before(async () => {
    fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  });

  after(async () => {
    await h.closeSessions(sessions);
    try {
      await h.stopAll(tgates);
    } finally {
      if (fe) await fe.close();
    }
  });

  test('SIGTERM: a call in flight completes, new connections are refused, exit 0 after the call', { timeout: T }, async () => {
    const tg = await h.startTgate({ upstream: fe.port, grace: '5s' });
    tgates.push(tg);
    const s = await h.h2connect(tg.port);
    sessions.push(s);
    let goaway = null;
    s.on('goaway', (code) => (goaway = code));
    const call = h.unaryCall(s, DESCRIBE, h.describeNs('drain'), { 'x-test-delay-ms': '1500' }).then((r) => ({ ...r, at: Date.now() }));
    await fe.waitForCall((c) => c.namespace === 'drain', 3000);
    await h.sleep(200);
    const sigAt = Date.now();
    tg.proc.kill('SIGTERM');
    await h.waitFor(async () => !(await h.canConnect(tg.port, 200)), 1000 * h.SLOW, 'new connections to be refused');
    await h.waitFor(() => goaway !== null, 1000 * h.SLOW, 'GOAWAY on the open connection');
    assert.equal(goaway, 0, 'GOAWAY NO_ERROR');
    const r = await call;
    assert.equal(r.status, 0, `the call in flight completed (status ${r.status} ${r.message || ''}, rst ${r.rstCode})`);
    assert.equal(h.decodeResponse('workflowservice.v1.DescribeNamespaceResponse', r.data).namespaceInfo.name, 'drain');
    assert.ok(r.at - sigAt >= 1000, 'the call was still running when SIGTERM came');
    const exit = await h.within(tg.exited, 3000 * h.SLOW, 'tgate exit');
    assert.ok(exit.time >= r.at - 50, 'tgate exited after the call completed');
    assert.ok(exit.time - r.at < 2000 * h.SLOW, `tgate exited ${exit.time - r.at} ms after the call`);
    await tg.stop(); // exit status 0 and no sanitizer report
    assert.match(tg.log(), /SIGTERM: stopping/);
  });

  test('SIGINT: a call in flight completes, then tgate exits 0', { timeout: T }, async () => {
    const tg = await h.startTgate({ upstream: fe.port, grace: '5s' });
    tgates.push(tg);
    const s = await h.h2connect(tg.port);
    sessions.push(s);
    const call = h.unaryCall(s, DESCRIBE, h.describeNs('drain-int'), { 'x-test-delay-ms': '1500' }).then((r) => ({ ...r, at: Date.now() }));
    await fe.waitForCall((c) => c.namespace === 'drain-int', 3000);
    await h.sleep(200);
    const sigAt = Date.now();
    tg.proc.kill('SIGINT');
    await h.waitFor(async () => !(await h.canConnect(tg.port, 200)), 1000 * h.SLOW, 'new connections to be refused');
    const r = await call;
    assert.equal(r.status, 0, `the call in flight completed (status ${r.status} ${r.message || ''}, rst ${r.rstCode})`);
    assert.equal(h.decodeResponse('workflowservice.v1.DescribeNamespaceResponse', r.data).namespaceInfo.name, 'drain-int');
    assert.ok(r.at - sigAt >= 1000, 'the call was still running when SIGINT came');
    const exit = await h.within(tg.exited, 3000 * h.SLOW, 'tgate exit');
    assert.ok(exit.time >= r.at - 50, 'tgate exited after the call completed');
    await tg.stop('SIGINT'); // exit status 0 and no sanitizer report
    assert.match(tg.log(), /SIGINT: stopping/);
  });

  test('a call still running when the grace period ends is cut; tgate exits 0 soon after', { timeout: T }, async () => {
    const tg = await h.startTgate({ upstream: fe.port, grace: '1s' });
    tgates.push(tg);
    const s = await h.h2connect(tg.port);
    sessions.push(s);
    s.on('error', () => {});
    const call = h.unaryCall(s, DESCRIBE, h.describeNs('cut'), { 'x-test-delay-ms': '8000' }, { timeoutMs: 8000 }).then((r) => ({ ...r, at: Date.now() }));
    await fe.waitForCall((c) => c.namespace === 'cut', 3000);
    const sigAt = Date.now();
    tg.proc.kill('SIGTERM');
    const r = await call;
    assert.ok(r.at - sigAt >= 900, `cut after the grace period (${r.at - sigAt} ms)`);
    assert.ok(r.at - sigAt < 3000 * h.SLOW, `cut soon after the grace period (${r.at - sigAt} ms)`);
    assert.ok(r.status !== 0, 'the call did not succeed');
    assert.ok(r.status !== null || r.error || r.rstCode, 'the client saw an error, a reset or a status');
    const exit = await h.within(tg.exited, 3000 * h.SLOW, 'tgate exit');
    assert.ok(exit.time - sigAt < 3000 * h.SLOW, `exited ${exit.time - sigAt} ms after SIGTERM`);
    await tg.stop();
    const rec = fe.calls.find((c) => c.namespace === 'cut');
    await h.waitFor(() => rec.cancelled, 3000, 'the frontend to see the call cancelled');
  });

  test('a second SIGTERM closes everything at once', { timeout: T }, async () => {
    const tg = await h.startTgate({ upstream: fe.port, grace: '30s' });
    tgates.push(tg);
    const s = await h.h2connect(tg.port);
    sessions.push(s);
    const call = h.unaryCall(s, DESCRIBE, h.describeNs('forced'), { 'x-test-delay-ms': '8000' }, { timeoutMs: 8000 });
    await fe.waitForCall((c) => c.namespace === 'forced', 3000);
    tg.proc.kill('SIGTERM');
    await h.waitFor(() => /SIGTERM: stopping/.test(tg.log()), 2000, 'the first SIGTERM to be handled');
    const t0 = Date.now();
    tg.proc.kill('SIGTERM');
    const exit = await h.within(tg.exited, 3000 * h.SLOW, 'tgate exit after the second SIGTERM');
    assert.ok(exit.time - t0 < 2000 * h.SLOW);
    const r = await call;
    assert.notEqual(r.status, 0);
    await tg.stop();
  });
});

describe('requests that are not gRPC', () => {
  let fe;
  let tg;
  let s;

  before(async () => {
    fe = await startFrontend({ host: '127.0.0.1', port: 0 });
    tg = await h.startTgate({ upstream: fe.port });
    s = await h.h2connect(tg.port);
  });

  after(async () => {
    await h.closeSessions([s]);
    try {
      if (tg) await tg.stop();
    } finally {
      if (fe) await fe.close();
    }
  });

  test('GET gets 405', { timeout: T }, async () => {
    const r = await h.request(s, { ':method': 'GET', ':path': DESCRIBE }, null);
    assert.equal(r.headers && r.headers[':status'], 405);
  });

  test('a POST with a body and a non-gRPC content-type gets 415', { timeout: T }, async () => {
    const r = await h.request(s, { ':method': 'POST', ':path': DESCRIBE, 'content-type': 'application/json' }, Buffer.from('{"namespace":"x"}'));
    assert.ok(r.headers, `response headers received (got none; stream reset with code ${r.rstCode})`);
    assert.equal(r.headers[':status'], 415);
  });

  test('a POST without content-type gets 415', { timeout: T }, async () => {
    const r = await h.request(s, { ':method': 'POST', ':path': DESCRIBE }, null);
    assert.equal(r.headers && r.headers[':status'], 415);
  });

  test('a PUT with a body gets 405', { timeout: T }, async () => {
    const r = await h.request(s, { ':method': 'PUT', ':path': DESCRIBE, 'content-type': 'application/grpc' }, h.grpcFrame(h.describeNs('x')));
    assert.ok(r.headers, `response headers received (got none; stream reset with code ${r.rstCode})`);
    assert.equal(r.headers[':status'], 405);
  });

  test('none of them reached the frontend; the connection still serves gRPC', { timeout: T }, async () => {
    const r = await h.unaryCall(s, DESCRIBE, h.describeNs('after-non-grpc'));
    assert.equal(r.status, 0);
    assert.deepEqual(fe.calls.map((c) => c.namespace), ['after-non-grpc']);
  });
});
