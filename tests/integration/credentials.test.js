'use strict';
// upstream.credentials: what tgate presents to the frontend is its own bearer token (say a
// Temporal Cloud API key), read from a file, never the client's credentials; the file is
// watched and reloaded; a bad file is refused at start and on reload.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startFrontend } = require('../frontend/frontend.js');
const h = require('./lib/harness.js');

const T = 60_000 * h.SLOW;
const WS = `/${h.WS}`;
let fe, tg, s, dir, tokenFile, keysFile, key;
let seq = 0;

function writeToken(text) {
  fs.writeFileSync(`${tokenFile}.tmp`, text);
  fs.renameSync(`${tokenFile}.tmp`, tokenFile);
}

function yaml() {
  return [
    'authentication:',
    '  require: [api_key]',
    `  api_keys_file: ${JSON.stringify(keysFile)}`,
    '  api_key_header: x-api-key',
    'reload:',
    '  watch_interval: 100ms',
  ].join('\n');
}

async function describe(headers) {
  const marker = `c-${++seq}`;
  const r = await h.unaryCall(s, `${WS}/DescribeNamespace`, h.describeNs('default'), { 'x-marker': marker, ...headers });
  r.seen = fe.calls.find((c) => c.metadata['x-marker'] === marker);
  return r;
}

async function reloads(result) {
  const r = await h.httpGet(tg.adminPort, '/metrics');
  return Number(new RegExp(`^tgate_config_reloads_total\\{result="${result}"\\} (\\d+)$`, 'm').exec(r.body)[1]);
}

before(async () => {
  dir = h.tempDir('tgate-creds-');
  tokenFile = path.join(dir, 'cloud-api-key');
  keysFile = path.join(dir, 'keys.yaml');
  const out = execFileSync(h.TGATE_BIN, ['apikey', 'new', '--subject', 'app', '--permission', 'default:admin'], { encoding: 'utf8' });
  key = /#\s+(tgk_\S+)/.exec(out)[1];
  fs.writeFileSync(keysFile, `keys:\n${out.split('\n').filter((l) => !l.startsWith('#')).join('\n')}\n`);
  writeToken('tcld-first-token\n');
  fe = await startFrontend({ host: '127.0.0.1', port: 0 });
  tg = await h.startTgate({
    upstream: fe.port,
    extraYaml: yaml(),
    upstreamYaml: `  credentials:\n    bearer_token_file: ${JSON.stringify(tokenFile)}\n`,
  });
  s = await h.h2connect(tg.port);
});

after(async () => {
  if (s) await h.closeSessions([s]);
  await h.stopAll([tg]);
  if (fe) await fe.close();
});

test('the frontend sees tgate\'s token, not the client\'s credentials', { timeout: T }, async () => {
  let r = await describe({ authorization: `Bearer ${key}` });
  assert.equal(r.status, 0, r.message);
  assert.equal(r.seen.metadata.authorization, 'Bearer tcld-first-token');
  assert.equal(r.seen.metadataAll.authorization.length, 1, 'one authorization field');
  r = await describe({ 'x-api-key': key });
  assert.equal(r.status, 0, r.message);
  assert.equal(r.seen.metadata['x-api-key'], undefined, 'the client key in api_key_header is not forwarded');
  assert.equal(r.seen.metadata.authorization, 'Bearer tcld-first-token');
  assert.doesNotMatch(tg.log(), /tcld-first-token/, 'the token is never logged');
});

test('a new token in the file is used after the watch reloads it; a bad one is refused', { timeout: T }, async () => {
  const ok0 = await reloads('success');
  writeToken('tcld-second-token');
  await h.waitFor(async () => (await reloads('success')) > ok0, 10_000 * h.SLOW, 'the reload');
  let r = await describe({ authorization: `Bearer ${key}` });
  assert.equal(r.seen.metadata.authorization, 'Bearer tcld-second-token');
  const bad0 = await reloads('failure');
  writeToken('two words\n');
  await h.waitFor(async () => (await reloads('failure')) > bad0, 10_000 * h.SLOW, 'the refused reload');
  assert.match(tg.log(), /bearer_token_file: .*one word of visible ASCII/);
  r = await describe({ authorization: `Bearer ${key}` });
  assert.equal(r.seen.metadata.authorization, 'Bearer tcld-second-token', 'the last good token stays');
});

test('--check-config refuses a missing or empty token file', { timeout: T }, async () => {
  const cfg = fs.readFileSync(tg.configFile, 'utf8');
  const f = path.join(dir, 'check.yaml');
  for (const [content, re] of [[null, /No such file/], ['\n', /empty/]]) {
    const tf = path.join(dir, `t-${Math.random().toString(16).slice(2)}`);
    if (content !== null) fs.writeFileSync(tf, content);
    fs.writeFileSync(f, cfg.replace(JSON.stringify(tokenFile), JSON.stringify(tf)));
    const r = spawnSync(h.TGATE_BIN, ['--check-config', '-c', f], { encoding: 'utf8' });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(r.stderr, re);
  }
});
