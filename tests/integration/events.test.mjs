// The events an integration receives, compared field for field with API Gateway's (the shapes in
// fixtures/aws-events/, written from real captures): the same keys at every level, the same JSON
// types, no nulls, the headers AWS adds (trace id, X-Forwarded-*) and drops (hop-by-hop), and a
// domainName a handler can call back.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { startHerald } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startBackend } from './lib/backend.mjs';

const fixture = (name) => JSON.parse(readFileSync(new URL(`./fixtures/aws-events/${name}.json`, import.meta.url), 'utf8'));
const AWS = { connect: fixture('connect'), message: fixture('message'), disconnect: fixture('disconnect') };

const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

// Every path in `want` exists in `got` with the same JSON type, and `got` has no key `want` lacks.
// Header maps are compared apart (their names depend on the client).
function sameShape(got, want, path = '') {
  const skip = new Set(['headers', 'multiValueHeaders', 'queryStringParameters', 'multiValueQueryStringParameters']);
  assert.equal(typeOf(got), typeOf(want), `${path || 'the event'} is a ${typeOf(want)} on AWS, not a ${typeOf(got)}`);
  if (typeOf(want) !== 'object') return;
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `the keys of ${path || 'the event'}`);
  for (const k of Object.keys(want)) {
    if (path === '' && skip.has(k)) continue;
    sameShape(got[k], want[k], path ? `${path}.${k}` : k);
  }
}

function noNulls(v, path = 'event') {
  if (v === null) assert.fail(`${path} is null (AWS leaves keys out since 2024)`);
  if (typeof v === 'object') for (const [k, x] of Object.entries(v)) noNulls(x, `${path}.${k}`);
}

// The names in a headers map, case-insensitively.
const names = (headers) => new Set(Object.keys(headers).map((k) => k.toLowerCase()));

