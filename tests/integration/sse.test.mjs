// The Server-Sent Events fallback through the real binary: a stream is a full connection
// ($connect/$disconnect and routes to a real backend, channels, history resumed with
// Last-Event-ID by curl and by Chromium's EventSource, @connections, presence, limits,
// timeouts, metrics), driven by clients that speak only HTTP.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { startHerald } from './lib/herald.mjs';
import { startRedis } from './lib/redis.mjs';
import { startBackend, eventually } from './lib/backend.mjs';
import { SseClient } from './lib/sse.mjs';
import { connect } from './lib/clients.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const metrics = async (h) => parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());
const publish = (h, channel, data) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify({ channel, data }) }).then((r) => r.json());
const postOn = (h, session, body) =>
  fetch(`${h.httpUrl}/sse`, { method: 'POST', headers: { 'Herald-Session': session }, body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) });

async function openStream(h, query = '', headers) {
  const c = await SseClient.open(`${h.httpUrl}/sse${query}`, { headers });
  const session = JSON.parse((await c.next((e) => e.event === 'session')).data);
  return { c, ...session };
}

// curl as the SSE client: its raw output, until it is killed.
function curlStream(url, headers = {}) {
  const args = ['-sN', ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]), url];
  const proc = spawn('curl', args);
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  return { proc, output: () => out, stop: () => new Promise((r) => { proc.on('exit', r); proc.kill(); }) };
}

