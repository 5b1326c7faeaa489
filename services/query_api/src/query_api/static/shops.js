// The Shops page: connected TikTok shops, their status, token expiry and last sync; Connect
// and Disconnect. Reads the API with the dashboard's bearer token (sessionStorage or ?token=);
// data is rendered with textContent only.
"use strict";

const TOKEN_KEY = "returns.token";
const REFRESH_MS = 10000;
const STATUS_TEXT = {
  connected: "Connected",
  needs_reauthorization: "Needs re-authorization",
  disconnected: "Disconnected",
};

const $ = (id) => document.getElementById(id);

function token() {
  const params = new URLSearchParams(window.location.search);
  const given = params.get("token");
  if (given) sessionStorage.setItem(TOKEN_KEY, given);
  return given || sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, { method = "GET" } = {}) {
  const response = await fetch(path, {
    method, cache: "no-store", headers: { Authorization: `Bearer ${token()}` },
  });
  let body = null;
  try { body = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : `HTTP ${response.status}`;
    throw new Error(detail);
  }
  return body;
}

function show(id, message) {
  const box = $(id);
  box.textContent = message || "";
  box.hidden = !message;
}

function fmtUnix(seconds) {
  return seconds === null || seconds === undefined ? "" : new Date(seconds * 1000).toLocaleString();
}

function fmtIso(value) {
  return value ? new Date(value).toLocaleString() : "never";
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function statusCell(shop) {
  const td = document.createElement("td");
  const pill = document.createElement("span");
  pill.className = "shop-status";
  pill.dataset.status = shop.status;
  pill.textContent = STATUS_TEXT[shop.status] || shop.status;
  td.appendChild(pill);
  if (shop.status === "needs_reauthorization") {
    const why = document.createElement("div");
    why.className = "shop-reason";
    why.textContent = shop.status_reason ||
      "TikTok no longer accepts this shop's tokens: connect it again.";
    td.appendChild(why);
  }
  return td;
}

function actionsCell(shop) {
  const td = document.createElement("td");
  if (shop.status !== "connected") {
    const again = document.createElement("button");
    again.type = "button";
    again.className = "primary";
    again.textContent = "Connect again";
    again.addEventListener("click", connect);
    td.appendChild(again);
  }
  if (shop.status !== "disconnected") {
    const off = document.createElement("button");
    off.type = "button";
    off.textContent = "Disconnect";
    off.addEventListener("click", () => disconnect(shop));
    td.appendChild(off);
  }
  return td;
}

async function load() {
  if (!token()) {
    show("error", "Open the dashboard with your API token first (Returns & Refunds).");
    return;
  }
  try {
    const shops = await api("/api/v1/shops");
    const body = $("shops-body");
    body.replaceChildren(...shops.map((shop) => {
      const tr = document.createElement("tr");
      tr.dataset.shop = shop.shop_id;
      tr.append(
        cell(shop.name ? `${shop.name} (${shop.shop_id})` : shop.shop_id),
        cell(shop.region), cell(shop.api_version), statusCell(shop),
        cell(shop.source === "env" ? "fixed token (TIKTOK_SHOPS)" : fmtUnix(shop.access_expires_at)),
        cell(fmtIso(shop.last_sync_at)), actionsCell(shop),
      );
      return tr;
    }));
    $("empty").hidden = shops.length > 0;
    show("error", "");
  } catch (err) {
    show("error", `Could not load the shops: ${err.message}`);
  }
}

async function connect() {
  try {
    const answer = await api("/api/v1/shops/connect?redirect=false");
    window.location.assign(answer.authorize_url);
  } catch (err) {
    show("error", `Could not start connecting: ${err.message}`);
  }
}

async function disconnect(shop) {
  if (!window.confirm(`Disconnect shop ${shop.name || shop.shop_id}? Its returns stay; syncs stop.`)) return;
  try {
    await api(`/api/v1/shops/${encodeURIComponent(shop.shop_id)}/disconnect`, { method: "POST" });
    await load();
  } catch (err) {
    show("error", `Could not disconnect: ${err.message}`);
  }
}

function init() {
  const params = new URLSearchParams(window.location.search);
  if (params.get("connected")) show("notice", `Connected: shop ${params.get("connected")}.`);
  if (params.get("error")) show("error", `Connecting failed: ${params.get("error")}`);
  $("connect").addEventListener("click", connect);
  load();
  setInterval(load, REFRESH_MS);
}

init();
