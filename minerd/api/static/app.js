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
  let startedAt = 0; // when the daemon started (ms), 0 if it does not say
  let siteTz = undefined; // the site's IANA time zone; undefined: the browser's
  let lastSite = null; // the last /site answer
  let capNote = true; // #cap-msg still holds its note, not the answer to a click
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
  // Times in the site's time zone, 24-hour: the operator and the grid authority talk
  // site time, whatever the browser's locale.
  const formats = new Map();
  function parts(ms, opts) {
    const key = (siteTz || "") + JSON.stringify(opts);
    let f = formats.get(key);
    if (!f) {
      try { f = new Intl.DateTimeFormat("en-GB", Object.assign({ timeZone: siteTz, hourCycle: "h23" }, opts)); }
      catch (e) { f = new Intl.DateTimeFormat("en-GB", Object.assign({ hourCycle: "h23" }, opts)); } // unknown zone
      formats.set(key, f);
    }
    const out = {};
    for (const p of f.formatToParts(new Date(ms))) out[p.type] = p.value;
    return out;
  }
  const hhmm = (ms) => { const p = parts(ms, { hour: "2-digit", minute: "2-digit" }); return p.hour + ":" + p.minute; };
  const hhmmss = (ms) => { const p = parts(ms, { hour: "2-digit", minute: "2-digit", second: "2-digit" }); return p.hour + ":" + p.minute + ":" + p.second; };
  const when = (t) => {
    const ms = typeof t === "number" ? t : Date.parse(t);
    const p = parts(ms, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
    return p.year + "-" + p.month + "-" + p.day + " " + p.hour + ":" + p.minute;
  };
  const known = (x) => x !== null && x !== undefined && isFinite(x);
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

  const originName = (o) => (o === "failsafe" ? "fail-safe" : o);

  // "60.0 kW quota q-1": what the quotas, the cap and the contract set now.
  function inForce(s) {
    const f = s.in_force || s.limit;
    // The source (api, mqtt, schedule, iec104, openadr) says who issued the quota in force.
    const from = f.quota_id && s.quota_source ? " from " + s.quota_source : "";
    return f1(f.limit_kw) + " kW " + originName(f.origin) + (f.quota_id ? " " + f.quota_id : "") + from;
  }

  function renderSite(s) {
    const lim = s.limit;
    lastSite = s;
    if (s.timezone && s.timezone !== siteTz) { siteTz = s.timezone; formats.clear(); }
    startedAt = s.started_at ? Date.parse(s.started_at) : 0;
    text("site-name", s.site);
    document.title = s.site + " · minerd";
    text("grid-import", f1(s.grid_import_kw));
    text("grid-fresh", known(s.grid_import_kw) ? (s.grid_fresh ? "grid meter fresh" : "GRID METER STALE") : "grid meter not read yet");
    text("limit", f1(lim.limit_kw));
    // Under the fail-safe the origin is the fail-safe and why, never a quota it overrides.
    text("limit-origin", originName(lim.origin));
    text("limit-quota", lim.origin === "failsafe" ? "(" + (s.failsafe.reason || "active") + ")" : lim.quota_id ? "(" + lim.quota_id + ")" : "");
    text("quota-now", s.failsafe.active
      ? "In force: " + inForce(s) + ", capped by the fail-safe at " + f1(lim.limit_kw) + " kW (" + (s.failsafe.reason || "active") + ")."
      : "In force: " + inForce(s) + ".");
    text("headroom", known(s.grid_import_kw) ? f1(lim.limit_kw - s.grid_import_kw) : "–");
    text("budget", f1(s.rig_budget_kw));
    text("interval-used", s.interval_utilization == null ? "–" : f1(s.interval_utilization * 100));
    text("interval-under", s.interval_under_reason ? " · under 97 %: " + s.interval_under_reason : "");
    text("hashrate", f1(s.hashrate_ths));
    text("rig-power", f1(s.rig_power_kw));
    text("efficiency", s.hashrate_ths > 0 ? f1((s.rig_power_kw * 1000) / s.hashrate_ths) : "–");
    text("rigs-total", String(s.rigs_total));
    text("commandable-share", f1(s.commandable_share * 100));
    text("commandable-power", f1(s.commandable_power_kw));
    const states = $("rig-states");
    states.replaceChildren();
    for (const name of STATES) {
      const span = document.createElement("span");
      span.id = "state-" + name;
      span.textContent = String(s.rigs_by_state[name] || 0);
      states.append(span, " " + name + " ");
    }
    renderEconomics(s.economics);
    renderAward(s.award);
    renderEnergy(s.energy);
    renderShed(s.shed_capacity);
    text("failsafe", s.failsafe.active ? "ACTIVE" : "off");
    text("failsafe-reason", s.failsafe.reason);
    text("cap-now", s.operator_cap_kw === null ? "none" : f1(s.operator_cap_kw) + " kW");
    if (capNote) $("cap-msg").hidden = s.role === "operator"; // the note is for other roles
    text("updated", "as of " + hhmmss(Date.parse(s.taken_at)) + (siteTz ? " " + siteTz : "") + " · cycle " + s.cycle);
  }

  // The energy award of the interval in progress (issue 15); hidden while none is in force.
  function renderAward(a) {
    $("award-card").hidden = !a || a.awarded_kwh == null;
    if (!a || a.awarded_kwh == null) return;
    text("award-imported", f1(a.imported_kwh));
    text("award-awarded", f1(a.awarded_kwh));
    text("award-remaining", known(a.remaining_kwh) ? f1(a.remaining_kwh) : "–");
    text("award-pace", known(a.pace_kw) ? f1(a.pace_kw) : "–");
    text("award-peak", f1(a.peak_kw));
    text("award-span", hhmmss(Date.parse(a.interval_start)).slice(0, 5) + "–" + hhmmss(Date.parse(a.interval_end)).slice(0, 5));
  }

  // The award in force as the controller paces it; hidden while no award is in force.
  function renderEnergy(e) {
    $("energy-card").hidden = !e;
    if (!e) return;
    text("energy-so-far", f1(e.energy_kwh));
    text("energy-award", f1(e.award_kwh));
    text("energy-pace", f1(e.pace_target_kw));
    text("energy-span", hhmm(Date.parse(e.interval_start)) + "–" + hhmm(Date.parse(e.interval_end)));
    text("energy-register", e.register_fault ? "NOT believed: " + e.register_fault
      : e.energy_source === "register" ? "in use" : "not used (integrated power)");
    $("energy-register").className = e.register_fault ? "error" : "";
    text("energy-faults", String(e.register_faults));
  }

  // What the site can shed, and how fast (site import kW); "–" before the first cycle.
  function renderShed(c) {
    text("shed-5s", c ? f1(c.within_5s_kw) : "–");
    text("shed-60s", c ? f1(c.within_60s_kw) : "–");
    text("shed-600s", c ? f1(c.within_600s_kw) : "–");
    const fams = new Map();
    for (const k of c ? c.classes : []) fams.set(k.family, (fams.get(k.family) || 0) + k.within_60s_kw);
    text("shed-families", [...fams].filter(([, kw]) => kw > 0).map(([f, kw]) => f + " " + f1(kw)).join(" · "));
  }

  // Price-aware dispatch ([economics]); the card stays hidden while it is off.
  function renderEconomics(e) {
    $("econ-card").hidden = !e;
    if (!e) return;
    const money = (x) => (known(x) ? x.toFixed(2) : "–");
    text("econ-currency", e.currency);
    text("econ-margin", money(e.margin_per_h));
    text("econ-revenue", money(e.revenue_per_h));
    text("econ-cost", money(e.energy_cost_per_h));
    text("econ-breakeven", known(e.breakeven_j_per_th) ? f1(e.breakeven_j_per_th) : "–");
    text("econ-state", e.state + (e.state === "active" ? "" : ": " + e.reason));
    text("econ-off", e.models_off.length ? "asleep for price: " + e.models_off.join(", ") : "");
  }

  function renderBanner(s) {
    const banner = $("banner");
    let message = "";
    let stale = false;
    if (!token) {
      message = "";
    } else if (Date.now() - lastOkMs > 3 * POLL_MS) {
      message = lastOkMs
        ? "No answer from minerd since " + hhmmss(lastOkMs) + ": figures are stale."
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
      const pts = h.points.map((p) => ({ t: Date.parse(p.at), importKw: p.grid_import_kw, limitKw: p.limit_kw, budgetKw: p.rig_budget_kw })); // null: not read yet
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
  // where there are polls (a fail-safe shows only there). Never before the daemon started:
  // no limit was held then.
  function limitPoints(t0, t1) {
    const first = samples.length ? samples[0].t : Infinity;
    const last = samples.length ? samples[samples.length - 1].t : -Infinity;
    const from = Math.max(t0, startedAt || -Infinity);
    const pts = [];
    for (const st of timeline) {
      if (st.end <= from || st.start >= t1) continue;
      const a = Math.max(st.start, from);
      if (a < first || a > last) pts.push({ t: a, v: st.limitKw });
    }
    for (const p of samples) if (p.t >= t0 && known(p.limitKw)) pts.push({ t: p.t, v: p.limitKw });
    return pts.sort((a, b) => a.t - b.t);
  }

  // The span drawn: the last hour, or less when the site has less (a new site fills the
  // chart instead of sitting at its right edge). At least a minute.
  function chartSpan() {
    const t1 = siteNow || Date.now();
    let start = Infinity;
    if (samples.length) start = samples[0].t;
    if (startedAt) start = Math.min(start, startedAt);
    const t0 = Math.min(Math.max(t1 - HOUR_MS, isFinite(start) ? start : -Infinity), t1 - 60e3);
    return [t0, t1];
  }

  const TICK_STEPS_MS = [10e3, 15e3, 30e3, 60e3, 120e3, 300e3, 600e3, 900e3, 1800e3];

  function drawChart() {
    const W = 800, H = 260, L = 48, R = 10, T = 10, B = 24;
    const [t0, t1] = chartSpan();
    const span = t1 - t0;
    const lim = limitPoints(t0, t1);
    const seen = samples.filter((p) => p.t >= t0);
    let top = 1;
    for (const p of seen) for (const v of [p.importKw, p.limitKw]) if (known(v)) top = Math.max(top, v);
    for (const p of lim) top = Math.max(top, p.v);
    // Four gridlines at a round step (1, 2, 2.5 or 5 times a power of ten).
    const rough = (top * 1.05) / 4;
    const pow = Math.pow(10, Math.floor(Math.log10(rough)));
    const step = pow * [1, 2, 2.5, 5, 10].find((m) => m * pow >= rough);
    top = 4 * step;
    const x = (t) => (L + ((t - t0) / span) * (W - L - R)).toFixed(1);
    const y = (v) => (T + (1 - v / top) * (H - T - B)).toFixed(1);

    const root = svg("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", "data-from": t0, "data-to": t1 });
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }, root);
      svg("text", { x: L - 4, y: Number(y(v)) + 4, "text-anchor": "end" }, root).textContent = String(+v.toFixed(1));
    }
    const tick = TICK_STEPS_MS.find((s) => s >= span / 7) || 1800e3;
    for (let t = Math.ceil(t0 / tick) * tick; t <= t1; t += tick) {
      svg("line", { x1: x(t), x2: x(t), y1: T, y2: H - B, class: "grid" }, root);
      svg("text", { x: x(t), y: H - 6, "text-anchor": "middle" }, root).textContent = tick < 60e3 ? hhmmss(t) : hhmm(t);
    }
    text("chart-span", span >= HOUR_MS - 60e3 ? "last hour" : "since " + hhmm(t0) + (siteTz ? " " + siteTz : ""));
    // A gap (no line) where a value is unknown or the points are far apart for their
    // usual spacing: the daemon was down or the page was closed.
    const line = (pts, key, stepped) => {
      const steps = [];
      for (let i = 1; i < pts.length; i++) steps.push(pts[i].t - pts[i - 1].t);
      steps.sort((a, b) => a - b);
      const gapMs = Math.max(3 * POLL_MS, 2.5 * (steps.length ? steps[steps.length >> 1] : 0));
      let d = "";
      let prev = null;
      for (const p of pts) {
        if (!known(p[key])) { if (!stepped) prev = null; continue; }
        // The limit held by an earlier run does not carry on through the downtime.
        const restart = startedAt > 0 && prev !== null && prev.t < startedAt && p.t >= startedAt;
        const gap = prev === null || restart || p.t - prev.t > gapMs;
        if (gap && (!stepped || restart)) d += "M" + x(p.t) + " " + y(p[key]);
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
    const read = seen.filter((p) => known(p.importKw));
    if (read.length === 1) {
      svg("circle", { cx: x(read[0].t), cy: y(read[0].importKw), r: 3, fill: "#1f6feb" }, root);
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
    const held = lastSite && lastSite.failsafe.active ? lastSite.limit.limit_kw : null;
    fillTable("schedule", coming, (tr, s) => {
      const now = s.start <= t;
      if (now) tr.className = "now";
      cell(tr, now ? "now" : when(s.start));
      cell(tr, when(s.end));
      cell(tr, f1(s.limitKw), "num");
      // The quota stays in force under the fail-safe, which caps it.
      cell(tr, now && held !== null ? s.origin + ", capped by the fail-safe at " + f1(held) + " kW" : s.origin);
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
    capNote = false;
    $("cap-msg").hidden = false;
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
