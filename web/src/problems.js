// Plain-language messages for the codes a participant can meet: the REST problems of the join
// link, and the Socket.IO refusals and errors of the room (docs/protocol.md). The code itself is
// always shown small, for support staff.

import { $, el } from "./dom.js";
import { showLoading, showView } from "./views.js";

const TRY_AGAIN = {
  title: "We can't connect right now.",
  body: "This is usually temporary. Please try again in a minute.",
  retry: true,
};

const ASK_FOR_NEW_LINK =
  "Please open the link again exactly as you received it, making sure none of it is cut off. If that doesn't help, ask your clinic for a new one.";

export const PROBLEMS = {
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
    body: ASK_FOR_NEW_LINK,
  },
  token_not_yet_valid: {
    title: "This link isn't active yet.",
    body: "Please come back closer to the time of your consult.",
    retry: true,
  },
  token_wrong_consult: {
    title: "This link is for a different consult.",
    body: ASK_FOR_NEW_LINK,
  },
  consult_ended: {
    title: "This consult has ended.",
    body: "You can close this page. If you think this is a mistake, please contact your clinic.",
  },
  consult_not_found: {
    title: "We couldn't find this consult.",
    body: "Please open the link again exactly as you received it, or ask your clinic for a new one.",
  },
  participant_not_found: {
    title: "You're not listed in this consult.",
    body: "Please ask your clinic for a new link.",
  },
  // Sent by the room just before it disconnects this page.
  lobby_denied: {
    title: "You weren't let into this consult.",
    body: "If you think this is a mistake, please contact your clinic.",
  },
  removed: {
    title: "You were removed from the consult.",
    body: "If you think this is a mistake, please contact your clinic.",
    retry: true,
  },
  connection_replaced: {
    title: "You joined from another window or device.",
    body: "The consult continues there. You can come back to this page instead.",
    retry: true,
    retryLabel: "Use this page",
  },
  not_ready: TRY_AGAIN,
  placement_unavailable: TRY_AGAIN,
  // The room kept being served elsewhere after following a few times.
  wrong_worker: TRY_AGAIN,
  internal: TRY_AGAIN,
  network_error: TRY_AGAIN,
  bad_response: TRY_AGAIN,
  timeout: TRY_AGAIN,
  rate_limited: TRY_AGAIN,
};
PROBLEMS.not_found = PROBLEMS.consult_not_found;

/** Replace the page with a problem card; `onRetry` offers a button when the code allows it. */
export function showProblem(code, { onRetry = null, requestId = null, focus = false } = {}) {
  showLoading("");
  const known = PROBLEMS[code] || TRY_AGAIN;

  const card = el("section", "card card-problem");
  card.setAttribute("aria-labelledby", "problem-heading");
  card.dataset.code = code;
  const heading = el("h1", null, known.title);
  heading.id = "problem-heading";
  heading.tabIndex = -1;
  card.append(heading, el("p", null, known.body));
  if (known.retry && onRetry) {
    const retry = el("button", "button", known.retryLabel || "Try again");
    retry.type = "button";
    retry.addEventListener("click", onRetry);
    card.append(el("div", "actions", retry));
  }
  const reference = requestId ? `${code} · ${requestId}` : code;
  card.append(el("p", "reference", "Reference for support: ", el("code", null, reference)));

  showView("problem");
  $("problem").replaceChildren(card);
  document.title = "Can't open your consult · Triad";
  if (focus) heading.focus();
}
