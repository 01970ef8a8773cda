// One order's page (owner, viewer and operator): live state over the stream, KPI charts, payments,
// ledger, fills, history, the statement, exit and add-funds instructions, and the actions the
// viewer may take. Also the orders table used by "my orders" and the operator's list.

import {api, currentSession} from "./api.js";
import {drawKpiCharts} from "./charts.js";
import {openStream, statusText} from "./stream.js";
import {columnsOf, copyField, debounce, fill, fmtTime, guard, h, kv, listOf, section, shortId, stateBadge, table}
  from "./ui.js";

const FINAL = new Set(["settled", "refunded"]);
const EXITING = new Set(["stopping", "stopped", "returning_funds", "settling", "refunding"]);
// The statement's terms in the order of its equation (README "The statement"); JSON objects may come sorted.
const STATEMENT_TERMS = ["paid_in", "refunded", "mixin_withdrawal_fees", "market_making_fee", "deposit_difference",
  "trading", "exchange_withdrawal_fees", "dust", "transit_difference", "paid_out", "held", "check"];
const STATEMENT_TERMS_SKIPPED = new Set(["asset_id", "symbol", "details"]);
const FILL_COLUMNS = ["side", "price", "amount", "fee", "fee_currency"];

/** The orders table: id (links to the order page), pair, state, created, and the owner for staff. */
export function ordersTable(orders, {showOwner = false} = {}) {
  if (!orders.length) return h("p", {class: "muted"}, "No orders.");
  const columns = [
    ["order_id", "Order", (id) => h("a", {href: `#/orders/${encodeURIComponent(id)}`, class: "mono", title: id,
                                          "aria-label": `order ${id}`}, String(id).slice(0, 8))],
    ["pair", "Pair", (pair, row) => pair ?? row.symbol ?? row.pair_id ?? "–"],
    ["state", "State", (state) => stateBadge(state)],
    ["created_at", "Created", (at) => fmtTime(at)],
  ];
  if (showOwner) columns.push(["owner", "Owner", (owner, row) => shortId(owner ?? row.user_id)]);
  columns.push(["reason", "Reason", (reason, row) => reason ?? row.state_reason ?? ""]);
  return table(orders, columns);
}

