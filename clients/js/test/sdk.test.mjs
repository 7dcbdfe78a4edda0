// The SDK against the real herald binary: subscribe and publish, request/reply, resume after a
// dropped connection without loss or duplicates, resync when history was lost, heartbeats
// finding a dead link, a draining node, and the close codes after which it must not reconnect.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, State, HeraldError } from '../herald.js';
import { startHerald, freePort } from '../../../tests/integration/lib/herald.mjs';
import { eventually } from '../../../tests/integration/lib/backend.mjs';
import { Link } from '../../../tests/integration/lib/link.mjs';

const require = createRequire(new URL('../../../tests/integration/package.json', import.meta.url));
const NodeWs = require('ws');
// Node >= 22 has a global WebSocket; Node 20 has it behind --experimental-websocket. The SDK
// takes either; the `ws` package also tells handshake statuses.
const WebSocketImpl = globalThis.WebSocket ?? NodeWs;

const FAST = { initialDelay: 50, maxDelay: 400 };

function history(extra = {}) {
  return {
    routes: { $default: { integration: 'echo', response: true } },
    channels: { publish_action: 'publish', rules: [{ pattern: '*', publish: true }] },
    history: { rules: [{ pattern: 'feed.*', size: 1000, ttl: '1h' }] },
    ...extra,
  };
}

const publish = (h, channel, data) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify({ channel, data }) }).then((r) => r.json());

function collector() {
  const got = [];
  const handler = (data, meta) => got.push({ data, ...meta });
  return { got, handler };
}

function states(client) {
  const seen = [];
  client.on('state', (e) => seen.push(e.state));
  return seen;
}

describe('SDK basics', () => {
  let h;
  before(async () => {
    h = await startHerald(history());
  });
  after(() => h.stop());

  test('connects, subscribes, receives API publications with offsets, publishes, answers requests', async () => {
    const client = connect(h.url, { WebSocket: WebSocketImpl, reconnect: FAST });
    const seen = states(client);
    await client.opened;
    assert.equal(client.state, State.open);
    assert.deepEqual(seen, ['open']);
    const { got, handler } = collector();
    const reply = await client.subscribe('feed.basics', handler);
    assert.equal(reply.type, 'subscribed');
    await publish(h, 'feed.basics', { n: 1 });
    const mine = await client.publish('feed.basics', { n: 2 });
    assert.equal(mine.type, 'published');
    assert.equal(mine.offset, 2);
    await eventually(() => got.length === 2);
    assert.deepEqual(got.map((m) => [m.data.n, m.offset, m.channel]), [[1, 1, 'feed.basics'], [2, 2, 'feed.basics']]);
    assert.deepEqual(client.position('feed.basics'), { offset: 2, epoch: got[1].epoch });

    // Two-way route: the echo integration answers with the same body, id included.
    const answer = await client.send('anything', { question: 42 }, { reply: true });
    assert.equal(answer.question, 42);
    // One-way send resolves once written.
    await client.send('anything', { x: 1 });
    // Errors from Herald reject with their code.
    await assert.rejects(client.subscribe('bad channel!', () => {}), (e) => e instanceof HeraldError && e.code === 'invalid_channel');
    await client.unsubscribe('feed.basics');
    await publish(h, 'feed.basics', { n: 3 });
    await sleep(100);
    assert.equal(got.length, 2, 'nothing after unsubscribe');
    client.close();
    assert.equal(client.state, State.closed);
  });

  test('messages to the user or connection (no channel) arrive as "message" events', async () => {
    const client = connect(h.url, { WebSocket: WebSocketImpl });
    const [, id] = await h.withConnectionId(async () => {
      await client.opened;
      return client;
    });
    const messages = [];
    client.on('message', (m) => messages.push(m));
    await fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify({ connection: id, data: { hi: 1 } }) });
    await eventually(() => messages.length === 1);
    assert.deepEqual(messages[0].data.data, { hi: 1 });
    client.close();
  });

  test('reconnect() drops the socket and resumes at once', async () => {
    const client = connect(h.url, { WebSocket: WebSocketImpl });
    const { got, handler } = collector();
    await client.subscribe('feed.manual', handler);
    await publish(h, 'feed.manual', 'a');
    await eventually(() => got.length === 1);
    client.reconnect();
    await publish(h, 'feed.manual', 'b');
    await eventually(() => client.stats.reconnects === 1 && got.length === 2);
    assert.deepEqual(got.map((m) => m.data), ['a', 'b']);
    client.close();
  });

  test('subscribing before the connection opens is sent once it does', async () => {
    const client = connect(h.url, { WebSocket: WebSocketImpl });
    const { got, handler } = collector();
    const pending = client.subscribe('feed.early', handler);
    assert.equal(client.state, State.connecting);
    await pending;
    await publish(h, 'feed.early', 'x');
    await eventually(() => got.length === 1);
    client.close();
  });
});

