// Security through the real binary: JWT on the upgrade (HS256, RS256, ES256 from a JWKS file),
// every way a token can be wrong, channel permissions from claims, expiry on open connections,
// a REQUEST authorizer over HTTP, Origin allowlist, per-address limits, TLS certificate reload
// on SIGHUP, and the admin API's SigV4 against stale, replayed and incomplete signatures.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import tls from 'node:tls';
import net from 'node:net';
import { writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignatureV4 } from '@smithy/signature-v4';
import { startHerald, tempDir, makeCertificate } from './lib/herald.mjs';
import { connect, handshakeStatus, rawHttp } from './lib/clients.mjs';
import { startBackend, eventually } from './lib/backend.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const b64url = (data) => Buffer.from(data).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

const HS_SECRET = 'integration-secret-0123456789abcdef';  // >= 32 bytes, as HS256 requires
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ISSUER = 'https://issuer.test';
const AUDIENCE = 'herald-tests';

// Signs a JWT: alg HS256/HS512 with `secret`, RS256 with the RSA key, ES256 with the EC key.
function sign(header, claims, { secret = HS_SECRET } = {}) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  let sig;
  switch (header.alg) {
    case 'HS256':
      sig = crypto.createHmac('sha256', secret).update(input).digest();
      break;
    case 'RS256':
      sig = crypto.sign('sha256', Buffer.from(input), rsa.privateKey);
      break;
    case 'ES256':
      sig = crypto.sign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
      break;
    default:
      sig = Buffer.alloc(0);
  }
  return `${input}.${b64url(sig)}`;
}

const claims = (extra = {}) => ({ sub: 'alice', iss: ISSUER, aud: AUDIENCE, iat: now(), exp: now() + 300, ...extra });
const bearer = (token) => ({ headers: { Authorization: `Bearer ${token}` } });

