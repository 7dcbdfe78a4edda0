// Herald client SDK: one ES module, no dependencies, for browsers and Node >= 20.
//
//   import { connect } from './herald.js';
//   const client = connect('wss://herald.example.com/', { token: () => fetchToken() });
//   await client.subscribe('orders.42', (data, meta) => render(data, meta.offset));
//   const answer = await client.send('chat/join', { room: 'r1' }, { reply: true });
//
// What it does for you: reconnects with exponential backoff and full jitter; resubscribes every
// channel after a reconnect from the last offset it delivered, so history channels lose
// nothing and deliver nothing twice; detects dead connections with heartbeats (browsers cannot
// see pings); matches replies to requests by id; stops for good on close codes that say
// retrying cannot help (kicked, auth refused, protocol errors); falls back to Server-Sent Events
// (with POSTs for what it sends) where WebSockets cannot get through, and goes back to
// WebSocket once it can.

/** Connection states, in the order a healthy client goes through them. */
export const State = Object.freeze({
  connecting: 'connecting',
  open: 'open',
  reconnecting: 'reconnecting',
  closed: 'closed',
});

/** An error answered by Herald (`{"type":"error","code":...}`) or raised by the client. */
export class HeraldError extends Error {
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'HeraldError';
    this.code = code;
    this.details = details;
  }
}

const DEFAULTS = {
  protocols: [],
  tokenParameter: 'access_token',
  reconnect: { initialDelay: 250, maxDelay: 10000, maxAttempts: Infinity },
  heartbeat: { interval: 20000, timeout: 10000, action: '$heartbeat' },
  requestTimeout: 10000,
  maxQueued: 256,
  actions: { subscribe: 'subscribe', unsubscribe: 'unsubscribe', publish: 'publish', presence: 'presence' },
  // openTimeout: a WebSocket that has not opened, or has opened and carried nothing back, by
  // then is taken as blocked. retryWebSocketAfter: how long to stay on SSE before trying again.
  fallback: { path: '/sse', openTimeout: 5000, retryWebSocketAfter: 60000 },
};

// A WebSocket-shaped transport over Herald's SSE fallback: an EventSource stream for what the
// server sends, a POST (in order, one at a time) for each message sent, named by the stream's
// session; close() ends the stream with a DELETE. The client drives it like a WebSocket.
class SseTransport {
  constructor(url, EventSourceImpl, fetchImpl) {
    this.url = new URL(url);
    this.fetch = fetchImpl;
    this.readyState = 0;
    this.chain = Promise.resolve();
    const es = new EventSourceImpl(url);
    this.es = es;
    es.addEventListener('session', (e) => {
      const s = JSON.parse(e.data);
      this.session = s.session;
      this.connectionId = s.connectionId;
      this.readyState = 1;
      this.onopen?.();
    });
    es.onmessage = (e) => this.onmessage?.({ data: e.data });
    es.addEventListener('binary', (e) => {
      const bytes = Uint8Array.from(atob(e.data), (c) => c.charCodeAt(0));
      this.onmessage?.({ data: bytes.buffer });
    });
    es.addEventListener('close', (e) => {
      let c = { code: 1006, reason: '' };
      try {
        c = JSON.parse(e.data);
      } catch {
        // keep 1006
      }
      this.shut(c.code, c.reason);
    });
    // EventSource would reconnect by itself; the client reconnects (and resumes) itself instead.
    es.onerror = () => this.shut(1006, this.readyState === 0 ? 'stream failed' : 'stream lost');
  }

  send(text) {
    if (this.readyState !== 1) throw new Error('the stream is not open');
    const headers = { 'Herald-Session': this.session, 'Content-Type': 'text/plain;charset=UTF-8' };
    this.chain = this.chain
      .then(() => this.fetch(this.postUrl(), { method: 'POST', headers, body: text }))
      .then((r) => {
        // 404: the stream is gone (its node too); 429: throttled, as a WebSocket would be.
        if (r.status === 404) this.shut(1006, 'session lost');
      })
      .catch(() => this.shut(1006, 'send failed'));
  }

  postUrl() {
    return `${this.url.origin}${this.url.pathname}`;
  }

  close() {
    if (this.readyState >= 2) return;
    const session = this.session;
    this.readyState = 3;
    this.es.close();
    if (session) this.fetch(this.postUrl(), { method: 'DELETE', headers: { 'Herald-Session': session } }).catch(() => {});
  }

