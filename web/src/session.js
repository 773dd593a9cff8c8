// Join page: reads the personal join link, asks the server who this participant is in the
// consult, and shows it. No dependencies, no build step; everything from the server is put
// into the page with textContent, never parsed as HTML.

const API_BASE = "/api/v1";
const TOKEN_KEY_PREFIX = "triad.joinToken.";
const REQUEST_TIMEOUT_MS = 15000;

const ROLE_WORDS = {
  client: "client",
  therapist: "therapist",
  psychiatrist: "psychiatrist",
};

const STATUS_WORDS = {
  scheduled: "Scheduled, not started yet",
  live: "In progress",
  ended: "Ended",
};

// Plain-language messages for the problem codes a participant can meet. `retry` offers a
// button that asks the server again; the code itself is shown small for support staff.
const TRY_AGAIN = {
  title: "We can't connect right now.",
  body: "This is usually temporary. Please try again in a minute.",
  retry: true,
};
const PROBLEMS = {
  no_token: {
    title: "This page needs the personal join link you were sent.",
    body: "Please open the link from your email or text message. If you can't find it, ask your clinic to send it again.",
  },
  token_expired: {
    title: "This link has expired.",
    body: "Ask your clinic for a new one.",
  },
  token_revoked: {
    title: "This link is no longer valid.",
    body: "It may have been replaced by a newer link. Please use the most recent link your clinic sent you, or ask them for a new one.",
  },
  token_invalid: {
    title: "We couldn't read this link.",
    body: "Please open the link again exactly as you received it, making sure none of it is cut off. If that doesn't help, ask your clinic for a new one.",
  },
  token_not_yet_valid: {
    title: "This link isn't active yet.",
    body: "Please come back closer to the time of your consult.",
    retry: true,
  },
  token_wrong_consult: {
    title: "This link is for a different consult.",
    body: "Please open the link exactly as you received it. If that doesn't help, ask your clinic for a new one.",
  },
  consult_ended: {
    title: "This consult has ended.",
    body: "You can close this page. If you think this is a mistake, please contact your clinic.",
  },
  consult_not_found: {
    title: "We couldn't find this consult.",
    body: "Please open the link again exactly as you received it, or ask your clinic for a new one.",
  },
  not_ready: TRY_AGAIN,
  internal: TRY_AGAIN,
  network_error: TRY_AGAIN,
  bad_response: TRY_AGAIN,
};
PROBLEMS.not_found = PROBLEMS.consult_not_found;

const $ = (id) => document.getElementById(id);

