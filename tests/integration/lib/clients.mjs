// WebSocket clients for tests: a queued wrapper around the `ws` package, and a raw client that
// speaks RFC 6455 by hand for what a well-behaved library never does (ignore pings, stop
// reading, send malformed frames).
import net from 'node:net';
import tls from 'node:tls';
import crypto from 'node:crypto';
import WebSocket from 'ws';

// A connected client whose messages queue up until a test asks for them.
export class TestClient {
  constructor(ws) {
    this.ws = ws;
    this.messages = [];
    this.waiting = [];
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        for (const w of this.waiting) w.reject(new Error(`closed (${code} ${reason}) while waiting for a message`));
        this.waiting = [];
        resolve(this.closeInfo);
      });
    });
    ws.on('message', (data, isBinary) => {
      const msg = isBinary ? data : data.toString();
      const w = this.waiting.shift();
      if (w) {
        clearTimeout(w.timer);
        w.resolve(msg);
      } else {
        this.messages.push(msg);
      }
    });
    ws.on('error', () => {});
  }

  send(data) {
    this.ws.send(typeof data === 'object' && !(data instanceof Buffer) ? JSON.stringify(data) : data);
  }

  // The next message (a string for text frames, a Buffer for binary ones).
  next(timeoutMs = 3000) {
    if (this.messages.length) return Promise.resolve(this.messages.shift());
    if (this.closeInfo) return Promise.reject(new Error(`closed (${this.closeInfo.code}) while waiting for a message`));
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject };
      entry.timer = setTimeout(() => {
        this.waiting = this.waiting.filter((w) => w !== entry);
        reject(new Error(`no message within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push(entry);
    });
  }

  async nextJson(timeoutMs) {
    return JSON.parse(await this.next(timeoutMs));
  }

  // Resolves true if no message arrives within `ms`.
  async silentFor(ms) {
    try {
      const m = await this.next(ms);
      this.messages.unshift(m);
      return false;
    } catch (e) {
      if (this.closeInfo) throw e;
      return true;
    }
  }

  close(code = 1000, reason = '') {
    this.ws.close(code, reason);
    return this.closed;
  }
}

export function connect(url, { protocols, headers, timeoutMs = 5000, ...options } = {}) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers, rejectUnauthorized: false, handshakeTimeout: timeoutMs, ...options });
    const client = new TestClient(ws);
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => {
        const err = new Error(`handshake rejected with ${res.statusCode}`);
        err.status = res.statusCode;
        err.headers = res.headers;
        err.body = body;
        reject(err);
      });
    });
    ws.once('error', reject);
  });
}

// The HTTP status (and body) a handshake is refused with; fails if it is accepted.
export async function handshakeStatus(url, options = {}) {
  try {
    const c = await connect(url, options);
    c.ws.terminate();
  } catch (e) {
    if (e.status) return { status: e.status, body: e.body, headers: e.headers };
    throw e;
  }
  throw new Error('handshake unexpectedly succeeded');
}

// ---------------------------------------------------------------------------
// Raw RFC 6455 client.

export function maskedFrame(opcode, payload, { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload ?? '');
  const len = data.length;
  const header = [((fin ? 0x80 : 0) | rsv | opcode) & 0xff];
  const maskBit = mask ? 0x80 : 0;
  if (len < 126) header.push(maskBit | len);
  else if (len < 65536) header.push(maskBit | 126, len >> 8, len & 0xff);
  else {
    header.push(maskBit | 127, 0, 0, 0, 0);
    header.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(header), data]);
  const key = crypto.randomBytes(4);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = data[i] ^ key[i & 3];
  return Buffer.concat([Buffer.from(header), key, body]);
}

export const OP = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };

export function closePayload(code, reason = '') {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason));
  b.writeUInt16BE(code, 0);
  b.write(reason, 2);
  return b;
}

// Opens a TCP (or TLS) connection, sends `request` (or a valid upgrade), parses the response
// head, then decodes server frames into `frames`. Reading can be paused to play a slow client.
export class RawClient {
  static async open(port, { path = '/', headers = {}, request, tlsOptions, host = '127.0.0.1' } = {}) {
    const socket = tlsOptions
      ? tls.connect({ port, host, rejectUnauthorized: false, ...tlsOptions })
      : net.connect({ port, host });
    await new Promise((resolve, reject) => {
      socket.once(tlsOptions ? 'secureConnect' : 'connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawClient(socket);
    const key = crypto.randomBytes(16).toString('base64');
    const head =
      request ??
      [
        `GET ${path} HTTP/1.1`,
        'Host: 127.0.0.1',
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${key}`,
        'Sec-WebSocket-Version: 13',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n');
    socket.write(head);
    await c.response;
    return c;
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.frames = [];
    this.listeners = [];
    this.ended = new Promise((resolve) => socket.on('close', resolve));
    this.response = new Promise((resolve, reject) => {
      this.resolveResponse = resolve;
      socket.once('close', () => reject(new Error('closed before a response')));
    });
    this.response.catch(() => {});
    socket.on('data', (chunk) => this.onData(chunk));
    socket.on('error', () => {});
  }

  onData(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    if (!this.head) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = this.buffer.subarray(0, end).toString();
      this.buffer = this.buffer.subarray(end + 4);
      const [statusLine, ...lines] = text.split('\r\n');
      this.status = Number(statusLine.split(' ')[1]);
      this.headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
      this.head = text;
      this.resolveResponse({ status: this.status, headers: this.headers });
    }
    for (;;) {
      if (this.buffer.length < 2) return;
      const b0 = this.buffer[0];
      const b1 = this.buffer[1];
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (this.buffer.length < 4) return;
        len = this.buffer.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (this.buffer.length < 10) return;
        len = Number(this.buffer.readBigUInt64BE(2));
        off = 10;
      }
      if (this.buffer.length < off + len) return;
      const frame = { fin: !!(b0 & 0x80), rsv: b0 & 0x70, opcode: b0 & 0x0f, payload: this.buffer.subarray(off, off + len) };
      this.buffer = this.buffer.subarray(off + len);
      if (frame.opcode === OP.close) {
        frame.code = len >= 2 ? frame.payload.readUInt16BE(0) : 1005;
        frame.reason = len > 2 ? frame.payload.subarray(2).toString() : '';
      }
      this.frames.push(frame);
      this.listeners = this.listeners.filter((l) => !l(frame));
    }
  }

  // Resolves with the first frame (already received or future) that matches `pred`.
  waitFrame(pred, timeoutMs = 3000) {
    const found = this.frames.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs);
      this.listeners.push((f) => {
        if (!pred(f)) return false;
        clearTimeout(timer);
        resolve(f);
        return true;
      });
    });
  }

  waitClose(timeoutMs) {
    return this.waitFrame((f) => f.opcode === OP.close, timeoutMs);
  }

  send(opcode, payload, options) {
    this.socket.write(maskedFrame(opcode, payload, options));
  }

  sendText(text) {
    this.send(OP.text, text);
  }

  pause() {
    this.socket.pause();
  }

  resume() {
    this.socket.resume();
  }

  destroy() {
    this.socket.destroy();
  }
}

// Plain HTTP request on a raw socket (for requests fetch() will not send, e.g. huge headers).
export function rawHttp(port, text, { timeoutMs = 3000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ status: 0, raw: data, timedOut: true });
    }, timeoutMs);
    socket.on('connect', () => socket.write(text));
    socket.on('data', (c) => (data += c));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      const status = Number((data.split('\r\n')[0] || '').split(' ')[1]) || 0;
      const body = data.includes('\r\n\r\n') ? data.slice(data.indexOf('\r\n\r\n') + 4) : '';
      resolve({ status, raw: data, body });
    });
  });
}
