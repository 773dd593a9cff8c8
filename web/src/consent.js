// The client's consent, before the lobby: to the session, and to their therapist and the
// psychiatrist sharing information with each other. The wording and its version come from the
// server (GET .../session/consent), which stores what was agreed, when, and by whom. A
// therapist who declared the client present at their device sees the same form as an
// attestation of the client's spoken consent. The client can see what they gave and withdraw it.

import { $, el } from "./dom.js";
import { codeSentence } from "./refusals.js";
import { showView } from "./views.js";

/** Checkbox names (the DOM contract in docs/web.md) by consent scope. */
const INPUT_NAMES = { session: "consent-session", information_sharing: "consent-sharing" };

/** Short names for the status lines and the withdrawal choices. */
const SCOPE_WORDS = {
  session: "Taking part in this video consult",
  information_sharing: "Your therapist and psychiatrist sharing information about your care",
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
};

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
    this._attest = false;
    $("consent-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this._submit();
    });
    $("consent-back").addEventListener("click", () => this._done(false));
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
   * Show the form; resolves true once the consent is complete, false if the person went back.
   * @param {{attest: boolean, clientName?: string}} how
   */
  ask({ attest, clientName = "the client" }) {
    this._attest = attest;
    const words = attest ? WORDS.attest : WORDS.self;
    const form = $("consent-form");
    form.dataset.mode = attest ? "attest" : "self";
    $("consent-heading").textContent = words.heading;
    $("consent-intro").textContent = words.intro.replace("{client}", clientName);
    $("consent-submit").textContent = words.submit;
    this._renderWording();
    this._error(null);
    $("consent-submit").disabled = false;
    document.title = `${words.heading} · Triad`;
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
      this._error((this._attest ? WORDS.attest : WORDS.self).missing);
      return;
    }
    const submit = $("consent-submit");
    submit.disabled = true;
    this._error(null);
    try {
      const body = await this.call("POST", "/consent", {
        wording_version: this.state.wording.version,
        scopes: inputs.map((input) => input.value),
        attested: this._attest,
      });
      if (isConsent(body)) this.state = body;
      if (this.state.complete) {
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
   * The client's view of what is on record, with a small way to withdraw: written into
   * `container` (the join step's and the end page's status blocks).
   * @param {HTMLElement} container
   * @param {() => void} [onChange] after a withdrawal (the others re-render)
   */
  renderStatus(container, onChange) {
    const records = this.state?.records || [];
    container.hidden = records.length === 0;
    if (records.length === 0) {
      container.replaceChildren();
      return;
    }
    const lines = records.map((record) => {
      const what = SCOPE_WORDS[record.scope] || record.scope;
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
      el("h2", null, "Your consent"),
      el("ul", "consent-records", ...lines),
    ];
    const active = records.filter((r) => !r.withdrawn_at);
    if (active.length > 0) children.push(this._withdrawControls(active, onChange));
    if (!this.state.complete) {
      children.push(el("p", "note", "You'll be asked for your consent again before you join."));
    }
    container.replaceChildren(...children);
  }

  _withdrawControls(active, onChange) {
    const choices = active.map((record) => {
      const input = document.createElement("input");
      input.type = "checkbox";
      input.name = "withdraw-scope";
      input.value = record.scope;
      const words = SCOPE_WORDS[record.scope] || record.scope;
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
      el("summary", null, "Withdraw consent"),
      el(
        "p",
        "note",
        "Withdrawing consent to sharing stops your clinicians sharing information about you from now on. Without both, you can't join a consult until you agree again.",
      ),
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
