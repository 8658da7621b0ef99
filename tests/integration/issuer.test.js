'use strict';
// The oidc-provider token issuer fixture (tests/issuer/issuer.js): real RFC 9068
// access tokens from a real token endpoint, checked here with nothing but
// node:crypto against the JWKS fetched over HTTP; key rotation, stop/start, CLI.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const { spawn, execFile } = require('node:child_process');
const { startIssuer } = require('../issuer/issuer.js');
require('./lib/watchdog.js');

const T = 30_000;
const ISSUER_JS = path.join(__dirname, '..', 'issuer', 'issuer.js');

async function getJson(url) {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), 5000);
  try {
    const res = await fetch(url, { signal: ac.signal, headers: { connection: 'close' } });
    assert.equal(res.status, 200, `GET ${url}`);
    return await res.json();
  } finally {
    clearTimeout(t);
  }
}

const fetchJwks = (iss) => getJson(iss.jwksUri);
const kidsOf = (jwks) => jwks.keys.map((k) => k.kid).sort();

/** Verifies a compact JWS with node:crypto only; returns {header, payload}. */
function verifyJwt(jwt, jwks) {
  const parts = jwt.split('.');
  assert.equal(parts.length, 3, 'compact JWS');
  const [h, p, s] = parts;
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  assert.ok(header.kid, 'header has a kid');
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  assert.ok(jwk, `kid ${header.kid} is in the JWKS (${kidsOf(jwks).join(' ')})`);
  for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(jwk[m], undefined, `JWKS leaks private member ${m}`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  let ok;
  if (header.alg === 'RS256') {
    assert.equal(jwk.kty, 'RSA');
    ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url'));
  } else if (header.alg === 'ES256') {
    assert.equal(jwk.kty, 'EC');
    assert.equal(jwk.crv, 'P-256');
    ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
  } else {
    assert.fail(`unexpected alg ${header.alg}`);
  }
  assert.ok(ok, `signature of ${header.alg} token verifies with ${header.kid}`);
  return { header, payload };
}

function assertAccessToken({ header, payload }, iss, { alg, sub, permissions, ttl = 300 }) {
  assert.equal(header.typ, 'at+jwt');
  assert.equal(header.alg, alg);
  assert.equal(payload.iss, iss.issuer);
  assert.equal(payload.aud, 'temporal');
  assert.equal(payload.sub, sub);
  assert.equal(payload.client_id, sub);
  assert.deepEqual(payload.permissions, permissions);
  const now = Math.floor(Date.now() / 1000);
  assert.ok(Number.isInteger(payload.iat) && Math.abs(payload.iat - now) <= 5, `iat ${payload.iat} ~ now ${now}`);
  assert.equal(payload.exp - payload.iat, ttl);
  assert.ok(payload.jti, 'jti');
}

function run(args, timeoutMs = 15000) {
  return new Promise((resolve) => {
    execFile(process.execPath, [ISSUER_JS, ...args], { timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr });
    });
  });
}

// This file tests the fixture alone (no tgate runs here), so the sanitizer pass of
// scripts/test.sh, which runs every file again against build-asan/tgate, skips it.
const SKIP = process.env.TGATE_ASAN === '1' ? 'the fixture alone: run in the release pass' : false;