/** An element with optional class and children (strings become text nodes). */
function el(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

// --- The join link -----------------------------------------------------------------------

function consultIdFromPath(pathname) {
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
function takeToken(consultId) {
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

// --- The server ----------------------------------------------------------------------------

class Problem extends Error {
  constructor(code, detail, requestId) {
    super(detail || code);
    this.code = code;
    // The server's X-Request-Id: lets support find this exact request in the logs.
    this.requestId = requestId || null;
  }
}

async function fetchSession(consultId, token) {
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

// --- Rendering -----------------------------------------------------------------------------

function showLoading(message) {
  $("loading").textContent = message;
}

function clearProblem() {
  $("problem").replaceChildren();
}

function showProblem(code, onRetry, requestId) {
  showLoading("");
  $("consult").hidden = true;
  const known = PROBLEMS[code] || TRY_AGAIN;

  const card = el("section", "card card-problem");
  card.setAttribute("aria-labelledby", "problem-heading");
  const heading = el("h1", null, known.title);
  heading.id = "problem-heading";
  heading.tabIndex = -1;
  card.append(heading, el("p", null, known.body));
  if (known.retry && onRetry) {
    const retry = el("button", "button", "Try again");
    retry.type = "button";
    retry.addEventListener("click", onRetry);
    card.append(el("div", "actions", retry));
  }
  const reference = requestId ? `${code} · ${requestId}` : code;
  card.append(el("p", "reference", "Reference for support: ", el("code", null, reference)));

  $("problem").replaceChildren(card);
  document.title = "Can't open your consult · Triad";
}

function roleWords(role) {
  return ROLE_WORDS[role] || "participant";
}

/** "your therapist" for a client; "the client" for clinicians. */
function describeOther(viewerRole, other) {
  const article = viewerRole === "client" ? "your" : "the";
  return [`${article} ${roleWords(other.role)} `, el("strong", null, other.name)];
}

function renderWith(node, you, others) {
  if (others.length === 0) {
    node.replaceChildren("Nobody else is listed for this consult yet.");
    return;
  }
  // Intl.ListFormat joins the phrases the English way ("A and B", "A, B, and C"); it is fed
  // placeholders so each phrase can stay a set of DOM nodes.
  const phrases = others.map((other) => describeOther(you.role, other));
  const parts = new Intl.ListFormat("en", { style: "long", type: "conjunction" }).formatToParts(
    phrases.map((_, i) => String(i)),
  );
  const children = ["This consult is with "];
  for (const part of parts) {
    if (part.type === "element") children.push(...phrases[Number(part.value)]);
    else children.push(part.value);
  }
  children.push(".");
  node.replaceChildren(...children);
}

function formatWhen(startIso, endIso) {
  const start = startIso ? new Date(startIso) : null;
  if (!start || Number.isNaN(start.getTime())) return null;
  const format = new Intl.DateTimeFormat(undefined, {
    weekday: "long",
    year: "numeric",
    month: "long",
    day: "numeric",
    hour: "numeric",
    minute: "2-digit",
    timeZoneName: "short",
  });
  const end = endIso ? new Date(endIso) : null;
  if (end && !Number.isNaN(end.getTime()) && end > start && format.formatRange) {
    return format.formatRange(start, end);
  }
  return format.format(start);
}

function roleNote(you, others, consult) {
  if (you.role === "client") {
    if (consult.auto_admit) {
      return "When it's time, you'll go straight into the room. There's nothing else you need to do until then.";
    }
    return "When it's time, your therapist will let you into the room. There's nothing else you need to do until then.";
  }
  const coHosts = others.filter((p) => p.role === "therapist" || p.role === "psychiatrist");
  if (coHosts.length > 0) {
    return `You co-host this consult with ${coHosts.map((p) => p.name).join(" and ")}.`;
  }
  return "You co-host this consult.";
}

function showSession(session) {
  const { consult, you } = session;
  const others = session.participants.filter((p) => p && p.id !== you.participant_id);

  $("you-name").textContent = you.name;
  $("you-role").textContent = `the ${roleWords(you.role)}`;
  renderWith($("with"), you, others);

  const when = formatWhen(consult.scheduled_start, consult.scheduled_end);
  $("when").textContent = when || "";
  $("when-row").hidden = !when;

  const status = $("status");
  status.textContent = STATUS_WORDS[consult.status] || consult.status;
  status.dataset.status = consult.status;

  $("role-note").textContent = roleNote(you, others, session.consult);

  showLoading("");
  clearProblem();
  $("consult").hidden = false;
  document.title = "Your consult · Triad";
}

// --- Flow ----------------------------------------------------------------------------------

let loadCount = 0;

/** Reads the link and asks the server. `moveFocus` (after a Retry click, whose button goes
 * away) puts keyboard focus on the heading of whatever is shown next. */
async function load({ moveFocus = false } = {}) {
  const thisLoad = ++loadCount;
  const consultId = consultIdFromPath(window.location.pathname);
  const token = consultId ? takeToken(consultId) : null;
  if (!consultId || !token) {
    showProblem("no_token");
    return;
  }
  const focusHeading = () => {
    if (moveFocus) document.querySelector("#problem h1, #consult:not([hidden]) h1")?.focus();
  };

  clearProblem();
  $("consult").hidden = true;
  showLoading("Checking your link…");
  try {
    const session = await fetchSession(consultId, token);
    if (thisLoad !== loadCount) return; // a newer load (a new link pasted in) took over
    if (session.consult.status === "ended") {
      showProblem("consult_ended");
    } else {
      showSession(session);
    }
    focusHeading();
  } catch (error) {
    if (thisLoad !== loadCount) return;
    const code = error instanceof Problem ? error.code : "internal";
    const requestId = error instanceof Problem ? error.requestId : null;
    showProblem(code, () => load({ moveFocus: true }), requestId);
    focusHeading();
  }
}

// Pasting another join link into the same tab changes only the fragment: no reload happens.
window.addEventListener("hashchange", () => {
  if (window.location.hash) load();
});

load();
