// Consent as words: which form each page shows, when its answer is on record, and what the
// hosts read about who consented, the minor's assent and whose withdrawal stopped sharing.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  answered,
  consentMode,
  consentNotice,
  lobbyConsentWords,
  recordsStatus,
  scopesStatus,
  sharingWithdrawnSentence,
} from "../src/consentwords.js";

const WORDING = { version: "v1", scopes: [{ scope: "session" }, { scope: "information_sharing" }] };
const given = (scope) => ({ scope, withdrawn_at: null });
const withdrawn = (scope) => ({ scope, withdrawn_at: "2026-11-28T10:00:00Z" });
const scopes = (session, sharing) => ({ session, information_sharing: sharing });
const view = (fields) => ({
  complete: false,
  sharing_withdrawn: false,
  consenting_role: "client",
  consent: scopes(null, null),
  assent: null,
  ...fields,
});

test("each page's form: the client, a minor, the guardian, the attesting therapist", () => {
  assert.equal(consentMode("client", "client"), "self");
  assert.equal(consentMode("client", "guardian"), "assent");
  assert.equal(consentMode("guardian", "guardian"), "guardian");
  assert.equal(consentMode("therapist", "client", { attest: true }), "attest");
  assert.equal(consentMode("therapist", "guardian", { attest: true }), "attest-assent");
  // Nobody else answers: the interpreter, a clinician without the client beside them.
  assert.equal(consentMode("interpreter", "guardian"), null);
  assert.equal(consentMode("therapist", "guardian"), null);
  assert.equal(consentMode("psychiatrist", "client", { attest: true }), null);
  assert.equal(consentMode("guardian", "client"), null); // no guardian's consent without a minor
  assert.equal(consentMode("__proto__", "guardian"), null);
});

test("a mode is answered when every scope of its own records is in force", () => {
  const minorFirst = { wording: WORDING, records: [], assent: [given("session"), given("information_sharing")] };
  // The minor's assent is on record although the guardian has not consented (not complete).
  assert.equal(answered(minorFirst, "assent"), true);
  assert.equal(answered(minorFirst, "attest-assent"), true);
  assert.equal(answered(minorFirst, "guardian"), false);
  const guardianOnly = { wording: WORDING, records: [given("session"), given("information_sharing")], assent: [] };
  assert.equal(answered(guardianOnly, "guardian"), true);
  assert.equal(answered(guardianOnly, "assent"), false);
  const oneWithdrawn = { wording: WORDING, records: [given("session"), withdrawn("information_sharing")] };
  assert.equal(answered(oneWithdrawn, "self"), false);
  assert.equal(answered({ wording: WORDING, records: [given("session")] }, "self"), false);
  // Without a wording (or a state) nothing is answered; a malformed state does not throw.
  assert.equal(answered(null, "self"), false);
  assert.equal(answered({ wording: { scopes: [] }, records: [] }, "self"), false);
  assert.equal(answered({ wording: WORDING, records: "x", assent: null }, "assent"), false);
});

test("scope states sum up as given, partial, none or withdrawn", () => {
  assert.equal(scopesStatus(scopes("given", "given")), "given");
  assert.equal(scopesStatus(scopes("given", null)), "partial");
  assert.equal(scopesStatus(scopes(null, null)), "none");
  assert.equal(scopesStatus(scopes("given", "withdrawn")), "withdrawn");
  assert.equal(scopesStatus(null), null);
  assert.equal(recordsStatus([given("session"), given("information_sharing")]), "given");
  assert.equal(recordsStatus([withdrawn("session")]), "withdrawn");
  assert.equal(recordsStatus([]), "none");
  assert.equal(recordsStatus(undefined), "none");
});

