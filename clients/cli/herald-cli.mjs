#!/usr/bin/env node
// herald-cli: the admin API from a terminal. Node >= 20, no dependencies.
//
//   herald-cli publish --channel news '{"headline":"hi"}'
//   herald-cli connections list --user alice
//   herald-cli channels history orders.42 --since 10
//   herald-cli health
//
// The admin URL comes from --url or HERALD_ADMIN_URL (default http://127.0.0.1:8081), the API
// key from HERALD_API_KEY (never a flag: flags end up in shell history and `ps`). Tables for
// people by default, --json for scripts. Exit codes: 0 done, 1 the API said no, 2 usage error,
// 3 Herald unreachable.

const USAGE = `usage: herald-cli [--url URL] [--timeout SECONDS] [--json] COMMAND ...

commands:
  publish (--channel NAME | --user ID | --connection ID | --all) [--id ID] DATA
                                 publish DATA (JSON, else a string; - reads stdin)
  connections list [--user ID] [--limit N]
  connections get ID             one connection: user, node, channels, times
  connections kick ID            close a connection (the client sees 1000)
                                 (get and kick: exit 1, "no such connection", for an unknown id)
  users kick ID                  close every connection of a user
  channels presence NAME         who is subscribed, on every node
  channels history NAME [--since N] [--limit N] [--epoch E]
  health                         liveness, readiness and a few gauges of the node; checks
                                 that it is Herald and that the key is accepted

options:
  --url URL          the admin API (default $HERALD_ADMIN_URL, else http://127.0.0.1:8081)
  --timeout SECONDS  how long to wait for each answer (default 10); then exit 3
  --json             machine-readable output

environment:
  HERALD_ADMIN_URL   admin API base URL (default http://127.0.0.1:8081)
  HERALD_API_KEY     one of admin.api_keys

exit codes: 0 ok, 1 refused by the API, 2 usage error, 3 cannot reach Herald`;

class UsageError extends Error {}
class ApiError extends Error {
  constructor(status, body) {
    const detail = body && typeof body === 'object' ? body.message ?? body.error ?? JSON.stringify(body) : body;
    super(`HTTP ${status}${detail ? `: ${detail}` : ''}`);
    this.status = status;
    this.body = body;
  }
}

