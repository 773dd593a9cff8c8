// What the clinicians must notice in the room, beside the video: the safety banner (PHQ-9
// item 9 answered above 0: `safety-flag`, or the join state's `safety_flags` for a late joiner)
// and a notice when the client's consent changes (`consent-changed`, the state's `consent`).
// The client's page keeps the consent state but shows neither.

import { $, isHost } from "./dom.js";
import { safetyText } from "./carepanel.js";

export class CareAlerts {
  /**
   * @param {object} options
   * @param {() => string|null} options.role this participant's role, once known
   * @param {(what: "safety"|"consent") => void} options.onChange the care tabs to refresh
   */
  constructor({ role, onChange }) {
    this._role = role;
    this._onChange = onChange;
    this.flags = [];
    this.consent = null;
  }

  /** PHQ-9 item 9 flags (deduplicated by measure): a banner that stays for the consult. */
  addSafetyFlags(flags) {
    if (!isHost(this._role())) return;
    let added = false;
    for (const flag of flags) {
      if (!flag || this.flags.some((f) => f.measure_id === flag.measure_id)) continue;
      this.flags.push(flag);
      added = true;
    }
    if (!added) return;
    // The most severe answer leads (the latest of equals): a later, milder answer must not
    // hide an earlier "nearly every day".
    const worst = this.flags.reduce((a, b) => (Number(b.answer) >= Number(a.answer) ? b : a));
    const more = this.flags.length > 1 ? ` (${this.flags.length} answers flagged in this consult)` : "";
    $("safety-banner").textContent = safetyText(worst) + more;
    $("safety-banner").hidden = false;
    this._onChange("safety");
  }

  /** `{complete, sharing_withdrawn}`; `quiet` for the join state (only a withdrawal is news). */
  consentChanged(consent, { quiet = false } = {}) {
    if (!consent) return;
    this.consent = consent;
    if (!isHost(this._role())) return;
    let notice = "";
    if (consent.sharing_withdrawn) {
      notice =
        "The client withdrew consent to sharing information between their clinicians: the brief is hidden and the clinicians' notes are closed.";
    } else if (!quiet) {
      notice = consent.complete ? "The client's consent is complete." : "The client's consent is no longer complete.";
    }
    $("room-notice").textContent = notice;
    this._onChange("consent");
  }

  clear() {
    $("safety-banner").hidden = true;
    $("room-notice").textContent = "";
  }
}
