'use strict';
// Helpers shared by tgate's integration tests: dev certificates, free ports, starting and
// stopping tgate with a generated configuration, and a raw HTTP/2 gRPC client.
//
// Environment:
//   TGATE_BIN    the tgate binary (default: build/tgate of this repository)
//   TGATE_CERTS  a directory made by certs-dev/gen.sh to reuse (default: a fresh temp dir)
//   TGATE_ASAN=1 the binary is a sanitizer build (stop() checks its reports; waits are longer)
// Everything listens on and connects to 127.0.0.1; every wait is bounded.

const assert = require('node:assert/strict');
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const http2 = require('node:http2');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const proto = require('@temporalio/proto');
require('./watchdog.js');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TESTS = path.resolve(__dirname, '..', '..');
const TGATE_BIN = path.resolve(TESTS, process.env.TGATE_BIN || path.join(ROOT, 'build', 'tgate'));
const ASAN = process.env.TGATE_ASAN === '1';
/** Multiplier for waits that depend on tgate's speed (sanitizer builds are slower). */
const SLOW = ASAN ? 3 : 1;
const WS = 'temporal.api.workflowservice.v1.WorkflowService';
const SANITIZER_REPORTS = ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer'];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls fn() (sync or async) every `every` ms until it returns a truthy value; throws after ms. */
async function waitFor(fn, ms, what = 'condition', every = 20) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** Rejects with `what` when p does not settle within ms. */
function within(p, ms, what = 'operation') {
  let t;
  const timeout = new Promise((_, reject) => {
    t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

// ---------- temporary files, cleaned at exit ----------

const tempDirs = [];
function tempDir(prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

// ---------- certificates ----------

let certCache = null;
/**
 * Dev certificates (certs-dev/gen.sh), made once per process. Returns {dir, paths, file(name),
 * read(name), pair(name) -> {cert, key} PEM buffers, ca: the dev CA PEM}.
 */
function certs() {
  if (certCache) return certCache;
  let dir = process.env.TGATE_CERTS;
  if (!dir) {
    dir = tempDir('tgate-certs-');
    execFileSync('bash', [path.join(ROOT, 'certs-dev', 'gen.sh'), dir], {
      timeout: 60_000,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const file = (name) => path.join(dir, name);
  const read = (name) => fs.readFileSync(file(name));
  /** {cert, key} PEM buffers of a named pair, e.g. pair('worker-a'). */
  const pair = (name) => ({ cert: read(`${name}.pem`), key: read(`${name}.key`) });
  const names = ['ca', 'server', 'worker-a', 'worker-b', 'gateway-client', 'other-ca', 'other-client', 'expired-client'];
  /** paths['worker-a'] = {cert: '/tmp/.../worker-a.pem', key: '/tmp/.../worker-a.key'}, ... */
  const paths = Object.fromEntries(names.map((n) => [n, { cert: file(`${n}.pem`), key: file(`${n}.key`) }]));
  certCache = { dir, file, read, pair, paths, ca: read('ca.pem') };
  return certCache;
}

// ---------- ports ----------

// Test files run in parallel processes, and tgate binds with SO_REUSEPORT: two tgates handed
// the same "free" port would silently share it. A lock file per port handed out prevents that.
const PORT_LOCKS = path.join(os.tmpdir(), 'tgate-test-ports');
const myLocks = [];
function lockPort(port) {
  fs.mkdirSync(PORT_LOCKS, { recursive: true });
  const f = path.join(PORT_LOCKS, String(port));
  try {
    fs.writeFileSync(f, String(process.pid), { flag: 'wx' });
  } catch {
    const owner = Number(fs.readFileSync(f, 'utf8')) || 0;
    try {
      if (owner) process.kill(owner, 0);
      return false; // held by a live process
    } catch {
      fs.writeFileSync(f, String(process.pid)); // stale lock
    }
  }
  myLocks.push(f);
  return true;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (and is handed out once). */
async function freePort() {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    if (lockPort(port)) return port;
  }
  throw new Error('freePort: no port');
}

/** Resolves true when 127.0.0.1:port accepts a TCP connection, false when refused. */
function canConnect(port, ms = 1000) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const done = (v) => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), ms);
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Plain HTTP GET; resolves {status, body}. */
function httpGet(port, urlPath, ms = 2000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: ms }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
  });
}

// ---------- tgate ----------

const q = (s) => JSON.stringify(String(s)); // a YAML double-quoted scalar

/**
 * The YAML configuration for opts (see startTgate). tls: true means the dev server certificate
 * with client certificates required (mTLS); 'optional' means verified if sent; an object
 * gives the files. upstreamTls: true means the dev CA and the gateway-client certificate.
 */
function tgateConfig(opts) {
  const c = certs();
  const lines = ['listen:', `  address: ${q(`127.0.0.1:${opts.port}`)}`];
  let tls = opts.tls;
  if (tls === true || tls === 'optional') {
    tls = { cert_file: c.file('server.pem'), key_file: c.file('server.key'), client_ca_file: c.file('ca.pem'),
      require_client_cert: tls === true };
  }
  if (tls) {
    lines.push('  tls:');
    for (const [k, v] of Object.entries(tls)) lines.push(`    ${k}: ${typeof v === 'boolean' ? v : q(v)}`);
  }
  if (opts.maxConcurrentStreams) lines.push(`  max_concurrent_streams: ${opts.maxConcurrentStreams}`);
  const ups = [].concat(opts.upstream).map((u) => (typeof u === 'number' ? `127.0.0.1:${u}` : u));
  lines.push('upstream:', `  addresses: [${ups.map(q).join(', ')}]`);
  let utls = opts.upstreamTls;
  if (utls === true) {
    utls = { ca_file: c.file('ca.pem'), cert_file: c.file('gateway-client.pem'),
      key_file: c.file('gateway-client.key'), server_name: 'localhost' };
  }
  if (utls) {
    lines.push('  tls:');
    for (const [k, v] of Object.entries(utls)) lines.push(`    ${k}: ${q(v)}`);
  }
  if (opts.maxConnections) lines.push(`  max_connections: ${opts.maxConnections}`);
  lines.push(`  connect_timeout: ${q(opts.connectTimeout || '2s')}`);
  // opts.upstreamYaml: more keys of the upstream section, verbatim, indented by two spaces
  if (opts.upstreamYaml) lines.push(opts.upstreamYaml.replace(/\n$/, ''));
  if (opts.adminPort) lines.push('admin:', `  address: ${q(`127.0.0.1:${opts.adminPort}`)}`);
  if (opts.adminPort && opts.metricsMaxNamespaces != null) lines.push(`  metrics_max_namespaces: ${opts.metricsMaxNamespaces}`);
  lines.push(`workers: ${opts.workers == null ? 2 : opts.workers}`);
  lines.push(`shutdown_grace_period: ${q(opts.grace || '5s')}`);
  if (!/^authorization:/m.test(opts.extraYaml || '')) lines.push('authorization:', '  mode: off');
  lines.push('logging:', `  level: ${opts.logLevel || 'info'}`);
  if (opts.accessLog) lines.push(`  access_log: ${q(opts.accessLog)}`);
  // opts.extraYaml: more top-level sections, verbatim (e.g. authentication:)
  if (opts.extraYaml) lines.push(opts.extraYaml.replace(/\n$/, ''));
  return lines.join('\n') + '\n';
}

const running = new Set();

/** Asserts what every tgate run must satisfy once it exited. */
function checkExit(t, exit, { expectCode = 0 } = {}) {
  const log = t.log();
  for (const s of SANITIZER_REPORTS) {
    assert.ok(!log.includes(s), `tgate stderr contains "${s}":\n${log.slice(-8000)}`);
  }
  if (expectCode !== null) {
    assert.deepEqual(
      { code: exit.code, signal: exit.signal },
      { code: expectCode, signal: null },
      `tgate exit status; last log lines:\n${log.slice(-4000)}`,
    );
  }
}

/**
 * Starts tgate. opts:
 *   upstream: port number, "host:port", or a list of them (required)
 *   tls: false (h2c, default) | true (mTLS, dev certs) | 'optional' | {cert_file, key_file, ...}
 *   upstreamTls: false | true (dev CA + gateway-client cert, server_name localhost) | {...}
 *   admin (default true), workers (2), grace ('5s'), connectTimeout ('2s'), maxConcurrentStreams,
 *   maxConnections, logLevel ('info'), port (default: a free one)
 *   waitReady: wait for /health/ready 200 (default true when admin is on)
 *   extraYaml: further top-level YAML appended to the configuration
 *   wrapper: argv run in front of tgate, e.g. ['bash', '-c', 'ulimit -n 64; exec "$0" "$@"']
 *     (it must exec tgate, so that pid is tgate's)
 * Returns {port, adminPort, proc, pid, log(), exited, stop(signal), kill(), configFile}.
 */
async function startTgate(opts = {}) {
  assert.ok(opts.upstream != null, 'startTgate: upstream is required');
  const admin = opts.admin !== false;
  for (let attempt = 1; ; attempt++) {
    const port = opts.port || (await freePort());
    const adminPort = admin ? opts.adminPort || (await freePort()) : null;
    const dir = tempDir('tgate-run-');
    const configFile = path.join(dir, 'tgate.yaml');
    fs.writeFileSync(configFile, tgateConfig({ ...opts, port, adminPort }));
    try {
      return await launch(configFile, port, adminPort, admin && opts.waitReady !== false, opts.wrapper);
    } catch (e) {
      // A port taken between freePort() and tgate's bind: try other ports.
      if (attempt < 3 && !opts.port && /cannot listen|Address already in use/.test(e.message)) continue;
      throw e;
    }
  }
}

async function launch(configFile, port, adminPort, waitReady, wrapper = []) {
  const [cmd, ...args] = [...wrapper, TGATE_BIN, '-c', configFile];
  const proc = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const chunks = [];
  proc.stdout.on('data', (d) => chunks.push(d));
  proc.stderr.on('data', (d) => chunks.push(d));
  const exited = new Promise((resolve) => {
    // 'close', not 'exit': stdio is drained by then, so a sanitizer report at exit is in log().
    proc.on('close', (code, signal) => resolve({ code, signal, time: Date.now() }));
    proc.on('error', (error) => {
      chunks.push(Buffer.from(`cannot run ${TGATE_BIN}: ${error.message}\n`));
      resolve({ code: null, signal: null, error, time: Date.now() });
    });
  });
  let exit = null;
  exited.then((e) => {
    exit = e;
    running.delete(proc);
  });
  running.add(proc);
  const t = {
    port,
    adminPort,
    proc,
    pid: proc.pid,
    configFile,
    exited,
    log: () => Buffer.concat(chunks).toString('utf8'),
    /** Sends signal (unless tgate already exited), waits (bounded, then SIGKILL) and checks. */
    async stop(signal = 'SIGTERM', { timeoutMs = 10_000 * SLOW, expectCode = 0 } = {}) {
      if (!exit) proc.kill(signal);
      let e;
      try {
        e = await within(exited, timeoutMs, `tgate exit after ${signal}`);
      } catch (err) {
        proc.kill('SIGKILL');
        await exited;
        throw new Error(`${err.message}; killed. Log:\n${t.log().slice(-4000)}`);
      }
      checkExit(t, e, { expectCode });
      return e;
    },
    /** SIGKILL without checks (cleanup after a failure). */
    async kill() {
      if (!exit) proc.kill('SIGKILL');
      await exited;
    },
  };
  try {
    await waitFor(async () => {
      if (exit) throw new Error(`tgate exited (${exit.code ?? exit.signal}) during start-up:\n${t.log()}`);
      // The listen socket accepts (backlog) before the admin server is bound: wait for both.
      return (await canConnect(port, 200)) && (!adminPort || (await canConnect(adminPort, 200)));
    }, 5000 * SLOW, `tgate to listen on ${port}${adminPort ? ` and ${adminPort}` : ''}`);
    if (waitReady) {
      await waitFor(async () => {
        if (exit) throw new Error(`tgate exited during start-up:\n${t.log()}`);
        return (await httpGet(adminPort, '/health/ready').catch(() => ({}))).status === 200;
      }, 5000 * SLOW, 'tgate /health/ready 200');
    }
  } catch (e) {
    await t.kill();
    e.message += `\n--- tgate log ---\n${t.log().slice(-4000)}`;
    throw e;
  }
  return t;
}

/** Stops every tgate still running (for after hooks); the first failed check is thrown. */
async function stopAll(list) {
  let first = null;
  for (const t of list) {
    if (!t) continue;
    try {
      await t.stop();
    } catch (e) {
      first = first || e;
    }
  }
  if (first) throw first;
}

process.on('exit', () => {
  for (const p of running) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
  for (const f of myLocks) fs.rmSync(f, { force: true });
  for (const d of tempDirs) {
    if (d !== process.env.TGATE_CERTS) fs.rmSync(d, { recursive: true, force: true });
  }
});

/** VmRSS of a process in bytes (Linux /proc). */
function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

// ---------- HTTP/2 gRPC client ----------

/**
 * Opens an HTTP/2 session to 127.0.0.1:port: h2c, or TLS with ALPN h2 when tls is
 * {ca, cert, key} (servername localhost). Rejects when the session errors or closes before
 * it is connected, or after ms.
 */
function h2connect(port, { tls = null, ms = 5000, settings, ...rest } = {}) {
  const url = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const options = { settings: { enablePush: false, ...settings }, maxSessionMemory: 64, ...rest };
  if (tls) Object.assign(options, { ca: tls.ca, cert: tls.cert, key: tls.key, servername: 'localhost', ALPNProtocols: ['h2'] });
  return new Promise((resolve, reject) => {
    const s = http2.connect(url, options);
    const fail = (e) => {
      clearTimeout(t);
      s.destroy();
      reject(e);
    };
    const t = setTimeout(() => fail(new Error(`h2connect ${url}: no connection within ${ms} ms`)), ms);
    const onClose = () => fail(new Error(`h2connect ${url}: closed before connecting`));
    s.once('error', fail);
    s.once('close', onClose);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeListener('error', fail);
      s.removeListener('close', onClose);
      s.on('error', (e) => (s.lastError = e)); // recorded; streams report their own errors
      resolve(s);
    });
  });
}

