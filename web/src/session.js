// The join link and the participant's REST calls: reads the token from the URL fragment (moving
// it into sessionStorage), asks the server who this participant is in the consult, and carries
// the care-workflow calls under .../session (consent, measures, present-with).

const API_BASE = "/api/v1";
const TOKEN_KEY_PREFIX = "triad.joinToken.";
const EMBEDDER_KEY_PREFIX = "triad.embedder.";
const REQUEST_TIMEOUT_MS = 15000;

/** A coded failure shown to the person (the codes are the server's, plus a few of the page's). */
export class Problem extends Error {
  constructor(code, detail, requestId) {
    super(detail || code);
    this.code = code;
    // The server's X-Request-Id: lets support find this exact request in the logs.
    this.requestId = requestId || null;
  }
}

export function consultIdFromPath(pathname) {
  const match = /^\/c\/([^/]+)\/?$/.exec(pathname);
  if (!match) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

function tokenKey(consultId) {
  return TOKEN_KEY_PREFIX + consultId;
}

function embedderKey(consultId) {
  return EMBEDDER_KEY_PREFIX + consultId;
}

function store(key, value) {
  try {
    sessionStorage.setItem(key, value);
  } catch {
    // Storage can be unavailable (private modes, quotas); the page still works until a reload.
  }
}

function stored(key) {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * The link's fragment (`#token=...`, and `&embedder=<origin>` when the embed SDK framed the
 * page), moved into sessionStorage and removed from the address bar; otherwise what an earlier
 * load of this tab stored. `embedder` is only a claim: embedbridge.js checks it.
 */
export function takeLink(consultId) {
  const hash = window.location.hash.replace(/^#/, "");
  if (hash) {
    const fragment = new URLSearchParams(hash);
    // Drop the fragment whatever it held, so a token never lingers in history or a copied URL.
    history.replaceState(history.state, "", window.location.pathname + window.location.search);
    const token = fragment.get("token");
    if (token) {
      store(tokenKey(consultId), token);
      store(embedderKey(consultId), fragment.get("embedder") || "");
      return { token, embedder: fragment.get("embedder") || null };
    }
  }
  return { token: stored(tokenKey(consultId)), embedder: stored(embedderKey(consultId)) || null };
}

/**
 * A participant's REST call (`Authorization: Bearer <join token>`) under
 * `/api/v1/consults/{id}/session`: resolves with the JSON body, or rejects with a Problem
 * carrying the server's code (docs/api.md).
 */
export async function sessionCall(consultId, token, method = "GET", path = "", body = undefined) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  const headers = { Authorization: `Bearer ${token}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`${API_BASE}/consults/${encodeURIComponent(consultId)}/session${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
      credentials: "omit",
      referrerPolicy: "no-referrer",
      signal: controller.signal,
    });
  } catch {
    throw new Problem("network_error");
  } finally {
    clearTimeout(timer);
  }

  let answer = null;
  try {
    answer = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): handled below.
  }
  if (!response.ok) {
    const code =
      answer && typeof answer.code === "string" ? answer.code : `http_${response.status}`;
    throw new Problem(code, answer && answer.detail, response.headers.get("X-Request-Id"));
  }
  if (answer === null || typeof answer !== "object") throw new Problem("bad_response");
  return answer;
}

/** `sessionCall` bound to one consult and token: `(method, path, body) => Promise`. */
export function sessionCaller(consultId, token) {
  return (method, path, body) => sessionCall(consultId, token, method, path, body);
}

export async function fetchSession(consultId, token) {
  const body = await sessionCall(consultId, token);
  if (!isSession(body)) throw new Problem("bad_response");
  return body;
}

function isSession(body) {
  return (
    body !== null &&
    typeof body === "object" &&
    body.consult &&
    typeof body.consult.status === "string" &&
    body.you &&
    typeof body.you.name === "string" &&
    Array.isArray(body.participants)
  );
}
