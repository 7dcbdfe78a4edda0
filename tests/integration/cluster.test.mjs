// Several real herald nodes sharing a real redis-server: publications from redis-cli, from the
// API of another node and from a client on a third node each arrive exactly once; @connections
// and users work across nodes; a killed node's connections go away; Redis lost and back.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand, DeleteConnectionCommand, GoneException } from '@aws-sdk/client-apigatewaymanagementapi';
import { startHerald } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startBackend, eventually } from './lib/backend.mjs';
import { startRedis } from './lib/redis.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const fast = {
  node_ttl: '2s',
  directory_ttl: '4s',
  probe_interval: '200ms',
  probe_timeout: '1s',
  reconnect_max_backoff: '400ms',
  connect_timeout: '500ms',
};

function node(redis, name, extra = {}) {
  return startHerald({
    node_id: name,
    backplane: 'redis',
    redis: { url: redis.url, ...fast, ...(extra.redis ?? {}) },
    channels: { publish_action: 'publish', rules: [{ pattern: '*', publish: true }] },
    ...extra.config,
  });
}

const publish = (h, body) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify(body) }).then((r) => r.json());

// All messages that arrive within `ms` after the ones we wait for (duplicates would show here).
async function drain(client, ms = 300) {
  await sleep(ms);
  const out = [];
  while (client.messages.length) out.push(client.messages.shift());
  return out;
}

describe('three nodes, one Redis', () => {
  let redis;
  let a;
  let b;
  let c;
  before(async () => {
    redis = await startRedis();
    [a, b, c] = await Promise.all([node(redis, 'node-a'), node(redis, 'node-b'), node(redis, 'node-c')]);
  });
  after(async () => {
    await Promise.all([a, b, c].map((h) => h.stop()));
    await redis.stop();
  });

  test('a channel publication reaches a client on A exactly once: from redis-cli, from B\'s API, from a client on C', async () => {
    const sub = await connect(a.url);
    sub.send({ action: 'subscribe', channel: 'news', id: 1 });
    assert.deepEqual(await sub.nextJson(), { type: 'subscribed', channel: 'news', id: 1 });

    assert.equal(redis.cli('PUBLISH', 'herald:channel:news', '{"data":{"n":1}}'), '1');
    assert.deepEqual(await sub.nextJson(), { type: 'message', channel: 'news', data: { n: 1 } });

    assert.deepEqual(await publish(b, { channel: 'news', data: { n: 2 } }), { recipients: 0, forwarded: true });
    assert.deepEqual(await sub.nextJson(), { type: 'message', channel: 'news', data: { n: 2 } });

    const pub = await connect(c.url);
    pub.send({ action: 'publish', channel: 'news', data: { n: 3 }, id: 'p1' });
    assert.deepEqual(await pub.nextJson(), { type: 'published', channel: 'news', id: 'p1' });
    assert.deepEqual(await sub.nextJson(), { type: 'message', channel: 'news', data: { n: 3 } });

    // Published on A itself: delivered locally, not again through Redis.
    assert.deepEqual(await publish(a, { channel: 'news', data: { n: 4 } }), { recipients: 1, forwarded: true });
    assert.deepEqual(await sub.nextJson(), { type: 'message', channel: 'news', data: { n: 4 } });
    assert.deepEqual(await drain(sub), [], 'no duplicates');
    const subscriptions = async () => parsePrometheus(await (await fetch(`${a.adminUrl}/metrics`)).text())
      .value('herald_backplane_subscriptions');
    assert.equal(await subscriptions(), 4, 'broadcast, control, its own node channel, news');
    sub.ws.close();
    pub.ws.close();
    // Leaving the channel unsubscribes from Redis, and the gauge says so.
    await eventually(async () => (await subscriptions()) === 3);
    await eventually(() => redis.cli('PUBSUB', 'NUMSUB', 'herald:channel:news').endsWith('\n0'));
  });

  test('plain PUBLISH payloads: bare JSON, text, and the envelope\'s exclude', async () => {
    const [s1, id1] = await a.withConnectionId(() => connect(a.url));
    const s2 = await connect(c.url);
    for (const s of [s1, s2]) {
      s.send({ action: 'subscribe', channel: 'feed' });
      await s.nextJson();
    }
    redis.cli('PUBLISH', 'herald:channel:feed', '[1,2,3]');
    redis.cli('PUBLISH', 'herald:channel:feed', 'just text');
    redis.cli('PUBLISH', 'herald:channel:feed', JSON.stringify({ data: 'not for s1', exclude: id1 }));
    for (const expected of [[1, 2, 3], 'just text']) {
      assert.deepEqual((await s1.nextJson()).data, expected);
      assert.deepEqual((await s2.nextJson()).data, expected);
    }
    assert.equal((await s2.nextJson()).data, 'not for s1');
    assert.deepEqual(await drain(s1), []);
    s1.ws.close();
    s2.ws.close();
  });

  test('@connections on B for a connection held by A (the AWS SDK, unmodified)', async () => {
    const [client, id] = await a.withConnectionId(() => connect(a.url));
    const sdk = new ApiGatewayManagementApiClient({
      endpoint: `${b.adminUrl}/prod`,
      region: 'us-east-1',
      credentials: { accessKeyId: 'x', secretAccessKey: 'y' },
      maxAttempts: 1,
    });
    await sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'hello from B' }));
    assert.equal(await client.next(), 'hello from B');
    const info = await sdk.send(new GetConnectionCommand({ ConnectionId: id }));
    assert.equal(info.Identity.SourceIp, '127.0.0.1');
    assert.ok(info.ConnectedAt instanceof Date);
    await sdk.send(new DeleteConnectionCommand({ ConnectionId: id }));
    assert.equal((await client.closed).code, 1000);
    await eventually(async () => {
      try {
        await sdk.send(new GetConnectionCommand({ ConnectionId: id }));
        return false;
      } catch (e) {
        return e instanceof GoneException;
      }
    });
    // Herald's /v1 too.
    const [c2, id2] = await a.withConnectionId(() => connect(a.url));
    // The directory entry is written to Redis just after the open (within a millisecond or so).
    let one;
    await eventually(async () => {
      one = await (await fetch(`${b.adminUrl}/v1/connections/${id2}`)).json();
      return one.node !== undefined;
    });
    assert.equal(one.node, 'node-a');
    assert.deepEqual(await publish(b, { connection: id2, data: 'direct' }), { recipients: 1, forwarded: true });
    assert.deepEqual(await c2.nextJson(), { type: 'message', data: 'direct' });
    c2.ws.close();
  });
});

