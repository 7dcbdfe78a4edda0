// Durable delivery across a cluster, with failures injected while a sequence-numbered stream
// flows: clients that drop and resume on random nodes, a client moving between nodes, the
// subscriber connections cut (server-side gap fill), Redis stopped for 3 s (one server:
// restarted from its append-only file; Sentinel and a Redis Cluster: the primary, whose replica
// takes over), a node killed -9. Every client must receive every message exactly once, in
// order: on one server, over TLS, with Sentinel (the primary stopped, the replica promoted) and on
// a cluster. And the store-first pattern with the example worker.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { startHerald, makeCertificate, tempDir } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startRedis } from './lib/redis.mjs';
import { startRedisCluster } from './lib/redis_cluster.mjs';
import { startSentinelGroup } from './lib/sentinel.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const TOTAL = Number(process.env.HERALD_DURABILITY_MESSAGES ?? 10000);
const RATE = 1000; // messages per second, steady

// A subscriber that remembers its offset and, whenever its connection goes (on purpose or not),
// reconnects to a node and resumes from there, as the SDK does.
class Resumer {
  constructor(name, channel, pickUrl) {
    this.name = name;
    this.channel = channel;
    this.pickUrl = pickUrl;
    this.offset = 0;
    this.epoch = undefined;
    this.seqs = [];
    this.offsets = [];
    this.resumes = 0;
    this.notRecovered = [];
    this.retries = 0;
    this.stopped = false;
    this.nodes = new Set();
    this.trace = [];
    this.events = [];
  }

  start() {
    if (this.stopped) return;
    const url = this.pickUrl();
    this.nodes.add(url);
    const ws = new WebSocket(url, { handshakeTimeout: 5000 });
    this.ws = ws;
    this.events.push(['connect', url, this.offset, Date.now()]);
    ws.on('open', () => {
      this.events.push(['open', url, this.offset, Date.now()]);
      const sub = { action: 'subscribe', channel: this.channel, since: this.offset };
      if (this.epoch) sub.epoch = this.epoch;
      ws.send(JSON.stringify(sub));
    });
    ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString());
      if (m.type === 'subscribed') {
        this.resumes++;
        this.trace.push({ at: this.offset, url, reply: m, t: Date.now() });
        if (m.error) {
          // History out of reach right now (Redis down): try again shortly, from the same place.
          this.retries++;
          ws.terminate();
          return;
        }
        if (!m.recovered) this.notRecovered.push({ at: this.offset, reply: m });
        this.epoch = m.epoch;
        return;
      }
      if (m.type !== 'message') return;
      this.offsets.push(m.offset);
      this.seqs.push(m.data.seq);
      this.offset = m.offset;
      this.epoch = m.epoch;
    });
    ws.on('error', () => {});
    ws.on('close', (code) => {
      this.events.push(['close', url, code, this.offset, Date.now()]);
      if (this.ws === ws && !this.stopped) setTimeout(() => this.start(), 50 + Math.random() * 100);
    });
  }

  // Drops the connection abruptly (as a network loss would); the close handler resumes.
  drop() {
    this.ws?.terminate();
  }

  stop() {
    this.stopped = true;
    this.ws?.terminate();
  }
}

async function metricsOf(h) {
  const text = await (await fetch(`${h.adminUrl}/metrics`)).text();
  return parsePrometheus(text);
}

function metricValue(parsed, name) {
  let sum = 0;
  for (const [k, v] of parsed.series) if (k === name || k.startsWith(`${name}{`)) sum += v;
  return sum;
}

// One Redis server with an append-only file: stopped for 3 s and restarted from it. With `tls`,
// reached over rediss:// (the CA made here).
async function oneServer({ tls = false } = {}) {
  const certs = tls && makeCertificate(tempDir('herald-durability-tls-'));
  const redis = await startRedis({ persistence: true, tls: certs && { cert: certs.cert, key: certs.key } });
  return {
    config: tls ? { url: redis.tlsUrl, tls: { ca_file: certs.cert } } : { url: redis.url },
    cutSubscribers: () => redis.cli('CLIENT', 'KILL', 'TYPE', 'pubsub'),
    outage: async () => {
      await redis.stop(); // SIGTERM: redis-server syncs its append-only file and exits
      await sleep(3000);
      await redis.start();
    },
    historyLength: () => Number(redis.cli('XLEN', 'herald:history:seq.main')),
    stop: () => redis.stop(),
  };
}

