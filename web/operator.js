// The operator's side (API token, role viewer or operator): orders with filters and paging, the
// attention queue and resolve, alerts and acknowledge, halt and lift, accounts with balances and
// breakers, campaigns. A viewer sees everything; only an operator gets the action buttons.

import {api, currentSession} from "./api.js";
import {ordersTable, sendCommand, showOutcome} from "./order.js";
import {openStream, statusText} from "./stream.js";
import {operatorLoginForm} from "./user.js";
import {debounce, fill, fmtTime, guard, h, kv, listOf, section, table, timeText} from "./ui.js";

const STATES = ["payment_pending", "payment_complete", "withdrawing", "withdrawal_confirmed", "deposit_confirming",
  "deposit_confirmed", "joining_campaign", "campaign_joined", "running", "paused", "stopping", "stopped",
  "returning_funds", "settling", "settled", "refunding", "refunded", "attention"];
const TABS = [["orders", "Orders"], ["attention", "Attention"], ["alerts", "Alerts"], ["halt", "Halt"],
  ["accounts", "Accounts"], ["campaigns", "Campaigns"]];
const PAGE_SIZE = 50;

/** Renders the operator view's tab `tab` into `main`; returns the cleanup (closes the stream). */
export function operatorView(main, tab = "orders") {
  const session = currentSession();
  if (!session || session.role === "user") {
    fill(main, h("h1", {}, "Operator"),
      session ? h("p", {class: "warn"}, "You are logged in as a user; log out first to use an API token.") : null,
      section("Log in", operatorLoginForm()));
    return undefined;
  }
  const canAct = session.role === "operator";
  const body = h("div", {id: `ops-${tab}`});
  const liveEl = h("span", {id: "live-status", class: "live", "aria-live": "polite"});
  fill(main,
    h("h1", {}, "Operator ", liveEl),
    h("nav", {class: "tabs", "aria-label": "Operator views"},
      TABS.map(([id, text]) => h("a", {href: `#/ops/${id}`, "aria-current": id === tab ? "page" : null}, text))),
    body);

  const view = {orders: ordersTab, attention: attentionTab, alerts: alertsTab, halt: haltTab,
                accounts: accountsTab, campaigns: campaignsTab}[tab] ?? ordersTab;
  const reload = view(body, canAct);
  // Orders change state and alerts arrive while the operator watches: reload this tab when they do.
  const reloadSoon = debounce(reload, 300);
  const stream = openStream({
    onStatus: (status) => {
      liveEl.textContent = statusText(status);
      liveEl.dataset.status = status;
    },
    onMessage: (message) => {
      if (message.type === "order_state" || message.type === "alert") reloadSoon();
    },
  });
  return () => {
    stream.close();
    reloadSoon.cancel();
  };
}

function ordersTab(body, _canAct) {
  const stateSelect = h("select", {id: "filter-state", name: "state"},
    h("option", {value: ""}, "any state"), STATES.map((s) => h("option", {value: s}, s)));
  const pairSelect = h("select", {id: "filter-pair", name: "pair_id"}, h("option", {value: ""}, "any pair"));
  const listEl = h("div", {id: "orders-list"});
  const prev = h("button", {type: "button", class: "secondary", id: "page-prev", disabled: true}, "← Previous");
  const next = h("button", {type: "button", class: "secondary", id: "page-next", disabled: true}, "Next →");
  const cursors = [null];  // cursors[i] opens page i; the last page's next_cursor is pushed when known
  let page = 0;

  const load = () => guard(async () => {
    const query = new URLSearchParams({limit: String(PAGE_SIZE)});
    if (stateSelect.value) query.set("state", stateSelect.value);
    if (pairSelect.value) query.set("pair_id", pairSelect.value);
    if (cursors[page]) query.set("cursor", cursors[page]);
    const response = await api("GET", `/api/v1/orders?${query}`);
    fill(listEl, ordersTable(listOf(response, "orders"), {showOwner: true}));
    cursors.length = page + 1;
    if (response?.next_cursor) cursors.push(response.next_cursor);
    prev.disabled = page === 0;
    next.disabled = cursors.length <= page + 1;
  });
  const restart = () => { page = 0; cursors.length = 1; load(); };
  stateSelect.addEventListener("change", restart);
  pairSelect.addEventListener("change", restart);
  prev.addEventListener("click", () => { page -= 1; load(); });
  next.addEventListener("click", () => { page += 1; load(); });

  fill(body,
    h("form", {class: "filters", onsubmit: (e) => e.preventDefault()},
      h("label", {for: "filter-state"}, "State"), stateSelect,
      h("label", {for: "filter-pair"}, "Pair"), pairSelect),
    listEl,
    h("p", {class: "pager"}, prev, " ", next));
  guard(async () => {
    const pairs = listOf(await api("GET", "/api/v1/pairs"), "pairs");
    pairSelect.append(...pairs.map((p) => h("option", {value: p.pair_id}, p.symbol ?? p.pair_id)));
  });
  load();
  return load;
}

