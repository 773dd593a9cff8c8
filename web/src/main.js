// The page's flow: the join link -> who the consult is with -> the device check (and who else
// is at this device) -> Enter -> consent and the optional check-in (the client, or a therapist
// with the client beside them; in a minor's consult the guardian consents for the minor and the
// minor assents) -> the lobby (all but the clinicians) -> the room -> ended or left. When the
// embed SDK framed the page, room events go to the embedder and its commands come in
// (embedbridge.js). See docs/web.md for the module layout.

import { CheckIn } from "./checkin.js";
import { ConsentStep } from "./consent.js";
import { answered, consentMode } from "./consentwords.js";
import { installDebugHook } from "./debug.js";
import { DeviceCheck } from "./devices.js";
import { $, isHost } from "./dom.js";
import { EmbedBridge, embedderOrigin } from "./embedbridge.js";
import { Presence } from "./presence.js";
import { PresencePrompts } from "./presenceprompts.js";
import { pendingFromSession } from "./presencewords.js";
import { showProblem } from "./problems.js";
import { Room } from "./room.js";
import { Problem, consultIdFromPath, fetchSession, sessionCaller, takeLink } from "./session.js";
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
  /** The pre-room steps, made per load (they hold the token's REST caller). */
  presence: null,
  prompts: null,
  consent: null,
  checkin: null,
  /** The embed SDK's counterpart, when an allowed page framed this one. */
  embed: null,
  /** The saved plan's id once the consult ended (the `end` command answers with it). */
  endedPlanId: null,
};

let loadCount = 0;

/** Reads the link and asks the server. `moveFocus` (after a Retry click, whose button goes
 * away) puts keyboard focus on the heading of whatever is shown next. */
async function load({ moveFocus = false } = {}) {
  const thisLoad = ++loadCount;
  app.room?.finish({ kind: "reloaded" });
  app.room = null;
  const consultId = consultIdFromPath(window.location.pathname);
  const { token, embedder } = consultId ? takeLink(consultId) : { token: null, embedder: null };
  startEmbedBridge(embedder);
  if (!consultId || !token) {
    problem("no_token");
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
      problem("consult_ended", { focus: moveFocus });
      return;
    }
    app.session = session;
    setUpSteps(consultId, token, session);
    renderWelcome(session);
    showLoading("");
    showView("join", { focus: moveFocus });
    checkDevices();
    showConsentOnRecord();
  } catch (error) {
    if (thisLoad !== loadCount) return;
    const code = error instanceof Problem ? error.code : "internal";
    const requestId = error instanceof Problem ? error.requestId : null;
    problem(code, { onRetry: () => load({ moveFocus: true }), requestId, focus: moveFocus });
  }
}

/** A problem card, also told to the embedder (as `error {code}`). */
function problem(code, options = {}) {
  app.embed?.send("error", { code });
  showProblem(code, options);
}

