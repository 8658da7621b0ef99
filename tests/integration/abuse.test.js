'use strict';
// HTTP/2 and TLS abuse against a real tgate: rapid reset, CONTINUATION flood, SETTINGS/PING
// floods from a client that never reads, oversized header lists, a zero-window stall,
// slowloris (plaintext and TLS), 100k streams on one connection, a burst of TLS handshakes.
// Each test runs the attack over raw sockets (lib/h2raw.js) against a fresh single-worker
// tgate (so the attacker and everyone else share one event loop) and asserts that
//   - tgate stays alive and its RSS grows less than a stated bound,
//   - the abusive connection is closed (or its streams reset) within a bounded time when that
//     is the right answer, and nothing leaks once the attacker is gone,
//   - a well-behaved gRPC client on its own connection keeps being served DURING the attack
//     (a minimum number of echo calls completed, none failed).
// Under TGATE_ASAN=1 the bounds are doubled (and ASan's quarantine is capped below, since a
// flood of small allocations otherwise fills its default 256 MiB and shows up as RSS).

const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const tls = require('node:tls');

if (process.env.TGATE_ASAN === '1') {
  process.env.ASAN_OPTIONS = [process.env.ASAN_OPTIONS, 'quarantine_size_mb=16'].filter(Boolean).join(':');
}

const h = require('./lib/harness.js');
const f = require('./lib/h2raw.js');
const { startEcho } = require('./lib/echo.js');

const MiB = 1 << 20;
const T = 90_000 * h.SLOW;
/** An RSS growth bound: mib in the release build, twice that under ASan. */
const rssLimit = (mib) => mib * MiB * (h.ASAN ? 2 : 1);
/** How long a sustained attack keeps reconnecting. */
const ATTACK_MS = 2500;
/** What the well-behaved client must at least get through during an attack. */
const MIN_GOOD_CALLS = 20;
const mib = (b) => (b / MiB).toFixed(1);

let echo;

before(async () => {
  echo = await startEcho();
});

after(async () => {
  if (echo) await echo.close();
});

// ---------- helpers ----------

/** Counts the streams reaching the echo upstream on path (and their closes). */
function upstreamCounter(path) {
  const c = { streams: 0, closed: 0 };
  echo.on('stream', (r) => {
    if (r.headers[':path'] === path) c.streams++;
  });
  echo.on('close', (r) => {
    if (r.headers[':path'] === path) c.closed++;
  });
  return c;
}

async function metric(tg, name) {
  const r = await h.httpGet(tg.adminPort, '/metrics');
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(r.body);
  assert.ok(m, `no ${name} in /metrics`);
  return Number(m[1]);
}

async function assertAlive(tg) {
  assert.equal(tg.proc.exitCode, null, `tgate exited (${tg.proc.exitCode}):\n${tg.log().slice(-4000)}`);
  assert.equal(tg.proc.signalCode, null, `tgate was killed by ${tg.proc.signalCode}:\n${tg.log().slice(-4000)}`);
  assert.equal((await h.httpGet(tg.adminPort, '/health/live')).status, 200);
}

/**
 * A well-behaved client: sequential unary echo calls (64 random bytes, checked) on one
 * session (TLS when tlsOpts), reconnecting if the session dies. Like gRPC clients, it retries
 * a call whose stream was refused (RST_STREAM REFUSED_STREAM: never processed) up to 3 times;
 * `refused` counts those. stop() resolves {ok, failed, refused, errors}.
 */
function goodClient(port, tlsOpts = null) {
  let stopping = false;
  let ok = 0;
  let failed = 0;
  let refused = 0;
  const errors = [];
  const loop = (async () => {
    let s = null;
    while (!stopping) {
      try {
        if (!s || s.destroyed || s.closed) s = await h.h2connect(port, { tls: tlsOpts, ms: 5000 * h.SLOW });
        const body = crypto.randomBytes(64);
        let r;
        for (let attempt = 1; ; attempt++) {
          r = await h.unaryCall(s, '/test.Abuse/Good', body, {}, { timeoutMs: 5000 * h.SLOW });
          if (r.rstCode !== f.E.REFUSED_STREAM || attempt === 3) break;
          refused++;
        }
        if (r.status === 0 && r.data.equals(h.grpcFrame(body))) ok++;
        else {
          failed++;
          errors.push(`grpc-status ${r.status} ${r.message || ''}, reset ${r.rstCode}, ${r.error ? r.error.message : ''}`);
        }
      } catch (e) {
        failed++;
        errors.push(e.message);
        if (s) s.destroy();
        s = null;
      }
      await h.sleep(2);
    }
    if (s) await h.closeSessions([s]);
  })();
  return {
    get ok() {
      return ok;
    },
    async stop() {
      stopping = true;
      await h.within(loop, 10_000 * h.SLOW, 'the good client to stop');
      if (echo.streams.length > 2000) echo.reset();
      return { ok, failed, refused, errors };
    },
  };
}

