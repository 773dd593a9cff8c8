// Consent before the lobby: to the session, and to the client's therapist and the
// psychiatrist sharing information with each other. The wording and its version come from the
// server (GET .../session/consent), which stores what was agreed, when, and by whom. Who answers
// is the page's mode (consentwords.js): the client for themself; in a minor's consult the
// guardian on the minor's behalf (their consent admits the client) and the minor for themself
// (assent, recorded beside it, not required: they may go on without it); a therapist who
// declared the client present attests the client's spoken word. Each sees what they gave and
// can withdraw it.

import { answered, isAssentMode, recordsOf, recordsStatus } from "./consentwords.js";
import { $, el } from "./dom.js";
import { codeSentence } from "./refusals.js";
import { showView } from "./views.js";

/** Checkbox names (the DOM contract in docs/web.md) by consent scope. */
const INPUT_NAMES = { session: "consent-session", information_sharing: "consent-sharing" };

/** Short names for the status lines and the withdrawal choices, by whose they are. */
const SCOPE_WORDS = {
  own: {
    session: "Taking part in this video consult",
    information_sharing: "Your therapist and psychiatrist sharing information about your care",
  },
  guardian: {
    session: "{client} taking part in this video consult",
    information_sharing: "{client}'s therapist and psychiatrist sharing information about their care",
  },
};

const WORDS = {
  self: {
    heading: "Your consent",
    intro: "Before you join, please read the following and tick each box to agree.",
    submit: "I agree",
    missing:
      "Both are needed to join the consult. If you have questions, you can ask your clinic before you join.",
  },
  attest: {
    heading: "Confirm the client's spoken consent",
    intro:
      "Read each statement aloud to {client}. Tick it once they have agreed out loud. You are confirming their spoken consent.",
    submit: "I confirm the client gave spoken consent",
    missing: "Both statements need the client's spoken agreement before they can join.",
  },
  guardian: {
    heading: "Your consent for {client}",
    intro:
      "As {client}'s guardian, you give consent on their behalf. Read each statement as {client}'s own, and tick it if you agree for them.",
    submit: "I agree on their behalf",
    missing: "Both are needed before {client} can join the consult.",
  },
  assent: {
    heading: "Do you agree?",
    intro:
      "Your guardian gives consent for you. We'd also like to know that you agree. Please read the following and tick each box if you agree.",
    submit: "I agree",
    missing:
      "Tick both boxes if you agree. If you're not sure, choose Not now, and talk to your guardian or your therapist.",
  },
  "attest-assent": {
    heading: "Confirm the client's spoken agreement",
    intro:
      "{client}'s guardian gives the consent. Read each statement aloud to {client} and tick it once they have agreed out loud: you are confirming their own agreement.",
    submit: "I confirm the client agreed aloud",
    missing: "Both statements need the client's spoken agreement, or choose Not now.",
  },
};

/** The status block's heading and withdrawal words, by mode. */
const STATUS_WORDS = {
  self: {
    heading: "Your consent",
    withdraw: "Withdraw consent",
    note: "Withdrawing consent to sharing stops your clinicians sharing information about you from now on. Without both, you can't join a consult until you agree again.",
    again: "You'll be asked for your consent again before you join.",
  },
  guardian: {
    heading: "Your consent for {client}",
    withdraw: "Withdraw consent",
    note: "Withdrawing consent to sharing stops {client}'s clinicians sharing information about them from now on. Without both, {client} can't join a consult until you agree again.",
    again: "You'll be asked for your consent again before you join.",
  },
  assent: {
    heading: "Your agreement",
    withdraw: "Withdraw your agreement",
    note: "Withdrawing your agreement to sharing stops your clinicians sharing information about you from now on.",
    again: "You'll be asked again before you join.",
  },
};

/** In the guardian's status block: what the minor said themself. */
const MINOR_WORDS = {
  given: "{client} has agreed too.",
  partial: "{client} has agreed to part of it.",
  none: "{client} has not said they agree yet.",
  withdrawn: "{client} withdrew their agreement to part of it.",
};

function named(text, clientName) {
  return text.replaceAll("{client}", clientName || "the client");
}

