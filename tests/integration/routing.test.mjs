// Routes and integrations through the real binary with a real HTTP backend: API Gateway event
// shapes, $connect decisions, $disconnect exactly once, route selection, two-way routes,
// integration failures, rate limits, in-flight bounds and keep-alive reuse.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startHerald, freePort } from './lib/herald.mjs';
import { connect, handshakeStatus, RawClient, OP } from './lib/clients.mjs';
import { startBackend, eventually } from './lib/backend.mjs';

const ID = /^[A-Za-z0-9_-]{20}$/;
const REQUEST_ID = /^[A-Za-z0-9_-]{16}$/;
const CLF = /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/;

const closedPort = freePort;  // a port nothing listens on

function backendConfig(backend, routes, extra = {}) {
  return {
    integrations: {
      backend: { type: 'http', url: `${backend.url}/events`, mode: 'lambda-proxy', timeout: '1s', ...(extra.integration ?? {}) },
      ...(extra.integrations ?? {}),
    },
    routes,
    ...(extra.config ?? {}),
  };
}

describe('API Gateway events and $connect', () => {
  let backend;
  let h;
  before(async () => {
    backend = await startBackend();
    h = await startHerald(
      backendConfig(backend, {
        $connect: { integration: 'backend' },
        $disconnect: { integration: 'backend' },
        $default: { integration: 'backend', response: true },
        sendmessage: { integration: 'backend' },
      }, { config: { routing: { stage: 'production', api_id: 'chatapi' } } }),
    );
  });
  after(async () => {
    await h.stop();
    await backend.close();
  });

  test('CONNECT: the event is shaped like API Gateway\'s, field by field', async () => {
    const c = await connect(`${h.url}/?token=abc&a=1&a=2&sp%20ace=x%2By`, { headers: { 'X-Test': 'yes' }, protocols: [] });
    const req = await backend.waitFor((r) => r.event?.requestContext?.eventType === 'CONNECT');
    const e = req.event;
    const ctx = e.requestContext;
    assert.equal(ctx.routeKey, '$connect');
    assert.equal(ctx.eventType, 'CONNECT');
    assert.match(ctx.connectionId, ID);
    assert.match(ctx.requestId, REQUEST_ID);
    assert.equal(ctx.extendedRequestId, ctx.requestId);
    assert.match(ctx.requestTime, CLF);
    assert.equal(typeof ctx.requestTimeEpoch, 'number');
    assert.ok(Math.abs(ctx.requestTimeEpoch - Date.now()) < 5000);
    assert.equal(typeof ctx.connectedAt, 'number');
    assert.equal(ctx.messageDirection, 'IN');
    assert.equal(ctx.stage, 'production');
    assert.equal(ctx.apiId, 'chatapi');
    assert.equal(ctx.domainName, '127.0.0.1', 'the Host header without its port, as AWS');
    const ua = req.event.headers['User-Agent'];
    assert.deepEqual(ctx.identity, ua ? { sourceIp: '127.0.0.1', userAgent: ua } : { sourceIp: '127.0.0.1' });
    assert.equal(ctx.messageId, undefined);
    assert.equal(e.headers['X-Test'] ?? e.headers['x-test'], 'yes');
    assert.ok(e.headers['Sec-WebSocket-Key'] || e.headers['sec-websocket-key']);
    assert.deepEqual(e.multiValueHeaders['X-Test'] ?? e.multiValueHeaders['x-test'], ['yes']);
    assert.deepEqual(e.queryStringParameters, { token: 'abc', a: '2', 'sp ace': 'x+y' });
    assert.deepEqual(e.multiValueQueryStringParameters, { token: ['abc'], a: ['1', '2'], 'sp ace': ['x+y'] });
    assert.equal(e.isBase64Encoded, false);
    // Herald's own headers on the integration request, for backends that do not parse events.
    assert.equal(req.headers['x-herald-connection-id'], ctx.connectionId);
    assert.equal(req.headers['x-herald-event-type'], 'CONNECT');
    assert.equal(req.headers['x-herald-route-key'], '$connect');
    assert.equal(req.headers['content-type'], 'application/json');
    assert.equal(req.method, 'POST');
    assert.equal(req.url, '/events');
    c.ws.close();
  });

  test('MESSAGE: custom routes by $request.body.action; one-way routes send nothing back', async () => {
    const c = await connect(h.url);
    const text = JSON.stringify({ action: 'sendmessage', data: 'hi there' });
    c.send(text);
    const e = await backend.waitForEvent('MESSAGE');
    assert.equal(e.requestContext.routeKey, 'sendmessage');
    assert.equal(e.requestContext.eventType, 'MESSAGE');
    assert.match(e.requestContext.messageId, REQUEST_ID);
    assert.notEqual(e.requestContext.messageId, e.requestContext.requestId);
    assert.equal(e.body, text);
    assert.equal(e.isBase64Encoded, false);
    assert.equal(e.headers, undefined);
    assert.ok(await c.silentFor(300), 'a one-way route must not answer');
    c.ws.close();
  });

  test('$default is two-way here: the Lambda proxy body comes back; non-JSON goes to $default', async () => {
    backend.setHandler((r) => {
      const ev = r.event?.requestContext;
      if (ev?.eventType === 'MESSAGE') return { lambda: { statusCode: 200, body: `echo:${r.event.body}` } };
      return { lambda: { statusCode: 200 } };
    });
    const c = await connect(h.url);
    c.send('not json at all');
    assert.equal(await c.next(), 'echo:not json at all');
    c.send(JSON.stringify({ action: 'unknown-route', x: 1 }));
    assert.equal(await c.next(), `echo:${JSON.stringify({ action: 'unknown-route', x: 1 })}`);
    const defaults = backend.events('MESSAGE').filter((e) => e.requestContext.routeKey === '$default');
    assert.ok(defaults.length >= 2);
    c.ws.close();
    backend.setHandler(() => ({ lambda: { statusCode: 200 } }));
  });

  test('$connect rejections reach the client as the handshake status', async () => {
    const before = backend.events('CONNECT').length;
    for (const [status, body] of [[401, ''], [403, '{"message":"Forbidden"}'], [400, 'bad token']]) {
      backend.setHandler((r) =>
        r.event?.requestContext?.eventType === 'CONNECT' ? { lambda: { statusCode: status, body } } : { lambda: { statusCode: 200 } },
      );
      const refused = await handshakeStatus(h.url);
      assert.equal(refused.status, status);
      if (body) assert.equal(refused.body, body);
    }
    backend.setHandler(() => ({ lambda: { statusCode: 200 } }));
    // Rejected connections never opened: no $disconnect for them.
    const rejected = backend.events('CONNECT').slice(before).map((e) => e.requestContext.connectionId);
    assert.equal(rejected.length, 3);
    await new Promise((r) => setTimeout(r, 300));
    for (const id of rejected) assert.equal(backend.events('DISCONNECT', id).length, 0);
  });

  test('$connect can choose the subprotocol and name the user', async () => {
    backend.setHandler((r) =>
      r.event?.requestContext?.eventType === 'CONNECT'
        ? { lambda: { statusCode: 200, headers: { 'Sec-WebSocket-Protocol': 'chat.v2', 'X-Herald-User-Id': 'user-42' } } }
        : { lambda: { statusCode: 200 } },
    );
    const c = await connect(h.url, { protocols: ['chat.v1', 'chat.v2'] });
    assert.equal(c.ws.protocol, 'chat.v2');
    const opened = await h.waitForLog((l) => l.event === 'connection.open' && l.userId === 'user-42');
    assert.equal(opened.subprotocol, 'chat.v2');
    c.ws.close();
    backend.setHandler(() => ({ lambda: { statusCode: 200 } }));
  });

  test('DISCONNECT: once, after the close, with the client\'s code and reason', async () => {
    const before = backend.events('CONNECT').length;
    const c = await connect(h.url);
    await eventually(() => backend.events('CONNECT').length > before);
    const cctx = backend.events('CONNECT')[before].requestContext;
    await c.close(4000, 'see you');
    const e = await backend.waitForEvent('DISCONNECT', cctx.connectionId);
    assert.equal(e.requestContext.routeKey, '$disconnect');
    assert.equal(e.requestContext.disconnectStatusCode, 4000);
    assert.equal(e.requestContext.disconnectReason, 'see you');
    assert.equal(e.requestContext.connectedAt, cctx.connectedAt);
    assert.deepEqual(Object.keys(e.headers).sort(), ['Host', 'X-Forwarded-For', 'x-api-key', 'x-restapi']);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(backend.events('DISCONNECT', cctx.connectionId).length, 1);
  });
});

