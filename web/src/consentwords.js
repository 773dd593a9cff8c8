// Consent as words, from the room's `consent` ({complete, sharing_withdrawn, consenting_role,
// consent: scopes, assent: scopes|null}, docs/protocol.md) and the REST consent state: who
// consented (the client, or a minor's guardian), whether the minor assented, whose withdrawal
// stopped sharing; and which form a page shows before the room (its mode) and when that form's
// answer is on record. Pure: no DOM (web/test/consentwords.test.mjs).

export const SCOPES = ["session", "information_sharing"];

/**
 * The consent form a page shows, by who answers: the client for themself (`self`), a minor
 * whose guardian consents (`assent`), the guardian for the minor (`guardian`), the therapist
 * attesting the spoken word of the client beside them (`attest`, or `attest-assent` for a
 * minor). Null for anyone else.
 * @param {string} role this page's role
 * @param {string} consentingRole the consent state's `consenting_role`
 * @param {{attest?: boolean}} [how] the therapist has the client beside them
 */
export function consentMode(role, consentingRole, { attest = false } = {}) {
  const minor = consentingRole === "guardian";
  if (role === "guardian") return minor ? "guardian" : null;
  if (role === "client") return minor ? "assent" : "self";
  if (role === "therapist" && attest) return minor ? "attest-assent" : "attest";
  return null;
}

export function isAssentMode(mode) {
  return mode === "assent" || mode === "attest-assent";
}

/** The records a mode gives and withdraws: the minor's assent, or the consent. */
export function recordsOf(state, mode) {
  const records = isAssentMode(mode) ? state?.assent : state?.records;
  return Array.isArray(records) ? records : [];
}

/** Whether every scope of the wording is on record and in force for this mode. */
export function answered(state, mode) {
  const scopes = (state?.wording?.scopes || []).map((s) => s.scope);
  if (scopes.length === 0) return false;
  const active = new Set(recordsOf(state, mode).filter((r) => r && !r.withdrawn_at).map((r) => r.scope));
  return scopes.every((scope) => active.has(scope));
}

/** `given` (every scope), `partial`, `none`, or `withdrawn` (any scope), from a view's scopes;
 * null when there are none (the client consents themself: no assent). */
export function scopesStatus(scopes) {
  if (!scopes || typeof scopes !== "object") return null;
  const states = SCOPES.map((scope) => scopes[scope]);
  if (states.includes("withdrawn")) return "withdrawn";
  const given = states.filter((s) => s === "given").length;
  if (given === SCOPES.length) return "given";
  return given > 0 ? "partial" : "none";
}

/** The same status from REST records (`records` or `assent` of the consent state). */
export function recordsStatus(records) {
  const scopes = {};
  for (const record of Array.isArray(records) ? records : []) {
    if (record && SCOPES.includes(record.scope)) scopes[record.scope] = record.withdrawn_at ? "withdrawn" : "given";
  }
  return scopesStatus(scopes);
}

const ASSENT_WORDS = {
  given: "The client's assent: given.",
  partial: "The client's assent: given in part.",
  none: "The client's assent: not given yet.",
  withdrawn: "The client's assent: withdrawn.",
};

const GUARDIAN_WORDS = {
  given: "The guardian consented for the client.",
  partial: "The guardian's consent is not complete.",
  none: "The guardian has not consented yet.",
  withdrawn: "The guardian withdrew consent.",
};

const SHARING = "to sharing information between";

/** Who stopped sharing, as a sentence without its end ("The guardian withdrew consent to
 * sharing information between the client's clinicians"), or null when it was not withdrawn. */
export function sharingWithdrawnBy(consent) {
  if (!consent?.sharing_withdrawn) return null;
  const byGuardian = consent.consenting_role === "guardian";
  const consentWithdrawn = consent.consent?.information_sharing === "withdrawn";
  const assentWithdrawn = byGuardian && consent.assent?.information_sharing === "withdrawn";
  if (byGuardian && consentWithdrawn && assentWithdrawn) {
    return `The guardian withdrew consent and the client their assent ${SHARING} the client's clinicians`;
  }
  if (assentWithdrawn) return `The client withdrew their assent ${SHARING} their clinicians`;
  if (byGuardian && consentWithdrawn) return `The guardian withdrew consent ${SHARING} the client's clinicians`;
  return `The client withdrew consent ${SHARING} their clinicians`;
}

/** The withdrawal sentence with `tail` (": these notes can no longer be changed."). */
export function sharingWithdrawnSentence(consent, tail) {
  const who = sharingWithdrawnBy(consent) || `The client withdrew consent ${SHARING} their clinicians`;
  return `${who}${tail}`;
}

/**
 * The hosts' notice line for a consent view. `quiet` (the join state): only what stands, not
 * news: a withdrawal, and in a minor's consult who consented and the minor's assent.
 */
export function consentNotice(consent, { quiet = false } = {}) {
  if (!consent) return "";
  if (consent.sharing_withdrawn) {
    return sharingWithdrawnSentence(consent, ": the brief is hidden and the clinicians' notes are closed.");
  }
  if (consent.consenting_role === "guardian") {
    const guardian = GUARDIAN_WORDS[scopesStatus(consent.consent) || "none"];
    const assent = ASSENT_WORDS[scopesStatus(consent.assent) || "none"];
    return `${guardian} ${assent}`;
  }
  if (quiet) return "";
  return consent.complete ? "The client's consent is complete." : "The client's consent is no longer complete.";
}

/** The hosts' lobby badge on the client's entry: whose consent admits them, and whether it is
 * on record (`may`: the entry's `consent`). */
export function lobbyConsentWords(consentingRole, may) {
  if (consentingRole === "guardian") return may ? "Guardian's consent given" : "Guardian's consent not given yet";
  return may ? "Consent given" : "Consent not given yet";
}
