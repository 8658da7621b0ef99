'use strict';
// Reloads and JWT key sources: a reload that keeps a key URL keeps its keys even while the
// issuer is down (the new key store starts from the old one's documents); a reload that names a
// new key URL swaps only once that URL gave keys, so no call ever meets an empty key set; a new
// URL that gives nothing within 15 s makes the reload fail and the old keys stay.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { startFrontend } = require('../frontend/frontend.js');
const { startIssuer } = require('../issuer/issuer.js');
const h = require('./lib/harness.js');

const T = 90_000 * h.SLOW;
const WS = `/${h.WS}`;
let fe, iss1, iss2, tg, s, base;

function yaml(iss) {
  return [
    'authentication:',
    '  require: [jwt]',
    '  jwt:',
    `    key_sources: [${JSON.stringify(iss.jwksUri)}]`,
    '    audience: temporal',
    '    refresh_interval: 1m',
  ].join('\n');
}

async function reloads() {
  const m = (await h.httpGet(tg.adminPort, '/metrics')).body;
  const get = (r) => Number(new RegExp(`^tgate_config_reloads_total\\{result="${r}"\\} (\\d+)$`, 'm').exec(m)[1]);
  return { ok: get('success'), bad: get('failure') };
}

async function reload(text, want, ms = 10_000) {
  const r0 = await reloads();
  fs.writeFileSync(tg.configFile, text);
  tg.proc.kill('SIGHUP');
  let r;
  await h.waitFor(async () => {
    r = await reloads();
    return r.ok + r.bad > r0.ok + r0.bad;
  }, ms * h.SLOW, 'the reload to end');
  assert.equal(r.ok - r0.ok, want === 'success' ? 1 : 0, tg.log().slice(-2000));
}

async function call(iss) {
  const token = await iss.token({ clientId: 'worker-a', permissions: ['default:read'] });
  return h.unaryCall(s, `${WS}/DescribeNamespace`, h.describeNs('default'), { authorization: `Bearer ${token}` });
}

before(async () => {
  fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  iss1 = await startIssuer({ port: 0, host: '127.0.0.1', algs: ['RS256'], audience: 'temporal' });
  iss2 = await startIssuer({ port: 0, host: '127.0.0.1', algs: ['ES256'], audience: 'temporal' });
  const ex = yaml(iss1);
  tg = await h.startTgate({ upstream: fe.port, extraYaml: ex });
  base = fs.readFileSync(tg.configFile, 'utf8').replace(ex, '');
  s = await h.h2connect(tg.port);
});

after(async () => {
  if (s) await h.closeSessions([s]);
  await h.stopAll([tg]);
  for (const x of [iss1, iss2]) if (x) await x.stop();
  if (fe) await fe.close();
});

test('the same key URL across a reload keeps its keys while the issuer is down', { timeout: T }, async () => {
  const token = await iss1.token({ clientId: 'worker-a', permissions: ['default:read'] });
  const r0 = await h.unaryCall(s, `${WS}/DescribeNamespace`, h.describeNs('default'), { authorization: `Bearer ${token}` });
  assert.equal(r0.status, 0, r0.message);
  await iss1.stop();
  try {
    await reload(`${base}${yaml(iss1)}\n# changed\n`, 'success');
    const r = await h.unaryCall(s, `${WS}/DescribeNamespace`, h.describeNs('default'), { authorization: `Bearer ${token}` });
    assert.equal(r.status, 0, `a token of the down issuer still verifies after the reload: ${r.message}`);
  } finally {
    await iss1.start();
  }
});

test('a new key URL: the swap waits for its keys, then its tokens verify at once', { timeout: T }, async () => {
  assert.equal((await call(iss2)).status, 16, 'issuer 2 is not trusted yet');
  await reload(base + yaml(iss2), 'success');
  const r = await call(iss2);
  assert.equal(r.status, 0, `the first call after the swap: ${r.message}`);
  assert.equal((await call(iss1)).status, 16, 'issuer 1 is no longer trusted');
  assert.doesNotMatch(tg.log(), /verification keys not loaded yet/);
});

test('a new key URL that gives nothing: the reload fails after 15 s, the old keys stay', { timeout: T }, async () => {
  await iss1.stop();
  try {
    await reload(base + yaml(iss1), 'failure', 25_000);
    assert.match(tg.log(), /no key source of the new configuration gave a key within 15 s/);
    assert.equal((await call(iss2)).status, 0, 'issuer 2 still trusted');
  } finally {
    await iss1.start();
  }
});
