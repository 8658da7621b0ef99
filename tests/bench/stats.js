#!/usr/bin/env node
'use strict';
// Number crunching for scripts/bench.sh (not a test).
//
//   node stats.js pct H2LOAD_LOG
//     h2load --log-file lines are "start_us<TAB>status<TAB>duration_us"; prints
//     {"n","non2xx","p50_us","p99_us","mean_us","max_us"} (nearest-rank
//     percentiles over every logged request).
//
//   node stats.js run H2LOAD_OUTPUT H2LOAD_LOG KEY=VALUE...
//     One run as a JSON line: h2load's summary (calls/s, requests succeeded,
//     failed, 2xx), the percentiles of its log, and the KEY=VALUE pairs
//     (numbers where they look like numbers).
//
//   node stats.js report RUNS.jsonl MICRO.json RSS.json META.json OUT.json
//     RUNS.jsonl: one JSON object per h2load run (written by bench.sh).
//     Aggregates the runs of each (target, shape, body): the median of calls/s,
//     p50 and p99 over the repetitions, CPU seconds per 100k calls as the sum
//     of the proxy's CPU over the sum of calls; a group is FAILED when any run
//     had a failed request or when the upstream's count differs from the
//     calls h2load saw succeed. Prints the tables and the targets, and writes
//     everything (raw runs included) to OUT.json.
const fs = require('fs');

function pct(file) {
  const text = fs.readFileSync(file, 'utf8');
  const d = [];
  let non2xx = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split('\t');
    if (f.length < 3) continue;
    if (!/^2/.test(f[1])) non2xx++;
    d.push(Number(f[2]));
  }
  const a = Float64Array.from(d).sort();
  const at = (q) => (a.length ? a[Math.min(a.length - 1, Math.max(0, Math.ceil(q * a.length) - 1))] : null);
  let sum = 0;
  for (const v of a) sum += v;
  return {
    n: a.length,
    non2xx,
    p50_us: at(0.5),
    p99_us: at(0.99),
    mean_us: a.length ? Math.round(sum / a.length) : null,
    max_us: a.length ? a[a.length - 1] : null,
  };
}

function run(outFile, logFile, kv) {
  const text = fs.readFileSync(outFile, 'utf8');
  const unit = { s: 1, ms: 1e-3, us: 1e-6 };
  const fin = /finished in ([\d.]+)(s|ms|us), ([\d.]+) req\/s/.exec(text);
  const req =
    /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
      text,
    );
  const st = /status codes: (\d+) 2xx/.exec(text);
  const r = {};
  for (const a of kv) {
    const i = a.indexOf('=');
    const k = a.slice(0, i);
    const v = a.slice(i + 1);
    r[k] = /^-?\d+(\.\d+)?$/.test(v) ? Number(v) : v;
  }
  r.h2load_ok = Boolean(fin && req && st);
  r.duration_s = fin ? Number(fin[1]) * unit[fin[2]] : null;
  r.req_s = fin ? Number(fin[3]) : null;
  r.requests = req ? Number(req[1]) : r.requests ?? 0;
  r.succeeded = req ? Number(req[4]) : 0;
  r.failed = req ? Number(req[5]) : null;
  r.errored = req ? Number(req[6]) : null;
  r.timeout = req ? Number(req[7]) : null;
  r.status_2xx = st ? Number(st[1]) : 0;
  let p = {};
  try {
    p = pct(logFile);
  } catch {
    p = { n: 0 };
  }
  return { ...r, ...p };
}

const median = (v) => {
  const a = v.filter((x) => x != null && !Number.isNaN(x)).sort((x, y) => x - y);
  if (!a.length) return null;
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};

function readJson(file, dflt) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return dflt;
  }
}

