// The dashboard's only way to the server: JSON calls to /api/v1 with the session's credential.
// A user's session (Mixin login) holds a short-lived access token and a refresh token, renewed a minute
// before it expires; an operator's session holds the pasted API token. Both live in sessionStorage,
// so closing the tab logs out.

const KEY = "mmflow.session";
const REFRESH_MARGIN_S = 60;

/** A failed call: HTTP status (0 = no answer), the server's one-line `error`, and its JSON body if any. */
export class ApiError extends Error {
  constructor(status, message, body = null) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

/** The current session ({kind: "user"|"token", access_token, refresh_token?, expires_at?, role, user_id}) or null. */
export function currentSession() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY));
  } catch {
    return null;
  }
}

function saveSession(value) {
  sessionStorage.setItem(KEY, JSON.stringify(value));
  scheduleRefresh();
  listeners.forEach((fn) => fn(value));
}

/** Forgets the session (and stops refreshing it). */
export function dropSession() {
  sessionStorage.removeItem(KEY);
  clearTimeout(refreshTimer);
  listeners.forEach((fn) => fn(null));
}

/** Calls fn(session|null) whenever the session changes (login, refresh, logout); returns the unsubscribe. */
export function onSessionChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** GET/POST a JSON endpoint; resolves to the parsed body, rejects with ApiError. */
export async function api(method, path, body = undefined) {
  let response = await send(method, path, body);
  if (response.status === 401 && currentSession()?.refresh_token) {
    if (await refreshSession()) response = await send(method, path, body);
  }
  return parse(response);
}

async function send(method, path, body, token = currentSession()?.access_token) {
  const headers = {Accept: "application/json"};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    return await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
  } catch {
    throw new ApiError(0, "cannot reach the server");
  }
}

async function parse(response) {
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;  // a proxy's HTML error page: reported by status below, never shown raw
  }
  if (response.ok) return data;
  // {"error": "..."} for every failure; a refused command (409) answers its outcome with a `message`.
  let message = typeof data?.error === "string" ? data.error : data?.message || `HTTP ${response.status}`;
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    if (wait) message += ` (try again in ${wait} s)`;
  }
  throw new ApiError(response.status, message, data);
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const session = currentSession();
  if (!session?.refresh_token || !session.expires_at) return;
  // A minute before expiry (a fifth of the lifetime for short-lived tokens).
  const margin = Math.min(REFRESH_MARGIN_S, (session.ttl || 900) / 5);
  const inMs = Math.max(1, session.expires_at - margin - Date.now() / 1000) * 1000;
  refreshTimer = setTimeout(() => refreshSession(), inMs);
}

/** Trades the refresh token for new tokens (one at a time); false (and logged out) if the server refuses. */
export function refreshSession() {
  refreshing ||= (async () => {
    const session = currentSession();
    try {
      const tokens = await parse(await send("POST", "/api/v1/auth/refresh",
        {refresh_token: session.refresh_token}, null));
      saveSession({...session, ...userTokens(tokens)});
      return true;
    } catch (err) {
      if (err.status === 0) {
        // No answer: keep the session and try again shortly instead of logging the user out.
        refreshTimer = setTimeout(() => refreshSession(), 10000);
        return false;
      }
      dropSession();
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

function userTokens(tokens) {
  const ttl = Number(tokens.expires_in || 900);
  const out = {access_token: tokens.access_token, ttl, expires_at: Date.now() / 1000 + ttl};
  if (tokens.refresh_token) out.refresh_token = tokens.refresh_token;
  return out;
}

/** Where the "Log in with Mixin" button goes: the server builds Mixin's authorize URL (with its state). */
export async function mixinAuthorizeUrl() {
  return (await api("GET", "/api/v1/auth/mixin")).authorize_url;
}

/** Finishes a Mixin login: exchanges the callback's code for mmflow tokens and stores the session. */
export async function finishMixinLogin(code, state) {
  const body = {code};
  if (state) body.state = state;
  const tokens = await parse(await send("POST", "/api/v1/auth/mixin/callback", body, null));
  saveSession({kind: "user", role: "user", user_id: tokens.user_id, ...userTokens(tokens)});
  return currentSession();
}

/** Logs in with a pasted API token: kept only if /me accepts it. */
export async function tokenLogin(token) {
  const me = await parse(await send("GET", "/api/v1/me", undefined, token));
  saveSession({kind: "token", access_token: token, role: me.role, user_id: me.user_id ?? null,
               subject: me.subject ?? me.name ?? null});
  return currentSession();
}

/** Ends the session here, and on the server for a user's refresh token. */
export async function logout() {
  const session = currentSession();
  if (session?.kind === "user") {
    try {
      await api("POST", "/api/v1/auth/logout", {refresh_token: session.refresh_token});
    } catch {
      // Logging out locally is what matters; the refresh token also expires on its own.
    }
  }
  dropSession();
}

scheduleRefresh();
