// The end view's saved plan: GET .../session/plan (never the clinicians' notes), shown as text,
// with a Markdown download (Accept: text/markdown, saved as a Blob). Clinicians also see the
// plan's version and their private notes, each from its own call.

import { button, el, isHost } from "./dom.js";
import { INSTRUMENT_NAMES, severityWords } from "./measurewords.js";

const STATUS_WORDS = { provisional: "provisional", confirmed: "confirmed" };
const ACTION_WORDS = { start: "start", adjust: "adjust", stop: "stop" };
const PLAN_NOT_READY_RETRIES = 5;

function section(title, ...children) {
  const node = el("section", "plan-section", el("h3", null, title), ...children);
  node.dataset.section = title;
  return node;
}

function prose(text) {
  return text && text.trim() ? el("p", "notes-prose", text) : el("p", "notes-empty", "Nothing recorded.");
}

function list(items) {
  const shown = items.filter((t) => t && t.trim());
  return shown.length ? el("ul", "notes-items", ...shown.map((t) => el("li", null, t))) : el("p", "notes-empty", "None.");
}

function joined(...parts) {
  return parts.filter((p) => p && String(p).trim()).join(" · ");
}

/** A check-in score as the plan's monitoring section lists it: "PHQ-9 check-in: 12 (moderate), 22 Nov 2026". */
export function scoreLine(measure) {
  const day = new Date(measure.recorded_at).toLocaleDateString(undefined, { dateStyle: "medium" });
  const name = INSTRUMENT_NAMES[measure.instrument] || measure.instrument;
  return `${name} check-in: ${measure.total} (${severityWords(measure.severity)}), ${day}`;
}

/** The plan's content as readable sections (every value as text); `yours` for the client. */
export function planSections(content, { yours = false, measures = [] } = {}) {
  const whose = yours ? "Your" : "The client's";
  const follow = content.follow_up || {};
  return [
    section("Presenting picture", prose(content.summary)),
    section("Diagnoses", list(content.diagnoses.map((d) => joined(d.icd10 ? `${d.name} (${d.icd10})` : d.name, STATUS_WORDS[d.status])))),
    section(
      "Medications",
      list(content.medications.map((m) => joined(m.name, m.dose, m.schedule, ACTION_WORDS[m.action], m.side_effects && `watch for ${m.side_effects}`))),
    ),
    section("Therapy focus", prose(content.therapy.focus)),
    section("Therapy goals", list(content.therapy.goals)),
    // The plan's own monitoring items, then this consult's check-in scores (the server's).
    section("Monitoring", list([...content.monitoring.map((m) => joined(m.measure, m.when)), ...measures.map(scoreLine)])),
    section("Follow-up", prose(joined(follow.date, follow.when, follow.with_whom && `with ${follow.with_whom}`))),
    section("Safety considerations", prose(content.safety)),
    section(`${whose} questions`, list(content.client.questions)),
    section(`${whose} goals`, list(content.client.goals)),
  ];
}

/**
 * Fill `container` with the saved plan for `you` (the join state's participant).
 * @param {HTMLElement} container
 * @param {import("./roomapi.js").RoomApi} api
 */
export async function showSavedPlan(container, api, you) {
  container.hidden = false;
  container.dataset.state = "loading";
  container.replaceChildren(el("p", "loading-inline", "Loading the saved plan…"));
  let plan = null;
  for (let attempt = 0; ; attempt++) {
    try {
      plan = await api.plan();
      break;
    } catch (error) {
      // The end is announced as the plan is saved; a moment later it is there.
      if (error.code === "plan_not_found" && attempt < PLAN_NOT_READY_RETRIES) {
        await new Promise((resolve) => setTimeout(resolve, 400 * (attempt + 1)));
        continue;
      }
      container.dataset.state = "error";
      container.replaceChildren(el("p", "room-error", `We couldn't load the saved plan. Reference: ${error.code}`));
      return;
    }
  }
  const host = isHost(you?.role);
  const heading = el("h2", null, host ? `Saved plan · version ${plan.version}` : "Your treatment plan");
  heading.id = "saved-plan-heading";
  const download = button("Download the plan", "button button-quiet", () => downloadMarkdown(api, download));
  download.id = "download-plan";
  const saved = new Date(plan.created_at);
  const meta = el("p", "note", `Saved ${Number.isNaN(saved.getTime()) ? "" : saved.toLocaleString()}`.trim());
  const children = [heading, meta, ...planSections(plan.content, { yours: !host, measures: plan.measures || [] }), el("div", "actions", download)];
  if (host) children.push(await cliniciansNotesSection(api));
  container.replaceChildren(...children);
  container.dataset.state = "shown";
  container.dataset.version = String(plan.version);
  container.dataset.planId = plan.id;
}

async function cliniciansNotesSection(api) {
  try {
    const notes = await api.cliniciansNotes();
    const node = section("Clinicians' notes (private, not part of the plan)", prose(notes.text));
    node.classList.add("plan-private");
    return node;
  } catch (error) {
    return el("p", "note", `The clinicians' notes could not be loaded. Reference: ${error.code}`);
  }
}

async function downloadMarkdown(api, control) {
  control.disabled = true;
  try {
    const markdown = await api.planMarkdown();
    const url = URL.createObjectURL(new Blob([markdown], { type: "text/markdown" }));
    const link = el("a");
    link.href = url;
    link.download = "treatment-plan.md";
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    control.after(el("p", "room-error", `The download failed. Reference: ${error.code}`));
  } finally {
    control.disabled = false;
  }
}