describe('token issuer fixture', { timeout: 120_000, skip: SKIP }, () => {
  let iss;

  before(async () => {
    iss = await startIssuer({
      port: 0, host: '127.0.0.1', algs: ['RS256', 'ES256'], audience: 'temporal', accessTokenTtl: 300,
    });
  }, { timeout: 60_000 });

  after(async () => {
    if (iss) await iss.stop();
  }, { timeout: 15_000 });

  test('discovery names the issuer, JWKS and token endpoint', { timeout: T }, async () => {
    assert.match(iss.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(iss.issuer, `http://127.0.0.1:${iss.port}`);
    const disc = await getJson(`${iss.issuer}/.well-known/openid-configuration`);
    assert.equal(disc.issuer, iss.issuer);
    assert.equal(disc.jwks_uri, iss.jwksUri);
    assert.equal(disc.token_endpoint, `${iss.issuer}/token`);
    assert.ok(disc.grant_types_supported.includes('client_credentials'));
    const jwks = await fetchJwks(iss);
    assert.equal(jwks.keys.length, 2);
    assert.deepEqual(kidsOf(jwks), [...iss.keys().kids].sort());
    assert.deepEqual(jwks.keys.map((k) => k.kty).sort(), ['EC', 'RSA']);
  });

  test('RS256 and ES256 tokens with requested permissions verify against the JWKS', { timeout: T }, async () => {
    const permissions = ['default:write', 'team-a:read'];
    const jwks = await fetchJwks(iss);
    for (const alg of ['RS256', 'ES256']) {
      const jwt = await iss.token({ clientId: 'worker-a', permissions, alg });
      const t = verifyJwt(jwt, jwks);
      assertAccessToken(t, iss, { alg, sub: 'worker-a', permissions });
      assert.equal(t.header.kid, iss.keys().current[alg].kid);
    }
  });

  test('static clients: default permissions, default alg, both client auth methods', { timeout: T }, async () => {
    const jwks = await fetchJwks(iss);
    let t = verifyJwt(await iss.token({ clientId: 'worker-a' }), jwks);
    assertAccessToken(t, iss, { alg: 'RS256', sub: 'worker-a', permissions: ['team-a:worker', 'team-a:read'] });
    t = verifyJwt(await iss.token({ clientId: 'admin', alg: 'ES256' }), jwks);
    assertAccessToken(t, iss, { alg: 'ES256', sub: 'admin', permissions: ['temporal-system:admin'] });
    assert.equal(iss.clients['worker-b'].authMethod, 'client_secret_post');
    t = verifyJwt(await iss.token({ clientId: 'worker-b' }), jwks);
    assertAccessToken(t, iss, { alg: 'RS256', sub: 'worker-b', permissions: ['team-b:worker'] });
    t = verifyJwt(await iss.token({ clientId: 'noperms' }), jwks);
    assert.deepEqual(t.payload.permissions, []);
    // Any other well-formed client id works (secret `${id}-secret`).
    t = verifyJwt(await iss.token({ clientId: 'some-svc', permissions: ['ns1:reader'] }), jwks);
    assertAccessToken(t, iss, { alg: 'RS256', sub: 'some-svc', permissions: ['ns1:reader'] });
    // setPermissions: the default for requests naming none (e.g. curl).
    iss.setPermissions('worker-a', ['x:admin']);
    try {
      t = verifyJwt(await iss.token({ clientId: 'worker-a' }), jwks);
      assert.deepEqual(t.payload.permissions, ['x:admin']);
    } finally {
      iss.setPermissions('worker-a', undefined);
    }
  });

  test('concurrent requests get their own permissions', { timeout: T }, async () => {
    const jwks = await fetchJwks(iss);
    const wants = Array.from({ length: 8 }, (_, i) => [`ns${i}:worker`]);
    const jwts = await Promise.all(wants.map((permissions, i) => iss.token({
      clientId: 'worker-a', permissions, alg: i % 2 ? 'ES256' : 'RS256',
    })));
    jwts.forEach((jwt, i) => assert.deepEqual(verifyJwt(jwt, jwks).payload.permissions, wants[i]));
  });

  test('per-token ttl, expired tokens and claim/header overrides', { timeout: T }, async () => {
    const jwks = await fetchJwks(iss);
    let t = verifyJwt(await iss.token({ clientId: 'worker-a', ttl: 60, alg: 'ES256' }), jwks);
    assertAccessToken(t, iss, { alg: 'ES256', sub: 'worker-a', permissions: ['team-a:worker', 'team-a:read'], ttl: 60 });
    t = verifyJwt(await iss.token({ clientId: 'worker-a', ttl: -30 }), jwks);
    assert.equal(t.payload.exp, t.payload.iat - 30);
    t = verifyJwt(await iss.token({
      clientId: 'worker-a',
      extraClaims: { aud: 'other', permissions: 'not-an-array', nbf: 4102444800 },
      omitClaims: ['client_id'],
      header: { typ: 'JWT' },
    }), jwks);
    assert.equal(t.header.typ, 'JWT');
    assert.equal(t.payload.aud, 'other');
    assert.equal(t.payload.permissions, 'not-an-array');
    assert.equal(t.payload.nbf, 4102444800);
    assert.equal('client_id' in t.payload, false);
    t = verifyJwt(await iss.token({ clientId: 'worker-a', omitClaims: ['permissions'] }), jwks);
    assert.equal('permissions' in t.payload, false);
  });

  test('token endpoint errors surface', { timeout: T }, async () => {
    await assert.rejects(iss.token({ clientId: 'worker-a', alg: 'PS256' }), /invalid_target/);
    await assert.rejects(iss.token({ clientId: 'worker-a', clientSecret: 'wrong' }), /invalid_client/);
    await assert.rejects(iss.token({ clientId: 'worker-b', clientSecret: 'worker-a-secret' }), /invalid_client/);
    await assert.rejects(iss.token({ clientId: 'worker-a', permissions: 'team-a:worker' }), /permissions must be an array/);
    // oidc-provider treats client_secret_basic and client_secret_post as one family:
    // a client registered with either may use both.
    for (const authMethod of ['client_secret_basic', 'client_secret_post']) {
      const jwt = await iss.token({ clientId: 'worker-a', authMethod });
      assert.equal(verifyJwt(jwt, await fetchJwks(iss)).payload.sub, 'worker-a');
    }
  });

  test('rotate: new kids sign, old ones stay published; dropOld removes them', { timeout: T }, async () => {
    const before = iss.keys();
    const oldKids = Object.values(before.current).map((k) => k.kid);
    const oldRs = await iss.token({ clientId: 'worker-a', alg: 'RS256' });
    const oldEs = await iss.token({ clientId: 'worker-a', alg: 'ES256' });

    await iss.rotate();
    const rotated = iss.keys();
    const newKids = Object.values(rotated.current).map((k) => k.kid);
    for (const k of newKids) assert.ok(!oldKids.includes(k), `new kid ${k}`);
    let jwks = await fetchJwks(iss);
    assert.deepEqual(kidsOf(jwks), [...oldKids, ...newKids].sort());
    for (const alg of ['RS256', 'ES256']) {
      const t = verifyJwt(await iss.token({ clientId: 'worker-a', alg, permissions: ['team-a:worker'] }), jwks);
      assert.equal(t.header.kid, rotated.current[alg].kid);
      assertAccessToken(t, iss, { alg, sub: 'worker-a', permissions: ['team-a:worker'] });
    }
    verifyJwt(oldRs, jwks); // grace period: old tokens still verify
    verifyJwt(oldEs, jwks);

    // Hard rotation: yet newer keys, every earlier key gone at once.
    await iss.rotate({ dropOld: true });
    const hard = iss.keys();
    jwks = await fetchJwks(iss);
    assert.deepEqual(kidsOf(jwks), Object.values(hard.current).map((k) => k.kid).sort());
    for (const k of [...oldKids, ...newKids]) assert.ok(!kidsOf(jwks).includes(k), `kid ${k} dropped`);
    assert.throws(() => verifyJwt(oldRs, jwks), /is in the JWKS/);
    const t = verifyJwt(await iss.token({ clientId: 'admin', alg: 'ES256' }), jwks);
    assert.equal(t.header.kid, hard.current.ES256.kid);

    // Soft rotation, then the end of the grace period.
    const lastKids = Object.values(hard.current).map((k) => k.kid);
    await iss.rotate();
    assert.equal(kidsOf(await fetchJwks(iss)).length, 4);
    iss.dropOld();
    jwks = await fetchJwks(iss);
    assert.deepEqual(kidsOf(jwks), Object.values(iss.keys().current).map((k) => k.kid).sort());
    for (const k of lastKids) assert.ok(!kidsOf(jwks).includes(k));
    assert.equal(iss.keys().retired.length, 0);

    // A grace period that ends by itself.
    const graceKids = Object.values(iss.keys().current).map((k) => k.kid);
    await iss.rotate({ graceMs: 200 });
    assert.equal(kidsOf(await fetchJwks(iss)).length, 4);
    await new Promise((r) => setTimeout(r, 500));
    jwks = await fetchJwks(iss);
    assert.equal(jwks.keys.length, 2);
    for (const k of graceKids) assert.ok(!kidsOf(jwks).includes(k));
  });

  test('stop/start: same issuer URL and keys; nothing answers while stopped', { timeout: T }, async () => {
    const { issuer, port } = iss;
    const jwt = await iss.token({ clientId: 'worker-a', alg: 'ES256' });
    const kids = kidsOf(await fetchJwks(iss));
    await iss.stop();
    assert.equal(iss.running, false);
    await assert.rejects(fetch(iss.jwksUri), /fetch failed/);
    await assert.rejects(iss.token({ clientId: 'worker-a' }), /stopped/);
    await iss.start();
    assert.equal(iss.issuer, issuer);
    assert.equal(iss.port, port);
    const jwks = await fetchJwks(iss);
    assert.deepEqual(kidsOf(jwks), kids);
    verifyJwt(jwt, jwks);
    const t = verifyJwt(await iss.token({ clientId: 'worker-a', alg: 'RS256' }), jwks);
    assert.equal(t.payload.iss, issuer);
  });

  test('CLI --print-token asks a running issuer', { timeout: T }, async () => {
    const r = await run(['--print-token', 'worker-a', '--permissions', 'default:write', '--alg', 'ES256', '--issuer', iss.issuer]);
    assert.equal(r.code, 0, r.stderr);
    const t = verifyJwt(r.stdout.trim(), await fetchJwks(iss));
    assertAccessToken(t, iss, { alg: 'ES256', sub: 'worker-a', permissions: ['default:write'] });
  });

  test('CLI --listen prints URLs and a line per token', { timeout: T }, async () => {
    const child = spawn(process.execPath, [ISSUER_JS, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    const waitFor = async (re, ms = 10000) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        const m = re.exec(out);
        if (m) return m;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${re} in output:\n${out}\n${err}`);
    };
    try {
      const [, url] = await waitFor(/^issuer (http:\/\/127\.0\.0\.1:\d+)$/m);
      await waitFor(new RegExp(`^jwks ${url}/jwks$`, 'm'));
      const r = await run(['--print-token', 'admin', '--issuer', url]);
      assert.equal(r.code, 0, r.stderr);
      const jwt = r.stdout.trim();
      const t = verifyJwt(jwt, await getJson(`${url}/jwks`));
      assert.deepEqual(t.payload.permissions, ['temporal-system:admin']);
      const [line] = await waitFor(/^token sub=admin .*$/m);
      assert.ok(line.endsWith(` ${jwt}`), line);
      assert.equal(err, '', 'no warnings on stderr');
    } finally {
      // SIGTERM must stop it; if it does not within 5 s, SIGKILL it (so this
      // test fails instead of keeping the test process alive) and say so.
      child.kill('SIGTERM');
      let timer;
      const late = new Promise((resolve) => { timer = setTimeout(() => resolve(null), 5000); });
      let how = await Promise.race([exited, late]);
      clearTimeout(timer);
      if (how === null) {
        child.kill('SIGKILL');
        await exited;
        how = { ignoredSigterm: true, out, err };
      }
      assert.ok(how.code === 0 || how.signal === 'SIGTERM', JSON.stringify(how));
    }
  });
});