function attentionTab(body, canAct) {
  // The outcome stays above the queue: a resolved order leaves the queue with its card.
  const outcome = h("p", {id: "attention-outcome", class: "outcome", "aria-live": "polite"});
  const listEl = h("div", {id: "attention-list"});
  let shown = null;
  const load = () => guard(async () => {
    const items = listOf(await api("GET", "/api/v1/attention"), "orders");
    // Rebuilt only when the queue changes: another order's event must not wipe a half-written resolve.
    const key = JSON.stringify(items.map((item) => [item.order_id, item.reason, item.since]));
    if (key === shown) return;
    shown = key;
    fill(listEl, items.length ? items.map((item) => attentionCard(item, canAct, outcome, load))
      : h("p", {class: "muted"}, "Nothing needs an operator."));
  });
  fill(body, outcome, listEl);
  load();
  return load;
}

function attentionCard(item, canAct, outcome, reload) {
  const id = item.order_id;
  // The server lists each legal target with what it does to the money; offer exactly those.
  const options = Object.entries(item.resolve_options ?? {});
  const target = h("select", {name: "to", id: `resolve-to-${id}`},
    options.map(([state]) => h("option", {value: state}, state)));
  const effect = h("p", {class: "hint", "aria-live": "polite"});
  const showEffect = () => { effect.textContent = (item.resolve_options ?? {})[target.value] ?? ""; };
  target.addEventListener("change", showEffect);
  showEffect();
  const reason = h("input", {name: "reason", id: `resolve-reason-${id}`, required: true, autocomplete: "off"});
  const form = canAct && options.length > 0 && h("form", {class: "resolve", onsubmit: (event) => {
    event.preventDefault();
    guard(async () => {
      showOutcome(outcome, await sendCommand(`/api/v1/orders/${encodeURIComponent(id)}/resolve`,
        {to: target.value, reason: reason.value.trim()}), `order ${id.slice(0, 8)}: `);
      reload();
    });
  }},
    h("label", {for: `resolve-to-${id}`}, "Move to"), target,
    h("label", {for: `resolve-reason-${id}`}, "Reason"), reason,
    h("button", {type: "submit"}, "Resolve"));
  return h("section", {class: "card attention"},
    h("h2", {}, h("a", {href: `#/orders/${encodeURIComponent(id)}`, class: "mono break"}, id)),
    h("p", {class: "reason"}, item.reason ?? ""),
    kv({pair: item.pair, owner: item.owner, in_attention_since: fmtTime(item.since)}),
    form, form && effect);
}

