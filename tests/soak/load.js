'use strict';
// Mixed gRPC load for the soak run (scripts/soak.sh, tests/soak/run.js): raw HTTP/2 over TLS to
// tgate, over several connections that are replaced now and then (alternately closed
// gracefully and dropped with calls in flight). Every call has a kind, an expected outcome
// and a bound; what happened is counted by kind and outcome, and a call whose outcome is not
// the expected one is an unexpected failure (kept, the first ones in detail).
//
// Kinds (API key A holds team-a:write and team-a:worker):
//   describe         DescribeNamespace team-a, key A                         -> 0
//   start            StartWorkflowExecution team-a, key A                    -> 0
//   poll             PollWorkflowTaskQueue team-a held 0.5..6 s by the frontend -> 0
//   denied           DescribeNamespace team-b, key A                         -> 7
//   unauthenticated  no credentials                                          -> 16
//   bad_key          an API key tgate does not know                          -> 16
//   cancelled        PollWorkflowTaskQueue held 30 s, cancelled by the client after 50..800 ms
// A call on a connection the load dropped on purpose ends "cut" (expected, counted apart).

const crypto = require('node:crypto');
const http2 = require('node:http2');
const proto = require('@temporalio/proto');

const WS = '/temporal.api.workflowservice.v1.WorkflowService';
const { NGHTTP2_CANCEL } = http2.constants;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rand = (a, b) => a + Math.floor(Math.random() * (b - a + 1));

function encode(typeName, obj) {
  const T = proto.lookupType(`temporal.api.${typeName}`);
  return Buffer.from(T.encode(T.fromObject(obj)).finish());
}

function frame(buf) {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(buf.length, 1);
  return Buffer.concat([h, buf]);
}

const describe = (namespace) => encode('workflowservice.v1.DescribeNamespaceRequest', { namespace });
const poll = () => encode('workflowservice.v1.PollWorkflowTaskQueueRequest', { namespace: 'team-a', taskQueue: { name: 'soak' }, identity: 'soak' });
const start = () => {
  const id = crypto.randomUUID();
  return encode('workflowservice.v1.StartWorkflowExecutionRequest', {
    namespace: 'team-a', workflowId: `soak-${id}`, workflowType: { name: 'SoakWorkflow' }, taskQueue: { name: 'soak' }, requestId: id,
  });
};

/**
 * opts: {port, ca, keyA, slow (multiplier for bounds), sessions (6), unaryLoops (2 per
 * session), pauseMs ([20, 60] between unary calls), recycleMs ([15000, 25000])}.
 * Returns {stats, stop(): Promise} — stop() ends the loops, waits for calls in flight and
 * closes every connection.
 */
