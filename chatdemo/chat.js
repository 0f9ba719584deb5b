'use strict';
// msgbus chat: rooms are channels under /msgbus/chat/, messages are JSON
// ({"name", "text"}) POSTed with fetch, and one EventSource on the parent
// channel /msgbus/chat receives every room. It asks for the JSON envelope
// (?envelope=json), so each event says its channel (the room), its sender
// when the broker authenticated one, and when it was published.
// Whatever other people send is shown with textContent, never as markup.
(() => {
  const BASE = '/msgbus/chat';
  const MAX_MESSAGES = 500; // kept per room
  const ROOM = /^[a-z0-9][a-z0-9_-]{0,31}$/;
  const $ = (id) => document.getElementById(id);

  // Per tab, so two tabs can be two people.
  let me = sessionStorage.getItem('msgbus-chat-name') || '';
  const rooms = new Map(); // name → {messages: [], unread: 0}
  let current = null;

  function room(name) {
    let r = rooms.get(name);
    if (!r) {
      r = { messages: [], unread: 0 };
      rooms.set(name, r);
      drawRooms();
    }
    return r;
  }

  // --- rooms ---
  function drawRooms() {
    const ul = $('rooms');
    ul.replaceChildren();
    for (const [name, r] of [...rooms].sort((a, b) => a[0].localeCompare(b[0]))) {
      const a = document.createElement('a');
      a.href = '#' + name;
      a.textContent = '#' + name;
      a.setAttribute('aria-current', String(name === current));
      if (r.unread > 0) {
        const badge = document.createElement('span');
        badge.className = 'badge unread';
        badge.textContent = r.unread;
        a.appendChild(badge);
      }
      const li = document.createElement('li');
      li.appendChild(a);
      ul.appendChild(li);
    }
  }

  function enter(name) {
    name = name.toLowerCase();
    if (!ROOM.test(name)) name = 'lobby';
    current = name;
    room(name).unread = 0;
    if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
    $('title').textContent = '#' + name;
    drawRooms();
    // On a phone the rooms are a bar that scrolls: keep this one in view.
    document.querySelector('#rooms a[aria-current="true"]')?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    const ol = $('messages');
    ol.replaceChildren(...rooms.get(name).messages.map(item));
    ol.scrollTop = ol.scrollHeight;
    $('text').focus();
  }

  // --- messages ---
  function item(m) {
    const li = document.createElement('li');
    if (m.system) {
      li.className = 'system';
      li.textContent = m.text;
      return li;
    }
    if (m.name === me && !m.from) li.className = 'mine';
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = m.time.toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit' });
    const who = document.createElement('span');
    who.className = 'who';
    who.textContent = m.name;
    li.style.setProperty('--hue', hue(m.from || m.name));
    li.append(time, who);
    if (m.from) {
      // The broker's From: the user who logged in with -s, not forgeable.
      const v = document.createElement('span');
      v.className = 'verified';
      v.title = 'logged in as ' + m.from;
      v.textContent = '✔ ' + m.from;
      li.appendChild(v);
    }
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = m.text;
    li.appendChild(text);
    return li;
  }

  // hue gives each name its own colour.
  function hue(name) {
    let h = 0;
    for (const c of name) h = (h * 31 + c.codePointAt(0)) % 360;
    return String(h);
  }

  function add(name, m) {
    const r = room(name);
    r.messages.push(m);
    if (r.messages.length > MAX_MESSAGES) r.messages.shift();
    if (name !== current) {
      r.unread++;
      drawRooms();
      return;
    }
    const ol = $('messages');
    const atEnd = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
    ol.appendChild(item(m));
    while (ol.children.length > MAX_MESSAGES) ol.firstChild.remove();
    if (atEnd) ol.scrollTop = ol.scrollHeight;
  }

  // An event's data is the envelope: {id, channel, type, from, time, body,
  // encoding}. Only a chat message in a room is shown.
  function parse(data) {
    let e;
    try { e = JSON.parse(data); } catch { return null; }
    if (!e || e.encoding !== 'utf-8' || typeof e.channel !== 'string') return null;
    if (!e.channel.startsWith('chat/')) return null; // a post to the parent itself
    const name = e.channel.slice('chat/'.length);
    if (!ROOM.test(name)) return null;
    let body;
    try { body = JSON.parse(e.body); } catch { return null; }
    if (!body || typeof body.name !== 'string' || typeof body.text !== 'string') return null;
    const time = new Date(e.time);
    return {
      room: name,
      m: {
        name: body.name.slice(0, 40) || '?', text: body.text.slice(0, 2000),
        from: typeof e.from === 'string' ? e.from : '', time: isNaN(time) ? new Date() : time,
      },
    };
  }

  async function send(text) {
    const res = await fetch(BASE + '/' + encodeURIComponent(current), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ name: me, text }),
    });
    if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim());
  }

  // --- the connection ---
  function status(cls, text) {
    $('status').className = 'pill ' + cls;
    $('status').textContent = text;
  }

  let es = null;
  let wasLive = false;
  function connect() {
    // type= keeps anything but chat messages out of the stream.
    es = new EventSource(BASE + '?type=application/json&envelope=json');
    es.onopen = () => {
      status('live', 'connected');
      if (wasLive && current) add(current, { system: true, text: 'reconnected' });
      wasLive = true;
    };
    es.onmessage = (ev) => {
      const p = parse(ev.data);
      if (p) add(p.room, p.m);
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // Refused (a 503 while the server restarts, say): EventSource gives
        // up for good, so start a new one.
        status('closed', 'disconnected, retrying…');
        setTimeout(connect, 3000);
      } else {
        status('connecting', 'reconnecting…');
      }
    };
  }

  // --- forms ---
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('name').value.trim();
    if (!name) return;
    me = name.slice(0, 40);
    sessionStorage.setItem('msgbus-chat-name', me);
    start();
  });

  // On a narrow screen the join form folds away behind +.
  function joining(open) {
    document.querySelector('nav').classList.toggle('joining', open);
    $('new-room').setAttribute('aria-expanded', String(open));
    $('new-room').textContent = open ? '×' : '+';
  }

  $('new-room').addEventListener('click', () => {
    const open = !document.querySelector('nav').classList.contains('joining');
    joining(open);
    if (open) $('room').focus();
  });

  $('join').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $('room').value.trim().toLowerCase();
    if (!ROOM.test(name)) return;
    $('room').value = '';
    joining(false);
    room(name);
    enter(name);
  });

  $('compose').addEventListener('submit', async (e) => {
    e.preventDefault();
    const input = $('text');
    const text = input.value;
    if (!text.trim()) return;
    input.value = '';
    try {
      await send(text);
    } catch (err) {
      add(current, { system: true, text: 'not sent: ' + err.message });
      input.value = text;
    }
  });

  function hashRoom() {
    try { return decodeURIComponent(location.hash.slice(1)); } catch { return ''; }
  }

  window.addEventListener('hashchange', () => enter(hashRoom()));

  function start() {
    $('login').hidden = true;
    $('chat').hidden = false;
    $('me').textContent = 'as ' + me;
    room('lobby');
    room('random');
    enter(hashRoom() || 'lobby');
    if (!es) connect();
  }

  if (me) start();
})();