describe('JWT authentication on connect', () => {
  let h;
  let dir;
  let jwks;
  before(async () => {
    dir = tempDir();
    const rsaPem = join(dir, 'rsa.pem');
    writeFileSync(rsaPem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
    jwks = join(dir, 'jwks.json');
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec-1', use: 'sig' }] }));
    h = await startHerald({
      websocket: { subprotocols: ['chat.v1'] },
      auth: {
        jwt: {
          keys: [
            { kid: 'hs-1', alg: 'HS256', secret_env: 'TEST_JWT_SECRET' },
            { kid: 'rs-1', alg: 'RS256', public_key_file: rsaPem },
          ],
          jwks_file: jwks,
          issuer: ISSUER,
          audience: [AUDIENCE],
          leeway: '2s',
          close_on_expiry: true,
        },
      },
      channels: { default_access: 'deny', rules: [{ pattern: 'orders.*', access: 'claim' }, { pattern: 'news.*', access: 'claim' }] },
      routes: { $default: { integration: 'echo', response: true } },
    }, { env: { TEST_JWT_SECRET: HS_SECRET } });
  });
  after(async () => {
    await h.stop();
  });

  async function userOf(open) {
    const [client] = await h.withConnectionId(open);
    const opened = h.events('connection.open').at(-1);
    return { client, userId: opened.userId };
  }

  test('a valid token connects from the header, the query or a subprotocol and names the user', async () => {
    const a = await userOf(() => connect(h.url, bearer(sign({ alg: 'HS256', kid: 'hs-1' }, claims()))));
    assert.equal(a.userId, 'alice');
    const b = await userOf(() => connect(`${h.url}/?access_token=${sign({ alg: 'RS256', kid: 'rs-1' }, claims({ sub: 'bob' }))}`));
    assert.equal(b.userId, 'bob');
    // ES256 from the JWKS file, in a subprotocol: the token is never echoed, chat.v1 is chosen.
    const token = sign({ alg: 'ES256', kid: 'ec-1' }, claims({ sub: 'carol' }));
    const c = await userOf(() => connect(h.url, { protocols: ['chat.v1', `bearer.${token}`] }));
    assert.equal(c.userId, 'carol');
    assert.equal(c.client.ws.protocol, 'chat.v1');
    for (const x of [a, b, c]) x.client.ws.close();
  });

  test('expired, not yet valid, wrong issuer or audience, bad signature, alg none and HS/RS confusion get 401', async () => {
    const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
    const cases = {
      expired: sign({ alg: 'HS256' }, claims({ exp: now() - 60 })),
      'not yet valid': sign({ alg: 'HS256' }, claims({ nbf: now() + 60 })),
      'wrong issuer': sign({ alg: 'HS256' }, claims({ iss: 'https://evil.test' })),
      'wrong audience': sign({ alg: 'HS256' }, claims({ aud: 'someone-else' })),
      'bad signature': sign({ alg: 'HS256' }, claims(), { secret: 'another-secret-0123456789abcdefgh' }),
      'alg none': `${b64url('{"alg":"none","typ":"JWT"}')}.${b64url(JSON.stringify(claims()))}.`,
      'HS256 signed with the RSA public key': sign({ alg: 'HS256', kid: 'rs-1' }, claims(), { secret: rsaPem }),
      'HS256 with the RSA key, no kid': sign({ alg: 'HS256' }, claims(), { secret: rsaPem }),
      garbage: 'not.a.jwt',
    };
    for (const [name, token] of Object.entries(cases)) {
      const r = await handshakeStatus(h.url, bearer(token));
      assert.equal(r.status, 401, name);
      assert.equal(JSON.parse(r.body).error, 'unauthorized', name);
      assert.match(r.headers['www-authenticate'], /^Bearer/, name);
    }
    // No token at all (auth.jwt.required defaults to true).
    assert.equal((await handshakeStatus(h.url)).status, 401);
    // Tokens never reach the log.
    const logText = JSON.stringify(h.logs);
    for (const token of Object.values(cases)) assert.ok(!logText.includes(token), 'a token was logged');
    const m = parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());
    assert.ok(m.value('herald_handshakes_rejected_total', { reason: 'unauthorized' }) >= 10);
  });

  test('channels outside the token\'s channels claim are Forbidden', async () => {
    const token = sign({ alg: 'HS256' }, claims({ channels: ['orders.42', 'news.*'] }));
    const c = await connect(h.url, bearer(token));
    const sub = async (channel) => {
      c.send({ action: 'subscribe', channel });
      return c.nextJson();
    };
    assert.equal((await sub('orders.42')).type, 'subscribed');
    assert.equal((await sub('news.sports')).type, 'subscribed');
    const denied = await sub('orders.43');
    assert.equal(denied.type, 'error');
    assert.equal(denied.code, 'forbidden');
    const noClaim = await connect(h.url, bearer(sign({ alg: 'HS256' }, claims())));
    noClaim.send({ action: 'subscribe', channel: 'orders.42' });
    assert.equal((await noClaim.nextJson()).code, 'forbidden');
    c.ws.close();
    noClaim.ws.close();
  });

  test('SIGHUP re-reads the JWKS file: a new kid works, a removed one stops working', async () => {
    const next = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(jwks, JSON.stringify({ keys: [{ ...next.publicKey.export({ format: 'jwk' }), kid: 'ec-2' }] }));
    const reloads = h.events('auth.keys_reloaded').length;
    h.proc.kill('SIGHUP');
    await h.waitForLog(() => h.events('auth.keys_reloaded').length > reloads);
    const input = `${b64url(JSON.stringify({ alg: 'ES256', kid: 'ec-2' }))}.${b64url(JSON.stringify(claims({ sub: 'dave' })))}`;
    const sig = crypto.sign('sha256', Buffer.from(input), { key: next.privateKey, dsaEncoding: 'ieee-p1363' });
    const c = await connect(h.url, bearer(`${input}.${b64url(sig)}`));
    c.ws.close();
    assert.equal((await handshakeStatus(h.url, bearer(sign({ alg: 'ES256', kid: 'ec-1' }, claims())))).status, 401);
    // The configured keys are still there.
    const d = await connect(h.url, bearer(sign({ alg: 'HS256', kid: 'hs-1' }, claims())));
    d.ws.close();
  });

  test('an open connection is closed with 4001 when its token expires', async () => {
    const c = await connect(h.url, bearer(sign({ alg: 'HS256' }, claims({ exp: now() + 2 }))));
    const t0 = Date.now();
    const { code, reason } = await c.closed;
    assert.equal(code, 4001);
    assert.equal(reason, 'token expired');
    assert.ok(Date.now() - t0 < 6000);
  });
});

