// TLS to Redis through the real binary: rediss:// with the CA made at test time, cross-node
// delivery over it, mutual TLS, and the failures an operator must see at once (a wrong CA, a
// wrong name, a missing client certificate): one clear log line per attempt, readiness false,
// and never a plain-text connection instead.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, runHerald, tempDir, makeCertificate } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startRedis } from './lib/redis.mjs';
import { startRedisCluster } from './lib/redis_cluster.mjs';
import { eventually } from './lib/backend.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const dir = tempDir('herald-redis-tls-');
const server = makeCertificate(tempDir('herald-redis-tls-server-'));
const wrongCa = makeCertificate(tempDir('herald-redis-tls-other-'));
const client = makeCertificate(tempDir('herald-redis-tls-client-'));

function config(id, redisUrl, tls, extra = {}) {
  return {
    node_id: id,
    backplane: 'redis',
    redis: { url: redisUrl, tls, reconnect_max_backoff: '500ms', ...extra },
  };
}

async function readyz(h) {
  const r = await fetch(`${h.httpUrl}/readyz`);
  return { status: r.status, body: await r.json() };
}

async function backplaneUp(h) {
  const m = parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());
  return m.value('herald_backplane_up');
}

describe('TLS to Redis', () => {
  let redis;
  let nodes = [];
  before(async () => {
    redis = await startRedis({ tls: { cert: server.cert, key: server.key } });
  });
  after(async () => {
    await Promise.all(nodes.map((h) => h.stop()));
    await redis?.stop();
  });

  test('two nodes over rediss:// deliver to each other', async () => {
    const tls = { ca_file: server.cert };
    const [a, b] = await Promise.all([
      startHerald(config('tls-a', redis.tlsUrl, tls)),
      startHerald(config('tls-b', redis.tlsUrl, tls)),
    ]);
    nodes.push(a, b);
    for (const h of [a, b]) {
      const line = await h.waitForLog((l) => l.event === 'backplane.connected');
      assert.match(JSON.stringify(line), /rediss:\/\/127\.0\.0\.1/);
    }
    const ws = await connect(a.url);
    ws.send(JSON.stringify({ action: 'subscribe', channel: 'news', id: 1 }));
    assert.equal((await ws.nextJson()).type, 'subscribed');
    const r = await fetch(`${b.adminUrl}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'news', data: { over: 'tls' } }),
    });
    assert.equal(r.status, 202);
    assert.equal((await r.json()).forwarded, true);
    assert.deepEqual(await ws.nextJson(), { type: 'message', channel: 'news', data: { over: 'tls' } });
    ws.close();
  });

  test('a wrong CA fails with one clear line per attempt, readiness false, nothing in plain text', async () => {
    const h = await startHerald(config('tls-wrong-ca', redis.tlsUrl, { ca_file: wrongCa.cert }), { ready: false });
    nodes.push(h);
    const line = await h.waitForLog((l) => l.event === 'backplane.lost', 5000);
    assert.match(line.error, /^TLS handshake with 127\.0\.0\.1: certificate verify failed \(.*see redis\.tls\.ca_file\)$/);
    const r = await readyz(h);
    assert.equal(r.status, 503);
    assert.ok(r.body.reasons.some((why) => /Redis/.test(why)), JSON.stringify(r.body));
    assert.equal(await backplaneUp(h), 0);
    // Still refusing after retries: never a fallback.
    await eventually(() => h.events('backplane.lost').length >= 4, 5000);
    assert.ok(h.events('backplane.lost').every((l) => /certificate verify failed/.test(l.error)));
    assert.equal(h.events('backplane.connected').length, 0);
  });

  test('a name the certificate does not carry is refused, naming redis.tls.server_name', async () => {
    const h = await startHerald(
      config('tls-wrong-name', redis.tlsUrl, { ca_file: server.cert, server_name: 'redis.example.com' }),
      { ready: false });
    nodes.push(h);
    const line = await h.waitForLog((l) => l.event === 'backplane.lost', 5000);
    assert.match(line.error, /^TLS handshake with redis\.example\.com: certificate verify failed \(the certificate is not for this name; see redis\.tls\.server_name\)$/);
    assert.equal((await readyz(h)).status, 503);
  });

  test('--check-config refuses an unreadable CA and a certificate without its key', async () => {
    let r = runHerald(['--check-config', '--backplane', 'redis', '--redis.url', redis.tlsUrl,
      '--redis.tls.ca_file', `${dir}/missing.pem`]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /redis\.tls\.ca_file: cannot read ".*missing\.pem" \(in --redis\.tls\.ca_file\)/);
    r = runHerald(['--check-config', '--backplane', 'redis', '--redis.url', redis.tlsUrl,
      '--redis.tls.cert_file', client.cert]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /redis\.tls\.key_file: redis\.tls\.cert_file and redis\.tls\.key_file go together/);
  });
});

describe('mutual TLS to Redis', () => {
  let redis;
  const nodes = [];
  before(async () => {
    // Redis checks client certificates against the client's own (self-signed) certificate.
    redis = await startRedis({ tls: { cert: server.cert, key: server.key, ca: client.cert, authClients: true } });
  });
  after(async () => {
    await Promise.all(nodes.map((h) => h.stop()));
    await redis?.stop();
  });

  test('without a client certificate the node is not ready; with one it is', async () => {
    const without = await startHerald(config('mtls-none', redis.tlsUrl, { ca_file: server.cert }), { ready: false });
    nodes.push(without);
    await without.waitForLog((l) => l.event === 'backplane.lost', 5000);
    assert.equal((await readyz(without)).status, 503);

    const withCert = await startHerald(config('mtls-cert', redis.tlsUrl,
      { ca_file: server.cert, cert_file: client.cert, key_file: client.key }));
    nodes.push(withCert);
    assert.equal((await readyz(withCert)).status, 200);
    assert.equal(await backplaneUp(withCert), 1);
  });
});

describe('TLS to a Redis Cluster', () => {
  test('rediss:// with redis.cluster: the nodes reach every shard over TLS, pub/sub and history work', async () => {
    const cluster = await startRedisCluster({ replicas: 0, tls: { cert: server.cert, key: server.key } });
    const nodes = [];
    try {
      const cfg = (id) => ({
        node_id: id,
        backplane: 'redis',
        redis: { url: 'rediss://seeds', tls: { ca_file: server.cert }, cluster: { addresses: cluster.tlsAddresses.slice(0, 1) } },
        history: { rules: [{ pattern: 'hist.*', size: 100, ttl: '1h' }] },
      });
      nodes.push(await startHerald(cfg('tls-cluster-a')), await startHerald(cfg('tls-cluster-b')));
      const [a, b] = nodes;
      assert.match(JSON.stringify(await a.waitForLog((l) => l.event === 'backplane.connected')), /rediss-cluster:\/\//);
      // Herald is connected to every primary over TLS, and to none in plain text (the only client
      // on a plain port is this test's redis-cli asking).
      await eventually(() => cluster.nodes.every((n) => n.cli('CLIENT', 'LIST').includes(`laddr=127.0.0.1:${n.tls.port} `)));
      for (const n of cluster.nodes) {
        const plain = n.cli('CLIENT', 'LIST').split('\n').filter((l) => l.includes(`laddr=127.0.0.1:${n.port} `));
        assert.deepEqual(plain.map((l) => / cmd=(\S+)/.exec(l)[1]), ['client|list'], 'no plain-text connection of Herald');
      }
      const c = await connect(a.url);
      for (const ch of ['news', 'hist.t']) {
        c.send(JSON.stringify({ action: 'subscribe', channel: ch }));
        assert.equal((await c.nextJson()).type, 'subscribed');
      }
      const publish = (body) => fetch(`${b.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify(body) }).then((r) => r.json());
      assert.equal((await publish({ channel: 'news', data: 1 })).forwarded, true);
      assert.deepEqual(await c.nextJson(), { type: 'message', channel: 'news', data: 1 });
      assert.equal((await publish({ channel: 'hist.t', data: 2 })).offset, 1);
      const m = await c.nextJson();
      assert.deepEqual([m.channel, m.offset, m.data], ['hist.t', 1, 2]);
      c.close();
    } finally {
      await Promise.all(nodes.map((h) => h.stop()));
      await cluster.stop();
    }
  });
});