describe('$disconnect fires exactly once, whoever closes', () => {
  let backend;
  let h;
  before(async () => {
    backend = await startBackend();
    h = await startHerald(
      backendConfig(backend, {
        $disconnect: { integration: 'backend' },
        $default: { integration: 'echo', response: true },
      }, {
        config: {
          websocket: { max_message_bytes: '1KiB', max_frame_bytes: '1KiB', idle_timeout: '600ms', max_duration: '1500ms', ping_interval: '0' },
        },
      }),
    );
  });
  after(async () => {
    await h.stop();
    await backend.close();
  });

  const open = () => h.withConnectionId(() => connect(h.url));

  test('client close, idle timeout, max duration, oversize message, dropped TCP', async () => {
    // Client close.
    const [a, aId] = await open();
    await a.close(1000, 'bye');
    // Oversize message: 1009.
    const [b, bId] = await open();
    b.send('x'.repeat(2000));
    assert.equal((await b.closed).code, 1009);
    // Dropped TCP without a close frame: 1006.
    const [d, dId] = await h.withConnectionId(() => RawClient.open(h.clientPort));
    d.sendText('hello');
    await d.waitFrame((f) => f.opcode === OP.text);
    d.destroy();
    // Idle (600 ms, no traffic): 1001 "idle timeout".
    const [i, iId] = await open();
    const idleClose = await i.closed;
    assert.equal(idleClose.code, 1001);
    // Max duration (1.5 s) while staying active: 1001.
    const [m, mId] = await open();
    const keepBusy = setInterval(() => m.ws.readyState === 1 && m.send('busy'), 150);
    const maxClose = await m.closed;
    clearInterval(keepBusy);
    assert.equal(maxClose.code, 1001);

    const expect = {
      [aId]: [1000, 'bye'],
      [bId]: [1009, 'message too large'],
      [dId]: [1006, 'connection lost'],
      [iId]: [1001, 'idle timeout'],
      [mId]: [1001, 'maximum connection duration reached'],
    };
    for (const [id, [code, reason]] of Object.entries(expect)) {
      const e = await backend.waitForEvent('DISCONNECT', id);
      assert.equal(e.requestContext.disconnectStatusCode, code, `${id}: ${reason}`);
      assert.equal(e.requestContext.disconnectReason, reason);
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const id of Object.keys(expect)) assert.equal(backend.events('DISCONNECT', id).length, 1, id);
  });

  test('shutdown closes connections with 1001 and delivers their $disconnect before exiting', async () => {
    const h2 = await startHerald(backendConfig(backend, { $disconnect: { integration: 'backend' }, $default: { integration: 'echo' } }));
    const clients = await Promise.all([connect(h2.url), connect(h2.url)]);
    await eventually(() => h2.events('connection.open').length === 2);
    const ids = h2.events('connection.open').map((l) => l.connectionId);
    const { code } = await h2.stop();
    assert.equal(code, 0);
    for (const c of clients) assert.equal(c.closeInfo.code, 1001);
    for (const id of ids) {
      const e = backend.events('DISCONNECT', id);
      assert.equal(e.length, 1, `$disconnect for ${id} delivered before exit`);
      assert.equal(e[0].requestContext.disconnectStatusCode, 1001);
    }
  });
});