describe('REQUEST authorizer over HTTP', () => {
  let authz;
  let events;
  let h;
  before(async () => {
    authz = await startBackend((r) => {
      const token = r.event?.headers?.Authorization ?? r.event?.headers?.authorization;
      if (token === 'allow-token' || token === 'allow-other') {
        return {
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            principalId: token === 'allow-token' ? 'user-1' : 'user-2',
            policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: r.event.methodArn }] },
            context: { tier: 'gold', level: 3, beta: true },
          }),
        };
      }
      if (token === 'deny-token') {
        return {
          status: 200,
          body: JSON.stringify({ principalId: 'x', policyDocument: { Statement: [{ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: '*' }] } }),
        };
      }
      if (token === 'broken') return { status: 200, body: 'not json' };
      return { status: 401 };
    });
    events = await startBackend();
    h = await startHerald({
      integrations: {
        authz: { type: 'http', url: `${authz.url}/authorize`, mode: 'http', timeout: '2s' },
        backend: { type: 'http', url: `${events.url}/events`, mode: 'lambda-proxy', timeout: '2s' },
      },
      routes: { $connect: { integration: 'backend' }, $default: { integration: 'backend' } },
      auth: { authorizer: { integration: 'authz', identity_sources: ['route.request.header.Authorization'], cache_ttl: '60s' } },
    });
  });
  after(async () => {
    await h.stop();
    await authz.close();
    await events.close();
  });

  test('a missing identity source is 401 without calling the authorizer', async () => {
    const before = authz.requests.length;
    assert.equal((await handshakeStatus(h.url)).status, 401);
    assert.equal(authz.requests.length, before);
  });

  test('Deny is 403, Unauthorized 401, a broken answer 500; nothing reaches $connect', async () => {
    assert.equal((await handshakeStatus(h.url, { headers: { Authorization: 'deny-token' } })).status, 403);
    assert.equal((await handshakeStatus(h.url, { headers: { Authorization: 'who-knows' } })).status, 401);
    assert.equal((await handshakeStatus(h.url, { headers: { Authorization: 'broken' } })).status, 500);
    assert.equal(events.events('CONNECT').length, 0);
  });

  test('Allow: the REQUEST event is API Gateway\'s, and the context reaches every later event as strings', async () => {
    const [c, id] = await h.withConnectionId(() => connect(h.url, { headers: { Authorization: 'allow-token' } }));
    const request = authz.requests.find((r) => r.event?.headers?.Authorization === 'allow-token').event;
    assert.equal(request.type, 'REQUEST');
    assert.match(request.methodArn, /^arn:aws:execute-api:[^:]+:\d{12}:herald\/default\/\$connect$/);
    assert.equal(request.requestContext.eventType, 'CONNECT');
    assert.equal(request.requestContext.routeKey, '$connect');
    const expected = { principalId: 'user-1', tier: 'gold', level: '3', beta: 'true' };
    assert.deepEqual((await events.waitForEvent('CONNECT', id)).requestContext.authorizer, expected);
    c.send('hello');
    assert.deepEqual((await events.waitForEvent('MESSAGE', id)).requestContext.authorizer, expected);
    assert.equal(h.events('connection.open').find((l) => l.connectionId === id).userId, 'user-1');
    c.ws.close();
  });

  test('answers are cached per identity for cache_ttl', async () => {
    const calls = () => authz.requests.filter((r) => r.event?.headers?.Authorization === 'allow-other').length;
    for (let i = 0; i < 3; i++) {
      const c = await connect(h.url, { headers: { Authorization: 'allow-other' } });
      c.ws.close();
    }
    assert.equal(calls(), 1);
  });
});

