// DOM helpers shared by every view. Text from the API always goes in as text nodes (never as HTML source),
// so nothing the server or a user wrote can run as markup.

/** Builds an element: h("a", {href: "#/"}, "home", child, ...). `on<event>` attributes become listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const errorLine = () => document.getElementById("error");

/** Shows one line of error text at the top of the page (the API's `error`, or what went wrong). */
export function showError(message) {
  const line = errorLine();
  line.textContent = `Error: ${oneLine(message)}`;
  line.hidden = false;
}

export function clearError() {
  const line = errorLine();
  line.hidden = true;
  line.textContent = "";
}

/** First line of a message, bounded: a server message or an exception never floods the page. */
export function oneLine(message) {
  const text = String(message ?? "unknown error").split("\n")[0].trim();
  return text.length > 300 ? `${text.slice(0, 297)}…` : text;
}

/** Runs an async action; its failure becomes the error line instead of an uncaught rejection. */
export async function guard(action) {
  try {
    clearError();
    return await action();
  } catch (err) {
    showError(err?.message || err);
    return undefined;
  }
}

/** "2026-01-02 03:04:05 UTC" from an ISO string or epoch seconds; other values shown as they are. */
export function fmtTime(value) {
  const date = toDate(value);
  if (!date) return value == null ? "–" : String(value);
  return date.toISOString().replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}

/** A time that never wraps in a narrow table column. */
export function timeText(value) {
  return h("span", {class: "nowrap"}, fmtTime(value));
}

/** A Date from an ISO string or epoch seconds, or null. */
export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A long id shortened for tables; the full id stays in the title tooltip. */
export function shortId(id) {
  const text = String(id ?? "");
  return h("span", {class: "mono", title: text}, text.length > 12 ? `${text.slice(0, 8)}…` : text);
}

/** A coloured badge for an order state (the word is always shown: colour is never the only cue). */
export function stateBadge(state) {
  return h("span", {class: `badge state-${String(state).replace(/[^a-z_]/g, "")}`}, String(state ?? "?"));
}

const label = (key) => String(key).replace(/_/g, " ");

/** A definition list of an object's fields; nested objects nest, lists of objects become tables. */
export function kv(obj) {
  if (obj === null || obj === undefined) return h("p", {class: "muted"}, "–");
  if (typeof obj !== "object") return h("span", {}, String(obj));
  const entries = Object.entries(obj);
  if (!entries.length) return h("p", {class: "muted"}, "none");
  return h("dl", {class: "kv"}, entries.map(([key, value]) => [h("dt", {}, label(key)), h("dd", {}, cell(value, key))]));
}

const isTimeKey = (key) => key === "at" || String(key).endsWith("_at");

function cell(value, key = "") {
  if (value === null || value === undefined) return "–";
  if (isTimeKey(key) && typeof value !== "object") return timeText(value);
  if (Array.isArray(value)) {
    if (!value.length) return "none";
    return value.every((v) => v && typeof v === "object" && !Array.isArray(v)) ? table(value) : value.join(", ");
  }
  if (typeof value === "object") return kv(value);
  if (typeof value === "boolean") return value ? "yes" : "no";
  return String(value);
}

// Columns of running text: they keep room for a few words (a phone scrolls the table instead of squeezing them).
const WIDE_KEYS = new Set(["reason", "message", "note", "purpose", "details", "result"]);

/** How a column is laid out: "shrink" (as narrow as its unbroken content), "wide" (running text) or none. */
function columnClass(key, explicit) {
  if (explicit !== undefined) return explicit;
  if (isTimeKey(key) || key === "state" || key === "from" || key === "to") return "shrink";
  return WIDE_KEYS.has(key) ? "wide" : null;
}

/**
 * A table of rows (objects). columns: [key, heading, render?, layout?] (layout "shrink" | "wide" | null, by
 * default from the key); by default every key of the rows. Wrapped so it scrolls sideways on a phone.
 */
export function table(rows, columns = null, caption = null) {
  const cols = (columns || columnsOf(rows)).map(([key, heading, render, layout]) =>
    [key, heading, render, columnClass(key, layout)]);
  const content = (row, [key, , render, layout]) => {
    const value = render ? render(row[key], row) : cell(row[key], key);
    return layout === "wide" ? h("div", {class: "wide"}, value) : value;
  };
  return h("div", {class: "table-wrap"},
    h("table", {},
      caption && h("caption", {}, caption),
      h("thead", {}, h("tr", {}, cols.map(([, heading, , layout]) => h("th", {scope: "col", class: layout}, heading)))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        cols.map((col) => h("td", {class: col[3]}, content(row, col))))))));
}

/** Every field of the rows as a column: times first, then in `preferred` order, then the rest as they come. */
export function columnsOf(rows, preferred = []) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const rank = (k) => (isTimeKey(k) ? -1 : preferred.includes(k) ? preferred.indexOf(k) : preferred.length);
  return keys.map((k, i) => [k, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map(([k]) => [k, label(k)]);
}

/** The URL if it is a web link (a pay link, Mixin's authorize page), else null: never javascript: or data:. */
export function safeUrl(url) {
  try {
    return ["https:", "http:"].includes(new URL(url).protocol) ? url : null;
  } catch {
    return null;
  }
}

/** A section with a heading. */
export function section(title, ...children) {
  return h("section", {class: "card"}, h("h2", {}, title), children);
}

/** A read-only field with its value and a Copy button (a memo, a link). */
export function copyField(name, value) {
  const input = h("input", {type: "text", readonly: true, value, "aria-label": name, class: "mono"});
  const status = h("span", {class: "copied", "aria-live": "polite"});
  const button = h("button", {type: "button", class: "secondary", onclick: async () => {
    status.textContent = (await copyText(value, input)) ? "copied" : "select and copy by hand";
  }}, "Copy");
  return h("div", {class: "copy"}, h("span", {class: "copy-name"}, name), input, button, status);
}

async function copyText(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // The clipboard API needs a secure context; plain http on a LAN address falls back to a selection.
    input.select();
    try { return document.execCommand("copy"); } catch { return false; }
  }
}

/** The array in a list response: a bare array or the first array-valued field ({orders: [...]}). */
export function listOf(response, key) {
  if (Array.isArray(response)) return response;
  if (response && Array.isArray(response[key])) return response[key];
  const first = response && Object.values(response).find(Array.isArray);
  return first || [];
}

/** Calls fn at most once per `ms` burst (the last call wins): many stream events → one reload. */
export function debounce(fn, ms) {
  let timer = null;
  const wrapped = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(timer);
  return wrapped;
}
