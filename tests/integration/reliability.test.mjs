// Reliability under attack and failure (issue 22), through the real binary and a real Redis:
// JSON nested deep enough to overflow a recursive reader, at every entry point Herald reads
// JSON from outside; payloads larger than a client may receive; tokens without exp.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHerald, runHerald, tempDir, writeJson, makeCertificate } from './lib/herald.mjs';
import { connect, handshakeStatus, rawHttp } from './lib/clients.mjs';
import { startRedis } from './lib/redis.mjs';
import { startBackend, eventually } from './lib/backend.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';
import WebSocket from 'ws';
import { connect as sdkConnect } from '../../clients/js/herald.js';

// `depth` levels of arrays around `inner`, built as text (JSON.stringify would itself recurse).
const nested = (depth, inner = '') => '['.repeat(depth) + inner + ']'.repeat(depth);

async function metrics(h) {
  return parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());
}

async function alive(h) {
  const r = await fetch(`${h.adminUrl}/healthz`);
  return r.status === 200 && h.proc.exitCode === null && h.proc.signalCode === null;
}

// redis-cli with the last argument on stdin (-x): arguments over 128 KiB cannot go on a command line.
function cliStdin(redis, args, input) {
  try {
    return execFileSync('redis-cli', ['-p', String(redis.port), '-x', ...args], { input, encoding: 'utf8' }).trim();
  } catch (e) {
    return `${e.stdout ?? ''}${e.stderr ?? ''}`.trim();
  }
}