/** Samples a process's RSS every 20 ms; stop() returns the peak. */
function rssSampler(pid) {
  let peak = h.rssBytes(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, h.rssBytes(pid));
    } catch {
      /* exited: the test says so */
    }
  }, 20);
  return {
    stop() {
      clearInterval(t);
      try {
        peak = Math.max(peak, h.rssBytes(pid));
      } catch {
        /* exited */
      }
      return peak;
    },
  };
}

/**
 * Starts a fresh single-worker tgate in front of the echo upstream (opts go to startTgate),
 * warms it up with a well-behaved client, then runs attack(tg) while that client keeps calling
 * and RSS is sampled. Afterwards: tgate is alive, the client got >= minGood calls through
 * during the attack with none failing, RSS grew < rssBound, and once everyone is gone no
 * connection or stream is left open in tgate. Returns {result (attack's), good, base, peak, tg}.
 */
async function underAttack(t, { opts = {}, tlsOpts = null, rssBound, minGood = MIN_GOOD_CALLS }, attack) {
  const tg = await h.startTgate({ upstream: echo.port, workers: 1, ...opts });
  const sockets = [];
  try {
    const good = goodClient(tg.port, tlsOpts);
    await h.waitFor(() => good.ok >= 5, 10_000 * h.SLOW, 'the good client to get going');
    await h.sleep(200);
    const base = h.rssBytes(tg.pid);
    const sampler = rssSampler(tg.pid);
    const ok0 = good.ok;
    const t0 = Date.now();
    let result;
    let gr;
    current = { good, ok0 };
    try {
      result = await attack(tg, sockets);
    } finally {
      current = null;
      const during = good.ok - ok0;
      const peak = sampler.stop();
      gr = await good.stop();
      gr.during = during;
      gr.ms = Date.now() - t0;
      gr.peak = peak;
    }
    t.diagnostic(
      `tgate RSS ${mib(base)} MiB before, peak ${mib(gr.peak)} MiB (+${mib(gr.peak - base)}); good client: ` +
        `${gr.during} calls during the ${gr.ms} ms attack, ${gr.failed} failed` +
        (gr.refused ? `, ${gr.refused} refused by the upstream and retried` : '') +
        `; upstream GOAWAYs to tgate: ${(tg.log().match(/GOAWAY received/g) || []).length}`,
    );
    await assertAlive(tg);
    assert.equal(gr.failed, 0, `the good client had failures during the attack: ${gr.errors.slice(0, 5).join('; ')}`);
    assert.ok(gr.during >= minGood, `the good client got only ${gr.during} calls through during the attack (want >= ${minGood})`);
    assert.ok(gr.peak - base < rssBound, `tgate RSS grew by ${mib(gr.peak - base)} MiB (bound ${mib(rssBound)} MiB)`);
    for (const s of sockets) s.destroy();
    await h.waitFor(async () => (await metric(tg, 'tgate_connections_open')) === 0, 10_000 * h.SLOW,
      'tgate to have no client connection left');
    await h.waitFor(async () => (await metric(tg, 'tgate_streams_open')) === 0, 10_000 * h.SLOW,
      'tgate to have no stream left');
    return { result, good: gr, base, peak: gr.peak, tg };
  } finally {
    for (const s of sockets) s.destroy();
    await tg.stop();
  }
}

/** Runs one(i) again and again (new connections) for ms, at most max times; returns the results. */
/** The good client of the attack under way (set by underAttack), and its count when it began. */
let current = null;

/**
 * Runs one(i) again and again for ms (at most max times). While the good client has not made
 * MIN_GOOD_CALLS calls during the attack (a slow machine, or tgate ending each round fast) the
 * attack goes on, up to 4 x ms, so that the test judges service under attack rather than the
 * machine's speed or the length of one round.
 */
async function sustain(ms, max, one) {
  const out = [];
  const start = Date.now();
  const slowEnough = () => !current || current.good.ok - current.ok0 >= MIN_GOOD_CALLS;
  for (let i = 0; ; i++) {
    const spent = Date.now() - start;
    if (spent >= 4 * ms || ((spent >= ms || i >= max) && slowEnough())) break;
    out.push(await one(i));
  }
  return out;
}

const describeClose = (c) => (c.goaway ? `GOAWAY ${c.goaway.error}` : c.error ? c.error.code || c.error.message : 'EOF');

// ---------- rapid reset ----------

/**
 * The rapid-reset attack: for ms, new connections each try to open and reset PER_CONN streams
 * on path (even connections: each HEADERS and its RST_STREAM in one write; odd ones: a batch of
 * HEADERS, then their resets in the next write, so tgate has forwarded the calls when they go).
 */