describe('route selection', () => {
  let backend;
  let h;
  before(async () => {
    backend = await startBackend((r) => ({ lambda: { statusCode: 200, body: r.event.requestContext.routeKey } }));
    h = await startHerald(
      backendConfig(backend, {
        'chat/join': { integration: 'backend', response: true },
        'chat/leave': { integration: 'backend', response: true },
        'orders/': { integration: 'backend', response: true },
      }, { config: { routing: { selection_expression: '${request.body.service}/${request.body.meta.action}' } } }),
    );
  });
  after(async () => {
    await h.stop();
    await backend.close();
  });

  test('templates with nested paths pick the route', async () => {
    const c = await connect(h.url);
    c.send({ service: 'chat', meta: { action: 'join' } });
    assert.equal(await c.next(), 'chat/join');
    c.send({ service: 'chat', meta: { action: 'leave' } });
    assert.equal(await c.next(), 'chat/leave');
    // A missing path is the empty string.
    c.send({ service: 'orders' });
    assert.equal(await c.next(), 'orders/');
    c.ws.close();
  });

  test('no match and no $default: the AWS Forbidden frame, and the socket stays open', async () => {
    const c = await connect(h.url);
    c.send({ service: 'nope', meta: { action: 'x' } });
    const frame = await c.nextJson();
    assert.equal(frame.message, 'Forbidden');
    assert.match(frame.connectionId, ID);
    assert.match(frame.requestId, REQUEST_ID);
    c.send('not json');
    assert.equal((await c.nextJson()).message, 'Forbidden');
    c.send({ service: 'chat', meta: { action: 'join' } });
    assert.equal(await c.next(), 'chat/join');
    assert.equal(c.closeInfo, undefined);
    c.ws.close();
  });
});

