'use strict';
/*
 * Development Temporal frontend: a TEST FIXTURE for tgate, not part of the gateway.
 *
 * It serves every unary method of
 *   temporal.api.workflowservice.v1.WorkflowService
 *   temporal.api.operatorservice.v1.OperatorService
 *   grpc.health.v1.Health (Check -> SERVING, or what setServing() set; Watch -> one SERVING
 *                          message, then held open)
 * using the real protobuf types shipped in @temporalio/proto. Each request is decoded with the
 * method's real request type and answered with a well-formed response of the method's real
 * response type (empty/default unless listed below). Unknown paths get UNIMPLEMENTED from grpc-js.
 *
 * Specific answers:
 *   GetSystemInfo           serverVersion "1.24.0-tgate-dev" + capabilities
 *   DescribeNamespace       namespaceInfo {name: <requested>, state: REGISTERED, id}, config (3d retention)
 *   ListNamespaces          one namespace, "default"
 *   StartWorkflowExecution  runId = random UUID, started = true (SignalWithStart: runId too)
 *   GetClusterInfo          serverVersion, clusterName "tgate-dev"
 *   Poll{Workflow,Activity,Nexus}TaskQueue, PollWorkflowExecutionUpdate and
 *   GetWorkflowExecutionHistory{waitNewEvent:true}
 *                           long polls: held for `longPollMs` (default 60000) or until the client
 *                           cancels (or its deadline passes), then an empty response, as Temporal
 *                           does when a poll times out.
 *
 * Test hooks, keyed by REQUEST METADATA (all optional, applied to every method):
 *   x-test-fail: <code>:<message>   fail the call with that gRPC status. <code> is a number
 *                                   (14) or a name (UNAVAILABLE). The message may be empty.
 *   x-test-delay-ms: N              wait N ms before answering (or failing). For long polls it
 *                                   replaces longPollMs as the hold time.
 *   x-test-trailer-bin: <bytes>     echoed back as TRAILING metadata x-echo-trailer-bin
 *                                   (on success and on failure).
 *   x-test-status-details-bin: <bytes>  with x-test-fail: sent back as the trailer
 *                                   grpc-status-details-bin (the rich error status, a
 *                                   google.rpc.Status), bytes unchanged.
 *   x-echo-*: <value>               every request header starting with x-echo- is echoed back,
 *                                   same name and value, as INITIAL response metadata.
 *
 * Every call is recorded in `calls` (see recordCall below for the fields):
 *   { service, method, path, namespace, metadata, metadataAll, authority, deadline, peer, auth,
 *     request, requestBytes, time, cancelled, status, endTime }
 *
 * Module API:
 *   const { startFrontend } = require('./frontend/frontend.js');
 *   const fe = await startFrontend({ host: '127.0.0.1', port: 0,
 *     tls: null | { cert, key, ca, requireClientCert }, longPollMs });
 *   fe.port; fe.address; fe.calls; fe.reset(); await fe.waitForCall(pred, timeoutMs);
 *   fe.on('call', rec) / fe.on('end', rec); await fe.close();
 *   fe.setServing(serving, service): what Health/Check answers from now on, SERVING (true) or
 *     NOT_SERVING (false), for one service name or, without one, for all. Check knows the
 *     services served and "" (the server); any other name gets NOT_FOUND, as from Temporal.
 *     Health calls are recorded in `calls` like the others (service grpc.health.v1.Health).
 *   tls.cert/key/ca: PEM Buffer/string, or a path to a PEM file.
 *
 * CLI:
 *   node tests/frontend/frontend.js --listen 127.0.0.1:7234 [--tls-cert F --tls-key F
 *     --tls-ca F --require-client-cert] [--long-poll-ms N] [--log]
 *   Prints "listening on HOST:PORT" once bound; --log prints one line per call.
 *   Exits cleanly on SIGINT/SIGTERM.
 */

const fs = require('node:fs');
const crypto = require('node:crypto');
const { EventEmitter } = require('node:events');
const grpc = require('@grpc/grpc-js');
const proto = require('@temporalio/proto');

const DEFAULT_LONG_POLL_MS = 60_000;
const SERVER_VERSION = '1.24.0-tgate-dev';
// Temporal's frontend accepts large messages; mimic that so size tests hit tgate's limits first.
const DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024;

const SERVICE_NAMES = [
  'temporal.api.workflowservice.v1.WorkflowService',
  'temporal.api.operatorservice.v1.OperatorService',
];
const HEALTH_SERVICE = 'grpc.health.v1.Health';

