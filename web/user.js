// The user's side: log in (Mixin OAuth, or an operator's API token), my orders, and a new order
// (an order intent: the memo and Mixin pay link of each leg, so paying needs no encoding by hand).

import {api, currentSession, mixinAuthorizeUrl, tokenLogin} from "./api.js";
import {ordersTable, payCard} from "./order.js";
import {openStream} from "./stream.js";
import {debounce, fill, guard, h, kv, listOf, safeUrl, section} from "./ui.js";

/** The start page: logins when signed out, "my orders" for a signed-in user. */
export function homeView(main) {
  const session = currentSession();
  if (session?.role === "user") return myOrdersView(main);
  if (session) {
    location.hash = "#/ops/orders";
    return undefined;
  }
  fill(main,
    h("h1", {}, "Market making on Mixin"),
    h("div", {class: "grid"},
      section("Users",
        h("p", {}, "Log in with your Mixin account to follow your orders, their KPIs and statements, ",
          "and to get exit and add-funds instructions."),
        h("button", {type: "button", id: "mixin-login", onclick: () => guard(async () => {
          const url = safeUrl(await mixinAuthorizeUrl());
          if (!url) throw new Error("the server gave no usable Mixin login address");
          location.assign(url);
        })}, "Log in with Mixin"),
        h("p", {}, h("a", {href: "#/new"}, "Start a new order"), " (no login needed to pay)")),
      section("Operators", operatorLoginForm())));
  return undefined;
}

/** The form where an operator or viewer pastes an API token (mmf_…). */
export function operatorLoginForm() {
  const input = h("input", {type: "password", id: "api-token", name: "token", autocomplete: "off",
                            required: true, placeholder: "mmf_…"});
  return h("form", {id: "token-login", onsubmit: (event) => {
    event.preventDefault();
    guard(async () => {
      await tokenLogin(input.value.trim());
      input.value = "";
      location.hash = "#/ops/orders";
    });
  }},
    h("label", {for: "api-token"}, "API token"),
    h("p", {class: "hint"}, "Made on the server with ", h("code", {}, "python run.py tokens create --role operator"), "."),
    input, " ", h("button", {type: "submit"}, "Log in with token"));
}

function myOrdersView(main) {
  const listEl = h("div", {id: "my-orders"}, h("p", {class: "muted"}, "Loading…"));
  fill(main,
    h("h1", {}, "My orders"),
    h("p", {}, h("a", {href: "#/new", class: "button"}, "New order")),
    listEl);
  const load = () => guard(async () => fill(listEl, ordersTable(listOf(await api("GET", "/api/v1/orders"), "orders"))));
  // A state change of one of the user's orders (the stream sends only theirs) reloads the list.
  const reload = debounce(load, 300);
  const stream = openStream({onStatus: () => {}, onMessage: (m) => { if (m.type === "order_state") reload(); }});
  load();
  return () => {
    stream.close();
    reload.cancel();
  };
}

/** The new-order form: pair and amounts → the order id and what to pay, leg by leg. */
export function newOrderView(main) {
  const pairSelect = h("select", {id: "pair", name: "pair_id", required: true});
  const pairInfo = h("div", {class: "pair-info"});
  const base = h("input", {id: "base-amount", name: "base_amount", inputmode: "decimal", required: true,
                           pattern: "[0-9]+(\\.[0-9]+)?", autocomplete: "off"});
  const quote = h("input", {id: "quote-amount", name: "quote_amount", inputmode: "decimal", required: true,
                            pattern: "[0-9]+(\\.[0-9]+)?", autocomplete: "off"});
  const baseLabel = h("span", {}, "Base amount");
  const quoteLabel = h("span", {}, "Quote amount");
  const resultEl = h("div", {id: "intent", "aria-live": "polite"});
  let pairs = [];

  const showPair = () => {
    const pair = pairs.find((p) => p.pair_id === pairSelect.value);
    if (!pair) return;
    const [b, q] = String(pair.symbol ?? "/").split("/");
    baseLabel.textContent = `Base amount (${pair.base_symbol ?? b})`;
    quoteLabel.textContent = `Quote amount (${pair.quote_symbol ?? q})`;
    const {pair_id: _id, symbol: _symbol, ...rest} = pair;
    fill(pairInfo, h("details", {}, h("summary", {}, "Pair details: bounds, fees, campaigns"), kv(rest)));
  };
  pairSelect.addEventListener("change", showPair);

  const form = h("form", {id: "new-order", onsubmit: (event) => {
    event.preventDefault();
    guard(async () => {
      const intent = await api("POST", "/api/v1/order-intents",
        {pair_id: pairSelect.value, base_amount: base.value.trim(), quote_amount: quote.value.trim()});
      fill(resultEl, intentResult(intent));
      resultEl.querySelector("h2")?.focus();
    });
  }},
    h("label", {for: "pair"}, "Pair"), pairSelect, pairInfo,
    h("label", {for: "base-amount"}, baseLabel), base,
    h("label", {for: "quote-amount"}, quoteLabel), quote,
    h("p", {}, h("button", {type: "submit"}, "Get payment instructions")));

  fill(main, h("h1", {}, "New market-making order"), section("Pair and amounts", form), resultEl);
  guard(async () => {
    pairs = listOf(await api("GET", "/api/v1/pairs"), "pairs");
    fill(pairSelect, pairs.map((p) => h("option", {value: p.pair_id}, `${p.symbol ?? p.pair_id}${
      p.exchange ? ` on ${p.exchange}` : ""}`)));
    showPair();
  });
  return undefined;
}

function intentResult(intent) {
  const legs = intent.legs ?? [];
  const signedIn = currentSession()?.role === "user";
  return h("section", {class: "card"},
    h("h2", {tabindex: "-1"}, "Pay to start order ", h("span", {class: "mono break", id: "intent-order"}, intent.order_id)),
    h("p", {}, `Send each of the ${legs.length} transfers below from the same Mixin account, with its memo `,
      "(the pay link fills it in). The first payer owns the order."),
    legs.map((leg, i) => payCard(`Transfer ${i + 1}`, leg)),
    h("p", {}, signedIn
      ? h("a", {href: `#/orders/${encodeURIComponent(intent.order_id)}`}, "Follow this order")
      : "Log in with Mixin after paying to follow the order."));
}