describe('SSE fallback', () => {
  let h;
  let backend;
  before(async () => {
    backend = await startBackend((r) => {
      const ev = r.event?.requestContext;
      if (ev?.routeKey === 'whoami') return { lambda: { statusCode: 200, body: JSON.stringify({ you: ev.connectionId }) } };
      return { lambda: { statusCode: 200 } };
    });
    h = await startHerald({
      integrations: { app: { type: 'http', url: `${backend.url}/app` } },
      routes: {
        $connect: { integration: 'app' },
        $disconnect: { integration: 'app' },
        whoami: { integration: 'app', response: true },
        echo: { integration: 'echo', response: true },
      },
      channels: { publish_action: 'publish', rules: [{ pattern: 'chat.*', publish: true }] },
      history: { rules: [{ pattern: 'news', size: 100, ttl: '1h' }, { pattern: 'chat.*', size: 100, ttl: '1h' }] },
      presence: { rules: [{ pattern: 'chat.*', events: true }] },
      sse: { keepalive_interval: '200ms' },
    });
  });
  after(async () => {
    await h.stop();
    await backend.close();
  });

  test('a stream is a connection: $connect, routes over POST, @connections, $disconnect', async () => {
    const { c, connectionId, session } = await openStream(h);
    assert.equal(c.headers['content-type'], 'text/event-stream; charset=utf-8');
    assert.match(c.headers['cache-control'], /no-cache/);
    assert.equal(c.headers['x-accel-buffering'], 'no');
    assert.equal(session.split('.')[0], connectionId, 'the token names its connection');
    assert.match(session.split('.')[1], /^[A-Za-z0-9_-]{32}$/);
    const connect = await backend.waitForEvent('CONNECT', connectionId);
    assert.equal(connect.requestContext.routeKey, '$connect');

    const r = await postOn(h, session, { action: 'whoami' });
    assert.equal(r.status, 202);
    assert.deepEqual(await c.json(), { you: connectionId });
    await postOn(h, session, { action: 'echo', text: 'a\nb' });
    assert.deepEqual(await c.json(), { action: 'echo', text: 'a\nb' });

    // @connections: GetConnection and PostToConnection, as for a WebSocket.
    const info = await (await fetch(`${h.adminUrl}/@connections/${connectionId}`)).json();
    assert.equal(typeof info.connectedAt, 'string');
    assert.equal((await fetch(`${h.adminUrl}/@connections/${connectionId}`, { method: 'POST', body: 'multi\nline' })).status, 200);
    assert.equal((await c.next((e) => e.event === 'message')).data, 'multi\nline');
    const binary = Buffer.from([0xff, 0x00, 0x01]);
    await fetch(`${h.adminUrl}/@connections/${connectionId}`, { method: 'POST', body: binary });
    assert.deepEqual(Buffer.from((await c.next((e) => e.event === 'binary')).data, 'base64'), binary);

    // DELETE ends it normally; $disconnect sees 1000.
    assert.equal((await fetch(`${h.httpUrl}/sse`, { method: 'DELETE', headers: { 'Herald-Session': session } })).status, 204);
    const close = JSON.parse((await c.next((e) => e.event === 'close')).data);
    assert.deepEqual(close, { code: 1000, reason: 'closed by client' });
    await c.ended;
    const disconnect = await backend.waitForEvent('DISCONNECT', connectionId);
    assert.equal(disconnect.requestContext.disconnectStatusCode, 1000);
    assert.equal((await postOn(h, session, { action: 'echo' })).status, 404);
  });

  test('channels: subscribe in the URL or by POST, publish, presence with a WebSocket peer', async () => {
    const { c, session, connectionId } = await openStream(h, '?channel=chat.room&channel=news');
    assert.equal((await c.json((m) => m.channel === 'chat.room')).type, 'subscribed');
    assert.equal((await c.json((m) => m.channel === 'news')).type, 'subscribed');
    const ws = await connect(h.url);
    ws.send({ action: 'subscribe', channel: 'chat.room' });
    assert.equal((await ws.nextJson()).type, 'subscribed');
    const join = await c.json((m) => m.type === 'join');
    assert.equal(join.channel, 'chat.room');
    // The stream publishes by POST; the WebSocket peer receives it, and so does the stream.
    await postOn(h, session, { action: 'publish', channel: 'chat.room', data: { from: 'sse' } });
    assert.deepEqual((await ws.nextJson()).data, { from: 'sse' });
    const own = await c.json((m) => m.type === 'message');
    assert.deepEqual(own.data, { from: 'sse' });
    await postOn(h, session, { action: 'presence', channel: 'chat.room' });
    const presence = await c.json((m) => m.type === 'presence');
    assert.ok(presence.members.some((m) => m.connectionId === connectionId));
    await postOn(h, session, { action: 'unsubscribe', channel: 'chat.room' });
    assert.equal((await c.json((m) => m.type === 'unsubscribed')).channel, 'chat.room');
    await ws.close();
    await c.close();
  });

  test('curl resumes with Last-Event-ID after a drop: nothing missed, nothing twice', async () => {
    const first = curlStream(`${h.httpUrl}/sse?channel=news`);
    await eventually(() => first.output().includes('"subscribed"'));
    for (const n of [1, 2, 3]) await publish(h, 'news', { n });
    await eventually(() => first.output().includes('{"n":3}'));
    await first.stop();
    const ids = [...first.output().matchAll(/^id: (.*)$/gm)].map((m) => m[1]);
    const last = ids.at(-1);
    assert.match(last, /^news~[0-9a-f]+~\d+$/);
    for (const n of [4, 5]) await publish(h, 'news', { n });
    const second = curlStream(`${h.httpUrl}/sse`, { 'Last-Event-ID': last });
    await eventually(() => second.output().includes('{"n":5}'));
    await second.stop();
    const got = [...second.output().matchAll(/"data":\{"n":(\d)\}/g)].map((m) => Number(m[1]));
    assert.deepEqual(got, [4, 5]);
    assert.match(second.output(), /"recovered":true/);
  });

  test('the curl commands of docs/protocol.md work as written', async () => {
    const doc = readFileSync(new URL('../../docs/protocol.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Fallback: Server-Sent Events'));
    const block = /```sh\n([\s\S]*?)```/.exec(section)[1].replaceAll('http://localhost:8080', h.httpUrl);
    // One command per line (a trailing backslash continues it), comments dropped.
    const commands = block.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
    assert.equal(commands.length, 3);
    const stream = spawn('sh', ['-c', commands[0]]);
    let out = '';
    stream.stdout.on('data', (d) => (out += d));
    try {
      const session = await eventually(() => /"session":"([^"]+)"/.exec(out)?.[1]);
      await eventually(() => out.includes('"subscribed"'));
      const run = (cmd) => new Promise((resolve) => {
        const p = spawn('sh', ['-c', cmd], { env: { ...process.env, SESSION: session } });
        let text = '';
        p.stdout.on('data', (d) => (text += d));
        p.on('exit', (code) => resolve({ code, text }));
      });
      const sent = await run(commands[1]);
      assert.deepEqual([sent.code, JSON.parse(sent.text)], [0, { ok: true }]);
      await eventually(() => /"type":"subscribed","channel":"news"/.test(out));
      assert.equal((await run(commands[2])).code, 0);
      await eventually(() => out.includes('event: close'));
      assert.match(out, /data: \{"code":1000,"reason":"closed by client"\}/);
    } finally {
      stream.kill();
    }
  });

  test('keepalive comments, bad requests, metrics', async () => {
    const { c, session } = await openStream(h);
    await eventually(() => c.comments >= 2, 3000);
    assert.equal((await postOn(h, 'nope', { action: 'echo' })).status, 404);
    assert.equal((await postOn(h, '', { action: 'echo' })).status, 400);
    assert.equal((await postOn(h, session, 'x'.repeat(200 * 1024))).status, 413);
    assert.equal((await postOn(h, session, Buffer.from([0xc3, 0x28]))).status, 400);
    assert.equal((await fetch(`${h.httpUrl}/sse`, { method: 'PUT' })).status, 405);
    const m = await metrics(h);
    assert.ok(m.value('herald_sse_connections') >= 1);
    assert.ok(m.value('herald_sse_posts_total') >= 1);
    await c.close();
    await eventually(async () => (await metrics(h)).value('herald_sse_connections') === 0);
  });

  test('Chromium EventSource resumes after the server drops the stream', { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` }, async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage();
      await page.goto(`${h.httpUrl}/healthz`).catch(() => {});
      await page.evaluate((url) => {
        window.got = [];
        window.sessions = [];
        const es = new EventSource(url);
        es.addEventListener('session', (e) => window.sessions.push(JSON.parse(e.data)));
        es.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.type === 'message') window.got.push(m.data.n);
        };
      }, `${h.httpUrl}/sse?channel=news`);
      await page.waitForFunction(() => window.sessions.length === 1);
      const firstId = (await page.evaluate(() => window.sessions[0])).connectionId;
      await eventually(async () => (await fetch(`${h.adminUrl}/@connections/${firstId}`)).status === 200);
      const base = (await publish(h, 'news', { n: 100 })).offset;
      await page.waitForFunction(() => window.got.includes(100));
      // The server ends the stream (as a deploy would); EventSource reconnects by itself with
      // Last-Event-ID while publications go on.
      await fetch(`${h.adminUrl}/@connections/${firstId}`, { method: 'DELETE' });
      for (const n of [101, 102, 103]) await publish(h, 'news', { n });
      await page.waitForFunction(() => window.sessions.length === 2 && window.got.includes(103), null, { timeout: 10000 });
      assert.deepEqual(await page.evaluate(() => window.got), [100, 101, 102, 103]);
      assert.ok(base > 0);
    } finally {
      await browser.close();
    }
  });
});

describe('SSE fallback limits', () => {
  test('a stream that is not read fills its bounded queue and is closed; others go on', async () => {
    const h = await startHerald({ websocket: { max_message_bytes: '16KiB', max_frame_bytes: '16KiB', send_queue: { max_messages: 50, max_bytes: '64KiB' } } });
    try {
      // A client that sends the GET and never reads.
      const stuck = net.connect(h.clientPort, '127.0.0.1');
      await new Promise((r) => stuck.once('connect', r));
      stuck.write('GET /sse?channel=firehose HTTP/1.1\r\nHost: x\r\n\r\n');
      stuck.pause();
      const { c } = await openStream(h, '?channel=firehose');
      await c.json((m) => m.type === 'subscribed');
      await eventually(async () => (await metrics(h)).value('herald_sse_connections') === 2);
      const data = 'x'.repeat(2000);
      const batch = Array.from({ length: 20 }, () => ({ channel: 'firehose', data }));
      for (let i = 0; i < 200; i++) {
        await fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify(batch) });
        for (let k = 0; k < 20; k++) await c.json((m) => m.type === 'message');  // the reader keeps up
        if ((await metrics(h)).value('herald_slow_consumer_closes_total', { reason: 'send_queue_overflow' }) > 0) break;
      }
      assert.equal((await metrics(h)).value('herald_slow_consumer_closes_total', { reason: 'send_queue_overflow' }), 1);
      // Its close event waits behind the stuck write, for websocket.close_timeout (5 s) at most.
      await eventually(async () => (await metrics(h)).value('herald_sse_connections') === 1, 8000);
      stuck.destroy();
      await c.close();
    } finally {
      await h.stop();
    }
  });

  test('idle timeout and drain end a stream with a close event; sse.enabled false turns it off', async () => {
    const h = await startHerald({ websocket: { idle_timeout: '1s' }, sse: { keepalive_interval: '100ms' } });
    try {
      const { c } = await openStream(h);
      const close = JSON.parse((await c.next((e) => e.event === 'close', 5000)).data);
      assert.deepEqual(close, { code: 1001, reason: 'idle timeout' });
      const { c: d } = await openStream(h);
      h.proc.kill('SIGTERM');
      const drained = JSON.parse((await d.next((e) => e.event === 'close', 5000)).data);
      assert.equal(drained.code, 1001);
    } finally {
      await h.stop();
    }
    const off = await startHerald({ sse: { enabled: false } });
    try {
      await assert.rejects(SseClient.open(`${off.httpUrl}/sse`), (e) => e.status === 404);
    } finally {
      await off.stop();
    }
  });
});

describe('SSE fallback across nodes (no sticky sessions)', () => {
  test('a POST or DELETE that reaches another node is forwarded to the stream through Redis', async () => {
    const redis = await startRedis();
    const config = (name) => ({
      node_id: name,
      backplane: 'redis',
      redis: { url: redis.url },
      routes: { echo: { integration: 'echo', response: true } },
    });
    const a = await startHerald(config('sse-a'));
    const b = await startHerald(config('sse-b'));
    try {
      const { c, session } = await openStream(a);
      // The directory entry is written asynchronously: wait until node b can find the stream.
      await eventually(async () => (await fetch(`${b.adminUrl}/@connections/${session.split('.')[0]}`)).status === 200);
      const r = await postOn(b, session, { action: 'echo', via: 'b' });
      assert.equal(r.status, 202);
      assert.deepEqual(await r.json(), { ok: true });
      assert.deepEqual(await c.json(), { action: 'echo', via: 'b' });
      // A wrong secret for a real connection is refused by the node holding it.
      const forged = `${session.split('.')[0]}.${'A'.repeat(32)}`;
      assert.equal((await postOn(b, forged, { action: 'echo' })).status, 404);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(c.events.filter((e) => e.event === 'message').length, 0, 'the forged POST reached nothing');
      const del = await fetch(`${b.httpUrl}/sse`, { method: 'DELETE', headers: { 'Herald-Session': session } });
      assert.equal(del.status, 204);
      assert.deepEqual(JSON.parse((await c.next((e) => e.event === 'close')).data), { code: 1000, reason: 'closed by client' });
      assert.equal((await postOn(b, session, { action: 'echo' })).status, 404);
    } finally {
      await a.stop();
      await b.stop();
      await redis.stop();
    }
  });
});
