'use strict';
// Authentication end to end: tgate with mTLS + JWT (KuFlow's model) in front of the development
// frontend, tokens from a real issuer (oidc-provider) whose JWKS tgate fetches over HTTP; API
// keys; exempt methods; key rotation and an issuer that goes away.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Connection } = require('@temporalio/client');
const { startFrontend } = require('../frontend/frontend.js');
const { startIssuer } = require('../issuer/issuer.js');
const h = require('./lib/harness.js');

const T = 30_000 * h.SLOW;
const DESCRIBE = `/${h.WS}/DescribeNamespace`;
const SYSINFO = `/${h.WS}/GetSystemInfo`;

let fe, iss, tg, session;
const cleanups = [];

function authYaml({ require = '[client_cert, jwt]', extra = '' } = {}) {
  return [
    'authentication:',
    `  require: ${require}`,
    '  jwt:',
    `    key_sources: [${JSON.stringify(iss.jwksUri)}]`,
    `    issuer: ${JSON.stringify(iss.issuer)}`,
    '    audience: temporal',
    '    leeway: 2s',
    '    refresh_interval: 1m',
    '  client_certs:',
    '    - match: { uri_san: "spiffe://tgate.dev/ns/{ns}/*" }',
    '      permissions: ["{ns}:worker"]',
    extra,
  ].join('\n');
}

before(async () => {
  fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  iss = await startIssuer({ port: 0, host: '127.0.0.1', algs: ['RS256', 'ES256'], audience: 'temporal' });
  tg = await h.startTgate({ upstream: fe.port, tls: true, extraYaml: authYaml(), logLevel: 'debug' });
  session = await h.h2connect(tg.port, { tls: h.certs().pair('worker-a') && tlsOf('worker-a') });
});

after(async () => {
  await h.closeSessions([session]);
  for (const c of cleanups.reverse()) await c();
  if (tg) await tg.stop();
  if (iss) await iss.stop();
  if (fe) await fe.close();
});

function tlsOf(name) {
  const c = h.certs();
  const p = c.pair(name);
  return { ca: c.ca, cert: p.cert, key: p.key };
}

function call(token, { path: p = DESCRIBE, ns = 'team-a', s = session, extra = {} } = {}) {
  const headers = { ...extra };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return h.unaryCall(s, p, h.describeNs(ns), headers);
}

/** A compact JWS of header (extraHeader: raw members appended) and payload text, signed with privateJwk. */
function signJwt(header, payloadText, privateJwk, extraHeader = '') {
  const key = crypto.createPrivateKey({ key: privateJwk, format: 'jwk' });
  const headerText = `${JSON.stringify(header).slice(0, -1)}${extraHeader}}`;
  const input = Buffer.from(`${Buffer.from(headerText).toString('base64url')}.${Buffer.from(payloadText).toString('base64url')}`);
  const { alg } = header;
  const hash = alg === 'EdDSA' ? null : `sha${alg.slice(2)}`;
  let sig;
  if (alg.startsWith('PS')) {
    sig = crypto.sign(hash, input, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
      saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST });
  } else if (alg.startsWith('ES')) {
    sig = crypto.sign(hash, input, { key, dsaEncoding: 'ieee-p1363' });
  } else {
    sig = crypto.sign(hash, input, key);
  }
  return `${input}.${sig.toString('base64url')}`;
}

async function frontendSaw(marker) {
  return fe.calls.some((c) => c.metadata['x-marker'] === marker);
}

function assertUnauthenticated(r, re) {
  assert.equal(r.status, 16, `expected UNAUTHENTICATED, got ${JSON.stringify(r.trailers || r.headers)}`);
  assert.equal(r.trailersOnly, true);
  assert.match(decodeURIComponent(r.message || ''), re);
}

