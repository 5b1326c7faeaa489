// Acting on returns: the "Needs action" list (the dashboard opens on it) and the decision panel
// of a return's detail. Runs after dashboard.js and uses its `api`, `el`, `$`, `state`,
// `openDetail`, `loadDetail`, `statusPill`, `fmtMoney`, `fmtTime` and `isoUtc`. Which decisions a
// return offers comes from the API (`allowed_decisions`), never from a table of its own.
"use strict";

const ACTIONS = {
  list: sessionStorage.getItem("returns.list") || "needs-action",
  seq: 0,
  key: null, // Idempotency-Key of the decision being sent: a double click sends the same one
  polling: null, // decision id being followed
};
const DAY_S = 86400;
const LIST_KEY = "returns.list";
const ACTION_LABELS = {
  SELLER_RESPOND_REFUND: "Respond to the refund request",
  SELLER_RESPOND_RETURN: "Respond to the return request",
  SELLER_RESPOND_RECEIVE_PACKAGE: "Check the returned parcel",
};
const DECISION_STATES = {
  queued: "Queued",
  sent: "Sent to TikTok…",
  accepted: "Accepted by TikTok",
  refused: "Refused by TikTok",
  failed: "Could not be sent",
};
const FINISHED = new Set(["accepted", "refused", "failed"]);

function soonest(item) {
  const actions = (item.details || {}).next_actions || [];
  return actions.reduce((a, b) => (a && a.deadline <= b.deadline ? a : b), null);
}

