// A store-first worker for Herald.
//
// Herald appends every message of a `redis_stream` route to a Redis stream and acknowledges the
// client at once ({"type":"ack","requestId":...}). This worker reads the stream with a consumer
// group, processes each message, pushes the result back to the connection that sent it through
// Herald's publish API, and only then acknowledges the entry (XACK). An entry whose processing
// or push failed stays pending and is retried; entries left pending by a worker that died are
// claimed by the others (XAUTOCLAIM) after CLAIM_IDLE_MS.
//
//   REDIS_URL=redis://127.0.0.1:6379/0 STREAM=herald:queue:order \
//   HERALD_ADMIN=http://127.0.0.1:8081 HERALD_API_KEY=... node worker.mjs
import os from 'node:os';
import Redis from 'ioredis';

const env = process.env;
const redisUrl = env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const stream = env.STREAM ?? 'herald:queue:order';
const group = env.GROUP ?? 'workers';
const consumer = env.CONSUMER ?? `${os.hostname()}-${process.pid}`;
const admin = env.HERALD_ADMIN ?? 'http://127.0.0.1:8081';
const apiKey = env.HERALD_API_KEY ?? '';
const claimIdleMs = Number(env.CLAIM_IDLE_MS ?? 30000);
const batch = Number(env.BATCH ?? 50);

const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
let stopping = false;
const log = (event, fields = {}) =>
  console.log(JSON.stringify({ time: new Date().toISOString(), event, consumer, ...fields }));

// The work itself. Here: price an order. Throwing leaves the entry pending (retried later).
function processMessage(body) {
  const qty = Number(body.qty ?? 1);
  const price = Number(body.price ?? 0);
  if (!Number.isFinite(qty) || !Number.isFinite(price)) throw new Error('bad order');
  return { item: body.item ?? null, qty, total: Math.round(qty * price * 100) / 100 };
}

async function push(connectionId, data, id) {
  const headers = { 'content-type': 'application/json' };
  if (apiKey) headers.authorization = `Bearer ${apiKey}`;
  const res = await fetch(`${admin}/v1/publish`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ connection: connectionId, id, data }),
  });
  if (res.status !== 202) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  return (await res.json()).recipients;
}

async function handle(entryId, fields) {
  const f = {};
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  const event = JSON.parse(f.event);
  const requestId = event.requestContext?.requestId ?? f.requestId;
  let result;
  try {
    result = { type: 'result', requestId, ok: true, ...processMessage(JSON.parse(event.body)) };
  } catch (e) {
    // A message that can never succeed is answered with an error, not retried forever.
    result = { type: 'result', requestId, ok: false, error: String(e.message ?? e) };
  }
  const recipients = await push(f.connectionId, result, requestId);
  await redis.xack(stream, group, entryId);
  log('processed', { entry: entryId, requestId, delivered: recipients > 0 });
}

async function run(entries) {
  for (const [, list] of entries ?? []) {
    for (const [id, fields] of list) {
      if (!fields) {
        await redis.xack(stream, group, id); // deleted from the stream meanwhile (trimmed)
        continue;
      }
      try {
        await handle(id, fields);
      } catch (e) {
        log('failed', { entry: id, error: String(e.message ?? e) });
      }
    }
  }
}

async function main() {
  try {
    await redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
  } catch (e) {
    if (!String(e.message).includes('BUSYGROUP')) throw e;
  }
  log('started', { stream, group });
  // What this consumer left pending before a restart comes first.
  await run(await redis.xreadgroup('GROUP', group, consumer, 'COUNT', batch, 'STREAMS', stream, '0'));
  let lastClaim = 0;
  while (!stopping) {
    if (Date.now() - lastClaim > claimIdleMs / 2) {
      lastClaim = Date.now();
      const [, claimed] = await redis.xautoclaim(stream, group, consumer, claimIdleMs, '0', 'COUNT', batch);
      if (claimed.length) await run([[stream, claimed]]);
    }
    await run(await redis.xreadgroup('GROUP', group, consumer, 'COUNT', batch, 'BLOCK', 1000, 'STREAMS', stream, '>'));
  }
  await redis.quit();
  log('stopped');
}

for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => (stopping = true));
main().catch((e) => {
  log('crashed', { error: String(e.stack ?? e) });
  process.exit(1);
});