describe('upgrade hygiene: origins, per-address limits, header and URL sizes', () => {
  test('a foreign Origin gets 403; listed and absent origins connect', async () => {
    const h = await startHerald({ websocket: { allowed_origins: ['https://app.example.com', 'https://*.example.org'] } });
    try {
      const r = await handshakeStatus(h.url, { origin: 'https://evil.example.net' });
      assert.equal(r.status, 403);
      assert.equal(JSON.parse(r.body).error, 'forbidden_origin');
      for (const origin of ['https://app.example.com', 'https://eu.example.org', undefined]) {
        const c = await connect(h.url, origin ? { origin } : {});
        c.ws.close();
      }
    } finally {
      await h.stop();
    }
  });

  test('too many new connections from one address get 429 with Retry-After', async () => {
    const h = await startHerald({ websocket: { per_ip: { connect_rate: 0.5, connect_burst: 3 } } });
    try {
      const open = [];
      for (let i = 0; i < 3; i++) open.push(await connect(h.url));
      const r = await handshakeStatus(h.url);
      assert.equal(r.status, 429);
      assert.equal(r.headers['retry-after'], '1');
      const m = parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());
      assert.equal(m.value('herald_handshakes_rejected_total', { reason: 'ip_rate' }), 1);
      for (const c of open) c.ws.close();
    } finally {
      await h.stop();
    }
  });

  test('more open connections than allowed from one address get 429 until one closes', async () => {
    const h = await startHerald({ websocket: { per_ip: { max_connections: 2 } } });
    try {
      const a = await connect(h.url);
      const b = await connect(h.url);
      assert.equal((await handshakeStatus(h.url)).status, 429);
      await a.close();
      const c = await eventually(async () => {
        try {
          return await connect(h.url);
        } catch {
          return null;
        }
      });
      b.ws.close();
      c.ws.close();
    } finally {
      await h.stop();
    }
  });

  test('a client that never finishes its upgrade is cut off at websocket.handshake_timeout', async () => {
    const h = await startHerald({ websocket: { handshake_timeout: '400ms' } });
    try {
      const t0 = Date.now();
      const closedAfter = await new Promise((resolve, reject) => {
        const s = net.connect(h.clientPort, '127.0.0.1', () => s.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n'));
        s.on('error', reject);
        s.on('close', () => resolve(Date.now() - t0));
        s.resume();
        setTimeout(() => reject(new Error('still open after 5 s')), 5000).unref();
      });
      assert.ok(closedAfter >= 300 && closedAfter < 3000, `closed after ${closedAfter} ms`);
    } finally {
      await h.stop();
    }
  });

  test('oversized upgrade headers get 431 and an overlong URL 414 (4096, as API Gateway)', async () => {
    const h = await startHerald();
    try {
      const big = await handshakeStatus(h.url, { headers: { 'X-Padding': 'x'.repeat(16 * 1024) } });
      assert.equal(big.status, 431);
      const long = await rawHttp(h.clientPort, `GET /?q=${'a'.repeat(4100)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n`);
      assert.equal(long.status, 414);
    } finally {
      await h.stop();
    }
  });
});

