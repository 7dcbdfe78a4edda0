// Herald's built-in console: a view over this node's admin API (docs/api.md). No framework, no
// build step. Everything shown comes from /v1/... with the API key the operator entered, kept in
// this tab's sessionStorage; every value from the API is put on the page as text, never as HTML
// (user agents, user ids and messages come from clients).
'use strict';

const KEY_STORE = 'herald.console.key';
const SAMPLE_MS = 2000;
const KEEP_SAMPLES = 150; // 5 minutes
const PAGE = 50;

const $ = (id) => document.getElementById(id);

// ---- the API ----------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body, { raw = false } = {}) {
  const headers = {};
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  let payload;
  if (body !== undefined) {
    if (raw) {
      payload = body;
      headers['Content-Type'] = 'text/plain; charset=utf-8';
    } else {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
  }
  const res = await fetch(path, { method, headers, body: payload, cache: 'no-store' });
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { message: text };
    }
  }
  if (res.status === 401 || res.status === 403) {
    signedOut(res.status === 403 ? 'The API key was not accepted by this node.' : 'This node needs an API key.');
    throw new ApiError(res.status, data);
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const seg = (s) => encodeURIComponent(s);

// ---- small helpers --------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function replaceRows(tbody, rows, columns, emptyText) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    tbody.append(el('tr', { class: 'empty' }, el('td', { colspan: String(columns) }, emptyText)));
    return;
  }
  tbody.append(...rows);
}

function fact(dl, name, value) {
  dl.append(el('div', {}, el('dt', {}, name), el('dd', {}, value)));
}

function duration(seconds) {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

// Today's times as a time of day; older ones with their date.
function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}
const number = (n) => (typeof n === 'number' ? n.toLocaleString() : '—');
const rate = (n) => (n >= 100 ? Math.round(n).toLocaleString() : n.toFixed(1));

function status(node, text, ok) {
  node.textContent = text;
  node.className = `status ${ok === undefined ? '' : ok ? 'ok' : 'bad'}`;
}

function showError(e) {
  if (e instanceof ApiError && (e.status === 401 || e.status === 403)) return;
  $('app-error').textContent = e instanceof ApiError ? `${e.status}: ${e.message}` : `Cannot reach the admin API: ${e.message}`;
}

// ---- sign in ---------------------------------------------------------------------------------

let signedIn = false;

function signedOut(message) {
  signedIn = false;
  $('app').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = sessionStorage.getItem(KEY_STORE) ? message : '';
  $('api-key').focus();
}

async function start() {
  try {
    const node = await api('GET', '/v1/node');
    signedIn = true;
    $('login').hidden = true;
    $('app').hidden = false;
    $('logout').hidden = !sessionStorage.getItem(KEY_STORE);
    $('login-error').textContent = '';
    onNode(node);
    showView(currentView);
  } catch (e) {
    if (!(e instanceof ApiError && (e.status === 401 || e.status === 403))) {
      signedOut('');
      $('login-error').textContent = `Cannot reach the admin API: ${e.message}`;
    }
  }
}

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const key = $('api-key').value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORE, key);
  $('api-key').value = '';
  start();
});

$('logout').addEventListener('click', () => {
  sessionStorage.removeItem(KEY_STORE);
  signedOut('');
});

// ---- views -----------------------------------------------------------------------------------

const views = ['overview', 'cluster', 'connections', 'channels'];
let currentView = 'overview';

function showView(name) {
  currentView = name;
  for (const v of views) {
    $(`tab-${v}`).setAttribute('aria-selected', String(v === name));
    $(`tab-${v}`).tabIndex = v === name ? 0 : -1;
    $(`view-${v}`).hidden = v !== name;
  }
  $('app-error').textContent = '';
  if (name === 'cluster') loadNodes();
  if (name === 'connections') loadConnections();
  if (name === 'channels') loadChannels();
  if (name === 'overview') drawCharts();
}

for (const v of views) $(`tab-${v}`).addEventListener('click', () => showView(v));
document.querySelector('.tabs').addEventListener('keydown', (ev) => {
  if (ev.key !== 'ArrowRight' && ev.key !== 'ArrowLeft') return;
  const i = views.indexOf(currentView) + (ev.key === 'ArrowRight' ? 1 : -1);
  const next = views[(i + views.length) % views.length];
  showView(next);
  $(`tab-${next}`).focus();
});

