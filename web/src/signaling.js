// The Socket.IO connection to the /consult namespace (docs/protocol.md). Every client event is
// sent with an acknowledgement; `call` resolves with the ack's body or rejects with a
// SignalError carrying the server's code ({ok: false, error: {code, message}}).

import { io } from "socket.io-client";

const ACK_TIMEOUT_MS = 15000;

export class SignalError extends Error {
  constructor(code, message, errors) {
    super(message || code);
    this.code = code;
    /** validation_failed: [{location, message}] naming the fields. */
    this.errors = errors || null;
  }
}

export class Signaling {
  constructor({ token, consultId }) {
    this.socket = io("/consult", {
      auth: { token, consult_id: consultId },
      transports: ["websocket"],
      autoConnect: false,
      reconnectionDelay: 500,
      reconnectionDelayMax: 5000,
    });
  }

  /** Register a handler for a server event (or connect, disconnect, connect_error). */
  on(event, handler) {
    this.socket.on(event, handler);
    return this;
  }

  onReconnectAttempt(handler) {
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
      this.socket.timeout(timeout).emit(event, payload, (err, ack) => {
        if (err) {
          reject(new SignalError("timeout", `no answer to ${event}`));
        } else if (!ack || typeof ack !== "object") {
          reject(new SignalError("bad_response", `a malformed answer to ${event}`));
        } else if (ack.ok) {
          resolve(ack);
        } else {
          const error = ack.error || {};
          reject(new SignalError(error.code || "internal", error.message, error.errors));
        }
      });
    });
  }

  close() {
    this.socket.disconnect();
  }
}