/** Renders an order's page into `main`; returns the cleanup (closes the stream, removes charts). */
export function orderView(main, orderId) {
  const role = currentSession()?.role;
  const path = `/api/v1/orders/${encodeURIComponent(orderId)}`;
  const stateEl = h("span", {id: "order-state", "aria-live": "polite"});
  const liveEl = h("span", {id: "live-status", class: "live", "aria-live": "polite"}, "");
  const actionsEl = h("div", {class: "actions"});
  const outcomeEl = h("p", {id: "action-outcome", class: "outcome", "aria-live": "polite"});
  const overviewEl = h("div");
  const instructionsEl = h("div");
  const kpiSummaryEl = h("div");
  const chartsEl = h("div", {class: "charts"});
  const detailsEl = h("div");
  const statementEl = h("div", {id: "statement"});
  let removeCharts = () => {};
  let doc = null;

  fill(main,
    h("p", {class: "crumbs"}, h("a", {href: role === "user" ? "#/" : "#/ops/orders"}, "← orders")),
    h("h1", {}, "Order ", h("span", {class: "mono break"}, orderId)),
    h("p", {class: "state-line"}, "State: ", stateEl, " ", liveEl),
    actionsEl, outcomeEl,
    section("Overview", overviewEl),
    section("KPIs", kpiSummaryEl, chartsEl),
    role === "user" || role === "operator" ? section("Exit and add funds", instructionsEl) : null,
    section("Statement", statementEl),
    detailsEl);

  function setState(state) {
    fill(stateEl, stateBadge(state));
    stateEl.dataset.state = state;
  }

  async function loadOrder() {
    doc = await api("GET", path);
    setState(doc.state);
    fill(overviewEl, kv(overviewOf(doc)));
    fill(actionsEl, actionButtons(doc));
    fill(detailsEl, detailSections(doc));
    if (doc.statement?.final) fill(statementEl, statementTable(doc.statement));
    else if (!statementEl.querySelector("table")) fill(statementEl, statementButton());
  }

  async function loadKpi() {
    const samples = listOf(await api("GET", `${path}/kpi`), "samples");
    removeCharts();
    removeCharts = drawKpiCharts(chartsEl, samples);
    const summary = doc?.kpi ?? doc?.kpi_summary;
    fill(kpiSummaryEl, summary ? kv(summary) : null);
  }

  async function loadInstructions() {
    if (!instructionsEl.isConnected) return;
    fill(instructionsEl, instructionCards(await api("GET", `${path}/instructions`)));
  }

  function statementButton() {
    return h("button", {type: "button", id: "open-statement", class: "secondary", onclick: () => guard(async () => {
      fill(statementEl, statementTable(await api("GET", `${path}/statement`)));
    })}, "Open the statement so far");
  }

  function actionButtons(order) {
    const buttons = [];
    const open = !FINAL.has(order.state) && !EXITING.has(order.state);
    if (role === "operator") {
      if (order.state === "running") buttons.push(commandButton("Pause", "pause"));
      if (order.state === "paused") buttons.push(commandButton("Resume", "resume"));
    }
    if ((role === "operator" || role === "user") && open && !order.exit) buttons.push(exitButton());
    return buttons;
  }

  function commandButton(text, command, body = {}) {
    return h("button", {type: "button", id: `action-${command}`, onclick: () => guard(async () => {
      showOutcome(await api("POST", `${path}/${command}`, body));
      await loadOrder();
    })}, text);
  }

  function exitButton() {
    // An exit moves money: ask once more, inline (a native confirm() is easy to click through).
    const confirmBox = h("span", {class: "confirm", hidden: true},
      "Stop the order and pay the funds back? ",
      commandButton("Yes, exit", "exit", {reason: "asked from the dashboard"}),
      h("button", {type: "button", class: "secondary", onclick: () => { confirmBox.hidden = true; }}, "Cancel"));
    return h("span", {},
      h("button", {type: "button", id: "ask-exit", class: "danger", onclick: () => { confirmBox.hidden = false; }},
        "Exit…"),
      " ", confirmBox);
  }

  function showOutcome(outcome) {
    const status = outcome?.status ?? "done";
    outcomeEl.textContent = `${status}${outcome?.message ? `: ${outcome.message}` : ""}`;
    outcomeEl.dataset.status = status;
  }

  // The stream says what changed; the page shows the state at once and reloads the record behind it.
  const reloadOrder = debounce(() => guard(loadOrder), 200);
  const reloadKpi = debounce(() => guard(loadKpi), 500);
  let seenLive = false;
  const stream = openStream({
    onStatus: (status) => {
      liveEl.textContent = statusText(status);
      liveEl.dataset.status = status;
      if (status === "live" && seenLive) { reloadOrder(); reloadKpi(); }  // catch up after a reconnect
      if (status === "live") seenLive = true;
    },
    onMessage: (message) => {
      if (message.order_id !== orderId) return;
      if (message.type === "order_state") {
        const to = message.state ?? message.to ?? message.data?.to;
        if (to) setState(to);
        reloadOrder();
      } else if (message.type === "fill") reloadOrder();
      else if (message.type === "kpi") reloadKpi();
    },
  });

  guard(async () => {
    await loadOrder();
    await Promise.all([loadKpi(), loadInstructions()]);
  });

  return () => {
    stream.close();
    reloadOrder.cancel();
    reloadKpi.cancel();
    removeCharts();
  };
}

function overviewOf(doc) {
  const fields = ["pair", "owner", "reason", "created_at", "payment_deadline", "end_at", "exit", "paid", "ledger"];
  const out = {};
  for (const field of fields) {
    if (doc[field] === undefined || doc[field] === null) continue;
    out[field] = field.endsWith("_at") || field.endsWith("deadline") ? fmtTime(doc[field]) : doc[field];
  }
  const pnl = doc.strategy;
  if (pnl) {
    for (const key of ["realized_pnl", "unrealized_pnl", "volume_quote", "trades"]) {
      if (pnl[key] !== undefined && pnl[key] !== null) out[key] = pnl[key];
    }
  }
  return out;
}

