// The Insights view of the dashboard (#insights): charts of a shop's returns over a window of
// request times, from GET /api/v1/insights. Runs after dashboard.js and uses its `api`, `el`,
// `$` and `state` (token, shop, status labels). Chart.js is served by the query API itself
// (static/vendor, see `make vendor`) and loaded the first time the view opens. Every chart has
// its numbers in a table (visually hidden until "Table" is pressed), value labels on its bars,
// and patterns beside colours, so nothing is told by colour alone.
"use strict";

const INSIGHTS = {
  loaded: null, // the promise of Chart.js
  body: null, // the last answer of the API
  charts: {},
  labels: {}, // status -> what the seller reads (GET /api/v1/meta/tabs)
  seq: 0,
};
const CHART_SRC = "/static/vendor/chart.umd.min.js";
const DAY_MS = 86400000;
const ZONES = ["UTC", "Asia/Kuala_Lumpur", "Asia/Singapore", "Asia/Bangkok", "Asia/Jakarta",
  "Asia/Manila", "Asia/Ho_Chi_Minh", "Europe/London", "America/New_York", "America/Los_Angeles"];
const STATUS_COLORS = {
  AFTERSALE_APPLYING: "#d97706", AFTERSALE_REJECT_APPLICATION: "#dc2626",
  AFTERSALE_RETURNING: "#3b82f6", AFTERSALE_BUYER_SHIPPED: "#1e40af",
  AFTERSALE_SELLER_REJECT_RECEIVE: "#9f1239", AFTERSALE_SUCCESS: "#22c55e",
  COMPLETE: "#15803d", CLOSED: "#6b7280", CANCEL_SUCCESS: "#a8a29e",
};
const STATUSES = Object.keys(STATUS_COLORS); // in lifecycle order

// ------------------------------------------------------------------------------ formatting

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

// Unix ms of 00:00 of a day ("YYYY-MM-DD") in an IANA time zone.
function zoneOffsetMs(utcMs, tz) {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(utcMs));
  const part = (type) => Number(parts.find((p) => p.type === type).value);
  return Date.UTC(part("year"), part("month") - 1, part("day"), part("hour"), part("minute"),
    part("second")) - utcMs;
}

function midnight(day, tz) {
  const wall = Date.parse(`${day}T00:00:00Z`);
  const first = wall - zoneOffsetMs(wall, tz);
  return wall - zoneOffsetMs(first, tz); // again, in case a clock change lies between
}

function today(tz) {
  return new Intl.DateTimeFormat("en-CA", { timeZone: tz }).format(new Date());
}

function addDays(day, n) {
  return new Date(Date.parse(`${day}T00:00:00Z`) + n * DAY_MS).toISOString().slice(0, 10);
}

// ------------------------------------------------------------------------------ chart specs

function moneyRanking(list, currency) {
  const found = list.by_amount.find((c) => c.currency === currency);
  return found ? found.items : [];
}

// A top list as horizontal bars; `format(item)` words an item's value.
function rankSpec(items, value, format, head) {
  return {
    type: "bar", horizontal: true,
    labels: items.map((i) => i.label),
    datasets: [{ label: head[1], data: items.map(value), backgroundColor: "#4f46e5" }],
    format: (v, index) => format(items[index]),
    table: { head, rows: items.map((i) => [i.label, format(i)]) },
  };
}

