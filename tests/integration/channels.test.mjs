// Channel access through the real binary: open channels, claims from the $connect answer's
// context, a backend that decides, deny, {user} channels, and the client publish action.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startBackend } from './lib/backend.mjs';

describe('channel rules', () => {
  let backend;
  let h;
  before(async () => {
    backend = await startBackend((r) => {
      const ev = r.event;
      const type = ev?.requestContext?.eventType;
      if (type === 'CONNECT') {
        const q = ev.queryStringParameters ?? {};
        const answer = { statusCode: 200, headers: {} };
        if (q.user) answer.headers['X-Herald-User-Id'] = q.user;
        if (q.channels) answer.context = { channels: q.channels, tier: 'gold', level: 3 };
        if (q.user) answer.principalId = q.user;
        return { lambda: answer };
      }
      if (type === 'SUBSCRIBE' || type === 'PUBLISH') {
        // The gate: allow vault channels to users whose id starts with "admin".
        const user = ev.requestContext.authorizer?.principalId ?? '';
        return { status: user.startsWith('admin') ? 200 : 403 };
      }
      if (type === 'MESSAGE') return { lambda: { statusCode: 200, body: JSON.stringify(ev.requestContext.authorizer ?? null) } };
      return { lambda: { statusCode: 200 } };
    });
    h = await startHerald({
      integrations: {
        app: { type: 'http', url: `${backend.url}/app` },
        gate: { type: 'http', url: `${backend.url}/gate`, mode: 'http' },
      },
      routes: { $connect: { integration: 'app' }, whoami: { integration: 'app', response: true } },
      channels: {
        publish_action: 'publish',
        default_access: 'deny',
        rules: [
          { pattern: 'public.*' },
          { pattern: 'chat.*', publish: true },
          { pattern: 'user.{user}' },
          { pattern: 'orders.*', access: 'claim' },
          { pattern: 'vault.*', access: 'integration', integration: 'gate', publish: true },
          { pattern: 'closed.*', access: 'deny' },
        ],
      },
    });
  });
  after(async () => {
    await h.stop();
    await backend.close();
  });

  async function sub(c, channel) {
    c.send({ action: 'subscribe', channel });
    return c.nextJson();
  }

  test('open, deny, default deny and {user} channels', async () => {
    const c = await connect(`${h.url}/?user=alice`);
    assert.equal((await sub(c, 'public.news')).type, 'subscribed');
    const closed = await sub(c, 'closed.x');
    assert.equal(closed.type, 'error');
    assert.equal(closed.code, 'forbidden');
    assert.equal((await sub(c, 'nothing.matches')).code, 'forbidden');
    assert.equal((await sub(c, 'user.alice')).type, 'subscribed');
    assert.equal((await sub(c, 'user.bob')).code, 'forbidden');
    const denied = await h.waitForLog((l) => l.event === 'channel.denied' && l.channel === 'user.bob');
    assert.equal(denied.action, 'subscribe');
    c.ws.close();
  });

  test('claims come from the $connect answer\'s context and reach later events as requestContext.authorizer', async () => {
    const c = await connect(`${h.url}/?user=bob&channels=orders.42,orders.{user}`);
    assert.equal((await sub(c, 'orders.42')).type, 'subscribed');
    assert.equal((await sub(c, 'orders.bob')).type, 'subscribed');
    assert.equal((await sub(c, 'orders.43')).code, 'forbidden');
    c.send({ action: 'whoami' });
    // Values are strings, as API Gateway passes an authorizer's context.
    assert.deepEqual(await c.nextJson(), { principalId: 'bob', channels: 'orders.42,orders.{user}', tier: 'gold', level: '3' });
    const anon = await connect(h.url);
    assert.equal((await sub(anon, 'orders.42')).code, 'forbidden');
    c.ws.close();
    anon.ws.close();
  });

  test('an integration decides for its channels, with a SUBSCRIBE event naming the channel', async () => {
    const admin = await connect(`${h.url}/?user=admin-1`);
    const user = await connect(`${h.url}/?user=carol`);
    assert.equal((await sub(admin, 'vault.keys')).type, 'subscribed');
    assert.equal((await sub(user, 'vault.keys')).code, 'forbidden');
    const asks = backend.requests.filter((r) => r.event?.requestContext?.eventType === 'SUBSCRIBE');
    assert.equal(asks.length, 2);
    assert.equal(asks[0].event.channel, 'vault.keys');
    assert.equal(asks[0].event.requestContext.routeKey, '$subscribe');
    admin.ws.close();
    user.ws.close();
  });

  test('clients publish where a rule says publish: true', async () => {
    const a = await connect(h.url);
    const b = await connect(h.url);
    assert.equal((await sub(b, 'chat.room')).type, 'subscribed');
    a.send({ action: 'publish', channel: 'chat.room', data: { text: 'hi' }, id: 7 });
    assert.deepEqual(await a.nextJson(), { type: 'published', channel: 'chat.room', id: 7 });
    assert.deepEqual(await b.nextJson(), { type: 'message', channel: 'chat.room', data: { text: 'hi' } });
    a.send({ action: 'publish', channel: 'public.news', data: 'no' });
    assert.equal((await a.nextJson()).code, 'forbidden');
    a.send({ action: 'publish', channel: 'chat.room' });
    assert.equal((await a.nextJson()).code, 'bad_request');
    // Publishing to a vault channel asks the gate with a PUBLISH event.
    const admin = await connect(`${h.url}/?user=admin-2`);
    admin.send({ action: 'publish', channel: 'vault.keys', data: 1 });
    assert.equal((await admin.nextJson()).type, 'published');
    const ask = backend.requests.find((r) => r.event?.requestContext?.eventType === 'PUBLISH');
    assert.equal(ask.event.body, '1');
    for (const c of [a, b, admin]) c.ws.close();
  });
});

