#!/usr/bin/env node
'use strict';
// A real gRPC client's view of one benchmark target (scripts/bench.sh): calls
// DescribeNamespace and StartWorkflowExecution once each with @grpc/grpc-js,
// using the bodies and token made by bodies.js, and checks that the responses
// decode as the Temporal response types (so h2load's "succeeded", which also
// counts trailers-only gRPC errors, is backed by real answers).
//
//   node tests/bench/check.js HOST:PORT DIR [--tls CA_FILE]
// Prints one JSON line; exits 1 when a call fails or decodes wrongly.
const fs = require('fs');
const path = require('path');
const grpc = require(path.join(__dirname, '..', 'node_modules', '@grpc', 'grpc-js'));
const { temporal } = require(path.join(__dirname, '..', 'node_modules', '@temporalio', 'proto'));

const [target, dir] = process.argv.slice(2, 4);
const ti = process.argv.indexOf('--tls');
if (!target || !dir) {
  console.error('usage: check.js HOST:PORT DIR [--tls CA_FILE]');
  process.exit(2);
}
const ws = temporal.api.workflowservice.v1;
const SVC = '/temporal.api.workflowservice.v1.WorkflowService/';
const creds =
  ti > 0 ? grpc.credentials.createSsl(fs.readFileSync(process.argv[ti + 1])) : grpc.credentials.createInsecure();
const client = new grpc.Client(target, creds, {
  'grpc.ssl_target_name_override': 'localhost',
});
const md = new grpc.Metadata();
md.set('authorization', `Bearer ${fs.readFileSync(path.join(dir, 'token.txt'), 'utf8').trim()}`);
const body = (f) => fs.readFileSync(path.join(dir, f)).subarray(5);

function call(method, file, Resp) {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      SVC + method,
      (b) => b,
      (b) => Resp.decode(b),
      body(file),
      md,
      { deadline: Date.now() + 5000 },
      (err, res) => (err ? reject(new Error(`${method}: ${err.code} ${err.details}`)) : resolve(res)),
    );
  });
}

(async () => {
  const d = await call('DescribeNamespace', 'describe.bin', ws.DescribeNamespaceResponse);
  const s = await call('StartWorkflowExecution', 'start.bin', ws.StartWorkflowExecutionResponse);
  if (d.namespaceInfo?.name !== 'bench') throw new Error('DescribeNamespace: unexpected response');
  if (!s.runId || s.started !== true) throw new Error('StartWorkflowExecution: unexpected response');
  console.log(JSON.stringify({ target, ok: true, namespace: d.namespaceInfo.name, run_id: s.runId }));
})()
  .catch((e) => {
    console.log(JSON.stringify({ target, ok: false, error: e.message }));
    process.exitCode = 1;
  })
  .finally(() => client.close());
