'use strict';

// Test token issuer for tgate's JWT authentication, built on oidc-provider.
//
// Tokens are real oidc-provider client-credentials access tokens in JWT format
// (RFC 9068, header typ "at+jwt"), obtained through a real HTTP POST to the
// provider's token endpoint. Everything listens on 127.0.0.1; the provider
// never fetches anything (static clients, explicit keys, no remote JWKS).
//
// Library use:
//   const { startIssuer } = require('../issuer/issuer.js');
//   const iss = await startIssuer({ port: 0, host: '127.0.0.1',
//     algs: ['RS256', 'ES256'], audience: 'temporal', accessTokenTtl: 300 });
//   const jwt = await iss.token({ clientId: 'worker-a', permissions: ['default:write'], alg: 'ES256' });
//   await iss.rotate();                 // new kids; old public keys stay in the JWKS
//   await iss.rotate({ dropOld: true }); // new kids; old keys removed at once
//   iss.dropOld();                      // end the grace period of earlier rotate()s
//   await iss.stop(); await iss.start(); // same port, same issuer URL, same keys
//
// How a request is described: every token request carries one RFC 8707
// resource indicator, urn:tgate:temporal?alg=ES256&ttl=60&permissions=[...]...
// (JSON values, URL-encoded). oidc-provider hands it to getResourceServerInfo
// (which picks the audience, the TTL, the JWS alg and the current kid) and the
// resulting resource server to extraTokenClaims (which adds `permissions`) and
// to the JWT customizer (extraClaims / omitClaims / header overrides for
// negative tests). The indicator is stateless, so concurrent requests and
// requests from another process (curl, --print-token) work the same way.
// Without a resource parameter the client's default alg and permissions apply.
//
// CLI:
//   node tests/issuer/issuer.js --listen 127.0.0.1:7280
//   TOKEN=$(node tests/issuer/issuer.js --print-token worker-a --permissions default:write)
//   node tests/issuer/issuer.js --help

const crypto = require('node:crypto');
const http = require('node:http');

const RESOURCE_BASE = 'urn:tgate:temporal';

// One signing key per alg. Only algs whose key kind is listed here are accepted.
const KEY_KINDS = {
  RS256: { type: 'rsa', options: { modulusLength: 2048 } },
  RS384: { type: 'rsa', options: { modulusLength: 2048 } },
  RS512: { type: 'rsa', options: { modulusLength: 2048 } },
  PS256: { type: 'rsa', options: { modulusLength: 2048 } },
  PS384: { type: 'rsa', options: { modulusLength: 2048 } },
  PS512: { type: 'rsa', options: { modulusLength: 2048 } },
  ES256: { type: 'ec', options: { namedCurve: 'P-256' } },
  ES384: { type: 'ec', options: { namedCurve: 'P-384' } },
};

// Static clients. Secret: `${clientId}-secret` unless given. Any other client id
// matching CLIENT_ID_RE is accepted too (openClients), with no permissions by
// default and the same secret convention.
const DEFAULT_CLIENTS = {
  'worker-a': { permissions: ['team-a:worker', 'team-a:read'] },
  'worker-b': { permissions: ['team-b:worker'], authMethod: 'client_secret_post' },
  reader: { permissions: ['default:read'] },
  admin: { permissions: ['temporal-system:admin'] },
  noperms: { permissions: [] },
};
const CLIENT_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const AUTH_METHODS = new Set(['client_secret_basic', 'client_secret_post']);
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi'];

let oidcModule;
// oidc-provider 9 is an ES module; import() works on every Node 20. It warns
// at import time that Node 20 is not a runtime it supports (it asks for the
// 22 LTS); that one line is dropped, everything else it prints is kept.
function loadOidcProvider() {
  if (!oidcModule) {
    oidcModule = (async () => {
      const orig = console.warn;
      console.warn = (...args) => {
        if (typeof args[0] === 'string' && args[0].includes('oidc-provider WARNING: Unsupported runtime')) return;
        orig.apply(console, args);
      };
      try {
        return await import('oidc-provider');
      } finally {
        console.warn = orig;
      }
    })();
  }
  return oidcModule;
}