function setUpSteps(consultId, token, session) {
  const call = sessionCaller(consultId, token);
  app.presence = new Presence(session, call);
  app.presence.render();
  // Someone declared this person at their device: they confirm it here (docs/api.md).
  const people = new Map(session.participants.filter(Boolean).map((p) => [p.id, p]));
  app.prompts = new PresencePrompts({
    call,
    containers: ["join-presence-prompts"],
    youId: () => session.you.participant_id,
    lookup: (pid) => people.get(pid),
  });
  app.prompts.set(pendingFromSession(session));
  app.consent ||= new ConsentStep(call);
  app.consent.call = call;
  app.checkin ||= new CheckIn(call, consultId);
  app.checkin.call = call;
  app.checkin.consultId = consultId;
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

// -- the steps before the room ------------------------------------------------------------------

function clientOf(session) {
  return session.participants.find((p) => p && p.role === "client") || null;
}

/** Whose consent and check-in this device answers for: the client's own page, a minor's
 * guardian (consent only: the check-in is the client's), or a therapist who declared the
 * client present; null for everyone else. */
function answeringFor() {
  const { you } = app.session;
  const client = clientOf(app.session);
  if (you.role === "client") return { attest: false, name: null, checkIn: true };
  if (you.role === "guardian") return { attest: false, name: client?.name || null, checkIn: false };
  if (you.role === "therapist" && client && app.presence.has(client.id)) {
    return { attest: true, name: client.name, checkIn: true };
  }
  return null;
}

/** What this page's person has on record (the client's consent or a minor's assent, a
 * guardian's consent for the minor), on the join step and the end page. */
async function showConsentOnRecord() {
  const role = app.session?.you.role;
  if (role !== "client" && role !== "guardian") return;
  try {
    await app.consent.load();
  } catch {
    return; // the status is a courtesy; the consent step itself reports problems
  }
  renderConsentStatus();
}

function renderConsentStatus() {
  const mode = consentMode(app.session.you.role, app.consent.state?.consenting_role);
  if (!mode) return;
  const clientName = clientOf(app.session)?.name || null;
  for (const id of ["consent-status", "finished-consent"]) {
    app.consent.renderStatus($(id), renderConsentStatus, { mode, clientName });
  }
}

/** Consent (or assent), then the check-in. Resolves true to go on into the lobby/room, false
 * to stay. */
async function stepsBeforeRoom() {
  await app.presence.settled();
  const who = answeringFor();
  if (!who) return true;
  const consent = await app.consent.load();
  const mode = consentMode(app.session.you.role, consent.consenting_role, { attest: who.attest });
  if (mode && !answered(consent, mode)) {
    const given = await app.consent.ask({ mode, clientName: who.name });
    if (!given) return false;
    if (!who.attest) renderConsentStatus();
  }
  if (who.checkIn && (await app.checkin.wanted())) await app.checkin.ask({ forName: who.name });
  return true;
}

async function enter() {
  const button = $("enter");
  button.disabled = true;
  let go = false;
  try {
    go = await stepsBeforeRoom();
  } catch (error) {
    const code = error.code || "internal";
    $("enter-note").textContent = `We couldn't get ready to enter. Please try again. Reference: ${code}`;
  }
  if (!go) {
    showView("join", { focus: true });
    button.disabled = false;
    return;
  }
  enterRoom();
}

function enterRoom() {
  app.devices.stopMeter();
  app.room = new Room({
    token: app.token,
    consultId: app.consultId,
    workerUrl: app.session?.worker?.url ?? null,
    devices: app.devices,
    onFinished: finished,
    onFatal: (code) =>
      problem(code, { onRetry: () => load({ moveFocus: true }), focus: true }),
    emit: (event, detail) => {
      if (event === "ended") app.endedPlanId = detail.plan_id;
      app.embed?.send(event, detail);
    },
  });
  app.room.start();
}

function finished({ kind, planId }) {
  if (kind !== "ended" && kind !== "left") return; // refusals show a problem card instead
  const ended = kind === "ended";
  if (!ended) app.embed?.send("left", {});
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

// -- the embed SDK's commands -------------------------------------------------------------------

function startEmbedBridge(claimed) {
  if (app.embed) return;
  const origin = embedderOrigin(claimed);
  if (origin) app.embed = new EmbedBridge(origin, runEmbedCommand);
}

function refused(code) {
  return Object.assign(new Error(code), { code });
}

/** A command from the embedding page: the same as pressing the room's buttons, except that
 * `end` asks no confirmation (the platform's own interface asked). */
async function runEmbedCommand(command) {
  const room = app.room;
  const live = room && !room.finished && room.you;
  switch (command) {
    case "toggle-audio":
    case "toggle-video": {
      const kind = command === "toggle-audio" ? "audio" : "video";
      if (!live) throw refused("not_joined");
      await room.toggle(kind);
      return { [kind]: room.sending(kind) };
    }
    case "leave":
      if (!live) throw refused("not_joined");
      await room.leave();
      if (!room.finished) throw refused(room.errors.at(-1)?.code || "internal");
      return {};
    case "end": {
      if (!live) throw refused("not_joined");
      if (!isHost(room.you.role)) throw refused("forbidden_role");
      let ack;
      try {
        ack = await room.act("end", {}, { rethrow: true });
      } catch (error) {
        // The server's `ended` may come before the ack and close the socket under it.
        if (room.finished && app.endedPlanId) return { plan_id: app.endedPlanId };
        throw error;
      }
      room.finish({ kind: "ended", planId: ack.plan_id });
      return { plan_id: ack.plan_id ?? null };
    }
    default:
      throw refused("unknown_command");
  }
}

$("enter").addEventListener("click", enter);
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