function aggregate(runs) {
  const groups = new Map();
  for (const r of runs) {
    const k = `${r.shape}|${r.body}|${r.target}`;
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(r);
  }
  const rows = [];
  for (const list of groups.values()) {
    const r0 = list[0];
    const calls = list.reduce((s, r) => s + r.succeeded, 0);
    const cpu = list.reduce((s, r) => s + (r.proxy_cpu_s ?? 0), 0);
    const upCpu = list.reduce((s, r) => s + (r.upstream_cpu_s ?? 0), 0);
    const problems = [];
    for (const r of list) {
      if (r.succeeded !== r.requests) problems.push(`rep ${r.rep}: ${r.requests - r.succeeded} not succeeded`);
      if (r.status_2xx !== r.requests) problems.push(`rep ${r.rep}: ${r.requests - r.status_2xx} not 2xx`);
      if (r.upstream_calls !== r.succeeded)
        problems.push(`rep ${r.rep}: upstream answered ${r.upstream_calls}, h2load saw ${r.succeeded} succeed`);
    }
    rows.push({
      target: r0.target,
      transport: r0.transport,
      auth: r0.auth,
      shape: r0.shape,
      body: r0.body,
      reps: list.length,
      calls,
      req_s: median(list.map((r) => r.req_s)),
      p50_us: median(list.map((r) => r.p50_us)),
      p99_us: median(list.map((r) => r.p99_us)),
      cpu_s_per_100k: r0.target === 'direct' ? null : calls ? (cpu / calls) * 1e5 : null,
      upstream_cpu_s_per_100k: calls ? (upCpu / calls) * 1e5 : null,
      upstream_calls: list.reduce((s, r) => s + r.upstream_calls, 0),
      ok: problems.length === 0,
      problems,
    });
  }
  // Ratios to nghttpx on the same transport and to direct, per (shape, body).
  for (const row of rows) {
    const same = (t) => rows.find((x) => x.shape === row.shape && x.body === row.body && x.target === t);
    const ngx = same(row.transport === 'tls' ? 'nghttpx-tls' : 'nghttpx');
    const dir = same('direct');
    const ratio = (a, b) => (a != null && b != null && b !== 0 ? a / b : null);
    row.vs_nghttpx = ngx && {
      baseline: ngx.target,
      req_s: ratio(row.req_s, ngx.req_s),
      p50: ratio(row.p50_us, ngx.p50_us),
      p99: ratio(row.p99_us, ngx.p99_us),
      cpu: ratio(row.cpu_s_per_100k, ngx.cpu_s_per_100k),
    };
    row.vs_direct = dir && {
      req_s: ratio(row.req_s, dir.req_s),
      p50: ratio(row.p50_us, dir.p50_us),
      p99: ratio(row.p99_us, dir.p99_us),
      added_p50_us: row.p50_us != null && dir.p50_us != null ? row.p50_us - dir.p50_us : null,
    };
  }
  return rows;
}

const fx = (v, d = 2) => (v == null ? '-' : v.toFixed(d));
const fi = (v) => (v == null ? '-' : String(Math.round(v)));
const pad = (s, n) => (s.length >= n ? s : ' '.repeat(n - s.length) + s);
const padr = (s, n) => (s.length >= n ? s : s + ' '.repeat(n - s.length));

function table(rows, meta) {
  const out = [];
  const order = meta.targets || [];
  const bodies = meta.bodies || {};
  const shapes = meta.shapes || {};
  const keys = [...new Set(rows.map((r) => `${r.shape}|${r.body}`))];
  for (const k of keys) {
    const [shape, body] = k.split('|');
    const rs = rows
      .filter((r) => r.shape === shape && r.body === body)
      .sort((a, b) => order.indexOf(a.target) - order.indexOf(b.target));
    out.push('');
    out.push(`== ${bodies[body] || body}; ${shapes[shape] || shape} ==`);
    out.push(
      [
        padr('target', 15),
        padr('transport', 9),
        padr('auth', 12),
        pad('calls/s', 9),
        pad('xngx', 5),
        pad('xdir', 5),
        pad('p50us', 7),
        pad('xngx', 5),
        pad('xdir', 5),
        pad('+p50', 6),
        pad('p99us', 7),
        pad('xngx', 5),
        pad('xdir', 5),
        pad('CPUs/100k', 9),
        pad('xngx', 5),
        pad('upCPU', 6),
        '  upstream',
      ].join(' '),
    );
    for (const r of rs) {
      const n = r.vs_nghttpx || {};
      const d = r.vs_direct || {};
      out.push(
        [
          padr(r.target, 15),
          padr(r.transport, 9),
          padr(r.auth, 12),
          pad(fi(r.req_s), 9),
          pad(fx(n.req_s), 5),
          pad(fx(d.req_s), 5),
          pad(fi(r.p50_us), 7),
          pad(fx(n.p50), 5),
          pad(fx(d.p50), 5),
          pad(fi(d.added_p50_us), 6),
          pad(fi(r.p99_us), 7),
          pad(fx(n.p99), 5),
          pad(fx(d.p99), 5),
          pad(fx(r.cpu_s_per_100k), 9),
          pad(fx(n.cpu), 5),
          pad(fx(r.upstream_cpu_s_per_100k), 6),
          `  ${r.ok ? 'ok' : 'FAILED'} ${r.upstream_calls}/${r.calls}`,
        ].join(' '),
      );
    }
    for (const r of rs) for (const p of r.problems) out.push(`  FAILED ${r.target}: ${p}`);
  }
  return out.join('\n');
}

