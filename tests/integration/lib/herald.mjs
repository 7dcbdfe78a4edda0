// Starts the real herald binary for a test: a temporary config on free loopback ports, JSON
// logs parsed as they arrive, readiness awaited, and a clean stop that reports the exit code.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import net from 'node:net';

export const HERALD_BIN = process.env.HERALD_BIN;
if (!HERALD_BIN) throw new Error('HERALD_BIN is not set (run the tests through ctest or ./scripts/test)');

// The environment herald runs with: ours without any HERALD_* variable (the harness's own, such
// as HERALD_BIN or HERALD_ARTIFACTS, would be unknown settings to herald), plus `extra`.
function childEnv(extra) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HERALD_')));
  return { ...env, ...extra };
}

const isObject = (v) => v && typeof v === 'object' && !Array.isArray(v);

export function deepMerge(base, extra) {
  const out = { ...base };
  for (const [k, v] of Object.entries(extra ?? {})) {
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

// Settings every test node starts from: ephemeral ports, JSON logs at debug level.
export const TEST_DEFAULTS = {
  listen: '127.0.0.1:0',
  threads: 2,
  log: { level: 'debug', format: 'json' },
  admin: { enabled: true, listen: '127.0.0.1:0' },
  // Tests stop nodes often: no load balancer to wait for, no close spreading, unless a test asks.
  shutdown: { accept_delay: '0s', close_window: '0s', drain_timeout: '5s' },
};

// A loopback port nothing listens on right now (for servers that cannot bind port 0 themselves,
// and for "nobody is there" tests).
export async function freePort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

export function tempDir(prefix = 'herald-test-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

// Runs herald to completion (for --check-config, --help, bad configs).
export function runHerald(args, { env = {}, cwd } = {}) {
  const r = spawnSync(HERALD_BIN, args, { env: childEnv(env), cwd, encoding: 'utf8', timeout: 10000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export class Herald {
  constructor(proc, dir) {
    this.proc = proc;
    this.dir = dir;
    this.logs = [];
    this.stderr = '';
    this.exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    this.waiters = [];
    let pending = '';
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      pending += chunk;
      let nl;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let entry;
        try {
          entry = JSON.parse(line);
        } catch {
          entry = { event: 'unparsed', line };
        }
        this.logs.push(entry);
        this.waiters = this.waiters.filter((w) => !w.check(entry));
      }
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      this.stderr += chunk;
    });
  }

  // Resolves with the first log entry (past or future) that matches `pred`.
  waitForLog(pred, timeoutMs = 5000) {
    const found = this.logs.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      const waiter = {
        check: (entry) => {
          if (!pred(entry)) return false;
          clearTimeout(timer);
          resolve(entry);
          return true;
        },
      };
      this.waiters.push(waiter);
    });
  }

  events(name) {
    return this.logs.filter((l) => l.event === name);
  }

  // Runs `open()` (which opens one connection) and returns [its result, the new connection's id],
  // read from the node's connection.open log line. Open connections one at a time with it.
  async withConnectionId(open) {
    const before = this.events('connection.open').length;
    const client = await open();
    await this.waitForLog(() => this.events('connection.open').length > before);
    return [client, this.events('connection.open')[before].connectionId];
  }

  get url() {
    return `ws://127.0.0.1:${this.clientPort}`;
  }
  get wssUrl() {
    return `wss://127.0.0.1:${this.clientPort}`;
  }
  get httpUrl() {
    return `http://127.0.0.1:${this.clientPort}`;
  }
  get adminUrl() {
    return `http://127.0.0.1:${this.adminPort}`;
  }

  // SIGTERM, then wait; SIGKILL after `timeoutMs`. Resolves with { code, signal }.
  async stop(timeoutMs = 10000) {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    return this.waitExit(timeoutMs);
  }

  // Waits for an exit already under way (no signal sent); SIGKILL after `timeoutMs`.
  async waitExit(timeoutMs = 10000) {
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    if (/ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:/.test(this.stderr)) {
      throw new Error(`sanitizer report from herald:\n${this.stderr}`);
    }
    return result;
  }

  kill(signal = 'SIGKILL') {
    this.proc.kill(signal);
    return this.exited;
  }

  // SIGSTOP, resolved once every thread has stopped (a node that answers nothing); thaw() ends it.
  freeze() {
    this.proc.kill('SIGSTOP');
    return whenStopped(this.proc.pid);
  }

  thaw() {
    this.proc.kill('SIGCONT');
  }
}

// A SIGSTOP is not instant: a request already on its way can still be answered. This waits
// (up to 5 s) until /proc says the process is stopped.
export async function whenStopped(pid) {
  for (let i = 0; i < 500; i++) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return;
    } catch {
      return;  // gone
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} did not stop`);
}

// Starts herald with TEST_DEFAULTS merged with `config`, waits until /readyz answers 200.
// `wrap` runs herald under another command, e.g. ['prlimit', '--nofile=300:300', '--'].
export async function startHerald(config = {}, { args = [], env = {}, ready = true, wrap = [] } = {}) {
  const dir = tempDir();
  const file = join(dir, 'herald.json');
  writeFileSync(file, JSON.stringify(deepMerge(TEST_DEFAULTS, config), null, 2));
  const command = [...wrap, HERALD_BIN, '--config', file, ...args];
  const proc = spawn(command[0], command.slice(1), {
    env: childEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const h = new Herald(proc, dir);
  const early = h.exited.then(({ code, signal }) => {
    throw new Error(`herald exited early (code ${code}, signal ${signal}): ${h.stderr}`);
  });
  const started = (async () => {
    // Listeners announce the ports they bound before server.started.
    const started = await h.waitForLog((l) => l.event === 'server.started', 10000);
    h.nodeId = started.nodeId;
    h.clientPort = h.logs.find((l) => l.event === 'listener.started' && l.listener === 'client').port;
    h.adminPort = h.logs.find((l) => l.event === 'listener.started' && l.listener === 'admin')?.port;
    if (ready) await waitReady(h);
    return h;
  })();
  try {
    return await Promise.race([started, early]);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
}

export async function waitReady(h, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  const base = h.adminPort ? h.adminUrl : h.httpUrl;
  for (;;) {
    try {
      const r = await fetch(`${base}/readyz`);
      if (r.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('herald did not become ready');
    await sleep(20);
  }
}

// A self-signed certificate for 127.0.0.1 / localhost, made with openssl at test time.
export function makeCertificate(dir) {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl failed: ${r.stderr}`);
  return { cert, key };
}

export function writeJson(dir, name, value) {
  const file = join(dir, name);
  writeFileSync(file, typeof value === 'string' ? value : JSON.stringify(value));
  return file;
}