// ---- overview: this node, sampled ------------------------------------------------------------

const samples = []; // {t, in, out, deliveries, connections}
const series = { in: [], out: [], deliveries: [], connections: [] }; // {t, v}

function onNode(node) {
  $('node-line').textContent = `${node.nodeId} · ${node.version} · ${node.ready ? 'ready' : 'not ready'}`;
  $('f-node').textContent = node.nodeId;
  $('f-version').textContent = node.version;
  $('f-uptime').textContent = duration(node.uptimeSeconds);
  const ready = $('f-ready');
  ready.replaceChildren(
    el('span', { class: `badge ${node.ready ? 'ok' : 'bad'}` }, node.ready ? 'ready' : 'not ready'),
    node.ready ? '' : el('div', { class: 'muted small' }, node.reasons.join('; ')),
  );
  const b = node.backplane;
  $('f-backplane').replaceChildren(
    el('span', { class: `badge ${b.up ? 'ok' : 'bad'}` }, b.kind === 'redis' ? (b.up ? 'Redis up' : 'Redis down') : 'single node'),
    el('div', { class: 'muted small' }, b.kind === 'redis' ? `outages ${duration(b.outageSeconds)} in all${b.up ? '' : ` · ${b.reason}`}` : 'no Redis backplane'),
  );
  $('f-connections').textContent = number(node.connections);
  $('f-dropped').textContent = number(node.counters.sendQueueDropped);
  $('f-throttled').textContent = number(node.counters.throttled);

  const c = node.counters;
  const t = node.at;
  const prev = samples.at(-1);
  samples.push({ t, in: c.messagesIn, out: c.messagesOut, deliveries: c.deliveries });
  if (samples.length > KEEP_SAMPLES + 1) samples.shift();
  if (prev && t > prev.t) {
    const dt = (t - prev.t) / 1000;
    for (const k of ['in', 'out', 'deliveries']) {
      series[k].push({ t, v: Math.max(0, (samples.at(-1)[k] - prev[k]) / dt) });
      if (series[k].length > KEEP_SAMPLES) series[k].shift();
    }
  }
  series.connections.push({ t, v: node.connections });
  if (series.connections.length > KEEP_SAMPLES) series.connections.shift();
  $('rate-in').textContent = rate(series.in.at(-1)?.v ?? 0);
  $('rate-out').textContent = rate(series.out.at(-1)?.v ?? 0);
  $('rate-deliveries').textContent = rate(series.deliveries.at(-1)?.v ?? 0);
  $('now-connections').textContent = number(node.connections);
  if (currentView === 'overview') drawCharts();
}

function drawChart(canvas, lines) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, width, height);
  const left = 44;
  const bottom = height - 18;
  const now = samples.at(-1)?.t ?? Date.now();
  const span = KEEP_SAMPLES * SAMPLE_MS;
  let max = 1;
  for (const l of lines) for (const p of l.points) max = Math.max(max, p.v);
  max = niceCeiling(max);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#57606a';
  g.strokeStyle = '#d0d7de';
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = 6 + ((bottom - 6) * i) / 4;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(width - 4, y);
    g.stroke();
    const value = max * (1 - i / 4);
    const label = value >= 1000 ? `${Math.round(value / 100) / 10}k` : value >= 10 ? String(Math.round(value)) : String(Math.round(value * 100) / 100);
    g.fillText(label, 2, y + 4);
  }
  g.fillText('5 min ago', left, height - 4);
  g.fillText('now', width - 26, height - 4);
  for (const l of lines) {
    if (l.points.length === 0) continue;
    g.strokeStyle = l.color;
    g.lineWidth = 2;
    g.beginPath();
    l.points.forEach((p, i) => {
      const x = left + ((width - 4 - left) * (span - (now - p.t))) / span;
      const y = bottom - ((bottom - 6) * p.v) / max;
      if (i === 0) g.moveTo(x, y);
      else g.lineTo(x, y);
    });
    g.stroke();
  }
  canvas.dataset.points = String(lines[0].points.length);
  canvas.dataset.last = String(lines[0].points.at(-1)?.v ?? 0);
}