function rapidReset(tg, sockets, path, ms) {
  const PER_CONN = 10_000;
  const BATCH = 50;
  const block = f.requestBlock(path);
  return sustain(ms, 40, async (i) => {
    const c = await f.RawH2.connect(tg.port);
    sockets.push(c);
    const peer = `127.0.0.1:${c.sock.localPort}`;
    let sid = 1;
    let phase = 0;
    let batch = [];
    const t0 = Date.now();
    const w = await c.writeUntil(() => {
      if (sid > 2 * PER_CONN) return null;
      if (i % 2 === 0) {
        const parts = [];
        for (let k = 0; k < BATCH; k++, sid += 2) parts.push(f.headers(sid, block), f.rstStream(sid, f.E.CANCEL));
        return Buffer.concat(parts);
      }
      if (phase === 0) {
        batch = [];
        for (let k = 0; k < BATCH; k++, sid += 2) batch.push(sid);
        phase = 1;
        return Buffer.concat(batch.map((x) => f.headers(x, block)));
      }
      phase = 0;
      return Buffer.concat(batch.map((x) => f.rstStream(x, f.E.CANCEL)));
    }, 10_000 * h.SLOW);
    const closed = await c.waitClosed(5000 * h.SLOW);
    return { peer, written: (sid - 1) / 2, stoppedBy: w.stoppedBy, closed, ms: c.closedAt ? c.closedAt - t0 : null, how: describeClose(c) };
  });
}

test('rapid reset (CVE-2023-44487): HEADERS+RST_STREAM by the thousand on one connection is cut off', { timeout: T }, async (t) => {
  const PATH = '/test.Abuse/RapidReset';
  const up = upstreamCounter(PATH);
  // tgate's access log names each call's peer: the streams tgate took per connection.
  const accessLog = `${h.tempDir('tgate-abuse-')}/access.log`;
  const { result: runs } = await underAttack(t, { opts: { accessLog }, rssBound: rssLimit(32) },
    (tg, sockets) => rapidReset(tg, sockets, PATH, ATTACK_MS));
  await h.sleep(200); // upstream stream events still in flight
  const taken = new Map();
  for (const line of fs.readFileSync(accessLog, 'utf8').split('\n')) {
    if (!line.includes(PATH)) continue;
    const { peer } = JSON.parse(line);
    taken.set(peer, (taken.get(peer) || 0) + 1);
  }
  for (const r of runs) r.taken = taken.get(r.peer) || 0;
  const total = runs.reduce((a, r) => a + r.taken, 0);
  t.diagnostic(`${runs.length} connections; streams tgate took per connection: ${runs.map((r) => r.taken).join(', ')}; ` +
    `written before the close: ${runs.map((r) => r.written).join(', ')}; ` +
    `closed after ${runs.map((r) => r.ms).join(', ')} ms (${[...new Set(runs.map((r) => r.how))].join(', ')}); ` +
    `${up.streams} of ${total} streams reached the upstream`);
  for (const r of runs) {
    assert.ok(r.closed, `tgate did not close a rapid-reset connection (${r.written} streams written, ${r.taken} taken)`);
    // nghttp2's limit lets a burst of 1000 resets through per connection, then about 33 a second.
    assert.ok(r.taken > 0 && r.taken <= 2000, `tgate took ${r.taken} reset streams on one connection`);
  }
  assert.ok(runs.length >= 2, 'at least two attacking connections ran');
  assert.ok(up.streams <= total, `${up.streams} streams reached the upstream, more than the ${total} tgate took`);
});

test('rapid reset from reconnecting clients does not get the shared upstream connection closed', { timeout: T }, async (t) => {
  // A call cancelled in the same read as its HEADERS never leaves tgate; one cancelled after
  // it was forwarded must be cancelled at the frontend too, so its RST_STREAM goes upstream.
  // nghttp2 lets each client connection cancel ~1000 before closing it, and reconnecting
  // clients add up on the shared upstream connection: a frontend with its own rapid-reset
  // detector (Node's, here: nghttp2's 1000 burst, 33/s) would GOAWAY it, refusing the good
  // client's calls. tgate rotates an upstream connection that has sent 500 resets faster than
  // 25/s: it drains (its calls finish) and new calls go to a fresh one.
  const PATH = '/test.Abuse/RapidResetRelayed';
  const { good, tg } = await underAttack(t, { rssBound: rssLimit(32) }, (x, sockets) => rapidReset(x, sockets, PATH, ATTACK_MS));
  const goaways = (tg.log().match(/upstream .*GOAWAY received/g) || []).length;
  assert.equal(goaways, 0, `the upstream sent tgate ${goaways} GOAWAY(s) on its shared connection`);
  assert.equal(good.refused, 0, `${good.refused} of the good client's calls were refused by the upstream`);
  assert.match(tg.log(), /calls cancelled on one connection in quick succession; new calls go to a fresh connection/,
    'no upstream connection was rotated: the attack did not reach the reset budget');
});

// ---------- CONTINUATION flood ----------