const LONG_POLL_METHODS = new Set([
  'PollWorkflowTaskQueue',
  'PollActivityTaskQueue',
  'PollNexusTaskQueue',
  'PollWorkflowExecutionUpdate',
]);

/**
 * The method table: one entry per method of each service, built by protobufjs reflection over the
 * descriptors in @temporalio/proto (root.lookupService(name).methodsArray, each method's
 * resolvedRequestType / resolvedResponseType).
 * @returns {{service:string, name:string, path:string, requestType:object, responseType:object,
 *            requestStream:boolean, responseStream:boolean}[]}
 */
function buildMethodTable(serviceNames = SERVICE_NAMES) {
  const table = [];
  for (const serviceName of serviceNames) {
    const svc = proto.lookupService(serviceName);
    svc.resolveAll();
    for (const m of svc.methodsArray) {
      m.resolve();
      table.push({
        service: serviceName,
        name: m.name,
        path: `/${serviceName}/${m.name}`,
        requestType: m.resolvedRequestType,
        responseType: m.resolvedResponseType,
        requestStream: !!m.requestStream,
        responseStream: !!m.responseStream,
      });
    }
  }
  return table;
}

// ---------- small helpers ----------

function readPem(v) {
  if (v == null) return null;
  if (Buffer.isBuffer(v)) return v;
  const s = String(v);
  if (s.includes('-----BEGIN')) return Buffer.from(s);
  return fs.readFileSync(s);
}

function statusCodeOf(s) {
  const t = String(s).trim();
  if (/^\d+$/.test(t)) return Number(t);
  const named = grpc.status[t.toUpperCase()];
  return typeof named === 'number' ? named : grpc.status.UNKNOWN;
}

/** Parse "code:message" (x-test-fail). */
function parseFail(v) {
  const s = Buffer.isBuffer(v) ? v.toString() : String(v);
  const i = s.indexOf(':');
  const code = statusCodeOf(i < 0 ? s : s.slice(0, i));
  const message = i < 0 ? '' : s.slice(i + 1);
  return { code, message };
}

function metadataObjects(md) {
  // metadata: one value per key (first one; a key that occurs several times gives an array);
  // metadataAll: always arrays. Binary (-bin) values are Buffers, others strings.
  const metadata = {};
  const metadataAll = {};
  const map = md.toJSON(); // { key: [values...] }
  for (const [k, vals] of Object.entries(map)) {
    const values = md.get(k); // keeps Buffers for -bin keys
    metadataAll[k] = values.slice();
    metadata[k] = values.length === 1 ? values[0] : values.slice();
  }
  return { metadata, metadataAll };
}

function firstValue(md, key) {
  const v = md.get(key);
  return v.length ? v[0] : undefined;
}

function describeAuth(call) {
  let ctx;
  try {
    ctx = typeof call.getAuthContext === 'function' ? call.getAuthContext() : {};
  } catch {
    ctx = {};
  }
  if (!ctx || !ctx.transportSecurityType) return { transportSecurityType: 'insecure' };
  const cert = ctx.sslPeerCertificate;
  if (!cert) return { transportSecurityType: ctx.transportSecurityType, peerCertificate: null };
  return {
    transportSecurityType: ctx.transportSecurityType,
    peerCertificate: {
      subject: cert.subject,
      issuer: cert.issuer,
      subjectaltname: cert.subjectaltname,
      fingerprint256: cert.fingerprint256,
      serialNumber: cert.serialNumber,
    },
  };
}

function deadlineMs(call) {
  try {
    const d = call.getDeadline();
    if (d instanceof Date) return d.getTime();
    if (typeof d === 'number' && Number.isFinite(d)) return d;
  } catch {
    /* ignore */
  }
  return null;
}

