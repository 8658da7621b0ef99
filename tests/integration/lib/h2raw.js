'use strict';
// Hand-built HTTP/2 frames over raw sockets, for tests that must misbehave in ways Node's
// http2 module refuses to (rapid resets, CONTINUATION floods, never reading, ...).
//
//   const c = await RawH2.connect(port);            // h2c; {tls: {...}} for TLS with ALPN h2
//   c.write(Buffer.concat([f.headers(1, f.requestBlock('/x.Y/Z')), f.rstStream(1, 8)]));
//   await c.closed;                                 // {time, error}
//   c.goaway                                        // {lastStreamId, errorCode, time} or null
//
// Every wait is bounded. Only what the tests need: HPACK is encoded as literals without
// indexing (no Huffman) and never decoded.

const net = require('node:net');
const tls = require('node:tls');

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7,
  WINDOW_UPDATE: 8, CONTINUATION: 9 };
const TYPE_NAMES = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]));
const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 };
const S = { HEADER_TABLE_SIZE: 1, ENABLE_PUSH: 2, MAX_CONCURRENT_STREAMS: 3, INITIAL_WINDOW_SIZE: 4,
  MAX_FRAME_SIZE: 5, MAX_HEADER_LIST_SIZE: 6 };
const E = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, FLOW_CONTROL_ERROR: 3, SETTINGS_TIMEOUT: 4,
  STREAM_CLOSED: 5, FRAME_SIZE_ERROR: 6, REFUSED_STREAM: 7, CANCEL: 8, COMPRESSION_ERROR: 9, CONNECT_ERROR: 10,
  ENHANCE_YOUR_CALM: 11, INADEQUATE_SECURITY: 12, HTTP_1_1_REQUIRED: 13 };
const ERROR_NAMES = Object.fromEntries(Object.entries(E).map(([k, v]) => [v, k]));

// ---------- frames ----------

/** One frame: 9-byte header (24-bit length, type, flags, 31-bit stream id) and the payload. */
function frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const p = Buffer.from(payload);
  const b = Buffer.alloc(9 + p.length);
  b.writeUIntBE(p.length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(streamId & 0x7fffffff, 5);
  p.copy(b, 9);
  return b;
}

/** SETTINGS with entries [[id, value], ...]; {ack: true} for an acknowledgement. */
function settings(entries = [], { ack = false } = {}) {
  const p = Buffer.alloc(6 * entries.length);
  entries.forEach(([id, v], i) => {
    p.writeUInt16BE(id, 6 * i);
    p.writeUInt32BE(v >>> 0, 6 * i + 2);
  });
  return frame(T.SETTINGS, ack ? F.ACK : 0, 0, p);
}

const ping = (data = Buffer.alloc(8), { ack = false } = {}) => frame(T.PING, ack ? F.ACK : 0, 0, data);

function headers(streamId, block, { endStream = false, endHeaders = true } = {}) {
  return frame(T.HEADERS, (endStream ? F.END_STREAM : 0) | (endHeaders ? F.END_HEADERS : 0), streamId, block);
}

const continuation = (streamId, block, { endHeaders = false } = {}) =>
  frame(T.CONTINUATION, endHeaders ? F.END_HEADERS : 0, streamId, block);

const data = (streamId, payload, { endStream = false } = {}) =>
  frame(T.DATA, endStream ? F.END_STREAM : 0, streamId, payload);

function rstStream(streamId, code = E.CANCEL) {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(T.RST_STREAM, 0, streamId, p);
}

function windowUpdate(streamId, increment) {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment & 0x7fffffff);
  return frame(T.WINDOW_UPDATE, 0, streamId, p);
}

function goaway(lastStreamId = 0, code = E.NO_ERROR) {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastStreamId & 0x7fffffff);
  p.writeUInt32BE(code, 4);
  return frame(T.GOAWAY, 0, 0, p);
}

