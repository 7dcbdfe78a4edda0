// Redis Cluster through the real binary: a 6-process cluster (3 primaries, 3 replicas) on
// loopback and two Herald nodes. The backplane and durability scenarios (channel fan-out over
// three shards exactly once, users, @connections across nodes, history resume, FCALL from a
// backend, presence, inbox), then a reshard of a slot range holding live channels while
// publishing, then kill -9 of a primary under publish load. The figures are printed as
// diagnostics; docs/redis.md reports them.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiGatewayManagementApiClient, PostToConnectionCommand, GetConnectionCommand } from '@aws-sdk/client-apigatewaymanagementapi';
import { startHerald } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startBackend, eventually } from './lib/backend.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';
import { startRedisCluster } from './lib/redis_cluster.mjs';
import { startRedis } from './lib/redis.mjs';
import { recorder, publishLoad, pollReadiness, readinessDip, tally } from './lib/failover.mjs';

// Redis Cluster's key slot: CRC16 (XMODEM) of the key's hash tag, modulo 16384.
function crc16(text) {
  let crc = 0;
  for (const byte of Buffer.from(text)) {
    crc ^= byte << 8;
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}
function slotOf(key) {
  const open = key.indexOf('{');
  if (open >= 0) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) key = key.slice(open + 1, close);
  }
  return crc16(key) % 16384;
}

function config(id, cluster, backendUrl) {
  return {
    node_id: id,
    backplane: 'redis',
    redis: {
      url: 'redis://cluster-seeds', // where the nodes are comes from redis.cluster.addresses
      cluster: { addresses: cluster.addresses.slice(0, 3) },
      node_ttl: '2s',
      directory_ttl: '4s',
      probe_interval: '300ms',
      probe_timeout: '1s',
      connect_timeout: '500ms',
      command_timeout: '1s',
      remote_timeout: '1s',
    },
    channels: { publish_action: 'publish', rules: [{ pattern: '*', publish: true }] },
    history: { rules: [{ pattern: 'hist.*', size: 100000, ttl: '1h' }] },
    inbox: { enabled: true },
    presence: { rules: [{ pattern: 'room.*', events: true }] },
    integrations: { login: { type: 'http', url: `${backendUrl}/c` } },
    routes: { $connect: { integration: 'login' } },
  };
}

async function publish(h, body) {
  const r = await fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify(body) });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

async function subscribe(c, channel, extra = {}) {
  c.send({ action: 'subscribe', channel, ...extra });
  for (;;) {
    const m = await c.nextJson();
    if (m.type === 'subscribed' || m.type === 'error') return m;
  }
}

// Every frame that arrives within `ms`.
async function drain(client, ms = 300) {
  await sleep(ms);
  const out = [];
  while (client.messages.length) out.push(JSON.parse(client.messages.shift()));
  return out;
}

async function metric(h, name) {
  return parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text()).value(name);
}

// `count` channel names `${prefix}N`, one on each primary in turn (by the slot of their tag).
function spread(cluster, prefix, count) {
  const primaries = cluster.primaries();
  const owner = (name) => primaries.findIndex((p) => p.slots.some(([a, b]) => slotOf(name) >= a && slotOf(name) <= b));
  const out = [];
  for (let i = 0; out.length < count; i++) {
    const name = `${prefix}${i}`;
    if (owner(name) === out.length % primaries.length) out.push(name);
  }
  return out;
}

