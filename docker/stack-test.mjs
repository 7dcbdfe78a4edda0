// The compose stack end to end (run by docker/stack-test.sh, which sets the ports).
import { execFile } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocket, podman, check, until } from './lib.mjs';

const project = process.argv[2];
const env = process.env;
const LB = `ws://127.0.0.1:${env.HERALD_LB_PORT}/`;
const LB_ADMIN = `http://127.0.0.1:${env.HERALD_LB_ADMIN_PORT}`;
const NODES = { herald1: env.HERALD1_ADMIN_PORT, herald2: env.HERALD2_ADMIN_PORT, herald3: env.HERALD3_ADMIN_PORT };
const adminUrl = (node) => `http://127.0.0.1:${NODES[node]}`;
const KEY = { authorization: `Bearer ${env.HERALD_ADMIN_API_KEY}` };
const container = (service) => `${project}_${service}_1`;
const CHANNEL = 'news.stack';

async function connections(node) {
  const text = await fetch(`${adminUrl(node)}/metrics`).then((r) => r.text());
  return Number(/^herald_connections (\d+)/m.exec(text)[1]);
}

// A client that resumes the way the SDK does: on any close it reconnects through the load
// balancer with backoff and jitter and resubscribes from the last offset it saw.
class ResumingClient {
  constructor(i) {
    this.i = i;
    this.offsets = [];
    this.epoch = undefined;
    this.reconnects = 0;
    this.closes = [];
    this.stopped = false;
  }
  start() {
    return new Promise((resolve) => {
      this.onReady = resolve;
      this.open();
    });
  }
  open() {
    const ws = new WebSocket(LB);
    this.ws = ws;
    ws.on('open', () => {
      const sub = { action: 'subscribe', channel: CHANNEL, id: 1 };
      if (this.offsets.length) Object.assign(sub, { since: this.offsets.at(-1), epoch: this.epoch });
      ws.send(JSON.stringify(sub));
    });
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'subscribed') {
        this.epoch ??= m.epoch;
        if (this.offsets.length && !m.recovered) this.lost = true;
        this.onReady?.();
        this.onReady = null;
      } else if (m.type === 'message') {
        this.offsets.push(m.offset);
      }
    });
    ws.on('error', () => {});
    ws.on('close', (code, reason) => {
      this.closes.push({ code, reason: reason.toString() });
      if (this.stopped) return;
      this.reconnects++;
      setTimeout(() => this.open(), Math.random() * 500);
    });
  }
  stop() {
    this.stopped = true;
    this.ws.close();
  }
}

// 1. All three nodes behind HAProxy.
for (const node of Object.keys(NODES)) {
  await until(async () => (await fetch(`${adminUrl(node)}/readyz`)).status === 200, `${node} ready`, 60000);
}
check(true, 'three Herald nodes ready (Redis backplane)');
const nodeList = await until(async () => {
  const r = await fetch(`${adminUrl('herald1')}/v1/nodes`, { headers: KEY });
  const ids = (await r.json()).nodes.map((n) => n.nodeId).sort();
  return ids.length === 3 ? ids : null;
}, 'the cluster view lists every node', 20000);
check(nodeList.join() === 'herald1,herald2,herald3', `GET /v1/nodes (the console's cluster view) lists ${nodeList.join(', ')}`);

// HAProxy marks servers up a few seconds after they listen: connect until all three serve.
const clients = [];
await until(async () => {
  while (clients.length < 30) {
    const c = new ResumingClient(clients.length);
    await c.start();
    clients.push(c);
  }
  const counts = await Promise.all(Object.keys(NODES).map(connections));
  if (counts.every((n) => n > 0)) return true;
  for (const c of clients.splice(0)) c.stop();
  await sleep(1000);
  return false;
}, 'connections spread over the three nodes', 60000);
const before = Object.fromEntries(await Promise.all(Object.keys(NODES).map(async (n) => [n, await connections(n)])));
check(true, `30 clients through HAProxy, spread ${JSON.stringify(before)}`);

