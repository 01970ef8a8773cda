// One order's page (owner, viewer and operator): live state over the stream, KPI charts, payments,
// ledger, fills, history, the statement, exit and add-funds instructions, and the actions the
// viewer may take. Also the orders table used by "my orders" and the operator's list.

import {api, ApiError, currentSession} from "./api.js";
import {drawKpiCharts} from "./charts.js";
import {openStream, statusText} from "./stream.js";
import {columnsOf, copyField, debounce, fill, fmtTime, guard, h, kv, listOf, safeUrl, section, shortId, stateBadge,
  table, timeText} from "./ui.js";

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
    ["created_at", "Created", (at) => timeText(at)],
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
    // Rebuilt only when the possible actions change: a reload (every stream event) must not close an open
    // "Yes, exit" confirmation under the user's pointer.
    const actionsKey = `${doc.state}|${Boolean(doc.exit)}`;
    if (actionsEl.dataset.key !== actionsKey) {
      fill(actionsEl, actionButtons(doc));
      actionsEl.dataset.key = actionsKey;
    }
    fill(detailsEl, detailSections(doc));
    fill(kpiSummaryEl, kpiSummary(doc.kpi));
    if (doc.statement && (doc.statement_final || doc.statement.final)) {
      fill(statementEl, statementTable(doc.statement, doc.statement_final));
    }
    else if (!statementEl.querySelector("table")) fill(statementEl, statementButton());
  }

  /** Reloads the order; its instructions only when its state or exit changed (a half-typed amount stays). */
  async function refreshOrder() {
    const before = `${doc?.state}|${Boolean(doc?.exit)}`;
    await loadOrder();
    if (`${doc.state}|${Boolean(doc.exit)}` !== before) await loadInstructions();
  }

  async function loadKpi() {
    let samples;
    try {
      samples = listOf(await api("GET", `${path}/kpi`), "samples");
    } catch (err) {
      if (err.status !== 404) throw err;
      fill(chartsEl, h("p", {class: "muted"}, "KPI series not available on this server."));
      return;
    }
    removeCharts();
    removeCharts = drawKpiCharts(chartsEl, samples);
  }

  async function loadInstructions() {
    if (!instructionsEl.isConnected) return;
    // Once the order is on its way out there is nothing to send it: no exit memo, no add-funds links.
    const closed = FINAL.has(doc?.state) || EXITING.has(doc?.state) || doc?.exit;
    instructionsEl.closest("section").hidden = Boolean(closed);
    if (!closed) fill(instructionsEl, instructionsOf(await api("GET", `${path}/instructions`), path));
  }

  function statementButton() {
    return h("button", {type: "button", id: "open-statement", class: "secondary", onclick: () => guard(async () => {
      const answer = await api("GET", `${path}/statement`);
      fill(statementEl, statementTable(answer.statement, answer.final));
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
      showOutcome(outcomeEl, await sendCommand(`${path}/${command}`, body));
      await refreshOrder();
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

  // The stream says what changed; the page shows the state at once and reloads the record behind it.
  const reloadOrder = debounce(() => guard(refreshOrder), 200);
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
        const to = message.to_state;
        if (to) setState(to);
        reloadOrder();
      } else if (message.type === "fill") reloadOrder();
      else if (message.type === "kpi") {
        reloadOrder();  // the summary and PnL in the order document move with each sample
        reloadKpi();
      }
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

/**
 * Sends a command (pause, resume, exit, resolve): its outcome {status: done|pending|refused, message}.
 * The server answers 200 done, 202 pending (queued, the service has not carried it out yet), 409 refused.
 */
export async function sendCommand(url, body = {}) {
  try {
    return await api("POST", url, body);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409 && err.body?.status) return err.body;
    throw err;
  }
}

/** Shows a command's outcome in one line ("done: paused", "refused: …"), the message after `subject`. */
export function showOutcome(el, outcome, subject = "") {
  const status = outcome?.status ?? "done";
  const message = String(outcome?.message ?? "").replace(new RegExp(`^${status}:\\s*`), "");  // "done: done: …"
  el.textContent = `${status}: ${subject}${message}`.replace(/:\s*$/, "");
  el.dataset.status = status;
}

// The KPI summary's headline numbers (domain/kpi.py Aggregate.as_dict), in this order.
const KPI_SUMMARY = [["uptime_pct", "two-sided uptime %"], ["avg_spread_bps", "average spread (bps)"],
  ["avg_depth_bid", "average depth, bid (quote)"], ["avg_depth_ask", "average depth, ask (quote)"],
  ["volume", "volume"], ["fills", "fills"], ["realised_pnl", "realised PnL (quote)"],
  ["unrealised_pnl", "unrealised PnL (quote)"], ["first_start", "sampled since"], ["last_ts", "last sample"]];

function kpiSummary(summary) {
  if (!summary || !summary.samples) return h("p", {class: "muted"}, "No KPI samples yet.");
  const rows = KPI_SUMMARY.filter(([key]) => summary[key] !== undefined && summary[key] !== null);
  return h("dl", {class: "kv", id: "kpi-summary"}, rows.map(([key, text]) => [h("dt", {}, text),
    h("dd", {}, key.endsWith("_ts") || key.endsWith("_start") ? fmtTime(summary[key]) : String(summary[key]))]));
}

function overviewOf(doc) {
  const fields = ["pair", "owner", "reason", "created_at", "updated_at", "payment_deadline", "end_at", "exit", "paid",
                  "ledger"];
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
      ["at", "When", (at) => timeText(at)], ["from", "From", (from) => (from ? stateBadge(from) : "–")],
      ["to", "To", (to) => stateBadge(to)],
      ["reason", "Reason"]])));
  }
  return sections;
}

