// The admin API through the real binary: the unmodified AWS SDK for JavaScript v3 against
// @connections, API keys and SigV4, Herald's /v1 publish and query endpoints, and /metrics
// checked with a strict Prometheus text parser.
import { test, describe, before, after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import {
  ApiGatewayManagementApiClient,
  PostToConnectionCommand,
  GetConnectionCommand,
  DeleteConnectionCommand,
  GoneException,
  ForbiddenException,
  PayloadTooLargeException,
  LimitExceededException,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { startHerald, freePort } from './lib/herald.mjs';
import { connect, RawClient } from './lib/clients.mjs';
import { startBackend, eventually } from './lib/backend.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const API_KEY = 'test-key-0123456789abcdef';
const CREDENTIALS = { accessKeyId: 'HERALDTESTKEY', secretAccessKey: 'herald-test-secret-0123456789' };

const openWithId = (h) => h.withConnectionId(() => connect(h.url));

function sdk(h, { credentials = CREDENTIALS, stage = 'production' } = {}) {
  return new ApiGatewayManagementApiClient({
    endpoint: `${h.adminUrl}/${stage}`,
    region: 'eu-west-1',
    credentials,
    maxAttempts: 1,
  });
}

describe('AWS SDK v3 against @connections (SigV4)', () => {
  let backend;
  let h;
  before(async () => {
    backend = await startBackend();
    h = await startHerald({
      admin: { sigv4: { access_key_id: CREDENTIALS.accessKeyId, secret_access_key: CREDENTIALS.secretAccessKey } },
      websocket: { send_queue: { max_messages: 8, max_bytes: '1MiB', policy: 'drop' } },
      integrations: { backend: { type: 'http', url: `${backend.url}/events` } },
      routes: { $disconnect: { integration: 'backend' }, $default: { integration: 'echo', response: true } },
    });
  });
  after(async () => {
    await h.stop();
    await backend.close();
  });

  test('PostToConnection delivers the bytes as they are', async () => {
    const [c, id] = await openWithId(h);
    const client = sdk(h);
    await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from('{"hello":"from the sdk"}') }));
    assert.equal(await c.next(), '{"hello":"from the sdk"}');
    // A string works too, and bytes that are not UTF-8 arrive as a binary frame.
    await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'plain text' }));
    assert.equal(await c.next(), 'plain text');
    await client.send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.from([0xff, 0x00, 0xfe]) }));
    assert.deepEqual([...(await c.next())], [0xff, 0x00, 0xfe]);
    c.ws.close();
  });

  test('GetConnection returns connectedAt, identity and lastActiveAt', async () => {
    const [c, id] = await openWithId(h);
    const before = Date.now();
    c.send('activity');
    await c.next();
    const out = await sdk(h).send(new GetConnectionCommand({ ConnectionId: id }));
    assert.ok(out.ConnectedAt instanceof Date);
    assert.ok(out.LastActiveAt instanceof Date);
    assert.ok(out.LastActiveAt.getTime() >= out.ConnectedAt.getTime());
    assert.ok(Math.abs(out.LastActiveAt.getTime() - before) < 5000);
    assert.equal(out.Identity.SourceIp, '127.0.0.1');
    assert.equal(typeof out.Identity.UserAgent, 'string');
    assert.match(out.$metadata.requestId, /^[A-Za-z0-9_-]{16}$/);
    c.ws.close();
  });

  test('lastActiveAt and the close duration are exact to the millisecond', async () => {
    const [c, id] = await openWithId(h);
    await sleep(150);
    c.send('activity');
    await c.next();
    const out = await sdk(h).send(new GetConnectionCommand({ ConnectionId: id }));
    const active = out.LastActiveAt.getTime() - out.ConnectedAt.getTime();
    assert.ok(active >= 150, `a message 150 ms after connect is activity 150 ms after it (got ${active} ms)`);
    await sleep(100);
    await c.close();
    const line = await h.waitForLog((l) => l.event === 'connection.close' && l.connectionId === id);
    assert.ok(line.duration_ms >= 250, `a connection of 250 ms or more (got duration_ms=${line.duration_ms})`);
  });

  test('DeleteConnection closes the socket and $disconnect fires', async () => {
    const [c, id] = await openWithId(h);
    await sdk(h).send(new DeleteConnectionCommand({ ConnectionId: id }));
    const closed = await c.closed;
    assert.equal(closed.code, 1000);
    const e = await backend.waitForEvent('DISCONNECT', id);
    assert.equal(e.requestContext.disconnectStatusCode, 1000);
  });

  test('a stale id raises GoneException by name', async () => {
    const [c, id] = await openWithId(h);
    await c.close();
    await eventually(() => h.events('connection.close').some((l) => l.connectionId === id));
    for (const command of [
      new PostToConnectionCommand({ ConnectionId: id, Data: 'x' }),
      new GetConnectionCommand({ ConnectionId: id }),
      new DeleteConnectionCommand({ ConnectionId: id }),
    ]) {
      await assert.rejects(sdk(h).send(command), (e) => {
        assert.ok(e instanceof GoneException, `${e.name}: ${e.message}`);
        assert.equal(e.name, 'GoneException');
        assert.equal(e.$metadata.httpStatusCode, 410);
        return true;
      });
    }
  });

  test('wrong credentials raise ForbiddenException; nothing is executed', async () => {
    const [c, id] = await openWithId(h);
    const bad = sdk(h, { credentials: { accessKeyId: CREDENTIALS.accessKeyId, secretAccessKey: 'wrong-secret-wrong-secret' } });
    await assert.rejects(bad.send(new DeleteConnectionCommand({ ConnectionId: id })), (e) => e instanceof ForbiddenException);
    const stranger = sdk(h, { credentials: { accessKeyId: 'SOMEONEELSE', secretAccessKey: CREDENTIALS.secretAccessKey } });
    await assert.rejects(stranger.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'x' })), (e) => e instanceof ForbiddenException);
    assert.ok(await c.silentFor(200), 'nothing was delivered');
    assert.equal(c.closeInfo, undefined, 'nothing was closed');
    c.ws.close();
  });

  test('oversized data raises PayloadTooLargeException, a full queue LimitExceededException', async () => {
    const [c, id] = await openWithId(h);
    await assert.rejects(
      sdk(h).send(new PostToConnectionCommand({ ConnectionId: id, Data: Buffer.alloc(128 * 1024 + 1, 97) })),
      (e) => e instanceof PayloadTooLargeException && e.$metadata.httpStatusCode === 413,
    );
    c.ws.close();
    // A raw client that never reads: its queue (8 messages) fills once the socket buffers do.
    const [slow, slowId] = await h.withConnectionId(() => RawClient.open(h.clientPort));
    slow.pause();
    const client = sdk(h);
    let limited = null;
    for (let i = 0; i < 2000 && !limited; i++) {
      try {
        await client.send(new PostToConnectionCommand({ ConnectionId: slowId, Data: Buffer.alloc(64 * 1024, 98) }));
      } catch (e) {
        limited = e;
      }
    }
    assert.ok(limited instanceof LimitExceededException, `got ${limited?.name}`);
    assert.equal(limited.$metadata.httpStatusCode, 429);
    slow.destroy();
  });

  test('the stage prefix is optional and the id may arrive percent-encoded', async () => {
    const [c, id] = await openWithId(h);
    const noStage = new ApiGatewayManagementApiClient({ endpoint: h.adminUrl, region: 'us-east-1', credentials: CREDENTIALS, maxAttempts: 1 });
    await noStage.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'no stage' }));
    assert.equal(await c.next(), 'no stage');
    const deep = sdk(h, { stage: 'prod/v2' });
    await deep.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'deep stage' }));
    assert.equal(await c.next(), 'deep stage');
    c.ws.close();
  });
});