describe('integration failures', () => {
  test('a backend that does not answer in time: Internal server error frame, then the socket lives on', async () => {
    const backend = await startBackend((r) => (r.event.body.includes('slow') ? 'hang' : { lambda: { statusCode: 200, body: 'fast' } }));
    const h = await startHerald(
      backendConfig(backend, { $default: { integration: 'backend', response: true } }, { integration: { timeout: '300ms' } }),
    );
    try {
      const c = await connect(h.url);
      const t0 = Date.now();
      c.send('slow please');
      const frame = await c.nextJson(3000);
      assert.equal(frame.message, 'Internal server error');
      assert.match(frame.connectionId, ID);
      assert.match(frame.requestId, REQUEST_ID);
      assert.ok(Date.now() - t0 >= 250);
      const failed = await h.waitForLog((l) => l.event === 'route.failed');
      assert.equal(failed.route, '$default');
      assert.match(failed.error, /timeout/);
      assert.equal(failed.requestId, frame.requestId);
      c.send('and now fast');
      assert.equal(await c.next(), 'fast');
      c.ws.close();
    } finally {
      await h.stop();
      await backend.close();
    }
  });

  test('a backend that is down: messages get the error frame, $connect gets 500', async () => {
    const port = await closedPort();
    const h = await startHerald({
      integrations: { down: { type: 'http', url: `http://127.0.0.1:${port}/x`, connect_timeout: '500ms', timeout: '1s' } },
      routes: { $default: { integration: 'down', response: true } },
    });
    try {
      const c = await connect(h.url);
      c.send('anyone?');
      assert.equal((await c.nextJson()).message, 'Internal server error');
      const failed = await h.waitForLog((l) => l.event === 'route.failed');
      assert.match(failed.error, /connect: Connection refused/);
      c.ws.close();
    } finally {
      await h.stop();
    }
    const h2 = await startHerald({
      integrations: { down: { type: 'http', url: `http://127.0.0.1:${port}/x`, connect_timeout: '500ms' } },
      routes: { $connect: { integration: 'down' } },
    });
    try {
      const refused = await handshakeStatus(h2.url);
      assert.equal(refused.status, 500);
      assert.deepEqual(JSON.parse(refused.body), { message: 'Internal server error' });
    } finally {
      await h2.stop();
    }
  });

  test('a 5xx answer and a malformed Lambda proxy answer are failures too', async () => {
    const backend = await startBackend((r) =>
      r.event.body === 'five' ? { status: 503, body: 'overloaded' } : { lambda: { statusCode: 'two hundred' } },
    );
    const h = await startHerald(backendConfig(backend, { $default: { integration: 'backend', response: true } }));
    try {
      const c = await connect(h.url);
      c.send('five');
      assert.equal((await c.nextJson()).message, 'Internal server error');
      c.send('bad');
      assert.equal((await c.nextJson()).message, 'Internal server error');
      c.ws.close();
    } finally {
      await h.stop();
      await backend.close();
    }
  });
});