test('CONTINUATION flood: endless CONTINUATION frames close the connection at once', { timeout: T }, async (t) => {
  const PATH = '/test.Abuse/Continuation';
  const up = upstreamCounter(PATH);
  // ~15 KiB of header fields per frame, so a missing limit would show as memory too.
  const fields = f.hpackBlock(Array.from({ length: 150 }, (_, k) => [`x-flood-${k}`, 'v'.repeat(90)]));
  const fillers = [fields, Buffer.alloc(0), Buffer.alloc(16000, 0x41)]; // fields, empty frames, garbage
  const { result: runs } = await underAttack(t, { rssBound: rssLimit(32) }, async (tg, sockets) =>
    sustain(ATTACK_MS, 200, async (i) => {
      // no SETTINGS ACK from this client: it would land inside the header block
      const c = await f.RawH2.connect(tg.port, { autoAck: false });
      sockets.push(c);
      const filler = fillers[i % fillers.length];
      const t0 = Date.now();
      const w = await c.writeUntil((n) => {
        if (n === 0) return f.headers(1, f.requestBlock(PATH), { endHeaders: false });
        if (n > 10_000) return null; // 100,000 frames, ~1.5 GB of headers
        return Buffer.concat(Array.from({ length: 10 }, () => f.continuation(1, filler)));
      }, 10_000 * h.SLOW);
      const closed = await c.waitClosed(5000 * h.SLOW);
      return { frames: Math.max(0, w.chunks - 1) * 10, closed, ms: c.closedAt ? c.closedAt - t0 : null, how: describeClose(c) };
    }),
  );
  const ms = runs.map((r) => r.ms);
  t.diagnostic(`${runs.length} connections; closed after at most ${Math.max(...runs.map((r) => r.frames))} CONTINUATION ` +
    `frames written, ${Math.min(...ms)}..${Math.max(...ms)} ms (${[...new Set(runs.map((r) => r.how))].join(', ')})`);
  for (const r of runs) {
    assert.ok(r.closed, `tgate did not close the connection (${r.frames} CONTINUATION frames written)`);
    assert.ok(r.frames < 10_000, `tgate read ${r.frames} CONTINUATION frames before closing`);
  }
  assert.ok(runs.length >= 3, 'every kind of filler ran');
  assert.equal(up.streams, 0, 'no flooded request reached the upstream');
});

// ---------- SETTINGS and PING floods from a client that never reads ----------

for (const kind of ['SETTINGS', 'PING']) {
  test(`${kind} flood from a client that never reads: the queued ACKs are bounded, the connection closed`, { timeout: T }, async (t) => {
    const one = kind === 'SETTINGS' ? f.settings([[f.S.MAX_CONCURRENT_STREAMS, 100]]) : f.ping(Buffer.from('abuse!!!'));
    const chunk = Buffer.concat(Array.from({ length: 4096 }, () => one));
    // Per connection at most 256 MiB (~17 million frames). Before tgate's output backs up, the
    // ACKs fill the socket buffers of both ends (about 10 MB of frames here).
    const LIMIT = 256 * MiB;
    const { result: runs } = await underAttack(t, { rssBound: rssLimit(32) }, async (tg, sockets) =>
      sustain(ATTACK_MS, 20, async () => {
        const c = await f.RawH2.connect(tg.port, { read: false });
        sockets.push(c);
        const t0 = Date.now();
        const w = await c.writeUntil((n) => (n * chunk.length < LIMIT ? chunk : null), 15_000 * h.SLOW);
        const closed = await c.waitClosed(5000 * h.SLOW);
        return { frames: w.chunks * 4096, bytes: w.bytes, stoppedBy: w.stoppedBy, closed, ms: c.closedAt ? c.closedAt - t0 : null };
      }),
    );
    t.diagnostic(`${runs.length} connections, each closed after ${runs.map((r) => `${r.frames} frames/${r.ms} ms`).join(', ')}`);
    for (const r of runs) {
      assert.ok(r.closed, `tgate did not close a ${kind} flood (${r.frames} frames written, ${r.stoppedBy})`);
      assert.equal(r.stoppedBy, 'closed', `the flood ended by ${r.stoppedBy}, not by tgate closing it`);
      assert.ok(r.bytes < LIMIT / 2, `tgate took ${mib(r.bytes)} MiB of ${kind} frames before closing`);
    }
  });
}

// ---------- oversized header lists ----------

/** Splits a header block into HEADERS + CONTINUATION frames of at most 16 KiB. */
function headerFrames(sid, block) {
  const out = [];
  for (let off = 0; off < block.length; off += 16384) {
    const part = block.subarray(off, off + 16384);
    const endHeaders = off + 16384 >= block.length;
    out.push(off === 0 ? f.headers(sid, part, { endHeaders }) : f.continuation(sid, part, { endHeaders }));
  }
  return out;
}

function bigBlock(path, bytes) {
  const fields = [];
  for (let k = 0, n = 0; n < bytes; k++, n += 1012) fields.push([`x-big-${k}`, 'v'.repeat(1000)]);
  return Buffer.concat([f.requestBlock(path), f.hpackBlock(fields)]);
}