  shut(code, reason) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.es.close();
    this.onclose?.({ code, reason });
  }
}

// Close codes after which reconnecting cannot help. 1000 from the server means the connection
// was ended on purpose (the admin API deleted it, the user was disconnected).
const FINAL_CODES = new Set([1000, 1002, 1003, 1007, 1009, 1010]);
const TOKEN_EXPIRED = 4001;

/**
 * Opens a client; it starts connecting at once and keeps itself connected until close().
 * @param {string} url ws:// or wss:// URL of Herald (or of its load balancer)
 * @param {object} [options] see herald.d.ts
 */
export function connect(url, options = {}) {
  return new HeraldClient(url, options);
}

export class HeraldClient {
  constructor(url, options = {}) {
    this.url = url;
    this.options = {
      ...DEFAULTS,
      ...options,
      reconnect: options.reconnect === false ? false : { ...DEFAULTS.reconnect, ...options.reconnect },
      heartbeat: options.heartbeat === false ? false : { ...DEFAULTS.heartbeat, ...options.heartbeat },
      actions: { ...DEFAULTS.actions, ...options.actions },
      fallback: options.fallback === false ? false : { ...DEFAULTS.fallback, ...options.fallback },
    };
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.EventSource = options.EventSource ?? globalThis.EventSource;
    this.fetch = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (!this.EventSource || !this.fetch) this.options.fallback = false;
    if (!this.WebSocket && !this.options.fallback) {
      throw new HeraldError('no_websocket', 'no WebSocket implementation: pass options.WebSocket');
    }
    this.transport = 'websocket'; // or 'sse' while WebSockets do not get through
    this.webSocketFailedAt = this.WebSocket ? undefined : Infinity;
    this.state = State.connecting;
    this.attempt = 0; // reconnect attempts since the last successful open
    this.listeners = new Map();
    this.subscriptions = new Map(); // channel -> { handler, offset, epoch, options }
    this.pending = new Map(); // request id -> { resolve, reject, timer }
    this.queue = []; // frames sent while not open, flushed on open
    this.nextId = 1;
    this.ws = null;
    this.timers = new Set();
    this.stats = { opens: 0, reconnects: 0, heartbeatTimeouts: 0, duplicatesDropped: 0 };
    this.opened = new Promise((resolve, reject) => {
      this.resolveOpened = resolve;
      this.rejectOpened = reject;
    });
    this.opened.catch(() => {}); // a client closed before opening is not an unhandled rejection
    this.open();
  }

  // ---- events ----

