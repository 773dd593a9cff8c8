// The clinicians' care tabs of the notes panel and the safety banner (the care-workflow calls
// of docs/api.md): the therapist's hand-off brief, what changed since the previous consult's
// plan, the PHQ-9 / GAD-7 trend, and a flag when PHQ-9 item 9 is answered above 0.
// A server without one of these routes answers 404 `not_found`: the tab says it is not
// available rather than failing.

import { sharingWithdrawnSentence } from "./consentwords.js";
import { button, el } from "./dom.js";
import { INSTRUMENT_NAMES, severityWords } from "./measurewords.js";
import { routeMissing } from "./roomapi.js";
import { CLIENT_SECTIONS, PLAN_SECTIONS, rowSummary, textOf } from "./sections.js";

const BRIEF_FIELDS = [
  ["seen_in_therapy", "Seen in therapy"],
  ["question", "Question for the psychiatrist"],
  ["medications", "Medications"],
  ["risks", "Risks"],
];

const ITEM9_ANSWERS = ["not at all", "several days", "more than half the days", "nearly every day"];
const KIND_WORDS = { added: "added", removed: "removed", changed: "changed" };

const SECTION_TITLES = Object.fromEntries([
  ...PLAN_SECTIONS.map((s) => [s.key, s]),
  ["client_questions", CLIENT_SECTIONS[0]],
  ["client_goals", CLIENT_SECTIONS[1]],
]);

function note(text, state) {
  const node = el("p", "care-note", text);
  if (state) node.dataset.state = state;
  return node;
}

function sayUnavailable(container, error, what) {
  if (routeMissing(error)) {
    container.replaceChildren(note(`${what} isn't available on this server yet.`, "unavailable"));
  } else {
    container.replaceChildren(note(`We couldn't load ${what.toLowerCase()}. Reference: ${error.code}`, "error"));
  }
}

/** The brief's reads in flight, by tab: a number per container, the newest read's. */
const readings = new WeakMap();

/** The Brief tab: GET .../session/brief. `consent()`: the room's consent view, to say whose
 * withdrawal hid it. */
export async function renderBrief(container, api, consent = () => null) {
  // Two saves in a row read it twice: only the newest read may fill the tab (answers can
  // arrive out of order).
  const reading = (readings.get(container) ?? 0) + 1;
  readings.set(container, reading);
  const current = () => readings.get(container) === reading;
  container.dataset.state = "loading";
  container.replaceChildren(note("Loading the brief…"));
  try {
    const brief = await api.brief();
    if (!current()) return;
    const rows = BRIEF_FIELDS.filter(([key]) => typeof brief[key] === "string" && brief[key].trim()).map(([key, label]) =>
      el("div", "care-fact", el("dt", null, label), el("dd", null, brief[key])),
    );
    container.replaceChildren(
      el("p", "notes-intro", "The therapist's hand-off, written before the consult."),
      rows.length ? el("dl", "care-facts", ...rows) : note("The brief is empty."),
    );
    container.dataset.state = "shown";
  } catch (error) {
    if (!current()) return;
    container.dataset.state = error.code || "error";
    if (error.code === "brief_not_found") {
      container.replaceChildren(note("No brief attached to this consult."));
    } else if (error.code === "consent_withdrawn") {
      container.replaceChildren(
        note(sharingWithdrawnSentence(consent(), ", so the brief is not shown."), "withdrawn"),
      );
    } else {
      sayUnavailable(container, error, "The brief");
    }
  }
}

/** The History tab: changes since the previous consult's plan, and the measures trend. */
export async function renderHistory(container, api, planDoc) {
  const changes = el("section", "care-block care-changes", el("h3", null, "Changes since the last consult"));
  const measures = el("section", "care-block care-measures", el("h3", null, "Questionnaires"));
  const refresh = button("Refresh", "button button-small button-quiet", () => renderHistory(container, api, planDoc));
  container.replaceChildren(changes, measures, el("div", "care-actions", refresh));
  await Promise.all([fillChanges(changes, api, planDoc), fillMeasures(measures, api)]);
}