// A Redis Cluster (3 primaries, 3 replicas): the primary serving the channel is stopped for 3 s,
// its replica takes over, and it comes back as a replica.
async function aCluster() {
  const cluster = await startRedisCluster();
  return {
    config: { url: 'redis://seeds', cluster: { addresses: cluster.addresses } },
    cutSubscribers: () => {
      for (const n of cluster.nodes) if (n.alive()) n.cli('CLIENT', 'KILL', 'TYPE', 'pubsub');
    },
    outage: async () => {
      const owner = cluster.ownerOf('{seq.main}');
      await owner.kill('SIGTERM');
      await sleep(3000);
      owner.start();
    },
    historyLength: () => Number(cluster.ownerOf('{seq.main}').cli('XLEN', 'herald:history:{seq.main}')),
    stop: () => cluster.stop(),
  };
}

// A primary, a replica and three Sentinels: the primary is stopped (SIGTERM: it hands its last
// writes to the replica first) for 3 s, Sentinel promotes the replica, the nodes follow.
async function sentinels() {
  const group = await startSentinelGroup();
  const primary = () => [group.primary, group.replica].find((r) => r.port === group.primaryPort());
  return {
    config: { url: 'redis://sentinel-named/0',
      sentinel: { addresses: group.addresses, master_name: group.masterName, timeout: '300ms' } },
    cutSubscribers: () => primary().cli('CLIENT', 'KILL', 'TYPE', 'pubsub'),
    outage: async () => {
      const old = primary();
      await old.stop();
      await sleep(3000);
      await old.start(); // Sentinel makes it a replica of the new primary
    },
    historyLength: () => Number(primary().cli('XLEN', 'herald:history:seq.main')),
    stop: () => group.stop(),
  };
}