describe('JSON nested 50,000 deep at every entry point: refused, never a crash', () => {
  let redis;
  let backend;
  let h;
  before(async () => {
    redis = await startRedis();
    backend = await startBackend(() => ({
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: `{"statusCode":200,"body":${nested(50000)}}`,
    }));
    h = await startHerald({
      backplane: 'redis',
      redis: { url: redis.url },
      history: { rules: [{ pattern: 'hist.*', size: 100, ttl: '1h' }] },
      integrations: { deep: { type: 'http', url: `${backend.url}/events`, mode: 'lambda-proxy', timeout: '5s' } },
      routes: { deep: { integration: 'deep', response: true }, $default: { integration: 'echo', response: true } },
    });
  });
  after(async () => {
    await h?.stop();
    await backend?.close();
    await redis?.stop();
  });

  test('a client frame {"action":[[[…]]]} (the crash of issue 22) answers bad_request', async () => {
    const c = await connect(h.url);
    c.send(`{"action":${nested(50000)}}`);
    const reply = await c.nextJson();
    assert.deepEqual(reply, { type: 'error', code: 'bad_request', message: 'message nested deeper than 64 levels' });
    // Objects too, and inside a built-in action's extra fields.
    c.send(`{"action":"subscribe","channel":"news","x":${'{"a":'.repeat(20000)}1${'}'.repeat(20000)}}`);
    assert.equal((await c.nextJson()).code, 'bad_request');
    // The socket stays open and the node serves it.
    c.send('{"action":"hello"}');
    assert.equal(await c.next(), '{"action":"hello"}');
    // At the bound it is routed as usual.
    const ok = `{"action":"x","v":${nested(63)}}`;
    c.send(ok);
    assert.equal(await c.next(), ok);
    assert.equal((await metrics(h)).value('herald_messages_refused_total', { reason: 'too_deep' }), 2);
    assert.ok(await alive(h));
    await c.close();
  });

  test('POST /v1/publish with data nested 100,000 deep answers 400', async () => {
    const r = await fetch(`${h.adminUrl}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"channel":"news","data":${nested(100000)}}`,
    });
    assert.equal(r.status, 400);
    const body = await r.json();
    assert.equal(body.error, 'bad_request');
    assert.match(body.message, /nested deeper than 64 levels \(limits\.json_max_depth\)/);
    assert.ok(await alive(h));
  });

  test('a backend answer nested 50,000 deep is a failed integration call', async () => {
    const c = await connect(h.url);
    c.send('{"action":"deep"}');
    const reply = await c.nextJson();
    assert.equal(reply.message, 'Internal server error');
    const failed = await h.waitForLog((l) => l.event === 'route.failed' && l.route === 'deep');
    assert.match(failed.error, /nested deeper than 64 levels/);
    assert.ok(await alive(h));
    await c.close();
  });

  test('a Redis payload nested too deep, or larger than a client may receive, is dropped and counted', async () => {
    const c = await connect(h.url);
    c.send({ action: 'subscribe', channel: 'news' });
    assert.equal((await c.nextJson()).type, 'subscribed');
    cliStdin(redis, ['PUBLISH', 'herald:channel:news'], nested(50000));
    cliStdin(redis, ['PUBLISH', 'herald:channel:news'], JSON.stringify({ big: 'x'.repeat(200 * 1024) }));
    redis.cli('PUBLISH', 'herald:channel:news', '{"after":1}');
    // Only the good one arrives, in order after the two dropped ones.
    assert.deepEqual(await c.nextJson(), { type: 'message', channel: 'news', data: { after: 1 } });
    const m = await metrics(h);
    assert.equal(m.value('herald_backplane_dropped_total', { reason: 'too_deep' }), 1);
    assert.equal(m.value('herald_backplane_dropped_total', { reason: 'too_large' }), 1);
    const log = await h.waitForLog((l) => l.event === 'backplane.dropped');
    assert.equal(log.channel, 'herald:channel:news');
    assert.ok(await alive(h));
    await c.close();
  });

  test('node messages of the wrong shape on the control and node channels are ignored; the node lives', async () => {
    const [c, id] = await h.withConnectionId(() => connect(h.url));
    const node = `herald:node:${h.nodeId}`;
    // Any type where a string, number or boolean is expected (found by fuzzing a JWKS "crv").
    const bad = [
      ['herald:control', { op: 5 }],
      ['herald:control', { op: 'close_user', user: { a: 1 }, code: 'x', reason: [], origin: 7 }],
      ['herald:control', ['not', 'an', 'object']],
      [node, { op: 'probe', nonce: 'x' }],
      [node, { op: 'result', rid: -1, result: {} }],
      [node, { op: 'close', connection: { id }, code: {}, reason: 1 }],
      [node, { op: 'send', connection: id, rid: 'x', reply: 7, binary: 'yes', payload: { a: 1 } }],
    ];
    for (const [channel, op] of bad) redis.cli('PUBLISH', channel, JSON.stringify(op));
    // A close code no client may receive is sent as 1000.
    redis.cli('PUBLISH', node, JSON.stringify({ op: 'close', connection: id, code: 1005, reason: 'bye' }));
    const closed = await c.closed;
    assert.deepEqual(closed, { code: 1000, reason: 'bye' });
    // The send whose payload is not a string delivered nothing.
    assert.deepEqual(c.messages, []);
    assert.ok(await alive(h));
  });

  test('FCALL herald_publish refuses data too deep or too large for a client, storing nothing', async () => {
    const deep = cliStdin(redis, ['FCALL', 'herald_publish', '0', 'hist.1'], nested(65));
    assert.match(deep, /nested deeper than 64 levels/);
    const deeper = cliStdin(redis, ['FCALL', 'herald_publish', '0', 'hist.1'], nested(5000));
    assert.match(deeper, /nested deeper than 64 levels/);
    const big = cliStdin(redis, ['FCALL', 'herald_publish', '0', 'hist.1'], JSON.stringify('x'.repeat(200 * 1024)));
    assert.match(big, /over the limit of 131072 \(websocket\.max_message_bytes\)/);
    assert.equal(redis.cli('EXISTS', 'herald:history:hist.1'), '0');
  });
});

