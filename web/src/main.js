// The page's flow: the join link -> who the consult is with -> the device check -> Enter ->
// the lobby (clients) -> the room -> ended or left. See docs/web.md for the module layout.

import { installDebugHook } from "./debug.js";
import { DeviceCheck } from "./devices.js";
import { $ } from "./dom.js";
import { showProblem } from "./problems.js";
import { Room } from "./room.js";
import { Problem, consultIdFromPath, fetchSession, takeToken } from "./session.js";
import { showLoading, showView } from "./views.js";
import { renderWelcome } from "./welcome.js";

const ENTER_NOTES = {
  pending: "Checking your camera and microphone…",
  ok: "Your camera and microphone are ready.",
  no_camera: "You can enter without a camera.",
  no_microphone: "You can enter without a microphone.",
};
const ENTER_NOTE_WITHOUT_DEVICES = "You can still enter, but the others won't see or hear you.";

const app = {
  consultId: null,
  token: null,
  session: null,
  devices: null,
  room: null,
};

let loadCount = 0;

/** Reads the link and asks the server. `moveFocus` (after a Retry click, whose button goes
 * away) puts keyboard focus on the heading of whatever is shown next. */
async function load({ moveFocus = false } = {}) {
  const thisLoad = ++loadCount;
  app.room?.finish({ kind: "reloaded" });
  app.room = null;
  const consultId = consultIdFromPath(window.location.pathname);
  const token = consultId ? takeToken(consultId) : null;
  if (!consultId || !token) {
    showProblem("no_token");
    return;
  }
  app.consultId = consultId;
  app.token = token;

  showView("join");
  $("consult").hidden = true;
  showLoading("Checking your link…");
  try {
    const session = await fetchSession(consultId, token);
    if (thisLoad !== loadCount) return; // a newer load (a new link pasted in) took over
    if (session.consult.status === "ended") {
      showProblem("consult_ended", { focus: moveFocus });
      return;
    }
    app.session = session;
    renderWelcome(session);
    showLoading("");
    showView("join", { focus: moveFocus });
    checkDevices();
  } catch (error) {
    if (thisLoad !== loadCount) return;
    const code = error instanceof Problem ? error.code : "internal";
    const requestId = error instanceof Problem ? error.requestId : null;
    showProblem(code, { onRetry: () => load({ moveFocus: true }), requestId, focus: moveFocus });
  }
}

async function checkDevices() {
  const enter = $("enter");
  enter.disabled = true;
  $("enter-note").textContent = ENTER_NOTES.pending;
  app.devices ||= new DeviceCheck();
  const status = await app.devices.start();
  $("enter-note").textContent = ENTER_NOTES[status] || ENTER_NOTE_WITHOUT_DEVICES;
  enter.disabled = false;
}

function enterRoom() {
  $("enter").disabled = true;
  app.devices.stopMeter();
  app.room = new Room({
    token: app.token,
    consultId: app.consultId,
    devices: app.devices,
    onFinished: finished,
    onFatal: (code) =>
      showProblem(code, { onRetry: () => load({ moveFocus: true }), focus: true }),
  });
  app.room.start();
}

function finished({ kind, planId }) {
  if (kind !== "ended" && kind !== "left") return; // refusals show a problem card instead
  const ended = kind === "ended";
  $("finished-heading").textContent = ended ? "The consult has ended" : "You left the consult";
  $("finished-body").textContent = ended
    ? "Thank you for joining. The treatment plan has been saved. You can close this page."
    : "Your camera and microphone are off. You can rejoin while the consult is going on.";
  $("plan-id").textContent = planId || "";
  $("finished-plan").hidden = !(ended && planId);
  $("rejoin").hidden = ended;
  $("main").dataset.finished = kind;
  document.title = ended ? "Consult ended · Triad" : "You left · Triad";
  showView("finished", { focus: true });
}

$("enter").addEventListener("click", enterRoom);
$("rejoin").addEventListener("click", () => {
  app.room = null;
  delete $("main").dataset.finished;
  showView("join", { focus: true });
  checkDevices();
});

// Pasting another join link into the same tab changes only the fragment: no reload happens.
window.addEventListener("hashchange", () => {
  if (window.location.hash) load();
});

installDebugHook(app);
load();
