// What the docs promise, checked against the real binary and a real Redis (issue 23): the
// store-first acknowledgement and stream names, inbox acknowledgements, replies to a connection
// that closed, log field names, the backplane's outage counter, and the Node.js the scripts
// require for the README's tour.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, mkdirSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHerald, tempDir } from './lib/herald.mjs';
import { connect, handshakeStatus } from './lib/clients.mjs';
import { startRedis } from './lib/redis.mjs';
import { eventually } from './lib/backend.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path) => readFileSync(join(ROOT, path), 'utf8');
const publish = (h, body) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify(body) }).then((r) => r.json());

describe('store-first routes and the inbox, as docs/durability.md and the worker README say', () => {
  let redis;
  let h;
  before(async () => {
    redis = await startRedis();
    h = await startHerald({
      backplane: 'redis',
      redis: { url: redis.url, key_prefix: 'app' },
      inbox: { enabled: true },
      integrations: {
        queue: { type: 'redis_stream' },
        named: { type: 'redis_stream', stream: 'orders-in' },
        login: { type: 'mock', headers: { 'X-Herald-User-Id': 'alice' } },
      },
      routes: { $connect: { integration: 'login' }, order: { integration: 'queue' }, refund: { integration: 'named' } },
    });
  });
  after(async () => {
    await h?.stop();
    await redis?.stop();
  });

  test('the acknowledgement carries requestId and entry, as examples/store-first-worker/README.md shows', async () => {
    const documented = /`(\{"type":"ack"[^`]*\})`/.exec(read('examples/store-first-worker/README.md'))[1];
    const c = await connect(h.url);
    c.send({ action: 'order', item: 'book' });
    const ack = await c.nextJson();
    assert.deepEqual(Object.keys(ack).sort(), Object.keys(JSON.parse(documented.replace(/…/g, 'x'))).sort());
    assert.match(ack.entry, /^\d+-\d+$/);
    // <redis.key_prefix>:queue:{route key}; a named stream exactly as written.
    assert.equal(redis.cli('XLEN', 'app:queue:order'), '1');
    c.send({ action: 'refund' });
    await c.nextJson();
    assert.equal(redis.cli('XLEN', 'orders-in'), '1');
    assert.match(read('docs/durability.md'), /`<redis\.key_prefix>:queue:\{route key\}`/);
    await c.close();
  });

  test('inbox acknowledgements are cumulative and clamped to the newest offset', async () => {
    for (let i = 1; i <= 3; i++) await publish(h, { user: 'alice', store: true, data: { n: i } });
    const c = await connect(h.url);
    c.send({ action: 'subscribe', channel: '$inbox' });
    assert.equal((await c.nextJson()).type, 'subscribed');
    for (let i = 0; i < 3; i++) await c.nextJson();
    const ack = async (offset) => {
      c.send({ action: 'ack', channel: '$inbox', offset });
      return (await c.nextJson()).offset;
    };
    assert.equal(await ack(99), 3, 'past the newest: the newest');
    assert.equal(await ack(1), 3, 'older than acknowledged: unchanged');
    assert.match(read('docs/durability.md'), /Acknowledgements are cumulative/);
    await c.close();
  });

  test('a reply to a connection that has closed is lost (recipients 0); the inbox keeps it', async () => {
    const [c, id] = await h.withConnectionId(() => connect(h.url));
    await c.close();
    await eventually(async () => (await publish(h, { connection: id, data: 'late' })).recipients === 0);
    const stored = await publish(h, { user: 'alice', store: true, data: 'kept' });
    assert.ok(stored.offset >= 1);
    assert.match(read('docs/durability.md'), /"recipients": 0/);
  });
});

test('log fields: an HTTP status is "status", a close code is "code", as docs/operations.md says', async () => {
  const h = await startHerald({ auth: { jwt: { keys: [{ alg: 'HS256', secret_env: 'P_SECRET' }] } } }, {
    env: { P_SECRET: 'promises-secret-0123456789abcdef0' },
  });
  try {
    assert.equal((await handshakeStatus(h.url)).status, 401);
    const line = await h.waitForLog((l) => l.event === 'connection.unauthorized');
    assert.equal(line.status, 401);
    assert.equal(line.code, undefined);
    const row = read('docs/operations.md').split('\n').find((l) => l.startsWith('| `status` |'));
    assert.match(row, /connection\.unauthorized/);
  } finally {
    await h.stop();
  }
});

test('herald_backplane_outages_total counts an outage once; disconnects count every attempt', async () => {
  const redis = await startRedis();
  const h = await startHerald({ backplane: 'redis', redis: { url: redis.url, reconnect_max_backoff: '200ms', connect_timeout: '200ms' } });
  try {
    await redis.kill();
    await sleep(1500);  // several reconnect attempts while Redis is away
    await redis.restart();
    await eventually(async () => (await fetch(`${h.adminUrl}/readyz`)).status === 200, 10000, 100);
    const m = parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());
    assert.equal(m.value('herald_backplane_outages_total'), 1);
    assert.ok(m.value('herald_backplane_disconnects_total') > 2, 'attempts counted as disconnects');
  } finally {
    await h.stop();
    await redis.stop();
  }
});

test('the scripts require the Node.js the README tour needs (20.10), and say so', () => {
  const dir = tempDir();
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  // A Node 18 (what Debian 12 ships) first on the PATH.
  writeFileSync(join(bin, 'node'), '#!/bin/sh\nif [ "$1" = --version ]; then echo v18.19.0; exit 0; fi\nexit 1\n');
  writeFileSync(join(bin, 'npm'), '#!/bin/sh\necho 9.2.0\n');
  chmodSync(join(bin, 'node'), 0o755);
  chmodSync(join(bin, 'npm'), 0o755);
  const r = spawnSync('bash', ['-c', 'source scripts/lib/common.sh; ensure_packages() { :; }; ensure_node'], {
    cwd: ROOT,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
    encoding: 'utf8',
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /need Node\.js 20\.10 or later; this machine has v18\.19\.0/);
  // The real one passes.
  const ok = spawnSync('bash', ['-c', 'source scripts/lib/common.sh; ensure_node'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(read('README.md'), /Node\.js ≥ 20\.10/);
});
