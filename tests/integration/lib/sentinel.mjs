// A Redis primary, a replica and three Sentinels on free loopback ports, for failover tests.
// Sentinels run as `redis-server <conf> --sentinel` (what Debian's redis-sentinel package runs),
// each with its own writable config file.
import { spawn, execFileSync } from 'node:child_process';
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir, freePort } from './herald.mjs';
import { startRedis } from './redis.mjs';

function cli(port, ...args) {
  try {
    return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout: 2000 }).trim();
  } catch {
    return '';
  }
}

export async function startSentinelGroup({ masterName = 'herald-primary', downAfterMs = 1000 } = {}) {
  const primary = await startRedis();
  const replica = await startRedis();
  replica.cli('REPLICAOF', '127.0.0.1', String(primary.port));
  const dir = tempDir('herald-sentinel-');
  const sentinels = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    const conf = join(dir, `sentinel-${i}.conf`);
    writeFileSync(conf, [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dir}`, `logfile ${join(dir, `sentinel-${i}.log`)}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} 2`,
      `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
      `sentinel failover-timeout ${masterName} 5000`,
      `sentinel parallel-syncs ${masterName} 1`,
    ].join('\n') + '\n');
    const proc = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    sentinels.push({ port, proc, exited: new Promise((r) => proc.on('exit', r)) });
  }
  const group = {
    masterName,
    primary,
    replica,
    sentinels,
    addresses: sentinels.map((s) => `127.0.0.1:${s.port}`),
    // The primary's port as the first Sentinel that answers names it.
    primaryPort() {
      for (const s of sentinels) {
        const out = cli(s.port, 'SENTINEL', 'get-master-addr-by-name', masterName).split('\n');
        if (out.length === 2) return Number(out[1]);
      }
      return 0;
    },
    async stop() {
      for (const s of sentinels) if (s.proc.exitCode === null) s.proc.kill('SIGTERM');
      await Promise.all(sentinels.map((s) => s.exited));
      await Promise.all([primary.stop(), replica.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // Ready for a failover: every Sentinel knows the replica (linked) and the two other Sentinels.
  const deadline = Date.now() + 20000;
  for (;;) {
    const ready = sentinels.every((s) => {
      const replicas = cli(s.port, 'SENTINEL', 'replicas', masterName);
      const others = cli(s.port, 'SENTINEL', 'sentinels', masterName);
      return replicas.includes(String(replica.port)) && replicas.includes('master-link-status\nok') &&
        (others.match(/\bname\b/g) ?? []).length === 2;
    });
    if (ready) return group;
    if (Date.now() > deadline) {
      await group.stop();
      throw new Error('the Sentinels did not discover the replica and each other within 20 s');
    }
    await sleep(100);
  }
}
