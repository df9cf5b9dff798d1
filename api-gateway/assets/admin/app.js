// KyroDB admin page: vanilla JS, no dependencies. The admin key lives in
// sessionStorage and travels only as the X-API-Key header. Every value from
// the server is put into the page with textContent (never as HTML).
"use strict";

const KEY_STORAGE = "kyro.adminKey";
const POLL_MS = 5000;

// ------------------------------------------------------------------ helpers

function $(id) { return document.getElementById(id); }

/** An element with attributes (not `style`) and children (strings become text). */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
function fmtInt(n) { return n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"); }
function fmtMs(n) { return n === null || n === undefined ? "—" : (n < 10 ? n.toFixed(2) : n.toFixed(1)); }
function fmtPct(r) { return r === null || r === undefined ? "—" : (r * 100).toFixed(1) + "%"; }
function fmtBytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0; let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(1)) + " " + units[i];
}
function fmtTime(t) { return t ? t.replace("T", " ").replace("Z", " UTC") : "—"; }

function bar(ratio, extraClass) {
  const r = Math.max(0, Number(ratio) || 0);
  const fill = el("span", { class: extraClass || null });
  fill.style.width = Math.min(100, r * 100).toFixed(1) + "%";
  let cls = "bar";
  if (!extraClass) cls += r > 1 ? " over" : r >= 0.8 ? " warn" : "";
  return el("div", { class: cls, role: "meter", "aria-valuenow": r.toFixed(3) }, fill);
}

function flash(message, isError) {
  const node = $("flash");
  node.textContent = message;
  node.className = isError ? "error" : "";
  node.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { node.hidden = true; }, isError ? 8000 : 4000);
}

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

function adminKey() { return sessionStorage.getItem(KEY_STORAGE); }

