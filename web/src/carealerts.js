// What the clinicians must notice in the room, beside the video: the safety banner (PHQ-9
// item 9 answered above 0: `safety-flag`, or the join state's `safety_flags` for a late joiner)
// and a notice when the consent changes (`consent-changed`, the state's `consent`): the
// client's, or in a minor's consult who consented (the guardian) and the minor's assent, and
// whose withdrawal stopped sharing (consentwords.js). The other pages keep the consent state
// but show neither.

import { $, isHost } from "./dom.js";
import { safetyText } from "./carepanel.js";
import { consentNotice } from "./consentwords.js";

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

  /** The room's consent view; `quiet` for the join state (what stands, not news). */
  consentChanged(consent, { quiet = false } = {}) {
    if (!consent) return;
    this.consent = consent;
    if (!isHost(this._role())) return;
    $("room-notice").textContent = consentNotice(consent, { quiet });
    $("room-notice").dataset.consentingRole = consent.consenting_role || "client";
    this._onChange("consent");
  }

  clear() {
    $("safety-banner").hidden = true;
    $("room-notice").textContent = "";
  }
}