function alertsTab(body, canAct) {
  const openOnly = h("input", {type: "checkbox", id: "alerts-open", checked: true});
  const listEl = h("div", {id: "alerts-list"});
  const load = () => guard(async () => {
    const alerts = listOf(await api("GET", `/api/v1/alerts${openOnly.checked ? "?open=true" : ""}`), "alerts");
    if (!alerts.length) return fill(listEl, h("p", {class: "muted"}, "No alerts."));
    return fill(listEl, table(alerts, [
      ["id", "Id"], ["kind", "Kind"], ["subject", "Subject"], ["message", "Message"],
      ["created_at", "Raised", (at) => timeText(at)],
      ["state", "State", (state, alert) => state === "acked" ? `acked ${fmtTime(alert.acked_at)}` : state],
      ["id", "", (alertId, alert) => canAct && alert.state === "open" ? h("button", {
        type: "button", class: "secondary", "data-alert": alertId, onclick: () => guard(async () => {
          await api("POST", `/api/v1/alerts/${encodeURIComponent(alertId)}/ack`);
          await load();
        })}, "Acknowledge") : ""],
    ]));
  });
  openOnly.addEventListener("change", load);
  fill(body, h("p", {class: "check"}, openOnly, h("label", {for: "alerts-open"}, "open alerts only")), listEl);
  load();
  return load;
}

function haltTab(body, canAct) {
  const statusEl = h("div", {id: "halt-status"});
  const account = h("input", {id: "halt-account", name: "account", placeholder: "all accounts", autocomplete: "off"});
  const reason = h("input", {id: "halt-reason", name: "reason", autocomplete: "off"});
  const act = (action) => guard(async () => {
    const payload = {action, reason: reason.value.trim() || `${action} from the dashboard`};
    if (account.value.trim()) payload.account = account.value.trim();
    await api("POST", "/api/v1/halt", payload);
    await load();
  });
  const load = () => guard(async () => {
    const status = await api("GET", "/api/v1/halt");
    const halts = listOf(status, "halts");
    fill(statusEl, halts.length
      ? [h("p", {class: "warn"}, "Quoting is halted:"), table(halts)]
      : h("p", {}, "No halt in force: every account may quote."));
  });
  fill(body, section("Halts in force", statusEl), canAct && section("Halt or lift",
    h("form", {class: "filters", onsubmit: (e) => e.preventDefault()},
      h("label", {for: "halt-account"}, "Account"), account,
      h("label", {for: "halt-reason"}, "Reason"), reason,
      h("button", {type: "button", id: "halt", class: "danger", onclick: () => act("halt")}, "Halt quoting"),
      h("button", {type: "button", id: "lift", onclick: () => act("lift")}, "Lift"))));
  load();
  return load;
}

function accountsTab(body) {
  const load = () => guard(async () => {
    const accounts = listOf(await api("GET", "/api/v1/accounts"), "accounts");
    if (!accounts.length) return fill(body, h("p", {class: "muted"}, "No exchange accounts."));
    return fill(body, h("div", {class: "grid"}, accounts.map((account) => h("section", {class: "card"},
      h("h2", {}, `${account.account_id} `, account.halted ? h("span", {class: "badge state-attention"}, "halted") : null),
      kv({exchange: account.exchange, enabled: account.enabled,
          reconciled: account.reconciled ?? "unknown (service not running)"}),
      h("h3", {}, "Orders' balances on it"), kv(account.balances ?? {}),
      h("h3", {}, "Breakers"), (account.breakers ?? []).length ? table(account.breakers) : h("p", {}, "none tripped"),
      (account.halts ?? []).length ? [h("h3", {}, "Halts"), table(account.halts)] : null,
      (account.alerts ?? []).length ? [h("h3", {}, "Open alerts"), table(account.alerts, [
        ["kind", "Kind"], ["message", "Message"], ["created_at", "Raised", (at) => fmtTime(at)]])] : null))));
  });
  load();
  return load;
}

function campaignsTab(body) {
  const part = (title, rows) => section(title, rows?.length ? table(rows) : h("p", {class: "muted"}, "none"));
  const load = () => guard(async () => {
    const answer = await api("GET", "/api/v1/campaigns");
    return fill(body, part("HuFi campaigns (as last listed)", answer.campaigns),
      part("Enrollments", answer.enrollments), part("Estimated rewards per order", answer.estimates));
  });
  load();
  return load;
}