describe('authorizers and tokens', () => {
  let authz;
  let h;
  before(async () => {
    authz = await startBackend((r) => {
      // Under the authorizer's 8 KiB answer limit, 3,000 levels deep.
      if (r.event?.headers?.Authorization === 'deep') return { status: 200, body: `{"principalId":"u","context":${nested(3000)}}` };
      return { status: 401 };
    });
    h = await startHerald({
      integrations: { authz: { type: 'http', url: `${authz.url}/authorize`, mode: 'http', timeout: '2s' } },
      auth: { authorizer: { integration: 'authz', cache_ttl: '0s' } },
    });
  });
  after(async () => {
    await h?.stop();
    await authz?.close();
  });

  test('an authorizer answer nested 3,000 deep refuses the handshake with 500', async () => {
    const r = await handshakeStatus(h.url, { headers: { Authorization: 'deep' } });
    assert.equal(r.status, 500);
    const log = await h.waitForLog((l) => /authorizer/.test(l.event) && /nested deeper/.test(l.error ?? ''));
    assert.ok(log);
    assert.ok(await alive(h));
  });
});

describe('JWT: deep claims, and tokens without exp', () => {
  const secret = 'reliability-secret-0123456789abcdef';
  const b64 = (s) => Buffer.from(s).toString('base64url');
  const sign = (claimsText) => {
    const input = `${b64('{"alg":"HS256","typ":"JWT"}')}.${b64(claimsText)}`;
    return `${input}.${crypto.createHmac('sha256', secret).update(input).digest('base64url')}`;
  };
  const exp = () => Math.floor(Date.now() / 1000) + 300;
  let strict;
  let lenient;
  before(async () => {
    const jwt = { keys: [{ alg: 'HS256', secret_env: 'REL_JWT_SECRET' }] };
    strict = await startHerald({ auth: { jwt } }, { env: { REL_JWT_SECRET: secret } });
    lenient = await startHerald({ auth: { jwt: { ...jwt, require_exp: false } } }, { env: { REL_JWT_SECRET: secret } });
  });
  after(async () => {
    await strict?.stop();
    await lenient?.stop();
  });

  const bearer = (t) => ({ headers: { Authorization: `Bearer ${t}` } });

  test('a token whose claims nest deeper than the bound is refused (401), the node lives', async () => {
    const token = sign(`{"sub":"u","exp":${exp()},"x":${nested(2000)}}`);
    assert.equal((await handshakeStatus(strict.url, bearer(token))).status, 401);
    const log = await strict.waitForLog((l) => l.event === 'connection.unauthorized');
    assert.equal(log.reason, 'malformed token');
    assert.ok(await alive(strict));
    // A sound token still works.
    const c = await connect(strict.url, bearer(sign(`{"sub":"u","exp":${exp()}}`)));
    await c.close();
  });

  test('a token without exp is refused by default; auth.jwt.require_exp: false accepts it', async () => {
    const token = sign('{"sub":"forever"}');
    const r = await handshakeStatus(strict.url, bearer(token));
    assert.equal(r.status, 401);
    assert.match(r.body, /exp/);
    const c = await connect(lenient.url, bearer(token));
    await c.close();
  });
});