for (const [title, makeRedis] of [['durable delivery under failures', oneServer],
  ['durable delivery under failures, over TLS', () => oneServer({ tls: true })],
  ['durable delivery under failures, with Sentinel', sentinels],
  ['durable delivery under failures, on a Redis Cluster', aCluster]]) {
describe(title, () => {
  let redis;
  let nodes;
  before(async () => {
    redis = await makeRedis();
    const cfg = {
      backplane: 'redis',
      redis: { ...redis.config, node_ttl: '2s', directory_ttl: '6s', reconnect_max_backoff: '300ms',
        probe_interval: '500ms', probe_timeout: '1s', command_timeout: '1s' },
      // A resume after the 3 s Redis outage may be thousands behind: replay up to 10,000.
      history: { rules: [{ pattern: 'seq.*', size: 20000, ttl: '1h' }], max_recovery: 10000 },
      websocket: { send_queue: { max_messages: 20000, max_bytes: '16MiB' } },
    };
    nodes = [await startHerald(cfg), await startHerald(cfg), await startHerald(cfg)];
  });
  after(async () => {
    for (const h of nodes) await h.stop().catch(() => {});
    await redis.stop();
  });

  test(`${TOTAL} sequenced messages reach every resuming client exactly once, in order`, { timeout: 240000 }, async () => {
    const [a, b, c] = nodes;
    let live = [a, b, c];
    const pick = () => live[Math.floor(Math.random() * live.length)].url;
    // Four clients that drop and resume on random nodes; one that stays on C until C dies;
    // one that moves from A to B once, mid-stream.
    const resumers = [];
    for (let i = 0; i < 4; i++) resumers.push(new Resumer(`random-${i}`, 'seq.main', pick));
    const onC = new Resumer('on-c', 'seq.main', () => (live.includes(c) ? c.url : pick()));
    let moverNode = a;
    const mover = new Resumer('mover', 'seq.main', () => moverNode.url);
    resumers.push(onC, mover);
    for (const r of resumers) r.start();
    await sleep(500);

    // The publisher: steady rate through node A's API, retrying (same idempotency key) when a
    // publication is not stored, as a backend should.
    let published = 0;
    let retried = 0;
    const t0 = Date.now();
    const publisher = (async () => {
      for (let seq = 1; seq <= TOTAL; seq++) {
        const due = t0 + (seq * 1000) / RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        for (;;) {
          let status = 0;
          try {
            const r = await fetch(`${a.adminUrl}/v1/publish`, {
              method: 'POST',
              headers: { 'Idempotency-Key': `seq-${seq}` },
              body: JSON.stringify({ channel: 'seq.main', data: { seq } }),
            });
            status = r.status;
            await r.arrayBuffer();
          } catch {
            status = 0;
          }
          if (status === 202) break;
          retried++;
          await sleep(50);
        }
        published = seq;
      }
    })();

    const at = (n) => (async () => { while (published < n) await sleep(10); })();
    const chaos = (async () => {
      // Random resumes all along.
      const dropper = (async () => {
        while (published < TOTAL - 200) {
          await sleep(150 + Math.random() * 350);
          resumers.slice(0, 4)[Math.floor(Math.random() * 4)].drop();
        }
      })();
      await at(Math.floor(TOTAL * 0.2));
      moverNode = b; // the mover's next connection goes to B
      mover.drop();
      await at(Math.floor(TOTAL * 0.3));
      // Every node's subscriber connection cut: what is published meanwhile is filled from
      // the streams by each node, not by the clients.
      redis.cutSubscribers();
      await at(Math.floor(TOTAL * 0.45));
      await redis.outage();
      await at(Math.floor(TOTAL * 0.7));
      live = [a, b];
      await c.kill('SIGKILL');
      await dropper;
    })();

    await publisher;
    await chaos;
    // Everyone catches up.
    const deadline = Date.now() + 30000;
    while (resumers.some((r) => r.offset < TOTAL) && Date.now() < deadline) await sleep(50);
    for (const r of resumers) r.stop();

    const expected = Array.from({ length: TOTAL }, (_, i) => i + 1);
    const report = resumers.map((r) => ({
      client: r.name, received: r.seqs.length, resumes: r.resumes, retries: r.retries, nodes: r.nodes.size,
    }));
    const recovered = [];
    for (const h of [a, b]) {
      const m = await metricsOf(h);
      recovered.push({
        gapFills: metricValue(m, 'herald_history_gap_fills_total'),
        recovered: metricValue(m, 'herald_history_recovered_total'),
        lost: metricValue(m, 'herald_history_lost_total'),
        replayed: metricValue(m, 'herald_history_replayed_total'),
        subscriberGapReads: metricValue(m, 'herald_history_subscriber_gap_reads_total'),
      });
    }
    console.log(JSON.stringify({ published, retried, seconds: (Date.now() - t0) / 1000, clients: report, nodes: recovered }));
    for (const r of resumers) {
      if (r.seqs.length !== TOTAL) {
        const gaps = [];
        for (let i = 1; i < r.offsets.length && gaps.length < 5; i++) {
          if (r.offsets[i] !== r.offsets[i - 1] + 1) gaps.push([r.offsets[i - 1], r.offsets[i]]);
        }
        // Around the first gap: the client's resumes and connections, and what the nodes logged
        // about history and the backplane meanwhile.
        const [from, to] = gaps[0] ?? [0, 0];
        const near = (o) => o >= from - 100 && o <= to + 100;
        const events = r.events.filter((e) => near(e[0] === 'close' ? e[3] : e[2]));
        const times = events.map((e) => e.at(-1));
        const t0 = Math.min(...times) - 2000;
        const t1 = Math.max(...times) + 2000;
        const logs = nodes.map((h, i) => h.logs.filter((l) => {
          const t = Date.parse(l.ts);
          return t >= t0 && t <= t1 && (l.level !== 'debug' || /history|gap|backplane|subscri/.test(l.event));
        }).map((l) => ({ node: i, ...l })));
        console.log(JSON.stringify({ client: r.name, gaps, offset: r.offset, trace: r.trace.filter((t) => near(t.at)), events, now: Date.now() }));
        console.log(JSON.stringify({ nodeLogs: logs.flat().slice(0, 400) }));
      }
      assert.deepEqual(r.notRecovered, [], `${r.name} was told it could not recover`);
      assert.equal(r.seqs.length, TOTAL, `${r.name} received ${r.seqs.length} of ${TOTAL}`);
      assert.deepEqual(r.seqs, expected, `${r.name}: every message exactly once, in order`);
      assert.deepEqual(r.offsets, expected, `${r.name}: offsets without gaps`);
      assert.ok(r.resumes >= 2, `${r.name} resumed`);
    }
    assert.ok(mover.nodes.size === 2, 'the mover used two nodes');
    assert.ok(onC.nodes.size >= 2, 'the client on C moved when C died');
    assert.ok(recovered.every((n) => n.lost === 0), 'no node lost a publication');
    assert.ok(recovered.some((n) => n.recovered > 0), 'a node filled a gap from the stream');
    // The history itself holds each publication once despite the retries.
    assert.equal(redis.historyLength(), TOTAL);
  });
});
}

