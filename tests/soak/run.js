'use strict';
// One soak run against one tgate binary; scripts/soak.sh runs it for the ASan and the release
// build. Everything listens on 127.0.0.1.
//   node tests/soak/run.js --bin build/tgate --seconds 600 --work DIR [--asan]
// - the development frontend as a child process (tests/soak/frontend-child.js);
// - tgate with TLS, API keys and `authorization: mode: enforce`, its log in DIR/tgate.log;
// - the mixed load of tests/soak/load.js;
// - every 10 s a reload by SIGHUP, alternately a good configuration (two variants) and a bad
//   one; each is checked in /metrics (tgate_config_reloads_total{result});
// - tgate's RSS every 5 s; warm-up is the sample at 60 s (or half the run, when shorter);
// - at the end: the load stops, tgate_streams_open and tgate_connections_open must be 0,
//   SIGTERM must give exit status 0 and, for --asan, no sanitizer report in the log.
// Prints a report; exits 0 when everything passed, 1 otherwise. Child process ids are written
// to DIR/pids (for the caller's cleanup); children are killed on any exit.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { startLoad } = require('./load.js');
const proc = require('../integration/lib/proc.js');

const ROOT = path.resolve(__dirname, '..', '..');
const MiB = 1024 * 1024;
const SANITIZER_REPORTS = ['ERROR: AddressSanitizer', 'LeakSanitizer', 'runtime error:'];

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}
const BIN = path.resolve(ROOT, arg('--bin', 'build/tgate'));
const SECONDS = Number(arg('--seconds', process.env.SOAK_SECONDS || '600'));
const ASAN = process.argv.includes('--asan');
const WORK = path.resolve(arg('--work', fs.mkdtempSync('/tmp/tgate-soak-')));
const SLOW = ASAN ? 3 : 1;
const RELOAD_EVERY_MS = 10_000;
const RSS_EVERY_MS = 5_000;
const WARMUP_S = Math.min(60, Math.floor(SECONDS / 2));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (line) => console.log(`[soak ${ASAN ? 'asan' : 'release'} ${new Date().toISOString().slice(11, 19)}] ${line}`);
const fmtMiB = (b) => `${(b / MiB).toFixed(1)} MiB`;

const children = new Set();
function track(child) {
  children.add(child);
  fs.appendFileSync(path.join(WORK, 'pids'), `${child.pid}\n`);
  child.on('exit', () => children.delete(child));
  return child;
}
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    log(`${sig}: aborting`);
    process.exit(130);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

