// The server skeleton through the real binary: health, readiness, echo over ws and wss,
// HTTP limits, configuration errors and an orderly stop.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import tls from 'node:tls';
import { startHerald, runHerald, tempDir, makeCertificate, writeJson } from './lib/herald.mjs';
import https from 'node:https';
import { connect, handshakeStatus, RawClient, rawHttp, maskedFrame, closePayload, OP } from './lib/clients.mjs';
import { SseClient } from './lib/sse.mjs';

describe('health and readiness', () => {
  let h;
  before(async () => {
    h = await startHerald();
  });
  after(() => h.stop());

  test('/healthz and /readyz answer JSON on both listeners', async () => {
    for (const base of [h.httpUrl, h.adminUrl]) {
      const health = await fetch(`${base}/healthz`);
      assert.equal(health.status, 200);
      assert.equal(health.headers.get('content-type'), 'application/json');
      assert.deepEqual(await health.json(), { status: 'ok' });
      const ready = await fetch(`${base}/readyz`);
      assert.equal(ready.status, 200);
      assert.deepEqual(await ready.json(), { status: 'ready' });
    }
  });

  test('HEAD works, other methods are refused with Allow', async () => {
    const head = await fetch(`${h.adminUrl}/healthz`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    const post = await fetch(`${h.adminUrl}/healthz`, { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal((await post.json()).error, 'method_not_allowed');
  });

  test('unknown paths get a JSON 404; the WebSocket path without an upgrade gets 426', async () => {
    const missing = await fetch(`${h.httpUrl}/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: 'not_found', message: 'no such endpoint' });
    const plain = await fetch(`${h.httpUrl}/`);
    assert.equal(plain.status, 426);
    assert.equal(plain.headers.get('upgrade'), 'websocket');
    assert.equal((await plain.json()).error, 'upgrade_required');
  });

  test('keep-alive: several requests on one connection', async () => {
    const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const r = await rawHttp(h.adminPort, req);
    assert.equal((r.raw.match(/HTTP\/1.1 200 OK/g) || []).length, 2);
  });

  test('oversized headers get 431, an overlong URL 414, garbage 400', async () => {
    const big = await rawHttp(h.adminPort, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(9000)}\r\n\r\n`);
    assert.equal(big.status, 431);
    assert.equal(JSON.parse(big.body).error, 'headers_too_large');
    const url = await rawHttp(h.adminPort, `GET /${'u'.repeat(4100)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assert.equal(url.status, 414);
    const garbage = await rawHttp(h.adminPort, 'NOT HTTP AT ALL\r\n\r\n');
    assert.equal(garbage.status, 400);
  });
});

describe('WebSocket echo (skeleton behaviour)', () => {
  let h;
  before(async () => {
    h = await startHerald({ websocket: { subprotocols: ['herald.v1', 'chat'] } });
  });
  after(() => h.stop());

  test('text messages come back in order, small and large', async () => {
    const c = await connect(h.url);
    const sent = ['hello', '', 'ü€😀', 'x'.repeat(125), 'y'.repeat(126), 'z'.repeat(70000)];
    for (const m of sent) c.send(m);
    for (const m of sent) assert.equal(await c.next(), m);
    const closed = await c.close(1000, 'bye');
    assert.equal(closed.code, 1000);
  });

  test('the connection is logged open and closed with its id and close code', async () => {
    const before = h.events('connection.open').length;
    const c = await connect(h.url);
    await h.waitForLog(() => h.events('connection.open').length > before);
    const opened = h.events('connection.open')[before];
    assert.match(opened.connectionId, /^[A-Za-z0-9_-]{20}$/);
    assert.equal(opened.sourceIp, '127.0.0.1');
    await c.close(4001, 'done here');
    const closed = await h.waitForLog((l) => l.event === 'connection.close' && l.connectionId === opened.connectionId);
    assert.equal(closed.code, 4001);
    assert.equal(closed.reason, 'done here');
  });

  test('a subprotocol we speak is chosen in our order of preference', async () => {
    const c = await connect(h.url, { protocols: ['chat', 'herald.v1'] });
    assert.equal(c.ws.protocol, 'herald.v1');
    c.ws.close();
    // Nothing in common: the response names no subprotocol and the client decides
    // (browsers and ws then fail the connection, as RFC 6455 lets them).
    const none = await RawClient.open(h.clientPort, { headers: { 'Sec-WebSocket-Protocol': 'other' } });
    assert.equal(none.status, 101);
    assert.equal(none.headers['sec-websocket-protocol'], undefined);
    none.destroy();
  });

  test('many clients at once each get their own echoes', async () => {
    const clients = await Promise.all(Array.from({ length: 50 }, () => connect(h.url)));
    clients.forEach((c, i) => c.send(`client-${i}`));
    const replies = await Promise.all(clients.map((c) => c.next()));
    replies.forEach((r, i) => assert.equal(r, `client-${i}`));
    await Promise.all(clients.map((c) => c.close()));
  });

  test('frames sent right behind the handshake request are not lost', async () => {
    // The raw client writes the upgrade and a frame in one go.
    const key = 'dGhlIHNhbXBsZSBub25jZQ==';
    const head = `GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const c = await RawClient.open(h.clientPort, { request: Buffer.concat([Buffer.from(head), maskedFrame(OP.text, 'early bird')]) });
    assert.equal(c.status, 101);
    assert.equal(c.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    const f = await c.waitFrame((fr) => fr.opcode === OP.text);
    assert.equal(f.payload.toString(), 'early bird');
    c.destroy();
  });

  test('bad handshakes are refused with a JSON reason', async () => {
    const noKey = await RawClient.open(h.clientPort, {
      request: 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n',
    });
    assert.equal(noKey.status, 400);
    const oldVersion = await RawClient.open(h.clientPort, {
      request: 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n',
    });
    assert.equal(oldVersion.status, 426);
    assert.equal(oldVersion.headers['sec-websocket-version'], '13');
    const wrongPath = await handshakeStatus(`${h.url}/elsewhere`);
    assert.equal(wrongPath.status, 404);
  });
});

describe('WebSocket limits and keepalive', () => {
  let h;
  before(async () => {
    h = await startHerald({
      websocket: {
        max_message_bytes: '1KiB',
        max_frame_bytes: '1KiB',
        idle_timeout: '800ms',
        ping_interval: '200ms',
        pong_timeout: '300ms',
        send_queue: { max_messages: 64, max_bytes: '16KiB', policy: 'close', write_timeout: '1s' },
        rate_limit: { messages_per_second: 0 },
      },
    });
  });
  after(() => h.stop());

  test('a message over the limit closes with 1009', async () => {
    const c = await connect(h.url);
    c.send('x'.repeat(1025));
    const { code } = await c.closed;
    assert.equal(code, 1009);
  });

  test('binary frames are rejected with 1003 by default, as AWS does', async () => {
    const c = await connect(h.url);
    c.ws.send(Buffer.from([1, 2, 3]));
    const { code, reason } = await c.closed;
    assert.equal(code, 1003);
    assert.equal(reason, 'binary frames are not supported');
  });

  test('protocol violations close with 1002, invalid UTF-8 with 1007', async () => {
    const unmasked = await RawClient.open(h.clientPort);
    unmasked.send(OP.text, 'hi', { mask: false });
    assert.equal((await unmasked.waitClose()).code, 1002);
    await unmasked.ended;
    const badText = await RawClient.open(h.clientPort);
    badText.send(OP.text, Buffer.from([0xc0, 0xaf]));
    assert.equal((await badText.waitClose()).code, 1007);
    await badText.ended;
  });

  test('the server pings a quiet client; a client that answers stays connected', async () => {
    const c = await connect(h.url);  // ws answers pings automatically
    let pings = 0;
    c.ws.on('ping', () => pings++);
    // Keep it active (idle timeout is 800 ms) while pings flow.
    for (let i = 0; i < 6; i++) {
      c.send(`keepalive ${i}`);
      await c.next();
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(pings >= 1, `expected pings, saw ${pings}`);
    assert.equal(c.closeInfo, undefined);
    c.ws.close();
  });

  test('a client that never answers pings is dropped after the pong timeout', async () => {
    const c = await RawClient.open(h.clientPort);
    // Ignore everything: no pong. Expect a ping, then the TCP connection to end.
    await c.waitFrame((f) => f.opcode === OP.ping, 2000);
    const start = Date.now();
    await c.ended;
    assert.ok(Date.now() - start < 2000);
    const closed = await h.waitForLog((l) => l.event === 'connection.close' && l.reason === 'pong timeout');
    assert.equal(closed.code, 1006);
  });

  test('an idle connection is closed with 1001', async () => {
    const c = await RawClient.open(h.clientPort);
    // Answer pings (so liveness is fine) but send no messages.
    c.listeners.push((f) => {
      if (f.opcode === OP.ping) c.send(OP.pong, f.payload);
      return false;
    });
    const close = await c.waitClose(3000);
    assert.equal(close.code, 1001);
    assert.equal(close.reason, 'idle timeout');
  });

  test('a client that stops reading is closed (1008) without delaying others', async () => {
    const slow = await RawClient.open(h.clientPort);
    slow.pause();  // reads nothing from now on
    const fast = await connect(h.url);
    // Echoes pile up for the slow client until its queue overflows.
    const chunk = 'q'.repeat(1000);
    let fastReplies = 0;
    const overflowed = () => h.events('connection.send_queue_full').length > 0;
    // Paced (8 KB per millisecond) so the queue only grows once the kernel's socket buffers
    // are full; bounded at 64 MB, far more than those buffers hold.
    for (let i = 0; i < 64000 && !overflowed() && !slow.socket.destroyed; i++) {
      slow.sendText(chunk);
      if (i % 500 === 0) {
        fast.send(`still here ${i}`);
        assert.equal(await fast.next(), `still here ${i}`);
        fastReplies++;
      }
      if (i % 8 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    assert.ok(overflowed(), 'the slow client never overflowed');
    const closed = await h.waitForLog((l) => l.event === 'connection.send_queue_full', 5000);
    assert.equal(closed.policy, 'close');
    const end = await h.waitForLog((l) => l.event === 'connection.close' && l.connectionId === closed.connectionId);
    assert.equal(end.code, 1008);
    assert.ok(fastReplies >= 1);
    fast.send('after');
    assert.equal(await fast.next(), 'after');
    fast.ws.close();
    slow.destroy();
  });
});

// A client that stops reading for a while fills its socket: the node waits for room (the
// worker's epoll set reports it) and goes on where it stopped once the client reads again.
for (const secure of [false, true]) {
  test(`a client that pauses reading gets everything, in order, once it reads again${secure ? ' (over TLS)' : ''}`, async () => {
    const certs = secure && makeCertificate(tempDir());
    const node = await startHerald({
      ...(certs && { tls: { mode: 'required', cert_file: certs.cert, key_file: certs.key } }),
      routes: { $default: { integration: 'echo', response: true } },
      websocket: {
        rate_limit: { messages_per_second: 0 },
        send_queue: { max_messages: 100000, max_bytes: '128MiB' },
      },
    });
    try {
      const c = await RawClient.open(node.clientPort, { tlsOptions: secure ? {} : undefined });
      const total = 24000;
      let received = 0;
      let inOrder = true;
      c.listeners.push((f) => {
        if (f.opcode === OP.text) {
          if (!f.payload.toString().startsWith(`${received}:`)) inOrder = false;
          received++;
        }
        return false;
      });
      c.pause();
      // 24 MB of echoes: far more than the kernel's buffers on both sides hold.
      const pad = 'p'.repeat(1000);
      for (let i = 0; i < total; i++) c.sendText(`${i}:${pad}`);
      const metric = async (name) => {
        const text = await (await fetch(`${node.adminUrl}/metrics`)).text();
        return Number(text.split('\n').find((l) => l.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
      };
      // The node has sent what the socket takes and holds the rest.
      for (let i = 0; i < 200 && (await metric('herald_messages_received_total')) < total; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(await metric('herald_messages_received_total'), total);
      assert.ok((await metric('herald_messages_sent_total')) < total, 'the socket never filled');
      assert.equal(received, 0);
      c.resume();
      for (let i = 0; i < 400 && received < total; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(received, total);
      assert.ok(inOrder, 'echoes out of order');
      assert.equal(await metric('herald_messages_sent_total'), total);
      c.destroy();
    } finally {
      await node.stop();
    }
  });
}

describe('TLS', () => {
  let dir;
  let cert;
  before(() => {
    dir = tempDir();
    cert = makeCertificate(dir);
  });

  test('tls.mode=auto serves ws:// and wss:// on the same port', async () => {
    const h = await startHerald({ tls: { mode: 'auto', cert_file: cert.cert, key_file: cert.key } });
    try {
      const secure = await connect(h.wssUrl);
      secure.send('over tls');
      assert.equal(await secure.next(), 'over tls');
      secure.send('t'.repeat(50000));
      assert.equal(await secure.next(), 't'.repeat(50000));
      secure.ws.close();
      const plain = await connect(h.url);
      plain.send('in the clear');
      assert.equal(await plain.next(), 'in the clear');
      plain.ws.close();
      const health = await fetch(`${h.httpUrl}/healthz`);
      assert.equal(health.status, 200);
    } finally {
      await h.stop();
    }
  });

  test('over TLS: frames right behind the upgrade, SSE and HTTP, the close handshake', async () => {
    const h = await startHerald({
      tls: { mode: 'auto', cert_file: cert.cert, key_file: cert.key },
      routes: { $default: { integration: 'echo', response: true } },
    });
    try {
      const upgrade = ['GET / HTTP/1.1', 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', '', ''].join('\r\n');
      // In the same TLS record as the request, and in a record of its own right behind it (the
      // node may have read it with the request, or find it in the socket).
      const together = await RawClient.open(h.clientPort, { tlsOptions: {}, request: Buffer.concat([Buffer.from(upgrade), maskedFrame(OP.text, 'with the request')]) });
      assert.equal(together.status, 101);
      assert.equal((await together.waitFrame((f) => f.opcode === OP.text)).payload.toString(), 'with the request');
      const socket = tls.connect({ host: '127.0.0.1', port: h.clientPort, rejectUnauthorized: false });
      await new Promise((r) => socket.once('secureConnect', r));
      const behind = new RawClient(socket);
      socket.write(upgrade);
      socket.write(maskedFrame(OP.text, 'right behind'));
      await behind.response;
      assert.equal((await behind.waitFrame((f) => f.opcode === OP.text)).payload.toString(), 'right behind');
      // The close handshake: our code echoed, then the connection ends.
      behind.send(OP.close, closePayload(1000, 'bye'));
      assert.equal((await behind.waitClose()).code, 1000);
      await behind.ended;
      together.destroy();

      // SSE and plain HTTP requests over TLS on the same port.
      const health = await new Promise((resolve, reject) => {
        https.get(`https://127.0.0.1:${h.clientPort}/healthz`, { rejectUnauthorized: false }, (res) => {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode, body }));
        }).on('error', reject);
      });
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.body), { status: 'ok' });
      const sse = await SseClient.open(`https://127.0.0.1:${h.clientPort}/sse`);
      const { connectionId } = JSON.parse((await sse.next((e) => e.event === 'session')).data);
      const posted = await fetch(`${h.adminUrl}/@connections/${connectionId}`, { method: 'POST', body: '{"over":"sse and tls"}' });
      assert.equal(posted.status, 200);
      assert.equal((await sse.next((e) => e.event === 'message')).data, '{"over":"sse and tls"}');
      sse.close();
    } finally {
      await h.stop();
    }
  });

  test('tls.mode=required refuses plain connections and negotiates TLS 1.2+', async () => {
    const h = await startHerald({ tls: { mode: 'required', cert_file: cert.cert, key_file: cert.key } });
    try {
      const secure = await connect(h.wssUrl);
      const version = secure.ws._socket.getProtocol();
      assert.ok(version === 'TLSv1.3' || version === 'TLSv1.2', version);
      secure.send('ok');
      assert.equal(await secure.next(), 'ok');
      secure.ws.close();
      await assert.rejects(connect(h.url, { timeoutMs: 1000 }));
      const old = await RawClient.open(h.clientPort, { tlsOptions: { maxVersion: 'TLSv1.1', minVersion: 'TLSv1' } }).catch((e) => e);
      assert.ok(old instanceof Error, 'TLS 1.1 must be refused');
    } finally {
      await h.stop();
    }
  });

  // A TLS connection that upgrades to WebSocket; resolves with its TLS session (the ticket
  // arrives after the handshake: Node reports it with 'session') and whether it resumed.
  function tlsUpgrade(port, session) {
    return new Promise((resolve, reject) => {
      let ticket;
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, session, minVersion: 'TLSv1.3' });
      socket.on('session', (s) => { ticket = s; });
      socket.on('error', reject);
      socket.once('secureConnect', () => {
        socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      });
      let head = '';
      socket.on('data', (d) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        const resumed = socket.isSessionReused();
        const status = head.slice(9, 12);
        setTimeout(() => { socket.destroy(); resolve({ status, resumed, session: ticket }); }, 50);
      });
    });
  }

  test('session tickets: a client resumes its TLS session, on another node too when the nodes share tls.ticket_key_file', async () => {
    const keyFile = `${dir}/ticket.key`;
    fs.writeFileSync(keyFile, crypto.randomBytes(80));
    const tlsCfg = { mode: 'required', cert_file: cert.cert, key_file: cert.key, ticket_key_file: keyFile };
    const a = await startHerald({ tls: tlsCfg });
    const b = await startHerald({ tls: tlsCfg });
    const own = await startHerald({ tls: { mode: 'required', cert_file: cert.cert, key_file: cert.key } });
    try {
      const first = await tlsUpgrade(a.clientPort);
      assert.equal(first.status, '101');
      assert.equal(first.resumed, false);
      assert.ok(first.session, 'a session ticket was sent');
      const again = await tlsUpgrade(a.clientPort, first.session);
      assert.deepEqual([again.status, again.resumed], ['101', true], 'resumed on the same node');
      const other = await tlsUpgrade(b.clientPort, again.session);
      assert.deepEqual([other.status, other.resumed], ['101', true], 'resumed on the node sharing the key');
      // A node with its own (random) key cannot read the ticket: a full handshake, still served.
      const stranger = await tlsUpgrade(own.clientPort, other.session);
      assert.deepEqual([stranger.status, stranger.resumed], ['101', false]);
      const ownFirst = await tlsUpgrade(own.clientPort);
      const ownAgain = await tlsUpgrade(own.clientPort, ownFirst.session);
      assert.equal(ownAgain.resumed, true, 'tickets are on by default');
    } finally {
      await Promise.all([a.stop(), b.stop(), own.stop()]);
    }
  });

  test('a ticket key file of the wrong size is a configuration error naming the key', () => {
    const short = `${dir}/short.key`;
    fs.writeFileSync(short, crypto.randomBytes(48));
    const file = writeJson(dir, 'tickets.json', { tls: { mode: 'required', cert_file: cert.cert, key_file: cert.key, ticket_key_file: short } });
    const r = runHerald(['--config', file, '--listen', '127.0.0.1:0', '--admin.listen', '127.0.0.1:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tls\.ticket_key_file: must hold exactly 80 bytes/);
  });

  test('an unusable key is a configuration error naming the key', () => {
    const badKey = writeJson(dir, 'bad-key.pem', 'not a key');
    const file = writeJson(dir, 'tls.json', { tls: { mode: 'auto', cert_file: cert.cert, key_file: badKey } });
    const r = runHerald(['--config', file, '--listen', '127.0.0.1:0', '--admin.listen', '127.0.0.1:0']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /tls\.key_file: cannot load private key/);
  });
});

describe('command line and configuration errors', () => {
  test('--version, --help and --check-config', () => {
    assert.match(runHerald(['--version']).stdout, /^herald \d+\.\d+\.\d+/);
    const help = runHerald(['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /HERALD_WEBSOCKET_IDLE_TIMEOUT/);
    const dir = tempDir();
    const good = writeJson(dir, 'good.json', { listen: '127.0.0.1:0' });
    const ok = runHerald(['--config', good, '--check-config']);
    assert.equal(ok.code, 0);
    assert.match(ok.stdout, /configuration OK/);
  });

  test('every configuration error is one line naming the key and where the value came from', () => {
    const dir = tempDir();
    const check = (args, env, pattern) => {
      const r = runHerald(['--check-config', '--listen', '127.0.0.1:0', ...args], { env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr.trim(), pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    };
    // An unknown HERALD_* variable is an error, with a suggestion.
    check([], { HERALD_LISTN: '127.0.0.1:1' }, /^herald: configuration error: HERALD_LISTN: not a Herald setting \(in the environment\); unset it, or did you mean HERALD_LISTEN\?$/);
    // Addresses are checked before start-up, not at bind time.
    check(['--admin.listen', '300.1.1.1:8302'], {}, /admin\.listen: "300\.1\.1\.1" is not an IP address .*\(in --admin\.listen\)$/);
    check(['--listen', 'herald.example.com:8302'], {}, /listen: "herald\.example\.com" is not an IP address/);
    // Cross-key checks say where the value came from.
    check([], { HERALD_ADMIN_API_KEYS: 'short' }, /admin\.api_keys: keys must be at least 16 characters long \(in HERALD_ADMIN_API_KEYS\)$/);
    const routes = writeJson(dir, 'routes.json', { routes: { $default: { integration: 'backnd' } } });
    check(['--config', routes], {}, new RegExp(`routes\\.\\$default\\.integration: unknown integration "backnd".*\\(in ${routes.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}\\)$`));
    const authz = writeJson(dir, 'authz.json', { auth: { authorizer: { integration: 'nope' } } });
    check(['--config', authz], {}, /auth\.authorizer\.integration: .*\(in .*authz\.json\)$/);
    // Kubernetes' service links for a Service named "herald" are not settings, and not errors.
    const k8s = runHerald(['--check-config', '--listen', '127.0.0.1:0'], {
      env: { HERALD_PORT: 'tcp://10.0.0.1:8080', HERALD_SERVICE_HOST: '10.0.0.1', HERALD_SERVICE_PORT: '8080', HERALD_PORT_8080_TCP_ADDR: '10.0.0.1' },
    });
    assert.equal(k8s.code, 0, k8s.stderr);
    // One-character host names are host names; warn and warning are both log levels.
    const ok = writeJson(dir, 'ok.json', { integrations: { b: { type: 'http', url: 'http://a/' } }, routes: { $default: { integration: 'b' } }, log: { level: 'warning' } });
    const r = runHerald(['--check-config', '--config', ok]);
    assert.equal(r.code, 0, r.stderr);
  });

  test('--print-config round-trips: secrets redacted (and refused as values) unless --show-secrets', () => {
    const dir = tempDir();
    const file = writeJson(dir, 'c.json', { admin: { api_keys: ['an-admin-key-of-some-length'] }, listen: '127.0.0.1:0' });
    const printed = runHerald(['--config', file, '--print-config']);
    assert.equal(printed.code, 0, printed.stderr);
    assert.ok(!printed.stdout.includes('an-admin-key-of-some-length'));
    const redacted = writeJson(dir, 'printed.json', printed.stdout);
    const refused = runHerald(['--config', redacted, '--check-config']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /admin\.api_keys: holds the placeholder --print-config writes instead of a secret; .*--show-secrets/);
    const shown = runHerald(['--config', file, '--print-config', '--show-secrets']);
    const full = writeJson(dir, 'full.json', shown.stdout);
    const again = runHerald(['--config', full, '--check-config']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(runHerald(['--show-secrets', '--check-config']).code, 2);
  });

  test('a bad file gives one clear line and exit code 2', () => {
    const dir = tempDir();
    const cases = [
      [{ websocket: { idle_timeot: '5s' } }, /websocket\.idle_timeot: unknown key .*did you mean 'websocket\.idle_timeout'/],
      [{ websocket: { idle_timeout: 5 } }, /websocket\.idle_timeout: expected a duration/],
      ['{"listen": ', /invalid JSON: parse error at line 1/],
    ];
    for (const [content, pattern] of cases) {
      const file = writeJson(dir, 'bad.json', content);
      const r = runHerald(['--config', file]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, pattern);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    const missing = runHerald(['--config', '/nonexistent/herald.json']);
    assert.equal(missing.code, 2);
  });

  test('environment variables and flags override the file', () => {
    const dir = tempDir();
    const file = writeJson(dir, 'c.json', { log: { format: 'text' } });
    const r = runHerald(['--config', file, '--print-config', '--log-format', 'json'], {
      env: { HERALD_WEBSOCKET_IDLE_TIMEOUT: '42s' },
    });
    assert.equal(r.code, 0, r.stderr);
    const effective = JSON.parse(r.stdout);
    assert.equal(effective.log.format, 'json');
    assert.equal(effective.websocket.idle_timeout, '42s');
    const bad = runHerald(['--config', file, '--check-config'], { env: { HERALD_WEBSOCKET_IDLE_TIMEOUT: 'soon' } });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /\(in HERALD_WEBSOCKET_IDLE_TIMEOUT\)/);
  });

  test('an address already in use is a start-up failure (exit 1) naming the listener', async () => {
    const h = await startHerald();
    try {
      const r = runHerald(['--listen', `127.0.0.1:${h.clientPort}`, '--admin.listen', '127.0.0.1:0']);
      assert.equal(r.code, 1);
      // One line: the listener, the address, the reason and what to do; no Boost source path.
      assert.equal(r.stderr.trim(), `herald: listen: cannot listen on 127.0.0.1:${h.clientPort}: Address already in use; another process listens there: stop it, or set listen to another port`);
    } finally {
      await h.stop();
    }
  });
});

describe('orderly stop', () => {
  test('SIGTERM: readiness drops, clients get 1001, the process exits 0', async () => {
    const h = await startHerald();
    const clients = await Promise.all([connect(h.url), connect(h.url), connect(h.url)]);
    h.proc.kill('SIGTERM');
    const codes = await Promise.all(clients.map((c) => c.closed));
    for (const { code, reason } of codes) {
      assert.equal(code, 1001);
      assert.equal(reason, 'server draining; reconnect');
    }
    const { code } = await h.waitExit();
    assert.equal(code, 0);
    assert.ok(h.events('server.stopping').length === 1);
  });

  test('a second signal stops at once even with a stuck client', async () => {
    const h = await startHerald({ shutdown: { drain_timeout: '30s' } });
    const stuck = await RawClient.open(h.clientPort);  // never answers the close frame
    h.proc.kill('SIGTERM');
    await stuck.waitClose();
    const t0 = Date.now();
    h.proc.kill('SIGINT');
    const { code } = await h.waitExit();
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 3000);
    stuck.destroy();
  });
});
