// Throwaway redis-server instances for tests, on free loopback ports, stopped by the test.
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import { mkdirSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir, freePort, whenStopped } from './herald.mjs';

async function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host: '127.0.0.1' }, () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      sock.destroy();
    });
    sock.on('error', () => resolve(false));
  });
}

export class Redis {
  // `tls`: {cert, key, ca, authClients, port}: TLS on `tls.port` as well (tlsUrl); the plain
  // port stays for the test's own redis-cli and readiness check.
  constructor(port, dir, persistence, tls) {
    this.port = port;
    this.dir = dir;
    this.persistence = persistence;
    this.tls = tls;
    this.url = `redis://127.0.0.1:${port}/0`;
    if (tls) this.tlsUrl = `rediss://127.0.0.1:${tls.port}/0`;
  }

  async start() {
    mkdirSync(this.dir, { recursive: true });
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--daemonize', 'no',
      '--logfile', `${this.dir}/redis.log`];
    if (this.persistence) args.push('--appendonly', 'yes', '--appendfsync', 'always', '--save', '');
    else args.push('--appendonly', 'no', '--save', '');
    if (this.tls) {
      args.push('--tls-port', String(this.tls.port), '--tls-cert-file', this.tls.cert, '--tls-key-file',
        this.tls.key, '--tls-ca-cert-file', this.tls.ca ?? this.tls.cert, '--tls-auth-clients',
        this.tls.authClients ? 'yes' : 'no');
    }
    this.proc = spawn('redis-server', args, { stdio: 'ignore' });
    this.exited = new Promise((r) => this.proc.on('exit', r));
    for (let i = 0; i < 300; i++) {
      if (await ping(this.port)) return this;
      if (this.proc.exitCode !== null) throw new Error(`redis-server exited (${this.proc.exitCode})`);
      await sleep(10);
    }
    throw new Error('redis-server did not start');
  }

  // Runs redis-cli against this server; returns its output.
  cli(...args) {
    return execFileSync('redis-cli', ['-p', String(this.port), ...args], { encoding: 'utf8' }).trim();
  }

  async kill(signal = 'SIGKILL') {
    if (!this.proc || this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill(signal);
    await this.exited;
  }

  // SIGTERM. Without persistence its directory goes too (start() makes it again); with it,
  // the append-only file stays for the next start().
  async stop() {
    if (this.proc?.signalCode === null && this.frozen) this.proc.kill('SIGCONT');
    await this.kill('SIGTERM');
    if (!this.persistence) rmSync(this.dir, { recursive: true, force: true });
  }

  // SIGSTOP: connections stay open and nothing is answered (a wedged server); thaw() ends it.
  freeze() {
    this.frozen = true;
    this.proc.kill('SIGSTOP');
    return whenStopped(this.proc.pid);
  }

  thaw() {
    this.frozen = false;
    this.proc.kill('SIGCONT');
  }

  // Starts again on the same port (empty unless persistence is on), after kill() or a crash.
  async restart() {
    await this.kill();
    return this.start();
  }
}

// Starts a redis-server on a free port (retrying if the port was taken meanwhile).
export async function startRedis({ persistence = false, tls } = {}) {
  const dir = tempDir('herald-redis-');
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = new Redis(await freePort(), dir, persistence, tls && { ...tls, port: await freePort() });
    try {
      return await r.start();
    } catch (e) {
      if (attempt === 4) throw e;
    }
  }
  throw new Error('unreachable');
}