describe('fan-out across workers', () => {
  let h;
  before(async () => {
    h = await startHerald({ threads: 2, channels: { default_access: 'open' } });
  });
  after(async () => {
    await h.stop();
  });

  const metric = async (name) => {
    const text = await (await fetch(`${h.adminUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return Number(line.split(' ')[1]);
  };
  const publish = async (body) => {
    const r = await fetch(`${h.adminUrl}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 202, await r.text());
  };

  test('a channel publication wakes only the workers that have its subscribers', async () => {
    const c = await connect(h.url);
    c.send({ action: 'subscribe', channel: 'lonely' });
    assert.equal((await c.nextJson()).type, 'subscribed');
    const start = await metric('herald_publications_total');
    for (let i = 0; i < 5; i++) await publish({ channel: 'lonely', data: { i } });
    for (let i = 0; i < 5; i++) assert.deepEqual((await c.nextJson()).data, { i });
    // One subscriber, two workers: each publication was handled by one worker only.
    assert.equal(await metric('herald_publications_total') - start, 5);
    await publish({ channel: 'nobody-here', data: 1 });
    assert.equal(await metric('herald_publications_total') - start, 5);
    // A broadcast goes to every worker.
    await publish({ broadcast: true, data: 'all' });
    assert.equal((await c.nextJson()).data, 'all');
    assert.equal(await metric('herald_publications_total') - start, 7);
    // After the last subscriber leaves, the channel reaches no worker.
    c.send({ action: 'unsubscribe', channel: 'lonely' });
    await c.nextJson();
    await publish({ channel: 'lonely', data: 'late' });
    assert.equal(await metric('herald_publications_total') - start, 7);
    await c.silentFor(100);
    // Frames per write: every message sent took a write call at most.
    assert.ok(await metric('herald_socket_writes_total') >= 1);
    assert.ok(await metric('herald_socket_writes_total') <= await metric('herald_messages_sent_total') + 10);
    c.close();
  });
});