  /** Adds a listener: 'state', 'open', 'close', 'message', 'resync', 'error'. Returns a remover. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    this.listeners.get(event)?.delete(fn);
  }

  emit(event, value) {
    for (const fn of [...(this.listeners.get(event) ?? [])]) {
      try {
        fn(value);
      } catch (e) {
        if (event !== 'error') this.emit('error', e);
      }
    }
  }

  setState(state, extra = {}) {
    if (this.state === state) return;
    const previous = this.state;
    this.state = state;
    this.emit('state', { state, previous, ...extra });
  }

  // ---- connection ----

  async open() {
    try {
      await this.connectSocket();
    } catch (e) {
      this.finish(0, `cannot connect: ${e.message}`);
    }
  }

  // SSE when WebSockets failed lately (or there is no WebSocket), else WebSocket.
  chooseTransport() {
    const fb = this.options.fallback;
    if (!fb) return 'websocket';
    const failed = this.webSocketFailedAt;
    return failed !== undefined && Date.now() - failed < fb.retryWebSocketAfter ? 'sse' : 'websocket';
  }

  sseUrl(wsUrl) {
    const u = new URL(wsUrl);
    u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
    u.pathname = this.options.fallback.path;
    return u.toString();
  }

  // The WebSocket did not get through: use SSE for a while (retryWebSocketAfter), at once.
  webSocketBlocked(ws, why) {
    if (ws !== this.ws) return;
    this.webSocketFailedAt = Date.now();
    this.abandon(4000, why);
    this.emit('fallback', { from: 'websocket', to: 'sse', reason: why });
    this.open();
  }

  async connectSocket() {
    let url = this.url;
    const { token } = this.options;
    if (token) {
      let value;
      try {
        value = typeof token === 'function' ? await token() : token;
      } catch (e) {
        return this.scheduleReconnect({ code: 0, reason: `token: ${e.message}` });
      }
      if (this.state === State.closed) return;
      const u = new URL(url);
      u.searchParams.set(this.options.tokenParameter, value);
      url = u.toString();
    }
    this.transport = this.chooseTransport();
    this.awaitingFrame = false;
    this.everOpened = false;
    this.handshakeStatus = undefined;
    clearTimeout(this.openTimer);
    if (this.transport === 'sse') {
      const sse = new SseTransport(this.sseUrl(url), this.EventSource, this.fetch);
      this.ws = sse;
      sse.onopen = () => this.onOpen(sse);
      sse.onmessage = (ev) => this.onFrame(sse, ev.data);
      sse.onclose = (ev) => this.onClose(sse, ev.code, ev.reason);
      return;
    }
    const ws = new this.WebSocket(url, this.options.protocols);
    this.ws = ws;
    const fb = this.options.fallback;
    if (fb) {
      // Blocked: no open (a proxy that holds the upgrade), or nothing back after it (one that
      // answers 101 and then passes nothing). A refused handshake is caught by onerror below.
      this.awaitingFrame = true;
      this.openTimer = setTimeout(() => {
        if (ws === this.ws && (!this.everOpened || this.awaitingFrame)) this.webSocketBlocked(ws, 'websocket timeout');
      }, fb.openTimeout);
    }
    ws.onopen = () => this.onOpen(ws);
    ws.onmessage = (ev) => this.onFrame(ws, ev.data);
    ws.onerror = (ev) => {
      // Node's `ws` says why a handshake failed ("Unexpected server response: 401"); browsers
      // do not, so there a refused handshake is retried with backoff like a network error.
      const m = /Unexpected server response: (\d+)/.exec(ev?.message ?? ev?.error?.message ?? '');
      if (m) this.handshakeStatus = Number(m[1]);
      // A connection that never opened is over; some implementations (Node 20's) fire no
      // close event after a failed connect, so do not wait for one. With the fallback on, a
      // handshake that failed for a reason other than auth moves to SSE at once.
      if (!this.everOpened) {
        const auth = this.handshakeStatus === 401 || this.handshakeStatus === 403;
        if (this.options.fallback && !auth) return this.webSocketBlocked(ws, 'websocket failed');
        this.onClose(ws, 1006, 'connection failed');
      }
    };
    ws.onclose = (ev) => this.onClose(ws, ev.code, ev.reason);
  }

  onOpen(ws) {
    if (ws !== this.ws) return;
    this.everOpened = true;
    this.attempt = 0;
    this.stats.opens++;
    if (this.stats.opens > 1) this.stats.reconnects++;
    this.lastFrameAt = Date.now();
    this.setState(State.open, { transport: this.transport });
    this.armHeartbeat();
    if (this.transport === 'websocket' && this.awaitingFrame) {
      // Prove that frames come back (a proxy may pass the upgrade and nothing after it).
      ws.send(JSON.stringify({ action: this.options.heartbeat ? this.options.heartbeat.action : '$heartbeat', id: `hb-${this.nextId++}` }));
    }
    if (this.transport === 'sse') this.probeLater();
    // Subscriptions first (from their last offsets), then what was queued while away.
    for (const [channel, sub] of this.subscriptions) this.resubscribe(channel, sub);
    const queued = this.queue.splice(0);
    for (const frame of queued) ws.send(frame);
    this.resolveOpened();
    this.emit('open', { reconnect: this.stats.opens > 1, transport: this.transport });
  }

  // On SSE: after retryWebSocketAfter, see whether a WebSocket gets through now (it opens and
  // answers a heartbeat); if so, move back to it (subscriptions resume from their offsets).
  probeLater() {
    const fb = this.options.fallback;
    if (!fb || !this.WebSocket || !Number.isFinite(fb.retryWebSocketAfter)) return;
    const current = this.ws;
    this.later(fb.retryWebSocketAfter, () => {
      if (this.ws !== current || this.state !== State.open) return;
      let probe;
      try {
        probe = new this.WebSocket(this.url, this.options.protocols);
      } catch {
        return this.probeLater();
      }
      const done = (ok) => {
        clearTimeout(timer);
        probe.onopen = probe.onmessage = probe.onerror = probe.onclose = null;
        try {
          probe.close();
        } catch {
          // closing anyway
        }
        if (this.ws !== current || this.state !== State.open) return;
        if (!ok) return this.probeLater();
        this.webSocketFailedAt = undefined;
        this.emit('fallback', { from: 'sse', to: 'websocket', reason: 'websocket gets through again' });
        this.reconnect();
      };
      const timer = setTimeout(() => done(false), fb.openTimeout);
      probe.onopen = () => probe.send(JSON.stringify({ action: '$heartbeat', id: 'probe' }));
      probe.onmessage = () => done(true);
      probe.onerror = () => done(false);
      probe.onclose = () => done(false);
    });
  }

  onClose(ws, code, reason) {
    if (ws !== this.ws) return; // an abandoned socket (heartbeat timeout) closing late
    clearTimeout(this.openTimer);
    this.ws = null;
    this.disarmHeartbeat();
    const info = { code, reason, status: this.handshakeStatus };
    if (this.state === State.closed) return;
    // Requests in flight are lost with the connection (subscriptions are replayed on open).
    this.rejectPending(new HeraldError('disconnected', `connection closed (${code}) before the reply`));
    if (!this.everOpened && (info.status === 401 || info.status === 403)) {
      return this.finish(code, `handshake refused with ${info.status}`, info);
    }
    if (FINAL_CODES.has(code) || (code >= 4000 && code < 5000 && !this.canRefresh(code))) {
      return this.finish(code, reason, info);
    }
    this.scheduleReconnect(info);
  }

  // A 4001 (token expired) is worth a reconnect only if a fresh token can be fetched.
  canRefresh(code) {
    return code === TOKEN_EXPIRED && typeof this.options.token === 'function';
  }

  scheduleReconnect(info) {
    const r = this.options.reconnect;
    if (!r || this.attempt >= r.maxAttempts) {
      return this.finish(info.code, info.reason || 'gave up reconnecting', info);
    }
    // Full jitter: uniform in [0, min(max, initial * 2^attempt)], so a node drain spreads its
    // clients' reconnects instead of synchronising them.
    const ceiling = Math.min(r.maxDelay, r.initialDelay * 2 ** this.attempt);
    const delay = Math.round(Math.random() * ceiling);
    this.attempt++;
    this.setState(State.reconnecting, { ...info, attempt: this.attempt, delay });
    this.emit('close', { ...info, willReconnect: true });
    this.later(delay, () => {
      if (this.state === State.reconnecting) this.open();
    });
  }

  finish(code, reason, info = {}) {
    this.clearTimers();
    clearTimeout(this.openTimer);
    this.setState(State.closed, { ...info, code, reason });
    const error = new HeraldError('closed', `connection closed: ${code} ${reason ?? ''}`.trim(), { code, reason });
    this.rejectPending(error);
    for (const sub of this.subscriptions.values()) {
      for (const w of sub.waiters.splice(0)) w.reject(error);
    }
    this.queue = [];
    this.rejectOpened(error);
    this.emit('close', { ...info, code, reason, willReconnect: false });
  }

  /** Closes for good (no reconnect). */
  close(code = 1000, reason = '') {
    if (this.state === State.closed) return;
    const ws = this.ws;
    this.ws = null;
    this.finish(code, reason || 'closed by the client');
    try {
      ws?.close(code, reason);
    } catch {
      // already closing
    }
  }

