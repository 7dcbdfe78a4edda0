// bench/tls's summary: medians per server and certificate over the rounds, as a table and a
// JSON file.   node bench/tls-summary.mjs RESULTS.jsonl OUT.json CONNECTIONS ROUNDS
import fs from 'node:fs';

const [input, output, connections, rounds] = process.argv.slice(2);
const runs = fs.readFileSync(input, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const rows = [
  ['connect', 'connections_per_s', 'TLS connects/s (full handshake)', 0],
  ['connect', 'server_cpu_us_per_connection', 'server CPU per full handshake + upgrade (µs)', 0],
  ['connect', 'reconnections_per_s', 'TLS reconnects/s (offering the session)', 0],
  ['connect', 'tls_resumed', 'reconnects resumed', 0],
  ['connect', 'server_cpu_us_per_resumed_connection', 'server CPU per reconnect (µs)', 0],
  ['idle', 'bytes_per_connection', 'idle memory per TLS connection (B)', 0],
  ['fanout', 'deliveries_per_s', 'burst fan-out over TLS (deliveries/s)', 0],
  ['fanout', 'server_cpu_us_per_delivery', 'server CPU per delivery (µs)', 2],
  ['fanout', 'latency_p99_ms', 'fan-out latency p99 (ms)', 1],
];
const labels = [...new Set(runs.map((r) => r.server))];
const table = {};
for (const [scenario, field, title, decimals] of rows) {
  table[title] = {};
  for (const label of labels) {
    const v = median(runs.filter((r) => r.server === label && r.scenario === scenario).map((r) => r[field]));
    if (v !== undefined) table[title][label] = Number(v.toFixed(decimals));
  }
}
const failures = runs.filter((r) => r.failed > 0 || r.reconnect_failed > 0 || r.complete === 'no');

const pad = (s, n) => String(s).padEnd(n);
console.log(`\n${connections} TLS connections, ${rounds} round(s), medians`);
console.log(pad('', 46) + labels.map((l) => pad(l, 18)).join(''));
for (const [title, byLabel] of Object.entries(table)) {
  console.log(pad(title, 46) + labels.map((l) => pad(byLabel[l] ?? '-', 18)).join(''));
}
if (failures.length) console.log(`\n${failures.length} run(s) with failures or missing deliveries`);
fs.writeFileSync(output, JSON.stringify({ connections: Number(connections), rounds: Number(rounds), table, runs }, null, 1) + '\n');
console.log(`\nwritten: ${output}`);
