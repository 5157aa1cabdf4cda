// uad's web console. Everything comes from uad's control API: calls from
// GET /v1/calls and the /v1/events stream, a call's messages from
// /v1/calls/{id}/sip. The API token, when uad wants one, travels in the
// Authorization header only (kept in sessionStorage, never in a URL), so the
// event stream is read with fetch rather than EventSource.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const RETENTION_MS = 60000; // ended calls stay listed this long, as in the API
const STATS_EVERY_MS = 1000;
const STATS_KEEP = 300; // samples per chart

const state = {
  token: sessionStorage.getItem("uad-token") || "",
  calls: new Map(), // id -> call object
  events: new Map(), // id -> [event] for the timeline
  boot: "",
  lastSeq: 0,
  stream: null, // AbortController of the event stream
  page: null, // {name: "calls"} | {name: "call", id}
  stats: null, // {id, timer, samples}
  ladderTimer: 0,
};

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c !== null && c !== undefined) e.append(c);
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

class AuthError extends Error {}

// api makes a request of the control API and returns the decoded JSON (or
// the Response when raw is set). A 401 asks for the token.
async function api(method, path, body, raw) {
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (res.status === 401) {
    askToken(state.token ? "That token was refused." : "");
    throw new AuthError("unauthorized");
  }
  if (raw) return res;
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const msg = data && data.error ? data.error : res.status + " " + res.statusText;
    throw new Error(data && data.sip_status ? msg + " (SIP " + data.sip_status + ")" : msg);
  }
  return data;
}

function askToken(msg) {
  stopStream();
  state.calls.clear();
  state.events.clear();
  $("#auth").hidden = false;
  $("#calls-page").hidden = true;
  $("#call-page").hidden = true;
  $("#auth-msg").textContent = msg;
  $("#conn").textContent = "not connected: a token is needed";
  $("#token").focus();
}

// ---- events ----

function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

// startStream reads /v1/events from the start of uad's backlog (for the
// timelines), then on, resuming where it left off after a drop.
async function startStream() {
  stopStream();
  const ctl = new AbortController();
  state.stream = ctl;
  let delay = 500;
  while (state.stream === ctl) {
    try {
      const headers = { "Last-Event-ID": state.boot ? state.boot + ":" + state.lastSeq : String(state.lastSeq) };
      if (state.token) headers.Authorization = "Bearer " + state.token;
      const res = await fetch("/v1/events", { headers, signal: ctl.signal, cache: "no-store" });
      if (res.status === 401) {
        askToken(state.token ? "That token was refused." : "");
        return;
      }
      if (!res.ok || !res.body) throw new Error("events: " + res.status);
      state.boot = res.headers.get("Uad-Boot") || state.boot;
      $("#conn").textContent = "connected: live updates";
      delay = 500;
      await readSSE(res.body, ctl);
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    if (state.stream !== ctl) return;
    $("#conn").textContent = "connection lost: reconnecting…";
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10000);
  }
}

async function readSSE(body, ctl) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  while (!ctl.signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let id = "";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("id:")) id = line.slice(3).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (id) state.lastSeq = Number(id.split(":").pop());
      if (data) onEvent(JSON.parse(data));
    }
  }
}

function onEvent(ev) {
  if (ev.boot && ev.boot !== state.boot) state.boot = ev.boot;
  const call = ev.call;
  if (!call) return;
  const prev = state.calls.get(call.id);
  // A GET may have told more (stats); the event's state wins.
  state.calls.set(call.id, prev ? { ...prev, ...call } : call);
  const list = state.events.get(call.id) || [];
  list.push(ev);
  state.events.set(call.id, list);
  if (state.page && state.page.name === "calls") renderRow(state.calls.get(call.id));
  if (state.page && state.page.name === "call" && state.page.id === call.id) {
    renderCallInfo(state.calls.get(call.id));
    renderTimeline(call.id);
    refreshLadderSoon();
  }
}

// eventCount is how many events of a call the page has seen. A call object
// from a request's response is taken only when no event of the call came
// while the request was under way: an event may tell a newer state.
function eventCount(id) {
  return (state.events.get(id) || []).length;
}

