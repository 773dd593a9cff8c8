// The Socket.IO connection to the /consult namespace (docs/protocol.md). Every client event is
// sent with an acknowledgement; `call` resolves with the ack's body or rejects with a
// SignalError carrying the server's code ({ok: false, error: {code, message}}). With several
// workers the socket connects at the consult's worker (the session's `worker.url`), and moves
// when a `join` answers `wrong_worker`. Packets are msgpack (`socket.io-msgpack-parser`): a
// notes update travels as bytes inside its event, one WebSocket frame.

import { io } from "socket.io-client";
import * as msgpackParser from "socket.io-msgpack-parser";

const ACK_TIMEOUT_MS = 15000;

/**
 * The payload as the msgpack encoder must see it: its encoder writes an ArrayBuffer as bytes but
 * a typed array (what Yjs hands out) as a map of its indices, so each top-level Uint8Array field
 * becomes the ArrayBuffer of exactly its bytes.
 */
export function wirePayload(payload) {
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) return payload;
  let out = payload;
  for (const [key, value] of Object.entries(payload)) {
    if (ArrayBuffer.isView(value)) {
      if (out === payload) out = { ...payload };
      out[key] = value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
    }
  }
  return out;
}

export class SignalError extends Error {
  constructor(code, message, errors, worker) {
    super(message || code);
    this.code = code;
    /** validation_failed: [{location, message}] naming the fields. */
    this.errors = errors || null;
    /** wrong_worker: {id, url}, the worker that serves the consult. */
    this.worker = worker || null;
  }
}

/**
 * Where the room's socket connects, for `io(uri, {path})`: the worker's public URL (from the
 * session or a `wrong_worker` answer; null for the page's own server), its Socket.IO under the
 * URL's path. null for an address the page will not use (not http(s), or with credentials, a
 * query or a fragment).
 */
export function socketAddress(workerUrl, pageOrigin) {
  if (workerUrl === null || workerUrl === undefined) return { uri: "/consult", path: "/socket.io" };
  let url;
  try {
    url = new URL(workerUrl);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.username || url.password || url.search || url.hash) return null;
  const prefix = url.pathname.replace(/\/+$/, "");
  const uri = url.origin === pageOrigin ? "/consult" : `${url.origin}/consult`;
  return { uri, path: `${prefix}/socket.io` };
}

// `wrong_worker` answers followed in a row before giving up (each names the consult's worker;
// more than a few means the placement keeps moving, and the person is better told).
const MAX_WORKER_FOLLOWS = 3;

export class Signaling {
  /** @param {{token: string, consultId: string, url?: string|null}} options `url`: the worker */
  constructor({ token, consultId, url = null }) {
    this._auth = { token, consult_id: consultId };
    this._handlers = [];
    this._attemptHandlers = [];
    this.socket = this._open(url);
    /** `wrong_worker` answers followed since the last successful join, and in all. */
    this.follows = 0;
    this.moves = 0;
  }

  /**
   * Another worker serves the consult (a `wrong_worker` answer's `worker`): connect there, at
   * most MAX_WORKER_FOLLOWS times in a row (`joined` resets the count). False: not followed.
   */
  follow(worker) {
    if (this.follows >= MAX_WORKER_FOLLOWS || typeof worker?.url !== "string") return false;
    this.follows++;
    try {
      this.moveTo(worker.url);
    } catch {
      return false;
    }
    this.moves++;
    return true;
  }

  /** A join succeeded: the next `wrong_worker` answers start a new count. */
  joined() {
    this.follows = 0;
  }

  _open(url) {
    const address = socketAddress(url, window.location.origin);
    if (!address) throw new SignalError("bad_response", "the server named an unusable address");
    const socket = io(address.uri, {
      path: address.path,
      auth: this._auth,
      transports: ["websocket"],
      parser: msgpackParser,
      autoConnect: false,
      // Its own connection: a socket moved to another worker leaves nothing shared behind.
      forceNew: true,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
    for (const [event, handler] of this._handlers) socket.on(event, handler);
    for (const handler of this._attemptHandlers) socket.io.on("reconnect_attempt", handler);
    return socket;
  }

  /**
   * Connect at another worker (the one a `wrong_worker` answer named) with the same handlers;
   * the current socket is closed without telling them.
   */
  moveTo(url) {
    const next = this._open(url); // an unusable address throws before anything is closed
    const current = this.socket;
    current.off(); // first: its disconnect must not reach the room's handlers
    for (const handler of this._attemptHandlers) current.io.off("reconnect_attempt", handler);
    current.disconnect();
    this.socket = next;
    next.connect();
  }

  /** Register a handler for a server event (or connect, disconnect, connect_error). */
  on(event, handler) {
    this._handlers.push([event, handler]);
    this.socket.on(event, handler);
    return this;
  }

  onReconnectAttempt(handler) {
    this._attemptHandlers.push(handler);
    this.socket.io.on("reconnect_attempt", handler);
  }

  connect() {
    this.socket.connect();
  }

  get connected() {
    return this.socket.connected;
  }

  /** Emit `event` with `payload` and wait for the acknowledgement. */
  call(event, payload = {}, { timeout = ACK_TIMEOUT_MS } = {}) {
    return new Promise((resolve, reject) => {
      this.socket.timeout(timeout).emit(event, wirePayload(payload), (err, ack) => {
        if (err) {
          reject(new SignalError("timeout", `no answer to ${event}`));
        } else if (!ack || typeof ack !== "object") {
          reject(new SignalError("bad_response", `a malformed answer to ${event}`));
        } else if (ack.ok) {
          resolve(ack);
        } else {
          const error = ack.error || {};
          reject(new SignalError(error.code || "internal", error.message, error.errors, error.worker));
        }
      });
    });
  }

  close() {
    this.socket.disconnect();
  }
}