  /**
   * Drops the current connection and reconnects at once, resuming every subscription (after a
   * network change, or to try resume by hand). The old socket is abandoned, not waited for.
   */
  reconnect() {
    if (this.state === State.closed) return;
    this.abandon(4000, 'client reconnect');
    this.attempt = 0;
    this.scheduleReconnect({ code: 4000, reason: 'client reconnect' });
  }

  // Forgets the current socket (its late events are ignored) and closes it.
  abandon(code, reason) {
    const ws = this.ws;
    this.ws = null;
    this.disarmHeartbeat();
    this.rejectPending(new HeraldError('disconnected', `connection dropped (${reason}) before the reply`));
    try {
      ws?.close(code, reason);
    } catch {
      // already closing
    }
  }

  // ---- heartbeat ----

  armHeartbeat() {
    const hb = this.options.heartbeat;
    if (!hb) return;
    this.heartbeatTimer = setInterval(() => {
      const ws = this.ws;
      if (!ws || this.state !== State.open) return;
      // Anything received counts as a sign of life; ask only when the line has been quiet.
      if (Date.now() - this.lastFrameAt < hb.interval) return;
      const id = `hb-${this.nextId++}`;
      ws.send(JSON.stringify({ action: hb.action, id }));
      this.heartbeatDeadline = setTimeout(() => {
        if (ws !== this.ws || Date.now() - this.lastFrameAt < hb.timeout) return;
        // Dead: no answer. Abandon the socket (its close may take minutes) and reconnect now.
        this.stats.heartbeatTimeouts++;
        this.abandon(4000, 'heartbeat timeout');
        this.scheduleReconnect({ code: 1006, reason: 'heartbeat timeout' });
      }, hb.timeout);
    }, Math.max(50, Math.min(hb.interval, hb.timeout) / 2));
  }