function takeCall(call, eventsBefore) {
  if (!call || !call.id) return;
  const prev = state.calls.get(call.id);
  if (prev && eventCount(call.id) !== eventsBefore) {
    // Keep the state the events told; take only the statistics.
    state.calls.set(call.id, { ...prev, audio: prev.audio && call.audio ? { ...prev.audio, stats: call.audio.stats } : prev.audio,
      video: prev.video && call.video ? { ...prev.video, stats: call.video.stats } : prev.video });
    return;
  }
  state.calls.set(call.id, prev ? { ...prev, ...call } : call);
}

// ---- calls page ----

function holdText(c) {
  if (c.local_hold && c.remote_hold) return "both hold";
  if (c.local_hold) return "held by uad";
  if (c.remote_hold) return "held by peer";
  return "none";
}

function listed(c) {
  if (c.state !== "ended") return true;
  const ended = Date.parse(c.ended_at || "");
  return !ended || Date.now() - ended < RETENTION_MS;
}

function renderCalls() {
  const tbody = $("#calls tbody");
  tbody.replaceChildren();
  const calls = [...state.calls.values()].filter(listed);
  calls.sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at));
  for (const c of calls) tbody.append(row(c));
  $("#no-calls").hidden = calls.length > 0;
}

function renderRow(c) {
  const old = document.querySelector(`#calls tr[data-call="${CSS.escape(c.id)}"]`);
  if (!old) {
    renderCalls();
    return;
  }
  old.replaceWith(row(c));
}

function row(c) {
  const ended = c.state === "ended";
  const busy = ended || !!c.pending;
  const live = c.state === "live" || c.state === "hold";
  const button = (cls, label, method, path, disabled) =>
    el("button", {
      type: "button",
      class: cls,
      "aria-label": label + " call " + c.id,
      disabled: disabled || busy,
      onclick: () => act(c.id, method, path, label),
    }, label);
  const actions = el("td", { class: "actions" },
    c.local_hold
      ? button("unhold", "Unhold", "DELETE", "/hold", !live)
      : button("hold", "Hold", "POST", "/hold", !live),
    c.video
      ? button("video-remove", "Remove video", "DELETE", "/video", !live)
      : button("video-add", "Add video", "POST", "/video", !live),
    button("hangup", "Hang up", "DELETE", "", false));
  const stateText = c.state + (c.pending ? " (" + c.pending + "…)" : "") + (ended && c.end_reason ? " (" + c.end_reason + ")" : "");
  return el("tr", { "data-call": c.id, "data-state": c.state, "data-local-hold": String(!!c.local_hold), "data-remote-hold": String(!!c.remote_hold) },
    el("th", { scope: "row" }, el("a", { href: "#/calls/" + encodeURIComponent(c.id) }, c.id)),
    el("td", {}, c.direction),
    el("td", { class: "remote" }, c.remote_uri || ""),
    el("td", { class: "state" }, stateText),
    el("td", { class: "hold" }, holdText(c)),
    el("td", { class: "codec" }, c.audio && c.audio.codec ? c.audio.codec : "—"),
    el("td", { class: "video" }, c.video ? (c.video.codec || "yes") + " " + c.video.direction : "none"),
    actions);
}

async function act(id, method, path, label) {
  const msg = $("#calls-msg");
  msg.textContent = label + " " + id + "…";
  const before = eventCount(id);
  try {
    const call = await api(method, "/v1/calls/" + encodeURIComponent(id) + path);
    if (call && call.id) {
      takeCall(call, before);
      if (state.page && state.page.name === "calls") renderRow(state.calls.get(call.id));
    }
    msg.textContent = label + " " + id + ": done";
  } catch (err) {
    if (!(err instanceof AuthError)) msg.textContent = label + " " + id + " failed: " + err.message;
  }
}

async function placeCall(ev) {
  ev.preventDefault();
  const msg = $("#calls-msg");
  const body = { to: $("#to").value.trim(), video: $("#video").checked };
  if ($("#media").value) body.media = $("#media").value;
  msg.textContent = "Calling " + body.to + "…";
  try {
    const call = await api("POST", "/v1/calls", body);
    takeCall(call, 0);
    renderCalls();
    msg.textContent = "Call " + call.id + " placed to " + body.to;
  } catch (err) {
    if (!(err instanceof AuthError)) msg.textContent = "Call failed: " + err.message;
  }
}

