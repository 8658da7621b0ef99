'use strict';
// Keeps README.md's "Configuration reference" honest: its complete example (the ```yaml block
// that starts with "# tgate configuration reference example") must pass `tgate --check-config`
// once its illustrative paths point at real files, and every key it uses must have a row in
// the reference tables (and every row a place in the example). The API keys file example is
// the file the configuration example names, so it is checked along with it.

const { test } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const h = require('./lib/harness.js');

const T = 30_000 * h.SLOW;
const CONFIG_MARKER = '# tgate configuration reference example';
const APIKEYS_MARKER = '# tgate API keys file example';

/** The text of README.md's "## Configuration reference" section. */
function referenceSection() {
  const readme = fs.readFileSync(path.join(h.ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Configuration reference\n');
  assert.ok(start >= 0, 'README.md has no "## Configuration reference" section');
  const end = readme.indexOf('\n## ', start + 1);
  return end < 0 ? readme.slice(start) : readme.slice(start, end);
}

/** The ```yaml block of text whose first line is marker. */
function yamlBlock(text, marker) {
  const re = /^```yaml\n([\s\S]*?)^```$/gm;
  const found = [];
  for (let m; (m = re.exec(text));) if (m[1].startsWith(`${marker}\n`)) found.push(m[1]);
  assert.equal(found.length, 1, `expected one \`\`\`yaml block starting with "${marker}"`);
  return found[0];
}

/** A line without its comment (a '#' after whitespace, outside quotes). */
function stripComment(line) {
  let q = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) {
      if (c === q) q = null;
    } else if (c === '"' || c === "'") {
      q = c;
    } else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]))) {
      return line.slice(0, i).trimEnd();
    }
  }
  return line.trimEnd();
}

/**
 * The dotted key paths a block-style YAML document uses, "[]" standing for a sequence item:
 * "listen.tls.cert_file", "authorization.rules[].effect". Flow mappings are refused so that
 * no key can hide from this reader.
 */
