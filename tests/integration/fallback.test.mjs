// The JavaScript SDK's fallback in headless Chromium, behind a proxy that refuses WebSocket
// upgrades (as some corporate proxies do): the demo page, unchanged, runs over Server-Sent
// Events (receives, publishes, chats, resumes after a drop with every notification once), and
// the SDK goes back to WebSocket once upgrades get through again.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHerald } from './lib/herald.mjs';
import { startNoUpgradeProxy } from './lib/no_upgrade_proxy.mjs';
import { parsePrometheus } from './lib/prometheus.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WEB = join(ROOT, 'web');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const publish = (h, data) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify({ channel: 'notifications', data }) }).then((r) => r.json());
const metrics = async (h) => parsePrometheus(await (await fetch(`${h.adminUrl}/metrics`)).text());

describe('SDK fallback to SSE in Chromium', { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` }, () => {
  let h;
  let proxy;
  let browser;
  let page;
  before(async () => {
    const cfg = JSON.parse(readFileSync(join(ROOT, 'config/herald.json'), 'utf8'));
    h = await startHerald({ channels: cfg.channels, history: cfg.history, presence: cfg.presence, http: { static_dir: WEB } });
    proxy = await startNoUpgradeProxy(h.clientPort);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    page = await browser.newPage();
  });
  after(async () => {
    await browser?.close();
    await proxy?.close();
    await h?.stop();
  });

  const notifications = () => page.locator('#feed li.notification');

  test('the demo page falls back to SSE: feed, chat and presence work unchanged', async () => {
    await page.goto(`${proxy.url}/`);
    await page.locator('#feed-state[data-state="open"]').waitFor({ timeout: 15000 });
    assert.equal(await page.evaluate(() => window.heraldDemo.feed.transport), 'sse');
    // The two chats open on their own, after the feed (slower under a sanitizer).
    const alice = page.locator('.chat[data-user="alice"]');
    const bob = page.locator('.chat[data-user="bob"]');
    await alice.locator('.state[data-state="open"]').waitFor({ timeout: 15000 });
    await bob.locator('.state[data-state="open"]').waitFor({ timeout: 15000 });
    const m = await metrics(h);
    assert.equal(m.value('herald_sse_connections'), 3, 'the feed and both chats stream over SSE');
    assert.ok(m.value('herald_handshakes_rejected_total', { reason: 'origin' }) === 0);
    for (const title of ['one', 'two', 'three']) await publish(h, { title });
    await page.waitForFunction(() => document.querySelectorAll('#feed li.notification').length === 3, null, { timeout: 5000 });
    await alice.locator('input[name="text"]').fill('hi over sse');
    await alice.locator('button', { hasText: 'Send' }).click();
    await bob.locator('li.chat-message', { hasText: 'alice: hi over sse' }).waitFor({ timeout: 5000 });
    await alice.locator('.members', { hasText: '2 connections' }).waitFor({ timeout: 5000 });
  });

  test('a network drop: the page reconnects over SSE and resumes, every notification once', async () => {
    proxy.cut();
    for (let i = 4; i <= 7; i++) await publish(h, { title: `while away ${i}` });
    await page.waitForFunction(() => window.heraldDemo.feed.stats.reconnects >= 1 && window.heraldDemo.feed.state === 'open', null, { timeout: 15000 });
    await publish(h, { title: 'after 8' });
    await page.waitForFunction(() => document.querySelectorAll('#feed li.notification').length >= 8, null, { timeout: 5000 });
    await page.waitForTimeout(200); // a duplicate would show up here
    const offsets = await notifications().evaluateAll((els) => els.map((e) => Number(e.dataset.offset)));
    assert.deepEqual(offsets, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(await page.evaluate(() => window.heraldDemo.feed.transport), 'sse');
  });

  test('the SDK goes back to WebSocket once upgrades get through', async () => {
    const probe = await browser.newPage();
    await probe.goto(`${proxy.url}/`);
    await probe.locator('#feed-state[data-state="open"]').waitFor({ timeout: 15000 });
    const result = probe.evaluate(async (base) => {
      const { connect } = await import('/herald.js');
      const events = [];
      const client = connect(base.replace('http', 'ws') + '/', { fallback: { retryWebSocketAfter: 500, openTimeout: 2000 } });
      client.on('fallback', (e) => events.push(`${e.from}->${e.to}`));
      const got = [];
      await client.subscribe('notifications', (d) => got.push(d.title));
      const first = client.transport;
      window.allowed = new Promise((r) => (window.allow = r));
      await window.allowed;
      const deadline = Date.now() + 10000;
      while (client.transport !== 'websocket' || client.state !== 'open') {
        if (Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const second = client.transport;
      client.close();
      return { first, second, events };
    }, proxy.url);
    await probe.waitForFunction(() => typeof window.allow === 'function', null, { timeout: 10000 });
    proxy.allowUpgrades(true);
    await probe.evaluate(() => window.allow());
    const r = await result;
    assert.deepEqual(r, { first: 'sse', second: 'websocket', events: ['websocket->sse', 'sse->websocket'] });
    await probe.close();
  });
});