describe('@connections on the client listener (admin.client_listener_connections)', () => {
  let backend;
  let h;
  let port;
  // A handler written for API Gateway: the callback endpoint from the event's domainName and
  // stage, signed with SigV4 by the SDK. Only the scheme differs (this listener has no TLS;
  // examples/aws-chat runs the https:// form).
  const handler = async (r) => {
    const ctx = r.event?.requestContext;
    if (ctx?.eventType !== 'MESSAGE') return { lambda: { statusCode: 200 } };
    const client = new ApiGatewayManagementApiClient({
      endpoint: `http://${ctx.domainName}/${ctx.stage}`,
      region: 'eu-west-1',
      credentials: CREDENTIALS,
      maxAttempts: 1,
    });
    await client.send(new PostToConnectionCommand({ ConnectionId: ctx.connectionId, Data: `echo:${r.event.body}` }));
    const info = await client.send(new GetConnectionCommand({ ConnectionId: ctx.connectionId }));
    await client.send(new PostToConnectionCommand({ ConnectionId: ctx.connectionId, Data: `ip:${info.Identity.SourceIp}` }));
    return { lambda: { statusCode: 200 } };
  };
  before(async () => {
    backend = await startBackend(handler);
    port = await freePort();
    h = await startHerald({
      listen: `127.0.0.1:${port}`,
      routing: { stage: 'production', domain_name: `127.0.0.1:${port}` },
      admin: {
        client_listener_connections: true,
        api_keys: [API_KEY],
        sigv4: { access_key_id: CREDENTIALS.accessKeyId, secret_access_key: CREDENTIALS.secretAccessKey },
      },
      integrations: { backend: { type: 'http', url: `${backend.url}/events`, timeout: '5s' } },
      routes: { $default: { integration: 'backend' } },
    });
  });
  after(async () => {
    await h?.stop();
    await backend?.close();
  });

  test('a handler that calls back {domainName}/{stage} with the SDK works unchanged', async () => {
    const [c, id] = await openWithId(h);
    c.send('hello');
    assert.equal(await c.next(), 'echo:hello');
    assert.equal(await c.next(), 'ip:127.0.0.1');
    // DeleteConnection through the client listener too.
    const client = new ApiGatewayManagementApiClient({ endpoint: `http://127.0.0.1:${port}/production`, region: 'eu-west-1', credentials: CREDENTIALS, maxAttempts: 1 });
    await client.send(new DeleteConnectionCommand({ ConnectionId: id }));
    await c.closed;
    await assert.rejects(client.send(new GetConnectionCommand({ ConnectionId: id })), GoneException);
  });

  test('only SigV4 there: no API keys, no other admin path', async () => {
    const [c, id] = await openWithId(h);
    const post = (headers) => fetch(`${h.httpUrl}/production/@connections/${encodeURIComponent(id)}`, { method: 'POST', headers, body: 'x' });
    const unsigned = await post({});
    assert.equal(unsigned.status, 403);
    assert.equal(unsigned.headers.get('x-amzn-errortype'), 'ForbiddenException');
    assert.deepEqual(await unsigned.json(), { message: 'Missing Authentication Token' });
    // The key works on the admin listener, never on the client listener.
    assert.equal((await post({ authorization: `Bearer ${API_KEY}` })).status, 403);
    assert.equal((await post({ 'x-api-key': API_KEY })).status, 403);
    const adminPost = await fetch(`${h.adminUrl}/production/@connections/${encodeURIComponent(id)}`, { method: 'POST', headers: { 'x-api-key': API_KEY }, body: 'via admin' });
    assert.equal(adminPost.status, 200);
    assert.equal(await c.next(), 'via admin');
    // Wrong credentials: ForbiddenException, nothing delivered.
    const wrong = new ApiGatewayManagementApiClient({ endpoint: `${h.httpUrl}/production`, region: 'eu-west-1', credentials: { ...CREDENTIALS, secretAccessKey: 'not-the-secret-0123456789' }, maxAttempts: 1 });
    await assert.rejects(wrong.send(new PostToConnectionCommand({ ConnectionId: id, Data: 'no' })), ForbiddenException);
    // The rest of the admin API is not on the client listener, signed or not.
    for (const path of ['/v1/connections', '/metrics', '/v1/publish', '/console/']) {
      const r = await fetch(`${h.httpUrl}${path}`, { headers: { 'x-api-key': API_KEY } });
      assert.equal(r.status, 404, path);
    }
    assert.ok(await c.silentFor(200));
    c.ws.close();
  });
});

