'use strict';
// msgbus chat: rooms are channels under /msgbus/chat/, messages are JSON
// ({"name", "text"}) POSTed with fetch, and one EventSource on the parent
// channel /msgbus/chat receives every room. It asks for the JSON envelope
// (?envelope=json), so each event says its id, its channel (the room), its
// sender when the broker authenticated one, and when it was published.
// Whatever other people send is shown with textContent, never as markup.
//
// Login mode (chatdemo/login, which serves this page and fills in the
// msgbus-login meta): the page logs in through the backend, which checks
// the name and gets it a token from the bus (PROTOCOL.md §8) that may post
// to and read only the rooms joined. The page then talks to the bus at the
// URL the backend gives, presenting the token (?token= for EventSource,
// Authorization: Bearer for fetch), opens one stream per room (the token
// cannot read their parent), shows each line under the bus's From, never a
// name from the body, and gets a new token before the old one expires.
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
  const FILTER = 'type=application/json'; // anything else is not a chat line
  const PAGE = 50; // lines shown on entering a room, and loaded per scroll up
  const MAX_LIVE = 500; // kept per room as they arrive; older ones load again on scrolling up
  const RESUME_ALL = 1000; // ?last= for "everything kept" (the server caps it at --resume-max)
  const ROOM = /^[a-z0-9][a-z0-9_-]{0,31}$/;
  const $ = (id) => document.getElementById(id);
  // The backend's session URL in login mode; '' for the anonymous chat.
  const LOGIN = document.querySelector('meta[name="msgbus-login"]')?.content || '';
  const RENEW_AT = 0.8; // a token is renewed once this share of its life has passed

  // Anonymous: per tab, so two tabs can be two people. Login: the name
  // the backend gave the token.
  let me = LOGIN ? '' : sessionStorage.getItem('msgbus-chat-name') || '';
  // Login mode: the bus's URL ('' when the bus serves this page), the
  // token, when it was handed out, and the rooms it may read.
  let bus = '';
  let token = '';
  let minted = 0;
  let joined = [];
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
    if (LOGIN && !joined.includes(name)) name = joined[0];
    else if (!ROOM.test(name)) name = 'lobby';
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
    if (isLive(name)) loadNewest(name);
  }

  // --- messages ---
  function item(m) {
    const li = document.createElement('li');
    if (m.system) {
      li.className = 'system';
      li.textContent = m.text;
      return li;
    }
    if (LOGIN ? m.from === me : m.name === me && !m.from) li.className = 'mine';
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
      // The broker's From: the user who logged in (-s, or the token's
      // sub), not forgeable. In login mode it is the name shown.
      const v = document.createElement('span');
      v.className = 'verified';
      v.title = 'logged in as ' + m.from;
      v.textContent = LOGIN ? '✔' : '✔ ' + m.from;
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
    const res = await busFetch('/history/chat/' + encodeURIComponent(name) + '?' + q, { cache: 'no-store' });
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
      if (isLive(name)) loadNewest(name);
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
    if (!body || typeof body.text !== 'string') return null;
    const from = typeof e.from === 'string' ? e.from : '';
    // In login mode the name is the bus's From, whatever the body says.
    let who = from || 'anonymous';
    if (!LOGIN) {
      if (typeof body.name !== 'string') return null;
      who = body.name.slice(0, 40) || '?';
    }
    const time = new Date(e.time);
    return {
      room: name,
      m: {
        id: typeof e.id === 'string' ? e.id : String(e.id ?? ''),
        name: who, text: body.text.slice(0, 2000),
        from, time: isNaN(time) ? new Date() : time,
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
    const path = '/msgbus/chat/' + encodeURIComponent(current);
    const post = () => busFetch(path, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': keyFor(text) },
      // In login mode the bus says who sent it (From): the body need not.
      body: JSON.stringify(LOGIN ? { text } : { name: me, text }),
    });
    let res = await post();
    // An expired token (a laptop that slept past its renewal): renew, and
    // send once more with the new one.
    if (LOGIN && res.status === 401 && await renew(true)) res = await post();
    if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim());
    draft = { text: '', key: '' };
  }

  // --- the connection ---
  function status(cls, text) {
    $('status').className = 'pill ' + cls;
    $('status').textContent = text;
  }

  // busFetch fetches a path on the bus: here when the bus serves this page,
  // and in login mode at the bus's URL with the token.
  function busFetch(path, init = {}) {
    if (!LOGIN) return fetch(path, init);
    return fetch(bus + path, { ...init, headers: { ...init.headers, Authorization: 'Bearer ' + token } });
  }

  // A feed is one EventSource and where it is. The anonymous chat has one,
  // on chat, which receives every room; login mode one per room joined, on
  // chat/<room>, since its token may read those rooms and not their parent.
  //
  // Every stream starts where the page's lines end, with nothing between:
  // ?since=<the last id the page has>. Before the first event, that is the
  // newest line history keeps, asked before the first stream opens; when
  // history keeps none, the stream asks for ?last=<all>, which is then only
  // what was said after that question. The page reconnects by itself
  // rather than leave it to EventSource, which would reuse the first URL and
  // send no Last-Event-ID before a first event.
  const feeds = new Map(); // '' (every room) or a room → its feed
  let historyOn = true; // false on a server without /history: streams start live

  function feed(r) {
    let f = feeds.get(r);
    if (!f) {
      f = {
        room: r, es: null, timer: 0, retry: 1000,
        live: false, // a stream is open
        wasLive: false,
        quiet: false, // reopening with a new token: no "reconnected"
        cursor: '', // the id of the newest line the feed has
        noneKept: false, // no id, and history kept none of ours when asked: all it keeps now is new
      };
      feeds.set(r, f);
    }
    return f;
  }

  const channelOf = (f) => (f.room ? 'chat/' + f.room : 'chat');
  const covers = (f, name) => f.room === '' || f.room === name;

  // isLive reports whether a stream that receives room name is open.
  function isLive(name) {
    for (const f of feeds.values()) if (f.live && covers(f, name)) return true;
    return false;
  }

  function drawStatus() {
    const all = [...feeds.values()];
    if (all.length > 0 && all.every((f) => f.live)) status('live', 'connected');
    else status('connecting', all.some((f) => f.wasLive) ? 'reconnecting…' : 'connecting…');
  }

  function streamURL(f) {
    const q = new URLSearchParams(FILTER);
    q.set('envelope', 'json');
    if (f.cursor) q.set('since', f.cursor);
    else if (f.noneKept) q.set('last', String(RESUME_ALL));
    if (LOGIN) q.set('token', token);
    return bus + '/msgbus/' + channelOf(f) + '?' + q;
  }

  // where sets a feed's cursor to the newest line history keeps, or
  // noneKept when it keeps none; it returns false when the server has no
  // history.
  async function where(f) {
    const res = await busFetch('/history/' + channelOf(f) + '?' + FILTER + '&limit=1', { cache: 'no-store' });
    if (res.status === 404) return false;
    if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim());
    const p = await res.json();
    const newest = Array.isArray(p.messages) ? p.messages[p.messages.length - 1] : null;
    if (newest && newest.id) f.cursor = String(newest.id);
    else f.noneKept = true;
    return true;
  }

  function again(f) {
    f.live = false;
    drawStatus();
    clearTimeout(f.timer);
    f.timer = setTimeout(() => connect(f), f.retry);
    f.retry = Math.min(f.retry * 2, 10000);
  }

  async function connect(f) {
    if (feeds.get(f.room) !== f) return; // left meanwhile
    if (LOGIN) {
      // A stream that broke may have met its token's end: get a new one
      // (which also finds out whether this browser is still logged in).
      try {
        if (!(await renew(false))) return;
      } catch {
        again(f); // the backend is away: ask again with the next try
        return;
      }
      if (feeds.get(f.room) !== f) return;
    }
    if (!f.cursor && !f.noneKept && historyOn) {
      try {
        historyOn = await where(f);
      } catch {
        again(f); // the server is away: ask again with the next try
        return;
      }
    }
    open(f);
  }

  function open(f) {
    const s = new EventSource(streamURL(f));
    f.es = s;
    const inFeed = (ch) => ch === channelOf(f) || ch.startsWith(channelOf(f) + '/');
    s.onopen = () => {
      if (f.es !== s) return;
      const back = f.wasLive && !f.quiet;
      f.live = true;
      f.wasLive = true;
      f.quiet = false;
      f.retry = 1000;
      drawStatus();
      if (back && current && covers(f, current)) add(current, { system: true, text: 'reconnected' });
      if (current && covers(f, current)) loadNewest(current);
    };
    s.onmessage = (ev) => {
      if (f.es !== s) return;
      let e = null;
      try { e = JSON.parse(ev.data); } catch { /* not ours */ }
      // Only the feed's own channels move its cursor: a line to the
      // user's address (login mode) may come out of their order.
      if (ev.lastEventId && (!LOGIN || (e && typeof e.channel === 'string' && inFeed(e.channel)))) {
        f.cursor = ev.lastEventId;
        f.noneKept = false;
      }
      if (LOGIN && e && e.channel === '@' + me) {
        personal(e);
        return;
      }
      const c = fromEnvelope(e);
      if (c) add(c.room, c.m);
    };
    s.onerror = () => {
      s.close();
      if (f.es !== s) return;
      f.es = null;
      again(f);
    };
  }

  // stop ends a feed for good.
  function stop(f) {
    clearTimeout(f.timer);
    if (f.es) f.es.close();
    f.es = null;
    f.live = false;
  }

  // syncFeeds opens the feeds the page needs and ends the others.
  function syncFeeds() {
    const want = LOGIN ? joined : [''];
    for (const [r, f] of feeds) {
      if (!want.includes(r)) {
        stop(f);
        feeds.delete(r);
      }
    }
    for (const r of want) if (!feeds.has(r)) connect(feed(r));
    drawStatus();
  }

  // --- login mode: the backend and the token ---
  // backend calls the backend's session API; it answers the session
  // ({user, rooms, offered, bus, token, expires_in}) or {error}.
  async function backend(method, body) {
    const init = { method, cache: 'no-store' };
    if (body) {
      init.headers = { 'Content-Type': 'application/json' };
      init.body = JSON.stringify(body);
    }
    const res = await fetch(LOGIN, init);
    let s = null;
    try { s = await res.json(); } catch { /* not JSON */ }
    if (!res.ok) throw new Error((s && s.error) || res.status + ' ' + res.statusText);
    return s;
  }

  let renewTimer = 0;
  let renewing = null;

  // renew gets a new token from the backend (unless the one the page has
  // is a few seconds old and force is false) and reports whether this
  // browser is still logged in; it rejects when the backend is away.
  function renew(force) {
    if (!force && token && Date.now() - minted < 5000) return Promise.resolve(true);
    renewing ??= (async () => {
      try {
        const s = await backend('GET');
        if (!s.user) {
          loggedOut(s.note || 'Your session ended: log in again.');
          return false;
        }
        useSession(s);
        return true;
      } finally {
        renewing = null;
      }
    })();
    return renewing;
  }

  function scheduleRenew(ms) {
    clearTimeout(renewTimer);
    renewTimer = setTimeout(() => renew(true).catch(() => scheduleRenew(5000)), ms);
  }

  // useSession takes the backend's answer: the name, the rooms, a new
  // token. Open streams switch to it at once, from where they are, so
  // none is cut when the old token expires.
  function useSession(s) {
    me = s.user;
    bus = String(s.bus || '').replace(/\/+$/, '');
    token = s.token;
    minted = Date.now();
    joined = s.rooms;
    offer(s.offered);
    scheduleRenew(Math.max(1000, (s.expires_in || 60) * 1000 * RENEW_AT));
    if (!started) return;
    $('me').textContent = 'as ' + me;
    for (const r of [...rooms.keys()]) if (!joined.includes(r)) rooms.delete(r);
    for (const r of joined) room(r);
    drawRooms();
    for (const f of feeds.values()) {
      if (!f.es || !f.live) continue;
      f.es.close();
      f.quiet = true;
      open(f);
    }
    syncFeeds();
    if (!joined.includes(current)) enter(joined[0]);
  }

  // offer lists the rooms one may join, on the login form and for the
  // join form's suggestions.
  function offer(list) {
    if (!Array.isArray(list)) return;
    const box = $('offered');
    if (box.childElementCount === 0) {
      // At most 4 ticked, the most the backend lets one join (MaxJoined).
      for (const [i, r] of list.entries()) {
        const label = document.createElement('label');
        label.className = 'check';
        const input = document.createElement('input');
        input.type = 'checkbox';
        input.value = r;
        input.checked = i < 4;
        label.append(input, '#' + r);
        box.appendChild(label);
      }
    }
    $('room-list').replaceChildren(...list.map((r) => Object.assign(document.createElement('option'), { value: r })));
  }

  // personal shows a message to the user's address (@name), which an
  // operator or a backend sends, once, as a note in the current room.
  const personalIds = new Set();
  function personal(e) {
    if (!current || personalIds.has(e.id) || e.encoding !== 'utf-8') return;
    personalIds.add(e.id);
    let text = e.body;
    try {
      const b = JSON.parse(e.body);
      if (b && typeof b.text === 'string') text = b.text;
    } catch { /* plain text */ }
    add(current, { system: true, text: (e.from || 'the bus') + ' to you: ' + String(text).slice(0, 2000) });
  }

  function loginError(text) {
    $('login-error').textContent = text;
    $('login-error').hidden = !text;
  }

  // loggedOut ends the chat and shows the login form, saying why.
  function loggedOut(note) {
    for (const f of feeds.values()) stop(f);
    feeds.clear();
    clearTimeout(renewTimer);
    token = '';
    joined = [];
    rooms.clear();
    current = null;
    started = false;
    $('chat').hidden = true;
    $('logout').hidden = true;
    $('login').hidden = false;
    $('me').textContent = '';
    status('', '');
    loginError(note);
  }

  // --- forms ---
  $('login').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('name').value.trim();
    if (!name) return;
    if (LOGIN) {
      const rooms = [...document.querySelectorAll('#offered input:checked')].map((i) => i.value);
      loginError('');
      try {
        useSession(await backend('POST', { name, rooms }));
      } catch (err) {
        loginError(err.message);
        return;
      }
      start();
      return;
    }
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

  $('join').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = $('room').value.trim().toLowerCase();
    if (!ROOM.test(name)) return;
    $('room').value = '';
    joining(false);
    if (LOGIN && !joined.includes(name)) {
      // A room more is a token with one right more: the backend's call.
      try {
        useSession(await backend('POST', { name: me, rooms: [...joined, name] }));
      } catch (err) {
        if (current) add(current, { system: true, text: 'not joined: ' + err.message });
        return;
      }
    }
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
      if (!current) return; // logged out meanwhile
      add(current, { system: true, text: 'not sent: ' + err.message });
      input.value = text;
    }
  });

  function hashRoom() {
    try { return decodeURIComponent(location.hash.slice(1)); } catch { return ''; }
  }

  window.addEventListener('hashchange', () => {
    if (started) enter(hashRoom());
  });

  $('logout').addEventListener('click', async () => {
    try {
      await fetch(LOGIN, { method: 'DELETE' });
    } catch { /* the backend forgets us anyway when the token runs out */ }
    loggedOut('');
  });

  let started = false;
  function start() {
    started = true;
    $('login').hidden = true;
    $('chat').hidden = false;
    $('me').textContent = 'as ' + me;
    if (LOGIN) {
      $('logout').hidden = false;
      for (const r of joined) room(r);
    } else {
      room('lobby');
      room('random');
    }
    enter(hashRoom() || (LOGIN ? joined[0] : 'lobby'));
    syncFeeds();
  }

  if (LOGIN) {
    // The form asks for rooms too, and waits for the backend to say
    // whether this browser is logged in already.
    document.body.classList.add('login');
    $('anon-note').hidden = true;
    $('login-note').hidden = false;
    $('pick').hidden = false;
    $('login').hidden = true;
    Object.assign($('name'), { maxLength: 24, pattern: '[A-Za-z0-9][A-Za-z0-9_.\\-]{0,23}',
      title: "letters (a-z), digits, '-', '_' and '.'", autocomplete: 'username' });
    $('room').placeholder = 'room';
    backend('GET').then((s) => {
      if (s.user) {
        useSession(s);
        start();
        return;
      }
      offer(s.offered);
      $('login').hidden = false;
      $('name').focus();
      if (s.note) loginError(s.note);
    }, (err) => {
      $('login').hidden = false;
      loginError("The chat's backend: " + err.message);
    });
  } else if (me) start();
})();

