'use strict';
// TLS on both sides of tgate: client certificates (mTLS), ALPN, HTTP/1.x refusal, protocol
// versions (1.3 by default, 1.1 refused); and tgate as an mTLS client of a TLS frontend, with
// server name verification.

const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const tls = require('node:tls');
const http2 = require('node:http2');
const { startFrontend } = require('../frontend/frontend.js');
const h = require('./lib/harness.js');

const T = 20_000 * h.SLOW;
const INFO = `/${h.WS}/GetSystemInfo`;
const EMPTY = h.encode('workflowservice.v1.GetSystemInfoRequest', {});

/**
 * Opens a TLS (or, with opts.plain, TCP) connection, optionally writes `send` once connected,
 * and collects everything until the peer closes. Resolves
 * {secure, alpn, error, data, closed} — never rejects; bounded by ms.
 */
function rawExchange(port, opts, send, ms = 5000) {
  return new Promise((resolve) => {
    const out = { secure: false, alpn: null, error: null, data: '', closed: false };
    const s = opts.plain
      ? net.connect({ host: '127.0.0.1', port })
      : tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
    const t = setTimeout(() => {
      s.destroy();
      resolve(out);
    }, ms);
    s.on(opts.plain ? 'connect' : 'secureConnect', () => {
      out.secure = !opts.plain;
      out.alpn = s.alpnProtocol;
      if (send) s.write(send);
    });
    s.on('data', (d) => (out.data += d.toString('latin1')));
    s.on('error', (e) => (out.error = e));
    s.on('close', () => {
      clearTimeout(t);
      out.closed = true;
      resolve(out);
    });
  });
}

/** Checks tgate's HTTP/1.1 refusal: status 505, a well-formed message, then the close. */
function assert505(out) {
  assert.equal(out.error, null, `no error expected, got ${out.error}`);
  assert.ok(out.closed, 'tgate closed the connection');
  assert.match(out.data, /^HTTP\/1\.1 505 HTTP Version Not Supported\r\n/);
  const split = out.data.indexOf('\r\n\r\n');
  assert.ok(split > 0, 'a complete header block');
  const head = out.data.slice(0, split);
  const body = Buffer.from(out.data.slice(split + 4), 'latin1');
  assert.match(head, /\r\nConnection: close/i);
  const cl = /\r\nContent-Length: (\d+)/i.exec(head);
  assert.ok(cl, 'Content-Length present');
  assert.equal(body.length, Number(cl[1]), `body is ${body.length} bytes but Content-Length says ${cl[1]}: ${JSON.stringify(body.toString())}`);
}

const HTTP1_GET = 'GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: tgate-test\r\n\r\n';

