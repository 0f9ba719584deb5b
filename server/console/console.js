'use strict';
// The msgbus operators' console, served on the admin listener
// (server/PROTOCOL.md §9). Once a second, while the tab is visible, it asks
// the admin API for the channels and the bus's counters
// (GET /admin/channels) and for every session (GET /admin/sessions), and
// draws: the key figures, messages/s and deliveries/s over the last two
// minutes (the counters' deltas over the time between two answers), the
// channels with their subscribers, and the sessions grouped by user, each
// with a button to log it out and one per user to log out everywhere. A
// form publishes as the server. When the listener wants --admin-token (a
// 401), the page asks for it once, keeps it in this tab's sessionStorage
// and sends it as Authorization: Bearer.
// What the server sends reaches the page through textContent only.
(() => {
  const $ = (id) => document.getElementById(id);
  const PERIOD = 1000; // ms between polls
  const WINDOW = 120; // seconds on the charts
  const GAP = 2500; // ms between two points that breaks a chart's line
  const TOKEN_KEY = 'msgbus-admin-token';
  const SVG = document.querySelector('svg').namespaceURI; // the charts are drawn as SVG elements

  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let wantToken = false;

  // --- the admin API ---
  class AuthError extends Error {}

  // api sends a request to the admin listener with the token, if any. A
  // 401 opens the token form and throws AuthError.
  async function api(method, path, init = {}) {
    const headers = new Headers(init.headers || {});
    if (token) headers.set('Authorization', 'Bearer ' + token);
    const res = await fetch(path, { method, headers, body: init.body, cache: 'no-store', credentials: 'same-origin' });
    if (res.status === 401) {
      askToken(token ? 'The listener refused that token: enter the --admin-token again.' : '');
      throw new AuthError('unauthorized');
    }
    return res;
  }

  async function getJSON(path) {
    const res = await api('GET', path);
    if (!res.ok) throw new Error(res.status + ' ' + (await reason(res)));
    return res.json();
  }

  // reason is the first line of an error answer's text.
  async function reason(res) {
    const t = (await res.text().catch(() => '')).trim().split('\n')[0];
    return t || res.statusText || 'HTTP ' + res.status;
  }

  // --- the token ---
  function askToken(why) {
    wantToken = true;
    clearTimeout(timer);
    timer = 0;
    status('closed', 'token needed');
    $('auth').hidden = false;
    if (why) $('auth-note').textContent = why;
    $('token').focus();
  }

  $('auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    $('auth').hidden = true;
    wantToken = false;
    last = null;
    pollNow();
  });

  // --- formatting ---
  const int = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString() : '–');
  const rate = (r) => (r < 10 && r !== 0 ? r.toFixed(1) : Math.round(r).toLocaleString()) + '/s';
  const shownChannel = (c) => (c === '' ? '/ (root)' : c.startsWith('/') ? c : '/' + c);
  const clock = (d) => d.toLocaleTimeString([], { hour12: false });
  function age(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.floor(s / 60) + ' min';
    if (s < 86400) return Math.floor(s / 3600) + ' h ' + (Math.floor(s / 60) % 60) + ' min';
    return Math.floor(s / 86400) + ' d';
  }
  function bytes(n) {
    if (!Number.isFinite(n)) return '';
    const u = ['B', 'KB', 'MB', 'GB', 'TB'];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + u[i];
  }
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  // flash restarts a short highlight on e.
  function flash(e, cls) {
    e.classList.remove(cls);
    void e.offsetWidth;
    e.classList.add(cls);
  }
  document.addEventListener('animationend', (e) => e.target.classList.remove('new', 'changed'));

  function status(cls, text) {
    $('status').className = 'pill ' + cls;
    $('status').textContent = text;
  }

  // --- rates and charts ---
  let last = null; // {t, published, delivered}: the previous answer's counters
  const points = []; // {t: Date.now(), published, delivered}: rates, oldest first

  function rates(d, now) {
    const p = Number(d.published), q = Number(d.delivered);
    if (!Number.isFinite(p) || !Number.isFinite(q)) return;
    // A counter that went down is a restarted server: start over from it.
    if (last && p >= last.published && q >= last.delivered && now - last.t > 50) {
      const dt = (now - last.t) / 1000;
      points.push({ t: Date.now(), published: (p - last.published) / dt, delivered: (q - last.delivered) / dt });
      const cut = Date.now() - (WINDOW + 5) * 1000;
      while (points.length && points[0].t < cut) points.shift();
      const newest = points[points.length - 1];
      $('r-published').textContent = rate(newest.published);
      $('r-delivered').textContent = rate(newest.delivered);
    }
    last = { t: now, published: p, delivered: q };
  }

  // nice is the smallest of 1, 2, 2.5, 5 × 10^k at least v (and at least 1).
  function nice(v) {
    if (!(v > 1)) return 1;
    const k = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * k >= v) return m * k;
    return 10 * k;
  }

  function svgEl(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // chart draws one figure's series over the last WINDOW seconds, in the
  // SVG's own pixels (its viewBox is its size), so lines stay thin and text
  // unscaled at any width. Until the page has been open that long, the
  // time axis spans what it has seen (at least 30 s, in steps of 10 s), so
  // the first seconds already use the width. The scale's labels sit in a gutter left of the
  // plot and the time's below it: no line runs through them. The figure
  // records the plot's box and the points drawn for the tests.
  function chart(fig) {
    const svg = fig.querySelector('svg');
    const w = svg.clientWidth, h = svg.clientHeight;
    if (w === 0 || h === 0) return;
    const key = fig.dataset.key;
    const now = Date.now();
    const shown = points.filter((p) => p.t >= now - WINDOW * 1000);
    const seen = shown.length ? (now - shown[0].t) / 1000 : 0;
    const span = Math.min(WINDOW, Math.max(30, Math.ceil(seen / 10) * 10));
    const max = nice(Math.max(0, ...shown.map((p) => p[key])));
    const ticks = [0, max / 2, max].map((v) => (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(1)));
    const gutter = 8 + 7 * Math.max(...ticks.map((s) => s.length));
    const top = 8, bottom = h - 20, left = gutter + 6, right = w - 4;
    const x = (t) => left + (right - left) * (1 - (now - t) / (span * 1000));
    const y = (v) => bottom - (bottom - top) * v / max;

    const kids = [];
    ticks.forEach((label, i) => {
      const yy = Math.round(y(max * i / 2)) + 0.5;
      kids.push(svgEl('line', { class: i === 0 ? 'axis' : 'grid', x1: left, x2: right, y1: yy, y2: yy }));
      kids.push(svgEl('text', { class: 'tick', x: gutter, y: yy, 'text-anchor': 'end', 'dominant-baseline': 'middle' }, label));
    });
    const ago = (s) => (s % 60 === 0 ? s / 60 + ' min' : s + ' s');
    for (const [s, label, anchor] of [[span, ago(span) + ' ago', 'start'], [span / 2, ago(span / 2), 'middle'], [0, 'now', 'end']]) {
      kids.push(svgEl('text', { class: 'tick', x: x(now - s * 1000), y: h - 4, 'text-anchor': anchor }, label));
    }
    // One path per run of points without a gap (a paused tab, a failed
    // poll), each with the area under it.
    let line = '', area = '', run = [];
    const flush = () => {
      if (run.length === 0) return;
      const d = run.map(([px, py], i) => (i ? 'L' : 'M') + px.toFixed(1) + ' ' + py.toFixed(1)).join('');
      line += d;
      area += d + 'L' + run[run.length - 1][0].toFixed(1) + ' ' + bottom + 'L' + run[0][0].toFixed(1) + ' ' + bottom + 'Z';
      run = [];
    };
    shown.forEach((p, i) => {
      if (i > 0 && p.t - shown[i - 1].t > GAP) flush();
      run.push([Math.max(left, x(p.t)), y(p[key])]);
    });
    flush();
    if (area) kids.push(svgEl('path', { class: 'area', d: area }));
    if (line) kids.push(svgEl('path', { class: 'line', d: line }));
    const newest = shown[shown.length - 1];
    if (newest && now - newest.t < GAP) kids.push(svgEl('circle', { class: 'dot', cx: x(newest.t), cy: y(newest[key]), r: 3 }));
    svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
    svg.replaceChildren(...kids);
    fig.dataset.points = String(shown.length);
    fig.dataset.span = String(span);
    fig.dataset.max = String(max);
    fig.dataset.plotLeft = String(left);
    fig.dataset.gutter = String(gutter);
  }
  const charts = [...document.querySelectorAll('figure.chart')];
  const drawCharts = () => charts.forEach(chart);
  new ResizeObserver(drawCharts).observe(document.querySelector('.charts'));

  // --- channels ---
  const rows = new Map(); // channel → its <tr>
  let firstChannels = true;

  function figures(d, list) {
    $('n-channels').textContent = int(list.length);
    $('n-subscribers').textContent = int(Number(d.subscribers));
    $('n-sessions').textContent = int(Number(d.sessions));
    $('n-published').textContent = int(Number(d.published));
    $('n-delivered').textContent = int(Number(d.delivered));
    const hist = d.history;
    const n = typeof hist === 'number' ? hist : hist && Number(hist.messages);
    $('n-history').textContent = Number.isFinite(n) && n >= 0 ? int(n) : '–';
    $('n-history').title = hist && Number.isFinite(Number(hist.bytes)) ? bytes(Number(hist.bytes)) + ' kept' : '';
  }

  function channelRow(name) {
    const tr = el('tr');
    tr.dataset.channel = name;
    const td = el('td', 'name');
    const b = el('button', 'link', shownChannel(name));
    b.type = 'button';
    if (name.startsWith('/')) b.disabled = true; // a /bus/ topic: not a channel to publish to
    else b.title = 'publish to ' + shownChannel(name);
    td.appendChild(b);
    const subs = el('td', 'num subs');
    const track = el('span', 'track');
    track.appendChild(el('span', 'meter'));
    subs.append(track, el('span', 'n'));
    tr.append(td, subs, el('td', 'num hist'));
    return tr;
  }

  function channels(d) {
    const list = (Array.isArray(d.channels) ? d.channels : [])
      .map((c) => ({ name: String(c.channel ?? ''), subs: Number(c.subscribers) || 0, hist: c.history }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    figures(d, list);
    const tbody = $('channels').tBodies[0];
    const most = Math.max(1, ...list.map((c) => c.subs));
    const seen = new Set();
    let anyHistory = false;
    let prev = null;
    for (const c of list) {
      seen.add(c.name);
      let tr = rows.get(c.name);
      if (!tr) {
        tr = channelRow(c.name);
        rows.set(c.name, tr);
        if (!firstChannels) flash(tr, 'new');
      }
      const n = tr.querySelector('.n');
      if (n.textContent !== int(c.subs)) {
        if (n.textContent !== '' && !tr.classList.contains('new')) flash(tr.cells[1], 'changed');
        n.textContent = int(c.subs);
      }
      tr.querySelector('.meter').style.width = (100 * c.subs / most).toFixed(1) + '%';
      const h = Number(c.hist);
      const known = c.hist !== undefined && c.hist !== null && Number.isFinite(h) && h >= 0;
      anyHistory ||= known;
      tr.cells[2].textContent = known ? int(h) : '–';
      const want = prev ? prev.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      prev = tr;
    }
    for (const [name, tr] of rows) {
      if (!seen.has(name)) {
        tr.remove();
        rows.delete(name);
      }
    }
    $('channels').classList.toggle('no-history', !anyHistory);
    firstChannels = false;
    filterChannels();
  }

  function filterChannels() {
    const f = $('filter').value.trim().toLowerCase();
    let shown = 0;
    for (const [name, tr] of rows) {
      tr.hidden = f !== '' && !shownChannel(name).toLowerCase().includes(f);
      if (!tr.hidden) shown++;
    }
    $('channels-note').textContent = rows.size === 0 ? '' : f ? shown + ' of ' + rows.size : 'with a subscriber';
    $('channels-empty').hidden = shown > 0;
    $('channels-empty').textContent = rows.size === 0 ? 'No channel has a subscriber.' : 'No channel matches the filter.';
  }
  $('filter').addEventListener('input', filterChannels);

  $('channels').addEventListener('click', (e) => {
    const b = e.target.closest('button.link');
    if (!b || b.disabled) return;
    $('p-channel').value = b.closest('tr').dataset.channel;
    $('p-body').focus();
  });

  // --- sessions ---
  const KINDS = { multipart: 'multipart', sse: 'SSE', websocket: 'WebSocket' };
  const SHOWN = 50; // sessions drawn per user; "log out all" still ends every one
  let sessionsKey = '';

  function sessions(d) {
    const list = Array.isArray(d.sessions) ? d.sessions : [];
    const key = JSON.stringify(list.map((s) => [s.id, s.user, s.kind, s.channels, s.remote, s.since]));
    if (key !== sessionsKey) {
      sessionsKey = key;
      drawSessions(list);
    }
    // Ages move on without a change to the sessions.
    for (const e of document.querySelectorAll('#users [data-since]')) e.textContent = age(Date.now() - Number(e.dataset.since));
  }

  function drawSessions(list) {
    const byUser = new Map();
    for (const s of list) {
      const u = String(s.user ?? '');
      if (!byUser.has(u)) byUser.set(u, []);
      byUser.get(u).push(s);
    }
    // Users by name; anonymous sessions last.
    const users = [...byUser.keys()].sort((a, b) => (a === '') - (b === '') || (a < b ? -1 : a > b ? 1 : 0));
    const out = [];
    for (const u of users) {
      const ss = byUser.get(u);
      const box = el('section', 'user');
      box.dataset.user = u;
      const head = el('div', 'user-head');
      const name = el('h3', u ? '' : 'anon', u || 'anonymous');
      head.append(el('span', 'avatar', u ? [...u][0].toUpperCase() : '?'), name, el('span', 'badge', String(ss.length)));
      if (u && u !== '.' && u !== '..') {
        const all = el('button', 'quiet danger all', 'Log out all');
        all.type = 'button';
        all.title = 'log ' + u + ' out everywhere: end every session of theirs';
        all.dataset.action = 'all';
        all.dataset.n = String(ss.length);
        head.appendChild(all);
      } else {
        // Anonymous sessions have no user to log out everywhere: each
        // one still ends by its id.
        head.appendChild(el('span', 'note', 'one by one'));
      }
      const ul = el('ul', 'sessions');
      for (const s of ss.slice(0, SHOWN)) ul.appendChild(sessionItem(u, s));
      if (ss.length > SHOWN) ul.appendChild(el('li', 'more note', 'and ' + (ss.length - SHOWN).toLocaleString() + ' more, the newest'));
      box.append(head, ul);
      out.push(box);
    }
    $('users').replaceChildren(...out);
    $('sessions-empty').hidden = list.length > 0;
    $('sessions-note').textContent = list.length
      ? list.length + (list.length === 1 ? ' session' : ' sessions') + ' of ' + users.length + (users.length === 1 ? ' user' : ' users')
      : '';
  }

  function sessionItem(u, s) {
    const li = el('li');
    li.dataset.id = String(s.id ?? '');
    const kind = String(s.kind ?? '');
    const top = el('div', 'top');
    top.append(el('span', 'kind ' + kind, KINDS[kind] || kind || '?'), el('span', 'remote', String(s.remote ?? '')));
    const since = new Date(s.since);
    if (!isNaN(since)) {
      const a = el('span', 'age', age(Date.now() - since));
      a.dataset.since = String(since.getTime());
      a.title = 'since ' + since.toLocaleString();
      top.appendChild(a);
    }
    const chans = el('div', 'chans');
    for (const c of Array.isArray(s.channels) ? s.channels : []) chans.appendChild(el('code', '', shownChannel(String(c))));
    const id = el('span', 'id', String(s.id ?? ''));
    id.title = 'session id';
    chans.appendChild(id);
    li.append(top, chans);
    const b = el('button', 'quiet small', u ? 'Log out' : 'End');
    b.type = 'button';
    b.dataset.action = 'one';
    b.title = 'end this session: its stream closes at once';
    li.appendChild(b);
    return li;
  }

  const pendingAll = new WeakMap(); // a "log out everywhere" button → its timer while it asks to confirm

  $('users').addEventListener('click', (e) => {
    const b = e.target.closest('button[data-action]');
    if (!b || b.disabled) return;
    const user = b.closest('.user').dataset.user;
    if (b.dataset.action === 'one') {
      logout(b, user, b.closest('li').dataset.id);
      return;
    }
    // Everywhere asks once more: a second click within a few seconds.
    if (!pendingAll.has(b)) {
      b.classList.add('confirm');
      b.textContent = 'End ' + b.dataset.n + (b.dataset.n === '1' ? ' session?' : ' sessions?');
      pendingAll.set(b, setTimeout(() => {
        pendingAll.delete(b);
        b.classList.remove('confirm');
        b.textContent = 'Log out all';
      }, 4000));
      return;
    }
    clearTimeout(pendingAll.get(b));
    pendingAll.delete(b);
    logout(b, user, '');
  });

  async function logout(b, user, id) {
    b.disabled = true;
    // One session ends by its id alone (anonymous ones too); everywhere
    // is the user's.
    const path = id ? '/admin/sessions/' + encodeURIComponent(id) : '/admin/users/' + encodeURIComponent(user) + '/sessions';
    const what = id ? (user ? user + '’s session ' : 'session ') + id : user + ' everywhere';
    const note = $('sessions-result');
    try {
      const res = await api('DELETE', path);
      if (res.status === 204) result(note, true, 'Logged out ' + what + '.');
      else if (res.status === 404) result(note, false, 'Already gone: ' + what + '.');
      else result(note, false, res.status + ': ' + (await reason(res)));
    } catch (err) {
      result(note, false, err instanceof AuthError ? 'Enter the admin token, then log out again.' : 'Not sent: ' + err.message);
      b.disabled = false;
    }
    pollNow();
  }

  function result(e, ok, text) {
    e.classList.toggle('ok', ok);
    e.classList.toggle('err', !ok);
    e.textContent = text;
  }

  // --- publishing ---
  $('publish').addEventListener('submit', async (e) => {
    e.preventDefault();
    const ch = $('p-channel').value.trim().replace(/^\/+/, '');
    const from = $('p-from').value.trim();
    const type = $('p-type').value.trim();
    const note = $('p-result');
    // The browser would resolve "." and ".." in the address, and publish
    // to a channel other than the one named; the server refuses an empty
    // segment. Say so here.
    if (ch !== '' && ch.split('/').some((s) => s === '' || s === '.' || s === '..')) {
      result(note, false, 'A channel name has no empty, “.” or “..” segment.');
      return;
    }
    let path = '/admin/publish/' + ch.split('/').map(encodeURIComponent).join('/');
    if (from) path += '?from=' + encodeURIComponent(from);
    const send = $('p-send');
    send.disabled = true;
    try {
      const headers = type ? { 'Content-Type': type } : {};
      const res = await api('POST', path, { body: $('p-body').value, headers });
      if (res.ok) {
        const id = res.headers.get('Msgbus-Id');
        const n = res.headers.get('Msgbus-Subscribers');
        result(note, true, 'Published' + (id ? ' #' + id : '') + ' to ' + shownChannel(ch) +
          (n !== null ? ' · ' + n + (n === '1' ? ' subscriber' : ' subscribers') : '') + ' · ' + clock(new Date()));
      } else {
        result(note, false, res.status + ': ' + (await reason(res)));
      }
    } catch (err) {
      result(note, false, err instanceof AuthError ? 'Enter the admin token, then publish again.' : 'Not sent: ' + err.message);
    } finally {
      send.disabled = false;
    }
  });

  // --- polling ---
  let timer = 0;
  let busy = false;
  let again = false; // a poll was asked for while one ran

  async function poll() {
    timer = 0;
    if (document.hidden || wantToken) return;
    if (busy) { again = true; return; }
    busy = true;
    const started = performance.now();
    try {
      const [ch, ss] = await Promise.allSettled([getJSON('/admin/channels'), getJSON('/admin/sessions')]);
      if (ch.status === 'rejected') throw ch.reason;
      rates(ch.value, performance.now());
      channels(ch.value);
      drawCharts();
      if (ss.status === 'fulfilled') {
        sessions(ss.value);
        if ($('sessions-result').dataset.failed) result($('sessions-result'), true, '');
        delete $('sessions-result').dataset.failed;
      } else if (!(ss.reason instanceof AuthError)) {
        $('sessions-result').dataset.failed = '1';
        result($('sessions-result'), false, 'Sessions unavailable: ' + ss.reason.message);
      }
      if (!wantToken && !document.hidden) status('live', 'live');
    } catch (err) {
      if (!(err instanceof AuthError)) {
        last = null; // the next rate starts from the next answer
        status('closed', 'offline · ' + clock(new Date()));
        console.warn('msgbus console:', err);
      }
    } finally {
      busy = false;
    }
    if (again) { again = false; pollNow(); return; }
    schedule(Math.max(100, PERIOD - (performance.now() - started)));
  }

  function schedule(ms) {
    if (timer || document.hidden || wantToken) return;
    timer = setTimeout(poll, ms);
  }

  function pollNow() {
    clearTimeout(timer);
    timer = 0;
    poll();
  }

  // A hidden tab asks nothing; back in view it starts again at once, and
  // its rates from the first answer after (the charts keep a gap).
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = 0;
      last = null;
      if (!wantToken) status('paused', 'paused');
    } else {
      pollNow();
    }
  });

  pollNow();
})();
