'use strict';
// The msgbus viewer: served for a browser navigation to /msgbus/<channel>,
// it subscribes to the same URL over Server-Sent Events with the JSON
// envelope (?envelope=json: each event is {id, channel, type, from, time,
// body, encoding}) and shows the newest message in place, a log, and for
// test-pub's stamped messages a live dashboard of rate and latency. After a
// break (a server restart, a network switch) it resumes where its stream
// stopped, with ?since=<id> (server/PROTOCOL.md §6), and shows each message
// once.
// Everything a message holds reaches the page through textContent, a
// sandboxed iframe or an <img>: never as markup.
(() => {
  const PREFIX = '/msgbus/';
  const LOG_ROWS = 200;
  const $ = (id) => document.getElementById(id);

  const path = location.pathname;
  const channel = path.startsWith(PREFIX) ? safeDecode(path.slice(PREFIX.length)) : '';
  const shown = channel === '' ? '/ (every channel)' : '/' + channel;
  $('channel').textContent = shown;
  document.title = shown + ' · msgbus viewer';
  $('hint').textContent = "curl -d 'hello' " + location.origin + PREFIX + (channel || 'news');

  function safeDecode(s) {
    try { return decodeURIComponent(s); } catch { return s; }
  }

  // parse makes a message of an event's envelope. A body is text when the
  // envelope says utf-8, whatever its type; else bytes, from base64.
  function parse(ev) {
    const e = JSON.parse(ev.data);
    const time = new Date(e.time);
    const m = {
      id: String(e.id),
      time: isNaN(time) ? new Date() : time,
      channel: String(e.channel ?? channel),
      type: String(e.type || 'application/octet-stream'),
      from: e.from ? String(e.from) : '',
      text: null,
      bytes: null,
    };
    if (e.encoding === 'base64') m.bytes = fromBase64(String(e.body));
    else m.text = String(e.body ?? '');
    return m;
  }

  function fromBase64(s) {
    const bin = atob(s);
    const b = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
    return b;
  }

  // essence is the media type without parameters, lower case.
  const essence = (t) => t.split(';')[0].trim().toLowerCase();
  const isJSON = (t) => t === 'application/json' || t.endsWith('+json');
  const size = (m) => (m.bytes ? m.bytes.length : new TextEncoder().encode(m.text).length);

  // --- the newest message, in place ---
  let objectURL = null;

  function show(m) {
    const cur = $('current');
    const t = essence(m.type);
    let el;
    let url = null;
    if (t.startsWith('image/')) {
      const bytes = m.bytes || new TextEncoder().encode(m.text); // an SVG comes as text
      url = URL.createObjectURL(new Blob([bytes], { type: t }));
      el = document.createElement('img');
      el.alt = 'message ' + m.id + ' (' + m.type + ')';
      el.src = url;
    } else if (t === 'text/html' && m.text !== null) {
      el = document.createElement('iframe');
      el.setAttribute('sandbox', ''); // no scripts, no same origin, no forms, no popups
      el.title = 'message ' + m.id + ' (HTML, sandboxed)';
      el.srcdoc = m.text;
    } else if (m.text !== null) {
      el = document.createElement('pre');
      let s = m.text;
      if (isJSON(t)) {
        try { s = JSON.stringify(JSON.parse(s), null, 2); } catch { /* shown as sent */ }
      }
      el.textContent = s;
    } else {
      el = document.createElement('div');
      el.className = 'binary';
      el.textContent = m.bytes.length + ' bytes of ' + m.type + ': ' + hex(m.bytes, 96);
    }
    cur.classList.remove('empty');
    cur.replaceChildren(el);
    if (objectURL) URL.revokeObjectURL(objectURL);
    objectURL = url; // the <img> has its own reference to the image now
    $('current-meta').textContent = '#' + m.id + ' · /' + m.channel + ' · ' + m.type +
      (m.from ? ' · from ' + m.from : '') + ' · ' + clock(m.time);
  }

  function hex(b, n) {
    const out = [];
    for (let i = 0; i < Math.min(b.length, n); i++) out.push(b[i].toString(16).padStart(2, '0'));
    return out.join(' ') + (b.length > n ? ' …' : '');
  }

  const clock = (d) => d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');

  // --- the log ---
  function row(m) {
    const tr = document.createElement('tr');
    let preview = '';
    if (m.text !== null) preview = m.text.slice(0, 160);
    else preview = '(' + m.bytes.length + ' bytes, base64)';
    const cells = [
      [clock(m.time), 'mono'], [m.id, 'mono opt'], ['/' + m.channel, ''], [m.type, ''],
      [m.from, 'opt'], [size(m) + ' B', 'mono opt'], [preview, 'preview'],
    ];
    for (const [text, cls] of cells) {
      const td = document.createElement('td');
      if (cls) td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    return tr;
  }

  // Messages are drawn in batches, so a flood costs one redraw per tick and
  // not one per message; only the newest LOG_ROWS are kept. The header's
  // count and the dashboard's "received" are drawn together, from the same
  // counter, so they always agree.
  let pending = [];
  let drawTimer = 0;
  let count = 0;

  function draw() {
    drawTimer = 0;
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    show(batch[batch.length - 1]);
    const tbody = $('log').tBodies[0];
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.appendChild(row(batch[i]));
    tbody.prepend(frag);
    while (tbody.rows.length > LOG_ROWS) tbody.deleteRow(-1);
    $('count').textContent = count.toLocaleString() + (count === 1 ? ' message' : ' messages');
    $('f-total').textContent = count.toLocaleString();
  }

  function received(m) {
    count++;
    pending.push(m);
    if (pending.length > LOG_ROWS) pending.splice(0, pending.length - LOG_ROWS);
    if (!drawTimer) drawTimer = setTimeout(draw, 30);
  }

  // --- the load dashboard (test-pub's "LOAD <run hex> <worker> <seq> <sent ns>\n") ---
  const STAMP = /^LOAD ([0-9a-f]{1,16}) (\d{1,10}) (\d{1,20}) (\d{1,19})\n/;
  const SAMPLES = 2000; // latencies kept per second, a uniform sample
  const HISTORY = 60; // seconds on the chart
  const flood = {
    on: false, lost: 0, order: 0,
    next: new Map(), // "run/worker" → the sequence number expected next
    n: 0, lat: [], max: 0, // this second
    history: [], // {rate, p50}
  };

  function floodOn() {
    if (flood.on) return;
    flood.on = true;
    $('flood').hidden = false;
    setInterval(tick, 1000);
    new ResizeObserver(chart).observe($('f-chart'));
  }

  function stamped(m) {
    if (m.text === null || !m.text.startsWith('LOAD ')) return;
    const s = STAMP.exec(m.text);
    if (!s) return;
    floodOn();
    const nowNs = (performance.timeOrigin + performance.now()) * 1e6;
    const ms = (nowNs - Number(s[4])) / 1e6;
    flood.n++;
    if (flood.lat.length < SAMPLES) flood.lat.push(ms);
    else {
      const j = Math.floor(Math.random() * flood.n);
      if (j < SAMPLES) flood.lat[j] = ms;
    }
    if (ms > flood.max) flood.max = ms;
    const key = s[1] + '/' + s[2];
    const seq = Number(s[3]);
    const want = flood.next.get(key);
    if (want === undefined) {
      if (flood.next.size >= 10000) flood.next.clear(); // bounded: forget old runs
    } else if (seq > want) {
      flood.lost += seq - want;
    } else if (seq < want) {
      flood.order++;
      if (flood.lost > 0) flood.lost--; // a late one fills a gap
    }
    flood.next.set(key, Math.max(want || 0, seq + 1));
  }

  const fmtMs = (ms) => (ms < 1 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : Math.round(ms)) + ' ms';

  function tick() {
    const lat = flood.lat.sort((a, b) => a - b);
    const pct = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    const p50 = lat.length ? pct(0.5) : null;
    $('f-rate').textContent = flood.n.toLocaleString() + '/s';
    $('f-p50').textContent = p50 === null ? '–' : fmtMs(p50);
    $('f-p99').textContent = lat.length ? fmtMs(pct(0.99)) : '–';
    $('f-max').textContent = lat.length ? fmtMs(flood.max) : '–';
    $('f-lost').textContent = flood.lost.toLocaleString();
    $('f-order').textContent = flood.order.toLocaleString();
    $('f-pubs').textContent = flood.next.size;
    flood.history.push({ rate: flood.n, p50 });
    if (flood.history.length > HISTORY) flood.history.shift();
    flood.n = 0;
    flood.lat = [];
    flood.max = 0;
    chart();
  }

  // chart draws the last minute across the canvas's whole width, at the
  // screen's resolution, in the page's colours (light or dark). The two scales' labels sit in a band above the
  // plot, so no line runs through them; the canvas records both edges
  // (data-label-bottom, data-plot-top) for the tests.
  function chart() {
    const c = $('f-chart');
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (w === 0 || h === 0) return;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(h * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(h * dpr);
    }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (name) => css.getPropertyValue(name).trim();
    const pad = 10, band = 24; // the label band's height
    const top = band + 4, bottom = h - pad, left = pad, right = w - pad;
    g.font = '12px ' + color('--font');
    g.textBaseline = 'middle';
    // Grid lines at a quarter, half and three quarters of each scale.
    g.strokeStyle = color('--border');
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = Math.round(top + (bottom - top) * i / 4) + 0.5;
      g.beginPath();
      g.moveTo(left, y);
      g.lineTo(right, y);
      g.stroke();
    }
    // The time axis stretches over at least ten seconds, so the first
    // seconds already use the width; after a minute the chart scrolls.
    const hist = flood.history;
    const span = Math.max(hist.length - 1, 10);
    const line = (key, stroke) => {
      const max = Math.max(1, ...hist.map((p) => p[key] || 0));
      g.strokeStyle = stroke;
      g.lineWidth = 2;
      g.lineJoin = 'round';
      g.beginPath();
      hist.forEach((p, i) => {
        const x = left + (right - left) * i / span;
        const y = bottom - (bottom - top) * (p[key] || 0) / max;
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
      return max;
    };
    const label = (text, stroke, alignRight) => {
      const tw = g.measureText(text).width;
      const x = alignRight ? right - tw : left + 18;
      g.fillStyle = stroke;
      g.fillRect(x - 18, band / 2 - 1.5, 12, 3);
      g.fillStyle = color('--muted');
      g.fillText(text, x, band / 2);
    };
    const c1 = color('--chart-1'), c2 = color('--chart-2');
    const maxRate = line('rate', c1);
    const maxLat = line('p50', c2);
    label('max ' + maxRate.toLocaleString() + '/s', c1, false);
    label('max ' + fmtMs(maxLat), c2, true);
    c.dataset.labelBottom = String(band);
    c.dataset.plotTop = String(top);
    c.dataset.scheme = darkScheme.matches ? 'dark' : 'light';
  }

  // The chart's colours follow the page's: redraw when the scheme changes.
  const darkScheme = matchMedia('(prefers-color-scheme: dark)');
  darkScheme.addEventListener('change', () => { if (flood.on) chart(); });

  if (channel === 'flood' || channel.startsWith('flood/')) floodOn();

  // --- the connection ---
  function status(cls, text) {
    const s = $('status');
    s.className = 'pill ' + cls;
    s.textContent = text;
  }

  // Every stream starts where the viewer's messages end, with nothing
  // between (server/PROTOCOL.md §6): ?since=<the last id delivered>. Before
  // the first event, that is the newest message history keeps for this
  // view, asked before the first stream opens; when history keeps none,
  // the stream asks for ?last=<all>, which is then only what came after
  // that question. A ?since= or ?last= in the page's own address is asked
  // for as given on the first stream. The viewer reconnects by itself
  // rather than leave it to EventSource, which would reuse the first URL
  // and send no Last-Event-ID before a first event. Ids are kept for a
  // while, so a message delivered twice is shown once.
  const RESUME_ALL = 1000; // ?last= for "everything kept" (the server caps it at --resume-max)
  const query = new URLSearchParams(location.search);
  query.set('envelope', 'json');
  const filters = new URLSearchParams();
  // A ?token= in the page's address (a bus with tokens, PROTOCOL.md §8)
  // goes along with every request, as EventSource cannot send a header.
  for (const k of ['type', 'sender', 'token']) if (query.has(k)) filters.set(k, query.get(k));
  let asked = query.has('since') || Number(query.get('last')) > 0; // the first stream, as the address asks

  let es = null;
  let cursor = ''; // the id of the last message delivered
  let noneKept = false; // no id, and history kept none of ours when asked: all it keeps now is new
  let historyOn = true; // false on a server without /history: streams start live
  let retry = 1000;
  const seen = new Set();
  const seenOrder = [];

  function streamURL() {
    const q = new URLSearchParams(query);
    if (!asked) {
      q.delete('since');
      q.delete('last');
      if (cursor) q.set('since', cursor);
      else if (noneKept) q.set('last', String(RESUME_ALL));
    }
    return location.pathname + '?' + q;
  }

  // fresh records id and says whether it is new to the page.
  function fresh(id) {
    if (seen.has(id)) return false;
    seen.add(id);
    seenOrder.push(id);
    if (seenOrder.length > 5000) seen.delete(seenOrder.shift());
    return true;
  }

  // where sets cursor to the newest message history keeps for this view,
  // or noneKept when it keeps none; it returns false when the server has
  // no history.
  async function where() {
    const q = new URLSearchParams(filters);
    q.set('limit', '1');
    const res = await fetch('/history/' + path.slice(PREFIX.length) + '?' + q, { cache: 'no-store' });
    if (res.status === 404) return false;
    if (!res.ok) throw new Error(res.status + ' ' + (await res.text()).trim());
    const p = await res.json();
    const newest = Array.isArray(p.messages) ? p.messages[p.messages.length - 1] : null;
    if (newest && newest.id) cursor = String(newest.id);
    else noneKept = true;
    return true;
  }

  function again() {
    status('connecting', 'reconnecting…');
    setTimeout(connect, retry);
    retry = Math.min(retry * 2, 10000);
  }

  async function connect() {
    if (!asked && !cursor && !noneKept && historyOn) {
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
      retry = 1000;
      status('live', 'live');
      if (asked) {
        // The address's own ?since= or ?last=: with nothing delivered,
        // the next stream resumes from that since, or takes all that is
        // kept by then.
        asked = false;
        if (!cursor && query.get('since')) cursor = query.get('since');
        else if (!cursor && Number(query.get('last')) > 0) noneKept = true;
      }
    };
    s.onmessage = (ev) => {
      if (ev.lastEventId) {
        cursor = ev.lastEventId;
        noneKept = false;
        if (!fresh(ev.lastEventId)) return;
      }
      let m;
      try { m = parse(ev); } catch (e) { console.warn('msgbus viewer: bad event', e); return; }
      stamped(m);
      received(m);
    };
    s.onerror = () => {
      s.close();
      if (es !== s) return;
      es = null;
      asked = false; // a ?since= the server refused is not asked again
      again();
    };
  }
  connect();
})();