function targets(rows, micro, rss) {
  const find = (t, shape, body) => rows.find((r) => r.target === t && r.shape === shape && r.body === body);
  const lines = [];
  const verdict = (ok) => (ok == null ? 'n/a' : ok ? 'MET' : 'NOT MET');
  for (const body of [...new Set(rows.map((r) => r.body))]) {
    for (const [t, peer] of [
      ['tgate-auth', 'h2c'],
      ['tgate-auth-tls', 'tls'],
    ]) {
      const r = find(t, 'hc', body);
      if (!r) continue;
      const ngx = find(peer === 'tls' ? 'nghttpx-tls' : 'nghttpx', 'hc', body);
      const hap = find(peer === 'tls' ? 'haproxy-tls' : 'haproxy', 'hc', body);
      const vn = ngx ? r.req_s / ngx.req_s : null;
      const vh = hap ? r.req_s / hap.req_s : null;
      const cpu = ngx && r.cpu_s_per_100k != null ? r.cpu_s_per_100k / ngx.cpu_s_per_100k : null;
      lines.push(
        `${t} ${body} throughput >= 1.2x ${ngx?.target}: ${fx(vn)}x ${verdict(vn == null ? null : vn >= 1.2)}; ` +
          `>= 1.0x ${hap?.target}: ${fx(vh)}x ${verdict(vh == null ? null : vh >= 1.0)}`,
      );
      lines.push(`${t} ${body} CPU/call <= 0.8x ${ngx?.target}: ${fx(cpu)}x ${verdict(cpu == null ? null : cpu <= 0.8)}`);
    }
    for (const t of ['tgate-auth', 'tgate-auth-tls', 'tgate-auth-bp', 'tgate-auth-tls-bp']) {
      const r = find(t, 'lat', body);
      if (!r || !r.vs_direct) continue;
      const a = r.vs_direct.added_p50_us;
      lines.push(`${t} ${body} added p50 over direct at 1x1 <= 50 us: ${fi(a)} us ${verdict(a == null ? null : a <= 50)}`);
    }
  }
  if (micro && micro.cached_describe) {
    const v = micro.cached_describe.per_s;
    lines.push(`cached-token authz/s/core >= 2M: ${fi(v)} ${verdict(v >= 2e6)}`);
  }
  if (rss && rss.mtls_kib_per_conn != null) {
    const v = rss.mtls_kib_per_conn;
    lines.push(`RSS per idle mTLS connection <= 24 KiB: ${fx(v, 1)} KiB ${verdict(v <= 24)}`);
  }
  return lines.join('\n');
}

function microText(micro, speed) {
  if (!micro) return 'micro-benchmark: not run';
  const l = ['', '== Authorization micro-benchmark (tgate code, 1 core, CPU time) =='];
  const names = {
    cached_describe: 'cached token, DescribeNamespace',
    cached_start: 'cached token, StartWorkflowExecution 1 KiB',
    fresh_rs256: 'fresh RS256 token each call',
    fresh_es256: 'fresh ES256 token each call',
  };
  for (const [k, label] of Object.entries(names)) {
    const m = micro[k];
    if (!m) continue;
    let extra = '';
    if (k === 'fresh_rs256' && speed?.rsa2048_verify_s)
      extra = `  = ${fx(m.per_s / speed.rsa2048_verify_s)}x openssl speed rsa2048 verify (${fi(speed.rsa2048_verify_s)}/s)`;
    if (k === 'fresh_es256' && speed?.ecdsap256_verify_s)
      extra = `  = ${fx(m.per_s / speed.ecdsap256_verify_s)}x openssl speed ecdsap256 verify (${fi(speed.ecdsap256_verify_s)}/s)`;
    l.push(`${padr(label, 44)} ${pad(fi(m.per_s), 10)} authz/s${extra}`);
  }
  return l.join('\n');
}

function rssText(rss) {
  if (!rss) return 'memory: not run';
  const l = ['', '== Memory: tgate VmRSS per idle connection (workers: 1) =='];
  for (const [k, label] of [
    ['mtls', 'mTLS (client cert required), h2 preface+SETTINGS done'],
    ['h2c', 'h2c, h2 preface+SETTINGS done (for comparison)'],
  ]) {
    const r = rss[k];
    if (!r) continue;
    l.push(
      `${padr(label, 56)} ${r.ready}/${r.requested} conns: ${r.rss_before_kib} -> ${r.rss_after_kib} KiB = ` +
        `${fx(r.kib_per_conn, 1)} KiB/conn${r.ok ? '' : '  FAILED: ' + r.problem}`,
    );
  }
  return l.join('\n');
}

function report(runsFile, microFile, rssFile, metaFile, outFile) {
  const runs = fs
    .readFileSync(runsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
  const meta = readJson(metaFile, {});
  const micro = readJson(microFile, null);
  const rss = readJson(rssFile, null);
  const rows = aggregate(runs);
  const text = [
    `tgate benchmark ${meta.date || ''}  commit ${meta.commit || '?'}  ${meta.cpus || '?'} CPUs  ${meta.versions || ''}`,
    meta.notes || '',
    table(rows, meta),
    microText(micro?.results, micro?.openssl_speed),
    rssText(rss),
    '',
    '== Targets ==',
    targets(rows, micro?.results, rss),
  ].join('\n');
  console.log(text);
  fs.writeFileSync(outFile, JSON.stringify({ meta, rows, micro, rss, runs }, null, 1) + '\n');
  return rows.every((r) => r.ok) ? 0 : 1;
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'pct' && args.length === 1) {
  console.log(JSON.stringify(pct(args[0])));
} else if (cmd === 'run' && args.length >= 2) {
  console.log(JSON.stringify(run(args[0], args[1], args.slice(2))));
} else if (cmd === 'report' && args.length === 5) {
  process.exitCode = report(...args);
} else {
  console.error('usage: stats.js pct LOG | run OUT LOG K=V... | report RUNS.jsonl MICRO.json RSS.json META.json OUT.json');
  process.exitCode = 2;
}
