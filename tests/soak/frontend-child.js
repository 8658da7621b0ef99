'use strict';
// The development frontend (tests/frontend/frontend.js) as a child process for the soak run:
// its call records are dropped every few seconds (a long run must not grow it), and it counts
// what it saw instead. Prints "listening PORT" once bound; on SIGTERM prints one line
// "stats {...}" (calls by method, cancelled calls) and exits 0.
//   node tests/soak/frontend-child.js --port N [--long-poll-ms MS]

const { startFrontend } = require('../frontend/frontend.js');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

async function main() {
  const port = Number(arg('--port', '0'));
  const longPollMs = Number(arg('--long-poll-ms', '60000'));
  const fe = await startFrontend({ host: '127.0.0.1', port, longPollMs });
  const stats = { calls: 0, cancelled: 0, byMethod: {} };
  fe.on('call', (rec) => {
    stats.calls++;
    stats.byMethod[rec.method] = (stats.byMethod[rec.method] || 0) + 1;
  });
  fe.on('end', (rec) => {
    if (rec.cancelled) stats.cancelled++;
  });
  setInterval(() => fe.reset(), 5000);
  console.log(`listening ${fe.port}`);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    console.log(`stats ${JSON.stringify(stats)}`);
    fe.close().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((e) => {
  console.error(`frontend-child: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
