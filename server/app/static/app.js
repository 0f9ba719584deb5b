"use strict";
// The example app: each form opens a WebSocket on one of the broker's
// patterns and logs what goes through it. Messages are shown as text,
// never as HTML.
const wsBase = (location.protocol === "https:" ? "wss://" : "ws://") + location.host;
const sockets = {};

document.querySelectorAll('nav [role="tab"]').forEach(tab => {
  tab.addEventListener("click", () => {
    document.querySelectorAll('nav [role="tab"]').forEach(t => t.setAttribute("aria-selected", t === tab));
    document.querySelectorAll('[role="tabpanel"]').forEach(p => { p.hidden = p.id !== tab.dataset.tab; });
  });
});

document.getElementById("curl").textContent =
  `curl -N ${location.origin}/msgbus/demo\n` +
  `curl -H 'Content-Type: text/plain' --data-binary hello ${location.origin}/msgbus/demo/news`;

function log(id, cls, text) {
  const li = document.createElement("li");
  li.className = cls;
  li.textContent = `${new Date().toLocaleTimeString()} ${text}`;
  const ol = document.getElementById(id);
  ol.append(li);
  ol.scrollTop = ol.scrollHeight;
}

function show(data) {
  return typeof data === "string" ? data : `(binary, ${data.size} bytes)`;
}

let pullers = 0;
document.querySelectorAll("form.connect").forEach(form => {
  form.addEventListener("submit", ev => {
    ev.preventDefault();
    const p = form.dataset.pattern, f = new FormData(form);
    const topic = encodeURI(String(f.get("topic") || "").trim());
    const q = new URLSearchParams();
    if (f.get("echo")) q.set("echo", "1");
    if (f.get("type")) q.set("type", f.get("type"));
    const url = `${wsBase}/${p}/${topic}${q.size ? "?" + q : ""}`;
    const name = form.dataset.multi ? `puller ${++pullers}` : p;
    if (!form.dataset.multi && sockets[p]) sockets[p].close();
    const ws = new WebSocket(url);
    sockets[form.dataset.multi ? name : p] = ws;
    ws.onopen = () => {
      log(`${p}-log`, "", `${name}: connected to ${url}`);
      const send = document.querySelector(`form.send[data-for="${p}"]`);
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