function keyPaths(yaml) {
  const paths = new Set();
  const stack = []; // {indent, path}: keys (and sequence items) that may own deeper lines
  for (const raw of yaml.split('\n')) {
    const line = stripComment(raw);
    if (!line.trim()) continue;
    assert.ok(!/\{/.test(line.replace(/"[^"]*"|'[^']*'/g, '')),
      `use block mappings in the README example (this reader cannot see keys in flow mappings): ${raw}`);
    let col = line.length - line.trimStart().length;
    let text = line.trimStart();
    let itemPath = null;
    if (text.startsWith('- ') || text === '-') {
      while (stack.length && stack[stack.length - 1].indent >= col) stack.pop();
      itemPath = `${stack.length ? stack[stack.length - 1].path : ''}[]`;
      text = text.slice(2);
      const rest = text.trimStart();
      col += 2 + (text.length - rest.length);
      text = rest;
      stack.push({ indent: col - 1, path: itemPath });
    }
    const m = /^([A-Za-z_][A-Za-z0-9_]*):(\s|$)/.exec(text);
    if (!m) continue; // a scalar sequence item
    while (stack.length && stack[stack.length - 1].indent >= col) stack.pop();
    const parent = stack.length ? stack[stack.length - 1].path : '';
    const p = parent ? `${parent}.${m[1]}` : m[1];
    paths.add(p);
    stack.push({ indent: col, path: p });
  }
  return paths;
}

/**
 * The keys in the first column of the "| key | ..." tables of the reference section:
 * {config, apiKeys}, the latter from the "### API keys file" subsection.
 */
function tableKeys(section) {
  const config = new Set();
  const apiKeys = new Set();
  let sub = '';
  let inKeyTable = false;
  for (const line of section.split('\n')) {
    if (line.startsWith('### ')) sub = line.slice(4).trim();
    if (!line.startsWith('|')) {
      inKeyTable = false;
      continue;
    }
    if (/^\|\s*key\s*\|/.test(line)) {
      inKeyTable = true;
      continue;
    }
    const m = /^\|\s*`([^`]+)`\s*\|/.exec(line);
    if (inKeyTable && m) (sub === 'API keys file' ? apiKeys : config).add(m[1]);
  }
  return { config, apiKeys };
}

/** README path -> a real file, for the illustrative paths the example uses. */
function realFiles(dir) {
  const c = h.certs();
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  fs.writeFileSync(path.join(dir, 'jwt-issuer.pem'), ec.publicKey.export({ type: 'spki', format: 'pem' }));
  const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
  fs.writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify({ keys: [jwk] }));
  fs.writeFileSync(path.join(dir, 'api-keys.yaml'), yamlBlock(referenceSection(), APIKEYS_MARKER));
  fs.writeFileSync(path.join(dir, 'cloud-api-key'), 'example-token\n');
  const nextToBinary = path.join(path.dirname(h.TGATE_BIN), 'plugins');
  const plugins = fs.existsSync(nextToBinary) ? nextToBinary : path.join(h.ROOT, 'build', 'plugins');
  return {
    etc: {
      'server.pem': c.file('server.pem'),
      'server.key': c.file('server.key'),
      'client-ca.pem': c.file('ca.pem'),
      'frontend-ca.pem': c.file('ca.pem'),
      'gateway-client.pem': c.file('gateway-client.pem'),
      'gateway-client.key': c.file('gateway-client.key'),
      'jwks.json': path.join(dir, 'jwks.json'),
      'jwt-issuer.pem': path.join(dir, 'jwt-issuer.pem'),
      'api-keys.yaml': path.join(dir, 'api-keys.yaml'),
      'cloud-api-key': path.join(dir, 'cloud-api-key'),
    },
    plugins,
    varLib: dir,
  };
}

/** The example with its /etc/tgate, /usr/local/lib/tgate/plugins and /var/lib/tgate paths real. */
function substitute(yaml, files) {
  const out = yaml
    .replace(/\/etc\/tgate\/([A-Za-z0-9._-]+)/g, (all, name) => {
      assert.ok(files.etc[name], `README example names ${all}: add a file for it to realFiles() in ${__filename}`);
      return files.etc[name];
    })
    .replace(/\/usr\/local\/lib\/tgate\/plugins\/([A-Za-z0-9._-]+)/g, (all, name) => {
      const f = path.join(files.plugins, name);
      assert.ok(fs.existsSync(f), `README example names ${all}, but ${f} does not exist (run make)`);
      return f;
    })
    .replace(/\/var\/lib\/tgate\//g, `${files.varLib}/`);
  assert.ok(!/\/etc\/tgate|\/usr\/local\/lib\/tgate|\/var\/lib\/tgate/.test(stripAllComments(out)),
    'an illustrative path was left in the example');
  return out;
}

function stripAllComments(yaml) {
  return yaml.split('\n').map(stripComment).join('\n');
}

/** The environment without the variables that override the configuration. */
function cleanEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(TGATE_|TEMPORAL_JWT_)/.test(k)) delete env[k];
  return env;
}

test('the README configuration example passes tgate --check-config', { timeout: T }, () => {
  const dir = h.tempDir('tgate-readme-');
  const yaml = substitute(yamlBlock(referenceSection(), CONFIG_MARKER), realFiles(dir));
  const file = path.join(dir, 'tgate.yaml');
  fs.writeFileSync(file, yaml);
  const r = spawnSync(h.TGATE_BIN, ['--check-config', '-c', file],
    { cwd: dir, env: cleanEnv(), encoding: 'utf8', timeout: 20_000 * h.SLOW });
  assert.ifError(r.error);
  assert.equal(r.status, 0, `tgate --check-config failed on the README example:\n${r.stderr}\n--- ${file}:\n${yaml}`);
  assert.match(r.stdout, /is valid/);
});

test('every key of the README examples has a row in the reference tables, and every row a key in the example', () => {
  const section = referenceSection();
  const tables = tableKeys(section);
  const used = keyPaths(yamlBlock(section, CONFIG_MARKER));
  assert.ok(used.size > 50, `the example reader found only ${used.size} keys`);
  const undocumented = [...used].filter((k) => !tables.config.has(k));
  assert.deepEqual(undocumented, [], 'keys used in the example but missing from the reference tables');
  const unshown = [...tables.config].filter((k) => !used.has(k));
  assert.deepEqual(unshown, [], 'keys in the reference tables but missing from the complete example');

  const apiUsed = keyPaths(yamlBlock(section, APIKEYS_MARKER));
  const apiUndocumented = [...apiUsed].filter((k) => !tables.apiKeys.has(k));
  assert.deepEqual(apiUndocumented, [], 'API keys file example keys missing from its table');
});
