// Running Herald as an operator does: the graceful drain a rolling restart relies on (readiness
// first, listener later, closes spread over a window, $disconnect for each, directory cleaned,
// exit 0 within the budget), the metrics it exposes meanwhile, and the JSON log fields.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startHerald, runHerald } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startBackend, eventually } from './lib/backend.mjs';
import { startRedis } from './lib/redis.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const readyz = (h) => fetch(`${h.httpUrl}/readyz`).then(async (r) => ({ status: r.status, body: await r.json() }));

async function metric(h, name, labels = {}) {
  const text = await fetch(`${h.adminUrl}/metrics`).then((r) => r.text());
  return parsePrometheus(text).value(name, labels);
}

describe('graceful drain', () => {
  let redis;
  let backend;
  before(async () => {
    redis = await startRedis();
    backend = await startBackend();
  });
  after(async () => {
    await backend.close();
    await redis.stop();
  });

  test('SIGTERM: 503 readiness at once, accepting during accept_delay, closes spread over close_window, $disconnect each, directory emptied, exit 0', async () => {
    const h = await startHerald({
      node_id: 'drain-a',
      backplane: 'redis',
      redis: { url: redis.url },
      shutdown: { accept_delay: '1500ms', close_window: '1500ms', drain_timeout: '6s' },
      integrations: { backend: { type: 'http', url: backend.url } },
      routes: { $disconnect: { integration: 'backend' }, $default: { integration: 'echo' } },
    });
    const n = 40;
    const clients = [];
    const closedAt = [];
    for (let i = 0; i < n; i++) {
      const c = await connect(h.url);
      clients.push(c);
    }
    await eventually(() => h.events('connection.open').length === n);
    const ids = h.events('connection.open').map((l) => l.connectionId);
    await eventually(() => redis.cli('--scan', '--pattern', 'herald:conn:*').split('\n').filter(Boolean).length === n);
    for (const c of clients) c.closed.then(() => closedAt.push(Date.now()));

    const t0 = Date.now();
    h.proc.kill('SIGTERM');
    // Readiness drops at once; the listener still takes connections during accept_delay.
    await eventually(async () => (await readyz(h)).status === 503, 300, 10);
    assert.deepEqual((await readyz(h)).body, { status: 'not_ready', reasons: ['draining'] });
    const late = await connect(h.url);
    late.closed.then(() => closedAt.push(Date.now()));
    assert.equal(await metric(h, 'herald_draining'), 1);

    const infos = await Promise.all([...clients, late].map((c) => c.closed));
    for (const { code, reason } of infos) {
      assert.equal(code, 1001);
      assert.equal(reason, 'server draining; reconnect');
    }
    // Nothing closed before the drain began (accept_delay after the signal, by the node's own
    // log); closes spread over the window, not in one burst.
    const stopping = Date.parse(h.events('server.stopping')[0].ts);
    const draining = Date.parse(h.events('server.draining')[0].ts);
    assert.ok(draining - stopping >= 1450, `listener kept for accept_delay (${draining - stopping} ms)`);
    const offsets = closedAt.map((t) => t - draining).sort((x, y) => x - y);
    assert.ok(offsets[0] >= -20, `first close after the drain began (${offsets[0]} ms)`);
    const span = offsets.at(-1) - offsets[0];
    assert.ok(span >= 750, `closes spread over the window (span ${span} ms)`);
    const firstHalf = offsets.filter((o) => o < 750).length;
    assert.ok(firstHalf > 5 && firstHalf < n + 1 - 5, `closes in the first half of the window: ${firstHalf}`);

    const { code } = await h.waitExit();
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 6000, 'exited before drain_timeout');
    for (const id of ids) assert.equal(backend.events('DISCONNECT', id).length, 1, `$disconnect for ${id}`);
    assert.equal(redis.cli('--scan', '--pattern', 'herald:conn:*'), '', 'directory entries removed');
    assert.equal(redis.cli('EXISTS', 'herald:node:drain-a:alive'), '0', 'liveness key removed');
    const stopped = h.events('server.stopped')[0];
    assert.equal(stopped.connections_left, 0);
    assert.ok(h.events('server.draining').length === 1);
  });

  test('after accept_delay the listener is closed: new connections are refused', async () => {
    const h = await startHerald({ shutdown: { accept_delay: '100ms', close_window: '2s', drain_timeout: '4s' } });
    const held = await connect(h.url);
    h.proc.kill('SIGTERM');
    await h.waitForLog((l) => l.event === 'server.draining');
    // Refused, or reset if it raced into the backlog as the listener closed.
    await assert.rejects(connect(h.url, { timeoutMs: 1000 }), /ECONNREFUSED|ECONNRESET/);
    assert.equal((await held.closed).code, 1001);
    assert.equal((await h.waitExit()).code, 0);
  });

  test('drain_timeout smaller than accept_delay + close_window is a configuration error naming the key', async () => {
    const r = runHerald(['--check-config', '--shutdown.accept_delay', '3s', '--shutdown.close_window', '3s',
      '--shutdown.drain_timeout', '5s']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /shutdown\.drain_timeout: must be at least shutdown\.accept_delay \+ shutdown\.close_window \(6000 ms\)/);
  });
});