function niceCeiling(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function drawCharts() {
  drawChart($('chart-messages'), [
    { points: series.in, color: '#0b5fc1' },
    { points: series.out, color: '#b35900' },
  ]);
  drawChart($('chart-deliveries'), [{ points: series.deliveries, color: '#b35900' }]);
  drawChart($('chart-connections'), [{ points: series.connections, color: '#0b5fc1' }]);
}
window.addEventListener('resize', () => currentView === 'overview' && drawCharts());

async function poll() {
  if (signedIn) {
    try {
      onNode(await api('GET', '/v1/node'));
      $('app-error').textContent = '';
    } catch (e) {
      showError(e);
    }
  }
  setTimeout(poll, SAMPLE_MS);
}

// ---- cluster -----------------------------------------------------------------------------------

const lastByNode = new Map(); // nodeId -> {at, in, out, deliveries}

async function loadNodes() {
  try {
    const { nodes } = await api('GET', '/v1/nodes');
    const rows = nodes.map((n) => {
      const c = n.counters ?? {};
      const at = Date.parse(n.refreshedAt);
      const prev = lastByNode.get(n.nodeId);
      const rates = { in: '—', out: '—', deliveries: '—' };
      if (prev && at > prev.at) {
        const dt = (at - prev.at) / 1000;
        rates.in = rate(Math.max(0, (c.messagesIn - prev.in) / dt));
        rates.out = rate(Math.max(0, (c.messagesOut - prev.out) / dt));
        rates.deliveries = rate(Math.max(0, (c.deliveries - prev.deliveries) / dt));
      }
      if (!prev || at > prev.at) lastByNode.set(n.nodeId, { at, in: c.messagesIn, out: c.messagesOut, deliveries: c.deliveries });
      return el('tr', { dataset: { node: n.nodeId } },
        el('td', {}, n.nodeId, n.self ? el('span', { class: 'muted' }, ' (this node)') : null),
        el('td', {}, n.version ?? '—'),
        el('td', { class: 'num' }, number(n.connections)),
        el('td', { class: 'num' }, rates.in),
        el('td', { class: 'num' }, rates.out),
        el('td', { class: 'num' }, rates.deliveries),
        el('td', {}, when(n.startedAt)),
        el('td', {}, when(n.refreshedAt)));
    });
    replaceRows($('nodes'), rows, 8, 'No nodes');
  } catch (e) {
    showError(e);
  }
  if (currentView === 'cluster' && signedIn) setTimeout(() => currentView === 'cluster' && loadNodes(), 5000);
}

// ---- connections ---------------------------------------------------------------------------------

const connState = { offset: 0, count: 0, user: '' };
const ID = /^[A-Za-z0-9_-]{20}$/;

async function loadConnections() {
  const q = new URLSearchParams({ offset: String(connState.offset), limit: String(PAGE) });
  if (connState.user) q.set('user', connState.user);
  try {
    const data = await api('GET', `/v1/connections?${q}`);
    connState.count = data.count;
    renderConnections(data.connections);
    $('conn-caption').textContent = connState.user ? `Connections of user “${connState.user}” on this node` : 'Connections on this node, newest first';
  } catch (e) {
    showError(e);
  }
}

function renderConnections(list, { paged = true } = {}) {
  const rows = list.map((c) => el('tr', { dataset: { connection: c.connectionId } },
    el('td', {}, el('code', {}, c.connectionId)),
    el('td', {}, c.userId ?? '—'),
    el('td', {}, c.node),
    el('td', {}, c.sourceIp),
    el('td', { title: c.userAgent }, c.userAgent || '—'),
    el('td', {}, when(c.connectedAt)),
    el('td', {}, when(c.lastActiveAt)),
    el('td', { class: 'actions' },
      el('button', { type: 'button', class: 'quiet', onclick: () => showConnection(c.connectionId) }, 'Details'),
      ' ',
      el('button', { type: 'button', class: 'danger', onclick: () => kick(c.connectionId) }, 'Kick'))));
  replaceRows($('connections'), rows, 8, 'No connections');
  const from = list.length ? connState.offset + 1 : 0;
  const to = connState.offset + list.length;
  $('conn-range').textContent = paged ? `${number(from)}–${number(to)} of ${number(connState.count)}` : `${list.length} found`;
  $('conn-prev').disabled = !paged || connState.offset === 0;
  $('conn-next').disabled = !paged || to >= connState.count;
}

// Previous / next buttons of a paged table: `state.offset` moves by a page, then `load()`.
function pager(prefix, state, load) {
  $(`${prefix}-prev`).addEventListener('click', () => {
    state.offset = Math.max(0, state.offset - PAGE);
    load();
  });
  $(`${prefix}-next`).addEventListener('click', () => {
    state.offset += PAGE;
    load();
  });
}

pager('conn', connState, loadConnections);

$('conn-search').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const q = $('conn-q').value.trim();
  connState.offset = 0;
  if (ID.test(q)) {
    // A connection id: looked up on every node (the Redis directory).
    try {
      const c = await api('GET', `/v1/connections/${seg(q)}`);
      $('conn-caption').textContent = `Connection ${q}`;
      renderConnections([c], { paged: false });
      showConnection(q, c);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        $('conn-caption').textContent = `No connection ${q} on any node`;
        renderConnections([], { paged: false });
      } else {
        showError(e);
      }
    }
    return;
  }
  connState.user = q;
  loadConnections();
});