describe('integration modes and built-ins', () => {
  test('mode http: status and body as they are; mode lambda-proxy: base64 bodies become binary frames', async () => {
    const backend = await startBackend((r) => {
      if (r.url === '/plain') return { status: 200, headers: { 'content-type': 'text/plain' }, body: `plain:${r.event.body}` };
      return { lambda: { statusCode: 200, body: Buffer.from([0, 1, 2, 255]).toString('base64'), isBase64Encoded: true } };
    });
    const h = await startHerald({
      integrations: {
        plain: { type: 'http', url: `${backend.url}/plain`, mode: 'http' },
        lambda: { type: 'http', url: `${backend.url}/lambda` },
      },
      routes: { plain: { integration: 'plain', response: true }, bin: { integration: 'lambda', response: true } },
    });
    try {
      const c = await connect(h.url);
      c.send({ action: 'plain' });
      assert.equal(await c.next(), `plain:${JSON.stringify({ action: 'plain' })}`);
      c.send({ action: 'bin' });
      const bin = await c.next();
      assert.ok(Buffer.isBuffer(bin));
      assert.deepEqual([...bin], [0, 1, 2, 255]);
      c.ws.close();
    } finally {
      await h.stop();
      await backend.close();
    }
  });

  test('mock answers fixed bodies and can reject $connect; binary frames pass as base64 when allowed', async () => {
    const h = await startHerald({
      websocket: { binary: 'base64' },
      integrations: {
        pong: { type: 'mock', body: { type: 'pong' } },
        deny: { type: 'mock', status: 403, body: 'no entry' },
      },
      routes: { ping: { integration: 'pong', response: true }, $default: { integration: 'echo', response: true } },
    });
    try {
      const c = await connect(h.url);
      c.send({ action: 'ping' });
      assert.deepEqual(await c.nextJson(), { type: 'pong' });
      c.ws.send(Buffer.from([9, 8, 7]));
      const back = await c.next();
      assert.deepEqual([...back], [9, 8, 7]);
      c.ws.close();
    } finally {
      await h.stop();
    }
    const h2 = await startHerald({
      integrations: { deny: { type: 'mock', status: 403, body: 'no entry' } },
      routes: { $connect: { integration: 'deny' } },
    });
    try {
      const refused = await handshakeStatus(h2.url);
      assert.equal(refused.status, 403);
      assert.equal(refused.body, 'no entry');
    } finally {
      await h2.stop();
    }
  });

  test('binary frames under base64 arrive at the backend with isBase64Encoded', async () => {
    const backend = await startBackend();
    const h = await startHerald({
      websocket: { binary: 'base64' },
      ...backendConfig(backend, { $default: { integration: 'backend' } }),
    });
    try {
      const c = await connect(h.url);
      c.ws.send(Buffer.from('binary!'));
      const e = await backend.waitForEvent('MESSAGE');
      assert.equal(e.isBase64Encoded, true);
      assert.equal(Buffer.from(e.body, 'base64').toString(), 'binary!');
      assert.equal(e.requestContext.routeKey, '$default');
      c.ws.close();
    } finally {
      await h.stop();
      await backend.close();
    }
  });
});

