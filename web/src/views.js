// Which step of the page is showing. One section at a time; `main[data-view]` lets the CSS give
// the room the whole width.

import { $ } from "./dom.js";

const SECTIONS = {
  join: "consult",
  consent: "consent-step",
  checkin: "checkin",
  lobby: "lobby-wait",
  room: "room",
  finished: "finished",
  problem: null, // the #problem region is filled by problems.js
};

export function showLoading(message) {
  $("loading").textContent = message;
}

export function showView(view, { focus = false } = {}) {
  $("main").dataset.view = view;
  for (const [name, id] of Object.entries(SECTIONS)) {
    if (id) $(id).hidden = name !== view;
  }
  if (view !== "problem") $("problem").replaceChildren();
  if (focus) document.querySelector(`#${SECTIONS[view] || "problem"} h1`)?.focus();
}