$('conn-clear').addEventListener('click', () => {
  $('conn-q').value = '';
  connState.user = '';
  connState.offset = 0;
  loadConnections();
});

let shownConnection = null;

async function showConnection(id, known) {
  shownConnection = id;
  const panel = $('conn-detail');
  panel.hidden = false;
  $('conn-detail-title').textContent = `Connection ${id}`;
  status($('conn-status'), '');
  let c = known;
  try {
    if (!c || !c.channels) c = await api('GET', `/v1/connections/${seg(id)}`);
  } catch (e) {
    status($('conn-status'), e.status === 404 ? 'This connection is gone.' : e.message, false);
    return;
  }
  const facts = $('conn-facts');
  facts.replaceChildren();
  fact(facts, 'User', c.userId ?? '—');
  fact(facts, 'Node', c.node);
  fact(facts, 'Source IP', c.sourceIp);
  fact(facts, 'User agent', c.userAgent || '—');
  fact(facts, 'Subprotocol', c.subprotocol || '—');
  fact(facts, 'Connected', when(c.connectedAt));
  fact(facts, 'Last active', when(c.lastActiveAt));
  fact(facts, 'Subscriptions', c.channels ? (c.channels.length ? c.channels.join(', ') : 'none') : 'on another node');
}

async function kick(id) {
  try {
    await api('DELETE', `/v1/connections/${seg(id)}`);
    status($('conn-status'), `Closed ${id}.`, true);
    if (shownConnection === id) $('conn-detail').hidden = true;
  } catch (e) {
    showError(e);
  }
  setTimeout(loadConnections, 300);
}

$('conn-send').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  if (!shownConnection) return;
  try {
    // As the AWS management API sends it: the text as it is, one frame.
    await api('POST', `/@connections/${seg(shownConnection)}`, $('conn-message').value, { raw: true });
    status($('conn-status'), 'Sent.', true);
  } catch (e) {
    status($('conn-status'), e.status === 410 ? 'This connection is gone.' : e.message, false);
  }
});

// ---- channels -------------------------------------------------------------------------------------

const chanState = { offset: 0, count: 0, q: '' };

async function loadChannels() {
  const q = new URLSearchParams({ offset: String(chanState.offset), limit: String(PAGE) });
  if (chanState.q) q.set('q', chanState.q);
  try {
    const data = await api('GET', `/v1/channels?${q}`);
    chanState.count = data.count;
    const rows = data.channels.map((c) => el('tr', { dataset: { channel: c.channel } },
      el('td', {}, el('button', { type: 'button', class: 'link', onclick: () => showChannel(c.channel) }, c.channel)),
      el('td', { class: 'num' }, number(c.subscribers)),
      el('td', {}, [c.history ? 'history' : null, c.presence ? 'presence' : null].filter(Boolean).join(', ') || '—')));
    replaceRows($('channels'), rows, 3, 'No channel has subscribers on this node');
    const to = chanState.offset + data.channels.length;
    $('chan-range').textContent = `${number(data.channels.length ? chanState.offset + 1 : 0)}–${number(to)} of ${number(data.count)}`;
    $('chan-prev').disabled = chanState.offset === 0;
    $('chan-next').disabled = to >= data.count;
  } catch (e) {
    showError(e);
  }
}