describe('connection limits', () => {
  test('a client over its message rate gets "Too many requests", then is closed with 1008', async () => {
    const backend = await startBackend();
    const h = await startHerald({
      websocket: { rate_limit: { messages_per_second: 5, burst: 5, max_violations: 3 } },
      ...backendConfig(backend, { $default: { integration: 'echo', response: true }, $disconnect: { integration: 'backend' } }),
    });
    try {
      const c = await connect(h.url);
      for (let i = 0; i < 20; i++) c.send(`m${i}`);
      const received = [];
      const closed = await c.closed;
      received.push(...c.messages);
      assert.equal(closed.code, 1008);
      assert.equal(closed.reason, 'rate limit exceeded');
      const echoes = received.filter((m) => m.startsWith('m'));
      const throttled = received.filter((m) => m.startsWith('{')).map((m) => JSON.parse(m));
      assert.ok(echoes.length >= 5 && echoes.length <= 6, `burst of 5 passes, got ${echoes.length}`);
      assert.equal(throttled.length, 3);
      for (const t of throttled) assert.equal(t.message, 'Too many requests');
      const e = await backend.waitForEvent('DISCONNECT');
      assert.equal(e.requestContext.disconnectStatusCode, 1008);
    } finally {
      await h.stop();
      await backend.close();
    }
  });

  test('messages in flight per connection are bounded; the rest wait', async () => {
    const backend = await startBackend(async (r) => {
      await new Promise((res) => setTimeout(res, 50));
      return { lambda: { statusCode: 200, body: `done:${r.event.body}` } };
    });
    const h = await startHerald({
      routing: { max_inflight_per_connection: 2 },
      ...backendConfig(backend, { $default: { integration: 'backend', response: true } }),
    });
    try {
      const c = await connect(h.url);
      for (let i = 0; i < 10; i++) c.send(`n${i}`);
      const replies = [];
      for (let i = 0; i < 10; i++) replies.push(await c.next(5000));
      assert.deepEqual(new Set(replies), new Set(Array.from({ length: 10 }, (_, i) => `done:n${i}`)));
      assert.equal(backend.maxActivePerConnection, 2, 'two at a time, never more');
      const bodies = backend.events('MESSAGE').map((e) => e.body).sort();
      assert.deepEqual(bodies, Array.from({ length: 10 }, (_, i) => `n${i}`).sort(), 'each exactly once');
      c.ws.close();
    } finally {
      await h.stop();
      await backend.close();
    }
  });

  test('keep-alive connections to the backend are reused, and one closed by the backend is retried', async () => {
    const backend = await startBackend((r) => ({ lambda: { statusCode: 200, body: r.event.body } }));
    backend.server.keepAliveTimeout = 300;  // the backend drops idle connections quickly
    const h = await startHerald({
      ...backendConfig(backend, { $default: { integration: 'backend', response: true } }, { integration: { keepalive_timeout: '10s' } }),
    });
    try {
      const c = await connect(h.url);
      for (let i = 0; i < 20; i++) {
        c.send(`k${i}`);
        assert.equal(await c.next(), `k${i}`);
      }
      assert.ok(backend.socketCount <= 2, `20 sequential requests used ${backend.socketCount} connections`);
      await new Promise((r) => setTimeout(r, 600));  // the backend closes the idle connection
      c.send('after idle');
      assert.equal(await c.next(), 'after idle');
      assert.equal(h.events('route.failed').length, 0);
      c.ws.close();
    } finally {
      await h.stop();
      await backend.close();
    }
  });

  test('the node refuses upgrades beyond websocket.max_connections with 503', async () => {
    const h = await startHerald({ websocket: { max_connections: 2 } });
    try {
      const a = await connect(h.url);
      const b = await connect(h.url);
      const refused = await handshakeStatus(h.url);
      assert.equal(refused.status, 503);
      assert.equal(JSON.parse(refused.body).error, 'unavailable');
      await a.close();
      await eventually(async () => (await handshakeStatus(h.url).catch(() => ({ status: 101 }))).status === 101);
      b.ws.close();
    } finally {
      await h.stop();
    }
  });

  test('X-Forwarded-For names the client only when the peer is a trusted proxy', async () => {
    const backend = await startBackend();
    const routes = { $connect: { integration: 'backend' } };
    const trusted = await startHerald({ http: { trusted_proxies: ['127.0.0.0/8'] }, ...backendConfig(backend, routes) });
    const untrusted = await startHerald({ http: { trusted_proxies: ['10.0.0.0/8'] }, ...backendConfig(backend, routes) });
    try {
      const headers = { 'X-Forwarded-For': '198.51.100.9, 203.0.113.7, 127.0.0.5' };
      const a = await connect(trusted.url, { headers });
      const ea = await backend.waitForEvent('CONNECT');
      assert.equal(ea.requestContext.identity.sourceIp, '203.0.113.7');
      a.ws.close();
      const before = backend.events('CONNECT').length;
      const b = await connect(untrusted.url, { headers });
      await eventually(() => backend.events('CONNECT').length > before);
      assert.equal(backend.events('CONNECT')[before].requestContext.identity.sourceIp, '127.0.0.1');
      b.ws.close();
    } finally {
      await trusted.stop();
      await untrusted.stop();
      await backend.close();
    }
  });
});