// ---- call page ----

function renderCallInfo(c) {
  if (!c) return;
  const dl = $("#call-info");
  dl.replaceChildren();
  const add = (k, v) => dl.append(el("dt", {}, k), el("dd", {}, v));
  add("state", c.state + (c.pending ? " (" + c.pending + "…)" : ""));
  add("hold", holdText(c));
  add("remote", c.remote_uri || "");
  add("SIP Call-ID", c.sip_call_id || "");
  if (c.audio) add("audio", [c.audio.codec, c.audio.direction, c.audio.local_rtp + " ⇄ " + (c.audio.remote_rtp || "?")].join(" "));
  add("video", c.video ? [c.video.codec, c.video.direction].join(" ") : "none");
  if (c.end_reason) add("ended", c.end_reason + (c.sip_status ? " (SIP " + c.sip_status + ")" : ""));
}

function timeOf(t) {
  const d = new Date(t);
  return isNaN(d) ? t : d.toISOString().slice(11, 23);
}

function renderTimeline(id) {
  const ol = $("#timeline");
  ol.replaceChildren();
  for (const ev of state.events.get(id) || []) {
    const extra = [];
    for (const k of ["reason", "sip_status", "by", "digit"]) {
      if (ev[k] !== undefined && ev[k] !== "") extra.push(k + " " + ev[k]);
    }
    ol.append(el("li", { "data-type": ev.type },
      el("time", { datetime: ev.time }, timeOf(ev.time)), " ",
      el("strong", {}, ev.type),
      extra.length ? " (" + extra.join(", ") + ")" : ""));
  }
  if (!ol.children.length) ol.append(el("li", {}, "No events seen for this call."));
}

// refreshLadderSoon reloads the ladder now and once more shortly after: an
// event can come before the last message of its exchange (the ACK) went out.
function refreshLadderSoon() {
  loadLadder();
  clearTimeout(state.ladderTimer);
  state.ladderTimer = setTimeout(loadLadder, 700);
}

async function loadLadder() {
  const page = state.page;
  if (!page || page.name !== "call") return;
  try {
    const res = await api("GET", "/v1/calls/" + encodeURIComponent(page.id) + "/sip", undefined, true);
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      $("#call-msg").textContent = data.error || res.statusText;
      return;
    }
    const dropped = Number(res.headers.get("X-Uad-Dropped-Messages") || 0);
    const msgs = await res.json();
    if (state.page !== page) return;
    $("#dropped").textContent = dropped ? dropped + " older messages were dropped." : "";
    drawLadder(msgs);
  } catch (err) {
    if (!(err instanceof AuthError)) $("#call-msg").textContent = "ladder: " + err.message;
  }
}