function specs(body, currency) {
  const statuses = STATUSES.filter((s) =>
    body.opened_per_day.some((d) => d.by_status[s]));
  const refunds = body.refunds_per_week.find((c) => c.currency === currency);
  const money = (amount) => `${amount} ${currency}`;
  const { to_decision: decision, to_refund: refund } = body.durations;
  const share = body.anomalies;
  const shares = [["Anomaly flagged", share.anomaly],
    ["Had a rejected event", share.rejected_event], ["Either", share.either]];
  const percent = (n) => (share.returns ? (100 * n) / share.returns : 0);
  return {
    opened: {
      type: "bar", stacked: true,
      labels: body.opened_per_day.map((d) => d.day),
      datasets: statuses.map((s) => ({
        label: INSIGHTS.labels[s] || s, status: s,
        data: body.opened_per_day.map((d) => d.by_status[s] || 0),
        // a status keeps its pattern whichever statuses a window has
        backgroundColor: pattern(STATUS_COLORS[s], PATTERNS[STATUSES.indexOf(s)]),
        borderColor: "#fff", borderWidth: 1,
      })),
      format: (v) => String(v),
      table: {
        head: ["Day", ...statuses.map((s) => INSIGHTS.labels[s] || s), "Total"],
        rows: body.opened_per_day.map((d) => [d.day,
          ...statuses.map((s) => String(d.by_status[s] || 0)), String(d.total)]),
      },
    },
    refunds: {
      type: "bar",
      labels: refunds ? refunds.weeks.map((w) => w.week) : [],
      datasets: [{ label: `Refunded (${currency})`, backgroundColor: "#0f766e",
        data: refunds ? refunds.weeks.map((w) => Number(w.amount)) : [] }],
      format: (v, i) => (v ? money(refunds.weeks[i].amount) : ""),
      table: {
        head: ["Week of", `Refunded (${currency})`, "Returns"],
        rows: (refunds ? refunds.weeks : []).map((w) =>
          [w.week, money(w.amount), String(w.returns)]),
      },
    },
    durations: {
      type: "bar",
      labels: ["Request → decision", "Request → refund"],
      datasets: [["Median", "median_s", "solid"], ["90th percentile", "p90_s", "diagonal"]].map(
        ([label, key, kind]) => ({
          label, backgroundColor: pattern(kind === "solid" ? "#2563eb" : "#7c3aed", kind),
          data: [decision, refund].map((d) => (d[key] === null ? null : d[key] / 3600)),
        })),
      format: (v, i, d) => fmtDuration([decision, refund][i][d ? "p90_s" : "median_s"]),
      yTitle: "hours",
      table: {
        head: ["From the request to", "Median", "90th percentile", "Returns measured"],
        rows: [["the seller's decision", decision], ["the refund", refund]].map(([what, d]) =>
          [what, fmtDuration(d.median_s), fmtDuration(d.p90_s), String(d.returns)]),
      },
    },
    "reasons-count": rankSpec(body.top_reasons.by_count, (i) => i.returns,
      (i) => String(i.returns), ["Reason", "Returns"]),
    "reasons-amount": rankSpec(moneyRanking(body.top_reasons, currency), (i) => Number(i.amount),
      (i) => money(i.amount), ["Reason", `Refunded (${currency})`]),
    "skus-count": rankSpec(body.top_skus.by_count, (i) => i.returns, (i) => String(i.returns),
      ["SKU", "Returns"]),
    "skus-amount": rankSpec(moneyRanking(body.top_skus, currency), (i) => Number(i.amount),
      (i) => money(i.amount), ["SKU", `Refunded (${currency})`]),
    anomalies: {
      type: "bar", horizontal: true, max: 100,
      labels: shares.map(([label]) => label),
      datasets: [{ label: "Share of returns (%)", backgroundColor: "#b91c1c",
        data: shares.map(([, n]) => percent(n)) }],
      format: (v, i) =>
        `${shares[i][1]} of ${share.returns} · ${percent(shares[i][1]).toFixed(1)}%`,
      table: {
        head: ["Returns", "Count", "Share"],
        rows: shares.map(([label, n]) => [label, String(n), `${percent(n).toFixed(1)}%`]),
      },
    },
  };
}

// ------------------------------------------------------------------------------ rendering

function caption(figure) {
  return figure.querySelector("figcaption").textContent.trim();
}

function renderTable(figure, key, spec) {
  const head = spec.table.head.map((h) => el("th", { text: h, attrs: { scope: "col" } }));
  const rows = spec.table.rows.map((row) => el("tr", {}, row.map((cell, i) =>
    el(i ? "td" : "th", { text: cell, attrs: i ? {} : { scope: "row" } }))));
  if (!rows.length) rows.push(el("tr", {}, [el("td", { text: "No data" })]));
  const attrs = { "data-table": key, id: `table-${key}` };
  return el("table", { cls: "chart-table sr-only", attrs }, [
    el("caption", { text: caption(figure) }), el("thead", {}, [el("tr", {}, head)]),
    el("tbody", {}, rows)]);
}

function renderFigure(figure, key, spec) {
  const old = INSIGHTS.charts[key];
  if (old) old.destroy();
  delete INSIGHTS.charts[key];
  const showTable = figure.dataset.view === "table";
  const toggle = el("button", { text: "Table", cls: "link table-toggle", attrs: {
    type: "button", "aria-pressed": String(showTable), "aria-controls": `table-${key}` } });
  toggle.addEventListener("click", () => {
    figure.dataset.view = figure.dataset.view === "table" ? "chart" : "table";
    toggle.setAttribute("aria-pressed", String(figure.dataset.view === "table"));
  });
  const canvas = el("canvas", { attrs: { role: "img",
    "aria-label": `${caption(figure)}: chart; its numbers are in the table that follows` } });
  const empty = spec.datasets.every((d) => !d.data.some((v) => v));
  figure.querySelectorAll(".table-toggle, .chart-box, .chart-table, .chart-empty")
    .forEach((node) => node.remove());
  figure.append(toggle, el("div", { cls: "chart-box" }, [canvas]), renderTable(figure, key, spec));
  if (empty) figure.append(el("p", { text: "Nothing in this window.", cls: "chart-empty muted" }));
  if (!window.Chart) return;
  INSIGHTS.charts[key] = new window.Chart(canvas, {
    type: spec.type,
    data: { labels: spec.labels.map(String), datasets: spec.datasets },
    options: chartOptions(spec),
    plugins: [valueLabels],
  });
}

