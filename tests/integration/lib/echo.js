'use strict';
// A tiny raw HTTP/2 (h2c) upstream for tgate tests. Every POST is answered, by request header
// x-mode:
//   (absent) | echo  the request body is echoed as the response body; every x-* request header
//                    comes back as a response header; trailers grpc-status: 0
//   big              a response body of x-size random bytes (one gRPC frame); the response
//                    header x-body-sha256 is the SHA-256 of the whole body
//   hold             no answer until the client goes away
//   headers-hold     response headers, then no more until the client goes away
//   rst-mid          response headers and a 16 MiB body of which the peer's window lets part
//                    out, then RST_STREAM CANCEL after 50 ms (while the client does not read)
//   delay            echo, after x-delay-ms milliseconds
//   no-read          the request body is not read (so its flow-control window is not given
//                    back) until the test calls the stream record's resumeRead(); once it has
//                    all arrived: an empty message, grpc-status 0
// grpc.health.v1.Health/Check (tgate's health checks) is answered apart and not recorded in
// `streams`: HealthCheckResponse{status} per setServing(state): true (SERVING, the default),
// false (NOT_SERVING) or 'hang' (no answer until the client gives up); each check is counted
// in `healthChecks` ({time, service, answered}).
// Each stream is recorded in `streams`: {headers, rawHeaders ([name, value, ...] as received),
// body (when < 1 MiB), bodyLength, bodySha256,
// closed, rstCode, aborted, answered, resumeRead (no-read only)}.
//
// In-process: const echo = await startEcho({port}); ... await echo.close(); (or echo.kill())
// Child process (to be killed): const child = await spawnEcho(port); ... await child.kill();
//   (CLI: node echo.js --port N  prints "listening N")

const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const http2 = require('node:http2');
const { spawn } = require('node:child_process');

const { NGHTTP2_CANCEL } = http2.constants;
const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

function grpcFrame(b) {
  const h = Buffer.alloc(5);
  h.writeUInt32BE(b.length, 1);
  return Buffer.concat([h, b]);
}

function echoHeaders(reqHeaders) {
  const out = {};
  for (const [k, v] of Object.entries(reqHeaders)) if (k.startsWith('x-')) out[k] = v;
  return out;
}

const HEALTH_CHECK = '/grpc.health.v1.Health/Check';

/** The service name of a HealthCheckRequest (field 1), '' when absent or unreadable. */
function healthService(body) {
  const m = body.subarray(5);
  if (m.length < 2 || m[0] !== 0x0a) return '';
  let len = m[1];
  let off = 2;
  if (len & 0x80) {
    len = (len & 0x7f) | (m[2] << 7);
    off = 3;
  }
  return m.subarray(off, off + len).toString('utf8');
}

function answerHealth(stream, serving, rec) {
  if (serving === 'hang') return;
  // HealthCheckResponse{status: SERVING (1) | NOT_SERVING (2)}
  const msg = grpcFrame(Buffer.from([0x08, serving ? 1 : 2]));
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
  rec.answered = true;
  stream.end(msg);
}