function drawLadder(msgs) {
  const box = $("#ladder");
  box.replaceChildren();
  if (!msgs.length) {
    box.append(el("p", {}, "No SIP messages kept for this call."));
    return;
  }
  // Participants: uad's addresses first, then the peers', as they appear.
  const cols = [];
  const local = new Set(msgs.map((m) => (m.dir === "out" ? m.src : m.dst)));
  for (const a of local) cols.push(a);
  for (const m of msgs) {
    for (const a of [m.src, m.dst]) if (!cols.includes(a)) cols.push(a);
  }
  const colW = 340;
  const rowH = 34;
  const top = 50;
  const width = Math.max(2, cols.length) * colW;
  const height = top + msgs.length * rowH + 20;
  const x = (a) => colW / 2 + cols.indexOf(a) * colW;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "SIP ladder" });
  root.append(svg("title", {}, "SIP ladder: " + msgs.length + " messages"));
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
  defs.append(marker);
  root.append(defs);
  cols.forEach((a) => {
    const name = local.has(a) ? "uad " + a : "peer " + a;
    root.append(svg("text", { x: x(a), y: 20, class: "col", "text-anchor": "middle" }, name));
    root.append(svg("line", { x1: x(a), y1: 30, x2: x(a), y2: height, class: "lifeline" }));
  });
  const t0 = Date.parse(msgs[0].time);
  msgs.forEach((m, i) => {
    const y = top + i * rowH + 16;
    const x1 = x(m.src);
    const x2 = x(m.dst);
    const kind = /\(hold:/.test(m.summary) ? "hold" : /\(resume:/.test(m.summary) ? "resume" : /port 0/.test(m.summary) ? "port0" : "";
    const secs = ((Date.parse(m.time) - t0) / 1000).toFixed(3);
    const label = `${m.summary}  +${secs}s`;
    const g = svg("g", {
      class: "msg " + kind + " " + m.dir,
      tabindex: 0,
      role: "button",
      "data-index": i,
      "data-summary": m.summary,
      "aria-label": `${i + 1}: ${m.dir === "out" ? "sent" : "received"} ${m.summary} at +${secs} s, ${m.src} to ${m.dst}`,
    });
    g.append(svg("title", {}, `${m.time} ${m.transport} ${m.src} → ${m.dst}`));
    g.append(svg("rect", { x: Math.min(x1, x2), y: y - 22, width: Math.abs(x2 - x1) || 40, height: rowH - 2, class: "hit" }));
    g.append(svg("line", { x1, y1: y, x2, y2: y, class: "arrow", "marker-end": "url(#arrow)" }));
    g.append(svg("text", { x: (x1 + x2) / 2, y: y - 6, "text-anchor": "middle", class: "label" }, label));
    const open = () => showMessage(m, i);
    g.addEventListener("click", open);
    g.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        open();
      }
    });
    root.append(g);
  });
  box.append(root);
}

// showMessage shows one message whole, its SDP set apart and the lines that
// hold or drop a stream marked (in words too, not by colour alone).
function showMessage(m, i) {
  $("#message").hidden = false;
  $("#message-title").textContent = `#${i + 1} ${m.dir === "out" ? "sent" : "received"} ${m.summary} — ${m.time} ${m.transport} ${m.src} → ${m.dst}`;
  const pre = $("#raw");
  pre.replaceChildren();
  const lines = m.raw.split("\r\n");
  let inBody = false;
  for (const line of lines) {
    if (!inBody && line === "") {
      inBody = true;
      pre.append("\n");
      continue;
    }
    const sdp = inBody && m.sdp;
    const holdLine = sdp && /^a=(sendonly|recvonly|inactive)$|^c=IN IP[46] (0\.0\.0\.0|::)$/.test(line);
    const port0 = sdp && /^m=\S+ 0 /.test(line);
    if (holdLine || port0) {
      pre.append(el("mark", { class: holdLine ? "hold" : "port0" }, line), " ← " + (holdLine ? "hold" : "stream off") + "\n");
    } else if (sdp) {
      pre.append(el("span", { class: "sdp" }, line), "\n");
    } else {
      pre.append(line + "\n");
    }
  }
  $("#message").scrollIntoView({ block: "nearest" });
}

// ---- media stats ----

function startStats(id) {
  stopStats();
  state.stats = { id, samples: [], timer: setInterval(() => sampleStats(id), STATS_EVERY_MS) };
  sampleStats(id);
}

function stopStats() {
  if (state.stats) clearInterval(state.stats.timer);
  state.stats = null;
}

async function sampleStats(id) {
  try {
    const before = eventCount(id);
    const c = await api("GET", "/v1/calls/" + encodeURIComponent(id));
    const s = state.stats;
    if (!s || s.id !== id) return;
    takeCall(c, before);
    renderCallInfo(state.calls.get(c.id));
    s.samples.push({ t: Date.now(), audio: c.audio && c.audio.stats, video: c.video && c.video.stats });
    if (s.samples.length > STATS_KEEP) s.samples.shift();
    renderStats(s.samples);
    if (c.state === "ended") stopStats();
  } catch (err) {
    if (err instanceof AuthError) stopStats();
  }
}