describe('observability', () => {
  let h;
  let redis;
  before(async () => {
    redis = await startRedis();
    h = await startHerald({
      node_id: 'obs-1',
      backplane: 'redis',
      redis: { url: redis.url },
      history: { rules: [{ pattern: 'h.*', size: 10, ttl: '1m' }] },
      routes: { $default: { integration: 'echo', response: true } },
    });
  });
  after(async () => {
    await h.stop();
    await redis.stop();
  });

  test('JSON log lines carry ts, level, event and nodeId; connection lines carry connectionId and close codes', async () => {
    const c = await connect(h.url);
    c.send('hello');
    assert.equal(await c.next(), 'hello');
    await c.close(1000, 'bye');
    await eventually(() => h.events('connection.close').length === 1);
    for (const line of h.logs) {
      assert.match(line.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
      assert.ok(['trace', 'debug', 'info', 'warning', 'error', 'critical'].includes(line.level), line.level);
      assert.equal(typeof line.event, 'string');
      assert.equal(line.nodeId, 'obs-1');
    }
    const close = h.events('connection.close')[0];
    assert.equal(typeof close.connectionId, 'string');
    assert.equal(close.code, 1000);
  });

  test('the Grafana dashboard, the alert rules and docs/operations.md use only metrics Herald exposes', async () => {
    const text = await fetch(`${h.adminUrl}/metrics`).then((r) => r.text());
    const families = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].flatMap(([, name, type]) =>
      type === 'histogram' ? [`${name}_bucket`, `${name}_sum`, `${name}_count`] : [name]));
    const root = new URL('../../', import.meta.url);
    for (const file of ['docker/observability/grafana-dashboard.json', 'docker/observability/herald-alerts.yml', 'docs/operations.md']) {
      // In the docs, metric names are the ones in backticks.
      const pattern = file.endsWith('.md') ? /`((?:herald|process)_[a-z_]+)/g : /\b((?:herald|process)_[a-z_]+)\b/g;
      const used = new Set([...readFileSync(new URL(file, root), 'utf8').matchAll(pattern)].map((m) => m[1]));
      assert.ok(used.size > 5, `${file} names metrics`);
      for (const name of used) assert.ok(families.has(name), `${file}: ${name} is not exposed by /metrics`);
    }
  });

  test('/metrics covers connections, traffic, queues, latency and drain state', async () => {
    const text = await fetch(`${h.adminUrl}/metrics`).then((r) => r.text());
    for (const name of ['herald_connections', 'herald_connections_opened_total', 'herald_messages_received_total',
      'herald_messages_sent_total', 'herald_send_queue_dropped_total', 'herald_slow_consumer_closes_total',
      'herald_integration_duration_seconds_bucket', 'herald_deliveries_total', 'herald_draining', 'herald_ready',
      'herald_drain_closes_total', 'process_resident_memory_bytes', 'process_open_fds']) {
      assert.match(text, new RegExp(`^${name}[{ ]`, 'm'), name);
    }
  });
});
