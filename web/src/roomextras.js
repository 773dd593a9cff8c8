// Elements of the room and the end page that join.html does not carry, made once: the
// clinicians' safety banner and a notice line under the connection banner, and the end page's
// saved plan (after the plan reference). A new room starts them empty.

import { $, el } from "./dom.js";

export function ensureRoomExtras() {
  if (!$("safety-banner")) {
    const safety = el("div", "safety-banner");
    safety.id = "safety-banner";
    safety.setAttribute("role", "alert");
    safety.hidden = true;
    const notice = el("p", "room-notice");
    notice.id = "room-notice";
    notice.setAttribute("role", "status");
    $("banner").after(safety, notice);
  }
  if (!$("saved-plan")) {
    const saved = el("section", "saved-plan");
    saved.id = "saved-plan";
    saved.setAttribute("aria-labelledby", "saved-plan-heading");
    $("finished-plan").after(saved);
  }
  $("saved-plan").hidden = true;
  $("saved-plan").replaceChildren();
}
