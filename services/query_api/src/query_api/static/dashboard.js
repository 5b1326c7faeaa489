// The seller's Returns & Refunds dashboard: vanilla JS over the query API (no build step).
// Everything shown comes from the API with `Authorization: Bearer <token>`; data is rendered
// with textContent only (never as HTML).
"use strict";

const PAGE_SIZE = 25;
const REFRESH_MS = 5000;
const SYNC_POLL_MS = 1000;
const TOKEN_KEY = "returns.token";
const SHOP_KEY = "returns.shop";
const OUTCOME_LABELS = {
  applied: "applied",
  inferred: "inferred",
  stale: "stale",
  details_updated: "details updated",
  rejected: "rejected",
};

const state = {
  token: null,
  shop: "",
  tab: "ALL",
  type: "",
  q: "",
  from: "",
  to: "",
  anomaly: false,
  cursors: [null], // cursor of each visited page (null: the first)
  page: 0,
  nextCursor: null,
  statusLabels: {},
  typeLabels: {},
  detail: null, // {shop_id, return_id} of the open detail
  syncCommand: null,
  refreshing: false,
  refreshAgain: false,
  listSeq: 0, // answers of superseded requests are dropped
  countSeq: 0,
};

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function errorText(body, status) {
  if (body && typeof body.message === "string") return body.message;
  if (body && typeof body.detail === "string") return body.detail;
  return `HTTP ${status}`;
}

async function api(path, { params = {}, method = "GET", body, raw = false, headers: extra = {} } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(key, one);
  }
  const token = state.token;
  const headers = { ...extra, Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  if (response.status === 401) {
    // A late answer to a token already replaced (typed wrong, then right) asks for nothing.
    if (state.token === token) askForToken("That token was not accepted. Enter a valid API token.");
    throw new ApiError(401, "not signed in");
  }
  if (!response.ok) {
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      /* not JSON */
    }
    throw new ApiError(response.status, errorText(payload, response.status));
  }
  return raw ? response : response.json();
}

// ------------------------------------------------------------------------------ formatting

function el(tag, { text, cls, attrs } = {}, children = []) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children) if (child) node.appendChild(child);
  return node;
}