/** Stable fake namespace id derived from the name. */
function namespaceId(name) {
  const h = crypto.createHash('sha256').update(`tgate-dev/${name}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

// ---------- responses ----------

function namespaceDescription(name) {
  return {
    namespaceInfo: {
      name,
      id: namespaceId(name),
      state: proto.temporal.api.enums.v1.NamespaceState.NAMESPACE_STATE_REGISTERED,
      description: 'tgate development frontend',
      ownerEmail: 'dev@tgate.invalid',
      supportsSchedules: true,
    },
    config: {
      workflowExecutionRetentionTtl: { seconds: 3 * 24 * 3600 },
      historyArchivalState: proto.temporal.api.enums.v1.ArchivalState.ARCHIVAL_STATE_DISABLED,
      visibilityArchivalState: proto.temporal.api.enums.v1.ArchivalState.ARCHIVAL_STATE_DISABLED,
    },
    isGlobalNamespace: false,
    failoverVersion: 0,
  };
}

/** Plain-object body of the response for a method (before fromObject). */
function responseBody(method, req) {
  switch (method.name) {
    case 'GetSystemInfo':
      return {
        serverVersion: SERVER_VERSION,
        capabilities: {
          signalAndQueryHeader: true,
          internalErrorDifferentiation: true,
          activityFailureIncludeHeartbeat: true,
          supportsSchedules: true,
          encodedFailureAttributes: true,
          buildIdBasedVersioning: true,
          upsertMemo: true,
          eagerWorkflowStart: false,
          sdkMetadata: true,
          countGroupByExecutionStatus: true,
          nexus: true,
        },
      };
    case 'DescribeNamespace':
      return namespaceDescription(req.namespace || 'default');
    case 'ListNamespaces':
      return { namespaces: [namespaceDescription('default')] };
    case 'StartWorkflowExecution':
      return { runId: crypto.randomUUID(), started: true };
    case 'SignalWithStartWorkflowExecution':
      return { runId: crypto.randomUUID(), started: true };
    case 'GetClusterInfo':
      return {
        serverVersion: SERVER_VERSION,
        clusterId: namespaceId('cluster'),
        clusterName: 'tgate-dev',
        historyShardCount: 1,
        persistenceStore: 'none',
        visibilityStore: 'none',
      };
    case 'GetWorkflowExecutionHistory':
      // A long-poll that timed out: no events, same page token so the client polls again.
      return req.waitNewEvent
        ? { history: { events: [] }, nextPageToken: req.nextPageToken && req.nextPageToken.length ? req.nextPageToken : Buffer.from('tgate-dev') }
        : {};
    default:
      return {};
  }
}

function isLongPoll(method, req) {
  if (LONG_POLL_METHODS.has(method.name)) return true;
  return method.name === 'GetWorkflowExecutionHistory' && !!req.waitNewEvent;
}

// ---------- server ----------

class Frontend extends EventEmitter {
  constructor(opts) {
    super();
    this.host = opts.host || '127.0.0.1';
    this.requestedPort = opts.port == null ? 0 : Number(opts.port);
    this.tls = opts.tls || null;
    this.longPollMs = opts.longPollMs == null ? DEFAULT_LONG_POLL_MS : Number(opts.longPollMs);
    this.closeTimeoutMs = opts.closeTimeoutMs == null ? 250 : Number(opts.closeTimeoutMs);
    this.log = typeof opts.log === 'function' ? opts.log : opts.log ? (l) => console.log(l) : null;
    this.maxMessageBytes = opts.maxMessageBytes || DEFAULT_MAX_MESSAGE_BYTES;
    this.calls = [];
    this.serviceNames = opts.services || SERVICE_NAMES;
    this.methods = buildMethodTable(this.serviceNames);
    this.servingAll = true;
    this.serving = new Map(); // service name -> boolean, overriding servingAll
    this.timers = new Set();
    this.closed = false;
    this.port = null;
    this.server = null;
  }

  reset() {
    this.calls.length = 0;
  }

  /** Health/Check answers SERVING (true) or NOT_SERVING (false) for service, or for all. */
  setServing(serving, service) {
    if (service === undefined) {
      this.servingAll = !!serving;
      this.serving.clear();
    } else {
      this.serving.set(service, !!serving);
    }
  }

  /** true / false for a service Check knows, null for one it does not (NOT_FOUND). */
  servingOf(service) {
    if (service !== '' && !this.serviceNames.includes(service)) return null;
    return this.serving.has(service) ? this.serving.get(service) : this.servingAll;
  }

  /** Resolve with the first recorded call (past or future) matching pred, or reject on timeout. */
  waitForCall(pred = () => true, timeoutMs = 5000) {
    const found = this.calls.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const onCall = (rec) => {
        if (!pred(rec)) return;
        clearTimeout(t);
        this.off('call', onCall);
        resolve(rec);
      };
      const t = setTimeout(() => {
        this.off('call', onCall);
        reject(new Error(`waitForCall: no matching call within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on('call', onCall);
    });
  }

  sleep(ms, call) {
    // Resolves 'elapsed' after ms, 'cancelled' as soon as the call is cancelled, or 'closing'
    // when the server is being closed.
    return new Promise((resolve) => {
      if (call.cancelled) return resolve('cancelled');
      if (this.closed) return resolve('closing');
      let done = false;
      const finish = (v) => {
        if (done) return;
        done = true;
        clearTimeout(t);
        this.timers.delete(entry);
        call.removeListener('cancelled', onCancel);
        resolve(v);
      };
      const onCancel = () => finish('cancelled');
      const t = setTimeout(() => finish('elapsed'), Math.max(0, ms));
      const entry = { cancel: () => finish('closing') };
      this.timers.add(entry);
      call.on('cancelled', onCancel);
    });
  }

  recordCall(service, method, path, call, request, requestBytes) {
    const { metadata, metadataAll } = metadataObjects(call.metadata);
    const rec = {
      service, // full service name
      method, // method name, e.g. "StartWorkflowExecution"
      path, // "/service/method"
      namespace: request && typeof request.namespace === 'string' ? request.namespace : undefined,
      metadata, // header -> value (string, Buffer for -bin; array if repeated)
      metadataAll, // header -> [values]
      authority: typeof call.getHost === 'function' ? call.getHost() : undefined,
      deadline: deadlineMs(call), // epoch ms from grpc-timeout, or null
      peer: typeof call.getPeer === 'function' ? call.getPeer() : undefined,
      auth: describeAuth(call), // TLS peer certificate summary
      request, // decoded request, toJSON() form (longs/enums as strings, bytes base64)
      requestBytes, // raw serialized request as received
      time: Date.now(),
      cancelled: false, // set true if the client cancels (or its deadline expires)
      status: null, // { code, details } once answered
      endTime: null,
    };
    this.calls.push(rec);
    call.on('cancelled', () => {
      // grpc-js also reports 'cancelled' when the client resets the stream after it already got
      // the full answer; only a cancel before we answered counts.
      if (!rec.status) {
        rec.cancelled = true;
        rec.status =
          rec.deadline !== null && Date.now() >= rec.deadline - 5
            ? { code: grpc.status.DEADLINE_EXCEEDED, details: 'deadline exceeded' }
            : { code: grpc.status.CANCELLED, details: 'cancelled by client' };
        rec.endTime = Date.now();
        this.emit('end', rec);
      }
    });
    if (this.log) {
      const ns = rec.namespace ? ` namespace=${rec.namespace}` : '';
      this.log(`${new Date(rec.time).toISOString()} ${method}${ns} metadata=[${Object.keys(metadata).join(',')}]`);
    }
    this.emit('call', rec);
    return rec;
  }

  finish(rec, status) {
    if (rec.status) return;
    rec.status = status;
    rec.endTime = Date.now();
    this.emit('end', rec);
  }

  /** Common tail: hooks (delay, fail, echo) then answer. */
  async answer(rec, call, callback, { holdMs, body, serialize }) {
    const md = call.metadata;
    // Initial metadata: echo x-echo-*.
    const initial = new grpc.Metadata();
    let haveInitial = false;
    for (const k of Object.keys(md.toJSON())) {
      if (!k.startsWith('x-echo-')) continue;
      for (const v of md.get(k)) {
        initial.add(k, v);
        haveInitial = true;
      }
    }
    if (haveInitial && !call.cancelled) call.sendMetadata(initial);

    const trailer = new grpc.Metadata();
    const tb = firstValue(md, 'x-test-trailer-bin');
    if (tb !== undefined) trailer.set('x-echo-trailer-bin', Buffer.isBuffer(tb) ? tb : Buffer.from(String(tb)));

    const delayRaw = firstValue(md, 'x-test-delay-ms');
    const delay = delayRaw !== undefined ? Number(String(delayRaw)) : holdMs;
    if (delay && delay > 0) {
      const how = await this.sleep(delay, call);
      if (how === 'cancelled') return; // nobody to answer
      if (how === 'closing') {
        const details = 'tgate-dev frontend: shutting down';
        this.finish(rec, { code: grpc.status.UNAVAILABLE, details });
        callback({ code: grpc.status.UNAVAILABLE, details, metadata: trailer });
        return;
      }
    }
    if (call.cancelled) return;

    const failRaw = firstValue(md, 'x-test-fail');
    if (failRaw !== undefined) {
      const { code, message } = parseFail(failRaw);
      const details = firstValue(md, 'x-test-status-details-bin');
      if (details !== undefined) trailer.set('grpc-status-details-bin', Buffer.isBuffer(details) ? details : Buffer.from(String(details)));
      this.finish(rec, { code, details: message });
      callback({ code, details: message, metadata: trailer });
      return;
    }
    let value;
    try {
      value = serialize(body);
    } catch (e) {
      const details = `tgate-dev frontend: cannot build response: ${e.message}`;
      this.finish(rec, { code: grpc.status.INTERNAL, details });
      callback({ code: grpc.status.INTERNAL, details, metadata: trailer });
      return;
    }
    this.finish(rec, { code: grpc.status.OK, details: 'OK' });
    callback(null, value, trailer);
  }

  makeUnaryHandler(method) {
    const { requestType, responseType } = method;
    return (call, callback) => {
      const raw = call.request; // Buffer (identity deserializer)
      let decoded;
      let request;
      try {
        decoded = requestType.decode(raw);
        request = decoded.toJSON();
      } catch (e) {
        const rec = this.recordCall(method.service, method.name, method.path, call, null, raw);
        const details = `tgate-dev frontend: cannot decode ${requestType.fullName.slice(1)}: ${e.message}`;
        this.finish(rec, { code: grpc.status.INVALID_ARGUMENT, details });
        callback({ code: grpc.status.INVALID_ARGUMENT, details });
        return;
      }
      const rec = this.recordCall(method.service, method.name, method.path, call, request, raw);
      const long = isLongPoll(method, decoded);
      this.answer(rec, call, callback, {
        holdMs: long ? this.longPollMs : 0,
        body: responseBody(method, decoded),
        serialize: (body) => Buffer.from(responseType.encode(responseType.fromObject(body)).finish()),
      }).catch((e) => {
        if (!call.cancelled) callback({ code: grpc.status.INTERNAL, details: String(e && e.message) });
      });
    };
  }

  buildServices(server) {
    const identity = (b) => b;
    const copy = (b) => Buffer.from(b);
    const byService = new Map();
    for (const m of this.methods) {
      if (m.requestStream || m.responseStream) continue; // none in these services today
      if (!byService.has(m.service)) byService.set(m.service, { def: {}, impl: {} });
      const s = byService.get(m.service);
      s.def[m.name] = {
        path: m.path,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: copy,
        responseSerialize: identity,
        responseDeserialize: copy,
        originalName: m.name[0].toLowerCase() + m.name.slice(1),
      };
      s.impl[m.name] = this.makeUnaryHandler(m);
    }
    for (const { def, impl } of byService.values()) server.addService(def, impl);
    this.addHealth(server);
  }

  addHealth(server) {
    const H = proto.grpc.health.v1;
    const SERVING = H.HealthCheckResponse.ServingStatus.SERVING;
    const NOT_SERVING = H.HealthCheckResponse.ServingStatus.NOT_SERVING;
    const identity = (b) => b;
    const copy = (b) => Buffer.from(b);
    const enc = (o) => Buffer.from(H.HealthCheckResponse.encode(H.HealthCheckResponse.fromObject(o)).finish());
    const def = {
      Check: {
        path: `/${HEALTH_SERVICE}/Check`,
        requestStream: false,
        responseStream: false,
        requestSerialize: identity,
        requestDeserialize: copy,
        responseSerialize: identity,
        responseDeserialize: copy,
        originalName: 'check',
      },
      Watch: {
        path: `/${HEALTH_SERVICE}/Watch`,
        requestStream: false,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: copy,
        responseSerialize: identity,
        responseDeserialize: copy,
        originalName: 'watch',
      },
    };
    const decodeReq = (raw) => H.HealthCheckRequest.decode(raw).toJSON();
    const impl = {
      Check: (call, callback) => {
        let request;
        try {
          request = decodeReq(call.request);
        } catch (e) {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: e.message });
          return;
        }
        const rec = this.recordCall(HEALTH_SERVICE, 'Check', `/${HEALTH_SERVICE}/Check`, call, request, call.request);
        const serving = this.servingOf(request.service || '');
        if (serving === null) {
          const details = `unknown service ${request.service}`;
          this.finish(rec, { code: grpc.status.NOT_FOUND, details });
          callback({ code: grpc.status.NOT_FOUND, details });
          return;
        }
        const status = serving ? SERVING : NOT_SERVING;
        this.answer(rec, call, callback, { holdMs: 0, body: { status }, serialize: enc }).catch(() => {});
      },
      Watch: (call) => {
        let request = null;
        try {
          request = decodeReq(call.request);
        } catch {
          /* recorded as null */
        }
        const rec = this.recordCall(HEALTH_SERVICE, 'Watch', `/${HEALTH_SERVICE}/Watch`, call, request, call.request);
        call.write(enc({ status: SERVING }));
        // Held open until the client cancels or the server closes (forceShutdown).
        const entry = {
          cancel: () => {
            this.finish(rec, { code: grpc.status.UNAVAILABLE, details: 'server closing' });
            try {
              call.end();
            } catch {
              /* ignore */
            }
          },
        };
        this.timers.add(entry);
        call.on('cancelled', () => this.timers.delete(entry));
      },
    };
    server.addService(def, impl);
  }

  async start() {
    const server = new grpc.Server({
      'grpc.max_receive_message_length': this.maxMessageBytes,
      'grpc.max_send_message_length': this.maxMessageBytes,
    });
    this.server = server;
    this.buildServices(server);
    let creds;
    if (this.tls) {
      const cert = readPem(this.tls.cert);
      const key = readPem(this.tls.key);
      const ca = readPem(this.tls.ca);
      if (!cert || !key) throw new Error('tls.cert and tls.key are required');
      if (this.tls.requireClientCert && !ca) throw new Error('tls.requireClientCert needs tls.ca');
      creds = grpc.ServerCredentials.createSsl(ca, [{ cert_chain: cert, private_key: key }], !!this.tls.requireClientCert);
    } else {
      creds = grpc.ServerCredentials.createInsecure();
    }
    const host = this.host.includes(':') && !this.host.startsWith('[') ? `[${this.host}]` : this.host;
    this.port = await new Promise((resolve, reject) => {
      server.bindAsync(`${host}:${this.requestedPort}`, creds, (err, port) => (err ? reject(err) : resolve(port)));
    });
    this.address = `${host}:${this.port}`;
    return this;
  }

  async close() {
    if (this.closed) return;
    this.closed = true;
    for (const t of [...this.timers]) t.cancel();
    this.timers.clear();
    const server = this.server;
    if (!server) return;
    await new Promise((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        server.forceShutdown();
        finish();
      }, this.closeTimeoutMs);
      server.tryShutdown(() => finish());
    });
    // Make sure nothing lingers (open HTTP/2 sessions keep the event loop alive).
    server.forceShutdown();
  }
}