/** The statement: one column per asset, one row per term, the check (or held) line last. */
export function statementTable(statement, frozen = false) {
  const assets = statement?.assets ?? [];
  const present = new Set(assets.flatMap((a) => Object.keys(a)).filter((k) => !STATEMENT_TERMS_SKIPPED.has(k)));
  const terms = [...STATEMENT_TERMS.filter((t) => present.has(t)), ...[...present].filter((t) => !STATEMENT_TERMS.includes(t))];
  const rows = terms.map((term) => ({term, ...Object.fromEntries(assets.map((a) => [a.symbol ?? a.asset_id, a[term]]))}));
  const columns = [["term", "Term", (term) => term.replace(/_/g, " ")],
                   ...assets.map((a) => [a.symbol ?? a.asset_id, a.symbol ?? a.asset_id])];
  const verdict = statement.final
    ? `${frozen ? "Final statement" : "Statement"}: ${statement.balanced ? "balances exactly." : "does NOT balance."}`
    : "Statement so far (the order is not final: the last line is what is still held).";
  return h("div", {class: "statement"},
    h("p", {class: statement.final && !statement.balanced ? "warn" : ""}, verdict),
    statement.equation && h("p", {class: "mono small"}, statement.equation),
    assets.length ? table(rows, columns) : h("p", {class: "muted"}, "No money has moved yet."),
    statement.trading && Object.keys(statement.trading).length ? [h("h3", {}, "Trading"), kv(statement.trading)] : null);
}

/** Exit and add-funds instructions: the exit transfer, and the add-funds memo with pay links on request. */
function instructionsOf(instructions, path) {
  const add = instructions.add_funds ?? {};
  const legsEl = h("div", {id: "add-funds-legs"});
  const base = h("input", {id: "add-base", inputmode: "decimal", autocomplete: "off", size: 12});
  const quote = h("input", {id: "add-quote", inputmode: "decimal", autocomplete: "off", size: 12});
  const askLinks = (event) => {
    event.preventDefault();
    guard(async () => {
      const query = new URLSearchParams();
      if (base.value.trim()) query.set("base_amount", base.value.trim());
      if (quote.value.trim()) query.set("quote_amount", quote.value.trim());
      const answer = await api("GET", `${path}/instructions?${query}`);
      const legs = answer.add_funds?.legs ?? [];
      fill(legsEl, legs.map((leg, i) => payCard(`Add-funds transfer ${i + 1}`, leg)));
    });
  };
  return [
    instructions.exit ? payCard("Ask for an exit", instructions.exit) : null,
    h("div", {class: "pay"},
      h("h3", {}, "Add funds"),
      h("p", {}, add.accepted_now ? "This order accepts added funds now." :
        `Added funds are accepted while the order is ${(add.accepted_in_states ?? []).join(" or ")}.`),
      add.note ? h("p", {class: "hint"}, add.note) : null,
      add.memo ? copyField("Memo", add.memo) : null,
      add.accepted_now ? h("form", {class: "filters", onsubmit: askLinks},
        h("label", {for: "add-base"}, "Base to add"), base,
        h("label", {for: "add-quote"}, "Quote to add"), quote,
        h("button", {type: "submit", class: "secondary"}, "Get pay links")) : null,
      legsEl),
  ];
}

/** One thing to pay: amount and asset, its memo to copy, and the Mixin pay link. */
export function payCard(title, leg) {
  const what = [leg.amount, leg.symbol ?? leg.asset].filter(Boolean).join(" ");
  return h("div", {class: "pay"},
    h("h3", {}, title || "Payment", what ? ` – ${what}` : ""),
    leg.purpose ? h("p", {class: "hint"}, leg.purpose) : null,
    leg.memo ? copyField("Memo", leg.memo) : null,
    safeUrl(leg.pay_url) ? h("p", {}, h("a", {href: safeUrl(leg.pay_url), class: "button", target: "_blank",
                                             rel: "noopener"}, "Pay with Mixin")) : null,
    leg.pay_url ? copyField("Pay link", leg.pay_url) : null);
}