  disarmHeartbeat() {
    clearInterval(this.heartbeatTimer);
    clearTimeout(this.heartbeatDeadline);
  }

  later(ms, fn) {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  clearTimers() {
    this.disarmHeartbeat();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  rejectPending(error) {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(error);
    }
    this.pending.clear();
  }

  // ---- frames ----

  onFrame(ws, data) {
    if (ws !== this.ws) return;
    this.lastFrameAt = Date.now();
    if (this.awaitingFrame) {
      this.awaitingFrame = false;
      clearTimeout(this.openTimer);
    }
    if (typeof data !== 'string') {
      this.emit('message', { data, raw: true });
      return;
    }
    let m;
    try {
      m = JSON.parse(data);
    } catch {
      this.emit('message', { data, raw: true });
      return;
    }
    if (m && typeof m === 'object' && !Array.isArray(m)) {
      if (m.type === 'heartbeat') return;
      if (m.id !== undefined && this.pending.has(m.id)) return this.settle(m);
      if (m.type === 'message' && typeof m.channel === 'string' && this.subscriptions.has(m.channel)) {
        return this.deliver(this.subscriptions.get(m.channel), m);
      }
      if (m.type === 'resync' && typeof m.channel === 'string' && this.subscriptions.has(m.channel)) {
        // Pushed by Herald while connected: the channel's history was lost (Redis restarted
        // without its data) and what this client missed cannot be told apart. Delivery goes on
        // from the position the frame names; the application reloads its state.
        const sub = this.subscriptions.get(m.channel);
        const since = sub.offset;
        sub.epoch = m.epoch;  // undefined when the history is empty for now: resumes from 0
        sub.offset = m.offset;
        this.emit('resync', { channel: m.channel, since, reply: m });
        sub.options.onResync?.(m);
        return;
      }
      if ((m.type === 'join' || m.type === 'leave') && this.subscriptions.has(m.channel)) {
        this.subscriptions.get(m.channel).options.onPresence?.(m);
        return;
      }
    }
    this.emit('message', { data: m, raw: false });
  }

  deliver(sub, m) {
    if (typeof m.offset === 'number') {
      // After a resume the history and live messages meet: never hand over one twice.
      if (sub.epoch === m.epoch && sub.offset !== undefined && m.offset <= sub.offset) {
        this.stats.duplicatesDropped++;
        return;
      }
      sub.offset = m.offset;
      sub.epoch = m.epoch;
    }
    try {
      sub.handler(m.data, { channel: m.channel, offset: m.offset, epoch: m.epoch, id: m.id });
    } catch (e) {
      this.emit('error', e);
    }
  }

  settle(m) {
    const p = this.pending.get(m.id);
    this.pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.type === 'error') p.reject(new HeraldError(m.code ?? 'error', m.message ?? 'request failed', m));
    else p.resolve(m);
  }

  // Sends now when open, else queues (bounded) for the next open.
  transmit(frame) {
    if (this.state === State.closed) throw new HeraldError('closed', 'the client is closed');
    if (this.ws && this.state === State.open) {
      this.ws.send(frame);
      return;
    }
    if (this.queue.length >= this.options.maxQueued) {
      throw new HeraldError('queue_full', `more than ${this.options.maxQueued} messages queued while disconnected`);
    }
    this.queue.push(frame);
  }

