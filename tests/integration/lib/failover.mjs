// What the failover tests share: a client that records every frame with its arrival time, a
// publisher that alternates a plain and a history channel through a node's API, a /readyz
// poller, and the tally of what each channel lost. Loops stop when told (stop()), also when
// the test fails half way (call stop() in a finally).
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect } from './clients.mjs';

async function subscribe(c, channel) {
  c.send({ action: 'subscribe', channel });
  for (;;) {
    const m = await c.nextJson();
    if (m.type === 'subscribed' || m.type === 'error') return m;
  }
}

// A client subscribed to `channels`, keeping every frame as {at, ...frame}.
export async function recorder(url, channels) {
  const ws = await connect(url);
  for (const channel of channels) assert.equal((await subscribe(ws, channel)).type, 'subscribed', channel);
  const frames = [];
  let open = true;
  const reading = (async () => {
    while (open) {
      let m;
      try {
        m = await ws.nextJson(250);
      } catch {
        continue; // nothing within 250 ms: look again, unless closed
      }
      frames.push({ at: Date.now(), ...m });
    }
  })();
  return {
    frames,
    close: async () => {
      open = false;
      await reading;
      ws.close();
    },
  };
}

// Publishes {seq} every `everyMs` through `node`'s API, to `plain` and `hist` in turn; `sent`
// holds {seq, channel, at, status, body} for each.
export function publishLoad(node, { plain, hist, everyMs = 20 }) {
  const sent = [];
  let running = true;
  const loop = (async () => {
    for (let seq = 0; running; seq++) {
      const channel = seq % 2 ? hist : plain;
      const at = Date.now();
      const r = await fetch(`${node.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify({ channel, data: { seq } }) })
        .then(async (x) => ({ status: x.status, body: await x.json().catch(() => ({})) }))
        .catch(() => ({ status: 0, body: {} }));
      sent.push({ seq, channel, at, ...r });
      await sleep(everyMs);
    }
  })();
  return { sent, stop: async () => { running = false; await loop; } };
}

// /readyz of `node` every 50 ms: [{at, status}].
export function pollReadiness(node) {
  const readiness = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await fetch(`${node.httpUrl}/readyz`).catch(() => ({ status: 0 }));
      readiness.push({ at: Date.now(), status: r.status });
      await sleep(50);
    }
  })();
  return { readiness, stop: async () => { running = false; await loop; } };
}

// The first 503 after `since` and the first 200 after it, asserted to exist.
export function readinessDip(readiness, since) {
  const unready = readiness.find((r) => r.at > since && r.status === 503);
  assert.ok(unready, 'readiness turned false');
  const readyAgain = readiness.find((r) => r.at > unready.at && r.status === 200);
  assert.ok(readyAgain, 'and true again');
  return { unready, readyAgain };
}

// What arrived of what was published: the plain channel is at-most-once (counted, not
// asserted); of the history channel every stored publication arrives, unless a resync told the
// client the history lost it.
export function tally(frames, sent, { plain, hist }) {
  const got = new Set(frames.filter((f) => f.type === 'message').map((f) => `${f.channel}/${f.data.seq}`));
  const plainForwarded = sent.filter((s) => s.channel === plain && s.status === 202 && s.body.forwarded);
  const stored = sent.filter((s) => s.channel === hist && s.status === 202 && s.body.offset);
  const resyncs = frames.filter((f) => f.type === 'resync' && f.channel === hist);
  const lastResync = resyncs.at(-1);
  return {
    plainForwarded: plainForwarded.length,
    plainLost: plainForwarded.filter((s) => !got.has(`${plain}/${s.seq}`)).length,
    stored: stored.length,
    refused: sent.filter((s) => s.channel === hist && !(s.status === 202 && s.body.offset)).length,
    resyncs: resyncs.length,
    missing: stored.filter((s) => !got.has(`${hist}/${s.seq}`)).filter((s) => !lastResync || s.at > lastResync.at),
  };
}
