// Same-room mode, on the device-check step: "who else from this consult is at this device?"
// One checkbox per other participant (`input[name="present-with"]`, value = participant id);
// each change is sent at once as `PUT .../session/present-with` and the server's answer is what
// counts (a therapist who has the client beside them attests the client's consent).

import { $, el, roleWords } from "./dom.js";
import { pendingWords } from "./presencewords.js";

export class Presence {
  /**
   * @param {object} session the REST session (GET .../session)
   * @param {(method: string, path: string, body?: object) => Promise<object>} call
   */
  constructor(session, call) {
    this.call = call;
    this.you = session.you;
    this.others = session.participants.filter((p) => p && p.id !== session.you.participant_id);
    /** The participant ids the server has on record for this device (pending ones included:
     *  a declaration takes effect once the person confirms it, see docs/api.md). */
    const known = session.you.declared ?? session.you.present_with;
    this.declared = new Set(Array.isArray(known) ? known : []);
    /** Of those, the ones in effect (confirmed or attested); the rest are still pending. */
    this.inEffect = new Set(Array.isArray(session.you.present_with) ? session.you.present_with : []);
    this._pending = Promise.resolve();
    this._generation = 0;
  }

  /** True when the server has `participantId` on record as sitting at this device. */
  has(participantId) {
    return this.declared.has(participantId);
  }

  /** Resolves once the last change has been answered (Enter waits for it). */
  settled() {
    return this._pending;
  }

  render() {
    const box = $("present-with-options");
    const note = $("present-with-note");
    $("present-with").hidden = this.others.length === 0;
    note.textContent = "";
    this._renderPending();
    box.replaceChildren(
      ...this.others.map((other) => {
        const input = document.createElement("input");
        input.type = "checkbox";
        input.name = "present-with";
        input.value = other.id;
        input.checked = this.declared.has(other.id);
        input.addEventListener("change", () => this._changed());
        return el(
          "label",
          "check",
          input,
          el("span", null, el("strong", null, other.name), ` (${roleWords(other.role)})`),
        );
      }),
    );
  }

  _renderPending() {
    const pending = this.others.filter((p) => this.declared.has(p.id) && !this.inEffect.has(p.id));
    const box = $("present-with-pending");
    box.replaceChildren(...pendingWords(pending, this.others, this.you).map((text) => el("p", null, text)));
    box.hidden = pending.length === 0;
  }

  _checkedIds() {
    return [...document.querySelectorAll('input[name="present-with"]:checked')].map((i) => i.value);
  }

  _changed() {
    const ids = this._checkedIds();
    const generation = ++this._generation;
    const note = $("present-with-note");
    note.textContent = "Saving…";
    delete note.dataset.code;
    // Changes are sent one after another, so the server ends with the last one.
    this._pending = this._pending.then(async () => {
      try {
        const answer = await this.call("PUT", "/present-with", { participant_ids: ids });
        this.declared = new Set(answer.participant_ids || []);
        const declarations = Array.isArray(answer.declarations) ? answer.declarations : [];
        this.inEffect = new Set(declarations.filter((d) => d && d.status !== "pending").map((d) => d.participant_id));
        if (generation !== this._generation) return; // a newer change is on its way
        note.textContent = savedWords(this.declared, this.others);
        this._renderPending();
      } catch (error) {
        if (generation !== this._generation) return;
        note.textContent = `We couldn't save who is with you. Reference: ${error.code || "internal"}`;
        note.dataset.code = error.code || "internal";
        // Show what the server still has.
        for (const input of document.querySelectorAll('input[name="present-with"]')) {
          input.checked = this.declared.has(input.value);
        }
      }
    });
  }
}

function savedWords(declared, others) {
  const names = others.filter((p) => declared.has(p.id)).map((p) => p.name);
  if (names.length === 0) return "Saved: nobody else is at this device.";
  return `Saved: ${names.join(" and ")} ${names.length === 1 ? "is" : "are"} with you.`;
}