function fmtTime(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const d = new Date(seconds * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function isoUtc(seconds) {
  return seconds === null || seconds === undefined
    ? "" : new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
}

function fmtMoney(refund) {
  return refund ? `${refund.amount} ${refund.currency}` : "";
}

function fmtItems(items) {
  if (!items || !items.length) return "";
  return items
    .map((i) => `${i.seller_sku || i.sku_id || i.product_name || "?"} x ${i.quantity ?? "?"}`)
    .join("; ");
}

function statusPill(status) {
  return el("span", {
    text: state.statusLabels[status] || status,
    cls: "status",
    attrs: { "data-status": status },
  });
}

function anomalyBadge() {
  return el("span", {
    text: "Anomaly",
    cls: "badge badge-anomaly",
    attrs: { title: "An event could not be applied to this return (see its timeline)" },
  });
}

function showError(message) {
  const box = $("error");
  box.textContent = message || "";
  box.hidden = !message;
}

// ------------------------------------------------------------------------------ token, shop

function askForToken(message) {
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("login-message").textContent = message || "Enter your API token to see your returns.";
  $("login").hidden = false;
  $("token-input").focus();
}

function readStartParams() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  const shop = url.searchParams.get("shop");
  if (shop !== null) sessionStorage.setItem(SHOP_KEY, shop.split(",")[0].trim());
  if (token) {
    // Keep the token out of the address bar, bookmarks and history.
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
  state.token = sessionStorage.getItem(TOKEN_KEY);
  state.shop = sessionStorage.getItem(SHOP_KEY) || "";
  $("shop").value = state.shop;
}

function setShop(shop) {
  state.shop = shop.trim();
  sessionStorage.setItem(SHOP_KEY, state.shop);
  const url = new URL(window.location.href);
  if (state.shop) url.searchParams.set("shop", state.shop);
  else url.searchParams.delete("shop");
  window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  closeDetail();
  resetPaging();
  $("last-sync").textContent = "";
  setSyncStatus("idle", "");
  refreshAll();
}

// ------------------------------------------------------------------------------ tabs, counts

async function loadMeta() {
  const response = await fetch("/api/v1/meta/tabs", { cache: "no-store" });
  const meta = await response.json();
  const tabs = $("tabs");
  tabs.replaceChildren();
  for (const tab of meta.tabs) {
    state.statusLabels[tab.key] = tab.label;
    const button = el("button", {
      cls: "tab",
      attrs: {
        type: "button",
        role: "tab",
        "data-tab": tab.key,
        "data-count": "",
        "aria-selected": String(tab.key === state.tab),
      },
    }, [
      el("span", { text: tab.label, cls: "tab-label" }),
      el("span", { text: "…", cls: "tab-count" }),
    ]);
    button.addEventListener("click", () => selectTab(tab.key));
    tabs.appendChild(button);
  }
  const select = $("type-filter");
  for (const kind of meta.reverse_types) {
    state.typeLabels[kind.key] = kind.label;
    if (kind.key === "REQUEST_CANCEL") continue; // cancellations: not a return; "All types" has them
    select.appendChild(el("option", { text: kind.label, attrs: { value: kind.key } }));
  }
}

function selectTab(key) {
  state.tab = key;
  for (const button of document.querySelectorAll("#tabs [data-tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === key));
  }
  resetPaging();
  loadList();
}

async function loadCounts() {
  const seq = ++state.countSeq;
  const body = await api("/api/v1/returns/counts", { params: { shop_id: state.shop } });
  if (seq !== state.countSeq) return;
  for (const button of document.querySelectorAll("#tabs [data-tab]")) {
    const count = body.counts[button.dataset.tab] ?? 0;
    button.dataset.count = String(count);
    button.querySelector(".tab-count").textContent = String(count);
  }
}

// ------------------------------------------------------------------------------ list

function filterParams() {
  const params = {
    shop_id: state.shop,
    reverse_type: state.type,
    q: state.q,
    anomaly: state.anomaly ? "true" : "",
  };
  if (state.tab !== "ALL") params.status = state.tab;
  if (state.from) params.updated_from = Math.floor(new Date(`${state.from}T00:00:00`) / 1000);
  if (state.to) {
    const end = new Date(`${state.to}T00:00:00`);
    end.setDate(end.getDate() + 1); // the "to" day is included
    params.updated_to = Math.floor(end / 1000);
  }
  return params;
}

function resetPaging() {
  state.cursors = [null];
  state.page = 0;
  state.nextCursor = null;
}

async function loadList() {
  const params = { ...filterParams(), limit: PAGE_SIZE, cursor: state.cursors[state.page] };
  const seq = ++state.listSeq;
  const body = await api("/api/v1/returns", { params });
  if (seq !== state.listSeq) return;
  renderRows(body.items);
  state.nextCursor = body.next_cursor;
  $("prev-page").disabled = state.page === 0;
  $("next-page").disabled = !state.nextCursor;
  const first = state.page * PAGE_SIZE + 1;
  $("page-info").textContent = body.items.length
    ? `Page ${state.page + 1} · ${first}–${first + body.items.length - 1}`
    : `Page ${state.page + 1}`;
}

function renderRows(items) {
  const tbody = $("returns-body");
  tbody.replaceChildren();
  for (const item of items) {
    const details = item.details || {};
    const statusCell = el("td", {}, [statusPill(item.status)]);
    if (item.anomaly) statusCell.appendChild(anomalyBadge());
    const row = el("tr", {
      attrs: {
        "data-return-id": item.return_id,
        "data-order-id": item.order_id,
        "data-shop-id": item.shop_id,
        "data-status": item.status,
        "data-anomaly": String(Boolean(item.anomaly)),
      },
    }, [
      el("td", { text: item.order_id, cls: "mono" }),
      el("td", { text: item.return_id, cls: "mono" }),
      el("td", { text: state.typeLabels[item.reverse_type] || item.reverse_type || "—", cls: "type" }),
      statusCell,
      el("td", { text: fmtMoney(details.refund), cls: "num" }),
      el("td", {
        text: details.reason_text || details.reason || "",
        cls: "reason",
        attrs: { title: details.reason_text || details.reason || "" },
      }),
      el("td", {
        text: fmtItems(details.items), cls: "items", attrs: { title: fmtItems(details.items) },
      }),
      el("td", { text: details.tracking_number || "", cls: "mono" }),
      el("td", {
        text: fmtTime(details.request_time), cls: "time", attrs: { title: isoUtc(details.request_time) },
      }),
      el("td", {
        text: fmtTime(item.update_time), cls: "time", attrs: { title: isoUtc(item.update_time) },
      }),
    ]);
    if (state.detail && state.detail.return_id === item.return_id &&
        state.detail.shop_id === item.shop_id) row.classList.add("selected");
    row.addEventListener("click", () => openDetail(item.shop_id, item.return_id));
    tbody.appendChild(row);
  }
  $("empty").hidden = items.length > 0;
}

// ------------------------------------------------------------------------------ detail

function closeDetail() {
  state.detail = null;
  $("detail").hidden = true;
  for (const row of document.querySelectorAll("#returns-body tr.selected")) {
    row.classList.remove("selected");
  }
}

async function openDetail(shopId, returnId) {
  state.detail = { shop_id: shopId, return_id: returnId };
  for (const row of document.querySelectorAll("#returns-body tr")) {
    row.classList.toggle("selected", row.dataset.returnId === returnId &&
      row.dataset.shopId === shopId);
  }
  $("detail").hidden = false;
  await loadDetail();
}

async function loadDetail() {
  if (!state.detail) return;
  const { shop_id: shopId, return_id: returnId } = state.detail;
  const path = `/api/v1/returns/${encodeURIComponent(shopId)}/${encodeURIComponent(returnId)}`;
  const item = await api(path);
  if (!state.detail || state.detail.return_id !== returnId) return; // another one was opened
  renderDetail(item);
}

function renderDetail(item) {
  const panel = $("detail");
  panel.dataset.returnId = item.return_id;
  const title = $("detail-title");
  title.replaceChildren(document.createTextNode(`Return ${item.return_id} `));
  if (item.anomaly) title.appendChild(anomalyBadge());

  const details = item.details || {};
  const facts = [
    ["Order ID", item.order_id],
    ["Shop", item.shop_id],
    ["Type", state.typeLabels[item.reverse_type] || item.reverse_type || "unknown"],
    ["Status", null, statusPill(item.status)],
    ["Refund", fmtMoney(details.refund)],
    ["Reason", [details.reason, details.reason_text].filter(Boolean).join(" — ")],
    ["Tracking no.", details.tracking_number || ""],
    ["Requested", fmtTime(details.request_time)],
    ["Updated", fmtTime(item.update_time)],
  ];
  const dl = el("dl");
  for (const [label, text, node] of facts) {
    dl.appendChild(el("dt", { text: label }));
    dl.appendChild(node ? el("dd", {}, [node]) : el("dd", { text: text || "—" }));
  }

  const items = el("ul", { cls: "items" });
  for (const i of details.items || []) {
    const name = [i.product_name, i.sku_name].filter(Boolean).join(" · ");
    const sku = i.seller_sku || i.sku_id || "?";
    items.appendChild(el("li", { text: `${sku} x ${i.quantity ?? "?"}${name ? ` — ${name}` : ""}` }));
  }

  const timeline = el("ol", { cls: "timeline", attrs: { id: "timeline" } });
  for (const entry of item.history || []) {
    const outcome = entry.outcome;
    const meta = [entry.source, entry.deliveries > 1 && `delivered ${entry.deliveries} times`,
      entry.actor && `by ${entry.actor}`,
      entry.reason && `reason: ${entry.reason}`, entry.note].filter(Boolean).join(" · ");
    timeline.appendChild(el("li", {
      cls: "timeline-entry",
      attrs: { "data-outcome": outcome, "data-status": entry.status },
    }, [
      el("div", {}, [
        el("strong", { text: state.statusLabels[entry.status] || entry.status }),
        el("span", {
          text: OUTCOME_LABELS[outcome] || outcome,
          cls: `outcome outcome-${outcome}`,
          attrs: { "data-outcome": outcome },
        }),
      ]),
      el("div", { text: fmtTime(entry.update_time), cls: "when", attrs: { title: isoUtc(entry.update_time) } }),
      meta ? el("div", { text: meta, cls: "meta" }) : null,
    ]));
  }
  const duplicates = item.duplicate_count || 0;
  $("detail-body").replaceChildren(
    dl,
    el("h3", { text: "Items" }),
    (details.items || []).length ? items : el("p", { text: "Not known yet.", cls: "muted" }),
    el("h3", { text: "Timeline" }),
    timeline,
    el("p", {
      text: `${duplicates} duplicate deliver${duplicates === 1 ? "y" : "ies"}`,
      cls: "duplicates",
      attrs: { id: "duplicates", "data-count": String(duplicates) },
    }),
  );
  document.dispatchEvent(new CustomEvent("detail-rendered", { detail: item })); // actions.js
}

// ------------------------------------------------------------------------------ sync

function setSyncStatus(stateName, text) {
  const node = $("sync-status");
  node.dataset.state = stateName;
  node.textContent = text;
  node.title = text;
}

async function loadLastSync() {
  if (!state.shop) {
    $("last-sync").textContent = "";
    return;
  }
  try {
    const body = await api("/api/v1/sync/status", { params: { shop_id: state.shop } });
    const at = body.last_success_at;
    $("last-sync").textContent = at
      ? `Last successful sync: ${fmtTime(Date.parse(at) / 1000)}`
      : "Never synced";
    $("last-sync").title = at || "";
  } catch (error) {
    if (error.status === 401) throw error;
    $("last-sync").textContent = ""; // sync not available on this server
  }
}

async function startSync() {
  if (!state.shop) {
    setSyncStatus("failed", "Enter a shop ID to sync.");
    $("shop").focus();
    return;
  }
  const button = $("sync-button");
  button.disabled = true;
  setSyncStatus("running", "Starting sync…");
  try {
    const command = await api("/api/v1/sync", { method: "POST", body: { shop_id: state.shop } });
    state.syncCommand = command.command_id;
    await pollSync(command.command_id);
  } catch (error) {
    if (error.status === 404 || error.status === 405) {
      setSyncStatus("unavailable", "Sync is not available on this server.");
    } else if (error.status === 503) {
      setSyncStatus("unavailable", `Sync is unavailable right now: ${error.message}`);
    } else if (error.status !== 401) {
      setSyncStatus("failed", `Sync failed: ${error.message}`);
    }
  } finally {
    button.disabled = false;
    state.syncCommand = null;
  }
}

async function pollSync(commandId) {
  for (;;) {
    const job = await api(`/api/v1/sync/${encodeURIComponent(commandId)}`);
    const pages = job.pages ?? 0;
    const seen = job.returns_seen ?? 0;
    if (job.status === "succeeded") {
      setSyncStatus("succeeded", `Sync finished · ${seen} returns`);
      $("sync-status").title = `Sync finished: ${seen} returns seen on ${pages} pages`;
      await Promise.allSettled([loadCounts(), loadList(), loadLastSync()]);
      return;
    }
    if (job.status === "failed") {
      setSyncStatus("failed", `Sync failed: ${job.error || "unknown error"}`);
      return;
    }
    setSyncStatus("running", job.status === "queued"
      ? "Sync queued…"
      : `Syncing… ${pages} pages, ${seen} returns seen`);
    await new Promise((resolve) => setTimeout(resolve, SYNC_POLL_MS));
  }
}

// ------------------------------------------------------------------------------ export

async function exportCsv() {
  const button = $("export-csv");
  button.disabled = true;
  try {
    const response = await api("/api/v1/returns/export.csv", { params: filterParams(), raw: true });
    const blob = await response.blob();
    const match = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
    const link = el("a", {
      attrs: { href: URL.createObjectURL(blob), download: match ? match[1] : "returns.csv" },
    });
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  } catch (error) {
    if (error.status !== 401) showError(`Export failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------------------ refresh loop

async function refreshAll() {
  if (!state.token) return;
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  state.refreshAgain = false;
  try {
    const results = await Promise.allSettled([loadCounts(), loadList(), loadDetail()]);
    const failed = results.find((r) => r.status === "rejected" && r.reason.status !== 401);
    showError(failed ? failed.reason.message : "");
    if (!failed) {
      $("refreshed").textContent = `Updated ${new Date().toLocaleTimeString()}`;
      document.body.dataset.loaded = "true";
    }
  } finally {
    state.refreshing = false;
  }
  if (state.refreshAgain) await refreshAll();
}

function onFiltersChanged() {
  state.type = $("type-filter").value;
  state.q = $("search").value.trim();
  state.from = $("updated-from").value;
  state.to = $("updated-to").value;
  state.anomaly = $("anomaly-only").checked;
  resetPaging();
  loadList().then(() => showError(""), (error) => {
    if (error.status !== 401) showError(error.message);
  });
}

function wire() {
  $("shop").addEventListener("change", (event) => setShop(event.target.value));
  $("shop").addEventListener("keydown", (event) => {
    if (event.key === "Enter") setShop(event.target.value);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    onFiltersChanged();
  });
  $("search").addEventListener("search", onFiltersChanged); // the field's clear button
  for (const id of ["type-filter", "updated-from", "updated-to", "anomaly-only"]) {
    $(id).addEventListener("change", onFiltersChanged);
  }
  $("clear-filters").addEventListener("click", () => {
    $("type-filter").value = "";
    $("search").value = "";
    $("updated-from").value = "";
    $("updated-to").value = "";
    $("anomaly-only").checked = false;
    onFiltersChanged();
  });
  $("prev-page").addEventListener("click", () => {
    if (state.page === 0) return;
    state.page -= 1;
    loadList().catch((error) => showError(error.message));
  });
  $("next-page").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.cursors[state.page + 1] = state.nextCursor;
    state.page += 1;
    loadList().catch((error) => showError(error.message));
  });
  $("detail-close").addEventListener("click", closeDetail);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeDetail();
  });
  $("sync-button").addEventListener("click", startSync);
  $("export-csv").addEventListener("click", exportCsv);
  $("sign-out").addEventListener("click", () => askForToken());
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    state.token = token;
    $("token-input").value = "";
    $("login").hidden = true;
    refreshAll();
    loadLastSync().catch(() => {});
  });
}

async function main() {
  wire();
  readStartParams();
  try {
    await loadMeta();
  } catch (error) {
    showError(`The query API does not answer: ${error.message}`);
  }
  if (!state.token) {
    askForToken();
  } else {
    await refreshAll();
    loadLastSync().catch(() => {});
  }
  setInterval(() => {
    if (document.hidden || document.body.dataset.view === "insights") return;
    refreshAll();
    if (!state.syncCommand) loadLastSync().catch(() => {});
  }, REFRESH_MS);
}

main();