describe('TLS certificate reload', () => {
  test('SIGHUP swaps the certificate for new connections without dropping open ones', async () => {
    const dir = tempDir();
    const first = makeCertificate(tempDir());
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(first.cert, cert);
    copyFileSync(first.key, key);
    const h = await startHerald({ tls: { mode: 'required', cert_file: cert, key_file: key } });
    try {
      const fingerprint = () =>
        new Promise((resolve, reject) => {
          const s = tls.connect({ host: '127.0.0.1', port: h.clientPort, rejectUnauthorized: false }, () => {
            const fp = s.getPeerCertificate().fingerprint256;
            s.destroy();
            resolve(fp);
          });
          s.on('error', reject);
        });
      const before = await fingerprint();
      const open = await connect(h.wssUrl);
      const second = makeCertificate(tempDir());
      copyFileSync(second.cert, cert);
      copyFileSync(second.key, key);
      h.proc.kill('SIGHUP');
      await h.waitForLog((l) => l.event === 'tls.reloaded');
      const after = await fingerprint();
      assert.notEqual(after, before);
      open.send('still here');
      assert.equal(await open.next(), 'still here');
      // A broken file is refused and the current certificate stays.
      writeFileSync(key, 'not a key');
      h.proc.kill('SIGHUP');
      await h.waitForLog((l) => l.event === 'tls.reload_failed');
      assert.equal(await fingerprint(), after);
      open.ws.close();
    } finally {
      await h.stop();
    }
  });
});

describe('admin SigV4 against stale, replayed and incomplete signatures', () => {
  const CREDENTIALS = { accessKeyId: 'HERALDTESTKEY', secretAccessKey: 'herald-test-secret-0123456789' };
  class Sha256 {
    constructor(secret) {
      this.h = secret ? crypto.createHmac('sha256', secret) : crypto.createHash('sha256');
    }
    update(data) {
      this.h.update(data);
    }
    async digest() {
      return new Uint8Array(this.h.digest());
    }
  }
  const signer = new SignatureV4({ service: 'execute-api', region: 'eu-west-1', credentials: CREDENTIALS, sha256: Sha256 });
  let h;
  let client;
  let id;
  before(async () => {
    h = await startHerald({ admin: { sigv4: { access_key_id: CREDENTIALS.accessKeyId, secret_access_key: CREDENTIALS.secretAccessKey } } });
    [client, id] = await h.withConnectionId(() => connect(h.url));
  });
  after(async () => {
    client.ws.close();
    await h.stop();
  });

  async function signed(body, signingDate = new Date()) {
    const request = {
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: h.adminPort,
      path: `/@connections/${id}`,
      headers: { host: `127.0.0.1:${h.adminPort}`, 'content-type': 'application/octet-stream' },
      body,
    };
    return signer.sign(request, { signingDate });
  }
  const send = (req, body = req.body) =>
    fetch(`http://127.0.0.1:${h.adminPort}${req.path}`, { method: 'POST', headers: req.headers, body });

  test('a fresh signature delivers', async () => {
    assert.equal((await send(await signed('fresh'))).status, 200);
    assert.equal(await client.next(), 'fresh');
  });

  test('a signature older than max_skew (a replay) is refused', async () => {
    const res = await send(await signed('stale', new Date(Date.now() - 10 * 60 * 1000)));
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('x-amzn-errortype'), 'ForbiddenException');
    assert.ok(await client.silentFor(150));
  });

  test('a captured signature replayed with another body is refused', async () => {
    const req = await signed('original');
    const res = await send(req, 'tampered');
    assert.equal(res.status, 403);
    assert.ok(await client.silentFor(150));
  });

  test('missing Authorization, X-Amz-Date or a signed header are refused', async () => {
    for (const drop of ['authorization', 'x-amz-date', 'x-amz-content-sha256']) {
      const req = await signed('partial');
      const headers = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.toLowerCase() !== drop));
      const res = await fetch(`http://127.0.0.1:${h.adminPort}${req.path}`, { method: 'POST', headers, body: 'partial' });
      assert.ok([401, 403].includes(res.status), `${drop}: ${res.status}`);
    }
    assert.ok(await client.silentFor(150));
  });
});