/** A gRPC message: 1-byte compressed flag (0), 4-byte length, the bytes. */
function grpcMessage(buf) {
  const b = Buffer.from(buf);
  const h = Buffer.alloc(5);
  h.writeUInt32BE(b.length, 1);
  return Buffer.concat([h, b]);
}

// ---------- HPACK (RFC 7541), encoding only ----------

/** An integer with an n-bit prefix; `first` holds the bits above the prefix. */
function hpackInt(value, n, first = 0) {
  const max = (1 << n) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

const hpackString = (s) => {
  const b = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(b.length, 7, 0), b]);
};

/** A literal header field without indexing, new name (0x00): never touches the dynamic table. */
const hpackLiteral = (name, value) => Buffer.concat([Buffer.from([0]), hpackString(name), hpackString(value)]);

/** A header block of literals from [[name, value], ...] or {name: value}. */
function hpackBlock(fields) {
  const list = Array.isArray(fields) ? fields : Object.entries(fields);
  return Buffer.concat(list.map(([n, v]) => hpackLiteral(n, String(v))));
}

/** The header block of a gRPC request (POST, h2c/https scheme, content-type, te) plus extra fields. */
function requestBlock(path, extra = {}, { scheme = 'http' } = {}) {
  return hpackBlock([
    [':method', 'POST'],
    [':scheme', scheme],
    [':path', path],
    [':authority', 'localhost'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ...Object.entries(extra),
  ]);
}

// ---------- reading frames ----------

/** Incremental frame parser: push(buf) calls onFrame({type, flags, streamId, payload}) per frame. */
class FrameParser {
  constructor(onFrame) {
    this.onFrame = onFrame;
    this.buf = Buffer.alloc(0);
  }

  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    let off = 0;
    while (this.buf.length - off >= 9) {
      const len = this.buf.readUIntBE(off, 3);
      if (this.buf.length - off < 9 + len) break;
      this.onFrame({
        type: this.buf[off + 3],
        flags: this.buf[off + 4],
        streamId: this.buf.readUInt32BE(off + 5) & 0x7fffffff,
        payload: this.buf.subarray(off + 9, off + 9 + len),
      });
      off += 9 + len;
    }
    this.buf = off === this.buf.length ? Buffer.alloc(0) : Buffer.from(this.buf.subarray(off));
  }
}

// ---------- a raw client connection ----------

/**
 * A raw HTTP/2 client connection. Records what the server sends: counts per frame type,
 * the first GOAWAY, RST_STREAM codes; `closed` resolves {time, error} when the socket ends.
 * Options: read (default true; false never reads from the socket, so the server's output
 * backs up), autoAck (default true: acknowledges the server's SETTINGS),
 * onFrame(frame) for anything more.
 */
