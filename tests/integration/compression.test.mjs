// permessage-deflate (RFC 7692) through the real binary, with three clients nobody here wrote:
// Node's `ws`, Python's `websockets` (Debian's) and headless Chromium; plus a raw client that
// reads RSV1 and the extension header on the wire, offers what a library never would, and
// sends a compression bomb.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import crypto from 'node:crypto';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { startHerald } from './lib/herald.mjs';
import { connect, RawClient, OP } from './lib/clients.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';
import { eventually } from './lib/backend.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const PYTHON = '/usr/bin/python3';  // Debian's, with python3-websockets
const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

// A realistic notification of about 600 bytes (JSON compresses well).
const notification = (n) => ({
  type: 'order.updated',
  order: { id: `ord_${n}`, status: 'shipped', carrier: 'DHL', tracking: `JD01460000${n}`, eta: '2026-12-04' },
  items: Array.from({ length: 5 }, (_, i) => ({ sku: `SKU-${1000 + i}`, name: `Item number ${i}`, quantity: 1 + i, price: 9.99 })),
  customer: { id: 'cus_42', name: 'Alice Example', email: 'alice@example.com' },
});

const metrics = async (h) => parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());
const publish = (h, channel, data) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify({ channel, data }) }).then((r) => r.json());

// A client message compressed as RFC 7692 sends it (sync flush, the 00 00 ff ff tail removed).
const deflate = (text, windowBits = 15) => {
  const z = zlib.deflateRawSync(Buffer.from(text), { finishFlush: zlib.constants.Z_SYNC_FLUSH, windowBits });
  return z.subarray(0, z.length - 4);
};
const inflate = (payload, windowBits = 15) =>
  zlib.inflateRawSync(Buffer.concat([payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH, windowBits }).toString();

async function rawSubscriber(h, offer, channel) {
  const c = await RawClient.open(h.clientPort, { headers: offer ? { 'Sec-WebSocket-Extensions': offer } : {} });
  c.sendText(JSON.stringify({ action: 'subscribe', channel }));
  await c.waitFrame((f) => f.opcode === OP.text && f.payload.toString().includes('"subscribed"'));
  return c;
}

describe('permessage-deflate', () => {
  let h;
  before(async () => {
    h = await startHerald({
      websocket: { compression: { enabled: true, min_bytes: 256 } },
      routes: { echo: { integration: 'echo', response: true } },
    });
  });
  after(async () => {
    await h.stop();
  });

  test('Node ws negotiates it; a publication is compressed once for all its recipients', async () => {
    const clients = [];
    for (let i = 0; i < 20; i++) {
      const c = await connect(h.url, { perMessageDeflate: true });
      assert.match(c.ws.extensions, /^permessage-deflate/);
      c.send({ action: 'subscribe', channel: 'orders' });
      assert.equal((await c.nextJson()).type, 'subscribed');
      clients.push(c);
    }
    const raw = await rawSubscriber(h, 'permessage-deflate; client_max_window_bits', 'orders');
    assert.equal(raw.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
    const before = await metrics(h);
    assert.equal(before.value('herald_connections_compressed'), 21);

    const data = notification(1);
    await publish(h, 'orders', data);
    for (const c of clients) assert.deepEqual((await c.nextJson()).data, data);
    const frame = await raw.waitFrame((f) => f.opcode === OP.text && f.rsv !== 0);
    assert.equal(frame.rsv, 0x40, 'RSV1 alone marks a compressed message');
    const text = inflate(frame.payload);
    assert.deepEqual(JSON.parse(text).data, data);
    assert.ok(frame.payload.length < text.length / 2, `${frame.payload.length} bytes on the wire for ${text.length}`);

    const after = await metrics(h);
    const delta = (name) => after.value(name) - before.value(name);
    assert.equal(delta('herald_deflate_compressions_total'), 1, 'one deflate for 21 recipients');
    assert.equal(delta('herald_messages_sent_compressed_total'), 21);
    assert.equal(delta('herald_deflate_input_bytes_total'), text.length);
    assert.equal(delta('herald_deflate_output_bytes_total'), frame.payload.length);
    raw.destroy();
    for (const c of clients) await c.close();
  });

  test('messages below min_bytes, and those deflate does not shrink, go uncompressed', async () => {
    const [raw, id] = await h.withConnectionId(() => rawSubscriber(h, 'permessage-deflate', 'small'));
    await publish(h, 'small', { ok: 1 });
    const small = await raw.waitFrame((f) => f.opcode === OP.text && f.payload.toString().includes('"ok"'));
    assert.equal(small.rsv, 0);
    // Binary messages through @connections: random bytes do not shrink, so they go as they are;
    // repetitive ones are compressed like text.
    const post = (body) => fetch(`${h.adminUrl}/@connections/${id}`, { method: 'POST', body }).then((r) => assert.equal(r.status, 200));
    const noise = crypto.randomBytes(1000);
    noise[0] = 0xff;  // not UTF-8: a binary frame
    await post(noise);
    const plain = await raw.waitFrame((f) => f.opcode === OP.binary);
    assert.equal(plain.rsv, 0);
    assert.deepEqual(plain.payload, noise);
    const zeros = Buffer.alloc(1000, 0xfe);
    await post(zeros);
    const packed = await raw.waitFrame((f) => f.opcode === OP.binary && f.rsv === 0x40);
    assert.deepEqual(zlib.inflateRawSync(Buffer.concat([packed.payload, TAIL]), { finishFlush: zlib.constants.Z_SYNC_FLUSH }), zeros);
    raw.destroy();
  });

  test('client messages arrive compressed and are inflated; a smaller server window is honoured', async () => {
    const c = await connect(h.url, { perMessageDeflate: { threshold: 0 } });
    const before = await metrics(h);
    const body = { action: 'echo', payload: notification(2) };
    c.send(body);
    assert.deepEqual(JSON.parse(await c.next()), body);
    const after = await metrics(h);
    assert.equal(after.value('herald_messages_inflated_total') - before.value('herald_messages_inflated_total'), 1);
    await c.close();

    // The client asks for a 10-bit window: Herald says so and compresses with it.
    const raw = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate; server_max_window_bits=10' } });
    assert.equal(raw.headers['sec-websocket-extensions'], 'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10');
    const text = JSON.stringify({ action: 'echo', payload: notification(3) });
    raw.send(OP.text, deflate(text), { rsv: 0x40 });
    const frame = await raw.waitFrame((f) => f.opcode === OP.text);
    assert.equal(frame.rsv, 0x40);
    assert.equal(inflate(frame.payload, 10), text);
    raw.destroy();
  });

  test('offers: the first acceptable one wins, unusable ones are declined, none means uncompressed', async () => {
    const offer = async (value) => {
      const raw = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': value } });
      raw.destroy();
      return raw.headers['sec-websocket-extensions'];
    };
    assert.equal(await offer('permessage-deflate; unknown_param, permessage-deflate; server_max_window_bits=12'),
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12');
    assert.equal(await offer('x-webkit-deflate-frame, permessage-deflate'),
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover');
    const before = (await metrics(h)).value('herald_deflate_declined_total');
    assert.equal(await offer('permessage-deflate; server_max_window_bits=16'), undefined);
    assert.equal(await offer('permessage-deflate; client_max_window_bits; client_max_window_bits'), undefined);
    assert.equal((await metrics(h)).value('herald_deflate_declined_total') - before, 2);
  });

  test('a compression bomb closes with 1009 after the limit; corrupt data with 1007', async () => {
    // 64 MiB of zeros deflate to about 64 KiB: the node inflates at most max_message_bytes.
    const bomb = deflate('\0'.repeat(64 * 1024 * 1024));
    assert.ok(bomb.length < 128 * 1024);
    const raw = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    raw.send(OP.text, bomb, { rsv: 0x40 });
    const close = await raw.waitClose();
    assert.equal(close.code, 1009);
    raw.destroy();

    const bad = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    bad.send(OP.text, Buffer.from([0xff, 0xff, 0xff, 0xff, 0x00]), { rsv: 0x40 });
    assert.equal((await bad.waitClose()).code, 1007);
    bad.destroy();

    // Compressed text that inflates to invalid UTF-8.
    const utf = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    utf.send(OP.text, deflate(Buffer.from([0x7b, 0xc3, 0x28, 0x7d])), { rsv: 0x40 });
    assert.equal((await utf.waitClose()).code, 1007);
    utf.destroy();

    // RSV1 on a continuation frame is a protocol error even when agreed.
    const cont = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    cont.send(OP.text, deflate('{"a":'), { rsv: 0x40, fin: false });
    cont.send(OP.continuation, deflate('1}'), { rsv: 0x40 });
    assert.equal((await cont.waitClose()).code, 1002);
    cont.destroy();

    const r = await fetch(`${h.adminUrl}/healthz`);
    assert.equal(r.status, 200);
  });

  test('a fragmented compressed message is inflated whole', async () => {
    const raw = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    const text = JSON.stringify({ action: 'echo', payload: notification(4) });
    const z = deflate(text);
    const cut = Math.floor(z.length / 2);
    raw.send(OP.text, z.subarray(0, cut), { rsv: 0x40, fin: false });
    raw.send(OP.continuation, z.subarray(cut));
    const frame = await raw.waitFrame((f) => f.opcode === OP.text);
    assert.equal(inflate(frame.payload), text);
    raw.destroy();
  });

  test('Python websockets negotiates it and exchanges compressed messages', { skip: !existsSync(PYTHON) }, async () => {
    const script = `
import asyncio, json, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        print(ws.response_headers.get("Sec-WebSocket-Extensions"), flush=True)
        body = {"action": "echo", "payload": "x" * 2000}
        await ws.send(json.dumps(body))
        print(json.loads(await ws.recv()) == body, flush=True)
asyncio.run(asyncio.wait_for(main(), 10))
`;
    const before = await metrics(h);
    const r = spawnSync(PYTHON, ['-c', script, h.url], { encoding: 'utf8', timeout: 20000 });
    assert.equal(r.status, 0, r.stderr);
    const [extensions, echoed] = r.stdout.trim().split('\n');
    assert.match(extensions, /^permessage-deflate; server_no_context_takeover; client_no_context_takeover/);
    assert.equal(echoed, 'True');
    const after = await metrics(h);
    const delta = (name) => after.value(name) - before.value(name);
    assert.equal(delta('herald_messages_inflated_total'), 1, 'websockets compressed its message');
    assert.equal(delta('herald_messages_sent_compressed_total'), 1, 'and read ours compressed');
  });

  test('Chromium negotiates it and exchanges compressed messages', { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` }, async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    try {
      const page = await browser.newPage();
      const before = await metrics(h);
      const result = await page.evaluate(async (url) => {
        const ws = new WebSocket(url);
        await new Promise((resolve, reject) => {
          ws.onopen = resolve;
          ws.onerror = () => reject(new Error('websocket error'));
        });
        const body = { action: 'echo', payload: 'y'.repeat(3000) };
        const answer = new Promise((resolve) => (ws.onmessage = (e) => resolve(e.data)));
        ws.send(JSON.stringify(body));
        const echoed = JSON.parse(await answer);
        ws.close();
        return { extensions: ws.extensions, same: JSON.stringify(echoed) === JSON.stringify(body) };
      }, h.url);
      assert.match(result.extensions, /^permessage-deflate; server_no_context_takeover; client_no_context_takeover/);
      assert.equal(result.same, true);
      const after = await metrics(h);
      const delta = (name) => after.value(name) - before.value(name);
      assert.equal(delta('herald_messages_inflated_total'), 1, 'Chromium compressed its message');
      assert.equal(delta('herald_messages_sent_compressed_total'), 1, 'and read ours compressed');
    } finally {
      await browser.close();
    }
  });
});

describe('permessage-deflate off (the default)', () => {
  let h;
  before(async () => {
    h = await startHerald({ routes: { echo: { integration: 'echo', response: true } } });
  });
  after(async () => {
    await h.stop();
  });

  test('an offer gets no extension, and RSV1 is a protocol error', async () => {
    const c = await connect(h.url, { perMessageDeflate: true });
    assert.equal(c.ws.extensions, '');
    await c.close();
    const raw = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Extensions': 'permessage-deflate' } });
    assert.equal(raw.headers['sec-websocket-extensions'], undefined);
    raw.send(OP.text, deflate('{"action":"echo"}'), { rsv: 0x40 });
    assert.equal((await raw.waitClose()).code, 1002);
    raw.destroy();
    await eventually(async () => (await metrics(h)).value('herald_connections_compressed') === 0);
  });
});