test('an RS256 and an ES256 access token from the issuer pass, unchanged', { timeout: T }, async () => {
  for (const alg of ['RS256', 'ES256']) {
    const token = await iss.token({ clientId: 'worker-a', permissions: ['team-a:write'], alg });
    const marker = `ok-${alg}`;
    const r = await call(token, { extra: { 'x-marker': marker } });
    assert.equal(r.status, 0, JSON.stringify(r.trailers || r.headers));
    const seen = fe.calls.find((c) => c.metadata['x-marker'] === marker);
    assert.ok(seen, 'the frontend received the call');
    assert.equal(seen.metadata.authorization, `Bearer ${token}`);
  }
  // The certificate is the first credential mapped, so its SPIFFE ID is the subject;
  // the token's permissions are OR-ed in (worker from the certificate, write from the token).
  assert.match(tg.log(), /authenticated as spiffe:\/\/tgate.dev\/ns\/team-a\/worker-a \(credentials 0x3, 1 namespace/);
});

test('the real SDK with mTLS and a bearer token', { timeout: T }, async () => {
  const token = await iss.token({ clientId: 'worker-a', permissions: ['team-a:write'], alg: 'ES256' });
  const c = tlsOf('worker-a');
  const conn = await Connection.connect({
    address: `127.0.0.1:${tg.port}`,
    tls: { serverRootCACertificate: c.ca, clientCertPair: { crt: c.cert, key: c.key }, serverNameOverride: 'localhost' },
    metadata: { authorization: `Bearer ${token}` },
    connectTimeout: '5s',
  });
  try {
    const r = await conn.workflowService.describeNamespace({ namespace: 'team-a' });
    assert.equal(r.namespaceInfo.name, 'team-a');
  } finally {
    await conn.close();
  }
});

test('no token: UNAUTHENTICATED before anything reaches the frontend', { timeout: T }, async () => {
  const r = await call(undefined, { extra: { 'x-marker': 'no-token' } });
  assertUnauthenticated(r, /bearer token \(JWT\) required/);
  assert.equal(await frontendSaw('no-token'), false);
});

test('GetSystemInfo needs no credentials (exempt, as in Temporal)', { timeout: T }, async () => {
  const r = await h.unaryCall(session, SYSINFO, Buffer.alloc(0), {});
  assert.equal(r.status, 0);
});

test('grpc.health.v1.Health/Check needs no credentials by default (exempt, as in Temporal)', { timeout: T }, async () => {
  const r = await h.unaryCall(session, '/grpc.health.v1.Health/Check', Buffer.alloc(0), { 'x-marker': 'health-exempt' });
  assert.equal(r.status, 0, JSON.stringify(r.trailers || r.headers));
  assert.equal(await frontendSaw('health-exempt'), true);
});

test('exempt_methods: [] makes GetSystemInfo (and Health/Check) need credentials', { timeout: T }, async () => {
  const tgx = await h.startTgate({ upstream: fe.port, tls: true, extraYaml: authYaml({ extra: '  exempt_methods: []' }) });
  cleanups.push(() => tgx.stop());
  const s = await h.h2connect(tgx.port, { tls: tlsOf('worker-a') });
  cleanups.push(() => h.closeSessions([s]));
  for (const p of [SYSINFO, '/grpc.health.v1.Health/Check']) {
    const marker = `no-exempt-${p}`;
    assertUnauthenticated(await h.unaryCall(s, p, Buffer.alloc(0), { 'x-marker': marker }), /bearer token \(JWT\) required/);
    assert.equal(await frontendSaw(marker), false);
  }
  const token = await iss.token({ clientId: 'worker-a' });
  const r = await h.unaryCall(s, SYSINFO, Buffer.alloc(0), { authorization: `Bearer ${token}` });
  assert.equal(r.status, 0);
});

// One test per reason, each with a token that is good but for that one thing (tokens are made
// when the subtest runs, so one failing to be made fails only its own subtest).
test('every bad token is refused with its own reason, and never forwarded', { timeout: T }, async (t) => {
  const good = await iss.token({ clientId: 'worker-a', permissions: ['team-a:write'], alg: 'RS256' });
  const [hb, pb, sb] = good.split('.');
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const header = JSON.parse(Buffer.from(hb, 'base64url'));
  const payload = JSON.parse(Buffer.from(pb, 'base64url'));
  const rsa = () => iss.keys().current.RS256;
  const es = () => iss.keys().current.ES256;
  const rsaPub = () => crypto.createPublicKey({ key: rsa().publicJwk, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' });
  const hs = () => {
    const hh = b64({ alg: 'HS256', typ: 'JWT', kid: header.kid });
    const sig = crypto.createHmac('sha256', rsaPub()).update(`${hh}.${pb}`).digest('base64url');
    return `${hh}.${pb}.${sig}`;
  };
  // Payload text as given (so that it can repeat a member), signed with the issuer's RSA key.
  const payloadText = JSON.stringify(payload);
  const cases = [
    ['expired', () => iss.token({ clientId: 'worker-a', ttl: -120 }), /expired/],
    ['wrong audience', () => iss.token({ clientId: 'worker-a', extraClaims: { aud: 'billing' } }), /audience/],
    ['wrong issuer', () => iss.token({ clientId: 'worker-a', extraClaims: { iss: 'http://evil.test' } }), /issuer/],
    ['not yet valid', () => iss.token({ clientId: 'worker-a', extraClaims: { nbf: Math.floor(Date.now() / 1000) + 3600 } }), /not yet valid/],
    ['non-array permissions', () => iss.token({ clientId: 'worker-a', extraClaims: { permissions: 'team-a:admin' } }), /permissions/],
    ['tampered payload', () => `${hb}.${b64({ ...payload, permissions: ['temporal-system:admin'] })}.${sb}`, /signature/],
    ['alg none', () => `${b64({ alg: 'none', typ: 'JWT' })}.${pb}.`, /algorithm not allowed/],
    ['HS256 with the public key', hs, /algorithm not allowed/],
    ['RS256 signed with the RSA key, naming the EC key',
      () => signJwt({ ...header, alg: 'RS256', kid: es().kid }, payloadText, rsa().privateJwk), /algorithm does not match key/],
    ['duplicate claim (a second sub)',
      () => signJwt(header, `${payloadText.slice(0, -1)},"sub":"admin"}`, rsa().privateJwk), /duplicate member name/],
    ['duplicate header member (a second kid)',
      () => signJwt(header, payloadText, rsa().privateJwk, `,"kid":${JSON.stringify(header.kid)}`), /duplicate member name/],
    ['unknown kid', () => `${b64({ ...header, kid: 'nope' })}.${pb}.${sb}`, /unknown key id/],
    ['truncated', () => good.slice(0, good.length - 10), /bad signature|malformed/],
    ['bad base64', () => `${hb}.${pb}.${sb.replace(/.$/, '=')}`, /malformed/],
    ['oversized', () => `${hb}.${b64({ ...payload, pad: 'x'.repeat(17000) })}.${sb}`, /too large/],
    ['not the Bearer scheme', () => null, /Bearer/],
    ['two spaces after Bearer', () => ` ${good}`, /Bearer <token>/],
  ];
  await t.test('control: the same payload signed here with the same key passes', async () => {
    const r = await call(signJwt(header, payloadText, rsa().privateJwk), { extra: { 'x-marker': 'bad-control' } });
    assert.equal(r.status, 0, JSON.stringify(r.trailers || r.headers));
  });
  for (const [name, make, re] of cases) {
    await t.test(name, async () => {
      const token = await make();
      const marker = `bad-${name}`;
      const extra = { 'x-marker': marker };
      const r = token === null
        ? await h.unaryCall(session, DESCRIBE, h.describeNs('team-a'), { authorization: `Basic ${good}`, ...extra })
        : await call(token, { extra });
      assertUnauthenticated(r, re);
      assert.ok(!decodeURIComponent(r.message).includes(sb), 'the reason must not echo the token');
      assert.equal(await frontendSaw(marker), false, 'it reached the frontend');
    });
  }
});

test('a repeated token is served from the cache', { timeout: T }, async () => {
  const token = await iss.token({ clientId: 'worker-b', permissions: ['team-b:worker'] });
  const s2 = await h.h2connect(tg.port, { tls: tlsOf('worker-b') });
  cleanups.push(() => h.closeSessions([s2]));
  const metric = async (name) => {
    const r = await h.httpGet(tg.adminPort, '/metrics');
    const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(r.body);
    assert.ok(m, `no ${name} in /metrics`);
    return Number(m[1]);
  };
  const verified0 = await metric('tgate_tokens_verified_total');
  const hits0 = await metric('tgate_token_cache_hits_total');
  for (let i = 0; i < 20; i++) assert.equal((await call(token, { s: s2, ns: 'team-b' })).status, 0);
  // One signature check per worker at most; the rest are cache hits.
  const verified = (await metric('tgate_tokens_verified_total')) - verified0;
  assert.ok(verified >= 1 && verified <= 2, `verified ${verified} times`);
  assert.ok((await metric('tgate_token_cache_hits_total')) - hits0 >= 18);
});

test('key rotation at the issuer is picked up without a restart; dropped keys stop working', { timeout: T }, async () => {
  // A tgate of its own: an unknown kid sent by another test would defer its early refresh.
  const tg5 = await h.startTgate({ upstream: fe.port, tls: true, extraYaml: authYaml() });
  cleanups.push(() => tg5.stop());
  const s = await h.h2connect(tg5.port, { tls: tlsOf('worker-a') });
  cleanups.push(() => h.closeSessions([s]));
  const call = (token) => h.unaryCall(s, DESCRIBE, h.describeNs('team-a'), { authorization: `Bearer ${token}` });
  const old = await iss.token({ clientId: 'worker-a', alg: 'ES256' });
  assert.equal((await call(old)).status, 0);
  await iss.rotate({ dropOld: true });
  const fresh = await iss.token({ clientId: 'worker-a', alg: 'ES256' });
  assert.notEqual(JSON.parse(Buffer.from(fresh.split('.')[0], 'base64url')).kid,
    JSON.parse(Buffer.from(old.split('.')[0], 'base64url')).kid);
  // The unknown kid triggers an early refresh; the first call may race it.
  await h.waitFor(async () => (await call(fresh)).status === 0, 5000 * h.SLOW, 'the rotated key to be accepted', 200);
  const r = await call(old);
  assertUnauthenticated(r, /unknown key id/);
});

test('a flood of unknown kids costs one fetch per window; a rotation is still picked up', { timeout: T }, async () => {
  const tg6 = await h.startTgate({ upstream: fe.port, tls: true, extraYaml: authYaml() });
  cleanups.push(() => tg6.stop());
  const s = await h.h2connect(tg6.port, { tls: tlsOf('worker-a') });
  cleanups.push(() => h.closeSessions([s]));
  const call = (token) => h.unaryCall(s, DESCRIBE, h.describeNs('team-a'), { authorization: `Bearer ${token}` });
  const good = await iss.token({ clientId: 'worker-a', alg: 'RS256' });
  const [hb, pb, sb] = good.split('.');
  const header = JSON.parse(Buffer.from(hb, 'base64url'));
  for (let i = 0; i < 50; i++) {
    const forged = `${Buffer.from(JSON.stringify({ ...header, kid: `made-up-${i}` })).toString('base64url')}.${pb}.${sb}`;
    assertUnauthenticated(await call(forged), /unknown key id/);
  }
  await h.sleep(300);
  const early = (tg6.log().match(/refreshing early/g) || []).length;
  assert.equal(early, 1, 'one early refresh for the whole flood');
  await iss.rotate();
  const fresh = await iss.token({ clientId: 'worker-a', alg: 'RS256' });
  // Deferred to the end of the 10 s window, not dropped.
  await h.waitFor(async () => (await call(fresh)).status === 0, 15_000, 'the rotated key after the window', 500);
});

test('the issuer going away: the last good keys keep working', { timeout: T }, async () => {
  // Make sure this tgate holds the issuer's current keys (other tests rotated them).
  const warm = await iss.token({ clientId: 'worker-a', alg: 'RS256' });
  await h.waitFor(async () => (await call(warm)).status === 0, 15_000, 'current keys', 500);
  const token = await iss.token({ clientId: 'worker-a', alg: 'RS256' });
  await iss.stop();
  try {
    // A token tgate has never seen, under keys fetched before the issuer stopped.
    assert.equal((await call(token)).status, 0);
  } finally {
    await iss.start();
  }
});

test('client certificate required: a TLS client without one never gets a call through', { timeout: T }, async () => {
  const tg2 = await h.startTgate({ upstream: fe.port, tls: 'optional', extraYaml: authYaml() });
  cleanups.push(() => tg2.stop());
  const c = h.certs();
  const s = await h.h2connect(tg2.port, { tls: { ca: c.ca } });
  cleanups.push(() => h.closeSessions([s]));
  const token = await iss.token({ clientId: 'worker-a' });
  const r = await call(token, { s });
  assertUnauthenticated(r, /client certificate required/);
});

test('API keys: a listed key passes, an unknown or expired one does not', { timeout: T }, async () => {
  const dir = h.tempDir('tgate-keys-');
  const mk = (extra) => {
    const out = require('node:child_process').execFileSync(h.TGATE_BIN,
      ['apikey', 'new', '--subject', 'ci', '--permission', 'default:write', ...extra], { encoding: 'utf8' });
    return { key: /#\s+(tgk_\S+)/.exec(out)[1], entry: out.split('\n').filter((l) => !l.startsWith('#')).join('\n') };
  };
  const good = mk([]);
  const old = mk(['--expires', '2020-01-01']);
  const file = path.join(dir, 'keys.yaml');
  fs.writeFileSync(file, `keys:\n${good.entry}\n${old.entry}\n`);
  const tg3 = await h.startTgate({
    upstream: fe.port,
    extraYaml: `authentication:\n  require: [api_key]\n  api_keys_file: ${JSON.stringify(file)}\n  api_key_header: x-api-key\n`,
  });
  cleanups.push(() => tg3.stop());
  const s = await h.h2connect(tg3.port);
  cleanups.push(() => h.closeSessions([s]));
  assert.equal((await call(good.key, { s, ns: 'default' })).status, 0);
  const viaHeader = await h.unaryCall(s, DESCRIBE, h.describeNs('default'), { 'x-api-key': good.key });
  assert.equal(viaHeader.status, 0);
  assertUnauthenticated(await call(old.key, { s }), /expired/);
  assertUnauthenticated(await call(`${good.key}x`, { s }), /unknown API key/);
  assertUnauthenticated(await call(undefined, { s }), /API key required/);
});

test('apikey new: the entry is escaped YAML that loads as given; a bad --expires is refused', { timeout: T }, async () => {
  const { execFileSync, spawnSync } = require('node:child_process');
  const dir = h.tempDir('tgate-keys-');
  const subject = 'ci "deploy" \\ x: #1 \'q\'';
  const out = execFileSync(h.TGATE_BIN, ['apikey', 'new', '--subject', subject, '--permission', 'default:write',
    '--permission', 'pay"ments:read', '--expires', '2099-12-31T23:59:59Z'], { encoding: 'utf8' });
  const key = /#\s+(tgk_\S+)/.exec(out)[1];
  const entry = out.split('\n').filter((l) => !l.startsWith('#')).join('\n');
  assert.match(entry, /expires: "2099-12-31T23:59:59Z"/);
  // A newline in a subject cannot break out of its scalar either.
  const nl = execFileSync(h.TGATE_BIN, ['apikey', 'new', '--subject', 'a\n    permissions: ["x:admin"]'], { encoding: 'utf8' });
  const nlEntry = nl.split('\n').filter((l) => !l.startsWith('#')).join('\n');
  const file = path.join(dir, 'keys.yaml');
  fs.writeFileSync(file, `keys:\n${entry}\n${nlEntry}\n`);
  const tgk = await h.startTgate({
    upstream: fe.port, logLevel: 'debug',
    extraYaml: `authentication:\n  require: [api_key]\n  api_keys_file: ${JSON.stringify(file)}\n`,
  });
  cleanups.push(() => tgk.stop());
  const s = await h.h2connect(tgk.port);
  cleanups.push(() => h.closeSessions([s]));
  assert.equal((await call(key, { s, ns: 'default' })).status, 0);
  assert.ok(tgk.log().includes(`authenticated as ${subject} (credentials 0x4, 2 namespace`), tgk.log().slice(-2000));
  for (const bad of ['2027-13-01', '31.01.2027', '2027-01-31 00:00:00', '2027-01-31T00:00:00+01:00', 'tomorrow', '']) {
    const r = spawnSync(h.TGATE_BIN, ['apikey', 'new', '--subject', 'ci', '--expires', bad], { encoding: 'utf8' });
    assert.equal(r.status, 2, `--expires ${JSON.stringify(bad)}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /--expires must be a UTC time such as 2027-01-31T00:00:00Z or 2027-01-31/);
    assert.equal(r.stdout, '', 'nothing printed, no key handed out');
  }
  const ok = spawnSync(h.TGATE_BIN, ['apikey', 'new', '--expires', '2027-01-31'], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
});

test('no key loaded yet: not ready, and calls get UNAVAILABLE rather than through', { timeout: T }, async () => {
  const dead = await h.freePort();
  const yaml = [
    'authentication:', '  require: [jwt]', '  jwt:',
    `    key_sources: ["http://127.0.0.1:${dead}/jwks"]`,
  ].join('\n');
  const tg4 = await h.startTgate({ upstream: fe.port, extraYaml: yaml, waitReady: false });
  cleanups.push(() => tg4.stop());
  const ready = await h.httpGet(tg4.adminPort, '/health/ready');
  assert.equal(ready.status, 503);
  assert.match(ready.body, /verification key/);
  const s = await h.h2connect(tg4.port);
  cleanups.push(() => h.closeSessions([s]));
  const token = await iss.token({ clientId: 'worker-a' });
  const r = await call(token, { s });
  assert.equal(r.status, 14);
});

test('a ClaimMapper plugin (dlopen ABI): its credential passes, an unknown one is refused', { timeout: T }, async () => {
  const so = path.join(h.ROOT, 'build', 'plugins', 'example_header_map.so');
  const yaml = [
    'authentication:',
    '  require: [plugin]',
    '  plugins:',
    `    - path: ${JSON.stringify(so)}`,
    '      config: "header=x-demo-user;alice=default:write,payments:read"',
  ].join('\n');
  const tg7 = await h.startTgate({ upstream: fe.port, extraYaml: yaml, logLevel: 'debug' });
  cleanups.push(() => tg7.stop());
  const s = await h.h2connect(tg7.port);
  cleanups.push(() => h.closeSessions([s]));
  const ok = await h.unaryCall(s, DESCRIBE, h.describeNs('default'), { 'x-demo-user': 'alice' });
  assert.equal(ok.status, 0);
  assert.match(tg7.log(), /authenticated as alice \(credentials 0x8, 2 namespace/);
  assertUnauthenticated(await h.unaryCall(s, DESCRIBE, h.describeNs('default'), { 'x-demo-user': 'mallory' }),
    /unknown demo user/);
  assertUnauthenticated(await h.unaryCall(s, DESCRIBE, h.describeNs('default'), {}), /no plugin recognised/);
});

test('a plugin that cannot be loaded stops the start with a reason', { timeout: T }, async () => {
  const cfg = path.join(h.tempDir('tgate-plugin-'), 'bad.yaml');
  fs.writeFileSync(cfg, [
    'listen: {address: "127.0.0.1:1"}', 'upstream: {addresses: ["127.0.0.1:2"]}',
    'authentication:', '  plugins:', '    - path: /nonexistent/plugin.so', '',
  ].join('\n'));
  const r = require('node:child_process').spawnSync(h.TGATE_BIN, ['--check-config', '-c', cfg], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /plugin \/nonexistent\/plugin.so: .*No such file/);
});

test('file: and pem: key sources: tokens minted here verify through tgate', { timeout: T }, async () => {
  const dir = h.tempDir('tgate-keysrc-');
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ed = crypto.generateKeyPairSync('ed25519');
  const rsaK = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwks = path.join(dir, 'jwks.json');
  fs.writeFileSync(jwks, JSON.stringify({ keys: [{ ...ec.publicKey.export({ format: 'jwk' }), kid: 'file-ec', use: 'sig' }] }));
  const pemEd = path.join(dir, 'ed.pem');
  fs.writeFileSync(pemEd, ed.publicKey.export({ type: 'spki', format: 'pem' }));
  const pemRsa = path.join(dir, 'rsa.pem');
  fs.writeFileSync(pemRsa, rsaK.publicKey.export({ type: 'spki', format: 'pem' }));
  const yaml = [
    'authentication:', '  require: [jwt]', '  jwt:',
    `    key_sources: [${JSON.stringify(`file:${jwks}`)}, ${JSON.stringify(`pem:${pemEd}#pem-ed`)}, ${JSON.stringify(`pem:${pemRsa}#pem-rsa`)}]`,
  ].join('\n');
  const tgs = await h.startTgate({ upstream: fe.port, extraYaml: yaml, logLevel: 'debug' });
  cleanups.push(() => tgs.stop());
  const s = await h.h2connect(tgs.port);
  cleanups.push(() => h.closeSessions([s]));
  const now = Math.floor(Date.now() / 1000);
  const payload = (sub) => JSON.stringify({ sub, exp: now + 300, permissions: ['default:read'] });
  const jwkOf = (k) => k.privateKey.export({ format: 'jwk' });
  const ok = [
    ['file: JWKS, ES256', signJwt({ alg: 'ES256', kid: 'file-ec' }, payload('via-file'), jwkOf(ec))],
    ['pem: Ed25519, EdDSA', signJwt({ alg: 'EdDSA', kid: 'pem-ed' }, payload('via-pem-ed'), jwkOf(ed))],
    ['pem: RSA, PS256', signJwt({ alg: 'PS256', kid: 'pem-rsa' }, payload('via-pem-rsa'), jwkOf(rsaK))],
  ];
  for (const [name, token] of ok) {
    const r = await call(token, { s, ns: 'default' });
    assert.equal(r.status, 0, `${name}: ${JSON.stringify(r.trailers || r.headers)}`);
  }
  assert.match(tgs.log(), /authenticated as via-file /);
  assert.match(tgs.log(), /authenticated as via-pem-ed /);
  const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  assertUnauthenticated(await call(signJwt({ alg: 'ES256', kid: 'file-ec' }, payload('x'), jwkOf(other)), { s }), /bad signature/);
  assertUnauthenticated(await call(signJwt({ alg: 'ES256', kid: 'pem-ed' }, payload('x'), jwkOf(ec)), { s }), /algorithm does not match key/);
});

test('an https:// JWKS verified with authentication.jwt.ca_file', { timeout: T }, async () => {
  const https = require('node:https');
  const c = h.certs();
  let served = 0;
  const srv = https.createServer({ cert: c.read('server.pem'), key: c.read('server.key') }, (req, res) => {
    served++;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(iss.keys().jwks));
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => { srv.closeAllConnections(); srv.close(resolve); }));
  const url = `https://127.0.0.1:${srv.address().port}/jwks`;
  const yaml = (ca) => [
    'authentication:', '  require: [jwt]', '  jwt:',
    `    key_sources: [${JSON.stringify(url)}]`,
    `    issuer: ${JSON.stringify(iss.issuer)}`,
    '    audience: temporal',
    ca ? `    ca_file: ${JSON.stringify(ca)}` : '',
  ].join('\n');
  // Ready only once a key was loaded: the fetch went through with the dev CA.
  const tgh = await h.startTgate({ upstream: fe.port, extraYaml: yaml(c.file('ca.pem')) });
  cleanups.push(() => tgh.stop());
  assert.ok(served >= 1);
  const s = await h.h2connect(tgh.port);
  cleanups.push(() => h.closeSessions([s]));
  for (const alg of ['RS256', 'ES256']) {
    const token = await iss.token({ clientId: 'worker-a', alg });
    const r = await call(token, { s, ns: 'team-a' });
    assert.equal(r.status, 0, `${alg}: ${JSON.stringify(r.trailers || r.headers)}`);
  }
  // The system store does not know the dev CA: no key, calls get UNAVAILABLE.
  const tgn = await h.startTgate({ upstream: fe.port, extraYaml: yaml(null), waitReady: false });
  cleanups.push(() => tgn.stop());
  await h.waitFor(() => /JWKS source https:\/\/127\.0\.0\.1:\d+\/jwks: .*certificate/.test(tgn.log()),
    10_000 * h.SLOW, 'the certificate failure to be logged');
  assert.equal((await h.httpGet(tgn.adminPort, '/health/ready')).status, 503);
  // A ca_file that is not a CA bundle stops --check-config.
  const cfg = path.join(h.tempDir('tgate-ca-'), 'bad.yaml');
  fs.writeFileSync(cfg, h.tgateConfig({ upstream: fe.port, port: 1, extraYaml: yaml(path.join(h.ROOT, 'README.md')) }));
  const r = require('node:child_process').spawnSync(h.TGATE_BIN, ['--check-config', '-c', cfg], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /ca_file .*README\.md: no PEM certificate/);
});