class RawH2 {
  /**
   * Connects to 127.0.0.1:port (TLS with ALPN h2 when opts.tls = {ca, cert, key}), and unless
   * opts.preface === false, sends the client preface and SETTINGS (opts.settings entries).
   */
  static connect(port, opts = {}) {
    const ms = opts.ms || 5000;
    return new Promise((resolve, reject) => {
      const sock = opts.tls
        ? tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ALPNProtocols: ['h2'], ...opts.tls })
        : net.connect({ host: '127.0.0.1', port });
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`RawH2.connect ${port}: not connected within ${ms} ms`));
      }, ms);
      const fail = (e) => {
        clearTimeout(t);
        sock.destroy();
        reject(e);
      };
      sock.once('error', fail);
      sock.once(opts.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(t);
        sock.removeListener('error', fail);
        const c = new RawH2(sock, opts);
        if (opts.preface !== false) c.write(Buffer.concat([PREFACE, settings(opts.settings || [])]));
        resolve(c);
      });
    });
  }

  constructor(sock, { read = true, autoAck = true, onFrame = null } = {}) {
    this.sock = sock;
    this.counts = {};
    this.goaway = null;
    this.rsts = new Map(); // stream id -> code
    this.bytesIn = 0;
    this.error = null;
    this.closedAt = null;
    this.autoAck = autoAck;
    this.onFrame = onFrame;
    const parser = new FrameParser((fr) => this.#frame(fr));
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      this.bytesIn += d.length;
      parser.push(d);
    });
    sock.on('error', (e) => (this.error = this.error || e));
    this.closed = new Promise((resolve) => {
      sock.on('close', () => {
        this.closedAt = Date.now();
        resolve({ time: this.closedAt, error: this.error });
      });
    });
    if (!read) sock.pause();
  }

  #frame(fr) {
    const name = TYPE_NAMES[fr.type] || `type${fr.type}`;
    this.counts[name] = (this.counts[name] || 0) + 1;
    if (fr.type === T.GOAWAY && !this.goaway && fr.payload.length >= 8) {
      const code = fr.payload.readUInt32BE(4);
      this.goaway = { lastStreamId: fr.payload.readUInt32BE(0) & 0x7fffffff, errorCode: code,
        error: ERROR_NAMES[code] || String(code), debug: fr.payload.subarray(8).toString('latin1'), time: Date.now() };
    } else if (fr.type === T.RST_STREAM && fr.payload.length >= 4) {
      this.rsts.set(fr.streamId, fr.payload.readUInt32BE(0));
    } else if (fr.type === T.SETTINGS && !(fr.flags & F.ACK) && this.autoAck && this.isOpen()) {
      this.sock.write(settings([], { ack: true }));
    }
    if (this.onFrame) this.onFrame(fr);
  }

  isOpen() {
    return this.closedAt === null && !this.sock.destroyed && this.sock.writable;
  }

  /** Writes buf; resolves true once the socket has taken it (drained), false when it closed. */
  write(buf) {
    if (!this.isOpen()) return Promise.resolve(false);
    return new Promise((resolve) => {
      let flushed = false;
      try {
        flushed = this.sock.write(buf);
      } catch {
        resolve(false);
        return;
      }
      if (flushed) {
        resolve(true);
        return;
      }
      const done = (v) => {
        this.sock.removeListener('drain', onDrain);
        this.sock.removeListener('close', onClose);
        resolve(v);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      this.sock.once('drain', onDrain);
      this.sock.once('close', onClose);
    });
  }

  /**
   * Writes chunks from next() (returns a Buffer, or null when done) until done, the socket
   * closes, or ms pass (a server that stops reading). Resolves {chunks, bytes, stoppedBy}.
   */
  async writeUntil(next, ms) {
    const end = Date.now() + ms;
    let chunks = 0;
    let bytes = 0;
    for (;;) {
      if (!this.isOpen()) return { chunks, bytes, stoppedBy: 'closed' };
      const left = end - Date.now();
      if (left <= 0) return { chunks, bytes, stoppedBy: 'time' };
      const buf = next(chunks);
      if (!buf) return { chunks, bytes, stoppedBy: 'done' };
      let timer;
      const ok = await Promise.race([
        this.write(buf),
        new Promise((resolve) => (timer = setTimeout(() => resolve('time'), left))),
      ]);
      clearTimeout(timer);
      if (ok === 'time') return { chunks, bytes, stoppedBy: 'time' };
      if (!ok) return { chunks, bytes, stoppedBy: 'closed' };
      chunks++;
      bytes += buf.length;
      // Let the event loop run: what the server sends is read as it comes.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Resolves true when the socket closed within ms, false otherwise. */
  waitClosed(ms) {
    let t;
    return Promise.race([
      this.closed.then(() => true),
      new Promise((resolve) => (t = setTimeout(() => resolve(false), ms))),
    ]).finally(() => clearTimeout(t));
  }

  destroy() {
    this.sock.destroy();
  }
}

module.exports = {
  PREFACE,
  T,
  F,
  S,
  E,
  ERROR_NAMES,
  frame,
  settings,
  ping,
  headers,
  continuation,
  data,
  rstStream,
  windowUpdate,
  goaway,
  grpcMessage,
  hpackInt,
  hpackString,
  hpackLiteral,
  hpackBlock,
  requestBlock,
  FrameParser,
  RawH2,
};