// Flags (--name value, --name=value, boolean --json/--all) and positionals.
function parseArgs(argv) {
  const booleans = new Set(['json', 'all', 'help']);
  const flags = {};
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq < 0 ? undefined : eq);
      if (booleans.has(name)) {
        flags[name] = true;
      } else if (eq >= 0) {
        flags[name] = a.slice(eq + 1);
      } else {
        if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value`);
        flags[name] = argv[++i];
      }
    } else if (a === '-h') {
      flags.help = true;
    } else {
      rest.push(a);
    }
  }
  return { flags, rest };
}

function allowOnly(flags, allowed) {
  for (const name of Object.keys(flags)) {
    if (!['url', 'json', 'help', 'timeout', ...allowed].includes(name)) throw new UsageError(`unknown option --${name}`);
  }
}

function integer(flags, name) {
  if (flags[name] === undefined) return undefined;
  if (!/^\d+$/.test(flags[name])) throw new UsageError(`--${name} must be a whole number, got "${flags[name]}"`);
  return flags[name];
}

class Api {
  constructor(base, key, timeoutSeconds) {
    this.base = base.replace(/\/+$/, '');
    this.key = key;
    this.timeoutMs = timeoutSeconds * 1000;
  }

  async call(method, path, body) {
    const headers = {};
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    let text;
    // One deadline for the answer, its body included: a listener that accepts and never answers
    // (or stops half-way) must not hang the CLI.
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      res = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
      text = await res.text();
    } catch (e) {
      const why = e.name === 'TimeoutError' || signal.aborted
        ? `no answer within ${this.timeoutMs / 1000} s`
        : e.cause?.code ?? e.cause?.message ?? e.message;
      const err = new Error(`cannot reach Herald at ${this.base}: ${why}`);
      err.unreachable = true;
      throw err;
    }
    let parsed = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // plain text (metrics) stays text
    }
    return { status: res.status, body: parsed };
  }

  async expect(method, path, body, ok = [200, 202, 204]) {
    const r = await this.call(method, path, body);
    if (!ok.includes(r.status)) throw new ApiError(r.status, r.body);
    return r;
  }
}

// A plain table: columns sized to their content.
function table(rows, columns) {
  if (rows.length === 0) return '(none)';
  const cell = (v) => (v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = columns.map(([title, get]) => Math.max(title.length, ...rows.map((r) => cell(get(r)).length)));
  const line = (values) => values.map((v, i) => v.padEnd(widths[i])).join('  ').trimEnd();
  return [line(columns.map(([t]) => t)), ...rows.map((r) => line(columns.map(([, get]) => cell(get(r)))))].join('\n');
}

function fields(obj, names) {
  return names.map(([label, key]) => `${label.padEnd(14)} ${obj[key] === undefined || obj[key] === null || obj[key] === '' ? '-' : Array.isArray(obj[key]) ? obj[key].join(', ') || '-' : obj[key]}`).join('\n');
}

async function readData(text) {
  if (text === '-') {
    const chunks = [];
    for await (const c of process.stdin) chunks.push(c);
    text = Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
  }
  try {
    return JSON.parse(text);
  } catch {
    return text; // not JSON: published as a string
  }
}

const enc = encodeURIComponent;

async function run(argv, out) {
  const { flags, rest } = parseArgs(argv);
  const [command, sub, ...args] = rest;
  if (flags.help || !command) {
    out(USAGE);
    return flags.help ? 0 : 2;
  }
  let timeout = 10;
  if (flags.timeout !== undefined) {
    timeout = Number(flags.timeout);
    if (!(timeout > 0 && timeout <= 3600)) throw new UsageError(`--timeout must be a number of seconds (0 to 3600), got "${flags.timeout}"`);
  }
  const api = new Api(flags.url ?? process.env.HERALD_ADMIN_URL ?? 'http://127.0.0.1:8081', process.env.HERALD_API_KEY, timeout);
  const print = (json, human) => out(flags.json ? JSON.stringify(json, null, 2) : human(json));

  switch (command) {
    case 'publish': {
      allowOnly(flags, ['channel', 'user', 'connection', 'all', 'id']);
      const data = [sub, ...args];
      if (data.length !== 1 || data[0] === undefined) throw new UsageError('publish takes exactly one DATA argument (use - for stdin)');
      const targets = ['channel', 'user', 'connection', 'all'].filter((t) => flags[t] !== undefined);
      if (targets.length !== 1) throw new UsageError('publish needs exactly one of --channel, --user, --connection, --all');
      const body = { data: await readData(data[0]) };
      if (flags.all) body.broadcast = true;
      else body[targets[0]] = flags[targets[0]];
      if (flags.id) body.id = flags.id;
      const r = await api.expect('POST', '/v1/publish', body);
      print(r.body, (b) => {
        if (b.offset !== undefined) return `stored at offset ${b.offset} (epoch ${b.epoch})${b.duplicate ? ', duplicate id: not published again' : ''}`;
        const n = b.recipients ?? 0;
        return `delivered to ${n} connection${n === 1 ? '' : 's'} on this node${b.forwarded ? ', forwarded to the other nodes' : ''}`;
      });
      return 0;
    }
    case 'connections': {
      if (sub === 'list') {
        allowOnly(flags, ['user', 'limit']);
        if (args.length) throw new UsageError('connections list takes no arguments');
        const q = new URLSearchParams();
        if (flags.user) q.set('user', flags.user);
        const limit = integer(flags, 'limit');
        if (limit) q.set('limit', limit);
        const r = await api.expect('GET', `/v1/connections${q.size ? `?${q}` : ''}`);
        print(r.body, (b) => `${table(b.connections, [
          ['CONNECTION', (c) => c.connectionId],
          ['USER', (c) => c.userId || '-'],
          ['NODE', (c) => c.node],
          ['SOURCE', (c) => c.sourceIp],
          ['CONNECTED', (c) => c.connectedAt],
          ['LAST ACTIVE', (c) => c.lastActiveAt],
        ])}\n${b.count} connection${b.count === 1 ? '' : 's'}`);
        return 0;
      }
      if (sub === 'get' || sub === 'kick') {
        allowOnly(flags, []);
        if (args.length !== 1) throw new UsageError(`connections ${sub} takes one connection id`);
        // Both work for a connection on any node, and answer 404 for one that is nowhere.
        const noSuch = (e) => {
          if (e instanceof ApiError && e.status === 404) throw new ApiError(404, { message: `no such connection: ${args[0]}` });
          throw e;
        };
        if (sub === 'get') {
          const r = await api.expect('GET', `/v1/connections/${enc(args[0])}`).catch(noSuch);
          print(r.body, (c) => fields(c, [['connection', 'connectionId'], ['user', 'userId'], ['node', 'node'], ['source', 'sourceIp'],
            ['user agent', 'userAgent'], ['subprotocol', 'subprotocol'], ['connected', 'connectedAt'], ['last active', 'lastActiveAt'], ['channels', 'channels']]));
        } else {
          await api.expect('DELETE', `/v1/connections/${enc(args[0])}`).catch(noSuch);
          print({ connectionId: args[0], closed: true }, () => `closed ${args[0]}`);
        }
        return 0;
      }
      throw new UsageError('connections: list, get ID or kick ID');
    }
    case 'users': {
      allowOnly(flags, []);
      if (sub !== 'kick' || args.length !== 1) throw new UsageError('users kick ID');
      const r = await api.expect('DELETE', `/v1/users/${enc(args[0])}/connections`);
      print(r.body, (b) => {
        const answered = b.nodes?.answered ?? [];
        const silent = b.nodes?.silent ?? [];
        let text = `closed ${b.closed} connection${b.closed === 1 ? '' : 's'} of ${args[0]} on ${answered.length} node${answered.length === 1 ? '' : 's'}`;
        if (silent.length) text += `; no answer from ${silent.join(', ')} (their connections may still be open)`;
        return text;
      });
      return 0;
    }
    case 'channels': {
      if (args.length !== 1) throw new UsageError(`channels ${sub ?? 'presence|history'} takes one channel name`);
      const name = args[0];
      if (sub === 'presence') {
        allowOnly(flags, []);
        const r = await api.expect('GET', `/v1/channels/${enc(name)}/presence`);
        print(r.body, (b) => `${table(b.members, [['CONNECTION', (m) => m.connectionId], ['USER', (m) => m.userId || '-'], ['NODE', (m) => m.node]])}\n${b.connections} connection${b.connections === 1 ? '' : 's'}${b.truncated ? ' (list truncated)' : ''}`);
        return 0;
      }
      if (sub === 'history') {
        allowOnly(flags, ['since', 'limit', 'epoch', 'user']);
        const q = new URLSearchParams();
        for (const k of ['since', 'limit']) if (integer(flags, k) !== undefined) q.set(k, flags[k]);
        if (flags.epoch) q.set('epoch', flags.epoch);
        if (flags.user) q.set('user', flags.user);
        const r = await api.expect('GET', `/v1/channels/${enc(name)}/history${q.size ? `?${q}` : ''}`);
        print(r.body, (b) => `${table(b.messages, [['OFFSET', (m) => m.offset], ['TIME', (m) => m.time], ['ID', (m) => m.id ?? ''], ['DATA', (m) => m.data]])}\n` +
          `channel ${b.channel} · epoch ${b.epoch} · newest offset ${b.offset}${b.more ? ' · more: --since ' + b.messages.at(-1).offset : ''}${b.complete === false ? ' · GAP: older messages are gone' : ''}`);
        return 0;
      }
      throw new UsageError('channels: presence NAME or history NAME');
    }
    case 'health': {
      allowOnly(flags, []);
      const health = await api.call('GET', '/healthz');
      const ready = await api.call('GET', '/readyz');
      // GET /v1/node proves both that this is Herald's admin API and that the key works.
      const node = await api.call('GET', '/v1/node');
      if (node.status === 401 || node.status === 403) {
        throw new ApiError(node.status, { message: `the API key was ${node.status === 401 ? 'missing (set HERALD_API_KEY)' : 'refused'}` });
      }
      const isHerald = node.status === 200 && node.body && typeof node.body === 'object' && typeof node.body.nodeId === 'string' &&
        node.body.backplane && health.body?.status === 'ok';
      if (!isHerald) {
        const err = new Error(`${api.base} does not answer like a Herald admin API (GET /v1/node: HTTP ${node.status})`);
        err.unreachable = true;
        throw err;
      }
      const n = node.body;
      const result = {
        live: health.status === 200,
        ready: ready.status === 200,
        reasons: ready.body?.reasons ?? [],
        node: n.nodeId,
        version: n.version,
        connections: n.connections,
        backplane: n.backplane.kind === 'redis' ? (n.backplane.up ? 'up' : 'DOWN') : 'local (no Redis)',
        draining: (ready.body?.reasons ?? []).includes('draining'),
      };
      print(result, (r) => fields({ ...r, live: r.live ? 'yes' : 'NO', ready: r.ready ? 'yes' : `NO (${r.reasons.join(', ')})`,
        draining: r.draining ? 'yes' : 'no' },
      [['node', 'node'], ['version', 'version'], ['live', 'live'], ['ready', 'ready'], ['connections', 'connections'], ['backplane', 'backplane'], ['draining', 'draining']]));
      return result.live && result.ready ? 0 : 1;
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

try {
  process.exitCode = await run(process.argv.slice(2), (s) => console.log(s));
} catch (e) {
  if (e instanceof UsageError) {
    console.error(`herald-cli: ${e.message}\n(herald-cli --help for usage)`);
    process.exitCode = 2;
  } else if (e instanceof ApiError) {
    console.error(`herald-cli: ${e.message}`);
    process.exitCode = 1;
  } else if (e.unreachable) {
    console.error(`herald-cli: ${e.message}`);
    process.exitCode = 3;
  } else {
    throw e;
  }
}