async function startFrontend(opts = {}) {
  const fe = new Frontend(opts);
  try {
    await fe.start();
  } catch (e) {
    await fe.close().catch(() => {});
    throw e;
  }
  return fe;
}

// ---------- CLI ----------

function usage() {
  return (
    'usage: node tests/frontend/frontend.js --listen HOST:PORT [--tls-cert F --tls-key F [--tls-ca F]\n' +
    '         [--require-client-cert]] [--long-poll-ms N] [--log]'
  );
}

function parseArgs(argv) {
  const o = { listen: '127.0.0.1:7234', tls: null, longPollMs: undefined, log: false };
  const tls = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    switch (a) {
      case '--listen': o.listen = val(); break;
      case '--tls-cert': tls.cert = val(); break;
      case '--tls-key': tls.key = val(); break;
      case '--tls-ca': tls.ca = val(); break;
      case '--require-client-cert': tls.requireClientCert = true; break;
      case '--long-poll-ms': o.longPollMs = Number(val()); break;
      case '--log': o.log = true; break;
      case '-h': case '--help': console.log(usage()); process.exit(0); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  if (tls.cert || tls.key || tls.ca || tls.requireClientCert) o.tls = tls;
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(o.listen);
  if (!m) throw new Error(`bad --listen ${o.listen} (want HOST:PORT or [v6]:PORT)`);
  o.host = m[1] || m[2];
  o.port = Number(m[3]);
  return o;
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error(`frontend: ${e.message}\n${usage()}`);
    process.exit(2);
  }
  const fe = await startFrontend({ host: o.host, port: o.port, tls: o.tls, longPollMs: o.longPollMs, log: o.log });
  console.log(`listening on ${fe.address} (${o.tls ? (o.tls.requireClientCert ? 'mTLS' : 'TLS') : 'plaintext h2c'}, ${fe.methods.length} methods)`);
  let stopping = false;
  const stop = (sig) => {
    if (stopping) return;
    stopping = true;
    if (o.log) console.log(`${sig}: shutting down`);
    fe.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

module.exports = { startFrontend, buildMethodTable, Frontend, SERVER_VERSION, DEFAULT_LONG_POLL_MS };

if (require.main === module) {
  main().catch((e) => {
    console.error(`frontend: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  });
}
