// The room page's side of the embed SDK (web/embed.js, docs/embedding.md): events out to the
// embedding page, commands in from it, over postMessage.
//
// Which parent may talk to us: the server's CSP frame-ancestors lets only TRIAD_ALLOWED_ORIGINS
// (and our own origin) frame this page at all, but the page is static and does not know that
// list. The SDK names its origin in the link's fragment (`embedder=`); we accept the claim only
// if it is what the browser says our parent is (location.ancestorOrigins, or the referrer where
// that is missing), then post only to that exact origin and take commands only from
// window.parent at that origin. A wrong claim can only make the bridge silent.

const PROTOCOL = 1;

/** Names the SDK knows (web/embed.js EVENTS); each carries ids and roles only, never names. */
const EVENTS = new Set([
  "joined",
  "admitted",
  "participant-joined",
  "participant-left",
  "share-started",
  "share-stopped",
  "left",
  "ended",
  "error",
]);

function exactOrigin(value) {
  if (typeof value !== "string" || !value) return null;
  try {
    const origin = new URL(value).origin;
    return origin !== "null" && origin === value ? origin : null;
  } catch {
    return null;
  }
}

/** The parent's origin as the browser reports it, or undefined when it does not say. */
function reportedParentOrigin() {
  const ancestors = window.location.ancestorOrigins;
  if (ancestors && ancestors.length > 0) return ancestors[0];
  if (document.referrer) {
    try {
      return new URL(document.referrer).origin;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/** The embedding origin we may talk to, or null (not framed, no claim, or a false claim). */
export function embedderOrigin(claimed) {
  if (window.parent === window) return null;
  const origin = exactOrigin(claimed);
  if (!origin) return null;
  const reported = reportedParentOrigin();
  if (reported !== undefined && reported !== origin) {
    console.warn("triad: the embedder named in the link is not this page's parent; embed events are off");
    return null;
  }
  return origin;
}

export class EmbedBridge {
  /**
   * @param {string} origin the embedder's origin (from embedderOrigin)
   * @param {(command: string) => Promise<object>} onCommand runs a command; resolves with a
   *   detail or rejects with an error carrying `code`
   */
  constructor(origin, onCommand) {
    this.origin = origin;
    this.onCommand = onCommand;
    this._warned = new Set();
    this._onMessage = (event) => this._receive(event);
    window.addEventListener("message", this._onMessage);
    this._post({ type: "ready" });
  }

  /** An event for the embedder: `detail` must hold only ids, roles, codes and the plan id. */
  send(event, detail = {}) {
    if (!EVENTS.has(event)) return;
    this._post({ type: "event", event, detail });
  }

  _post(message) {
    // The exact targetOrigin: if the parent is not (or no longer) that origin, nothing is sent.
    window.parent.postMessage({ triad: PROTOCOL, ...message }, this.origin);
  }

  async _receive(event) {
    const data = event.data;
    const looksLikeOurs = data && typeof data === "object" && data.triad === PROTOCOL;
    if (!looksLikeOurs) return;
    if (event.source !== window.parent || event.origin !== this.origin) {
      // Said once per origin: helps an integrator whose page posts from the wrong window.
      if (!this._warned.has(event.origin)) {
        this._warned.add(event.origin);
        console.warn(`triad: ignored an embed message from ${event.origin || "an unknown origin"}`);
      }
      return;
    }
    if (data.type !== "command" || typeof data.command !== "string") return;
    const id = data.id;
    try {
      const detail = await this.onCommand(data.command);
      this._post({ type: "result", id, ok: true, detail: detail || {} });
    } catch (error) {
      this._post({ type: "result", id, ok: false, code: error?.code || "internal" });
    }
  }
}
