// mmflow dashboard: boots the page, finishes a Mixin login coming back with ?code=, and routes
// #/… to a view. Views live in user.js, order.js and operator.js; every call goes through api.js.
//
//   #/                 log in / my orders          #/ops/orders      operator: orders (filters, pages)
//   #/new              new order (pay links)       #/ops/attention   attention queue and resolve
//   #/orders/<id>      one order, live             #/ops/alerts|halt|accounts|campaigns

import {currentSession, finishMixinLogin, logout, onSessionChange} from "./api.js";
import {orderView} from "./order.js";
import {operatorView} from "./operator.js";
import {clearError, fill, guard, h, shortId, showError} from "./ui.js";
import {homeView, newOrderView} from "./user.js";

const main = document.getElementById("main");
let cleanup = null;

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  clearError();
  const [, first = "", second = ""] = location.hash.replace(/^#/, "").split("/").map(decodeURIComponent);
  const session = currentSession();
  if (first === "orders" && second && session) cleanup = orderView(main, second);
  else if (first === "new") cleanup = newOrderView(main);
  else if (first === "ops") cleanup = operatorView(main, second || "orders");
  else cleanup = homeView(main);
  renderHeader();
  main.focus({preventScroll: true});
}

function renderHeader() {
  const session = currentSession();
  const links = session?.role === "user"
    ? [["#/", "My orders"], ["#/new", "New order"]]
    : session ? [["#/ops/orders", "Orders"], ["#/ops/attention", "Attention"], ["#/ops/alerts", "Alerts"]]
      : [["#/", "Log in"], ["#/new", "New order"]];
  const here = location.hash || "#/";
  fill(document.getElementById("nav"),
    links.map(([href, text]) => h("a", {href, "aria-current": here === href ? "page" : null}, text)));
  fill(document.getElementById("who"), session ? [
    h("span", {}, session.role === "user" ? "user " : `${session.role} `,
      session.user_id ? shortId(session.user_id) : session.subject ?? ""),
    " ",
    h("button", {type: "button", id: "logout", class: "secondary", onclick: () => guard(async () => {
      await logout();
      location.hash = "#/";
    })}, "Log out"),
  ] : []);
}

/** Mixin sends the browser back with ?code=&state= (or ?error=): finish the login, then drop the query. */
async function finishOAuthRedirect() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;
  history.replaceState(null, "", `${location.pathname.replace(/[^/]*$/, "")}#/`);
  if (params.has("error")) {
    showError(`Mixin login did not complete (${params.get("error")})`);
    return;
  }
  await guard(() => finishMixinLogin(params.get("code"), params.get("state")));
}

// Nothing escapes as a raw stack: an unexpected failure in the page is one line like an API error.
window.addEventListener("error", (event) => showError(event.message || "unexpected error in the page"));
window.addEventListener("unhandledrejection", (event) => showError(event.reason?.message || "unexpected error"));

onSessionChange((session) => {
  if (session) renderHeader();
  else if (location.hash === "#/" || !location.hash) route();  // logged out (or the refresh token refused)
  else location.hash = "#/";
});
window.addEventListener("hashchange", route);
await finishOAuthRedirect();
route();
