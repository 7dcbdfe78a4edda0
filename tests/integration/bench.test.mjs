// The load generator's own correctness (not speed: figures belong to bench/run): every scenario
// against a real node, small, checking that what it counts is what happened.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startHerald } from './lib/herald.mjs';
import { startRedis } from './lib/redis.mjs';

const run = promisify(execFile);
const BENCH = process.env.HERALD_BENCH_BIN;

describe('herald-bench', { skip: !BENCH && 'HERALD_BENCH_BIN is not set' }, () => {
  let redis;
  let h;
  before(async () => {
    redis = await startRedis();
    h = await startHerald({
      backplane: 'redis',
      redis: { url: redis.url },
      routes: { $default: { integration: 'echo', response: true } },
      websocket: { rate_limit: { messages_per_second: 0 } },
    });
  });
  after(async () => {
    await h.stop();
    await redis.stop();
  });

  const bench = async (...args) => {
    const { stdout } = await run(BENCH, [...args, '--port', String(h.clientPort), '--http-port', String(h.adminPort),
      '--redis-port', String(redis.port), '--json'], { timeout: 60000 });
    return JSON.parse(stdout);
  };

  test('fanout through Redis and through the HTTP API: every delivery counted, with latencies', async () => {
    for (const via of ['redis', 'http']) {
      const r = await bench('fanout', '--connections', '40', '--messages', '25', '--sources', '4', '--publish-via', via);
      assert.equal(r.connected, 40);
      assert.equal(r.subscribed, 40);
      assert.equal(r.deliveries, 1000, via);
      assert.equal(r.complete, 'yes');
      assert.ok(r.latency_p50_ms > 0 && r.latency_p50_ms <= r.latency_p99_ms && r.latency_p99_ms <= r.latency_max_ms);
    }
  });

  test('connect, idle (RSS of the server), latency and echo', async () => {
    const c = await bench('connect', '--connections', '100', '--in-flight', '20');
    assert.equal(c.connected, 100);
    assert.equal(c.failed, 0);
    const idle = await bench('idle', '--connections', '100', '--pid', String(h.proc.pid));
    assert.ok(idle.rss_after_kib > 0);
    const lat = await bench('latency', '--connections', '2', '--rate', '200', '--duration', '1');
    assert.equal(lat.deliveries, 400);
    const echo = await bench('echo', '--connections', '5', '--duration', '1');
    assert.ok(echo.round_trips > 10);
  });

  test('a server that is not there: failures counted, exit code 1', async () => {
    await assert.rejects(run(BENCH, ['connect', '--port', '1', '--connections', '3']), (e) => e.code === 1 && /"failed"|failed\s+3/.test(e.stdout));
  });
});
