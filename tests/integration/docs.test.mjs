// The curl examples in docs/api.md, run exactly as written against a real node, each answer
// compared with the one the documentation shows ("…" stands for a value that varies).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startHerald } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { eventually } from './lib/backend.mjs';

const KEY = 'change-me-to-a-long-random-key';

// [command, expected] pairs: each ```sh block and the code block right after it.
function examples(markdown) {
  const blocks = [...markdown.matchAll(/```(\w*)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1], body: m[2] }));
  const out = [];
  for (let i = 0; i + 1 < blocks.length; i++) {
    if (blocks[i].lang === 'sh') out.push([blocks[i].body.trim(), blocks[i + 1].body.trim()]);
  }
  return out;
}

function matches(actual, expected, path = '$') {
  if (expected === '…') return;
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), `${path}: expected an array`);
    assert.equal(actual.length, expected.length, `${path}: length`);
    expected.forEach((e, i) => matches(actual[i], e, `${path}[${i}]`));
  } else if (expected && typeof expected === 'object') {
    assert.ok(actual && typeof actual === 'object', `${path}: expected an object`);
    assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${path}: keys`);
    for (const k of Object.keys(expected)) matches(actual[k], expected[k], `${path}.${k}`);
  } else {
    assert.equal(actual, expected, path);
  }
}

test('every curl example in docs/api.md works as written', async () => {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/api.md', import.meta.url)), 'utf8');
  const h = await startHerald({
    admin: { api_keys: [KEY] },
    integrations: { login: { type: 'mock', headers: { 'X-Herald-User-Id': 'alice' } } },
    routes: { $connect: { integration: 'login' }, $default: { integration: 'echo', response: true } },
  });
  try {
    const alice = await connect(h.url);
    alice.send({ action: 'subscribe', channel: 'news' });
    assert.equal((await alice.nextJson()).type, 'subscribed');
    await eventually(() => h.events('connection.open').length === 1);
    const env = { ...process.env, ADMIN: h.adminUrl, KEY, CONN: h.events('connection.open')[0].connectionId };
    const list = examples(doc);
    assert.ok(list.length >= 10, `found only ${list.length} examples`);
    for (const [command, expected] of list) {
      // Asynchronously: the WebSocket client keeps reading meanwhile.
      const { stdout } = await promisify(execFile)('bash', ['-c', command], { env, encoding: 'utf8', timeout: 10000 });
      const actual = stdout.replace(/\r/g, '').trim();
      let expectedJson;
      try {
        expectedJson = JSON.parse(expected);
      } catch {
        expectedJson = undefined;
      }
      if (expectedJson === undefined) {
        assert.equal(actual, expected, command);
      } else {
        matches(JSON.parse(actual), expectedJson, command);
      }
    }
    // What alice received along the way, in order.
    const received = [];
    while (alice.messages.length) received.push(alice.messages.shift());
    assert.deepEqual(received.slice(0, 4), [
      'hello, alice',
      JSON.stringify({ type: 'message', channel: 'news', data: { headline: 'Herald ships' } }),
      JSON.stringify({ type: 'message', id: 'n-1', data: 'hi alice' }),
      JSON.stringify({ type: 'message', data: 'hello everyone' }),
    ]);
    assert.equal((await alice.closed).code, 1000);
  } finally {
    await h.stop();
  }
});
