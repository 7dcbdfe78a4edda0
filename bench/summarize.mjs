// Medians of bench/run's rounds, Herald vs the baseline, as a table and a JSON file.
import { readFileSync, writeFileSync } from 'node:fs';
import { execSync } from 'node:child_process';
import os from 'node:os';

const [input, output, connections, rounds] = process.argv.slice(2);
const rows = readFileSync(input, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : NaN;
};

// [label, scenario filter, field, unit, higher is better]
const METRICS = [
  ['idle memory per connection', (r) => r.scenario === 'idle', 'bytes_per_connection', 'B', false],
  ['new connections/s (500 in flight)', (r) => r.scenario === 'connect', 'connections_per_s', '/s', true],
  ['connect failures', (r) => r.scenario === 'connect', 'failed', '', false],
  ['server CPU per new connection', (r) => r.scenario === 'connect', 'server_cpu_us_per_connection', 'us', false],
  ['server CPU per connection opened and dropped', (r) => r.scenario === 'connect', 'server_cpu_us_per_connect_and_close', 'us', false],
  ['fan-out via Redis: deliveries/s (300 msgs burst)', (r) => r.scenario === 'fanout' && r.publish_via === 'redis', 'deliveries_per_s', '/s', true],
  ['fan-out via Redis: server CPU per delivery', (r) => r.scenario === 'fanout' && r.publish_via === 'redis', 'server_cpu_us_per_delivery', 'us', false],
  ['fan-out via Redis: p99 latency (burst)', (r) => r.scenario === 'fanout' && r.publish_via === 'redis', 'latency_p99_ms', 'ms', false],
  ['fan-out via HTTP API: deliveries/s (20 msgs)', (r) => r.scenario === 'fanout' && r.publish_via === 'http', 'deliveries_per_s', '/s', true],
  ['1 subscriber, 10k pub/s via Redis: p50', (r) => r.scenario === 'latency' && r.connections === 1, 'latency_p50_ms', 'ms', false],
  ['1 subscriber, 10k pub/s via Redis: p99', (r) => r.scenario === 'latency' && r.connections === 1, 'latency_p99_ms', 'ms', false],
  ['N subscribers, 5 pub/s: p50 (all recipients)', (r) => r.scenario === 'latency' && r.connections > 1, 'latency_p50_ms', 'ms', false],
  ['N subscribers, 5 pub/s: p99 (all recipients)', (r) => r.scenario === 'latency' && r.connections > 1, 'latency_p99_ms', 'ms', false],
  ['N subscribers, 5 pub/s: max', (r) => r.scenario === 'latency' && r.connections > 1, 'latency_max_ms', 'ms', false],
  ['echo round trips/s (100 connections)', (r) => r.scenario === 'echo', 'round_trips_per_s', '/s', true],
];

const summary = [];
for (const [label, filter, field, unit, higher] of METRICS) {
  const value = (server) => median(rows.filter((r) => r.server === server && filter(r)).map((r) => r[field]));
  const h = value('herald');
  const b = value('baseline');
  const ratio = higher ? h / b : b / h;
  summary.push({ metric: label, field, unit, herald: h, baseline: b, advantage: Number.isFinite(ratio) ? ratio : null });
}

const fmt = (v, unit) => (Number.isNaN(v) ? '-' : `${v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(unit === 'ms' || unit === 'us' ? 2 : 0)}${unit === 'B' ? ' B' : unit === 'ms' ? ' ms' : unit === 'us' ? ' µs' : ''}`);
const width = Math.max(...summary.map((s) => s.metric.length));
console.log(`\n${'metric'.padEnd(width)}  ${'herald'.padStart(12)}  ${'baseline'.padStart(12)}  herald advantage`);
for (const s of summary) {
  console.log(`${s.metric.padEnd(width)}  ${fmt(s.herald, s.unit).padStart(12)}  ${fmt(s.baseline, s.unit).padStart(12)}  ${s.advantage === null ? '-' : `${s.advantage.toFixed(1)}x`}`);
}
const incomplete = rows.filter((r) => r.complete === 'no' || r.failed > 0);
if (incomplete.length) console.log(`\n${incomplete.length} run(s) incomplete or with failures: see ${output}`);
const commit = execSync('git rev-parse --short HEAD').toString().trim();
writeFileSync(output, JSON.stringify({
  date: new Date().toISOString(), commit, machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memory_gib: Math.round(os.totalmem() / 2 ** 30) },
  connections: Number(connections), rounds: Number(rounds), summary, runs: rows,
}, null, 2));
console.log(`\nwritten to ${output}`);