function renderStats(samples) {
  const box = $("#stats");
  box.replaceChildren();
  const series = [
    ["packets received", (st) => st.packets_received],
    ["packets sent", (st) => st.packets_sent],
    ["packets lost", (st) => st.packets_lost],
    ["jitter (ms)", (st) => st.jitter_ms],
  ];
  for (const stream of ["audio", "video"]) {
    if (!samples.some((s) => s[stream])) continue;
    const fig = el("figure", { class: "stream" }, el("figcaption", {}, stream));
    for (const [name, pick] of series) {
      const values = samples.map((s) => (s[stream] ? Number(pick(s[stream])) || 0 : null));
      fig.append(chart(stream + " " + name, values));
    }
    box.append(fig);
  }
  if (!box.children.length) box.append(el("p", {}, "No media statistics yet."));
}

function chart(name, values) {
  const w = 220;
  const h = 48;
  const known = values.filter((v) => v !== null);
  const last = known.length ? known[known.length - 1] : 0;
  const hi = Math.max(1, ...known);
  const lo = Math.min(0, ...known);
  const pts = [];
  values.forEach((v, i) => {
    if (v === null) return;
    const px = values.length > 1 ? (i / (values.length - 1)) * (w - 4) + 2 : w / 2;
    const py = h - 4 - ((v - lo) / (hi - lo || 1)) * (h - 8);
    pts.push(px.toFixed(1) + "," + py.toFixed(1));
  });
  const lastText = Number.isInteger(last) ? String(last) : last.toFixed(2);
  const s = svg("svg", { width: w, height: h, viewBox: `0 0 ${w} ${h}`, role: "img", "aria-label": `${name}: now ${lastText}, highest ${hi}` });
  s.append(svg("rect", { x: 0, y: 0, width: w, height: h, class: "chart-bg" }));
  s.append(svg("polyline", { points: pts.join(" "), class: "chart-line" }));
  if (pts.length) {
    const [cx, cy] = pts[pts.length - 1].split(",");
    s.append(svg("circle", { cx, cy, r: 2.5, class: "chart-dot" }));
  }
  return el("div", { class: "chart" }, el("span", { class: "chart-name" }, name + ": " + lastText), s);
}

// ---- pcap ----

async function downloadPcap(ev) {
  if (!state.token) return; // a plain link does, with no header needed
  ev.preventDefault();
  const id = state.page.id;
  try {
    const res = await api("GET", "/v1/calls/" + encodeURIComponent(id) + "/pcap", undefined, true);
    if (!res.ok) throw new Error(res.status + " " + res.statusText);
    const url = URL.createObjectURL(await res.blob());
    const a = el("a", { href: url, download: "uad-call-" + id + ".pcap" });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (err) {
    if (!(err instanceof AuthError)) $("#call-msg").textContent = "pcap: " + err.message;
  }
}

// ---- pages ----

async function route() {
  const m = location.hash.match(/^#\/calls\/(.+)$/);
  const page = m ? { name: "call", id: decodeURIComponent(m[1]) } : { name: "calls" };
  state.page = page;
  stopStats();
  $("#auth").hidden = true;
  $("#calls-page").hidden = page.name !== "calls";
  $("#call-page").hidden = page.name !== "call";
  if (page.name === "calls") {
    renderCalls();
    return;
  }
  $("#call-id").textContent = page.id;
  $("#pcap").href = "/v1/calls/" + encodeURIComponent(page.id) + "/pcap";
  $("#pcap").setAttribute("download", "uad-call-" + page.id + ".pcap");
  $("#message").hidden = true;
  $("#call-msg").textContent = "";
  $("#ladder").replaceChildren();
  $("#stats").replaceChildren();
  renderCallInfo(state.calls.get(page.id));
  renderTimeline(page.id);
  loadLadder();
  startStats(page.id);
}

async function start() {
  try {
    const calls = await api("GET", "/v1/calls");
    for (const c of calls) takeCall(c, eventCount(c.id));
  } catch (err) {
    if (!(err instanceof AuthError)) $("#conn").textContent = "uad did not answer: " + err.message;
    return;
  }
  startStream();
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    state.token = $("#token").value.trim();
    sessionStorage.setItem("uad-token", state.token);
    $("#token").value = "";
    start();
  });
  $("#new-call").addEventListener("submit", placeCall);
  $("#pcap").addEventListener("click", downloadPcap);
  window.addEventListener("hashchange", route);
  start();
});