describe('users across nodes', () => {
  test('a user\'s connections on A and C get user publications once each and are kicked from B', async () => {
    const redis = await startRedis();
    const backend = await startBackend((r) => {
      const user = r.event?.queryStringParameters?.user;
      return { lambda: { statusCode: 200, headers: user ? { 'X-Herald-User-Id': user } : {} } };
    });
    const withConnect = { redis: { remote_timeout: '700ms' }, config: { integrations: { login: { type: 'http', url: `${backend.url}/c` } }, routes: { $connect: { integration: 'login' }, $default: { integration: 'echo', response: true } } } };
    const [a, b, c] = await Promise.all([node(redis, 'u-a', withConnect), node(redis, 'u-b', withConnect), node(redis, 'u-c', withConnect)]);
    try {
      const onA = await connect(`${a.url}/?user=alice`);
      const onC = await connect(`${c.url}/?user=alice`);
      const bob = await connect(`${c.url}/?user=bob`);
      // The user channels are subscribed shortly after the connections open.
      await eventually(async () => {
        const r = await publish(b, { user: 'alice', data: 'probe' });
        return r.forwarded && onA.messages.length > 0 && onC.messages.length > 0;
      });
      await drain(onA, 200);
      await drain(onC, 200);
      assert.deepEqual(await publish(b, { user: 'alice', data: { n: 1 } }), { recipients: 0, forwarded: true });
      assert.deepEqual(await onA.nextJson(), { type: 'message', data: { n: 1 } });
      assert.deepEqual(await onC.nextJson(), { type: 'message', data: { n: 1 } });
      assert.deepEqual(await drain(onA), []);
      assert.deepEqual(await drain(onC), []);
      assert.deepEqual(await drain(bob), []);
      // B holds none of alice's connections, and answers for the whole cluster.
      const list = await (await fetch(`${b.adminUrl}/v1/connections?user=alice`)).json();
      assert.equal(list.count, 2);
      assert.deepEqual(list.connections.map((x) => x.node).sort(), ['u-a', 'u-c']);
      assert.ok(list.connections.every((x) => x.userId === 'alice'));
      assert.ok(list.connections[0].connectedAt >= list.connections[1].connectedAt, 'newest first');
      assert.deepEqual(list.nodes.answered.slice().sort(), ['u-a', 'u-b', 'u-c']);
      assert.equal(list.nodes.answered[0], 'u-b', 'the asking node first');
      assert.deepEqual(list.nodes.silent, []);
      // Pages across nodes: one at a time, each connection once.
      const first = await (await fetch(`${b.adminUrl}/v1/connections?user=alice&limit=1`)).json();
      const second = await (await fetch(`${b.adminUrl}/v1/connections?user=alice&limit=1&offset=1`)).json();
      assert.equal(first.count, 2);
      assert.deepEqual([first.connections.length, second.connections.length], [1, 1]);
      assert.notEqual(first.connections[0].connectionId, second.connections[0].connectionId);
      assert.deepEqual(first.connections[0], list.connections[0]);
      // A frozen node is named silent after redis.remote_timeout; the others still answer.
      await c.freeze();
      let frozen;
      try {
        frozen = await (await fetch(`${b.adminUrl}/v1/connections?user=alice`)).json();
      } finally {
        c.thaw();
      }
      assert.deepEqual(frozen.nodes.silent, ['u-c'], JSON.stringify(frozen));
      assert.deepEqual(frozen.nodes.answered.slice().sort(), ['u-a', 'u-b']);
      assert.equal(frozen.count, 1);
      const kick = await (await fetch(`${b.adminUrl}/v1/users/alice/connections`, { method: 'DELETE' })).json();
      assert.equal(kick.closed, 2, 'one on A and one on C, none on B itself');
      assert.equal(kick.forwarded, true);
      assert.deepEqual(kick.nodes.answered.slice().sort(), ['u-a', 'u-b', 'u-c']);
      assert.deepEqual(kick.nodes.silent, []);
      assert.equal((await onA.closed).code, 1000);
      assert.equal((await onC.closed).code, 1000);
      assert.equal(bob.closeInfo, undefined);
      bob.ws.close();
    } finally {
      await Promise.all([a, b, c].map((h) => h.stop()));
      await backend.close();
      await redis.stop();
    }
  });
});

