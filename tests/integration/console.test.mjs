// The built-in admin console (web/console/, served at /console/ on the admin listener) in a real
// browser: headless Chromium (Debian's) driven by playwright-core, against two real nodes and a
// real Redis. An operator signs in with an API key, watches a connection appear and the charts
// move, kicks a connection, publishes from the form, pages through 1,000 connections, sees both
// nodes; a wrong key shows an error. Screenshots go to the test artifacts.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { startHerald, tempDir } from './lib/herald.mjs';
import { connect } from './lib/clients.mjs';
import { startRedis } from './lib/redis.mjs';
import { eventually } from './lib/backend.mjs';

const ARTIFACTS = process.env.HERALD_ARTIFACTS ?? tempDir('herald-artifacts-');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const KEY = 'console-test-key-0123456789abcdef';

describe('admin console in Chromium', { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` }, () => {
  let redis;
  let a;
  let b;
  let browser;
  let page;
  const pageErrors = [];
  const crowd = [];

  before(async () => {
    redis = await startRedis();
    const config = (id) => ({
      node_id: id,
      backplane: 'redis',
      // Nodes refresh their entry (and the figures the cluster view shows) every second.
      redis: { url: redis.url, node_ttl: '3s' },
      admin: { api_keys: [KEY] },
      history: { rules: [{ pattern: 'feed.*', size: 100, ttl: '1h' }] },
      presence: { rules: [{ pattern: 'feed.*' }] },
      websocket: { rate_limit: { messages_per_second: 0 } },
    });
    [a, b] = await Promise.all([startHerald(config('console-a')), startHerald(config('console-b'))]);
    mkdirSync(ARTIFACTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
    });
    page = await browser.newPage({ viewport: { width: 1366, height: 800 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && !/40[13]/.test(m.text()) && pageErrors.push(m.text()));
  });

  after(async () => {
    for (const ws of crowd) ws.terminate();
    await browser?.close();
    await Promise.all([a, b].filter(Boolean).map((h) => h.stop()));
    await redis?.stop();
  });

  const shot = (name) => page.screenshot({ path: join(ARTIFACTS, `console-${name}.png`), fullPage: true });
  const tab = (name) => page.locator(`#tab-${name}`).click();

  test('served from the admin listener with a strict policy, no key in the URL', async () => {
    const r = await fetch(`${a.adminUrl}/console/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-security-policy'), /script-src 'self'/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    const redirect = await fetch(`${a.adminUrl}/console`, { redirect: 'manual' });
    assert.equal(redirect.status, 301);
    assert.equal((await fetch(`${a.adminUrl}/console/nope.js`)).status, 404);
    // Not on the client listener.
    assert.equal((await fetch(`${a.httpUrl}/console/`)).status, 404);
  });

  test('a wrong key shows an error, not a blank page', async () => {
    await page.goto(`${a.adminUrl}/console/`);
    await page.locator('#api-key').waitFor();
    await page.locator('#api-key').fill('not-the-right-key-at-all');
    await page.locator('#login-form button[type=submit]').click();
    await page.locator('#login-error', { hasText: 'not accepted' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#app').isHidden(), true);
    assert.ok(!page.url().includes('not-the-right-key'), 'the key never goes in the URL');
    await shot('wrong-key');
  });

  test('signs in; the overview shows the node, readiness and Redis', async () => {
    await page.locator('#api-key').fill(KEY);
    await page.locator('#login-form button[type=submit]').click();
    await page.locator('#f-node', { hasText: 'console-a' }).waitFor({ timeout: 5000 });
    assert.match(await page.locator('#f-ready').textContent(), /^ready/);
    assert.match(await page.locator('#f-backplane').textContent(), /Redis up/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('herald.console.key')), KEY);
    assert.ok(!page.url().includes(KEY));
  });

  test('the charts move when messages flow', async () => {
    const c = await connect(a.url);
    const until = Date.now() + 5000;
    let sent = 0;
    while (Date.now() < until) {
      c.send(`echo ${sent++}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await page.waitForFunction(() => Number(document.querySelector('#chart-messages').dataset.last) > 0, null, { timeout: 8000 });
    const shown = await page.locator('#rate-in').textContent();
    assert.ok(Number(shown.replace(/,/g, '')) > 0, `messages in per second shown: ${shown}`);
    assert.ok(Number(await page.locator('#chart-messages').getAttribute('data-points')) >= 2);
    await shot('overview');
    await c.close();
  });

  test('a connection appears when a client connects; its details and subscriptions', async () => {
    const [client, id] = await a.withConnectionId(() => connect(a.url, { headers: { 'User-Agent': 'console-test/1.0' } }));
    client.send({ action: 'subscribe', channel: 'feed.1' });
    assert.equal((await client.nextJson()).type, 'subscribed');
    await tab('connections');
    await page.locator(`#connections tr[data-connection="${id}"]`).waitFor({ timeout: 5000 });
    await page.locator('#conn-q').fill(id);
    await page.locator('#conn-search button[type=submit]').click();
    await page.locator('#conn-detail-title', { hasText: id }).waitFor();
    const facts = await page.locator('#conn-facts').textContent();
    assert.match(facts, /console-test\/1\.0/);
    assert.match(facts, /feed\.1/);
    // Send it a message from the panel (the AWS @connections path: the text as typed).
    await page.locator('#conn-message').fill('{"notice":"from the console"}');
    await page.locator('#conn-send button[type=submit]').click();
    assert.equal(await client.next(), '{"notice":"from the console"}');
    client.ws.terminate();
  });

  test('publishing from the form reaches a subscriber; the channel shows its history and presence', async () => {
    const sub = await connect(b.url); // on the other node
    sub.send({ action: 'subscribe', channel: 'feed.2' });
    assert.equal((await sub.nextJson()).type, 'subscribed');
    const local = await connect(a.url);
    local.send({ action: 'subscribe', channel: 'feed.2' });
    assert.equal((await local.nextJson()).type, 'subscribed');
    await tab('channels');
    await page.locator('#channels tr[data-channel="feed.2"]').waitFor({ timeout: 5000 });
    await page.locator('#pub-kind').selectOption('channel');
    await page.locator('#pub-target').fill('feed.2');
    await page.locator('#pub-data').fill('{"title":"from the console form"}');
    await page.locator('#publish button[type=submit]').click();
    await page.locator('#pub-status', { hasText: 'Stored at offset 1' }).waitFor({ timeout: 5000 });
    for (const c of [sub, local]) {
      const m = await c.nextJson();
      assert.deepEqual([m.type, m.channel, m.offset, m.data], ['message', 'feed.2', 1, { title: 'from the console form' }]);
    }
    await page.locator('#channels tr[data-channel="feed.2"] button').click();
    await page.locator('#chan-history li', { hasText: 'from the console form' }).waitFor({ timeout: 5000 });
    const facts = await page.locator('#chan-facts').textContent();
    assert.match(facts, /Subscribers here1/);
    assert.match(facts, /Newest offset1/);
    // Presence is cluster-wide: both subscribers, on both nodes.
    await page.locator('#chan-presence li', { hasText: 'console-b' }).waitFor();
    assert.equal(await page.locator('#chan-presence li').count(), 2);
    // A user and everyone, from the same form.
    await page.locator('#pub-kind').selectOption('broadcast');
    await page.locator('#pub-data').fill('maintenance at 18:00');
    await page.locator('#publish button[type=submit]').click();
    await page.locator('#pub-status', { hasText: 'Published to everyone' }).waitFor();
    assert.deepEqual(await sub.nextJson(), { type: 'message', data: 'maintenance at 18:00' });
    await shot('channels');
    sub.ws.terminate();
    local.ws.terminate();
  });

  test('kicking a connection closes it: the client gets its close', async () => {
    const [client, id] = await a.withConnectionId(() => connect(a.url));
    await tab('connections');
    await page.locator('#conn-clear').click();
    const row = page.locator(`#connections tr[data-connection="${id}"]`);
    await row.waitFor({ timeout: 5000 });
    await row.locator('button', { hasText: 'Kick' }).click();
    const closed = await client.closed;
    assert.deepEqual(closed, { code: 1000, reason: 'connection deleted' });
    await row.waitFor({ state: 'detached', timeout: 5000 });
  });

  test('1,000 connections: one page of 50 at a time, and the layout holds', async () => {
    for (let i = 0; i < 1000; i += 100) {
      await Promise.all(Array.from({ length: 100 }, () => new Promise((resolve, reject) => {
        const ws = new WebSocket(a.url);
        ws.on('open', () => resolve());
        ws.on('error', reject);
        crowd.push(ws);
      })));
    }
    await tab('connections');
    await page.locator('#conn-clear').click();
    await page.locator('#conn-range', { hasText: 'of 1,000' }).waitFor({ timeout: 5000 });
    assert.equal(await page.locator('#connections tr').count(), 50);
    assert.match(await page.locator('#conn-range').textContent(), /^1–50 of 1,000$/);
    await page.locator('#conn-next').click();
    await page.locator('#conn-range', { hasText: '51–100 of 1,000' }).waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page scrolls sideways by ${overflow}px`);
    await shot('connections');
  });

  test('the cluster view lists both nodes with their connections', async () => {
    await tab('cluster');
    await page.locator('#nodes tr[data-node="console-b"]').waitFor({ timeout: 8000 });
    await page.locator('#nodes tr[data-node="console-a"]').waitFor();
    const rowA = await page.locator('#nodes tr[data-node="console-a"]').textContent();
    assert.match(rowA, /this node/);
    assert.match(rowA, /1,000/);
    // The other node's figures come from its own report in Redis: its version, its connections.
    const rowB = page.locator('#nodes tr[data-node="console-b"]');
    await page.waitForFunction(() => /0\.1\.0/.test(document.querySelector('#nodes tr[data-node="console-b"]')?.textContent ?? ''), null, { timeout: 8000 });
    assert.match(await rowB.locator('td').nth(2).textContent(), /^\d+$/);
    // Rates appear from the second report on.
    await page.waitForFunction(() => !/—/.test(document.querySelector('#nodes tr[data-node="console-b"] td:nth-child(4)')?.textContent ?? '—'), null, { timeout: 8000 });
    await shot('cluster');
    assert.deepEqual(pageErrors, []);
  });

  test('forgetting the key signs out', async () => {
    await page.locator('#logout').click();
    await page.locator('#login').waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('herald.console.key')), null);
    await page.reload();
    await page.locator('#api-key').waitFor();
    assert.equal(await page.locator('#login-error').textContent(), '');
  });
});

test('the console needs no key where the admin API needs none (loopback, no keys)', async () => {
  const h = await startHerald();
  try {
    const r = await fetch(`${h.adminUrl}/v1/node`);
    assert.equal(r.status, 200);
    const node = await r.json();
    assert.equal(node.nodeId, h.nodeId);
    assert.equal(node.backplane.kind, 'local');
    assert.deepEqual(node.reasons, []);
    const nodes = await (await fetch(`${h.adminUrl}/v1/nodes`)).json();
    assert.deepEqual(nodes.nodes.map((n) => [n.nodeId, n.self]), [[h.nodeId, true]]);
    await eventually(async () => (await (await fetch(`${h.adminUrl}/v1/channels`)).json()).count === 0);
  } finally {
    await h.stop();
  }
});
