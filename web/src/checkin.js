// The optional check-in before the lobby: PHQ-9 and GAD-7 with their standard items and 0-3
// answers. The server scores them (POST .../session/measures) and the band is shown back;
// a PHQ-9 item 9 answer above zero reaches both clinicians in the room. Skipping is fine.
// A therapist with the client beside them may fill it in with the client.

import { $, el } from "./dom.js";
import { severityWords } from "./measurewords.js";
import { showView } from "./views.js";

const ANSWERS = ["Not at all", "Several days", "More than half the days", "Nearly every day"];

/** The standard items (Kroenke, Spitzer & Williams 2001; Spitzer et al. 2006). */
export const INSTRUMENTS = [
  {
    id: "phq9",
    label: "PHQ-9",
    title: "Mood (PHQ-9)",
    stem: "Over the last 2 weeks, how often have you been bothered by any of the following problems?",
    max: 27,
    items: [
      "Little interest or pleasure in doing things",
      "Feeling down, depressed, or hopeless",
      "Trouble falling or staying asleep, or sleeping too much",
      "Feeling tired or having little energy",
      "Poor appetite or overeating",
      "Feeling bad about yourself \u2014 or that you are a failure or have let yourself or your family down",
      "Trouble concentrating on things, such as reading the newspaper or watching television",
      "Moving or speaking so slowly that other people could have noticed? Or the opposite \u2014 being so fidgety or restless that you have been moving around a lot more than usual",
      "Thoughts that you would be better off dead or of hurting yourself in some way",
    ],
  },
  {
    id: "gad7",
    label: "GAD-7",
    title: "Anxiety (GAD-7)",
    stem: "Over the last 2 weeks, how often have you been bothered by the following problems?",
    max: 21,
    items: [
      "Feeling nervous, anxious or on edge",
      "Not being able to stop or control worrying",
      "Worrying too much about different things",
      "Trouble relaxing",
      "Being so restless that it is hard to sit still",
      "Becoming easily annoyed or irritable",
      "Feeling afraid as if something awful might happen",
    ],
  },
];

const SKIPPED_KEY_PREFIX = "triad.checkinSkipped.";

function remember(key) {
  try {
    sessionStorage.setItem(key, "1");
  } catch {
    // Without storage the check-in is offered again after a reload; harmless.
  }
}

function remembered(key) {
  try {
    return sessionStorage.getItem(key) === "1";
  } catch {
    return false;
  }
}

function radio(name, value, label) {
  const input = document.createElement("input");
  input.type = "radio";
  input.name = name;
  input.value = String(value);
  return el("label", "answer", input, el("span", null, label));
}

function questionnaire(instrument) {
  const questions = instrument.items.map((text, i) => {
    const name = `${instrument.id}-${i + 1}`;
    const legend = el("legend", null, el("span", "item-number", `${i + 1}. `), text);
    const fieldset = el(
      "fieldset",
      "item",
      legend,
      el("div", "answers", ...ANSWERS.map((label, value) => radio(name, value, label))),
    );
    fieldset.dataset.item = String(i + 1);
    return el("li", null, fieldset);
  });
  const section = el(
    "section",
    "instrument",
    el("h2", null, instrument.title),
    el("p", "stem", instrument.stem),
    el("ol", "items", ...questions),
  );
  section.dataset.instrument = instrument.id;
  return section;
}

/** The answers of one instrument: a full list of 0-3, "none" (untouched) or "partial". */
function answersOf(instrument) {
  const answers = instrument.items.map((_, i) => {
    const checked = document.querySelector(`input[name="${instrument.id}-${i + 1}"]:checked`);
    return checked ? Number(checked.value) : null;
  });
  if (answers.every((a) => a === null)) return "none";
  if (answers.some((a) => a === null)) return "partial";
  return answers;
}

export class CheckIn {
  /**
   * @param {(method: string, path: string, body?: object) => Promise<object>} call
   * @param {string} consultId
   */
  constructor(call, consultId) {
    this.call = call;
    this.consultId = consultId;
    this._finish = null;
    this._built = false;
    $("checkin-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this._submit();
    });
    $("checkin-skip").addEventListener("click", () => {
      remember(SKIPPED_KEY_PREFIX + this.consultId);
      this._done();
    });
    $("checkin-continue").addEventListener("click", () => this._done());
    $("checkin-form").addEventListener("change", () => this._error(null));
  }

  /** Offer it unless it was answered for this consult or skipped in this tab. */
  async wanted() {
    if (remembered(SKIPPED_KEY_PREFIX + this.consultId)) return false;
    let body;
    try {
      body = await this.call("GET", "/measures");
    } catch {
      return true; // offer it anyway: sending the answers will say what is wrong
    }
    const measures = Array.isArray(body.measures) ? body.measures : [];
    return !measures.some((m) => m && m.consult_id === this.consultId);
  }

  /** Show the questionnaires; resolves when they are sent (and the result read) or skipped. */
  ask({ forName = null } = {}) {
    if (!this._built) {
      $("checkin-questions").replaceChildren(...INSTRUMENTS.map(questionnaire));
      this._built = true;
    }
    $("checkin-intro").textContent = forName
      ? `Answer these together with ${forName}, about how they have been. It is optional.`
      : "Before you join, you can tell your clinicians how you have been. It is optional and takes about three minutes; your answers are shared only with your therapist and psychiatrist.";
    $("checkin-form").hidden = false;
    $("checkin-result").hidden = true;
    this._error(null);
    document.title = "Check-in · Triad";
    showView("checkin", { focus: true });
    return new Promise((resolve) => {
      this._finish = resolve;
    });
  }

  _error(text) {
    $("checkin-error").textContent = text || "";
  }

  async _submit() {
    const chosen = [];
    for (const instrument of INSTRUMENTS) {
      const answers = answersOf(instrument);
      if (answers === "partial") {
        this._error(`Please answer every question of the ${instrument.label}, or leave all of them blank.`);
        return;
      }
      if (answers !== "none") chosen.push({ instrument, answers });
    }
    if (chosen.length === 0) {
      this._error("Answer the questions, or press Skip to go on without them.");
      return;
    }
    const submit = $("checkin-submit");
    submit.disabled = true;
    this._error(null);
    const results = [];
    try {
      for (const { instrument, answers } of chosen) {
        results.push(await this.call("POST", "/measures", { instrument: instrument.id, answers }));
      }
    } catch (error) {
      this._error(`We couldn't send your answers. Reference: ${error.code || "internal"}`);
      submit.disabled = false;
      return;
    }
    submit.disabled = false;
    this._showResults(results);
  }

  _showResults(results) {
    const lines = results.map((measure) => {
      const instrument = INSTRUMENTS.find((i) => i.id === measure.instrument);
      const severity = severityWords(measure.severity);
      const item = el(
        "li",
        null,
        el("strong", null, `${instrument?.title || measure.instrument}: `),
        `${measure.total} of ${instrument?.max ?? "?"}, ${severity}`,
      );
      item.dataset.instrument = measure.instrument;
      item.dataset.severity = measure.severity;
      return item;
    });
    $("checkin-scores").replaceChildren(...lines);
    $("checkin-safety").hidden = !results.some((m) => m.item9_positive);
    $("checkin-form").hidden = true;
    $("checkin-result").hidden = false;
    $("checkin-result-heading").focus();
  }

  _done() {
    const finish = this._finish;
    this._finish = null;
    finish?.();
  }
}
