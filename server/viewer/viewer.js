'use strict';
// The msgbus viewer: served for a browser navigation to /msgbus/<channel>,
// it subscribes to the same URL over Server-Sent Events and shows the newest
// message in place, a log, and for test-pub's stamped messages a live
// dashboard of rate and latency. Everything a message holds reaches the page
// through textContent, a sandboxed iframe or an <img>: never as markup.
(() => {
  const PREFIX = '/msgbus/';
  const LOG_ROWS = 200;
  const $ = (id) => document.getElementById(id);

  const path = location.pathname;
  const channel = path.startsWith(PREFIX) ? decodeURIComponent(path.slice(PREFIX.length)) : '';
  const shown = channel === '' ? '/ (every channel)' : '/' + channel;
  $('channel').textContent = shown;
  document.title = shown + ' — msgbus viewer';
  $('hint').textContent = "curl -d 'hello' " + location.origin + PREFIX + (channel || 'news');

  // An event's data is the message as a MIME part: header lines, a blank
  // line, the body (base64 when Content-Transfer-Encoding says so).
  function parse(ev) {
    const data = ev.data;
    const cut = data.indexOf('\n\n');
    const head = cut < 0 ? data : data.slice(0, cut);
    const body = cut < 0 ? '' : data.slice(cut + 2);
    const h = {};
    for (const line of head.split('\n')) {
      const i = line.indexOf(': ');
      if (i > 0) h[line.slice(0, i).toLowerCase()] = line.slice(i + 2);
    }
    const loc = h['content-location'];
    const m = {
      id: ev.lastEventId,
      time: new Date(),
      channel: loc && loc.startsWith(PREFIX) ? safeDecode(loc.slice(PREFIX.length)) : channel,
      type: h['content-type'] || 'application/octet-stream',
      from: h['from'] || '',
      text: null,
      bytes: null,
    };
    if (h['content-transfer-encoding'] === 'base64') {
      m.bytes = fromBase64(body);
    } else {
      m.text = body;
    }
    return m;
  }

  function safeDecode(s) {
    try { return decodeURIComponent(s); } catch { return s; }
  }

  function fromBase64(s) {
    const bin = atob(s);
    const b = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) b[i] = bin.charCodeAt(i);
    return b;
  }

  // essence is the media type without parameters, lower case.
  const essence = (t) => t.split(';')[0].trim().toLowerCase();
  const asText = (m) => (m.text !== null ? m.text : new TextDecoder().decode(m.bytes));
  const isTextual = (t) => t.startsWith('text/') || t === 'application/json' || t.endsWith('+json') ||
    t === 'application/xml' || t.endsWith('+xml') || t === 'application/javascript';

  // --- the newest message, in place ---
  let objectURL = null;

  function show(m) {
    const cur = $('current');
    const t = essence(m.type);
    let el;
    let url = null;
    if (t.startsWith('image/') && m.bytes) {
      url = URL.createObjectURL(new Blob([m.bytes], { type: t }));
      el = document.createElement('img');
      el.alt = 'message ' + m.id + ' (' + m.type + ')';
      el.src = url;
    } else if (t === 'text/html') {
      el = document.createElement('iframe');
      el.setAttribute('sandbox', ''); // no scripts, no same origin, no forms, no popups
      el.title = 'message ' + m.id + ' (HTML, sandboxed)';
      el.srcdoc = asText(m);
    } else if (m.text !== null || isTextual(t)) {
      el = document.createElement('pre');
      let s = asText(m);
      if (t === 'application/json' || t.endsWith('+json')) {
        try { s = JSON.stringify(JSON.parse(s), null, 2); } catch { /* shown as sent */ }
      }
      el.textContent = s;
    } else {
      el = document.createElement('div');
      el.className = 'binary';
      el.textContent = m.bytes.length + ' bytes of ' + m.type + ': ' + hex(m.bytes, 64);
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
    const size = m.bytes ? m.bytes.length : new TextEncoder().encode(m.text).length;
    let preview = '';
    if (m.text !== null) preview = m.text.slice(0, 120);
    else if (isTextual(essence(m.type))) preview = asText(m).slice(0, 120);
    const cells = [clock(m.time), m.id, '/' + m.channel, m.type, m.from, size + ' B', preview];
    cells.forEach((c, i) => {
      const td = document.createElement('td');
      if (i === 1 || i === 5) td.className = 'mono';
      td.textContent = c;
      tr.appendChild(td);
    });
    return tr;
  }

  // Messages are drawn in batches, so a flood costs one redraw per tick and
  // not one per message; only the newest LOG_ROWS are kept.
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
    $('count').textContent = count + (count === 1 ? ' message' : ' messages');
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
    on: false, total: 0, lost: 0, order: 0,
    next: new Map(), // "run/worker" → the sequence number expected next
    n: 0, lat: [], max: 0, // this second
    history: [], // {rate, p50}
  };

  function floodOn() {
    if (flood.on) return;
    flood.on = true;
    $('flood').hidden = false;
    setInterval(tick, 1000);
  }

  function stamped(m) {
    if (m.text === null || !m.text.startsWith('LOAD ')) return;
    const s = STAMP.exec(m.text);
    if (!s) return;
    floodOn();
    const nowNs = (performance.timeOrigin + performance.now()) * 1e6;
    const ms = (nowNs - Number(s[4])) / 1e6;
    flood.total++;
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
    $('f-total').textContent = flood.total.toLocaleString();
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

  function chart() {
    const c = $('f-chart');
    const g = c.getContext('2d');
    const w = c.width, h = c.height, pad = 6;
    g.clearRect(0, 0, w, h);
    const hist = flood.history;
    const line = (key, color) => {
      const top = Math.max(1, ...hist.map((p) => p[key] || 0));
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      hist.forEach((p, i) => {
        const x = pad + (w - 2 * pad) * (HISTORY - hist.length + i) / (HISTORY - 1);
        const y = h - pad - (h - 2 * pad) * (p[key] || 0) / top;
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
      g.fillStyle = color;
      g.font = '11px system-ui, sans-serif';
      return top;
    };
    const topRate = line('rate', '#00897b');
    g.fillText('max ' + topRate.toLocaleString() + '/s', pad + 2, 14);
    const topLat = line('p50', '#e65100');
    const label = 'max ' + fmtMs(topLat);
    g.fillText(label, w - pad - 2 - g.measureText(label).width, 14);
  }

  if (channel === 'flood' || channel.startsWith('flood/')) floodOn();

  // --- the connection ---
  function status(cls, text) {
    const s = $('status');
    s.className = cls;
    s.textContent = text;
  }

  let es = null;
  function connect() {
    es = new EventSource(location.pathname + location.search);
    es.onopen = () => status('live', 'live');
    es.onmessage = (ev) => {
      let m;
      try { m = parse(ev); } catch (e) { console.warn('msgbus viewer: bad event', e); return; }
      stamped(m);
      received(m);
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        // Refused (a 503, say): EventSource gives up, so try again ourselves.
        status('closed', 'disconnected, retrying in 5 s');
        setTimeout(connect, 5000);
      } else {
        status('connecting', 'reconnecting…');
      }
    };
  }
  connect();
})();