function fmtLeft(seconds) {
  const abs = Math.abs(seconds);
  const d = Math.floor(abs / DAY_S);
  const h = Math.floor((abs % DAY_S) / 3600);
  const m = Math.floor((abs % 3600) / 60);
  const text = d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min ${Math.floor(abs % 60)} s`;
  return seconds < 0 ? `overdue by ${text}` : `${text} left`;
}

function countdown(deadline) {
  return el("span", {
    cls: "countdown",
    attrs: { "data-deadline": String(deadline), title: `deadline ${isoUtc(deadline)}` },
  });
}

function tick() {
  const now = Date.now() / 1000;
  for (const node of document.querySelectorAll(".countdown[data-deadline]")) {
    const left = Number(node.dataset.deadline) - now;
    node.textContent = fmtLeft(left);
    node.dataset.urgent = String(left < DAY_S); // the red mark: under 24 h
    node.dataset.overdue = String(left < 0);
  }
}

// ------------------------------------------------------------------------------ the lists

function setList(list) {
  ACTIONS.list = list;
  sessionStorage.setItem(LIST_KEY, list);
  document.body.dataset.list = list;
  for (const button of document.querySelectorAll("#lists [data-list]")) {
    button.setAttribute("aria-pressed", String(button.dataset.list === list));
  }
  if (list === "needs-action") refreshNeedsAction();
}

async function loadNeedsAction() {
  if (!state.token) return;
  const seq = ++ACTIONS.seq;
  const body = await api("/api/v1/returns/needs-action", {
    params: { shop_id: state.shop, limit: 200 },
  });
  if (seq !== ACTIONS.seq) return;
  renderNeedsAction(body.items, body.next_cursor);
}

function refreshNeedsAction() {
  loadNeedsAction().catch((error) => {
    if (error.status !== 401) showError(`Needs action: ${error.message}`);
  });
}

function renderNeedsAction(items, more) {
  const rows = items.map((item) => {
    const next = soonest(item) || {};
    const details = item.details || {};
    const row = el("tr", {
      attrs: {
        "data-return-id": item.return_id, "data-shop-id": item.shop_id,
        "data-status": item.status, "data-deadline": String(next.deadline ?? ""),
      },
    }, [
      el("td", { cls: "deadline" }, [countdown(next.deadline)]),
      el("td", { text: ACTION_LABELS[next.action] || next.action || "", cls: "action" }),
      el("td", { text: item.order_id, cls: "mono" }),
      el("td", { text: item.return_id, cls: "mono" }),
      el("td", { text: state.typeLabels[item.reverse_type] || item.reverse_type || "—", cls: "type" }),
      el("td", {}, [statusPill(item.status)]),
      el("td", { text: fmtMoney(details.refund), cls: "num" }),
      el("td", { text: details.reason_text || details.reason || "", cls: "reason" }),
    ]);
    if (state.detail && state.detail.return_id === item.return_id) row.classList.add("selected");
    row.addEventListener("click", () => openDetail(item.shop_id, item.return_id));
    return row;
  });
  $("action-body").replaceChildren(...rows);
  $("action-empty").hidden = items.length > 0;
  const count = $("needs-action-count");
  count.textContent = more ? `${items.length}+` : String(items.length);
  count.dataset.count = String(items.length);
  $("needs-action").dataset.loaded = "true";
  tick();
}

// ------------------------------------------------------------------------------ deciding

function newKey() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function setDecisionStatus(stateName, text) {
  const node = $("decision-status");
  if (!node) return;
  node.dataset.state = stateName;
  node.textContent = text;
}

function setDeciding(busy) {
  for (const id of ["approve-button", "reject-button", "reject-reason", "reject-comment"]) {
    if ($(id)) $(id).disabled = busy;
  }
}

function decisionText(decision) {
  const said = decision.message && decision.status !== "accepted" ? `: ${decision.message}` : "";
  return `${decision.decision === "approve" ? "Approval" : "Rejection"} — ` +
    `${DECISION_STATES[decision.status] || decision.status}${said}`;
}

async function followDecision(decisionId) {
  ACTIONS.polling = decisionId;
  for (;;) {
    const decision = await api(`/api/v1/decisions/${encodeURIComponent(decisionId)}`);
    if (ACTIONS.polling !== decisionId) return;
    setDecisionStatus(decision.status, decisionText(decision));
    if (FINISHED.has(decision.status)) {
      ACTIONS.key = null;
      ACTIONS.polling = null;
      setDeciding(decision.status === "accepted");
      await Promise.allSettled([loadDetail(), loadNeedsAction()]);
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function decide(item, body) {
  if (!ACTIONS.key) ACTIONS.key = newKey();
  setDeciding(true);
  setDecisionStatus("queued", "Sending…");
  const path = `/api/v1/returns/${encodeURIComponent(item.shop_id)}/` +
    `${encodeURIComponent(item.return_id)}/decisions`;
  try {
    const decision = await api(path, {
      method: "POST", body, headers: { "Idempotency-Key": ACTIONS.key },
    });
    await followDecision(decision.decision_id);
  } catch (error) {
    ACTIONS.key = null;
    setDeciding(false);
    if (error.status !== 401) setDecisionStatus("failed", `Not sent: ${error.message}`);
  }
}

async function loadReasons(item, select) {
  const path = `/api/v1/returns/${encodeURIComponent(item.shop_id)}/` +
    `${encodeURIComponent(item.return_id)}/reject-reasons`;
  try {
    const body = await api(path);
    if (!select.isConnected) return; // another return was opened meanwhile
    select.replaceChildren(
      el("option", { text: "Choose a reason…", attrs: { value: "" } }),
      ...body.reasons.map((r) => el("option", { text: r.text, attrs: { value: r.name } })),
    );
    select.dataset.loaded = "true";
  } catch (error) {
    select.replaceChildren(el("option", { text: `Reasons unavailable: ${error.message}`,
      attrs: { value: "" } }));
  }
}

function decisionPanel(item) {
  const allowed = item.allowed_decisions || [];
  const next = soonest(item);
  const children = [el("h3", { text: "Decide" })];
  if (next) {
    children.push(el("p", { cls: "deadline-line" }, [
      document.createTextNode(`${ACTION_LABELS[next.action] || next.action}: `), countdown(next.deadline),
    ]));
  }
  const buttons = el("div", { cls: "decision-buttons" });
  if (allowed.includes("approve")) {
    const approve = el("button", { text: "Approve", cls: "primary",
      attrs: { id: "approve-button", type: "button" } });
    approve.addEventListener("click", () => decide(item, { decision: "approve" }));
    buttons.appendChild(approve);
  }
  children.push(buttons);
  if (allowed.includes("reject")) {
    const select = el("select", { attrs: { id: "reject-reason", required: "" } },
      [el("option", { text: "Loading TikTok's reasons…", attrs: { value: "" } })]);
    const form = el("form", { cls: "reject-form", attrs: { id: "reject-form" } }, [
      el("label", { text: "Reject because" }, [select]),
      el("textarea", { attrs: { id: "reject-comment", rows: "2", maxlength: "4000",
        placeholder: "Comment for TikTok (optional)" } }),
      el("button", { text: "Reject", cls: "danger", attrs: { id: "reject-button", type: "submit" } }),
    ]);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const reason = $("reject-reason").value;
      if (!reason) {
        setDecisionStatus("failed", "Choose one of TikTok's reasons first.");
        return;
      }
      const comment = $("reject-comment").value.trim();
      decide(item, { decision: "reject", reason, ...(comment ? { comment } : {}) });
    });
    children.push(form);
    loadReasons(item, select);
  }
  children.push(statusLine());
  return children;
}

function renderDecisionLog(decisions) {
  const log = $("decision-log");
  log.hidden = !decisions.length;
  const list = el("ol", { cls: "decisions", attrs: { id: "decisions" } }, decisions.map((d) =>
    el("li", { attrs: { "data-decision": d.decision, "data-decision-status": d.status } }, [
      el("strong", { text: decisionText(d) }),
      el("div", { cls: "meta", text: [`by ${d.label}`, fmtTime(Date.parse(d.created_at) / 1000),
        d.reason && `reason: ${d.reason}`, d.comment && `“${d.comment}”`,
        d.code && `TikTok code ${d.code}`].filter(Boolean).join(" · ") }),
    ])));
  log.replaceChildren(el("h3", { text: "Decisions" }), list);
}

function statusLine() {
  return el("p", { cls: "decision-status", attrs: { id: "decision-status", "data-state": "idle",
    "aria-live": "polite" } });
}

function onDetail(item) {
  const decisions = item.decisions || [];
  const latest = decisions[decisions.length - 1];
  const allowed = item.allowed_decisions || [];
  renderDecisionLog(decisions);
  const panel = $("decision-panel");
  const signature = [item.shop_id, item.return_id, item.status, allowed.join()].join("|");
  if (panel.dataset.signature !== signature) { // else keep what the seller chose or typed
    panel.dataset.signature = signature;
    ACTIONS.key = null;
    ACTIONS.polling = null;
    panel.hidden = !allowed.length && !latest;
    panel.replaceChildren(...(allowed.length ? decisionPanel(item) : [statusLine()]));
    tick();
  }
  if (latest && !ACTIONS.key) {
    const waiting = latest.status === "accepted" && item.status === latest.return_status;
    setDecisionStatus(latest.status, decisionText(latest) +
      (waiting ? " — the status changes when TikTok reports it" : ""));
  }
  if (latest && !FINISHED.has(latest.status) && ACTIONS.polling !== latest.decision_id) {
    setDeciding(true);
    followDecision(latest.decision_id).catch(() => setDeciding(false));
  }
}

// ------------------------------------------------------------------------------ wiring

function wireActions() {
  for (const button of document.querySelectorAll("#lists [data-list]")) {
    button.addEventListener("click", () => setList(button.dataset.list));
  }
  document.addEventListener("detail-rendered", (event) => onDetail(event.detail));
  $("shop").addEventListener("change", refreshNeedsAction);
  $("shop").addEventListener("keydown", (event) => {
    if (event.key === "Enter") refreshNeedsAction();
  });
  $("login-form").addEventListener("submit", () => setTimeout(refreshNeedsAction));
  setInterval(tick, 1000);
  setInterval(() => {
    if (document.hidden || ACTIONS.list !== "needs-action") return;
    if (document.body.dataset.view === "insights") return;
    refreshNeedsAction();
  }, REFRESH_MS);
  setList(ACTIONS.list);
}

wireActions();
