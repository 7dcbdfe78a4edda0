// The demo page (web/) in a real browser: headless Chromium (Debian's) driven by playwright-core
// loads the page from a running Herald (http.static_dir), receives notifications published
// through the admin API, chats between its two users with presence, and resumes without losing
// a notification after its sockets are cut. Also: static file serving through the real binary.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startHerald, tempDir } from './lib/herald.mjs';
import { rawHttp } from './lib/clients.mjs';
import { Link } from './lib/link.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WEB = join(ROOT, 'web');
const ARTIFACTS = process.env.HERALD_ARTIFACTS ?? tempDir('herald-artifacts-');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

// The configuration ./scripts/run uses, on test ports.
function demoConfig() {
  const cfg = JSON.parse(readFileSync(join(ROOT, 'config/herald.json'), 'utf8'));
  return { channels: cfg.channels, history: cfg.history, presence: cfg.presence, http: { static_dir: WEB } };
}

const publish = (h, data) =>
  fetch(`${h.adminUrl}/v1/publish`, { method: 'POST', body: JSON.stringify({ channel: 'notifications', data }) }).then((r) => r.json());

describe('demo page in Chromium', { skip: !existsSync(CHROMIUM) && `no browser at ${CHROMIUM}` }, () => {
  let h;
  let link;
  let browser;
  let page;
  const consoleErrors = [];
  before(async () => {
    h = await startHerald(demoConfig());
    link = await Link.start(h.clientPort);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
    page.on('pageerror', (e) => consoleErrors.push(e.message));
  });
  after(async () => {
    await browser?.close();
    await link?.close();
    await h?.stop();
  });

  const notifications = () => page.locator('#feed li.notification');

  test('loads from Herald, connects, shows API publications', async () => {
    await page.goto(`${link.httpUrl}/`);
    await page.locator('#feed-state[data-state="open"]').waitFor({ timeout: 10000 });
    for (const title of ['Deploy finished', 'Build 42 is green', 'New comment on PR 7']) await publish(h, { title });
    await page.waitForFunction(() => document.querySelectorAll('#feed li.notification').length === 3, null, { timeout: 5000 });
    assert.deepEqual(await notifications().allTextContents(), ['Deploy finished#1', 'Build 42 is green#2', 'New comment on PR 7#3']);
  });

  test('two users chat through the publish action and see each other in presence', async () => {
    const alice = page.locator('.chat[data-user="alice"]');
    const bob = page.locator('.chat[data-user="bob"]');
    await alice.locator('.state[data-state="open"]').waitFor();
    await bob.locator('.state[data-state="open"]').waitFor();
    await alice.locator('input[name="text"]').fill('hi bob');
    await alice.locator('button', { hasText: 'Send' }).click();
    await bob.locator('li.chat-message', { hasText: 'alice: hi bob' }).waitFor({ timeout: 5000 });
    await bob.locator('input[name="text"]').fill('hello alice');
    await bob.locator('input[name="text"]').press('Enter');
    await alice.locator('li.chat-message', { hasText: 'bob: hello alice' }).waitFor({ timeout: 5000 });
    // Three connections are on the page; two are in the room.
    await alice.locator('.members', { hasText: '2 connections' }).waitFor({ timeout: 5000 });
    // Bob leaves: Alice hears it and her count drops.
    await bob.locator('button.leave').click();
    await alice.locator('li.system', { hasText: 'someone left' }).waitFor({ timeout: 5000 });
    await alice.locator('.members', { hasText: '1 connection' }).waitFor({ timeout: 5000 });
  });

  test('sockets cut: the page reconnects and resumes, every notification once and in order', async () => {
    link.cut(); // every socket of the page, as a network drop would
    // Published while the page is away: they must come from history on resume.
    for (let i = 4; i <= 8; i++) await publish(h, { title: `while away ${i}` });
    await page.waitForFunction(() => window.heraldDemo.feed.stats.reconnects >= 1 && window.heraldDemo.feed.state === 'open', null, { timeout: 10000 });
    for (let i = 9; i <= 10; i++) await publish(h, { title: `after ${i}` });
    await page.waitForFunction(() => document.querySelectorAll('#feed li.notification').length >= 10, null, { timeout: 5000 });
    await page.waitForTimeout(200); // a duplicate would show up here
    const offsets = await notifications().evaluateAll((els) => els.map((e) => Number(e.dataset.offset)));
    assert.deepEqual(offsets, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.match(await page.locator('#feed-stats').textContent(), /reconnects: 1/);
    // The "Drop connection" button does the same through the SDK.
    await page.locator('#feed-drop').click();
    await page.waitForFunction(() => window.heraldDemo.feed.stats.reconnects >= 2 && window.heraldDemo.feed.state === 'open');
    await publish(h, { title: 'after the button' });
    await notifications().nth(10).waitFor();
    assert.equal(await notifications().count(), 11);
    mkdirSync(ARTIFACTS, { recursive: true });
    const shot = join(ARTIFACTS, 'demo-page.png');
    writeFileSync(shot, await page.screenshot({ fullPage: true }));
    assert.ok(readFileSync(shot).length > 10000, `screenshot saved to ${shot}`);
    assert.deepEqual(consoleErrors.filter((e) => !/WebSocket|ERR_CONNECTION|net::/.test(e)), [], 'no page errors');
  });
});

describe('static files (http.static_dir)', () => {
  let h;
  before(async () => {
    h = await startHerald({ http: { static_dir: WEB } });
  });
  after(() => h.stop());

  test('index.html on /, files by type with ETag revalidation, symlinks inside the directory followed', async () => {
    const index = await fetch(`${h.httpUrl}/`);
    assert.equal(index.status, 200);
    assert.equal(index.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await index.text(), /<title>Herald demo<\/title>/);
    const sdk = await fetch(`${h.httpUrl}/herald.js`); // web/herald.js links to clients/js/herald.js
    assert.equal(sdk.status, 200);
    assert.equal(sdk.headers.get('content-type'), 'text/javascript; charset=utf-8');
    assert.equal(await sdk.text(), readFileSync(join(ROOT, 'clients/js/herald.js'), 'utf8'));
    const etag = sdk.headers.get('etag');
    const again = await fetch(`${h.httpUrl}/herald.js`, { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    const head = await fetch(`${h.httpUrl}/style.css`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-type'), 'text/css; charset=utf-8');
    // Health endpoints still win over files.
    assert.deepEqual(await (await fetch(`${h.httpUrl}/healthz`)).json(), { status: 'ok' });
  });

  test('nothing outside the directory, no hidden files, JSON 404s; WebSocket upgrades still work on /', async () => {
    for (const path of ['/../config/herald.json', '/%2e%2e/config/herald.json', '/..%2fconfig%2fherald.json', '/.hidden', '/nope.html', '//etc/passwd']) {
      const r = await rawHttp(h.clientPort, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 404, path);
      assert.equal(JSON.parse(r.body).error, 'not_found', path);
    }
    const post = await fetch(`${h.httpUrl}/`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 426, 'only GET and HEAD are served from files');
    const { connect } = await import('./lib/clients.mjs');
    const c = await connect(h.url);
    c.send('ping?');
    await c.close();
  });

  test('a static_dir that is not a directory is a configuration error naming the key', async () => {
    const { runHerald } = await import('./lib/herald.mjs');
    const r = runHerald(['--check-config', '--http.static_dir', '/nonexistent/web']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /http\.static_dir: "\/nonexistent\/web" is not a directory/);
  });
});
