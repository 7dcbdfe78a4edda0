// Durable delivery on one node (the local backplane keeps history in memory): resume from an
// offset with nothing lost or repeated at the seam, recovered:false when history cannot cover
// the gap, idempotency keys, the history and presence APIs, the user inbox, presence events.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';

async function publish(h, body, headers = {}) {
  const r = await fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify(body), headers });
  return { status: r.status, body: await r.json() };
}

async function subscribe(c, channel, extra = {}) {
  c.send({ action: 'subscribe', channel, ...extra });
  for (;;) {
    const m = await c.nextJson();
    if (m.type === 'subscribed' || m.type === 'error') return m;
  }
}

describe('history on one node', () => {
  let h;
  before(async () => {
    h = await startHerald({
      history: { rules: [{ pattern: 'small.*', size: 5 }, { pattern: 'orders.*', size: 1000 }], max_recovery: 50 },
      channels: { publish_action: 'publish', rules: [{ pattern: 'orders.*', publish: true }] },
    });
  });
  after(() => h.stop());

  test('a subscriber resumes after an offset: the missed ones, then live, each once', async () => {
    const offsets = [];
    for (let i = 1; i <= 5; i++) {
      const r = await publish(h, { channel: 'orders.a', data: { n: i } });
      assert.equal(r.status, 202);
      assert.equal(r.body.offset, i);
      offsets.push(r.body);
    }
    const epoch = offsets[0].epoch;
    assert.ok(offsets.every((o) => o.epoch === epoch && o.duplicate === false));
    const c = await connect(h.url);
    const reply = await subscribe(c, 'orders.a', { since: 2, epoch });
    assert.deepEqual(reply, { type: 'subscribed', channel: 'orders.a', offset: 5, epoch, recovered: true });
    for (const n of [3, 4, 5]) {
      const m = await c.nextJson();
      assert.deepEqual(m, { type: 'message', channel: 'orders.a', offset: n, epoch, data: { n } });
    }
    await publish(h, { channel: 'orders.a', data: { n: 6 } });
    assert.equal((await c.nextJson()).offset, 6);
    assert.ok(await c.silentFor(100));
    // since as a string works too; a subscriber without since learns where the channel is.
    const d = await connect(h.url);
    assert.deepEqual(await subscribe(d, 'orders.a'), { type: 'subscribed', channel: 'orders.a', offset: 6, epoch });
    const e = await connect(h.url);
    assert.equal((await subscribe(e, 'orders.a', { since: '6' })).recovered, true);
    assert.ok(await e.silentFor(100));
    // Client publications to a history channel are stored too and answered with their offset.
    e.send({ action: 'publish', channel: 'orders.a', data: 'from a client', id: 'p1' });
    const published = await e.nextJson();
    const echoed = await e.nextJson();
    const [ack, msg] = published.type === 'published' ? [published, echoed] : [echoed, published];
    assert.deepEqual(ack, { type: 'published', channel: 'orders.a', id: 'p1', offset: 7, epoch });
    assert.equal(msg.offset, 7);
    assert.equal((await c.nextJson()).data, 'from a client');
    for (const x of [c, d, e]) await x.close();
  });

  test('no gap and no duplicate at the seam while publications keep coming', async () => {
    const total = 400;
    const publisher = (async () => {
      for (let i = 1; i <= total; i++) await publish(h, { channel: 'orders.seam', data: i });
    })();
    // Subscribe from 0 a little into the stream, with a replay and live traffic racing.
    while ((await (await fetch(`${h.adminUrl}/v1/channels/orders.seam/history`)).json()).offset < 30) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const c = await connect(h.url);
    c.send({ action: 'subscribe', channel: 'orders.seam', since: 0 });
    await publisher;
    const got = [];
    let reply;
    while (got.length < total) {
      const m = await c.nextJson();
      if (m.type === 'subscribed') reply = m;
      else got.push(m.offset);
    }
    assert.equal(reply.recovered, true);
    assert.deepEqual(got, Array.from({ length: total }, (_, i) => i + 1));
    assert.ok(await c.silentFor(100));
    await c.close();
  });

  test('recovered:false when the history cannot cover the gap', async () => {
    let epoch;
    for (let i = 1; i <= 8; i++) epoch = (await publish(h, { channel: 'small.x', data: i })).body.epoch;
    const c = await connect(h.url);
    // Trimmed (size 5 keeps 4..8): nothing replayed, the position is given.
    assert.deepEqual(await subscribe(c, 'small.x', { since: 1 }),
      { type: 'subscribed', channel: 'small.x', offset: 8, epoch, recovered: false });
    assert.ok(await c.silentFor(100));
    // Another epoch (the history the client knew is gone).
    const d = await connect(h.url);
    assert.equal((await subscribe(d, 'small.x', { since: 7, epoch: 'another-life' })).recovered, false);
    // Further back than history.max_recovery (50).
    for (let i = 0; i < 60; i++) await publish(h, { channel: 'orders.long', data: i });
    const e = await connect(h.url);
    assert.equal((await subscribe(e, 'orders.long', { since: 1 })).recovered, false);
    assert.ok(await e.silentFor(100));
    // Live messages still flow after a recovered:false.
    await publish(h, { channel: 'small.x', data: 9 });
    assert.equal((await c.nextJson()).offset, 9);
    // Bad offsets are refused with the stable error shape.
    const f = await connect(h.url);
    f.send({ action: 'subscribe', channel: 'small.x', since: -1, id: 3 });
    assert.deepEqual(await f.nextJson(), {
      type: 'error', code: 'bad_request', message: '"since" must be an offset (a non-negative integer)', channel: 'small.x', id: 3,
    });
    for (const x of [c, d, e, f]) await x.close();
  });

  test('idempotency keys: a retried publication is stored once', async () => {
    const first = await publish(h, { channel: 'orders.idem', data: 'x' }, { 'Idempotency-Key': 'order-17' });
    const again = await publish(h, { channel: 'orders.idem', data: 'x' }, { 'Idempotency-Key': 'order-17' });
    assert.equal(again.status, 202);
    assert.equal(again.body.offset, first.body.offset);
    assert.equal(again.body.duplicate, true);
    const batch = await publish(h, [
      { channel: 'orders.idem', data: 'y', idempotency_key: 'order-18' },
      { channel: 'orders.idem', data: 'x', idempotency_key: 'order-17' },
    ]);
    assert.equal(batch.status, 202);
    assert.deepEqual(batch.body.results.map((r) => [r.offset, r.duplicate]), [[2, false], [1, true]]);
    // Keys make sense only where something is stored.
    const bad = await publish(h, { channel: 'plain', data: 1, idempotency_key: 'k' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error, 'bad_request');
  });

  test('the history API pages through a channel', async () => {
    for (let i = 1; i <= 12; i++) await publish(h, { channel: 'orders.page', data: { i }, id: `m${i}` });
    const get = async (q) => {
      const r = await fetch(`${h.adminUrl}/v1/channels/orders.page/history${q}`);
      return { status: r.status, body: await r.json() };
    };
    const p1 = await get('?since=0&limit=5');
    assert.equal(p1.status, 200);
    assert.deepEqual(p1.body.messages.map((m) => m.offset), [1, 2, 3, 4, 5]);
    assert.equal(p1.body.messages[0].id, 'm1');
    assert.deepEqual(p1.body.messages[0].data, { i: 1 });
    assert.match(p1.body.messages[0].time, /^\d{4}-\d\d-\d\dT/);
    assert.equal(p1.body.more, true);
    assert.equal(p1.body.complete, true);
    assert.equal(p1.body.offset, 12);
    const p3 = await get('?since=10&limit=5');
    assert.deepEqual(p3.body.messages.map((m) => m.offset), [11, 12]);
    assert.equal(p3.body.more, false);
    assert.equal((await get(`?since=10&epoch=nope`)).body.complete, false);
    assert.equal((await get('?limit=0')).status, 400);
    const none = await fetch(`${h.adminUrl}/v1/channels/plain/history`);
    assert.equal(none.status, 404);
    assert.equal((await none.json()).error, 'no_history');
  });
});

describe('inbox and presence on one node', () => {
  let h;
  before(async () => {
    h = await startHerald({
      integrations: {
        auth: { type: 'mock', status: 200, headers: { 'X-Herald-User-Id': 'alice' } },
      },
      routes: { $connect: { integration: 'auth' } },
      inbox: { enabled: true, size: 100 },
      presence: { rules: [{ pattern: 'room.*', events: true }, { pattern: 'quiet.*' }] },
    });
  });
  after(() => h.stop());

  test('inbox: stored while offline, delivered on subscribe, redelivered until acknowledged', async () => {
    for (let i = 1; i <= 3; i++) {
      const r = await publish(h, { user: 'alice', data: { note: i }, store: true });
      assert.equal(r.status, 202);
      assert.equal(r.body.offset, i);
    }
    const c = await connect(h.url);
    const reply = await subscribe(c, '$inbox');
    assert.equal(reply.recovered, true);
    assert.equal(reply.offset, 3);
    const got = [await c.nextJson(), await c.nextJson(), await c.nextJson()];
    assert.deepEqual(got.map((m) => [m.channel, m.offset, m.data.note]), [['$inbox', 1, 1], ['$inbox', 2, 2], ['$inbox', 3, 3]]);
    c.send({ action: 'ack', channel: '$inbox', offset: 2, id: 'a1' });
    assert.deepEqual(await c.nextJson(), { type: 'acked', channel: '$inbox', id: 'a1', offset: 2 });
    // Live inbox messages arrive while subscribed.
    await publish(h, { user: 'alice', data: { note: 4 }, store: true });
    assert.equal((await c.nextJson()).offset, 4);
    await c.close();
    // The next connection gets what was not acknowledged (3 and 4), nothing else.
    const d = await connect(h.url);
    await subscribe(d, '$inbox');
    assert.deepEqual([(await d.nextJson()).offset, (await d.nextJson()).offset], [3, 4]);
    assert.ok(await d.silentFor(100));
    // The admin API reads an inbox too.
    const api = await (await fetch(`${h.adminUrl}/v1/channels/$inbox/history?user=alice&since=0`)).json();
    assert.equal(api.acked, 2);
    assert.equal(api.messages.length, 4);
    await d.close();
  });

  test('presence: members across the API and the client action; join and leave events', async () => {
    const [a, idA] = await h.withConnectionId(() => connect(h.url));
    await subscribe(a, 'room.1');
    const [b, idB] = await h.withConnectionId(() => connect(h.url));
    await subscribe(b, 'room.1');
    assert.deepEqual(await a.nextJson(), { type: 'join', channel: 'room.1', info: { connectionId: idB, userId: 'alice' } });
    const p = await (await fetch(`${h.adminUrl}/v1/channels/room.1/presence`)).json();
    assert.equal(p.connections, 2);
    assert.deepEqual(p.members.map((m) => m.connectionId).sort(), [idA, idB].sort());
    assert.deepEqual(p.users, ['alice']);
    b.send({ action: 'presence', channel: 'room.1', id: 9 });
    const q = await b.nextJson();
    assert.equal(q.type, 'presence');
    assert.equal(q.id, 9);
    assert.equal(q.members.length, 2);
    await b.close();
    assert.deepEqual(await a.nextJson(), { type: 'leave', channel: 'room.1', info: { connectionId: idB, userId: 'alice' } });
    const after1 = await (await fetch(`${h.adminUrl}/v1/channels/room.1/presence`)).json();
    assert.deepEqual(after1.members.map((m) => m.connectionId), [idA]);
    // Without events, nobody is told; channels without presence say so.
    const [c] = await h.withConnectionId(() => connect(h.url));
    await subscribe(c, 'quiet.1');
    const d = await connect(h.url);
    await subscribe(d, 'quiet.1');
    assert.ok(await c.silentFor(150));
    assert.equal((await fetch(`${h.adminUrl}/v1/channels/other/presence`)).status, 404);
    for (const x of [a, c, d]) await x.close();
  });
});

describe('inbox needs a user', () => {
  test('anonymous connections cannot use $inbox', async () => {
    const h = await startHerald({ inbox: { enabled: true } });
    try {
      const c = await connect(h.url);
      assert.equal((await subscribe(c, '$inbox')).code, 'forbidden');
      await c.close();
      const r = await publish(h, { channel: 'x', data: 1, store: true });
      assert.equal(r.status, 400);
    } finally {
      await h.stop();
    }
  });
});
