// Plannt's dashboard: reads the admin API with the token kept in this tab's sessionStorage and
// draws it. Every figure goes into the page as text (textContent), never as markup.
"use strict";

(function () {
  const KEY = "plannt-admin-token";
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  let timer = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    for (const c of children) node.append(c instanceof Node ? c : String(c));
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
    return node;
  }

  const sats = (n) => Number(n).toLocaleString("en-US");
  // What was earned: the sats paid less what prepaid sessions were refunded.
  const earned = (f) => Math.max(0, (f.sats || 0) - (f.refunded_sats || 0));
  const when = (unix) => new Date(unix * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";

  async function api(path) {
    const token = sessionStorage.getItem(KEY);
    const answer = await fetch("/_plannt/admin/" + path, {
      headers: { Authorization: "Bearer " + token },
      cache: "no-store",
    });
    if (answer.status === 401) throw new Error("unauthorized");
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok && path !== "health") throw new Error(body.message || "HTTP " + answer.status);
    return body;
  }

  function showLogin(message) {
    if (timer) clearInterval(timer);
    timer = null;
    const board = $("board");
    board.replaceChildren();
    board.hidden = true;
    $("login").hidden = false;
    $("logout").hidden = true;
    const error = $("error");
    error.textContent = message || "";
    error.hidden = !message;
  }

  function card(id, label, value) {
    return el("div", { class: "card" }, el("span", { class: "label" }, label), el("strong", { id }, value));
  }

  function table(id, head, rows) {
    const t = el("table", { id });
    t.append(el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))));
    const body = el("tbody");
    for (const row of rows) body.append(el("tr", {}, ...row.map((c) => el("td", {}, c))));
    if (rows.length === 0) body.append(el("tr", {}, el("td", { colspan: head.length, class: "none" }, "none yet")));
    t.append(body);
    return t;
  }

  // Bars of `values` (numbers), with `labels` under the first and last, in an inline SVG.
  function bars(id, values, labels, title) {
    const width = 720, height = 180, pad = 28;
    const max = Math.max(1, ...values);
    const chart = svg("svg", { id, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
    const t = svg("title");
    t.textContent = title;
    chart.append(t);
    const step = (width - 2 * pad) / Math.max(1, values.length);
    values.forEach((v, i) => {
      const h = ((height - 2 * pad) * v) / max;
      const bar = svg("rect", {
        x: pad + i * step + 1, y: height - pad - h, width: Math.max(1, step - 2), height: h, class: "bar",
      });
      const tip = svg("title");
      tip.textContent = `${labels[i]}: ${sats(v)}`;
      bar.append(tip);
      chart.append(bar);
    });
    chart.append(svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
    const text = (x, y, s, anchor) => {
      const node = svg("text", { x, y, "text-anchor": anchor, class: "tick" });
      node.textContent = s;
      chart.append(node);
    };
    text(pad - 4, pad, sats(max), "end");
    if (labels.length) {
      text(pad, height - 8, labels[0], "start");
      text(width - pad, height - 8, labels[labels.length - 1], "end");
    }
    return chart;
  }

  // Three series per minute (challenges, paid, refused) as lines.
  function lines(id, minutes) {
    const width = 720, height = 160, pad = 28;
    const series = ["challenges", "paid", "refused"];
    const max = Math.max(1, ...minutes.flatMap((m) => series.map((s) => m[s])));
    const chart = svg("svg", { id, viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
    const t = svg("title");
    t.textContent = "Requests per minute, last hour";
    chart.append(t);
    const x = (i) => pad + (i * (width - 2 * pad)) / Math.max(1, minutes.length - 1);
    const y = (v) => height - pad - ((height - 2 * pad) * v) / max;
    for (const s of series) {
      const points = minutes.map((m, i) => `${x(i).toFixed(1)},${y(m[s]).toFixed(1)}`).join(" ");
      chart.append(svg("polyline", { points, class: "line " + s }));
    }
    chart.append(svg("line", { x1: pad, y1: height - pad, x2: width - pad, y2: height - pad, class: "axis" }));
    return chart;
  }

  function render(stats, routes, health) {
    const board = $("board");
    const sum = (key) => stats.live.reduce((n, m) => n + m[key], 0);
    const byRoute = stats.routes || {};
    const days = stats.since && stats.until ? Math.round((stats.until - stats.since) / 86400) : 0;

    const healthRow = (part) =>
      el("span", { class: "health " + (part.ok ? "ok" : "down"), id: "health-" + (part === health.store ? "store" : "backend") },
        `${part === health.store ? "store" : "backend"} ${part.name}: ${part.ok ? "ok" : "down (" + part.error + ")"}`);

    // One bar per day of the span (per hour when it is two days or less), empty ones included.
    const hourly = stats.until - stats.since <= 2 * 86400;
    const step = hourly ? 3600 : 86400;
    const byBucket = new Map();
    for (const [hour, f] of stats.hours || []) {
      const bucket = hour - (hour % step);
      byBucket.set(bucket, (byBucket.get(bucket) || 0) + f.sats);
    }
    const buckets = [];
    for (let t = stats.since - (stats.since % step); t < stats.until; t += step) buckets.push(t);
    const earnings = bars(
      "earnings-chart",
      buckets.map((t) => byBucket.get(t) || 0),
      buckets.map((t) => (hourly ? when(t).slice(0, 16) : when(t).slice(0, 10))),
      `Earnings per ${hourly ? "hour" : "day"} over the last ${days} days (sats)`,
    );

    board.replaceChildren(
      el("section", { class: "health-line" }, healthRow(health.backend), healthRow(health.store),
        el("span", {}, `network ${health.network}`), el("span", {}, `up ${Math.round(health.uptime_secs / 60)} min`)),
      el("section", { class: "cards" },
        card("total-sats", `sats earned (${days} d)`, sats(earned(stats.total))),
        card("total-payments", "payments", sats(stats.total.payments)),
        card("total-refusals", "refusals", sats(stats.total.refusals)),
        card("live-challenges", "challenges, last hour", sats(sum("challenges"))),
        card("live-paid", "paid, last hour", sats(sum("paid"))),
        card("live-refused", "refused, last hour", sats(sum("refused")))),
      el("section", {}, el("h2", {}, "Earnings"), earnings),
      el("section", {}, el("h2", {}, "Requests per minute ",
        el("small", {}, el("span", { class: "key challenges" }, "challenges"), " ",
          el("span", { class: "key paid" }, "paid"), " ", el("span", { class: "key refused" }, "refused"))),
        lines("live-chart", stats.live)),
      el("section", {}, el("h2", {}, "Routes"), table("routes", ["route", "method", "path", "price (sats)", "payments", "sats earned"],
        routes.routes.map((r) => [r.id, r.method || "any", r.path + (r.prefix ? "…" : ""),
          r.metered ? "per request" : r.price_sats == null ? "free" : sats(r.price_sats),
          sats((byRoute[r.id] || {}).payments || 0), sats(earned(byRoute[r.id] || {}))]))),
      el("section", { class: "two" },
        el("div", {}, el("h2", {}, "Refusals by reason"), table("refusals", ["reason", "count"],
          Object.entries(stats.refusals).map(([k, v]) => [k, sats(v)]))),
        el("div", {}, el("h2", {}, "By dialect"), table("dialects", ["dialect", "payments", "sats", "refunded", "metered"],
          Object.entries(stats.dialects).map(([k, f]) => [k, sats(f.payments), sats(f.sats),
            sats(f.refunded_sats || 0), sats(f.metered_sats || 0)])))),
      el("section", {}, el("h2", {}, "Recent payments"), table("recent", ["time", "route", "dialect", "sats", "payment hash"],
        stats.recent.map((p) => [when(p.at), p.route, p.dialect, sats(p.sats), p.payment_hash.slice(0, 16) + "…"]))),
      el("p", { class: "foot" }, `Store ${stats.store}, ledger kept ${stats.retention_days} days. Updated ${when(Date.now() / 1000)}.`),
    );
    board.hidden = false;
  }

  async function load() {
    try {
      const [stats, routes, health] = await Promise.all([api("stats?since=30d"), api("routes"), api("health")]);
      $("login").hidden = true;
      $("logout").hidden = false;
      $("error").hidden = true;
      render(stats, routes, health);
      document.body.dataset.loaded = "yes";
    } catch (e) {
      if (e.message === "unauthorized") {
        sessionStorage.removeItem(KEY);
        showLogin("That token is not the admin token.");
      } else {
        $("error").textContent = "Cannot load: " + e.message;
        $("error").hidden = false;
      }
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("token").value.trim());
      $("token").value = "";
      load().then(() => {
        if (!timer && sessionStorage.getItem(KEY)) timer = setInterval(load, 10000);
      });
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      showLogin("");
    });
    if (sessionStorage.getItem(KEY)) {
      load();
      timer = setInterval(load, 10000);
    } else {
      showLogin("");
    }
  });
})();
