// The join link and the REST session call: reads the token from the URL fragment (moving it into
// sessionStorage), and asks the server who this participant is in the consult.

const API_BASE = "/api/v1";
const TOKEN_KEY_PREFIX = "triad.joinToken.";
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

function storeToken(consultId, token) {
  try {
    sessionStorage.setItem(tokenKey(consultId), token);
  } catch {
    // Storage can be unavailable (private modes, quotas); the page still works until a reload.
  }
}

function storedToken(consultId) {
  try {
    return sessionStorage.getItem(tokenKey(consultId));
  } catch {
    return null;
  }
}

/**
 * The token from the address bar's fragment (`#token=...`), moved into sessionStorage and
 * removed from the address bar; otherwise the one stored by an earlier load of this tab.
 */
export function takeToken(consultId) {
  const hash = window.location.hash.replace(/^#/, "");
  if (hash) {
    const fromLink = new URLSearchParams(hash).get("token");
    // Drop the fragment whatever it held, so a token never lingers in history or a copied URL.
    history.replaceState(history.state, "", window.location.pathname + window.location.search);
    if (fromLink) {
      storeToken(consultId, fromLink);
      return fromLink;
    }
  }
  return storedToken(consultId);
}

export async function fetchSession(consultId, token) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  let response;
  try {
    response = await fetch(`${API_BASE}/consults/${encodeURIComponent(consultId)}/session`, {
      headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
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

  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): handled below.
  }
  if (!response.ok) {
    const code = body && typeof body.code === "string" ? body.code : `http_${response.status}`;
    throw new Problem(code, body && body.detail, response.headers.get("X-Request-Id"));
  }
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
