// The load generator's own correctness (not speed: figures belong to bench/run): every scenario
// against a real node, small, checking that what it counts is what happened.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startHerald, makeCertificate, tempDir } from './lib/herald.mjs';
import { startRedis } from './lib/redis.mjs';

const run = promisify(execFile);
const BENCH = process.env.HERALD_BENCH_BIN;
const THREADING = process.env.HERALD_THREADING_BENCH_BIN;

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
    const c = await bench('connect', '--connections', '300', '--in-flight', '20', '--pid', String(h.proc.pid));
    assert.equal(c.connected, 300);
    assert.equal(c.failed, 0);
    // The server's CPU (from /proc/PID/stat, 10 ms ticks) over the connects: a figure, not NaN.
    assert.ok(Number.isFinite(c.server_cpu_us_per_connection) && c.server_cpu_us_per_connection >= 0);
    assert.ok(c.server_cpu_us_per_connection < 100000, 'per connection, not in total');
    assert.ok(c.server_cpu_us_per_connect_and_close >= c.server_cpu_us_per_connection);
    const f = await bench('fanout', '--connections', '20', '--messages', '10', '--pid', String(h.proc.pid));
    assert.equal(f.deliveries, 200);
    assert.ok(Number.isFinite(f.server_cpu_us_per_delivery) && f.server_cpu_us_per_delivery >= 0);
    const idle = await bench('idle', '--connections', '100', '--pid', String(h.proc.pid));
    assert.ok(idle.rss_after_kib > 0);
    const lat = await bench('latency', '--connections', '2', '--rate', '200', '--duration', '1');
    assert.equal(lat.deliveries, 400);
    const echo = await bench('echo', '--connections', '5', '--duration', '1');
    assert.ok(echo.round_trips > 10);
  });

  test('connect pacing, holding without a pid, and the hooks around a fan-out', async () => {
    // 40 connects at no more than 100 per second cannot take less than 0.39 s.
    const paced = await bench('connect', '--connections', '40', '--connect-rate', '100');
    assert.equal(paced.connected, 40);
    assert.ok(paced.connect_seconds >= 0.39, `paced connects took ${paced.connect_seconds} s`);
    const held = await bench('idle', '--connections', '30', '--hold', '0.3');
    assert.equal(held.connected, 30);
    assert.equal(held.failed, 0);
    const dir = mkdtempSync(path.join(tmpdir(), 'herald-bench-'));
    const before = path.join(dir, 'before');
    const after = path.join(dir, 'after');
    const r = await bench('fanout', '--connections', '10', '--messages', '5',
      '--before-publish', `touch ${before}`, '--after-deliveries', `test -e ${before} && touch ${after}`);
    assert.equal(r.deliveries, 50);
    assert.ok(existsSync(after), 'the after-deliveries hook ran after the before-publish one');
  });

  test('a server that is not there: failures counted, exit code 1', async () => {
    await assert.rejects(run(BENCH, ['connect', '--port', '1', '--connections', '3']), (e) => e.code === 1 && /"failed"|failed\s+3/.test(e.stdout));
  });

  // bench/tls's scenarios, small: over wss://, reconnects resuming their sessions.
  test('over TLS: connect and reconnect resuming the sessions, idle, fan-out', async () => {
    const certs = makeCertificate(tempDir('herald-bench-tls-'));
    const t = await startHerald({ backplane: 'redis', redis: { url: redis.url },
      tls: { mode: 'required', cert_file: certs.cert, key_file: certs.key } });
    const tlsBench = async (...args) => {
      const { stdout } = await run(BENCH, [...args, '--tls', '--port', String(t.clientPort),
        '--redis-port', String(redis.port), '--pid', String(t.proc.pid), '--json'], { timeout: 60000 });
      return JSON.parse(stdout);
    };
    try {
      const c = await tlsBench('connect', '--connections', '50', '--in-flight', '10', '--tls-resume');
      assert.deepEqual([c.connected, c.failed, c.reconnected, c.reconnect_failed], [50, 0, 50, 0]);
      assert.equal(c.tls_resumed, 50, 'every reconnect resumed its session');
      assert.ok(Number.isFinite(c.server_cpu_us_per_resumed_connection));
      const idle = await tlsBench('idle', '--connections', '30');
      assert.equal(idle.connected, 30);
      const f = await tlsBench('fanout', '--connections', '20', '--messages', '10');
      assert.equal(f.deliveries, 200);
      assert.equal(f.complete, 'yes');
    } finally {
      await t.stop();
    }
  });
});

