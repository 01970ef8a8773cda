// The live stream (/api/v1/stream, WebSocket): the server pushes order_state, fill, kpi and alert
// messages. The views treat a message as "this changed": they apply what it says and reload the
// record from the API, so a missed message (a reconnect) never leaves the page wrong.

import {currentSession, onSessionChange} from "./api.js";

const MAX_DELAY_MS = 30000;

/**
 * Opens the stream and keeps it open (reconnecting with back-off) until close() is called.
 * onMessage(msg) gets every parsed message; onStatus("connecting"|"live"|"reconnecting") the connection's state.
 */
export function openStream({onMessage, onStatus}) {
  let socket = null;
  let closed = false;
  let delay = 1000;
  let timer = null;

  function connect() {
    const session = currentSession();
    if (closed || !session) return;
    onStatus("connecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/stream`);
    // The token goes in the first message, not the URL, so it never lands in an access log.
    socket.onopen = () => socket.send(JSON.stringify({token: currentSession()?.access_token}));
    socket.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (message.type === "hello") {
        delay = 1000;
        onStatus("live");
      }
      onMessage(message);
    };
    socket.onclose = () => {
      if (closed) return;
      onStatus("reconnecting");
      timer = setTimeout(connect, delay);
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    };
  }

  // The server checks the credential again now and then: a refreshed token is handed on, so the stream
  // outlives the short-lived access token it was opened with.
  const unsubscribe = onSessionChange((session) => {
    if (session && socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({token: session.access_token}));
  });
  connect();
  return {
    close() {
      closed = true;
      unsubscribe();
      clearTimeout(timer);
      socket?.close();
    },
  };
}

/** A small "● live" / "reconnecting…" indicator, updated by setStatus. */
export function statusText(status) {
  return {connecting: "connecting…", live: "● live", reconnecting: "○ reconnecting…"}[status] || status;
}
