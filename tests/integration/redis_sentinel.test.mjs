// Redis Sentinel through the real binary: nodes find the primary through the Sentinels, a
// history that lost its newest publications becomes a resync (never a silent gap), and a
// kill -9 of the primary under publish load: readiness drops, Sentinel promotes the replica,
// the nodes follow. The figures (time to deliveries flowing again, what plain and history
// channels lost) are printed as diagnostics; docs/redis.md reports them.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startHerald } from './lib/herald.mjs';
import { eventually } from './lib/backend.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';
import { startSentinelGroup } from './lib/sentinel.mjs';
import { recorder, publishLoad, pollReadiness, readinessDip, tally } from './lib/failover.mjs';

function config(id, group) {
  return {
    node_id: id,
    backplane: 'redis',
    redis: {
      url: 'redis://sentinel-named/0', // host and port come from the Sentinels
      sentinel: { addresses: group.addresses, master_name: group.masterName, timeout: '300ms' },
      reconnect_max_backoff: '500ms',
      connect_timeout: '1s',
      command_timeout: '1s',
      probe_interval: '300ms',
      probe_timeout: '1s',
    },
    history: { rules: [{ pattern: 'hist.*', size: 100000, ttl: '1h' }] },
  };
}

async function publish(h, body) {
  const r = await fetch(`${h.adminUrl}/v1/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: await r.json().catch(() => ({})) };
}

async function metric(h, name) {
  return parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text()).value(name);
}

describe('Redis Sentinel', () => {
  let group;
  let a;
  let b;
  before(async () => {
    group = await startSentinelGroup();
    [a, b] = await Promise.all([startHerald(config('sentinel-a', group)), startHerald(config('sentinel-b', group))]);
  });
  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await group?.stop();
  });

  test('the nodes connect to the primary the Sentinels name, and deliver to each other', async () => {
    for (const h of [a, b]) {
      const line = await h.waitForLog((l) => l.event === 'backplane.connected');
      assert.equal(line.redis, `redis://127.0.0.1:${group.primary.port}`);
    }
    const c = await recorder(a.url, ['news']);
    assert.equal((await publish(b, { channel: 'news', data: 1 })).body.forwarded, true);
    await eventually(() => c.frames.length === 1);
    await c.close();
  });

  test('a history that lost its newest publications is a resync, then delivery goes on', async () => {
    const c = await recorder(a.url, ['hist.rewind']);
    for (let i = 1; i <= 5; i++) assert.equal((await publish(b, { channel: 'hist.rewind', data: `old-${i}` })).status, 202);
    await eventually(() => c.frames.length === 5);
    // What a failover to a replica that missed the last two looks like in the store.
    const p = group.primary;
    p.cli('XDEL', 'herald:history:hist.rewind', '4-0', '5-0');
    p.cli('XSETID', 'herald:history:hist.rewind', '3-0'); // as a replica that never had them
    p.cli('HSET', 'herald:history-meta:hist.rewind', 'offset', '3');
    p.cli('CLIENT', 'KILL', 'TYPE', 'pubsub'); // the nodes reconnect and read what they missed
    await a.waitForLog((l) => l.event === 'backplane.history_rewound' && l.channel === 'hist.rewind', 10000);
    for (let i = 4; i <= 5; i++) {
      const r = await publish(b, { channel: 'hist.rewind', data: `new-${i}` });
      assert.equal(r.body.offset, i, `the store gives offsets 4 and 5 again: ${JSON.stringify(r)}`);
    }
    await eventually(() => c.frames.filter((f) => f.type === 'message').length === 7, 10000);
    const resync = c.frames.find((f) => f.type === 'resync');
    assert.ok(resync, JSON.stringify(c.frames));
    assert.equal(resync.offset, 3);
    assert.match(resync.reason, /lost the publications after offset 3/);
    const after = c.frames.slice(c.frames.indexOf(resync) + 1).map((f) => f.data);
    assert.deepEqual(after, ['new-4', 'new-5']);
    assert.ok(await metric(a, 'herald_history_rewinds_total') >= 1);
    await c.close();
  });

  test('kill -9 the primary under publish load: readiness drops, Sentinel promotes, the nodes follow', async (t) => {
    const channels = { plain: 'plain', hist: 'hist.load' };
    const c = await recorder(a.url, ['plain', 'hist.load']);
    const load = publishLoad(b, channels);
    const ready = pollReadiness(a);
    let killedAt;
    let flowingAt;
    try {
      await sleep(1000);
      killedAt = Date.now();
      await group.primary.kill('SIGKILL');
      // Flowing again: something published after the kill, through B and Redis, reached A.
      const after = (f) => f.type === 'message' && load.sent.find((s) => s.seq === f.data.seq)?.at > killedAt;
      await eventually(() => c.frames.some(after), 30000);
      flowingAt = c.frames.find(after).at;
      await sleep(1500);
    } finally {
      await load.stop();
      await sleep(1000);
      await ready.stop();
    }

    const { unready, readyAgain } = readinessDip(ready.readiness, killedAt);
    for (const h of [a, b]) {
      await h.waitForLog((l) => l.event === 'backplane.connected' && l.redis === `redis://127.0.0.1:${group.replica.port}`, 10000);
    }
    assert.equal(group.primaryPort(), group.replica.port, 'the replica is the primary now');

    const lost = tally(c.frames, load.sent, channels);
    t.diagnostic(`kill -9 → /readyz 503 after ${unready.at - killedAt} ms, 200 again after ${readyAgain.at - killedAt} ms`);
    t.diagnostic(`kill -9 → deliveries flowing again after ${flowingAt - killedAt} ms`);
    t.diagnostic(`plain channel: ${lost.plainForwarded} forwarded, ${lost.plainLost} lost (at-most-once)`);
    t.diagnostic(`history channel: ${lost.stored} stored, ${lost.refused} refused (503, publisher told), ${lost.missing.length} missing, ${lost.resyncs} resync(s)`);
    assert.equal(lost.missing.length, 0, `stored and never delivered: ${JSON.stringify(lost.missing.slice(0, 5))}`);
    await c.close();
  });
});