async function waitFor(fn, ms, what, every = 100) {
  const end = Date.now() + ms;
  for (;;) {
    let v;
    try {
      v = await fn();
    } catch {
      v = false;
    }
    if (v) return v;
    if (Date.now() >= end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

function readyStatus(adminPort) {
  return new Promise((resolve) => {
    const req = require('node:http').get({ host: '127.0.0.1', port: adminPort, path: '/health/ready', agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
  });
}

async function main() {
  fs.mkdirSync(WORK, { recursive: true });
  log(`tgate ${BIN}, ${SECONDS} s, work dir ${WORK}`);
  if (!fs.existsSync(BIN)) throw new Error(`no ${BIN}: build it first`);

  // Certificates, an API key, configurations.
  const certDir = path.join(WORK, 'certs');
  execFileSync('bash', [path.join(ROOT, 'certs-dev', 'gen.sh'), certDir], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 60_000 });
  const out = execFileSync(BIN, ['apikey', 'new', '--subject', 'soak-a', '--permission', 'team-a:write', '--permission', 'team-a:worker'],
    { encoding: 'utf8' });
  const keyA = /#\s+(tgk_\S+)/.exec(out)[1];
  const keysFile = path.join(WORK, 'keys.yaml');
  fs.writeFileSync(keysFile, `keys:\n${out.split('\n').filter((l) => !l.startsWith('#')).join('\n')}\n`);

  const fePort = await freePort();
  const port = await freePort();
  const adminPort = await freePort();
  const q = JSON.stringify;
  const config = (variant) => [
    'listen:',
    `  address: ${q(`127.0.0.1:${port}`)}`,
    '  tls:',
    `    cert_file: ${q(path.join(certDir, 'server.pem'))}`,
    `    key_file: ${q(path.join(certDir, 'server.key'))}`,
    'upstream:',
    `  addresses: [${q(`127.0.0.1:${fePort}`)}]`,
    '  connect_timeout: 2s',
    'admin:',
    `  address: ${q(`127.0.0.1:${adminPort}`)}`,
    'workers: 2',
    'shutdown_grace_period: 5s',
    'authentication:',
    '  require: [api_key]',
    `  api_keys_file: ${q(keysFile)}`,
    'authorization:',
    '  mode: enforce',
    // The two good variants differ in a rule the load never meets; the bad one has an unknown key.
    ...(variant === 'good-b' ? ['  disabled_methods: ["OperatorService/DeleteNamespace"]'] : []),
    ...(variant === 'bad' ? ['  mode_typo: enforce'] : []),
    'reload:',
    '  watch_interval: 0s',
    'logging:',
    '  level: info',
    '',
  ].join('\n');
  const configFile = path.join(WORK, 'tgate.yaml');
  const writeConfig = (variant) => {
    fs.writeFileSync(`${configFile}.tmp`, config(variant));
    fs.renameSync(`${configFile}.tmp`, configFile);
  };
  writeConfig('good-a');
  const check = execFileSync(BIN, ['--check-config', '-c', configFile], { encoding: 'utf8' });
  log(check.trim());

  // The frontend.
  const fe = track(spawn(process.execPath, [path.join(__dirname, 'frontend-child.js'), '--port', String(fePort)],
    { stdio: ['ignore', 'pipe', 'inherit'] }));
  let feOut = '';
  fe.stdout.on('data', (d) => (feOut += d));
  await waitFor(() => /listening \d+/.test(feOut), 15_000, 'the frontend to listen');

  // tgate, its log in a file.
  const logFile = path.join(WORK, 'tgate.log');
  const logFd = fs.openSync(logFile, 'a');
  const env = { ...process.env };
  if (ASAN) {
    // A small quarantine: with the default 256 MiB, RSS would climb for minutes as freed
    // memory waits in it, which the flat-RSS check would take for a leak.
    const o = env.ASAN_OPTIONS || 'detect_leaks=1:abort_on_error=0:halt_on_error=1';
    env.ASAN_OPTIONS = /quarantine_size_mb/.test(o) ? o : `${o}:quarantine_size_mb=16`;
    env.UBSAN_OPTIONS = env.UBSAN_OPTIONS || 'print_stacktrace=1:halt_on_error=1';
  }
  const tg = track(spawn(BIN, ['-c', configFile], { cwd: ROOT, stdio: ['ignore', logFd, logFd], env }));
  fs.closeSync(logFd);
  let tgExit = null;
  const tgExited = new Promise((resolve) => tg.on('exit', (code, signal) => resolve((tgExit = { code, signal }))));
  await waitFor(async () => {
    if (tgExit) throw new Error(`tgate exited during start-up: ${JSON.stringify(tgExit)}`);
    return (await readyStatus(adminPort)) === 200;
  }, 15_000 * SLOW, 'tgate /health/ready 200').catch((e) => {
    throw new Error(`${e.message}\n${fs.readFileSync(logFile, 'utf8').slice(-3000)}`);
  });
  log(`tgate pid ${tg.pid} ready: listen ${port} (TLS), admin ${adminPort}, frontend ${fePort}`);

  const failures = []; // every reason the run fails
  const metricsNow = () => proc.scrape(adminPort, 5000 * SLOW);
  const OK = 'tgate_config_reloads_total{result="success"}';
  const BAD = 'tgate_config_reloads_total{result="failure"}';

  // The load.
  const ca = fs.readFileSync(path.join(certDir, 'ca.pem'));
  const load = startLoad({ port, ca, keyA, slow: SLOW });
  await load.ready;
  const t0 = Date.now();

  // Reloads every 10 s, alternating good (two variants) and bad.
  const reloads = { good: 0, bad: 0, checkedGood: 0, checkedBad: 0, problems: 0 };
  let reloading = Promise.resolve();
  let nReload = 0;
  async function reloadOnce() {
    const kind = nReload % 2 === 0 ? 'good' : 'bad';
    const variant = kind === 'bad' ? 'bad' : nReload % 4 === 0 ? 'good-b' : 'good-a';
    nReload++;
    const m0 = await metricsNow();
    const ok0 = proc.metric(m0, OK);
    const bad0 = proc.metric(m0, BAD);
    writeConfig(variant);
    tg.kill('SIGHUP');
    reloads[kind]++;
    let m;
    try {
      await waitFor(async () => {
        m = await metricsNow();
        return proc.metric(m, OK) + proc.metric(m, BAD) > ok0 + bad0;
      }, 8000 * SLOW, `reload ${nReload} (${variant}) to be counted`);
    } catch (e) {
      reloads.problems++;
      failures.push(e.message);
      return;
    }
    const dOk = proc.metric(m, OK) - ok0;
    const dBad = proc.metric(m, BAD) - bad0;
    if (kind === 'good' && dOk === 1 && dBad === 0) reloads.checkedGood++;
    else if (kind === 'bad' && dBad === 1 && dOk === 0) reloads.checkedBad++;
    else {
      reloads.problems++;
      failures.push(`reload ${nReload} (${variant}): success +${dOk}, failure +${dBad}`);
    }
  }
  const reloadTimer = setInterval(() => {
    reloading = reloading.then(reloadOnce).catch((e) => failures.push(`reload: ${e.message}`));
  }, RELOAD_EVERY_MS);

  // RSS every 5 s; progress every 30 s.
  const rss = [];
  const sample = () => {
    const s = Math.round((Date.now() - t0) / 1000);
    try {
      rss.push({ s, bytes: proc.rssBytes(tg.pid) });
    } catch {
      /* exited: noticed below */
    }
  };
  sample();
  const rssTimer = setInterval(sample, RSS_EVERY_MS);
  let lastProgress = Date.now();
  while (Date.now() - t0 < SECONDS * 1000) {
    await sleep(1000);
    if (tgExit) {
      failures.push(`tgate exited during the run: ${JSON.stringify(tgExit)}`);
      break;
    }
    if (Date.now() - lastProgress >= 30_000) {
      lastProgress = Date.now();
      const st = load.stats;
      const last = rss[rss.length - 1];
      log(`${Math.round((Date.now() - t0) / 1000)} s: ${st.calls} calls, ${st.unexpected} unexpected, ` +
        `reloads ${reloads.checkedGood + reloads.checkedBad}/${reloads.good + reloads.bad} checked, RSS ${last ? fmtMiB(last.bytes) : '?'}`);
    }
  }
  clearInterval(reloadTimer);
  await reloading;
  sample();
  clearInterval(rssTimer);

  // Stop the load; nothing may stay open in tgate.
  log('stopping the load');
  await load.stop();
  let gauges = '';
  if (!tgExit) {
    try {
      await waitFor(async () => {
        const m = await metricsNow();
        gauges = `streams_open ${proc.metric(m, 'tgate_streams_open')}, connections_open ${proc.metric(m, 'tgate_connections_open')}`;
        return proc.metric(m, 'tgate_streams_open') === 0 && proc.metric(m, 'tgate_connections_open') === 0;
      }, 10_000 * SLOW, 'tgate_streams_open and tgate_connections_open to reach 0');
    } catch (e) {
      failures.push(`${e.message} (${gauges})`);
    }
  }
  let finalMetrics = '';
  if (!tgExit) finalMetrics = await metricsNow().catch(() => '');

  // Stop tgate: exit status 0 and no sanitizer report.
  if (!tgExit) tg.kill('SIGTERM');
  const exit = await Promise.race([tgExited, sleep(60_000 * SLOW).then(() => null)]);
  if (!exit) {
    tg.kill('SIGKILL');
    failures.push('tgate did not exit within 60 s of SIGTERM');
  } else if (exit.code !== 0) failures.push(`tgate exit status ${JSON.stringify(exit)}`);
  await sleep(200);
  const tgLog = fs.readFileSync(logFile, 'utf8');
  const reports = SANITIZER_REPORTS.filter((s) => tgLog.includes(s));
  if (reports.length) failures.push(`sanitizer report(s) in ${logFile}: ${reports.join(', ')}`);

  // The frontend's own count.
  fe.kill('SIGTERM');
  await Promise.race([new Promise((r) => fe.on('exit', r)), sleep(5000)]);
  const feStats = (/stats (\{.*\})/.exec(feOut) || [])[1];

  // Report.
  const st = load.stats;
  if (st.unexpected > 0) failures.push(`${st.unexpected} unexpected failure(s)`);
  if (reloads.good + reloads.bad < Math.floor(SECONDS * 1000 / RELOAD_EVERY_MS) - 1) failures.push('too few reloads');
  const warm = rss.find((r) => r.s >= WARMUP_S) || rss[0];
  const end = rss[rss.length - 1];
  const growth = end.bytes - warm.bytes;
  const flat = growth < 8 * MiB || growth < 0.1 * warm.bytes;
  if (!flat) failures.push(`RSS grew ${fmtMiB(growth)} from ${warm.s} s to ${end.s} s`);
  const peak = rss.reduce((a, r) => Math.max(a, r.bytes), 0);

  console.log('');
  console.log(`==== soak report: ${ASAN ? 'ASan+UBSan build' : 'release build'} (${path.relative(ROOT, BIN)}), ${SECONDS} s ====`);
  console.log(`calls: ${st.calls} in ${SECONDS} s (${(st.calls / SECONDS).toFixed(0)}/s)`);
  for (const [kind, outcomes] of Object.entries(st.byKind)) {
    const o = Object.entries(outcomes).map(([k, v]) => `${k}: ${v}`).join(', ');
    console.log(`  ${kind.padEnd(16)} ${o}${st.maxMs[kind] !== undefined ? `  (slowest ${st.maxMs[kind]} ms)` : ''}`);
  }
  console.log(`connections: ${st.connectionsOpened} opened, ${st.connectionsClosedGracefully} closed gracefully, ` +
    `${st.connectionsDropped} dropped with calls in flight, ${st.connectionsLostUnexpectedly} lost unexpectedly, ` +
    `${st.connectFailures} connect failures`);
  console.log(`unexpected failures: ${st.unexpected}`);
  for (const u of st.unexpectedSamples) console.log(`  ${JSON.stringify(u)}`);
  console.log(`reloads: ${reloads.good} good sent (${reloads.checkedGood} counted as success), ${reloads.bad} bad sent ` +
    `(${reloads.checkedBad} counted as failure); /metrics: ${OK} ${proc.metric(finalMetrics, OK)}, ` +
    `${BAD} ${proc.metric(finalMetrics, BAD)}, tgate_config_generation ${proc.metric(finalMetrics, 'tgate_config_generation')}`);
  const dec = finalMetrics.split('\n').filter((l) => l.startsWith('tgate_calls_total{')).map((l) => l.replace('tgate_calls_total', '')).join(' ');
  console.log(`tgate_calls_total: ${dec}`);
  console.log(`frontend saw: ${feStats || '?'}`);
  console.log(`RSS: start ${fmtMiB(rss[0].bytes)}, warm-up (${warm.s} s) ${fmtMiB(warm.bytes)}, end (${end.s} s) ${fmtMiB(end.bytes)}, ` +
    `peak ${fmtMiB(peak)}; growth ${fmtMiB(growth)} (${((growth / warm.bytes) * 100).toFixed(1)}%): ${flat ? 'PASS' : 'FAIL'} (flat: < 8 MiB or < 10%)`);
  console.log(`RSS samples (s:MiB): ${rss.map((r) => `${r.s}:${(r.bytes / MiB).toFixed(1)}`).join(' ')}`);
  console.log(`tgate exit: ${JSON.stringify(exit)}; sanitizer reports: ${reports.length ? reports.join(', ') : 'none'}` +
    `${ASAN ? '' : ' (not a sanitizer build)'}; log ${logFile} (${(tgLog.length / 1024).toFixed(0)} KiB)`);
  if (failures.length) {
    console.log(`RESULT: FAIL\n  - ${failures.join('\n  - ')}`);
    process.exitCode = 1;
  } else {
    console.log('RESULT: PASS');
  }
}

main().catch((e) => {
  console.error(`soak: ${e && e.stack ? e.stack : e}`);
  process.exitCode = 1;
}).finally(() => {
  // Children are killed by the exit handler; timers of the load may still be pending.
  setTimeout(() => process.exit(), 100).unref();
});
