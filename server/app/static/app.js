"use strict";
// The example app: each form opens a WebSocket on one of the broker's
// patterns (or, for the subscriber, an EventSource on /msgbus/ with the
// JSON envelope) and logs what goes through it. Messages are shown as
// text, never as HTML.
const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
const sockets = {};
const $ = (sel, root = document) => root.querySelector(sel);

document.querySelectorAll('[role="tab"]').forEach(tab => {
  tab.addEventListener("click", () => {
    document.querySelectorAll('[role="tab"]').forEach(t => t.setAttribute("aria-selected", String(t === tab)));
    document.querySelectorAll('[role="tabpanel"]').forEach(p => { p.hidden = p.id !== tab.dataset.tab; });
  });
});

$("#curl").textContent =
  `# subscribe (multipart, as the original msgbus)\n` +
  `curl -N ${location.origin}/msgbus/demo\n\n` +
  `# the same as Server-Sent Events, each event the message as JSON\n` +
  `curl -N -H 'Accept: text/event-stream' '${location.origin}/msgbus/demo?envelope=json'\n\n` +
  `# publish\n` +
  `curl -d 'hello' ${location.origin}/msgbus/demo/news`;

function log(id, cls, text) {
  const li = document.createElement("li");
  li.className = cls;
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = new Date().toLocaleTimeString([], { hour12: false });
  li.append(t, text);
  const ol = document.getElementById(id);
  ol.append(li);
  while (ol.children.length > 500) ol.firstChild.remove();
  ol.scrollTop = ol.scrollHeight;
}

function show(data) {
  return typeof data === "string" ? data : `(binary, ${data.size} bytes)`;
}

// The subscriber's prefix follows its transport.
const via = $('form[data-pattern="sub"] select[name="via"]');
via.addEventListener("change", () => {
  $('form[data-pattern="sub"] .via').textContent = via.value === "sse" ? "/msgbus/" : "/sub/";
});

// subscribeSSE subscribes to /msgbus/<topic> with EventSource: each event is
// the message's envelope, {id, channel, type, from, time, body, encoding}.
function subscribeSSE(topic, type) {
  const q = new URLSearchParams({ envelope: "json" });
  if (type) q.set("type", type);
  const url = `/msgbus/${topic}?${q}`;
  const es = new EventSource(url);
  es.onopen = () => log("sub-log", "", `connected to ${url} (Server-Sent Events)`);
  es.onmessage = ev => {
    let m;
    try { m = JSON.parse(ev.data); } catch { return; }
    const body = m.encoding === "utf-8" ? m.body : `(binary, ${atob(m.body).length} bytes)`;
    log("sub-log", "in", `← /${m.channel} [${m.type}${m.from ? ", from " + m.from : ""}] ${body}`);
  };
  es.onerror = () => log("sub-log", "err", es.readyState === EventSource.CLOSED ? "closed" : "reconnecting…");
  return es;
}

let pullers = 0;
document.querySelectorAll("form.connect").forEach(form => {
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = form.dataset.pattern, f = new FormData(form);
    const topic = encodeURI(String(f.get("topic") || "").trim());
    if (!form.dataset.multi && sockets[p]) sockets[p].close();
    if (p === "sub" && f.get("via") === "sse") {
      sockets[p] = subscribeSSE(topic, String(f.get("type") || ""));
      return;
    }
    const q = new URLSearchParams();
    if (f.get("echo")) q.set("echo", "1");
    if (f.get("type")) q.set("type", f.get("type"));
    const url = `${wsBase}/${p}/${topic}${q.size ? "?" + q : ""}`;
    const name = form.dataset.multi ? `puller ${++pullers}` : p;
    const ws = new WebSocket(url);
    sockets[form.dataset.multi ? name : p] = ws;
    ws.onopen = () => {
      log(`${p}-log`, "", `${name}: connected to ${url}`);
      const send = $(`form.send[data-for="${p}"]`);
      if (send) send.hidden = false;
    };
    ws.onmessage = m => log(`${p}-log`, "in", `${name} ← ${show(m.data)}`);
    ws.onclose = e => log(`${p}-log`, "err", `${name}: closed (${e.code}${e.reason ? " " + e.reason : ""})`);
  });
});

document.querySelectorAll("form.send").forEach(form => {
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = form.dataset.for, input = form.elements.text, ws = sockets[p];
    if (!ws || ws.readyState !== WebSocket.OPEN) { log(`${p}-log`, "err", "not connected"); return; }
    ws.send(input.value);
    log(`${p}-log`, "out", `→ ${input.value}`);
    input.value = "";
  });
});