describe('events field for field against API Gateway captures', () => {
  let backend;
  let h;
  before(async () => {
    backend = await startBackend();
    h = await startHerald({
      integrations: { backend: { type: 'http', url: `${backend.url}/events`, mode: 'lambda-proxy', timeout: '2s' } },
      routes: {
        $connect: { integration: 'backend' },
        $disconnect: { integration: 'backend' },
        $default: { integration: 'backend' },
        sendmessage: { integration: 'backend' },
      },
      routing: { stage: 'prod', api_id: 'abc123defg' },
    });
  });
  after(async () => {
    await h?.stop();
    await backend?.close();
  });

  test('CONNECT, MESSAGE and DISCONNECT have AWS\'s keys and types, and no nulls', async () => {
    const c = await connect(`${h.url}/?room=lobby`, {
      headers: {
        'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/134.0.0.0',
        Origin: 'https://chat.example.com',
        // A client cannot name itself: these are replaced.
        'X-Forwarded-For': '6.6.6.6',
        'X-Forwarded-Proto': 'gopher',
        'X-Forwarded-Port': '1',
      },
    });
    const connectEvent = (await backend.waitFor((r) => r.event?.requestContext?.eventType === 'CONNECT')).event;
    const id = connectEvent.requestContext.connectionId;
    c.send(JSON.stringify({ action: 'sendmessage', data: 'hello' }));
    const messageEvent = await backend.waitForEvent('MESSAGE', id);
    c.ws.close(1001);
    const disconnectEvent = await backend.waitForEvent('DISCONNECT', id);

    for (const [got, want] of [[connectEvent, AWS.connect], [messageEvent, AWS.message], [disconnectEvent, AWS.disconnect]]) {
      sameShape(got, want);
      noNulls(got);
      // Headers: every value a string (a list of strings in multiValueHeaders), the same names in both.
      if (want.headers) {
        for (const v of Object.values(got.headers)) assert.equal(typeof v, 'string');
        for (const v of Object.values(got.multiValueHeaders)) assert.ok(Array.isArray(v) && v.every((x) => typeof x === 'string'));
        assert.deepEqual(Object.keys(got.headers).sort(), Object.keys(got.multiValueHeaders).sort());
      }
      // The same values where AWS's are stable for a connection.
      assert.equal(got.requestContext.connectionId, id);
      assert.equal(got.requestContext.connectedAt, connectEvent.requestContext.connectedAt);
      assert.equal(got.requestContext.domainName, '127.0.0.1', 'the Host header without the port');
      assert.equal(got.requestContext.identity.sourceIp, '127.0.0.1');
      assert.equal(got.requestContext.identity.userAgent, 'Mozilla/5.0 (X11; Linux x86_64) Chrome/134.0.0.0');
    }
    assert.equal(disconnectEvent.requestContext.disconnectStatusCode, 1001);

    // CONNECT headers: the client's own, less hop-by-hop ones, plus what AWS adds.
    const hs = connectEvent.headers;
    const got = names(hs);
    for (const name of names(AWS.connect.headers)) {
      if (name === 'sec-websocket-extensions' && !got.has(name)) continue;  // only when offered
      assert.ok(got.has(name), `CONNECT headers lack ${name}`);
    }
    assert.ok(!got.has('connection') && !got.has('upgrade'), 'hop-by-hop headers are dropped, as on AWS');
    assert.equal(hs['X-Forwarded-For'], '127.0.0.1');
    assert.equal(hs['X-Forwarded-Port'], String(h.clientPort));
    assert.equal(hs['X-Forwarded-Proto'], 'http');
    assert.deepEqual(connectEvent.multiValueHeaders['X-Forwarded-For'], ['127.0.0.1']);
    const trace = hs['X-Amzn-Trace-Id'].match(/^Root=1-([0-9a-f]{8})-[0-9a-f]{24}$/);
    assert.ok(trace, `trace id ${hs['X-Amzn-Trace-Id']}`);
    assert.ok(Math.abs(parseInt(trace[1], 16) - Date.now() / 1000) < 60);
    assert.equal(hs.Host, `127.0.0.1:${h.clientPort}`, 'the Host header itself is as sent');
    assert.deepEqual(connectEvent.queryStringParameters, { room: 'lobby' });
    // DISCONNECT headers: AWS's synthetic set.
    assert.deepEqual(disconnectEvent.headers, { Host: '127.0.0.1', 'x-api-key': '', 'X-Forwarded-For': '127.0.0.1', 'x-restapi': '' });
  });

  test('a client without User-Agent gets identity {sourceIp} only; its own trace id is kept', async () => {
    const before = backend.events('CONNECT').length;
    // A raw handshake: no User-Agent at all.
    const socket = net.connect(h.clientPort, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write(
      'GET / HTTP/1.1\r\nHost: chat.internal:9999\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        'X-Amzn-Trace-Id: Root=1-00000001-000000000000000000000001\r\n\r\n',
    );
    const e = (await backend.waitFor((r) => r.event?.requestContext?.eventType === 'CONNECT' && backend.events('CONNECT').length > before)).event;
    assert.deepEqual(e.requestContext.identity, { sourceIp: '127.0.0.1' });
    assert.equal(e.requestContext.domainName, 'chat.internal');
    assert.equal(e.headers['X-Amzn-Trace-Id'], 'Root=1-00000001-000000000000000000000001');
    assert.equal(e.multiValueHeaders['X-Amzn-Trace-Id'].length, 1);
    socket.destroy();
  });
});

describe('behind a trusted proxy, and with routing.domain_name', () => {
  let backend;
  let h;
  before(async () => {
    backend = await startBackend();
    h = await startHerald({
      integrations: { backend: { type: 'http', url: `${backend.url}/events`, mode: 'lambda-proxy', timeout: '2s' } },
      routes: { $connect: { integration: 'backend' }, $default: { integration: 'echo', response: true } },
      http: { trusted_proxies: ['127.0.0.1/32'] },
      routing: { domain_name: 'ws.example.com' },
    });
  });
  after(async () => {
    await h?.stop();
    await backend?.close();
  });

  test('the proxy\'s client, scheme and port reach the event; domainName is the configured one', async () => {
    const c = await connect(h.url, {
      headers: { 'X-Forwarded-For': '198.51.100.7', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Port': '443' },
    });
    const e = (await backend.waitFor((r) => r.event?.requestContext?.eventType === 'CONNECT')).event;
    assert.equal(e.requestContext.identity.sourceIp, '198.51.100.7');
    assert.equal(e.headers['X-Forwarded-For'], '198.51.100.7');
    assert.equal(e.headers['X-Forwarded-Proto'], 'https');
    assert.equal(e.headers['X-Forwarded-Port'], '443');
    assert.equal(e.requestContext.domainName, 'ws.example.com');
    c.ws.close();
  });
});
