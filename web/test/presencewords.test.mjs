// Same-room prompts: who is asked what, from the server's pending declarations.
import assert from "node:assert/strict";
import { test } from "node:test";

import { pendingFromSession, presencePrompts, promptKey } from "../src/presencewords.js";

const PEOPLE = {
  p_t: { name: "Sam Okafor", role: "therapist" },
  p_c: { name: "Ada Client", role: "client" },
  p_p: { name: "Dr Lee", role: "psychiatrist" },
};
const lookup = (id) => PEOPLE[id];

test("the person declared is asked to confirm, in their own words", () => {
  const [prompt] = presencePrompts([{ declarer_id: "p_t", participant_id: "p_c" }], "p_c", lookup);
  assert.equal(prompt.kind, "confirm");
  assert.equal(prompt.text, "Sam Okafor says you are with them at their device.");
  assert.equal(prompt.confirmLabel, "Confirm");
  assert.equal(prompt.dismissLabel, "I'm not with them");
  assert.equal(prompt.declarerId, "p_t");
  assert.equal(prompt.participantId, "p_c");
});

test("the other clinician is asked to attest the client, never by name in the question", () => {
  const [prompt] = presencePrompts([{ declarer_id: "p_t", participant_id: "p_c" }], "p_p", lookup);
  assert.equal(prompt.kind, "attest");
  assert.equal(prompt.text, "Sam Okafor (therapist) says the client is with them. Confirm the client is present?");
});

test("duplicates, dismissed prompts and malformed entries are left out", () => {
  const pending = [
    { declarer_id: "p_t", participant_id: "p_c" },
    { declarer_id: "p_t", participant_id: "p_c" },
    { declarer_id: "p_p", participant_id: "p_c" },
    { declarer_id: 5, participant_id: "p_c" },
    null,
  ];
  const all = presencePrompts(pending, "p_c", lookup);
  assert.deepEqual(all.map((p) => p.key), [promptKey("p_t", "p_c"), promptKey("p_p", "p_c")]);
  const left = presencePrompts(pending, "p_c", lookup, new Set([promptKey("p_t", "p_c")]));
  assert.deepEqual(left.map((p) => p.declarerId), ["p_p"]);
  assert.deepEqual(presencePrompts(undefined, "p_c", lookup), []);
});

test("an unknown declarer is still a readable sentence", () => {
  const [prompt] = presencePrompts([{ declarer_id: "p_x", participant_id: "p_c" }], "p_c", () => undefined);
  assert.equal(prompt.text, "Someone from this consult says you are with them at their device.");
});

test("the session's declared_with_you names this participant as the one declared", () => {
  const session = { you: { participant_id: "p_c", declared_with_you: [{ declarer_id: "p_t" }, { nope: 1 }] } };
  assert.deepEqual(pendingFromSession(session), [{ declarer_id: "p_t", participant_id: "p_c" }]);
  assert.deepEqual(pendingFromSession({ you: { participant_id: "p_c" } }), []);
});

test("the presence refusals are said in plain words, with their code for support", async () => {
  const { refusalSentence } = await import("../src/refusals.js");
  for (const code of ["presence_confirmation_refused", "presence_not_declared", "same_room_required"]) {
    const sentence = refusalSentence(code, "confirm-presence");
    assert.ok(!sentence.startsWith("We couldn't"), sentence);
    assert.ok(sentence.endsWith(`Reference: ${code}`), sentence);
  }
  assert.equal(
    refusalSentence("internal", "confirm-presence"),
    "We couldn't confirm who is at the device. Reference: internal",
  );
});

test("the device check says who still has to confirm a declaration", async () => {
  const { pendingWords } = await import("../src/presencewords.js");
  const others = [
    { id: "p_c", name: "Alex Rivera", role: "client" },
    { id: "p_p", name: "Priya Nair", role: "psychiatrist" },
  ];
  assert.deepEqual(pendingWords([others[0]], others, { role: "therapist" }), [
    "This counts once Alex Rivera confirms it from their own device, or Priya Nair from the room.",
  ]);
  assert.deepEqual(pendingWords([others[1]], others, { role: "therapist" }), [
    "This counts once Priya Nair confirms it from their own device.",
  ]);
  assert.deepEqual(pendingWords([], others, { role: "therapist" }), []);
});

test("a declarer's role is named only when it is a role of a consult", () => {
  for (const [role, words] of [["guardian", " (guardian)"], ["constructor", ""], ["__proto__", ""]]) {
    const people = { p_x: { name: "Kim", role }, p_c: { name: "Ada Client", role: "client" } };
    const [prompt] = presencePrompts([{ declarer_id: "p_x", participant_id: "p_c" }], "p_p", (id) => people[id]);
    assert.equal(prompt.text, `Kim${words} says the client is with them. Confirm the client is present?`);
  }
});