describe('downstream mTLS (require_client_cert)', () => {
  let fe;
  let tg;
  let c;

  before(async () => {
    c = h.certs();
    fe = await startFrontend({ host: '127.0.0.1', port: 0 });
    tg = await h.startTgate({ upstream: fe.port, tls: true });
  });

  after(async () => {
    try {
      if (tg) await tg.stop();
    } finally {
      if (fe) await fe.close();
    }
  });

  /**
   * Asserts that a client with these TLS credentials gets no HTTP/2 response: the handshake
   * fails, or the session dies before any response headers. Returns how it failed.
   */
  async function assertRefused(creds) {
    const calls = fe.calls.length;
    let s;
    try {
      s = await h.h2connect(tg.port, { tls: { ca: c.ca, ...creds }, ms: 3000 });
    } catch (e) {
      return `handshake: ${e.code || e.message}`;
    }
    try {
      const r = await h.unaryCall(s, INFO, EMPTY, {}, { timeoutMs: 3000 });
      assert.equal(r.headers, null, `no response expected, got ${JSON.stringify(r.headers)}`);
      assert.ok(r.error || r.rstCode, 'the stream failed');
      return `session: ${(r.error && r.error.code) || r.rstCode}`;
    } finally {
      s.destroy();
      assert.equal(fe.calls.length, calls, 'nothing reached the frontend');
    }
  }

  test('worker-a certificate: calls work', { timeout: T }, async () => {
    const s = await h.h2connect(tg.port, { tls: { ca: c.ca, ...c.pair('worker-a') } });
    try {
      assert.equal(s.alpnProtocol, 'h2');
      const r = await h.unaryCall(s, INFO, EMPTY);
      assert.equal(r.status, 0);
      const info = h.decodeResponse('workflowservice.v1.GetSystemInfoResponse', r.data);
      assert.equal(info.serverVersion, '1.24.0-tgate-dev');
      // worker-b too
      const s2 = await h.h2connect(tg.port, { tls: { ca: c.ca, ...c.pair('worker-b') } });
      assert.equal((await h.unaryCall(s2, INFO, EMPTY)).status, 0);
      await h.closeSessions([s2]);
    } finally {
      await h.closeSessions([s]);
    }
  });

  test('no client certificate: refused', { timeout: T }, async (t) => {
    t.diagnostic(await assertRefused({}));
  });

  test('certificate from a foreign CA (other-client): refused', { timeout: T }, async (t) => {
    t.diagnostic(await assertRefused(c.pair('other-client')));
  });

  test('expired client certificate: refused', { timeout: T }, async (t) => {
    t.diagnostic(await assertRefused(c.pair('expired-client')));
  });

  test('a client offering only ALPN http/1.1 fails the handshake', { timeout: T }, async () => {
    const out = await rawExchange(tg.port, { ca: c.ca, ...c.pair('worker-a'), ALPNProtocols: ['http/1.1'] });
    assert.equal(out.secure, false, `handshake must fail (ALPN ${out.alpn})`);
    assert.ok(out.error, 'handshake error');
    assert.match(String(out.error.code || out.error.message), /NO_APPLICATION_PROTOCOL|alert/i);
  });

  test('a TLS client without ALPN speaking HTTP/1.1 gets 505 and is closed', { timeout: T }, async () => {
    const out = await rawExchange(tg.port, { ca: c.ca, ...c.pair('worker-a') }, HTTP1_GET);
    assert.ok(out.secure, 'handshake completes without ALPN');
    assert505(out);
  });

  test('a client with default settings negotiates TLS 1.3', { timeout: T }, async () => {
    // Node's defaults (minVersion/maxVersion left alone) offer 1.2 and 1.3; tgate must pick 1.3.
    const proto = await new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: tg.port, servername: 'localhost', ca: c.ca, ...c.pair('worker-a'), ALPNProtocols: ['h2'] });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('no TLS handshake within 5 s'));
      }, 5000);
      s.once('secureConnect', () => {
        clearTimeout(t);
        const p = s.getProtocol();
        s.destroy();
        resolve(p);
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
    assert.equal(proto, 'TLSv1.3');
  });

  test('TLS 1.1 is refused', { timeout: T }, async (t) => {
    const opts = { ca: c.ca, ...c.pair('worker-a'), minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' };
    const out = await rawExchange(tg.port, opts);
    if (out.error && /NO_PROTOCOLS_AVAILABLE|UNSUPPORTED_PROTOCOL/.test(out.error.code || '')) {
      t.skip(`this Node/OpenSSL cannot offer TLS 1.1 (${out.error.code})`);
      return;
    }
    assert.equal(out.secure, false, 'TLS 1.1 handshake must fail');
    assert.ok(out.error);
    assert.match(out.error.code || out.error.message, /PROTOCOL_VERSION|alert/i, 'refused by the server');
  });
});

describe('plaintext h2c listener', () => {
  let tg;

  before(async () => {
    tg = await h.startTgate({ upstream: await h.freePort(), waitReady: false });
  });

  after(async () => {
    if (tg) await tg.stop();
  });

  test('plaintext HTTP/1.1 gets 505 and is closed', { timeout: T }, async () => {
    assert505(await rawExchange(tg.port, { plain: true }, HTTP1_GET));
  });
});

describe('upstream over mTLS', () => {
  let feTls;
  const tgates = [];

  before(async () => {
    const c = h.certs();
    feTls = await startFrontend({
      host: '127.0.0.1',
      port: 0,
      tls: { cert: c.file('server.pem'), key: c.file('server.key'), ca: c.file('ca.pem'), requireClientCert: true },
    });
  });

  after(async () => {
    try {
      await h.stopAll(tgates);
    } finally {
      if (feTls) await feTls.close();
    }
  });

  test('tgate presents its client certificate and calls succeed', { timeout: T }, async () => {
    const tg = await h.startTgate({ upstream: feTls.port, upstreamTls: true });
    tgates.push(tg);
    const s = await h.h2connect(tg.port);
    try {
      const r = await h.unaryCall(s, `/${h.WS}/DescribeNamespace`, h.describeNs('tls-up'));
      assert.equal(r.status, 0);
      const rec = await feTls.waitForCall((x) => x.namespace === 'tls-up', 2000);
      assert.equal(rec.auth.transportSecurityType, 'ssl');
      assert.equal(rec.auth.peerCertificate.subject.CN, 'tgate-gateway');
      assert.equal(rec.auth.peerCertificate.subject.O, 'tgate');
      // Both ends of the upstream TLS in /metrics: tgate's client certificate and the frontend's.
      const m = (await h.httpGet(tg.adminPort, '/metrics')).body;
      const left = (re) => Number((re.exec(m) || [0, NaN])[1]);
      const mine = left(/^tgate_certificate_expiry_seconds\{role="upstream_client"\} (-?\d+)$/m);
      const theirs = left(new RegExp(`^tgate_upstream_certificate_expiry_seconds\\{address="127\\.0\\.0\\.1:${feTls.port}"\\} (-?\\d+)$`, 'm'));
      assert.ok(mine > 86400, `tgate's client certificate: ${mine} s left\n${m}`);
      assert.ok(theirs > 86400, `the frontend's certificate: ${theirs} s left\n${m}`);
    } finally {
      await h.closeSessions([s]);
    }
  });

  test('a wrong server_name fails verification: calls get UNAVAILABLE', { timeout: T }, async () => {
    const c = h.certs();
    const tg = await h.startTgate({
      upstream: feTls.port,
      upstreamTls: { ca_file: c.file('ca.pem'), cert_file: c.file('gateway-client.pem'), key_file: c.file('gateway-client.key'), server_name: 'wrong.example' },
      waitReady: false,
      connectTimeout: '1s',
    });
    tgates.push(tg);
    const calls = feTls.calls.length;
    const s = await h.h2connect(tg.port);
    try {
      // Let the first connection attempts fail.
      await h.waitFor(() => /upstream .*(TLS|certificate|verify)/i.test(tg.log()), 3000 * h.SLOW, 'a TLS failure in the log');
      const t0 = Date.now();
      const r = await h.unaryCall(s, `/${h.WS}/DescribeNamespace`, h.describeNs('wrong-name'), {}, { timeoutMs: 5000 });
      assert.ok(Date.now() - t0 < 3000 * h.SLOW, 'answered promptly');
      assert.ok(r.headers, `response headers received (got none; stream reset with code ${r.rstCode})`);
      assert.equal(r.status, 14, `status ${r.status} ${r.message}`);
      assert.equal(feTls.calls.length, calls, 'nothing reached the frontend');
      assert.equal((await h.httpGet(tg.adminPort, '/health/ready')).status, 503);
    } finally {
      await h.closeSessions([s]);
    }
  });
});

