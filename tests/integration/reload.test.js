'use strict';
// Hot reload: SIGHUP and changes to watched files swap the whole configuration for new calls;
// calls in flight keep the one they started under; an invalid configuration is refused as a
// whole (logged with FILE:LINE:COL, counted, audited); a rotated server certificate is
// presented by the next handshake; and 20 reloads, good and bad alternating, under continuous
// load fail no call and drop no connection.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const tls = require('node:tls');
const { startFrontend } = require('../frontend/frontend.js');
const h = require('./lib/harness.js');

const T = 60_000 * h.SLOW;
const WS = `/${h.WS}`;

let fe, tg, dir, keysFile, auditFile, certFile, keyFile, base;
const keys = {};

function newKey(subject, perms) {
  const out = execFileSync(h.TGATE_BIN, ['apikey', 'new', '--subject', subject,
    ...perms.flatMap((p) => ['--permission', p])], { encoding: 'utf8' });
  return { key: /#\s+(tgk_\S+)/.exec(out)[1], entry: out.split('\n').filter((l) => !l.startsWith('#')).join('\n') };
}

function writeKeys(names) {
  const tmp = `${keysFile}.tmp`;
  fs.writeFileSync(tmp, `keys:\n${names.map((n) => keys[n].entry).join('\n')}\n`);
  fs.renameSync(tmp, keysFile); // atomically, as a ConfigMap/Secret update is
}

/** The sections under test; disabled: methods denied to everyone; level: a comment (a
 * configuration that differs only in bytes). */
function extra({ disabled = [], level = 'info' } = {}) {
  return [
    'authentication:',
    '  require: [api_key]',
    `  api_keys_file: ${JSON.stringify(keysFile)}`,
    'authorization:',
    '  mode: enforce',
    ...(disabled.length ? [`  disabled_methods: ${JSON.stringify(disabled)}`] : []),
    'audit:',
    `  file: ${JSON.stringify(auditFile)}`,
    'reload:',
    '  watch_interval: 100ms',
    `# level ${level}`,
  ].join('\n');
}

function writeConfig(text) {
  const tmp = `${tg.configFile}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, tg.configFile);
}

async function metrics() {
  const r = await h.httpGet(tg.adminPort, '/metrics');
  assert.equal(r.status, 200);
  return r.body;
}

function metric(body, name) {
  const line = body.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : NaN;
}

const OK = 'tgate_config_reloads_total{result="success"}';
const BAD = 'tgate_config_reloads_total{result="failure"}';

/** Sends SIGHUP (unless signal is false) and waits until the reload counters moved by want. */
async function reload({ signal = true, want }) {
  const m0 = await metrics();
  const ok0 = metric(m0, OK);
  const bad0 = metric(m0, BAD);
  if (signal) tg.proc.kill('SIGHUP');
  let last;
  await h.waitFor(async () => {
    last = await metrics();
    return metric(last, OK) + metric(last, BAD) > ok0 + bad0;
  }, 10_000 * h.SLOW, 'a reload to finish');
  assert.equal(metric(last, OK) - ok0, want === 'success' ? 1 : 0, `reload result\n${tg.log().slice(-3000)}`);
  assert.equal(metric(last, BAD) - bad0, want === 'failure' ? 1 : 0, `reload result\n${tg.log().slice(-3000)}`);
  return last;
}

let sess;
async function session() {
  if (!sess || sess.closed || sess.destroyed) {
    sess = await h.h2connect(tg.port, { tls: { ca: h.certs().ca } });
  }
  return sess;
}

async function describe(who, ns = 'team-a', extraHeaders = {}, opts = {}) {
  return h.unaryCall(await session(), `${WS}/DescribeNamespace`, h.describeNs(ns),
    { authorization: `Bearer ${keys[who].key}`, ...extraHeaders }, opts);
}

before(async () => {
  dir = h.tempDir('tgate-reload-');
  keysFile = path.join(dir, 'keys.yaml');
  auditFile = path.join(dir, 'audit.jsonl');
  certFile = path.join(dir, 'server.pem');
  keyFile = path.join(dir, 'server.key');
  const c = h.certs();
  fs.copyFileSync(c.file('server.pem'), certFile);
  fs.copyFileSync(c.file('server.key'), keyFile);
  keys.a = newKey('reader-a', ['team-a:read', 'team-a:worker']);
  keys.b = newKey('reader-b', ['team-b:read']);
  writeKeys(['a']);
  fe = await startFrontend({ host: '127.0.0.1', port: 0, longPollMs: 60_000 });
  const ex = extra();
  tg = await h.startTgate({ upstream: fe.port, tls: { cert_file: certFile, key_file: keyFile }, extraYaml: ex });
  base = fs.readFileSync(tg.configFile, 'utf8').replace(ex, '');
  assert.ok(base.includes('listen:') && !base.includes('audit:'));
});

after(async () => {
  if (sess) await h.closeSessions([sess]);
  await h.stopAll([tg]);
  if (fe) await fe.close();
});

test('SIGHUP: a new policy applies to new calls; metrics and the audit log record it', { timeout: T }, async () => {
  assert.equal((await describe('a')).status, 0);
  writeConfig(base + extra({ disabled: ['WorkflowService/DescribeNamespace'] }));
  const m = await reload({ want: 'success' });
  assert.equal(metric(m, 'tgate_config_generation'), 2);
  assert.equal(metric(m, 'tgate_config_last_reload_successful'), 1);
  assert.ok(metric(m, 'tgate_config_last_reload_success_timestamp_seconds') > Date.now() / 1000 - 60);
  const denied = await describe('a');
  assert.equal(denied.status, 7, 'DescribeNamespace is now disabled');
  writeConfig(base + extra());
  await reload({ want: 'success' });
  assert.equal((await describe('a')).status, 0);
  const entries = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const reloads = entries.filter((e) => e.event === 'config_reload');
  assert.ok(reloads.length >= 2, JSON.stringify(entries.slice(-3)));
  const last = reloads[reloads.length - 1];
  assert.equal(last.result, 'applied');
  assert.equal(last.trigger, 'SIGHUP');
  assert.equal(last.config_sha256, crypto.createHash('sha256').update(fs.readFileSync(tg.configFile)).digest('hex'));
  execFileSync(h.TGATE_BIN, ['audit', 'verify', auditFile]);
});

test('an invalid configuration is refused as a whole: FILE:LINE:COL logged, counted, the old one serves', { timeout: T }, async () => {
  // A good policy change and an error in the same file: nothing of it applies.
  const bad = `${base}${extra({ disabled: ['WorkflowService/DescribeNamespace'] })}\nlisten_typo: 1\n`;
  writeConfig(bad);
  const line = bad.split('\n').indexOf('listen_typo: 1') + 1;
  const m = await reload({ want: 'failure' });
  assert.equal(metric(m, 'tgate_config_last_reload_successful'), 0);
  assert.match(tg.log(), new RegExp(`reload refused: ${tg.configFile.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:${line}:1: `));
  assert.equal((await describe('a')).status, 0, 'the running configuration still allows it');

  // Settings only a restart can change are refused with the reason.
  writeConfig(base.replace(/address: "127\.0\.0\.1:(\d+)"/, 'address: "127.0.0.1:1"') + extra());
  await reload({ want: 'failure' });
  assert.match(tg.log(), /listen\.address changed: that takes a restart/);

  // A certificate file that does not load is refused too.
  const good = fs.readFileSync(keyFile);
  fs.writeFileSync(`${keyFile}.tmp`, 'not a key');
  fs.renameSync(`${keyFile}.tmp`, keyFile);
  writeConfig(base + extra());
  await reload({ want: 'failure' });
  assert.match(tg.log(), /reload refused: \S+:\d+:\d+: listen\.tls\.key_file: /);
  fs.writeFileSync(`${keyFile}.tmp`, good);
  fs.renameSync(`${keyFile}.tmp`, keyFile);
  await reload({ signal: false, want: 'success' }); // the watch sees the key file come back
  assert.equal((await describe('a')).status, 0);
  const last = fs.readFileSync(auditFile, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    .filter((e) => e.event === 'config_reload');
  assert.ok(last.some((e) => e.result === 'refused' && /listen_typo/.test(e.reason)), 'the refusal is audited with its reason');
});

test('a change to a watched file (the API keys file) reloads without a signal', { timeout: T }, async () => {
  assert.equal((await describe('b', 'team-b')).status, 16, 'key b is not known yet');
  writeKeys(['a', 'b']);
  await reload({ signal: false, want: 'success' });
  assert.equal((await describe('b', 'team-b')).status, 0);
  assert.match(tg.log(), /reload \(a watched file changed\)/);
  writeKeys(['a']);
  await reload({ signal: false, want: 'success' });
  assert.equal((await describe('b', 'team-b')).status, 16, 'a removed key stops working');
});

test('a call in flight keeps the configuration it started under', { timeout: T }, async () => {
  // A long poll started while allowed ...
  const s = await session();
  const poll = h.unaryCall(s, `${WS}/PollWorkflowTaskQueue`, h.pollWft('team-a', 'q1'),
    { authorization: `Bearer ${keys.a.key}`, 'x-test-delay-ms': String(1500 * h.SLOW) }, { timeoutMs: 20_000 * h.SLOW });
  await h.waitFor(() => fe.calls.some((c) => c.method === 'PollWorkflowTaskQueue'), 5000 * h.SLOW, 'the poll to reach the frontend');
  // ... then a configuration that would deny it (polls disabled).
  writeConfig(base + extra({ disabled: ['WorkflowService/PollWorkflowTaskQueue'] }));
  await reload({ want: 'success' });
  const denied = await h.unaryCall(s, `${WS}/PollWorkflowTaskQueue`, h.pollWft('team-a', 'q1'),
    { authorization: `Bearer ${keys.a.key}` });
  assert.equal(denied.status, 7, 'a new poll is denied');
  const r = await poll;
  assert.equal(r.status, 0, `the poll in flight finished normally: ${r.message}`);
  assert.equal(r.rstCode, 0);
  writeConfig(base + extra());
  await reload({ want: 'success' });
});

function makeCert(serialHex) {
  const c = h.certs();
  const d = h.tempDir('tgate-rot-');
  const key = path.join(d, 'k.pem');
  const csr = path.join(d, 'r.csr');
  const crt = path.join(d, 'c.pem');
  const ext = path.join(d, 'ext.cnf');
  fs.writeFileSync(ext, 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-subj', '/CN=localhost/O=rotated', '-out', csr], { stdio: 'ignore' });
  execFileSync('openssl', ['x509', '-req', '-in', csr, '-CA', c.file('ca.pem'), '-CAkey', c.file('ca.key'),
    '-set_serial', `0x${serialHex}`, '-days', '2', '-extfile', ext, '-out', crt], { stdio: 'ignore' });
  return { cert: fs.readFileSync(crt), key: fs.readFileSync(key) };
}

function peerCert(port) {
  return new Promise((resolve, reject) => {
    const sock = tls.connect({ host: '127.0.0.1', port, ca: h.certs().ca, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      const cert = sock.getPeerCertificate();
      sock.destroy();
      resolve(cert);
    });
    sock.setTimeout(5000, () => sock.destroy(new Error('TLS handshake timed out')));
    sock.on('error', reject);
  });
}

test('a rotated server certificate is presented by the next handshake; open connections go on', { timeout: T }, async () => {
  const s = await session();
  assert.equal((await describe('a')).status, 0);
  const before1 = await peerCert(tg.port);
  assert.doesNotMatch(before1.subject.O || '', /rotated/);
  const serial = crypto.randomBytes(8).toString('hex').replace(/^0+/, '1');
  const n = makeCert(serial);
  // Key first, then certificate: the watch waits for the files to settle.
  fs.writeFileSync(`${keyFile}.tmp`, n.key);
  fs.writeFileSync(`${certFile}.tmp`, n.cert);
  fs.renameSync(`${keyFile}.tmp`, keyFile);
  fs.renameSync(`${certFile}.tmp`, certFile);
  await reload({ signal: false, want: 'success' });
  const after1 = await peerCert(tg.port);
  assert.equal(after1.subject.O, 'rotated');
  assert.equal(after1.serialNumber.toLowerCase().replace(/^0+/, ''), serial.toLowerCase().replace(/^0+/, ''));
  assert.equal(s.closed || s.destroyed, false, 'the open connection was kept');
  assert.equal((await describe('a')).status, 0, 'and still serves calls');
  const m = await metrics();
  const exp = metric(m, 'tgate_certificate_expiry_seconds{role="server"}');
  assert.ok(exp > 0 && exp <= 2 * 86400 + 60, `expiry metric follows the new certificate: ${exp}`);
});

test('20 reloads, good and bad alternating, under load: no call fails, no connection drops', { timeout: 4 * T }, async () => {
  const N_SESS = 4;
  const sessions = [];
  for (let i = 0; i < N_SESS; i++) sessions.push(await h.h2connect(tg.port, { tls: { ca: h.certs().ca } }));
  let dropped = 0;
  for (const s of sessions) s.on('close', () => dropped++).on('goaway', () => dropped++);
  let stop = false;
  const failures = [];
  let calls = 0;
  const loop = async (s, i) => {
    let n = 0;
    while (!stop && n < 100_000) {
      n++;
      // DescribeNamespace and a long poll (a worker's) each time, as a worker does.
      const poll = n % 10 === 0;
      const r = poll
        ? await h.unaryCall(s, `${WS}/PollWorkflowTaskQueue`, h.pollWft('team-a', `q${i}`),
          { authorization: `Bearer ${keys.a.key}`, 'x-test-delay-ms': '300' }, { timeoutMs: 20_000 * h.SLOW })
        : await h.unaryCall(s, `${WS}/DescribeNamespace`, h.describeNs('team-a'),
          { authorization: `Bearer ${keys.a.key}` }, { timeoutMs: 20_000 * h.SLOW });
      calls++;
      if (r.status !== 0) failures.push(`${poll ? 'poll' : 'describe'}: status ${r.status} ${r.message || ''} rst ${r.rstCode}`);
    }
  };
  const loops = sessions.map((s, i) => loop(s, i));
  try {
    const good = base + extra();
    const variants = [
      base + extra({ level: 'debug' }),
      `${good}\nnot: [valid`,
      base + extra({ disabled: ['WorkflowService/TerminateWorkflowExecution'] }),
      `${good}\nunknown_section: {}\n`,
    ];
    for (let i = 0; i < 20; i++) {
      const goodTurn = i % 2 === 0;
      writeConfig(goodTurn ? variants[(i / 2) % 2 === 0 ? 0 : 2] : variants[i % 4 === 1 ? 1 : 3]);
      await reload({ want: goodTurn ? 'success' : 'failure' });
      await h.sleep(50);
    }
    writeConfig(good);
    await reload({ want: 'success' });
    const c0 = calls;
    await h.waitFor(() => calls > c0 + 20, 10_000 * h.SLOW, 'calls after the last reload');
  } finally {
    stop = true;
    await Promise.all(loops);
  }
  assert.deepEqual(failures, [], `${failures.length} of ${calls} calls failed`);
  assert.ok(calls > 100, `calls made during the reloads: ${calls}`);
  assert.equal(dropped, 0, 'no connection was closed or sent GOAWAY');
  await h.closeSessions(sessions);
});
