// The Socket.IO connection to the /consult namespace (docs/protocol.md). Every client event is
// sent with an acknowledgement; `call` resolves with the ack's body or rejects with a
// SignalError carrying the server's code ({ok: false, error: {code, message}}). With several
// workers the socket connects at the consult's worker (the session's `worker.url`), and moves
// when a `join` answers `wrong_worker`. When its worker is gone (the socket cannot reconnect) or
// stops serving the consult (`worker_leaving`: drained or fenced), it reads the session again to
// learn the consult's worker and connects there with the same token (docs/protocol.md).
// Packets are msgpack (`socket.io-msgpack-parser`): a notes update travels as bytes inside its
// event, one WebSocket frame.

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
// Connection attempts that failed in a row (nothing answered) before the session is read again:
// the worker may be gone, and its consults placed on another.
export const FAILURES_BEFORE_LOCATING = 2;
// Between reads of the session that found no worker (Redis or every worker away), growing.
const LOCATE_DELAYS_MS = [500, 1000, 2000, 4000, 5000];
// Codes that mean "ask where the consult lives again" rather than "give up".
const RELOCATE_CODES = new Set(["worker_leaving", "placement_unavailable"]);

/**
 * What the socket does about a failure: "follow" a `wrong_worker` answer's worker, "relocate"
 * (read the session again and connect where it says), "retry" (Socket.IO reconnects by itself)
 * or "fatal" (a refusal that another try would only repeat). `failures`: connection attempts
 * that failed in a row, this one included.
 */
export function recovery({ code = null, failures = 0 } = {}) {
  if (code === "wrong_worker") return "follow";
  if (RELOCATE_CODES.has(code)) return "relocate";
  if (code) return "fatal";
  return failures >= FAILURES_BEFORE_LOCATING ? "relocate" : "retry";
}

/**
 * A session read that another try would only repeat (the token revoked, the consult ended):
 * a 4xx answer with a code, other than being rate limited. Anything else is asked again.
 */
export function sessionRefused(error) {
  const status = error?.status ?? 0;
  return status >= 400 && status < 500 && status !== 429 && typeof error.code === "string";
}

/** The wait before the `attempt`-th (from 0) read of the session in a row, in ms. */
export function delay(attempt) {
  return LOCATE_DELAYS_MS[Math.min(attempt, LOCATE_DELAYS_MS.length - 1)];
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class Signaling {
  /**
   * @param {{token: string, consultId: string, url?: string|null,
   *   locate?: (() => Promise<string|null>)|null}} options `url`: the worker; `locate`: the
   *   session's worker URL read again (rejects with the server's `code` when refused)
   */
  constructor({ token, consultId, url = null, locate = null }) {
    this._auth = { token, consult_id: consultId };
    this._handlers = [];
    this._attemptHandlers = [];
    this._locate = locate;
    this._failures = 0;
    this._locating = null;
    this._streak = 0;
    this._closed = false;
    this.socket = this._open(url);
    /** `wrong_worker` answers followed since the last successful join, and in all. */
    this.follows = 0;
    this.moves = 0;
    /** Times the session was read again because the worker was gone or leaving. */
    this.relocations = 0;
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

  /** A join succeeded: the next `wrong_worker` answers and relocations start a new count. */
  joined() {
    this.follows = 0;
    this._streak = 0;
  }

  /**
   * A refused `join` the socket can recover from: `wrong_worker` (follow it) or
   * `placement_unavailable` (ask the session again shortly). False: the caller handles it.
   */
  recover(error) {
    const action = recovery({ code: error?.code });
    if (action === "follow") return this.follow(error.worker);
    if (action === "relocate" && this._locate) {
      this.relocate();
      return true;
    }
    return false;
  }

  /**
   * The worker is gone or leaving: drop this socket (the room's handlers see a "worker moved"
   * disconnect, as on any lost connection), read the session again and connect at the worker
   * it names, retrying with a growing delay while none is named. One relocation at a time.
   */
  relocate() {
    if (this._locating || this._closed || !this._locate) return;
    this.relocations++;
    const current = this.socket;
    this._detach(current);
    current.disconnect();
    for (const [event, handler] of this._handlers) if (event === "disconnect") handler("worker moved");
    // Relocations that did not end in a join (a worker still named though fenced) wait longer
    // each time: never a tight loop of session reads and connections.
    const pause = this._streak ? delay(this._streak - 1) : 0;
    this._streak++;
    this._locating = this._find(pause).finally(() => {
      this._locating = null;
    });
  }

  async _find(pause) {
    let attempt = 0;
    if (pause) await sleep(pause);
    while (!this._closed) {
      let url;
      try {
        url = await this._locate();
      } catch (error) {
        if (sessionRefused(error)) {
          for (const [event, handler] of this._handlers) if (event === "connect_error") handler({ data: { code: error.code } });
          return;
        }
        url = undefined; // no answer, a proxy's 502, placement_unavailable: ask again
      }
      if (url !== undefined && !this._closed) {
        try {
          this._switch(this._open(url));
          return;
        } catch {
          // an unusable address: ask again
        }
      }
      await sleep(delay(attempt++));
    }
  }

  _failed(error) {
    if (error?.data) return; // refused by the server: the room's handler decides
    this._failures++;
    if (recovery({ failures: this._failures }) === "relocate") this.relocate();
  }

  _detach(socket) {
    socket.off(); // first: its disconnect must not reach the room's handlers
    for (const handler of this._attemptHandlers) socket.io.off("reconnect_attempt", handler);
  }

  _switch(next) {
    this._failures = 0;
    this.socket = next;
    next.connect();
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
    socket.on("connect", () => {
      this._failures = 0;
    });
    socket.on("connect_error", (error) => this._failed(error));
    // The server stops serving the consult here (drained or fenced) and disconnects next.
    socket.on("error", (message) => {
      if (recovery({ code: message?.code }) === "relocate") this.relocate();
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
    this._detach(current);
    current.disconnect();
    this._switch(next);
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
    this._closed = true;
    this.socket.disconnect();
  }
}