function startLoad(opts) {
  const slow = opts.slow || 1;
  const nSessions = opts.sessions || 6;
  const unaryLoops = opts.unaryLoops || 2;
  const [pauseMin, pauseMax] = opts.pauseMs || [20, 60];
  const [recycleMin, recycleMax] = opts.recycleMs || [15000, 25000];
  const auth = { authorization: `Bearer ${opts.keyA}` };
  const bogus = { authorization: `Bearer tgk_${crypto.randomBytes(24).toString('base64url')}` };

  const KINDS = {
    describe: { path: `${WS}/DescribeNamespace`, msg: () => describe('team-a'), headers: auth, expect: '0' },
    start: { path: `${WS}/StartWorkflowExecution`, msg: start, headers: auth, expect: '0' },
    denied: { path: `${WS}/DescribeNamespace`, msg: () => describe('team-b'), headers: auth, expect: '7' },
    unauthenticated: { path: `${WS}/DescribeNamespace`, msg: () => describe('team-a'), headers: {}, expect: '16' },
    bad_key: { path: `${WS}/DescribeNamespace`, msg: () => describe('team-a'), headers: bogus, expect: '16' },
    poll: { path: `${WS}/PollWorkflowTaskQueue`, msg: poll, headers: auth, expect: '0' },
    cancelled: { path: `${WS}/PollWorkflowTaskQueue`, msg: poll, headers: auth, expect: 'cancelled' },
  };
  // Weighted choice for the unary loops.
  const UNARY = [['describe', 35], ['start', 25], ['denied', 20], ['unauthenticated', 12], ['bad_key', 8]];
  const pickUnary = () => {
    let x = Math.random() * 100;
    for (const [k, w] of UNARY) if ((x -= w) < 0) return k;
    return 'describe';
  };

  const stats = {
    calls: 0,
    byKind: {}, // kind -> outcome -> count
    unexpected: 0,
    unexpectedSamples: [],
    connectionsOpened: 0,
    connectionsClosedGracefully: 0,
    connectionsDropped: 0,
    connectFailures: 0,
    connectionsLostUnexpectedly: 0,
    maxMs: {}, // kind -> slowest call (ms)
  };
  const count = (kind, outcome, ms, detail) => {
    stats.calls++;
    const k = (stats.byKind[kind] = stats.byKind[kind] || {});
    k[outcome] = (k[outcome] || 0) + 1;
    if (outcome !== 'cut' && outcome !== 'cancelled') stats.maxMs[kind] = Math.max(stats.maxMs[kind] || 0, ms);
    if (outcome !== KINDS[kind].expect && outcome !== 'cut') {
      stats.unexpected++;
      if (stats.unexpectedSamples.length < 20) stats.unexpectedSamples.push({ time: new Date().toISOString(), kind, outcome, ms, ...detail });
    }
  };
  const unexpectedEvent = (what) => {
    stats.unexpected++;
    if (stats.unexpectedSamples.length < 20) stats.unexpectedSamples.push({ time: new Date().toISOString(), event: what });
  };

  let running = true;
  let wake;
  const stopped = new Promise((r) => (wake = r));
  /** Sleeps ms, or less when the load is stopped. */
  const nap = (ms) => Promise.race([sleep(ms), stopped]);
  const inflight = new Set();

  function connect() {
    const s = http2.connect(`https://127.0.0.1:${opts.port}`, {
      ca: opts.ca, servername: 'localhost', ALPNProtocols: ['h2'], settings: { enablePush: false }, maxSessionMemory: 64,
    });
    s.byUs = null; // 'close' | 'drop' once the load retires it
    s.on('error', (e) => (s.lastError = e));
    s.on('goaway', (code) => {
      if (!s.byUs && running) unexpectedEvent(`GOAWAY ${code} from tgate`);
    });
    s.on('close', () => {
      if (!s.byUs && running) {
        stats.connectionsLostUnexpectedly++;
        unexpectedEvent(`connection closed by tgate (${s.lastError ? s.lastError.message : 'no error'})`);
      }
    });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('no TLS/HTTP2 connection within 10 s'));
      }, 10_000 * slow);
      s.once('connect', () => {
        clearTimeout(t);
        stats.connectionsOpened++;
        resolve(s);
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  /** One call on slot.session; resolves when counted. */
  function call(slot, kind, { delayMs = null, cancelAfterMs = null } = {}) {
    const K = KINDS[kind];
    const s = slot.session;
    const headers = { ':method': 'POST', ':path': K.path, 'content-type': 'application/grpc', te: 'trailers', ...K.headers };
    if (delayMs !== null) headers['x-test-delay-ms'] = String(delayMs);
    const bound = ((delayMs || 0) + 10_000) * slow;
    const t0 = Date.now();
    const p = new Promise((resolve) => {
      let req;
      try {
        req = s.request(headers);
      } catch (e) {
        // The session went away between picking it and using it (being replaced).
        if (s.byUs) count(kind, 'cut', 0, {});
        else count(kind, `request-error:${e.code || e.message}`, 0, {});
        resolve();
        return;
      }
      let response = null;
      let trailers = null;
      let cancelled = false;
      let timedOut = false;
      req.on('response', (h) => (response = h));
      req.on('trailers', (h) => (trailers = h));
      req.on('data', () => {});
      req.on('error', () => {});
      const timer = setTimeout(() => {
        timedOut = true;
        req.close(NGHTTP2_CANCEL);
      }, bound);
      let cancelTimer = null;
      if (cancelAfterMs !== null) {
        cancelTimer = setTimeout(() => {
          cancelled = true;
          req.close(NGHTTP2_CANCEL);
        }, cancelAfterMs);
      }
      req.on('close', () => {
        clearTimeout(timer);
        clearTimeout(cancelTimer);
        const ms = Date.now() - t0;
        const src = trailers || response || {};
        const st = src['grpc-status'];
        let outcome;
        if (timedOut) outcome = 'timeout';
        else if (cancelled && st === undefined) outcome = 'cancelled';
        else if (st !== undefined) outcome = String(st);
        else if (s.byUs === 'drop') outcome = 'cut';
        else outcome = `reset:${req.rstCode}`;
        const detail = { status: st, rst: req.rstCode, message: src['grpc-message'], http: response && response[':status'] };
        count(kind, outcome, ms, detail);
        resolve();
      });
      req.end(frame(K.msg()));
    });
    inflight.add(p);
    p.finally(() => inflight.delete(p));
    return p;
  }

  const slots = [];
  async function openSlot(slot) {
    for (let attempt = 0; ; attempt++) {
      try {
        slot.session = await connect();
        return;
      } catch (e) {
        stats.connectFailures++;
        unexpectedEvent(`connect failed: ${e.message}`);
        if (!running || attempt >= 5) throw e;
        await sleep(500);
      }
    }
  }

  async function recycler(slot, i) {
    let n = i; // alternate: graceful close, then drop, ...
    while (running) {
      await nap(rand(recycleMin, recycleMax));
      if (!running) break;
      const old = slot.session;
      try {
        await openSlot(slot);
      } catch {
        continue; // counted; keep the old one
      }
      if (n++ % 2 === 0) {
        old.byUs = 'close';
        stats.connectionsClosedGracefully++;
        old.close();
      } else {
        old.byUs = 'drop';
        stats.connectionsDropped++;
        old.destroy();
      }
    }
  }

  async function unaryLoop(slot) {
    while (running) {
      await call(slot, pickUnary());
      await sleep(rand(pauseMin, pauseMax));
    }
  }
  async function pollLoop(slot) {
    while (running) await call(slot, 'poll', { delayMs: rand(500, 6000) });
  }
  async function cancelLoop(slot) {
    while (running) {
      await call(slot, 'cancelled', { delayMs: 30_000, cancelAfterMs: rand(50, 800) });
      await sleep(rand(100, 400));
    }
  }

  const loops = [];
  const ready = (async () => {
    for (let i = 0; i < nSessions; i++) {
      const slot = { session: null };
      await openSlot(slot);
      slots.push(slot);
      for (let j = 0; j < unaryLoops; j++) loops.push(unaryLoop(slot));
      loops.push(pollLoop(slot), cancelLoop(slot), recycler(slot, i));
    }
  })();

  async function stop() {
    running = false;
    wake();
    await ready.catch(() => {});
    await Promise.all(loops);
    await Promise.all([...inflight]);
    await Promise.all(slots.map((slot) => new Promise((resolve) => {
      const s = slot.session;
      if (!s || s.closed || s.destroyed) return resolve();
      s.byUs = 'close';
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, 5000);
      s.close(() => {
        clearTimeout(t);
        resolve();
      });
    })));
  }

  return { stats, ready, stop };
}

module.exports = { startLoad };
