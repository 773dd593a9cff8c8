// How a refused event is said in the room: "We couldn't <action>. Reference: <code>", or a
// sentence of its own for the refusals a person can do something about.

const ACTION_WORDS = {
  join: "join the room",
  leave: "leave",
  "media-state": "update your microphone or camera",
  admit: "admit",
  deny: "deny",
  end: "end the consult",
  signal: "connect the video",
  candidate: "connect the video",
  offer: "connect the video",
  device: "switch the device",
  remove: "remove the participant",
  "notes-sync": "load the notes",
  "notes-update": "save your notes",
  "media-restart": "reconnect the video",
  "confirm-presence": "confirm who is at the device",
  "share-start": "share your screen",
  "share-stop": "stop the screen share",
  "share-permission": "change who may share a screen",
  share: "share your screen",
  ice: "connect the video",
};

/** Refusals that deserve their own sentence rather than "We couldn't ...". */
const CODE_SENTENCES = {
  consent_required: (name) =>
    `${name || "The client"} hasn't given consent yet. They can be let in once they have completed the consent step.`,
  consult_ended: () => "The consult has ended: nothing more can be changed.",
  consent_withdrawn: () =>
    "The client withdrew consent to sharing information between their clinicians: the clinicians' notes can't be changed.",
  rate_limited: () => "That was too fast. Please try again in a moment.",
  presence_confirmation_refused: () =>
    "That isn't yours to confirm: people confirm that they are with someone themselves, and only the other clinician can confirm that the client is present.",
  presence_not_declared: () =>
    "There is nothing to confirm any more: the person changed or took back who is with them.",
  same_room_required: () =>
    "The client being beside you isn't confirmed yet. The client can confirm it from their own link, or the psychiatrist from the room; then try again.",
  share_in_progress: () => "Someone else is sharing their screen: one screen at a time.",
  share_not_allowed: () => "A clinician needs to allow you to share your screen first.",
  turn_refused: () =>
    "The video relay refused this connection, so the video can't get through networks that block it. Reload the page to try again; if it keeps happening, tell the clinic.",
  notes_document_too_large: () =>
    "These notes have reached their size limit: the last change was not saved. Shorten something and try again.",
};

/** The sentence of its own for `code`, or null (a caller then says "We couldn't ..."). */
export function codeSentence(code, subject = null) {
  return CODE_SENTENCES[code]?.(subject) ?? null;
}

/** The sentence for `code` refusing `during` (an event name); `subject` names who it is about. */
export function refusalSentence(code, during, subject = null) {
  const sentence = CODE_SENTENCES[code]?.(subject);
  if (sentence) return `${sentence} Reference: ${code}`;
  return `We couldn't ${ACTION_WORDS[during] || during}. Reference: ${code}`;
}

/** Say in the room why an action was refused (the code stays on the element for support). */
export function showRefusal(code, during, subject = null) {
  const box = document.getElementById("room-error");
  box.textContent = refusalSentence(code, during, subject);
  box.dataset.code = code;
  console.warn(`triad: ${during} refused: ${code}`);
}

export function clearRefusal() {
  const box = document.getElementById("room-error");
  box.textContent = "";
  delete box.dataset.code;
}

/** The room's one-line status banner ("Reconnecting…"); null hides it. */
export function showBanner(text) {
  const banner = document.getElementById("banner");
  banner.textContent = text || "";
  banner.hidden = !text;
}