function startEcho({ port = 0, host = '127.0.0.1' } = {}) {
  const ev = new EventEmitter();
  const streams = [];
  const healthChecks = [];
  let serving = true;
  const sessions = new Set();
  const server = http2.createServer({ settings: { initialWindowSize: 1 << 20 }, maxSessionMemory: 256 });
  server.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
    s.on('error', () => {});
    s.setLocalWindowSize(32 << 20);
  });
  server.on('stream', (stream, headers, flags, rawHeaders) => {
    stream.on('error', () => {});
    if (headers[':path'] === HEALTH_CHECK) {
      const chunks = [];
      stream.on('data', (d) => chunks.push(d));
      stream.on('end', () => {
        const hc = { time: Date.now(), service: healthService(Buffer.concat(chunks)), answered: false };
        healthChecks.push(hc);
        if (!stream.destroyed && !stream.closed) answerHealth(stream, serving, hc);
      });
      return;
    }
    const rec = { headers, rawHeaders, body: null, bodyLength: 0, bodySha256: null, closed: false, rstCode: null,
      aborted: false, answered: false, time: Date.now() };
    streams.push(rec);
    ev.emit('stream', rec);
    stream.on('aborted', () => (rec.aborted = true));
    stream.on('close', () => {
      rec.closed = true;
      rec.rstCode = stream.rstCode;
      ev.emit('close', rec);
    });
    const mode = headers['x-mode'] || 'echo';
    const base = { ':status': 200, 'content-type': 'application/grpc' };
    if (mode === 'headers-hold' || mode === 'rst-mid') stream.respond(base);
    if (mode === 'rst-mid') {
      // Node's close() ends the stream (END_STREAM) before resetting it when it can; a body
      // larger than the peer's window keeps it from doing so while the peer does not read.
      stream.write(Buffer.alloc(16 << 20, 7));
      setTimeout(() => stream.close(NGHTTP2_CANCEL), 50);
    }
    if (mode === 'no-read') {
      stream.pause();
      rec.resumeRead = () => stream.resume();
    }
    const chunks = [];
    stream.on('data', (d) => chunks.push(d));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      rec.bodyLength = body.length;
      rec.bodySha256 = sha256(body);
      if (body.length < 1 << 20) rec.body = body;
      ev.emit('request', rec);
      if (mode !== 'echo' && mode !== 'big' && mode !== 'delay' && mode !== 'no-read') return;
      if (mode === 'delay') {
        setTimeout(() => {
          if (stream.destroyed || stream.closed) return;
          stream.respond({ ...base, ...echoHeaders(headers) }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
          rec.answered = true;
          stream.end(body);
        }, Number(headers['x-delay-ms'] || 0));
        return;
      }
      if (stream.destroyed || stream.closed) return;
      let out = body;
      const h = { ...base, ...echoHeaders(headers) };
      if (mode === 'big') {
        out = grpcFrame(crypto.randomBytes(Number(headers['x-size'] || 0)));
        h['x-body-sha256'] = sha256(out);
      }
      if (mode === 'no-read') out = grpcFrame(Buffer.alloc(0));
      stream.respond(h, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      rec.answered = true;
      stream.end(out);
    });
  });
  const sockets = new Set();
  server.on('connection', (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      resolve({
        port: server.address().port,
        streams,
        healthChecks,
        /** What health checks get from now on: true (SERVING), false (NOT_SERVING), 'hang'. */
        setServing(state) {
          serving = state;
        },
        /** Open HTTP/2 sessions (tgate's connections to this server). */
        sessionCount: () => sessions.size,
        on: ev.on.bind(ev),
        reset: () => (streams.length = 0),
        /** First recorded stream (past or future) matching pred. */
        waitForStream(pred = () => true, ms = 5000) {
          return waitEvent(ev, 'stream', streams, pred, ms);
        },
        /** First stream matching pred once it has closed. */
        waitForClose(pred = () => true, ms = 5000) {
          return waitEvent(ev, 'close', streams, (r) => r.closed && pred(r), ms);
        },
        close() {
          for (const s of sessions) s.destroy();
          for (const sock of sockets) sock.destroy();
          return new Promise((res) => server.close(() => res()));
        },
        /** As a crash: the sockets close without a GOAWAY, the server stops listening. */
        kill() {
          for (const sock of sockets) sock.destroy();
          for (const s of sessions) s.destroy();
          return new Promise((res) => server.close(() => res()));
        },
      });
    });
  });
}

function waitEvent(ev, name, list, pred, ms) {
  const found = list.find(pred);
  if (found) return Promise.resolve(found);
  return new Promise((resolve, reject) => {
    const on = (rec) => {
      if (!pred(rec)) return;
      clearTimeout(t);
      ev.off(name, on);
      resolve(rec);
    };
    const t = setTimeout(() => {
      ev.off(name, on);
      reject(new Error(`echo: no matching '${name}' within ${ms} ms`));
    }, ms);
    ev.on(name, on);
  });
}

/** Runs the echo server in a child process on port (so it can be SIGKILLed mid-call). */
function spawnEcho(port) {
  const proc = spawn(process.execPath, [__filename, '--port', String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error('spawnEcho: not listening within 5 s'));
    }, 5000);
    let out = '';
    const seen = new Set();
    const lineWaiters = [];
    proc.stdout.on('data', (d) => {
      out += d;
      for (const m of out.matchAll(/^stream (.*)$/gm)) seen.add(m[1]);
      for (const w of lineWaiters.splice(0)) w();
      if (!/listening \d+/.test(out)) return;
      clearTimeout(t);
      resolve({
        port,
        proc,
        /** Resolves once a stream with request header x-id: id reached the child. */
        async waitForStream(id, ms = 5000) {
          const end = Date.now() + ms;
          while (!seen.has(id)) {
            if (Date.now() > end) throw new Error(`spawnEcho: no stream ${id} within ${ms} ms`);
            await new Promise((r) => {
              lineWaiters.push(r);
              setTimeout(r, 50);
            });
          }
        },
        async kill(signal = 'SIGKILL') {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
          await exited;
        },
      });
    });
    proc.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`spawnEcho: exited with ${code}`));
    });
  });
}

module.exports = { startEcho, spawnEcho };

if (require.main === module) {
  const i = process.argv.indexOf('--port');
  const port = i > 0 ? Number(process.argv[i + 1]) : 0;
  startEcho({ port }).then((e) => {
    e.on('stream', (rec) => console.log(`stream ${rec.headers['x-id'] || ''}`));
    console.log(`listening ${e.port}`);
  });
  process.on('SIGTERM', () => process.exit(0));
}