/**
 * Sends a normal call on an open raw connection; resolves {data, end} once the stream ends
 * ('trailers', 'rst' or 'closed'), within ms.
 */
function rawCall(c, sid, path, payload, ms) {
  return new Promise((resolve) => {
    let data = Buffer.alloc(0);
    const prev = c.onFrame;
    const done = (end) => {
      clearTimeout(t);
      c.onFrame = prev;
      resolve({ data, end });
    };
    const t = setTimeout(() => done('timeout'), ms);
    c.onFrame = (fr) => {
      if (prev) prev(fr);
      if (fr.streamId !== sid) return;
      if (fr.type === f.T.DATA) data = Buffer.concat([data, fr.payload]);
      if (fr.type === f.T.RST_STREAM) done('rst');
      else if (fr.type === f.T.HEADERS && fr.flags & f.F.END_STREAM) done('trailers');
    };
    c.closed.then(() => done('closed'));
    c.write(Buffer.concat([f.headers(sid, f.requestBlock(path)), f.data(sid, f.grpcMessage(payload), { endStream: true })]));
  });
}

test('oversized header lists (1 MiB, 120 KiB, an HPACK bomb) are refused; nothing reaches the upstream', { timeout: T }, async (t) => {
  const PATH = '/test.Abuse/BigHeaders';
  const AFTER = '/test.Abuse/AfterBigHeaders';
  const up = upstreamCounter(PATH);
  const upAfter = upstreamCounter(AFTER);
  const oneMiB = headerFrames(1, bigBlock(PATH, MiB)); // 65 frames
  const within = headerFrames(1, bigBlock(PATH, 120 * 1024)); // 8 frames: under the CONTINUATION limit
  // One 4000-byte field entered into the HPACK dynamic table, then 12,000 one-byte references
  // to it: a 16 KiB frame that decodes to 48 MB of headers.
  const bomb = [f.headers(1, Buffer.concat([
    f.requestBlock(PATH),
    Buffer.from([0x40]), f.hpackString('x-bomb'), f.hpackString('b'.repeat(4000)),
    Buffer.alloc(12000, 0x80 | 62),
  ]))];
  assert.ok(bomb[0].length - 9 <= 16384, 'the bomb fits in one frame');
  const variants = [['1 MiB in 65 frames', oneMiB], ['120 KiB in 8 frames', within], ['HPACK bomb', bomb]];
  const seen = {};
  const { result: runs } = await underAttack(t, { rssBound: rssLimit(32) }, async (tg, sockets) =>
    sustain(ATTACK_MS, 300, async (i) => {
      const [name, frames] = variants[i % variants.length];
      const c = await f.RawH2.connect(tg.port);
      sockets.push(c);
      const t0 = Date.now();
      // A trailers-only answer (HEADERS with END_STREAM: grpc-status 8 from limits.max_header_list_size,
      // as limits.test.js checks with a real client) also refuses it; nothing may reach the upstream.
      let answered = false;
      const prevFrame = c.onFrame;
      c.onFrame = (fr) => {
        if (prevFrame) prevFrame(fr);
        if (fr.streamId === 1 && fr.type === f.T.HEADERS && fr.flags & f.F.END_STREAM) answered = true;
      };
      await c.write(Buffer.concat([...frames, f.data(1, f.grpcMessage(Buffer.from('x')), { endStream: true })]));
      // Refused: the stream reset, answered at once (trailers-only), or the connection closed.
      await h.waitFor(() => c.rsts.has(1) || c.closedAt || answered, 5000 * h.SLOW, `${name}: an answer`);
      c.onFrame = prevFrame;
      const ms = Date.now() - t0;
      let how = c.rsts.has(1) ? `RST_STREAM ${f.ERROR_NAMES[c.rsts.get(1)]}` : c.closedAt ? `closed (${describeClose(c)})` : 'trailers-only answer';
      let after = null;
      if (!c.closedAt) {
        // The connection survived the refusal: it must still serve a normal call.
        after = await rawCall(c, 3, AFTER, Buffer.from('after'), 5000 * h.SLOW);
        how += `, then a normal call: ${after.end}`;
      }
      c.destroy();
      seen[name] = seen[name] || new Set();
      seen[name].add(how);
      return { name, how, ms, after, headers: c.counts.HEADERS || 0, rst: c.rsts.get(1) };
    }),
  );
  t.diagnostic(Object.entries(seen).map(([k, v]) => `${k}: ${[...v].join(' | ')}`).join('; ') +
    `; answered within ${Math.max(...runs.map((r) => r.ms))} ms; ${runs.length} attempts`);
  assert.ok(runs.length >= 3, 'every variant ran');
  for (const r of runs) {
    assert.ok(r.rst !== undefined || r.how.startsWith('closed') || r.how.startsWith('trailers-only'), `${r.name}: refused (${r.how})`);
    if (r.after) {
      assert.equal(r.after.end, 'trailers', `${r.name}: the next call on the same connection ended by ${r.after.end}`);
      assert.deepEqual(r.after.data, f.grpcMessage(Buffer.from('after')), `${r.name}: the next call was echoed`);
    }
  }
  assert.equal(up.streams, 0, 'no oversized request reached the upstream');
  assert.equal(upAfter.streams, runs.filter((r) => r.after).length, 'every follow-up call reached the upstream');
});

