// A Server-Sent Events client for tests, written from the WHATWG spec's parsing rules: events
// (event, id, data lines joined by \n), comments kept apart, the stream's end noticed. Used
// to drive Herald's fallback transport the way any SSE client of any language would.
import http from 'node:http';
import https from 'node:https';

export class SseClient {
  static open(url, { headers = {} } = {}) {
    return new Promise((resolve, reject) => {
      // https: the tests' own certificate.
      const client = url.startsWith('https:') ? https : http;
      const tlsOptions = url.startsWith('https:') ? { rejectUnauthorized: false } : {};
      const req = client.get(url, { headers: { accept: 'text/event-stream', ...headers }, ...tlsOptions }, (res) => {
        const c = new SseClient(req, res);
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => {
            const e = new Error(`SSE refused with ${res.statusCode}: ${body}`);
            e.status = res.statusCode;
            e.body = body;
            reject(e);
          });
          return;
        }
        resolve(c);
      });
      req.on('error', reject);
    });
  }

  constructor(req, res) {
    this.req = req;
    this.res = res;
    this.headers = res.headers;
    this.events = [];
    this.comments = 0;
    this.waiting = [];
    this.lastEventId = '';
    let buffer = '';
    let event = { event: 'message', data: [], id: undefined };
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          if (event.data.length) {
            if (event.id !== undefined) this.lastEventId = event.id;
            this.push({ event: event.event, id: event.id, data: event.data.join('\n') });
          }
          event = { event: 'message', data: [], id: undefined };
          continue;
        }
        if (line.startsWith(':')) {
          this.comments++;
          continue;
        }
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event.event = value;
        else if (field === 'data') event.data.push(value);
        else if (field === 'id') event.id = value;
      }
    });
    this.ended = new Promise((resolve) => {
      res.on('end', resolve);
      res.on('close', resolve);
    });
    this.ended.then(() => {
      for (const w of this.waiting) w.reject(new Error('stream ended while waiting for an event'));
      this.waiting = [];
      this.done = true;
    });
  }

  push(e) {
    const i = this.waiting.findIndex((w) => w.pred(e));
    if (i >= 0) {
      const [w] = this.waiting.splice(i, 1);
      clearTimeout(w.timer);
      w.resolve(e);
    } else {
      this.events.push(e);
    }
  }

  // The first event (already received or future) that matches.
  next(pred = () => true, timeoutMs = 3000) {
    const i = this.events.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.events.splice(i, 1)[0]);
    if (this.done) return Promise.reject(new Error('stream ended'));
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, reject };
      w.timer = setTimeout(() => {
        this.waiting = this.waiting.filter((x) => x !== w);
        reject(new Error(`no matching event within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.push(w);
    });
  }

  // The next "message" event's data, parsed.
  async json(pred = () => true, timeoutMs) {
    const e = await this.next((x) => x.event === 'message' && pred(JSON.parse(x.data)), timeoutMs);
    return JSON.parse(e.data);
  }

  close() {
    this.req.destroy();
    return this.ended;
  }
}