describe('API keys and Herald\'s /v1 API', () => {
  let h;
  const auth = { authorization: `Bearer ${API_KEY}` };
  const post = (path, body, headers = auth) =>
    fetch(`${h.adminUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  before(async () => {
    h = await startHerald({
      admin: { api_keys: [API_KEY, 'second-key-for-rotation-00'] },
      integrations: { who: { type: 'http', url: 'http://127.0.0.1:1/' } },
      routes: { $default: { integration: 'echo', response: true } },
    });
  });
  after(() => h.stop());

  test('without a key: 401 (Herald) or 403 (AWS shape); a wrong key 403; nothing happens', async () => {
    const none = await fetch(`${h.adminUrl}/v1/connections`);
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer realm="herald"');
    assert.equal((await none.json()).error, 'unauthorized');
    const wrong = await fetch(`${h.adminUrl}/v1/connections`, { headers: { authorization: 'Bearer not-the-key-000000' } });
    assert.equal(wrong.status, 403);
    const aws = await fetch(`${h.adminUrl}/prod/@connections/AAAAAAAAAAAAAAAAAAAA`);
    assert.equal(aws.status, 403);
    assert.equal(aws.headers.get('x-amzn-errortype'), 'ForbiddenException');
    assert.deepEqual(await aws.json(), { message: 'Missing Authentication Token' });
    const c = await connect(h.url);
    const refused = await post('/v1/publish', { broadcast: true, data: 'nope' }, {});
    assert.equal(refused.status, 401);
    assert.ok(await c.silentFor(200));
    c.ws.close();
    // Health, readiness and metrics need no key.
    for (const p of ['/healthz', '/readyz', '/metrics']) assert.equal((await fetch(`${h.adminUrl}${p}`)).status, 200);
  });

  test('both keys work (rotation), as Bearer or x-api-key', async () => {
    assert.equal((await fetch(`${h.adminUrl}/v1/connections`, { headers: auth })).status, 200);
    assert.equal((await fetch(`${h.adminUrl}/v1/connections`, { headers: { 'x-api-key': 'second-key-for-rotation-00' } })).status, 200);
  });

  test('publish to a channel reaches its subscribers in Herald\'s envelope', async () => {
    const a = await connect(h.url);
    const b = await connect(h.url);
    const other = await connect(h.url);
    a.send({ action: 'subscribe', channel: 'news', id: 1 });
    assert.deepEqual(await a.nextJson(), { type: 'subscribed', channel: 'news', id: 1 });
    b.send({ action: 'subscribe', channel: 'news' });
    assert.deepEqual(await b.nextJson(), { type: 'subscribed', channel: 'news' });
    other.send({ action: 'subscribe', channel: 'sports' });
    await other.nextJson();
    const r = await post('/v1/publish', { channel: 'news', data: { headline: 'Herald ships' }, id: 'pub-1' });
    assert.equal(r.status, 202);
    assert.deepEqual(await r.json(), { recipients: 2, forwarded: false });
    for (const c of [a, b]) {
      assert.deepEqual(await c.nextJson(), { type: 'message', channel: 'news', id: 'pub-1', data: { headline: 'Herald ships' } });
    }
    assert.ok(await other.silentFor(200));
    // Unsubscribed: no more messages.
    a.send({ action: 'unsubscribe', channel: 'news' });
    assert.deepEqual(await a.nextJson(), { type: 'unsubscribed', channel: 'news' });
    const r2 = await post('/v1/publish', { channel: 'news', data: 'second' });
    assert.deepEqual(await r2.json(), { recipients: 1, forwarded: false });
    assert.deepEqual(await b.nextJson(), { type: 'message', channel: 'news', data: 'second' });
    assert.ok(await a.silentFor(200));
    for (const c of [a, b, other]) c.ws.close();
  });

  test('subscribe errors are clear frames', async () => {
    const c = await connect(h.url);
    c.send({ action: 'subscribe', channel: 'has space' });
    const bad = await c.nextJson();
    assert.equal(bad.type, 'error');
    assert.equal(bad.code, 'invalid_channel');
    c.send({ action: 'subscribe' });
    assert.equal((await c.nextJson()).code, 'bad_request');
    c.ws.close();
  });

  test('publish to a connection, to everyone; exclude skips one', async () => {
    const [a, aId] = await openWithId(h);
    const [b, bId] = await openWithId(h);
    const r = await post('/v1/publish', { connection: aId, data: 'just you' });
    assert.deepEqual(await r.json(), { recipients: 1, forwarded: false });
    assert.deepEqual(await a.nextJson(), { type: 'message', data: 'just you' });
    assert.ok(await b.silentFor(200));
    const all = await post('/v1/publish', { broadcast: true, data: 'everyone', exclude: bId });
    assert.equal(all.status, 202);
    assert.equal((await all.json()).recipients, 1);
    assert.deepEqual(await a.nextJson(), { type: 'message', data: 'everyone' });
    assert.ok(await b.silentFor(200));
    const nobody = await post('/v1/publish', { user: 'nobody-here', data: 'x' });
    assert.deepEqual(await nobody.json(), { recipients: 0, forwarded: false });
    a.ws.close();
    b.ws.close();
  });

  test('batches are validated as a whole: one bad item and nothing is sent', async () => {
    const c = await connect(h.url);
    c.send({ action: 'subscribe', channel: 'batch' });
    await c.nextJson();
    const bad = await post('/v1/publish', [{ channel: 'batch', data: 1 }, { channel: 'batch' }]);
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /item 1: "data" is required/);
    assert.ok(await c.silentFor(200), 'the valid first item was not sent');
    const good = await post('/v1/publish', [{ channel: 'batch', data: 1 }, { channel: 'batch', data: 2 }]);
    assert.equal(good.status, 202);
    assert.deepEqual(await good.json(), { recipients: [1, 1], forwarded: false });
    assert.equal((await c.nextJson()).data, 1);
    assert.equal((await c.nextJson()).data, 2);
    c.ws.close();
  });

  test('strict validation with JSON errors', async () => {
    const cases = [
      ['not json', 400, 'bad_request'],
      [{ data: 1 }, 400, 'bad_request'],
      [{ channel: 'a', user: 'b', data: 1 }, 400, 'bad_request'],
      [{ channel: 'bad name', data: 1 }, 400, 'invalid_channel'],
      [{ channel: 'a', data: 1, extra: true }, 400, 'bad_request'],
      [{ connection: 'short', data: 1 }, 400, 'bad_request'],
      [{ broadcast: false, data: 1 }, 400, 'bad_request'],
      [{ channel: 'a', data: 'x'.repeat(130 * 1024) }, 413, 'payload_too_large'],
      [[], 400, 'bad_request'],
    ];
    for (const [body, status, code] of cases) {
      const r = await post('/v1/publish', body);
      assert.equal(r.status, status, JSON.stringify(body).slice(0, 80));
      assert.equal((await r.json()).error, code);
    }
    const tooBig = await post('/v1/publish', 'x'.repeat(2 * 1024 * 1024));
    assert.equal(tooBig.status, 413);
  });

  test('query and kick connections', async () => {
    const [c, id] = await openWithId(h);
    c.send({ action: 'subscribe', channel: 'ops' });
    await c.nextJson();
    const one = await fetch(`${h.adminUrl}/v1/connections/${id}`, { headers: auth });
    assert.equal(one.status, 200);
    const body = await one.json();
    assert.equal(body.connectionId, id);
    assert.deepEqual(body.channels, ['ops']);
    assert.equal(body.node, h.nodeId);
    assert.equal(body.sourceIp, '127.0.0.1');
    const list = await (await fetch(`${h.adminUrl}/v1/connections`, { headers: auth })).json();
    assert.ok(list.count >= 1);
    assert.ok(list.connections.some((x) => x.connectionId === id));
    const missing = await fetch(`${h.adminUrl}/v1/connections/AAAAAAAAAAAAAAAAAAAA`, { headers: auth });
    assert.equal(missing.status, 404);
    const del = await fetch(`${h.adminUrl}/v1/connections/${id}`, { method: 'DELETE', headers: auth });
    assert.equal(del.status, 204);
    assert.equal((await c.closed).code, 1000);
  });
});

describe('users', () => {
  test('connections named by $connect can be found and kicked by user', async () => {
    const backend = await startBackend((r) => {
      const q = r.event?.queryStringParameters ?? {};
      return { lambda: { statusCode: 200, headers: q.user ? { 'X-Herald-User-Id': q.user } : {} } };
    });
    const h = await startHerald({
      admin: { api_keys: [API_KEY] },
      integrations: { auth: { type: 'http', url: `${backend.url}/connect` } },
      routes: { $connect: { integration: 'auth' }, $default: { integration: 'echo', response: true } },
    });
    try {
      const a1 = await connect(`${h.url}/?user=alice`);
      const a2 = await connect(`${h.url}/?user=alice`);
      const b = await connect(`${h.url}/?user=bob`);
      const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
      const list = await (await fetch(`${h.adminUrl}/v1/connections?user=alice`, { headers })).json();
      assert.equal(list.count, 2);
      assert.ok(list.connections.every((x) => x.userId === 'alice'));
      assert.deepEqual(list.nodes, { answered: [h.nodeId], silent: [] }, 'one node: only this one answers');
      const pub = await fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', headers, body: JSON.stringify({ user: 'alice', data: { n: 1 } }) });
      assert.deepEqual(await pub.json(), { recipients: 2, forwarded: false });
      for (const c of [a1, a2]) assert.deepEqual(await c.nextJson(), { type: 'message', data: { n: 1 } });
      assert.ok(await b.silentFor(200));
      const kick = await fetch(`${h.adminUrl}/v1/users/alice/connections`, { method: 'DELETE', headers });
      assert.deepEqual(await kick.json(), { closed: 2, forwarded: false, nodes: { answered: [h.nodeId], silent: [] } });
      assert.equal((await a1.closed).code, 1000);
      assert.equal((await a2.closed).code, 1000);
      assert.equal(b.closeInfo, undefined);
      b.ws.close();
    } finally {
      await h.stop();
      await backend.close();
    }
  });
});

describe('/metrics', () => {
  test('parses as strict Prometheus text and counts what happened', async () => {
    const backend = await startBackend((r) => ({ lambda: { statusCode: 200, body: r.event.body } }));
    const h = await startHerald({
      integrations: { backend: { type: 'http', url: `${backend.url}/x` } },
      routes: { $default: { integration: 'backend', response: true } },
    });
    try {
      const c = await connect(h.url);
      for (let i = 0; i < 3; i++) {
        c.send(`m${i}`);
        await c.next();
      }
      c.send({ action: 'subscribe', channel: 'metrics' });
      await c.nextJson();
      await c.close(1000);
      await eventually(() => h.events('connection.close').length === 1);
      await fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: '{"channel":"metrics","data":1}' });
      const res = await fetch(`${h.adminUrl}/metrics`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
      const m = parsePrometheus(await res.text());
      const value = (name, labels = {}) => m.value(name, labels);
      assert.equal(m.type('herald_connections'), 'gauge');
      assert.equal(m.type('herald_connections_opened_total'), 'counter');
      assert.equal(m.type('herald_integration_duration_seconds'), 'histogram');
      assert.equal(value('herald_connections'), 0);
      assert.equal(value('herald_connections_opened_total'), 1);
      assert.equal(value('herald_connections_closed_total', { code: '1000' }), 1);
      assert.equal(value('herald_messages_received_total'), 4);
      assert.ok(value('herald_messages_sent_total') >= 4);
      assert.equal(value('herald_route_invocations_total', { route: '$default' }), 3);
      assert.equal(value('herald_route_failures_total', { route: '$default' }), 0);
      assert.equal(value('herald_integration_duration_seconds_count', { route: '$default' }), 3);
      assert.equal(value('herald_integration_duration_seconds_bucket', { route: '$default', le: '+Inf' }), 3);
      assert.equal(value('herald_admin_requests_total', { api: 'publish', status: '202' }), 1);
      assert.equal(value('herald_ready'), 1);
      assert.ok(value('process_resident_memory_bytes') > 1e6);
      assert.ok(value('process_open_fds') > 0);
    } finally {
      await h.stop();
      await backend.close();
    }
  });
});
