#!/usr/bin/env node
'use strict';
// Inputs for scripts/bench.sh (not a test): real Temporal request bodies and
// JWTs, written to OUTDIR.
//
//   node tests/bench/bodies.js OUTDIR [--fresh-tokens N]
//
// Writes:
//   describe.bin   DescribeNamespaceRequest{namespace: "bench"} with the 5-byte
//                  gRPC prefix (for `h2load -d`)
//   describe-other.bin   the same for namespace "other", on which the token
//                  grants nothing (a call the policy must deny)
//   start.bin      a ~1 KiB StartWorkflowExecutionRequest (namespace bench,
//                  workflow type BenchWorkflow, task queue bench-tq, request
//                  id, a JSON payload padded to reach ~1 KiB), prefixed
//   jwt-rs.key / jwt-rs.pub.pem   RSA 2048 key pair (kid bench-rs)
//   jwt-es.key / jwt-es.pub.pem   EC P-256 key pair (kid bench-es)
//   token.txt      one RS256 token: iss, aud, sub, iat, exp (+2 h),
//                  permissions ["bench:write", "bench:read"]
//   tokens-rs256.txt, tokens-es256.txt   N distinct tokens each (one per line;
//                  default N 4000), for the authorization micro-benchmark
// Keys are made once per OUTDIR and reused; tokens and bodies every run.
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { temporal } = require(path.join(__dirname, '..', 'node_modules', '@temporalio', 'proto'));

const ISSUER = 'https://issuer.bench.local';
const AUDIENCE = 'temporal';
const PERMISSIONS = ['bench:write', 'bench:read'];

const out = process.argv[2];
if (!out) {
  console.error('usage: bodies.js OUTDIR [--fresh-tokens N]');
  process.exit(2);
}
let nFresh = 4000;
const fi = process.argv.indexOf('--fresh-tokens');
if (fi > 0) nFresh = Number(process.argv[fi + 1]);
if (!Number.isInteger(nFresh) || nFresh < 0) {
  console.error('bodies.js: --fresh-tokens wants a count');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });

const ws = temporal.api.workflowservice.v1;

function grpcFrame(msg) {
  const b = Buffer.alloc(5 + msg.length);
  b.writeUInt8(0, 0);
  b.writeUInt32BE(msg.length, 1);
  Buffer.from(msg).copy(b, 5);
  return b;
}

function startRequest(padTo) {
  const base = {
    namespace: 'bench',
    workflowId: 'bench-order-000042',
    workflowType: { name: 'BenchWorkflow' },
    taskQueue: { name: 'bench-tq', kind: 1 },
    identity: 'bench-client@127.0.0.1',
    requestId: '8a1f6c2e-3b4d-4e5f-9a0b-1c2d3e4f5a6b',
    workflowIdReusePolicy: 1,
    workflowExecutionTimeout: { seconds: 3600 },
    workflowRunTimeout: { seconds: 3600 },
    workflowTaskTimeout: { seconds: 10 },
  };
  const payload = (pad) => ({
    metadata: { encoding: Buffer.from('json/plain') },
    data: Buffer.from(JSON.stringify({ orderId: 42, customer: 'bench', note: 'x'.repeat(pad) })),
  });
  // Grow the padding until the encoded message reaches padTo bytes.
  let pad = 0;
  let msg;
  for (;;) {
    msg = ws.StartWorkflowExecutionRequest.encode({ ...base, input: { payloads: [payload(pad)] } }).finish();
    if (msg.length >= padTo) break;
    pad += padTo - msg.length;
  }
  return msg;
}

function keyPair(name, opts) {
  const keyFile = path.join(out, `${name}.key`);
  const pubFile = path.join(out, `${name}.pub.pem`);
  if (!fs.existsSync(keyFile) || !fs.existsSync(pubFile)) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync(opts.type, opts.params);
    fs.writeFileSync(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    fs.writeFileSync(pubFile, publicKey.export({ type: 'spki', format: 'pem' }));
  }
  return crypto.createPrivateKey(fs.readFileSync(keyFile));
}

const b64u = (b) => Buffer.from(b).toString('base64url');

function mint(alg, kid, key, claims) {
  const head = b64u(JSON.stringify({ alg, typ: 'JWT', kid }));
  const body = b64u(JSON.stringify(claims));
  const data = Buffer.from(`${head}.${body}`);
  const sig =
    alg === 'ES256'
      ? crypto.sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' })
      : crypto.sign('sha256', data, key);
  return `${head}.${body}.${b64u(sig)}`;
}

function claims(sub, i) {
  const now = Math.floor(Date.now() / 1000);
  return {
    iss: ISSUER,
    aud: AUDIENCE,
    sub,
    iat: now,
    exp: now + 7200,
    jti: `bench-${i}`,
    permissions: PERMISSIONS,
  };
}

const describe = ws.DescribeNamespaceRequest.encode({ namespace: 'bench' }).finish();
const start = startRequest(1019); // 1019 + 5-byte prefix = 1 KiB on the wire
fs.writeFileSync(path.join(out, 'describe.bin'), grpcFrame(describe));
fs.writeFileSync(
  path.join(out, 'describe-other.bin'),
  grpcFrame(ws.DescribeNamespaceRequest.encode({ namespace: 'other' }).finish()),
);
fs.writeFileSync(path.join(out, 'start.bin'), grpcFrame(start));

const rs = keyPair('jwt-rs', { type: 'rsa', params: { modulusLength: 2048 } });
const es = keyPair('jwt-es', { type: 'ec', params: { namedCurve: 'P-256' } });
fs.writeFileSync(path.join(out, 'token.txt'), mint('RS256', 'bench-rs', rs, claims('bench-client', 0)) + '\n');
const many = (alg, kid, key) => {
  const v = [];
  for (let i = 0; i < nFresh; i++) v.push(mint(alg, kid, key, claims(`bench-client-${i}`, i)));
  return v.join('\n') + (v.length ? '\n' : '');
};
fs.writeFileSync(path.join(out, 'tokens-rs256.txt'), many('RS256', 'bench-rs', rs));
fs.writeFileSync(path.join(out, 'tokens-es256.txt'), many('ES256', 'bench-es', es));
console.log(
  JSON.stringify({
    describe_bytes: describe.length + 5,
    start_bytes: start.length + 5,
    fresh_tokens: nFresh,
    issuer: ISSUER,
    audience: AUDIENCE,
  }),
);