// ---------- zero-window stall ----------

/** Opens n streams asking the echo upstream for size-byte responses, on a client with a zero window that never reads. */
async function stall(tg, sockets, path, n, size) {
  const c = await f.RawH2.connect(tg.port, { read: false, settings: [[f.S.INITIAL_WINDOW_SIZE, 0]] });
  sockets.push(c);
  const parts = [];
  for (let i = 0; i < n; i++) {
    const sid = 1 + 2 * i;
    parts.push(f.headers(sid, f.requestBlock(path, { 'x-mode': 'big', 'x-size': String(size) })),
      f.data(sid, f.grpcMessage(Buffer.from('x')), { endStream: true }));
  }
  await c.write(Buffer.concat(parts));
  return c;
}

test('zero-window stall: tgate buffers no more than the flow-control windows allow, and cancels upstream when the client goes', { timeout: T }, async (t) => {
  const PATH = '/test.Abuse/ZeroWindow';
  const up = upstreamCounter(PATH);
  const N = 120;
  const SIZE = MiB; // 120 MiB asked for; tgate may hold 256 KiB (its stream window) per stream
  let c;
  await underAttack(t, { rssBound: rssLimit(64) }, async (tg, sockets) => {
    c = await stall(tg, sockets, PATH, N, SIZE);
    await h.waitFor(() => up.streams === N, 10_000 * h.SLOW, `all ${N} stalled calls to reach the upstream`);
    await h.sleep(2000); // the good client keeps calling while the responses pile up
    assert.ok(c.isOpen(), 'a stalled client is not an error: its connection stays open');
    const open = await metric(tg, 'tgate_streams_open');
    assert.ok(open >= N, `${open} streams open in tgate, want the ${N} stalled ones`);
    c.destroy();
    await h.waitFor(() => up.closed === N, 5000 * h.SLOW, 'the upstream calls to be cancelled once the client left');
  });
  t.diagnostic(`${N} stalled streams x ${mib(SIZE)} MiB asked for; ${up.closed} upstream calls cancelled after the client left`);
});

test('zero-window stall: stalled responses do not starve other clients sharing the upstream connection', {
  timeout: T,
}, async (t) => {
  const PATH = '/test.Abuse/ZeroWindowStarve';
  const up = upstreamCounter(PATH);
  // 300 streams x 256 KiB (tgate's stream window) = 75 MiB: more than the 64 MiB window of the
  // upstream connection, which tgate therefore credits as data arrives, and more than the 64 MiB
  // one client connection may leave unread (TG_CONN_MAX_UNREAD), after which it is closed.
  const N = 300;
  const SIZE = 320 * 1024;
  await underAttack(t, { rssBound: rssLimit(96) }, async (tg, sockets) => {
    await stall(tg, sockets, PATH, N, SIZE);
    await h.waitFor(() => up.streams === N, 10_000 * h.SLOW, `all ${N} stalled calls to reach the upstream`);
    await h.sleep(3000);
  });
});

// ---------- slowloris ----------

/** The ClientHello Node's TLS client sends (ALPN h2, SNI localhost), captured by a plain TCP server. */
function captureClientHello() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer((s) => {
      s.once('data', (d) => {
        s.destroy();
        srv.close();
        resolve(d);
      });
    });
    srv.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername: 'localhost', ALPNProtocols: ['h2'] });
      c.on('error', () => {});
      setTimeout(() => reject(new Error('no ClientHello within 5 s')), 5000).unref();
    });
  });
}

/**
 * Opens n raw TCP connections; once connected each writes send(i) (if any) and then nothing.
 * Resolves the list of {sock, closedAt} once all are connected.
 */
async function idleConnections(port, n, send) {
  const conns = [];
  const t0 = Date.now();
  await Promise.all(Array.from({ length: n }, (_, i) => new Promise((resolve) => {
    const rec = { sock: net.connect({ host: '127.0.0.1', port }), closedAt: null, connected: false };
    conns.push(rec);
    rec.sock.on('error', () => {});
    rec.sock.on('data', () => {});
    rec.sock.on('close', () => {
      rec.closedAt = Date.now() - t0;
      resolve();
    });
    rec.sock.on('connect', () => {
      rec.connected = true;
      const b = send && send(i);
      if (b && b.length) rec.sock.write(b);
      resolve();
    });
  })));
  return conns;
}