test('a configuration file nested too deep is refused by --check-config with one line', () => {
  const dir = tempDir();
  const file = writeJson(dir, 'deep.json', `{"routes":${'{"a":'.repeat(100000)}1${'}'.repeat(100000)}}`);
  const r = runHerald(['--check-config', '--config', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /nested deeper than 64 levels/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

// ---------------------------------------------------------------------------------------------
// Redis failures while a history channel is in use.

const adminPost = (h, body, headers = {}) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

// A subscriber that records every frame it gets for one channel.
async function recorder(url, channel) {
  const c = await connect(url);
  c.frames = [];
  c.ws.removeAllListeners('message');  // the recorder keeps everything; no queue
  c.ws.on('message', (d) => c.frames.push(JSON.parse(d.toString())));
  c.send({ action: 'subscribe', channel });
  await eventually(() => c.frames.some((f) => f.type === 'subscribed'));
  return c;
}

// Publishes seq 1..∞ to `channel` through the given nodes in turn until stop(), retrying each
// one with the same idempotency key until a node answers 2xx: what a careful publisher does.
function retryingPublisher(nodes, channel, { intervalMs = 5 } = {}) {
  const acked = [];
  let stopped = false;
  let attempts = 0;
  const done = (async () => {
    for (let seq = 1; !stopped; seq++) {
      for (;;) {
        if (stopped) return;
        const h = nodes[(seq + attempts) % nodes.length];
        attempts++;
        try {
          const r = await adminPost(h, { channel, data: { seq } }, { 'Idempotency-Key': `seq-${seq}` });
          if (r.status === 202) {
            const body = await r.json();
            acked.push({ seq, offset: body.offset, epoch: body.epoch, forwarded: body.forwarded });
            break;
          }
          await r.body?.cancel();
        } catch {
          // the node is unreachable: try again
        }
        await sleep(50);
      }
      await sleep(intervalMs);
    }
  })();
  return {
    acked,
    get attempts() {
      return attempts;
    },
    async stop() {
      stopped = true;
      await done;
    },
  };
}

// Every stored (acknowledged) publication arrives exactly once, in order; or the client was told
// to resync, and then everything stored after the point it names arrives.
function checkDelivery(name, frames, acked) {
  const messages = frames.filter((f) => f.type === 'message');
  const seen = new Set();
  const byEpoch = new Map();
  for (const m of messages) {
    const key = `${m.epoch}/${m.offset}`;
    assert.ok(!seen.has(key), `${name}: ${key} delivered twice`);
    seen.add(key);
    const last = byEpoch.get(m.epoch) ?? 0;
    assert.ok(m.offset > last, `${name}: offset ${m.offset} after ${last} in epoch ${m.epoch}`);
    byEpoch.set(m.epoch, m.offset);
  }
  const resyncs = frames.filter((f) => f.type === 'resync');
  const missing = acked.filter((a) => !seen.has(`${a.epoch}/${a.offset}`));
  if (resyncs.length === 0) {
    assert.deepEqual(missing.map((a) => a.seq), [], `${name}: stored messages missing, and no resync`);
  } else {
    // Everything stored after the resync's position arrived: in the epoch it names (no epoch:
    // the history was empty then), after its offset, and in every epoch the client had not seen.
    const r = resyncs.at(-1);
    const at = frames.indexOf(r);
    const before = new Set(frames.slice(0, at).filter((f) => f.type === 'message').map((f) => f.epoch));
    const after = (a) => (r.epoch !== undefined && a.epoch === r.epoch ? a.offset > r.offset : !before.has(a.epoch));
    assert.deepEqual(missing.filter(after).map((a) => a.seq), [], `${name}: missing after its resync`);
  }
  return { received: messages.length, missing: missing.length, resyncs: resyncs.length };
}

describe('Redis restarts empty while publishing goes on', () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await startRedis();
    const config = (id) => ({
      node_id: id,
      backplane: 'redis',
      redis: { url: redis.url, reconnect_max_backoff: '2s', probe_interval: '500ms', probe_timeout: '1s' },
      history: { rules: [{ pattern: 'feed.*', size: 100000, ttl: '1h' }] },
    });
    nodes = await Promise.all([startHerald(config('empty-a')), startHerald(config('empty-b'))]);
  });
  after(async () => {
    await Promise.all((nodes ?? []).map((h) => h.stop()));
    await redis?.stop();
  });

  test('every client gets every stored message, or a resync and everything after it; counted', async (t) => {
    const clients = [];
    for (const h of nodes) for (let i = 0; i < 3; i++) clients.push(await recorder(h.url, 'feed.1'));
    // And one application on the JavaScript SDK: its 'resync' event and handler see the same.
    const sdk = sdkConnect(nodes[0].url, { WebSocket });
    const sdkFrames = [];
    sdk.on('resync', (e) => sdkFrames.push({ ...e.reply }));
    await sdk.subscribe('feed.1', (data, meta) => sdkFrames.push({ type: 'message', ...meta, data }));
    const pub = retryingPublisher(nodes, 'feed.1');
    await eventually(() => pub.acked.length >= 150, 10000);
    await redis.kill();  // SIGKILL, no persistence: everything is gone
    await sleep(700);
    await redis.restart();
    const restarted = pub.acked.length;
    await eventually(() => pub.acked.length >= restarted + 600, 30000);
    await pub.stop();
    const last = pub.acked.at(-1);
    await eventually(() => clients.every((c) => c.frames.some((f) => f.epoch === last.epoch && f.offset === last.offset)), 10000)
      .catch(() => {});
    await eventually(() => sdkFrames.some((f) => f.epoch === last.epoch && f.offset === last.offset), 10000)
      .catch(() => {});
    clients.push({ frames: sdkFrames, ws: { terminate: () => sdk.close() } });
    const epochs = new Set(pub.acked.map((a) => a.epoch));
    assert.ok(epochs.size >= 2, 'the history restarted in a new epoch');
    let told = 0;
    for (const [i, c] of clients.entries()) {
      const r = checkDelivery(`client ${i}`, c.frames, pub.acked);
      if (r.resyncs) told++;
      t.diagnostic(`client ${i}: ${r.received} messages, ${r.missing} of ${pub.acked.length} stored missing, ${r.resyncs} resync(s)`);
    }
    // The nodes' counters say which: resync frames sent = clients told; epoch changes seen.
    let sent = 0;
    for (const h of nodes) {
      const m = await metrics(h);
      sent += m.value('herald_history_resyncs_sent_total');
      assert.ok(m.value('herald_history_epoch_changes_total') >= 1, `${h.nodeId} saw the new epoch`);
      t.diagnostic(`${h.nodeId}: epoch changes ${m.value('herald_history_epoch_changes_total')}, resyncs ${m.value('herald_history_resyncs_total')}, recovered ${m.value('herald_history_recovered_total')}, lost ${m.value('herald_history_lost_total')}`);
    }
    assert.equal(sent, told);
    for (const c of clients) c.ws.terminate();
  });
});

describe('FLUSHALL, and an eviction policy that could delete history', () => {
  let redis;
  let h;
  before(async () => {
    redis = await startRedis();
    redis.cli('CONFIG', 'SET', 'maxmemory-policy', 'allkeys-lru');
    h = await startHerald({
      backplane: 'redis',
      redis: { url: redis.url },
      history: { rules: [{ pattern: 'feed.*', size: 1000, ttl: '1h' }] },
    });
  });
  after(async () => {
    await h?.stop();
    await redis?.stop();
  });

  test('a maxmemory-policy other than noeviction is warned about at connect', async () => {
    const w = await h.waitForLog((l) => l.event === 'backplane.eviction_policy');
    assert.equal(w.maxmemory_policy, 'allkeys-lru');
    assert.match(w.hint, /noeviction/);
  });

  test('history goes on storing after FLUSHALL under load: no offset 0, no silent at-most-once', async () => {
    const c = await recorder(h.url, 'feed.flush');
    const answers = [];
    for (let seq = 1; seq <= 300; seq++) {
      if (seq === 101 || seq === 201) redis.cli('FLUSHALL');
      const r = await adminPost(h, { channel: 'feed.flush', data: { seq } });
      answers.push({ seq, status: r.status, ...(await r.json()) });
    }
    assert.deepEqual(answers.filter((a) => a.status !== 202 || !(a.offset >= 1)), [], 'every publish stored');
    const epochs = [...new Set(answers.map((a) => a.epoch))];
    assert.equal(epochs.length, 3, 'a new epoch after each FLUSHALL');
    await eventually(() => c.frames.filter((f) => f.type === 'message').length === 300, 5000);
    checkDelivery('subscriber', c.frames, answers);
    const page = await (await fetch(`${h.adminUrl}/v1/channels/feed.flush/history?since=0&limit=1000`)).json();
    assert.equal(page.epoch, epochs[2]);
    assert.deepEqual(page.messages.map((m) => m.data.seq), Array.from({ length: 100 }, (_, i) => 201 + i));
    c.ws.terminate();
  });
});

describe('a frozen Redis (SIGSTOP), and a node killed -9', () => {
  let redis;
  let a;
  let b;
  before(async () => {
    redis = await startRedis();
    const config = (id) => ({
      node_id: id,
      backplane: 'redis',
      redis: { url: redis.url, command_timeout: '1s', connect_timeout: '1s', probe_interval: '500ms', probe_timeout: '1s', reconnect_max_backoff: '1s' },
    });
    [a, b] = await Promise.all([startHerald(config('frozen-a')), startHerald(config('frozen-b'))]);
  });
  after(async () => {
    await Promise.all([a, b].filter(Boolean).map((h) => h.stop()));
    await redis?.stop();
  });

  test('readiness stays false while frozen; "forwarded" means Redis answered', async (t) => {
    const sub = await recorder(b.url, 'plain');
    await redis.freeze();
    const frozenAt = Date.now();
    const statuses = [];
    const answers = [];
    while (Date.now() - frozenAt < 7000) {
      statuses.push({ t: Date.now() - frozenAt, status: (await fetch(`${a.adminUrl}/readyz`)).status });
      const r = await adminPost(a, { channel: 'plain', data: { at: Date.now() - frozenAt } });
      answers.push(await r.json());
      await sleep(100);
    }
    const firstDown = statuses.findIndex((s) => s.status === 503);
    assert.ok(firstDown >= 0, 'not ready while Redis is frozen');
    t.diagnostic(`not ready ${statuses[firstDown].t} ms after the freeze`);
    assert.deepEqual(statuses.slice(firstDown).filter((s) => s.status === 200), [], 'never ready again while frozen');
    assert.ok(answers.length > 0 && answers.every((x) => x.forwarded === false), `forwarded while frozen: ${JSON.stringify(answers.filter((x) => x.forwarded))}`);
    redis.thaw();
    // Both nodes back (B must have resubscribed to receive what A publishes on a plain channel).
    for (const h of [a, b]) await eventually(async () => (await fetch(`${h.adminUrl}/readyz`)).status === 200, 10000, 100);
    // Back: forwarded again, and B's subscriber gets it.
    const r = await (await adminPost(a, { channel: 'plain', data: 'after' })).json();
    assert.equal(r.forwarded, true);
    await eventually(() => sub.frames.some((f) => f.data === 'after'), 5000);
    // Nothing that was answered forwarded:false reached B.
    const reachedB = sub.frames.filter((f) => f.type === 'message' && f.data !== 'after');
    assert.deepEqual(reachedB, []);
    sub.ws.terminate();
  });

  test('GET @connections for a connection of a node killed -9 answers 410 at once', async (t) => {
    const [client, id] = await b.withConnectionId(() => connect(b.url));
    const get = () => fetch(`${a.adminUrl}/@connections/${id}`).then((r) => r.status);
    assert.equal(await get(), 200);
    await b.kill('SIGKILL');
    const killedAt = Date.now();
    await eventually(async () => (await get()) === 410, 3000, 50);
    const gone = Date.now() - killedAt;
    t.diagnostic(`gone after ${gone} ms (redis.node_ttl is 15 s)`);
    assert.ok(gone < 1000, `gone after ${gone} ms`);
    client.ws.terminate();
    b = undefined;
  });
});

// ---------------------------------------------------------------------------------------------
// Out of file descriptors.

describe('descriptor exhaustion (RLIMIT_NOFILE 300)', () => {
  let h;
  before(async () => {
    h = await startHerald({ http: { request_timeout: '5s' } }, { wrap: ['prlimit', '--nofile=300:300', '--'] });
  });
  after(async () => {
    await h?.stop();
  });

  test('max_connections is capped below the limit, with a warning at start', async () => {
    const d = await h.waitForLog((l) => l.event === 'server.descriptors');
    assert.equal(d.limit, 300);
    const w = await h.waitForLog((l) => l.event === 'server.descriptor_limit');
    assert.equal(w.maxConnections, 300 - d.reserve);
    assert.equal(w.configured, 100000);
  });

  test('upgrades over the cap answer 503 with Retry-After; health and readiness keep answering', async () => {
    const cap = (await h.waitForLog((l) => l.event === 'server.descriptors')).maxConnections;
    const open = [];
    for (let i = 0; i < cap; i += 20) {
      open.push(...(await Promise.all(Array.from({ length: Math.min(20, cap - i) }, () => connect(h.url)))));
    }
    assert.equal(open.length, cap);
    const refused = await handshakeStatus(h.url);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers['retry-after'], '1');
    assert.equal(JSON.parse(refused.body).error, 'unavailable');
    for (const path of ['/healthz', '/readyz']) {
      const t0 = Date.now();
      assert.equal((await fetch(`${h.adminUrl}${path}`)).status, 200);
      assert.equal((await fetch(`${h.httpUrl}${path}`)).status, 200);
      assert.ok(Date.now() - t0 < 1000);
    }
    // Every held connection still works.
    open[0].send('still here');
    assert.equal(await open[0].next(), 'still here');
    for (const c of open) c.ws.terminate();
    await eventually(async () => (await metrics(h)).value('herald_connections') === 0, 5000);
  });

  test('with every descriptor taken anyway, new connections get a 503 answer, not a hang; one log line', async () => {
    // Idle TCP connections (no request yet) are held until http.request_timeout: they can take the
    // descriptors the cap keeps free. Connections past the last descriptor are answered at once.
    const sockets = [];
    const answers = [];
    for (let i = 0; i < 320; i++) {
      const s = net.connect({ port: h.clientPort, host: '127.0.0.1' });
      s.on('error', () => {});
      s.on('data', (d) => answers.push(d.toString()));
      sockets.push(s);
    }
    await eventually(() => answers.length > 0, 5000);
    const first = answers[0];
    assert.match(first, /^HTTP\/1\.1 503 /);
    assert.match(first, /Retry-After: 1/);
    assert.match(first, /out of file descriptors/);
    await sleep(1500);
    assert.equal(h.events('listener.out_of_descriptors').length, 1, 'logged once per interval');
    assert.equal(h.events('listener.accept_failed').length, 0);
    for (const s of sockets) s.destroy();
    // Descriptors come back: health, metrics and upgrades work again.
    await eventually(async () => (await fetch(`${h.adminUrl}/healthz`).catch(() => ({ status: 0 }))).status === 200, 5000);
    const shed = (await metrics(h)).value('herald_connections_shed_total', { reason: 'descriptors' });
    assert.ok(shed >= answers.length, `shed ${shed}, answers ${answers.length}`);
    const c = await connect(h.url);
    await c.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Smaller findings: handshake and TLS details.

describe('handshake and TLS details', () => {
  let dir;
  let plain;
  let tlsNode;
  before(async () => {
    dir = tempDir();
    const { cert, key } = makeCertificate(dir);
    plain = await startHerald();
    tlsNode = await startHerald({ tls: { mode: 'required', cert_file: cert, key_file: key } });
  });
  after(async () => {
    await plain?.stop();
    await tlsNode?.stop();
  });

  const upgrade = (extra) =>
    'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    `Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`;

  test('two Sec-WebSocket-Key headers are not a handshake (RFC 6455 §11.3.1): 400', async () => {
    const twice = await rawHttp(plain.clientPort, upgrade('Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n'));
    assert.equal(twice.status, 400);
    assert.match(twice.body, /must appear once/);
    const once = await rawHttp(plain.clientPort, upgrade(''), { timeoutMs: 500 });  // stays open
    assert.match(once.raw, /^HTTP\/1\.1 101 /);
  });

  test('plain HTTP on a tls.mode: required port gets a 400 that says to use TLS', async () => {
    const r = await rawHttp(tlsNode.clientPort, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).error, 'tls_required');
    assert.match(r.body, /wss:\/\//);
    // TLS itself is unaffected.
    const c = await connect(tlsNode.wssUrl);
    await c.close();
  });

  test('TLS 1.2 ciphers without forward secrecy (AES128-SHA) are refused by default', () => {
    const handshake = (cipher) => {
      try {
        execFileSync('openssl', ['s_client', '-connect', `127.0.0.1:${tlsNode.clientPort}`, '-tls1_2', '-cipher', cipher],
          { input: '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 5000 });
        return true;
      } catch {
        return false;
      }
    };
    assert.equal(handshake('AES128-SHA'), false, 'AES128-SHA negotiated');
    assert.equal(handshake('ECDHE-ECDSA-AES128-GCM-SHA256'), true);
  });
});