pager('chan', chanState, loadChannels);
$('chan-search').addEventListener('submit', (ev) => {
  ev.preventDefault();
  chanState.q = $('chan-q').value.trim();
  chanState.offset = 0;
  loadChannels();
});

async function showChannel(name) {
  const panel = $('chan-detail');
  panel.hidden = false;
  $('chan-detail-title').textContent = name;
  $('pub-kind').value = 'channel';
  $('pub-target').value = name;
  try {
    const c = await api('GET', `/v1/channels/${seg(name)}`);
    const facts = $('chan-facts');
    facts.replaceChildren();
    fact(facts, 'Subscribers here', number(c.subscribers));
    const h = c.history;
    if (!h) fact(facts, 'History', 'not kept');
    else if (h.error) fact(facts, 'History', `unavailable: ${h.error}`);
    else {
      fact(facts, 'Epoch', h.epoch || '(none yet)');
      fact(facts, 'Newest offset', number(h.offset));
      fact(facts, 'Kept', `${number(h.size)} of ${number(h.capacity)}`);
    }
    const presence = $('chan-presence');
    presence.replaceChildren();
    if (c.presence) {
      const p = await api('GET', `/v1/channels/${seg(name)}/presence`);
      for (const m of p.members) presence.append(el('li', {}, `${m.userId ?? 'anonymous'} · `, el('code', {}, m.connectionId), ` · ${m.node}`));
      if (!p.members.length) presence.append(el('li', { class: 'muted' }, 'nobody'));
      if (p.truncated) presence.append(el('li', { class: 'muted' }, 'more not shown'));
    } else {
      presence.append(el('li', { class: 'muted' }, 'not tracked for this channel'));
    }
    const history = $('chan-history');
    history.replaceChildren();
    if (h && !h.error && h.offset > 0) {
      const since = Math.max(h.oldest ? h.oldest - 1 : 0, h.offset - 20);
      const page = await api('GET', `/v1/channels/${seg(name)}/history?since=${since}&limit=20`);
      for (const m of page.messages.reverse()) {
        history.append(el('li', {}, el('span', { class: 'muted' }, `#${m.offset} · ${when(m.time)} · `), el('code', {}, JSON.stringify(m.data))));
      }
    } else {
      history.append(el('li', { class: 'muted' }, h ? 'nothing stored' : 'history is not kept for this channel'));
    }
  } catch (e) {
    showError(e);
  }
}

$('publish').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const kind = $('pub-kind').value;
  const target = $('pub-target').value.trim();
  const text = $('pub-data').value;
  let data;
  try {
    data = JSON.parse(text);
  } catch {
    data = text;
  }
  const body = { data };
  if (kind === 'broadcast') body.broadcast = true;
  else if (!target) return status($('pub-status'), `Name the ${kind}.`, false);
  else body[kind] = target;
  try {
    const r = await api('POST', '/v1/publish', body);
    const where = kind === 'broadcast' ? 'everyone' : `${kind} ${target}`;
    status($('pub-status'), r.offset !== undefined
      ? `Stored at offset ${r.offset} and published to ${where}.`
      : `Published to ${where}: ${r.recipients} connection(s) on this node${r.forwarded ? ', forwarded to the other nodes' : ''}.`, true);
    if (kind === 'channel' && !$('chan-detail').hidden && $('chan-detail-title').textContent === target) showChannel(target);
  } catch (e) {
    status($('pub-status'), e.message, false);
  }
});
$('pub-kind').addEventListener('change', () => {
  $('pub-target').disabled = $('pub-kind').value === 'broadcast';
});

// ---- go -----------------------------------------------------------------------------------------

start().then(() => setTimeout(poll, SAMPLE_MS));