  // Sends `body` with a fresh id; resolves with the reply carrying that id.
  request(body, { timeout = this.options.requestTimeout } = {}) {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new HeraldError('timeout', `no reply within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer });
      try {
        this.transmit(JSON.stringify({ ...body, id }));
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(e);
      }
    });
  }

  // ---- API ----

  /**
   * Sends a message to a route: `{"action": action, ...payload}`. With `{reply: true}` an `id`
   * is added and the promise resolves with the answer that carries it (two-way routes whose
   * backend echoes `id`, and Herald's own actions); otherwise it resolves once sent or queued.
   */
  send(action, payload = {}, { reply = false, timeout } = {}) {
    const body = { action, ...payload };
    if (reply) return this.request(body, { timeout });
    try {
      this.transmit(JSON.stringify(body));
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Subscribes `handler(data, meta)` to a channel. `since`/`epoch` resume after a known offset.
   * Resolves with Herald's reply (`offset`, `epoch`, `recovered` on history channels).
   * After every reconnect the subscription is renewed from the last offset delivered.
   */
  subscribe(channel, handler, options = {}) {
    if (this.state === State.closed) return Promise.reject(new HeraldError('closed', 'the client is closed'));
    const sub = { handler, options, offset: options.since, epoch: options.epoch, waiters: [] };
    this.subscriptions.set(channel, sub);
    const confirmed = new Promise((resolve, reject) => sub.waiters.push({ resolve, reject }));
    // Not open yet: onOpen subscribes (and re-subscribes after every reconnect).
    if (this.state === State.open) this.resubscribe(channel, sub);
    return confirmed;
  }

  subscribeBody(channel, sub) {
    const body = { action: this.options.actions.subscribe, channel };
    if (sub.offset !== undefined) {
      body.since = sub.offset;
      if (sub.epoch !== undefined) body.epoch = sub.epoch;
    }
    return body;
  }

  noteSubscribed(channel, sub, reply, resumedFrom) {
    for (const w of sub.waiters.splice(0)) w.resolve(reply);
    if (sub.epoch === undefined && reply.epoch !== undefined) sub.epoch = reply.epoch;
    // With no message seen yet, resume from the channel's position when we subscribed.
    if (sub.offset === undefined && typeof reply.offset === 'number') sub.offset = reply.offset;
    if (resumedFrom !== undefined && reply.recovered === false) {
      // The gap could not be filled (history trimmed, epoch changed, too far behind): tell the
      // application to reload its state; live messages continue from here.
      sub.epoch = reply.epoch;
      sub.offset = reply.offset;
      this.emit('resync', { channel, since: resumedFrom, reply });
      sub.options.onResync?.(reply);
    }
  }

  resubscribe(channel, sub) {
    const since = sub.offset;
    this.request(this.subscribeBody(channel, sub)).then(
      (reply) => {
        if (this.subscriptions.get(channel) === sub) this.noteSubscribed(channel, sub, reply, since);
      },
      (e) => {
        if (e.code === 'disconnected' || this.subscriptions.get(channel) !== sub) return; // replayed on the next open
        if (sub.waiters.length) {
          // The first subscribe was refused (forbidden, invalid channel): it never existed.
          this.subscriptions.delete(channel);
          for (const w of sub.waiters.splice(0)) w.reject(e);
        } else {
          this.emit('error', new HeraldError(e.code ?? 'resubscribe_failed', `resubscribe ${channel}: ${e.message}`, e.details));
        }
      },
    );
  }

  /** Stops delivering a channel and tells Herald. */
  async unsubscribe(channel) {
    this.subscriptions.delete(channel);
    if (this.state !== State.open) return { type: 'unsubscribed', channel };
    return this.request({ action: this.options.actions.unsubscribe, channel });
  }

  /** Publishes to a channel through the client publish action (if the server allows it). */
  publish(channel, data) {
    return this.request({ action: this.options.actions.publish, channel, data });
  }

  /** Who is on a presence channel. */
  presence(channel) {
    return this.request({ action: this.options.actions.presence, channel });
  }

  /** The last offset and epoch delivered on a channel (to store and resume from later). */
  position(channel) {
    const sub = this.subscriptions.get(channel);
    return sub ? { offset: sub.offset, epoch: sub.epoch } : undefined;
  }
}