// bench/scale's pieces, small: listeners spread over two nodes, a publication fanned out to all,
// and a node restarted under them (its clients come back and subscribe again).
test('herald-bench listen and publish across nodes, with reconnects after a restart', { skip: !BENCH && 'HERALD_BENCH_BIN is not set' }, async () => {
  const redis = await startRedis();
  const config = { backplane: 'redis', redis: { url: redis.url } };
  const a = await startHerald(config);
  let b = await startHerald(config);
  const dir = tempDir('herald-bench-listen-');
  const ready = path.join(dir, 'ready');
  const listener = spawn(BENCH, ['listen', '--ports', `${a.clientPort},${b.clientPort}`, '--connections', '40',
    '--reconnect', '--ready-file', ready, '--hold', '60', '--redis-port', String(redis.port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  listener.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => listener.on('exit', (code) => r(code)));
  const lines = () => out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  const report = async () => {
    const before = lines().length;
    listener.kill('SIGUSR1');
    for (let i = 0; i < 100 && lines().length === before; i++) await sleep(50);
    return lines().at(-1);
  };
  const openOn = async (h) => {
    const text = await (await fetch(`${h.adminUrl}/metrics`)).text();
    return Number(text.split('\n').find((l) => l.startsWith('herald_connections '))?.split(' ')[1] ?? 0);
  };
  try {
    for (let i = 0; i < 200 && !existsSync(ready); i++) await sleep(50);
    assert.ok(existsSync(ready), 'the listeners never became ready');
    assert.deepEqual([await openOn(a), await openOn(b)], [20, 20]);
    await run(BENCH, ['publish', '--messages', '2', '--redis-port', String(redis.port), '--json']);
    let got = { deliveries: 0, latencies_us: [] };
    for (let i = 0; i < 40 && got.deliveries < 80; i++) {
      const r = await report();
      got = { deliveries: got.deliveries + r.deliveries, latencies_us: [...got.latencies_us, ...r.latencies_us] };
      if (got.deliveries < 80) await sleep(50);
    }
    assert.equal(got.deliveries, 80, 'two publications to 40 subscribers');
    assert.equal(got.latencies_us.length, 80);

    // b restarts on the same port: its 20 clients come back to it and subscribe again.
    const port = b.clientPort;
    await b.stop();
    b = await startHerald({ ...config, listen: `127.0.0.1:${port}` });
    for (let i = 0; i < 200 && (await openOn(b)) < 20; i++) await sleep(50);
    assert.equal(await openOn(b), 20);
    const r = await report();
    assert.deepEqual([r.lost, r.reconnects, r.open], [20, 20, 40]);
    // Subscribed again: a publication reaches all 40 (tried again while some subscriptions are
    // still on their way).
    let again = 0;
    for (let attempt = 0; attempt < 10 && again !== 40; attempt++) {
      await run(BENCH, ['publish', '--messages', '1', '--redis-port', String(redis.port)]);
      await sleep(300);
      again = (await report()).deliveries;
    }
    assert.equal(again, 40, 'a publication after the restart reaches every subscriber');
    listener.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.equal(lines().at(-1).report, 'end');
  } finally {
    listener.kill('SIGKILL');
    await a.stop();
    await b.stop();
    await redis.stop();
  }
});

describe('herald-threading-bench', { skip: !THREADING && 'HERALD_THREADING_BENCH_BIN is not set' }, () => {
  test('both models deliver everything and report rates and latencies', async () => {
    const { stdout } = await run(THREADING, ['--connections', '200', '--messages', '20', '--rounds', '2', '--json'],
      { timeout: 60000 });
    const rows = stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => r.model), ['shard', 'strand', 'shard', 'strand']);
    for (const r of rows) {
      assert.equal(r.connections, 200);
      assert.ok(r.burst_deliveries_per_s > 0 && r.burst_seconds > 0);
      assert.ok(r.latency_p50_ms <= r.latency_p99_ms);
    }
  });

  test('bad options are refused', async () => {
    await assert.rejects(run(THREADING, ['--model', 'fibers']), (e) => e.code === 1 && /--model/.test(e.stderr));
  });
});