async function fillChanges(section, api, planDoc) {
  const body = el("div", null, note("Loading…"));
  section.append(body);
  try {
    const answer = await api.planChanges();
    section.dataset.state = answer.previous ? "follow-up" : "first";
    if (!answer.previous) {
      body.replaceChildren(note("This is the first consult: there is no earlier plan to compare with."));
      return;
    }
    const lead = note(`Compared with the plan saved at the previous consult (version ${answer.previous.version}).`);
    if (!answer.changes.length) {
      body.replaceChildren(lead, note("Nothing has changed yet."));
      return;
    }
    body.replaceChildren(lead, el("ul", "care-changes-list", ...answer.changes.map((c) => changeItem(c, planDoc))));
  } catch (error) {
    section.dataset.state = "error";
    sayUnavailable(body, error, "The changes");
  }
}

/** "Medications · Sertraline: dose changed": the item is named from the live plan. */
function changeItem(change, planDoc) {
  const section = SECTION_TITLES[change.section];
  const title = section?.title || change.section;
  const match = /^[a-z_]+\[(\d+)\](?:\.([a-z_0-9]+))?$/.exec(change.path);
  let what = "";
  if (match && change.kind !== "removed" && section && planDoc && section.type !== "text") {
    const item = planDoc.getArray(section.key).get(Number(match[1]));
    what = section.type === "rows" ? rowSummary(item, section).split(" · ")[0] : textOf(item);
  }
  const field = match?.[2] ? ` ${match[2].replace(/_/g, " ")}` : "";
  const kind = KIND_WORDS[change.kind] || change.kind;
  const item = el("li", null, el("strong", null, title), what ? ` · ${what}:${field} ${kind}` : `:${field} ${kind}`);
  item.dataset.kind = change.kind;
  item.dataset.path = change.path;
  return item;
}

async function fillMeasures(section, api) {
  const body = el("div", null, note("Loading…"));
  section.append(body);
  try {
    const { measures } = await api.measures();
    if (!measures.length) {
      body.replaceChildren(note("No questionnaires recorded yet."));
      return;
    }
    body.replaceChildren(trendTable(measures));
  } catch (error) {
    sayUnavailable(body, error, "The questionnaires");
  }
}

/** One row per day, a column per instrument: "12 · moderate" (the latest of that day). */
function trendTable(measures) {
  const days = new Map();
  const instruments = new Set();
  for (const m of measures) {
    const day = String(m.recorded_at).slice(0, 10);
    instruments.add(m.instrument);
    if (!days.has(day)) days.set(day, {});
    days.get(day)[m.instrument] = m;
  }
  const columns = ["phq9", "gad7"].filter((i) => instruments.has(i));
  const head = el("tr", null, el("th", null, "Date"), ...columns.map((i) => el("th", null, INSTRUMENT_NAMES[i])));
  const rows = [...days.entries()].map(([day, byInstrument]) =>
    el(
      "tr",
      null,
      el("th", null, formatDay(day)),
      ...columns.map((i) => {
        const m = byInstrument[i];
        const cell = el("td", null, m ? `${m.total} · ${severityWords(m.severity)}` : "—");
        if (m) cell.dataset.severity = m.severity;
        return cell;
      }),
    ),
  );
  const table = el("table", "care-trend", el("thead", null, head), el("tbody", null, ...rows));
  table.setAttribute("aria-label", "Questionnaire totals by date");
  return table;
}

function formatDay(day) {
  const date = new Date(`${day}T12:00:00`);
  if (Number.isNaN(date.getTime())) return day;
  return new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" }).format(date);
}

/** The safety banner's sentence for a `safety-flag` (or a join state's `safety_flags` entry). */
export function safetyText(flag) {
  const answer = Number(flag.answer);
  const words = ITEM9_ANSWERS[answer] ? ` (${ITEM9_ANSWERS[answer]})` : "";
  const at = flag.recorded_at ? new Date(flag.recorded_at) : null;
  const when =
    at && !Number.isNaN(at.getTime())
      ? ` on ${new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "numeric", minute: "2-digit" }).format(at)}`
      : "";
  return `Safety: PHQ-9 item 9 (thoughts of self-harm) answered ${answer}${words}${when}. Check in with the client about their safety.`;
}