function renderSummary(body, currency) {
  const refunded = body.refunds_per_week.map((c) => `${c.total} ${c.currency}`).join(" · ");
  const facts = [
    ["Returns requested", String(body.returns)],
    ["Refunded", refunded || "none"],
    ["Median time to decision", fmtDuration(body.durations.to_decision.median_s)],
    ["With an anomaly or a rejected event", `${(100 * body.anomalies.share).toFixed(1)}%`],
  ];
  $("insights-summary").replaceChildren(...facts.flatMap(([k, v]) => [
    el("dt", { text: k }), el("dd", { text: v, attrs: { "data-fact": k } })]));
  for (const note of document.querySelectorAll("#insights .currency-note")) {
    note.textContent = currency ? `(${currency})` : "";
  }
}

function currencies(body) {
  const found = new Map(body.refunds_per_week.map((c) => [c.currency, c.returns]));
  for (const list of [body.top_reasons, body.top_skus]) {
    for (const c of list.by_amount) if (!found.has(c.currency)) found.set(c.currency, 0);
  }
  const order = (a, b) => b[1] - a[1] || a[0].localeCompare(b[0]); // most refunds first
  return [...found.entries()].sort(order).map(([currency]) => currency);
}

function render() {
  const body = INSIGHTS.body;
  if (!body) return;
  const select = $("insights-currency");
  const options = currencies(body);
  const chosen = options.includes(select.value) ? select.value : options[0] || "";
  select.replaceChildren(...options.map((c) => el("option", { text: c, attrs: { value: c } })));
  select.value = chosen;
  select.disabled = !options.length;
  renderSummary(body, chosen);
  const all = specs(body, chosen);
  for (const figure of document.querySelectorAll("#insights [data-chart]")) {
    renderFigure(figure, figure.dataset.chart, all[figure.dataset.chart]);
  }
}

// ------------------------------------------------------------------------------ loading

function loadChartJs() {
  INSIGHTS.loaded = INSIGHTS.loaded || new Promise((resolve) => {
    const script = el("script", { attrs: { src: CHART_SRC } });
    script.addEventListener("load", () => resolve(true));
    script.addEventListener("error", () => resolve(false));
    document.head.appendChild(script);
  });
  return INSIGHTS.loaded;
}

function windowParams() {
  const tz = $("insights-tz").value;
  return {
    shop_id: state.shop,
    from: new Date(midnight($("insights-from").value, tz)).toISOString(),
    to: new Date(midnight(addDays($("insights-to").value, 1), tz)).toISOString(),
    tz,
  };
}

async function loadInsights() {
  const section = $("insights");
  const status = $("insights-status");
  if (!state.shop) {
    section.dataset.state = "no-shop";
    status.textContent = "Enter a shop ID above to see its insights.";
    return;
  }
  const params = windowParams();
  const seq = ++INSIGHTS.seq;
  section.dataset.state = "loading";
  status.textContent = "Loading…";
  const [charts, body] = await Promise.all([loadChartJs(), api("/api/v1/insights", { params })]);
  if (seq !== INSIGHTS.seq) return;
  $("insights-notice").hidden = charts;
  $("insights-notice").textContent = charts ? "" :
    "Charts are not available on this server (Chart.js is missing); the tables show the figures.";
  section.classList.toggle("no-charts", !charts);
  INSIGHTS.body = body;
  render();
  section.dataset.query = new URLSearchParams(params).toString();
  section.dataset.state = "ready";
  status.textContent = `${body.returns} returns · ${params.tz}`;
}

function showView() {
  const insights = window.location.hash === "#insights";
  document.body.dataset.view = insights ? "insights" : "returns";
  $("nav-insights").setAttribute("aria-current", insights ? "page" : "false");
  if (insights && $("insights")) loadInsights().catch(onInsightsError);
}

function onInsightsError(error) {
  $("insights").dataset.state = "error";
  if (error.status !== 401) $("insights-status").textContent = `Insights failed: ${error.message}`;
}

async function mountInsights() {
  const [page, meta] = await Promise.all([
    fetch("/static/insights.html", { cache: "no-store" }).then((r) => r.text()),
    fetch("/api/v1/meta/tabs", { cache: "no-store" }).then((r) => r.json()),
  ]);
  for (const tab of meta.tabs) INSIGHTS.labels[tab.key] = tab.label;
  const doc = new DOMParser().parseFromString(page, "text/html");
  document.querySelector(".content").after(doc.getElementById("insights"));
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  $("insights-tz").replaceChildren(...[...new Set([zone, ...ZONES])].map((z) =>
    el("option", { text: z, attrs: { value: z } })));
  $("insights-to").value = today(zone);
  $("insights-from").value = addDays(today(zone), -29);
  $("insights-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadInsights().catch(onInsightsError);
  });
  $("insights-tz").addEventListener("change", () => loadInsights().catch(onInsightsError));
  $("insights-currency").addEventListener("change", render);
  const reload = () => { if (document.body.dataset.view === "insights") showView(); };
  $("shop").addEventListener("change", reload);
  $("shop").addEventListener("keydown", (event) => { if (event.key === "Enter") reload(); });
  $("login-form").addEventListener("submit", () => setTimeout(reload));
  window.addEventListener("hashchange", showView);
  showView();
}

mountInsights().catch((error) => showError(`Insights could not be loaded: ${error.message}`));
