'use strict';
// The listen address belongs to one tgate: its workers share it (SO_REUSEPORT), but a second
// tgate, or any other program, already listening there makes start-up fail with "address in
// use" instead of silently splitting connections with it.

const { test, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./lib/harness.js');

const T = 30_000 * h.SLOW;
const started = [];
after(() => h.stopAll(started));

/** Runs a second tgate on port (bounded); returns its exit status and output. */
function runOn(port, upstream) {
  const dir = h.tempDir('tgate-listen-');
  const f = path.join(dir, 'tgate.yaml');
  fs.writeFileSync(f, h.tgateConfig({ port, upstream, workers: 2 }));
  const r = spawnSync(h.TGATE_BIN, ['-c', f], { cwd: h.ROOT, encoding: 'utf8', timeout: 10_000 * h.SLOW });
  assert.ifError(r.error);
  return r;
}

test('a second tgate on the same listen address is refused, the first keeps serving', { timeout: T }, async () => {
  const upstream = await h.freePort();
  const first = await h.startTgate({ upstream, workers: 2, waitReady: false });
  started.push(first);
  const r = runOn(first.port, upstream);
  assert.notEqual(r.status, 0, `the second tgate started:\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: Address already in use`));
  assert.ok(await h.canConnect(first.port), 'the first tgate stopped accepting');
  assert.equal(first.proc.exitCode, null);
});

test('a port another program listens on is refused', { timeout: T }, async () => {
  const srv = net.createServer((s) => s.destroy());
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', resolve));
  try {
    const r = runOn(srv.address().port, await h.freePort());
    assert.notEqual(r.status, 0, `tgate started on a taken port:\n${r.stderr}`);
    assert.match(r.stderr, /Address already in use/);
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
});
