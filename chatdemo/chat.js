'use strict';
// msgbus chat: rooms are channels under /msgbus/chat/, messages are JSON
// ({"name", "text"}) POSTed with fetch, and one EventSource on the parent
// channel /msgbus/chat receives every room. It asks for the JSON envelope
// (?envelope=json), so each event says its id, its channel (the room), its
// sender when the broker authenticated one, and when it was published.
// Whatever other people send is shown with textContent, never as markup.
//
// History (server/PROTOCOL.md §6): entering a room shows its newest 50
// lines from /history/chat/<room>, and scrolling to the top loads the 50
// before the oldest shown (?before=<id>), as leeif/mercury's "messages
// before id". The stream resumes after any break with ?since=<the last id
// it delivered>, so a server restart loses nothing; lines are kept once per
// id, so a replay never shows one twice.
//
// Why a room's history and its live lines merge without comparing ids
// (they are opaque): the stream has delivered every line after a point
// fixed before it first opened, with no gap, and the newest page is
// fetched while a stream is open, so that page's lines the room does not
// have yet are all older than the room's first live line, and go before
// them.
(() => {
  const BASE = '/msgbus/chat';
  const HISTORY = '/history/chat';
  const FILTER = 'type=application/json'; // anything else is not a chat line
  const PAGE = 50; // lines shown on entering a room, and loaded per scroll up
  const MAX_LIVE = 500; // kept per room as they arrive; older ones load again on scrolling up
  const RESUME_ALL = 1000; // ?last= for "everything kept" (the server caps it at --resume-max)
  const ROOM = /^[a-z0-9][a-z0-9_-]{0,31}$/;
  const $ = (id) => document.getElementById(id);

  // Per tab, so two tabs can be two people.
  let me = sessionStorage.getItem('msgbus-chat-name') || '';
  // name → {messages, ids, unread, history, loading}; history is
  // 'unloaded' (the newest page not fetched yet), 'more' (older lines are
  // kept), 'start' (none older) or 'off' (this server keeps no history).
  const rooms = new Map();
  let current = null;

  function room(name) {
    let r = rooms.get(name);
    if (!r) {
      r = { messages: [], ids: new Set(), unread: 0, history: 'unloaded', loading: false };
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
    const r = room(name);
    r.unread = 0;
    if (location.hash !== '#' + name) history.replaceState(null, '', '#' + name);
    $('title').textContent = '#' + name;
    drawRooms();
    // On a phone the rooms are a bar that scrolls: keep this one in view.
    document.querySelector('#rooms a[aria-current="true"]')?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    const ol = $('messages');
    ol.replaceChildren(...r.messages.map(item));
    ol.scrollTop = ol.scrollHeight;
    drawOlder();
    $('text').focus();
    if (live) loadNewest(name);
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
    const time = document.createElement('time');
    time.className = 'time';
    time.dateTime = m.time.toISOString();
    time.textContent = when(m.time);
    time.title = m.time.toLocaleString();
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

  // when is a line's time: the hour for today's, with the day for older
  // ones (history can reach back past midnight).
  function when(d) {
    const hm = d.toLocaleTimeString([], { hour12: false, hour: '2-digit', minute: '2-digit' });
    if (d.toDateString() === new Date().toDateString()) return hm;
    return d.toLocaleDateString([], { month: 'short', day: 'numeric' }) + ' ' + hm;
  }

  // hue gives each name its own colour.
  function hue(name) {
    let h = 0;
    for (const c of name) h = (h * 31 + c.codePointAt(0)) % 360;
    return String(h);
  }

  // add appends a line that has just arrived (or a system note) to its
  // room, once per id.
  function add(name, m) {
    const r = room(name);
    if (m.id) {
      if (r.ids.has(m.id)) return;
      r.ids.add(m.id);
    }
    r.messages.push(m);
    if (name !== current) {
      r.unread++;
      trim(r);
      drawRooms();
      return;
    }
    const ol = $('messages');
    const atEnd = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
    ol.appendChild(item(m));
    // A reader scrolled up keeps what they read; trim when at the end.
    if (atEnd) {
      const dropped = trim(r);
      for (let i = 0; i < dropped; i++) ol.firstElementChild.remove();
      if (dropped) drawOlder();
      ol.scrollTop = ol.scrollHeight;
    }
  }

  // trim drops a room's oldest lines past MAX_LIVE, which scrolling up
  // loads again, and returns how many it dropped.
  function trim(r) {
    const n = r.messages.length - MAX_LIVE;
    if (n <= 0) return 0;
    for (const m of r.messages.splice(0, n)) if (m.id) r.ids.delete(m.id);
    if (r.history === 'start') r.history = 'more';
    return n;
  }

  // prepend puts lines from history (oldest first) before a room's lines,
  // skipping those it has, and keeps what the reader sees in place.
  function prepend(name, list) {
    const r = room(name);
    const fresh = list.filter((m) => !r.ids.has(m.id));
    for (const m of fresh) r.ids.add(m.id);
    r.messages.unshift(...fresh);
    if (name !== current || fresh.length === 0) return;
    const ol = $('messages');
    const fromEnd = ol.scrollHeight - ol.scrollTop;
    ol.prepend(...fresh.map(item));
    ol.scrollTop = ol.scrollHeight - fromEnd;
  }

  // --- history ---
  // drawOlder says at the top of the list what is above it.
  function drawOlder() {
    const r = rooms.get(current);
    const ol = $('messages');
    let s = '';
    if (r.loading) s = 'Loading earlier messages…';
    else if (r.history === 'more') s = 'Scroll up for earlier messages';
    else if (r.history === 'start' && r.messages.some((m) => m.id)) s = 'No earlier messages';
    ol.dataset.older = s;
    ol.setAttribute('aria-busy', String(r.loading));
    $('note').textContent = r.history === 'off'
      ? 'This server keeps no history: you see what is said while this page is open.'
      : 'Each room shows its last ' + PAGE + ' lines when you enter it; scroll up for earlier ones.';
  }

  // page fetches one page of a room's history: the newest, or the lines
  // before an id. It returns {list, more}, or null when the server keeps
  // no history (an older msgbus, or --history-size 0).
  async function page(name, before) {
    const q = new URLSearchParams(FILTER);
    q.set('limit', String(PAGE));
    if (before) q.set('before', before);
    const res = await fetch(HISTORY + '/' + encodeURIComponent(name) + '?' + q, { cache: 'no-store' });
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim());
    const p = await res.json();
    const list = [];
    for (const e of Array.isArray(p.messages) ? p.messages : []) {
      const c = fromEnvelope(e);
      if (c && c.room === name && c.m.id) list.push(c.m);
    }
    return { list, more: Boolean(p.more) };
  }

  // load fetches a page for room name and puts it before its lines.
  async function load(name, before) {
    const r = room(name);
    if (r.loading) return;
    r.loading = true;
    if (name === current) drawOlder();
    let p = null;
    try {
      p = await page(name, before);
      if (p === null) r.history = 'off';
      else {
        prepend(name, p.list);
        r.history = p.more ? 'more' : 'start';
      }
    } catch (err) {
      console.warn('msgbus chat: history of #' + name, err); // tried again on the next scroll or reconnect
    }
    r.loading = false;
    if (name !== current) return;
    drawOlder();
    // A short page does not fill the list, so there is nothing to scroll:
    // load on until it does or nothing older is kept.
    const ol = $('messages');
    if (p && r.history === 'more' && ol.scrollHeight <= ol.clientHeight) loadOlder(name);
  }

  // loadNewest shows a room's newest lines, once, while the stream is open.
  function loadNewest(name) {
    if (room(name).history === 'unloaded') load(name, '');
  }

  // loadOlder loads the lines before the oldest a room shows.
  function loadOlder(name) {
    const r = room(name);
    if (r.history !== 'more' || r.loading) return;
    const oldest = r.messages.find((m) => m.id);
    if (oldest) load(name, oldest.id);
    else {
      r.history = 'unloaded';
      if (live) loadNewest(name);
    }
  }

  $('messages').addEventListener('scroll', () => {
    if (current && $('messages').scrollTop < 120) loadOlder(current);
  }, { passive: true });

  // An envelope ({id, channel, type, from, time, body, encoding}, from the
  // stream or /history) becomes {room, m}; only a chat line in a room does.
  function fromEnvelope(e) {
    if (!e || e.encoding !== 'utf-8' || typeof e.channel !== 'string' || typeof e.body !== 'string') return null;
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
        id: typeof e.id === 'string' ? e.id : String(e.id ?? ''),
        name: body.name.slice(0, 40) || '?', text: body.text.slice(0, 2000),
        from: typeof e.from === 'string' ? e.from : '', time: isNaN(time) ? new Date() : time,
      },
    };
  }

  // A line keeps its idempotency key until it is sent, so sending it again
  // after a failure (the answer lost in a restart, say) cannot post it twice.
  let draft = { text: '', key: '' };
  function keyFor(text) {
    if (draft.text !== text || !draft.key) {
      const b = crypto.getRandomValues(new Uint8Array(16));
      draft = { text, key: Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('') };
    }
    return draft.key;
  }

  async function send(text) {
    const res = await fetch(BASE + '/' + encodeURIComponent(current), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': keyFor(text) },
      body: JSON.stringify({ name: me, text }),
    });
    if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim());
    draft = { text: '', key: '' };
  }

  // --- the connection ---
  function status(cls, text) {
    $('status').className = 'pill ' + cls;
    $('status').textContent = text;
  }

  // Every stream starts where the page's lines end, with nothing between:
  // ?since=<the last id the page has>. Before the first event, that is the
  // newest line history keeps, asked before the first stream opens; when
  // history keeps none, the stream asks for ?last=<all>, which is then only
  // what was said after that question. The page reconnects by itself
  // rather than leave it to EventSource, which would reuse the first URL and
  // send no Last-Event-ID before a first event.
  let es = null;
  let live = false; // a stream is open
  let wasLive = false;
  let cursor = ''; // the id of the newest line the page has
  let noneKept = false; // no id, and history kept none of ours when asked: all it keeps now is new
  let historyOn = true; // false on a server without /history: streams start live
  let retry = 1000;

  function streamURL() {
    const q = new URLSearchParams(FILTER);
    q.set('envelope', 'json');
    if (cursor) q.set('since', cursor);
    else if (noneKept) q.set('last', String(RESUME_ALL));
    return BASE + '?' + q;
  }

  // where sets cursor to the newest line history keeps, or noneKept when
  // it keeps none; it returns false when the server has no history.
  async function where() {
    const res = await fetch(HISTORY + '?' + FILTER + '&limit=1', { cache: 'no-store' });
    if (res.status === 404) return false;
    if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim());
    const p = await res.json();
    const newest = Array.isArray(p.messages) ? p.messages[p.messages.length - 1] : null;
    if (newest && newest.id) cursor = String(newest.id);
    else noneKept = true;
    return true;
  }

  function again() {
    live = false;
    status('connecting', wasLive ? 'reconnecting…' : 'connecting…');
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  }

  async function connect() {
    if (!cursor && !noneKept && historyOn) {
      try {
        historyOn = await where();
      } catch {
        again(); // the server is away: ask again with the next try
        return;
      }
    }
    const s = new EventSource(streamURL());
    es = s;
    s.onopen = () => {
      live = true;
      retry = 1000;
      status('live', 'connected');
      if (wasLive && current) add(current, { system: true, text: 'reconnected' });
      wasLive = true;
      if (current) loadNewest(current);
    };
    s.onmessage = (ev) => {
      if (ev.lastEventId) {
        cursor = ev.lastEventId;
        noneKept = false;
      }
      let e;
      try { e = JSON.parse(ev.data); } catch { return; }
      const c = fromEnvelope(e);
      if (c) add(c.room, c.m);
    };
    s.onerror = () => {
      s.close();
      if (es !== s) return;
      es = null;
      again();
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

  let started = false;
  function start() {
    $('login').hidden = true;
    $('chat').hidden = false;
    $('me').textContent = 'as ' + me;
    room('lobby');
    room('random');
    enter(hashRoom() || 'lobby');
    if (!started) {
      started = true;
      connect();
    }
  }

  if (me) start();
})();