describe('store-first routes', () => {
  let redis;
  let h;
  let worker;
  let workerLog = '';
  before(async () => {
    redis = await startRedis();
    h = await startHerald({
      backplane: 'redis',
      redis: { url: redis.url },
      integrations: { queue: { type: 'redis_stream' } },
      routes: { order: { integration: 'queue' } },
    });
    const dir = fileURLToPath(new URL('../../examples/store-first-worker/', import.meta.url));
    worker = spawn(process.execPath, ['worker.mjs'], {
      cwd: dir,
      env: { ...process.env, REDIS_URL: redis.url, STREAM: 'herald:queue:order', HERALD_ADMIN: h.adminUrl, CONSUMER: 'w1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout.on('data', (d) => (workerLog += d));
    worker.stderr.on('data', (d) => (workerLog += d));
  });
  after(async () => {
    worker.kill('SIGTERM');
    await new Promise((r) => (worker.exitCode !== null ? r() : worker.on('exit', r)));
    await h.stop();
    await redis.stop();
  });

  test('messages are acknowledged at once, stored, processed by the worker, answered to their sender', { timeout: 60000 }, async () => {
    const perClient = 100;
    const clients = [];
    for (let i = 0; i < 3; i++) clients.push(await connect(h.url));
    const acks = clients.map(() => new Map());
    const results = clients.map(() => new Map());
    const done = clients.map((c, i) => (async () => {
      while (acks[i].size < perClient || results[i].size < perClient) {
        const m = await c.nextJson(20000);
        if (m.type === 'ack') acks[i].set(m.requestId, m);
        else if (m.type === 'message') results[i].set(m.data.requestId, m.data);
        else throw new Error(`unexpected ${JSON.stringify(m)}`);
      }
    })());
    for (let n = 0; n < perClient; n++) {
      clients.forEach((c, i) => c.send({ action: 'order', item: `item-${i}`, qty: n + 1, price: 2.5 }));
    }
    await Promise.all(done).catch((e) => {
      throw new Error(`${e.message}; worker log:\n${workerLog}`);
    });
    for (let i = 0; i < clients.length; i++) {
      // Every request acknowledged and answered, to the connection that sent it.
      assert.deepEqual([...results[i].keys()].sort(), [...acks[i].keys()].sort());
      for (const r of results[i].values()) {
        assert.equal(r.ok, true);
        assert.equal(r.item, `item-${i}`);
        assert.equal(r.total, r.qty * 2.5);
      }
    }
    assert.equal(Number(redis.cli('XLEN', 'herald:queue:order')), 3 * perClient);
    // Nothing left pending: every entry was processed and acknowledged by the worker.
    const pending = redis.cli('XPENDING', 'herald:queue:order', 'workers').split('\n')[0];
    assert.equal(Number(pending), 0);
    const event = JSON.parse(redis.cli('--raw', 'XRANGE', 'herald:queue:order', '-', '+', 'COUNT', '1').split('\n')[2]);
    assert.equal(event.requestContext.routeKey, 'order');
    assert.equal(event.requestContext.eventType, 'MESSAGE');
    for (const c of clients) await c.close();
  });

  test('when Redis is down the client is told its message was not stored', async () => {
    const c = await connect(h.url);
    await redis.kill();
    try {
      // Wait until the node noticed.
      const deadline = Date.now() + 5000;
      let reply;
      while (Date.now() < deadline) {
        c.send({ action: 'order', item: 'x' });
        reply = await c.nextJson();
        if (reply.type === 'error') break;
        await sleep(100);
      }
      assert.equal(reply.type, 'error');
      assert.equal(reply.code, 'unavailable');
      assert.ok(reply.requestId);
    } finally {
      await redis.start();
      await c.close();
    }
  });
});
