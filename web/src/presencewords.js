// Same-room prompts, the pure part: from the pending declarations the server says this
// participant may make count (the session's `you.declared_with_you`, the room's
// `presence_pending` and `presence-pending`), the prompts to show and their words. A prompt is
// "confirm" when it is about this participant, "attest" when a clinician is asked to vouch for
// the client sitting beside the other clinician (docs/api.md, same-room mode).

const ROLE = {
  client: "client",
  therapist: "therapist",
  psychiatrist: "psychiatrist",
  guardian: "guardian",
  interpreter: "interpreter",
};

/** The key of one declaration: who declared whom. */
export function promptKey(declarerId, participantId) {
  return `${declarerId} ${participantId}`;
}

/** The session read's `declared_with_you` as the room's `{declarer_id, participant_id}` list. */
export function pendingFromSession(session) {
  const you = session?.you;
  const list = Array.isArray(you?.declared_with_you) ? you.declared_with_you : [];
  return list
    .filter((d) => d && typeof d.declarer_id === "string")
    .map((d) => ({ declarer_id: d.declarer_id, participant_id: you.participant_id }));
}

/**
 * The prompts to show, in the server's order, without duplicates or dismissed ones.
 * @param {Array<{declarer_id: string, participant_id: string}>} pending
 * @param {string} youId this participant's id
 * @param {(id: string) => ({name?: string, role?: string}|undefined)} lookup names and roles
 * @param {Set<string>} dismissed keys of prompts this person dismissed
 */
export function presencePrompts(pending, youId, lookup, dismissed = new Set()) {
  const seen = new Set();
  const prompts = [];
  for (const item of Array.isArray(pending) ? pending : []) {
    if (!item || typeof item.declarer_id !== "string" || typeof item.participant_id !== "string") continue;
    const key = promptKey(item.declarer_id, item.participant_id);
    if (seen.has(key) || dismissed.has(key)) continue;
    seen.add(key);
    const declarer = lookup(item.declarer_id) || {};
    const who = declarer.name || "Someone from this consult";
    const role = typeof declarer.role === "string" && Object.hasOwn(ROLE, declarer.role) ? ROLE[declarer.role] : "";
    if (item.participant_id === youId) {
      prompts.push({
        key,
        kind: "confirm",
        declarerId: item.declarer_id,
        participantId: item.participant_id,
        text: `${who} says you are with them at their device.`,
        confirmLabel: "Confirm",
        dismissLabel: "I'm not with them",
      });
    } else {
      const declared = lookup(item.participant_id) || {};
      const them = declared.role === "client" || !declared.name ? "the client" : declared.name;
      prompts.push({
        key,
        kind: "attest",
        declarerId: item.declarer_id,
        participantId: item.participant_id,
        text: `${who}${role ? ` (${role})` : ""} says ${them} is with them. Confirm the client is present?`,
        confirmLabel: "Confirm the client is present",
        dismissLabel: "Not now",
      });
    }
  }
  return prompts;
}

/** Who still has to confirm it: the person from their own device, or (the client only) the
 * other clinician from the room. */
export function pendingWords(pending, others, you) {
  return pending.map((person) => {
    const other = others.find((p) => p.role !== "client" && p.id !== person.id && p.role !== you.role);
    const also = person.role === "client" && other ? `, or ${other.name} from the room` : "";
    return `This counts once ${person.name} confirms it from their own device${also}.`;
  });
}
