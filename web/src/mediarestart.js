// Asking the server for a new peer connection on the same seat: `media-restart {pc}` when the
// browser's own fails, stays disconnected or its network changed (netchange.js says when), and
// again every MEDIA_RETRY_MS while that same peer connection is still the current one. The
// server's answer is idempotent: nothing happens if it already replaced it.

import { $ } from "./dom.js";
import { NetworkWatch } from "./netchange.js";
import { showBanner } from "./refusals.js";

const MEDIA_RETRY_MS = 8000;

export class MediaRestart {
  /**
   * @param {object} options
   * @param {() => boolean} options.live whether the room may ask (not finished, socket up)
   * @param {() => number|null|undefined} options.generation the current peer connection's `pc`
   * @param {(payload: {pc: number}) => Promise<unknown>} options.ask sends `media-restart`
   * @param {(code: string) => void} options.report a refusal, said in the room
   */
  constructor({ live, generation, ask, report }) {
    this._live = live;
    this._generation = generation;
    this._ask = ask;
    this._report = report;
    this._retry = null;
    /** How often this page asked for a new peer connection (the test hook shows it). */
    this.count = 0;
    this.network = new NetworkWatch({ restart: (reason) => this.needed(reason) });
  }

  /** The peer connection failed, or the network changed: ask for a new one. */
  needed(reason = "failed") {
    if (!this._live()) return; // the socket's reconnect brings a new one with its `join`
    showBanner(
      reason === "network_changed"
        ? "The network changed. Reconnecting the video…"
        : "The video connection was interrupted. Reconnecting…",
    );
    $("room").dataset.reconnecting = "true";
    const generation = this._generation();
    if (generation === null || generation === undefined) return;
    this.count++;
    this._ask({ pc: generation }).catch((error) => this._report(error.code));
    clearTimeout(this._retry);
    this._retry = setTimeout(() => {
      if (this._live() && this._generation() === generation) this.needed();
    }, MEDIA_RETRY_MS);
  }

  /** A `join` is under way or done: it brings its own peer connection. */
  cancel() {
    clearTimeout(this._retry);
  }

  close() {
    clearTimeout(this._retry);
    this.network.close();
  }
}