test("the hosts read the client's own consent as before", () => {
  const complete = view({ complete: true, consent: scopes("given", "given") });
  assert.equal(consentNotice(complete), "The client's consent is complete.");
  assert.equal(consentNotice(complete, { quiet: true }), "");
  assert.equal(
    consentNotice(view({ consent: scopes("given", null) })),
    "The client's consent is no longer complete.",
  );
  assert.equal(
    consentNotice(view({ sharing_withdrawn: true, consent: scopes("given", "withdrawn") }), { quiet: true }),
    "The client withdrew consent to sharing information between their clinicians: the brief is hidden and the clinicians' notes are closed.",
  );
});

test("in a minor's consult the hosts read that the guardian consented and the minor's assent", () => {
  const guardian = (consent, assent, fields = {}) =>
    view({ consenting_role: "guardian", consent, assent, ...fields });
  assert.equal(
    consentNotice(guardian(scopes("given", "given"), scopes("given", "given"), { complete: true })),
    "The guardian consented for the client. The client's assent: given.",
  );
  // Not news but what stands: also shown from the join state.
  assert.equal(
    consentNotice(guardian(scopes("given", "given"), scopes(null, null), { complete: true }), { quiet: true }),
    "The guardian consented for the client. The client's assent: not given yet.",
  );
  assert.equal(
    consentNotice(guardian(scopes(null, null), scopes("given", "given"))),
    "The guardian has not consented yet. The client's assent: given.",
  );
  assert.equal(
    consentNotice(guardian(scopes("given", null), scopes("given", null))),
    "The guardian's consent is not complete. The client's assent: given in part.",
  );
  assert.equal(
    consentNotice(guardian(scopes("withdrawn", "given"), scopes(null, null))),
    "The guardian withdrew consent. The client's assent: not given yet.",
  );
  assert.equal(
    consentNotice(guardian(scopes("given", "given"), scopes("withdrawn", "given"))),
    "The guardian consented for the client. The client's assent: withdrawn.",
  );
  // The text never says the client consented when it was the guardian.
  assert.doesNotMatch(
    consentNotice(guardian(scopes("given", "given"), scopes(null, null), { complete: true })),
    /client's consent/,
  );
});

test("the withdrawal of sharing says whose it was", () => {
  const tail = ": these notes can no longer be changed.";
  const guardian = (consent, assent) =>
    view({ consenting_role: "guardian", sharing_withdrawn: true, consent, assent });
  assert.equal(
    sharingWithdrawnSentence(guardian(scopes("given", "withdrawn"), scopes(null, null)), tail),
    "The guardian withdrew consent to sharing information between the client's clinicians: these notes can no longer be changed.",
  );
  assert.equal(
    sharingWithdrawnSentence(guardian(scopes("given", "given"), scopes("given", "withdrawn")), tail),
    "The client withdrew their assent to sharing information between their clinicians: these notes can no longer be changed.",
  );
  assert.equal(
    sharingWithdrawnSentence(guardian(scopes("given", "withdrawn"), scopes("given", "withdrawn")), "."),
    "The guardian withdrew consent and the client their assent to sharing information between the client's clinicians.",
  );
  assert.equal(
    consentNotice(guardian(scopes("given", "given"), scopes("given", "withdrawn"))),
    "The client withdrew their assent to sharing information between their clinicians: the brief is hidden and the clinicians' notes are closed.",
  );
  // Without a view (a brief refused before the room knew): the client's words, as before.
  assert.equal(
    sharingWithdrawnSentence(null, ", so the brief is not shown."),
    "The client withdrew consent to sharing information between their clinicians, so the brief is not shown.",
  );
  assert.equal(consentNotice(null), "");
});

test("the lobby badge names the guardian's consent in a minor's consult", () => {
  assert.equal(lobbyConsentWords("client", true), "Consent given");
  assert.equal(lobbyConsentWords("client", false), "Consent not given yet");
  assert.equal(lobbyConsentWords(undefined, false), "Consent not given yet");
  assert.equal(lobbyConsentWords("guardian", true), "Guardian's consent given");
  assert.equal(lobbyConsentWords("guardian", false), "Guardian's consent not given yet");
});