describe('TLS session resumption with client certificates', () => {
  // Reconnecting clients (rustls in the SDKs' core, Go with a session cache, Java) resume
  // sessions. OpenSSL answers a TLS 1.2 resumption on a server that verifies client
  // certificates with a fatal internal_error unless a session id context is set; and a resumed
  // connection must carry the certificate's identity (kept in the session) as a full one does.
  let fe;
  let tg;
  let c;
  const DESCRIBE = `/${h.WS}/DescribeNamespace`;

  before(async () => {
    c = h.certs();
    fe = await startFrontend({ host: '127.0.0.1', port: 0 });
    tg = await h.startTgate({
      upstream: fe.port,
      tls: true,
      extraYaml: [
        'authentication:',
        '  require: [client_cert]',
        '  client_certs:',
        '    - match: { uri_san: "spiffe://tgate.dev/ns/{ns}/*" }',
        '      permissions: ["{ns}:read"]',
        'authorization:',
        '  mode: enforce',
      ].join('\n'),
    });
  });

  after(async () => {
    try {
      if (tg) await tg.stop();
    } finally {
      if (fe) await fe.close();
    }
  });

  /** A TLS connection as worker-a with version v, resuming session if given. */
  function connect(v, session) {
    return new Promise((resolve, reject) => {
      let ticket = null;
      const s = tls.connect({ host: '127.0.0.1', port: tg.port, servername: 'localhost', ca: c.ca, ...c.pair('worker-a'),
        ALPNProtocols: ['h2'], minVersion: v, maxVersion: v, session });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('no TLS handshake within 5 s'));
      }, 5000 * h.SLOW);
      s.on('session', (b) => (ticket = b));
      s.once('secureConnect', () => {
        clearTimeout(t);
        resolve({ s, reused: s.isSessionReused(), ticket: () => ticket || s.getSession() });
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  /** DescribeNamespace for ns over the already connected TLS socket. */
  async function describeOver(sock, ns) {
    const session = http2.connect(`https://127.0.0.1:${tg.port}`, { createConnection: () => sock });
    session.on('error', () => {});
    try {
      return await h.unaryCall(session, DESCRIBE, h.describeNs(ns));
    } finally {
      await h.closeSessions([session]);
    }
  }

  for (const v of ['TLSv1.2', 'TLSv1.3']) {
    test(`${v}: a resumed session works and keeps the certificate's identity`, { timeout: T }, async () => {
      const first = await connect(v);
      assert.equal(first.reused, false);
      assert.equal((await describeOver(first.s, 'team-a')).status, 0, 'full handshake: team-a allowed');
      await h.waitFor(() => first.ticket(), 3000 * h.SLOW, 'a session to resume');
      const ticket = first.ticket();
      const again = await connect(v, ticket);
      assert.equal(again.reused, true, `${v} session not resumed`);
      const ok = await describeOver(again.s, 'team-a');
      assert.equal(ok.status, 0, `resumed: team-a allowed (${ok.message || ''})`);
      const other = await connect(v, ticket);
      assert.equal(other.reused, true);
      assert.equal((await describeOver(other.s, 'team-b')).status, 7, 'resumed: team-b still denied');
    });
  }
});