const ERROR_WORDS = {
  consent_wording_outdated: "The wording has just been updated. Please read it again.",
  same_room_required: codeSentence("same_room_required"),
};

function inputName(scope) {
  return INPUT_NAMES[scope] || `consent-${scope}`;
}

function formatTime(iso) {
  const when = iso ? new Date(iso) : null;
  if (!when || Number.isNaN(when.getTime())) return "";
  return new Intl.DateTimeFormat(undefined, { dateStyle: "long", timeStyle: "short" }).format(when);
}

function isConsent(body) {
  return Boolean(
    body &&
      body.wording &&
      typeof body.wording.version === "string" &&
      Array.isArray(body.wording.scopes) &&
      Array.isArray(body.records) &&
      typeof body.complete === "boolean",
  );
}

export class ConsentStep {
  /** @param {(method: string, path: string, body?: object) => Promise<object>} call */
  constructor(call) {
    this.call = call;
    /** The last answer of GET/POST .../session/consent, or null before the first. */
    this.state = null;
    this._finish = null;
    this._mode = "self";
    this._clientName = null;
    $("consent-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this._submit();
    });
    $("consent-back").addEventListener("click", () => this._done(false));
    // Assent is not required: the minor (or the therapist beside them) may go on without it.
    $("consent-skip").addEventListener("click", () => this._done("skipped"));
    $("consent-form").addEventListener("change", () => this._error(null));
  }

  /** The consent on record (and the current wording). */
  async load() {
    const body = await this.call("GET", "/consent");
    if (!isConsent(body)) throw Object.assign(new Error("bad_response"), { code: "bad_response" });
    this.state = body;
    return body;
  }

  /**
   * Show the form; resolves true once this mode's answer is on record, "skipped" when a minor's
   * assent was left for now (they go on), false if the person went back.
   * @param {{mode: string, clientName?: string}} how the mode (consentwords.js consentMode)
   */
  ask({ mode, clientName = null }) {
    this._mode = mode;
    this._clientName = clientName;
    const words = WORDS[mode] || WORDS.self;
    const form = $("consent-form");
    form.dataset.mode = mode;
    $("consent-heading").textContent = named(words.heading, clientName);
    $("consent-intro").textContent = named(words.intro, clientName);
    $("consent-submit").textContent = words.submit;
    $("consent-skip").hidden = !isAssentMode(mode);
    this._renderWording();
    this._error(null);
    $("consent-submit").disabled = false;
    document.title = `${named(words.heading, clientName)} · Triad`;
    showView("consent", { focus: true });
    return new Promise((resolve) => {
      this._finish = resolve;
    });
  }

  _renderWording() {
    const { wording } = this.state;
    $("consent-scopes").replaceChildren(
      ...wording.scopes.map(({ scope, text }) => {
        const input = document.createElement("input");
        input.type = "checkbox";
        input.name = inputName(scope);
        input.value = scope;
        return el("label", "check check-block", input, el("span", null, text));
      }),
    );
    $("consent-version").textContent = wording.version;
  }

  _error(text, code = null) {
    const node = $("consent-error");
    const withCode = code && !ERROR_WORDS[code] ? `${text} Reference: ${code}` : text;
    node.textContent = text ? withCode : "";
    if (code) node.dataset.code = code;
    else delete node.dataset.code;
  }

  async _submit() {
    const inputs = [...$("consent-scopes").querySelectorAll('input[type="checkbox"]')];
    if (inputs.length === 0 || inputs.some((input) => !input.checked)) {
      this._error(named((WORDS[this._mode] || WORDS.self).missing, this._clientName));
      return;
    }
    const submit = $("consent-submit");
    submit.disabled = true;
    this._error(null);
    try {
      const body = await this.call("POST", "/consent", {
        wording_version: this.state.wording.version,
        scopes: inputs.map((input) => input.value),
        attested: this._mode === "attest" || this._mode === "attest-assent",
      });
      if (isConsent(body)) this.state = body;
      // Not `complete`: a minor's assent is on record before the guardian's consent may be.
      if (answered(this.state, this._mode)) {
        this._done(true);
        return;
      }
      this._error("Your consent was not recorded completely. Please try again.", "incomplete");
    } catch (error) {
      const code = error.code || "internal";
      if (code === "consent_wording_outdated") {
        await this.load().catch(() => {});
        this._renderWording();
      }
      this._error(ERROR_WORDS[code] || "We couldn't record your consent.", code);
    }
    submit.disabled = false;
  }

  _done(given) {
    const finish = this._finish;
    this._finish = null;
    finish?.(given);
  }

  /**
   * What this page's person has on record (the client's consent, a minor's assent, or the
   * guardian's consent for the minor), with a small way to withdraw it: written into
   * `container` (the join step's and the end page's status blocks).
   * @param {HTMLElement} container
   * @param {() => void} [onChange] after a withdrawal (the others re-render)
   * @param {{mode?: string, clientName?: string}} [how] "self", "assent" or "guardian"
   */
  renderStatus(container, onChange, { mode = "self", clientName = null } = {}) {
    const records = recordsOf(this.state, mode);
    const status = STATUS_WORDS[mode] || STATUS_WORDS.self;
    const scopeWords = SCOPE_WORDS[mode === "guardian" ? "guardian" : "own"];
    container.hidden = records.length === 0;
    container.dataset.mode = mode;
    if (records.length === 0) {
      container.replaceChildren();
      return;
    }
    const lines = records.map((record) => {
      const what = named(scopeWords[record.scope] || record.scope, clientName);
      let how;
      if (record.withdrawn_at) how = `withdrawn on ${formatTime(record.withdrawn_at)}`;
      else if (record.attested_by) {
        how = `agreed aloud, confirmed by your therapist on ${formatTime(record.given_at)}`;
      } else how = `agreed on ${formatTime(record.given_at)}`;
      const item = el("li", null, el("span", "consent-what", `${what}: `), how);
      item.dataset.scope = record.scope;
      item.dataset.state = record.withdrawn_at ? "withdrawn" : "given";
      return item;
    });
    const children = [
      el("h2", null, named(status.heading, clientName)),
      el("ul", "consent-records", ...lines),
    ];
    if (mode === "guardian") {
      // The minor's own word beside the guardian's consent (assent: not required).
      const assent = recordsStatus(this.state.assent);
      const minor = el("p", "note consent-minor", named(MINOR_WORDS[assent], clientName));
      minor.dataset.assent = assent;
      children.push(minor);
    }
    const active = records.filter((r) => !r.withdrawn_at);
    if (active.length > 0) children.push(this._withdrawControls(active, onChange, status, scopeWords, clientName));
    if (!answered(this.state, mode)) children.push(el("p", "note", status.again));
    container.replaceChildren(...children);
  }

  _withdrawControls(active, onChange, status, scopeWords, clientName) {
    const choices = active.map((record) => {
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "withdraw-scope";
      input.value = record.scope;
      const words = named(scopeWords[record.scope] || record.scope, clientName);
      return el("label", "check", input, el("span", null, words));
    });
    const note = el("p", "note");
    note.setAttribute("role", "status");
    const submit = el("button", "button button-quiet", "Withdraw");
    submit.type = "button";
    submit.dataset.action = "withdraw";
    const details = el(
      "details",
      "consent-withdraw",
      el("summary", null, status.withdraw),
      el("p", "note", named(status.note, clientName)),
      el("fieldset", "checks", el("legend", "visually-hidden", "What to withdraw"), ...choices),
      el("div", "consent-withdraw-actions", submit),
      note,
    );
    submit.addEventListener("click", async () => {
      const scopes = choices
        .map((choice) => choice.querySelector("input"))
        .filter((input) => input.checked)
        .map((input) => input.value);
      if (scopes.length === 0) {
        note.textContent = "Tick what you want to withdraw.";
        return;
      }
      submit.disabled = true;
      try {
        const body = await this.call("POST", "/consent/withdraw", { scopes });
        if (isConsent(body)) this.state = body;
        onChange?.();
      } catch (error) {
        note.textContent = `We couldn't withdraw your consent. Reference: ${error.code || "internal"}`;
        submit.disabled = false;
      }
    });
    return details;
  }
}