function detailSections(doc) {
  const sections = [];
  const fills = doc.fills ?? [];
  if (fills.length) sections.push(section("Fills", table(fills, columnsOf(fills, FILL_COLUMNS))));
  if (doc.strategy?.open_orders?.length) sections.push(section("Open exchange orders", table(doc.strategy.open_orders)));
  if (doc.hufi && Object.keys(doc.hufi).length) sections.push(section("HuFi campaign estimate", kv(doc.hufi)));
  if (doc.movements?.length) {
    sections.push(section("Money movements", table(doc.movements, [
      ["kind", "Kind"], ["asset", "Asset"], ["amount", "Amount"], ["state", "State"], ["leg", "Leg"],
      ["note", "Note"]])));
  }
  if (doc.history?.length) {
    sections.push(section("History", table(doc.history, [
      ["at", "When", (at) => fmtTime(at)], ["from", "From"], ["to", "To", (to) => stateBadge(to)],
      ["reason", "Reason"]])));
  }
  return sections;
}

/** The statement: one column per asset, one row per term, the check (or held) line last. */
export function statementTable(statement) {
  const assets = statement?.assets ?? [];
  const present = new Set(assets.flatMap((a) => Object.keys(a)).filter((k) => !STATEMENT_TERMS_SKIPPED.has(k)));
  const terms = [...STATEMENT_TERMS.filter((t) => present.has(t)), ...[...present].filter((t) => !STATEMENT_TERMS.includes(t))];
  const rows = terms.map((term) => ({term, ...Object.fromEntries(assets.map((a) => [a.symbol ?? a.asset_id, a[term]]))}));
  const columns = [["term", "Term", (term) => term.replace(/_/g, " ")],
                   ...assets.map((a) => [a.symbol ?? a.asset_id, a.symbol ?? a.asset_id])];
  const verdict = statement.final
    ? (statement.balanced ? "Final statement: balances exactly." : "Final statement: does NOT balance.")
    : "Statement so far (the order is not final: the last line is what is still held).";
  return h("div", {class: "statement"},
    h("p", {class: statement.final && !statement.balanced ? "warn" : ""}, verdict),
    statement.equation && h("p", {class: "mono small"}, statement.equation),
    assets.length ? table(rows, columns) : h("p", {class: "muted"}, "No money has moved yet."),
    statement.trading && Object.keys(statement.trading).length ? [h("h3", {}, "Trading"), kv(statement.trading)] : null);
}

/** Payment cards from the instructions (any object holding a memo or a pay link), titled by where it sits. */
export function instructionCards(instructions) {
  const cards = [];
  const walk = (value, title) => {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, value.length > 1 ? `${title} ${i + 1}` : title));
    else if (value && typeof value === "object") {
      if (value.memo || value.pay_url) cards.push(payCard(title, value));
      else Object.entries(value).forEach(([k, v]) => walk(v, title ? `${title} – ${k.replace(/_/g, " ")}` : k.replace(/_/g, " ")));
    }
  };
  walk(instructions, "");
  return cards.length ? cards : h("p", {class: "muted"}, "No instructions for this order now.");
}

/** One thing to pay: amount and asset, its memo to copy, and the Mixin pay link. */
export function payCard(title, leg) {
  const what = [leg.amount, leg.symbol ?? leg.asset].filter(Boolean).join(" ");
  return h("div", {class: "pay"},
    h("h3", {}, title || "Payment", what ? ` – ${what}` : ""),
    leg.description || leg.note ? h("p", {}, leg.description ?? leg.note) : null,
    leg.memo ? copyField("Memo", leg.memo) : null,
    leg.pay_url ? h("p", {}, h("a", {href: leg.pay_url, class: "button", target: "_blank", rel: "noopener"},
      "Pay with Mixin"), " ") : null,
    leg.pay_url ? copyField("Pay link", leg.pay_url) : null);
}
