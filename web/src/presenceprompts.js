// Same-room prompts on the page: "<name> says you are with them at their device" (Confirm /
// I'm not with them) for the person declared, and "<name> (therapist) says the client is with
// them. Confirm the client is present?" for the other clinician. Confirm posts
// `POST .../session/present-with/confirmations`; dismissing changes nothing on the server. The
// list comes from the server (presencewords.js); one instance renders into each container of its
// page (the join step's, or the lobby's and the room's).

import { button, el } from "./dom.js";
import { presencePrompts } from "./presencewords.js";
import { refusalSentence } from "./refusals.js";

/** Dismissed for this page load, whichever view asked (the join step, then the lobby). */
const dismissed = new Set();

export class PresencePrompts {
  /**
   * @param {object} options
   * @param {(method: string, path: string, body?: object) => Promise<object>} options.call
   * @param {string[]} options.containers ids of the elements to render into
   * @param {() => string|null} options.youId this participant's id, once known
   * @param {(id: string) => object|undefined} options.lookup a participant's name and role
   */
  constructor({ call, containers, youId, lookup }) {
    this.call = call;
    this.containers = containers;
    this.youId = youId;
    this.lookup = lookup;
    this.pending = [];
    this.busy = new Set();
    this.errors = new Map();
    this.done = "";
  }

  /** The server's list (the whole of it: what is not in it is no longer asked). */
  set(pending) {
    this.pending = Array.isArray(pending) ? pending : [];
    this.render();
  }

  clear() {
    this.pending = [];
    this.done = "";
    this.render();
  }

  render() {
    const prompts = presencePrompts(this.pending, this.youId(), this.lookup, dismissed);
    for (const id of this.containers) {
      const box = document.getElementById(id);
      if (!box) continue;
      box.hidden = prompts.length === 0 && !this.done;
      box.replaceChildren(
        ...prompts.map((prompt) => this._item(prompt)),
        ...(this.done ? [el("p", "presence-done", this.done)] : []),
      );
    }
  }

  _item(prompt) {
    const busy = this.busy.has(prompt.key);
    const confirm = button(prompt.confirmLabel, "button button-small", () => this._confirm(prompt));
    confirm.dataset.action = "confirm-presence";
    confirm.disabled = busy;
    const dismiss = button(prompt.dismissLabel, "button button-small button-quiet", () => {
      dismissed.add(prompt.key);
      this.errors.delete(prompt.key);
      this.render();
    });
    dismiss.dataset.action = "dismiss-presence";
    dismiss.disabled = busy;
    const note = el("p", "presence-prompt-error", this.errors.get(prompt.key)?.text || "");
    note.setAttribute("role", "alert");
    if (this.errors.has(prompt.key)) note.dataset.code = this.errors.get(prompt.key).code;
    const item = el(
      "div",
      "presence-prompt",
      el("p", "presence-prompt-text", prompt.text),
      el("div", "presence-prompt-actions", confirm, dismiss),
      note,
    );
    item.setAttribute("role", "group");
    item.setAttribute("aria-label", "Who is at whose device");
    item.dataset.kind = prompt.kind;
    item.dataset.declarerId = prompt.declarerId;
    item.dataset.participantId = prompt.participantId;
    return item;
  }

  async _confirm(prompt) {
    this.busy.add(prompt.key);
    this.errors.delete(prompt.key);
    this.render();
    try {
      await this.call("POST", "/present-with/confirmations", {
        declarer_id: prompt.declarerId,
        participant_id: prompt.participantId,
      });
      this.pending = this.pending.filter(
        (p) => !(p.declarer_id === prompt.declarerId && p.participant_id === prompt.participantId),
      );
      this.done = prompt.kind === "confirm" ? "Thank you: you confirmed you are together." : "Thank you: the client's presence is confirmed.";
    } catch (error) {
      const code = error.code || "internal";
      this.errors.set(prompt.key, { code, text: refusalSentence(code, "confirm-presence") });
    } finally {
      this.busy.delete(prompt.key);
      this.render();
    }
  }
}
