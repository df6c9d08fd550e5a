// The dashboard: every figure comes from the gateway's own JSON endpoints, fetched from this origin with the admin
// key the user typed (kept in sessionStorage: gone with the tab). Values are only ever set as text, never as markup.
"use strict";
(() => {
  const STORE = "meridian.adminKey";
  const params = new URLSearchParams(location.search);
  const STATUS_MS = Math.max(250, Number(params.get("poll_ms")) || 2000);
  const LEDGER_MS = Math.max(500, STATUS_MS * 2.5);
  const KEEP = 300;
  const $ = (id) => document.getElementById(id);
  // Exposed for tests and for people poking at the page from the console.
  const board = { model: null, series: {}, chart: null, chartFor: null, timers: [], spendTotalUsd: null };
  window.__dashboard = board;

  async function get(path) {
    const key = sessionStorage.getItem(STORE);
    const r = await fetch(path, {
      headers: { authorization: `Bearer ${key}` },
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
    });
    if (!r.ok) {
      let message = r.statusText;
      try {
        const body = await r.json();
        message = body?.error?.message ?? message;
      } catch {}
      const e = new Error(message);
      e.status = r.status;
      throw e;
    }
    return r.json();
  }

  const usd = (n) => (n == null ? "–" : `$${Number(n).toFixed(8).replace(/0+$/, "").replace(/\.$/, "")}`);
  const pct = (r) => (r == null ? "–" : `${(100 * r).toFixed(1)}%`);
  const ms = (n) => (n == null ? "–" : String(Math.round(n)));

  function row(cells, attrs = {}) {
    const tr = document.createElement("tr");
    for (const [k, v] of Object.entries(attrs)) tr.setAttribute(k, v);
    for (const c of cells) {
      const td = document.createElement("td");
      if (c instanceof Node) td.append(c);
      else td.textContent = c == null ? "–" : String(c);
      tr.append(td);
    }
    return tr;
  }

  function fill(id, rows) {
    $(id).querySelector("tbody").replaceChildren(...rows);
  }

  function signedOut(message) {
    sessionStorage.removeItem(STORE);
    for (const t of board.timers) clearInterval(t);
    board.timers = [];
    board.series = {};
    board.spendTotalUsd = null;
    board.chart?.destroy();
    board.chart = null;
    board.chartFor = null;
    $("board").hidden = true;
    $("signin").hidden = false;
    $("signout").hidden = true;
    $("where").textContent = "";
    $("message").textContent = message ?? "";
    for (const t of document.querySelectorAll("tbody")) t.replaceChildren();
  }

  function failed(e) {
    if (e.status === 401 || e.status === 403) signedOut(`This key cannot read the dashboard: ${e.message}`);
    else $("message").textContent = `Could not refresh: ${e.message}`;
  }

  // --- routing: per-deployment estimates over time ---------------------------------------------------------------
  function record(status) {
    const now = Date.now() / 1000;
    for (const [model, deps] of Object.entries(status.models)) {
      const s = (board.series[model] ??= { t: [], deps: {} });
      s.t.push(now);
      for (const d of deps) (s.deps[d.deployment] ??= Array(s.t.length - 1).fill(null)).push(d.expected_ttft_ms);
      for (const v of Object.values(s.deps)) while (v.length < s.t.length) v.push(null);
      if (s.t.length > KEEP) {
        s.t.shift();
        for (const v of Object.values(s.deps)) v.shift();
      }
    }
  }

  function chart() {
    const s = board.series[board.model];
    if (!s) return;
    const names = Object.keys(s.deps);
    const key = `${board.model}|${names.join(",")}`;
    const data = [s.t, ...names.map((n) => s.deps[n])];
    if (board.chartFor !== key) {
      board.chart?.destroy();
      const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
      const el = $("chart");
      board.chart = new uPlot(
        {
          width: Math.max(280, el.clientWidth),
          height: 240,
          scales: { x: { time: true } },
          axes: [{}, { label: "ms" }],
          series: [{}, ...names.map((n, i) => ({ label: n, stroke: palette[i % palette.length], width: 2, spanGaps: true }))],
        },
        data,
        el,
      );
      board.chartFor = key;
    } else {
      board.chart.setData(data);
    }
  }

  function showStatus(status) {
    $("where").textContent = status.colo ? `seen from ${status.colo}` : "seen from this edge location";
    const models = Object.keys(status.models);
    const select = $("model");
    if (select.options.length !== models.length) {
      select.replaceChildren(...models.map((m) => new Option(m, m)));
      board.model ??= models.find((m) => status.models[m].length > 1) ?? models[0];
      select.value = board.model;
    }
    record(status);
    chart();
    fill(
      "deployments",
      (status.models[board.model] ?? []).map((d) => {
        const health = document.createElement("span");
        health.textContent = d.health;
        health.className = `health-${d.health.replace(/[^a-z-]/g, "")}`;
        return row(
          [d.deployment, d.region, ms(d.expected_ttft_ms), ms(d.expected_response_ms), d.samples, health, d.requests, d.failures, d.last_error ?? ""],
          { "data-deployment": d.deployment, "data-region": d.region, "data-ttft": String(d.expected_ttft_ms) },
        );
      }),
    );
    const c = status.requests.by_cache ?? {};
    const hits = (c.HIT ?? 0) + (c.COALESCED ?? 0);
    const lookups = hits + (c.MISS ?? 0);
    $("hit-ratio").textContent = lookups ? pct(hits / lookups) : "–";
    $("hits").textContent = `${hits} / ${lookups}`;
    fill(
      "errors",
      (status.recent_errors ?? []).map((e) =>
        row([new Date(e.ts).toLocaleTimeString(), e.status, e.code ?? "", e.model ?? "", e.deployment ?? ""]),
      ),
    );
  }

  // --- the ledger: spend, budgets, shadows, experiments ------------------------------------------------------------
  function showSpend(report) {
    board.spendTotalUsd = report.total.cost_usd;
    $("spend-total").textContent = usd(report.total.cost_usd);
    $("spend-total").dataset.usd = String(report.total.cost_usd);
    $("spend-requests").textContent = String(report.total.requests);
    $("saved").textContent = usd(report.total.saved_usd);
    const rows = [];
    const budgets = [];
    for (const k of report.keys) {
      for (const r of k.rows) {
        const s = r.spend;
        rows.push(row([r.day, k.key, r.model, r.principal, s.requests, `${s.input_tokens} / ${s.output_tokens}`, usd(s.cost_usd), s.cache_hits]));
      }
      const limit = k.budget?.usd_per_day;
      if (limit != null) {
        const today = report.to;
        const spent = k.rows.filter((r) => r.day === today).reduce((a, r) => a + r.spend.cost_usd, 0);
        const bar = document.createElement("div");
        bar.className = spent >= limit ? "bar over" : "bar";
        const fillEl = document.createElement("span");
        fillEl.style.width = `${Math.min(100, (100 * spent) / limit)}%`;
        bar.append(fillEl);
        budgets.push(row([k.key, usd(spent), usd(limit), bar]));
      }
    }
    fill("spend", rows);
    fill("budgets", budgets);
  }

  function showShadows(report) {
    fill(
      "shadows",
      report.pairs.map((p) =>
        row([
          p.day,
          `${p.primary} → ${p.shadow}`,
          p.requests,
          Object.entries(p.skipped).map(([k, v]) => `${k} ${v}`).join(", "),
          pct(p.agreement.exact.rate),
          p.agreement.similarity == null ? "–" : p.agreement.similarity.toFixed(3),
          pct(p.agreement.tool_calls.rate),
          `${ms(p.primary_side.ttft_ms.p50)} / ${ms(p.shadow_side.ttft_ms.p50)}`,
          `${usd(p.primary_side.cost_usd)} / ${usd(p.shadow_side.cost_usd)}`,
        ]),
      ),
    );
  }

  function showExperiments(report) {
    fill(
      "experiments",
      report.arms.map((a) =>
        row([a.day, a.experiment, a.arm, a.requests, a.errors, `${ms(a.ttft_ms.p50)} / ${ms(a.ttft_ms.p90)}`, usd(a.cost_usd)]),
      ),
    );
  }

  async function refreshStatus() {
    try {
      showStatus(await get("/_meridian/status"));
    } catch (e) {
      failed(e);
    }
  }

  async function refreshLedger() {
    try {
      const [spend, shadow, experiments] = await Promise.all([
        get("/_meridian/spend"),
        get("/_meridian/shadow"),
        get("/_meridian/experiments"),
      ]);
      showSpend(spend);
      showShadows(shadow);
      showExperiments(experiments);
      $("message").textContent = "";
    } catch (e) {
      failed(e);
    }
  }

  async function start() {
    // The spend is for admin keys only: a gateway key (which may read the routing status) shows nothing either.
    try {
      await get("/_meridian/spend");
      showStatus(await get("/_meridian/status"));
    } catch (e) {
      failed(e);
      return;
    }
    $("board").hidden = false;
    $("signin").hidden = true;
    $("signout").hidden = false;
    $("message").textContent = "";
    await refreshLedger();
    board.timers.push(setInterval(refreshStatus, STATUS_MS), setInterval(refreshLedger, LEDGER_MS));
  }

  $("signin").addEventListener("submit", (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(STORE, $("key").value);
    $("key").value = "";
    start();
  });
  $("signout").addEventListener("click", () => signedOut());
  $("model").addEventListener("change", (ev) => {
    board.model = ev.target.value;
    chart();
    refreshStatus();
  });
  addEventListener("resize", () => board.chart?.setSize({ width: Math.max(280, $("chart").clientWidth), height: 240 }));
  if (sessionStorage.getItem(STORE)) start();
})();
