// Written by scripts/console-embed from console/; do not edit.
extension ConsoleAssets {
    public static let indexHTML = ##"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>reachd console</title>
<link rel="stylesheet" href="/console/console.css">
<script src="/console/console.js" defer></script>
</head>
<body data-scope="none">
<header class="top">
  <span class="brand">reachd</span>
  <nav id="nav" hidden>
    <a href="#/campaigns" data-page="campaigns">Campaigns</a>
    <a href="#/new" data-page="new" class="write">New campaign</a>
    <a href="#/triggers" data-page="triggers">Triggers</a>
    <a href="#/dead-letters" data-page="dead-letters">Dead letters</a>
    <a href="#/channels" data-page="channels">Channels</a>
    <a href="#/health" data-page="health">Health</a>
  </nav>
  <span class="who" id="who" hidden><span id="scope"></span> <button type="button" id="logout">Log out</button></span>
</header>

<section id="login" class="card narrow" hidden>
  <h1>Sign in</h1>
  <p>Paste an API token from <code>auth.tokens</code>. It is kept in this tab's session storage only
     and sent as an <code>Authorization</code> header, never in a URL.</p>
  <form id="login-form" method="post" action="#" autocomplete="off">
    <label>Token <input id="token" name="token" type="password" required autocomplete="off" spellcheck="false"></label>
    <button type="submit" id="login-button">Sign in</button>
  </form>
  <p class="error" id="login-error" role="alert"></p>
</section>

<main id="main" hidden>
  <div id="flash" class="flash" role="status"></div>
  <div id="page"></div>
</main>
</body>
</html>
"""##
    public static let stylesheet = ##"""
/* reachd console: no framework, no inline styles (the CSP forbids them). */
:root {
  --bg: #f5f6f8; --card: #fff; --ink: #1d2330; --muted: #6b7385; --line: #dde1e8;
  --accent: #2f6fde; --ok: #1f8a4c; --warn: #c27c0e; --bad: #c93434;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); }
[hidden] { display: none !important; }
body[data-scope="read"] .write { display: none !important; }

.top { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #18202e; color: #fff; }
.brand { font-weight: 700; font-size: 17px; letter-spacing: .3px; }
nav { display: flex; gap: 4px; flex: 1; flex-wrap: wrap; }
nav a { color: #c9d3e6; text-decoration: none; padding: 6px 10px; border-radius: 6px; }
nav a:hover { background: #273247; color: #fff; }
nav a.active { background: var(--accent); color: #fff; }
.who { color: #c9d3e6; display: flex; gap: 10px; align-items: center; }
.who button { background: transparent; color: #c9d3e6; border-color: #45516a; }

main { padding: 20px 24px 48px; max-width: 1280px; margin: 0 auto; }
h1 { font-size: 20px; margin: 4px 0 16px; }
h2 { font-size: 15px; margin: 20px 0 8px; color: var(--muted); text-transform: uppercase; letter-spacing: .5px; }
code { background: #eef1f6; padding: 1px 4px; border-radius: 4px; }

.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 16px 20px; margin-bottom: 16px; }
.narrow { max-width: 520px; margin: 60px auto; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.stat { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px 14px; }
.stat .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .4px; }
.stat .value { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }

table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line); border-radius: 10px; overflow: hidden; }
th, td { text-align: left; padding: 7px 10px; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { background: #f0f2f6; font-weight: 600; font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .4px; }
tr:last-child td { border-bottom: 0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { max-width: 360px; overflow-wrap: anywhere; }
.empty { color: var(--muted); padding: 16px; text-align: center; }

.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #e6e9ef; color: #3b4457; }
.badge.running, .badge.live, .badge.closed, .badge.ok, .badge.enabled { background: #dcf3e5; color: var(--ok); }
.badge.paused, .badge.scheduled, .badge.half_open { background: #fbefd9; color: var(--warn); }
.badge.failed, .badge.cancelled, .badge.open, .badge.bad, .badge.disabled { background: #f9dede; color: var(--bad); }
.badge.done { background: #dde8fb; color: var(--accent); }

.bar { position: relative; height: 16px; min-width: 120px; background: #e6e9ef; border-radius: 8px; overflow: hidden; }
.bar .fill { position: absolute; left: 0; top: 0; bottom: 0; width: 0; background: var(--accent); transition: width .4s; }
.bar.big { height: 22px; }
.bar .text { position: absolute; inset: 0; font-size: 11px; line-height: 16px; text-align: center; color: #111; font-weight: 600; }
.bar.big .text { line-height: 22px; font-size: 12px; }
.bar.indeterminate .fill { background: repeating-linear-gradient(45deg, #8fb1ee 0 10px, #a9c3f2 10px 20px); }

form.stack { display: grid; gap: 12px; }
form.stack .row { display: grid; grid-template-columns: 180px 1fr; gap: 12px; align-items: start; }
form.stack .row > label { padding-top: 6px; color: var(--muted); font-weight: 600; }
.inline { display: flex; gap: 10px; flex-wrap: wrap; align-items: center; }
.filters { display: flex; gap: 10px; flex-wrap: wrap; align-items: end; margin-bottom: 12px; }
.filters label { display: grid; gap: 2px; color: var(--muted); font-size: 12px; }
input, select, textarea { font: inherit; padding: 6px 8px; border: 1px solid #c5cbd6; border-radius: 6px; background: #fff; color: var(--ink); }
textarea { width: 100%; min-height: 70px; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 13px; }
input[type="text"], input[type="password"], input:not([type]) { min-width: 240px; }
input[type="number"] { width: 90px; }
label input[type="password"] { width: 100%; margin-top: 4px; }
button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid #b7bfcc; background: #fff; color: var(--ink); cursor: pointer; }
button:hover { background: #f0f3f8; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
button.primary:hover { background: #265dc0; }
button.danger { color: var(--bad); border-color: #e3b1b1; }
button:disabled { opacity: .5; cursor: default; }
.actions { display: flex; gap: 8px; }

.flash { min-height: 0; }
.flash .msg { padding: 8px 12px; border-radius: 8px; margin-bottom: 12px; background: #dcf3e5; color: #145a32; }
.flash .msg.error { background: #f9dede; color: #7d1d1d; }
.error { color: var(--bad); }
.muted { color: var(--muted); }
.sample { display: flex; gap: 6px; flex-wrap: wrap; margin-top: 6px; }
.sample span { background: #eef1f6; border-radius: 4px; padding: 1px 6px; font-family: ui-monospace, monospace; font-size: 12px; }
.split { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
canvas.spark { width: 100%; height: 60px; display: block; }
a { color: var(--accent); }
"""##
    public static let script = ##"""
// reachd operator console. Plain JavaScript, no build step, no dependencies.
//
// Safe by construction:
// - every value from the API is put into the page with textContent (el()),
//   never parsed as HTML (no HTML-parsing DOM sink is used; ConsoleTests checks);
// - the page is served with a strict Content-Security-Policy (script-src 'self'),
//   so even markup that slipped through could not run;
// - the token lives in sessionStorage and travels only in the Authorization
//   header; it never appears in a URL, and the login form posts nowhere;
// - a read token hides the write controls (body[data-scope=read] .write),
//   and the API refuses them with 403 anyway.
"use strict";

const TOKEN_KEY = "reachd.token";
const state = { scope: "none", timer: null, channels: [], history: new Map() };

// ---------------------------------------------------------------- DOM helpers

/** Builds an element: attributes (class, data-*, properties) and children (strings become text nodes). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (key.startsWith("data-") || key === "for" || key === "name" || key === "type" || key === "placeholder" ||
             key === "min" || key === "max" || key === "step" || key === "autocomplete" || key === "id" || key === "colspan")
      node.setAttribute(key, value === true ? "" : String(value));
    else node[key] = value;
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));
const when = (s) => (s ? s.replace("T", " ").replace(/\.\d+Z$/, "Z") : "—");
const badge = (text, kind) => el("span", { class: "badge " + (kind || text) }, text);

function flash(message, isError, fromRefresh) {
  const box = $("flash");
  box.replaceChildren(el("div", { class: "msg" + (isError ? " error" : ""), "data-testid": "flash", "data-refresh": fromRefresh ? "1" : null }, message));
  if (!isError) setTimeout(() => { if (box.firstChild && box.firstChild.textContent === message) box.replaceChildren(); }, 6000);
}

function progressBar(done, total, big) {
  const bar = el("div", { class: "bar" + (big ? " big" : "") + (total ? "" : " indeterminate") });
  const fill = el("div", { class: "fill" });
  const pct = total ? Math.min(100, Math.floor((done * 100) / total)) : 0;
  fill.style.width = (total ? pct : 100) + "%";  // CSSOM, allowed by the CSP (no style attribute in markup)
  bar.append(fill, el("div", { class: "text", "data-testid": "progress-text" }, total ? pct + " %" : fmt(done) + " so far"));
  bar.dataset.percent = total ? String(pct) : "";
  return bar;
}

// ---------------------------------------------------------------- API

class APIError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json", Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) };
  const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, "network", "reachd did not answer: " + e.message);
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || {};
    if (response.status === 401 && path !== "/v1/audit?limit=1") signOut("The token was refused (401): sign in again.");
    throw new APIError(response.status, error.code || "http_" + response.status,
                       error.message || "HTTP " + response.status, error.field);
  }
  return data;
}

function describe(error) {
  return error.field ? error.message + " (field " + error.field + ")" : error.message;
}

// ---------------------------------------------------------------- sign-in

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await api("GET", "/v1/campaigns?limit=1");
  } catch (e) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw e;
  }
  // A read token may not list the audit log (write scope): that tells the scope without trying a write.
  try {
    await api("GET", "/v1/audit?limit=1");
    state.scope = "write";
  } catch (e) {
    if (e.status !== 403) throw e;
    state.scope = "read";
  }
  document.body.dataset.scope = state.scope;
  $("scope").textContent = state.scope === "write" ? "operator (write)" : "viewer (read only)";
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("main").hidden = false;
  try { state.channels = (await api("GET", "/v1/channels")).items; } catch (_) { state.channels = []; }
  route();
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  stopTimer();
  state.scope = "none";
  document.body.dataset.scope = "none";
  $("nav").hidden = true;
  $("who").hidden = true;
  $("main").hidden = true;
  $("page").replaceChildren();
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  $("token").value = "";
  $("token").focus();
}

// ---------------------------------------------------------------- routing

function stopTimer() {
  if (state.timer) clearInterval(state.timer);
  state.timer = null;
}

/** Renders a page now and refreshes it every `ms` while it is shown. */
function every(ms, render) {
  stopTimer();
  let busy = false;
  const tick = async () => {
    if (busy) return;
    busy = true;
    try {
      await render();
      // A refresh that failed before (say, a campaign not consumed yet) and works now takes its error away.
      for (const stale of document.querySelectorAll("#flash [data-refresh]")) stale.remove();
    } catch (e) { flash(describe(e), true, true); } finally { busy = false; }
  };
  tick();
  state.timer = setInterval(tick, ms);
}

function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return signOut();
  stopTimer();
  $("flash").replaceChildren();
  const parts = (location.hash || "#/campaigns").slice(2).split("/").map(decodeURIComponent);
  const page = parts[0] || "campaigns";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === page);
  const view = { campaigns: parts[1] ? () => campaignPage(parts.slice(1).join("/")) : campaignsPage, new: newCampaignPage,
                 triggers: triggersPage, "dead-letters": deadLettersPage, channels: channelsPage, health: healthPage }[page];
  (view || campaignsPage)();
}

function show(...nodes) {
  $("page").replaceChildren(...nodes);
}

// ---------------------------------------------------------------- campaigns

function percentOf(c) {
  if (c.state === "done") return { done: 1, total: 1 };
  const p = c.progress || {};
  return { done: p.done || 0, total: p.total || null };
}

function campaignsPage() {
  const stateFilter = el("select", { id: "state-filter", on: { change: () => refresh() } },
    el("option", { value: "" }, "every state"),
    ...["scheduled", "running", "paused", "done", "cancelled", "failed"].map((s) => el("option", { value: s }, s)));
  const body = el("tbody");
  show(el("h1", {}, "Campaigns"),
       el("div", { class: "filters" }, el("label", {}, "State", stateFilter),
          el("a", { href: "#/new", class: "write" }, el("button", { class: "primary", type: "button" }, "New campaign"))),
       el("table", { "data-testid": "campaigns" },
          el("thead", {}, el("tr", {}, ["Campaign", "Name", "State", "Progress", "msg/s", "Sent", "Failed", "Dead", "Skipped", "Created"]
            .map((h, i) => el("th", { class: i >= 4 && i <= 8 ? "num" : "" }, h)))), body));
  const refresh = async () => {
    const query = stateFilter.value ? "?limit=50&state=" + encodeURIComponent(stateFilter.value) : "?limit=50";
    const page = await api("GET", "/v1/campaigns" + query);
    body.replaceChildren(...(page.items.length ? page.items.map((c) => {
      const p = percentOf(c);
      return el("tr", { "data-campaign": c.id },
        el("td", { class: "wrap" }, el("a", { href: "#/campaigns/" + encodeURIComponent(c.id) }, c.id)),
        el("td", { class: "wrap", "data-testid": "campaign-name" }, c.name || ""),
        el("td", {}, badge(c.state)),
        el("td", {}, progressBar(p.done, p.total)),
        el("td", { class: "num" }, c.throughput_per_second == null ? "—" : fmt(Math.round(c.throughput_per_second))),
        el("td", { class: "num" }, fmt(c.counters.sent)), el("td", { class: "num" }, fmt(c.counters.failed)),
        el("td", { class: "num" }, fmt(c.counters.dead)), el("td", { class: "num" }, fmt(c.counters.skipped)),
        el("td", {}, when(c.created_at)));
    }) : [el("tr", {}, el("td", { colspan: 10, class: "empty" }, "No campaigns yet."))]));
  };
  every(2000, refresh);
}

/** Messages per second from the client's own samples of `done` (the last 60 s), drawn as a sparkline. */
function rate(id, done) {
  const now = Date.now();
  const samples = state.history.get(id) || [];
  samples.push([now, done]);
  while (samples.length > 2 && now - samples[0][0] > 60000) samples.shift();
  state.history.set(id, samples);
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i][0] - samples[i - 1][0]) / 1000;
    if (dt > 0) rates.push(Math.max(0, (samples[i][1] - samples[i - 1][1]) / dt));
  }
  return rates;
}

function sparkline(rates) {
  const canvas = el("canvas", { class: "spark", width: 600, height: 60 });
  const g = canvas.getContext("2d");
  const max = Math.max(1, ...rates);
  g.strokeStyle = "#2f6fde";
  g.lineWidth = 2;
  g.beginPath();
  rates.forEach((r, i) => {
    const x = rates.length > 1 ? (i * 598) / (rates.length - 1) + 1 : 1;
    const y = 58 - (r / max) * 54;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.stroke();
  return canvas;
}

function countsTable(title, object) {
  const rows = Object.entries(object || {}).sort((a, b) => b[1] - a[1]);
  return el("div", {}, el("h2", {}, title),
    el("table", {}, el("tbody", {}, rows.length ? rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, fmt(v))))
                                                : el("tr", {}, el("td", { class: "empty" }, "none")))));
}

function channelSplit(channels) {
  const names = Object.keys(channels || {}).sort();
  const statuses = [...new Set(names.flatMap((n) => Object.keys(channels[n])))].sort();
  return el("div", {}, el("h2", {}, "By channel"),
    el("table", { "data-testid": "channel-split" },
      el("thead", {}, el("tr", {}, el("th", {}, "Channel"), statuses.map((s) => el("th", { class: "num" }, s)))),
      el("tbody", {}, names.length ? names.map((n) => el("tr", {}, el("td", {}, n),
        statuses.map((s) => el("td", { class: "num" }, fmt(channels[n][s] || 0)))))
        : el("tr", {}, el("td", { class: "empty" }, "no rows yet")))));
}

function campaignPage(id) {
  const path = "/v1/campaigns/" + encodeURIComponent(id);
  const control = (verb) => async () => {
    try {
      if (verb === "cancel" && !confirm("Cancel campaign " + id + "? Its remaining users are skipped.")) return;
      const result = await api("POST", path + "/" + verb);
      flash("Campaign " + id + " is " + result.state + ".");
      await refresh();
    } catch (e) { flash(describe(e), true); }
  };
  const buttons = {
    pause: el("button", { type: "button", class: "write", "data-action": "pause", on: { click: control("pause") } }, "Pause"),
    resume: el("button", { type: "button", class: "write", "data-action": "resume", on: { click: control("resume") } }, "Resume"),
    cancel: el("button", { type: "button", class: "write danger", "data-action": "cancel", on: { click: control("cancel") } }, "Cancel"),
  };
  const title = el("h1", { "data-testid": "campaign-title" }, id);
  const content = el("div");
  show(el("p", {}, el("a", { href: "#/campaigns" }, "← all campaigns")), title,
       el("div", { class: "actions" }, buttons.pause, buttons.resume, buttons.cancel), content);
  const refresh = async () => {
    const c = await api("GET", path);
    title.textContent = c.name ? c.name + " (" + c.id + ")" : c.id;
    const open = ["scheduled", "running", "paused"].includes(c.state);
    buttons.pause.disabled = !["scheduled", "running"].includes(c.state);
    buttons.resume.disabled = c.state !== "paused";
    buttons.cancel.disabled = !open;
    const p = percentOf(c);
    const rates = rate(c.id, (c.progress || {}).done || 0);
    const current = c.state === "running" && rates.length ? Math.round(rates[rates.length - 1]) : null;
    content.replaceChildren(
      el("div", { class: "card" },
        el("div", { class: "inline" }, badge(c.state), el("span", { "data-testid": "campaign-state", class: "muted" }, c.state),
           c.error ? el("span", { class: "error" }, c.error) : null),
        el("p", {}, progressBar(p.done, p.total, true)),
        el("p", { class: "muted" }, fmt((c.progress || {}).done) + " of " + (c.progress && c.progress.total != null ? fmt(c.progress.total) : "?") +
           " users settled · " + fmt((c.progress || {}).rows) + " with a row · created " + when(c.created_at) +
           (c.started_at ? " · started " + when(c.started_at) : "") + (c.finished_at ? " · finished " + when(c.finished_at) : "") +
           (c.scheduled_at ? " · scheduled " + when(c.scheduled_at) : ""))),
      el("div", { class: "grid" },
        [["msg/s now", current == null ? "—" : fmt(current)], ["msg/s average", c.throughput_per_second == null ? "—" : fmt(Math.round(c.throughput_per_second))],
         ["targeted", fmt(c.counters.targeted)], ["sent", fmt(c.counters.sent)], ["failed", fmt(c.counters.failed)],
         ["dead", fmt(c.counters.dead)], ["skipped", fmt(c.counters.skipped)]]
          .map(([label, value]) => el("div", { class: "stat" }, el("div", { class: "label" }, label), el("div", { class: "value" }, value)))),
      el("h2", {}, "Messages per second (this page's samples)"), el("div", { class: "card" }, sparkline(rates)),
      el("div", { class: "split" }, channelSplit(c.channels), el("div", {}, countsTable("By status", c.statuses), countsTable("Skipped and dead, by reason", c.reasons))));
  };
  every(1000, refresh);
}

// ---------------------------------------------------------------- new campaign

function weightInputs(prefix, weights) {
  return el("div", { class: "inline" }, state.channels.map((ch, i) =>
    el("label", {}, ch.name + " ", el("input", { type: "number", min: 0, name: prefix + ch.name, "data-channel": ch.name,
                                                 value: weights ? String(weights[ch.name] || 0) : i === 0 ? "100" : "0" }))));
}

function readWeights(container) {
  const weights = {};
  for (const input of container.querySelectorAll("input[data-channel]")) {
    const n = parseInt(input.value, 10);
    if (n > 0) weights[input.dataset.channel] = n;
  }
  return weights;
}

const row = (label, ...control) => el("div", { class: "row" }, el("label", {}, label), el("div", {}, ...control));

function segmentFrom(kind, text) {
  if (kind === "id") return { id: text.trim() };
  if (kind === "user_ids") return { user_ids: text.split(/[\s,]+/).filter(Boolean) };
  try { return { rule: JSON.parse(text) }; } catch (e) { throw new APIError(400, "invalid_request", "the rule is not JSON: " + e.message, "segment.rule"); }
}

function newCampaignPage() {
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\..*/, "").replace("T", "-");
  const f = {
    id: el("input", { name: "campaign_id", value: "console-" + stamp, spellcheck: false }),
    name: el("input", { name: "name", placeholder: "what operators will see" }),
    kind: el("select", { name: "segment_kind" }, el("option", { value: "user_ids" }, "user ids"),
             el("option", { value: "id" }, "segment id"), el("option", { value: "rule" }, "rule (JSON)")),
    segment: el("textarea", { name: "segment", placeholder: "u1 u2 u3 … (spaces, commas or lines)" }),
    weights: weightInputs("w_"),
    fallback: el("input", { name: "fallback", placeholder: "channels to try next, comma separated" }),
    title: el("input", { name: "title", placeholder: "optional" }),
    body: el("textarea", { name: "body", value: "Hello {{user.name}}!" }),
    data: el("textarea", { name: "data", placeholder: "{} (optional JSON for the template's data)" }),
    delay: el("input", { type: "number", min: 0, name: "delay_seconds", placeholder: "0" }),
    expires: el("input", { name: "expires_at", placeholder: "RFC 3339, optional" }),
    quiet: el("input", { type: "checkbox", name: "quiet_hours", checked: true }),
  };
  const preview = el("div", { class: "muted", "data-testid": "preview" }, "Preview the segment before you send.");
  const previewButton = el("button", { type: "button", "data-action": "preview" }, "Preview segment");
  previewButton.addEventListener("click", async () => {
    preview.textContent = "counting…";
    try {
      const result = await api("POST", "/v1/segments/preview", { segment: segmentFrom(f.kind.value, f.segment.value) });
      preview.replaceChildren(el("div", {}, el("strong", { "data-testid": "preview-count" }, fmt(result.count)), " users match. Sample:"),
                              el("div", { class: "sample" }, result.sample.map((u) => el("span", {}, u))));
    } catch (e) { preview.replaceChildren(el("span", { class: "error" }, describe(e))); }
  });
  const form = el("form", { class: "stack card", method: "post", action: "#", autocomplete: "off" },
    row("Campaign id", f.id), row("Name", f.name), row("Segment", el("div", { class: "inline" }, f.kind), f.segment, el("p", {}, previewButton), preview),
    row("Channels (weights)", f.weights), row("Fallback", f.fallback), row("Title", f.title), row("Body (Mustache)", f.body),
    row("Data", f.data), row("Delay (seconds)", f.delay), row("Expires at", f.expires), row("Quiet hours", el("label", {}, f.quiet, " respect the users' quiet hours")),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", "data-action": "start" }, "Start campaign")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const task = { campaign_id: f.id.value.trim(), segment: segmentFrom(f.kind.value, f.segment.value), channels: readWeights(f.weights),
                     template: { body: f.body.value }, quiet_hours: f.quiet.checked };
      if (f.name.value) task.name = f.name.value;
      if (f.title.value) task.template.title = f.title.value;
      if (f.fallback.value.trim()) task.fallback = f.fallback.value.split(/[\s,]+/).filter(Boolean);
      if (f.data.value.trim()) {
        try { task.data = JSON.parse(f.data.value); } catch (e) { throw new APIError(400, "invalid_request", "data is not JSON: " + e.message, "data"); }
      }
      if (f.delay.value) task.schedule = { delay_seconds: parseInt(f.delay.value, 10) };
      if (f.expires.value.trim()) task.expires_at = f.expires.value.trim();
      const accepted = await api("POST", "/v1/campaigns", task);
      location.hash = "#/campaigns/" + encodeURIComponent(accepted.campaign_id);
      setTimeout(() => flash(accepted.existing ? "Campaign " + accepted.campaign_id + " already existed (" + accepted.state + ")."
                                               : "Campaign " + accepted.campaign_id + " accepted."), 0);
    } catch (e) { flash(describe(e), true); }
  });
  show(el("h1", {}, "New campaign"), form);
}

// ---------------------------------------------------------------- triggers

function triggerForm(existing, done) {
  const t = existing || {};
  const f = {
    id: el("input", { name: "id", value: t.id || "", readOnly: !!existing, spellcheck: false }),
    event: el("input", { name: "event", value: t.event || "", placeholder: "e.g. order.paid" }),
    weights: weightInputs("tw_", t.channels),
    fallback: el("input", { name: "fallback", value: (t.fallback || []).join(", ") }),
    title: el("input", { name: "title", value: (t.template && t.template.title) || "" }),
    body: el("textarea", { name: "body", value: (t.template && t.template.body) || "" }),
    delay: el("input", { type: "number", min: 0, name: "delay_seconds", value: String(t.delay_seconds || 0) }),
    quiet: el("input", { type: "checkbox", name: "quiet_hours", checked: t.quiet_hours !== false }),
    enabled: el("input", { type: "checkbox", name: "enabled", checked: t.enabled !== false }),
  };
  const form = el("form", { class: "stack card write", method: "post", action: "#", autocomplete: "off", "data-testid": "trigger-form" },
    el("h2", {}, existing ? "Edit rule " + t.id : "New rule"),
    row("Rule id", f.id), row("Event", f.event), row("Channels (weights)", f.weights), row("Fallback", f.fallback),
    row("Title", f.title), row("Body (Mustache)", f.body), row("Delay (seconds)", f.delay),
    row("Quiet hours", el("label", {}, f.quiet, " respect quiet hours")), row("Enabled", el("label", {}, f.enabled, " send on this event")),
    el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", "data-action": "save-trigger" }, existing ? "Save" : "Create"),
       el("button", { type: "button", on: { click: () => done(false) } }, "Close")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const rule = { id: f.id.value.trim(), event: f.event.value.trim(), channels: readWeights(f.weights),
                   template: { body: f.body.value }, delay_seconds: parseInt(f.delay.value || "0", 10),
                   quiet_hours: f.quiet.checked, enabled: f.enabled.checked };
    if (f.title.value) rule.template.title = f.title.value;
    if (f.fallback.value.trim()) rule.fallback = f.fallback.value.split(/[\s,]+/).filter(Boolean);
    try {
      if (existing) await api("PUT", "/v1/triggers/" + encodeURIComponent(rule.id), rule);
      else await api("POST", "/v1/triggers", rule);
      flash("Rule " + rule.id + " saved.");
      done(true);
    } catch (e) { flash(describe(e), true); }
  });
  return form;
}

function triggerBody(t, changes) {
  const body = { id: t.id, event: t.event, channels: t.channels, fallback: t.fallback, template: t.template,
                 delay_seconds: t.delay_seconds, quiet_hours: t.quiet_hours, enabled: t.enabled };
  return Object.assign(body, changes);
}

function triggersPage() {
  const slot = el("div");
  const body = el("tbody");
  const load = async () => {
    const page = await api("GET", "/v1/triggers?limit=500");
    body.replaceChildren(...(page.items.length ? page.items.map((t) => el("tr", { "data-trigger": t.id },
      el("td", {}, t.id), el("td", {}, t.event),
      el("td", {}, Object.entries(t.channels).map(([k, v]) => k + " " + v).join(", ")),
      el("td", { class: "num" }, fmt(t.delay_seconds)),
      el("td", {}, badge(t.enabled ? "enabled" : "disabled")),
      el("td", { class: "wrap" }, (t.template && t.template.body) || ""),
      el("td", {}, el("div", { class: "actions write" },
        el("button", { type: "button", "data-action": "toggle", on: { click: async () => {
          try { await api("PUT", "/v1/triggers/" + encodeURIComponent(t.id), triggerBody(t, { enabled: !t.enabled }));
                flash("Rule " + t.id + (t.enabled ? " disabled." : " enabled.")); await load(); } catch (e) { flash(describe(e), true); } } } },
          t.enabled ? "Disable" : "Enable"),
        el("button", { type: "button", "data-action": "edit", on: { click: () => slot.replaceChildren(triggerForm(t, close)) } }, "Edit"),
        el("button", { type: "button", class: "danger", "data-action": "delete", on: { click: async () => {
          if (!confirm("Delete rule " + t.id + "?")) return;
          try { await api("DELETE", "/v1/triggers/" + encodeURIComponent(t.id)); flash("Rule " + t.id + " deleted."); await load(); }
          catch (e) { flash(describe(e), true); } } } }, "Delete")))))
      : [el("tr", {}, el("td", { colspan: 7, class: "empty" }, "No trigger rules."))]));
  };
  const close = (changed) => { slot.replaceChildren(); if (changed) load().catch((e) => flash(describe(e), true)); };
  show(el("h1", {}, "Triggers"),
       el("div", { class: "filters" }, el("button", { type: "button", class: "primary write", "data-action": "new-trigger",
                                                   on: { click: () => slot.replaceChildren(triggerForm(null, close)) } }, "New rule")),
       slot,
       el("table", { "data-testid": "triggers" }, el("thead", {}, el("tr", {}, ["Rule", "Event", "Channels", "Delay (s)", "State", "Body", ""]
         .map((h) => el("th", {}, h)))), body));
  load().catch((e) => flash(describe(e), true));
}

// ---------------------------------------------------------------- dead letters

function deadLettersPage() {
  const f = {
    campaign: el("input", { name: "campaign", placeholder: "campaign id" }),
    channel: el("select", { name: "channel" }, el("option", { value: "" }, "any"), state.channels.map((c) => el("option", { value: c.name }, c.name))),
    source: el("select", { name: "source" }, el("option", { value: "" }, "any"), el("option", { value: "delivery" }, "delivery"), el("option", { value: "input" }, "input")),
    since: el("input", { name: "since", placeholder: "RFC 3339" }),
  };
  const body = el("tbody");
  const filters = () => {
    const q = {};
    if (f.campaign.value.trim()) q.campaign = f.campaign.value.trim();
    if (f.channel.value) q.channel = f.channel.value;
    if (f.since.value.trim()) q.since = f.since.value.trim();
    return q;
  };
  const load = async () => {
    const q = new URLSearchParams(filters());
    if (f.source.value) q.set("source", f.source.value);
    q.set("limit", "200");
    const page = await api("GET", "/v1/dead-letters?" + q.toString());
    body.replaceChildren(...(page.items.length ? page.items.map((d) => el("tr", { "data-dead-letter": String(d.id) },
      el("td", {}, el("input", { type: "checkbox", class: "write", "data-id": String(d.id), disabled: d.source !== "delivery" })),
      el("td", { class: "num" }, String(d.id)), el("td", {}, when(d.failed_at)), el("td", {}, d.source),
      el("td", { class: "wrap" }, d.campaign_id || "—"), el("td", {}, d.user_id || "—"), el("td", {}, d.channel || "—"),
      el("td", {}, d.reason), el("td", { class: "wrap" }, d.error || ""), el("td", { class: "num" }, fmt(d.attempts)),
      el("td", {}, d.replayed_at ? when(d.replayed_at) : "—")))
      : [el("tr", {}, el("td", { colspan: 11, class: "empty" }, "No dead letters match."))]));
  };
  const replay = async (request, what) => {
    try {
      const result = await api("POST", "/v1/dead-letters/replay", request);
      flash("Replayed " + fmt(result.replayed) + " " + what + ".");
      await load();
    } catch (e) { flash(describe(e), true); }
  };
  const form = el("form", { class: "filters", method: "post", action: "#", autocomplete: "off" },
    el("label", {}, "Campaign", f.campaign), el("label", {}, "Channel", f.channel), el("label", {}, "Source", f.source),
    el("label", {}, "Since", f.since), el("button", { type: "submit" }, "Filter"),
    el("button", { type: "button", class: "write", "data-action": "replay-selected", on: { click: () => {
      const ids = [...body.querySelectorAll("input[data-id]:checked")].map((c) => parseInt(c.dataset.id, 10));
      if (!ids.length) return flash("Select the dead letters to replay first.", true);
      replay({ ids }, ids.length === 1 ? "dead letter" : "dead letters");
    } } }, "Replay selected"),
    el("button", { type: "button", class: "write", "data-action": "replay-matching", on: { click: () => {
      const q = filters();
      if (!Object.keys(q).length) {
        if (!confirm("No filter is set: replay every dead delivery?")) return;
        q.all = true;
      }
      replay(q, "matching dead letters");
    } } }, "Replay all matching"));
  form.addEventListener("submit", (event) => { event.preventDefault(); load().catch((e) => flash(describe(e), true)); });
  show(el("h1", {}, "Dead letters"), form,
       el("table", { "data-testid": "dead-letters" }, el("thead", {}, el("tr", {},
         ["", "Id", "Failed at", "Source", "Campaign", "User", "Channel", "Reason", "Error", "Attempts", "Replayed"].map((h) => el("th", {}, h)))), body));
  load().catch((e) => flash(describe(e), true));
}

// ---------------------------------------------------------------- channels and health

function channelsPage() {
  const body = el("tbody");
  show(el("h1", {}, "Channels"),
       el("p", { class: "muted" }, "Pausing is cluster-wide: a paused channel's sends wait in the delay queue, none is dropped. " +
          "The breaker column is the view of the instance that answered."),
       el("table", { "data-testid": "channels" }, el("thead", {}, el("tr", {}, ["Channel", "Provider", "Switch", "Since", "Breaker", ""]
         .map((h) => el("th", {}, h)))), body));
  every(2000, async () => {
    const page = await api("GET", "/v1/channels");
    state.channels = page.items;
    body.replaceChildren(...page.items.map((c) => el("tr", { "data-channel": c.name },
      el("td", {}, c.name), el("td", {}, c.provider), el("td", {}, badge(c.paused ? "paused" : "live")),
      el("td", {}, when(c.paused_since)), el("td", {}, c.breaker ? badge(c.breaker) : "—"),
      el("td", {}, el("button", { type: "button", class: "write", "data-action": c.paused ? "resume" : "pause", on: { click: async () => {
        try { await api("POST", "/v1/channels/" + encodeURIComponent(c.name) + (c.paused ? "/resume" : "/pause"));
              flash("Channel " + c.name + (c.paused ? " resumed." : " paused.")); } catch (e) { flash(describe(e), true); } } } },
        c.paused ? "Resume" : "Pause")))));
  });
}

function healthPage() {
  const body = el("tbody");
  const summary = el("p");
  show(el("h1", {}, "Health"), summary,
       el("table", { "data-testid": "health" }, el("thead", {}, el("tr", {}, el("th", {}, "Dependency"), el("th", {}, "State"), el("th", {}, "Error"))), body));
  every(2000, async () => {
    const response = await fetch("/readyz", { cache: "no-store", credentials: "omit" });
    const report = await response.json();
    summary.replaceChildren(badge(report.ready ? "ok" : "bad"), " ", report.ready ? "ready: every dependency answers" : "not ready (HTTP " + response.status + ")");
    body.replaceChildren(...Object.keys(report.checks).sort().map((name) => {
      const check = report.checks[name];
      return el("tr", { "data-check": name }, el("td", {}, name), el("td", {}, badge(check.ok ? "ok" : "bad")), el("td", { class: "wrap" }, check.error || ""));
    }));
  });
}

// ---------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    $("login-error").textContent = "";
    try { await signIn(token); } catch (e) { signOut(e.status === 401 ? "That token is not valid." : describe(e)); }
  });
  $("logout").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", route);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) signIn(token).catch((e) => signOut(describe(e))); else signOut();
});
"""##
}
