'use strict';
// Looking at and constraining a running process (Linux /proc and prlimit(1)), and reading
// tgate's /metrics: for the fault tests (tests/integration/faults.test.js) and the soak load
// (tests/soak/).

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');

/** user + system CPU time of a process, in seconds (/proc/PID/stat utime + stime). */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after "(comm) ": state is [0], utime [11], stime [12] (clock ticks).
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

let ticks = null;
function clockTicks() {
  if (ticks === null) {
    try {
      ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** Open file descriptors of a process. */
function fdCount(pid) {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** VmRSS in bytes. */
function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+)\s+kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/** The soft and hard limit of a resource of a running process (prlimit names: nofile, fsize). */
function getLimit(pid, resource) {
  const out = execFileSync('prlimit', ['--pid', String(pid), `--${resource}`, '--raw', '--noheadings', '--output=SOFT,HARD'],
    { encoding: 'utf8' }).trim().split(/\s+/);
  return { soft: out[0], hard: out[1] };
}

/** Sets the soft limit of a resource of a running process; value: a number or 'unlimited'. */
function setSoftLimit(pid, resource, value) {
  execFileSync('prlimit', ['--pid', String(pid), `--${resource}=${value}:`], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** GET /metrics from an admin port; resolves the body. */
function scrape(adminPort, ms = 3000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: adminPort, path: '/metrics', agent: false, timeout: ms }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics: HTTP ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('/metrics timed out')));
    req.on('error', reject);
  });
}

/** The value of a sample in a /metrics body, by its exact name and labels (NaN when absent). */
function metric(body, nameAndLabels) {
  const line = body.split('\n').find((l) => l.startsWith(`${nameAndLabels} `));
  return line ? Number(line.slice(nameAndLabels.length + 1)) : NaN;
}

module.exports = { cpuSeconds, fdCount, rssBytes, getLimit, setSoftLimit, scrape, metric };
