// examples/aws-chat, run as its README says (./run.sh): handlers written for API Gateway, a
// local DynamoDB, and Herald configured by `herald import-aws template.yaml`. Three clients
// chat; a disconnect removes its row; a stale id in the table is answered with GoneException
// and the handler deletes it, as on AWS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { freePort, HERALD_BIN } from './lib/herald.mjs';
import { TestClient } from './lib/clients.mjs';
import { eventually } from './lib/backend.mjs';

const example = fileURLToPath(new URL('../../examples/aws-chat/', import.meta.url));
// The example's own AWS SDK, to look at the table as an operator would.
const require = createRequire(join(example, 'package.json'));
const { DynamoDBClient, ScanCommand, PutItemCommand } = require('@aws-sdk/client-dynamodb');

let proc;
let output = '';
let runDir;
let port;
let ddb;

before(async () => {
  runDir = mkdtempSync(join(tmpdir(), 'herald-aws-chat-'));
  const [chat, lambda, dynamo] = [await freePort(), await freePort(), await freePort()];
  port = chat;
  const env = { ...process.env, HERALD_BIN: resolve(HERALD_BIN), CHAT_PORT: String(chat), CHAT_LAMBDA_PORT: String(lambda), CHAT_DYNAMO_PORT: String(dynamo), RUN_DIR: runDir };
  // The example's own credentials and endpoints; no test harness variables for Herald to refuse.
  for (const k of Object.keys(env)) if (k.startsWith('AWS_') || (k.startsWith('HERALD_') && k !== 'HERALD_BIN')) delete env[k];
  proc = spawn('./run.sh', [], { cwd: example, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  await eventually(() => {
    if (proc.exitCode !== null) throw new Error(`run.sh exited ${proc.exitCode}:\n${output}`);
    return output.includes('aws-chat: ready');
  }, 60000);
  ddb = new DynamoDBClient({
    region: 'eu-west-1',
    endpoint: `http://127.0.0.1:${dynamo}`,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
});

after(async () => {
  if (proc && proc.exitCode === null) {
    process.kill(-proc.pid, 'SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
  rmSync(runDir, { recursive: true, force: true });
});

const rows = async () =>
  (await ddb.send(new ScanCommand({ TableName: 'chat-connections' }))).Items.map((i) => i.connectionId.S).sort();

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}`, { ca: readFileSync(join(runDir, 'cert.pem')) });
    const client = new TestClient(ws);
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
  });
}

test('three clients chat through handlers written for API Gateway, unchanged', async () => {
  const clients = [await open(), await open(), await open()];
  // $connect stored each connection.
  await eventually(async () => (await rows()).length === 3);

  clients[0].ws.send(JSON.stringify({ action: 'sendmessage', data: 'hello, everyone' }));
  for (const c of clients) assert.equal(await c.next(), 'hello, everyone');

  // A disconnect removes its row ($disconnect).
  clients[2].ws.close();
  await eventually(async () => (await rows()).length === 2);

  // A row whose connection is long gone (a missed $disconnect on AWS): the send to it raises
  // GoneException through Herald's @connections, and the handler deletes it.
  const stale = 'AAAAAAAAAAAAAAAAAAAA';
  await ddb.send(new PutItemCommand({ TableName: 'chat-connections', Item: { connectionId: { S: stale } } }));
  assert.equal((await rows()).length, 3);
  clients[1].ws.send(JSON.stringify({ action: 'sendmessage', data: 'second' }));
  for (const c of clients.slice(0, 2)) assert.equal(await c.next(), 'second');
  await eventually(async () => !(await rows()).includes(stale));
  assert.match(output, new RegExp(`Found stale connection, deleting ${stale}`));
  assert.equal((await rows()).length, 2);
  for (const c of clients.slice(0, 2)) c.ws.close();
  await eventually(async () => (await rows()).length === 0);
});