describe('Redis Cluster: 3 primaries, 3 replicas, two nodes', () => {
  let cluster;
  let backend;
  let a;
  let b;
  before(async () => {
    cluster = await startRedisCluster();
    backend = await startBackend((r) => {
      const user = r.event?.queryStringParameters?.user;
      return { lambda: { statusCode: 200, headers: user ? { 'X-Herald-User-Id': user } : {} } };
    });
    [a, b] = await Promise.all([startHerald(config('rc-a', cluster, backend.url)), startHerald(config('rc-b', cluster, backend.url))]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await backend?.close?.();
    await cluster?.stop();
  });

  test('channels on all three shards: each publication arrives once on each node, from either node and from redis-cli -c', async () => {
    const channels = spread(cluster, 'news.', 3);
    const onA = await connect(a.url);
    const onB = await connect(b.url);
    for (const ch of channels) {
      assert.equal((await subscribe(onA, ch)).type, 'subscribed');
      assert.equal((await subscribe(onB, ch)).type, 'subscribed');
    }
    // Sharded: the channel is known to its own shard only.
    for (const ch of channels) {
      const owner = cluster.ownerOf(`herald:channel:{${ch}}`);
      assert.equal(owner.cli('PUBSUB', 'SHARDNUMSUB', `herald:channel:{${ch}}`).split('\n')[1], '2', ch);
    }
    const expected = [];
    for (const [i, ch] of channels.entries()) {
      assert.deepEqual((await publish(a, { channel: ch, data: { from: 'a', i } })).body, { recipients: 1, forwarded: true });
      assert.deepEqual((await publish(b, { channel: ch, data: { from: 'b', i } })).body, { recipients: 1, forwarded: true });
      // A backend, as docs/redis.md says: SPUBLISH to the tagged name, redis-cli -c follows MOVED.
      assert.equal(cluster.cliFollow('SPUBLISH', `herald:channel:{${ch}}`, JSON.stringify({ data: { from: 'cli', i } })), '2');
      expected.push(...['a', 'b', 'cli'].map((from) => ({ type: 'message', channel: ch, data: { from, i } })));
    }
    const key = (m) => JSON.stringify(m);
    for (const client of [onA, onB]) {
      await eventually(() => client.messages.length >= expected.length);
      const got = await drain(client);
      assert.deepEqual(got.map(key).sort(), expected.map(key).sort(), 'each once');
    }
    // Broadcast reaches every connection of both nodes.
    assert.equal((await publish(b, { broadcast: true, data: 'all' })).body.forwarded, true);
    assert.deepEqual((await onA.nextJson()).data, 'all');
    assert.deepEqual((await onB.nextJson()).data, 'all');
    assert.equal(await metric(a, 'herald_backplane_subscriptions'), 3 + channels.length);
    onA.close();
    onB.close();
    // Leaving a channel leaves its shard: SSUBSCRIBEs made and undone.
    await eventually(async () => (await metric(a, 'herald_backplane_subscriptions')) === 3);
    for (const ch of channels) {
      await eventually(() => cluster.ownerOf(`{${ch}}`).cli('PUBSUB', 'SHARDNUMSUB', `herald:channel:{${ch}}`).endsWith('\n0'));
    }
  });

  test('users, @connections (the AWS SDK) and the directory across nodes', async () => {
    const [alice, id] = await a.withConnectionId(() => connect(`${a.url}/?user=alice`));
    await eventually(async () => (await publish(b, { user: 'alice', data: 'probe' })).body.forwarded &&
      alice.messages.length > 0);
    await drain(alice, 200);
    assert.equal((await publish(b, { user: 'alice', data: { n: 1 } })).body.forwarded, true);
    assert.deepEqual(await alice.nextJson(), { type: 'message', data: { n: 1 } });
    assert.equal(cluster.cliFollow('SPUBLISH', 'herald:user:{alice}', '"you have mail"'), '1');
    assert.deepEqual(await alice.nextJson(), { type: 'message', data: 'you have mail' });
    const sdk = new ApiGatewayManagementApiClient({
      endpoint: `${b.adminUrl}/prod`, region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' }, maxAttempts: 1,
    });
    await eventually(async () => (await fetch(`${b.adminUrl}/v1/connections/${id}`)).status === 200);
    await sdk.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'hello from B' }));
    assert.equal(await alice.next(), 'hello from B');
    const info = await sdk.send(new GetConnectionCommand({ ConnectionId: id }));
    assert.equal(info.Identity.SourceIp, '127.0.0.1');
    const list = await (await fetch(`${b.adminUrl}/v1/connections?user=alice`)).json();
    assert.equal(list.count, 1);
    assert.deepEqual(list.nodes.answered.slice().sort(), ['rc-a', 'rc-b']);
    const nodes = await (await fetch(`${b.adminUrl}/v1/nodes`)).json();
    assert.deepEqual(nodes.nodes.map((n) => n.nodeId).sort(), ['rc-a', 'rc-b']);
    const kicked = await fetch(`${b.adminUrl}/v1/users/alice/connections`, { method: 'DELETE' });
    assert.equal(kicked.status, 200);
    assert.ok((await alice.closed).code >= 1000);
  });

  test('history: stored through either node or FCALL from a backend, resumed on the other node', async () => {
    const [ch] = spread(cluster, 'hist.r', 1);
    for (let i = 1; i <= 5; i++) assert.equal((await publish(b, { channel: ch, data: { i } })).body.offset, i);
    // The channel's keys share its slot: the function touched them in one call.
    const owner = cluster.ownerOf(`{${ch}}`);
    assert.equal(owner.cli('XLEN', `herald:history:{${ch}}`), '5');
    assert.equal(owner.cli('HGET', `herald:history-meta:{${ch}}`, 'offset'), '5');
    const c = await connect(a.url);
    const reply = await subscribe(c, ch, { since: 2 });
    assert.equal(reply.recovered, true);
    assert.deepEqual([await c.nextJson(), await c.nextJson(), await c.nextJson()].map((m) => m.offset), [3, 4, 5]);
    // A backend stores one with the channel as the call's key.
    const out = cluster.cliFollow('FCALL', 'herald_publish', '1', ch, '{"i":6}', 'm-6', 'key-6').split('\n');
    assert.equal(out[0], '6');
    const m = await c.nextJson();
    assert.deepEqual([m.offset, m.id, m.data], [6, 'm-6', { i: 6 }]);
    // The same idempotency key again: not stored twice.
    assert.equal(cluster.cliFollow('FCALL', 'herald_publish', '1', ch, '{"i":6}', 'm-6', 'key-6').split('\n')[2], '1');
    assert.equal((await publish(a, { channel: ch, data: { i: 7 }, idempotency_key: 'k7' })).body.offset, 7);
    assert.equal((await c.nextJson()).offset, 7);
    assert.ok(await c.silentFor(200));
    const api = await (await fetch(`${b.adminUrl}/v1/channels/${ch}/history?since=0`)).json();
    assert.deepEqual(api.messages.map((x) => x.offset), [1, 2, 3, 4, 5, 6, 7]);
    c.close();
  });

  test('history moved from a single server to the cluster as docs/redis.md says: clients resume across the move', async () => {
    const old = await startRedis();
    const single = await startHerald({ node_id: 'single', backplane: 'redis', redis: { url: old.url },
      history: { rules: [{ pattern: 'hist.*', size: 100000, ttl: '1h' }] } });
    try {
      const ch = 'hist.moving';
      let epoch;
      for (let i = 1; i <= 3; i++) ({ epoch } = (await publish(single, { channel: ch, data: { i } })).body);
      // The commands of "Moving a running deployment to a cluster".
      assert.equal(old.cli('COPY', `herald:history:${ch}`, `herald:history:{${ch}}`), '1');
      assert.equal(old.cli('COPY', `herald:history-meta:${ch}`, `herald:history-meta:{${ch}}`), '1');
      const owner = cluster.ownerOf(ch);
      assert.equal(old.cli('MIGRATE', '127.0.0.1', String(owner.port), '', '0', '5000', 'KEYS',
        `herald:history:{${ch}}`, `herald:history-meta:{${ch}}`), 'OK');
      assert.ok(Number(owner.cli('PTTL', `herald:history:{${ch}}`)) > 0, 'the TTL came along');
      const c = await connect(a.url);
      const reply = await subscribe(c, ch, { since: 1, epoch });
      assert.equal(reply.recovered, true, JSON.stringify(reply));
      assert.deepEqual([await c.nextJson(), await c.nextJson()].map((m) => [m.offset, m.data.i]), [[2, 2], [3, 3]]);
      const next = (await publish(b, { channel: ch, data: { i: 4 } })).body;
      assert.deepEqual([next.offset, next.epoch], [4, epoch]);
      assert.equal((await c.nextJson()).offset, 4);
      // A backend reads it with the channel as the call's key.
      const read = cluster.cliFollow('FCALL', 'herald_history', '1', ch, '0', '100').split('\n');
      assert.deepEqual(read.slice(0, 2), [epoch, '4']);
      c.close();
    } finally {
      await single.stop();
      await old.stop();
    }
  });

  test('presence across nodes, with join events', async () => {
    const [x, idX] = await a.withConnectionId(() => connect(`${a.url}/?user=xavier`));
    await subscribe(x, 'room.7');
    const [y, idY] = await b.withConnectionId(() => connect(`${b.url}/?user=yvonne`));
    await subscribe(y, 'room.7');
    assert.deepEqual(await x.nextJson(), { type: 'join', channel: 'room.7', info: { connectionId: idY, userId: 'yvonne' } });
    for (const h of [a, b]) {
      const p = await (await fetch(`${h.adminUrl}/v1/channels/room.7/presence`)).json();
      assert.deepEqual(p.members.map((m) => m.connectionId).sort(), [idX, idY].sort());
    }
    y.close();
    assert.deepEqual(await x.nextJson(), { type: 'leave', channel: 'room.7', info: { connectionId: idY, userId: 'yvonne' } });
    x.close();
  });

  test('inbox: stored through one node while offline, read and acknowledged on the other', async () => {
    for (let i = 1; i <= 3; i++) assert.equal((await publish(b, { user: 'zoe', data: { note: i }, store: true })).body.offset, i);
    const c = await connect(`${a.url}/?user=zoe`);
    assert.equal((await subscribe(c, '$inbox')).offset, 3);
    assert.deepEqual([await c.nextJson(), await c.nextJson(), await c.nextJson()].map((m) => m.data.note), [1, 2, 3]);
    c.send({ action: 'ack', channel: '$inbox', offset: 2, id: 'a1' });
    assert.deepEqual(await c.nextJson(), { type: 'acked', channel: '$inbox', id: 'a1', offset: 2 });
    c.close();
    const api = await (await fetch(`${b.adminUrl}/v1/channels/$inbox/history?user=zoe&since=0`)).json();
    assert.equal(api.acked, 2);
  });

  test('herald-bench --sharded (bench/cluster) publishes on the channel\'s shard: every delivery counted',
    { skip: !process.env.HERALD_BENCH_BIN && 'HERALD_BENCH_BIN is not set' }, async () => {
      const [ch] = spread(cluster, 'bench.t', 1);
      // Started on a node that does not serve the channel: the tool follows -MOVED.
      const elsewhere = cluster.nodes.find((n) => n.alive() && n.port !== cluster.ownerOf(`{${ch}}`).port);
      const { stdout } = await promisify(execFile)(process.env.HERALD_BENCH_BIN, ['fanout', '--channel', ch,
        '--port', String(a.clientPort), '--redis-port', String(elsewhere.port), '--sharded',
        '--connections', '20', '--messages', '10', '--json'], { timeout: 60000 });
      const r = JSON.parse(stdout);
      assert.equal(r.deliveries, 200);
      assert.equal(r.complete, 'yes');
    });

  test('reshard a slot range holding live channels while publishing: no subscriber left deaf', async (t) => {
    // Channels in the lowest slots of the first primary: `redis-cli --cluster reshard` moves a
    // source's slots from its lowest up.
    const source = cluster.primaries().sort((x, y) => x.slots[0][0] - y.slots[0][0])[0];
    const target = cluster.primaries().find((p) => p.id !== source.id);
    const first = source.slots[0][0];
    const moving = [];
    for (let i = 0; moving.length < 2; i++) {
      const name = `${moving.length ? 'hist' : 'live'}.m${i}`;
      if (slotOf(name) >= first && slotOf(name) < first + 200) moving.push(name);
    }
    const [plain, hist] = moving;
    const c = await recorder(a.url, [plain, hist]);
    const load = publishLoad(b, { plain, hist, everyMs: 10 });
    let took;
    try {
      await sleep(500);
      const started = Date.now();
      execFileSync('redis-cli', ['--cluster', 'reshard', `127.0.0.1:${source.port}`, '--cluster-from', source.id,
        '--cluster-to', target.id, '--cluster-slots', '200', '--cluster-yes'], { stdio: 'ignore', timeout: 60000 });
      took = Date.now() - started;
      await sleep(1000);
    } finally {
      await load.stop();
    }
    assert.equal(cluster.ownerOf(`{${plain}}`).port, target.port, 'the slot moved');
    assert.equal(cluster.ownerOf(`{${hist}}`).port, target.port, 'the slot moved');
    // The subscriptions followed: what is published now arrives.
    assert.equal((await publish(b, { channel: plain, data: { seq: 'after' } })).body.forwarded, true);
    await eventually(() => c.frames.some((f) => f.data?.seq === 'after'), 5000);
    await sleep(300);
    await c.close();
    const lost = tally(c.frames, load.sent, { plain, hist });
    t.diagnostic(`reshard of 200 slots (redis-cli --cluster reshard) took ${took} ms`);
    t.diagnostic(`plain channel: ${lost.plainForwarded} forwarded, ${lost.plainLost} lost`);
    t.diagnostic(`history channel: ${lost.stored} stored, ${lost.refused} refused, ${lost.missing.length} missing, ${lost.resyncs} resync(s)`);
    assert.equal(lost.missing.length, 0, `stored and never delivered: ${JSON.stringify(lost.missing.slice(0, 5))}`);
    assert.ok(await metric(a, 'herald_backplane_cluster_refreshes_total') >= 2);
  });

  test('kill -9 a primary under publish load: readiness drops, a replica is promoted, the nodes follow', async (t) => {
    const [plain] = spread(cluster, 'plain.k', 1);
    // The history channel on the primary that is killed.
    const victim = cluster.ownerOf(`{${plain}}`);
    let hist;
    for (let i = 0; !hist; i++) if (cluster.ownerOf(`{hist.k${i}}`)?.port === victim.port) hist = `hist.k${i}`;
    const c = await recorder(a.url, [plain, hist]);
    const load = publishLoad(b, { plain, hist });
    const ready = pollReadiness(a);
    let killedAt;
    let flowingAt;
    try {
      await sleep(1000);
      killedAt = Date.now();
      await victim.kill('SIGKILL');
      const after = (f) => f.type === 'message' && load.sent.find((s) => s.seq === f.data.seq)?.at > killedAt;
      await eventually(() => c.frames.some((f) => after(f) && f.channel === plain) &&
        c.frames.some((f) => after(f) && f.channel === hist), 30000);
      flowingAt = Math.max(...[plain, hist].map((ch) => c.frames.find((f) => after(f) && f.channel === ch).at));
      await sleep(1500);
    } finally {
      await load.stop();
      await sleep(1000);
      await ready.stop();
    }
    const { unready, readyAgain } = readinessDip(ready.readiness, killedAt);
    assert.notEqual(cluster.ownerOf(`{${hist}}`).port, victim.port, 'a replica serves the slots now');

    const lost = tally(c.frames, load.sent, { plain, hist });
    t.diagnostic(`kill -9 → /readyz 503 after ${unready.at - killedAt} ms, 200 again after ${readyAgain.at - killedAt} ms`);
    t.diagnostic(`kill -9 → deliveries flowing again on both channels after ${flowingAt - killedAt} ms`);
    t.diagnostic(`plain channel: ${lost.plainForwarded} forwarded, ${lost.plainLost} lost (at-most-once)`);
    t.diagnostic(`history channel: ${lost.stored} stored, ${lost.refused} refused (publisher told), ${lost.missing.length} missing, ${lost.resyncs} resync(s)`);
    assert.equal(lost.missing.length, 0, `stored and never delivered: ${JSON.stringify(lost.missing.slice(0, 5))}`);
    await c.close();
  });
});
