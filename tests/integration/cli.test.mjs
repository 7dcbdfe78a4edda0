// herald-cli against the real binary: every subcommand, tables and --json, API keys from the
// environment, and its exit codes (0 done, 1 refused, 2 usage, 3 unreachable).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { startHerald, freePort } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';

const CLI = fileURLToPath(new URL('../../clients/cli/herald-cli.mjs', import.meta.url));
const KEY = 'cli-test-key-0123456789abcdef';

function cli(args, { env = {}, input } = {}) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
    p.stdin.end(input ?? '');
  });
}

describe('herald-cli', () => {
  let h;
  let env;
  let alice;
  let aliceId;
  before(async () => {
    h = await startHerald({
      admin: { api_keys: [KEY] },
      history: { rules: [{ pattern: 'orders.*', size: 100, ttl: '1h' }] },
      presence: { rules: [{ pattern: 'room.*' }] },
    });
    env = { HERALD_ADMIN_URL: h.adminUrl, HERALD_API_KEY: KEY };
    [alice, aliceId] = await h.withConnectionId(() => connect(h.url));
    alice.send({ action: 'subscribe', channel: 'room.1', id: 1 });
    await alice.nextJson();
  });
  after(() => h.stop());

  test('publish to a channel, a connection and everyone; DATA from an argument or stdin', async () => {
    alice.send({ action: 'subscribe', channel: 'news', id: 2 });
    await alice.nextJson();
    let r = await cli(['publish', '--channel', 'news', '{"headline":"hi"}'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'delivered to 1 connection on this node');
    assert.deepEqual(JSON.parse(await alice.next()), { type: 'message', channel: 'news', data: { headline: 'hi' } });
    r = await cli(['publish', '--connection', aliceId, '--id', 'n-1', '-', '--json'], { env, input: 'plain words\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { recipients: 1, forwarded: false });
    assert.deepEqual(JSON.parse(await alice.next()), { type: 'message', id: 'n-1', data: 'plain words' });
    r = await cli(['publish', '--all', '42'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(await alice.next()), { type: 'message', data: 42 });
    r = await cli(['publish', '--channel', 'orders.7', '{"status":"paid"}'], { env });
    assert.match(r.stdout, /^stored at offset 1 \(epoch \S+\)$/m);
  });

  test('connections list / get / kick, channels presence / history, health: tables and --json', async () => {
    let r = await cli(['connections', 'list'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^CONNECTION\s+USER\s+NODE\s+SOURCE\s+CONNECTED\s+LAST ACTIVE$/m);
    assert.match(r.stdout, new RegExp(`^${aliceId}\\s+-\\s+${h.nodeId}\\s+127\\.0\\.0\\.1`, 'm'));
    assert.match(r.stdout, /^1 connection$/m);
    r = await cli(['connections', 'get', aliceId, '--json'], { env });
    assert.deepEqual(JSON.parse(r.stdout).channels.sort(), ['news', 'room.1']);
    r = await cli(['connections', 'get', aliceId], { env });
    assert.match(r.stdout, /^channels\s+news, room\.1$|^channels\s+room\.1, news$/m);
    r = await cli(['channels', 'presence', 'room.1'], { env });
    assert.match(r.stdout, new RegExp(`^${aliceId}\\s+-\\s+${h.nodeId}$`, 'm'));
    r = await cli(['channels', 'history', 'orders.7', '--since', '0'], { env });
    assert.match(r.stdout, /^OFFSET\s+TIME\s+ID\s+DATA$/m);
    assert.match(r.stdout, /^1\s+\S+Z\s+\{"status":"paid"\}$/m);
    r = await cli(['health', '--json'], { env });
    assert.equal(r.code, 0);
    const health = JSON.parse(r.stdout);
    assert.equal(health.live, true);
    assert.equal(health.ready, true);
    assert.equal(health.node, h.nodeId);
    assert.equal(health.connections, 1);
    r = await cli(['health'], { env });
    assert.match(r.stdout, /^ready\s+yes$/m);
    assert.match(r.stdout, /^backplane\s+local \(no Redis\)$/m);
    r = await cli(['connections', 'kick', aliceId], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await alice.closed).code, 1000);
    r = await cli(['users', 'kick', 'nobody'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'closed 0 connections of nobody on 1 node');
  });

  test('errors: clear messages and exit codes', async () => {
    let r = await cli(['connections', 'list'], { env: { ...env, HERALD_API_KEY: '' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^herald-cli: HTTP 401: /);
    r = await cli(['connections', 'get', 'AAAAAAAAAAAAAAAAAAAA'], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 404/);
    r = await cli(['publish', '--channel', 'bad channel', 'x'], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /HTTP 400/);
    r = await cli(['publish', '--channel', 'a', '--user', 'b', 'x'], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /exactly one of --channel, --user, --connection, --all/);
    r = await cli(['frobnicate'], { env });
    assert.equal(r.code, 2);
    r = await cli(['channels', 'history', 'x', '--since', 'soon'], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--since must be a whole number/);
    r = await cli(['health'], { env: { ...env, HERALD_ADMIN_URL: `http://127.0.0.1:${await freePort()}` } });
    assert.equal(r.code, 3);
    assert.match(r.stderr, /cannot reach Herald at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/);
    r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^usage: herald-cli/);
  });

  test('an unknown connection: get and kick both say "no such connection" (exit 1)', async () => {
    for (const verb of ['get', 'kick']) {
      const r = await cli(['connections', verb, 'AAAAAAAAAAAAAAAAAAAA'], { env });
      assert.equal(r.code, 1, verb);
      assert.equal(r.stderr.trim(), 'herald-cli: HTTP 404: no such connection: AAAAAAAAAAAAAAAAAAAA', verb);
    }
  });

  test('health checks the key and that the server is Herald', async () => {
    let r = await cli(['health'], { env: { ...env, HERALD_API_KEY: 'a-wrong-key-0123456789' } });
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim(), 'herald-cli: HTTP 403: the API key was refused');
    r = await cli(['health'], { env: { ...env, HERALD_API_KEY: '' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the API key was missing \(set HERALD_API_KEY\)/);
    // Something that answers HTTP, but is not Herald.
    const other = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"status":"ok"}');
    });
    await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      r = await cli(['health'], { env: { ...env, HERALD_ADMIN_URL: `http://127.0.0.1:${other.address().port}` } });
      assert.equal(r.code, 3);
      assert.match(r.stderr, /does not answer like a Herald admin API/);
    } finally {
      other.close();
    }
  });

  test('a listener that accepts and never answers: --timeout, then exit 3', async () => {
    const silent = net.createServer(() => {});  // accepts, reads nothing, answers nothing
    await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${silent.address().port}`;
      const t0 = Date.now();
      let r = await cli(['connections', 'list', '--timeout', '1'], { env: { ...env, HERALD_ADMIN_URL: url } });
      assert.equal(r.code, 3);
      assert.match(r.stderr, /cannot reach Herald at http:\/\/127\.0\.0\.1:\d+: no answer within 1 s/);
      assert.ok(Date.now() - t0 < 5000);
      r = await cli(['health', '--timeout', 'soon'], { env: { ...env, HERALD_ADMIN_URL: url } });
      assert.equal(r.code, 2);
    } finally {
      silent.close();
    }
  });
});
