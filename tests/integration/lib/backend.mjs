// A real HTTP backend for integration tests: records every request (with the parsed event)
// and answers with whatever the test's handler returns.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

// handler(record) may return:
//   { status, headers, body }            plain HTTP answer
//   { lambda: {statusCode, headers, body, isBase64Encoded} }   a Lambda proxy answer (JSON)
//   'hang'                               never answer
//   'destroy'                            drop the connection without answering
// and may be async. The default answers 200 with an empty Lambda proxy result.
export async function startBackend(handler = () => ({ lambda: { statusCode: 200 } })) {
  const requests = [];
  const waiters = [];
  let current = handler;
  let active = 0;
  let maxActive = 0;
  const activeByConnection = new Map();
  let maxActivePerConnection = 0;
  const sockets = new Set();
  let socketCount = 0;

  const server = http.createServer(async (req, res) => {
    let body = '';
    req.setEncoding('utf8');
    for await (const chunk of req) body += chunk;
    let event = null;
    try {
      event = JSON.parse(body);
    } catch {
      // not JSON
    }
    const connId = req.headers['x-herald-connection-id'];
    active++;
    maxActive = Math.max(maxActive, active);
    activeByConnection.set(connId, (activeByConnection.get(connId) ?? 0) + 1);
    maxActivePerConnection = Math.max(maxActivePerConnection, activeByConnection.get(connId));
    const record = { method: req.method, url: req.url, headers: req.headers, body, event, at: Date.now(), socket: req.socket.herald_id };
    requests.push(record);
    for (const w of [...waiters]) w(record);
    let answer;
    try {
      answer = await current(record);
    } catch (e) {
      answer = { status: 500, body: String(e) };
    }
    active--;
    activeByConnection.set(connId, activeByConnection.get(connId) - 1);
    if (answer === 'hang') return;
    if (answer === 'destroy') return req.socket.destroy();
    if (answer?.lambda) {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify(answer.lambda));
    }
    res.writeHead(answer?.status ?? 200, answer?.headers ?? {});
    res.end(answer?.body ?? '');
  });
  server.on('connection', (s) => {
    s.herald_id = ++socketCount;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    server,
    requests,
    get maxActive() {
      return maxActive;
    },
    get maxActivePerConnection() {
      return maxActivePerConnection;
    },
    get socketCount() {
      return socketCount;
    },
    setHandler(fn) {
      current = fn;
    },
    events(type, connectionId) {
      return requests
        .filter((r) => r.event?.requestContext?.eventType === type)
        .filter((r) => !connectionId || r.event.requestContext.connectionId === connectionId)
        .map((r) => r.event);
    },
    // Resolves with the first request (past or future) matching `pred`.
    waitFor(pred, timeoutMs = 3000) {
      const found = requests.find(pred);
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`backend: no matching request within ${timeoutMs} ms`));
        }, timeoutMs);
        const w = (r) => {
          if (!pred(r)) return;
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(w), 1);
          resolve(r);
        };
        waiters.push(w);
      });
    },
    waitForEvent(type, connectionId, timeoutMs) {
      return this.waitFor(
        (r) => r.event?.requestContext?.eventType === type && (!connectionId || r.event.requestContext.connectionId === connectionId),
        timeoutMs,
      ).then((r) => r.event);
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// Waits until `fn()` is truthy (bounded), returning its value.
export async function eventually(fn, timeoutMs = 3000, stepMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(stepMs);
  }
}