describe('resume', () => {
  test('a dropped connection reconnects with backoff and resumes from the last offset: nothing lost, nothing twice', async () => {
    const h = await startHerald(history());
    const link = await Link.start(h.clientPort);
    try {
      const client = connect(link.url, { WebSocket: WebSocketImpl, reconnect: FAST });
      const seen = states(client);
      const { got, handler } = collector();
      await client.subscribe('feed.resume', handler);
      for (let i = 1; i <= 3; i++) await publish(h, 'feed.resume', i);
      await eventually(() => got.length === 3);
      for (let round = 0; round < 3; round++) {
        link.cut();
        // Published while the client is away: must come from history on resume.
        for (let i = 0; i < 5; i++) await publish(h, 'feed.resume', got.length + 100 * round + i);
        await eventually(() => client.state === State.open && client.stats.reconnects === round + 1, 5000);
      }
      await eventually(() => got.length === 18, 5000);
      assert.deepEqual(got.map((m) => m.offset), Array.from({ length: 18 }, (_, i) => i + 1), 'every offset once, in order');
      assert.ok(seen.includes(State.reconnecting));
      assert.equal(client.stats.reconnects, 3);
      client.close();
    } finally {
      await link.close();
      await h.stop();
    }
  });

  test('history lost (node restarted) → "resync" event, then live messages', async () => {
    const port = await freePort();
    let h = await startHerald(history({ listen: `127.0.0.1:${port}` }));
    const client = connect(`ws://127.0.0.1:${port}/`, { WebSocket: WebSocketImpl, reconnect: FAST });
    const { got, handler } = collector();
    const resyncs = [];
    client.on('resync', (e) => resyncs.push(e));
    await client.subscribe('feed.lost', handler);
    await publish(h, 'feed.lost', 'before');
    await eventually(() => got.length === 1);
    await h.stop();
    h = await startHerald(history({ listen: `127.0.0.1:${port}` }));
    try {
      await eventually(() => resyncs.length === 1, 8000);
      assert.equal(resyncs[0].channel, 'feed.lost');
      assert.equal(resyncs[0].since, 1);
      assert.equal(resyncs[0].reply.recovered, false);
      assert.notEqual(resyncs[0].reply.epoch, got[0].epoch, 'a new epoch');
      await publish(h, 'feed.lost', 'after');
      await eventually(() => got.length === 2);
      assert.equal(got[1].data, 'after');
      client.close();
    } finally {
      await h.stop();
    }
  });

  test('a draining node (1001) is left for another: reconnects, resumes, no loss', async () => {
    const { startRedis } = await import('../../../tests/integration/lib/redis.mjs');
    const redis = await startRedis();
    const cfg = history({ backplane: 'redis', redis: { url: redis.url }, shutdown: { accept_delay: '0s', close_window: '300ms', drain_timeout: '3s' } });
    const a = await startHerald(cfg);
    const b = await startHerald(cfg);
    const link = await Link.start(a.clientPort);
    try {
      const clients = [];
      const logs = [];
      for (let i = 0; i < 5; i++) {
        const c = connect(link.url, { WebSocket: WebSocketImpl, reconnect: FAST });
        const col = collector();
        await c.subscribe('feed.drain', col.handler);
        clients.push(c);
        logs.push(col.got);
      }
      const closes = [];
      clients[0].on('close', (e) => closes.push(e));
      await publish(a, 'feed.drain', 0);
      link.targetPort = b.clientPort; // the "load balancer" now sends new connections to B
      a.proc.kill('SIGTERM');
      for (let i = 1; i <= 10; i++) {
        await publish(b, 'feed.drain', i);
        await sleep(30);
      }
      await eventually(() => logs.every((g) => g.length === 11), 5000);
      for (const g of logs) assert.deepEqual(g.map((m) => m.data), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      assert.equal(closes[0].code, 1001);
      assert.equal(closes[0].willReconnect, true);
      assert.equal((await a.waitExit()).code, 0);
      for (const c of clients) c.close();
    } finally {
      await link.close();
      await b.stop();
      if (a.proc.exitCode === null) await a.stop();
      await redis.stop();
    }
  });
});

describe('dead connections and final close codes', () => {
  let h;
  before(async () => {
    h = await startHerald(history());
  });
  after(() => h.stop());

  test('heartbeats find a link that silently stopped carrying data, and the client reconnects', async () => {
    const link = await Link.start(h.clientPort);
    try {
      const client = connect(link.url, {
        WebSocket: WebSocketImpl,
        reconnect: FAST,
        heartbeat: { interval: 200, timeout: 300 },
      });
      const { got, handler } = collector();
      await client.subscribe('feed.hb', handler);
      await sleep(500); // heartbeats flow on a healthy link: no reconnect
      assert.equal(client.stats.heartbeatTimeouts, 0);
      link.freezeExisting();
      await publish(h, 'feed.hb', 'while frozen');
      await eventually(() => client.stats.heartbeatTimeouts === 1 && client.state === State.open, 3000);
      await eventually(() => got.length === 1, 3000);
      assert.equal(got[0].data, 'while frozen', 'resumed from history on the new connection');
      client.close();
    } finally {
      await link.close();
    }
  });

  test('deleted by the admin API (1000): closed, no reconnect', async () => {
    const client = connect(h.url, { WebSocket: WebSocketImpl, reconnect: FAST });
    const [, id] = await h.withConnectionId(async () => {
      await client.opened;
      return client;
    });
    const seen = states(client);
    const r = await fetch(`${h.adminUrl}/@connections/${id}`, { method: 'DELETE' });
    assert.equal(r.status, 204);
    await eventually(() => client.state === State.closed);
    await sleep(300);
    assert.deepEqual(seen, [State.closed]);
    assert.equal(client.stats.opens, 1);
  });

  test('messages sent while disconnected are queued and sent after reconnecting; the queue is bounded', async () => {
    const link = await Link.start(h.clientPort);
    try {
      const client = connect(link.url, { WebSocket: WebSocketImpl, reconnect: { initialDelay: 300, maxDelay: 300 }, maxQueued: 2 });
      await client.opened;
      const answers = [];
      client.on('message', (m) => answers.push(m.data));
      // Send the moment the client notices the drop (the reconnect may follow within ms).
      const sends = new Promise((resolve) => {
        const off = client.on('state', (e) => {
          if (e.state !== State.reconnecting) return;
          off();
          resolve([client.send('queued', { n: 1 }), client.send('queued', { n: 2 }), client.send('queued', { n: 3 })]);
        });
      });
      link.cut();
      const [one, two, three] = await sends;
      await one;
      await two;
      await assert.rejects(three, (e) => e.code === 'queue_full');
      await eventually(() => answers.length === 2, 3000);
      assert.deepEqual(answers.map((a) => a.n), [1, 2]);
      client.close();
    } finally {
      await link.close();
    }
  });
});

describe('authentication', () => {
  const secret = 'sdk-test-secret-0123456789abcdef';
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const token = (claims) => {
    const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
    return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
  };
  const now = () => Math.floor(Date.now() / 1000);
  let h;
  before(async () => {
    h = await startHerald({
      auth: { jwt: { keys: [{ kid: 'k', alg: 'HS256', secret_env: 'SDK_JWT_SECRET' }], required: true, close_on_expiry: true, leeway: '0s' } },
    }, { env: { SDK_JWT_SECRET: secret } });
  });
  after(() => h.stop());

  test('a refused handshake (401) is final: no reconnect loop', async () => {
    const client = connect(h.url, { WebSocket: NodeWs, token: 'not-a-jwt', reconnect: FAST });
    await assert.rejects(client.opened, (e) => e.code === 'closed');
    assert.equal(client.state, State.closed);
    await sleep(300);
    assert.equal(h.events('connection.unauthorized').length >= 1, true);
    assert.equal(h.logs.filter((l) => l.event === 'connection.unauthorized').length, 1, 'tried once');
  });

  test('token expiry (4001): final with a fixed token, refreshed and reconnected with a token function', async () => {
    const fixed = connect(h.url, { WebSocket: WebSocketImpl, token: token({ sub: 'ann', exp: now() + 1 }), reconnect: FAST });
    let calls = 0;
    const refreshing = connect(h.url, {
      WebSocket: WebSocketImpl,
      reconnect: FAST,
      token: () => {
        calls++;
        return token({ sub: 'bob', exp: now() + (calls === 1 ? 1 : 60) });
      },
    });
    await Promise.all([fixed.opened, refreshing.opened]);
    await eventually(() => fixed.state === State.closed, 4000);
    await eventually(() => refreshing.stats.reconnects === 1 && refreshing.state === State.open, 4000);
    assert.equal(calls, 2);
    refreshing.close();
  });
});