// 2. Publish through each node's admin API and through HAProxy's admin frontend.
let published = 0;
async function publish(base) {
  const r = await fetch(`${base}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...KEY },
    body: JSON.stringify({ channel: CHANNEL, data: { n: ++published, at: Date.now() } }),
  });
  if (r.status !== 200 && r.status !== 202) throw new Error(`publish: ${r.status} ${await r.text()}`);
}
for (const node of Object.keys(NODES)) await publish(adminUrl(node));
for (let i = 0; i < 3; i++) await publish(LB_ADMIN);
await until(() => clients.every((c) => c.offsets.length === published), 'every client gets every publication', 10000);
check(clients.every((c) => c.offsets.every((o, i) => i === 0 || o === c.offsets[i - 1] + 1)),
  `${published} publications through each node and the balancer reached all 30 clients, once each, in order`);

// 2b. The SSE fallback through HAProxy: one stream, and POSTs the balancer sends to whichever
// node it picks (forwarded through Redis to the node holding the stream).
{
  const LB_HTTP = `http://127.0.0.1:${env.HERALD_LB_PORT}`;
  const res = await fetch(`${LB_HTTP}/sse?channel=${CHANNEL}`);
  check(res.status === 200 && res.headers.get('content-type').startsWith('text/event-stream'), 'an SSE stream opens through HAProxy');
  let text = '';
  const reader = res.body.getReader();
  const pump = (async () => {
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  })().catch(() => {});
  const session = await until(() => /"session":"([^"]+)"/.exec(text)?.[1], 'the stream names its session');
  for (let i = 1; i <= 6; i++) {
    const r = await fetch(`${LB_HTTP}/sse`, { method: 'POST', headers: { 'Herald-Session': session }, body: JSON.stringify({ action: '$heartbeat', id: `sse-${i}` }) });
    if (r.status !== 202) throw new Error(`POST on the stream through HAProxy: ${r.status} ${await r.text()}`);
  }
  await until(() => [1, 2, 3, 4, 5, 6].every((i) => text.includes(`"id":"sse-${i}"`)), 'six POSTs through HAProxy answered on the stream', 10000);
  await publish(LB_ADMIN);
  // (Herald re-serializes the data: its keys may come in another order.)
  await until(() => new RegExp(`"n":${published}[,}]`).test(text), 'a publication reaches the stream', 10000);
  check(true, 'SSE through HAProxy: six POSTs on any node answered on the stream, and a publication delivered');
  await reader.cancel();
  await pump;
  await until(() => clients.every((c) => c.offsets.length === published), 'every client gets that publication too', 10000);
}

// 3. Stop herald2 (SIGTERM drain) while publishing through herald1 every 50 ms.
const onNode2 = before.herald2;
const t0 = Date.now();
// Asynchronously: the clients must keep running (answer the close, reconnect) meanwhile.
const stopping = new Promise((resolve, reject) => {
  execFile('podman', ['stop', '-t', '15', container('herald2')], (err) => (err ? reject(err) : resolve(Date.now() - t0)));
});
let publishing = true;
const publisher = (async () => {
  while (publishing) {
    await publish(adminUrl('herald1'));
    await sleep(50);
  }
})();
const stopMs = await stopping;
await sleep(1500);
publishing = false;
await publisher;
const state = JSON.parse(podman('inspect', container('herald2'), '--format', '{{json .State}}'));
check(state.ExitCode === 0, `herald2 drained and exited 0 in ${stopMs} ms (grace period 15 s)`);
const logs = podman('logs', container('herald2')).split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
const stopped = logs.find((l) => l.event === 'server.stopped');
check(stopped && stopped.connections_left === 0, `herald2 closed all its connections (${JSON.stringify(stopped)})`);

await until(() => clients.every((c) => c.offsets.length === published), 'every client catches up', 15000);
const moved = clients.filter((c) => c.closes.some((x) => x.code === 1001 && x.reason === 'server draining; reconnect'));
check(moved.length === onNode2, `${moved.length} clients of herald2 got 1001 "server draining; reconnect" and reconnected through HAProxy`);
check(clients.every((c) => !c.lost), 'every resume was recovered (no gap reported)');
check(clients.every((c) => c.offsets.length === published && c.offsets.every((o, i) => i === 0 || o === c.offsets[i - 1] + 1)),
  `all ${published} publications (${published - 6} during the drain) reached every client once, in order`);
const after = Object.fromEntries(await Promise.all(['herald1', 'herald3'].map(async (n) => [n, await connections(n)])));
check(after.herald1 + after.herald3 === 30, `the 30 clients are now on herald1 and herald3 ${JSON.stringify(after)}`);
for (const c of clients) c.stop();
