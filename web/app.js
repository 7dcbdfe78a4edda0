// The demo page: a notification feed and a two-user chat, each a Herald SDK client on the page's
// own origin. Shows subscribe, publications from the API, presence, and resume after a drop.
import { connect } from './herald.js';

const url = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/`;
const params = new URLSearchParams(location.search);
const room = params.get('room') ?? 'chat.lobby';

function badge(el, client) {
  const show = (state) => {
    el.dataset.state = state;
    el.textContent = state;
  };
  show(client.state);
  client.on('state', (e) => show(e.state));
}

function item(list, html, cls) {
  const li = document.createElement('li');
  if (cls) li.className = cls;
  li.innerHTML = html;
  list.append(li);
  list.scrollTop = list.scrollHeight;
  return li;
}

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ---- notification feed ----
const feed = connect(url);
window.heraldDemo = { feed, chats: {} }; // for the browser test and for poking around
badge(document.getElementById('feed-state'), feed);
const feedList = document.getElementById('feed');
const stats = document.getElementById('feed-stats');
const showStats = () => {
  const p = feed.position('notifications');
  stats.textContent = `reconnects: ${feed.stats.reconnects}` + (p?.offset !== undefined ? ` · offset ${p.offset}` : '');
};
feed.on('state', showStats);
feed.on('resync', () => item(feedList, 'history was lost: some notifications may be missing', 'system'));
feed.subscribe('notifications', (data, meta) => {
  const title = typeof data === 'object' && data !== null ? data.title ?? JSON.stringify(data) : data;
  const li = item(feedList, `${esc(title)}<span class="meta">#${meta.offset ?? ''}</span>`, 'notification');
  li.dataset.offset = meta.offset ?? '';
  showStats();
}).catch((e) => item(feedList, `subscribe failed: ${esc(e.message)}`, 'system'));
document.getElementById('feed-drop').addEventListener('click', () => feed.reconnect());

// ---- chat: two users, two connections ----
for (const panel of document.querySelectorAll('.chat')) {
  const user = panel.dataset.user;
  panel.append(document.getElementById('chat-template').content.cloneNode(true));
  panel.querySelector('.who').textContent = user;
  const client = connect(url);
  window.heraldDemo.chats[user] = client;
  badge(panel.querySelector('.state'), client);
  const list = panel.querySelector('.messages');
  const members = panel.querySelector('.members');
  const refreshPresence = async () => {
    try {
      const p = await client.presence(room);
      const n = p.members.length;
      members.textContent = `${n} connection${n === 1 ? '' : 's'}${p.truncated ? '+' : ''}`;
    } catch {
      members.textContent = '?';
    }
  };
  const join = () =>
    client
      .subscribe(room, (data) => item(list, `<b>${esc(data.from)}</b>: ${esc(data.text)}`, 'chat-message'), {
        onPresence: (e) => {
          item(list, `someone ${e.type === 'join' ? 'joined' : 'left'}`, 'system');
          refreshPresence();
        },
      })
      .then(refreshPresence);
  join();
  client.on('open', ({ reconnect }) => reconnect && refreshPresence());
  panel.querySelector('form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = ev.target.elements.text;
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    try {
      await client.publish(room, { from: user, text });
    } catch (e) {
      item(list, `not sent: ${esc(e.message)}`, 'system');
    }
  });
  panel.querySelector('.drop').addEventListener('click', () => client.reconnect());
  const leave = panel.querySelector('.leave');
  leave.addEventListener('click', async () => {
    if (leave.textContent === 'Leave') {
      await client.unsubscribe(room);
      leave.textContent = 'Join';
      refreshPresence();
    } else {
      await join();
      leave.textContent = 'Leave';
    }
  });
}
