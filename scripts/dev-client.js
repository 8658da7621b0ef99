#!/usr/bin/env node
// A Temporal SDK client that calls tgate (config/dev.yaml) with the worker-a
// development certificate: GetSystemInfo, DescribeNamespace, and a workflow
// start. Usage: node scripts/dev-client.js [address] [namespace]
const path = require('path');
const fs = require('fs');
const root = path.resolve(__dirname, '..');
const { Connection, Client } = require(path.join(root, 'tests/node_modules/@temporalio/client'));
const address = process.argv[2] || '127.0.0.1:7233';
const namespace = process.argv[3] || 'default';
const cert = (f) => fs.readFileSync(path.join(root, 'certs-dev', f));

(async () => {
  const connection = await Connection.connect({
    address,
    tls: {
      serverRootCACertificate: cert('ca.pem'),
      clientCertPair: { crt: cert('worker-a.pem'), key: cert('worker-a.key') },
      serverNameOverride: 'localhost',
    },
    connectTimeout: '5s',
  });
  const info = await connection.workflowService.getSystemInfo({});
  console.log('GetSystemInfo: server', info.serverVersion);
  const ns = await connection.workflowService.describeNamespace({ namespace });
  console.log('DescribeNamespace:', ns.namespaceInfo.name, 'state', ns.namespaceInfo.state);
  const client = new Client({ connection, namespace });
  const handle = await client.workflow.start('DevWorkflow', {
    taskQueue: 'dev', workflowId: `dev-${Date.now()}`,
  });
  console.log('StartWorkflowExecution: run id', handle.firstExecutionRunId);
  await connection.close();
})().catch((e) => { console.error('call failed:', e.message); process.exit(1); });
