// A real Redis Cluster on loopback for tests: 6 redis-server processes (--cluster-enabled yes)
// made into 3 primaries with a replica each by `redis-cli --cluster create --cluster-replicas 1`
// (or 3 primaries alone), on free ports (the cluster bus too), optionally serving TLS clients. Stopped, and its directories removed, by the test.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir, freePort } from './herald.mjs';

function cli(port, args, { timeout = 3000 } = {}) {
  try {
    return execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8', timeout }).trim();
  } catch (e) {
    return e.stdout?.toString() ?? '';
  }
}

class ClusterNode {
  // `tls`: {cert, key, port}: clients may also connect over TLS on tls.port, and the cluster bus
  // speaks TLS; the plain port stays for the test's own redis-cli.
  constructor(port, busPort, dir, nodeTimeoutMs, tls) {
    this.port = port;
    this.busPort = busPort;
    this.dir = dir;
    this.nodeTimeoutMs = nodeTimeoutMs;
    this.tls = tls;
  }

  start() {
    mkdirSync(this.dir, { recursive: true });
    this.proc = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--daemonize', 'no', '--logfile', join(this.dir, 'redis.log'), '--save', '', '--appendonly', 'no',
      '--cluster-enabled', 'yes', '--cluster-config-file', join(this.dir, 'nodes.conf'),
      '--cluster-node-timeout', String(this.nodeTimeoutMs), '--cluster-port', String(this.busPort),
      ...(this.tls ? ['--tls-port', String(this.tls.port), '--tls-cert-file', this.tls.cert, '--tls-key-file',
        this.tls.key, '--tls-ca-cert-file', this.tls.cert, '--tls-auth-clients', 'no', '--tls-cluster', 'yes',
        '--tls-replication', 'yes'] : [])],
    { stdio: 'ignore' });
    this.exited = new Promise((r) => this.proc.on('exit', r));
  }

  alive() {
    return this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  cli(...args) {
    return cli(this.port, args);
  }

  async kill(signal = 'SIGKILL') {
    if (!this.alive()) return;
    this.proc.kill(signal);
    await this.exited;
  }
}

// `replicas`: 1 (3 primaries and 3 replicas) or 0 (3 primaries). `tls`: {cert, key}: every node
// also serves TLS clients (tlsAddresses).
export async function startRedisCluster({ nodeTimeoutMs = 1000, replicas = 1, tls } = {}) {
  const base = tempDir('herald-cluster-');
  const makeNode = async (i) => {
    const n = new ClusterNode(await freePort(), await freePort(), join(base, `node-${i}`), nodeTimeoutMs,
      tls && { ...tls, port: await freePort() });
    n.start();
    return n;
  };
  const nodes = [];
  for (let i = 0; i < 3 * (1 + replicas); i++) nodes.push(await makeNode(i));
  // Every node answers PING. A node that exited at start lost a race for one of its ports (picked
  // free, taken by another test before redis-server bound it): it starts again on fresh ports.
  const deadline = Date.now() + 20000;
  const restarts = nodes.map(() => 0);
  for (;;) {
    let up = 0;
    for (let i = 0; i < nodes.length; i++) {
      if (nodes[i].cli('PING') === 'PONG') {
        up++;
      } else if (!nodes[i].alive() && restarts[i] < 5) {
        await nodes[i].exited;
        restarts[i]++;
        rmSync(nodes[i].dir, { recursive: true, force: true });
        nodes[i] = await makeNode(i);
      }
    }
    if (up === nodes.length) break;
    if (Date.now() > deadline) {
      const logs = nodes.filter((n) => n.cli('PING') !== 'PONG').map((n) => {
        let text = '';
        try {
          text = readFileSync(join(n.dir, 'redis.log'), 'utf8').split('\n').slice(-5).join('\n');
        } catch {}
        return `node on ${n.port} (alive ${n.alive()}):\n${text}`;
      });
      console.error(logs.join('\n'));
      await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
      rmSync(base, { recursive: true, force: true });
      throw new Error(`cluster nodes did not start (${up} of ${nodes.length} answered; restarts ${restarts})`);
    }
    await sleep(20);
  }
  const cluster = {
    nodes,
    addresses: nodes.map((n) => `127.0.0.1:${n.port}`),
    tlsAddresses: tls ? nodes.map((n) => `127.0.0.1:${n.tls.port}`) : [],
    // redis-cli against any live node.
    cli(...args) {
      return nodes.find((n) => n.alive()).cli(...args);
    },
    // redis-cli -c (follows MOVED), as a backend would.
    cliFollow(...args) {
      return cli(nodes.find((n) => n.alive()).port, ['-c', ...args]);
    },
    // The primaries serving slots now: [{port, id, slots: [[from, to], ...]}], from a live node.
    primaries() {
      const out = [];
      for (const line of cluster.cli('CLUSTER', 'NODES').split('\n')) {
        const f = line.split(' ');
        if (f.length < 8 || !f[2].includes('master') || f[2].includes('fail') || f[7] !== 'connected') continue;
        const slots = f.slice(8).filter((s) => !s.startsWith('[')).map((s) => s.split('-').map(Number))
          .map(([a, b]) => [a, b ?? a]);
        if (slots.length) out.push({ port: Number(f[1].split(':')[1].split('@')[0]), id: f[0], slots });
      }
      return out;
    },
    slotOf(key) {
      return Number(cluster.cli('CLUSTER', 'KEYSLOT', key));
    },
    // The node (a ClusterNode) whose primary serves `key`.
    ownerOf(key) {
      const slot = cluster.slotOf(key);
      const p = cluster.primaries().find((x) => x.slots.some(([a, b]) => slot >= a && slot <= b));
      return p && nodes.find((n) => n.port === p.port);
    },
    healthy() {
      return nodes.filter((n) => n.alive()).every((n) => n.cli('CLUSTER', 'INFO').includes('cluster_state:ok'));
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
      rmSync(base, { recursive: true, force: true });
    },
  };
  try {
    // With TLS the nodes know each other by their TLS ports (the bus speaks TLS too).
    const create = tls ? ['--tls', '--cacert', tls.cert, '--cluster', 'create', ...cluster.tlsAddresses]
      : ['--cluster', 'create', ...cluster.addresses];
    execFileSync('redis-cli', [...create, '--cluster-replicas', String(replicas),
      '--cluster-yes'], { stdio: 'ignore', timeout: 30000 });
    // Ready: every node sees the cluster ok, and every replica is in sync with its primary
    // (a replica that is not cannot be promoted by a failover test).
    for (;;) {
      const synced = nodes.every((n) => {
        const info = n.cli('INFO', 'replication');
        return info.includes('role:master') ? info.includes(`connected_slaves:${replicas}`) : info.includes('master_link_status:up');
      });
      if (cluster.healthy() && synced) break;
      if (Date.now() > deadline) throw new Error('the cluster did not become ok with synced replicas');
      await sleep(50);
    }
    return cluster;
  } catch (e) {
    await cluster.stop();
    throw e;
  }
}