async function slowloris(t, { tlsOn, n, send, rssBound }) {
  const c = h.certs();
  const tlsOpts = tlsOn ? { ca: c.ca, ...c.pair('worker-a') } : null;
  let conns;
  const { result } = await underAttack(t, { opts: { tls: tlsOn }, tlsOpts, rssBound }, async (tg, sockets) => {
    const t0 = Date.now();
    const accepted0 = await metric(tg, 'tgate_connections_accepted_total');
    conns = await idleConnections(tg.port, n, send);
    for (const x of conns) sockets.push(x.sock);
    const connected = conns.filter((x) => x.connected).length;
    // The accepted counter, not the open gauge: on a loaded machine the first stalled
    // connections may already reach their 10 s timeout before the gauge is read.
    await h.waitFor(async () => (await metric(tg, 'tgate_connections_accepted_total')) - accepted0 >= connected,
      10_000 * h.SLOW, 'tgate to have accepted every connection');
    const peakOpen = await metric(tg, 'tgate_connections_open');
    // tgate's handshake/preface timeout is 10 s (TG_HANDSHAKE_TIMEOUT_S).
    await h.waitFor(() => conns.every((x) => x.closedAt !== null), 30_000 * h.SLOW, `tgate to close all ${n} stalled connections`);
    return { connected, peakOpen, ms: Date.now() - t0 };
  });
  const times = conns.map((x) => x.closedAt).sort((a, b) => a - b);
  t.diagnostic(`${result.connected} of ${n} connected (${result.peakOpen} open in tgate at once); ` +
    `tgate closed them after ${times[0]}..${times[times.length - 1]} ms`);
  assert.equal(result.connected, n, 'every stalled connection was accepted');
  // Not before the 10 s timeout is near (no false positives on slow clients), not much after it.
  assert.ok(times[0] >= 5000, `a stalled connection was closed after only ${times[0]} ms`);
}

test('slowloris (h2c): idle connections that never finish the preface are closed by the handshake timeout', { timeout: T }, async (t) => {
  const PREFACE = f.PREFACE;
  // a third send nothing, a third a few bytes of the preface, a third all but its last byte
  await slowloris(t, { tlsOn: false, n: 300, rssBound: rssLimit(32),
    send: (i) => [null, PREFACE.subarray(0, 5), PREFACE.subarray(0, PREFACE.length - 1)][i % 3] });
});

test('slowloris (TLS): handshakes that stall are closed by the handshake timeout', { timeout: T }, async (t) => {
  const hello = await captureClientHello();
  // a third send nothing, a third half a ClientHello, a third a whole one (tgate answers and waits)
  await slowloris(t, { tlsOn: true, n: 300, rssBound: rssLimit(48),
    send: (i) => [null, hello.subarray(0, hello.length >> 1), hello][i % 3] });
});

// ---------- 100k streams on one connection ----------

test('100,000 streams opened one after another on one connection: all served, memory flat', { timeout: T }, async (t) => {
  const PATH = '/test.Abuse/ManyStreams';
  const N = 100_000; // stream ids up to 199,999
  const WINDOW = 200; // streams in flight
  const up = upstreamCounter(PATH);
  const msg = f.grpcMessage(Buffer.from('0123456789'));
  const block = f.requestBlock(PATH);
  const { result: r } = await underAttack(t, { rssBound: rssLimit(32) }, async (tg, sockets) => {
    let sent = 0;
    let done = 0;
    let ok = 0;
    const bad = [];
    const got = new Map(); // stream id -> response body bytes
    const rss = [];
    let finish;
    const finished = new Promise((resolve) => (finish = resolve));
    let c;
    const pump = () => {
      const parts = [];
      for (; sent < N && sent - done < WINDOW; sent++) {
        const sid = 1 + 2 * sent;
        parts.push(f.headers(sid, block), f.data(sid, msg, { endStream: true }));
      }
      if (parts.length) c.write(Buffer.concat(parts));
    };
    const onFrame = (fr) => {
      if (!fr.streamId) return;
      if (fr.type === f.T.DATA) got.set(fr.streamId, (got.get(fr.streamId) || 0) + fr.payload.length);
      const end = fr.type === f.T.RST_STREAM || ((fr.type === f.T.HEADERS || fr.type === f.T.DATA) && fr.flags & f.F.END_STREAM);
      if (!end) return;
      const bytes = got.get(fr.streamId);
      got.delete(fr.streamId);
      done++;
      // success: the echoed message, then trailers (a local error would be trailers-only)
      if (fr.type === f.T.HEADERS && bytes === msg.length) ok++;
      else if (bad.length < 5) bad.push(`stream ${fr.streamId}: ${f.ERROR_NAMES[fr.type] || fr.type} after ${bytes} bytes`);
      if (done % (N / 10) === 0) rss.push(h.rssBytes(tg.pid));
      if (echo.streams.length > 2000) echo.reset();
      if (done === N) finish();
      else if (sent - done < WINDOW / 2) pump();
    };
    const t0 = Date.now();
    c = await f.RawH2.connect(tg.port, { onFrame, settings: [[f.S.INITIAL_WINDOW_SIZE, 1 << 20]] });
    sockets.push(c);
    await c.write(f.windowUpdate(0, 1 << 30));
    pump();
    const limit = 60_000 * h.SLOW;
    let timer;
    await Promise.race([finished, c.closed, new Promise((resolve) => (timer = setTimeout(resolve, limit)))]);
    clearTimeout(timer);
    return { sent, done, ok, bad, rss, ms: Date.now() - t0, closed: c.closedAt !== null, goaway: c.goaway, open: c.isOpen() };
  });
  t.diagnostic(`${r.done} of ${N} streams done in ${r.ms} ms (${r.ok} ok); tgate RSS every 10%: ${r.rss.map(mib).join(', ')} MiB`);
  assert.equal(r.closed, false, `the connection ended (${r.goaway ? `GOAWAY ${r.goaway.error}` : 'closed'}) after ${r.done} streams`);
  assert.equal(r.done, N, `only ${r.done} of ${N} streams ended in time`);
  assert.equal(r.ok, N, `failed streams: ${r.bad.join('; ')}`);
  assert.equal(up.streams, N, 'every stream reached the upstream');
  // flat: after the first 10% (allocator and, under ASan, quarantine warmed up) it stays put
  const flat = r.rss[r.rss.length - 1] - r.rss[0];
  assert.ok(flat < rssLimit(8), `RSS grew by ${mib(flat)} MiB over the last 90% of the streams`);
});

