// Step 1's text: who the consult is with, when, its status, and what happens next.

import { $, el, isHost, roleWords } from "./dom.js";

const STATUS_WORDS = {
  scheduled: "Scheduled, not started yet",
  live: "In progress",
  ended: "Ended",
};

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
      return "When you enter, you'll go straight into the room.";
    }
    return "When you enter, you'll wait in the waiting room until your therapist lets you in.";
  }
  if (you.role === "guardian" || you.role === "interpreter") {
    // Not hosts: they wait like the client (docs/api.md, "Who may do what").
    const client = others.find((p) => p.role === "client");
    const before =
      you.role === "guardian" ? `give your consent for ${client?.name || "the client"} if it is not on record yet, then ` : "";
    const wait = consult.auto_admit ? "go straight into the room" : "wait in the waiting room until a clinician lets you in";
    return `When you enter, you'll ${before}${wait}.`;
  }
  const coHosts = others.filter((p) => isHost(p.role));
  if (coHosts.length > 0) {
    return `You co-host this consult with ${coHosts.map((p) => p.name).join(" and ")}.`;
  }
  return "You co-host this consult.";
}

/** Fill step 1 from the REST session (`GET /api/v1/consults/{id}/session`). */
export function renderWelcome(session) {
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

  $("role-note").textContent = roleNote(you, others, consult);
  document.title = "Your consult · Triad";
}