async function api(method, path, body) {
  const headers = { "X-API-Key": adminKey() || "" };
  const init = { method, headers, credentials: "omit", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (!response.ok) {
    const err = (data && data.error) || {};
    if (response.status === 401) signOut("The key was refused: " + (err.message || "unauthenticated"));
    throw new ApiError(response.status, err.code || "http_" + response.status,
      (err.field ? err.field + ": " : "") + (err.message || response.statusText));
  }
  return data;
}

function reportError(e) {
  flash(e instanceof ApiError ? `${e.status} ${e.code}: ${e.message}` : String(e), true);
}

// ------------------------------------------------------------------ session and navigation

let pollTimer = null;

function signOut(message) {
  sessionStorage.removeItem(KEY_STORAGE);
  showLogin(message);
}

function showLogin(message) {
  $("nav").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== "view-login";
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  $("login-key").value = "";
  $("login-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const key = $("login-key").value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY_STORAGE, key);
  try {
    await api("GET", "/api/v1/admin/customers?limit=1");
  } catch (e) {
    sessionStorage.removeItem(KEY_STORAGE);
    let reason = String(e);
    if (e instanceof ApiError) {
      reason = e.status === 403 ? "This key has no admin scope."
        : e.status === 401 ? "The key was refused: " + e.message
        : `${e.status}: ${e.message}`;
    }
    showLogin(reason);
    return;
  }
  $("login-key").value = "";
  if (!location.hash || location.hash === "#login") location.hash = "#customers";
  else route();
}

function route() {
  if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
  if (!adminKey()) { showLogin(); return; }
  $("nav").hidden = false;
  const [name, arg] = (location.hash.slice(1) || "customers").split("/");
  const views = { customers: showCustomers, customer: showCustomer, audit: showAudit,
    engine: showEngine, latency: showLatency, search: showSearch };
  const show = views[name] || showCustomers;
  const viewId = "view-" + (views[name] ? name : "customers");
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== viewId;
  for (const link of document.querySelectorAll("#nav a")) {
    const target = link.dataset.view;
    link.classList.toggle("active", target === name || (name === "customer" && target === "customers"));
  }
  show(arg ? decodeURIComponent(arg) : undefined).catch(reportError);
}

// ------------------------------------------------------------------ customers

async function loadCustomers() {
  const list = await api("GET", "/api/v1/admin/customers");
  return list;
}

function quotaCell(c) {
  const used = c.usage.captures;
  if (c.monthly_quota === null) {
    return el("td", {}, el("span", { class: "quota-text" }, `${fmtInt(used)} / unlimited`));
  }
  return el("td", {}, bar(c.quota_used),
    el("span", { class: "quota-text" }, `${fmtInt(used)} / ${fmtInt(c.monthly_quota)} (${fmtPct(c.quota_used)})`));
}

async function showCustomers() {
  const list = await loadCustomers();
  $("customers-month").textContent = "usage month " + list.month + " (UTC)";
  const body = clear($("customers-table").tBodies[0]);
  for (const c of list.customers) {
    body.append(el("tr", { "data-customer": c.customer_id },
      el("td", {}, el("a", { href: "#customer/" + encodeURIComponent(c.customer_id) }, c.name)),
      el("td", { class: "mono" }, c.customer_id),
      el("td", {}, c.tier),
      el("td", {}, el("span", { class: "badge " + c.status }, c.status)),
      quotaCell(c),
      el("td", { class: "num" }, fmtInt(c.usage.searches)),
      el("td", { class: "num" }, fmtInt(c.usage.reflects)),
      el("td", { class: "num" }, fmtInt(c.active_keys))));
  }
}

async function createCustomer(event) {
  event.preventDefault();
  try {
    const created = await api("POST", "/api/v1/customers",
      { name: $("customer-name").value, tier: $("customer-tier").value });
    $("customer-name").value = "";
    flash(`Customer ${created.name} created (${created.customer_id}).`);
    location.hash = "#customer/" + encodeURIComponent(created.customer_id);
  } catch (e) { reportError(e); }
}

// ------------------------------------------------------------------ one customer

let currentCustomer = null;

async function showCustomer(id) {
  currentCustomer = id;
  const [customer, usage, keys, audit] = await Promise.all([
    api("GET", "/api/v1/customers/" + encodeURIComponent(id)),
    api("GET", "/api/v1/customers/" + encodeURIComponent(id) + "/usage"),
    api("GET", "/api/v1/customers/" + encodeURIComponent(id) + "/keys"),
    api("GET", "/api/v1/audit?limit=20&customer_id=" + encodeURIComponent(id)),
  ]);
  $("customer-title").textContent = customer.name;
  const facts = clear($("customer-facts"));
  const fact = (k, v) => facts.append(el("dt", {}, k), el("dd", {}, v));
  fact("Customer id", el("code", {}, customer.customer_id));
  fact("Tier", customer.tier);
  fact("Status", el("span", { class: "badge " + customer.status, id: "customer-status" }, customer.status));
  fact("Monthly quota", customer.monthly_quota === null ? "unlimited" : fmtInt(customer.monthly_quota) + " captures");
  fact("Created", fmtTime(customer.created_at));

  const button = $("customer-status-button");
  const suspended = customer.status === "suspended";
  button.textContent = suspended ? "Activate customer" : "Suspend customer";
  button.className = suspended ? "" : "danger";
  button.onclick = () => setStatus(id, suspended ? "activate" : "suspend");

  const month = new Date().toISOString().slice(0, 7);
  const thisMonth = usage.months.find((m) => m.month === month) || { captures: 0 };
  const quota = clear($("customer-quota"));
  if (usage.monthly_quota === null) {
    quota.append(el("p", { id: "quota-text", class: "quota-text" }, `${fmtInt(thisMonth.captures)} captures in ${month}; no quota (unlimited).`));
  } else {
    const ratio = thisMonth.captures / usage.monthly_quota;
    quota.append(bar(ratio), el("p", { id: "quota-text", class: "quota-text" },
      `${fmtInt(thisMonth.captures)} of ${fmtInt(usage.monthly_quota)} captures in ${month} (${fmtPct(ratio)}); refused beyond 120%.`));
  }
  const usageBody = clear($("usage-table").tBodies[0]);
  if (usage.months.length === 0) usageBody.append(el("tr", {}, el("td", { colspan: 4 }, "No usage yet.")));
  for (const m of usage.months) {
    usageBody.append(el("tr", {}, el("td", {}, m.month), el("td", { class: "num" }, fmtInt(m.captures)),
      el("td", { class: "num" }, fmtInt(m.searches)), el("td", { class: "num" }, fmtInt(m.reflects))));
  }

  const keysBody = clear($("keys-table").tBodies[0]);
  const now = Date.now();
  for (const k of keys.keys) {
    const expired = k.expires_at && Date.parse(k.expires_at) <= now;
    const state = k.revoked_at ? "revoked" : expired ? "expired" : "live";
    const revoke = state === "live"
      ? el("button", { type: "button", class: "danger", "data-revoke": k.key_id, onclick: () => revokeKey(k.key_id) }, "Revoke")
      : null;
    keysBody.append(el("tr", { "data-key": k.key_id },
      el("td", { class: "mono" }, k.key_id),
      el("td", {}, k.scopes.join(", ")),
      el("td", {}, k.project || "—"),
      el("td", {}, fmtTime(k.created_at)),
      el("td", {}, fmtTime(k.expires_at)),
      el("td", {}, el("span", { class: "badge " + state }, state === "revoked" ? "revoked " + fmtTime(k.revoked_at) : state)),
      el("td", {}, revoke)));
  }
  if (keys.keys.length === 0) keysBody.append(el("tr", {}, el("td", { colspan: 7 }, "No keys.")));
  fillAudit($("customer-audit-table").tBodies[0], audit.entries, false);
}

async function setStatus(id, action) {
  try {
    await api("POST", `/api/v1/customers/${encodeURIComponent(id)}/${action}`);
    flash(action === "suspend" ? "Customer suspended: its keys fail from the next request." : "Customer active again.");
    await showCustomer(id);
  } catch (e) { reportError(e); }
}

async function createKey(event) {
  event.preventDefault();
  const scopes = [...document.querySelectorAll("#key-form input[name=scope]:checked")].map((i) => i.value);
  const body = { scopes };
  const project = $("key-project").value.trim();
  if (project) body.project = project;
  const expires = $("key-expires").value;
  if (expires) body.expires_at = expires + "T00:00:00Z";
  try {
    const created = await api("POST", `/api/v1/customers/${encodeURIComponent(currentCustomer)}/keys`, body);
    $("new-key-value").textContent = created.api_key;
    $("new-key").hidden = false;
    $("key-project").value = "";
    $("key-expires").value = "";
    await showCustomer(currentCustomer);
  } catch (e) { reportError(e); }
}

async function revokeKey(keyId) {
  if (!window.confirm(`Revoke key ${keyId}? It fails from the very next request.`)) return;
  try {
    await api("DELETE", "/api/v1/keys/" + encodeURIComponent(keyId));
    flash(`Key ${keyId} revoked.`);
    await showCustomer(currentCustomer);
  } catch (e) { reportError(e); }
}

function hideNewKey() {
  $("new-key-value").textContent = "";
  $("new-key").hidden = true;
}

// ------------------------------------------------------------------ audit

let auditBefore = null;

function fillAudit(body, entries, withCustomer, append) {
  if (!append) clear(body);
  for (const e of entries) {
    body.append(el("tr", { class: e.outcome === "ok" ? "" : "denied" },
      el("td", {}, fmtTime(e.at)),
      el("td", { class: "mono" }, e.action),
      withCustomer ? el("td", { class: "mono" }, e.customer_id || "—") : null,
      el("td", { class: "mono" }, e.target || "—"),
      el("td", {}, e.outcome),
      el("td", { class: "mono" }, e.actor || "—"),
      el("td", { class: "mono" }, e.address || "—")));
  }
  if (!append && entries.length === 0) body.append(el("tr", {}, el("td", { colspan: 7 }, "No entries.")));
}

async function showAudit(more) {
  const customer = $("audit-customer").value.trim();
  let path = "/api/v1/audit?limit=50";
  if (customer) path += "&customer_id=" + encodeURIComponent(customer);
  if (more === true && auditBefore !== null) path += "&before=" + auditBefore;
  const page = await api("GET", path);
  fillAudit($("audit-table").tBodies[0], page.entries, true, more === true);
  auditBefore = page.next_before;
  $("audit-older").hidden = page.next_before === null;
}

// ------------------------------------------------------------------ engine

async function fillCustomerSelect(select, firstLabel) {
  const keep = select.value;
  const customers = (await loadCustomers()).customers;
  clear(select);
  if (firstLabel !== null) select.append(el("option", { value: "" }, firstLabel));
  for (const c of customers) select.append(el("option", { value: c.customer_id }, `${c.name} (${c.customer_id})`));
  if ([...select.options].some((o) => o.value === keep)) select.value = keep;
}

async function showEngine() {
  await fillCustomerSelect($("engine-customer"), "whole instance");
  const customer = $("engine-customer").value;
  const path = "/api/v1/admin/engine" + (customer ? "?customer_id=" + encodeURIComponent(customer) : "");
  const [stats, health] = await Promise.all([
    api("GET", path),
    fetch("/health", { credentials: "omit", cache: "no-store" }).then((r) => r.json()).catch(() => null),
  ]);
  const healthNode = clear($("health"));
  if (health && health.checks) {
    for (const [name, ok] of Object.entries(health.checks)) {
      healthNode.append(el("span", { class: "badge " + (ok ? "active" : "suspended") }, `${name}: ${ok ? "ok" : "down"}`));
    }
  }
  const cards = clear($("engine-cards"));
  for (const inst of stats.instances) {
    const card = el("div", { class: "card", "data-instance": inst.instance },
      el("h3", {}, `${inst.instance} instance `, el("span", { class: "badge " + (inst.reachable ? "active" : "suspended") },
        inst.reachable ? (inst.scope === "tenant" ? "this customer" : inst.scope === "instance" ? "whole instance" : "reachable") : "unreachable")));
    if (inst.note) card.append(el("p", { class: "note" }, inst.note));
    const s = inst.stats;
    if (s) {
      const dl = el("dl");
      const row = (k, v) => dl.append(el("dt", {}, k), el("dd", { "data-stat": k }, v));
      row("Dimension / metric", `${s.dim} / ${s.metric}`);
      row("Namespaces", fmtInt(s.namespaces));
      row("Points", fmtInt(s.points));
      row("Hot-tier points", fmtInt(s.hot_points));
      row("Cold segments", fmtInt(s.cold_segments));
      row("Cold bytes", fmtBytes(s.cold_bytes));
      row("Hot bytes", fmtBytes(s.hot_bytes));
      row("Fsyncs (mean ms)", s.fsyncs === null ? "—" : `${fmtInt(s.fsyncs)} (${fmtMs(s.fsync_mean_ms)})`);
      row("Unreachable points", fmtInt(s.unreachable_points));
      card.append(dl);
      for (const [label, cache] of [["Query cache", s.query_cache], ["Point cache", s.point_cache]]) {
        if (!cache) continue;
        card.append(el("p", { class: "quota-text" },
          `${label} hit ratio ${fmtPct(cache.hit_ratio)} (${fmtInt(cache.hits)} hits, ${fmtInt(cache.misses)} misses, ${fmtInt(cache.evictions)} evictions)`),
        bar(cache.hit_ratio || 0, "similarity"));
      }
    }
    cards.append(card);
  }
}

// ------------------------------------------------------------------ latency

const timeline = { samples: [], last: null };

function totals(summary) {
  let requests = 0; let sum = 0;
  for (const r of summary.routes) {
    if (r.route.startsWith("/admin") || r.route.startsWith("/api/v1/admin/")) continue;
    requests += r.latency.count; sum += r.latency.sum_seconds;
  }
  return { requests, sum, at: Date.now() };
}

function drawTimeline() {
  const node = clear($("latency-timeline"));
  const W = 900; const H = 200; const L = 50; const R = 50; const T = 10; const B = 25;
  const samples = timeline.samples;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "request rate and mean latency over time" });
  chart.append(svg("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
  if (samples.length < 2) {
    chart.append(svg("text", { class: "empty", x: L + 10, y: H / 2 }, "Collecting: a point every 5 s while this page is open."));
    node.append(chart);
    return;
  }
  const maxRate = Math.max(1, ...samples.map((s) => s.rate));
  const maxMs = Math.max(1, ...samples.map((s) => s.meanMs || 0));
  const x = (i) => L + (i / (samples.length - 1)) * (W - L - R);
  const yRate = (v) => H - B - (v / maxRate) * (H - B - T);
  const yMs = (v) => H - B - (v / maxMs) * (H - B - T);
  const line = (f, cls) => svg("polyline", { class: cls, points: samples.map((s, i) => `${x(i).toFixed(1)},${f(s).toFixed(1)}`).join(" ") });
  chart.append(line((s) => yRate(s.rate), "rate"), line((s) => yMs(s.meanMs || 0), "mean"));
  chart.append(svg("text", { x: 4, y: T + 10 }, `${maxRate.toFixed(1)}/s`), svg("text", { x: 4, y: H - B }, "0"));
  chart.append(svg("text", { x: W - R + 4, y: T + 10 }, `${fmtMs(maxMs)} ms`), svg("text", { x: W - R + 4, y: H - B }, "0"));
  chart.append(svg("text", { x: L, y: H - 6 }, "requests/s (solid) · mean latency (dashed) · excludes the admin page's own polling"));
  node.append(chart);
}

function drawBars(routes) {
  const node = clear($("latency-bars"));
  const shown = routes.filter((r) => r.latency.count > 0).slice(0, 12);
  const rowH = 22; const L = 260; const W = 900; const R = 70; const T = 18;
  const H = T + shown.length * rowH + 10;
  const chart = svg("svg", { viewBox: `0 0 ${W} ${Math.max(H, 40)}`, role: "img", "aria-label": "latency percentiles by route" });
  if (shown.length === 0) {
    chart.append(svg("text", { class: "empty", x: 10, y: 25 }, "No requests recorded yet."));
    node.append(chart);
    return;
  }
  const max = Math.max(...shown.map((r) => r.latency.p99_ms || 0), 0.001);
  const scale = (v) => ((v || 0) / max) * (W - L - R);
  chart.append(svg("text", { x: L, y: 12 }, "p50 (light) · p95 · p99 (dark), ms — bucket-interpolated"));
  shown.forEach((r, i) => {
    const y = T + i * rowH;
    chart.append(svg("text", { x: 4, y: y + 14 }, `${r.method} ${r.route}`.slice(0, 42)));
    chart.append(svg("rect", { class: "p99", x: L, y: y + 3, width: scale(r.latency.p99_ms).toFixed(1), height: 14 }));
    chart.append(svg("rect", { class: "p95", x: L, y: y + 3, width: scale(r.latency.p95_ms).toFixed(1), height: 14 }));
    chart.append(svg("rect", { class: "p50", x: L, y: y + 3, width: scale(r.latency.p50_ms).toFixed(1), height: 14 }));
    chart.append(svg("text", { x: L + scale(r.latency.p99_ms) + 4, y: y + 14 }, fmtMs(r.latency.p99_ms)));
  });
  node.append(chart);
}

async function refreshLatency() {
  const summary = await api("GET", "/api/v1/admin/latency");
  const now = totals(summary);
  if (timeline.last) {
    const seconds = Math.max(0.001, (now.at - timeline.last.at) / 1000);
    const dn = now.requests - timeline.last.requests;
    const ds = now.sum - timeline.last.sum;
    timeline.samples.push({ rate: Math.max(0, dn) / seconds, meanMs: dn > 0 ? (ds / dn) * 1000 : null });
    if (timeline.samples.length > 120) timeline.samples.shift();
  }
  timeline.last = now;
  drawTimeline();
  drawBars(summary.routes);
  const body = clear($("latency-table").tBodies[0]);
  for (const r of summary.routes) {
    const st = r.statuses || {};
    body.append(el("tr", { "data-route": `${r.method} ${r.route}` },
      el("td", { class: "mono" }, r.route), el("td", {}, r.method),
      el("td", { class: "num" }, fmtInt(r.requests)), el("td", { class: "num" }, fmtInt(st["2xx"] || 0)),
      el("td", { class: "num" }, fmtInt(st["4xx"] || 0)), el("td", { class: "num" }, fmtInt(st["5xx"] || 0)),
      el("td", { class: "num" }, fmtMs(r.latency.mean_ms)), el("td", { class: "num" }, fmtMs(r.latency.p50_ms)),
      el("td", { class: "num" }, fmtMs(r.latency.p95_ms)), el("td", { class: "num" }, fmtMs(r.latency.p99_ms))));
  }
  const engineBody = clear($("engine-latency-table").tBodies[0]);
  for (const c of summary.engine) {
    engineBody.append(el("tr", {},
      el("td", {}, c.instance), el("td", { class: "mono" }, c.rpc), el("td", { class: "num" }, fmtInt(c.calls)),
      el("td", { class: "num" }, fmtInt(c.errors)), el("td", { class: "num" }, fmtMs(c.latency.mean_ms)),
      el("td", { class: "num" }, fmtMs(c.latency.p50_ms)), el("td", { class: "num" }, fmtMs(c.latency.p95_ms)),
      el("td", { class: "num" }, fmtMs(c.latency.p99_ms))));
  }
}

async function showLatency() {
  await refreshLatency();
  pollTimer = setInterval(() => refreshLatency().catch(reportError), POLL_MS);
}

// ------------------------------------------------------------------ search

async function showSearch() {
  await fillCustomerSelect($("search-customer"), null);
}

function parseState(text) {
  const state = {};
  for (const line of text.split(/[\n,]/)) {
    const at = line.indexOf("=");
    if (at > 0) state[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return state;
}

async function runSearch(event) {
  event.preventDefault();
  const body = {
    customer_id: $("search-customer").value,
    goal: $("search-goal").value,
    k: Number($("search-k").value) || 10,
    current_state: parseState($("search-state").value),
  };
  const project = $("search-project").value.trim();
  if (project) body.project = project;
  const list = clear($("search-results"));
  try {
    const answer = await api("POST", "/api/v1/admin/search", body);
    if (answer.results.length === 0) list.append(el("li", {}, "No episodes matched."));
    for (const r of answer.results) {
      const ep = r.episode || {};
      const components = el("div", { class: "components" });
      for (const name of ["similarity", "precondition", "recency", "usage"]) {
        const v = r.components[name];
        components.append(el("span", {}, name), bar(v, name), el("span", { class: "num", "data-component": name }, v.toFixed(3)));
      }
      list.append(el("li", { "data-episode": r.episode_id },
        el("div", { class: "result-head" },
          el("span", { class: "score", "data-score": "" }, r.score.toFixed(3)),
          el("span", { class: "mono" }, `episode ${r.episode_id}`),
          el("span", {}, r.matched_in.replace("_", " ")),
          r.is_skill ? el("span", { class: "badge skill" }, "skill") : null,
          r.demoted ? el("span", { class: "badge expired" }, "demoted: " + r.demoted) : null),
        el("p", { class: "episode-text" }, el("strong", {}, ep.goal || ""), ` — ${ep.error_class || ""}, seen ${ep.occurrences || 1}×`),
        components,
        el("p", { class: "explanation" }, r.explanation),
        ep.resolution ? el("p", { class: "episode-text" }, "Resolution: " + ep.resolution) : null));
    }
  } catch (e) { reportError(e); }
}

// ------------------------------------------------------------------ start

function start() {
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => { signOut(); location.hash = ""; });
  $("customer-form").addEventListener("submit", createCustomer);
  $("key-form").addEventListener("submit", createKey);
  $("new-key-dismiss").addEventListener("click", hideNewKey);
  $("new-key-copy").addEventListener("click", () => {
    navigator.clipboard.writeText($("new-key-value").textContent).then(
      () => flash("Copied."), () => flash("Copy failed: select the key and copy it by hand.", true));
  });
  $("audit-form").addEventListener("submit", (e) => { e.preventDefault(); auditBefore = null; showAudit().catch(reportError); });
  $("audit-older").addEventListener("click", () => showAudit(true).catch(reportError));
  $("engine-form").addEventListener("submit", (e) => { e.preventDefault(); showEngine().catch(reportError); });
  $("search-form").addEventListener("submit", runSearch);
  window.addEventListener("hashchange", () => { hideNewKey(); route(); });
  route();
}

start();
