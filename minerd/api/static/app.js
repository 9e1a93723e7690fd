// minerd status page: plain JS, no libraries, no build step. Polls the JSON API with a
// bearer token kept in localStorage (or given once as #token=... in the URL).
"use strict";
(function () {
  const TOKEN_KEY = "minerd.token";
  const SAMPLES_KEY = "minerd.samples";
  const POLL_MS = 5000;
  const HOUR_MS = 3600e3;
  const RIG_PAGE = 100;
  const STATES = ["hashing", "sleeping", "offline", "fault", "unknown"];
  const NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let token = "";
  let samples = []; // {t, importKw, limitKw, budgetKw}: the site as polled, last hour
  let samplesSite = "";
  let timeline = []; // {start, end, limitKw, origin, quotaId}: effective-limit steps
  let siteNow = 0; // the daemon's clock (ms), from the last /site answer
  let lastOkMs = 0; // browser time of the last good /site answer
  let rigOffset = 0;
  let rigTotal = 0;
  let polls = 0;
  let timer = 0;
  const containers = new Set();
  const models = new Set();

  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, init) {
    const headers = { Authorization: "Bearer " + token, "Content-Type": "application/json" };
    const res = await fetch(path, Object.assign({ headers: headers, cache: "no-store" }, init));
    const body = await res.json().catch(() => null);
    if (res.status === 401) {
      token = ""; // stop polling with it; the stored one is kept until replaced or forgotten
      showLogin("The token was refused: paste a valid one.");
    }
    if (!res.ok) throw new ApiError(res.status, (body && body.error) || res.statusText);
    return body;
  }

  const f1 = (x) => (x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(1));
  const hhmm = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const when = (iso) => { const d = new Date(iso); return d.toLocaleDateString() + " " + hhmm(d.getTime()); };
  const text = (id, value) => { $(id).textContent = value; };
  const denied = (e) => (e.status === 403 ? "this token's role may not see this" : e.message);

  function cell(tr, value, cls) {
    const td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "–" : String(value);
    if (cls) td.className = cls;
    tr.appendChild(td);
  }

  function fillTable(id, rows, build) {
    const body = $(id).tBodies[0];
    body.replaceChildren();
    for (const row of rows) {
      const tr = document.createElement("tr");
      build(tr, row);
      body.appendChild(tr);
    }
  }

  // ---------------------------------------------------------------- token

  function takeToken() {
    const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
    if (m) {
      localStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
      window.history.replaceState(null, "", location.pathname + location.search);
    }
    token = localStorage.getItem(TOKEN_KEY) || "";
  }

  function showLogin(message) {
    $("login").hidden = false;
    $("logout").hidden = true;
    text("login-msg", message || "");
  }

  // ---------------------------------------------------------------- site

  function renderSite(s) {
    const lim = s.limit;
    text("site-name", s.site);
    document.title = s.site + " · minerd";
    text("grid-import", f1(s.grid_import_kw));
    text("grid-fresh", s.grid_fresh ? "grid meter fresh" : "GRID METER STALE");
    text("limit", f1(lim.limit_kw));
    text("limit-origin", lim.origin);
    text("limit-quota", lim.quota_id ? "(" + lim.quota_id + ")" : "");
    text("headroom", f1(lim.limit_kw - s.grid_import_kw));
    text("budget", f1(s.rig_budget_kw));
    text("hashrate", f1(s.hashrate_ths));
    text("rig-power", f1(s.rig_power_kw));
    text("efficiency", s.hashrate_ths > 0 ? f1((s.rig_power_kw * 1000) / s.hashrate_ths) : "–");
    text("rigs-total", String(s.rigs_total));
    const states = $("rig-states");
    states.replaceChildren();
    for (const name of STATES) {
      const span = document.createElement("span");
      span.id = "state-" + name;
      span.textContent = String(s.rigs_by_state[name] || 0);
      states.append(span, " " + name + " ");
    }
    text("failsafe", s.failsafe.active ? "ACTIVE" : "off");
    text("failsafe-reason", s.failsafe.reason);
    text("cap-now", s.operator_cap_kw === null ? "none" : f1(s.operator_cap_kw) + " kW");
    text("updated", "as of " + new Date(s.taken_at).toLocaleTimeString() + " · cycle " + s.cycle);
  }

  function renderBanner(s) {
    const banner = $("banner");
    let message = "";
    let stale = false;
    if (!token) {
      message = "";
    } else if (Date.now() - lastOkMs > 3 * POLL_MS) {
      message = lastOkMs
        ? "No answer from minerd since " + new Date(lastOkMs).toLocaleTimeString() + ": figures are stale."
        : "No answer from minerd yet.";
      stale = true;
    } else if (s && s.failsafe.active) {
      message = "FAIL-SAFE: " + (s.failsafe.reason || "active") + " — site held at " + f1(s.limit.limit_kw) + " kW";
    } else if (s && !s.grid_fresh) {
      message = "Grid meter reading is stale.";
    }
    banner.hidden = !message;
    banner.className = stale ? "banner stale" : "banner";
    banner.textContent = message;
  }

  function addSample(s) {
    const t = Date.parse(s.taken_at);
    const last = samples.length ? samples[samples.length - 1].t : -Infinity;
    if (samplesSite === s.site && t === last) return;
    if (samplesSite !== s.site || t < last) samples = []; // another site, or its clock went back
    samplesSite = s.site;
    samples.push({ t: t, importKw: s.grid_import_kw, limitKw: s.limit.limit_kw, budgetKw: s.rig_budget_kw });
    samples = samples.filter((p) => p.t >= t - HOUR_MS);
    try { localStorage.setItem(SAMPLES_KEY, JSON.stringify({ site: s.site, samples: samples })); } catch (e) { /* full */ }
  }

  function loadSamples() {
    try {
      const saved = JSON.parse(localStorage.getItem(SAMPLES_KEY) || "null");
      if (saved && Array.isArray(saved.samples)) { samples = saved.samples; samplesSite = saved.site; }
    } catch (e) { samples = []; }
  }

  // The daemon's own last hour, if it keeps one (GET /api/v1/site/history); otherwise the
  // chart fills from this page's polls (kept in localStorage across reloads).
  let historyTried = false;
  async function loadHistory(site) {
    historyTried = true;
    const to = Date.parse(site.taken_at);
    const q = "?from=" + encodeURIComponent(new Date(to - HOUR_MS).toISOString()) + "&to=" + encodeURIComponent(site.taken_at);
    try {
      const h = await api("/api/v1/site/history" + q);
      const pts = h.points.map((p) => ({ t: Date.parse(p.at), importKw: p.grid_import_kw, limitKw: p.limit_kw, budgetKw: p.rig_budget_kw }));
      const merged = pts.concat(samplesSite === site.site ? samples : []).sort((a, b) => a.t - b.t);
      samples = merged.filter((p, i) => i === 0 || p.t !== merged[i - 1].t);
      samplesSite = site.site;
    } catch (e) { /* no history endpoint: polls only */ }
  }

  // ---------------------------------------------------------------- chart

  function svg(name, attrs, parent) {
    const e = document.createElementNS(NS, name);
    for (const k of Object.keys(attrs)) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  // The limit as steps: the timeline (quotas, cap, contract), replaced by what was polled
  // where there are polls (a fail-safe shows only there).
  function limitPoints(t0, t1) {
    const first = samples.length ? samples[0].t : Infinity;
    const last = samples.length ? samples[samples.length - 1].t : -Infinity;
    const pts = [];
    for (const st of timeline) {
      if (st.end <= t0 || st.start >= t1) continue;
      const a = Math.max(st.start, t0);
      if (a < first || a > last) pts.push({ t: a, v: st.limitKw });
    }
    for (const p of samples) pts.push({ t: p.t, v: p.limitKw });
    return pts.sort((a, b) => a.t - b.t);
  }

  function drawChart() {
    const W = 800, H = 260, L = 48, R = 10, T = 10, B = 24;
    const t1 = siteNow || Date.now();
    const t0 = t1 - HOUR_MS;
    const lim = limitPoints(t0, t1);
    const seen = samples.filter((p) => p.t >= t0);
    let top = 1;
    for (const p of seen) top = Math.max(top, p.importKw, p.limitKw);
    for (const p of lim) top = Math.max(top, p.v);
    // Four gridlines at a round step (1, 2, 2.5 or 5 times a power of ten).
    const rough = (top * 1.05) / 4;
    const pow = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = pow * [1, 2, 2.5, 5, 10].find((m) => m * pow >= rough);
    top = 4 * step;
    const x = (t) => (L + ((t - t0) / HOUR_MS) * (W - L - R)).toFixed(1);
    const y = (v) => (T + (1 - v / top) * (H - T - B)).toFixed(1);

    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none" });
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }, root);
      svg("text", { x: L - 4, y: Number(y(v)) + 4, "text-anchor": "end" }, root).textContent = String(+v.toFixed(1));
    }
    for (let t = Math.ceil(t0 / 600e3) * 600e3; t <= t1; t += 600e3) {
      svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, class: "grid" }, root);
      svg("text", { x: x(t), y: H - 6, "text-anchor": "middle" }, root).textContent = hhmm(t);
    }
    const line = (pts, key, stepped) => {
      let d = "";
      let prev = null;
      for (const p of pts) {
        const gap = prev === null || p.t - prev.t > 3 * POLL_MS;
        if (gap && !stepped) d += "M" + x(p.t) + " " + y(p[key]);
        else if (prev === null) d += "M" + x(p.t) + " " + y(p[key]);
        else d += (stepped ? "H" + x(p.t) + "V" + y(p[key]) : "L" + x(p.t) + " " + y(p[key]));
        prev = p;
      }
      if (stepped && prev !== null) d += "H" + x(t1);
      return d;
    };
    const budget = svg("path", { d: line(seen, "budgetKw", false), fill: "none", stroke: "#12b76a", "stroke-width": 1.5, "stroke-dasharray": "4 3" }, root);
    budget.id = "chart-budget";
    const limit = svg("path", { d: line(lim, "v", true), fill: "none", stroke: "#d92d20", "stroke-width": 2 }, root);
    limit.id = "chart-limit";
    const imp = svg("path", { d: line(seen, "importKw", false), fill: "none", stroke: "#1f6feb", "stroke-width": 2 }, root);
    imp.id = "chart-import";
    if (seen.length === 1) {
      svg("circle", { cx: x(seen[0].t), cy: y(seen[0].importKw), r: 3, fill: "#1f6feb" }, root);
    }
    $("chart").replaceChildren(root);
  }

  // ---------------------------------------------------------------- quotas, alerts, rigs

  async function loadQuotas() {
    const t = siteNow || Date.now();
    const from = new Date(t - HOUR_MS).toISOString();
    const to = new Date(t + 24 * HOUR_MS).toISOString();
    const q = await api("/api/v1/quotas?from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to));
    timeline = q.timeline.map((s) => ({
      start: Date.parse(s.start), end: Date.parse(s.end), limitKw: s.limit_kw, origin: s.origin, quotaId: s.quota_id,
    }));
    const coming = timeline.filter((s) => s.end > t).slice(0, 20);
    fillTable("schedule", coming, (tr, s) => {
      if (s.start <= t) tr.className = "now";
      cell(tr, s.start <= t ? "now" : when(s.start));
      cell(tr, when(s.end));
      cell(tr, f1(s.limitKw), "num");
      cell(tr, s.origin);
      cell(tr, s.quotaId || "");
    });
  }

  async function loadAlerts() {
    try {
      const a = await api("/api/v1/alerts?limit=1");
      fillTable("alerts", a.active, (tr, al) => {
        tr.className = "sev-" + al.severity;
        cell(tr, al.severity);
        cell(tr, al.rule);
        cell(tr, al.summary);
        cell(tr, when(al.starts_at));
        cell(tr, al.acknowledged_by || "");
      });
      text("alerts-msg", !a.enabled ? "Alerting is not configured in this daemon." : a.active.length ? "" : "No active alerts.");
    } catch (e) {
      text("alerts-msg", denied(e));
    }
  }

  function rigQuery() {
    const p = new URLSearchParams({ limit: String(RIG_PAGE), offset: String(rigOffset) });
    const state = $("f-state").value, container = $("f-container").value.trim(), model = $("f-model").value.trim();
    if (state) p.set("state", state);
    if (container) p.set("container", container);
    if (model) p.set("model", model);
    return "/api/v1/rigs?" + p.toString();
  }

  function fillList(id, values) {
    const list = $(id);
    if (list.children.length === values.size) return;
    list.replaceChildren(...[...values].sort().map((v) => { const o = document.createElement("option"); o.value = v; return o; }));
  }

  async function loadRigs() {
    try {
      const page = await api(rigQuery());
      rigTotal = page.total;
      fillTable("rigs", page.rigs, (tr, r) => {
        tr.className = r.state;
        containers.add(r.container);
        models.add(r.model);
        const flags = [];
        if (!r.fresh) flags.push("stale");
        if (r.maintenance) flags.push("maintenance");
        if (r.unresponsive) flags.push("unresponsive");
        if (r.power_estimated) flags.push("power estimated");
        cell(tr, r.id);
        cell(tr, r.model);
        cell(tr, r.container);
        cell(tr, r.state + (r.reason && r.state !== "hashing" ? " (" + r.reason + ")" : ""));
        cell(tr, r.power_w === null ? null : f1(r.power_w / 1000), "num");
        cell(tr, f1(r.hashrate_ths), "num");
        cell(tr, r.chip_temp_max_c === null ? null : f1(r.chip_temp_max_c), "num");
        cell(tr, r.fan_rpm_min, "num");
        cell(tr, r.profile || "");
        cell(tr, r.age_s === null ? null : r.age_s.toFixed(0), "num");
        cell(tr, flags.join(", "));
      });
      fillList("containers", containers);
      fillList("models", models);
      const last = Math.min(rigOffset + page.rigs.length, rigTotal);
      text("rigs-msg", rigTotal ? "rigs " + (rigOffset + 1) + "–" + last + " of " + rigTotal : "no rig matches");
    } catch (e) {
      text("rigs-msg", denied(e));
    }
  }

  // ---------------------------------------------------------------- polling

  async function poll() {
    clearTimeout(timer);
    let site = null;
    if (token) {
      try {
        site = await api("/api/v1/site");
        siteNow = Date.parse(site.taken_at);
        lastOkMs = Date.now();
        $("login").hidden = true;
        $("logout").hidden = false;
        renderSite(site);
        if (!historyTried) await loadHistory(site);
        addSample(site);
      } catch (e) {
        if (e.status !== 401) text("updated", "site: " + denied(e));
      }
      const jobs = [loadAlerts(), loadRigs()];
      if (polls++ % 6 === 0) jobs.push(loadQuotas().catch((e) => text("updated", "quotas: " + denied(e))));
      await Promise.allSettled(jobs);
      drawChart();
    }
    renderBanner(site);
    timer = setTimeout(poll, POLL_MS);
  }

  async function setCap(capKw) {
    try {
      const r = await api("/api/v1/operator-cap", { method: "PUT", body: JSON.stringify({ cap_kw: capKw }) });
      text("cap-msg", r.cap_kw === null ? "Cap cleared by " + r.set_by + "." : "Cap " + f1(r.cap_kw) + " kW set by " + r.set_by + ".");
      polls = 0; // reload the timeline: the cap changes it
      poll();
    } catch (e) {
      text("cap-msg", e.status === 403 ? "Only an operator token may set the cap." : "Refused: " + e.message);
    }
  }

  function wire() {
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      token = $("token-input").value.trim();
      localStorage.setItem(TOKEN_KEY, token);
      $("token-input").value = "";
      polls = 0;
      poll();
    });
    $("logout").addEventListener("click", () => {
      localStorage.removeItem(TOKEN_KEY);
      token = "";
      showLogin("");
    });
    $("cap-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      setCap(Number($("cap-input").value));
    });
    $("cap-clear").addEventListener("click", () => setCap(null));
    $("rig-filter").addEventListener("submit", (ev) => { ev.preventDefault(); rigOffset = 0; loadRigs(); });
    $("prev").addEventListener("click", () => { rigOffset = Math.max(0, rigOffset - RIG_PAGE); loadRigs(); });
    $("next").addEventListener("click", () => { if (rigOffset + RIG_PAGE < rigTotal) { rigOffset += RIG_PAGE; loadRigs(); } });
  }

  takeToken();
  loadSamples();
  wire();
  if (!token) showLogin("");
  poll();
})();