/** Closes sessions gracefully, destroying them if that takes longer than ms. */
async function closeSessions(sessions, ms = 1000) {
  await Promise.all(
    sessions.filter((s) => s && !s.destroyed).map((s) =>
      within(new Promise((resolve) => s.close(resolve)), ms).catch(() => s.destroy()),
    ),
  );
}

/** One gRPC message frame: 1-byte compressed flag, 4-byte big-endian length, the bytes. */
function grpcFrame(buf, compressed = 0) {
  const b = Buffer.from(buf);
  const h = Buffer.alloc(5);
  h[0] = compressed;
  h.writeUInt32BE(b.length, 1);
  return Buffer.concat([h, b]);
}

/** Splits a gRPC body into [{compressed, data}]; throws on a truncated frame. */
function parseGrpcFrames(buf) {
  const out = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < 5) throw new Error(`truncated gRPC prefix at ${off}`);
    const len = buf.readUInt32BE(off + 1);
    if (buf.length - off - 5 < len) throw new Error(`truncated gRPC message at ${off} (${len} bytes)`);
    out.push({ compressed: buf[off], data: buf.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return out;
}

/**
 * A raw HTTP/2 request; resolves when the stream closes with
 *   {headers, data, trailers, rstCode, error, status (grpc-status as a number or null),
 *    message (raw grpc-message), trailersOnly}.
 * A reset does not reject (rstCode/error tell). Rejects only when nothing ends within
 * timeoutMs (the stream is then cancelled). opts.onStream(req) gets the ClientHttp2Stream.
 */
function request(session, headers, body, { timeoutMs = 10_000, onStream, paused = false } = {}) {
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = session.request(headers, { endStream: body == null });
    } catch (e) {
      reject(e);
      return;
    }
    const res = { headers: null, data: null, trailers: null, rstCode: null, error: null };
    const chunks = [];
    const t = setTimeout(() => {
      req.close(http2.constants.NGHTTP2_CANCEL);
      reject(new Error(`${headers[':path']}: no end within ${timeoutMs} ms (headers: ${JSON.stringify(res.headers)})`));
    }, timeoutMs);
    req.on('response', (h) => (res.headers = h));
    req.on('trailers', (h) => (res.trailers = h));
    req.on('data', (d) => chunks.push(d));
    req.on('error', (e) => (res.error = e));
    req.on('close', () => {
      clearTimeout(t);
      res.rstCode = req.rstCode;
      res.data = Buffer.concat(chunks);
      const src = res.trailers || res.headers || {};
      res.trailersOnly = !!res.headers && !res.trailers && res.headers['grpc-status'] !== undefined;
      res.status = src['grpc-status'] === undefined ? null : Number(src['grpc-status']);
      res.message = src['grpc-message'];
      resolve(res);
    });
    if (paused) req.pause();
    if (body != null) req.end(body);
    if (onStream) onStream(req);
  });
}

