// The embed SDK: a platform's page puts the consult room into an element of its own.
//
//   const room = Triad.mount(document.getElementById("consult"), {
//     joinUrl: "https://triad.example/c/c_123#token=...",
//     onEvent: (name, detail) => console.log(name, detail),
//   });
//   room.on("ended", ({ plan_id }) => showPlan(plan_id));
//   await room.toggleAudio();
//
// Built by build.mjs into dist/embed.js (a classic script that sets `window.Triad`) and
// dist/embed.mjs (an ES module exporting `mount` and `Triad`). docs/embedding.md describes the
// commands, the events and the security model.
//
// Security: the room runs in an iframe of the Triad origin (the server's CSP frame-ancestors
// admits only the origins in TRIAD_ALLOWED_ORIGINS). This side accepts a message only if it
// comes from that iframe's window AND from the join link's origin, and posts commands only to
// that origin. The page on the other side checks the same of us (web/src/embedbridge.js).

/** Messages between the SDK and the room page carry this tag and version. */
const PROTOCOL = 1;

/** Events the room page sends. Other names are dropped, so a page newer than this SDK is safe. */
export const EVENTS = Object.freeze([
  "ready",
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

const COMMANDS = Object.freeze({
  toggleAudio: "toggle-audio",
  toggleVideo: "toggle-video",
  leave: "leave",
  end: "end",
});

/** A command the room refused (`code` as in docs/api.md), or the SDK could not deliver. */
export class TriadCommandError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = "TriadCommandError";
    this.code = code;
  }
}

function parseJoinUrl(joinUrl) {
  let url;
  try {
    url = new URL(String(joinUrl), document.baseURI);
  } catch {
    throw new TypeError("Triad.mount: joinUrl is not a URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new TypeError("Triad.mount: joinUrl must be an http(s) URL");
  }
  const fragment = new URLSearchParams(url.hash.replace(/^#/, ""));
  if (!fragment.get("token")) {
    throw new TypeError("Triad.mount: joinUrl must carry its #token=... fragment");
  }
  // Tells the room page which origin to talk to; the page checks it against its real parent.
  fragment.set("embedder", window.location.origin);
  url.hash = fragment.toString();
  return url;
}

/**
 * Put the consult room into `element`.
 * @param {Element} element where the iframe goes (it fills the element; size the element)
 * @param {object} options
 * @param {string} options.joinUrl the participant's join link, with its `#token=...`
 * @param {(name: string, detail: object) => void} [options.onEvent] every event, by name
 * @param {string} [options.title] the iframe's accessible title
 * @returns the handle: commands, `on`, `destroy`, and `iframe`
 */
export function mount(element, { joinUrl, onEvent, title = "Video consult" } = {}) {
  if (!(element instanceof Element)) throw new TypeError("Triad.mount: element is not an Element");
  const url = parseJoinUrl(joinUrl);
  const roomOrigin = url.origin;

  const iframe = document.createElement("iframe");
  iframe.title = title;
  iframe.allow = "camera; microphone; autoplay; display-capture";
  // Lets the page confirm its parent's origin in browsers without location.ancestorOrigins.
  iframe.referrerPolicy = "origin";
  iframe.style.setProperty("width", "100%");
  iframe.style.setProperty("height", "100%");
  iframe.style.setProperty("border", "0");
  iframe.style.setProperty("display", "block");
  iframe.src = url.href;

  const listeners = new Map(); // event name -> Set of functions
  const pending = new Map(); // command id -> {resolve, reject}
  const queued = []; // commands sent before the page said it was ready
  let ready = false;
  let destroyed = false;
  let nextId = 1;

  function deliver(name, detail) {
    for (const fn of [...(listeners.get(name) || [])]) callSafely(fn, detail);
    if (onEvent) callSafely(onEvent, name, detail);
  }

  function post(message) {
    iframe.contentWindow?.postMessage({ triad: PROTOCOL, ...message }, roomOrigin);
  }

  function onMessage(event) {
    // Only our iframe, and only while it shows the room's origin (a navigated-away or blocked
    // frame has another origin and is ignored).
    if (event.source !== iframe.contentWindow || event.origin !== roomOrigin) return;
    const data = event.data;
    if (!data || typeof data !== "object" || data.triad !== PROTOCOL) return;
    if (data.type === "ready") {
      ready = true;
      for (const message of queued.splice(0)) post(message);
      deliver("ready", {});
    } else if (data.type === "event" && EVENTS.includes(data.event) && data.event !== "ready") {
      deliver(data.event, plainDetail(data.detail));
    } else if (data.type === "result" && pending.has(data.id)) {
      const { resolve, reject } = pending.get(data.id);
      pending.delete(data.id);
      if (data.ok) resolve(plainDetail(data.detail));
      else reject(new TriadCommandError(String(data.code || "internal")));
    }
  }

  function command(name) {
    if (destroyed) return Promise.reject(new TriadCommandError("destroyed"));
    const id = nextId++;
    const message = { type: "command", id, command: name };
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      if (ready) post(message);
      else queued.push(message);
    });
  }

  window.addEventListener("message", onMessage);
  element.append(iframe);

  const handle = {
    iframe,
    /** Mute or unmute; resolves with `{audio}` (true = sending). */
    toggleAudio: () => command(COMMANDS.toggleAudio),
    /** Camera off or on; resolves with `{video}` (true = sending). */
    toggleVideo: () => command(COMMANDS.toggleVideo),
    /** Leave the room (the consult goes on); the `left` event follows. */
    leave: () => command(COMMANDS.leave),
    /** End the consult for everyone (therapist or psychiatrist); resolves with `{plan_id}`. */
    end: () => command(COMMANDS.end),
    /** Call `fn(detail)` on each `name` event; returns a function that stops it. */
    on(name, fn) {
      if (!EVENTS.includes(name)) throw new TypeError(`Triad: no event named ${name}`);
      if (!listeners.has(name)) listeners.set(name, new Set());
      listeners.get(name).add(fn);
      return () => listeners.get(name)?.delete(fn);
    },
    /** Remove the iframe (the room page's camera, microphone and socket go with it). */
    destroy() {
      if (destroyed) return;
      destroyed = true;
      window.removeEventListener("message", onMessage);
      for (const { reject } of pending.values()) reject(new TriadCommandError("destroyed"));
      pending.clear();
      queued.length = 0;
      listeners.clear();
      iframe.remove();
    },
  };
  return Object.freeze(handle);
}

function callSafely(fn, ...args) {
  try {
    fn(...args);
  } catch (error) {
    // One embedder callback throwing must not stop the others or the SDK.
    setTimeout(() => {
      throw error;
    });
  }
}

/** A copy holding only JSON values: nothing of the other side's objects reaches the caller. */
function plainDetail(detail) {
  if (!detail || typeof detail !== "object") return {};
  try {
    return JSON.parse(JSON.stringify(detail));
  } catch {
    return {};
  }
}

export const Triad = Object.freeze({ mount, EVENTS, TriadCommandError });