function b64url(buf) {
  return Buffer.from(buf).toString('base64url');
}

function decodeJwt(jwt) {
  const [h, p] = String(jwt).split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

function thumbprint(jwk) {
  // RFC 7638: required members, lexicographic order, no whitespace.
  const members = jwk.kty === 'RSA' ? { e: jwk.e, kty: jwk.kty, n: jwk.n }
    : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return b64url(crypto.createHash('sha256').update(JSON.stringify(members)).digest());
}

function publicJwkOf(privateJwk) {
  const pub = { ...privateJwk };
  for (const m of PRIVATE_MEMBERS) delete pub[m];
  return pub;
}

function generateKey(alg, generation) {
  const kind = KEY_KINDS[alg];
  if (!kind) throw new Error(`issuer: unsupported alg ${alg} (supported: ${Object.keys(KEY_KINDS).join(', ')})`);
  const { privateKey } = crypto.generateKeyPairSync(kind.type, kind.options);
  const jwk = privateKey.export({ format: 'jwk' });
  const kid = `${alg.toLowerCase()}-g${generation}-${thumbprint(jwk).slice(0, 12)}`;
  const privateJwk = { ...jwk, kid, alg, use: 'sig' };
  return { alg, kid, generation, privateJwk, publicJwk: publicJwkOf(privateJwk) };
}

function hostForUrl(host) {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

// ---------------------------------------------------------------------------
// Resource indicators: urn:tgate:temporal?alg=..&ttl=..&permissions=<json>...

function buildResource({ alg, ttl, permissions, extraClaims, omitClaims, header } = {}) {
  const q = new URLSearchParams();
  if (alg !== undefined) q.set('alg', String(alg));
  if (ttl !== undefined) q.set('ttl', String(ttl));
  if (permissions !== undefined) q.set('permissions', JSON.stringify(permissions));
  if (extraClaims !== undefined) q.set('claims', JSON.stringify(extraClaims));
  if (omitClaims !== undefined) q.set('omit', JSON.stringify(omitClaims));
  if (header !== undefined) q.set('header', JSON.stringify(header));
  const qs = q.toString();
  return qs ? `${RESOURCE_BASE}?${qs}` : RESOURCE_BASE;
}

// Returns the parsed request, or throws a message for invalid_target.
function parseResource(indicator) {
  const qi = indicator.indexOf('?');
  const base = qi === -1 ? indicator : indicator.slice(0, qi);
  if (base !== RESOURCE_BASE) throw new Error(`unknown resource ${base} (use ${RESOURCE_BASE})`);
  const q = new URLSearchParams(qi === -1 ? '' : indicator.slice(qi + 1));
  const json = (name, check, what) => {
    if (!q.has(name)) return undefined;
    let v;
    try { v = JSON.parse(q.get(name)); } catch { throw new Error(`resource parameter ${name} is not JSON`); }
    if (!check(v)) throw new Error(`resource parameter ${name} must be ${what}`);
    return v;
  };
  const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const req = {
    alg: q.has('alg') ? q.get('alg') : undefined,
    ttl: undefined,
    // Any JSON array is passed through as-is, so tests can send odd entries.
    permissions: json('permissions', Array.isArray, 'a JSON array'),
    claims: json('claims', isObject, 'a JSON object'),
    omit: json('omit', (v) => Array.isArray(v) && v.every((x) => typeof x === 'string'), 'a JSON array of strings'),
    header: json('header', isObject, 'a JSON object'),
  };
  if (q.has('ttl')) {
    const ttl = Number(q.get('ttl'));
    if (!Number.isSafeInteger(ttl)) throw new Error('resource parameter ttl must be an integer (seconds)');
    req.ttl = ttl;
  }
  return req;
}

// ---------------------------------------------------------------------------
// Small HTTP client (no keep-alive pooling, so nothing lingers after stop()).

function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers: { connection: 'close', ...headers }, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${url}: timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}

// client_credentials POST to a token endpoint; resolves { access_token, ... }.
async function requestToken(tokenEndpoint, { clientId, clientSecret, authMethod = 'client_secret_basic', resource }) {
  const form = new URLSearchParams({ grant_type: 'client_credentials' });
  if (resource) form.set('resource', resource);
  const headers = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
  if (authMethod === 'client_secret_post') {
    form.set('client_id', clientId);
    form.set('client_secret', clientSecret);
  } else {
    // RFC 6749 2.3.1: form-urlencode both parts before base64.
    const enc = (s) => encodeURIComponent(s);
    headers.authorization = `Basic ${Buffer.from(`${enc(clientId)}:${enc(clientSecret)}`).toString('base64')}`;
  }
  const body = form.toString();
  headers['content-length'] = Buffer.byteLength(body);
  const res = await httpRequest(tokenEndpoint, { method: 'POST', headers, body });
  let json;
  try { json = JSON.parse(res.body); } catch { json = undefined; }
  if (res.status !== 200 || !json || typeof json.access_token !== 'string') {
    const err = new Error(`token endpoint ${tokenEndpoint} answered ${res.status}: ${json ? `${json.error}: ${json.error_description}` : res.body.slice(0, 200)}`);
    err.status = res.status;
    err.response = json;
    throw err;
  }
  return json;
}

// ---------------------------------------------------------------------------

function normalizeClients(given, defaultAlg) {
  const out = new Map();
  for (const [id, c] of Object.entries(given)) {
    if (!CLIENT_ID_RE.test(id)) throw new Error(`issuer: bad client id ${JSON.stringify(id)}`);
    const authMethod = c.authMethod || 'client_secret_basic';
    if (!AUTH_METHODS.has(authMethod)) throw new Error(`issuer: client ${id}: authMethod must be one of ${[...AUTH_METHODS].join(', ')}`);
    out.set(id, {
      clientId: id,
      secret: c.secret || `${id}-secret`,
      authMethod,
      alg: c.alg || defaultAlg,
      permissions: [...(c.permissions || [])],
    });
  }
  return out;
}

function clientMetadata(c) {
  return {
    client_id: c.clientId,
    client_secret: c.secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: c.authMethod,
  };
}

/**
 * Starts an issuer. Options:
 *   port (0 = any free port), host ('127.0.0.1'), algs (['RS256','ES256']),
 *   audience ('temporal'), accessTokenTtl (300 s), clients (merged over the
 *   default static clients), openClients (true: any other client id works with
 *   secret `${id}-secret`), onToken({token, header, payload}) called per issued
 *   token, onError(err) for provider server errors.
 */
async function startIssuer(options = {}) {
  const {
    port = 0,
    host = '127.0.0.1',
    algs = ['RS256', 'ES256'],
    audience = 'temporal',
    accessTokenTtl = 300,
    openClients = true,
    onToken,
    onError,
  } = options;
  if (!Array.isArray(algs) || algs.length === 0) throw new Error('issuer: algs must be a non-empty array');
  for (const alg of algs) if (!KEY_KINDS[alg]) generateKey(alg, 0); // throws with the supported list
  if (!Number.isSafeInteger(accessTokenTtl) || accessTokenTtl <= 0) throw new Error('issuer: accessTokenTtl must be a positive integer');

  const { default: Provider, errors: oidcErrors } = await loadOidcProvider();

  const clients = normalizeClients({ ...DEFAULT_CLIENTS, ...(options.clients || {}) }, algs[0]);
  const permissionOverrides = new Map(); // clientId -> permissions (setPermissions)
  const adapterStore = new Map(); // `${model}:${id}` -> { payload, expiresAt }

  let generation = 0;
  let current = []; // key records signing now, one per alg
  let retired = []; // key records still published (grace period)
  const graceTimers = new Set();

  function newGeneration() {
    generation += 1;
    return algs.map((alg) => generateKey(alg, generation));
  }

  function clientInfo(clientId) {
    const c = clients.get(clientId);
    if (c) return c;
    if (openClients && CLIENT_ID_RE.test(clientId)) {
      return { clientId, secret: `${clientId}-secret`, authMethod: 'client_secret_basic', alg: algs[0], permissions: [], open: true };
    }
    return undefined;
  }

  function permissionsFor(clientId) {
    if (permissionOverrides.has(clientId)) return [...permissionOverrides.get(clientId)];
    return [...(clientInfo(clientId)?.permissions || [])];
  }

  // Minimal in-memory adapter (instead of oidc-provider's development one,
  // which warns). Shared by every provider instance of this issuer.
  class MemoryAdapter {
    constructor(model) { this.model = model; }

    key(id) { return `${this.model}:${id}`; }

    async upsert(id, payload, expiresIn) {
      adapterStore.set(this.key(id), { payload, expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : Infinity });
    }

    async find(id) {
      const e = adapterStore.get(this.key(id));
      if (e && e.expiresAt > Date.now()) return e.payload;
      if (e) adapterStore.delete(this.key(id));
      if (this.model === 'Client') {
        const c = clientInfo(id);
        if (c && c.open) return clientMetadata(c);
      }
      return undefined;
    }

    async findByUserCode() { return undefined; }

    async findByUid() { return undefined; }

    async consume(id) {
      const e = adapterStore.get(this.key(id));
      if (e) e.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id) { adapterStore.delete(this.key(id)); }

    async revokeByGrantId() {}
  }

  const state = {
    port,
    server: undefined,
    sockets: new Set(),
    issuer: undefined,
    provider: undefined,
    handler: undefined,
    lastServerError: undefined,
  };

  // A provider instance for one key snapshot. Keys are fixed at construction in
  // oidc-provider, so rotation builds a new instance and swaps the HTTP handler
  // (same server, same port, same issuer URL).
  function buildProvider() {
    const signing = new Map(current.map((k) => [k.alg, k.kid]));
    const jwks = { keys: [...current, ...retired].map((k) => ({ ...k.privateJwk })) };

    const invalidTarget = (msg) => new oidcErrors.InvalidTarget(msg);

    const provider = new Provider(state.issuer, {
      adapter: MemoryAdapter,
      clients: [...clients.values()].map(clientMetadata),
      jwks,
      enabledJWA: {
        idTokenSigningAlgValues: [...new Set(['RS256', 'PS256', 'ES256', ...algs])],
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          // No resource parameter: the client's default alg and permissions.
          defaultResource: async () => RESOURCE_BASE,
          useGrantedResource: async () => false,
          getResourceServerInfo: async (ctx, indicator, client) => {
            let req;
            try { req = parseResource(indicator); } catch (e) { throw invalidTarget(e.message); }
            const alg = req.alg || clientInfo(client.clientId)?.alg || algs[0];
            const kid = signing.get(alg);
            if (!kid) throw invalidTarget(`alg ${alg} is not enabled on this issuer (enabled: ${algs.join(', ')})`);
            return {
              scope: '',
              audience,
              accessTokenFormat: 'jwt',
              accessTokenTTL: req.ttl !== undefined && req.ttl > 0 ? req.ttl : accessTokenTtl,
              jwt: { sign: { alg, kid } },
            };
          },
        },
      },
      extraTokenClaims: async (ctx, token) => {
        const req = token.resourceServer ? parseResource(token.resourceServer.identifier()) : {};
        return { permissions: req.permissions !== undefined ? req.permissions : permissionsFor(token.clientId) };
      },
      formats: {
        customizers: {
          // Runs after the standard claims are set: overrides for negative tests.
          jwt: async (ctx, token, jwt) => {
            if (!token.resourceServer) return;
            const req = parseResource(token.resourceServer.identifier());
            if (req.ttl !== undefined && req.ttl <= 0) jwt.payload.exp = jwt.payload.iat + req.ttl;
            if (req.claims) Object.assign(jwt.payload, req.claims);
            for (const name of req.omit || []) delete jwt.payload[name];
            if (req.header) jwt.header = { ...(jwt.header || {}), ...req.header };
          },
        },
      },
      ttl: {
        ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL || accessTokenTtl,
      },
      clientDefaults: {
        grant_types: ['client_credentials'],
        response_types: [],
        token_endpoint_auth_method: 'client_secret_basic',
        // Must be an alg the keystore has (the default RS256 may not be there).
        id_token_signed_response_alg: algs[0],
      },
      responseTypes: ['none'],
      scopes: [],
      claims: {},
      cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
      renderError: async (ctx, out) => {
        ctx.type = 'json';
        ctx.body = out;
      },
    });

    provider.on('server_error', (ctx, err) => {
      state.lastServerError = err;
      if (onError) onError(err);
    });

    if (onToken) {
      provider.use(async (ctx, next) => {
        await next();
        if (ctx.method === 'POST' && ctx.oidc?.route === 'token' && ctx.status === 200 && ctx.body?.access_token) {
          try {
            const { header, payload } = decodeJwt(ctx.body.access_token);
            onToken({ token: ctx.body.access_token, header, payload });
          } catch { /* not a JWT: ignore */ }
        }
      });
    }

    state.provider = provider;
    state.handler = provider.callback();
  }

  async function listen() {
    const server = http.createServer((req, res) => state.handler(req, res));
    server.keepAliveTimeout = 1000;
    server.on('connection', (s) => {
      state.sockets.add(s);
      s.on('close', () => state.sockets.delete(s));
    });
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(state.port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    state.server = server;
    state.port = server.address().port;
  }

  async function start() {
    if (state.server) return;
    await listen();
    if (!state.issuer) {
      state.issuer = `http://${hostForUrl(host)}:${state.port}`;
      buildProvider();
    }
  }

  async function stop() {
    const { server } = state;
    if (!server) return;
    state.server = undefined;
    const closed = new Promise((resolve) => server.close(() => resolve()));
    for (const s of state.sockets) s.destroy();
    state.sockets.clear();
    if (typeof server.closeAllConnections === 'function') server.closeAllConnections();
    // Bounded: a connection the server never reported must not keep a caller waiting.
    let timer;
    await Promise.race([closed, new Promise((resolve) => { timer = setTimeout(resolve, 3000); })]);
    clearTimeout(timer);
  }

  function dropOld() {
    retired = [];
    for (const t of graceTimers) clearTimeout(t);
    graceTimers.clear();
    if (state.issuer) buildProvider();
  }

  // New keys (new kids) for every alg. The previous keys stay published in the
  // JWKS (not used for signing) until dropOld(), or graceMs later, or at once
  // with { dropOld: true }.
  async function rotate({ dropOld: drop = false, graceMs } = {}) {
    const previous = current;
    current = newGeneration();
    if (drop) {
      retired = [];
      for (const t of graceTimers) clearTimeout(t);
      graceTimers.clear();
    } else {
      retired = [...previous, ...retired];
      if (graceMs !== undefined) {
        const kids = new Set(previous.map((k) => k.kid));
        const t = setTimeout(() => {
          graceTimers.delete(t);
          retired = retired.filter((k) => !kids.has(k.kid));
          buildProvider();
        }, graceMs);
        t.unref();
        graceTimers.add(t);
      }
    }
    buildProvider();
  }

  async function token({
    clientId = 'worker-a', clientSecret, authMethod, permissions, alg, ttl, extraClaims, omitClaims, header,
  } = {}) {
    if (!state.server) throw new Error('issuer: token() while stopped');
    const c = clientInfo(clientId);
    if (!c && clientSecret === undefined) throw new Error(`issuer: unknown client ${clientId}`);
    if (permissions !== undefined && !Array.isArray(permissions)) throw new Error('issuer: permissions must be an array');
    const resource = buildResource({ alg, ttl, permissions, extraClaims, omitClaims, header });
    state.lastServerError = undefined;
    try {
      const res = await requestToken(`${state.issuer}/token`, {
        clientId,
        clientSecret: clientSecret !== undefined ? clientSecret : c.secret,
        authMethod: authMethod || c?.authMethod,
        resource,
      });
      return res.access_token;
    } catch (e) {
      if (state.lastServerError) e.message += ` (server error: ${state.lastServerError.message})`;
      throw e;
    }
  }

  function keyView(k) {
    return { alg: k.alg, kid: k.kid, generation: k.generation, publicJwk: { ...k.publicJwk }, privateJwk: { ...k.privateJwk } };
  }

  function keys() {
    const all = [...current, ...retired];
    return {
      current: Object.fromEntries(current.map((k) => [k.alg, keyView(k)])),
      retired: retired.map(keyView),
      kids: all.map((k) => k.kid),
      jwks: { keys: all.map((k) => ({ ...k.publicJwk })) },
    };
  }

  current = newGeneration();
  await start();

  return {
    get issuer() { return state.issuer; },
    get jwksUri() { return `${state.issuer}/jwks`; },
    get tokenEndpoint() { return `${state.issuer}/token`; },
    get discoveryUri() { return `${state.issuer}/.well-known/openid-configuration`; },
    get port() { return state.port; },
    get running() { return !!state.server; },
    audience,
    algs: [...algs],
    clients: Object.fromEntries([...clients.values()].map((c) => [c.clientId, { ...c, permissions: [...c.permissions] }])),
    token,
    rotate,
    dropOld,
    stop,
    start,
    keys,
    // Default permissions of a client for requests that name none (e.g. curl).
    setPermissions(clientId, perms) {
      if (perms === undefined || perms === null) permissionOverrides.delete(clientId);
      else permissionOverrides.set(clientId, [...perms]);
    },
  };
}

// ---------------------------------------------------------------------------
// CLI

const USAGE = `usage:
  node tests/issuer/issuer.js [--listen HOST:PORT] [options]
      run an issuer (default 127.0.0.1:7280); prints its issuer URL, JWKS URL
      and one line per issued token. SIGHUP rotates keys (old ones stay
      published), SIGUSR2 drops the old keys, SIGINT/SIGTERM stop.
  node tests/issuer/issuer.js --print-token CLIENT [--permissions P,P] [--alg ALG] [--ttl S]
      print one access token and exit. Asks the issuer at --issuer URL
      (default http://127.0.0.1:7280); if none was given and nothing answers
      there, a throwaway issuer is started (its keys die with it).
options:
  --algs RS256,ES256       signing algs (one key each)
  --audience temporal      aud of every token
  --access-token-ttl 300   default token lifetime, seconds
  --permissions a:b,c:d    permissions claim (repeatable; "" for an empty list)
  --alg ES256              alg of the printed token (default: client's)
  --ttl SECONDS            lifetime of the printed token (<= 0: already expired)
  --claims JSON            extra/overriding claims of the printed token
  --secret SECRET          client secret (default CLIENT-secret)
  --issuer URL             issuer to ask for --print-token
`;

function parseArgs(argv) {
  const out = { permissions: undefined };
  const need = (i) => {
    if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
    return argv[i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '-h': case '--help': out.help = true; break;
      case '--listen': out.listen = need(i); i++; break;
      case '--algs': out.algs = need(i).split(',').map((s) => s.trim()).filter(Boolean); i++; break;
      case '--audience': out.audience = need(i); i++; break;
      case '--access-token-ttl': out.accessTokenTtl = Number(need(i)); i++; break;
      case '--print-token': out.printToken = need(i); i++; break;
      case '--permissions':
        out.permissions = [...(out.permissions || []), ...need(i).split(',').map((s) => s.trim()).filter(Boolean)];
        i++;
        break;
      case '--alg': out.alg = need(i); i++; break;
      case '--ttl': out.ttl = Number(need(i)); i++; break;
      case '--claims': out.claims = JSON.parse(need(i)); i++; break;
      case '--secret': out.secret = need(i); i++; break;
      case '--issuer': out.issuer = need(i).replace(/\/+$/, ''); i++; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return out;
}

function splitHostPort(s) {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(s);
  if (!m) throw new Error(`--listen wants HOST:PORT, got ${s}`);
  return { host: m[1] || m[2], port: Number(m[3]) };
}

async function printToken(args) {
  const clientId = args.printToken;
  const tokenReq = {
    clientId,
    permissions: args.permissions,
    alg: args.alg,
    ttl: args.ttl,
    extraClaims: args.claims,
  };
  const issuerUrl = args.issuer || 'http://127.0.0.1:7280';
  let remoteErr;
  try {
    const disc = await httpRequest(`${issuerUrl}/.well-known/openid-configuration`, { timeoutMs: 3000 });
    if (disc.status !== 200) throw new Error(`${issuerUrl}: discovery answered ${disc.status}`);
    const { token_endpoint: tokenEndpoint } = JSON.parse(disc.body);
    const known = DEFAULT_CLIENTS[clientId];
    const res = await requestToken(tokenEndpoint, {
      clientId,
      clientSecret: args.secret || `${clientId}-secret`,
      authMethod: known?.authMethod || 'client_secret_basic',
      resource: buildResource(tokenReq),
    });
    process.stdout.write(`${res.access_token}\n`);
    return;
  } catch (e) {
    if (args.issuer || e.status) throw e; // explicit issuer, or it answered with an error
    remoteErr = e;
  }
  process.stderr.write(`issuer: no issuer at ${issuerUrl} (${remoteErr.code || remoteErr.message}); `
    + 'using a throwaway one: its keys are gone once this exits\n');
  const iss = await startIssuer({
    algs: args.algs, audience: args.audience, accessTokenTtl: args.accessTokenTtl,
  });
  try {
    process.stdout.write(`${await iss.token({ ...tokenReq, clientSecret: args.secret })}\n`);
  } finally {
    await iss.stop();
  }
}

async function serve(args) {
  const { host, port } = splitHostPort(args.listen || '127.0.0.1:7280');
  const iss = await startIssuer({
    host,
    port,
    algs: args.algs,
    audience: args.audience,
    accessTokenTtl: args.accessTokenTtl,
    onToken: ({ token, header, payload }) => {
      process.stdout.write(`token sub=${payload.sub} alg=${header.alg} kid=${header.kid} `
        + `exp=${payload.exp} permissions=${JSON.stringify(payload.permissions)} ${token}\n`);
    },
    onError: (err) => process.stderr.write(`issuer: server error: ${err.stack || err}\n`),
  });
  const out = (s) => process.stdout.write(`${s}\n`);
  out(`issuer ${iss.issuer}`);
  out(`jwks ${iss.jwksUri}`);
  out(`token_endpoint ${iss.tokenEndpoint}`);
  out(`audience ${iss.audience}`);
  out(`kids ${iss.keys().kids.join(' ')}`);
  for (const c of Object.values(iss.clients)) {
    out(`client ${c.clientId} secret=${c.secret} auth=${c.authMethod} alg=${c.alg} permissions=${JSON.stringify(c.permissions)}`);
  }
  process.on('SIGHUP', () => {
    iss.rotate().then(() => out(`rotated: kids ${iss.keys().kids.join(' ')}`));
  });
  process.on('SIGUSR2', () => {
    iss.dropOld();
    out(`dropped old keys: kids ${iss.keys().kids.join(' ')}`);
  });
  const shutdown = () => { iss.stop().then(() => process.exit(0)); };
  process.on('SIGINT', shutdown);
  process.on('SIGTERM', shutdown);
}

async function main(argv) {
  const args = parseArgs(argv);
  if (args.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (args.algs === undefined) delete args.algs;
  if (args.audience === undefined) delete args.audience;
  if (args.accessTokenTtl === undefined) delete args.accessTokenTtl;
  if (args.printToken) await printToken(args);
  else await serve(args);
}

module.exports = {
  startIssuer, buildResource, parseResource, decodeJwt, requestToken, RESOURCE_BASE, DEFAULT_CLIENTS,
};

if (require.main === module) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`issuer: ${e.message}\n${USAGE}`);
    process.exit(1);
  });
}