/** gRPC request headers for path (POST, application/grpc, te: trailers) plus extra. */
function grpcHeaders(urlPath, extra = {}) {
  return { ':method': 'POST', ':path': urlPath, 'content-type': 'application/grpc', te: 'trailers', ...extra };
}

/** A unary gRPC call of one message; see request() for the result. */
function unaryCall(session, urlPath, msgBytes, headers = {}, opts = {}) {
  return request(session, grpcHeaders(urlPath, headers), grpcFrame(msgBytes), opts);
}

/** Encodes a Temporal/gRPC request message, e.g. encode('workflowservice.v1.DescribeNamespaceRequest', {...}). */
function encode(typeName, obj) {
  const T = proto.lookupType(typeName.startsWith('temporal.') || typeName.startsWith('grpc.') ? typeName : `temporal.api.${typeName}`);
  return Buffer.from(T.encode(T.fromObject(obj)).finish());
}

/** Decodes the single message of a gRPC response body with typeName. */
function decodeResponse(typeName, data) {
  const frames = parseGrpcFrames(data);
  assert.equal(frames.length, 1, 'one response message');
  const T = proto.lookupType(typeName.startsWith('temporal.') ? typeName : `temporal.api.${typeName}`);
  return T.decode(frames[0].data);
}

const describeNs = (namespace) => encode('workflowservice.v1.DescribeNamespaceRequest', { namespace });
const pollWft = (namespace = 'default', queue = 'q') =>
  encode('workflowservice.v1.PollWorkflowTaskQueueRequest', { namespace, taskQueue: { name: queue } });

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

module.exports = {
  ROOT,
  TESTS,
  TGATE_BIN,
  ASAN,
  SLOW,
  WS,
  sleep,
  waitFor,
  within,
  tempDir,
  certs,
  freePort,
  canConnect,
  httpGet,
  tgateConfig,
  startTgate,
  stopAll,
  checkExit,
  rssBytes,
  h2connect,
  closeSessions,
  grpcFrame,
  parseGrpcFrames,
  request,
  grpcHeaders,
  unaryCall,
  encode,
  decodeResponse,
  describeNs,
  pollWft,
  sha256,
};