describe('failures', () => {
  test('kill -9 a node: its connections read as gone within the node TTL', async (t) => {
    const redis = await startRedis();
    const [a, b] = await Promise.all([node(redis, 'k-a'), node(redis, 'k-b')]);
    try {
      const [, id] = await a.withConnectionId(() => connect(a.url));
      const get = () => fetch(`${b.adminUrl}/@connections/${id}`).then((r) => r.status);
      await eventually(async () => (await get()) === 200);
      await a.kill('SIGKILL');
      const killedAt = Date.now();
      await eventually(async () => (await get()) === 410, 6000, 100);
      const gone = Date.now() - killedAt;
      t.diagnostic(`connection of the killed node read as gone after ${gone} ms (node_ttl 2 s)`);
      assert.ok(gone <= 2000 + 1500, `gone after ${gone} ms (node_ttl 2s)`);
    } finally {
      await b.stop();
      await redis.stop();
    }
  });

  test('Redis down at start: the node starts, reports not ready, and delivers locally', async () => {
    const redis = await startRedis();
    await redis.stop();  // a port where Redis is not
    // Not ready (by design) until Redis is there: do not wait for readiness.
    const h = await startHerald(
      { node_id: 'lonely', backplane: 'redis', redis: { url: redis.url, ...fast } },
      { ready: false },
    );
    try {
      const ready = await fetch(`${h.adminUrl}/readyz`);
      assert.equal(ready.status, 503);
      const body = await ready.json();
      assert.match(body.reasons.join(' '), /Redis backplane/);
      const s = await connect(h.url);
      s.send({ action: 'subscribe', channel: 'solo' });
      assert.equal((await s.nextJson()).type, 'subscribed');
      assert.deepEqual(await publish(h, { channel: 'solo', data: 'still here' }), { recipients: 1, forwarded: false });
      assert.equal((await s.nextJson()).data, 'still here');
      // Redis arrives: the node joins without a restart.
      await redis.start();
      await eventually(async () => (await fetch(`${h.adminUrl}/readyz`)).status === 200, 5000);
      s.ws.close();
    } finally {
      await h.stop();
      await redis.stop();
    }
  });

  test('Redis stopped and restarted during a steady stream: readiness drops, delivery resumes within 5 s, nobody crashes', async (t) => {
    const redis = await startRedis();
    const [a, b] = await Promise.all([node(redis, 's-a'), node(redis, 's-b')]);
    try {
      const sub = await connect(a.url);
      sub.send({ action: 'subscribe', channel: 'stream' });
      await sub.nextJson();
      const seen = [];
      sub.ws.on('message', (d) => seen.push({ at: Date.now(), n: JSON.parse(d).data }));
      let n = 0;
      let publishing = true;
      const publisher = (async () => {
        while (publishing) {
          await publish(b, { channel: 'stream', data: ++n }).catch(() => {});
          await sleep(20);
        }
      })();
      await eventually(() => seen.length >= 10);
      await redis.kill();
      const stoppedAt = Date.now();
      await eventually(async () => (await fetch(`${a.adminUrl}/readyz`)).status === 503, 3000);
      await eventually(async () => (await fetch(`${b.adminUrl}/readyz`)).status === 503, 3000);
      await sleep(1000);
      await redis.start();
      const back = Date.now();
      const firstAfter = await eventually(() => seen.find((s) => s.at > back), 5000, 20);
      assert.ok(firstAfter.at - back <= 5000, `delivery resumed ${firstAfter.at - back} ms after Redis came back`);
      t.diagnostic(`delivery resumed ${firstAfter.at - back} ms after Redis came back`);
      await eventually(() => seen.filter((s) => s.at > back).length >= 10, 5000);
      await eventually(async () => (await fetch(`${a.adminUrl}/readyz`)).status === 200, 5000);
      publishing = false;
      await publisher;
      // Messages published while Redis was away were not forwarded (at most once without history).
      const during = seen.filter((s) => s.at > stoppedAt && s.at < back);
      assert.ok(during.length <= 2, 'nothing travels while Redis is away');
      const metrics = await (await fetch(`${a.adminUrl}/metrics`)).text();
      assert.match(metrics, /herald_backplane_disconnects_total [1-9]/);
      assert.match(metrics, /herald_backplane_up 1/);
      for (const h of [a, b]) assert.equal(h.proc.exitCode, null, 'still running');
      sub.ws.close();
    } finally {
      const codes = await Promise.all([a.stop(), b.stop()]);
      for (const { code } of codes) assert.equal(code, 0);
      await redis.stop();
    }
  });

  test('a subscriber connection that is up but not delivering is caught by the pub/sub probe', async () => {
    const redis = await startRedis();
    const h = await node(redis, 'probe', { redis: { command_timeout: '10s' } });
    try {
      // Writes (PUBLISH included) are paused: connected, but nothing is delivered.
      redis.cli('CLIENT', 'PAUSE', '2500', 'WRITE');
      await eventually(async () => {
        const r = await fetch(`${h.adminUrl}/readyz`);
        return r.status === 503 && (await r.json()).reasons.join(' ').includes('probe');
      }, 4000, 50);
      await eventually(async () => (await fetch(`${h.adminUrl}/readyz`)).status === 200, 8000, 100);
      const metrics = await (await fetch(`${h.adminUrl}/metrics`)).text();
      assert.match(metrics, /herald_backplane_probe_failures_total [1-9]/);
    } finally {
      await h.stop();
      await redis.stop();
    }
  });
});