// ---------- TLS handshake flood ----------

// The bursts run in a worker thread: 167 client-side mTLS handshakes per burst saturate a
// Node event loop (0.8 s of CPU for a 0.9 s burst, loop delay p50 90 ms, against 0.16 s of
// tgate's CPU), and a good client sharing that loop would measure the test, not tgate.
const BURST_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const net = require('node:net');
const tls = require('node:tls');
const { port, tlsOpts, hello, failMs } = workerData;
const one = (i, counts) => new Promise((resolve) => {
  const kind = i % 3;
  let sock;
  let settled = false;
  const finish = (what) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    counts[what]++;
    sock.destroy();
    resolve();
  };
  const timer = setTimeout(() => finish('failed'), failMs);
  if (kind === 0) {
    // a full mTLS handshake, then gone without a word
    sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['h2'], ...tlsOpts });
    sock.once('secureConnect', () => finish('completed'));
  } else {
    sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => {
      if (kind === 1) {
        // the whole ClientHello: tgate does its key exchange and signs; the client leaves
        sock.write(hello);
        sock.once('data', () => finish('abandonedAfterServerFlight'));
      } else {
        sock.write(hello.subarray(0, 60));
        setImmediate(() => finish('abandonedMidHello'));
      }
    });
  }
  sock.on('error', () => finish('failed'));
});
parentPort.on('message', async (n) => {
  if (n === 0) return process.exit(0);
  const counts = { completed: 0, abandonedAfterServerFlight: 0, abandonedMidHello: 0, failed: 0 };
  await Promise.all(Array.from({ length: n }, (_, i) => one(i, counts)));
  parentPort.postMessage(counts);
});
`;

test('bursts of 500 concurrent TLS handshakes, most abandoned midway, do not stop service', { timeout: T }, async (t) => {
  const { Worker } = require('node:worker_threads');
  const c = h.certs();
  const tlsOpts = { ca: c.ca, ...c.pair('worker-a') };
  const hello = await captureClientHello();
  const N = 500;
  let bursts = 0;
  const counts = { completed: 0, abandonedAfterServerFlight: 0, abandonedMidHello: 0, failed: 0 };
  await underAttack(t, { opts: { tls: true }, tlsOpts, rssBound: rssLimit(64) }, async (tg) => {
    const w = new Worker(BURST_WORKER, { eval: true, workerData: { port: tg.port, tlsOpts, hello, failMs: 20_000 * h.SLOW } });
    const exited = new Promise((resolve) => w.once('exit', resolve));
    try {
      const burst = () => new Promise((resolve, reject) => {
        const onError = (e) => reject(e);
        w.once('error', onError);
        w.once('message', (m) => {
          w.off('error', onError);
          resolve(m);
        });
        w.postMessage(N);
      });
      // Bursts of N at once, one after the other, for ATTACK_MS (at least one, at most 4).
      await sustain(ATTACK_MS, 4, async () => {
        bursts++;
        const m = await h.within(burst(), 30_000 * h.SLOW, `burst ${bursts}`);
        for (const k of Object.keys(counts)) counts[k] += m[k];
      });
    } finally {
      w.postMessage(0);
      await h.within(exited, 10_000 * h.SLOW, 'the burst thread to exit').catch(() => w.terminate());
    }
  });
  t.diagnostic(`${bursts} burst(s) of ${N} handshakes: ${JSON.stringify(counts)}`);
  assert.equal(counts.failed, 0, 'every handshake went as the client wanted');
  assert.equal(counts.completed + counts.abandonedAfterServerFlight + counts.abandonedMidHello, bursts * N);
  assert.ok(counts.completed >= bursts * Math.floor(N / 3), 'full handshakes completed during the flood');
});
