// When the browser's peer connection should be replaced: its network changed or ICE gave up.
// The SFU cannot restart ICE on a peer connection (aiortc), so the page asks for a new one
// (`media-restart {pc}`) and keeps its seat; the others see at most a short freeze of its tile.
//
// - `failed`: at once.
// - `disconnected`: after a grace (browsers often recover from a brief loss by themselves,
//   e.g. a Wi-Fi hiccup); cancelled if the connection comes back first.
// - the page's `online` event (after `offline`): the network changed (Wi-Fi to cellular, a
//   new address), so the old candidate pair is likely dead even if ICE has not noticed yet.
//   (socket.io's engine closes its socket on `offline` too, off localhost: the reconnect's
//   `join` then brings a new peer connection, and `rejoined` makes `online` not ask again.)

/** How long a `disconnected` peer connection may recover on its own. */
export const DISCONNECTED_GRACE_MS = 3000;

export class NetworkWatch {
  /**
   * @param {object} options
   * @param {(reason: "failed"|"disconnected"|"network_changed") => void} options.restart
   * @param {number} [options.graceMs]
   * @param {(fn: () => void, ms: number) => any} [options.setTimer]
   * @param {(handle: any) => void} [options.clearTimer]
   */
  constructor({
    restart,
    graceMs = DISCONNECTED_GRACE_MS,
    // Wrapped: a browser's setTimeout called as a method of this object throws.
    setTimer = (fn, ms) => setTimeout(fn, ms),
    clearTimer = (handle) => clearTimeout(handle),
  }) {
    this._restart = restart;
    this._graceMs = graceMs;
    this._setTimer = setTimer;
    this._clearTimer = clearTimer;
    this._timer = null;
    this._offline = false;
  }

  /** The peer connection's `connectionState`. */
  connectionState(state) {
    if (state === "disconnected") {
      if (this._timer === null && !this._offline) {
        this._timer = this._setTimer(() => {
          this._timer = null;
          this._restart("disconnected");
        }, this._graceMs);
      }
      return;
    }
    this._disarm();
    if (state === "failed" && !this._offline) this._restart("failed");
  }

  /** The page lost its network: nothing can connect until `online`. */
  offline() {
    this._offline = true;
    this._disarm();
  }

  /** The page has a network again (maybe another one). */
  online() {
    const wasOffline = this._offline;
    this._offline = false;
    this._disarm();
    if (wasOffline) this._restart("network_changed");
  }

  /** The socket joined again: the join brings a new peer connection by itself. */
  rejoined() {
    this._offline = false;
    this._disarm();
  }

  close() {
    this._disarm();
  }

  _disarm() {
    if (this._timer !== null) {
      this._clearTimer(this._timer);
      this._timer = null;
    }
  }
}
